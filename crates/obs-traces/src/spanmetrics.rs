//! Span metrics and the service graph, generated from ingested spans with the semantics of
//! Tempo's metrics-generator (`spanmetrics` and `servicegraphs` processors), so Grafana's
//! service graph and APM table work unchanged over the embedded metrics store.
//!
//! [`Generator::observe`] is fed every ingest batch; [`Generator::collect`] (or
//! [`Generator::collect_samples`]) is called periodically and returns the cumulative value of
//! every series, to be written to the metrics store.
//!
//! - **Span metrics**: every span counts in `traces_spanmetrics_calls_total`,
//!   `traces_spanmetrics_latency_{bucket,sum,count}` (seconds) and
//!   `traces_spanmetrics_size_total` (its OTLP protobuf length, bytes), labelled `service`,
//!   `span_name`, `span_kind` (`SPAN_KIND_*`), `status_code` (`STATUS_CODE_*`) and the
//!   configured dimensions.
//! - **Service graph**: a client (or producer) span and the server (or consumer) span whose
//!   parent it is form an edge, kept pending until both halves arrived or `wait` passed. A
//!   complete edge counts in `traces_service_graph_request_total`, `..._request_failed_total`
//!   (either half has status error), `..._request_server_seconds` and
//!   `..._request_client_seconds`, labelled `client`, `server` and `connection_type` (absent
//!   when unset, else `messaging_system`, `database` or `virtual_node`). A client span with
//!   `db.namespace`, `db.name`, `db.system` or `db.system.name` is a database edge at once. An
//!   expired root server span becomes an edge from the virtual client `user` (or its peer
//!   attribute); an expired client span with a peer attribute (`peer.service`, `db.name`,
//!   `db.system`, `db.system.name`) becomes an edge to that virtual server. Other expired halves
//!   count in `traces_service_graph_unpaired_spans_total`; halves refused because `max_items`
//!   edges are pending count in `traces_service_graph_dropped_spans_total`.
//!
//! Memory is bounded: at most `max_items` pending edges and `max_series` output series (a
//! histogram label set counts as its buckets plus `_sum` and `_count`); series not updated for
//! `stale_after` are forgotten, as Tempo's registry does. Correlation keys (`run_id`,
//! `session_id`, `task_id`, `trace_id`, `span_id`) are refused as dimensions.
//!
//! ```
//! use obs_traces::spanmetrics::{Generator, GeneratorOptions};
//!
//! let mut generator = Generator::new(GeneratorOptions::default()).expect("default options are valid");
//! generator.observe([1; 16], &[], 1_700_000_000_000);
//! assert!(generator.collect(1_700_000_015_000).is_empty());
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

use obs_core::series::{Labels, METRIC_NAME_LABEL};
use obs_traceql::model::{AttrValue, Attributes, Span, attribute};
use obs_traceql::{SpanKind, Status};

/// Label names that would carry a correlation key; a dimension producing one is refused.
pub const CORRELATION_KEYS: [&str; 5] = ["run_id", "session_id", "task_id", "trace_id", "span_id"];

/// `traces_spanmetrics_calls_total`.
pub const METRIC_CALLS_TOTAL: &str = "traces_spanmetrics_calls_total";
/// `traces_spanmetrics_latency` (a histogram: `_bucket`, `_sum`, `_count`).
pub const METRIC_LATENCY: &str = "traces_spanmetrics_latency";
/// `traces_spanmetrics_size_total`.
pub const METRIC_SIZE_TOTAL: &str = "traces_spanmetrics_size_total";
/// `traces_service_graph_request_total`.
pub const METRIC_REQUEST_TOTAL: &str = "traces_service_graph_request_total";
/// `traces_service_graph_request_failed_total`.
pub const METRIC_REQUEST_FAILED_TOTAL: &str = "traces_service_graph_request_failed_total";
/// `traces_service_graph_request_server_seconds` (a histogram).
pub const METRIC_REQUEST_SERVER_SECONDS: &str = "traces_service_graph_request_server_seconds";
/// `traces_service_graph_request_client_seconds` (a histogram).
pub const METRIC_REQUEST_CLIENT_SECONDS: &str = "traces_service_graph_request_client_seconds";
/// `traces_service_graph_unpaired_spans_total`.
pub const METRIC_UNPAIRED_SPANS_TOTAL: &str = "traces_service_graph_unpaired_spans_total";
/// `traces_service_graph_dropped_spans_total`.
pub const METRIC_DROPPED_SPANS_TOTAL: &str = "traces_service_graph_dropped_spans_total";

/// Tempo's registry truncates label values to this many bytes (`max_label_value_length`).
const MAX_LABEL_VALUE_BYTES: usize = 2048;
/// Tempo's registry truncates label names to this many bytes (`max_label_name_length`).
const MAX_LABEL_NAME_BYTES: usize = 1024;
/// The virtual client of a root server span nobody is known to have called.
const USER_NODE: &str = "user";
/// Span-metrics labels set from the span itself; a dimension sanitized to one of them gets a
/// `__` prefix, as in Tempo.
const INTRINSIC_LABELS: [&str; 5] = [
    "service",
    "span_name",
    "span_kind",
    "status_code",
    "status_message",
];
/// Labels a dimension may not become: they are taken by the service graph or histograms.
const RESERVED_LABELS: [&str; 4] = ["client", "server", "connection_type", "le"];
/// Span attributes naming the peer of an edge whose other half never arrives (Tempo's default
/// `peer_attributes`), in order.
const PEER_ATTRIBUTES: [&str; 4] = ["peer.service", "db.name", "db.system", "db.system.name"];
/// Attributes marking a client span as a database call, and naming the database last (Tempo's
/// default `database_name_attributes`), in order.
const DATABASE_NAME_ATTRIBUTES: [&str; 4] = ["db.namespace", "db.name", "db.system", "db.system.name"];

/// What to generate, and the bounds that keep it small.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorOptions {
    /// Generate `traces_spanmetrics_*`.
    pub span_metrics: bool,
    /// Generate `traces_service_graph_*`.
    pub service_graph: bool,
    /// Upper bounds of `traces_spanmetrics_latency_bucket`, seconds (`+Inf` is always added).
    /// Tempo's default: 0.002 doubling up to 16.384.
    pub latency_buckets_s: Vec<f64>,
    /// Upper bounds of the service graph's `_seconds` histograms, seconds. Tempo's default: 0.1
    /// doubling up to 12.8.
    pub graph_buckets_s: Vec<f64>,
    /// How long half an edge waits for the other half before it expires.
    pub wait: Duration,
    /// The most pending (half) edges; spans beyond it count in
    /// `traces_service_graph_dropped_spans_total`.
    pub max_items: usize,
    /// Span or resource attributes (resource first, as Tempo looks them up) added as labels,
    /// their names sanitized (`deployment.environment` becomes `deployment_environment`).
    pub dimensions: Vec<String>,
    /// The most output series; observations that would create more are dropped and counted
    /// ([`GeneratorStats::dropped_observations`]).
    pub max_series: usize,
    /// Series not updated for this long are forgotten (Tempo's registry `stale_duration`).
    pub stale_after: Duration,
}

impl Default for GeneratorOptions {
    fn default() -> GeneratorOptions {
        GeneratorOptions {
            span_metrics: true,
            service_graph: true,
            latency_buckets_s: exponential_buckets(0.002, 2.0, 14),
            graph_buckets_s: exponential_buckets(0.1, 2.0, 8),
            wait: Duration::from_secs(10),
            max_items: 10_000,
            dimensions: Vec::new(),
            max_series: 50_000,
            stale_after: Duration::from_secs(15 * 60),
        }
    }
}

/// `count` bucket bounds starting at `start`, each `factor` times the previous one (as
/// Prometheus' `ExponentialBuckets`).
pub fn exponential_buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    let mut bounds = Vec::with_capacity(count);
    let mut bound = start;
    for _ in 0..count {
        bounds.push(bound);
        bound *= factor;
    }
    bounds
}

/// Why [`Generator::new`] refused its options.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeneratorError {
    /// A dimension would put a correlation key on metrics.
    #[error(
        "dimension {dimension:?} would become label {label:?}, a correlation key; correlation keys are not \
         allowed on metrics: find them in traces or logs"
    )]
    CorrelationKey {
        /// The dimension as configured.
        dimension: String,
        /// The label it would become.
        label: String,
    },
    /// A dimension cannot become a label.
    #[error("dimension {dimension:?} cannot be used: {reason}")]
    InvalidDimension {
        /// The dimension as configured.
        dimension: String,
        /// Why.
        reason: String,
    },
    /// Histogram bounds that are not numbers.
    #[error("invalid {histogram} buckets: {reason}")]
    InvalidBuckets {
        /// Which option.
        histogram: &'static str,
        /// Why.
        reason: String,
    },
}

/// One output sample.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedSample {
    /// The series, `__name__` included.
    pub labels: Labels,
    /// Its timestamp, Unix milliseconds.
    pub timestamp_ms: i64,
    /// Its value.
    pub value: f64,
}

/// Counters describing the generator's state, for self-monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeneratorStats {
    /// Half edges waiting for their other half.
    pub pending_edges: usize,
    /// Output series held (a histogram label set counts as its buckets plus two).
    pub active_series: usize,
    /// Observations dropped because they would have created series beyond `max_series`.
    pub dropped_observations: u64,
    /// Label sets that could not be built (an attribute value the label rules refuse).
    pub invalid_label_sets: u64,
    /// Half edges that expired without becoming an edge (the unpaired spans).
    pub expired_edges: u64,
    /// Spans refused because `max_items` edges were pending.
    pub dropped_spans: u64,
}

