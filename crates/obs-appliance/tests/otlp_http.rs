//! OTLP/HTTP metrics against the real binary: protobuf and JSON answers in the request's
//! content type, partial success that names what was refused while the rest is kept, and
//! every kind of bad input with the status and body an OTLP exporter understands.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use common::Appliance;
use obs_core::partition::DataLayout;
use obs_core::series::{Matcher, MetricsQuerier};
use obs_metrics::store::{MetricsOptions, MetricsStore};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn now_ns() -> u64 {
    obs_core::time::TimestampMs::now().0 as u64 * 1_000_000
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn gauge(name: &str, attributes: Vec<KeyValue>, value: f64) -> Metric {
    Metric {
        name: name.to_owned(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes,
                time_unix_nano: now_ns(),
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![text("service.name", "otlp-http-test")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// POSTs to `/v1/metrics`: status, content type, body.
fn post(appliance: &Appliance, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    let mut call = common::http().post(&appliance.url("/v1/metrics"));
    for (name, value) in headers {
        call = call.header(*name, *value);
    }
    let mut response = call.send(&body[..]).unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.body_mut().read_to_vec().unwrap())
}

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn otlp_http_answers_like_an_otlp_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut appliance = Appliance::start(&data, &[]);
    appliance.wait_ready();

    // Protobuf, gzip: 200 with an empty ExportMetricsServiceResponse.
    let body = gzip(&request(vec![gauge("ok.protobuf", vec![], 1.0)]).encode_to_vec());
    let (status, content_type, answer) = post(&appliance, body, &[PROTOBUF, ("Content-Encoding", "gzip")]);
    assert_eq!((status, content_type.as_str()), (200, "application/x-protobuf"));
    assert_eq!(
        ExportMetricsServiceResponse::decode(&answer[..]).unwrap(),
        ExportMetricsServiceResponse {
            partial_success: None
        }
    );

    // JSON with a valid point, a delta sum and a denied correlation-key label: the valid point
    // is kept, the others are counted and explained.
    let mut mixed = request(vec![
        gauge("ok.json", vec![text("agent", "planner")], 2.0),
        gauge("per.session", vec![text("session_id", "s-1")], 3.0),
        Metric {
            name: "delta.requests".to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: now_ns(),
                    value: Some(number_data_point::Value::AsInt(1)),
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
    ]);
    mixed.resource_metrics[0].scope_metrics[0].metrics[0].unit = "s".to_owned();
    let body = serde_json::to_vec(&mixed).unwrap();
    let (status, content_type, answer) = post(&appliance, body, &[JSON]);
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    let partial = &answer["partialSuccess"];
    assert_eq!(partial["rejectedDataPoints"], 2, "{answer}");
    let message = partial["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative"),
        "{message}"
    );
    assert!(
        message.contains("\"session_id\" is not allowed on metrics"),
        "{message}"
    );
    assert!(message.contains("put it in logs or traces"), "{message}");

    // JSON with enum names and 64-bit integers as strings, as some encoders write it.
    let lenient = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"lenient","sum":{
        "aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","isMonotonic":true,
        "dataPoints":[{"timeUnixNano":"NOW","asInt":"7"}]}}]}]}]}"#
        .replace("NOW", &now_ns().to_string());
    let (status, _, answer) = post(&appliance, lenient.into_bytes(), &[JSON]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(answer, b"{}");

    // Garbage protobuf: 400 with a google.rpc.Status (INVALID_ARGUMENT), never retried.
    let (status, content_type, answer) = post(&appliance, vec![0xff, 0xff, 0xff], &[PROTOBUF]);
    assert_eq!((status, content_type.as_str()), (400, "application/x-protobuf"));
    let rpc = RpcStatus::decode(&answer[..]).unwrap();
    assert_eq!(rpc.code, 3);
    assert!(
        rpc.message.contains("cannot decode the OTLP protobuf body"),
        "{}",
        rpc.message
    );

    // Broken JSON: 400 as JSON.
    let (status, _, answer) = post(&appliance, b"{\"resourceMetrics\":[".to_vec(), &[JSON]);
    assert_eq!(status, 400);
    let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["code"], 3);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("cannot parse the OTLP JSON body")
    );

    // Unknown content type: 415; unknown content encoding: 415.
    let (status, _, _) = post(&appliance, b"x".to_vec(), &[("Content-Type", "text/plain")]);
    assert_eq!(status, 415);
    let (status, _, _) = post(&appliance, b"x".to_vec(), &[PROTOBUF, ("Content-Encoding", "br")]);
    assert_eq!(status, 415);

    // A gzip bomb: 413 without decompressing it all.
    let bomb = gzip(&vec![0u8; 80 << 20]);
    let (status, _, answer) = post(&appliance, bomb, &[PROTOBUF, ("Content-Encoding", "gzip")]);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&answer));

    // Nothing of the above disturbed the process; the accepted points are durable.
    appliance.signal("TERM");
    assert!(
        appliance
            .wait_exit(std::time::Duration::from_secs(10))
            .unwrap()
            .success()
    );
    let (store, _) = MetricsStore::open(&DataLayout::new(&data), MetricsOptions::default()).unwrap();
    let names: Vec<String> = store
        .label_values(
            "__name__",
            &[Matcher::equal("job", "otlp-http-test")],
            0,
            i64::MAX,
        )
        .unwrap();
    assert_eq!(names, ["ok_json_seconds", "ok_protobuf"]);
    let lenient = store
        .select(&[Matcher::equal("__name__", "lenient_total")], 0, i64::MAX)
        .unwrap();
    assert_eq!(lenient[0].samples[0].1, 7.0);
}
