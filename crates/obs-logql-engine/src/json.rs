//! The JSON stages: `| json`, `| json label="path"` and `| unpack`.
//!
//! Loki reads JSON with a lenient scanner (`grafana/jsonparser`), not a validating decoder,
//! and its behaviour shows through: fields are taken in document order until the first syntax
//! error (the fields before it stay, and `__error__` is set), numbers are kept as written
//! (`1.0` stays `1.0`), a duplicate key keeps its first value, text after the top-level object
//! is ignored. The scanner here reproduces that scanner's rules and error messages rather than
//! using `serde_json`.

use std::borrow::Cow;

use obs_logql::{JsonExtraction, JsonPathSegment};

use crate::labels::{Category, DUPLICATE_SUFFIX, ERR_JSON, LabelsBuilder, sanitize_label_key};

const MALFORMED_JSON: &str = "Malformed JSON error";
const MALFORMED_STRING: &str = "Value is string, but can't find closing '\"' symbol";
const MALFORMED_ARRAY: &str = "Value is array, but can't find closing ']' symbol";
const MALFORMED_OBJECT: &str = "Value looks like object, but can't find closing '}' symbol";
const UNKNOWN_VALUE_TYPE: &str = "Unknown value type";
const MALFORMED_STRING_ESCAPE: &str = "Encountered an invalid escape sequence in a string";
/// jsoniter's `ObjectValue` is 6; Loki prints it in this message.
const UNEXPECTED_JSON_OBJECT: &str = "expecting json object(6), but it is not";

/// Nested objects deeper than this are not flattened (a bound on recursion for hostile
/// input; Loki has none).
const MAX_NESTING: usize = 128;

/// The type of a JSON value, as the scanner classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonType {
    String,
    Number,
    Object,
    Array,
    Boolean,
    Null,
}

