//! The syntax tree of a TraceQL query.
//!
//! A query is a [`RootExpr`]: a [`Query`] and its `with(...)` [`Hint`]s. A query either
//! returns spansets (a [`Pipeline`] of spanset filters, spanset operators, scalar filters,
//! `by()`, `coalesce()` and `select()`) or time series (a [`MetricsExpr`]: pipelines ending in
//! a [`MetricsFunction`], second stages and arithmetic between them).
//!
//! Invariants the parser guarantees:
//!
//! - [`FieldExpr::And`] and [`FieldExpr::Or`] hold at least two operands and never an operand
//!   of their own kind (chains are flattened; both are associative);
//! - a numeric literal is never under [`UnaryOp::Negate`]: `-1` is the literal `-1`;
//! - a [`Pipeline`] has at least one element and does not start with `coalesce()`;
//! - [`SpansetExpr::Pipeline`] never holds a pipeline that is a single spanset expression
//!   (`({ .a })` is the filter itself);
//! - every expression passed Tempo's type checks (see `check.rs`), every regex compiled;
//! - [`MetricsExpr::Staged`] never wraps a [`MetricsExpr::Pipeline`] (its stages are the
//!   pipeline's own) nor another `Staged`, and its stage list is not empty; a
//!   [`MetricsExpr::Binary`] has at least one operand that is not a scalar.

use std::fmt;

use obs_core::goregex::{go_syntax_to_rust, regex_error_message};

/// A parsed TraceQL query with its hints.
#[derive(Debug, Clone, PartialEq)]
pub struct RootExpr {
    /// The query.
    pub query: Query,
    /// The `with(name=value, ...)` hints, in query order (Tempo keeps only the last `with`).
    pub hints: Vec<Hint>,
}

/// What a query computes.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// A search: spansets (`{ status = error } | count() > 2`).
    Spansets(Pipeline),
    /// TraceQL metrics: time series (`{ } | rate() by (resource.service.name)`).
    Metrics(MetricsExpr),
}

impl RootExpr {
    /// Whether this is a TraceQL metrics query (served by `/api/metrics/query_range`).
    pub fn is_metrics(&self) -> bool {
        matches!(self.query, Query::Metrics(_))
    }

    /// The metrics expression, if this is a metrics query.
    pub fn metrics(&self) -> Option<&MetricsExpr> {
        match &self.query {
            Query::Metrics(metrics) => Some(metrics),
            Query::Spansets(_) => None,
        }
    }

    /// The spanset pipeline, if this is a search.
    pub fn pipeline(&self) -> Option<&Pipeline> {
        match &self.query {
            Query::Spansets(pipeline) => Some(pipeline),
            Query::Metrics(_) => None,
        }
    }

    /// The filter, if the whole query is one spanset filter (`{ ... }`, hints aside): the
    /// shape Grafana's search builder emits, which a store can answer span by span without
    /// looking at whole traces.
    pub fn single_filter(&self) -> Option<&SpansetFilter> {
        self.pipeline().and_then(Pipeline::single_filter)
    }

    /// Whether the whole query is one spanset filter (see [`RootExpr::single_filter`]).
    pub fn is_single_filter(&self) -> bool {
        self.single_filter().is_some()
    }

    /// The value of hint `name` (the last one if it is repeated).
    pub fn hint(&self, name: &str) -> Option<&Static> {
        self.hints
            .iter()
            .rev()
            .find(|hint| hint.name == name)
            .map(|hint| &hint.value)
    }

    /// Every spanset filter of the query, in query order, including those inside metrics
    /// pipelines and `compare()`.
    pub fn spanset_filters(&self) -> Vec<&SpansetFilter> {
        let mut filters = Vec::new();
        match &self.query {
            Query::Spansets(pipeline) => pipeline.collect_filters(&mut filters),
            Query::Metrics(metrics) => {
                for leaf in metrics.pipelines() {
                    leaf.pipeline.collect_filters(&mut filters);
                    if let MetricsFunction::Compare(compare) = &leaf.function {
                        filters.push(&compare.selection);
                    }
                }
            }
        }
        filters
    }

    /// The fields `select(...)` asks for, in query order, without repeats: a search returns
    /// them on each matched span besides those the filters reference.
    pub fn selected_fields(&self) -> Vec<&Field> {
        let mut fields: Vec<&Field> = Vec::new();
        let mut pipelines: Vec<&Pipeline> = Vec::new();
        match &self.query {
            Query::Spansets(pipeline) => pipelines.push(pipeline),
            Query::Metrics(metrics) => {
                pipelines.extend(metrics.pipelines().into_iter().map(|leaf| &leaf.pipeline))
            }
        }
        for pipeline in pipelines {
            pipeline.collect_selected(&mut fields);
        }
        fields
    }

    /// Every field (attribute or intrinsic) the query reads, in query order, without
    /// repeats: filters, `by()`, aggregates, `select()` and metrics arguments.
    pub fn referenced_fields(&self) -> Vec<&Field> {
        let mut fields: Vec<&Field> = Vec::new();
        match &self.query {
            Query::Spansets(pipeline) => pipeline.collect_fields(&mut fields),
            Query::Metrics(metrics) => {
                for leaf in metrics.pipelines() {
                    leaf.pipeline.collect_fields(&mut fields);
                    match &leaf.function {
                        MetricsFunction::Aggregate(aggregate) => {
                            for field in aggregate.field.iter().chain(&aggregate.by) {
                                push_unique(&mut fields, field);
                            }
                        }
                        MetricsFunction::Compare(compare) => {
                            compare.selection.expr.collect_fields(&mut fields)
                        }
                    }
                }
            }
        }
        fields
    }
}

fn push_unique<'a>(fields: &mut Vec<&'a Field>, field: &'a Field) {
    if !fields.contains(&field) {
        fields.push(field);
    }
}

/// A `with(...)` entry: `with(most_recent=true)`, `with(sample=0.1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// The hint's name.
    pub name: String,
    /// Its value.
    pub value: Static,
}

// ---- Spanset pipelines --------------------------------------------------------------------

/// Stages separated by `|`, each taking the spansets the previous one returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// At least one element; never `coalesce()` first.
    pub elements: Vec<PipelineElement>,
}

