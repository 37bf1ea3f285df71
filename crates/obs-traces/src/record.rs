//! One stored span ([`SpanDoc`]): its identity, the fields the index needs, and its payload —
//! the span with its resource and instrumentation scope as an OTLP `ResourceSpans` holding
//! exactly one span, protobuf-encoded. The payload is what the write-ahead log, the head and
//! the day indexes keep; everything else is derived from it, so a replayed span is the span
//! that was acknowledged.
//!
//! Write-ahead log record: a version byte (1), then the accepted spans' payloads, each preceded
//! by its length as a LEB128 varint (`docs/format/traces.md`).

use std::sync::Arc;

pub use obs_core::otlp::hex;

use obs_traceql::model::{self, AttrValue, Attributes};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

/// Attribute string values longer than this are stored but not indexed (a condition on such
/// a value is checked on the stored spans).
pub(crate) const MAX_INDEXED_VALUE_BYTES: usize = 256;
/// Separates the parts of an index term (a byte no attribute name holds in practice; terms
/// are only compared whole or by prefix, so a name holding it cannot match another's term).
pub(crate) const TERM_SEPARATOR: char = '\u{1}';

/// A span as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanDoc {
    /// The trace (16 bytes).
    pub trace_id: [u8; 16],
    /// The span (8 bytes).
    pub span_id: [u8; 8],
    /// The parent span; zeros for a root.
    pub parent_span_id: [u8; 8],
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// End, Unix nanoseconds.
    pub end_ns: u64,
    /// The span's name.
    pub name: String,
    /// `service.name` of its resource (empty when missing).
    pub service: String,
    /// OTLP span kind number.
    pub kind: i32,
    /// OTLP status code number.
    pub status: i32,
    /// `ResourceSpans` with this one span, protobuf-encoded.
    pub payload: Arc<Vec<u8>>,
}

impl SpanDoc {
    /// Builds the stored form of `span` (ids already validated).
    pub fn build(
        resource: Option<&Resource>,
        resource_schema_url: &str,
        scope: Option<&InstrumentationScope>,
        scope_schema_url: &str,
        span: &Span,
    ) -> SpanDoc {
        let payload = ResourceSpans {
            resource: resource.cloned(),
            scope_spans: vec![ScopeSpans {
                scope: scope.cloned(),
                spans: vec![span.clone()],
                schema_url: scope_schema_url.to_owned(),
            }],
            schema_url: resource_schema_url.to_owned(),
        }
        .encode_to_vec();
        SpanDoc::with_payload(resource, span, payload)
    }

    /// Rebuilds a stored span from its payload (kept byte for byte).
    pub fn from_payload(payload: &[u8]) -> Result<SpanDoc, String> {
        let resource_spans =
            ResourceSpans::decode(payload).map_err(|err| format!("a stored span does not decode: {err}"))?;
        let span = resource_spans
            .scope_spans
            .first()
            .ok_or_else(|| "a stored span has no scope".to_owned())?
            .spans
            .first()
            .ok_or_else(|| "a stored span has no span".to_owned())?;
        Ok(SpanDoc::with_payload(
            resource_spans.resource.as_ref(),
            span,
            payload.to_vec(),
        ))
    }

    /// The fields derived from `span` and its resource, beside their payload.
    fn with_payload(resource: Option<&Resource>, span: &Span, payload: Vec<u8>) -> SpanDoc {
        let mut trace_id = [0u8; 16];
        copy_id(&span.trace_id, &mut trace_id);
        let mut span_id = [0u8; 8];
        copy_id(&span.span_id, &mut span_id);
        let mut parent_span_id = [0u8; 8];
        copy_id(&span.parent_span_id, &mut parent_span_id);
        SpanDoc {
            trace_id,
            span_id,
            parent_span_id,
            start_ns: span.start_time_unix_nano,
            end_ns: span.end_time_unix_nano.max(span.start_time_unix_nano),
            name: span.name.clone(),
            service: resource.map(service_name).unwrap_or_default(),
            kind: span.kind,
            status: span.status.as_ref().map_or(0, |status| status.code),
            payload: Arc::new(payload),
        }
    }

