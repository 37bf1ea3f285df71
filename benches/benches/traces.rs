//! Traces: ingest over OTLP/HTTP and OTLP/gRPC with durable acknowledgements, bytes per span
//! on disk against the OTLP protobuf sent, trace-by-id latency over the whole retention, and
//! the searches an operator runs from Grafana. No reference system runs here for traces
//! (Tempo is not packaged), so the figures stand alone.
//!
//! Run (the appliance is benchmarked as its release binary; the bench looks for it in
//! `target/release/`, or where `OBS_APPLIANCE_BINARY` says):
//!
//! ```sh
//! cargo build --release -p obs-appliance
//! cargo bench -p obs-bench --bench traces -- --traces 20000 --clients 4
//! # with another target directory:
//! CARGO_TARGET_DIR=/work/target-bench cargo build --release -p obs-appliance
//! OBS_APPLIANCE_BINARY=/work/target-bench/release/obs-appliance \
//!     CARGO_TARGET_DIR=/work/target-bench cargo bench -p obs-bench --bench traces
//! ```
//!
//! The data, generated deterministically: `--traces` Jarvis runs spread evenly over the 7
//! simulated days ending now (10 minutes inside the appliance's 7-day retention). Each run is
//! a LibreChat `POST /api/ask` server span (service `librechat`), its AGiXT `agixt.run` child
//! (service `agixt`; `session_id`, `run_id`, `agent`) and 3 to 48 children of that: tool calls
//! (client spans `tool.<name>` with `task_id`, `agent`, `tool.name` and `http.*` or `db.*`
//! attributes; 5 % fail with a status message and an `exception` event), LLM calls
//! (`llm.chat`, `gen_ai.*` with integer token counts; 2 % fail) and memory lookups
//! (`memory.search`), with log-normal durations. Five pods (2 LibreChat, 3 AGiXT) each export
//! their own spans in batches of 512 (the OTel SDK's `BatchSpanProcessor` default), one
//! resource per request, as an SDK does.
//!
//! Ingest: the even-numbered traces over OTLP/HTTP protobuf (`POST /v1/traces`), then the odd
//! ones over OTLP/gRPC (`TraceService/Export` on the main port, one HTTP/2 connection per
//! client), each by `--clients` concurrent senders. Exports refused with 429 / 503 (HTTP) or
//! `UNAVAILABLE` (gRPC) are retried as OTel's exporters do (`Retry-After` when given, else 1 s
//! growing 1.5x to 5 s, at most 10 attempts); a failed export or a refused span fails the
//! bench. Reported per transport: spans/s and MB/s of OTLP protobuf until the last
//! acknowledgement (each one means the spans are fsynced in the write-ahead log), the
//! appliance's CPU time until it is idle again, peak RSS.
//!
//! Then a clean stop (the head is flushed into the day indexes), bytes on disk per span, and
//! after a restart: `--lookups` traces by id (`/api/v2/traces/<id>`, protobuf, as Grafana asks)
//! spread over the 7 days, each checked for its span count; an unknown id; and the median of
//! `--runs` runs of the searches, tag values and a TraceQL metrics query Grafana sends over the
//! 7 days.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use obs_bench::{Server, SplitMix, System, arg_value, http_agent, human};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, TracesData, span, status,
};
use prost::Message;
use prost::bytes::Bytes;

const NS_PER_MS: u64 = 1_000_000;
const NS_PER_SEC: u64 = 1_000_000_000;
const DAY_NS: u64 = 86_400 * NS_PER_SEC;
/// The appliance's trace retention, which the data stays inside.
const RETENTION_NS: u64 = 7 * DAY_NS;
/// How far inside the retention the oldest trace starts (ingest takes minutes).
const RETENTION_MARGIN_NS: u64 = 10 * 60 * NS_PER_SEC;
/// Spans per export (the OTel SDK's `BatchSpanProcessor` `maxExportBatchSize`).
const BATCH_SPANS: usize = 512;
/// The gRPC method of OTLP trace exports.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Attempts per export before it counts as failed.
const MAX_ATTEMPTS: u32 = 10;
/// Time limit of one export attempt.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// The generated data

/// A pod exporting spans: its service, resource and instrumentation scope.
struct Pod {
    resource: Resource,
    scope: InstrumentationScope,
}

fn string_attr(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn int_attr(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..KeyValue::default()
    }
}

