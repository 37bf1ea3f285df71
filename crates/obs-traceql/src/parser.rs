//! A recursive-descent parser for Tempo's grammar (`pkg/traceql/expr.y`).
//!
//! Tempo's yacc grammar has one precedence table for all its expression kinds (lowest
//! first): `|`; `&& ||`; the comparisons and structural operators
//! (`= != < <= > >= =~ !~ >> << ~ !> !< !>> !<< &> &< &>> &<< &~`); `+ -`; `!`; `* / %`;
//! `^` (right-associative); unary minus. Which productions apply depends on the operands
//! (`{ a } > { b }` is a structural operator, `count() > 2` a scalar filter,
//! `({ } | rate()) > 2` a metrics filter), so the parser works in two steps:
//!
//! 1. Field expressions (inside `{ }`, `by()` and aggregates) are parsed directly into
//!    [`FieldExpr`] by precedence climbing, with Tempo's type checks made as each node is
//!    built.
//! 2. Everything outside is parsed with the same precedence into a small untyped tree
//!    ([`Node`]), which [`Parser::classify_root`] then turns into a [`Query`], reporting
//!    operators and operands the grammar does not allow there as the syntax errors Tempo
//!    gives (`syntax error: unexpected +`) at their position.
//!
//! Type errors (Tempo's `validate()`) are deferred: a syntax error anywhere wins over them,
//! as in Tempo, where validation runs after parsing. Recursion and the depth of the tree are
//! bounded by [`MAX_DEPTH`].

use crate::ast::{
    Aggregate, AggregateOp, ArithmeticOp, Attribute, AttributeScope, BinaryExpr, BinaryOp, Compare,
    CompareOp, Field, FieldExpr, GoRegex, Hint, Intrinsic, MetricsAggregate, MetricsBinary, MetricsExpr,
    MetricsFunction, MetricsOp, MetricsPipeline, Pipeline, PipelineElement, Query, RegexExpr, RootExpr,
    ScalarBinary, ScalarExpr, ScalarFilter, ScalarPipeline, SecondStage, SpanKind, SpansetExpr,
    SpansetFilter, SpansetOp, SpansetOperation, StagedMetrics, Static, StaticType, Status, UnaryExpr,
    UnaryOp,
};
use crate::error::ParseError;
use crate::lexer::{IntrinsicScope, Kw, Tok, Token, tokenize};

/// Queries longer than this many bytes are refused.
pub const MAX_QUERY_BYTES: usize = 128 * 1024;

/// The deepest nesting accepted: parentheses, braces, functions and operators, counted
/// both while parsing and in the resulting tree, so neither parsing nor walking, printing or
/// dropping a tree can exhaust the stack. Chains of `&&` and `||` inside a spanset filter
/// are flat and do not count.
pub const MAX_DEPTH: usize = 100;

/// Tempo's limit on `compare()`'s number of values.
const MAX_COMPARE_TOP_N: i64 = 1000;

/// What the parser sees past the last token (`tokenize` always ends with one, so this is a
/// fallback that is never reached).
static END_OF_INPUT: Token = Token {
    tok: Tok::Eof,
    offset: usize::MAX,
};

/// Parses and validates a whole query.
pub(crate) fn parse_query(input: &str) -> Result<RootExpr, ParseError> {
    if input.len() > MAX_QUERY_BYTES {
        return Err(ParseError::at(
            input,
            0,
            format!(
                "query is too long: {} bytes, the limit is {MAX_QUERY_BYTES}",
                input.len()
            ),
        ));
    }
    let mut parser = Parser {
        input,
        tokens: tokenize(input),
        position: 0,
        depth: 0,
        deferred: None,
    };
    let node = parser.pipe()?;
    let mut hints = Vec::new();
    while parser.peek() == &Tok::Kw(Kw::With) {
        // Tempo keeps the last `with(...)`.
        hints = parser.hints()?;
    }
    if parser.peek() != &Tok::Eof {
        return Err(parser.unexpected_at(parser.position));
    }
    let query = parser.classify_root(node)?;
    if let Some(error) = parser.deferred.take() {
        return Err(error);
    }
    Ok(RootExpr { query, hints })
}

/// A field expression with what its parent needs to know.
struct Parsed {
    expr: FieldExpr,
    /// The depth of the expression's tree (1 for a leaf).
    depth: usize,
    /// The byte offset where the expression starts.
    offset: usize,
}

/// An expression outside spanset filters, before classification.
struct Node {
    kind: NodeKind,
    /// The index of its first token.
    start: usize,
    /// The index of the token after it.
    end: usize,
    /// The depth of the tree (1 for a leaf).
    depth: usize,
}

enum NodeKind {
    Filter(SpansetFilter),
    Aggregate(Aggregate),
    GroupBy(FieldExpr),
    Coalesce,
    Select(Vec<Field>),
    Metrics(MetricsFunction),
    /// `topk(n)` or `bottomk(n)`.
    Stage(SecondStage),
    /// An integer, float or duration literal.
    Number(Static),
    Negate(Box<Node>),
    Paren(Box<Node>),
    Binary(Box<OuterBinary>),
    /// At least two elements.
    Pipe(Vec<Node>),
}

struct OuterBinary {
    op: Tok,
    /// The index of the operator's token.
    op_index: usize,
    lhs: Node,
    rhs: Node,
}

/// What a [`Node`] evaluates to, as far as classification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Spansets: filters, spanset operators, pipelines of them.
    Spanset,
    /// A number: aggregates, literals, arithmetic, `(pipeline | aggregate)`.
    Scalar,
    /// A comparison of numbers: a scalar filter.
    ScalarFilter,
    /// Series: metrics functions and what combines them.
    Metrics,
    /// `topk(n)` or `bottomk(n)`.
    Stage,
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    position: usize,
    /// Current recursion depth.
    depth: usize,
    /// The first type error, reported if nothing else fails.
    deferred: Option<ParseError>,
}

/// The precedence of a binary operator outside spanset filters.
fn outer_precedence(tok: &Tok) -> Option<u8> {
    match tok {
        Tok::And | Tok::Or => Some(1),
        Tok::Eq
        | Tok::Neq
        | Tok::Re
        | Tok::Nre
        | Tok::Gt
        | Tok::Gte
        | Tok::Lt
        | Tok::Lte
        | Tok::Desc
        | Tok::Ance
        | Tok::Sibl
        | Tok::NotChild
        | Tok::NotParent
        | Tok::NotDesc
        | Tok::NotAnce
        | Tok::UnionChild
        | Tok::UnionParent
        | Tok::UnionDesc
        | Tok::UnionAnce
        | Tok::UnionSibl => Some(2),
        Tok::Add | Tok::Sub => Some(3),
        Tok::Mul | Tok::Div | Tok::Mod => Some(5),
        Tok::Pow => Some(6),
        _ => None,
    }
}

/// The precedence of a binary operator inside a field expression.
fn field_precedence(tok: &Tok) -> Option<u8> {
    match tok {
        Tok::And | Tok::Or => Some(1),
        Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre | Tok::Gt | Tok::Gte | Tok::Lt | Tok::Lte => Some(2),
        Tok::Add | Tok::Sub => Some(3),
        Tok::Mul | Tok::Div | Tok::Mod => Some(5),
        Tok::Pow => Some(6),
        _ => None,
    }
}

/// The precedence of `!`: it takes `* / % ^` into its operand, not `+ -` or comparisons.
const NOT_PRECEDENCE: u8 = 4;
/// The precedence of unary minus in field expressions: that of `+ -`.
const NEGATE_PRECEDENCE: u8 = 3;

fn compare_op(tok: &Tok) -> Option<CompareOp> {
    match tok {
        Tok::Eq => Some(CompareOp::Eq),
        Tok::Neq => Some(CompareOp::Neq),
        Tok::Lt => Some(CompareOp::Lt),
        Tok::Lte => Some(CompareOp::Lte),
        Tok::Gt => Some(CompareOp::Gt),
        Tok::Gte => Some(CompareOp::Gte),
        _ => None,
    }
}

