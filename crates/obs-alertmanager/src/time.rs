//! Instants with nanosecond precision, and their RFC 3339 forms as Go writes them.
//!
//! Alertmanager keeps `time.Time` values; the webhook payload carries them through Go's
//! `encoding/json`, which prints RFC 3339 with up to nine fractional digits and trailing zeros
//! trimmed (`2024-05-01T10:00:00.5Z`), and the zero time as `0001-01-01T00:00:00Z`. Here an
//! instant is UTC nanoseconds since the Unix epoch ([`Timestamp`]); "unset" is `None`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use obs_core::time::{Day, MS_PER_DAY};
use serde::{Deserialize, Serialize};

use crate::Error;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const NANOS_PER_DAY: i64 = MS_PER_DAY * 1_000_000;

/// What Go's `encoding/json` writes for the zero `time.Time` (an unset `endsAt`).
pub const GO_ZERO_TIME_JSON: &str = "0001-01-01T00:00:00Z";

/// An instant: nanoseconds since 1970-01-01T00:00:00Z (years 1678 to 2261).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

/// A calendar view of an instant in UTC, for time intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// The year.
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 (Sunday) to 6 (Saturday), as Go's `time.Weekday`.
    pub weekday: u32,
    /// Days in this month (28 to 31).
    pub days_in_month: u32,
}

