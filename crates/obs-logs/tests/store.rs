//! The log store against a simple reference: what was acknowledged is selected back, in
//! order, from the head, from the day indexes after a flush, and after a restart that replays
//! the write-ahead log; validation refuses what Loki refuses and keeps the rest.
#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;

use obs_core::partition::{DataLayout, PartitionSet};
use obs_core::series::{Labels, MatchOp, Matcher};
use obs_core::time::{Day, TimestampMs};
use obs_logs::model::{LogEntry, StreamEntries};
use obs_logs::store::{Direction, LogStore, LogsOptions, Selection};

const NS: i64 = 1_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn stream(pairs: &[(&str, &str)], entries: Vec<LogEntry>) -> StreamEntries {
    StreamEntries {
        labels: Labels::from_pairs(pairs.iter().copied()).unwrap(),
        entries,
    }
}

fn entry(ts_ns: i64, line: &str) -> LogEntry {
    LogEntry {
        timestamp_ns: ts_ns,
        line: line.to_owned(),
        metadata: Vec::new(),
    }
}

/// A selection and the stream matchers it applies to.
struct Query {
    matchers: Vec<Matcher>,
    selection: Selection,
}

fn matches(matchers: &[Matcher]) -> impl Fn(&Labels) -> bool + '_ {
    move |labels| matchers.iter().all(|matcher| matcher.matches_labels(labels))
}

fn select(store: &LogStore, query: &Query) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    store
        .select(&matches(&query.matchers), &query.selection, |selected| {
            out.push((
                selected.stream.get("app").unwrap_or("").to_owned(),
                selected.entry.timestamp_ns,
                selected.entry.line,
            ));
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

fn everything(app: &str, direction: Direction) -> Query {
    Query {
        matchers: vec![Matcher::equal("app", app)],
        selection: Selection {
            start_ns: 0,
            end_ns: i64::MAX,
            direction,
            ..Selection::default()
        },
    }
}

fn with(query: Query, change: impl FnOnce(&mut Selection)) -> Query {
    let mut query = query;
    change(&mut query.selection);
    query
}

/// Entries spread over yesterday and today, two streams, lines with run ids.
fn fixture(now: TimestampMs) -> Vec<StreamEntries> {
    let base = now.0 * NS;
    let hour = 3_600_000 * NS;
    let mut jarvis = Vec::new();
    let mut worker = Vec::new();
    for i in 0..60i64 {
        // Out of order on purpose: 30 hours back to now, shuffled by a stride.
        let at = base - ((i * 37) % 60) * hour / 2;
        jarvis.push(entry(
            at,
            &format!("level=info run_id=r-{} step {i} Connection refused", i % 5),
        ));
        worker.push(entry(
            at + 1,
            &format!("{{\"run_id\":\"r-{}\",\"msg\":\"tool call {i}\"}}", i % 3),
        ));
    }
    vec![
        stream(&[("app", "jarvis")], jarvis),
        stream(&[("app", "worker")], worker),
    ]
}

fn expected(batch: &[StreamEntries], app: &str, direction: Direction) -> Vec<(String, i64, String)> {
    let mut all: Vec<(String, i64, String)> = batch
        .iter()
        .filter(|stream| stream.labels.get("app") == Some(app))
        .flat_map(|stream| {
            stream
                .entries
                .iter()
                .map(|entry| (app.to_owned(), entry.timestamp_ns, entry.line.clone()))
        })
        .collect();
    all.sort_by_key(|(_, ts, _)| *ts);
    if direction == Direction::Backward {
        all.reverse();
    }
    all
}

#[test]
fn acknowledged_entries_come_back_from_head_indexes_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path());
    let now = TimestampMs::now();
    let batch = fixture(now);
    let rt = runtime();
    {
        let (store, _) = LogStore::open(&layout, LogsOptions::default()).unwrap();
        let outcome = rt.block_on(store.append(batch.clone(), now)).unwrap();
        assert_eq!(outcome.accepted, 120);
        assert!(outcome.refused.is_empty(), "{:?}", outcome.refused);
        for direction in [Direction::Backward, Direction::Forward] {
            assert_eq!(
                select(&store, &everything("jarvis", direction)),
                expected(&batch, "jarvis", direction)
            );
        }
        rt.block_on(store.flush()).unwrap();
        for direction in [Direction::Backward, Direction::Forward] {
            assert_eq!(
                select(&store, &everything("worker", direction)),
                expected(&batch, "worker", direction)
            );
        }
        // More after the flush stays in the head; both come back together.
        let late = vec![stream(
            &[("app", "jarvis")],
            vec![entry(now.0 * NS + 5, "late line")],
        )];
        rt.block_on(store.append(late, now)).unwrap();
        assert_eq!(
            select(&store, &everything("jarvis", Direction::Backward)).len(),
            61
        );
        // Not closed: the late entry is only in the write-ahead log.
    }
    let (store, report) = LogStore::open(&layout, LogsOptions::default()).unwrap();
    assert_eq!(report.replayed_entries, 1);
    assert_eq!(report.streams, 2);
    let jarvis = select(&store, &everything("jarvis", Direction::Backward));
    assert_eq!(jarvis.len(), 61);
    assert_eq!(jarvis[0].2, "late line");
    assert_eq!(&jarvis[1..], &expected(&batch, "jarvis", Direction::Backward)[..]);
}

