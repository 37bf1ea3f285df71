//! What the store derives from an entry at ingest:
//!
//! - **correlation keys** (`session_id`, `run_id`, `task_id`, `agent`, `trace_id`, …): found in
//!   the stream labels, the structured metadata, or the top-level keys of a JSON or logfmt line,
//!   and indexed as exact terms so that `| json | run_id="r-1"` is an index lookup;
//! - `service_name`, added to stream labels that lack it, from the first label of Loki's list
//!   (`service`, `app`, `application`, …), else `unknown_service`, as Loki 3 does;
//! - `detected_level`, added to the structured metadata, from a level label or metadata, a
//!   `level`-like top-level key of the line, or a level word in the line, as Loki 3 does.

use std::borrow::Cow;

use obs_core::series::Labels;

use crate::model::LogEntry;

/// The correlation keys indexed unless configured otherwise.
pub const DEFAULT_CORRELATION_KEYS: [&str; 9] = [
    "session_id",
    "run_id",
    "task_id",
    "agent",
    "trace_id",
    "span_id",
    "level",
    "detected_level",
    "service_name",
];

/// Labels Loki takes `service_name` from, in order.
const SERVICE_NAME_SOURCES: [&str; 13] = [
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// Keys whose value names an entry's level.
const LEVEL_KEYS: [&str; 6] = ["level", "lvl", "loglevel", "severity", "LEVEL", "Level"];

/// The longest value of a correlation key that is indexed.
const MAX_KEY_VALUE_BYTES: usize = 256;

/// `labels` with `service_name` added when missing.
pub fn with_service_name(labels: Labels) -> Labels {
    if labels.get("service_name").is_some() {
        return labels;
    }
    let value = SERVICE_NAME_SOURCES
        .iter()
        .find_map(|name| labels.get(name))
        .unwrap_or("unknown_service")
        .to_owned();
    labels.with_label("service_name", &value).unwrap_or(labels)
}

/// Adds `detected_level` to the entry's metadata when neither the labels nor the metadata
/// carry it.
pub fn add_detected_level(labels: &Labels, entry: &mut LogEntry) {
    if labels.get("detected_level").is_some()
        || entry.metadata.iter().any(|(name, _)| name == "detected_level")
    {
        return;
    }
    let explicit = LEVEL_KEYS
        .iter()
        .find_map(|key| {
            labels.get(key).map(str::to_owned).or_else(|| {
                entry
                    .metadata
                    .iter()
                    .find(|(name, _)| name == key)
                    .map(|(_, value)| value.clone())
            })
        })
        .or_else(|| {
            let fields = top_level_fields(&entry.line);
            LEVEL_KEYS.iter().find_map(|key| {
                fields
                    .iter()
                    .find(|(name, _)| name == key)
                    .map(|(_, value)| value.to_string())
            })
        });
    let level = match explicit {
        Some(value) => normalize_level(&value),
        None => level_from_words(&entry.line),
    };
    entry
        .metadata
        .push(("detected_level".to_owned(), level.to_owned()));
}

fn normalize_level(value: &str) -> &'static str {
    match value.to_ascii_lowercase().as_str() {
        "trace" | "trc" => "trace",
        "debug" | "dbg" => "debug",
        "info" | "inf" | "information" | "informational" | "notice" => "info",
        "warn" | "wrn" | "warning" => "warn",
        "error" | "err" | "eror" => "error",
        "critical" | "crit" | "fatal" | "panic" | "emerg" | "alert" => "critical",
        _ => "unknown",
    }
}

fn level_from_words(line: &str) -> &'static str {
    let lower = line
        .get(..line.len().min(1024))
        .unwrap_or(line)
        .to_ascii_lowercase();
    let has_word = |word: &str| {
        lower.match_indices(word).any(|(at, _)| {
            let before = lower[..at].chars().next_back();
            let after = lower[at + word.len()..].chars().next();
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
        })
    };
    for (words, level) in [
        (&["critical", "fatal", "panic"][..], "critical"),
        (&["error", "err"][..], "error"),
        (&["warn", "warning"][..], "warn"),
        (&["info"][..], "info"),
        (&["debug"][..], "debug"),
        (&["trace"][..], "trace"),
    ] {
        if words.iter().any(|word| has_word(word)) {
            return level;
        }
    }
    "unknown"
}

