//! Live tail: the WebSocket `GET /loki/api/v1/tail` (and the legacy `/api/prom/tail`).
//!
//! Parameters as Loki's: `query` (a log query), `start` (default an hour ago), `limit` (the
//! most entries of the first message, default 100), `delay_for` (0–5 seconds to wait for late
//! entries). The first message holds the entries since `start`; then, every second, the
//! entries that arrived since, oldest first, each entry once. Messages are Loki's
//! `{"streams":[{"stream":{…},"values":[["<ns>","<line>"]]}],"dropped_entries":null}`. A tail
//! ends when the client closes it or after an hour (Loki's `tail_max_duration`).
//!
//! `/loki/api/v2alpha/tail` is deliberately not served: Grafana probes it and must get 404 to
//! use this one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use obs_core::error::ErrorKind;
use obs_core::time::TimestampMs;
use obs_logql_engine::{Direction, Engine, EngineOptions, QueryValue, RangeParams};
use obs_logs::store::LogStore;

use crate::AppState;
use crate::loki_api::{loki_error, parse_loki_time, store};
use crate::loki_query::StoreSource;

const NS_PER_SEC: i64 = 1_000_000_000;
/// How often a tail looks for new entries.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long one tail may run (Loki's `tail_max_duration`).
const MAX_TAIL: Duration = Duration::from_secs(3600);
/// Entries arriving up to this late (behind the newest one sent) are still sent; each poll
/// reads back this far.
const LATE_WINDOW_NS: i64 = 10 * NS_PER_SEC;
/// The most entries one message carries after the first.
const MAX_ENTRIES_PER_MESSAGE: usize = 5000;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/loki/api/v1/tail", get(tail))
        .route("/api/prom/tail", get(tail))
}

#[derive(Debug, serde::Deserialize)]
struct TailParams {
    query: Option<String>,
    start: Option<String>,
    limit: Option<usize>,
    delay_for: Option<String>,
}

async fn tail(
    State(state): State<AppState>,
    Query(params): Query<TailParams>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let prepared = (|| {
        let store = store(&state)?;
        let text = params
            .query
            .as_deref()
            .filter(|text| !text.trim().is_empty())
            .ok_or_else(|| loki_error(ErrorKind::BadInput, "query parameter is required"))?;
        let expr = obs_logql::parse(text).map_err(|err| loki_error(ErrorKind::BadInput, err.to_string()))?;
        if !expr.is_log() {
            return Err(loki_error(
                ErrorKind::BadInput,
                "tail queries must be log queries, not metric queries",
            ));
        }
        let now_ns = now_ns();
        let start_ns = match params.start.as_deref() {
            None | Some("") => now_ns - 3600 * NS_PER_SEC,
            Some(text) => parse_loki_time(text).map_err(|err| loki_error(ErrorKind::BadInput, err))?,
        };
        let delay_ns = match params.delay_for.as_deref() {
            None | Some("") => 0,
            Some(text) => {
                let seconds: i64 = text
                    .parse()
                    .map_err(|_| loki_error(ErrorKind::BadInput, format!("invalid delay_for {text:?}")))?;
                if !(0..=5).contains(&seconds) {
                    return Err(loki_error(
                        ErrorKind::BadInput,
                        "delay_for can't be greater than 5",
                    ));
                }
                seconds * NS_PER_SEC
            }
        };
        let limit = params.limit.unwrap_or(100);
        let engine = Engine::new(EngineOptions {
            indexed_keys: store.options().correlation_keys.clone(),
            ..EngineOptions::default()
        });
        Ok((store, expr, engine, start_ns, delay_ns, limit))
    })();
    match prepared {
        Ok((store, expr, engine, start_ns, delay_ns, limit)) => upgrade.on_upgrade(move |socket| {
            run(
                socket,
                Tail {
                    store,
                    expr,
                    engine: Arc::new(engine),
                    delay_ns,
                },
                start_ns,
                limit,
            )
        }),
        Err(err) => err.into_response(),
    }
}

fn now_ns() -> i64 {
    TimestampMs::now().0.saturating_mul(1_000_000)
}

struct Tail {
    store: Arc<LogStore>,
    expr: obs_logql::Expr,
    engine: Arc<Engine>,
    delay_ns: i64,
}

