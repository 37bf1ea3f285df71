//! The engine end to end over an in-memory log source: every pipeline stage, `__error__`
//! handling, every range and vector aggregation, binary operations and vector matching,
//! Grafana's own queries, direction and limit, limits, and what the source is asked for.
//!
//! Expected results are worked out by hand from Loki's documented behaviour
//! (`docs/sources/query/*`) and its evaluator (`pkg/logql`), over the fixture below.
#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use obs_core::error::{Classify, ErrorKind};
use obs_core::series::Labels;
use obs_logql_engine::{
    Direction, Engine, EngineError, EngineOptions, InstantParams, LogSource, QueryValue, RangeParams,
    SourceEntry, SourceError, SourceQuery, StreamResult,
};

const T0: i64 = 1_704_067_200_000_000_000; // 2024-01-01T00:00:00Z
const SEC: i64 = 1_000_000_000;
const MIN: i64 = 60 * SEC;

fn at(minutes: i64, seconds: i64) -> i64 {
    T0 + minutes * MIN + seconds * SEC
}

const C1: &str = "\u{1b}[32mINFO\u{1b}[0m GET /health 200 from 10.1.2.3";
const C2: &str = "\u{1b}[31mERROR\u{1b}[0m GET /login 500 from 10.1.2.4";
const C3: &str = "INFO GET /health 200 from 8.8.8.8";

/// What the source was asked.
#[derive(Debug, Clone, PartialEq)]
struct Recorded {
    start_ns: i64,
    end_ns: i64,
    line_contains: Vec<String>,
    keys: Vec<(String, String)>,
    direction: Direction,
}

/// An in-memory log source that honours every part of a [`SourceQuery`] and records it.
struct Fixture {
    entries: Vec<SourceEntry>,
    asked: Mutex<Vec<Recorded>>,
    broken: bool,
}

fn stream(pairs: &[(&str, &str)]) -> Arc<Labels> {
    Arc::new(Labels::from_pairs(pairs.iter().copied()).unwrap())
}

fn entry(stream: &Arc<Labels>, timestamp_ns: i64, line: &str, metadata: &[(&str, &str)]) -> SourceEntry {
    SourceEntry {
        stream: Arc::clone(stream),
        timestamp_ns,
        line: line.to_owned(),
        metadata: metadata
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

impl Fixture {
    fn new() -> Fixture {
        let jarvis_prod = stream(&[("app", "jarvis"), ("env", "prod")]);
        let api_prod = stream(&[("app", "api"), ("env", "prod")]);
        let api_dev = stream(&[("app", "api"), ("env", "dev")]);
        let jarvis_dev = stream(&[("app", "jarvis"), ("env", "dev")]);
        let packer = stream(&[("app", "packer")]);
        let counter = stream(&[("app", "counter")]);
        let entries = vec![
            // Jarvis agents, JSON.
            entry(
                &jarvis_prod,
                at(1, 0),
                r#"{"level":"info","agent":"planner","run_id":"r1","session_id":"s1","msg":"plan created","latency":"250ms","tokens":100}"#,
                &[],
            ),
            entry(
                &jarvis_prod,
                at(2, 0),
                r#"{"level":"info","agent":"coder","run_id":"r1","session_id":"s1","msg":"code written","latency":"1.5s","tokens":300}"#,
                &[],
            ),
            entry(
                &jarvis_prod,
                at(3, 0),
                r#"{"level":"error","agent":"coder","run_id":"r1","session_id":"s1","msg":"compile failed","latency":"2s","tokens":50,"error":{"kind":"syntax","line":12}}"#,
                &[],
            ),
            entry(
                &jarvis_prod,
                at(4, 0),
                r#"{"level":"info","agent":"planner","run_id":"r2","session_id":"s2","msg":"plan created","latency":"300ms","tokens":80}"#,
                &[],
            ),
            entry(
                &jarvis_prod,
                at(5, 0),
                r#"{"level":"warn","agent":"reviewer","run_id":"r2","session_id":"s2","msg":"slow review","latency":"5s","tokens":"n/a"}"#,
                &[],
            ),
            entry(
                &jarvis_prod,
                at(6, 0),
                r#"{"level":"info","agent":"coder","run_id":"r2","session_id":"s2","msg":"done","latency":"800ms","tokens":200}"#,
                &[],
            ),
            // A nightly run, hours later.
            entry(
                &jarvis_prod,
                at(60, 0),
                r#"{"level":"info","agent":"scheduler","run_id":"r4","session_id":"s3","msg":"nightly plan","latency":"100ms","tokens":10}"#,
                &[],
            ),
            entry(
                &jarvis_prod,
                at(120, 0),
                r#"{"level":"info","agent":"scheduler","run_id":"r4","session_id":"s3","msg":"nightly build","latency":"90s","tokens":20}"#,
                &[],
            ),
            entry(
                &jarvis_prod,
                at(180, 0),
                r#"{"level":"error","agent":"scheduler","run_id":"r4","session_id":"s3","msg":"nightly failed","latency":"1m","tokens":30}"#,
                &[],
            ),
            // An API, logfmt.
            entry(
                &api_prod,
                at(0, 30),
                "level=info method=GET path=/api/users status=200 took=12ms size=1.2KB client=10.0.0.5",
                &[],
            ),
            entry(
                &api_prod,
                at(1, 30),
                "level=info method=POST path=/api/users status=201 took=40ms size=300B client=10.0.0.6",
                &[],
            ),
            entry(
                &api_prod,
                at(2, 30),
                r#"level=error method=GET path=/api/orders status=500 took=1.2s size=0B client=192.168.1.9 msg="db timeout""#,
                &[],
            ),
            entry(
                &api_prod,
                at(3, 30),
                "level=info method=GET path=/api/orders status=200 took=30ms size=2KB client=10.0.0.5",
                &[],
            ),
            entry(
                &api_prod,
                at(4, 30),
                "level=warn method=DELETE path=/api/users/7 status=404 took=5ms size=0B client=172.16.0.1",
                &[],
            ),
            entry(
                &api_prod,
                at(5, 30),
                r#"level=error method=GET path=/api/orders status=503 took=bad size=10B client=10.0.0.7 msg="upstream down""#,
                &[],
            ),
            // The same API in dev, plain coloured text.
            entry(&api_dev, at(1, 0), C1, &[]),
            entry(&api_dev, at(2, 0), C2, &[]),
            entry(&api_dev, at(3, 0), C3, &[]),
            // Jarvis in dev: structured metadata, and a line that is not JSON.
            entry(
                &jarvis_dev,
                at(1, 30),
                r#"{"level":"debug","msg":"tick","run_id":"r3"}"#,
                &[("trace_id", "t1"), ("run_id", "r3"), ("level", "debug")],
            ),
            entry(
                &jarvis_dev,
                at(2, 30),
                "not json at all",
                &[("trace_id", "t2"), ("level", "error")],
            ),
            entry(
                &jarvis_dev,
                at(3, 30),
                r#"{"level":"info","msg":"tock","app":"shadow"}"#,
                &[("trace_id", "t3"), ("env", "meta")],
            ),
            // Lines written by Promtail's pack stage.
            entry(
                &packer,
                at(2, 0),
                r#"{"_entry":"original message one","container":"c1","pod":"p1"}"#,
                &[],
            ),
            entry(
                &packer,
                at(3, 0),
                r#"{"_entry":"level=error msg=\"packed failure\"","container":"c2"}"#,
                &[],
            ),
            // A counter.
            entry(&counter, at(1, 0), "total=10", &[]),
            entry(&counter, at(2, 0), "total=20", &[]),
            entry(&counter, at(3, 0), "total=30", &[]),
        ];
        Fixture {
            entries,
            asked: Mutex::new(Vec::new()),
            broken: false,
        }
    }

    fn asked(&self) -> Vec<Recorded> {
        self.asked.lock().unwrap().clone()
    }
}

/// The correlation key `name` of an entry, as the source contract defines it: the stream
/// label, else structured metadata, else the first top-level field of a JSON or logfmt line.
fn correlation_key(entry: &SourceEntry, name: &str) -> Option<String> {
    if let Some(value) = entry.stream.get(name) {
        return Some(value.to_owned());
    }
    if let Some((_, value)) = entry.metadata.iter().find(|(key, _)| key == name) {
        return Some(value.clone());
    }
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(&entry.line) {
        return fields.get(name).map(|value| match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        });
    }
    entry.line.split_whitespace().find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.trim_matches('"').to_owned())
    })
}

