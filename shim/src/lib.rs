//! selectlab-shim: a library preloaded (`LD_PRELOAD`) into a program that `selectlab sim` runs,
//! putting the program's socket, readiness and clock calls on selectlab's simulator.
//!
//! This crate holds the project's only `unsafe` code: defining C functions that libc's callers
//! reach, and reading the pointers they pass. Each `unsafe` block says why it is sound.
//!
//! How a call travels: the program calls, say, `recv(5, buf, 4096, 0)`. The dynamic linker
//! finds this library's `recv` before libc's. If descriptor 5 is simulated, the shim sends one
//! request to selectlab over its channel (a SOCK_SEQPACKET socket, see `selectlab-wire`), waits
//! for the reply, copies the bytes into `buf`, sets errno, and returns what the simulator
//! answered. Otherwise it calls libc's `recv` (files, pipes, the terminal).
//!
//! - [`state`]: who may use the simulator, the simulated descriptors and their placeholders,
//!   refusals, the channel.
//! - [`sockets`]: socket, socketpair, bind, listen, accept, accept4, connect, shutdown, close,
//!   close_range, closefrom, getsockname, getpeername, getsockopt, setsockopt, fcntl (and fcntl64), ioctl, dup, dup2,
//!   dup3.
//! - [`data`]: read, write, readv, writev, recv, send, recvfrom, sendto, recvmsg, sendmsg,
//!   __read_chk, __recv_chk, __recvfrom_chk.
//! - [`ready`]: poll, ppoll, __poll_chk, select, pselect, epoll_create, epoll_create1,
//!   epoll_ctl, epoll_wait, epoll_pwait, epoll_pwait2.
//! - [`clock`]: clock_gettime, gettimeofday, time, timespec_get, nanosleep, clock_nanosleep,
//!   sleep, usleep.
//! - [`names`]: getaddrinfo, getnameinfo.
//! - [`pid`]: getpid, getppid (fixed for the program), kill, sigqueue, tgkill, pidfd_open (a
//!   virtual pid reaches the real process).
//! - [`entropy`]: getrandom, getentropy, arc4random, arc4random_buf, arc4random_uniform; open, open64, openat, openat64, __open_2,
//!   __open64_2, __openat_2, __openat64_2 (a random device's reads are seeded).
//! - [`eventfd`]: eventfd (a simulated counter), eventfd_read, eventfd_write.
//! - [`exec`]: execve, execveat, execv, execvp, execvpe, posix_spawn, posix_spawnp (the shim's
//!   variables kept in the new program's environment, and by unsetenv, setenv, putenv and
//!   clearenv in the program's own; a static or 32-bit image, or a script run by one,
//!   refused: [`image`]).
//! - [`timers`]: timerfd_create, timerfd_settime, timerfd_gettime (a simulated timer); alarm,
//!   setitimer, timer_create, signalfd (refused for the program: they run on the real clock).
//! - [`stat`]: fstat, fstat64, __fxstat, __fxstat64, fstatat, fstatat64, __fxstatat,
//!   __fxstatat64, statx (a simulated socket is
//!   S_IFSOCK, an epoll, eventfd or timerfd Linux's anonymous inode).
//! - [`beyond`]: pread, pwrite, preadv, pwritev, __pread_chk, __pread64_chk (ESPIPE),
//!   preadv2, pwritev2 (and 64v2), sendfile, sendfile64, sendmmsg, recvmmsg, copy_file_range,
//!   __ppoll_chk, and the refused splice, tee and vmsplice.
//! - [`aliases`]: glibc's double-underscore names of the calls above (`__read`, `__connect`, …).
//! - [`parked`]: the fork server a program becomes when selectlab parks it at a call, so that
//!   each of a check's sessions starts as a fork of one start.
//! - [`stdio`]: fdopen of a simulated descriptor, fopen and fopen64 of a random device (streams
//!   whose I/O is the shim's).
//!
//! Written for 64-bit Linux with glibc (x86-64, AArch64): `time_t` and `long` are 64 bits, and
//! variadic integer arguments travel as registers do (see `fcntl`).
//!
//! Loaded in a process that selectlab did not start (no channel in the environment) it stays
//! out of the way: every call goes to libc.

mod aliases;
mod beyond;
mod channel;
mod clock;
mod data;
mod entropy;
mod eventfd;
mod exec;
mod image;
mod names;
mod parked;
mod pid;
mod ready;
mod real;
mod sockets;
mod stat;
mod state;
mod stdio;
mod timers;

