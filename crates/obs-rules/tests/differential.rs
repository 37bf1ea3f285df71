//! Differential test of rule evaluation against Prometheus 2.42.
//!
//! `differential/scenarios/<name>/` holds a scenario: `input.yml`, series in promtool's
//! `input_series` notation with the evaluation interval and how long to evaluate, and
//! `rules.yml`, a rule file. `differential/golden.txt` holds what Prometheus 2.42's rule
//! engine produced at every evaluation of every scenario: the active alerts (labels,
//! annotations, state, activeAt, as `/api/v1/alerts` shows them), the `ALERTS`,
//! `ALERTS_FOR_STATE` and recorded series an instant query returns at that time, and the
//! rules that failed.
//!
//! [`rule_evaluation_matches_prometheus_golden`] needs no Prometheus: it loads each scenario's
//! series into an in-memory store, steps `Group::evaluate` through the same timestamps (the
//! groups write their results into that store, as the appliance's sink does, so later rules
//! and evaluations see them), and compares. The differences we know of are listed, each with
//! its reason, in `differential/known_differences.txt`; the test fails on any other difference,
//! and on a listed one that no longer differs.
//!
//! The golden file comes from `promtool test rules` (Debian's `prometheus` package ships
//! promtool 2.42), which evaluates rule files with Prometheus' own rule manager, PromQL engine
//! and template expander over `input_series`, from time 0 at `evaluation_interval`: the
//! recorder asks for every alert at every evaluation time, and queries the series, with
//! deliberately empty expectations, and reads the answers from promtool's failure report.
//! See [`record_golden_from_prometheus`] for what each run contributes. Re-record with
//! promtool 2.42 at `$PROMTOOL` or `/usr/bin/promtool`:
//!
//! ```text
//! cargo test -p obs-rules --test differential -- --ignored record_golden_from_prometheus
//! ```
//!
//! See `docs/compatibility.md`, section "Rule evaluation against Prometheus".
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use obs_core::series::{Labels, Matcher, MetricMetadata, MetricsQuerier, SeriesSamples, StorageError};
use obs_promql::{Engine, EngineOptions, Value};
use obs_rules::file::{RuleConfig, RuleFile};
use obs_rules::group::{AlertState, Group, SeriesSink};
use serde::Deserialize;

/// The command that re-records the golden file.
const RECORD_COMMAND: &str =
    "cargo test -p obs-rules --test differential -- --ignored record_golden_from_prometheus";
/// The NaN Prometheus writes as a stale marker.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// Relative tolerance of series values.
const VALUE_TOLERANCE: f64 = 1e-9;
/// The longest one promtool run may take.
const PROMTOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// The golden file must hold at least this many evaluations.
const MIN_EVALUATIONS: usize = 90;

fn differential_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/differential")
        .join(file)
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

/// `1h30m`, `20m0s`, `7s`, `500ms`: Prometheus' and Go's duration spellings (no `y`/`w`).
fn parse_duration_ms(text: &str) -> Result<i64, String> {
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    let mut total_ms = 0i64;
    let mut rest = text;
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
    Ok(total_ms)
}

/// Milliseconds as Prometheus writes a duration: `0s`, `15s`, `1m15s`, `20m`, `1h0m5s`.
fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, unit_ms) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        let count = rest / unit_ms;
        rest %= unit_ms;
        if count > 0 || (!out.is_empty() && rest > 0) {
            write!(out, "{count}{unit}").unwrap();
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Label sets as Prometheus prints them: {a="b", c="d"} with Go-quoted values
// ---------------------------------------------------------------------------------------------

/// A label set (or annotations), sorted by name.
type LabelSet = Vec<(String, String)>;

/// Go's `strconv.Quote`, as far as the golden file needs it: printable characters as they are,
/// the others escaped.
fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => write!(out, "\\x{:02x}", c as u32).unwrap(),
            c if c.is_control() => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads a Go-quoted string at the start of `text`: the string and the rest.
fn go_unquote(text: &str) -> Result<(String, &str), String> {
    let mut chars = text.char_indices();
    if chars.next().map(|(_, c)| c) != Some('"') {
        return Err(format!("expected a quoted string at {text:?}"));
    }
    let mut out = String::new();
    let mut bytes: Vec<u8> = Vec::new();
    let flush = |bytes: &mut Vec<u8>, out: &mut String| -> Result<(), String> {
        if !bytes.is_empty() {
            out.push_str(std::str::from_utf8(bytes).map_err(|err| err.to_string())?);
            bytes.clear();
        }
        Ok(())
    };
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => {
                flush(&mut bytes, &mut out)?;
                return Ok((out, &text[index + 1..]));
            }
            '\\' => {
                let (_, escape) = chars.next().ok_or("unterminated escape")?;
                let mut hex = |count: usize| -> Result<u32, String> {
                    let digits: String = (0..count)
                        .map(|_| chars.next().map(|(_, c)| c).unwrap_or('?'))
                        .collect();
                    u32::from_str_radix(&digits, 16).map_err(|_| format!("bad escape \\{escape}{digits}"))
                };
                match escape {
                    'x' => bytes.push(hex(2)? as u8),
                    'u' | 'U' => {
                        let code = hex(if escape == 'u' { 4 } else { 8 })?;
                        flush(&mut bytes, &mut out)?;
                        out.push(char::from_u32(code).ok_or("bad code point")?);
                    }
                    '0'..='7' => {
                        let rest: String = (0..2)
                            .map(|_| chars.next().map(|(_, c)| c).unwrap_or('?'))
                            .collect();
                        let code = u32::from_str_radix(&format!("{escape}{rest}"), 8)
                            .map_err(|_| format!("bad octal escape \\{escape}{rest}"))?;
                        bytes.push(code as u8);
                    }
                    other => {
                        flush(&mut bytes, &mut out)?;
                        out.push(match other {
                            'a' => '\u{7}',
                            'b' => '\u{8}',
                            'f' => '\u{c}',
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            'v' => '\u{b}',
                            '\\' | '"' | '\'' => other,
                            _ => return Err(format!("unknown escape \\{other}")),
                        });
                    }
                }
            }
            c => {
                flush(&mut bytes, &mut out)?;
                out.push(c);
            }
        }
    }
    Err(format!("unterminated string at {text:?}"))
}

fn format_label_set(labels: &LabelSet) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={}", go_quote(value)))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Reads `{a="b", c="d"}` at the start of `text` (spaces allowed between tokens): the sorted
/// set and the rest.
fn parse_label_set(text: &str) -> Result<(LabelSet, &str), String> {
    let mut rest = text
        .trim_start()
        .strip_prefix('{')
        .ok_or_else(|| format!("expected `{{` at {text:?}"))?;
    let mut labels = LabelSet::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            labels.sort();
            return Ok((labels, after));
        }
        let name_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b':')
            .count();
        if name_len == 0 {
            return Err(format!("expected a label name at {rest:?}"));
        }
        let name = rest[..name_len].to_owned();
        rest = rest[name_len..]
            .trim_start()
            .strip_prefix('=')
            .ok_or_else(|| format!("expected `=` after {name}"))?
            .trim_start();
        let (value, after) = go_unquote(rest)?;
        labels.push((name, value));
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn label(labels: &LabelSet, name: &str) -> Option<String> {
    labels
        .iter()
        .find(|(label_name, _)| label_name == name)
        .map(|(_, value)| value.clone())
}

