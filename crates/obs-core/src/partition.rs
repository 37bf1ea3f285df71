//! Day partitions and retention.
//!
//! Every signal keeps its data in UTC day partitions under `<data>/<signal>/`: a partition is
//! every file or directory whose name is the day (`2026-11-25/`) or starts with it and a dot
//! (`2026-11-25.redb`). Dropping old data is unlinking whole partitions: no rewrite, no
//! compaction storm.
//!
//! The [`RetentionManager`] runs periodically over every signal's [`PartitionSet`]:
//!
//! 1. **Age**: a partition whose whole day is older than its signal's retention is dropped.
//! 2. **Disk budget**: everything under the data directory counts (write-ahead logs, indexes,
//!    partitions). While it exceeds the budget (a size or a percentage of the filesystem, and
//!    never more than would leave `min_free` on the filesystem), the oldest partition across all
//!    signals is dropped. Today's partition is never dropped; if the data directory is still
//!    over budget without it, [`DiskPressure`] says so and ingest answers with backpressure.
//!
//! Stores implement [`PartitionSet`] to close their handles on a partition before it is
//! unlinked; [`DayPartitionDir`] is the directory scan they build on.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec};

use crate::Signal;
use crate::disk::{FilesystemUsage, allocated_bytes, filesystem_usage};
use crate::time::{Day, TimestampMs};
use crate::units::DiskBudget;

/// Where each part of the data directory lives.
#[derive(Debug, Clone)]
pub struct DataLayout {
    root: PathBuf,
}

