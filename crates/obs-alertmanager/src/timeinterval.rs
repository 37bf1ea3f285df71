//! Time intervals (`time_intervals` / `mute_time_intervals` in alertmanager.yml), as
//! Alertmanager's `timeinterval` package reads and evaluates them.
//!
//! An interval holds optional lists of `times` (`HH:MM` to `HH:MM`, end exclusive, `24:00`
//! allowed), `weekdays` (`monday`, `monday:friday`), `days_of_month` (`1:5`, `-1` = last day),
//! `months` (`january:march`, `1:3`), `years` (`2024:2025`); an instant is in the interval when
//! every list present has a range containing it.
//!
//! `location` accepts only `UTC` (and the empty string): obs-appliance has no time zone
//! database, so `Local` and IANA names such as `Europe/Berlin` are refused with an error that
//! says so, instead of being silently evaluated in the wrong zone.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::time::{CivilTime, Timestamp};

/// One interval.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeInterval {
    /// Minute-of-day ranges.
    #[serde(default)]
    pub times: Option<Vec<TimeRange>>,
    /// Weekday ranges, 0 = Sunday.
    #[serde(default)]
    pub weekdays: Option<Vec<WeekdayRange>>,
    /// Day-of-month ranges; negative counts from the month's end.
    #[serde(default)]
    pub days_of_month: Option<Vec<DayOfMonthRange>>,
    /// Month ranges, 1 = January.
    #[serde(default)]
    pub months: Option<Vec<MonthRange>>,
    /// Year ranges.
    #[serde(default)]
    pub years: Option<Vec<YearRange>>,
    /// The zone the fields are read in (UTC only).
    #[serde(default)]
    pub location: Option<Location>,
}

/// A half-open minute-of-day range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimeRange {
    /// Minutes after midnight, inclusive.
    pub start_minute: u32,
    /// Minutes after midnight, exclusive (up to 1440).
    pub end_minute: u32,
}

/// An inclusive weekday range, 0 (Sunday) to 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeekdayRange {
    /// First day.
    pub begin: i32,
    /// Last day.
    pub end: i32,
}

/// An inclusive day-of-month range; `-1` is the last day of the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayOfMonthRange {
    /// First day.
    pub begin: i32,
    /// Last day.
    pub end: i32,
}

/// An inclusive month range, 1 to 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthRange {
    /// First month.
    pub begin: i32,
    /// Last month.
    pub end: i32,
}

/// An inclusive year range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YearRange {
    /// First year.
    pub begin: i32,
    /// Last year.
    pub end: i32,
}

/// The zone an interval is evaluated in. Only UTC is available (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// UTC.
    Utc,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl TimeInterval {
    /// Whether `at` falls in this interval (Go's `TimeInterval.ContainsTime`).
    pub fn contains(&self, at: Timestamp) -> bool {
        let civil: CivilTime = match self.location {
            None | Some(Location::Utc) => at.civil_utc(),
        };
        let minute_of_day = civil.hour * 60 + civil.minute;
        if let Some(times) = &self.times
            && !times
                .iter()
                .any(|range| minute_of_day >= range.start_minute && minute_of_day < range.end_minute)
        {
            return false;
        }
        if let Some(days) = &self.days_of_month {
            let days_in_month = civil.days_in_month as i32;
            let day = civil.day as i32;
            let in_range = days.iter().any(|range| {
                let begin = if range.begin < 0 {
                    days_in_month + range.begin + 1
                } else {
                    range.begin
                };
                let end = if range.end < 0 {
                    days_in_month + range.end + 1
                } else {
                    range.end
                };
                if begin > days_in_month {
                    return false;
                }
                let begin = begin.clamp(-days_in_month, days_in_month);
                let end = end.clamp(-days_in_month, days_in_month);
                day >= begin && day <= end
            });
            if !in_range {
                return false;
            }
        }
        let month = civil.month as i32;
        if let Some(months) = &self.months
            && !months
                .iter()
                .any(|range| month >= range.begin && month <= range.end)
        {
            return false;
        }
        let weekday = civil.weekday as i32;
        if let Some(weekdays) = &self.weekdays
            && !weekdays
                .iter()
                .any(|range| weekday >= range.begin && weekday <= range.end)
        {
            return false;
        }
        if let Some(years) = &self.years
            && !years
                .iter()
                .any(|range| civil.year >= range.begin && civil.year <= range.end)
        {
            return false;
        }
        true
    }
}

/// Whether `at` falls in any of `intervals` (a named interval's list).
pub fn any_contains(intervals: &[TimeInterval], at: Timestamp) -> bool {
    intervals.iter().any(|interval| interval.contains(at))
}

