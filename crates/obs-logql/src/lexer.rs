//! Splits a query into tokens the way Loki's lexer (`lex.go` over Go's `text/scanner`) does.
//!
//! - Keywords are case-insensitive. Function names (`rate`, `sum`, `vector`, `ip`, `bytes`,
//!   …) are keywords only when `(`, `by (` or `without (` follows; otherwise they are label
//!   names (`| bytes > 1KB`). The other keywords (`by`, `or`, `json`, `drop`, …) are never
//!   label names, as in Loki.
//! - A number followed by duration units (`5m`, `1h30m`, `1.5s`) is a duration, by size
//!   units (`20MB`, `1KiB`) a byte size; `-5m` is a negative duration.
//! - `[...]` is a range, read whole and parsed as a Prometheus duration.
//! - `#`, `//` and `/* */` start comments (Go's scanner skips the latter two).
//! - Strings are double-quoted with Go escapes, or back-quoted and raw.
//!
//! Lexing stops at the first malformed token, which becomes an [`Tok::Error`]: the parser
//! reports it only if everything before it parses, so the first error in the text wins.

use std::time::Duration;

use crate::ast::{RangeOp, VectorOp};
use crate::units::{SignedDuration, parse_bytes, parse_duration_literal, parse_prometheus_duration};

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// The end of the input.
    Eof,
    /// A malformed token; the message is the parse error.
    Error(String),
    /// A label name or any other identifier.
    Ident(String),
    /// A string literal, unquoted.
    Str(String),
    /// A number, as written (converted where it is used, with that place's error message).
    Number(String),
    /// A duration literal.
    Duration(SignedDuration),
    /// A byte-size literal.
    Bytes(u64),
    /// `[5m]`.
    Range(Duration),
    /// `--strict`.
    FlagStrict,
    /// `--keep-empty`.
    FlagKeepEmpty,
    Comma,
    LBrace,
    RBrace,
    LParen,
    RParen,
    /// `=`.
    Eq,
    /// `!=`.
    Neq,
    /// `=~`.
    Re,
    /// `!~`.
    Nre,
    /// `!>`.
    Npa,
    /// `|=`.
    PipeExact,
    /// `|~`.
    PipeMatch,
    /// `|>`.
    PipePattern,
    /// `|`.
    Pipe,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    /// `==`.
    CmpEq,
    Gt,
    Gte,
    Lt,
    Lte,
    By,
    Without,
    Bool,
    Offset,
    On,
    Ignoring,
    GroupLeft,
    GroupRight,
    Or,
    And,
    Unless,
    Json,
    Regexp,
    Logfmt,
    Unpack,
    Pattern,
    LabelFormat,
    LineFormat,
    Decolorize,
    Drop,
    Keep,
    Unwrap,
    /// A range aggregation name before `(`.
    RangeOp(RangeOp),
    /// A vector aggregation name before `(` or a grouping.
    VectorOp(VectorOp),
    /// `vector` before `(`.
    Vector,
    /// `label_replace` before `(`.
    LabelReplace,
    /// `ip` before `(`.
    Ip,
    /// `bytes` before `(`.
    ConvBytes,
    /// `duration` before `(`.
    ConvDuration,
    /// `duration_seconds` before `(`.
    ConvDurationSeconds,
    /// `.` and `]`, which Loki's lexer knows and its grammar never accepts.
    Stray(char),
}

