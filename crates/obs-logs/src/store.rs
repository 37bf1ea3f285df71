//! The log store: stream registry, head, day indexes, write-ahead log.
//!
//! Write path: [`LogStore::append`] validates each entry (limits, time bounds), derives
//! `service_name` and `detected_level` as Loki 3 does, resolves each stream to its id, queues
//! the write-ahead log record of the accepted entries and puts them in the head, all under
//! the head lock so that the log's order is the head's; then it waits until the record is
//! durable and only then returns. Entries are visible to queries as soon as they are in the
//! head.
//!
//! [`LogStore::flush`] is also the checkpoint: it rotates the log while no append is between
//! its log write and its head apply, writes new streams to the registry, adds the head's
//! entries to their days' indexes with a durable commit, and only then unlinks the log
//! segments before the rotation. The head's entries stay visible while they are written.
//!
//! Where data lives:
//! - `<data>/logs/wal/`: every accepted push, until a flush has indexed it;
//! - the head (memory): entries since the last flush;
//! - `<data>/logs/streams.redb`: stream id → label set and time bounds;
//! - `<data>/logs/YYYY-MM-DD/`: the tantivy index of that UTC day (see `index`).

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use obs_core::Signal;
use obs_core::error::{Classify, ErrorKind};
use obs_core::partition::{DataLayout, DayPartitionDir, DiskPressure, Partition, PartitionSet};
use obs_core::series::Labels;
use obs_core::time::{Day, TimestampMs};
use obs_core::wal::{Wal, WalError, WalOptions};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::block;
use crate::index::{DayIndex, DayQuery, DocStores, KeyedEntry, NewBlock, needle_tokens};
use crate::keys;
use crate::model::{EntryLimits, LogEntry, StreamEntries, TimestampNs};
use crate::walrec;

/// The registry: stream id → encoded label set.
const STREAMS: TableDefinition<'_, u32, &[u8]> = TableDefinition::new("streams");
/// The registry: stream id → (min, max) timestamp in nanoseconds.
const STREAM_BOUNDS: TableDefinition<'_, u32, (i64, i64)> = TableDefinition::new("stream_bounds");

/// redb's page cache for the registry.
const REGISTRY_CACHE_BYTES: usize = 16 << 20;
const NS_PER_MS: i64 = 1_000_000;
const DAY_NS: i64 = 86_400_000 * NS_PER_MS;
/// A block holds at most this many bytes of lines (Loki's `chunk_block_size` is 256 KB)…
const BLOCK_LINE_BYTES: usize = 256 << 10;
/// …and at most this many entries.
const BLOCK_ENTRIES: usize = 8192;
/// zstd level of the blocks a flush writes (fast: a flush is on the ingest path).
const FLUSH_ZSTD_LEVEL: i32 = 3;
/// zstd level of the blocks a compaction writes (measured on container logs: 6.3× against
/// 5.2× at level 3, at 60 MB/s).
const COMPACT_ZSTD_LEVEL: i32 = 9;
/// How often a flush also compacts the days it finds fragmented.
const COMPACT_INTERVAL: Duration = Duration::from_secs(600);
/// How long a flush's compaction may go on before it leaves the other days to the next flush.
const COMPACT_BUDGET: Duration = Duration::from_secs(2);

/// Settings of the log store.
#[derive(Debug, Clone)]
pub struct LogsOptions {
    /// Entries older than this (relative to now) are refused; days older are dropped.
    pub retention: Duration,
    /// How far ahead of now an entry may be (Loki's `creation_grace_period`: 10 minutes).
    pub future_tolerance: Duration,
    /// Per-entry and per-stream limits.
    pub limits: EntryLimits,
    /// The most streams the store holds; entries of new streams beyond it are refused.
    pub max_streams: usize,
    /// The correlation keys indexed as exact terms.
    pub correlation_keys: Vec<String>,
    /// Add `service_name` to streams without it, as Loki 3 does.
    pub discover_service_name: bool,
    /// Add `detected_level` to entries' structured metadata, as Loki 3 does.
    pub discover_log_levels: bool,
    /// Flush when the head holds this many bytes of lines, without waiting for the timer; at
    /// twice this, pushes are refused as overload (429) until a flush has caught up.
    pub head_flush_bytes: usize,
    /// The write-ahead log.
    pub wal: WalOptions,
}

impl Default for LogsOptions {
    fn default() -> LogsOptions {
        LogsOptions {
            retention: Duration::from_secs(14 * 86_400),
            future_tolerance: Duration::from_secs(600),
            limits: EntryLimits::default(),
            max_streams: 100_000,
            correlation_keys: keys::DEFAULT_CORRELATION_KEYS.map(String::from).to_vec(),
            discover_service_name: true,
            discover_log_levels: true,
            head_flush_bytes: 32 << 20,
            wal: WalOptions::named("logs"),
        }
    }
}

/// Errors of the log store.
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The data directory is over its disk budget.
    #[error("the data directory is over its disk budget; ingest resumes when retention frees space")]
    DiskFull,
    /// An index or the registry failed.
    #[error("log storage failed: {0}")]
    Storage(String),
    /// A log record could not be decoded during replay.
    #[error("logs write-ahead log record is unreadable: {0}")]
    Record(String),
    /// More entries wait in memory than a flush has caught up with.
    #[error("the log store is flushing a backlog of {0} bytes of lines; retry shortly")]
    Backlog(usize),
}

impl Classify for LogsError {
    fn kind(&self) -> ErrorKind {
        match self {
            LogsError::Wal(err) => err.kind(),
            LogsError::DiskFull | LogsError::Backlog(_) => ErrorKind::Overloaded,
            LogsError::Storage(_) | LogsError::Record(_) => ErrorKind::Internal,
        }
    }
}

fn storage_error(path: &std::path::Path, err: impl std::fmt::Display) -> LogsError {
    LogsError::Storage(format!("{}: {err}", path.display()))
}

/// One refused entry (or stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEntry {
    /// Why, in Loki's words where Loki has them.
    pub message: String,
    /// Loki's reason label (`line_too_long`, `greater_than_max_sample_age`, …).
    pub reason: &'static str,
}

/// What an append did.
#[derive(Debug, Clone, Default)]
pub struct AppendOutcome {
    /// Entries stored.
    pub accepted: u64,
    /// Bytes of lines stored.
    pub accepted_bytes: u64,
    /// Entries refused, each with its reason.
    pub refused: Vec<RefusedEntry>,
}

/// The order entries are delivered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Newest first (Loki's default, `backward`).
    #[default]
    Backward,
    /// Oldest first.
    Forward,
}

