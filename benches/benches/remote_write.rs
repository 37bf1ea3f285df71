//! remote_write ingest, side by side: obs-appliance, VictoriaMetrics and Prometheus receive the
//! identical, deterministic remote_write bodies on loopback, one after the other in one run.
//!
//! Run (the appliance is benchmarked as its release binary):
//!
//! ```sh
//! cargo build --release -p obs-appliance
//! cargo bench -p obs-bench --bench remote_write -- --series 50000 --rounds 40
//! ```
//!
//! The load: `--series` series shaped like node-exporter and kube-state-metrics (counters,
//! gauges, classic histograms), scraped every 15 s for `--rounds` rounds (simulated, ending
//! now), sent in requests of 2,000 series like Prometheus' default `max_samples_per_send`, by
//! `--clients` concurrent senders. For each system it reports samples/s until the last
//! acknowledgement, peak RSS (VmHWM), and bytes on disk after a clean stop, and the ratios
//! obs-appliance / other.
//!
//! What each acknowledgement means differs: obs-appliance answers after an fsync of its
//! write-ahead log; Prometheus after writing its WAL without fsync; VictoriaMetrics after
//! buffering in memory (it flushes to disk every second).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use obs_bench::{arg_value, human};
use obs_metrics::remote_write::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;

const SERIES_PER_REQUEST: usize = 2000;

fn main() {
    let series: usize = arg_value("series").and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let rounds: usize = arg_value("rounds").and_then(|v| v.parse().ok()).unwrap_or(40);
    let clients: usize = arg_value("clients").and_then(|v| v.parse().ok()).unwrap_or(4);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let appliance_binary = workspace.join("target/release/obs-appliance");
    if !appliance_binary.exists() {
        eprintln!("build the appliance first: cargo build --release -p obs-appliance");
        std::process::exit(2);
    }
    let scratch = tempfile::tempdir_in(&workspace).unwrap_or_else(|err| panic!("scratch dir: {err}"));

    let started = Instant::now();
    let bodies = generate(series, rounds);
    let total_samples = (series * rounds) as u64;
    let body_bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "remote_write ingest: {series} series x {rounds} rounds = {} samples in {} requests ({:.1} MB snappy), {clients} clients; generated in {:.1}s",
        human(total_samples as f64),
        bodies.len(),
        body_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    println!();

    if let Some(url) = arg_value("target") {
        // Drive an already running receiver (for profiling it): send once, print the rate.
        let elapsed = send_all(&url, &bodies, clients);
        println!(
            "{url}: {} samples/s",
            human(total_samples as f64 / elapsed.0.as_secs_f64())
        );
        return;
    }
    let mut results = Vec::new();
    for system in [
        System::Appliance(appliance_binary),
        System::VictoriaMetrics,
        System::Prometheus,
    ] {
        let name = system.name();
        let Some(result) = run(&system, &bodies, clients, scratch.path()) else {
            println!("{name}: not installed, skipped");
            continue;
        };
        results.push((name, result));
    }
    println!("| system | samples/s | peak RSS MB | disk MB after stop | bytes/sample | failed requests |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, result) in &results {
        println!(
            "| {name} | {} | {:.0} | {:.1} | {:.2} | {} |",
            human(total_samples as f64 / result.elapsed.as_secs_f64()),
            result.peak_rss_bytes as f64 / 1e6,
            result.disk_bytes as f64 / 1e6,
            result.disk_bytes as f64 / total_samples as f64,
            result.failed_requests
        );
    }
    if let Some((_, ours)) = results.first() {
        println!();
        println!("| obs-appliance / other | ingest rate | peak RSS | disk bytes |");
        println!("|---|---:|---:|---:|");
        for (name, other) in results.iter().skip(1) {
            println!(
                "| vs {name} | {:.2}x | {:.2}x | {:.2}x |",
                other.elapsed.as_secs_f64() / ours.elapsed.as_secs_f64(),
                ours.peak_rss_bytes as f64 / other.peak_rss_bytes as f64,
                ours.disk_bytes as f64 / other.disk_bytes as f64
            );
        }
    }
}

enum System {
    Appliance(PathBuf),
    VictoriaMetrics,
    Prometheus,
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            System::Appliance(_) => "obs-appliance",
            System::VictoriaMetrics => "VictoriaMetrics",
            System::Prometheus => "Prometheus",
        }
    }

    fn start(&self, port: u16, data: &Path) -> Option<Child> {
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
                let binary = which("victoria-metrics")?;
                let mut command = Command::new(binary);
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
        command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().ok()
    }

    fn ready_path(&self) -> &'static str {
        match self {
            System::Appliance(_) | System::Prometheus => "/-/ready",
            System::VictoriaMetrics => "/health",
        }
    }
}

struct RunResult {
    elapsed: Duration,
    peak_rss_bytes: u64,
    disk_bytes: u64,
    failed_requests: usize,
}