fn label_set_of(labels: &Labels) -> LabelSet {
    labels
        .iter()
        .map(|label| (label.name.to_string(), label.value.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value}")
    } else {
        format!("{value:?}")
    }
}

/// A value as promtool (`strconv.FormatFloat(v, 'E', -1, 64)`) or the golden file writes it.
fn parse_value(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .map_err(|_| format!("bad sample value {text:?}"))
}

fn values_match(expected: f64, actual: f64) -> bool {
    if expected.is_nan() || actual.is_nan() {
        return expected.is_nan() && actual.is_nan();
    }
    if expected.is_infinite() || actual.is_infinite() {
        return expected == actual;
    }
    let scale = expected.abs().max(actual.abs());
    (expected - actual).abs() <= VALUE_TOLERANCE * scale
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// `input.yml`: the series, and when rules are evaluated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputFile {
    /// The time between evaluations (promtool's `evaluation_interval`).
    evaluation_interval: String,
    /// The last evaluation time (the first is 0).
    evaluate_until: String,
    /// The time between two values of an input series.
    interval: String,
    input_series: Vec<InputSeries>,
}

/// One series in promtool's notation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Debug, Clone)]
struct Scenario {
    name: String,
    dir: PathBuf,
    input: InputFile,
    rules: RuleFile,
    evaluation_interval_ms: i64,
    evaluate_until_ms: i64,
    interval_ms: i64,
}

impl Scenario {
    fn evaluation_times(&self) -> Vec<i64> {
        (0..)
            .map(|index| index * self.evaluation_interval_ms)
            .take_while(|ts| *ts <= self.evaluate_until_ms)
            .collect()
    }

    fn rules_path(&self) -> PathBuf {
        self.dir.join("rules.yml")
    }

    fn rules(&self) -> impl Iterator<Item = &RuleConfig> {
        self.rules.groups.iter().flat_map(|group| group.rules.iter())
    }

    fn alert_names(&self) -> Vec<String> {
        self.rules().filter_map(|rule| rule.alert.clone()).collect()
    }

    /// The instant query that returns every series the rules write.
    fn output_query(&self) -> String {
        let mut names = vec!["ALERTS".to_owned(), "ALERTS_FOR_STATE".to_owned()];
        names.extend(self.rules().filter_map(|rule| rule.record.clone()));
        format!("{{__name__=~\"{}\"}}", names.join("|"))
    }

    /// The series of `input.yml`: labels and `(ms, value)` samples.
    fn series(&self) -> Vec<(LabelSet, Vec<(i64, f64)>)> {
        self.input
            .input_series
            .iter()
            .map(|series| {
                let labels = parse_series_selector(&series.series)
                    .unwrap_or_else(|err| panic!("{}: {}: {err}", self.name, series.series));
                let values = expand_series_values(&series.values)
                    .unwrap_or_else(|err| panic!("{}: {}: {err}", self.name, series.values));
                let samples = values
                    .into_iter()
                    .enumerate()
                    .filter_map(|(index, value)| value.map(|v| (index as i64 * self.interval_ms, v)))
                    .collect();
                (labels, samples)
            })
            .collect()
    }
}

fn load_scenarios() -> Vec<Scenario> {
    let root = differential_path("scenarios");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|err| panic!("reading {}: {err}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let input_text = std::fs::read_to_string(dir.join("input.yml")).unwrap();
            let input: InputFile =
                serde_yaml::from_str(&input_text).unwrap_or_else(|err| panic!("{name}/input.yml: {err}"));
            let rules = obs_rules::file::load(&dir.join("rules.yml")).unwrap_or_else(|err| panic!("{err}"));
            let duration = |text: &str| parse_duration_ms(text).unwrap_or_else(|err| panic!("{name}: {err}"));
            let scenario = Scenario {
                evaluation_interval_ms: duration(&input.evaluation_interval),
                evaluate_until_ms: duration(&input.evaluate_until),
                interval_ms: duration(&input.interval),
                name,
                dir,
                input,
                rules,
            };
            let names = scenario.alert_names();
            let unique: BTreeSet<&String> = names.iter().collect();
            assert_eq!(
                unique.len(),
                names.len(),
                "{}: alert names must be unique (promtool merges alerts of one name)",
                scenario.name
            );
            assert!(
                scenario.rules().all(|rule| !rule.expr.0.contains("ALERTS")),
                "{}: no rule may read ALERTS (the recorder's probe run would change it)",
                scenario.name
            );
            scenario
        })
        .collect()
}

/// FNV-1a (64 bits) of every scenario file, with its path: names the fixtures a golden file
/// was recorded from.
fn fixtures_hash(scenarios: &[Scenario]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for scenario in scenarios {
        for file in ["input.yml", "rules.yml"] {
            feed(format!("{}/{file}\0", scenario.name).as_bytes());
            feed(&std::fs::read(scenario.dir.join(file)).unwrap());
        }
    }
    format!("{hash:016x}")
}

/// `name{a="b"}` or `{__name__="name", a="b"}`.
fn parse_series_selector(text: &str) -> Result<LabelSet, String> {
    let text = text.trim();
    let name_len = text
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b':')
        .count();
    let mut labels = if text[name_len..].trim().is_empty() {
        LabelSet::new()
    } else {
        let (labels, rest) = parse_label_set(&text[name_len..])?;
        if !rest.trim().is_empty() {
            return Err(format!("unexpected {rest:?} after the labels"));
        }
        labels
    };
    if name_len > 0 {
        labels.push(("__name__".to_owned(), text[..name_len].to_owned()));
    }
    labels.sort();
    Ok(labels)
}