fn arithmetic_op(tok: &Tok) -> Option<ArithmeticOp> {
    match tok {
        Tok::Add => Some(ArithmeticOp::Add),
        Tok::Sub => Some(ArithmeticOp::Sub),
        Tok::Mul => Some(ArithmeticOp::Mul),
        Tok::Div => Some(ArithmeticOp::Div),
        Tok::Mod => Some(ArithmeticOp::Mod),
        Tok::Pow => Some(ArithmeticOp::Pow),
        _ => None,
    }
}

fn spanset_op(tok: &Tok) -> Option<SpansetOp> {
    match tok {
        Tok::And => Some(SpansetOp::And),
        Tok::Or => Some(SpansetOp::Union),
        Tok::Gt => Some(SpansetOp::Child),
        Tok::Lt => Some(SpansetOp::Parent),
        Tok::Desc => Some(SpansetOp::Descendant),
        Tok::Ance => Some(SpansetOp::Ancestor),
        Tok::Sibl => Some(SpansetOp::Sibling),
        Tok::NotChild => Some(SpansetOp::NotChild),
        Tok::NotParent => Some(SpansetOp::NotParent),
        Tok::NotDesc => Some(SpansetOp::NotDescendant),
        Tok::NotAnce => Some(SpansetOp::NotAncestor),
        Tok::Nre => Some(SpansetOp::NotSibling),
        Tok::UnionChild => Some(SpansetOp::UnionChild),
        Tok::UnionParent => Some(SpansetOp::UnionParent),
        Tok::UnionDesc => Some(SpansetOp::UnionDescendant),
        Tok::UnionAnce => Some(SpansetOp::UnionAncestor),
        Tok::UnionSibl => Some(SpansetOp::UnionSibling),
        _ => None,
    }
}

/// Whether `tok` is an operator only spansets take (`&&` and `||` included, which outside
/// braces combine spansets).
fn is_spanset_only_op(tok: &Tok) -> bool {
    spanset_op(tok).is_some() && !matches!(tok, Tok::Gt | Tok::Lt | Tok::Nre)
}

/// The kind of a node.
fn kind(node: &Node) -> Kind {
    match &node.kind {
        NodeKind::Filter(_) | NodeKind::GroupBy(_) | NodeKind::Coalesce | NodeKind::Select(_) => {
            Kind::Spanset
        }
        NodeKind::Aggregate(_) | NodeKind::Number(_) => Kind::Scalar,
        NodeKind::Metrics(_) => Kind::Metrics,
        NodeKind::Stage(_) => Kind::Stage,
        NodeKind::Negate(inner) | NodeKind::Paren(inner) => kind(inner),
        NodeKind::Pipe(elements) => {
            if elements
                .iter()
                .any(|element| matches!(kind(element), Kind::Metrics | Kind::Stage))
            {
                Kind::Metrics
            } else if elements.last().is_some_and(|last| kind(last) == Kind::Scalar) {
                Kind::Scalar
            } else {
                Kind::Spanset
            }
        }
        NodeKind::Binary(binary) => {
            let lhs = kind(&binary.lhs);
            if arithmetic_op(&binary.op).is_some() {
                let rhs = kind(&binary.rhs);
                if [lhs, rhs]
                    .iter()
                    .any(|side| matches!(side, Kind::Metrics | Kind::Stage))
                {
                    Kind::Metrics
                } else if lhs == Kind::Spanset || rhs == Kind::Spanset {
                    Kind::Spanset
                } else {
                    Kind::Scalar
                }
            } else if is_spanset_only_op(&binary.op) {
                Kind::Spanset
            } else {
                match lhs {
                    Kind::Metrics | Kind::Stage => Kind::Metrics,
                    Kind::Spanset => Kind::Spanset,
                    Kind::Scalar | Kind::ScalarFilter => Kind::ScalarFilter,
                }
            }
        }
    }
}

/// Whether a node is a metrics function (or a stage) without a pipeline before it, possibly
/// with filters: `rate()`, `rate() > 2`, `topk(5) > 1`.
fn is_bare_metrics(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Metrics(_) | NodeKind::Stage(_) => true,
        NodeKind::Binary(binary) => compare_op(&binary.op).is_some() && is_bare_metrics(&binary.lhs),
        _ => false,
    }
}

/// Whether a node is constant arithmetic (Tempo's `scalar`): numbers, unary minus,
/// parentheses, `+ - * /` (and `% ^`, refused when folded).
fn is_constant(node: &Node) -> bool {
    match &node.kind {
        NodeKind::Number(_) => true,
        NodeKind::Negate(inner) | NodeKind::Paren(inner) => is_constant(inner),
        NodeKind::Binary(binary) => {
            arithmetic_op(&binary.op).is_some() && is_constant(&binary.lhs) && is_constant(&binary.rhs)
        }
        _ => false,
    }
}

fn contains_compare(expr: &MetricsExpr) -> bool {
    expr.pipelines()
        .iter()
        .any(|pipeline| matches!(pipeline.function, MetricsFunction::Compare(_)))
}

impl<'a> Parser<'a> {
    // ---- Token access -------------------------------------------------------------------

    fn token_at(&self, index: usize) -> &Token {
        self.tokens
            .get(index)
            .or(self.tokens.last())
            .unwrap_or(&END_OF_INPUT)
    }

    fn peek(&self) -> &Tok {
        &self.token_at(self.position).tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.token_at(self.position + ahead).tok
    }

    fn offset(&self) -> usize {
        self.token_at(self.position).offset
    }

    /// Moves past the current token (never past the last one).
    fn advance(&mut self) {
        if self.position + 1 < self.tokens.len() {
            self.position += 1;
        }
    }

