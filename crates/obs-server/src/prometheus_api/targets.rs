//! `/api/v1/targets` and `/api/v1/targets/metadata`, in Prometheus' shapes.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use obs_core::error::ErrorKind;
use obs_core::time::TimestampMs;
use serde::Serialize;

use super::query::Params;
use super::success;
use crate::AppState;
use crate::error::{ApiError, ApiFamily};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ActiveTarget {
    discovered_labels: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    scrape_pool: String,
    scrape_url: String,
    global_url: String,
    last_error: String,
    last_scrape: String,
    last_scrape_duration: f64,
    health: &'static str,
    scrape_interval: String,
    scrape_timeout: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DroppedTarget {
    discovered_labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetsData {
    active_targets: Vec<ActiveTarget>,
    dropped_targets: Vec<DroppedTarget>,
}

/// Go's zero time, which Prometheus reports before a target's first scrape.
const NEVER: &str = "0001-01-01T00:00:00Z";

fn labels_map(labels: &obs_core::series::Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|label| (label.name.to_string(), label.value.to_string()))
        .collect()
}

pub(crate) async fn targets(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match Params::parse(&method, &uri, &headers, &body) {
        Ok(params) => params,
        Err(err) => return err.into_response(),
    };
    let wanted = params.get("state").unwrap_or("any").to_ascii_lowercase();
    let pool_filter = params
        .get("scrapePool")
        .filter(|pool| !pool.is_empty())
        .map(str::to_owned);
    let (active, dropped) = state
        .scrape()
        .map(|manager| manager.targets())
        .unwrap_or_default();
    let show_active = wanted == "active" || wanted == "any" || wanted.is_empty();
    let show_dropped = wanted == "dropped" || wanted == "any" || wanted.is_empty();
    let in_pool = |pool: &str| pool_filter.as_deref().is_none_or(|wanted| wanted == pool);
    let active_targets = if show_active {
        active
            .iter()
            .filter(|target| in_pool(&target.pool))
            .map(|target| {
                let status = target
                    .status
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .clone();
                ActiveTarget {
                    discovered_labels: target.discovered.clone(),
                    labels: labels_map(&target.labels),
                    scrape_pool: target.pool.clone(),
                    scrape_url: target.url.clone(),
                    global_url: target.url.clone(),
                    last_error: status.last_error,
                    last_scrape: status
                        .last_scrape_ms
                        .map_or_else(|| NEVER.to_owned(), |ms| TimestampMs(ms).to_rfc3339()),
                    last_scrape_duration: status.last_duration_seconds,
                    health: status.health.as_str(),
                    scrape_interval: obs_core::units::PromDuration::from_millis(target.interval_ms)
                        .to_string(),
                    scrape_timeout: obs_core::units::PromDuration::from_millis(target.timeout_ms).to_string(),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let dropped_targets = if show_dropped {
        dropped
            .into_iter()
            .filter(|(pool, _)| in_pool(pool))
            .map(|(_, labels)| DroppedTarget {
                discovered_labels: labels,
            })
            .collect()
    } else {
        Vec::new()
    };
    success(TargetsData {
        active_targets,
        dropped_targets,
    })
}

#[derive(Serialize)]
struct TargetMetadata {
    target: BTreeMap<String, String>,
    metric: String,
    #[serde(rename = "type")]
    metric_type: &'static str,
    help: String,
    unit: String,
}

/// `match_target` (a selector over target labels), `metric`, `limit`.
pub(crate) async fn targets_metadata(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match Params::parse(&method, &uri, &headers, &body) {
        Ok(params) => params,
        Err(err) => return err.into_response(),
    };
    let matchers = match params.get("match_target").filter(|text| !text.is_empty()) {
        Some(text) => match obs_promql::selector_matchers(text) {
            Ok(matchers) => matchers,
            Err(err) => {
                return ApiError::new(
                    ApiFamily::Prometheus,
                    ErrorKind::BadInput,
                    format!("invalid parameter \"match_target\": {err}"),
                )
                .into_response();
            }
        },
        None => Vec::new(),
    };
    let metric = params.get("metric").filter(|text| !text.is_empty());
    let limit = match params.get("limit").filter(|text| !text.is_empty()) {
        None => usize::MAX,
        Some(text) => match text.parse::<i64>() {
            Ok(limit) if limit >= 0 => limit as usize,
            Ok(_) => usize::MAX,
            Err(_) => {
                return ApiError::new(
                    ApiFamily::Prometheus,
                    ErrorKind::BadInput,
                    "limit must be a number",
                )
                .into_response();
            }
        },
    };
    let (active, _) = state
        .scrape()
        .map(|manager| manager.targets())
        .unwrap_or_default();
    let mut out = Vec::new();
    for target in &active {
        if !matchers
            .iter()
            .all(|matcher| matcher.matches_labels(&target.labels))
        {
            continue;
        }
        let families = target
            .metadata
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        for (name, meta) in families {
            if metric.is_some_and(|wanted| wanted != name) {
                continue;
            }
            if out.len() >= limit {
                break;
            }
            out.push(TargetMetadata {
                target: labels_map(&target.labels),
                metric: name,
                metric_type: meta.metric_type.as_str(),
                help: meta.help,
                unit: meta.unit,
            });
        }
    }
    success(out)
}
