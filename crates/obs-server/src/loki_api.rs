//! The Loki HTTP API, as Grafana's Loki datasource, Promtail, Grafana Alloy and other Loki
//! clients use it (port 3100 upstream; every listener here).
//!
//! - `POST /loki/api/v1/push` (and the old `/api/prom/push`): protobuf `PushRequest` in snappy
//!   block format (also without a `Content-Type`) or JSON; `Content-Encoding: gzip | deflate`
//!   (`snappy` accepted as a no-op, as Loki does). 204 once every accepted entry is durable;
//!   400 in plain text naming the refused entries while the valid ones are kept; 413 over the
//!   size limits; 429 / 503 with `Retry-After` when the appliance cannot take data now.
//! - Metadata: `labels`, `label/<name>/values` (optional `query` selector), `series`
//!   (`match[]`, GET and POST), `index/stats`, `status/buildinfo` (`/ready` is the
//!   operational endpoint of every API family).
//! - Queries: `query` and `query_range` (see `loki_query`).
//!
//! Times are Unix nanoseconds, seconds with a fraction, or RFC 3339, as Loki reads them.
//! Errors are plain text, as Loki's.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use obs_core::error::{Classify, ErrorKind};
use obs_core::limits::{Compression, decompress, decompress_snappy_block};
use obs_core::series::Labels;
use obs_core::time::TimestampMs;
use obs_logql::LabelMatcher;
use obs_logs::store::LogStore;

use crate::AppState;
use crate::error::{ApiError, ApiFamily};
use crate::prometheus_api::query::{Params, parse_time};

/// How many refusals a 400 lists before summarising.
const LISTED_REFUSALS: usize = 10;
/// The version reported to Grafana: Loki 3 (structured metadata, categorized labels).
pub(crate) const LOKI_COMPATIBLE_VERSION: &str = "3.4.2";
const NS_PER_SEC: i64 = 1_000_000_000;
/// The default window of metadata requests: the last 6 hours, as Loki.
const DEFAULT_METADATA_SINCE_NS: i64 = 6 * 3600 * NS_PER_SEC;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/loki/api/v1/push", post(push))
        .route("/api/prom/push", post(push))
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels).post(labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(label_values).post(label_values),
        )
        .route("/loki/api/v1/series", get(series).post(series))
        .route("/loki/api/v1/index/stats", get(index_stats).post(index_stats))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .merge(crate::loki_discovery::routes())
        .merge(crate::loki_query::routes())
        .merge(crate::loki_tail::routes())
}

/// A Loki error (plain text).
pub(crate) fn loki_error(kind: ErrorKind, message: impl Into<String>) -> ApiError {
    ApiError::new(ApiFamily::Loki, kind, message)
}

fn fail(kind: ErrorKind, message: impl Into<String>) -> Response {
    loki_error(kind, message).into_response()
}

/// The answer of a handler written with `?`.
pub(crate) fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) fn store(state: &AppState) -> Result<Arc<LogStore>, ApiError> {
    state.logs().cloned().ok_or_else(|| {
        loki_error(
            ErrorKind::Unavailable,
            "starting up: the log store is replaying its write-ahead log",
        )
    })
}

async fn push(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let store = match store(&state) {
        Ok(store) => store,
        Err(err) => return err.into_response(),
    };
    let max = state.limits().max_decompressed_bytes;
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty());
    // Snappy is how the protobuf body is framed anyway: Loki accepts the header as a no-op.
    let compression = match content_encoding {
        Some(value) if value.eq_ignore_ascii_case("snappy") => Compression::Identity,
        other => match Compression::from_content_encoding(other) {
            Ok(compression @ (Compression::Identity | Compression::Gzip | Compression::Deflate)) => {
                compression
            }
            Ok(_) | Err(_) => {
                return fail(
                    ErrorKind::UnsupportedMediaType,
                    format!("Content-Encoding {:?} not supported", other.unwrap_or_default()),
                );
            }
        },
    };
    let decompressed;
    let bytes: &[u8] = if compression == Compression::Identity {
        &body
    } else {
        decompressed = match decompress(compression, &body, max) {
            Ok(bytes) => bytes,
            Err(err) => return ApiError::from_error(ApiFamily::Loki, &err).into_response(),
        };
        &decompressed
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let decoded = if content_type == "application/json" {
        obs_logs::push::decode_json(bytes)
    } else {
        // Any other type, or none, is snappy-compressed protobuf.
        let raw = match decompress_snappy_block(bytes, max) {
            Ok(raw) => raw,
            Err(err) => return ApiError::from_error(ApiFamily::Loki, &err).into_response(),
        };
        obs_logs::push::decode_protobuf(&raw)
    };
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(err) => return fail(err.kind(), err.to_string()),
    };
    let mut refusals: Vec<String> = Vec::new();
    let mut refused_entries = 0usize;
    for (message, entries) in decoded.refused {
        refused_entries += entries.max(1);
        refusals.push(message);
    }
    let outcome = if decoded.streams.is_empty() {
        obs_logs::store::AppendOutcome::default()
    } else {
        match store.append(decoded.streams, TimestampMs::now()).await {
            Ok(outcome) => outcome,
            Err(err) => return ApiError::from_error(ApiFamily::Loki, &err).into_response(),
        }
    };
    refused_entries += outcome.refused.len();
    refusals.extend(outcome.refused.into_iter().map(|refused| refused.message));
    if refusals.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let total = refusals.len();
    refusals.truncate(LISTED_REFUSALS);
    let mut message = refusals.join("\n");
    if total > LISTED_REFUSALS {
        message.push_str(&format!("\nand {} more", total - LISTED_REFUSALS));
    }
    message.push_str(&format!(
        "\n{refused_entries} entries refused, {} stored",
        outcome.accepted
    ));
    fail(ErrorKind::BadInput, message)
}