/// promtool's series values (`promql/parser` series descriptions): `_` (missing), `_xN` (N
/// missing), `V`, `VxN` (N+1 times V), `V+DxN` / `V-DxN` (V, then N times the previous value
/// plus D, accumulated as Prometheus does), `stale` (the stale marker) anywhere a value goes.
fn expand_series_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let value = |token: &str| -> Result<f64, String> {
        if token == "stale" {
            return Ok(f64::from_bits(STALE_NAN_BITS));
        }
        token.parse::<f64>().map_err(|_| format!("bad value {token:?}"))
    };
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        let (head, times) = match token.rsplit_once('x') {
            Some((head, count)) if count.bytes().all(|b| b.is_ascii_digit()) && !count.is_empty() => {
                (head, Some(count.parse::<usize>().map_err(|err| err.to_string())?))
            }
            _ => (token, None),
        };
        if head == "_" {
            out.extend(std::iter::repeat_n(None, times.unwrap_or(1)));
            continue;
        }
        // promtool's lexer reads `NaNx2` or `Infx2` as one identifier and refuses it.
        let unsigned = head.trim_start_matches(['+', '-']);
        if times.is_some() && (unsigned.eq_ignore_ascii_case("nan") || unsigned.eq_ignore_ascii_case("inf")) {
            return Err(format!("{token:?}: NaN and Inf cannot be repeated"));
        }
        // A sign after the first character that is not an exponent's starts the increment.
        let split = head
            .char_indices()
            .skip(1)
            .find(|(index, c)| matches!(c, '+' | '-') && !matches!(head.as_bytes()[index - 1], b'e' | b'E'))
            .map(|(index, _)| index);
        match (split, times) {
            (Some(index), Some(count)) => {
                let mut current = value(&head[..index])?;
                let increment = value(&head[index..])?;
                out.push(Some(current));
                for _ in 0..count {
                    current += increment;
                    out.push(Some(current));
                }
            }
            (Some(_), None) => return Err(format!("{token:?}: an increment needs a count (`xN`)")),
            (None, Some(count)) => out.extend(std::iter::repeat_n(Some(value(head)?), count + 1)),
            (None, None) => out.push(Some(value(head)?)),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// What one evaluation produced, on either side, and the golden file
// ---------------------------------------------------------------------------------------------

/// One active alert, as `/api/v1/alerts` shows it (the value is visible through annotations).
#[derive(Debug, Clone, PartialEq)]
struct ObservedAlert {
    state: String,
    active_at_ms: i64,
    annotations: LabelSet,
}

/// The outcome of evaluating every group at one time.
#[derive(Debug, Clone, Default, PartialEq)]
struct Observation {
    /// Failed rules and their errors.
    errors: BTreeMap<String, String>,
    /// promtool stopped at this evaluation (because a rule failed): alerts and series unknown.
    stopped: bool,
    /// Active alerts by label set.
    alerts: BTreeMap<LabelSet, ObservedAlert>,
    /// What the output query returns.
    series: BTreeMap<LabelSet, f64>,
}

#[derive(Debug, Default)]
struct Golden {
    prometheus_version: String,
    fixtures: String,
    /// Scenario → evaluation time → observation.
    scenarios: BTreeMap<String, BTreeMap<i64, Observation>>,
}

fn render_golden(golden: &Golden) -> String {
    let mut out = String::new();
    out.push_str(
        "# What Prometheus 2.42's rule engine produced for tests/differential/scenarios, recorded with\n",
    );
    writeln!(out, "#   {RECORD_COMMAND}").unwrap();
    out.push_str(
        "# (`promtool test rules`; see differential.rs). Per scenario and evaluation time (`at`):\n\
         #   alert <state> <labels> active_at=<time>   an active alert, then its annotations\n\
         #   series <labels> <value>                   ALERTS, ALERTS_FOR_STATE and recorded series\n\
         #   error <rule> <message>                    a rule that failed; `stop`: promtool stopped\n\
         # Times are offsets from the Unix epoch. Do not edit: re-record.\n",
    );
    writeln!(out, "prometheus {}", golden.prometheus_version).unwrap();
    writeln!(out, "fixtures {}", golden.fixtures).unwrap();
    for (scenario, observations) in &golden.scenarios {
        writeln!(out, "\nscenario {scenario}").unwrap();
        for (ts, observation) in observations {
            writeln!(out, "at {}", format_duration_ms(*ts)).unwrap();
            out.push_str(&render_observation(observation));
        }
    }
    out
}

fn render_alert(labels: &LabelSet, alert: &ObservedAlert) -> String {
    format!(
        "alert {} {} active_at={}\n  annotations {}\n",
        alert.state,
        format_label_set(labels),
        format_duration_ms(alert.active_at_ms),
        format_label_set(&alert.annotations)
    )
}

fn render_series(labels: &LabelSet, value: f64) -> String {
    format!("series {} {}\n", format_label_set(labels), format_value(value))
}

fn render_observation(observation: &Observation) -> String {
    let mut out = String::new();
    for (rule, message) in &observation.errors {
        writeln!(out, "error {rule} {}", go_quote(message)).unwrap();
    }
    if observation.stopped {
        out.push_str("stop\n");
    }
    for (labels, alert) in &observation.alerts {
        out.push_str(&render_alert(labels, alert));
    }
    for (labels, value) in &observation.series {
        out.push_str(&render_series(labels, *value));
    }
    out
}

fn observation_at<'a>(
    golden: &'a mut Golden,
    current: &Option<(String, i64)>,
) -> Result<&'a mut Observation, String> {
    let (scenario, ts) = current.as_ref().ok_or("no `at` line yet")?;
    Ok(golden
        .scenarios
        .get_mut(scenario)
        .ok_or("no scenario")?
        .entry(*ts)
        .or_default())
}

fn parse_golden(text: &str) -> Result<Golden, String> {
    let mut golden = Golden::default();
    let mut scenario: Option<String> = None;
    let mut current: Option<(String, i64)> = None;
    let mut last_alert: Option<LabelSet> = None;
    for (index, line) in text.lines().enumerate() {
        let context = |err: String| format!("golden.txt:{}: {err}", index + 1);
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (keyword, rest) = line.trim_start().split_once(' ').unwrap_or((line.trim(), ""));
        match keyword {
            "prometheus" => golden.prometheus_version = rest.to_owned(),
            "fixtures" => golden.fixtures = rest.to_owned(),
            "scenario" => {
                scenario = Some(rest.to_owned());
                current = None;
                golden.scenarios.entry(rest.to_owned()).or_default();
            }
            "at" => {
                let scenario = scenario
                    .clone()
                    .ok_or_else(|| context("`at` before `scenario`".into()))?;
                let ts = parse_duration_ms(rest).map_err(context)?;
                golden
                    .scenarios
                    .get_mut(&scenario)
                    .unwrap()
                    .insert(ts, Observation::default());
                current = Some((scenario, ts));
            }
            "error" => {
                let (rule, message) = rest.split_once(' ').ok_or_else(|| context("no message".into()))?;
                let (message, _) = go_unquote(message).map_err(context)?;
                observation_at(&mut golden, &current)
                    .map_err(context)?
                    .errors
                    .insert(rule.to_owned(), message);
            }
            "stop" => observation_at(&mut golden, &current).map_err(context)?.stopped = true,
            "alert" => {
                let (state, rest) = rest.split_once(' ').ok_or_else(|| context("no labels".into()))?;
                let (labels, rest) = parse_label_set(rest).map_err(context)?;
                let active_at = rest
                    .trim()
                    .strip_prefix("active_at=")
                    .ok_or_else(|| context("no active_at".into()))?;
                let alert = ObservedAlert {
                    state: state.to_owned(),
                    active_at_ms: parse_duration_ms(active_at).map_err(context)?,
                    annotations: LabelSet::new(),
                };
                observation_at(&mut golden, &current)
                    .map_err(context)?
                    .alerts
                    .insert(labels.clone(), alert);
                last_alert = Some(labels);
            }
            "annotations" => {
                let (annotations, _) = parse_label_set(rest).map_err(context)?;
                let labels = last_alert
                    .take()
                    .ok_or_else(|| context("annotations of no alert".into()))?;
                observation_at(&mut golden, &current)
                    .map_err(context)?
                    .alerts
                    .get_mut(&labels)
                    .unwrap()
                    .annotations = annotations;
            }
            "series" => {
                let (labels, rest) = parse_label_set(rest).map_err(context)?;
                let value = parse_value(rest.trim()).map_err(context)?;
                observation_at(&mut golden, &current)
                    .map_err(context)?
                    .series
                    .insert(labels, value);
            }
            other => return Err(context(format!("unknown line {other:?}"))),
        }
    }
    Ok(golden)
}

