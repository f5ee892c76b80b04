//! Calls beyond the socket API that a program may make on a simulated socket. Each answers as
//! Linux answers on a socket where that needs nothing the simulator lacks, and is refused by
//! name otherwise; on any other descriptor each is libc's own.
//!
//! - Positioned I/O (pread, pwrite, preadv, pwritev and their 64-bit names): sockets cannot
//!   seek, so Linux answers ESPIPE (EINVAL first for a negative offset). preadv2 and pwritev2
//!   (and preadv64v2, pwritev64v2) with offset -1 and no flags are readv and writev.
//! - sendfile from a file to a simulated socket: the file's bytes are read here and sent
//!   through the simulator, as many as the send takes; the file position (or `*offset`) moves
//!   by what was sent. From a socket, Linux refuses (EINVAL).
//! - sendmmsg and recvmmsg: loops of sendmsg and recvmsg, as Linux runs them; a recvmmsg
//!   timeout is refused (it runs on the real clock).
//! - copy_file_range: EINVAL, as Linux answers for anything but regular files.
//! - splice, tee, vmsplice (the pipe buffer is the kernel's): refused by name.
//! - __ppoll_chk: ppoll from a fortified build.

use libc::{
    c_int, c_uint, c_void, iovec, loff_t, mmsghdr, nfds_t, off_t, pollfd, sigset_t, size_t,
    ssize_t, timespec,
};

use crate::data::{readv, recvmsg, sendmsg, writev};
use crate::ready::ppoll;
use crate::real::real;
use crate::state::{is_sim, refuse, set_errno};

/// Most messages one sendmmsg or recvmmsg takes (Linux's UIO_MAXIOV).
const MMSG_MAX: c_uint = 1024;
/// Most bytes sendfile moves per call through the simulator (what one send may take).
const SENDFILE_CHUNK_BYTES: usize = 1 << 16;

/// Linux's answer to positioned I/O on a socket: EINVAL for a negative offset, else ESPIPE.
fn unseekable(offset: i64) -> ssize_t {
    set_errno(if offset < 0 {
        libc::EINVAL
    } else {
        libc::ESPIPE
    });
    -1
}

/// Defines positioned reads and writes that answer [`unseekable`] on a simulated descriptor
/// and call libc's own otherwise.
macro_rules! positioned {
    ($($name:ident($buf:ty, $len:ty, $off:ty)),* $(,)?) => {$(
        #[doc = concat!(stringify!($name), "(2): ESPIPE on a simulated socket.")]
        ///
        /// # Safety
        /// As for libc's: the buffer (or vector) must be valid for the length given.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(fd: c_int, buf: $buf, len: $len, offset: $off) -> ssize_t {
            if is_sim(fd) {
                return unseekable(i64::from(offset));
            }
            // SAFETY: the arguments are the caller's, passed on unchanged.
            unsafe { real!($name: fn(c_int, $buf, $len, $off) -> ssize_t)(fd, buf, len, offset) }
        }
    )*};
}

positioned!(
    pread(*mut c_void, size_t, off_t),
    pread64(*mut c_void, size_t, off_t),
    pwrite(*const c_void, size_t, off_t),
    pwrite64(*const c_void, size_t, off_t),
    __pread64(*mut c_void, size_t, off_t),
    __pwrite64(*const c_void, size_t, off_t),
    preadv(*const iovec, c_int, off_t),
    preadv64(*const iovec, c_int, off_t),
    pwritev(*const iovec, c_int, off_t),
    pwritev64(*const iovec, c_int, off_t),
);

/// What preadv2 and pwritev2 do on a simulated socket: the current position (-1) with no
/// flags is a plain vectored call; flags are refused; any other offset is [`unseekable`].
fn vectored_at(
    what: &str,
    offset: off_t,
    flags: c_int,
    plain: impl FnOnce() -> ssize_t,
) -> ssize_t {
    if offset != -1 {
        return unseekable(offset);
    }
    if flags != 0 {
        refuse(&format!(
            "{what} with flags {flags:#x} on a simulated socket is not simulated"
        ));
    }
    plain()
}

/// Defines preadv2 and pwritev2 (and their large-file names): [`vectored_at`] on a simulated
/// descriptor, libc's own otherwise.
macro_rules! vectored2 {
    ($($name:ident => $plain:ident),* $(,)?) => {$(
        #[doc = concat!(stringify!($name), "(2): ", stringify!($plain), " at offset -1 with no flags, on a simulated socket.")]
        ///
        /// # Safety
        /// `iov` must point to `count` valid iovecs.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            fd: c_int,
            iov: *const iovec,
            count: c_int,
            offset: off_t,
            flags: c_int,
        ) -> ssize_t {
            if !is_sim(fd) {
                // SAFETY: the arguments are the caller's, passed on unchanged.
                return unsafe {
                    real!($name: fn(c_int, *const iovec, c_int, off_t, c_int) -> ssize_t)(
                        fd, iov, count, offset, flags,
                    )
                };
            }
            // SAFETY: the caller's promise, passed on.
            vectored_at(stringify!($name), offset, flags, || unsafe { $plain(fd, iov, count) })
        }
    )*};
}