/// The span-metrics and service-graph generator. Not thread-safe by itself: the owner
/// serializes calls (one generator per process; a `Mutex` around it is enough).
#[derive(Debug)]
pub struct Generator {
    span_metrics: bool,
    service_graph: bool,
    wait_ms: i64,
    stale_after_ms: i64,
    dimensions: Vec<Dimension>,
    budget: SeriesBudget,
    calls: CounterFamily,
    latency: HistogramFamily,
    size: CounterFamily,
    requests: CounterFamily,
    failed_requests: CounterFamily,
    server_seconds: HistogramFamily,
    client_seconds: HistogramFamily,
    unpaired_spans: CounterFamily,
    dropped_spans: CounterFamily,
    edges: EdgeStore,
    invalid_label_sets: u64,
    expired_edges: u64,
    dropped_span_count: u64,
}

impl Generator {
    /// A generator with `options`; refuses dimensions that are correlation keys or cannot be
    /// labels, and buckets that are not numbers.
    pub fn new(options: GeneratorOptions) -> Result<Generator, GeneratorError> {
        let dimensions = build_dimensions(&options.dimensions)?;
        let latency_layout = BucketLayout::new("latency_buckets_s", &options.latency_buckets_s)?;
        let graph_layout = BucketLayout::new("graph_buckets_s", &options.graph_buckets_s)?;
        Ok(Generator {
            span_metrics: options.span_metrics,
            service_graph: options.service_graph,
            wait_ms: duration_ms(options.wait),
            stale_after_ms: duration_ms(options.stale_after),
            dimensions,
            budget: SeriesBudget {
                max_series: options.max_series,
                active_series: 0,
                dropped_observations: 0,
            },
            calls: CounterFamily::new(METRIC_CALLS_TOTAL),
            latency: HistogramFamily::new(METRIC_LATENCY, latency_layout),
            size: CounterFamily::new(METRIC_SIZE_TOTAL),
            requests: CounterFamily::new(METRIC_REQUEST_TOTAL),
            failed_requests: CounterFamily::new(METRIC_REQUEST_FAILED_TOTAL),
            server_seconds: HistogramFamily::new(METRIC_REQUEST_SERVER_SECONDS, graph_layout.clone()),
            client_seconds: HistogramFamily::new(METRIC_REQUEST_CLIENT_SECONDS, graph_layout),
            unpaired_spans: CounterFamily::new(METRIC_UNPAIRED_SPANS_TOTAL),
            dropped_spans: CounterFamily::new(METRIC_DROPPED_SPANS_TOTAL),
            edges: EdgeStore::new(options.max_items),
            invalid_label_sets: 0,
            expired_edges: 0,
            dropped_span_count: 0,
        })
    }

    /// Feeds the spans of one ingest batch of one trace (spans of a trace may arrive in several
    /// batches; halves of an edge pair up if they arrive within `wait` of each other). `now_ms`
    /// is the ingest time, Unix milliseconds: it dates the pending edges and the series
    /// updates. Edges that expired by `now_ms` are settled first.
    pub fn observe(&mut self, trace_id: [u8; 16], spans: &[Span], now_ms: i64) {
        if self.service_graph {
            self.expire_edges(now_ms);
        }
        for span in spans {
            if self.span_metrics {
                self.observe_span_metrics(&trace_id, span, now_ms);
            }
            if self.service_graph {
                self.observe_edge_half(trace_id, span, now_ms);
            }
        }
    }

    /// Settles the edges that expired by `now_ms`, forgets series not updated for
    /// `stale_after`, and returns the current cumulative value of every series, to be written
    /// to the metrics store at `now_ms`. Sorted by labels.
    ///
    /// Unlike [`Generator::collect_samples`], it leaves out the zero sample Tempo writes before
    /// a new series' first value, so `rate()` misses a new series' first increments.
    pub fn collect(&mut self, now_ms: i64) -> Vec<(Labels, f64)> {
        self.collect_inner(now_ms, false)
            .into_iter()
            .map(|sample| (sample.labels, sample.value))
            .collect()
    }

    /// Like [`Generator::collect`], and, as Tempo does, precedes the first value of each new
    /// series (but `_sum`) with a zero at the end of the previous minute (one second before
    /// `now_ms` truncated to the minute), so `rate()` and `increase()` see its first
    /// increments. The metrics store may refuse that zero as out of order when a forgotten
    /// series comes back; that refusal is harmless.
    pub fn collect_samples(&mut self, now_ms: i64) -> Vec<GeneratedSample> {
        self.collect_inner(now_ms, true)
    }

    /// The generator's counters.
    pub fn stats(&self) -> GeneratorStats {
        GeneratorStats {
            pending_edges: self.edges.len(),
            active_series: self.budget.active_series,
            dropped_observations: self.budget.dropped_observations,
            invalid_label_sets: self.invalid_label_sets,
            expired_edges: self.expired_edges,
            dropped_spans: self.dropped_span_count,
        }
    }

    fn collect_inner(&mut self, now_ms: i64, with_starts: bool) -> Vec<GeneratedSample> {
        if self.service_graph {
            self.expire_edges(now_ms);
        }
        let stale_before_ms = now_ms.saturating_sub(self.stale_after_ms);
        let start_ms = now_ms
            .saturating_sub(now_ms.rem_euclid(60_000))
            .saturating_sub(1_000);
        let mut out = Vec::new();
        let budget = &mut self.budget;
        for family in [
            &mut self.calls,
            &mut self.size,
            &mut self.requests,
            &mut self.failed_requests,
            &mut self.unpaired_spans,
            &mut self.dropped_spans,
        ] {
            family.forget_stale(stale_before_ms, budget);
            family.collect(now_ms, with_starts.then_some(start_ms), &mut out);
        }
        for family in [
            &mut self.latency,
            &mut self.server_seconds,
            &mut self.client_seconds,
        ] {
            family.forget_stale(stale_before_ms, budget);
            family.collect(now_ms, with_starts.then_some(start_ms), &mut out);
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels).then(a.timestamp_ms.cmp(&b.timestamp_ms)));
        out
    }

    fn observe_span_metrics(&mut self, trace_id: &[u8; 16], span: &Span, now_ms: i64) {
        let service = find_attribute("service.name", &[&span.resource.attributes]).unwrap_or_default();
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(4 + self.dimensions.len());
        pairs.push(("service".to_owned(), service));
        pairs.push(("span_name".to_owned(), span.name.clone()));
        pairs.push(("span_kind".to_owned(), span_kind_label(span.kind).to_owned()));
        pairs.push((
            "status_code".to_owned(),
            status_code_label(span.status).to_owned(),
        ));
        for dimension in &self.dimensions {
            let value = find_attribute(
                &dimension.attribute,
                &[&span.resource.attributes, &span.attributes],
            );
            pairs.push((dimension.span_metrics_label.clone(), value.unwrap_or_default()));
        }
        let Some(labels) = self.build_labels(pairs) else {
            return;
        };
        // Spans ending before they start count as taking no time, as in Tempo.
        let latency_s = span.duration_ns() as f64 / 1e9;
        let size_bytes = span_encoded_len(trace_id, span) as f64;
        let budget = &mut self.budget;
        self.calls.add(&labels, 1.0, now_ms, budget);
        self.latency.observe(&labels, latency_s, now_ms, budget);
        self.size.add(&labels, size_bytes, now_ms, budget);
    }

    fn observe_edge_half(&mut self, trace_id: [u8; 16], span: &Span, now_ms: i64) {
        let (side, connection_type) = match span.kind {
            SpanKind::Client => (Side::Client, ConnectionType::Unset),
            SpanKind::Producer => (Side::Client, ConnectionType::MessagingSystem),
            SpanKind::Server => (Side::Server, ConnectionType::Unset),
            SpanKind::Consumer => (Side::Server, ConnectionType::MessagingSystem),
            SpanKind::Internal | SpanKind::Unspecified => return,
        };
        // Like Tempo, spans whose resource has no `service.name` are no part of the graph.
        let Some(service) = find_attribute("service.name", &[&span.resource.attributes]) else {
            return;
        };
        let key = match side {
            Side::Client => EdgeKey {
                trace_id,
                span_id: span.span_id,
            },
            Side::Server => EdgeKey {
                trace_id,
                span_id: span.parent_span_id,
            },
        };
        let half = EdgeHalf {
            side,
            connection_type,
            service: truncate_label_value(service),
            span,
            dimensions: &self.dimensions,
        };
        let expires_ms = now_ms.saturating_add(self.wait_ms);
        match self.edges.upsert(key, expires_ms, |edge| half.apply(edge)) {
            Upsert::Pending => {}
            Upsert::Complete(edge) => self.record_edge(&edge, now_ms),
            Upsert::Full(edge) => {
                let (client, server) = match side {
                    Side::Client => (edge.client_service.as_str(), ""),
                    Side::Server => ("", edge.server_service.as_str()),
                };
                let pairs = vec![
                    ("client".to_owned(), client.to_owned()),
                    ("server".to_owned(), server.to_owned()),
                    (
                        "connection_type".to_owned(),
                        edge.connection_type.label().to_owned(),
                    ),
                ];
                self.dropped_span_count = self.dropped_span_count.saturating_add(1);
                self_metrics().dropped_spans.inc();
                if self.dropped_span_count.is_power_of_two() {
                    tracing::warn!(
                        max_items = self.edges.max_items,
                        dropped_spans = self.dropped_span_count,
                        "service graph: too many pending edges, spans dropped"
                    );
                }
                if let Some(labels) = self.build_labels(pairs) {
                    self.dropped_spans.add(&labels, 1.0, now_ms, &mut self.budget);
                }
            }
        }
    }

    /// Settles every pending edge that expired by `now_ms`, as Tempo's `onExpire` does.
    fn expire_edges(&mut self, now_ms: i64) {
        for (key, mut edge) in self.edges.take_expired(now_ms) {
            let unpaired_connection_type = edge.connection_type;
            edge.connection_type = ConnectionType::VirtualNode;
            if edge.client_service.is_empty() {
                // A server span nobody was seen calling: if it is a root, its caller is outside
                // (a browser, curl): the peer attribute names it, else "user".
                if key.is_root() {
                    edge.client_service = if edge.peer_node.is_empty() {
                        USER_NODE.to_owned()
                    } else {
                        edge.peer_node.clone()
                    };
                    self.record_edge(&edge, now_ms);
                    continue;
                }
            } else if edge.server_service.is_empty() && !edge.peer_node.is_empty() {
                // A call to something that sends no spans (an external API, a database).
                edge.server_service = edge.peer_node.clone();
                self.record_edge(&edge, now_ms);
                continue;
            }
            self.expired_edges = self.expired_edges.saturating_add(1);
            self_metrics().expired_edges.inc();
            let pairs = vec![
                ("client".to_owned(), edge.client_service.clone()),
                ("server".to_owned(), edge.server_service.clone()),
                (
                    "connection_type".to_owned(),
                    unpaired_connection_type.label().to_owned(),
                ),
            ];
            if let Some(labels) = self.build_labels(pairs) {
                self.unpaired_spans.add(&labels, 1.0, now_ms, &mut self.budget);
            }
        }
    }

    /// Counts a complete edge, as Tempo's `onComplete` does.
    fn record_edge(&mut self, edge: &Edge, now_ms: i64) {
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(3 + self.dimensions.len());
        pairs.push(("client".to_owned(), edge.client_service.clone()));
        pairs.push(("server".to_owned(), edge.server_service.clone()));
        pairs.push((
            "connection_type".to_owned(),
            edge.connection_type.label().to_owned(),
        ));
        for (index, dimension) in self.dimensions.iter().enumerate() {
            let value = edge.dimensions.get(index).cloned().flatten().unwrap_or_default();
            pairs.push((dimension.graph_label.clone(), value));
        }
        let Some(labels) = self.build_labels(pairs) else {
            return;
        };
        let budget = &mut self.budget;
        self.requests.add(&labels, 1.0, now_ms, budget);
        if edge.failed {
            self.failed_requests.add(&labels, 1.0, now_ms, budget);
        }
        self.server_seconds
            .observe(&labels, edge.server_latency_s, now_ms, budget);
        self.client_seconds
            .observe(&labels, edge.client_latency_s, now_ms, budget);
    }

    /// The label set of `pairs` (values truncated as Tempo's registry does, empty values
    /// dropped), or `None`, counted, when the label rules refuse it.
    fn build_labels(&mut self, pairs: Vec<(String, String)>) -> Option<Labels> {
        let pairs = pairs
            .into_iter()
            .map(|(name, value)| (name, truncate_label_value(value)));
        match Labels::from_pairs(pairs) {
            Ok(labels) => Some(labels),
            Err(err) => {
                self.invalid_label_sets = self.invalid_label_sets.saturating_add(1);
                if self.invalid_label_sets.is_power_of_two() {
                    tracing::warn!(error = %err, count = self.invalid_label_sets, "span metrics: label set refused");
                }
                None
            }
        }
    }
}

