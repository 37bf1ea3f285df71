//! The write-ahead log shared by every signal.
//!
//! A [`Wal`] is a directory of append-only segment files. Every record carries a sequence number
//! ([`Lsn`]) and a CRC-32C, so that replay finds a torn or corrupt tail and stops there cleanly.
//! Appends go through one writer thread that drains every queued record, writes them with one
//! `write` and makes them durable with one `fdatasync` ("group commit"): concurrent appenders
//! share fsyncs, and [`Wal::append`] returns only once its record is durable under the
//! configured [`FsyncPolicy`].
//!
//! The byte layout is documented in `docs/format/wal.md`.
//!
//! Truncation follows checkpoints: a store that has persisted everything up to some `Lsn` calls
//! [`Wal::rotate`] and then [`Wal::remove_segments_before`], which unlinks whole segments.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::error::{Classify, ErrorKind};

/// A record's sequence number: 1 for the first record ever written, then +1 per record.
pub type Lsn = u64;

/// Segment files start with this magic, then a little-endian `u16` format version.
pub const SEGMENT_MAGIC: &[u8; 6] = b"OBSWAL";
/// The current segment format version.
pub const SEGMENT_VERSION: u16 = 1;
/// Segment header: magic (6) + version (2) + first sequence number (8).
pub const SEGMENT_HEADER_LEN: usize = 16;
/// Record header: payload length (4) + CRC-32C (4) + sequence number (8).
pub const RECORD_HEADER_LEN: usize = 16;
/// The largest payload a record may hold.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

/// When appended records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` before `append` returns (group commit: concurrent appends share one). Nothing
    /// acknowledged is lost on power loss. The default.
    Always,
    /// `append` returns once the record is written to the OS; an `fdatasync` follows within the
    /// interval. A killed process loses nothing; a power loss may lose up to the interval.
    Interval(Duration),
}

/// How a [`Wal`] is opened.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A short name for logs and the `wal` label of self-metrics, e.g. `"metrics"`.
    pub name: String,
    /// When appends become durable.
    pub fsync: FsyncPolicy,
    /// A segment is closed and a new one started once it passes this size.
    pub segment_size_bytes: u64,
    /// Appenders wait once this many bytes are queued for the writer (backpressure).
    pub max_queued_bytes: usize,
}

impl WalOptions {
    /// Default options with the given name.
    pub fn named(name: impl Into<String>) -> WalOptions {
        WalOptions {
            name: name.into(),
            fsync: FsyncPolicy::Always,
            segment_size_bytes: 64 << 20,
            max_queued_bytes: 64 << 20,
        }
    }
}

/// Errors of the write-ahead log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    /// A file operation failed.
    #[error("wal {operation} failed on {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: Arc<io::Error>,
    },
    /// The log is closed (the appliance is shutting down).
    #[error("wal is closed")]
    Closed,
    /// An earlier fsync failed; nothing more is accepted until a restart replays the log.
    #[error("wal stopped accepting writes after an earlier failure: {0}")]
    Failed(String),
    /// The record exceeds [`MAX_RECORD_BYTES`].
    #[error("wal record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// The payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A segment was written by a newer version of the appliance; opening it could destroy it.
    #[error(
        "wal segment {path} has format version {version}, newer than this binary's {SEGMENT_VERSION}; run the newer version or restore a backup"
    )]
    NewerVersion {
        /// The segment.
        path: PathBuf,
        /// Its format version.
        version: u16,
    },
    /// The replay callback refused a record.
    #[error("wal replay stopped at record {lsn}: {message}")]
    Replay {
        /// The record.
        lsn: Lsn,
        /// What the callback said.
        message: String,
    },
}

impl WalError {
    fn io(operation: &'static str, path: &Path, source: io::Error) -> WalError {
        WalError::Io {
            operation,
            path: path.to_owned(),
            source: Arc::new(source),
        }
    }
}

impl Classify for WalError {
    fn kind(&self) -> ErrorKind {
        match self {
            WalError::Io { .. } | WalError::Closed | WalError::Failed(_) => ErrorKind::Unavailable,
            WalError::RecordTooLarge { .. } => ErrorKind::TooLarge,
            WalError::Replay { .. } | WalError::NewerVersion { .. } => ErrorKind::Internal,
        }
    }
}

