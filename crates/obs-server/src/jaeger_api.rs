//! The Jaeger query API (the JSON API of Jaeger's UI, which Grafana's Jaeger datasource
//! reads), under `/jaeger` so that it does not collide with Tempo's `/api/traces/<id>`: point
//! a Jaeger datasource at `http://<appliance>:9090/jaeger`.
//!
//! - `GET /jaeger/api/services`, `GET /jaeger/api/services/<service>/operations`,
//!   `GET /jaeger/api/operations?service=&spanKind=`;
//! - `GET /jaeger/api/traces?service=&operation=&tags=<JSON object>&minDuration=&maxDuration=
//!   &limit=&start=<µs>&end=<µs>&lookback=`: the search runs as TraceQL over the span store;
//! - `GET /jaeger/api/traces/<id>`.
//!
//! Answers use Jaeger's envelope `{"data": …, "total", "limit", "offset", "errors"}`; spans use
//! Jaeger's model: microseconds, `references` for the parent, `processes` for resources,
//! `tags` typed `string` / `bool` / `int64` / `float64`, events as `logs`.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use obs_core::error::{Classify, ErrorKind};
use obs_traceql::model::AttrValue;
use obs_traces::record::{SpanDoc, hex, parse_trace_id};
use obs_traces::search::SearchParams;
use obs_traces::store::{AttributeScope, CandidateQuery, SpanCondition};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use serde_json::{Value, json};

use crate::AppState;
use crate::tempo_api::{param, params, quote};

const NS_PER_US: u64 = 1_000;
/// The most traces a search returns.
const MAX_LIMIT: usize = 1_500;
/// Spans read to list a service's operations.
const OPERATION_SCAN_SPANS: usize = 50_000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/jaeger/api/services", get(services))
        .route(
            "/jaeger/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/jaeger/api/operations", get(operations))
        .route("/jaeger/api/traces", get(find_traces))
        .route("/jaeger/api/traces/{id}", get(trace))
}

/// Jaeger's envelope.
fn envelope(data: Value, total: usize) -> Response {
    axum::Json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null }))
        .into_response()
}

/// An error on its way to a Jaeger client.
#[derive(Debug)]
struct JaegerError {
    kind: ErrorKind,
    message: String,
}

impl IntoResponse for JaegerError {
    /// Jaeger's error envelope.
    fn into_response(self) -> Response {
        let status = crate::error::http_status(self.kind);
        (
            status,
            axum::Json(json!({
                "data": null, "total": 0, "limit": 0, "offset": 0,
                "errors": [{ "code": status.as_u16(), "msg": self.message }],
            })),
        )
            .into_response()
    }
}

fn failure(kind: ErrorKind, message: impl Into<String>) -> JaegerError {
    JaegerError {
        kind,
        message: message.into(),
    }
}

fn store(state: &AppState) -> Result<std::sync::Arc<obs_traces::store::TraceStore>, JaegerError> {
    crate::tempo_api::trace_store(state, failure)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, JaegerError> + Send + 'static,
) -> Result<T, JaegerError> {
    crate::tempo_api::blocking_or(work, failure).await
}

async fn services(State(state): State<AppState>) -> Response {
    let store = match store(&state) {
        Ok(store) => store,
        Err(err) => return err.into_response(),
    };
    let result = blocking(move || {
        store
            .attribute_values(
                Some(AttributeScope::Resource),
                "service.name",
                0,
                u64::MAX,
                10_000,
            )
            .map_err(|err| failure(err.kind(), err.client_message()))
    })
    .await;
    match result {
        Ok(values) => {
            let names: Vec<String> = values
                .into_iter()
                .filter_map(|value| match value {
                    AttrValue::String(name) => Some(name),
                    _ => None,
                })
                .collect();
            let total = names.len();
            envelope(json!(names), total)
        }
        Err(err) => err.into_response(),
    }
}

