//! The Tempo HTTP API, as Grafana's Tempo datasource uses it (port 3200 upstream; every
//! listener here), and Zipkin v2 ingest.
//!
//! - `GET /api/echo`, `GET /api/status/buildinfo` (a Tempo 2.x version, so Grafana offers
//!   TraceQL search);
//! - trace by id: `GET /api/v2/traces/<id>` (`Accept: application/protobuf` →
//!   `tempopb.TraceByIDResponse`; JSON otherwise) and `GET /api/traces/<id>` (OTLP
//!   `TracesData` bytes, or JSON), `start` / `end` in Unix seconds; ids of up to 32 hex digits,
//!   any case, left-padded with zeros; 404 `trace not found`;
//! - search: `GET /api/search` (`q` TraceQL, or the legacy `tags` / `minDuration` /
//!   `maxDuration`; `limit`, `spss`, `start`, `end`), newest first;
//! - autocompletion: `/api/search/tags`, `/api/v2/search/tags` (scopes),
//!   `/api/search/tag/<tag>/values`, `/api/v2/search/tag/<scoped tag>/values` (typed values,
//!   `q` narrows them to the spans it matches);
//! - TraceQL metrics: `/api/metrics/query_range` and `/api/metrics/query`;
//! - `POST /api/v2/spans`: Zipkin v2 JSON, 202 once durable.
//!
//! Errors are plain text, as Tempo's; a query that does not parse is a 400 naming the position.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use obs_core::error::{Classify, ErrorKind};
use obs_core::limits::{Compression, decompress};
use obs_core::time::TimestampMs;
use obs_traceql::model::AttrValue;
use obs_traces::record::{hex, parse_trace_id};
use obs_traces::search::{FoundTrace, SearchParams, SearchResult};
use obs_traces::store::{AttributeScope, TraceStore};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use prost::Message;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiFamily};

/// The version reported to Grafana: TraceQL search and the v2 endpoints exist.
pub(crate) const TEMPO_COMPATIBLE_VERSION: &str = "2.9.0";
const NS_PER_SEC: u64 = 1_000_000_000;
/// The most traces a search returns, whatever `limit` asks.
const MAX_LIMIT: usize = 1_000;
/// The most spans per spanset (Tempo's default maximum).
const MAX_SPSS: usize = 100;
/// The most tag values returned.
const MAX_TAG_VALUES: usize = 1_000;
/// The most traces a metrics query reads.
const MAX_METRICS_TRACES: usize = 100_000;
/// The intrinsics listed by `/api/v2/search/tags` (as Tempo lists them).
const INTRINSIC_TAGS: [&str; 15] = [
    "duration",
    "event:name",
    "event:timeSinceStart",
    "instrumentation:name",
    "instrumentation:version",
    "kind",
    "link:spanID",
    "link:traceID",
    "name",
    "rootName",
    "rootServiceName",
    "span:id",
    "status",
    "statusMessage",
    "traceDuration",
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/api/traces/{id}", get(trace_v1))
        .route("/api/v2/traces/{id}", get(trace_v2))
        .route("/api/search", get(search))
        .route("/api/search/tags", get(tags_v1))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{tag}/values", get(tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tag_values_v2))
        .route("/api/metrics/query_range", get(metrics_query_range))
        .route("/api/metrics/query", get(metrics_query_instant))
        .route("/api/v2/spans", post(zipkin_spans))
}

fn tempo_error(kind: ErrorKind, message: impl Into<String>) -> ApiError {
    ApiError::new(ApiFamily::Tempo, kind, message)
}

fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn store(state: &AppState) -> Result<Arc<TraceStore>, ApiError> {
    trace_store(state, tempo_error)
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    blocking_or(work, tempo_error).await
}

/// The span store, or an `Unavailable` error (made by `error`, in the caller's API's wire
/// format) while it replays its write-ahead log.
pub(crate) fn trace_store<E>(
    state: &AppState,
    error: impl FnOnce(ErrorKind, String) -> E,
) -> Result<Arc<TraceStore>, E> {
    state.traces().cloned().ok_or_else(|| {
        error(
            ErrorKind::Unavailable,
            "starting up: the span store is replaying its write-ahead log".to_owned(),
        )
    })
}