/// Receives each member of an object: its key, and its value or the error reading it.
type MemberVisitor<'v, 'a> =
    dyn FnMut(&[u8], Result<(&'a [u8], JsonType), &'static str>) -> Result<(), Halt> + 'v;

/// Receives each member of an object: its key, raw value and type.
pub(crate) type ValueVisitor<'v, 'a> = dyn FnMut(&[u8], &'a [u8], JsonType) -> Result<(), Halt> + 'v;

/// Why an iteration over an object stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Halt {
    /// The callback has what it needs.
    Done,
    /// A syntax error, with the scanner's message.
    Malformed(&'static str),
}

fn next_token(data: &[u8]) -> Option<usize> {
    data.iter()
        .position(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
}

fn token_end(data: &[u8]) -> usize {
    data.iter()
        .position(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}' | b']'))
        .unwrap_or(data.len())
}

/// The offset just past the closing quote of a string whose opening quote precedes `data`,
/// and whether the string has escapes.
fn string_end(data: &[u8]) -> (Option<usize>, bool) {
    let mut escaped = false;
    for (index, &byte) in data.iter().enumerate() {
        if byte == b'"' {
            if !escaped {
                return (Some(index + 1), false);
            }
            // Count the backslashes before the quote: an even number closes the string.
            let backslashes = data[..index].iter().rev().take_while(|b| **b == b'\\').count();
            if backslashes % 2 == 0 {
                return (Some(index + 1), true);
            }
        } else if byte == b'\\' {
            escaped = true;
        }
    }
    (None, escaped)
}

/// The offset just past the end of the block that opens at `data[0]`.
fn block_end(data: &[u8], open: u8, close: u8) -> Option<usize> {
    let mut level = 0usize;
    let mut index = 0;
    while index < data.len() {
        match data[index] {
            b'"' => {
                let (end, _) = string_end(&data[index + 1..]);
                index += end?;
            }
            byte if byte == open => level += 1,
            byte if byte == close => {
                level = level.saturating_sub(1);
                if level == 0 {
                    return Some(index + 1);
                }
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// The value starting at `data[offset]`: its raw text (quotes included), type and end.
fn value_at(data: &[u8], offset: usize) -> Result<(&[u8], JsonType, usize), &'static str> {
    let Some(&first) = data.get(offset) else {
        return Err(MALFORMED_JSON);
    };
    let rest = &data[offset..];
    let (value_type, len) = match first {
        b'"' => match string_end(&rest[1..]) {
            (Some(end), _) => (JsonType::String, end + 1),
            (None, _) => return Err(MALFORMED_STRING),
        },
        b'[' => (
            JsonType::Array,
            block_end(rest, b'[', b']').ok_or(MALFORMED_ARRAY)?,
        ),
        b'{' => (
            JsonType::Object,
            block_end(rest, b'{', b'}').ok_or(MALFORMED_OBJECT)?,
        ),
        _ => {
            let len = token_end(rest);
            let token = &rest[..len];
            let value_type = match first {
                b't' | b'f' if token == b"true" || token == b"false" => JsonType::Boolean,
                b'n' if token == b"null" => JsonType::Null,
                b'0'..=b'9' | b'-' => JsonType::Number,
                _ => return Err(UNKNOWN_VALUE_TYPE),
            };
            (value_type, len)
        }
    };
    Ok((&rest[..len], value_type, offset + len))
}

/// The first value in `data` (jsonparser's `Get` without keys): strings without their quotes,
/// and the offset after the value.
fn first_value(data: &[u8]) -> Result<(&[u8], JsonType, usize), &'static str> {
    let start = next_token(data).ok_or(MALFORMED_JSON)?;
    let (raw, value_type, end) = value_at(data, start)?;
    let value = match value_type {
        JsonType::String => &raw[1..raw.len() - 1],
        _ => raw,
    };
    Ok((value, value_type, end))
}

/// Walks the members of the object at the start of `data` in order, handing each key (its
/// escapes resolved) and the member's value (or the error reading it) to `on_member`, until
/// the object ends, `on_member` halts or the syntax breaks.
fn object_members<'a>(data: &'a [u8], on_member: &mut MemberVisitor<'_, 'a>) -> Result<(), Halt> {
    let malformed = |message| Err(Halt::Malformed(message));
    let Some(start) = next_token(data) else {
        return malformed(MALFORMED_OBJECT);
    };
    if data[start] != b'{' {
        return malformed(MALFORMED_OBJECT);
    }
    let mut offset = start + 1;
    match next_token(&data[offset..]) {
        None => return malformed(MALFORMED_JSON),
        Some(skip) => offset += skip,
    }
    if data.get(offset) == Some(&b'}') {
        return Ok(());
    }
    while offset < data.len() {
        match data[offset] {
            b'"' => offset += 1,
            b'}' => return Ok(()),
            _ => return malformed(MALFORMED_OBJECT),
        }
        let (end, escaped) = string_end(&data[offset..]);
        let Some(end) = end else {
            return malformed(MALFORMED_JSON);
        };
        let raw_key = &data[offset..offset + end - 1];
        offset += end;
        let key: Cow<'_, [u8]> = if escaped {
            match unescape(raw_key) {
                Ok(key) => key,
                Err(message) => return malformed(message),
            }
        } else {
            Cow::Borrowed(raw_key)
        };
        match next_token(&data[offset..]) {
            Some(skip) if data[offset + skip] == b':' => offset += skip + 1,
            _ => return malformed(MALFORMED_JSON),
        }
        match first_value(&data[offset..]) {
            Ok((value, value_type, end)) => {
                on_member(&key, Ok((value, value_type)))?;
                offset += end;
            }
            Err(message) => {
                on_member(&key, Err(message))?;
                return malformed(message);
            }
        }
        match next_token(&data[offset..]) {
            None => return malformed(MALFORMED_ARRAY),
            Some(skip) => offset += skip,
        }
        match data[offset] {
            b'}' => return Ok(()),
            b',' => offset += 1,
            _ => return malformed(MALFORMED_OBJECT),
        }
        match next_token(&data[offset..]) {
            None => return malformed(MALFORMED_ARRAY),
            Some(skip) => offset += skip,
        }
    }
    malformed(MALFORMED_OBJECT)
}

/// jsonparser's `ObjectEach`: like [`object_members`], failing on the first bad value.
pub(crate) fn object_each<'a>(data: &'a [u8], on_member: &mut ValueVisitor<'_, 'a>) -> Result<(), Halt> {
    object_members(data, &mut |key, value| match value {
        Ok((value, value_type)) => on_member(key, value, value_type),
        Err(_) => Ok(()),
    })
}

/// The elements of the array at the start of `data`, in order, until `on_element` returns
/// `false` or the syntax breaks (then the rest is ignored).
fn array_elements<'a>(data: &'a [u8], on_element: &mut dyn FnMut(&'a [u8], JsonType) -> bool) {
    let Some(start) = next_token(data) else {
        return;
    };
    if data[start] != b'[' {
        return;
    }
    let mut offset = start + 1;
    loop {
        let Some(skip) = next_token(&data[offset..]) else {
            return;
        };
        offset += skip;
        if data[offset] == b']' {
            return;
        }
        let Ok((value, value_type, end)) = first_value(&data[offset..]) else {
            return;
        };
        if !on_element(value, value_type) {
            return;
        }
        offset += end;
        let Some(skip) = next_token(&data[offset..]) else {
            return;
        };
        offset += skip;
        match data[offset] {
            b',' => offset += 1,
            _ => return,
        }
    }
}

/// The value at `path` inside `data`: `Ok(None)` when the path does not exist, an error when
/// the value it names is malformed.
fn lookup<'a>(
    data: &'a [u8],
    path: &[JsonPathSegment],
) -> Result<Option<(&'a [u8], JsonType)>, &'static str> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(None);
    };
    let mut container: &'a [u8] = data;
    for segment in parents {
        match child(container, segment)? {
            Some((value, JsonType::Object | JsonType::Array)) => container = value,
            _ => return Ok(None),
        }
    }
    child(container, last)
}

