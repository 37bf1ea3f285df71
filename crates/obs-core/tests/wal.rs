//! Write-ahead log: replay, damage, group commit and crash safety.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_core::wal::{CorruptionReason, FsyncPolicy, Lsn, ReplayReport, Wal, WalOptions};
use rand::{Rng, SeedableRng};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn open(dir: &Path, options: WalOptions) -> (Wal, ReplayReport, BTreeMap<Lsn, Vec<u8>>) {
    let mut records = BTreeMap::new();
    let (wal, report) = Wal::open(dir, options, |lsn, payload| {
        records.insert(lsn, payload.to_vec());
        Ok(())
    })
    .unwrap();
    (wal, report, records)
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    files.sort();
    files
}

fn payload(i: usize) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat(i % 97)).into_bytes()
}

#[test]
fn records_survive_reopen_across_segments_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let options = WalOptions {
        segment_size_bytes: 1024,
        ..WalOptions::named("test")
    };
    let (wal, report, _) = open(dir.path(), options.clone());
    assert_eq!(report.records, 0);
    for i in 0..100 {
        let lsn = rt.block_on(wal.append(payload(i))).unwrap();
        assert_eq!(lsn, i as u64 + 1);
    }
    wal.close();
    assert!(
        segment_files(dir.path()).len() > 5,
        "small segments should rotate"
    );

    let (wal, report, records) = open(dir.path(), options.clone());
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
    assert_eq!(report.records, 100);
    assert_eq!(report.last_lsn, Some(100));
    for i in 0..100 {
        assert_eq!(records[&(i as u64 + 1)], payload(i));
    }
    // New appends continue the sequence.
    assert_eq!(rt.block_on(wal.append(b"after".to_vec())).unwrap(), 101);

    // A checkpoint covering everything up to 101: rotate, then drop the older segments.
    let first_of_new_segment = rt.block_on(wal.rotate()).unwrap();
    assert_eq!(first_of_new_segment, 102);
    let removed = wal.remove_segments_before(first_of_new_segment).unwrap();
    assert!(removed > 5);
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(rt.block_on(wal.append(b"kept".to_vec())).unwrap(), 102);
    wal.close();

    let (_wal, report, records) = open(dir.path(), options);
    assert_eq!(
        records.into_iter().collect::<Vec<_>>(),
        vec![(102, b"kept".to_vec())]
    );
    assert!(report.corruptions.is_empty());
}

#[test]
fn rotating_an_empty_segment_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (wal, _, _) = open(dir.path(), WalOptions::named("test"));
    assert_eq!(rt.block_on(wal.rotate()).unwrap(), 1);
    assert_eq!(rt.block_on(wal.append(b"a".to_vec())).unwrap(), 1);
    assert_eq!(rt.block_on(wal.rotate()).unwrap(), 2);
    assert_eq!(rt.block_on(wal.rotate()).unwrap(), 2);
    assert_eq!(segment_files(dir.path()).len(), 2);
}

#[test]
fn a_segment_from_a_newer_version_is_refused_not_repaired() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 3);
    let segment = segment_files(dir.path())[0].clone();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[6..8].copy_from_slice(&99u16.to_le_bytes());
    std::fs::write(&segment, &bytes).unwrap();
    let err = Wal::open(dir.path(), WalOptions::named("test"), |_, _| Ok(())).unwrap_err();
    assert!(err.to_string().contains("format version 99"), "{err}");
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        bytes,
        "the newer segment must be left alone"
    );
}

fn write_records(dir: &Path, count: usize) -> Vec<u64> {
    let rt = runtime();
    let (wal, _, _) = open(dir, WalOptions::named("test"));
    let mut ends = Vec::new();
    for i in 0..count {
        rt.block_on(wal.append(payload(i))).unwrap();
        ends.push(std::fs::metadata(&segment_files(dir)[0]).unwrap().len());
    }
    wal.close();
    ends
}