fn double_attr(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// The first `LIBRECHAT_PODS` pods run LibreChat, the others AGiXT.
const LIBRECHAT_PODS: usize = 2;

fn pods() -> Vec<Pod> {
    let pod = |service: &str, version: &str, pod_name: &str, host: &str, scope: (&str, &str)| Pod {
        resource: Resource {
            attributes: vec![
                string_attr("service.name", service),
                string_attr("service.version", version),
                string_attr("k8s.namespace.name", service),
                string_attr("k8s.pod.name", pod_name),
                string_attr("host.name", host),
            ],
            ..Resource::default()
        },
        scope: InstrumentationScope {
            name: scope.0.to_owned(),
            version: scope.1.to_owned(),
            ..InstrumentationScope::default()
        },
    };
    let http_scope = ("@opentelemetry/instrumentation-http", "0.52.1");
    let agixt_scope = ("agixt", "1.6.3");
    vec![
        pod(
            "librechat",
            "v0.7.5",
            "librechat-7d9f8b6c4-x2kqp",
            "node-1",
            http_scope,
        ),
        pod(
            "librechat",
            "v0.7.5",
            "librechat-7d9f8b6c4-m8z4t",
            "node-2",
            http_scope,
        ),
        pod("agixt", "1.6.3", "agixt-5b8c7d9f6-q7w2e", "node-1", agixt_scope),
        pod("agixt", "1.6.3", "agixt-5b8c7d9f6-r4t8y", "node-2", agixt_scope),
        pod("agixt", "1.6.3", "agixt-5b8c7d9f6-z9x3c", "node-3", agixt_scope),
    ]
}

const AGENTS: [&str; 5] = ["jarvis", "planner", "researcher", "coder", "tool-runner"];
/// Tools and their median durations in milliseconds.
const TOOLS: [(&str, f64); 8] = [
    ("web_search", 600.0),
    ("fetch_url", 400.0),
    ("run_python", 1500.0),
    ("read_file", 15.0),
    ("write_file", 25.0),
    ("sql_query", 40.0),
    ("send_email", 300.0),
    ("calendar_lookup", 250.0),
];
/// LLM models and their providers.
const MODELS: [(&str, &str, &str); 4] = [
    ("gpt-4o", "openai", "api.openai.com"),
    ("gpt-4o-mini", "openai", "api.openai.com"),
    ("claude-3-5-sonnet-20241022", "anthropic", "api.anthropic.com"),
    ("llama-3.1-70b-instruct", "ollama", "ollama.ai.svc"),
];
const SITES: [&str; 5] = [
    "en.wikipedia.org",
    "docs.python.org",
    "github.com",
    "news.ycombinator.com",
    "arxiv.org",
];
const WORDS: [&str; 8] = [
    "weather",
    "kubernetes",
    "invoice",
    "flights",
    "recipes",
    "python",
    "meeting",
    "budget",
];

fn pick<'a, T>(random: &mut SplitMix, items: &'a [T]) -> &'a T {
    &items[(random.next_u64() % items.len() as u64) as usize]
}

