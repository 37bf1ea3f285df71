//! TraceQL search: the spansets a query returns from one trace.
//!
//! [`search`] runs a query's [`Pipeline`] over a [`Trace`] the way Tempo's engine
//! (`pkg/traceql/ast_execute.go`, `ast_conditions.go`, `enum_statics.go` and the structural
//! operators of `tempodb/encoding/vparquet4/block_traceql.go`) does: the trace enters as one
//! spanset holding all its spans, and each pipeline stage maps spansets to spansets.
//! [`response_attributes`] gives the fields of one span a search response carries.
//!
//! The type rules are Tempo's: numbers (ints, floats, durations in nanoseconds) compare with
//! each other, strings with strings, statuses and kinds only for (in)equality; any
//! comparison with a missing field is false (`{ .a != "x" }` skips spans without `.a`), and
//! so is any comparison between mismatched types. Structural operators use the nested-set
//! numbering Tempo stores (spans unreachable from a root are related to nothing).
//! Trace-level intrinsics come from the root span (the earliest-starting one if there are
//! several; empty strings when there is none, as Tempo stores them) and from the earliest
//! start and latest end of the trace's spans. A filter reading event (link) fields holds for
//! a span when it holds for one of its events (links).
//!
//! Where this engine knowingly differs from Tempo's:
//!
//! - errors Tempo raises while running (`!` of a non-boolean, integer division or modulo by
//!   zero, `-` of a non-number) make the span not match instead of failing the query;
//! - `a ^ b` between integers is `a` to the power `b` (Tempo's engine computes `b ^ a`);
//! - `x = nil` is true exactly when `x` is missing, `span:parentID` of a root is nil, and
//!   `true || x` is true whatever `x` is;
//! - scalar filters take any arithmetic of aggregates and literals on either side, and
//!   parenthesized `(pipeline | aggregate)` operands (Tempo runs only `aggregate op literal`);
//! - `by()` groups come out in the order their first span appears (Tempo's order is random),
//!   and `min`/`max` of negative floats order by value;
//! - a span id repeated in one trace resolves to its first span (Tempo pairs Zipkin
//!   client/server spans by kind).

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::HashMap;

use obs_core::otlp::hex;

use crate::ast::{
    Aggregate, AggregateOp, ArithmeticOp, AttributeScope, BinaryOp, CompareOp, Field, FieldExpr, Intrinsic,
    IntrinsicLevel, Pipeline, PipelineElement, RootExpr, ScalarExpr, ScalarFilter, SpanKind, SpansetExpr,
    SpansetOp, Static, Status, UnaryOp,
};
use crate::error::EvalError;
use crate::model::{AttrValue, Span, Trace, attribute};

/// The most (event, link) combinations one span is tested with when a filter reads both
/// event and link fields: bounds the work a span with thousands of each can cause.
const MAX_EVENT_LINK_COMBINATIONS: usize = 1 << 16;

/// One spanset a query returns from a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SpansetMatch {
    /// Indices into `trace.spans` of the spans in this spanset, sorted by start time (then
    /// index).
    pub spans: Vec<usize>,
    /// How many spans matched (before any spans-per-spanset cut; the caller cuts).
    pub matched: usize,
    /// Attributes of the spanset itself, in the order Tempo adds them: `by()` values under
    /// `by(<expr>)` and aggregate results under their text (`count()`, `avg(duration)`).
    /// Durations are Go-formatted strings (`1.5s`), statuses and kinds their keywords and
    /// missing values the string `nil`, as Tempo's response encodes them.
    pub attributes: Vec<(String, AttrValue)>,
}

/// The spansets of `trace` that `query` returns; empty when the trace does not match.
///
/// Errors for metrics queries, `parent.` attributes and structural operators applied to
/// several spansets at once (Tempo's "consider using coalesce()").
pub fn search(query: &RootExpr, trace: &Trace) -> Result<Vec<SpansetMatch>, EvalError> {
    let Some(pipeline) = query.pipeline() else {
        return Err(EvalError::WrongQueryKind(
            "metrics queries are served by the metrics query_range endpoint, not by search",
        ));
    };
    check_supported(query)?;
    let context = TraceContext::new(trace);
    let spansets = context.run_pipeline(pipeline)?;
    Ok(spansets
        .into_iter()
        .map(|spanset| {
            let mut spans = spanset.spans;
            spans.sort_by_key(|&index| (trace.spans.get(index).map_or(0, |span| span.start_ns), index));
            SpansetMatch {
                matched: spans.len(),
                spans,
                attributes: spanset
                    .attributes
                    .into_iter()
                    .map(|(name, value)| (name, value.to_attr_value()))
                    .collect(),
            }
        })
        .collect())
}

/// The attributes of `span` (a span of `trace`) a search response returns: every field the
/// query reads or `select()`s, keyed as Tempo keys them (attributes by their name without
/// scope, `service.name`; intrinsics by their name, `status`, `kind`, `span:childCount`),
/// skipping missing values and the intrinsics a response carries elsewhere (`name`,
/// `duration`, `span:id`, `trace:id`, `rootName`, `rootServiceName`, `traceDuration`).
/// Event and link fields are read from the span's first event and link.
pub fn response_attributes(query: &RootExpr, span: &Span, trace: &Trace) -> Vec<(String, AttrValue)> {
    let Some(index) = trace
        .spans
        .iter()
        .position(|candidate| std::ptr::eq(candidate, span))
        .or_else(|| trace.spans.iter().position(|candidate| candidate == span))
    else {
        return Vec::new();
    };
    let context = TraceContext::new(trace);
    let at = At {
        span: index,
        event: (!span.events.is_empty()).then_some(0),
        link: (!span.links.is_empty()).then_some(0),
    };
    let mut attributes: Vec<(String, AttrValue)> = Vec::new();
    for field in query.referenced_fields() {
        let key = match field {
            Field::Intrinsic(
                Intrinsic::Name
                | Intrinsic::Duration
                | Intrinsic::TraceDuration
                | Intrinsic::TraceRootService
                | Intrinsic::TraceRootName
                | Intrinsic::TraceId
                | Intrinsic::SpanId,
            ) => continue,
            Field::Intrinsic(intrinsic) => intrinsic.as_str(),
            Field::Attribute(attribute) if attribute.parent => continue,
            Field::Attribute(attribute) => attribute.name.as_str(),
        };
        if attributes.iter().any(|(existing, _)| existing == key) {
            continue;
        }
        let value = context.field(field, at);
        if value != Value::Nil {
            attributes.push((key.to_owned(), value.to_attr_value()));
        }
    }
    attributes
}

