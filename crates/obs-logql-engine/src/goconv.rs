//! Go's text-to-number conversions as Loki applies them to label values, with Go's error
//! messages (they end up in `__error_details__`):
//!
//! - [`parse_float`]: `strconv.ParseFloat(s, 64)` (numeric label filters, `unwrap`);
//! - [`parse_duration`]: `time.ParseDuration` (duration label filters, `unwrap duration()`);
//! - [`parse_bytes`]: `humanize.ParseBytes` (byte-size label filters, `unwrap bytes()`);
//! - [`parse_int_base0`]: `strconv.ParseInt(s, 0, 64)`, which template functions use;
//! - [`quote`]: `strconv.Quote`, for messages and label strings.

/// `strconv.Quote`: a double-quoted Go string literal.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) <= 0xFFFF {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `strconv.ParseFloat(text, 64)`: decimal and hexadecimal floats, `inf`, `infinity` and
/// `nan` (any case). The error is Go's message.
pub(crate) fn parse_float(text: &str) -> Result<f64, String> {
    let syntax_error = || format!("strconv.ParseFloat: parsing {}: invalid syntax", quote(text));
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
        // Go takes no sign before NaN.
        if unsigned.len() != text.len() {
            return Err(syntax_error());
        }
        return Ok(f64::NAN);
    }
    let value = if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex).ok_or_else(syntax_error)?
    } else {
        if !is_decimal_float(unsigned) {
            return Err(syntax_error());
        }
        unsigned.parse::<f64>().map_err(|_| syntax_error())?
    };
    if value.is_infinite() {
        return Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            quote(text)
        ));
    }
    Ok(signed(value))
}

/// `digits [. digits] [e [sign] digits]` with at least one mantissa digit.
fn is_decimal_float(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut index = 0;
    let mut mantissa_digits = 0;
    while index < bytes.len() && bytes[index].is_ascii_digit() {
        index += 1;
        mantissa_digits += 1;
    }
    if index < bytes.len() && bytes[index] == b'.' {
        index += 1;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return false;
    }
    if index < bytes.len() && (bytes[index] == b'e' || bytes[index] == b'E') {
        index += 1;
        if index < bytes.len() && (bytes[index] == b'+' || bytes[index] == b'-') {
            index += 1;
        }
        let exponent_start = index;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            index += 1;
        }
        if index == exponent_start {
            return false;
        }
    }
    index == bytes.len()
}

/// The part of a hexadecimal float after `0x`: hex digits with an optional point, then a
/// mandatory binary exponent `p[sign]digits`; underscores between digits are allowed.
fn parse_hex_float(text: &str) -> Option<f64> {
    let (mantissa, exponent) = text.split_once('p')?;
    let mantissa = mantissa.replace('_', "");
    let exponent: i32 = exponent.replace('_', "").parse().ok()?;
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((&mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut value = 0f64;
    for c in int_part.chars() {
        value = value * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        value += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(value * 2f64.powi(exponent))
}

const NANOS_PER_UNIT: [(&str, u64); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("", 0),
];

/// `time.ParseDuration`: `1h30m`, `1.5s`, `-300ms`, `2µs`; nanoseconds. The error is Go's.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", quote(text));
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Leading integer.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut whole: u64 = 0;
        for digit in rest[..int_len].bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|value| value.checked_add(u64::from(digit - b'0')))
                .filter(|value| *value <= LIMIT)
                .ok_or_else(invalid)?;
        }
        rest = &rest[int_len..];
        let had_int = int_len > 0;
        // Optional fraction: digits kept while they fit, as Go's leadingFraction.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut had_fraction = false;
        if rest.starts_with('.') {
            rest = &rest[1..];
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            had_fraction = frac_len > 0;
            let mut overflow = false;
            for digit in rest[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|value| value.checked_add(u64::from(digit - b'0')))
                    .filter(|value| *value <= LIMIT)
                {
                    Some(value) => {
                        fraction = value;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            rest = &rest[frac_len..];
        }
        if !had_int && !had_fraction {
            return Err(invalid());
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(index, _)| index);
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", quote(text)));
        }
        let unit_text = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(&(_, unit)) = NANOS_PER_UNIT
            .iter()
            .find(|(name, nanos)| *name == unit_text && *nanos > 0)
        else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                quote(unit_text),
                quote(text)
            ));
        };
        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut value = whole * unit;
        if fraction > 0 {
            value = value.saturating_add((fraction as f64 * (unit as f64 / scale)) as u64);
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total = total
            .checked_add(value)
            .filter(|sum| *sum <= LIMIT)
            .ok_or_else(invalid)?;
    }
    if negative {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// `humanize.ParseBytes`: `20MB` (powers of 1000), `1.5KiB` (powers of 1024), `42`, with
/// commas in the number ignored. The error is the library's.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let number_len = text
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.' || *b == b',')
        .count();
    let number = text[..number_len].replace(',', "");
    let value = parse_float(&number)?;
    let suffix = text[number_len..].trim().to_lowercase();
    let multiplier: u64 = match suffix.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "ti" | "tib" => 1 << 40,
        "p" | "pb" => 1_000_000_000_000_000,
        "pi" | "pib" => 1 << 50,
        "e" | "eb" => 1_000_000_000_000_000_000,
        "ei" | "eib" => 1 << 60,
        _ => return Err(format!("unhandled size name: {suffix}")),
    };
    let bytes = value * multiplier as f64;
    if bytes >= u64::MAX as f64 {
        return Err(format!("too large: {text}"));
    }
    // Go converts a negative or NaN float to an unsigned integer without complaint; a
    // saturating cast is the portable reading.
    Ok(bytes as u64)
}