#[test]
fn substring_filters_and_correlation_keys_select_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path());
    let now = TimestampMs::now();
    let batch = fixture(now);
    let rt = runtime();
    let (store, _) = LogStore::open(&layout, LogsOptions::default()).unwrap();
    rt.block_on(store.append(batch.clone(), now)).unwrap();
    for flushed in [false, true] {
        if flushed {
            rt.block_on(store.flush()).unwrap();
        }
        let by_key = with(everything("worker", Direction::Forward), |selection| {
            selection.keys = vec![("run_id".to_owned(), "r-2".to_owned())];
        });
        let want: Vec<_> = expected(&batch, "worker", Direction::Forward)
            .into_iter()
            .filter(|(_, _, line)| line.contains("\"r-2\""))
            .collect();
        assert_eq!(select(&store, &by_key), want, "flushed: {flushed}");
        // A needle whose edge tokens are partial: "nection refu" must still match.
        let contains = with(everything("jarvis", Direction::Backward), |selection| {
            selection.line_contains = vec!["nection refu".to_owned(), "step 1".to_owned()];
        });
        let want: Vec<_> = expected(&batch, "jarvis", Direction::Backward)
            .into_iter()
            .filter(|(_, _, line)| line.contains("step 1"))
            .collect();
        assert_eq!(select(&store, &contains), want, "flushed: {flushed}");
        let regex = Query {
            matchers: vec![Matcher::new(MatchOp::Regex, "app", "jar.*|work.*").unwrap()],
            selection: Selection {
                start_ns: now.0 * NS - 3_600_000 * NS,
                end_ns: now.0 * NS + 1,
                direction: Direction::Forward,
                ..Selection::default()
            },
        };
        let got = select(&store, &regex);
        let mut want: Vec<_> = expected(&batch, "jarvis", Direction::Forward)
            .into_iter()
            .chain(expected(&batch, "worker", Direction::Forward))
            .filter(|(_, ts, _)| *ts >= now.0 * NS - 3_600_000 * NS && *ts < now.0 * NS + 1)
            .collect();
        want.sort_by_key(|(_, ts, _)| *ts);
        assert_eq!(got, want, "flushed: {flushed}");
    }
    // Early stop: the visitor breaks after three.
    let mut seen = 0;
    let query = everything("jarvis", Direction::Backward);
    store
        .select(&matches(&query.matchers), &query.selection, |_| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(seen, 3);
}