/// Refuses what the engine does not run: `parent.` attributes (Tempo refuses them too).
pub(crate) fn check_supported(query: &RootExpr) -> Result<(), EvalError> {
    let parent = query
        .referenced_fields()
        .into_iter()
        .any(|field| matches!(field, Field::Attribute(attribute) if attribute.parent));
    if parent {
        return Err(EvalError::Unsupported("the parent. attribute scope".to_owned()));
    }
    Ok(())
}

// ---- Values ---------------------------------------------------------------------------------

/// A value during evaluation: Tempo's `Static`, borrowing strings from the trace or query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    /// A missing field.
    Nil,
    Int(i64),
    Float(f64),
    String(Cow<'a, str>),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(Status),
    Kind(SpanKind),
}

/// The runtime type of a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Nil,
    Int,
    Float,
    String,
    Bool,
    Duration,
    Status,
    Kind,
}

impl Type {
    fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Duration)
    }

    /// Tempo's `isMatchingOperand`: whether two types may meet in a binary operation.
    fn matches_operand(self, other: Type) -> bool {
        self == other || (self.is_numeric() && other.is_numeric()) || self == Type::Nil || other == Type::Nil
    }
}

/// A binary operation, for Tempo's `binaryTypeValid` (regexes are checked apart: they
/// match strings only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    And,
    Or,
    Arithmetic(ArithmeticOp),
    Compare(CompareOp),
}

fn type_valid(op: Op, ty: Type) -> bool {
    let equality = matches!(op, Op::Compare(CompareOp::Eq | CompareOp::Neq));
    match ty {
        Type::Bool => equality || matches!(op, Op::And | Op::Or),
        Type::Int | Type::Float | Type::Duration => matches!(op, Op::Arithmetic(_) | Op::Compare(_)),
        Type::String => matches!(op, Op::Compare(_)),
        Type::Nil | Type::Status | Type::Kind => equality,
    }
}

impl<'a> Value<'a> {
    fn ty(&self) -> Type {
        match self {
            Value::Nil => Type::Nil,
            Value::Int(_) => Type::Int,
            Value::Float(_) => Type::Float,
            Value::String(_) => Type::String,
            Value::Bool(_) => Type::Bool,
            Value::Duration(_) => Type::Duration,
            Value::Status(_) => Type::Status,
            Value::Kind(_) => Type::Kind,
        }
    }

    /// The value as a float: numbers and durations (nanoseconds); NaN otherwise.
    pub(crate) fn as_f64(&self) -> f64 {
        match *self {
            Value::Int(value) => value as f64,
            Value::Float(value) => value,
            Value::Duration(nanos) => nanos as f64,
            _ => f64::NAN,
        }
    }

    fn from_static(value: &'a Static) -> Value<'a> {
        match value {
            Static::Int(value) => Value::Int(*value),
            Static::Float(value) => Value::Float(*value),
            Static::String(text) => Value::String(Cow::Borrowed(text)),
            Static::Bool(value) => Value::Bool(*value),
            Static::Duration { nanos } => Value::Duration(*nanos),
            Static::Status(status) => Value::Status(*status),
            Static::Kind(kind) => Value::Kind(*kind),
        }
    }

    pub(crate) fn from_attr(value: &'a AttrValue) -> Value<'a> {
        match value {
            AttrValue::String(text) => Value::String(Cow::Borrowed(text)),
            AttrValue::Int(value) => Value::Int(*value),
            AttrValue::Float(value) => Value::Float(*value),
            AttrValue::Bool(value) => Value::Bool(*value),
        }
    }

    /// The value as a response encodes it (Tempo's `AsAnyValue`).
    pub(crate) fn to_attr_value(&self) -> AttrValue {
        match self {
            Value::Nil => AttrValue::String("nil".to_owned()),
            Value::Int(value) => AttrValue::Int(*value),
            Value::Float(value) => AttrValue::Float(*value),
            Value::String(text) => AttrValue::String(text.to_string()),
            Value::Bool(value) => AttrValue::Bool(*value),
            Value::Duration(nanos) => AttrValue::String(format_go_duration(*nanos)),
            Value::Status(status) => AttrValue::String(status.as_str().to_owned()),
            Value::Kind(kind) => AttrValue::String(kind.as_str().to_owned()),
        }
    }

    /// A hashable identity: equal keys for values Tempo groups together (same type and value).
    pub(crate) fn key(&self) -> ValueKey {
        match self {
            Value::Nil => ValueKey::Nil,
            Value::Int(value) => ValueKey::Int(*value),
            Value::Float(value) => ValueKey::Float(value.to_bits()),
            Value::String(text) => ValueKey::String(text.to_string()),
            Value::Bool(value) => ValueKey::Bool(*value),
            Value::Duration(nanos) => ValueKey::Duration(*nanos),
            Value::Status(status) => ValueKey::Status(*status),
            Value::Kind(kind) => ValueKey::Kind(*kind),
        }
    }
}

/// The identity of a [`Value`] for grouping (`by()`, metrics series).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ValueKey {
    Nil,
    Int(i64),
    Float(u64),
    String(String),
    Bool(bool),
    Duration(i64),
    Status(Status),
    Kind(SpanKind),
}

/// Tempo's `Static.Equals`: numbers compare by value across types, other types only with
/// themselves; nil equals nothing.
fn values_equal(lhs: &Value<'_>, rhs: &Value<'_>) -> bool {
    match (lhs, rhs) {
        (Value::Nil, _) | (_, Value::Nil) => false,
        (Value::Int(a) | Value::Duration(a), Value::Int(b) | Value::Duration(b)) => a == b,
        (Value::Int(_) | Value::Duration(_) | Value::Float(_), Value::Float(_))
        | (Value::Float(_), Value::Int(_) | Value::Duration(_)) => lhs.as_f64() == rhs.as_f64(),
        (Value::String(a), Value::String(b)) => a == b,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Status(a), Value::Status(b)) => a == b,
        (Value::Kind(a), Value::Kind(b)) => a == b,
        _ => false,
    }
}

