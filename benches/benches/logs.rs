//! Logs: ingest through Loki's protobuf push with durable acknowledgements, bytes on disk
//! against the raw text, and the queries an operator runs, beside `rg` over the same raw text.
//!
//! Run (the appliance is benchmarked as its release binary):
//!
//! ```sh
//! cargo build --release -p obs-appliance
//! cargo bench -p obs-bench --bench logs -- --lines 1000000 --clients 4
//! ```
//!
//! The data, generated deterministically: `--lines` lines spread evenly over 14 simulated days
//! ending now, 60 % Kubernetes container logs as Promtail ships them (the CRI `stdout F`
//! prefix, mixed levels, HTTP access and application lines, ~40 streams by namespace / app /
//! pod / container) and 40 % Jarvis agent JSON logs (`session_id`, `run_id`, `task_id`,
//! `agent`, the run's `trace_id` and one of its `span_id`s, a message and a duration; 8
//! streams). They are pushed in batches of
//! about 1 MiB (Promtail's `batch_size`), one stream's lines per batch in time order, by
//! `--clients` concurrent senders.
//!
//! Reported: lines/s and MB/s until the last acknowledgement (each acknowledgement means the
//! lines are fsynced in the write-ahead log) and per CPU second of the appliance; bytes on disk
//! after a clean stop against the raw bytes; after a restart, the median latency of (1)
//! `{namespace="jarvis"} | json | run_id="<one run>"` over the 14 days, (2) a rare substring
//! `|=` over one day (limit 5000), beside `rg -F -c` (or `grep -F -c` when ripgrep is missing)
//! over that day's raw text in a file, hot in the page cache, and (3) the logs-volume query
//! Grafana sends over one day. `--keep-data` keeps the data directory and the day's raw text
//! for a closer look.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use obs_bench::{SplitMix, System, arg_value, http_agent, human};
use prost::Message;

const DAY_NS: i64 = 86_400_000_000_000;
/// Bytes of lines per push (Promtail's default `batch_size`).
const BATCH_BYTES: usize = 1 << 20;

