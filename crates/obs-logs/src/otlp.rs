//! OTLP logs (`ExportLogsServiceRequest`) to streams, as Loki's OTLP endpoint maps them:
//!
//! - the resource attributes Loki promotes by default (`service.name`, `k8s.pod.name`, …)
//!   become stream labels, dots turned into underscores; `service_name` is `unknown_service`
//!   when the resource has no `service.name`;
//! - every other resource attribute, the scope's name, version and attributes, and the log
//!   record's attributes become structured metadata (names sanitized the same way);
//! - `trace_id` and `span_id` (lowercase hex), `severity_text` and `severity_number` are
//!   structured metadata too, so a log line joins its trace;
//! - the body is the line: a string as it is, anything else as JSON;
//! - the timestamp is the record's time, else its observed time, else `now`.

use std::collections::BTreeMap;

use obs_core::otlp::{any_value_string, hex};
use obs_core::series::Labels;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};

use crate::model::{LogEntry, StreamEntries};

/// Resource attributes that become stream labels (Loki's default list).
pub const PROMOTED_RESOURCE_ATTRIBUTES: [&str; 17] = [
    "cloud.availability_zone",
    "cloud.region",
    "container.name",
    "deployment.environment.name",
    "k8s.cluster.name",
    "k8s.container.name",
    "k8s.cronjob.name",
    "k8s.daemonset.name",
    "k8s.deployment.name",
    "k8s.job.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.replicaset.name",
    "k8s.statefulset.name",
    "service.instance.id",
    "service.name",
    "service.namespace",
];

/// What a request held: streams, and records that could not be used.
#[derive(Debug, Default)]
pub struct ConvertedLogs {
    /// Entries by stream.
    pub streams: Vec<StreamEntries>,
    /// Records dropped, each with why (reported as partial success).
    pub rejected: Vec<String>,
}

