//! Retention: age per signal, then the disk budget, oldest first across signals.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use obs_core::Signal;
use obs_core::disk::{FilesystemUsage, allocated_bytes};
use obs_core::partition::{
    DataLayout, DayPartitionDir, DropReason, PartitionSet, RetentionManager, RetentionPolicy,
};
use obs_core::time::{Day, TimestampMs};
use obs_core::units::{ByteSize, DiskBudget};

const PARTITION_BYTES: usize = 256 << 10;
const ROOMY: FilesystemUsage = FilesystemUsage {
    total_bytes: 1 << 40,
    available_bytes: 1 << 39,
};

/// A data directory with a partition for each of the last `days` days for every signal, half
/// of them files (`.redb`), half directories, plus a write-ahead log per signal.
fn populate(root: &Path, today: Day, days: i32) {
    for signal in Signal::ALL {
        let layout = DataLayout::new(root);
        let dir = DayPartitionDir::new(signal, layout.signal_dir(signal));
        std::fs::create_dir_all(layout.wal_dir(signal)).unwrap();
        std::fs::write(
            layout.wal_dir(signal).join("00000000000000000001.wal"),
            vec![7u8; 4096],
        )
        .unwrap();
        for age in 0..days {
            let day = Day(today.0 - age);
            if age % 2 == 0 {
                std::fs::write(dir.partition_path(day, "redb"), vec![1u8; PARTITION_BYTES]).unwrap();
            } else {
                let path = dir.partition_path(day, "");
                std::fs::create_dir_all(&path).unwrap();
                std::fs::write(path.join("segment"), vec![2u8; PARTITION_BYTES]).unwrap();
            }
        }
    }
}

fn manager(root: &Path, budget: DiskBudget, min_free_bytes: u64) -> RetentionManager {
    let layout = DataLayout::new(root);
    let sets: Vec<Arc<dyn PartitionSet>> = Signal::ALL
        .iter()
        .map(|&signal| {
            Arc::new(DayPartitionDir::new(signal, layout.signal_dir(signal))) as Arc<dyn PartitionSet>
        })
        .collect();
    let retention = BTreeMap::from([
        (Signal::Metrics, Duration::from_secs(15 * 86_400)),
        (Signal::Logs, Duration::from_secs(14 * 86_400)),
        (Signal::Traces, Duration::from_secs(7 * 86_400)),
    ]);
    RetentionManager::new(
        layout,
        sets,
        RetentionPolicy {
            retention,
            disk_budget: budget,
            min_free_bytes,
        },
    )
}

fn days_left(root: &Path, signal: Signal) -> Vec<Day> {
    let dir = DayPartitionDir::new(signal, DataLayout::new(root).signal_dir(signal));
    let mut days: Vec<Day> = dir.partitions().unwrap().into_iter().map(|p| p.day).collect();
    days.sort();
    days
}

fn now_at(today: Day) -> TimestampMs {
    // Midday: partitions are whole days, so the boundary is the interesting part.
    TimestampMs(today.start().0 + 12 * 3_600_000)
}

#[test]
fn partitions_older_than_each_signals_retention_are_dropped() {
    let root = tempfile::tempdir().unwrap();
    let today: Day = "2026-11-25".parse().unwrap();
    populate(root.path(), today, 20);
    let report = manager(root.path(), DiskBudget::Size(ByteSize::gib(100)), 0)
        .run_once_with(now_at(today), ROOMY)
        .unwrap();

    // At 12:00 on day T with retention R days, day D is dropped when D+1 00:00 <= T 12:00 - R,
    // i.e. D <= T - R - 1. So R+1 partitions (T-R .. T) remain.
    for (signal, retention_days) in [(Signal::Metrics, 15), (Signal::Logs, 14), (Signal::Traces, 7)] {
        let left = days_left(root.path(), signal);
        let expected: Vec<Day> = (today.0 - retention_days..=today.0).map(Day).collect();
        assert_eq!(left, expected, "{signal}");
    }
    assert!(
        report
            .dropped
            .iter()
            .all(|dropped| dropped.reason == DropReason::Age)
    );
    assert_eq!(report.dropped.len(), (20 - 16) + (20 - 15) + (20 - 8));
    assert!(
        report
            .dropped
            .iter()
            .all(|dropped| dropped.bytes >= PARTITION_BYTES as u64)
    );
    // Write-ahead logs are not partitions.
    for signal in Signal::ALL {
        assert!(
            DataLayout::new(root.path())
                .wal_dir(signal)
                .join("00000000000000000001.wal")
                .exists()
        );
    }
    assert!(!report.over_budget);
}

