//! The Loki endpoints Grafana's query builder, Explore and Logs Drilldown use to discover what
//! is there: `detected_labels`, `detected_fields`, `detected_field/<name>/values`,
//! `index/volume`, `index/volume_range` and `format_query`.
//!
//! Fields are detected as Loki does: the top-level keys of JSON and logfmt lines and the
//! structured metadata of a sample of recent entries (`line_limit`, 1,000 by default), typed by
//! what every value parses as (int, float, boolean, duration, bytes, else string).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use obs_core::error::ErrorKind;
use obs_core::series::Labels;
use obs_logql::LabelMatcher;
use obs_logs::store::{Direction, LogStore, Selection};

use crate::AppState;
use crate::error::ApiError;
use crate::loki_api::{LokiParams, answer_blocking, label_object, loki_error, respond, success, time_range};
use crate::prometheus_api::query::{Params, parse_duration};

const NS_PER_SEC: i64 = 1_000_000_000;
/// Entries sampled for field detection unless `line_limit` says otherwise (Loki's default).
const DEFAULT_LINE_LIMIT: usize = 1000;
/// Fields or values listed unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 1000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/loki/api/v1/detected_labels", get(detected_labels))
        .route("/loki/api/v1/detected_fields", get(detected_fields))
        .route(
            "/loki/api/v1/detected_field/{name}/values",
            get(detected_field_values),
        )
        .route("/loki/api/v1/index/volume", get(volume).post(volume))
        .route(
            "/loki/api/v1/index/volume_range",
            get(volume_range).post(volume_range),
        )
        .route("/loki/api/v1/format_query", get(format_query).post(format_query))
}

fn json(value: serde_json::Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

/// The stream selector of `query`: a bare selector, or the selector of a log query.
fn selector(params: &Params) -> Result<Vec<LabelMatcher>, ApiError> {
    let Some(text) = params.get("query").filter(|text| !text.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let expr = obs_logql::parse(text).map_err(|err| loki_error(ErrorKind::BadInput, err.to_string()))?;
    let logs = expr.log_exprs();
    let Some(first) = logs.first() else {
        return Err(loki_error(
            ErrorKind::BadInput,
            "the query has no stream selector",
        ));
    };
    Ok(first.matchers().to_vec())
}

fn matches(matchers: &[LabelMatcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|matcher| matcher.matches(labels.get(matcher.name()).unwrap_or("")))
}

fn limit(params: &Params, name: &str, default: usize) -> Result<usize, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| loki_error(ErrorKind::BadInput, format!("invalid {name} {text:?}"))),
    }
}

async fn detected_labels(State(state): State<AppState>, LokiParams(params): LokiParams) -> Response {
    answer_blocking(&state, params, |store, params| {
        let (start, end) = time_range(&params, 3 * 3600 * NS_PER_SEC)?;
        let matchers = selector(&params)?;
        let streams = store.streams(&|labels| matches(&matchers, labels), start, end.saturating_add(1));
        let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for labels in &streams {
            for label in labels.iter() {
                values.entry(&label.name).or_default().insert(&label.value);
            }
        }
        let detected: Vec<serde_json::Value> = values
            .iter()
            .map(|(name, values)| serde_json::json!({"label": name, "cardinality": values.len()}))
            .collect();
        Ok(json(serde_json::json!({ "detectedLabels": detected })))
    })
    .await
}

/// What every value of a field parsed as so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FieldType {
    Int,
    Float,
    Boolean,
    Duration,
    Bytes,
    String,
}

impl FieldType {
    fn of(value: &str) -> FieldType {
        if value.parse::<i64>().is_ok() {
            FieldType::Int
        } else if value.parse::<f64>().is_ok() {
            FieldType::Float
        } else if value == "true" || value == "false" {
            FieldType::Boolean
        } else if is_duration(value) {
            FieldType::Duration
        } else if is_bytes(value) {
            FieldType::Bytes
        } else {
            FieldType::String
        }
    }

    /// The type of a field whose values had both types.
    fn merge(self, other: FieldType) -> FieldType {
        match (self, other) {
            (a, b) if a == b => a,
            (FieldType::Int, FieldType::Float) | (FieldType::Float, FieldType::Int) => FieldType::Float,
            _ => FieldType::String,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Boolean => "boolean",
            FieldType::Duration => "duration",
            FieldType::Bytes => "bytes",
            FieldType::String => "string",
        }
    }
}

/// Go's `time.ParseDuration` syntax (`1.5s`, `2h45m`, `300ms`).
fn is_duration(value: &str) -> bool {
    let mut rest = value.strip_prefix(['-', '+']).unwrap_or(value);
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .filter(|unit| rest.starts_with(**unit))
            .max_by_key(|unit| unit.len());
        let Some(unit) = unit else { return false };
        rest = &rest[unit.len()..];
    }
    true
}