/// What to select.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Inclusive start, nanoseconds.
    pub start_ns: TimestampNs,
    /// Exclusive end, nanoseconds.
    pub end_ns: TimestampNs,
    /// Substrings every selected line contains (case-sensitive); the index pre-filters on
    /// their whole tokens.
    pub line_contains: Vec<String>,
    /// Correlation keys every selected entry carries with exactly this value.
    pub keys: Vec<(String, String)>,
    /// Delivery order.
    pub direction: Direction,
}

/// One selected entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectedEntry {
    /// The stream's labels.
    pub stream: Arc<Labels>,
    /// The entry.
    pub entry: LogEntry,
}

/// A stream known to the store.
#[derive(Debug, Clone)]
struct StreamInfo {
    labels: Arc<Labels>,
    min_ns: i64,
    max_ns: i64,
    /// Changed since the last flush.
    dirty: bool,
}

#[derive(Debug, Default)]
struct Streams {
    by_labels: HashMap<Arc<Labels>, u32, foldhash::fast::RandomState>,
    list: Vec<StreamInfo>,
}

impl Streams {
    fn insert(&mut self, labels: Arc<Labels>, min_ns: i64, max_ns: i64, dirty: bool) -> u32 {
        let id = self.list.len() as u32;
        self.by_labels.insert(Arc::clone(&labels), id);
        self.list.push(StreamInfo {
            labels,
            min_ns,
            max_ns,
            dirty,
        });
        id
    }

    fn note(&mut self, id: u32, ts: i64) {
        if let Some(info) = self.list.get_mut(id as usize) {
            if ts < info.min_ns || ts > info.max_ns {
                info.dirty = true;
            }
            info.min_ns = info.min_ns.min(ts);
            info.max_ns = info.max_ns.max(ts);
        }
    }

    /// Ids of streams matching every matcher with data overlapping `[start, end)`.
    fn matching(&self, matches_stream: &dyn Fn(&Labels) -> bool, start_ns: i64, end_ns: i64) -> Vec<u32> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, info)| info.max_ns >= start_ns && info.min_ns < end_ns)
            .filter(|(_, info)| matches_stream(&info.labels))
            .map(|(id, _)| id as u32)
            .collect()
    }
}

#[derive(Debug)]
struct HeadEntry {
    stream: u32,
    entry: LogEntry,
    keys: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Head {
    entries: Vec<HeadEntry>,
    line_bytes: usize,
    /// Entries being written to the indexes by a flush (still visible to queries).
    flushing: Arc<Vec<HeadEntry>>,
}

#[derive(Debug, Default)]
struct Days {
    open: BTreeMap<Day, Arc<DayIndex>>,
}

/// The log store. See the [module docs](self).
#[derive(Debug)]
pub struct LogStore {
    options: LogsOptions,
    dir: PathBuf,
    partitions_dir: DayPartitionDir,
    wal: Wal,
    registry: Database,
    streams: RwLock<Streams>,
    head: RwLock<Head>,
    days: Mutex<Days>,
    /// Appends hold it shared from their log write to their head apply; a flush takes it
    /// exclusively to rotate the log at a point where the head holds every earlier record.
    apply_gate: Arc<tokio::sync::RwLock<()>>,
    flush_lock: Mutex<()>,
    pressure: OnceLock<Arc<DiskPressure>>,
    /// Woken when the head passes `head_flush_bytes`.
    flush_wanted: tokio::sync::Notify,
    /// When the last compaction ran (see [`LogStore::compact`]).
    last_compaction: Mutex<std::time::Instant>,
}

/// What opening found.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// Streams in the registry.
    pub streams: usize,
    /// Log records replayed into the head.
    pub replayed_records: u64,
    /// Entries replayed.
    pub replayed_entries: u64,
    /// Damaged records found (and cut off) in the log.
    pub wal_corruptions: usize,
    /// Entries of replayed records that their day's index already held (not indexed twice).
    pub skipped_indexed_entries: u64,
}

impl LogStore {
    /// Opens the store under `layout`, replaying the write-ahead log into the head.
    pub fn open(layout: &DataLayout, options: LogsOptions) -> Result<(LogStore, OpenReport), LogsError> {
        let dir = layout.signal_dir(Signal::Logs);
        std::fs::create_dir_all(&dir).map_err(|err| storage_error(&dir, err))?;
        let registry_path = dir.join("streams.redb");
        let registry = Database::builder()
            .set_cache_size(REGISTRY_CACHE_BYTES)
            .create(&registry_path)
            .map_err(|err| storage_error(&registry_path, err))?;
        let mut streams = Streams::default();
        load_registry(&registry, &registry_path, &mut streams)?;
        let mut report = OpenReport {
            streams: streams.list.len(),
            ..OpenReport::default()
        };
        let mut head = Head::default();
        let partitions_dir = DayPartitionDir::new(Signal::Logs, dir.clone());
        // Each day index records the log position its last commit covers: a record before it
        // is already indexed for that day (a crash came between the commit and the unlinking of
        // the log segments), and replaying it would index its entries twice.
        let mut days = Days::default();
        let mut indexed_through: BTreeMap<Day, u64> = BTreeMap::new();
        for partition in partitions_dir
            .partitions()
            .map_err(|err| storage_error(&dir, err))?
        {
            let path = partitions_dir.partition_path(partition.day, "");
            if !path.join("meta.json").exists() {
                continue;
            }
            let index = Arc::new(DayIndex::open(&path).map_err(LogsError::Storage)?);
            indexed_through.insert(
                partition.day,
                index.indexed_through().map_err(LogsError::Storage)?,
            );
            days.open.insert(partition.day, index);
        }
        let mut record_error = None;
        let (wal, wal_report) = Wal::open(
            &layout.wal_dir(Signal::Logs),
            options.wal.clone(),
            |lsn, payload| {
                let result = walrec::decode(payload).map(|record| {
                    for stream in record {
                        let labels = Arc::new(stream.labels);
                        let id = match streams.by_labels.get(&labels) {
                            Some(&id) => id,
                            None => streams.insert(Arc::clone(&labels), i64::MAX, i64::MIN, true),
                        };
                        for entry in stream.entries {
                            streams.note(id, entry.timestamp_ns);
                            let day = day_of_ns(entry.timestamp_ns);
                            if indexed_through.get(&day).is_some_and(|&through| lsn < through) {
                                report.skipped_indexed_entries += 1;
                                continue;
                            }
                            let keys = keys::correlation_keys(&options.correlation_keys, &labels, &entry);
                            head.line_bytes += entry.line.len();
                            head.entries.push(HeadEntry {
                                stream: id,
                                entry,
                                keys,
                            });
                            report.replayed_entries += 1;
                        }
                    }
                });
                if let Err(err) = &result {
                    record_error = Some(err.clone());
                }
                result
            },
        )
        .map_err(|err| match record_error.take() {
            Some(message) => LogsError::Record(message),
            None => LogsError::Wal(err),
        })?;
        report.replayed_records = wal_report.records;
        report.wal_corruptions = wal_report.corruptions.len();
        let store = LogStore {
            partitions_dir,
            dir,
            options,
            wal,
            registry,
            streams: RwLock::new(streams),
            head: RwLock::new(head),
            days: Mutex::new(days),
            apply_gate: Arc::new(tokio::sync::RwLock::new(())),
            flush_lock: Mutex::new(()),
            pressure: OnceLock::new(),
            flush_wanted: tokio::sync::Notify::new(),
            last_compaction: Mutex::new(std::time::Instant::now()),
        };
        self_metrics().streams.set(store.stream_count() as i64);
        Ok((store, report))
    }