#[test]
fn torn_final_record_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_records(dir.path(), 10);
    let segment = segment_files(dir.path())[0].clone();
    // Cut the last record in half, as a crash in the middle of a write would.
    let last_start = ends[8];
    let cut = last_start + (ends[9] - last_start) / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let (wal, report, records) = open(dir.path(), WalOptions::named("test"));
    assert_eq!(report.records, 9);
    assert_eq!(records.len(), 9);
    assert_eq!(report.corruptions.len(), 1);
    let corruption = &report.corruptions[0];
    assert_eq!(corruption.reason, CorruptionReason::Torn);
    assert_eq!(corruption.offset, last_start);
    assert_eq!(corruption.segment, segment);
    assert_eq!(corruption.discarded_bytes, cut - last_start);
    // The sequence continues where the good records stopped.
    assert_eq!(runtime().block_on(wal.append(b"next".to_vec())).unwrap(), 10);
    wal.close();

    // The repair is durable: the next replay is clean and has all ten.
    let (_wal, report, records) = open(dir.path(), WalOptions::named("test"));
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
    assert_eq!(records.len(), 10);
    assert_eq!(records[&10], b"next");
}

#[test]
fn flipped_byte_stops_replay_at_the_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_records(dir.path(), 10);
    let segment = segment_files(dir.path())[0].clone();
    let mut bytes = std::fs::read(&segment).unwrap();
    // Flip one bit inside the payload of the sixth record (index 5).
    let sixth_start = ends[4] as usize;
    bytes[sixth_start + 20] ^= 0x04;
    std::fs::write(&segment, &bytes).unwrap();

    let (_wal, report, records) = open(dir.path(), WalOptions::named("test"));
    assert_eq!(
        records.keys().copied().collect::<Vec<_>>(),
        (1..=5).collect::<Vec<_>>()
    );
    for i in 0..5 {
        assert_eq!(records[&(i as u64 + 1)], payload(i));
    }
    assert_eq!(report.corruptions.len(), 1);
    assert_eq!(report.corruptions[0].reason, CorruptionReason::ChecksumMismatch);
    assert_eq!(report.corruptions[0].offset, sixth_start as u64);
}

