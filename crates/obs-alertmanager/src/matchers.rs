//! Label matchers: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`.
//!
//! Parsing follows Alertmanager's default ("fallback") mode since 0.27: an input is read by the
//! classic parser (`pkg/labels/parse.go`) and by the UTF-8 parser (`matcher/parse`); when the
//! classic parser accepts it, its result wins (upstream keeps the classic result on
//! disagreement, with a warning), otherwise the UTF-8 parser's result is used, and when both
//! refuse it the classic error is reported. So `foo=bar`, `{foo="bar", baz!~"x.*"}`,
//! `foo="a\"b"` and quoted UTF-8 names such as `{"service name"="api"}` all parse.
//!
//! Regular expressions use Go's RE2 syntax and are anchored at both ends.

use std::fmt;

use crate::Error;
use crate::goregex::GoRegex;
use crate::labels::{LabelSet, go_quote};

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchType {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regexp,
    /// `!~`
    NotRegexp,
}

impl MatchType {
    /// The operator.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regexp => "=~",
            MatchType::NotRegexp => "!~",
        }
    }

    /// The type for the API v2 flags `isRegex` / `isEqual`.
    pub fn from_flags(is_regex: bool, is_equal: bool) -> MatchType {
        match (is_regex, is_equal) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::Regexp,
            (true, false) => MatchType::NotRegexp,
        }
    }

    /// Whether the value is a regular expression.
    pub fn is_regex(self) -> bool {
        matches!(self, MatchType::Regexp | MatchType::NotRegexp)
    }

    /// Whether this is a positive match (`=`, `=~`).
    pub fn is_equal(self) -> bool {
        matches!(self, MatchType::Equal | MatchType::Regexp)
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One label matcher. A missing label has the value `""`. Two matchers are equal when type,
/// name and value are.
#[derive(Clone)]
pub struct Matcher {
    /// The comparison.
    pub match_type: MatchType,
    /// The label name (any UTF-8 when parsed by the UTF-8 parser).
    pub name: String,
    /// The value or pattern.
    pub value: String,
    regex: Option<GoRegex>,
}

impl Matcher {
    /// Builds a matcher, compiling the pattern for the regex types.
    pub fn new(
        match_type: MatchType,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, Error> {
        let value = value.into();
        let regex = if match_type.is_regex() {
            Some(GoRegex::new(&value).map_err(Error::Matcher)?)
        } else {
            None
        };
        Ok(Matcher {
            match_type,
            name: name.into(),
            value,
            regex,
        })
    }

    /// Whether a label value (`""` when absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match (self.match_type, &self.regex) {
            (MatchType::Equal, _) => value == self.value,
            (MatchType::NotEqual, _) => value != self.value,
            (MatchType::Regexp, Some(regex)) => regex.is_match(value),
            (MatchType::NotRegexp, Some(regex)) => !regex.is_match(value),
            (MatchType::Regexp | MatchType::NotRegexp, None) => false,
        }
    }

    /// Whether the matcher accepts a label set.
    pub fn matches_labels(&self, labels: &LabelSet) -> bool {
        self.matches(labels.get(&self.name))
    }

    /// Whether the matcher matches the empty value, as the silence validation asks it
    /// (`matchesEmpty`: only `=` and `=~` count; a negative matcher never does).
    pub fn matches_empty(&self) -> bool {
        match self.match_type {
            MatchType::Equal => self.value.is_empty(),
            MatchType::Regexp => self.matches(""),
            MatchType::NotEqual | MatchType::NotRegexp => false,
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.match_type == other.match_type && self.name == other.name && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({self})")
    }
}

impl fmt::Display for Matcher {
    /// Alertmanager's canonical form: `name="value"` with `\\`, `\n` and `\"` escaped in the
    /// value; a name holding a reserved character is quoted too, both halves Go-quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // An empty name is quoted too (upstream prints `="x"`, which does not parse back).
        if self.name.is_empty() || self.name.chars().any(is_reserved) {
            write!(
                f,
                "{}{}{}",
                go_quote(&self.name),
                self.match_type,
                go_quote(&self.value)
            )
        } else {
            write!(
                f,
                "{}{}\"{}\"",
                self.name,
                self.match_type,
                open_metrics_escape(&self.value)
            )
        }
    }
}