    /// Makes appends answer "disk full" while the data directory is over its budget.
    pub fn set_disk_pressure(&self, pressure: Arc<DiskPressure>) {
        let _ = self.pressure.set(pressure);
    }

    /// The store's settings.
    pub fn options(&self) -> &LogsOptions {
        &self.options
    }

    /// How many streams the store knows.
    pub fn stream_count(&self) -> usize {
        self.streams
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .list
            .len()
    }

    /// Appends streams of entries at `now`. Refused entries are reported in the outcome and
    /// the others stored; returns once the accepted entries are durable.
    pub async fn append(
        &self,
        batch: Vec<StreamEntries>,
        now: TimestampMs,
    ) -> Result<AppendOutcome, LogsError> {
        if self
            .pressure
            .get()
            .is_some_and(|pressure| pressure.is_over_budget())
        {
            return Err(LogsError::DiskFull);
        }
        let backlog = self
            .head
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .line_bytes;
        if backlog >= self.options.head_flush_bytes.saturating_mul(2) {
            self.flush_wanted.notify_one();
            return Err(LogsError::Backlog(backlog));
        }
        let mut outcome = AppendOutcome::default();
        let accepted = self.validate(batch, now, &mut outcome);
        if accepted.is_empty() {
            count_refusals(&outcome);
            return Ok(outcome);
        }
        let _permit = Arc::clone(&self.apply_gate).read_owned().await;
        let record = walrec::encode(&accepted);
        let reservation = self.wal.reserve(record.len()).await?;
        let pending = {
            let mut streams = self.streams.write().unwrap_or_else(|poison| poison.into_inner());
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            // Stream limits are checked here, under the lock, so concurrent pushes cannot
            // pass the limit together.
            let mut resolved = Vec::with_capacity(accepted.len());
            let mut kept = Vec::with_capacity(accepted.len());
            for stream in accepted {
                let labels = Arc::new(stream.labels);
                let id = match streams.by_labels.get(&labels) {
                    Some(&id) => id,
                    None if streams.list.len() >= self.options.max_streams => {
                        for _ in &stream.entries {
                            outcome.refused.push(RefusedEntry {
                                message: format!(
                                    "maximum active stream limit exceeded when trying to create stream {labels}, reduce the number of active streams (reduce labels or reduce label values), or contact your administrator to see if the limit can be increased, limit: {}",
                                    self.options.max_streams
                                ),
                                reason: "stream_limit",
                            });
                        }
                        continue;
                    }
                    None => streams.insert(Arc::clone(&labels), i64::MAX, i64::MIN, true),
                };
                resolved.push((id, Arc::clone(&labels)));
                kept.push(StreamEntries {
                    labels: Arc::unwrap_or_clone(labels),
                    entries: stream.entries,
                });
            }
            if kept.is_empty() {
                count_refusals(&outcome);
                return Ok(outcome);
            }
            // Re-encode only when the stream limit removed streams.
            let record = if resolved.len() == kept.len()
                && outcome.refused.iter().all(|r| r.reason != "stream_limit")
            {
                record
            } else {
                walrec::encode(&kept)
            };
            let pending = self.wal.append_reserved(reservation, record)?;
            for ((id, labels), stream) in resolved.into_iter().zip(kept) {
                for entry in stream.entries {
                    streams.note(id, entry.timestamp_ns);
                    outcome.accepted += 1;
                    outcome.accepted_bytes += entry.line.len() as u64;
                    head.line_bytes += entry.line.len();
                    let keys = keys::correlation_keys(&self.options.correlation_keys, &labels, &entry);
                    head.entries.push(HeadEntry {
                        stream: id,
                        entry,
                        keys,
                    });
                }
            }
            self_metrics().streams.set(streams.list.len() as i64);
            if head.line_bytes >= self.options.head_flush_bytes {
                self.flush_wanted.notify_one();
            }
            pending
        };
        pending.durable().await?;
        let metrics = self_metrics();
        metrics.entries.inc_by(outcome.accepted);
        metrics.bytes.inc_by(outcome.accepted_bytes);
        count_refusals(&outcome);
        Ok(outcome)
    }

    /// Resolves when an append has grown the head past `head_flush_bytes`.
    pub async fn flush_requested(&self) {
        self.flush_wanted.notified().await;
    }

    /// Whether the head has grown past the size that asks for a flush.
    pub fn wants_flush(&self) -> bool {
        self.head
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .line_bytes
            >= self.options.head_flush_bytes
    }

    /// Entries that pass validation; the rest go to `outcome.refused`.
    fn validate(
        &self,
        batch: Vec<StreamEntries>,
        now: TimestampMs,
        outcome: &mut AppendOutcome,
    ) -> Vec<StreamEntries> {
        let now_ns = now.0.saturating_mul(NS_PER_MS);
        let oldest_ns = now
            .saturating_sub(self.options.retention)
            .0
            .saturating_mul(NS_PER_MS);
        let newest_ns = now_ns.saturating_add(self.options.future_tolerance.as_nanos() as i64);
        let mut accepted: Vec<StreamEntries> = Vec::with_capacity(batch.len());
        for stream in batch {
            let labels = if self.options.discover_service_name {
                keys::with_service_name(stream.labels)
            } else {
                stream.labels
            };
            if let Some(message) = self.options.limits.check_labels(&labels) {
                for _ in &stream.entries {
                    outcome.refused.push(RefusedEntry {
                        message: message.clone(),
                        reason: "invalid_labels",
                    });
                }
                continue;
            }
            let mut entries = Vec::with_capacity(stream.entries.len());
            for mut entry in stream.entries {
                if let Some(message) = self.options.limits.check_entry(&labels, &entry) {
                    let reason = if entry.line.len() > self.options.limits.max_line_bytes {
                        "line_too_long"
                    } else {
                        "invalid_metadata"
                    };
                    outcome.refused.push(RefusedEntry { message, reason });
                    continue;
                }
                if entry.timestamp_ns < oldest_ns {
                    outcome.refused.push(RefusedEntry {
                        message: format!(
                            "entry for stream '{labels}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
                            format_ns(entry.timestamp_ns),
                            format_ns(oldest_ns)
                        ),
                        reason: "greater_than_max_sample_age",
                    });
                    continue;
                }
                if entry.timestamp_ns > newest_ns {
                    outcome.refused.push(RefusedEntry {
                        message: format!(
                            "entry for stream '{labels}' has timestamp too new: {}",
                            format_ns(entry.timestamp_ns)
                        ),
                        reason: "too_far_in_future",
                    });
                    continue;
                }
                if self.options.discover_log_levels {
                    keys::add_detected_level(&labels, &mut entry);
                }
                entries.push(entry);
            }
            if entries.is_empty() {
                continue;
            }
            // Two streams of one request with the same labels (after service_name) merge.
            match accepted.iter_mut().find(|existing| existing.labels == labels) {
                Some(existing) => existing.entries.extend(entries),
                None => accepted.push(StreamEntries { labels, entries }),
            }
        }
        accepted
    }

