//! The span store: write-ahead log, head, day indexes.
//!
//! Write path: [`TraceStore::append`] refuses spans outside the retention or too far in the
//! future, queues the write-ahead log record of the accepted spans and puts them in the head,
//! under the head lock so that the log's order is the head's; then it waits until the record
//! is durable and only then returns. Spans are visible to queries as soon as they are in the
//! head.
//!
//! [`TraceStore::finish_flush`] is also the checkpoint: the log is rotated while no append is
//! between its log write and its head apply, the head's spans are added to the index of the
//! UTC day of their start with a durable commit (which records the log position it covers),
//! and only then are the log segments before the rotation unlinked. A restart replays the
//! log into the head, skipping spans their day's index already holds.
//!
//! Where data lives:
//! - `<data>/traces/wal/`: every accepted export, until a flush has indexed it;
//! - the head (memory): spans since the last flush;
//! - `<data>/traces/YYYY-MM-DD/`: the tantivy index of that UTC day (see `index`).
//!
//! Spans of one trace may arrive in many requests, minutes or days apart: a trace is
//! assembled at read time from every day it has spans in (and the head), which the exact
//! trace-id term makes cheap.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use obs_core::Signal;
use obs_core::error::{Classify, ErrorKind};
use obs_core::partition::{DataLayout, DayPartitionDir, DiskPressure, Partition, PartitionSet};
use obs_core::time::{Day, TimestampMs};
use obs_core::wal::{Lsn, Wal, WalError, WalOptions};
use obs_traceql::model::AttrValue;

use crate::index::{Clause, DayIndex, DayQuery, Hit};
use crate::record::{self, SpanDoc, TermScope};

const NS_PER_MS: u64 = 1_000_000;

/// Settings of the span store.
#[derive(Debug, Clone)]
pub struct TracesOptions {
    /// Spans starting before this (relative to now) are refused; days older are dropped.
    pub retention: Duration,
    /// How far ahead of now a span may start.
    pub future_tolerance: Duration,
    /// Flush when the head holds this many bytes of spans; at twice this, exports are
    /// refused as overload until a flush has caught up.
    pub head_flush_bytes: usize,
    /// The write-ahead log.
    pub wal: WalOptions,
}

impl Default for TracesOptions {
    fn default() -> TracesOptions {
        TracesOptions {
            retention: Duration::from_secs(7 * 86_400),
            future_tolerance: Duration::from_secs(600),
            head_flush_bytes: 32 << 20,
            wal: WalOptions::named("traces"),
        }
    }
}

/// Errors of the span store.
#[derive(Debug, thiserror::Error)]
pub enum TracesError {
    /// The write-ahead log failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The data directory is over its disk budget.
    #[error("the data directory is over its disk budget; ingest resumes when retention frees space")]
    DiskFull,
    /// An index failed.
    #[error("trace storage failed: {0}")]
    Storage(String),
    /// A log record could not be decoded during replay.
    #[error("traces write-ahead log record is unreadable: {0}")]
    Record(String),
    /// More spans wait in memory than a flush has caught up with.
    #[error("the span store is flushing a backlog of {0} bytes; retry shortly")]
    Backlog(usize),
}

impl Classify for TracesError {
    fn kind(&self) -> ErrorKind {
        match self {
            TracesError::Wal(err) => err.kind(),
            TracesError::DiskFull | TracesError::Backlog(_) => ErrorKind::Overloaded,
            TracesError::Storage(_) | TracesError::Record(_) => ErrorKind::Internal,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Default)]
pub struct AppendOutcome {
    /// Spans stored.
    pub accepted: u64,
    /// Why each refused span was refused.
    pub refused: Vec<String>,
}

/// What opening found.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// Log records replayed.
    pub replayed_records: u64,
    /// Spans replayed into the head.
    pub replayed_spans: u64,
    /// Spans of replayed records their day's index already held.
    pub skipped_indexed_spans: u64,
    /// Damaged records found (and cut off) in the log.
    pub wal_corruptions: usize,
}

/// Where to look for candidate traces.
#[derive(Debug, Clone, Default)]
pub struct CandidateQuery {
    /// Span start in `[start_ns, end_ns)`.
    pub start_ns: u64,
    /// See `start_ns`.
    pub end_ns: u64,
    /// Conditions every span that makes its trace a candidate satisfies.
    pub conditions: Vec<SpanCondition>,
}