#[test]
fn validation_refuses_entries_loki_refuses_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path());
    let now = TimestampMs::now();
    let rt = runtime();
    let options = LogsOptions {
        max_streams: 2,
        ..LogsOptions::default()
    };
    let (store, _) = LogStore::open(&layout, options).unwrap();
    let now_ns = now.0 * NS;
    let batch = vec![
        stream(
            &[("app", "a")],
            vec![
                entry(now_ns, "ok"),
                entry(now_ns - 15 * 86_400_000 * NS, "too old"),
                entry(now_ns + 3_600_000 * NS, "too new"),
                entry(now_ns, &"x".repeat(300 << 10)),
            ],
        ),
        stream(&[("app", "b")], vec![entry(now_ns, "ok b")]),
        stream(&[("app", "c")], vec![entry(now_ns, "over the stream limit")]),
    ];
    let outcome = rt.block_on(store.append(batch, now)).unwrap();
    assert_eq!(outcome.accepted, 2);
    let mut reasons: Vec<&str> = outcome.refused.iter().map(|refused| refused.reason).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "greater_than_max_sample_age",
            "line_too_long",
            "stream_limit",
            "too_far_in_future"
        ]
    );
    assert!(
        outcome
            .refused
            .iter()
            .any(|refused| refused.message.contains("timestamp too old"))
    );
    // service_name and detected_level were added as Loki 3 adds them.
    let streams = store.streams(&|_| true, 0, i64::MAX);
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].get("service_name"), Some("a"));
    let mut metadata = Vec::new();
    let query = everything("a", Direction::Forward);
    store
        .select(&matches(&query.matchers), &query.selection, |selected| {
            metadata = selected.entry.metadata;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(
        metadata,
        vec![("detected_level".to_owned(), "unknown".to_owned())]
    );
}

#[test]
fn retention_drops_whole_days_and_their_entries() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path());
    let now = TimestampMs::now();
    let batch = fixture(now);
    let rt = runtime();
    let (store, _) = LogStore::open(&layout, LogsOptions::default()).unwrap();
    rt.block_on(store.append(batch.clone(), now)).unwrap();
    rt.block_on(store.flush()).unwrap();
    let days: Vec<Day> = store.partitions().unwrap().iter().map(|p| p.day).collect();
    assert!(days.len() >= 2, "{days:?}");
    let oldest = days.iter().min().copied().unwrap();
    assert!(store.drop_partition(oldest).unwrap() > 0);
    let day_start_ns = oldest.end_exclusive().0 * NS;
    let want: Vec<_> = expected(&batch, "jarvis", Direction::Forward)
        .into_iter()
        .filter(|(_, ts, _)| *ts >= day_start_ns)
        .collect();
    assert_eq!(select(&store, &everything("jarvis", Direction::Forward)), want);
}

/// Copies the files of `from` that `to` lacks.
fn copy_missing(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if !target.exists() {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_crash_between_index_commit_and_log_truncation_does_not_index_twice() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path());
    let now = TimestampMs::now();
    let batch = fixture(now);
    let rt = runtime();
    let wal_dir = dir.path().join("logs").join("wal");
    let saved = dir.path().join("wal-before-flush");
    {
        let (store, _) = LogStore::open(&layout, LogsOptions::default()).unwrap();
        rt.block_on(store.append(batch.clone(), now)).unwrap();
        let rotated_at = rt.block_on(store.begin_flush()).unwrap();
        // The log as it is before the flush unlinks the segments it indexed.
        copy_missing(&wal_dir, &saved);
        store.finish_flush(rotated_at).unwrap();
        // One more acknowledged entry that only the log holds.
        let late = vec![stream(
            &[("app", "jarvis")],
            vec![entry(now.0 * NS + 7, "after the flush")],
        )];
        rt.block_on(store.append(late, now)).unwrap();
    }
    // As if the process had died before unlinking: the old segments are back beside the new.
    copy_missing(&saved, &wal_dir);
    let (store, report) = LogStore::open(&layout, LogsOptions::default()).unwrap();
    assert_eq!(report.skipped_indexed_entries, 120);
    assert_eq!(report.replayed_entries, 1);
    let jarvis = select(&store, &everything("jarvis", Direction::Forward));
    assert_eq!(jarvis.len(), 61, "each entry exactly once");
    assert_eq!(
        select(&store, &everything("worker", Direction::Forward)),
        expected(&batch, "worker", Direction::Forward)
    );
}