// ---------------------------------------------------------------------------------------------
// Recording from promtool
// ---------------------------------------------------------------------------------------------

/// What one `promtool test rules` run reported.
#[derive(Debug, Default)]
struct PromtoolReport {
    /// `rule: X, time: T, err: E` lines: the evaluation at T failed, promtool stopped there.
    rule_errors: Vec<(i64, String, String)>,
    /// Firing alerts (labels, annotations) by evaluation time and alert name.
    firing: BTreeMap<(i64, String), Vec<(LabelSet, LabelSet)>>,
    /// The output query's result by evaluation time.
    series: BTreeMap<i64, Vec<(LabelSet, f64)>>,
}

/// Parses promtool's failure report (its standard error).
fn parse_promtool_report(text: &str) -> Result<PromtoolReport, String> {
    enum Block {
        None,
        Alert(i64, String),
        Expr(i64),
    }
    let mut report = PromtoolReport::default();
    let mut block = Block::None;
    let mut pending_labels: Option<LabelSet> = None;
    for (index, line) in text.lines().enumerate() {
        let context = |err: String| format!("promtool output line {}: {err}: {line:?}", index + 1);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("    alertname: ") {
            let (name, time) = rest
                .split_once(", time: ")
                .ok_or_else(|| context("no time".into()))?;
            let time = time.trim().trim_end_matches(',');
            block = Block::Alert(parse_duration_ms(time).map_err(context)?, name.to_owned());
        } else if let Some(rest) = line.strip_prefix("    expr: ") {
            let (_, time) = rest
                .rsplit_once(", time: ")
                .ok_or_else(|| context("no time".into()))?;
            let time = time.trim().trim_end_matches(',');
            block = Block::Expr(parse_duration_ms(time).map_err(context)?);
        } else if let Some(rest) = line.strip_prefix("    rule: ") {
            let (rule, rest) = rest
                .split_once(", time: ")
                .ok_or_else(|| context("no time".into()))?;
            let (time, error) = rest
                .split_once(", err: ")
                .ok_or_else(|| context("no err".into()))?;
            let ts = parse_duration_ms(time).map_err(context)?;
            report.rule_errors.push((ts, rule.to_owned(), error.to_owned()));
            block = Block::None;
        } else if trimmed == "FAILED:" || trimmed.starts_with("exp:") || trimmed == "got:[" || trimmed == "]"
        {
        } else if let Some(rest) = trimmed.strip_prefix("got:") {
            let Block::Expr(ts) = block else {
                return Err(context("`got:` outside an expression".into()));
            };
            let entry = report.series.entry(ts).or_default();
            let mut rest = rest.trim();
            while !rest.is_empty() {
                let (labels, after) = parse_label_set(rest).map_err(context)?;
                let after = after.trim_start();
                let end = after.find(", {").unwrap_or(after.len());
                entry.push((labels, parse_value(after[..end].trim()).map_err(context)?));
                rest = after[end..].trim_start_matches(',').trim_start();
            }
        } else if let Some(rest) = trimmed.strip_prefix("Labels:") {
            pending_labels = Some(parse_label_set(rest).map_err(context)?.0);
        } else if let Some(rest) = trimmed.strip_prefix("Annotations:") {
            let Block::Alert(ts, name) = &block else {
                return Err(context("annotations outside an alert".into()));
            };
            let annotations = parse_label_set(rest).map_err(context)?.0;
            let labels = pending_labels
                .take()
                .ok_or_else(|| context("annotations without labels".into()))?;
            report
                .firing
                .entry((*ts, name.clone()))
                .or_default()
                .push((labels, annotations));
        } else if trimmed.ends_with(':') && trimmed[..trimmed.len() - 1].bytes().all(|b| b.is_ascii_digit()) {
            // `0:`, `1:`: the index of an alert in the list.
        } else {
            return Err(context("unexpected line".into()));
        }
    }
    Ok(report)
}