/// A condition on one span, answered by the index (and by the head in memory).
#[derive(Debug, Clone, PartialEq)]
pub enum SpanCondition {
    /// Its name is this.
    Name(String),
    /// Its kind (OTLP number) is this.
    Kind(i32),
    /// Its status (OTLP number) is this.
    Status(i32),
    /// Its duration in nanoseconds lies in the range.
    Duration(Bound<u64>, Bound<u64>),
    /// The attribute has this value: span attribute, resource attribute, or either (`None`).
    Attribute(Option<AttributeScope>, String, AttrValue),
    /// The attribute exists.
    HasAttribute(Option<AttributeScope>, String),
}

/// Span or resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeScope {
    /// A span attribute.
    Span,
    /// A resource attribute.
    Resource,
}

impl AttributeScope {
    fn term_scope(self) -> TermScope {
        match self {
            AttributeScope::Span => TermScope::Span,
            AttributeScope::Resource => TermScope::Resource,
        }
    }

    fn both(scope: Option<AttributeScope>) -> Vec<TermScope> {
        match scope {
            Some(scope) => vec![scope.term_scope()],
            None => vec![TermScope::Span, TermScope::Resource],
        }
    }
}

impl SpanCondition {
    /// The index clause; `None` when the index cannot answer it (a value too long to index).
    fn clause(&self) -> Option<Clause> {
        Some(match self {
            SpanCondition::Name(name) => Clause::Name(name.clone()),
            SpanCondition::Kind(kind) => Clause::Kind((*kind).max(0) as u64),
            SpanCondition::Status(status) => Clause::Status((*status).max(0) as u64),
            SpanCondition::Duration(low, high) => Clause::Duration(*low, *high),
            SpanCondition::Attribute(scope, key, value) => {
                let terms: Option<Vec<String>> = AttributeScope::both(*scope)
                    .into_iter()
                    .map(|scope| record::value_term(scope, key, value))
                    .collect();
                Clause::AnyValue(terms?)
            }
            SpanCondition::HasAttribute(scope, key) => Clause::AnyKey(
                AttributeScope::both(*scope)
                    .into_iter()
                    .map(|scope| record::key_term(scope, key))
                    .collect(),
            ),
        })
    }

    /// Whether a head span satisfies it (`values` / `keys`: its attribute terms).
    fn matches(&self, doc: &SpanDoc, values: &[String], keys: &[String]) -> bool {
        match self.clause() {
            None => true,
            Some(Clause::Name(name)) => doc.name == name,
            Some(Clause::Kind(kind)) => doc.kind.max(0) as u64 == kind,
            Some(Clause::Status(status)) => doc.status.max(0) as u64 == status,
            Some(Clause::Duration(low, high)) => {
                std::ops::RangeBounds::contains(&(low, high), &doc.duration_ns())
            }
            Some(Clause::AnyValue(terms)) => terms.iter().any(|term| values.binary_search(term).is_ok()),
            Some(Clause::AnyKey(terms)) => terms.iter().any(|term| keys.binary_search(term).is_ok()),
        }
    }
}

/// A candidate trace: its id and the latest start of its matching spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The latest start (ns) among its spans that matched the conditions.
    pub latest_start_ns: u64,
}

#[derive(Debug, Default)]
struct Head {
    spans: Vec<Arc<SpanDoc>>,
    bytes: usize,
    /// Spans being written to the indexes by a flush (still visible to queries).
    flushing: Arc<Vec<Arc<SpanDoc>>>,
}

/// The day indexes a read looks at, each with its searcher, and the head's spans it sees.
type Snapshot = (Vec<(Arc<DayIndex>, tantivy::Searcher)>, Vec<Arc<SpanDoc>>);

/// The span store. See the [module docs](self).
#[derive(Debug)]
pub struct TraceStore {
    options: TracesOptions,
    partitions_dir: DayPartitionDir,
    wal: Wal,
    head: RwLock<Head>,
    days: Mutex<BTreeMap<Day, Arc<DayIndex>>>,
    apply_gate: Arc<tokio::sync::RwLock<()>>,
    flush_lock: Mutex<()>,
    pressure: OnceLock<Arc<DiskPressure>>,
    flush_wanted: tokio::sync::Notify,
}

