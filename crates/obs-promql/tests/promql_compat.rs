//! Differential compatibility of the PromQL engine with Prometheus 2.42.
//!
//! `compat/queries.txt` lists the cases, `compat/dataset.rs` generates the data they query, and
//! `compat/golden.json` holds what a real Prometheus 2.42 answered to each case over that data.
//! [`engine_matches_prometheus_golden`] loads the same data into our store, runs every case
//! through [`Engine`] and compares the answers; it needs no server. The cases our engine is
//! known to answer differently are listed, each with its reason, in
//! `compat/known_differences.txt`; the test fails on any other difference, and on a listed
//! case that no longer differs.
//!
//! Re-record the golden file (after changing the queries or the data set) with a Prometheus
//! 2.42 binary at `$PROMETHEUS` or `/usr/bin/prometheus`:
//!
//! ```text
//! cargo test -p obs-promql --test promql_compat -- --ignored record_golden_from_prometheus
//! ```
//!
//! See `docs/compatibility.md`.
#![allow(clippy::unwrap_used)]

#[path = "compat/dataset.rs"]
mod dataset;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_core::error::{Classify, ErrorKind};
use obs_core::partition::DataLayout;
use obs_core::series::{Labels, SeriesSamples};
use obs_core::time::TimestampMs;
use obs_metrics::store::{MetricsOptions, MetricsStore};
use obs_promql::{Engine, EngineOptions, QueryError};
use serde_json::Value as Json;

use dataset::{END_MS, GeneratedSeries, T0_MS};

/// The command that re-records the golden file.
const RECORD_COMMAND: &str =
    "cargo test -p obs-promql --test promql_compat -- --ignored record_golden_from_prometheus";
/// The golden file must hold at least this many cases.
const MIN_CASES: usize = 500;
/// Relative tolerance of sample values.
const VALUE_TOLERANCE: f64 = 1e-9;

fn compat_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/compat")
        .join(file)
}

// ---------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------

/// One line of `queries.txt`: `instant <offset>\t<query>` or
/// `range <start offset> <end offset> <step>\t<query>`, offsets relative to `T0_MS`.
#[derive(Debug, Clone, PartialEq)]
struct Case {
    /// `instant` or `range`.
    kind: String,
    /// The offsets as written: `1h30m`, or `10m 2h 1m`.
    times: String,
    query: String,
}

/// A case's times resolved to milliseconds.
#[derive(Debug, Clone, Copy)]
enum Evaluation {
    Instant {
        time_ms: i64,
    },
    Range {
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    },
}

impl Case {
    fn parse_line(line: &str) -> Result<Case, String> {
        let (head, query) = line
            .split_once('\t')
            .ok_or_else(|| format!("no tab between the times and the query in {line:?}"))?;
        let (kind, times) = head
            .split_once(' ')
            .ok_or_else(|| format!("no times in {line:?}"))?;
        let case = Case {
            kind: kind.to_owned(),
            times: times.trim().to_owned(),
            query: query.to_owned(),
        };
        case.evaluation()?;
        Ok(case)
    }

    fn evaluation(&self) -> Result<Evaluation, String> {
        let offsets = self
            .times
            .split_whitespace()
            .map(parse_duration_ms)
            .collect::<Result<Vec<i64>, String>>()?;
        match (self.kind.as_str(), offsets.as_slice()) {
            ("instant", [offset]) => Ok(Evaluation::Instant {
                time_ms: T0_MS + offset,
            }),
            ("range", [start, end, step]) => Ok(Evaluation::Range {
                start_ms: T0_MS + start,
                end_ms: T0_MS + end,
                step_ms: *step,
            }),
            _ => Err(format!(
                "expected `instant <offset>` or `range <start> <end> <step>`, got `{} {}`",
                self.kind, self.times
            )),
        }
    }

    fn line(&self) -> String {
        format!("{} {}\t{}", self.kind, self.times, self.query)
    }
}