    // ---- Errors ---------------------------------------------------------------------------

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError::at(self.input, offset, message)
    }

    /// "syntax error: unexpected X" for the token at `index` (or the lexer's error there).
    fn unexpected_at(&self, index: usize) -> ParseError {
        self.unexpected_expecting_at(index, &[])
    }

    fn unexpected_expecting_at(&self, index: usize, expected: &[&str]) -> ParseError {
        let token = self.token_at(index);
        let message = match &token.tok {
            Tok::Error(message) => message.clone(),
            tok if expected.is_empty() => format!("syntax error: unexpected {}", tok.describe()),
            tok => format!(
                "syntax error: unexpected {}, expecting {}",
                tok.describe(),
                expected.join(" or ")
            ),
        };
        self.error_at(token.offset, message)
    }

    fn unexpected_expecting(&self, expected: &[&str]) -> ParseError {
        self.unexpected_expecting_at(self.position, expected)
    }

    fn expect(&mut self, tok: &Tok) -> Result<(), ParseError> {
        if self.peek() == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected_expecting(&[&tok.describe()]))
        }
    }

    /// Records a type error, reported only if the query has no syntax error.
    fn defer(&mut self, offset: usize, message: String) {
        if self.deferred.is_none() {
            self.deferred = Some(self.error_at(offset, message));
        }
    }

    /// Enters one more level of recursion.
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.too_deep(self.offset()));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn too_deep(&self, offset: usize) -> ParseError {
        self.error_at(
            offset,
            format!(
                "query is nested too deeply: more than {MAX_DEPTH} levels of parentheses, braces, functions or operators"
            ),
        )
    }

    fn check_depth(&self, depth: usize, offset: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.too_deep(offset));
        }
        Ok(())
    }

    // ---- Outside spanset filters ----------------------------------------------------------

    /// A pipeline: elements separated by `|` (the loosest operator).
    fn pipe(&mut self) -> Result<Node, ParseError> {
        let start = self.position;
        let first = self.binary(1)?;
        if self.peek() != &Tok::Pipe {
            return Ok(first);
        }
        let mut depth = first.depth;
        let mut elements = vec![first];
        while self.peek() == &Tok::Pipe {
            self.advance();
            let element = self.binary(1)?;
            depth = depth.max(element.depth);
            elements.push(element);
        }
        self.check_depth(depth + 1, self.token_at(start).offset)?;
        Ok(Node {
            kind: NodeKind::Pipe(elements),
            start,
            end: self.position,
            depth: depth + 1,
        })
    }

    /// Precedence climbing over the binary operators binding at least `min_precedence`.
    fn binary(&mut self, min_precedence: u8) -> Result<Node, ParseError> {
        let mut lhs = self.unary()?;
        loop {
            let op = self.peek().clone();
            let Some(precedence) = outer_precedence(&op) else {
                break;
            };
            if precedence < min_precedence {
                break;
            }
            let op_index = self.position;
            self.check_operands(&lhs, &op, op_index)?;
            self.advance();
            let next_min = if op == Tok::Pow {
                precedence
            } else {
                precedence + 1
            };
            self.enter()?;
            let rhs = self.binary(next_min);
            self.leave();
            let rhs = rhs?;
            let depth = 1 + lhs.depth.max(rhs.depth);
            self.check_depth(depth, self.token_at(op_index).offset)?;
            lhs = Node {
                start: lhs.start,
                end: rhs.end,
                kind: NodeKind::Binary(Box::new(OuterBinary {
                    op,
                    op_index,
                    lhs,
                    rhs,
                })),
                depth,
            };
        }
        Ok(lhs)
    }

    /// Refuses, at the operator, combinations Tempo's grammar has no production for, so the
    /// error points where Tempo's does: `{ } = 1`, `{ } + { }`, `({ } | rate()) >> (...)`;
    /// and requires a spanset after a spanset operator.
    fn check_operands(&self, lhs: &Node, op: &Tok, op_index: usize) -> Result<(), ParseError> {
        let lhs_kind = kind(lhs);
        let spanset_operator = spanset_op(op).is_some();
        match lhs_kind {
            Kind::Spanset if !spanset_operator => return Err(self.unexpected_at(op_index)),
            Kind::Scalar | Kind::ScalarFilter if is_spanset_only_op(op) => {
                return Err(self.unexpected_at(op_index));
            }
            Kind::Metrics | Kind::Stage if is_spanset_only_op(op) || matches!(op, Tok::Re | Tok::Nre) => {
                return Err(self.unexpected_at(op_index));
            }
            _ => {}
        }
        let needs_spanset = is_spanset_only_op(op) || (lhs_kind == Kind::Spanset && spanset_operator);
        if needs_spanset && !matches!(self.peek_at(1), Tok::LBrace | Tok::LParen) {
            return Err(self.unexpected_expecting_at(op_index + 1, &["{", "("]));
        }
        Ok(())
    }

    /// Unary minus (binding tighter than any binary operator, as Tempo's `UMINUS`), or a
    /// primary.
    fn unary(&mut self) -> Result<Node, ParseError> {
        if self.peek() != &Tok::Sub {
            return self.primary();
        }
        let start = self.position;
        self.advance();
        self.enter()?;
        let operand = self.unary();
        self.leave();
        let operand = operand?;
        let depth = operand.depth + 1;
        Ok(Node {
            end: operand.end,
            kind: NodeKind::Negate(Box::new(operand)),
            start,
            depth,
        })
    }

    /// A filter, a parenthesized expression, a function or a number.
    fn primary(&mut self) -> Result<Node, ParseError> {
        let start = self.position;
        let kind = match self.peek().clone() {
            Tok::LBrace => NodeKind::Filter(self.spanset_filter()?),
            Tok::LParen => {
                self.advance();
                self.enter()?;
                let inner = self.pipe();
                self.leave();
                let inner = inner?;
                self.expect(&Tok::RParen)?;
                let depth = inner.depth + 1;
                return Ok(Node {
                    kind: NodeKind::Paren(Box::new(inner)),
                    start,
                    end: self.position,
                    depth,
                });
            }
            Tok::Int(value) => {
                self.advance();
                NodeKind::Number(Static::Int(value))
            }
            Tok::Float(value) => {
                self.advance();
                NodeKind::Number(Static::Float(value))
            }
            Tok::Duration(nanos) => {
                self.advance();
                NodeKind::Number(Static::Duration { nanos })
            }
            Tok::Kw(keyword) => self.function(keyword)?,
            _ => return Err(self.unexpected_at(start)),
        };
        Ok(Node {
            kind,
            start,
            end: self.position,
            depth: 1,
        })
    }

    /// A function call or pipeline keyword outside spanset filters.
    fn function(&mut self, keyword: Kw) -> Result<NodeKind, ParseError> {
        let aggregate = match keyword {
            Kw::Count => Some(AggregateOp::Count),
            Kw::Avg => Some(AggregateOp::Avg),
            Kw::Min => Some(AggregateOp::Min),
            Kw::Max => Some(AggregateOp::Max),
            Kw::Sum => Some(AggregateOp::Sum),
            _ => None,
        };
        if let Some(op) = aggregate {
            return Ok(NodeKind::Aggregate(self.aggregate(op)?));
        }
        let metrics = match keyword {
            Kw::Rate => Some(MetricsOp::Rate),
            Kw::CountOverTime => Some(MetricsOp::CountOverTime),
            Kw::MinOverTime => Some(MetricsOp::MinOverTime),
            Kw::MaxOverTime => Some(MetricsOp::MaxOverTime),
            Kw::AvgOverTime => Some(MetricsOp::AvgOverTime),
            Kw::SumOverTime => Some(MetricsOp::SumOverTime),
            Kw::QuantileOverTime => Some(MetricsOp::QuantileOverTime),
            Kw::HistogramOverTime => Some(MetricsOp::HistogramOverTime),
            _ => None,
        };
        if let Some(op) = metrics {
            return Ok(NodeKind::Metrics(MetricsFunction::Aggregate(
                self.metrics_aggregate(op)?,
            )));
        }
        match keyword {
            Kw::By => {
                let offset = self.offset();
                self.advance();
                self.expect(&Tok::LParen)?;
                let parsed = self.field_expr()?;
                self.expect(&Tok::RParen)?;
                if !parsed.expr.references_span() {
                    self.defer(
                        offset,
                        format!(
                            "grouping field expressions must reference the span: by({})",
                            parsed.expr
                        ),
                    );
                }
                Ok(NodeKind::GroupBy(parsed.expr))
            }
            Kw::Coalesce => {
                self.advance();
                self.expect(&Tok::LParen)?;
                self.expect(&Tok::RParen)?;
                Ok(NodeKind::Coalesce)
            }
            Kw::Select => {
                self.advance();
                self.expect(&Tok::LParen)?;
                let fields = self.field_list()?;
                self.expect(&Tok::RParen)?;
                Ok(NodeKind::Select(fields))
            }
            Kw::Compare => Ok(NodeKind::Metrics(MetricsFunction::Compare(self.compare()?))),
            Kw::TopK | Kw::BottomK => {
                let offset = self.offset();
                self.advance();
                self.expect(&Tok::LParen)?;
                let Tok::Int(limit) = *self.peek() else {
                    return Err(self.unexpected_expecting(&["INTEGER"]));
                };
                self.advance();
                self.expect(&Tok::RParen)?;
                let limit = match u32::try_from(limit) {
                    Ok(limit) if limit > 0 => limit,
                    Ok(_) => {
                        self.defer(offset, "limit must be greater than 0".to_owned());
                        1
                    }
                    Err(_) if limit <= 0 => {
                        self.defer(offset, "limit must be greater than 0".to_owned());
                        1
                    }
                    Err(_) => {
                        self.defer(offset, format!("limit must be at most {}", u32::MAX));
                        u32::MAX
                    }
                };
                Ok(NodeKind::Stage(if keyword == Kw::TopK {
                    SecondStage::TopK(limit)
                } else {
                    SecondStage::BottomK(limit)
                }))
            }
            _ => Err(self.unexpected_at(self.position)),
        }
    }

    /// `count()`, `avg(expr)`, ...
    fn aggregate(&mut self, op: AggregateOp) -> Result<Aggregate, ParseError> {
        let offset = self.offset();
        self.advance();
        self.expect(&Tok::LParen)?;
        if op == AggregateOp::Count {
            self.expect(&Tok::RParen)?;
            return Ok(Aggregate { op, expr: None });
        }
        let parsed = self.field_expr()?;
        self.expect(&Tok::RParen)?;
        let aggregate = Aggregate {
            op,
            expr: Some(parsed.expr),
        };
        let expr_type = aggregate
            .expr
            .as_ref()
            .map_or(StaticType::Int, FieldExpr::static_type);
        if expr_type != StaticType::Unknown && !expr_type.is_numeric() {
            self.defer(
                offset,
                format!("aggregate field expressions must resolve to a number type: {aggregate}"),
            );
        } else if !aggregate.expr.as_ref().is_some_and(FieldExpr::references_span) {
            self.defer(
                offset,
                format!("aggregate field expressions must reference the span: {aggregate}"),
            );
        }
        Ok(aggregate)
    }

    /// `rate() by (x)`, `quantile_over_time(duration, .5, .9)`, ...
    fn metrics_aggregate(&mut self, op: MetricsOp) -> Result<MetricsAggregate, ParseError> {
        self.advance();
        self.expect(&Tok::LParen)?;
        let mut field = None;
        let mut quantiles = Vec::new();
        if op.takes_field() {
            field = Some(self.field()?);
            if op == MetricsOp::QuantileOverTime {
                self.expect(&Tok::Comma)?;
                loop {
                    let offset = self.offset();
                    let quantile = match *self.peek() {
                        Tok::Int(value) => value as f64,
                        Tok::Float(value) => value,
                        _ => return Err(self.unexpected_expecting(&["FLOAT", "INTEGER"])),
                    };
                    self.advance();
                    if !(0.0..=1.0).contains(&quantile) {
                        self.defer(offset, format!("quantile must be between 0 and 1: {quantile}"));
                    }
                    quantiles.push(quantile);
                    if self.peek() != &Tok::Comma {
                        break;
                    }
                    self.advance();
                }
            }
        }
        self.expect(&Tok::RParen)?;
        let mut by = Vec::new();
        if self.peek() == &Tok::Kw(Kw::By) {
            self.advance();
            self.expect(&Tok::LParen)?;
            by = self.field_list()?;
            self.expect(&Tok::RParen)?;
        }
        Ok(MetricsAggregate {
            op,
            field,
            quantiles,
            by,
        })
    }

    /// `compare({ ... })`, `compare({ ... }, top_n)`, `compare({ ... }, top_n, start, end)`.
    fn compare(&mut self) -> Result<Compare, ParseError> {
        let offset = self.offset();
        self.advance();
        self.expect(&Tok::LParen)?;
        if self.peek() != &Tok::LBrace {
            return Err(self.unexpected_expecting(&["{"]));
        }
        let selection = self.spanset_filter()?;
        let mut numbers = Vec::new();
        while self.peek() == &Tok::Comma && numbers.len() < 3 {
            self.advance();
            let Tok::Int(value) = *self.peek() else {
                return Err(self.unexpected_expecting(&["INTEGER"]));
            };
            self.advance();
            numbers.push(value);
        }
        if numbers.len() == 2 {
            return Err(self.unexpected_expecting(&[","]));
        }
        self.expect(&Tok::RParen)?;
        let top_n = numbers.first().copied().unwrap_or(10);
        let (start, end) = match numbers.as_slice() {
            [_, start, end] => (*start, *end),
            _ => (0, 0),
        };
        if !(1..=MAX_COMPARE_TOP_N).contains(&top_n) {
            self.defer(
                offset,
                format!(
                    "compare() top number of values must be an integer between 1 and {MAX_COMPARE_TOP_N}"
                ),
            );
        }
        let mut time_range_ns = None;
        if start != 0 || end != 0 {
            if start <= 0 || end <= 0 {
                self.defer(
                    offset,
                    "compare() timestamps must be positive integer unix nanoseconds".to_owned(),
                );
            } else if end <= start {
                self.defer(
                    offset,
                    "compare() end timestamp must be greater than start timestamp".to_owned(),
                );
            }
            time_range_ns = Some((start, end));
        }
        Ok(Compare {
            selection,
            top_n: u32::try_from(top_n.clamp(1, MAX_COMPARE_TOP_N)).unwrap_or(10),
            time_range_ns,
        })
    }

    /// `with(name = value, ...)`.
    fn hints(&mut self) -> Result<Vec<Hint>, ParseError> {
        self.advance();
        self.expect(&Tok::LParen)?;
        let mut hints = Vec::new();
        loop {
            let Tok::Ident(name) = self.peek().clone() else {
                return Err(self.unexpected_expecting(&["IDENTIFIER"]));
            };
            self.advance();
            self.expect(&Tok::Eq)?;
            let value = self.static_value()?;
            hints.push(Hint { name, value });
            if self.peek() != &Tok::Comma {
                break;
            }
            self.advance();
        }
        self.expect(&Tok::RParen)?;
        Ok(hints)
    }

    // ---- Spanset filters and field expressions ---------------------------------------------

    /// `{}` or `{ expr }`.
    fn spanset_filter(&mut self) -> Result<SpansetFilter, ParseError> {
        let offset = self.offset();
        self.advance();
        if self.peek() == &Tok::RBrace {
            self.advance();
            return Ok(SpansetFilter {
                expr: FieldExpr::Static(Static::Bool(true)),
            });
        }
        self.enter()?;
        let parsed = self.field_expr();
        self.leave();
        let parsed = parsed?;
        if self.peek() != &Tok::RBrace {
            return Err(self.unexpected_at(self.position));
        }
        self.advance();
        let filter = SpansetFilter { expr: parsed.expr };
        let expr_type = filter.expr.static_type();
        if expr_type != StaticType::Unknown && expr_type != StaticType::Bool {
            self.defer(
                offset,
                format!("span filter field expressions must resolve to a boolean: {filter}"),
            );
        }
        Ok(filter)
    }

    fn field_expr(&mut self) -> Result<Parsed, ParseError> {
        self.field_binary(1)
    }

    /// Precedence climbing over the field-expression operators binding at least
    /// `min_precedence`.
    fn field_binary(&mut self, min_precedence: u8) -> Result<Parsed, ParseError> {
        let mut lhs = self.field_unary()?;
        loop {
            let op = self.peek().clone();
            let Some(precedence) = field_precedence(&op) else {
                break;
            };
            if precedence < min_precedence {
                break;
            }
            let op_offset = self.offset();
            // `x = nil` and `x != nil` (Tempo's NIL has the highest precedence).
            if matches!(op, Tok::Eq | Tok::Neq) && self.peek_at(1) == &Tok::Kw(Kw::Nil) {
                self.advance();
                self.advance();
                let unary_op = if op == Tok::Eq {
                    UnaryOp::NotExists
                } else {
                    UnaryOp::Exists
                };
                let lhs_offset = lhs.offset;
                lhs = self.build_unary(unary_op, lhs, lhs_offset)?;
                continue;
            }
            self.advance();
            let next_min = if op == Tok::Pow {
                precedence
            } else {
                precedence + 1
            };
            self.enter()?;
            let rhs = self.field_binary(next_min);
            self.leave();
            lhs = self.build_binary(&op, op_offset, lhs, rhs?)?;
        }
        Ok(lhs)
    }

    /// `!x`, `-x`, `nil = x`, `nil != x`, or a primary.
    fn field_unary(&mut self) -> Result<Parsed, ParseError> {
        let offset = self.offset();
        let (op, operand_precedence) = match self.peek() {
            Tok::Not => (UnaryOp::Not, NOT_PRECEDENCE + 1),
            Tok::Sub => (UnaryOp::Negate, NEGATE_PRECEDENCE + 1),
            Tok::Kw(Kw::Nil) => return self.nil_comparison(),
            _ => return self.field_primary(),
        };
        self.advance();
        self.enter()?;
        let operand = self.field_binary(operand_precedence);
        self.leave();
        let operand = operand?;
        self.build_unary(op, operand, offset)
    }

    /// `nil = x` (x does not exist), `nil != x` (x exists); `nil = nil` and `nil != nil` are
    /// false, as in Tempo.
    fn nil_comparison(&mut self) -> Result<Parsed, ParseError> {
        let offset = self.offset();
        self.advance();
        let op = self.peek().clone();
        if !matches!(op, Tok::Eq | Tok::Neq) {
            return Err(self.unexpected_expecting(&["=", "!="]));
        }
        self.advance();
        if self.peek() == &Tok::Kw(Kw::Nil) {
            self.advance();
            return Ok(Parsed {
                expr: FieldExpr::Static(Static::Bool(false)),
                depth: 1,
                offset,
            });
        }
        self.enter()?;
        let operand = self.field_binary(3);
        self.leave();
        let operand = operand?;
        let unary_op = if op == Tok::Eq {
            UnaryOp::NotExists
        } else {
            UnaryOp::Exists
        };
        self.build_unary(unary_op, operand, offset)
    }

    /// A literal, a field or a parenthesized expression.
    fn field_primary(&mut self) -> Result<Parsed, ParseError> {
        let offset = self.offset();
        let leaf = |expr| Parsed {
            expr,
            depth: 1,
            offset,
        };
        let tok = self.peek().clone();
        match tok {
            Tok::LParen => {
                self.advance();
                self.enter()?;
                let inner = self.field_binary(1);
                self.leave();
                let mut inner = inner?;
                if self.peek() != &Tok::RParen {
                    return Err(self.unexpected_at(self.position));
                }
                self.advance();
                inner.offset = offset;
                Ok(inner)
            }
            Tok::Attr(..) | Tok::ScopeColon(_) => Ok(leaf(FieldExpr::Field(self.field()?))),
            Tok::Kw(keyword) if unscoped_intrinsic(keyword).is_some() || keyword == Kw::Parent => {
                Ok(leaf(FieldExpr::Field(self.field()?)))
            }
            _ => Ok(leaf(FieldExpr::Static(self.static_value()?))),
        }
    }

    /// A literal: string, number, duration, boolean, status, kind, `minInt` or `maxInt`.
    fn static_value(&mut self) -> Result<Static, ParseError> {
        let value = match self.peek().clone() {
            Tok::Str(text) => Static::String(text),
            Tok::Int(value) => Static::Int(value),
            Tok::Float(value) => Static::Float(value),
            Tok::Duration(nanos) => Static::Duration { nanos },
            Tok::Kw(Kw::True) => Static::Bool(true),
            Tok::Kw(Kw::False) => Static::Bool(false),
            Tok::Kw(Kw::Ok) => Static::Status(Status::Ok),
            Tok::Kw(Kw::Error) => Static::Status(Status::Error),
            Tok::Kw(Kw::Unset) => Static::Status(Status::Unset),
            Tok::Kw(Kw::Unspecified) => Static::Kind(SpanKind::Unspecified),
            Tok::Kw(Kw::Internal) => Static::Kind(SpanKind::Internal),
            Tok::Kw(Kw::Server) => Static::Kind(SpanKind::Server),
            Tok::Kw(Kw::Client) => Static::Kind(SpanKind::Client),
            Tok::Kw(Kw::Producer) => Static::Kind(SpanKind::Producer),
            Tok::Kw(Kw::Consumer) => Static::Kind(SpanKind::Consumer),
            Tok::Ident(name) if name == "minInt" => Static::Int(i64::MIN),
            Tok::Ident(name) if name == "maxInt" => Static::Int(i64::MAX),
            Tok::Ident(name) => {
                return Err(self.error_at(self.offset(), format!("unknown identifier: {name}")));
            }
            _ => return Err(self.unexpected_at(self.position)),
        };
        self.advance();
        Ok(value)
    }

    /// An intrinsic or an attribute (Tempo's `attribute`).
    fn field(&mut self) -> Result<Field, ParseError> {
        let offset = self.offset();
        match self.peek().clone() {
            Tok::Attr(attribute, _) => {
                self.advance();
                Ok(Field::Attribute(attribute))
            }
            Tok::ScopeColon(scope) => {
                self.advance();
                let intrinsic = match self.peek() {
                    Tok::Kw(keyword) => scoped_intrinsic(scope, *keyword),
                    _ => None,
                };
                let Some(intrinsic) = intrinsic else {
                    return Err(self.unexpected_expecting(scoped_intrinsic_names(scope)));
                };
                self.advance();
                Ok(Field::Intrinsic(intrinsic))
            }
            Tok::Kw(Kw::Parent) => {
                self.advance();
                self.defer(offset, "intrinsic (parent) not yet supported".to_owned());
                Ok(Field::Intrinsic(Intrinsic::Name))
            }
            Tok::Kw(keyword) => match unscoped_intrinsic(keyword) {
                Some(intrinsic) => {
                    self.advance();
                    Ok(Field::Intrinsic(intrinsic))
                }
                None => Err(self.unexpected_at(self.position)),
            },
            _ => Err(self.unexpected_at(self.position)),
        }
    }

    /// Fields separated by commas (at least one).
    fn field_list(&mut self) -> Result<Vec<Field>, ParseError> {
        let mut fields = vec![self.field()?];
        while self.peek() == &Tok::Comma {
            self.advance();
            fields.push(self.field()?);
        }
        Ok(fields)
    }

    /// Builds `op operand`, negating numeric literals and checking types as Tempo does.
    fn build_unary(&mut self, op: UnaryOp, operand: Parsed, offset: usize) -> Result<Parsed, ParseError> {
        if op == UnaryOp::Negate
            && let FieldExpr::Static(value) = &operand.expr
            && let Some(negated) = negate_number(value)
        {
            return Ok(Parsed {
                expr: FieldExpr::Static(negated),
                depth: operand.depth,
                offset,
            });
        }
        let depth = operand.depth + 1;
        self.check_depth(depth, offset)?;
        let operand_type = operand.expr.static_type();
        let expr = FieldExpr::Unary(Box::new(UnaryExpr {
            op,
            expr: operand.expr,
        }));
        if op == UnaryOp::NotExists
            && let FieldExpr::Unary(unary) = &expr
            && let FieldExpr::Field(field) = &unary.expr
        {
            match field {
                Field::Intrinsic(_) => {
                    self.defer(
                        offset,
                        format!("{field}=nil is not valid because intrinsics cannot be nil"),
                    );
                }
                Field::Attribute(attribute)
                    if *attribute == Attribute::new(AttributeScope::Resource, "service.name") =>
                {
                    self.defer(
                        offset,
                        format!("{field}=nil is not valid because resource.service.name cannot be nil"),
                    );
                }
                Field::Attribute(_) => {}
            }
        }
        let valid = match op {
            UnaryOp::Not => operand_type == StaticType::Bool,
            UnaryOp::Negate => operand_type.is_numeric(),
            UnaryOp::Exists | UnaryOp::NotExists => true,
        };
        if operand_type != StaticType::Unknown && !valid {
            self.defer(offset, format!("illegal operation for the given type: {expr}"));
        }
        Ok(Parsed { expr, depth, offset })
    }

    /// Builds `lhs op rhs`, flattening `&&` and `||` chains, compiling regexes and checking
    /// types as Tempo does.
    fn build_binary(
        &mut self,
        op: &Tok,
        op_offset: usize,
        lhs: Parsed,
        rhs: Parsed,
    ) -> Result<Parsed, ParseError> {
        let offset = lhs.offset;
        let lhs_type = lhs.expr.static_type();
        let rhs_type = rhs.expr.static_type();
        let (expr, depth) = match op {
            Tok::And | Tok::Or => {
                let is_and = op == &Tok::And;
                let mut depth = rhs.depth + 1;
                let mut operands = match lhs.expr {
                    FieldExpr::And(operands) if is_and => {
                        depth = depth.max(lhs.depth);
                        operands
                    }
                    FieldExpr::Or(operands) if !is_and => {
                        depth = depth.max(lhs.depth);
                        operands
                    }
                    other => {
                        depth = depth.max(lhs.depth + 1);
                        vec![other]
                    }
                };
                match rhs.expr {
                    FieldExpr::And(more) if is_and => operands.extend(more),
                    FieldExpr::Or(more) if !is_and => operands.extend(more),
                    other => operands.push(other),
                }
                let expr = if is_and {
                    FieldExpr::And(operands)
                } else {
                    FieldExpr::Or(operands)
                };
                (expr, depth)
            }
            Tok::Re | Tok::Nre => {
                let negated = op == &Tok::Nre;
                let text = format!("{} {} {}", lhs.expr, if negated { "!~" } else { "=~" }, rhs.expr);
                if !lhs_type.is_matching(rhs_type) {
                    self.defer(
                        offset,
                        format!("binary operations must operate on the same type: {text}"),
                    );
                } else if !regex_type_valid(lhs_type) || !regex_type_valid(rhs_type) {
                    self.defer(offset, format!("illegal operation for the given types: {text}"));
                }
                let depth = 1 + lhs.depth.max(rhs.depth);
                let expr = match &rhs.expr {
                    FieldExpr::Static(Static::String(source)) => match GoRegex::new(source) {
                        Ok(regex) => FieldExpr::Regex(Box::new(RegexExpr {
                            negated,
                            lhs: lhs.expr,
                            regex,
                        })),
                        Err(reason) => {
                            self.defer(rhs.offset, format!("invalid regex: {}: {reason}", rhs.expr));
                            FieldExpr::Static(Static::Bool(false))
                        }
                    },
                    other => {
                        self.defer(rhs.offset, format!("invalid type for =~ or !~: {other}"));
                        FieldExpr::Static(Static::Bool(false))
                    }
                };
                (expr, depth)
            }
            _ => {
                let binary_op = match (compare_op(op), arithmetic_op(op)) {
                    (Some(compare), _) => BinaryOp::Compare(compare),
                    (None, Some(arithmetic)) => BinaryOp::Arithmetic(arithmetic),
                    (None, None) => return Err(self.unexpected_at(self.position)),
                };
                let expr = FieldExpr::Binary(Box::new(BinaryExpr {
                    op: binary_op,
                    lhs: lhs.expr,
                    rhs: rhs.expr,
                }));
                self.check_types(offset, &expr, lhs_type, rhs_type, |t| {
                    binary_type_valid(binary_op, t)
                });
                (expr, 1 + lhs.depth.max(rhs.depth))
            }
        };
        if matches!(op, Tok::And | Tok::Or) {
            let valid = |t: StaticType| matches!(t, StaticType::Unknown | StaticType::Bool);
            if !lhs_type.is_matching(rhs_type) {
                self.defer(
                    offset,
                    format!("binary operations must operate on the same type: {expr}"),
                );
            } else if !valid(lhs_type) || !valid(rhs_type) {
                self.defer(offset, format!("illegal operation for the given types: {expr}"));
            }
        }
        self.check_depth(depth, op_offset)?;
        Ok(Parsed { expr, depth, offset })
    }

    /// Tempo's checks of a binary operation's operand types.
    fn check_types(
        &mut self,
        offset: usize,
        expr: &dyn std::fmt::Display,
        lhs_type: StaticType,
        rhs_type: StaticType,
        valid: impl Fn(StaticType) -> bool,
    ) {
        if !lhs_type.is_matching(rhs_type) {
            self.defer(
                offset,
                format!("binary operations must operate on the same type: {expr}"),
            );
        } else if !valid(lhs_type) || !valid(rhs_type) {
            self.defer(offset, format!("illegal operation for the given types: {expr}"));
        }
    }

    // ---- Classification ---------------------------------------------------------------------

    /// "syntax error: unexpected X" at the first token of `node`.
    fn unexpected_node(&self, node: &Node) -> ParseError {
        self.unexpected_at(node.start)
    }

    /// Turns the untyped tree of the whole query into a [`Query`].
    fn classify_root(&mut self, node: Node) -> Result<Query, ParseError> {
        if kind(&node) == Kind::Metrics || kind(&node) == Kind::Stage {
            return Ok(Query::Metrics(self.metrics_of(node)?));
        }
        Ok(Query::Spansets(self.pipeline_of(node)?))
    }

    fn pipeline_of(&mut self, node: Node) -> Result<Pipeline, ParseError> {
        match node.kind {
            NodeKind::Paren(inner) => self.pipeline_of(*inner),
            NodeKind::Pipe(elements) => self.pipeline_from(elements),
            _ => self.pipeline_from(vec![node]),
        }
    }

    fn pipeline_from(&mut self, nodes: Vec<Node>) -> Result<Pipeline, ParseError> {
        if let Some(first) = nodes.first()
            && matches!(first.kind, NodeKind::Coalesce)
        {
            return Err(self.unexpected_node(first));
        }
        let mut elements = Vec::with_capacity(nodes.len());
        for node in nodes {
            elements.push(self.element_of(node)?);
        }
        Ok(Pipeline { elements })
    }

    fn element_of(&mut self, node: Node) -> Result<PipelineElement, ParseError> {
        let node_kind = kind(&node);
        match node.kind {
            NodeKind::GroupBy(expr) => Ok(PipelineElement::GroupBy(expr)),
            NodeKind::Coalesce => Ok(PipelineElement::Coalesce),
            NodeKind::Select(fields) => Ok(PipelineElement::Select(fields)),
            _ => match node_kind {
                Kind::Spanset => Ok(PipelineElement::Spansets(self.spanset_of(node, false)?)),
                Kind::ScalarFilter => Ok(PipelineElement::ScalarFilter(self.scalar_filter_of(node)?)),
                // A bare aggregate or number: a comparison must follow.
                Kind::Scalar => Err(self.unexpected_at(node.end)),
                Kind::Metrics | Kind::Stage => Err(self.unexpected_node(&node)),
            },
        }
    }

    /// A spanset expression; `operand` says it is the right side of a spanset operator
    /// (which only `{` or `(` may start).
    fn spanset_of(&mut self, node: Node, operand: bool) -> Result<SpansetExpr, ParseError> {
        match node.kind {
            NodeKind::Filter(filter) => Ok(SpansetExpr::Filter(filter)),
            NodeKind::Paren(inner) => match inner.kind {
                NodeKind::Pipe(_) | NodeKind::GroupBy(_) | NodeKind::Coalesce | NodeKind::Select(_) => {
                    let mut pipeline = self.pipeline_of(*inner)?;
                    if pipeline.elements.len() == 1
                        && let Some(PipelineElement::Spansets(_)) = pipeline.elements.first()
                        && let Some(PipelineElement::Spansets(expr)) = pipeline.elements.pop()
                    {
                        return Ok(expr);
                    }
                    Ok(SpansetExpr::Pipeline(Box::new(pipeline)))
                }
                _ => self.spanset_of(*inner, operand),
            },
            NodeKind::Binary(binary) => {
                let binary = *binary;
                let Some(op) = spanset_op(&binary.op) else {
                    return Err(self.unexpected_at(binary.op_index));
                };
                if matches!(
                    binary.lhs.kind,
                    NodeKind::GroupBy(_) | NodeKind::Coalesce | NodeKind::Select(_)
                ) {
                    return Err(self.unexpected_at(binary.op_index));
                }
                let lhs = self.spanset_of(binary.lhs, false)?;
                let rhs = self.spanset_of(binary.rhs, true)?;
                Ok(SpansetExpr::Operation(Box::new(SpansetOperation {
                    op,
                    lhs,
                    rhs,
                })))
            }
            _ if operand => Err(self.unexpected_expecting_at(node.start, &["{", "("])),
            _ => Err(self.unexpected_node(&node)),
        }
    }

    fn scalar_filter_of(&mut self, node: Node) -> Result<ScalarFilter, ParseError> {
        let offset = self.token_at(node.start).offset;
        let NodeKind::Binary(binary) = node.kind else {
            return Err(self.unexpected_at(node.start));
        };
        let binary = *binary;
        let Some(op) = compare_op(&binary.op) else {
            return Err(self.unexpected_at(binary.op_index));
        };
        let lhs = self.scalar_of(binary.lhs)?;
        let rhs = self.scalar_of(binary.rhs)?;
        if !scalar_has_aggregate(&lhs) && !scalar_has_aggregate(&rhs) {
            return Err(self.unexpected_at(binary.op_index));
        }
        let filter = ScalarFilter { op, lhs, rhs };
        let (lhs_type, rhs_type) = (scalar_type(&filter.lhs), scalar_type(&filter.rhs));
        self.check_types(offset, &filter, lhs_type, rhs_type, |t| {
            binary_type_valid(BinaryOp::Compare(op), t)
        });
        Ok(filter)
    }

    fn scalar_of(&mut self, node: Node) -> Result<ScalarExpr, ParseError> {
        if is_constant(&node) {
            return Ok(ScalarExpr::Static(self.fold(&node)?));
        }
        let offset = self.token_at(node.start).offset;
        match node.kind {
            NodeKind::Aggregate(aggregate) => Ok(ScalarExpr::Aggregate(aggregate)),
            NodeKind::Paren(inner) => match inner.kind {
                NodeKind::Pipe(mut elements) => {
                    let last = elements.pop();
                    let Some(Node {
                        kind: NodeKind::Aggregate(aggregate),
                        ..
                    }) = last
                    else {
                        let index = last.map_or(inner.end, |last| last.start);
                        return Err(self.unexpected_at(index));
                    };
                    let pipeline = self.pipeline_from(elements)?;
                    Ok(ScalarExpr::Pipeline(Box::new(ScalarPipeline {
                        pipeline,
                        aggregate,
                    })))
                }
                _ => self.scalar_of(*inner),
            },
            NodeKind::Binary(binary) => {
                let binary = *binary;
                let Some(op) = arithmetic_op(&binary.op) else {
                    return Err(self.unexpected_at(binary.op_index));
                };
                let lhs = self.scalar_of(binary.lhs)?;
                let rhs = self.scalar_of(binary.rhs)?;
                let (lhs_type, rhs_type) = (scalar_type(&lhs), scalar_type(&rhs));
                let expr = ScalarExpr::Binary(Box::new(ScalarBinary { op, lhs, rhs }));
                self.check_types(offset, &expr, lhs_type, rhs_type, |t| {
                    binary_type_valid(BinaryOp::Arithmetic(op), t)
                });
                Ok(expr)
            }
            _ => Err(self.unexpected_at(node.start)),
        }
    }

    /// Folds constant arithmetic as Tempo's `scalar` rules do: integers stay integers (`1/2`
    /// is 0), anything with a float is a float, durations may only be negated.
    fn fold(&self, node: &Node) -> Result<Static, ParseError> {
        match &node.kind {
            NodeKind::Number(value) => Ok(value.clone()),
            NodeKind::Paren(inner) => self.fold(inner),
            NodeKind::Negate(inner) => {
                let value = self.fold(inner)?;
                Ok(negate_number(&value).unwrap_or(value))
            }
            NodeKind::Binary(binary) => {
                let op_offset = self.token_at(binary.op_index).offset;
                let Some(op) = arithmetic_op(&binary.op).filter(|op| {
                    matches!(
                        op,
                        ArithmeticOp::Add | ArithmeticOp::Sub | ArithmeticOp::Mul | ArithmeticOp::Div
                    )
                }) else {
                    return Err(self.unexpected_at(binary.op_index));
                };
                let lhs = self.fold(&binary.lhs)?;
                let rhs = self.fold(&binary.rhs)?;
                if matches!(lhs, Static::Duration { .. }) || matches!(rhs, Static::Duration { .. }) {
                    return Err(self.error_at(op_offset, "duration cannot be used in scalar arithmetic"));
                }
                if let (Static::Int(left), Static::Int(right)) = (&lhs, &rhs) {
                    let value = match op {
                        ArithmeticOp::Add => left.wrapping_add(*right),
                        ArithmeticOp::Sub => left.wrapping_sub(*right),
                        ArithmeticOp::Mul => left.wrapping_mul(*right),
                        _ if *right == 0 => return Err(self.error_at(op_offset, "division by zero")),
                        _ => left.wrapping_div(*right),
                    };
                    return Ok(Static::Int(value));
                }
                let (left, right) = (lhs.as_f64().unwrap_or_default(), rhs.as_f64().unwrap_or_default());
                let value = match op {
                    ArithmeticOp::Add => left + right,
                    ArithmeticOp::Sub => left - right,
                    ArithmeticOp::Mul => left * right,
                    _ => left / right,
                };
                if !value.is_finite() {
                    return Err(self.error_at(op_offset, "constant arithmetic does not give a finite number"));
                }
                Ok(Static::Float(value))
            }
            _ => Err(self.unexpected_node(node)),
        }
    }

    fn metrics_of(&mut self, node: Node) -> Result<MetricsExpr, ParseError> {
        match node.kind {
            NodeKind::Paren(inner) => self.metrics_of(*inner),
            NodeKind::Pipe(mut elements) => {
                let head_is_expression = elements
                    .first()
                    .is_some_and(|first| kind(first) == Kind::Metrics && !is_bare_metrics(first));
                if head_is_expression {
                    let rest = elements.split_off(1);
                    let Some(first) = elements.pop() else {
                        return Err(self.unexpected_at(node.start));
                    };
                    let expr = self.metrics_of(first)?;
                    let stage_index = rest.first().map_or(node.end, |stage| stage.start);
                    let mut stages = Vec::new();
                    for element in rest {
                        stages.extend(self.stages_of(element)?);
                    }
                    return self.staged(expr, stages, stage_index);
                }
                let Some(function_index) = elements
                    .iter()
                    .position(|element| matches!(kind(element), Kind::Metrics | Kind::Stage))
                else {
                    return Err(self.unexpected_at(node.start));
                };
                if function_index == 0 || kind(&elements[function_index]) == Kind::Stage {
                    return Err(self.unexpected_node(&elements[function_index]));
                }
                let rest = elements.split_off(function_index);
                let pipeline = self.pipeline_from(elements)?;
                let mut rest = rest.into_iter();
                let Some(head) = rest.next() else {
                    return Err(self.unexpected_at(node.end));
                };
                let stage_index = head.start;
                let (function, mut stages) = self.peel_metrics(head)?;
                for element in rest {
                    stages.extend(self.stages_of(element)?);
                }
                if matches!(function, MetricsFunction::Compare(_)) && !stages.is_empty() {
                    return Err(self.compare_with_stages(stage_index));
                }
                Ok(MetricsExpr::Pipeline(Box::new(MetricsPipeline {
                    pipeline,
                    function,
                    second_stages: stages,
                })))
            }
            NodeKind::Binary(binary) => {
                let binary = *binary;
                if let Some(op) = compare_op(&binary.op) {
                    let expr = self.metrics_of(binary.lhs)?;
                    let threshold = self.threshold(&binary.rhs)?;
                    return self.staged(expr, vec![SecondStage::Filter(op, threshold)], binary.op_index);
                }
                let Some(op) = arithmetic_op(&binary.op).filter(|op| {
                    matches!(
                        op,
                        ArithmeticOp::Add | ArithmeticOp::Sub | ArithmeticOp::Mul | ArithmeticOp::Div
                    )
                }) else {
                    return Err(self.unexpected_at(binary.op_index));
                };
                let lhs = self.metrics_operand(binary.lhs)?;
                let rhs = self.metrics_operand(binary.rhs)?;
                if contains_compare(&lhs) || contains_compare(&rhs) {
                    return Err(self.compare_with_stages(binary.op_index));
                }
                Ok(MetricsExpr::Binary(Box::new(MetricsBinary { op, lhs, rhs })))
            }
            _ => Err(self.unexpected_node(&node)),
        }
    }

    fn compare_with_stages(&self, index: usize) -> ParseError {
        self.error_at(
            self.token_at(index).offset,
            "`compare()` cannot be used with second stage functions",
        )
    }

    /// An operand of metrics arithmetic: series or a constant.
    fn metrics_operand(&mut self, node: Node) -> Result<MetricsExpr, ParseError> {
        if is_constant(&node) {
            let value = self.fold(&node)?;
            if matches!(value, Static::Duration { .. }) {
                return Err(self.error_at(
                    self.token_at(node.start).offset,
                    "duration cannot be used as a scalar operand in metric arithmetic",
                ));
            }
            return Ok(MetricsExpr::Scalar(value.as_f64().unwrap_or_default()));
        }
        if kind(&node) != Kind::Metrics || is_bare_metrics(&node) {
            return Err(self.unexpected_node(&node));
        }
        self.metrics_of(node)
    }

    /// The constant of a metrics filter (`> 10`, `> 1s`: durations in seconds).
    fn threshold(&self, node: &Node) -> Result<f64, ParseError> {
        if !is_constant(node) {
            return Err(self.unexpected_node(node));
        }
        Ok(match self.fold(node)? {
            Static::Duration { nanos } => nanos as f64 / 1e9,
            value => value.as_f64().unwrap_or_default(),
        })
    }

    /// A metrics function with the filters written right after it (`rate() > 2 < 5`).
    fn peel_metrics(&mut self, node: Node) -> Result<(MetricsFunction, Vec<SecondStage>), ParseError> {
        match node.kind {
            NodeKind::Metrics(function) => Ok((function, Vec::new())),
            NodeKind::Binary(binary) => {
                let binary = *binary;
                let Some(op) = compare_op(&binary.op) else {
                    return Err(self.unexpected_at(binary.op_index));
                };
                let (function, mut stages) = self.peel_metrics(binary.lhs)?;
                stages.push(SecondStage::Filter(op, self.threshold(&binary.rhs)?));
                Ok((function, stages))
            }
            _ => Err(self.unexpected_node(&node)),
        }
    }

    /// A second-stage element: `topk(5)`, `bottomk(3) > 10`.
    fn stages_of(&mut self, node: Node) -> Result<Vec<SecondStage>, ParseError> {
        match node.kind {
            NodeKind::Stage(stage) => Ok(vec![stage]),
            NodeKind::Binary(binary) => {
                let binary = *binary;
                let Some(op) = compare_op(&binary.op) else {
                    return Err(self.unexpected_at(binary.op_index));
                };
                let mut stages = self.stages_of(binary.lhs)?;
                stages.push(SecondStage::Filter(op, self.threshold(&binary.rhs)?));
                Ok(stages)
            }
            _ => Err(self.unexpected_node(&node)),
        }
    }

    /// `expr` followed by `stages`, merged into a pipeline's own stages where possible.
    fn staged(
        &self,
        expr: MetricsExpr,
        stages: Vec<SecondStage>,
        index: usize,
    ) -> Result<MetricsExpr, ParseError> {
        if stages.is_empty() {
            return Ok(expr);
        }
        if contains_compare(&expr) {
            return Err(self.compare_with_stages(index));
        }
        Ok(match expr {
            MetricsExpr::Pipeline(mut pipeline) => {
                pipeline.second_stages.extend(stages);
                MetricsExpr::Pipeline(pipeline)
            }
            MetricsExpr::Staged(mut staged) => {
                staged.stages.extend(stages);
                MetricsExpr::Staged(staged)
            }
            expr => MetricsExpr::Staged(Box::new(StagedMetrics { expr, stages })),
        })
    }
}

