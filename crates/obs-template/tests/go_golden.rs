//! Differential tests against Go: every case in `golden/go_text_template.txt` was executed by Go
//! 1.19's `text/template` (with Prometheus' functions ported verbatim for `prom` cases) and its
//! output or error recorded next to the input.
//!
//! File format, two lines per case:
//!
//! ```text
//! MODE<TAB>DATA<TAB>TEMPLATE
//! OK<TAB>OUTPUT          or          ERR<TAB>ERROR MESSAGE
//! ```
//!
//! The file holds hand-written cases for every construct, builtin and Prometheus function, then
//! randomly generated templates (well-formed and mutated) and random `printf` / `humanize*` calls.
//! Two known divergences were left out of the random part: the recorder's Go 1.19 cannot `range`
//! over an integer (Go 1.22+ can, and so can we), and `slice` with an index read from a
//! `map[string]interface {}` (Go reports the interface type, we use the value).
//!
//! `\n`, `\t` and `\\` are escaped in TEMPLATE, OUTPUT and ERROR MESSAGE. MODE is `go` (builtins,
//! `missingkey=default`), `zero` / `error` (other `missingkey` options) or `prom` (Prometheus'
//! expander: its functions, `missingkey=zero`, wrapped errors; with DATA `alert` the `$labels`…
//! prefix is prepended). DATA names a fixture defined below, mirrored in the Go recorder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use obs_template::prometheus::ALERT_TEMPLATE_PREFIX;
use obs_template::{
    MissingKey, PrometheusContext, Sample, Template, TemplateError, Value, alert_template_data,
};

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

fn string_map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}

fn fixture(name: &str) -> Value {
    match name {
        "nil" => Value::Nil,
        "map" => map(vec![
            ("a", Value::Int(1)),
            ("s", Value::from("str")),
            ("f", Value::Float(1.5)),
            (
                "l",
                Value::List(vec![
                    Value::Int(1),
                    Value::from("two"),
                    Value::Float(3.5),
                    Value::Nil,
                ]),
            ),
            ("m", map(vec![("x", Value::Int(1)), ("y", Value::from("z"))])),
            ("sm", Value::StringMap(string_map(&[("k", "v"), ("k2", "v2")]))),
            ("t", Value::Bool(true)),
            ("e", Value::from("")),
            ("z", Value::Int(0)),
            ("el", Value::List(vec![])),
            ("n", Value::Nil),
            (
                "nested",
                map(vec![("inner", map(vec![("v", Value::from("deep"))]))]),
            ),
            ("big", Value::Float(1e21)),
            ("neg", Value::Float(-2.5)),
            ("html", Value::from("<a href=\"x\">&'</a>")),
            (
                "ls",
                Value::List(vec![Value::from("b"), Value::from("a"), Value::from("c")]),
            ),
            (
                "fl",
                Value::List(vec![
                    Value::Float(0.1),
                    Value::Float(1e6),
                    Value::Float(123456789.0),
                ]),
            ),
        ]),
        "list" => Value::List(vec![Value::Int(3), Value::Int(1), Value::Int(2)]),
        "alert" => alert_template_data(
            &string_map(&[
                ("alertname", "HighLatency"),
                ("instance", "host1.example.com:9090"),
                ("job", "api"),
            ]),
            &string_map(&[("cluster", "eu1")]),
            "http://prom.example:9090/prefix",
            0.1234,
        ),
        other => panic!("unknown fixture {other}"),
    }
}

fn prometheus_context() -> PrometheusContext {
    PrometheusContext {
        external_url: "http://prom.example:9090/prefix".to_owned(),
        timestamp_ms: 1_435_065_584_128,
        query: Some(Arc::new(|query: &str| {
            if query == "empty" {
                return Ok(Vec::new());
            }
            Ok(vec![
                Sample {
                    labels: string_map(&[("__name__", "up"), ("instance", "b")]),
                    value: 21.0,
                },
                Sample {
                    labels: string_map(&[("__name__", "up"), ("instance", "a"), ("__value__", "sv")]),
                    value: 11.0,
                },
            ])
        })),
    }
}

fn run(mode: &str, data: &str, text: &str) -> Result<String, TemplateError> {
    let data = fixture(data);
    if mode == "prom" {
        let text = if matches!(data, Value::Object(_)) {
            format!("{ALERT_TEMPLATE_PREFIX}{text}")
        } else {
            text.to_owned()
        };
        return prometheus_context().expand("test", &text, &data);
    }
    let missing_key = match mode {
        "zero" => MissingKey::Zero,
        "error" => MissingKey::Error,
        _ => MissingKey::Default,
    };
    Template::parse("test", text)?
        .with_missing_key(missing_key)
        .execute(&data)
}

#[test]
fn outputs_and_errors_match_go() {
    check_golden(include_str!("golden/go_text_template.txt"));
}

/// Runs a golden file recorded elsewhere (e.g. from randomly generated templates):
/// `OBS_TEMPLATE_GOLDEN=/path cargo test -p obs-template --test go_golden -- --ignored`.
#[test]
#[ignore = "needs OBS_TEMPLATE_GOLDEN"]
fn outputs_and_errors_match_go_for_external_golden_file() {
    let path = std::env::var("OBS_TEMPLATE_GOLDEN").expect("OBS_TEMPLATE_GOLDEN is not set");
    let golden = std::fs::read_to_string(path).expect("cannot read the golden file");
    check_golden(&golden);
}

fn check_golden(golden: &str) {
    let lines: Vec<&str> = golden.lines().filter(|line| !line.is_empty()).collect();
    assert!(
        lines.len().is_multiple_of(2),
        "golden file has an odd number of lines"
    );
    let mut failures = Vec::new();
    for pair in lines.chunks(2) {
        let mut input = pair[0].splitn(3, '\t');
        let (Some(mode), Some(data), Some(text)) = (input.next(), input.next(), input.next()) else {
            panic!("bad input line {:?}", pair[0]);
        };
        let text = unescape(text);
        let expected = pair[1];
        let got = match run(mode, data, &text) {
            Ok(output) => format!("OK\t{output}"),
            Err(error) => format!("ERR\t{error}"),
        };
        let expected = unescape(expected);
        if got != expected {
            failures.push(format!(
                "mode {mode} data {data} template {text:?}\n    want {expected:?}\n    got  {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Go:\n{}",
        failures.len(),
        lines.len() / 2,
        failures.join("\n")
    );
}
