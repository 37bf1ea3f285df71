//! The canonical form of a query: `Display` for the syntax tree.
//!
//! The output parses back to an equal tree. It is Tempo's syntax with one spelling per
//! construct: `{ a && b }` with spaces inside braces and `{}` for a filter matching every
//! span, operators surrounded by spaces, parentheses only where precedence needs them (and
//! around `||` inside `&&` and the reverse, which share one precedence level in TraceQL),
//! intrinsics by the name Tempo prints (`duration`, `rootServiceName`, `span:childCount`),
//! strings in double quotes (back quotes when that spares backslashes), attribute names
//! quoted only when they hold characters that would end them, durations in the largest
//! units that add up to them (`1h30m`, `1s500ms`), ` | ` between pipeline stages and
//! `rate() by (a, b)` for metrics.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::{
    Aggregate, Attribute, AttributeScope, Compare, Condition, ConditionTest, Field, FieldExpr, Hint,
    MetricsExpr, MetricsFunction, MetricsPipeline, Pipeline, PipelineElement, Query, RootExpr, ScalarExpr,
    ScalarFilter, SecondStage, SpansetExpr, SpansetFilter, Static, UnaryOp,
};
use crate::lexer::is_attribute_char;

/// Precedence of an operand that no operator splits.
const ATOM: u8 = 10;

/// Which operand of a binary operator is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// Whether an operand of precedence `child` needs parentheses on `side` of an operator of
/// precedence `parent`.
fn needs_parens(child: u8, parent: u8, side: Side, right_associative: bool) -> bool {
    match side {
        Side::Left => child < parent || (right_associative && child == parent),
        Side::Right => child < parent || (!right_associative && child == parent),
    }
}

impl Display for RootExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.query)?;
        if !self.hints.is_empty() {
            f.write_str(" with(")?;
            for (index, hint) in self.hints.iter().enumerate() {
                if index > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{hint}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Display for Hint {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Query::Spansets(pipeline) => write!(f, "{pipeline}"),
            Query::Metrics(metrics) => write!(f, "{metrics}"),
        }
    }
}

impl Display for Pipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (index, element) in self.elements.iter().enumerate() {
            if index > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{element}")?;
        }
        Ok(())
    }
}

impl Display for PipelineElement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            PipelineElement::Spansets(expr) => write!(f, "{expr}"),
            PipelineElement::ScalarFilter(filter) => write!(f, "{filter}"),
            PipelineElement::GroupBy(expr) => write!(f, "by({expr})"),
            PipelineElement::Coalesce => f.write_str("coalesce()"),
            PipelineElement::Select(fields) => {
                f.write_str("select(")?;
                write_fields(f, fields)?;
                f.write_str(")")
            }
        }
    }
}

fn write_fields(f: &mut Formatter<'_>, fields: &[Field]) -> fmt::Result {
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{field}")?;
    }
    Ok(())
}

