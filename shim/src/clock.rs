//! Time: the simulated program reads virtual time and sleeps in it. CPU-time clocks and the
//! clocks of child processes stay real.
//!
//! Virtual time moves only while the program waits, and every reply of selectlab's carries it
//! ([`selectlab_wire::Reply::now_ns`]). So between two calls each simulated clock reads that
//! time plus the clock's own offset, which the shim learns from the first read of that clock
//! it forwards; later reads are answered here, with no round trip. Every
//! [`LOCAL_CLOCK_READS_MAX`]th read in a row still goes to selectlab, with the count of those
//! answered here: a loop that only reads the clock meets selectlab's bounds on a program that
//! never waits.

use libc::{c_int, clockid_t, time_t, timespec, timeval};
use selectlab_wire::{Op, Request};

use crate::real::real;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use crate::state::{self, Mode, forward, mode};

/// Whether the simulator keeps `clock` (wall-clock and monotonic clocks, for the program
/// selectlab runs).
fn simulated(clock: clockid_t) -> bool {
    mode() == Mode::Owner
        && matches!(
            clock,
            libc::CLOCK_REALTIME
                | libc::CLOCK_MONOTONIC
                | libc::CLOCK_MONOTONIC_RAW
                | libc::CLOCK_REALTIME_COARSE
                | libc::CLOCK_MONOTONIC_COARSE
                | libc::CLOCK_BOOTTIME
        )
}

/// Most clock reads in a row the shim answers before it forwards one (with their count, so
/// selectlab's bounds on calls see them: a program that only reads clocks is still stopped).
const LOCAL_CLOCK_READS_MAX: i64 = 65_535;

/// Clock reads answered here since the last one forwarded.
static LOCAL_READS: AtomicI64 = AtomicI64::new(0);

/// Each simulated clock's offset from the replies' virtual time (by clock id; `i64::MIN`: not
/// learned yet). Linux's clock ids are small: 0 to 11.
static OFFSETS: [AtomicI64; 12] = [const { AtomicI64::new(i64::MIN) }; 12];

fn virtual_ns(clock: clockid_t) -> i64 {
    let slot = usize::try_from(clock).ok().and_then(|i| OFFSETS.get(i));
    let offset = slot.map(|s| s.load(Relaxed)).filter(|o| *o != i64::MIN);
    if let (Some(now), Some(offset)) = (crate::channel::virtual_now_ns(), offset)
        && LOCAL_READS.fetch_add(1, Relaxed) < LOCAL_CLOCK_READS_MAX
    {
        // Only the program's own thread reads the simulator's time, as when each read went
        // to selectlab: a second thread or a forked child is refused here too.
        state::owner_or_refuse("clock_gettime");
        return now.saturating_add(offset);
    }
    let reads = LOCAL_READS.swap(0, Relaxed).min(LOCAL_CLOCK_READS_MAX);
    let ns = forward(
        "clock_gettime",
        Request::new(Op::Clock, &[clock.into(), reads]),
        |_| {},
    );
    if let (Some(slot), Some(now)) = (slot, crate::channel::virtual_now_ns()) {
        slot.store(ns.saturating_sub(now), Relaxed);
    }
    ns
}

/// clock_gettime(2): virtual time on the simulated clocks.
///
/// # Safety
/// `ts` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn clock_gettime(clock: clockid_t, ts: *mut timespec) -> c_int {
    if !simulated(clock) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(clock_gettime: fn(clockid_t, *mut timespec) -> c_int)(clock, ts) };
    }
    let ns = virtual_ns(clock);
    // SAFETY: the caller's writable timespec.
    unsafe {
        (*ts).tv_sec = (ns / 1_000_000_000) as time_t;
        (*ts).tv_nsec = ns % 1_000_000_000;
    }
    0
}

/// gettimeofday(2): virtual wall-clock time. The obsolete time-zone argument is passed to libc.
///
/// # Safety
/// `tv` must be null or writable; `tz` as for libc.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn gettimeofday(tv: *mut timeval, tz: *mut libc::c_void) -> c_int {
    if !simulated(libc::CLOCK_REALTIME) || tv.is_null() {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(gettimeofday: fn(*mut timeval, *mut libc::c_void) -> c_int)(tv, tz)
        };
    }
    let ns = virtual_ns(libc::CLOCK_REALTIME);
    // SAFETY: the caller's writable timeval.
    unsafe {
        (*tv).tv_sec = (ns / 1_000_000_000) as time_t;
        (*tv).tv_usec = (ns % 1_000_000_000) / 1_000;
    }
    0
}

/// time(2): virtual wall-clock seconds.
///
/// # Safety
/// `out` must be null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn time(out: *mut time_t) -> time_t {
    if !simulated(libc::CLOCK_REALTIME) {
        // SAFETY: the argument is the caller's, passed on unchanged.
        return unsafe { real!(time: fn(*mut time_t) -> time_t)(out) };
    }
    let secs = (virtual_ns(libc::CLOCK_REALTIME) / 1_000_000_000) as time_t;
    if !out.is_null() {
        // SAFETY: the caller's writable time_t.
        unsafe { *out = secs };
    }
    secs
}

/// Sleeps in virtual time (the program's peers run meanwhile); 0 or an errno.
///
/// # Safety
/// `req` must be valid; `rem` null or writable.
unsafe fn virtual_sleep(
    clock: clockid_t,
    absolute: bool,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    // SAFETY: the caller's timespec.
    let t = unsafe { &*req };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return libc::EINVAL;
    }
    let ns = t
        .tv_sec
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec);
    let args = [clock.into(), i64::from(absolute), ns];
    state::owner_or_refuse("nanosleep");
    let reply = crate::channel::call(&Request::new(Op::Sleep, &args));
    if !rem.is_null() && !absolute {
        // SAFETY: the caller's writable timespec; a virtual sleep is never interrupted early.
        unsafe {
            *rem = timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }
        };
    }
    if reply.ret < 0 { reply.errno } else { 0 }
}

