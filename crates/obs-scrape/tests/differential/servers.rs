//! The processes and HTTP servers the recorder needs: the fixture server Prometheus scrapes,
//! the remote-write receiver that captures what Prometheus stores, and Prometheus itself.
//! Everything listens on 127.0.0.1, stops when dropped and bounds every wait.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{CapturedSample, Fixture, Response, render};

/// How long a connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a "hang" step keeps the connection open without answering: well past the
/// scrape timeout.
const HANG: Duration = Duration::from_secs(2);
/// The largest request head accepted.
const MAX_HEAD_BYTES: usize = 64 << 10;
/// The largest remote-write body accepted.
const MAX_BODY_BYTES: usize = 64 << 20;

/// A request's first line and body.
struct Request {
    target: String,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request (head, then a `Content-Length` body if any).
fn read_request(stream: &mut TcpStream) -> Result<Request, String> {
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|err| err.to_string())?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err("request head too large".to_owned());
        }
        let read = stream.read(&mut chunk).map_err(|err| err.to_string())?;
        if read == 0 {
            return Err("connection closed before the request head ended".to_owned());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let target = request_line
        .split(' ')
        .nth(1)
        .ok_or_else(|| format!("bad request line {request_line:?}"))?
        .to_owned();
    let content_length = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.trim().parse::<usize>())
        .transpose()
        .map_err(|err| format!("bad content-length: {err}"))?
        .unwrap_or(0);
    if content_length > MAX_BODY_BYTES {
        return Err(format!("body of {content_length} bytes is too large"));
    }
    let mut body = buffer[head_end..].to_vec();
    while body.len() < content_length {
        let read = stream.read(&mut chunk).map_err(|err| err.to_string())?;
        if read == 0 {
            return Err("connection closed before the body ended".to_owned());
        }
        body.extend_from_slice(&chunk[..read]);
    }
    body.truncate(content_length);
    Ok(Request { target, body })
}

fn write_response(stream: &mut TcpStream, status: u16, content_type: Option<&str>, body: &[u8]) {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\n", body.len());
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// Accepts connections until `stop`, handing each to `handle` (on its own thread when
/// `threaded`, else inline, in accept order).
fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    threaded: bool,
    handle: Arc<dyn Fn(TcpStream) + Send + Sync>,
) -> JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    if threaded {
                        let handle = Arc::clone(&handle);
                        std::thread::spawn(move || handle(stream));
                    } else {
                        handle(stream);
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    })
}

/// What the fixture server did for one fixture.
#[derive(Debug, Clone, Default)]
pub(crate) struct Served {
    /// Requests answered (or left hanging) so far.
    pub(crate) requests: usize,
    /// The path and query of the first request.
    pub(crate) first_path: String,
}

struct FixtureState {
    fixtures: BTreeMap<String, Fixture>,
    base_ms: AtomicI64,
    served: Mutex<BTreeMap<String, Served>>,
}