/// The correlation keys of an entry (`names` are the configured keys): every value found in
/// the stream labels, the structured metadata and the top-level fields of the line.
///
/// A query may push an equality on a key down to the index only if every entry it could match
/// carries that term, so this errs on the side of more terms: every value of a key is indexed
/// (not only the one a LogQL parser would pick when several sources or duplicate fields
/// disagree), field names are sanitized as Loki's parsers sanitize them (`run-id` is
/// `run_id`), and a JSON line is read up to its first syntax error, as Loki's `json` stage
/// does.
pub fn correlation_keys(names: &[String], labels: &Labels, entry: &LogEntry) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, value: &str| {
        if value.is_empty()
            || value.len() > MAX_KEY_VALUE_BYTES
            || !names.iter().any(|key| key == name)
            || keys
                .iter()
                .any(|(existing, known)| existing == name && known == value)
        {
            return;
        }
        keys.push((name.to_owned(), value.to_owned()));
    };
    for label in labels.iter() {
        add(&label.name, &label.value);
    }
    for (name, value) in &entry.metadata {
        add(name, value);
    }
    for (name, value) in top_level_fields(&entry.line) {
        add(&name, &value);
    }
    keys
}

/// The top-level scalar fields of a JSON object line or a logfmt line (empty for others),
/// names sanitized as Loki's parsers sanitize them, in line order, duplicates kept.
///
/// Names and values borrow from the line unless they had escapes or needed sanitizing: this
/// runs on every line ingested.
pub fn top_level_fields(line: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let trimmed = line.trim_start();
    let fields = if trimmed.starts_with('{') {
        json_fields(trimmed)
    } else {
        logfmt_pairs(line)
    };
    fields
        .into_iter()
        .map(|(name, value)| (sanitized(name), value))
        .filter(|(name, _)| !name.is_empty())
        .collect()
}

