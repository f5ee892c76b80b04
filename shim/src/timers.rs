//! Timers. A timerfd is simulated: it fires in virtual time, readable beside the program's
//! sockets. Timers that deliver a signal (alarm, setitimer, timer_create) are refused by name
//! for the program: virtual time would never reach them, and real time would fire them at
//! moments no seed decides. A process the program starts keeps real timers, as it keeps real
//! clocks.

use libc::{c_int, c_uint, clockid_t, itimerspec, itimerval, sigevent, sigset_t, timer_t};
use selectlab_wire::{Op, Request};

use crate::real::real;
use crate::sockets::create_simulated;
use crate::state::{self, Kind, forward, is_sim, refuse, set_errno, the_program};

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

/// timerfd_create(2): a simulated timer for the program, on virtual time (its clock and flags
/// are checked by selectlab). Read through `read` (see `data`), like a socket.
#[unsafe(no_mangle)]
pub extern "C" fn timerfd_create(clock: clockid_t, flags: c_int) -> c_int {
    if !state::simulated_process() {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(timerfd_create: fn(clockid_t, c_int) -> c_int)(clock, flags) };
    }
    create_simulated(
        "timerfd_create",
        Op::TimerFdCreate,
        &[clock.into(), flags.into()],
        Kind::AnonInode,
    )
}

/// timerfd_settime(2) on a simulated timer: selectlab checks the setting and returns the old.
///
/// # Safety
/// `new` must be null or valid, `old` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerfd_settime(
    fd: c_int,
    flags: c_int,
    new: *const itimerspec,
    old: *mut itimerspec,
) -> c_int {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(timerfd_settime: fn(c_int, c_int, *const itimerspec, *mut itimerspec) -> c_int)(
                fd, flags, new, old,
            )
        };
    }
    // SAFETY: the caller's promise: `new` is null or valid.
    let Some(new) = (unsafe { new.as_ref() }) else {
        set_errno(libc::EFAULT);
        return -1;
    };
    let args = [
        fd.into(),
        flags.into(),
        new.it_value.tv_sec,
        new.it_value.tv_nsec,
        new.it_interval.tv_sec,
        new.it_interval.tv_nsec,
    ];
    let req = Request::new(Op::TimerFdSettime, &args);
    // SAFETY: the caller's promise: `old` is null or writable.
    let ret = forward("timerfd_settime", req, |d| unsafe { put_setting(d, old) });
    ret as c_int
}

/// timerfd_gettime(2) on a simulated timer.
///
/// # Safety
/// `now` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timerfd_gettime(fd: c_int, now: *mut itimerspec) -> c_int {
    if !is_sim(fd) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(timerfd_gettime: fn(c_int, *mut itimerspec) -> c_int)(fd, now) };
    }
    if now.is_null() {
        set_errno(libc::EFAULT);
        return -1;
    }
    let req = Request::new(Op::TimerFdGettime, &[fd.into()]);
    // SAFETY: the caller's promise: `now` is writable.
    let ret = forward("timerfd_gettime", req, |d| unsafe { put_setting(d, now) });
    ret as c_int
}

/// Writes a reply's setting (see `ITIMERSPEC_BYTES`) to `out`, unless it is null.
///
/// # Safety
/// `out` must be null or writable.
unsafe fn put_setting(data: &[u8], out: *mut itimerspec) {
    let field = |i: usize| {
        data.get(i * 8..i * 8 + 8)
            .map_or(0, |b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    // SAFETY: the caller's promise: `out` is null or writable.
    if let Some(out) = unsafe { out.as_mut() } {
        out.it_value.tv_sec = field(0);
        out.it_value.tv_nsec = field(1);
        out.it_interval.tv_sec = field(2);
        out.it_interval.tv_nsec = field(3);
    }
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
