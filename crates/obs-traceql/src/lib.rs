//! The TraceQL parser of obs-appliance: Tempo's query language as a typed syntax tree.
//!
//! [`parse`] reads a query the way Tempo's parser (`pkg/traceql/expr.y` and `lexer.go`)
//! does, with its grammar, precedence, keywords, literals and error messages, and returns a
//! [`RootExpr`]: a [`Query`] and its `with(...)` [`Hint`]s. A query is either
//!
//! - a search, [`Query::Spansets`]: a [`Pipeline`] of spanset filters `{ ... }` over
//!   [`FieldExpr`]s (intrinsics such as `duration` or `span:status`, attributes such as
//!   `resource.service.name` or `span."a b"`, literals, `&& || !`, comparisons, regexes,
//!   arithmetic), spanset operators (`&&`, `||`, `>`, `>>`, `~`, `&>>`, `!>`, ...), scalar
//!   filters over aggregates (`count() > 2`, `avg(duration) > 1s`), `by()`, `coalesce()` and
//!   `select()`;
//! - or TraceQL metrics, [`Query::Metrics`]: a [`MetricsExpr`] of pipelines ending in
//!   `rate()`, `count_over_time()`, `quantile_over_time(duration, .99)`, ... `by (...)` or
//!   `compare({ ... })`, second stages (`| topk(5)`, `> 10`) and arithmetic between them.
//!
//! Everything Tempo checks before running a query is checked here: its type rules
//! (`{ duration = "x" }` and `avg(name) > 1` are errors), regexes (Go syntax, compiled once
//! to match whole values, see [`GoRegex`]), quantiles, `topk` limits and `compare()`
//! arguments. Errors carry a position: [`ParseError`] prints as
//! `parse error at line 1, col 9: syntax error: unexpected ...`.
//!
//! `Display` prints a canonical form that parses back to the same tree. Helpers answer
//! what an engine and a store ask first: whether the query is one spanset filter
//! ([`RootExpr::single_filter`]), the conditions every matching span satisfies, to push to
//! an index ([`SpansetFilter::required_conditions`]), the fields `select()` asks for and
//! the fields the query reads ([`RootExpr::selected_fields`],
//! [`RootExpr::referenced_fields`]), and whether it is a metrics query
//! ([`RootExpr::is_metrics`]).
//!
//! Untrusted input never panics. Queries over [`MAX_QUERY_BYTES`] are refused, and nesting
//! deeper than [`MAX_DEPTH`] levels is an error, so parsing, printing and dropping a tree
//! fit a small stack.
//!
//! Where this parser knowingly differs from Tempo: constant sub-expressions inside spanset
//! filters are kept as written (Tempo folds `{ 1 + 1 = 2 }` to `{ true }`; numeric literals
//! under a minus are folded here too), and trace IDs are not stripped of leading zeros;
//! `{}` prints as `{}`; `childCount` and `rootService` are accepted unscoped, as Tempo's
//! documentation lists them; `parent.` attributes parse (Tempo refuses to run them);
//! parenthesized pipelines may be combined anywhere a spanset may stand; some errors that
//! goyacc reports with a list of expected tokens are reported without it; type errors carry
//! the position of the offending expression.
//!
//! The engine evaluates queries over the in-memory trace model of [`model`] ([`Trace`],
//! [`Span`]): [`eval::search`] returns the spansets a search finds in one trace (with Tempo's
//! type rules, structural operators, aggregates, `by()` and `coalesce()`), and
//! [`eval::response_attributes`] the fields of a span a search response carries;
//! [`metrics::MetricsEval`] turns the spans of many traces into TraceQL metrics series
//! (`rate`, `*_over_time`, quantiles and histograms over Tempo's power-of-two buckets,
//! `topk`, arithmetic between queries). Where the engine knowingly differs from Tempo is
//! listed in those modules.
//!
//! This crate knows nothing about storage or HTTP: stores build [`Trace`]s and call the
//! engine; the API crate renders its results as Tempo's JSON.
//!
//! ```
//! use std::sync::Arc;
//! use obs_traceql::model::{Resource, Scope};
//! use obs_traceql::{AttrValue, Span, SpanKind, Status, Trace, parse, search};
//!
//! let span = |id: u8, parent: u8, name: &str, status: Status, millis: u64| Span {
//!     span_id: [id; 8],
//!     parent_span_id: [parent; 8],
//!     name: name.to_owned(),
//!     kind: SpanKind::Internal,
//!     status,
//!     status_message: String::new(),
//!     start_ns: 0,
//!     end_ns: millis * 1_000_000,
//!     attributes: vec![("agent".to_owned(), AttrValue::String("jarvis".to_owned()))],
//!     resource: Arc::new(Resource::default()),
//!     scope: Arc::new(Scope::default()),
//!     events: Vec::new(),
//!     links: Vec::new(),
//! };
//! let trace = Trace {
//!     trace_id: [7; 16],
//!     spans: vec![span(1, 0, "run", Status::Ok, 900), span(2, 1, "tool-call", Status::Error, 300)],
//! };
//! let query = parse(r#"{ name = "run" } > { status = error && .agent = "jarvis" } | count() = 1"#)?;
//! let spansets = search(&query, &trace)?;
//! assert_eq!(spansets.len(), 1);
//! assert_eq!(spansets[0].spans, [1]);
//! assert_eq!(spansets[0].attributes, [("count()".to_owned(), AttrValue::Int(1))]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```
//! use obs_traceql::{ConditionTest, Intrinsic, Status, Static, parse};
//!
//! let query = parse(r#"{resource.service.name="agixt" && name="tool-call" && status=error && duration>100ms}"#)?;
//! assert_eq!(
//!     query.to_string(),
//!     r#"{ resource.service.name = "agixt" && name = "tool-call" && status = error && duration > 100ms }"#
//! );
//! let filter = query.single_filter().expect("one spanset filter");
//! let conditions = filter.required_conditions();
//! assert_eq!(conditions.len(), 4);
//! assert_eq!(conditions[0].to_string(), r#"resource.service.name = "agixt""#);
//! assert_eq!(conditions[2].field.as_intrinsic(), Some(Intrinsic::Status));
//! assert!(matches!(conditions[2].test, ConditionTest::Compare(_, Static::Status(Status::Error))));
//! assert!(filter.conditions_are_exhaustive());
//!
//! let metrics = parse("{ } | quantile_over_time(duration, .5, .99) by (resource.service.name)")?;
//! assert!(metrics.is_metrics());
//!
//! let error = parse("{ duration > 1s").unwrap_err();
//! assert_eq!(error.to_string(), "parse error at line 1, col 16: syntax error: unexpected $end");
//! let error = parse(r#"{ duration = "slow" }"#).unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     r#"parse error at line 1, col 3: binary operations must operate on the same type: duration = "slow""#
//! );
//! # Ok::<(), obs_traceql::ParseError>(())
//! ```