fn child<'a>(
    container: &'a [u8],
    segment: &JsonPathSegment,
) -> Result<Option<(&'a [u8], JsonType)>, &'static str> {
    let mut found: Result<Option<(&'a [u8], JsonType)>, &'static str> = Ok(None);
    match segment {
        JsonPathSegment::Key(wanted) => {
            let _ = object_members(container, &mut |key, value| {
                if key != wanted.as_bytes() {
                    return Ok(());
                }
                found = value.map(Some);
                Err(Halt::Done)
            });
        }
        JsonPathSegment::Index(wanted) => {
            let mut index = 0usize;
            array_elements(container, &mut |value, value_type| {
                if index == *wanted {
                    found = Ok(Some((value, value_type)));
                    return false;
                }
                index += 1;
                true
            });
        }
    }
    found
}

fn hex_digit(byte: u8) -> Option<u32> {
    char::from(byte).to_digit(16)
}

fn unicode_escape(data: &[u8]) -> Option<u32> {
    let digits = data.get(2..6)?;
    digits
        .iter()
        .try_fold(0u32, |acc, byte| Some((acc << 4) | hex_digit(*byte)?))
}

/// jsonparser's `Unescape`: `\" \\ \/ \b \f \n \r \t \uXXXX` (with UTF-16 surrogate pairs);
/// anything else is an error. Code points that are not characters become U+FFFD.
pub(crate) fn unescape(data: &[u8]) -> Result<Cow<'_, [u8]>, &'static str> {
    if !data.contains(&b'\\') {
        return Ok(Cow::Borrowed(data));
    }
    let mut out = Vec::with_capacity(data.len());
    let mut index = 0;
    while index < data.len() {
        let byte = data[index];
        if byte != b'\\' {
            out.push(byte);
            index += 1;
            continue;
        }
        let escaped = *data.get(index + 1).ok_or(MALFORMED_STRING_ESCAPE)?;
        let simple = match escaped {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return Err(MALFORMED_STRING_ESCAPE),
        };
        if let Some(simple) = simple {
            out.push(simple);
            index += 2;
            continue;
        }
        let rest = &data[index..];
        let first = unicode_escape(rest).ok_or(MALFORMED_STRING_ESCAPE)?;
        let (code_point, consumed) = if !(0xD800..=0xDFFF).contains(&first) {
            (first, 6)
        } else {
            // jsonparser reads the four hex digits at offset 8 without checking for `\u`.
            let second = rest
                .get(6..)
                .and_then(unicode_escape)
                .ok_or(MALFORMED_STRING_ESCAPE)?;
            if second < 0xDC00 {
                return Err(MALFORMED_STRING_ESCAPE);
            }
            let combined = 0x10000u32
                .wrapping_add((first.wrapping_sub(0xD800)) << 10)
                .wrapping_add(second.wrapping_sub(0xDC00));
            (combined, 12)
        };
        let c = char::from_u32(code_point).unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut buffer = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
        index += consumed;
    }
    Ok(Cow::Owned(out))
}

/// Loki's `unescapeJSONString`: escapes resolved (an invalid escape gives the empty string) and
/// U+FFFD replaced by a space.
pub(crate) fn unescape_json_string(data: &[u8]) -> String {
    let Ok(unescaped) = unescape(data) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&unescaped);
    if text.contains(char::REPLACEMENT_CHARACTER) {
        return text.replace(char::REPLACEMENT_CHARACTER, " ");
    }
    text.into_owned()
}

/// A label value from a scalar JSON value (Loki's `readValue`).
fn read_value(value: &[u8], value_type: JsonType) -> String {
    match value_type {
        JsonType::String => unescape_json_string(value),
        JsonType::Number => String::from_utf8_lossy(value).into_owned(),
        JsonType::Boolean => {
            if value == b"true" {
                "true".to_owned()
            } else {
                "false".to_owned()
            }
        }
        JsonType::Null | JsonType::Object | JsonType::Array => String::new(),
    }
}

/// `| json`: every scalar field becomes a label, nested objects flattened with `_`, arrays
/// and nulls skipped.
pub(crate) fn json_parse(line: &str, labels: &mut LabelsBuilder) {
    if labels.no_labels() {
        return;
    }
    let mut prefix: Vec<String> = Vec::new();
    let result = object_each(line.as_bytes(), &mut |key, value, value_type| {
        json_member(&mut prefix, labels, key, value, value_type)
    });
    if let Err(Halt::Malformed(message)) = result {
        labels.add_error_label(ERR_JSON, Some(message));
    }
}

fn json_member(
    prefix: &mut Vec<String>,
    labels: &mut LabelsBuilder,
    key: &[u8],
    value: &[u8],
    value_type: JsonType,
) -> Result<(), Halt> {
    let key = String::from_utf8_lossy(key);
    match value_type {
        JsonType::String | JsonType::Number | JsonType::Boolean => {
            json_label(prefix, labels, &key, value, value_type);
        }
        JsonType::Object => {
            prefix.push(key.into_owned());
            let sanitized = sanitized_prefix(prefix);
            let result = if prefix.len() <= MAX_NESTING && labels.should_extract_prefix(&sanitized) {
                object_each(value, &mut |key, value, value_type| {
                    json_member(prefix, labels, key, value, value_type)
                })
            } else {
                Ok(())
            };
            prefix.pop();
            return result;
        }
        JsonType::Array | JsonType::Null => {}
    }
    if labels.all_required_extracted() {
        return Err(Halt::Done);
    }
    Ok(())
}

fn json_label(prefix: &[String], labels: &mut LabelsBuilder, key: &str, value: &[u8], value_type: JsonType) {
    let name = if prefix.is_empty() {
        let sanitized = sanitize_label_key(key);
        if sanitized.is_empty() {
            return;
        }
        if labels.clashes(&sanitized) {
            format!("{sanitized}{DUPLICATE_SUFFIX}")
        } else {
            sanitized
        }
    } else {
        let mut parts: Vec<&str> = prefix.iter().map(String::as_str).collect();
        parts.push(key);
        let flattened = sanitized_prefix(&parts);
        if labels.clashes(&flattened) {
            let suffixed = format!("{key}{DUPLICATE_SUFFIX}");
            parts.pop();
            parts.push(&suffixed);
            sanitized_prefix(&parts)
        } else {
            flattened
        }
    };
    if name.is_empty() || !labels.should_extract(&name) || labels.extracted(&name) {
        return;
    }
    labels.set(Category::Parsed, &name, &read_value(value, value_type));
}

/// The flattened name of nested keys: blank parts skipped, the others sanitized and joined
/// with `_` (Loki's `buildSanitizedPrefixFromBuffer`).
fn sanitized_prefix<S: AsRef<str>>(parts: &[S]) -> String {
    let mut out = String::new();
    for (index, part) in parts.iter().enumerate() {
        let part = part.as_ref().trim();
        if part.is_empty() {
            continue;
        }
        if index > 0 && !out.is_empty() {
            out.push('_');
        }
        if out.is_empty() && part.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            out.push('_');
        }
        out.extend(part.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        }));
    }
    out
}

