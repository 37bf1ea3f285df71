//! PromQL dashboard queries, side by side: the main panels of Grafana's "Node Exporter Full"
//! dashboard, sent as Grafana sends them, to obs-appliance, Prometheus and VictoriaMetrics
//! holding the same data, in one run on the same machine.
//!
//! Run (the appliance is benchmarked as its release binary):
//!
//! ```sh
//! cargo build --release -p obs-appliance
//! cargo bench -p obs-bench --bench promql -- --days 15 --nodes 5 --repeats 20
//! ```
//!
//! 1. Data: deterministic node-exporter-like series (70 per node: per-CPU and per-mode CPU
//!    counters, load, memory, swap, disks, filesystems, network) for `--nodes` nodes, one
//!    sample every 15 s for `--days` days ending now (rounded down to 15 s), values as the
//!    exporter prints them (centiseconds of CPU, KiB-multiples of memory, 512-byte sectors).
//! 2. Load: the same remote_write bodies, time-major (`--batch-minutes` of every series per
//!    request, time increasing, as Prometheus' head only takes in-order samples), posted to
//!    each system in turn; every write must answer 2xx. Then VictoriaMetrics is flushed
//!    (`/internal/force_flush`), every system is stopped cleanly and started again on its data
//!    (so that days-old data is answered from disk, as in a server that has run for days;
//!    `--no-restart` skips this), and the bench waits until all three are idle (compactions,
//!    merges, WAL replay done) before measuring.
//! 3. Queries: `/api/v1/query_range` as a form POST (Grafana's default), over the last 24 h
//!    and over the whole span, with the step Grafana picks for a 1920-px wide panel
//!    (`max(15s, roundInterval(range / 1920))`), start and end aligned to the step, and
//!    `$__rate_interval = max(step + 15s, 4 × 15s)`. Each query runs `--repeats` times per
//!    system plus one warm-up, systems interleaved (query-major, the starting system rotated
//!    every round); the latency is the wall-clock time of the request including reading the
//!    whole body. The warm-up answers are compared: obs-appliance must agree with Prometheus
//!    (same series, same timestamps, values within 1e-6 relative); VictoriaMetrics is known to
//!    differ (its `rate` does not extrapolate to the window's edges) and is reported only.
//!
//! Options: `--days N` (15, at most 28), `--nodes N` (5), `--repeats N` (20), `--batch-minutes N` (30, must
//! stay under Prometheus' 1 h in-order window), `--vm-disable-cache` (run VictoriaMetrics with
//! `-search.disableCache`; by default it answers the part of a repeated query older than 5
//! minutes from its rollup result cache, as it does for a refreshing dashboard), `--perf-record FILE` (record the appliance with
//! `perf record -F 499 --call-graph dwarf` during the long-range queries, or during the range
//! named by `--perf-range 24h`), `--no-restart` (see 2.).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use obs_bench::{Server, SplitMix, System, arg_flag, arg_value, http_agent, human, post_remote_write};
use obs_metrics::remote_write::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;

const SCRAPE_INTERVAL_MS: i64 = 15_000;
const DAY_MS: i64 = 86_400_000;
/// Grafana's default max data points is the panel's width in pixels; a full-width panel.
const PANEL_WIDTH_PX: i64 = 1920;
/// A system to start and the arguments appended to its command line.
type Launch = (System, Vec<String>);
/// Agreement tolerance between two systems' values (relative).
const TOLERANCE: f64 = 1e-6;
const JOB: &str = "node";
/// The dashboard's `$diskdevices` constant.
const DISK_DEVICES_REGEX: &str = "[a-z]+|nvme[0-9]+n[0-9]+|mmcblk[0-9]+";

