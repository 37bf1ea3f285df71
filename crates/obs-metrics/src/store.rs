//! The metrics store: series registry, postings, head, day partitions, write-ahead log.
//!
//! Write path: [`MetricsStore::append`] (and `append_remote_write`) validates a batch against
//! the head (retention, future tolerance, out-of-order window, duplicates, series limits),
//! queues the write-ahead log record of the accepted samples and applies them to the head, all
//! under the head lock so that the log's order is the head's; then it waits until the record
//! is durable and only then returns. Read path: [`MetricsStore`] implements [`MetricsQuerier`] over the head and the day
//! partitions.
//!
//! Where data lives:
//! - `<data>/metrics/wal/`: every accepted batch, until a checkpoint has persisted it;
//! - the head (memory): per series an open chunk, sealed chunks not yet flushed, and
//!   out-of-order samples;
//! - `<data>/metrics/YYYY-MM-DD.redb`: sealed chunks of that UTC day, keyed by
//!   `(series_id, chunk_min_ts, sequence)`;
//! - `<data>/metrics/index.redb`: series ids, label sets and time bounds.
//!
//! A checkpoint rotates the log while no append is between its permit and its durable wait,
//! seals every open chunk, flushes everything (the index first, then the partitions) with
//! durable commits, and only then unlinks the log segments before the rotation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use obs_core::Signal;
use obs_core::error::{Classify, ErrorKind};
use obs_core::partition::{DataLayout, DayPartitionDir, DiskPressure, Partition, PartitionSet};
use obs_core::series::{
    LabelInterner, LabelStr, Labels, METRIC_NAME_LABEL, Matcher, MetricMetadata, MetricsQuerier,
    SeriesSamples, StorageError,
};
use obs_core::time::{Day, TimestampMs};
use obs_core::wal::{Lsn, PendingAppend, Wal, WalError, WalOptions, WalReservation};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use roaring::RoaringBitmap;

use crate::chunk::{self, XorEncoder};
use crate::remote_write::{self, InvalidSeries, RawRequest};
use crate::slots::Slots;
use crate::walrec;

/// redb's page cache for the index (label sets and bounds of every series), which the head
/// reads at start and flushes write.
const INDEX_CACHE_BYTES: usize = 4 << 20;
/// redb's page cache for each open day partition. redb's default (1 GiB per database) let
/// every partition written or read keep up to a gibibyte of pages resident; the operating
/// system's page cache holds the files anyway, so a miss costs a copy, not a disk read. At
/// 16 MiB the caches of the index and today's partition were a fifth of the memory of a
/// 100k-series scrape load (`docs/benchmarks.md`).
const PARTITION_CACHE_BYTES: usize = 4 << 20;

/// Sealed chunks written to a day partition (or series to the index) per transaction.
const CHUNKS_PER_TRANSACTION: usize = 8192;

/// A chunk is sealed once it holds this many samples (as in Prometheus).
const SAMPLES_PER_CHUNK: usize = 120;

/// Chunks of a day partition: `(series_id, chunk_min_ts, sequence)` -> encoded chunk.
const CHUNKS: TableDefinition<'_, (u32, i64, u32), &[u8]> = TableDefinition::new("chunks");
/// The index: series id -> encoded label set.
const SERIES: TableDefinition<'_, u32, &[u8]> = TableDefinition::new("series");
/// The index: series id -> (min_ts, max_ts) of its samples.
const SERIES_BOUNDS: TableDefinition<'_, u32, (i64, i64)> = TableDefinition::new("series_bounds");

/// Settings of the metrics store.
#[derive(Debug, Clone)]
pub struct MetricsOptions {
    /// Samples older than this (relative to now) are refused; partitions older are dropped.
    pub retention: Duration,
    /// How far behind a series' newest sample a sample may still arrive.
    pub out_of_order_window: Duration,
    /// How far ahead of now a sample may be.
    pub future_tolerance: Duration,
    /// Label names refused on metrics (high-cardinality correlation keys).
    pub denied_label_names: Vec<String>,
    /// The most series the store holds; new series beyond it are refused.
    pub max_series: usize,
    /// The most series one metric name may have; new series beyond it are refused.
    pub max_series_per_metric: usize,
    /// The write-ahead log.
    pub wal: WalOptions,
    /// Sealed chunks after which [`MetricsStore::flush_requested`] asks for a flush before
    /// the scheduled one.
    pub flush_soon_chunks: usize,
}

impl Default for MetricsOptions {
    fn default() -> MetricsOptions {
        MetricsOptions {
            retention: Duration::from_secs(15 * 86_400),
            out_of_order_window: Duration::from_secs(3600),
            future_tolerance: Duration::from_secs(600),
            denied_label_names: ["run_id", "session_id", "task_id", "trace_id", "span_id"]
                .map(String::from)
                .to_vec(),
            max_series: 2_000_000,
            max_series_per_metric: 200_000,
            wal: WalOptions::named("metrics"),
            flush_soon_chunks: FLUSH_SOON_CHUNKS,
        }
    }
}

/// Why a sample or series of a batch was refused; the rest of the batch is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// Older than the retention.
    TooOld,
    /// Too far in the future.
    TooFarInFuture,
    /// Older than the out-of-order window behind the series' newest sample.
    OutOfOrder,
    /// A different value already exists at this timestamp.
    DuplicateTimestamp,
    /// The series carries a denied label.
    DeniedLabel(String),
    /// The series is new and a series limit is reached.
    SeriesLimit {
        /// Which limit: `"max_series"` or `"max_series_per_metric"`.
        limit: &'static str,
        /// Its value.
        value: usize,
    },
}

/// One refused sample (or whole series, for [`RejectReason::DeniedLabel`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The series.
    pub labels: Labels,
    /// The sample's timestamp (none when the whole series was refused).
    pub timestamp_ms: Option<i64>,
    /// Why.
    pub reason: RejectReason,
}

impl RejectReason {
    /// The label value of `obs_metrics_samples_rejected_total`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::TooOld => "too_old",
            RejectReason::TooFarInFuture => "too_far_in_future",
            RejectReason::OutOfOrder => "out_of_order",
            RejectReason::DuplicateTimestamp => "duplicate_timestamp",
            RejectReason::DeniedLabel(_) => "denied_label",
            RejectReason::SeriesLimit { .. } => "series_limit",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ts = self.timestamp_ms.unwrap_or_default();
        let labels = &self.labels;
        match &self.reason {
            RejectReason::TooOld => write!(
                f,
                "sample at {ts} for series {labels} is older than the retention"
            ),
            RejectReason::TooFarInFuture => {
                write!(f, "sample at {ts} for series {labels} is too far in the future")
            }
            RejectReason::OutOfOrder => write!(
                f,
                "out of order sample at {ts} for series {labels}: older than the out-of-order window"
            ),
            RejectReason::DuplicateTimestamp => write!(
                f,
                "duplicate sample for timestamp {ts} with a different value, series {labels}"
            ),
            RejectReason::DeniedLabel(name) => write!(
                f,
                "label name {name:?} is not allowed on metrics (series {labels}); put it in logs or traces"
            ),
            RejectReason::SeriesLimit { limit, value } => write!(
                f,
                "new series {labels} refused: the {limit} limit of {value} series is reached; drop a high-cardinality label or raise metrics.{limit}"
            ),
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Default)]
pub struct AppendOutcome {
    /// Samples stored.
    pub accepted: u64,
    /// Samples identical to stored ones (retried writes), accepted without storing twice.
    pub duplicates: u64,
    /// Samples and series refused.
    pub rejected: Vec<Rejection>,
}

/// A handle on a series of the head, returned by [`MetricsStore::append_refs`]: appending
/// through it skips the lookup by labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRef {
    id: u32,
    epoch: u32,
}

/// One sample for [`MetricsStore::append_refs`].
#[derive(Debug, Clone)]
pub struct RefSample {
    /// The series' handle from an earlier append, if any; set by the append.
    pub series: Option<SeriesRef>,
    /// The series' labels (used when the handle is missing or no longer valid).
    pub labels: Arc<Labels>,
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The value (a stale marker is the NaN Prometheus uses).
    pub value: f64,
}

/// Errors of the metrics store.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The data directory is over its disk budget.
    #[error("the data directory is over its disk budget; ingest resumes when retention frees space")]
    DiskFull,
    /// A partition or index file failed.
    #[error("metrics storage failed on {path}: {message}")]
    Storage {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A log record could not be decoded during replay.
    #[error("metrics write-ahead log record is unreadable: {0}")]
    Record(String),
}

