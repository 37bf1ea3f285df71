//! Durations, byte sizes and numbers as LogQL writes them, and as Loki reads label values.
//!
//! Loki reads a duration literal (`5m`, `1h30m`, `250ms`, `1.5s`, `-5m`) with Prometheus'
//! `model.ParseDuration` first and Go's `time.ParseDuration` second, so both grammars are
//! here, on nanoseconds, with their error messages. A range (`[5m]`) is Prometheus syntax only.
//! A byte size (`20MB`, `1KiB`) follows `humanize.ParseBytes`: `KB`/`MB` are powers of 1000,
//! `KiB`/`MiB` powers of 1024, and the number may have a fraction.
//!
//! The Go conversions are public, because Loki applies the same ones to label values when it
//! runs a query (numeric, duration and byte-size label filters, `unwrap`), and their errors,
//! Go's own words, end up in `__error_details__`:
//!
//! - `strconv.ParseFloat(text, 64)` is [`parse_go_float`];
//! - `time.ParseDuration` is [`parse_go_duration`];
//! - `humanize.ParseBytes` is [`parse_bytes`];
//! - `strconv.Quote`, which those messages quote with, is [`go_quote`].
//!
//! ```
//! use obs_logql::units::{go_quote, parse_bytes, parse_go_duration, parse_go_float};
//!
//! assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
//! assert_eq!(parse_bytes("1.5KiB"), Ok(1_536));
//! assert_eq!(parse_go_float("-2e3"), Ok(-2000.0));
//! assert_eq!(
//!     parse_go_float("1.5s"),
//!     Err(r#"strconv.ParseFloat: parsing "1.5s": invalid syntax"#.to_owned())
//! );
//! assert_eq!(go_quote("a\tb"), r#""a\tb""#);
//! ```
//!
//! `obs_core::units` parses Prometheus durations in milliseconds with the appliance's own
//! messages; LogQL needs nanoseconds, negative values, Go's syntax and Loki's wording.

use std::fmt::{self, Write};

const NANOS_PER_MILLI: u64 = 1_000_000;

/// A span of time that may be negative, with nanosecond precision (Go's `time.Duration`).
///
/// Offsets (`offset -5m`) and duration label filters (`latency > -1s`) can be negative; a
/// range (`[5m]`) cannot and is a [`std::time::Duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SignedDuration {
    nanos: i64,
}

impl SignedDuration {
    /// No time at all.
    pub const ZERO: SignedDuration = SignedDuration { nanos: 0 };

    /// A duration of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: i64) -> SignedDuration {
        SignedDuration { nanos }
    }

    /// A duration of `millis` milliseconds, saturating at the bounds of the nanosecond range.
    pub const fn from_millis(millis: i64) -> SignedDuration {
        SignedDuration {
            nanos: millis.saturating_mul(NANOS_PER_MILLI as i64),
        }
    }

    /// The duration in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// The duration in whole milliseconds, truncated toward zero (Go's `Milliseconds`).
    pub const fn as_millis(self) -> i64 {
        self.nanos / NANOS_PER_MILLI as i64
    }

    /// The duration in seconds, with its fraction.
    pub fn as_secs_f64(self) -> f64 {
        self.nanos as f64 / 1e9
    }

    /// Whether the duration is below zero.
    pub const fn is_negative(self) -> bool {
        self.nanos < 0
    }
}

impl fmt::Display for SignedDuration {
    /// Prometheus notation (`5m`, `1h30m`, `1d`) for whole milliseconds above zero, Go's
    /// notation (`1.5µs`, `-5m0s`) otherwise; either reads back to the same value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let positive_millis = u64::try_from(self.nanos)
            .ok()
            .filter(|nanos| *nanos > 0 && nanos.is_multiple_of(NANOS_PER_MILLI));
        match positive_millis {
            Some(nanos) => f.write_str(&format_prometheus_millis(nanos / NANOS_PER_MILLI)),
            None => f.write_str(&format_go_duration(self.nanos)),
        }
    }
}

/// A range duration (`[5m]`) in Prometheus notation, which reads back to the same value.
pub(crate) fn format_range(range: std::time::Duration) -> String {
    // Ranges are whole milliseconds (Prometheus syntax has no smaller unit).
    format_prometheus_millis(u64::try_from(range.as_millis()).unwrap_or(u64::MAX))
}

