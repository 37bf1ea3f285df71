//! Loki's query endpoints: `GET|POST /loki/api/v1/query_range` and `/loki/api/v1/query`
//! (and the legacy `/api/prom/query`), answered by the LogQL engine over the log store.
//!
//! Log queries answer `streams`; with the request header `X-Loki-Response-Encoding-Flags:
//! categorize-labels` each entry carries its structured metadata and parsed labels apart
//! (`["<ns>", "<line>", {"structuredMetadata": {…}, "parsed": {…}}]`) under its stream's own
//! labels, and `data.encodingFlags` says so; without it they are merged into the stream's
//! labels, one stream per distinct label set, as Loki does. Metric queries answer `matrix`,
//! `vector` or `scalar` with Prometheus' number formatting.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use obs_core::error::{Classify, ErrorKind};
use obs_core::time::TimestampMs;
use obs_logql_engine::{
    Direction, Engine, EngineOptions, EntryResult, InstantParams, LogSource, QueryValue, RangeParams,
    SourceEntry, SourceError, SourceQuery, StreamResult,
};
use obs_logs::store::{LogStore, Selection};
use obs_promql::json::{format_timestamp, format_value, write_string};

use crate::AppState;
use crate::error::ApiError;
use crate::loki_api::{LokiParams, loki_error, parse_loki_time, respond, store, time_range};
use crate::prometheus_api::query::{Params, parse_duration};

const NS_PER_SEC: i64 = 1_000_000_000;
/// `limit` when the request has none (Loki's default).
const DEFAULT_LIMIT: usize = 100;
/// The header through which Grafana asks for structured metadata and parsed labels apart.
const ENCODING_FLAGS_HEADER: &str = "x-loki-response-encoding-flags";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/loki/api/v1/query_range", get(query_range).post(query_range))
        .route("/loki/api/v1/query", get(query_instant).post(query_instant))
        .route("/api/prom/query", get(query_range).post(query_range))
}

/// The log store as the engine's source.
pub(crate) struct StoreSource(pub(crate) Arc<LogStore>);

impl LogSource for StoreSource {
    fn select(
        &self,
        query: &SourceQuery<'_>,
        visit: &mut dyn FnMut(SourceEntry) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let selection = Selection {
            start_ns: query.start_ns,
            end_ns: query.end_ns,
            line_contains: query.line_contains.clone(),
            keys: query.keys.clone(),
            direction: match query.direction {
                Direction::Forward => obs_logs::store::Direction::Forward,
                Direction::Backward => obs_logs::store::Direction::Backward,
            },
        };
        self.0
            .select(query.matches_stream, &selection, |selected| {
                visit(SourceEntry {
                    stream: selected.stream,
                    timestamp_ns: selected.entry.timestamp_ns,
                    line: selected.entry.line,
                    metadata: selected.entry.metadata,
                })
            })
            .map_err(|err| SourceError(err.to_string()))
    }
}

/// LogQL metric queries for log rules (Loki's ruler), over the log store.
struct LogRules {
    store: Arc<LogStore>,
    engine: Engine,
}

impl obs_rules::group::LogQuerier for LogRules {
    fn instant(&self, expr: &str, ts_ms: i64) -> Result<Vec<(obs_core::series::Labels, f64)>, String> {
        let parsed = obs_logql::parse(expr).map_err(|err| err.to_string())?;
        let params = InstantParams {
            time_ns: ts_ms.saturating_mul(1_000_000),
            direction: Direction::Backward,
            limit: DEFAULT_LIMIT,
        };
        match self
            .engine
            .query_instant(&StoreSource(Arc::clone(&self.store)), &parsed, &params)
            .map_err(|err| err.to_string())?
        {
            QueryValue::Vector(samples) => Ok(samples
                .into_iter()
                .map(|sample| (sample.labels, sample.value))
                .collect()),
            QueryValue::Scalar { value, .. } => Ok(vec![(obs_core::series::Labels::default(), value)]),
            QueryValue::Streams(_) | QueryValue::Matrix(_) => {
                Err("rule result is not a vector or scalar".to_owned())
            }
        }
    }
}

