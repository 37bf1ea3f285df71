//! The syntax tree of a LogQL query.
//!
//! A query is an [`Expr`]: a log query ([`LogExpr`]: a stream selector and a pipeline of
//! [`Stage`]s) or a metric query ([`SampleExpr`]: range and vector aggregations, binary
//! operations, literals, `vector()` and `label_replace()`). Every node is typed: durations,
//! byte sizes and numbers are values, regexes are compiled, patterns, JSON paths and `ip()`
//! arguments are parsed. `Display` prints the canonical form (see `print.rs`).
//!
//! Invariants the parser guarantees (and [`crate::parse`] checks):
//!
//! - a [`LineFilter`]'s alternatives are of the kind its operator takes ([`LineMatch`]);
//! - [`LabelFilter::And`] and [`LabelFilter::Or`] hold at least two children and never a
//!   child of their own kind (chains are flattened; both are associative);
//! - a [`BinaryExpr`] never has two [`SampleExpr::Literal`] operands (they are folded, as
//!   Loki does), and `and`/`or`/`unless` never have a literal operand;
//! - range aggregations take an unwrap exactly when their operation needs one.

use std::time::Duration;

use obs_core::series::MatchOp;

use crate::extraction::JsonPathSegment;
use crate::ip::IpPattern;
use crate::matcher::{GoRegex, LabelMatcher};
use crate::pattern::PatternExpr;
use crate::units::SignedDuration;

/// A parsed LogQL query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A query returning log lines: `{app="x"} |= "error" | json`.
    Log(LogExpr),
    /// A query returning samples: `sum by (level) (rate({app="x"}[5m]))`.
    Sample(SampleExpr),
}

impl Expr {
    /// Whether this is a log query.
    pub fn is_log(&self) -> bool {
        matches!(self, Expr::Log(_))
    }

    /// The log query, if this is one.
    pub fn as_log(&self) -> Option<&LogExpr> {
        match self {
            Expr::Log(log) => Some(log),
            Expr::Sample(_) => None,
        }
    }

    /// The metric query, if this is one.
    pub fn as_sample(&self) -> Option<&SampleExpr> {
        match self {
            Expr::Sample(sample) => Some(sample),
            Expr::Log(_) => None,
        }
    }

    /// Every log expression the query reads, in query order: the query itself for a log
    /// query, the expression inside each range aggregation otherwise.
    pub fn log_exprs(&self) -> Vec<&LogExpr> {
        match self {
            Expr::Log(log) => vec![log],
            Expr::Sample(sample) => sample.log_ranges().into_iter().map(|range| &range.log).collect(),
        }
    }
}

/// A log query: a stream selector and the stages each selected line goes through.
#[derive(Debug, Clone, PartialEq)]
pub struct LogExpr {
    /// The stream selector's matchers (`{app="x", env=~"prod|dev"}`); Loki requires at least
    /// one that does not match the empty value.
    pub selector: Vec<LabelMatcher>,
    /// The pipeline, in order.
    pub pipeline: Vec<Stage>,
}

impl LogExpr {
    /// The stream selector's matchers.
    pub fn matchers(&self) -> &[LabelMatcher] {
        &self.selector
    }

    /// Whether a stage extracts labels from the line (`json`, `logfmt`, `regexp`, `pattern`,
    /// `unpack`).
    pub fn has_parser(&self) -> bool {
        self.pipeline.iter().any(Stage::is_parser)
    }