impl Pipeline {
    /// The filter, if the pipeline is a single spanset filter.
    pub fn single_filter(&self) -> Option<&SpansetFilter> {
        match self.elements.as_slice() {
            [PipelineElement::Spansets(SpansetExpr::Filter(filter))] => Some(filter),
            _ => None,
        }
    }

    /// Whether evaluating the pipeline needs whole traces rather than single spans: spanset
    /// operators (`&&`, `>>`, ...), aggregates and anything after the first element.
    pub fn needs_whole_traces(&self) -> bool {
        self.single_filter().is_none()
    }

    fn collect_filters<'a>(&'a self, filters: &mut Vec<&'a SpansetFilter>) {
        for element in &self.elements {
            match element {
                PipelineElement::Spansets(expr) => expr.collect_filters(filters),
                PipelineElement::ScalarFilter(filter) => {
                    filter.lhs.collect_filters(filters);
                    filter.rhs.collect_filters(filters);
                }
                PipelineElement::GroupBy(_) | PipelineElement::Coalesce | PipelineElement::Select(_) => {}
            }
        }
    }

    fn collect_selected<'a>(&'a self, fields: &mut Vec<&'a Field>) {
        for element in &self.elements {
            match element {
                PipelineElement::Select(selected) => {
                    for field in selected {
                        push_unique(fields, field);
                    }
                }
                PipelineElement::Spansets(expr) => {
                    expr.visit_pipelines(&mut |pipeline| pipeline.collect_selected(fields))
                }
                PipelineElement::ScalarFilter(filter) => {
                    for side in [&filter.lhs, &filter.rhs] {
                        side.visit_pipelines(&mut |pipeline| pipeline.collect_selected(fields));
                    }
                }
                PipelineElement::GroupBy(_) | PipelineElement::Coalesce => {}
            }
        }
    }

    fn collect_fields<'a>(&'a self, fields: &mut Vec<&'a Field>) {
        for element in &self.elements {
            match element {
                PipelineElement::Spansets(expr) => {
                    let mut filters = Vec::new();
                    expr.collect_filters(&mut filters);
                    for filter in filters {
                        filter.expr.collect_fields(fields);
                    }
                    expr.visit_pipelines(&mut |pipeline| pipeline.collect_fields(fields));
                }
                PipelineElement::ScalarFilter(filter) => {
                    filter.lhs.collect_fields(fields);
                    filter.rhs.collect_fields(fields);
                }
                PipelineElement::GroupBy(expr) => expr.collect_fields(fields),
                PipelineElement::Coalesce => {}
                PipelineElement::Select(selected) => {
                    for field in selected {
                        push_unique(fields, field);
                    }
                }
            }
        }
    }
}

/// One stage of a [`Pipeline`].
#[derive(Debug, Clone, PartialEq)]
pub enum PipelineElement {
    /// Spanset filters and the operators between them: `{ .a } >> { .b }`.
    Spansets(SpansetExpr),
    /// A comparison over aggregates: `count() > 2`, `avg(duration) > 1s`.
    ScalarFilter(ScalarFilter),
    /// `by(expr)`: regroups the spans of each spanset by the value of `expr`.
    GroupBy(FieldExpr),
    /// `coalesce()`: merges the spansets of a trace back into one.
    Coalesce,
    /// `select(a, b)`: fields to return on each span besides those the query references.
    Select(Vec<Field>),
}