/// Why replay stopped reading a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptionReason {
    /// The file ends inside a record or header: a write that did not finish (torn tail).
    Torn,
    /// A record's checksum does not match its bytes.
    ChecksumMismatch,
    /// A header names an impossible length, sequence number, magic or version.
    BadHeader(String),
}

/// A place where replay found damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The segment file.
    pub segment: PathBuf,
    /// The byte offset of the first bad record in it.
    pub offset: u64,
    /// What was wrong.
    pub reason: CorruptionReason,
    /// How many bytes from `offset` to the end of the segment were discarded.
    pub discarded_bytes: u64,
}

/// What replay found.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    /// Segment files read.
    pub segments: usize,
    /// Records passed to the callback.
    pub records: u64,
    /// Payload bytes passed to the callback.
    pub payload_bytes: u64,
    /// The sequence number of the last good record.
    pub last_lsn: Option<Lsn>,
    /// Every damaged place; the bytes from each to the end of its segment were discarded.
    pub corruptions: Vec<Corruption>,
}

/// Counters of one log, for tests and benchmarks (self-metrics carry the same numbers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records appended.
    pub appends: u64,
    /// Record bytes written, headers included.
    pub bytes: u64,
    /// Batches written (one `write` each).
    pub batches: u64,
    /// `fdatasync` calls on segments.
    pub fsyncs: u64,
}

#[derive(Default)]
struct AtomicStats {
    appends: AtomicU64,
    bytes: AtomicU64,
    batches: AtomicU64,
    fsyncs: AtomicU64,
}

struct SelfMetrics {
    appends: IntCounterVec,
    bytes: IntCounterVec,
    fsyncs: IntCounterVec,
    fsync_seconds: HistogramVec,
    segments: IntGaugeVec,
    corruptions: IntCounterVec,
    failed: IntGaugeVec,
}

fn self_metrics() -> &'static SelfMetrics {
    static METRICS: OnceLock<SelfMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = crate::selfmetrics::registry();
        SelfMetrics {
            appends: registry.int_counter_vec(
                "obs_wal_appends_total",
                "Records appended to the write-ahead log.",
                &["wal"],
            ),
            bytes: registry.int_counter_vec(
                "obs_wal_appended_bytes_total",
                "Bytes appended to the write-ahead log, record headers included.",
                &["wal"],
            ),
            fsyncs: registry.int_counter_vec(
                "obs_wal_fsyncs_total",
                "fdatasync calls on write-ahead log segments.",
                &["wal"],
            ),
            fsync_seconds: registry.histogram_vec(
                "obs_wal_fsync_duration_seconds",
                "Latency of fdatasync on write-ahead log segments.",
                &["wal"],
                vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ],
            ),
            segments: registry.int_gauge_vec(
                "obs_wal_segments",
                "Segment files in the write-ahead log.",
                &["wal"],
            ),
            corruptions: registry.int_counter_vec(
                "obs_wal_replay_corruptions_total",
                "Damaged places found by write-ahead log replay.",
                &["wal"],
            ),
            failed: registry.int_gauge_vec(
                "obs_wal_failed",
                "1 when the write-ahead log refuses writes after an fsync failure.",
                &["wal"],
            ),
        }
    })
}

struct Segment {
    first_lsn: Lsn,
    path: PathBuf,
}

struct Shared {
    name: String,
    dir: PathBuf,
    stats: AtomicStats,
    /// Segments oldest first; the last one is the segment being written.
    segments: Mutex<Vec<Segment>>,
    failed: Mutex<Option<String>>,
    is_failed: AtomicBool,
}

impl Shared {
    fn fail(&self, message: String) -> WalError {
        let mut failed = self.failed.lock().unwrap_or_else(|poison| poison.into_inner());
        let message = failed.get_or_insert(message).clone();
        self.is_failed.store(true, Ordering::SeqCst);
        tracing::error!(wal = %self.name, error = %message, "wal refuses further writes");
        self_metrics().failed.with_label_values(&[&self.name]).set(1);
        WalError::Failed(message)
    }

    fn failure(&self) -> Option<WalError> {
        if !self.is_failed.load(Ordering::SeqCst) {
            return None;
        }
        let failed = self.failed.lock().unwrap_or_else(|poison| poison.into_inner());
        Some(WalError::Failed(failed.clone().unwrap_or_default()))
    }
}