fn new_span_id(random: &mut SplitMix) -> Vec<u8> {
    random.next_u64().max(1).to_be_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A log-normal duration around `median_ms` (Box-Muller), between 50 µs and 5 minutes.
fn log_normal_ns(random: &mut SplitMix, median_ms: f64, sigma: f64) -> u64 {
    let u1 = random.unit().max(1e-12);
    let u2 = random.unit();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let ms = median_ms * (sigma * z).exp();
    ((ms * NS_PER_MS as f64) as u64).clamp(50_000, 300 * NS_PER_SEC)
}

/// An error status and its `exception` event at the span's end.
fn failure(span: &mut Span, exception_type: &str, message: String) {
    span.status = Some(Status {
        message: message.clone(),
        code: status::StatusCode::Error as i32,
    });
    span.events.push(span::Event {
        time_unix_nano: span.end_time_unix_nano,
        name: "exception".to_owned(),
        attributes: vec![
            string_attr("exception.type", exception_type),
            string_attr("exception.message", message),
            string_attr(
                "exception.stacktrace",
                format!(
                    "Traceback (most recent call last):\n  File \"/agixt/Extensions.py\", line 412, in execute_command\n    result = await command(**args)\n  File \"/agixt/extensions/tools.py\", line 88, in run\n    raise {exception_type}(message)\n{exception_type}"
                ),
            ),
        ],
        ..span::Event::default()
    });
}

/// One child of `agixt.run`: a tool call, an LLM call or a memory lookup.
fn child_span(random: &mut SplitMix, start_ns: u64, task: usize, agent: &str) -> Span {
    let mut span = Span {
        span_id: new_span_id(random),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: start_ns,
        attributes: vec![
            string_attr("task_id", format!("t-{task}")),
            string_attr("agent", agent),
        ],
        ..Span::default()
    };
    let roll = random.unit();
    if roll < 0.45 {
        let (tool, median_ms) = *pick(random, &TOOLS);
        let duration_ns = log_normal_ns(random, median_ms, 0.8);
        span.end_time_unix_nano = start_ns + duration_ns;
        span.name = format!("tool.{tool}");
        span.attributes.push(string_attr("tool.name", tool));
        let failed = random.unit() < 0.05;
        let http = |method: &str, url: String, server: &str, code: i64| {
            vec![
                string_attr("http.request.method", method),
                string_attr("url.full", url),
                string_attr("server.address", server),
                int_attr("http.response.status_code", code),
            ]
        };
        let word = *pick(random, &WORDS);
        let extra = match tool {
            "web_search" => http(
                "GET",
                format!("https://api.search.brave.com/res/v1/web/search?q={word}"),
                "api.search.brave.com",
                if failed { 429 } else { 200 },
            ),
            "fetch_url" => {
                let site = *pick(random, &SITES);
                http(
                    "GET",
                    format!("https://{site}/wiki/{word}_{}", random.next_u64() % 1000),
                    site,
                    if failed { 503 } else { 200 },
                )
            }
            "send_email" => http(
                "POST",
                "https://api.sendgrid.com/v3/mail/send".to_owned(),
                "api.sendgrid.com",
                if failed { 500 } else { 202 },
            ),
            "calendar_lookup" => http(
                "GET",
                "https://www.googleapis.com/calendar/v3/calendars/primary/events".to_owned(),
                "www.googleapis.com",
                if failed { 401 } else { 200 },
            ),
            "sql_query" => vec![
                string_attr("db.system.name", "postgresql"),
                string_attr("db.namespace", "agixt"),
                string_attr("db.operation.name", "SELECT"),
                string_attr(
                    "db.query.text",
                    "SELECT id, content, created_at FROM memories WHERE agent_id = $1 ORDER BY created_at DESC LIMIT 20",
                ),
                int_attr("db.response.returned_rows", (random.next_u64() % 21) as i64),
            ],
            "run_python" => vec![
                string_attr("tool.sandbox", "e2b"),
                int_attr("process.exit_code", if failed { 1 } else { 0 }),
            ],
            _ => vec![
                string_attr("file.path", format!("/workspace/{agent}/{word}-notes.md")),
                int_attr("file.size", (random.next_u64() % 65_536) as i64),
            ],
        };
        span.attributes.extend(extra);
        if failed {
            let (exception_type, message) = if random.unit() < 0.5 {
                ("TimeoutError", format!("tool {tool} timed out after 30s"))
            } else {
                (
                    "ToolExecutionError",
                    format!("tool {tool} failed: upstream error"),
                )
            };
            failure(&mut span, exception_type, message);
        }
    } else if roll < 0.80 {
        let (model, system, server) = *pick(random, &MODELS);
        let duration_ns = log_normal_ns(random, 900.0, 0.9);
        span.end_time_unix_nano = start_ns + duration_ns;
        span.name = "llm.chat".to_owned();
        let output_tokens = 20 + (random.next_u64() % 1500) as i64;
        span.attributes.extend([
            string_attr("gen_ai.operation.name", "chat"),
            string_attr("gen_ai.system", system),
            string_attr("gen_ai.request.model", model),
            string_attr("gen_ai.response.model", model),
            double_attr(
                "gen_ai.request.temperature",
                if random.unit() < 0.5 { 0.2 } else { 0.7 },
            ),
            int_attr("gen_ai.request.max_tokens", 4096),
            int_attr(
                "gen_ai.usage.input_tokens",
                200 + (random.next_u64() % 8000) as i64,
            ),
            int_attr("gen_ai.usage.output_tokens", output_tokens),
            string_attr(
                "gen_ai.response.finish_reasons",
                *pick(random, &["stop", "stop", "stop", "tool_calls", "length"]),
            ),
            string_attr("server.address", server),
        ]);
        if random.unit() < 0.02 {
            failure(
                &mut span,
                "RateLimitError",
                format!("{system} returned 429: rate limit exceeded for {model}"),
            );
        }
    } else {
        let duration_ns = log_normal_ns(random, 35.0, 0.6);
        span.end_time_unix_nano = start_ns + duration_ns;
        span.name = "memory.search".to_owned();
        span.attributes.extend([
            string_attr("db.system.name", "chromadb"),
            string_attr("db.collection.name", format!("memories_{agent}")),
            int_attr("memory.query.top_k", 5),
            int_attr("memory.results", (random.next_u64() % 6) as i64),
        ]);
    }
    span
}

/// One Jarvis run: its spans with the pod that exports each.
fn jarvis_run(
    random: &mut SplitMix,
    trace_id: &[u8; 16],
    start_ns: u64,
    session_id: &str,
    run_id: &str,
) -> Vec<(usize, Span)> {
    let librechat_pod = (random.next_u64() % LIBRECHAT_PODS as u64) as usize;
    let agixt_pod = LIBRECHAT_PODS + (random.next_u64() % 3) as usize;
    let agent = *pick(random, &AGENTS);
    let root_id = new_span_id(random);
    let run_span_id = new_span_id(random);
    let run_start_ns = start_ns + (2 + random.next_u64() % 13) * NS_PER_MS;
    let children = 3 + (random.next_u64() % 46) as usize;
    let mut spans = Vec::with_capacity(children + 2);
    let mut cursor_ns = run_start_ns + 3 * NS_PER_MS;
    let mut last_end_ns = cursor_ns;
    for index in 0..children {
        let child_start_ns = cursor_ns + (1 + random.next_u64() % 20) * NS_PER_MS;
        let mut child = child_span(random, child_start_ns, 1 + index / 4, agent);
        child.trace_id = trace_id.to_vec();
        child.parent_span_id = run_span_id.clone();
        // One in five runs alongside the next one.
        if random.unit() >= 0.2 {
            cursor_ns = child.end_time_unix_nano;
        }
        last_end_ns = last_end_ns.max(child.end_time_unix_nano);
        spans.push((agixt_pod, child));
    }
    let run_end_ns = last_end_ns + (2 + random.next_u64() % 9) * NS_PER_MS;
    let root_end_ns = run_end_ns + (3 + random.next_u64() % 18) * NS_PER_MS;
    spans.push((
        agixt_pod,
        Span {
            trace_id: trace_id.to_vec(),
            span_id: run_span_id,
            parent_span_id: root_id.clone(),
            name: "agixt.run".to_owned(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: run_start_ns,
            end_time_unix_nano: run_end_ns,
            attributes: vec![
                string_attr("session_id", session_id),
                string_attr("run_id", run_id),
                string_attr("agent", agent),
                int_attr("agixt.steps", children as i64),
            ],
            ..Span::default()
        },
    ));
    let root_failed = random.unit() < 0.01;
    let mut root = Span {
        trace_id: trace_id.to_vec(),
        span_id: root_id,
        name: "POST /api/ask".to_owned(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: root_end_ns,
        attributes: vec![
            string_attr("http.request.method", "POST"),
            string_attr("http.route", "/api/ask"),
            string_attr("url.path", "/api/ask/agixt"),
            string_attr("url.scheme", "https"),
            string_attr("server.address", "chat.jarvis.internal"),
            string_attr(
                "client.address",
                format!("10.42.{}.{}", random.next_u64() % 4, random.next_u64() % 250),
            ),
            string_attr(
                "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
            ),
            int_attr("http.response.status_code", if root_failed { 502 } else { 200 }),
        ],
        ..Span::default()
    };
    if root_failed {
        root.status = Some(Status {
            message: "agixt run failed: upstream returned 502".to_owned(),
            code: status::StatusCode::Error as i32,
        });
    }
    spans.push((librechat_pod, root));
    spans
}

/// One export: its OTLP protobuf body and how many spans it holds.
struct Batch {
    body: Bytes,
    spans: usize,
}

/// What the bench sends, and what it checks against.
struct Generated {
    /// Every trace: its id and span count.
    traces: Vec<([u8; 16], usize)>,
    /// Exports sent over OTLP/HTTP, then over OTLP/gRPC.
    http: Vec<Batch>,
    grpc: Vec<Batch>,
    /// The run id of a trace in the middle of the data.
    example_run: String,
}

/// Per transport and pod, spans waiting for a full batch, as each pod's SDK holds them.
struct Batcher {
    pods: Vec<Pod>,
    pending: Vec<Vec<Span>>,
    batches: [Vec<Batch>; 2],
}

impl Batcher {
    fn add(&mut self, transport: usize, pod: usize, span: Span) {
        let slot = transport * self.pods.len() + pod;
        self.pending[slot].push(span);
        if self.pending[slot].len() >= BATCH_SPANS {
            self.flush(transport, pod);
        }
    }

    fn flush(&mut self, transport: usize, pod: usize) {
        let slot = transport * self.pods.len() + pod;
        let spans = std::mem::take(&mut self.pending[slot]);
        if spans.is_empty() {
            return;
        }
        let count = spans.len();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(self.pods[pod].resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(self.pods[pod].scope.clone()),
                    spans,
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
                }],
                schema_url: String::new(),
            }],
        };
        self.batches[transport].push(Batch {
            body: Bytes::from(request.encode_to_vec()),
            spans: count,
        });
    }
}

