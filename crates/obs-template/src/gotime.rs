//! Go's `time.Time` (UTC only) and `time.Duration` as template [`Object`]s, for Prometheus'
//! `humanizeTimestamp`, `toTime`, `toDuration` and `now`.
//!
//! `Time.Format` supports Go's layout elements (`2006 01 02 15 04 05 Jan January Mon Monday MST
//! -0700 Z07:00 .000 .999 PM …`); every time here is UTC.

use crate::value::{Object, Value};

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const SECONDS_PER_DAY: i128 = 86_400;

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A Go `*time.Time` in UTC, with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoTime {
    unix_nanos: i128,
}

/// The calendar fields of a [`GoTime`].
struct Civil {
    year: i64,
    month: usize,
    day: i64,
    year_day: i64,
    weekday: usize,
    hour: i64,
    minute: i64,
    second: i64,
    nanosecond: i64,
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, usize, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as usize, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

impl GoTime {
    pub(crate) fn from_unix_nanos(unix_nanos: i128) -> GoTime {
        GoTime { unix_nanos }
    }

    fn civil(&self) -> Civil {
        let seconds = self.unix_nanos.div_euclid(NANOS_PER_SECOND);
        let nanosecond = self.unix_nanos.rem_euclid(NANOS_PER_SECOND) as i64;
        let days = seconds.div_euclid(SECONDS_PER_DAY) as i64;
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY) as i64;
        let (year, month, day) = civil_from_days(days);
        const CUMULATIVE_DAYS: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let mut year_day = CUMULATIVE_DAYS[month - 1] + day;
        if month > 2 && is_leap(year) {
            year_day += 1;
        }
        Civil {
            year,
            month,
            day,
            year_day,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as usize,
            hour: second_of_day / 3600,
            minute: second_of_day / 60 % 60,
            second: second_of_day % 60,
            nanosecond,
        }
    }

    /// Go's `Time.Format` for a UTC time.
    pub(crate) fn format(&self, layout: &str) -> String {
        let civil = self.civil();
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let Some((token, length)) = std_chunk(rest) else {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            };
            let element = &rest[..length];
            rest = &rest[length..];
            match token {
                Token::LongMonth => out.push_str(LONG_MONTHS[civil.month - 1]),
                Token::Month => out.push_str(&LONG_MONTHS[civil.month - 1][..3]),
                Token::NumMonth => out.push_str(&civil.month.to_string()),
                Token::ZeroMonth => out.push_str(&format!("{:02}", civil.month)),
                Token::LongWeekDay => out.push_str(LONG_DAYS[civil.weekday]),
                Token::WeekDay => out.push_str(&LONG_DAYS[civil.weekday][..3]),
                Token::Day => out.push_str(&civil.day.to_string()),
                Token::UnderDay => out.push_str(&format!("{:>2}", civil.day)),
                Token::ZeroDay => out.push_str(&format!("{:02}", civil.day)),
                Token::UnderYearDay => out.push_str(&format!("{:>3}", civil.year_day)),
                Token::ZeroYearDay => out.push_str(&format!("{:03}", civil.year_day)),
                Token::Hour => out.push_str(&format!("{:02}", civil.hour)),
                Token::Hour12 | Token::ZeroHour12 => {
                    let hour12 = match civil.hour % 12 {
                        0 => 12,
                        hour => hour,
                    };
                    if token == Token::Hour12 {
                        out.push_str(&hour12.to_string());
                    } else {
                        out.push_str(&format!("{hour12:02}"));
                    }
                }
                Token::Minute => out.push_str(&civil.minute.to_string()),
                Token::ZeroMinute => out.push_str(&format!("{:02}", civil.minute)),
                Token::Second => out.push_str(&civil.second.to_string()),
                Token::ZeroSecond => out.push_str(&format!("{:02}", civil.second)),
                Token::LongYear => out.push_str(&format!("{:04}", civil.year)),
                Token::Year => out.push_str(&format!("{:02}", civil.year.rem_euclid(100))),
                Token::PM => out.push_str(if civil.hour >= 12 { "PM" } else { "AM" }),
                Token::Pm => out.push_str(if civil.hour >= 12 { "pm" } else { "am" }),
                Token::Tz => out.push_str("UTC"),
                Token::IsoOffset => out.push('Z'),
                Token::NumOffset => {
                    // "-0700" → "+0000", "-07:00" → "+00:00", …: the layout's digits as zeros.
                    out.push('+');
                    out.push_str(&element[1..].replace('7', "0"));
                }
                Token::FracSecond { digits, trim } => {
                    let separator = &element[..1];
                    let fraction = format!("{:09}", civil.nanosecond);
                    let mut fraction = fraction[..digits].to_owned();
                    if trim {
                        while fraction.ends_with('0') {
                            fraction.pop();
                        }
                        if !fraction.is_empty() {
                            out.push_str(separator);
                            out.push_str(&fraction);
                        }
                    } else {
                        out.push_str(separator);
                        out.push_str(&fraction);
                    }
                }
            }
        }
        out
    }

    fn unix_seconds(&self) -> i64 {
        self.unix_nanos.div_euclid(NANOS_PER_SECOND) as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    /// `Z07:00` and friends: `Z` for UTC.
    IsoOffset,
    /// `-0700` and friends.
    NumOffset,
    FracSecond {
        digits: usize,
        trim: bool,
    },
}

