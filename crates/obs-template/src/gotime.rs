//! Go's `time.Time` and `time.Duration` as template [`Object`]s: [`GoTime`] formats with Go's
//! layouts (`2006-01-02T15:04:05Z07:00`) and parses with them, as `Time.Format` and
//! `time.Parse` do.
//!
//! Prometheus' `humanizeTimestamp`, `toTime`, `toDuration` and `now` use them here; any other
//! template dialect with Go times (Loki's `date`, `toDate`, `unixToTime`, …) uses [`GoTime`] as
//! Go's `time.Time` ([`TIME_TYPE`]).
//!
//! Layout elements: `2006 06 01 1 Jan January 02 2 _2 002 __2 15 03 3 04 4 05 5 PM pm Mon
//! Monday MST`, the offsets `-0700 -07:00 -07 -070000 -07:00:00` and their `Z` forms, and
//! fractions of a second to nanoseconds (`.000` fixed, `.999` without trailing zeros, or with
//! a `,`). Times are instants shown in UTC: there is no time-zone database, so `Local` and
//! every named zone read as UTC, which is what Go does when a zone cannot be loaded. Numeric
//! offsets in parsed text (`+02:00`) are honoured.

use std::ops::RangeInclusive;

use crate::value::{Object, Value};

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Seconds from 0001-01-01 to 1970-01-01 (Go's zero time is year 1).
const ZERO_TIME_UNIX_SECONDS: i64 = -62_135_596_800;

/// Go's `Time.String` layout.
const STRING_LAYOUT: &str = "2006-01-02 15:04:05.999999999 -0700 MST";

/// The Go type name of a [`GoTime`] template value, as error messages and `%T` show it.
pub const TIME_TYPE: &str = "time.Time";

/// The Go type name of the time Prometheus' `toTime` returns.
const TIME_POINTER_TYPE: &str = "*time.Time";

const MONTHS: [&str; 12] = [
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
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// A Go `time.Time`: an instant with nanosecond precision, shown in UTC.
///
/// As a template value it is Go's `time.Time` ([`TIME_TYPE`]) with the methods `Format`,
/// `String`, `Add`, `Unix`, `UnixMilli`, `UnixMicro`, `UnixNano`, `UTC`, `Local`, `IsZero`,
/// `Year`, `Month`, `Day`, `Hour`, `Minute`, `Second`, `Nanosecond`, `YearDay` and `Weekday`.
///
/// ```
/// use obs_template::gotime::GoTime;
///
/// let time = GoTime::parse("2006-01-02T15:04:05Z07:00", "2021-11-02T02:00:00+02:00").unwrap();
/// assert_eq!(time.unix_seconds(), 1_635_811_200);
/// assert_eq!(time.format("Mon Jan _2 15:04:05 MST 2006"), "Tue Nov  2 00:00:00 UTC 2021");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoTime {
    unix_nanos: i128,
}

/// A Go `*time.Time`, what Prometheus' `toTime` returns: a [`GoTime`] under the pointer's type
/// name, with the same methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoTimePointer(pub(crate) GoTime);

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
    (year, usize::try_from(month).unwrap_or(1), day)
}

