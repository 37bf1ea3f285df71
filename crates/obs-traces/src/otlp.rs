//! OTLP trace exports and Zipkin v2 JSON into [`SpanDoc`]s: every span checked on its own,
//! so a bad span is refused with its reason while the rest of the request is stored.
//!
//! Refused: a trace id that is not 16 bytes or is all zeros, a span id that is not 8 bytes or
//! is all zeros, a parent span id of another length than 0 or 8, a span ending before it
//! starts, a span without a start time, more attributes (span, resource, events and links
//! together) than [`SpanLimits::max_attributes`], and spans whose stored form is over
//! [`SpanLimits::max_span_bytes`].

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

use crate::record::{SpanDoc, hex, parse_trace_id};

/// Per-span limits.
#[derive(Debug, Clone, Copy)]
pub struct SpanLimits {
    /// The most attributes one span may carry, its resource's, events' and links' included.
    pub max_attributes: usize,
    /// The most bytes one stored span may take.
    pub max_span_bytes: usize,
}

impl Default for SpanLimits {
    fn default() -> SpanLimits {
        SpanLimits {
            max_attributes: 1024,
            max_span_bytes: 1 << 20,
        }
    }
}

/// What a conversion produced.
#[derive(Debug, Default)]
pub struct Converted {
    /// The spans that passed.
    pub spans: Vec<SpanDoc>,
    /// Why each refused span was refused.
    pub rejected: Vec<String>,
}

/// Checks and converts every span of an export.
pub fn convert(request: &ExportTraceServiceRequest, limits: &SpanLimits) -> Converted {
    let mut converted = Converted::default();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans.resource.as_ref();
        let resource_attributes = resource.map_or(0, |resource| resource.attributes.len());
        for scope_spans in &resource_spans.scope_spans {
            let scope_attributes = scope_spans
                .scope
                .as_ref()
                .map_or(0, |scope| scope.attributes.len());
            for span in &scope_spans.spans {
                if let Err(reason) = check(span, resource_attributes + scope_attributes, limits) {
                    converted.rejected.push(reason);
                    continue;
                }
                let doc = SpanDoc::build(
                    resource,
                    &resource_spans.schema_url,
                    scope_spans.scope.as_ref(),
                    &scope_spans.schema_url,
                    span,
                );
                if doc.payload.len() > limits.max_span_bytes {
                    converted.rejected.push(format!(
                        "span {} of trace {} takes {} bytes, more than the limit of {}",
                        hex(&span.span_id),
                        hex(&span.trace_id),
                        doc.payload.len(),
                        limits.max_span_bytes
                    ));
                    continue;
                }
                converted.spans.push(doc);
            }
        }
    }
    converted
}

fn check(span: &Span, inherited_attributes: usize, limits: &SpanLimits) -> Result<(), String> {
    let name = |span: &Span| format!("span {:?} ({})", span.name, hex(&span.span_id));
    if span.trace_id.len() != 16 {
        return Err(format!(
            "{}: trace id has {} bytes, must have 16",
            name(span),
            span.trace_id.len()
        ));
    }
    if span.trace_id.iter().all(|&byte| byte == 0) {
        return Err(format!("{}: trace id is all zeros", name(span)));
    }
    if span.span_id.len() != 8 {
        return Err(format!(
            "span {:?} of trace {}: span id has {} bytes, must have 8",
            span.name,
            hex(&span.trace_id),
            span.span_id.len()
        ));
    }
    if span.span_id.iter().all(|&byte| byte == 0) {
        return Err(format!(
            "span {:?} of trace {}: span id is all zeros",
            span.name,
            hex(&span.trace_id)
        ));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(format!(
            "{}: parent span id has {} bytes, must have 0 or 8",
            name(span),
            span.parent_span_id.len()
        ));
    }
    if span.start_time_unix_nano == 0 {
        return Err(format!("{}: start time is missing", name(span)));
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(format!(
            "{}: ends ({}) before it starts ({})",
            name(span),
            span.end_time_unix_nano,
            span.start_time_unix_nano
        ));
    }
    let attributes = inherited_attributes
        + span.attributes.len()
        + span
            .events
            .iter()
            .map(|event| event.attributes.len())
            .sum::<usize>()
        + span.links.iter().map(|link| link.attributes.len()).sum::<usize>();
    if attributes > limits.max_attributes {
        return Err(format!(
            "{}: {attributes} attributes, more than the limit of {}",
            name(span),
            limits.max_attributes
        ));
    }
    Ok(())
}

