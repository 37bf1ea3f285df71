//! The Prometheus query API against the real binary, the way Grafana's Prometheus datasource
//! calls it: "Save & test" (`1+1`, buildinfo), instant and range queries by GET and form POST,
//! the metric browser (label names and values narrowed by `match[]`), series look-ups, and
//! Prometheus' error types and statuses for bad input.
#![allow(clippy::unwrap_used)]

mod common;

use common::Appliance;
use obs_metrics::remote_write::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use serde_json::{Value, json};

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

/// Writes `node_load1{instance=n1|n2}` and `up{instance=n1|n2}` every 15 s for 10 minutes
/// ending at `end_ms` (value = minute index for load, 1 for up).
fn load_data(appliance: &Appliance, end_ms: i64) {
    let mut timeseries = Vec::new();
    for instance in ["n1", "n2"] {
        for (name, factor) in [("node_load1", 1.0), ("up", 0.0)] {
            let samples = (0..40)
                .map(|i| Sample {
                    value: if factor == 0.0 { 1.0 } else { f64::from(i) * factor },
                    timestamp: end_ms - (39 - i64::from(i)) * 15_000,
                })
                .collect();
            timeseries.push(TimeSeries {
                labels: vec![
                    label("__name__", name),
                    label("instance", instance),
                    label("job", "node"),
                ],
                samples,
                histograms: vec![],
            });
        }
    }
    let body = snap::raw::Encoder::new()
        .compress_vec(
            &WriteRequest {
                timeseries,
                metadata: vec![],
            }
            .encode_to_vec(),
        )
        .unwrap();
    let response = common::http()
        .post(&appliance.url("/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .send(&body[..])
        .unwrap();
    assert_eq!(response.status(), 204);
}

fn get_json(appliance: &Appliance, path: &str) -> (u16, Value) {
    let (status, content_type, body) = common::get(&appliance.url(path));
    assert!(
        content_type.starts_with("application/json"),
        "{path}: {content_type} {body}"
    );
    (status, serde_json::from_str(&body).unwrap())
}

fn post_form(appliance: &Appliance, path: &str, form: &str) -> (u16, Value) {
    let mut response = common::http()
        .post(&appliance.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form)
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap(),
    )
}

#[test]
fn grafana_flows_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = common::no_scrape_config(dir.path());
    let appliance = Appliance::start(&dir.path().join("data"), &["--config", quiet.to_str().unwrap()]);
    appliance.wait_ready();
    // Whole seconds, so that times in answers are exact.
    let end_ms = obs_core::time::TimestampMs::now().0 / 60_000 * 60_000;
    load_data(&appliance, end_ms);
    let end = end_ms / 1000;

    // "Save & test": an instant 1+1 by POST, then buildinfo.
    let (status, body) = post_form(&appliance, "/api/v1/query", "query=1%2B1&time=4");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}})
    );
    let (status, body) = get_json(&appliance, "/api/v1/status/buildinfo");
    assert_eq!((status, body["data"]["version"].as_str()), (200, Some("2.42.0")));

    // An instant query by GET.
    let (status, body) = get_json(
        &appliance,
        &format!("/api/v1/query?query=sum%20by%20(job)%20(node_load1)&time={end}"),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["result"],
        json!([{"metric": {"job": "node"}, "value": [end, "78"]}])
    );

    // A range query as Explore sends it (form POST, float seconds, step in seconds).
    let form = format!(
        "query=rate(node_load1%5B1m%5D)&start={}&end={end}&step=60",
        end - 120
    );
    let (status, body) = post_form(&appliance, "/api/v1/query_range", &form);
    assert_eq!(status, 200, "{body}");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(body["data"]["resultType"], "matrix");
    assert_eq!(result.len(), 2);
    assert_eq!(result[0]["metric"], json!({"instance": "n1", "job": "node"}));
    // The load rises by 1 every 15 s: 1/15 per second, three steps.
    let values = result[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 3);
    let rate: f64 = values[2][1].as_str().unwrap().parse().unwrap();
    assert!((rate - 1.0 / 15.0).abs() < 1e-9, "{rate}");

    // The metric browser: names, then label names and values narrowed by match[].
    let range = format!("start={}&end={end}", end - 3600);
    let (_, body) = get_json(&appliance, &format!("/api/v1/label/__name__/values?{range}"));
    assert_eq!(body["data"], json!(["node_load1", "up"]));
    let (_, body) = post_form(&appliance, "/api/v1/labels", &format!("match%5B%5D=up&{range}"));
    assert_eq!(body["data"], json!(["__name__", "instance", "job"]));
    let (_, body) = get_json(
        &appliance,
        &format!("/api/v1/label/instance/values?match[]=node_load1%7Binstance%3D%22n2%22%7D&{range}"),
    );
    assert_eq!(body["data"], json!(["n2"]));
    let (_, body) = get_json(&appliance, &format!("/api/v1/series?match[]=up&{range}"));
    assert_eq!(
        body["data"],
        json!([
            {"__name__": "up", "instance": "n1", "job": "node"},
            {"__name__": "up", "instance": "n2", "job": "node"}
        ])
    );
    // Before the data: nothing.
    let (_, body) = get_json(&appliance, "/api/v1/label/__name__/values?start=0&end=1000");
    assert_eq!(body["data"], json!([]));

    // Exemplars: an empty success. Metadata and status endpoints answer in Prometheus' shape.
    let (status, body) = get_json(&appliance, &format!("/api/v1/query_exemplars?query=up&{range}"));
    assert_eq!((status, &body["data"]), (200, &json!([])));
    for path in [
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/flags",
        "/api/v1/status/config",
    ] {
        let (status, body) = get_json(&appliance, path);
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("success")),
            "{path}"
        );
    }
    let (_, body) = get_json(&appliance, "/api/v1/format_query?query=sum(up)by(job)");
    assert_eq!(body["data"], "sum by (job) (up)");
}