/// (year, month 1-12, day 1-31) to days since 1970-01-01, proleptic Gregorian.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_index = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl GoTime {
    /// The time `unix_nanos` nanoseconds after 1970-01-01 00:00:00 UTC.
    pub fn from_unix_nanos(unix_nanos: i128) -> GoTime {
        GoTime { unix_nanos }
    }

    /// Go's zero `time.Time` (0001-01-01 00:00:00 UTC), what a failed `time.Parse` returns.
    pub fn zero() -> GoTime {
        GoTime::from_unix_nanos(i128::from(ZERO_TIME_UNIX_SECONDS) * NANOS_PER_SECOND)
    }

    /// The current time.
    pub fn now() -> GoTime {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| i128::try_from(elapsed.as_nanos()).unwrap_or(0));
        GoTime::from_unix_nanos(nanos)
    }

    /// Go's `Unix`: whole seconds since the epoch, rounded down.
    pub fn unix_seconds(&self) -> i64 {
        i64::try_from(self.unix_nanos.div_euclid(NANOS_PER_SECOND)).unwrap_or(i64::MIN)
    }

    /// Go's `UnixMilli`: whole milliseconds since the epoch, rounded down.
    pub fn unix_millis(&self) -> i64 {
        i64::try_from(self.unix_nanos.div_euclid(1_000_000)).unwrap_or(i64::MIN)
    }

    /// Go's `UnixNano`, which wraps outside the range of an `int64` (about 1678 to 2262).
    pub fn unix_nanos(&self) -> i64 {
        self.unix_nanos as i64
    }

    fn civil(&self) -> Civil {
        let seconds = self.unix_nanos.div_euclid(NANOS_PER_SECOND);
        let nanosecond = self.unix_nanos.rem_euclid(NANOS_PER_SECOND) as i64;
        let seconds = i64::try_from(seconds).unwrap_or(0);
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        const CUMULATIVE_DAYS: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let mut year_day = CUMULATIVE_DAYS.get(month.saturating_sub(1)).copied().unwrap_or(0) + day;
        if month > 2 && is_leap(year) {
            year_day += 1;
        }
        Civil {
            year,
            month,
            day,
            year_day,
            // 1970-01-01 was a Thursday.
            weekday: usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0),
            hour: second_of_day / 3600,
            minute: second_of_day / 60 % 60,
            second: second_of_day % 60,
            nanosecond,
        }
    }

    /// Go's `Time.Format` in UTC.
    pub fn format(&self, layout: &str) -> String {
        let civil = self.civil();
        let month_name = MONTHS
            .get(civil.month.saturating_sub(1))
            .copied()
            .unwrap_or("January");
        let day_name = DAYS.get(civil.weekday).copied().unwrap_or("Sunday");
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let Some((token, length)) = next_element(rest) else {
                let c = rest.chars().next().unwrap_or(' ');
                out.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            };
            let element = &rest[..length];
            rest = &rest[length..];
            match token {
                Element::LongMonth => out.push_str(month_name),
                Element::Month => out.push_str(&month_name[..3]),
                Element::NumMonth => out.push_str(&civil.month.to_string()),
                Element::ZeroMonth => out.push_str(&format!("{:02}", civil.month)),
                Element::LongWeekDay => out.push_str(day_name),
                Element::WeekDay => out.push_str(&day_name[..3]),
                Element::Day => out.push_str(&civil.day.to_string()),
                Element::UnderDay => out.push_str(&format!("{:>2}", civil.day)),
                Element::ZeroDay => out.push_str(&format!("{:02}", civil.day)),
                Element::UnderYearDay => out.push_str(&format!("{:>3}", civil.year_day)),
                Element::ZeroYearDay => out.push_str(&format!("{:03}", civil.year_day)),
                Element::Hour => out.push_str(&format!("{:02}", civil.hour)),
                Element::Hour12 | Element::ZeroHour12 => {
                    let hour12 = match civil.hour % 12 {
                        0 => 12,
                        hour => hour,
                    };
                    if token == Element::Hour12 {
                        out.push_str(&hour12.to_string());
                    } else {
                        out.push_str(&format!("{hour12:02}"));
                    }
                }
                Element::Minute => out.push_str(&civil.minute.to_string()),
                Element::ZeroMinute => out.push_str(&format!("{:02}", civil.minute)),
                Element::Second => out.push_str(&civil.second.to_string()),
                Element::ZeroSecond => out.push_str(&format!("{:02}", civil.second)),
                Element::LongYear => out.push_str(&format!("{:04}", civil.year)),
                Element::Year => out.push_str(&format!("{:02}", civil.year.rem_euclid(100))),
                Element::Pm => out.push_str(if civil.hour >= 12 { "PM" } else { "AM" }),
                Element::PmLower => out.push_str(if civil.hour >= 12 { "pm" } else { "am" }),
                Element::ZoneName => out.push_str("UTC"),
                Element::IsoOffset => out.push('Z'),
                Element::NumOffset => {
                    // "-0700" → "+0000", "-07:00" → "+00:00", …: the layout's digits as zeros.
                    out.push('+');
                    out.push_str(&element[1..].replace('7', "0"));
                }
                Element::Fraction { digits, trim } => {
                    let separator = &element[..1];
                    let fraction = format!("{:09}", civil.nanosecond);
                    let mut fraction = fraction[..digits.min(9)].to_owned();
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

    /// Go's `time.Parse(layout, value)` (zones other than numeric offsets read as UTC);
    /// `None` where Go returns an error.
    pub fn parse(layout: &str, value: &str) -> Option<GoTime> {
        let mut year: i64 = 1;
        let mut month: i64 = 1;
        let mut day: i64 = 1;
        let mut year_day: Option<i64> = None;
        let mut hour: i64 = 0;
        let mut minute: i64 = 0;
        let mut second: i64 = 0;
        let mut nanos: i64 = 0;
        let mut pm: Option<bool> = None;
        let mut offset_seconds: i64 = 0;
        let mut layout_rest = layout;
        let mut rest = value;
        loop {
            let (prefix, element) = match find_element(layout_rest) {
                Some((start, element, length)) => {
                    let prefix = &layout_rest[..start];
                    let text = &layout_rest[start..start + length];
                    layout_rest = &layout_rest[start + length..];
                    (prefix, Some((element, text)))
                }
                None => (layout_rest, None),
            };
            rest = skip_prefix(rest, prefix)?;
            let Some((element, element_text)) = element else {
                break;
            };
            match element {
                Element::LongYear => (year, rest) = fixed_digits(rest, 4)?,
                Element::Year => {
                    let (value, tail) = fixed_digits(rest, 2)?;
                    year = if value >= 69 { value + 1900 } else { value + 2000 };
                    rest = tail;
                }
                Element::ZeroMonth | Element::NumMonth => {
                    (month, rest) = number_in(rest, element == Element::ZeroMonth, 1..=12)?;
                }
                Element::Month | Element::LongMonth => {
                    let (index, tail) = name_prefix(rest, &MONTHS, element == Element::Month)?;
                    month = i64::try_from(index).ok()? + 1;
                    rest = tail;
                }
                Element::WeekDay | Element::LongWeekDay => {
                    (_, rest) = name_prefix(rest, &DAYS, element == Element::WeekDay)?;
                }
                Element::Day | Element::UnderDay | Element::ZeroDay => {
                    if element == Element::UnderDay && rest.starts_with(' ') {
                        rest = &rest[1..];
                    }
                    (day, rest) = number(rest, element == Element::ZeroDay, 2)?;
                }
                Element::UnderYearDay | Element::ZeroYearDay => {
                    let mut text = rest;
                    if element == Element::UnderYearDay {
                        text = text.trim_start_matches(' ');
                    }
                    let (value, tail) = number(text, element == Element::ZeroYearDay, 3)?;
                    year_day = Some(value);
                    rest = tail;
                }
                Element::Hour => (hour, rest) = number_in(rest, false, 0..=23)?,
                Element::Hour12 | Element::ZeroHour12 => {
                    (hour, rest) = number_in(rest, element == Element::ZeroHour12, 0..=12)?;
                }
                Element::Minute | Element::ZeroMinute => {
                    (minute, rest) = number_in(rest, element == Element::ZeroMinute, 0..=59)?;
                }
                Element::Second | Element::ZeroSecond => {
                    (second, rest) = number_in(rest, element == Element::ZeroSecond, 0..=59)?;
                    // Go reads a fraction after the seconds even when the layout has none.
                    if let Some(after) = rest.strip_prefix(['.', ','])
                        && after.starts_with(|c: char| c.is_ascii_digit())
                        && !layout_rest.starts_with(['.', ','])
                    {
                        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                        nanos = fraction_nanos(&after[..digits]);
                        rest = &after[digits..];
                    }
                }
                Element::Pm | Element::PmLower => {
                    let text = rest.get(..2)?;
                    pm = Some(match text.to_ascii_uppercase().as_str() {
                        "PM" => true,
                        "AM" => false,
                        _ => return None,
                    });
                    rest = &rest[2..];
                }
                Element::ZoneName => {
                    if let Some(tail) = rest.strip_prefix("UTC") {
                        rest = tail;
                    } else {
                        let len = rest.bytes().take_while(u8::is_ascii_uppercase).count();
                        if len < 3 {
                            return None;
                        }
                        rest = &rest[len..];
                    }
                }
                Element::IsoOffset | Element::NumOffset => {
                    if element == Element::IsoOffset && rest.starts_with('Z') {
                        rest = &rest[1..];
                        continue;
                    }
                    let (offset, tail) = parse_offset(rest, element_text)?;
                    offset_seconds = offset;
                    rest = tail;
                }
                Element::Fraction { digits, trim } => {
                    let Some(after) = rest.strip_prefix(['.', ',']) else {
                        if trim {
                            continue;
                        }
                        return None;
                    };
                    let count = after.bytes().take_while(u8::is_ascii_digit).count();
                    if !trim && count != digits {
                        return None;
                    }
                    nanos = fraction_nanos(&after[..count]);
                    rest = &after[count..];
                }
            }
        }
        if !rest.is_empty() {
            return None;
        }
        if let Some(pm) = pm {
            if pm && hour < 12 {
                hour += 12;
            } else if !pm && hour == 12 {
                hour = 0;
            }
        }
        if let Some(year_day) = year_day {
            let days_in_year = if is_leap(year) { 366 } else { 365 };
            if !(1..=days_in_year).contains(&year_day) {
                return None;
            }
            let days = days_from_civil(year, 1, 1) + year_day - 1;
            let (_, found_month, found_day) = civil_from_days(days);
            month = i64::try_from(found_month).ok()?;
            day = found_day;
        }
        if day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset_seconds;
        Some(GoTime::from_unix_nanos(
            i128::from(seconds) * NANOS_PER_SECOND + i128::from(nanos),
        ))
    }
}

/// `value` after the layout's literal text `prefix`, or `None` if it does not start with it.
fn skip_prefix<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    // Go lets one space in the layout match any run of spaces in the value.
    let mut value = value;
    let mut prefix = prefix;
    while !prefix.is_empty() {
        if prefix.starts_with(' ') && value.starts_with(' ') {
            prefix = prefix.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        let c = prefix.chars().next()?;
        value = value.strip_prefix(c)?;
        prefix = &prefix[c.len_utf8()..];
    }
    Some(value)
}

/// Exactly `count` digits at the start of `text`, and what follows them.
fn fixed_digits(text: &str, count: usize) -> Option<(i64, &str)> {
    let digits = text.get(..count)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, &text[count..]))
}