/// The intrinsic an unscoped keyword names (Tempo's `intrinsicField`, plus `childCount`
/// and `rootService`, which Tempo's documentation lists).
fn unscoped_intrinsic(keyword: Kw) -> Option<Intrinsic> {
    Some(match keyword {
        Kw::Duration => Intrinsic::Duration,
        Kw::Name => Intrinsic::Name,
        Kw::Status => Intrinsic::Status,
        Kw::StatusMessage => Intrinsic::StatusMessage,
        Kw::Kind => Intrinsic::Kind,
        Kw::ChildCount => Intrinsic::ChildCount,
        Kw::RootName => Intrinsic::TraceRootName,
        Kw::RootServiceName | Kw::RootService => Intrinsic::TraceRootService,
        Kw::TraceDuration => Intrinsic::TraceDuration,
        Kw::NestedSetLeft => Intrinsic::NestedSetLeft,
        Kw::NestedSetRight => Intrinsic::NestedSetRight,
        Kw::NestedSetParent => Intrinsic::NestedSetParent,
        _ => return None,
    })
}

/// The intrinsic `scope:keyword` names.
fn scoped_intrinsic(scope: IntrinsicScope, keyword: Kw) -> Option<Intrinsic> {
    Some(match (scope, keyword) {
        (IntrinsicScope::Trace, Kw::Duration) => Intrinsic::TraceDuration,
        (IntrinsicScope::Trace, Kw::RootName) => Intrinsic::TraceRootName,
        (IntrinsicScope::Trace, Kw::RootService) => Intrinsic::TraceRootService,
        (IntrinsicScope::Trace, Kw::Id) => Intrinsic::TraceId,
        (IntrinsicScope::Span, Kw::Duration) => Intrinsic::Duration,
        (IntrinsicScope::Span, Kw::Name) => Intrinsic::Name,
        (IntrinsicScope::Span, Kw::Kind) => Intrinsic::Kind,
        (IntrinsicScope::Span, Kw::Status) => Intrinsic::Status,
        (IntrinsicScope::Span, Kw::StatusMessage) => Intrinsic::StatusMessage,
        (IntrinsicScope::Span, Kw::Id) => Intrinsic::SpanId,
        (IntrinsicScope::Span, Kw::ParentId) => Intrinsic::ParentId,
        (IntrinsicScope::Span, Kw::ChildCount) => Intrinsic::ChildCount,
        (IntrinsicScope::Event, Kw::Name) => Intrinsic::EventName,
        (IntrinsicScope::Event, Kw::TimeSinceStart) => Intrinsic::EventTimeSinceStart,
        (IntrinsicScope::Link, Kw::TraceId) => Intrinsic::LinkTraceId,
        (IntrinsicScope::Link, Kw::SpanId) => Intrinsic::LinkSpanId,
        (IntrinsicScope::Instrumentation, Kw::Name) => Intrinsic::InstrumentationName,
        (IntrinsicScope::Instrumentation, Kw::Version) => Intrinsic::InstrumentationVersion,
        _ => return None,
    })
}