/// Operation names and span kinds of a service's spans.
async fn service_spans(
    state: &AppState,
    service: String,
) -> Result<Vec<(String, &'static str)>, JaegerError> {
    let store = store(state)?;
    blocking(move || {
        let (docs, _) = store
            .matching_spans(
                &CandidateQuery {
                    start_ns: 0,
                    end_ns: u64::MAX,
                    conditions: vec![SpanCondition::Attribute(
                        Some(AttributeScope::Resource),
                        "service.name".to_owned(),
                        AttrValue::String(service),
                    )],
                },
                OPERATION_SCAN_SPANS,
            )
            .map_err(|err| failure(err.kind(), err.client_message()))?;
        let mut operations: Vec<(String, &'static str)> = docs
            .iter()
            .map(|doc| (doc.name.clone(), span_kind(doc.kind)))
            .collect();
        operations.sort();
        operations.dedup();
        Ok(operations)
    })
    .await
}

async fn service_operations(State(state): State<AppState>, Path(service): Path<String>) -> Response {
    match service_spans(&state, service).await {
        Ok(operations) => {
            let mut names: Vec<String> = operations.into_iter().map(|(name, _)| name).collect();
            names.dedup();
            let total = names.len();
            envelope(json!(names), total)
        }
        Err(err) => err.into_response(),
    }
}

async fn operations(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let params = params(query.as_deref());
    let Some(service) = param(&params, "service") else {
        return failure(ErrorKind::BadInput, "parameter 'service' is required").into_response();
    };
    let kind = param(&params, "spanKind").map(str::to_owned);
    match service_spans(&state, service.to_owned()).await {
        Ok(operations) => {
            let data: Vec<Value> = operations
                .into_iter()
                .filter(|(_, span_kind)| kind.as_deref().is_none_or(|wanted| wanted == *span_kind))
                .map(|(name, span_kind)| json!({ "name": name, "spanKind": span_kind }))
                .collect();
            let total = data.len();
            envelope(Value::Array(data), total)
        }
        Err(err) => err.into_response(),
    }
}

fn span_kind(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "",
    }
}

/// The TraceQL query of a Jaeger search.
fn search_query(params: &[(String, String)]) -> Result<String, String> {
    let mut conditions = Vec::new();
    if let Some(service) = param(params, "service") {
        conditions.push(format!("resource.service.name = {}", quote(service)));
    }
    if let Some(operation) = param(params, "operation") {
        conditions.push(format!("name = {}", quote(operation)));
    }
    if let Some(tags) = param(params, "tags") {
        let tags: BTreeMap<String, Value> =
            serde_json::from_str(tags).map_err(|err| format!("malformed 'tags' parameter: {err}"))?;
        for (key, value) in tags {
            let field = format!(".{}", quote(&key));
            let text = match &value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            conditions.push(match key.as_str() {
                "error" if text == "true" => "status = error".to_owned(),
                _ if text.parse::<f64>().is_ok() || text == "true" || text == "false" => {
                    format!("({field} = {} || {field} = {text})", quote(&text))
                }
                _ => format!("{field} = {}", quote(&text)),
            });
        }
    }
    for (name, op) in [("minDuration", ">="), ("maxDuration", "<=")] {
        if let Some(text) = param(params, name) {
            let nanos = obs_logql::units::parse_go_duration(text)
                .map_err(|err| format!("malformed '{name}': {err}"))?;
            conditions.push(format!("duration {op} {nanos}ns"));
        }
    }
    Ok(if conditions.is_empty() {
        "{}".to_owned()
    } else {
        format!("{{ {} }}", conditions.join(" && "))
    })
}