/// A configured dimension: the attribute it reads and the labels it becomes.
#[derive(Debug, Clone)]
struct Dimension {
    attribute: String,
    /// Its span-metrics label (`__`-prefixed when it collides with an intrinsic label).
    span_metrics_label: String,
    /// Its service-graph label.
    graph_label: String,
}

fn build_dimensions(names: &[String]) -> Result<Vec<Dimension>, GeneratorError> {
    let mut dimensions: Vec<Dimension> = Vec::with_capacity(names.len());
    for name in names {
        let invalid = |reason: &str| GeneratorError::InvalidDimension {
            dimension: name.clone(),
            reason: reason.to_owned(),
        };
        if name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        let label = sanitize_label_name(name);
        if is_correlation_key(name, &label) {
            return Err(GeneratorError::CorrelationKey {
                dimension: name.clone(),
                label,
            });
        }
        if label.starts_with("__") {
            return Err(invalid("label names starting with \"__\" are reserved"));
        }
        if RESERVED_LABELS.contains(&label.as_str()) {
            return Err(invalid("its label is taken by the service graph or histograms"));
        }
        let span_metrics_label = if INTRINSIC_LABELS.contains(&label.as_str()) {
            format!("__{label}")
        } else {
            label.clone()
        };
        if span_metrics_label.len() > MAX_LABEL_NAME_BYTES {
            return Err(invalid("the name is longer than 1022 bytes"));
        }
        if dimensions.iter().any(|other| other.graph_label == label) {
            return Err(invalid("another dimension becomes the same label"));
        }
        dimensions.push(Dimension {
            attribute: name.clone(),
            span_metrics_label,
            graph_label: label,
        });
    }
    Ok(dimensions)
}

/// Prometheus' `SanitizeLabelName`: every character outside `[a-zA-Z0-9_]` becomes `_`; a
/// leading digit is prefixed with `_` so the result is a valid label name.
fn sanitize_label_name(name: &str) -> String {
    let mut label: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if label.starts_with(|c: char| c.is_ascii_digit()) {
        label.insert(0, '_');
    }
    label
}

/// Whether a dimension would carry a correlation key: its label is one (`session.id` →
/// `session_id`), ends with one (`gen_ai.session.id`), or is one written another way
/// (`traceId`, `Run-ID`).
fn is_correlation_key(name: &str, label: &str) -> bool {
    let label = label.to_ascii_lowercase();
    let squashed: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    CORRELATION_KEYS
        .iter()
        .any(|key| label == *key || label.ends_with(&format!("_{key}")) || squashed == key.replace('_', ""))
}

/// The bucket bounds of a histogram family.
#[derive(Debug, Clone)]
struct BucketLayout {
    /// Finite bounds, ascending, unique.
    bounds: Vec<f64>,
    /// `le` values of `bounds` then `+Inf`.
    le_values: Vec<String>,
}

impl BucketLayout {
    fn new(histogram: &'static str, bounds_s: &[f64]) -> Result<BucketLayout, GeneratorError> {
        if bounds_s
            .iter()
            .any(|bound| bound.is_nan() || (bound.is_infinite() && bound.is_sign_negative()))
        {
            return Err(GeneratorError::InvalidBuckets {
                histogram,
                reason: "bounds must be numbers".to_owned(),
            });
        }
        let mut bounds: Vec<f64> = bounds_s
            .iter()
            .copied()
            .filter(|bound| bound.is_finite())
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let mut le_values: Vec<String> = bounds.iter().map(|bound| format_le(*bound)).collect();
        le_values.push("+Inf".to_owned());
        Ok(BucketLayout { bounds, le_values })
    }

    /// The index of the first bucket holding `value` (`le` is inclusive); the last is `+Inf`.
    fn bucket_of(&self, value: f64) -> usize {
        self.bounds.partition_point(|bound| *bound < value)
    }

    /// How many output series one label set takes: the buckets, `_sum` and `_count`.
    fn series_cost(&self) -> usize {
        self.le_values.len() + 2
    }
}

/// A bound as Prometheus client libraries write `le` (Go's `FormatFloat(v, 'f', -1, 64)`).
fn format_le(bound: f64) -> String {
    format!("{bound}")
}

/// Output series accounting.
#[derive(Debug)]
struct SeriesBudget {
    max_series: usize,
    active_series: usize,
    dropped_observations: u64,
}

impl SeriesBudget {
    /// Reserves `cost` series, or counts a dropped observation.
    fn admit(&mut self, cost: usize) -> bool {
        if self.active_series.saturating_add(cost) <= self.max_series {
            self.active_series += cost;
            return true;
        }
        self.dropped_observations = self.dropped_observations.saturating_add(1);
        self_metrics().dropped_observations.inc();
        if self.dropped_observations.is_power_of_two() {
            tracing::warn!(
                max_series = self.max_series,
                dropped_observations = self.dropped_observations,
                "span metrics: series limit reached, observations dropped"
            );
        }
        false
    }

    fn release(&mut self, cost: usize) {
        self.active_series = self.active_series.saturating_sub(cost);
    }
}

/// One value of a counter.
#[derive(Debug)]
struct CounterSeries {
    value: f64,
    last_update_ms: i64,
    /// Whether it was collected once (its zero start was written).
    collected: bool,
}

/// A counter family: its series by label set (without `__name__`).
#[derive(Debug)]
struct CounterFamily {
    name: &'static str,
    series: BTreeMap<Labels, CounterSeries>,
}

impl CounterFamily {
    fn new(name: &'static str) -> CounterFamily {
        CounterFamily {
            name,
            series: BTreeMap::new(),
        }
    }