/// What may follow `scope:`, listed in errors when there are at most four (as goyacc does).
fn scoped_intrinsic_names(scope: IntrinsicScope) -> &'static [&'static str] {
    match scope {
        IntrinsicScope::Trace => &["duration", "rootName", "rootService", "id"],
        IntrinsicScope::Span => &[],
        IntrinsicScope::Event => &["name", "timeSinceStart"],
        IntrinsicScope::Link => &["traceID", "spanID"],
        IntrinsicScope::Instrumentation => &["name", "version"],
    }
}

/// `-value` for a numeric literal.
fn negate_number(value: &Static) -> Option<Static> {
    match *value {
        Static::Int(number) => Some(Static::Int(number.wrapping_neg())),
        Static::Float(number) => Some(Static::Float(-number)),
        Static::Duration { nanos } => Some(Static::Duration {
            nanos: nanos.wrapping_neg(),
        }),
        _ => None,
    }
}

impl StaticType {
    /// Whether two types can be operands of one binary operator (Tempo's
    /// `isMatchingOperand`): equal, both numeric, or one unknown.
    fn is_matching(self, other: StaticType) -> bool {
        self == StaticType::Unknown
            || other == StaticType::Unknown
            || self == other
            || (self.is_numeric() && other.is_numeric())
    }
}

