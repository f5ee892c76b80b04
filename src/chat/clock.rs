//! Wall-clock text for chat lines, `YYYY-mm-dd HH:MM:SS` (UTC), computed without a time zone
//! database. In the simulator the clock is virtual time from
//! [`SIM_EPOCH_UNIX_SECS`](crate::sim::SIM_EPOCH_UNIX_SECS).

/// `YYYY-mm-dd HH:MM:SS` for seconds since the Unix epoch (UTC, proleptic Gregorian).
pub fn format_unix_secs(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_unix_secs(0), "1970-01-01 00:00:00");
        assert_eq!(
            format_unix_secs(crate::sim::SIM_EPOCH_UNIX_SECS),
            "2026-01-01 00:00:00"
        );
        assert_eq!(
            format_unix_secs(951_782_400 + 86_399),
            "2000-02-29 23:59:59"
        );
        assert_eq!(format_unix_secs(1_798_761_599), "2026-12-31 23:59:59");
    }

    /// The slow way: whole years, then whole months.
    fn reference(mut days: i64) -> (i64, u32, u32) {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let mut year = 1970;
        while days >= if leap(year) { 366 } else { 365 } {
            days -= if leap(year) { 366 } else { 365 };
            year += 1;
        }
        let lengths = [
            31,
            if leap(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut month = 0;
        while days >= lengths[month] {
            days -= lengths[month];
            month += 1;
        }
        (year, month as u32 + 1, days as u32 + 1)
    }

    /// Found by cargo-mutants: century and 400-year boundaries (2100, 2400) were untested.
    #[test]
    fn every_sampled_day_to_2517_matches_the_slow_way() {
        let day = |y: i64, m: u32, d: u32| -> i64 {
            (0..200_000)
                .find(|&n| reference(n) == (y, m, d))
                .expect("in range")
        };
        let mut days: Vec<i64> = (0..200_000).step_by(37).collect();
        for (y, m, d) in [
            (2100, 2, 28),
            (2100, 3, 1),
            (2400, 2, 29),
            (2400, 3, 1),
            (2399, 12, 31),
        ] {
            let n = day(y, m, d);
            days.extend([n - 1, n, n + 1]);
        }
        for n in days {
            assert_eq!(civil_from_days(n), reference(n), "day {n}");
        }
    }
}
