//! The metrics store of obs-appliance: a compressed TSDB on redb day partitions behind the
//! shared write-ahead log, and the remote_write decoder that feeds it.
//!
//! - [`store::MetricsStore`]: append batches with durable acknowledgement; query through
//!   [`obs_core::series::MetricsQuerier`]; checkpoint; drop day partitions for retention.
//! - [`chunk`]: Gorilla-style XOR chunks and decimal chunks, hand-written because they are the
//!   hot path.
//! - [`remote_write`]: Prometheus remote_write 1.0 bodies, decoded in place (labels borrowed
//!   from the body).
//! - [`otlp`]: OTLP metrics converted to Prometheus series as the OpenTelemetry
//!   compatibility specification says.
//!
//! This crate knows nothing about HTTP, PromQL or any wire format beyond the protobuf it
//! decodes. The on-disk format is in `docs/format/metrics.md`.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use obs_core::partition::DataLayout;
//! use obs_core::series::{Labels, Matcher, MetricsQuerier, SeriesSamples};
//! use obs_core::time::TimestampMs;
//! use obs_metrics::store::{MetricsOptions, MetricsStore};
//!
//! let dir = tempfile::tempdir()?;
//! let (store, _) = MetricsStore::open(&DataLayout::new(dir.path()), MetricsOptions::default())?;
//! let now = TimestampMs::now();
//! let labels = Labels::series([("__name__", "up"), ("job", "node")])?;
//! store.append(vec![SeriesSamples { labels, samples: vec![(now.0, 1.0)] }], now).await?;
//! let found = store.select(&[Matcher::equal("job", "node")], now.0, now.0)?;
//! assert_eq!(found[0].samples, vec![(now.0, 1.0)]);
//! # Ok(()) }
//! ```

pub mod chunk;
pub mod otlp;
pub mod remote_write;
mod slots;
pub mod store;
mod walrec;
