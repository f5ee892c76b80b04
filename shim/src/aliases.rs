//! glibc's double-underscore names for calls the shim interposes (`__read`, `__connect`, …):
//! exported for programs linked long ago against libpthread, which called them, and the same
//! functions underneath. Each is the shim's own function under the other name.

use libc::{c_int, c_ulong, c_void, fd_set, mode_t, pid_t, size_t, sockaddr, socklen_t, ssize_t};
use libc::{nfds_t, pollfd, timespec, timeval};

/// Defines `$alias` as a call of the shim's `$target` with the same arguments.
macro_rules! alias {
    ($( $alias:ident => $target:path, ($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {$(
        #[doc = concat!(stringify!($alias), ": the shim's `", stringify!($target), "`.")]
        ///
        /// # Safety
        /// As for the function it names.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $alias($($arg: $ty),*) -> $ret {
            // SAFETY: the caller's promise, passed on.
            #[allow(unused_unsafe)] // some targets are safe functions
            unsafe { $target($($arg),*) }
        }
    )*};
}

alias! {
    __close => crate::sockets::close, (fd: c_int) -> c_int;
    __connect => crate::sockets::connect, (fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    __dup2 => crate::sockets::dup2, (fd: c_int, new: c_int) -> c_int;
    __fcntl => crate::sockets::fcntl, (fd: c_int, cmd: c_int, arg: c_ulong) -> c_int;
    __read => crate::data::read, (fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t;
    __write => crate::data::write, (fd: c_int, buf: *const c_void, len: size_t) -> ssize_t;
    __send => crate::data::send, (fd: c_int, buf: *const c_void, len: size_t, flags: c_int) -> ssize_t;
    __poll => crate::ready::poll, (fds: *mut pollfd, n: nfds_t, timeout_ms: c_int) -> c_int;
    __select => crate::ready::select, (nfds: c_int, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set, timeout: *mut timeval) -> c_int;
    __open => crate::entropy::open, (path: *const libc::c_char, flags: c_int, mode: mode_t) -> c_int;
    __open64 => crate::entropy::open64, (path: *const libc::c_char, flags: c_int, mode: mode_t) -> c_int;
    __nanosleep => crate::clock::nanosleep, (req: *const timespec, rem: *mut timespec) -> c_int;
    __gettimeofday => crate::clock::gettimeofday, (tv: *mut timeval, tz: *mut c_void) -> c_int;
    __getpid => crate::pid::getpid, () -> pid_t;
}