    /// Writes the head to the day indexes and truncates the log (see the module docs).
    /// Blocking: run it off the async threads, with [`LogStore::begin_flush`] first.
    pub fn finish_flush(&self, rotated_at: obs_core::wal::Lsn) -> Result<(), LogsError> {
        let _flushing = self
            .flush_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let flushing = {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            // A failed earlier flush left its entries in `flushing`: write them again.
            let mut entries = std::mem::take(&mut head.entries);
            head.line_bytes = 0;
            if !head.flushing.is_empty() {
                let mut previous: Vec<HeadEntry> = Arc::try_unwrap(std::mem::take(&mut head.flushing))
                    .unwrap_or_else(|shared| {
                        shared
                            .iter()
                            .map(|entry| HeadEntry {
                                stream: entry.stream,
                                entry: entry.entry.clone(),
                                keys: entry.keys.clone(),
                            })
                            .collect()
                    });
                previous.append(&mut entries);
                entries = previous;
            }
            head.flushing = Arc::new(entries);
            Arc::clone(&head.flushing)
        };
        self.write_registry()?;
        let mut by_day: BTreeMap<Day, Vec<&HeadEntry>> = BTreeMap::new();
        for entry in flushing.iter() {
            by_day
                .entry(day_of_ns(entry.entry.timestamp_ns))
                .or_default()
                .push(entry);
        }
        // Each stream's entries of a day in time order, cut into blocks. The sort is stable:
        // entries of one nanosecond keep their order of arrival.
        let by_day: BTreeMap<Day, Vec<NewBlock>> = by_day
            .into_iter()
            .map(|(day, mut entries)| {
                entries.sort_by_key(|head| (head.stream, head.entry.timestamp_ns));
                let runs: Vec<StreamRun<'_>> = entries
                    .chunk_by(|a, b| a.stream == b.stream)
                    .map(|run| {
                        let stream = run.first().map_or(0, |head| head.stream);
                        (
                            stream,
                            run.iter()
                                .map(|head| (&head.entry, head.keys.as_slice()))
                                .collect(),
                        )
                    })
                    .collect();
                (day, build_blocks(&runs, FLUSH_ZSTD_LEVEL))
            })
            .collect();
        let mut written = Vec::with_capacity(by_day.len());
        for (day, blocks) in &by_day {
            if let Some(index) = self.day_index(*day, true)? {
                index
                    .add_and_commit(blocks, rotated_at)
                    .map_err(LogsError::Storage)?;
                // A day before yesterday is done being written (late entries reopen it): its
                // writer's memory goes now, so a backfill over many days holds one at a time.
                if day.0 < Day::containing(TimestampMs::now()).0 - 1 {
                    index.close_writer();
                }
                written.push(index);
            }
        }
        {
            // New searchers see the entries in the index exactly when the head stops
            // holding them: a query snapshots both under the head lock, never both or neither.
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            for index in &written {
                index.reload().map_err(LogsError::Storage)?;
            }
            head.flushing = Arc::new(Vec::new());
        }
        drop(flushing);
        self.wal.remove_segments_before(rotated_at)?;
        self.close_idle_writers();
        let metrics = self_metrics();
        metrics.flushes.inc();
        let due = {
            let last = self
                .last_compaction
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            last.elapsed() >= COMPACT_INTERVAL
        };
        if due {
            // Bounded, as flushes wait for it: a compaction left unfinished goes on at the
            // next flush.
            self.compact_locked(Some(COMPACT_BUDGET))?;
        }
        Ok(())
    }

    /// Rewrites the small blocks of each stream and day into full ones, and the blocks a flush
    /// compressed fast at the compaction's level, in one commit per day (a flush writes one
    /// block per stream it saw, so a day written by many flushes holds many small blocks,
    /// which compress worse and cost a document each). Blocking. A flush runs it every ten
    /// minutes for two seconds at most (days left go on at the next flush); the service runs
    /// it whole at a clean stop. Returns how many blocks it replaced.
    pub fn compact(&self) -> Result<usize, LogsError> {
        let _flushing = self
            .flush_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.compact_locked(None)
    }

    /// Compacts day after day, oldest first, until `budget` (if any) has passed.
    fn compact_locked(&self, budget: Option<Duration>) -> Result<usize, LogsError> {
        let started = std::time::Instant::now();
        let days = self
            .partitions_dir
            .partitions()
            .map_err(|err| storage_error(&self.dir, err))?;
        let mut replaced = 0;
        for partition in days {
            let Some(index) = self.day_index(partition.day, false)? else {
                continue;
            };
            if budget.is_some_and(|budget| started.elapsed() >= budget) {
                self.close_idle_writers();
                return Ok(replaced);
            }
            let compacted = self.compact_day(&index)?;
            if compacted > 0 {
                tracing::debug!(day = %partition.day, blocks = compacted, "compacted a log day");
                self_metrics().compacted_blocks.inc_by(compacted as u64);
            }
            replaced += compacted;
        }
        *self
            .last_compaction
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = std::time::Instant::now();
        self.close_idle_writers();
        Ok(replaced)
    }