/// Loki's `parseTimestamp`: seconds with a fraction, nanoseconds (or seconds, at most 10
/// digits) as an integer, or RFC 3339; nanoseconds.
pub(crate) fn parse_loki_time(text: &str) -> Result<i64, String> {
    if text.contains('.')
        && let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        let whole = seconds.trunc();
        let millis = ((seconds - whole) * 1000.0).round();
        return Ok((whole as i64)
            .saturating_mul(NS_PER_SEC)
            .saturating_add(millis as i64 * 1_000_000));
    }
    if let Ok(integer) = text.parse::<i64>() {
        return Ok(if text.trim_start_matches('-').len() <= 10 {
            integer.saturating_mul(NS_PER_SEC)
        } else {
            integer
        });
    }
    let millis = parse_time(text).map_err(|_| format!("cannot parse {text:?} as a timestamp"))?;
    Ok(millis.saturating_mul(1_000_000))
}

/// `start` and `end` of a request (`since` counts back from `end`), nanoseconds.
pub(crate) fn time_range(params: &Params, default_since_ns: i64) -> Result<(i64, i64), ApiError> {
    let now_ns = TimestampMs::now().0.saturating_mul(1_000_000);
    let bad = |name: &str, err: String| loki_error(ErrorKind::BadInput, format!("invalid {name}: {err}"));
    let end = match params.get("end") {
        None | Some("") => now_ns,
        Some(text) => parse_loki_time(text).map_err(|err| bad("end", err))?,
    };
    let since = match params.get("since") {
        None | Some("") => default_since_ns,
        Some(text) => {
            crate::prometheus_api::query::parse_duration(text).map_err(|err| bad("since", err))? * 1_000_000
        }
    };
    let start = match params.get("start") {
        None | Some("") => end.saturating_sub(since),
        Some(text) => parse_loki_time(text).map_err(|err| bad("start", err))?,
    };
    if end < start {
        return Err(loki_error(
            ErrorKind::BadInput,
            "end timestamp must not be before or equal to start time",
        ));
    }
    Ok((start, end))
}

/// Parses the optional `query` (or `match[]`) selectors.
fn selectors(texts: &[&str]) -> Result<Vec<Vec<LabelMatcher>>, ApiError> {
    texts
        .iter()
        .filter(|text| !text.trim().is_empty())
        .map(|text| {
            obs_logql::parse_selector(text).map_err(|err| loki_error(ErrorKind::BadInput, err.to_string()))
        })
        .collect()
}

/// Whether a stream matches any of the selectors (all of its matchers); no selector matches
/// every stream.
fn matches_any(selectors: &[Vec<LabelMatcher>], labels: &Labels) -> bool {
    selectors.is_empty()
        || selectors.iter().any(|matchers| {
            matchers
                .iter()
                .all(|matcher| matcher.matches(labels.get(matcher.name()).unwrap_or("")))
        })
}

