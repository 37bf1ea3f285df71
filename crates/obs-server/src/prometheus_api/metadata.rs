//! `GET /api/v1/metadata`: type, help and unit per metric family, from what scrapes and OTLP
//! exports said (`limit`, `limit_per_metric`, `metric` as in Prometheus).

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use obs_core::error::ErrorKind;
use obs_core::series::MetricsQuerier;
use serde::{Deserialize, Serialize};

use super::success;
use crate::AppState;
use crate::error::{ApiError, ApiFamily};

#[derive(Debug, Deserialize)]
pub(crate) struct MetadataParams {
    limit: Option<String>,
    limit_per_metric: Option<String>,
    metric: Option<String>,
}

#[derive(Serialize)]
struct Entry {
    #[serde(rename = "type")]
    metric_type: &'static str,
    help: String,
    unit: String,
}

/// A Prometheus limit parameter: absent or negative means none.
fn parse_limit(value: Option<&str>, name: &str) -> Result<Option<usize>, ApiError> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(limit) if limit < 0 => Ok(None),
            Ok(limit) => Ok(Some(limit as usize)),
            Err(_) => Err(ApiError::new(
                ApiFamily::Prometheus,
                ErrorKind::BadInput,
                format!("{name} must be a number"),
            )),
        },
    }
}

pub(crate) async fn metadata(
    State(state): State<AppState>,
    Query(params): Query<MetadataParams>,
) -> Response {
    let limits = parse_limit(params.limit.as_deref(), "limit").and_then(|limit| {
        Ok((
            limit,
            parse_limit(params.limit_per_metric.as_deref(), "limit_per_metric")?,
        ))
    });
    let (limit, per_metric) = match limits {
        Ok(limits) => limits,
        Err(err) => return err.into_response(),
    };
    let Some(store) = state.metrics() else {
        return success(BTreeMap::<String, Vec<Entry>>::new());
    };
    let metric = params.metric.as_deref().filter(|name| !name.is_empty());
    let data: BTreeMap<String, Vec<Entry>> = store
        .metadata(metric, limit)
        .into_iter()
        .map(|(name, entries)| {
            let entries = entries
                .into_iter()
                .take(per_metric.unwrap_or(usize::MAX))
                .map(|entry| Entry {
                    metric_type: entry.metric_type.as_str(),
                    help: entry.help,
                    unit: entry.unit,
                })
                .collect();
            (name, entries)
        })
        .collect();
    success(data)
}