/// `| json label="path", ...`: only the listed paths; a missing path gives the empty value.
pub(crate) fn json_extract(line: &str, extractions: &[JsonExtraction], labels: &mut LabelsBuilder) {
    let data = line.as_bytes();
    let Some(&first) = data.first() else {
        return;
    };
    if labels.no_labels() {
        return;
    }
    if !matches!(first, b'"' | b'{' | b'[') {
        labels.add_error_label(ERR_JSON, None);
        return;
    }
    let mut matches = 0;
    for extraction in extractions {
        match lookup(data, &extraction.path) {
            Ok(Some((value, value_type))) => {
                let name = if labels.clashes(&extraction.label) {
                    format!("{}{DUPLICATE_SUFFIX}", extraction.label)
                } else {
                    extraction.label.clone()
                };
                let text = match value_type {
                    JsonType::Null => String::new(),
                    JsonType::Object => String::from_utf8_lossy(value).into_owned(),
                    _ => unescape_json_string(value),
                };
                labels.set(Category::Parsed, &name, &text);
                matches += 1;
            }
            Ok(None) => {}
            Err(message) => labels.add_error_label(ERR_JSON, Some(message)),
        }
    }
    if matches < extractions.len() {
        for extraction in extractions {
            if labels.get(&extraction.label).is_none() {
                labels.set(Category::Parsed, &extraction.label, "");
            }
        }
    }
}

