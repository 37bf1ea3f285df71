//! The data set both sides of the compatibility harness query: about a hundred series over two
//! hours from [`T0_MS`], generated without randomness from a seeded LCG, so that the real
//! Prometheus (fed by remote_write) and our store hold exactly the same samples.
//!
//! Besides realistic node-exporter and HTTP-server series, it holds the edge cases the queries
//! exercise: counter resets, a scrape target that goes down (stale markers, then a reset), gaps
//! longer than the lookback delta, series that end early (with and without a stale marker),
//! start late or go stale and resume, NaN, ±Inf, huge and tiny values, label values that
//! need escaping in JSON, and series that differ only in their metric name.

use obs_metrics::chunk::STALE_NAN_BITS;

/// 2026-01-01T00:00:00Z, the first sample of every regular series.
pub(crate) const T0_MS: i64 = 1_767_225_600_000;
/// The time the data spans.
pub(crate) const SPAN_MS: i64 = 2 * HOUR;
/// The last sample of the regular series.
pub(crate) const END_MS: i64 = T0_MS + SPAN_MS;

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// One generated series: labels sorted by name, samples sorted by time with unique timestamps.
#[derive(Debug, Clone)]
pub(crate) struct GeneratedSeries {
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) samples: Vec<(i64, f64)>,
}

/// Prometheus' staleness marker.
pub(crate) fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// A 64-bit LCG (Knuth's MMIX constants), seeded from a series' name.
struct Lcg(u64);

impl Lcg {
    fn seeded(seed_text: &str) -> Lcg {
        // FNV-1a of the text, so each series has its own stream.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in seed_text.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Lcg(hash)
    }

    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn labels(name: &str, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = std::iter::once(("__name__".to_owned(), name.to_owned()))
        .chain(pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())))
        .collect();
    labels.sort();
    labels
}

fn seed_of(labels: &[(String, String)]) -> String {
    labels.iter().map(|(n, v)| format!("{n}={v};")).collect()
}

/// Offsets from `T0_MS` (inclusive both ends) every `interval_ms`.
fn grid(from_ms: i64, to_ms: i64, interval_ms: i64) -> impl Iterator<Item = i64> {
    (0..)
        .map(move |index| from_ms + index * interval_ms)
        .take_while(move |offset| *offset <= to_ms)
}

fn round_to(value: f64, quantum: f64) -> f64 {
    (value / quantum).round() * quantum
}

/// A node that is down (scrapes fail) in `[DOWN_FROM, DOWN_UNTIL)` and reboots: its counters
/// restart from zero.
const NODE_DOWN: (&str, i64, i64) = ("n3", HOUR, HOUR + 20 * MINUTE);

fn node_is_down(instance: &str, offset_ms: i64) -> bool {
    instance == NODE_DOWN.0 && (NODE_DOWN.1..NODE_DOWN.2).contains(&offset_ms)
}

/// Samples of a node-exporter series scraped every `interval_ms`: `value_at(offset, rng,
/// rebooted)` is asked for every successful scrape; the first failed scrape of the outage
/// writes a stale marker, as Prometheus does.
fn node_series(
    series_labels: Vec<(String, String)>,
    instance: &str,
    interval_ms: i64,
    mut value_at: impl FnMut(i64, &mut Lcg, bool) -> f64,
) -> GeneratedSeries {
    let mut rng = Lcg::seeded(&seed_of(&series_labels));
    let mut samples = Vec::new();
    let mut marked = false;
    for offset in grid(0, SPAN_MS, interval_ms) {
        if node_is_down(instance, offset) {
            if !marked {
                samples.push((T0_MS + offset, stale_nan()));
                marked = true;
            }
            continue;
        }
        let rebooted = instance == NODE_DOWN.0 && offset >= NODE_DOWN.2;
        samples.push((T0_MS + offset, value_at(offset, &mut rng, rebooted)));
    }
    GeneratedSeries {
        labels: series_labels,
        samples,
    }
}