vectored2!(
    preadv2 => readv,
    preadv64v2 => readv,
    pwritev2 => writev,
    pwritev64v2 => writev,
);

/// sendfile's work when `out_fd` is simulated: read from the file (at `*offset`, or at its
/// position), send, and account for what the send took.
///
/// # Safety
/// `offset` must be null or point to a valid offset.
unsafe fn sendfile_to_sim(
    out_fd: c_int,
    in_fd: c_int,
    offset: *mut off_t,
    count: size_t,
) -> ssize_t {
    if is_sim(in_fd) {
        // do_sendfile: a socket has no splice_read of the kind sendfile needs.
        set_errno(libc::EINVAL);
        return -1;
    }
    let mut buf = vec![0u8; count.min(SENDFILE_CHUNK_BYTES)];
    let read = if offset.is_null() {
        // SAFETY: `buf` is writable for its length.
        unsafe {
            real!(read: fn(c_int, *mut c_void, size_t) -> ssize_t)(
                in_fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    } else {
        // SAFETY: as above; the caller promises `offset` is valid.
        unsafe {
            real!(pread64: fn(c_int, *mut c_void, size_t, off_t) -> ssize_t)(
                in_fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                *offset,
            )
        }
    };
    if read <= 0 {
        return read;
    }
    let iov = iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: read as usize,
    };
    // SAFETY: one iovec over `read` initialised bytes of `buf`.
    let sent = unsafe { writev(out_fd, &iov, 1) };
    let unsent = if sent < 0 { read } else { read - sent };
    if offset.is_null() {
        // The file's position moves by what was sent, not by what was read.
        // SAFETY: lseek takes plain integers.
        unsafe {
            real!(lseek: fn(c_int, off_t, c_int) -> off_t)(in_fd, -unsent as off_t, libc::SEEK_CUR)
        };
    } else if sent > 0 {
        // SAFETY: the caller promises `offset` is valid.
        unsafe { *offset += sent as off_t };
    }
    sent
}

/// Defines sendfile and its large-file name: through the simulator when either end is
/// simulated ([`sendfile_to_sim`]), libc's own otherwise.
macro_rules! sendfile {
    ($($name:ident),*) => {$(
        #[doc = concat!(stringify!($name), "(2): from a file to a simulated socket, through the simulator.")]
        ///
        /// # Safety
        /// `offset` must be null or point to a valid offset.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            out_fd: c_int,
            in_fd: c_int,
            offset: *mut off_t,
            count: size_t,
        ) -> ssize_t {
            if is_sim(out_fd) || is_sim(in_fd) {
                // SAFETY: the caller's promise, passed on.
                return unsafe { sendfile_to_sim(out_fd, in_fd, offset, count) };
            }
            // SAFETY: the arguments are the caller's, passed on unchanged.
            unsafe {
                real!($name: fn(c_int, c_int, *mut off_t, size_t) -> ssize_t)(
                    out_fd, in_fd, offset, count,
                )
            }
        }
    )*};
}

sendfile!(sendfile, sendfile64);

/// sendmmsg(2): sendmsg for each message until one fails; the count sent, or the first
/// message's error.
///
/// # Safety
/// `msgs` must point to `count` valid mmsghdrs whose buffers are readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgs: *mut mmsghdr,
    count: c_uint,
    flags: c_int,
) -> c_int {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(sendmmsg: fn(c_int, *mut mmsghdr, c_uint, c_int) -> c_int)(fd, msgs, count, flags)
        };
    }
    let mut sent = 0;
    for i in 0..count.min(MMSG_MAX) as usize {
        // SAFETY: the caller promises `count` entries; `i < count`.
        let m = unsafe { &mut *msgs.add(i) };
        // SAFETY: the caller promises each header is valid.
        let n = unsafe { sendmsg(fd, &m.msg_hdr, flags) };
        if n < 0 {
            return if sent > 0 { sent } else { -1 };
        }
        m.msg_len = n as c_uint;
        sent += 1;
    }
    sent
}