/// Runs blocking store work off the async threads; a task that fails is an `Internal` error
/// made by `error`.
pub(crate) async fn blocking_or<T: Send + 'static, E: Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
    error: impl FnOnce(ErrorKind, String) -> E,
) -> Result<T, E> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(err) => Err(error(ErrorKind::Internal, format!("a query task failed: {err}"))),
    }
}

/// The query string's parameters, percent-decoded.
pub(crate) fn params(query: Option<&str>) -> Vec<(String, String)> {
    serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default()
}

/// The last non-empty value of parameter `name`.
pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// A time parameter: Unix seconds (Grafana), milliseconds or nanoseconds by magnitude, or
/// RFC 3339; in nanoseconds.
fn time_param(params: &[(String, String)], name: &str) -> Result<Option<u64>, ApiError> {
    let Some(text) = param(params, name) else {
        return Ok(None);
    };
    if let Ok(number) = text.parse::<u64>() {
        return Ok(Some(if number < 100_000_000_000 {
            number.saturating_mul(NS_PER_SEC)
        } else if number < 100_000_000_000_000 {
            number.saturating_mul(1_000_000)
        } else {
            number
        }));
    }
    crate::prometheus_api::query::parse_time(text)
        .map(|ms| Some((ms.max(0) as u64).saturating_mul(1_000_000)))
        .map_err(|err| tempo_error(ErrorKind::BadInput, format!("invalid {name}: {err}")))
}

fn count_param(
    params: &[(String, String)],
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match param(params, name) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .map(|value| if value == 0 { default } else { value.min(max) })
            .map_err(|_| {
                tempo_error(
                    ErrorKind::BadInput,
                    format!("invalid {name}: {text:?} is not a number"),
                )
            }),
    }
}

/// `[start, end)` from the parameters; the whole retention when absent.
fn range(params: &[(String, String)]) -> Result<(u64, u64), ApiError> {
    let start = time_param(params, "start")?.unwrap_or(0);
    // `end` is inclusive in Tempo (seconds): the whole last second counts.
    let end = time_param(params, "end")?
        .map(|end| end.saturating_add(NS_PER_SEC))
        .unwrap_or(u64::MAX);
    if start >= end {
        return Err(tempo_error(
            ErrorKind::BadInput,
            "invalid start and end: end must be after start",
        ));
    }
    Ok((start, end))
}

async fn buildinfo(State(state): State<AppState>) -> Response {
    let build = state.build();
    axum::Json(json!({
        "version": TEMPO_COMPATIBLE_VERSION,
        "revision": build.version,
        "branch": "HEAD",
        "buildUser": "obs-appliance",
        "buildDate": "",
        "goVersion": format!("obs-appliance {}", build.version),
    }))
    .into_response()
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| {
            accept.contains("application/protobuf") || accept.contains("application/x-protobuf")
        })
}

/// Every span of a trace as OTLP resource spans, spans of one resource and scope together.
async fn load_trace(state: &AppState, id: &str, query: Option<&str>) -> Result<Vec<ResourceSpans>, ApiError> {
    let trace_id = parse_trace_id(id).ok_or_else(|| {
        tempo_error(
            ErrorKind::BadInput,
            format!("invalid trace id {id:?}: a trace id is 1 to 32 hex digits"),
        )
    })?;
    let params = params(query);
    let (start, end) = range(&params)?;
    let store = store(state)?;
    let docs = blocking(move || {
        store
            .trace(&trace_id, start, end)
            .map_err(|err| ApiError::from_error(ApiFamily::Tempo, &err))
    })
    .await?;
    if docs.is_empty() {
        return Err(tempo_error(ErrorKind::NotFound, "trace not found"));
    }
    let mut merged: Vec<ResourceSpans> = Vec::new();
    for doc in &docs {
        let mut resource_spans = doc
            .resource_spans()
            .map_err(|err| tempo_error(ErrorKind::Internal, err))?;
        match merged.iter_mut().find(|known| {
            known.resource == resource_spans.resource && known.schema_url == resource_spans.schema_url
        }) {
            Some(known) => {
                for scope_spans in resource_spans.scope_spans.drain(..) {
                    match known.scope_spans.iter_mut().find(|existing| {
                        existing.scope == scope_spans.scope && existing.schema_url == scope_spans.schema_url
                    }) {
                        Some(existing) => existing.spans.extend(scope_spans.spans),
                        None => known.scope_spans.push(scope_spans),
                    }
                }
            }
            None => merged.push(resource_spans),
        }
    }
    Ok(merged)
}

