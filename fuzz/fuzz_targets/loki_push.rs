//! Arbitrary bytes as Loki push bodies (protobuf and JSON) and OTLP logs export requests: the
//! decoders never panic, every decoded stream has valid labels, a label string that parses
//! prints back to the same labels, and OTLP conversion gives every stream a service_name. The
//! top-level fields read from a line (for correlation keys and levels) have names as Loki's
//! parsers sanitize them, and a JSON line's string fields are exactly what a JSON parser reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use obs_logs::push::{decode_json, decode_protobuf, parse_labels};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;

/// Labels in selector form with Go string escapes, as a push client writes them.
fn selector(labels: &obs_core::series::Labels) -> String {
    let mut out = String::from("{");
    for (index, label) in labels.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        out.push_str(&label.name);
        out.push_str("=\"");
        for ch in label.value.chars() {
            match ch {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                ch if (ch as u32) < 0x20 || ch == '\u{7f}' => out.push_str(&format!("\\x{:02x}", ch as u32)),
                ch => out.push(ch),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The fields of a line: sanitized names; for a whole JSON object, its top-level strings.
fn check_fields(line: &str) {
    let fields = obs_logs::keys::top_level_fields(line);
    for (name, _) in &fields {
        assert!(
            !name.is_empty()
                && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
                && !name.starts_with(|ch: char| ch.is_ascii_digit()),
            "{line:?}: {name:?}"
        );
    }
    let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(line) else {
        return;
    };
    for (name, value) in &object {
        let valid = !name.is_empty()
            && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
            && !name.starts_with(|ch: char| ch.is_ascii_digit());
        if let (true, serde_json::Value::String(expected)) = (valid, value) {
            assert!(
                fields.iter().any(|(field, got)| field == name && got == expected),
                "{line:?}: {name} = {expected:?} not in {fields:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for decoded in [decode_protobuf(data), decode_json(data)].into_iter().flatten() {
        for stream in &decoded.streams {
            let printed = selector(&stream.labels);
            assert_eq!(parse_labels(&printed).as_ref(), Ok(&stream.labels), "{printed}");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(labels) = parse_labels(text) {
            assert_eq!(parse_labels(&selector(&labels)), Ok(labels));
        }
        check_fields(text);
    }
    let requests = [
        ExportLogsServiceRequest::decode(data).ok(),
        serde_json::from_slice::<ExportLogsServiceRequest>(data).ok(),
    ];
    for request in requests.into_iter().flatten() {
        let converted = obs_logs::otlp::convert(&request, 1);
        for stream in &converted.streams {
            assert!(stream.labels.get("service_name").is_some());
        }
    }
});