/// The layout element at the start of `s`, if any, and its length (Go's `nextStdChunk`).
fn std_chunk(s: &str) -> Option<(Token, usize)> {
    let starts = |prefix: &str| s.starts_with(prefix);
    let after_is_lower = |n: usize| s.as_bytes().get(n).is_some_and(|byte| byte.is_ascii_lowercase());
    let first = *s.as_bytes().first()?;
    match first {
        b'J' if starts("January") => Some((Token::LongMonth, 7)),
        b'J' if starts("Jan") && !after_is_lower(3) => Some((Token::Month, 3)),
        b'M' if starts("Monday") => Some((Token::LongWeekDay, 6)),
        b'M' if starts("Mon") && !after_is_lower(3) => Some((Token::WeekDay, 3)),
        b'M' if starts("MST") => Some((Token::Tz, 3)),
        b'0' if starts("002") => Some((Token::ZeroYearDay, 3)),
        b'0' => match s.as_bytes().get(1) {
            Some(b'1') => Some((Token::ZeroMonth, 2)),
            Some(b'2') => Some((Token::ZeroDay, 2)),
            Some(b'3') => Some((Token::ZeroHour12, 2)),
            Some(b'4') => Some((Token::ZeroMinute, 2)),
            Some(b'5') => Some((Token::ZeroSecond, 2)),
            Some(b'6') => Some((Token::Year, 2)),
            _ => None,
        },
        b'1' if starts("15") => Some((Token::Hour, 2)),
        b'1' => Some((Token::NumMonth, 1)),
        b'2' if starts("2006") => Some((Token::LongYear, 4)),
        b'2' => Some((Token::Day, 1)),
        b'_' if starts("__2") => Some((Token::UnderYearDay, 3)),
        b'_' if starts("_2") && !starts("_2006") => Some((Token::UnderDay, 2)),
        b'3' => Some((Token::Hour12, 1)),
        b'4' => Some((Token::Minute, 1)),
        b'5' => Some((Token::Second, 1)),
        b'P' if starts("PM") => Some((Token::PM, 2)),
        b'p' if starts("pm") => Some((Token::Pm, 2)),
        b'-' => ["-07:00:00", "-070000", "-07:00", "-0700", "-07"]
            .iter()
            .find(|element| starts(element))
            .map(|element| (Token::NumOffset, element.len())),
        b'Z' => ["Z07:00:00", "Z070000", "Z07:00", "Z0700", "Z07"]
            .iter()
            .find(|element| starts(element))
            .map(|element| (Token::IsoOffset, element.len())),
        b'.' | b',' => {
            let bytes = s.as_bytes();
            let digit = *bytes.get(1)?;
            if digit != b'0' && digit != b'9' {
                return None;
            }
            let mut end = 1;
            while bytes.get(end) == Some(&digit) {
                end += 1;
            }
            if bytes.get(end).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            let digits = (end - 1).min(9);
            Some((
                Token::FracSecond {
                    digits,
                    trim: digit == b'9',
                },
                end,
            ))
        }
        _ => None,
    }
}