fn day_of_ns(ns: u64) -> Day {
    Day::containing(TimestampMs((ns / NS_PER_MS).min(i64::MAX as u64) as i64))
}

impl TraceStore {
    /// Opens the store under `layout`, replaying the write-ahead log into the head.
    pub fn open(
        layout: &DataLayout,
        options: TracesOptions,
    ) -> Result<(TraceStore, OpenReport), TracesError> {
        let dir = layout.signal_dir(Signal::Traces);
        std::fs::create_dir_all(&dir)
            .map_err(|err| TracesError::Storage(format!("{}: {err}", dir.display())))?;
        let partitions_dir = DayPartitionDir::new(Signal::Traces, dir.clone());
        let mut days = BTreeMap::new();
        let mut indexed_through: BTreeMap<Day, u64> = BTreeMap::new();
        for partition in partitions_dir
            .partitions()
            .map_err(|err| TracesError::Storage(format!("{}: {err}", dir.display())))?
        {
            let path = partitions_dir.partition_path(partition.day, "");
            if !path.join("meta.json").exists() {
                continue;
            }
            let index = Arc::new(DayIndex::open(&path).map_err(TracesError::Storage)?);
            indexed_through.insert(
                partition.day,
                index.indexed_through().map_err(TracesError::Storage)?,
            );
            days.insert(partition.day, index);
        }
        let mut report = OpenReport::default();
        let mut head = Head::default();
        let mut record_error = None;
        let (wal, wal_report) = Wal::open(
            &layout.wal_dir(Signal::Traces),
            options.wal.clone(),
            |lsn, payload| {
                let result = record::decode_record(payload).map(|docs| {
                    for doc in docs {
                        let day = day_of_ns(doc.start_ns);
                        if indexed_through.get(&day).is_some_and(|&through| lsn < through) {
                            report.skipped_indexed_spans += 1;
                            continue;
                        }
                        head.bytes += doc.payload.len();
                        head.spans.push(Arc::new(doc));
                        report.replayed_spans += 1;
                    }
                });
                if let Err(err) = &result {
                    record_error = Some(err.clone());
                }
                result
            },
        )
        .map_err(|err| match record_error.take() {
            Some(message) => TracesError::Record(message),
            None => TracesError::Wal(err),
        })?;
        report.replayed_records = wal_report.records;
        report.wal_corruptions = wal_report.corruptions.len();
        let store = TraceStore {
            options,
            partitions_dir,
            wal,
            head: RwLock::new(head),
            days: Mutex::new(days),
            apply_gate: Arc::new(tokio::sync::RwLock::new(())),
            flush_lock: Mutex::new(()),
            pressure: OnceLock::new(),
            flush_wanted: tokio::sync::Notify::new(),
        };
        Ok((store, report))
    }

    /// Makes appends answer "disk full" while the data directory is over its budget.
    pub fn set_disk_pressure(&self, pressure: Arc<DiskPressure>) {
        let _ = self.pressure.set(pressure);
    }

    /// The store's settings.
    pub fn options(&self) -> &TracesOptions {
        &self.options
    }

