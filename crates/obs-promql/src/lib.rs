//! The PromQL engine of obs-appliance.
//!
//! Queries are parsed by the `promql-parser` crate and evaluated here, over the
//! [`MetricsQuerier`] storage trait, with the semantics of Prometheus 2.42 for float samples
//! (native histograms are out of scope):
//!
//! - a range query is the instant query evaluated at every step (`start`, `start + step`, …,
//!   up to `end`), its results gathered per series (Prometheus' definition);
//! - an instant vector selector takes, per series, the newest sample in
//!   `[t - lookback_delta, t]` (both ends included, as in 2.42), unless it is a stale marker;
//! - a range vector selector takes the samples in `[t - range, t]` (both ends included, as in
//!   2.42), skipping stale markers;
//! - `offset` and `@` shift the evaluation time of their selector or subquery;
//! - subqueries evaluate their inner expression at the multiples of their step inside their
//!   range, memoized across the outer steps.
//!
//! Each selector's series are fetched from storage once per query, for the whole time range
//! the query needs; the per-step work then reads memory only.
//!
//! ```
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use obs_promql::{Engine, EngineOptions, Value};
//! # struct Empty;
//! # impl obs_core::series::MetricsQuerier for Empty {
//! #     fn select(&self, _: &[obs_core::series::Matcher], _: i64, _: i64) -> Result<Vec<obs_core::series::SeriesSamples>, obs_core::series::StorageError> { Ok(vec![]) }
//! #     fn label_names(&self, _: &[obs_core::series::Matcher], _: i64, _: i64) -> Result<Vec<String>, obs_core::series::StorageError> { Ok(vec![]) }
//! #     fn label_values(&self, _: &str, _: &[obs_core::series::Matcher], _: i64, _: i64) -> Result<Vec<String>, obs_core::series::StorageError> { Ok(vec![]) }
//! #     fn metadata(&self, _: Option<&str>, _: Option<usize>) -> Vec<(String, Vec<obs_core::series::MetricMetadata>)> { vec![] }
//! # }
//! let engine = Engine::new(Arc::new(Empty), EngineOptions::default());
//! let value = engine.instant("1 + 1", 1_000)?;
//! assert!(matches!(value, Value::Scalar { t: 1_000, v } if v == 2.0));
//! # Ok(()) }
//! ```

mod eval;
mod functions;
pub mod json;
mod labelset;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use obs_core::error::{Classify, ErrorKind};
use obs_core::series::{Labels, MetricsQuerier, StorageError};

/// Limits and defaults of query evaluation.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus' `--query.lookback-delta`).
    pub lookback_delta_ms: i64,
    /// The most samples a query may hold in memory at once (`--query.max-samples`).
    pub max_samples: usize,
    /// How long a query may run (`--query.timeout`).
    pub timeout: Duration,
    /// The most points a range query may produce per series (`start`..`end` / `step`).
    pub max_points_per_series: i64,
    /// The step of a subquery without one (Prometheus' global evaluation interval).
    pub default_subquery_step_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            max_points_per_series: 11_000,
            default_subquery_step_ms: 60_000,
        }
    }
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series (without `__name__` once a function or operator dropped it).
    pub labels: Labels,
    /// Milliseconds.
    pub t: i64,
    /// The value.
    pub v: f64,
}

/// One series of a range vector or range query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The series.
    pub labels: Labels,
    /// `(milliseconds, value)`, sorted by time.
    pub points: Vec<(i64, f64)>,
}

/// A query result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number at a time.
    Scalar {
        /// Milliseconds.
        t: i64,
        /// The number.
        v: f64,
    },
    /// A string at a time.
    String {
        /// Milliseconds.
        t: i64,
        /// The string.
        v: String,
    },
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector (instant queries of a range selector) or a range query's result.
    Matrix(Vec<Series>),
}