impl Tok {
    /// The token as Loki's parser names it in "unexpected ..." messages.
    pub(crate) fn describe(&self) -> String {
        let text = match self {
            Tok::Eof => "$end",
            Tok::Error(message) => return message.clone(),
            Tok::Ident(_) => "IDENTIFIER",
            Tok::Str(_) => "STRING",
            Tok::Number(_) => "NUMBER",
            Tok::Duration(_) => "DURATION",
            Tok::Bytes(_) => "BYTES",
            Tok::Range(_) => "RANGE",
            Tok::FlagStrict | Tok::FlagKeepEmpty => "FUNCTION_FLAG",
            Tok::Comma => ",",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Eq => "=",
            Tok::Neq => "!=",
            Tok::Re => "=~",
            Tok::Nre => "!~",
            Tok::Npa => "!>",
            Tok::PipeExact => "|=",
            Tok::PipeMatch => "|~",
            Tok::PipePattern => "|>",
            Tok::Pipe => "|",
            Tok::Add => "+",
            Tok::Sub => "-",
            Tok::Mul => "*",
            Tok::Div => "/",
            Tok::Mod => "%",
            Tok::Pow => "^",
            Tok::CmpEq => "==",
            Tok::Gt => ">",
            Tok::Gte => ">=",
            Tok::Lt => "<",
            Tok::Lte => "<=",
            Tok::By => "by",
            Tok::Without => "without",
            Tok::Bool => "bool",
            Tok::Offset => "offset",
            Tok::On => "on",
            Tok::Ignoring => "ignoring",
            Tok::GroupLeft => "group_left",
            Tok::GroupRight => "group_right",
            Tok::Or => "or",
            Tok::And => "and",
            Tok::Unless => "unless",
            Tok::Json => "json",
            Tok::Regexp => "regexp",
            Tok::Logfmt => "logfmt",
            Tok::Unpack => "unpack",
            Tok::Pattern => "pattern",
            Tok::LabelFormat => "label_format",
            Tok::LineFormat => "line_format",
            Tok::Decolorize => "decolorize",
            Tok::Drop => "drop",
            Tok::Keep => "keep",
            Tok::Unwrap => "unwrap",
            Tok::RangeOp(op) => return op.as_str().to_ascii_uppercase(),
            Tok::VectorOp(op) => return op.as_str().to_ascii_uppercase(),
            Tok::Vector => "VECTOR",
            Tok::LabelReplace => "label_replace",
            Tok::Ip => "ip",
            Tok::ConvBytes => "BYTES_CONV",
            Tok::ConvDuration => "DURATION_CONV",
            Tok::ConvDurationSeconds => "DURATION_SECONDS_CONV",
            Tok::Stray(c) => return c.to_string(),
        };
        text.to_owned()
    }
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) offset: usize,
}

