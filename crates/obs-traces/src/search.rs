//! TraceQL over the span store: search (`/api/search`) and metrics (`/api/metrics/*`).
//!
//! A search pushes the conditions every matching span must satisfy (see
//! [`pushdown`]) to the index, which names the candidate traces, the most recent first;
//! each candidate is assembled whole (all its spans, whatever day they are in) and the query
//! is evaluated on it exactly, until `limit` traces matched or the budget of inspected
//! traces is spent. The index is a pre-filter only: what the engine says is the answer.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{Duration, Instant};

use obs_traceql::model::{AttrValue, Trace};
use obs_traceql::{
    AttributeScope as QueryScope, CompareOp, ConditionTest, Field, Intrinsic, MetricsFunction,
    PipelineElement, Query, RootExpr, SpanKind, SpansetExpr, SpansetFilter, SpansetOp, Static, Status,
};

use crate::record::{SpanDoc, hex, to_model_spans};
use crate::store::{AttributeScope, CandidateQuery, SpanCondition, TraceStore, TracesError};

/// `rootServiceName` of a trace whose root span has not arrived (Tempo's words).
pub const ROOT_NOT_RECEIVED: &str = "<root span not yet received>";

/// What a search asks.
#[derive(Debug, Clone)]
pub struct SearchParams {
    /// Spans starting in `[start_ns, end_ns)` make their trace a candidate.
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
    /// The most traces returned.
    pub limit: usize,
    /// The most spans returned per spanset.
    pub spans_per_spanset: usize,
    /// The most candidate traces assembled and evaluated.
    pub max_inspected_traces: usize,
    /// Give up (returning what was found) after this long.
    pub timeout: Duration,
}

impl Default for SearchParams {
    fn default() -> SearchParams {
        SearchParams {
            start_ns: 0,
            end_ns: u64::MAX,
            limit: 20,
            spans_per_spanset: 3,
            max_inspected_traces: 20_000,
            timeout: Duration::from_secs(30),
        }
    }
}

/// One span of a returned spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundSpan {
    /// Its id (hex).
    pub span_id: String,
    /// Its name.
    pub name: String,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// Duration, nanoseconds.
    pub duration_ns: u64,
    /// The attributes the query referenced or selected.
    pub attributes: Vec<(String, AttrValue)>,
}

/// One returned spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundSpanset {
    /// Its spans, at most `spans_per_spanset`.
    pub spans: Vec<FoundSpan>,
    /// How many spans matched.
    pub matched: usize,
    /// `by()` values and aggregate results.
    pub attributes: Vec<(String, AttrValue)>,
}

/// One returned trace.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundTrace {
    /// Its id (32 lowercase hex digits).
    pub trace_id: String,
    /// `service.name` of its root span, or [`ROOT_NOT_RECEIVED`].
    pub root_service_name: String,
    /// The root span's name (empty without a root).
    pub root_trace_name: String,
    /// Its first span's start, Unix nanoseconds.
    pub start_ns: u64,
    /// From its first span's start to its last span's end, milliseconds.
    pub duration_ms: u64,
    /// The matching spansets.
    pub spansets: Vec<FoundSpanset>,
    /// Per service: spans and spans with an error status.
    pub service_stats: BTreeMap<String, (u64, u64)>,
}

/// What a search found and what it read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResult {
    /// Matching traces, newest first.
    pub traces: Vec<FoundTrace>,
    /// Traces assembled and evaluated.
    pub inspected_traces: u64,
    /// Spans read.
    pub inspected_spans: u64,
    /// Bytes of spans read.
    pub inspected_bytes: u64,
    /// Whether the search stopped early (inspection budget or timeout) with more to read.
    pub partial: bool,
}

/// Errors of a search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] TracesError),
    /// The query cannot be run (a metrics query passed to search, an unsupported construct).
    #[error("{0}")]
    Query(String),
}

impl obs_core::error::Classify for SearchError {
    fn kind(&self) -> obs_core::error::ErrorKind {
        match self {
            SearchError::Store(err) => err.kind(),
            SearchError::Query(_) => obs_core::error::ErrorKind::BadInput,
        }
    }
}