/// OTLP JSON of resource spans (hex ids, int64 as strings), defaults left out.
fn resource_spans_json(resource_spans: &[ResourceSpans]) -> Value {
    let mut value = serde_json::to_value(TracesData {
        resource_spans: resource_spans.to_vec(),
    })
    .unwrap_or_default();
    strip_defaults(&mut value);
    value
        .get("resourceSpans")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()))
}

/// Removes nulls, empty strings, empty arrays and zero numbers from objects, as protobuf
/// JSON encoders leave default values out.
fn strip_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, field| {
                !(field.is_null()
                    || field.as_str() == Some("")
                    || field.as_array().is_some_and(Vec::is_empty)
                    || field.as_i64() == Some(0)
                    || field.as_u64() == Some(0))
            });
            map.values_mut().for_each(strip_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_defaults),
        _ => {}
    }
}

async fn trace_v1(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let resource_spans = load_trace(&state, &id, query.as_deref()).await?;
            Ok(if wants_protobuf(&headers) {
                let bytes = TracesData { resource_spans }.encode_to_vec();
                ([(header::CONTENT_TYPE, "application/protobuf")], bytes).into_response()
            } else {
                axum::Json(json!({ "batches": resource_spans_json(&resource_spans) })).into_response()
            })
        }
        .await,
    )
}

async fn trace_v2(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    respond(
        async {
            let resource_spans = load_trace(&state, &id, query.as_deref()).await?;
            Ok(if wants_protobuf(&headers) {
                // TraceByIDResponse { Trace trace = 1; ... }: the trace is wire-identical to OTLP's
                // TracesData, so the answer is that message as field 1.
                let trace = TracesData { resource_spans }.encode_to_vec();
                let mut bytes = Vec::with_capacity(trace.len() + 8);
                prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut bytes);
                prost::encoding::encode_varint(trace.len() as u64, &mut bytes);
                bytes.extend_from_slice(&trace);
                ([(header::CONTENT_TYPE, "application/protobuf")], bytes).into_response()
            } else {
                axum::Json(json!({
                    "trace": { "resourceSpans": resource_spans_json(&resource_spans) },
                }))
                .into_response()
            })
        }
        .await,
    )
}

/// A TraceQL query from the legacy search parameters (`tags` in logfmt, `minDuration`,
/// `maxDuration` on the trace's duration), as Tempo translates them.
fn legacy_query(params: &[(String, String)]) -> Result<String, ApiError> {
    let mut conditions: Vec<String> = Vec::new();
    if let Some(tags) = param(params, "tags") {
        for (key, value) in parse_logfmt(tags) {
            let quoted = quote(&value);
            conditions.push(match key.as_str() {
                "name" => format!("name = {quoted}"),
                "status.code" => format!("status = {value}"),
                "error" if value == "true" => "status = error".to_owned(),
                "service.name" => format!("resource.service.name = {quoted}"),
                _ => {
                    let field = format!(".{}", quote_attribute(&key));
                    if value.parse::<i64>().is_ok()
                        || value.parse::<f64>().is_ok()
                        || value == "true"
                        || value == "false"
                    {
                        format!("({field} = {quoted} || {field} = {value})")
                    } else {
                        format!("{field} = {quoted}")
                    }
                }
            });
        }
    }
    for (name, op) in [("minDuration", ">="), ("maxDuration", "<=")] {
        if let Some(text) = param(params, name) {
            let nanos = obs_logql::units::parse_go_duration(text)
                .map_err(|err| tempo_error(ErrorKind::BadInput, format!("invalid {name}: {err}")))?;
            conditions.push(format!("traceDuration {op} {nanos}ns"));
        }
    }
    Ok(if conditions.is_empty() {
        "{}".to_owned()
    } else {
        format!("{{ {} }}", conditions.join(" && "))
    })
}