/// Spanset filters combined by spanset operators.
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ ... }`.
    Filter(SpansetFilter),
    /// `lhs op rhs`.
    Operation(Box<SpansetOperation>),
    /// A parenthesized pipeline used as an operand: `({ .a } | count() > 1) && ({ .b })`.
    Pipeline(Box<Pipeline>),
}

impl SpansetExpr {
    fn collect_filters<'a>(&'a self, filters: &mut Vec<&'a SpansetFilter>) {
        match self {
            SpansetExpr::Filter(filter) => filters.push(filter),
            SpansetExpr::Operation(operation) => {
                operation.lhs.collect_filters(filters);
                operation.rhs.collect_filters(filters);
            }
            SpansetExpr::Pipeline(pipeline) => pipeline.collect_filters(filters),
        }
    }

    /// Calls `visit` on each pipeline nested in this expression (not recursively).
    fn visit_pipelines<'a>(&'a self, visit: &mut dyn FnMut(&'a Pipeline)) {
        match self {
            SpansetExpr::Filter(_) => {}
            SpansetExpr::Operation(operation) => {
                operation.lhs.visit_pipelines(visit);
                operation.rhs.visit_pipelines(visit);
            }
            SpansetExpr::Pipeline(pipeline) => visit(pipeline),
        }
    }
}

/// `lhs op rhs` over spansets.
#[derive(Debug, Clone, PartialEq)]
pub struct SpansetOperation {
    /// The operator.
    pub op: SpansetOp,
    /// The left operand.
    pub lhs: SpansetExpr,
    /// The right operand.
    pub rhs: SpansetExpr,
}

/// The spanset operators: logical and structural.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpansetOp {
    /// `&&`: both match in the same trace.
    And,
    /// `||`: either matches.
    Union,
    /// `>`: right-hand spans that are children of left-hand spans.
    Child,
    /// `<`: right-hand spans that are parents of left-hand spans.
    Parent,
    /// `>>`: descendants.
    Descendant,
    /// `<<`: ancestors.
    Ancestor,
    /// `~`: siblings.
    Sibling,
    /// `!>`: right-hand spans that are not children of left-hand spans.
    NotChild,
    /// `!<`.
    NotParent,
    /// `!>>`.
    NotDescendant,
    /// `!<<`.
    NotAncestor,
    /// `!~`.
    NotSibling,
    /// `&>`: both sides of each parent-child pair.
    UnionChild,
    /// `&<`.
    UnionParent,
    /// `&>>`.
    UnionDescendant,
    /// `&<<`.
    UnionAncestor,
    /// `&~`.
    UnionSibling,
}

impl SpansetOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            SpansetOp::And => "&&",
            SpansetOp::Union => "||",
            SpansetOp::Child => ">",
            SpansetOp::Parent => "<",
            SpansetOp::Descendant => ">>",
            SpansetOp::Ancestor => "<<",
            SpansetOp::Sibling => "~",
            SpansetOp::NotChild => "!>",
            SpansetOp::NotParent => "!<",
            SpansetOp::NotDescendant => "!>>",
            SpansetOp::NotAncestor => "!<<",
            SpansetOp::NotSibling => "!~",
            SpansetOp::UnionChild => "&>",
            SpansetOp::UnionParent => "&<",
            SpansetOp::UnionDescendant => "&>>",
            SpansetOp::UnionAncestor => "&<<",
            SpansetOp::UnionSibling => "&~",
        }
    }

    /// Whether the operator relates spans by the trace's structure (all but `&&` and `||`).
    pub fn is_structural(self) -> bool {
        !matches!(self, SpansetOp::And | SpansetOp::Union)
    }

    /// 1 for `&&` and `||`, 2 for the structural operators (higher binds tighter); all are
    /// left-associative.
    pub fn precedence(self) -> u8 {
        if self.is_structural() { 2 } else { 1 }
    }
}

/// `{ expr }`: the spans for which `expr` is true.
#[derive(Debug, Clone, PartialEq)]
pub struct SpansetFilter {
    /// The condition; `{}` is `{ true }`.
    pub expr: FieldExpr,
}

impl SpansetFilter {
    /// Whether the filter matches every span (`{}` or `{ true }`).
    pub fn is_match_all(&self) -> bool {
        self.expr == FieldExpr::Static(Static::Bool(true))
    }

    /// Conditions every matching span satisfies: the conjuncts of the filter's top-level
    /// `&&` (or the filter itself) that compare one field with a literal (`status = error`,
    /// `duration > 1s`, `resource.service.name = "x"`, `span.a =~ "r-.*"`, `.b != nil`).
    /// `"x" = .a` is returned as `.a = "x"`. Other conjuncts (`||`, arithmetic, field
    /// against field) are left out, so the list is a prefilter a store can push to its index:
    /// a span missing one of them cannot match; one satisfying all of them matches only if
    /// [`SpansetFilter::conditions_are_exhaustive`] says so.
    pub fn required_conditions(&self) -> Vec<Condition<'_>> {
        self.conjuncts()
            .into_iter()
            .filter_map(Condition::from_expr)
            .collect()
    }

    /// Whether [`SpansetFilter::required_conditions`] capture the whole filter: a span
    /// satisfying all of them matches. True for `{}`.
    pub fn conditions_are_exhaustive(&self) -> bool {
        self.is_match_all()
            || self
                .conjuncts()
                .into_iter()
                .all(|expr| Condition::from_expr(expr).is_some())
    }

    fn conjuncts(&self) -> Vec<&FieldExpr> {
        if self.is_match_all() {
            return Vec::new();
        }
        match &self.expr {
            FieldExpr::And(operands) => operands.iter().collect(),
            expr => vec![expr],
        }
    }
}

/// A condition on one field of a span (see [`SpansetFilter::required_conditions`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition<'a> {
    /// The field tested.
    pub field: &'a Field,
    /// The test.
    pub test: ConditionTest<'a>,
}

/// What a [`Condition`] requires of its field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConditionTest<'a> {
    /// `field op value`; for strings `<` and `>` compare bytes.
    Compare(CompareOp, &'a Static),
    /// `field =~ regex` (the regex matches the whole value).
    Matches(&'a GoRegex),
    /// `field !~ regex`.
    NotMatches(&'a GoRegex),
    /// `field != nil`.
    Exists,
    /// `field = nil`.
    NotExists,
}

impl<'a> Condition<'a> {
    fn from_expr(expr: &'a FieldExpr) -> Option<Condition<'a>> {
        match expr {
            FieldExpr::Binary(binary) => {
                let op = binary.op.compare_op()?;
                match (&binary.lhs, &binary.rhs) {
                    (FieldExpr::Field(field), FieldExpr::Static(value)) => Some(Condition {
                        field,
                        test: ConditionTest::Compare(op, value),
                    }),
                    (FieldExpr::Static(value), FieldExpr::Field(field)) => Some(Condition {
                        field,
                        test: ConditionTest::Compare(op.flipped(), value),
                    }),
                    _ => None,
                }
            }
            FieldExpr::Regex(regex) => match &regex.lhs {
                FieldExpr::Field(field) => Some(Condition {
                    field,
                    test: if regex.negated {
                        ConditionTest::NotMatches(&regex.regex)
                    } else {
                        ConditionTest::Matches(&regex.regex)
                    },
                }),
                _ => None,
            },
            FieldExpr::Unary(unary) => match (&unary.op, &unary.expr) {
                (UnaryOp::Exists, FieldExpr::Field(field)) => Some(Condition {
                    field,
                    test: ConditionTest::Exists,
                }),
                (UnaryOp::NotExists, FieldExpr::Field(field)) => Some(Condition {
                    field,
                    test: ConditionTest::NotExists,
                }),
                _ => None,
            },
            _ => None,
        }
    }
}

// ---- Scalar filters -------------------------------------------------------------------------

/// `lhs op rhs` over aggregates: `count() > 2`, `avg(duration) > 1s`,
/// `({ .a } | count()) > ({ .b } | count())`. At least one side holds an aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarFilter {
    /// The comparison.
    pub op: CompareOp,
    /// The left side.
    pub lhs: ScalarExpr,
    /// The right side.
    pub rhs: ScalarExpr,
}

/// A number computed per spanset.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarExpr {
    /// `count()`, `avg(duration)`.
    Aggregate(Aggregate),
    /// A literal (constant arithmetic is folded: `2 * 3` is `6`).
    Static(Static),
    /// `lhs op rhs`.
    Binary(Box<ScalarBinary>),
    /// A parenthesized pipeline ending with an aggregate: `({ .a } | by(.b) | count())`.
    Pipeline(Box<ScalarPipeline>),
}

impl ScalarExpr {
    fn collect_filters<'a>(&'a self, filters: &mut Vec<&'a SpansetFilter>) {
        match self {
            ScalarExpr::Aggregate(_) | ScalarExpr::Static(_) => {}
            ScalarExpr::Binary(binary) => {
                binary.lhs.collect_filters(filters);
                binary.rhs.collect_filters(filters);
            }
            ScalarExpr::Pipeline(scalar) => scalar.pipeline.collect_filters(filters),
        }
    }

    fn visit_pipelines<'a>(&'a self, visit: &mut dyn FnMut(&'a Pipeline)) {
        match self {
            ScalarExpr::Aggregate(_) | ScalarExpr::Static(_) => {}
            ScalarExpr::Binary(binary) => {
                binary.lhs.visit_pipelines(visit);
                binary.rhs.visit_pipelines(visit);
            }
            ScalarExpr::Pipeline(scalar) => visit(&scalar.pipeline),
        }
    }

    fn collect_fields<'a>(&'a self, fields: &mut Vec<&'a Field>) {
        match self {
            ScalarExpr::Aggregate(aggregate) => {
                if let Some(expr) = &aggregate.expr {
                    expr.collect_fields(fields);
                }
            }
            ScalarExpr::Static(_) => {}
            ScalarExpr::Binary(binary) => {
                binary.lhs.collect_fields(fields);
                binary.rhs.collect_fields(fields);
            }
            ScalarExpr::Pipeline(scalar) => {
                scalar.pipeline.collect_fields(fields);
                if let Some(expr) = &scalar.aggregate.expr {
                    expr.collect_fields(fields);
                }
            }
        }
    }
}

/// `lhs op rhs` between scalar expressions.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarBinary {
    /// The operator.
    pub op: ArithmeticOp,
    /// The left operand.
    pub lhs: ScalarExpr,
    /// The right operand.
    pub rhs: ScalarExpr,
}

/// `(pipeline | aggregate)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarPipeline {
    /// The stages before the aggregate.
    pub pipeline: Pipeline,
    /// The aggregate computed over each resulting spanset.
    pub aggregate: Aggregate,
}

