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

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use obs_bench::{SplitMix, System, arg_value, http_agent, human, post_remote_write};
use obs_metrics::remote_write::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;

const SERIES_PER_REQUEST: usize = 2000;

fn main() {
    let series: usize = arg_value("series").and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let rounds: usize = arg_value("rounds").and_then(|v| v.parse().ok()).unwrap_or(40);
    let clients: usize = arg_value("clients").and_then(|v| v.parse().ok()).unwrap_or(4);
    let workspace = obs_bench::workspace_dir();
    let appliance_binary = obs_bench::appliance_binary_or_exit();
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

struct RunResult {
    elapsed: Duration,
    peak_rss_bytes: u64,
    disk_bytes: u64,
    failed_requests: usize,
}

fn run(system: &System, bodies: &[Vec<u8>], clients: usize, scratch: &Path) -> Option<RunResult> {
    let data = scratch.join(system.name());
    let server = system.start(&data, &[])?;
    let base = server.base_url().to_owned();

    let (elapsed, failed_requests) = send_all(&base, bodies, clients);
    let peak_rss_bytes = server.peak_rss_bytes().unwrap_or(0);

    // Stop cleanly so that each system writes what it keeps on disk.
    if let System::VictoriaMetrics = system {
        let _ = http_agent(Duration::from_secs(60))
            .get(&format!("{base}/internal/force_flush"))
            .call();
    }
    server.stop(Duration::from_secs(60));
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
    let agent = http_agent(Duration::from_secs(60));
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..clients {
            let next = Arc::clone(&next);
            let failed = Arc::clone(&failed);
            let agent = agent.clone();
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(index) else { break };
                    let status = post_remote_write(&agent, base, body);
                    if !(200..300).contains(&status) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    (started.elapsed(), failed.load(Ordering::Relaxed))
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
    let mut values: Vec<f64> = series.iter().map(|_| (rng.next_u64() % 1000) as f64).collect();
    let now_ms = obs_core::time::TimestampMs::now().0;
    let first_ms = now_ms - 60_000 - rounds as i64 * 15_000;
    let mut bodies = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    for round in 0..rounds {
        // Real scrapes jitter by a few milliseconds.
        let ts = first_ms + round as i64 * 15_000 + (rng.next_u64() % 5) as i64;
        for chunk_start in (0..series.len()).step_by(SERIES_PER_REQUEST) {
            let end = (chunk_start + SERIES_PER_REQUEST).min(series.len());
            let timeseries = (chunk_start..end)
                .map(|index| {
                    let (labels, kind) = &series[index];
                    let next = match kind {
                        Kind::Counter => values[index] + (rng.next_u64() % 100) as f64 / 100.0,
                        Kind::Bucket => values[index] + (rng.next_u64() % 3) as f64,
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