    /// Substrings a stored line must contain to pass the line filters, for index
    /// pre-filtering: a line passes only if, for every inner list, it contains at least one
    /// of its strings. Taken from `|=` filters (an `or` chain of plain strings gives a list of
    /// several) that come before any stage rewriting the line (`line_format`, `decolorize`,
    /// `unpack`); empty strings, which every line contains, are left out.
    pub fn required_line_substrings(&self) -> Vec<Vec<&str>> {
        let mut required = Vec::new();
        for stage in &self.pipeline {
            if stage.rewrites_line() {
                break;
            }
            let Stage::LineFilter(filter) = stage else {
                continue;
            };
            if filter.op != LineFilterOp::Contains {
                continue;
            }
            let substrings: Option<Vec<&str>> = filter
                .alternatives
                .iter()
                .map(|alternative| match alternative {
                    LineMatch::Contains(text) if !text.is_empty() => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            if let Some(substrings) = substrings {
                required.push(substrings);
            }
        }
        required
    }

    /// The label filters that come before the first stage adding or removing labels (a
    /// parser, `label_format`, `drop`, `keep`): they can only test stream labels and
    /// structured metadata, which an index may answer (Loki's
    /// `ExtractLabelFiltersBeforeParser`).
    pub fn label_filters_before_parser(&self) -> Vec<&LabelFilter> {
        let mut filters = Vec::new();
        for stage in &self.pipeline {
            match stage {
                Stage::LabelFilter(filter) => filters.push(filter),
                stage if stage.changes_labels() => break,
                _ => {}
            }
        }
        filters
    }
}

/// One stage of a log pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `|= "a" or "b"`, `!~ "re"`, `|> "<_> x"`, `!= ip("10.0.0.0/8")`.
    LineFilter(LineFilter),
    /// `| json` or `| json label="path", other`.
    Json(JsonParser),
    /// `| logfmt`, with `--strict`, `--keep-empty` and extractions.
    Logfmt(LogfmtParser),
    /// `| regexp "(?P<name>...)"`: extracts the named groups (unanchored, Go syntax).
    Regexp(GoRegex),
    /// `| pattern "<ip> - <_>"`.
    Pattern(PatternExpr),
    /// `| unpack`: extracts the labels Promtail's `pack` stage stored in a JSON line and
    /// replaces the line by its `_entry`.
    Unpack,
    /// `| level="error" and status >= 500`.
    LabelFilter(LabelFilter),
    /// `| line_format "{{.msg}}"`: a Go `text/template`, kept as written.
    LineFormat(String),
    /// `| label_format dst="{{.src}}", renamed=src`.
    LabelFormat(Vec<LabelFormat>),
    /// `| drop name, other="value"`.
    Drop(Vec<NamedMatcher>),
    /// `| keep name, other="value"`.
    Keep(Vec<NamedMatcher>),
    /// `| decolorize`: removes ANSI color codes from the line.
    Decolorize,
}

impl Stage {
    /// Whether this stage extracts labels from the line.
    pub fn is_parser(&self) -> bool {
        matches!(
            self,
            Stage::Json(_) | Stage::Logfmt(_) | Stage::Regexp(_) | Stage::Pattern(_) | Stage::Unpack
        )
    }

    /// Whether this stage replaces the line (so later line filters see another text).
    pub fn rewrites_line(&self) -> bool {
        matches!(self, Stage::LineFormat(_) | Stage::Decolorize | Stage::Unpack)
    }

    /// Whether this stage adds, renames or removes labels.
    pub fn changes_labels(&self) -> bool {
        self.is_parser() || matches!(self, Stage::LabelFormat(_) | Stage::Drop(_) | Stage::Keep(_))
    }
}

/// A line filter: an operator and the alternatives it joins with `or`.
///
/// A positive operator (`|=`, `|~`, `|>`) passes a line if any alternative matches; a negated
/// one (`!=`, `!~`, `!>`) passes it if none does (Loki reads `!= "a" or "b"` as
/// `!= "a" != "b"`).
#[derive(Debug, Clone, PartialEq)]
pub struct LineFilter {
    /// The operator.
    pub op: LineFilterOp,
    /// At least one alternative, of the kind the operator takes (see [`LineMatch`]).
    pub alternatives: Vec<LineMatch>,
}

impl LineFilter {
    /// Whether a line passes, given whether each alternative matches it.
    pub fn passes(&self, mut alternative_matches: impl FnMut(&LineMatch) -> bool) -> bool {
        let any = self.alternatives.iter().any(&mut alternative_matches);
        any != self.op.is_negated()
    }
}

/// The operator of a line filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineFilterOp {
    /// `|=`: contains the string (or an address `ip()` accepts).
    Contains,
    /// `!=`: contains none of them.
    NotContains,
    /// `|~`: matches the regex somewhere.
    Regex,
    /// `!~`: matches none of them.
    NotRegex,
    /// `|>`: matches the pattern.
    Pattern,
    /// `!>`: matches none of them.
    NotPattern,
}