impl LogSource for Fixture {
    fn select(
        &self,
        query: &SourceQuery<'_>,
        visit: &mut dyn FnMut(SourceEntry) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        self.asked.lock().unwrap().push(Recorded {
            start_ns: query.start_ns,
            end_ns: query.end_ns,
            line_contains: query.line_contains.clone(),
            keys: query.keys.clone(),
            direction: query.direction,
        });
        if self.broken {
            return Err(SourceError("disk on fire".to_owned()));
        }
        let mut selected: Vec<&SourceEntry> = self
            .entries
            .iter()
            .filter(|entry| (query.matches_stream)(&entry.stream))
            .filter(|entry| query.start_ns <= entry.timestamp_ns && entry.timestamp_ns < query.end_ns)
            .filter(|entry| {
                query
                    .line_contains
                    .iter()
                    .all(|text| entry.line.contains(text.as_str()))
            })
            .filter(|entry| {
                query
                    .keys
                    .iter()
                    .all(|(name, value)| correlation_key(entry, name).as_deref() == Some(value.as_str()))
            })
            .collect();
        match query.direction {
            Direction::Forward => selected.sort_by_key(|entry| entry.timestamp_ns),
            Direction::Backward => selected.sort_by_key(|entry| std::cmp::Reverse(entry.timestamp_ns)),
        }
        for entry in selected {
            if visit(entry.clone()).is_break() {
                break;
            }
        }
        Ok(())
    }
}

fn engine() -> Engine {
    Engine::new(EngineOptions {
        indexed_keys: vec!["run_id".to_owned(), "session_id".to_owned()],
        ..EngineOptions::default()
    })
}

fn parse(query: &str) -> obs_logql::Expr {
    obs_logql::parse(query).unwrap_or_else(|err| panic!("{query}: {err}"))
}

fn log_range(
    fixture: &Fixture,
    query: &str,
    start_ns: i64,
    end_ns: i64,
    direction: Direction,
    limit: usize,
) -> Vec<StreamResult> {
    let params = RangeParams {
        start_ns,
        end_ns,
        step_ns: MIN,
        interval_ns: None,
        direction,
        limit,
    };
    match engine()
        .query_range(fixture, &parse(query), &params)
        .unwrap_or_else(|err| panic!("{query}: {err}"))
    {
        QueryValue::Streams(streams) => streams,
        other => panic!("{query}: not streams: {other:?}"),
    }
}

/// Log query over the first ten minutes, forward.
fn logs(query: &str) -> Vec<StreamResult> {
    log_range(&Fixture::new(), query, T0, at(10, 0), Direction::Forward, 100)
}