/// `count()`, `avg(x)`, `min(x)`, `max(x)` or `sum(x)` over the spans of a spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The operation.
    pub op: AggregateOp,
    /// The aggregated expression; `None` exactly for `count()`.
    pub expr: Option<FieldExpr>,
}

/// The spanset aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateOp {
    /// `count()`.
    Count,
    /// `avg(x)`.
    Avg,
    /// `min(x)`.
    Min,
    /// `max(x)`.
    Max,
    /// `sum(x)`.
    Sum,
}

impl AggregateOp {
    /// The function's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateOp::Count => "count",
            AggregateOp::Avg => "avg",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Sum => "sum",
        }
    }
}

/// The comparisons of scalar and metrics filters (and of [`Condition`]s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`.
    Eq,
    /// `!=`.
    Neq,
    /// `<`.
    Lt,
    /// `<=`.
    Lte,
    /// `>`.
    Gt,
    /// `>=`.
    Gte,
}

impl CompareOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Neq => "!=",
            CompareOp::Lt => "<",
            CompareOp::Lte => "<=",
            CompareOp::Gt => ">",
            CompareOp::Gte => ">=",
        }
    }

    /// The operator with its operands swapped: `1 < x` is `x > 1`.
    pub fn flipped(self) -> CompareOp {
        match self {
            CompareOp::Lt => CompareOp::Gt,
            CompareOp::Lte => CompareOp::Gte,
            CompareOp::Gt => CompareOp::Lt,
            CompareOp::Gte => CompareOp::Lte,
            other => other,
        }
    }

    /// Applies the comparison.
    pub fn compare<T: PartialOrd>(self, left: T, right: T) -> bool {
        match self {
            CompareOp::Eq => left == right,
            CompareOp::Neq => left != right,
            CompareOp::Lt => left < right,
            CompareOp::Lte => left <= right,
            CompareOp::Gt => left > right,
            CompareOp::Gte => left >= right,
        }
    }
}

/// The arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithmeticOp {
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

impl ArithmeticOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            ArithmeticOp::Add => "+",
            ArithmeticOp::Sub => "-",
            ArithmeticOp::Mul => "*",
            ArithmeticOp::Div => "/",
            ArithmeticOp::Mod => "%",
            ArithmeticOp::Pow => "^",
        }
    }

    /// 3 for `+ -`, 5 for `* / %`, 6 for `^` (right-associative; the others are left).
    pub fn precedence(self) -> u8 {
        match self {
            ArithmeticOp::Add | ArithmeticOp::Sub => 3,
            ArithmeticOp::Mul | ArithmeticOp::Div | ArithmeticOp::Mod => 5,
            ArithmeticOp::Pow => 6,
        }
    }
}

// ---- Field expressions ------------------------------------------------------------------------

/// An expression evaluated on one span (inside `{ }`, `by()` and aggregates).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpr {
    /// A literal.
    Static(Static),
    /// An intrinsic or an attribute of the span.
    Field(Field),
    /// `a && b && ...`: at least two operands, none an `And`.
    And(Vec<FieldExpr>),
    /// `a || b || ...`: at least two operands, none an `Or`.
    Or(Vec<FieldExpr>),
    /// Arithmetic and comparisons: `a + 1`, `a = "x"`, `duration > 1s`.
    Binary(Box<BinaryExpr>),
    /// `a =~ "re"` or `a !~ "re"`.
    Regex(Box<RegexExpr>),
    /// `!a`, `-a`, `a != nil`, `a = nil`.
    Unary(Box<UnaryExpr>),
}

impl FieldExpr {
    /// The type the expression has before evaluation (Tempo's `impliedType`).
    pub fn static_type(&self) -> StaticType {
        match self {
            FieldExpr::Static(value) => value.static_type(),
            FieldExpr::Field(field) => field.static_type(),
            FieldExpr::And(_) | FieldExpr::Or(_) | FieldExpr::Regex(_) => StaticType::Bool,
            FieldExpr::Binary(binary) => {
                if binary.op.is_comparison() {
                    return StaticType::Bool;
                }
                match binary.lhs.static_type() {
                    StaticType::Unknown => binary.rhs.static_type(),
                    known => known,
                }
            }
            FieldExpr::Unary(unary) => match unary.op {
                UnaryOp::Exists | UnaryOp::NotExists => StaticType::Bool,
                UnaryOp::Not | UnaryOp::Negate => unary.expr.static_type(),
            },
        }
    }