impl Object for GoTime {
    fn type_name(&self) -> &str {
        "*time.Time"
    }

    fn has_method(&self, name: &str) -> bool {
        matches!(
            name,
            "Format"
                | "String"
                | "Unix"
                | "UnixMilli"
                | "UnixNano"
                | "UTC"
                | "Add"
                | "Year"
                | "Month"
                | "Day"
                | "Hour"
                | "Minute"
                | "Second"
                | "Nanosecond"
                | "YearDay"
                | "Weekday"
        )
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let want = |count: usize| -> Result<(), String> {
            if args.len() == count {
                Ok(())
            } else {
                Err(format!(
                    "wrong number of args for {name}: want {count} got {}",
                    args.len()
                ))
            }
        };
        let civil = self.civil();
        let int = |value: i64| Ok(Value::Int(value));
        Some(
            want(usize::from(matches!(name, "Format" | "Add"))).and_then(|()| match name {
                "Format" => match &args[0] {
                    Value::String(layout) => Ok(Value::String(self.format(layout))),
                    other => Err(format!(
                        "wrong type for value; expected string; got {}",
                        other.type_name()
                    )),
                },
                "String" => Ok(Value::String(self.display())),
                "Unix" => int(self.unix_seconds()),
                "UnixMilli" => int(self.unix_nanos.div_euclid(1_000_000) as i64),
                "UnixNano" => int(self.unix_nanos as i64),
                "UTC" => Ok(Value::object(*self)),
                "Add" => {
                    let nanos = match &args[0] {
                        Value::Int(nanos) => i128::from(*nanos),
                        Value::Object(object) if object.type_name() == "*time.Duration" => {
                            match object.method("Nanoseconds", &[]) {
                                Some(Ok(Value::Int(nanos))) => i128::from(nanos),
                                _ => 0,
                            }
                        }
                        other => {
                            return Err(format!(
                                "wrong type for value; expected time.Duration; got {}",
                                other.type_name()
                            ));
                        }
                    };
                    Ok(Value::object(GoTime::from_unix_nanos(self.unix_nanos + nanos)))
                }
                "Year" => int(civil.year),
                "Month" => Ok(Value::String(LONG_MONTHS[civil.month - 1].to_owned())),
                "Day" => int(civil.day),
                "Hour" => int(civil.hour),
                "Minute" => int(civil.minute),
                "Second" => int(civil.second),
                "Nanosecond" => int(civil.nanosecond),
                "YearDay" => int(civil.year_day),
                _ => Ok(Value::String(LONG_DAYS[civil.weekday].to_owned())),
            }),
        )
    }

    /// Go's `Time.String`: `2006-01-02 15:04:05.999999999 -0700 MST`.
    fn display(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }
}

/// A Go `*time.Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoDuration {
    nanos: i64,
}

impl GoDuration {
    pub(crate) fn from_nanos(nanos: i64) -> GoDuration {
        GoDuration { nanos }
    }

    pub(crate) fn seconds(&self) -> f64 {
        let whole = self.nanos / 1_000_000_000;
        let fraction = self.nanos % 1_000_000_000;
        whole as f64 + fraction as f64 / 1e9
    }
}

/// Writes `value`'s last `precision` decimal digits as a fraction without trailing zeros (Go's
/// `fmtFrac`), returning what is left of `value`.
fn push_fraction(out: &mut Vec<u8>, value: u64, precision: u32) -> u64 {
    let mut value = value;
    let mut digits = Vec::new();
    let mut printing = false;
    for _ in 0..precision {
        let digit = value % 10;
        printing = printing || digit != 0;
        if printing {
            digits.push(b'0' + digit as u8);
        }
        value /= 10;
    }
    if printing {
        digits.push(b'.');
    }
    out.extend(digits);
    value
}