/// Tokenizes the whole input; the last token is [`Tok::Eof`] or [`Tok::Error`].
pub(crate) fn tokenize(input: &str) -> Vec<Token> {
    let mut lexer = Lexer { input, pos: 0 };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token();
        let last = matches!(token.tok, Tok::Eof | Tok::Error(_));
        tokens.push(token);
        if last {
            return tokens;
        }
    }
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next_token(&mut self) -> Token {
        if let Some(error) = self.skip_space_and_comments() {
            return error;
        }
        let start = self.pos;
        let token = |tok| Token { tok, offset: start };
        let Some(c) = self.peek_char() else {
            return token(Tok::Eof);
        };
        if c.is_ascii_digit() || (c == '.' && self.rest()[1..].starts_with(|d: char| d.is_ascii_digit())) {
            return token(self.number());
        }
        if c.is_alphabetic() || c == '_' {
            return token(self.word());
        }
        match c {
            '"' => return token(self.quoted_string()),
            '`' => return token(self.raw_string()),
            '[' => return token(self.range()),
            _ => {}
        }
        if c == '-' {
            if let Some(flag) = self.flag() {
                return token(flag);
            }
            if let Some(duration) = self.negative_duration() {
                return token(duration);
            }
        }
        let two: Option<Tok> = match self.rest().get(..2) {
            Some("!=") => Some(Tok::Neq),
            Some("=~") => Some(Tok::Re),
            Some("!~") => Some(Tok::Nre),
            Some("!>") => Some(Tok::Npa),
            Some("|=") => Some(Tok::PipeExact),
            Some("|~") => Some(Tok::PipeMatch),
            Some("|>") => Some(Tok::PipePattern),
            Some("==") => Some(Tok::CmpEq),
            Some(">=") => Some(Tok::Gte),
            Some("<=") => Some(Tok::Lte),
            _ => None,
        };
        if let Some(tok) = two {
            self.pos += 2;
            return token(tok);
        }
        let one = match c {
            ',' => Tok::Comma,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '=' => Tok::Eq,
            '|' => Tok::Pipe,
            '+' => Tok::Add,
            '-' => Tok::Sub,
            '*' => Tok::Mul,
            '/' => Tok::Div,
            '%' => Tok::Mod,
            '^' => Tok::Pow,
            '>' => Tok::Gt,
            '<' => Tok::Lt,
            '.' | ']' => Tok::Stray(c),
            other => {
                return token(Tok::Error(format!(
                    "syntax error: unexpected character {}",
                    crate::units::go_quote(&other.to_string())
                )));
            }
        };
        self.pos += c.len_utf8();
        token(one)
    }

    /// Skips whitespace and comments; a block comment without its end is an error.
    fn skip_space_and_comments(&mut self) -> Option<Token> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r']);
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with('#') || trimmed.starts_with("//") {
                let line_len = trimmed.find('\n').unwrap_or(trimmed.len());
                self.pos += line_len;
            } else if let Some(after_open) = trimmed.strip_prefix("/*") {
                let Some(end) = after_open.find("*/") else {
                    return Some(Token {
                        tok: Tok::Error("comment not terminated".to_owned()),
                        offset: self.pos,
                    });
                };
                self.pos += 2 + end + 2;
            } else {
                return None;
            }
        }
    }

    /// An identifier or keyword.
    fn word(&mut self) -> Tok {
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(rest.len(), |(index, _)| index);
        let text = &rest[..len];
        self.pos += len;
        let lower = text.to_lowercase();
        if let Some(function) = function_token(&lower) {
            if is_function_call(self.rest()) {
                return function;
            }
            return Tok::Ident(text.to_owned());
        }
        match lower.as_str() {
            "by" => Tok::By,
            "without" => Tok::Without,
            "bool" => Tok::Bool,
            "offset" => Tok::Offset,
            "on" => Tok::On,
            "ignoring" => Tok::Ignoring,
            "group_left" => Tok::GroupLeft,
            "group_right" => Tok::GroupRight,
            "or" => Tok::Or,
            "and" => Tok::And,
            "unless" => Tok::Unless,
            "json" => Tok::Json,
            "regexp" => Tok::Regexp,
            "logfmt" => Tok::Logfmt,
            "unpack" => Tok::Unpack,
            "pattern" => Tok::Pattern,
            "label_format" => Tok::LabelFormat,
            "line_format" => Tok::LineFormat,
            "decolorize" => Tok::Decolorize,
            "drop" => Tok::Drop,
            "keep" => Tok::Keep,
            "unwrap" => Tok::Unwrap,
            _ => Tok::Ident(text.to_owned()),
        }
    }

    /// A number, or the duration or byte size it starts.
    fn number(&mut self) -> Tok {
        let len = go_number_len(self.rest());
        let number = self.rest()[..len].to_owned();
        self.pos += len;
        let after = self.rest();
        let unit_run = |accept: fn(char) -> bool| {
            after
                .char_indices()
                .find(|(_, c)| !(c.is_numeric() || *c == '.' || accept(*c)))
                .map_or(after.len(), |(index, _)| index)
        };
        let duration_len = unit_run(is_duration_char);
        if duration_len > 0
            && let Some(duration) = parse_duration_literal(&format!("{number}{}", &after[..duration_len]))
        {
            self.pos += duration_len;
            return Tok::Duration(duration);
        }
        let bytes_len = unit_run(is_bytes_char);
        if bytes_len > 0
            && let Ok(bytes) = parse_bytes(&format!("{number}{}", &after[..bytes_len]))
        {
            self.pos += bytes_len;
            return Tok::Bytes(bytes);
        }
        Tok::Number(number)
    }

    /// `--strict` or `--keep-empty` at a `-`.
    fn flag(&mut self) -> Option<Tok> {
        let rest = self.rest();
        if !rest.starts_with("--") {
            return None;
        }
        let len = 1 + rest[1..]
            .char_indices()
            .find(|(_, c)| !(c.is_alphabetic() || *c == '-'))
            .map_or(rest.len() - 1, |(index, _)| index);
        let tok = match &rest[..len] {
            "--strict" => Tok::FlagStrict,
            "--keep-empty" => Tok::FlagKeepEmpty,
            _ => return None,
        };
        self.pos += len;
        Some(tok)
    }

    /// A negative duration (`-5m`) at a `-`.
    fn negative_duration(&mut self) -> Option<Tok> {
        let after = &self.rest()[1..];
        let len = after
            .char_indices()
            .find(|(_, c)| !(c.is_numeric() || *c == '.' || is_duration_char(*c)))
            .map_or(after.len(), |(index, _)| index);
        if len == 0 {
            return None;
        }
        let duration = parse_duration_literal(&format!("-{}", &after[..len]))?;
        self.pos += 1 + len;
        Some(Tok::Duration(duration))
    }

    /// `[...]`: everything up to `]`, as a Prometheus duration.
    fn range(&mut self) -> Tok {
        let inside = &self.rest()[1..];
        let Some(end) = inside.find(']') else {
            return Tok::Error("missing closing ']' in duration".to_owned());
        };
        let text = &inside[..end];
        let result = parse_prometheus_duration(text);
        self.pos += end + 2;
        match result {
            Ok(nanos) => Tok::Range(Duration::from_nanos(nanos)),
            Err(message) => Tok::Error(message),
        }
    }

    /// A back-quoted string: raw, may span lines.
    fn raw_string(&mut self) -> Tok {
        let inside = &self.rest()[1..];
        let Some(end) = inside.find('`') else {
            return Tok::Error("literal not terminated".to_owned());
        };
        let value = inside[..end].to_owned();
        self.pos += end + 2;
        Tok::Str(value)
    }

    /// A double-quoted string with Go escapes; it may not span lines.
    fn quoted_string(&mut self) -> Tok {
        match obs_core::gostr::unquote_prefix(self.rest()) {
            Ok((value, len)) => {
                self.pos += len;
                Tok::Str(value)
            }
            Err(message) => Tok::Error(message.to_owned()),
        }
    }
}

