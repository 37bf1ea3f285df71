//! WAL append throughput with the default fsync policy (fdatasync before every acknowledgement,
//! group commit), beside the physical reference of the same disk measured in the same run.
//!
//! Run: `cargo bench -p obs-bench --bench wal` (optionally `-- --seconds 3 --dir /path`).
//!
//! For each (appenders, record size) it prints:
//! - `wal`: records/s and MB/s through `Wal::append` from N concurrent tasks, and how many
//!   records shared each fdatasync;
//! - `disk, same batches`: the raw disk writing the same bytes in batches of the size the WAL
//!   achieved, each followed by fdatasync (what the WAL's I/O pattern costs with no WAL code);
//! - `disk, fsync per record`: write + fdatasync per record (what an append without group
//!   commit costs; the floor for one appender).
//!
//! Ratios are wal / reference: 1.0 means the WAL adds nothing to the disk's own cost.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use obs_bench::{Throughput, arg_value, human};
use obs_core::wal::{Wal, WalOptions};

fn main() {
    let seconds: f64 = arg_value("seconds").and_then(|v| v.parse().ok()).unwrap_or(2.0);
    let budget = Duration::from_secs_f64(seconds);
    let base_dir = arg_value("dir").map(PathBuf::from);
    let scratch = match &base_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir_in(std::env::current_dir().unwrap_or_else(|_| ".".into())),
    }
    .unwrap_or_else(|err| panic!("cannot create a scratch directory: {err}"));
    println!(
        "WAL append throughput, fsync policy `always`, {seconds}s per case, scratch dir {}",
        scratch.path().display()
    );
    println!();
    println!(
        "| appenders | record | wal records/s | wal MB/s | records per fsync | disk, same batches records/s | ratio | disk, fsync per record records/s | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for appenders in [1usize, 16] {
        for record_bytes in [200usize, 4096] {
            let case_dir = scratch.path().join(format!("{appenders}-{record_bytes}"));
            let (wal, records_per_fsync) = bench_wal(&case_dir, appenders, record_bytes, budget);
            let batch_records = records_per_fsync.round().max(1.0) as usize;
            let same_batches = bench_disk(
                &case_dir.join("raw-batches"),
                record_bytes + 16,
                batch_records,
                budget,
            );
            let per_record = bench_disk(&case_dir.join("raw-single"), record_bytes + 16, 1, budget);
            println!(
                "| {appenders} | {record_bytes} B | {} | {:.1} | {records_per_fsync:.1} | {} | {:.2} | {} | {:.2} |",
                human(wal.ops_per_sec()),
                wal.mb_per_sec(),
                human(same_batches.ops_per_sec()),
                wal.ops_per_sec() / same_batches.ops_per_sec(),
                human(per_record.ops_per_sec()),
                wal.ops_per_sec() / per_record.ops_per_sec(),
            );
        }
    }
}

/// Appends `record_bytes` records from `appenders` tasks for `budget`. Returns throughput and
/// the mean number of records per fdatasync.
fn bench_wal(dir: &Path, appenders: usize, record_bytes: usize, budget: Duration) -> (Throughput, f64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("runtime: {err}"));
    let (wal, _) = Wal::open(dir, WalOptions::named("bench"), |_, _| Ok(()))
        .unwrap_or_else(|err| panic!("open wal: {err}"));
    let wal = Arc::new(wal);
    let completed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + budget;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for appender in 0..appenders {
            let wal = Arc::clone(&wal);
            let completed = Arc::clone(&completed);
            tasks.push(tokio::spawn(async move {
                let payload = vec![(appender % 251) as u8; record_bytes];
                while Instant::now() < deadline {
                    wal.append(payload.clone())
                        .await
                        .unwrap_or_else(|err| panic!("append: {err}"));
                    completed.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap_or_else(|err| panic!("appender: {err}"));
        }
    });
    let elapsed = started.elapsed();
    let stats = wal.stats();
    wal.close();
    let operations = completed.load(Ordering::Relaxed);
    let throughput = Throughput {
        operations,
        bytes: operations * record_bytes as u64,
        elapsed,
    };
    (throughput, stats.appends as f64 / stats.fsyncs.max(1) as f64)
}

/// Writes `record_bytes` records in batches of `batch_records`, fdatasync after each batch.
fn bench_disk(path: &Path, record_bytes: usize, batch_records: usize, budget: Duration) -> Throughput {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|err| panic!("{err}"));
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|err| panic!("open {}: {err}", path.display()));
    let batch = vec![0x5au8; record_bytes * batch_records];
    let started = Instant::now();
    let mut records = 0u64;
    while started.elapsed() < budget {
        file.write_all(&batch)
            .unwrap_or_else(|err| panic!("write: {err}"));
        file.sync_data().unwrap_or_else(|err| panic!("fdatasync: {err}"));
        records += batch_records as u64;
    }
    Throughput {
        operations: records,
        bytes: records * (record_bytes as u64 - 16),
        elapsed: started.elapsed(),
    }
}