/// `1h30m`, `10m7s500ms`, `-5m`, `0s`: Prometheus' duration syntax without `y`/`w`.
fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let (sign, body) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    if body.is_empty() {
        return Err(format!("empty duration {text:?}"));
    }
    let mut total_ms = 0i64;
    let mut rest = body;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("bad duration {text:?}"));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration {text:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => return Err(format!("bad unit {other:?} in duration {text:?}")),
        };
        rest = &rest[unit_len..];
        total_ms += number * unit_ms;
    }
    Ok(sign * total_ms)
}

fn load_cases() -> Vec<Case> {
    let path = compat_path("queries.txt");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(index, line)| {
            Case::parse_line(line).unwrap_or_else(|err| panic!("{}:{}: {err}", path.display(), index + 1))
        })
        .collect()
}

/// Seconds with millisecond decimals, as Prometheus' API takes them.
fn api_seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

// ---------------------------------------------------------------------------------------------
// The data set, in both forms
// ---------------------------------------------------------------------------------------------

fn series_samples(series: &GeneratedSeries) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::series(series.labels.iter().cloned()).unwrap(),
        samples: series.samples.clone(),
    }
}

/// Remote-write requests carrying the whole data set time-major: each request holds every
/// series' samples of one 10-minute window, windows in increasing time order, so that
/// Prometheus' head sees every series in order and never far behind its newest sample.
fn remote_write_requests(all: &[GeneratedSeries]) -> Vec<obs_metrics::remote_write::WriteRequest> {
    use obs_metrics::remote_write::{Label, Sample, TimeSeries, WriteRequest};
    const WINDOW_MS: i64 = 10 * 60_000;
    let first_ms = all
        .iter()
        .filter_map(|s| s.samples.first())
        .map(|(t, _)| *t)
        .min()
        .unwrap();
    let last_ms = all
        .iter()
        .filter_map(|s| s.samples.last())
        .map(|(t, _)| *t)
        .max()
        .unwrap();
    let mut requests = Vec::new();
    let mut window_start_ms = first_ms;
    while window_start_ms <= last_ms {
        let window = window_start_ms..window_start_ms + WINDOW_MS;
        let timeseries: Vec<TimeSeries> = all
            .iter()
            .filter_map(|series| {
                let samples: Vec<Sample> = series
                    .samples
                    .iter()
                    .filter(|(t, _)| window.contains(t))
                    .map(|(t, v)| Sample {
                        value: *v,
                        timestamp: *t,
                    })
                    .collect();
                (!samples.is_empty()).then(|| TimeSeries {
                    labels: series
                        .labels
                        .iter()
                        .map(|(name, value)| Label {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                    samples,
                    histograms: Vec::new(),
                })
            })
            .collect();
        requests.push(WriteRequest {
            timeseries,
            metadata: Vec::new(),
        });
        window_start_ms += WINDOW_MS;
    }
    requests
}

// ---------------------------------------------------------------------------------------------
// Recording from Prometheus
// ---------------------------------------------------------------------------------------------

/// A Prometheus server, killed when dropped (also when the recording panics).
struct PrometheusProcess {
    child: Child,
    base_url: String,
    log_path: PathBuf,
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrometheusProcess {
    fn start(binary: &Path, dir: &Path) -> PrometheusProcess {
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, "global: {}\n").unwrap();
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--storage.tsdb.retention.time=100y")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", binary.display()));
        PrometheusProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn wait_ready(&mut self, agent: &ureq::Agent) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "prometheus exited with {status} before it was ready:\n{}",
                    self.log_tail()
                );
            }
            let ready = agent
                .get(format!("{}/-/ready", self.base_url))
                .call()
                .is_ok_and(|response| response.status().is_success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after 60 s:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn http_agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build(),
    )
}

fn read_body(response: &mut ureq::http::Response<ureq::Body>) -> String {
    response
        .body_mut()
        .with_config()
        .limit(512 << 20)
        .read_to_string()
        .unwrap()
}

fn remote_write(prometheus: &PrometheusProcess, agent: &ureq::Agent, all: &[GeneratedSeries]) {
    use prost::Message as _;
    for (index, request) in remote_write_requests(all).iter().enumerate() {
        let body = snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap();
        let mut response = agent
            .post(format!("{}/api/v1/write", prometheus.base_url))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .send(&body[..])
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "remote write {index} answered {status}: {}\n{}",
            read_body(&mut response),
            prometheus.log_tail()
        );
    }
}

