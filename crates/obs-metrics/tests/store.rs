//! The metrics store against a `BTreeMap` reference, and its ingest semantics.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use obs_core::partition::DataLayout;
use obs_core::series::{Labels, MatchOp, Matcher, MetricsQuerier, SeriesSamples};
use obs_core::time::TimestampMs;
use obs_metrics::chunk::STALE_NAN_BITS;
use obs_metrics::store::{MetricsOptions, MetricsStore, RejectReason};
use rand::{Rng, SeedableRng};

const NOW: i64 = 1_764_000_000_000; // 2025-11-24T16:00:00Z
const MINUTE: i64 = 60_000;

fn now() -> TimestampMs {
    TimestampMs(NOW)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open(dir: &std::path::Path) -> MetricsStore {
    MetricsStore::open(&DataLayout::new(dir), MetricsOptions::default())
        .unwrap()
        .0
}

fn series(name: &str, instance: u32) -> Labels {
    Labels::series([
        ("__name__", name.to_owned()),
        ("instance", format!("host-{instance}")),
        ("job", "node".to_owned()),
    ])
    .unwrap()
}

type Reference = BTreeMap<Labels, BTreeMap<i64, u64>>;

fn check_against(store: &MetricsStore, reference: &Reference, rng: &mut impl Rng) {
    for _ in 0..30 {
        let a = NOW - rng.random_range(0..300) * MINUTE;
        let b = NOW - rng.random_range(0..300) * MINUTE;
        let (mint, maxt) = (a.min(b), a.max(b));
        let name = ["node_cpu_seconds_total", "node_load1", "up"][rng.random_range(0..3)];
        let matchers = match rng.random_range(0..4) {
            0 => vec![Matcher::equal("__name__", name)],
            1 => vec![Matcher::new(MatchOp::Regex, "instance", "host-[12]").unwrap()],
            2 => vec![
                Matcher::equal("__name__", name),
                Matcher::new(MatchOp::NotEqual, "instance", "host-0").unwrap(),
            ],
            _ => vec![Matcher::new(MatchOp::NotRegex, "job", "").unwrap()],
        };
        let expected: Vec<(Labels, Vec<(i64, u64)>)> = reference
            .iter()
            .filter(|(labels, _)| matchers.iter().all(|m| m.matches_labels(labels)))
            .map(|(labels, samples)| {
                (
                    labels.clone(),
                    samples
                        .range(mint..=maxt)
                        .map(|(ts, bits)| (*ts, *bits))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, samples)| !samples.is_empty())
            .collect();
        let got: Vec<(Labels, Vec<(i64, u64)>)> = store
            .select(&matchers, mint, maxt)
            .unwrap()
            .into_iter()
            .map(|s| {
                (
                    s.labels,
                    s.samples.into_iter().map(|(ts, v)| (ts, v.to_bits())).collect(),
                )
            })
            .collect();
        assert_eq!(
            got.len(),
            expected.len(),
            "series count for {matchers:?} in [{mint}, {maxt}]"
        );
        for ((got_labels, got_samples), (want_labels, want_samples)) in got.iter().zip(&expected) {
            assert_eq!(got_labels, want_labels);
            let first_difference = got_samples.iter().zip(want_samples).find(|(g, w)| g != w);
            assert!(
                first_difference.is_none() && got_samples.len() == want_samples.len(),
                "{got_labels} in [{mint}, {maxt}]: {} samples vs {} expected, first difference {first_difference:?}",
                got_samples.len(),
                want_samples.len()
            );
        }
    }
}

#[test]
fn the_store_agrees_with_a_btreemap_through_appends_flushes_checkpoints_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut reference: Reference = BTreeMap::new();
    let mut store = open(dir.path());
    let names = ["node_cpu_seconds_total", "node_load1", "up"];
    let mut conflicts = 0;
    for round in 0..12 {
        // A scrape-like batch: every series, one sample each, mostly in order, sometimes late.
        for step in 0..40 {
            let base = NOW - 300 * MINUTE + (round * 40 + step) * 15_000 / 2;
            let mut batch = Vec::new();
            for name in names {
                for instance in 0..4 {
                    let late = rng.random_bool(0.05);
                    let ts = if late {
                        base - rng.random_range(1..30) * MINUTE
                    } else {
                        base
                    };
                    let value = match rng.random_range(0..20) {
                        0 => f64::from_bits(STALE_NAN_BITS),
                        1 => f64::NAN,
                        _ => rng.random_range(0.0..1000.0f64).round(),
                    };
                    batch.push(SeriesSamples {
                        labels: series(name, instance),
                        samples: vec![(ts, value)],
                    });
                }
            }
            let outcome = rt.block_on(store.append(batch.clone(), now())).unwrap();
            conflicts += outcome.rejected.len();
            // Mirror what the store accepted: the first value at a timestamp wins.
            let rejected: Vec<(Labels, i64)> = outcome
                .rejected
                .iter()
                .map(|r| (r.labels.clone(), r.timestamp_ms.unwrap()))
                .collect();
            for item in batch {
                for (ts, value) in item.samples {
                    if rejected.contains(&(item.labels.clone(), ts)) {
                        continue;
                    }
                    reference
                        .entry(item.labels.clone())
                        .or_default()
                        .entry(ts)
                        .or_insert(value.to_bits());
                }
            }
        }
        match round % 4 {
            0 => store.flush().unwrap(),
            1 => rt.block_on(store.checkpoint()).unwrap(),
            2 => {
                // Restart without a checkpoint: the write-ahead log brings everything back.
                drop(store);
                store = open(dir.path());
            }
            _ => {
                rt.block_on(store.close()).unwrap();
                drop(store);
                store = open(dir.path());
            }
        }
        check_against(&store, &reference, &mut rng);
    }
    // Late samples landed on existing timestamps with other values, in memory and on disk.
    assert!(
        conflicts > 10,
        "{conflicts} conflicts: the test did not exercise late samples"
    );
    assert!(reference.values().map(BTreeMap::len).sum::<usize>() > 5000);
    let names_found = store
        .label_values("__name__", &[], NOW - 400 * MINUTE, NOW)
        .unwrap();
    assert_eq!(names_found, names);
    let label_names = store
        .label_names(&[Matcher::equal("__name__", "up")], NOW - 400 * MINUTE, NOW)
        .unwrap();
    assert_eq!(label_names, ["__name__", "instance", "job"]);
}

#[test]
fn ingest_semantics_follow_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(dir.path());
    let up = series("up", 1);
    let append = |samples: Vec<(i64, f64)>| {
        rt.block_on(store.append(
            vec![SeriesSamples {
                labels: up.clone(),
                samples,
            }],
            now(),
        ))
        .unwrap()
    };

    let outcome = append(vec![(NOW - 10 * MINUTE, 1.0), (NOW - 9 * MINUTE, 2.0)]);
    assert_eq!((outcome.accepted, outcome.rejected.len()), (2, 0));

    // A retried write of the same samples is accepted silently.
    let outcome = append(vec![(NOW - 10 * MINUTE, 1.0), (NOW - 9 * MINUTE, 2.0)]);
    assert_eq!(
        (outcome.accepted, outcome.duplicates, outcome.rejected.len()),
        (0, 2, 0)
    );

    // A different value at an existing timestamp is refused like Prometheus does.
    let outcome = append(vec![(NOW - 9 * MINUTE, 3.0)]);
    assert_eq!(outcome.rejected[0].reason, RejectReason::DuplicateTimestamp);
    assert!(
        outcome.rejected[0]
            .to_string()
            .contains("duplicate sample for timestamp")
    );

    // Out of order within the window is accepted; beyond it is refused.
    assert_eq!(append(vec![(NOW - 30 * MINUTE, 4.0)]).accepted, 1);
    assert_eq!(
        append(vec![(NOW - 120 * MINUTE, 5.0)]).rejected[0].reason,
        RejectReason::OutOfOrder
    );

    // Older than the retention, or too far ahead.
    let outcome = append(vec![
        (NOW - 16 * 86_400_000, 1.0),
        (NOW + 11 * MINUTE, 1.0),
        (NOW + 9 * MINUTE, 6.0),
    ]);
    let reasons: Vec<RejectReason> = outcome.rejected.iter().map(|r| r.reason.clone()).collect();
    assert_eq!(reasons, [RejectReason::TooOld, RejectReason::TooFarInFuture]);
    assert_eq!(outcome.accepted, 1);

    // Stale markers are stored and returned bit for bit.
    append(vec![(NOW - 8 * MINUTE, f64::from_bits(STALE_NAN_BITS))]);
    let found = store
        .select(
            &[Matcher::equal("__name__", "up")],
            NOW - 60 * MINUTE,
            NOW + 60 * MINUTE,
        )
        .unwrap();
    let samples: Vec<(i64, u64)> = found[0]
        .samples
        .iter()
        .map(|(ts, v)| (*ts, v.to_bits()))
        .collect();
    assert_eq!(
        samples,
        [
            (NOW - 30 * MINUTE, 4f64.to_bits()),
            (NOW - 10 * MINUTE, 1f64.to_bits()),
            (NOW - 9 * MINUTE, 2f64.to_bits()),
            (NOW - 8 * MINUTE, STALE_NAN_BITS),
            (NOW + 9 * MINUTE, 6f64.to_bits()),
        ]
    );

    // Correlation keys are refused as metric labels, with a message that says where they go.
    let bomb = Labels::series([("__name__", "requests_total"), ("run_id", "r-123")]).unwrap();
    let outcome = rt
        .block_on(store.append(
            vec![SeriesSamples {
                labels: bomb,
                samples: vec![(NOW, 1.0)],
            }],
            now(),
        ))
        .unwrap();
    assert_eq!(
        outcome.rejected[0].reason,
        RejectReason::DeniedLabel("run_id".into())
    );
    assert!(
        outcome.rejected[0]
            .to_string()
            .contains("put it in logs or traces")
    );
}