impl Classify for MetricsError {
    fn kind(&self) -> ErrorKind {
        match self {
            MetricsError::Wal(err) => err.kind(),
            MetricsError::DiskFull => ErrorKind::Overloaded,
            MetricsError::Storage { .. } | MetricsError::Record(_) => ErrorKind::Internal,
        }
    }
}

fn storage_error(path: &std::path::Path, err: impl std::fmt::Display) -> MetricsError {
    MetricsError::Storage {
        path: path.to_owned(),
        message: err.to_string(),
    }
}

/// What a flush writes to the index for one series.
#[derive(Debug)]
struct SeriesRow {
    id: u32,
    /// The label set, for a series not yet in the index: shared with the head, encoded as it
    /// is written (the first flush after a start writes every series at once).
    labels: Option<Arc<Labels>>,
    /// Its first and last sample's timestamps.
    bounds: (i64, i64),
}

/// A sealed chunk in memory, waiting for a flush.
#[derive(Debug, Clone)]
struct MemChunk {
    min_ts: i64,
    max_ts: i64,
    /// One allocation of exactly the chunk's length: a sealing wave seals every series' chunk
    /// at once, and they wait in memory for the next flush.
    bytes: Arc<[u8]>,
}

#[derive(Debug)]
struct SeriesState {
    /// Shared with `Head::by_labels` and with callers of `append_refs` (the scrape cache).
    labels: Arc<Labels>,
    open: XorEncoder,
    /// The last millisecond of the day of the open chunk's first sample (when it has one): a
    /// later sample starts a new chunk.
    open_day_last_ms: i64,
    sealed: Vec<MemChunk>,
    /// Samples older than the open chunk's newest, by timestamp (value bits). Boxed: most
    /// series never have any, and every series pays for the field (8 bytes, not 24).
    #[allow(clippy::box_collection)] // the box is the point: the map is rarely there
    out_of_order: Option<Box<BTreeMap<i64, u64>>>,
    min_ts: i64,
    max_ts: i64,
    /// Bounds changed since the last flush.
    bounds_dirty: bool,
    /// Its labels are in the index (written once, by the first flush that sees the series).
    in_index: bool,
    /// Its definition is in a durable log record or in the index.
    defined: bool,
    /// The samples at which the open chunk is sealed: [`SAMPLES_PER_CHUNK`], but for a chunk
    /// opened when every series opened one (the first, after a checkpoint sealed them all, or
    /// at midnight), which is `stagger` samples shorter. Series created together then seal
    /// at different scrapes rather than all at once.
    chunk_samples: u8,
    /// Up to half a chunk, from the series id.
    stagger: u8,
}

impl SeriesState {
    fn new(labels: Arc<Labels>, id: u32) -> SeriesState {
        let stagger = id as usize % (SAMPLES_PER_CHUNK / 2);
        SeriesState {
            labels,
            open: XorEncoder::new(),
            open_day_last_ms: i64::MAX,
            sealed: Vec::new(),
            out_of_order: None,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            bounds_dirty: true,
            in_index: false,
            defined: false,
            chunk_samples: (SAMPLES_PER_CHUNK - stagger) as u8,
            stagger: stagger as u8,
        }
    }

    fn seal_open(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let open = std::mem::replace(&mut self.open, XorEncoder::new());
        let bytes = open.to_bytes();
        // Re-encode in the smallest format now that the chunk is complete.
        let bytes = chunk::decode(&bytes).map_or(bytes, |samples| chunk::encode_sealed(&samples));
        self.sealed.push(MemChunk {
            min_ts: open.first_ts(),
            max_ts: open.last_ts(),
            bytes: Arc::from(bytes),
        });
    }

    /// Seals the open chunk where every series seals its own (a checkpoint, midnight): the
    /// next chunk is shorter by the series' stagger.
    fn seal_open_staggered(&mut self) {
        self.seal_open();
        self.chunk_samples = (SAMPLES_PER_CHUNK - usize::from(self.stagger)) as u8;
    }

    /// Turns out-of-order samples into sealed chunks (split by day and chunk size).
    fn seal_out_of_order(&mut self) {
        let samples: Vec<(i64, f64)> = self
            .out_of_order
            .take()
            .into_iter()
            .flat_map(|samples| *samples)
            .map(|(ts, bits)| (ts, f64::from_bits(bits)))
            .collect();
        let mut start = 0;
        while start < samples.len() {
            let day = Day::containing(TimestampMs(samples[start].0));
            let mut end = start + 1;
            while end < samples.len()
                && end - start < SAMPLES_PER_CHUNK
                && Day::containing(TimestampMs(samples[end].0)) == day
            {
                end += 1;
            }
            let part = &samples[start..end];
            self.sealed.push(MemChunk {
                min_ts: part[0].0,
                max_ts: part[part.len() - 1].0,
                bytes: Arc::from(chunk::encode_sealed(part)),
            });
            start = end;
        }
    }

    /// The value bits stored at `ts` in memory, if any.
    fn value_in_memory(&self, ts: i64) -> Option<u64> {
        if let Some(bits) = self.out_of_order.as_ref().and_then(|samples| samples.get(&ts)) {
            return Some(*bits);
        }
        if !self.open.is_empty() && self.open.first_ts() <= ts && ts <= self.open.last_ts() {
            return value_in_chunk(&self.open.to_bytes(), ts);
        }
        self.sealed
            .iter()
            .filter(|sealed| sealed.min_ts <= ts && ts <= sealed.max_ts)
            .find_map(|sealed| value_in_chunk(&sealed.bytes, ts))
    }

    /// Applies one sample that passed validation (or comes from replay). Returns false when a
    /// sample already exists at `ts` (same or different value: the first one stays).
    fn apply(&mut self, ts: i64, value: f64) -> bool {
        let bits = value.to_bits();
        if self.open.is_empty() && ts > self.max_ts {
            self.append_open(ts, value);
        } else if !self.open.is_empty() && ts > self.open.last_ts() {
            if ts > self.open_day_last_ms {
                self.seal_open_staggered();
            } else if self.open.len() >= usize::from(self.chunk_samples) {
                self.seal_open();
                self.chunk_samples = SAMPLES_PER_CHUNK as u8;
            }
            self.append_open(ts, value);
        } else {
            if self.value_in_memory(ts).is_some() {
                return false;
            }
            self.out_of_order.get_or_insert_default().insert(ts, bits);
        }
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        self.bounds_dirty = true;
        true
    }

    /// Appends to the open chunk a sample later than its last, noting the day of a new chunk.
    fn append_open(&mut self, ts: i64, value: f64) {
        self.open.append(ts, value);
        if self.open.len() == 1 {
            self.open_day_last_ms = last_ms_of_day(ts);
        }
    }

    /// Samples in memory within `[mint, maxt]`.
    fn memory_samples(&self, mint: i64, maxt: i64, into: &mut Vec<(i64, f64)>) {
        let in_range = |ts: i64| mint <= ts && ts <= maxt;
        for sealed in self
            .sealed
            .iter()
            .filter(|sealed| sealed.max_ts >= mint && sealed.min_ts <= maxt)
        {
            if let Ok(samples) = chunk::decode(&sealed.bytes) {
                into.extend(samples.into_iter().filter(|(ts, _)| in_range(*ts)));
            }
        }
        if !self.open.is_empty()
            && self.open.last_ts() >= mint
            && self.open.first_ts() <= maxt
            && let Ok(samples) = chunk::decode(&self.open.to_bytes())
        {
            into.extend(samples.into_iter().filter(|(ts, _)| in_range(*ts)));
        }
        if let Some(samples) = &self.out_of_order {
            into.extend(
                samples
                    .range(mint..=maxt)
                    .map(|(ts, bits)| (*ts, f64::from_bits(*bits))),
            );
        }
    }
}

/// The first label of `labels` whose name is denied. Compares lengths before bytes: this runs
/// for every series of every request.
fn denied_label(denied: &[String], labels: &Labels) -> Option<String> {
    labels.iter().find_map(|label| {
        denied
            .iter()
            .find(|name| name.len() == label.name.len() && **name == label.name)
            .cloned()
    })
}

/// The last millisecond of the day `ts` is in: [`Day::containing`] of a later timestamp is
/// another day. `i64::MAX` from the last day `Day` represents on, which holds every later
/// timestamp.
fn last_ms_of_day(ts: i64) -> i64 {
    let day = Day::containing(TimestampMs(ts));
    if day == Day::containing(TimestampMs(i64::MAX)) {
        i64::MAX
    } else {
        day.end_exclusive().0 - 1
    }
}

/// The value bits at `ts` in an encoded chunk.
fn value_in_chunk(bytes: &[u8], ts: i64) -> Option<u64> {
    let samples = chunk::decode(bytes).ok()?;
    samples
        .iter()
        .find(|(sample_ts, _)| *sample_ts == ts)
        .map(|(_, value)| value.to_bits())
}