/// The sum of a metric's samples on Prometheus' own `/metrics` page.
fn self_metric(prometheus: &PrometheusProcess, agent: &ureq::Agent, name: &str) -> f64 {
    let mut response = agent
        .get(format!("{}/metrics", prometheus.base_url))
        .call()
        .unwrap();
    read_body(&mut response)
        .lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn query_prometheus(prometheus: &PrometheusProcess, agent: &ureq::Agent, case: &Case) -> Json {
    let evaluation = case.evaluation().unwrap();
    let (path, form) = match evaluation {
        Evaluation::Instant { time_ms } => (
            "/api/v1/query",
            vec![("query", case.query.clone()), ("time", api_seconds(time_ms))],
        ),
        Evaluation::Range {
            start_ms,
            end_ms,
            step_ms,
        } => (
            "/api/v1/query_range",
            vec![
                ("query", case.query.clone()),
                ("start", api_seconds(start_ms)),
                ("end", api_seconds(end_ms)),
                ("step", api_seconds(step_ms)),
            ],
        ),
    };
    let mut response = agent
        .post(format!("{}{path}", prometheus.base_url))
        .send_form(form)
        .unwrap();
    let body = read_body(&mut response);
    serde_json::from_str(&body)
        .unwrap_or_else(|err| panic!("{}: prometheus answered non-JSON ({err}): {body}", case.line()))
}

/// Re-records `compat/golden.json` from a real Prometheus 2.42 (`$PROMETHEUS`, else
/// `/usr/bin/prometheus`): starts it on a free port of 127.0.0.1 with an empty configuration,
/// remote-writes the data set, runs every case of `queries.txt` and stores its responses.
///
/// ```text
/// cargo test -p obs-promql --test promql_compat -- --ignored record_golden_from_prometheus
/// ```
#[test]
#[ignore = "needs a Prometheus 2.42 binary; re-records tests/compat/golden.json"]
fn record_golden_from_prometheus() {
    let binary =
        PathBuf::from(std::env::var("PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".to_owned()));
    assert!(
        binary.exists(),
        "no prometheus binary at {}; set PROMETHEUS",
        binary.display()
    );
    let cases = load_cases();
    let all = dataset::generate();
    let dir = tempfile::tempdir().unwrap();
    let agent = http_agent();
    let mut prometheus = PrometheusProcess::start(&binary, dir.path());
    prometheus.wait_ready(&agent);

    remote_write(&prometheus, &agent, &all);
    let expected_samples: usize = all.iter().map(|series| series.samples.len()).sum();
    let appended = self_metric(&prometheus, &agent, "prometheus_tsdb_head_samples_appended_total");
    assert_eq!(
        appended as usize, expected_samples,
        "prometheus did not append every sample"
    );
    let head_series = self_metric(&prometheus, &agent, "prometheus_tsdb_head_series");
    assert_eq!(
        head_series as usize,
        all.len(),
        "prometheus does not hold every series"
    );

    let mut response = agent
        .get(format!("{}/api/v1/status/buildinfo", prometheus.base_url))
        .call()
        .unwrap();
    let buildinfo: Json = serde_json::from_str(&read_body(&mut response)).unwrap();
    let version = buildinfo["data"]["version"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    assert!(
        version.starts_with("2.42."),
        "expected Prometheus 2.42, found {version}"
    );

    let responses: Vec<(&Case, Json)> = cases
        .iter()
        .map(|case| (case, query_prometheus(&prometheus, &agent, case)))
        .collect();
    drop(prometheus);
    let header = [
        ("prometheus_version", Json::from(version)),
        ("recorded_with", Json::from(RECORD_COMMAND)),
        ("t0_ms", Json::from(T0_MS)),
    ];
    let path = compat_path("golden.json");
    std::fs::write(&path, render_cases(&header, &responses)).unwrap();
    println!("recorded {} cases into {}", cases.len(), path.display());
}

// ---------------------------------------------------------------------------------------------
// Comparing our engine with the golden file
// ---------------------------------------------------------------------------------------------

struct GoldenCase {
    case: Case,
    response: Json,
}

fn load_golden() -> Vec<GoldenCase> {
    let path = compat_path("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "reading {}: {err}; record it with `{RECORD_COMMAND}`",
            path.display()
        )
    });
    let golden: Json = serde_json::from_str(&text).unwrap();
    golden["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| GoldenCase {
            case: Case {
                kind: entry["kind"].as_str().unwrap().to_owned(),
                times: entry["times"].as_str().unwrap().to_owned(),
                query: entry["query"].as_str().unwrap().to_owned(),
            },
            response: entry["response"].clone(),
        })
        .collect()
}