use selectlab_wire::{
    CHANNEL_FD_ENV, CHANNEL_FD_MIN, CHANNEL_PATH_ENV, HELLO_STDIN_SIMULATED, Op, Request,
};

/// The environment variable that names the process running in the simulator; a process with
/// another pid is one of its children.
pub(crate) const OWNER_ENV: &str = "SELECTLAB_SHIM_OWNER";

/// Runs when the library is loaded, before the program's `main`: finds or opens the channel,
/// puts it out of the program's way, and says hello. Loaded by a child of the program, it
/// only notes that it is one.
extern "C" fn init() {
    let (Ok(path), fd) = (
        std::env::var(CHANNEL_PATH_ENV),
        std::env::var(CHANNEL_FD_ENV),
    ) else {
        return;
    };
    // SAFETY: getpid and gettid take no arguments and cannot fail.
    let (pid, tid) = unsafe {
        (
            libc::syscall(libc::SYS_getpid) as i32,
            libc::syscall(libc::SYS_gettid) as i32,
        )
    };
    let fd = fd.ok().and_then(|fd| fd.parse::<i32>().ok());
    match std::env::var(OWNER_ENV) {
        Ok(owner) if owner != pid.to_string() => {
            state::set_descendant(fd.unwrap_or(-1));
            exec::capture(&[]);
            return;
        }
        _ => {}
    }
    // The same process after an exec keeps the channel it opened and its descriptors; a new
    // program starts with its standard streams only, then opens the channel.
    let fd = match fd {
        Some(fd) => fd,
        None => {
            close_inherited();
            connect(&path)
        }
    };
    // SAFETY: constructors run before `main`, on the only thread, so nothing reads the
    // environment concurrently.
    unsafe {
        std::env::set_var(CHANNEL_FD_ENV, fd.to_string());
        std::env::set_var(OWNER_ENV, pid.to_string());
    }
    state::set_owner(pid, tid, fd);
    exec::capture(&[
        (CHANNEL_FD_ENV, fd.to_string()),
        (OWNER_ENV, pid.to_string()),
    ]);
    let hello = crate::channel::call(&Request::new(Op::Hello, &[pid.into(), tid.into()]));
    if hello.ret == HELLO_STDIN_SIMULATED {
        // Standard input is a simulated pipe: a placeholder takes descriptor 0's number.
        match state::reserve_at(0) {
            Ok(()) => state::adopt(0, state::Kind::Fifo),
            Err(e) => state::die(&format!("cannot place standard input (errno {e})")),
        }
    }
}

/// Closes every descriptor above the standard streams that the program inherited. Whatever
/// started selectlab may have left some open; kept, they would shift the program's descriptor
/// numbers from run to run (the lowest free one is Linux's rule), and the same seed would no
/// longer give the same transcript.
fn close_inherited() {
    // SAFETY: close_range takes integers only; nothing of the program is open yet (this runs
    // before `main`), and the dynamic loader keeps no descriptor open.
    let closed = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if closed != 0 {
        // Kernels before 5.9 lack close_range: close the usual range one by one.
        for fd in 3..1024 {
            state::close_real(fd);
        }
    }
}

/// Connects to selectlab's socket at `path` and moves the connection to a descriptor at or
/// above [`CHANNEL_FD_MIN`], so that the program's own descriptors start at 3 as without
/// selectlab. The channel stays open across exec.
pub(crate) fn connect(path: &str) -> i32 {
    let mut addr = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    if path.len() >= addr.sun_path.len() {
        state::die(&format!(
            "{CHANNEL_PATH_ENV} is longer than a socket path may be"
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(path.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: plain integer arguments.
    let sock =
        unsafe { libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_SEQPACKET, 0) } as i32;
    // SAFETY: `addr` is a valid sockaddr_un of the size given.
    let connected = sock >= 0
        && unsafe {
            libc::syscall(
                libc::SYS_connect,
                sock,
                &addr as *const libc::sockaddr_un,
                size_of::<libc::sockaddr_un>(),
            )
        } == 0;
    if !connected {
        state::die(&format!("cannot connect to selectlab at {path}"));
    }
    // SAFETY: F_DUPFD with an integer argument.
    let moved = unsafe { libc::syscall(libc::SYS_fcntl, sock, libc::F_DUPFD, CHANNEL_FD_MIN) };
    state::close_real(sock);
    if moved < 0 {
        state::die("cannot move the channel to selectlab out of the program's way");
    }
    moved as i32
}

/// Puts [`init`] in the ELF initialiser array, which the dynamic loader runs at load time.
#[used]
#[unsafe(link_section = ".init_array")]
static INIT: extern "C" fn() = init;