/// Parses `HH:MM` (`00:00` to `23:59`, or `24:00`) into minutes after midnight.
fn parse_clock(text: &str) -> Result<u32, String> {
    let invalid = || format!("couldn't parse timestamp {text}, invalid format");
    let bytes = text.as_bytes();
    if bytes.len() != 5
        || bytes[2] != b':'
        || !bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 2 || b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let hours = u32::from(bytes[0] - b'0') * 10 + u32::from(bytes[1] - b'0');
    let minutes = u32::from(bytes[3] - b'0') * 10 + u32::from(bytes[4] - b'0');
    if (hours == 24 && minutes == 0) || (hours < 24 && minutes < 60) {
        Ok(hours * 60 + minutes)
    } else {
        Err(invalid())
    }
}

/// Splits `a:b` or `a` (lowercased) and maps both ends with `member`.
fn parse_range(text: &str, member: impl Fn(&str) -> Result<i32, String>) -> Result<(i32, i32), String> {
    let lower = text.to_lowercase();
    match lower.split_once(':') {
        Some((begin, end)) => {
            if end.contains(':') {
                return Err(format!("couldn't parse range {lower}, invalid format"));
            }
            Ok((member(begin)?, member(end)?))
        }
        None => {
            let value = member(&lower)?;
            Ok((value, value))
        }
    }
}

fn parse_int(text: &str) -> Result<i32, String> {
    text.parse::<i32>()
        .map_err(|_| format!("strconv.Atoi: parsing {text:?}: invalid syntax"))
}

impl WeekdayRange {
    /// Parses `monday` or `monday:friday` (case-insensitive).
    pub fn parse(text: &str) -> Result<WeekdayRange, String> {
        let (begin, end) = parse_range(text, |name| {
            WEEKDAYS
                .iter()
                .position(|day| *day == name)
                .map(|index| index as i32)
                .ok_or_else(|| format!("{name} is not a valid weekday"))
        })?;
        if begin > end {
            return Err("start day cannot be before end day".to_owned());
        }
        Ok(WeekdayRange { begin, end })
    }
}

impl DayOfMonthRange {
    /// Parses `1`, `1:5`, `-3:-1`.
    pub fn parse(text: &str) -> Result<DayOfMonthRange, String> {
        let (begin, end) = parse_range(text, parse_int)?;
        for day in [begin, end] {
            if day == 0 || !(-31..=31).contains(&day) {
                return Err(format!("{day} is not a valid day of the month: out of range"));
            }
        }
        if begin < 0 && end > 0 {
            return Err("end day must be negative if start day is negative".to_owned());
        }
        let check_begin = if begin < 0 { 28 + begin } else { begin };
        let check_end = if end < 0 { 28 + end } else { end };
        if check_begin > check_end {
            return Err(format!("end day {end} is always before start day {begin}"));
        }
        Ok(DayOfMonthRange { begin, end })
    }
}

impl MonthRange {
    /// Parses `january`, `1:3`, `march:june`.
    pub fn parse(text: &str) -> Result<MonthRange, String> {
        let (begin, end) = parse_range(text, |name| {
            match MONTHS.iter().position(|month| *month == name) {
                Some(index) => Ok(index as i32 + 1),
                None => name
                    .parse::<i32>()
                    .map_err(|_| format!("{name} is not a valid month")),
            }
        })?;
        for month in [begin, end] {
            if !(1..=12).contains(&month) {
                return Err(format!("{month} is not a valid month: out of range"));
            }
        }
        if begin > end {
            return Err(format!(
                "end month {} is before start month {}",
                MONTHS[(end - 1) as usize],
                MONTHS[(begin - 1) as usize]
            ));
        }
        Ok(MonthRange { begin, end })
    }
}

impl YearRange {
    /// Parses `2024` or `2024:2026`.
    pub fn parse(text: &str) -> Result<YearRange, String> {
        let (begin, end) = parse_range(text, parse_int)?;
        if begin > end {
            return Err(format!("end year {end} is before start year {begin}"));
        }
        Ok(YearRange { begin, end })
    }
}

impl Location {
    /// Parses a location name; only `UTC` (and `""`, Go's UTC) is available.
    pub fn parse(text: &str) -> Result<Location, String> {
        match text {
            "" | "UTC" => Ok(Location::Utc),
            other => Err(format!(
                "time zone {other:?} is not supported: obs-appliance has no time zone database and evaluates time intervals in UTC only (\"Local\" and IANA names are refused); remove location or set it to UTC and shift the times"
            )),
        }
    }
}

/// Deserializes a YAML scalar (string or number) as text, then parses it.
struct ScalarVisitor<T>(fn(&str) -> Result<T, String>, &'static str);

impl<T> Visitor<'_> for ScalarVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        (self.0)(value).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        self.visit_str(&value.to_string())
    }
}

macro_rules! deserialize_scalar {
    ($type:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$type, D::Error> {
                deserializer.deserialize_any(ScalarVisitor(<$type>::parse, $expecting))
            }
        }
    };
}