/// Prometheus' `model.Duration.String`: years and weeks only when exact, then d h m s ms.
fn format_prometheus_millis(millis: u64) -> String {
    if millis == 0 {
        return "0s".to_owned();
    }
    const DAY: u64 = 86_400_000;
    let units: [(&str, u64, bool); 7] = [
        ("y", 365 * DAY, true),
        ("w", 7 * DAY, true),
        ("d", DAY, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1_000, false),
        ("ms", 1, false),
    ];
    let mut rest = millis;
    let mut out = String::new();
    for (name, unit_millis, exact_only) in units {
        if exact_only && !rest.is_multiple_of(unit_millis) {
            continue;
        }
        let count = rest / unit_millis;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(name);
            rest -= count * unit_millis;
        }
    }
    out
}

/// Go's `time.Duration.String`: `1h30m0s`, `1.5s`, `250ms`, `1µs`, `-5m0s`, `0s`.
fn format_go_duration(nanos: i64) -> String {
    let negative = nanos < 0;
    let mut magnitude = nanos.unsigned_abs();
    if magnitude == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if magnitude < 1_000_000_000 {
        // Below one second: a single unit with a fraction.
        let (unit, precision) = if magnitude < 1_000 {
            ("ns", 0)
        } else if magnitude < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        out.push_str(&format_fraction(magnitude, precision));
        out.push_str(unit);
    } else {
        let seconds_part = magnitude % 60_000_000_000;
        magnitude /= 60_000_000_000;
        let seconds = format_fraction(seconds_part, 9);
        if magnitude > 0 {
            let minutes = magnitude % 60;
            let hours = magnitude / 60;
            if hours > 0 {
                out.push_str(&hours.to_string());
                out.push('h');
            }
            out.push_str(&minutes.to_string());
            out.push('m');
        }
        out.push_str(&seconds);
        out.push('s');
    }
    if negative {
        out.insert(0, '-');
    }
    out
}