/// Why a query failed. Each maps to Prometheus' `errorType` through [`Classify`].
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse, or its parameters are invalid (`bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (`execution`): many-to-one matching without `group_*`, duplicate
    /// label sets, invalid function arguments, …
    #[error("{0}")]
    Execution(String),
    /// The query would hold more samples than allowed (`execution`, HTTP 422).
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// The query ran longer than the timeout (`timeout`, HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// The client went away (`canceled`).
    #[error("query was canceled in {0}")]
    Canceled(&'static str),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Classify for QueryError {
    fn kind(&self) -> ErrorKind {
        match self {
            QueryError::BadData(_) => ErrorKind::BadInput,
            QueryError::Execution(_) | QueryError::TooManySamples => ErrorKind::Execution,
            QueryError::Timeout(_) => ErrorKind::Timeout,
            QueryError::Canceled(_) => ErrorKind::Canceled,
            QueryError::Storage(err) => err.kind(),
        }
    }

    fn client_message(&self) -> String {
        self.to_string()
    }
}

/// The query engine: cheap to clone, shareable between threads.
#[derive(Clone)]
pub struct Engine {
    querier: Arc<dyn MetricsQuerier>,
    options: EngineOptions,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine reading from `querier`.
    pub fn new(querier: Arc<dyn MetricsQuerier>, options: EngineOptions) -> Engine {
        Engine { querier, options }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `query` at `time_ms`.
    pub fn instant(&self, query: &str, time_ms: i64) -> Result<Value, QueryError> {
        self.instant_with(query, time_ms, &QueryControl::default())
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms`: a matrix (or a scalar
    /// query's values as one series without labels).
    pub fn range(&self, query: &str, start_ms: i64, end_ms: i64, step_ms: i64) -> Result<Value, QueryError> {
        self.range_with(query, start_ms, end_ms, step_ms, &QueryControl::default())
    }

    /// [`Engine::instant`] with cancellation and per-query overrides.
    pub fn instant_with(
        &self,
        query: &str,
        time_ms: i64,
        control: &QueryControl,
    ) -> Result<Value, QueryError> {
        let expr = parse(query)?;
        eval::Evaluator::new(self, control, time_ms, time_ms, 0).run_instant(&expr)
    }

    /// [`Engine::range`] with cancellation and per-query overrides.
    pub fn range_with(
        &self,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        control: &QueryControl,
    ) -> Result<Value, QueryError> {
        if step_ms <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .to_owned(),
            ));
        }
        if end_ms < start_ms {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".to_owned(),
            ));
        }
        if (end_ms - start_ms) / step_ms > self.options.max_points_per_series {
            return Err(QueryError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                    .to_owned(),
            ));
        }
        let expr = parse(query)?;
        eval::Evaluator::new(self, control, start_ms, end_ms, step_ms).run_range(&expr)
    }
}

/// Per-query controls: cancellation and overrides of the engine's defaults.
#[derive(Debug, Default, Clone)]
pub struct QueryControl {
    /// Set when the client went away; the query stops at its next check.
    pub canceled: Option<Arc<AtomicBool>>,
    /// A per-query lookback delta (`lookback_delta` parameter).
    pub lookback_delta_ms: Option<i64>,
    /// A per-query timeout shorter than the engine's (`timeout` parameter).
    pub timeout: Option<Duration>,
}

/// Parses a query, mapping the parser's error to Prometheus' `bad_data` message.
pub fn parse(query: &str) -> Result<promql_parser::parser::Expr, QueryError> {
    refuse_unitless_durations(query)?;
    let query = rename_functions(query, "double_exponential_smoothing", "holt_winters").map_err(|()| {
        QueryError::BadData("unknown function with name 'double_exponential_smoothing'".to_owned())
    })?;
    // The parser panics on a few inputs (a duration that overflows, e.g. `x[1e30]`): turn
    // that into a bad_data answer rather than a failed request.
    let parsed = std::panic::catch_unwind(|| promql_parser::parser::parse(&query)).map_err(|_| {
        QueryError::BadData("parse error: invalid duration or number in the query".to_owned())
    })?;
    let expr = parsed.map_err(QueryError::BadData)?;
    functions::validate(&expr)?;
    Ok(expr)
}