#[test]
fn checkpoint_truncates_the_log_and_data_survives_from_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(dir.path());
    let batch: Vec<SeriesSamples> = (0..50)
        .map(|i| SeriesSamples {
            labels: series("node_load1", i),
            samples: (0..200)
                .map(|s| (NOW - 60 * MINUTE + s * 15_000, f64::from(i) + s as f64))
                .collect(),
        })
        .collect();
    rt.block_on(store.append(batch, now())).unwrap();
    rt.block_on(store.close()).unwrap();
    drop(store);
    let wal_bytes: u64 = std::fs::read_dir(dir.path().join("metrics/wal"))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    assert!(wal_bytes <= 64, "the checkpoint left {wal_bytes} bytes of log");
    let partitions: Vec<_> = std::fs::read_dir(dir.path().join("metrics"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".redb") && name != "index.redb")
        .collect();
    assert!(!partitions.is_empty());

    let (store, report) =
        MetricsStore::open(&DataLayout::new(dir.path()), MetricsOptions::default()).unwrap();
    assert_eq!((report.indexed_series, report.replayed_samples), (50, 0));
    let found = store
        .select(&[Matcher::equal("instance", "host-7")], NOW - 61 * MINUTE, NOW)
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].samples.len(), 200);
    assert_eq!(
        found[0].samples[199],
        (NOW - 60 * MINUTE + 199 * 15_000, 7.0 + 199.0)
    );
    let _ = Duration::ZERO;
}