    /// Appends spans at `now`; spans outside the retention or too far in the future are
    /// refused (reported in the outcome) and the others stored. Returns once they are durable.
    pub async fn append(&self, docs: Vec<SpanDoc>, now: TimestampMs) -> Result<AppendOutcome, TracesError> {
        if self
            .pressure
            .get()
            .is_some_and(|pressure| pressure.is_over_budget())
        {
            return Err(TracesError::DiskFull);
        }
        let backlog = self
            .head
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .bytes;
        if backlog >= self.options.head_flush_bytes.saturating_mul(2) {
            self.flush_wanted.notify_one();
            return Err(TracesError::Backlog(backlog));
        }
        let now_ns = (now.0.max(0) as u64).saturating_mul(NS_PER_MS);
        let oldest_ns = now_ns.saturating_sub(self.options.retention.as_nanos() as u64);
        let newest_ns = now_ns.saturating_add(self.options.future_tolerance.as_nanos() as u64);
        let mut outcome = AppendOutcome::default();
        let mut accepted = Vec::with_capacity(docs.len());
        for doc in docs {
            if doc.start_ns < oldest_ns {
                outcome.refused.push(format!(
                    "span {} of trace {} starts at {}, before the retention of {} s",
                    record::hex(&doc.span_id),
                    record::hex(&doc.trace_id),
                    doc.start_ns,
                    self.options.retention.as_secs()
                ));
            } else if doc.start_ns > newest_ns {
                outcome.refused.push(format!(
                    "span {} of trace {} starts at {}, more than {} s in the future",
                    record::hex(&doc.span_id),
                    record::hex(&doc.trace_id),
                    doc.start_ns,
                    self.options.future_tolerance.as_secs()
                ));
            } else {
                accepted.push(doc);
            }
        }
        let metrics = self_metrics();
        metrics.refused.inc_by(outcome.refused.len() as u64);
        if accepted.is_empty() {
            return Ok(outcome);
        }
        let _permit = Arc::clone(&self.apply_gate).read_owned().await;
        let payload = record::encode_record(&accepted);
        let reservation = self.wal.reserve(payload.len()).await?;
        let pending = {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            let pending = self.wal.append_reserved(reservation, payload)?;
            for doc in accepted {
                outcome.accepted += 1;
                head.bytes += doc.payload.len();
                head.spans.push(Arc::new(doc));
            }
            if head.bytes >= self.options.head_flush_bytes {
                self.flush_wanted.notify_one();
            }
            pending
        };
        pending.durable().await?;
        metrics.spans.inc_by(outcome.accepted);
        Ok(outcome)
    }

    /// Resolves when an append has grown the head past `head_flush_bytes`.
    pub async fn flush_requested(&self) {
        self.flush_wanted.notified().await;
    }

    /// Whether the head has grown past the size that asks for a flush.
    pub fn wants_flush(&self) -> bool {
        self.head
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .bytes
            >= self.options.head_flush_bytes
    }

    /// The first, non-blocking half of a flush: rotates the log at a point where the head
    /// holds every earlier record.
    pub async fn begin_flush(&self) -> Result<Lsn, TracesError> {
        let _exclusive = self.apply_gate.write().await;
        Ok(self.wal.rotate().await?)
    }

    /// Writes the head to the day indexes and truncates the log (see the module docs).
    /// Blocking: run it off the async threads, after [`TraceStore::begin_flush`].
    pub fn finish_flush(&self, rotated_at: Lsn) -> Result<(), TracesError> {
        let _flushing = self
            .flush_lock
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let flushing = {
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            let mut spans = std::mem::take(&mut head.spans);
            head.bytes = 0;
            // A failed earlier flush left its spans in `flushing`: write them again.
            if !head.flushing.is_empty() {
                let mut previous: Vec<Arc<SpanDoc>> = head.flushing.iter().cloned().collect();
                previous.append(&mut spans);
                spans = previous;
            }
            head.flushing = Arc::new(spans);
            Arc::clone(&head.flushing)
        };
        let mut by_day: BTreeMap<Day, Vec<&SpanDoc>> = BTreeMap::new();
        for doc in flushing.iter() {
            by_day.entry(day_of_ns(doc.start_ns)).or_default().push(doc);
        }
        // Each trace's spans together: a trace is read from few doc-store blocks, and its
        // spans (same resources, same attribute names) compress well together.
        for docs in by_day.values_mut() {
            docs.sort_by_key(|doc| (doc.trace_id, doc.start_ns));
        }
        let today = Day::containing(TimestampMs::now());
        let mut written = Vec::with_capacity(by_day.len());
        for (day, docs) in &by_day {
            let index = self
                .day_index(*day, true)?
                .ok_or_else(|| TracesError::Storage(format!("the index of {day} could not be created")))?;
            index
                .add_and_commit(docs, rotated_at)
                .map_err(TracesError::Storage)?;
            if day.0 < today.0 - 1 {
                index.close_writer();
            }
            written.push(index);
        }
        {
            // Searchers see the spans in the index exactly when the head stops holding them.
            let mut head = self.head.write().unwrap_or_else(|poison| poison.into_inner());
            for index in &written {
                index.reload().map_err(TracesError::Storage)?;
            }
            head.flushing = Arc::new(Vec::new());
        }
        drop(flushing);
        self.wal.remove_segments_before(rotated_at)?;
        self.close_idle_writers(today);
        self_metrics().flushes.inc();
        Ok(())
    }

