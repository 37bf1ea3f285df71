//! Shared helpers of the benchmarks in `benches/benches/`.
//!
//! Every benchmark prints a Markdown table with the appliance's figure beside its reference
//! measured in the same run on the same machine (the raw disk, VictoriaMetrics, Prometheus),
//! and the ratio between them: absolute numbers on shared machines are noisy, ratios much less.

use std::time::Duration;

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