/// promtool 2.42's version string (`2.42.0+ds`).
fn promtool_version(promtool: &Path) -> String {
    let output = Command::new(promtool)
        .arg("--version")
        .output()
        .unwrap_or_else(|err| panic!("running {} --version: {err}", promtool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let version = text
        .split_whitespace()
        .skip_while(|word| *word != "version")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    assert!(
        version.starts_with("2.42."),
        "{} is not promtool 2.42: {text}",
        promtool.display()
    );
    version
}

/// Runs `promtool test rules` on `scenario` with the rule file `rules_path`, asking for every
/// alert and the output query at every evaluation time up to `last_ms`.
fn run_promtool(
    promtool: &Path,
    dir: &Path,
    scenario: &Scenario,
    rules_path: &Path,
    last_ms: i64,
) -> PromtoolReport {
    use serde_yaml::{Mapping, Value as Yaml};
    let times: Vec<i64> = scenario
        .evaluation_times()
        .into_iter()
        .filter(|ts| *ts <= last_ms)
        .collect();
    let yaml_map = |pairs: Vec<(&str, Yaml)>| {
        Yaml::Mapping(
            pairs
                .into_iter()
                .map(|(k, v)| (Yaml::from(k), v))
                .collect::<Mapping>(),
        )
    };
    let mut alert_tests = Vec::new();
    let mut expr_tests = Vec::new();
    for ts in &times {
        for name in scenario.alert_names() {
            alert_tests.push(yaml_map(vec![
                ("eval_time", Yaml::from(format_duration_ms(*ts))),
                ("alertname", Yaml::from(name)),
            ]));
        }
        expr_tests.push(yaml_map(vec![
            ("expr", Yaml::from(scenario.output_query())),
            ("eval_time", Yaml::from(format_duration_ms(*ts))),
        ]));
    }
    let input_series: Vec<Yaml> = scenario
        .input
        .input_series
        .iter()
        .map(|series| {
            yaml_map(vec![
                ("series", Yaml::from(series.series.clone())),
                ("values", Yaml::from(series.values.clone())),
            ])
        })
        .collect();
    let group_order: Vec<Yaml> = scenario
        .rules
        .groups
        .iter()
        .map(|group| Yaml::from(group.name.clone()))
        .collect();
    let test = yaml_map(vec![
        (
            "rule_files",
            Yaml::Sequence(vec![Yaml::from(rules_path.display().to_string())]),
        ),
        (
            "evaluation_interval",
            Yaml::from(scenario.input.evaluation_interval.clone()),
        ),
        // Without it, promtool evaluates the groups in map order.
        ("group_eval_order", Yaml::Sequence(group_order)),
        (
            "tests",
            Yaml::Sequence(vec![yaml_map(vec![
                ("interval", Yaml::from(scenario.input.interval.clone())),
                ("input_series", Yaml::Sequence(input_series)),
                ("alert_rule_test", Yaml::Sequence(alert_tests)),
                ("promql_expr_test", Yaml::Sequence(expr_tests)),
            ])]),
        ),
    ]);
    let test_path = dir.join(format!("{}.test.yml", scenario.name));
    std::fs::write(&test_path, serde_yaml::to_string(&test).unwrap()).unwrap();

    let stdout_path = dir.join("promtool.stdout");
    let stderr_path = dir.join("promtool.stderr");
    let mut child = Command::new(promtool)
        .arg("test")
        .arg("rules")
        .arg(&test_path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|err| panic!("starting {}: {err}", promtool.display()));
    let deadline = Instant::now() + PROMTOOL_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "promtool ran longer than {PROMTOOL_TIMEOUT:?} on {}",
                scenario.name
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        (status.success() && stdout.contains("SUCCESS"))
            || (status.code() == Some(1) && stderr.contains("FAILED:")),
        "promtool failed on {} ({status}):\n{stdout}\n{stderr}",
        scenario.name
    );
    parse_promtool_report(&stderr).unwrap_or_else(|err| panic!("{}: {err}\n{stderr}", scenario.name))
}

/// The rule file with `for` and `keep_firing_for` removed from every alerting rule: then an
/// alert is firing exactly when its sample is in the expression's result, with labels and
/// annotations expanded from that sample, which is where promtool shows them.
fn probe_rules(scenario: &Scenario) -> String {
    let text = std::fs::read_to_string(scenario.rules_path()).unwrap();
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for group in yaml["groups"].as_sequence_mut().unwrap() {
        for rule in group["rules"].as_sequence_mut().unwrap() {
            let rule = rule.as_mapping_mut().unwrap();
            if rule.contains_key("alert") {
                rule.remove("for");
                rule.remove("keep_firing_for");
            }
        }
    }
    serde_yaml::to_string(&yaml).unwrap()
}

/// The labels of the `ALERTS` (with `alertstate`) or `ALERTS_FOR_STATE` series of an alert,
/// built as 2.42's `AlertingRule.sample` builds them: the rule's label templates as written,
/// overwritten by the alert's labels (so a label whose template expanded to nothing keeps its
/// template text), then the name.
fn alert_series_labels(rule: &RuleConfig, alert_labels: &LabelSet, state: Option<&str>) -> LabelSet {
    let mut labels: BTreeMap<String, String> = rule.labels.clone();
    labels.extend(alert_labels.iter().cloned());
    let name = if state.is_some() {
        "ALERTS"
    } else {
        "ALERTS_FOR_STATE"
    };
    labels.insert("__name__".to_owned(), name.to_owned());
    labels.insert("alertname".to_owned(), rule.alert.clone().unwrap_or_default());
    if let Some(state) = state {
        labels.insert("alertstate".to_owned(), state.to_owned());
    }
    labels.into_iter().collect()
}

/// Records one scenario: its observation at every evaluation time Prometheus reached.
fn record_scenario(promtool: &Path, dir: &Path, scenario: &Scenario) -> BTreeMap<i64, Observation> {
    let until = scenario.evaluate_until_ms;
    // A failing rule stops promtool at that evaluation, before it checks alerts and before any
    // query: the first run finds the failure, a second one stops just before it.
    let full = run_promtool(promtool, dir, scenario, &scenario.rules_path(), until);
    let stop_ms = full.rule_errors.iter().map(|(ts, _, _)| *ts).min();
    let stop_errors: BTreeMap<String, String> = full
        .rule_errors
        .iter()
        .map(|(_, rule, message)| (rule.clone(), message.clone()))
        .collect();
    let last_ms = stop_ms.map_or(until, |stop| stop - scenario.evaluation_interval_ms);
    let main = if stop_ms.is_some() {
        let report = run_promtool(promtool, dir, scenario, &scenario.rules_path(), last_ms);
        assert!(
            report.rule_errors.is_empty(),
            "{}: promtool failed before {last_ms} ms on the second run: {:?}",
            scenario.name,
            report.rule_errors
        );
        report
    } else {
        full
    };
    let probe_path = dir.join(format!("{}.probe.rules.yml", scenario.name));
    std::fs::write(&probe_path, probe_rules(scenario)).unwrap();
    let probe = run_promtool(promtool, dir, scenario, &probe_path, last_ms);
    assert!(
        probe.rule_errors.is_empty(),
        "{}: the probe rules failed: {:?}",
        scenario.name,
        probe.rule_errors
    );
    let rules_by_alert: BTreeMap<String, &RuleConfig> = scenario
        .rules()
        .filter_map(|rule| Some((rule.alert.clone()?, rule)))
        .collect();

    let mut observations = BTreeMap::new();
    for ts in scenario.evaluation_times() {
        if ts > last_ms {
            break;
        }
        let series: BTreeMap<LabelSet, f64> = main
            .series
            .get(&ts)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut alerts = BTreeMap::new();
        let mut matched_firing = 0usize;
        for series_labels in series.keys() {
            if label(series_labels, "__name__").as_deref() != Some("ALERTS") {
                continue;
            }
            let name = label(series_labels, "alertname").unwrap();
            let state = label(series_labels, "alertstate").unwrap();
            let rule = rules_by_alert[&name];
            // Firing alerts from the rules as they are; pending ones from the probe, where
            // they fire (same labels and annotations: same sample, same templates).
            let source = if state == "firing" { &main } else { &probe };
            let candidates = source
                .firing
                .get(&(ts, name.clone()))
                .cloned()
                .unwrap_or_default();
            let found: Vec<&(LabelSet, LabelSet)> = candidates
                .iter()
                .filter(|(labels, _)| alert_series_labels(rule, labels, Some(&state)) == *series_labels)
                .collect();
            let [(alert_labels, annotations)] = found.as_slice() else {
                panic!(
                    "{} at {}: {} alerts match {}; candidates {candidates:?}",
                    scenario.name,
                    format_duration_ms(ts),
                    found.len(),
                    format_label_set(series_labels)
                );
            };
            let for_state = alert_series_labels(rule, alert_labels, None);
            let active_at_s = series.get(&for_state).unwrap_or_else(|| {
                panic!(
                    "{} at {}: no {}",
                    scenario.name,
                    format_duration_ms(ts),
                    format_label_set(&for_state)
                )
            });
            if state == "firing" {
                matched_firing += 1;
                // Firing and in the result: the probe shows the same alert.
                if let Some((_, probe_annotations)) = probe
                    .firing
                    .get(&(ts, name.clone()))
                    .and_then(|alerts| alerts.iter().find(|(labels, _)| labels == alert_labels))
                {
                    assert_eq!(
                        probe_annotations,
                        annotations,
                        "{} at {}: the probe disagrees on {}",
                        scenario.name,
                        format_duration_ms(ts),
                        format_label_set(alert_labels)
                    );
                }
            }
            alerts.insert(
                alert_labels.clone(),
                ObservedAlert {
                    state,
                    active_at_ms: (*active_at_s * 1000.0) as i64,
                    annotations: annotations.clone(),
                },
            );
        }
        let firing_reported: usize = main
            .firing
            .iter()
            .filter(|((at, _), _)| *at == ts)
            .map(|(_, alerts)| alerts.len())
            .sum();
        assert_eq!(
            matched_firing,
            firing_reported,
            "{} at {}: firing alerts without an ALERTS series",
            scenario.name,
            format_duration_ms(ts)
        );
        observations.insert(
            ts,
            Observation {
                errors: BTreeMap::new(),
                stopped: false,
                alerts,
                series,
            },
        );
    }
    if let Some(stop) = stop_ms {
        observations.insert(
            stop,
            Observation {
                errors: stop_errors,
                stopped: true,
                ..Observation::default()
            },
        );
    }
    observations
}

/// Re-records `differential/golden.txt` with promtool 2.42 (`$PROMTOOL`, else
/// `/usr/bin/promtool`). For each scenario, `promtool test rules` runs on a generated test file
/// holding the scenario's `input_series`, its `evaluation_interval`, `group_eval_order` in file
/// order, and, for every evaluation time, an `alert_rule_test` per alert name and a
/// `promql_expr_test` of the series the rules write, all expecting nothing: promtool's report
/// then lists what it got. The runs:
///
/// 1. the rules as they are: firing alerts with labels and annotations, `ALERTS` (labels and
///    `alertstate`), `ALERTS_FOR_STATE` (activeAt, in whole seconds) and recorded series;
///    a failing rule stops promtool at that evaluation, before it checks alerts or runs
///    queries: then the failure is kept and this run is repeated up to the evaluation before;
/// 2. the rules without `for` and `keep_firing_for`, where every alert of the expression's
///    result fires: the labels and annotations of the alerts that are pending in run 1
///    (promtool only reports firing alerts). Where both runs show a firing alert, the recorder
///    checks they agree.
///
/// ```text
/// cargo test -p obs-rules --test differential -- --ignored record_golden_from_prometheus
/// ```
#[test]
#[ignore = "needs promtool 2.42; re-records tests/differential/golden.txt"]
fn record_golden_from_prometheus() {
    let promtool =
        PathBuf::from(std::env::var("PROMTOOL").unwrap_or_else(|_| "/usr/bin/promtool".to_owned()));
    let version = promtool_version(&promtool);
    let scenarios = load_scenarios();
    let dir = tempfile::tempdir().unwrap();
    let mut golden = Golden {
        prometheus_version: version,
        fixtures: fixtures_hash(&scenarios),
        scenarios: BTreeMap::new(),
    };
    for scenario in &scenarios {
        let observations = record_scenario(&promtool, dir.path(), scenario);
        let alerts: usize = observations.values().map(|o| o.alerts.len()).sum();
        println!(
            "{}: {} evaluations, {alerts} active alerts",
            scenario.name,
            observations.len()
        );
        golden.scenarios.insert(scenario.name.clone(), observations);
    }
    let path = differential_path("golden.txt");
    std::fs::write(&path, render_golden(&golden)).unwrap();
    println!("wrote {}", path.display());
}

// ---------------------------------------------------------------------------------------------
// Our evaluation
// ---------------------------------------------------------------------------------------------

/// Series in memory, read by the engine and written by the groups.
#[derive(Default)]
struct Memory(Mutex<BTreeMap<Labels, BTreeMap<i64, f64>>>);

impl Memory {
    fn add(&self, labels: Labels, ts: i64, value: f64) {
        self.0
            .lock()
            .unwrap()
            .entry(labels)
            .or_default()
            .insert(ts, value);
    }
}

impl MetricsQuerier for Memory {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesSamples>, StorageError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(labels, _)| matchers.iter().all(|m| m.matches_labels(labels)))
            .map(|(labels, samples)| SeriesSamples {
                labels: labels.clone(),
                samples: samples.range(mint..=maxt).map(|(t, v)| (*t, *v)).collect(),
            })
            .filter(|series| !series.samples.is_empty())
            .collect())
    }
    fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
        Ok(vec![])
    }
    fn label_values(&self, _: &str, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, StorageError> {
        Ok(vec![])
    }
    fn metadata(&self, _: Option<&str>, _: Option<usize>) -> Vec<(String, Vec<MetricMetadata>)> {
        vec![]
    }
}