/// `value / 10^precision` in decimal, without trailing zeros in the fraction.
fn format_fraction(value: u64, precision: u32) -> String {
    let scale = 10u64.pow(precision);
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Prometheus' `model.ParseDuration` (units `y w d h m s ms`, largest first, each at most
/// once, no fractions, no sign), in nanoseconds, with its error messages.
pub(crate) fn parse_prometheus_duration(text: &str) -> Result<u64, String> {
    match text {
        "0" => return Ok(0),
        "" => return Err("empty duration string".to_owned()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {}", go_quote(text));
    const DAY: u64 = 86_400 * 1_000_000_000;
    let units: [(&str, u64, u8); 7] = [
        ("y", 365 * DAY, 1),
        ("w", 7 * DAY, 2),
        ("d", DAY, 3),
        ("h", 3_600 * 1_000_000_000, 4),
        ("m", 60 * 1_000_000_000, 5),
        ("s", 1_000_000_000, 6),
        ("ms", NANOS_PER_MILLI, 7),
    ];
    let max = i64::MAX as u64;
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_position = 0u8;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let (number, after) = rest.split_at(digits);
        let value: u64 = number.parse().map_err(|_| invalid())?;
        let unit_len = after.bytes().take_while(|b| !b.is_ascii_digit()).count();
        if unit_len == 0 {
            return Err(invalid());
        }
        let (unit, after_unit) = after.split_at(unit_len);
        rest = after_unit;
        let Some(&(_, multiplier, position)) = units.iter().find(|(name, _, _)| *name == unit) else {
            return Err(format!(
                "unknown unit {} in duration {}",
                go_quote(unit),
                go_quote(text)
            ));
        };
        if position <= last_position {
            return Err(invalid());
        }
        last_position = position;
        if value > (1u64 << 63) / multiplier {
            return Err("duration out of range".to_owned());
        }
        total = total.saturating_add(value * multiplier);
        if total > max {
            return Err("duration out of range".to_owned());
        }
    }
    Ok(total)
}

/// Go's `time.ParseDuration` (`[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with units `ns us µs μs ms s m
/// h`: `1h30m`, `1.5s`, `-300ms`, `2µs`, `0`), in nanoseconds. The error is Go's:
/// `time: invalid duration "abc"`, `time: missing unit in duration "1"` or
/// `time: unknown unit "x" in duration "1x"`.
pub fn parse_go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(text));
    let mut rest = text;
    let mut negative = false;
    if let Some(first) = rest.chars().next()
        && (first == '-' || first == '+')
    {
        negative = first == '-';
        rest = &rest[1..];
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let limit: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let starts_number = rest.starts_with('.') || rest.as_bytes().first().is_some_and(u8::is_ascii_digit);
        if !starts_number {
            return Err(invalid());
        }
        // The integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for digit in rest.bytes().take(int_len) {
            whole = whole
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                .filter(|v| *v <= limit)
                .ok_or_else(invalid)?;
        }
        rest = &rest[int_len..];
        // The fraction, kept as digits over a power of ten.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut has_fraction_digits = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let fraction_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            has_fraction_digits = fraction_len > 0;
            let mut overflowed = false;
            for digit in after_dot.bytes().take(fraction_len) {
                if overflowed {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                {
                    Some(next) if next <= limit => {
                        fraction = next;
                        scale *= 10.0;
                    }
                    _ => overflowed = true,
                }
            }
            rest = &after_dot[fraction_len..];
        }
        if int_len == 0 && !has_fraction_digits {
            return Err(invalid());
        }
        let unit_len = rest
            .bytes()
            .take_while(|b| *b != b'.' && !b.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(text)));
        }
        let (unit, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        let multiplier: u64 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(text)
                ));
            }
        };
        if whole > limit / multiplier {
            return Err(invalid());
        }
        let mut part = whole * multiplier;
        if fraction > 0 {
            part += (fraction as f64 * (multiplier as f64 / scale)) as u64;
            if part > limit {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(part)
            .filter(|v| *v <= limit)
            .ok_or_else(invalid)?;
    }
    if negative {
        // -(1 << 63) is i64::MIN, the one magnitude only a negative value can have.
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// A duration literal as Loki's lexer reads it: Prometheus syntax first, Go's second.
pub(crate) fn parse_duration_literal(text: &str) -> Option<SignedDuration> {
    if let Ok(nanos) = parse_prometheus_duration(text) {
        return i64::try_from(nanos).ok().map(SignedDuration::from_nanos);
    }
    parse_go_duration(text).ok().map(SignedDuration::from_nanos)
}

/// `humanize.ParseBytes`: a decimal number (with an optional fraction; commas in it are
/// ignored) and an optional unit (`B`, `kB`/`KB`/`K`, `KiB`/`Ki`, … up to `EB`/`EiB`, any case,
/// spaces around it allowed), truncated to whole bytes. The error is the library's:
/// `unhandled size name: apples`, `too large: 20000EB`, or [`parse_go_float`]'s on the number.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let number_len = text
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.' || *b == b',')
        .count();
    let (number, unit) = text.split_at(number_len);
    let value = parse_go_float(&number.replace(',', ""))?;
    let unit = unit.trim().to_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "kib" | "ki" => 1 << 10,
        "kb" | "k" => 1_000,
        "mib" | "mi" => 1 << 20,
        "mb" | "m" => 1_000_000,
        "gib" | "gi" => 1 << 30,
        "gb" | "g" => 1_000_000_000,
        "tib" | "ti" => 1 << 40,
        "tb" | "t" => 1_000_000_000_000,
        "pib" | "pi" => 1 << 50,
        "pb" | "p" => 1_000_000_000_000_000,
        "eib" | "ei" => 1 << 60,
        "eb" | "e" => 1_000_000_000_000_000_000,
        _ => return Err(format!("unhandled size name: {unit}")),
    };
    let bytes = value * multiplier as f64;
    // 2^64 as a float; humanize refuses anything at or above it.
    if bytes >= 18_446_744_073_709_551_616.0 {
        return Err(format!("too large: {text}"));
    }
    // The number has no sign and is finite, so the cast only drops the fraction.
    Ok(bytes as u64)
}