async fn find_traces(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let params = params(query.as_deref());
    let text = match search_query(&params) {
        Ok(text) => text,
        Err(message) => return failure(ErrorKind::BadInput, message).into_response(),
    };
    let root = match obs_traceql::parse(&text) {
        Ok(root) => root,
        Err(err) => return failure(ErrorKind::BadInput, format!("invalid search: {err}")).into_response(),
    };
    let micros = |name: &str| param(&params, name).and_then(|text| text.parse::<u64>().ok());
    let end_ns = micros("end").map_or(u64::MAX, |end| {
        end.saturating_mul(NS_PER_US).saturating_add(NS_PER_US)
    });
    let start_ns = micros("start").map_or_else(
        || {
            param(&params, "lookback")
                .and_then(|text| obs_logql::units::parse_go_duration(text).ok())
                .filter(|_| end_ns != u64::MAX)
                .map_or(0, |nanos| end_ns.saturating_sub(nanos.max(0) as u64))
        },
        |start| start.saturating_mul(NS_PER_US),
    );
    let limit = param(&params, "limit")
        .and_then(|text| text.parse::<usize>().ok())
        .filter(|&limit| limit > 0)
        .unwrap_or(20)
        .min(MAX_LIMIT);
    let store = match store(&state) {
        Ok(store) => store,
        Err(err) => return err.into_response(),
    };
    let result = blocking(move || {
        let found = obs_traces::search::search(
            &store,
            &root,
            &SearchParams {
                start_ns,
                end_ns,
                limit,
                ..SearchParams::default()
            },
        )
        .map_err(|err| failure(err.kind(), err.client_message()))?;
        let mut traces = Vec::with_capacity(found.traces.len());
        for trace in &found.traces {
            let Some(trace_id) = parse_trace_id(&trace.trace_id) else {
                continue;
            };
            let docs = store
                .trace(&trace_id, 0, u64::MAX)
                .map_err(|err| failure(err.kind(), err.client_message()))?;
            traces.push(jaeger_trace(&trace_id, &docs));
        }
        Ok(traces)
    })
    .await;
    match result {
        Ok(traces) => {
            let total = traces.len();
            envelope(Value::Array(traces), total)
        }
        Err(err) => err.into_response(),
    }
}

async fn trace(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(trace_id) = parse_trace_id(&id) else {
        return failure(ErrorKind::BadInput, format!("malformed trace id {id:?}")).into_response();
    };
    let store = match store(&state) {
        Ok(store) => store,
        Err(err) => return err.into_response(),
    };
    let result = blocking(move || {
        store
            .trace(&trace_id, 0, u64::MAX)
            .map_err(|err| failure(err.kind(), err.client_message()))
    })
    .await;
    match result {
        Ok(docs) if docs.is_empty() => failure(ErrorKind::NotFound, "trace not found").into_response(),
        Ok(docs) => envelope(json!([jaeger_trace(&trace_id, &docs)]), 1),
        Err(err) => err.into_response(),
    }
}

/// A Jaeger tag from an OTLP attribute.
fn tag(attribute: &KeyValue) -> Value {
    let value = attribute.value.as_ref().and_then(|value| value.value.as_ref());
    let (kind, value) = match value {
        Some(any_value::Value::BoolValue(flag)) => ("bool", json!(flag)),
        Some(any_value::Value::IntValue(int)) => ("int64", json!(int)),
        Some(any_value::Value::DoubleValue(float)) if float.is_finite() => ("float64", json!(float)),
        _ => (
            "string",
            json!(obs_core::otlp::any_value_string(attribute.value.as_ref())),
        ),
    };
    json!({ "key": attribute.key, "type": kind, "value": value })
}

fn string_tag(key: &str, value: &str) -> Value {
    json!({ "key": key, "type": "string", "value": value })
}

