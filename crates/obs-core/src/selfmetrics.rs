//! The process-wide registry of self-metrics, and the process collector.
//!
//! Metrics are defined next to the code they measure, named
//! `obs_<subsystem>_<name>_<unit>[_total]`, and registered here through [`SelfRegistry`]. The
//! `process_*` series follow the names every Prometheus client library uses, so the usual
//! dashboards work.

use std::sync::OnceLock;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The registry all self-metrics live in.
#[derive(Debug)]
pub struct SelfRegistry {
    registry: Registry,
}

/// The process-wide [`SelfRegistry`].
pub fn registry() -> &'static SelfRegistry {
    static REGISTRY: OnceLock<SelfRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = Registry::new();
        if let Err(err) = registry.register(Box::new(ProcessCollector::new())) {
            tracing::error!(error = %err, "cannot register the process collector");
        }
        SelfRegistry { registry }
    })
}

impl SelfRegistry {
    /// Registers a collector, logging (not failing) on a name clash, which is a programming
    /// error caught by the tests.
    pub fn register(&self, collector: Box<dyn Collector>) {
        if let Err(err) = self.registry.register(collector) {
            tracing::error!(error = %err, "cannot register a self-metric");
        }
    }

    /// Creates and registers a counter family.
    pub fn int_counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let metric = IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|err| panic!("invalid self-metric {name}: {err}"));
        self.register(Box::new(metric.clone()));
        metric
    }

    /// Creates and registers a counter.
    pub fn int_counter(&self, name: &str, help: &str) -> IntCounter {
        let metric =
            IntCounter::new(name, help).unwrap_or_else(|err| panic!("invalid self-metric {name}: {err}"));
        self.register(Box::new(metric.clone()));
        metric
    }

    /// Creates and registers a gauge family.
    pub fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let metric = IntGaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|err| panic!("invalid self-metric {name}: {err}"));
        self.register(Box::new(metric.clone()));
        metric
    }

    /// Creates and registers a gauge.
    pub fn int_gauge(&self, name: &str, help: &str) -> IntGauge {
        let metric =
            IntGauge::new(name, help).unwrap_or_else(|err| panic!("invalid self-metric {name}: {err}"));
        self.register(Box::new(metric.clone()));
        metric
    }

    /// Creates and registers a histogram family.
    pub fn histogram_vec(&self, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
        let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
            .unwrap_or_else(|err| panic!("invalid self-metric {name}: {err}"));
        self.register(Box::new(metric.clone()));
        metric
    }

    /// Every self-metric in the Prometheus text exposition format 0.0.4.
    pub fn encode_text(&self) -> String {
        let families = self.registry.gather();
        let mut buffer = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&families, &mut buffer) {
            tracing::error!(error = %err, "cannot encode self-metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// The content type of [`SelfRegistry::encode_text`].
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Reads `process_*` metrics from `/proc/self` at every scrape.
struct ProcessCollector {
    cpu_seconds: prometheus::Counter,
    resident_bytes: Gauge,
    virtual_bytes: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    start_time_seconds: Gauge,
    threads: Gauge,
    descs: Vec<Desc>,
}

impl ProcessCollector {
    fn new() -> ProcessCollector {
        let cpu_seconds = prometheus::Counter::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        )
        .unwrap_or_else(|err| panic!("{err}"));
        let gauge = |name: &str, help: &str| Gauge::new(name, help).unwrap_or_else(|err| panic!("{err}"));
        let resident_bytes = gauge("process_resident_memory_bytes", "Resident memory size in bytes.");
        let virtual_bytes = gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
        let open_fds = gauge("process_open_fds", "Number of open file descriptors.");
        let max_fds = gauge("process_max_fds", "Maximum number of open file descriptors.");
        let start_time_seconds = gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
        );
        let threads = gauge("process_threads", "Number of OS threads in the process.");
        let mut descs = Vec::new();
        descs.extend(cpu_seconds.desc().into_iter().cloned());
        for metric in [
            &resident_bytes,
            &virtual_bytes,
            &open_fds,
            &max_fds,
            &start_time_seconds,
            &threads,
        ] {
            descs.extend(metric.desc().into_iter().cloned());
        }
        ProcessCollector {
            cpu_seconds,
            resident_bytes,
            virtual_bytes,
            open_fds,
            max_fds,
            start_time_seconds,
            threads,
            descs,
        }
    }

    fn refresh(&self) {
        let ticks_per_second = sysconf(libc::_SC_CLK_TCK).unwrap_or(100) as f64;
        let page_size = sysconf(libc::_SC_PAGESIZE).unwrap_or(4096) as f64;
        if let Some(stat) = ProcStat::read() {
            let cpu = (stat.utime_ticks + stat.stime_ticks) as f64 / ticks_per_second;
            let delta = cpu - self.cpu_seconds.get();
            if delta > 0.0 {
                self.cpu_seconds.inc_by(delta);
            }
            self.resident_bytes.set(stat.rss_pages as f64 * page_size);
            self.virtual_bytes.set(stat.vsize_bytes as f64);
            self.threads.set(stat.threads as f64);
            if let Some(boot_time) = boot_time_seconds() {
                self.start_time_seconds
                    .set(boot_time as f64 + stat.start_ticks as f64 / ticks_per_second);
            }
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(entries.count() as f64);
        }
        if let Some(max) = max_open_files() {
            self.max_fds.set(max as f64);
        }
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        let mut families = self.cpu_seconds.collect();
        for metric in [
            &self.resident_bytes,
            &self.virtual_bytes,
            &self.open_fds,
            &self.max_fds,
            &self.start_time_seconds,
            &self.threads,
        ] {
            families.extend(metric.collect());
        }
        families
    }
}

/// The fields of `/proc/self/stat` the collector reads.
struct ProcStat {
    utime_ticks: u64,
    stime_ticks: u64,
    threads: u64,
    start_ticks: u64,
    vsize_bytes: u64,
    rss_pages: u64,
}

impl ProcStat {
    fn read() -> Option<ProcStat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name is in parentheses and may contain spaces; fields follow the last ')'.
        let after_name = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // `fields[0]` is field 3 (state) of proc(5).
        let field = |number: usize| -> Option<u64> { fields.get(number - 3)?.parse().ok() };
        Some(ProcStat {
            utime_ticks: field(14)?,
            stime_ticks: field(15)?,
            threads: field(20)?,
            start_ticks: field(22)?,
            vsize_bytes: field(23)?,
            rss_pages: field(24)?,
        })
    }
}

fn boot_time_seconds() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

fn max_open_files() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[allow(unsafe_code)]
fn sysconf(name: libc::c_int) -> Option<i64> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let value = unsafe { libc::sysconf(name) };
    (value > 0).then_some(value as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_exposed() {
        let text = registry().encode_text();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                text.contains(&format!("\n{name} ")),
                "{name} missing from:\n{text}"
            );
        }
        let rss_line = text
            .lines()
            .find(|line| line.starts_with("process_resident_memory_bytes "))
            .unwrap();
        let rss: f64 = rss_line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(rss > 1_000_000.0, "{rss_line}");
    }
}