/// Whether `op` applies to values of type `t` (Tempo's `binaryTypeValid`).
fn binary_type_valid(op: BinaryOp, t: StaticType) -> bool {
    match t {
        StaticType::Unknown => true,
        StaticType::Bool => matches!(op, BinaryOp::Compare(CompareOp::Eq | CompareOp::Neq)),
        StaticType::Int | StaticType::Float | StaticType::Duration => true,
        StaticType::String => op.is_comparison(),
        StaticType::Status | StaticType::Kind => {
            matches!(op, BinaryOp::Compare(CompareOp::Eq | CompareOp::Neq))
        }
    }
}

/// Whether `=~` and `!~` apply to values of type `t`.
fn regex_type_valid(t: StaticType) -> bool {
    matches!(t, StaticType::Unknown | StaticType::String)
}

fn scalar_has_aggregate(expr: &ScalarExpr) -> bool {
    match expr {
        ScalarExpr::Aggregate(_) | ScalarExpr::Pipeline(_) => true,
        ScalarExpr::Static(_) => false,
        ScalarExpr::Binary(binary) => scalar_has_aggregate(&binary.lhs) || scalar_has_aggregate(&binary.rhs),
    }
}

/// A scalar expression's type (Tempo's `impliedType`): `count()` is an integer, other
/// aggregates have their expression's type.
fn scalar_type(expr: &ScalarExpr) -> StaticType {
    let aggregate_type = |aggregate: &Aggregate| match &aggregate.expr {
        None => StaticType::Int,
        Some(expr) => expr.static_type(),
    };
    match expr {
        ScalarExpr::Aggregate(aggregate) => aggregate_type(aggregate),
        ScalarExpr::Static(value) => value.static_type(),
        ScalarExpr::Binary(binary) => match scalar_type(&binary.lhs) {
            StaticType::Unknown => scalar_type(&binary.rhs),
            known => known,
        },
        ScalarExpr::Pipeline(scalar) => aggregate_type(&scalar.aggregate),
    }
}