#[derive(Debug, Default)]
struct Head {
    /// Changes whenever series ids could come to mean other series: [`SeriesRef`]s of an
    /// older epoch are not honoured.
    epoch: u32,
    by_labels: HashMap<Arc<Labels>, u32, foldhash::fast::RandomState>,
    /// Hash of label bytes as sent (canonical order) -> series id: the allocation-free path.
    by_raw_hash: HashMap<u64, u32, foldhash::fast::RandomState>,
    raw_hasher: foldhash::fast::RandomState,
    series: Slots<SeriesState>,
    /// Series per metric name.
    per_metric: HashMap<LabelStr, usize, foldhash::fast::RandomState>,
    /// The distinct label names and values of all series, shared by their label sets and the
    /// postings.
    strings: LabelInterner,
    /// Metric names already logged for a refusal (each is logged once).
    logged_refusals: std::collections::HashSet<(String, &'static str), foldhash::fast::RandomState>,
    /// label name -> label value -> series ids.
    postings: BTreeMap<LabelStr, BTreeMap<LabelStr, RoaringBitmap>>,
    all: RoaringBitmap,
}

impl Head {
    fn get_or_create(&mut self, labels: Arc<Labels>) -> u32 {
        if let Some(&id) = self.by_labels.get(labels.as_ref()) {
            return id;
        }
        let id = self.series.len() as u32;
        self.insert(id, SeriesState::new(labels, id));
        id
    }

    /// Defines series `id` from a log record; refuses an id already used by other labels.
    fn define(&mut self, id: u32, labels: Labels) -> Result<(), String> {
        match self.state(id) {
            Some(state) if *state.labels == labels => Ok(()),
            Some(state) => Err(format!(
                "record defines series {id} as {labels} but it is {}",
                state.labels
            )),
            None => {
                if self.by_labels.contains_key(&labels) {
                    return Err(format!("record defines {labels} again under another id {id}"));
                }
                let mut state = SeriesState::new(Arc::new(labels), id);
                state.defined = true;
                self.insert(id, state);
                Ok(())
            }
        }
    }

    /// The hash of label pairs as sent.
    fn raw_hash(&self, pairs: &[(&[u8], &[u8])]) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = self.raw_hasher.build_hasher();
        for (name, value) in pairs {
            hasher.write_usize(name.len());
            hasher.write(name);
            hasher.write_usize(value.len());
            hasher.write(value);
        }
        hasher.finish()
    }

    /// Logs a refusal once per metric name and reason.
    fn log_refusal_once(&mut self, labels: &Labels, rejection: &Rejection) {
        let metric = labels.metric_name().unwrap_or_default().to_owned();
        if self.logged_refusals.len() < 100_000
            && self
                .logged_refusals
                .insert((metric.clone(), rejection.reason.as_str()))
        {
            tracing::warn!(metric = %metric, reason = rejection.reason.as_str(), message = %rejection, "metrics refused (logged once per metric and reason)");
        }
    }

    fn insert(&mut self, id: u32, mut state: SeriesState) {
        // One copy of each distinct name and value for all series.
        state.labels = Arc::new(self.strings.labels(&state.labels));
        for label in state.labels.iter() {
            if label.name == METRIC_NAME_LABEL {
                *self.per_metric.entry(label.value.clone()).or_default() += 1;
            }
            self.postings
                .entry(label.name.clone())
                .or_default()
                .entry(label.value.clone())
                .or_default()
                .insert(id);
        }
        self.all.insert(id);
        self.by_labels.insert(Arc::clone(&state.labels), id);
        self.series.set(id as usize, state);
    }

    fn state(&self, id: u32) -> Option<&SeriesState> {
        self.series.get(id as usize).and_then(Option::as_ref)
    }

    /// Series ids matching every matcher.
    fn matching(&self, matchers: &[Matcher]) -> RoaringBitmap {
        let mut result = self.all.clone();
        for matcher in matchers {
            let values = self.postings.get(matcher.name.as_str());
            let mut with_matching_value = RoaringBitmap::new();
            let mut with_label = RoaringBitmap::new();
            if let Some(values) = values {
                for (value, ids) in values {
                    with_label |= ids;
                    if matcher.matches(value) {
                        with_matching_value |= ids;
                    }
                }
            }
            // Series without the label have the value "", which may match too.
            if matcher.matches("") {
                with_matching_value |= &self.all - &with_label;
            }
            result &= with_matching_value;
            if result.is_empty() {
                break;
            }
        }
        result
    }
}

struct SelfMetrics {
    appended: prometheus::IntCounter,
    duplicates: prometheus::IntCounter,
    rejected: prometheus::IntCounterVec,
    active_series: prometheus::IntGauge,
    flushed_chunks: prometheus::IntCounter,
    flushed_bytes: prometheus::IntCounter,
    flushed_samples: prometheus::IntCounter,
}

impl SelfMetrics {
    fn rejected_with(&self, reason: &RejectReason, samples: usize) {
        self.rejected
            .with_label_values(&[reason.as_str()])
            .inc_by(samples as u64);
    }
}

fn self_metrics() -> &'static SelfMetrics {
    static METRICS: OnceLock<SelfMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = obs_core::selfmetrics::registry();
        let counter = |name: &str, help: &str| registry.int_counter(name, help);
        let rejected = registry.int_counter_vec(
            "obs_metrics_samples_rejected_total",
            "Samples refused at ingest, by reason (the rest of their request is kept).",
            &["reason"],
        );
        for reason in ["too_old", "too_far_in_future", "out_of_order", "duplicate_timestamp", "denied_label", "series_limit", "invalid_labels"] {
            rejected.with_label_values(&[reason]);
        }
        SelfMetrics {
            appended: counter("obs_metrics_samples_appended_total", "Samples stored."),
            duplicates: counter(
                "obs_metrics_samples_duplicate_total",
                "Samples identical to stored ones (retried writes), accepted without storing twice.",
            ),
            rejected,
            active_series: registry.int_gauge("obs_metrics_active_series", "Series held by the metrics store."),
            flushed_chunks: counter("obs_metrics_flushed_chunks_total", "Chunks written to day partitions."),
            flushed_bytes: counter(
                "obs_metrics_flushed_chunk_bytes_total",
                "Encoded bytes of chunks written to day partitions (bytes per sample = this / obs_metrics_flushed_samples_total).",
            ),
            flushed_samples: counter("obs_metrics_flushed_samples_total", "Samples in chunks written to day partitions."),
        }
    })
}

/// Counts series that a decoder refused before they reached the store (invalid labels).
pub fn count_invalid_series_samples(samples: usize) {
    self_metrics()
        .rejected
        .with_label_values(&["invalid_labels"])
        .inc_by(samples as u64);
}

/// What a flush wrote (chunks already stored byte for byte are not counted).
#[derive(Debug, Default)]
struct Written {
    chunks: u64,
    bytes: u64,
    samples: u64,
}

/// The accepted samples of one series in a batch. Most series get one sample per batch (a
/// scrape, a remote_write of one interval), kept inline: no allocation per sample.
type BatchSamples = smallvec::SmallVec<[(i64, f64); 1]>;

/// Accepted samples of a batch by series, in first-seen order; a series named twice in one
/// batch gets one entry, so its samples are checked against each other.
#[derive(Debug, Default)]
struct Accepted {
    by_series: Vec<(u32, BatchSamples)>,
    index: HashMap<u32, usize, foldhash::fast::RandomState>,
}

impl Accepted {
    /// Room for `series` series without growing.
    fn with_capacity(series: usize) -> Accepted {
        Accepted {
            by_series: Vec::with_capacity(series),
            index: HashMap::with_capacity_and_hasher(series, foldhash::fast::RandomState::default()),
        }
    }

    fn add(&mut self, id: u32, check: impl FnOnce(&mut BatchSamples)) {
        let position = *self.index.entry(id).or_insert_with(|| {
            self.by_series.push((id, BatchSamples::new()));
            self.by_series.len() - 1
        });
        check(&mut self.by_series[position].1);
        if self.by_series[position].1.is_empty() && position + 1 == self.by_series.len() {
            self.by_series.pop();
            self.index.remove(&id);
        }
    }
}

/// Time bounds for accepting samples.
struct SampleBounds {
    oldest: i64,
    newest: i64,
    window: i64,
}

/// Whether raw label pairs, as sent, are exactly a canonical label set (sorted, no empty
/// values): only then may their hash find the series.
fn raw_pairs_equal(labels: &Labels, pairs: &[(&[u8], &[u8])]) -> bool {
    labels.len() == pairs.len()
        && labels
            .iter()
            .zip(pairs)
            .all(|(label, (name, value))| label.name.as_bytes() == *name && label.value.as_bytes() == *value)
}

