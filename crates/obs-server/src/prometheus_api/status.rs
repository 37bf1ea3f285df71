//! `GET /api/v1/status/tsdb`: cardinality statistics in Prometheus' shape, so that an operator
//! (or Grafana's cardinality panels) can find the metric or label that explodes the series
//! count.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use obs_core::error::ErrorKind;
use serde::{Deserialize, Serialize};

use super::success;
use crate::AppState;
use crate::error::{ApiError, ApiFamily};

#[derive(Debug, Deserialize)]
pub(crate) struct TsdbParams {
    limit: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HeadStats {
    num_series: u64,
    num_label_pairs: u64,
    chunk_count: u64,
    min_time: i64,
    max_time: i64,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    value: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TsdbData {
    head_stats: HeadStats,
    series_count_by_metric_name: Vec<Entry>,
    label_value_count_by_label_name: Vec<Entry>,
    memory_in_bytes_by_label_name: Vec<Entry>,
    series_count_by_label_value_pair: Vec<Entry>,
}

fn entries(list: Vec<(String, u64)>) -> Vec<Entry> {
    list.into_iter()
        .map(|(name, value)| Entry { name, value })
        .collect()
}

pub(crate) async fn tsdb(State(state): State<AppState>, Query(params): Query<TsdbParams>) -> Response {
    let fail = |kind, message: &str| ApiError::new(ApiFamily::Prometheus, kind, message).into_response();
    let limit = match params.limit.as_deref() {
        None => 10,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if limit > 0 => limit.min(10_000),
            _ => return fail(ErrorKind::BadInput, "limit must be a positive number"),
        },
    };
    let Some(store) = state.metrics() else {
        return fail(
            ErrorKind::Unavailable,
            "starting up: the metrics store is replaying its write-ahead log",
        );
    };
    let store = std::sync::Arc::clone(store);
    let Ok(status) = tokio::task::spawn_blocking(move || store.tsdb_status(limit)).await else {
        return fail(ErrorKind::Internal, "cardinality statistics failed");
    };
    // An empty store reports 0 for both bounds.
    let (min_time, max_time) = status.time_range_ms.unwrap_or((0, 0));
    success(TsdbData {
        head_stats: HeadStats {
            num_series: status.num_series,
            num_label_pairs: status.num_label_pairs,
            chunk_count: status.chunk_count,
            min_time,
            max_time,
        },
        series_count_by_metric_name: entries(status.series_count_by_metric_name),
        label_value_count_by_label_name: entries(status.label_value_count_by_label_name),
        memory_in_bytes_by_label_name: entries(status.memory_in_bytes_by_label_name),
        series_count_by_label_value_pair: entries(status.series_count_by_label_value_pair),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeInfo {
    start_time: String,
    #[serde(rename = "CWD")]
    cwd: String,
    reload_config_success: bool,
    last_config_time: String,
    corruption_count: u64,
    goroutine_count: u64,
    #[serde(rename = "GOMAXPROCS")]
    gomaxprocs: usize,
    #[serde(rename = "GOMEMLIMIT")]
    gomemlimit: i64,
    #[serde(rename = "GOGC")]
    gogc: &'static str,
    #[serde(rename = "GODEBUG")]
    godebug: &'static str,
    storage_retention: String,
}

/// `/api/v1/status/runtimeinfo` in Prometheus' shape (the Go runtime fields describe the
/// appliance's process where they have a meaning).
pub(crate) async fn runtimeinfo(State(state): State<AppState>) -> Response {
    let started = state
        .started()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default();
    let started = obs_core::time::TimestampMs(started).to_rfc3339();
    success(RuntimeInfo {
        start_time: started.clone(),
        cwd: std::env::current_dir()
            .map(|dir| dir.display().to_string())
            .unwrap_or_default(),
        reload_config_success: true,
        last_config_time: started,
        corruption_count: 0,
        goroutine_count: 0,
        gomaxprocs: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        gomemlimit: i64::MAX,
        gogc: "",
        godebug: "",
        storage_retention: state.metrics_retention_text(),
    })
}

/// `/api/v1/status/flags`: the Prometheus flags whose meaning the appliance has.
pub(crate) async fn flags(State(state): State<AppState>) -> Response {
    let options = state.query_options();
    let mut flags = std::collections::BTreeMap::new();
    flags.insert(
        "query.lookback-delta",
        format!("{}s", options.lookback_delta_ms / 1000),
    );
    flags.insert("query.max-samples", options.max_samples.to_string());
    flags.insert("query.timeout", format!("{}s", options.timeout.as_secs()));
    flags.insert("storage.tsdb.retention.time", state.metrics_retention_text());
    flags.insert("web.enable-remote-write-receiver", "true".to_owned());
    success(flags)
}

#[derive(Serialize)]
struct ConfigData {
    yaml: String,
}

/// `/api/v1/status/config`: the Prometheus-facing part of the configuration, as YAML.
pub(crate) async fn config(State(state): State<AppState>) -> Response {
    success(ConfigData {
        yaml: state.prometheus_config_yaml(),
    })
}