/// The spanset filter whose required conditions every span that makes a trace match... must
/// include at least one span satisfying: the first filter of the query when everything after
/// it only narrows (a pipeline stage, `&&` or a structural operator that needs both sides).
fn leading_filter(root: &RootExpr) -> Option<&SpansetFilter> {
    let pipeline = match &root.query {
        Query::Spansets(pipeline) => pipeline,
        // A metrics query over one pipeline counts only spans its filters select.
        Query::Metrics(metrics) => match metrics.pipelines().as_slice() {
            [leaf] if !matches!(leaf.function, MetricsFunction::Compare(_)) => &leaf.pipeline,
            _ => return None,
        },
    };
    let first = pipeline.elements.first()?;
    match first {
        PipelineElement::Spansets(expr) => leading_filter_of(expr),
        _ => None,
    }
}

fn leading_filter_of(expr: &SpansetExpr) -> Option<&SpansetFilter> {
    match expr {
        SpansetExpr::Filter(filter) => Some(filter),
        SpansetExpr::Operation(operation) => match operation.op {
            // Both sides must match somewhere in the trace.
            SpansetOp::And
            | SpansetOp::Child
            | SpansetOp::Parent
            | SpansetOp::Descendant
            | SpansetOp::Ancestor
            | SpansetOp::Sibling
            | SpansetOp::UnionChild
            | SpansetOp::UnionParent
            | SpansetOp::UnionDescendant
            | SpansetOp::UnionAncestor
            | SpansetOp::UnionSibling => leading_filter_of(&operation.lhs),
            _ => None,
        },
        SpansetExpr::Pipeline(pipeline) => match pipeline.elements.first()? {
            PipelineElement::Spansets(expr) => leading_filter_of(expr),
            _ => None,
        },
    }
}

fn otlp_status(status: Status) -> i32 {
    match status {
        Status::Unset => 0,
        Status::Ok => 1,
        Status::Error => 2,
    }
}