#[test]
fn a_sealing_wave_asks_for_a_flush_before_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let options = MetricsOptions {
        flush_soon_chunks: 3,
        ..MetricsOptions::default()
    };
    let (store, _) = MetricsStore::open(&DataLayout::new(dir.path()), options).unwrap();
    let requested = |store: &MetricsStore| {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(50), store.flush_requested())
                .await
                .is_ok()
        })
    };
    // Two series, 121 samples each: each seals one chunk of 120. Two chunks are not enough.
    let batch = |count: u32, ts: i64| -> Vec<SeriesSamples> {
        (0..count)
            .map(|i| SeriesSamples {
                labels: series("wave", i),
                samples: vec![(ts, f64::from(i))],
            })
            .collect()
    };
    let start = NOW - 2 * 3_600_000;
    for step in 0..=120 {
        rt.block_on(store.append(batch(2, start + step * 15_000), now()))
            .unwrap();
    }
    assert!(!requested(&store), "two sealed chunks do not ask for a flush");
    // A third series sealing makes three: a flush is asked for, once.
    for step in 0..=120 {
        rt.block_on(store.append(vec![batch(3, start + step * 15_000).remove(2)], now()))
            .unwrap();
    }
    assert!(requested(&store), "three sealed chunks ask for a flush");
    assert!(!requested(&store), "asked once");
    // A flush takes them; the count starts again.
    store.flush().unwrap();
    for step in 121..=240 {
        rt.block_on(store.append(batch(2, start + step * 15_000), now()))
            .unwrap();
    }
    assert!(!requested(&store), "two chunks since the flush");
}