impl SpansetExpr {
    fn precedence(&self) -> u8 {
        match self {
            SpansetExpr::Operation(operation) => operation.op.precedence(),
            SpansetExpr::Filter(_) | SpansetExpr::Pipeline(_) => ATOM,
        }
    }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter(filter) => write!(f, "{filter}"),
            SpansetExpr::Pipeline(pipeline) => write!(f, "({pipeline})"),
            SpansetExpr::Operation(operation) => {
                let precedence = operation.op.precedence();
                for (side, operand) in [(Side::Left, &operation.lhs), (Side::Right, &operation.rhs)] {
                    if side == Side::Right {
                        write!(f, " {} ", operation.op.as_str())?;
                    }
                    if needs_parens(operand.precedence(), precedence, side, false) {
                        write!(f, "({operand})")?;
                    } else {
                        write!(f, "{operand}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Display for SpansetFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.is_match_all() {
            return f.write_str("{}");
        }
        write!(f, "{{ {} }}", self.expr)
    }
}

// ---- Field expressions ------------------------------------------------------------------------

/// How a field-expression operand binds when written inside another expression.
enum Binding {
    /// Split by a binary operator of this precedence (`ATOM` if none).
    Infix(u8),
    /// Starts with a prefix operator (`!x`, `-x`, `-1`) whose operand takes the binary
    /// operators above this precedence.
    Prefix(u8),
}

impl FieldExpr {
    fn binding(&self) -> Binding {
        match self {
            FieldExpr::And(_) | FieldExpr::Or(_) => Binding::Infix(1),
            FieldExpr::Binary(binary) => Binding::Infix(binary.op.precedence()),
            FieldExpr::Regex(_) => Binding::Infix(2),
            FieldExpr::Unary(unary) => match unary.op {
                UnaryOp::Exists | UnaryOp::NotExists => Binding::Infix(2),
                UnaryOp::Not => Binding::Prefix(4),
                UnaryOp::Negate => Binding::Prefix(3),
            },
            FieldExpr::Static(value) if is_negative_number(value) => Binding::Prefix(3),
            FieldExpr::Static(_) | FieldExpr::Field(_) => Binding::Infix(ATOM),
        }
    }
}

fn is_negative_number(value: &Static) -> bool {
    match *value {
        Static::Int(number) => number < 0 && number != i64::MIN,
        Static::Float(number) => number.is_sign_negative(),
        Static::Duration { nanos } => nanos < 0,
        _ => false,
    }
}

/// Writes `operand` of an operator of precedence `parent`, in parentheses if needed.
fn write_operand(
    f: &mut Formatter<'_>,
    operand: &FieldExpr,
    parent: u8,
    side: Side,
    right_associative: bool,
) -> fmt::Result {
    let parens = match operand.binding() {
        Binding::Infix(precedence) => needs_parens(precedence, parent, side, right_associative),
        // A prefix operator on the left takes every following operator that binds tighter
        // than itself; on the right, what follows binds no tighter than `parent`, and only
        // `* / % ^` (above `+ -`) would be taken.
        Binding::Prefix(own) => match side {
            Side::Left => parent > own,
            Side::Right => parent >= 4,
        },
    };
    if parens {
        write!(f, "({operand})")
    } else {
        write!(f, "{operand}")
    }
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Static(value) => write!(f, "{value}"),
            FieldExpr::Field(field) => write!(f, "{field}"),
            FieldExpr::And(operands) | FieldExpr::Or(operands) => {
                let separator = if matches!(self, FieldExpr::And(_)) {
                    " && "
                } else {
                    " || "
                };
                for (index, operand) in operands.iter().enumerate() {
                    if index > 0 {
                        f.write_str(separator)?;
                    }
                    // `&&` and `||` share one level: parenthesize the other one for readers.
                    if matches!(operand, FieldExpr::And(_) | FieldExpr::Or(_)) {
                        write!(f, "({operand})")?;
                    } else {
                        let side = if index == 0 { Side::Left } else { Side::Right };
                        write_operand(f, operand, 1, side, false)?;
                    }
                }
                Ok(())
            }
            FieldExpr::Binary(binary) => {
                let precedence = binary.op.precedence();
                let right_associative = binary.op.as_str() == "^";
                write_operand(f, &binary.lhs, precedence, Side::Left, right_associative)?;
                write!(f, " {} ", binary.op.as_str())?;
                write_operand(f, &binary.rhs, precedence, Side::Right, right_associative)
            }
            FieldExpr::Regex(regex) => {
                write_operand(f, &regex.lhs, 2, Side::Left, false)?;
                f.write_str(if regex.negated { " !~ " } else { " =~ " })?;
                write_string(f, regex.regex.source())
            }
            FieldExpr::Unary(unary) => match unary.op {
                UnaryOp::Exists | UnaryOp::NotExists => {
                    write_operand(f, &unary.expr, 2, Side::Left, false)?;
                    f.write_str(if unary.op == UnaryOp::Exists {
                        " != nil"
                    } else {
                        " = nil"
                    })
                }
                UnaryOp::Not | UnaryOp::Negate => {
                    f.write_str(if unary.op == UnaryOp::Not { "!" } else { "-" })?;
                    match unary.expr.binding() {
                        Binding::Infix(ATOM) | Binding::Prefix(_) => write!(f, "{}", unary.expr),
                        Binding::Infix(_) => write!(f, "({})", unary.expr),
                    }
                }
            },
        }
    }
}

impl Display for Static {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Static::Int(i64::MIN) => f.write_str("minInt"),
            Static::Int(value) => write!(f, "{value}"),
            // `{:?}` keeps a fraction or an exponent, so the text reads back as a float.
            Static::Float(value) => write!(f, "{value:?}"),
            Static::String(text) => write_string(f, text),
            Static::Bool(value) => write!(f, "{value}"),
            Static::Duration { nanos } => f.write_str(&format_duration(*nanos)),
            Static::Status(status) => f.write_str(status.as_str()),
            Static::Kind(kind) => f.write_str(kind.as_str()),
        }
    }
}

/// A duration in the largest units that add up to it (`1h30m`, `1s500ms`, `0s`).
pub(crate) fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if nanos < 0 {
        out.push('-');
    }
    let mut rest = nanos.unsigned_abs();
    for (unit, size) in [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    out
}