    fn add(&mut self, labels: &Labels, delta: f64, now_ms: i64, budget: &mut SeriesBudget) {
        if let Some(series) = self.series.get_mut(labels) {
            series.value += delta;
            series.last_update_ms = series.last_update_ms.max(now_ms);
            return;
        }
        if !budget.admit(1) {
            return;
        }
        self.series.insert(
            labels.clone(),
            CounterSeries {
                value: delta,
                last_update_ms: now_ms,
                collected: false,
            },
        );
    }

    fn forget_stale(&mut self, stale_before_ms: i64, budget: &mut SeriesBudget) {
        self.series.retain(|_, series| {
            let keep = series.last_update_ms >= stale_before_ms;
            if !keep {
                budget.release(1);
            }
            keep
        });
    }

    fn collect(&mut self, now_ms: i64, start_ms: Option<i64>, out: &mut Vec<GeneratedSample>) {
        for (labels, series) in &mut self.series {
            let Ok(labels) = labels.with_label(METRIC_NAME_LABEL, self.name) else {
                continue;
            };
            if let (Some(start_ms), false) = (start_ms, series.collected) {
                out.push(GeneratedSample {
                    labels: labels.clone(),
                    timestamp_ms: start_ms,
                    value: 0.0,
                });
            }
            series.collected = true;
            out.push(GeneratedSample {
                labels,
                timestamp_ms: now_ms,
                value: series.value,
            });
        }
    }
}

/// One label set of a histogram.
#[derive(Debug)]
struct HistogramSeries {
    /// Cumulative counts, one per `le` value.
    buckets: Vec<f64>,
    sum: f64,
    count: f64,
    last_update_ms: i64,
    collected: bool,
}

/// A classic histogram family.
#[derive(Debug)]
struct HistogramFamily {
    bucket_name: String,
    sum_name: String,
    count_name: String,
    layout: BucketLayout,
    series: BTreeMap<Labels, HistogramSeries>,
}

impl HistogramFamily {
    fn new(name: &str, layout: BucketLayout) -> HistogramFamily {
        HistogramFamily {
            bucket_name: format!("{name}_bucket"),
            sum_name: format!("{name}_sum"),
            count_name: format!("{name}_count"),
            layout,
            series: BTreeMap::new(),
        }
    }

    fn observe(&mut self, labels: &Labels, value: f64, now_ms: i64, budget: &mut SeriesBudget) {
        if !self.series.contains_key(labels) {
            if !budget.admit(self.layout.series_cost()) {
                return;
            }
            self.series.insert(
                labels.clone(),
                HistogramSeries {
                    buckets: vec![0.0; self.layout.le_values.len()],
                    sum: 0.0,
                    count: 0.0,
                    last_update_ms: now_ms,
                    collected: false,
                },
            );
        }
        let Some(series) = self.series.get_mut(labels) else {
            return;
        };
        let first_bucket = self.layout.bucket_of(value);
        for bucket in series.buckets.iter_mut().skip(first_bucket) {
            *bucket += 1.0;
        }
        series.sum += value;
        series.count += 1.0;
        series.last_update_ms = series.last_update_ms.max(now_ms);
    }

    fn forget_stale(&mut self, stale_before_ms: i64, budget: &mut SeriesBudget) {
        let cost = self.layout.series_cost();
        self.series.retain(|_, series| {
            let keep = series.last_update_ms >= stale_before_ms;
            if !keep {
                budget.release(cost);
            }
            keep
        });
    }

    fn collect(&mut self, now_ms: i64, start_ms: Option<i64>, out: &mut Vec<GeneratedSample>) {
        for (labels, series) in &mut self.series {
            let start_ms = if series.collected { None } else { start_ms };
            series.collected = true;
            // Tempo writes no zero start for `_sum`.
            if let Ok(sum_labels) = labels.with_label(METRIC_NAME_LABEL, &self.sum_name) {
                push_sample(out, sum_labels, None, now_ms, series.sum);
            }
            if let Ok(count_labels) = labels.with_label(METRIC_NAME_LABEL, &self.count_name) {
                push_sample(out, count_labels, start_ms, now_ms, series.count);
            }
            let Ok(bucket_base) = labels.with_label(METRIC_NAME_LABEL, &self.bucket_name) else {
                continue;
            };
            for (le, count) in self.layout.le_values.iter().zip(&series.buckets) {
                if let Ok(bucket_labels) = bucket_base.with_label("le", le) {
                    push_sample(out, bucket_labels, start_ms, now_ms, *count);
                }
            }
        }
    }
}

fn push_sample(
    out: &mut Vec<GeneratedSample>,
    labels: Labels,
    start_ms: Option<i64>,
    now_ms: i64,
    value: f64,
) {
    if let Some(start_ms) = start_ms {
        out.push(GeneratedSample {
            labels: labels.clone(),
            timestamp_ms: start_ms,
            value: 0.0,
        });
    }
    out.push(GeneratedSample {
        labels,
        timestamp_ms: now_ms,
        value,
    });
}

/// Which half of an edge a span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// A client or producer span: keyed by its own span id.
    Client,
    /// A server or consumer span: keyed by its parent's span id.
    Server,
}

/// `connection_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ConnectionType {
    /// No label (Tempo adds it empty, which is no label).
    #[default]
    Unset,
    MessagingSystem,
    Database,
    VirtualNode,
}

impl ConnectionType {
    fn label(self) -> &'static str {
        match self {
            ConnectionType::Unset => "",
            ConnectionType::MessagingSystem => "messaging_system",
            ConnectionType::Database => "database",
            ConnectionType::VirtualNode => "virtual_node",
        }
    }
}

/// Where the two halves of an edge meet: the trace, and the client span's id (the server
/// span's parent id). All-zero span id: the server span is a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct EdgeKey {
    trace_id: [u8; 16],
    span_id: [u8; 8],
}

impl EdgeKey {
    fn is_root(&self) -> bool {
        self.span_id == [0; 8]
    }
}

/// A request between two services, as much of it as has arrived.
#[derive(Debug, Clone, Default)]
struct Edge {
    connection_type: ConnectionType,
    client_service: String,
    server_service: String,
    client_latency_s: f64,
    server_latency_s: f64,
    /// Either half has status error.
    failed: bool,
    /// Dimension values by dimension index (the last half seen wins, as in Tempo).
    dimensions: Vec<Option<String>>,
    /// The peer attribute of the last half that had one.
    peer_node: String,
}

impl Edge {
    fn is_complete(&self) -> bool {
        !self.client_service.is_empty() && !self.server_service.is_empty()
    }
}

/// One span's contribution to an edge (Tempo's upsert callbacks).
struct EdgeHalf<'a> {
    side: Side,
    connection_type: ConnectionType,
    service: String,
    span: &'a Span,
    dimensions: &'a [Dimension],
}

impl EdgeHalf<'_> {
    fn apply(&self, edge: &mut Edge) {
        let span = self.span;
        let latency_s = span.duration_ns() as f64 / 1e9;
        edge.connection_type = self.connection_type;
        match self.side {
            Side::Client => {
                edge.client_service = self.service.clone();
                edge.client_latency_s = latency_s;
            }
            Side::Server => {
                edge.server_service = self.service.clone();
                edge.server_latency_s = latency_s;
            }
        }
        edge.failed = edge.failed || span.status == Status::Error;
        for (index, dimension) in self.dimensions.iter().enumerate() {
            let found = find_attribute(
                &dimension.attribute,
                &[&span.resource.attributes, &span.attributes],
            );
            if let Some(value) = found {
                if edge.dimensions.len() <= index {
                    edge.dimensions.resize(index + 1, None);
                }
                edge.dimensions[index] = Some(truncate_label_value(value));
            }
        }
        if let Some(peer) = PEER_ATTRIBUTES
            .iter()
            .find_map(|name| find_attribute(name, &[&span.attributes]))
        {
            edge.peer_node = truncate_label_value(peer);
        }
        if self.side == Side::Client {
            apply_database_request(edge, span);
        }
    }
}

/// A client span naming a database is an edge to that database at once (Tempo's
/// `upsertDatabaseRequest`): the server is `peer.service`, else `server.address`, else
/// `network.peer.address[:network.peer.port]`, else the database name.
fn apply_database_request(edge: &mut Edge, span: &Span) {
    let attributes: [&Attributes; 2] = [&span.resource.attributes, &span.attributes];
    let Some(database_name) = DATABASE_NAME_ATTRIBUTES
        .iter()
        .find_map(|name| find_attribute(name, &attributes))
    else {
        return;
    };
    edge.connection_type = ConnectionType::Database;
    edge.server_latency_s = span.duration_ns() as f64 / 1e9;
    let server = if let Some(peer) = find_attribute("peer.service", &attributes) {
        peer
    } else if let Some(address) = find_attribute("server.address", &attributes) {
        address
    } else if let Some(host) = find_attribute("network.peer.address", &attributes) {
        match find_attribute("network.peer.port", &attributes) {
            Some(port) => format!("{host}:{port}"),
            None => host,
        }
    } else {
        database_name
    };
    if !server.is_empty() {
        edge.server_service = truncate_label_value(server);
    }
}

/// What [`EdgeStore::upsert`] did.
enum Upsert {
    /// The edge waits for its other half.
    Pending,
    /// The edge is complete and no longer stored.
    Complete(Edge),
    /// The edge is new, incomplete, and the store is full: it was not stored.
    Full(Edge),
}

