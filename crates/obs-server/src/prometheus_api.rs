//! The Prometheus HTTP API (`/api/v1/...`), as Grafana's Prometheus datasource uses it.
//!
//! Responses use Prometheus' envelope: `{"status":"success","data":…}` or, through
//! [`crate::error::ApiError`] with [`crate::error::ApiFamily::Prometheus`],
//! `{"status":"error","errorType":…,"error":…}`.

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::AppState;

mod metadata;
pub(crate) mod query;
mod rules;
mod status;
mod targets;
mod write;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/write", post(write::remote_write))
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/metadata", get(metadata::metadata))
        .route(
            "/api/v1/query",
            get(query::instant_query).post(query::instant_query),
        )
        .route(
            "/api/v1/query_range",
            get(query::range_query).post(query::range_query),
        )
        .route("/api/v1/series", get(query::series).post(query::series))
        .route("/api/v1/labels", get(query::label_names).post(query::label_names))
        .route("/api/v1/label/{name}/values", get(query::label_values))
        .route(
            "/api/v1/query_exemplars",
            get(query::query_exemplars).post(query::query_exemplars),
        )
        .route(
            "/api/v1/format_query",
            get(query::format_query).post(query::format_query),
        )
        .route("/api/v1/status/runtimeinfo", get(status::runtimeinfo))
        .route("/api/v1/status/flags", get(status::flags))
        .route("/api/v1/status/config", get(status::config))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/prometheus/api/v1/rules", get(rules::log_rules))
        .route("/prometheus/api/v1/alerts", get(rules::log_alerts))
        .route("/api/v1/targets/metadata", get(targets::targets_metadata))
}

/// `{"status":"success","data":data}`.
pub fn success<T: Serialize>(data: T) -> Response {
    #[derive(Serialize)]
    struct Envelope<T> {
        status: &'static str,
        data: T,
    }
    axum::Json(Envelope {
        status: "success",
        data,
    })
    .into_response()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfoData {
    version: &'static str,
    revision: String,
    branch: &'static str,
    build_user: &'static str,
    build_date: &'static str,
    go_version: &'static str,
}

/// Prometheus' build information. `version` is the Prometheus version whose API the appliance
/// follows (Grafana gates features on it); `revision` names the appliance and its own version.
/// No `features` map: Grafana reads its absence as "Prometheus", not Mimir.
async fn buildinfo(State(state): State<AppState>) -> Response {
    let build = state.build();
    success(BuildInfoData {
        version: build.prometheus_compatible_version,
        revision: format!("obs-appliance-{}", build.version),
        branch: "obs-appliance",
        build_user: "obs-appliance",
        build_date: "",
        go_version: "none (rust)",
    })
}
