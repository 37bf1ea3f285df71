//! Shared helpers of the benchmarks in `benches/benches/`.
//!
//! Every benchmark prints a Markdown table with the appliance's figure beside its reference
//! measured in the same run on the same machine (the raw disk, VictoriaMetrics, Prometheus),
//! and the ratio between them: absolute numbers on shared machines are noisy, ratios much less.
//!
//! The main types: [`System`] names a server under test and starts it as a [`Server`] on a
//! free loopback port (killed when dropped, also on panic); [`post_remote_write`] sends one
//! snappy-compressed remote_write body with bounded retries; [`SplitMix`] makes generated loads
//! deterministic.
//!
//! ```no_run
//! use obs_bench::System;
//! let scratch = tempfile::tempdir().unwrap();
//! if let Some(server) = System::Prometheus.start(scratch.path(), &[]) {
//!     println!("Prometheus on {}", server.base_url());
//! } // killed here
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throughput measurement.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Operations (records, samples, lines) completed.
    pub operations: u64,
    /// Payload bytes moved.
    pub bytes: u64,
    /// Wall-clock time taken.
    pub elapsed: Duration,
}

impl Throughput {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.operations as f64 / self.elapsed.as_secs_f64()
    }

    /// Payload megabytes (10^6) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// Formats a rate with a unit suffix: 1234567 -> "1.23M".
pub fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1}k", rate / 1e3)
    } else {
        format!("{rate:.1}")
    }
}

/// The value of `--name=value` or `--name value` among the process arguments.
pub fn arg_value(name: &str) -> Option<String> {
    let mut args = std::env::args();
    let flag = format!("--{name}");
    while let Some(arg) = args.next() {
        if let Some(value) = arg.strip_prefix(&format!("{flag}=")) {
            return Some(value.to_owned());
        }
        if arg == flag {
            return args.next();
        }
    }
    None
}

/// Whether the bare flag `--name` is among the process arguments.
pub fn arg_flag(name: &str) -> bool {
    let flag = format!("--{name}");
    std::env::args().any(|arg| arg == flag)
}

/// The workspace root (the parent of `benches/`).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The appliance's release binary (or the one `OBS_APPLIANCE_BINARY` names, to measure another
/// build, e.g. one run under a heap profiler), or an exit with a hint to build it.
pub fn appliance_binary_or_exit() -> PathBuf {
    let binary = std::env::var_os("OBS_APPLIANCE_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target/release/obs-appliance"));
    if !binary.exists() {
        eprintln!("build the appliance first: cargo build --release -p obs-appliance");
        std::process::exit(2);
    }
    binary
}

/// A ureq agent that hands non-2xx answers back as responses and gives up after `timeout`.
pub fn http_agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build(),
    )
}

/// A server under test.
#[derive(Debug, Clone)]
pub enum System {
    /// obs-appliance, as the release binary at this path.
    Appliance(PathBuf),
    /// `victoria-metrics` from `PATH` (the Debian package, single-node).
    VictoriaMetrics,
    /// `prometheus` from `PATH`, with its remote_write receiver enabled.
    Prometheus,
}

