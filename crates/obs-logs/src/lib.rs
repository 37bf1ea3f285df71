//! The log store of obs-appliance.
//!
//! Loki push requests ([`push`]) and OTLP logs ([`otlp`]) become [`model::StreamEntries`];
//! [`store::LogStore`] validates them as Loki does, makes them durable in the shared
//! write-ahead log before acknowledging, keeps them in an in-memory head (visible to queries at
//! once) and flushes the head into one tantivy index per UTC day (`index`), with the stream
//! registry in redb. A day index holds compressed blocks of one stream's entries ([`block`]),
//! and indexes per block its stream, time range and words. Retention drops whole days.
//! Correlation keys (`session_id`, `run_id`, `task_id`, `agent`, `trace_id`, …) are extracted
//! at ingest ([`keys`]) into each block's key filter, so a lookup decodes only the blocks that
//! may hold the key; substring filters use the words inside the needle as an index
//! pre-filter, and each block's id dictionary and templates rule most blocks out before they
//! are decompressed.
//!
//! This crate knows nothing about HTTP or LogQL: the query engine reads it through
//! [`store::LogStore::select`] and [`store::LogStore::streams`], which take the stream
//! selector as a predicate on label sets.
//!
//! ```
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use obs_core::partition::DataLayout;
//! use obs_core::series::{Labels, Matcher};
//! use obs_core::time::TimestampMs;
//! use obs_logs::model::{LogEntry, StreamEntries};
//! use obs_logs::store::{LogStore, LogsOptions, Selection};
//!
//! let dir = tempfile::tempdir()?;
//! let (store, _) = LogStore::open(&DataLayout::new(dir.path()), LogsOptions::default())?;
//! let now = TimestampMs::now();
//! let stream = StreamEntries {
//!     labels: Labels::from_pairs([("app", "jarvis")])?,
//!     entries: vec![LogEntry { timestamp_ns: now.0 * 1_000_000, line: "run_id=r-1 done".into(), metadata: vec![] }],
//! };
//! store.append(vec![stream], now).await?;
//! let app = Matcher::equal("app", "jarvis");
//! let selection = Selection {
//!     start_ns: 0,
//!     end_ns: i64::MAX,
//!     keys: vec![("run_id".into(), "r-1".into())],
//!     ..Selection::default()
//! };
//! let mut lines = Vec::new();
//! store.select(&|labels| app.matches_labels(labels), &selection, |selected| { lines.push(selected.entry.line); std::ops::ControlFlow::Continue(()) })?;
//! assert_eq!(lines, ["run_id=r-1 done"]);
//! # Ok(()) }
//! ```

pub mod block;
mod index;
pub mod keys;
pub mod model;
pub mod otlp;
pub mod push;
pub mod store;
mod walrec;
