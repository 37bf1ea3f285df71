//! remote_write 1.0 against the real binary: acknowledged samples survive SIGKILL, and every
//! kind of bad input gets its documented status and message while valid data is kept.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Appliance;
use obs_core::partition::DataLayout;
use obs_core::series::{Matcher, MetricsQuerier};
use obs_metrics::remote_write::{Label, Sample, TimeSeries, WriteRequest};
use obs_metrics::store::{MetricsOptions, MetricsStore};
use prost::Message;
use rand::{Rng, SeedableRng};

fn now_ms() -> i64 {
    obs_core::time::TimestampMs::now().0
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

fn series(labels: Vec<Label>, samples: Vec<(i64, f64)>) -> TimeSeries {
    TimeSeries {
        labels,
        samples: samples
            .into_iter()
            .map(|(timestamp, value)| Sample { value, timestamp })
            .collect(),
        histograms: vec![],
    }
}

fn body(timeseries: Vec<TimeSeries>) -> Vec<u8> {
    let request = WriteRequest {
        timeseries,
        metadata: vec![],
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap()
}

/// POSTs a body to `/api/v1/write`: status and text.
fn post(appliance_url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
    let mut request = common::http()
        .post(&format!("{appliance_url}/api/v1/write"))
        .header("X-Prometheus-Remote-Write-Version", "0.1.0");
    let defaults = [
        ("Content-Type", "application/x-protobuf"),
        ("Content-Encoding", "snappy"),
    ];
    for (name, value) in defaults {
        if !headers.iter().any(|(given, _)| given.eq_ignore_ascii_case(name)) {
            request = request.header(name, value);
        }
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut response = request.send(&body[..]).map_err(|err| err.to_string())?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    Ok((status, text))
}

fn open_store(dir: &std::path::Path) -> MetricsStore {
    MetricsStore::open(&DataLayout::new(dir), MetricsOptions::default())
        .unwrap()
        .0
}

#[test]
fn acknowledged_samples_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    // One request per simulated 100 ms, starting two hours back: never in the future.
    let base = now_ms() - 7_200_000;
    // (series index, timestamp) -> value, for every request answered 204.
    let acknowledged: Arc<Mutex<BTreeMap<(u32, i64), f64>>> = Arc::default();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
    let mut request_number = 0i64;
    let kills = 12;
    for kill in 0..kills {
        let mut appliance = Appliance::start(dir.path(), &[]);
        let url = format!("http://{}", appliance.addr);
        let stop = Arc::new(AtomicBool::new(false));
        let first_request = request_number;
        let sender = {
            let acknowledged = Arc::clone(&acknowledged);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut number = first_request;
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    number += 1;
                    let ts = base + number * 100;
                    let batch: Vec<TimeSeries> = (0..20u32)
                        .map(|i| {
                            let labels =
                                vec![label("__name__", "crash_test"), label("series", &i.to_string())];
                            series(labels, vec![(ts, number as f64 * 100.0 + f64::from(i))])
                        })
                        .collect();
                    match post(&url, body(batch), &[]) {
                        Ok((204, _)) => {
                            let mut acknowledged = acknowledged.lock().unwrap();
                            for i in 0..20u32 {
                                acknowledged.insert((i, ts), number as f64 * 100.0 + f64::from(i));
                            }
                        }
                        Ok((503, _)) => std::thread::sleep(Duration::from_millis(5)),
                        Ok((status, text)) => panic!("unexpected {status}: {text}"),
                        Err(_) => {} // the appliance was killed mid-request
                    }
                }
                number
            })
        };
        std::thread::sleep(Duration::from_millis(rng.random_range(150..500)));
        appliance.child.kill().unwrap();
        appliance.wait_exit(Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
        request_number = sender.join().unwrap();
        let count = acknowledged.lock().unwrap().len();
        assert!(
            count > 0 || kill == 0,
            "no request was acknowledged after {} kills",
            kill + 1
        );
    }

    // Every acknowledged sample is there, exactly, through the storage trait.
    let store = open_store(dir.path());
    let found = store
        .select(&[Matcher::equal("__name__", "crash_test")], base, i64::MAX)
        .unwrap();
    let mut stored: BTreeMap<(u32, i64), f64> = BTreeMap::new();
    for series in found {
        let index: u32 = series.labels.get("series").unwrap().parse().unwrap();
        for (ts, value) in series.samples {
            stored.insert((index, ts), value);
        }
    }
    let acknowledged = acknowledged.lock().unwrap();
    assert!(
        acknowledged.len() >= 20 * kills,
        "too few acknowledged samples: {}",
        acknowledged.len()
    );
    for (key, value) in acknowledged.iter() {
        assert_eq!(
            stored.get(key),
            Some(value),
            "acknowledged sample {key:?} lost or changed"
        );
    }
}