/// `| unpack`: the string fields of a JSON object written by Promtail's `pack` stage become
/// labels and `_entry` becomes the line. An object without `_entry` is left as it is.
pub(crate) fn unpack(line: String, labels: &mut LabelsBuilder) -> String {
    let data = line.as_bytes();
    let Some(&first) = data.first() else {
        return line;
    };
    if labels.no_labels() {
        return line;
    }
    if first != b'{' {
        labels.add_error_label(ERR_JSON, Some(UNEXPECTED_JSON_OBJECT));
        return line;
    }
    let mut entry: Option<String> = None;
    let mut buffered: Vec<(String, String)> = Vec::new();
    let result = object_each(data, &mut |key, value, value_type| {
        if value_type != JsonType::String {
            return Ok(());
        }
        if key == b"_entry" {
            let unescaped = unescape(value).map_err(Halt::Malformed)?;
            entry = Some(String::from_utf8_lossy(&unescaped).into_owned());
            return Ok(());
        }
        let key = String::from_utf8_lossy(key);
        let name = if labels.clashes(&key) {
            format!("{key}{DUPLICATE_SUFFIX}")
        } else {
            key.into_owned()
        };
        if !labels.should_extract(&name) || labels.extracted(&name) {
            return Ok(());
        }
        buffered.push((sanitize_label_key(&name), unescape_json_string(value)));
        Ok(())
    });
    if let Err(Halt::Malformed(message)) = result {
        labels.add_error_label(ERR_JSON, Some(message));
        return line;
    }
    let Some(entry) = entry else {
        return line;
    };
    for (name, value) in buffered {
        if !name.is_empty() {
            labels.set(Category::Parsed, &name, &value);
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use obs_core::series::Labels;

    use super::*;
    use crate::labels::ParserHints;

    fn builder(stream: &[(&str, &str)]) -> LabelsBuilder {
        let mut builder = LabelsBuilder::new(Arc::new(ParserHints::default()));
        builder.reset(Arc::new(Labels::from_pairs(stream.iter().copied()).unwrap()), &[]);
        builder
    }

    fn parsed(builder: &LabelsBuilder) -> Vec<(String, String)> {
        builder.result_parsed()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn json_flattens_nested_objects_and_skips_arrays() {
        let mut labels = builder(&[("app", "api")]);
        json_parse(
            r#"{"app":"x","level":"info","status":200,"ok":true,"ratio":1.0,"n":null,"tags":["a"],"pod":{"name":"p-1","ids":{"uid":"u"}},"a.b":"c","1x":"y"}"#,
            &mut labels,
        );
        assert_eq!(
            parsed(&labels),
            pairs(&[
                ("_1x", "y"),
                ("a_b", "c"),
                ("app_extracted", "x"),
                ("level", "info"),
                ("ok", "true"),
                ("pod_ids_uid", "u"),
                ("pod_name", "p-1"),
                ("ratio", "1.0"),
                ("status", "200"),
            ])
        );
    }

    #[test]
    fn json_keeps_the_first_duplicate_and_unescapes() {
        let mut labels = builder(&[]);
        json_parse(
            r#"{"msg":"a\"b\u00e9\n","msg":"second","emoji":"\ud83d\ude00"}"#,
            &mut labels,
        );
        assert_eq!(parsed(&labels), pairs(&[("emoji", "😀"), ("msg", "a\"bé\n")]));
    }

    #[test]
    fn json_errors_keep_fields_read_before_the_error() {
        let mut labels = builder(&[]);
        json_parse(r#"{"a":"1","b":tru}"#, &mut labels);
        assert_eq!(
            parsed(&labels),
            pairs(&[
                ("__error__", "JSONParserErr"),
                ("__error_details__", "Unknown value type"),
                ("a", "1")
            ])
        );
        let mut plain = builder(&[]);
        json_parse("level=info msg=hello", &mut plain);
        assert_eq!(plain.error(), "JSONParserErr");
        assert_eq!(plain.error_details(), MALFORMED_OBJECT);
        let mut trailing = builder(&[]);
        json_parse(r#"{"a":1} trailing"#, &mut trailing);
        assert!(!trailing.has_error());
    }

    #[test]
    fn json_paths_extract_values() {
        let mut labels = builder(&[]);
        let line = r#"{"pod":{"name":"p","ids":[10,{"k":"v"}],"obj":{"x":1}},"s":"t\"q","nil":null}"#;
        let extraction = |label: &str, path: Vec<JsonPathSegment>| JsonExtraction {
            label: label.to_owned(),
            expression: String::new(),
            path,
        };
        let key = |k: &str| JsonPathSegment::Key(k.to_owned());
        json_extract(
            line,
            &[
                extraction("name", vec![key("pod"), key("name")]),
                extraction("first", vec![key("pod"), key("ids"), JsonPathSegment::Index(0)]),
                extraction(
                    "deep",
                    vec![key("pod"), key("ids"), JsonPathSegment::Index(1), key("k")],
                ),
                extraction("obj", vec![key("pod"), key("obj")]),
                extraction("s", vec![key("s")]),
                extraction("nil", vec![key("nil")]),
                extraction("missing", vec![key("nope")]),
            ],
            &mut labels,
        );
        assert_eq!(
            parsed(&labels),
            pairs(&[
                ("deep", "v"),
                ("first", "10"),
                ("missing", ""),
                ("name", "p"),
                ("nil", ""),
                ("obj", r#"{"x":1}"#),
                ("s", "t\"q"),
            ])
        );
        let mut plain = builder(&[]);
        json_extract("plain text", &[extraction("a", vec![key("a")])], &mut plain);
        assert_eq!(plain.error(), "JSONParserErr");
    }

    #[test]
    fn unpack_replaces_the_line_with_the_entry() {
        let mut labels = builder(&[("app", "api")]);
        let line = unpack(
            r#"{"_entry":"original \"line\"","app":"x","container":"c1","n":1}"#.to_owned(),
            &mut labels,
        );
        assert_eq!(line, "original \"line\"");
        assert_eq!(
            parsed(&labels),
            pairs(&[("app_extracted", "x"), ("container", "c1")])
        );
        let mut not_packed = builder(&[]);
        assert_eq!(unpack(r#"{"a":"b"}"#.to_owned(), &mut not_packed), r#"{"a":"b"}"#);
        assert!(parsed(&not_packed).is_empty());
        let mut not_json = builder(&[]);
        unpack("text".to_owned(), &mut not_json);
        assert_eq!(not_json.error_details(), UNEXPECTED_JSON_OBJECT);
    }

    #[test]
    fn hostile_input_never_panics() {
        let deep = "{\"a\":".repeat(10_000) + "1" + &"}".repeat(10_000);
        let mut labels = builder(&[]);
        json_parse(&deep, &mut labels);
        for input in [
            "{",
            "{\"",
            "{\"a\"",
            "{\"a\":",
            "{\"a\":\"\\",
            "{\"a\":[",
            "\"\\u12",
            "{\"a\":\"\\ud800\\u",
            "[",
            "",
        ] {
            let mut labels = builder(&[]);
            json_parse(input, &mut labels);
            let key = JsonPathSegment::Key("a".to_owned());
            json_extract(
                input,
                &[JsonExtraction {
                    label: "a".to_owned(),
                    expression: String::new(),
                    path: vec![key, JsonPathSegment::Index(3)],
                }],
                &mut labels,
            );
            let _ = unpack(input.to_owned(), &mut labels);
        }
    }
}