#[test]
fn a_backlog_in_memory_is_overload_until_a_flush_catches_up() {
    use obs_core::error::{Classify, ErrorKind};
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path());
    let now = TimestampMs::now();
    let rt = runtime();
    let options = LogsOptions {
        head_flush_bytes: 100,
        ..LogsOptions::default()
    };
    let (store, _) = LogStore::open(&layout, options).unwrap();
    let long = "x".repeat(500);
    let push = |line: &str| vec![stream(&[("app", "a")], vec![entry(now.0 * NS, line)])];
    assert!(!store.wants_flush());
    rt.block_on(store.append(push(&long), now)).unwrap();
    assert!(store.wants_flush());
    // The flusher was woken.
    rt.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(1), store.flush_requested())
            .await
            .expect("a flush was requested")
    });
    let err = rt.block_on(store.append(push("more"), now)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded, "{err}");
    rt.block_on(store.flush()).unwrap();
    assert!(!store.wants_flush());
    rt.block_on(store.append(push("more"), now)).unwrap();
    assert_eq!(select(&store, &everything("a", Direction::Forward)).len(), 2);
}

/// Lines as real shippers send them: a container line whose CRI prefix and logfmt `ts=` are
/// the entry's own timestamp, and a JSON line with the timestamp to the nanosecond.
fn stamped(ts_ns: i64, i: i64) -> LogEntry {
    let ms = TimestampMs(ts_ns / NS).to_rfc3339();
    let line = if i % 2 == 0 {
        format!("{ms} stdout F level=info ts={ms} user=u{:08x} step {i}", i * 7919)
    } else {
        let nanos = format!("{}{:06}Z", ms.trim_end_matches('Z'), ts_ns % NS);
        format!(r#"{{"ts":"{nanos}","run_id":"r-{}","msg":"step {i}"}}"#, i % 4)
    };
    LogEntry {
        timestamp_ns: ts_ns,
        line,
        metadata: vec![("detected_level".to_owned(), "info".to_owned())],
    }
}

#[test]
fn compaction_rewrites_small_blocks_without_changing_any_answer() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path());
    let now = TimestampMs::now();
    let rt = runtime();
    let (store, _) = LogStore::open(&layout, LogsOptions::default()).unwrap();
    // Ten flushes, each adding interleaved entries of two streams over the last two hours:
    // twenty small, overlapping blocks per stream and day.
    let mut sent: Vec<StreamEntries> = Vec::new();
    for flush in 0..10i64 {
        let mut jarvis = Vec::new();
        let mut worker = Vec::new();
        for i in 0..40i64 {
            let n = flush * 40 + i;
            let at = now.0 * NS - ((n * 7_919) % 7_200_000) * NS - n;
            jarvis.push(stamped(at, n));
            worker.push(stamped(at + 3, n + 1));
        }
        let batch = vec![
            stream(&[("app", "jarvis")], jarvis),
            stream(&[("app", "worker")], worker),
        ];
        rt.block_on(store.append(batch.clone(), now)).unwrap();
        rt.block_on(store.flush()).unwrap();
        sent.extend(batch);
    }
    let queries = |app: &str| -> Vec<Query> {
        let mut queries = Vec::new();
        for direction in [Direction::Backward, Direction::Forward] {
            queries.push(everything(app, direction));
            // A needle that cannot touch a timestamp, one inside a timestamp, one across the
            // end of one, and a correlation key.
            for needle in ["user=u0000", ":00", "Z stdout F level", "step 3"] {
                queries.push(with(everything(app, direction), |selection| {
                    selection.line_contains = vec![needle.to_owned()];
                }));
            }
            queries.push(with(everything(app, direction), |selection| {
                selection.keys = vec![("run_id".to_owned(), "r-1".to_owned())];
            }));
            queries.push(with(everything(app, direction), |selection| {
                selection.start_ns = now.0 * NS - 3_600_000 * NS;
                selection.end_ns = now.0 * NS - 1_800_000 * NS;
            }));
        }
        queries
    };
    let answers = |store: &LogStore| -> Vec<Vec<(String, i64, String)>> {
        ["jarvis", "worker"]
            .iter()
            .flat_map(|app| queries(app))
            .map(|query| select(store, &query))
            .collect()
    };
    let before = answers(&store);
    // Against the reference, not just against itself.
    // Seven queries per direction and app: backward first.
    for (app, offset) in [("jarvis", 0), ("worker", 14)] {
        assert_eq!(before[offset], expected(&sent, app, Direction::Backward));
        let want: Vec<_> = expected(&sent, app, Direction::Backward)
            .into_iter()
            .filter(|(_, _, line)| line.contains(":00"))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(before[offset + 2], want);
        let want: Vec<_> = expected(&sent, app, Direction::Backward)
            .into_iter()
            .filter(|(_, _, line)| line.contains("Z stdout F level"))
            .collect();
        assert_eq!(before[offset + 3], want);
        let want: Vec<_> = expected(&sent, app, Direction::Forward)
            .into_iter()
            .filter(|(_, _, line)| line.contains("\"r-1\""))
            .collect();
        assert!(!want.is_empty());
        assert_eq!(before[offset + 12], want);
    }
    let replaced = store.compact().unwrap();
    assert!(replaced >= 20, "only {replaced} blocks compacted");
    assert_eq!(answers(&store), before);
    assert_eq!(store.compact().unwrap(), 0, "nothing left to compact");
    // And after a restart, from disk alone.
    rt.block_on(store.close()).unwrap();
    drop(store);
    let (store, report) = LogStore::open(&layout, LogsOptions::default()).unwrap();
    assert_eq!(report.replayed_entries, 0);
    assert_eq!(answers(&store), before);
}