/// What log rules run their expressions on: the LogQL engine over `store`, with `timeout` per
/// evaluation.
pub fn log_rule_querier(
    store: Arc<LogStore>,
    timeout: std::time::Duration,
) -> Arc<dyn obs_rules::group::LogQuerier> {
    let engine = Engine::new(EngineOptions {
        indexed_keys: store.options().correlation_keys.clone(),
        timeout,
        ..EngineOptions::default()
    });
    Arc::new(LogRules { store, engine })
}

/// The parameters both endpoints share.
struct Common {
    query: obs_logql::Expr,
    direction: Direction,
    limit: usize,
    categorize: bool,
}

fn common(params: &Params, headers: &HeaderMap) -> Result<Common, ApiError> {
    let text = params
        .get("query")
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| loki_error(ErrorKind::BadInput, "query parameter is required"))?;
    let query = obs_logql::parse(text).map_err(|err| loki_error(ErrorKind::BadInput, err.to_string()))?;
    let direction = match params.get("direction").map(str::to_ascii_lowercase).as_deref() {
        None | Some("" | "backward") => Direction::Backward,
        Some("forward") => Direction::Forward,
        Some(other) => {
            return Err(loki_error(
                ErrorKind::BadInput,
                format!("invalid direction {other:?}: use forward or backward"),
            ));
        }
    };
    let limit = match params.get("limit") {
        None | Some("") => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| loki_error(ErrorKind::BadInput, format!("invalid limit {text:?}")))?,
    };
    let categorize = headers
        .get_all(ENCODING_FLAGS_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|flag| flag.trim().eq_ignore_ascii_case("categorize-labels"));
    Ok(Common {
        query,
        direction,
        limit,
        categorize,
    })
}

fn engine(state: &AppState, store: &LogStore) -> Engine {
    Engine::new(EngineOptions {
        indexed_keys: store.options().correlation_keys.clone(),
        timeout: state.query_options().timeout,
        ..EngineOptions::default()
    })
}

/// What a query endpoint asks the engine.
enum Request {
    Range(RangeParams),
    Instant(InstantParams),
}