/// `text` as a TraceQL (or JSON) string literal.
pub(crate) fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// An attribute name as TraceQL needs it: bare when it is made of word characters and dots,
/// quoted otherwise.
fn quote_attribute(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':'))
    {
        name.to_owned()
    } else {
        quote(name)
    }
}

/// `key=value key2="quoted value"` pairs.
fn parse_logfmt(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let key_end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let key = rest[..key_end].to_owned();
        rest = &rest[key_end..];
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            if let Some(quoted) = after.strip_prefix('"') {
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((index, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = index + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                rest = &quoted[end.min(quoted.len())..];
            } else {
                let value_end = after.find(' ').unwrap_or(after.len());
                value = after[..value_end].to_owned();
                rest = &after[value_end..];
            }
        }
        if !key.is_empty() {
            pairs.push((key, value));
        }
        rest = rest.trim_start();
    }
    pairs
}

fn parse_query(text: &str) -> Result<obs_traceql::RootExpr, ApiError> {
    obs_traceql::parse(text)
        .map_err(|err| tempo_error(ErrorKind::BadInput, format!("invalid TraceQL query: {err}")))
}

async fn search(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    respond(
        async {
            let params = params(query.as_deref());
            let text = match param(&params, "q") {
                Some(q) => q.to_owned(),
                None => legacy_query(&params)?,
            };
            let root = parse_query(&text)?;
            let (start_ns, end_ns) = range(&params)?;
            let search_params = SearchParams {
                start_ns,
                end_ns,
                limit: count_param(&params, "limit", 20, MAX_LIMIT)?,
                spans_per_spanset: count_param(&params, "spss", 3, MAX_SPSS)?,
                ..SearchParams::default()
            };
            let store = store(&state)?;
            let result = blocking(move || {
                obs_traces::search::search(&store, &root, &search_params)
                    .map_err(|err| ApiError::from_error(ApiFamily::Tempo, &err))
            })
            .await?;
            Ok(axum::Json(search_json(&result)).into_response())
        }
        .await,
    )
}

/// An attribute as tempopb's JSON writes it.
fn attribute_json(key: &str, value: &AttrValue) -> Value {
    let value = match value {
        AttrValue::String(text) => json!({ "stringValue": text }),
        AttrValue::Int(int) => json!({ "intValue": int.to_string() }),
        AttrValue::Float(float) if float.is_finite() => json!({ "doubleValue": float }),
        AttrValue::Float(float) => json!({ "stringValue": float.to_string() }),
        AttrValue::Bool(flag) => json!({ "boolValue": flag }),
    };
    json!({ "key": key, "value": value })
}

fn trace_json(trace: &FoundTrace) -> Value {
    let spansets: Vec<Value> = trace
        .spansets
        .iter()
        .map(|spanset| {
            let spans: Vec<Value> = spanset
                .spans
                .iter()
                .map(|span| {
                    let mut object = json!({
                        "spanID": span.span_id,
                        "name": span.name,
                        "startTimeUnixNano": span.start_ns.to_string(),
                        "durationNanos": span.duration_ns.to_string(),
                    });
                    if !span.attributes.is_empty()
                        && let Some(map) = object.as_object_mut()
                    {
                        map.insert(
                            "attributes".to_owned(),
                            Value::Array(
                                span.attributes
                                    .iter()
                                    .map(|(key, value)| attribute_json(key, value))
                                    .collect(),
                            ),
                        );
                    }
                    object
                })
                .collect();
            let mut object = json!({ "spans": spans, "matched": spanset.matched });
            if !spanset.attributes.is_empty()
                && let Some(map) = object.as_object_mut()
            {
                map.insert(
                    "attributes".to_owned(),
                    Value::Array(
                        spanset
                            .attributes
                            .iter()
                            .map(|(key, value)| attribute_json(key, value))
                            .collect(),
                    ),
                );
            }
            object
        })
        .collect();
    let service_stats: serde_json::Map<String, Value> = trace
        .service_stats
        .iter()
        .map(|(service, (spans, errors))| {
            let mut stats = json!({ "spanCount": spans });
            if *errors > 0
                && let Some(map) = stats.as_object_mut()
            {
                map.insert("errorCount".to_owned(), json!(errors));
            }
            (service.clone(), stats)
        })
        .collect();
    let mut object = json!({
        "traceID": trace.trace_id,
        "rootServiceName": trace.root_service_name,
        "startTimeUnixNano": trace.start_ns.to_string(),
        "durationMs": trace.duration_ms,
        "serviceStats": service_stats,
    });
    if let Some(map) = object.as_object_mut() {
        if !trace.root_trace_name.is_empty() {
            map.insert("rootTraceName".to_owned(), json!(trace.root_trace_name));
        }
        if let Some(first) = spansets.first() {
            map.insert("spanSet".to_owned(), first.clone());
        }
        map.insert("spanSets".to_owned(), Value::Array(spansets));
    }
    object
}