#[derive(Debug)]
struct PendingEdge {
    edge: Edge,
    expires_ms: i64,
    sequence: u64,
}

/// The pending edges, with their expiry order.
#[derive(Debug)]
struct EdgeStore {
    max_items: usize,
    pending: HashMap<EdgeKey, PendingEdge>,
    /// `(expires_ms, sequence)` of every pending edge.
    expiry: BTreeMap<(i64, u64), EdgeKey>,
    next_sequence: u64,
}

impl EdgeStore {
    fn new(max_items: usize) -> EdgeStore {
        EdgeStore {
            max_items,
            pending: HashMap::new(),
            expiry: BTreeMap::new(),
            next_sequence: 0,
        }
    }

    fn len(&self) -> usize {
        debug_assert_eq!(self.pending.len(), self.expiry.len());
        self.pending.len()
    }

    /// Applies `update` to the edge of `key` (a new one, expiring at `expires_ms`, if there is
    /// none); a complete edge leaves the store.
    fn upsert(&mut self, key: EdgeKey, expires_ms: i64, update: impl FnOnce(&mut Edge)) -> Upsert {
        if let Some(pending) = self.pending.get_mut(&key) {
            update(&mut pending.edge);
            if !pending.edge.is_complete() {
                return Upsert::Pending;
            }
            return match self.pending.remove(&key) {
                Some(pending) => {
                    self.expiry.remove(&(pending.expires_ms, pending.sequence));
                    Upsert::Complete(pending.edge)
                }
                None => Upsert::Pending,
            };
        }
        let mut edge = Edge::default();
        update(&mut edge);
        if edge.is_complete() {
            return Upsert::Complete(edge);
        }
        if self.pending.len() >= self.max_items {
            return Upsert::Full(edge);
        }
        let sequence = self.next_sequence;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.expiry.insert((expires_ms, sequence), key);
        self.pending.insert(
            key,
            PendingEdge {
                edge,
                expires_ms,
                sequence,
            },
        );
        Upsert::Pending
    }

    /// Removes and returns the edges expired at `now_ms`, oldest first.
    fn take_expired(&mut self, now_ms: i64) -> Vec<(EdgeKey, Edge)> {
        let mut expired = Vec::new();
        while let Some(entry) = self.expiry.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let key = entry.remove();
            if let Some(pending) = self.pending.remove(&key) {
                expired.push((key, pending.edge));
            }
        }
        expired
    }
}

/// The value of attribute `name` in the first of `lists` that has it, as text (Tempo's
/// `FindAttributeValue`).
fn find_attribute(name: &str, lists: &[&Attributes]) -> Option<String> {
    lists
        .iter()
        .find_map(|attributes| attribute(attributes, name))
        .map(attribute_text)
}

/// An attribute value as a label value (Tempo's `StringifyAnyValue`).
fn attribute_text(value: &AttrValue) -> String {
    match value {
        AttrValue::String(text) => text.clone(),
        AttrValue::Int(number) => number.to_string(),
        AttrValue::Bool(flag) => flag.to_string(),
        AttrValue::Float(number) if number.is_nan() => "NaN".to_owned(),
        AttrValue::Float(number) if number.is_infinite() => {
            if number.is_sign_positive() { "+Inf" } else { "-Inf" }.to_owned()
        }
        AttrValue::Float(number) => format!("{number}"),
    }
}