#[test]
fn bad_queries_get_prometheus_errors() {
    let dir = tempfile::tempdir().unwrap();
    let appliance = Appliance::start(dir.path(), &[]);
    appliance.wait_ready();
    let cases: &[(&str, u16, &str, &str)] = &[
        (
            "/api/v1/query?query=sum(",
            400,
            "bad_data",
            "invalid parameter \"query\"",
        ),
        (
            "/api/v1/query?query=up&time=yesterday",
            400,
            "bad_data",
            "cannot parse \"yesterday\" to a valid timestamp",
        ),
        (
            "/api/v1/query_range?query=up&start=10&end=5&step=1",
            400,
            "bad_data",
            "end timestamp must not be before start time",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=100000&step=1",
            400,
            "bad_data",
            "exceeded maximum resolution of 11,000 points per timeseries",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=10&step=0",
            400,
            "bad_data",
            "zero or negative query resolution step widths are not accepted",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=10&step=x",
            400,
            "bad_data",
            "invalid parameter \"step\"",
        ),
        (
            "/api/v1/query_range?query=up%5B5m%5D&start=0&end=10&step=1",
            400,
            "bad_data",
            "invalid expression type \"range vector\" for range query",
        ),
        ("/api/v1/series", 400, "bad_data", "no match[] parameter provided"),
        (
            "/api/v1/series?match[]=sum(up)",
            400,
            "bad_data",
            "invalid parameter \"match[]\"",
        ),
        (
            "/api/v1/label/bad-name/values",
            400,
            "bad_data",
            "invalid label name",
        ),
        (
            "/api/v1/query?query=vector(1)%20%2B%20on()%20(label_replace(vector(1),%22a%22,%22x%22,%22%22,%22%22)%20or%20label_replace(vector(2),%22a%22,%22y%22,%22%22,%22%22))",
            422,
            "execution",
            "many-to-many matching not allowed",
        ),
        // Prometheus 2.42's name of double exponential smoothing; factors are checked only when
        // there is a series to smooth.
        (
            "/api/v1/query?query=holt_winters(up%5B5m%5D,%202,%200.5)",
            200,
            "",
            "",
        ),
        (
            "/api/v1/query?query=double_exponential_smoothing(up%5B5m%5D,%200.5,%200.5)",
            400,
            "bad_data",
            "unknown function",
        ),
    ];
    for (path, status, error_type, message) in cases {
        let (got_status, body) = get_json(&appliance, path);
        assert_eq!(got_status, *status, "{path}: {body}");
        if !error_type.is_empty() {
            assert_eq!(body["status"], "error", "{path}");
            assert_eq!(body["errorType"], *error_type, "{path}: {body}");
            let error = body["error"].as_str().unwrap();
            assert!(error.contains(message), "{path}: {error}");
        }
    }
}