    /// Whether the expression reads the span (has a field), as opposed to being constant.
    pub fn references_span(&self) -> bool {
        match self {
            FieldExpr::Static(_) => false,
            FieldExpr::Field(_) => true,
            FieldExpr::And(operands) | FieldExpr::Or(operands) => {
                operands.iter().any(FieldExpr::references_span)
            }
            FieldExpr::Binary(binary) => binary.lhs.references_span() || binary.rhs.references_span(),
            FieldExpr::Regex(regex) => regex.lhs.references_span(),
            FieldExpr::Unary(unary) => unary.expr.references_span(),
        }
    }

    /// The fields the expression reads, in order, without repeats.
    pub fn fields(&self) -> Vec<&Field> {
        let mut fields = Vec::new();
        self.collect_fields(&mut fields);
        fields
    }

    fn collect_fields<'a>(&'a self, fields: &mut Vec<&'a Field>) {
        match self {
            FieldExpr::Static(_) => {}
            FieldExpr::Field(field) => push_unique(fields, field),
            FieldExpr::And(operands) | FieldExpr::Or(operands) => {
                for operand in operands {
                    operand.collect_fields(fields);
                }
            }
            FieldExpr::Binary(binary) => {
                binary.lhs.collect_fields(fields);
                binary.rhs.collect_fields(fields);
            }
            FieldExpr::Regex(regex) => regex.lhs.collect_fields(fields),
            FieldExpr::Unary(unary) => unary.expr.collect_fields(fields),
        }
    }
}

/// `lhs op rhs` in a field expression.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryExpr {
    /// The operator.
    pub op: BinaryOp,
    /// The left operand.
    pub lhs: FieldExpr,
    /// The right operand.
    pub rhs: FieldExpr,
}

/// The binary operators of field expressions, besides `&&`, `||` (see [`FieldExpr::And`],
/// [`FieldExpr::Or`]) and the regex matches (see [`RegexExpr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// Arithmetic: `+ - * / % ^`.
    Arithmetic(ArithmeticOp),
    /// Comparison: `= != < <= > >=`.
    Compare(CompareOp),
}

impl BinaryOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Arithmetic(op) => op.as_str(),
            BinaryOp::Compare(op) => op.as_str(),
        }
    }

    /// Whether the operator compares (its result is a boolean).
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Compare(_))
    }

    /// The comparison, if this is one.
    pub fn compare_op(self) -> Option<CompareOp> {
        match self {
            BinaryOp::Compare(op) => Some(op),
            BinaryOp::Arithmetic(_) => None,
        }
    }

    /// Precedence (higher binds tighter): `&& ||` are 1, comparisons 2, then as
    /// [`ArithmeticOp::precedence`].
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Arithmetic(op) => op.precedence(),
            BinaryOp::Compare(_) => 2,
        }
    }
}

/// `lhs =~ "re"` or `lhs !~ "re"`: the regex must match the whole value.
#[derive(Debug, Clone, PartialEq)]
pub struct RegexExpr {
    /// `!~` rather than `=~`.
    pub negated: bool,
    /// The tested expression.
    pub lhs: FieldExpr,
    /// The regex, compiled.
    pub regex: GoRegex,
}

/// `op expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnaryExpr {
    /// The operator.
    pub op: UnaryOp,
    /// The operand.
    pub expr: FieldExpr,
}

/// The unary operators of field expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `!x`.
    Not,
    /// `-x` (never over a numeric literal, which is negated when parsed).
    Negate,
    /// `x != nil`: the field is set.
    Exists,
    /// `x = nil`: the field is not set.
    NotExists,
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    /// A 64-bit integer (`minInt` and `maxInt` name the extremes).
    Int(i64),
    /// A float (`1.5`, `.5`, `1e3`).
    Float(f64),
    /// A string, unquoted.
    String(String),
    /// `true` or `false`.
    Bool(bool),
    /// A duration (`1h30m`, `100ms`), in nanoseconds like Go's `time.Duration`; negative only
    /// when written with a minus.
    Duration {
        /// The duration in nanoseconds.
        nanos: i64,
    },
    /// `ok`, `error` or `unset`.
    Status(Status),
    /// `server`, `client`, `producer`, `consumer`, `internal` or `unspecified`.
    Kind(SpanKind),
}

impl Static {
    /// The literal's type.
    pub fn static_type(&self) -> StaticType {
        match self {
            Static::Int(_) => StaticType::Int,
            Static::Float(_) => StaticType::Float,
            Static::String(_) => StaticType::String,
            Static::Bool(_) => StaticType::Bool,
            Static::Duration { .. } => StaticType::Duration,
            Static::Status(_) => StaticType::Status,
            Static::Kind(_) => StaticType::Kind,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Static::String(text) => Some(text),
            _ => None,
        }
    }

    /// The value as a float, for numbers and durations (durations in nanoseconds, as Tempo
    /// compares them).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Static::Int(value) => Some(value as f64),
            Static::Float(value) => Some(value),
            Static::Duration { nanos } => Some(nanos as f64),
            _ => None,
        }
    }
}

/// The types of TraceQL values, as far as the parser can tell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaticType {
    /// An attribute: its type is known only when the query runs.
    Unknown,
    /// An integer.
    Int,
    /// A float.
    Float,
    /// A string.
    String,
    /// A boolean.
    Bool,
    /// A duration.
    Duration,
    /// A span status.
    Status,
    /// A span kind.
    Kind,
}

impl StaticType {
    /// Whether values of the type are numbers (durations are).
    pub fn is_numeric(self) -> bool {
        matches!(self, StaticType::Int | StaticType::Float | StaticType::Duration)
    }
}

/// A span status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `error`.
    Error,
    /// `ok`.
    Ok,
    /// `unset`.
    Unset,
}

impl Status {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Error => "error",
            Status::Ok => "ok",
            Status::Unset => "unset",
        }
    }
}