enum Command {
    Append {
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<Lsn, WalError>>,
        _permit: OwnedSemaphorePermit,
        /// Whether the appender waits for an fsync (see [`Wal::append_reserved_deferred`]).
        durable: bool,
    },
    Rotate {
        reply: oneshot::Sender<Result<Lsn, WalError>>,
    },
}

/// Room reserved in a log's queue by [`Wal::reserve`].
#[derive(Debug)]
pub struct WalReservation {
    permit: OwnedSemaphorePermit,
}

/// A queued record, waiting to become durable.
#[derive(Debug)]
pub struct PendingAppend {
    receiver: oneshot::Receiver<Result<Lsn, WalError>>,
}

impl PendingAppend {
    /// Waits until the record is durable under the log's fsync policy.
    pub async fn durable(self) -> Result<Lsn, WalError> {
        self.receiver.await.map_err(|_| WalError::Closed)?
    }
}

/// A segmented, checksummed, group-committed write-ahead log. See the [module docs](self).
pub struct Wal {
    shared: Arc<Shared>,
    sender: RwLock<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    queue_budget: Arc<Semaphore>,
    max_queued_bytes: usize,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("name", &self.shared.name)
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, replays every intact record into
    /// `on_record` in sequence order, repairs damage by discarding each damaged segment's bytes
    /// from the first bad record on, and starts a fresh segment for new appends.
    pub fn open(
        dir: &Path,
        options: WalOptions,
        mut on_record: impl FnMut(Lsn, &[u8]) -> Result<(), String>,
    ) -> Result<(Wal, ReplayReport), WalError> {
        fs::create_dir_all(dir).map_err(|err| WalError::io("create directory", dir, err))?;
        let metrics = self_metrics();
        // Every series of this log exists from the start, at zero, so rates and alerts work.
        metrics.appends.with_label_values(&[&options.name]);
        metrics.bytes.with_label_values(&[&options.name]);
        metrics.fsyncs.with_label_values(&[&options.name]);
        metrics.fsync_seconds.with_label_values(&[&options.name]);
        metrics.corruptions.with_label_values(&[&options.name]);
        let mut report = ReplayReport::default();
        let mut segments = list_segments(dir)?;
        let mut next_lsn: Lsn = 1;
        for segment in &segments {
            report.segments += 1;
            next_lsn = next_lsn.max(segment.first_lsn);
            let outcome = replay_segment(segment, &mut report, &mut on_record)?;
            if let Some(last) = outcome.last_lsn {
                next_lsn = next_lsn.max(last + 1);
            }
            if let Some(corruption) = outcome.corruption {
                tracing::warn!(
                    wal = %options.name,
                    segment = %corruption.segment.display(),
                    offset = corruption.offset,
                    reason = ?corruption.reason,
                    discarded_bytes = corruption.discarded_bytes,
                    "wal replay found a damaged record; keeping everything before it"
                );
                metrics.corruptions.with_label_values(&[&options.name]).inc();
                repair_segment(&segment.path, corruption.offset)?;
                report.corruptions.push(corruption);
            }
        }
        // Segments whose header was damaged were removed by the repair.
        segments.retain(|segment| segment.path.exists());

        let path = segment_path(dir, next_lsn);
        if segments
            .last()
            .is_some_and(|existing| existing.first_lsn == next_lsn)
        {
            // An empty segment left by a rotation just before a stop: start it again.
            fs::remove_file(&path).map_err(|err| WalError::io("remove", &path, err))?;
            segments.pop();
        }
        let file = create_segment(dir, &path, next_lsn)?;
        segments.push(Segment {
            first_lsn: next_lsn,
            path,
        });
        metrics
            .segments
            .with_label_values(&[&options.name])
            .set(segments.len() as i64);
        metrics.failed.with_label_values(&[&options.name]).set(0);

        let shared = Arc::new(Shared {
            name: options.name.clone(),
            dir: dir.to_owned(),
            stats: AtomicStats::default(),
            segments: Mutex::new(segments),
            failed: Mutex::new(None),
            is_failed: AtomicBool::new(false),
        });
        let (sender, receiver) = mpsc::channel();
        let writer = SegmentWriter {
            shared: Arc::clone(&shared),
            file,
            segment_len: SEGMENT_HEADER_LEN as u64,
            next_lsn,
            fsync: options.fsync,
            segment_size_bytes: options.segment_size_bytes.max(SEGMENT_HEADER_LEN as u64 + 1),
            unsynced: false,
            last_sync: Instant::now(),
            buffer: Vec::with_capacity(1 << 20),
            batch_durable: false,
        };
        let thread = std::thread::Builder::new()
            .name(format!("wal-{}", options.name))
            .spawn(move || writer.run(receiver))
            .map_err(|err| WalError::io("spawn writer thread", dir, err))?;
        let max_queued_bytes = options.max_queued_bytes.clamp(1, u32::MAX as usize);
        let wal = Wal {
            shared,
            sender: RwLock::new(Some(sender)),
            writer: Mutex::new(Some(thread)),
            queue_budget: Arc::new(Semaphore::new(max_queued_bytes)),
            max_queued_bytes,
        };
        Ok((wal, report))
    }