/// The day partitions: which exist on disk, and the ones open.
#[derive(Debug, Default)]
struct Partitions {
    open: BTreeMap<Day, Arc<Database>>,
    known_days: BTreeSet<Day>,
}

/// Loads the series of the index into the head. A missing table means a new store; any other
/// error stops the open, so that ids in use are never handed out again.
fn load_index(
    index: &Database,
    path: &std::path::Path,
    head: &mut Head,
    report: &mut OpenReport,
) -> Result<(), MetricsError> {
    let txn = index.begin_read().map_err(|err| storage_error(path, err))?;
    let series = match txn.open_table(SERIES) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(err) => return Err(storage_error(path, err)),
    };
    let bounds = match txn.open_table(SERIES_BOUNDS) {
        Ok(table) => Some(table),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(err) => return Err(storage_error(path, err)),
    };
    for entry in series.iter().map_err(|err| storage_error(path, err))? {
        let (id, encoded) = entry.map_err(|err| storage_error(path, err))?;
        let id = id.value();
        let (labels, _) = Labels::decode(encoded.value()).map_err(|err| storage_error(path, err))?;
        let mut state = SeriesState::new(Arc::new(labels), id);
        if let Some(bounds) = &bounds
            && let Some(range) = bounds.get(id).map_err(|err| storage_error(path, err))?
        {
            (state.min_ts, state.max_ts) = range.value();
        }
        state.bounds_dirty = false;
        state.in_index = true;
        state.defined = true;
        head.insert(id, state);
        report.indexed_series += 1;
    }
    Ok(())
}

/// The metrics store. See the [module docs](self).
pub struct MetricsStore {
    layout: DataLayout,
    options: MetricsOptions,
    partitions_dir: DayPartitionDir,
    wal: Wal,
    index: Database,
    head: RwLock<Head>,
    partitions: Mutex<Partitions>,
    /// Held shared from before a batch's log write until its head apply; held exclusively by a
    /// checkpoint while it rotates the log.
    apply_gate: Arc<tokio::sync::RwLock<()>>,
    /// Serializes flushes.
    flush_lock: Mutex<()>,
    /// Chunks sealed since the last flush took the sealed ones.
    sealed_since_flush: std::sync::atomic::AtomicUsize,
    /// Signalled when `sealed_since_flush` passes [`FLUSH_SOON_CHUNKS`].
    flush_wanted: tokio::sync::Notify,
    pressure: OnceLock<Arc<DiskPressure>>,
    /// Type, help and unit by metric family, as the last senders described them. In memory
    /// only, like Prometheus' scrape caches: senders repeat it with every scrape or export.
    metadata: RwLock<BTreeMap<String, Vec<MetricMetadata>>>,
}

/// Sealed chunks that ask for a flush before the next scheduled one. Every series seals its
/// chunk at the same scrape (a sealing wave, every 120 samples); flushing as they pile up
/// keeps the memory they hold while they wait for the disk to a few megabytes.
const FLUSH_SOON_CHUNKS: usize = 16_384;

/// The most metric families whose metadata is kept.
const MAX_METADATA_FAMILIES: usize = 100_000;
/// The most distinct metadata entries kept per family.
const MAX_METADATA_PER_FAMILY: usize = 4;

impl std::fmt::Debug for MetricsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsStore")
            .field("dir", &self.layout.signal_dir(Signal::Metrics))
            .finish_non_exhaustive()
    }
}

/// Cardinality statistics of the head, as Prometheus' `/api/v1/status/tsdb` reports them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TsdbStatus {
    /// Series in the store.
    pub num_series: u64,
    /// Distinct label name/value pairs.
    pub num_label_pairs: u64,
    /// Chunks held in memory (open and sealed, not yet flushed).
    pub chunk_count: u64,
    /// The oldest and newest sample timestamps (milliseconds), when there is data.
    pub time_range_ms: Option<(i64, i64)>,
    /// Metric names with the most series, descending.
    pub series_count_by_metric_name: Vec<(String, u64)>,
    /// Label names with the most distinct values, descending.
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    /// Label names by the bytes of their distinct values, descending.
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    /// `name=value` pairs with the most series, descending.
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// The `limit` largest entries, largest first, ties by name.
fn top(mut entries: Vec<(String, u64)>, limit: usize) -> Vec<(String, u64)> {
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    entries.truncate(limit);
    entries
}

/// What opening the store found.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// Series loaded from the index.
    pub indexed_series: usize,
    /// Log records replayed.
    pub replayed_records: u64,
    /// Samples replayed into the head.
    pub replayed_samples: u64,
    /// Damaged places in the log.
    pub wal_corruptions: usize,
}

impl MetricsStore {
    /// Opens the store under `layout`, loading the index and replaying the log.
    pub fn open(
        layout: &DataLayout,
        options: MetricsOptions,
    ) -> Result<(MetricsStore, OpenReport), MetricsError> {
        let dir = layout.signal_dir(Signal::Metrics);
        std::fs::create_dir_all(&dir).map_err(|err| storage_error(&dir, err))?;
        let index_path = dir.join("index.redb");
        let index = Database::builder()
            .set_cache_size(INDEX_CACHE_BYTES)
            .create(&index_path)
            .map_err(|err| storage_error(&index_path, err))?;
        let mut head = Head::default();
        let mut report = OpenReport::default();
        load_index(&index, &index_path, &mut head, &mut report)?;
        let mut replayed_samples = 0u64;
        let mut record_error = None;
        let (wal, wal_report) = Wal::open(
            &layout.wal_dir(Signal::Metrics),
            options.wal.clone(),
            |_, payload| {
                // A record that passed its checksum but does not make sense is a bug, not
                // damage: stop rather than silently skip acknowledged data.
                let result = walrec::decode(payload).and_then(|record| {
                    for (id, labels) in record.definitions {
                        head.define(id, labels)?;
                    }
                    for (id, samples) in record.samples {
                        let Some(Some(state)) = head.series.get_mut(id as usize) else {
                            return Err(format!("record uses series {id} before defining it"));
                        };
                        // Samples that expired while the appliance was down come back until the
                        // next retention pass drops their day again.
                        for (ts, value) in samples {
                            state.apply(ts, value);
                            replayed_samples += 1;
                        }
                    }
                    Ok(())
                });
                if let Err(err) = &result {
                    record_error = Some(err.clone());
                }
                result
            },
        )
        .map_err(|err| match record_error.take() {
            Some(message) => MetricsError::Record(message),
            None => MetricsError::Wal(err),
        })?;
        // Registers every series of the store's self-metrics, at zero, from the start.
        self_metrics().active_series.set(head.all.len() as i64);
        report.replayed_records = wal_report.records;
        report.replayed_samples = replayed_samples;
        report.wal_corruptions = wal_report.corruptions.len();
        let partitions_dir = DayPartitionDir::new(Signal::Metrics, dir.clone());
        let mut known_days = BTreeSet::new();
        for entry in std::fs::read_dir(&dir).map_err(|err| storage_error(&dir, err))? {
            let entry = entry.map_err(|err| storage_error(&dir, err))?;
            if let Some(name) = entry.file_name().to_str()
                && name.ends_with(".redb")
                && let Some(day) = obs_core::partition::partition_day(name)
            {
                known_days.insert(day);
            }
        }
        let store = MetricsStore {
            layout: layout.clone(),
            options,
            partitions_dir,
            wal,
            index,
            head: RwLock::new(head),
            partitions: Mutex::new(Partitions {
                open: BTreeMap::new(),
                known_days,
            }),
            apply_gate: Arc::new(tokio::sync::RwLock::new(())),
            flush_lock: Mutex::new(()),
            sealed_since_flush: std::sync::atomic::AtomicUsize::new(0),
            flush_wanted: tokio::sync::Notify::new(),
            pressure: OnceLock::new(),
            metadata: RwLock::new(BTreeMap::new()),
        };
        Ok((store, report))
    }

    /// Records what senders say about metric families. The newest entry of a family comes
    /// first; a family keeps at most a few distinct entries, and at most
    /// `MAX_METADATA_FAMILIES` families are kept (new ones are ignored beyond that).
    pub fn record_metadata(&self, entries: impl IntoIterator<Item = (String, MetricMetadata)>) {
        let mut metadata = self.metadata.write().unwrap_or_else(|poison| poison.into_inner());
        for (family, entry) in entries {
            let full = metadata.len() >= MAX_METADATA_FAMILIES;
            match metadata.get_mut(&family) {
                Some(known) if known.first() != Some(&entry) => {
                    known.retain(|existing| existing != &entry);
                    known.insert(0, entry);
                    known.truncate(MAX_METADATA_PER_FAMILY);
                }
                Some(_) => {}
                None if !full => {
                    metadata.insert(family, vec![entry]);
                }
                None => {}
            }
        }
    }