fn generate(trace_count: usize, end_ns: u64) -> Generated {
    let mut random = SplitMix(0x6a61_7276_6973);
    let pods = pods();
    let pod_count = pods.len();
    let mut batcher = Batcher {
        pods,
        pending: (0..2 * pod_count).map(|_| Vec::new()).collect(),
        batches: [Vec::new(), Vec::new()],
    };
    // Traces start in [first, last): the newest ones end minutes before now.
    let first_ns = end_ns - RETENTION_NS + RETENTION_MARGIN_NS;
    let last_ns = end_ns - 5 * 60 * NS_PER_SEC;
    let slot_ns = (last_ns - first_ns) / trace_count.max(1) as u64;
    let mut traces = Vec::with_capacity(trace_count);
    let mut example_run = String::new();
    let mut session_id = String::new();
    for index in 0..trace_count {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&random.next_u64().to_be_bytes());
        trace_id[8..].copy_from_slice(&random.next_u64().max(1).to_be_bytes());
        // A session holds five runs in a row.
        if index % 5 == 0 {
            session_id = format!("s-{:010x}", random.next_u64() >> 24);
        }
        let run_id = format!("r-{:012x}", random.next_u64() >> 16);
        if index == trace_count / 2 {
            example_run = run_id.clone();
        }
        let start_ns = first_ns + slot_ns * index as u64 + random.next_u64() % slot_ns.max(1);
        let spans = jarvis_run(&mut random, &trace_id, start_ns, &session_id, &run_id);
        traces.push((trace_id, spans.len()));
        let transport = index % 2;
        for (pod, span) in spans {
            batcher.add(transport, pod, span);
        }
    }
    for transport in 0..2 {
        for pod in 0..pod_count {
            batcher.flush(transport, pod);
        }
    }
    let [http, grpc] = batcher.batches;
    Generated {
        traces,
        http,
        grpc,
        example_run,
    }
}

// ---------------------------------------------------------------------------------------------
// Sending

/// How the exports of one transport went.
#[derive(Debug, Default)]
struct Counters {
    next: AtomicUsize,
    retried: AtomicU64,
    failed: AtomicU64,
    refused_spans: AtomicU64,
    waited_ms: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Counters {
    fn note_error(&self, message: String) {
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if first.is_none() {
            *first = Some(message);
        }
    }

    /// Checks an export's answer: spans it refused count against the bench.
    fn check_answer(&self, response: &ExportTraceServiceResponse) {
        if let Some(partial) = &response.partial_success
            && partial.rejected_spans > 0
        {
            self.refused_spans
                .fetch_add(partial.rejected_spans as u64, Ordering::Relaxed);
            self.note_error(format!("spans refused: {}", partial.error_message));
        }
    }
}

/// The wait before retry `attempt` (1-based): `Retry-After` when the server gave one, else
/// the OTel Java exporter's policy (1 s, growing 1.5x, at most 5 s; without jitter).
fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    retry_after
        .map(|wait| wait.min(Duration::from_secs(30)))
        .unwrap_or_else(|| Duration::from_secs_f64((1.5f64.powi(attempt as i32 - 1)).min(5.0)))
}