/// Writes rule results into the memory, as the appliance's sink writes them into its store.
struct Sink(Arc<Memory>);

impl SeriesSink for Sink {
    fn write(&self, batch: Vec<SeriesSamples>) -> Result<(), String> {
        for series in batch {
            for (ts, value) in series.samples {
                self.0.add(series.labels.clone(), ts, value);
            }
        }
        Ok(())
    }
}

/// Evaluates a scenario with `Group::evaluate`, every group at every evaluation time up to
/// `last_ms`, in file order (as promtool does, whatever the groups' own intervals).
fn replay(scenario: &Scenario, last_ms: i64) -> BTreeMap<i64, Observation> {
    let memory = Arc::new(Memory::default());
    for (labels, samples) in scenario.series() {
        let labels = Labels::from_pairs(labels).unwrap();
        for (ts, value) in samples {
            memory.add(labels.clone(), ts, value);
        }
    }
    let querier: Arc<dyn MetricsQuerier> = Arc::clone(&memory) as Arc<dyn MetricsQuerier>;
    let options = EngineOptions {
        default_subquery_step_ms: scenario.evaluation_interval_ms,
        ..EngineOptions::default()
    };
    let engine = Engine::new(Arc::clone(&querier), options);
    let sink = Sink(Arc::clone(&memory));
    let file = scenario.rules_path().display().to_string();
    let groups: Vec<Group> = scenario
        .rules
        .groups
        .iter()
        .map(|config| Group::new(config, &file, scenario.evaluation_interval_ms))
        .collect();
    let mut observations = BTreeMap::new();
    for ts in scenario.evaluation_times() {
        if ts > last_ms {
            break;
        }
        for group in &groups {
            group.evaluate(&engine, querier.as_ref(), &sink, ts);
        }
        let mut observation = Observation::default();
        for rule in groups.iter().flat_map(|group| group.rules.iter()) {
            let health = rule.health.lock().unwrap().clone();
            if health.health == "err" && health.last_evaluation_ms == Some(ts) {
                observation
                    .errors
                    .insert(rule.name().to_owned(), health.last_error.clone());
            }
            for alert in rule.alerts.lock().unwrap().values() {
                if alert.state == AlertState::Inactive {
                    continue;
                }
                observation.alerts.insert(
                    label_set_of(&alert.labels),
                    ObservedAlert {
                        state: alert.state.as_str().to_owned(),
                        active_at_ms: alert.active_at,
                        annotations: alert
                            .annotations
                            .iter()
                            .map(|(name, value)| (name.clone(), value.clone()))
                            .collect(),
                    },
                );
            }
        }
        match engine.instant(&scenario.output_query(), ts) {
            Ok(Value::Vector(samples)) => {
                for sample in samples {
                    observation.series.insert(label_set_of(&sample.labels), sample.v);
                }
            }
            other => panic!(
                "{} at {ts} ms: the output query answered {other:?}",
                scenario.name
            ),
        }
        observations.insert(ts, observation);
    }
    observations
}