impl System {
    /// The name printed in tables.
    pub fn name(&self) -> &'static str {
        match self {
            System::Appliance(_) => "obs-appliance",
            System::VictoriaMetrics => "VictoriaMetrics",
            System::Prometheus => "Prometheus",
        }
    }

    /// Starts the system on a free 127.0.0.1 port with its data under `data`, `extra_args`
    /// appended to its command line, and waits (at most 60 s, else panics) until it is ready.
    /// `None` when the system is not installed or cannot be spawned.
    pub fn start(&self, data: &Path, extra_args: &[String]) -> Option<Server> {
        let port = free_port()?;
        let mut command = match self {
            System::Appliance(binary) => {
                let mut command = Command::new(binary);
                command
                    .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
                    .arg(data)
                    .args(["--log-level", "warn"]);
                command
            }
            System::VictoriaMetrics => {
                let mut command = Command::new(which("victoria-metrics")?);
                command
                    .arg(format!("-storageDataPath={}", data.display()))
                    .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                    .arg("-retentionPeriod=100y")
                    .arg("-loggerLevel=ERROR");
                command
            }
            System::Prometheus => {
                let binary = which("prometheus")?;
                std::fs::create_dir_all(data).ok()?;
                let config = data.join("prometheus.yml");
                std::fs::write(&config, "global:\n  scrape_interval: 1h\n").ok()?;
                let mut command = Command::new(binary);
                command
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", data.join("tsdb").display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--web.enable-remote-write-receiver")
                    .arg("--log.level=error");
                command
            }
        };
        command.args(extra_args);
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()?;
        // From here on the child is killed on every exit path, panics included.
        let server = Server {
            child,
            name: self.name(),
            base_url: format!("http://127.0.0.1:{port}"),
        };
        let ready_url = format!("{}{}", server.base_url, self.ready_path());
        let agent = http_agent(Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !agent
            .get(&ready_url)
            .call()
            .is_ok_and(|response| response.status() == 200)
        {
            assert!(Instant::now() < deadline, "{} did not become ready", self.name());
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    fn ready_path(&self) -> &'static str {
        match self {
            System::Appliance(_) | System::Prometheus => "/-/ready",
            System::VictoriaMetrics => "/health",
        }
    }
}

/// A running server; killed (SIGKILL) when dropped unless [`Server::stop`] stopped it first.
#[derive(Debug)]
pub struct Server {
    child: Child,
    name: &'static str,
    base_url: String,
}

impl Server {
    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The system's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far (VmHWM), in bytes.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        peak_rss(self.pid())
    }

    /// CPU time used so far (user + system), from `/proc/<pid>/stat`.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time(self.pid())
    }

    /// Stops cleanly: SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Drop kills it if it is still running and reaps it.
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until every server in `servers` has used less than `max_cpu_fraction` of a core over
/// a 2 s window (background compaction, flushes and merges done), for at most `limit`.
/// Returns how long it waited and whether they all went idle.
pub fn wait_until_idle(servers: &[&Server], max_cpu_fraction: f64, limit: Duration) -> (Duration, bool) {
    let window = Duration::from_secs(2);
    let started = Instant::now();
    while started.elapsed() < limit {
        let before: Vec<Option<Duration>> = servers.iter().map(|server| server.cpu_time()).collect();
        std::thread::sleep(window);
        let idle = servers
            .iter()
            .zip(&before)
            .all(|(server, before)| match (before, server.cpu_time()) {
                (Some(before), Some(after)) => {
                    after.saturating_sub(*before).as_secs_f64() < max_cpu_fraction * window.as_secs_f64()
                }
                _ => true,
            });
        if idle {
            return (started.elapsed(), true);
        }
    }
    (started.elapsed(), false)
}

/// Posts one snappy-compressed remote_write 1.0 body to `<base>/api/v1/write`, retrying 5xx,
/// 429 and connection errors a bounded number of times (5 attempts) as a remote_write sender
/// would. Returns the last HTTP status (0 for a connection error); 2xx means accepted.
pub fn post_remote_write(agent: &ureq::Agent, base: &str, body: &[u8]) -> u16 {
    let url = format!("{base}/api/v1/write");
    let mut status = 0;
    for attempt in 1..=5 {
        let response = agent
            .post(&url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .send(body);
        status = response.map(|r| r.status().as_u16()).unwrap_or(0);
        let retryable = status == 0 || status == 429 || status >= 500;
        if (200..300).contains(&status) || !retryable || attempt == 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100 * attempt));
    }
    status
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> Option<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()
        .map(|address| address.port())
}

/// Peak resident set size (VmHWM) of process `pid`, in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User + system CPU time of process `pid` (fields 14 and 15 of `/proc/<pid>/stat`, in clock
/// ticks of 1/100 s, the value on every Linux this runs on).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past its ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // after_name starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// The path of executable `name` in `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A small deterministic generator (SplitMix64), so every run sends the same bytes.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------------------------
// Servers started from a command line of their own, and what a process uses