    /// Compacts one day; how many blocks it replaced.
    fn compact_day(&self, index: &DayIndex) -> Result<usize, LogsError> {
        let searcher = index.searcher();
        let mut blocks = index.all_blocks(&searcher).map_err(LogsError::Storage)?;
        // Small blocks, and blocks a flush compressed fast: a stream's are rewritten when it
        // has two small ones or one compressed fast.
        let small = |hit: &crate::index::BlockHit| {
            hit.line_bytes < (BLOCK_LINE_BYTES / 2) as u64 && hit.entries < (BLOCK_ENTRIES / 2) as u64
        };
        let fast = |hit: &crate::index::BlockHit| hit.level < COMPACT_ZSTD_LEVEL as u64;
        blocks.retain(|hit| small(hit) || fast(hit));
        blocks.sort_by_key(|hit| (hit.stream, hit.min_ns, hit.address));
        let mut stores = DocStores::new(&searcher);
        let mut old = Vec::new();
        let mut entries: Vec<(u32, LogEntry, Keys)> = Vec::new();
        for run in blocks.chunk_by(|a, b| a.stream == b.stream) {
            if run.iter().filter(|hit| small(hit)).count() < 2 && !run.iter().any(fast) {
                continue;
            }
            let labels = {
                let streams = self.streams.read().unwrap_or_else(|poison| poison.into_inner());
                streams
                    .list
                    .get(run.first().map_or(0, |hit| hit.stream) as usize)
                    .map(|info| Arc::clone(&info.labels))
            };
            let Some(labels) = labels else { continue };
            for hit in run {
                let decoded = index.read(&mut stores, hit.address).map_err(LogsError::Storage)?;
                for position in 0..decoded.len() {
                    let entry = decoded
                        .entry(position)
                        .map_err(|err| LogsError::Storage(err.to_string()))?;
                    let keys = keys::correlation_keys(&self.options.correlation_keys, &labels, &entry);
                    entries.push((hit.stream, entry, keys));
                }
                old.push(hit.id);
            }
        }
        if old.is_empty() {
            return Ok(0);
        }
        entries.sort_by_key(|(stream, entry, _)| (*stream, entry.timestamp_ns));
        let runs: Vec<StreamRun<'_>> = entries
            .chunk_by(|a, b| a.0 == b.0)
            .map(|run| {
                (
                    run.first().map_or(0, |(stream, _, _)| *stream),
                    run.iter()
                        .map(|(_, entry, keys)| (entry, keys.as_slice()))
                        .collect(),
                )
            })
            .collect();
        let new = build_blocks(&runs, COMPACT_ZSTD_LEVEL);
        index.replace(&old, &new).map_err(LogsError::Storage)?;
        index.reload().map_err(LogsError::Storage)?;
        Ok(old.len())
    }

    /// The first, non-blocking half of a flush: rotates the log at a point where the head
    /// holds every earlier record.
    pub async fn begin_flush(&self) -> Result<obs_core::wal::Lsn, LogsError> {
        let _exclusive = self.apply_gate.write().await;
        Ok(self.wal.rotate().await?)
    }

    /// Both halves of a flush; the second blocks the calling thread.
    pub async fn flush(&self) -> Result<(), LogsError> {
        let rotated_at = self.begin_flush().await?;
        self.finish_flush(rotated_at)
    }

    /// Flushes, then closes the write-ahead log. Blocks the calling thread while flushing.
    pub async fn close(&self) -> Result<(), LogsError> {
        let result = self.flush().await;
        self.close_wal();
        result
    }

    /// Closes the write-ahead log (after a final flush); later appends fail.
    pub fn close_wal(&self) {
        let days: Vec<Arc<DayIndex>> = self
            .days
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .open
            .values()
            .cloned()
            .collect();
        for day in days {
            day.close_writer();
        }
        self.wal.close();
    }

    /// Writers of days other than today and yesterday are closed (late entries reopen them).
    fn close_idle_writers(&self) {
        let today = Day::containing(TimestampMs::now());
        let days: Vec<Arc<DayIndex>> = self
            .days
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .open
            .iter()
            .filter(|(day, index)| day.0 < today.0 - 1 && index.is_writing())
            .map(|(_, index)| Arc::clone(index))
            .collect();
        for index in days {
            index.close_writer();
        }
    }

    fn write_registry(&self) -> Result<(), LogsError> {
        let rows: Vec<(u32, Vec<u8>, (i64, i64))> = {
            let mut streams = self.streams.write().unwrap_or_else(|poison| poison.into_inner());
            streams
                .list
                .iter_mut()
                .enumerate()
                .filter(|(_, info)| info.dirty)
                .map(|(id, info)| {
                    info.dirty = false;
                    let mut encoded = Vec::new();
                    info.labels.encode(&mut encoded);
                    (id as u32, encoded, (info.min_ns, info.max_ns))
                })
                .collect()
        };
        if rows.is_empty() {
            return Ok(());
        }
        let path = self.dir.join("streams.redb");
        let result = (|| {
            let txn = self
                .registry
                .begin_write()
                .map_err(|err| storage_error(&path, err))?;
            {
                let mut streams = txn.open_table(STREAMS).map_err(|err| storage_error(&path, err))?;
                let mut bounds = txn
                    .open_table(STREAM_BOUNDS)
                    .map_err(|err| storage_error(&path, err))?;
                for (id, encoded, range) in &rows {
                    streams
                        .insert(*id, encoded.as_slice())
                        .map_err(|err| storage_error(&path, err))?;
                    bounds
                        .insert(*id, *range)
                        .map_err(|err| storage_error(&path, err))?;
                }
            }
            txn.commit().map_err(|err| storage_error(&path, err))
        })();
        if result.is_err() {
            let mut streams = self.streams.write().unwrap_or_else(|poison| poison.into_inner());
            for (id, _, _) in &rows {
                if let Some(info) = streams.list.get_mut(*id as usize) {
                    info.dirty = true;
                }
            }
        }
        result
    }

    /// The index of `day`, opened (or created, with `create`) on first use.
    fn day_index(&self, day: Day, create: bool) -> Result<Option<Arc<DayIndex>>, LogsError> {
        let mut days = self.days.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(index) = days.open.get(&day) {
            return Ok(Some(Arc::clone(index)));
        }
        let path = self.partitions_dir.partition_path(day, "");
        if !create && !path.join("meta.json").exists() {
            return Ok(None);
        }
        let index = Arc::new(DayIndex::open(&path).map_err(LogsError::Storage)?);
        days.open.insert(day, Arc::clone(&index));
        Ok(Some(index))
    }