fn search_json(result: &SearchResult) -> Value {
    json!({
        "traces": result.traces.iter().map(trace_json).collect::<Vec<_>>(),
        "metrics": {
            "inspectedTraces": result.inspected_traces,
            "inspectedSpans": result.inspected_spans.to_string(),
            "inspectedBytes": result.inspected_bytes.to_string(),
            "completedJobs": 1,
            "totalJobs": 1,
        },
    })
}

/// Attribute names of both scopes in the range.
async fn attribute_names(
    state: &AppState,
    params: &[(String, String)],
) -> Result<(Vec<String>, Vec<String>), ApiError> {
    let (start, end) = range(params)?;
    let limit = count_param(params, "limit", 5_000, 50_000)?;
    let store = store(state)?;
    blocking(move || {
        let span = store
            .attribute_names(AttributeScope::Span, start, end, limit)
            .map_err(|err| ApiError::from_error(ApiFamily::Tempo, &err))?;
        let resource = store
            .attribute_names(AttributeScope::Resource, start, end, limit)
            .map_err(|err| ApiError::from_error(ApiFamily::Tempo, &err))?;
        Ok((span, resource))
    })
    .await
}

async fn tags_v1(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    respond(
        async {
            let params = params(query.as_deref());
            let (span, resource) = attribute_names(&state, &params).await?;
            let mut names: Vec<String> = span.into_iter().chain(resource).collect();
            names.sort();
            names.dedup();
            Ok(axum::Json(json!({ "tagNames": names })).into_response())
        }
        .await,
    )
}

async fn tags_v2(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    respond(
        async {
            let params = params(query.as_deref());
            let scope = param(&params, "scope").unwrap_or("all").to_owned();
            let (span, resource) = attribute_names(&state, &params).await?;
            let mut scopes = Vec::new();
            if matches!(scope.as_str(), "all" | "span") {
                scopes.push(json!({ "name": "span", "tags": span }));
            }
            if matches!(scope.as_str(), "all" | "resource") {
                scopes.push(json!({ "name": "resource", "tags": resource }));
            }
            if matches!(scope.as_str(), "all" | "intrinsic") {
                scopes.push(json!({ "name": "intrinsic", "tags": INTRINSIC_TAGS }));
            }
            if !matches!(
                scope.as_str(),
                "all" | "span" | "resource" | "intrinsic" | "event" | "link" | "instrumentation"
            ) {
                return Err(tempo_error(
                    ErrorKind::BadInput,
                    format!("invalid scope: {scope}"),
                ));
            }
            Ok(axum::Json(json!({ "scopes": scopes, "metrics": {} })).into_response())
        }
        .await,
    )
}

/// What a tag of the values endpoints names.
#[derive(Debug, Clone, PartialEq)]
enum Tag {
    Attribute(Option<AttributeScope>, String),
    SpanName,
    Status,
    Kind,
    /// An intrinsic without listed values (durations, ids, ...).
    Other,
}

fn parse_tag(tag: &str, scoped: bool) -> Tag {
    if let Some(name) = tag.strip_prefix("resource.") {
        return Tag::Attribute(Some(AttributeScope::Resource), name.to_owned());
    }
    if let Some(name) = tag.strip_prefix("span.") {
        return Tag::Attribute(Some(AttributeScope::Span), name.to_owned());
    }
    if let Some(name) = tag.strip_prefix('.') {
        return Tag::Attribute(None, name.to_owned());
    }
    match tag {
        "name" | "span:name" => Tag::SpanName,
        "status" | "span:status" | "status.code" => Tag::Status,
        "kind" | "span:kind" => Tag::Kind,
        "rootServiceName" | "trace:rootService" => {
            Tag::Attribute(Some(AttributeScope::Resource), "service.name".to_owned())
        }
        "rootName" | "trace:rootName" => Tag::SpanName,
        _ if scoped => Tag::Other,
        // v1 tags are bare attribute names.
        _ => Tag::Attribute(None, tag.to_owned()),
    }
}