pub(crate) fn request_params(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Params, ApiError> {
    Params::parse(method, uri, headers, body).map_err(|err| loki_error(ErrorKind::BadInput, err.message))
}

/// The parameters of a Loki request (the form body's, then the URL's), refused in Loki's
/// dialect when they do not parse.
pub(crate) struct LokiParams(pub(crate) Params);

impl axum::extract::FromRequest<AppState> for LokiParams {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &AppState) -> Result<LokiParams, Response> {
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(axum::extract::Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        request_params(&parts.method, &parts.uri, &parts.headers, &bytes)
            .map(LokiParams)
            .map_err(IntoResponse::into_response)
    }
}

/// Answers with `answer` over the log store, on the blocking pool (it reads the indexes).
pub(crate) async fn answer_blocking(
    state: &AppState,
    params: Params,
    answer: impl FnOnce(Arc<LogStore>, Params) -> Result<Response, ApiError> + Send + 'static,
) -> Response {
    let store = match store(state) {
        Ok(store) => store,
        Err(err) => return err.into_response(),
    };
    let answered = tokio::task::spawn_blocking(move || answer(store, params)).await;
    respond(
        answered.unwrap_or_else(|err| Err(loki_error(ErrorKind::Internal, format!("request failed: {err}")))),
    )
}

pub(crate) fn success(data: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "success", "data": data})),
    )
        .into_response()
}

/// The streams of a metadata request.
fn request_streams(
    store: &LogStore,
    params: &Params,
    selector_param: &str,
) -> Result<Vec<Arc<Labels>>, ApiError> {
    let (start, end) = time_range(params, DEFAULT_METADATA_SINCE_NS)?;
    let selectors = selectors(&params.all(selector_param))?;
    Ok(store.streams(
        &|labels| matches_any(&selectors, labels),
        start,
        end.saturating_add(1),
    ))
}

async fn labels(State(state): State<AppState>, LokiParams(params): LokiParams) -> Response {
    answer_blocking(&state, params, |store, params| {
        let streams = request_streams(&store, &params, "query")?;
        let mut names: Vec<&str> = streams
            .iter()
            .flat_map(|labels| labels.iter().map(|label| label.name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        Ok(success(serde_json::json!(names)))
    })
    .await
}

async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    LokiParams(params): LokiParams,
) -> Response {
    answer_blocking(&state, params, move |store, params| {
        let streams = request_streams(&store, &params, "query")?;
        let mut values: Vec<&str> = streams.iter().filter_map(|labels| labels.get(&name)).collect();
        values.sort_unstable();
        values.dedup();
        Ok(success(serde_json::json!(values)))
    })
    .await
}

/// A label set as a JSON object.
pub(crate) fn label_object(labels: &Labels) -> serde_json::Value {
    serde_json::Value::Object(
        labels
            .iter()
            .map(|label| {
                (
                    label.name.to_string(),
                    serde_json::Value::from(label.value.as_str()),
                )
            })
            .collect(),
    )
}

async fn series(State(state): State<AppState>, LokiParams(params): LokiParams) -> Response {
    answer_blocking(&state, params, |store, params| {
        let streams = request_streams(&store, &params, "match[]")?;
        let data: Vec<serde_json::Value> = streams.iter().map(|labels| label_object(labels)).collect();
        Ok(success(serde_json::Value::Array(data)))
    })
    .await
}

async fn index_stats(State(state): State<AppState>, LokiParams(params): LokiParams) -> Response {
    answer_blocking(&state, params, |store, params| {
        let (start, end) = time_range(&params, 3600 * NS_PER_SEC)?;
        let selectors = selectors(&params.all("query"))?;
        let stats = store
            .stats(
                &|labels| matches_any(&selectors, labels),
                start,
                end.saturating_add(1),
            )
            .map_err(|err| ApiError::from_error(ApiFamily::Loki, &err))?;
        Ok((
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "streams": stats.streams,
                "chunks": stats.chunks,
                "entries": stats.entries,
                "bytes": stats.bytes,
            })),
        )
            .into_response())
    })
    .await
}

async fn buildinfo(State(state): State<AppState>) -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({
            "version": LOKI_COMPATIBLE_VERSION,
            "revision": state.build().version,
            "branch": "obs-appliance",
            "buildUser": "obs-appliance",
            "buildDate": "",
            "goVersion": "",
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_loki_reads_them() {
        assert_eq!(parse_loki_time("1700000000").unwrap(), 1_700_000_000 * NS_PER_SEC);
        assert_eq!(
            parse_loki_time("1700000000000000123").unwrap(),
            1_700_000_000_000_000_123
        );
        assert_eq!(
            parse_loki_time("1700000000.5").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_loki_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000 * NS_PER_SEC
        );
        assert!(parse_loki_time("yesterday").is_err());
    }
}
