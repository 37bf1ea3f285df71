//! A recursive-descent parser for Loki's grammar (`pkg/logql/syntax/syntax.y`).
//!
//! Binary operators are parsed by precedence climbing with Loki's precedence (`or` <
//! `and unless` < comparisons < `+ -` < `* / %` < `^`, all left-associative but `^`).
//! Label filters combine with `and`, `or`, `,` and juxtaposition; Loki's yacc grammar gives
//! `and` precedence over `or` and resolves every other conflict by shifting, so `,` and
//! juxtaposition group everything to their right (`a, b or c` is `a, (b or c)` and
//! `a or b, c` is `a or (b, c)`); [`Parser::label_filter_expr`] reproduces that with an
//! operator stack.
//!
//! Checks Loki makes after parsing (parameters, groupings, unwraps, literal operands of set
//! operators) are made where the node is built; the stream-selector check ("at least one
//! matcher that does not match the empty value") is made last, so a syntax error anywhere
//! wins over it, as in Loki. Recursion and the depth of the tree are bounded by
//! [`MAX_DEPTH`].

use obs_core::series::MatchOp;

use crate::ast::{
    BinaryExpr, BinaryOp, Cardinality, CompareOp, Expr, Grouping, JsonExtraction, JsonParser, LabelFilter,
    LabelFormat, LabelFormatSource, LabelReplace, LineFilter, LineFilterOp, LineMatch, LogExpr, LogRange,
    LogfmtExtraction, LogfmtParser, NamedMatcher, RangeAggregation, RangeOp, SampleExpr, Stage, Unwrap,
    UnwrapConversion, VectorAggregation, VectorMatching, VectorOp,
};
use crate::error::ParseError;
use crate::extraction::{parse_json_path, parse_logfmt_key};
use crate::ip::IpPattern;
use crate::lexer::{Tok, Token, tokenize};
use crate::matcher::{Anchoring, GoRegex, LabelMatcher};
use crate::pattern::PatternExpr;
use crate::units::{SignedDuration, go_quote, parse_go_float};

/// Queries of this many bytes or more are refused (Loki's `maxInputSize`).
pub const MAX_QUERY_BYTES: usize = 131_072;

/// The deepest nesting accepted: parentheses, function calls and operators, counted both
/// while parsing and in the resulting tree, so neither parsing nor walking, printing or
/// dropping a tree can exhaust the stack.
pub const MAX_DEPTH: usize = 128;

/// What the parser sees past the last token (`tokenize` always ends with one, so this is a
/// fallback that is never reached).
static END_OF_INPUT: Token = Token {
    tok: Tok::Eof,
    offset: usize::MAX,
};

/// The message Loki gives for a selector whose every matcher accepts the empty value.
pub(crate) const EMPTY_COMPATIBLE_SELECTOR: &str = "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will";

/// Parses and validates a whole query.
pub(crate) fn parse_query(input: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser::new(input)?;
    let operand = parser.expr()?;
    if parser.peek() != &Tok::Eof {
        return Err(parser.unexpected());
    }
    if let Some(error) = parser.deferred.take() {
        return Err(error);
    }
    Ok(operand.expr)
}

/// Parses a query that must be a bare stream selector (`{}` allowed, nothing validated
/// beyond syntax).
pub(crate) fn parse_selector_only(input: &str) -> Result<Vec<LabelMatcher>, ParseError> {
    let mut parser = Parser::new(input)?;
    if parser.peek() != &Tok::LBrace {
        return Err(parser.unexpected_expecting(&["{"]));
    }
    let matchers = parser.selector()?;
    if parser.peek() != &Tok::Eof {
        return Err(ParseError::at(
            input,
            parser.offset(),
            "only label matchers are supported",
        ));
    }
    Ok(matchers)
}

/// A parsed expression with what its parent needs to know.
struct Operand {
    expr: Expr,
    /// The depth of a metric expression's tree (1 for a leaf).
    depth: usize,
    /// Where the expression starts.
    offset: usize,
}

/// How two label filters are joined, as the operator stack of
/// [`Parser::label_filter_expr`] holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Connective {
    And,
    Or,
    /// `,` or juxtaposition: an `and` without precedence.
    Conjunction,
}

impl Connective {
    fn precedence(self) -> Option<u8> {
        match self {
            Connective::Or => Some(1),
            Connective::And => Some(2),
            Connective::Conjunction => None,
        }
    }