    /// Both halves of a flush; the second blocks the calling thread.
    pub async fn flush(&self) -> Result<(), TracesError> {
        let rotated_at = self.begin_flush().await?;
        self.finish_flush(rotated_at)
    }

    /// Closes the write-ahead log and the index writers (after a final flush).
    pub fn close_wal(&self) {
        let days: Vec<Arc<DayIndex>> = self
            .days
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .values()
            .cloned()
            .collect();
        for day in days {
            day.close_writer();
        }
        self.wal.close();
    }

    fn close_idle_writers(&self, today: Day) {
        let idle: Vec<Arc<DayIndex>> = self
            .days
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .filter(|(day, index)| day.0 < today.0 - 1 && index.is_writing())
            .map(|(_, index)| Arc::clone(index))
            .collect();
        for index in idle {
            index.close_writer();
        }
    }

    fn day_index(&self, day: Day, create: bool) -> Result<Option<Arc<DayIndex>>, TracesError> {
        let mut days = self.days.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(index) = days.get(&day) {
            return Ok(Some(Arc::clone(index)));
        }
        if !create {
            return Ok(None);
        }
        let path = self.partitions_dir.partition_path(day, "");
        let index = Arc::new(DayIndex::open(&path).map_err(TracesError::Storage)?);
        days.insert(day, Arc::clone(&index));
        Ok(Some(index))
    }

    /// The day indexes overlapping `[start_ns, end_ns)` with a searcher each, and the head's
    /// spans, taken together under the head lock (never a span in both or neither).
    fn snapshot(&self, start_ns: u64, end_ns: u64) -> Snapshot {
        let head = self.head.read().unwrap_or_else(|poison| poison.into_inner());
        let first = day_of_ns(start_ns);
        let last = day_of_ns(end_ns.saturating_sub(1).max(start_ns));
        let indexes: Vec<(Arc<DayIndex>, tantivy::Searcher)> = self
            .days
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .range(first..=last)
            .rev()
            .map(|(_, index)| (Arc::clone(index), index.searcher()))
            .collect();
        let spans = head
            .flushing
            .iter()
            .chain(head.spans.iter())
            .filter(|doc| doc.start_ns >= start_ns && doc.start_ns < end_ns)
            .cloned()
            .collect();
        (indexes, spans)
    }

    /// Every span of a trace whose spans start in `[start_ns, end_ns)` (the whole retention
    /// with `0, u64::MAX`), sorted by start; a span stored twice (an export retried) once.
    /// Blocking: run it off the async threads.
    pub fn trace(
        &self,
        trace_id: &[u8; 16],
        start_ns: u64,
        end_ns: u64,
    ) -> Result<Vec<SpanDoc>, TracesError> {
        let (indexes, head) = self.snapshot(start_ns, end_ns);
        let mut docs: Vec<SpanDoc> = head
            .iter()
            .filter(|doc| doc.trace_id == *trace_id)
            .map(|doc| SpanDoc::clone(doc))
            .collect();
        for (index, searcher) in &indexes {
            docs.extend(
                index
                    .trace(searcher, trace_id)
                    .map_err(TracesError::Storage)?
                    .into_iter()
                    .filter(|doc| doc.start_ns >= start_ns && doc.start_ns < end_ns),
            );
        }
        docs.sort_by_key(|doc| (doc.start_ns, doc.span_id));
        docs.dedup_by(|a, b| a.span_id == b.span_id && a.payload == b.payload);
        Ok(docs)
    }

