//! Operational endpoints: liveness, readiness, self-metrics, and the 404 fallback.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        // Loki and Tempo probe `/ready`.
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/-/reload", axum::routing::post(reload).put(reload))
}

/// `POST /-/reload`: re-reads the configuration (scrape jobs) as SIGHUP does. 200 on success,
/// 500 with the reason otherwise (Prometheus' behaviour).
async fn reload(State(state): State<AppState>) -> Response {
    let Some(hook) = state.reload_hook() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "reloading is not available yet\n",
        )
            .into_response();
    };
    match hook().await {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(message) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {message}\n"),
        )
            .into_response(),
    }
}

async fn healthy() -> &'static str {
    "obs-appliance is Healthy.\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "obs-appliance is Ready.\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "Service Unavailable: replaying the write-ahead log\n",
        )
            .into_response()
    }
}

async fn metrics() -> Response {
    // Encoding walks the data directory's gauges only as updated by the retention loop, so it
    // is cheap; it still runs off the async threads to keep the rule of never blocking them.
    let text = tokio::task::spawn_blocking(|| obs_core::selfmetrics::registry().encode_text())
        .await
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, obs_core::selfmetrics::TEXT_CONTENT_TYPE)],
        text,
    )
        .into_response()
}

pub(crate) async fn not_found() -> Response {
    // The same body Go's net/http (and so Prometheus) answers with.
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}