impl LineFilterOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
            LineFilterOp::Pattern => "|>",
            LineFilterOp::NotPattern => "!>",
        }
    }

    /// Whether the filter keeps the lines its alternatives do not match.
    pub fn is_negated(self) -> bool {
        matches!(
            self,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        )
    }
}

/// One alternative of a line filter.
#[derive(Debug, Clone, PartialEq)]
pub enum LineMatch {
    /// A substring (`|=` and `!=`); case-sensitive.
    Contains(String),
    /// A regex found anywhere in the line (`|~` and `!~`; Go syntax, `(?i)` allowed).
    Regex(GoRegex),
    /// A pattern with `<_>` wildcards matching the whole line (`|>` and `!>`).
    Pattern(PatternExpr),
    /// `ip("...")` (`|=` and `!=` only): the line holds an address the pattern accepts.
    Ip(IpPattern),
}

/// `| json`, with optional extractions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonParser {
    /// Empty: extract every field (nested keys joined with `_`). Otherwise only these.
    pub extractions: Vec<JsonExtraction>,
}

/// `label="path"` in `| json label="path"` (`label` alone means `label="label"`).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonExtraction {
    /// The label to set.
    pub label: String,
    /// The path as written.
    pub expression: String,
    /// The parsed path.
    pub path: Vec<JsonPathSegment>,
}

/// `| logfmt`, with flags and optional extractions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogfmtParser {
    /// `--strict`: stop at the first malformed pair and set `__error__`.
    pub strict: bool,
    /// `--keep-empty`: keep keys without a value (as `""`).
    pub keep_empty: bool,
    /// Empty: extract every key. Otherwise only these.
    pub extractions: Vec<LogfmtExtraction>,
}

/// `label="key"` in `| logfmt label="key"` (`label` alone means `label="label"`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogfmtExtraction {
    /// The label to set.
    pub label: String,
    /// The logfmt key to read.
    pub key: String,
}

/// A label filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFilter {
    /// All children pass (`a and b`, `a, b`, `a b`). At least two, none an `And`.
    And(Vec<LabelFilter>),
    /// Any child passes (`a or b`). At least two, none an `Or`.
    Or(Vec<LabelFilter>),
    /// A string comparison: `level="error"`, `path=~"/api/.*"` (a missing label is `""`; the
    /// only filter that can test `__error__`).
    Matcher(LabelMatcher),
    /// A numeric comparison: `status >= 500` (the label's value is parsed as a float).
    Number {
        /// The label.
        name: String,
        /// The comparison.
        op: CompareOp,
        /// The number compared with.
        value: f64,
    },
    /// A duration comparison: `latency > 250ms` (the label's value is a Go duration).
    Duration {
        /// The label.
        name: String,
        /// The comparison.
        op: CompareOp,
        /// The duration compared with.
        value: SignedDuration,
    },
    /// A byte-size comparison: `size > 20MB` (the label's value is a humanized size).
    Bytes {
        /// The label.
        name: String,
        /// The comparison.
        op: CompareOp,
        /// The size compared with, in bytes.
        value: u64,
    },
    /// `addr=ip("10.0.0.0/8")` or `addr!=ip(...)`.
    Ip {
        /// The label.
        name: String,
        /// Whether the filter is `!=`.
        negated: bool,
        /// The accepted addresses.
        pattern: IpPattern,
    },
}