/// One poll: at most `limit` entries of `[from_ns, to_ns)`, the oldest (forward) or the newest
/// (backward).
async fn poll(
    tail: &Tail,
    from_ns: i64,
    to_ns: i64,
    limit: usize,
    direction: Direction,
) -> Result<QueryValue, String> {
    let source = StoreSource(Arc::clone(&tail.store));
    let engine = Arc::clone(&tail.engine);
    let expr = tail.expr.clone();
    let params = RangeParams {
        start_ns: from_ns,
        end_ns: to_ns,
        step_ns: NS_PER_SEC,
        interval_ns: None,
        direction,
        limit,
    };
    tokio::task::spawn_blocking(move || engine.query_range(&source, &expr, &params))
        .await
        .map_err(|err| err.to_string())?
        .map_err(|err| err.to_string())
}

/// The entries of `value` not sent before, as a tail message; remembers them as sent.
fn message(value: &QueryValue, sent: &mut HashSet<(i64, String, String)>) -> Option<(String, i64)> {
    let QueryValue::Streams(streams) = value else {
        return None;
    };
    let mut newest = i64::MIN;
    let mut out_streams = Vec::new();
    for stream in streams {
        let labels = stream.labels.to_string();
        let mut fresh = Vec::new();
        for entry in &stream.entries {
            if !sent.insert((entry.timestamp_ns, labels.clone(), entry.line.clone())) {
                continue;
            }
            newest = newest.max(entry.timestamp_ns);
            fresh.push((entry.timestamp_ns, &entry.line));
        }
        // Oldest first, whichever direction the entries were read in.
        fresh.sort_by_key(|(ts, _)| *ts);
        let values: Vec<serde_json::Value> = fresh
            .into_iter()
            .map(|(ts, line)| serde_json::json!([ts.to_string(), line]))
            .collect();
        if values.is_empty() {
            continue;
        }
        let mut merged: std::collections::BTreeMap<String, serde_json::Value> = stream
            .labels
            .iter()
            .map(|label| {
                (
                    label.name.to_string(),
                    serde_json::Value::from(label.value.as_str()),
                )
            })
            .collect();
        // Tail messages carry one label set per stream: structured metadata and parsed labels
        // of the stream's first entry are merged in, as Loki's tailer does per entry.
        if let Some(first) = stream.entries.first() {
            for (name, value) in first.structured_metadata.iter().chain(&first.parsed) {
                merged.insert(name.clone(), serde_json::Value::from(value.as_str()));
            }
        }
        out_streams.push(serde_json::json!({"stream": merged, "values": values}));
    }
    if out_streams.is_empty() {
        return None;
    }
    let body = serde_json::json!({"streams": out_streams, "dropped_entries": null});
    Some((body.to_string(), newest))
}

async fn run(mut socket: WebSocket, tail: Tail, start_ns: i64, limit: usize) {
    let started = tokio::time::Instant::now();
    let mut sent: HashSet<(i64, String, String)> = HashSet::new();
    let first_end = now_ns() - tail.delay_ns;
    let mut from_ns;
    // The newest `limit` entries since `start`, sent oldest first.
    match poll(&tail, start_ns, first_end, limit, Direction::Backward).await {
        Ok(value) => {
            if let Some((text, newest)) = message(&value, &mut sent) {
                from_ns = newest;
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            } else {
                from_ns = first_end;
            }
        }
        Err(err) => {
            let _ = socket
                .send(Message::Text(format!("tail failed: {err}").into()))
                .await;
            return;
        }
    }
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            },
            _ = ticker.tick() => {}
        }
        if started.elapsed() > MAX_TAIL {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        let to_ns = now_ns() - tail.delay_ns;
        if to_ns <= from_ns {
            continue;
        }
        // From the newest timestamp sent (inclusive, an entry of the same nanosecond may come
        // later): entries already sent are skipped by `sent`.
        let value = match poll(&tail, from_ns, to_ns, MAX_ENTRIES_PER_MESSAGE, Direction::Forward).await {
            Ok(value) => value,
            Err(err) => {
                tracing::warn!(error = %err, "tail query failed");
                continue;
            }
        };
        let mut newest = from_ns;
        if let Some((text, newest_sent)) = message(&value, &mut sent) {
            newest = newest_sent;
            if socket.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
        // The next poll reads from the newest entry sent, or the late window, whichever is
        // later; what was sent before that is forgotten.
        from_ns = newest.max(to_ns - LATE_WINDOW_NS);
        sent.retain(|(ts, _, _)| *ts >= from_ns);
    }
}
