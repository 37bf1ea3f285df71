//! OTLP metrics from the real OpenTelemetry Python SDK (PyPI `opentelemetry-sdk`,
//! `opentelemetry-exporter-otlp`), over HTTP and gRPC, both gzip-compressed, into the real
//! binary: the series the appliance stores are exactly what the OpenTelemetry → Prometheus
//! compatibility rules make of what the SDK sent.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Appliance;
use obs_core::partition::DataLayout;
use obs_core::series::{MatchOp, Matcher, MetricsQuerier};
use obs_metrics::store::{MetricsOptions, MetricsStore};

#[test]
fn opentelemetry_python_sdk_metrics_arrive_as_prometheus_series() {
    if !common::required_python_modules(
        &[
            "opentelemetry.sdk.metrics",
            "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
        ],
        "pip install opentelemetry-sdk opentelemetry-exporter-otlp (tests/run does it)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let quiet = common::no_scrape_config(dir.path());
    let mut appliance = Appliance::start(&data, &["--config", quiet.to_str().unwrap()]);
    appliance.wait_ready();
    appliance.run_python_client("otlp_metrics.py");
    // Metadata is kept in memory (as Prometheus does): check it before stopping.
    let (status, _, body) = common::get(&appliance.url("/api/v1/metadata"));
    assert_eq!(status, 200, "{body}");
    let metadata: serde_json::Value = serde_json::from_str(&body).unwrap();
    let entry = |name: &str| metadata["data"][name][0].clone();
    assert_eq!(
        entry("llm_requests_total"),
        serde_json::json!({"type": "counter", "help": "LLM requests", "unit": ""})
    );
    assert_eq!(
        entry("llm_latency_milliseconds"),
        serde_json::json!({"type": "histogram", "help": "LLM latency", "unit": "milliseconds"})
    );
    assert_eq!(entry("queue_depth")["type"], "gauge");
    assert_eq!(entry("gpu_temperature_celsius")["unit"], "celsius");

    appliance.signal("TERM");
    assert!(appliance.wait_exit(Duration::from_secs(10)).unwrap().success());

    let (store, _) = MetricsStore::open(&DataLayout::new(&data), MetricsOptions::default()).unwrap();
    for protocol in ["http", "grpc"] {
        let job = format!("agents/jarvis-{protocol}");
        let found = store
            .select(&[Matcher::equal("job", job.as_str())], 0, i64::MAX)
            .unwrap();
        let mut by_series: BTreeMap<String, f64> = BTreeMap::new();
        for series in &found {
            // force_flush and shutdown both export: the same cumulative state, twice.
            assert!(!series.samples.is_empty());
            let last = series.samples.last().unwrap().1;
            assert!(
                series.samples.iter().all(|sample| sample.1 == last),
                "{}: {:?}",
                series.labels,
                series.samples
            );
            let mut labels = series.labels.clone();
            // Only the SDK-dependent parts vary: keep the check exact for everything else.
            if labels.metric_name() == Some("target_info") {
                assert_eq!(labels.get("telemetry_sdk_language"), Some("python"), "{labels}");
                assert_eq!(labels.get("deployment_environment"), Some("test"), "{labels}");
                assert!(labels.get("telemetry_sdk_version").is_some(), "{labels}");
                labels = obs_core::series::Labels::series(
                    labels
                        .iter()
                        .filter(|label| {
                            !label.name.starts_with("telemetry_sdk") && !label.name.starts_with("service_")
                        })
                        .map(|label| (label.name.to_string(), label.value.to_string())),
                )
                .unwrap();
            }
            by_series.insert(labels.to_string(), last);
        }
        let identity = format!(r#"instance="pod-1", job="{job}""#);
        let scope = r#"otel_scope_name="obs-test", otel_scope_version="0.1""#;
        let common = format!("{identity}, {scope}");
        let mut expected: BTreeMap<String, f64> = BTreeMap::new();
        expected.insert(format!(r#"llm_requests_total{{agent="planner", {common}}}"#), 3.0);
        expected.insert(format!(r#"queue_depth{{{common}}}"#), 3.0);
        expected.insert(format!(r#"gpu_temperature_celsius{{gpu="0", {common}}}"#), 61.5);
        expected.insert(
            format!(r#"llm_latency_milliseconds_sum{{agent="planner", {common}}}"#),
            555.0,
        );
        expected.insert(
            format!(r#"llm_latency_milliseconds_count{{agent="planner", {common}}}"#),
            3.0,
        );
        // The SDK's default buckets; 5 falls in le="5" (upper bounds are inclusive).
        let buckets = [
            ("0", 0.0),
            ("5", 1.0),
            ("10", 1.0),
            ("25", 1.0),
            ("50", 2.0),
            ("75", 2.0),
            ("100", 2.0),
            ("250", 2.0),
            ("500", 3.0),
            ("750", 3.0),
            ("1000", 3.0),
            ("2500", 3.0),
            ("5000", 3.0),
            ("7500", 3.0),
            ("10000", 3.0),
            ("+Inf", 3.0),
        ];
        for (le, count) in buckets {
            expected.insert(
                format!(
                    r#"llm_latency_milliseconds_bucket{{agent="planner", {identity}, le="{le}", {scope}}}"#
                ),
                count,
            );
        }
        expected.insert(
            format!(r#"target_info{{deployment_environment="test", instance="pod-1", job="{job}"}}"#),
            1.0,
        );
        assert_eq!(by_series, expected, "{protocol}");
    }
    // Every exported series is one of the two jobs.
    let everything = store
        .select(
            &[Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap()],
            0,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(everything.len(), 2 * 22);
}