/// A span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// `unspecified`.
    Unspecified,
    /// `internal`.
    Internal,
    /// `client`.
    Client,
    /// `server`.
    Server,
    /// `producer`.
    Producer,
    /// `consumer`.
    Consumer,
}

impl SpanKind {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Client => "client",
            SpanKind::Server => "server",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// Something a span has a value for: an intrinsic or an attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// `duration`, `span:name`, `trace:rootService`, ...
    Intrinsic(Intrinsic),
    /// `span.http.method`, `resource.service.name`, `.foo`, ...
    Attribute(Attribute),
}

impl Field {
    /// The field's type if the parser knows it (intrinsics), [`StaticType::Unknown`] for
    /// attributes.
    pub fn static_type(&self) -> StaticType {
        match self {
            Field::Intrinsic(intrinsic) => intrinsic.static_type(),
            Field::Attribute(_) => StaticType::Unknown,
        }
    }

    /// The attribute, if this is one.
    pub fn as_attribute(&self) -> Option<&Attribute> {
        match self {
            Field::Attribute(attribute) => Some(attribute),
            Field::Intrinsic(_) => None,
        }
    }

    /// The intrinsic, if this is one.
    pub fn as_intrinsic(&self) -> Option<Intrinsic> {
        match self {
            Field::Intrinsic(intrinsic) => Some(*intrinsic),
            Field::Attribute(_) => None,
        }
    }
}

/// A span attribute reference: `span.x`, `resource.x`, `.x` (span or resource), ...
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// Where the attribute is looked up.
    pub scope: AttributeScope,
    /// `parent.`: the attribute of the span's parent (scope `None`, `Span` or `Resource`).
    pub parent: bool,
    /// The attribute's name (`service.name`); may hold any character.
    pub name: String,
}

impl Attribute {
    /// An attribute of `scope`, not of the parent.
    pub fn new(scope: AttributeScope, name: impl Into<String>) -> Attribute {
        Attribute {
            scope,
            parent: false,
            name: name.into(),
        }
    }
}

/// The scope prefix of an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttributeScope {
    /// `.x`: the span's attribute, else its resource's.
    None,
    /// `span.x`.
    Span,
    /// `resource.x`.
    Resource,
    /// `event.x`: an attribute of one of the span's events.
    Event,
    /// `link.x`: an attribute of one of the span's links.
    Link,
    /// `instrumentation.x`: an attribute of the instrumentation scope.
    Instrumentation,
}

impl AttributeScope {
    /// The prefix as written, with its dot (`"span."`, `"."` for `None`).
    pub fn prefix(self) -> &'static str {
        match self {
            AttributeScope::None => ".",
            AttributeScope::Span => "span.",
            AttributeScope::Resource => "resource.",
            AttributeScope::Event => "event.",
            AttributeScope::Link => "link.",
            AttributeScope::Instrumentation => "instrumentation.",
        }
    }
}

/// The intrinsics: fields every span (or trace, event, link) has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intrinsic {
    /// `duration`, `span:duration`.
    Duration,
    /// `name`, `span:name`.
    Name,
    /// `status`, `span:status`.
    Status,
    /// `statusMessage`, `span:statusMessage`.
    StatusMessage,
    /// `kind`, `span:kind`.
    Kind,
    /// `span:childCount`.
    ChildCount,
    /// `span:id` (hex).
    SpanId,
    /// `span:parentID` (hex).
    ParentId,
    /// `rootServiceName`, `trace:rootService`.
    TraceRootService,
    /// `rootName`, `trace:rootName`.
    TraceRootName,
    /// `traceDuration`, `trace:duration`.
    TraceDuration,
    /// `trace:id` (hex).
    TraceId,
    /// `event:name`.
    EventName,
    /// `event:timeSinceStart`.
    EventTimeSinceStart,
    /// `link:spanID`.
    LinkSpanId,
    /// `link:traceID`.
    LinkTraceId,
    /// `instrumentation:name`.
    InstrumentationName,
    /// `instrumentation:version`.
    InstrumentationVersion,
    /// `nestedSetLeft` (Tempo-internal).
    NestedSetLeft,
    /// `nestedSetRight` (Tempo-internal).
    NestedSetRight,
    /// `nestedSetParent` (Tempo-internal).
    NestedSetParent,
}

impl Intrinsic {
    /// Every intrinsic.
    pub const ALL: [Intrinsic; 21] = [
        Intrinsic::Duration,
        Intrinsic::Name,
        Intrinsic::Status,
        Intrinsic::StatusMessage,
        Intrinsic::Kind,
        Intrinsic::ChildCount,
        Intrinsic::SpanId,
        Intrinsic::ParentId,
        Intrinsic::TraceRootService,
        Intrinsic::TraceRootName,
        Intrinsic::TraceDuration,
        Intrinsic::TraceId,
        Intrinsic::EventName,
        Intrinsic::EventTimeSinceStart,
        Intrinsic::LinkSpanId,
        Intrinsic::LinkTraceId,
        Intrinsic::InstrumentationName,
        Intrinsic::InstrumentationVersion,
        Intrinsic::NestedSetLeft,
        Intrinsic::NestedSetRight,
        Intrinsic::NestedSetParent,
    ];