#[test]
fn series_limits_refuse_new_series_but_keep_existing_ones_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let options = MetricsOptions {
        max_series: 5,
        max_series_per_metric: 3,
        ..MetricsOptions::default()
    };
    let (store, _) = MetricsStore::open(&DataLayout::new(dir.path()), options).unwrap();
    let batch = |name: &str, count: u32, ts: i64| -> Vec<SeriesSamples> {
        (0..count)
            .map(|i| SeriesSamples {
                labels: series(name, i),
                samples: vec![(ts, 1.0)],
            })
            .collect()
    };
    // Per metric: the fourth series of a metric is refused, with an actionable message.
    let outcome = rt
        .block_on(store.append(batch("a", 4, NOW - MINUTE), now()))
        .unwrap();
    assert_eq!(outcome.accepted, 3);
    assert_eq!(
        outcome.rejected[0].reason,
        RejectReason::SeriesLimit {
            limit: "max_series_per_metric",
            value: 3
        }
    );
    assert!(
        outcome.rejected[0]
            .to_string()
            .contains("raise metrics.max_series_per_metric")
    );
    // Series whose every sample is refused are not created, so they cannot use up the limits.
    let outcome = rt
        .block_on(store.append(batch("ghost", 3, NOW - 20 * 86_400_000), now()))
        .unwrap();
    assert_eq!(outcome.rejected.len(), 3);
    assert!(outcome.rejected.iter().all(|r| r.reason == RejectReason::TooOld));
    // In total: 3 + 2 reach five; the sixth series is refused.
    let outcome = rt
        .block_on(store.append(batch("b", 3, NOW - MINUTE), now()))
        .unwrap();
    assert_eq!(outcome.accepted, 2);
    assert_eq!(outcome.rejected[0].reason.as_str(), "series_limit");
    // Existing series keep taking samples.
    let outcome = rt.block_on(store.append(batch("a", 3, NOW), now())).unwrap();
    assert_eq!((outcome.accepted, outcome.rejected.len()), (3, 0));

    let text = obs_core::selfmetrics::registry().encode_text();
    let refused: f64 = text
        .lines()
        .find(|line| line.starts_with("obs_metrics_samples_rejected_total{reason=\"series_limit\"}"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap();
    assert!(refused >= 2.0, "{refused}");
    assert!(text.contains("obs_metrics_active_series "), "{text}");
}

#[test]
fn concurrent_conflicting_writes_have_one_winner_and_replay_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = std::sync::Arc::new(open(dir.path()));
    let up = series("up", 0);
    // One request naming the same series twice with two values at one timestamp.
    let outcome = rt
        .block_on(store.append(
            vec![
                SeriesSamples {
                    labels: up.clone(),
                    samples: vec![(NOW - MINUTE, 1.0)],
                },
                SeriesSamples {
                    labels: up.clone(),
                    samples: vec![(NOW - MINUTE, 2.0)],
                },
            ],
            now(),
        ))
        .unwrap();
    assert_eq!((outcome.accepted, outcome.rejected.len()), (1, 1));
    assert_eq!(outcome.rejected[0].reason, RejectReason::DuplicateTimestamp);

    // Many writers racing on the same timestamps with different values.
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for writer in 0..16 {
            let store = std::sync::Arc::clone(&store);
            let labels = up.clone();
            tasks.push(tokio::spawn(async move {
                let samples: Vec<(i64, f64)> = (0..20)
                    .map(|i| (NOW - 30 * MINUTE + i * 1000, f64::from(writer)))
                    .collect();
                store
                    .append(vec![SeriesSamples { labels, samples }], now())
                    .await
                    .unwrap()
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    });
    let accepted: u64 = results.iter().map(|outcome| outcome.accepted).sum();
    let refused: usize = results.iter().map(|outcome| outcome.rejected.len()).sum();
    assert_eq!(accepted, 20, "each timestamp has exactly one accepted value");
    assert_eq!(refused, 15 * 20);
    let before = store
        .select(&[Matcher::equal("__name__", "up")], NOW - 31 * MINUTE, NOW)
        .unwrap();

    // An inverted range is empty, not a panic.
    assert!(
        store
            .select(&[Matcher::equal("__name__", "up")], NOW, NOW - MINUTE)
            .unwrap()
            .is_empty()
    );

    // Replay rebuilds exactly what the head answered.
    drop(store);
    let reopened = open(dir.path());
    let after = reopened
        .select(&[Matcher::equal("__name__", "up")], NOW - 31 * MINUTE, NOW)
        .unwrap();
    assert_eq!(after, before);
}

#[test]
fn retention_drops_a_day_partition_of_the_store() {
    use obs_core::partition::PartitionSet;
    use obs_core::time::Day;
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = open(dir.path());
    let yesterday = NOW - 86_400_000;
    let batch = vec![SeriesSamples {
        labels: series("node_load1", 1),
        samples: vec![(yesterday, 1.0), (NOW - MINUTE, 2.0)],
    }];
    rt.block_on(store.append(batch, now())).unwrap();
    rt.block_on(store.checkpoint()).unwrap();
    let days: Vec<Day> = store.partitions().unwrap().iter().map(|p| p.day).collect();
    assert_eq!(
        days,
        vec![Day::containing(TimestampMs(yesterday)), Day::containing(now())]
    );
    let freed = store
        .drop_partition(Day::containing(TimestampMs(yesterday)))
        .unwrap();
    assert!(freed > 0);
    let found = store
        .select(&[Matcher::equal("__name__", "node_load1")], 0, NOW)
        .unwrap();
    assert_eq!(found[0].samples, vec![(NOW - MINUTE, 2.0)]);
}