/// `logproto.PushRequest`, as the bench sends it.
#[derive(Clone, PartialEq, prost::Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    streams: Vec<StreamAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StreamAdapter {
    #[prost(string, tag = "1")]
    labels: String,
    #[prost(message, repeated, tag = "2")]
    entries: Vec<EntryAdapter>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    line: String,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct Timestamp {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

struct Stream {
    labels: String,
    jarvis: bool,
    lines: Vec<(i64, String)>,
}

const LEVELS: [&str; 6] = ["info", "info", "info", "debug", "warn", "error"];
const PATHS: [&str; 6] = [
    "/api/chat",
    "/api/agents",
    "/api/messages",
    "/healthz",
    "/api/files",
    "/api/convos",
];
const AGENTS: [&str; 4] = ["jarvis", "planner", "worker", "tool-runner"];
const MESSAGES: [&str; 6] = [
    "agent step completed",
    "calling tool",
    "tool call returned",
    "llm request sent",
    "llm response received",
    "memory lookup",
];

fn hex(random: &mut SplitMix, digits: usize) -> String {
    let mut out = String::with_capacity(digits);
    while out.len() < digits {
        out.push_str(&format!("{:016x}", random.next_u64()));
    }
    out.truncate(digits);
    out
}

/// One agent run: a user message's 50 lines, one trace, a few spans.
#[derive(Default)]
struct Run {
    session: String,
    id: String,
    left: usize,
    trace: String,
    spans: Vec<String>,
}

/// The run ids of the data: every 50 consecutive Jarvis lines of a stream share one, with its
/// trace id (a run is one trace) and one of its five span ids.
fn generate(lines: usize, end_ns: i64) -> (Vec<Stream>, String) {
    let mut random = SplitMix(42);
    let mut streams = Vec::new();
    let namespaces = ["librechat", "traefik", "monitoring", "kube-system", "agixt"];
    for (n, namespace) in namespaces.iter().enumerate() {
        for pod in 0..8 {
            let app = format!("{namespace}-app{}", pod % 3);
            streams.push(Stream {
                labels: format!(
                    r#"{{namespace="{namespace}", app="{app}", pod="{app}-{:05x}", container="main", job="{namespace}/{app}", stream="stdout"}}"#,
                    (n * 97 + pod * 13) as u32 * 2_654_435_761 % 1_048_576
                ),
                jarvis: false,
                lines: Vec::new(),
            });
        }
    }
    for agent in 0..8 {
        streams.push(Stream {
            labels: format!(r#"{{namespace="jarvis", app="agixt", pod="agixt-{agent}", container="agent"}}"#),
            jarvis: true,
            lines: Vec::new(),
        });
    }
    let k8s_streams = streams.iter().filter(|stream| !stream.jarvis).count();
    let start_ns = end_ns - 14 * DAY_NS + 60_000_000_000;
    let span = (end_ns - start_ns) as f64;
    let mut example_run = String::new();
    // Per agent stream: the current run's session, run id, lines left, trace id and spans.
    let mut run_ids: Vec<Run> = (0..8).map(|_| Run::default()).collect();
    for i in 0..lines {
        let ts = start_ns + (span * i as f64 / lines as f64) as i64;
        if i % 5 < 3 {
            let index = (random.next_u64() % k8s_streams as u64) as usize;
            let level = LEVELS[(random.next_u64() % 6) as usize];
            let stamp = obs_core::time::TimestampMs(ts / 1_000_000).to_rfc3339();
            let body = if random.next_u64().is_multiple_of(2) {
                format!(
                    r#"10.42.{}.{} - - "GET {} HTTP/1.1" {} {} "-" "Mozilla/5.0" {}ms"#,
                    random.next_u64() % 5,
                    random.next_u64() % 250,
                    PATHS[(random.next_u64() % 6) as usize],
                    [200, 200, 200, 201, 304, 404, 502][(random.next_u64() % 7) as usize],
                    random.next_u64() % 20_000,
                    random.next_u64() % 900
                )
            } else {
                format!(
                    "level={level} ts={stamp} caller=handler.go:{} msg=\"request handled\" user={} latency={}ms",
                    random.next_u64() % 400,
                    hex(&mut random, 8),
                    random.next_u64() % 900
                )
            };
            streams[index]
                .lines
                .push((ts, format!("{stamp} stdout F {body}")));
        } else {
            let agent_stream = (random.next_u64() % 8) as usize;
            let run = &mut run_ids[agent_stream];
            if run.left == 0 {
                *run = Run {
                    session: format!("s-{}", hex(&mut random, 10)),
                    id: format!("r-{}", hex(&mut random, 12)),
                    left: 50,
                    trace: hex(&mut random, 32),
                    spans: (0..5).map(|_| hex(&mut random, 16)).collect(),
                };
                if example_run.is_empty() && i > lines / 2 {
                    example_run = run.id.clone();
                }
            }
            run.left -= 1;
            let span = &run.spans[(random.next_u64() % 5) as usize];
            let line = format!(
                r#"{{"ts":"{}","level":"{}","session_id":"{}","run_id":"{}","task_id":"t-{}","agent":"{}","trace_id":"{}","span_id":"{span}","msg":"{}","duration_ms":{}}}"#,
                obs_core::time::TimestampMs(ts / 1_000_000).to_rfc3339(),
                LEVELS[(random.next_u64() % 6) as usize],
                run.session,
                run.id,
                random.next_u64() % 12,
                AGENTS[(random.next_u64() % 4) as usize],
                run.trace,
                MESSAGES[(random.next_u64() % 6) as usize],
                random.next_u64() % 5000
            );
            streams[k8s_streams + agent_stream].lines.push((ts, line));
        }
    }
    (streams, example_run)
}

/// Push bodies (snappy-compressed protobuf) of about `BATCH_BYTES` of lines each.
fn batches(streams: &[Stream]) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    for stream in streams {
        let mut entries = Vec::new();
        let mut bytes = 0;
        let flush = |entries: &mut Vec<EntryAdapter>, bodies: &mut Vec<Vec<u8>>| {
            if entries.is_empty() {
                return;
            }
            let request = PushRequest {
                streams: vec![StreamAdapter {
                    labels: stream.labels.clone(),
                    entries: std::mem::take(entries),
                }],
            };
            let compressed = snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .unwrap_or_default();
            bodies.push(compressed);
        };
        for (ts, line) in &stream.lines {
            bytes += line.len();
            entries.push(EntryAdapter {
                timestamp: Some(Timestamp {
                    seconds: ts / 1_000_000_000,
                    nanos: (ts % 1_000_000_000) as i32,
                }),
                line: line.clone(),
            });
            if bytes >= BATCH_BYTES {
                flush(&mut entries, &mut bodies);
                bytes = 0;
            }
        }
        flush(&mut entries, &mut bodies);
    }
    // Interleave streams, as many shippers push at once.
    let mut random = SplitMix(7);
    for index in (1..bodies.len()).rev() {
        let other = (random.next_u64() % (index as u64 + 1)) as usize;
        bodies.swap(index, other);
    }
    bodies
}

/// Bytes under `path` by kind of file: tantivy's by extension, redb files, the WAL.
fn bytes_by_kind(path: &std::path::Path, into: &mut std::collections::BTreeMap<String, u64>) {
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_path = entry.path();
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            bytes_by_kind(&entry_path, into);
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let kind = if entry_path.components().any(|part| part.as_os_str() == "wal") {
            "write-ahead log".to_owned()
        } else {
            match name.rsplit_once('.') {
                Some((_, "idx")) => "postings (.idx)".to_owned(),
                Some((_, "term")) => "term dictionaries (.term)".to_owned(),
                Some((_, "store")) => "doc store (.store)".to_owned(),
                Some((_, "fast")) => "fast fields (.fast)".to_owned(),
                Some((_, "redb")) => "stream registry (redb)".to_owned(),
                Some((_, extension)) => format!(".{extension}"),
                None => name,
            }
        };
        *into.entry(kind).or_default() += entry.metadata().map(|meta| meta.len()).unwrap_or(0);
    }
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map(|meta| meta.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Median wall time of `runs` calls of `query`, and the last body.
fn time_query(runs: usize, mut query: impl FnMut() -> String) -> (Duration, String) {
    let mut times = Vec::with_capacity(runs);
    let mut body = String::new();
    for _ in 0..runs {
        let started = Instant::now();
        body = query();
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() / 2], body)
}

fn count_lines(body: &str) -> usize {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| {
            value["data"]["result"].as_array().map(|streams| {
                streams
                    .iter()
                    .map(|stream| stream["values"].as_array().map_or(0, Vec::len))
                    .sum()
            })
        })
        .unwrap_or(0)
}