// ---------------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------------

/// `known_differences.txt`: keys `<scenario> alerts|annotations|series|errors <rule>`, each
/// block below
/// `# reason` lines; a blank line ends a block.
fn load_known_differences() -> BTreeMap<String, String> {
    let path = differential_path("known_differences.txt");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    let mut known = BTreeMap::new();
    let mut reason = String::new();
    let mut reason_done = false;
    for (index, line) in text.lines().enumerate() {
        if let Some(comment) = line.strip_prefix('#') {
            if reason_done {
                reason.clear();
                reason_done = false;
            }
            if !reason.is_empty() {
                reason.push(' ');
            }
            reason.push_str(comment.trim());
        } else if line.trim().is_empty() {
            reason.clear();
            reason_done = false;
        } else {
            assert!(
                !reason.is_empty(),
                "{}:{}: a known difference needs a `# reason` line above it",
                path.display(),
                index + 1
            );
            reason_done = true;
            let previous = known.insert(line.trim().to_owned(), reason.clone());
            assert!(
                previous.is_none(),
                "{}:{}: {} is listed twice",
                path.display(),
                index + 1,
                line.trim()
            );
        }
    }
    known
}

/// The rule a series or alert belongs to: the alert name for alerts and `ALERTS*`, else the
/// recorded metric's name.
fn rule_of(labels: &LabelSet) -> String {
    let name = label(labels, "__name__").unwrap_or_default();
    if name.is_empty() || name == "ALERTS" || name == "ALERTS_FOR_STATE" {
        label(labels, "alertname").unwrap_or(name)
    } else {
        name
    }
}

/// Lines only Prometheus has (`-`) and only we have (`+`), by rule.
fn diff_lines(expected: &[(String, String)], actual: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (rule, line) in expected {
        if !actual.iter().any(|(_, other)| other == line) {
            out.entry(rule.clone()).or_default().push(format!("- {line}"));
        }
    }
    for (rule, line) in actual {
        if !expected.iter().any(|(_, other)| other == line) {
            out.entry(rule.clone()).or_default().push(format!("+ {line}"));
        }
    }
    out
}

/// Differences at one evaluation: key (`<kind> <rule>`) → lines (`-` Prometheus, `+` ours).
fn compare_observation(expected: &Observation, actual: &Observation) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let error_lines = |observation: &Observation| -> Vec<(String, String)> {
        observation
            .errors
            .iter()
            .map(|(rule, message)| (rule.clone(), format!("error {rule} {}", go_quote(message))))
            .collect()
    };
    for (rule, lines) in diff_lines(&error_lines(expected), &error_lines(actual)) {
        out.insert(format!("errors {rule}"), lines);
    }
    if expected.stopped {
        return out;
    }
    // An alert on both sides with the same state and activeAt differs in its annotations
    // (`annotations <rule>`); any other difference is one of `alerts <rule>`.
    let alert_line =
        |labels: &LabelSet, alert: &ObservedAlert| render_alert(labels, alert).trim_end().replace('\n', " ");
    for (labels, alert) in &expected.alerts {
        let (kind, ours) = match actual.alerts.get(labels) {
            Some(ours) if ours == alert => continue,
            Some(ours) if ours.state == alert.state && ours.active_at_ms == alert.active_at_ms => {
                ("annotations", Some(ours))
            }
            ours => ("alerts", ours),
        };
        let lines = out.entry(format!("{kind} {}", rule_of(labels))).or_default();
        lines.push(format!("- {}", alert_line(labels, alert)));
        if let Some(ours) = ours {
            lines.push(format!("+ {}", alert_line(labels, ours)));
        }
    }
    for (labels, alert) in &actual.alerts {
        if !expected.alerts.contains_key(labels) {
            out.entry(format!("alerts {}", rule_of(labels)))
                .or_default()
                .push(format!("+ {}", alert_line(labels, alert)));
        }
    }
    // Series match with a tolerance: compare by label set first.
    let mut series_out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (labels, value) in &expected.series {
        match actual.series.get(labels) {
            Some(ours) if values_match(*value, *ours) => {}
            _ => series_out
                .entry(rule_of(labels))
                .or_default()
                .push(format!("- {}", render_series(labels, *value).trim_end())),
        }
    }
    for (labels, value) in &actual.series {
        match expected.series.get(labels) {
            Some(theirs) if values_match(*theirs, *value) => {}
            _ => series_out
                .entry(rule_of(labels))
                .or_default()
                .push(format!("+ {}", render_series(labels, *value).trim_end())),
        }
    }
    for (rule, lines) in series_out {
        out.insert(format!("series {rule}"), lines);
    }
    out
}