/// A counter whose increments per scrape are `rate_per_s * interval * (0.5 + u)`, rounded to
/// `quantum`; it restarts from `restart_value` at `reset_at` (offset) when given.
fn counter(
    series_labels: Vec<(String, String)>,
    start: f64,
    rate_per_s: f64,
    quantum: f64,
    offsets: impl Iterator<Item = i64>,
    reset_at: Option<i64>,
) -> GeneratedSeries {
    let mut rng = Lcg::seeded(&seed_of(&series_labels));
    let mut value = start;
    let mut previous_offset: Option<i64> = None;
    let mut samples = Vec::new();
    for offset in offsets {
        if let Some(previous) = previous_offset {
            let seconds = (offset - previous) as f64 / 1000.0;
            value += round_to(rate_per_s * seconds * (0.5 + rng.uniform()), quantum);
        }
        if let Some(reset) = reset_at
            && previous_offset.is_some_and(|previous| previous < reset)
            && offset >= reset
        {
            value = round_to(rate_per_s * 5.0 * rng.uniform(), quantum);
        }
        previous_offset = Some(offset);
        samples.push((T0_MS + offset, value));
    }
    GeneratedSeries {
        labels: series_labels,
        samples,
    }
}

/// The whole data set, in a fixed order.
pub(crate) fn generate() -> Vec<GeneratedSeries> {
    let mut all = Vec::new();
    node_exporter(&mut all);
    http_server(&mut all);
    edge_cases(&mut all);
    for series in &all {
        debug_assert!(series.samples.windows(2).all(|pair| pair[0].0 < pair[1].0));
    }
    all
}