/// Orders two values for `min()`/`max()` (Tempo's `Static.compare`): numbers by value, strings
/// by bytes, other types by their type.
fn compare_values(lhs: &Value<'_>, rhs: &Value<'_>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if lhs.ty().is_numeric() && rhs.ty().is_numeric() {
        return lhs.as_f64().partial_cmp(&rhs.as_f64()).unwrap_or(Ordering::Equal);
    }
    match (lhs, rhs) {
        (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        _ => (lhs.ty() as u8).cmp(&(rhs.ty() as u8)),
    }
}

/// `lhs op rhs` with Tempo's rules (`BinaryOperation.execute`). Mismatched or unsupported
/// types give `false`; integer division by zero gives nil (Tempo fails the query).
fn binary<'a>(op: BinaryOp, lhs: Value<'a>, rhs: Value<'a>) -> Value<'a> {
    let kind = match op {
        BinaryOp::Arithmetic(op) => Op::Arithmetic(op),
        BinaryOp::Compare(op) => Op::Compare(op),
    };
    let (lhs_type, rhs_type) = (lhs.ty(), rhs.ty());
    if !lhs_type.matches_operand(rhs_type) || !type_valid(kind, lhs_type) || !type_valid(kind, rhs_type) {
        return Value::Bool(false);
    }
    match (&lhs, &rhs) {
        (Value::String(a), Value::String(b)) => {
            if let Op::Compare(compare) = kind
                && !matches!(compare, CompareOp::Eq | CompareOp::Neq)
            {
                return Value::Bool(compare.compare(a.as_bytes(), b.as_bytes()));
            }
        }
        (Value::Int(a), Value::Int(b)) => {
            let (a, b) = (*a, *b);
            match kind {
                Op::Arithmetic(ArithmeticOp::Add) => return Value::Int(a.wrapping_add(b)),
                Op::Arithmetic(ArithmeticOp::Sub) => return Value::Int(a.wrapping_sub(b)),
                Op::Arithmetic(ArithmeticOp::Mul) => return Value::Int(a.wrapping_mul(b)),
                Op::Arithmetic(ArithmeticOp::Div) => {
                    return if b == 0 {
                        Value::Nil
                    } else {
                        Value::Int(a.wrapping_div(b))
                    };
                }
                Op::Arithmetic(ArithmeticOp::Mod) => {
                    return if b == 0 {
                        Value::Nil
                    } else {
                        Value::Int(a.wrapping_rem(b))
                    };
                }
                Op::Arithmetic(ArithmeticOp::Pow) => return Value::Int((a as f64).powf(b as f64) as i64),
                Op::Compare(compare) if !matches!(compare, CompareOp::Eq | CompareOp::Neq) => {
                    return Value::Bool(compare.compare(a, b));
                }
                _ => {}
            }
        }
        _ => {}
    }
    let (a, b) = (lhs.as_f64(), rhs.as_f64());
    match kind {
        Op::Arithmetic(ArithmeticOp::Add) => Value::Float(a + b),
        Op::Arithmetic(ArithmeticOp::Sub) => Value::Float(a - b),
        Op::Arithmetic(ArithmeticOp::Mul) => Value::Float(a * b),
        Op::Arithmetic(ArithmeticOp::Div) => Value::Float(a / b),
        Op::Arithmetic(ArithmeticOp::Mod) => Value::Float(a % b),
        Op::Arithmetic(ArithmeticOp::Pow) => Value::Float(a.powf(b)),
        Op::Compare(CompareOp::Eq) => Value::Bool(values_equal(&lhs, &rhs)),
        Op::Compare(CompareOp::Neq) => {
            Value::Bool(lhs != Value::Nil && rhs != Value::Nil && !values_equal(&lhs, &rhs))
        }
        Op::Compare(compare) => Value::Bool(compare.compare(a, b)),
        Op::And | Op::Or => Value::Bool(false),
    }
}

/// `lhs && rhs` / `lhs || rhs`: booleans only; anything else is false.
fn logical(op: Op, lhs: &Value<'_>, rhs: &Value<'_>) -> bool {
    match (lhs, rhs) {
        (Value::Bool(a), Value::Bool(b)) => {
            if op == Op::And {
                *a && *b
            } else {
                *a || *b
            }
        }
        _ => false,
    }
}

/// A duration as Go's `time.Duration.String` writes it (`1h2m3.5s`, `1.5ms`, `0s`): how
/// Tempo encodes durations in responses.
pub(crate) fn format_go_duration(nanos: i64) -> String {
    let negative = nanos < 0;
    let magnitude = nanos.unsigned_abs();
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    if magnitude == 0 {
        return "0s".to_owned();
    }
    let fraction = |value: u64, scale: u64, unit: &str| -> String {
        let whole = value / scale;
        let rest = value % scale;
        if rest == 0 {
            return format!("{whole}{unit}");
        }
        let digits = scale.ilog10() as usize;
        let rest = format!("{rest:0digits$}");
        format!("{whole}.{}{unit}", rest.trim_end_matches('0'))
    };
    if magnitude < 1_000 {
        text.push_str(&format!("{magnitude}ns"));
    } else if magnitude < 1_000_000 {
        text.push_str(&fraction(magnitude, 1_000, "µs"));
    } else if magnitude < 1_000_000_000 {
        text.push_str(&fraction(magnitude, 1_000_000, "ms"));
    } else {
        let hours = magnitude / 3_600_000_000_000;
        let minutes = (magnitude / 60_000_000_000) % 60;
        let seconds_nanos = magnitude % 60_000_000_000;
        if hours > 0 {
            text.push_str(&format!("{hours}h"));
        }
        if hours > 0 || minutes > 0 {
            text.push_str(&format!("{minutes}m"));
        }
        text.push_str(&fraction(seconds_nanos, 1_000_000_000, "s"));
    }
    text
}

// ---- The trace ------------------------------------------------------------------------------

/// Where a field is read: a span and, for event and link fields, one of its events and links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    pub(crate) span: usize,
    pub(crate) event: Option<usize>,
    pub(crate) link: Option<usize>,
}

impl At {
    pub(crate) fn span(span: usize) -> At {
        At {
            span,
            event: None,
            link: None,
        }
    }
}

/// Trace-level values: the root span and the trace's time range.
#[derive(Debug)]
struct Summary {
    root_name: String,
    root_service: String,
    start_ns: u64,
    end_ns: u64,
    trace_id: String,
}

