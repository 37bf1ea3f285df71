//! The metrics store: series registry, postings, head, day partitions, write-ahead log.
//!
//! Write path: [`MetricsStore::append`] validates a batch against the head (retention, future
//! tolerance, out-of-order window, duplicates), appends the accepted samples to the
//! write-ahead log and waits until they are durable, applies them to the head, and only then
//! returns. Read path: [`MetricsStore`] implements [`MetricsQuerier`] over the head and the day
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
//! A checkpoint rotates the log while no append is between its log write and its head apply,
//! seals every open chunk, flushes everything to the partitions and the index with an
//! immediately durable commit, and only then unlinks the log segments before the rotation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use obs_core::Signal;
use obs_core::error::{Classify, ErrorKind};
use obs_core::partition::{DataLayout, DayPartitionDir, DiskPressure, Partition, PartitionSet};
use obs_core::series::{Labels, Matcher, MetricsQuerier, SeriesSamples, StorageError};
use obs_core::time::{Day, TimestampMs};
use obs_core::wal::{Wal, WalError, WalOptions};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use roaring::RoaringBitmap;

use crate::chunk::{self, XorEncoder};
use crate::walrec;

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
    /// The write-ahead log.
    pub wal: WalOptions,
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
            wal: WalOptions::named("metrics"),
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

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            RejectReason::TooOld => write!(
                f,
                "sample at {} for series {} is older than the retention",
                self.timestamp_ms.unwrap_or_default(),
                self.labels
            ),
            RejectReason::TooFarInFuture => write!(
                f,
                "sample at {} for series {} is too far in the future",
                self.timestamp_ms.unwrap_or_default(),
                self.labels
            ),
            RejectReason::OutOfOrder => write!(
                f,
                "out of order sample at {} for series {}: older than the out-of-order window",
                self.timestamp_ms.unwrap_or_default(),
                self.labels
            ),
            RejectReason::DuplicateTimestamp => write!(
                f,
                "duplicate sample for timestamp {} with a different value, series {}",
                self.timestamp_ms.unwrap_or_default(),
                self.labels
            ),
            RejectReason::DeniedLabel(name) => write!(
                f,
                "label name {name:?} is not allowed on metrics (series {}); put it in logs or traces",
                self.labels
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

/// A sealed chunk in memory, waiting for a flush.
#[derive(Debug, Clone)]
struct MemChunk {
    min_ts: i64,
    max_ts: i64,
    bytes: Arc<Vec<u8>>,
}

#[derive(Debug)]
struct SeriesState {
    labels: Labels,
    open: XorEncoder,
    sealed: Vec<MemChunk>,
    out_of_order: BTreeMap<i64, u64>,
    min_ts: i64,
    max_ts: i64,
    /// Bounds or labels changed since the last flush.
    dirty: bool,
}

impl SeriesState {
    fn new(labels: Labels) -> SeriesState {
        SeriesState {
            labels,
            open: XorEncoder::new(),
            sealed: Vec::new(),
            out_of_order: BTreeMap::new(),
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            dirty: true,
        }
    }

    fn seal_open(&mut self) {
        if self.open.is_empty() {
            return;
        }
        let open = std::mem::replace(&mut self.open, XorEncoder::new());
        self.sealed.push(MemChunk {
            min_ts: open.first_ts(),
            max_ts: open.last_ts(),
            bytes: Arc::new(open.to_bytes()),
        });
    }

    /// Turns out-of-order samples into sealed chunks (split by day and chunk size).
    fn seal_out_of_order(&mut self) {
        let samples = std::mem::take(&mut self.out_of_order);
        let mut encoder = XorEncoder::new();
        for (ts, bits) in samples {
            let new_day = !encoder.is_empty()
                && Day::containing(TimestampMs(ts)) != Day::containing(TimestampMs(encoder.first_ts()));
            if new_day || encoder.len() >= SAMPLES_PER_CHUNK {
                self.sealed.push(MemChunk {
                    min_ts: encoder.first_ts(),
                    max_ts: encoder.last_ts(),
                    bytes: Arc::new(encoder.to_bytes()),
                });
                encoder = XorEncoder::new();
            }
            encoder.append(ts, f64::from_bits(bits));
        }
        if !encoder.is_empty() {
            self.sealed.push(MemChunk {
                min_ts: encoder.first_ts(),
                max_ts: encoder.last_ts(),
                bytes: Arc::new(encoder.to_bytes()),
            });
        }
    }

    /// The value bits stored at `ts` in memory, if any.
    fn value_in_memory(&self, ts: i64) -> Option<u64> {
        if let Some(bits) = self.out_of_order.get(&ts) {
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
            self.open.append(ts, value);
        } else if !self.open.is_empty() && ts > self.open.last_ts() {
            let other_day =
                Day::containing(TimestampMs(ts)) != Day::containing(TimestampMs(self.open.first_ts()));
            if other_day || self.open.len() >= SAMPLES_PER_CHUNK {
                self.seal_open();
            }
            self.open.append(ts, value);
        } else {
            if self.value_in_memory(ts).is_some() {
                return false;
            }
            self.out_of_order.insert(ts, bits);
        }
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        self.dirty = true;
        true
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
        into.extend(
            self.out_of_order
                .range(mint..=maxt)
                .map(|(ts, bits)| (*ts, f64::from_bits(*bits))),
        );
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
    by_labels: HashMap<Labels, u32>,
    series: Vec<Option<SeriesState>>,
    /// label name -> label value -> series ids.
    postings: BTreeMap<String, BTreeMap<String, RoaringBitmap>>,
    all: RoaringBitmap,
}

impl Head {
    fn get_or_create(&mut self, labels: &Labels) -> u32 {
        if let Some(&id) = self.by_labels.get(labels) {
            return id;
        }
        let id = self.series.len() as u32;
        self.insert(id, SeriesState::new(labels.clone()));
        id
    }

    fn insert(&mut self, id: u32, state: SeriesState) {
        for label in state.labels.iter() {
            self.postings
                .entry(label.name.clone())
                .or_default()
                .entry(label.value.clone())
                .or_default()
                .insert(id);
        }
        self.all.insert(id);
        self.by_labels.insert(state.labels.clone(), id);
        let index = id as usize;
        if self.series.len() <= index {
            self.series.resize_with(index + 1, || None);
        }
        self.series[index] = Some(state);
    }

    fn state(&self, id: u32) -> Option<&SeriesState> {
        self.series.get(id as usize).and_then(Option::as_ref)
    }

    /// Series ids matching every matcher.
    fn matching(&self, matchers: &[Matcher]) -> RoaringBitmap {
        let mut result = self.all.clone();
        for matcher in matchers {
            let values = self.postings.get(&matcher.name);
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

/// The metrics store. See the [module docs](self).
pub struct MetricsStore {
    layout: DataLayout,
    options: MetricsOptions,
    partitions_dir: DayPartitionDir,
    wal: Wal,
    index: Database,
    head: RwLock<Head>,
    partitions: Mutex<BTreeMap<Day, Arc<Database>>>,
    /// Held shared from before a batch's log write until its head apply; held exclusively by a
    /// checkpoint while it rotates the log.
    apply_gate: tokio::sync::RwLock<()>,
    /// Serializes flushes.
    flush_lock: Mutex<()>,
    chunk_sequence: AtomicU32,
    pressure: OnceLock<Arc<DiskPressure>>,
}

impl std::fmt::Debug for MetricsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsStore")
            .field("dir", &self.layout.signal_dir(Signal::Metrics))
            .finish_non_exhaustive()
    }
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
        let index = Database::create(&index_path).map_err(|err| storage_error(&index_path, err))?;
        let mut head = Head::default();
        let mut report = OpenReport::default();
        {
            let txn = index
                .begin_read()
                .map_err(|err| storage_error(&index_path, err))?;
            if let (Ok(series), Ok(bounds)) = (txn.open_table(SERIES), txn.open_table(SERIES_BOUNDS)) {
                for entry in series.iter().map_err(|err| storage_error(&index_path, err))? {
                    let (id, encoded) = entry.map_err(|err| storage_error(&index_path, err))?;
                    let id = id.value();
                    let (labels, _) =
                        Labels::decode(encoded.value()).map_err(|err| storage_error(&index_path, err))?;
                    let mut state = SeriesState::new(labels);
                    if let Some(range) = bounds.get(id).map_err(|err| storage_error(&index_path, err))? {
                        (state.min_ts, state.max_ts) = range.value();
                    }
                    state.dirty = false;
                    head.insert(id, state);
                    report.indexed_series += 1;
                }
            }
        }
        let mut replayed_samples = 0u64;
        let mut record_error = None;
        let (wal, wal_report) = Wal::open(
            &layout.wal_dir(Signal::Metrics),
            options.wal.clone(),
            |_, payload| {
                match walrec::decode(payload) {
                    Ok(batch) => {
                        for series in batch {
                            let id = head.get_or_create(&series.labels);
                            if let Some(Some(state)) = head.series.get_mut(id as usize) {
                                for (ts, value) in series.samples {
                                    state.apply(ts, value);
                                    replayed_samples += 1;
                                }
                            }
                        }
                        Ok(())
                    }
                    Err(err) => {
                        // A record that passed its checksum but does not decode is a bug, not
                        // damage: stop rather than silently skip acknowledged data.
                        record_error = Some(err.clone());
                        Err(err)
                    }
                }
            },
        )
        .map_err(|err| match record_error.take() {
            Some(message) => MetricsError::Record(message),
            None => MetricsError::Wal(err),
        })?;
        report.replayed_records = wal_report.records;
        report.replayed_samples = replayed_samples;
        report.wal_corruptions = wal_report.corruptions.len();
        let store = MetricsStore {
            layout: layout.clone(),
            options,
            partitions_dir: DayPartitionDir::new(Signal::Metrics, dir),
            wal,
            index,
            head: RwLock::new(head),
            partitions: Mutex::new(BTreeMap::new()),
            apply_gate: tokio::sync::RwLock::new(()),
            flush_lock: Mutex::new(()),
            chunk_sequence: AtomicU32::new(0),
            pressure: OnceLock::new(),
        };
        Ok((store, report))
    }

    /// Makes ingest refuse batches while `pressure` says the disk budget is exhausted.
    pub fn set_disk_pressure(&self, pressure: Arc<DiskPressure>) {
        let _ = self.pressure.set(pressure);
    }

    /// Validates, logs durably and applies a batch. Returns once every accepted sample is in
    /// the write-ahead log under its fsync policy and visible to queries.
    pub async fn append(
        &self,
        batch: Vec<SeriesSamples>,
        now: TimestampMs,
    ) -> Result<AppendOutcome, MetricsError> {
        if self
            .pressure
            .get()
            .is_some_and(|pressure| pressure.is_over_budget())
        {
            return Err(MetricsError::DiskFull);
        }
        let _gate = self.apply_gate.read().await;
        let (accepted, mut outcome) = self.validate(batch, now);
        if accepted.is_empty() {
            return Ok(outcome);
        }
        let record = walrec::encode(&accepted);
        self.wal.append(record).await?;
        let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
        for series in accepted {
            let id = head.get_or_create(&series.labels);
            if let Some(Some(state)) = head.series.get_mut(id as usize) {
                for (ts, value) in series.samples {
                    if state.apply(ts, value) {
                        outcome.accepted += 1;
                    } else {
                        outcome.duplicates += 1;
                    }
                }
            }
        }
        Ok(outcome)
    }

    fn validate(&self, batch: Vec<SeriesSamples>, now: TimestampMs) -> (Vec<SeriesSamples>, AppendOutcome) {
        let mut outcome = AppendOutcome::default();
        let oldest = now.saturating_sub(self.options.retention).0;
        let newest = now
            .0
            .saturating_add(self.options.future_tolerance.as_millis() as i64);
        let window = self.options.out_of_order_window.as_millis() as i64;
        let head = self.head.read().unwrap_or_else(|poison| poison.into_inner());
        let mut accepted = Vec::with_capacity(batch.len());
        for mut series in batch {
            if let Some(denied) = self
                .options
                .denied_label_names
                .iter()
                .find(|name| series.labels.get(name).is_some())
            {
                outcome.rejected.push(Rejection {
                    labels: series.labels,
                    timestamp_ms: None,
                    reason: RejectReason::DeniedLabel(denied.clone()),
                });
                continue;
            }
            series.samples.sort_by_key(|(ts, _)| *ts);
            let series_id = head.by_labels.get(&series.labels).copied();
            let state = series_id.and_then(|id| head.state(id));
            let mut newest_seen = state.map_or(i64::MIN, |state| state.max_ts);
            let mut kept: Vec<(i64, f64)> = Vec::with_capacity(series.samples.len());
            for (ts, value) in std::mem::take(&mut series.samples) {
                let reason = if ts < oldest {
                    Some(RejectReason::TooOld)
                } else if ts > newest {
                    Some(RejectReason::TooFarInFuture)
                } else if ts < newest_seen.saturating_sub(window) {
                    Some(RejectReason::OutOfOrder)
                } else {
                    let existing = kept
                        .iter()
                        .rev()
                        .find(|(kept_ts, _)| *kept_ts == ts)
                        .map(|(_, v)| v.to_bits())
                        .or_else(|| {
                            if ts > newest_seen {
                                return None;
                            }
                            // Late samples are checked against memory, then against the
                            // partitions (rare, so the disk read is affordable).
                            state
                                .and_then(|s| s.value_in_memory(ts))
                                .or_else(|| series_id.and_then(|id| self.persisted_value(id, ts)))
                        });
                    match existing {
                        Some(bits) if bits == value.to_bits() => {
                            outcome.duplicates += 1;
                            continue;
                        }
                        Some(_) => Some(RejectReason::DuplicateTimestamp),
                        None => None,
                    }
                };
                match reason {
                    Some(reason) => outcome.rejected.push(Rejection {
                        labels: series.labels.clone(),
                        timestamp_ms: Some(ts),
                        reason,
                    }),
                    None => {
                        newest_seen = newest_seen.max(ts);
                        kept.push((ts, value));
                    }
                }
            }
            if !kept.is_empty() {
                accepted.push(SeriesSamples {
                    labels: series.labels,
                    samples: kept,
                });
            }
        }
        (accepted, outcome)
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
        let mut series_rows: Vec<(u32, Vec<u8>, (i64, i64))> = Vec::new();
        {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            for (index, slot) in head.series.iter_mut().enumerate() {
                let Some(state) = slot else { continue };
                let id = index as u32;
                if !state.out_of_order.is_empty() {
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
                if state.dirty {
                    let mut encoded = Vec::new();
                    state.labels.encode(&mut encoded);
                    series_rows.push((id, encoded, (state.min_ts, state.max_ts)));
                    state.dirty = false;
                }
            }
        }
        let result = self.write_flush(&by_day, &series_rows);
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
                for (id, _, _) in series_rows {
                    if let Some(Some(state)) = head.series.get_mut(id as usize) {
                        state.dirty = true;
                    }
                }
                Err(err)
            }
        }
    }

    fn write_flush(
        &self,
        by_day: &BTreeMap<Day, Vec<(u32, MemChunk)>>,
        series_rows: &[(u32, Vec<u8>, (i64, i64))],
    ) -> Result<(), MetricsError> {
        for (day, chunks) in by_day {
            let db = self
                .partition(*day, true)?
                .ok_or_else(|| storage_error(&self.partitions_dir.partition_path(*day, "redb"), "missing"))?;
            let path = self.partitions_dir.partition_path(*day, "redb");
            let txn = db.begin_write().map_err(|err| storage_error(&path, err))?;
            {
                let mut table = txn.open_table(CHUNKS).map_err(|err| storage_error(&path, err))?;
                for (id, chunk) in chunks {
                    let sequence = self.chunk_sequence.fetch_add(1, Ordering::Relaxed);
                    table
                        .insert((*id, chunk.min_ts, sequence), chunk.bytes.as_slice())
                        .map_err(|err| storage_error(&path, err))?;
                }
            }
            txn.commit().map_err(|err| storage_error(&path, err))?;
        }
        if !series_rows.is_empty() {
            let path = self.layout.signal_dir(Signal::Metrics).join("index.redb");
            let txn = self
                .index
                .begin_write()
                .map_err(|err| storage_error(&path, err))?;
            {
                let mut series = txn.open_table(SERIES).map_err(|err| storage_error(&path, err))?;
                let mut bounds = txn
                    .open_table(SERIES_BOUNDS)
                    .map_err(|err| storage_error(&path, err))?;
                for (id, encoded, range) in series_rows {
                    series
                        .insert(*id, encoded.as_slice())
                        .map_err(|err| storage_error(&path, err))?;
                    bounds
                        .insert(*id, *range)
                        .map_err(|err| storage_error(&path, err))?;
                }
            }
            txn.commit().map_err(|err| storage_error(&path, err))?;
        }
        Ok(())
    }

    /// Persists everything accepted so far and truncates the write-ahead log behind it.
    pub async fn checkpoint(&self) -> Result<(), MetricsError> {
        let rotated_at = {
            let _exclusive = self.apply_gate.write().await;
            self.wal.rotate().await?
        };
        {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            for state in head.series.iter_mut().flatten() {
                state.seal_open();
            }
        }
        self.flush()?;
        self.wal.remove_segments_before(rotated_at)?;
        Ok(())
    }

    /// Checkpoints, then closes the write-ahead log.
    pub async fn close(&self) -> Result<(), MetricsError> {
        let result = self.checkpoint().await;
        self.wal.close();
        result
    }

    /// The open partition of `day`, created when `create` is set.
    fn partition(&self, day: Day, create: bool) -> Result<Option<Arc<Database>>, MetricsError> {
        let mut partitions = self
            .partitions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(db) = partitions.get(&day) {
            return Ok(Some(Arc::clone(db)));
        }
        let path = self.partitions_dir.partition_path(day, "redb");
        if !create && !path.exists() {
            return Ok(None);
        }
        let db = Arc::new(Database::create(&path).map_err(|err| storage_error(&path, err))?);
        partitions.insert(day, Arc::clone(&db));
        Ok(Some(db))
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
        for day in first_day.0..=last_day.0 {
            let day = Day(day);
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
        let head = self.head.read().unwrap_or_else(|poison| poison.into_inner());
        head.matching(matchers)
            .iter()
            .filter_map(|id| {
                let state = head.state(id)?;
                (state.max_ts >= mint && state.min_ts <= maxt).then(|| (id, state.labels.clone()))
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

    fn label_names(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<String>, StorageError> {
        let names: BTreeSet<String> = self
            .matching_series(matchers, mint_ms, maxt_ms)
            .into_iter()
            .flat_map(|(_, labels)| labels.iter().map(|label| label.name.clone()).collect::<Vec<_>>())
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
}

impl PartitionSet for MetricsStore {
    fn signal(&self) -> Signal {
        Signal::Metrics
    }

    fn partitions(&self) -> std::io::Result<Vec<Partition>> {
        self.partitions_dir.partitions()
    }

    fn drop_partition(&self, day: Day) -> std::io::Result<u64> {
        // Readers holding the database keep the unlinked file until they finish.
        self.partitions
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(&day);
        self.partitions_dir.drop_partition(day)
    }
}