impl LabelFilter {
    /// The labels the filter reads, each once, in order.
    pub fn required_label_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        self.visit_leaves(&mut |leaf| {
            let name = leaf.leaf_name().unwrap_or_default();
            if !names.contains(&name) {
                names.push(name);
            }
        });
        names
    }

    /// `name="value"` conditions every passing line satisfies: the `=` string matchers among
    /// the top-level conjuncts. An index on a label can answer these.
    pub fn required_equalities(&self) -> Vec<(&str, &str)> {
        let conjuncts: &[LabelFilter] = match self {
            LabelFilter::And(children) => children,
            other => std::slice::from_ref(other),
        };
        conjuncts
            .iter()
            .filter_map(|filter| match filter {
                LabelFilter::Matcher(matcher) if matcher.op() == MatchOp::Equal => {
                    Some((matcher.name(), matcher.value()))
                }
                _ => None,
            })
            .collect()
    }

    /// The label a leaf filter reads; `None` for `And` and `Or`.
    pub fn leaf_name(&self) -> Option<&str> {
        match self {
            LabelFilter::And(_) | LabelFilter::Or(_) => None,
            LabelFilter::Matcher(matcher) => Some(matcher.name()),
            LabelFilter::Number { name, .. }
            | LabelFilter::Duration { name, .. }
            | LabelFilter::Bytes { name, .. }
            | LabelFilter::Ip { name, .. } => Some(name),
        }
    }

    fn visit_leaves<'a>(&'a self, visit: &mut impl FnMut(&'a LabelFilter)) {
        match self {
            LabelFilter::And(children) | LabelFilter::Or(children) => {
                for child in children {
                    child.visit_leaves(visit);
                }
            }
            leaf => visit(leaf),
        }
    }
}

/// The comparison of a numeric, duration or byte-size label filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `==` (or `=`).
    Equal,
    /// `!=`.
    NotEqual,
    /// `>`.
    Greater,
    /// `>=`.
    GreaterOrEqual,
    /// `<`.
    Less,
    /// `<=`.
    LessOrEqual,
}

impl CompareOp {
    /// The operator as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Equal => "==",
            CompareOp::NotEqual => "!=",
            CompareOp::Greater => ">",
            CompareOp::GreaterOrEqual => ">=",
            CompareOp::Less => "<",
            CompareOp::LessOrEqual => "<=",
        }
    }

    /// Applies the comparison: `left op right`.
    pub fn compare<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            CompareOp::Equal => left == right,
            CompareOp::NotEqual => left != right,
            CompareOp::Greater => left > right,
            CompareOp::GreaterOrEqual => left >= right,
            CompareOp::Less => left < right,
            CompareOp::LessOrEqual => left <= right,
        }
    }
}

/// One assignment of `| label_format`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelFormat {
    /// The label to set.
    pub target: String,
    /// Where its value comes from.
    pub source: LabelFormatSource,
}

/// The value of a `label_format` assignment.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelFormatSource {
    /// `dst=src`: move the value of another label (which is removed).
    Rename(String),
    /// `dst="{{.a}}-{{.b}}"`: a Go `text/template`, kept as written.
    Template(String),
}

/// One item of `| drop` and `| keep`.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedMatcher {
    /// `name`: the label, whatever its value.
    Name(String),
    /// `name="value"` (or `!=`, `=~`, `!~`): the label when its value matches.
    Matcher(LabelMatcher),
}

impl NamedMatcher {
    /// The label this item names.
    pub fn name(&self) -> &str {
        match self {
            NamedMatcher::Name(name) => name,
            NamedMatcher::Matcher(matcher) => matcher.name(),
        }
    }
}

/// A metric query.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleExpr {
    /// `rate({app="x"}[5m])`, `quantile_over_time(0.99, {...} | unwrap x [5m]) by (a)`.
    RangeAggregation(RangeAggregation),
    /// `sum by (a) (...)`, `topk(5, ...)`.
    VectorAggregation(VectorAggregation),
    /// `a + b`, `a > bool on (x) group_left b`.
    Binary(BinaryExpr),
    /// A number: `1`, `-0.5`. May be NaN or infinite after folding (`0/0`).
    Literal(f64),
    /// `vector(1)`: one sample without labels at every step.
    Vector(f64),
    /// `label_replace(expr, "dst", "replacement", "src", "regex")`.
    LabelReplace(LabelReplace),
}

impl SampleExpr {
    /// Every log range the query reads, in query order.
    pub fn log_ranges(&self) -> Vec<&LogRange> {
        let mut ranges = Vec::new();
        self.collect_log_ranges(&mut ranges);
        ranges
    }