/// A number of a metrics expression: integral values without a fraction.
pub(crate) fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    format!("{value:?}")
}

/// Appends `text` as a double-quoted Go string literal that the lexer reads back unchanged.
fn push_double_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A string literal: back-quoted when the text has backslashes and nothing a raw string
/// cannot hold, double-quoted otherwise.
fn write_string(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    let raw_friendly = text.contains('\\') && !text.contains('`') && !text.chars().any(char::is_control);
    if raw_friendly {
        return write!(f, "`{text}`");
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    push_double_quoted(&mut quoted, text);
    f.write_str(&quoted)
}

impl Display for Field {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Field::Intrinsic(intrinsic) => f.write_str(intrinsic.as_str()),
            Field::Attribute(attribute) => write!(f, "{attribute}"),
        }
    }
}

impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.parent {
            f.write_str("parent.")?;
            match self.scope {
                AttributeScope::Span => f.write_str("span.")?,
                AttributeScope::Resource => f.write_str("resource.")?,
                _ => {}
            }
        } else {
            f.write_str(self.scope.prefix())?;
        }
        let must_quote = self.name.is_empty()
            || self.name.chars().any(|c| c == '"' || !is_attribute_char(c))
            // `.3x` would read as a number.
            || (self.scope == AttributeScope::None && !self.parent && self.name.starts_with(|c: char| c.is_ascii_digit()))
            // `parent.span.x` would read as a span attribute of the parent.
            || (self.parent
                && self.scope == AttributeScope::None
                && (self.name.starts_with("span.") || self.name.starts_with("resource.")));
        if !must_quote {
            return f.write_str(&self.name);
        }
        f.write_char('"')?;
        for c in self.name.chars() {
            if matches!(c, '"' | '\\') {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('"')
    }
}

// ---- Scalar filters -------------------------------------------------------------------------

impl ScalarExpr {
    fn precedence(&self) -> u8 {
        match self {
            ScalarExpr::Binary(binary) => binary.op.precedence(),
            ScalarExpr::Aggregate(_) | ScalarExpr::Static(_) | ScalarExpr::Pipeline(_) => ATOM,
        }
    }
}

fn write_scalar_operand(
    f: &mut Formatter<'_>,
    operand: &ScalarExpr,
    parent: u8,
    side: Side,
    right_associative: bool,
) -> fmt::Result {
    if needs_parens(operand.precedence(), parent, side, right_associative) {
        write!(f, "({operand})")
    } else {
        write!(f, "{operand}")
    }
}

impl Display for ScalarFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_scalar_operand(f, &self.lhs, 2, Side::Left, false)?;
        write!(f, " {} ", self.op.as_str())?;
        write_scalar_operand(f, &self.rhs, 2, Side::Right, false)
    }
}

impl Display for ScalarExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ScalarExpr::Aggregate(aggregate) => write!(f, "{aggregate}"),
            ScalarExpr::Static(value) => write!(f, "{value}"),
            ScalarExpr::Binary(binary) => {
                let precedence = binary.op.precedence();
                let right_associative = binary.op.as_str() == "^";
                write_scalar_operand(f, &binary.lhs, precedence, Side::Left, right_associative)?;
                write!(f, " {} ", binary.op.as_str())?;
                write_scalar_operand(f, &binary.rhs, precedence, Side::Right, right_associative)
            }
            ScalarExpr::Pipeline(scalar) => write!(f, "({} | {})", scalar.pipeline, scalar.aggregate),
        }
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.expr {
            None => write!(f, "{}()", self.op.as_str()),
            Some(expr) => write!(f, "{}({expr})", self.op.as_str()),
        }
    }
}

// ---- Metrics --------------------------------------------------------------------------------

impl MetricsExpr {
    fn precedence(&self) -> u8 {
        match self {
            MetricsExpr::Binary(binary) => binary.op.precedence(),
            MetricsExpr::Scalar(_) => ATOM,
            // Written in parentheses whenever they are operands.
            MetricsExpr::Pipeline(_) | MetricsExpr::Staged(_) => 0,
        }
    }
}