    /// Traces with a span matching every condition of `query`, the most recent first (by
    /// their latest matching span), at most `max` of them. Blocking.
    pub fn candidates(&self, query: &CandidateQuery, max: usize) -> Result<Vec<Candidate>, TracesError> {
        if query.start_ns >= query.end_ns {
            return Ok(Vec::new());
        }
        let (indexes, head) = self.snapshot(query.start_ns, query.end_ns);
        let mut latest: HashMap<[u8; 16], u64> = HashMap::new();
        for doc in &head {
            let (values, keys) = match doc.resource_spans() {
                Ok(resource_spans) => record::attribute_terms(&resource_spans),
                Err(_) => continue,
            };
            if query
                .conditions
                .iter()
                .all(|condition| condition.matches(doc, &values, &keys))
            {
                let slot = latest.entry(doc.trace_id).or_insert(0);
                *slot = (*slot).max(doc.start_ns);
            }
        }
        let clauses: Vec<Clause> = query
            .conditions
            .iter()
            .filter_map(SpanCondition::clause)
            .collect();
        for (index, searcher) in &indexes {
            let hits: Vec<Hit> = index
                .search(
                    searcher,
                    &DayQuery {
                        start_ns: query.start_ns.min(i64::MAX as u64) as i64,
                        end_ns: query.end_ns.min(i64::MAX as u64) as i64,
                        clauses: clauses.clone(),
                    },
                )
                .map_err(TracesError::Storage)?;
            for hit in hits {
                let slot = latest.entry(hit.trace_id).or_insert(0);
                *slot = (*slot).max(hit.start_ns.max(0) as u64);
            }
        }
        let mut candidates: Vec<Candidate> = latest
            .into_iter()
            .map(|(trace_id, latest_start_ns)| Candidate {
                trace_id,
                latest_start_ns,
            })
            .collect();
        candidates.sort_by(|a, b| {
            b.latest_start_ns
                .cmp(&a.latest_start_ns)
                .then(a.trace_id.cmp(&b.trace_id))
        });
        candidates.truncate(max);
        Ok(candidates)
    }

    /// The spans matching every condition of `query`, at most `max` of them (and whether
    /// more matched). Blocking.
    pub fn matching_spans(
        &self,
        query: &CandidateQuery,
        max: usize,
    ) -> Result<(Vec<SpanDoc>, bool), TracesError> {
        if query.start_ns >= query.end_ns {
            return Ok((Vec::new(), false));
        }
        let (indexes, head) = self.snapshot(query.start_ns, query.end_ns);
        let mut docs: Vec<SpanDoc> = Vec::new();
        for doc in &head {
            let (values, keys) = match doc.resource_spans() {
                Ok(resource_spans) => record::attribute_terms(&resource_spans),
                Err(_) => continue,
            };
            if query
                .conditions
                .iter()
                .all(|condition| condition.matches(doc, &values, &keys))
            {
                docs.push(SpanDoc::clone(doc));
            }
        }
        let clauses: Vec<Clause> = query
            .conditions
            .iter()
            .filter_map(SpanCondition::clause)
            .collect();
        for (index, searcher) in &indexes {
            if docs.len() > max {
                break;
            }
            let day_query = DayQuery {
                start_ns: query.start_ns.min(i64::MAX as u64) as i64,
                end_ns: query.end_ns.min(i64::MAX as u64) as i64,
                clauses: clauses.clone(),
            };
            docs.extend(
                index
                    .search_docs(searcher, &day_query, max + 1 - docs.len())
                    .map_err(TracesError::Storage)?,
            );
        }
        let partial = docs.len() > max;
        docs.truncate(max);
        Ok((docs, partial))
    }

    /// Attribute names of `scope` seen on spans starting in `[start_ns, end_ns)`, sorted, at
    /// most `limit`. Blocking.
    pub fn attribute_names(
        &self,
        scope: AttributeScope,
        start_ns: u64,
        end_ns: u64,
        limit: usize,
    ) -> Result<Vec<String>, TracesError> {
        let prefix = record::key_term(scope.term_scope(), "");
        let (indexes, head) = self.snapshot(start_ns, end_ns);
        let mut names: Vec<String> = Vec::new();
        for (index, searcher) in &indexes {
            for term in index
                .terms(searcher, "keys", &prefix, limit)
                .map_err(TracesError::Storage)?
            {
                if let Some(name) = term.strip_prefix(&prefix) {
                    names.push(name.to_owned());
                }
            }
        }
        for doc in &head {
            if let Ok(resource_spans) = doc.resource_spans() {
                let (_, keys) = record::attribute_terms(&resource_spans);
                names.extend(
                    keys.iter()
                        .filter_map(|key| key.strip_prefix(&prefix))
                        .map(str::to_owned),
                );
            }
        }
        names.sort();
        names.dedup();
        names.truncate(limit);
        Ok(names)
    }