    fn collect_log_ranges<'a>(&'a self, ranges: &mut Vec<&'a LogRange>) {
        match self {
            SampleExpr::RangeAggregation(aggregation) => ranges.push(&aggregation.range),
            SampleExpr::VectorAggregation(aggregation) => aggregation.expr.collect_log_ranges(ranges),
            SampleExpr::Binary(binary) => {
                binary.lhs.collect_log_ranges(ranges);
                binary.rhs.collect_log_ranges(ranges);
            }
            SampleExpr::LabelReplace(replace) => replace.expr.collect_log_ranges(ranges),
            SampleExpr::Literal(_) | SampleExpr::Vector(_) => {}
        }
    }
}

/// A range aggregation over the lines (or unwrapped values) of a log range.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeAggregation {
    /// The operation.
    pub op: RangeOp,
    /// φ of `quantile_over_time` (and only there).
    pub quantile: Option<f64>,
    /// What is aggregated.
    pub range: LogRange,
    /// `by (...)` / `without (...)` after the call; only the operations
    /// [`RangeOp::allows_grouping`] accepts have one. `None` keeps every series apart.
    pub grouping: Option<Grouping>,
}

/// The range operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeOp {
    /// `count_over_time`: lines per range.
    CountOverTime,
    /// `rate`: lines (or, with unwrap, the sum of values) per second.
    Rate,
    /// `rate_counter`: the per-second rate of an unwrapped counter.
    RateCounter,
    /// `bytes_over_time`: bytes of lines per range.
    BytesOverTime,
    /// `bytes_rate`: bytes of lines per second.
    BytesRate,
    /// `avg_over_time` (unwrap).
    AvgOverTime,
    /// `sum_over_time` (unwrap).
    SumOverTime,
    /// `min_over_time` (unwrap).
    MinOverTime,
    /// `max_over_time` (unwrap).
    MaxOverTime,
    /// `stdvar_over_time` (unwrap).
    StdvarOverTime,
    /// `stddev_over_time` (unwrap).
    StddevOverTime,
    /// `quantile_over_time(φ, ...)` (unwrap).
    QuantileOverTime,
    /// `first_over_time` (unwrap).
    FirstOverTime,
    /// `last_over_time` (unwrap).
    LastOverTime,
    /// `absent_over_time`: 1 when the range holds nothing.
    AbsentOverTime,
}

impl RangeOp {
    /// Every range operation.
    pub const ALL: [RangeOp; 15] = [
        RangeOp::CountOverTime,
        RangeOp::Rate,
        RangeOp::RateCounter,
        RangeOp::BytesOverTime,
        RangeOp::BytesRate,
        RangeOp::AvgOverTime,
        RangeOp::SumOverTime,
        RangeOp::MinOverTime,
        RangeOp::MaxOverTime,
        RangeOp::StdvarOverTime,
        RangeOp::StddevOverTime,
        RangeOp::QuantileOverTime,
        RangeOp::FirstOverTime,
        RangeOp::LastOverTime,
        RangeOp::AbsentOverTime,
    ];

    /// The function name.
    pub fn as_str(self) -> &'static str {
        match self {
            RangeOp::CountOverTime => "count_over_time",
            RangeOp::Rate => "rate",
            RangeOp::RateCounter => "rate_counter",
            RangeOp::BytesOverTime => "bytes_over_time",
            RangeOp::BytesRate => "bytes_rate",
            RangeOp::AvgOverTime => "avg_over_time",
            RangeOp::SumOverTime => "sum_over_time",
            RangeOp::MinOverTime => "min_over_time",
            RangeOp::MaxOverTime => "max_over_time",
            RangeOp::StdvarOverTime => "stdvar_over_time",
            RangeOp::StddevOverTime => "stddev_over_time",
            RangeOp::QuantileOverTime => "quantile_over_time",
            RangeOp::FirstOverTime => "first_over_time",
            RangeOp::LastOverTime => "last_over_time",
            RangeOp::AbsentOverTime => "absent_over_time",
        }
    }

    /// Whether `by`/`without` may follow the call.
    pub fn allows_grouping(self) -> bool {
        matches!(
            self,
            RangeOp::AvgOverTime
                | RangeOp::StddevOverTime
                | RangeOp::StdvarOverTime
                | RangeOp::QuantileOverTime
                | RangeOp::MaxOverTime
                | RangeOp::MinOverTime
                | RangeOp::FirstOverTime
                | RangeOp::LastOverTime
        )
    }

    /// Whether the operation may read an unwrapped value.
    pub fn allows_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::CountOverTime | RangeOp::BytesOverTime | RangeOp::BytesRate
        )
    }

    /// Whether the operation may count lines (no unwrap).
    pub fn allows_lines(self) -> bool {
        matches!(
            self,
            RangeOp::CountOverTime
                | RangeOp::Rate
                | RangeOp::BytesOverTime
                | RangeOp::BytesRate
                | RangeOp::AbsentOverTime
        )
    }
}