/// recvmmsg(2): recvmsg for each message; with MSG_WAITFORONE, only the first may wait. A
/// timeout is refused: Linux checks it on the real clock, between messages.
///
/// # Safety
/// `msgs` must point to `count` valid mmsghdrs whose buffers are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    msgs: *mut mmsghdr,
    count: c_uint,
    flags: c_int,
    timeout: *mut timespec,
) -> c_int {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(recvmmsg: fn(c_int, *mut mmsghdr, c_uint, c_int, *mut timespec) -> c_int)(
                fd, msgs, count, flags, timeout,
            )
        };
    }
    if !timeout.is_null() {
        refuse("recvmmsg with a timeout is not simulated (it runs on the real clock)");
    }
    let mut flags_now = flags & !libc::MSG_WAITFORONE;
    let mut got = 0;
    for i in 0..count.min(MMSG_MAX) as usize {
        // SAFETY: the caller promises `count` entries; `i < count`.
        let m = unsafe { &mut *msgs.add(i) };
        // SAFETY: the caller promises each header is valid.
        let n = unsafe { recvmsg(fd, &mut m.msg_hdr, flags_now) };
        if n < 0 {
            return if got > 0 { got } else { -1 };
        }
        m.msg_len = n as c_uint;
        got += 1;
        if flags & libc::MSG_WAITFORONE != 0 {
            flags_now |= libc::MSG_DONTWAIT;
        }
    }
    got
}

/// copy_file_range(2): EINVAL when either end is a simulated socket (only regular files).
///
/// # Safety
/// The offsets must be null or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn copy_file_range(
    fd_in: c_int,
    off_in: *mut loff_t,
    fd_out: c_int,
    off_out: *mut loff_t,
    len: size_t,
    flags: c_uint,
) -> ssize_t {
    if is_sim(fd_in) || is_sim(fd_out) {
        set_errno(libc::EINVAL);
        return -1;
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe {
        real!(copy_file_range: fn(c_int, *mut loff_t, c_int, *mut loff_t, size_t, c_uint) -> ssize_t)(
            fd_in, off_in, fd_out, off_out, len, flags,
        )
    }
}

/// Refuses a zero-copy call that touches a simulated socket.
fn refuse_zero_copy(what: &str) -> ! {
    refuse(&format!(
        "{what} on a simulated socket is not simulated (the pipe buffer it uses is the kernel's)"
    ))
}

/// splice(2): refused on a simulated socket.
///
/// # Safety
/// As for libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splice(
    fd_in: c_int,
    off_in: *mut loff_t,
    fd_out: c_int,
    off_out: *mut loff_t,
    len: size_t,
    flags: c_uint,
) -> ssize_t {
    if is_sim(fd_in) || is_sim(fd_out) {
        refuse_zero_copy("splice");
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe {
        real!(splice: fn(c_int, *mut loff_t, c_int, *mut loff_t, size_t, c_uint) -> ssize_t)(
            fd_in, off_in, fd_out, off_out, len, flags,
        )
    }
}

/// tee(2): refused on a simulated descriptor (it takes pipes only, so Linux would say EINVAL;
/// a simulated pipe end is refused rather than answered).
///
/// # Safety
/// As for libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tee(fd_in: c_int, fd_out: c_int, len: size_t, flags: c_uint) -> ssize_t {
    if is_sim(fd_in) || is_sim(fd_out) {
        refuse_zero_copy("tee");
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe { real!(tee: fn(c_int, c_int, size_t, c_uint) -> ssize_t)(fd_in, fd_out, len, flags) }
}

/// vmsplice(2): refused on a simulated descriptor.
///
/// # Safety
/// As for libc's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmsplice(
    fd: c_int,
    iov: *const iovec,
    count: size_t,
    flags: c_uint,
) -> ssize_t {
    if is_sim(fd) {
        refuse_zero_copy("vmsplice");
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe {
        real!(vmsplice: fn(c_int, *const iovec, size_t, c_uint) -> ssize_t)(fd, iov, count, flags)
    }
}

/// __pread_chk: pread(2) from a fortified build (`buf_len` is the buffer's known size).
///
/// # Safety
/// As for pread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __pread_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    offset: off_t,
    buf_len: size_t,
) -> ssize_t {
    if len > buf_len {
        crate::data::chk_fail();
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { pread(fd, buf, len, offset) }
}

/// __pread64_chk: __pread_chk's 64-bit name.
///
/// # Safety
/// As for pread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __pread64_chk(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    offset: off_t,
    buf_len: size_t,
) -> ssize_t {
    // SAFETY: the caller's promise, passed on.
    unsafe { __pread_chk(fd, buf, len, offset, buf_len) }
}

/// __ppoll_chk: ppoll(2) from a fortified build.
///
/// # Safety
/// As for [`ppoll`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: *const timespec,
    mask: *const sigset_t,
    fds_len: usize,
) -> c_int {
    if (n as usize).saturating_mul(size_of::<pollfd>()) > fds_len {
        // SAFETY: __chk_fail takes nothing and does not return.
        unsafe { real!(__chk_fail: fn() -> ())() };
    }
    // SAFETY: the caller's promises, passed on.
    unsafe { ppoll(fds, n, timeout, mask) }
}
