//! Traces end to end, against the real binary over loopback:
//!
//! - the OpenTelemetry Python SDK exports a simulated Jarvis run over OTLP/HTTP and OTLP/gRPC
//!   (`tests/clients/otlp_traces.py`); each trace read back by id (`/api/v2/traces/<id>` as
//!   Grafana asks for it, protobuf) equals what the SDK sent, field by field;
//! - TraceQL search as Grafana's Tempo datasource sends it (builder queries, pipelines,
//!   structural operators), tag and value autocompletion, TraceQL metrics;
//! - spans of one trace arriving in several requests, minutes apart (by their timestamps) and
//!   across a flush and a `kill -9`, assemble into one trace, without duplicates;
//! - Zipkin v2 JSON;
//! - bad input: garbage protobuf and JSON, ids of the wrong length or all zeros, a span ending
//!   before it starts, a TraceQL query that does not parse.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Appliance;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, TracesData};
use prost::Message;
use serde_json::{Value, json};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn get(appliance: &Appliance, path: &str, params: &[(&str, &str)], accept: Option<&str>) -> (u16, Vec<u8>) {
    let mut call = common::http().get(&appliance.url(path));
    for (name, value) in params {
        call = call.query(*name, *value);
    }
    if let Some(accept) = accept {
        call = call.header("Accept", accept);
    }
    let mut response = call.call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_vec().unwrap())
}

fn get_json(appliance: &Appliance, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = get(appliance, path, params, None);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "{path} {params:?}: {text}");
    serde_json::from_slice(&body).unwrap_or_else(|err| panic!("{path}: {err}: {text}"))
}

fn post(appliance: &Appliance, path: &str, body: &[u8], content_type: &str) -> (u16, Vec<u8>) {
    let mut response = common::http()
        .post(&appliance.url(path))
        .header("Content-Type", content_type)
        .send(body)
        .unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_vec().unwrap())
}

/// A trace as Grafana reads it: `/api/v2/traces/<id>`, protobuf `TraceByIDResponse`.
fn trace_by_id(appliance: &Appliance, trace_id: &str) -> Option<Vec<(ResourceSpans, Span)>> {
    let (status, body) = get(
        appliance,
        &format!("/api/v2/traces/{trace_id}"),
        &[],
        Some("application/protobuf"),
    );
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // TraceByIDResponse { Trace trace = 1; ... } where Trace is wire-identical to TracesData.
    #[derive(Clone, PartialEq, prost::Message)]
    struct TraceByIdResponse {
        #[prost(message, optional, tag = "1")]
        trace: Option<TracesData>,
    }
    let response = TraceByIdResponse::decode(body.as_slice()).unwrap();
    let mut spans = Vec::new();
    for resource_spans in response.trace.unwrap_or_default().resource_spans {
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                spans.push((resource_spans.clone(), span.clone()));
            }
        }
    }
    Some(spans)
}

fn string_attr(list: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str) -> Option<AnyValue> {
    list.iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.clone())
        .and_then(|value| value.value)
}

/// Search trace ids, in the order returned.
fn search(appliance: &Appliance, query: &str) -> Vec<String> {
    let body = get_json(appliance, "/api/search", &[("q", query), ("limit", "50")]);
    body["traces"]
        .as_array()
        .unwrap_or_else(|| panic!("{query}: {body}"))
        .iter()
        .map(|trace| trace["traceID"].as_str().unwrap().to_owned())
        .collect()
}

fn quiet_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("traces.yaml");
    std::fs::write(
        &path,
        "traces:\n  flush_interval: 1s\n  metrics_collection_interval: 1s\n",
    )
    .unwrap();
    path
}