/// nanosleep(2): a virtual sleep on the monotonic clock.
///
/// # Safety
/// `req` must be valid; `rem` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanosleep(req: *const timespec, rem: *mut timespec) -> c_int {
    if !simulated(libc::CLOCK_MONOTONIC) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real!(nanosleep: fn(*const timespec, *mut timespec) -> c_int)(req, rem) };
    }
    // SAFETY: the caller's promises, passed on.
    match unsafe { virtual_sleep(libc::CLOCK_MONOTONIC, false, req, rem) } {
        0 => 0,
        e => {
            state::set_errno(e);
            -1
        }
    }
}

/// thrd_sleep(3), C11's sleep: [`nanosleep`] (glibc's calls the kernel past it), with C11's
/// results: 0, -1 when interrupted, another negative number on error.
///
/// # Safety
/// As for [`nanosleep`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn thrd_sleep(req: *const timespec, rem: *mut timespec) -> c_int {
    // SAFETY: the caller's promises, passed on.
    match unsafe { nanosleep(req, rem) } {
        0 => 0,
        _ if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => -1,
        _ => -2,
    }
}

/// clock_settime(2): refused for the program when it sets a clock the simulator keeps (the
/// simulated clocks cannot be set; Linux's would change).
///
/// # Safety
/// As for libc's clock_settime.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn clock_settime(clock: clockid_t, t: *const timespec) -> c_int {
    if simulated(clock) {
        state::refuse("clock_settime: setting a clock is not simulated");
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe { real!(clock_settime: fn(clockid_t, *const timespec) -> c_int)(clock, t) }
}

/// settimeofday(2): refused for the program when it sets the time (a time zone alone passes).
///
/// # Safety
/// As for libc's settimeofday.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn settimeofday(tv: *const timeval, tz: *const libc::c_void) -> c_int {
    if !tv.is_null() && simulated(libc::CLOCK_REALTIME) {
        state::refuse("settimeofday: setting the clock is not simulated");
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe { real!(settimeofday: fn(*const timeval, *const libc::c_void) -> c_int)(tv, tz) }
}

/// clock_nanosleep(2): a virtual sleep, relative or until an absolute time (TIMER_ABSTIME).
/// Returns the error number, as clock_nanosleep does.
///
/// # Safety
/// `req` must be valid; `rem` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn clock_nanosleep(
    clock: clockid_t,
    flags: c_int,
    req: *const timespec,
    rem: *mut timespec,
) -> c_int {
    if !simulated(clock) {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe {
            real!(clock_nanosleep: fn(clockid_t, c_int, *const timespec, *mut timespec) -> c_int)(
                clock, flags, req, rem,
            )
        };
    }
    // SAFETY: the caller's promises, passed on.
    unsafe { virtual_sleep(clock, flags & libc::TIMER_ABSTIME != 0, req, rem) }
}

/// A relative virtual sleep on the monotonic clock of `ns` nanoseconds (glibc's own `sleep`
/// and `usleep` reach the kernel through its internal nanosleep, which no preload can see).
fn sleep_ns(ns: u64) -> c_int {
    let t = timespec {
        tv_sec: (ns / 1_000_000_000) as time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `t` is ours and valid; no remainder is asked for.
    unsafe { virtual_sleep(libc::CLOCK_MONOTONIC, false, &t, std::ptr::null_mut()) }
}

/// sleep(3): a virtual sleep of whole seconds; never interrupted, so 0 seconds are left.
///
/// # Safety
/// Any argument is valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sleep(seconds: libc::c_uint) -> libc::c_uint {
    if !simulated(libc::CLOCK_MONOTONIC) {
        // SAFETY: the argument is the caller's, passed on unchanged.
        return unsafe { real!(sleep: fn(libc::c_uint) -> libc::c_uint)(seconds) };
    }
    match sleep_ns(u64::from(seconds) * 1_000_000_000) {
        0 => 0,
        _ => seconds,
    }
}

/// usleep(3): a virtual sleep of microseconds.
///
/// # Safety
/// Any argument is valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn usleep(usec: libc::useconds_t) -> c_int {
    if !simulated(libc::CLOCK_MONOTONIC) {
        // SAFETY: the argument is the caller's, passed on unchanged.
        return unsafe { real!(usleep: fn(libc::useconds_t) -> c_int)(usec) };
    }
    match sleep_ns(u64::from(usec) * 1_000) {
        0 => 0,
        e => {
            state::set_errno(e);
            -1
        }
    }
}

/// `TIME_UTC`, C11's one time base (glibc's <time.h>; the libc crate does not name it).
const TIME_UTC: c_int = 1;

/// timespec_get(3): TIME_UTC is the virtual wall clock (glibc reads it without calling
/// `clock_gettime` through its table). Any other base is unknown: 0, as glibc answers.
///
/// # Safety
/// `ts` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn timespec_get(ts: *mut timespec, base: c_int) -> c_int {
    if base != TIME_UTC {
        return 0;
    }
    // SAFETY: the caller's writable timespec, passed to our own clock_gettime.
    match unsafe { clock_gettime(libc::CLOCK_REALTIME, ts) } {
        0 => base,
        _ => 0,
    }
}
