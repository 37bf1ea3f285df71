//! Shared vocabulary and storage primitives of obs-appliance.
//!
//! Every signal (metrics, logs, traces) stands on the same few mechanisms, and they live here so
//! that there is exactly one of each:
//!
//! - [`wal::Wal`]: a segmented write-ahead log with checksummed records and group commit.
//!   `append` returns only once the record is durable under the configured [`wal::FsyncPolicy`].
//! - [`partition`]: UTC day partitions per [`Signal`] and the [`partition::RetentionManager`]
//!   that drops whole partitions by age and by disk budget, oldest first.
//! - [`limits`]: capped decompression (gzip, deflate, snappy, zstd) that every decoder uses, so
//!   a decompression bomb is a "too large" error instead of an out-of-memory.
//! - [`error::ErrorKind`]: the one error classification the API layer maps to HTTP and gRPC.
//! - [`otlp`]: OpenTelemetry attribute values as text, for every signal's OTLP ingest.
//! - [`units`]: Prometheus-style durations (`15d`, `1h30m`) and byte sizes (`512MiB`).
//! - [`time`]: millisecond timestamps and UTC days.
//! - [`series`]: the Prometheus data model (label sets, matchers) and the storage trait the
//!   query engine reads through.
//! - [`selfmetrics`]: the process-wide registry of self-metrics and the process collector.
//!
//! This crate knows nothing about HTTP, gRPC, query languages or any one signal's data model.
//!
//! ```
//! use obs_core::units::PromDuration;
//! let retention: PromDuration = "15d".parse().unwrap();
//! assert_eq!(retention.as_std().as_secs(), 15 * 86_400);
//! ```

pub mod disk;
pub mod encoding;
pub mod error;
pub mod files;
pub mod goregex;
pub mod gostr;
pub mod httpclient;
pub mod limits;
pub mod otlp;
pub mod partition;
pub mod selfmetrics;
pub mod series;
pub mod time;
pub mod units;
pub mod wal;

use std::fmt;

/// One of the three kinds of telemetry the appliance stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Samples of time series.
    Metrics,
    /// Log lines.
    Logs,
    /// Spans.
    Traces,
}

impl Signal {
    /// All signals, in a fixed order.
    pub const ALL: [Signal; 3] = [Signal::Metrics, Signal::Logs, Signal::Traces];

    /// The lowercase name used in directory names and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Traces => "traces",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