/// Sends `batches` to `POST /v1/traces` from `clients` threads; the wall time until the last
/// answer.
fn send_http(base: &str, batches: &Arc<Vec<Batch>>, clients: usize, counters: &Arc<Counters>) -> Duration {
    let started = Instant::now();
    let senders: Vec<_> = (0..clients)
        .map(|_| {
            let batches = Arc::clone(batches);
            let counters = Arc::clone(counters);
            let url = format!("{base}/v1/traces");
            std::thread::spawn(move || {
                let agent = http_agent(EXPORT_TIMEOUT);
                loop {
                    let index = counters.next.fetch_add(1, Ordering::Relaxed);
                    let Some(batch) = batches.get(index) else { break };
                    for attempt in 1..=MAX_ATTEMPTS {
                        let result = agent
                            .post(&url)
                            .header("Content-Type", "application/x-protobuf")
                            .send(&batch.body[..]);
                        let (status, retry_after, body) = match result {
                            Ok(mut response) => {
                                let retry_after = response
                                    .headers()
                                    .get("retry-after")
                                    .and_then(|value| value.to_str().ok())
                                    .and_then(|value| value.trim().parse::<u64>().ok())
                                    .map(Duration::from_secs);
                                let body = response.body_mut().read_to_vec().unwrap_or_default();
                                (response.status().as_u16(), retry_after, body)
                            }
                            Err(err) => {
                                counters.note_error(format!("POST /v1/traces: {err}"));
                                (0, None, Vec::new())
                            }
                        };
                        if status == 200 {
                            match ExportTraceServiceResponse::decode(&body[..]) {
                                Ok(response) => counters.check_answer(&response),
                                Err(err) => {
                                    counters.failed.fetch_add(1, Ordering::Relaxed);
                                    counters.note_error(format!("undecodable export answer: {err}"));
                                }
                            }
                            break;
                        }
                        // As OTLP/HTTP exporters: 429, 502, 503, 504 and lost connections are
                        // retried, anything else is final.
                        let retryable = matches!(status, 0 | 429 | 502 | 503 | 504);
                        if !retryable || attempt == MAX_ATTEMPTS {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            counters.note_error(format!(
                                "POST /v1/traces answered {status} after {attempt} attempts: {}",
                                String::from_utf8_lossy(&body).trim()
                            ));
                            break;
                        }
                        counters.retried.fetch_add(1, Ordering::Relaxed);
                        let wait = backoff(attempt, retry_after);
                        counters
                            .waited_ms
                            .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
                        std::thread::sleep(wait);
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        let _ = sender.join();
    }
    started.elapsed()
}

/// A message sent as bytes already encoded: the exports are encoded before the clock starts,
/// for gRPC as for HTTP.
#[derive(Debug, Clone, Default)]
struct Encoded(Bytes);

impl Message for Encoded {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Never decoded: only sent.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// One HTTP/2 cleartext connection as a tower service, for tonic's generic gRPC client.
#[derive(Debug, Clone)]
struct Http2Connection(hyper::client::conn::http2::SendRequest<tonic::body::Body>);

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<hyper::body::Incoming>, hyper::Error>> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for Http2Connection {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> ResponseFuture {
        Box::pin(self.0.send_request(request))
    }
}

async fn connect(address: &str) -> Result<Http2Connection, String> {
    let stream = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| format!("connecting to {address} timed out"))?
        .map_err(|err| format!("connecting to {address}: {err}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|err| format!("HTTP/2 handshake with {address}: {err}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Http2Connection(sender))
}

/// One gRPC client sending batches until none is left.
async fn grpc_client(address: String, batches: Arc<Vec<Batch>>, counters: Arc<Counters>) {
    let origin: http::Uri = match format!("http://{address}").parse() {
        Ok(origin) => origin,
        Err(err) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            counters.note_error(format!("bad address {address}: {err}"));
            return;
        }
    };
    let mut connection: Option<Http2Connection> = None;
    loop {
        let index = counters.next.fetch_add(1, Ordering::Relaxed);
        let Some(batch) = batches.get(index) else { break };
        for attempt in 1..=MAX_ATTEMPTS {
            let outcome = async {
                let current = match connection.take().filter(|current| !current.0.is_closed()) {
                    Some(current) => current,
                    None => connect(&address).await.map_err(tonic::Status::unavailable)?,
                };
                connection = Some(current.clone());
                let mut grpc = tonic::client::Grpc::with_origin(current, origin.clone());
                grpc.ready()
                    .await
                    .map_err(|err| tonic::Status::unavailable(err.to_string()))?;
                let codec = tonic_prost::ProstCodec::<Encoded, ExportTraceServiceResponse>::default();
                let request = tonic::Request::new(Encoded(batch.body.clone()));
                let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
                grpc.unary(request, path, codec).await
            };
            let status = match tokio::time::timeout(EXPORT_TIMEOUT, outcome).await {
                Ok(Ok(response)) => {
                    counters.check_answer(response.get_ref());
                    break;
                }
                Ok(Err(status)) => status,
                Err(_) => tonic::Status::deadline_exceeded("export timed out"),
            };
            // As OTLP/gRPC exporters: UNAVAILABLE (and a lost connection, which tonic
            // reports as UNKNOWN with a transport error) is retried, anything else is final.
            let lost_connection = connection.as_ref().is_none_or(|current| current.0.is_closed());
            let retryable = status.code() == tonic::Code::Unavailable || lost_connection;
            if !retryable || attempt == MAX_ATTEMPTS {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                counters.note_error(format!(
                    "gRPC Export failed after {attempt} attempts: {:?} {}",
                    status.code(),
                    status.message()
                ));
                break;
            }
            counters.retried.fetch_add(1, Ordering::Relaxed);
            let wait = backoff(attempt, None);
            counters
                .waited_ms
                .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
        }
    }
}

/// Sends `batches` to the gRPC `Export` of `address` from `clients` connections; the wall time
/// until the last answer.
fn send_grpc(address: &str, batches: &Arc<Vec<Batch>>, clients: usize, counters: &Arc<Counters>) -> Duration {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            counters.note_error(format!("cannot start a tokio runtime: {err}"));
            return Duration::ZERO;
        }
    };
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                tokio::spawn(grpc_client(
                    address.to_owned(),
                    Arc::clone(batches),
                    Arc::clone(counters),
                ))
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    });
    started.elapsed()
}

/// What one transport's ingest measured.
struct Ingest {
    transport: &'static str,
    spans: u64,
    bytes: u64,
    exports: usize,
    elapsed: Duration,
    cpu: Duration,
    idle_after: Duration,
    peak_rss: u64,
    counters: Arc<Counters>,
}

fn ingest(
    server: &Server,
    transport: &'static str,
    batches: Vec<Batch>,
    clients: usize,
    send: impl FnOnce(&Arc<Vec<Batch>>, &Arc<Counters>) -> Duration,
) -> Ingest {
    let batches = Arc::new(batches);
    let counters = Arc::new(Counters::default());
    let cpu_before = server.cpu_time().unwrap_or_default();
    eprintln!(
        "sending {} exports over {transport} from {clients} clients",
        batches.len()
    );
    let elapsed = send(&batches, &counters);
    // Background work the exports caused (flushes into the day indexes, merges) counts too.
    let (idle_after, _) = obs_bench::wait_until_idle(&[server], 0.05, Duration::from_secs(120));
    Ingest {
        transport,
        spans: batches.iter().map(|batch| batch.spans as u64).sum(),
        bytes: batches.iter().map(|batch| batch.body.len() as u64).sum(),
        exports: batches.len(),
        elapsed,
        cpu: server.cpu_time().unwrap_or_default().saturating_sub(cpu_before),
        idle_after,
        peak_rss: server.peak_rss_bytes().unwrap_or_default(),
        counters,
    }
}

// ---------------------------------------------------------------------------------------------
// Disk and queries

fn dir_bytes(path: &Path) -> u64 {
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

/// Bytes under `path` by kind of file: tantivy's by extension, the WAL.
fn bytes_by_kind(path: &Path, into: &mut std::collections::BTreeMap<String, u64>) {
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
                Some((_, "pos")) => "positions (.pos)".to_owned(),
                Some((_, "term")) => "term dictionaries (.term)".to_owned(),
                Some((_, "store")) => "doc store (.store)".to_owned(),
                Some((_, "fast")) => "fast fields (.fast)".to_owned(),
                Some((_, "fieldnorm")) => "field norms (.fieldnorm)".to_owned(),
                Some((_, extension)) => format!(".{extension}"),
                None => name,
            }
        };
        *into.entry(kind).or_default() += entry.metadata().map(|meta| meta.len()).unwrap_or(0);
    }
}