/// A span's place in the tree, numbered as Tempo's nested-set model: `left` and `right`
/// bracket the descendants, `parent` is the parent's `left` (-1 for a root); all 0 for
/// spans not reachable from a root.
#[derive(Debug, Clone, Copy, Default)]
struct NestedSet {
    left: i64,
    right: i64,
    parent: i64,
}

#[derive(Debug)]
struct Tree {
    nested: Vec<NestedSet>,
    /// The parent of each span reachable from a root (None for roots and unreachable spans).
    parent: Vec<Option<usize>>,
    /// The number of spans naming each span as parent.
    child_count: Vec<i64>,
}

impl Tree {
    fn build(trace: &Trace) -> Tree {
        let count = trace.spans.len();
        let mut by_id: HashMap<[u8; 8], usize> = HashMap::with_capacity(count);
        for (index, span) in trace.spans.iter().enumerate() {
            by_id.entry(span.span_id).or_insert(index);
        }
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); count];
        let mut child_count = vec![0i64; count];
        for (index, span) in trace.spans.iter().enumerate() {
            if span.is_root() {
                continue;
            }
            if let Some(&parent) = by_id.get(&span.parent_span_id)
                && parent != index
            {
                children[parent].push(index);
                child_count[parent] += 1;
            }
        }
        let mut nested = vec![NestedSet::default(); count];
        let mut parent_of = vec![None; count];
        let mut visited = vec![false; count];
        let mut bound: i64 = 1;
        for root in (0..count).filter(|&index| trace.spans[index].is_root()) {
            if visited[root] {
                continue;
            }
            visited[root] = true;
            nested[root] = NestedSet {
                left: bound,
                right: 0,
                parent: -1,
            };
            bound += 1;
            // (node, next child to visit)
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            while let Some(top) = stack.last_mut() {
                let (node, next) = *top;
                if let Some(&child) = children[node].get(next) {
                    top.1 += 1;
                    if visited[child] {
                        continue;
                    }
                    visited[child] = true;
                    nested[child] = NestedSet {
                        left: bound,
                        right: 0,
                        parent: nested[node].left,
                    };
                    parent_of[child] = Some(node);
                    bound += 1;
                    stack.push((child, 0));
                } else {
                    nested[node].right = bound;
                    bound += 1;
                    stack.pop();
                }
            }
        }
        Tree {
            nested,
            parent: parent_of,
            child_count,
        }
    }

    fn in_tree(&self, index: usize) -> bool {
        self.nested.get(index).is_some_and(|set| set.left != 0)
    }
}

/// A trace with what evaluation derives from it, computed on first use.
#[derive(Debug)]
pub(crate) struct TraceContext<'t> {
    trace: &'t Trace,
    summary: OnceCell<Summary>,
    tree: OnceCell<Tree>,
}

/// A set of spans of one trace, with the spanset's own attributes.
#[derive(Debug, Clone)]
pub(crate) struct Spanset<'a> {
    /// Indices into the trace's spans, without repeats.
    pub(crate) spans: Vec<usize>,
    /// `by()` values and aggregates, in the order they were added.
    pub(crate) attributes: Vec<(String, Value<'a>)>,
}

impl<'t> TraceContext<'t> {
    pub(crate) fn new(trace: &'t Trace) -> TraceContext<'t> {
        TraceContext {
            trace,
            summary: OnceCell::new(),
            tree: OnceCell::new(),
        }
    }

    pub(crate) fn trace(&self) -> &'t Trace {
        self.trace
    }

    fn summary(&self) -> &Summary {
        self.summary.get_or_init(|| {
            let spans = &self.trace.spans;
            let root = spans
                .iter()
                .filter(|span| span.is_root())
                .min_by_key(|span| span.start_ns);
            let trace_id = hex(&self.trace.trace_id);
            Summary {
                root_name: root.map(|span| span.name.clone()).unwrap_or_default(),
                root_service: root
                    .and_then(|span| span.resource.service_name())
                    .unwrap_or_default()
                    .to_owned(),
                start_ns: spans.iter().map(|span| span.start_ns).min().unwrap_or(0),
                end_ns: spans.iter().map(|span| span.end_ns).max().unwrap_or(0),
                trace_id: trace_id.trim_start_matches('0').to_owned(),
            }
        })
    }

    fn tree(&self) -> &Tree {
        self.tree.get_or_init(|| Tree::build(self.trace))
    }

    // ---- Fields ---------------------------------------------------------------------------

    /// The value of `field` at `at`.
    pub(crate) fn field<'a>(&'a self, field: &'a Field, at: At) -> Value<'a> {
        let Some(span) = self.trace.spans.get(at.span) else {
            return Value::Nil;
        };
        match field {
            Field::Intrinsic(intrinsic) => self.intrinsic(*intrinsic, span, at),
            Field::Attribute(attribute_ref) => {
                if attribute_ref.parent {
                    return Value::Nil;
                }
                let name = attribute_ref.name.as_str();
                let event = at.event.and_then(|index| span.events.get(index));
                let link = at.link.and_then(|index| span.links.get(index));
                let found = match attribute_ref.scope {
                    AttributeScope::Span => attribute(&span.attributes, name),
                    AttributeScope::Resource => attribute(&span.resource.attributes, name),
                    AttributeScope::Event => event.and_then(|event| attribute(&event.attributes, name)),
                    AttributeScope::Link => link.and_then(|link| attribute(&link.attributes, name)),
                    AttributeScope::Instrumentation => attribute(&span.scope.attributes, name),
                    AttributeScope::None => attribute(&span.attributes, name)
                        .or_else(|| attribute(&span.resource.attributes, name))
                        .or_else(|| event.and_then(|event| attribute(&event.attributes, name)))
                        .or_else(|| link.and_then(|link| attribute(&link.attributes, name)))
                        .or_else(|| attribute(&span.scope.attributes, name)),
                };
                found.map_or(Value::Nil, Value::from_attr)
            }
        }
    }

