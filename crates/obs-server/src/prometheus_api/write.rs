//! `POST /api/v1/write`: Prometheus remote_write 1.0.
//!
//! 204 once every accepted sample is durable in the write-ahead log. 400 (plain text, not
//! retried by senders) when some series or samples were refused: the valid ones of the same
//! request are kept, and the message names the first refusals. 413 over the size limits,
//! 415 for an encoding or protocol version the appliance does not speak, 429 / 503 with
//! `Retry-After` when it cannot take data now (senders retry).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use obs_core::error::ErrorKind;
use obs_core::limits::decompress_snappy_block;
use obs_core::time::TimestampMs;

use crate::AppState;
use crate::error::{ApiError, ApiFamily};

/// How many refusals the 400 message lists before summarising.
const LISTED_REFUSALS: usize = 10;

pub(crate) async fn remote_write(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let fail = |kind, message: String| ApiError::new(ApiFamily::PlainText, kind, message).into_response();
    let Some(store) = state.metrics() else {
        return fail(
            ErrorKind::Unavailable,
            "starting up: the metrics store is replaying its write-ahead log".to_owned(),
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/x-protobuf");
    if content_type.contains("io.prometheus.write.v2.Request") {
        return fail(
            ErrorKind::UnsupportedMediaType,
            "remote write 2.0 (io.prometheus.write.v2.Request) is not supported yet; send prometheus.WriteRequest (remote write 1.0)".to_owned(),
        );
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("snappy");
    if !encoding.eq_ignore_ascii_case("snappy") {
        return fail(
            ErrorKind::UnsupportedMediaType,
            format!("remote write bodies must be snappy-compressed (block format), not {encoding:?}"),
        );
    }
    let decompressed = match decompress_snappy_block(&body, state.limits().max_decompressed_bytes) {
        Ok(decompressed) => decompressed,
        Err(err) => return ApiError::from_error(ApiFamily::PlainText, &err).into_response(),
    };
    let request = match obs_metrics::remote_write::decode(&decompressed) {
        Ok(request) => request,
        Err(err) => {
            return fail(
                ErrorKind::BadInput,
                format!("cannot decode remote write request: {err}"),
            );
        }
    };
    let (outcome, invalid) = match store.append_remote_write(&request, TimestampMs::now()).await {
        Ok(appended) => appended,
        Err(err) => return ApiError::from_error(ApiFamily::PlainText, &err).into_response(),
    };
    obs_metrics::store::count_invalid_series_samples(invalid.iter().map(|series| series.samples).sum());
    if invalid.is_empty() && outcome.rejected.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let mut messages: Vec<String> = invalid
        .iter()
        .map(|series| format!("series {} refused: {}", series.description, series.reason))
        .collect();
    messages.extend(outcome.rejected.iter().map(ToString::to_string));
    let refused = messages.len();
    let mut text = format!(
        "{} samples stored, {refused} series or samples refused: {}",
        outcome.accepted + outcome.duplicates,
        messages
            .iter()
            .take(LISTED_REFUSALS)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    );
    if refused > LISTED_REFUSALS {
        text.push_str(&format!("; and {} more", refused - LISTED_REFUSALS));
    }
    fail(ErrorKind::BadInput, text)
}