    /// The name Tempo prints (and the tag name its tag APIs use): the legacy unscoped name
    /// where there is one (`duration`, `rootServiceName`), the scoped one otherwise
    /// (`span:childCount`, `trace:id`).
    pub fn as_str(self) -> &'static str {
        match self {
            Intrinsic::Duration => "duration",
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::ChildCount => "span:childCount",
            Intrinsic::SpanId => "span:id",
            Intrinsic::ParentId => "span:parentID",
            Intrinsic::TraceRootService => "rootServiceName",
            Intrinsic::TraceRootName => "rootName",
            Intrinsic::TraceDuration => "traceDuration",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::EventName => "event:name",
            Intrinsic::EventTimeSinceStart => "event:timeSinceStart",
            Intrinsic::LinkSpanId => "link:spanID",
            Intrinsic::LinkTraceId => "link:traceID",
            Intrinsic::InstrumentationName => "instrumentation:name",
            Intrinsic::InstrumentationVersion => "instrumentation:version",
            Intrinsic::NestedSetLeft => "nestedSetLeft",
            Intrinsic::NestedSetRight => "nestedSetRight",
            Intrinsic::NestedSetParent => "nestedSetParent",
        }
    }

    /// The intrinsic's type.
    pub fn static_type(self) -> StaticType {
        match self {
            Intrinsic::Duration | Intrinsic::TraceDuration | Intrinsic::EventTimeSinceStart => {
                StaticType::Duration
            }
            Intrinsic::ChildCount
            | Intrinsic::NestedSetLeft
            | Intrinsic::NestedSetRight
            | Intrinsic::NestedSetParent => StaticType::Int,
            Intrinsic::Status => StaticType::Status,
            Intrinsic::Kind => StaticType::Kind,
            Intrinsic::Name
            | Intrinsic::StatusMessage
            | Intrinsic::SpanId
            | Intrinsic::ParentId
            | Intrinsic::TraceRootService
            | Intrinsic::TraceRootName
            | Intrinsic::TraceId
            | Intrinsic::EventName
            | Intrinsic::LinkSpanId
            | Intrinsic::LinkTraceId
            | Intrinsic::InstrumentationName
            | Intrinsic::InstrumentationVersion => StaticType::String,
        }
    }

    /// What the intrinsic describes: one value per trace (`trace:*`, `rootName`, ...), per
    /// span, per event, per link or per instrumentation scope.
    pub fn level(self) -> IntrinsicLevel {
        match self {
            Intrinsic::TraceRootService
            | Intrinsic::TraceRootName
            | Intrinsic::TraceDuration
            | Intrinsic::TraceId => IntrinsicLevel::Trace,
            Intrinsic::EventName | Intrinsic::EventTimeSinceStart => IntrinsicLevel::Event,
            Intrinsic::LinkSpanId | Intrinsic::LinkTraceId => IntrinsicLevel::Link,
            Intrinsic::InstrumentationName | Intrinsic::InstrumentationVersion => {
                IntrinsicLevel::Instrumentation
            }
            _ => IntrinsicLevel::Span,
        }
    }
}

/// What an [`Intrinsic`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntrinsicLevel {
    /// The whole trace.
    Trace,
    /// The span.
    Span,
    /// One of the span's events.
    Event,
    /// One of the span's links.
    Link,
    /// The span's instrumentation scope.
    Instrumentation,
}

// ---- Regexes --------------------------------------------------------------------------------

/// The most bytes one compiled regex may take: realistic patterns need a few KiB; the bound
/// keeps a hostile query (`.{1000}{1000}`) from taking memory and time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A regex in Go's RE2 syntax, compiled to match whole values, `.` matching a newline too
/// (Tempo matches with Prometheus' `FastRegexMatcher`, which compiles `^(?s:re)$`).
///
/// Two values are equal when their source text is.
#[derive(Clone)]
pub struct GoRegex {
    source: String,
    regex: regex::Regex,
}

impl GoRegex {
    /// Compiles `source` (Go syntax); the error is the one-line reason.
    pub fn new(source: &str) -> Result<GoRegex, String> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{})$", go_syntax_to_rust(source)))
            .octal(true)
            .dot_matches_new_line(true)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|err| regex_error_message(&err))?;
        Ok(GoRegex {
            source: source.to_owned(),
            regex,
        })
    }

    /// The pattern as the query wrote it (Go syntax).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The compiled, anchored regex.
    pub fn regex(&self) -> &regex::Regex {
        &self.regex
    }

    /// Whether the regex matches the whole of `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// The values the regex matches, if it is an alternation of literals: Grafana's search
    /// builder turns a multi-select into `=~"a|b"`, which a store can answer as `IN (a, b)`.
    /// Escaped punctuation (`a\.b`) counts as literal; any other regex syntax gives `None`.
    pub fn literal_alternatives(&self) -> Option<Vec<String>> {
        let mut alternatives = vec![String::new()];
        let mut chars = self.source.chars();
        while let Some(c) = chars.next() {
            match c {
                '|' => alternatives.push(String::new()),
                '\\' => match chars.next() {
                    Some(escaped) if escaped.is_ascii_punctuation() => alternatives.last_mut()?.push(escaped),
                    _ => return None,
                },
                '.' | '+' | '*' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '^' | '$' => return None,
                other => alternatives.last_mut()?.push(other),
            }
        }
        Some(alternatives)
    }
}

impl PartialEq for GoRegex {
    fn eq(&self, other: &GoRegex) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for GoRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GoRegex").field(&self.source).finish()
    }
}

// ---- Metrics --------------------------------------------------------------------------------

/// A TraceQL metrics query.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsExpr {
    /// `{ ... } | rate() by (x) | topk(5) > 10`.
    Pipeline(Box<MetricsPipeline>),
    /// Arithmetic between series or with a scalar: `(a) / (b)`, `(a) * 100`.
    Binary(Box<MetricsBinary>),
    /// A constant operand of [`MetricsExpr::Binary`] (constant arithmetic is folded).
    Scalar(f64),
    /// Second stages applied to an arithmetic result: `(a) + (b) | topk(5)`.
    Staged(Box<StagedMetrics>),
}

impl MetricsExpr {
    /// The metrics pipelines the expression combines, in query order.
    pub fn pipelines(&self) -> Vec<&MetricsPipeline> {
        let mut pipelines = Vec::new();
        self.collect_pipelines(&mut pipelines);
        pipelines
    }

    fn collect_pipelines<'a>(&'a self, pipelines: &mut Vec<&'a MetricsPipeline>) {
        match self {
            MetricsExpr::Pipeline(pipeline) => pipelines.push(pipeline),
            MetricsExpr::Binary(binary) => {
                binary.lhs.collect_pipelines(pipelines);
                binary.rhs.collect_pipelines(pipelines);
            }
            MetricsExpr::Scalar(_) => {}
            MetricsExpr::Staged(staged) => staged.expr.collect_pipelines(pipelines),
        }
    }

    /// The pipeline, if the expression is a single metrics pipeline (no arithmetic).
    pub fn single_pipeline(&self) -> Option<&MetricsPipeline> {
        match self {
            MetricsExpr::Pipeline(pipeline) => Some(pipeline),
            _ => None,
        }
    }
}