impl DataLayout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataLayout {
        DataLayout { root: root.into() }
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<data>/<signal>`: the signal's partitions, write-ahead log and indexes.
    pub fn signal_dir(&self, signal: Signal) -> PathBuf {
        self.root.join(signal.as_str())
    }

    /// `<data>/<signal>/wal`: the signal's write-ahead log.
    pub fn wal_dir(&self, signal: Signal) -> PathBuf {
        self.signal_dir(signal).join("wal")
    }
}

/// One day partition of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// The UTC day it holds.
    pub day: Day,
    /// Bytes allocated to it on disk.
    pub bytes: u64,
}

/// A signal's set of day partitions, as the retention manager sees it.
pub trait PartitionSet: Send + Sync + Debug {
    /// The signal these partitions belong to.
    fn signal(&self) -> Signal;

    /// Every partition, in any order.
    fn partitions(&self) -> io::Result<Vec<Partition>>;

    /// Closes and unlinks a partition. Returns the bytes freed.
    fn drop_partition(&self, day: Day) -> io::Result<u64>;
}

/// The partitions of one signal found by scanning its directory.
#[derive(Debug, Clone)]
pub struct DayPartitionDir {
    signal: Signal,
    dir: PathBuf,
}

impl DayPartitionDir {
    /// The partitions of `signal` in `dir`.
    pub fn new(signal: Signal, dir: impl Into<PathBuf>) -> DayPartitionDir {
        DayPartitionDir {
            signal,
            dir: dir.into(),
        }
    }

    /// The path of `day`'s partition with an optional extension (`"redb"` gives
    /// `2026-11-25.redb`, `""` the directory `2026-11-25`).
    pub fn partition_path(&self, day: Day, extension: &str) -> PathBuf {
        if extension.is_empty() {
            self.dir.join(day.to_string())
        } else {
            self.dir.join(format!("{day}.{extension}"))
        }
    }

    /// Every entry of the directory that belongs to a partition, grouped by day.
    fn entries_by_day(&self) -> io::Result<BTreeMap<Day, Vec<PathBuf>>> {
        let mut by_day: BTreeMap<Day, Vec<PathBuf>> = BTreeMap::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(by_day),
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(day) = partition_day(name) {
                by_day.entry(day).or_default().push(entry.path());
            }
        }
        Ok(by_day)
    }
}

/// The day a partition entry's name denotes: `YYYY-MM-DD` or `YYYY-MM-DD.<anything>`.
pub fn partition_day(name: &str) -> Option<Day> {
    let date = name.get(..10)?;
    let rest = &name[10..];
    if !(rest.is_empty() || rest.starts_with('.')) {
        return None;
    }
    date.parse().ok()
}

impl PartitionSet for DayPartitionDir {
    fn signal(&self) -> Signal {
        self.signal
    }

    fn partitions(&self) -> io::Result<Vec<Partition>> {
        let mut partitions = Vec::new();
        for (day, paths) in self.entries_by_day()? {
            let mut bytes = 0;
            for path in &paths {
                bytes += allocated_bytes(path)?;
            }
            partitions.push(Partition { day, bytes });
        }
        Ok(partitions)
    }

    fn drop_partition(&self, day: Day) -> io::Result<u64> {
        let by_day = self.entries_by_day()?;
        let Some(paths) = by_day.get(&day) else {
            return Ok(0);
        };
        let mut freed = 0;
        for path in paths {
            freed += allocated_bytes(path)?;
            let result = if std::fs::symlink_metadata(path)?.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
            match result {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        Ok(freed)
    }
}

/// Retention settings for every signal.
#[derive(Debug, Clone)]
pub struct RetentionPolicy {
    /// How long each signal's data is kept.
    pub retention: BTreeMap<Signal, Duration>,
    /// The most the data directory may use.
    pub disk_budget: DiskBudget,
    /// Free space always left on the filesystem, whatever the budget says.
    pub min_free_bytes: u64,
}

impl RetentionPolicy {
    /// The retention of `signal` (15 days when unset).
    pub fn retention_of(&self, signal: Signal) -> Duration {
        self.retention
            .get(&signal)
            .copied()
            .unwrap_or(Duration::from_secs(15 * 86_400))
    }
}

/// Whether ingest must push back because the disk budget is exhausted. Shared between the
/// retention manager, which sets it, and every ingest path, which reads it.
#[derive(Debug, Default)]
pub struct DiskPressure {
    over_budget: AtomicBool,
    used_bytes: AtomicU64,
    budget_bytes: AtomicU64,
}

impl DiskPressure {
    /// True when the data directory exceeds its budget and nothing more can be dropped.
    pub fn is_over_budget(&self) -> bool {
        self.over_budget.load(Ordering::Relaxed)
    }

    /// Bytes used by the data directory at the last check.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes.load(Ordering::Relaxed)
    }

    /// The effective budget at the last check.
    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes.load(Ordering::Relaxed)
    }
}

/// Why a partition was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Older than the signal's retention.
    Age,
    /// The data directory exceeded its disk budget.
    DiskBudget,
}

impl DropReason {
    /// The label value of self-metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Age => "age",
            DropReason::DiskBudget => "disk_budget",
        }
    }
}

/// A partition that a retention pass dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedPartition {
    /// Its signal.
    pub signal: Signal,
    /// Its day.
    pub day: Day,
    /// Bytes freed.
    pub bytes: u64,
    /// Why.
    pub reason: DropReason,
}

/// What one retention pass did and saw.
#[derive(Debug, Clone, Default)]
pub struct RetentionReport {
    /// Partitions dropped, in the order they were dropped.
    pub dropped: Vec<DroppedPartition>,
    /// Bytes under the data directory after the pass.
    pub used_bytes: u64,
    /// The effective budget.
    pub budget_bytes: u64,
    /// Still over budget with nothing left to drop.
    pub over_budget: bool,
}

struct SelfMetrics {
    dropped_partitions: IntCounterVec,
    dropped_bytes: IntCounterVec,
    storage_bytes: IntGaugeVec,
    budget_bytes: IntGauge,
    over_budget: IntGauge,
    filesystem_size: IntGauge,
    filesystem_available: IntGauge,
}

fn self_metrics() -> &'static SelfMetrics {
    static METRICS: OnceLock<SelfMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = crate::selfmetrics::registry();
        SelfMetrics {
            dropped_partitions: registry.int_counter_vec(
                "obs_retention_dropped_partitions_total",
                "Day partitions dropped by retention.",
                &["signal", "reason"],
            ),
            dropped_bytes: registry.int_counter_vec(
                "obs_retention_dropped_bytes_total",
                "Bytes freed by dropping day partitions.",
                &["signal", "reason"],
            ),
            storage_bytes: registry.int_gauge_vec(
                "obs_storage_bytes",
                "Bytes allocated under the data directory, by signal (write-ahead log included); 'other' is the rest.",
                &["signal"],
            ),
            budget_bytes: registry.int_gauge("obs_storage_budget_bytes", "The effective disk budget of the data directory."),
            over_budget: registry.int_gauge(
                "obs_storage_over_budget",
                "1 when the data directory exceeds its budget with nothing left to drop: ingest is refused.",
            ),
            filesystem_size: registry.int_gauge("obs_filesystem_size_bytes", "Size of the filesystem holding the data directory."),
            filesystem_available: registry.int_gauge(
                "obs_filesystem_available_bytes",
                "Free bytes available on the filesystem holding the data directory.",
            ),
        }
    })
}

/// Applies a [`RetentionPolicy`] to every signal's partitions. See the [module docs](self).
#[derive(Debug)]
pub struct RetentionManager {
    layout: DataLayout,
    sets: Vec<Arc<dyn PartitionSet>>,
    policy: RetentionPolicy,
    pressure: Arc<DiskPressure>,
}

impl RetentionManager {
    /// A manager over `sets`, measuring everything under `layout.root()`.
    pub fn new(
        layout: DataLayout,
        sets: Vec<Arc<dyn PartitionSet>>,
        policy: RetentionPolicy,
    ) -> RetentionManager {
        RetentionManager {
            layout,
            sets,
            policy,
            pressure: Arc::new(DiskPressure::default()),
        }
    }

    /// The shared disk-pressure flag ingest paths consult.
    pub fn pressure(&self) -> Arc<DiskPressure> {
        Arc::clone(&self.pressure)
    }

    /// One pass at `now`, measuring the real filesystem.
    pub fn run_once(&self, now: TimestampMs) -> io::Result<RetentionReport> {
        let usage = filesystem_usage(self.layout.root())?;
        self.run_once_with(now, usage)
    }

    /// One pass at `now` with the given filesystem figures.
    pub fn run_once_with(
        &self,
        now: TimestampMs,
        filesystem: FilesystemUsage,
    ) -> io::Result<RetentionReport> {
        let metrics = self_metrics();
        let mut report = RetentionReport::default();
        for set in &self.sets {
            let cutoff = now.saturating_sub(self.policy.retention_of(set.signal()));
            for partition in set.partitions()? {
                if partition.day.end_exclusive() <= cutoff {
                    self.drop_partition(set.as_ref(), partition.day, DropReason::Age, &mut report)?;
                }
            }
        }

        let mut used = allocated_bytes(self.layout.root())?;
        let budget = self
            .policy
            .disk_budget
            .resolve(filesystem.total_bytes)
            .min((used + filesystem.available_bytes).saturating_sub(self.policy.min_free_bytes));
        let today = Day::containing(now);
        while used > budget {
            let Some((set, oldest)) = self.oldest_partition_before(today)? else {
                break;
            };
            let freed = self.drop_partition(set.as_ref(), oldest.day, DropReason::DiskBudget, &mut report)?;
            used = used.saturating_sub(freed.max(oldest.bytes));
        }
        used = allocated_bytes(self.layout.root())?;
        report.used_bytes = used;
        report.budget_bytes = budget;
        report.over_budget = used > budget;
        if report.over_budget && !self.pressure.is_over_budget() {
            tracing::warn!(
                used_bytes = used,
                budget_bytes = budget,
                "data directory is over its disk budget with only today's partitions left; refusing ingest until space frees up"
            );
        }
        self.pressure
            .over_budget
            .store(report.over_budget, Ordering::Relaxed);
        self.pressure.used_bytes.store(used, Ordering::Relaxed);
        self.pressure.budget_bytes.store(budget, Ordering::Relaxed);

        let mut signal_total = 0;
        for signal in Signal::ALL {
            let bytes = allocated_bytes(&self.layout.signal_dir(signal))?;
            signal_total += bytes;
            metrics
                .storage_bytes
                .with_label_values(&[signal.as_str()])
                .set(bytes as i64);
        }
        metrics
            .storage_bytes
            .with_label_values(&["other"])
            .set(used.saturating_sub(signal_total) as i64);
        metrics.budget_bytes.set(budget as i64);
        metrics.over_budget.set(i64::from(report.over_budget));
        metrics.filesystem_size.set(filesystem.total_bytes as i64);
        metrics
            .filesystem_available
            .set(filesystem.available_bytes as i64);
        Ok(report)
    }

    fn oldest_partition_before(&self, today: Day) -> io::Result<Option<(Arc<dyn PartitionSet>, Partition)>> {
        let mut oldest: Option<(Arc<dyn PartitionSet>, Partition)> = None;
        for set in &self.sets {
            for partition in set.partitions()? {
                if partition.day >= today {
                    continue;
                }
                let is_older = match &oldest {
                    None => true,
                    Some((oldest_set, oldest_partition)) => {
                        (partition.day, set.signal()) < (oldest_partition.day, oldest_set.signal())
                    }
                };
                if is_older {
                    oldest = Some((Arc::clone(set), partition));
                }
            }
        }
        Ok(oldest)
    }

    fn drop_partition(
        &self,
        set: &dyn PartitionSet,
        day: Day,
        reason: DropReason,
        report: &mut RetentionReport,
    ) -> io::Result<u64> {
        let signal = set.signal();
        let bytes = set.drop_partition(day)?;
        tracing::info!(signal = %signal, day = %day, bytes, reason = reason.as_str(), "dropped partition");
        let metrics = self_metrics();
        let labels = [signal.as_str(), reason.as_str()];
        metrics.dropped_partitions.with_label_values(&labels).inc();
        metrics.dropped_bytes.with_label_values(&labels).inc_by(bytes);
        report.dropped.push(DroppedPartition {
            signal,
            day,
            bytes,
            reason,
        });
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names() {
        assert_eq!(partition_day("2026-11-25").unwrap().to_string(), "2026-11-25");
        assert_eq!(
            partition_day("2026-11-25.redb").unwrap().to_string(),
            "2026-11-25"
        );
        assert!(partition_day("2026-11-25x").is_none());
        assert!(partition_day("wal").is_none());
        assert!(partition_day("2026-13-25").is_none());
    }
}