/// The function token a lowercase word names, if any.
fn function_token(lower: &str) -> Option<Tok> {
    if let Some(op) = RangeOp::ALL.into_iter().find(|op| op.as_str() == lower) {
        return Some(Tok::RangeOp(op));
    }
    if let Some(op) = VectorOp::ALL.into_iter().find(|op| op.as_str() == lower) {
        return Some(Tok::VectorOp(op));
    }
    match lower {
        "vector" => Some(Tok::Vector),
        "label_replace" => Some(Tok::LabelReplace),
        "ip" => Some(Tok::Ip),
        "bytes" => Some(Tok::ConvBytes),
        "duration" => Some(Tok::ConvDuration),
        "duration_seconds" => Some(Tok::ConvDurationSeconds),
        _ => None,
    }
}

/// Whether the text after a function name makes it a call: `(`, `by (` or `without (`,
/// with optional whitespace and in any case (Loki's `isFunction`).
fn is_function_call(after: &str) -> bool {
    let after = after.trim_start();
    if after.starts_with('(') {
        return true;
    }
    for keyword in ["by", "without"] {
        let prefix = after.get(..keyword.len());
        if prefix.is_some_and(|prefix| prefix.eq_ignore_ascii_case(keyword)) {
            return after[keyword.len()..].trim_start().starts_with('(');
        }
    }
    false
}

/// The characters of a duration unit (`ns us µs ms s m h d w y`).
fn is_duration_char(c: char) -> bool {
    matches!(c, 'n' | 'u' | 'µ' | 'm' | 's' | 'h' | 'd' | 'w' | 'y')
}

/// The characters of a byte-size unit (`B kB MB … KiB PiB`).
fn is_bytes_char(c: char) -> bool {
    matches!(c, 'B' | 'i' | 'k' | 'K' | 'M' | 'G' | 'T' | 'P')
}