    fn intrinsic<'a>(&'a self, intrinsic: Intrinsic, span: &'a Span, at: At) -> Value<'a> {
        let duration = |nanos: u64| Value::Duration(i64::try_from(nanos).unwrap_or(i64::MAX));
        match intrinsic {
            Intrinsic::Duration => duration(span.duration_ns()),
            Intrinsic::Name => Value::String(Cow::Borrowed(&span.name)),
            Intrinsic::Status => Value::Status(span.status),
            Intrinsic::StatusMessage => Value::String(Cow::Borrowed(&span.status_message)),
            Intrinsic::Kind => Value::Kind(span.kind),
            Intrinsic::ChildCount => Value::Int(self.tree().child_count.get(at.span).copied().unwrap_or(0)),
            Intrinsic::SpanId => Value::String(Cow::Owned(hex(&span.span_id))),
            Intrinsic::ParentId => {
                if span.is_root() {
                    Value::Nil
                } else {
                    Value::String(Cow::Owned(hex(&span.parent_span_id)))
                }
            }
            Intrinsic::TraceRootService => Value::String(Cow::Borrowed(&self.summary().root_service)),
            Intrinsic::TraceRootName => Value::String(Cow::Borrowed(&self.summary().root_name)),
            Intrinsic::TraceDuration => {
                let summary = self.summary();
                duration(summary.end_ns.saturating_sub(summary.start_ns))
            }
            Intrinsic::TraceId => Value::String(Cow::Borrowed(&self.summary().trace_id)),
            Intrinsic::EventName => at
                .event
                .and_then(|index| span.events.get(index))
                .map_or(Value::Nil, |event| Value::String(Cow::Borrowed(&event.name))),
            Intrinsic::EventTimeSinceStart => at
                .event
                .and_then(|index| span.events.get(index))
                .map_or(Value::Nil, |event| {
                    duration(event.time_ns.saturating_sub(span.start_ns))
                }),
            Intrinsic::LinkSpanId => at
                .link
                .and_then(|index| span.links.get(index))
                .map_or(Value::Nil, |link| Value::String(Cow::Owned(hex(&link.span_id)))),
            Intrinsic::LinkTraceId => at
                .link
                .and_then(|index| span.links.get(index))
                .map_or(Value::Nil, |link| Value::String(Cow::Owned(hex(&link.trace_id)))),
            Intrinsic::InstrumentationName => Value::String(Cow::Borrowed(&span.scope.name)),
            Intrinsic::InstrumentationVersion => Value::String(Cow::Borrowed(&span.scope.version)),
            Intrinsic::NestedSetLeft => Value::Int(self.tree().nested.get(at.span).map_or(0, |set| set.left)),
            Intrinsic::NestedSetRight => {
                Value::Int(self.tree().nested.get(at.span).map_or(0, |set| set.right))
            }
            Intrinsic::NestedSetParent => {
                Value::Int(self.tree().nested.get(at.span).map_or(0, |set| set.parent))
            }
        }
    }

    /// Evaluates a field expression at `at`. Recursion is bounded by the parser's depth limit.
    pub(crate) fn eval<'a>(&'a self, expr: &'a FieldExpr, at: At) -> Value<'a> {
        match expr {
            FieldExpr::Static(value) => Value::from_static(value),
            FieldExpr::Field(field) => self.field(field, at),
            FieldExpr::And(operands) | FieldExpr::Or(operands) => {
                let op = if matches!(expr, FieldExpr::And(_)) {
                    Op::And
                } else {
                    Op::Or
                };
                let mut operands = operands.iter();
                let mut accumulated = match operands.next() {
                    Some(first) => self.eval(first, at),
                    None => return Value::Bool(op == Op::And),
                };
                for operand in operands {
                    match (op, &accumulated) {
                        (Op::And, Value::Bool(false)) => return Value::Bool(false),
                        (Op::Or, Value::Bool(true)) => return Value::Bool(true),
                        _ => {}
                    }
                    let next = self.eval(operand, at);
                    accumulated = Value::Bool(logical(op, &accumulated, &next));
                }
                accumulated
            }
            FieldExpr::Binary(binary_expr) => {
                let mut lhs = self.eval(&binary_expr.lhs, at);
                let mut rhs = self.eval(&binary_expr.rhs, at);
                // Tempo strips leading zeros from a trace ID compared with `trace:id`.
                if is_trace_id(&binary_expr.lhs) {
                    rhs = strip_trace_id(rhs);
                }
                if is_trace_id(&binary_expr.rhs) {
                    lhs = strip_trace_id(lhs);
                }
                binary(binary_expr.op, lhs, rhs)
            }
            FieldExpr::Regex(regex) => {
                let value = self.eval(&regex.lhs, at);
                match value {
                    Value::String(text) => Value::Bool(regex.regex.is_match(&text) != regex.negated),
                    _ => Value::Bool(false),
                }
            }
            FieldExpr::Unary(unary) => {
                let value = self.eval(&unary.expr, at);
                match unary.op {
                    UnaryOp::Not => match value {
                        Value::Bool(value) => Value::Bool(!value),
                        _ => Value::Nil,
                    },
                    UnaryOp::Negate => match value {
                        Value::Int(value) => Value::Int(value.wrapping_neg()),
                        Value::Float(value) => Value::Float(-value),
                        Value::Duration(nanos) => Value::Duration(nanos.wrapping_neg()),
                        _ => Value::Nil,
                    },
                    UnaryOp::Exists => Value::Bool(value != Value::Nil),
                    UnaryOp::NotExists => Value::Bool(value == Value::Nil),
                }
            }
        }
    }

    /// Whether the filter expression holds for the span: for expressions reading event or
    /// link fields, for at least one of the span's events (links).
    fn span_matches(&self, expr: &FieldExpr, reads: Reads, span: usize) -> bool {
        let Some(data) = self.trace.spans.get(span) else {
            return false;
        };
        let event_count = if reads.events {
            data.events.len().min(MAX_EVENT_LINK_COMBINATIONS)
        } else {
            0
        };
        let link_limit = MAX_EVENT_LINK_COMBINATIONS / event_count.max(1);
        let link_count = if reads.links {
            data.links.len().min(link_limit)
        } else {
            0
        };
        for event_index in 0..event_count.max(1) {
            let event = (event_count > 0).then_some(event_index);
            for link_index in 0..link_count.max(1) {
                let link = (link_count > 0).then_some(link_index);
                if self.eval(expr, At { span, event, link }) == Value::Bool(true) {
                    return true;
                }
            }
        }
        false
    }

    // ---- Pipelines ------------------------------------------------------------------------