#[test]
fn rule_evaluation_matches_prometheus_golden() {
    let scenarios = load_scenarios();
    let golden_path = differential_path("golden.txt");
    let golden_text = std::fs::read_to_string(&golden_path).unwrap_or_else(|err| {
        panic!(
            "reading {}: {err}; record it with {RECORD_COMMAND}",
            golden_path.display()
        )
    });
    let golden = parse_golden(&golden_text).unwrap();
    assert_eq!(
        golden.fixtures,
        fixtures_hash(&scenarios),
        "golden.txt was recorded from other scenarios: re-record it with {RECORD_COMMAND}"
    );
    let names: Vec<&String> = scenarios.iter().map(|scenario| &scenario.name).collect();
    assert_eq!(
        golden.scenarios.keys().collect::<Vec<_>>(),
        names,
        "golden.txt and scenarios/ name other scenarios: re-record"
    );
    let known = load_known_differences();

    // key (`<scenario> <kind> <rule>`) → report lines.
    let mut differences: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut evaluations, mut alerts, mut series) = (0usize, 0usize, 0usize);
    for scenario in &scenarios {
        let expected = &golden.scenarios[&scenario.name];
        let last_ms = *expected.keys().last().unwrap();
        let times: Vec<i64> = scenario
            .evaluation_times()
            .into_iter()
            .filter(|ts| *ts <= last_ms)
            .collect();
        assert_eq!(
            expected.keys().copied().collect::<Vec<_>>(),
            times,
            "{}: golden.txt does not hold every evaluation: re-record",
            scenario.name
        );
        let actual = replay(scenario, last_ms);
        for (ts, expected_observation) in expected {
            evaluations += 1;
            alerts += expected_observation.alerts.len();
            series += expected_observation.series.len();
            for (key, lines) in compare_observation(expected_observation, &actual[ts]) {
                let report = differences.entry(format!("{} {key}", scenario.name)).or_default();
                report.push(format!("at {}:", format_duration_ms(*ts)));
                report.extend(lines.into_iter().map(|line| format!("    {line}")));
            }
        }
    }
    assert!(
        evaluations >= MIN_EVALUATIONS,
        "golden.txt holds only {evaluations} evaluations"
    );
    println!(
        "Rule evaluation against Prometheus {}: {} scenarios, {evaluations} evaluations, {alerts} active alerts, \
         {series} series samples; {} keys differ",
        golden.prometheus_version,
        scenarios.len(),
        differences.len()
    );
    let mut unexpected = 0usize;
    for (key, report) in &differences {
        let tag = if known.contains_key(key) {
            "known"
        } else {
            unexpected += 1;
            "NEW"
        };
        println!("  [{tag}] {key} (- Prometheus, + ours)");
        for line in report {
            println!("      {line}");
        }
    }
    let fixed: Vec<&String> = known
        .keys()
        .filter(|key| !differences.contains_key(*key))
        .collect();
    for key in &fixed {
        println!("  [FIXED] listed in known_differences.txt but no longer differs: {key}");
    }
    assert!(
        unexpected == 0 && fixed.is_empty(),
        "{unexpected} differences from Prometheus 2.42 are not listed in known_differences.txt, and {} listed \
         ones no longer differ (run with --nocapture for details)",
        fixed.len()
    );
}

#[test]
fn series_values_expand_like_promtool() {
    let expand = |text: &str| expand_series_values(text).unwrap();
    assert_eq!(expand("1+1x3"), vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)]);
    assert_eq!(expand("_x2 5x1"), vec![None, None, Some(5.0), Some(5.0)]);
    assert_eq!(expand("-2+0.5x2"), vec![Some(-2.0), Some(-1.5), Some(-1.0)]);
    assert_eq!(expand("1e3 _ -1e-3"), vec![Some(1000.0), None, Some(-0.001)]);
    assert_eq!(expand("10-2.5x1"), vec![Some(10.0), Some(7.5)]);
    let special = expand("NaN Inf -Inf stale");
    assert!(special[0].unwrap().is_nan());
    assert_eq!(special[1], Some(f64::INFINITY));
    assert_eq!(special[2], Some(f64::NEG_INFINITY));
    assert_eq!(special[3].unwrap().to_bits(), STALE_NAN_BITS);
    // Accumulated like Prometheus (`v += d`), not multiplied: 0.3 - 20 × 0.005 is not 0.2.
    let falling = expand("0.3-0.005x20");
    let mut accumulated = 0.3;
    for _ in 0..20 {
        accumulated -= 0.005;
    }
    assert_eq!(falling[20], Some(accumulated));
    assert!(expand_series_values("1+1").is_err());
    assert!(expand_series_values("NaNx2").is_err());
}

#[test]
fn durations_and_label_sets_round_trip() {
    for (text, ms) in [
        ("0s", 0),
        ("15s", 15_000),
        ("1m15s", 75_000),
        ("20m", 1_200_000),
        ("1h0m5s", 3_605_000),
    ] {
        assert_eq!(format_duration_ms(ms), text);
        assert_eq!(parse_duration_ms(text), Ok(ms));
    }
    assert_eq!(parse_duration_ms("20m0s"), Ok(1_200_000));
    let labels: LabelSet = vec![
        ("a".to_owned(), "quote \" backslash \\ line\nfeed °C".to_owned()),
        ("b".to_owned(), String::new()),
        ("c".to_owned(), "\u{1}\u{7f}".to_owned()),
    ];
    let text = format_label_set(&labels);
    assert_eq!(parse_label_set(&text), Ok((labels, "")));
    assert_eq!(
        go_unquote(r#""\x41\u00e9\101\t" rest"#),
        Ok(("Aé\u{41}\t".to_owned(), " rest"))
    );
    assert_eq!(
        parse_series_selector(r#"up{job="node", instance="a:1"}"#).unwrap(),
        vec![
            ("__name__".to_owned(), "up".to_owned()),
            ("instance".to_owned(), "a:1".to_owned()),
            ("job".to_owned(), "node".to_owned()),
        ]
    );
}

#[test]
fn promtool_reports_are_parsed() {
    // Verbatim from promtool 2.42.0+ds.
    let report = r#"    alertname: High, time: 1m15s, 
        exp:[], 
        got:[
            0:
              Labels:{alertname="High", room="a", severity="page"}
              Annotations:{pct="3000%", summary="a is 30 \"q\""},
            1:
              Labels:{alertname="High", room="b", severity="warn"}
              Annotations:{pct="2200%", summary="b is 22 \"q\""}
            ]
    expr: "{__name__=~\"ALERTS|ALERTS_FOR_STATE|job:.*\"}", time: 1m,
        exp: nil
        got: {__name__="ALERTS", alertname="High", alertstate="firing", room="a", severity="page"} 1E+00, {__name__="ALERTS_FOR_STATE", alertname="High", room="a", severity="page"} 1.5E+01, {__name__="temp", room="a"} NaN
    rule: Many, time: 15s, err: exceeded limit of 1 with 2 alerts
"#;
    let parsed = parse_promtool_report(report).unwrap();
    assert_eq!(
        parsed.rule_errors,
        vec![(
            15_000,
            "Many".to_owned(),
            "exceeded limit of 1 with 2 alerts".to_owned()
        )]
    );
    let firing = &parsed.firing[&(75_000, "High".to_owned())];
    assert_eq!(firing.len(), 2);
    assert_eq!(label(&firing[0].1, "summary").as_deref(), Some("a is 30 \"q\""));
    let series = &parsed.series[&60_000];
    assert_eq!(series.len(), 3);
    assert_eq!(series[1].1, 15.0);
    assert!(series[2].1.is_nan());
}