    /// Makes ingest refuse batches while `pressure` says the disk budget is exhausted.
    pub fn set_disk_pressure(&self, pressure: Arc<DiskPressure>) {
        let _ = self.pressure.set(pressure);
    }

    /// Validates, applies and logs a batch. Returns once every accepted sample is in the
    /// write-ahead log under its fsync policy (and already visible to queries).
    ///
    /// Validation, the head update and queueing the log record happen under one lock, so the
    /// log holds batches in the order they were validated and applied: replay reproduces
    /// exactly the head that acknowledged them. The wait for durability comes after; a
    /// cancelled wait leaves a record that is applied and logged, never one that is only
    /// logged.
    pub async fn append(
        &self,
        batch: Vec<SeriesSamples>,
        now: TimestampMs,
    ) -> Result<AppendOutcome, MetricsError> {
        let _permit = self.append_permit().await?;
        let estimate = 64
            + batch
                .iter()
                .map(|series| 8 + 16 * series.samples.len())
                .sum::<usize>();
        let reservation = self.wal.reserve(estimate).await?;
        let mut outcome = AppendOutcome::default();
        let logged = {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            let bounds = self.sample_bounds(now);
            let mut accepted = Accepted::with_capacity(batch.len());
            for series in batch {
                let id = match head.by_labels.get(&series.labels) {
                    Some(&id) => id,
                    None => {
                        match self.resolve(
                            &mut head,
                            Arc::new(series.labels),
                            &series.samples,
                            &bounds,
                            &mut outcome,
                        ) {
                            Some(id) => id,
                            None => continue,
                        }
                    }
                };
                accepted.add(id, |kept| {
                    self.check_samples(&head, id, &series.samples, &bounds, &mut outcome, kept)
                });
            }
            self.log_and_apply(&mut head, reservation, accepted.by_series, &mut outcome, true)?
        };
        self.wait_durable(logged).await?;
        Ok(outcome)
    }

    /// Like [`MetricsStore::append`] for callers that append the same series again and again
    /// (the scrape loop, the rule evaluator): a sample whose `series` holds a handle from an
    /// earlier call is found without hashing or comparing its labels; the others are found or
    /// created by their labels, and their handle is written back into `series` (left `None`
    /// when the series was refused) and the head's copy of the labels into `labels`, so that
    /// a caller keeping them shares one copy with the head. A handle the head no longer
    /// honours is ignored.
    ///
    /// Nobody waits for these samples to be acknowledged, so their log record's fsync is
    /// deferred (within a second, see [`obs_core::wal::DEFERRED_SYNC_INTERVAL`]): the call
    /// returns once the record is written to the operating system. A killed process loses
    /// nothing; a power loss may lose the last second of scraped samples.
    pub async fn append_refs(
        &self,
        samples: &mut [RefSample],
        now: TimestampMs,
    ) -> Result<AppendOutcome, MetricsError> {
        let _permit = self.append_permit().await?;
        let reservation = self.wal.reserve(64 + samples.len() * 24).await?;
        let mut outcome = AppendOutcome::default();
        let logged = {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            let bounds = self.sample_bounds(now);
            let epoch = head.epoch;
            let mut accepted = Accepted::with_capacity(samples.len());
            for sample in samples.iter_mut() {
                let point = [(sample.timestamp_ms, sample.value)];
                let known = sample
                    .series
                    .filter(|series| series.epoch == epoch && head.state(series.id).is_some())
                    .map(|series| series.id);
                let id = match known.or_else(|| head.by_labels.get(sample.labels.as_ref()).copied()) {
                    Some(id) => id,
                    None => {
                        let labels = Arc::clone(&sample.labels);
                        match self.resolve(&mut head, labels, &point, &bounds, &mut outcome) {
                            Some(id) => id,
                            None => {
                                sample.series = None;
                                continue;
                            }
                        }
                    }
                };
                if known.is_none()
                    && let Some(state) = head.state(id)
                    && !Arc::ptr_eq(&state.labels, &sample.labels)
                {
                    // One copy of the label set, shared with the caller's cache.
                    sample.labels = Arc::clone(&state.labels);
                }
                sample.series = Some(SeriesRef { id, epoch });
                accepted.add(id, |kept| {
                    self.check_samples(&head, id, &point, &bounds, &mut outcome, kept)
                });
            }
            self.log_and_apply(&mut head, reservation, accepted.by_series, &mut outcome, false)?
        };
        self.wait_durable(logged).await?;
        Ok(outcome)
    }

    /// Checks the disk budget and holds off checkpoints until the batch is applied and
    /// queued in the log.
    async fn append_permit(&self) -> Result<tokio::sync::OwnedRwLockReadGuard<()>, MetricsError> {
        if self
            .pressure
            .get()
            .is_some_and(|pressure| pressure.is_over_budget())
        {
            return Err(MetricsError::DiskFull);
        }
        Ok(Arc::clone(&self.apply_gate).read_owned().await)
    }

    /// Like [`MetricsStore::append`] for a remote_write request decoded in place: series
    /// already known are found by a hash of their label bytes, without allocating. Series whose
    /// labels break the rules are returned as invalid; the rest of the request is kept.
    pub async fn append_remote_write(
        &self,
        request: &RawRequest<'_>,
        now: TimestampMs,
    ) -> Result<(AppendOutcome, Vec<InvalidSeries>), MetricsError> {
        let _permit = self.append_permit().await?;
        let estimate = 64 + request.series.len() * 8 + request.sample_count() * 16;
        let reservation = self.wal.reserve(estimate).await?;
        let mut outcome = AppendOutcome::default();
        let mut invalid = Vec::new();
        let logged = {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            let bounds = self.sample_bounds(now);
            let mut accepted = Accepted::with_capacity(request.series.len());
            for series in &request.series {
                let pairs = request.labels(series);
                if series.histograms > 0 {
                    invalid.push(InvalidSeries {
                        description: remote_write::describe(pairs),
                        reason: "native histograms are not supported; send classic histograms".to_owned(),
                        samples: series.histograms,
                    });
                }
                let samples = request.samples(series);
                if let Some(reason) = series.error {
                    invalid.push(InvalidSeries {
                        description: remote_write::describe(pairs),
                        reason: reason.to_owned(),
                        samples: samples.len(),
                    });
                    continue;
                }
                if samples.is_empty() {
                    continue;
                }
                let raw_hash = head.raw_hash(pairs);
                let known = head.by_raw_hash.get(&raw_hash).copied().filter(|&id| {
                    head.state(id)
                        .is_some_and(|state| raw_pairs_equal(&state.labels, pairs))
                });
                let id = match known {
                    Some(id) => id,
                    None => {
                        let labels = match remote_write::labels_from_raw(pairs) {
                            Ok(labels) => labels,
                            Err(reason) => {
                                invalid.push(InvalidSeries {
                                    description: remote_write::describe(pairs),
                                    reason,
                                    samples: samples.len(),
                                });
                                continue;
                            }
                        };
                        let canonical = raw_pairs_equal(&labels, pairs);
                        let Some(id) =
                            self.resolve(&mut head, Arc::new(labels), samples, &bounds, &mut outcome)
                        else {
                            continue;
                        };
                        if canonical {
                            head.by_raw_hash.insert(raw_hash, id);
                        }
                        id
                    }
                };
                accepted.add(id, |kept| {
                    self.check_samples(&head, id, samples, &bounds, &mut outcome, kept)
                });
            }
            self.log_and_apply(&mut head, reservation, accepted.by_series, &mut outcome, true)?
        };
        self.wait_durable(logged).await?;
        Ok((outcome, invalid))
    }

    /// The id of a series not found by a fast path: existing, or created unless it carries a
    /// denied label or breaks a series limit (then refused, counted and logged once).
    fn resolve(
        &self,
        head: &mut Head,
        labels: Arc<Labels>,
        samples: &[(i64, f64)],
        bounds: &SampleBounds,
        outcome: &mut AppendOutcome,
    ) -> Option<u32> {
        if let Some(&id) = head.by_labels.get(labels.as_ref()) {
            return Some(id);
        }
        // A series is created only for a sample it can keep, so refused samples cannot fill
        // the series limits.
        if !samples
            .iter()
            .any(|(ts, _)| bounds.oldest <= *ts && *ts <= bounds.newest)
        {
            for &(ts, _) in samples {
                let reason = if ts < bounds.oldest {
                    RejectReason::TooOld
                } else {
                    RejectReason::TooFarInFuture
                };
                self_metrics().rejected_with(&reason, 1);
                outcome.rejected.push(Rejection {
                    labels: Labels::clone(&labels),
                    timestamp_ms: Some(ts),
                    reason,
                });
            }
            return None;
        }
        let samples = samples.len();
        let reason = denied_label(&self.options.denied_label_names, &labels)
            .map(RejectReason::DeniedLabel)
            .or_else(|| self.series_limit_reached(head, &labels));
        if let Some(reason) = reason {
            let rejection = Rejection {
                labels: Labels::clone(&labels),
                timestamp_ms: None,
                reason,
            };
            head.log_refusal_once(&rejection.labels, &rejection);
            self_metrics().rejected_with(&rejection.reason, samples);
            outcome.rejected.push(rejection);
            return None;
        }
        Some(head.get_or_create(labels))
    }