#[test]
fn concurrent_appenders_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (wal, _, _) = open(dir.path(), WalOptions::named("test"));
    let wal = Arc::new(wal);
    let appenders = 64;
    let per_appender = 40;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for appender in 0..appenders {
            let wal = Arc::clone(&wal);
            tasks.push(tokio::spawn(async move {
                for i in 0..per_appender {
                    wal.append(format!("{appender}-{i}").into_bytes()).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let stats = wal.stats();
    let appends = (appenders * per_appender) as u64;
    assert_eq!(stats.appends, appends);
    // With the default policy every batch is fsynced once, and batches are shared.
    assert_eq!(stats.fsyncs, stats.batches);
    assert!(
        stats.fsyncs * 2 <= appends,
        "{} fsyncs for {appends} appends: concurrent appends did not share fsyncs",
        stats.fsyncs
    );
    wal.close();
    let (_wal, report, _) = open(dir.path(), WalOptions::named("test"));
    assert_eq!(report.records, appends);
}

#[test]
fn interval_policy_acknowledges_without_an_fsync_per_append() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let options = WalOptions {
        fsync: FsyncPolicy::Interval(Duration::from_secs(60)),
        ..WalOptions::named("test")
    };
    let (wal, _, _) = open(dir.path(), options.clone());
    for i in 0..200 {
        rt.block_on(wal.append(payload(i))).unwrap();
    }
    assert!(wal.stats().fsyncs <= 1, "{:?}", wal.stats());
    wal.close();
    assert!(wal.stats().fsyncs >= 1, "close must sync");
    assert!(
        rt.block_on(wal.append(b"late".to_vec())).is_err(),
        "a closed wal refuses appends"
    );
    let (_wal, report, _) = open(dir.path(), options);
    assert_eq!(report.records, 200);
}

#[test]
fn deferred_appends_share_one_fsync_a_second_and_durable_ones_still_sync() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let options = WalOptions::named("test");
    let (wal, _, _) = open(dir.path(), options.clone());
    // A durable append first: the next deferred ones find a recent fsync and wait for the
    // deferred interval.
    rt.block_on(wal.append(payload(0))).unwrap();
    let synced = wal.stats().fsyncs;
    for i in 1..100 {
        let reservation = rt.block_on(wal.reserve(64)).unwrap();
        let pending = wal.append_reserved_deferred(reservation, payload(i)).unwrap();
        rt.block_on(pending.durable()).unwrap();
    }
    assert!(
        wal.stats().fsyncs <= synced + 1,
        "100 deferred appends answered without an fsync each: {:?}",
        wal.stats()
    );
    // Within the interval the writer syncs them on its own.
    std::thread::sleep(obs_core::wal::DEFERRED_SYNC_INTERVAL + Duration::from_millis(300));
    assert!(wal.stats().fsyncs > synced, "{:?}", wal.stats());
    // A durable append still gets its own fsync.
    let before = wal.stats().fsyncs;
    rt.block_on(wal.append(payload(100))).unwrap();
    assert_eq!(wal.stats().fsyncs, before + 1);
    wal.close();
    let (_wal, report, records) = open(dir.path(), options);
    assert_eq!(report.records, 101);
    assert_eq!(records.values().nth(50), Some(&payload(50)));
}

const CHILD_DIR_ENV: &str = "OBS_WAL_KILL_TEST_DIR";
const CHILD_RUN_ENV: &str = "OBS_WAL_KILL_TEST_RUN";

/// The child side of `acknowledged_records_survive_sigkill`: appends from several tasks until
/// killed, printing `ACK <lsn> <payload>` after each append returns.
#[test]
fn wal_kill_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return; // Only does something when started by the parent test.
    };
    let run: usize = std::env::var(CHILD_RUN_ENV).unwrap().parse().unwrap();
    let (wal, _, _) = open(
        Path::new(&dir),
        WalOptions {
            segment_size_bytes: 256 << 10,
            ..WalOptions::named("kill")
        },
    );
    let wal = Arc::new(wal);
    runtime().block_on(async {
        let mut tasks = Vec::new();
        for task in 0..8 {
            let wal = Arc::clone(&wal);
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let text = format!("r{run}-t{task}-i{i}-{}", "p".repeat((i * 7 + task) % 300));
                    let lsn = wal.append(text.clone().into_bytes()).await.unwrap();
                    println!("ACK {lsn} {text}");
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: BTreeMap<Lsn, String> = BTreeMap::new();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x0b5_a11);
    let kills = 24;
    for run in 0..kills {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["wal_kill_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_RUN_ENV, run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let (lsn, text) = rest.split_once(' ').unwrap();
                    acks.push((lsn.parse::<Lsn>().unwrap(), text.to_owned()));
                }
            }
            acks
        });
        // Kill at a random moment once appends are flowing.
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(rng.random_range(20..150)));
        child.kill().unwrap();
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(30));
        for (lsn, text) in acks {
            if let Some(previous) = acknowledged.insert(lsn, text.clone()) {
                panic!("lsn {lsn} acknowledged twice: {previous:?} and {text:?}");
            }
        }

        let (wal, _report, records) = open(dir.path(), WalOptions::named("kill"));
        wal.close();
        for (lsn, text) in &acknowledged {
            let Some(stored) = records.get(lsn) else {
                panic!("run {run}: acknowledged record {lsn} ({text:?}) is missing after SIGKILL");
            };
            assert_eq!(stored, text.as_bytes(), "run {run}: record {lsn} differs");
        }
    }
    assert!(
        acknowledged.len() > kills,
        "the child should have appended in most runs"
    );
}
