//! The LogQL engine of obs-appliance: queries parsed by `obs-logql`, evaluated over a
//! [`LogSource`] with the semantics of Loki 3 (`pkg/logql`), so that Grafana's Loki data
//! source gets the answers Loki would give.
//!
//! - [`Engine::query_range`] serves `/loki/api/v1/query_range`: a log query returns the first
//!   `limit` entries of `[start, end)` in the requested [`Direction`], grouped per stream
//!   ([`QueryValue::Streams`]); a metric query is evaluated at `start`, `start + step`, …, up to
//!   `end` ([`QueryValue::Matrix`]).
//! - [`Engine::query_instant`] serves `/loki/api/v1/query`: a metric query at one time
//!   ([`QueryValue::Vector`] or [`QueryValue::Scalar`]); a log query reads the look-back period
//!   before that time, as Loki did before it refused them.
//!
//! Every pipeline stage runs as Loki runs it, labels kept in Loki's three categories (stream,
//! structured metadata, parsed) so that the HTTP layer can answer with or without
//! `categorize-labels`; parser and conversion failures set `__error__` and
//! `__error_details__`. A range aggregation reads its log range once, for the whole query,
//! keeping only `(timestamp, value)` per series, and slides Loki's windows — `(t - range, t]` —
//! over them. The source is asked for only what can match: the stream selector, the time span,
//! substrings every line must contain, and correlation keys when that is sound (see
//! [`SourceQuery`]). The engine still applies every filter itself.
//!
//! This crate knows nothing about HTTP, JSON or how logs are stored.
//!
//! ```
//! use std::ops::ControlFlow;
//! use std::sync::Arc;
//! use obs_core::series::Labels;
//! use obs_logql_engine::*;
//!
//! struct OneLine(Arc<Labels>);
//! impl LogSource for OneLine {
//!     fn select(
//!         &self,
//!         query: &SourceQuery<'_>,
//!         visit: &mut dyn FnMut(SourceEntry) -> ControlFlow<()>,
//!     ) -> Result<(), SourceError> {
//!         let timestamp_ns = 1_000_000_000;
//!         if (query.matches_stream)(&self.0) && query.start_ns <= timestamp_ns && timestamp_ns < query.end_ns {
//!             let line = r#"{"level":"error","msg":"boom"}"#.to_owned();
//!             let _ = visit(SourceEntry { stream: self.0.clone(), timestamp_ns, line, metadata: vec![] });
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let source = OneLine(Arc::new(Labels::from_pairs([("app", "api")]).unwrap()));
//! let engine = Engine::new(EngineOptions::default());
//!
//! let health = obs_logql::parse("vector(1)+vector(1)").unwrap();
//! let params = InstantParams { time_ns: 4_000_000_000, direction: Direction::Backward, limit: 100 };
//! let QueryValue::Vector(samples) = engine.query_instant(&source, &health, &params)? else { panic!() };
//! assert_eq!(samples[0].value, 2.0);
//!
//! let logs = obs_logql::parse(r#"{app="api"} | json | level="error" | line_format "{{.msg}}""#).unwrap();
//! let params = RangeParams {
//!     start_ns: 0, end_ns: 2_000_000_000, step_ns: 1_000_000_000, interval_ns: None,
//!     direction: Direction::Backward, limit: 100,
//! };
//! let QueryValue::Streams(streams) = engine.query_range(&source, &logs, &params)? else { panic!() };
//! assert_eq!(streams[0].entries[0].line, "boom");
//! let parsed = &streams[0].entries[0].parsed;
//! assert_eq!(parsed[0], ("level".to_owned(), "error".to_owned()));
//! # Ok::<(), EngineError>(())
//! ```

mod eval;
mod filters;
mod goconv;
mod json;
mod labels;
mod logfmt;
mod logs;
mod pipeline;
mod pushdown;
mod template;

use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use obs_core::error::{Classify, ErrorKind};
use obs_core::series::Labels;