    /// Whether, with `self` on the stack and `next` ahead, the stack is reduced first (yacc
    /// reduces only when both have a precedence and `self`'s is at least `next`'s).
    fn reduces_before(self, next: Connective) -> bool {
        match (self.precedence(), next.precedence()) {
            (Some(top), Some(ahead)) => top >= ahead,
            _ => false,
        }
    }
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    position: usize,
    /// Current recursion depth.
    depth: usize,
    /// The first selector that fails validation, reported if nothing else fails.
    deferred: Option<ParseError>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Result<Parser<'a>, ParseError> {
        if input.len() >= MAX_QUERY_BYTES {
            return Err(ParseError::at(
                input,
                0,
                format!("input size too long ({} > {MAX_QUERY_BYTES})", input.len()),
            ));
        }
        Ok(Parser {
            input,
            tokens: tokenize(input),
            position: 0,
            depth: 0,
            deferred: None,
        })
    }

    // ---- Token access -------------------------------------------------------------------

    /// The token `ahead` places after the current one; past the end, the last token (Eof or
    /// the lexer's error).
    fn token_at(&self, ahead: usize) -> &Token {
        self.tokens
            .get(self.position + ahead)
            .or(self.tokens.last())
            .unwrap_or(&END_OF_INPUT)
    }

    fn peek(&self) -> &Tok {
        &self.token_at(0).tok
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        &self.token_at(ahead).tok
    }

    fn offset(&self) -> usize {
        self.token_at(0).offset
    }

    /// Moves past the current token (never past the last one).
    fn advance(&mut self) {
        if self.position + 1 < self.tokens.len() {
            self.position += 1;
        }
    }

    /// Takes the current token.
    fn take(&mut self) -> Tok {
        let tok = self.peek().clone();
        self.advance();
        tok
    }

    // ---- Errors ---------------------------------------------------------------------------

    fn error_at(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError::at(self.input, offset, message)
    }

    /// "syntax error: unexpected X" for the current token (or the lexer's error).
    fn unexpected(&self) -> ParseError {
        self.unexpected_expecting(&[])
    }

    fn unexpected_expecting(&self, expected: &[&str]) -> ParseError {
        let message = match self.peek() {
            Tok::Error(message) => message.clone(),
            tok if expected.is_empty() => format!("syntax error: unexpected {}", tok.describe()),
            tok => format!(
                "syntax error: unexpected {}, expecting {}",
                tok.describe(),
                expected.join(" or ")
            ),
        };
        self.error_at(self.offset(), message)
    }

    fn expect(&mut self, tok: &Tok, name: &str) -> Result<(), ParseError> {
        if self.peek() == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.unexpected_expecting(&[name]))
        }
    }

    fn expect_ident(&mut self) -> Result<String, ParseError> {
        match self.take_if_ident() {
            Some(name) => Ok(name),
            None => Err(self.unexpected_expecting(&["IDENTIFIER"])),
        }
    }

    fn take_if_ident(&mut self) -> Option<String> {
        let Tok::Ident(name) = self.peek() else {
            return None;
        };
        let name = name.clone();
        self.advance();
        Some(name)
    }

    fn expect_string(&mut self) -> Result<(String, usize), ParseError> {
        let offset = self.offset();
        let Tok::Str(value) = self.peek() else {
            return Err(self.unexpected_expecting(&["STRING"]));
        };
        let value = value.clone();
        self.advance();
        Ok((value, offset))
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
            format!("query is nested too deeply: more than {MAX_DEPTH} levels of parentheses, functions or operators"),
        )
    }

    // ---- Metric and log expressions -------------------------------------------------------

    fn expr(&mut self) -> Result<Operand, ParseError> {
        self.binary(1)
    }

    /// Precedence climbing over the binary operators binding at least `min_precedence`.
    fn binary(&mut self, min_precedence: u8) -> Result<Operand, ParseError> {
        let mut lhs = self.unary()?;
        while let Some(op) = binary_op(self.peek()) {
            if op.precedence() < min_precedence {
                break;
            }
            let op_offset = self.offset();
            self.advance();
            let (return_bool, matching) = self.binary_modifiers()?;
            let next_min = if op.is_right_associative() {
                op.precedence()
            } else {
                op.precedence() + 1
            };
            self.enter()?;
            let rhs = self.binary(next_min);
            self.leave();
            lhs = self.combine(op, op_offset, return_bool, matching, lhs, rhs?)?;
        }
        Ok(lhs)
    }

    /// `bool`, `on (...)` / `ignoring (...)` and `group_left (...)` / `group_right (...)`.
    #[inline(never)]
    fn binary_modifiers(&mut self) -> Result<(bool, VectorMatching), ParseError> {
        let return_bool = self.peek() == &Tok::Bool;
        if return_bool {
            self.advance();
        }
        let mut matching = VectorMatching::default();
        let on = match self.peek() {
            Tok::On => true,
            Tok::Ignoring => false,
            _ => return Ok((return_bool, matching)),
        };
        self.advance();
        matching.on = on;
        self.expect(&Tok::LParen, "(")?;
        matching.labels = self.label_list()?;
        matching.cardinality = match self.peek() {
            Tok::GroupLeft => Cardinality::ManyToOne,
            Tok::GroupRight => Cardinality::OneToMany,
            _ => return Ok((return_bool, matching)),
        };
        self.advance();
        if self.peek() == &Tok::LParen {
            self.advance();
            matching.include = self.label_list()?;
        }
        Ok((return_bool, matching))
    }

    /// Builds `lhs op rhs`, folding two literals and refusing log queries and literal
    /// operands of set operators, as Loki's `mustNewBinOpExpr` does.
    #[inline(never)]
    fn combine(
        &mut self,
        op: BinaryOp,
        op_offset: usize,
        return_bool: bool,
        matching: VectorMatching,
        lhs: Operand,
        rhs: Operand,
    ) -> Result<Operand, ParseError> {
        let not_metric = |side: &str| {
            format!(
                "unexpected type for {side} leg of binary operation ({}): a log query; wrap it in a range aggregation such as count_over_time",
                op.as_str()
            )
        };
        let Expr::Sample(left) = lhs.expr else {
            return Err(self.error_at(lhs.offset, not_metric("left")));
        };
        let Expr::Sample(right) = rhs.expr else {
            return Err(self.error_at(rhs.offset, not_metric("right")));
        };
        if op.is_set_operator() {
            let literal = |side: &str, value: f64| {
                format!(
                    "unexpected literal for {side} leg of logical/set binary operation ({}): {value:.6}",
                    op.as_str()
                )
            };
            if let SampleExpr::Literal(value) = left {
                return Err(self.error_at(lhs.offset, literal("left", value)));
            }
            if let SampleExpr::Literal(value) = right {
                return Err(self.error_at(rhs.offset, literal("right", value)));
            }
        }
        if let (SampleExpr::Literal(left), SampleExpr::Literal(right)) = (&left, &right) {
            return Ok(Operand {
                expr: Expr::Sample(SampleExpr::Literal(op.apply_scalars(*left, *right))),
                depth: 1,
                offset: lhs.offset,
            });
        }
        let depth = 1 + lhs.depth.max(rhs.depth);
        if depth > MAX_DEPTH {
            return Err(self.too_deep(op_offset));
        }
        Ok(Operand {
            expr: Expr::Sample(SampleExpr::Binary(BinaryExpr {
                op,
                lhs: Box::new(left),
                rhs: Box::new(right),
                return_bool,
                matching,
            })),
            depth,
            offset: lhs.offset,
        })
    }

    /// An operand: a literal, a log query, a parenthesised expression or a function.
    ///
    /// Each kind is parsed in its own function so that the frames on the recursive path
    /// (this one, [`Parser::parenthesized`], [`Parser::binary`]) stay small.
    fn unary(&mut self) -> Result<Operand, ParseError> {
        match *self.peek() {
            Tok::Number(_) | Tok::Add | Tok::Sub => self.literal_operand(),
            Tok::LBrace => self.log_operand(),
            Tok::LParen => self.parenthesized(),
            Tok::RangeOp(op) => self.range_operand(op),
            Tok::VectorOp(op) => self.vector_aggregation(op),
            Tok::LabelReplace => self.label_replace(),
            Tok::Vector => self.vector_operand(),
            _ => Err(self.unexpected()),
        }
    }

    /// `1`, `+1`, `-1.5`.
    #[inline(never)]
    fn literal_operand(&mut self) -> Result<Operand, ParseError> {
        let offset = self.offset();
        let negative = self.peek() == &Tok::Sub;
        if matches!(self.peek(), Tok::Add | Tok::Sub) {
            self.advance();
        }
        let Tok::Number(text) = self.peek().clone() else {
            return Err(self.unexpected_expecting(&["NUMBER"]));
        };
        self.advance();
        let value = self.literal(&text, offset)?;
        Ok(Operand {
            expr: Expr::Sample(SampleExpr::Literal(if negative { -value } else { value })),
            depth: 1,
            offset,
        })
    }

    #[inline(never)]
    fn log_operand(&mut self) -> Result<Operand, ParseError> {
        let offset = self.offset();
        let log = self.log_expr(false)?;
        Ok(Operand {
            expr: Expr::Log(log),
            depth: 1,
            offset,
        })
    }

    /// `( expr )`.
    #[inline(never)]
    fn parenthesized(&mut self) -> Result<Operand, ParseError> {
        self.advance();
        self.enter()?;
        let inner = self.expr();
        self.leave();
        let inner = inner?;
        self.expect(&Tok::RParen, ")")?;
        Ok(inner)
    }

    #[inline(never)]
    fn range_operand(&mut self, op: RangeOp) -> Result<Operand, ParseError> {
        let offset = self.offset();
        let aggregation = self.range_aggregation(op)?;
        Ok(Operand {
            expr: Expr::Sample(SampleExpr::RangeAggregation(aggregation)),
            depth: 1,
            offset,
        })
    }

    /// `vector(1)`.
    #[inline(never)]
    fn vector_operand(&mut self) -> Result<Operand, ParseError> {
        let offset = self.offset();
        self.advance();
        self.expect(&Tok::LParen, "(")?;
        let number_offset = self.offset();
        let Tok::Number(text) = self.peek().clone() else {
            return Err(self.unexpected_expecting(&["NUMBER"]));
        };
        self.advance();
        self.expect(&Tok::RParen, ")")?;
        let value = parse_go_float(&text).map_err(|reason| {
            self.error_at(
                number_offset,
                format!("unable to parse vectorExpr as a float: {reason}"),
            )
        })?;
        Ok(Operand {
            expr: Expr::Sample(SampleExpr::Vector(value)),
            depth: 1,
            offset,
        })
    }

    /// A number literal's value, with Loki's message when it is not a float.
    fn literal(&self, text: &str, offset: usize) -> Result<f64, ParseError> {
        parse_go_float(text)
            .map_err(|reason| self.error_at(offset, format!("unable to parse literal as a float: {reason}")))
    }

    /// Parses a metric expression where the grammar wants one; a log query there is a
    /// syntax error at the token after it, as in Loki.
    fn sample_argument(&mut self) -> Result<(SampleExpr, usize), ParseError> {
        self.enter()?;
        let operand = self.expr();
        self.leave();
        let operand = operand?;
        match operand.expr {
            Expr::Sample(sample) => Ok((sample, operand.depth)),
            Expr::Log(_) => Err(self.unexpected()),
        }
    }

    /// `op([φ,] log range) [grouping]`.
    #[inline(never)]
    fn range_aggregation(&mut self, op: RangeOp) -> Result<RangeAggregation, ParseError> {
        let start = self.offset();
        self.advance();
        self.expect(&Tok::LParen, "(")?;
        if !matches!(self.peek(), Tok::Number(_) | Tok::LBrace | Tok::LParen) {
            return Err(self.unexpected_expecting(&["NUMBER", "{", "("]));
        }
        let param = self.numeric_param();
        self.enter()?;
        let range = self.log_range();
        self.leave();
        let range = range?;
        self.expect(&Tok::RParen, ")")?;
        let grouping = match self.peek() {
            Tok::By | Tok::Without => Some(self.grouping()?),
            _ => None,
        };
        self.finish_range_aggregation(op, start, param, range, grouping)
    }

    /// Checks a range aggregation's parameter, grouping and unwrap, as Loki does.
    #[inline(never)]
    fn finish_range_aggregation(
        &self,
        op: RangeOp,
        start: usize,
        param: Option<String>,
        range: LogRange,
        grouping: Option<Grouping>,
    ) -> Result<RangeAggregation, ParseError> {
        let name = op.as_str();
        let quantile = match param {
            Some(text) if op == RangeOp::QuantileOverTime => {
                Some(parse_go_float(&text).map_err(|reason| {
                    self.error_at(start, format!("invalid parameter for operation {name}: {reason}"))
                })?)
            }
            Some(text) => {
                return Err(self.error_at(
                    start,
                    format!("parameter {text} not supported for operation {name}"),
                ));
            }
            None if op == RangeOp::QuantileOverTime => {
                return Err(self.error_at(start, format!("parameter required for operation {name}")));
            }
            None => None,
        };
        if grouping.is_some() && !op.allows_grouping() {
            return Err(self.error_at(start, format!("grouping not allowed for {name} aggregation")));
        }
        if range.unwrap.is_some() && !op.allows_unwrap() {
            return Err(self.error_at(start, format!("invalid aggregation {name} with unwrap")));
        }
        if range.unwrap.is_none() && !op.allows_lines() {
            return Err(self.error_at(start, format!("invalid aggregation {name} without unwrap")));
        }
        Ok(RangeAggregation {
            op,
            quantile,
            range,
            grouping,
        })
    }

    /// `op [grouping] ([k,] expr) [grouping]`.
    #[inline(never)]
    fn vector_aggregation(&mut self, op: VectorOp) -> Result<Operand, ParseError> {
        let start = self.offset();
        self.advance();
        let mut grouping = match self.peek() {
            Tok::By | Tok::Without => Some(self.grouping()?),
            _ => None,
        };
        self.expect(&Tok::LParen, "(")?;
        let param = self.numeric_param();
        let (inner, inner_depth) = self.sample_argument()?;
        self.expect(&Tok::RParen, ")")?;
        if grouping.is_none() && matches!(self.peek(), Tok::By | Tok::Without) {
            grouping = Some(self.grouping()?);
        }
        self.finish_vector_aggregation(op, start, param, grouping, inner, inner_depth)
    }

    /// A `NUMBER ,` parameter, if the tokens ahead are one.
    fn numeric_param(&mut self) -> Option<String> {
        let (Tok::Number(text), Tok::Comma) = (self.peek(), self.peek_at(1)) else {
            return None;
        };
        let text = text.clone();
        self.advance();
        self.advance();
        Some(text)
    }

    /// Checks a vector aggregation's parameter and grouping, as Loki does.
    #[inline(never)]
    fn finish_vector_aggregation(
        &self,
        op: VectorOp,
        start: usize,
        param: Option<String>,
        grouping: Option<Grouping>,
        inner: SampleExpr,
        inner_depth: usize,
    ) -> Result<Operand, ParseError> {
        let name = op.as_str();
        let k = match param {
            Some(text) if op.takes_k() => {
                let k: i64 = text
                    .parse()
                    .map_err(|_| self.error_at(start, format!("invalid parameter {name}({text},")))?;
                let k = usize::try_from(k).ok().filter(|k| *k > 0).ok_or_else(|| {
                    self.error_at(
                        start,
                        format!("invalid parameter (must be greater than 0) {name}({text}"),
                    )
                })?;
                Some(k)
            }
            Some(text) => {
                return Err(self.error_at(
                    start,
                    format!("unsupported parameter for operation {name}({text},"),
                ));
            }
            None if op.takes_k() => {
                return Err(self.error_at(start, format!("parameter required for operation {name}")));
            }
            None => None,
        };
        if op == VectorOp::ApproxTopk && grouping.is_some() {
            return Err(self.error_at(start, format!("grouping not allowed for {name} aggregation")));
        }
        let grouping = grouping.unwrap_or_default();
        if matches!(op, VectorOp::Sort | VectorOp::SortDesc) && !grouping.labels.is_empty() {
            return Err(self.error_at(start, "sort and sort_desc doesn't allow grouping by labels"));
        }
        let depth = inner_depth + 1;
        if depth > MAX_DEPTH {
            return Err(self.too_deep(start));
        }
        Ok(Operand {
            expr: Expr::Sample(SampleExpr::VectorAggregation(VectorAggregation {
                op,
                k,
                grouping,
                expr: Box::new(inner),
            })),
            depth,
            offset: start,
        })
    }

    /// `label_replace(expr, "dst", "replacement", "src", "regex")`.
    #[inline(never)]
    fn label_replace(&mut self) -> Result<Operand, ParseError> {
        let start = self.offset();
        self.advance();
        self.expect(&Tok::LParen, "(")?;
        let (inner, inner_depth) = self.sample_argument()?;
        let mut strings: Vec<(String, usize)> = Vec::with_capacity(4);
        for _ in 0..4 {
            self.expect(&Tok::Comma, ",")?;
            strings.push(self.expect_string()?);
        }
        self.expect(&Tok::RParen, ")")?;
        self.finish_label_replace(start, strings, inner, inner_depth)
    }

    #[inline(never)]
    fn finish_label_replace(
        &self,
        start: usize,
        strings: Vec<(String, usize)>,
        inner: SampleExpr,
        inner_depth: usize,
    ) -> Result<Operand, ParseError> {
        let [dst, replacement, src, regex] = <[(String, usize); 4]>::try_from(strings)
            .map_err(|_| self.error_at(start, "label_replace takes five arguments"))?;
        let compiled = GoRegex::compile(&regex.0, Anchoring::Anchored).map_err(|reason| {
            self.error_at(
                regex.1,
                format!(
                    "invalid regex in label_replace: error parsing regexp {}: {reason}",
                    go_quote(&regex.0)
                ),
            )
        })?;
        let depth = inner_depth + 1;
        if depth > MAX_DEPTH {
            return Err(self.too_deep(start));
        }
        Ok(Operand {
            expr: Expr::Sample(SampleExpr::LabelReplace(LabelReplace {
                expr: Box::new(inner),
                dst: dst.0,
                replacement: replacement.0,
                src: src.0,
                regex: compiled,
            })),
            depth,
            offset: start,
        })
    }

    /// `by (a, b)` / `without (a, b)`.
    fn grouping(&mut self) -> Result<Grouping, ParseError> {
        let without = self.peek() == &Tok::Without;
        self.advance();
        self.expect(&Tok::LParen, "(")?;
        let labels = self.label_list()?;
        Ok(Grouping { without, labels })
    }

    /// The labels of a list after its `(`, and the `)`.
    fn label_list(&mut self) -> Result<Vec<String>, ParseError> {
        let mut labels = Vec::new();
        if self.peek() == &Tok::RParen {
            self.advance();
            return Ok(labels);
        }
        loop {
            match self.take_if_ident() {
                Some(label) => labels.push(label),
                None if labels.is_empty() => return Err(self.unexpected_expecting(&["IDENTIFIER", ")"])),
                None => return Err(self.unexpected_expecting(&["IDENTIFIER"])),
            }
            match self.peek() {
                Tok::Comma => self.advance(),
                Tok::RParen => {
                    self.advance();
                    return Ok(labels);
                }
                _ => return Err(self.unexpected_expecting(&[",", ")"])),
            }
        }
    }

    // ---- Log ranges -------------------------------------------------------------------------

    /// A log range in any of the orders Loki accepts:
    ///
    /// - `{...} [| stages] [| unwrap ...] [5m] [offset d]`
    /// - `{...} [5m] [offset d] [| stages] [| unwrap ...]`
    /// - `({...} [| stages] [| unwrap ...]) [5m] [offset d]`, and `({...}) [5m] [| unwrap ...]`
    /// - any of these in parentheses.
    fn log_range(&mut self) -> Result<LogRange, ParseError> {
        if self.peek() != &Tok::LParen {
            let (log, unwrap) = self.range_head()?;
            return self.range_tail(log, unwrap, false);
        }
        self.advance();
        self.enter()?;
        let result = self.parenthesized_log_range();
        self.leave();
        result
    }

    /// After the `(` of a log range.
    #[inline(never)]
    fn parenthesized_log_range(&mut self) -> Result<LogRange, ParseError> {
        if self.peek() == &Tok::LParen {
            let inner = self.log_range()?;
            self.expect(&Tok::RParen, ")")?;
            return Ok(inner);
        }
        let (log, unwrap) = self.range_head()?;
        match self.peek() {
            Tok::RParen => {
                self.advance();
                self.range_tail(log, unwrap, true)
            }
            Tok::Range(_) => {
                let range = self.range_tail(log, unwrap, false)?;
                self.expect(&Tok::RParen, ")")?;
                Ok(range)
            }
            _ => Err(self.unexpected()),
        }
    }

    /// `{...} [| stages] [| unwrap ...]`.
    #[inline(never)]
    fn range_head(&mut self) -> Result<(LogExpr, Option<Unwrap>), ParseError> {
        if self.peek() != &Tok::LBrace {
            return Err(self.unexpected_expecting(&["{", "("]));
        }
        let log = self.log_expr(true)?;
        let unwrap = if self.at_unwrap() {
            Some(self.unwrap()?)
        } else {
            None
        };
        Ok((log, unwrap))
    }

    /// `[5m] [offset d]` and what may follow when the head was a bare selector: stages and
    /// an unwrap, or (after a parenthesised selector) an unwrap.
    #[inline(never)]
    fn range_tail(
        &mut self,
        mut log: LogExpr,
        mut unwrap: Option<Unwrap>,
        parenthesized: bool,
    ) -> Result<LogRange, ParseError> {
        let Tok::Range(interval) = *self.peek() else {
            return Err(self.unexpected());
        };
        self.advance();
        let offset = self.offset_modifier()?;
        let bare_selector = log.pipeline.is_empty() && unwrap.is_none();
        if bare_selector {
            if !parenthesized {
                log.pipeline = self.pipeline(true)?;
            }
            if self.at_unwrap() {
                unwrap = Some(self.unwrap()?);
            }
        }
        Ok(LogRange {
            log,
            unwrap,
            interval,
            offset,
        })
    }

    fn offset_modifier(&mut self) -> Result<SignedDuration, ParseError> {
        if self.peek() != &Tok::Offset {
            return Ok(SignedDuration::ZERO);
        }
        self.advance();
        let Tok::Duration(offset) = *self.peek() else {
            return Err(self.unexpected_expecting(&["DURATION"]));
        };
        self.advance();
        Ok(offset)
    }

    fn at_unwrap(&self) -> bool {
        self.peek() == &Tok::Pipe && self.peek_at(1) == &Tok::Unwrap
    }

    /// `| unwrap label`, `| unwrap duration(label)`, … and the `| filter`s after it.
    fn unwrap(&mut self) -> Result<Unwrap, ParseError> {
        self.advance();
        self.advance();
        let conversion = match self.peek() {
            Tok::ConvBytes => Some(UnwrapConversion::Bytes),
            Tok::ConvDuration => Some(UnwrapConversion::Duration),
            Tok::ConvDurationSeconds => Some(UnwrapConversion::DurationSeconds),
            _ => None,
        };
        let label = if conversion.is_some() {
            self.advance();
            self.expect(&Tok::LParen, "(")?;
            let label = self.expect_ident()?;
            self.expect(&Tok::RParen, ")")?;
            label
        } else {
            self.expect_ident()?
        };
        let mut post_filters = Vec::new();
        while self.peek() == &Tok::Pipe {
            self.advance();
            post_filters.push(self.label_filter_expr()?);
        }
        Ok(Unwrap {
            label,
            conversion,
            post_filters,
        })
    }

    // ---- Log queries --------------------------------------------------------------------------

    /// A selector and its pipeline. `in_range`: stop before `| unwrap` (a range aggregation
    /// takes it) instead of refusing it.
    fn log_expr(&mut self, in_range: bool) -> Result<LogExpr, ParseError> {
        let selector_offset = self.offset();
        let selector = self.selector()?;
        if self.deferred.is_none() && !selector.iter().any(|matcher| !matcher.matches_empty()) {
            self.deferred = Some(self.error_at(selector_offset, EMPTY_COMPATIBLE_SELECTOR));
        }
        let pipeline = self.pipeline(in_range)?;
        Ok(LogExpr { selector, pipeline })
    }

    /// `{a="b", c=~"d"}`.
    fn selector(&mut self) -> Result<Vec<LabelMatcher>, ParseError> {
        self.expect(&Tok::LBrace, "{")?;
        let mut matchers = Vec::new();
        if self.peek() == &Tok::RBrace {
            self.advance();
            return Ok(matchers);
        }
        loop {
            matchers.push(self.matcher()?);
            match self.peek() {
                Tok::Comma => self.advance(),
                Tok::RBrace => {
                    self.advance();
                    return Ok(matchers);
                }
                _ => return Err(self.unexpected_expecting(&["}", ","])),
            }
        }
    }

    /// `name op "value"`.
    fn matcher(&mut self) -> Result<LabelMatcher, ParseError> {
        let name = self.expect_ident()?;
        let op = match self.peek() {
            Tok::Eq => MatchOp::Equal,
            Tok::Neq => MatchOp::NotEqual,
            Tok::Re => MatchOp::Regex,
            Tok::Nre => MatchOp::NotRegex,
            _ => return Err(self.unexpected()),
        };
        self.advance();
        self.matcher_value(op, name)
    }

    fn matcher_value(&mut self, op: MatchOp, name: String) -> Result<LabelMatcher, ParseError> {
        let (value, offset) = self.expect_string()?;
        LabelMatcher::new(op, name, value).map_err(|reason| self.error_at(offset, reason))
    }

    fn pipeline(&mut self, in_range: bool) -> Result<Vec<Stage>, ParseError> {
        let mut stages = Vec::new();
        loop {
            let stage = match self.peek() {
                Tok::PipeExact | Tok::Neq | Tok::PipeMatch | Tok::Nre | Tok::PipePattern | Tok::Npa => {
                    Stage::LineFilter(self.line_filter()?)
                }
                Tok::Pipe if self.peek_at(1) == &Tok::Unwrap => {
                    if in_range {
                        break;
                    }
                    self.advance();
                    return Err(self.unexpected());
                }
                Tok::Pipe => {
                    self.advance();
                    self.pipe_stage()?
                }
                _ => break,
            };
            stages.push(stage);
        }
        Ok(stages)
    }

    /// `|= "a" or "b"`, `!~ "re"`, `|> "<_> x"`, `!= ip("...")`.
    fn line_filter(&mut self) -> Result<LineFilter, ParseError> {
        let op = match self.take() {
            Tok::PipeExact => LineFilterOp::Contains,
            Tok::Neq => LineFilterOp::NotContains,
            Tok::PipeMatch => LineFilterOp::Regex,
            Tok::Nre => LineFilterOp::NotRegex,
            Tok::PipePattern => LineFilterOp::Pattern,
            _ => LineFilterOp::NotPattern,
        };
        let mut alternatives = vec![self.line_match(op)?];
        while self.peek() == &Tok::Or {
            self.advance();
            alternatives.push(self.line_match(op)?);
        }
        Ok(LineFilter { op, alternatives })
    }

    fn line_match(&mut self, op: LineFilterOp) -> Result<LineMatch, ParseError> {
        let offset = self.offset();
        match self.peek().clone() {
            Tok::Str(value) => {
                self.advance();
                match op {
                    LineFilterOp::Contains | LineFilterOp::NotContains => Ok(LineMatch::Contains(value)),
                    LineFilterOp::Regex | LineFilterOp::NotRegex => {
                        GoRegex::compile(&value, Anchoring::Unanchored)
                            .map(LineMatch::Regex)
                            .map_err(|reason| {
                                self.error_at(
                                    offset,
                                    format!("error parsing regexp {}: {reason}", go_quote(&value)),
                                )
                            })
                    }
                    LineFilterOp::Pattern | LineFilterOp::NotPattern => PatternExpr::line_filter(&value)
                        .map(LineMatch::Pattern)
                        .map_err(|reason| {
                            self.error_at(
                                offset,
                                format!("invalid line filter pattern {}: {reason}", go_quote(&value)),
                            )
                        }),
                }
            }
            Tok::Ip => {
                let pattern = self.ip_call()?;
                if !matches!(op, LineFilterOp::Contains | LineFilterOp::NotContains) {
                    return Err(self.error_at(
                        offset,
                        format!(
                            "ip: invalid operation: ip() line filters take |= or !=, not {}",
                            op.as_str()
                        ),
                    ));
                }
                Ok(LineMatch::Ip(pattern))
            }
            _ => Err(self.unexpected_expecting(&["STRING", "ip"])),
        }
    }

    /// `ip("...")`, at `ip`.
    fn ip_call(&mut self) -> Result<IpPattern, ParseError> {
        self.advance();
        self.expect(&Tok::LParen, "(")?;
        let (source, offset) = self.expect_string()?;
        self.expect(&Tok::RParen, ")")?;
        IpPattern::parse(&source).map_err(|reason| self.error_at(offset, reason))
    }

    /// A stage after its `|`.
    fn pipe_stage(&mut self) -> Result<Stage, ParseError> {
        match self.peek() {
            Tok::Json => {
                self.advance();
                let mut extractions = Vec::new();
                for (label, expression, expression_offset) in self.extractions()? {
                    let path = parse_json_path(&expression)
                        .map_err(|reason| self.error_at(expression_offset, reason))?;
                    extractions.push(JsonExtraction {
                        label,
                        expression,
                        path,
                    });
                }
                Ok(Stage::Json(JsonParser { extractions }))
            }
            Tok::Logfmt => {
                self.advance();
                let mut parser = LogfmtParser::default();
                loop {
                    match self.peek() {
                        Tok::FlagStrict => parser.strict = true,
                        Tok::FlagKeepEmpty => parser.keep_empty = true,
                        _ => break,
                    }
                    self.advance();
                }
                for (label, expression, expression_offset) in self.extractions()? {
                    let key = parse_logfmt_key(&expression)
                        .map_err(|reason| self.error_at(expression_offset, reason))?;
                    parser.extractions.push(LogfmtExtraction { label, key });
                }
                Ok(Stage::Logfmt(parser))
            }
            Tok::Regexp => {
                self.advance();
                let (source, source_offset) = self.expect_string()?;
                let invalid =
                    |reason: String| self.error_at(source_offset, format!("invalid regexp parser: {reason}"));
                let regex = GoRegex::compile(&source, Anchoring::Unanchored).map_err(|reason| {
                    invalid(format!("error parsing regexp {}: {reason}", go_quote(&source)))
                })?;
                if !regex.regex().capture_names().any(|name| name.is_some()) {
                    return Err(invalid("at least one named capture must be supplied".to_owned()));
                }
                Ok(Stage::Regexp(regex))
            }
            Tok::Pattern => {
                self.advance();
                let (source, source_offset) = self.expect_string()?;
                let pattern = PatternExpr::parser(&source).map_err(|reason| {
                    self.error_at(source_offset, format!("invalid pattern parser: {reason}"))
                })?;
                Ok(Stage::Pattern(pattern))
            }
            Tok::Unpack => {
                self.advance();
                Ok(Stage::Unpack)
            }
            Tok::LineFormat => {
                self.advance();
                let (template, _) = self.expect_string()?;
                Ok(Stage::LineFormat(template))
            }
            Tok::LabelFormat => {
                self.advance();
                self.label_formats()
            }
            Tok::Drop | Tok::Keep => {
                let drop = self.peek() == &Tok::Drop;
                self.advance();
                let items = self.named_matchers()?;
                Ok(if drop {
                    Stage::Drop(items)
                } else {
                    Stage::Keep(items)
                })
            }
            Tok::Decolorize => {
                self.advance();
                Ok(Stage::Decolorize)
            }
            Tok::Ident(_) | Tok::LParen => Ok(Stage::LabelFilter(self.label_filter_expr()?)),
            _ => Err(self.unexpected()),
        }
    }

    /// `label="expression", label` after `json` or `logfmt`: (label, expression, offset).
    fn extractions(&mut self) -> Result<Vec<(String, String, usize)>, ParseError> {
        let mut extractions = Vec::new();
        if !matches!(self.peek(), Tok::Ident(_)) {
            return Ok(extractions);
        }
        loop {
            let offset = self.offset();
            let label = self.expect_ident()?;
            if self.peek() == &Tok::Eq {
                self.advance();
                let (expression, expression_offset) = self.expect_string()?;
                extractions.push((label, expression, expression_offset));
            } else {
                extractions.push((label.clone(), label, offset));
            }
            if self.peek() != &Tok::Comma {
                return Ok(extractions);
            }
            self.advance();
        }
    }

    /// `dst="{{.src}}", renamed=src` after `label_format`.
    fn label_formats(&mut self) -> Result<Stage, ParseError> {
        let mut formats: Vec<LabelFormat> = Vec::new();
        loop {
            let offset = self.offset();
            let target = self.expect_ident()?;
            self.expect(&Tok::Eq, "=")?;
            let source = match self.peek().clone() {
                Tok::Ident(source) => LabelFormatSource::Rename(source),
                Tok::Str(template) => LabelFormatSource::Template(template),
                _ => return Err(self.unexpected_expecting(&["IDENTIFIER", "STRING"])),
            };
            self.advance();
            if target == "__error__" {
                return Err(self.error_at(offset, "__error__ cannot be formatted"));
            }
            if formats.iter().any(|format| format.target == target) {
                return Err(self.error_at(
                    offset,
                    format!("multiple label name '{target}' not allowed in a single format operation"),
                ));
            }
            formats.push(LabelFormat { target, source });
            if self.peek() != &Tok::Comma {
                return Ok(Stage::LabelFormat(formats));
            }
            self.advance();
        }
    }

    /// `name, other="value"` after `drop` or `keep`.
    fn named_matchers(&mut self) -> Result<Vec<NamedMatcher>, ParseError> {
        let mut items = Vec::new();
        loop {
            let name = self.expect_ident()?;
            let op = match self.peek() {
                Tok::Eq => Some(MatchOp::Equal),
                Tok::Neq => Some(MatchOp::NotEqual),
                Tok::Re => Some(MatchOp::Regex),
                Tok::Nre => Some(MatchOp::NotRegex),
                _ => None,
            };
            match op {
                Some(op) => {
                    self.advance();
                    items.push(NamedMatcher::Matcher(self.matcher_value(op, name)?));
                }
                None => items.push(NamedMatcher::Name(name)),
            }
            if self.peek() != &Tok::Comma {
                return Ok(items);
            }
            self.advance();
        }
    }

    // ---- Label filters ------------------------------------------------------------------------

    /// Label filters joined by `and`, `or`, `,` and juxtaposition, grouped as Loki's yacc
    /// grammar groups them (see the module documentation).
    fn label_filter_expr(&mut self) -> Result<LabelFilter, ParseError> {
        let start = self.offset();
        let mut operands: Vec<(LabelFilter, usize)> = vec![self.label_filter_primary()?];
        let mut connectives: Vec<Connective> = Vec::new();
        loop {
            let next = match self.peek() {
                Tok::And => Connective::And,
                Tok::Or => Connective::Or,
                Tok::Comma => Connective::Conjunction,
                Tok::Ident(_) | Tok::LParen => Connective::Conjunction,
                _ => break,
            };
            while let Some(&top) = connectives.last()
                && top.reduces_before(next)
            {
                connectives.pop();
                self.reduce_label_filters(&mut operands, top, start)?;
            }
            if matches!(self.peek(), Tok::And | Tok::Or | Tok::Comma) {
                self.advance();
            }
            connectives.push(next);
            operands.push(self.label_filter_primary()?);
        }
        while let Some(top) = connectives.pop() {
            self.reduce_label_filters(&mut operands, top, start)?;
        }
        match operands.pop() {
            Some((filter, _)) if operands.is_empty() => Ok(filter),
            _ => Err(self.error_at(start, "syntax error: unbalanced label filter")),
        }
    }

    /// Joins the two topmost operands with `connective`, flattening chains.
    #[inline(never)]
    fn reduce_label_filters(
        &self,
        operands: &mut Vec<(LabelFilter, usize)>,
        connective: Connective,
        start: usize,
    ) -> Result<(), ParseError> {
        let (Some((right, right_depth)), Some((left, left_depth))) = (operands.pop(), operands.pop()) else {
            return Err(self.error_at(start, "syntax error: unbalanced label filter"));
        };
        let or = connective == Connective::Or;
        let same_kind = |filter: &LabelFilter| match filter {
            LabelFilter::Or(_) => or,
            LabelFilter::And(_) => !or,
            _ => false,
        };
        // A child of the same kind is flattened: its children move up one level.
        let child_depth =
            |filter: &LabelFilter, depth: usize| if same_kind(filter) { depth - 1 } else { depth };
        let depth = 1 + child_depth(&left, left_depth).max(child_depth(&right, right_depth));
        if depth > MAX_DEPTH {
            return Err(self.too_deep(start));
        }
        let mut children = Vec::new();
        for filter in [left, right] {
            match filter {
                LabelFilter::Or(grandchildren) if or => children.extend(grandchildren),
                LabelFilter::And(grandchildren) if !or => children.extend(grandchildren),
                other => children.push(other),
            }
        }
        let joined = if or {
            LabelFilter::Or(children)
        } else {
            LabelFilter::And(children)
        };
        operands.push((joined, depth));
        Ok(())
    }

    /// One comparison, or a parenthesised label filter; with its tree depth.
    fn label_filter_primary(&mut self) -> Result<(LabelFilter, usize), ParseError> {
        if self.peek() == &Tok::LParen {
            self.parenthesized_label_filter()
        } else {
            self.label_filter_comparison()
        }
    }

    #[inline(never)]
    fn parenthesized_label_filter(&mut self) -> Result<(LabelFilter, usize), ParseError> {
        self.advance();
        self.enter()?;
        let inner = self.label_filter_expr();
        self.leave();
        let inner = inner?;
        self.expect(&Tok::RParen, ")")?;
        let depth = label_filter_depth(&inner);
        Ok((inner, depth))
    }

    /// `name op value`.
    #[inline(never)]
    fn label_filter_comparison(&mut self) -> Result<(LabelFilter, usize), ParseError> {
        let Some(name) = self.take_if_ident() else {
            return Err(self.unexpected());
        };
        let op_tok = self.peek().clone();
        let compare = match op_tok {
            Tok::Eq => CompareOp::Equal,
            Tok::Neq => CompareOp::NotEqual,
            Tok::CmpEq => CompareOp::Equal,
            Tok::Gt => CompareOp::Greater,
            Tok::Gte => CompareOp::GreaterOrEqual,
            Tok::Lt => CompareOp::Less,
            Tok::Lte => CompareOp::LessOrEqual,
            Tok::Re | Tok::Nre => {
                self.advance();
                let op = if op_tok == Tok::Re {
                    MatchOp::Regex
                } else {
                    MatchOp::NotRegex
                };
                return Ok((LabelFilter::Matcher(self.matcher_value(op, name)?), 1));
            }
            _ => return Err(self.unexpected()),
        };
        self.advance();
        // `=` and `!=` also take strings and ip(); `==` and the orderings take numbers,
        // durations and sizes only.
        let string_op = matches!(op_tok, Tok::Eq | Tok::Neq);
        let offset = self.offset();
        let filter = match self.peek().clone() {
            Tok::Str(_) if string_op => {
                let op = if op_tok == Tok::Eq {
                    MatchOp::Equal
                } else {
                    MatchOp::NotEqual
                };
                LabelFilter::Matcher(self.matcher_value(op, name)?)
            }
            Tok::Ip if string_op => LabelFilter::Ip {
                name,
                negated: op_tok == Tok::Neq,
                pattern: self.ip_call()?,
            },
            Tok::Duration(value) => {
                self.advance();
                LabelFilter::Duration {
                    name,
                    op: compare,
                    value,
                }
            }
            Tok::Bytes(value) => {
                self.advance();
                LabelFilter::Bytes {
                    name,
                    op: compare,
                    value,
                }
            }
            Tok::Number(_) | Tok::Add | Tok::Sub => {
                let negative = self.peek() == &Tok::Sub;
                if matches!(self.peek(), Tok::Add | Tok::Sub) {
                    self.advance();
                }
                let Tok::Number(text) = self.peek().clone() else {
                    return Err(self.unexpected_expecting(&["NUMBER"]));
                };
                self.advance();
                let value = self.literal(&text, offset)?;
                LabelFilter::Number {
                    name,
                    op: compare,
                    value: if negative { -value } else { value },
                }
            }
            _ => return Err(self.unexpected()),
        };
        Ok((filter, 1))
    }
}

