//! timerfd: an hrtimer on virtual time that counts its expirations, as fs/timerfd.c keeps it.
//!
//! When the timer fires it adds one expiration and wakes its readers (one edge), and a periodic
//! timer stops there: the periods that pass before the program looks are counted at its next
//! read, gettime or settime (hrtimer_forward_now), which restarts it. So an edge-triggered
//! watcher sees one edge per read, however many periods went by, as on Linux.

use std::time::Duration;

use nix::errno::Errno;

use crate::kernel::{Events, Fd, TimerClock, TimerSetting, Timespec};
use crate::sim::state::{Object, TimerFd};
use crate::sim::{Id, SIM_EPOCH_UNIX_SECS, Sim, Timer};

use super::Chosen;

/// Bytes a timerfd read moves: the expiration count as one native-endian u64.
const TICKS_BYTES: usize = 8;

/// The latest time an hrtimer can hold (KTIME_MAX nanoseconds): later settings are clamped.
const KTIME_MAX: Duration = Duration::from_nanos(i64::MAX as u64);

impl Sim {
    pub(in crate::sim) fn sim_timerfd(&mut self, clock: TimerClock) -> Result<Fd, Errno> {
        self.check_fds_available(1)?;
        let id = self.timerfds.insert(TimerFd {
            clock,
            expires: None,
            interval: Duration::ZERO,
            ticks: 0,
            expired: false,
            arming: 0,
        });
        self.open_fd(Object::TimerFd(id))
    }

    /// The timerfd behind a descriptor: EBADF for none, EINVAL for another kind of file.
    fn timerfd_id(&self, fd: Fd) -> Result<Id, Errno> {
        match self.file(fd)? {
            Object::TimerFd(t) => Ok(t),
            _ => Err(Errno::EINVAL),
        }
    }

    /// timerfd_settime: the timespecs are checked before the descriptor, as Linux does.
    pub(in crate::sim) fn sim_timerfd_settime(
        &mut self,
        fd: Fd,
        absolute: bool,
        new: TimerSetting,
    ) -> Result<TimerSetting, Errno> {
        let (Some(value), Some(interval)) = (new.value.duration(), new.interval.duration()) else {
            return Err(Errno::EINVAL);
        };
        let id = self.timerfd_id(fd)?;
        // The old setting is read after counting the periods a fired periodic timer missed
        // (without keeping them: the count is reset below).
        self.forward(id);
        let old = self.timer_setting(id);
        let now = self.now;
        let epoch = Duration::from_secs(SIM_EPOCH_UNIX_SECS);
        let t = self.timerfd_mut(id);
        t.ticks = 0;
        t.expired = false;
        t.interval = interval.min(KTIME_MAX);
        t.arming += 1;
        t.expires = (!value.is_zero()).then(|| {
            let at = match (absolute, t.clock) {
                (false, _) => now.saturating_add(value),
                (true, TimerClock::Realtime) => value.saturating_sub(epoch),
                (true, TimerClock::Monotonic | TimerClock::Boottime) => value,
            };
            at.min(KTIME_MAX)
        });
        self.start_timerfd(id);
        Ok(old)
    }

    /// timerfd_gettime: counts the periods a fired periodic timer missed, and restarts it.
    pub(in crate::sim) fn sim_timerfd_gettime(&mut self, fd: Fd) -> Result<TimerSetting, Errno> {
        let id = self.timerfd_id(fd)?;
        self.count_missed_periods(id);
        Ok(self.timer_setting(id))
    }

    /// A read: EINVAL under 8 bytes, EAGAIN with nothing expired, else the count of
    /// expirations (periods missed included), which starts again from zero.
    pub(super) fn timerfd_read(&mut self, id: Id, buf: &mut [u8]) -> Chosen<usize> {
        let Some(out) = buf.get_mut(..TICKS_BYTES) else {
            return (Err(Errno::EINVAL), None);
        };
        if self.timerfd(id).ticks == 0 {
            return (Err(Errno::EAGAIN), None);
        }
        self.count_missed_periods(id);
        let t = self.timerfd_mut(id);
        out.copy_from_slice(&t.ticks.to_ne_bytes());
        t.ticks = 0;
        (Ok(TICKS_BYTES), None)
    }

    /// Readable while expirations wait to be read; never writable (a write is EINVAL).
    pub(in crate::sim) fn timerfd_readiness(&self, id: Id) -> Events {
        if self.timerfd(id).ticks > 0 {
            Events::IN
        } else {
            Events::NONE
        }
    }

    /// The hrtimer fires: one more expiration and a wake-up, unless a later setting replaced
    /// the arming this firing was queued for, or the timerfd is closed.
    pub(in crate::sim) fn fire_timerfd(&mut self, id: Id, arming: u64) {
        let Some(t) = self.timerfds.get_mut(id) else {
            return;
        };
        if t.arming != arming {
            return;
        }
        t.ticks = t.ticks.saturating_add(1);
        t.expired = true;
        self.wake(Object::TimerFd(id), Events::IN);
    }

    /// Queues the timer's next firing (at once when its expiry has passed, as an hrtimer
    /// started in the past fires at the next interrupt).
    fn start_timerfd(&mut self, id: Id) {
        let now = self.now;
        let t = self.timerfd_mut(id);
        let Some(at) = t.expires else { return };
        t.arming += 1;
        let arming = t.arming;
        if at <= now {
            self.fire_timerfd(id, arming);
        } else {
            self.schedule(at - now, Timer::FdTimerExpiry(id, arming));
        }
    }

    /// A read's and gettime's view of a fired periodic timer: the periods it missed since
    /// it fired are added to its count, and it runs again.
    fn count_missed_periods(&mut self, id: Id) {
        if let Some(periods) = self.forward(id) {
            let t = self.timerfd_mut(id);
            // The firing itself was counted when it happened.
            t.ticks = t.ticks.saturating_add(periods - 1);
            t.expired = false;
            self.start_timerfd(id);
        }
    }

    /// hrtimer_forward_now for a fired periodic timer: moves its expiry past now and returns
    /// how many periods that took (at least one: the one that fired). None for a timer that
    /// has not fired, or fires once.
    fn forward(&mut self, id: Id) -> Option<u64> {
        let now = self.now;
        let t = self.timerfd_mut(id);
        let at = t.expires.filter(|at| *at <= now)?;
        if !t.expired || t.interval.is_zero() {
            return None;
        }
        let periods = (now - at).as_nanos() / t.interval.as_nanos() + 1;
        let next = at
            .as_nanos()
            .saturating_add(t.interval.as_nanos().saturating_mul(periods));
        let next = Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX));
        t.expires = Some(next.min(KTIME_MAX));
        Some(u64::try_from(periods).unwrap_or(u64::MAX))
    }

    /// What gettime reports: the time left (zero once passed or when disarmed), the period.
    fn timer_setting(&self, id: Id) -> TimerSetting {
        let t = self.timerfd(id);
        let left = t
            .expires
            .map_or(Duration::ZERO, |at| at.saturating_sub(self.now));
        TimerSetting {
            value: Timespec::of(left),
            interval: Timespec::of(t.interval),
        }
    }

    fn timerfd(&self, id: Id) -> &TimerFd {
        self.timerfds.get(id).expect("live timerfd")
    }

    fn timerfd_mut(&mut self, id: Id) -> &mut TimerFd {
        self.timerfds.get_mut(id).expect("live timerfd")
    }
}