/// Values of a tag, typed. With `q`, only values of spans in the traces it matches.
async fn tag_values(
    state: &AppState,
    tag: &str,
    params: &[(String, String)],
    scoped: bool,
) -> Result<Vec<AttrValue>, ApiError> {
    let tag = parse_tag(tag, scoped);
    let (start, end) = range(params)?;
    let limit = count_param(params, "limit", MAX_TAG_VALUES, MAX_TAG_VALUES)?;
    match &tag {
        Tag::Status => {
            return Ok(["error", "ok", "unset"]
                .map(|v| AttrValue::String(v.to_owned()))
                .to_vec());
        }
        Tag::Kind => {
            return Ok([
                "client",
                "consumer",
                "internal",
                "producer",
                "server",
                "unspecified",
            ]
            .map(|v| AttrValue::String(v.to_owned()))
            .to_vec());
        }
        Tag::Other => return Ok(Vec::new()),
        _ => {}
    }
    // An invalid or match-all `q` does not narrow (Tempo answers the full list then).
    let narrowing = param(params, "q")
        .and_then(|q| obs_traceql::parse(q).ok())
        .filter(|root| {
            !root.is_metrics() && root.single_filter().is_none_or(|filter| !filter.is_match_all())
        });
    let store = store(state)?;
    blocking(move || {
        let fail = |err: &dyn Classify| ApiError::from_error(ApiFamily::Tempo, err);
        if let Some(root) = narrowing {
            let result = obs_traces::search::search(
                &store,
                &root,
                &SearchParams {
                    start_ns: start,
                    end_ns: end,
                    limit: 200,
                    spans_per_spanset: MAX_SPSS,
                    ..SearchParams::default()
                },
            )
            .map_err(|err| fail(&err))?;
            return narrowed_values(&store, &tag, &result, limit).map_err(|err| fail(&err));
        }
        match &tag {
            Tag::SpanName => Ok(store
                .span_names(start, end, limit)
                .map_err(|err| fail(&err))?
                .into_iter()
                .map(AttrValue::String)
                .collect()),
            Tag::Attribute(scope, name) => store
                .attribute_values(*scope, name, start, end, limit)
                .map_err(|err| fail(&err)),
            _ => Ok(Vec::new()),
        }
    })
    .await
}

/// The tag's values on the spans of the traces a search found (the matched spans only).
fn narrowed_values(
    store: &TraceStore,
    tag: &Tag,
    result: &SearchResult,
    limit: usize,
) -> Result<Vec<AttrValue>, obs_traces::search::SearchError> {
    let mut values: Vec<AttrValue> = Vec::new();
    for found in &result.traces {
        let Some(trace_id) = parse_trace_id(&found.trace_id) else {
            continue;
        };
        let docs = store.trace(&trace_id, 0, u64::MAX)?;
        let trace = obs_traces::search::assemble(trace_id, &docs)?;
        let matched: std::collections::HashSet<&str> = found
            .spansets
            .iter()
            .flat_map(|spanset| spanset.spans.iter().map(|span| span.span_id.as_str()))
            .collect();
        for span in &trace.spans {
            if !matched.contains(hex(&span.span_id).as_str()) {
                continue;
            }
            let value = match tag {
                Tag::SpanName => Some(AttrValue::String(span.name.clone())),
                Tag::Attribute(scope, name) => {
                    let on_span = || obs_traceql::model::attribute(&span.attributes, name);
                    let on_resource = || obs_traceql::model::attribute(&span.resource.attributes, name);
                    match scope {
                        Some(AttributeScope::Span) => on_span(),
                        Some(AttributeScope::Resource) => on_resource(),
                        None => on_span().or_else(on_resource),
                    }
                    .cloned()
                }
                _ => None,
            };
            if let Some(value) = value
                && !values.contains(&value)
            {
                values.push(value);
            }
        }
    }
    values.sort_by_key(|value| value_json(value).0);
    values.truncate(limit);
    Ok(values)
}