/// `known_differences.txt`: query texts, each below a `# reason` line.
fn load_known_differences() -> BTreeMap<String, String> {
    let path = compat_path("known_differences.txt");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    let mut known = BTreeMap::new();
    let mut reason: Option<String> = None;
    for (index, line) in text.lines().enumerate() {
        if let Some(comment) = line.strip_prefix('#') {
            reason = Some(comment.trim().to_owned());
        } else if line.trim().is_empty() {
            reason = None;
        } else {
            let why = reason.take().filter(|why| !why.is_empty()).unwrap_or_else(|| {
                panic!(
                    "{}:{}: a known difference needs a `# reason` line above it",
                    path.display(),
                    index + 1
                )
            });
            known.insert(line.to_owned(), why);
        }
    }
    known
}

/// Our engine's answer in the shape of Prometheus' response.
fn run_engine(engine: &Engine, case: &Case) -> Json {
    let result = match case.evaluation().unwrap() {
        Evaluation::Instant { time_ms } => engine.instant(&case.query, time_ms),
        Evaluation::Range {
            start_ms,
            end_ms,
            step_ms,
        } => engine.range(&case.query, start_ms, end_ms, step_ms),
    };
    match result {
        Ok(value) => {
            let mut data = String::new();
            obs_promql::json::write_data(&value, &mut data);
            match serde_json::from_str::<Json>(&data) {
                Ok(data) => serde_json::json!({"status": "success", "data": data}),
                Err(err) => serde_json::json!({
                    "status": "invalid",
                    "error": format!("write_data wrote invalid JSON ({err}): {data}"),
                }),
            }
        }
        Err(err) => serde_json::json!({
            "status": "error",
            "errorType": error_type(&err),
            "error": err.client_message(),
        }),
    }
}

fn error_type(err: &QueryError) -> &'static str {
    match err.kind() {
        ErrorKind::BadInput => "bad_data",
        ErrorKind::Execution => "execution",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Canceled => "canceled",
        _ => "internal",
    }
}

/// How one case compared.
enum Outcome {
    Pass,
    /// Both failed with the same `errorType` but different messages.
    PassWithMessage {
        expected: String,
        actual: String,
    },
    Fail(String),
}

fn compare_responses(expected: &Json, actual: &Json, ordered: bool) -> Outcome {
    let expected_status = expected["status"].as_str().unwrap_or("?");
    let actual_status = actual["status"].as_str().unwrap_or("?");
    if expected_status != actual_status {
        return Outcome::Fail(format!("status {expected_status} expected, got {actual_status}"));
    }
    if expected_status == "error" {
        if expected["errorType"] != actual["errorType"] {
            return Outcome::Fail(format!(
                "errorType {} expected, got {}",
                expected["errorType"], actual["errorType"]
            ));
        }
        if expected["error"] != actual["error"] {
            return Outcome::PassWithMessage {
                expected: expected["error"].as_str().unwrap_or("").to_owned(),
                actual: actual["error"].as_str().unwrap_or("").to_owned(),
            };
        }
        return Outcome::Pass;
    }
    match compare_data(&expected["data"], &actual["data"], ordered) {
        Ok(()) => Outcome::Pass,
        Err(reason) => Outcome::Fail(reason),
    }
}