/// Zipkin v2 JSON (`POST /api/v2/spans`) as an OTLP export, mapped as the OpenTelemetry
/// Collector's Zipkin receiver maps it: `localEndpoint.serviceName` becomes the resource's
/// `service.name`, timestamps and durations (microseconds) nanoseconds, tags attributes, the
/// `error` tag an error status, annotations events, `remoteEndpoint.serviceName`
/// `peer.service`. Spans that cannot be mapped are refused with their reason.
pub fn zipkin_to_otlp(body: &[u8]) -> Result<(ExportTraceServiceRequest, Vec<String>), String> {
    let spans: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|err| format!("cannot parse the Zipkin JSON body: {err}"))?;
    let mut rejected = Vec::new();
    let mut by_service: Vec<(String, Vec<Span>)> = Vec::new();
    for (position, value) in spans.iter().enumerate() {
        match zipkin_span(value) {
            Ok((service, span)) => match by_service.iter_mut().find(|(known, _)| *known == service) {
                Some((_, spans)) => spans.push(span),
                None => by_service.push((service, vec![span])),
            },
            Err(reason) => rejected.push(format!("span {position}: {reason}")),
        }
    }
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", &service)],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            schema_url: String::new(),
        })
        .collect();
    Ok((ExportTraceServiceRequest { resource_spans }, rejected))
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

fn zipkin_id(value: Option<&serde_json::Value>, what: &str, bytes: usize) -> Result<Vec<u8>, String> {
    let text = value
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("{what} is missing"))?;
    if text.len() > bytes * 2 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(format!("{what} {text:?} is not up to {} hex digits", bytes * 2));
    }
    let id = parse_trace_id(text).ok_or_else(|| format!("{what} {text:?} is not hex"))?;
    Ok(id[16 - bytes..].to_vec())
}