/// humanize's byte sizes (`10KB`, `1.5 MiB`, `3b`).
fn is_bytes(value: &str) -> bool {
    let number = value
        .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
        .unwrap_or(value.len());
    if number == 0 || number == value.len() {
        return false;
    }
    let unit = value[number..].trim().to_ascii_lowercase();
    matches!(
        unit.as_str(),
        "b" | "kb"
            | "kib"
            | "mb"
            | "mib"
            | "gb"
            | "gib"
            | "tb"
            | "tib"
            | "pb"
            | "pib"
            | "eb"
            | "eib"
            | "k"
            | "m"
            | "g"
    )
}

#[derive(Debug)]
struct DetectedField {
    field_type: FieldType,
    values: BTreeSet<String>,
    parsers: BTreeSet<&'static str>,
}

/// Fields of up to `line_limit` newest entries of the request's streams.
fn detect(store: &LogStore, params: &Params) -> Result<BTreeMap<String, DetectedField>, ApiError> {
    let (start, end) = time_range(params, 3 * 3600 * NS_PER_SEC)?;
    let matchers = selector(params)?;
    let line_limit = limit(params, "line_limit", DEFAULT_LINE_LIMIT)?;
    let selection = Selection {
        start_ns: start,
        end_ns: end.saturating_add(1),
        direction: Direction::Backward,
        ..Selection::default()
    };
    let mut fields: BTreeMap<String, DetectedField> = BTreeMap::new();
    let mut note = |name: &str, value: &str, parser: Option<&'static str>| {
        let field_type = FieldType::of(value);
        let field = fields.entry(name.to_owned()).or_insert_with(|| DetectedField {
            field_type,
            values: BTreeSet::new(),
            parsers: BTreeSet::new(),
        });
        field.field_type = field.field_type.merge(field_type);
        field.values.insert(value.to_owned());
        field.parsers.extend(parser);
    };
    let mut seen = 0usize;
    store
        .select(&|labels| matches(&matchers, labels), &selection, |selected| {
            let trimmed = selected.entry.line.trim_start();
            let parser = if trimmed.starts_with('{') {
                "json"
            } else {
                "logfmt"
            };
            for (name, value) in obs_logs::keys::top_level_fields(&selected.entry.line) {
                if selected.stream.get(&name).is_none() {
                    note(&name, &value, Some(parser));
                }
            }
            for (name, value) in &selected.entry.metadata {
                note(name, value, None);
            }
            seen += 1;
            if seen >= line_limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .map_err(|err| loki_error(ErrorKind::Internal, err.to_string()))?;
    Ok(fields)
}

async fn detected_fields(State(state): State<AppState>, LokiParams(params): LokiParams) -> Response {
    answer_blocking(&state, params, |store, params| {
        let fields = detect(&store, &params)?;
        let limit = limit(&params, "limit", DEFAULT_LIMIT)?;
        let listed: Vec<serde_json::Value> = fields
            .iter()
            .take(limit)
            .map(|(name, field)| {
                serde_json::json!({
                    "label": name,
                    "type": field.field_type.as_str(),
                    "cardinality": field.values.len(),
                    "parsers": if field.parsers.is_empty() { serde_json::Value::Null } else { serde_json::json!(field.parsers) },
                })
            })
            .collect();
        Ok(json(serde_json::json!({"fields": listed, "limit": limit})))
    })
    .await
}

async fn detected_field_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    LokiParams(params): LokiParams,
) -> Response {
    answer_blocking(&state, params, move |store, params| {
        let mut fields = detect(&store, &params)?;
        let limit = limit(&params, "limit", DEFAULT_LIMIT)?;
        let values: Vec<String> = fields
            .remove(&name)
            .map(|field| field.values.into_iter().take(limit).collect())
            .unwrap_or_default();
        Ok(json(serde_json::json!({"values": values, "limit": limit})))
    })
    .await
}

/// Bytes of lines per group and time bucket.
type Volumes = BTreeMap<Labels, BTreeMap<i64, u64>>;

