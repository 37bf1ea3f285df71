//! Query results in the JSON of Prometheus' HTTP API, byte for byte: `{"resultType":…,
//! "result":…}`, timestamps as seconds with up to three decimals (`1.5` is written `1.500`, as
//! Prometheus' `marshalTimestamp` does), values as strings in Go's `strconv.FormatFloat`
//! forms (`'f'` between 1e-6 and 1e21, `'e'` outside: `1e+21`, `1.5e-07`), `NaN`, `+Inf`,
//! `-Inf`.

use std::fmt::Write as _;

use obs_core::series::Labels;

use crate::Value;

/// A sample value as Prometheus writes it (without the quotes).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        return format_exponent(v);
    }
    if v == 0.0 && v.is_sign_negative() {
        return "-0".to_owned();
    }
    format!("{v}")
}

/// A finite float in Go's `strconv.FormatFloat(v, 'e', -1, 64)` form: shortest digits, an
/// exponent with a sign and at least two digits (`1.5e-07`, `1e+21`, `0e+00`). Rust writes
/// `1.5e-7`.
pub fn format_exponent(v: f64) -> String {
    let text = format!("{v:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    let padding = if digits.len() < 2 { "0" } else { "" };
    format!("{mantissa}e{sign}{padding}{digits}")
}

/// A millisecond timestamp as Prometheus writes it: seconds, and the milliseconds as three
/// digits when there are any.
pub fn format_timestamp(t: i64, out: &mut String) {
    let mut t = t;
    if t < 0 {
        out.push('-');
        t = -t;
    }
    let _ = write!(out, "{}", t / 1000);
    let fraction = t % 1000;
    if fraction != 0 {
        let _ = write!(out, ".{fraction:03}");
    }
}

/// A JSON string literal.
pub fn write_string(value: &str, out: &mut String) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go's encoder escapes these for HTML safety; Prometheus' JSON library does too.
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A label set as a JSON object, names in order.
pub fn write_labels(labels: &Labels, out: &mut String) {
    out.push('{');
    for (index, label) in labels.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(&label.name, out);
        out.push(':');
        write_string(&label.value, out);
    }
    out.push('}');
}

fn write_point(t: i64, v: f64, out: &mut String) {
    out.push('[');
    format_timestamp(t, out);
    out.push_str(",\"");
    out.push_str(&format_value(v));
    out.push_str("\"]");
}

/// The `data` object of a query response.
pub fn write_data(value: &Value, out: &mut String) {
    match value {
        Value::Scalar { t, v } => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            write_point(*t, *v, out);
        }
        Value::String { t, v } => {
            out.push_str("{\"resultType\":\"string\",\"result\":[");
            format_timestamp(*t, out);
            out.push(',');
            write_string(v, out);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (index, sample) in samples.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&sample.labels, out);
                out.push_str(",\"value\":");
                write_point(sample.t, sample.v, out);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (index, one) in series.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&one.labels, out);
                out.push_str(",\"values\":[");
                for (position, (t, v)) in one.points.iter().enumerate() {
                    if position > 0 {
                        out.push(',');
                    }
                    write_point(*t, *v, out);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// `{"status":"success","data":…}` for a query result.
pub fn success_body(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"status\":\"success\",\"data\":");
    write_data(value, &mut out);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_like_go() {
        let cases = [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-07"),
            (1e-6, "0.000001"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e100, "1e+100"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.0, "0"),
            (-0.0, "-0"),
            (5e-324, "5e-324"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_value(value), expected, "{value}");
        }
    }

    #[test]
    fn timestamps_are_seconds_with_millisecond_digits() {
        let format = |t| {
            let mut out = String::new();
            format_timestamp(t, &mut out);
            out
        };
        assert_eq!(format(1_500), "1.500");
        assert_eq!(format(1_050), "1.050");
        assert_eq!(format(1_005), "1.005");
        assert_eq!(format(2_000), "2");
        assert_eq!(format(-1_500), "-1.500");
    }
}