/// A trace in Jaeger's model: spans with references, processes from resources.
fn jaeger_trace(trace_id: &[u8; 16], docs: &[SpanDoc]) -> Value {
    let trace_hex = hex(trace_id);
    let mut processes: Vec<(Value, Value)> = Vec::new();
    let mut spans = Vec::with_capacity(docs.len());
    for doc in docs {
        let Ok(resource_spans) = doc.resource_spans() else {
            continue;
        };
        let resource = resource_spans.resource.clone().unwrap_or_default();
        let process = json!({
            "serviceName": if doc.service.is_empty() { "unknown_service" } else { doc.service.as_str() },
            "tags": resource
                .attributes
                .iter()
                .filter(|attribute| attribute.key != "service.name")
                .map(tag)
                .collect::<Vec<_>>(),
        });
        let process_id = match processes.iter().position(|(known, _)| *known == process) {
            Some(position) => position + 1,
            None => {
                processes.push((process.clone(), Value::Null));
                processes.len()
            }
        };
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                let mut tags: Vec<Value> = span.attributes.iter().map(tag).collect();
                let kind = span_kind(span.kind);
                if !kind.is_empty() {
                    tags.push(string_tag("span.kind", kind));
                }
                if let Some(scope) = &scope_spans.scope {
                    if !scope.name.is_empty() {
                        tags.push(string_tag("otel.scope.name", &scope.name));
                    }
                    if !scope.version.is_empty() {
                        tags.push(string_tag("otel.scope.version", &scope.version));
                    }
                }
                if let Some(status) = &span.status {
                    match status.code {
                        2 => {
                            tags.push(json!({ "key": "error", "type": "bool", "value": true }));
                            tags.push(string_tag("otel.status_code", "ERROR"));
                        }
                        1 => tags.push(string_tag("otel.status_code", "OK")),
                        _ => {}
                    }
                    if !status.message.is_empty() {
                        tags.push(string_tag("otel.status_description", &status.message));
                    }
                }
                let mut references = Vec::new();
                if span.parent_span_id.len() == 8 && span.parent_span_id.iter().any(|&byte| byte != 0) {
                    references.push(json!({
                        "refType": "CHILD_OF",
                        "traceID": trace_hex,
                        "spanID": hex(&span.parent_span_id),
                    }));
                }
                for link in &span.links {
                    references.push(json!({
                        "refType": "FOLLOWS_FROM",
                        "traceID": hex(&link.trace_id),
                        "spanID": hex(&link.span_id),
                    }));
                }
                let logs: Vec<Value> = span
                    .events
                    .iter()
                    .map(|event| {
                        let mut fields = vec![string_tag("event", &event.name)];
                        fields.extend(event.attributes.iter().map(tag));
                        json!({ "timestamp": event.time_unix_nano / NS_PER_US, "fields": fields })
                    })
                    .collect();
                spans.push(json!({
                    "traceID": trace_hex,
                    "spanID": hex(&span.span_id),
                    "operationName": span.name,
                    "references": references,
                    "startTime": span.start_time_unix_nano / NS_PER_US,
                    "duration": span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) / NS_PER_US,
                    "tags": tags,
                    "logs": logs,
                    "processID": format!("p{process_id}"),
                    "warnings": null,
                    "flags": 1,
                }));
            }
        }
    }
    let processes: serde_json::Map<String, Value> = processes
        .into_iter()
        .enumerate()
        .map(|(index, (process, _))| (format!("p{}", index + 1), process))
        .collect();
    json!({ "traceID": trace_hex, "spans": spans, "processes": processes, "warnings": null })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn jaeger_searches_become_traceql() {
        let query = search_query(&pairs(&[
            ("service", "agixt"),
            ("operation", "tool.python"),
            (
                "tags",
                r#"{"run_id":"r-1","http.status_code":"500","error":"true"}"#,
            ),
            ("minDuration", "1ms"),
            ("maxDuration", "2s"),
        ]))
        .expect("translates");
        assert_eq!(
            query,
            r#"{ resource.service.name = "agixt" && name = "tool.python" && status = error && (."http.status_code" = "500" || ."http.status_code" = 500) && ."run_id" = "r-1" && duration >= 1000000ns && duration <= 2000000000ns }"#
        );
        obs_traceql::parse(&query).expect("the translation parses");
        assert!(search_query(&pairs(&[("tags", "{not json")])).is_err());
        assert_eq!(search_query(&[]).expect("empty"), "{}");
    }
}