/// The length of the number at the start of `text`, as Go's scanner reads one: decimal with
/// an optional fraction and exponent, or `0x`/`0o`/`0b` prefixed, with `_` separators.
fn go_number_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let digits_from = |start: usize, is_digit: fn(u8) -> bool| {
        start
            + bytes[start.min(bytes.len())..]
                .iter()
                .take_while(|b| is_digit(**b) || **b == b'_')
                .count()
    };
    let prefix = match bytes {
        [b'0', b'x' | b'X', ..] => Some((16, 2)),
        [b'0', b'o' | b'O', ..] => Some((8, 2)),
        // Loki's scanner takes `0b` as a prefix only before a binary digit, so that `0B` is
        // a size.
        [b'0', b'b' | b'B', b'0' | b'1', ..] => Some((2, 2)),
        _ => None,
    };
    let (hex, mut end) = match prefix {
        Some((16, len)) => (true, digits_from(len, |b| b.is_ascii_hexdigit())),
        Some((_, len)) => (false, digits_from(len, |b| b.is_ascii_digit())),
        None => (false, digits_from(0, |b| b.is_ascii_digit())),
    };
    let decimal = prefix.is_none();
    if (decimal || hex) && bytes.get(end) == Some(&b'.') {
        end = if hex {
            digits_from(end + 1, |b| b.is_ascii_hexdigit())
        } else {
            digits_from(end + 1, |b| b.is_ascii_digit())
        };
    }
    let exponent = match bytes.get(end) {
        Some(b'e' | b'E') if decimal => true,
        Some(b'p' | b'P') if hex => true,
        _ => false,
    };
    if exponent {
        let mut after = end + 1;
        if matches!(bytes.get(after), Some(b'+' | b'-')) {
            after += 1;
        }
        if bytes.get(after).is_some_and(u8::is_ascii_digit) {
            end = digits_from(after, |b| b.is_ascii_digit());
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<Tok> {
        tokenize(input).into_iter().map(|token| token.tok).collect()
    }

    fn ident(name: &str) -> Tok {
        Tok::Ident(name.to_owned())
    }

    fn string(value: &str) -> Tok {
        Tok::Str(value.to_owned())
    }

    #[test]
    fn selectors_and_filters_tokenize() {
        assert_eq!(
            kinds(r#"{foo="bar"} |~ `\w+` | latency > 250ms"#),
            [
                Tok::LBrace,
                ident("foo"),
                Tok::Eq,
                string("bar"),
                Tok::RBrace,
                Tok::PipeMatch,
                string(r"\w+"),
                Tok::Pipe,
                ident("latency"),
                Tok::Gt,
                Tok::Duration(SignedDuration::from_nanos(250_000_000)),
                Tok::Eof
            ]
        );
        assert_eq!(
            kinds(r#"{ foo !~ "ba\"r" } #|~ "x""#),
            [
                Tok::LBrace,
                ident("foo"),
                Tok::Nre,
                string("ba\"r"),
                Tok::RBrace,
                Tok::Eof
            ]
        );
        assert_eq!(kinds("#{foo=\"bar\"}"), [Tok::Eof]);
    }

    #[test]
    fn function_names_are_keywords_only_before_a_call() {
        assert_eq!(kinds("ip"), [ident("ip"), Tok::Eof]);
        assert_eq!(kinds("rate"), [ident("rate"), Tok::Eof]);
        assert_eq!(
            kinds("Rate ("),
            [Tok::RangeOp(RangeOp::Rate), Tok::LParen, Tok::Eof]
        );
        assert_eq!(
            kinds("SUM BY (a)"),
            [
                Tok::VectorOp(VectorOp::Sum),
                Tok::By,
                Tok::LParen,
                ident("a"),
                Tok::RParen,
                Tok::Eof
            ]
        );
        assert_eq!(kinds("sum byfoo"), [ident("sum"), ident("byfoo"), Tok::Eof]);
        assert_eq!(kinds("count without(x)")[0], Tok::VectorOp(VectorOp::Count));
        assert_eq!(kinds("bytes > 1KB")[0], ident("bytes"));
        assert_eq!(kinds("bytes(x)")[0], Tok::ConvBytes);
        assert_eq!(kinds("JSON"), [Tok::Json, Tok::Eof]);
        assert_eq!(kinds("decolorize"), [Tok::Decolorize, Tok::Eof]);
    }

    #[test]
    fn numbers_durations_and_sizes() {
        assert_eq!(kinds("123"), [Tok::Number("123".to_owned()), Tok::Eof]);
        assert_eq!(kinds("-123"), [Tok::Sub, Tok::Number("123".to_owned()), Tok::Eof]);
        assert_eq!(kinds("123.45"), [Tok::Number("123.45".to_owned()), Tok::Eof]);
        assert_eq!(kinds("1e6"), [Tok::Number("1e6".to_owned()), Tok::Eof]);
        assert_eq!(kinds("1.5e-7"), [Tok::Number("1.5e-7".to_owned()), Tok::Eof]);
        assert_eq!(kinds("0x1A"), [Tok::Number("0x1A".to_owned()), Tok::Eof]);
        assert_eq!(kinds("0x1p3"), [Tok::Number("0x1p3".to_owned()), Tok::Eof]);
        assert_eq!(kinds("123KB"), [Tok::Bytes(123_000), Tok::Eof]);
        assert_eq!(kinds("123PiB"), [Tok::Bytes(123 << 50), Tok::Eof]);
        assert_eq!(kinds("0B"), [Tok::Bytes(0), Tok::Eof]);
        assert_eq!(
            kinds("123ms"),
            [Tok::Duration(SignedDuration::from_nanos(123_000_000)), Tok::Eof]
        );
        assert_eq!(
            kinds("-123ms"),
            [Tok::Duration(SignedDuration::from_nanos(-123_000_000)), Tok::Eof]
        );
        assert_eq!(
            kinds("1h15m30.918273645s"),
            [
                Tok::Duration(SignedDuration::from_nanos(4_530_918_273_645)),
                Tok::Eof
            ]
        );
        assert_eq!(
            kinds("34+-123"),
            [
                Tok::Number("34".to_owned()),
                Tok::Add,
                Tok::Sub,
                Tok::Number("123".to_owned()),
                Tok::Eof
            ]
        );
        assert_eq!(
            kinds("--strict --keep-empty --other"),
            [
                Tok::FlagStrict,
                Tok::FlagKeepEmpty,
                Tok::Sub,
                Tok::Sub,
                ident("other"),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn ranges_and_their_errors() {
        assert_eq!(kinds("[5m]"), [Tok::Range(Duration::from_secs(300)), Tok::Eof]);
        assert_eq!(
            kinds("[5minutes]"),
            [Tok::Error(
                r#"unknown unit "minutes" in duration "5minutes""#.to_owned()
            )]
        );
        assert_eq!(
            kinds("[5"),
            [Tok::Error("missing closing ']' in duration".to_owned())]
        );
    }

    #[test]
    fn strings_and_their_errors() {
        assert_eq!(
            kinds(r#""a\tb\x41\101\u00e9\U0001F600\\""#),
            [string("a\tbAAé😀\\"), Tok::Eof]
        );
        assert_eq!(kinds(r#""\xc3\xa9""#), [string("é"), Tok::Eof]);
        assert_eq!(kinds("`a\nb\\`"), [string("a\nb\\"), Tok::Eof]);
        for (input, message) in [
            (r#""bar"#, "literal not terminated"),
            ("\"a\nb\"", "literal not terminated"),
            ("`a", "literal not terminated"),
            (r#""\q""#, "invalid char escape"),
            (r#""\'""#, "invalid char escape"),
            (r#""\400""#, "invalid char escape"),
            (r#""\ud800""#, "invalid char escape"),
            (r#""\xff""#, "invalid UTF-8 in string literal"),
            ("/* x", "comment not terminated"),
        ] {
            assert_eq!(
                kinds(input).last(),
                Some(&Tok::Error(message.to_owned())),
                "{input:?}"
            );
        }
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(
            kinds("{a=\"b\"} // c\n/* d */ | json"),
            [
                Tok::LBrace,
                ident("a"),
                Tok::Eq,
                string("b"),
                Tok::RBrace,
                Tok::Pipe,
                Tok::Json,
                Tok::Eof
            ]
        );
    }
}