    /// Appends one record and returns its sequence number once it is durable under the
    /// configured [`FsyncPolicy`]. Waits while too many bytes are queued (backpressure).
    pub async fn append(&self, payload: Vec<u8>) -> Result<Lsn, WalError> {
        let reservation = self.reserve(payload.len()).await?;
        self.append_reserved(reservation, payload)?.durable().await
    }

    /// Reserves room for about `bytes` in the writer's queue, waiting while it is full. With a
    /// reservation, [`Wal::append_reserved`] queues a record without waiting, so a caller can
    /// queue it while holding a lock and fix the order of records to its own order.
    pub async fn reserve(&self, bytes: usize) -> Result<WalReservation, WalError> {
        if let Some(failure) = self.shared.failure() {
            return Err(failure);
        }
        let permits = bytes.clamp(1, self.max_queued_bytes) as u32;
        let permit = Arc::clone(&self.queue_budget)
            .acquire_many_owned(permits)
            .await
            .map_err(|_| WalError::Closed)?;
        Ok(WalReservation { permit })
    }

    /// Queues a record without waiting; records are written in the order of these calls. The
    /// returned [`PendingAppend`] resolves once the record is durable. Dropping it does not
    /// withdraw the record.
    pub fn append_reserved(
        &self,
        reservation: WalReservation,
        payload: Vec<u8>,
    ) -> Result<PendingAppend, WalError> {
        self.queue(reservation, payload, true)
    }

    /// Like [`Wal::append_reserved`], for a record nobody is waiting to see acknowledged (a
    /// scrape's samples): the returned [`PendingAppend`] resolves once the record is written
    /// to the operating system, and the fsync that makes it durable follows within
    /// [`DEFERRED_SYNC_INTERVAL`] (or with the next durable append, whichever comes first). A
    /// killed process loses nothing; a power loss may lose up to the interval of such records.
    pub fn append_reserved_deferred(
        &self,
        reservation: WalReservation,
        payload: Vec<u8>,
    ) -> Result<PendingAppend, WalError> {
        self.queue(reservation, payload, false)
    }

