//! OTLP receivers: HTTP (`POST /v1/metrics`, also under `/otlp` and `/api/v1/otlp` as Loki
//! and Prometheus serve it; `POST /v1/logs` and `/otlp/v1/logs`; `POST /v1/traces` and
//! `/otlp/v1/traces`) and gRPC (the metrics, logs and trace collector services' `Export` on
//! every listener).
//!
//! HTTP bodies are protobuf (`application/x-protobuf`) or JSON (`application/json`, the OTLP
//! JSON mapping: lowerCamelCase keys, 64-bit integers as strings or numbers, enums as numbers
//! or names, trace and span ids in hex or, leniently, base64), optionally gzip / deflate / zstd compressed; the answer is in the request's
//! content type. 200 carries `partial_success` when some data points were refused (the
//! message says why); 400 for a body that does not decode (never retried by exporters), 413
//! over the size limits, 415 for another content type, 429 / 503 with `Retry-After` when the
//! appliance cannot take data now (exporters retry). gRPC uses the matching status codes.
//!
//! Acknowledged means durable: the answer is sent once the accepted samples are in the
//! write-ahead log.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use obs_core::error::{Classify, ErrorKind};
use obs_core::limits::{Compression, decompress};
use obs_core::time::TimestampMs;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::AppState;
use crate::error::{ApiError, ApiFamily, grpc_status};

/// How many refusal messages `partial_success.error_message` lists.
const LISTED_REFUSALS: usize = 10;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/metrics", post(export_metrics_http))
        .route("/otlp/v1/metrics", post(export_metrics_http))
        .route("/api/v1/otlp/v1/metrics", post(export_metrics_http))
        .route("/v1/logs", post(export_logs_http))
        .route("/otlp/v1/logs", post(export_logs_http))
        .route("/v1/traces", post(export_traces_http))
        .route("/otlp/v1/traces", post(export_traces_http))
}

/// The body encodings of OTLP over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn family(self) -> ApiFamily {
        match self {
            Encoding::Protobuf => ApiFamily::OtlpProtobuf,
            Encoding::Json => ApiFamily::OtlpJson,
        }
    }

    fn of(headers: &HeaderMap) -> Result<Encoding, String> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("application/x-protobuf")
            || media_type.eq_ignore_ascii_case("application/protobuf")
        {
            Ok(Encoding::Protobuf)
        } else if media_type.eq_ignore_ascii_case("application/json") {
            Ok(Encoding::Json)
        } else {
            Err(format!(
                "unsupported content type {content_type:?}: OTLP/HTTP bodies are application/x-protobuf or application/json"
            ))
        }
    }
}

/// Decompresses and decodes an OTLP/HTTP body.
fn decode_body<T>(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    encoding: Encoding,
) -> Result<T, ApiError>
where
    T: Message + Default + serde::de::DeserializeOwned,
{
    let family = encoding.family();
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok());
    let compression = Compression::from_content_encoding(content_encoding)
        .map_err(|err| ApiError::from_error(family, &err))?;
    let max = state.limits().max_decompressed_bytes;
    let decompressed;
    let bytes = if compression == Compression::Identity {
        if body.len() > max {
            return Err(ApiError::new(
                family,
                ErrorKind::TooLarge,
                format!("body of {} bytes exceeds the limit of {max} bytes", body.len()),
            ));
        }
        body
    } else {
        decompressed =
            decompress(compression, body, max).map_err(|err| ApiError::from_error(family, &err))?;
        &decompressed[..]
    };
    match encoding {
        Encoding::Protobuf => T::decode(bytes).map_err(|err| {
            ApiError::new(
                family,
                ErrorKind::BadInput,
                format!("cannot decode the OTLP protobuf body: {err}"),
            )
        }),
        Encoding::Json => {
            let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
                ApiError::new(
                    family,
                    ErrorKind::BadInput,
                    format!("cannot parse the OTLP JSON body: {err}"),
                )
            })?;
            lenient_json(&mut value, 0);
            serde_json::from_value(value).map_err(|err| {
                ApiError::new(
                    family,
                    ErrorKind::BadInput,
                    format!("invalid OTLP JSON body: {err}"),
                )
            })
        }
    }
}

/// What some JSON encoders send that OTLP's JSON mapping does not: enum fields by name become
/// their numbers, trace and span ids in base64 (the generic protobuf mapping) become hex.
fn lenient_json(value: &mut serde_json::Value, depth: usize) {
    // The JSON parser already bounds nesting (128 levels); this guard keeps the walk bounded too.
    if depth > 256 {
        return;
    }
    match value {
        serde_json::Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                let serde_json::Value::String(text) = field else {
                    lenient_json(field, depth + 1);
                    continue;
                };
                if let Some(number) = enum_number(key, text) {
                    *field = serde_json::Value::from(number);
                } else if let Some(bytes) = id_bytes(key)
                    && !(text.len() == bytes * 2 && text.bytes().all(|byte| byte.is_ascii_hexdigit()))
                    && let Some(decoded) =
                        obs_core::otlp::base64_decode(text).filter(|decoded| decoded.len() == bytes)
                {
                    *text = obs_core::otlp::hex(&decoded);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|item| lenient_json(item, depth + 1)),
        _ => {}
    }
}