/// A one- or two-digit number (`zero_padded` requires exactly `max` digits).
fn number(text: &str, zero_padded: bool, max: usize) -> Option<(i64, &str)> {
    if zero_padded {
        return fixed_digits(text, max);
    }
    let count = text.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if count == 0 {
        return None;
    }
    Some((text[..count].parse().ok()?, &text[count..]))
}

/// A one- or two-digit number within `range` (`zero_padded` requires two digits).
fn number_in(text: &str, zero_padded: bool, range: RangeInclusive<i64>) -> Option<(i64, &str)> {
    let (value, tail) = number(text, zero_padded, 2)?;
    range.contains(&value).then_some((value, tail))
}

/// The name in `names` (or its three-letter abbreviation) that `text` starts with, in any
/// case: its index and the text after it.
fn name_prefix<'v>(text: &'v str, names: &[&str], abbreviated: bool) -> Option<(usize, &'v str)> {
    names.iter().enumerate().find_map(|(index, name)| {
        let name = if abbreviated { &name[..3] } else { name };
        let candidate = text.get(..name.len())?;
        candidate
            .eq_ignore_ascii_case(name)
            .then(|| (index, &text[name.len()..]))
    })
}

/// The nanoseconds of a fraction's digits (the `5` of `.5` is 500000000).
fn fraction_nanos(digits: &str) -> i64 {
    let mut padded: String = digits.chars().take(9).collect();
    while padded.len() < 9 {
        padded.push('0');
    }
    padded.parse().unwrap_or(0)
}