/// The matchers of a series selector (a `match[]` parameter such as `up{job="node"}`), or a
/// `bad_data` error when the text is not a plain series selector.
pub fn selector_matchers(text: &str) -> Result<Vec<obs_core::series::Matcher>, QueryError> {
    match parse(text)? {
        promql_parser::parser::Expr::VectorSelector(selector) => eval::convert_matchers(&selector),
        _ => Err(QueryError::BadData(format!(
            "{text:?} is not a series selector such as up{{job=\"node\"}}"
        ))),
    }
}

/// The query reformatted as Prometheus' `format_query` does.
pub fn format_query(query: &str) -> Result<String, QueryError> {
    let formatted = parse(query)?.prettify();
    // Back to the name Prometheus 2.42 knows.
    Ok(rename_functions(&formatted, "holt_winters", "double_exponential_smoothing").unwrap_or(formatted))
}

/// Prometheus 2.42 requires a unit on every duration (`[5m]`, `offset 30s`); promql-parser
/// also takes bare numbers of seconds, as Prometheus 3 does. Refuses those, outside string
/// literals, as 2.42 does.
fn refuse_unitless_durations(query: &str) -> Result<(), QueryError> {
    let bare_number = |text: &str| {
        let text = text.trim().trim_start_matches(['-', '+']);
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    };
    let refuse = |text: &str| {
        Err(QueryError::BadData(format!(
            "parse error: bad duration syntax: {:?}: durations need a unit (ms, s, m, h, d, w, y)",
            text.trim()
        )))
    };
    let bytes = query.as_bytes();
    let mut quote: Option<u8> = None;
    let mut index = 0;
    while index < bytes.len() {
        let b = bytes[index];
        match quote {
            Some(q) => {
                if b == b'\\' && q != b'`' {
                    index += 2;
                    continue;
                }
                if b == q {
                    quote = None;
                }
            }
            None if matches!(b, b'"' | b'\'' | b'`') => quote = Some(b),
            None if b == b'[' => {
                if let Some(end) = query[index + 1..].find(']') {
                    let inside = &query[index + 1..index + 1 + end];
                    if let Some(part) = inside.split(':').find(|part| bare_number(part)) {
                        return refuse(part);
                    }
                }
            }
            None if query[index..].starts_with("offset")
                && (index == 0 || !bytes[index - 1].is_ascii_alphanumeric() && bytes[index - 1] != b'_') =>
            {
                let rest = &query[index + "offset".len()..];
                if rest.starts_with(|c: char| c.is_whitespace()) {
                    let token: String = rest
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
                        .collect();
                    if bare_number(&token) {
                        return refuse(&token);
                    }
                }
            }
            None => {}
        }
        index += 1;
    }
    Ok(())
}

/// Prometheus 2.42 calls `double_exponential_smoothing` `holt_winters`; the parser knows only
/// the new name. Rewrites `old` identifiers (outside string literals) to `new`, and refuses a
/// query that uses `new` itself (`Err(())`): 2.42 does not know it.
fn rename_functions(query: &str, new: &str, old: &str) -> Result<String, ()> {
    let bytes = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut index = 0;
    let mut quote: Option<u8> = None;
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    while index < bytes.len() {
        let b = bytes[index];
        if let Some(q) = quote {
            if b == b'\\' && q != b'`' && index + 1 < bytes.len() {
                // The backslash and the whole character it escapes.
                let escaped_len = query[index + 1..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&query[index..index + 1 + escaped_len]);
                index += 1 + escaped_len;
                continue;
            }
            if b == q {
                quote = None;
            }
        } else if matches!(b, b'"' | b'\'' | b'`') {
            quote = Some(b);
        } else if is_ident(b) && (index == 0 || !is_ident(bytes[index - 1])) {
            let end = index + bytes[index..].iter().take_while(|b| is_ident(**b)).count();
            let word = &query[index..end];
            if word == new {
                return Err(());
            }
            out.push_str(if word == old { new } else { word });
            index = end;
            continue;
        }
        let char_len = query[index..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&query[index..index + char_len]);
        index += char_len;
    }
    Ok(out)
}
