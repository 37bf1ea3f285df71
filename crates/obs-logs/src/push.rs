//! Decoding of Loki push requests (`POST /loki/api/v1/push`): protobuf `logproto.PushRequest`
//! (the body already snappy-decoded by the caller) and JSON.
//!
//! A stream whose label string does not parse is refused with a message and the other streams
//! are kept, as Loki's distributor does; a body that is not a push request at all is an error.

use obs_core::series::Labels;

use crate::model::{LogEntry, StreamEntries};

/// What a push request held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DecodedPush {
    /// Streams whose labels are valid.
    pub streams: Vec<StreamEntries>,
    /// One message per refused stream, with how many entries it carried.
    pub refused: Vec<(String, usize)>,
}

/// Why a push body could not be decoded at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushDecodeError {
    /// Not a protobuf `PushRequest`.
    #[error("failed to parse the push request as protobuf: {0}")]
    Protobuf(String),
    /// Not the JSON push shape.
    #[error("failed to parse the push request as JSON: {0}")]
    Json(String),
}

impl obs_core::error::Classify for PushDecodeError {
    fn kind(&self) -> obs_core::error::ErrorKind {
        obs_core::error::ErrorKind::BadInput
    }
}

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// The streams.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The labels in selector form: `{a="b", c="d"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// The entries.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Internal to Loki; ignored.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// When.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<ProtoTimestamp>,
    /// The line (bytes on the wire: invalid UTF-8 is replaced, not refused).
    #[prost(bytes = "vec", tag = "2")]
    pub line: Vec<u8>,
    /// Structured metadata.
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
    /// Labels parsed at query time (responses only; ignored on push).
    #[prost(message, repeated, tag = "4")]
    pub parsed: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct ProtoTimestamp {
    /// Seconds since the epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds within the second.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// Decodes a protobuf push body (after snappy).
pub fn decode_protobuf(body: &[u8]) -> Result<DecodedPush, PushDecodeError> {
    let request = <PushRequest as prost::Message>::decode(body)
        .map_err(|err| PushDecodeError::Protobuf(err.to_string()))?;
    let mut decoded = DecodedPush::default();
    for stream in request.streams {
        let labels = match parse_labels(&stream.labels) {
            Ok(labels) => labels,
            Err(message) => {
                decoded.refused.push((
                    format!(
                        "error parsing labels '{}': {message}",
                        abbreviated(&stream.labels)
                    ),
                    stream.entries.len(),
                ));
                continue;
            }
        };
        let entries = stream
            .entries
            .into_iter()
            .map(|entry| {
                let timestamp_ns = entry.timestamp.map_or(0, |ts| {
                    ts.seconds
                        .saturating_mul(1_000_000_000)
                        .saturating_add(i64::from(ts.nanos))
                });
                LogEntry {
                    timestamp_ns,
                    line: String::from_utf8(entry.line)
                        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()),
                    metadata: entry
                        .structured_metadata
                        .into_iter()
                        .map(|pair| (pair.name, pair.value))
                        .collect(),
                }
            })
            .collect();
        decoded.streams.push(StreamEntries { labels, entries });
    }
    Ok(decoded)
}

/// At most the first 200 bytes of `text` (on a character boundary), marked when cut: error
/// messages quote what the client sent without echoing megabytes of it.
fn abbreviated(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// Decodes a JSON push body:
/// `{"streams":[{"stream":{"a":"b"},"values":[["<ns>","line",{"k":"v"}]]}]}`.
pub fn decode_json(body: &[u8]) -> Result<DecodedPush, PushDecodeError> {
    let json_error = |message: String| PushDecodeError::Json(message);
    // Invalid UTF-8 in a line is replaced, as Loki keeps such lines.
    let text = String::from_utf8_lossy(body);
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|err| json_error(err.to_string()))?;
    let streams = value
        .get("streams")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| json_error("expected an object with a \"streams\" array".to_owned()))?;
    let mut decoded = DecodedPush::default();
    for (index, stream) in streams.iter().enumerate() {
        let values = match stream.get("values") {
            None | Some(serde_json::Value::Null) => &[][..],
            Some(serde_json::Value::Array(values)) => values.as_slice(),
            Some(_) => {
                return Err(json_error(format!("streams[{index}].values is not an array")));
            }
        };
        let mut pairs = Vec::new();
        match stream.get("stream") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(map)) => {
                for (name, value) in map {
                    let value = match value {
                        serde_json::Value::String(text) => text.clone(),
                        serde_json::Value::Number(number) => number.to_string(),
                        serde_json::Value::Bool(flag) => flag.to_string(),
                        _ => {
                            return Err(json_error(format!(
                                "streams[{index}].stream.{name} must be a string or a number"
                            )));
                        }
                    };
                    pairs.push((name.clone(), value));
                }
            }
            Some(_) => {
                return Err(json_error(format!("streams[{index}].stream is not an object")));
            }
        }
        let mut entries = Vec::with_capacity(values.len());
        for (position, value) in values.iter().enumerate() {
            entries.push(
                json_entry(value).map_err(|message| {
                    json_error(format!("streams[{index}].values[{position}]: {message}"))
                })?,
            );
        }
        match Labels::from_pairs(pairs) {
            Ok(labels) => decoded.streams.push(StreamEntries { labels, entries }),
            Err(err) => decoded.refused.push((
                format!("error parsing labels of streams[{index}]: {err}"),
                entries.len(),
            )),
        }
    }
    Ok(decoded)
}

