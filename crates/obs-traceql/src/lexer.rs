//! Splits a query into tokens the way Tempo's lexer (`pkg/traceql/lexer.go`, over Go's
//! `text/scanner`) does.
//!
//! - Keywords are case-sensitive and reserved: `name`, `status`, `count`, `rate`, `by`, `with`,
//!   ... are never identifiers (`{ .count }` is an attribute, `count` alone the aggregate).
//! - An attribute is one token: a scope prefix (`.`, `span.`, `resource.`, `event.`, `link.`,
//!   `instrumentation.`, `parent.`, `parent.span.`, `parent.resource.`) and a name running
//!   to the next space or `{}()=~!<>&|^,`; parts of the name may be double-quoted
//!   (`span."a b".c` is `a b.c`), with `\"` and `\\` as the only escapes.
//! - `span:`, `trace:`, `event:`, `link:` and `instrumentation:` are scope tokens the parser
//!   joins with the intrinsic keyword that follows.
//! - A number followed by duration units is a duration: Prometheus' syntax first (`1h30m`,
//!   `2d`, `1w`), then Go's (`1.5s`, `100us`, `1µs`); otherwise the number stands alone.
//! - Strings are double-quoted with Go escapes, or back-quoted and raw; `//` and `/* */`
//!   are comments.
//! - Any other character is an identifier of its own, as in Tempo (`&` alone, `[`, `@`).
//!
//! Lexing stops at the first malformed token, which becomes a [`Tok::Error`]: the parser
//! reports it only if everything before it parses, so the first error in the text wins.

use crate::ast::{Attribute, AttributeScope};

/// The keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    True,
    False,
    Nil,
    Ok,
    Error,
    Unset,
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
    Duration,
    ChildCount,
    Name,
    Status,
    StatusMessage,
    Kind,
    RootName,
    RootServiceName,
    RootService,
    TraceDuration,
    NestedSetLeft,
    NestedSetRight,
    NestedSetParent,
    Id,
    TraceId,
    SpanId,
    ParentId,
    TimeSinceStart,
    Version,
    Parent,
    Count,
    Avg,
    Max,
    Min,
    Sum,
    By,
    Coalesce,
    Select,
    Rate,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    AvgOverTime,
    SumOverTime,
    QuantileOverTime,
    HistogramOverTime,
    Compare,
    TopK,
    BottomK,
    With,
}

/// Every keyword and its spelling.
const KEYWORDS: [(&str, Kw); 52] = [
    ("true", Kw::True),
    ("false", Kw::False),
    ("nil", Kw::Nil),
    ("ok", Kw::Ok),
    ("error", Kw::Error),
    ("unset", Kw::Unset),
    ("unspecified", Kw::Unspecified),
    ("internal", Kw::Internal),
    ("server", Kw::Server),
    ("client", Kw::Client),
    ("producer", Kw::Producer),
    ("consumer", Kw::Consumer),
    ("duration", Kw::Duration),
    ("childCount", Kw::ChildCount),
    ("name", Kw::Name),
    ("status", Kw::Status),
    ("statusMessage", Kw::StatusMessage),
    ("kind", Kw::Kind),
    ("rootName", Kw::RootName),
    ("rootServiceName", Kw::RootServiceName),
    ("rootService", Kw::RootService),
    ("traceDuration", Kw::TraceDuration),
    ("nestedSetLeft", Kw::NestedSetLeft),
    ("nestedSetRight", Kw::NestedSetRight),
    ("nestedSetParent", Kw::NestedSetParent),
    ("id", Kw::Id),
    ("traceID", Kw::TraceId),
    ("spanID", Kw::SpanId),
    ("parentID", Kw::ParentId),
    ("timeSinceStart", Kw::TimeSinceStart),
    ("version", Kw::Version),
    ("parent", Kw::Parent),
    ("count", Kw::Count),
    ("avg", Kw::Avg),
    ("max", Kw::Max),
    ("min", Kw::Min),
    ("sum", Kw::Sum),
    ("by", Kw::By),
    ("coalesce", Kw::Coalesce),
    ("select", Kw::Select),
    ("rate", Kw::Rate),
    ("count_over_time", Kw::CountOverTime),
    ("min_over_time", Kw::MinOverTime),
    ("max_over_time", Kw::MaxOverTime),
    ("avg_over_time", Kw::AvgOverTime),
    ("sum_over_time", Kw::SumOverTime),
    ("quantile_over_time", Kw::QuantileOverTime),
    ("histogram_over_time", Kw::HistogramOverTime),
    ("compare", Kw::Compare),
    ("topk", Kw::TopK),
    ("bottomk", Kw::BottomK),
    ("with", Kw::With),
];