impl Timestamp {
    /// From nanoseconds since the epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Timestamp {
        Timestamp(nanos)
    }

    /// From milliseconds since the epoch (saturating).
    pub const fn from_unix_millis(millis: i64) -> Timestamp {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// From whole seconds since the epoch (saturating).
    pub const fn from_unix_secs(secs: i64) -> Timestamp {
        Timestamp(secs.saturating_mul(NANOS_PER_SECOND))
    }

    /// Nanoseconds since the epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down (Go's `Time.Unix`).
    pub const fn unix_secs(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SECOND)
    }

    /// The wall clock now.
    pub fn now() -> Timestamp {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => Timestamp(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)),
            Err(before) => Timestamp(-i64::try_from(before.duration().as_nanos()).unwrap_or(i64::MAX)),
        }
    }

    /// This instant plus a duration, saturating.
    pub fn saturating_add(self, duration: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)),
        )
    }

    /// This instant minus a duration, saturating.
    pub fn saturating_sub(self, duration: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)),
        )
    }

    /// The duration from `earlier` to this instant, zero if `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        let nanos = self.0.saturating_sub(earlier.0);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
    }

    /// Parses RFC 3339 (`2024-05-01T10:00:00Z`, `2024-05-01T12:00:00.123456+02:00`), as Go's
    /// `time.RFC3339Nano` layout reads it. Offsets are applied: the result is UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, Error> {
        parse_rfc3339(text).ok_or_else(|| {
            Error::Time(format!(
                "{text:?} is not an RFC 3339 timestamp such as 2024-05-01T10:00:00Z between the years 1678 and 2261"
            ))
        })
    }

    /// RFC 3339 in UTC with up to nine fractional digits, trailing zeros trimmed: what Go's
    /// `time.Time.MarshalJSON` writes for a UTC time (without the JSON quotes).
    pub fn to_rfc3339_nano(self) -> String {
        let day = Day(i32::try_from(self.0.div_euclid(NANOS_PER_DAY)).unwrap_or(0));
        let in_day = self.0.rem_euclid(NANOS_PER_DAY);
        let (year, month, date) = day.to_ymd();
        let secs = in_day / NANOS_PER_SECOND;
        let frac = in_day % NANOS_PER_SECOND;
        let mut out = format!(
            "{year:04}-{month:02}-{date:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        if frac != 0 {
            let digits = format!("{frac:09}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        out.push('Z');
        out
    }

    /// The calendar fields of this instant in UTC.
    pub fn civil_utc(self) -> CivilTime {
        self.civil_with_offset(0)
    }

    /// The calendar fields of this instant shifted by `offset_secs` east of UTC.
    pub fn civil_with_offset(self, offset_secs: i64) -> CivilTime {
        let shifted = self
            .0
            .saturating_add(offset_secs.saturating_mul(NANOS_PER_SECOND));
        let days = shifted.div_euclid(NANOS_PER_DAY);
        let in_day = shifted.rem_euclid(NANOS_PER_DAY) / NANOS_PER_SECOND;
        let day = Day(i32::try_from(days).unwrap_or(0));
        let (year, month, date) = day.to_ymd();
        // 1970-01-01 was a Thursday (4).
        let weekday = (days + 4).rem_euclid(7) as u32;
        let next_month = if month == 12 {
            Day::from_ymd(year + 1, 1, 1)
        } else {
            Day::from_ymd(year, month + 1, 1)
        };
        let first = Day::from_ymd(year, month, 1);
        let days_in_month = match (first, next_month) {
            (Some(first), Some(next)) => (next.0 - first.0) as u32,
            _ => 30,
        };
        CivilTime {
            year,
            month,
            day: date,
            hour: (in_day / 3600) as u32,
            minute: (in_day / 60 % 60) as u32,
            weekday,
            days_in_month,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339_nano())
    }
}

/// Go's JSON form of an optional time: RFC 3339 with trimmed nanoseconds, or the zero time.
pub fn go_json_time(time: Option<Timestamp>) -> String {
    time.map_or_else(|| GO_ZERO_TIME_JSON.to_owned(), Timestamp::to_rfc3339_nano)
}

fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = bytes.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't') {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = u32::try_from(digits(5..7)?).ok()?;
    let date = u32::try_from(digits(8..10)?).ok()?;
    let hour = digits(11..13)?;
    let minute = digits(14..16)?;
    let second = digits(17..19)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut index = 19;
    let mut frac_nanos = 0i64;
    if bytes.get(index) == Some(&b'.') {
        index += 1;
        let start = index;
        while bytes.get(index).is_some_and(u8::is_ascii_digit) {
            index += 1;
        }
        let count = index - start;
        if count == 0 || count > 9 {
            return None;
        }
        frac_nanos = digits(start..index)? * 10i64.pow((9 - count) as u32);
    }
    let offset_secs = match bytes.get(index)? {
        b'Z' | b'z' if index + 1 == bytes.len() => 0,
        sign @ (b'+' | b'-') if index + 6 == bytes.len() && bytes[index + 3] == b':' => {
            let hours = digits(index + 1..index + 3)?;
            let minutes = digits(index + 4..index + 6)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let day = Day::from_ymd(year, month, date)?;
    let secs = i64::from(day.0) * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let nanos = secs.checked_mul(NANOS_PER_SECOND)?.checked_add(frac_nanos)?;
    Some(Timestamp(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339_nano() {
        let ts = Timestamp::parse_rfc3339("2024-05-01T10:00:00Z").unwrap();
        assert_eq!(ts.to_rfc3339_nano(), "2024-05-01T10:00:00Z");
        assert_eq!(ts.unix_secs(), 1_714_557_600);
        let ts = Timestamp::parse_rfc3339("2024-05-01T12:00:00.120+02:00").unwrap();
        assert_eq!(ts.to_rfc3339_nano(), "2024-05-01T10:00:00.12Z");
        let ts = Timestamp::parse_rfc3339("1969-12-31T23:59:59.000000001Z").unwrap();
        assert_eq!(ts.unix_nanos(), -999_999_999);
        assert_eq!(ts.to_rfc3339_nano(), "1969-12-31T23:59:59.000000001Z");
        assert_eq!(go_json_time(None), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn refuses_malformed_timestamps() {
        for text in [
            "",
            "2024-05-01",
            "2024-05-01 10:00:00Z",
            "2024-05-01T10:00:00",
            "2024-02-30T10:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T10:00:00.Z",
            "2024-05-01T10:00:00.1234567890Z",
            "2024-05-01T10:00:00+0200",
            "9999-05-01T10:00:00Z",
        ] {
            assert!(Timestamp::parse_rfc3339(text).is_err(), "{text}");
        }
    }

    #[test]
    fn civil_fields_and_weekday() {
        // 2024-02-29 was a Thursday.
        let ts = Timestamp::parse_rfc3339("2024-02-29T23:59:00Z").unwrap();
        let civil = ts.civil_utc();
        assert_eq!(
            (civil.year, civil.month, civil.day, civil.hour, civil.minute),
            (2024, 2, 29, 23, 59)
        );
        assert_eq!(civil.weekday, 4);
        assert_eq!(civil.days_in_month, 29);
        let sunday = Timestamp::parse_rfc3339("2023-12-31T00:00:00Z")
            .unwrap()
            .civil_utc();
        assert_eq!((sunday.weekday, sunday.days_in_month), (0, 31));
    }
}