    /// Runs a pipeline over the whole trace (one spanset holding every span).
    pub(crate) fn run_pipeline<'a>(&'a self, pipeline: &'a Pipeline) -> Result<Vec<Spanset<'a>>, EvalError> {
        if self.trace.spans.is_empty() {
            return Ok(Vec::new());
        }
        let all = Spanset {
            spans: (0..self.trace.spans.len()).collect(),
            attributes: Vec::new(),
        };
        self.pipeline(pipeline, vec![all])
    }

    fn pipeline<'a>(
        &'a self,
        pipeline: &'a Pipeline,
        input: Vec<Spanset<'a>>,
    ) -> Result<Vec<Spanset<'a>>, EvalError> {
        let mut spansets = input;
        for element in &pipeline.elements {
            spansets = self.element(element, spansets)?;
            if spansets.is_empty() {
                break;
            }
        }
        Ok(spansets)
    }

    fn element<'a>(
        &'a self,
        element: &'a PipelineElement,
        input: Vec<Spanset<'a>>,
    ) -> Result<Vec<Spanset<'a>>, EvalError> {
        match element {
            PipelineElement::Spansets(expr) => self.spanset_expr(expr, input),
            PipelineElement::ScalarFilter(filter) => self.scalar_filter(filter, input),
            PipelineElement::GroupBy(expr) => Ok(self.group_by(expr, input)),
            PipelineElement::Coalesce => {
                // Tempo drops the spansets' attributes here.
                let spans = input.into_iter().flat_map(|spanset| spanset.spans).collect();
                Ok(vec![Spanset {
                    spans,
                    attributes: Vec::new(),
                }])
            }
            PipelineElement::Select(_) => Ok(input),
        }
    }

    fn spanset_expr<'a>(
        &'a self,
        expr: &'a SpansetExpr,
        input: Vec<Spanset<'a>>,
    ) -> Result<Vec<Spanset<'a>>, EvalError> {
        match expr {
            SpansetExpr::Filter(filter) => {
                let reads = Reads::of(&filter.expr);
                let match_all = filter.is_match_all();
                Ok(input
                    .into_iter()
                    .filter_map(|mut spanset| {
                        if !match_all {
                            spanset
                                .spans
                                .retain(|&span| self.span_matches(&filter.expr, reads, span));
                        }
                        (!spanset.spans.is_empty()).then_some(spanset)
                    })
                    .collect())
            }
            SpansetExpr::Pipeline(pipeline) => self.pipeline(pipeline, input),
            SpansetExpr::Operation(operation) => {
                let mut output = Vec::new();
                for spanset in input {
                    let lhs = self.spanset_expr(&operation.lhs, vec![spanset.clone()])?;
                    let rhs = self.spanset_expr(&operation.rhs, vec![spanset.clone()])?;
                    let matching = match operation.op {
                        SpansetOp::And if !lhs.is_empty() && !rhs.is_empty() => self.union(&lhs, &rhs),
                        SpansetOp::Union if !lhs.is_empty() || !rhs.is_empty() => self.union(&lhs, &rhs),
                        SpansetOp::And | SpansetOp::Union => Vec::new(),
                        structural => {
                            if rhs.is_empty() {
                                Vec::new()
                            } else if lhs.len() > 1 || rhs.len() > 1 {
                                return Err(EvalError::SpansetOperationMultiple);
                            } else {
                                let left = lhs.first().map_or(&[][..], |set| set.spans.as_slice());
                                let right = rhs.first().map_or(&[][..], |set| set.spans.as_slice());
                                if right.is_empty() {
                                    Vec::new()
                                } else {
                                    self.relate(structural, left, right)
                                }
                            }
                        }
                    };
                    if !matching.is_empty() {
                        output.push(Spanset {
                            spans: matching,
                            attributes: spanset.attributes,
                        });
                    }
                }
                Ok(output)
            }
        }
    }

    /// The spans of all spansets on both sides, without repeats.
    fn union(&self, lhs: &[Spanset<'_>], rhs: &[Spanset<'_>]) -> Vec<usize> {
        let mut seen = vec![false; self.trace.spans.len()];
        let mut spans = Vec::new();
        for spanset in lhs.iter().chain(rhs) {
            for &span in &spanset.spans {
                if let Some(flag) = seen.get_mut(span)
                    && !*flag
                {
                    *flag = true;
                    spans.push(span);
                }
            }
        }
        spans
    }

    /// A structural operator: the right-hand spans in the relation with some left-hand span
    /// (`>`, `<`, `>>`, `<<`, `~`), in it with none (`!>`, ...), or both sides of every
    /// related pair (`&>`, ...).
    fn relate(&self, op: SpansetOp, lhs: &[usize], rhs: &[usize]) -> Vec<usize> {
        let tree = self.tree();
        let count = self.trace.spans.len();
        let mut in_lhs = vec![false; count];
        for &span in lhs {
            if let Some(flag) = in_lhs.get_mut(span) {
                *flag = true;
            }
        }
        let mut in_rhs = vec![false; count];
        for &span in rhs {
            if let Some(flag) = in_rhs.get_mut(span) {
                *flag = true;
            }
        }
        let parent = |span: usize| tree.parent.get(span).copied().flatten();
        // Ancestors of `span` in the tree, nearest first.
        let ancestors = |span: usize| {
            let mut current = parent(span);
            let mut steps = 0usize;
            std::iter::from_fn(move || {
                let node = current?;
                steps += 1;
                if steps > count {
                    return None;
                }
                current = parent(node);
                Some(node)
            })
        };
        let flag = |flags: &[bool], span: usize| flags.get(span).copied().unwrap_or(false);

        // Sibling groups: spans of the tree by their parent's nested-set number (roots share -1).
        let sibling_key = |span: usize| tree.nested.get(span).map_or(0, |set| set.parent);
        let sibling_counts = |flags: &[bool]| {
            let mut counts: HashMap<i64, usize> = HashMap::new();
            for (span, &set) in flags.iter().enumerate() {
                if set && tree.in_tree(span) {
                    *counts.entry(sibling_key(span)).or_default() += 1;
                }
            }
            counts
        };
        let has_sibling_in = |counts: &HashMap<i64, usize>, flags: &[bool], span: usize| {
            if !tree.in_tree(span) {
                return false;
            }
            let same_parent = counts.get(&sibling_key(span)).copied().unwrap_or(0);
            let itself = usize::from(flag(flags, span));
            same_parent > itself
        };

        let mut output = Vec::new();
        let mut added = vec![false; count];
        let mut add = |span: usize, output: &mut Vec<usize>| {
            if let Some(flag) = added.get_mut(span)
                && !*flag
            {
                *flag = true;
                output.push(span);
            }
        };
        match op {
            SpansetOp::Child | SpansetOp::NotChild => {
                let want = op == SpansetOp::Child;
                for &span in rhs {
                    let related = parent(span).is_some_and(|node| flag(&in_lhs, node));
                    if related == want {
                        add(span, &mut output);
                    }
                }
            }
            SpansetOp::Parent | SpansetOp::NotParent => {
                let mut is_parent_of_lhs = vec![false; count];
                for &span in lhs {
                    if let Some(node) = parent(span) {
                        is_parent_of_lhs[node] = true;
                    }
                }
                let want = op == SpansetOp::Parent;
                for &span in rhs {
                    if flag(&is_parent_of_lhs, span) == want {
                        add(span, &mut output);
                    }
                }
            }
            SpansetOp::Descendant | SpansetOp::NotDescendant => {
                let want = op == SpansetOp::Descendant;
                for &span in rhs {
                    let related = ancestors(span).any(|node| flag(&in_lhs, node));
                    if related == want {
                        add(span, &mut output);
                    }
                }
            }
            SpansetOp::Ancestor | SpansetOp::NotAncestor => {
                let mut is_ancestor_of_lhs = vec![false; count];
                for &span in lhs {
                    for node in ancestors(span) {
                        if is_ancestor_of_lhs[node] {
                            break;
                        }
                        is_ancestor_of_lhs[node] = true;
                    }
                }
                let want = op == SpansetOp::Ancestor;
                for &span in rhs {
                    if flag(&is_ancestor_of_lhs, span) == want {
                        add(span, &mut output);
                    }
                }
            }
            SpansetOp::Sibling | SpansetOp::NotSibling => {
                let counts = sibling_counts(&in_lhs);
                let want = op == SpansetOp::Sibling;
                for &span in rhs {
                    if has_sibling_in(&counts, &in_lhs, span) == want {
                        add(span, &mut output);
                    }
                }
            }
            SpansetOp::UnionChild => {
                for &span in rhs {
                    if let Some(node) = parent(span)
                        && flag(&in_lhs, node)
                    {
                        add(node, &mut output);
                        add(span, &mut output);
                    }
                }
            }
            SpansetOp::UnionParent => {
                for &span in lhs {
                    if let Some(node) = parent(span)
                        && flag(&in_rhs, node)
                    {
                        add(node, &mut output);
                        add(span, &mut output);
                    }
                }
            }
            SpansetOp::UnionDescendant => {
                for &span in rhs {
                    let mut related = false;
                    for node in ancestors(span) {
                        if flag(&in_lhs, node) {
                            add(node, &mut output);
                            related = true;
                        }
                    }
                    if related {
                        add(span, &mut output);
                    }
                }
            }
            SpansetOp::UnionAncestor => {
                for &span in lhs {
                    let mut related = false;
                    for node in ancestors(span) {
                        if flag(&in_rhs, node) {
                            add(node, &mut output);
                            related = true;
                        }
                    }
                    if related {
                        add(span, &mut output);
                    }
                }
            }
            SpansetOp::UnionSibling => {
                let lhs_counts = sibling_counts(&in_lhs);
                let rhs_counts = sibling_counts(&in_rhs);
                for &span in lhs.iter().chain(rhs) {
                    let related = (flag(&in_rhs, span) && has_sibling_in(&lhs_counts, &in_lhs, span))
                        || (flag(&in_lhs, span) && has_sibling_in(&rhs_counts, &in_rhs, span));
                    if related {
                        add(span, &mut output);
                    }
                }
            }
            SpansetOp::And | SpansetOp::Union => {}
        }
        output
    }

    fn group_by<'a>(&'a self, expr: &'a FieldExpr, input: Vec<Spanset<'a>>) -> Vec<Spanset<'a>> {
        let name = format!("by({expr})");
        let mut output = Vec::new();
        for spanset in input {
            let mut groups: Vec<Spanset<'a>> = Vec::new();
            let mut index_of: HashMap<ValueKey, usize> = HashMap::new();
            for &span in &spanset.spans {
                let value = self.eval(expr, At::span(span));
                let group = *index_of.entry(value.key()).or_insert_with(|| {
                    let mut attributes = spanset.attributes.clone();
                    attributes.push((name.clone(), value));
                    groups.push(Spanset {
                        spans: Vec::new(),
                        attributes,
                    });
                    groups.len() - 1
                });
                if let Some(target) = groups.get_mut(group) {
                    target.spans.push(span);
                }
            }
            output.extend(groups);
        }
        output
    }

    fn scalar_filter<'a>(
        &'a self,
        filter: &'a ScalarFilter,
        input: Vec<Spanset<'a>>,
    ) -> Result<Vec<Spanset<'a>>, EvalError> {
        let mut output = Vec::new();
        for mut spanset in input {
            let mut added = Vec::new();
            let lhs = self.scalar(&filter.lhs, &spanset, &mut added)?;
            let rhs = self.scalar(&filter.rhs, &spanset, &mut added)?;
            let (Some(lhs), Some(rhs)) = (lhs, rhs) else {
                continue;
            };
            if binary(BinaryOp::Compare(filter.op), lhs, rhs) == Value::Bool(true) {
                spanset.attributes.extend(added);
                output.push(spanset);
            }
        }
        Ok(output)
    }

    /// The value of a scalar expression for a spanset; `None` when an aggregate has no
    /// value (all its inputs are missing), which drops the spanset as Tempo does. The
    /// aggregates computed are appended to `added` (Tempo adds them to the spanset).
    fn scalar<'a>(
        &'a self,
        expr: &'a ScalarExpr,
        spanset: &Spanset<'a>,
        added: &mut Vec<(String, Value<'a>)>,
    ) -> Result<Option<Value<'a>>, EvalError> {
        match expr {
            ScalarExpr::Static(value) => Ok(Some(Value::from_static(value))),
            ScalarExpr::Aggregate(aggregate) => {
                let value = self.aggregate(aggregate, &spanset.spans);
                if let Some(value) = &value {
                    added.push((aggregate.to_string(), value.clone()));
                }
                Ok(value)
            }
            ScalarExpr::Binary(scalar_binary) => {
                let lhs = self.scalar(&scalar_binary.lhs, spanset, added)?;
                let rhs = self.scalar(&scalar_binary.rhs, spanset, added)?;
                Ok(match (lhs, rhs) {
                    (Some(lhs), Some(rhs)) => Some(binary(BinaryOp::Arithmetic(scalar_binary.op), lhs, rhs)),
                    _ => None,
                })
            }
            ScalarExpr::Pipeline(scalar_pipeline) => {
                let result = self.pipeline(&scalar_pipeline.pipeline, vec![spanset.clone()])?;
                match result.as_slice() {
                    [] => Ok(None),
                    [only] => Ok(self.aggregate(&scalar_pipeline.aggregate, &only.spans)),
                    _ => Err(EvalError::SpansetOperationMultiple),
                }
            }
        }
    }

    /// `count()`, `avg(x)`, `min(x)`, `max(x)`, `sum(x)` over spans (Tempo's
    /// `Aggregate.evaluate`): missing values are skipped; `None` when every value is missing.
    fn aggregate<'a>(&'a self, aggregate: &'a Aggregate, spans: &[usize]) -> Option<Value<'a>> {
        let Some(expr) = &aggregate.expr else {
            return Some(Value::Int(i64::try_from(spans.len()).unwrap_or(i64::MAX)));
        };
        let values = spans
            .iter()
            .map(|&span| self.eval(expr, At::span(span)))
            .filter(|value| *value != Value::Nil);
        match aggregate.op {
            AggregateOp::Count => Some(Value::Int(i64::try_from(spans.len()).unwrap_or(i64::MAX))),
            AggregateOp::Min => values.min_by(compare_values),
            AggregateOp::Max => values.reduce(|best, value| {
                if compare_values(&value, &best) == std::cmp::Ordering::Greater {
                    value
                } else {
                    best
                }
            }),
            AggregateOp::Sum | AggregateOp::Avg => {
                let mut sum: Option<Value<'a>> = None;
                let mut count: i64 = 0;
                for value in values {
                    count += 1;
                    sum = Some(match sum {
                        None => value,
                        // Tempo adds only values of the first value's type.
                        Some(total) => match (total, value) {
                            (Value::Int(a), Value::Int(b)) => Value::Int(a.wrapping_add(b)),
                            (Value::Duration(a), Value::Duration(b)) => Value::Duration(a.saturating_add(b)),
                            (Value::Float(a), Value::Float(b)) => Value::Float(a + b),
                            (total, _) => total,
                        },
                    });
                }
                let sum = sum?;
                if aggregate.op == AggregateOp::Sum {
                    return Some(sum);
                }
                Some(match sum {
                    Value::Int(total) => Value::Float(total as f64 / count as f64),
                    Value::Duration(total) => Value::Duration(total / count.max(1)),
                    Value::Float(total) => Value::Float(total / count as f64),
                    other => other,
                })
            }
        }
    }
}

