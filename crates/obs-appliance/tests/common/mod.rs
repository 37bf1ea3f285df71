//! Starting the real binary and talking to it over loopback.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BINARY: &str = env!("CARGO_BIN_EXE_obs-appliance");

/// A running appliance; killed when dropped.
pub struct Appliance {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    pub started: Instant,
}

impl Appliance {
    /// Starts `serve --listen 127.0.0.1:0 --data-dir DATA` plus `extra` arguments and waits
    /// until it logs its address.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Appliance {
        let started = Instant::now();
        let mut child = Command::new(BINARY)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = log.lock().unwrap().iter().find_map(|line| listening_addr(line));
            if let Some(addr) = found {
                return Appliance {
                    child,
                    addr,
                    log,
                    started,
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "appliance exited with {status} before listening:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "appliance did not start:\n{}",
                log.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls `/-/ready` until 200 (asserting it answers 503 before); returns the time since
    /// the process was started.
    pub fn wait_ready(&self) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut response) = http().get(&self.url("/-/ready")).call() {
                if response.status() == 200 {
                    let body = response.body_mut().read_to_string().unwrap();
                    assert_eq!(body, "obs-appliance is Ready.\n");
                    return self.started.elapsed();
                }
                assert_eq!(response.status(), 503, "not ready must be 503");
            }
            assert!(Instant::now() < deadline, "never ready:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a "listening" log line, text (`listening addr=…`) or JSON.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if let Some(rest) = line.split("listening addr=").nth(1) {
        return rest.split_whitespace().next()?.parse().ok();
    }
    if line.contains("\"message\":\"listening\"") {
        let rest = line.split("\"addr\":\"").nth(1)?;
        return rest.split('"').next()?.parse().ok();
    }
    None
}

/// An HTTP/1.1 client that returns 4xx/5xx responses instead of errors.
pub fn http() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build(),
    )
}

/// GET `url`: status, content type and body.
pub fn get(url: &str) -> (u16, String, String) {
    let mut response = http().get(url).call().unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.body_mut().read_to_string().unwrap();
    (status, content_type, body)
}

/// Runs the binary to completion with a timeout: exit code, stdout, stderr.
pub fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A tool the tests need from the system. In CI a missing tool fails the test; elsewhere the
/// test is skipped, loudly.
pub fn required_tool(name: &str, install_hint: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is required in CI but missing: {install_hint}");
        }
        eprintln!("SKIPPED: {name} is not installed ({install_hint}); this check did not run");
    }
    found
}

/// Whether `python3` can import every module. In CI a missing module fails the test (the test
/// command installs them); elsewhere the test is skipped, loudly.
pub fn required_python_modules(modules: &[&str], install_hint: &str) -> bool {
    let script = modules
        .iter()
        .map(|module| format!("import {module}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ok = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("python modules {modules:?} are required in CI but missing: {install_hint}");
        }
        eprintln!(
            "SKIPPED: python modules {modules:?} are not installed ({install_hint}); this check did not run"
        );
    }
    ok
}

impl Appliance {
    /// Runs `tests/clients/<script>` with the appliance's base URL and gRPC address; asserts it
    /// succeeded and returns its standard output.
    pub fn run_python_client(&self, script: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients")
            .join(script);
        let output = Command::new("python3")
            .arg(path)
            .arg(self.url(""))
            .arg(self.addr.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{script} failed:\nstdout: {}\nstderr: {}\nappliance:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// A configuration file with every default but no scrape jobs (the embedded default scrapes
/// the appliance itself, which adds series a test counting series must not see).
pub fn no_scrape_config(dir: &Path) -> PathBuf {
    let path = dir.join("no-scrape.yaml");
    std::fs::write(&path, "# defaults, no scrape_configs\n").unwrap();
    path
}

/// A child process killed (and reaped) when dropped: exporters, Prometheus.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