fn zipkin_micros(value: Option<&serde_json::Value>) -> Option<u64> {
    match value? {
        serde_json::Value::Number(number) => number.as_u64(),
        serde_json::Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn zipkin_span(value: &serde_json::Value) -> Result<(String, Span), String> {
    let object = value.as_object().ok_or("not a JSON object")?;
    let trace_id = zipkin_id(object.get("traceId"), "traceId", 16)?;
    let span_id = zipkin_id(object.get("id"), "id", 8)?;
    let parent_span_id = match object.get("parentId") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        parent => zipkin_id(parent, "parentId", 8)?,
    };
    let start_us = zipkin_micros(object.get("timestamp")).ok_or("timestamp is missing")?;
    let duration_us = zipkin_micros(object.get("duration")).unwrap_or(0);
    let kind = match object.get("kind").and_then(serde_json::Value::as_str) {
        Some("SERVER") => span::SpanKind::Server,
        Some("CLIENT") => span::SpanKind::Client,
        Some("PRODUCER") => span::SpanKind::Producer,
        Some("CONSUMER") => span::SpanKind::Consumer,
        _ => span::SpanKind::Internal,
    };
    let service = object
        .get("localEndpoint")
        .and_then(|endpoint| endpoint.get("serviceName"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown_service")
        .to_owned();
    let mut attributes = Vec::new();
    let mut status = None;
    if let Some(tags) = object.get("tags").and_then(serde_json::Value::as_object) {
        for (key, value) in tags {
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            if key == "error" {
                status = Some(Status {
                    code: 2,
                    message: text.clone(),
                });
            }
            attributes.push(string_attribute(key, &text));
        }
    }
    if let Some(remote) = object
        .get("remoteEndpoint")
        .and_then(|endpoint| endpoint.get("serviceName"))
        .and_then(serde_json::Value::as_str)
    {
        attributes.push(string_attribute("peer.service", remote));
    }
    let events = object
        .get("annotations")
        .and_then(serde_json::Value::as_array)
        .map(|annotations| {
            annotations
                .iter()
                .filter_map(|annotation| {
                    Some(span::Event {
                        time_unix_nano: zipkin_micros(annotation.get("timestamp"))?.saturating_mul(1000),
                        name: annotation.get("value")?.as_str()?.to_owned(),
                        ..span::Event::default()
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let start_ns = start_us.saturating_mul(1000);
    Ok((
        service,
        Span {
            trace_id,
            span_id,
            parent_span_id,
            name: object
                .get("name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            kind: kind as i32,
            start_time_unix_nano: start_ns,
            end_time_unix_nano: start_ns.saturating_add(duration_us.saturating_mul(1000)),
            attributes,
            events,
            status,
            ..Span::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn good() -> Span {
        Span {
            trace_id: vec![7; 16],
            span_id: vec![1; 8],
            start_time_unix_nano: 100,
            end_time_unix_nano: 200,
            name: "ok".into(),
            ..Span::default()
        }
    }

    #[test]
    fn bad_spans_are_refused_alone_with_their_reason() {
        let mut short_trace = good();
        short_trace.trace_id = vec![1; 15];
        let mut zero_trace = good();
        zero_trace.trace_id = vec![0; 16];
        let mut zero_span = good();
        zero_span.span_id = vec![0; 8];
        let mut backwards = good();
        backwards.end_time_unix_nano = 50;
        let mut crowded = good();
        crowded.attributes = (0..2000)
            .map(|i| string_attribute(&format!("k{i}"), "v"))
            .collect();
        let converted = convert(
            &request(vec![
                good(),
                short_trace,
                zero_trace,
                zero_span,
                backwards,
                crowded,
            ]),
            &SpanLimits::default(),
        );
        assert_eq!(converted.spans.len(), 1);
        assert_eq!(converted.rejected.len(), 5, "{:?}", converted.rejected);
        assert!(converted.rejected[0].contains("trace id has 15 bytes"));
        assert!(converted.rejected[1].contains("all zeros"));
        assert!(converted.rejected[2].contains("span id is all zeros"));
        assert!(converted.rejected[3].contains("before it starts"));
        assert!(converted.rejected[4].contains("2000 attributes"));
    }

    #[test]
    fn zipkin_spans_map_to_otlp() {
        let body = br#"[{"traceId":"abc","id":"0000000000000001","parentId":"0000000000000002","name":"get /api","kind":"SERVER",
            "timestamp":1700000000000000,"duration":1500,"localEndpoint":{"serviceName":"librechat"},
            "remoteEndpoint":{"serviceName":"browser"},"tags":{"http.method":"GET","error":"timeout"},
            "annotations":[{"timestamp":1700000000000100,"value":"ws"}]},
            {"traceId":"zz","id":"1"}]"#;
        let (request, rejected) = zipkin_to_otlp(body).expect("parses");
        assert_eq!(rejected.len(), 1);
        let converted = convert(&request, &SpanLimits::default());
        assert_eq!(converted.spans.len(), 1);
        let doc = &converted.spans[0];
        assert_eq!(hex(&doc.trace_id), "00000000000000000000000000000abc");
        assert_eq!(doc.service, "librechat");
        assert_eq!(doc.kind, 2);
        assert_eq!(doc.status, 2);
        assert_eq!(doc.duration_ns(), 1_500_000);
        assert!(zipkin_to_otlp(b"{").is_err());
    }
}
