//! Process ids. The program's own pid and its parent's are fixed numbers, so that the same seed
//! gives the same run whatever pids the kernel handed out (a server that names itself, or seeds
//! a generator, with its pid). They lie above Linux's PID_MAX_LIMIT, so they never stand for a
//! real process: a signal the program sends to either reaches the real process behind it.
//! Children, and the program before selectlab greets it, see the real ids.

use libc::{c_int, c_uint, pid_t, sigval};

use crate::real::real;
use crate::state::the_program;

/// Linux's highest possible pid plus one (include/linux/threads.h: 4 Mi on 64-bit).
const PID_MAX_LIMIT: pid_t = 4 * 1024 * 1024;
/// The program's pid, as it sees it.
pub(crate) const VIRTUAL_PID: pid_t = PID_MAX_LIMIT + 2;
/// Its parent's (selectlab's), as it sees it.
pub(crate) const VIRTUAL_PPID: pid_t = PID_MAX_LIMIT + 1;

fn real_pid() -> pid_t {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_getpid) as pid_t }
}

fn real_ppid() -> pid_t {
    // SAFETY: getppid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_getppid) as pid_t }
}

/// The real pid behind `pid` when the program names itself or its parent.
fn real_target(pid: pid_t) -> pid_t {
    match pid {
        VIRTUAL_PID if the_program() => real_pid(),
        VIRTUAL_PPID if the_program() => real_ppid(),
        _ => pid,
    }
}

/// getpid(2).
#[unsafe(no_mangle)]
pub extern "C" fn getpid() -> pid_t {
    if the_program() {
        VIRTUAL_PID
    } else {
        real_pid()
    }
}

/// getppid(2).
#[unsafe(no_mangle)]
pub extern "C" fn getppid() -> pid_t {
    if the_program() {
        VIRTUAL_PPID
    } else {
        real_ppid()
    }
}

/// kill(2), to the real process behind a virtual pid.
#[unsafe(no_mangle)]
pub extern "C" fn kill(pid: pid_t, sig: c_int) -> c_int {
    // SAFETY: the arguments are the caller's, the pid translated.
    unsafe { real!(kill: fn(pid_t, c_int) -> c_int)(real_target(pid), sig) }
}

/// sigqueue(3), to the real process behind a virtual pid.
#[unsafe(no_mangle)]
pub extern "C" fn sigqueue(pid: pid_t, sig: c_int, value: sigval) -> c_int {
    // SAFETY: the arguments are the caller's, the pid translated.
    unsafe { real!(sigqueue: fn(pid_t, c_int, sigval) -> c_int)(real_target(pid), sig, value) }
}

/// tgkill(2), to the real thread group behind a virtual pid.
#[unsafe(no_mangle)]
pub extern "C" fn tgkill(tgid: pid_t, tid: pid_t, sig: c_int) -> c_int {
    // SAFETY: the arguments are the caller's, the pid translated.
    unsafe { real!(tgkill: fn(pid_t, pid_t, c_int) -> c_int)(real_target(tgid), tid, sig) }
}

/// pidfd_open(2), for the real process behind a virtual pid.
#[unsafe(no_mangle)]
pub extern "C" fn pidfd_open(pid: pid_t, flags: c_uint) -> c_int {
    // SAFETY: the arguments are the caller's, the pid translated.
    unsafe { real!(pidfd_open: fn(pid_t, c_uint) -> c_int)(real_target(pid), flags) }
}