/// The depth of a label filter tree (1 for a leaf); only called on trees built under the
/// depth limit.
fn label_filter_depth(filter: &LabelFilter) -> usize {
    match filter {
        LabelFilter::And(children) | LabelFilter::Or(children) => {
            1 + children.iter().map(label_filter_depth).max().unwrap_or(0)
        }
        _ => 1,
    }
}

/// The binary operator a token is, if any.
fn binary_op(tok: &Tok) -> Option<BinaryOp> {
    Some(match tok {
        Tok::Or => BinaryOp::Or,
        Tok::And => BinaryOp::And,
        Tok::Unless => BinaryOp::Unless,
        Tok::CmpEq => BinaryOp::Equal,
        Tok::Neq => BinaryOp::NotEqual,
        Tok::Gt => BinaryOp::Greater,
        Tok::Gte => BinaryOp::GreaterOrEqual,
        Tok::Lt => BinaryOp::Less,
        Tok::Lte => BinaryOp::LessOrEqual,
        Tok::Add => BinaryOp::Add,
        Tok::Sub => BinaryOp::Sub,
        Tok::Mul => BinaryOp::Mul,
        Tok::Div => BinaryOp::Div,
        Tok::Mod => BinaryOp::Mod,
        Tok::Pow => BinaryOp::Pow,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connectives_reduce_like_yacc() {
        use Connective::{And, Conjunction, Or};
        // Both with a precedence: reduce when the stacked one binds at least as tight.
        assert!(And.reduces_before(And));
        assert!(And.reduces_before(Or));
        assert!(Or.reduces_before(Or));
        assert!(!Or.reduces_before(And));
        // `,` and juxtaposition have none: always shift.
        for (top, next) in [
            (Conjunction, And),
            (Conjunction, Or),
            (And, Conjunction),
            (Or, Conjunction),
        ] {
            assert!(!top.reduces_before(next), "{top:?} before {next:?}");
        }
    }

    #[test]
    fn flat_chains_do_not_count_as_depth() {
        let many_ands = (0..500)
            .map(|i| format!("l{i}=\"v\""))
            .collect::<Vec<_>>()
            .join(" and ");
        let many_commas = (0..500)
            .map(|i| format!("l{i}=\"v\""))
            .collect::<Vec<_>>()
            .join(", ");
        let many_ors = (0..500)
            .map(|i| format!("l{i}=\"v\""))
            .collect::<Vec<_>>()
            .join(" or ");
        for filters in [many_ands, many_commas, many_ors] {
            let expr = parse_query(&format!("{{app=\"x\"}} | {filters}")).unwrap();
            let Some(Stage::LabelFilter(LabelFilter::And(children) | LabelFilter::Or(children))) =
                expr.as_log().and_then(|log| log.pipeline.first())
            else {
                panic!("one flattened label filter");
            };
            assert_eq!(children.len(), 500);
        }
        let many_stages = format!("{{app=\"x\"}}{}", " |= \"a\" or \"b\" | json".repeat(1_000));
        assert_eq!(
            parse_query(&many_stages)
                .unwrap()
                .as_log()
                .unwrap()
                .pipeline
                .len(),
            2_000
        );
    }

    #[test]
    fn syntax_errors_win_over_the_selector_check() {
        let error = parse_query(r#"{a=""} | json |"#).unwrap_err();
        assert_eq!(error.message, "syntax error: unexpected $end");
        let error = parse_query(r#"{a=""} | json"#).unwrap_err();
        assert_eq!(error.message, EMPTY_COMPATIBLE_SELECTOR);
    }

    #[test]
    fn lexer_errors_surface_where_the_parser_reaches_them() {
        // The unterminated string comes after a syntax error: the syntax error is reported.
        let error = parse_query(r#"{a="b"} foo "unterminated"#).unwrap_err();
        assert_eq!(
            (error.column, error.message.as_str()),
            (9, "syntax error: unexpected IDENTIFIER")
        );
        let error = parse_query(r#"{a="b"} |= "unterminated"#).unwrap_err();
        assert_eq!(
            (error.column, error.message.as_str()),
            (12, "literal not terminated")
        );
    }

    #[test]
    fn literal_operands_fold_and_set_operators_refuse_them() {
        let expr = parse_query("2 * 3 + vector(1) * (4 - 1)").unwrap();
        assert_eq!(expr.to_string(), "6 + vector(1) * 3");
        let error = parse_query("vector(1) and 1").unwrap_err();
        assert!(
            error.message.starts_with("unexpected literal for right leg"),
            "{}",
            error.message
        );
    }
}
