//! Millisecond timestamps and UTC calendar days.
//!
//! Partitions are UTC days: day `D` holds the data whose timestamps fall in
//! `[D 00:00:00.000, D+1 00:00:00.000)` UTC. Days are counted from the Unix epoch, and converted
//! to and from `YYYY-MM-DD` with the proleptic Gregorian calendar (Howard Hinnant's
//! `days_from_civil` algorithm), so no calendar crate is needed.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in one day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimestampMs(pub i64);

impl TimestampMs {
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-01-01T00:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        let day = Day::containing(self);
        let (year, month, date) = day.to_ymd();
        let in_day = self.0 - day.start().0;
        let (hours, minutes, seconds, millis) = (
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000,
        );
        format!("{year:04}-{month:02}-{date:02}T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
    }

    /// The current wall-clock time.
    pub fn now() -> TimestampMs {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        TimestampMs(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    /// This timestamp minus a duration, saturating.
    pub fn saturating_sub(self, duration: std::time::Duration) -> TimestampMs {
        let ms = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        TimestampMs(self.0.saturating_sub(ms))
    }
}

/// A UTC calendar day, counted in days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub i32);

impl Day {
    /// The day that contains `ts`.
    pub fn containing(ts: TimestampMs) -> Day {
        let days = ts.0.div_euclid(MS_PER_DAY);
        Day(i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX }))
    }

    /// The first millisecond of this day.
    pub fn start(self) -> TimestampMs {
        TimestampMs(i64::from(self.0) * MS_PER_DAY)
    }

    /// The first millisecond of the next day (exclusive end of this day).
    pub fn end_exclusive(self) -> TimestampMs {
        TimestampMs((i64::from(self.0) + 1) * MS_PER_DAY)
    }

    /// Builds a day from a civil date, or `None` if the date does not exist.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Day> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        let year_adj = i64::from(if month <= 2 { year - 1 } else { year });
        let era = year_adj.div_euclid(400);
        let year_of_era = year_adj - era * 400;
        let month_index = i64::from((month + 9) % 12);
        let day_of_year = (153 * month_index + 2) / 5 + i64::from(day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        i32::try_from(era * 146_097 + day_of_era - 719_468).ok().map(Day)
    }

    /// The civil date `(year, month, day)` of this day.
    pub fn to_ymd(self) -> (i32, u32, u32) {
        let z = i64::from(self.0) + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z - era * 146_097;
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
        let month = if month_index < 10 {
            month_index + 3
        } else {
            month_index - 9
        } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        (year as i32, month, day)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            if leap { 29 } else { 28 }
        }
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = self.to_ymd();
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

/// The error for a string that is not a `YYYY-MM-DD` date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a date of the form YYYY-MM-DD")]
pub struct ParseDayError(String);

impl FromStr for Day {
    type Err = ParseDayError;

    fn from_str(text: &str) -> Result<Day, ParseDayError> {
        let err = || ParseDayError(text.to_owned());
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(err());
        }
        let digits = |range: std::ops::Range<usize>| -> Result<u32, ParseDayError> {
            let part = &text[range];
            if !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        let year = digits(0..4)? as i32;
        let month = digits(5..7)?;
        let day = digits(8..10)?;
        Day::from_ymd(year, month, day).ok_or_else(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates_round_trip() {
        assert_eq!(Day(0).to_string(), "1970-01-01");
        assert_eq!("2026-11-25".parse::<Day>().unwrap().to_string(), "2026-11-25");
        assert_eq!("2000-02-29".parse::<Day>().unwrap().to_ymd(), (2000, 2, 29));
        assert!("2023-02-29".parse::<Day>().is_err());
        assert!("2023-13-01".parse::<Day>().is_err());
        assert!("2023-1-011".parse::<Day>().is_err());
        assert!("+023-01-01".parse::<Day>().is_err());
        for days in -719_000..2_900_000 {
            if days % 997 != 0 {
                continue;
            }
            let day = Day(days);
            assert_eq!(day.to_string().parse::<Day>().unwrap(), day, "{days}");
        }
    }

    #[test]
    fn day_bounds_contain_their_timestamps() {
        let ts = TimestampMs(1_764_028_800_123); // 2025-11-25T00:00:00.123Z
        let day = Day::containing(ts);
        assert_eq!(day.to_string(), "2025-11-25");
        assert!(day.start() <= ts && ts < day.end_exclusive());
        assert_eq!(Day::containing(TimestampMs(-1)).to_string(), "1969-12-31");
    }
}