fn is_trace_id(expr: &FieldExpr) -> bool {
    matches!(expr, FieldExpr::Field(Field::Intrinsic(Intrinsic::TraceId)))
}

fn strip_trace_id(value: Value<'_>) -> Value<'_> {
    match value {
        Value::String(text) => Value::String(Cow::Owned(text.trim_start_matches('0').to_owned())),
        other => other,
    }
}

/// Whether an expression reads event or link fields (and so is tested per event / link).
#[derive(Debug, Clone, Copy, Default)]
struct Reads {
    events: bool,
    links: bool,
}

impl Reads {
    fn of(expr: &FieldExpr) -> Reads {
        let mut reads = Reads::default();
        for field in expr.fields() {
            match field {
                Field::Intrinsic(intrinsic) => match intrinsic.level() {
                    IntrinsicLevel::Event => reads.events = true,
                    IntrinsicLevel::Link => reads.links = true,
                    _ => {}
                },
                Field::Attribute(attribute) => match attribute.scope {
                    AttributeScope::Event => reads.events = true,
                    AttributeScope::Link => reads.links = true,
                    _ => {}
                },
            }
        }
        reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_print_like_go() {
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(999), "999ns");
        assert_eq!(format_go_duration(1_500), "1.5µs");
        assert_eq!(format_go_duration(100_000_000), "100ms");
        assert_eq!(format_go_duration(1_500_000_000), "1.5s");
        assert_eq!(format_go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(format_go_duration(60_000_000_000), "1m0s");
        assert_eq!(format_go_duration(-2_000_000), "-2ms");
    }

    #[test]
    fn binary_follows_tempo_type_rules() {
        let s = |text: &'static str| Value::String(Cow::Borrowed(text));
        let eq = BinaryOp::Compare(CompareOp::Eq);
        let neq = BinaryOp::Compare(CompareOp::Neq);
        let gt = BinaryOp::Compare(CompareOp::Gt);
        assert_eq!(binary(eq, Value::Int(2), Value::Float(2.0)), Value::Bool(true));
        assert_eq!(
            binary(gt, Value::Int(2_000_000_000), Value::Duration(1_000_000_000)),
            Value::Bool(true)
        );
        assert_eq!(binary(neq, Value::Nil, s("x")), Value::Bool(false));
        assert_eq!(binary(neq, Value::Int(1), s("x")), Value::Bool(false));
        assert_eq!(binary(gt, s("b"), s("a")), Value::Bool(true));
        assert_eq!(
            binary(eq, Value::Status(Status::Error), Value::Status(Status::Error)),
            Value::Bool(true)
        );
        assert_eq!(
            binary(gt, Value::Status(Status::Error), Value::Status(Status::Ok)),
            Value::Bool(false)
        );
        let div = BinaryOp::Arithmetic(ArithmeticOp::Div);
        assert_eq!(binary(div, Value::Int(7), Value::Int(2)), Value::Int(3));
        assert_eq!(binary(div, Value::Int(7), Value::Int(0)), Value::Nil);
        assert_eq!(binary(div, Value::Int(7), Value::Float(2.0)), Value::Float(3.5));
        let pow = BinaryOp::Arithmetic(ArithmeticOp::Pow);
        assert_eq!(binary(pow, Value::Int(2), Value::Int(3)), Value::Int(8));
    }
}