/// Go's `Duration.String`: `1h2m3.5s`, `100ms`, `1.5µs`, `0s`.
fn duration_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let mut magnitude = nanos.unsigned_abs();
    // Built backwards, like Go.
    let mut reversed: Vec<u8> = Vec::new();
    if magnitude < 1_000_000_000 {
        let (precision, unit): (u32, &str) = if magnitude < 1_000 {
            (0, "ns")
        } else if magnitude < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        reversed.extend(unit.bytes().rev());
        magnitude = push_fraction(&mut reversed, magnitude, precision);
        reversed.extend(magnitude.to_string().bytes().rev());
    } else {
        reversed.push(b's');
        magnitude = push_fraction(&mut reversed, magnitude, 9);
        reversed.extend((magnitude % 60).to_string().bytes().rev());
        magnitude /= 60;
        if magnitude > 0 {
            reversed.push(b'm');
            reversed.extend((magnitude % 60).to_string().bytes().rev());
            magnitude /= 60;
            if magnitude > 0 {
                reversed.push(b'h');
                reversed.extend(magnitude.to_string().bytes().rev());
            }
        }
    }
    if nanos < 0 {
        reversed.push(b'-');
    }
    reversed.reverse();
    String::from_utf8_lossy(&reversed).into_owned()
}

impl Object for GoDuration {
    fn type_name(&self) -> &str {
        "*time.Duration"
    }

    fn has_method(&self, name: &str) -> bool {
        matches!(
            name,
            "String" | "Seconds" | "Minutes" | "Hours" | "Milliseconds" | "Microseconds" | "Nanoseconds"
        )
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if !args.is_empty() {
            return Some(Err(format!(
                "wrong number of args for {name}: want 0 got {}",
                args.len()
            )));
        }
        Some(Ok(match name {
            "String" => Value::String(self.display()),
            "Seconds" => Value::Float(self.seconds()),
            "Minutes" => Value::Float(self.seconds() / 60.0),
            "Hours" => Value::Float(self.seconds() / 3600.0),
            "Milliseconds" => Value::Int(self.nanos / 1_000_000),
            "Microseconds" => Value::Int(self.nanos / 1_000),
            "Nanoseconds" => Value::Int(self.nanos),
            _ => return None,
        }))
    }

    fn display(&self) -> String {
        duration_string(self.nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_string_and_format_match_go() {
        let time = GoTime::from_unix_nanos(1_435_065_584_128_000_000);
        assert_eq!(time.display(), "2015-06-23 13:19:44.128 +0000 UTC");
        assert_eq!(time.format("2006"), "2015");
        assert_eq!(time.format("Mon Jan 2 15:04:05 2006"), "Tue Jun 23 13:19:44 2015");
        assert_eq!(
            time.format("2006-01-02T15:04:05.000Z07:00"),
            "2015-06-23T13:19:44.128Z"
        );
        assert_eq!(
            time.format("Monday, 02-Jan-06 03:04:05 PM -0700"),
            "Tuesday, 23-Jun-15 01:19:44 PM +0000"
        );
        assert_eq!(
            GoTime::from_unix_nanos(-1_000_000_000).display(),
            "1969-12-31 23:59:59 +0000 UTC"
        );
        assert_eq!(
            GoTime::from_unix_nanos(9_223_372_036_000_000_000).display(),
            "2262-04-11 23:47:16 +0000 UTC"
        );
    }

    #[test]
    fn duration_string_matches_go() {
        let cases: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (100_000_000, "100ms"),
            (1_500_000_000, "1.5s"),
            (1_800_000_000_000, "30m0s"),
            (3_600_000_000_000, "1h0m0s"),
            (-3_723_500_000_000, "-1h2m3.5s"),
        ];
        for (nanos, expected) in cases {
            assert_eq!(duration_string(*nanos), *expected);
        }
    }
}
