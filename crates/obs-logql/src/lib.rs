//! The LogQL parser of obs-appliance: Loki's query language as a typed syntax tree.
//!
//! [`parse`] reads a query the way Loki 3's parser (`pkg/logql/syntax`) does, with its
//! grammar, precedence, keywords and error messages, and returns an [`Expr`]:
//!
//! - [`LogExpr`]: a stream selector (`{app="api", env=~"prod|dev"}`) and a pipeline of
//!   [`Stage`]s: line filters (`|= "a" or "b"`, `!~ "re"`, `|> "<_> x"`, `|= ip("...")`),
//!   parsers (`json`, `logfmt`, `regexp`, `pattern`, `unpack`), [`LabelFilter`]s (strings,
//!   numbers, durations, byte sizes, `ip()`, combined with `and`/`or`), `line_format`,
//!   `label_format`, `drop`, `keep` and `decolorize`;
//! - [`SampleExpr`]: range aggregations over a [`LogRange`] (`rate`, `count_over_time`, the
//!   `*_over_time` functions with `| unwrap`), vector aggregations (`sum by (...)`, `topk`),
//!   binary operations with Loki's precedence and vector matching, literals, `vector()` and
//!   `label_replace()`.
//!
//! Everything Loki would only reject when it runs the query is checked here: regexes (Go
//! syntax, compiled once, see [`GoRegex`]), patterns, `ip()` arguments, JSON paths,
//! parameters, groupings and unwraps, and the rule that a stream selector needs one matcher
//! that does not match the empty value. Two literal operands are folded (`1 + 1` is `2`), as
//! Loki does. Errors carry a position: [`ParseError`] prints as
//! `parse error at line 1, col 9: syntax error: unexpected ...`.
//!
//! `Display` prints a canonical form that parses back to the same tree; it is what a
//! `format_query` endpoint returns.
//!
//! [`units`] holds the Go conversions LogQL literals are read with (`time.ParseDuration`,
//! `humanize.ParseBytes`, `strconv.ParseFloat`, with Go's error messages), public because an
//! engine applies the same ones to label values.
//!
//! Untrusted input never panics. Queries of [`MAX_QUERY_BYTES`] or more are refused, as in
//! Loki, and nesting deeper than [`MAX_DEPTH`] levels (parentheses, calls, operators) is an
//! error, so parsing, printing and dropping a tree fit a small stack: under 1 MiB at the
//! limit in a debug build, under 400 KiB in release.
//!
//! Where this parser knowingly differs from Loki: errors Loki finds after the syntax (its
//! `parse error : ...` without a position) carry the position of the offending construct;
//! values Loki checks only when it builds the pipeline (regexes, patterns, `ip()`, JSON and
//! logfmt expressions, `label_format` targets) are parse errors here; characters Loki's
//! lexer would turn into odd identifiers (`'a'`, `$`, `@`) are errors; string escapes must
//! decode to UTF-8; every anchored matcher, label filters included, lets `.` match a newline
//! as Prometheus' matchers do.
//!
//! This crate knows nothing about storage, evaluation or HTTP.
//!
//! ```
//! use obs_logql::{Expr, LineMatch, SampleExpr, Stage, parse};
//!
//! let query = parse(r#"sum by (level) (count_over_time({app="api"} |= "error" | json [5m]))"#)?;
//! let Expr::Sample(SampleExpr::VectorAggregation(sum)) = &query else { panic!("a sum") };
//! assert_eq!(sum.grouping.labels, ["level"]);
//!
//! let log = query.log_exprs()[0];
//! assert_eq!(log.matchers()[0].name(), "app");
//! assert!(log.has_parser());
//! assert_eq!(log.required_line_substrings(), [["error"]]);
//! assert!(matches!(&log.pipeline[0], Stage::LineFilter(f) if f.alternatives == [LineMatch::Contains("error".into())]));
//!
//! assert_eq!(
//!     query.to_string(),
//!     r#"sum by (level) (count_over_time({app="api"} |= "error" | json [5m]))"#
//! );
//! let error = parse(r#"{app="api"} |= "#).unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "parse error at line 1, col 16: syntax error: unexpected $end, expecting STRING or ip"
//! );
//! # Ok::<(), obs_logql::ParseError>(())
//! ```

mod ast;
mod error;
mod extraction;
mod ip;
mod lexer;
mod matcher;
mod parser;
mod pattern;
mod print;
pub mod units;

pub use ast::{
    BinaryExpr, BinaryOp, Cardinality, CompareOp, Expr, Grouping, JsonExtraction, JsonParser, LabelFilter,
    LabelFormat, LabelFormatSource, LabelReplace, LineFilter, LineFilterOp, LineMatch, LogExpr, LogRange,
    LogfmtExtraction, LogfmtParser, NamedMatcher, RangeAggregation, RangeOp, SampleExpr, Stage, Unwrap,
    UnwrapConversion, VectorAggregation, VectorMatching, VectorOp,
};
pub use error::ParseError;
pub use extraction::JsonPathSegment;
pub use ip::{IpMatcher, IpPattern};
pub use matcher::{GoRegex, LabelMatcher};
pub use obs_core::series::MatchOp;
pub use parser::{MAX_DEPTH, MAX_QUERY_BYTES};
pub use pattern::{PatternExpr, PatternNode};
pub use units::SignedDuration;

/// Parses and validates a LogQL query (a log query or a metric query).
pub fn parse(query: &str) -> Result<Expr, ParseError> {
    parser::parse_query(query)
}

/// Parses a bare stream selector (`{app="api"}`), as the `match[]` and `query` parameters of
/// Loki's series and label endpoints carry one. Only the syntax is checked: `{}` and
/// selectors whose matchers all accept the empty value are allowed; anything after the
/// selector is an error ("only label matchers are supported").
pub fn parse_selector(selector: &str) -> Result<Vec<LabelMatcher>, ParseError> {
    parser::parse_selector_only(selector)
}

impl std::str::FromStr for Expr {
    type Err = ParseError;

    fn from_str(query: &str) -> Result<Expr, ParseError> {
        parse(query)
    }
}