/// The log lines (or unwrapped values) of a range: `{...} | json | unwrap x [5m] offset 1h`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRange {
    /// The lines.
    pub log: LogExpr,
    /// The value taken from each line, for the operations that aggregate values.
    pub unwrap: Option<Unwrap>,
    /// The width of the range (`[5m]`), whole milliseconds.
    pub interval: Duration,
    /// `offset`: how far back the range is moved (may be negative).
    pub offset: SignedDuration,
}

/// `| unwrap label`, `| unwrap duration(label)`, … and the label filters after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrap {
    /// The label whose value becomes the sample.
    pub label: String,
    /// How the value is converted; `None` parses it as a float.
    pub conversion: Option<UnwrapConversion>,
    /// `| filter` stages after the unwrap (they see the `__error__` of a failed conversion).
    pub post_filters: Vec<LabelFilter>,
}

/// The conversion of an unwrapped value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnwrapConversion {
    /// `bytes(x)`: a humanized size (`20MB`) in bytes.
    Bytes,
    /// `duration(x)`: a Go duration in seconds.
    Duration,
    /// `duration_seconds(x)`: the same as `duration`.
    DurationSeconds,
}

impl UnwrapConversion {
    /// The function name.
    pub fn as_str(self) -> &'static str {
        match self {
            UnwrapConversion::Bytes => "bytes",
            UnwrapConversion::Duration => "duration",
            UnwrapConversion::DurationSeconds => "duration_seconds",
        }
    }
}

/// A vector aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorAggregation {
    /// The operation.
    pub op: VectorOp,
    /// k of `topk`, `bottomk` and `approx_topk` (and only there), at least 1.
    pub k: Option<usize>,
    /// `by (...)` / `without (...)`; the default, `by ()`, aggregates everything into one.
    pub grouping: Grouping,
    /// What is aggregated.
    pub expr: Box<SampleExpr>,
}

/// The vector aggregation operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VectorOp {
    /// `sum`.
    Sum,
    /// `avg`.
    Avg,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// `count`.
    Count,
    /// `stddev`.
    Stddev,
    /// `stdvar`.
    Stdvar,
    /// `topk(k, ...)`.
    Topk,
    /// `bottomk(k, ...)`.
    Bottomk,
    /// `sort` (ascending by value; no grouping).
    Sort,
    /// `sort_desc` (no grouping).
    SortDesc,
    /// `approx_topk(k, ...)` (no grouping).
    ApproxTopk,
}

impl VectorOp {
    /// Every vector operation.
    pub const ALL: [VectorOp; 12] = [
        VectorOp::Sum,
        VectorOp::Avg,
        VectorOp::Min,
        VectorOp::Max,
        VectorOp::Count,
        VectorOp::Stddev,
        VectorOp::Stdvar,
        VectorOp::Topk,
        VectorOp::Bottomk,
        VectorOp::Sort,
        VectorOp::SortDesc,
        VectorOp::ApproxTopk,
    ];

    /// The function name.
    pub fn as_str(self) -> &'static str {
        match self {
            VectorOp::Sum => "sum",
            VectorOp::Avg => "avg",
            VectorOp::Min => "min",
            VectorOp::Max => "max",
            VectorOp::Count => "count",
            VectorOp::Stddev => "stddev",
            VectorOp::Stdvar => "stdvar",
            VectorOp::Topk => "topk",
            VectorOp::Bottomk => "bottomk",
            VectorOp::Sort => "sort",
            VectorOp::SortDesc => "sort_desc",
            VectorOp::ApproxTopk => "approx_topk",
        }
    }

    /// Whether the operation takes a `k` parameter.
    pub fn takes_k(self) -> bool {
        matches!(self, VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk)
    }
}