impl Kw {
    pub(crate) fn as_str(self) -> &'static str {
        KEYWORDS
            .iter()
            .find(|(_, keyword)| *keyword == self)
            .map_or("", |(text, _)| text)
    }
}

/// The scope of a scoped intrinsic (`span:name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntrinsicScope {
    Span,
    Trace,
    Event,
    Link,
    Instrumentation,
}

impl IntrinsicScope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            IntrinsicScope::Span => "span:",
            IntrinsicScope::Trace => "trace:",
            IntrinsicScope::Event => "event:",
            IntrinsicScope::Link => "link:",
            IntrinsicScope::Instrumentation => "instrumentation:",
        }
    }
}

/// The operators and punctuation, longest first (each longer one extends a shorter one, as
/// Tempo's lexer requires).
const OPERATORS: [(&str, Tok); 36] = [
    ("!>>", Tok::NotDesc),
    ("!<<", Tok::NotAnce),
    ("&>>", Tok::UnionDesc),
    ("&<<", Tok::UnionAnce),
    ("&&", Tok::And),
    ("||", Tok::Or),
    ("!=", Tok::Neq),
    ("=~", Tok::Re),
    ("!~", Tok::Nre),
    (">=", Tok::Gte),
    ("<=", Tok::Lte),
    (">>", Tok::Desc),
    ("<<", Tok::Ance),
    ("!>", Tok::NotChild),
    ("!<", Tok::NotParent),
    ("&>", Tok::UnionChild),
    ("&<", Tok::UnionParent),
    ("&~", Tok::UnionSibl),
    ("=", Tok::Eq),
    (">", Tok::Gt),
    ("<", Tok::Lt),
    ("+", Tok::Add),
    ("-", Tok::Sub),
    ("*", Tok::Mul),
    ("/", Tok::Div),
    ("%", Tok::Mod),
    ("^", Tok::Pow),
    ("!", Tok::Not),
    ("|", Tok::Pipe),
    ("~", Tok::Sibl),
    (",", Tok::Comma),
    ("{", Tok::LBrace),
    ("}", Tok::RBrace),
    ("(", Tok::LParen),
    (")", Tok::RParen),
    ("&", Tok::Ident(String::new())),
];

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// The end of the input.
    Eof,
    /// A malformed token; the message is the parse error.
    Error(String),
    /// A word that is not a keyword, or a stray character.
    Ident(String),
    /// A string literal, unquoted.
    Str(String),
    Int(i64),
    Float(f64),
    /// A duration in nanoseconds.
    Duration(i64),
    /// An attribute and the prefix it was written with (for messages).
    Attr(Attribute, &'static str),
    /// `span:`, `trace:`, ...
    ScopeColon(IntrinsicScope),
    Kw(Kw),
    Comma,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Eq,
    Neq,
    Re,
    Nre,
    Gt,
    Gte,
    Lt,
    Lte,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    And,
    Or,
    Not,
    Pipe,
    Desc,
    Ance,
    Sibl,
    NotChild,
    NotParent,
    NotDesc,
    NotAnce,
    UnionChild,
    UnionParent,
    UnionDesc,
    UnionAnce,
    UnionSibl,
}