/// A name as a Loki label name, as Loki's OTLP endpoint and its parsers make one: every
/// character outside `[a-zA-Z0-9_]` becomes `_`, and a leading digit gets a `_` in front.
pub fn sanitize_name(name: &str) -> String {
    if is_sanitized_name(name) {
        return name.to_owned();
    }
    let mut out: String = name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '_' {
                ch
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|ch: char| ch.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Whether [`sanitize_name`] leaves `name` as it is.
pub fn is_sanitized_name(name: &str) -> bool {
    name.bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        && !name.starts_with(|ch: char| ch.is_ascii_digit())
}

fn push_attributes(attributes: &[KeyValue], prefix: &str, into: &mut Vec<(String, String)>) {
    for attribute in attributes {
        let value = any_value_string(attribute.value.as_ref());
        if value.is_empty() {
            continue;
        }
        into.push((sanitize_name(&format!("{prefix}{}", attribute.key)), value));
    }
}

/// Converts a request; `now_ns` stamps records that carry no time.
pub fn convert(request: &ExportLogsServiceRequest, now_ns: i64) -> ConvertedLogs {
    let mut converted = ConvertedLogs::default();
    let mut by_labels: BTreeMap<Labels, Vec<LogEntry>> = BTreeMap::new();
    for resource_logs in &request.resource_logs {
        let attributes = resource_logs
            .resource
            .as_ref()
            .map_or(&[][..], |resource| resource.attributes.as_slice());
        let mut label_pairs = Vec::new();
        let mut resource_metadata = Vec::new();
        for attribute in attributes {
            let value = any_value_string(attribute.value.as_ref());
            if value.is_empty() {
                continue;
            }
            let name = sanitize_name(&attribute.key);
            if PROMOTED_RESOURCE_ATTRIBUTES.contains(&attribute.key.as_str()) {
                label_pairs.push((name, value));
            } else {
                resource_metadata.push((name, value));
            }
        }
        if !label_pairs.iter().any(|(name, _)| name == "service_name") {
            label_pairs.push(("service_name".to_owned(), "unknown_service".to_owned()));
        }
        let labels = match Labels::from_pairs(label_pairs) {
            Ok(labels) => labels,
            Err(err) => {
                let records: usize = resource_logs
                    .scope_logs
                    .iter()
                    .map(|scope| scope.log_records.len())
                    .sum();
                converted
                    .rejected
                    .push(format!("{records} log records refused: resource labels: {err}"));
                continue;
            }
        };
        for scope_logs in &resource_logs.scope_logs {
            let mut scope_metadata = resource_metadata.clone();
            if let Some(scope) = &scope_logs.scope {
                if !scope.name.is_empty() {
                    scope_metadata.push(("scope_name".to_owned(), scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    scope_metadata.push(("scope_version".to_owned(), scope.version.clone()));
                }
                push_attributes(&scope.attributes, "", &mut scope_metadata);
            }
            for record in &scope_logs.log_records {
                let mut metadata = scope_metadata.clone();
                push_attributes(&record.attributes, "", &mut metadata);
                if !record.trace_id.is_empty() && record.trace_id.iter().any(|byte| *byte != 0) {
                    metadata.push(("trace_id".to_owned(), hex(&record.trace_id)));
                }
                if !record.span_id.is_empty() && record.span_id.iter().any(|byte| *byte != 0) {
                    metadata.push(("span_id".to_owned(), hex(&record.span_id)));
                }
                if !record.severity_text.is_empty() {
                    metadata.push(("severity_text".to_owned(), record.severity_text.clone()));
                }
                if record.severity_number != 0 {
                    metadata.push(("severity_number".to_owned(), record.severity_number.to_string()));
                }
                // A later pair of the same name wins (the record's own over the resource's).
                let mut deduplicated: Vec<(String, String)> = Vec::with_capacity(metadata.len());
                for (name, value) in metadata.into_iter().rev() {
                    if !deduplicated.iter().any(|(existing, _)| *existing == name) {
                        deduplicated.push((name, value));
                    }
                }
                deduplicated.reverse();
                let line = match record.body.as_ref().and_then(|body| body.value.as_ref()) {
                    Some(any_value::Value::StringValue(text)) => text.clone(),
                    Some(_) => any_value_string(record.body.as_ref()),
                    None => String::new(),
                };
                let timestamp = if record.time_unix_nano != 0 {
                    record.time_unix_nano
                } else {
                    record.observed_time_unix_nano
                };
                let timestamp_ns = if timestamp == 0 {
                    now_ns
                } else {
                    i64::try_from(timestamp).unwrap_or(i64::MAX)
                };
                by_labels.entry(labels.clone()).or_default().push(LogEntry {
                    timestamp_ns,
                    line,
                    metadata: deduplicated,
                });
            }
        }
    }
    converted.streams = by_labels
        .into_iter()
        .map(|(labels, entries)| StreamEntries { labels, entries })
        .collect();
    converted
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::*;

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn resource_attributes_split_into_labels_and_metadata() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", "jarvis"),
                        text("k8s.pod.name", "jarvis-0"),
                        text("host.name", "node-1"),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "agixt.agent".to_owned(),
                        ..Default::default()
                    }),
                    log_records: vec![
                        LogRecord {
                            time_unix_nano: 1_700_000_000_000_000_000,
                            severity_text: "ERROR".to_owned(),
                            severity_number: 17,
                            body: Some(AnyValue {
                                value: Some(any_value::Value::StringValue("tool failed".to_owned())),
                            }),
                            attributes: vec![text("run_id", "r-1"), text("host.name", "override")],
                            trace_id: vec![0x0a; 16],
                            span_id: vec![0, 0, 0, 0, 0, 0, 0, 1],
                            ..Default::default()
                        },
                        LogRecord::default(),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let converted = convert(&request, 42);
        assert!(converted.rejected.is_empty());
        assert_eq!(converted.streams.len(), 1);
        let stream = &converted.streams[0];
        assert_eq!(stream.labels.get("service_name"), Some("jarvis"));
        assert_eq!(stream.labels.get("k8s_pod_name"), Some("jarvis-0"));
        assert_eq!(stream.labels.get("host_name"), None);
        let first = &stream.entries[0];
        assert_eq!(first.line, "tool failed");
        assert_eq!(first.timestamp_ns, 1_700_000_000_000_000_000);
        let get = |name: &str| {
            first
                .metadata
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(get("host_name"), Some("override"));
        assert_eq!(get("run_id"), Some("r-1"));
        assert_eq!(get("trace_id"), Some("0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"));
        assert_eq!(get("span_id"), Some("0000000000000001"));
        assert_eq!(get("severity_text"), Some("ERROR"));
        assert_eq!(get("scope_name"), Some("agixt.agent"));
        assert_eq!(stream.entries[1].timestamp_ns, 42);
    }

    #[test]
    fn a_resource_without_service_name_is_unknown_service() {
        let request = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord::default()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let converted = convert(&request, 1);
        assert_eq!(
            converted.streams[0].labels.get("service_name"),
            Some("unknown_service")
        );
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize_name("k8s.pod.name"), "k8s_pod_name");
        assert_eq!(sanitize_name("1abc-d"), "_1abc_d");
    }
}