    /// Labels of the streams `matches_stream` accepts with entries overlapping
    /// `[start_ns, end_ns)`, sorted.
    pub fn streams(
        &self,
        matches_stream: &dyn Fn(&Labels) -> bool,
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<Arc<Labels>> {
        let streams = self.streams.read().unwrap_or_else(|poison| poison.into_inner());
        let mut found: Vec<Arc<Labels>> = streams
            .matching(matches_stream, start_ns, end_ns)
            .into_iter()
            .filter_map(|id| streams.list.get(id as usize).map(|info| Arc::clone(&info.labels)))
            .collect();
        found.sort();
        found
    }

    /// Delivers the selected entries of the streams `matches_stream` accepts to `visit` in the
    /// selection's direction, until it breaks. Blocking (reads the indexes): run it off the
    /// async threads.
    pub fn select(
        &self,
        matches_stream: &dyn Fn(&Labels) -> bool,
        selection: &Selection,
        mut visit: impl FnMut(SelectedEntry) -> ControlFlow<()>,
    ) -> Result<(), LogsError> {
        if selection.start_ns >= selection.end_ns {
            return Ok(());
        }
        let (ids, labels_of, first_ns, last_ns) = {
            let streams = self.streams.read().unwrap_or_else(|poison| poison.into_inner());
            let ids = streams.matching(matches_stream, selection.start_ns, selection.end_ns);
            let mut first_ns = i64::MAX;
            let mut last_ns = i64::MIN;
            let mut labels_of: HashMap<u32, Arc<Labels>> = HashMap::with_capacity(ids.len());
            for &id in &ids {
                if let Some(info) = streams.list.get(id as usize) {
                    first_ns = first_ns.min(info.min_ns);
                    last_ns = last_ns.max(info.max_ns);
                    labels_of.insert(id, Arc::clone(&info.labels));
                }
            }
            (ids, labels_of, first_ns, last_ns)
        };
        // Only the span where the selected streams have entries is read.
        let start_ns = selection.start_ns.max(first_ns);
        let end_ns = selection.end_ns.min(last_ns.saturating_add(1));
        if ids.is_empty() || start_ns >= end_ns {
            return Ok(());
        }
        let mut tokens: Vec<String> = selection
            .line_contains
            .iter()
            .flat_map(|needle| needle_tokens(needle))
            .collect();
        tokens.sort();
        tokens.dedup();
        // The head is read once, with a snapshot of each day's index taken under the same
        // lock (see `finish_flush`); its matches are merged slice by slice.
        let (mut in_memory, searchers) = {
            let head = self.head.read().unwrap_or_else(|poison| poison.into_inner());
            let mut searchers = BTreeMap::new();
            let mut day = day_of_ns(start_ns);
            while day <= day_of_ns(end_ns - 1) {
                if let Some(index) = self.day_index(day, false)? {
                    let searcher = index.searcher();
                    searchers.insert(day, (index, searcher));
                }
                day = Day(day.0 + 1);
            }
            (
                self.select_in_memory(&head, selection, &ids, start_ns, end_ns),
                searchers,
            )
        };
        // Stable: entries of one timestamp keep their order of arrival.
        in_memory.sort_by_key(|(ts, _, _)| *ts);
        let in_memory = &mut in_memory;
        let backward = selection.direction == Direction::Backward;
        let mut days: Vec<Day> = Vec::new();
        let mut day = day_of_ns(start_ns);
        while day <= day_of_ns(end_ns - 1) {
            days.push(day);
            day = Day(day.0 + 1);
        }
        if backward {
            days.reverse();
        }
        let mut deliver = |stream: u32, entry: LogEntry| -> ControlFlow<()> {
            match labels_of.get(&stream) {
                Some(labels) => visit(SelectedEntry {
                    stream: Arc::clone(labels),
                    entry,
                }),
                None => ControlFlow::Continue(()),
            }
        };
        let finders: Vec<memchr::memmem::Finder<'_>> = selection
            .line_contains
            .iter()
            .map(|needle| memchr::memmem::Finder::new(needle.as_bytes()))
            .collect();
        let filter = BlockFilter {
            finders: &finders,
            keys: &selection.keys,
            key_hashes: selection
                .keys
                .iter()
                .map(|(name, value)| block::key_hash(name, value))
                .collect(),
            key_names: &self.options.correlation_keys,
        };
        // One search per day. Its blocks are read in the delivery order of their first entry
        // (last, backward) and merged with the head's entries of the day: an entry is
        // delivered once no block still unread can hold an earlier (later) one, so a query
        // that stops early reads few blocks.
        for day in days {
            let day_start = start_ns.max(day.start().0.saturating_mul(NS_PER_MS));
            let day_end = end_ns.min(day.end_exclusive().0.saturating_mul(NS_PER_MS));
            let from = in_memory.partition_point(|(ts, _, _)| *ts < day_start);
            let to = in_memory.partition_point(|(ts, _, _)| *ts < day_end);
            let mut pending = DeliveryQueue::new(backward);
            for (ts, stream, entry) in in_memory.drain(from..to) {
                pending.push(ts, stream, entry);
            }
            if let Some((index, searcher)) = searchers.get(&day) {
                let mut blocks = index
                    .search(
                        searcher,
                        &DayQuery {
                            streams: &ids,
                            start_ns: day_start,
                            end_ns: day_end,
                            tokens: &tokens,
                        },
                    )
                    .map_err(LogsError::Storage)?;
                if backward {
                    blocks.sort_by_key(|hit| std::cmp::Reverse((hit.max_ns, hit.address)));
                } else {
                    blocks.sort_by_key(|hit| (hit.min_ns, hit.address));
                }
                let mut stores = DocStores::new(searcher);
                // A key lookup first drops the blocks whose key filter rules the keys out (read
                // in place, nothing decompressed), so that only the few left go to the threads.
                let mut prefetched: HashMap<tantivy::DocAddress, tantivy::directory::OwnedBytes> =
                    HashMap::new();
                if !filter.key_hashes.is_empty() {
                    let mut kept = Vec::with_capacity(blocks.len());
                    for hit in blocks {
                        let bytes = index
                            .read_bytes(&mut stores, hit.address)
                            .map_err(LogsError::Storage)?;
                        if block::may_hold_keys(bytes.as_slice(), &filter.key_hashes) {
                            prefetched.insert(hit.address, bytes);
                            kept.push(hit);
                        }
                    }
                    blocks = kept;
                }
                for batch in blocks.chunks(read_batch()) {
                    let mut read = Vec::with_capacity(batch.len());
                    for hit in batch {
                        let bytes = match prefetched.remove(&hit.address) {
                            Some(bytes) => bytes,
                            None => index
                                .read_bytes(&mut stores, hit.address)
                                .map_err(LogsError::Storage)?,
                        };
                        let labels = labels_of.get(&hit.stream).cloned();
                        read.push((bytes, labels));
                    }
                    let matched = filter_blocks(&read, &filter, day_start, day_end);
                    for (hit, entries) in batch.iter().zip(matched) {
                        let entries = entries.map_err(|err| {
                            LogsError::Storage(format!("{}: {err}", index.path().display()))
                        })?;
                        let bound = if backward { hit.max_ns } else { hit.min_ns };
                        if pending.deliver_before(bound, &mut deliver).is_break() {
                            return Ok(());
                        }
                        for entry in entries {
                            pending.push(entry.timestamp_ns, hit.stream, entry);
                        }
                    }
                }
            }
            if pending.deliver_before_end(&mut deliver).is_break() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The head's entries (those being flushed included) that match, unordered.
    fn select_in_memory(
        &self,
        head: &Head,
        selection: &Selection,
        ids: &[u32],
        start_ns: i64,
        end_ns: i64,
    ) -> Vec<(i64, u32, LogEntry)> {
        let matches = |entry: &HeadEntry| {
            entry.entry.timestamp_ns >= start_ns
                && entry.entry.timestamp_ns < end_ns
                && ids.binary_search(&entry.stream).is_ok()
                && selection
                    .line_contains
                    .iter()
                    .all(|needle| entry.entry.line.contains(needle.as_str()))
                && selection
                    .keys
                    .iter()
                    .all(|key| entry.keys.iter().any(|have| have == key))
        };
        head.flushing
            .iter()
            .chain(head.entries.iter())
            .filter(|entry| matches(entry))
            .map(|entry| (entry.entry.timestamp_ns, entry.stream, entry.entry.clone()))
            .collect()
    }

    /// Entries, bytes and streams stored for the streams `matches_stream` accepts in
    /// `[start_ns, end_ns)` (for `index/stats`).
    pub fn stats(
        &self,
        matches_stream: &dyn Fn(&Labels) -> bool,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Stats, LogsError> {
        let mut stats = Stats::default();
        let selection = Selection {
            start_ns,
            end_ns,
            direction: Direction::Forward,
            ..Selection::default()
        };
        let mut streams = std::collections::HashSet::new();
        self.select(matches_stream, &selection, |selected| {
            stats.entries += 1;
            stats.bytes += selected.entry.line.len() as u64;
            streams.insert(selected.stream);
            ControlFlow::Continue(())
        })?;
        stats.streams = streams.len() as u64;
        stats.chunks = stats.streams;
        Ok(stats)
    }
}

/// What a block's entries must satisfy to be selected (besides the time range).
struct BlockFilter<'a> {
    finders: &'a [memchr::memmem::Finder<'a>],
    keys: &'a [(String, String)],
    /// The keys' hashes, checked against each block's key filter before it is decoded.
    key_hashes: Vec<u64>,
    key_names: &'a [String],
}

/// Blocks decoded at once (in parallel when the machine has cores for it).
fn read_batch() -> usize {
    static BATCH: OnceLock<usize> = OnceLock::new();
    *BATCH.get_or_init(|| 8 * decode_threads())
}

fn decode_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get().min(4))
}