/// The order in which entries are read and returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Oldest first.
    Forward,
    /// Newest first (Loki's default).
    #[default]
    Backward,
}

/// Where the engine reads entries. Implemented over the real log store elsewhere; tests
/// implement it in memory.
pub trait LogSource: Send + Sync {
    /// Delivers every entry of the streams accepted by `query.matches_stream`, with
    /// `query.start_ns <= ts < query.end_ns`, in `query.direction` order across all streams
    /// (ties in arrival order), that contains every string of `query.line_contains`
    /// (case-sensitive substring) and carries every `(name, value)` of `query.keys` as a
    /// correlation key; stops when `visit` breaks.
    fn select(
        &self,
        query: &SourceQuery<'_>,
        visit: &mut dyn FnMut(SourceEntry) -> ControlFlow<()>,
    ) -> Result<(), SourceError>;
}

/// What the engine asks a [`LogSource`] for.
///
/// `line_contains` and `keys` only narrow what the source returns: the engine evaluates
/// every filter again, so a source may ignore them and stay correct. A source that uses
/// them must not drop an entry the query could match:
///
/// - `line_contains` holds substrings of `|=` filters that every matching line contains as
///   stored (filters before any stage that rewrites the line);
/// - `keys` holds `name="value"` label filters that every matching line satisfies, on names of
///   [`EngineOptions::indexed_keys`], pushed only when nothing but the stream labels, the
///   structured metadata and parameterless `json` / `logfmt` parsers can have set the label
///   before the filter. The source must read a key as Loki's pipeline does: the stream label
///   first, then structured metadata, then the first field of the line with that name. The
///   argument is in `pushdown.rs`, with its one gap: a label name a parser builds rather than
///   reads (a nested JSON object flattened into `run_id`, a key `run-id` sanitized to it) is
///   missed by a source that indexes only top-level fields under their own names.
pub struct SourceQuery<'a> {
    /// Whether a stream's labels match the stream selector.
    pub matches_stream: &'a (dyn Fn(&Labels) -> bool + Sync),
    /// First timestamp, inclusive, in nanoseconds.
    pub start_ns: i64,
    /// Last timestamp, exclusive, in nanoseconds.
    pub end_ns: i64,
    /// Substrings every returned line must contain.
    pub line_contains: Vec<String>,
    /// Correlation keys every returned entry must carry.
    pub keys: Vec<(String, String)>,
    /// The order of delivery.
    pub direction: Direction,
}

impl fmt::Debug for SourceQuery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceQuery")
            .field("start_ns", &self.start_ns)
            .field("end_ns", &self.end_ns)
            .field("line_contains", &self.line_contains)
            .field("keys", &self.keys)
            .field("direction", &self.direction)
            .finish_non_exhaustive()
    }
}

/// One entry read from a [`LogSource`].
#[derive(Debug, Clone, PartialEq)]
pub struct SourceEntry {
    /// The labels of the entry's stream.
    pub stream: Arc<Labels>,
    /// The entry's time, in nanoseconds since the epoch.
    pub timestamp_ns: i64,
    /// The log line.
    pub line: String,
    /// Its structured metadata, as stored. Names should be valid label names: metric queries
    /// return metadata as series labels, and a series that `obs_core`'s `Labels` refuses fails
    /// the query.
    pub metadata: Vec<(String, String)>,
}

/// A [`LogSource`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Limits of query evaluation.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Loki's `max_entries_limit_per_query`: a log query asking for more entries is an error
    /// (0: no limit).
    pub max_entries_limit: usize,
    /// Loki's `max_query_series`: a metric query returning more series is an error.
    pub max_series: usize,
    /// The most steps a range query may have (Loki refuses more than 11,000 points per series).
    pub max_points: usize,
    /// Correlation keys the source can filter on exactly (see [`SourceQuery`]).
    pub indexed_keys: Vec<String>,
    /// How long a query may run; checked between entries and between steps.
    pub timeout: Duration,
    /// Loki's `max_look_back_period`: how far back an instant log query reads.
    pub max_look_back: Duration,
    /// Loki's `align_queries_with_step`: move a metric range query's start and end down to a
    /// multiple of the step.
    pub align_queries_with_step: bool,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            max_entries_limit: 5000,
            max_series: 500,
            max_points: 11_000,
            indexed_keys: Vec::new(),
            timeout: Duration::from_secs(60),
            max_look_back: Duration::from_secs(30),
            align_queries_with_step: false,
        }
    }
}