/// A byte size in a unit that divides it exactly (`20MB`, `1KiB`, `1500B`), which reads back
/// to the same value.
pub(crate) fn format_bytes(bytes: u64) -> String {
    if bytes == 0 {
        return "0B".to_owned();
    }
    let units: [(&str, u64); 10] = [
        ("PiB", 1 << 50),
        ("PB", 1_000_000_000_000_000),
        ("TiB", 1 << 40),
        ("TB", 1_000_000_000_000),
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1_000),
    ];
    for (name, multiplier) in units {
        if bytes.is_multiple_of(multiplier) {
            return format!("{}{name}", bytes / multiplier);
        }
    }
    format!("{bytes}B")
}

/// Go's `strconv.ParseFloat(text, 64)`: an optional sign, then a decimal float (`1.5`, `.5`,
/// `5.`, `2e3`, no `_`), a hexadecimal one with its mandatory binary exponent (`0x1.8p1`), or
/// `inf`, `infinity` or `nan` in any case (no sign before `nan`). The error is Go's:
/// `strconv.ParseFloat: parsing "abc": invalid syntax`, or `... value out of range` where the
/// magnitude is beyond the largest float.
pub fn parse_go_float(text: &str) -> Result<f64, String> {
    let invalid = || format!("strconv.ParseFloat: parsing {}: invalid syntax", go_quote(text));
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let signed = |value: f64| if negative { -value } else { value };
    let lower = unsigned.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Ok(signed(f64::INFINITY));
    }
    if lower == "nan" {
        if unsigned.len() != text.len() {
            return Err(invalid());
        }
        return Ok(f64::NAN);
    }
    let value = if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex).ok_or_else(invalid)?
    } else {
        if !is_decimal_float(unsigned) {
            return Err(invalid());
        }
        unsigned.parse::<f64>().map_err(|_| invalid())?
    };
    if value.is_infinite() {
        return Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            go_quote(text)
        ));
    }
    Ok(signed(value))
}