fn node_exporter(all: &mut Vec<GeneratedSeries>) {
    let instances = ["n1", "n2", "n3"];
    for (instance_index, instance) in instances.iter().enumerate() {
        for cpu in ["0", "1"] {
            for (mode, rate) in [("idle", 0.8), ("user", 0.15), ("system", 0.05)] {
                let series_labels = labels(
                    "node_cpu_seconds_total",
                    &[
                        ("cpu", cpu),
                        ("instance", instance),
                        ("job", "node"),
                        ("mode", mode),
                    ],
                );
                let start = 10_000.0 * (instance_index as f64 + 1.0) + 1_000.0 * rate;
                let mut value = start;
                let mut restarted = false;
                all.push(node_series(
                    series_labels,
                    instance,
                    15 * SECOND,
                    |_, rng, rebooted| {
                        if rebooted && !restarted {
                            value = 0.0;
                            restarted = true;
                        }
                        value = round_to(value + rate * 15.0 * (0.5 + rng.uniform()), 0.01);
                        value
                    },
                ));
            }
        }
        let total_bytes = [8.0, 16.0, 4.0][instance_index] * 1024.0 * 1024.0 * 1024.0;
        let memory_labels = |name| labels(name, &[("instance", instance), ("job", "node")]);
        all.push(node_series(
            memory_labels("node_memory_MemTotal_bytes"),
            instance,
            30 * SECOND,
            |_, _, _| total_bytes,
        ));
        let phase = instance_index as f64;
        all.push(node_series(
            memory_labels("node_memory_MemAvailable_bytes"),
            instance,
            30 * SECOND,
            |offset, rng, _| {
                let angle = std::f64::consts::TAU * offset as f64 / (40.0 * MINUTE as f64) + phase;
                let fraction = 0.3 + 0.2 * angle.sin() + 0.05 * rng.uniform();
                round_to(total_bytes * fraction, 4096.0)
            },
        ));
        for (mountpoint, device, fstype, size_gib, fill_bytes_per_s) in [
            (
                "/",
                "/dev/sda1",
                "ext4",
                50.0,
                40_000.0 * (instance_index as f64 + 1.0),
            ),
            ("/data", "/dev/sdb1", "xfs", 500.0, 900_000.0),
        ] {
            let fs_labels = |name| {
                labels(
                    name,
                    &[
                        ("device", device),
                        ("fstype", fstype),
                        ("instance", instance),
                        ("job", "node"),
                        ("mountpoint", mountpoint),
                    ],
                )
            };
            let size_bytes = size_gib * 1024.0 * 1024.0 * 1024.0;
            all.push(node_series(
                fs_labels("node_filesystem_size_bytes"),
                instance,
                15 * SECOND,
                |_, _, _| size_bytes,
            ));
            all.push(node_series(
                fs_labels("node_filesystem_avail_bytes"),
                instance,
                15 * SECOND,
                |offset, rng, _| {
                    let used = fill_bytes_per_s * offset as f64 / 1000.0 + 5e6 * rng.uniform();
                    round_to(size_bytes * 0.6 - used, 4096.0)
                },
            ));
        }
        let mut received = 1e9 * (instance_index as f64 + 1.0);
        let nic_reset = if *instance == "n2" {
            Some(45 * MINUTE)
        } else {
            None
        };
        let mut restarted = false;
        all.push(node_series(
            labels(
                "node_network_receive_bytes_total",
                &[("device", "eth0"), ("instance", instance), ("job", "node")],
            ),
            instance,
            15 * SECOND,
            |offset, rng, rebooted| {
                if nic_reset == Some(offset) || (rebooted && !restarted) {
                    received = 0.0;
                    restarted = restarted || rebooted;
                }
                received += round_to(2e6 * (0.5 + rng.uniform()), 1.0);
                received
            },
        ));
        all.push(node_series(
            labels("node_load1", &[("instance", instance), ("job", "node")]),
            instance,
            MINUTE,
            |offset, rng, _| {
                let angle = std::f64::consts::TAU * offset as f64 / HOUR as f64;
                round_to(
                    1.5 + instance_index as f64 * 0.5 + angle.sin() + 0.5 * rng.uniform(),
                    0.01,
                )
            },
        ));
        all.push(GeneratedSeries {
            labels: labels("up", &[("instance", instance), ("job", "node")]),
            samples: grid(0, SPAN_MS, 15 * SECOND)
                .map(|offset| {
                    (
                        T0_MS + offset,
                        if node_is_down(instance, offset) { 0.0 } else { 1.0 },
                    )
                })
                .collect(),
        });
    }
}

/// Scrape offsets of instance a1: every 15 s with ±1.5 s of jitter (millisecond resolution).
fn jittered_offsets(seed: &str) -> Vec<i64> {
    let mut rng = Lcg::seeded(seed);
    grid(0, SPAN_MS, 15 * SECOND)
        .map(|offset| {
            let jitter = ((rng.uniform() * 3_000.0).round() as i64) - 1_500;
            if offset == 0 { offset } else { offset + jitter }
        })
        .collect()
}

/// Instance a2 restarts at 50 m: its counters reset and one scrape fails.
const A2_RESTART: i64 = 50 * MINUTE;