impl Server {
    /// Starts `command` (its output discarded) as the server `name` that will listen on
    /// 127.0.0.1:`port`, and waits (at most 60 s, else panics) until `ready_path` answers 200.
    /// For servers that [`System::start`] cannot start as needed (e.g. with a configuration
    /// file of the benchmark's own). `None` when the command cannot be spawned.
    pub fn launch(name: &'static str, mut command: Command, port: u16, ready_path: &str) -> Option<Server> {
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()?;
        // From here on the child is killed on every exit path, panics included.
        let mut server = Server {
            child,
            name,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        let ready_url = format!("{}{ready_path}", server.base_url);
        let agent = http_agent(Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !agent
            .get(&ready_url)
            .call()
            .is_ok_and(|response| response.status() == 200)
        {
            assert!(
                server.child.try_wait().ok().flatten().is_none(),
                "{name} exited before it was ready"
            );
            assert!(Instant::now() < deadline, "{name} did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    /// Resident set size now (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss(self.pid())
    }
}

/// Resident set size (VmRSS) of process `pid` now, in bytes.
pub fn rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The number of threads of process `pid` now (`Threads:` of `/proc/<pid>/status`).
pub fn thread_count(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("Threads:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The sum of every sample of metric `name` (all label sets) in the text exposition at `url`,
/// e.g. a server's own `/metrics`. `None` when the page cannot be fetched or parsed, or has no
/// such metric.
pub fn exposed_metric_sum(agent: &ureq::Agent, url: &str, name: &str) -> Option<f64> {
    let mut response = agent.get(url).call().ok()?;
    if response.status() != 200 {
        return None;
    }
    let body = response.body_mut().read_to_string().ok()?;
    let parsed = obs_scrape::parse::parse(&body, obs_scrape::parse::Format::PrometheusText).ok()?;
    let mut matching = parsed
        .samples
        .iter()
        .filter(|sample| sample.name == name)
        .peekable();
    matching.peek()?;
    Some(matching.map(|sample| sample.value).sum())
}

/// The value of a PromQL instant query that returns one sample (e.g. `sum(up)`), asked of
/// `<base>/api/v1/query`. `None` on any error or when the answer is not exactly one sample.
pub fn instant_query_value(agent: &ureq::Agent, base: &str, query: &str) -> Option<f64> {
    let mut response = agent
        .get(&format!("{base}/api/v1/query"))
        .query("query", query)
        .call()
        .ok()?;
    if response.status() != 200 {
        return None;
    }
    let body: serde_json::Value = serde_json::from_str(&response.body_mut().read_to_string().ok()?).ok()?;
    let result = body.pointer("/data/result")?.as_array()?;
    let [sample] = result.as_slice() else {
        return None;
    };
    sample.pointer("/value/1")?.as_str()?.parse().ok()
}

/// The machine's 1-minute load average, as written in `/proc/loadavg` ("?" if unreadable), to
/// tell a quiet run from one that competed with other work.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// `perf record` attached to a running process, writing `output`; stopped with SIGINT (so that
/// it finishes its file) when dropped.
#[derive(Debug)]
pub struct PerfRecording {
    child: Child,
}

impl PerfRecording {
    /// Starts recording process `pid` at 499 Hz with call graphs (`call_graph` is perf's
    /// `--call-graph` mode: `fp`, or `dwarf,8192`). `None` (with a message) when perf is not
    /// installed or cannot start.
    pub fn start(pid: u32, output: &Path, call_graph: &str) -> Option<PerfRecording> {
        let Some(perf) = which("perf") else {
            eprintln!("perf not found; not recording");
            return None;
        };
        let child = Command::new(perf)
            .args([
                "record",
                "-F",
                "499",
                "--call-graph",
                call_graph,
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(output)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        eprintln!("perf recording pid {pid} into {}", output.display());
        // Let perf attach before the measured work.
        std::thread::sleep(Duration::from_millis(500));
        Some(PerfRecording { child })
    }
}

impl Drop for PerfRecording {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