    /// Values of attribute `name` of `scope` (either scope with `None`) seen on spans starting
    /// in `[start_ns, end_ns)`, with their types, sorted, at most `limit`. Blocking.
    pub fn attribute_values(
        &self,
        scope: Option<AttributeScope>,
        name: &str,
        start_ns: u64,
        end_ns: u64,
        limit: usize,
    ) -> Result<Vec<AttrValue>, TracesError> {
        let (indexes, head) = self.snapshot(start_ns, end_ns);
        let mut typed: Vec<String> = Vec::new();
        for term_scope in AttributeScope::both(scope) {
            let prefix = record::value_term_prefix(term_scope, name);
            for (index, searcher) in &indexes {
                for term in index
                    .terms(searcher, "attrs", &prefix, limit)
                    .map_err(TracesError::Storage)?
                {
                    if let Some(value) = term.strip_prefix(&prefix) {
                        typed.push(value.to_owned());
                    }
                }
            }
            for doc in &head {
                if let Ok(resource_spans) = doc.resource_spans() {
                    let (values, _) = record::attribute_terms(&resource_spans);
                    typed.extend(
                        values
                            .iter()
                            .filter_map(|value| value.strip_prefix(&prefix))
                            .map(str::to_owned),
                    );
                }
            }
        }
        typed.sort();
        typed.dedup();
        typed.truncate(limit);
        Ok(typed
            .iter()
            .filter_map(|value| record::parse_value(value))
            .collect())
    }

    /// Span names seen on spans starting in `[start_ns, end_ns)`, sorted, at most `limit`.
    /// Blocking.
    pub fn span_names(&self, start_ns: u64, end_ns: u64, limit: usize) -> Result<Vec<String>, TracesError> {
        let (indexes, head) = self.snapshot(start_ns, end_ns);
        let mut names: Vec<String> = head.iter().map(|doc| doc.name.clone()).collect();
        for (index, searcher) in &indexes {
            names.extend(
                index
                    .terms(searcher, "name", "", limit)
                    .map_err(TracesError::Storage)?,
            );
        }
        names.sort();
        names.dedup();
        names.truncate(limit);
        Ok(names)
    }

    /// How many spans wait in the head.
    pub fn head_spans(&self) -> usize {
        let head = self.head.read().unwrap_or_else(|poison| poison.into_inner());
        head.spans.len() + head.flushing.len()
    }
}

impl PartitionSet for TraceStore {
    fn signal(&self) -> Signal {
        Signal::Traces
    }

    fn partitions(&self) -> std::io::Result<Vec<Partition>> {
        self.partitions_dir.partitions()
    }

    fn drop_partition(&self, day: Day) -> std::io::Result<u64> {
        // Under the days lock, so that a flush cannot reopen the index in between; searches
        // holding the index keep its files until they finish.
        let mut days = self.days.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(index) = days.remove(&day) {
            index.close_writer();
        }
        self.partitions_dir.drop_partition(day)
    }
}

struct SelfMetrics {
    spans: prometheus::IntCounter,
    refused: prometheus::IntCounter,
    flushes: prometheus::IntCounter,
}