    fn sample_bounds(&self, now: TimestampMs) -> SampleBounds {
        SampleBounds {
            oldest: now.saturating_sub(self.options.retention).0,
            newest: now
                .0
                .saturating_add(self.options.future_tolerance.as_millis() as i64),
            window: self.options.out_of_order_window.as_millis() as i64,
        }
    }

    /// The samples of series `id` that may be stored; refusals go to `outcome`.
    fn check_samples(
        &self,
        head: &Head,
        id: u32,
        samples: &[(i64, f64)],
        bounds: &SampleBounds,
        outcome: &mut AppendOutcome,
        kept: &mut BatchSamples,
    ) {
        let Some(state) = head.state(id) else {
            return;
        };
        let sorted;
        let samples = if samples.is_sorted_by_key(|(ts, _)| *ts) {
            samples
        } else {
            let mut copy = samples.to_vec();
            copy.sort_by_key(|(ts, _)| *ts);
            sorted = copy;
            &sorted
        };
        // `kept` may already hold samples of this series from earlier in the same batch.
        let mut newest_seen = kept.iter().map(|(ts, _)| *ts).fold(state.max_ts, i64::max);
        for &(ts, value) in samples {
            let reason = if ts < bounds.oldest {
                Some(RejectReason::TooOld)
            } else if ts > bounds.newest {
                Some(RejectReason::TooFarInFuture)
            } else if ts < newest_seen.saturating_sub(bounds.window) {
                Some(RejectReason::OutOfOrder)
            } else {
                let in_batch = kept
                    .iter()
                    .rev()
                    .find(|(kept_ts, _)| *kept_ts == ts)
                    .map(|(_, v)| v.to_bits());
                match in_batch {
                    Some(bits) if bits == value.to_bits() => {
                        outcome.duplicates += 1;
                        continue;
                    }
                    Some(_) => {
                        self_metrics().rejected_with(&RejectReason::DuplicateTimestamp, 1);
                        outcome.rejected.push(Rejection {
                            labels: Labels::clone(&state.labels),
                            timestamp_ms: Some(ts),
                            reason: RejectReason::DuplicateTimestamp,
                        });
                        continue;
                    }
                    None => {}
                }
                let existing = None.or_else(|| {
                    if ts > newest_seen {
                        return None;
                    }
                    // Late samples are checked against memory, then against the
                    // partitions (rare, so the disk read is affordable).
                    state.value_in_memory(ts).or_else(|| self.persisted_value(id, ts))
                });
                // A sample identical to a stored one (a retried write) is logged again and counted
                // as a duplicate when applied: its acknowledgement then never depends on an
                // earlier write having been durable.
                match existing {
                    Some(bits) if bits != value.to_bits() => Some(RejectReason::DuplicateTimestamp),
                    _ => None,
                }
            };
            match reason {
                Some(reason) => {
                    self_metrics().rejected_with(&reason, 1);
                    outcome.rejected.push(Rejection {
                        labels: Labels::clone(&state.labels),
                        timestamp_ms: Some(ts),
                        reason,
                    });
                }
                None => {
                    newest_seen = newest_seen.max(ts);
                    kept.push((ts, value));
                }
            }
        }
    }

