//! What the store derives from an entry at ingest:
//!
//! - **correlation keys** (`session_id`, `run_id`, `task_id`, `agent`, `trace_id`, …): found in
//!   the stream labels, the structured metadata, or the top-level keys of a JSON or logfmt line,
//!   and indexed as exact terms so that `| json | run_id="r-1"` is an index lookup;
//! - `service_name`, added to stream labels that lack it, from the first label of Loki's list
//!   (`service`, `app`, `application`, …), else `unknown_service`, as Loki 3 does;
//! - `detected_level`, added to the structured metadata, from a level label or metadata, a
//!   `level`-like top-level key of the line, or a level word in the line, as Loki 3 does.

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
                    .map(|(_, value)| value.clone())
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

/// The correlation keys of an entry (`names` are the configured keys): stream labels first,
/// then structured metadata, then top-level fields of the line; one value per key.
pub fn correlation_keys(names: &[String], labels: &Labels, entry: &LogEntry) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, value: &str| {
        if value.is_empty()
            || value.len() > MAX_KEY_VALUE_BYTES
            || !names.iter().any(|key| key == name)
            || keys.iter().any(|(existing, _)| existing == name)
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

/// The top-level scalar fields of a JSON object line or a logfmt line (empty for others).
pub fn top_level_fields(line: &str) -> Vec<(String, String)> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('{') {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(trimmed) else {
            return Vec::new();
        };
        return map
            .into_iter()
            .filter_map(|(name, value)| match value {
                serde_json::Value::String(text) => Some((name, text)),
                serde_json::Value::Number(number) => Some((name, number.to_string())),
                serde_json::Value::Bool(flag) => Some((name, flag.to_string())),
                _ => None,
            })
            .collect();
    }
    logfmt_pairs(line)
}

/// `key=value` and `key="quoted value"` pairs of a logfmt line; a line with none is not logfmt.
fn logfmt_pairs(line: &str) -> Vec<(String, String)> {
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
            pos += 1;
            let mut value = String::new();
            while pos < bytes.len() && bytes[pos] != b'"' {
                if bytes[pos] == b'\\' && pos + 1 < bytes.len() {
                    pos += 1;
                }
                let ch_len = line[pos..].chars().next().map_or(1, char::len_utf8);
                value.push_str(&line[pos..pos + ch_len]);
                pos += ch_len;
            }
            pos += 1;
            value
        } else {
            let start = pos;
            while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            line[start..pos].to_owned()
        };
        if !key.is_empty() && obs_core::series::is_valid_label_name(key) {
            pairs.push((key.to_owned(), value));
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