/// `by (a, b)` or `without (a, b)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grouping {
    /// `without`: group by every label except these.
    pub without: bool,
    /// The labels, as written (not sorted).
    pub labels: Vec<String>,
}

impl Grouping {
    /// `by ()`: everything in one group.
    pub fn is_single_group(&self) -> bool {
        !self.without && self.labels.is_empty()
    }
}

/// A binary operation.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryExpr {
    /// The operator.
    pub op: BinaryOp,
    /// The left operand.
    pub lhs: Box<SampleExpr>,
    /// The right operand.
    pub rhs: Box<SampleExpr>,
    /// `bool`: a comparison returns 0 or 1 instead of filtering.
    pub return_bool: bool,
    /// How the samples of two vectors are paired.
    pub matching: VectorMatching,
}

/// The binary operators, by increasing precedence: `or`; `and unless`; comparisons; `+ -`;
/// `* / %`; `^` (right-associative; the others are left-associative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `or`.
    Or,
    /// `and`.
    And,
    /// `unless`.
    Unless,
    /// `==`.
    Equal,
    /// `!=`.
    NotEqual,
    /// `>`.
    Greater,
    /// `>=`.
    GreaterOrEqual,
    /// `<`.
    Less,
    /// `<=`.
    LessOrEqual,
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `%`.
    Mod,
    /// `^`.
    Pow,
}

impl BinaryOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Unless => "unless",
            BinaryOp::Equal => "==",
            BinaryOp::NotEqual => "!=",
            BinaryOp::Greater => ">",
            BinaryOp::GreaterOrEqual => ">=",
            BinaryOp::Less => "<",
            BinaryOp::LessOrEqual => "<=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
        }
    }

    /// Binding strength: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And | BinaryOp::Unless => 2,
            BinaryOp::Equal
            | BinaryOp::NotEqual
            | BinaryOp::Greater
            | BinaryOp::GreaterOrEqual
            | BinaryOp::Less
            | BinaryOp::LessOrEqual => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 5,
            BinaryOp::Pow => 6,
        }
    }

    /// Whether `a op b op c` is `a op (b op c)`.
    pub fn is_right_associative(self) -> bool {
        self == BinaryOp::Pow
    }

    /// Whether this is a comparison.
    pub fn is_comparison(self) -> bool {
        self.precedence() == 3
    }

    /// Whether this is a set operator (`and`, `or`, `unless`).
    pub fn is_set_operator(self) -> bool {
        matches!(self, BinaryOp::Or | BinaryOp::And | BinaryOp::Unless)
    }

    /// The operator applied to two numbers, as Loki folds literal operands: comparisons give
    /// 1 or 0, division and modulo by zero give NaN.
    pub fn apply_scalars(self, left: f64, right: f64) -> f64 {
        let truth = |holds: bool| if holds { 1.0 } else { 0.0 };
        match self {
            BinaryOp::Add => left + right,
            BinaryOp::Sub => left - right,
            BinaryOp::Mul => left * right,
            BinaryOp::Div if right == 0.0 => f64::NAN,
            BinaryOp::Div => left / right,
            BinaryOp::Mod if right == 0.0 => f64::NAN,
            BinaryOp::Mod => left % right,
            BinaryOp::Pow => left.powf(right),
            BinaryOp::Equal => truth(left == right),
            BinaryOp::NotEqual => truth(left != right),
            BinaryOp::Greater => truth(left > right),
            BinaryOp::GreaterOrEqual => truth(left >= right),
            BinaryOp::Less => truth(left < right),
            BinaryOp::LessOrEqual => truth(left <= right),
            // Set operators never get two numbers (the parser refuses literal operands).
            BinaryOp::Or | BinaryOp::And | BinaryOp::Unless => f64::NAN,
        }
    }
}

/// How a binary operation pairs the samples of two vectors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VectorMatching {
    /// `on (...)` (true) or `ignoring (...)` (false, the default with no labels).
    pub on: bool,
    /// The labels of `on` / `ignoring`.
    pub labels: Vec<String>,
    /// `group_left` / `group_right`.
    pub cardinality: Cardinality,
    /// The labels of `group_left (...)` / `group_right (...)` copied from the "one" side.
    pub include: Vec<String>,
}