/// The parameters of `/loki/api/v1/query_range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeParams {
    /// Start, inclusive, in nanoseconds.
    pub start_ns: i64,
    /// End in nanoseconds: exclusive for log queries, the last possible step for metric
    /// queries.
    pub end_ns: i64,
    /// The step of a metric query, in nanoseconds.
    pub step_ns: i64,
    /// Loki's `interval` for log queries: return only entries at least this far apart.
    pub interval_ns: Option<i64>,
    /// The order of entries of a log query.
    pub direction: Direction,
    /// The most entries a log query returns.
    pub limit: usize,
}

/// The parameters of `/loki/api/v1/query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstantParams {
    /// The evaluation time, in nanoseconds.
    pub time_ns: i64,
    /// The order of entries of a log query.
    pub direction: Direction,
    /// The most entries a log query returns.
    pub limit: usize,
}

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// Log entries, per stream (log queries).
    Streams(Vec<StreamResult>),
    /// Series of points, sorted by labels (metric range queries).
    Matrix(Vec<SeriesResult>),
    /// Samples at one time (metric instant queries).
    Vector(Vec<SampleResult>),
    /// A number (an instant query of a literal).
    Scalar {
        /// The evaluation time, in nanoseconds.
        timestamp_ns: i64,
        /// The value.
        value: f64,
    },
}

/// The entries of one stream.
///
/// Streams are sorted by their labels as Loki sorts them (the text of the label set); within a
/// stream, entries are in the query's direction.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamResult {
    /// The stream's own labels, minus any a stage dropped or replaced (Loki's stream
    /// category; what `stream` holds with `categorize-labels`).
    pub labels: Labels,
    /// The entries.
    pub entries: Vec<EntryResult>,
}

/// One log entry of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryResult {
    /// The entry's time, in nanoseconds.
    pub timestamp_ns: i64,
    /// The line after `line_format`, `decolorize` or `unpack`.
    pub line: String,
    /// Structured metadata as the pipeline left it (dropped names removed, a name clashing
    /// with a stream label suffixed `_extracted`), sorted by name.
    pub structured_metadata: Vec<(String, String)>,
    /// Labels added by parsers and `label_format`, with `__error__` and `__error_details__`,
    /// sorted by name. Values may be empty (`logfmt --keep-empty`, a JSON `null`).
    pub parsed: Vec<(String, String)>,
}

/// One series of a matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesResult {
    /// The series' labels.
    pub labels: Labels,
    /// `(timestamp in milliseconds, value)`, in time order.
    pub points: Vec<(i64, f64)>,
}

/// One sample of a vector.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleResult {
    /// The series' labels.
    pub labels: Labels,
    /// The evaluation time, in milliseconds.
    pub timestamp_ms: i64,
    /// The value.
    pub value: f64,
}

/// Why a query failed. [`Classify`] gives the HTTP status class Loki answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The query or its parameters are invalid, or its pipeline failed on the data (Loki's
    /// `pipeline error: ...`): 400.
    #[error("{0}")]
    BadQuery(String),
    /// A limit was exceeded (entries, series, points): 400, as in Loki.
    #[error("{0}")]
    LimitExceeded(String),
    /// The query ran longer than [`EngineOptions::timeout`].
    #[error("query timed out")]
    Timeout,
    /// The log source failed: 500.
    #[error("{0}")]
    Source(String),
}