    /// The payload decoded.
    pub fn resource_spans(&self) -> Result<ResourceSpans, String> {
        ResourceSpans::decode(self.payload.as_slice())
            .map_err(|err| format!("a stored span does not decode: {err}"))
    }

    /// Whether the span is a root (no parent).
    pub fn is_root(&self) -> bool {
        self.parent_span_id == [0; 8]
    }

    /// Duration in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// Copies an id of the right length (validated by the caller); other lengths leave zeros.
fn copy_id(from: &[u8], to: &mut [u8]) {
    if from.len() == to.len() {
        to.copy_from_slice(from);
    }
}

/// `service.name` of a resource, when it is a string.
pub(crate) fn service_name(resource: &Resource) -> String {
    resource
        .attributes
        .iter()
        .find(|attribute| attribute.key == "service.name")
        .and_then(|attribute| attribute.value.as_ref())
        .and_then(|value| match &value.value {
            Some(any_value::Value::StringValue(name)) => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// An OTLP value as TraceQL sees it.
pub(crate) fn attr_value(value: Option<&AnyValue>) -> AttrValue {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => AttrValue::String(text.clone()),
        Some(any_value::Value::IntValue(int)) => AttrValue::Int(*int),
        Some(any_value::Value::DoubleValue(float)) => AttrValue::Float(*float),
        Some(any_value::Value::BoolValue(flag)) => AttrValue::Bool(*flag),
        _ => AttrValue::String(obs_core::otlp::any_value_string(value)),
    }
}

fn attributes(list: &[KeyValue]) -> Attributes {
    list.iter()
        .map(|attribute| (attribute.key.clone(), attr_value(attribute.value.as_ref())))
        .collect()
}

fn id_array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut id = [0u8; N];
    copy_id(bytes, &mut id);
    id
}

/// The spans of stored docs as TraceQL's model, resources and scopes shared between spans
/// that carry the same ones.
pub fn to_model_spans(docs: &[SpanDoc]) -> Result<Vec<model::Span>, String> {
    let mut resources: Vec<(Option<Resource>, Arc<model::Resource>)> = Vec::new();
    let mut scopes: Vec<(Option<InstrumentationScope>, Arc<model::Scope>)> = Vec::new();
    let mut spans = Vec::with_capacity(docs.len());
    for doc in docs {
        let resource_spans = doc.resource_spans()?;
        let resource = match resources
            .iter()
            .find(|(known, _)| *known == resource_spans.resource)
        {
            Some((_, shared)) => Arc::clone(shared),
            None => {
                let shared = Arc::new(model::Resource {
                    attributes: resource_spans
                        .resource
                        .as_ref()
                        .map(|resource| attributes(&resource.attributes))
                        .unwrap_or_default(),
                });
                resources.push((resource_spans.resource.clone(), Arc::clone(&shared)));
                shared
            }
        };
        for scope_spans in &resource_spans.scope_spans {
            let scope = match scopes.iter().find(|(known, _)| *known == scope_spans.scope) {
                Some((_, shared)) => Arc::clone(shared),
                None => {
                    let shared = Arc::new(
                        scope_spans
                            .scope
                            .as_ref()
                            .map(|scope| model::Scope {
                                name: scope.name.clone(),
                                version: scope.version.clone(),
                                attributes: attributes(&scope.attributes),
                            })
                            .unwrap_or_default(),
                    );
                    scopes.push((scope_spans.scope.clone(), Arc::clone(&shared)));
                    shared
                }
            };
            for span in &scope_spans.spans {
                spans.push(model::Span {
                    span_id: id_array(&span.span_id),
                    parent_span_id: id_array(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: model::kind_from_otlp(span.kind),
                    status: model::status_from_otlp(span.status.as_ref().map_or(0, |status| status.code)),
                    status_message: span
                        .status
                        .as_ref()
                        .map(|status| status.message.clone())
                        .unwrap_or_default(),
                    start_ns: span.start_time_unix_nano,
                    end_ns: span.end_time_unix_nano.max(span.start_time_unix_nano),
                    attributes: attributes(&span.attributes),
                    resource: Arc::clone(&resource),
                    scope: Arc::clone(&scope),
                    events: span
                        .events
                        .iter()
                        .map(|event| model::Event {
                            name: event.name.clone(),
                            time_ns: event.time_unix_nano,
                            attributes: attributes(&event.attributes),
                        })
                        .collect(),
                    links: span
                        .links
                        .iter()
                        .map(|link| model::Link {
                            trace_id: id_array(&link.trace_id),
                            span_id: id_array(&link.span_id),
                            attributes: attributes(&link.attributes),
                        })
                        .collect(),
                });
            }
        }
    }
    Ok(spans)
}

/// The scopes of the index's attribute terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TermScope {
    Span,
    Resource,
}

impl TermScope {
    fn letter(self) -> char {
        match self {
            TermScope::Span => 's',
            TermScope::Resource => 'r',
        }
    }
}

/// The index term of `scope.key` having a typed value: `s\u{1}key\u{1}S<text>` (`I`, `F`, `B`
/// for ints, floats and booleans). `None` for values too long to index.
pub(crate) fn value_term(scope: TermScope, key: &str, value: &AttrValue) -> Option<String> {
    let (tag, text) = match value {
        AttrValue::String(text) => ('S', text.clone()),
        AttrValue::Int(int) => ('I', int.to_string()),
        AttrValue::Float(float) => ('F', float.to_string()),
        AttrValue::Bool(flag) => ('B', flag.to_string()),
    };
    if text.len() > MAX_INDEXED_VALUE_BYTES {
        return None;
    }
    Some(format!(
        "{}{TERM_SEPARATOR}{key}{TERM_SEPARATOR}{tag}{text}",
        scope.letter()
    ))
}

/// The prefix of every value term of `scope.key`.
pub(crate) fn value_term_prefix(scope: TermScope, key: &str) -> String {
    format!("{}{TERM_SEPARATOR}{key}{TERM_SEPARATOR}", scope.letter())
}

/// The index term of `scope.key` being present.
pub(crate) fn key_term(scope: TermScope, key: &str) -> String {
    format!("{}{TERM_SEPARATOR}{key}", scope.letter())
}

/// The value of a value term after its prefix (`S<text>` → string, ...).
pub(crate) fn parse_value(typed: &str) -> Option<AttrValue> {
    let mut chars = typed.chars();
    let tag = chars.next()?;
    let text = chars.as_str();
    Some(match tag {
        'S' => AttrValue::String(text.to_owned()),
        'I' => AttrValue::Int(text.parse().ok()?),
        'F' => AttrValue::Float(text.parse().ok()?),
        'B' => AttrValue::Bool(text == "true"),
        _ => return None,
    })
}

/// The attribute terms of a span: value terms and key terms of its span and resource
/// attributes.
pub(crate) fn attribute_terms(resource_spans: &ResourceSpans) -> (Vec<String>, Vec<String>) {
    let mut values = Vec::new();
    let mut keys = Vec::new();
    let mut add = |scope: TermScope, list: &[KeyValue]| {
        for attribute in list {
            keys.push(key_term(scope, &attribute.key));
            if let Some(term) = value_term(scope, &attribute.key, &attr_value(attribute.value.as_ref())) {
                values.push(term);
            }
        }
    };
    if let Some(resource) = &resource_spans.resource {
        add(TermScope::Resource, &resource.attributes);
    }
    for scope_spans in &resource_spans.scope_spans {
        for span in &scope_spans.spans {
            add(TermScope::Span, &span.attributes);
        }
    }
    values.sort();
    values.dedup();
    keys.sort();
    keys.dedup();
    (values, keys)
}

/// The version byte that starts every write-ahead log record of spans.
const RECORD_VERSION: u8 = 1;

/// A write-ahead log record of spans.
pub fn encode_record(docs: &[SpanDoc]) -> Vec<u8> {
    let mut record = Vec::with_capacity(1 + docs.iter().map(|doc| doc.payload.len() + 3).sum::<usize>());
    record.push(RECORD_VERSION);
    for doc in docs {
        prost::encoding::encode_varint(doc.payload.len() as u64, &mut record);
        record.extend_from_slice(&doc.payload);
    }
    record
}

/// The spans of a write-ahead log record.
pub fn decode_record(record: &[u8]) -> Result<Vec<SpanDoc>, String> {
    let mut record = match record.split_first() {
        Some((&RECORD_VERSION, rest)) => rest,
        Some((version, _)) => {
            return Err(format!(
                "a traces log record has version {version}; this build reads version {RECORD_VERSION}"
            ));
        }
        None => return Err("a traces log record is empty".to_owned()),
    };
    let mut docs = Vec::new();
    while !record.is_empty() {
        let length = prost::encoding::decode_varint(&mut record)
            .map_err(|err| format!("a traces log record is damaged: {err}"))?;
        let length = usize::try_from(length)
            .ok()
            .filter(|&length| length <= record.len())
            .ok_or_else(|| "a traces log record is truncated".to_owned())?;
        let (payload, rest) = record.split_at(length);
        docs.push(SpanDoc::from_payload(payload)?);
        record = rest;
    }
    Ok(docs)
}

/// A trace id from hex (1 to 32 digits, any case; shorter ids are left-padded with zeros,
/// as Tempo does for 64-bit ids).
pub fn parse_trace_id(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{text:0>32}");
    let mut id = [0u8; 16];
    for (index, slot) in id.iter_mut().enumerate() {
        *slot = u8::from_str_radix(padded.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Status;

    fn string_attr(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..KeyValue::default()
        }
    }

    #[test]
    fn a_span_survives_the_log_record_byte_for_byte() {
        let resource = Resource {
            attributes: vec![string_attr("service.name", "agixt")],
            ..Resource::default()
        };
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "tool-call".into(),
            kind: 3,
            start_time_unix_nano: 10,
            end_time_unix_nano: 25,
            attributes: vec![string_attr("run_id", "r-1")],
            status: Some(Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Span::default()
        };
        let doc = SpanDoc::build(Some(&resource), "", None, "", &span);
        assert_eq!(doc.service, "agixt");
        assert_eq!(doc.duration_ns(), 15);
        let decoded = decode_record(&encode_record(&[doc.clone(), doc.clone()])).expect("decodes");
        assert_eq!(decoded, vec![doc.clone(), doc.clone()]);
        let (values, keys) = attribute_terms(&doc.resource_spans().expect("decodes"));
        assert_eq!(values, ["r\u{1}service.name\u{1}Sagixt", "s\u{1}run_id\u{1}Sr-1"]);
        assert_eq!(keys, ["r\u{1}service.name", "s\u{1}run_id"]);
        let spans = to_model_spans(&[doc]).expect("converts");
        assert_eq!(spans[0].resource.service_name(), Some("agixt"));
        assert_eq!(spans[0].status, obs_traceql::Status::Error);
        assert_eq!(spans[0].status_message, "boom");
    }

    #[test]
    fn damaged_records_are_errors() {
        assert!(decode_record(&[1, 5, 1, 2]).is_err());
        assert!(decode_record(&[1, 0xff]).is_err());
        assert!(decode_record(&[1, 2, 0xff, 0xff]).is_err());
        assert!(decode_record(&[]).is_err());
        assert!(decode_record(&[2]).is_err(), "a newer version is refused");
        assert_eq!(decode_record(&[1]), Ok(Vec::new()));
    }

    #[test]
    fn trace_ids_are_normalised() {
        assert_eq!(
            parse_trace_id("ABC").map(|id| hex(&id)),
            Some("00000000000000000000000000000abc".to_owned())
        );
        assert_eq!(parse_trace_id("xyz"), None);
        assert_eq!(parse_trace_id(&"1".repeat(33)), None);
        assert_eq!(parse_value("I42"), Some(AttrValue::Int(42)));
        assert_eq!(parse_value("Sa\u{1}b"), Some(AttrValue::String("a\u{1}b".into())));
    }
}