/// The entries of each block (its bytes and its stream's labels) in `[start_ns, end_ns)` that
/// pass `filter`, in time order; blocks are decoded on up to [`decode_threads`] threads.
fn filter_blocks(
    blocks: &[(tantivy::directory::OwnedBytes, Option<Arc<Labels>>)],
    filter: &BlockFilter<'_>,
    start_ns: i64,
    end_ns: i64,
) -> Vec<Result<Vec<LogEntry>, block::BlockError>> {
    let one = |(bytes, labels): &(tantivy::directory::OwnedBytes, Option<Arc<Labels>>)| {
        filter_block(bytes, labels.as_deref(), filter, start_ns, end_ns)
    };
    let threads = decode_threads().min(blocks.len());
    if threads <= 1 {
        return blocks.iter().map(one).collect();
    }
    let per_thread = blocks.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = blocks
            .chunks(per_thread)
            .map(|part| scope.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker.join() {
                Ok(results) => results,
                Err(_) => vec![Err(block::BlockError::PANICKED)],
            })
            .collect()
    })
}

fn filter_block(
    bytes: &[u8],
    labels: Option<&Labels>,
    filter: &BlockFilter<'_>,
    start_ns: i64,
    end_ns: i64,
) -> Result<Vec<LogEntry>, block::BlockError> {
    let Some(labels) = labels else {
        return Ok(Vec::new());
    };
    if !block::may_hold_keys(bytes, &filter.key_hashes) {
        return Ok(Vec::new());
    }
    let Some(decoded) = block::decode_if_contains(bytes, filter.finders)? else {
        return Ok(Vec::new());
    };
    // A key whose value holds an id rules out, before they are restored, the lines that do
    // not refer to an id holding it, unless the value could come from the stream's labels or
    // the entry's metadata instead.
    let by_ids: Vec<(&str, Vec<bool>)> = filter
        .keys
        .iter()
        .filter(|(_, value)| !labels.iter().any(|label| label.value == *value))
        .filter_map(|(_, value)| {
            decoded
                .ids_holding(value)
                .map(|holding| (value.as_str(), holding))
        })
        .collect();
    let timestamps = decoded.timestamps();
    let from = timestamps.partition_point(|ts| *ts < start_ns);
    let to = timestamps.partition_point(|ts| *ts < end_ns);
    let mut entries = Vec::new();
    for position in from..to {
        if !by_ids.is_empty() {
            let ruled_out = by_ids.iter().any(|(value, holding)| {
                !decoded.line_may_hold(position, holding)
                    && !decoded
                        .metadata(position)
                        .is_ok_and(|metadata| metadata.iter().any(|(_, have)| have == value))
            });
            if ruled_out {
                continue;
            }
        }
        if !filter
            .finders
            .iter()
            .all(|finder| decoded.line_contains(position, finder))
        {
            continue;
        }
        let entry = decoded.entry(position)?;
        if !filter.keys.is_empty() {
            let keys = keys::correlation_keys(filter.key_names, labels, &entry);
            if !filter.keys.iter().all(|key| keys.contains(key)) {
                continue;
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Entries waiting to be delivered, in delivery order: a max-heap on (timestamp, arrival),
/// both inverted going forward.
struct DeliveryQueue {
    backward: bool,
    arrivals: u64,
    heap: std::collections::BinaryHeap<Queued>,
}

struct Queued {
    key: (i64, u64),
    stream: u32,
    entry: LogEntry,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Queued) -> bool {
        self.key == other.key
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Queued) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Queued) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl DeliveryQueue {
    fn new(backward: bool) -> DeliveryQueue {
        DeliveryQueue {
            backward,
            arrivals: 0,
            heap: std::collections::BinaryHeap::new(),
        }
    }

    fn key(&self, ts: i64, arrival: u64) -> (i64, u64) {
        if self.backward {
            (ts, arrival)
        } else {
            (!ts, !arrival)
        }
    }

    fn push(&mut self, ts: i64, stream: u32, entry: LogEntry) {
        let key = self.key(ts, self.arrivals);
        self.arrivals += 1;
        self.heap.push(Queued { key, stream, entry });
    }

    /// Delivers the entries that come strictly before `bound` in delivery order.
    fn deliver_before(
        &mut self,
        bound: i64,
        deliver: &mut impl FnMut(u32, LogEntry) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let limit = self.key(bound, 0).0;
        while self.heap.peek().is_some_and(|top| top.key.0 > limit) {
            if let Some(queued) = self.heap.pop() {
                deliver(queued.stream, queued.entry)?;
            }
        }
        ControlFlow::Continue(())
    }

    /// Delivers everything left.
    fn deliver_before_end(
        &mut self,
        deliver: &mut impl FnMut(u32, LogEntry) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        while let Some(queued) = self.heap.pop() {
            deliver(queued.stream, queued.entry)?;
        }
        ControlFlow::Continue(())
    }
}

/// Counts of `index/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Streams with entries.
    pub streams: u64,
    /// Chunks (one per stream and day here).
    pub chunks: u64,
    /// Entries.
    pub entries: u64,
    /// Bytes of lines.
    pub bytes: u64,
}

fn load_registry(
    registry: &Database,
    path: &std::path::Path,
    streams: &mut Streams,
) -> Result<(), LogsError> {
    let txn = registry.begin_read().map_err(|err| storage_error(path, err))?;
    let table = match txn.open_table(STREAMS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(err) => return Err(storage_error(path, err)),
    };
    let bounds = match txn.open_table(STREAM_BOUNDS) {
        Ok(table) => Some(table),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(err) => return Err(storage_error(path, err)),
    };
    for row in table.iter().map_err(|err| storage_error(path, err))? {
        let (id, encoded) = row.map_err(|err| storage_error(path, err))?;
        let id = id.value();
        let (labels, _) = Labels::decode(encoded.value()).map_err(|err| storage_error(path, err))?;
        let (min_ns, max_ns) = match &bounds {
            Some(bounds) => bounds
                .get(id)
                .map_err(|err| storage_error(path, err))?
                .map_or((i64::MAX, i64::MIN), |range| range.value()),
            None => (i64::MAX, i64::MIN),
        };
        if id as usize != streams.list.len() {
            return Err(storage_error(path, format!("stream ids are not dense at {id}")));
        }
        streams.insert(Arc::new(labels), min_ns, max_ns, false);
    }
    Ok(())
}

/// Correlation keys of an entry.
type Keys = Vec<(String, String)>;

/// One stream's entries with their correlation keys, in time order.
type StreamRun<'a> = (u32, Vec<KeyedEntry<'a>>);

/// Cuts each stream's entries (in time order) into blocks of at most [`BLOCK_LINE_BYTES`] of
/// lines and [`BLOCK_ENTRIES`] entries, and encodes them.
fn build_blocks(runs: &[StreamRun<'_>], zstd_level: i32) -> Vec<NewBlock> {
    let mut blocks = Vec::new();
    for (stream, entries) in runs {
        let mut start = 0;
        let mut bytes = 0;
        for (position, (entry, _)) in entries.iter().enumerate() {
            if position > start
                && (bytes + entry.line.len() > BLOCK_LINE_BYTES || position - start >= BLOCK_ENTRIES)
            {
                blocks.push(NewBlock::build(
                    *stream,
                    entries.get(start..position).unwrap_or_default(),
                    zstd_level,
                ));
                start = position;
                bytes = 0;
            }
            bytes += entry.line.len();
        }
        if start < entries.len() {
            blocks.push(NewBlock::build(
                *stream,
                entries.get(start..).unwrap_or_default(),
                zstd_level,
            ));
        }
    }
    blocks
}

fn day_of_ns(ns: i64) -> Day {
    Day::containing(TimestampMs(ns.div_euclid(NS_PER_MS)))
}

fn format_ns(ns: i64) -> String {
    TimestampMs(ns.div_euclid(NS_PER_MS)).to_rfc3339()
}

impl PartitionSet for LogStore {
    fn signal(&self) -> Signal {
        Signal::Logs
    }

    fn partitions(&self) -> std::io::Result<Vec<Partition>> {
        self.partitions_dir.partitions()
    }

    fn drop_partition(&self, day: Day) -> std::io::Result<u64> {
        // Under the days lock, so that a flush cannot reopen the index in between; searches
        // holding the index keep its files until they finish.
        let mut days = self.days.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(index) = days.open.remove(&day) {
            index.close_writer();
        }
        let freed = self.partitions_dir.drop_partition(day)?;
        drop(days);
        // Streams whose entries all lie before the dropped day are forgotten from the
        // time-bounded listings by their bounds; their ids stay reserved.
        let day_end_ns = i64::from(day.0 + 1).saturating_mul(DAY_NS);
        let streams = self.streams.read().unwrap_or_else(|poison| poison.into_inner());
        let expired = streams
            .list
            .iter()
            .filter(|info| info.max_ns < day_end_ns)
            .count();
        tracing::debug!(%day, expired_streams = expired, "dropped a log day");
        Ok(freed)
    }
}

fn count_refusals(outcome: &AppendOutcome) {
    let metrics = self_metrics();
    for refused in &outcome.refused {
        metrics.refused.with_label_values(&[refused.reason]).inc();
    }
}

struct SelfMetrics {
    entries: prometheus::IntCounter,
    bytes: prometheus::IntCounter,
    refused: prometheus::IntCounterVec,
    streams: prometheus::IntGauge,
    flushes: prometheus::IntCounter,
    compacted_blocks: prometheus::IntCounter,
}

fn self_metrics() -> &'static SelfMetrics {
    static METRICS: OnceLock<SelfMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = obs_core::selfmetrics::registry();
        let refused = registry.int_counter_vec(
            "obs_logs_entries_refused_total",
            "Log entries refused at ingest, by Loki's reason (the rest of their request is kept).",
            &["reason"],
        );
        for reason in [
            "line_too_long",
            "invalid_metadata",
            "invalid_labels",
            "greater_than_max_sample_age",
            "too_far_in_future",
            "stream_limit",
        ] {
            refused.with_label_values(&[reason]);
        }
        SelfMetrics {
            entries: registry.int_counter(
                "obs_logs_entries_appended_total",
                "Log entries stored (acknowledged and durable).",
            ),
            bytes: registry.int_counter(
                "obs_logs_bytes_appended_total",
                "Bytes of log lines stored (acknowledged and durable).",
            ),
            refused,
            streams: registry.int_gauge("obs_logs_streams", "Log streams known to the store."),
            flushes: registry.int_counter(
                "obs_logs_flushes_total",
                "Flushes of the log head into the day indexes.",
            ),
            compacted_blocks: registry.int_counter(
                "obs_logs_compacted_blocks_total",
                "Small log blocks rewritten into full ones by compactions.",
            ),
        }
    })
}
