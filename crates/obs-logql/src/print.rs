//! The canonical form of a query: `Display` for the syntax tree.
//!
//! The output parses back to an equal tree. It is Loki's syntax with one spelling per
//! construct: keywords in lower case, `==` for numeric equality, `and` for `,` and
//! juxtaposition in label filters, parentheses only where precedence needs them, grouping of
//! vector aggregations before the arguments, pipelines before the range
//! (`{a="b"} | json [5m]`), strings in double quotes (back quotes when that spares
//! backslashes), durations and sizes in the largest unit that divides them.

use std::fmt::{self, Display, Formatter, Write};

use obs_core::series::MatchOp;

use crate::ast::{
    BinaryExpr, Cardinality, Expr, Grouping, JsonExtraction, LabelFilter, LabelFormatSource, LineFilter,
    LineMatch, LogExpr, LogRange, LogfmtExtraction, NamedMatcher, RangeAggregation, SampleExpr, Stage,
    Unwrap, VectorAggregation, VectorMatching,
};
use crate::matcher::LabelMatcher;
use crate::units::{format_bytes, format_range};

/// Appends `text` as a double-quoted Go string literal that the lexer reads back unchanged:
/// control characters without a named escape are written `\u0001`.
pub(crate) fn push_double_quoted(out: &mut String, text: &str) {
    push_quoted(out, text, |out, c| {
        let _ = write!(out, "\\u{:04x}", u32::from(c));
    });
}

/// Appends `text` double-quoted with Go's escapes for `"`, `\` and the control characters
/// that have a name (`\n`, `\t`, `\a`, …); `escape_control` writes the other control
/// characters.
pub(crate) fn push_quoted(out: &mut String, text: &str, escape_control: fn(&mut String, char)) {
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
            c if c.is_control() => escape_control(out, c),
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

/// A number the lexer reads back to the same value. Infinities and NaN, which only literal
/// folding produces, are written as expressions that fold to them again.
pub(crate) fn format_number(value: f64) -> String {
    if value.is_nan() {
        return "(0 / 0)".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "(2 ^ 1024)" } else { "(-2 ^ 1025)" }.to_owned();
    }
    if value == 0.0 && value.is_sign_negative() {
        // "-0" would read as a zero duration (Go's time.ParseDuration accepts "-0").
        return "-0.0".to_owned();
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        return format!("{value:e}");
    }
    format!("{value}")
}

fn write_list(f: &mut Formatter<'_>, names: &[String]) -> fmt::Result {
    f.write_str("(")?;
    for (index, name) in names.iter().enumerate() {
        if index > 0 {
            f.write_str(", ")?;
        }
        f.write_str(name)?;
    }
    f.write_str(")")
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(log) => log.fmt(f),
            Expr::Sample(sample) => sample.fmt(f),
        }
    }
}

impl Display for LabelMatcher {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let op = match self.op() {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        };
        write!(f, "{}{op}", self.name())?;
        write_string(f, self.value())
    }
}

impl Display for LogExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (index, matcher) in self.selector.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            matcher.fmt(f)?;
        }
        f.write_str("}")?;
        for stage in &self.pipeline {
            write!(f, " {stage}")?;
        }
        Ok(())
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(filter) => filter.fmt(f),
            Stage::Json(parser) => {
                f.write_str("| json")?;
                write_json_extractions(f, &parser.extractions)
            }
            Stage::Logfmt(parser) => {
                f.write_str("| logfmt")?;
                if parser.strict {
                    f.write_str(" --strict")?;
                }
                if parser.keep_empty {
                    f.write_str(" --keep-empty")?;
                }
                write_logfmt_extractions(f, &parser.extractions)
            }
            Stage::Regexp(regex) => {
                f.write_str("| regexp ")?;
                write_string(f, regex.source())
            }
            Stage::Pattern(pattern) => {
                f.write_str("| pattern ")?;
                write_string(f, pattern.source())
            }
            Stage::Unpack => f.write_str("| unpack"),
            Stage::LabelFilter(filter) => write!(f, "| {filter}"),
            Stage::LineFormat(template) => {
                f.write_str("| line_format ")?;
                write_string(f, template)
            }
            Stage::LabelFormat(formats) => {
                f.write_str("| label_format ")?;
                for (index, format) in formats.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}=", format.target)?;
                    match &format.source {
                        LabelFormatSource::Rename(source) => f.write_str(source)?,
                        LabelFormatSource::Template(template) => write_string(f, template)?,
                    }
                }
                Ok(())
            }
            Stage::Drop(items) => {
                f.write_str("| drop ")?;
                write_named_matchers(f, items)
            }
            Stage::Keep(items) => {
                f.write_str("| keep ")?;
                write_named_matchers(f, items)
            }
            Stage::Decolorize => f.write_str("| decolorize"),
        }
    }
}