mod ast;
mod error;
pub mod eval;
mod lexer;
pub mod metrics;
pub mod model;
mod parser;
mod print;

pub use ast::{
    Aggregate, AggregateOp, ArithmeticOp, Attribute, AttributeScope, BinaryExpr, BinaryOp, Compare,
    CompareOp, Condition, ConditionTest, Field, FieldExpr, GoRegex, Hint, Intrinsic, IntrinsicLevel,
    MetricsAggregate, MetricsBinary, MetricsExpr, MetricsFunction, MetricsOp, MetricsPipeline, Pipeline,
    PipelineElement, Query, RegexExpr, RootExpr, ScalarBinary, ScalarExpr, ScalarFilter, ScalarPipeline,
    SecondStage, SpanKind, SpansetExpr, SpansetFilter, SpansetOp, SpansetOperation, StagedMetrics, Static,
    StaticType, Status, UnaryExpr, UnaryOp,
};
pub use error::{EvalError, ParseError};
pub use eval::{SpansetMatch, response_attributes, search};
pub use metrics::{MetricsEval, Series};
pub use model::{AttrValue, Span, Trace};
pub use parser::{MAX_DEPTH, MAX_QUERY_BYTES};

/// Parses and validates a TraceQL query (a search or a metrics query).
pub fn parse(query: &str) -> Result<RootExpr, ParseError> {
    parser::parse_query(query)
}

impl std::str::FromStr for RootExpr {
    type Err = ParseError;

    fn from_str(query: &str) -> Result<RootExpr, ParseError> {
        parse(query)
    }
}