impl Tok {
    /// The token as Tempo's parser names it in "unexpected ..." messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Eof => "$end".to_owned(),
            Tok::Error(message) => message.clone(),
            Tok::Ident(_) => "IDENTIFIER".to_owned(),
            Tok::Str(_) => "STRING".to_owned(),
            Tok::Int(_) => "INTEGER".to_owned(),
            Tok::Float(_) => "FLOAT".to_owned(),
            Tok::Duration(_) => "DURATION".to_owned(),
            Tok::Attr(_, prefix) => (*prefix).to_owned(),
            Tok::ScopeColon(scope) => scope.as_str().to_owned(),
            Tok::Kw(keyword) => keyword.as_str().to_owned(),
            other => OPERATORS
                .iter()
                .find(|(_, tok)| tok == other)
                .map_or_else(String::new, |(text, _)| (*text).to_owned()),
        }
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

/// Whether `c` may appear unquoted in an attribute name (Tempo's `isAttributeRune`).
pub(crate) fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ','
        )
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn next_token(&mut self) -> Token {
        if let Some(error) = self.skip_space_and_comments() {
            return error;
        }
        let start = self.pos;
        let token = |tok| Token { tok, offset: start };
        let rest = self.rest();
        let Some(c) = rest.chars().next() else {
            return token(Tok::Eof);
        };
        if c.is_ascii_digit() || (c == '.' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) {
            return token(self.number());
        }
        if c.is_alphabetic() || c == '_' {
            return token(self.word());
        }
        match c {
            '.' => {
                self.pos += 1;
                return token(self.attribute(AttributeScope::None, false, ".", start));
            }
            '"' => return token(self.quoted_string()),
            '`' => return token(self.raw_string()),
            '\'' => return token(self.char_literal()),
            _ => {}
        }
        if let Some((text, tok)) = OPERATORS.iter().find(|(text, _)| rest.starts_with(text)) {
            self.pos += text.len();
            if *text == "&" {
                return token(Tok::Ident("&".to_owned()));
            }
            return token(tok.clone());
        }
        self.pos += c.len_utf8();
        token(Tok::Ident(c.to_string()))
    }

    /// Skips whitespace and comments; a block comment without its end is an error.
    fn skip_space_and_comments(&mut self) -> Option<Token> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start_matches([' ', '\t', '\n', '\r']);
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
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

    /// A keyword, identifier, attribute prefix or scope prefix.
    fn word(&mut self) -> Tok {
        let start = self.pos;
        let rest = self.rest();
        let len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(rest.len(), |(index, _)| index);
        let text = &rest[..len];
        self.pos += len;
        let after = self.rest();
        if after.starts_with('.') {
            let attribute_scope = match text {
                "span" => Some((AttributeScope::Span, false, "span.")),
                "resource" => Some((AttributeScope::Resource, false, "resource.")),
                "event" => Some((AttributeScope::Event, false, "event.")),
                "link" => Some((AttributeScope::Link, false, "link.")),
                "instrumentation" => Some((AttributeScope::Instrumentation, false, "instrumentation.")),
                "parent" => Some((AttributeScope::None, true, "parent.")),
                _ => None,
            };
            if let Some((scope, parent, prefix)) = attribute_scope {
                self.pos += 1;
                return self.attribute(scope, parent, prefix, start);
            }
        }
        if after.starts_with(':') {
            let scope = match text {
                "span" => Some(IntrinsicScope::Span),
                "trace" => Some(IntrinsicScope::Trace),
                "event" => Some(IntrinsicScope::Event),
                "link" => Some(IntrinsicScope::Link),
                "instrumentation" => Some(IntrinsicScope::Instrumentation),
                _ => None,
            };
            if let Some(scope) = scope {
                self.pos += 1;
                return Tok::ScopeColon(scope);
            }
        }
        match KEYWORDS.iter().find(|(spelling, _)| *spelling == text) {
            Some((_, keyword)) => Tok::Kw(*keyword),
            None => Tok::Ident(text.to_owned()),
        }
    }

    /// The rest of an attribute, after its prefix (`self.pos` is just past the dot).
    fn attribute(
        &mut self,
        mut scope: AttributeScope,
        parent: bool,
        prefix: &'static str,
        start: usize,
    ) -> Tok {
        let mut expecting = "IDENTIFIER";
        if parent {
            expecting = "IDENTIFIER or resource. or span.";
            let rest = self.rest();
            for (scope_prefix, parent_scope) in [
                ("span.", AttributeScope::Span),
                ("resource.", AttributeScope::Resource),
            ] {
                if rest.starts_with(scope_prefix) {
                    self.pos += scope_prefix.len();
                    scope = parent_scope;
                    expecting = "IDENTIFIER";
                    break;
                }
            }
        }
        let end_of_attribute = || format!("syntax error: unexpected END_ATTRIBUTE, expecting {expecting}");
        if !self.rest().starts_with(is_attribute_char) {
            self.pos = start;
            return Tok::Error(end_of_attribute());
        }
        let mut name = String::new();
        loop {
            let rest = self.rest();
            let Some(c) = rest.chars().next() else {
                break;
            };
            if c == '"' {
                match quoted_attribute_part(&rest[1..]) {
                    Ok((part, len)) => {
                        name.push_str(&part);
                        self.pos += 1 + len;
                    }
                    Err(message) => {
                        self.pos = start;
                        return Tok::Error(message.to_owned());
                    }
                }
            } else if is_attribute_char(c) {
                name.push(c);
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        Tok::Attr(Attribute { scope, parent, name }, prefix)
    }

    /// A number, or the duration it starts.
    fn number(&mut self) -> Tok {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let prefixed = matches!(bytes, [b'0', b'x' | b'X' | b'o' | b'O' | b'b' | b'B', ..]);
        if prefixed {
            let len = rest
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
                .map_or(rest.len(), |(index, _)| index);
            self.pos += len;
            return Tok::Error(format!(
                "strconv.Atoi: parsing {:?}: invalid syntax",
                &rest[..len]
            ));
        }
        let digits = |from: usize| {
            from + bytes[from.min(bytes.len())..]
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b'_')
                .count()
        };
        let mut end = digits(0);
        let mut is_float = false;
        if bytes.get(end) == Some(&b'.') {
            is_float = true;
            end = digits(end + 1);
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let mut after = end + 1;
            if matches!(bytes.get(after), Some(b'+' | b'-')) {
                after += 1;
            }
            if bytes.get(after).is_some_and(u8::is_ascii_digit) {
                is_float = true;
                end = digits(after);
            }
        }
        let number = &rest[..end];
        self.pos += end;
        let after = self.rest();
        let suffix_len = after
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || !(c.is_numeric() || *c == '.' || is_duration_char(*c)))
            .map_or(after.len(), |(index, _)| index);
        if suffix_len > 0 {
            let text = format!("{number}{}", &after[..suffix_len]);
            if let Some(nanos) = parse_duration(&text) {
                self.pos += suffix_len;
                return Tok::Duration(nanos);
            }
        }
        if is_float {
            return match number.parse::<f64>() {
                Ok(_) if number.contains('_') => {
                    Tok::Error(format!("strconv.ParseFloat: parsing {number:?}: invalid syntax"))
                }
                Ok(value) if value.is_finite() => Tok::Float(value),
                Ok(_) => Tok::Error(format!(
                    "strconv.ParseFloat: parsing {number:?}: value out of range"
                )),
                Err(_) => Tok::Error(format!("strconv.ParseFloat: parsing {number:?}: invalid syntax")),
            };
        }
        if number.contains('_') {
            return Tok::Error(format!("strconv.Atoi: parsing {number:?}: invalid syntax"));
        }
        match number.parse::<i64>() {
            Ok(value) => Tok::Int(value),
            Err(_) => Tok::Error(format!("strconv.Atoi: parsing {number:?}: value out of range")),
        }
    }

    /// A back-quoted string: raw, may span lines; carriage returns are dropped (Go's
    /// `strconv.Unquote`).
    fn raw_string(&mut self) -> Tok {
        let inside = &self.rest()[1..];
        let Some(end) = inside.find('`') else {
            return Tok::Error("literal not terminated".to_owned());
        };
        let value = inside[..end].replace('\r', "");
        self.pos += end + 2;
        Tok::Str(value)
    }

    /// `'...'`: Go's scanner reads a character literal, which Tempo then takes as an
    /// identifier.
    fn char_literal(&mut self) -> Tok {
        let inside = &self.rest()[1..];
        let line = &inside[..inside.find('\n').unwrap_or(inside.len())];
        let Some(end) = line.find('\'') else {
            return Tok::Error("literal not terminated".to_owned());
        };
        let text = format!("'{}'", &line[..end]);
        self.pos += end + 2;
        Tok::Ident(text)
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

/// A double-quoted part of an attribute name, after its opening quote: the text and the
/// bytes consumed (closing quote included). Only `\"` and `\\` are escapes.
fn quoted_attribute_part(text: &str) -> Result<(String, usize), &'static str> {
    let mut part = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Ok((part, index + 1)),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\'))) => part.push(escaped),
                Some(_) => return Err("invalid escape sequence"),
                None => break,
            },
            other => part.push(other),
        }
    }
    Err("unexpected EOF, expecting \"")
}