    fn queue(
        &self,
        reservation: WalReservation,
        payload: Vec<u8>,
        durable: bool,
    ) -> Result<PendingAppend, WalError> {
        if payload.len() > MAX_RECORD_BYTES {
            return Err(WalError::RecordTooLarge {
                len: payload.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        if let Some(failure) = self.shared.failure() {
            return Err(failure);
        }
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Append {
            payload,
            reply,
            _permit: reservation.permit,
            durable,
        })?;
        Ok(PendingAppend { receiver })
    }

    /// Closes the current segment and starts a new one. Returns the first sequence number of
    /// the new segment: every record before it is in a closed segment.
    pub async fn rotate(&self) -> Result<Lsn, WalError> {
        let (reply, receiver) = oneshot::channel();
        self.send(Command::Rotate { reply })?;
        receiver.await.map_err(|_| WalError::Closed)?
    }

    /// Unlinks every closed segment whose records all have sequence numbers below `lsn`
    /// (they were checkpointed). Never touches the segment being written. Returns how many
    /// segments were removed.
    pub fn remove_segments_before(&self, lsn: Lsn) -> Result<usize, WalError> {
        let mut segments = self
            .shared
            .segments
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut removable = 0;
        // Segment i holds records [first_lsn(i), first_lsn(i+1)), so it can go when
        // first_lsn(i+1) <= lsn. The last segment is being written and always stays.
        while removable + 1 < segments.len() && segments[removable + 1].first_lsn <= lsn {
            removable += 1;
        }
        for segment in segments.iter().take(removable) {
            fs::remove_file(&segment.path)
                .map_err(|err| WalError::io("remove segment", &segment.path, err))?;
        }
        segments.drain(..removable);
        if removable > 0 {
            sync_dir(&self.shared.dir)?;
        }
        self_metrics()
            .segments
            .with_label_values(&[&self.shared.name])
            .set(segments.len() as i64);
        Ok(removable)
    }

    /// Counters of this log.
    pub fn stats(&self) -> WalStats {
        let stats = &self.shared.stats;
        WalStats {
            appends: stats.appends.load(Ordering::Relaxed),
            bytes: stats.bytes.load(Ordering::Relaxed),
            batches: stats.batches.load(Ordering::Relaxed),
            fsyncs: stats.fsyncs.load(Ordering::Relaxed),
        }
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Stops accepting appends, writes and syncs everything queued, and stops the writer
    /// thread. Appends after this fail with [`WalError::Closed`]. Idempotent.
    pub fn close(&self) {
        let sender = self
            .sender
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        drop(sender);
        self.queue_budget.close();
        let thread = self
            .writer
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!(wal = %self.shared.name, "wal writer thread panicked");
        }
    }

    fn send(&self, command: Command) -> Result<(), WalError> {
        let sender = self.sender.read().unwrap_or_else(|poison| poison.into_inner());
        let sender = sender.as_ref().ok_or(WalError::Closed)?;
        sender.send(command).map_err(|_| WalError::Closed)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

struct QueuedRecord {
    lsn: Lsn,
    reply: oneshot::Sender<Result<Lsn, WalError>>,
}

/// The state owned by the writer thread.
struct SegmentWriter {
    shared: Arc<Shared>,
    file: File,
    segment_len: u64,
    next_lsn: Lsn,
    fsync: FsyncPolicy,
    segment_size_bytes: u64,
    unsynced: bool,
    last_sync: Instant,
    buffer: Vec<u8>,
    /// The batch being built holds a record whose appender waits for its fsync.
    batch_durable: bool,
}

/// The longest a record appended with [`Wal::append_reserved_deferred`] waits for its fsync
/// under [`FsyncPolicy::Always`].
pub const DEFERRED_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The writer drains at most this many bytes into one batch.
const MAX_BATCH_BYTES: usize = 16 << 20;

impl SegmentWriter {
    fn run(mut self, receiver: mpsc::Receiver<Command>) {
        let mut pending: Vec<QueuedRecord> = Vec::new();
        loop {
            let wait = match (self.unsynced, self.fsync) {
                (true, FsyncPolicy::Interval(interval)) => interval.saturating_sub(self.last_sync.elapsed()),
                // Deferred records written but not yet synced.
                (true, FsyncPolicy::Always) => {
                    DEFERRED_SYNC_INTERVAL.saturating_sub(self.last_sync.elapsed())
                }
                _ => Duration::from_secs(3600),
            };
            let first = match receiver.recv_timeout(wait) {
                Ok(command) => command,
                Err(RecvTimeoutError::Timeout) => {
                    if self.unsynced {
                        let _ = self.sync();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Append {
                        payload,
                        reply,
                        _permit,
                        durable,
                    } => {
                        self.batch_durable |= durable;
                        self.encode(&payload, &mut pending, reply);
                        // `_permit` drops here: the bytes are in our buffer now.
                    }
                    Command::Rotate { reply } => {
                        self.flush(&mut pending);
                        let _ = reply.send(self.rotate());
                    }
                }
                if self.buffer.len() < MAX_BATCH_BYTES {
                    next = receiver.try_recv().ok();
                }
            }
            self.flush(&mut pending);
        }
        self.flush(&mut pending);
        if self.unsynced {
            let _ = self.sync();
        }
    }

    fn encode(
        &mut self,
        payload: &[u8],
        pending: &mut Vec<QueuedRecord>,
        reply: oneshot::Sender<Result<Lsn, WalError>>,
    ) {
        let lsn = self.next_lsn + pending.len() as u64;
        encode_record(&mut self.buffer, lsn, payload);
        pending.push(QueuedRecord { lsn, reply });
    }

    /// Writes the buffered batch, syncs it per policy and answers its appenders.
    fn flush(&mut self, pending: &mut Vec<QueuedRecord>) {
        if pending.is_empty() {
            return;
        }
        let result = self.write_batch(pending.len() as u64);
        self.buffer.clear();
        self.batch_durable = false;
        for append in pending.drain(..) {
            let _ = append.reply.send(result.clone().map(|()| append.lsn));
        }
    }

    fn write_batch(&mut self, records: u64) -> Result<(), WalError> {
        if let Some(failure) = self.shared.failure() {
            return Err(failure);
        }
        let batch_len = self.buffer.len() as u64;
        let segment_has_records = self.segment_len > SEGMENT_HEADER_LEN as u64;
        if segment_has_records && self.segment_len + batch_len > self.segment_size_bytes {
            self.rotate()?;
        }
        let path = self.current_path();
        if let Err(err) = self.file.write_all(&self.buffer) {
            // Cut the partial write off so the segment stays well-framed for later batches.
            if let Err(truncate_err) = self.file.set_len(self.segment_len) {
                return Err(self.shared.fail(format!(
                    "write to {} failed ({err}) and truncating it back failed ({truncate_err})",
                    path.display()
                )));
            }
            return Err(WalError::io("write", &path, err));
        }
        self.segment_len += batch_len;
        self.next_lsn += records;
        self.unsynced = true;
        let stats = &self.shared.stats;
        stats.appends.fetch_add(records, Ordering::Relaxed);
        stats.bytes.fetch_add(batch_len, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        let metrics = self_metrics();
        metrics
            .appends
            .with_label_values(&[&self.shared.name])
            .inc_by(records);
        metrics
            .bytes
            .with_label_values(&[&self.shared.name])
            .inc_by(batch_len);
        match self.fsync {
            FsyncPolicy::Always if self.batch_durable => self.sync(),
            // Only deferred records: the writer's loop syncs within DEFERRED_SYNC_INTERVAL.
            FsyncPolicy::Always => Ok(()),
            FsyncPolicy::Interval(interval) => {
                if self.last_sync.elapsed() >= interval {
                    self.sync()
                } else {
                    Ok(())
                }
            }
        }
    }

    fn sync(&mut self) -> Result<(), WalError> {
        let started = Instant::now();
        let result = self.file.sync_data();
        let metrics = self_metrics();
        metrics
            .fsync_seconds
            .with_label_values(&[&self.shared.name])
            .observe(started.elapsed().as_secs_f64());
        metrics.fsyncs.with_label_values(&[&self.shared.name]).inc();
        self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.last_sync = Instant::now();
        match result {
            Ok(()) => {
                self.unsynced = false;
                Ok(())
            }
            // After a failed fsync the page cache may have dropped the dirty pages: nothing
            // written since the last good fsync can be trusted, so stop here (PostgreSQL's
            // "fsyncgate" lesson). A restart replays what really reached the disk. Retrying the
            // fsync would only report success for pages that may be gone, so it is not retried.
            Err(err) => {
                self.unsynced = false;
                Err(self.shared.fail(format!(
                    "fdatasync of {} failed: {err}",
                    self.current_path().display()
                )))
            }
        }
    }

    fn rotate(&mut self) -> Result<Lsn, WalError> {
        if let Some(failure) = self.shared.failure() {
            return Err(failure);
        }
        if self.segment_len == SEGMENT_HEADER_LEN as u64 {
            // The current segment holds no record: it already starts at the next sequence number.
            return Ok(self.next_lsn);
        }
        if self.unsynced {
            self.sync()?;
        }
        let path = segment_path(&self.shared.dir, self.next_lsn);
        let file = create_segment(&self.shared.dir, &path, self.next_lsn)?;
        self.file = file;
        self.segment_len = SEGMENT_HEADER_LEN as u64;
        let mut segments = self
            .shared
            .segments
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        segments.push(Segment {
            first_lsn: self.next_lsn,
            path,
        });
        self_metrics()
            .segments
            .with_label_values(&[&self.shared.name])
            .set(segments.len() as i64);
        Ok(self.next_lsn)
    }

    fn current_path(&self) -> PathBuf {
        let segments = self
            .shared
            .segments
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        segments
            .last()
            .map(|segment| segment.path.clone())
            .unwrap_or_else(|| self.shared.dir.clone())
    }
}

/// Appends one encoded record to `buffer`.
pub fn encode_record(buffer: &mut Vec<u8>, lsn: Lsn, payload: &[u8]) {
    let len = payload.len() as u32;
    let crc = record_crc(len, lsn, payload);
    buffer.extend_from_slice(&len.to_le_bytes());
    buffer.extend_from_slice(&crc.to_le_bytes());
    buffer.extend_from_slice(&lsn.to_le_bytes());
    buffer.extend_from_slice(payload);
}

fn record_crc(len: u32, lsn: Lsn, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &lsn.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// One record decoded from a segment body.
#[derive(Debug, PartialEq, Eq)]
pub struct DecodedRecord<'a> {
    /// The record's sequence number.
    pub lsn: Lsn,
    /// The record's payload.
    pub payload: &'a [u8],
    /// The record's length in the segment, header included.
    pub encoded_len: usize,
}

/// Decodes the record at the start of `bytes`. `Ok(None)` means `bytes` is empty.
pub fn decode_record(bytes: &[u8]) -> Result<Option<DecodedRecord<'_>>, CorruptionReason> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let Some(header) = bytes.get(..RECORD_HEADER_LEN) else {
        return Err(CorruptionReason::Torn);
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let mut lsn_bytes = [0u8; 8];
    lsn_bytes.copy_from_slice(&header[8..16]);
    let lsn = u64::from_le_bytes(lsn_bytes);
    let len_usize = len as usize;
    if len_usize > MAX_RECORD_BYTES {
        return Err(CorruptionReason::BadHeader(format!(
            "record length {len} exceeds the maximum"
        )));
    }
    let Some(payload) = bytes.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len_usize) else {
        return Err(CorruptionReason::Torn);
    };
    if record_crc(len, lsn, payload) != crc {
        return Err(CorruptionReason::ChecksumMismatch);
    }
    Ok(Some(DecodedRecord {
        lsn,
        payload,
        encoded_len: RECORD_HEADER_LEN + len_usize,
    }))
}

struct SegmentOutcome {
    last_lsn: Option<Lsn>,
    corruption: Option<Corruption>,
}

fn replay_segment(
    segment: &Segment,
    report: &mut ReplayReport,
    on_record: &mut impl FnMut(Lsn, &[u8]) -> Result<(), String>,
) -> Result<SegmentOutcome, WalError> {
    let bytes = fs::read(&segment.path).map_err(|err| WalError::io("read segment", &segment.path, err))?;
    if let Some(version_bytes) = bytes.get(6..8)
        && bytes.starts_with(SEGMENT_MAGIC)
    {
        let version = u16::from_le_bytes([version_bytes[0], version_bytes[1]]);
        if version > SEGMENT_VERSION {
            return Err(WalError::NewerVersion {
                path: segment.path.clone(),
                version,
            });
        }
    }
    let corruption_at = |offset: usize, reason: CorruptionReason| Corruption {
        segment: segment.path.clone(),
        offset: offset as u64,
        reason,
        discarded_bytes: (bytes.len() - offset) as u64,
    };
    if let Err(reason) = check_segment_header(&bytes, segment.first_lsn) {
        return Ok(SegmentOutcome {
            last_lsn: None,
            corruption: Some(corruption_at(0, reason)),
        });
    }
    let mut offset = SEGMENT_HEADER_LEN;
    let mut expected_lsn = segment.first_lsn;
    let mut last_lsn = None;
    loop {
        match decode_record(&bytes[offset..]) {
            Ok(None) => break,
            Ok(Some(record)) if record.lsn != expected_lsn => {
                let reason = CorruptionReason::BadHeader(format!(
                    "record has sequence number {} where {expected_lsn} was expected",
                    record.lsn
                ));
                return Ok(SegmentOutcome {
                    last_lsn,
                    corruption: Some(corruption_at(offset, reason)),
                });
            }
            Ok(Some(record)) => {
                on_record(record.lsn, record.payload).map_err(|message| WalError::Replay {
                    lsn: record.lsn,
                    message,
                })?;
                report.records += 1;
                report.payload_bytes += record.payload.len() as u64;
                report.last_lsn = Some(record.lsn);
                last_lsn = Some(record.lsn);
                expected_lsn += 1;
                offset += record.encoded_len;
            }
            Err(reason) => {
                return Ok(SegmentOutcome {
                    last_lsn,
                    corruption: Some(corruption_at(offset, reason)),
                });
            }
        }
    }
    Ok(SegmentOutcome {
        last_lsn,
        corruption: None,
    })
}

fn check_segment_header(bytes: &[u8], first_lsn: Lsn) -> Result<(), CorruptionReason> {
    let Some(header) = bytes.get(..SEGMENT_HEADER_LEN) else {
        return Err(CorruptionReason::Torn);
    };
    if &header[..6] != SEGMENT_MAGIC {
        return Err(CorruptionReason::BadHeader(
            "segment does not start with the wal magic".to_owned(),
        ));
    }
    let version = u16::from_le_bytes([header[6], header[7]]);
    if version != SEGMENT_VERSION {
        return Err(CorruptionReason::BadHeader(format!(
            "unknown segment version {version}"
        )));
    }
    let mut lsn_bytes = [0u8; 8];
    lsn_bytes.copy_from_slice(&header[8..16]);
    let header_lsn = u64::from_le_bytes(lsn_bytes);
    if header_lsn != first_lsn {
        return Err(CorruptionReason::BadHeader(format!(
            "segment header names first record {header_lsn}, its file name {first_lsn}"
        )));
    }
    Ok(())
}

/// Cuts a damaged segment at `offset`; a segment damaged in its header is removed.
fn repair_segment(path: &Path, offset: u64) -> Result<(), WalError> {
    if offset < SEGMENT_HEADER_LEN as u64 {
        fs::remove_file(path).map_err(|err| WalError::io("remove damaged segment", path, err))?;
    } else {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|err| WalError::io("open damaged segment", path, err))?;
        file.set_len(offset)
            .map_err(|err| WalError::io("truncate damaged segment", path, err))?;
        file.sync_all()
            .map_err(|err| WalError::io("sync repaired segment", path, err))?;
    }
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn segment_path(dir: &Path, first_lsn: Lsn) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>, WalError> {
    let entries = fs::read_dir(dir).map_err(|err| WalError::io("list", dir, err))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| WalError::io("list", dir, err))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".wal") else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(first_lsn) = stem.parse::<u64>() else {
            continue;
        };
        segments.push(Segment {
            first_lsn,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|segment| segment.first_lsn);
    Ok(segments)
}

fn create_segment(dir: &Path, path: &Path, first_lsn: Lsn) -> Result<File, WalError> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)
        .map_err(|err| WalError::io("create segment", path, err))?;
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[..6].copy_from_slice(SEGMENT_MAGIC);
    header[6..8].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&first_lsn.to_le_bytes());
    file.write_all(&header)
        .map_err(|err| WalError::io("write segment header", path, err))?;
    file.sync_all()
        .map_err(|err| WalError::io("sync segment", path, err))?;
    sync_dir(dir)?;
    Ok(file)
}

/// Makes a directory's entries (created or removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|err| WalError::io("sync directory", dir, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_detect_damage() {
        let mut buffer = Vec::new();
        encode_record(&mut buffer, 7, b"hello");
        let record = decode_record(&buffer).unwrap().unwrap();
        assert_eq!(
            (record.lsn, record.payload, record.encoded_len),
            (7, &b"hello"[..], 21)
        );
        assert_eq!(decode_record(&buffer[..20]), Err(CorruptionReason::Torn));
        assert_eq!(decode_record(&buffer[..3]), Err(CorruptionReason::Torn));
        for position in 0..buffer.len() {
            let mut damaged = buffer.clone();
            damaged[position] ^= 0x10;
            assert!(
                decode_record(&damaged).is_err(),
                "flip at {position} went unnoticed"
            );
        }
        assert_eq!(decode_record(&[]), Ok(None));
    }
}