impl VectorMatching {
    /// Whether this is the default: one-to-one on all labels.
    pub fn is_default(&self) -> bool {
        !self.on && self.labels.is_empty() && self.cardinality == Cardinality::OneToOne
    }
}

/// The cardinality of a vector matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cardinality {
    /// Each sample pairs with at most one on the other side.
    #[default]
    OneToOne,
    /// `group_left`: many on the left to one on the right.
    ManyToOne,
    /// `group_right`: one on the left to many on the right.
    OneToMany,
}

/// `label_replace(expr, "dst", "replacement", "src", "regex")`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelReplace {
    /// The samples whose labels are rewritten.
    pub expr: Box<SampleExpr>,
    /// The label to set.
    pub dst: String,
    /// The new value, with `$1` / `${name}` references to the regex's groups.
    pub replacement: String,
    /// The label matched.
    pub src: String,
    /// The regex, matching the whole value of `src` (Go syntax).
    pub regex: GoRegex,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_operations_follow_loki_rules() {
        let with_grouping: Vec<&str> = RangeOp::ALL
            .into_iter()
            .filter(|op| op.allows_grouping())
            .map(RangeOp::as_str)
            .collect();
        assert_eq!(
            with_grouping,
            [
                "avg_over_time",
                "min_over_time",
                "max_over_time",
                "stdvar_over_time",
                "stddev_over_time",
                "quantile_over_time",
                "first_over_time",
                "last_over_time"
            ]
        );
        let without_unwrap: Vec<&str> = RangeOp::ALL
            .into_iter()
            .filter(|op| !op.allows_unwrap())
            .map(RangeOp::as_str)
            .collect();
        assert_eq!(
            without_unwrap,
            ["count_over_time", "bytes_over_time", "bytes_rate"]
        );
        let lines: Vec<&str> = RangeOp::ALL
            .into_iter()
            .filter(|op| op.allows_lines())
            .map(RangeOp::as_str)
            .collect();
        assert_eq!(
            lines,
            [
                "count_over_time",
                "rate",
                "bytes_over_time",
                "bytes_rate",
                "absent_over_time"
            ]
        );
    }

    #[test]
    fn scalar_folding_matches_loki() {
        assert_eq!(BinaryOp::Add.apply_scalars(1.0, 2.0), 3.0);
        assert_eq!(BinaryOp::Pow.apply_scalars(2.0, 10.0), 1024.0);
        assert_eq!(BinaryOp::Greater.apply_scalars(1.0, 2.0), 0.0);
        assert_eq!(BinaryOp::LessOrEqual.apply_scalars(1.0, 2.0), 1.0);
        assert!(BinaryOp::Div.apply_scalars(1.0, 0.0).is_nan());
        assert!(BinaryOp::Mod.apply_scalars(1.0, 0.0).is_nan());
        assert_eq!(BinaryOp::Mod.apply_scalars(-7.0, 4.0), -3.0);
    }

    #[test]
    fn comparisons_apply_to_any_ordered_value() {
        assert!(CompareOp::GreaterOrEqual.compare(5.0, 5.0));
        assert!(CompareOp::Less.compare(SignedDuration::from_millis(1), SignedDuration::from_millis(2)));
        assert!(CompareOp::NotEqual.compare(1u64, 2u64));
        assert!(!CompareOp::Equal.compare(f64::NAN, f64::NAN));
    }

    #[test]
    fn operator_precedence_table() {
        let ordered = [
            BinaryOp::Or,
            BinaryOp::Unless,
            BinaryOp::Equal,
            BinaryOp::Sub,
            BinaryOp::Mod,
            BinaryOp::Pow,
        ];
        for pair in ordered.windows(2) {
            assert!(pair[0].precedence() < pair[1].precedence(), "{pair:?}");
        }
        assert_eq!(BinaryOp::And.precedence(), BinaryOp::Unless.precedence());
        assert!(BinaryOp::Pow.is_right_associative() && !BinaryOp::Sub.is_right_associative());
        assert!(BinaryOp::NotEqual.is_comparison() && BinaryOp::Unless.is_set_operator());
    }
}