fn run(system: &System, bodies: &[Vec<u8>], clients: usize, scratch: &Path) -> Option<RunResult> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let data = scratch.join(system.name());
    let mut child = system.start(port, &data)?;
    let base = format!("http://127.0.0.1:{port}");
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !agent
        .get(&format!("{base}{}", system.ready_path()))
        .call()
        .is_ok_and(|response| response.status() == 200)
    {
        assert!(
            Instant::now() < deadline,
            "{} did not become ready",
            system.name()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let (elapsed, failed_requests) = send_all(&base, bodies, clients);
    let peak_rss_bytes = peak_rss(child.id()).unwrap_or(0);

    // Stop cleanly so that each system writes what it keeps on disk.
    if let System::VictoriaMetrics = system {
        let _ = agent.get(&format!("{base}/internal/force_flush")).call();
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stop_deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < stop_deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let disk_bytes = obs_core::disk::allocated_bytes(&data).unwrap_or(0);
    Some(RunResult {
        elapsed,
        peak_rss_bytes,
        disk_bytes,
        failed_requests,
    })
}

/// Sends every body with `clients` concurrent senders; returns the time until the last
/// acknowledgement and the number of requests that failed for good.
fn send_all(base: &str, bodies: &[Vec<u8>], clients: usize) -> (Duration, usize) {
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..clients {
            let next = Arc::clone(&next);
            let failed = Arc::clone(&failed);
            let agent = agent.clone();
            let url = format!("{base}/api/v1/write");
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(index) else { break };
                    // Bounded retries, as a remote_write sender would on 5xx / 429.
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        let response = agent
                            .post(&url)
                            .header("Content-Type", "application/x-protobuf")
                            .header("Content-Encoding", "snappy")
                            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                            .send(&body[..]);
                        let status = response.map(|r| r.status().as_u16()).unwrap_or(0);
                        if (200..300).contains(&status) {
                            break;
                        }
                        if attempts >= 5 || (400..500).contains(&status) && status != 429 {
                            failed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            });
        }
    });
    (started.elapsed(), failed.load(Ordering::Relaxed))
}

fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A small deterministic generator (SplitMix64), so every run sends the same bytes.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a series is, for generating its values.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Bucket,
}

fn label(name: &str, value: impl Into<String>) -> Label {
    Label {
        name: name.to_owned(),
        value: value.into(),
    }
}

/// Series shaped like node-exporter (cpu counters, memory and filesystem gauges, a request
/// histogram) and kube-state-metrics (pod phases), labels sorted by name.
fn series_set(count: usize) -> Vec<(Vec<Label>, Kind)> {
    let mut series = Vec::with_capacity(count);
    let modes = [
        "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
    ];
    let buckets = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
    ];
    let mut host = 0;
    while series.len() < count {
        let instance = format!("10.0.{}.{}:9100", host / 250, host % 250);
        for cpu in 0..4 {
            for mode in modes {
                series.push((
                    vec![
                        label("__name__", "node_cpu_seconds_total"),
                        label("cpu", cpu.to_string()),
                        label("instance", instance.clone()),
                        label("job", "node"),
                        label("mode", mode),
                    ],
                    Kind::Counter,
                ));
            }
        }
        for name in [
            "node_memory_MemAvailable_bytes",
            "node_memory_MemFree_bytes",
            "node_load1",
            "node_load5",
        ] {
            series.push((
                vec![
                    label("__name__", name),
                    label("instance", instance.clone()),
                    label("job", "node"),
                ],
                Kind::Gauge,
            ));
        }
        for le in buckets {
            series.push((
                vec![
                    label("__name__", "http_request_duration_seconds_bucket"),
                    label("handler", "/api/v1/query"),
                    label("instance", instance.clone()),
                    label("job", "node"),
                    label("le", le),
                ],
                Kind::Bucket,
            ));
        }
        for pod in 0..8 {
            for phase in ["Failed", "Pending", "Running", "Succeeded"] {
                series.push((
                    vec![
                        label("__name__", "kube_pod_status_phase"),
                        label("instance", instance.clone()),
                        label("job", "kube-state-metrics"),
                        label("namespace", "jarvis"),
                        label("phase", phase),
                        label("pod", format!("agent-{host}-{pod}")),
                    ],
                    Kind::Gauge,
                ));
            }
        }
        host += 1;
    }
    series.truncate(count);
    series
}

fn generate(count: usize, rounds: usize) -> Vec<Vec<u8>> {
    let series = series_set(count);
    let mut rng = SplitMix(0x0b5e_7ab1);
    let mut values: Vec<f64> = series.iter().map(|_| (rng.next() % 1000) as f64).collect();
    let now_ms = obs_core::time::TimestampMs::now().0;
    let first_ms = now_ms - 60_000 - rounds as i64 * 15_000;
    let mut bodies = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    for round in 0..rounds {
        // Real scrapes jitter by a few milliseconds.
        let ts = first_ms + round as i64 * 15_000 + (rng.next() % 5) as i64;
        for chunk_start in (0..series.len()).step_by(SERIES_PER_REQUEST) {
            let end = (chunk_start + SERIES_PER_REQUEST).min(series.len());
            let timeseries = (chunk_start..end)
                .map(|index| {
                    let (labels, kind) = &series[index];
                    let next = match kind {
                        Kind::Counter => values[index] + (rng.next() % 100) as f64 / 100.0,
                        Kind::Bucket => values[index] + (rng.next() % 3) as f64,
                        Kind::Gauge => (values[index] * (0.95 + rng.unit() * 0.1)).round(),
                    };
                    // Exporters print decimals (node_cpu_seconds_total 12345.67) and receivers
                    // parse them: the value is the double nearest to a 2-decimal number, not a
                    // sum of binary fractions.
                    values[index] = (next * 100.0).round() / 100.0;
                    TimeSeries {
                        labels: labels.clone(),
                        samples: vec![Sample {
                            value: values[index],
                            timestamp: ts,
                        }],
                        histograms: vec![],
                    }
                })
                .collect();
            let request = WriteRequest {
                timeseries,
                metadata: vec![],
            };
            bodies.push(
                encoder
                    .compress_vec(&request.encode_to_vec())
                    .unwrap_or_else(|err| panic!("snappy: {err}")),
            );
        }
    }
    bodies
}