/// Serves each fixture's steps in order: its n-th request gets step n, and every request after
/// the last step gets the last step again. A fixture is found by its path,
/// `/fixtures/<name>`, or by the `fixture` query parameter.
pub(crate) struct FixtureServer {
    pub(crate) address: String,
    state: Arc<FixtureState>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FixtureServer {
    pub(crate) fn start(fixtures: &[Fixture]) -> FixtureServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let state = Arc::new(FixtureState {
            fixtures: fixtures
                .iter()
                .map(|fixture| (fixture.name.clone(), fixture.clone()))
                .collect(),
            base_ms: AtomicI64::new(0),
            served: Mutex::new(BTreeMap::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let handler_state = Arc::clone(&state);
        let accept = accept_loop(
            listener,
            Arc::clone(&stop),
            true,
            Arc::new(move |mut stream| serve_fixture(&handler_state, &mut stream)),
        );
        FixtureServer {
            address,
            state,
            stop,
            accept: Some(accept),
        }
    }

    /// Sets the time `{{ms:N}}` and `{{s:N}}` are relative to.
    pub(crate) fn set_base_ms(&self, base_ms: i64) {
        self.state.base_ms.store(base_ms, Ordering::SeqCst);
    }

    pub(crate) fn served(&self) -> BTreeMap<String, Served> {
        self.state.served.lock().unwrap().clone()
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn fixture_name(target: &str) -> Option<String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if let Some(name) = path.strip_prefix("/fixtures/") {
        return Some(name.to_owned());
    }
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "fixture")
        .map(|(_, value)| value.to_owned())
}

fn serve_fixture(state: &FixtureState, stream: &mut TcpStream) {
    let Ok(request) = read_request(stream) else {
        return;
    };
    let Some(fixture) = fixture_name(&request.target).and_then(|name| state.fixtures.get(&name)) else {
        write_response(stream, 404, Some("text/plain"), b"no such fixture\n");
        return;
    };
    let step = {
        let mut served = state.served.lock().unwrap();
        let entry = served.entry(fixture.name.clone()).or_default();
        if entry.requests == 0 {
            entry.first_path = request.target.clone();
        }
        entry.requests += 1;
        (entry.requests - 1).min(fixture.steps.len() - 1)
    };
    match &fixture.steps[step] {
        Response::Hang => std::thread::sleep(HANG),
        Response::Answer {
            status,
            content_type,
            body,
        } => {
            let body = render(body, state.base_ms.load(Ordering::SeqCst));
            write_response(stream, *status, content_type.as_deref(), body.as_bytes());
        }
    }
}

/// Receives remote-write requests and keeps their samples in arrival order. Requests are
/// handled one at a time, in the order they connect, so that with one remote-write shard the
/// samples keep the order of Prometheus' write-ahead log.
pub(crate) struct CaptureServer {
    pub(crate) url: String,
    samples: Arc<Mutex<Vec<CapturedSample>>>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl CaptureServer {
    pub(crate) fn start() -> CaptureServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/write", listener.local_addr().unwrap());
        let samples = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (handler_samples, handler_errors) = (Arc::clone(&samples), Arc::clone(&errors));
        let accept = accept_loop(
            listener,
            Arc::clone(&stop),
            false,
            Arc::new(move |mut stream| {
                if let Err(err) = capture(&mut stream, &handler_samples) {
                    handler_errors.lock().unwrap().push(err.clone());
                    write_response(&mut stream, 400, Some("text/plain"), err.as_bytes());
                }
            }),
        );
        CaptureServer {
            url,
            samples,
            errors,
            stop,
            accept: Some(accept),
        }
    }

    pub(crate) fn samples(&self) -> Vec<CapturedSample> {
        self.samples.lock().unwrap().clone()
    }

    pub(crate) fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn capture(stream: &mut TcpStream, samples: &Mutex<Vec<CapturedSample>>) -> Result<(), String> {
    let request = read_request(stream)?;
    let body = snap::raw::Decoder::new()
        .decompress_vec(&request.body)
        .map_err(|err| format!("snappy: {err}"))?;
    let decoded = obs_metrics::remote_write::decode(&body).map_err(|err| err.to_string())?;
    let mut captured = Vec::new();
    for series in &decoded.series {
        let labels: BTreeMap<String, String> = decoded
            .labels(series)
            .iter()
            .map(|(name, value)| {
                (
                    String::from_utf8_lossy(name).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                )
            })
            .collect();
        for (timestamp_ms, value) in decoded.samples(series) {
            captured.push(CapturedSample {
                labels: labels.clone(),
                timestamp_ms: *timestamp_ms,
                value: *value,
            });
        }
    }
    samples.lock().unwrap().extend(captured);
    write_response(stream, 204, None, b"");
    Ok(())
}

/// A Prometheus server, killed when dropped (also when the recording panics).
pub(crate) struct PrometheusProcess {
    child: Child,
    pub(crate) base_url: String,
    log_path: PathBuf,
}

impl Drop for PrometheusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrometheusProcess {
    /// Starts `binary` on a free port with `config_path` and a TSDB under `dir`.
    pub(crate) fn start(binary: &Path, dir: &Path, config_path: &Path) -> PrometheusProcess {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let log_path = dir.join("prometheus.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {}: {err}", binary.display()));
        PrometheusProcess {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log_path,
        }
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub(crate) fn wait_ready(&mut self, agent: &ureq::Agent) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "prometheus exited with {status} before it was ready:\n{}",
                    self.log_tail()
                );
            }
            let ready = agent
                .get(format!("{}/-/ready", self.base_url))
                .call()
                .is_ok_and(|response| response.status().is_success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after 60 s:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The version from `/api/v1/status/buildinfo`.
    pub(crate) fn version(&self, agent: &ureq::Agent) -> String {
        let mut response = agent
            .get(format!("{}/api/v1/status/buildinfo", self.base_url))
            .call()
            .unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        let buildinfo: serde_json::Value = serde_json::from_str(&text).unwrap();
        buildinfo["data"]["version"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned()
    }
}
