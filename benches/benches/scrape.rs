//! Scraping, side by side: obs-appliance and Prometheus scrape the same 50 fixture targets of
//! 2,000 series each every second, and the whole-process CPU time and memory of each are
//! measured, first at the same time, then each alone. Before that, the scrape parser's
//! throughput on a real node-exporter page and on a large kube-state-metrics-like page.
//!
//! Run (the appliance is benchmarked as its release binary):
//!
//! ```sh
//! cargo build --release -p obs-appliance
//! cargo bench -p obs-bench --bench scrape
//! ```
//!
//! 1. Parser: `obs_scrape::parse::parse(body, Format::PrometheusText)` in a loop for about 3 s
//!    on each of: the page of `prometheus-node-exporter` (started on a free loopback port when
//!    installed, else a generated node-exporter-like page; the table says which), one fixture
//!    page (below), and a generated kube-state-metrics-like page of about 50,000 series with
//!    long label sets (namespace, pod, uid, container, node, image, …). Prints MB/s and
//!    samples/s, on one core.
//! 2. Fixture: 50 targets, one 127.0.0.1 listener each, served from this process (HTTP/1.1
//!    with keep-alive, one thread). Each serves `/metrics`: 2,000 series of an application
//!    (Go runtime and process gauges, HTTP, gRPC and database counters and classic histograms,
//!    consumer lags, worker pools), deterministic, values moving every second, formatted as
//!    Go's client library formats them. `Content-Type: text/plain; version=0.0.4`, gzipped
//!    when the client asks (`Accept-Encoding: gzip`). Every page of the next second is built
//!    and compressed (flate2, level 1) ahead of time, once for both scrapers.
//! 3. Side by side: the appliance (`serve --config`, a file with `server.listen` and one job
//!    with the 50 targets, `scrape_interval` and `scrape_timeout` 1s, no self-scrape, the other
//!    settings default: the WAL fsyncs every write) and Prometheus (the same `global` and
//!    `scrape_configs`) start together; once both scrape every target (`sum(up)` is 50; Prometheus
//!    applies new targets up to 5 s late) and `--warmup` seconds more, each one's CPU time
//!    (utime + stime of `/proc/<pid>/stat`) is measured over `--seconds`; then its peak (VmHWM)
//!    and final (VmRSS) resident memory are read. Both must ingest the same samples: the
//!    appliance's `obs_scrape_samples_stored_total` and Prometheus'
//!    `prometheus_tsdb_head_samples_appended_total` over the window, the requests the fixture
//!    served to each, and `sum(up)` and `sum(scrape_samples_scraped)` asked of each at the end.
//! 4. One after the other: the same, each alone (fresh data directories), since side by side
//!    the two compete for the machine's cores.
//!
//! Options: `--seconds N` (measured window, 120), `--warmup N` (15), `--skip-parser`,
//! `--skip-side-by-side`, `--skip-sequential`, `--perf-record FILE` (record the appliance with
//! `perf record` during its first measured window; its CPU figure then includes perf's
//! overhead), `--perf-call-graph MODE` (perf's `--call-graph`, `fp` as `-g`, or `dwarf,8192`).

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use obs_bench::{
    PerfRecording, Server, SplitMix, Throughput, arg_flag, arg_value, exposed_metric_sum, free_port,
    http_agent, human, instant_query_value, load_average,
};
use obs_scrape::parse::{Format, parse};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const TARGETS: usize = 50;
const SERIES_PER_TARGET: usize = 2000;
/// `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
/// `scrape_samples_post_metric_relabeling`, `scrape_series_added`: written by both scrapers
/// with every scrape.
const SYNTHETIC_SERIES: usize = 5;
const JOB: &str = "fixture";
const KUBE_STATE_SERIES: usize = 50_000;
const PARSE_SECONDS: Duration = Duration::from_secs(3);
const PARSE_MAX_ITERATIONS: usize = 1_000_000;

fn main() {
    let window_seconds: u64 = arg_value("seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(120)
        .clamp(5, 3600);
    let warmup_seconds: u64 = arg_value("warmup")
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
        .clamp(0, 600);
    let perf_record = arg_value("perf-record").map(PathBuf::from);
    let perf_call_graph = arg_value("perf-call-graph").unwrap_or_else(|| "fp".to_owned());
    let user_args: Vec<String> = std::env::args().skip(1).filter(|arg| arg != "--bench").collect();
    println!(
        "command: cargo bench -p obs-bench --bench scrape -- {}",
        user_args.join(" ")
    );
    println!("machine load average (1 min) at start: {}", load_average());
    println!();

    if !arg_flag("skip-parser") {
        parser_throughput();
    }
    let side_by_side = !arg_flag("skip-side-by-side");
    let sequential = !arg_flag("skip-sequential");
    if !side_by_side && !sequential {
        return;
    }

    let appliance_binary = obs_bench::appliance_binary_or_exit();
    let Some(prometheus_binary) = obs_bench::which("prometheus") else {
        eprintln!("nothing to compare the appliance with: install prometheus");
        std::process::exit(2);
    };
    let prometheus_version = Command::new(&prometheus_binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            text.lines().next().map(str::to_owned)
        })
        .unwrap_or_default();
    let scratch =
        tempfile::tempdir_in(obs_bench::workspace_dir()).unwrap_or_else(|err| panic!("scratch dir: {err}"));
    let fixture = Fixture::start();
    let scrape_configs = scrape_configs_yaml(&fixture.ports);
    println!(
        "fixture: {TARGETS} targets x {SERIES_PER_TARGET} series on 127.0.0.1:{}..{}, pages of {:.0} kB ({:.0} kB gzipped), built and compressed in {:.0} ms per second for all targets",
        fixture.ports.iter().min().copied().unwrap_or(0),
        fixture.ports.iter().max().copied().unwrap_or(0),
        fixture.board.plain_bytes.load(Ordering::Relaxed) as f64 / TARGETS as f64 / 1e3,
        fixture.board.gzip_bytes.load(Ordering::Relaxed) as f64 / TARGETS as f64 / 1e3,
        fixture.board.build_micros.load(Ordering::Relaxed) as f64 / 1e3,
    );
    println!("reference: {prometheus_version}");
    println!(
        "expected per scraper: {TARGETS} x ({SERIES_PER_TARGET} + {SYNTHETIC_SERIES} synthetic) = {} samples/s, {} samples in {window_seconds} s",
        TARGETS * (SERIES_PER_TARGET + SYNTHETIC_SERIES),
        human((TARGETS * (SERIES_PER_TARGET + SYNTHETIC_SERIES)) as f64 * window_seconds as f64),
    );
    println!();

    let launch = Launch {
        appliance_binary,
        prometheus_binary,
        scrape_configs,
        warmup: Duration::from_secs(warmup_seconds),
        window: Duration::from_secs(window_seconds),
    };
    let mut perf = perf_record.map(|path| (path, perf_call_graph));
    if side_by_side {
        let dir = scratch.path().join("side-by-side");
        let servers = [
            launch.start(Scraper::Appliance, &dir),
            launch.start(Scraper::Prometheus, &dir),
        ];
        let measured = launch.measure(&servers, &fixture, perf.take());
        drop(servers);
        print_measurements(
            &format!(
                "Side by side: both scraping at once, {window_seconds} s after a {warmup_seconds} s warm-up"
            ),
            &measured,
        );
    }
    if sequential {
        let mut measured = Vec::new();
        for scraper in [Scraper::Appliance, Scraper::Prometheus] {
            let dir = scratch.path().join("sequential");
            let server = launch.start(scraper, &dir);
            let profile = if scraper == Scraper::Appliance {
                perf.take()
            } else {
                None
            };
            measured.extend(launch.measure(&[server], &fixture, profile));
        }
        print_measurements(
            &format!(
                "One after the other: each alone, {window_seconds} s after a {warmup_seconds} s warm-up"
            ),
            &measured,
        );
    }
    let [appliance, prometheus, other] = fixture.stats.snapshot();
    println!(
        "fixture requests served in all (gzip / identity): obs-appliance {} / {}, Prometheus {} / {}, other {} / {}",
        appliance.gzip, appliance.identity, prometheus.gzip, prometheus.identity, other.gzip, other.identity
    );
}

