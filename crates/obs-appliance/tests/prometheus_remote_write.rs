//! A real sender: Prometheus 2.42 scrapes a real node-exporter every second and remote-writes
//! to the appliance. Afterwards the appliance holds exactly the series and samples that
//! Prometheus' own TSDB holds for the same window (read from the appliance through the storage
//! trait, from Prometheus through its query API).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Appliance, required_tool};
use obs_core::partition::DataLayout;
use obs_core::series::{Labels, Matcher, MetricsQuerier};
use obs_metrics::store::{MetricsOptions, MetricsStore};

fn wait_http_ok(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if common::http()
            .get(url)
            .call()
            .is_ok_and(|response| response.status() == 200)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} never answered 200");
}

fn parse_value(text: &str) -> f64 {
    match text {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().unwrap(),
    }
}

type SeriesMap = BTreeMap<Labels, Vec<(i64, u64)>>;

#[test]
fn prometheus_remote_write_of_node_exporter_matches_prometheus_own_tsdb() {
    let (Some(prometheus), Some(node_exporter)) = (
        required_tool("prometheus", "apt-get install prometheus"),
        required_tool(
            "prometheus-node-exporter",
            "apt-get install prometheus-node-exporter",
        ),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("appliance");
    let appliance = Appliance::start(&data, &[]);
    appliance.wait_ready();

    let node_port = common::free_port();
    let _node = common::Killed(
        Command::new(node_exporter)
            .args([
                &format!("--web.listen-address=127.0.0.1:{node_port}"),
                "--log.level=error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_http_ok(&format!("http://127.0.0.1:{node_port}/metrics"));

    let prometheus_port = common::free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{node_port}']\nremote_write:\n  - url: http://{}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n",
            appliance.addr
        ),
    )
    .unwrap();
    let mut prometheus = common::Killed(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prometheus").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prometheus_url = format!("http://127.0.0.1:{prometheus_port}");
    wait_http_ok(&format!("{prometheus_url}/-/ready"));

    // Let it scrape and ship for a while; compare a window that ended well before we look.
    let started_ms = obs_core::time::TimestampMs::now().0;
    std::thread::sleep(Duration::from_secs(25));
    let window_end_ms = obs_core::time::TimestampMs::now().0 - 8_000;
    let window_start_ms = started_ms + 2_000;
    std::thread::sleep(Duration::from_secs(4)); // remote write batches ship within 1 s

    // Prometheus' raw samples: a range selector at the window's end returns them unevaluated.
    let range_secs = (window_end_ms - window_start_ms) / 1000 + 5;
    let query = format!("{{job=\"node\"}}[{range_secs}s]");
    let mut response = common::http()
        .get(&format!("{prometheus_url}/api/v1/query"))
        .query("query", &query)
        .query("time", format!("{:.3}", window_end_ms as f64 / 1000.0))
        .call()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(json["status"], "success", "{json}");
    let in_window = |ts: i64| window_start_ms < ts && ts < window_end_ms;
    let mut expected: SeriesMap = BTreeMap::new();
    for series in json["data"]["result"].as_array().unwrap() {
        let pairs = series["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()));
        let labels = Labels::series(pairs).unwrap();
        let samples: Vec<(i64, u64)> = series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|point| {
                let ts = (point[0].as_f64().unwrap() * 1000.0).round() as i64;
                (ts, parse_value(point[1].as_str().unwrap()).to_bits())
            })
            .filter(|(ts, _)| in_window(*ts))
            .collect();
        if !samples.is_empty() {
            expected.insert(labels, samples);
        }
    }
    drop(prometheus.0.kill());
    let _ = prometheus.0.wait();
    assert!(
        expected.len() > 100,
        "node-exporter should expose hundreds of series, got {}",
        expected.len()
    );
    let expected_samples: usize = expected.values().map(Vec::len).sum();
    assert!(
        expected_samples > expected.len() * 10,
        "too few scrapes: {expected_samples} samples"
    );

    // Stop the appliance cleanly and read what it stored.
    appliance.signal("TERM");
    let mut appliance = appliance;
    assert!(
        appliance
            .wait_exit(Duration::from_secs(10))
            .is_some_and(|status| status.success())
    );
    let (store, _) = MetricsStore::open(&DataLayout::new(&data), MetricsOptions::default()).unwrap();
    let mut stored: SeriesMap = BTreeMap::new();
    for series in store
        .select(&[Matcher::equal("job", "node")], window_start_ms, window_end_ms)
        .unwrap()
    {
        let samples: Vec<(i64, u64)> = series
            .samples
            .into_iter()
            .filter(|(ts, _)| in_window(*ts))
            .map(|(ts, value)| (ts, value.to_bits()))
            .collect();
        if !samples.is_empty() {
            stored.insert(series.labels, samples);
        }
    }
    let missing: Vec<&Labels> = expected
        .keys()
        .filter(|labels| !stored.contains_key(*labels))
        .collect();
    // The embedded default's alert pack may write ALERTS series of its own (a nearly full
    // disk on the test machine): not part of what Prometheus sent.
    let extra: Vec<&Labels> = stored
        .keys()
        .filter(|labels| !expected.contains_key(*labels))
        .filter(|labels| !matches!(labels.metric_name(), Some("ALERTS" | "ALERTS_FOR_STATE")))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {:?}\nextra {:?}",
        &missing[..missing.len().min(5)],
        &extra[..extra.len().min(5)]
    );
    for (labels, samples) in &expected {
        // NaN payloads differ between Go's NaN and the parsed text; compare NaN as NaN.
        let normalise = |samples: &[(i64, u64)]| -> Vec<(i64, u64)> {
            samples
                .iter()
                .map(|&(ts, bits)| {
                    (
                        ts,
                        if f64::from_bits(bits).is_nan() {
                            f64::NAN.to_bits()
                        } else {
                            bits
                        },
                    )
                })
                .collect()
        };
        assert_eq!(
            normalise(&stored[labels]),
            normalise(samples),
            "samples of {labels} differ"
        );
    }
}