/// A numeric zone offset in the shape of the layout element (`-0700`, `-07:00`, `-07`,
/// `-07:00:00`).
fn parse_offset<'v>(value: &'v str, element: &str) -> Option<(i64, &'v str)> {
    let sign = match value.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let shape = element.trim_start_matches(['Z', '-']);
    let mut rest = &value[1..];
    let mut parts: Vec<i64> = Vec::new();
    for (index, piece) in shape.split(':').enumerate() {
        if index > 0 {
            rest = rest.strip_prefix(':')?;
        }
        // A piece of the shape is "07", "00" or "0700" / "070000" without colons.
        let mut remaining = piece.len();
        while remaining > 0 {
            let (value, tail) = fixed_digits(rest, 2)?;
            parts.push(value);
            rest = tail;
            remaining = remaining.saturating_sub(2);
        }
    }
    let hours = parts.first().copied().unwrap_or(0);
    let minutes = parts.get(1).copied().unwrap_or(0);
    let seconds = parts.get(2).copied().unwrap_or(0);
    Some((sign * (hours * 3600 + minutes * 60 + seconds), rest))
}

/// A layout element (Go's `std…` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
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
    Pm,
    PmLower,
    ZoneName,
    /// `Z07:00` and friends: `Z` for UTC.
    IsoOffset,
    /// `-0700` and friends.
    NumOffset,
    /// `.000` (fixed) or `.999` (`trim`: no trailing zeros); `digits` as the layout has them,
    /// of which formatting shows nine at most.
    Fraction {
        digits: usize,
        trim: bool,
    },
}

