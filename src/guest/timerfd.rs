//! timerfd on the wire: the program's clock ids, flags and itimerspecs, read and written as
//! Linux's fs/timerfd.c checks them. The timer itself is the simulator's.

use nix::errno::Errno;
use nix::libc;
use selectlab_wire::ITIMERSPEC_BYTES;

use crate::kernel::{TimerClock, TimerSetting, Timespec};

/// What timerfd_create's arguments ask for.
pub enum Create {
    /// A timer on this clock; `nonblocking` is TFD_NONBLOCK.
    Timer {
        clock: TimerClock,
        nonblocking: bool,
    },
    /// An alarm clock: it needs CAP_WAKE_ALARM and wakes a suspended machine, which the
    /// simulator has no notion of.
    Alarm,
    /// Linux's answer to an unknown flag or clock.
    Error(Errno),
}

/// timerfd_create's `[clock_id, flags]`: flags first, then the clock, as Linux checks them.
pub fn create(clock: i64, flags: i64) -> Create {
    let known = i64::from(libc::TFD_NONBLOCK | libc::TFD_CLOEXEC);
    if flags & !known != 0 {
        return Create::Error(Errno::EINVAL);
    }
    let clock = match i32::try_from(clock).unwrap_or(-1) {
        libc::CLOCK_REALTIME => TimerClock::Realtime,
        libc::CLOCK_MONOTONIC => TimerClock::Monotonic,
        libc::CLOCK_BOOTTIME => TimerClock::Boottime,
        libc::CLOCK_REALTIME_ALARM | libc::CLOCK_BOOTTIME_ALARM => return Create::Alarm,
        _ => return Create::Error(Errno::EINVAL),
    };
    Create::Timer {
        clock,
        nonblocking: flags & i64::from(libc::TFD_NONBLOCK) != 0,
    }
}

/// timerfd_settime's `[fd, flags, value s, value ns, interval s, interval ns]`: whether the
/// value is absolute, and the setting; EINVAL for an unknown flag. TFD_TIMER_CANCEL_ON_SET
/// is accepted and never fires: nobody sets the simulator's wall clock.
pub fn settime(a: &[i64; 6]) -> Result<(bool, TimerSetting), Errno> {
    let known = i64::from(libc::TFD_TIMER_ABSTIME | libc::TFD_TIMER_CANCEL_ON_SET);
    if a[1] & !known != 0 {
        return Err(Errno::EINVAL);
    }
    let absolute = a[1] & i64::from(libc::TFD_TIMER_ABSTIME) != 0;
    let setting = TimerSetting {
        value: Timespec {
            secs: a[2],
            nanos: a[3],
        },
        interval: Timespec {
            secs: a[4],
            nanos: a[5],
        },
    };
    Ok((absolute, setting))
}

/// A setting as a reply carries it (see [`ITIMERSPEC_BYTES`]).
pub fn encode(set: TimerSetting) -> Vec<u8> {
    let mut out = Vec::with_capacity(ITIMERSPEC_BYTES);
    for n in [
        set.value.secs,
        set.value.nanos,
        set.interval.secs,
        set.interval.nanos,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out
}