/// The length of the id a JSON key names, if it names one.
fn id_bytes(key: &str) -> Option<usize> {
    match key {
        "traceId" => Some(16),
        "spanId" | "parentSpanId" => Some(8),
        _ => None,
    }
}

fn enum_number(key: &str, name: &str) -> Option<i64> {
    Some(match (key, name) {
        ("aggregationTemporality", "AGGREGATION_TEMPORALITY_UNSPECIFIED") => 0,
        ("aggregationTemporality", "AGGREGATION_TEMPORALITY_DELTA") => 1,
        ("aggregationTemporality", "AGGREGATION_TEMPORALITY_CUMULATIVE") => 2,
        ("kind", "SPAN_KIND_UNSPECIFIED") => 0,
        ("kind", "SPAN_KIND_INTERNAL") => 1,
        ("kind", "SPAN_KIND_SERVER") => 2,
        ("kind", "SPAN_KIND_CLIENT") => 3,
        ("kind", "SPAN_KIND_PRODUCER") => 4,
        ("kind", "SPAN_KIND_CONSUMER") => 5,
        ("code", "STATUS_CODE_UNSET") => 0,
        ("code", "STATUS_CODE_OK") => 1,
        ("code", "STATUS_CODE_ERROR") => 2,
        ("severityNumber", name) => {
            let rest = name.strip_prefix("SEVERITY_NUMBER_")?;
            severity_number(rest)?
        }
        _ => return None,
    })
}

fn severity_number(name: &str) -> Option<i64> {
    if name == "UNSPECIFIED" {
        return Some(0);
    }
    let bases = [
        ("TRACE", 1),
        ("DEBUG", 5),
        ("INFO", 9),
        ("WARN", 13),
        ("ERROR", 17),
        ("FATAL", 21),
    ];
    bases.iter().find_map(|(prefix, base)| {
        let rest = name.strip_prefix(prefix)?;
        match rest {
            "" => Some(*base),
            "2" => Some(base + 1),
            "3" => Some(base + 2),
            "4" => Some(base + 3),
            _ => None,
        }
    })
}

/// Encodes an answer in the request's content type.
fn encode_response<T: Message + serde::Serialize>(encoding: Encoding, message: &T) -> Response {
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            message.encode_to_vec(),
        )
            .into_response(),
        Encoding::Json => {
            // Absent optional messages are left out, not written as `null`.
            let mut value = serde_json::to_value(message).unwrap_or_default();
            if let serde_json::Value::Object(map) = &mut value {
                map.retain(|_, field| !field.is_null());
            }
            (StatusCode::OK, axum::Json(value)).into_response()
        }
    }
}

async fn export_metrics_http(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let encoding = match Encoding::of(&headers) {
        Ok(encoding) => encoding,
        Err(message) => {
            return ApiError::new(ApiFamily::OtlpProtobuf, ErrorKind::UnsupportedMediaType, message)
                .into_response();
        }
    };
    let request: ExportMetricsServiceRequest = match decode_body(&state, &headers, &body, encoding) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    match export_metrics(&state, request).await {
        Ok(response) => encode_response(encoding, &response),
        Err((kind, message)) => ApiError::new(encoding.family(), kind, message).into_response(),
    }
}

/// Converts, stores and answers one metrics export; errors as their kind and message.
async fn export_metrics(
    state: &AppState,
    request: ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse, (ErrorKind, String)> {
    let Some(store) = state.metrics() else {
        return Err((
            ErrorKind::Unavailable,
            "starting up: the metrics store is replaying its write-ahead log".to_owned(),
        ));
    };
    let mut converted = obs_metrics::otlp::convert(&request, &state.otlp_options());
    drop(request);
    store.record_metadata(std::mem::take(&mut converted.metadata));
    let (batch, points) = converted.take_series();
    let outcome = store
        .append(batch, TimestampMs::now())
        .await
        .map_err(|err| (err.kind(), err.client_message()))?;
    let rejected = converted.refused_points + points.rejected_points(&outcome.rejected);
    if rejected == 0 {
        return Ok(ExportMetricsServiceResponse {
            partial_success: None,
        });
    }
    let mut messages = converted.refusals;
    let total_messages = messages.len() + outcome.rejected.len();
    messages.extend(
        outcome
            .rejected
            .iter()
            .take(LISTED_REFUSALS.saturating_sub(messages.len()))
            .map(ToString::to_string),
    );
    let mut error_message = messages.join("; ");
    if total_messages > messages.len() {
        error_message.push_str(&format!("; and {} more", total_messages - messages.len()));
    }
    Ok(ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: rejected as i64,
            error_message,
        }),
    })
}

