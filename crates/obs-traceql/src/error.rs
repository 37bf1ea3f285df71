//! The parse error.

use obs_core::error::{Classify, ErrorKind};

/// Why a query does not parse, and where.
///
/// `Display` follows Tempo: `parse error at line 1, col 9: syntax error: unexpected ...`.
/// Lines and columns count from 1; columns count characters, as Go's `text/scanner` does.
/// Grafana shows the text to the user as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at line {line}, col {column}: {message}")]
pub struct ParseError {
    /// What is wrong, without the position (`syntax error: unexpected $end`).
    pub message: String,
    /// The line of the offending token, from 1.
    pub line: usize,
    /// The column of the offending token, from 1, in characters.
    pub column: usize,
    /// The byte offset of the offending token in the query.
    pub offset: usize,
}

impl ParseError {
    /// An error at byte `offset` of `input` (clamped to the input and to a character start).
    pub(crate) fn at(input: &str, offset: usize, message: impl Into<String>) -> ParseError {
        let mut offset = offset.min(input.len());
        while !input.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &input[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        ParseError {
            message: message.into(),
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            offset,
        }
    }
}

impl Classify for ParseError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}

/// Why a parsed query cannot be evaluated.
///
/// Messages are lowercase and meant for the user (Grafana shows them as they are).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A metrics query was given to search, or a search to the metrics evaluator.
    #[error("{0}")]
    WrongQueryKind(&'static str),
    /// A construct the engine does not run (`parent.` attributes, `compare()`, ...).
    #[error("{0} is not supported")]
    Unsupported(String),
    /// A structural operator met more than one spanset on one side (Tempo's message).
    #[error("spanset operators are not supported for multiple spansets per trace. consider using coalesce()")]
    SpansetOperationMultiple,
    /// The metrics time range or step is unusable.
    #[error("invalid metrics range: {0}")]
    InvalidRange(String),
    /// A metrics query would produce more series than allowed.
    #[error("metrics query exceeded the limit of {limit} series; narrow the query or its by() labels")]
    TooManySeries {
        /// The limit.
        limit: usize,
    },
}

impl Classify for EvalError {
    fn kind(&self) -> ErrorKind {
        match self {
            EvalError::TooManySeries { .. } => ErrorKind::TooLarge,
            EvalError::SpansetOperationMultiple => ErrorKind::Execution,
            _ => ErrorKind::BadInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let error = ParseError::at("{ .a = \"é\" }\n  | x", 16, "syntax error: unexpected IDENTIFIER");
        assert_eq!((error.line, error.column, error.offset), (2, 3, 16));
        assert_eq!(
            error.to_string(),
            "parse error at line 2, col 3: syntax error: unexpected IDENTIFIER"
        );
        let end = ParseError::at("{ .a", 99, "x");
        assert_eq!((end.line, end.column, end.offset), (1, 5, 4));
        assert_eq!(ParseError::at("é", 1, "x").offset, 0);
    }
}