/// A conjunction of matchers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Whether every matcher accepts the label set (true for no matchers).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.0.iter().all(|matcher| matcher.matches_labels(labels))
    }

    /// Sorts as Alertmanager's `labels.Matchers` sorts: by name, then value, then type.
    pub fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            a.name
                .cmp(&b.name)
                .then_with(|| a.value.cmp(&b.value))
                .then_with(|| a.match_type.cmp(&b.match_type))
        });
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The matchers.
    pub fn iter(&self) -> impl Iterator<Item = &Matcher> {
        self.0.iter()
    }
}

impl fmt::Display for Matchers {
    /// `{a="1",b=~"x"}`, as Alertmanager's `Matchers.String()` (used in route keys).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (index, matcher) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{matcher}")?;
        }
        f.write_str("}")
    }
}

/// Parses a list of matchers, `{a="b", c=~"d"}` or `a=b,c=~d` (braces optional), as
/// Alertmanager's default mode does for configuration `matchers` lines and `amtool`.
///
/// This is the entry point for fuzzing: it never panics, whatever the input.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, Error> {
    match parse_matchers_classic(input) {
        Ok(matchers) => Ok(matchers),
        Err(classic_err) => parse_matchers_utf8(input).map_err(|_| classic_err),
    }
}

/// Parses exactly one matcher, as the API's `filter` parameter does (no braces allowed).
pub fn parse_matcher(input: &str) -> Result<Matcher, Error> {
    if input.starts_with('{') || input.ends_with('}') {
        return Err(Error::Matcher(format!("unexpected open or close brace: {input}")));
    }
    match parse_matcher_classic(input) {
        Ok(matcher) => Ok(matcher),
        Err(classic_err) => {
            let mut matchers = parse_matchers_utf8(input).map_err(|_| classic_err)?;
            match matchers.len() {
                1 => Ok(matchers.remove(0)),
                0 => Err(Error::Matcher("no matchers".to_owned())),
                count => Err(Error::Matcher(format!("expected 1 matcher, found {count}"))),
            }
        }
    }
}

/// Go RE2's `\s`: the classic parser's whitespace.
fn is_go_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// The characters the UTF-8 parser does not allow unquoted.
fn is_reserved(c: char) -> bool {
    c.is_whitespace() || "{}!=~,\\\"'`".contains(c)
}