/// `digits [. digits] [e [sign] digits]` with at least one mantissa digit.
fn is_decimal_float(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits_from = |start: usize| bytes[start..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut index = 0;
    let mut mantissa_digits = digits_from(index);
    index += mantissa_digits;
    if bytes.get(index) == Some(&b'.') {
        let fraction_digits = digits_from(index + 1);
        mantissa_digits += fraction_digits;
        index += 1 + fraction_digits;
    }
    if mantissa_digits == 0 {
        return false;
    }
    if matches!(bytes.get(index), Some(b'e' | b'E')) {
        index += 1;
        if matches!(bytes.get(index), Some(b'+' | b'-')) {
            index += 1;
        }
        let exponent_digits = digits_from(index);
        if exponent_digits == 0 {
            return false;
        }
        index += exponent_digits;
    }
    index == bytes.len()
}

/// A hexadecimal float after its `0x`, lower-cased: hex digits with an optional `.`, then a
/// mandatory binary exponent `p[sign]digits`. As in Go, `_` may stand only between two digits,
/// or between the `0x` and a digit.
fn parse_hex_float(text: &str) -> Option<f64> {
    if !underscores_separate_digits(text) {
        return None;
    }
    let text = text.replace('_', "");
    let (mantissa, exponent) = text.split_once('p')?;
    let exponent: i32 = exponent.parse().ok()?;
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    if digits.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for digit in digits.chars() {
        value = value * 16.0 + f64::from(digit.to_digit(16)?);
    }
    let fraction_digits = i32::try_from(fraction.len()).ok()?;
    Some(value * 2f64.powi(exponent.checked_sub(fraction_digits.checked_mul(4)?)?))
}

/// Go's `underscoreOK` after a base prefix (which counts as a digit): every `_` follows a
/// digit and is followed by one.
fn underscores_separate_digits(text: &str) -> bool {
    let mut after_digit = true;
    let mut after_underscore = false;
    for byte in text.bytes() {
        if byte.is_ascii_hexdigit() {
            after_digit = true;
            after_underscore = false;
        } else if byte == b'_' {
            if !after_digit {
                return false;
            }
            after_digit = false;
            after_underscore = true;
        } else if after_underscore {
            return false;
        } else {
            after_digit = false;
        }
    }
    !after_underscore
}

/// Go's `strconv.Quote` (for text whose only unprintable characters are control characters):
/// `text` double-quoted, with `\"`, `\\`, `\n`, `\t` and the other named escapes, the other
/// ASCII control characters as `\x1b` and the C1 controls as `\u0085`.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    crate::print::push_quoted(&mut out, text, |out, c| {
        let code = u32::from(c);
        if code < 0x20 || code == 0x7f {
            let _ = write!(out, "\\x{code:02x}");
        } else {
            let _ = write!(out, "\\u{code:04x}");
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    #[test]
    fn prometheus_durations_parse_with_loki_messages() {
        assert_eq!(parse_prometheus_duration("5m"), Ok(300 * SECOND as u64));
        assert_eq!(parse_prometheus_duration("1h30m"), Ok(5_400 * SECOND as u64));
        assert_eq!(parse_prometheus_duration("0"), Ok(0));
        assert_eq!(parse_prometheus_duration("1y"), Ok(365 * 86_400 * SECOND as u64));
        assert_eq!(parse_prometheus_duration("250ms"), Ok(250_000_000));
        assert_eq!(
            parse_prometheus_duration("5minutes"),
            Err(r#"unknown unit "minutes" in duration "5minutes""#.to_owned())
        );
        assert_eq!(
            parse_prometheus_duration("5"),
            Err(r#"not a valid duration string: "5""#.to_owned())
        );
        assert_eq!(
            parse_prometheus_duration("30m1h"),
            Err(r#"not a valid duration string: "30m1h""#.to_owned())
        );
        assert_eq!(
            parse_prometheus_duration(""),
            Err("empty duration string".to_owned())
        );
        assert_eq!(
            parse_prometheus_duration("300y"),
            Err("duration out of range".to_owned())
        );
        assert!(parse_prometheus_duration("1.5h").is_err());
        assert!(parse_prometheus_duration("-5m").is_err());
    }

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        assert_eq!(parse_go_duration("1.5h"), Ok(5_400 * SECOND));
        assert_eq!(parse_go_duration("-5m"), Ok(-300 * SECOND));
        assert_eq!(parse_go_duration("1h15m30.918273645s"), Ok(4_530_918_273_645));
        assert_eq!(parse_go_duration("1µs"), Ok(1_000));
        assert_eq!(parse_go_duration("10us"), Ok(10_000));
        assert_eq!(parse_go_duration(".5s"), Ok(SECOND / 2));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("-2562047h47m16.854775808s"), Ok(i64::MIN));
        assert!(parse_go_duration("2562047h47m16.854775808s").is_err());
        assert!(parse_go_duration("1d").is_err());
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration(".s").is_err());
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("-300ms"), Ok(-300_000_000));
        assert_eq!(parse_go_duration("2µs"), Ok(2_000));
        assert_eq!(parse_go_duration(".5m"), Ok(30_000_000_000));
        assert_eq!(
            parse_go_duration("1"),
            Err(r#"time: missing unit in duration "1""#.to_owned())
        );
        assert_eq!(
            parse_go_duration("1x"),
            Err(r#"time: unknown unit "x" in duration "1x""#.to_owned())
        );
        assert_eq!(
            parse_go_duration("abc"),
            Err(r#"time: invalid duration "abc""#.to_owned())
        );
        assert!(parse_go_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn durations_print_so_that_they_read_back() {
        for nanos in [
            1,
            999,
            1_500,
            250_000_000,
            SECOND,
            90 * SECOND,
            5_400 * SECOND,
            86_400 * SECOND,
            7 * 86_400 * SECOND,
            1_500_000_001,
            -300 * SECOND,
            -1,
            i64::MIN,
            i64::MAX,
            0,
        ] {
            let duration = SignedDuration::from_nanos(nanos);
            let text = duration.to_string();
            assert_eq!(
                parse_duration_literal(&text),
                Some(duration),
                "{nanos} printed as {text}"
            );
        }
        assert_eq!(SignedDuration::from_nanos(300 * SECOND).to_string(), "5m");
        assert_eq!(SignedDuration::from_nanos(-300 * SECOND).to_string(), "-5m0s");
        assert_eq!(SignedDuration::from_nanos(1_500).to_string(), "1.5µs");
        assert_eq!(
            SignedDuration::from_nanos(1_500_000_001).to_string(),
            "1.500000001s"
        );
    }

    #[test]
    fn byte_sizes_parse_like_humanize() {
        assert_eq!(parse_bytes("20MB"), Ok(20_000_000));
        assert_eq!(parse_bytes("1KiB"), Ok(1_024));
        assert_eq!(parse_bytes("2.5KiB"), Ok(2_560));
        assert_eq!(parse_bytes("250kB"), Ok(250_000));
        assert_eq!(parse_bytes("1M"), Ok(1_000_000));
        assert_eq!(parse_bytes("0B"), Ok(0));
        assert_eq!(parse_bytes("123PiB"), Ok(123 << 50));
        assert!(parse_bytes("1ZB").is_err());
        assert!(parse_bytes("KB").is_err());
        assert!(parse_bytes("1.2.3KB").is_err());
        assert!(parse_bytes("20000EB").is_err());
        assert_eq!(parse_bytes("42"), Ok(42));
        assert_eq!(parse_bytes("1.5KiB"), Ok(1536));
        assert_eq!(parse_bytes("1,000 kb"), Ok(1_000_000));
        assert_eq!(parse_bytes("3 B"), Ok(3));
        assert_eq!(
            parse_bytes("5 apples"),
            Err("unhandled size name: apples".to_owned())
        );
        assert!(parse_bytes("MB").is_err());
    }

    #[test]
    fn floats_parse_like_strconv() {
        assert_eq!(parse_go_float("1.5"), Ok(1.5));
        assert_eq!(parse_go_float("1e3"), Ok(1000.0));
        assert_eq!(parse_go_float("0x1p3"), Ok(8.0));
        assert_eq!(parse_go_float("0x1.8p1"), Ok(3.0));
        assert_eq!(
            parse_go_float("0x10"),
            Err(r#"strconv.ParseFloat: parsing "0x10": invalid syntax"#.to_owned())
        );
        assert_eq!(
            parse_go_float("1e400"),
            Err(r#"strconv.ParseFloat: parsing "1e400": value out of range"#.to_owned())
        );
        assert!(parse_go_float("1_000").is_err());
        assert!(parse_go_float("0b101").is_err());
        assert_eq!(parse_go_float("-2e3"), Ok(-2000.0));
        assert_eq!(parse_go_float(".5"), Ok(0.5));
        assert_eq!(parse_go_float("5."), Ok(5.0));
        assert_eq!(parse_go_float("+Inf"), Ok(f64::INFINITY));
        assert_eq!(parse_go_float("0x1p-2"), Ok(0.25));
        assert!(parse_go_float("NaN").unwrap().is_nan());
        assert_eq!(
            parse_go_float("abc"),
            Err(r#"strconv.ParseFloat: parsing "abc": invalid syntax"#.to_owned())
        );
        for bad in ["", "1_000", "1e", "e5", "+nan", ".", "1.2.3", " 1"] {
            assert!(parse_go_float(bad).is_err(), "{bad:?}");
        }
        // As in Go, `_` separates the digits of a hexadecimal float, exponent included.
        assert_eq!(parse_go_float("0x_1_0p1_0"), Ok(16_384.0));
        for bad in ["0x1__0p0", "0x1_.8p1", "0x1p_1", "0x1_p1", "0x1p1_"] {
            assert!(parse_go_float(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(go_quote("é"), "\"é\"");
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
        assert_eq!(go_quote("\u{7f}\u{85}"), r#""\x7f\u0085""#);
    }

    #[test]
    fn byte_sizes_print_so_that_they_read_back() {
        for bytes in [
            0,
            1,
            999,
            1_000,
            1_024,
            2_560,
            20_000_000,
            1 << 50,
            u64::MAX >> 11,
        ] {
            let text = format_bytes(bytes);
            assert_eq!(parse_bytes(&text), Ok(bytes), "{bytes} printed as {text}");
        }
        assert_eq!(format_bytes(20_000_000), "20MB");
        assert_eq!(format_bytes(1_024), "1KiB");
    }
}
