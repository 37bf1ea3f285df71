//! Go's `strconv.ParseInt(s, 0, 64)`, with which the template functions' Sprig `toInt64`
//! reads strings: [`parse_int_base0`].
//!
//! The conversions Loki applies to label values (`strconv.ParseFloat`, `time.ParseDuration`,
//! `humanize.ParseBytes`) and `strconv.Quote` are the parser's, in `obs_logql::units`.

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
    fn integers_parse_with_base_prefixes() {
        assert_eq!(parse_int_base0("42"), Some(42));
        assert_eq!(parse_int_base0("-0x1f"), Some(-31));
        assert_eq!(parse_int_base0("010"), Some(8));
        assert_eq!(parse_int_base0("0b101"), Some(5));
        assert_eq!(parse_int_base0("0"), Some(0));
        assert_eq!(parse_int_base0("1.5"), None);
        assert_eq!(parse_int_base0(""), None);
    }
}
