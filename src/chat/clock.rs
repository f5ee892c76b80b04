//! Wall-clock text for chat lines, `YYYY-mm-dd HH:MM:SS`, as the tutorial's `time.strftime` prints
//! it: in the kernel's local time zone ([`Kernel::time_zone`](crate::kernel::Kernel::time_zone)).
//! On the real kernel that is the system's (`TZ` respected); in the simulator it is UTC, and
//! the clock is virtual time from [`SIM_EPOCH_UNIX_SECS`](crate::sim::SIM_EPOCH_UNIX_SECS), so
//! transcripts are deterministic.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// A clock face in one time zone. It remembers the last second it showed: a room stamps many
/// lines within one second, and the text of a second never changes.
#[derive(Debug, Clone)]
pub struct WallClock {
    zone: TimeZone,
    last: Option<(u64, String)>,
}

impl WallClock {
    /// A clock showing time in `zone`.
    pub fn new(zone: TimeZone) -> WallClock {
        WallClock { zone, last: None }
    }

    /// `YYYY-mm-dd HH:MM:SS` for `unix_secs` seconds since the Unix epoch, in this zone.
    pub fn stamp(&mut self, unix_secs: u64) -> String {
        match &self.last {
            Some((secs, text)) if *secs == unix_secs => text.clone(),
            _ => {
                let text = format(unix_secs, &self.zone);
                self.last = Some((unix_secs, text.clone()));
                text
            }
        }
    }
}

/// `YYYY-mm-dd HH:MM:SS` for `unix_secs` in `zone`; past jiff's range (late in the year 9999)
/// it shows jiff's last instant, so no clock value can fail.
pub fn format(unix_secs: u64, zone: &TimeZone) -> String {
    let at = i64::try_from(unix_secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::MAX);
    zone.to_datetime(at)
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_in_utc() {
        let mut clock = WallClock::new(TimeZone::UTC);
        assert_eq!(clock.stamp(0), "1970-01-01 00:00:00");
        assert_eq!(
            clock.stamp(crate::sim::SIM_EPOCH_UNIX_SECS),
            "2026-01-01 00:00:00"
        );
        assert_eq!(clock.stamp(951_782_400 + 86_399), "2000-02-29 23:59:59");
        assert_eq!(clock.stamp(1_798_761_599), "2026-12-31 23:59:59");
        assert_eq!(clock.stamp(u64::MAX), "9999-12-30 22:00:00");
    }

    #[test]
    fn a_zone_shifts_the_face_and_the_cache_follows_the_second() {
        let mut clock = WallClock::new(TimeZone::fixed(jiff::tz::offset(8)));
        assert_eq!(clock.stamp(0), "1970-01-01 08:00:00");
        assert_eq!(clock.stamp(0), "1970-01-01 08:00:00");
        assert_eq!(clock.stamp(59), "1970-01-01 08:00:59");
    }
}