/// The first layout element in `layout`: its start, kind and length.
fn find_element(layout: &str) -> Option<(usize, Element, usize)> {
    let mut start = 0;
    while start < layout.len() {
        if let Some((element, length)) = next_element(&layout[start..]) {
            return Some((start, element, length));
        }
        start += layout[start..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// The layout element at the start of `layout`, if one starts there (Go's `nextStdChunk`).
fn next_element(layout: &str) -> Option<(Element, usize)> {
    let bytes = layout.as_bytes();
    let starts = |prefix: &str| layout.starts_with(prefix);
    // `Jan` and `Mon` are elements only when no lower-case letter follows (`Janet` is text).
    let lower_case_after = |length: usize| bytes.get(length).is_some_and(u8::is_ascii_lowercase);
    let first = *bytes.first()?;
    let element = match first {
        b'J' if starts("January") => (Element::LongMonth, 7),
        b'J' if starts("Jan") && !lower_case_after(3) => (Element::Month, 3),
        b'M' if starts("Monday") => (Element::LongWeekDay, 6),
        b'M' if starts("Mon") && !lower_case_after(3) => (Element::WeekDay, 3),
        b'M' if starts("MST") => (Element::ZoneName, 3),
        b'0' if starts("01") => (Element::ZeroMonth, 2),
        b'0' if starts("02") => (Element::ZeroDay, 2),
        b'0' if starts("03") => (Element::ZeroHour12, 2),
        b'0' if starts("04") => (Element::ZeroMinute, 2),
        b'0' if starts("05") => (Element::ZeroSecond, 2),
        b'0' if starts("06") => (Element::Year, 2),
        b'0' if starts("002") => (Element::ZeroYearDay, 3),
        b'1' if starts("15") => (Element::Hour, 2),
        b'1' => (Element::NumMonth, 1),
        b'2' if starts("2006") => (Element::LongYear, 4),
        b'2' => (Element::Day, 1),
        b'_' if starts("_2006") => return None,
        b'_' if starts("__2") => (Element::UnderYearDay, 3),
        b'_' if starts("_2") => (Element::UnderDay, 2),
        b'3' => (Element::Hour12, 1),
        b'4' => (Element::Minute, 1),
        b'5' => (Element::Second, 1),
        b'P' if starts("PM") => (Element::Pm, 2),
        b'p' if starts("pm") => (Element::PmLower, 2),
        b'-' if starts("-070000") || starts("-07:00:00") => {
            (Element::NumOffset, if starts("-070000") { 7 } else { 9 })
        }
        b'-' if starts("-0700") => (Element::NumOffset, 5),
        b'-' if starts("-07:00") => (Element::NumOffset, 6),
        b'-' if starts("-07") => (Element::NumOffset, 3),
        b'Z' if starts("Z070000") => (Element::IsoOffset, 7),
        b'Z' if starts("Z07:00:00") => (Element::IsoOffset, 9),
        b'Z' if starts("Z0700") => (Element::IsoOffset, 5),
        b'Z' if starts("Z07:00") => (Element::IsoOffset, 6),
        b'Z' if starts("Z07") => (Element::IsoOffset, 3),
        b'.' | b',' => {
            let repeated = *bytes.get(1)?;
            if repeated != b'0' && repeated != b'9' {
                return None;
            }
            let digits = bytes[1..].iter().take_while(|b| **b == repeated).count();
            // A fraction must not be followed by another digit.
            if bytes.get(1 + digits).is_some_and(u8::is_ascii_digit) {
                return None;
            }
            (
                Element::Fraction {
                    digits,
                    trim: repeated == b'9',
                },
                1 + digits,
            )
        }
        _ => return None,
    };
    Some(element)
}

/// Whether Go's `time.Time` has the method `name`, of those modelled here.
fn is_time_method(name: &str) -> bool {
    matches!(
        name,
        "Format"
            | "String"
            | "Add"
            | "Unix"
            | "UnixMilli"
            | "UnixMicro"
            | "UnixNano"
            | "UTC"
            | "Local"
            | "IsZero"
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

impl GoTime {
    /// Calls the `time.Time` method `name`; `wrap` makes a value of the receiver's Go type of
    /// the time that `Add`, `UTC` and `Local` return.
    fn call_method(
        &self,
        name: &str,
        args: &[Value],
        wrap: fn(GoTime) -> Value,
    ) -> Option<Result<Value, String>> {
        let want = usize::from(matches!(name, "Format" | "Add"));
        if args.len() != want {
            return Some(Err(format!(
                "wrong number of args for {name}: want {want} got {}",
                args.len()
            )));
        }
        let civil = self.civil();
        let int = |value: i64| Ok(Value::Int(value));
        Some(match (name, args) {
            ("Format", [Value::String(layout)]) => Ok(Value::String(self.format(layout))),
            ("Format", [other]) => Err(format!(
                "wrong type for value; expected string; got {}",
                other.type_name()
            )),
            ("Add", [duration]) => self.add(duration).map(wrap),
            ("String", _) => Ok(Value::String(self.format(STRING_LAYOUT))),
            ("Unix", _) => int(self.unix_seconds()),
            ("UnixMilli", _) => int(self.unix_millis()),
            ("UnixMicro", _) => int(i64::try_from(self.unix_nanos.div_euclid(1_000)).unwrap_or(i64::MIN)),
            ("UnixNano", _) => int(self.unix_nanos()),
            ("UTC" | "Local", _) => Ok(wrap(*self)),
            ("IsZero", _) => Ok(Value::Bool(*self == GoTime::zero())),
            ("Year", _) => int(civil.year),
            ("Month", _) => Ok(Value::String(
                MONTHS
                    .get(civil.month.saturating_sub(1))
                    .copied()
                    .unwrap_or("January")
                    .to_owned(),
            )),
            ("Day", _) => int(civil.day),
            ("Hour", _) => int(civil.hour),
            ("Minute", _) => int(civil.minute),
            ("Second", _) => int(civil.second),
            ("Nanosecond", _) => int(civil.nanosecond),
            ("YearDay", _) => int(civil.year_day),
            ("Weekday", _) => Ok(Value::String(
                DAYS.get(civil.weekday).copied().unwrap_or("Sunday").to_owned(),
            )),
            _ => return None,
        })
    }

    /// Go's `Time.Add` with an integer (nanoseconds) or a `*time.Duration`.
    fn add(&self, duration: &Value) -> Result<GoTime, String> {
        let nanos = match duration {
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
        Ok(GoTime::from_unix_nanos(self.unix_nanos.saturating_add(nanos)))
    }
}

impl Object for GoTime {
    fn type_name(&self) -> &str {
        TIME_TYPE
    }

    fn has_method(&self, name: &str) -> bool {
        is_time_method(name)
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        self.call_method(name, args, Value::object)
    }

    /// Go's `Time.String`: `2006-01-02 15:04:05.999999999 -0700 MST`.
    fn display(&self) -> String {
        self.format(STRING_LAYOUT)
    }
}

impl Object for GoTimePointer {
    fn type_name(&self) -> &str {
        TIME_POINTER_TYPE
    }

    fn has_method(&self, name: &str) -> bool {
        is_time_method(name)
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        self.0
            .call_method(name, args, |time| Value::object(GoTimePointer(time)))
    }

    fn display(&self) -> String {
        self.0.display()
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

    fn at(text: &str) -> GoTime {
        GoTime::parse("2006-01-02T15:04:05.999999999Z07:00", text).unwrap()
    }

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
    fn formats_with_go_layouts() {
        let time = at("2024-03-05T07:08:09.120Z");
        assert_eq!(time.format("2006-01-02 15:04:05"), "2024-03-05 07:08:09");
        assert_eq!(time.format("Jan _2 3:04PM .000"), "Mar  5 7:08AM .120");
        assert_eq!(
            time.format("Monday, 02-Jan-06 .999 MST -07:00 Z07:00"),
            "Tuesday, 05-Mar-24 .12 UTC +00:00 Z"
        );
        assert_eq!(time.display(), "2024-03-05 07:08:09.12 +0000 UTC");
        assert_eq!(GoTime::zero().display(), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(GoTime::zero().unix_seconds(), -62_135_596_800);
        // As in Go, `Jan` and `Mon` before a lower-case letter are text, and a fraction is
        // shown to nanoseconds at most.
        assert_eq!(time.format("Janet Monk Jan"), "Janet Monk Mar");
        assert_eq!(time.format("05.0000000000"), "09.120000000");
    }

    #[test]
    fn parses_with_go_layouts() {
        assert_eq!(at("2021-11-02T00:00:00Z").unix_seconds(), 1_635_811_200);
        assert_eq!(at("2021-11-02T02:00:00+02:00").unix_seconds(), 1_635_811_200);
        assert_eq!(
            GoTime::parse("2006-01-02", "2021-11-02").unwrap().unix_seconds(),
            1_635_811_200
        );
        assert_eq!(
            GoTime::parse("02/Jan/2006:15:04:05 -0700", "10/Oct/2000:13:55:36 -0700")
                .unwrap()
                .unix_seconds(),
            971_211_336
        );
        let fraction = GoTime::parse("2006-01-02 15:04:05", "2021-11-02 01:02:03.5").unwrap();
        assert_eq!(fraction.unix_millis() % 1000, 500);
        assert!(GoTime::parse("2006-01-02", "2021-02-30").is_none());
        assert!(GoTime::parse("2006-01-02", "2021-11-02x").is_none());
        assert!(GoTime::parse("2006-01-02", "nope").is_none());
        assert_eq!(
            GoTime::parse("Jan 2 2006 3:04 PM", "Feb 3 2020 1:05 PM")
                .unwrap()
                .format("15:04"),
            "13:05"
        );
    }

    #[test]
    fn methods_keep_the_receivers_go_type() {
        let time = GoTime::from_unix_nanos(1_435_065_584_128_000_000);
        let type_of = |value: Option<Result<Value, String>>| match value {
            Some(Ok(Value::Object(object))) => object.type_name().to_owned(),
            other => panic!("not a time: {other:?}"),
        };
        assert_eq!(type_of(time.method("UTC", &[])), "time.Time");
        assert_eq!(type_of(time.method("Add", &[Value::Int(1)])), "time.Time");
        let pointer = GoTimePointer(time);
        assert_eq!(type_of(pointer.method("Local", &[])), "*time.Time");
        assert_eq!(type_of(pointer.method("Add", &[Value::Int(1)])), "*time.Time");
        assert_eq!(pointer.display(), time.display());
        assert!(matches!(
            GoTime::zero().method("IsZero", &[]),
            Some(Ok(Value::Bool(true)))
        ));
        assert!(matches!(
            pointer.method("Format", &[]),
            Some(Err(message)) if message == "wrong number of args for Format: want 1 got 0"
        ));
        assert!(time.method("Truncate", &[]).is_none());
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