// ---------------------------------------------------------------------------------------------
// Parser throughput

fn parser_throughput() {
    let mut pages: Vec<(String, String, String)> = Vec::new();
    let (node_page, node_source) = node_exporter_page();
    pages.push(("node exporter".to_owned(), node_source, node_page));
    let fixture_model = FixtureModel::new();
    pages.push((
        "fixture target".to_owned(),
        format!("generated, {SERIES_PER_TARGET} series"),
        fixture_model.page(0, 3600),
    ));
    pages.push((
        "kube-state-metrics-like".to_owned(),
        "generated, long label sets".to_owned(),
        kube_state_metrics_page(KUBE_STATE_SERIES),
    ));
    println!("### Parser throughput (text format 0.0.4, one core, ~3 s per page)");
    println!();
    println!("| page | source | size kB | samples | iterations | MB/s | samples/s |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (page, source, body) in &pages {
        let (throughput, samples) = parse_throughput(body);
        println!(
            "| {page} | {source} | {:.0} | {samples} | {} | {:.0} | {} |",
            body.len() as f64 / 1e3,
            throughput.operations / samples.max(1) as u64,
            throughput.mb_per_sec(),
            human(throughput.ops_per_sec()),
        );
    }
    println!();
}

/// Parses `body` repeatedly for about [`PARSE_SECONDS`]: the samples of one parse, and the
/// throughput over all of them (operations are samples).
fn parse_throughput(body: &str) -> (Throughput, usize) {
    let samples = parse(body, Format::PrometheusText)
        .unwrap_or_else(|err| panic!("a generated or exported page must parse: {err}"))
        .samples
        .len();
    let started = Instant::now();
    let mut iterations = 0usize;
    while iterations < PARSE_MAX_ITERATIONS && started.elapsed() < PARSE_SECONDS {
        let parsed = parse(black_box(body), Format::PrometheusText);
        black_box(parsed.map(|parsed| parsed.samples.len()).unwrap_or(0));
        iterations += 1;
    }
    let throughput = Throughput {
        operations: (samples * iterations) as u64,
        bytes: (body.len() * iterations) as u64,
        elapsed: started.elapsed(),
    };
    (throughput, samples)
}

/// The page of `prometheus-node-exporter` on this machine, or a generated node-exporter-like
/// page when it is not installed or does not answer; and which of the two it is.
fn node_exporter_page() -> (String, String) {
    if let Some(binary) = obs_bench::which("prometheus-node-exporter")
        && let Some(port) = free_port()
    {
        let mut command = Command::new(&binary);
        command.arg(format!("--web.listen-address=127.0.0.1:{port}"));
        if let Some(exporter) = Server::launch("node exporter", command, port, "/metrics") {
            let agent = http_agent(Duration::from_secs(10));
            let url = format!("{}/metrics", exporter.base_url());
            let body = agent.get(&url).call().ok().and_then(|mut response| {
                response
                    .body_mut()
                    .with_config()
                    .limit(64 << 20)
                    .read_to_string()
                    .ok()
            });
            exporter.stop(Duration::from_secs(5));
            if let Some(body) = body {
                return (body, format!("real: {} on this machine", binary.display()));
            }
        }
    }
    (
        generated_node_exporter_page(),
        "generated (prometheus-node-exporter not installed)".to_owned(),
    )
}

/// A node-exporter-like page: 16 CPUs, memory, disks, filesystems, network devices.
fn generated_node_exporter_page() -> String {
    let mut page = String::new();
    let mut random = SplitMix(9100);
    family_header(
        &mut page,
        "node_cpu_seconds_total",
        "counter",
        "Seconds the CPUs spent in each mode.",
    );
    for cpu in 0..16 {
        for mode in [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
        ] {
            let value = (random.unit() * 1e6 * 100.0).round() / 100.0;
            let _ = writeln!(
                page,
                "node_cpu_seconds_total{{cpu=\"{cpu}\",mode=\"{mode}\"}} {}",
                go_float(value)
            );
        }
    }
    family_header(
        &mut page,
        "node_memory_MemAvailable_bytes",
        "gauge",
        "Memory information field MemAvailable_bytes.",
    );
    let _ = writeln!(
        page,
        "node_memory_MemAvailable_bytes {}",
        go_float(1.2e10 + random.unit() * 1e9)
    );
    for device in ["sda", "sdb", "nvme0n1", "nvme1n1"] {
        for counter in [
            "node_disk_read_bytes_total",
            "node_disk_written_bytes_total",
            "node_disk_io_time_seconds_total",
        ] {
            family_header(&mut page, counter, "counter", "Disk statistic.");
            let _ = writeln!(
                page,
                "{counter}{{device=\"{device}\"}} {}",
                go_float((random.unit() * 1e12).round())
            );
        }
    }
    for (mountpoint, device) in [
        ("/", "/dev/sda1"),
        ("/boot", "/dev/sda2"),
        ("/data", "/dev/sdb1"),
        ("/run", "tmpfs"),
    ] {
        for gauge in [
            "node_filesystem_avail_bytes",
            "node_filesystem_size_bytes",
            "node_filesystem_files_free",
        ] {
            family_header(&mut page, gauge, "gauge", "Filesystem statistic.");
            let _ = writeln!(
                page,
                "{gauge}{{device=\"{device}\",fstype=\"ext4\",mountpoint=\"{mountpoint}\"}} {}",
                go_float((random.unit() * 1e11).round())
            );
        }
    }
    for device in ["eth0", "eth1", "lo", "docker0", "veth1a2b3c"] {
        for counter in [
            "node_network_receive_bytes_total",
            "node_network_transmit_bytes_total",
            "node_network_receive_packets_total",
            "node_network_transmit_packets_total",
        ] {
            family_header(&mut page, counter, "counter", "Network device statistic.");
            let _ = writeln!(
                page,
                "{counter}{{device=\"{device}\"}} {}",
                go_float((random.unit() * 1e12).round())
            );
        }
    }
    page
}