/// A typed tag value: its type name and text.
fn value_json(value: &AttrValue) -> (String, &'static str) {
    match value {
        AttrValue::String(text) => (text.clone(), "string"),
        AttrValue::Int(int) => (int.to_string(), "int"),
        AttrValue::Float(float) => (float.to_string(), "float"),
        AttrValue::Bool(flag) => (flag.to_string(), "bool"),
    }
}

async fn tag_values_v1(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async {
            let params = params(query.as_deref());
            let values = tag_values(&state, &tag, &params, false).await?;
            let texts: Vec<String> = values.iter().map(|value| value_json(value).0).collect();
            Ok(axum::Json(json!({ "tagValues": texts })).into_response())
        }
        .await,
    )
}

async fn tag_values_v2(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    respond(
        async {
            let params = params(query.as_deref());
            let keyword = matches!(parse_tag(&tag, true), Tag::Status | Tag::Kind);
            let values = tag_values(&state, &tag, &params, true).await?;
            let typed: Vec<Value> = values
                .iter()
                .map(|value| {
                    let (text, kind) = value_json(value);
                    json!({ "type": if keyword { "keyword" } else { kind }, "value": text })
                })
                .collect();
            Ok(axum::Json(json!({ "tagValues": typed, "metrics": {} })).into_response())
        }
        .await,
    )
}

/// `step`: a Go duration or seconds; by default about 100 points over the range.
fn step_param(params: &[(String, String)], start: u64, end: u64) -> Result<u64, ApiError> {
    match param(params, "step") {
        None => Ok(((end - start) / 100).max(NS_PER_SEC)),
        Some(text) => {
            let nanos = match text.parse::<f64>() {
                Ok(seconds) if seconds.is_finite() => (seconds * 1e9) as i64,
                _ => obs_logql::units::parse_go_duration(text)
                    .map_err(|err| tempo_error(ErrorKind::BadInput, format!("invalid step: {err}")))?,
            };
            if nanos <= 0 {
                return Err(tempo_error(ErrorKind::BadInput, "invalid step: must be positive"));
            }
            Ok(nanos as u64)
        }
    }
}

async fn run_metrics(
    state: &AppState,
    params: &[(String, String)],
    instant: bool,
) -> Result<(Vec<obs_traceql::metrics::Series>, bool), ApiError> {
    let text = param(params, "q")
        .ok_or_else(|| tempo_error(ErrorKind::BadInput, "missing q: a TraceQL metrics query"))?
        .to_owned();
    let root = parse_query(&text)?;
    if !root.is_metrics() {
        return Err(tempo_error(
            ErrorKind::BadInput,
            "invalid TraceQL query: a metrics query ends in a metrics function such as rate() or count_over_time()",
        ));
    }
    let now = (TimestampMs::now().0.max(0) as u64).saturating_mul(1_000_000);
    let end = time_param(params, "end")?.unwrap_or(now);
    let start = time_param(params, "start")?.unwrap_or(end.saturating_sub(3600 * NS_PER_SEC));
    if start >= end {
        return Err(tempo_error(
            ErrorKind::BadInput,
            "invalid start and end: end must be after start",
        ));
    }
    let step = if instant {
        end - start
    } else {
        step_param(params, start, end)?
    };
    let store = store(state)?;
    blocking(move || {
        obs_traces::search::metrics_range(&store, &root, start, end, step, MAX_METRICS_TRACES)
            .map_err(|err| ApiError::from_error(ApiFamily::Tempo, &err))
    })
    .await
}

fn labels_json(labels: &[(String, AttrValue)]) -> Vec<Value> {
    labels
        .iter()
        .map(|(key, value)| attribute_json(key, value))
        .collect()
}

