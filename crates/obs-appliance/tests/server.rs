//! The running server: start-up, operational endpoints, gRPC on the main port, shutdown.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Appliance, get, required_tool};
use http_body_util::{BodyExt, Full};

fn wait_ready(appliance: &Appliance) -> Duration {
    appliance.wait_ready()
}

#[test]
fn starts_on_an_empty_data_dir_in_under_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let appliance = Appliance::start(&dir.path().join("fresh"), &[]);
    let elapsed = wait_ready(&appliance);
    assert!(
        elapsed < Duration::from_secs(1),
        "ready after {elapsed:?}:\n{}",
        appliance.log_text()
    );
    let (status, _, body) = get(&appliance.url("/-/healthy"));
    assert_eq!((status, body.as_str()), (200, "obs-appliance is Healthy.\n"));
    let (status, _, body) = get(&appliance.url("/ready"));
    assert_eq!((status, body.as_str()), (200, "obs-appliance is Ready.\n"));
    let (status, _, body) = get(&appliance.url("/no/such/path"));
    assert_eq!((status, body.as_str()), (404, "404 page not found\n"));
}

#[test]
fn buildinfo_answers_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let appliance = Appliance::start(dir.path(), &[]);
    let (status, content_type, body) = get(&appliance.url("/api/v1/status/buildinfo"));
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    let expected_start =
        "{\"status\":\"success\",\"data\":{\"version\":\"2.42.0\",\"revision\":\"obs-appliance-";
    assert!(body.starts_with(expected_start), "{body}");
    for field in [
        "\"branch\":",
        "\"buildUser\":",
        "\"buildDate\":",
        "\"goVersion\":",
    ] {
        assert!(body.contains(field), "{field} missing: {body}");
    }
    assert!(
        !body.contains("features"),
        "Grafana must see plain Prometheus: {body}"
    );
}

#[test]
fn metrics_are_valid_exposition_format_with_the_promised_series() {
    let dir = tempfile::tempdir().unwrap();
    let appliance = Appliance::start(dir.path(), &[]);
    wait_ready(&appliance);
    // One request to count, then a pause for the first retention pass to measure the disk.
    get(&appliance.url("/-/healthy"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, content_type, body) = get(&appliance.url("/metrics"));
        assert_eq!(status, 200);
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        if body.contains("obs_filesystem_size_bytes ") || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for series in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "obs_http_requests_total{code=\"200\",handler=\"/-/healthy\"} ",
        "obs_http_request_duration_seconds_bucket{handler=\"/-/healthy\",le=\"0.005\"} ",
        "obs_wal_fsyncs_total{wal=\"metrics\"} ",
        "obs_wal_fsync_duration_seconds_count{wal=\"logs\"} ",
        "obs_wal_segments{wal=\"traces\"} 1",
        "obs_storage_bytes{signal=\"metrics\"} ",
        "obs_storage_bytes{signal=\"other\"} ",
        "obs_filesystem_size_bytes ",
        "obs_filesystem_available_bytes ",
        "obs_storage_over_budget 0",
        "obs_build_info{",
        "obs_metrics_samples_rejected_total{reason=\"denied_label\"} ",
    ] {
        assert!(body.contains(series), "{series:?} missing from /metrics:\n{body}");
    }

    // Prometheus' own parser and linter.
    let Some(promtool) = required_tool("promtool", "apt-get install prometheus") else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An HTTP/2 connection with prior knowledge (cleartext, as gRPC clients use).
async fn h2_connect(addr: std::net::SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    sender
}

/// One gRPC unary call over HTTP/2 cleartext: status, grpc-status, response message bytes.
async fn grpc_call(addr: std::net::SocketAddr, path: &str, message: &[u8]) -> (u16, Option<String>, Vec<u8>) {
    let mut sender = h2_connect(addr).await;
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    let request = hyper::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(frame)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let header_status = response
        .headers()
        .get("grpc-status")
        .map(|value| value.to_str().unwrap().to_owned());
    let collected = response.into_body().collect().await.unwrap();
    let trailer_status = collected
        .trailers()
        .and_then(|trailers| trailers.get("grpc-status"))
        .map(|value| value.to_str().unwrap().to_owned());
    (
        status,
        trailer_status.or(header_status),
        collected.to_bytes().to_vec(),
    )
}

#[test]
fn grpc_and_http2_share_the_main_port() {
    let dir = tempfile::tempdir().unwrap();
    let appliance = Appliance::start(dir.path(), &[]);
    wait_ready(&appliance);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // grpc.health.v1.Health/Check with an empty request: SERVING (field 1 = 1).
        let (status, grpc_status, body) =
            grpc_call(appliance.addr, "/grpc.health.v1.Health/Check", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(grpc_status.as_deref(), Some("0"));
        assert_eq!(body, [0, 0, 0, 0, 2, 0x08, 0x01]);

        // A service that does not exist is UNIMPLEMENTED (12), in gRPC terms, not an HTTP 404.
        let (status, grpc_status, _) = grpc_call(appliance.addr, "/no.such.Service/Method", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(grpc_status.as_deref(), Some("12"));

        // Plain HTTP over HTTP/2 with prior knowledge reaches the HTTP routes.
        let mut sender = h2_connect(appliance.addr).await;
        let request = hyper::Request::get(format!("http://{}/-/healthy", appliance.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"obs-appliance is Healthy.\n");
    });
}

#[test]
fn sigterm_shuts_down_cleanly_and_a_restart_replays_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut appliance = Appliance::start(dir.path(), &[]);
    wait_ready(&appliance);
    appliance.signal("TERM");
    let status = appliance.wait_exit(Duration::from_secs(10));
    let log = appliance.log_text();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "no clean exit within 10s:\n{log}"
    );
    assert!(log.contains("shutting down signal=\"SIGTERM\""), "{log}");
    assert!(log.contains("log store flushed"), "{log}");
    assert!(log.contains("span store flushed"), "{log}");
    assert!(log.contains("metrics store checkpointed and closed"), "{log}");
    assert!(log.contains("stopped"), "{log}");

    let mut again = Appliance::start(dir.path(), &[]);
    wait_ready(&again);
    assert!(!again.log_text().contains("damaged"), "{}", again.log_text());
    again.signal("INT");
    assert_eq!(
        again.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn default_config_binds_exactly_the_one_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    let appliance = Appliance::start(dir.path(), &[]);
    wait_ready(&appliance);
    let listening: Vec<String> = appliance
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains("listening addr="))
        .cloned()
        .collect();
    assert_eq!(listening.len(), 1, "{listening:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let appliance = Appliance::start(dir.path(), &["--log-format", "json"]);
    wait_ready(&appliance);
    let lines = appliance.log.lock().unwrap().clone();
    assert!(!lines.is_empty());
    for line in lines {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        assert!(line.contains("\"level\":"), "{line}");
    }
}