fn compare_data(expected: &Json, actual: &Json, ordered: bool) -> Result<(), String> {
    let result_type = expected["resultType"].as_str().unwrap_or("?");
    if expected["resultType"] != actual["resultType"] {
        return Err(format!(
            "resultType {result_type} expected, got {}",
            actual["resultType"]
        ));
    }
    let expected_result = &expected["result"];
    let actual_result = &actual["result"];
    match result_type {
        "scalar" => compare_point(expected_result, actual_result),
        "string" => {
            compare_timestamp(&expected_result[0], &actual_result[0])?;
            if expected_result[1] != actual_result[1] {
                return Err(format!(
                    "string {} expected, got {}",
                    expected_result[1], actual_result[1]
                ));
            }
            Ok(())
        }
        "vector" => {
            let mut expected_samples = elements(expected_result)?;
            let mut actual_samples = elements(actual_result)?;
            if expected_samples.len() != actual_samples.len() {
                return Err(format!(
                    "{} samples expected, got {}",
                    expected_samples.len(),
                    actual_samples.len()
                ));
            }
            if !ordered {
                expected_samples.sort_by_key(|sample| sort_key(sample, "value"));
                actual_samples.sort_by_key(|sample| sort_key(sample, "value"));
            }
            for (position, (e, a)) in expected_samples.iter().zip(&actual_samples).enumerate() {
                if e["metric"] != a["metric"] {
                    return Err(format!(
                        "sample {position}: labels {} expected, got {}",
                        e["metric"], a["metric"]
                    ));
                }
                compare_point(&e["value"], &a["value"]).map_err(|why| format!("{}: {why}", e["metric"]))?;
            }
            Ok(())
        }
        "matrix" => {
            let expected_series = elements(expected_result)?;
            let actual_series = elements(actual_result)?;
            if expected_series.len() != actual_series.len() {
                return Err(format!(
                    "{} series expected, got {}",
                    expected_series.len(),
                    actual_series.len()
                ));
            }
            for (position, (e, a)) in expected_series.iter().zip(&actual_series).enumerate() {
                if e["metric"] != a["metric"] {
                    return Err(format!(
                        "series {position}: labels {} expected, got {}",
                        e["metric"], a["metric"]
                    ));
                }
                let expected_points = elements(&e["values"])?;
                let actual_points = elements(&a["values"])?;
                if expected_points.len() != actual_points.len() {
                    return Err(format!(
                        "{}: {} points expected, got {}",
                        e["metric"],
                        expected_points.len(),
                        actual_points.len()
                    ));
                }
                for (ep, ap) in expected_points.iter().zip(&actual_points) {
                    compare_point(ep, ap).map_err(|why| format!("{}: {why}", e["metric"]))?;
                }
            }
            Ok(())
        }
        other => Err(format!("unknown resultType {other}")),
    }
}

fn elements(value: &Json) -> Result<Vec<&Json>, String> {
    value
        .as_array()
        .map(|items| items.iter().collect())
        .ok_or_else(|| format!("expected an array, got {value}"))
}

fn sort_key(sample: &Json, field: &str) -> (String, String) {
    (sample["metric"].to_string(), sample[field].to_string())
}

fn compare_timestamp(expected: &Json, actual: &Json) -> Result<(), String> {
    let to_ms = |t: &Json| t.as_f64().map(|seconds| (seconds * 1000.0).round() as i64);
    match (to_ms(expected), to_ms(actual)) {
        (Some(e), Some(a)) if e == a => Ok(()),
        _ => Err(format!("timestamp {expected} expected, got {actual}")),
    }
}