/// `lhs op rhs` over metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsBinary {
    /// `+`, `-`, `*` or `/`.
    pub op: ArithmeticOp,
    /// The left operand.
    pub lhs: MetricsExpr,
    /// The right operand.
    pub rhs: MetricsExpr,
}

/// Second stages applied to a [`MetricsExpr::Binary`].
#[derive(Debug, Clone, PartialEq)]
pub struct StagedMetrics {
    /// The expression.
    pub expr: MetricsExpr,
    /// At least one stage, in order.
    pub stages: Vec<SecondStage>,
}

/// A spanset pipeline turned into series by a metrics function.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsPipeline {
    /// The spans counted or measured.
    pub pipeline: Pipeline,
    /// The metrics function.
    pub function: MetricsFunction,
    /// What is applied to the series afterwards, in order.
    pub second_stages: Vec<SecondStage>,
}

/// The first stage of a metrics pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricsFunction {
    /// `rate()`, `count_over_time()`, `quantile_over_time(duration, .9)`, ... with `by()`.
    Aggregate(MetricsAggregate),
    /// `compare({ ... })`.
    Compare(Compare),
}

/// A metrics aggregation over time.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsAggregate {
    /// The function.
    pub op: MetricsOp,
    /// Its field argument: present exactly for the functions that take one.
    pub field: Option<Field>,
    /// The quantiles of `quantile_over_time`, each in `0..=1`; empty for other functions.
    pub quantiles: Vec<f64>,
    /// The `by(...)` grouping fields (empty for a single series).
    pub by: Vec<Field>,
}

/// The metrics functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricsOp {
    /// `rate()`: spans per second.
    Rate,
    /// `count_over_time()`: spans per step.
    CountOverTime,
    /// `min_over_time(x)`.
    MinOverTime,
    /// `max_over_time(x)`.
    MaxOverTime,
    /// `avg_over_time(x)`.
    AvgOverTime,
    /// `sum_over_time(x)`.
    SumOverTime,
    /// `quantile_over_time(x, q...)`.
    QuantileOverTime,
    /// `histogram_over_time(x)`.
    HistogramOverTime,
}

impl MetricsOp {
    /// Every function.
    pub const ALL: [MetricsOp; 8] = [
        MetricsOp::Rate,
        MetricsOp::CountOverTime,
        MetricsOp::MinOverTime,
        MetricsOp::MaxOverTime,
        MetricsOp::AvgOverTime,
        MetricsOp::SumOverTime,
        MetricsOp::QuantileOverTime,
        MetricsOp::HistogramOverTime,
    ];

    /// The function's name.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricsOp::Rate => "rate",
            MetricsOp::CountOverTime => "count_over_time",
            MetricsOp::MinOverTime => "min_over_time",
            MetricsOp::MaxOverTime => "max_over_time",
            MetricsOp::AvgOverTime => "avg_over_time",
            MetricsOp::SumOverTime => "sum_over_time",
            MetricsOp::QuantileOverTime => "quantile_over_time",
            MetricsOp::HistogramOverTime => "histogram_over_time",
        }
    }

    /// Whether the function takes a field argument (all but `rate` and `count_over_time`).
    pub fn takes_field(self) -> bool {
        !matches!(self, MetricsOp::Rate | MetricsOp::CountOverTime)
    }
}

/// `compare({ selection }, top_n, start, end)`: how attribute values differ between the
/// selection and the other spans.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    /// The selected spans.
    pub selection: SpansetFilter,
    /// How many values to return per attribute (1 to 1000; 10 when not given).
    pub top_n: u32,
    /// The selection's time range in Unix nanoseconds (`start < end`), if given.
    pub time_range_ns: Option<(i64, i64)>,
}

/// A step applied to series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SecondStage {
    /// `topk(n)`: the `n` series with the highest values (`n > 0`).
    TopK(u32),
    /// `bottomk(n)`.
    BottomK(u32),
    /// `> 10`: keeps the samples satisfying the comparison (durations are in seconds here).
    Filter(CompareOp, f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_match_whole_values_with_go_syntax() {
        let regex = GoRegex::new(r"a.c|\d+").unwrap();
        assert!(regex.is_match("a\nc"));
        assert!(regex.is_match("123"));
        assert!(!regex.is_match("xabc"));
        assert!(!regex.is_match("١٢"), "\\d is ASCII in Go");
        assert!(GoRegex::new("[").is_err());
        assert_eq!(GoRegex::new("a").unwrap(), GoRegex::new("a").unwrap());
    }

    #[test]
    fn literal_alternatives_recognise_multi_selects() {
        let alternatives = |source: &str| GoRegex::new(source).unwrap().literal_alternatives();
        assert_eq!(
            alternatives("agixt|api"),
            Some(vec!["agixt".to_owned(), "api".to_owned()])
        );
        assert_eq!(
            alternatives(r"a\.b|c-d"),
            Some(vec!["a.b".to_owned(), "c-d".to_owned()])
        );
        assert_eq!(alternatives("x"), Some(vec!["x".to_owned()]));
        assert_eq!(alternatives("a.*"), None);
        assert_eq!(alternatives(r"\d"), None);
        assert_eq!(alternatives("(a|b)"), None);
    }

    #[test]
    fn compare_ops_flip_and_apply() {
        assert_eq!(CompareOp::Lt.flipped(), CompareOp::Gt);
        assert_eq!(CompareOp::Eq.flipped(), CompareOp::Eq);
        assert!(CompareOp::Gte.compare(2, 2));
        assert!(!CompareOp::Neq.compare("a", "a"));
    }

    #[test]
    fn intrinsic_types_follow_tempo() {
        assert_eq!(Intrinsic::Duration.static_type(), StaticType::Duration);
        assert_eq!(Intrinsic::ChildCount.static_type(), StaticType::Int);
        assert_eq!(Intrinsic::TraceId.static_type(), StaticType::String);
        assert_eq!(Intrinsic::TraceRootService.level(), IntrinsicLevel::Trace);
        assert_eq!(Intrinsic::ALL.len(), 21);
    }
}