/// One OTLP `Export` service: its gRPC name, messages and handler.
pub(crate) trait ExportService: Send + Sync + 'static {
    /// The gRPC service name.
    const NAME: &'static str;
    /// The request message.
    type Request: Message + Default + Send + 'static;
    /// The response message.
    type Response: Message + Default + Send + 'static;
    /// Stores one export; errors as their kind and message.
    fn export(state: AppState, request: Self::Request) -> BoxFuture<Self::Response, (ErrorKind, String)>;
}

/// The metrics collector service.
#[derive(Debug)]
pub(crate) struct MetricsExport;

impl ExportService for MetricsExport {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;

    fn export(state: AppState, request: Self::Request) -> BoxFuture<Self::Response, (ErrorKind, String)> {
        Box::pin(async move { export_metrics(&state, request).await })
    }
}

/// The logs collector service.
#[derive(Debug)]
pub(crate) struct LogsExport;

impl ExportService for LogsExport {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;

    fn export(state: AppState, request: Self::Request) -> BoxFuture<Self::Response, (ErrorKind, String)> {
        Box::pin(async move { export_logs(&state, request).await })
    }
}

/// The trace collector service.
#[derive(Debug)]
pub(crate) struct TracesExport;

impl ExportService for TracesExport {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;

    fn export(state: AppState, request: Self::Request) -> BoxFuture<Self::Response, (ErrorKind, String)> {
        Box::pin(async move { export_traces(&state, request).await })
    }
}

/// An OTLP collector service over gRPC (`<service>/Export` on every listener).
#[derive(Debug)]
pub(crate) struct ExportGrpc<E> {
    state: AppState,
    service: std::marker::PhantomData<fn() -> E>,
}

impl<E> Clone for ExportGrpc<E> {
    fn clone(&self) -> Self {
        ExportGrpc {
            state: self.state.clone(),
            service: std::marker::PhantomData,
        }
    }
}

impl<E: ExportService> ExportGrpc<E> {
    pub(crate) fn new(state: AppState) -> ExportGrpc<E> {
        ExportGrpc {
            state,
            service: std::marker::PhantomData,
        }
    }
}

impl<E: ExportService> tonic::server::NamedService for ExportGrpc<E> {
    const NAME: &'static str = E::NAME;
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

impl<E: ExportService> tonic::server::UnaryService<E::Request> for ExportGrpc<E> {
    type Response = E::Response;
    type Future = BoxFuture<tonic::Response<E::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<E::Request>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            E::export(state, request.into_inner())
                .await
                .map(tonic::Response::new)
                .map_err(|(kind, message)| grpc_status(kind, message))
        })
    }
}

impl<E, B> tower::Service<http::Request<B>> for ExportGrpc<E>
where
    E: ExportService,
    B: tonic::codegen::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|path| path.strip_prefix(E::NAME));
        if method != Some("/Export") {
            return Box::pin(async { Ok(tonic::Status::unimplemented("unknown method").into_http()) });
        }
        let service = self.clone();
        let max = self.state.limits().max_decompressed_bytes;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(service, request).await)
        })
    }
}

async fn export_logs_http(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let encoding = match Encoding::of(&headers) {
        Ok(encoding) => encoding,
        Err(message) => {
            return ApiError::new(ApiFamily::OtlpProtobuf, ErrorKind::UnsupportedMediaType, message)
                .into_response();
        }
    };
    let request: ExportLogsServiceRequest = match decode_body(&state, &headers, &body, encoding) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    match export_logs(&state, request).await {
        Ok(response) => encode_response(encoding, &response),
        Err((kind, message)) => ApiError::new(encoding.family(), kind, message).into_response(),
    }
}

/// Converts, stores and answers one logs export; errors as their kind and message.
async fn export_logs(
    state: &AppState,
    request: ExportLogsServiceRequest,
) -> Result<ExportLogsServiceResponse, (ErrorKind, String)> {
    let Some(store) = state.logs() else {
        return Err((
            ErrorKind::Unavailable,
            "starting up: the log store is replaying its write-ahead log".to_owned(),
        ));
    };
    let now = TimestampMs::now();
    let converted = obs_logs::otlp::convert(&request, now.0.saturating_mul(1_000_000));
    drop(request);
    let mut rejected = converted.rejected.len() as i64;
    let outcome = store
        .append(converted.streams, now)
        .await
        .map_err(|err| (err.kind(), err.client_message()))?;
    rejected += outcome.refused.len() as i64;
    if rejected == 0 {
        return Ok(ExportLogsServiceResponse {
            partial_success: None,
        });
    }
    let mut messages = converted.rejected;
    messages.extend(
        outcome
            .refused
            .iter()
            .take(LISTED_REFUSALS.saturating_sub(messages.len()))
            .map(|refused| refused.message.clone()),
    );
    let listed = messages.len() as i64;
    let mut error_message = messages.join("; ");
    if rejected > listed {
        error_message.push_str(&format!("; and {} more", rejected - listed));
    }
    Ok(ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: rejected,
            error_message,
        }),
    })
}