fn compare_point(expected: &Json, actual: &Json) -> Result<(), String> {
    compare_timestamp(&expected[0], &actual[0])?;
    let (Some(e), Some(a)) = (expected[1].as_str(), actual[1].as_str()) else {
        return Err(format!("point {expected} expected, got {actual}"));
    };
    if values_match(e, a) {
        Ok(())
    } else {
        Err(format!("value {e} expected at {}, got {a}", expected[0]))
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

fn values_match(expected: &str, actual: &str) -> bool {
    if expected == actual {
        return true;
    }
    let (Some(e), Some(a)) = (parse_value(expected), parse_value(actual)) else {
        return false;
    };
    if e.is_nan() || a.is_nan() {
        return e.is_nan() && a.is_nan();
    }
    if e.is_infinite() || a.is_infinite() {
        return e == a;
    }
    (e - a).abs() <= VALUE_TOLERANCE * e.abs().max(a.abs())
}

/// Whether the query's outermost expression is `sort(…)` or `sort_desc(…)`: only then does
/// Prometheus promise the order of an instant vector.
fn is_sorted_query(query: &str) -> bool {
    let text = query.trim();
    let Some(rest) = text
        .strip_prefix("sort_desc")
        .or_else(|| text.strip_prefix("sort"))
    else {
        return false;
    };
    let rest = rest.trim_start();
    if !rest.starts_with('(') {
        return false;
    }
    // The call must span the whole query: find its closing parenthesis.
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (index, c) in rest.char_indices() {
        if let Some(open) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && open != '`' {
                escaped = true;
            } else if c == open {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return rest[index + 1..].trim().is_empty();
                }
            }
            _ => {}
        }
    }
    false
}

fn truncated(value: &Json, limit: usize) -> String {
    let text = value.to_string();
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

fn loaded_engine(dir: &Path) -> (Engine, tokio::runtime::Runtime) {
    let all = dataset::generate();
    let (store, _) = MetricsStore::open(&DataLayout::new(dir), MetricsOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let batch: Vec<SeriesSamples> = all.iter().map(series_samples).collect();
    let expected_samples: usize = all.iter().map(|series| series.samples.len()).sum();
    let outcome = runtime
        .block_on(store.append(batch, TimestampMs(END_MS + 60_000)))
        .unwrap();
    assert!(
        outcome.rejected.is_empty(),
        "the store refused samples: {:?}",
        &outcome.rejected[..1]
    );
    assert_eq!(outcome.accepted as usize, expected_samples);
    (Engine::new(Arc::new(store), EngineOptions::default()), runtime)
}

/// The golden file's layout: a few header fields, then one case per line so that diffs stay
/// readable.
fn render_cases(header: &[(&str, Json)], cases: &[(&Case, Json)]) -> String {
    let mut out = String::from("{\n");
    for (name, value) in header {
        let _ = writeln!(out, "  {}: {value},", Json::from(*name));
    }
    out.push_str("  \"cases\": [\n");
    for (index, (case, response)) in cases.iter().enumerate() {
        let _ = write!(
            out,
            "    {{\"kind\":{},\"times\":{},\"query\":{},\"response\":{response}}}",
            Json::from(case.kind.as_str()),
            Json::from(case.times.as_str()),
            Json::from(case.query.as_str()),
        );
        out.push_str(if index + 1 < cases.len() { ",\n" } else { "\n" });
    }
    out.push_str("  ]\n}\n");
    out
}

#[test]
fn engine_matches_prometheus_golden() {
    let golden = load_golden();
    assert!(
        golden.len() >= MIN_CASES,
        "the golden file has {} cases, fewer than {MIN_CASES}",
        golden.len()
    );
    let listed: Vec<String> = load_cases().iter().map(Case::line).collect();
    let recorded: Vec<String> = golden.iter().map(|entry| entry.case.line()).collect();
    assert!(
        listed == recorded,
        "golden.json does not match queries.txt; re-record it with `{RECORD_COMMAND}`"
    );
    let known = load_known_differences();
    for query in known.keys() {
        assert!(
            golden.iter().any(|entry| &entry.case.query == query),
            "known_differences.txt lists a query that is not a case: {query}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let (engine, _runtime) = loaded_engine(dir.path());

    // A panicking case is a failing case, not the end of the run.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut passed = 0usize;
    let mut failures: Vec<(String, String)> = Vec::new();
    let mut message_differences: Vec<String> = Vec::new();
    let mut failing_queries: BTreeMap<&str, usize> = BTreeMap::new();
    let mut actual_responses: Vec<Json> = Vec::with_capacity(golden.len());
    for entry in &golden {
        let case = &entry.case;
        let actual = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_engine(&engine, case)))
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                serde_json::json!({"status": "panic", "error": message})
            });
        let outcome = compare_responses(&entry.response, &actual, is_sorted_query(&case.query));
        actual_responses.push(actual);
        match outcome {
            Outcome::Pass => passed += 1,
            Outcome::PassWithMessage { expected, actual } => {
                passed += 1;
                message_differences.push(format!(
                    "{}\n      prometheus: {expected}\n      ours:       {actual}",
                    case.line()
                ));
            }
            Outcome::Fail(reason) => {
                *failing_queries.entry(case.query.as_str()).or_default() += 1;
                let report = format!(
                    "{}\n      why:      {reason}\n      expected: {}\n      actual:   {}",
                    case.line(),
                    truncated(&entry.response, 400),
                    truncated(actual_responses.last().unwrap_or(&Json::Null), 400)
                );
                failures.push((case.query.clone(), report));
            }
        }
    }
    std::panic::set_hook(previous_hook);
    // Our answers in the golden file's layout, to diff against it.
    if let Some(path) = std::env::var_os("PROMQL_COMPAT_ACTUAL") {
        let answers: Vec<(&Case, Json)> = golden
            .iter()
            .map(|entry| &entry.case)
            .zip(actual_responses.iter().cloned())
            .collect();
        std::fs::write(
            &path,
            render_cases(&[("engine", Json::from("obs-promql"))], &answers),
        )
        .unwrap();
        println!("wrote our engine's answers to {}", Path::new(&path).display());
    }

    let total = golden.len();
    println!(
        "PromQL compatibility with Prometheus 2.42: {passed}/{total} cases pass ({:.1}%)",
        100.0 * passed as f64 / total as f64
    );
    if !message_differences.is_empty() {
        println!(
            "\n{} cases agree on the errorType but not on the message:",
            message_differences.len()
        );
        for difference in &message_differences {
            println!("  {difference}");
        }
    }
    let unexpected: Vec<&(String, String)> = failures
        .iter()
        .filter(|(query, _)| !known.contains_key(query))
        .collect();
    let known_failures = failures.len() - unexpected.len();
    println!("\n{} failing cases ({known_failures} known):", failures.len());
    for (query, report) in &failures {
        let tag = if known.contains_key(query) { "known" } else { "NEW" };
        println!("  [{tag}] {report}");
    }
    let now_passing: Vec<&String> = known
        .keys()
        .filter(|query| !failing_queries.contains_key(query.as_str()))
        .collect();
    for query in &now_passing {
        println!("  [FIXED] listed in known_differences.txt but passes now: {query}");
    }
    assert!(
        unexpected.is_empty() && now_passing.is_empty(),
        "{} cases differ from Prometheus 2.42 without being listed in known_differences.txt, and {} listed \
         queries pass now (run with --nocapture for details)",
        unexpected.len(),
        now_passing.len()
    );
}