    /// Queues the log record of accepted samples (with the definitions of series not yet
    /// durable) and applies the samples to the head, in that order and under the head lock.
    /// Returns the queued record and the series it defines, to wait for.
    ///
    /// `durable: false` (scrapes: nobody waits for an acknowledgement) waits only until the
    /// record is written to the operating system; its fsync follows within a second. The log
    /// is written in order, so any later durable record's fsync covers it too: a power loss
    /// can lose a suffix of such records, never a definition a later record relies on.
    fn log_and_apply(
        &self,
        head: &mut Head,
        reservation: WalReservation,
        accepted: Vec<(u32, BatchSamples)>,
        outcome: &mut AppendOutcome,
        durable: bool,
    ) -> Result<Option<(PendingAppend, Vec<u32>)>, MetricsError> {
        if accepted.is_empty() {
            return Ok(None);
        }
        let defined: Vec<u32> = accepted
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| head.state(*id).is_some_and(|state| !state.defined))
            .collect();
        let definitions: Vec<(u32, &Labels)> = defined
            .iter()
            .filter_map(|&id| head.state(id).map(|state| (id, state.labels.as_ref())))
            .collect();
        let record = walrec::encode(&definitions, &accepted);
        let pending = if durable {
            self.wal.append_reserved(reservation, record)?
        } else {
            self.wal.append_reserved_deferred(reservation, record)?
        };
        let before = (outcome.accepted, outcome.duplicates);
        let mut sealed = 0;
        for (id, samples) in accepted {
            if let Some(Some(state)) = head.series.get_mut(id as usize) {
                let sealed_before = state.sealed.len();
                for (ts, value) in samples {
                    if state.apply(ts, value) {
                        outcome.accepted += 1;
                    } else {
                        outcome.duplicates += 1;
                    }
                }
                sealed += state.sealed.len().saturating_sub(sealed_before);
            }
        }
        if sealed > 0 {
            let total = self
                .sealed_since_flush
                .fetch_add(sealed, std::sync::atomic::Ordering::Relaxed)
                + sealed;
            let threshold = self.options.flush_soon_chunks;
            if total >= threshold && total - sealed < threshold {
                self.flush_wanted.notify_one();
            }
        }
        let metrics = self_metrics();
        metrics.active_series.set(head.all.len() as i64);
        metrics.appended.inc_by(outcome.accepted - before.0);
        metrics.duplicates.inc_by(outcome.duplicates - before.1);
        Ok(Some((pending, defined)))
    }

    /// Waits until a queued record is durable, then marks the series it defined as durable.
    async fn wait_durable(&self, logged: Option<(PendingAppend, Vec<u32>)>) -> Result<(), MetricsError> {
        let Some((pending, defined)) = logged else {
            return Ok(());
        };
        pending.durable().await?;
        if !defined.is_empty() {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            for id in defined {
                if let Some(Some(state)) = head.series.get_mut(id as usize) {
                    state.defined = true;
                }
            }
        }
        Ok(())
    }

    /// Cardinality statistics, each list cut to its `limit` largest entries, so that an
    /// operator can find the label that explodes the series count.
    pub fn tsdb_status(&self, limit: usize) -> TsdbStatus {
        let head = self.head.read().unwrap_or_else(|poison| poison.into_inner());
        let mut status = TsdbStatus {
            num_series: head.all.len(),
            ..TsdbStatus::default()
        };
        let mut by_metric = Vec::new();
        let mut value_counts = Vec::new();
        let mut value_bytes = Vec::new();
        let mut pairs = Vec::new();
        for (name, values) in &head.postings {
            value_counts.push((name.to_string(), values.len() as u64));
            value_bytes.push((
                name.to_string(),
                values.keys().map(|value| value.len() as u64).sum(),
            ));
            status.num_label_pairs += values.len() as u64;
            for (value, ids) in values {
                if name == METRIC_NAME_LABEL {
                    by_metric.push((value.to_string(), ids.len()));
                }
                pairs.push((format!("{name}={value}"), ids.len()));
            }
        }
        let mut range: Option<(i64, i64)> = None;
        for state in head.series.iter().flatten() {
            status.chunk_count += state.sealed.len() as u64 + u64::from(!state.open.is_empty());
            if state.min_ts <= state.max_ts {
                range = Some(match range {
                    None => (state.min_ts, state.max_ts),
                    Some((min, max)) => (min.min(state.min_ts), max.max(state.max_ts)),
                });
            }
        }
        status.time_range_ms = range;
        status.series_count_by_metric_name = top(by_metric, limit);
        status.label_value_count_by_label_name = top(value_counts, limit);
        status.memory_in_bytes_by_label_name = top(value_bytes, limit);
        status.series_count_by_label_value_pair = top(pairs, limit);
        status
    }

    /// Which series limit a new series would break, if any.
    fn series_limit_reached(&self, head: &Head, labels: &Labels) -> Option<RejectReason> {
        if head.all.len() as usize >= self.options.max_series {
            return Some(RejectReason::SeriesLimit {
                limit: "max_series",
                value: self.options.max_series,
            });
        }
        let per_metric = labels
            .metric_name()
            .and_then(|name| head.per_metric.get(name))
            .copied()
            .unwrap_or(0);
        (per_metric >= self.options.max_series_per_metric).then_some(RejectReason::SeriesLimit {
            limit: "max_series_per_metric",
            value: self.options.max_series_per_metric,
        })
    }

    /// Resolves when enough chunks were sealed since the last flush that one should run now
    /// rather than at its schedule.
    pub async fn flush_requested(&self) {
        self.flush_wanted.notified().await;
    }

    /// Writes every sealed chunk and changed series to disk with a durable commit.
    pub fn flush(&self) -> Result<(), MetricsError> {
        let _flushing = self
            .flush_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        // Copy what to write (chunks stay visible in memory until they are on disk).
        let mut by_day: BTreeMap<Day, Vec<(u32, MemChunk)>> = BTreeMap::new();
        let mut taken: Vec<(u32, usize)> = Vec::new();
        let mut series_rows: Vec<SeriesRow> = Vec::new();
        {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            self.sealed_since_flush
                .store(0, std::sync::atomic::Ordering::Relaxed);
            for (index, slot) in head.series.iter_mut().enumerate() {
                let Some(state) = slot else { continue };
                let id = index as u32;
                if state.out_of_order.is_some() {
                    state.seal_out_of_order();
                }
                for chunk in &state.sealed {
                    by_day
                        .entry(Day::containing(TimestampMs(chunk.min_ts)))
                        .or_default()
                        .push((id, chunk.clone()));
                }
                if !state.sealed.is_empty() {
                    taken.push((id, state.sealed.len()));
                }
                // Labels are written once. Bounds are written with the series' chunks: they
                // need to cover what is on disk, and the log replays the samples after them
                // (a checkpoint seals every open chunk, so it writes them all).
                if !state.in_index || (state.bounds_dirty && !state.sealed.is_empty()) {
                    let labels = (!state.in_index).then(|| Arc::clone(&state.labels));
                    series_rows.push(SeriesRow {
                        id,
                        labels,
                        bounds: (state.min_ts, state.max_ts),
                    });
                    state.bounds_dirty = false;
                    state.in_index = true;
                }
            }
        }
        let result = self.write_flush(&by_day, &series_rows).map(|written| {
            let metrics = self_metrics();
            metrics.flushed_chunks.inc_by(written.chunks);
            metrics.flushed_bytes.inc_by(written.bytes);
            metrics.flushed_samples.inc_by(written.samples);
        });
        let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
        match result {
            Ok(()) => {
                for (id, count) in taken {
                    if let Some(Some(state)) = head.series.get_mut(id as usize) {
                        state.sealed.drain(..count);
                    }
                }
                Ok(())
            }
            Err(err) => {
                for row in series_rows {
                    if let Some(Some(state)) = head.series.get_mut(row.id as usize) {
                        state.bounds_dirty = true;
                        state.in_index &= row.labels.is_none();
                    }
                }
                Err(err)
            }
        }
    }

    fn write_flush(
        &self,
        by_day: &BTreeMap<Day, Vec<(u32, MemChunk)>>,
        series_rows: &[SeriesRow],
    ) -> Result<Written, MetricsError> {
        let mut written = Written::default();
        // The index first: every series id found in a partition has its labels in the index,
        // so that replay after a crash can never give that id to another series.
        let path = self.layout.signal_dir(Signal::Metrics).join("index.redb");
        let mut encoded = Vec::new();
        for series_rows in series_rows.chunks(CHUNKS_PER_TRANSACTION) {
            let txn = self
                .index
                .begin_write()
                .map_err(|err| storage_error(&path, err))?;
            {
                let mut series = txn.open_table(SERIES).map_err(|err| storage_error(&path, err))?;
                let mut bounds = txn
                    .open_table(SERIES_BOUNDS)
                    .map_err(|err| storage_error(&path, err))?;
                for row in series_rows {
                    if let Some(labels) = &row.labels {
                        encoded.clear();
                        labels.encode(&mut encoded);
                        series
                            .insert(row.id, encoded.as_slice())
                            .map_err(|err| storage_error(&path, err))?;
                    }
                    bounds
                        .insert(row.id, row.bounds)
                        .map_err(|err| storage_error(&path, err))?;
                }
            }
            txn.commit().map_err(|err| storage_error(&path, err))?;
        }
        // A few thousand chunks per transaction: redb holds a transaction's pages in memory
        // until it commits, and the first flush after a restart or a sealing wave (every
        // series sealing its chunk at the same scrape) would otherwise hold all of them.
        for (day, day_chunks) in by_day {
            let path = self.partitions_dir.partition_path(*day, "redb");
            let db = self
                .partition(*day, true)?
                .ok_or_else(|| storage_error(&path, "partition vanished"))?;
            for chunks in day_chunks.chunks(CHUNKS_PER_TRANSACTION) {
                let txn = db.begin_write().map_err(|err| storage_error(&path, err))?;
                {
                    let mut table = txn.open_table(CHUNKS).map_err(|err| storage_error(&path, err))?;
                    for (id, chunk) in chunks {
                        // Two chunks of a series may start at the same millisecond (an
                        // out-of-order chunk beside an in-order one): the sequence tells them
                        // apart. A chunk already stored byte for byte (a flush retried after a
                        // partial failure) is not stored twice.
                        let mut sequence = 0u32;
                        loop {
                            let existing = table
                                .get((*id, chunk.min_ts, sequence))
                                .map_err(|err| storage_error(&path, err))?;
                            match existing {
                                None => break,
                                Some(stored) if stored.value() == &chunk.bytes[..] => {
                                    sequence = u32::MAX;
                                    break;
                                }
                                Some(_) => sequence += 1,
                            }
                        }
                        if sequence == u32::MAX {
                            continue;
                        }
                        table
                            .insert((*id, chunk.min_ts, sequence), &chunk.bytes[..])
                            .map_err(|err| storage_error(&path, err))?;
                        written.chunks += 1;
                        written.bytes += chunk.bytes.len() as u64;
                        written.samples += chunk::sample_count(&chunk.bytes) as u64;
                    }
                }
                txn.commit().map_err(|err| storage_error(&path, err))?;
            }
        }
        Ok(written)
    }

    /// The first, non-blocking half of a checkpoint: rotates the log while no append is
    /// between its log write and its head apply. Returns the rotation point to pass to
    /// [`MetricsStore::finish_checkpoint`].
    pub async fn begin_checkpoint(&self) -> Result<Lsn, MetricsError> {
        let _exclusive = self.apply_gate.write().await;
        Ok(self.wal.rotate().await?)
    }

    /// The second, blocking half of a checkpoint (run it off the async threads): seals every
    /// open chunk, flushes everything with durable commits, then unlinks the log segments
    /// before `rotated_at`.
    pub fn finish_checkpoint(&self, rotated_at: Lsn) -> Result<(), MetricsError> {
        {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            for state in head.series.iter_mut().flatten() {
                state.seal_open_staggered();
            }
        }
        self.flush()?;
        self.wal.remove_segments_before(rotated_at)?;
        Ok(())
    }

    /// Both halves of a checkpoint. The second half blocks the calling thread.
    pub async fn checkpoint(&self) -> Result<(), MetricsError> {
        let rotated_at = self.begin_checkpoint().await?;
        self.finish_checkpoint(rotated_at)
    }

    /// Checkpoints, then closes the write-ahead log. Blocks the calling thread while flushing.
    pub async fn close(&self) -> Result<(), MetricsError> {
        let result = self.checkpoint().await;
        self.wal.close();
        result
    }

    /// Closes the write-ahead log (after a final checkpoint); later appends fail.
    pub fn close_wal(&self) {
        self.wal.close();
    }

    /// The open partition of `day`, created when `create` is set.
    fn partition(&self, day: Day, create: bool) -> Result<Option<Arc<Database>>, MetricsError> {
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(db) = partitions.open.get(&day) {
            return Ok(Some(Arc::clone(db)));
        }
        if !create && !partitions.known_days.contains(&day) {
            return Ok(None);
        }
        let path = self.partitions_dir.partition_path(day, "redb");
        let db = Arc::new(
            Database::builder()
                .set_cache_size(PARTITION_CACHE_BYTES)
                .create(&path)
                .map_err(|err| storage_error(&path, err))?,
        );
        partitions.open.insert(day, Arc::clone(&db));
        partitions.known_days.insert(day);
        Ok(Some(db))
    }

    /// Days with a partition on disk within `[first, last]`.
    fn days_between(&self, first: Day, last: Day) -> Vec<Day> {
        let partitions = self
            .partitions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        partitions.known_days.range(first..=last).copied().collect()
    }

    fn persisted_samples(
        &self,
        id: u32,
        mint: i64,
        maxt: i64,
        into: &mut Vec<(i64, f64)>,
    ) -> Result<(), MetricsError> {
        // Chunks never cross a UTC day, so only the days of the range hold samples of it.
        let first_day = Day::containing(TimestampMs(mint));
        let last_day = Day::containing(TimestampMs(maxt));
        for day in self.days_between(first_day, last_day) {
            let Some(db) = self.partition(day, false)? else {
                continue;
            };
            let path = self.partitions_dir.partition_path(day, "redb");
            let txn = db.begin_read().map_err(|err| storage_error(&path, err))?;
            let table = match txn.open_table(CHUNKS) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => continue,
                Err(err) => return Err(storage_error(&path, err)),
            };
            let range = table
                .range((id, i64::MIN, 0)..=(id, maxt, u32::MAX))
                .map_err(|err| storage_error(&path, err))?;
            for entry in range {
                let (_, bytes) = entry.map_err(|err| storage_error(&path, err))?;
                let samples = chunk::decode(bytes.value()).map_err(|err| storage_error(&path, err))?;
                into.extend(samples.into_iter().filter(|(ts, _)| mint <= *ts && *ts <= maxt));
            }
        }
        Ok(())
    }

    /// The value bits persisted at `ts` for a series, if any (errors read as "none").
    fn persisted_value(&self, id: u32, ts: i64) -> Option<u64> {
        let mut samples = Vec::new();
        self.persisted_samples(id, ts, ts, &mut samples).ok()?;
        samples.first().map(|(_, value)| value.to_bits())
    }

    /// Matching series ids with their labels, among series with data overlapping the range.
    fn matching_series(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<(u32, Labels)> {
        if mint > maxt {
            return Vec::new();
        }
        let head = self.head.read().unwrap_or_else(|poison| poison.into_inner());
        head.matching(matchers)
            .iter()
            .filter_map(|id| {
                let state = head.state(id)?;
                (state.max_ts >= mint && state.min_ts <= maxt).then(|| (id, Labels::clone(&state.labels)))
            })
            .collect()
    }
}