fn write_json_extractions(f: &mut Formatter<'_>, extractions: &[JsonExtraction]) -> fmt::Result {
    for (index, extraction) in extractions.iter().enumerate() {
        f.write_str(if index == 0 { " " } else { ", " })?;
        f.write_str(&extraction.label)?;
        if extraction.expression != extraction.label {
            f.write_str("=")?;
            write_string(f, &extraction.expression)?;
        }
    }
    Ok(())
}

fn write_logfmt_extractions(f: &mut Formatter<'_>, extractions: &[LogfmtExtraction]) -> fmt::Result {
    for (index, extraction) in extractions.iter().enumerate() {
        f.write_str(if index == 0 { " " } else { ", " })?;
        f.write_str(&extraction.label)?;
        if extraction.key != extraction.label {
            f.write_str("=")?;
            write_string(f, &extraction.key)?;
        }
    }
    Ok(())
}

fn write_named_matchers(f: &mut Formatter<'_>, items: &[NamedMatcher]) -> fmt::Result {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            f.write_str(", ")?;
        }
        match item {
            NamedMatcher::Name(name) => f.write_str(name)?,
            NamedMatcher::Matcher(matcher) => matcher.fmt(f)?,
        }
    }
    Ok(())
}

impl Display for LineFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        for (index, alternative) in self.alternatives.iter().enumerate() {
            f.write_str(if index == 0 { " " } else { " or " })?;
            alternative.fmt(f)?;
        }
        Ok(())
    }
}

impl Display for LineMatch {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LineMatch::Contains(text) => write_string(f, text),
            LineMatch::Regex(regex) => write_string(f, regex.source()),
            LineMatch::Pattern(pattern) => write_string(f, pattern.source()),
            LineMatch::Ip(pattern) => {
                f.write_str("ip(")?;
                write_string(f, pattern.source())?;
                f.write_str(")")
            }
        }
    }
}

impl Display for LabelFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilter::And(children) => {
                for (index, child) in children.iter().enumerate() {
                    if index > 0 {
                        f.write_str(" and ")?;
                    }
                    // `or` binds looser than `and`; a nested `and` (not produced by the
                    // parser) is grouped so the tree reads back as it is.
                    if matches!(child, LabelFilter::Or(_) | LabelFilter::And(_)) {
                        write!(f, "({child})")?;
                    } else {
                        child.fmt(f)?;
                    }
                }
                Ok(())
            }
            LabelFilter::Or(children) => {
                for (index, child) in children.iter().enumerate() {
                    if index > 0 {
                        f.write_str(" or ")?;
                    }
                    if matches!(child, LabelFilter::Or(_)) {
                        write!(f, "({child})")?;
                    } else {
                        child.fmt(f)?;
                    }
                }
                Ok(())
            }
            LabelFilter::Matcher(matcher) => matcher.fmt(f),
            LabelFilter::Number { name, op, value } => {
                write!(f, "{name} {} {}", op.as_str(), format_number(*value))
            }
            LabelFilter::Duration { name, op, value } => write!(f, "{name} {} {value}", op.as_str()),
            LabelFilter::Bytes { name, op, value } => {
                write!(f, "{name} {} {}", op.as_str(), format_bytes(*value))
            }
            LabelFilter::Ip {
                name,
                negated,
                pattern,
            } => {
                write!(f, "{name} {} ip(", if *negated { "!=" } else { "=" })?;
                write_string(f, pattern.source())?;
                f.write_str(")")
            }
        }
    }
}

impl Display for SampleExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SampleExpr::RangeAggregation(aggregation) => aggregation.fmt(f),
            SampleExpr::VectorAggregation(aggregation) => aggregation.fmt(f),
            SampleExpr::Binary(binary) => binary.fmt(f),
            SampleExpr::Literal(value) => f.write_str(&format_number(*value)),
            SampleExpr::Vector(value) => write!(f, "vector({})", format_number(*value)),
            SampleExpr::LabelReplace(replace) => {
                write!(f, "label_replace({}, ", replace.expr)?;
                for (index, argument) in [&replace.dst, &replace.replacement, &replace.src]
                    .into_iter()
                    .enumerate()
                {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write_string(f, argument)?;
                }
                f.write_str(", ")?;
                write_string(f, replace.regex.source())?;
                f.write_str(")")
            }
        }
    }
}