/// `value` cut to at most [`MAX_LABEL_VALUE_BYTES`], on a character boundary.
fn truncate_label_value(mut value: String) -> String {
    if value.len() > MAX_LABEL_VALUE_BYTES {
        let mut end = MAX_LABEL_VALUE_BYTES;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

fn span_kind_label(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

fn status_code_label(status: Status) -> &'static str {
    match status {
        Status::Unset => "STATUS_CODE_UNSET",
        Status::Ok => "STATUS_CODE_OK",
        Status::Error => "STATUS_CODE_ERROR",
    }
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The length of the span as an OTLP protobuf `Span` message (Tempo counts `span.Size()` in
/// `traces_spanmetrics_size_total`). Approximate where the model dropped fields: trace state,
/// flags and dropped counts are not kept, and arrays, maps and bytes are held as text.
fn span_encoded_len(trace_id: &[u8; 16], span: &Span) -> usize {
    let mut len = bytes_field_len(1, trace_id.len()) + bytes_field_len(2, span.span_id.len());
    if !span.is_root() {
        len += bytes_field_len(4, span.parent_span_id.len());
    }
    len += bytes_field_len(5, span.name.len());
    len += enum_field_len(6, otlp_kind_number(span.kind));
    len += fixed64_field_len(7, span.start_ns) + fixed64_field_len(8, span.end_ns);
    len += attributes_len(9, &span.attributes);
    for event in &span.events {
        let event_len = fixed64_field_len(1, event.time_ns)
            + bytes_field_len(2, event.name.len())
            + attributes_len(3, &event.attributes);
        len += message_field_len(11, event_len);
    }
    for link in &span.links {
        let link_len = bytes_field_len(1, link.trace_id.len())
            + bytes_field_len(2, link.span_id.len())
            + attributes_len(4, &link.attributes);
        len += message_field_len(13, link_len);
    }
    let status_len =
        bytes_field_len(2, span.status_message.len()) + enum_field_len(3, otlp_status_number(span.status));
    len + message_field_len(15, status_len)
}

fn otlp_kind_number(kind: SpanKind) -> u64 {
    match kind {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn otlp_status_number(status: Status) -> u64 {
    match status {
        Status::Unset => 0,
        Status::Ok => 1,
        Status::Error => 2,
    }
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn key_len(tag: u32) -> usize {
    varint_len(u64::from(tag) << 3)
}

/// A length-delimited field that is always written (a set message or oneof member).
fn message_field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + varint_len(len as u64) + len
}

/// A proto3 `bytes` or `string` field: not written when empty.
fn bytes_field_len(tag: u32, len: usize) -> usize {
    if len == 0 { 0 } else { message_field_len(tag, len) }
}

fn fixed64_field_len(tag: u32, value: u64) -> usize {
    if value == 0 { 0 } else { key_len(tag) + 8 }
}

fn enum_field_len(tag: u32, value: u64) -> usize {
    if value == 0 {
        0
    } else {
        key_len(tag) + varint_len(value)
    }
}

fn attributes_len(tag: u32, attributes: &[(String, AttrValue)]) -> usize {
    attributes
        .iter()
        .map(|(key, value)| {
            let value_len = match value {
                AttrValue::String(text) => message_field_len(1, text.len()),
                AttrValue::Bool(_) => key_len(2) + 1,
                AttrValue::Int(number) => key_len(3) + varint_len(*number as u64),
                AttrValue::Float(_) => key_len(4) + 8,
            };
            message_field_len(
                tag,
                bytes_field_len(1, key.len()) + message_field_len(2, value_len),
            )
        })
        .sum()
}

/// Process-wide self-metrics of the generator.
struct SelfMetrics {
    dropped_observations: prometheus::IntCounter,
    expired_edges: prometheus::IntCounter,
    dropped_spans: prometheus::IntCounter,
}

fn self_metrics() -> &'static SelfMetrics {
    static METRICS: OnceLock<SelfMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = obs_core::selfmetrics::registry();
        SelfMetrics {
            dropped_observations: registry.int_counter(
                "obs_traces_generator_dropped_observations_total",
                "Span-metrics and service-graph observations dropped because the series limit was reached.",
            ),
            expired_edges: registry.int_counter(
                "obs_traces_generator_expired_edges_total",
                "Service-graph half edges that expired unpaired and named no virtual node.",
            ),
            dropped_spans: registry.int_counter(
                "obs_traces_generator_dropped_spans_total",
                "Service-graph spans dropped because too many edges were pending.",
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use obs_traceql::model::{Event, Link, Resource, Scope};

    use super::*;

    const T0_MS: i64 = 1_700_000_000_000;
    const T0_NS: u64 = 1_700_000_000_000_000_000;
    const TRACE: [u8; 16] = [0x4b; 16];

    fn resource(service: &str) -> Arc<Resource> {
        resource_with(service, &[])
    }

    fn resource_with(service: &str, extra: &[(&str, &str)]) -> Arc<Resource> {
        let mut attributes = vec![("service.name".to_owned(), AttrValue::String(service.to_owned()))];
        attributes.extend(
            extra
                .iter()
                .map(|(name, value)| ((*name).to_owned(), AttrValue::String((*value).to_owned()))),
        );
        Arc::new(Resource { attributes })
    }

    /// A span of `resource`; ids are one repeated byte (0 for "no parent"); times are
    /// milliseconds after T0.
    #[allow(clippy::too_many_arguments)]
    fn span(
        resource: &Arc<Resource>,
        id: u8,
        parent: u8,
        name: &str,
        kind: SpanKind,
        status: Status,
        start_ms: u64,
        end_ms: u64,
    ) -> Span {
        Span {
            span_id: [id; 8],
            parent_span_id: [parent; 8],
            name: name.to_owned(),
            kind,
            status,
            status_message: String::new(),
            start_ns: T0_NS + start_ms * 1_000_000,
            end_ns: T0_NS + end_ms * 1_000_000,
            attributes: Vec::new(),
            resource: Arc::clone(resource),
            scope: Arc::new(Scope::default()),
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    fn with_attributes(mut span: Span, attributes: &[(&str, &str)]) -> Span {
        span.attributes.extend(
            attributes
                .iter()
                .map(|(name, value)| ((*name).to_owned(), AttrValue::String((*value).to_owned()))),
        );
        span
    }

    /// The value of the series `name{pairs}` (exactly those labels), if collected.
    fn value(samples: &[(Labels, f64)], name: &str, pairs: &[(&str, &str)]) -> Option<f64> {
        let wanted =
            Labels::from_pairs(std::iter::once((METRIC_NAME_LABEL, name)).chain(pairs.iter().copied()))
                .expect("valid labels");
        samples
            .iter()
            .find(|(labels, _)| *labels == wanted)
            .map(|(_, value)| *value)
    }

    /// `base` and `le`.
    fn with_le<'a>(base: &[(&'a str, &'a str)], le: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut pairs = base.to_vec();
        pairs.push(("le", le));
        pairs
    }

    fn count_named(samples: &[(Labels, f64)], name: &str) -> usize {
        samples
            .iter()
            .filter(|(labels, _)| labels.metric_name() == Some(name))
            .count()
    }

    fn assert_close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("series present");
        assert!((actual - expected).abs() < 1e-9, "got {actual}, want {expected}");
    }

    /// LibreChat's half of a Jarvis request: its root server span and its call to AGiXT.
    fn librechat_batch() -> Vec<Span> {
        let librechat = resource("librechat");
        vec![
            span(
                &librechat,
                1,
                0,
                "POST /api/ask",
                SpanKind::Server,
                Status::Unset,
                0,
                2_500,
            ),
            span(
                &librechat,
                2,
                1,
                "POST /api/v1/chat",
                SpanKind::Client,
                Status::Unset,
                100,
                2_400,
            ),
        ]
    }

    /// AGiXT's half: the server span of that call, two tool calls, a failing one, a database
    /// query and a call to an uninstrumented API.
    fn agixt_batch() -> Vec<Span> {
        let agixt = resource("agixt");
        vec![
            span(
                &agixt,
                3,
                2,
                "POST /api/v1/chat",
                SpanKind::Server,
                Status::Error,
                150,
                2_350,
            ),
            span(
                &agixt,
                4,
                3,
                "tool web_search",
                SpanKind::Internal,
                Status::Ok,
                200,
                700,
            ),
            span(
                &agixt,
                5,
                3,
                "tool web_search",
                SpanKind::Internal,
                Status::Ok,
                750,
                850,
            ),
            span(
                &agixt,
                6,
                3,
                "tool run_code",
                SpanKind::Internal,
                Status::Error,
                900,
                903,
            ),
            with_attributes(
                span(
                    &agixt,
                    7,
                    3,
                    "SELECT memories",
                    SpanKind::Client,
                    Status::Unset,
                    1_000,
                    1_012,
                ),
                &[
                    ("db.system", "postgresql"),
                    ("db.namespace", "agixt"),
                    ("server.address", "postgres.internal"),
                ],
            ),
            with_attributes(
                span(
                    &agixt,
                    8,
                    3,
                    "POST /v1/chat/completions",
                    SpanKind::Client,
                    Status::Unset,
                    1_100,
                    2_200,
                ),
                &[("peer.service", "openai")],
            ),
        ]
    }

    #[test]
    fn jarvis_trace_in_two_batches() {
        let mut generator = Generator::new(GeneratorOptions::default()).expect("default options");
        generator.observe(TRACE, &librechat_batch(), T0_MS);
        let early = generator.collect(T0_MS + 1_000);
        assert_eq!(count_named(&early, METRIC_REQUEST_TOTAL), 0);
        assert_eq!(generator.stats().pending_edges, 2);

        generator.observe(TRACE, &agixt_batch(), T0_MS + 5_000);
        let samples = generator.collect(T0_MS + 6_000);

        // Span metrics: one series per service, name, kind and status.
        let calls = |service: &str, name: &str, kind: &str, status: &str| {
            value(
                &samples,
                METRIC_CALLS_TOTAL,
                &[
                    ("service", service),
                    ("span_name", name),
                    ("span_kind", kind),
                    ("status_code", status),
                ],
            )
        };
        assert_eq!(
            calls(
                "librechat",
                "POST /api/ask",
                "SPAN_KIND_SERVER",
                "STATUS_CODE_UNSET"
            ),
            Some(1.0)
        );
        assert_eq!(
            calls(
                "librechat",
                "POST /api/v1/chat",
                "SPAN_KIND_CLIENT",
                "STATUS_CODE_UNSET"
            ),
            Some(1.0)
        );
        assert_eq!(
            calls(
                "agixt",
                "POST /api/v1/chat",
                "SPAN_KIND_SERVER",
                "STATUS_CODE_ERROR"
            ),
            Some(1.0)
        );
        assert_eq!(
            calls("agixt", "tool web_search", "SPAN_KIND_INTERNAL", "STATUS_CODE_OK"),
            Some(2.0)
        );
        assert_eq!(
            calls(
                "agixt",
                "tool run_code",
                "SPAN_KIND_INTERNAL",
                "STATUS_CODE_ERROR"
            ),
            Some(1.0)
        );
        assert_eq!(
            calls(
                "agixt",
                "SELECT memories",
                "SPAN_KIND_CLIENT",
                "STATUS_CODE_UNSET"
            ),
            Some(1.0)
        );
        assert_eq!(count_named(&samples, METRIC_CALLS_TOTAL), 7);

        // Latency: web_search took 0.5 s and 0.1 s.
        let web_search = [
            ("service", "agixt"),
            ("span_name", "tool web_search"),
            ("span_kind", "SPAN_KIND_INTERNAL"),
            ("status_code", "STATUS_CODE_OK"),
        ];
        let bucket = |base: &[(&str, &str)], le: &str| {
            value(&samples, "traces_spanmetrics_latency_bucket", &with_le(base, le))
        };
        assert_eq!(bucket(&web_search, "0.064"), Some(0.0));
        assert_eq!(bucket(&web_search, "0.128"), Some(1.0));
        assert_eq!(bucket(&web_search, "0.256"), Some(1.0));
        assert_eq!(bucket(&web_search, "0.512"), Some(2.0));
        assert_eq!(bucket(&web_search, "16.384"), Some(2.0));
        assert_eq!(bucket(&web_search, "+Inf"), Some(2.0));
        assert_eq!(
            value(&samples, "traces_spanmetrics_latency_count", &web_search),
            Some(2.0)
        );
        assert_close(
            value(&samples, "traces_spanmetrics_latency_sum", &web_search),
            0.6,
        );
        // run_code took 3 ms, the root 2.5 s, the query 12 ms.
        let run_code = [
            ("service", "agixt"),
            ("span_name", "tool run_code"),
            ("span_kind", "SPAN_KIND_INTERNAL"),
            ("status_code", "STATUS_CODE_ERROR"),
        ];
        assert_eq!(bucket(&run_code, "0.002"), Some(0.0));
        assert_eq!(bucket(&run_code, "0.004"), Some(1.0));
        let root = [
            ("service", "librechat"),
            ("span_name", "POST /api/ask"),
            ("span_kind", "SPAN_KIND_SERVER"),
            ("status_code", "STATUS_CODE_UNSET"),
        ];
        assert_eq!(bucket(&root, "2.048"), Some(0.0));
        assert_eq!(bucket(&root, "4.096"), Some(1.0));
        let query = [
            ("service", "agixt"),
            ("span_name", "SELECT memories"),
            ("span_kind", "SPAN_KIND_CLIENT"),
            ("status_code", "STATUS_CODE_UNSET"),
        ];
        assert_eq!(bucket(&query, "0.008"), Some(0.0));
        assert_eq!(bucket(&query, "0.016"), Some(1.0));
        assert!(value(&samples, METRIC_SIZE_TOTAL, &run_code).is_some_and(|bytes| bytes > 50.0));
        // 15 buckets (14 bounds and +Inf) per latency series.
        assert_eq!(count_named(&samples, "traces_spanmetrics_latency_bucket"), 7 * 15);

        // LibreChat -> AGiXT paired across batches; failed because AGiXT's span is an error.
        let chat = [("client", "librechat"), ("server", "agixt")];
        assert_eq!(value(&samples, METRIC_REQUEST_TOTAL, &chat), Some(1.0));
        assert_eq!(value(&samples, METRIC_REQUEST_FAILED_TOTAL, &chat), Some(1.0));
        let graph_bucket =
            |name: &str, base: &[(&str, &str)], le: &str| value(&samples, name, &with_le(base, le));
        let client_bucket = "traces_service_graph_request_client_seconds_bucket";
        let server_bucket = "traces_service_graph_request_server_seconds_bucket";
        assert_eq!(graph_bucket(client_bucket, &chat, "1.6"), Some(0.0));
        assert_eq!(graph_bucket(client_bucket, &chat, "3.2"), Some(1.0));
        assert_eq!(graph_bucket(server_bucket, &chat, "1.6"), Some(0.0));
        assert_eq!(graph_bucket(server_bucket, &chat, "3.2"), Some(1.0));
        assert_close(
            value(&samples, "traces_service_graph_request_client_seconds_sum", &chat),
            2.3,
        );
        assert_close(
            value(&samples, "traces_service_graph_request_server_seconds_sum", &chat),
            2.2,
        );
        assert_eq!(count_named(&samples, client_bucket), 2 * 9);

        // AGiXT -> Postgres from the client span alone.
        let database = [
            ("client", "agixt"),
            ("server", "postgres.internal"),
            ("connection_type", "database"),
        ];
        assert_eq!(value(&samples, METRIC_REQUEST_TOTAL, &database), Some(1.0));
        assert_eq!(value(&samples, METRIC_REQUEST_FAILED_TOTAL, &database), None);
        assert_eq!(graph_bucket(server_bucket, &database, "0.1"), Some(1.0));
        assert_close(
            value(
                &samples,
                "traces_service_graph_request_server_seconds_sum",
                &database,
            ),
            0.012,
        );

        // The root and the OpenAI call wait for halves that never come.
        let user = [
            ("client", "user"),
            ("server", "librechat"),
            ("connection_type", "virtual_node"),
        ];
        let openai = [
            ("client", "agixt"),
            ("server", "openai"),
            ("connection_type", "virtual_node"),
        ];
        assert_eq!(value(&samples, METRIC_REQUEST_TOTAL, &user), None);
        assert_eq!(generator.stats().pending_edges, 2);
        let before = generator.collect(T0_MS + 9_999);
        assert_eq!(value(&before, METRIC_REQUEST_TOTAL, &user), None);

        // The root expires `wait` after it arrived: an edge from the virtual node "user".
        let expired = generator.collect(T0_MS + 10_000);
        assert_eq!(value(&expired, METRIC_REQUEST_TOTAL, &user), Some(1.0));
        assert_eq!(value(&expired, server_bucket, &with_le(&user, "1.6")), Some(0.0));
        assert_eq!(value(&expired, server_bucket, &with_le(&user, "3.2")), Some(1.0));
        assert_eq!(value(&expired, client_bucket, &with_le(&user, "0.1")), Some(1.0));
        assert_eq!(value(&expired, METRIC_REQUEST_TOTAL, &openai), None);
        assert_eq!(generator.stats().pending_edges, 1);

        // The OpenAI call arrived at T0 + 5 s: an edge to the virtual node "openai".
        let last = generator.collect(T0_MS + 15_000);
        assert_eq!(value(&last, METRIC_REQUEST_TOTAL, &openai), Some(1.0));
        assert_eq!(value(&last, client_bucket, &with_le(&openai, "0.8")), Some(0.0));
        assert_eq!(value(&last, client_bucket, &with_le(&openai, "1.6")), Some(1.0));
        assert_eq!(value(&last, METRIC_REQUEST_TOTAL, &chat), Some(1.0));
        assert_eq!(count_named(&last, METRIC_UNPAIRED_SPANS_TOTAL), 0);
        let stats = generator.stats();
        assert_eq!(
            (stats.pending_edges, stats.expired_edges, stats.dropped_spans),
            (0, 0, 0)
        );
    }

    #[test]
    fn server_half_first_pairs_too() {
        let mut generator = Generator::new(GeneratorOptions::default()).expect("default options");
        generator.observe(TRACE, &agixt_batch()[..1], T0_MS);
        generator.observe(TRACE, &librechat_batch()[1..], T0_MS + 9_000);
        let samples = generator.collect(T0_MS + 9_000);
        let chat = [("client", "librechat"), ("server", "agixt")];
        assert_eq!(value(&samples, METRIC_REQUEST_TOTAL, &chat), Some(1.0));
    }

    #[test]
    fn unpaired_halves_expire_into_unpaired_spans() {
        let mut generator = Generator::new(GeneratorOptions::default()).expect("default options");
        let agixt = resource("agixt");
        let librechat = resource("librechat");
        let spans = [
            // A server span whose caller never reports, not a root.
            span(
                &agixt,
                9,
                42,
                "POST /api/v1/chat",
                SpanKind::Server,
                Status::Unset,
                0,
                10,
            ),
            // A client span without peer attributes whose server never reports.
            span(
                &librechat,
                10,
                11,
                "GET /internal",
                SpanKind::Client,
                Status::Unset,
                0,
                10,
            ),
        ];
        generator.observe(TRACE, &spans, T0_MS);
        assert_eq!(
            count_named(&generator.collect(T0_MS + 9_999), METRIC_UNPAIRED_SPANS_TOTAL),
            0
        );
        let samples = generator.collect(T0_MS + 10_000);
        assert_eq!(
            value(&samples, METRIC_UNPAIRED_SPANS_TOTAL, &[("server", "agixt")]),
            Some(1.0)
        );
        assert_eq!(
            value(&samples, METRIC_UNPAIRED_SPANS_TOTAL, &[("client", "librechat")]),
            Some(1.0)
        );
        assert_eq!(count_named(&samples, METRIC_REQUEST_TOTAL), 0);
        assert_eq!(generator.stats().expired_edges, 2);
        assert_eq!(generator.stats().pending_edges, 0);
    }

    #[test]
    fn producer_and_consumer_are_a_messaging_edge() {
        let mut generator = Generator::new(GeneratorOptions::default()).expect("default options");
        let agixt = resource("agixt");
        let worker = resource("worker");
        generator.observe(
            TRACE,
            &[span(
                &worker,
                21,
                20,
                "process job",
                SpanKind::Consumer,
                Status::Unset,
                50,
                80,
            )],
            T0_MS,
        );
        generator.observe(
            TRACE,
            &[span(
                &agixt,
                20,
                0,
                "publish job",
                SpanKind::Producer,
                Status::Unset,
                0,
                5,
            )],
            T0_MS + 1_000,
        );
        let samples = generator.collect(T0_MS + 1_000);
        let edge = [
            ("client", "agixt"),
            ("server", "worker"),
            ("connection_type", "messaging_system"),
        ];
        assert_eq!(value(&samples, METRIC_REQUEST_TOTAL, &edge), Some(1.0));
        assert_eq!(generator.stats().pending_edges, 0);
    }

    #[test]
    fn pending_edges_are_capped() {
        let options = GeneratorOptions {
            max_items: 1,
            ..GeneratorOptions::default()
        };
        let mut generator = Generator::new(options).expect("valid options");
        let librechat = resource("librechat");
        generator.observe(
            [1; 16],
            &[span(
                &librechat,
                1,
                0,
                "GET /a",
                SpanKind::Client,
                Status::Unset,
                0,
                1,
            )],
            T0_MS,
        );
        generator.observe(
            [2; 16],
            &[span(
                &librechat,
                1,
                0,
                "GET /b",
                SpanKind::Client,
                Status::Unset,
                0,
                1,
            )],
            T0_MS,
        );
        let samples = generator.collect(T0_MS + 1);
        assert_eq!(
            value(&samples, METRIC_DROPPED_SPANS_TOTAL, &[("client", "librechat")]),
            Some(1.0)
        );
        let stats = generator.stats();
        assert_eq!((stats.pending_edges, stats.dropped_spans), (1, 1));
    }

    #[test]
    fn series_are_capped() {
        let options = GeneratorOptions {
            service_graph: false,
            max_series: 3,
            ..GeneratorOptions::default()
        };
        let mut generator = Generator::new(options).expect("valid options");
        let agixt = resource("agixt");
        let spans = [
            span(&agixt, 1, 0, "a", SpanKind::Internal, Status::Unset, 0, 1),
            span(&agixt, 2, 0, "b", SpanKind::Internal, Status::Unset, 0, 1),
        ];
        generator.observe(TRACE, &spans, T0_MS);
        // a: calls (1 series), latency (17: refused), size (1); b: calls (1), latency and size
        // refused.
        let stats = generator.stats();
        assert_eq!((stats.active_series, stats.dropped_observations), (3, 3));
        let samples = generator.collect(T0_MS);
        assert_eq!(samples.len(), 3);
        assert_eq!(count_named(&samples, METRIC_CALLS_TOTAL), 2);
        assert_eq!(count_named(&samples, METRIC_SIZE_TOTAL), 1);
    }

    #[test]
    fn stale_series_are_forgotten() {
        let options = GeneratorOptions {
            stale_after: Duration::from_secs(60),
            ..GeneratorOptions::default()
        };
        let mut generator = Generator::new(options).expect("valid options");
        generator.observe(TRACE, &agixt_batch()[1..2], T0_MS);
        assert_eq!(generator.stats().active_series, 1 + 17 + 1);
        assert_eq!(
            count_named(&generator.collect(T0_MS + 60_000), METRIC_CALLS_TOTAL),
            1
        );
        assert!(generator.collect(T0_MS + 60_001).is_empty());
        assert_eq!(generator.stats().active_series, 0);
    }

    #[test]
    fn new_series_start_with_a_zero_at_the_end_of_the_previous_minute() {
        let mut generator = Generator::new(GeneratorOptions::default()).expect("default options");
        generator.observe(TRACE, &agixt_batch()[1..2], T0_MS);
        let samples = generator.collect_samples(T0_MS + 6_000);
        let calls: Vec<(i64, f64)> = samples
            .iter()
            .filter(|sample| sample.labels.metric_name() == Some(METRIC_CALLS_TOTAL))
            .map(|sample| (sample.timestamp_ms, sample.value))
            .collect();
        assert_eq!(calls, [(1_699_999_979_000, 0.0), (1_700_000_006_000, 1.0)]);
        let sums = samples
            .iter()
            .filter(|sample| sample.labels.metric_name() == Some("traces_spanmetrics_latency_sum"))
            .count();
        assert_eq!(sums, 1);
        // 15 buckets, _count and _size_total get a zero start; _sum does not.
        assert_eq!(samples.len(), 2 * (1 + 15 + 1 + 1) + 1);
        let again = generator.collect_samples(T0_MS + 7_000);
        assert_eq!(again.len(), 1 + 15 + 2 + 1);
        assert!(again.iter().all(|sample| sample.timestamp_ms == T0_MS + 7_000));
    }

    #[test]
    fn correlation_keys_are_refused_as_dimensions() {
        for dimension in [
            "run_id",
            "session.id",
            "traceId",
            "Span-ID",
            "gen_ai.task_id",
            "task.id",
        ] {
            let options = GeneratorOptions {
                dimensions: vec![dimension.to_owned()],
                ..GeneratorOptions::default()
            };
            let result = Generator::new(options);
            assert!(
                matches!(result, Err(GeneratorError::CorrelationKey { .. })),
                "{dimension}: {result:?}"
            );
        }
        let options = GeneratorOptions {
            dimensions: vec!["session.id".to_owned()],
            ..GeneratorOptions::default()
        };
        assert_eq!(
            Generator::new(options).err(),
            Some(GeneratorError::CorrelationKey {
                dimension: "session.id".to_owned(),
                label: "session_id".to_owned(),
            })
        );
    }

    #[test]
    fn unusable_dimensions_and_buckets_are_refused() {
        for dimensions in [
            vec!["client"],
            vec!["le"],
            vec!["__name__"],
            vec![""],
            vec!["a.b", "a_b"],
        ] {
            let options = GeneratorOptions {
                dimensions: dimensions.iter().map(|name| (*name).to_owned()).collect(),
                ..GeneratorOptions::default()
            };
            let result = Generator::new(options);
            assert!(
                matches!(result, Err(GeneratorError::InvalidDimension { .. })),
                "{dimensions:?}: {result:?}"
            );
        }
        let options = GeneratorOptions {
            latency_buckets_s: vec![0.1, f64::NAN],
            ..GeneratorOptions::default()
        };
        assert!(matches!(
            Generator::new(options),
            Err(GeneratorError::InvalidBuckets { .. })
        ));
    }

    #[test]
    fn dimensions_become_labels() {
        let options = GeneratorOptions {
            dimensions: vec!["deployment.environment".to_owned(), "service".to_owned()],
            ..GeneratorOptions::default()
        };
        let mut generator = Generator::new(options).expect("valid options");
        let librechat = resource_with("librechat", &[("deployment.environment", "prod")]);
        let agixt = resource_with("agixt", &[("deployment.environment", "prod")]);
        let spans = [
            span(
                &librechat,
                2,
                1,
                "POST /api/v1/chat",
                SpanKind::Client,
                Status::Unset,
                100,
                2_400,
            ),
            with_attributes(
                span(
                    &agixt,
                    3,
                    2,
                    "POST /api/v1/chat",
                    SpanKind::Server,
                    Status::Unset,
                    150,
                    2_350,
                ),
                &[("service", "chat")],
            ),
        ];
        generator.observe(TRACE, &spans, T0_MS);
        let samples = generator.collect(T0_MS);
        let calls = [
            ("service", "agixt"),
            ("span_name", "POST /api/v1/chat"),
            ("span_kind", "SPAN_KIND_SERVER"),
            ("status_code", "STATUS_CODE_UNSET"),
            ("deployment_environment", "prod"),
            ("__service", "chat"),
        ];
        assert_eq!(value(&samples, METRIC_CALLS_TOTAL, &calls), Some(1.0));
        let edge = [
            ("client", "librechat"),
            ("server", "agixt"),
            ("deployment_environment", "prod"),
            ("service", "chat"),
        ];
        assert_eq!(value(&samples, METRIC_REQUEST_TOTAL, &edge), Some(1.0));
    }

    #[test]
    fn span_size_is_the_otlp_encoded_length() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
        use opentelemetry_proto::tonic::trace::v1 as otlp;
        use prost::Message;

        let agixt = resource("agixt");
        let mut model = span(
            &agixt,
            7,
            3,
            "SELECT memories",
            SpanKind::Client,
            Status::Error,
            1,
            900,
        );
        model.status_message = "connection reset".to_owned();
        model.attributes = vec![
            ("db.system".to_owned(), AttrValue::String("postgresql".to_owned())),
            ("db.rows".to_owned(), AttrValue::Int(-3)),
            ("retry".to_owned(), AttrValue::Bool(false)),
            ("ratio".to_owned(), AttrValue::Float(0.25)),
            ("empty".to_owned(), AttrValue::String(String::new())),
        ];
        model.events = vec![Event {
            name: "exception".to_owned(),
            time_ns: T0_NS + 5,
            attributes: vec![(
                "exception.type".to_owned(),
                AttrValue::String("IOError".to_owned()),
            )],
        }];
        model.links = vec![Link {
            trace_id: [9; 16],
            span_id: [8; 8],
            attributes: vec![("link.kind".to_owned(), AttrValue::Int(300))],
        }];

        let key_value = |key: &str, value: any_value::Value| KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        };
        let proto = otlp::Span {
            trace_id: TRACE.to_vec(),
            span_id: model.span_id.to_vec(),
            parent_span_id: model.parent_span_id.to_vec(),
            name: model.name.clone(),
            kind: 3,
            start_time_unix_nano: model.start_ns,
            end_time_unix_nano: model.end_ns,
            attributes: vec![
                key_value(
                    "db.system",
                    any_value::Value::StringValue("postgresql".to_owned()),
                ),
                key_value("db.rows", any_value::Value::IntValue(-3)),
                key_value("retry", any_value::Value::BoolValue(false)),
                key_value("ratio", any_value::Value::DoubleValue(0.25)),
                key_value("empty", any_value::Value::StringValue(String::new())),
            ],
            events: vec![otlp::span::Event {
                time_unix_nano: T0_NS + 5,
                name: "exception".to_owned(),
                attributes: vec![key_value(
                    "exception.type",
                    any_value::Value::StringValue("IOError".to_owned()),
                )],
                ..Default::default()
            }],
            links: vec![otlp::span::Link {
                trace_id: vec![9; 16],
                span_id: vec![8; 8],
                attributes: vec![key_value("link.kind", any_value::Value::IntValue(300))],
                ..Default::default()
            }],
            status: Some(otlp::Status {
                message: "connection reset".to_owned(),
                code: 2,
            }),
            ..Default::default()
        };
        assert_eq!(span_encoded_len(&TRACE, &model), proto.encoded_len());

        let root = span(&agixt, 1, 0, "", SpanKind::Unspecified, Status::Unset, 0, 0);
        let root_proto = otlp::Span {
            trace_id: TRACE.to_vec(),
            span_id: root.span_id.to_vec(),
            start_time_unix_nano: root.start_ns,
            end_time_unix_nano: root.end_ns,
            status: Some(otlp::Status::default()),
            ..Default::default()
        };
        assert_eq!(span_encoded_len(&TRACE, &root), root_proto.encoded_len());
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let options = GeneratorOptions {
            wait: Duration::MAX,
            stale_after: Duration::MAX,
            max_items: 0,
            max_series: 0,
            dimensions: vec!["weird".to_owned()],
            ..GeneratorOptions::default()
        };
        let mut generator = Generator::new(options).expect("valid options");
        let long_name = "é".repeat(3_000);
        let resource = Arc::new(Resource {
            attributes: vec![
                ("service.name".to_owned(), AttrValue::String(long_name.clone())),
                ("weird".to_owned(), AttrValue::Float(f64::NAN)),
            ],
        });
        let mut backwards = span(
            &resource,
            1,
            1,
            &long_name,
            SpanKind::Server,
            Status::Error,
            10,
            0,
        );
        backwards.end_ns = 0;
        for now_ms in [i64::MIN, -1, 0, i64::MAX] {
            generator.observe(TRACE, std::slice::from_ref(&backwards), now_ms);
            let _ = generator.collect_samples(now_ms);
        }
        assert_eq!(generator.stats().active_series, 0);

        let mut generator = Generator::new(GeneratorOptions::default()).expect("default options");
        for now_ms in [i64::MIN, 0, i64::MAX] {
            generator.observe(TRACE, std::slice::from_ref(&backwards), now_ms);
            let _ = generator.collect_samples(now_ms);
        }
        let samples = generator.collect(i64::MAX);
        let service = samples
            .iter()
            .find_map(|(labels, _)| labels.get("service"))
            .expect("a span-metrics series");
        assert_eq!(service.len(), MAX_LABEL_VALUE_BYTES);
    }

    #[test]
    fn default_buckets_are_tempos() {
        let layout = BucketLayout::new(
            "latency_buckets_s",
            &GeneratorOptions::default().latency_buckets_s,
        )
        .expect("valid buckets");
        assert_eq!(
            layout.le_values,
            [
                "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256", "0.512", "1.024",
                "2.048", "4.096", "8.192", "16.384", "+Inf"
            ]
        );
        let layout = BucketLayout::new("graph_buckets_s", &GeneratorOptions::default().graph_buckets_s)
            .expect("valid buckets");
        assert_eq!(
            layout.le_values,
            ["0.1", "0.2", "0.4", "0.8", "1.6", "3.2", "6.4", "12.8", "+Inf"]
        );
        assert_eq!(layout.bucket_of(0.1), 0);
        assert_eq!(layout.bucket_of(0.100_000_1), 1);
        assert_eq!(layout.bucket_of(100.0), 8);
    }
}