fn otlp_kind(kind: SpanKind) -> i32 {
    match kind {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Span conditions implied by the query that the index can answer: equality on name, kind,
/// status and span / resource attributes, duration ranges and attribute existence, taken
/// from the conjuncts of the query's leading spanset filter. Anything else is left to the
/// engine.
pub fn pushdown(root: &RootExpr) -> Vec<SpanCondition> {
    let Some(filter) = leading_filter(root) else {
        return Vec::new();
    };
    let mut conditions = Vec::new();
    for condition in filter.required_conditions() {
        match (condition.field, condition.test) {
            (
                Field::Intrinsic(Intrinsic::Name),
                ConditionTest::Compare(CompareOp::Eq, Static::String(name)),
            ) => {
                conditions.push(SpanCondition::Name(name.clone()));
            }
            (
                Field::Intrinsic(Intrinsic::Status),
                ConditionTest::Compare(CompareOp::Eq, Static::Status(status)),
            ) => {
                conditions.push(SpanCondition::Status(otlp_status(*status)));
            }
            (
                Field::Intrinsic(Intrinsic::Kind),
                ConditionTest::Compare(CompareOp::Eq, Static::Kind(kind)),
            ) => {
                conditions.push(SpanCondition::Kind(otlp_kind(*kind)));
            }
            (
                Field::Intrinsic(Intrinsic::Duration),
                ConditionTest::Compare(op, Static::Duration { nanos }),
            ) => {
                let nanos = *nanos;
                if nanos < 0 {
                    continue;
                }
                let nanos = nanos as u64;
                let range = match op {
                    CompareOp::Eq => (Bound::Included(nanos), Bound::Included(nanos)),
                    CompareOp::Gt => (Bound::Excluded(nanos), Bound::Unbounded),
                    CompareOp::Gte => (Bound::Included(nanos), Bound::Unbounded),
                    CompareOp::Lt => (Bound::Unbounded, Bound::Excluded(nanos)),
                    CompareOp::Lte => (Bound::Unbounded, Bound::Included(nanos)),
                    CompareOp::Neq => continue,
                };
                conditions.push(SpanCondition::Duration(range.0, range.1));
            }
            (Field::Attribute(attribute), test) if !attribute.parent => {
                let scope = match attribute.scope {
                    QueryScope::Span => Some(AttributeScope::Span),
                    QueryScope::Resource => Some(AttributeScope::Resource),
                    QueryScope::None => None,
                    _ => continue,
                };
                match test {
                    ConditionTest::Compare(CompareOp::Eq, value) => {
                        let value = match value {
                            Static::String(text) => AttrValue::String(text.clone()),
                            Static::Int(int) => AttrValue::Int(*int),
                            Static::Float(float) => AttrValue::Float(*float),
                            Static::Bool(flag) => AttrValue::Bool(*flag),
                            _ => continue,
                        };
                        conditions.push(SpanCondition::Attribute(scope, attribute.name.clone(), value));
                    }
                    ConditionTest::Exists => {
                        conditions.push(SpanCondition::HasAttribute(scope, attribute.name.clone()));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    conditions
}

/// Assembles a trace: its spans as the engine's model.
pub fn assemble(trace_id: [u8; 16], docs: &[SpanDoc]) -> Result<Trace, SearchError> {
    Ok(Trace {
        trace_id,
        spans: to_model_spans(docs).map_err(|err| SearchError::Store(TracesError::Storage(err)))?,
    })
}

/// Runs a TraceQL search. Blocking: run it off the async threads.
pub fn search(
    store: &TraceStore,
    root: &RootExpr,
    params: &SearchParams,
) -> Result<SearchResult, SearchError> {
    if root.is_metrics() {
        return Err(SearchError::Query(
            "a TraceQL metrics query cannot be a search; use /api/metrics/query_range".to_owned(),
        ));
    }
    let started = Instant::now();
    let candidates = store.candidates(
        &CandidateQuery {
            start_ns: params.start_ns,
            end_ns: params.end_ns,
            conditions: pushdown(root),
        },
        params.max_inspected_traces.saturating_add(1),
    )?;
    let mut result = SearchResult::default();
    for (position, candidate) in candidates.iter().enumerate() {
        if result.traces.len() >= params.limit {
            break;
        }
        if position >= params.max_inspected_traces || started.elapsed() > params.timeout {
            result.partial = true;
            break;
        }
        let docs = store.trace(&candidate.trace_id, 0, u64::MAX)?;
        result.inspected_traces += 1;
        result.inspected_spans += docs.len() as u64;
        result.inspected_bytes += docs.iter().map(|doc| doc.payload.len() as u64).sum::<u64>();
        let trace = assemble(candidate.trace_id, &docs)?;
        let matches =
            obs_traceql::eval::search(root, &trace).map_err(|err| SearchError::Query(err.to_string()))?;
        if matches.is_empty() {
            continue;
        }
        result
            .traces
            .push(found_trace(root, &trace, &docs, matches, params));
    }
    result
        .traces
        .sort_by(|a, b| b.start_ns.cmp(&a.start_ns).then(a.trace_id.cmp(&b.trace_id)));
    Ok(result)
}

fn found_trace(
    root: &RootExpr,
    trace: &Trace,
    docs: &[SpanDoc],
    matches: Vec<obs_traceql::eval::SpansetMatch>,
    params: &SearchParams,
) -> FoundTrace {
    let start_ns = docs.iter().map(|doc| doc.start_ns).min().unwrap_or(0);
    let end_ns = docs.iter().map(|doc| doc.end_ns).max().unwrap_or(start_ns);
    let root_doc = docs.iter().find(|doc| doc.is_root());
    let mut service_stats: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for doc in docs {
        let stats = service_stats.entry(doc.service.clone()).or_default();
        stats.0 += 1;
        if doc.status == 2 {
            stats.1 += 1;
        }
    }
    let spansets = matches
        .into_iter()
        .map(|spanset| FoundSpanset {
            spans: spanset
                .spans
                .iter()
                .take(params.spans_per_spanset)
                .filter_map(|&index| trace.spans.get(index))
                .map(|span| FoundSpan {
                    span_id: hex(&span.span_id),
                    name: span.name.clone(),
                    start_ns: span.start_ns,
                    duration_ns: span.duration_ns(),
                    attributes: obs_traceql::eval::response_attributes(root, span, trace),
                })
                .collect(),
            matched: spanset.matched,
            attributes: spanset.attributes,
        })
        .collect();
    FoundTrace {
        trace_id: hex(&trace.trace_id),
        root_service_name: root_doc.map_or_else(|| ROOT_NOT_RECEIVED.to_owned(), |doc| doc.service.clone()),
        root_trace_name: root_doc.map(|doc| doc.name.clone()).unwrap_or_default(),
        start_ns,
        duration_ms: end_ns.saturating_sub(start_ns) / 1_000_000,
        spansets,
        service_stats,
    }
}

/// Whether a metrics query can be evaluated on the matching spans alone, without their
/// traces: one pipeline that is one spanset filter, reading no field that depends on other
/// spans (trace-level intrinsics, child counts, nested sets, `parent.` attributes).
fn span_local_metrics(root: &RootExpr) -> bool {
    let Some(metrics) = root.metrics() else {
        return false;
    };
    let one_filter = match metrics.pipelines().as_slice() {
        [leaf] => {
            leaf.pipeline.single_filter().is_some() && !matches!(leaf.function, MetricsFunction::Compare(_))
        }
        _ => false,
    };
    one_filter
        && root.referenced_fields().iter().all(|field| match field {
            Field::Intrinsic(intrinsic) => !matches!(
                intrinsic,
                Intrinsic::TraceRootService
                    | Intrinsic::TraceRootName
                    | Intrinsic::TraceDuration
                    | Intrinsic::ChildCount
                    | Intrinsic::NestedSetLeft
                    | Intrinsic::NestedSetRight
                    | Intrinsic::NestedSetParent
            ),
            Field::Attribute(attribute) => !attribute.parent,
        })
}

/// Runs a TraceQL metrics query over `[start_ns, end_ns)` at `step_ns`. Blocking.
pub fn metrics_range(
    store: &TraceStore,
    root: &RootExpr,
    start_ns: u64,
    end_ns: u64,
    step_ns: u64,
    max_traces: usize,
) -> Result<(Vec<obs_traceql::metrics::Series>, bool), SearchError> {
    let mut evaluator = obs_traceql::metrics::MetricsEval::new(root, start_ns, end_ns, step_ns)
        .map_err(|err| SearchError::Query(err.to_string()))?;
    if span_local_metrics(root) {
        // The spans the index selects, grouped by trace: each group is evaluated as a trace of
        // its own, which gives the same answer as the whole trace for such a query.
        let (docs, partial) = store.matching_spans(
            &CandidateQuery {
                start_ns,
                end_ns,
                conditions: pushdown(root),
            },
            max_traces.saturating_mul(50),
        )?;
        let mut by_trace: BTreeMap<[u8; 16], Vec<SpanDoc>> = BTreeMap::new();
        for doc in docs {
            by_trace.entry(doc.trace_id).or_default().push(doc);
        }
        for (trace_id, docs) in by_trace {
            let trace = assemble(trace_id, &docs)?;
            evaluator
                .observe(&trace)
                .map_err(|err| SearchError::Query(err.to_string()))?;
        }
        return Ok((evaluator.finish(), partial));
    }
    let candidates = store.candidates(
        &CandidateQuery {
            start_ns,
            end_ns,
            conditions: pushdown(root),
        },
        max_traces.saturating_add(1),
    )?;
    let partial = candidates.len() > max_traces;
    for candidate in candidates.iter().take(max_traces) {
        let docs = store.trace(&candidate.trace_id, 0, u64::MAX)?;
        let trace = assemble(candidate.trace_id, &docs)?;
        evaluator
            .observe(&trace)
            .map_err(|err| SearchError::Query(err.to_string()))?;
    }
    Ok((evaluator.finish(), partial))
}