/// OpenMetrics escaping: `\` → `\\`, newline → `\n`, `"` → `\"`.
fn open_metrics_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// The classic list parser (`labels.ParseMatchers`): strip one `{` and one `}`, split on
/// commas outside double quotes, parse each piece.
pub fn parse_matchers_classic(input: &str) -> Result<Vec<Matcher>, Error> {
    let trimmed = input.strip_prefix('{').unwrap_or(input);
    let trimmed = trimmed.strip_suffix('}').unwrap_or(trimmed);
    let mut tokens = Vec::new();
    let mut token = String::new();
    let (mut inside_quotes, mut escaped) = (false, false);
    for c in trimmed.chars() {
        match c {
            ',' if !inside_quotes => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            // A comma inside quotes leaves the escape state as it is, as upstream's switch.
            ',' => {}
            '"' => {
                if escaped {
                    escaped = false;
                } else {
                    inside_quotes = !inside_quotes;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    if !token.trim().is_empty() {
        tokens.push(token.trim().to_owned());
    }
    tokens.iter().map(|token| parse_matcher_classic(token)).collect()
}

/// The classic single-matcher parser (`labels.ParseMatcher`): a legacy label name, an
/// operator, and a value that may be double-quoted, with `\"`, `\n` and `\\` escapes.
pub fn parse_matcher_classic(input: &str) -> Result<Matcher, Error> {
    let bad_format = || Error::Matcher(format!("bad matcher format: {input}"));
    let rest = input.trim_start_matches(is_go_space);
    let name_len = rest
        .char_indices()
        .take_while(|(index, c)| {
            c.is_ascii_alphabetic() || *c == '_' || *c == ':' || (*index > 0 && c.is_ascii_digit())
        })
        .count();
    if name_len == 0 {
        return Err(bad_format());
    }
    let (name, rest) = rest.split_at(name_len);
    let rest = rest.trim_start_matches(is_go_space);
    let (match_type, rest) = if let Some(rest) = rest.strip_prefix("=~") {
        (MatchType::Regexp, rest)
    } else if let Some(rest) = rest.strip_prefix('=') {
        (MatchType::Equal, rest)
    } else if let Some(rest) = rest.strip_prefix("!=") {
        (MatchType::NotEqual, rest)
    } else if let Some(rest) = rest.strip_prefix("!~") {
        (MatchType::NotRegexp, rest)
    } else {
        return Err(bad_format());
    };
    let raw_value = rest.trim_matches(is_go_space);
    let unescaped_quote = || {
        Error::Matcher(format!(
            "matcher value contains unescaped double quote: {raw_value}"
        ))
    };
    let (body, mut expect_trailing_quote) = match raw_value.strip_prefix('"') {
        Some(body) => (body, true),
        None => (raw_value, false),
    };
    let mut value = String::with_capacity(body.len());
    let mut escaped = false;
    for (index, c) in body.char_indices() {
        if escaped {
            escaped = false;
            match c {
                'n' => value.push('\n'),
                '"' | '\\' => value.push(c),
                other => {
                    value.push('\\');
                    value.push(other);
                }
            }
            continue;
        }
        match c {
            '\\' if index + 1 < body.len() => escaped = true,
            '\\' => value.push('\\'),
            '"' => {
                if !expect_trailing_quote || index + 1 < body.len() {
                    return Err(unescaped_quote());
                }
                expect_trailing_quote = false;
            }
            other => value.push(other),
        }
    }
    if expect_trailing_quote {
        return Err(unescaped_quote());
    }
    Matcher::new(match_type, name, value)
}

#[derive(Debug, Clone, PartialEq)]
enum TokenKind {
    OpenBrace,
    CloseBrace,
    Comma,
    Equals,
    NotEquals,
    Matches,
    NotMatches,
    Quoted,
    Unquoted,
    Eof,
}

#[derive(Debug, Clone)]
struct Token<'a> {
    kind: TokenKind,
    text: &'a str,
    column_start: usize,
    column_end: usize,
}

/// The UTF-8 matcher lexer (`matcher/parse/lexer.go`).
struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    column: usize,
    error: Option<String>,
}

impl<'a> Lexer<'a> {
    fn peek_char(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        self.column += 1;
        Some(c)
    }

    fn scan(&mut self) -> Result<Token<'a>, String> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        let result = self.scan_inner();
        if let Err(err) = &result {
            self.error = Some(err.clone());
        }
        result
    }

    fn peek(&mut self) -> Result<Token<'a>, String> {
        let (pos, column) = (self.pos, self.column);
        let result = self.scan();
        self.pos = pos;
        self.column = column;
        result
    }

    fn scan_inner(&mut self) -> Result<Token<'a>, String> {
        while let Some(c) = self.peek_char() {
            if c.is_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
        let (start, column_start) = (self.pos, self.column);
        let Some(c) = self.bump() else {
            return Ok(Token {
                kind: TokenKind::Eof,
                text: "",
                column_start,
                column_end: column_start,
            });
        };
        let kind = match c {
            '{' => TokenKind::OpenBrace,
            '}' => TokenKind::CloseBrace,
            ',' => TokenKind::Comma,
            '=' => {
                if self.peek_char() == Some('~') {
                    self.bump();
                    TokenKind::Matches
                } else {
                    TokenKind::Equals
                }
            }
            '!' => match self.peek_char() {
                Some('=') => {
                    self.bump();
                    TokenKind::NotEquals
                }
                Some('~') => {
                    self.bump();
                    TokenKind::NotMatches
                }
                _ => {
                    return Err(format!(
                        "{column_start}:{}: {}: expected one of '=~'",
                        self.column, c
                    ));
                }
            },
            '"' => {
                let mut escaped = false;
                let mut closed = false;
                while let Some(next) = self.bump() {
                    if escaped {
                        escaped = false;
                    } else if next == '\\' {
                        escaped = true;
                    } else if next == '"' {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(format!(
                        "{column_start}:{}: {}: missing end \"",
                        self.column,
                        &self.input[start..self.pos]
                    ));
                }
                TokenKind::Quoted
            }
            c if !is_reserved(c) => {
                while let Some(next) = self.peek_char() {
                    if is_reserved(next) {
                        break;
                    }
                    self.bump();
                }
                TokenKind::Unquoted
            }
            other => return Err(format!("{column_start}:{}: {other}: invalid input", self.column)),
        };
        Ok(Token {
            kind,
            text: &self.input[start..self.pos],
            column_start,
            column_end: self.column,
        })
    }
}

/// The UTF-8 matcher parser (`matcher/parse/parse.go`): optional braces, names and values
/// either double-quoted (Go string literals) or unquoted runs of non-reserved characters.
pub fn parse_matchers_utf8(input: &str) -> Result<Vec<Matcher>, Error> {
    let mut lexer = Lexer {
        input,
        pos: 0,
        column: 0,
        error: None,
    };
    parse_utf8(&mut lexer).map_err(Error::Matcher)
}

fn parse_utf8(lexer: &mut Lexer<'_>) -> Result<Vec<Matcher>, String> {
    let mut matchers = Vec::new();
    let first = lexer.peek()?;
    if first.kind == TokenKind::Eof {
        return Ok(matchers);
    }
    let has_open_brace = first.kind == TokenKind::OpenBrace;
    if has_open_brace {
        lexer.scan()?;
    }
    let mut next = lexer.peek()?;
    if matches!(next.kind, TokenKind::Quoted | TokenKind::Unquoted) {
        loop {
            matchers.push(parse_one_utf8(lexer)?);
            next = lexer.peek()?;
            match next.kind {
                TokenKind::Comma => {
                    lexer.scan()?;
                    next = lexer.peek()?;
                    match next.kind {
                        TokenKind::Quoted | TokenKind::Unquoted => continue,
                        TokenKind::CloseBrace | TokenKind::Eof => break,
                        _ => {
                            return Err(format!(
                                "{}:{}: unexpected {}: expected a matcher or close brace after comma",
                                next.column_start, next.column_end, next.text
                            ));
                        }
                    }
                }
                TokenKind::CloseBrace | TokenKind::Eof => break,
                _ => {
                    return Err(format!(
                        "{}:{}: unexpected {}: expected a comma or close brace",
                        next.column_start, next.column_end, next.text
                    ));
                }
            }
        }
    } else if !matches!(next.kind, TokenKind::CloseBrace | TokenKind::Eof) {
        return Err(format!(
            "{}:{}: unexpected {}: expected label name",
            next.column_start, next.column_end, next.text
        ));
    }
    // Close brace: required after an open brace, refused without one.
    let close = lexer.peek()?;
    match (has_open_brace, close.kind == TokenKind::CloseBrace) {
        (true, true) | (false, false) => {}
        (true, false) => return Err(format!("0:{}: expected close brace", close.column_end)),
        (false, true) => return Err(format!("0:{}: }}: expected opening brace", close.column_end)),
    }
    if has_open_brace {
        lexer.scan()?;
    }
    let end = lexer.scan()?;
    if end.kind != TokenKind::Eof {
        return Err(format!(
            "{}:{}: {}: expected end of input",
            end.column_start, end.column_end, end.text
        ));
    }
    Ok(matchers)
}

fn parse_one_utf8(lexer: &mut Lexer<'_>) -> Result<Matcher, String> {
    let name_token = lexer.scan()?;
    let name = unquote_token(&name_token)?;
    let op = lexer.scan()?;
    let match_type = match op.kind {
        TokenKind::Equals => MatchType::Equal,
        TokenKind::NotEquals => MatchType::NotEqual,
        TokenKind::Matches => MatchType::Regexp,
        TokenKind::NotMatches => MatchType::NotRegexp,
        TokenKind::Eof => {
            return Err("end of input: expected an operator such as '=', '!=', '=~' or '!~'".to_owned());
        }
        _ => {
            return Err(format!(
                "{}:{}: unexpected {}: expected an operator such as '=', '!=', '=~' or '!~'",
                op.column_start, op.column_end, op.text
            ));
        }
    };
    let value_token = lexer.scan()?;
    if !matches!(value_token.kind, TokenKind::Quoted | TokenKind::Unquoted) {
        if value_token.kind == TokenKind::Eof {
            return Err("end of input: expected label value".to_owned());
        }
        return Err(format!(
            "{}:{}: unexpected {}: expected label value",
            value_token.column_start, value_token.column_end, value_token.text
        ));
    }
    let value = unquote_token(&value_token)?;
    Matcher::new(match_type, name, value).map_err(|err| format!("failed to create matcher: {err}"))
}

fn unquote_token(token: &Token<'_>) -> Result<String, String> {
    if token.kind != TokenKind::Quoted {
        return Ok(token.text.to_owned());
    }
    go_unquote(token.text).ok_or_else(|| {
        format!(
            "{}:{}: {}: invalid input",
            token.column_start, token.column_end, token.text
        )
    })
}

/// Go's `strconv.Unquote` for a double-quoted literal, requiring valid UTF-8 in the result.
pub(crate) fn go_unquote(text: &str) -> Option<String> {
    let body = text.strip_prefix('"')?.strip_suffix('"')?;
    if body.contains('\n') {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => {
                let escape = chars.next()?;
                match escape {
                    'a' => out.push(0x07),
                    'b' => out.push(0x08),
                    'f' => out.push(0x0c),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(0x0b),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    'x' => {
                        let digits: String = [chars.next()?, chars.next()?].iter().collect();
                        out.push(u8::from_str_radix(&digits, 16).ok()?);
                    }
                    '0'..='7' => {
                        let digits: String = [escape, chars.next()?, chars.next()?].iter().collect();
                        let value = u32::from_str_radix(&digits, 8).ok()?;
                        out.push(u8::try_from(value).ok()?);
                    }
                    'u' | 'U' => {
                        let count = if escape == 'u' { 4 } else { 8 };
                        let mut digits = String::with_capacity(count);
                        for _ in 0..count {
                            digits.push(chars.next()?);
                        }
                        let rune = char::from_u32(u32::from_str_radix(&digits, 16).ok()?)?;
                        let mut buffer = [0u8; 4];
                        out.extend_from_slice(rune.encode_utf8(&mut buffer).as_bytes());
                    }
                    _ => return None,
                }
            }
            c => {
                let mut buffer = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(matchers: &[Matcher]) -> Vec<String> {
        matchers.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn parses_the_forms_alertmanager_documents() {
        // Examples from pkg/labels/parse.go and docs/configuration.md.
        let cases: &[(&str, &[&str])] = &[
            ("foo=bar", &[r#"foo="bar""#]),
            (r#"foo="bar""#, &[r#"foo="bar""#]),
            (
                r#"{foo = "bar", dings != "bums", }"#,
                &[r#"foo="bar""#, r#"dings!="bums""#],
            ),
            ("foo=bar,dings!=bums", &[r#"foo="bar""#, r#"dings!="bums""#]),
            (
                r#"{quote="She said: \"Hi, ladies! That's gender-neutral…\""}"#,
                &[r#"quote="She said: \"Hi, ladies! That's gender-neutral…\"""#],
            ),
            (r#"statuscode=~"5..""#, &[r#"statuscode=~"5..""#]),
            (r#"{foo="bar",baz!~"x.*"}"#, &[r#"foo="bar""#, r#"baz!~"x.*""#]),
            (r#"foo="a\nb\\c""#, &[r#"foo="a\nb\\c""#]),
            ("", &[]),
            ("{}", &[]),
            (r#"{"service name"="api"}"#, &[r#""service name"="api""#]),
            (r#"{"foo"="bar"}"#, &[r#"foo="bar""#]),
            ("{föö=bär}", &[r#"föö="bär""#]),
        ];
        for (input, want) in cases {
            let got = parse_matchers(input).unwrap_or_else(|err| panic!("{input}: {err}"));
            assert_eq!(strings(&got), *want, "{input}");
        }
    }

    #[test]
    fn classic_result_wins_over_the_utf8_one() {
        // `\t` is a spurious escape for the classic parser (kept literally) and a tab for the
        // UTF-8 parser; Alertmanager keeps the classic value.
        let got = parse_matchers(r#"foo="a\tb""#).unwrap();
        assert_eq!(got[0].value, "a\\tb");
        let utf8 = parse_matchers_utf8(r#"foo="a\tb""#).unwrap();
        assert_eq!(utf8[0].value, "a\tb");
    }

    #[test]
    fn refuses_malformed_input_with_the_classic_message() {
        for (input, message) in [
            ("foo", "bad matcher format: foo"),
            (
                r#"foo="bar"#,
                "matcher value contains unescaped double quote: \"bar",
            ),
            (
                r#"foo=ba"r"#,
                "matcher value contains unescaped double quote: ba\"r",
            ),
            ("a=b,,c=d", "bad matcher format: "),
        ] {
            let err = parse_matchers(input).unwrap_err();
            assert_eq!(err.to_string(), message, "{input}");
        }
        let err = parse_matchers("foo=~(").unwrap_err().to_string();
        assert!(err.starts_with("error parsing regexp \"(\""), "{err}");
    }

    #[test]
    fn utf8_parser_rejects_what_upstream_rejects() {
        for input in [
            "{foo=bar",
            "foo=bar}",
            "{foo=bar,,}",
            "foo",
            "foo=",
            "{foo=\"bar}",
            "foo!bar",
            "=bar",
        ] {
            assert!(parse_matchers_utf8(input).is_err(), "{input}");
        }
        assert_eq!(parse_matchers_utf8("{foo=bar,}").unwrap().len(), 1);
        assert_eq!(parse_matchers_utf8("foo=bar,").unwrap().len(), 1);
    }

    #[test]
    fn single_matcher_parser_refuses_braces_and_lists() {
        assert!(parse_matcher("{foo=bar}").is_err());
        assert_eq!(parse_matcher("foo=~ba+r ").unwrap().to_string(), r#"foo=~"ba+r""#);
        assert_eq!(parse_matcher(r#""a b"="c""#).unwrap().name, "a b");
    }

    #[test]
    fn regexes_are_anchored_and_missing_labels_are_empty() {
        let matcher = parse_matcher("job=~node|api").unwrap();
        assert!(matcher.matches("api") && !matcher.matches("apix"));
        let absent = parse_matcher(r#"team!="""#).unwrap();
        assert!(!absent.matches_labels(&LabelSet::new()));
        assert!(parse_matcher(r#"team=~".*""#).unwrap().matches_empty());
        assert!(!parse_matcher(r#"team!~".+""#).unwrap().matches_empty());
    }

    #[test]
    fn sort_order_is_name_value_type() {
        let mut matchers = Matchers(parse_matchers("b=1,a!=2,a=2,a=1").unwrap());
        matchers.sort();
        assert_eq!(matchers.to_string(), r#"{a="1",a="2",a!="2",b="1"}"#);
    }

    #[test]
    fn printed_matchers_parse_back() {
        for input in [
            r#"a="x\\y\"z\nw""#,
            r#"{"a b"="c\td"}"#,
            r#"{""="x"}"#,
            "föö=bär",
            r#"a=~"\\d+\"""#,
            r#"{"x,y"!~"1|2", z!=""}"#,
        ] {
            let parsed = parse_matchers(input).unwrap_or_else(|err| panic!("{input}: {err}"));
            let printed = Matchers(parsed.clone()).to_string();
            assert_eq!(parse_matchers(&printed).unwrap(), parsed, "{input} -> {printed}");
        }
    }

    #[test]
    fn go_unquote_handles_go_escapes() {
        assert_eq!(
            go_unquote(r#""a\x41\101\u00e9\U0001F600""#).as_deref(),
            Some("aAAé😀")
        );
        assert_eq!(go_unquote(r#""\'""#), None);
        assert_eq!(go_unquote(r#""\xff""#), None, "invalid UTF-8 is refused");
        assert_eq!(go_unquote("\"a\nb\""), None);
    }
}