#[test]
fn a_key_lookup_finds_the_key_in_lines_metadata_escapes_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    let layout = DataLayout::new(dir.path());
    let now = TimestampMs::now();
    let rt = runtime();
    let (store, _) = LogStore::open(&layout, LogsOptions::default()).unwrap();
    let base = now.0 * NS - 60_000 * NS;
    let run = "r-26dd11a11fc9";
    let mut lines = Vec::new();
    for i in 0..200i64 {
        // Most lines belong to other runs; a few carry the run in their JSON, one escaped.
        let line = match i {
            10 | 150 => format!(r#"{{"run_id":"{run}","msg":"step {i}"}}"#),
            77 => r#"{"run_id":"r-26dd11a11fc\u0039","msg":"escaped"}"#.to_owned(),
            _ => format!(r#"{{"run_id":"r-{:012x}","msg":"step {i}"}}"#, i * 7919),
        };
        let mut entry = entry(base + i * 1000, &line);
        if i == 120 {
            // The run only in structured metadata.
            entry.line = "no run in this line".to_owned();
            entry.metadata = vec![("run_id".to_owned(), run.to_owned())];
        }
        lines.push(entry);
    }
    let labelled = vec![entry(base + 5_000, "a line of a stream labelled with the run")];
    let batch = vec![
        stream(&[("app", "jarvis")], lines),
        stream(&[("app", "jarvis"), ("run_id", run)], labelled),
    ];
    rt.block_on(store.append(batch, now)).unwrap();
    let query = Query {
        matchers: vec![Matcher::equal("app", "jarvis")],
        selection: Selection {
            start_ns: 0,
            end_ns: i64::MAX,
            direction: Direction::Forward,
            keys: vec![("run_id".to_owned(), run.to_owned())],
            ..Selection::default()
        },
    };
    let in_head = select(&store, &query);
    rt.block_on(store.flush()).unwrap();
    store.compact().unwrap();
    let from_blocks = select(&store, &query);
    let lines: Vec<&str> = from_blocks.iter().map(|(_, _, line)| line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "a line of a stream labelled with the run",
            r#"{"run_id":"r-26dd11a11fc9","msg":"step 10"}"#,
            r#"{"run_id":"r-26dd11a11fc\u0039","msg":"escaped"}"#,
            "no run in this line",
            r#"{"run_id":"r-26dd11a11fc9","msg":"step 150"}"#,
        ]
    );
    assert_eq!(in_head, from_blocks, "the head and the blocks agree");
}