fn self_metrics() -> &'static SelfMetrics {
    static METRICS: OnceLock<SelfMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = obs_core::selfmetrics::registry();
        SelfMetrics {
            spans: registry.int_counter(
                "obs_traces_spans_appended_total",
                "Spans stored (acknowledged and durable).",
            ),
            refused: registry.int_counter(
                "obs_traces_spans_refused_total",
                "Spans refused at ingest (the rest of their request is kept).",
            ),
            flushes: registry.int_counter(
                "obs_traces_flushes_total",
                "Flushes of the span head into the day indexes.",
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::Span;

    fn doc(trace: u8, span: u8, start_ns: u64, run_id: &str) -> SpanDoc {
        let resource = Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("agixt".into())),
                }),
                ..KeyValue::default()
            }],
            ..Resource::default()
        };
        let span = Span {
            trace_id: vec![trace; 16],
            span_id: vec![span; 8],
            name: format!("span-{span}"),
            start_time_unix_nano: start_ns,
            end_time_unix_nano: start_ns + 1_000,
            attributes: vec![KeyValue {
                key: "run_id".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(run_id.into())),
                }),
                ..KeyValue::default()
            }],
            ..Span::default()
        };
        SpanDoc::build(Some(&resource), "", None, "", &span)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn spans_are_found_from_the_head_the_index_and_after_replay_once() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        let rt = runtime();
        let now = TimestampMs::now();
        let now_ns = now.0 as u64 * NS_PER_MS;
        let (store, _) = TraceStore::open(&layout, TracesOptions::default()).unwrap();
        let run = |conditions: Vec<SpanCondition>| {
            store
                .candidates(
                    &CandidateQuery {
                        start_ns: 0,
                        end_ns: u64::MAX,
                        conditions,
                    },
                    10,
                )
                .unwrap()
                .into_iter()
                .map(|candidate| candidate.trace_id[0])
                .collect::<Vec<u8>>()
        };
        let outcome = rt
            .block_on(store.append(
                vec![doc(1, 1, now_ns - 1_000_000, "r-1"), doc(2, 1, now_ns, "r-2")],
                now,
            ))
            .unwrap();
        assert_eq!(outcome.accepted, 2);
        // From the head.
        assert_eq!(store.trace(&[1; 16], 0, u64::MAX).unwrap().len(), 1);
        let by_run = SpanCondition::Attribute(None, "run_id".into(), AttrValue::String("r-2".into()));
        assert_eq!(run(vec![by_run.clone()]), vec![2]);
        assert_eq!(run(Vec::new()), vec![2, 1], "newest first");
        // From the index after a flush, and the second half of trace 1 from the head.
        rt.block_on(store.flush()).unwrap();
        assert_eq!(store.head_spans(), 0);
        rt.block_on(store.append(vec![doc(1, 2, now_ns - 500_000, "r-1")], now))
            .unwrap();
        assert_eq!(store.trace(&[1; 16], 0, u64::MAX).unwrap().len(), 2);
        assert_eq!(run(vec![by_run]), vec![2]);
        assert_eq!(
            run(vec![SpanCondition::Attribute(
                Some(AttributeScope::Resource),
                "service.name".into(),
                AttrValue::String("agixt".into())
            )]),
            vec![2, 1]
        );
        assert_eq!(run(vec![SpanCondition::Name("span-9".into())]), Vec::<u8>::new());
        assert_eq!(
            store
                .attribute_values(Some(AttributeScope::Span), "run_id", 0, u64::MAX, 10)
                .unwrap(),
            vec![AttrValue::String("r-1".into()), AttrValue::String("r-2".into())]
        );
        // A restart replays the log (the unflushed span) without indexing the flushed twice.
        store.close_wal();
        drop(store);
        let (store, report) = TraceStore::open(&layout, TracesOptions::default()).unwrap();
        assert_eq!(report.replayed_spans, 1);
        assert_eq!(store.trace(&[1; 16], 0, u64::MAX).unwrap().len(), 2);
        assert_eq!(store.trace(&[2; 16], 0, u64::MAX).unwrap().len(), 1);
        store.close_wal();
    }

    #[test]
    fn old_and_future_spans_are_refused_and_a_backlog_pushes_back() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        let rt = runtime();
        let now = TimestampMs::now();
        let now_ns = now.0 as u64 * NS_PER_MS;
        let options = TracesOptions {
            head_flush_bytes: 100,
            ..TracesOptions::default()
        };
        let (store, _) = TraceStore::open(&layout, options).unwrap();
        let week_ns = 8 * 86_400 * 1_000_000_000;
        let outcome = rt
            .block_on(store.append(
                vec![
                    doc(1, 1, now_ns - week_ns, "old"),
                    doc(1, 2, now_ns + 3_600_000_000_000, "future"),
                    doc(1, 3, now_ns, "now"),
                ],
                now,
            ))
            .unwrap();
        assert_eq!(outcome.accepted, 1);
        assert_eq!(outcome.refused.len(), 2);
        assert!(
            outcome.refused[0].contains("before the retention"),
            "{:?}",
            outcome.refused
        );
        assert!(
            outcome.refused[1].contains("in the future"),
            "{:?}",
            outcome.refused
        );
        assert!(store.wants_flush());
        // Twice the flush size waits in memory: the next export is refused as overload.
        rt.block_on(store.append(vec![doc(2, 1, now_ns, "x")], now))
            .unwrap();
        let refused = rt.block_on(store.append(vec![doc(3, 1, now_ns, "y")], now));
        assert!(matches!(refused, Err(TracesError::Backlog(_))), "{refused:?}");
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::Overloaded);
        rt.block_on(store.flush()).unwrap();
        rt.block_on(store.append(vec![doc(3, 1, now_ns, "y")], now))
            .unwrap();
        store.close_wal();
    }
}
