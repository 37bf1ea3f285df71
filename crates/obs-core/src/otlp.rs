//! OpenTelemetry attribute values as text, the one conversion every signal's OTLP ingest uses:
//! strings as they are, booleans and numbers as their shortest decimal form, arrays and maps
//! as JSON, bytes as standard base64 — as the OpenTelemetry specification maps non-string
//! attributes to strings (for Prometheus labels, Loki labels and structured metadata alike).

use std::fmt::Write as _;

use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};

/// An attribute value as a label value.
pub fn any_value_string(value: Option<&AnyValue>) -> String {
    let Some(value) = value.and_then(|value| value.value.as_ref()) else {
        return String::new();
    };
    match value {
        any_value::Value::StringValue(text) => text.clone(),
        other => {
            let mut text = String::new();
            write_any_value(other, &mut text, false);
            text
        }
    }
}

/// Writes a value; inside arrays and maps (`nested`), strings are JSON strings.
fn write_any_value(value: &any_value::Value, text: &mut String, nested: bool) {
    match value {
        any_value::Value::StringValue(string) if nested => write_json_string(string, text),
        any_value::Value::StringValue(string) => text.push_str(string),
        any_value::Value::BoolValue(flag) => text.push_str(if *flag { "true" } else { "false" }),
        any_value::Value::IntValue(int) => {
            let _ = write!(text, "{int}");
        }
        any_value::Value::DoubleValue(double) => {
            if double.is_finite() {
                let _ = write!(text, "{double}");
            } else if nested {
                write_json_string(&format_float(*double), text);
            } else {
                text.push_str(&format_float(*double));
            }
        }
        any_value::Value::BytesValue(bytes) => {
            if nested {
                text.push('"');
            }
            base64(bytes, text);
            if nested {
                text.push('"');
            }
        }
        any_value::Value::ArrayValue(array) => {
            text.push('[');
            for (index, item) in array.values.iter().enumerate() {
                if index > 0 {
                    text.push(',');
                }
                match &item.value {
                    Some(item) => write_any_value(item, text, true),
                    None => text.push_str("null"),
                }
            }
            text.push(']');
        }
        any_value::Value::KvlistValue(list) => {
            text.push('{');
            for (index, entry) in list.values.iter().enumerate() {
                if index > 0 {
                    text.push(',');
                }
                write_json_string(&entry.key, text);
                text.push(':');
                match entry.value.as_ref().and_then(|value| value.value.as_ref()) {
                    Some(item) => write_any_value(item, text, true),
                    None => text.push_str("null"),
                }
            }
            text.push('}');
        }
        any_value::Value::StringValueStrindex(index) => {
            let _ = write!(text, "{index}");
        }
    }
}

fn write_json_string(value: &str, text: &mut String) {
    text.push('"');
    for c in value.chars() {
        match c {
            '"' => text.push_str("\\\""),
            '\\' => text.push_str("\\\\"),
            '\n' => text.push_str("\\n"),
            '\r' => text.push_str("\\r"),
            '\t' => text.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(text, "\\u{:04x}", c as u32);
            }
            c => text.push(c),
        }
    }
    text.push('"');
}

/// Standard base64 with padding.
fn base64(bytes: &[u8], text: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
}

/// A float as Prometheus writes `le` and `quantile` values and OTLP attribute doubles become
/// text: shortest form, `+Inf`, `-Inf`, `NaN`.
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value}")
    }
}

/// Lowercase hex of bytes: how OTLP's JSON mapping, Tempo and Loki write trace and span ids.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    text
}

/// Standard or URL-safe base64, padded or not (the generic protobuf JSON mapping of bytes,
/// which some OTLP exporters use for ids); `None` for any other character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValue, KeyValueList};

    use super::*;

    fn value(value: any_value::Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    #[test]
    fn values_format_as_the_specification_maps_them() {
        assert_eq!(any_value_string(None), "");
        assert_eq!(
            any_value_string(Some(&value(any_value::Value::StringValue("a\"b".into())))),
            "a\"b"
        );
        assert_eq!(
            any_value_string(Some(&value(any_value::Value::IntValue(-3)))),
            "-3"
        );
        assert_eq!(
            any_value_string(Some(&value(any_value::Value::DoubleValue(1.5)))),
            "1.5"
        );
        assert_eq!(
            any_value_string(Some(&value(any_value::Value::BoolValue(true)))),
            "true"
        );
        assert_eq!(
            any_value_string(Some(&value(any_value::Value::BytesValue(b"hi!".to_vec())))),
            "aGkh"
        );
        let array = any_value::Value::ArrayValue(ArrayValue {
            values: vec![
                value(any_value::Value::StringValue("x".into())),
                value(any_value::Value::DoubleValue(f64::NAN)),
            ],
        });
        assert_eq!(any_value_string(Some(&value(array))), r#"["x","NaN"]"#);
        let map = any_value::Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "k".into(),
                value: Some(value(any_value::Value::IntValue(1))),
                ..Default::default()
            }],
        });
        assert_eq!(any_value_string(Some(&value(map))), r#"{"k":1}"#);
    }
}