/// The day directories (`YYYY-MM-DD`) under `traces`.
fn day_dirs(traces: &Path) -> usize {
    std::fs::read_dir(traces)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    name.len() == 10 && name.as_bytes().get(4) == Some(&b'-')
                })
                .count()
        })
        .unwrap_or(0)
}

/// `TraceByIDResponse { Trace trace = 1; }`, whose trace is wire-identical to `TracesData`.
#[derive(Clone, PartialEq, prost::Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
}

/// A GET's status and body; status 0 when the request failed.
fn get(agent: &ureq::Agent, url: &str, query: &[(&str, String)], accept: &str) -> (u16, Vec<u8>) {
    let mut request = agent.get(url).header("Accept", accept);
    for (key, value) in query {
        request = request.query(*key, value);
    }
    match request.call() {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response
                .body_mut()
                .with_config()
                .limit(256 << 20)
                .read_to_vec()
                .unwrap_or_default();
            (status, body)
        }
        Err(err) => (0, err.to_string().into_bytes()),
    }
}

/// Nearest-rank percentile of sorted `times`.
fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((fraction * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e3)
}

/// Median wall time of `runs` calls, the last status and body.
fn time_runs(runs: usize, mut call: impl FnMut() -> (u16, Vec<u8>)) -> (Duration, u16, Vec<u8>) {
    let mut times = Vec::with_capacity(runs);
    let mut last = (0, Vec::new());
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        last = call();
        times.push(started.elapsed());
    }
    times.sort();
    (times[times.len() / 2], last.0, last.1)
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_default()
}