/// `{stream} +seconds line`, one per entry, streams in result order.
fn lines(streams: &[StreamResult]) -> Vec<String> {
    streams
        .iter()
        .flat_map(|stream| {
            stream.entries.iter().map(move |entry| {
                format!(
                    "{} +{} {}",
                    stream.labels,
                    (entry.timestamp_ns - T0) / SEC,
                    entry.line
                )
            })
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn range(query: &str, start_ns: i64, end_ns: i64, step_ns: i64) -> Result<QueryValue, EngineError> {
    let params = RangeParams {
        start_ns,
        end_ns,
        step_ns,
        interval_ns: None,
        direction: Direction::Backward,
        limit: 100,
    };
    engine().query_range(&Fixture::new(), &parse(query), &params)
}

fn instant_at(query: &str, time_ns: i64) -> Result<QueryValue, EngineError> {
    let params = InstantParams {
        time_ns,
        direction: Direction::Backward,
        limit: 100,
    };
    engine().query_instant(&Fixture::new(), &parse(query), &params)
}

/// `{labels} value`, one per sample, at the end of the first ten minutes.
fn vector(query: &str) -> Vec<String> {
    match instant_at(query, at(10, 0)).unwrap_or_else(|err| panic!("{query}: {err}")) {
        QueryValue::Vector(samples) => samples
            .iter()
            .map(|sample| {
                assert_eq!(sample.timestamp_ms, at(10, 0) / 1_000_000);
                format!("{} {}", sample.labels, sample.value)
            })
            .collect(),
        other => panic!("{query}: not a vector: {other:?}"),
    }
}

/// `{labels} seconds:value ...`, one per series.
fn matrix(value: QueryValue) -> Vec<String> {
    let QueryValue::Matrix(series) = value else {
        panic!("not a matrix: {value:?}");
    };
    series
        .iter()
        .map(|series| {
            let points: Vec<String> = series
                .points
                .iter()
                .map(|(ms, value)| format!("{}:{value}", (ms - T0 / 1_000_000) / 1000))
                .collect();
            format!("{} {}", series.labels, points.join(" "))
        })
        .collect()
}

fn assert_close(actual: &str, expected: f64) {
    let value: f64 = actual.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - expected).abs() < 1e-9, "{actual} != {expected}");
}

// Log queries: line filters.

#[test]
fn line_filters_select_lines() {
    assert_eq!(
        lines(&logs(r#"{app="api"} |= "GET" != "health""#)),
        [
            r#"{app="api", env="dev"} +120 "#.to_owned() + C2,
            r#"{app="api", env="prod"} +30 level=info method=GET path=/api/users status=200 took=12ms size=1.2KB client=10.0.0.5"#.to_owned(),
            r#"{app="api", env="prod"} +150 level=error method=GET path=/api/orders status=500 took=1.2s size=0B client=192.168.1.9 msg="db timeout""#.to_owned(),
            r#"{app="api", env="prod"} +210 level=info method=GET path=/api/orders status=200 took=30ms size=2KB client=10.0.0.5"#.to_owned(),
            r#"{app="api", env="prod"} +330 level=error method=GET path=/api/orders status=503 took=bad size=10B client=10.0.0.7 msg="upstream down""#.to_owned(),
        ]
    );
    let count = |query: &str| lines(&logs(query)).len();
    assert_eq!(count(r#"{app="api"} |~ "(?i)error""#), 3);
    assert_eq!(count(r#"{app="api"} !~ "status=[45]\\d\\d""#), 6);
    assert_eq!(count(r#"{app="api"} |= "DELETE" or "POST""#), 2);
    assert_eq!(count(r#"{app="api"} != "GET" or "POST""#), 1);
    assert_eq!(count(r#"{app="api", env="dev"} |> "<_> GET /health <_>""#), 2);
    assert_eq!(count(r#"{app="api", env="dev"} !> "<_> GET /health <_>""#), 1);
    assert_eq!(count(r#"{app="api"} |= ip("10.1.2.0/24")"#), 2);
    assert_eq!(count(r#"{app="api"} != ip("10.0.0.0/8")"#), 3);
}

// Log queries: parsers, with error handling.

#[test]
fn json_flattens_and_marks_errors() {
    let result = logs(r#"{app="jarvis", env="prod"} | json | error_kind="syntax""#);
    assert_eq!(result.len(), 1);
    let entry = &result[0].entries[0];
    assert_eq!(entry.timestamp_ns, at(3, 0));
    assert_eq!(
        entry.parsed,
        pairs(&[
            ("agent", "coder"),
            ("error_kind", "syntax"),
            ("error_line", "12"),
            ("latency", "2s"),
            ("level", "error"),
            ("msg", "compile failed"),
            ("run_id", "r1"),
            ("session_id", "s1"),
            ("tokens", "50"),
        ])
    );

    let dev = logs(r#"{app="jarvis", env="dev"} | json"#);
    assert_eq!(dev.len(), 1);
    assert_eq!(dev[0].labels.to_string(), r#"{app="jarvis", env="dev"}"#);
    let entries = &dev[0].entries;
    // The metadata's run_id takes the name, the JSON field is renamed.
    assert_eq!(
        entries[0].parsed,
        pairs(&[
            ("level_extracted", "debug"),
            ("msg", "tick"),
            ("run_id_extracted", "r3")
        ])
    );
    assert_eq!(
        entries[0].structured_metadata,
        pairs(&[("level", "debug"), ("run_id", "r3"), ("trace_id", "t1")])
    );
    assert_eq!(
        entries[1].parsed,
        pairs(&[
            ("__error__", "JSONParserErr"),
            (
                "__error_details__",
                "Value looks like object, but can't find closing '}' symbol"
            ),
        ])
    );
    // Metadata clashing with a stream label, JSON clashing with a stream label.
    assert_eq!(
        entries[2].structured_metadata,
        pairs(&[("env_extracted", "meta"), ("trace_id", "t3")])
    );
    assert_eq!(
        entries[2].parsed,
        pairs(&[("app_extracted", "shadow"), ("level", "info"), ("msg", "tock")])
    );

    let count = |query: &str| lines(&logs(query)).len();
    assert_eq!(count(r#"{app="jarvis", env="dev"} | json | __error__="""#), 2);
    assert_eq!(count(r#"{app="jarvis", env="dev"} | json | __error__!="""#), 1);
    assert_eq!(
        count(r#"{app="jarvis", env="dev"} | json | __error__="JSONParserErr""#),
        1
    );
    let dropped = logs(r#"{app="jarvis", env="dev"} | json | drop __error__, __error_details__"#);
    assert!(
        dropped[0]
            .entries
            .iter()
            .all(|entry| !entry.parsed.iter().any(|(name, _)| name.starts_with("__")))
    );
}

#[test]
fn json_with_paths_sets_missing_ones_empty() {
    let result =
        logs(r#"{app="jarvis", env="prod"} | json lvl="level", kind="error.kind", first_agent="agent""#);
    let entries = &result[0].entries;
    assert_eq!(
        entries[2].parsed,
        pairs(&[("first_agent", "coder"), ("kind", "syntax"), ("lvl", "error")])
    );
    assert_eq!(
        entries[0].parsed,
        pairs(&[("first_agent", "planner"), ("kind", ""), ("lvl", "info")])
    );
}

#[test]
fn logfmt_strict_and_keep_empty() {
    let result = logs(r#"{app="api", env="prod"} | logfmt | status >= 500"#);
    assert_eq!(result[0].entries.len(), 2);
    assert_eq!(
        result[0].entries[0].parsed,
        pairs(&[
            ("client", "192.168.1.9"),
            ("level", "error"),
            ("method", "GET"),
            ("msg", "db timeout"),
            ("path", "/api/orders"),
            ("size", "0B"),
            ("status", "500"),
            ("took", "1.2s"),
        ])
    );
    let fixture = Fixture {
        entries: vec![entry(
            &stream(&[("app", "x")]),
            at(1, 0),
            r#"a=1 b= c"d=2 e=3"#,
            &[],
        )],
        asked: Mutex::new(Vec::new()),
        broken: false,
    };
    let parsed = |query: &str| {
        log_range(&fixture, query, T0, at(10, 0), Direction::Forward, 10)[0].entries[0]
            .parsed
            .clone()
    };
    assert_eq!(parsed(r#"{app="x"} | logfmt"#), pairs(&[("a", "1"), ("e", "3")]));
    assert_eq!(
        parsed(r#"{app="x"} | logfmt --keep-empty"#),
        pairs(&[("a", "1"), ("b", ""), ("e", "3")])
    );
    assert_eq!(
        parsed(r#"{app="x"} | logfmt --strict"#),
        pairs(&[
            ("__error__", "LogfmtParserErr"),
            (
                "__error_details__",
                "logfmt syntax error at pos 9 : unexpected '\"'"
            ),
            ("a", "1"),
        ])
    );
    assert_eq!(
        parsed(r#"{app="x"} | logfmt first="a", third="e""#),
        pairs(&[("first", "1"), ("third", "3")])
    );
}

#[test]
fn regexp_pattern_and_decolorize() {
    let result = logs(
        r#"{app="api", env="dev"} | decolorize | regexp "(?P<level>\\w+) (?P<method>GET|POST) (?P<path>\\S+) (?P<status>\\d+)" | status="500""#,
    );
    let entry = &result[0].entries[0];
    assert_eq!(entry.line, "ERROR GET /login 500 from 10.1.2.4");
    assert_eq!(
        entry.parsed,
        pairs(&[
            ("level", "ERROR"),
            ("method", "GET"),
            ("path", "/login"),
            ("status", "500")
        ])
    );
    let patterned =
        logs(r#"{app="api", env="dev"} | pattern "<_> <method> <path> <status> from <ip>" | ip="8.8.8.8""#);
    assert_eq!(
        patterned[0].entries[0].parsed,
        pairs(&[
            ("ip", "8.8.8.8"),
            ("method", "GET"),
            ("path", "/health"),
            ("status", "200")
        ])
    );
}

#[test]
fn unpack_restores_packed_lines() {
    let result = logs(r#"{app="packer"} | unpack | logfmt"#);
    let entries = &result[0].entries;
    assert_eq!(entries[0].line, "original message one");
    assert_eq!(entries[0].parsed, pairs(&[("container", "c1"), ("pod", "p1")]));
    assert_eq!(entries[1].line, r#"level=error msg="packed failure""#);
    assert_eq!(
        entries[1].parsed,
        pairs(&[("container", "c2"), ("level", "error"), ("msg", "packed failure")])
    );
}

// Log queries: label filters.

#[test]
fn typed_label_filters() {
    let count = |query: &str| lines(&logs(query)).len();
    assert_eq!(count(r#"{app="api", env="prod"} | logfmt | size > 1KB"#), 2);
    assert_eq!(count(r#"{app="api", env="prod"} | logfmt | size <= 300B"#), 4);
    assert_eq!(
        count(r#"{app="api", env="prod"} | logfmt | client = ip("10.0.0.0/8")"#),
        4
    );
    assert_eq!(
        count(r#"{app="api", env="prod"} | logfmt | client != ip("10.0.0.0/8")"#),
        2
    );
    assert_eq!(
        count(r#"{app="api", env="prod"} | logfmt | status >= 400 and method="GET""#),
        2
    );
    assert_eq!(
        count(r#"{app="api", env="prod"} | logfmt | status == 404 or method="POST""#),
        2
    );
    assert_eq!(
        count(r#"{app="api", env="prod"} | logfmt | path=~"/api/users.*", level!="warn""#),
        2
    );
    // A duration that does not parse keeps the line, flagged.
    let slow = logs(r#"{app="api", env="prod"} | logfmt | took > 100ms"#);
    let slow = &slow[0].entries;
    assert_eq!(slow.len(), 2);
    assert_eq!(slow[0].timestamp_ns, at(2, 30));
    assert!(!slow[0].parsed.iter().any(|(name, _)| name == "__error__"));
    assert!(
        slow[1]
            .parsed
            .contains(&("__error__".to_owned(), "LabelFilterErr".to_owned()))
    );
    assert!(slow[1].parsed.contains(&(
        "__error_details__".to_owned(),
        r#"time: invalid duration "bad""#.to_owned()
    )));
    assert_eq!(
        count(r#"{app="api", env="prod"} | logfmt | took > 100ms | __error__="""#),
        1
    );
}

// Log queries: formatting stages.

#[test]
fn line_format_label_format_drop_keep() {
    let formatted = logs(
        r#"{app="jarvis", env="prod"} | json | run_id="r2" | line_format "{{.agent}}: {{.msg | upper}} ({{.latency | duration}}s)""#,
    );
    assert_eq!(
        formatted[0]
            .entries
            .iter()
            .map(|entry| entry.line.as_str())
            .collect::<Vec<_>>(),
        [
            "planner: PLAN CREATED (0.3s)",
            "reviewer: SLOW REVIEW (5s)",
            "coder: DONE (0.8s)"
        ]
    );

    let relabelled = logs(
        r#"{app="jarvis", env="prod"} | json | label_format who=agent, summary="{{.run_id}}/{{.level}}" | keep who, summary"#,
    );
    assert_eq!(relabelled.len(), 1);
    assert!(relabelled[0].labels.is_empty());
    assert_eq!(
        relabelled[0].entries[0].parsed,
        pairs(&[("summary", "r1/info"), ("who", "planner")])
    );

    let dropped = logs(r#"{app="jarvis", env="prod"} | json | drop msg, latency, tokens, env, level="info""#);
    assert_eq!(dropped[0].labels.to_string(), r#"{app="jarvis"}"#);
    assert_eq!(
        dropped[0].entries[2].parsed,
        pairs(&[
            ("agent", "coder"),
            ("error_kind", "syntax"),
            ("error_line", "12"),
            ("level", "error"),
            ("run_id", "r1"),
            ("session_id", "s1"),
        ])
    );
    assert!(
        !dropped[0].entries[0]
            .parsed
            .iter()
            .any(|(name, _)| name == "level")
    );

    let broken = logs(r#"{app="api", env="dev"} | line_format "{{ div 1 0 }}""#);
    let entry = &broken[0].entries[0];
    assert_eq!(entry.line, C1);
    assert!(
        entry
            .parsed
            .contains(&("__error__".to_owned(), "TemplateFormatErr".to_owned()))
    );
}

// Log queries: direction, limit, interval, time bounds.

#[test]
fn direction_limit_and_bounds() {
    let fixture = Fixture::new();
    let newest = log_range(
        &fixture,
        r#"{app="api"} |= "GET""#,
        T0,
        at(10, 0),
        Direction::Backward,
        2,
    );
    assert_eq!(newest.len(), 1);
    assert_eq!(
        newest[0]
            .entries
            .iter()
            .map(|entry| (entry.timestamp_ns - T0) / SEC)
            .collect::<Vec<_>>(),
        [330, 210]
    );
    let oldest = log_range(
        &fixture,
        r#"{app=~"api|jarvis"}"#,
        T0,
        at(10, 0),
        Direction::Forward,
        3,
    );
    assert_eq!(
        lines(&oldest)
            .iter()
            .map(|line| line
                .split(" +")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_owned())
            .collect::<Vec<_>>(),
        ["60", "30", "60"],
        "streams sorted by labels, entries in time order"
    );
    // The end of a log query is exclusive.
    let until_three = log_range(
        &fixture,
        r#"{app="api", env="dev"}"#,
        T0,
        at(3, 0),
        Direction::Forward,
        100,
    );
    assert_eq!(until_three[0].entries.len(), 2);
    // interval: entries at least two minutes apart.
    let params = RangeParams {
        start_ns: T0,
        end_ns: at(10, 0),
        step_ns: MIN,
        interval_ns: Some(2 * MIN),
        direction: Direction::Forward,
        limit: 100,
    };
    let QueryValue::Streams(spaced) = engine()
        .query_range(&fixture, &parse(r#"{app="api", env="prod"}"#), &params)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        spaced[0]
            .entries
            .iter()
            .map(|entry| (entry.timestamp_ns - T0) / SEC)
            .collect::<Vec<_>>(),
        [30, 150, 270]
    );
    // An instant log query reads the 30 s before its time, end excluded.
    let QueryValue::Streams(instant) = instant_at(r#"{app=~"api|jarvis"}"#, at(3, 0)).unwrap() else {
        panic!()
    };
    assert_eq!(
        lines(&instant)
            .iter()
            .map(|line| line.split(" +").next().unwrap().to_owned())
            .collect::<Vec<_>>(),
        [r#"{app="api", env="prod"}"#, r#"{app="jarvis", env="dev"}"#]
    );
}

#[test]
fn limits_and_failures() {
    let fixture = Fixture::new();
    let too_many = RangeParams {
        start_ns: T0,
        end_ns: at(10, 0),
        step_ns: MIN,
        interval_ns: None,
        direction: Direction::Backward,
        limit: 5001,
    };
    let error = engine()
        .query_range(&fixture, &parse(r#"{app="api"}"#), &too_many)
        .unwrap_err();
    assert_eq!(
        error,
        EngineError::LimitExceeded(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query (5001 > 5000)"
                .to_owned()
        )
    );
    assert_eq!(error.kind(), ErrorKind::BadInput);

    let narrow = Engine::new(EngineOptions {
        max_series: 2,
        ..EngineOptions::default()
    });
    let params = RangeParams {
        start_ns: at(5, 0),
        end_ns: at(10, 0),
        step_ns: MIN,
        interval_ns: None,
        direction: Direction::Backward,
        limit: 100,
    };
    let error = narrow
        .query_range(
            &fixture,
            &parse(r#"count_over_time({app=~"api|jarvis"}[10m])"#),
            &params,
        )
        .unwrap_err();
    assert!(
        matches!(&error, EngineError::LimitExceeded(message) if message.starts_with("maximum number of series (2) reached")),
        "{error}"
    );

    let error = range(r#"count_over_time({app="api"}[1m])"#, T0, at(10, 0), 0).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("zero or negative query resolution step widths"),
        "{error}"
    );
    let error = range(r#"count_over_time({app="api"}[1m])"#, T0, T0 + 20_000 * SEC, SEC).unwrap_err();
    assert_eq!(
        error.to_string(),
        "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"
    );
    let error = range(r#"count_over_time({app="api"}[1m])"#, at(5, 0), T0, MIN).unwrap_err();
    assert!(matches!(error, EngineError::BadQuery(_)));

    let hurried = Engine::new(EngineOptions {
        timeout: Duration::ZERO,
        ..EngineOptions::default()
    });
    let error = hurried
        .query_range(&fixture, &parse(r#"count_over_time({app="api"}[1m])"#), &params)
        .unwrap_err();
    assert_eq!(error, EngineError::Timeout);
    assert_eq!(error.kind(), ErrorKind::Timeout);

    let broken = Fixture {
        broken: true,
        ..Fixture::new()
    };
    let error = engine()
        .query_range(&broken, &parse(r#"{app="api"}"#), &params)
        .unwrap_err();
    assert_eq!(error, EngineError::Source("disk on fire".to_owned()));
    assert_eq!(error.kind(), ErrorKind::Internal);

    let error = range(r#"{app="api"} | line_format "{{ .a ""#, T0, at(1, 0), MIN).unwrap_err();
    assert!(error.to_string().starts_with("invalid line template"), "{error}");
}

// Metric queries: range aggregations.

#[test]
fn windows_exclude_their_start_and_include_their_end() {
    let value = range(
        r#"count_over_time({app="jarvis", env="prod"}[2m])"#,
        at(2, 0),
        at(6, 0),
        2 * MIN,
    )
    .unwrap();
    assert_eq!(matrix(value), [r#"{app="jarvis", env="prod"} 120:2 240:2 360:2"#]);
    // Steps with no line in their window have no point.
    let sparse = range(
        r#"count_over_time({app="api", env="dev"}[30s])"#,
        at(0, 0),
        at(4, 0),
        MIN,
    )
    .unwrap();
    assert_eq!(matrix(sparse), [r#"{app="api", env="dev"} 60:1 120:1 180:1"#]);
    // offset moves the window back.
    assert_eq!(
        vector(r#"count_over_time({app="jarvis", env="prod"}[2m] offset 6m)"#),
        [r#"{app="jarvis", env="prod"} 2"#]
    );
}

#[test]
fn line_range_aggregations() {
    // Structured metadata are labels of the samples: they split a stream into series.
    assert_eq!(
        vector(r#"count_over_time({app=~"api|jarvis"}[10m])"#),
        [
            r#"{app="api", env="dev"} 3"#,
            r#"{app="api", env="prod"} 6"#,
            r#"{app="jarvis", env="dev", env_extracted="meta", trace_id="t3"} 1"#,
            r#"{app="jarvis", env="dev", level="debug", run_id="r3", trace_id="t1"} 1"#,
            r#"{app="jarvis", env="dev", level="error", trace_id="t2"} 1"#,
            r#"{app="jarvis", env="prod"} 6"#,
        ]
    );
    assert_eq!(
        vector(r#"count_over_time({app=~"api|jarvis"} | keep app, env [10m])"#),
        [
            r#"{app="api", env="dev"} 3"#,
            r#"{app="api", env="prod"} 6"#,
            r#"{app="jarvis", env="dev"} 3"#,
            r#"{app="jarvis", env="prod"} 6"#,
        ]
    );
    assert_close(&vector(r#"rate({app="api", env="dev"}[10m])"#)[0], 3.0 / 600.0);
    let raw = (C1.len() + C2.len() + C3.len()) as f64;
    assert_close(&vector(r#"bytes_over_time({app="api", env="dev"}[10m])"#)[0], raw);
    assert_close(
        &vector(r#"bytes_rate({app="api", env="dev"}[10m])"#)[0],
        raw / 600.0,
    );
    // Bytes are those of the line after the pipeline.
    let plain = ("INFO GET /health 200 from 10.1.2.3".len()
        + "ERROR GET /login 500 from 10.1.2.4".len()
        + C3.len()) as f64;
    assert_close(
        &vector(r#"bytes_over_time({app="api", env="dev"} | decolorize [10m])"#)[0],
        plain,
    );
    // Lines dropped by filters are not counted.
    assert_eq!(
        vector(r#"count_over_time({app="api", env="prod"} | logfmt | status >= 500 [10m])"#).len(),
        2,
        "one series per distinct label set"
    );
    assert_eq!(
        vector(r#"sum(count_over_time({app="api", env="prod"} | logfmt | status >= 500 [10m]))"#),
        ["{} 2"]
    );
}

#[test]
fn absent_over_time_reports_missing_streams() {
    assert_eq!(
        vector(r#"absent_over_time({app="nope", env=~"x|y"}[5m])"#),
        [r#"{app="nope"} 1"#]
    );
    assert!(vector(r#"absent_over_time({app="api"}[10m])"#).is_empty());
    let value = range(
        r#"absent_over_time({app="api", env="dev"}[1m])"#,
        at(2, 0),
        at(5, 0),
        MIN,
    )
    .unwrap();
    assert_eq!(matrix(value), [r#"{app="api", env="dev"} 240:1 300:1"#]);
}

#[test]
fn unwrapped_range_aggregations() {
    let by_run = |function: &str| {
        vector(&format!(
            r#"{function}({{app="jarvis", env="prod"}} | json | unwrap tokens | __error__="" [10m]) by (run_id)"#
        ))
    };
    // sum_over_time takes no grouping of its own (Loki's rule); a sum around it does.
    assert_eq!(
        vector(
            r#"sum by (run_id) (sum_over_time({app="jarvis", env="prod"} | json | unwrap tokens | __error__="" [10m]))"#
        ),
        [r#"{run_id="r1"} 450"#, r#"{run_id="r2"} 280"#]
    );
    assert_eq!(
        by_run("avg_over_time"),
        [r#"{run_id="r1"} 150"#, r#"{run_id="r2"} 140"#]
    );
    assert_eq!(
        by_run("min_over_time"),
        [r#"{run_id="r1"} 50"#, r#"{run_id="r2"} 80"#]
    );
    assert_eq!(
        by_run("max_over_time"),
        [r#"{run_id="r1"} 300"#, r#"{run_id="r2"} 200"#]
    );
    assert_eq!(
        by_run("first_over_time"),
        [r#"{run_id="r1"} 100"#, r#"{run_id="r2"} 80"#]
    );
    assert_eq!(
        by_run("last_over_time"),
        [r#"{run_id="r1"} 50"#, r#"{run_id="r2"} 200"#]
    );
    let stdvar = by_run("stdvar_over_time");
    assert_close(&stdvar[0], 35_000.0 / 3.0);
    assert_close(&stdvar[1], 3600.0);
    let stddev = by_run("stddev_over_time");
    assert_close(&stddev[0], (35_000.0f64 / 3.0).sqrt());
    assert_close(&stddev[1], 60.0);
    assert_eq!(
        vector(
            r#"quantile_over_time(0.5, {app="jarvis", env="prod"} | json | unwrap tokens | __error__="" [10m]) by (run_id)"#
        ),
        [r#"{run_id="r1"} 100"#, r#"{run_id="r2"} 140"#]
    );
    // Conversions.
    assert_eq!(
        vector(
            r#"max_over_time({app="jarvis", env="prod"} | json | unwrap duration(latency) [10m]) by (agent)"#
        ),
        [
            r#"{agent="coder"} 2"#,
            r#"{agent="planner"} 0.3"#,
            r#"{agent="reviewer"} 5"#
        ]
    );
    assert_eq!(
        vector(
            r#"sum by (method) (sum_over_time({app="api", env="prod"} | logfmt | unwrap bytes(size) [10m]))"#
        ),
        [
            r#"{method="DELETE"} 0"#,
            r#"{method="GET"} 3210"#,
            r#"{method="POST"} 300"#
        ]
    );
    assert_close(
        &vector(r#"sum(rate({app="api", env="prod"} | logfmt | unwrap bytes(size) [10m]))"#)[0],
        3510.0 / 600.0,
    );
    // A counter: 10, 20, 30 at 1m, 2m, 3m; Prometheus-style extrapolation to the window.
    let QueryValue::Vector(counter) = instant_at(
        r#"rate_counter({app="counter"} | logfmt | unwrap total [3m])"#,
        at(3, 0),
    )
    .unwrap() else {
        panic!()
    };
    assert!((counter[0].value - 30.0 / 180.0).abs() < 1e-12, "{counter:?}");
    // Without grouping, the unwrapped label leaves the series labels.
    assert_eq!(
        vector(r#"sum_over_time({app="counter"} | logfmt | unwrap total [10m])"#),
        [r#"{app="counter"} 60"#]
    );
}

#[test]
fn conversion_errors_fail_unless_filtered() {
    let error = instant_at(
        r#"sum_over_time({app="jarvis", env="prod"} | json | unwrap tokens [10m])"#,
        at(10, 0),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("pipeline error: 'SampleExtractionErr' for series: '{"),
        "{message}"
    );
    assert!(
        message.contains(r#"__error_details__="strconv.ParseFloat: parsing \"n/a\": invalid syntax""#),
        "{message}"
    );
    assert!(
        message.contains("Use a label filter to intentionally skip this error"),
        "{message}"
    );
    assert_eq!(error.kind(), ErrorKind::BadInput);
    assert_eq!(
        vector(
            r#"sum(sum_over_time({app="jarvis", env="prod"} | json | unwrap tokens | __error__!="SampleExtractionErr" [10m]))"#
        ),
        ["{} 730"]
    );
    // Errors outside every window do not count.
    let QueryValue::Vector(before) = instant_at(
        r#"sum(sum_over_time({app="jarvis", env="prod"} | json | unwrap tokens [2m]))"#,
        at(4, 0),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(before[0].value, 130.0);
    // A parser error fails a metric query that keeps labels...
    assert!(instant_at(r#"count_over_time({app="jarvis"} | json [10m])"#, at(10, 0)).is_err());
    // ...but not one that needs none: Loki does not even parse then.
    assert_eq!(
        vector(r#"sum(count_over_time({app="jarvis"} | json [10m]))"#),
        ["{} 9"]
    );
    // Grouping by __error__ keeps parser errors as series.
    assert_eq!(
        vector(r#"sum by (__error__) (count_over_time({app="jarvis"} | json [10m]))"#),
        ["{} 8", r#"{__error__="JSONParserErr"} 1"#]
    );
    assert_eq!(
        vector(r#"sum by (level) (count_over_time({app="jarvis"} | json | __error__="" [10m]))"#),
        [
            r#"{level="debug"} 1"#,
            r#"{level="error"} 1"#,
            r#"{level="info"} 5"#,
            r#"{level="warn"} 1"#,
        ]
    );
}

#[test]
fn grafana_logs_volume_query() {
    let value = range(
        r#"sum by (level, detected_level) (count_over_time({app="jarvis", env="dev"} | drop __error__ [1m]))"#,
        T0,
        at(4, 0),
        MIN,
    )
    .unwrap();
    assert_eq!(
        matrix(value),
        ["{} 240:1", r#"{level="debug"} 120:1"#, r#"{level="error"} 180:1"#]
    );
}

#[test]
fn queries_over_hours() {
    let per_session = range(
        r#"sum by (session_id) (count_over_time({app="jarvis", env="prod"} | json [1h]))"#,
        at(60, 0),
        at(180, 0),
        60 * MIN,
    )
    .unwrap();
    assert_eq!(
        matrix(per_session),
        [
            r#"{session_id="s1"} 3600:3"#,
            r#"{session_id="s2"} 3600:3"#,
            r#"{session_id="s3"} 3600:1 7200:1 10800:1"#,
        ]
    );
    let errors = range(
        r#"sum by (agent) (count_over_time({app="jarvis", env="prod"} | json | level="error" [3h]))"#,
        at(180, 0),
        at(180, 0),
        MIN,
    )
    .unwrap();
    assert_eq!(
        matrix(errors),
        [r#"{agent="coder"} 10800:1"#, r#"{agent="scheduler"} 10800:1"#]
    );
    let QueryValue::Vector(longest) = instant_at(
        r#"max_over_time({app="jarvis", env="prod"} | json | unwrap duration_seconds(latency) [4h]) by (run_id)"#,
        at(240, 0),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        longest.iter().map(|sample| sample.value).collect::<Vec<_>>(),
        [2.0, 5.0, 90.0]
    );
    let newest = log_range(
        &Fixture::new(),
        r#"{app="jarvis", env="prod"} | json | session_id="s3""#,
        T0,
        at(240, 0),
        Direction::Backward,
        2,
    );
    assert_eq!(
        newest[0]
            .entries
            .iter()
            .map(|entry| entry.line.contains("failed"))
            .collect::<Vec<_>>(),
        [true, false]
    );
}

// Metric queries: vector aggregations.

#[test]
fn vector_aggregations() {
    let streams = r#"count_over_time({app=~"api|jarvis"} | keep app, env [10m])"#;
    let at_ten = |aggregation: &str| vector(&aggregation.replace("X", streams));
    assert_eq!(
        at_ten("sum by (app) (X)"),
        [r#"{app="api"} 9"#, r#"{app="jarvis"} 9"#]
    );
    assert_eq!(
        at_ten("sum without (env) (X)"),
        [r#"{app="api"} 9"#, r#"{app="jarvis"} 9"#]
    );
    assert_eq!(
        at_ten("sum(X) by (app)"),
        [r#"{app="api"} 9"#, r#"{app="jarvis"} 9"#]
    );
    assert_eq!(
        at_ten("avg by (env) (X)"),
        [r#"{env="dev"} 3"#, r#"{env="prod"} 6"#]
    );
    assert_eq!(
        at_ten("max by (app) (X)"),
        [r#"{app="api"} 6"#, r#"{app="jarvis"} 6"#]
    );
    assert_eq!(
        at_ten("min by (env) (X)"),
        [r#"{env="dev"} 3"#, r#"{env="prod"} 6"#]
    );
    assert_eq!(
        at_ten("count by (app) (X)"),
        [r#"{app="api"} 2"#, r#"{app="jarvis"} 2"#]
    );
    assert_eq!(at_ten("count(X)"), ["{} 4"]);
    assert_eq!(at_ten("stddev(X)"), ["{} 1.5"]);
    assert_eq!(at_ten("stdvar(X)"), ["{} 2.25"]);
    // Ties resolve by labels; instant results come back sorted by labels.
    assert_eq!(at_ten("topk(1, X)"), [r#"{app="api", env="prod"} 6"#]);
    assert_eq!(
        at_ten("topk by (app) (1, X)"),
        [r#"{app="api", env="prod"} 6"#, r#"{app="jarvis", env="prod"} 6"#]
    );
    assert_eq!(at_ten("bottomk(1, X)"), [r#"{app="api", env="dev"} 3"#]);
    assert_eq!(at_ten("approx_topk(1, X)"), [r#"{app="api", env="prod"} 6"#]);
    // sort and sort_desc keep their order in an instant result.
    assert_eq!(
        at_ten("sort_desc(X)"),
        [
            r#"{app="api", env="prod"} 6"#,
            r#"{app="jarvis", env="prod"} 6"#,
            r#"{app="api", env="dev"} 3"#,
            r#"{app="jarvis", env="dev"} 3"#,
        ]
    );
    assert_eq!(
        at_ten("sort(X)"),
        [
            r#"{app="api", env="dev"} 3"#,
            r#"{app="jarvis", env="dev"} 3"#,
            r#"{app="api", env="prod"} 6"#,
            r#"{app="jarvis", env="prod"} 6"#,
        ]
    );
}

// Metric queries: binary operations, vector matching, label_replace, vector().

#[test]
fn grafana_health_check() {
    let QueryValue::Vector(samples) = instant_at("vector(1)+vector(1)", 4 * SEC).unwrap() else {
        panic!()
    };
    assert_eq!(samples.len(), 1);
    assert!(samples[0].labels.is_empty());
    assert_eq!(samples[0].value, 2.0);
    assert_eq!(samples[0].timestamp_ms, 4000);
    assert_eq!(
        instant_at("1 + 1", 4 * SEC).unwrap(),
        QueryValue::Scalar {
            timestamp_ns: 4 * SEC,
            value: 2.0
        }
    );
    assert_eq!(vector("vector(3)"), ["{} 3"]);
    assert_eq!(
        matrix(range("vector(2) * 2", T0, at(2, 0), MIN).unwrap()),
        ["{} 0:4 60:4 120:4"]
    );
    assert_eq!(matrix(range("2", T0, at(1, 0), MIN).unwrap()), ["{} 0:2 60:2"]);
}

#[test]
fn scalar_binary_operations() {
    let total = r#"sum(count_over_time({app="api"}[10m]))"#;
    assert_eq!(vector(&format!("{total} * 2")), ["{} 18"]);
    assert_eq!(vector(&format!("2 * {total}")), ["{} 18"]);
    assert_eq!(vector(&format!("{total} - 10")), ["{} -1"]);
    assert_eq!(vector(&format!("10 - {total}")), ["{} 1"]);
    assert_eq!(vector(&format!("{total} / 0")), ["{} NaN"]);
    assert_eq!(vector(&format!("{total} % 4")), ["{} 1"]);
    assert_eq!(vector(&format!("{total} ^ 2")), ["{} 81"]);
    assert!(vector(&format!("{total} > 10")).is_empty());
    assert_eq!(vector(&format!("{total} > 5")), ["{} 9"]);
    assert_eq!(vector(&format!("5 < {total}")), ["{} 9"]);
    assert_eq!(vector(&format!("{total} > bool 10")), ["{} 0"]);
    assert_eq!(vector(&format!("{total} == bool 9")), ["{} 1"]);
}

#[test]
fn vector_matching() {
    let api = r#"count_over_time({app="api"}[10m])"#;
    let jarvis = r#"count_over_time({app="jarvis"} | keep app, env [10m])"#;
    let both = r#"count_over_time({app=~"api|jarvis"} | keep app, env [10m])"#;
    assert_eq!(
        vector(&format!("{api} / on(env) {jarvis}")),
        [r#"{env="dev"} 1"#, r#"{env="prod"} 1"#]
    );
    assert_eq!(
        vector(&format!("{api} - ignoring(app) {jarvis}")),
        [r#"{env="dev"} 0"#, r#"{env="prod"} 0"#]
    );
    // Identical label sets are needed without on/ignoring: here none match.
    assert!(vector(&format!("{api} + {jarvis}")).is_empty());
    assert_eq!(
        vector(&format!("{both} / on(env) group_left sum by (env) ({both})")),
        [
            r#"{app="api", env="dev"} 0.5"#,
            r#"{app="api", env="prod"} 0.5"#,
            r#"{app="jarvis", env="dev"} 0.5"#,
            r#"{app="jarvis", env="prod"} 0.5"#,
        ]
    );
    let owners = format!(r#"label_replace(sum by (env) ({api}), "owner", "team-$1", "env", "(.*)")"#);
    let per_app = format!("sum by (env, app) ({both})");
    let expected = [
        r#"{app="api", env="dev", owner="team-dev"} 1"#,
        r#"{app="api", env="prod", owner="team-prod"} 1"#,
        r#"{app="jarvis", env="dev", owner="team-dev"} 1"#,
        r#"{app="jarvis", env="prod", owner="team-prod"} 1"#,
    ];
    assert_eq!(
        vector(&format!("{per_app} / on(env) group_left(owner) {owners}")),
        expected
    );
    assert_eq!(
        vector(&format!("{owners} / on(env) group_right(owner) {per_app}")),
        expected
    );
    // Comparisons filter, or answer 0/1 with bool.
    let jarvis_dev = r#"count_over_time({app="jarvis", env="dev"} | keep app, env [10m])"#;
    assert!(vector(&format!("{api} > on(env) {jarvis_dev}")).is_empty());
    assert_eq!(
        vector(&format!("{api} >= bool on(env) {jarvis_dev}")),
        [r#"{env="dev"} 1"#]
    );
    assert_eq!(
        vector(&format!("{both} > on(app, env) {api}")),
        Vec::<String>::new()
    );
    assert_eq!(
        vector(&format!("{both} >= on(app, env) {api}")),
        [r#"{app="api", env="dev"} 3"#, r#"{app="api", env="prod"} 6"#]
    );
    // Set operators.
    assert_eq!(vector(&format!("{both} and on(app) {api}")).len(), 2);
    assert_eq!(
        vector(&format!("{both} unless on(app) {api}")),
        [
            r#"{app="jarvis", env="dev"} 3"#,
            r#"{app="jarvis", env="prod"} 6"#
        ]
    );
    assert_eq!(vector(&format!("{api} or {jarvis}")).len(), 4);
    // Many-to-one needs group_left.
    let error = instant_at(&format!("{both} + on(env) {api}"), at(10, 0)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
    let error = instant_at(&format!("{api} + on(env) {both}"), at(10, 0)).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("found duplicate series on the right hand-side"),
        "{error}"
    );
}

#[test]
fn label_replace_rewrites_labels() {
    let dev = r#"count_over_time({app="api", env="dev"}[10m])"#;
    assert_eq!(
        vector(&format!(
            r#"label_replace({dev}, "svc", "$1-svc", "app", "(.*)")"#
        )),
        [r#"{app="api", env="dev", svc="api-svc"} 3"#]
    );
    assert_eq!(
        vector(&format!(
            r#"label_replace({dev}, "svc", "$1", "app", "nomatch(.*)")"#
        )),
        [r#"{app="api", env="dev"} 3"#]
    );
    assert_eq!(
        vector(&format!(r#"label_replace({dev}, "env", "", "app", ".*")"#)),
        [r#"{app="api"} 3"#]
    );
    assert_eq!(
        vector(&format!(
            r#"label_replace({dev}, "short", "${{1}}", "env", "(?P<first>d).*")"#
        )),
        [r#"{app="api", env="dev", short="d"} 3"#]
    );
}

// What the source is asked.

#[test]
fn pushdown_narrows_the_source_soundly() {
    let fixture = Fixture::new();
    let result = log_range(
        &fixture,
        r#"{app="jarvis"} |= "plan" | json | run_id="r1""#,
        T0,
        at(10, 0),
        Direction::Backward,
        100,
    );
    assert_eq!(lines(&result).len(), 1);
    assert_eq!(
        fixture.asked(),
        [Recorded {
            start_ns: T0,
            end_ns: at(10, 0),
            line_contains: vec!["plan".to_owned()],
            keys: vec![("run_id".to_owned(), "r1".to_owned())],
            direction: Direction::Backward,
        }]
    );

    // A regexp before the filter may produce the label: no key is pushed, and the result is
    // complete (the run id is only in the message here).
    let fixture = Fixture {
        entries: vec![
            entry(
                &stream(&[("app", "agent")]),
                at(1, 0),
                "started run r1 for user",
                &[],
            ),
            entry(
                &stream(&[("app", "agent")]),
                at(2, 0),
                "started run r2 for user",
                &[],
            ),
        ],
        asked: Mutex::new(Vec::new()),
        broken: false,
    };
    let result = log_range(
        &fixture,
        r#"{app="agent"} | regexp "run (?P<run_id>r\\d)" | run_id="r1""#,
        T0,
        at(10, 0),
        Direction::Backward,
        100,
    );
    assert_eq!(lines(&result), [r#"{app="agent"} +60 started run r1 for user"#]);
    assert!(fixture.asked()[0].keys.is_empty());

    // Metric queries read their range once, forward, over the whole span.
    let fixture = Fixture::new();
    let params = RangeParams {
        start_ns: at(2, 0),
        end_ns: at(6, 0),
        step_ns: MIN,
        interval_ns: None,
        direction: Direction::Backward,
        limit: 100,
    };
    let value = engine()
        .query_range(
            &fixture,
            &parse(r#"sum(count_over_time({app="jarvis"} | json | session_id="s2" [2m] offset 1m))"#),
            &params,
        )
        .unwrap();
    assert_eq!(matrix(value), ["{} 300:1 360:2"]);
    assert_eq!(
        fixture.asked(),
        [Recorded {
            start_ns: at(2, 0) - 2 * MIN - MIN,
            end_ns: at(6, 0) - MIN + 1,
            line_contains: vec![],
            keys: vec![("session_id".to_owned(), "s2".to_owned())],
            direction: Direction::Forward,
        }]
    );
}

#[test]
fn nothing_panics_on_odd_queries() {
    for query in [
        r#"{app="api"} | json | line_format "{{ .a | int | div 0 }}""#,
        r#"{app="api"} | logfmt | unwrap_label > 1"#,
        r#"sum(rate({app="api"} | json | unwrap status | __error__="" [1m])) by (path) / 0"#,
        r#"topk(100, count_over_time({app=~".+"}[1m]))"#,
        r#"quantile_over_time(1.5, {app="api"} | logfmt | unwrap status [5m])"#,
        r#"{app="api"} | pattern "<a> <b>" | label_format c="{{ substr 5 1 .a }}""#,
        r#"{app="packer"} | json | unpack | unpack"#,
    ] {
        let _ = range(query, T0, at(10, 0), MIN);
        let _ = instant_at(query, at(10, 0));
    }
}