fn json_entry(value: &serde_json::Value) -> Result<LogEntry, String> {
    let items = value
        .as_array()
        .ok_or("an entry must be an array [\"<unix ns>\", \"<line>\"]")?;
    let (Some(ts), Some(line)) = (items.first(), items.get(1)) else {
        return Err("an entry must have a timestamp and a line".to_owned());
    };
    let ts = ts
        .as_str()
        .ok_or("the timestamp must be a string of nanoseconds since the epoch")?;
    let timestamp_ns: i64 = ts
        .parse()
        .map_err(|_| format!("invalid timestamp {ts:?}: expected nanoseconds since the epoch"))?;
    let line = line.as_str().ok_or("the line must be a string")?.to_owned();
    let mut metadata = Vec::new();
    match items.get(2) {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(map)) => {
            // Either a flat object, or the query-response form with `structuredMetadata`.
            let flat = match map.get("structuredMetadata") {
                Some(serde_json::Value::Object(inner)) => inner,
                _ => map,
            };
            for (name, value) in flat {
                let serde_json::Value::String(text) = value else {
                    if flat.len() != map.len() || name == "parsed" {
                        continue;
                    }
                    return Err(format!("structured metadata {name:?} must be a string"));
                };
                metadata.push((name.clone(), text.clone()));
            }
        }
        Some(_) => return Err("the third element (structured metadata) must be an object".to_owned()),
    }
    if items.len() > 3 {
        return Err("an entry has at most three elements".to_owned());
    }
    Ok(LogEntry {
        timestamp_ns,
        line,
        metadata,
    })
}

/// Parses a label set in selector form, `{a="b", c="d"}` (Go string escapes; backquoted raw
/// strings too), as Loki's push path reads `StreamAdapter.labels`.
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut cursor = Cursor {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    cursor.skip_space();
    cursor.expect(b'{')?;
    let mut pairs = Vec::new();
    loop {
        cursor.skip_space();
        if cursor.eat(b'}') {
            break;
        }
        let name = cursor.identifier()?;
        cursor.skip_space();
        cursor.expect(b'=')?;
        if cursor.peek() == Some(b'~') {
            return Err(format!(
                "only equality matchers are allowed in stream labels, at {name}"
            ));
        }
        cursor.skip_space();
        let value = cursor.string()?;
        pairs.push((name, value));
        cursor.skip_space();
        if cursor.eat(b',') {
            continue;
        }
        cursor.expect(b'}')?;
        break;
    }
    cursor.skip_space();
    if cursor.pos != cursor.bytes.len() {
        return Err(format!(
            "unexpected text after the closing brace at offset {}",
            cursor.pos
        ));
    }
    Labels::from_pairs(pairs).map_err(|err| err.to_string())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at offset {}, found {}",
                byte as char,
                self.pos,
                self.peek()
                    .map_or_else(|| "the end".to_owned(), |found| format!("'{}'", found as char))
            ))
        }
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|byte| byte.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn identifier(&mut self) -> Result<String, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(format!("expected a label name at offset {start}"));
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    fn string(&mut self) -> Result<String, String> {
        let start = self.pos;
        match self.peek() {
            Some(b'`') => {
                self.pos += 1;
                let Some(len) = self.text[self.pos..].find('`') else {
                    return Err(format!("unterminated raw string at offset {start}"));
                };
                let value = self.text[self.pos..self.pos + len].to_owned();
                self.pos += len + 1;
                Ok(value)
            }
            Some(b'"') => {
                self.pos += 1;
                let mut end = self.pos;
                loop {
                    match self.bytes.get(end) {
                        None => return Err(format!("unterminated string at offset {start}")),
                        Some(b'\\') => end += 2,
                        Some(b'"') => break,
                        Some(_) => end += 1,
                    }
                }
                let body = self
                    .text
                    .get(self.pos..end)
                    .ok_or_else(|| format!("unterminated string at offset {start}"))?;
                self.pos = end + 1;
                unquote_go(body).map_err(|err| format!("invalid string at offset {start}: {err}"))
            }
            _ => Err(format!("expected a quoted label value at offset {start}")),
        }
    }
}