/// Bytes of lines per group over `[start, end)`, in `buckets` time buckets of `step_ns`
/// (one bucket for the instant form). Groups are the values of `targetLabels`, or of the
/// labels the selector names, or (`aggregateBy=series`) the whole stream.
fn volumes(store: &LogStore, params: &Params, step_ns: Option<i64>) -> Result<Volumes, ApiError> {
    let (start, end) = time_range(params, 3600 * NS_PER_SEC)?;
    let matchers = selector(params)?;
    let target: Vec<String> = match params.get("targetLabels").filter(|text| !text.is_empty()) {
        Some(text) => text.split(',').map(|name| name.trim().to_owned()).collect(),
        None if params.get("aggregateBy") == Some("labels") || !matchers.is_empty() => {
            matchers.iter().map(|matcher| matcher.name().to_owned()).collect()
        }
        None => Vec::new(),
    };
    let selection = Selection {
        start_ns: start,
        end_ns: end.saturating_add(1),
        direction: Direction::Forward,
        ..Selection::default()
    };
    let mut groups: BTreeMap<Labels, BTreeMap<i64, u64>> = BTreeMap::new();
    let mut keys: std::collections::HashMap<Arc<Labels>, Labels> = std::collections::HashMap::new();
    store
        .select(&|labels| matches(&matchers, labels), &selection, |selected| {
            let group = keys
                .entry(Arc::clone(&selected.stream))
                .or_insert_with(|| {
                    if target.is_empty() {
                        (*selected.stream).clone()
                    } else {
                        selected
                            .stream
                            .filtered(|label| target.iter().any(|name| label.name == *name))
                    }
                })
                .clone();
            let bucket = match step_ns {
                Some(step) => start + (selected.entry.timestamp_ns - start) / step * step,
                None => end,
            };
            *groups.entry(group).or_default().entry(bucket).or_default() += selected.entry.line.len() as u64;
            ControlFlow::Continue(())
        })
        .map_err(|err| loki_error(ErrorKind::Internal, err.to_string()))?;
    Ok(groups)
}

async fn volume(State(state): State<AppState>, LokiParams(params): LokiParams) -> Response {
    answer_blocking(&state, params, |store, params| {
        volume_answer(&store, &params, false)
    })
    .await
}

async fn volume_range(State(state): State<AppState>, LokiParams(params): LokiParams) -> Response {
    answer_blocking(&state, params, |store, params| {
        volume_answer(&store, &params, true)
    })
    .await
}

fn volume_answer(store: &LogStore, params: &Params, ranged: bool) -> Result<Response, ApiError> {
    let step_ns = if ranged {
        let step = match params.get("step") {
            None | Some("") => 3600 * NS_PER_SEC,
            Some(text) => parse_duration(text)
                .map_err(|err| loki_error(ErrorKind::BadInput, format!("invalid step: {err}")))?
                .saturating_mul(1_000_000),
        };
        if step <= 0 {
            return Err(loki_error(ErrorKind::BadInput, "step must be positive"));
        }
        Some(step)
    } else {
        None
    };
    let limit = limit(params, "limit", 100)?;
    let groups = volumes(store, params, step_ns)?;
    let mut totals: Vec<(u64, &Labels)> = groups
        .iter()
        .map(|(labels, buckets)| (buckets.values().sum(), labels))
        .collect();
    totals.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    totals.truncate(limit);
    let seconds = |ns: i64| serde_json::json!(ns as f64 / NS_PER_SEC as f64);
    let result: Vec<serde_json::Value> = totals
        .iter()
        .map(|(total, labels)| {
            let buckets = groups.get(*labels);
            if ranged {
                let values: Vec<serde_json::Value> = buckets
                    .into_iter()
                    .flatten()
                    .map(|(bucket, bytes)| serde_json::json!([seconds(*bucket), bytes.to_string()]))
                    .collect();
                serde_json::json!({"metric": label_object(labels), "values": values})
            } else {
                let at = buckets
                    .and_then(|buckets| buckets.keys().next().copied())
                    .unwrap_or_default();
                serde_json::json!({"metric": label_object(labels), "value": [seconds(at), total.to_string()]})
            }
        })
        .collect();
    let result_type = if ranged { "matrix" } else { "vector" };
    Ok(success(
        serde_json::json!({"resultType": result_type, "result": result}),
    ))
}

async fn format_query(LokiParams(params): LokiParams) -> Response {
    respond((|| {
        let text = params.get("query").unwrap_or_default();
        let expr = obs_logql::parse(text).map_err(|err| loki_error(ErrorKind::BadInput, err.to_string()))?;
        Ok(success(serde_json::Value::from(expr.to_string())))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_types_are_what_every_value_parses_as() {
        assert_eq!(FieldType::of("42"), FieldType::Int);
        assert_eq!(FieldType::of("4.2"), FieldType::Float);
        assert_eq!(FieldType::of("true"), FieldType::Boolean);
        assert_eq!(FieldType::of("1h30m"), FieldType::Duration);
        assert_eq!(FieldType::of("250ms"), FieldType::Duration);
        assert_eq!(FieldType::of("1.5MiB"), FieldType::Bytes);
        assert_eq!(FieldType::of("r-123"), FieldType::String);
        assert_eq!(FieldType::of("m"), FieldType::String);
        assert_eq!(FieldType::Int.merge(FieldType::Float), FieldType::Float);
        assert_eq!(FieldType::Int.merge(FieldType::Duration), FieldType::String);
    }
}
