//! `/api/v1/rules` and `/api/v1/alerts`, in Prometheus' shapes (Grafana reads both), for the
//! PromQL rules; `/prometheus/api/v1/rules` and `/prometheus/api/v1/alerts`, where Loki's
//! ruler answers and Grafana's Loki datasource looks, for the LogQL rules.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use obs_core::error::ErrorKind;
use obs_core::time::TimestampMs;
use obs_rules::file::QueryLanguage;
use obs_rules::group::{Alert, AlertState};
use serde::Serialize;

use super::query::Params;
use super::success;
use crate::AppState;
use crate::error::{ApiError, ApiFamily};

/// Go's zero time, which Prometheus reports for a rule never evaluated.
const NEVER: &str = "0001-01-01T00:00:00Z";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertJson {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    state: &'static str,
    active_at: String,
    value: String,
}

/// Prometheus writes an alert's value with `strconv.FormatFloat(v, 'e', -1, 64)`.
fn format_e(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    obs_promql::json::format_exponent(value)
}

fn alert_json(alert: &Alert) -> AlertJson {
    AlertJson {
        labels: alert
            .labels
            .iter()
            .map(|label| (label.name.to_string(), label.value.to_string()))
            .collect(),
        annotations: alert.annotations.clone(),
        state: alert.state.as_str(),
        active_at: TimestampMs(alert.active_at).to_rfc3339(),
        value: format_e(alert.value),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'static str>,
    name: String,
    query: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_for: Option<f64>,
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts: Option<Vec<AlertJson>>,
    health: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    last_error: String,
    evaluation_time: f64,
    last_evaluation: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupJson {
    name: String,
    file: String,
    rules: Vec<RuleJson>,
    interval: f64,
    limit: usize,
    evaluation_time: f64,
    last_evaluation: String,
}

#[derive(Serialize)]
struct RulesData {
    groups: Vec<GroupJson>,
}

fn evaluated_at(ms: Option<i64>) -> String {
    ms.map_or_else(|| NEVER.to_owned(), |ms| TimestampMs(ms).to_rfc3339())
}

/// `type` (`alert` or `record`), `rule_name[]`, `rule_group[]`, `file[]` filters.
pub(crate) async fn rules(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    rules_of(&state, &method, &uri, &headers, &body, QueryLanguage::PromQL)
}

/// The LogQL rules, as Loki's ruler lists them.
pub(crate) async fn log_rules(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    rules_of(&state, &method, &uri, &headers, &body, QueryLanguage::LogQL)
}

fn rules_of(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    language: QueryLanguage,
) -> Response {
    let params = match Params::parse(method, uri, headers, body) {
        Ok(params) => params,
        Err(err) => return err.into_response(),
    };
    let kind = params.get("type").unwrap_or_default().to_ascii_lowercase();
    if !kind.is_empty() && kind != "alert" && kind != "record" {
        return ApiError::new(
            ApiFamily::Prometheus,
            ErrorKind::BadInput,
            format!("invalid query parameter type='{kind}'"),
        )
        .into_response();
    }
    let names = params.all("rule_name[]");
    let group_names = params.all("rule_group[]");
    let files = params.all("file[]");
    let rule_set = state.rules().map(|manager| manager.rules()).unwrap_or_default();
    let mut groups = Vec::new();
    for group in rule_set.groups.iter().filter(|group| group.language == language) {
        if (!group_names.is_empty() && !group_names.contains(&group.name.as_str()))
            || (!files.is_empty() && !files.contains(&group.file.as_str()))
        {
            continue;
        }
        let mut rules = Vec::new();
        for rule in &group.rules {
            let alerting = rule.is_alerting();
            if (kind == "alert" && !alerting) || (kind == "record" && alerting) {
                continue;
            }
            if !names.is_empty() && !names.contains(&rule.name()) {
                continue;
            }
            let health = rule
                .health
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .clone();
            let alerts = alerting.then(|| {
                rule.alerts
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .values()
                    .filter(|alert| alert.state != AlertState::Inactive)
                    .map(alert_json)
                    .collect()
            });
            rules.push(RuleJson {
                state: alerting.then(|| rule.state().as_str()),
                name: rule.name().to_owned(),
                query: rule.query.clone(),
                duration: alerting
                    .then(|| rule.config.for_duration.map_or(0.0, |d| d.as_std().as_secs_f64())),
                keep_firing_for: alerting.then(|| {
                    rule.config
                        .keep_firing_for
                        .map_or(0.0, |d| d.as_std().as_secs_f64())
                }),
                labels: rule.config.labels.clone().into_iter().collect(),
                annotations: alerting.then(|| rule.config.annotations.clone()),
                alerts,
                health: health.health,
                last_error: health.last_error,
                evaluation_time: health.evaluation_seconds,
                last_evaluation: evaluated_at(health.last_evaluation_ms),
                kind: if alerting { "alerting" } else { "recording" },
            });
        }
        if !names.is_empty() && rules.is_empty() {
            continue;
        }
        let (last, took) = *group.last.lock().unwrap_or_else(|poison| poison.into_inner());
        groups.push(GroupJson {
            name: group.name.clone(),
            file: group.file.clone(),
            rules,
            interval: group.interval_ms as f64 / 1000.0,
            limit: group.limit,
            evaluation_time: took,
            last_evaluation: evaluated_at(last),
        });
    }
    success(RulesData { groups })
}

#[derive(Serialize)]
struct AlertsData {
    alerts: Vec<AlertJson>,
}

pub(crate) async fn alerts(State(state): State<AppState>) -> Response {
    alerts_of(&state, QueryLanguage::PromQL)
}

/// The LogQL rules' alerts, as Loki's ruler lists them.
pub(crate) async fn log_alerts(State(state): State<AppState>) -> Response {
    alerts_of(&state, QueryLanguage::LogQL)
}

fn alerts_of(state: &AppState, language: QueryLanguage) -> Response {
    let rule_set = state.rules().map(|manager| manager.rules()).unwrap_or_default();
    success(AlertsData {
        alerts: rule_set
            .active_alerts_of(Some(language))
            .iter()
            .map(alert_json)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_values_use_go_e_format() {
        assert_eq!(format_e(1.5), "1.5e+00");
        assert_eq!(format_e(1234.0), "1.234e+03");
        assert_eq!(format_e(0.0), "0e+00");
        assert_eq!(format_e(-2e-7), "-2e-07");
    }
}
