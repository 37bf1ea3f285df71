//! Logs end to end, against the real binary over loopback:
//!
//! - real clients push: python-logging-loki (Loki's JSON push API) and the OpenTelemetry Python
//!   SDK's OTLP log exporters over HTTP and gRPC (`tests/clients/loki_logs.py`);
//! - a protobuf push in snappy block format (what Promtail and Alloy send) with one stream
//!   whose labels do not parse: 400 naming it, the other stream kept;
//! - Grafana's Loki datasource then finds them: labels, series, the health check
//!   `vector(1)+vector(1)`, log queries with line filters, parsers and a correlation key, the
//!   trace id of an OTLP record (the join from a span to its logs), categorized labels, the
//!   logs-volume metric query;
//! - live tail sends lines pushed after it connected;
//! - what was acknowledged survives `kill -9`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::time::Duration;

use common::Appliance;
use obs_logs::push::{EntryAdapter, LabelPairAdapter, ProtoTimestamp, PushRequest, StreamAdapter};
use prost::Message;

fn post(appliance: &Appliance, path: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
    let mut call = common::http().post(&appliance.url(path));
    for (name, value) in headers {
        call = call.header(*name, *value);
    }
    let mut response = call.send(body).unwrap();
    (
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap(),
    )
}

/// A Loki query API call; the parsed JSON body.
fn loki(
    appliance: &Appliance,
    path: &str,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> serde_json::Value {
    let mut call = common::http().get(&appliance.url(path));
    for (name, value) in params {
        call = call.query(*name, *value);
    }
    for (name, value) in headers {
        call = call.header(*name, *value);
    }
    let mut response = call.call().unwrap();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    assert_eq!(status, 200, "{path} {params:?}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Every line of a streams result, newest first as returned.
fn lines(result: &serde_json::Value) -> Vec<String> {
    let mut all: Vec<(i64, String)> = Vec::new();
    for stream in result["data"]["result"].as_array().unwrap() {
        for value in stream["values"].as_array().unwrap() {
            all.push((
                value[0].as_str().unwrap().parse().unwrap(),
                value[1].as_str().unwrap().to_owned(),
            ));
        }
    }
    all.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    all.into_iter().map(|(_, line)| line).collect()
}

fn protobuf_push(appliance: &Appliance, base_ns: i64) {
    let entry = |offset: i64, line: &str, metadata: &[(&str, &str)]| EntryAdapter {
        timestamp: Some(ProtoTimestamp {
            seconds: (base_ns + offset) / 1_000_000_000,
            nanos: ((base_ns + offset) % 1_000_000_000) as i32,
        }),
        line: line.as_bytes().to_vec(),
        structured_metadata: metadata
            .iter()
            .map(|(name, value)| LabelPairAdapter {
                name: (*name).to_owned(),
                value: (*value).to_owned(),
            })
            .collect(),
        parsed: Vec::new(),
    };
    let request = PushRequest {
        streams: vec![
            StreamAdapter {
                labels: r#"{app="traefik", namespace="kube-system"}"#.to_owned(),
                entries: vec![
                    entry(1, r#"10.0.0.7 - - "GET /api/chat HTTP/1.1" 200 512 12ms"#, &[]),
                    entry(
                        2,
                        r#"10.0.0.7 - - "POST /api/agents HTTP/1.1" 502 0 3001ms"#,
                        &[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")],
                    ),
                ],
                hash: 0,
            },
            StreamAdapter {
                labels: "{this is not a label set}".to_owned(),
                entries: vec![entry(3, "lost", &[])],
                hash: 0,
            },
        ],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    let (status, message) = post(
        appliance,
        "/loki/api/v1/push",
        &body,
        &[("Content-Type", "application/x-protobuf")],
    );
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("error parsing labels"), "{message}");
    assert!(message.contains("1 entries refused, 2 stored"), "{message}");
    // Without a content type, a push is protobuf too.
    let only_good = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{app="traefik", namespace="kube-system"}"#.to_owned(),
            entries: vec![entry(4, r#"10.0.0.9 - - "GET /healthz HTTP/1.1" 200 2 1ms"#, &[])],
            hash: 0,
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&only_good.encode_to_vec())
        .unwrap();
    let (status, message) = post(appliance, "/loki/api/v1/push", &body, &[]);
    assert_eq!(status, 204, "{message}");
}

#[test]
fn real_clients_push_and_grafana_queries_find_their_logs() {
    if !common::required_python_modules(
        &[
            "logging_loki",
            "opentelemetry.sdk._logs",
            "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
        ],
        "pip install python-logging-loki opentelemetry-sdk opentelemetry-exporter-otlp (tests/run does it)",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let quiet = common::no_scrape_config(dir.path());
    let appliance = Appliance::start(&data, &["--config", quiet.to_str().unwrap()]);
    appliance.wait_ready();
    let stdout = appliance.run_python_client("loki_logs.py");
    let trace_ids: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect();
    assert_eq!(trace_ids.len(), 2, "{stdout}");
    protobuf_push(&appliance, now_ns() - 1_000_000_000);

    // Save & test: the health check and the labels of the last 10 minutes.
    let health = loki(
        &appliance,
        "/loki/api/v1/query",
        &[("query", "vector(1)+vector(1)")],
        &[],
    );
    assert_eq!(health["data"]["resultType"], "vector");
    assert_eq!(health["data"]["result"][0]["value"][1], "2");
    let start = (now_ns() - 600_000_000_000).to_string();
    let labels = loki(&appliance, "/loki/api/v1/labels", &[("start", &start)], &[]);
    for name in [
        "app",
        "k8s_pod_name",
        "logger",
        "namespace",
        "service_name",
        "severity",
    ] {
        assert!(
            labels["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|label| label == name),
            "{name}: {labels}"
        );
    }
    let values = loki(&appliance, "/loki/api/v1/label/service_name/values", &[], &[]);
    assert_eq!(
        values["data"],
        serde_json::json!(["jarvis", "jarvis-grpc", "jarvis-http", "traefik"])
    );

    // Log queries as Explore sends them.
    let range = |query: &str| {
        loki(
            &appliance,
            "/loki/api/v1/query_range",
            &[
                ("query", query),
                ("start", &start),
                ("limit", "1000"),
                ("step", "15000ms"),
            ],
            &[],
        )
    };
    // Every line the clients sent comes back, with its labels and structured metadata.
    let everything = range(r#"{app="jarvis"}"#);
    let mut sent = lines(&everything);
    sent.sort();
    assert_eq!(
        sent,
        [
            "level=warn run_id=r-100 agent=worker msg=\"tool slow\" duration=2.5s",
            "tool call failed: connection refused",
            r#"{"run_id":"r-100","session_id":"s-7","agent":"planner","msg":"run started"}"#,
        ]
    );
    for stream in everything["data"]["result"].as_array().unwrap() {
        assert_eq!(stream["stream"]["namespace"], "agents", "{stream}");
        assert_eq!(stream["stream"]["logger"], "jarvis.loki", "{stream}");
    }
    let otel = range(r#"{service_name=~"jarvis-.+"}"#);
    let mut otel_lines = lines(&otel);
    otel_lines.sort();
    assert_eq!(
        otel_lines,
        [
            "agent loop begins",
            "agent loop begins",
            "tool call failed",
            "tool call failed"
        ]
    );
    for stream in otel["data"]["result"].as_array().unwrap() {
        // Without categorized labels, metadata is merged into the stream's labels.
        assert_eq!(stream["stream"]["k8s_pod_name"], "jarvis-0", "{stream}");
        assert_eq!(stream["stream"]["host_name"], "node-3", "{stream}");
        assert_eq!(stream["stream"]["run_id"], "r-200", "{stream}");
        assert!(
            stream["stream"]["scope_name"]
                .as_str()
                .unwrap()
                .starts_with("agixt."),
            "{stream}"
        );
    }
    assert_eq!(
        lines(&range(r#"{app="jarvis"} |= "failed""#)),
        ["tool call failed: connection refused"]
    );
    assert_eq!(
        lines(&range(r#"{app="jarvis"} | json | run_id="r-100""#)),
        [r#"{"run_id":"r-100","session_id":"s-7","agent":"planner","msg":"run started"}"#]
    );
    assert_eq!(
        lines(&range(r#"{app="jarvis"} | logfmt | duration > 2s"#)),
        [r#"level=warn run_id=r-100 agent=worker msg="tool slow" duration=2.5s"#]
    );
    // From a span to its logs: the trace id the SDK put on the record.
    for (protocol, trace_id) in &trace_ids {
        let query = format!(r#"{{service_name="jarvis-{protocol}"}} | trace_id="{trace_id}""#);
        assert_eq!(lines(&range(&query)), ["tool call failed"], "{query}");
    }
    let status_502 = range(r#"{app="traefik"} |= "502""#);
    assert_eq!(lines(&status_502).len(), 1);
    // A line_format panel.
    assert_eq!(
        lines(&range(
            r#"{app="jarvis"} | json | run_id != "" | line_format "{{.agent}}: {{.msg | ToUpper}}""#
        )),
        ["planner: RUN STARTED"]
    );

    // Grafana 10+ asks for structured metadata and parsed labels apart.
    let categorized = loki(
        &appliance,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{service_name="jarvis-http"} |= "failed" | logfmt"#),
            ("start", &start),
        ],
        &[("X-Loki-Response-Encoding-Flags", "categorize-labels")],
    );
    assert_eq!(
        categorized["data"]["encodingFlags"],
        serde_json::json!(["categorize-labels"])
    );
    let stream = &categorized["data"]["result"][0];
    assert_eq!(stream["stream"]["service_name"], "jarvis-http");
    assert!(stream["stream"].get("run_id").is_none(), "{stream}");
    let entry = &stream["values"][0];
    assert_eq!(entry[2]["structuredMetadata"]["run_id"], "r-200");
    assert_eq!(entry[2]["structuredMetadata"]["task_id"], "t-3");
    assert_eq!(entry[2]["structuredMetadata"]["severity_text"], "ERROR");

    // The logs volume histogram.
    let volume = loki(
        &appliance,
        "/loki/api/v1/query_range",
        &[
            (
                "query",
                r#"sum by (level, detected_level) (count_over_time({app="jarvis"} | drop __error__ [1m]))"#,
            ),
            ("start", &start),
            ("step", "60000ms"),
        ],
        &[],
    );
    assert_eq!(volume["data"]["resultType"], "matrix");
    let mut total = 0.0;
    let mut levels = Vec::new();
    for series in volume["data"]["result"].as_array().unwrap() {
        levels.push(
            series["metric"]["detected_level"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
        // Each line falls into exactly one one-minute window; several steps may see it, so
        // count the largest point of each series.
        total += series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|point| point[1].as_str().unwrap().parse::<f64>().unwrap())
            .fold(0.0, f64::max);
    }
    levels.sort();
    assert_eq!(levels, ["error", "info", "warn"], "{volume}");
    assert_eq!(total, 3.0, "{volume}");
}

#[test]
fn acknowledged_pushes_survive_kill_9_and_bad_bodies_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let quiet = common::no_scrape_config(dir.path());
    let mut appliance = Appliance::start(&data, &["--config", quiet.to_str().unwrap()]);
    appliance.wait_ready();
    let base = now_ns() - 60_000_000_000;
    let mut body = String::from(r#"{"streams":[{"stream":{"app":"jarvis"},"values":["#);
    for i in 0..500 {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(r#"["{}","line {i} run_id=r-{}"]"#, base + i, i % 7));
    }
    body.push_str("]}]}");
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzipped.write_all(body.as_bytes()).unwrap();
    let (status, message) = post(
        &appliance,
        "/loki/api/v1/push",
        &gzipped.finish().unwrap(),
        &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
    );
    assert_eq!(status, 204, "{message}");

    // Bad bodies: each a 4xx in plain text, nothing else affected.
    let (status, message) = post(&appliance, "/loki/api/v1/push", b"\x00\x01garbage", &[]);
    assert_eq!(status, 400, "{message}");
    let (status, message) = post(
        &appliance,
        "/loki/api/v1/push",
        br#"{"streams":[{"stream":{"app":"x"},"values":[[1700000000000000000,"ts not a string"]]}]}"#,
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("timestamp must be a string"), "{message}");
    let (status, message) = post(
        &appliance,
        "/loki/api/v1/push",
        b"{}",
        &[("Content-Encoding", "br")],
    );
    assert_eq!(status, 415, "{message}");
    let zeros = vec![0u8; 200 << 20];
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&zeros).unwrap();
    let (status, message) = post(
        &appliance,
        "/loki/api/v1/push",
        &bomb.finish().unwrap(),
        &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
    );
    assert_eq!(status, 413, "{message}");
    let (status, message) = post(&appliance, "/loki/api/v1/query_range", b"", &[]);
    assert_eq!(status, 400, "{message}");
    let mut call = common::http().get(&appliance.url("/loki/api/v1/query_range"));
    call = call.query("query", r#"{app="jarvis"} |= "#);
    let mut response = call.call().unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let text = response.body_mut().read_to_string().unwrap();
    assert!(text.starts_with("parse error at line 1, col"), "{text}");

    // A 10 MB line, a stream of 1,000 labels and a line of invalid UTF-8 in one push: the
    // first two refused with Loki's reasons, the third kept with the bad bytes replaced.
    let ten_mb = "x".repeat(10 << 20);
    let many_labels = (0..1000)
        .map(|i| format!("l{i}=\"v\""))
        .collect::<Vec<_>>()
        .join(", ");
    let request = PushRequest {
        streams: vec![
            StreamAdapter {
                labels: r#"{app="big"}"#.to_owned(),
                entries: vec![EntryAdapter {
                    timestamp: Some(ProtoTimestamp {
                        seconds: base / 1_000_000_000,
                        nanos: 0,
                    }),
                    line: ten_mb.into_bytes(),
                    ..EntryAdapter::default()
                }],
                hash: 0,
            },
            StreamAdapter {
                labels: format!("{{{many_labels}}}"),
                entries: vec![EntryAdapter {
                    timestamp: Some(ProtoTimestamp {
                        seconds: base / 1_000_000_000,
                        nanos: 0,
                    }),
                    line: b"labelled".to_vec(),
                    ..EntryAdapter::default()
                }],
                hash: 0,
            },
            StreamAdapter {
                labels: r#"{app="utf8"}"#.to_owned(),
                entries: vec![EntryAdapter {
                    timestamp: Some(ProtoTimestamp {
                        seconds: base / 1_000_000_000,
                        nanos: 0,
                    }),
                    line: b"bad \xff\xfe bytes".to_vec(),
                    ..EntryAdapter::default()
                }],
                hash: 0,
            },
        ],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    let (status, message) = post(&appliance, "/loki/api/v1/push", &body, &[]);
    assert_eq!(status, 400, "{message}");
    assert!(
        message.contains("max entry size '262144' bytes exceeded"),
        "{message}"
    );
    assert!(message.contains("1000 labels exceed the limit"), "{message}");
    assert!(
        message.len() < 2000,
        "the refusal quotes at most the start of the labels: {message}"
    );
    assert!(message.contains("2 entries refused, 1 stored"), "{message}");
    // The entries above carry whole seconds.
    let start = (base - 2_000_000_000).to_string();
    let utf8 = loki(
        &appliance,
        "/loki/api/v1/query_range",
        &[("query", r#"{app="utf8"}"#), ("start", &start)],
        &[],
    );
    assert_eq!(lines(&utf8), ["bad \u{fffd}\u{fffd} bytes"]);
    // A query asking for more lines than the limit gets a clear 400, as Loki answers.
    let mut response = common::http()
        .get(&appliance.url("/loki/api/v1/query_range"))
        .query("query", r#"{app="jarvis"}"#)
        .query("limit", "100000")
        .call()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let text = response.body_mut().read_to_string().unwrap();
    assert!(text.contains("max entries limit per query exceeded"), "{text}");

    // kill -9: nothing acknowledged is lost.
    appliance.signal("KILL");
    appliance.wait_exit(Duration::from_secs(10)).unwrap();
    let appliance = Appliance::start(&data, &["--config", quiet.to_str().unwrap()]);
    appliance.wait_ready();
    let start = (base - 1).to_string();
    let count = loki(
        &appliance,
        "/loki/api/v1/query",
        &[("query", r#"sum(count_over_time({app="jarvis"}[10m]))"#)],
        &[],
    );
    assert_eq!(count["data"]["result"][0]["value"][1], "500", "{count}");
    let r3 = loki(
        &appliance,
        "/loki/api/v1/query_range",
        &[
            ("query", r#"{app="jarvis"} | logfmt | run_id="r-3""#),
            ("start", &start),
            ("limit", "1000"),
        ],
        &[],
    );
    assert_eq!(lines(&r3).len(), (0..500).filter(|i| i % 7 == 3).count());
}

fn push_json(appliance: &Appliance, app: &str, lines: &[&str]) {
    let base = now_ns();
    let values: Vec<serde_json::Value> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| serde_json::json!([(base + i as i64).to_string(), line]))
        .collect();
    let body = serde_json::json!({"streams": [{"stream": {"app": app}, "values": values}]}).to_string();
    let (status, message) = post(
        appliance,
        "/loki/api/v1/push",
        body.as_bytes(),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(status, 204, "{message}");
}

/// The lines of every tail message received within `timeout`, until `enough` lines came.
fn tail_lines(
    socket: &mut tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>,
    enough: usize,
    timeout: Duration,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + timeout;
    let mut received = Vec::new();
    while received.len() < enough && std::time::Instant::now() < deadline {
        match socket.read() {
            Ok(tungstenite::Message::Text(text)) => {
                let message: serde_json::Value = serde_json::from_str(&text).unwrap();
                for stream in message["streams"].as_array().unwrap() {
                    for value in stream["values"].as_array().unwrap() {
                        received.push(value[1].as_str().unwrap().to_owned());
                    }
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => panic!("tail failed: {err}"),
        }
    }
    received
}

#[test]
fn live_tail_sends_history_then_lines_pushed_after_it_connected() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let quiet = common::no_scrape_config(dir.path());
    let appliance = Appliance::start(&data, &["--config", quiet.to_str().unwrap()]);
    appliance.wait_ready();
    push_json(&appliance, "jarvis", &["before 1", "before 2", "no match"]);
    // Grafana probes the v2alpha endpoint first and must get 404 to use this one.
    let (status, _, _) = common::get(&appliance.url("/loki/api/v2alpha/tail"));
    assert_eq!(status, 404);
    let url = format!(
        "ws://{}/loki/api/v1/tail?query={}",
        appliance.addr, "%7Bapp%3D%22jarvis%22%7D%20%7C%3D%20%22e%22"
    );
    let (mut socket, _) = tungstenite::connect(url).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    }
    let history = tail_lines(&mut socket, 2, Duration::from_secs(10));
    assert_eq!(history, ["before 1", "before 2"]);
    // "skip: no match" has no letter e: the line filter drops it.
    push_json(&appliance, "jarvis", &["after 1", "skip: no match", "after 2"]);
    push_json(&appliance, "traefik", &["other stream, never tailed"]);
    let live = tail_lines(&mut socket, 2, Duration::from_secs(15));
    assert_eq!(live, ["after 1", "after 2"]);
    // Nothing more arrives: each line was sent once.
    assert!(tail_lines(&mut socket, 1, Duration::from_secs(3)).is_empty());
    socket.close(None).unwrap();
}