async fn query_range(
    State(state): State<AppState>,
    headers: HeaderMap,
    LokiParams(params): LokiParams,
) -> Response {
    evaluate(&state, &headers, &params, |params, common| {
        let (start_ns, end_ns) = time_range(params, 3600 * NS_PER_SEC)?;
        let step_ns = match params.get("step") {
            None | Some("") => default_step_ns(start_ns, end_ns),
            Some(text) => parse_duration(text)
                .map_err(|err| loki_error(ErrorKind::BadInput, format!("invalid step: {err}")))?
                .saturating_mul(1_000_000),
        };
        if step_ns <= 0 {
            return Err(loki_error(
                ErrorKind::BadInput,
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        let interval_ns = match params.get("interval") {
            None | Some("") => None,
            Some(text) => Some(
                parse_duration(text)
                    .map_err(|err| loki_error(ErrorKind::BadInput, format!("invalid interval: {err}")))?
                    .saturating_mul(1_000_000),
            ),
        };
        Ok(Request::Range(RangeParams {
            start_ns,
            end_ns,
            step_ns,
            interval_ns,
            direction: common.direction,
            limit: common.limit,
        }))
    })
    .await
}

async fn query_instant(
    State(state): State<AppState>,
    headers: HeaderMap,
    LokiParams(params): LokiParams,
) -> Response {
    evaluate(&state, &headers, &params, |params, common| {
        let time_ns = match params.get("time") {
            None | Some("") => TimestampMs::now().0.saturating_mul(1_000_000),
            Some(text) => parse_loki_time(text)
                .map_err(|err| loki_error(ErrorKind::BadInput, format!("invalid time: {err}")))?,
        };
        Ok(Request::Instant(InstantParams {
            time_ns,
            direction: common.direction,
            limit: common.limit,
        }))
    })
    .await
}

/// Parses the shared parameters and the endpoint's own (`request`), runs the query on the
/// blocking pool and answers it.
async fn evaluate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    request: impl FnOnce(&Params, &Common) -> Result<Request, ApiError>,
) -> Response {
    let prepared = (|| {
        let common = common(params, headers)?;
        let store = store(state)?;
        let request = request(params, &common)?;
        Ok::<_, ApiError>((store, common, request))
    })();
    let (store, common, request) = match prepared {
        Ok(prepared) => prepared,
        Err(err) => return err.into_response(),
    };
    let engine = engine(state, &store);
    let started = Instant::now();
    let source = StoreSource(store);
    let evaluated = tokio::task::spawn_blocking(move || match &request {
        Request::Range(range) => engine.query_range(&source, &common.query, range),
        Request::Instant(instant) => engine.query_instant(&source, &common.query, instant),
    })
    .await;
    answer(evaluated, common.categorize, started)
}

/// Loki's default step: the range over 250 points, at least a second.
fn default_step_ns(start_ns: i64, end_ns: i64) -> i64 {
    ((end_ns - start_ns) / NS_PER_SEC / 250).max(1) * NS_PER_SEC
}

fn answer(
    evaluated: Result<Result<QueryValue, obs_logql_engine::EngineError>, tokio::task::JoinError>,
    categorize: bool,
    started: Instant,
) -> Response {
    respond((|| {
        let value = evaluated
            .map_err(|err| loki_error(ErrorKind::Internal, format!("query failed: {err}")))?
            .map_err(|err| loki_error(err.kind(), err.to_string()))?;
        let body = encode(&value, categorize, started.elapsed().as_secs_f64());
        Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
    })())
}

/// The response body: `{"status":"success","data":{"resultType":…,"result":…,"stats":…}}`.
fn encode(value: &QueryValue, categorize: bool, exec_seconds: f64) -> String {
    let mut out = String::with_capacity(4096);
    out.push_str("{\"status\":\"success\",\"data\":{");
    let mut returned_entries = 0usize;
    match value {
        QueryValue::Streams(streams) => {
            out.push_str("\"resultType\":\"streams\",\"result\":");
            returned_entries = streams.iter().map(|stream| stream.entries.len()).sum();
            if categorize {
                write_categorized(streams, &mut out);
                out.push_str(",\"encodingFlags\":[\"categorize-labels\"]");
            } else {
                write_merged(streams, &mut out);
            }
        }
        QueryValue::Matrix(series) => {
            out.push_str("\"resultType\":\"matrix\",\"result\":[");
            for (index, one) in series.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_label_object(
                    one.labels.iter().map(|label| (&*label.name, &*label.value)),
                    &mut out,
                );
                out.push_str(",\"values\":[");
                for (position, (ts_ms, value)) in one.points.iter().enumerate() {
                    if position > 0 {
                        out.push(',');
                    }
                    write_point(*ts_ms, *value, &mut out);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
        QueryValue::Vector(samples) => {
            out.push_str("\"resultType\":\"vector\",\"result\":[");
            for (index, sample) in samples.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_label_object(
                    sample.labels.iter().map(|label| (&*label.name, &*label.value)),
                    &mut out,
                );
                out.push_str(",\"value\":");
                write_point(sample.timestamp_ms, sample.value, &mut out);
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Scalar { timestamp_ns, value } => {
            out.push_str("\"resultType\":\"scalar\",\"result\":");
            write_point(timestamp_ns.div_euclid(1_000_000), *value, &mut out);
        }
    }
    out.push_str(&format!(
        ",\"stats\":{{\"summary\":{{\"execTime\":{exec_seconds},\"queueTime\":0,\"subqueries\":0,\"totalEntriesReturned\":{returned_entries}}}}}"
    ));
    out.push_str("}}");
    out
}

fn write_point(ts_ms: i64, value: f64, out: &mut String) {
    out.push('[');
    format_timestamp(ts_ms, out);
    out.push_str(",\"");
    out.push_str(&format_value(value));
    out.push_str("\"]");
}

fn write_label_object<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>, out: &mut String) {
    out.push('{');
    for (index, (name, value)) in pairs.enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(name, out);
        out.push(':');
        write_string(value, out);
    }
    out.push('}');
}

fn write_entry_head(entry: &EntryResult, out: &mut String) {
    out.push_str("[\"");
    out.push_str(&entry.timestamp_ns.to_string());
    out.push_str("\",");
    write_string(&entry.line, out);
}

/// Streams under their own labels, each entry with its metadata and parsed labels apart.
fn write_categorized(streams: &[StreamResult], out: &mut String) {
    out.push('[');
    for (index, stream) in streams.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":");
        write_label_object(
            stream.labels.iter().map(|label| (&*label.name, &*label.value)),
            out,
        );
        out.push_str(",\"values\":[");
        for (position, entry) in stream.entries.iter().enumerate() {
            if position > 0 {
                out.push(',');
            }
            write_entry_head(entry, out);
            out.push_str(",{");
            let mut wrote = false;
            if !entry.structured_metadata.is_empty() {
                out.push_str("\"structuredMetadata\":");
                write_label_object(entry.structured_metadata.iter().map(|(n, v)| (&**n, &**v)), out);
                wrote = true;
            }
            if !entry.parsed.is_empty() {
                if wrote {
                    out.push(',');
                }
                out.push_str("\"parsed\":");
                write_label_object(entry.parsed.iter().map(|(n, v)| (&**n, &**v)), out);
            }
            out.push_str("}]");
        }
        out.push_str("]}");
    }
    out.push(']');
}

/// Streams split by their full label sets (stream labels, then structured metadata, then
/// parsed labels, a later one replacing an earlier of the same name), sorted by label set.
fn write_merged(streams: &[StreamResult], out: &mut String) {
    let mut groups: BTreeMap<Vec<(String, String)>, Vec<&EntryResult>> = BTreeMap::new();
    for stream in streams {
        for entry in &stream.entries {
            let mut labels: BTreeMap<&str, &str> = stream
                .labels
                .iter()
                .map(|label| (label.name.as_str(), label.value.as_str()))
                .collect();
            for (name, value) in entry.structured_metadata.iter().chain(&entry.parsed) {
                labels.insert(name, value);
            }
            let key: Vec<(String, String)> = labels
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            groups.entry(key).or_default().push(entry);
        }
    }
    out.push('[');
    for (index, (labels, entries)) in groups.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str("{\"stream\":");
        write_label_object(labels.iter().map(|(n, v)| (&**n, &**v)), out);
        out.push_str(",\"values\":[");
        for (position, entry) in entries.iter().enumerate() {
            if position > 0 {
                out.push(',');
            }
            write_entry_head(entry, out);
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use obs_core::series::Labels;

    use super::*;

    fn stream() -> StreamResult {
        StreamResult {
            labels: Labels::from_pairs([("app", "jarvis")]).unwrap(),
            entries: vec![
                EntryResult {
                    timestamp_ns: 2_000_000_001,
                    line: "b \"quoted\"".to_owned(),
                    structured_metadata: vec![("trace_id".to_owned(), "t1".to_owned())],
                    parsed: vec![("level".to_owned(), "error".to_owned())],
                },
                EntryResult {
                    timestamp_ns: 1_000_000_000,
                    line: "a".to_owned(),
                    structured_metadata: Vec::new(),
                    parsed: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn categorized_entries_keep_metadata_and_parsed_labels_apart() {
        let body = encode(&QueryValue::Streams(vec![stream()]), true, 0.5);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            value["data"]["encodingFlags"],
            serde_json::json!(["categorize-labels"])
        );
        assert_eq!(
            value["data"]["result"],
            serde_json::json!([{"stream": {"app": "jarvis"}, "values": [
                ["2000000001", "b \"quoted\"", {"structuredMetadata": {"trace_id": "t1"}, "parsed": {"level": "error"}}],
                ["1000000000", "a", {}]
            ]}])
        );
    }

    #[test]
    fn without_the_flag_labels_merge_into_streams() {
        let body = encode(&QueryValue::Streams(vec![stream()]), false, 0.5);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(value["data"].get("encodingFlags").is_none());
        assert_eq!(
            value["data"]["result"],
            serde_json::json!([
                {"stream": {"app": "jarvis"}, "values": [["1000000000", "a"]]},
                {"stream": {"app": "jarvis", "level": "error", "trace_id": "t1"}, "values": [["2000000001", "b \"quoted\""]]}
            ])
        );
    }

    #[test]
    fn metric_results_use_prometheus_number_formatting() {
        let body = encode(
            &QueryValue::Scalar {
                timestamp_ns: 1_500_000_000,
                value: 2.0,
            },
            false,
            0.0,
        );
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["data"]["result"], serde_json::json!([1.5, "2"]));
        assert_eq!(default_step_ns(0, 3600 * NS_PER_SEC), 14 * NS_PER_SEC);
        assert_eq!(default_step_ns(0, 10 * NS_PER_SEC), NS_PER_SEC);
    }
}