fn http_server(all: &mut Vec<GeneratedSeries>) {
    let a1_offsets = jittered_offsets("a1");
    let routes = [
        ("GET", "200", "/api/v1/query", 10.0),
        ("GET", "500", "/api/v1/query", 0.5),
        ("POST", "200", "/api/v1/write", 20.0),
        ("POST", "500", "/api/v1/write", 0.1),
        ("GET", "200", "/healthz", 1.0),
    ];
    for instance in ["a1", "a2"] {
        for (method, status, handler, rate) in routes {
            let series_labels = labels(
                "http_requests_total",
                &[
                    ("handler", handler),
                    ("instance", instance),
                    ("job", "api"),
                    ("method", method),
                    ("status", status),
                ],
            );
            let series = if instance == "a1" {
                counter(
                    series_labels,
                    1_000.0 * rate,
                    rate,
                    1.0,
                    a1_offsets.iter().copied(),
                    None,
                )
            } else {
                counter(
                    series_labels,
                    500.0 * rate,
                    rate,
                    1.0,
                    grid(0, SPAN_MS, 15 * SECOND),
                    Some(A2_RESTART),
                )
            };
            all.push(series);
        }
        histogram(all, instance);
        all.push(GeneratedSeries {
            labels: labels("up", &[("instance", instance), ("job", "api")]),
            samples: grid(0, SPAN_MS, 15 * SECOND)
                .map(|offset| {
                    let down = instance == "a2" && offset == A2_RESTART;
                    (T0_MS + offset, if down { 0.0 } else { 1.0 })
                })
                .collect(),
        });
    }
    // a2 is upgraded at 1 h: the old info series ends with a stale marker.
    let info = |instance, version| {
        labels(
            "app_info",
            &[("instance", instance), ("job", "api"), ("version", version)],
        )
    };
    all.push(GeneratedSeries {
        labels: info("a1", "1.2.3"),
        samples: grid(0, SPAN_MS, MINUTE)
            .map(|offset| (T0_MS + offset, 1.0))
            .collect(),
    });
    all.push(GeneratedSeries {
        labels: info("a2", "1.2.3"),
        samples: grid(0, HOUR - MINUTE, MINUTE)
            .map(|offset| (T0_MS + offset, 1.0))
            .chain(std::iter::once((T0_MS + HOUR, stale_nan())))
            .collect(),
    });
    all.push(GeneratedSeries {
        labels: info("a2", "1.3.0"),
        samples: grid(HOUR, SPAN_MS, MINUTE)
            .map(|offset| (T0_MS + offset, 1.0))
            .collect(),
    });
}

/// A classic histogram of request durations (exponential with a 150 ms mean).
fn histogram(all: &mut Vec<GeneratedSeries>, instance: &str) {
    let bounds = [0.05, 0.1, 0.25, 0.5, 1.0, f64::INFINITY];
    let le_names = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"];
    let mut rng = Lcg::seeded(&format!("histogram/{instance}"));
    let mut buckets = [0.0f64; 6];
    let mut sum = 0.0f64;
    let mut count = 0.0f64;
    let mut bucket_samples: Vec<Vec<(i64, f64)>> = vec![Vec::new(); bounds.len()];
    let mut sum_samples = Vec::new();
    let mut count_samples = Vec::new();
    let reset_at = if instance == "a2" { Some(A2_RESTART) } else { None };
    for offset in grid(0, SPAN_MS, 15 * SECOND) {
        if reset_at == Some(offset) {
            buckets = [0.0; 6];
            sum = 0.0;
            count = 0.0;
        }
        let requests = (30.0 * (0.5 + rng.uniform())).round() as usize;
        for _ in 0..requests {
            let latency = round_to(-(1.0 - rng.uniform()).ln() * 0.15, 0.001);
            for (bucket, bound) in buckets.iter_mut().zip(bounds) {
                if latency <= bound {
                    *bucket += 1.0;
                }
            }
            sum += latency;
            count += 1.0;
        }
        for (samples, bucket) in bucket_samples.iter_mut().zip(buckets) {
            samples.push((T0_MS + offset, bucket));
        }
        sum_samples.push((T0_MS + offset, round_to(sum, 0.001)));
        count_samples.push((T0_MS + offset, count));
    }
    for (le, samples) in le_names.iter().zip(bucket_samples) {
        all.push(GeneratedSeries {
            labels: labels(
                "http_request_duration_seconds_bucket",
                &[("instance", instance), ("job", "api"), ("le", le)],
            ),
            samples,
        });
    }
    let plain = |name| labels(name, &[("instance", instance), ("job", "api")]);
    all.push(GeneratedSeries {
        labels: plain("http_request_duration_seconds_sum"),
        samples: sum_samples,
    });
    all.push(GeneratedSeries {
        labels: plain("http_request_duration_seconds_count"),
        samples: count_samples,
    });
}