impl MetricsQuerier for MetricsStore {
    fn select(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<SeriesSamples>, StorageError> {
        let mut result = Vec::new();
        if mint_ms > maxt_ms {
            return Ok(result);
        }
        for (id, labels) in self.matching_series(matchers, mint_ms, maxt_ms) {
            let mut samples = Vec::new();
            // Memory first, then disk: a chunk leaves memory only after it is on disk.
            {
                let head = self.head.read().unwrap_or_else(|poison| poison.into_inner());
                if let Some(state) = head.state(id) {
                    state.memory_samples(mint_ms, maxt_ms, &mut samples);
                }
            }
            self.persisted_samples(id, mint_ms, maxt_ms, &mut samples)
                .map_err(|err| StorageError::Read(err.to_string()))?;
            if samples.is_empty() {
                continue;
            }
            samples.sort_by_key(|(ts, _)| *ts);
            samples.dedup_by_key(|(ts, _)| *ts);
            result.push(SeriesSamples { labels, samples });
        }
        result.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(result)
    }

    fn series(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<Labels>, StorageError> {
        let mut labels: Vec<Labels> = self
            .matching_series(matchers, mint_ms, maxt_ms)
            .into_iter()
            .map(|(_, labels)| labels)
            .collect();
        labels.sort();
        Ok(labels)
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let names: BTreeSet<String> = self
            .matching_series(matchers, mint_ms, maxt_ms)
            .into_iter()
            .flat_map(|(_, labels)| {
                labels
                    .iter()
                    .map(|label| label.name.to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(names.into_iter().collect())
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let values: BTreeSet<String> = self
            .matching_series(matchers, mint_ms, maxt_ms)
            .into_iter()
            .filter_map(|(_, labels)| labels.get(name).map(str::to_owned))
            .collect();
        Ok(values.into_iter().collect())
    }

    fn metadata(&self, metric: Option<&str>, limit: Option<usize>) -> Vec<(String, Vec<MetricMetadata>)> {
        let metadata = self.metadata.read().unwrap_or_else(|poison| poison.into_inner());
        let limit = limit.unwrap_or(usize::MAX);
        match metric {
            Some(name) => metadata
                .get(name)
                .map(|entries| vec![(name.to_owned(), entries.clone())])
                .unwrap_or_default()
                .into_iter()
                .take(limit)
                .collect(),
            None => metadata
                .iter()
                .take(limit)
                .map(|(name, entries)| (name.clone(), entries.clone()))
                .collect(),
        }
    }
}

impl PartitionSet for MetricsStore {
    fn signal(&self) -> Signal {
        Signal::Metrics
    }

    fn partitions(&self) -> std::io::Result<Vec<Partition>> {
        self.partitions_dir.partitions()
    }

    fn drop_partition(&self, day: Day) -> std::io::Result<u64> {
        // The unlink happens under the partitions lock, so a flush cannot reopen the file and
        // commit chunks into it in between. Readers holding the database keep the unlinked
        // file until they finish.
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        partitions.open.remove(&day);
        partitions.known_days.remove(&day);
        self.partitions_dir.drop_partition(day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At which of `steps` scrapes (one sample each, 15 s apart from `start`) each series
    /// seals a chunk, for series created together.
    fn seal_steps(states: &mut [SeriesState], start: i64, steps: std::ops::Range<i64>) -> Vec<Vec<i64>> {
        let mut sealed_at = vec![Vec::new(); states.len()];
        for step in steps {
            for (state, sealed_at) in states.iter_mut().zip(&mut sealed_at) {
                let before = state.sealed.len();
                assert!(state.apply(start + step * 15_000, step as f64));
                if state.sealed.len() > before {
                    sealed_at.push(step);
                }
            }
        }
        sealed_at
    }

    #[test]
    fn series_created_together_seal_their_chunks_at_different_scrapes() {
        let labels = Arc::new(Labels::from_pairs([("__name__", "wave")]).unwrap());
        let mut states: Vec<SeriesState> = (0..120)
            .map(|id| SeriesState::new(Arc::clone(&labels), id))
            .collect();
        // Midnight of a day, so that no day boundary falls in the 400 scrapes (100 minutes).
        let start = 20_000 * 86_400_000;
        let sealed_at = seal_steps(&mut states, start, 0..400);
        // The first chunk of series `id` holds 120 - id % 60 samples, the later ones 120.
        for (id, steps) in sealed_at.iter().enumerate() {
            let first = 120 - id as i64 % 60;
            assert_eq!(steps, &[first, first + 120, first + 240], "series {id}");
        }
        let distinct: std::collections::BTreeSet<i64> = sealed_at.iter().map(|steps| steps[0]).collect();
        assert_eq!(distinct.len(), 60);
        // A checkpoint seals every chunk at once; the next ones are staggered again.
        for state in &mut states {
            state.seal_open_staggered();
        }
        let sealed_at = seal_steps(&mut states, start, 400..700);
        for (id, steps) in sealed_at.iter().enumerate() {
            let first = 400 + 120 - id as i64 % 60;
            assert_eq!(steps[..2], [first, first + 120], "series {id}");
        }
    }

    #[test]
    fn a_later_sample_is_another_day_exactly_when_day_containing_says_so() {
        const DAY_MS: i64 = 86_400_000;
        let mut timestamps = vec![i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX, 0, 1, -1];
        for day in [
            -3i64,
            -1,
            0,
            1,
            20_000,
            i64::from(i32::MAX) - 1,
            i64::from(i32::MAX),
        ] {
            for offset in [-1, 0, 1, DAY_MS / 2, DAY_MS - 1] {
                timestamps.push(day * DAY_MS + offset);
            }
        }
        timestamps.push(i64::from(i32::MIN) * DAY_MS - 1);
        timestamps.push(i64::from(i32::MIN) * DAY_MS);
        timestamps.push((i64::from(i32::MIN) + 1) * DAY_MS - 1);
        timestamps.push((i64::from(i32::MIN) + 1) * DAY_MS);
        for &first in &timestamps {
            for &ts in timestamps.iter().filter(|&&ts| ts > first) {
                let other_day = Day::containing(TimestampMs(ts)) != Day::containing(TimestampMs(first));
                assert_eq!(ts > last_ms_of_day(first), other_day, "first {first}, then {ts}");
            }
        }
    }
}