#[test]
fn durations_parse_like_prometheus() {
    assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
    assert_eq!(parse_duration_ms("10m7s500ms"), Ok(607_500));
    assert_eq!(parse_duration_ms("-5m"), Ok(-300_000));
    assert_eq!(parse_duration_ms("0s"), Ok(0));
    assert!(parse_duration_ms("5").is_err());
    assert!(parse_duration_ms("1x").is_err());
    assert_eq!(api_seconds(T0_MS + 1_500), "1767225601.500");
}

#[test]
fn only_a_whole_query_under_sort_keeps_its_order() {
    assert!(is_sorted_query("sort(up)"));
    assert!(is_sorted_query(" sort_desc (rate(x[5m])) "));
    assert!(!is_sorted_query("sort(up) + 1"));
    assert!(!is_sorted_query("sum(up)"));
    assert!(!is_sorted_query("sorted_thing"));
    assert!(is_sorted_query(
        "sort(label_replace(up, \"a\", \")\", \"b\", \"\"))"
    ));
}

#[test]
fn values_compare_with_a_relative_tolerance() {
    assert!(values_match("NaN", "NaN"));
    assert!(values_match("+Inf", "+Inf"));
    assert!(!values_match("+Inf", "-Inf"));
    assert!(!values_match("+Inf", "1e308"));
    assert!(values_match("0.30000000000000004", "0.3"));
    assert!(!values_match("1", "1.001"));
    assert!(values_match("-0", "0"));
    assert!(!values_match("NaN", "0"));
}