#[test]
fn bad_input_gets_the_documented_status_and_valid_data_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "limits:\n  max_request_body: 64KiB\n  max_decompressed_body: 256KiB\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let appliance = Appliance::start(&data, &["--config", config.to_str().unwrap()]);
    appliance.wait_ready();
    let url = format!("http://{}", appliance.addr);
    let ts = now_ms() - 60_000;
    let good = |name: &str| {
        series(
            vec![label("__name__", name), label("job", "test")],
            vec![(ts, 1.0)],
        )
    };

    // (what, body, extra headers, expected status, text the answer must contain)
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "garbage snappy",
            b"\xff\xff\xff\xff not snappy".to_vec(),
            vec![],
            400,
            "not valid snappy",
        ),
        (
            "garbage protobuf",
            snap::raw::Encoder::new()
                .compress_vec(b"\x0a\xff\xff\xff\x0f")
                .unwrap(),
            vec![],
            400,
            "cannot decode remote write request",
        ),
        (
            "decompression bomb",
            snap::raw::Encoder::new()
                .compress_vec(&vec![0u8; 1 << 20])
                .unwrap(),
            vec![],
            413,
            "decompressed body exceeds the limit",
        ),
        ("body over the limit", vec![0u8; 100 << 10], vec![], 413, ""),
        (
            "unknown protobuf",
            body(vec![good("rw3")]),
            vec![(
                "Content-Type",
                "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            )],
            415,
            "unsupported remote write protobuf",
        ),
        (
            "not protobuf",
            body(vec![good("json")]),
            vec![("Content-Type", "application/json")],
            415,
            "unsupported content type",
        ),
        (
            "gzip",
            body(vec![good("gz")]),
            vec![("Content-Encoding", "gzip")],
            415,
            "snappy",
        ),
        (
            "invalid label name beside a valid series",
            body(vec![
                good("kept_beside_bad_label"),
                series(
                    vec![label("__name__", "x"), label("bad-name", "1")],
                    vec![(ts, 1.0)],
                ),
            ]),
            vec![],
            400,
            "invalid label name \"bad-name\"",
        ),
        (
            "invalid metric name",
            body(vec![series(vec![label("__name__", "1abc")], vec![(ts, 1.0)])]),
            vec![],
            400,
            "invalid metric name",
        ),
        (
            "duplicate label names",
            body(vec![series(
                vec![label("__name__", "x"), label("a", "1"), label("a", "2")],
                vec![(ts, 1.0)],
            )]),
            vec![],
            400,
            "duplicate label name",
        ),
        (
            "no metric name",
            body(vec![series(vec![label("job", "x")], vec![(ts, 1.0)])]),
            vec![],
            400,
            "no metric name",
        ),
        (
            "correlation key as a label",
            body(vec![
                good("kept_beside_run_id"),
                series(
                    vec![label("__name__", "y"), label("run_id", "r-1")],
                    vec![(ts, 1.0)],
                ),
            ]),
            vec![],
            400,
            "put it in logs or traces",
        ),
        (
            "absurd timestamp",
            body(vec![series(
                vec![label("__name__", "z")],
                vec![(i64::MAX, 1.0), (0, 1.0)],
            )]),
            vec![],
            400,
            "too far in the future",
        ),
    ];
    for (name, payload, headers, status, needle) in cases {
        let (got_status, text) = post(&url, payload, &headers).unwrap();
        assert_eq!(got_status, status, "{name}: {text}");
        assert!(text.contains(needle), "{name}: {text:?} lacks {needle:?}");
    }
    // The process is unharmed, and the valid series sent beside bad ones were kept.
    let (status, _, _) = common::get(&format!("{url}/-/healthy"));
    assert_eq!(status, 200);
    let (status, text) = post(&url, body(vec![good("after_the_storm")]), &[]).unwrap();
    assert_eq!(status, 204, "{text}");
    drop(appliance);
    let store = open_store(&data);
    for kept in ["kept_beside_bad_label", "kept_beside_run_id", "after_the_storm"] {
        let found = store.select(&[Matcher::equal("__name__", kept)], ts, ts).unwrap();
        assert_eq!(found.len(), 1, "{kept} missing");
    }
    for refused in ["x", "y", "z", "1abc", "rw3", "json", "gz"] {
        let found = store
            .select(&[Matcher::equal("__name__", refused)], 0, i64::MAX)
            .unwrap();
        assert!(found.is_empty(), "{refused} should not be stored");
    }
}