/// `strconv.ParseInt(text, 0, 64)`: an optional sign, then `0x`, `0o`, `0b` or a leading `0`
/// (octal) selects the base. `None` where Go returns an error.
pub(crate) fn parse_int_base0(text: &str) -> Option<i64> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.replace('_', ""))
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.replace('_', ""))
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.replace('_', ""))
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].replace('_', ""))
    } else {
        (10, lower.clone())
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(&digits, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_parse_like_strconv() {
        assert_eq!(parse_float("1.5"), Ok(1.5));
        assert_eq!(parse_float("-2e3"), Ok(-2000.0));
        assert_eq!(parse_float(".5"), Ok(0.5));
        assert_eq!(parse_float("5."), Ok(5.0));
        assert_eq!(parse_float("+Inf"), Ok(f64::INFINITY));
        assert_eq!(parse_float("0x1p-2"), Ok(0.25));
        assert!(parse_float("NaN").unwrap().is_nan());
        assert_eq!(
            parse_float("abc"),
            Err(r#"strconv.ParseFloat: parsing "abc": invalid syntax"#.to_owned())
        );
        assert_eq!(
            parse_float("1e400"),
            Err(r#"strconv.ParseFloat: parsing "1e400": value out of range"#.to_owned())
        );
        for bad in ["", "1_000", "1e", "e5", "+nan", ".", "1.2.3", " 1"] {
            assert!(parse_float(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_parse_like_time_parse_duration() {
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("-300ms"), Ok(-300_000_000));
        assert_eq!(parse_duration("2µs"), Ok(2_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration(".5m"), Ok(30_000_000_000));
        assert_eq!(
            parse_duration("1"),
            Err(r#"time: missing unit in duration "1""#.to_owned())
        );
        assert_eq!(
            parse_duration("1x"),
            Err(r#"time: unknown unit "x" in duration "1x""#.to_owned())
        );
        assert_eq!(
            parse_duration("abc"),
            Err(r#"time: invalid duration "abc""#.to_owned())
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn byte_sizes_parse_like_humanize() {
        assert_eq!(parse_bytes("42"), Ok(42));
        assert_eq!(parse_bytes("20MB"), Ok(20_000_000));
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
    fn integers_parse_with_base_prefixes() {
        assert_eq!(parse_int_base0("42"), Some(42));
        assert_eq!(parse_int_base0("-0x1f"), Some(-31));
        assert_eq!(parse_int_base0("010"), Some(8));
        assert_eq!(parse_int_base0("0b101"), Some(5));
        assert_eq!(parse_int_base0("0"), Some(0));
        assert_eq!(parse_int_base0("1.5"), None);
        assert_eq!(parse_int_base0(""), None);
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("a\"b\\c\n"), r#""a\"b\\c\n""#);
        assert_eq!(quote("é"), "\"é\"");
        assert_eq!(quote("\u{1}"), r#""\x01""#);
    }
}