/// The characters of duration units (`ns us µs ms s m h d w y`).
fn is_duration_char(c: char) -> bool {
    matches!(c, 'n' | 's' | 'u' | 'm' | 'h' | 'µ' | 'd' | 'w' | 'y')
}

/// A duration literal in nanoseconds, as Tempo reads one: Prometheus' syntax, else Go's
/// `time.ParseDuration`.
pub(crate) fn parse_duration(text: &str) -> Option<i64> {
    parse_prometheus_duration(text).or_else(|| parse_go_duration(text))
}

/// Prometheus' `model.ParseDuration`: integer amounts of `y w d h m s ms`, largest first.
fn parse_prometheus_duration(text: &str) -> Option<i64> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3_600_000_000_000),
        ("w", 7 * 24 * 3_600_000_000_000),
        ("d", 24 * 3_600_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ];
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_unit = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let amount: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let position = UNITS.iter().position(|(name, _)| *name == unit)? + 1;
        if position <= last_unit {
            return None;
        }
        last_unit = position;
        let nanos = amount.checked_mul(UNITS[position - 1].1)?;
        total = total.checked_add(nanos)?;
    }
    i64::try_from(total).ok()
}

/// Go's `time.ParseDuration` (without the sign, which the lexer never passes).
fn parse_go_duration(text: &str) -> Option<i64> {
    const UNITS: [(&str, u64); 9] = [
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("μs", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
        ("", 0),
    ];
    const LIMIT: u64 = 1 << 63;
    if text == "0" {
        return Some(0);
    }
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut value: u64 = 0;
        for digit in rest[..digits].bytes() {
            value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
            if value > LIMIT {
                return None;
            }
        }
        rest = &rest[digits..];
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut fraction_digits = 0;
        if let Some(after_dot) = rest.strip_prefix('.') {
            rest = after_dot;
            fraction_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for digit in rest[..fraction_digits].bytes() {
                if overflow {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(digit - b'0')))
                {
                    Some(next) if next <= LIMIT => {
                        fraction = next;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            rest = &rest[fraction_digits..];
        }
        if digits == 0 && fraction_digits == 0 {
            return None;
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(index, _)| index);
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let multiplier = UNITS
            .iter()
            .find(|(name, _)| *name == unit && !name.is_empty())
            .map(|(_, multiplier)| *multiplier)?;
        if value > LIMIT / multiplier {
            return None;
        }
        value *= multiplier;
        if fraction > 0 {
            value = value.checked_add((fraction as f64 * (multiplier as f64 / scale)) as u64)?;
            if value > LIMIT {
                return None;
            }
        }
        total = total.checked_add(value)?;
        if total > LIMIT {
            return None;
        }
    }
    i64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<Tok> {
        tokenize(input).into_iter().map(|token| token.tok).collect()
    }

    fn attr(scope: AttributeScope, parent: bool, name: &str, prefix: &'static str) -> Tok {
        Tok::Attr(
            Attribute {
                scope,
                parent,
                name: name.to_owned(),
            },
            prefix,
        )
    }

    #[test]
    fn attributes_are_one_token() {
        use AttributeScope as S;
        for (input, expected) in [
            (".foo", attr(S::None, false, "foo", ".")),
            (".foo.bar-baz+1", attr(S::None, false, "foo.bar-baz+1", ".")),
            (".count", attr(S::None, false, "count", ".")),
            ("span.http.method", attr(S::Span, false, "http.method", "span.")),
            ("span.resource.foo", attr(S::Span, false, "resource.foo", "span.")),
            (
                "resource.service.name",
                attr(S::Resource, false, "service.name", "resource."),
            ),
            ("event.foo", attr(S::Event, false, "foo", "event.")),
            ("link.foo", attr(S::Link, false, "foo", "link.")),
            (
                "instrumentation.foo",
                attr(S::Instrumentation, false, "foo", "instrumentation."),
            ),
            ("parent.foo", attr(S::None, true, "foo", "parent.")),
            ("parent.span.foo", attr(S::Span, true, "foo", "parent.")),
            (
                "parent.resource.foo.bar",
                attr(S::Resource, true, "foo.bar", "parent."),
            ),
            ("parent.span", attr(S::None, true, "span", "parent.")),
            (r#"span."a b".c"#, attr(S::Span, false, "a b.c", "span.")),
            (
                r#".foo."bar \" baz""#,
                attr(S::None, false, "foo.bar \" baz", "."),
            ),
            (r#"."foo\\bar""#, attr(S::None, false, "foo\\bar", ".")),
            (".😝", attr(S::None, false, "😝", ".")),
        ] {
            assert_eq!(kinds(input), [expected, Tok::Eof], "{input}");
        }
        assert_eq!(
            kinds(".foo}.bar"),
            [
                attr(S::None, false, "foo", "."),
                Tok::RBrace,
                attr(S::None, false, "bar", "."),
                Tok::Eof
            ]
        );
        assert_eq!(
            kinds(". foo"),
            [Tok::Error(
                "syntax error: unexpected END_ATTRIBUTE, expecting IDENTIFIER".to_owned()
            )]
        );
        assert_eq!(
            kinds("parent. "),
            [Tok::Error(
                "syntax error: unexpected END_ATTRIBUTE, expecting IDENTIFIER or resource. or span."
                    .to_owned()
            )]
        );
        assert_eq!(
            kinds(r#"."foo"#),
            [Tok::Error("unexpected EOF, expecting \"".to_owned())]
        );
        assert_eq!(
            kinds(r#"."\n""#),
            [Tok::Error("invalid escape sequence".to_owned())]
        );
    }

    #[test]
    fn scopes_keywords_and_operators() {
        assert_eq!(
            kinds("span:name trace: id"),
            [
                Tok::ScopeColon(IntrinsicScope::Span),
                Tok::Kw(Kw::Name),
                Tok::ScopeColon(IntrinsicScope::Trace),
                Tok::Kw(Kw::Id),
                Tok::Eof
            ]
        );
        assert_eq!(kinds("Name"), [Tok::Ident("Name".to_owned()), Tok::Eof]);
        assert_eq!(kinds("span"), [Tok::Ident("span".to_owned()), Tok::Eof]);
        assert_eq!(
            kinds("&& &>> !<< !~ & =="),
            [
                Tok::And,
                Tok::UnionDesc,
                Tok::NotAnce,
                Tok::Nre,
                Tok::Ident("&".to_owned()),
                Tok::Eq,
                Tok::Eq,
                Tok::Eof
            ]
        );
        assert_eq!(
            kinds("[ @"),
            [Tok::Ident("[".to_owned()), Tok::Ident("@".to_owned()), Tok::Eof]
        );
        assert_eq!(
            kinds("{ } // c\n/* d */ |"),
            [Tok::LBrace, Tok::RBrace, Tok::Pipe, Tok::Eof]
        );
        assert_eq!(kinds("/* x"), [Tok::Error("comment not terminated".to_owned())]);
    }

    #[test]
    fn numbers_and_durations() {
        let second = 1_000_000_000;
        for (input, expected) in [
            ("1", Tok::Int(1)),
            ("010", Tok::Int(10)),
            ("1.5", Tok::Float(1.5)),
            (".5", Tok::Float(0.5)),
            ("1e3", Tok::Float(1000.0)),
            ("1ns", Tok::Duration(1)),
            ("1us", Tok::Duration(1_000)),
            ("1µs", Tok::Duration(1_000)),
            ("1ms", Tok::Duration(1_000_000)),
            ("1s", Tok::Duration(second)),
            ("1m", Tok::Duration(60 * second)),
            ("1h", Tok::Duration(3_600 * second)),
            ("1d", Tok::Duration(86_400 * second)),
            ("1w", Tok::Duration(7 * 86_400 * second)),
            ("1y", Tok::Duration(365 * 86_400 * second)),
            ("1h30m", Tok::Duration(5_400 * second)),
            ("1.5m", Tok::Duration(90 * second)),
            (".24h", Tok::Duration(864 * second / 1_000 * 1_000)),
            ("1h15m30.918273645s", Tok::Duration(4_530_918_273_645)),
            ("0s", Tok::Duration(0)),
        ] {
            assert_eq!(kinds(input), [expected, Tok::Eof], "{input}");
        }
        assert_eq!(kinds("1t"), [Tok::Int(1), Tok::Ident("t".to_owned()), Tok::Eof]);
        assert_eq!(kinds("1s5"), [Tok::Int(1), Tok::Ident("s5".to_owned()), Tok::Eof]);
        assert_eq!(
            kinds("99999999999999999999"),
            [Tok::Error(
                "strconv.Atoi: parsing \"99999999999999999999\": value out of range".to_owned()
            )]
        );
        assert_eq!(
            kinds("0x1f"),
            [Tok::Error(
                "strconv.Atoi: parsing \"0x1f\": invalid syntax".to_owned()
            )]
        );
    }

    #[test]
    fn strings_and_their_errors() {
        assert_eq!(
            kinds(r#""a\tb\x41\101\u00e9\U0001F600\\""#),
            [Tok::Str("a\tbAAé😀\\".to_owned()), Tok::Eof]
        );
        assert_eq!(kinds("`a\\d\r`"), [Tok::Str("a\\d".to_owned()), Tok::Eof]);
        for (input, message) in [
            (r#""bar"#, "literal not terminated"),
            ("\"a\nb\"", "literal not terminated"),
            ("`a", "literal not terminated"),
            (r#""\q""#, "invalid char escape"),
            (r#""\xff""#, "invalid UTF-8 in string literal"),
            ("'a", "literal not terminated"),
        ] {
            assert_eq!(
                kinds(input).last(),
                Some(&Tok::Error(message.to_owned())),
                "{input:?}"
            );
        }
    }

    #[test]
    fn duration_parsers_follow_go_and_prometheus() {
        assert_eq!(parse_duration("2562047h47m16s854ms775us807ns"), Some(i64::MAX));
        assert_eq!(parse_duration("2562047h47m16s854ms775us808ns"), None);
        assert_eq!(
            parse_duration("1m1h"),
            Some(3_660_000_000_000),
            "Go accepts any order"
        );
        assert_eq!(parse_duration("1.5d"), None, "fractions only in Go's units");
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration(".s"), None);
    }
}