async fn export_traces_http(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let encoding = match Encoding::of(&headers) {
        Ok(encoding) => encoding,
        Err(message) => {
            return ApiError::new(ApiFamily::OtlpProtobuf, ErrorKind::UnsupportedMediaType, message)
                .into_response();
        }
    };
    let request: ExportTraceServiceRequest = match decode_body(&state, &headers, &body, encoding) {
        Ok(request) => request,
        Err(err) => return err.into_response(),
    };
    match export_traces(&state, request).await {
        Ok(response) => encode_response(encoding, &response),
        Err((kind, message)) => ApiError::new(encoding.family(), kind, message).into_response(),
    }
}

/// Checks, stores and hands to the span sink the spans of an export: how many were stored
/// and why the others were refused. Returns once the stored ones are durable.
pub(crate) async fn store_spans(
    state: &AppState,
    request: &ExportTraceServiceRequest,
) -> Result<(u64, Vec<String>), (ErrorKind, String)> {
    let Some(store) = state.traces() else {
        return Err((
            ErrorKind::Unavailable,
            "starting up: the span store is replaying its write-ahead log".to_owned(),
        ));
    };
    let converted = obs_traces::otlp::convert(request, &obs_traces::otlp::SpanLimits::default());
    let mut refused = converted.rejected;
    let sink = state.span_sink().cloned();
    let for_sink = sink.as_ref().map(|_| converted.spans.clone());
    let outcome = store
        .append(converted.spans, TimestampMs::now())
        .await
        .map_err(|err| (err.kind(), err.client_message()))?;
    if let (Some(sink), Some(spans)) = (sink, for_sink) {
        // Only what was stored counts: refused spans (too old, too new) are left out.
        if outcome.refused.is_empty() {
            (sink.0)(&spans);
        } else {
            let now = TimestampMs::now().0.max(0) as u64 * 1_000_000;
            let oldest = now.saturating_sub(store.options().retention.as_nanos() as u64);
            let newest = now.saturating_add(store.options().future_tolerance.as_nanos() as u64);
            let kept: Vec<_> = spans
                .into_iter()
                .filter(|doc| doc.start_ns >= oldest && doc.start_ns <= newest)
                .collect();
            (sink.0)(&kept);
        }
    }
    refused.extend(outcome.refused);
    Ok((outcome.accepted, refused))
}

/// Converts, stores and answers one trace export; errors as their kind and message.
async fn export_traces(
    state: &AppState,
    request: ExportTraceServiceRequest,
) -> Result<ExportTraceServiceResponse, (ErrorKind, String)> {
    let (_, refused) = store_spans(state, &request).await?;
    drop(request);
    if refused.is_empty() {
        return Ok(ExportTraceServiceResponse {
            partial_success: None,
        });
    }
    let listed: Vec<&str> = refused.iter().take(LISTED_REFUSALS).map(String::as_str).collect();
    let mut error_message = listed.join("; ");
    if refused.len() > listed.len() {
        error_message.push_str(&format!("; and {} more", refused.len() - listed.len()));
    }
    Ok(ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: refused.len() as i64,
            error_message,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_become_numbers() {
        let mut value = serde_json::json!({"sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE"},
            "logs": [{"severityNumber": "SEVERITY_NUMBER_WARN3"}, {"severityNumber": 9}], "kind": "other"});
        lenient_json(&mut value, 0);
        assert_eq!(
            value,
            serde_json::json!({"sum": {"aggregationTemporality": 2},
                "logs": [{"severityNumber": 15}, {"severityNumber": 9}], "kind": "other"})
        );
    }

    #[test]
    fn base64_ids_become_hex() {
        // 16 bytes 0x00..0x0f in base64, and an 8-byte span id.
        let mut value = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "AAECAwQFBgcICQoLDA0ODw==", "spanId": "AQIDBAUGBwg=", "parentSpanId": "0102030405060708"}]}]}]});
        lenient_json(&mut value, 0);
        let span = &value["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "000102030405060708090a0b0c0d0e0f");
        assert_eq!(span["spanId"], "0102030405060708");
        assert_eq!(span["parentSpanId"], "0102030405060708");
        assert_eq!(obs_core::otlp::base64_decode("!!"), None);
    }
}