impl Classify for EngineError {
    fn kind(&self) -> ErrorKind {
        match self {
            EngineError::BadQuery(_) | EngineError::LimitExceeded(_) => ErrorKind::BadInput,
            EngineError::Timeout => ErrorKind::Timeout,
            EngineError::Source(_) => ErrorKind::Internal,
        }
    }
}

impl From<SourceError> for EngineError {
    fn from(err: SourceError) -> EngineError {
        EngineError::Source(err.0)
    }
}

/// When a query must give up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    started: Instant,
    timeout: Duration,
}

impl Deadline {
    pub(crate) fn new(timeout: Duration) -> Deadline {
        Deadline {
            started: Instant::now(),
            timeout,
        }
    }

    pub(crate) fn check(&self) -> Result<(), EngineError> {
        if self.started.elapsed() > self.timeout {
            return Err(EngineError::Timeout);
        }
        Ok(())
    }
}

/// The LogQL engine.
#[derive(Debug, Clone)]
pub struct Engine {
    options: EngineOptions,
}

impl Engine {
    /// An engine with these limits.
    pub fn new(options: EngineOptions) -> Engine {
        Engine { options }
    }

    /// The engine's limits.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// `/loki/api/v1/query_range`. A log query returns the first `limit` entries of
    /// `start_ns <= ts < end_ns` in `direction` (Loki's end is exclusive for logs); a metric
    /// query is evaluated at `start_ns`, `start_ns + step_ns`, … up to `end_ns`.
    pub fn query_range(
        &self,
        source: &dyn LogSource,
        expr: &obs_logql::Expr,
        params: &RangeParams,
    ) -> Result<QueryValue, EngineError> {
        let deadline = Deadline::new(self.options.timeout);
        if params.end_ns < params.start_ns {
            return Err(EngineError::BadQuery(
                "end timestamp must not be before or equal to start time".to_owned(),
            ));
        }
        match expr {
            obs_logql::Expr::Log(log) => {
                self.check_entries_limit(params.limit)?;
                logs::query_logs(
                    source,
                    log,
                    &logs::LogWindow {
                        start_ns: params.start_ns,
                        end_ns: params.end_ns,
                        direction: params.direction,
                        limit: params.limit,
                        interval_ns: params.interval_ns.unwrap_or(0),
                    },
                    &self.options,
                    &deadline,
                )
            }
            obs_logql::Expr::Sample(sample) => {
                eval::query_range(source, sample, params, &self.options, &deadline)
            }
        }
    }

    /// `/loki/api/v1/query`: a metric query at `time_ns` (a vector, or a scalar for a literal);
    /// a log query returns up to `limit` entries of the look-back period before `time_ns`
    /// (`time - max_look_back <= ts < time`) in `direction`.
    pub fn query_instant(
        &self,
        source: &dyn LogSource,
        expr: &obs_logql::Expr,
        params: &InstantParams,
    ) -> Result<QueryValue, EngineError> {
        let deadline = Deadline::new(self.options.timeout);
        match expr {
            obs_logql::Expr::Log(log) => {
                self.check_entries_limit(params.limit)?;
                let look_back = i64::try_from(self.options.max_look_back.as_nanos()).unwrap_or(i64::MAX);
                logs::query_logs(
                    source,
                    log,
                    &logs::LogWindow {
                        start_ns: params.time_ns.saturating_sub(look_back),
                        end_ns: params.time_ns,
                        direction: params.direction,
                        limit: params.limit,
                        interval_ns: 0,
                    },
                    &self.options,
                    &deadline,
                )
            }
            obs_logql::Expr::Sample(sample) => {
                eval::query_instant(source, sample, params.time_ns, &self.options, &deadline)
            }
        }
    }

    fn check_entries_limit(&self, limit: usize) -> Result<(), EngineError> {
        let max = self.options.max_entries_limit;
        if max != 0 && limit > max {
            return Err(EngineError::LimitExceeded(format!(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
            )));
        }
        Ok(())
    }
}