/// `name` as [`crate::otlp::sanitize_name`] makes it, borrowed when it is already so.
fn sanitized(name: Cow<'_, str>) -> Cow<'_, str> {
    if crate::otlp::is_sanitized_name(&name) {
        name
    } else {
        Cow::Owned(crate::otlp::sanitize_name(&name))
    }
}

/// The top-level scalar fields of a JSON object, read as Loki's `json` stage reads them:
/// strings unescaped, numbers and booleans as written, objects, arrays and nulls skipped,
/// and the fields before a syntax error kept.
fn json_fields(text: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let mut scanner = JsonScanner {
        bytes: text.as_bytes(),
        text,
        pos: 0,
    };
    let mut fields = Vec::new();
    scanner.skip_space();
    if !scanner.eat(b'{') {
        return fields;
    }
    loop {
        scanner.skip_space();
        if scanner.eat(b'}') {
            break;
        }
        let Some(name) = scanner.string() else { break };
        scanner.skip_space();
        if !scanner.eat(b':') {
            break;
        }
        scanner.skip_space();
        match scanner.peek() {
            Some(b'"') => match scanner.string() {
                Some(value) => fields.push((name, value)),
                None => break,
            },
            Some(b'{' | b'[') => {
                if !scanner.skip_nested() {
                    break;
                }
            }
            Some(b't') if scanner.literal("true") => fields.push((name, Cow::Borrowed("true"))),
            Some(b'f') if scanner.literal("false") => fields.push((name, Cow::Borrowed("false"))),
            Some(b'n') if scanner.literal("null") => {}
            Some(b'-' | b'0'..=b'9') => fields.push((name, Cow::Borrowed(scanner.number()))),
            _ => break,
        }
        scanner.skip_space();
        if scanner.eat(b',') {
            continue;
        }
        break;
    }
    fields
}

struct JsonScanner<'a> {
    bytes: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> JsonScanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn skip_space(&mut self) {
        while self
            .peek()
            .is_some_and(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &str) -> bool {
        let found = self.bytes.get(self.pos..self.pos + word.len()) == Some(word.as_bytes());
        if found {
            self.pos += word.len();
        }
        found
    }

    fn number(&mut self) -> &'a str {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|byte| byte.is_ascii_digit() || matches!(byte, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// A string at the cursor, unescaped (borrowed when it has no escapes); `None` (cursor
    /// anywhere) when it is malformed.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|byte| byte != b'"' && byte != b'\\' && byte >= 0x20)
        {
            self.pos += 1;
        }
        if self.peek() == Some(b'"') {
            let text = self.text.get(start..self.pos)?;
            self.pos += 1;
            return Some(Cow::Borrowed(text));
        }
        self.pos = start;
        self.escaped_string_rest().map(Cow::Owned)
    }

    /// The rest of a string with escapes, from after its opening quote.
    fn escaped_string_rest(&mut self) -> Option<String> {
        let mut out = String::new();
        loop {
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|byte| byte != b'"' && byte != b'\\' && byte >= 0x20)
            {
                self.pos += 1;
            }
            out.push_str(self.text.get(start..self.pos)?);
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.pos += 1;
                    let escape = self.peek()?;
                    self.pos += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&high) && self.literal("\\u") {
                                let low = self.hex4()?;
                                0x10000 + ((high - 0xd800) << 10) + (low.checked_sub(0xdc00)? & 0x3ff)
                            } else {
                                high
                            };
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        let value = u32::from_str_radix(digits, 16).ok()?;
        self.pos += 4;
        Some(value)
    }

    /// Skips an object or array at the cursor; false when it is not closed.
    fn skip_nested(&mut self) -> bool {
        let mut depth = 0usize;
        while let Some(byte) = self.peek() {
            match byte {
                b'"' => {
                    if self.string().is_none() {
                        return false;
                    }
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return true;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        false
    }
}

/// `key=value` and `key="quoted value"` pairs of a logfmt line; a line with none is not logfmt.
fn logfmt_pairs(line: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let bytes = line.as_bytes();
    let mut pairs = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let key_start = pos;
        while pos < bytes.len() && bytes[pos] != b'=' && !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let key = &line[key_start..pos];
        if pos >= bytes.len() || bytes[pos] != b'=' {
            continue;
        }
        pos += 1;
        let value = if bytes.get(pos) == Some(&b'"') {
            // A quoted value is a JSON string, as Loki's logfmt decoder reads it.
            let mut scanner = JsonScanner {
                bytes,
                text: line,
                pos,
            };
            match scanner.string() {
                Some(value) => {
                    pos = scanner.pos;
                    value
                }
                None => break,
            }
        } else {
            let start = pos;
            while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            Cow::Borrowed(&line[start..pos])
        };
        if !key.is_empty() {
            pairs.push((Cow::Borrowed(key), value));
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        DEFAULT_CORRELATION_KEYS.map(String::from).to_vec()
    }

    fn entry(line: &str, metadata: &[(&str, &str)]) -> LogEntry {
        LogEntry {
            timestamp_ns: 1,
            line: line.to_owned(),
            metadata: metadata
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn keys_come_from_labels_metadata_json_and_logfmt() {
        let labels = Labels::from_pairs([("app", "jarvis"), ("agent", "planner")]).unwrap();
        let json = entry(
            r#"{"run_id":"r-1","session_id":"s-9","msg":"x","task_id":7,"nested":{"trace_id":"no"}}"#,
            &[("trace_id", "abc")],
        );
        let keys = correlation_keys(&names(), &labels, &json);
        assert_eq!(
            keys,
            [
                ("agent", "planner"),
                ("trace_id", "abc"),
                ("run_id", "r-1"),
                ("session_id", "s-9"),
                ("task_id", "7")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .to_vec()
        );
        let logfmt = entry(r#"level=info run_id=r-2 msg="hello world" agent="ignored""#, &[]);
        let keys = correlation_keys(&names(), &labels, &logfmt);
        assert!(keys.contains(&("run_id".to_owned(), "r-2".to_owned())));
        assert!(keys.contains(&("level".to_owned(), "info".to_owned())));
        assert!(keys.contains(&("agent".to_owned(), "planner".to_owned())));
        assert!(correlation_keys(&names(), &Labels::default(), &entry("plain text", &[])).is_empty());
    }

    #[test]
    fn keys_are_a_superset_of_what_loki_parsers_would_extract() {
        let labels = Labels::from_pairs([("run_id", "from-label")]).unwrap();
        // Truncated JSON: the fields before the error count, as in Loki's json stage; a
        // duplicate field gives both values; names are sanitized.
        let broken = entry(
            r#"{"session_id":"s-1","run-id":"r-9","session_id":"s-2","task_id":1.50,"x": tru"#,
            &[],
        );
        let keys = correlation_keys(&names(), &labels, &broken);
        for expected in [
            ("run_id", "from-label"),
            ("run_id", "r-9"),
            ("session_id", "s-1"),
            ("session_id", "s-2"),
            ("task_id", "1.50"),
        ] {
            assert!(
                keys.contains(&(expected.0.to_owned(), expected.1.to_owned())),
                "{expected:?} in {keys:?}"
            );
        }
        let logfmt = entry(r#"run-id="r-\u0041 \"q\"" agent=a"#, &[]);
        let keys = correlation_keys(&names(), &Labels::default(), &logfmt);
        assert!(
            keys.contains(&("run_id".to_owned(), "r-A \"q\"".to_owned())),
            "{keys:?}"
        );
        assert!(keys.contains(&("agent".to_owned(), "a".to_owned())), "{keys:?}");
        // Escapes, nesting and surrogate pairs in JSON.
        let fields = top_level_fields(
            r#"{"a":{"run_id":"nested"},"b":["x"],"c":"\ud83d\ude00\n","d":null,"e":false}"#,
        );
        assert_eq!(
            fields,
            [("c", "\u{1f600}\n"), ("e", "false")]
                .map(|(a, b)| (Cow::Borrowed(a), Cow::Borrowed(b)))
                .to_vec()
        );
    }

    #[test]
    fn service_name_is_added_like_loki() {
        let labels = Labels::from_pairs([("job", "varlogs"), ("app", "api")]).unwrap();
        assert_eq!(with_service_name(labels).get("service_name"), Some("api"));
        let labels = Labels::from_pairs([("host", "a")]).unwrap();
        assert_eq!(
            with_service_name(labels).get("service_name"),
            Some("unknown_service")
        );
        let labels = Labels::from_pairs([("service_name", "x"), ("app", "y")]).unwrap();
        assert_eq!(with_service_name(labels).get("service_name"), Some("x"));
    }

    #[test]
    fn detected_level_comes_from_fields_then_words() {
        let labels = Labels::from_pairs([("app", "x")]).unwrap();
        for (line, metadata, expected) in [
            (r#"{"level":"WARNING","msg":"m"}"#, &[][..], "warn"),
            ("level=error msg=boom", &[], "error"),
            ("something failed: ERROR in module", &[], "error"),
            ("all good", &[], "unknown"),
            ("terror is not an error word? no", &[], "error"),
            ("x", &[("severity", "fatal")][..], "critical"),
        ] {
            let mut entry = entry(line, metadata);
            add_detected_level(&labels, &mut entry);
            assert_eq!(
                entry.metadata.last(),
                Some(&("detected_level".to_owned(), expected.to_owned())),
                "{line}"
            );
        }
        let mut already = entry("error", &[("detected_level", "info")]);
        add_detected_level(&labels, &mut already);
        assert_eq!(already.metadata.len(), 1);
    }
}