#[test]
fn status_tsdb_points_at_the_cardinality_bomb() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = common::no_scrape_config(dir.path());
    let appliance = Appliance::start(&dir.path().join("data"), &["--config", quiet.to_str().unwrap()]);
    appliance.wait_ready();
    let url = format!("http://{}", appliance.addr);
    let ts = now_ms() - 60_000;
    let mut timeseries = vec![series(
        vec![label("__name__", "up"), label("job", "node")],
        vec![(ts, 1.0)],
    )];
    for user in 0..50 {
        timeseries.push(series(
            vec![
                label("__name__", "http_requests_total"),
                label("user", &format!("u{user}")),
            ],
            vec![(ts, 1.0)],
        ));
    }
    let (status, text) = post(&url, body(timeseries), &[]).unwrap();
    assert_eq!(status, 204, "{text}");

    let (status, content_type, text) = common::get(&format!("{url}/api/v1/status/tsdb?limit=2"));
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let data = &json["data"];
    assert_eq!(json["status"], "success");
    assert_eq!(data["headStats"]["numSeries"], 51);
    assert_eq!(data["headStats"]["minTime"], ts);
    assert_eq!(
        data["seriesCountByMetricName"],
        serde_json::json!([{"name": "http_requests_total", "value": 50}, {"name": "up", "value": 1}])
    );
    assert_eq!(
        data["labelValueCountByLabelName"][0],
        serde_json::json!({"name": "user", "value": 50})
    );
    assert_eq!(
        data["seriesCountByLabelValuePair"][0]["name"],
        "__name__=http_requests_total"
    );
    assert_eq!(data["memoryInBytesByLabelName"].as_array().unwrap().len(), 2);
    let (status, _, text) = common::get(&format!("{url}/api/v1/status/tsdb?limit=-1"));
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("\"errorType\":\"bad_data\""), "{text}");
}

/// `io.prometheus.write.v2.Request`, written with prost for the test.
#[derive(Clone, PartialEq, prost::Message)]
struct RequestV2 {
    #[prost(string, repeated, tag = "4")]
    symbols: Vec<String>,
    #[prost(message, repeated, tag = "5")]
    timeseries: Vec<TimeSeriesV2>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeriesV2 {
    #[prost(uint32, repeated, tag = "1")]
    labels_refs: Vec<u32>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
}

#[test]
fn remote_write_2_0_with_a_symbols_table() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let appliance = Appliance::start(&data, &[]);
    appliance.wait_ready();
    let url = format!("http://{}", appliance.addr);
    let ts = now_ms() - 60_000;
    let symbols: Vec<String> = ["", "__name__", "rw2_metric", "job", "test", "bad-name", "x"]
        .map(String::from)
        .to_vec();
    let sample = |value: f64| Sample { value, timestamp: ts };
    let v2_body = |timeseries: Vec<TimeSeriesV2>| {
        let request = RequestV2 {
            symbols: symbols.clone(),
            timeseries,
        };
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap()
    };
    let v2 = [(
        "Content-Type",
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
    )];

    // A valid series beside one with a bad label name and one with a reference out of range.
    let mut response = common::http()
        .post(&format!("{url}/api/v1/write"))
        .header("Content-Type", v2[0].1)
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "2.0.0")
        .send(
            &v2_body(vec![
                TimeSeriesV2 {
                    labels_refs: vec![1, 2, 3, 4],
                    samples: vec![sample(1.0)],
                },
                TimeSeriesV2 {
                    labels_refs: vec![1, 6, 5, 6],
                    samples: vec![sample(2.0)],
                },
                TimeSeriesV2 {
                    labels_refs: vec![1, 99],
                    samples: vec![sample(3.0)],
                },
            ])[..],
        )
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["X-Prometheus-Remote-Write-Samples-Written"],
        "1"
    );
    let text = response.body_mut().read_to_string().unwrap();
    assert!(text.contains("invalid label name \"bad-name\""), "{text}");
    assert!(
        text.contains("label reference outside the symbols table"),
        "{text}"
    );

    let mut response = common::http()
        .post(&format!("{url}/api/v1/write"))
        .header("Content-Type", v2[0].1)
        .header("Content-Encoding", "snappy")
        .send(
            &v2_body(vec![TimeSeriesV2 {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![Sample {
                    value: 5.0,
                    timestamp: ts + 1000,
                }],
            }])[..],
        )
        .unwrap();
    assert_eq!(
        response.status(),
        204,
        "{}",
        response.body_mut().read_to_string().unwrap()
    );
    assert_eq!(
        response.headers()["X-Prometheus-Remote-Write-Samples-Written"],
        "1"
    );
    assert_eq!(
        response.headers()["X-Prometheus-Remote-Write-Histograms-Written"],
        "0"
    );

    // A first symbol that is not empty breaks the 2.0 rules: the whole body is refused.
    let bad = RequestV2 {
        symbols: vec!["x".into()],
        timeseries: vec![],
    };
    let bad = snap::raw::Encoder::new()
        .compress_vec(&bad.encode_to_vec())
        .unwrap();
    let (status, text) = post(&url, bad, &v2).unwrap();
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("first symbol must be the empty string"), "{text}");

    drop(appliance);
    let store = open_store(&data);
    let found = store
        .select(&[Matcher::equal("__name__", "rw2_metric")], ts, ts + 1000)
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].labels.get("job"), Some("test"));
    assert_eq!(found[0].samples, vec![(ts, 1.0), (ts + 1000, 5.0)]);
}