fn every_15s(mut value_at: impl FnMut(usize, i64) -> f64) -> Vec<(i64, f64)> {
    grid(0, SPAN_MS, 15 * SECOND)
        .enumerate()
        .map(|(index, offset)| (T0_MS + offset, value_at(index, offset)))
        .collect()
}

/// The `index`th sample of `weird_values{kind=…}`.
fn weird_value(kind: &str, index: usize) -> f64 {
    const MIXED: [f64; 10] = [
        1.0,
        -1.0,
        0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e21,
        1e-7,
        -2.5,
        1.5e300,
    ];
    match kind {
        "nan" => f64::NAN,
        "inf" => f64::INFINITY,
        "neginf" => f64::NEG_INFINITY,
        "mixed" => MIXED[index % MIXED.len()],
        "zero" => 0.0,
        // Not -0.0: prost leaves a proto3 double equal to 0.0 out of the message, so a -0
        // sample would reach Prometheus as +0. The queries make -0 themselves.
        "negtiny" => -2.5e-7 - index as f64 * 1e-9,
        "huge" => 1.2345678901234567e21 + index as f64 * 1e18,
        "tiny" => 1.5e-7 + index as f64 * 1e-9,
        _ => unreachable!("no weird_values of kind {kind}"),
    }
}

fn edge_cases(all: &mut Vec<GeneratedSeries>) {
    // NaN, infinities and float-formatting extremes.
    for kind in ["nan", "inf", "neginf", "mixed", "zero", "negtiny", "huge", "tiny"] {
        all.push(GeneratedSeries {
            labels: labels("weird_values", &[("kind", kind)]),
            samples: every_15s(|index, _| weird_value(kind, index)),
        });
    }
    // Gauges crossing zero.
    for (sensor, base, amplitude) in [
        ("outdoor", -1.0, 5.0),
        ("indoor", 21.0, 0.5),
        ("freezer", -18.5, 1.0),
    ] {
        let mut rng = Lcg::seeded(sensor);
        all.push(GeneratedSeries {
            labels: labels("temperature_celsius", &[("sensor", sensor)]),
            samples: every_15s(|_, offset| {
                let angle = std::f64::consts::TAU * offset as f64 / (90.0 * MINUTE as f64);
                round_to(base + amplitude * angle.sin(), 0.1)
            })
            .into_iter()
            .map(|(t, v)| (t, round_to(v + 0.2 * (rng.uniform() - 0.5), 0.1)))
            .collect(),
        });
    }
    // A counter crossing 1e21 (where Go's float formatting switches to exponents).
    let mut rng = Lcg::seeded("big");
    let mut big = 9.5e20;
    all.push(GeneratedSeries {
        labels: labels("big_counter_total", &[("job", "edge")]),
        samples: every_15s(|index, _| {
            if index > 0 {
                big += round_to(2.5e17 * (0.5 + rng.uniform()), 1e15);
            }
            big
        }),
    });
    // Gaps, ends, late starts and staleness.
    let gap = |from, until| {
        every_15s(|index, _| 100.0 + (index % 7) as f64)
            .into_iter()
            .filter(move |(t, _)| !(T0_MS + from < *t && *t < T0_MS + until))
            .collect::<Vec<_>>()
    };
    all.push(GeneratedSeries {
        labels: labels("gappy_gauge", &[("case", "gap_10m")]),
        samples: gap(40 * MINUTE, 50 * MINUTE + 15 * SECOND),
    });
    all.push(GeneratedSeries {
        labels: labels("gappy_gauge", &[("case", "gap_4m")]),
        samples: gap(40 * MINUTE, 44 * MINUTE),
    });
    let until_30m = |index: usize, offset: i64| (offset <= 30 * MINUTE).then_some(50.0 - index as f64);
    let mut stale_end: Vec<(i64, f64)> = grid(0, SPAN_MS, 15 * SECOND)
        .enumerate()
        .filter_map(|(index, offset)| until_30m(index, offset).map(|v| (T0_MS + offset, v)))
        .collect();
    let vanish = stale_end.clone();
    stale_end.push((T0_MS + 30 * MINUTE + 15 * SECOND, stale_nan()));
    all.push(GeneratedSeries {
        labels: labels("ends_early", &[("case", "stale")]),
        samples: stale_end,
    });
    all.push(GeneratedSeries {
        labels: labels("ends_early", &[("case", "vanish")]),
        samples: vanish,
    });
    all.push(counter(
        labels("late_jobs_total", &[("job", "batch")]),
        5.0,
        0.2,
        1.0,
        grid(70 * MINUTE, SPAN_MS, 15 * SECOND),
        None,
    ));
    let mut resumed = counter(
        labels("stale_middle_total", &[("job", "batch")]),
        0.0,
        3.0,
        1.0,
        grid(0, SPAN_MS, 15 * SECOND),
        None,
    );
    resumed
        .samples
        .retain(|(t, _)| !(T0_MS + 45 * MINUTE <= *t && *t < T0_MS + 55 * MINUTE));
    let at = resumed.samples.partition_point(|(t, _)| *t < T0_MS + 45 * MINUTE);
    resumed.samples.insert(at, (T0_MS + 45 * MINUTE, stale_nan()));
    all.push(resumed);
    // Label sets that collide once the metric name is dropped.
    for (name, rate) in [("dup_requests_total", 5.0), ("dup_errors_total", 0.5)] {
        all.push(counter(
            labels(name, &[("instance", "x"), ("job", "dup")]),
            0.0,
            rate,
            1.0,
            grid(0, SPAN_MS, 15 * SECOND),
            None,
        ));
    }
    // Label values that need escaping in JSON.
    all.push(GeneratedSeries {
        labels: labels(
            "escape_test",
            &[
                ("path", "C:\\temp\\\"quoted\""),
                ("text", "héllo wörld ☃ 日本語"),
                ("html", "<b>&amp;</b>"),
            ],
        ),
        samples: grid(0, SPAN_MS, MINUTE)
            .map(|offset| (T0_MS + offset, 42.0))
            .collect(),
    });
    // Integer random walks, for changes(), resets() and count_values().
    for queue in ["q1", "q2"] {
        let mut rng = Lcg::seeded(queue);
        let mut length = 3.0f64;
        all.push(GeneratedSeries {
            labels: labels("queue_length", &[("queue", queue)]),
            samples: grid(0, SPAN_MS, 30 * SECOND)
                .map(|offset| {
                    let step = (rng.uniform() * 3.0).floor() - 1.0;
                    length = (length + step).clamp(0.0, 6.0);
                    (T0_MS + offset, length)
                })
                .collect(),
        });
    }
    // Histograms that histogram_quantile must cope with: no +Inf bucket, and buckets that are
    // not monotonic.
    for (le, per_step) in [("0.1", 2.0), ("1", 3.0)] {
        all.push(GeneratedSeries {
            labels: labels("bad_hist_bucket", &[("le", le)]),
            samples: every_15s(|index, _| index as f64 * per_step),
        });
    }
    for (le, per_step) in [("0.1", 5.0), ("0.5", 4.0), ("+Inf", 6.0)] {
        all.push(GeneratedSeries {
            labels: labels("nonmono_hist_bucket", &[("le", le)]),
            samples: every_15s(|index, _| index as f64 * per_step),
        });
    }
    // A value that is the same for a long time, then steps.
    all.push(GeneratedSeries {
        labels: labels("build_step", &[("job", "edge")]),
        samples: grid(0, SPAN_MS, 30 * SECOND)
            .map(|offset| (T0_MS + offset, if offset < HOUR { 2.0 } else { 7.0 }))
            .collect(),
    });
}