async fn metrics_query_range(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    respond(
        async {
            let params = params(query.as_deref());
            let (series, partial) = run_metrics(&state, &params, false).await?;
            let series: Vec<Value> = series
                .iter()
                .map(|series| {
                    json!({
                        "labels": labels_json(&series.labels),
                        "samples": series.samples.iter().map(|(ms, value)| json!({
                            "timestampMs": ms.to_string(),
                            "value": value,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let mut body = json!({ "series": series, "metrics": {} });
            if partial && let Some(map) = body.as_object_mut() {
                map.insert("status".to_owned(), json!("PARTIAL"));
                map.insert(
                    "message".to_owned(),
                    json!(format!(
                        "only the {MAX_METRICS_TRACES} most recent matching traces were read"
                    )),
                );
            }
            Ok(axum::Json(body).into_response())
        }
        .await,
    )
}

async fn metrics_query_instant(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    respond(
        async {
            let params = params(query.as_deref());
            let (series, _) = run_metrics(&state, &params, true).await?;
            let series: Vec<Value> = series
                .iter()
                .map(|series| {
                    json!({
                        "labels": labels_json(&series.labels),
                        "value": series.samples.iter().map(|(_, value)| value).sum::<f64>(),
                    })
                })
                .collect();
            Ok(axum::Json(json!({ "series": series, "metrics": {} })).into_response())
        }
        .await,
    )
}

async fn zipkin_spans(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    respond(
        async {
            let content_encoding = headers
                .get(header::CONTENT_ENCODING)
                .and_then(|value| value.to_str().ok());
            let compression = Compression::from_content_encoding(content_encoding)
                .map_err(|err| ApiError::from_error(ApiFamily::Tempo, &err))?;
            let max = state.limits().max_decompressed_bytes;
            let decompressed;
            let bytes: &[u8] = if compression == Compression::Identity {
                if body.len() > max {
                    return Err(tempo_error(
                        ErrorKind::TooLarge,
                        format!("body of {} bytes exceeds the limit of {max} bytes", body.len()),
                    ));
                }
                &body
            } else {
                decompressed = decompress(compression, &body, max)
                    .map_err(|err| ApiError::from_error(ApiFamily::Tempo, &err))?;
                &decompressed
            };
            let (request, mut rejected) = obs_traces::otlp::zipkin_to_otlp(bytes)
                .map_err(|err| tempo_error(ErrorKind::BadInput, err))?;
            let (stored, refused) = crate::otlp_api::store_spans(&state, &request)
                .await
                .map_err(|(kind, message)| tempo_error(kind, message))?;
            rejected.extend(refused);
            if stored == 0 && !rejected.is_empty() {
                return Err(tempo_error(
                    ErrorKind::BadInput,
                    format!("no span was stored: {}", rejected.join("; ")),
                ));
            }
            Ok(StatusCode::ACCEPTED.into_response())
        }
        .await,
    )
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
    fn legacy_search_parameters_become_traceql() {
        let query = legacy_query(&pairs(&[
            (
                "tags",
                r#"service.name=agixt http.status_code=500 run_id="r 1" error=true"#,
            ),
            ("minDuration", "100ms"),
        ]))
        .expect("translates");
        assert_eq!(
            query,
            r#"{ resource.service.name = "agixt" && (.http.status_code = "500" || .http.status_code = 500) && .run_id = "r 1" && status = error && traceDuration >= 100000000ns }"#
        );
        obs_traceql::parse(&query).expect("the translation parses");
        assert_eq!(legacy_query(&[]).expect("empty"), "{}");
        assert!(legacy_query(&pairs(&[("maxDuration", "soon")])).is_err());
    }

    #[test]
    fn times_are_read_by_magnitude() {
        let read = |text: &str| time_param(&pairs(&[("start", text)]), "start").expect("parses");
        assert_eq!(read("1700000000"), Some(1_700_000_000 * NS_PER_SEC));
        assert_eq!(read("1700000000000"), Some(1_700_000_000_000 * 1_000_000));
        assert_eq!(read("1700000000000000000"), Some(1_700_000_000_000_000_000));
        assert!(time_param(&pairs(&[("start", "yesterday")]), "start").is_err());
    }

    #[test]
    fn tags_name_their_scope() {
        assert_eq!(
            parse_tag("resource.service.name", true),
            Tag::Attribute(Some(AttributeScope::Resource), "service.name".into())
        );
        assert_eq!(parse_tag(".run_id", true), Tag::Attribute(None, "run_id".into()));
        assert_eq!(parse_tag("status", true), Tag::Status);
        assert_eq!(parse_tag("duration", true), Tag::Other);
        assert_eq!(parse_tag("run_id", false), Tag::Attribute(None, "run_id".into()));
    }
}