/// The value of the inside of a Go double-quoted string literal.
pub fn unquote_go(body: &str) -> Result<String, String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(ch) = chars.next() {
        if ch == '\n' {
            return Err("newline in string".to_owned());
        }
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        let escape = chars.next().ok_or("trailing backslash")?;
        match escape {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => return Err("\\' is not allowed in a double-quoted string".to_owned()),
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16).map_err(|_| format!("invalid \\x escape {hex:?}"))?;
                if byte >= 0x80 {
                    return Err("\\x escapes above 7f are not supported".to_owned());
                }
                out.push(char::from(byte));
            }
            'u' | 'U' => {
                let digits = if escape == 'u' { 4 } else { 8 };
                let hex: String = chars.by_ref().take(digits).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == digits)
                    .ok_or_else(|| format!("invalid \\{escape} escape {hex:?}"))?;
                out.push(char::from_u32(code).ok_or_else(|| format!("invalid code point {code:#x}"))?);
            }
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let octal = format!("{escape}{rest}");
                let byte = u8::from_str_radix(&octal, 8)
                    .ok()
                    .filter(|_| octal.len() == 3)
                    .ok_or_else(|| format!("invalid octal escape {octal:?}"))?;
                if byte >= 0x80 {
                    return Err("octal escapes above 177 are not supported".to_owned());
                }
                out.push(char::from(byte));
            }
            other => return Err(format!("unknown escape \\{other}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn label_strings_parse_like_selectors() {
        let labels = parse_labels(r#"{job="varlogs", filename="/var/log/a\"b.log",  x = `raw\n` }"#).unwrap();
        assert_eq!(labels.get("job"), Some("varlogs"));
        assert_eq!(labels.get("filename"), Some("/var/log/a\"b.log"));
        assert_eq!(labels.get("x"), Some("raw\\n"));
        assert!(parse_labels("{}").unwrap().is_empty());
        for bad in [
            "",
            "job=\"x\"",
            "{job=\"x\"",
            "{job=~\"x\"}",
            "{job=\"x\"} extra",
            "{1job=\"x\"}",
            "{job=x}",
            "{job=\"\\q\"}",
            "{job=\"x\", job=\"y\"}",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn protobuf_requests_decode_and_bad_streams_are_refused_alone() {
        let request = PushRequest {
            streams: vec![
                StreamAdapter {
                    labels: "{app=\"jarvis\"}".to_owned(),
                    entries: vec![EntryAdapter {
                        timestamp: Some(ProtoTimestamp {
                            seconds: 1_700_000_000,
                            nanos: 5,
                        }),
                        line: b"hello".to_vec(),
                        structured_metadata: vec![LabelPairAdapter {
                            name: "trace_id".to_owned(),
                            value: "0af7".to_owned(),
                        }],
                        parsed: Vec::new(),
                    }],
                    hash: 0,
                },
                StreamAdapter {
                    labels: "not labels".to_owned(),
                    entries: vec![EntryAdapter::default(), EntryAdapter::default()],
                    hash: 0,
                },
            ],
        };
        let decoded = decode_protobuf(&request.encode_to_vec()).unwrap();
        assert_eq!(decoded.streams.len(), 1);
        let entry = &decoded.streams[0].entries[0];
        assert_eq!(entry.timestamp_ns, 1_700_000_000_000_000_005);
        assert_eq!(entry.metadata, vec![("trace_id".to_owned(), "0af7".to_owned())]);
        assert_eq!(decoded.refused.len(), 1);
        assert_eq!(decoded.refused[0].1, 2);
        assert!(decode_protobuf(b"\xff\xff\xff").is_err());
        // Invalid UTF-8 in a line is replaced, in both formats.
        let bad = PushRequest {
            streams: vec![StreamAdapter {
                labels: "{app=\"x\"}".to_owned(),
                entries: vec![EntryAdapter {
                    line: b"ok \xff\xfe end".to_vec(),
                    ..EntryAdapter::default()
                }],
                hash: 0,
            }],
        };
        let decoded = decode_protobuf(&bad.encode_to_vec()).unwrap();
        assert_eq!(decoded.streams[0].entries[0].line, "ok \u{fffd}\u{fffd} end");
        let json = b"{\"streams\":[{\"stream\":{\"a\":\"b\"},\"values\":[[\"1\",\"x\xff y\"]]}]}";
        assert_eq!(
            decode_json(json).unwrap().streams[0].entries[0].line,
            "x\u{fffd} y"
        );
    }

    #[test]
    fn json_requests_decode_with_metadata_and_number_labels() {
        let body = br#"{"streams":[{"stream":{"app":"jarvis","port":9090},
            "values":[["1700000000000000001","a"],["1700000000000000002","b",{"run_id":"r-1"}],
                      ["3","c",{"structuredMetadata":{"k":"v"},"parsed":{"p":"q"}}]]}]}"#;
        let decoded = decode_json(body).unwrap();
        let stream = &decoded.streams[0];
        assert_eq!(stream.labels.get("port"), Some("9090"));
        assert_eq!(
            stream.entries[1].metadata,
            vec![("run_id".to_owned(), "r-1".to_owned())]
        );
        assert_eq!(stream.entries[2].metadata, vec![("k".to_owned(), "v".to_owned())]);
        for bad in [
            &br#"{"streams":[{"stream":{"a":"b"},"values":[[1700000000000000001,"a"]]}]}"#[..],
            br#"{"streams":[{"stream":{"a":"b"},"values":[["x","a"]]}]}"#,
            br#"{"streams":[{"stream":{"a":"b"},"values":[["1",5]]}]}"#,
            br#"{"streams":5}"#,
            br#"not json"#,
        ] {
            assert!(decode_json(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