fn main() {
    let lines: usize = arg_value("lines")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let clients: usize = arg_value("clients").and_then(|v| v.parse().ok()).unwrap_or(4);
    let runs: usize = arg_value("runs").and_then(|v| v.parse().ok()).unwrap_or(7);
    let workspace = obs_bench::workspace_dir();
    let binary = obs_bench::appliance_binary_or_exit();
    let scratch = tempfile::tempdir_in(&workspace).unwrap_or_else(|err| panic!("scratch dir: {err}"));
    println!(
        "command: cargo bench -p obs-bench --bench logs -- --lines {lines} --clients {clients} --runs {runs}"
    );
    println!(
        "machine load average (1 min) at start: {}",
        obs_bench::load_average()
    );

    let end_ns = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default()) as i64;
    let started = Instant::now();
    let (streams, example_run) = generate(lines, end_ns);
    let bodies = batches(&streams);
    let raw_bytes: usize = streams
        .iter()
        .flat_map(|stream| stream.lines.iter().map(|(_, line)| line.len() + 1))
        .sum();
    // One day's raw text (the second-newest day), for the substring comparison.
    let day_start = end_ns - 2 * DAY_NS;
    let day_end = end_ns - DAY_NS;
    let day_file = scratch.path().join("day.log");
    {
        let mut day =
            std::io::BufWriter::new(std::fs::File::create(&day_file).unwrap_or_else(|err| panic!("{err}")));
        for stream in &streams {
            for (ts, line) in &stream.lines {
                if (day_start..day_end).contains(ts) {
                    let _ = writeln!(day, "{line}");
                }
            }
        }
    }
    // A token that occurs a handful of times in that day: a user id of the access lines.
    let rare = streams
        .iter()
        .flat_map(|stream| stream.lines.iter())
        .find(|(ts, line)| (day_start..day_end).contains(ts) && line.contains(" user="))
        .and_then(|(_, line)| line.split(" user=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("deadbeef")
        .to_owned();
    println!(
        "data: {} lines, {:.1} MB raw, {} streams, {} push bodies ({:.1} MB snappy); generated in {:.1} s",
        human(lines as f64),
        raw_bytes as f64 / 1e6,
        streams.len(),
        bodies.len(),
        bodies.iter().map(Vec::len).sum::<usize>() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let data = scratch.path().join("data");
    let system = System::Appliance(binary);
    let Some(server) = system.start(&data, &[]) else {
        eprintln!("cannot start the appliance");
        std::process::exit(1);
    };
    let base = server.base_url().to_owned();
    let cpu_before = server.cpu_time().unwrap_or_default();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let senders: Vec<_> = (0..clients)
        .map(|_| {
            let bodies = Arc::clone(&bodies);
            let next = Arc::clone(&next);
            let failed = Arc::clone(&failed);
            let retried = Arc::clone(&retried);
            let url = format!("{base}/loki/api/v1/push");
            std::thread::spawn(move || {
                let agent = http_agent(Duration::from_secs(60));
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(index) else { break };
                    // As Promtail: retry 429 and 5xx with a backoff, give up after 10 tries.
                    let mut backoff = Duration::from_millis(50);
                    for attempt in 0..10 {
                        let status = agent
                            .post(&url)
                            .header("Content-Type", "application/x-protobuf")
                            .send(&body[..])
                            .map(|response| response.status().as_u16())
                            .unwrap_or(0);
                        if status == 204 {
                            break;
                        }
                        if status == 429 || status >= 500 {
                            retried.fetch_add(1, Ordering::Relaxed);
                        }
                        if attempt == 9 || !(status == 429 || status >= 500) {
                            failed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        let _ = sender.join();
    }
    let elapsed = started.elapsed();
    let cpu = server.cpu_time().unwrap_or_default().saturating_sub(cpu_before);
    let peak_rss = server.peak_rss_bytes().unwrap_or_default();
    let stopping = Instant::now();
    server.stop(Duration::from_secs(120));
    let stop_seconds = stopping.elapsed().as_secs_f64();
    let disk = dir_bytes(&data.join("logs"));
    let wal = dir_bytes(&data.join("logs").join("wal"));
    println!();
    println!("### Ingest (protobuf push, durable acknowledgements)");
    println!();
    println!(
        "| lines/s | MB/s | CPU s | lines per CPU second | peak RSS MB | pushes retried (429) | failed pushes |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.1} | {:.1} | {} | {:.0} | {} | {} |",
        human(lines as f64 / elapsed.as_secs_f64()),
        raw_bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        cpu.as_secs_f64(),
        human(lines as f64 / cpu.as_secs_f64().max(1e-9)),
        peak_rss as f64 / 1e6,
        retried.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!();
    println!(
        "disk after a clean stop: {:.1} MB (write-ahead log {:.1} MB) for {:.1} MB raw: raw / disk = {:.1}x",
        disk as f64 / 1e6,
        wal as f64 / 1e6,
        raw_bytes as f64 / 1e6,
        raw_bytes as f64 / disk.max(1) as f64
    );
    println!("clean stop (the last flush, then compacting the days' small blocks): {stop_seconds:.1} s");
    let mut kinds = std::collections::BTreeMap::new();
    bytes_by_kind(&data.join("logs"), &mut kinds);
    println!();
    println!("| on disk | MB | share |");
    println!("|---|---:|---:|");
    for (kind, bytes) in &kinds {
        println!(
            "| {kind} | {:.1} | {:.0} % |",
            *bytes as f64 / 1e6,
            100.0 * *bytes as f64 / disk.max(1) as f64
        );
    }

    let Some(server) = system.start(&data, &[]) else {
        eprintln!("cannot restart the appliance");
        std::process::exit(1);
    };
    let agent = http_agent(Duration::from_secs(120));
    let base = server.base_url().to_owned();
    let query = |query: &str, start: i64, end: i64, limit: usize, step: Option<&str>| {
        let mut call = agent
            .get(&format!("{base}/loki/api/v1/query_range"))
            .query("query", query)
            .query("start", start.to_string())
            .query("end", end.to_string())
            .query("limit", limit.to_string());
        if let Some(step) = step {
            call = call.query("step", step);
        }
        call.call()
            .ok()
            .and_then(|mut response| response.body_mut().read_to_string().ok())
            .unwrap_or_default()
    };
    println!();
    println!("### Queries after a restart (median of {runs})");
    println!();
    println!("| query | range | median ms | lines or series returned |");
    println!("|---|---|---:|---:|");
    let run_query = format!(r#"{{namespace="jarvis"}} | json | run_id="{example_run}""#);
    let (latency, body) = time_query(runs, || {
        query(&run_query, end_ns - 14 * DAY_NS, end_ns, 1000, None)
    });
    println!(
        "| `{run_query}` | 14 days | {:.1} | {} |",
        latency.as_secs_f64() * 1e3,
        count_lines(&body)
    );
    let substring = format!(r#"{{namespace=~".+"}} |= "{rare}""#);
    let (latency, body) = time_query(runs, || query(&substring, day_start, day_end, 5000, None));
    let substring_ms = latency.as_secs_f64() * 1e3;
    println!(
        "| `{substring}` | 1 day | {substring_ms:.1} | {} |",
        count_lines(&body)
    );
    let volume =
        r#"sum by (level, detected_level) (count_over_time({namespace=~".+"} | drop __error__ [1h]))"#;
    let (latency, body) = time_query(runs, || {
        query(volume, day_start, day_end, 1000, Some("3600000ms"))
    });
    let series = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| value["data"]["result"].as_array().map(Vec::len))
        .unwrap_or(0);
    println!(
        "| `{volume}` | 1 day, 1 h steps | {:.1} | {series} |",
        latency.as_secs_f64() * 1e3
    );

    let (tool, program) = match obs_bench::which("rg") {
        Some(path) => ("rg -F -c", path),
        None => (
            "grep -F -c (ripgrep is not installed)",
            std::path::PathBuf::from("grep"),
        ),
    };
    let day_bytes = std::fs::metadata(&day_file).map(|meta| meta.len()).unwrap_or(0);
    let (latency, count) = time_query(runs, || {
        std::process::Command::new(&program)
            .args(["-F", "-c", &rare])
            .arg(&day_file)
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_default()
    });
    let tool_ms = latency.as_secs_f64() * 1e3;
    println!(
        "| {tool} `{rare}` over the day's raw text ({:.1} MB, page-cached) | 1 day | {tool_ms:.1} | {count} |",
        day_bytes as f64 / 1e6
    );
    println!();
    println!(
        "substring filter / {}: {:.2}x",
        tool.split(' ').next().unwrap_or("rg"),
        substring_ms / tool_ms.max(1e-9)
    );
    server.stop(Duration::from_secs(60));
    if obs_bench::arg_flag("keep-data") {
        let kept = scratch.keep();
        println!(
            "data kept in {} (--keep-data; the day's raw text is day.log)",
            kept.display()
        );
    }
}