/// A kube-state-metrics-like page of about `series` series: pods of two containers in 40
/// namespaces on 60 nodes, families in kube-state-metrics' order and with its label sets.
fn kube_state_metrics_page(series: usize) -> String {
    const SERIES_PER_POD: usize = 29;
    let pods: Vec<Pod> = {
        let mut random = SplitMix(8080);
        (0..series.div_ceil(SERIES_PER_POD))
            .map(|index| Pod::new(index, &mut random))
            .collect()
    };
    let mut page = String::with_capacity(series * 260);
    family_header(
        &mut page,
        "kube_pod_info",
        "gauge",
        "[STABLE] Information about pod.",
    );
    for pod in &pods {
        let _ = writeln!(
            page,
            "kube_pod_info{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",host_ip=\"{}\",pod_ip=\"{}\",node=\"{}\",created_by_kind=\"ReplicaSet\",created_by_name=\"{}\",priority_class=\"\",host_network=\"false\"}} 1",
            pod.namespace, pod.name, pod.uid, pod.host_ip, pod.pod_ip, pod.node, pod.replica_set
        );
    }
    family_header(
        &mut page,
        "kube_pod_owner",
        "gauge",
        "[STABLE] Information about the Pod's owner.",
    );
    for pod in &pods {
        let _ = writeln!(
            page,
            "kube_pod_owner{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",owner_kind=\"ReplicaSet\",owner_name=\"{}\",owner_is_controller=\"true\"}} 1",
            pod.namespace, pod.name, pod.uid, pod.replica_set
        );
    }
    family_header(
        &mut page,
        "kube_pod_labels",
        "gauge",
        "[STABLE] Kubernetes labels converted to Prometheus labels.",
    );
    for pod in &pods {
        let _ = writeln!(
            page,
            "kube_pod_labels{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",label_app_kubernetes_io_name=\"{}\",label_pod_template_hash=\"{}\"}} 1",
            pod.namespace, pod.name, pod.uid, pod.app, pod.template_hash
        );
    }
    family_header(
        &mut page,
        "kube_pod_created",
        "gauge",
        "[STABLE] Unix creation timestamp",
    );
    for pod in &pods {
        let _ = writeln!(
            page,
            "kube_pod_created{{namespace=\"{}\",pod=\"{}\",uid=\"{}\"}} {}",
            pod.namespace,
            pod.name,
            pod.uid,
            go_float(pod.created_s as f64)
        );
    }
    family_header(
        &mut page,
        "kube_pod_start_time",
        "gauge",
        "[STABLE] Start time in unix timestamp for a pod.",
    );
    for pod in &pods {
        let _ = writeln!(
            page,
            "kube_pod_start_time{{namespace=\"{}\",pod=\"{}\",uid=\"{}\"}} {}",
            pod.namespace,
            pod.name,
            pod.uid,
            go_float((pod.created_s + 3) as f64)
        );
    }
    family_header(
        &mut page,
        "kube_pod_status_phase",
        "gauge",
        "[STABLE] The pods current phase.",
    );
    for pod in &pods {
        for phase in ["Pending", "Succeeded", "Failed", "Unknown", "Running"] {
            let _ = writeln!(
                page,
                "kube_pod_status_phase{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",phase=\"{phase}\"}} {}",
                pod.namespace,
                pod.name,
                pod.uid,
                u8::from(phase == "Running")
            );
        }
    }
    family_header(
        &mut page,
        "kube_pod_status_ready",
        "gauge",
        "[STABLE] Describes whether the pod is ready to serve requests.",
    );
    for pod in &pods {
        for condition in ["true", "false", "unknown"] {
            let _ = writeln!(
                page,
                "kube_pod_status_ready{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",condition=\"{condition}\"}} {}",
                pod.namespace,
                pod.name,
                pod.uid,
                u8::from(condition == "true")
            );
        }
    }
    family_header(
        &mut page,
        "kube_pod_container_info",
        "gauge",
        "[STABLE] Information about a container in a pod.",
    );
    for pod in &pods {
        for (container, image, id) in &pod.containers {
            let _ = writeln!(
                page,
                "kube_pod_container_info{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",container=\"{container}\",image_spec=\"{image}\",image=\"{image}\",image_id=\"docker-pullable://{image}@sha256:{id}\",container_id=\"containerd://{id}\"}} 1",
                pod.namespace, pod.name, pod.uid
            );
        }
    }
    for (name, help) in [
        (
            "kube_pod_container_status_restarts_total",
            "[STABLE] The number of container restarts per container.",
        ),
        (
            "kube_pod_container_status_running",
            "[STABLE] Describes whether the container is currently in running state.",
        ),
        (
            "kube_pod_container_status_ready",
            "[STABLE] Describes whether the containers readiness check succeeded.",
        ),
    ] {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        family_header(&mut page, name, kind, help);
        for pod in &pods {
            for (container, _, _) in &pod.containers {
                let value = if kind == "counter" { pod.restarts } else { 1 };
                let _ = writeln!(
                    page,
                    "{name}{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",container=\"{container}\"}} {value}",
                    pod.namespace, pod.name, pod.uid
                );
            }
        }
    }
    for (name, help) in [
        (
            "kube_pod_container_resource_requests",
            "The number of requested request resource by a container.",
        ),
        (
            "kube_pod_container_resource_limits",
            "The number of requested limit resource by a container.",
        ),
    ] {
        family_header(&mut page, name, "gauge", help);
        for pod in &pods {
            for (container, _, _) in &pod.containers {
                for (resource, unit, value) in [("cpu", "core", "0.25"), ("memory", "byte", "2.68435456e+08")]
                {
                    let _ = writeln!(
                        page,
                        "{name}{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",container=\"{container}\",node=\"{}\",resource=\"{resource}\",unit=\"{unit}\"}} {value}",
                        pod.namespace, pod.name, pod.uid, pod.node
                    );
                }
            }
        }
    }
    page
}

/// One pod of the kube-state-metrics-like page.
struct Pod {
    namespace: String,
    name: String,
    uid: String,
    node: String,
    host_ip: String,
    pod_ip: String,
    app: String,
    replica_set: String,
    template_hash: String,
    created_s: u64,
    restarts: u64,
    /// (container, image, id) of its two containers.
    containers: [(String, String, String); 2],
}