fn main() {
    let days: i64 = arg_value("days")
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
        .clamp(1, 28);
    let nodes: usize = arg_value("nodes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .clamp(1, 100);
    let repeats: usize = arg_value("repeats")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    let batch_minutes: i64 = arg_value("batch-minutes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .clamp(1, 55);
    let vm_disable_cache = arg_flag("vm-disable-cache");
    let perf_record = arg_value("perf-record").map(PathBuf::from);
    let perf_range = arg_value("perf-range");
    let no_restart = arg_flag("no-restart");

    let user_args: Vec<String> = std::env::args().skip(1).filter(|arg| arg != "--bench").collect();
    println!(
        "command: cargo bench -p obs-bench --bench promql -- {}",
        user_args.join(" ")
    );
    let appliance_binary = obs_bench::appliance_binary_or_exit();
    let scratch =
        tempfile::tempdir_in(obs_bench::workspace_dir()).unwrap_or_else(|err| panic!("scratch dir: {err}"));

    let now_ms = obs_core::time::TimestampMs::now().0;
    let data_end_ms = now_ms - now_ms.rem_euclid(SCRAPE_INTERVAL_MS);
    let generator = Generator::new(nodes, days, data_end_ms);
    println!(
        "data: {nodes} nodes x {} series = {} series, {} samples each (every 15 s for {days} d), {} samples",
        generator.series.len(),
        nodes * generator.series.len(),
        generator.steps,
        human(generator.total_samples() as f64)
    );

    // The appliance and Prometheus keep 30 days (VictoriaMetrics 100 years, set by the shared
    // helper), so no generated sample falls outside a retention.
    let appliance_config = scratch.path().join("appliance.yaml");
    std::fs::write(&appliance_config, "storage:\n  retention:\n    metrics: 30d\n")
        .unwrap_or_else(|err| panic!("appliance config: {err}"));
    let mut vm_args = Vec::new();
    if vm_disable_cache {
        vm_args.push("-search.disableCache".to_owned());
    }
    let plan: [Launch; 3] = [
        (
            System::Appliance(appliance_binary),
            vec!["--config".to_owned(), appliance_config.display().to_string()],
        ),
        (
            System::Prometheus,
            vec!["--storage.tsdb.retention.time=30d".to_owned()],
        ),
        (System::VictoriaMetrics, vm_args),
    ];
    let mut servers = Vec::new();
    let mut started: Vec<Launch> = Vec::new();
    for (system, extra_args) in &plan {
        match system.start(&scratch.path().join(system.name()), extra_args) {
            Some(server) => {
                servers.push(server);
                started.push((system.clone(), extra_args.clone()));
            }
            None => println!("{}: not installed, skipped", system.name()),
        }
    }
    if !matches!(started.first(), Some((System::Appliance(_), _))) {
        eprintln!("obs-appliance did not start");
        std::process::exit(1);
    }
    if servers.len() < 2 {
        eprintln!("nothing to compare the appliance with: install prometheus and victoria-metrics");
        std::process::exit(2);
    }
    println!();

    load(&servers, generator, batch_minutes);
    let restart = (!no_restart).then_some((started.as_slice(), scratch.path()));
    let servers = settle(servers, restart);

    let long_days = days.min(15);
    let mut ranges = vec![RangeSpec::new("24h", DAY_MS)];
    if long_days > 1 {
        ranges.push(RangeSpec::new(&format!("{long_days}d"), long_days * DAY_MS));
    }
    let mut all_ratios: Vec<(String, Vec<f64>)> = Vec::new();
    for (index, range) in ranges.iter().enumerate() {
        // Profile the range asked for, else the longest.
        let profiled = match &perf_range {
            Some(label) => *label == range.label,
            None => index + 1 == ranges.len(),
        };
        let _perf = match (&perf_record, profiled) {
            (Some(path), true) => obs_bench::PerfRecording::start(servers[0].pid(), path, "dwarf,8192"),
            _ => None,
        };
        let load_before = obs_bench::load_average();
        let results = measure_range(&servers, range, data_end_ms, repeats);
        print_range(&servers, range, &results, repeats, &mut all_ratios);
        println!(
            "machine load average (1 min) before / after this range: {load_before} / {} (2 cores; this bench alone keeps it near 1, more means other work competed)",
            obs_bench::load_average()
        );
        println!();
    }
    print_summary(&all_ratios);
}

// ---------------------------------------------------------------------------------------------
// Data

const CPUS: usize = 4;
const MODES: [&str; 8] = [
    "idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice",
];
/// Share of a CPU's busy time in each mode of `MODES` (idle gets the rest).
const BUSY_SHARES: [f64; 8] = [0.0, 0.62, 0.22, 0.06, 0.02, 0.04, 0.02, 0.02];
const DISKS: [&str; 2] = ["sda", "sdb"];
const DISK_COUNTERS: [&str; 5] = [
    "node_disk_read_bytes_total",
    "node_disk_written_bytes_total",
    "node_disk_io_time_seconds_total",
    "node_disk_reads_completed_total",
    "node_disk_writes_completed_total",
];
const GIB: u64 = 1 << 30;
/// (mountpoint, device, size).
const MOUNTS: [(&str, &str, u64); 2] = [("/", "/dev/sda1", 100 * GIB), ("/data", "/dev/sdb1", 1024 * GIB)];
const FILESYSTEM_FIELDS: [&str; 4] = [
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_files",
    "node_filesystem_files_free",
];
const NET_DEVICES: [&str; 2] = ["eth0", "lo"];
const NET_COUNTERS: [&str; 4] = [
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "node_network_receive_packets_total",
    "node_network_transmit_packets_total",
];
const LOADS: [&str; 3] = ["node_load1", "node_load5", "node_load15"];
/// Seconds each load average averages over.
const LOAD_PERIODS_S: [f64; 3] = [60.0, 300.0, 900.0];

/// Where a series' value comes from in a node's state.
#[derive(Debug, Clone, Copy)]
enum Source {
    Cpu { cpu: usize, mode: usize },
    Load(usize),
    MemTotal,
    MemAvailable,
    MemFree,
    Buffers,
    Cached,
    SwapTotal,
    SwapFree,
    Disk { disk: usize, counter: usize },
    Filesystem { mount: usize, field: usize },
    Network { device: usize, counter: usize },
    BootTime,
    ProcsRunning,
}

/// One series of a node, without its `instance` and `job` labels.
#[derive(Debug)]
struct SeriesDef {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
    source: Source,
}

/// The 70 series every node exports.
fn node_series() -> Vec<SeriesDef> {
    let def = |name: &'static str, labels: Vec<(&'static str, String)>, source: Source| SeriesDef {
        name,
        labels,
        source,
    };
    let mut series = Vec::new();
    for cpu in 0..CPUS {
        for (mode, mode_name) in MODES.iter().enumerate() {
            series.push(def(
                "node_cpu_seconds_total",
                vec![("cpu", cpu.to_string()), ("mode", (*mode_name).to_owned())],
                Source::Cpu { cpu, mode },
            ));
        }
    }
    for (index, name) in LOADS.iter().enumerate() {
        series.push(def(name, vec![], Source::Load(index)));
    }
    series.push(def("node_memory_MemTotal_bytes", vec![], Source::MemTotal));
    series.push(def(
        "node_memory_MemAvailable_bytes",
        vec![],
        Source::MemAvailable,
    ));
    series.push(def("node_memory_MemFree_bytes", vec![], Source::MemFree));
    series.push(def("node_memory_Buffers_bytes", vec![], Source::Buffers));
    series.push(def("node_memory_Cached_bytes", vec![], Source::Cached));
    series.push(def("node_memory_SwapTotal_bytes", vec![], Source::SwapTotal));
    series.push(def("node_memory_SwapFree_bytes", vec![], Source::SwapFree));
    for (disk, device) in DISKS.iter().enumerate() {
        for (counter, name) in DISK_COUNTERS.iter().enumerate() {
            series.push(def(
                name,
                vec![("device", (*device).to_owned())],
                Source::Disk { disk, counter },
            ));
        }
    }
    for (mount, (mountpoint, device, _)) in MOUNTS.iter().enumerate() {
        for (field, name) in FILESYSTEM_FIELDS.iter().enumerate() {
            series.push(def(
                name,
                vec![
                    ("device", (*device).to_owned()),
                    ("fstype", "ext4".to_owned()),
                    ("mountpoint", (*mountpoint).to_owned()),
                ],
                Source::Filesystem { mount, field },
            ));
        }
    }
    for (device, device_name) in NET_DEVICES.iter().enumerate() {
        for (counter, name) in NET_COUNTERS.iter().enumerate() {
            series.push(def(
                name,
                vec![("device", (*device_name).to_owned())],
                Source::Network { device, counter },
            ));
        }
    }
    series.push(def("node_boot_time_seconds", vec![], Source::BootTime));
    series.push(def("node_procs_running", vec![], Source::ProcsRunning));
    series
}

/// The label set of `def` on node `instance`, sorted by name as remote_write requires.
fn series_labels(def: &SeriesDef, instance: &str) -> Vec<Label> {
    let mut labels: Vec<Label> = def
        .labels
        .iter()
        .map(|(name, value)| Label {
            name: (*name).to_owned(),
            value: value.clone(),
        })
        .collect();
    for (name, value) in [("__name__", def.name), ("instance", instance), ("job", JOB)] {
        labels.push(Label {
            name: name.to_owned(),
            value: value.to_owned(),
        });
    }
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    labels
}

/// One simulated machine: its state advances one scrape interval at a time.
#[derive(Debug)]
struct NodeModel {
    rng: SplitMix,
    /// Mean busy fraction of the node's CPUs, and the phase of its daily cycle.
    base_busy: f64,
    phase: f64,
    /// Slow random drift of the busy fraction, and the rest of a load spike.
    drift: f64,
    spike_steps_left: u32,
    busy: f64,
    /// `node_cpu_seconds_total` in 1/100 s (USER_HZ), as `/proc/stat` counts it.
    cpu_centis: [[u64; MODES.len()]; CPUS],
    load: [f64; 3],
    mem_total: u64,
    mem_available: u64,
    mem_free: u64,
    buffers: u64,
    cached: u64,
    swap_total: u64,
    swap_free: u64,
    /// Per disk: read bytes, written bytes, io time in ms, reads, writes.
    disk: [[u64; DISK_COUNTERS.len()]; DISKS.len()],
    fs_avail: [u64; MOUNTS.len()],
    fs_files_free: [u64; MOUNTS.len()],
    /// Per device: received bytes, transmitted bytes, received packets, transmitted packets.
    net: [[u64; NET_COUNTERS.len()]; NET_DEVICES.len()],
    boot_time_s: u64,
    procs_running: u64,
}

impl NodeModel {
    fn new(node: usize, first_ms: i64) -> NodeModel {
        let mut rng = SplitMix(0x0b5e_9001 + node as u64);
        let uptime_centis = (40 + 3 * node as u64) * 86_400 * 100;
        let mut cpu_centis = [[0u64; MODES.len()]; CPUS];
        for counters in &mut cpu_centis {
            counters[0] = uptime_centis * 7 / 10;
            for (mode, counter) in counters.iter_mut().enumerate().skip(1) {
                *counter = (uptime_centis as f64 * 0.3 * BUSY_SHARES[mode] * (0.8 + 0.4 * rng.unit())) as u64;
            }
        }
        let mem_total = [16, 32, 8, 16, 64][node % 5] * GIB;
        let mut model = NodeModel {
            base_busy: 0.15 + 0.07 * (node % 5) as f64,
            phase: rng.unit() * std::f64::consts::TAU,
            drift: 0.0,
            spike_steps_left: 0,
            busy: 0.0,
            cpu_centis,
            load: [0.0; 3],
            mem_total,
            mem_available: mem_total / 2,
            mem_free: mem_total / 8,
            buffers: mem_total / 64,
            cached: mem_total / 4,
            swap_total: 2 * GIB,
            swap_free: 2 * GIB,
            disk: [[0; DISK_COUNTERS.len()]; DISKS.len()],
            fs_avail: [0; MOUNTS.len()],
            fs_files_free: [0; MOUNTS.len()],
            net: [[0; NET_COUNTERS.len()]; NET_DEVICES.len()],
            boot_time_s: (first_ms / 1000) as u64 - uptime_centis / 100,
            procs_running: 1,
            rng,
        };
        for (disk, counters) in model.disk.iter_mut().enumerate() {
            for (counter, value) in counters.iter_mut().enumerate() {
                *value = [
                    2_000_000_000_000 >> disk,
                    5_000_000_000_000 >> disk,
                    90_000_000,
                    150_000_000,
                    400_000_000,
                ][counter];
            }
        }
        for (device, counters) in model.net.iter_mut().enumerate() {
            let scale = if device == 0 { 1 } else { 100 };
            *counters = [
                9_000_000_000_000 / scale,
                4_000_000_000_000 / scale,
                9_000_000_000 / scale,
                5_000_000_000 / scale,
            ];
        }
        model.advance(first_ms);
        model
    }

    /// Moves the node to scrape time `t_ms`, one scrape interval after the previous one.
    fn advance(&mut self, t_ms: i64) {
        let interval_s = SCRAPE_INTERVAL_MS as f64 / 1000.0;
        let t_s = t_ms as f64 / 1000.0;
        let rng = &mut self.rng;

        // CPU: a daily cycle, a slow random walk, and a rare spike lasting a few minutes.
        self.drift = (self.drift * 0.995 + (rng.unit() - 0.5) * 0.01).clamp(-0.1, 0.1);
        if self.spike_steps_left > 0 {
            self.spike_steps_left -= 1;
        } else if rng.next_u64().is_multiple_of(2000) {
            self.spike_steps_left = 8 + (rng.next_u64() % 32) as u32;
        }
        let spike = if self.spike_steps_left > 0 { 0.4 } else { 0.0 };
        let daily = 0.12 * (std::f64::consts::TAU * t_s / 86_400.0 + self.phase).sin();
        self.busy =
            (self.base_busy + daily + self.drift + spike + (rng.unit() - 0.5) * 0.04).clamp(0.02, 0.97);
        for counters in &mut self.cpu_centis {
            let cpu_busy = (self.busy * (0.7 + 0.6 * rng.unit())).min(0.99);
            let interval_centis = interval_s * 100.0;
            let mut busy_centis = 0;
            for (mode, counter) in counters.iter_mut().enumerate().skip(1) {
                let share = BUSY_SHARES[mode] * (0.8 + 0.4 * rng.unit());
                let centis = (interval_centis * cpu_busy * share).round() as u64;
                *counter += centis;
                busy_centis += centis;
            }
            counters[0] += (interval_centis as u64).saturating_sub(busy_centis);
        }

        // Load averages: exponentially damped runnable tasks, as the kernel computes them.
        self.procs_running = 1 + (self.busy * CPUS as f64 * (0.5 + rng.unit())) as u64;
        for (load, period_s) in self.load.iter_mut().zip(LOAD_PERIODS_S) {
            let decay = (-interval_s / period_s).exp();
            *load = *load * decay + self.procs_running as f64 * (1.0 - decay);
        }

        // Memory in whole KiB, as /proc/meminfo has it.
        let kib = |bytes: f64| (bytes / 1024.0) as u64 * 1024;
        let total = self.mem_total as f64;
        let weekly = 0.05 * (std::f64::consts::TAU * t_s / (3.0 * 86_400.0)).sin();
        let used_fraction = (0.35 + 0.25 * self.busy + weekly + (rng.unit() - 0.5) * 0.01).clamp(0.05, 0.95);
        let available = total * (1.0 - used_fraction);
        self.mem_available = kib(available);
        self.cached = kib(available * (0.55 + 0.05 * rng.unit()));
        self.mem_free = kib(available * (0.25 + 0.02 * rng.unit()));
        self.buffers = kib(total * (0.015 + 0.002 * rng.unit()));
        let swap_used =
            (0.05 + 0.03 * (std::f64::consts::TAU * t_s / 86_400.0).cos()) * self.swap_total as f64;
        self.swap_free = kib(self.swap_total as f64 - swap_used);

        // Disks: bytes in 512-byte sectors, io time in ms.
        for (disk, counters) in self.disk.iter_mut().enumerate() {
            let scale = if disk == 0 { 1.0 } else { 0.5 };
            let read = (1.5e6 * scale * self.busy * (0.5 + rng.unit()) * interval_s / 512.0) as u64 * 512;
            let written = (3.0e6 * scale * self.busy * (0.5 + rng.unit()) * interval_s / 512.0) as u64 * 512;
            let utilization = (0.02 + 0.4 * scale * self.busy * (0.5 + rng.unit())).min(1.0);
            counters[0] += read;
            counters[1] += written;
            counters[2] += (utilization * interval_s * 1000.0) as u64;
            counters[3] += read / 16_384;
            counters[4] += written / 32_768;
        }

        // Filesystems fill up and are cleaned every 5 days (a sawtooth), in 4 KiB blocks.
        let cycle = (t_s / (5.0 * 86_400.0)).fract();
        for (mount, (_, _, size)) in MOUNTS.iter().enumerate() {
            let used_fraction = 0.4 + 0.2 * cycle + 0.1 * mount as f64 + 0.001 * rng.unit();
            self.fs_avail[mount] = ((*size as f64 * (1.0 - used_fraction)) as u64) / 4096 * 4096;
            let files = size / 16_384;
            self.fs_files_free[mount] = files - (files as f64 * (0.05 + 0.1 * cycle)) as u64;
        }

        // Network: eth0 follows the load, lo is quiet.
        for (device, counters) in self.net.iter_mut().enumerate() {
            let (rx_rate, tx_rate) = if device == 0 {
                (2.0e6 * (0.3 + self.busy), 1.0e6 * (0.3 + self.busy))
            } else {
                (5.0e4, 5.0e4)
            };
            let received = (rx_rate * (0.7 + 0.6 * rng.unit()) * interval_s) as u64;
            let transmitted = (tx_rate * (0.7 + 0.6 * rng.unit()) * interval_s) as u64;
            counters[0] += received;
            counters[1] += transmitted;
            counters[2] += received / 900;
            counters[3] += transmitted / 700;
        }
    }

    fn value(&self, source: Source) -> f64 {
        // Exporters print decimals; the value received is the double nearest to it, which an
        // integer divided by a power of ten is.
        match source {
            Source::Cpu { cpu, mode } => self.cpu_centis[cpu][mode] as f64 / 100.0,
            Source::Load(index) => (self.load[index] * 100.0).round() / 100.0,
            Source::MemTotal => self.mem_total as f64,
            Source::MemAvailable => self.mem_available as f64,
            Source::MemFree => self.mem_free as f64,
            Source::Buffers => self.buffers as f64,
            Source::Cached => self.cached as f64,
            Source::SwapTotal => self.swap_total as f64,
            Source::SwapFree => self.swap_free as f64,
            Source::Disk { disk, counter: 2 } => self.disk[disk][2] as f64 / 1000.0,
            Source::Disk { disk, counter } => self.disk[disk][counter] as f64,
            Source::Filesystem { mount, field } => match field {
                0 => self.fs_avail[mount] as f64,
                1 => MOUNTS[mount].2 as f64,
                2 => (MOUNTS[mount].2 / 16_384) as f64,
                _ => self.fs_files_free[mount] as f64,
            },
            Source::Network { device, counter } => self.net[device][counter] as f64,
            Source::BootTime => self.boot_time_s as f64,
            Source::ProcsRunning => self.procs_running as f64,
        }
    }
}

/// Produces the whole data set as remote_write requests in time order.
#[derive(Debug)]
struct Generator {
    series: Vec<SeriesDef>,
    models: Vec<NodeModel>,
    /// Per node, per series: the label set.
    labels: Vec<Vec<Vec<Label>>>,
    /// Per node: how far before the 15 s grid its scrapes happen (targets are spread).
    scrape_offsets_ms: Vec<i64>,
    first_ms: i64,
    steps: usize,
    next_step: usize,
}

impl Generator {
    fn new(nodes: usize, days: i64, data_end_ms: i64) -> Generator {
        let steps = (days * DAY_MS / SCRAPE_INTERVAL_MS) as usize;
        let first_ms = data_end_ms - (steps as i64 - 1) * SCRAPE_INTERVAL_MS;
        let series = node_series();
        let labels = (0..nodes)
            .map(|node| {
                let instance = instance(node);
                series.iter().map(|def| series_labels(def, &instance)).collect()
            })
            .collect();
        Generator {
            models: (0..nodes).map(|node| NodeModel::new(node, first_ms)).collect(),
            labels,
            scrape_offsets_ms: (0..nodes)
                .map(|node| (node as i64 * 2_731) % SCRAPE_INTERVAL_MS)
                .collect(),
            series,
            first_ms,
            steps,
            next_step: 0,
        }
    }

    fn total_samples(&self) -> u64 {
        (self.models.len() * self.series.len() * self.steps) as u64
    }

    /// The next request: up to `max_steps` scrapes of every series, or `None` at the end.
    fn next_request(&mut self, max_steps: usize) -> Option<(WriteRequest, u64)> {
        if self.next_step >= self.steps {
            return None;
        }
        let end_step = (self.next_step + max_steps).min(self.steps);
        let step_count = end_step - self.next_step;
        let mut samples: Vec<Vec<Vec<Sample>>> = self
            .models
            .iter()
            .map(|_| {
                (0..self.series.len())
                    .map(|_| Vec::with_capacity(step_count))
                    .collect()
            })
            .collect();
        for step in self.next_step..end_step {
            let grid_ms = self.first_ms + step as i64 * SCRAPE_INTERVAL_MS;
            for (node, model) in self.models.iter_mut().enumerate() {
                if step > 0 {
                    model.advance(grid_ms);
                }
                // A scrape lands a few milliseconds late or early; all of its series share it.
                let timestamp = grid_ms - self.scrape_offsets_ms[node] - (model.rng.next_u64() % 5) as i64;
                for (def, out) in self.series.iter().zip(&mut samples[node]) {
                    out.push(Sample {
                        value: model.value(def.source),
                        timestamp,
                    });
                }
            }
        }
        self.next_step = end_step;
        let mut timeseries = Vec::with_capacity(self.models.len() * self.series.len());
        for (node_labels, node_samples) in self.labels.iter().zip(samples) {
            for (labels, samples) in node_labels.iter().zip(node_samples) {
                timeseries.push(TimeSeries {
                    labels: labels.clone(),
                    samples,
                    histograms: vec![],
                });
            }
        }
        let sample_count = (timeseries.len() * step_count) as u64;
        Some((
            WriteRequest {
                timeseries,
                metadata: vec![],
            },
            sample_count,
        ))
    }
}

fn instance(node: usize) -> String {
    format!("node{}:9100", node + 1)
}

// ---------------------------------------------------------------------------------------------
// Load

/// Posts every request to every server in turn, time-major; prints the load table.
fn load(servers: &[Server], mut generator: Generator, batch_minutes: i64) {
    let max_steps = (batch_minutes * 60_000 / SCRAPE_INTERVAL_MS) as usize;
    let agent = http_agent(Duration::from_secs(120));
    let mut encoder = snap::raw::Encoder::new();
    let mut elapsed = vec![Duration::ZERO; servers.len()];
    let mut failures = vec![0usize; servers.len()];
    let mut first_failure: Vec<Option<u16>> = vec![None; servers.len()];
    let mut requests = 0usize;
    let mut samples = 0u64;
    let mut body_bytes = 0usize;
    let started = Instant::now();
    let total_requests = generator.steps.div_ceil(max_steps);
    // Bounded: the generator yields exactly `total_requests` requests.
    while let Some((request, sample_count)) = generator.next_request(max_steps) {
        let body = encoder
            .compress_vec(&request.encode_to_vec())
            .unwrap_or_else(|err| panic!("snappy: {err}"));
        for (index, server) in servers.iter().enumerate() {
            let sent = Instant::now();
            let status = post_remote_write(&agent, server.base_url(), &body);
            elapsed[index] += sent.elapsed();
            if !(200..300).contains(&status) {
                failures[index] += 1;
                first_failure[index].get_or_insert(status);
            }
        }
        requests += 1;
        samples += sample_count;
        body_bytes += body.len();
        if requests.is_multiple_of(100) {
            eprintln!(
                "  loaded {requests}/{total_requests} requests ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "load: {} samples in {requests} requests of {batch_minutes} min of every series ({:.1} MB snappy), {:.0} s in all (informative; each system timed on its own requests)",
        human(samples as f64),
        body_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| system | load time s | samples/s | failed requests | peak RSS MB |");
    println!("|---|---:|---:|---:|---:|");
    for (index, server) in servers.iter().enumerate() {
        println!(
            "| {} | {:.1} | {} | {} | {:.0} |",
            server.name(),
            elapsed[index].as_secs_f64(),
            human(samples as f64 / elapsed[index].as_secs_f64()),
            failures[index],
            server.peak_rss_bytes().unwrap_or(0) as f64 / 1e6,
        );
    }
    println!();
    for (index, server) in servers.iter().enumerate() {
        if let Some(status) = first_failure[index] {
            println!(
                "!!! {}: {} of {requests} writes failed (first status {status}): its answers below miss data !!!",
                server.name(),
                failures[index]
            );
        }
    }
}

/// Flushes VictoriaMetrics; with `restart` (the systems and their arguments, and the scratch
/// directory holding their data), stops every server cleanly and starts it again on its data;
/// then waits until every server has finished its background work.
fn settle(servers: Vec<Server>, restart: Option<(&[Launch], &Path)>) -> Vec<Server> {
    let agent = http_agent(Duration::from_secs(120));
    for server in &servers {
        if server.name() == System::VictoriaMetrics.name() {
            let status = agent
                .get(&format!("{}/internal/force_flush", server.base_url()))
                .call()
                .map(|response| response.status().as_u16())
                .unwrap_or(0);
            println!("VictoriaMetrics /internal/force_flush: {status}");
        }
    }
    let servers = match restart {
        None => servers,
        Some((plan, scratch)) => {
            // Data that is days old lives on disk, not in a server's write path: a restart makes
            // every system answer from what it keeps on disk (Prometheus replays the last hours
            // of its WAL into its head, as it would hold them anyway).
            let mut restarted = Vec::new();
            for (server, (system, extra_args)) in servers.into_iter().zip(plan) {
                let stopping = Instant::now();
                server.stop(Duration::from_secs(120));
                let stopped_after = stopping.elapsed();
                let starting = Instant::now();
                let server = system
                    .start(&scratch.join(system.name()), extra_args)
                    .unwrap_or_else(|| panic!("{} did not restart", system.name()));
                println!(
                    "{}: stopped in {:.1} s, ready again in {:.1} s",
                    system.name(),
                    stopped_after.as_secs_f64(),
                    starting.elapsed().as_secs_f64()
                );
                restarted.push(server);
            }
            restarted
        }
    };
    // VictoriaMetrics makes flushed data searchable after a few seconds.
    std::thread::sleep(Duration::from_secs(5));
    let refs: Vec<&Server> = servers.iter().collect();
    let (waited, idle) = obs_bench::wait_until_idle(&refs, 0.05, Duration::from_secs(600));
    println!(
        "settled: {} after {:.0} s (every server under 5 % of a core for 2 s)",
        if idle {
            "idle"
        } else {
            "NOT idle, measuring anyway"
        },
        waited.as_secs_f64() + 5.0
    );
    println!();
    servers
}

// ---------------------------------------------------------------------------------------------
// Queries

/// One dashboard time range and what Grafana derives from it.
#[derive(Debug)]
struct RangeSpec {
    label: String,
    range_ms: i64,
    step_ms: i64,
    rate_interval_ms: i64,
}

impl RangeSpec {
    fn new(label: &str, range_ms: i64) -> RangeSpec {
        let step_ms = grafana_round_interval_ms(range_ms / PANEL_WIDTH_PX).max(SCRAPE_INTERVAL_MS);
        RangeSpec {
            label: label.to_owned(),
            range_ms,
            step_ms,
            rate_interval_ms: (step_ms + SCRAPE_INTERVAL_MS).max(4 * SCRAPE_INTERVAL_MS),
        }
    }
}

/// Grafana's `roundInterval` (public/app/core/utils/kbn and rangeutil), from 1 s up.
fn grafana_round_interval_ms(interval_ms: i64) -> i64 {
    const TABLE: &[(i64, i64)] = &[
        (1_500, 1_000),
        (3_500, 2_000),
        (7_500, 5_000),
        (12_500, 10_000),
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (210_000, 120_000),
        (450_000, 300_000),
        (750_000, 600_000),
        (1_050_000, 900_000),
        (1_500_000, 1_200_000),
        (2_700_000, 1_800_000),
        (5_400_000, 3_600_000),
        (9_000_000, 7_200_000),
        (16_200_000, 10_800_000),
        (32_400_000, 21_600_000),
        (86_400_000, 43_200_000),
        (604_800_000, 86_400_000),
        (1_814_400_000, 604_800_000),
        (3_628_800_000, 2_592_000_000),
    ];
    TABLE
        .iter()
        .find(|(below, _)| interval_ms < *below)
        .map_or(31_536_000_000, |(_, rounded)| *rounded)
}

/// The panels measured, with `$node` = node1, `$job` = node and `$__rate_interval` filled in.
fn dashboard_queries(rate_interval: &str) -> Vec<(&'static str, String)> {
    let node = instance(0);
    let sel = format!(r#"instance="{node}",job="{JOB}""#);
    let ri = rate_interval;
    let disks = DISK_DEVICES_REGEX;
    vec![
        (
            "CPU busy",
            format!(
                r#"(sum by(instance) (irate(node_cpu_seconds_total{{{sel}, mode!="idle"}}[{ri}])) / on(instance) group_left sum by (instance)((irate(node_cpu_seconds_total{{{sel}}}[{ri}])))) * 100"#
            ),
        ),
        (
            "CPU basic (per mode)",
            format!(
                r#"sum by(instance, mode) (irate(node_cpu_seconds_total{{{sel}}}[{ri}])) / on(instance) group_left sum by (instance)(irate(node_cpu_seconds_total{{{sel}}}[{ri}]))"#
            ),
        ),
        ("Load 1m", format!("node_load1{{{sel}}}")),
        ("Load 5m", format!("node_load5{{{sel}}}")),
        ("Load 15m", format!("node_load15{{{sel}}}")),
        (
            "Memory used",
            format!(
                "node_memory_MemTotal_bytes{{{sel}}} - node_memory_MemFree_bytes{{{sel}}} - (node_memory_Cached_bytes{{{sel}}} + node_memory_Buffers_bytes{{{sel}}})"
            ),
        ),
        (
            "RAM used %",
            format!(
                "(1 - (node_memory_MemAvailable_bytes{{{sel}}} / node_memory_MemTotal_bytes{{{sel}}})) * 100"
            ),
        ),
        (
            "Disk read bytes",
            format!(r#"irate(node_disk_read_bytes_total{{{sel},device=~"{disks}"}}[{ri}])"#),
        ),
        (
            "Disk written bytes",
            format!(r#"irate(node_disk_written_bytes_total{{{sel},device=~"{disks}"}}[{ri}])"#),
        ),
        (
            "Disk IO time",
            format!(r#"irate(node_disk_io_time_seconds_total{{{sel},device=~"{disks}"}}[{ri}])"#),
        ),
        (
            "Filesystem used %",
            format!(
                r#"100 - ((node_filesystem_avail_bytes{{{sel},device!~"rootfs"}} * 100) / node_filesystem_size_bytes{{{sel},device!~"rootfs"}})"#
            ),
        ),
        (
            "Network in",
            format!("irate(node_network_receive_bytes_total{{{sel}}}[{ri}])*8"),
        ),
        (
            "Network out",
            format!("irate(node_network_transmit_bytes_total{{{sel}}}[{ri}])*8"),
        ),
        (
            "Overview: CPU all nodes",
            format!(r#"sum by (instance) (rate(node_cpu_seconds_total{{mode!="idle"}}[{ri}]))"#),
        ),
    ]
}

/// A duration as PromQL writes it, in whole seconds.
fn prom_duration(ms: i64) -> String {
    format!("{}s", ms / 1000)
}

/// What one query gave on every server.
#[derive(Debug)]
struct QueryOutcome {
    name: &'static str,
    /// Per server: latencies of the measured runs (warm-up excluded).
    latencies: Vec<Vec<Duration>>,
    /// Per server: the first error (non-200 status, unreadable body), if any.
    errors: Vec<Option<String>>,
    /// Per server: the parsed warm-up answer.
    answers: Vec<Option<Matrix>>,
}

fn measure_range(
    servers: &[Server],
    range: &RangeSpec,
    data_end_ms: i64,
    repeats: usize,
) -> Vec<QueryOutcome> {
    // Grafana aligns both ends down to the step.
    let end_ms = data_end_ms - data_end_ms.rem_euclid(range.step_ms);
    let start_ms = end_ms - range.range_ms;
    let queries = dashboard_queries(&prom_duration(range.rate_interval_ms));
    let agent = http_agent(Duration::from_secs(180));
    let form_time = |ms: i64| format!("{}", ms / 1000);
    let (start, end, step) = (form_time(start_ms), form_time(end_ms), form_time(range.step_ms));
    eprintln!(
        "range {}: start={start} end={end} step={step}s $__rate_interval={}",
        range.label,
        prom_duration(range.rate_interval_ms)
    );
    let mut outcomes = Vec::new();
    for (name, expr) in queries {
        let mut outcome = QueryOutcome {
            name,
            latencies: vec![Vec::with_capacity(repeats); servers.len()],
            errors: vec![None; servers.len()],
            answers: (0..servers.len()).map(|_| None).collect(),
        };
        for round in 0..=repeats {
            for offset in 0..servers.len() {
                let index = (round + offset) % servers.len();
                let server = &servers[index];
                let url = format!("{}/api/v1/query_range", server.base_url());
                let sent = Instant::now();
                let answer = agent
                    .post(&url)
                    .send_form([
                        ("query", expr.as_str()),
                        ("start", start.as_str()),
                        ("end", end.as_str()),
                        ("step", step.as_str()),
                    ])
                    .map_err(|err| err.to_string())
                    .and_then(|mut response| {
                        let status = response.status().as_u16();
                        let body = response
                            .body_mut()
                            .with_config()
                            .limit(512 << 20)
                            .read_to_vec()
                            .map_err(|err| err.to_string())?;
                        Ok((status, body))
                    });
                let latency = sent.elapsed();
                let error = match &answer {
                    Ok((200, _)) => None,
                    Ok((status, body)) => Some(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )),
                    Err(err) => Some(err.clone()),
                };
                if let Some(error) = error {
                    outcome.errors[index].get_or_insert(error);
                }
                if round == 0 {
                    if let Ok((200, body)) = &answer {
                        match Matrix::parse(body) {
                            Ok(matrix) => outcome.answers[index] = Some(matrix),
                            Err(err) => {
                                outcome.errors[index].get_or_insert(format!("bad answer: {err}"));
                            }
                        }
                    }
                } else {
                    outcome.latencies[index].push(latency);
                }
            }
        }
        eprintln!(
            "  {name}: {}",
            servers
                .iter()
                .zip(&outcome.latencies)
                .map(|(server, latencies)| format!("{} {}", server.name(), ms(median(latencies))))
                .collect::<Vec<_>>()
                .join(", ")
        );
        outcomes.push(outcome);
    }
    outcomes
}

fn median(latencies: &[Duration]) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// The nearest-rank 99th percentile: with fewer than 100 runs, the slowest run.
fn p99(latencies: &[Duration]) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let rank = (sorted.len() as f64 * 0.99).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or(Duration::ZERO)
}

fn ms(duration: Duration) -> String {
    let millis = duration.as_secs_f64() * 1000.0;
    if millis >= 100.0 {
        format!("{millis:.0}")
    } else if millis >= 10.0 {
        format!("{millis:.1}")
    } else {
        format!("{millis:.2}")
    }
}

fn print_range(
    servers: &[Server],
    range: &RangeSpec,
    outcomes: &[QueryOutcome],
    repeats: usize,
    all_ratios: &mut Vec<(String, Vec<f64>)>,
) {
    let others = &servers[1..];
    println!(
        "### range {}: step {}, $__rate_interval {}, {repeats} runs per query and system after one warm-up; latency in ms; p99 is nearest-rank{}",
        range.label,
        prom_duration(range.step_ms),
        prom_duration(range.rate_interval_ms),
        if repeats < 100 {
            " (with fewer than 100 runs, the slowest run)"
        } else {
            ""
        }
    );
    println!();
    let mut header = String::from("| query |");
    let mut rule = String::from("|---|");
    for server in servers {
        header.push_str(&format!(" {0} median | {0} p99 |", server.name()));
        rule.push_str("---:|---:|");
    }
    for other in others {
        header.push_str(&format!(" / {0} median | / {0} p99 |", other.name()));
        rule.push_str("---:|---:|");
    }
    println!("{header}");
    println!("{rule}");
    let mut ratios = vec![Vec::new(); others.len()];
    for outcome in outcomes {
        let mut row = format!("| {} |", outcome.name);
        for (index, latencies) in outcome.latencies.iter().enumerate() {
            let flag = if outcome.errors[index].is_some() {
                " ERR"
            } else {
                ""
            };
            row.push_str(&format!(
                " {}{flag} | {} |",
                ms(median(latencies)),
                ms(p99(latencies))
            ));
        }
        let ours = &outcome.latencies[0];
        for (other_index, latencies) in outcome.latencies.iter().enumerate().skip(1) {
            let median_ratio = median(ours).as_secs_f64() / median(latencies).as_secs_f64();
            let p99_ratio = p99(ours).as_secs_f64() / p99(latencies).as_secs_f64();
            ratios[other_index - 1].push(median_ratio);
            row.push_str(&format!(" {median_ratio:.2}x | {p99_ratio:.2}x |"));
        }
        println!("{row}");
    }
    let mut geomean_row = String::from("| geometric mean of median ratios |");
    for _ in servers {
        geomean_row.push_str(" | |");
    }
    for ratios in &ratios {
        geomean_row.push_str(&format!(" **{:.2}x** | |", geometric_mean(ratios)));
    }
    println!("{geomean_row}");
    println!();
    for (other, ratios) in others.iter().zip(ratios) {
        all_ratios.push((format!("{} vs {}", range.label, other.name()), ratios));
    }

    let mut errors = false;
    for outcome in outcomes {
        for (server, error) in servers.iter().zip(&outcome.errors) {
            if let Some(error) = error {
                errors = true;
                println!("!!! {} failed on \"{}\": {error}", server.name(), outcome.name);
            }
        }
    }
    if errors {
        println!();
    }
    print_agreement(servers, outcomes);
}

fn geometric_mean(values: &[f64]) -> f64 {
    let finite: Vec<f64> = values
        .iter()
        .copied()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if finite.is_empty() {
        return f64::NAN;
    }
    (finite.iter().map(|v| v.ln()).sum::<f64>() / finite.len() as f64).exp()
}

fn print_agreement(servers: &[Server], outcomes: &[QueryOutcome]) {
    println!(
        "Agreement of the warm-up answers (series / points; mismatched points: missing on one side or values differing by more than 1e-6 relative):"
    );
    println!();
    let mut header = String::from("| query |");
    let mut rule = String::from("|---|");
    for server in servers {
        header.push_str(&format!(" {} series / points |", server.name()));
        rule.push_str("---:|");
    }
    for other in &servers[1..] {
        header.push_str(&format!(
            " vs {} mismatched points (max rel. diff) |",
            other.name()
        ));
        rule.push_str("---:|");
    }
    println!("{header}");
    println!("{rule}");
    let mut loud = Vec::new();
    for outcome in outcomes {
        let mut row = format!("| {} |", outcome.name);
        for answer in &outcome.answers {
            match answer {
                Some(matrix) => row.push_str(&format!(" {} / {} |", matrix.series.len(), matrix.points())),
                None => row.push_str(" - |"),
            }
        }
        for (index, other) in servers.iter().enumerate().skip(1) {
            let is_victoria = other.name() == System::VictoriaMetrics.name();
            match (&outcome.answers[0], &outcome.answers[index]) {
                (Some(ours), Some(theirs)) => {
                    let agreement = compare(ours, theirs, is_victoria);
                    row.push_str(&format!(
                        " {}{} ({:.1e}) |",
                        agreement.mismatched_points,
                        if agreement.series_mismatch {
                            ", series differ"
                        } else {
                            ""
                        },
                        agreement.max_relative_diff
                    ));
                    if !is_victoria && (agreement.mismatched_points > 0 || agreement.series_mismatch) {
                        loud.push(format!(
                            "!!! obs-appliance and {} disagree on \"{}\": {} points mismatched, max relative difference {:.3e}{}",
                            other.name(),
                            outcome.name,
                            agreement.mismatched_points,
                            agreement.max_relative_diff,
                            agreement.example.as_deref().map(|e| format!("; e.g. {e}")).unwrap_or_default()
                        ));
                    }
                }
                _ => row.push_str(" - |"),
            }
        }
        println!("{row}");
    }
    println!();
    for line in &loud {
        println!("{line}");
    }
    if !loud.is_empty() {
        println!();
    }
}

/// A `matrix` answer: series by their label set (printed sorted), points by time in ms.
#[derive(Debug)]
struct Matrix {
    series: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>>,
}

impl Matrix {
    fn parse(body: &[u8]) -> Result<Matrix, String> {
        let json: serde_json::Value = serde_json::from_slice(body).map_err(|err| err.to_string())?;
        if json["status"] != "success" {
            return Err(format!("status {}", json["status"]));
        }
        let result = json["data"]["result"].as_array().ok_or("no data.result array")?;
        let mut series = BTreeMap::new();
        for item in result {
            let labels: BTreeMap<String, String> = item["metric"]
                .as_object()
                .ok_or("no metric object")?
                .iter()
                .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
                .collect();
            let mut points = Vec::new();
            for point in item["values"].as_array().ok_or("no values array")? {
                let time_s = point[0].as_f64().ok_or("bad timestamp")?;
                let value = parse_prom_float(point[1].as_str().ok_or("bad value")?)?;
                points.push(((time_s * 1000.0).round() as i64, value));
            }
            series.insert(labels, points);
        }
        Ok(Matrix { series })
    }

    fn points(&self) -> usize {
        self.series.values().map(Vec::len).sum()
    }
}

fn parse_prom_float(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

#[derive(Debug, Default)]
struct Agreement {
    series_mismatch: bool,
    mismatched_points: usize,
    max_relative_diff: f64,
    example: Option<String>,
}

/// Compares two answers point by point. `ignore_name` drops `__name__` from the label sets
/// (VictoriaMetrics keeps or drops it in a few places where Prometheus does the opposite).
fn compare(ours: &Matrix, theirs: &Matrix, ignore_name: bool) -> Agreement {
    let key = |labels: &BTreeMap<String, String>| {
        let mut labels = labels.clone();
        if ignore_name {
            labels.remove("__name__");
        }
        labels
    };
    let theirs_by_key: BTreeMap<_, _> = theirs
        .series
        .iter()
        .map(|(labels, points)| (key(labels), points))
        .collect();
    let mut agreement = Agreement {
        series_mismatch: ours.series.len() != theirs.series.len(),
        ..Agreement::default()
    };
    for (labels, our_points) in &ours.series {
        let Some(their_points) = theirs_by_key.get(&key(labels)) else {
            agreement.series_mismatch = true;
            agreement.mismatched_points += our_points.len();
            continue;
        };
        let their_map: BTreeMap<i64, f64> = their_points.iter().copied().collect();
        let our_times: std::collections::BTreeSet<i64> = our_points.iter().map(|(t, _)| *t).collect();
        agreement.mismatched_points += their_points
            .iter()
            .filter(|(t, _)| !our_times.contains(t))
            .count();
        for (time, our_value) in our_points {
            let Some(their_value) = their_map.get(time) else {
                agreement.mismatched_points += 1;
                continue;
            };
            let diff = relative_diff(*our_value, *their_value);
            if diff > agreement.max_relative_diff || diff.is_nan() {
                agreement.max_relative_diff = diff;
            }
            if diff > TOLERANCE {
                agreement.mismatched_points += 1;
                agreement
                    .example
                    .get_or_insert_with(|| format!("{labels:?} at {time}: {our_value} vs {their_value}"));
            }
        }
    }
    agreement
}

fn relative_diff(a: f64, b: f64) -> f64 {
    if a.is_nan() && b.is_nan() || a == b {
        return 0.0;
    }
    if a.is_nan() || b.is_nan() || a.is_infinite() || b.is_infinite() {
        return f64::INFINITY;
    }
    (a - b).abs() / a.abs().max(b.abs())
}

fn print_summary(all_ratios: &[(String, Vec<f64>)]) {
    println!(
        "### summary: geometric mean of the median-latency ratios obs-appliance / other (target vs Prometheus: <= 0.5x)"
    );
    println!();
    println!("| range vs system | geometric mean | best query | worst query |");
    println!("|---|---:|---:|---:|");
    for (label, ratios) in all_ratios {
        let best = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let worst = ratios.iter().copied().fold(0.0, f64::max);
        println!(
            "| {label} | {:.2}x | {best:.2}x | {worst:.2}x |",
            geometric_mean(ratios)
        );
    }
}
