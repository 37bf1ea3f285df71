//! Engine behaviour on small hand-made data, checked against values worked out by hand from
//! Prometheus' definitions (the differential suite in `promql_compat.rs` covers breadth).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use obs_core::series::{Labels, Matcher, MetricMetadata, MetricsQuerier, SeriesSamples, StorageError};
use obs_promql::{Engine, EngineOptions, QueryError, json};

/// Series in memory, answering like the store does.
struct Memory(Vec<SeriesSamples>);

impl MetricsQuerier for Memory {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<SeriesSamples>, StorageError> {
        let mut out: Vec<SeriesSamples> = self
            .0
            .iter()
            .filter(|series| matchers.iter().all(|m| m.matches_labels(&series.labels)))
            .map(|series| SeriesSamples {
                labels: series.labels.clone(),
                samples: series
                    .samples
                    .iter()
                    .copied()
                    .filter(|(t, _)| *t >= mint && *t <= maxt)
                    .collect(),
            })
            .filter(|series| !series.samples.is_empty())
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
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

fn series(labels: &[(&str, &str)], samples: Vec<(i64, f64)>) -> SeriesSamples {
    SeriesSamples {
        labels: Labels::from_pairs(labels.iter().copied()).unwrap(),
        samples,
    }
}

/// A counter every 15 s for 10 minutes: `start + 10 * i`, reset to 0 at i = 20.
fn engine() -> Engine {
    let counter = |instance: &str, start: f64| {
        series(
            &[
                ("__name__", "requests_total"),
                ("instance", instance),
                ("job", "api"),
            ],
            (0..=40)
                .map(|i| {
                    let v = if i < 20 {
                        start + 10.0 * i as f64
                    } else {
                        10.0 * (i - 20) as f64
                    };
                    (i * 15_000, v)
                })
                .collect(),
        )
    };
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    Engine::new(
        Arc::new(Memory(vec![
            counter("a", 0.0),
            counter("b", 100.0),
            series(
                &[("__name__", "up"), ("instance", "a"), ("job", "api")],
                vec![(0, 1.0), (300_000, 1.0)],
            ),
            series(
                &[("__name__", "up"), ("instance", "b"), ("job", "api")],
                vec![(0, 0.0), (60_000, stale)],
            ),
            series(
                &[("__name__", "info"), ("instance", "a"), ("version", "1.2")],
                vec![(0, 1.0), (300_000, 1.0)],
            ),
        ])),
        EngineOptions::default(),
    )
}

fn instant(query: &str, t: i64) -> String {
    let value = engine().instant(query, t).unwrap();
    let mut out = String::new();
    json::write_data(&value, &mut out);
    out
}

#[test]
fn scalars_and_selectors() {
    assert_eq!(
        instant("1 + 2 * 3", 1_000),
        r#"{"resultType":"scalar","result":[1,"7"]}"#
    );
    assert_eq!(
        instant("2 ^ 3 ^ 2", 0),
        r#"{"resultType":"scalar","result":[0,"512"]}"#
    );
    assert_eq!(
        instant(r#""hi""#, 1_500),
        r#"{"resultType":"string","result":[1.500,"hi"]}"#
    );
    assert_eq!(
        instant("up", 30_000),
        r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[30,"1"]},{"metric":{"__name__":"up","instance":"b","job":"api"},"value":[30,"0"]}]}"#
    );
    // The stale marker ends instance b; a's last sample is still within the lookback at 5m.
    assert_eq!(
        instant("up", 90_000),
        r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[90,"1"]}]}"#
    );
    // Lookback: a sample exactly 5 minutes old still counts (2.42 closes the window).
    assert!(instant("up", 300_000).contains(r#""instance":"a""#));
    assert_eq!(
        instant("up offset 10m", 300_000),
        r#"{"resultType":"vector","result":[]}"#
    );
}

#[test]
fn rate_extrapolates_and_handles_resets() {
    // From 150 s to 300 s (both included): 11 samples 150..250 by 10 per 15 s for instance a,
    // a reset at 300 s.
    let text = instant("rate(requests_total{instance=\"a\"}[2m])", 240_000);
    assert!(text.contains(r#""value":[240,"0.6666666666666666"]"#), "{text}");
    let text = instant("increase(requests_total{instance=\"a\"}[5m])", 600_000);
    // 300 s..600 s: 0,10,…,200 → 200 in 300 s of samples, window 300 s.
    assert!(text.contains(r#""value":[600,"200"]"#), "{text}");
    let text = instant("resets(requests_total[10m])", 600_000);
    assert!(
        text.contains(r#"{"instance":"a","job":"api"},"value":[600,"1"]"#),
        "{text}"
    );
}

#[test]
fn aggregations_and_matching() {
    assert_eq!(
        instant("sum by (job) (requests_total)", 150_000),
        r#"{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[150,"300"]}]}"#
    );
    assert_eq!(
        instant("count without (instance) (up)", 0),
        r#"{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[0,"2"]}]}"#
    );
    let topk = instant("topk(1, requests_total)", 150_000);
    assert!(
        topk.contains(r#""instance":"b""#) && !topk.contains(r#""instance":"a""#),
        "{topk}"
    );
    let joined = instant("up * on (instance) group_left (version) info", 0);
    assert_eq!(
        joined,
        r#"{"resultType":"vector","result":[{"metric":{"instance":"a","job":"api","version":"1.2"},"value":[0,"1"]}]}"#
    );
    let err = engine().instant("requests_total + on (job) up", 0).unwrap_err();
    assert!(matches!(err, QueryError::Execution(_)), "{err}");
    assert_eq!(
        instant("up unless on (instance) info", 0),
        r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"b","job":"api"},"value":[0,"0"]}]}"#
    );
    assert_eq!(
        instant("up > bool 0", 0),
        r#"{"resultType":"vector","result":[{"metric":{"instance":"a","job":"api"},"value":[0,"1"]},{"metric":{"instance":"b","job":"api"},"value":[0,"0"]}]}"#
    );
}

#[test]
fn functions_and_subqueries() {
    assert_eq!(
        instant(r#"absent(nothing{job="x", a=~"b"})"#, 0),
        r#"{"resultType":"vector","result":[{"metric":{"job":"x"},"value":[0,"1"]}]}"#
    );
    assert_eq!(
        instant(
            r#"label_replace(up{instance="a"}, "host", "h-$1", "instance", "(.*)")"#,
            0
        ),
        r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","host":"h-a","instance":"a","job":"api"},"value":[0,"1"]}]}"#
    );
    // max_over_time of a subquery at 1m steps over 5m: times 0, 60, …, 300 s (0 to 160, then
    // the reset to 0 at 300 s).
    let text = instant("max_over_time(requests_total{instance=\"a\"}[5m:1m])", 300_000);
    assert!(text.contains(r#""value":[300,"160"]"#), "{text}");
    let text = instant("timestamp(up{instance=\"a\"})", 200_000);
    assert!(text.contains(r#""value":[200,"0"]"#), "{text}");
    let text = instant("requests_total{instance=\"a\"} @ 150", 600_000);
    assert!(text.contains(r#""value":[600,"100"]"#), "{text}");
}

#[test]
fn range_queries_gather_per_series() {
    let value = engine().range("sum(up)", 0, 120_000, 60_000).unwrap();
    let mut out = String::new();
    json::write_data(&value, &mut out);
    assert_eq!(
        out,
        r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"1"],[60,"1"],[120,"1"]]}]}"#
    );
    let err = engine().range("up[5m]", 0, 60_000, 15_000).unwrap_err();
    assert!(matches!(err, QueryError::BadData(_)));
    let err = engine().range("up", 0, 1_000_000_000, 1).unwrap_err();
    assert!(err.to_string().contains("11,000 points"), "{err}");
    let err = engine().instant("sum(", 0).unwrap_err();
    assert!(matches!(err, QueryError::BadData(_)));
}

#[test]
fn parser_panics_become_bad_data() {
    // promql-parser overflows a Duration on this input; found by the `promql` fuzz target.
    let err = engine()
        .instant("holt_winte(a[27777777777777777777 ]7m,0.5)", 0)
        .unwrap_err();
    assert!(matches!(err, QueryError::BadData(_)), "{err}");
    let err = engine().instant("a[27777777777777777777]", 0).unwrap_err();
    assert!(matches!(err, QueryError::BadData(_)), "{err}");
}

#[test]
fn escapes_before_multibyte_characters_are_fine() {
    // Found by the `promql` fuzz target: an escaped multi-byte character inside a string.
    let err = engine()
        .instant("3\\\\\"\\\\\\\\\\\\\\\u{341}\\\\", 0)
        .unwrap_err();
    assert!(matches!(err, QueryError::BadData(_)), "{err}");
    let text = instant(r#"label_replace(vector(1), "a", "\"é", "", "")"#, 0);
    assert!(text.contains(r#""a":"\"é""#), "{text}");
}

#[test]
fn limits_cancellation_and_timeouts_stop_queries() {
    use std::sync::atomic::AtomicBool;
    // A canceled query stops at its next check (the HTTP layer sets the flag when the client
    // goes away).
    let control = obs_promql::QueryControl {
        canceled: Some(Arc::new(AtomicBool::new(true))),
        ..obs_promql::QueryControl::default()
    };
    let err = engine()
        .range_with("sum(up)", 0, 600_000, 15_000, &control)
        .unwrap_err();
    assert!(matches!(err, QueryError::Canceled(_)), "{err}");
    // A query past its timeout stops too.
    let control = obs_promql::QueryControl {
        timeout: Some(std::time::Duration::ZERO),
        ..obs_promql::QueryControl::default()
    };
    let err = engine()
        .range_with("sum(up)", 0, 600_000, 15_000, &control)
        .unwrap_err();
    assert!(matches!(err, QueryError::Timeout(_)), "{err}");
    // Nested subqueries hold their points in memory: they count against max_samples.
    let small = Engine::new(
        Arc::new(Memory(vec![])),
        EngineOptions {
            max_samples: 10_000,
            ..EngineOptions::default()
        },
    );
    let err = small
        .instant(
            "max_over_time(max_over_time(vector(1)[10m:1s])[1h:1m])",
            3_600_000,
        )
        .unwrap_err();
    assert!(matches!(err, QueryError::TooManySamples), "{err}");
}