deserialize_scalar!(WeekdayRange, "a weekday or weekday range such as monday:friday");
deserialize_scalar!(DayOfMonthRange, "a day of the month or range such as 1:5 or -1");
deserialize_scalar!(MonthRange, "a month or month range such as january:march");
deserialize_scalar!(YearRange, "a year or year range such as 2024:2025");
deserialize_scalar!(Location, "a location name such as UTC");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeRange {
    start_time: Option<String>,
    end_time: Option<String>,
}

impl<'de> Deserialize<'de> for TimeRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<TimeRange, D::Error> {
        let raw = RawTimeRange::deserialize(deserializer)?;
        let (Some(start), Some(end)) = (raw.start_time, raw.end_time) else {
            return Err(de::Error::custom("both start and end times must be provided"));
        };
        if start.is_empty() || end.is_empty() {
            return Err(de::Error::custom("both start and end times must be provided"));
        }
        let start_minute = parse_clock(&start).map_err(de::Error::custom)?;
        let end_minute = parse_clock(&end).map_err(de::Error::custom)?;
        if start_minute >= end_minute {
            return Err(de::Error::custom(
                "start time cannot be equal or greater than end time",
            ));
        }
        Ok(TimeRange {
            start_minute,
            end_minute,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(yaml: &str) -> TimeInterval {
        serde_yaml::from_str(yaml).unwrap_or_else(|err| panic!("{yaml}: {err}"))
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn business_hours() {
        let hours = interval(
            "times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']\nlocation: UTC",
        );
        // 2024-05-01 was a Wednesday.
        assert!(hours.contains(at("2024-05-01T09:00:00Z")));
        assert!(hours.contains(at("2024-05-01T16:59:59Z")));
        assert!(!hours.contains(at("2024-05-01T17:00:00Z")), "end is exclusive");
        assert!(!hours.contains(at("2024-05-04T10:00:00Z")), "saturday");
        let whole_day = interval("times: [{start_time: '00:00', end_time: '24:00'}]");
        assert!(whole_day.contains(at("2024-05-01T23:59:00Z")));
    }

    #[test]
    fn days_of_month_count_from_the_end_when_negative() {
        let last_days = interval("days_of_month: ['-3:-1']");
        assert!(
            last_days.contains(at("2024-02-27T00:00:00Z")),
            "leap February: 27..29"
        );
        assert!(!last_days.contains(at("2024-02-26T00:00:00Z")));
        assert!(last_days.contains(at("2023-04-30T12:00:00Z")));
        let first = interval("days_of_month: [1, '7:31']");
        assert!(first.contains(at("2023-04-01T00:00:00Z")));
        assert!(!first.contains(at("2023-04-02T00:00:00Z")));
        assert!(first.contains(at("2023-04-30T00:00:00Z")), "31 clamps to 30");
    }

    #[test]
    fn months_years_and_names() {
        let winter = interval("months: ['December', 'january:2']\nyears: ['2023:2024']");
        assert!(winter.contains(at("2024-02-10T00:00:00Z")));
        assert!(winter.contains(at("2023-12-10T00:00:00Z")));
        assert!(!winter.contains(at("2025-01-10T00:00:00Z")));
        assert!(!winter.contains(at("2024-03-01T00:00:00Z")));
        assert!(
            interval("{}").contains(at("2024-03-01T00:00:00Z")),
            "no fields: always"
        );
    }

    #[test]
    fn invalid_fields_are_refused_with_upstream_messages() {
        let cases = [
            (
                "weekdays: ['friday:monday']",
                "start day cannot be before end day",
            ),
            ("weekdays: ['funday']", "funday is not a valid weekday"),
            (
                "days_of_month: ['0']",
                "0 is not a valid day of the month: out of range",
            ),
            (
                "days_of_month: ['-1:5']",
                "end day must be negative if start day is negative",
            ),
            (
                "days_of_month: ['10:2']",
                "end day 2 is always before start day 10",
            ),
            (
                "months: ['march:january']",
                "end month january is before start month march",
            ),
            ("months: ['13']", "13 is not a valid month: out of range"),
            ("years: ['2025:2024']", "end year 2024 is before start year 2025"),
            (
                "times: [{start_time: '10:00'}]",
                "both start and end times must be provided",
            ),
            (
                "times: [{start_time: '10:00', end_time: '09:00'}]",
                "start time cannot be equal or greater",
            ),
            (
                "times: [{start_time: '1:00', end_time: '09:00'}]",
                "couldn't parse timestamp 1:00",
            ),
            (
                "times: [{start_time: '24:01', end_time: '09:00'}]",
                "couldn't parse timestamp 24:01",
            ),
            ("location: Europe/Berlin", "no time zone database"),
            ("location: Local", "not supported"),
            ("weekday: [monday]", "unknown field `weekday`"),
        ];
        for (yaml, message) in cases {
            let err = serde_yaml::from_str::<TimeInterval>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{yaml}: {err}");
        }
    }
}
