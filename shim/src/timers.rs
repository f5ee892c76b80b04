//! Timers that fire on the real clock (a signal, or a readable descriptor): refused by name for
//! the program. Virtual time would never reach them, and real time would fire them at moments
//! no seed decides. A process the program starts keeps real timers, as it keeps real clocks.

use libc::{c_int, c_uint, clockid_t, itimerval, sigevent, sigset_t, timer_t};

use crate::real::real;
use crate::state::{self, Mode, mode, refuse};

/// Whether the caller is the program itself (not a forked child or a descendant).
fn the_program() -> bool {
    mode() == Mode::Owner && !state::forked_child()
}

fn refuse_timer(what: &str) -> ! {
    refuse(&format!(
        "{what} arms a timer on the real clock, which the simulator does not run (it keeps \
         virtual time: sleep, poll, select and epoll_wait timeouts)"
    ))
}

/// alarm(2): refused for the program when it arms one (`alarm(0)` only cancels).
#[unsafe(no_mangle)]
pub extern "C" fn alarm(seconds: c_uint) -> c_uint {
    if seconds > 0 && the_program() {
        refuse_timer("alarm");
    }
    // SAFETY: the argument is the caller's, passed on unchanged.
    unsafe { real!(alarm: fn(c_uint) -> c_uint)(seconds) }
}

/// setitimer(2): refused for the program when it arms a timer (a zero value only disarms).
///
/// # Safety
/// `new` must be null or valid, `old` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn setitimer(
    which: c_int,
    new: *const itimerval,
    old: *mut itimerval,
) -> c_int {
    // SAFETY: the caller's promise: `new` is null or valid.
    let arms =
        !new.is_null() && unsafe { (*new).it_value.tv_sec != 0 || (*new).it_value.tv_usec != 0 };
    if arms && the_program() {
        refuse_timer("setitimer");
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe {
        real!(setitimer: fn(c_int, *const itimerval, *mut itimerval) -> c_int)(which, new, old)
    }
}

/// timer_create(2): refused for the program.
///
/// # Safety
/// As for libc's timer_create.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timer_create(
    clock: clockid_t,
    event: *mut sigevent,
    id: *mut timer_t,
) -> c_int {
    if the_program() {
        refuse_timer("timer_create");
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe {
        real!(timer_create: fn(clockid_t, *mut sigevent, *mut timer_t) -> c_int)(clock, event, id)
    }
}

/// timerfd_create(2): refused for the program (a timerfd is not simulated).
#[unsafe(no_mangle)]
pub extern "C" fn timerfd_create(clock: clockid_t, flags: c_int) -> c_int {
    if the_program() {
        refuse_timer("timerfd_create");
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe { real!(timerfd_create: fn(clockid_t, c_int) -> c_int)(clock, flags) }
}

/// signalfd(2): refused for the program (signals are not simulated, and a signalfd beside
/// simulated sockets would be a real descriptor in a simulated wait).
///
/// # Safety
/// As for libc's signalfd.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn signalfd(fd: c_int, mask: *const sigset_t, flags: c_int) -> c_int {
    if the_program() {
        refuse("signalfd: signals are not simulated");
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe { real!(signalfd: fn(c_int, *const sigset_t, c_int) -> c_int)(fd, mask, flags) }
}