#[test]
fn python_sdk_traces_read_back_equal_and_are_searchable() {
    if !common::required_python_modules(
        &[
            "opentelemetry.sdk",
            "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        ],
        "pip install opentelemetry-sdk opentelemetry-exporter-otlp",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = quiet_config(dir.path());
    let appliance = Appliance::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    appliance.wait_ready();
    let sent: Vec<Value> = serde_json::from_str(&appliance.run_python_client("otlp_traces.py")).unwrap();
    assert_eq!(sent.len(), 10, "two runs of five spans");
    let mut by_trace: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for span in &sent {
        by_trace
            .entry(span["trace_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(span);
    }
    assert_eq!(by_trace.len(), 2);

    // 1. Each trace by id equals what was sent, field by field.
    for (trace_id, expected) in &by_trace {
        let got = trace_by_id(&appliance, trace_id).expect("the trace is found");
        assert_eq!(got.len(), expected.len(), "{trace_id}");
        for want in expected {
            let (resource_spans, span) = got
                .iter()
                .find(|(_, span)| hex(&span.span_id) == want["span_id"].as_str().unwrap())
                .unwrap_or_else(|| panic!("span {} missing", want["span_id"]));
            assert_eq!(hex(&span.trace_id), *trace_id);
            assert_eq!(
                hex(&span.parent_span_id),
                want["parent_span_id"].as_str().unwrap()
            );
            assert_eq!(span.name, want["name"].as_str().unwrap());
            assert_eq!(
                i64::from(span.kind),
                want["kind"].as_i64().unwrap(),
                "{}",
                span.name
            );
            let status = span.status.clone().unwrap_or_default();
            assert_eq!(
                i64::from(status.code),
                want["status"].as_i64().unwrap(),
                "{}",
                span.name
            );
            assert_eq!(status.message, want["status_message"].as_str().unwrap());
            assert_eq!(span.start_time_unix_nano, want["start"].as_u64().unwrap());
            assert_eq!(span.end_time_unix_nano, want["end"].as_u64().unwrap());
            let resource = resource_spans.resource.clone().unwrap_or_default();
            assert_eq!(
                string_attr(&resource.attributes, "service.name"),
                Some(AnyValue::StringValue(
                    want["service"].as_str().unwrap().to_owned()
                ))
            );
            let attributes = want["attributes"].as_object().unwrap();
            assert_eq!(span.attributes.len(), attributes.len(), "{}", span.name);
            for (key, value) in attributes {
                let got = string_attr(&span.attributes, key);
                let expected = match value {
                    Value::String(text) => AnyValue::StringValue(text.clone()),
                    Value::Bool(flag) => AnyValue::BoolValue(*flag),
                    Value::Number(number) if number.is_i64() => AnyValue::IntValue(number.as_i64().unwrap()),
                    Value::Number(number) => AnyValue::DoubleValue(number.as_f64().unwrap()),
                    other => panic!("unexpected attribute {other}"),
                };
                assert_eq!(got, Some(expected), "{} {key}", span.name);
            }
            let events: Vec<&str> = span.events.iter().map(|event| event.name.as_str()).collect();
            let want_events: Vec<&str> = want["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|name| name.as_str().unwrap())
                .collect();
            assert_eq!(events, want_events);
        }
        // The v1 endpoint (Grafana's fallback) answers OTLP TracesData bytes.
        let (status, body) = get(
            &appliance,
            &format!("/api/traces/{}", trace_id.to_uppercase()),
            &[],
            Some("application/protobuf"),
        );
        assert_eq!(status, 200);
        let data = TracesData::decode(body.as_slice()).unwrap();
        let count: usize = data
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        assert_eq!(count, expected.len());
    }
    let http_trace = sent
        .iter()
        .find(|span| span["attributes"]["run_id"] == "r-http")
        .unwrap()["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let grpc_trace = sent
        .iter()
        .find(|span| span["attributes"]["run_id"] == "r-grpc")
        .unwrap()["trace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let both_newest_first = vec![grpc_trace.clone(), http_trace.clone()];
    let failing_python = |trace_id: &str| {
        sent.iter()
            .find(|span| span["trace_id"] == trace_id && span["name"] == "tool.python")
            .unwrap()["span_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // 2. Search, newest first (the gRPC run was sent last), before and after the flush.
    for round in 0..2 {
        assert_eq!(
            search(
                &appliance,
                r#"{ resource.service.name = "agixt" && status = error }"#
            ),
            both_newest_first,
            "round {round}"
        );
        assert_eq!(
            search(&appliance, r#"{ span.run_id = "r-http" }"#),
            vec![http_trace.clone()]
        );
        assert_eq!(
            search(&appliance, r#"{ .run_id = "r-grpc" }"#),
            vec![grpc_trace.clone()]
        );
        assert_eq!(
            search(&appliance, r#"{ .agent = "worker" } | count() > 1"#),
            both_newest_first
        );
        assert_eq!(
            search(&appliance, r#"{ .agent = "worker" } | count() > 2"#),
            Vec::<String>::new()
        );
        assert_eq!(
            search(
                &appliance,
                r#"{ name = "agixt.run" } > { kind = client && status = error }"#
            ),
            both_newest_first
        );
        assert_eq!(
            search(
                &appliance,
                r#"{ resource.service.name = "librechat" } >> { span.tool.retried = true }"#
            ),
            both_newest_first
        );
        assert_eq!(search(&appliance, "{ duration > 1h }"), Vec::<String>::new());
        assert_eq!(
            search(&appliance, r#"{ span.tool.results = 3 }"#),
            both_newest_first
        );
        assert_eq!(
            search(&appliance, r#"{ span.tool.timeout_s > 2 }"#),
            both_newest_first
        );
        assert_eq!(
            search(
                &appliance,
                r#"{ rootServiceName = "librechat" && .task_id =~ "t-.*" }"#
            ),
            both_newest_first
        );
        if round == 0 {
            // Everything moves from the head into the day index.
            std::thread::sleep(Duration::from_secs(3));
        }
    }
    // The response as Grafana reads it: root service and name, the matching span.
    let body = get_json(
        &appliance,
        "/api/search",
        &[
            ("q", r#"{ span.run_id = "r-http" && status = error }"#),
            ("spss", "5"),
        ],
    );
    let trace = &body["traces"][0];
    assert_eq!(trace["traceID"], http_trace.as_str());
    assert_eq!(trace["rootServiceName"], "librechat");
    assert_eq!(trace["rootTraceName"], "POST /api/ask");
    assert!(trace["startTimeUnixNano"].is_string());
    assert_eq!(trace["spanSets"][0]["matched"], 1);
    assert_eq!(
        trace["spanSets"][0]["spans"][0]["spanID"],
        failing_python(&http_trace).as_str()
    );
    assert_eq!(trace["spanSet"], trace["spanSets"][0]);
    assert_eq!(trace["serviceStats"]["agixt"]["spanCount"], 3);
    assert_eq!(trace["serviceStats"]["agixt"]["errorCount"], 1);
    assert_eq!(trace["serviceStats"]["librechat"]["spanCount"], 2);
    // Legacy tag search.
    let body = get_json(
        &appliance,
        "/api/search",
        &[("tags", "run_id=r-grpc"), ("minDuration", "1ns")],
    );
    assert_eq!(body["traces"].as_array().unwrap().len(), 1);
    assert_eq!(body["traces"][0]["traceID"], grpc_trace.as_str());

    // 3. Autocompletion, as the search builder asks for it.
    let tags = get_json(&appliance, "/api/v2/search/tags", &[]);
    let scope = |name: &str| -> Vec<String> {
        tags["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|scope| scope["name"] == name)
            .unwrap()["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|tag| tag.as_str().unwrap().to_owned())
            .collect()
    };
    for tag in ["run_id", "session_id", "task_id", "agent", "http.request.method"] {
        assert!(scope("span").contains(&tag.to_owned()), "{tag}: {tags}");
    }
    assert!(scope("resource").contains(&"service.name".to_owned()));
    assert!(scope("intrinsic").contains(&"status".to_owned()));
    let values = get_json(&appliance, "/api/v2/search/tag/resource.service.name/values", &[]);
    assert_eq!(
        values["tagValues"],
        json!([{"type": "string", "value": "agixt"}, {"type": "string", "value": "librechat"}])
    );
    let values = get_json(&appliance, "/api/v2/search/tag/span.tool.results/values", &[]);
    assert_eq!(values["tagValues"], json!([{"type": "int", "value": "3"}]));
    let values = get_json(
        &appliance,
        "/api/v2/search/tag/.task_id/values",
        &[("q", r#"{ status = error }"#)],
    );
    assert_eq!(values["tagValues"], json!([{"type": "string", "value": "t-2"}]));
    let values = get_json(&appliance, "/api/v2/search/tag/status/values", &[]);
    assert!(
        values["tagValues"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "keyword", "value": "error"}))
    );
    let values = get_json(&appliance, "/api/search/tag/run_id/values", &[]);
    assert_eq!(values["tagValues"], json!(["r-grpc", "r-http"]));
    let names = get_json(&appliance, "/api/search/tags", &[]);
    assert!(names["tagNames"].as_array().unwrap().contains(&json!("task_id")));

    // The Jaeger query API (Grafana's Jaeger datasource), under /jaeger.
    let services = get_json(&appliance, "/jaeger/api/services", &[]);
    assert_eq!(services["data"], json!(["agixt", "librechat"]));
    let operations = get_json(&appliance, "/jaeger/api/services/agixt/operations", &[]);
    assert_eq!(
        operations["data"],
        json!(["agixt.run", "tool.python", "tool.search"])
    );
    let operations = get_json(
        &appliance,
        "/jaeger/api/operations",
        &[("service", "librechat"), ("spanKind", "client")],
    );
    assert_eq!(
        operations["data"],
        json!([{"name": "POST agixt /run", "spanKind": "client"}])
    );
    let found = get_json(
        &appliance,
        "/jaeger/api/traces",
        &[
            ("service", "agixt"),
            ("tags", r#"{"run_id":"r-http"}"#),
            ("limit", "20"),
        ],
    );
    assert_eq!(found["data"].as_array().unwrap().len(), 1, "{found}");
    let jaeger = &found["data"][0];
    assert_eq!(jaeger["traceID"], http_trace.as_str());
    assert_eq!(jaeger["spans"].as_array().unwrap().len(), 5);
    let python = jaeger["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|span| span["operationName"] == "tool.python")
        .unwrap();
    let sent_python = sent
        .iter()
        .find(|span| span["trace_id"] == http_trace.as_str() && span["name"] == "tool.python")
        .unwrap();
    assert_eq!(python["references"][0]["refType"], "CHILD_OF");
    assert_eq!(python["references"][0]["spanID"], sent_python["parent_span_id"]);
    assert_eq!(python["startTime"], sent_python["start"].as_u64().unwrap() / 1000);
    assert!(
        python["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "error", "type": "bool", "value": true}))
    );
    assert!(
        python["tags"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "tool.timeout_s", "type": "float64", "value": 2.5}))
    );
    assert_eq!(python["logs"][0]["fields"][0]["value"], "sandbox.killed");
    let process = &jaeger["processes"][python["processID"].as_str().unwrap()];
    assert_eq!(process["serviceName"], "agixt");
    let by_id = get_json(&appliance, &format!("/jaeger/api/traces/{grpc_trace}"), &[]);
    assert_eq!(by_id["data"][0]["spans"].as_array().unwrap().len(), 5);
    let (status, _) = get(
        &appliance,
        "/jaeger/api/traces/00000000000000000000000000000bad",
        &[],
        None,
    );
    assert_eq!(status, 404);

    // 4. TraceQL metrics: spans of agixt per service over the last 10 minutes.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = (now - 600).to_string();
    let end = (now + 60).to_string();
    let body = get_json(
        &appliance,
        "/api/metrics/query_range",
        &[
            (
                "q",
                "{ status = error } | count_over_time() by (resource.service.name)",
            ),
            ("start", &start),
            ("end", &end),
            ("step", "60s"),
        ],
    );
    let series = body["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{body}");
    assert_eq!(series[0]["labels"][0]["value"]["stringValue"], "agixt");
    let total: f64 = series[0]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| sample["value"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 2.0, "{body}");
    // A query reading a trace-level field runs over whole traces: the same count.
    let body = get_json(
        &appliance,
        "/api/metrics/query_range",
        &[
            (
                "q",
                r#"{ rootServiceName = "librechat" && status = error } | count_over_time()"#,
            ),
            ("start", &start),
            ("end", &end),
            ("step", "60s"),
        ],
    );
    let total: f64 = body["series"][0]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|sample| sample["value"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 2.0, "{body}");

    // 5. Span metrics and the service graph, with Tempo's names, in the metrics store.
    let prom = |query: &str| -> Vec<(BTreeMap<String, String>, f64)> {
        let body = get_json(&appliance, "/api/v1/query", &[("query", query)]);
        body["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{query}: {body}"))
            .iter()
            .map(|sample| {
                let labels = serde_json::from_value(sample["metric"].clone()).unwrap();
                (labels, sample["value"][1].as_str().unwrap().parse().unwrap())
            })
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while prom("traces_spanmetrics_calls_total").len() < 5 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let calls = prom("sum by (service) (traces_spanmetrics_calls_total)");
    let calls: BTreeMap<String, f64> = calls
        .into_iter()
        .map(|(labels, value)| (labels["service"].clone(), value))
        .collect();
    assert_eq!(
        calls,
        BTreeMap::from([("agixt".to_owned(), 6.0), ("librechat".to_owned(), 4.0)])
    );
    let failed = prom(r#"traces_spanmetrics_calls_total{status_code="STATUS_CODE_ERROR"}"#);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0["span_name"], "tool.python");
    assert_eq!(failed[0].0["span_kind"], "SPAN_KIND_CLIENT");
    assert_eq!(failed[0].1, 2.0);
    // Every span took far less than 16 s: the +Inf bucket equals the count.
    let count = prom("sum(traces_spanmetrics_latency_count)");
    let inf = prom(r#"sum(traces_spanmetrics_latency_bucket{le="+Inf"})"#);
    assert_eq!(count[0].1, 10.0);
    assert_eq!(inf[0].1, 10.0);
    // Correlation keys never become metric labels.
    let series = get_json(
        &appliance,
        "/api/v1/labels",
        &[("match[]", "{__name__=~\"traces_.*\"}")],
    );
    for key in ["run_id", "session_id", "task_id", "trace_id"] {
        assert!(
            !series["data"].as_array().unwrap().contains(&json!(key)),
            "{series}"
        );
    }
    // LibreChat calls AGiXT: one edge, two requests, none failed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let edge = r#"traces_service_graph_request_total{client="librechat",server="agixt"}"#;
    while prom(edge).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let edges = prom(edge);
    assert_eq!(edges.len(), 1, "{:?}", prom("traces_service_graph_request_total"));
    assert_eq!(edges[0].1, 2.0);
    assert!(
        prom(r#"traces_service_graph_request_failed_total{client="librechat",server="agixt"} > 0"#)
            .is_empty()
    );
    let server_count =
        prom(r#"sum(traces_service_graph_request_server_seconds_count{client="librechat",server="agixt"})"#);
    assert_eq!(server_count[0].1, 2.0);
}

fn span(
    trace_id: [u8; 16],
    span_id: u8,
    parent: Option<u8>,
    name: &str,
    start_ns: u64,
    duration_ns: u64,
) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, span_id],
        parent_span_id: parent
            .map(|parent| vec![0, 0, 0, 0, 0, 0, 0, parent])
            .unwrap_or_default(),
        name: name.to_owned(),
        kind: 2,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: start_ns + duration_ns,
        ..Span::default()
    }
}

fn export(service: &str, spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: "service.name".into(),
                    value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                        value: Some(AnyValue::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

#[test]
fn spans_sent_apart_assemble_and_survive_kill_and_bad_input_is_refused_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = quiet_config(dir.path());
    let data = dir.path().join("data");
    let mut appliance = Appliance::start(&data, &["--config", config.to_str().unwrap()]);
    appliance.wait_ready();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // A trace whose id has leading zeros (Tempo's issue #4967 lost those).
    let trace_id = [0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 5, 6, 7, 8, 9, 10];
    let id_hex = hex(&trace_id);
    let minute = 60_000_000_000;
    // The root and one child now; another child (its timestamps 3 minutes later) after a flush.
    let (status, body) = post(
        &appliance,
        "/v1/traces",
        &export(
            "librechat",
            vec![
                span(
                    trace_id,
                    1,
                    None,
                    "POST /api/ask",
                    now_ns - 5 * minute,
                    4 * minute,
                ),
                span(
                    trace_id,
                    2,
                    Some(1),
                    "agixt.run",
                    now_ns - 5 * minute + 1000,
                    minute,
                ),
            ],
        ),
        "application/x-protobuf",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        ExportTraceServiceResponse::decode(body.as_slice())
            .unwrap()
            .partial_success,
        None
    );
    std::thread::sleep(Duration::from_secs(3));
    // The second part as OTLP JSON with a base64 id (as some exporters send), plus bad spans.
    let late = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "agixt"}}]},
        "scopeSpans": [{"spans": [
            {"traceId": id_hex, "spanId": "0000000000000003", "parentSpanId": "0000000000000002",
             "name": "tool.python", "kind": "SPAN_KIND_CLIENT",
             "startTimeUnixNano": (now_ns - 2 * minute).to_string(), "endTimeUnixNano": (now_ns - 2 * minute + 5000).to_string(),
             "status": {"code": 2, "message": "timeout"}},
            {"traceId": "AAAAAAAAAAASNAUGBwgJCg==", "spanId": "AAAAAAAAAAQ=", "parentSpanId": "0000000000000002",
             "name": "tool.search", "kind": 3,
             "startTimeUnixNano": (now_ns - 2 * minute).to_string(), "endTimeUnixNano": (now_ns - 2 * minute + 7000).to_string()},
            {"traceId": "0102", "spanId": "0000000000000009", "name": "short id",
             "startTimeUnixNano": now_ns.to_string(), "endTimeUnixNano": now_ns.to_string()},
            {"traceId": "00000000000000000000000000000000", "spanId": "0000000000000009", "name": "zero id",
             "startTimeUnixNano": now_ns.to_string(), "endTimeUnixNano": now_ns.to_string()},
            {"traceId": id_hex, "spanId": "0000000000000008", "name": "backwards",
             "startTimeUnixNano": now_ns.to_string(), "endTimeUnixNano": (now_ns - 1).to_string()}
        ]}]
    }]});
    let (status, body) = post(
        &appliance,
        "/v1/traces",
        late.to_string().as_bytes(),
        "application/json",
    );
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "{text}");
    let response: Value = serde_json::from_str(&text).unwrap();
    // int64: a number or a decimal string, both valid OTLP JSON.
    let rejected = &response["partialSuccess"]["rejectedSpans"];
    assert!(rejected == &json!(3) || rejected == &json!("3"), "{text}");
    let message = response["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("all zeros") && message.contains("before it starts"),
        "{message}"
    );
    let ids = |appliance: &Appliance, id: &str| -> Vec<String> {
        let mut ids: Vec<String> = trace_by_id(appliance, id)
            .expect("found")
            .iter()
            .map(|(_, span)| hex(&span.span_id))
            .collect();
        ids.sort();
        ids
    };
    let want: Vec<String> = (1..=4).map(|id| format!("{id:016x}")).collect();
    assert_eq!(ids(&appliance, &id_hex), want);
    // Leading zeros may be left out, as Tempo's clients do.
    assert_eq!(ids(&appliance, "123405060708090a"), want);
    // Range-restricted lookups (Grafana's time shift) see only the spans inside.
    let (status, _) = get(
        &appliance,
        &format!("/api/v2/traces/{id_hex}"),
        &[("start", "1000"), ("end", "2000")],
        Some("application/protobuf"),
    );
    assert_eq!(status, 404);

    // kill -9 with the late spans possibly only in the log: nothing acknowledged is lost, and
    // what a flush had already indexed is not indexed twice.
    appliance.signal("KILL");
    appliance.wait_exit(Duration::from_secs(10)).expect("killed");
    let appliance = Appliance::start(&data, &["--config", config.to_str().unwrap()]);
    appliance.wait_ready();
    assert_eq!(ids(&appliance, &id_hex), want);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ids(&appliance, &id_hex), want);
    let found = search(&appliance, r#"{ name = "tool.python" && status = error }"#);
    assert_eq!(found, vec![id_hex.clone()]);

    // Zipkin v2 JSON.
    let zipkin = json!([{"traceId": "00000000000000aa", "id": "00000000000000bb", "name": "get /health",
        "kind": "SERVER", "timestamp": now_ns / 1000, "duration": 1500,
        "localEndpoint": {"serviceName": "traefik"}, "tags": {"http.status_code": "200"}}]);
    let (status, body) = post(
        &appliance,
        "/api/v2/spans",
        zipkin.to_string().as_bytes(),
        "application/json",
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let spans = trace_by_id(&appliance, "aa").expect("the Zipkin trace is found");
    assert_eq!(spans.len(), 1);
    assert_eq!(
        spans[0].1.end_time_unix_nano - spans[0].1.start_time_unix_nano,
        1_500_000
    );

    // Bad input: clear errors in the client's format, nothing else disturbed.
    let (status, _) = post(
        &appliance,
        "/v1/traces",
        b"\xff\xff\xff garbage",
        "application/x-protobuf",
    );
    assert_eq!(status, 400);
    let (status, _) = post(
        &appliance,
        "/v1/traces",
        b"{\"resourceSpans\": [",
        "application/json",
    );
    assert_eq!(status, 400);
    let (status, _) = post(&appliance, "/api/v2/spans", b"not json", "application/json");
    assert_eq!(status, 400);
    // A body that decompresses to 100 MB is refused with 413 without inflating it all.
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &vec![0u8; 100 << 20]).unwrap();
    let bomb = encoder.finish().unwrap();
    let mut response = common::http()
        .post(&appliance.url("/v1/traces"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "gzip")
        .send(&bomb[..])
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        413,
        "{}",
        response.body_mut().read_to_string().unwrap()
    );
    let (status, body) = get(&appliance, "/api/search", &[("q", "{ .a = }")], None);
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("col"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _) = get(&appliance, "/api/v2/traces/not-hex", &[], None);
    assert_eq!(status, 400);
    let (status, _) = get(
        &appliance,
        "/api/v2/traces/ffffffffffffffffffffffffffffffff",
        &[],
        None,
    );
    assert_eq!(status, 404);
    let (status, body) = get(&appliance, "/api/echo", &[], None);
    assert_eq!((status, body.as_slice()), (200, b"echo".as_slice()));
    let buildinfo = get_json(&appliance, "/api/status/buildinfo", &[]);
    assert!(buildinfo["version"].as_str().unwrap().starts_with("2."));
    assert_eq!(ids(&appliance, &id_hex), want);
}