#[test]
fn over_budget_drops_the_oldest_partitions_across_signals_first() {
    let root = tempfile::tempdir().unwrap();
    let today: Day = "2026-11-25".parse().unwrap();
    populate(root.path(), today, 6);
    let used = allocated_bytes(root.path()).unwrap();
    // Room for everything but about four partitions.
    let budget = used - 4 * PARTITION_BYTES as u64 + PARTITION_BYTES as u64 / 2;
    let report = manager(root.path(), DiskBudget::Size(ByteSize(budget)), 0)
        .run_once_with(now_at(today), ROOMY)
        .unwrap();

    let dropped: Vec<(Signal, Day)> = report.dropped.iter().map(|d| (d.signal, d.day)).collect();
    let oldest = Day(today.0 - 5);
    let next = Day(today.0 - 4);
    assert_eq!(
        dropped,
        vec![
            (Signal::Metrics, oldest),
            (Signal::Logs, oldest),
            (Signal::Traces, oldest),
            (Signal::Metrics, next),
        ]
    );
    assert!(report.dropped.iter().all(|d| d.reason == DropReason::DiskBudget));
    assert!(report.used_bytes <= budget, "{} > {budget}", report.used_bytes);
    assert!(!report.over_budget);
    // Nothing newer was touched.
    assert_eq!(
        days_left(root.path(), Signal::Metrics),
        (today.0 - 3..=today.0).map(Day).collect::<Vec<_>>()
    );
    assert_eq!(
        days_left(root.path(), Signal::Logs),
        (today.0 - 4..=today.0).map(Day).collect::<Vec<_>>()
    );
    assert_eq!(
        days_left(root.path(), Signal::Traces),
        (today.0 - 4..=today.0).map(Day).collect::<Vec<_>>()
    );
}

#[test]
fn a_filling_filesystem_shrinks_the_budget_to_keep_free_space() {
    let root = tempfile::tempdir().unwrap();
    let today: Day = "2026-11-25".parse().unwrap();
    populate(root.path(), today, 3);
    // The budget percentage allows everything, but only one partition's worth is free while
    // two must stay free: at least one partition has to go.
    let filesystem = FilesystemUsage {
        total_bytes: 1 << 40,
        available_bytes: PARTITION_BYTES as u64,
    };
    let report = manager(
        root.path(),
        DiskBudget::PercentOfFilesystem(90.0),
        2 * PARTITION_BYTES as u64,
    )
    .run_once_with(now_at(today), filesystem)
    .unwrap();
    assert_eq!(report.dropped.len(), 1, "{:?}", report.dropped);
    assert_eq!(
        (report.dropped[0].signal, report.dropped[0].day),
        (Signal::Metrics, Day(today.0 - 2))
    );
}

#[test]
fn todays_partitions_are_never_dropped_and_pressure_is_raised() {
    let root = tempfile::tempdir().unwrap();
    let today: Day = "2026-11-25".parse().unwrap();
    populate(root.path(), today, 2);
    let tight = manager(root.path(), DiskBudget::Size(ByteSize(PARTITION_BYTES as u64)), 0);
    let pressure = tight.pressure();
    let report = tight.run_once_with(now_at(today), ROOMY).unwrap();
    assert_eq!(report.dropped.len(), 3, "yesterday's partitions go");
    assert!(report.dropped.iter().all(|d| d.day == Day(today.0 - 1)));
    for signal in Signal::ALL {
        assert_eq!(days_left(root.path(), signal), vec![today]);
    }
    assert!(report.over_budget);
    assert!(pressure.is_over_budget());

    // Once there is room again, the pressure lifts.
    let roomy = manager(root.path(), DiskBudget::Size(ByteSize::gib(1)), 0);
    let report = roomy.run_once_with(now_at(today), ROOMY).unwrap();
    assert!(!report.over_budget);
}