impl Pod {
    fn new(index: usize, random: &mut SplitMix) -> Pod {
        const TEAMS: [&str; 8] = [
            "payments", "search", "checkout", "identity", "catalog", "ads", "data", "platform",
        ];
        const STAGES: [&str; 5] = ["prod", "staging", "dev", "canary", "perf"];
        let namespace = format!(
            "{}-{}",
            TEAMS[index % TEAMS.len()],
            STAGES[(index / 8) % STAGES.len()]
        );
        let app = format!(
            "{}-{}",
            TEAMS[index % TEAMS.len()],
            ["api", "worker", "frontend", "indexer", "gateway"][index % 5]
        );
        let template_hash = format!("{:x}", random.next_u64() >> 28);
        let replica_set = format!("{app}-{template_hash}");
        let name = format!("{replica_set}-{}", &format!("{:x}", random.next_u64())[..5]);
        let uid = {
            let (a, b) = (random.next_u64(), random.next_u64());
            format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xfff,
                b >> 52,
                b & 0xffff_ffff_ffff
            )
        };
        let node_index = index % 60;
        let node = format!(
            "ip-10-0-{}-{}.eu-west-1.compute.internal",
            node_index / 8,
            10 + node_index
        );
        let host_ip = format!("10.0.{}.{}", node_index / 8, 10 + node_index);
        let pod_ip = format!(
            "10.{}.{}.{}",
            100 + node_index,
            (index / 250) % 256,
            index % 250 + 2
        );
        let mut container = |container: &str, image: String| {
            let id = format!(
                "{:016x}{:016x}{:016x}{:016x}",
                random.next_u64(),
                random.next_u64(),
                random.next_u64(),
                random.next_u64()
            );
            (container.to_owned(), image, id)
        };
        let containers = [
            container(
                &app,
                format!(
                    "registry.example.com/{}/{app}:v1.{}.{}",
                    TEAMS[index % TEAMS.len()],
                    index % 40,
                    index % 7
                ),
            ),
            container("istio-proxy", "docker.io/istio/proxyv2:1.20.3".to_owned()),
        ];
        Pod {
            namespace,
            name,
            uid,
            node,
            host_ip,
            pod_ip,
            app,
            replica_set,
            template_hash,
            created_s: 1_700_000_000 + random.next_u64() % 10_000_000,
            restarts: random.next_u64() % 4,
            containers,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture page

/// How one series' value moves with time (seconds since the fixture started).
#[derive(Debug, Clone, Copy)]
enum ValueModel {
    /// A counter of events arriving at about `per_second`, printed as an integer.
    Counter { start: f64, per_second: f64 },
    /// A counter of seconds (CPU time), printed with two decimals.
    SecondsCounter { start: f64, per_second: f64 },
    /// A gauge wandering up to `swing` (relative) around `level`, rounded to `step`.
    Gauge { level: f64, swing: f64, step: f64 },
    /// A histogram bucket (`fraction` of the observations at or under its bound; 1 for `+Inf`
    /// and `_count`) of a histogram observing about `per_second`.
    Bucket {
        start: f64,
        per_second: f64,
        fraction: f64,
    },
    /// A histogram's `_sum`: its observations times their `mean`.
    Sum { start: f64, per_second: f64, mean: f64 },
}

/// One series of the fixture page.
#[derive(Debug)]
struct FixtureSeries {
    /// `# HELP` and `# TYPE` lines before the first series of a family, else empty.
    preamble: String,
    /// The sample line up to its value: `name{labels} `.
    prefix: String,
    model: ValueModel,
    /// A phase in radians, so that series do not move in step.
    phase: f64,
}

/// The series every fixture target serves (the same names and labels on every target, as 50
/// replicas of one application; the scrapers add `instance`), and their values.
#[derive(Debug)]
struct FixtureModel {
    series: Vec<FixtureSeries>,
}

/// The upper bounds of `http_request_duration_seconds` and its kind (client_golang's defaults).
const LATENCY_BOUNDS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const SIZE_BOUNDS: [f64; 7] = [100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8];

impl FixtureModel {
    fn new() -> FixtureModel {
        let mut builder = ModelBuilder {
            series: Vec::with_capacity(SERIES_PER_TARGET),
            random: SplitMix(2000),
        };
        builder.runtime_families();
        let handlers = [
            "/api/v1/users",
            "/api/v1/users/:id",
            "/api/v1/orders",
            "/api/v1/orders/:id",
            "/api/v1/orders/:id/items",
            "/api/v1/carts/:id",
            "/api/v1/products",
            "/api/v1/products/:id",
            "/api/v1/search",
            "/api/v1/recommendations",
            "/api/v1/payments",
            "/api/v1/sessions",
            "/healthz",
            "/readyz",
            "/metrics",
            "/",
        ];
        let mut labels = Vec::new();
        for handler in handlers {
            for (method, code) in [
                ("GET", 200),
                ("GET", 404),
                ("GET", 500),
                ("POST", 201),
                ("POST", 400),
                ("POST", 500),
            ] {
                labels.push(format!(
                    "code=\"{code}\",handler=\"{handler}\",method=\"{method}\""
                ));
            }
        }
        builder.counters(
            "http_requests_total",
            "Total number of HTTP requests by status code, handler and method.",
            &labels,
            40.0,
        );
        let labels: Vec<String> = handlers
            .iter()
            .flat_map(|handler| {
                ["GET", "POST"].map(|method| format!("handler=\"{handler}\",method=\"{method}\""))
            })
            .collect();
        builder.histograms(
            "http_request_duration_seconds",
            "Latency of HTTP requests.",
            &labels,
            &LATENCY_BOUNDS,
            0.08,
        );
        let labels: Vec<String> = handlers
            .iter()
            .map(|handler| format!("handler=\"{handler}\""))
            .collect();
        builder.histograms(
            "http_response_size_bytes",
            "Size of HTTP responses.",
            &labels,
            &SIZE_BOUNDS,
            12_000.0,
        );
        let grpc_methods: Vec<(&str, &str)> = [
            (
                "inventory.v1.InventoryService",
                [
                    "GetStock",
                    "Reserve",
                    "Release",
                    "ListWarehouses",
                    "Watch",
                    "Adjust",
                ],
            ),
            (
                "pricing.v1.PricingService",
                [
                    "Quote",
                    "BatchQuote",
                    "GetRules",
                    "SetRule",
                    "DeleteRule",
                    "Explain",
                ],
            ),
            (
                "user.v1.UserService",
                [
                    "GetUser",
                    "ListUsers",
                    "CreateUser",
                    "UpdateUser",
                    "DeleteUser",
                    "Login",
                ],
            ),
            (
                "grpc.health.v1.Health",
                ["Check", "Watch", "List", "Probe", "Status", "Ping"],
            ),
        ]
        .iter()
        .flat_map(|(service, methods)| methods.map(|method| (*service, method)))
        .collect();
        let labels: Vec<String> = grpc_methods
            .iter()
            .flat_map(|(service, method)| {
                ["OK", "Canceled", "NotFound", "Unavailable", "DeadlineExceeded"].map(|code| {
                    format!("grpc_code=\"{code}\",grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"unary\"")
                })
            })
            .collect();
        builder.counters(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            &labels,
            25.0,
        );
        let labels: Vec<String> = grpc_methods
            .iter()
            .map(|(service, method)| {
                format!("grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"unary\"")
            })
            .collect();
        builder.histograms(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
            &labels,
            &LATENCY_BOUNDS,
            0.03,
        );
        let pools = ["primary", "replica-1", "replica-2", "analytics"];
        let labels: Vec<String> = pools
            .iter()
            .flat_map(|pool| {
                ["idle", "in_use", "max"].map(|state| format!("pool=\"{pool}\",state=\"{state}\""))
            })
            .collect();
        builder.gauges(
            "db_client_connections",
            "Database connections by state.",
            &labels,
            40.0,
            1.0,
        );
        let labels: Vec<String> = pools
            .iter()
            .flat_map(|pool| {
                ["select", "insert", "update", "delete"]
                    .map(|operation| format!("operation=\"{operation}\",pool=\"{pool}\""))
            })
            .collect();
        builder.histograms(
            "db_query_duration_seconds",
            "Duration of database queries.",
            &labels,
            &LATENCY_BOUNDS,
            0.012,
        );
        let caches = [
            "sessions", "users", "products", "prices", "carts", "search", "tokens", "config",
        ];
        let labels: Vec<String> = caches
            .iter()
            .flat_map(|cache| ["hit", "miss"].map(|result| format!("cache=\"{cache}\",result=\"{result}\"")))
            .collect();
        builder.counters("cache_requests_total", "Cache lookups by result.", &labels, 300.0);
        let labels: Vec<String> = caches.iter().map(|cache| format!("cache=\"{cache}\"")).collect();
        builder.gauges(
            "cache_entries",
            "Entries held by each cache.",
            &labels,
            50_000.0,
            1.0,
        );
        let partitions: Vec<String> = [
            "orders",
            "payments",
            "shipments",
            "inventory-events",
            "user-events",
            "audit-log",
        ]
        .iter()
        .flat_map(|topic| {
            (0..12).map(move |partition| format!("partition=\"{partition}\",topic=\"{topic}\""))
        })
        .collect();
        let labels: Vec<String> = partitions
            .iter()
            .map(|labels| format!("consumer_group=\"order-service\",{labels}"))
            .collect();
        builder.gauges(
            "kafka_consumer_lag_messages",
            "Messages between the committed offset and the end of the partition.",
            &labels,
            120.0,
            1.0,
        );
        builder.counters(
            "kafka_consumer_messages_consumed_total",
            "Messages consumed per partition.",
            &partitions,
            80.0,
        );
        // Worker pools fill the page to exactly SERIES_PER_TARGET series.
        let remaining = SERIES_PER_TARGET.saturating_sub(builder.series.len());
        let workers: Vec<String> = (0..remaining.div_ceil(2))
            .map(|worker| format!("pool=\"pool-{}\",worker=\"worker-{worker:03}\"", worker / 20))
            .collect();
        builder.counters(
            "worker_tasks_processed_total",
            "Tasks each worker has finished.",
            &workers,
            3.0,
        );
        let remaining = SERIES_PER_TARGET.saturating_sub(builder.series.len());
        builder.gauges(
            "worker_queue_length",
            "Tasks waiting for each worker.",
            &workers[..remaining],
            8.0,
            1.0,
        );
        assert_eq!(
            builder.series.len(),
            SERIES_PER_TARGET,
            "the fixture page has a fixed size"
        );
        FixtureModel {
            series: builder.series,
        }
    }

    /// The page of target `target` at `second`: the same labels on every target, values that
    /// depend on the target, the series and the second.
    fn page(&self, target: usize, second: u64) -> String {
        let mut page = String::with_capacity(self.series.len() * 110);
        self.write_page(&mut page, target, second);
        page
    }

    fn write_page(&self, page: &mut String, target: usize, second: u64) {
        // Replicas do not all take the same traffic.
        let load = 0.6 + 0.8 * (target as f64 / TARGETS as f64);
        let time = second as f64;
        for (index, series) in self.series.iter().enumerate() {
            page.push_str(&series.preamble);
            page.push_str(&series.prefix);
            // Traffic that ebbs and flows over ~3 minutes; its integral only grows.
            let wave = |per_second: f64| {
                per_second
                    * load
                    * (time + 30.0 * ((time / 30.0 + series.phase).sin() - series.phase.sin()) * 0.5)
            };
            let value = match series.model {
                ValueModel::Counter { start, per_second } => (start + wave(per_second)).floor(),
                ValueModel::SecondsCounter { start, per_second } => {
                    ((start + wave(per_second)) * 100.0).floor() / 100.0
                }
                ValueModel::Gauge { level, swing, step } => {
                    let noise = noise(target, index, second) - 0.5;
                    let value =
                        level * load * (1.0 + swing * ((time / 45.0 + series.phase).sin() + 0.4 * noise));
                    (value / step).round() * step
                }
                ValueModel::Bucket {
                    start,
                    per_second,
                    fraction,
                } => ((start + wave(per_second)) * fraction).floor(),
                ValueModel::Sum {
                    start,
                    per_second,
                    mean,
                } => {
                    let count = (start + wave(per_second)).floor();
                    // The mean moves a little with the load.
                    ((count * mean * (1.0 + 0.05 * (time / 20.0 + series.phase).sin())) * 1e4).round() / 1e4
                }
            };
            page.push_str(&go_float(value));
            page.push('\n');
        }
    }
}

/// Builds the fixture's series, family by family.
struct ModelBuilder {
    series: Vec<FixtureSeries>,
    random: SplitMix,
}

impl ModelBuilder {
    /// A series with a phase of its own.
    fn push(&mut self, preamble: String, prefix: String, model: ValueModel) {
        let phase = self.random.unit() * std::f64::consts::TAU;
        self.push_with_phase(preamble, prefix, model, phase);
    }

    /// A series moving in step with others of the same `phase` (a histogram's buckets, sum
    /// and count, so that buckets stay cumulative).
    fn push_with_phase(&mut self, preamble: String, prefix: String, model: ValueModel, phase: f64) {
        self.series.push(FixtureSeries {
            preamble,
            prefix,
            model,
            phase,
        });
    }

    fn preamble(name: &str, kind: &str, help: &str) -> String {
        format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")
    }

    fn prefix(name: &str, labels: &str) -> String {
        if labels.is_empty() {
            format!("{name} ")
        } else {
            format!("{name}{{{labels}}} ")
        }
    }

    /// A counter family, one series per label set, each at a rate around `per_second`.
    fn counters(&mut self, name: &str, help: &str, label_sets: &[String], per_second: f64) {
        let mut preamble = Self::preamble(name, "counter", help);
        for labels in label_sets {
            // Many counters barely move (errors, rare paths), a few carry most of the traffic.
            let rate = per_second * self.random.unit().powi(3) * 3.0;
            let start = (self.random.unit() * rate * 86_400.0).floor();
            let model = ValueModel::Counter {
                start,
                per_second: rate,
            };
            self.push(std::mem::take(&mut preamble), Self::prefix(name, labels), model);
        }
    }

    /// A gauge family around `level`, in multiples of `step`.
    fn gauges(&mut self, name: &str, help: &str, label_sets: &[String], level: f64, step: f64) {
        let mut preamble = Self::preamble(name, "gauge", help);
        for labels in label_sets {
            let model = ValueModel::Gauge {
                level: level * (0.2 + 1.6 * self.random.unit()),
                swing: 0.3,
                step,
            };
            self.push(std::mem::take(&mut preamble), Self::prefix(name, labels), model);
        }
    }

    /// A classic histogram family: buckets with `le` (last label, as client_golang writes it),
    /// `+Inf`, `_sum` and `_count` per label set; observations with a log-normal-like spread
    /// around `typical`.
    fn histograms(&mut self, name: &str, help: &str, label_sets: &[String], bounds: &[f64], typical: f64) {
        let mut preamble = Self::preamble(name, "histogram", help);
        for labels in label_sets {
            let per_second = 20.0 * self.random.unit().powi(2) + 0.05;
            let start = (self.random.unit() * per_second * 86_400.0).floor();
            let median = typical * (0.3 + 1.4 * self.random.unit());
            let phase = self.random.unit() * std::f64::consts::TAU;
            let separator = if labels.is_empty() { "" } else { "," };
            for bound in bounds {
                // A logistic in log space: the share of observations at or under `bound`.
                let fraction = 1.0 / (1.0 + (-(bound / median).ln() * 1.7).exp());
                let le = go_float(*bound);
                let model = ValueModel::Bucket {
                    start,
                    per_second,
                    fraction: (fraction * 1e3).floor() / 1e3,
                };
                let prefix = format!("{name}_bucket{{{labels}{separator}le=\"{le}\"}} ");
                self.push_with_phase(std::mem::take(&mut preamble), prefix, model, phase);
            }
            let all = ValueModel::Bucket {
                start,
                per_second,
                fraction: 1.0,
            };
            let prefix = format!("{name}_bucket{{{labels}{separator}le=\"+Inf\"}} ");
            self.push_with_phase(String::new(), prefix, all, phase);
            let sum = ValueModel::Sum {
                start,
                per_second,
                mean: median * 1.3,
            };
            let prefix = Self::prefix(&format!("{name}_sum"), labels);
            self.push_with_phase(String::new(), prefix, sum, phase);
            let prefix = Self::prefix(&format!("{name}_count"), labels);
            self.push_with_phase(String::new(), prefix, all, phase);
        }
    }

    /// What client_golang's Go and process collectors export.
    fn runtime_families(&mut self) {
        let gauges: [(&str, &str, f64, f64); 10] = [
            (
                "go_goroutines",
                "Number of goroutines that currently exist.",
                180.0,
                1.0,
            ),
            ("go_threads", "Number of OS threads created.", 14.0, 1.0),
            (
                "go_memstats_alloc_bytes",
                "Number of bytes allocated and still in use.",
                4.8e7,
                8.0,
            ),
            (
                "go_memstats_heap_inuse_bytes",
                "Number of heap bytes that are in use.",
                5.6e7,
                8192.0,
            ),
            (
                "go_memstats_heap_objects",
                "Number of allocated objects.",
                310_000.0,
                1.0,
            ),
            (
                "go_memstats_sys_bytes",
                "Number of bytes obtained from system.",
                9.1e7,
                8192.0,
            ),
            (
                "go_memstats_next_gc_bytes",
                "Number of heap bytes when next garbage collection will take place.",
                8.2e7,
                8.0,
            ),
            ("process_open_fds", "Number of open file descriptors.", 96.0, 1.0),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                1.1e8,
                4096.0,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                1.9e9,
                4096.0,
            ),
        ];
        for (name, help, level, step) in gauges {
            let model = ValueModel::Gauge {
                level,
                swing: 0.05,
                step,
            };
            self.push(Self::preamble(name, "gauge", help), Self::prefix(name, ""), model);
        }
        for (name, help, per_second) in [
            (
                "go_memstats_alloc_bytes_total",
                "Total number of bytes allocated, even if freed.",
                2.5e7,
            ),
            ("go_memstats_mallocs_total", "Total number of mallocs.", 180_000.0),
            ("go_memstats_frees_total", "Total number of frees.", 179_000.0),
        ] {
            let model = ValueModel::Counter {
                start: per_second * 86_400.0,
                per_second,
            };
            self.push(
                Self::preamble(name, "counter", help),
                Self::prefix(name, ""),
                model,
            );
        }
        let model = ValueModel::SecondsCounter {
            start: 5_400.0,
            per_second: 0.35,
        };
        let name = "process_cpu_seconds_total";
        let preamble = Self::preamble(
            name,
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        self.push(preamble, Self::prefix(name, ""), model);
        // A timestamp: it moves like a counter of seconds.
        let name = "go_memstats_last_gc_time_seconds";
        let model = ValueModel::SecondsCounter {
            start: 1.7e9,
            per_second: 1.0,
        };
        let preamble = Self::preamble(
            name,
            "gauge",
            "Number of seconds since 1970 of last garbage collection.",
        );
        self.push(preamble, Self::prefix(name, ""), model);
        let name = "go_info";
        let model = ValueModel::Gauge {
            level: 1.0,
            swing: 0.0,
            step: 1.0,
        };
        let preamble = Self::preamble(name, "gauge", "Information about the Go environment.");
        self.push(preamble, Self::prefix(name, "version=\"go1.21.6\""), model);
    }
}

/// A deterministic number in [0, 1) for a target, a series and a second.
fn noise(target: usize, series: usize, second: u64) -> f64 {
    SplitMix(((target as u64) << 48) ^ ((series as u64) << 24) ^ second).unit()
}

/// A float as client_golang writes it: Go's `strconv.FormatFloat(v, 'g', -1, 64)`, the
/// shortest representation, with an exponent of at least two digits (`2.4539136e+07`) when the
/// decimal exponent is below -4 or at least 6.
fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let decimal_exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&decimal_exponent) {
        return format!("{value}");
    }
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// Writes the `# HELP` and `# TYPE` lines of a family.
fn family_header(page: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

// ---------------------------------------------------------------------------------------------
// The fixture server

/// Every target's page for the current second, plain and gzipped.
#[derive(Debug, Default)]
struct Pages {
    plain: Vec<Vec<u8>>,
    gzip: Vec<Vec<u8>>,
}

/// What the server reads pages from, and what the page builder reports.
#[derive(Debug, Default)]
struct PageBoard {
    current: RwLock<Arc<Pages>>,
    plain_bytes: AtomicU64,
    gzip_bytes: AtomicU64,
    build_micros: AtomicU64,
}

impl PageBoard {
    fn current(&self) -> Arc<Pages> {
        Arc::clone(&self.current.read().unwrap_or_else(|poison| poison.into_inner()))
    }

    fn publish(&self, pages: Pages) {
        *self.current.write().unwrap_or_else(|poison| poison.into_inner()) = Arc::new(pages);
    }
}

/// Requests served, by client and encoding.
#[derive(Debug, Default)]
struct ServedStats {
    /// [client][encoding]: client 0 obs-appliance, 1 Prometheus, 2 other; encoding 0 gzip,
    /// 1 identity.
    requests: [[AtomicU64; 2]; 3],
}

#[derive(Debug, Clone, Copy, Default)]
struct Served {
    gzip: u64,
    identity: u64,
}

impl Served {
    fn since(self, earlier: Served) -> Served {
        Served {
            gzip: self.gzip - earlier.gzip,
            identity: self.identity - earlier.identity,
        }
    }
}

impl ServedStats {
    fn count(&self, user_agent: &str, gzip: bool) {
        let client = if user_agent.starts_with("obs-appliance/") {
            0
        } else if user_agent.starts_with("Prometheus/") {
            1
        } else {
            2
        };
        self.requests[client][usize::from(!gzip)].fetch_add(1, Ordering::Relaxed);
    }

    /// obs-appliance, Prometheus, other.
    fn snapshot(&self) -> [Served; 3] {
        std::array::from_fn(|client| Served {
            gzip: self.requests[client][0].load(Ordering::Relaxed),
            identity: self.requests[client][1].load(Ordering::Relaxed),
        })
    }
}

/// 50 scrape targets on 127.0.0.1, served from this process until dropped.
struct Fixture {
    ports: Vec<u16>,
    board: Arc<PageBoard>,
    stats: Arc<ServedStats>,
    stop: Arc<AtomicBool>,
    stop_server: Option<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

/// The longest a connection may sit idle, and the most requests it may carry.
const IDLE_CONNECTION: Duration = Duration::from_secs(60);
const MAX_REQUESTS_PER_CONNECTION: usize = 1_000_000;
/// The longest the fixture runs (the page builder's bound).
const MAX_FIXTURE_SECONDS: u64 = 24 * 3600;

impl Fixture {
    fn start() -> Fixture {
        let listeners: Vec<std::net::TcpListener> = (0..TARGETS)
            .map(|_| {
                let listener = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap_or_else(|err| panic!("fixture listener: {err}"));
                listener
                    .set_nonblocking(true)
                    .unwrap_or_else(|err| panic!("fixture listener: {err}"));
                listener
            })
            .collect();
        let ports = listeners
            .iter()
            .map(|listener| listener.local_addr().map(|address| address.port()).unwrap_or(0))
            .collect();
        let board = Arc::new(PageBoard::default());
        let stats = Arc::new(ServedStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let model = FixtureModel::new();
        let started = Instant::now();
        // The pages of second 0, before anyone asks.
        board.publish(build_pages(&model, 0, &board));
        let builder = {
            let (board, stop) = (Arc::clone(&board), Arc::clone(&stop));
            std::thread::spawn(move || {
                for second in 1..MAX_FIXTURE_SECONDS {
                    let pages = build_pages(&model, second, &board);
                    let due = started + Duration::from_secs(second);
                    // Sleep in short steps so that a stop is seen promptly.
                    while Instant::now() < due {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep((due - Instant::now()).min(Duration::from_millis(100)));
                    }
                    board.publish(pages);
                }
            })
        };
        let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = {
            let (board, stats) = (Arc::clone(&board), Arc::clone(&stats));
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|err| panic!("fixture runtime: {err}"));
                runtime.block_on(async move {
                    for (target, listener) in listeners.into_iter().enumerate() {
                        let listener = tokio::net::TcpListener::from_std(listener)
                            .unwrap_or_else(|err| panic!("fixture listener: {err}"));
                        let (board, stats) = (Arc::clone(&board), Arc::clone(&stats));
                        tokio::spawn(accept_loop(listener, target, board, stats));
                    }
                    let _ = stopped.await;
                });
                // Dropping the runtime here cancels every connection.
            })
        };
        Fixture {
            ports,
            board,
            stats,
            stop,
            stop_server: Some(stop_server),
            threads: vec![builder, server],
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(stop_server) = self.stop_server.take() {
            let _ = stop_server.send(());
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Builds and compresses every target's page of `second`.
fn build_pages(model: &FixtureModel, second: u64, board: &PageBoard) -> Pages {
    let started = Instant::now();
    let mut pages = Pages::default();
    let mut page = String::with_capacity(SERIES_PER_TARGET * 120);
    for target in 0..TARGETS {
        page.clear();
        model.write_page(&mut page, target, second);
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::with_capacity(page.len() / 4), flate2::Compression::fast());
        encoder
            .write_all(page.as_bytes())
            .unwrap_or_else(|err| panic!("gzip into memory: {err}"));
        let gzipped = encoder
            .finish()
            .unwrap_or_else(|err| panic!("gzip into memory: {err}"));
        pages.gzip.push(gzipped);
        pages.plain.push(page.as_bytes().to_vec());
    }
    let plain: usize = pages.plain.iter().map(Vec::len).sum();
    let gzip: usize = pages.gzip.iter().map(Vec::len).sum();
    board.plain_bytes.store(plain as u64, Ordering::Relaxed);
    board.gzip_bytes.store(gzip as u64, Ordering::Relaxed);
    board
        .build_micros
        .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    pages
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    target: usize,
    board: Arc<PageBoard>,
    stats: Arc<ServedStats>,
) {
    // Bounded by the runtime: dropped when the fixture stops.
    while let Ok((stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            target,
            Arc::clone(&board),
            Arc::clone(&stats),
        ));
    }
}

/// Serves GET /metrics on one keep-alive connection.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    target: usize,
    board: Arc<PageBoard>,
    stats: Arc<ServedStats>,
) {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        // The request line, then headers until an empty line; at most 100 lines.
        let mut request_line = String::new();
        let mut gzip = false;
        let mut close = false;
        let mut user_agent = String::new();
        let mut complete = false;
        for index in 0..100 {
            line.clear();
            let read = tokio::time::timeout(IDLE_CONNECTION, stream.read_line(&mut line)).await;
            let Ok(Ok(length)) = read else {
                return;
            };
            if length == 0 || line.len() > 16 << 10 {
                return;
            }
            let text = line.trim_end();
            if index == 0 {
                request_line = text.to_owned();
                continue;
            }
            if text.is_empty() {
                complete = true;
                break;
            }
            let Some((name, value)) = text.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("accept-encoding") {
                gzip = value.split(',').any(|coding| {
                    coding
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .eq_ignore_ascii_case("gzip")
                });
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("user-agent") {
                user_agent = value.to_owned();
            }
        }
        if !complete {
            return;
        }
        let mut parts = request_line.split(' ');
        let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let path = path.split('?').next().unwrap_or_default();
        let pages = board.current();
        let (status, content_type, encoding, body): (&str, &str, Option<&str>, &[u8]) =
            if method != "GET" || path != "/metrics" {
                (
                    "404 Not Found",
                    "text/plain; charset=utf-8",
                    None,
                    b"404 page not found\n",
                )
            } else if gzip {
                stats.count(&user_agent, true);
                let body = pages.gzip.get(target).map_or(&[][..], Vec::as_slice);
                ("200 OK", "text/plain; version=0.0.4", Some("gzip"), body)
            } else {
                stats.count(&user_agent, false);
                let body = pages.plain.get(target).map_or(&[][..], Vec::as_slice);
                ("200 OK", "text/plain; version=0.0.4", None, body)
            };
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(encoding) = encoding {
            let _ = write!(head, "Content-Encoding: {encoding}\r\n");
        }
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let writer = stream.get_mut();
        if writer.write_all(head.as_bytes()).await.is_err() || writer.write_all(body).await.is_err() {
            return;
        }
        if close {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scrapers

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scraper {
    Appliance,
    Prometheus,
}

impl Scraper {
    fn name(self) -> &'static str {
        match self {
            Scraper::Appliance => "obs-appliance",
            Scraper::Prometheus => "Prometheus",
        }
    }

    /// Its own counter of samples taken in from scrapes.
    fn samples_metric(self) -> &'static str {
        match self {
            Scraper::Appliance => "obs_scrape_samples_stored_total",
            Scraper::Prometheus => "prometheus_tsdb_head_samples_appended_total",
        }
    }

    /// The index of its requests in [`ServedStats::snapshot`].
    fn client_index(self) -> usize {
        match self {
            Scraper::Appliance => 0,
            Scraper::Prometheus => 1,
        }
    }
}

/// The prometheus.yml `global` and `scrape_configs` both scrapers get.
fn scrape_configs_yaml(ports: &[u16]) -> String {
    let targets: Vec<String> = ports.iter().map(|port| format!("\"127.0.0.1:{port}\"")).collect();
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}

/// What starting and measuring a scraper needs.
struct Launch {
    appliance_binary: PathBuf,
    prometheus_binary: PathBuf,
    scrape_configs: String,
    warmup: Duration,
    window: Duration,
}

/// One scraper's figures over a measured window.
#[derive(Debug)]
struct Measurement {
    scraper: Scraper,
    cpu: Duration,
    window: Duration,
    peak_rss_bytes: u64,
    final_rss_bytes: u64,
    /// Threads at the end.
    threads: u64,
    /// Samples its own counter says it took in during the window.
    samples: Option<f64>,
    /// Requests the fixture served it during the window.
    served: Served,
    /// `sum(up)` and `sum(scrape_samples_scraped)` at the end.
    up: Option<f64>,
    scraped: Option<f64>,
    /// CPU time of this process (the fixture) during the window.
    fixture_cpu: Duration,
    load_before: String,
    load_after: String,
}

impl Launch {
    /// Starts `scraper` with its data and configuration under `dir/<name>`; waits until ready.
    fn start(&self, scraper: Scraper, dir: &Path) -> Server {
        let dir = dir.join(scraper.name());
        std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()));
        let port = free_port().unwrap_or_else(|| panic!("no free port"));
        let command = match scraper {
            Scraper::Appliance => {
                let config = dir.join("appliance.yaml");
                let text = format!(
                    "server:\n  listen: 127.0.0.1:{port}\nlog:\n  level: warn\n{}",
                    self.scrape_configs
                );
                std::fs::write(&config, text).unwrap_or_else(|err| panic!("{}: {err}", config.display()));
                let mut command = Command::new(&self.appliance_binary);
                command
                    .arg("serve")
                    .arg("--config")
                    .arg(&config)
                    .arg("--data-dir")
                    .arg(dir.join("data"));
                command
            }
            Scraper::Prometheus => {
                let config = dir.join("prometheus.yml");
                std::fs::write(&config, &self.scrape_configs)
                    .unwrap_or_else(|err| panic!("{}: {err}", config.display()));
                let mut command = Command::new(&self.prometheus_binary);
                command
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg("--log.level=error");
                command
            }
        };
        Server::launch(scraper.name(), command, port, "/-/ready")
            .unwrap_or_else(|| panic!("{} did not start", scraper.name()))
    }

    /// Waits out the warm-up, then measures every server over the window (at the same time).
    /// `perf`: record the appliance (output file, call-graph mode) during the window.
    fn measure(
        &self,
        servers: &[Server],
        fixture: &Fixture,
        perf: Option<(PathBuf, String)>,
    ) -> Vec<Measurement> {
        let scrapers: Vec<Scraper> = servers
            .iter()
            .map(|server| {
                if server.name() == Scraper::Appliance.name() {
                    Scraper::Appliance
                } else {
                    Scraper::Prometheus
                }
            })
            .collect();
        let names: Vec<&str> = servers.iter().map(Server::name).collect();
        let agent = http_agent(Duration::from_secs(10));
        // Prometheus applies discovered targets at most every 5 s: the warm-up starts once
        // every scraper has scraped every target.
        let up_query = format!("sum(up{{job=\"{JOB}\"}})");
        let waiting = Instant::now();
        while waiting.elapsed() < Duration::from_secs(60)
            && !servers.iter().all(|server| {
                instant_query_value(&agent, server.base_url(), &up_query) == Some(TARGETS as f64)
            })
        {
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!(
            "{}: scraping every target after {:.1} s; warming up {} s, then measuring {} s",
            names.join(" + "),
            waiting.elapsed().as_secs_f64(),
            self.warmup.as_secs(),
            self.window.as_secs()
        );
        std::thread::sleep(self.warmup);
        let counter = |server: &Server, scraper: Scraper| {
            exposed_metric_sum(
                &agent,
                &format!("{}/metrics", server.base_url()),
                scraper.samples_metric(),
            )
        };
        let load_before = load_average();
        let own_pid = std::process::id();
        let fixture_cpu_before = obs_bench::cpu_time(own_pid).unwrap_or_default();
        let served_before = fixture.stats.snapshot();
        let before: Vec<(Option<Duration>, Option<f64>)> = servers
            .iter()
            .zip(&scrapers)
            .map(|(server, scraper)| (server.cpu_time(), counter(server, *scraper)))
            .collect();
        let started = Instant::now();
        let recording = perf.and_then(|(path, call_graph)| {
            let appliance = servers
                .iter()
                .find(|server| server.name() == Scraper::Appliance.name())?;
            PerfRecording::start(appliance.pid(), &path, &call_graph)
        });
        std::thread::sleep(self.window.saturating_sub(started.elapsed()));
        let window = started.elapsed();
        let after: Vec<(Option<Duration>, Option<f64>)> = servers
            .iter()
            .zip(&scrapers)
            .map(|(server, scraper)| (server.cpu_time(), counter(server, *scraper)))
            .collect();
        let served_after = fixture.stats.snapshot();
        let fixture_cpu = obs_bench::cpu_time(own_pid)
            .unwrap_or_default()
            .saturating_sub(fixture_cpu_before);
        let load_after = load_average();
        if recording.is_some() {
            println!(
                "(obs-appliance was recorded by perf during this window: its CPU figure includes perf's overhead)"
            );
        }
        drop(recording);
        servers
            .iter()
            .zip(&scrapers)
            .zip(before.iter().zip(&after))
            .map(
                |((server, scraper), ((cpu_before, samples_before), (cpu_after, samples_after)))| {
                    let base = server.base_url();
                    let client = scraper.client_index();
                    if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", server.pid())) {
                        let rss: Vec<String> = status
                            .lines()
                            .filter(|line| line.starts_with("Rss"))
                            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                            .collect();
                        eprintln!("{}: {}", scraper.name(), rss.join(", "));
                    }
                    Measurement {
                        scraper: *scraper,
                        cpu: cpu_after
                            .zip(*cpu_before)
                            .map(|(after, before)| after.saturating_sub(before))
                            .unwrap_or_default(),
                        window,
                        peak_rss_bytes: server.peak_rss_bytes().unwrap_or(0),
                        final_rss_bytes: server.rss_bytes().unwrap_or(0),
                        threads: obs_bench::thread_count(server.pid()).unwrap_or(0),
                        samples: samples_after
                            .zip(*samples_before)
                            .map(|(after, before)| after - before),
                        served: served_after[client].since(served_before[client]),
                        up: instant_query_value(&agent, base, &up_query),
                        scraped: instant_query_value(
                            &agent,
                            base,
                            &format!("sum(scrape_samples_scraped{{job=\"{JOB}\"}})"),
                        ),
                        fixture_cpu,
                        load_before: load_before.clone(),
                        load_after: load_after.clone(),
                    }
                },
            )
            .collect()
    }
}

/// CPU time per sample ingested: the fair comparison when a scraper fell behind and skipped
/// scrapes.
fn micros_per_sample(measurement: &Measurement) -> Option<f64> {
    let samples = measurement.samples.filter(|samples| *samples > 0.0)?;
    Some(measurement.cpu.as_secs_f64() * 1e6 / samples)
}

fn print_measurements(title: &str, measured: &[Measurement]) {
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let optional = |value: Option<f64>| value.map_or_else(|| "?".to_owned(), |value| format!("{value:.0}"));
    println!("### {title}");
    println!();
    println!(
        "| process | CPU s | % of a core | CPU µs/sample | peak RSS MB | final RSS MB | threads | samples ingested | samples/s | requests served (gzip) | sum(up) | sum(scrape_samples_scraped) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for measurement in measured {
        let seconds = measurement.window.as_secs_f64();
        println!(
            "| {} | {:.1} | {:.1} | {} | {:.0} | {:.0} | {} | {} | {} | {} ({}) | {} | {} |",
            measurement.scraper.name(),
            measurement.cpu.as_secs_f64(),
            100.0 * measurement.cpu.as_secs_f64() / seconds,
            micros_per_sample(measurement).map_or_else(|| "?".to_owned(), |micros| format!("{micros:.2}")),
            mb(measurement.peak_rss_bytes),
            mb(measurement.final_rss_bytes),
            measurement.threads,
            optional(measurement.samples),
            measurement
                .samples
                .map_or_else(|| "?".to_owned(), |samples| human(samples / seconds)),
            measurement.served.gzip + measurement.served.identity,
            measurement.served.gzip,
            optional(measurement.up),
            optional(measurement.scraped),
        );
    }
    let find = |scraper: Scraper| measured.iter().find(|measurement| measurement.scraper == scraper);
    if let (Some(ours), Some(theirs)) = (find(Scraper::Appliance), find(Scraper::Prometheus)) {
        let cpu_ratio = ours.cpu.as_secs_f64() / theirs.cpu.as_secs_f64();
        let peak_ratio = ours.peak_rss_bytes as f64 / theirs.peak_rss_bytes as f64;
        let final_ratio = ours.final_rss_bytes as f64 / theirs.final_rss_bytes as f64;
        let samples_ratio = ours
            .samples
            .zip(theirs.samples)
            .map(|(ours, theirs)| ours / theirs);
        println!(
            "| **obs-appliance / Prometheus** | **{cpu_ratio:.2}x** | | {} | **{peak_ratio:.2}x** | **{final_ratio:.2}x** | | {} | | | | |",
            micros_per_sample(ours)
                .zip(micros_per_sample(theirs))
                .map_or_else(
                    || "?".to_owned(),
                    |(ours, theirs)| format!("{:.2}x", ours / theirs)
                ),
            samples_ratio.map_or_else(|| "?".to_owned(), |ratio| format!("{ratio:.3}x"))
        );
        println!();
        let verdict = |what: &str, ratio: f64| {
            if ratio <= 0.5 {
                format!("{what} {ratio:.2}x: met")
            } else {
                format!(
                    "{what} {ratio:.2}x: MISSED (needs {:.0} % less to reach 0.5x)",
                    100.0 * (1.0 - 0.5 / ratio)
                )
            }
        };
        println!(
            "target <= 0.5x Prometheus: {}; {}",
            verdict("CPU", cpu_ratio),
            verdict("peak RSS", peak_ratio)
        );
    }
    println!();
    for measurement in measured {
        println!(
            "{}: window {:.1} s, fixture (this process) used {:.1} CPU s, machine load average (1 min) before / after: {} / {} (2 cores)",
            measurement.scraper.name(),
            measurement.window.as_secs_f64(),
            measurement.fixture_cpu.as_secs_f64(),
            measurement.load_before,
            measurement.load_after
        );
    }
    println!();
}