fn main() {
    let trace_count: usize = arg_value("traces")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
        .max(2);
    let clients: usize = arg_value("clients")
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
        .max(1);
    let runs: usize = arg_value("runs").and_then(|v| v.parse().ok()).unwrap_or(7).max(1);
    let lookups: usize = arg_value("lookups")
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
        .clamp(1, trace_count);
    let workspace = obs_bench::workspace_dir();
    let binary = obs_bench::appliance_binary_or_exit();
    let scratch = tempfile::tempdir_in(&workspace).unwrap_or_else(|err| panic!("scratch dir: {err}"));
    println!(
        "command: cargo bench -p obs-bench --bench traces -- --traces {trace_count} --clients {clients} --runs {runs} --lookups {lookups}"
    );
    println!("appliance: {}", binary.display());
    println!(
        "machine load average (1 min) at start: {}",
        obs_bench::load_average()
    );
    println!(
        "reference: none; Tempo is not packaged on this machine, so these figures stand alone (no ratio)"
    );
    let mut failures: Vec<String> = Vec::new();

    let end_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or_default();
    let started = Instant::now();
    let generated = generate(trace_count, end_ns);
    let total_spans: usize = generated.traces.iter().map(|(_, spans)| spans).sum();
    let protobuf_bytes: usize = generated
        .http
        .iter()
        .chain(&generated.grpc)
        .map(|batch| batch.body.len())
        .sum();
    println!(
        "data: {} traces (Jarvis runs) over 7 days, {} spans ({:.1} per trace), {} exports of up to {BATCH_SPANS} spans, {:.1} MB OTLP protobuf ({:.0} B per span); generated in {:.1} s",
        human(trace_count as f64),
        human(total_spans as f64),
        total_spans as f64 / trace_count as f64,
        generated.http.len() + generated.grpc.len(),
        protobuf_bytes as f64 / 1e6,
        protobuf_bytes as f64 / total_spans.max(1) as f64,
        started.elapsed().as_secs_f64()
    );

    let data = scratch.path().join("data");
    let system = System::Appliance(binary);
    let Some(server) = system.start(&data, &[]) else {
        eprintln!("cannot start the appliance");
        std::process::exit(1);
    };
    let base = server.base_url().to_owned();
    let address = base.trim_start_matches("http://").to_owned();
    let Generated {
        traces,
        http: http_batches,
        grpc: grpc_batches,
        example_run,
    } = generated;
    let over_http = ingest(
        &server,
        "OTLP/HTTP protobuf",
        http_batches,
        clients,
        |batches, counters| send_http(&base, batches, clients, counters),
    );
    let over_grpc = ingest(
        &server,
        "OTLP/gRPC",
        grpc_batches,
        clients,
        |batches, counters| send_grpc(&address, batches, clients, counters),
    );
    let stopping = Instant::now();
    server.stop(Duration::from_secs(300));
    let stop_time = stopping.elapsed();

    println!();
    println!(
        "### Ingest (durable acknowledgements; default configuration, span metrics and service graph on)"
    );
    println!();
    println!(
        "| transport | spans | exports | spans/s | MB/s (protobuf) | appliance CPU s | spans per CPU s | idle after s | peak RSS MB | retried | waited for retries s | failed exports | refused spans |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in [&over_http, &over_grpc] {
        let counters = &run.counters;
        let failed = counters.failed.load(Ordering::Relaxed);
        let refused = counters.refused_spans.load(Ordering::Relaxed);
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {} | {:.0} | {:.0} | {} | {:.1} | {failed} | {refused} |",
            run.transport,
            human(run.spans as f64),
            run.exports,
            human(run.spans as f64 / run.elapsed.as_secs_f64().max(1e-9)),
            run.bytes as f64 / 1e6 / run.elapsed.as_secs_f64().max(1e-9),
            run.cpu.as_secs_f64(),
            human(run.spans as f64 / run.cpu.as_secs_f64().max(1e-9)),
            run.idle_after.as_secs_f64(),
            run.peak_rss as f64 / 1e6,
            counters.retried.load(Ordering::Relaxed),
            counters.waited_ms.load(Ordering::Relaxed) as f64 / 1e3,
        );
        if failed > 0 || refused > 0 {
            let first = counters
                .first_error
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .clone()
                .unwrap_or_default();
            failures.push(format!(
                "{}: {failed} failed exports, {refused} refused spans; first error: {first}",
                run.transport
            ));
        }
    }
    println!();
    println!(
        "spans/s and MB/s until the last acknowledgement; CPU time (user + system) of the appliance from the first export until it was idle again (below 5 % of a core over 2 s, the \"idle after\" column); peak RSS is the process's high-water mark so far; clean stop (SIGTERM, flushing the head) took {:.1} s",
        stop_time.as_secs_f64()
    );

    let traces_dir = data.join("traces");
    let on_disk = dir_bytes(&traces_dir);
    let wal = dir_bytes(&traces_dir.join("wal"));
    let indexes = on_disk.saturating_sub(wal);
    let spans = total_spans.max(1) as f64;
    println!();
    println!(
        "### Disk after a clean stop ({} day indexes under `traces/`)",
        day_dirs(&traces_dir)
    );
    println!();
    println!("| | MB | bytes per span |");
    println!("|---|---:|---:|");
    println!(
        "| day indexes (`traces/YYYY-MM-DD/`) | {:.1} | {:.0} |",
        indexes as f64 / 1e6,
        indexes as f64 / spans
    );
    println!(
        "| write-ahead log (`traces/wal/`) | {:.1} | {:.0} |",
        wal as f64 / 1e6,
        wal as f64 / spans
    );
    println!(
        "| total on disk | {:.1} | {:.0} |",
        on_disk as f64 / 1e6,
        on_disk as f64 / spans
    );
    println!(
        "| OTLP protobuf sent (uncompressed) | {:.1} | {:.0} |",
        protobuf_bytes as f64 / 1e6,
        protobuf_bytes as f64 / spans
    );
    println!();
    println!(
        "OTLP protobuf / disk = {:.2}x",
        protobuf_bytes as f64 / on_disk.max(1) as f64
    );
    let mut kinds = std::collections::BTreeMap::new();
    bytes_by_kind(&traces_dir, &mut kinds);
    println!();
    println!("| on disk | MB | share |");
    println!("|---|---:|---:|");
    for (kind, bytes) in &kinds {
        println!(
            "| {kind} | {:.1} | {:.0} % |",
            *bytes as f64 / 1e6,
            100.0 * *bytes as f64 / on_disk.max(1) as f64
        );
    }

    let restarting = Instant::now();
    let Some(server) = system.start(&data, &[]) else {
        eprintln!("cannot restart the appliance");
        std::process::exit(1);
    };
    let restart_time = restarting.elapsed();
    let base = server.base_url().to_owned();
    let agent = http_agent(Duration::from_secs(120));

    // Trace by id: ids spread evenly over the 7 days, asked in a shuffled order.
    let mut random = SplitMix(11);
    let mut picked: Vec<usize> = (0..lookups)
        .map(|k| {
            k * trace_count / lookups + (random.next_u64() % (trace_count / lookups).max(1) as u64) as usize
        })
        .map(|index| index.min(trace_count - 1))
        .collect();
    for index in (1..picked.len()).rev() {
        let other = (random.next_u64() % (index as u64 + 1)) as usize;
        picked.swap(index, other);
    }
    let mut times = Vec::with_capacity(picked.len());
    let mut mismatches = 0;
    let mut first_mismatch = String::new();
    for &index in &picked {
        let (trace_id, expected) = traces[index];
        let id = hex(&trace_id);
        let started = Instant::now();
        let (status, body) = get(
            &agent,
            &format!("{base}/api/v2/traces/{id}"),
            &[],
            "application/protobuf",
        );
        times.push(started.elapsed());
        let found = (status == 200)
            .then(|| TraceByIdResponse::decode(&body[..]).ok())
            .flatten()
            .and_then(|response| response.trace)
            .map(|trace| {
                trace
                    .resource_spans
                    .iter()
                    .flat_map(|resource_spans| &resource_spans.scope_spans)
                    .map(|scope_spans| scope_spans.spans.len())
                    .sum::<usize>()
            });
        if found != Some(expected) {
            mismatches += 1;
            if first_mismatch.is_empty() {
                first_mismatch = format!(
                    "trace {id}: status {status}, {found:?} spans, expected {expected} ({})",
                    String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
                );
            }
        }
    }
    times.sort();
    if mismatches > 0 {
        failures.push(format!(
            "trace by id: {mismatches} of {} lookups wrong; first: {first_mismatch}",
            picked.len()
        ));
    }
    let unknown_id = hex(&random.next_u64().to_be_bytes()) + &hex(&random.next_u64().to_be_bytes());
    let (unknown_latency, unknown_status, _) = time_runs(runs, || {
        get(
            &agent,
            &format!("{base}/api/v2/traces/{unknown_id}"),
            &[],
            "application/protobuf",
        )
    });
    if unknown_status != 404 {
        failures.push(format!("an unknown trace id answered {unknown_status}, not 404"));
    }
    println!();
    println!(
        "### Trace by id after a restart (ready {:.1} s after start)",
        restart_time.as_secs_f64()
    );
    println!();
    println!("| request | lookups | p50 ms | p99 ms | max ms | wrong span counts |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| `GET /api/v2/traces/<id>`, `Accept: application/protobuf`, ids spread over the 7 days | {} | {} | {} | {} | {mismatches} |",
        times.len(),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times.last().copied().unwrap_or_default()),
    );
    println!(
        "| the same for an id that does not exist (answer {unknown_status}), median of {runs} | {runs} | {} | | | |",
        ms(unknown_latency)
    );

    // Searches as Grafana sends them: Unix seconds, the last 7 days.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    let start_s = now_s - RETENTION_NS / NS_PER_SEC;
    let range = [("start", start_s.to_string()), ("end", now_s.to_string())];
    let run_query = format!(r#"{{ span.run_id="{example_run}" }}"#);
    let searches = [
        r#"{ resource.service.name="agixt" && status=error }"#.to_owned(),
        run_query.clone(),
        "{ duration > 2s }".to_owned(),
        r#"{ duration > 100ms && duration < 200ms && name="llm.chat" }"#.to_owned(),
        r#"{ resource.service.name="librechat" }"#.to_owned(),
        r#"{ name="agixt.run" } >> { status=error }"#.to_owned(),
    ];
    println!();
    println!(
        "### Search after a restart (`/api/search`, limit=20, spss=3, the last 7 days; median of {runs})"
    );
    println!();
    println!("| query | median ms | traces returned | traces inspected |");
    println!("|---|---:|---:|---:|");
    for query in &searches {
        let mut params = vec![
            ("q", query.clone()),
            ("limit", "20".to_owned()),
            ("spss", "3".to_owned()),
        ];
        params.extend(range.iter().cloned());
        let (latency, status, body) = time_runs(runs, || {
            get(&agent, &format!("{base}/api/search"), &params, "application/json")
        });
        let answer = json(&body);
        let returned = answer["traces"].as_array().map_or(0, Vec::len);
        let inspected = answer["metrics"]["inspectedTraces"].as_u64().unwrap_or(0);
        if status != 200 {
            failures.push(format!(
                "search `{query}` answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
            println!("| `{query}` | {} | error {status} | |", ms(latency));
            continue;
        }
        if *query == run_query && returned != 1 {
            failures.push(format!("search `{query}` returned {returned} traces, expected 1"));
        }
        println!("| `{query}` | {} | {returned} | {inspected} |", ms(latency));
    }

    println!();
    println!("### Autocompletion and TraceQL metrics (the last 7 days; median of {runs})");
    println!();
    println!("| request | median ms | answer |");
    println!("|---|---:|---|");
    let (latency, status, body) = time_runs(runs, || {
        get(
            &agent,
            &format!("{base}/api/v2/search/tag/resource.service.name/values"),
            &range,
            "application/json",
        )
    });
    let values: Vec<String> = json(&body)["tagValues"]
        .as_array()
        .map(|values| {
            values
                .iter()
                .filter_map(|value| value["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if status != 200 {
        failures.push(format!("tag values answered {status}"));
    }
    println!(
        "| `/api/v2/search/tag/resource.service.name/values` | {} | {status}: {} |",
        ms(latency),
        values.join(", ")
    );
    let metrics_query = "{ status=error } | rate() by (resource.service.name)";
    let mut params = vec![("q", metrics_query.to_owned()), ("step", "1h".to_owned())];
    params.extend(range.iter().cloned());
    let (latency, status, body) = time_runs(runs, || {
        get(
            &agent,
            &format!("{base}/api/metrics/query_range"),
            &params,
            "application/json",
        )
    });
    let answer = json(&body);
    let series = answer["series"].as_array().map_or(0, Vec::len);
    let samples: usize = answer["series"]
        .as_array()
        .map(|series| {
            series
                .iter()
                .map(|one| one["samples"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    if status != 200 {
        failures.push(format!(
            "metrics query answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    let partial = answer["status"].as_str() == Some("PARTIAL");
    println!(
        "| `/api/metrics/query_range?q={}`, step=1h | {} | {status}: {series} series, {samples} samples{} |",
        // A pipe inside a table cell is escaped, also in a code span.
        metrics_query.replace('|', "\\|"),
        ms(latency),
        if partial { " (partial)" } else { "" }
    );
    server.stop(Duration::from_secs(60));

    println!();
    if failures.is_empty() {
        println!("failures: none");
    } else {
        println!("failures:");
        for failure in &failures {
            println!("- {failure}");
        }
        std::process::exit(1);
    }
}