impl Display for RangeAggregation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.op.as_str())?;
        if let Some(quantile) = self.quantile {
            write!(f, "{}, ", format_number(quantile))?;
        }
        write!(f, "{})", self.range)?;
        if let Some(grouping) = &self.grouping {
            write!(f, " {grouping}")?;
        }
        Ok(())
    }
}

impl Display for LogRange {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.log.fmt(f)?;
        if let Some(unwrap) = &self.unwrap {
            write!(f, " {unwrap}")?;
        }
        if !self.log.pipeline.is_empty() || self.unwrap.is_some() {
            f.write_str(" ")?;
        }
        write!(f, "[{}]", format_range(self.interval))?;
        if self.offset.as_nanos() != 0 {
            write!(f, " offset {}", self.offset)?;
        }
        Ok(())
    }
}

impl Display for Unwrap {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.conversion {
            Some(conversion) => write!(f, "| unwrap {}({})", conversion.as_str(), self.label)?,
            None => write!(f, "| unwrap {}", self.label)?,
        }
        for filter in &self.post_filters {
            write!(f, " | {filter}")?;
        }
        Ok(())
    }
}

impl Display for Grouping {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(if self.without { "without " } else { "by " })?;
        write_list(f, &self.labels)
    }
}

impl Display for VectorAggregation {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.op.as_str())?;
        if !self.grouping.is_single_group() {
            write!(f, " {} ", self.grouping)?;
        }
        f.write_str("(")?;
        if let Some(k) = self.k {
            write!(f, "{k}, ")?;
        }
        write!(f, "{})", self.expr)
    }
}

/// Which side of a binary operator an operand stands on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

fn write_operand(
    f: &mut Formatter<'_>,
    operand: &SampleExpr,
    parent: &BinaryExpr,
    side: Side,
) -> fmt::Result {
    let needs_parentheses = match operand {
        SampleExpr::Binary(child) => {
            let (child_precedence, parent_precedence) = (child.op.precedence(), parent.op.precedence());
            child_precedence < parent_precedence
                || (child_precedence == parent_precedence
                    && (side == Side::Left) == parent.op.is_right_associative())
        }
        _ => false,
    };
    if needs_parentheses {
        write!(f, "({operand})")
    } else {
        operand.fmt(f)
    }
}

impl Display for BinaryExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_operand(f, &self.lhs, self, Side::Left)?;
        write!(f, " {}", self.op.as_str())?;
        if self.return_bool {
            f.write_str(" bool")?;
        }
        write_matching(f, &self.matching)?;
        f.write_str(" ")?;
        write_operand(f, &self.rhs, self, Side::Right)
    }
}

fn write_matching(f: &mut Formatter<'_>, matching: &VectorMatching) -> fmt::Result {
    if matching.is_default() {
        return Ok(());
    }
    f.write_str(if matching.on { " on " } else { " ignoring " })?;
    write_list(f, &matching.labels)?;
    let group = match matching.cardinality {
        Cardinality::OneToOne => return Ok(()),
        Cardinality::ManyToOne => " group_left",
        Cardinality::OneToMany => " group_right",
    };
    f.write_str(group)?;
    if !matching.include.is_empty() {
        f.write_str(" ")?;
        write_list(f, &matching.include)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_back() {
        for value in [
            0.0,
            1.0,
            -1.5,
            0.99998,
            1e21,
            1.5e-7,
            123456789.125,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let text = format_number(value);
            let parsed: f64 = text.trim_start_matches('-').parse().unwrap();
            let parsed = if text.starts_with('-') { -parsed } else { parsed };
            assert_eq!(parsed.to_bits(), value.to_bits(), "{value} printed as {text}");
        }
        assert_eq!(format_number(-0.0), "-0.0");
        assert_eq!(format_number(1e21), "1e21");
        assert_eq!(format_number(2.0), "2");
    }

    #[test]
    fn strings_are_quoted_for_the_lexer() {
        let mut out = String::new();
        push_double_quoted(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }
}