impl Display for MetricsExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricsExpr::Pipeline(pipeline) => write!(f, "{pipeline}"),
            MetricsExpr::Scalar(value) => f.write_str(&format_number(*value)),
            MetricsExpr::Staged(staged) => {
                write!(f, "{}", staged.expr)?;
                write_stages(f, &staged.stages)
            }
            MetricsExpr::Binary(binary) => {
                let precedence = binary.op.precedence();
                for (side, operand) in [(Side::Left, &binary.lhs), (Side::Right, &binary.rhs)] {
                    if side == Side::Right {
                        write!(f, " {} ", binary.op.as_str())?;
                    }
                    if needs_parens(operand.precedence(), precedence, side, false) {
                        write!(f, "({operand})")?;
                    } else {
                        write!(f, "{operand}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Display for MetricsPipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} | {}", self.pipeline, self.function)?;
        write_stages(f, &self.second_stages)
    }
}

fn write_stages(f: &mut Formatter<'_>, stages: &[SecondStage]) -> fmt::Result {
    for stage in stages {
        match stage {
            SecondStage::TopK(limit) => write!(f, " | topk({limit})")?,
            SecondStage::BottomK(limit) => write!(f, " | bottomk({limit})")?,
            SecondStage::Filter(op, value) => write!(f, " {} {}", op.as_str(), format_number(*value))?,
        }
    }
    Ok(())
}

impl Display for MetricsFunction {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricsFunction::Aggregate(aggregate) => {
                write!(f, "{}(", aggregate.op.as_str())?;
                if let Some(field) = &aggregate.field {
                    write!(f, "{field}")?;
                }
                for quantile in &aggregate.quantiles {
                    write!(f, ", {}", format_number(*quantile))?;
                }
                f.write_str(")")?;
                if !aggregate.by.is_empty() {
                    f.write_str(" by (")?;
                    write_fields(f, &aggregate.by)?;
                    f.write_str(")")?;
                }
                Ok(())
            }
            MetricsFunction::Compare(compare) => write!(f, "{compare}"),
        }
    }
}

impl Display for Compare {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "compare({}", self.selection)?;
        match self.time_range_ns {
            Some((start, end)) => write!(f, ", {}, {start}, {end}", self.top_n)?,
            None if self.top_n != 10 => write!(f, ", {}", self.top_n)?,
            None => {}
        }
        f.write_str(")")
    }
}

impl Display for Condition<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.test {
            ConditionTest::Compare(op, value) => write!(f, "{} {} {value}", self.field, op.as_str()),
            ConditionTest::Matches(regex) => {
                write!(f, "{} =~ ", self.field)?;
                write_string(f, regex.source())
            }
            ConditionTest::NotMatches(regex) => {
                write!(f, "{} !~ ", self.field)?;
                write_string(f, regex.source())
            }
            ConditionTest::Exists => write!(f, "{} != nil", self.field),
            ConditionTest::NotExists => write!(f, "{} = nil", self.field),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_largest_units() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(5_400_000_000_000), "1h30m");
        assert_eq!(format_duration(1_500_000_000), "1s500ms");
        assert_eq!(format_duration(-1_000), "-1us");
        assert_eq!(format_duration(90_061_001_001_001), "25h1m1s1ms1us1ns");
        assert_eq!(format_duration(i64::MIN), "-2562047h47m16s854ms775us808ns");
    }

    #[test]
    fn numbers_read_back() {
        assert_eq!(format_number(100.0), "100");
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(-2.5), "-2.5");
        assert_eq!(format_number(1e300), "1e300");
        assert_eq!(Static::Float(3.0).to_string(), "3.0");
        assert_eq!(Static::Int(i64::MIN).to_string(), "minInt");
        assert_eq!(Static::String("a\\d".into()).to_string(), "`a\\d`");
        assert_eq!(Static::String("a\"\n".into()).to_string(), "\"a\\\"\\n\"");
    }

    #[test]
    fn attribute_names_are_quoted_only_when_needed() {
        let attribute = |scope, parent, name: &str| Attribute {
            scope,
            parent,
            name: name.to_owned(),
        };
        assert_eq!(
            attribute(AttributeScope::Span, false, "http.method").to_string(),
            "span.http.method"
        );
        assert_eq!(
            attribute(AttributeScope::None, false, "a b").to_string(),
            ".\"a b\""
        );
        assert_eq!(
            attribute(AttributeScope::None, false, "3x").to_string(),
            ".\"3x\""
        );
        assert_eq!(
            attribute(AttributeScope::Span, false, "3x").to_string(),
            "span.3x"
        );
        assert_eq!(attribute(AttributeScope::None, false, "").to_string(), ".\"\"");
        assert_eq!(
            attribute(AttributeScope::Resource, false, "a\"\\").to_string(),
            "resource.\"a\\\"\\\\\""
        );
        assert_eq!(
            attribute(AttributeScope::Span, true, "x").to_string(),
            "parent.span.x"
        );
        assert_eq!(
            attribute(AttributeScope::None, true, "span.x").to_string(),
            "parent.\"span.x\""
        );
    }
}
