//! The Prometheus text format 0.0.4 and OpenMetrics 1.0 text format, parsed as Prometheus 2.42
//! parses them (`model/textparse/promparse.go`, `openmetricsparse.go` and their lexers).
//!
//! [`parse`] reads a whole scrape body into [`ScrapedSample`]s and [`FamilyMetadata`];
//! [`parse_each`] hands each sample to a closure as soon as it is read, reusing one label vector
//! for all of them (the scrape loop's way). Names and label values are borrowed from the body; a
//! label value is copied only when it has an escape.
//! The first error fails the whole scrape, as in Prometheus, and its message is Prometheus' own
//! (`expected equal, got "INVALID"`), with the line number added.
//!
//! ```
//! use obs_scrape::parse::{parse, Format};
//!
//! let parsed = parse("# TYPE up gauge\nup{job=\"node\"} 1\n", Format::PrometheusText).unwrap();
//! assert_eq!(parsed.samples[0].name, "up");
//! assert_eq!(parsed.samples[0].labels[0].1, "node");
//! ```
//!
//! # What is accepted
//!
//! The grammar is the one of Prometheus' lexers, quirks included, so that a body Prometheus
//! accepts is accepted here and one it refuses is refused:
//!
//! - **Text format**: tokens are separated by any run of spaces and tabs, and need none where
//!   the lexer does not (`foo{a="b"}1` is `foo{a="b"} 1`). Blank lines and `#` comments are
//!   skipped; `# HELP` and `# TYPE` need a space or tab after the keyword. A label set may end
//!   with a comma, and its pairs may even lack commas (`{a="1"b="2"}`). A label value may
//!   contain a raw line feed. A timestamp is an integer of milliseconds. A line ending in
//!   `\r\n` fails (`parsing "1\r": invalid syntax`), as in Prometheus.
//! - **OpenMetrics**: exactly one space between tokens, no blank lines, no comments besides
//!   `HELP`, `TYPE`, `UNIT` and the mandatory final `# EOF` (nothing may follow it but one line
//!   feed). No trailing comma in label sets. Timestamps are seconds, converted as Prometheus
//!   does with `int64(ts * 1000)`: truncation toward zero, so `1.001` becomes 1000 ms.
//!   Exemplars (` # {labels} value [timestamp]`) are allowed only on `_total` and `_bucket`
//!   samples, are checked and dropped. `_created`, `_gcount`, `_gsum` and `_info` samples are
//!   ordinary series, as in Prometheus 2.42.
//! - **Escapes**: in label values `\\`, `\"` and `\n`; any other escaped character is kept
//!   with its backslash (`\t` stays two characters); a backslash before a line feed or the end
//!   of the body is an error. Help text takes `\\` and `\n` (text format) or the label-value
//!   escapes (OpenMetrics).
//! - **Values**: Go's `strconv.ParseFloat` syntax without hexadecimal floats and underscores
//!   (`NaN`, `+Inf`, `-inf`, `Infinity`, `1e-3`, `.5`, `5.`); an overflow such as `1e400` is an
//!   error (`value out of range`), an underflow is zero.
//! - **Duplicate label names** in one sample, including a `__name__` label, fail the scrape as
//!   the TSDB's `label name "a" is not unique` does in Prometheus.
//! - **NUL bytes** are read as Prometheus' lexer reads them: skipped inside label values, help
//!   text and comments (so `# TY\0PE` is a `TYPE` line and a backslash escapes the next byte
//!   that is not a NUL), and the end of the body where a text-format line or a `#` comment
//!   starts with one.
//!
//! This was checked against Prometheus 2.42's own parser on about 50,000 bodies (the fuzz
//! corpus and mutations of the tests' bodies): same samples, metadata and error message, except
//! for these deliberate differences:
//!
//! - A text-format timestamp may carry a sign (`-3982045`, as in the exposition-format
//!   document's own example); Prometheus' lexer takes digits only.
//! - Blanks before a sample's metric name are skipped, as the exposition-format document says;
//!   Prometheus 2.42 keeps them in the name and then fails the scrape for an invalid name (a
//!   bug later versions fixed).
//! - Duplicate label names are found while parsing, so the first error reported may be that one
//!   where Prometheus reports a later syntax error; the scrape fails either way.
//! - An OpenMetrics timestamp beyond the `i64` range saturates; Go's conversion gives
//!   `i64::MIN` on amd64.
//! - `Content-Type` parameters are not validated (Go's `mime` package falls back to the text
//!   format when they are malformed).
//! - Quoted UTF-8 names (`{"my.metric"}`, Prometheus 3) are refused with Prometheus' message
//!   followed by one that says they are not supported.
//!
//! # Throughput
//!
//! On one core of the development VM (AMD EPYC, load from other builds), for a 2.1 MB synthetic
//! node-exporter body of 34,476 samples: about 345 MB/s (5.7 million samples/s) in the text
//! format and 380 MB/s (6.2 million samples/s) in OpenMetrics, release build, measured with
//! `cargo test --release -p obs-scrape --test parse -- --ignored --nocapture`. About a fifth of
//! that time is allocating and freeing each sample's label vector, which [`parse_each`] does not
//! do.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use obs_core::series::MetricType;

/// Which format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    PrometheusText,
    /// The OpenMetrics 1.0 text format (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

impl Format {
    /// From a scrape response's Content-Type, as Prometheus decides:
    /// `application/openmetrics-text` (any case, any parameters) is OpenMetrics; anything else,
    /// including a missing header and `text/plain`, is the text format.
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        let Some(content_type) = content_type else {
            return Format::PrometheusText;
        };
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// One sample of a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapedSample<'a> {
    /// The series as written, from the metric name to the end of its label set: the scrape
    /// cache's key, as Prometheus keys its cache by these bytes.
    pub series: &'a str,
    /// The metric name (borrowed from the body).
    pub name: &'a str,
    /// Labels in the order written, values unescaped (borrowed unless they had escapes).
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    /// Where the sample is in the [`SeriesOrder`] it was parsed with, when its series was
    /// written exactly as the one expected there: its label set was then not read again, and
    /// `labels` is empty.
    pub position: Option<usize>,
    /// The value; NaN stays NaN, its payload is not kept.
    pub value: f64,
    /// Milliseconds since the epoch. OpenMetrics' float seconds are converted as Prometheus
    /// does: `int64(seconds * 1000)`, truncating toward zero.
    pub timestamp_ms: Option<i64>,
}

/// What the body says about a metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyMetadata {
    /// The family name as written after `HELP`, `TYPE` or `UNIT`.
    pub name: String,
    /// The type; `Unknown` when there is no `TYPE` line and for `untyped`.
    pub metric_type: MetricType,
    /// The help text, unescaped; empty when there is none.
    pub help: String,
    /// The unit (OpenMetrics only); empty when there is none.
    pub unit: String,
}

/// A parsed body: its samples in order, and the metadata of each family in the order the
/// families first appear (a later line for the same family overrides a field).
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    /// The samples, in body order.
    pub samples: Vec<ScrapedSample<'a>>,
    /// One entry per family named in a `HELP`, `TYPE` or `UNIT` line.
    pub metadata: Vec<FamilyMetadata>,
}

/// Why a body was refused: the first error, at a 1-based line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (line {line})")]
pub struct ParseError {
    /// The 1-based line of the error.
    pub line: usize,
    /// What was expected and what was found, in Prometheus' words.
    pub message: String,
}

/// Parses a whole body. An error anywhere fails the whole scrape, as in Prometheus; the error
/// says the line and what was expected.
pub fn parse(body: &str, format: Format) -> Result<Parsed<'_>, ParseError> {
    // Every sample takes a line of at least four bytes (`a 1\n`), so this bounds the sample
    // count without over-allocating for a body of blank lines.
    let line_feeds = body.bytes().filter(|&byte| byte == b'\n').count();
    let mut samples = Vec::with_capacity((line_feeds + 1).min(body.len() / 4 + 1));
    let metadata = parse_each(body, format, |sample| samples.push(sample.clone()))?;
    Ok(Parsed { samples, metadata })
}

/// Parses a whole body, handing each sample to `on_sample` as soon as it is read, and returns
/// the families' metadata. The sample passed is only borrowed: its label vector is reused for
/// the next sample, so reading a body allocates nothing per sample (but for label values with
/// escapes).
///
/// An error anywhere fails the whole body, with the same error as [`parse`]; the samples
/// handed over before it was found must then be discarded.
pub fn parse_each<'a>(
    body: &'a str,
    format: Format,
    mut on_sample: impl FnMut(&ScrapedSample<'a>),
) -> Result<Vec<FamilyMetadata>, ParseError> {
    parse_each_ordered(body, format, &NO_ORDER, |sample| {
        on_sample(sample);
        None
    })
}

/// An order that expects nothing.
static NO_ORDER: SeriesOrder = SeriesOrder::new();

/// The series of an earlier body, as written and in order. Targets write their series in the
/// same order scrape after scrape, so a parser given the previous body's order compares each
/// sample's bytes with the series expected next and, when they are the same, skips reading its
/// label set: the text parsed before, and the caller knows what it became.
#[derive(Debug, Clone, Default)]
pub struct SeriesOrder {
    /// The format of the body the texts come from: a text parses alike only in its format.
    format: Option<Format>,
    /// The series texts (shared with the caller's cache, which keys its entries by them);
    /// `None` for one never expected.
    series: Vec<Option<Arc<str>>>,
}

impl SeriesOrder {
    /// An empty order: nothing is expected.
    pub const fn new() -> SeriesOrder {
        SeriesOrder {
            format: None,
            series: Vec::new(),
        }
    }

    /// Appends the next series. A text holding a line feed (a quoted value over lines) is
    /// never expected, so that skipping a text never has to count lines.
    pub fn push(&mut self, series: Arc<str>) {
        self.series
            .push(Some(series).filter(|series| !series.contains('\n')));
    }

    /// The series at `position`, if there is one and it may be expected.
    pub fn get(&self, position: usize) -> Option<&Arc<str>> {
        self.series.get(position)?.as_ref()
    }

    /// The number of series.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Forgets every series, keeping the memory, to take those of a body in `format`.
    pub fn clear(&mut self, format: Format) {
        self.format = Some(format);
        self.series.clear();
    }
}

/// [`parse_each`] given the series order of an earlier body: a sample written as the series
/// `order` expects next is handed over with its `position` and without its labels. The
/// parser expects the series after it next; `on_sample` may return another position to expect
/// next (where the cache saw a series it found by other means), for a body whose order
/// changed.
pub fn parse_each_ordered<'a>(
    body: &'a str,
    format: Format,
    order: &SeriesOrder,
    mut on_sample: impl FnMut(&ScrapedSample<'a>) -> Option<usize>,
) -> Result<Vec<FamilyMetadata>, ParseError> {
    let order = if order.format == Some(format) {
        order
    } else {
        &NO_ORDER
    };
    let mut parser = Parser::new(body, order);
    match format {
        Format::PrometheusText => parser.parse_text(&mut on_sample)?,
        Format::OpenMetrics => parser.parse_openmetrics(&mut on_sample)?,
    }
    Ok(parser.metadata)
}

/// The label name Prometheus stores the metric name under.
const METRIC_NAME_LABEL: &str = "__name__";

/// Above this many labels, duplicates are found by sorting instead of comparing every pair.
const QUADRATIC_DUPLICATE_CHECK_MAX: usize = 16;

/// A lexer token, named as Prometheus names it in its error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Invalid,
    Eof,
    Linebreak,
    BraceOpen,
    BraceClose,
    LabelName,
    LabelValue,
    Comma,
    Equal,
    Timestamp,
    Value,
}

impl Token {
    fn name(self) -> &'static str {
        match self {
            Token::Invalid => "INVALID",
            Token::Eof => "EOF",
            Token::Linebreak => "LINEBREAK",
            Token::BraceOpen => "BOPEN",
            Token::BraceClose => "BCLOSE",
            Token::LabelName => "LNAME",
            Token::LabelValue => "LVALUE",
            Token::Comma => "COMMA",
            Token::Equal => "EQUAL",
            Token::Timestamp => "TIMESTAMP",
            Token::Value => "VALUE",
        }
    }
}

/// `expected X, got "TOKEN"`, as Prometheus' `parseError`.
fn expected(what: &str, got: Token) -> String {
    format!("{what}, got \"{}\"", got.name())
}

/// Where a quoted label value is, which decides the characters it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuotedIn {
    /// A text-format label set: raw line feeds allowed.
    TextLabels,
    /// An OpenMetrics label set: no raw line feed.
    OpenMetricsLabels,
    /// An OpenMetrics exemplar: no raw line feed and no NUL (Prometheus' exemplar lexer state
    /// does not skip NULs).
    Exemplar,
}

/// How far a text-format comment line reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CommentEnd {
    /// To the end of its line.
    Line,
    /// To the end of the body.
    Body,
}

/// Which metadata line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetadataKind {
    Help,
    Type,
    Unit,
}

impl MetadataKind {
    fn keyword(self) -> &'static str {
        match self {
            MetadataKind::Help => "HELP",
            MetadataKind::Type => "TYPE",
            MetadataKind::Unit => "UNIT",
        }
    }
}

/// Character classes, one bit each, looked up per byte.
const METRIC_NAME_START: u8 = 1;
const METRIC_NAME_CHAR: u8 = 2;
const LABEL_NAME_START: u8 = 4;
const LABEL_NAME_CHAR: u8 = 8;
/// Bytes that end a text-format value token: NUL, tab, line feed, space, `{`.
const TEXT_VALUE_END: u8 = 16;
/// Bytes that end an OpenMetrics value or timestamp token: NUL, line feed, space.
const OPENMETRICS_VALUE_END: u8 = 32;

const CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let c = byte as u8;
        let letter = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        let mut class = 0;
        if letter || c == b':' {
            class |= METRIC_NAME_START | METRIC_NAME_CHAR;
        }
        if digit {
            class |= METRIC_NAME_CHAR | LABEL_NAME_CHAR;
        }
        if letter {
            class |= LABEL_NAME_START | LABEL_NAME_CHAR;
        }
        if matches!(c, 0 | b'\t' | b'\n' | b' ' | b'{') {
            class |= TEXT_VALUE_END;
        }
        if matches!(c, 0 | b'\n' | b' ') {
            class |= OPENMETRICS_VALUE_END;
        }
        classes[byte] = class;
        byte += 1;
    }
    classes
};

fn has_class(byte: u8, class: u8) -> bool {
    CLASSES[usize::from(byte)] & class != 0
}

/// Whether `name` is a valid metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| has_class(first, METRIC_NAME_START))
        && bytes.all(|byte| has_class(byte, METRIC_NAME_CHAR))
}

/// Whether `name` is a valid label name, `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| has_class(first, LABEL_NAME_START))
        && bytes.all(|byte| has_class(byte, LABEL_NAME_CHAR))
}

struct Parser<'a, 'o> {
    body: &'a str,
    bytes: &'a [u8],
    /// The next byte to read.
    pos: usize,
    /// The 1-based line `pos` is on.
    line: usize,
    metadata: Vec<FamilyMetadata>,
    /// Where each family is in `metadata`.
    metadata_index: HashMap<&'a str, usize>,
    /// The sample being read: its label vector is reused from sample to sample.
    sample: ScrapedSample<'a>,
    /// The series of an earlier body, and the position in it of the series expected next.
    order: &'o SeriesOrder,
    cursor: usize,
}

impl<'a, 'o> Parser<'a, 'o> {
    fn new(body: &'a str, order: &'o SeriesOrder) -> Self {
        Parser {
            body,
            bytes: body.as_bytes(),
            pos: 0,
            line: 1,
            metadata: Vec::new(),
            metadata_index: HashMap::new(),
            sample: ScrapedSample {
                series: "",
                name: "",
                labels: Vec::new(),
                position: None,
                value: 0.0,
                timestamp_ms: None,
            },
            order,
            cursor: 0,
        }
    }

    /// When the sample at `pos` is written exactly as the series expected next: where that
    /// text ends. The bytes are the same, so they parse as they did before; a bare name must
    /// also end where the expected one ends, with no label set after it.
    fn expected_series(&self, openmetrics: bool) -> Option<usize> {
        let expected = self.order.get(self.cursor)?.as_bytes();
        let end = self.pos.checked_add(expected.len())?;
        if expected.is_empty() || self.bytes.get(self.pos..end)? != expected {
            return None;
        }
        if expected.last() != Some(&b'}') {
            let mut after = end;
            if !openmetrics {
                while matches!(self.byte_at(after), Some(b' ' | b'\t')) {
                    after += 1;
                }
            }
            if self
                .byte_at(end)
                .is_some_and(|byte| has_class(byte, METRIC_NAME_CHAR))
                || self.byte_at(after) == Some(b'{')
            {
                return None;
            }
        }
        Some(end)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn byte_at(&self, index: usize) -> Option<u8> {
        self.bytes.get(index).copied()
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            message: message.into(),
        }
    }

    /// The body between two token boundaries. Boundaries are always next to an ASCII
    /// delimiter or at an end, hence on character boundaries.
    fn text(&self, start: usize, end: usize) -> &'a str {
        let text = self.body.get(start..end);
        debug_assert!(
            text.is_some(),
            "token boundaries {start}..{end} are character boundaries"
        );
        text.unwrap_or_default()
    }

    /// The end of the run of bytes of `class` starting at `start`.
    fn scan_class(&self, start: usize, class: u8) -> usize {
        let mut end = start;
        while self.byte_at(end).is_some_and(|byte| has_class(byte, class)) {
            end += 1;
        }
        end
    }

    /// The end of the run of bytes not of `class` starting at `start`.
    fn scan_until_class(&self, start: usize, class: u8) -> usize {
        let mut end = start;
        while self.byte_at(end).is_some_and(|byte| !has_class(byte, class)) {
            end += 1;
        }
        end
    }

    /// The index of the next line feed at or after `start`, or the body's length.
    fn line_end(&self, start: usize) -> usize {
        let rest = self.bytes.get(start..).unwrap_or_default();
        rest.iter()
            .position(|&byte| byte == b'\n')
            .map_or(self.bytes.len(), |offset| start + offset)
    }

    /// Steps over the line feed at `pos`, if there is one.
    fn consume_line_feed(&mut self) {
        if self.peek() == Some(b'\n') {
            self.pos += 1;
            self.line += 1;
        }
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// The first index at or after `start` that is not a NUL.
    fn skip_nuls(&self, start: usize) -> usize {
        let mut index = start;
        while self.byte_at(index) == Some(0) {
            index += 1;
        }
        index
    }

    /// Matches `keyword` at `start` as Prometheus' lexer does in a comment, where it skips
    /// NULs after the first character. Returns how many bytes of `keyword` matched and the
    /// index after the last one matched; on a mismatch, the index of the byte that differs.
    fn match_skipping_nuls(&self, start: usize, keyword: &[u8]) -> (usize, usize) {
        let mut index = start;
        for (matched, &expected_byte) in keyword.iter().enumerate() {
            if matched > 0 {
                index = self.skip_nuls(index);
            }
            if self.byte_at(index) != Some(expected_byte) {
                return (matched, index);
            }
            index += 1;
        }
        (keyword.len(), index)
    }

    // ---------------------------------------------------------------------------------------
    // The text format.

    fn parse_text(
        &mut self,
        on_sample: &mut impl FnMut(&ScrapedSample<'a>) -> Option<usize>,
    ) -> Result<(), ParseError> {
        loop {
            self.skip_blanks();
            let Some(byte) = self.peek() else {
                return Ok(());
            };
            match byte {
                b'\n' => self.consume_line_feed(),
                // Prometheus' lexer reads a NUL where a token starts on a new line as the end.
                0 => return Ok(()),
                b'#' => {
                    if self.text_comment()? == CommentEnd::Body {
                        return Ok(());
                    }
                }
                _ if has_class(byte, METRIC_NAME_START) => self.text_sample(on_sample)?,
                b'{' if self.quoted_name_follows(self.pos + 1) => {
                    return Err(self.error(
                        "\"INVALID\" is not a valid start token: quoted UTF-8 metric names are not supported",
                    ));
                }
                _ => return Err(self.error("\"INVALID\" is not a valid start token")),
            }
        }
    }

    /// Whether a quoted name (Prometheus 3's UTF-8 names) starts at `start`, after blanks.
    fn quoted_name_follows(&self, start: usize) -> bool {
        let mut index = start;
        while matches!(self.byte_at(index), Some(b' ' | b'\t')) {
            index += 1;
        }
        self.byte_at(index) == Some(b'"')
    }

    /// A line starting with `#`: `# HELP`, `# TYPE` or a comment.
    ///
    /// A NUL ends the body, as Prometheus' lexer reads it, when it comes right after `#` and
    /// blanks, or anywhere in a comment whose `#` is not followed by a blank.
    fn text_comment(&mut self) -> Result<CommentEnd, ParseError> {
        let mut index = self.pos + 1;
        let line_end = self.line_end(self.pos);
        if matches!(self.byte_at(index), Some(b' ' | b'\t')) {
            while matches!(self.byte_at(index), Some(b' ' | b'\t')) {
                index += 1;
            }
            if self.byte_at(index) == Some(0) {
                return Ok(CommentEnd::Body);
            }
            for (keyword, kind) in [(b"HELP", MetadataKind::Help), (b"TYPE", MetadataKind::Type)] {
                let (matched, keyword_end) = self.match_skipping_nuls(index, keyword);
                let blank = self.skip_nuls(keyword_end);
                if matched == keyword.len() && matches!(self.byte_at(blank), Some(b' ' | b'\t')) {
                    self.pos = blank;
                    self.text_metadata(kind)?;
                    return Ok(CommentEnd::Line);
                }
            }
        } else if self
            .bytes
            .get(index..line_end)
            .is_some_and(|comment| comment.contains(&0))
        {
            return Ok(CommentEnd::Body);
        }
        self.pos = line_end;
        self.consume_line_feed();
        Ok(CommentEnd::Line)
    }

    /// The rest of a `# HELP` or `# TYPE` line, `pos` being just after the keyword.
    fn text_metadata(&mut self, kind: MetadataKind) -> Result<(), ParseError> {
        // The keyword's blanks are lexed in the comment state, which skips NULs.
        while matches!(self.peek(), Some(b' ' | b'\t' | 0)) {
            self.pos += 1;
        }
        let name_start = self.pos;
        if !self.peek().is_some_and(|byte| has_class(byte, METRIC_NAME_START)) {
            let message = format!("expected metric name after {}", kind.keyword());
            return Err(self.error(expected(&message, Token::Invalid)));
        }
        let name_end = self.scan_class(name_start, METRIC_NAME_CHAR);
        let name = self.text(name_start, name_end);
        if self.byte_at(name_end) == Some(0) {
            // The lexer reads an empty text, then the NUL as the end of the body.
            if kind == MetadataKind::Type {
                return Err(self.error("invalid metric type \"\""));
            }
            return Err(self.error(expected("linebreak expected after metadata", Token::Eof)));
        }
        let line_end = self.line_end(name_end);
        let rest = self.text(name_end, line_end);
        // Prometheus' lexer reads the rest of the line as one token, unless it is all blanks,
        // and drops the token's first character (normally the separating blank).
        let text = if rest.bytes().all(|byte| matches!(byte, b' ' | b'\t' | 0)) {
            ""
        } else {
            match rest.get(1..) {
                Some(text) => text,
                None if kind == MetadataKind::Help => {
                    return Err(self.error("help text is not a valid utf8 string"));
                }
                None => {
                    let text = rest.as_bytes().get(1..).unwrap_or_default();
                    return Err(self.error(format!("invalid metric type {}", go_quote_bytes(text))));
                }
            }
        };
        self.record_metadata(kind, name, text, Format::PrometheusText)?;
        self.pos = line_end;
        self.consume_line_feed();
        Ok(())
    }

    fn text_sample(
        &mut self,
        on_sample: &mut impl FnMut(&ScrapedSample<'a>) -> Option<usize>,
    ) -> Result<(), ParseError> {
        let sample_line = self.line;
        let name_start = self.pos;
        let name_end = self.scan_class(name_start, METRIC_NAME_CHAR);
        let name = self.text(name_start, name_end);
        let mut labels = std::mem::take(&mut self.sample.labels);
        labels.clear();
        let position;
        let series_end;
        if let Some(expected_end) = self.expected_series(false) {
            position = Some(self.cursor);
            series_end = expected_end;
            self.pos = expected_end;
            self.skip_blanks();
        } else {
            position = None;
            series_end = self.text_series(name_end, &mut labels)?;
        }

        let value_start = self.pos;
        let value_end = self.scan_until_class(value_start, TEXT_VALUE_END);
        if value_end == value_start {
            let got = if self.peek() == Some(b'{') {
                Token::BraceOpen
            } else {
                Token::Invalid
            };
            return Err(self.error(expected("expected value after metric", got)));
        }
        let value =
            parse_go_float(self.text(value_start, value_end)).map_err(|message| self.error(message))?;
        self.pos = value_end;
        self.skip_blanks();

        let timestamp_ms = match self.peek() {
            None | Some(b'\n') => None,
            Some(_) if self.text_timestamp_at(self.pos) => {
                let timestamp_start = self.pos;
                let sign = usize::from(matches!(self.peek(), Some(b'-' | b'+')));
                let timestamp_end = self.scan_digits(timestamp_start + sign);
                let timestamp = self.text(timestamp_start, timestamp_end);
                let timestamp_ms = parse_go_int64(timestamp).map_err(|message| self.error(message))?;
                self.pos = timestamp_end;
                self.skip_blanks();
                if self.peek().is_some_and(|byte| byte != b'\n') {
                    // Prometheus' lexer reads only unsigned digits as a timestamp.
                    let got = if self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
                        Token::Timestamp
                    } else {
                        Token::Invalid
                    };
                    return Err(self.error(expected("expected next entry after timestamp", got)));
                }
                Some(timestamp_ms)
            }
            Some(_) => return Err(self.error(expected("expected timestamp or new record", Token::Invalid))),
        };

        if let Some(duplicate) = find_duplicate_label(&labels) {
            return Err(ParseError {
                line: sample_line,
                message: format!("label name \"{duplicate}\" is not unique"),
            });
        }
        self.consume_line_feed();
        self.hand_over(
            ScrapedSample {
                series: self.text(name_start, series_end),
                name,
                labels,
                position,
                value,
                timestamp_ms,
            },
            on_sample,
        );
        Ok(())
    }

    /// The rest of a text-format series after its name (ending at `name_end`): its label
    /// set, if any, read into `labels`. Returns where the series text ends; `pos` is then at
    /// the value, past blanks.
    fn text_series(
        &mut self,
        name_end: usize,
        labels: &mut Vec<(&'a str, Cow<'a, str>)>,
    ) -> Result<usize, ParseError> {
        self.pos = name_end;
        self.skip_blanks();
        if self.peek() != Some(b'{') {
            return Ok(name_end);
        }
        self.pos += 1;
        self.text_labels(labels)?;
        let series_end = self.pos;
        self.skip_blanks();
        Ok(series_end)
    }

    /// Passes a complete sample to `on_sample`, keeping its label vector for the next one,
    /// and moves on to the series expected next.
    fn hand_over(
        &mut self,
        sample: ScrapedSample<'a>,
        on_sample: &mut impl FnMut(&ScrapedSample<'a>) -> Option<usize>,
    ) {
        if let Some(position) = sample.position {
            self.cursor = position + 1;
        }
        self.sample = sample;
        if let Some(next) = on_sample(&self.sample) {
            self.cursor = next;
        }
    }

    /// Whether a text-format timestamp starts at `index`: digits, optionally signed.
    fn text_timestamp_at(&self, index: usize) -> bool {
        match self.byte_at(index) {
            Some(b'-' | b'+') => self.byte_at(index + 1).is_some_and(|byte| byte.is_ascii_digit()),
            Some(byte) => byte.is_ascii_digit(),
            None => false,
        }
    }

    fn scan_digits(&self, start: usize) -> usize {
        let mut end = start;
        while self.byte_at(end).is_some_and(|byte| byte.is_ascii_digit()) {
            end += 1;
        }
        end
    }

    /// A text-format label set, `pos` being just after `{`.
    fn text_labels(&mut self, labels: &mut Vec<(&'a str, Cow<'a, str>)>) -> Result<(), ParseError> {
        self.skip_blanks();
        loop {
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(byte) if has_class(byte, LABEL_NAME_START) => {}
                _ => return Err(self.label_name_error("expected label name", self.text_label_token())),
            }
            let name_start = self.pos;
            let name_end = self.scan_class(name_start, LABEL_NAME_CHAR);
            let name = self.text(name_start, name_end);
            self.pos = name_end;
            self.skip_blanks();
            if self.peek() != Some(b'=') {
                return Err(self.error(expected("expected equal", self.text_label_token())));
            }
            self.pos += 1;
            self.skip_blanks();
            let value = self.quoted(QuotedIn::TextLabels)?;
            labels.push((name, value));
            self.skip_blanks();
            if self.peek() == Some(b',') {
                self.pos += 1;
                self.skip_blanks();
            }
        }
    }

    /// The token Prometheus' lexer reads at `pos` inside a text-format label set.
    fn text_label_token(&self) -> Token {
        match self.peek() {
            Some(b'}') => Token::BraceClose,
            Some(b',') => Token::Comma,
            Some(b'=') => Token::Equal,
            Some(byte) if has_class(byte, LABEL_NAME_START) => Token::LabelName,
            _ => Token::Invalid,
        }
    }

    /// `expected label name, got ...`, saying so when the name is quoted (Prometheus 3).
    fn label_name_error(&self, what: &str, got: Token) -> ParseError {
        let mut message = expected(what, got);
        if self.peek() == Some(b'"') {
            message.push_str(": quoted UTF-8 label names are not supported");
        }
        self.error(message)
    }

    /// A quoted label value at `pos`, unescaped; `pos` ends after the closing quote.
    fn quoted(&mut self, quoted_in: QuotedIn) -> Result<Cow<'a, str>, ParseError> {
        if self.peek() != Some(b'"') {
            return Err(self.error(expected(
                "expected label value",
                self.label_value_token(quoted_in),
            )));
        }
        let Some((end, escaped, line_feeds)) = self.quoted_end(self.pos, quoted_in) else {
            return Err(self.error(expected("expected label value", Token::Invalid)));
        };
        // The lexer's lookahead after the closing quote skips NULs, except in exemplars, and
        // the value is the token without its first and last bytes: with NULs, the closing
        // quote stays in.
        let after = match quoted_in {
            QuotedIn::Exemplar => end + 1,
            QuotedIn::TextLabels | QuotedIn::OpenMetricsLabels => self.skip_nuls(end + 1),
        };
        let raw = self.text(self.pos + 1, after - 1);
        self.pos = after;
        self.line += line_feeds;
        Ok(if escaped {
            Cow::Owned(unescape(raw, true))
        } else {
            Cow::Borrowed(raw)
        })
    }

    /// Where the quoted string starting at `start` closes: the index of the closing quote,
    /// whether it has escapes and how many raw line feeds it holds. `None` when it is not a
    /// complete quoted string for Prometheus' lexer.
    fn quoted_end(&self, start: usize, quoted_in: QuotedIn) -> Option<(usize, bool, usize)> {
        debug_assert_eq!(self.byte_at(start), Some(b'"'));
        let mut index = start + 1;
        let mut escaped = false;
        let mut line_feeds = 0;
        loop {
            match self.byte_at(index)? {
                b'"' => return Some((index, escaped, line_feeds)),
                b'\\' => {
                    // Outside exemplars the lexer skips NULs, so the escaped character is
                    // the next one that is not a NUL.
                    let escaped_index = match quoted_in {
                        QuotedIn::Exemplar => index + 1,
                        QuotedIn::TextLabels | QuotedIn::OpenMetricsLabels => self.skip_nuls(index + 1),
                    };
                    match self.byte_at(escaped_index)? {
                        b'\n' | 0 => return None,
                        _ => {}
                    }
                    escaped = true;
                    index = escaped_index + 1;
                }
                b'\n' if quoted_in == QuotedIn::TextLabels => {
                    line_feeds += 1;
                    index += 1;
                }
                b'\n' => return None,
                0 if quoted_in == QuotedIn::Exemplar => return None,
                _ => index += 1,
            }
        }
    }

    /// The token Prometheus' lexer reads at `pos` where a label value is expected.
    fn label_value_token(&self, quoted_in: QuotedIn) -> Token {
        match self.peek() {
            None if quoted_in != QuotedIn::TextLabels => Token::Eof,
            Some(b' ') if quoted_in == QuotedIn::Exemplar && self.openmetrics_token_at(self.pos) => {
                Token::Value
            }
            _ => Token::Invalid,
        }
    }

    // ---------------------------------------------------------------------------------------
    // OpenMetrics.

    fn parse_openmetrics(
        &mut self,
        on_sample: &mut impl FnMut(&ScrapedSample<'a>) -> Option<usize>,
    ) -> Result<(), ParseError> {
        loop {
            let Some(byte) = self.peek() else {
                return Err(self.error("data does not end with # EOF"));
            };
            match byte {
                b'#' => {
                    if self.openmetrics_comment()? {
                        return Ok(());
                    }
                }
                _ if has_class(byte, METRIC_NAME_START) => self.openmetrics_sample(on_sample)?,
                b'{' if self.byte_at(self.pos + 1) == Some(b'"') => {
                    let mut error = self.invalid_start(self.pos);
                    error
                        .message
                        .push_str(": quoted UTF-8 metric names are not supported");
                    return Err(error);
                }
                _ => return Err(self.invalid_start(self.pos)),
            }
        }
    }

    /// `"INVALID" "c" is not a valid start token`, `c` being the byte Prometheus' lexer
    /// stopped at (a space past the end, as its `cur()` returns).
    fn invalid_start(&self, at: usize) -> ParseError {
        // Go prints the byte as a character of its own, as `string(byte)` does.
        let stopped_at = self.byte_at(at).map_or(' ', char::from);
        let mut utf8_buffer = [0u8; 4];
        let stopped_at_text = go_quote(stopped_at.encode_utf8(&mut utf8_buffer));
        self.error(format!(
            "\"INVALID\" {stopped_at_text} is not a valid start token"
        ))
    }

    /// A line starting with `#`. Returns whether it was the final `# EOF`.
    fn openmetrics_comment(&mut self) -> Result<bool, ParseError> {
        if self.byte_at(self.pos + 1) != Some(b' ') {
            return Err(self.invalid_start(self.pos + 1));
        }
        let keyword_start = self.pos + 2;
        let mut stopped_at = keyword_start;
        for (keyword, kind) in [
            (&b"HELP "[..], Some(MetadataKind::Help)),
            (b"TYPE ", Some(MetadataKind::Type)),
            (b"UNIT ", Some(MetadataKind::Unit)),
            (b"EOF", None),
        ] {
            let (matched, keyword_end) = self.match_skipping_nuls(keyword_start, keyword);
            if matched < keyword.len() {
                stopped_at = stopped_at.max(keyword_end);
                continue;
            }
            // The lexer's lookahead after the keyword skips NULs too.
            self.pos = self.skip_nuls(keyword_end);
            let Some(kind) = kind else {
                if self.peek() == Some(b'\n') {
                    self.pos = self.skip_nuls(self.pos + 1);
                    self.line += 1;
                }
                if self.pos < self.bytes.len() {
                    return Err(self.error("unexpected data after # EOF"));
                }
                return Ok(true);
            };
            self.openmetrics_metadata(kind)?;
            return Ok(false);
        }
        Err(self.invalid_start(stopped_at))
    }

    /// The rest of a `# HELP`, `# TYPE` or `# UNIT` line, `pos` being just after the keyword
    /// and its space.
    fn openmetrics_metadata(&mut self, kind: MetadataKind) -> Result<(), ParseError> {
        let name_start = self.pos;
        if !self.peek().is_some_and(|byte| has_class(byte, METRIC_NAME_START)) {
            let got = if self.peek().is_none() {
                Token::Eof
            } else {
                Token::Invalid
            };
            let message = format!("expected metric name after {}", kind.keyword());
            return Err(self.error(expected(&message, got)));
        }
        let name_end = self.scan_class(name_start, METRIC_NAME_CHAR);
        let name = self.text(name_start, name_end);
        let line_end = self.line_end(name_end);
        if self.byte_at(name_end) != Some(b' ') || line_end == self.bytes.len() {
            return Err(self.error(format!("expected text in {}", kind.keyword())));
        }
        // The lexer's lookahead after the line feed skips NULs, and the text it reads is
        // the token without its first and last bytes: with NULs, the line feed stays in.
        let nuls = self.skip_nuls(line_end + 1) - (line_end + 1);
        let text = self.text(name_end + 1, line_end + nuls);
        self.record_metadata(kind, name, text, Format::OpenMetrics)?;
        self.pos = line_end + 1 + nuls;
        self.line += 1;
        Ok(())
    }

    /// Whether an OpenMetrics value or timestamp token (a space, then bytes up to the next
    /// space or line feed) starts at `index`.
    fn openmetrics_token_at(&self, index: usize) -> bool {
        self.byte_at(index) == Some(b' ')
            && self
                .byte_at(index + 1)
                .is_some_and(|byte| !has_class(byte, OPENMETRICS_VALUE_END))
    }

    /// Whether an exemplar (` # {`) starts at `pos`.
    fn exemplar_follows(&self) -> bool {
        self.bytes.get(self.pos..self.pos + 4) == Some(b" # {")
    }

    /// The OpenMetrics value or timestamp token at `pos`, without its leading space; `pos`
    /// ends after it. `None` when there is none.
    fn openmetrics_token(&mut self) -> Option<&'a str> {
        if !self.openmetrics_token_at(self.pos) {
            return None;
        }
        let start = self.pos + 1;
        let end = self.scan_until_class(start, OPENMETRICS_VALUE_END);
        self.pos = end;
        Some(self.text(start, end))
    }

    /// The token Prometheus' lexer reads at `pos` after a value or timestamp.
    /// `after_sample` is whether an exemplar could start here, when ` # ` not followed by `{`
    /// is invalid: the lexer does not fall back to reading ` #` as a timestamp.
    fn openmetrics_next_token(&self, after_sample: bool) -> Token {
        match self.peek() {
            None => Token::Eof,
            Some(b'\n') => Token::Linebreak,
            Some(_) if after_sample && self.lone_hash_follows() => Token::Invalid,
            Some(_) if self.openmetrics_token_at(self.pos) => Token::Timestamp,
            Some(_) => Token::Invalid,
        }
    }

    /// Whether ` # ` not followed by `{` is at `pos`.
    fn lone_hash_follows(&self) -> bool {
        self.bytes.get(self.pos..self.pos + 3) == Some(b" # ") && !self.exemplar_follows()
    }

    fn openmetrics_sample(
        &mut self,
        on_sample: &mut impl FnMut(&ScrapedSample<'a>) -> Option<usize>,
    ) -> Result<(), ParseError> {
        let name_start = self.pos;
        let name_end = self.scan_class(name_start, METRIC_NAME_CHAR);
        let name = self.text(name_start, name_end);
        let mut labels = std::mem::take(&mut self.sample.labels);
        labels.clear();
        let position = self.expected_series(true).map(|expected_end| {
            self.pos = expected_end;
            self.cursor
        });
        if position.is_none() {
            self.pos = name_end;
            if self.peek() == Some(b'{') {
                self.pos += 1;
                self.openmetrics_labels(Some(&mut labels), QuotedIn::OpenMetricsLabels)?;
            }
        }
        let series_end = self.pos;

        let Some(value) = self.openmetrics_token() else {
            let got = match self.peek() {
                None => Token::Eof,
                Some(b'{') => Token::BraceOpen,
                Some(_) => Token::Invalid,
            };
            return Err(self.error(expected("expected value after metric", got)));
        };
        let value = parse_go_float(value).map_err(|message| self.error(message))?;

        let mut timestamp_ms = None;
        match self.peek() {
            None => return Err(self.error("data does not end with # EOF")),
            Some(b'\n') => {}
            Some(_) if self.exemplar_follows() => self.openmetrics_exemplar(name)?,
            Some(_) => {
                let timestamp = if self.lone_hash_follows() {
                    None
                } else {
                    self.openmetrics_token()
                };
                let Some(timestamp) = timestamp else {
                    return Err(self.error(expected("expected timestamp or # symbol", Token::Invalid)));
                };
                timestamp_ms = Some(self.openmetrics_timestamp(timestamp, "invalid timestamp")?);
                if self.exemplar_follows() {
                    self.openmetrics_exemplar(name)?;
                } else if self.peek() != Some(b'\n') {
                    let got = self.openmetrics_next_token(true);
                    return Err(self.error(expected("expected next entry after timestamp", got)));
                }
            }
        }

        if let Some(duplicate) = find_duplicate_label(&labels) {
            return Err(self.error(format!("label name \"{duplicate}\" is not unique")));
        }
        self.consume_line_feed();
        self.hand_over(
            ScrapedSample {
                series: self.text(name_start, series_end),
                name,
                labels,
                position,
                value,
                timestamp_ms,
            },
            on_sample,
        );
        Ok(())
    }

    /// Seconds as a float to milliseconds, as Prometheus: `int64(ts * 1000)`.
    fn openmetrics_timestamp(&self, timestamp: &str, invalid: &str) -> Result<i64, ParseError> {
        let seconds = parse_go_float(timestamp).map_err(|message| self.error(message))?;
        if !seconds.is_finite() {
            return Err(self.error(invalid));
        }
        // Truncates toward zero like Go's conversion; saturates where Go's would wrap.
        Ok((seconds * 1000.0) as i64)
    }

    /// An exemplar after a sample, `pos` being at its ` # {`: checked, then dropped. `pos`
    /// ends at the line feed.
    fn openmetrics_exemplar(&mut self, name: &str) -> Result<(), ParseError> {
        if !(name.ends_with("_total") || name.ends_with("_bucket")) {
            return Err(self.error(format!("metric name {name} does not support exemplars")));
        }
        self.pos += 4;
        self.openmetrics_labels(None, QuotedIn::Exemplar)?;
        let Some(value) = self.openmetrics_token() else {
            let got = match self.peek() {
                None => Token::Eof,
                Some(b'"') if self.quoted_end(self.pos, QuotedIn::Exemplar).is_some() => Token::LabelValue,
                Some(_) => Token::Invalid,
            };
            return Err(self.error(expected("expected value after exemplar labels", got)));
        };
        parse_go_float(value).map_err(|message| self.error(message))?;
        match self.peek() {
            None => Err(self.error("data does not end with # EOF")),
            Some(b'\n') => Ok(()),
            Some(_) => {
                let Some(timestamp) = self.openmetrics_token() else {
                    return Err(self.error(expected("expected timestamp or comment", Token::Invalid)));
                };
                self.openmetrics_timestamp(timestamp, "invalid exemplar timestamp")?;
                if self.peek() == Some(b'\n') {
                    Ok(())
                } else {
                    let got = self.openmetrics_next_token(false);
                    Err(self.error(expected("expected next entry after exemplar timestamp", got)))
                }
            }
        }
    }

    /// The token Prometheus' lexer reads at `pos` inside an OpenMetrics label set.
    fn openmetrics_label_token(&self) -> Token {
        match self.peek() {
            None => Token::Eof,
            Some(b'}') => Token::BraceClose,
            Some(b',') => Token::Comma,
            Some(b'=') => Token::Equal,
            Some(byte) if has_class(byte, LABEL_NAME_START) => Token::LabelName,
            Some(_) => Token::Invalid,
        }
    }

    /// An OpenMetrics label set, `pos` being just after `{`: no blanks, commas between pairs
    /// only. Pairs are collected into `labels` when given.
    fn openmetrics_labels(
        &mut self,
        mut labels: Option<&mut Vec<(&'a str, Cow<'a, str>)>>,
        quoted_in: QuotedIn,
    ) -> Result<(), ParseError> {
        let mut first = true;
        loop {
            match self.openmetrics_label_token() {
                Token::BraceClose => {
                    self.pos += 1;
                    return Ok(());
                }
                Token::Comma if first => {
                    return Err(self.error(expected("expected label name or left brace", Token::Comma)));
                }
                Token::Comma => {
                    self.pos += 1;
                    let got = self.openmetrics_label_token();
                    if got != Token::LabelName {
                        return Err(self.label_name_error("expected label name", got));
                    }
                }
                Token::LabelName if !first => {
                    return Err(self.error(expected("expected comma", Token::LabelName)));
                }
                Token::LabelName => {}
                got if first => return Err(self.label_name_error("expected label name or left brace", got)),
                got => return Err(self.error(expected("expected comma or left brace", got))),
            }
            first = false;
            let name_start = self.pos;
            let name_end = self.scan_class(name_start, LABEL_NAME_CHAR);
            let name = self.text(name_start, name_end);
            self.pos = name_end;
            if self.peek() != Some(b'=') {
                return Err(self.error(expected("expected equal", self.openmetrics_label_token())));
            }
            self.pos += 1;
            let value = self.quoted(quoted_in)?;
            if let Some(labels) = labels.as_deref_mut() {
                labels.push((name, value));
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Metadata.

    fn record_metadata(
        &mut self,
        kind: MetadataKind,
        name: &'a str,
        text: &str,
        format: Format,
    ) -> Result<(), ParseError> {
        let line = self.line;
        let invalid_type = || ParseError {
            line,
            message: format!("invalid metric type {}", go_quote(text)),
        };
        let metric_type = match kind {
            MetadataKind::Type => Some(match (text, format) {
                ("counter", _) => MetricType::Counter,
                ("gauge", _) => MetricType::Gauge,
                ("histogram", _) => MetricType::Histogram,
                ("summary", _) => MetricType::Summary,
                ("untyped", Format::PrometheusText) | ("unknown", Format::OpenMetrics) => MetricType::Unknown,
                ("info", Format::OpenMetrics) => MetricType::Info,
                ("stateset", Format::OpenMetrics) => MetricType::StateSet,
                ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
                _ => return Err(invalid_type()),
            }),
            MetadataKind::Help | MetadataKind::Unit => None,
        };
        if kind == MetadataKind::Unit && !text.is_empty() {
            let unit_is_suffix = name.strip_suffix(text).is_some_and(|stem| stem.ends_with('_'));
            if !unit_is_suffix {
                return Err(self.error(format!("unit not a suffix of metric \"{name}\"")));
            }
        }

        let index = match self.metadata_index.get(name) {
            Some(&index) => index,
            None => {
                self.metadata.push(FamilyMetadata {
                    name: name.to_owned(),
                    metric_type: MetricType::Unknown,
                    help: String::new(),
                    unit: String::new(),
                });
                self.metadata_index.insert(name, self.metadata.len() - 1);
                self.metadata.len() - 1
            }
        };
        let Some(family) = self.metadata.get_mut(index) else {
            debug_assert!(false, "metadata_index points into metadata");
            return Ok(());
        };
        match kind {
            MetadataKind::Help => family.help = unescape(text, format == Format::OpenMetrics),
            MetadataKind::Type => family.metric_type = metric_type.unwrap_or(MetricType::Unknown),
            MetadataKind::Unit => text.clone_into(&mut family.unit),
        }
        Ok(())
    }
}

/// The first label name that appears twice, counting the metric name as `__name__`.
fn find_duplicate_label<'a>(labels: &[(&'a str, Cow<'a, str>)]) -> Option<&'a str> {
    if labels.len() <= QUADRATIC_DUPLICATE_CHECK_MAX {
        for (index, &(name, _)) in labels.iter().enumerate() {
            if name == METRIC_NAME_LABEL || labels.iter().take(index).any(|(earlier, _)| *earlier == name) {
                return Some(name);
            }
        }
        return None;
    }
    let mut names: Vec<&'a str> = labels.iter().map(|(name, _)| *name).collect();
    if names.contains(&METRIC_NAME_LABEL) {
        return Some(METRIC_NAME_LABEL);
    }
    names.sort_unstable();
    names.windows(2).find_map(|pair| match pair {
        [first, second] if first == second => Some(*first),
        _ => None,
    })
}

/// Replaces `\\` and `\n`, and `\"` when `quotes`, as Go's `strings.Replacer` in Prometheus:
/// any other backslash is kept as written.
fn unescape(text: &str, quotes: bool) -> String {
    let mut unescaped = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(backslash) = rest.find('\\') {
        unescaped.push_str(rest.get(..backslash).unwrap_or_default());
        let after = rest.get(backslash + 1..).unwrap_or_default();
        let replacement = match after.as_bytes().first() {
            Some(b'\\') => Some('\\'),
            Some(b'n') => Some('\n'),
            Some(b'"') if quotes => Some('"'),
            _ => None,
        };
        match replacement {
            Some(replacement) => {
                unescaped.push(replacement);
                rest = after.get(1..).unwrap_or_default();
            }
            None => {
                unescaped.push('\\');
                rest = after;
            }
        }
    }
    unescaped.push_str(rest);
    unescaped
}

/// Go's `strconv.Quote`, for error messages. Go escapes what `unicode.IsPrint` refuses; this
/// approximates it with controls, blanks other than the space, format characters, private use
/// and unassigned planes.
fn go_quote(text: &str) -> String {
    go_quote_bytes(text.as_bytes())
}

/// [`go_quote`] of bytes that may not be UTF-8: Go prints each invalid byte as `\xNN`.
fn go_quote_bytes(bytes: &[u8]) -> String {
    let mut quoted = String::with_capacity(bytes.len() + 2);
    quoted.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            let code = u32::from(c);
            match c {
                '"' => quoted.push_str("\\\""),
                '\\' => quoted.push_str("\\\\"),
                '\u{7}' => quoted.push_str("\\a"),
                '\u{8}' => quoted.push_str("\\b"),
                '\u{c}' => quoted.push_str("\\f"),
                '\n' => quoted.push_str("\\n"),
                '\r' => quoted.push_str("\\r"),
                '\t' => quoted.push_str("\\t"),
                '\u{b}' => quoted.push_str("\\v"),
                _ if code < 0x20 || code == 0x7f => {
                    let _ = write!(quoted, "\\x{code:02x}");
                }
                _ if is_go_printable(c) => quoted.push(c),
                _ if code < 0x10000 => {
                    let _ = write!(quoted, "\\u{code:04x}");
                }
                _ => {
                    let _ = write!(quoted, "\\U{code:08x}");
                }
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(quoted, "\\x{byte:02x}");
        }
    }
    quoted.push('"');
    quoted
}

/// An approximation of Go's `unicode.IsPrint` without the Unicode tables.
fn is_go_printable(c: char) -> bool {
    let code = u32::from(c);
    let format_character = matches!(
        code,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f | 0x202a..=0x202e
            | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb | 0xe0000..=0xe0fff
    );
    let private_or_unassigned = matches!(code, 0xe000..=0xf8ff | 0x40000..=0xdffff | 0xf0000..);
    !(c.is_control() || (c.is_whitespace() && c != ' ') || format_character || private_or_unassigned)
}

/// Exact powers of ten for the fast path of [`parse_go_float`].
const POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// A float as Prometheus reads one: Go's `strconv.ParseFloat` after refusing `p`, `P` and `_`.
/// The error is Prometheus' message.
fn parse_go_float(token: &str) -> Result<f64, String> {
    if let Some(value) = parse_short_decimal(token.as_bytes()) {
        return Ok(value);
    }
    if token.bytes().any(|byte| matches!(byte, b'p' | b'P' | b'_')) {
        return Err("unsupported character in float".to_owned());
    }
    if let Some(value) = parse_go_special(token.as_bytes()) {
        return Ok(value);
    }
    let invalid = || format!("strconv.ParseFloat: parsing {}: invalid syntax", go_quote(token));
    if !is_go_decimal(token.as_bytes()) {
        return Err(invalid());
    }
    match token.parse::<f64>() {
        Ok(value) if value.is_infinite() => Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            go_quote(token)
        )),
        Ok(value) => Ok(value),
        Err(_) => Err(invalid()),
    }
}

/// The fast path: `[+-]?digits[.digits]` with at most 15 digits, exact in an `f64`, so one
/// correctly rounded division by an exact power of ten gives the correctly rounded value.
fn parse_short_decimal(bytes: &[u8]) -> Option<f64> {
    let (negative, unsigned) = match bytes.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, bytes),
    };
    if unsigned.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut fraction_digits = 0usize;
    let mut seen_point = false;
    for &byte in unsigned {
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(byte - b'0');
                digits += 1;
                fraction_digits += usize::from(seen_point);
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    // Below 10^15 < 2^53, so the conversion is exact.
    let magnitude = mantissa as f64 / POWERS_OF_TEN.get(fraction_digits).copied()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// Go's special values: `[+-]?(inf|infinity)` and unsigned `nan`, any case.
fn parse_go_special(bytes: &[u8]) -> Option<f64> {
    let (sign, unsigned) = match bytes.split_first()? {
        (b'-', rest) => (Some(-1.0), rest),
        (b'+', rest) => (Some(1.0), rest),
        _ => (None, bytes),
    };
    if unsigned.eq_ignore_ascii_case(b"inf") || unsigned.eq_ignore_ascii_case(b"infinity") {
        return Some(sign.unwrap_or(1.0) * f64::INFINITY);
    }
    if sign.is_none() && unsigned.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    None
}

/// Go's decimal float syntax: `[+-]?(digits[.digits*]|.digits)([eE][+-]?digits)?`.
fn is_go_decimal(bytes: &[u8]) -> bool {
    let mut index = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let count_digits = |from: usize| {
        bytes
            .iter()
            .skip(from)
            .take_while(|byte| byte.is_ascii_digit())
            .count()
    };
    let integer_digits = count_digits(index);
    index += integer_digits;
    let mut fraction_digits = 0;
    if bytes.get(index) == Some(&b'.') {
        fraction_digits = count_digits(index + 1);
        index += 1 + fraction_digits;
    }
    if integer_digits + fraction_digits == 0 {
        return false;
    }
    if matches!(bytes.get(index), Some(b'e' | b'E')) {
        index += 1;
        index += usize::from(matches!(bytes.get(index), Some(b'+' | b'-')));
        let exponent_digits = count_digits(index);
        if exponent_digits == 0 {
            return false;
        }
        index += exponent_digits;
    }
    index == bytes.len()
}

/// An integer as Go's `strconv.ParseInt(s, 10, 64)`, for `[+-]?digits` tokens.
fn parse_go_int64(token: &str) -> Result<i64, String> {
    let (negative, digits) = match token.as_bytes().split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, token.as_bytes()),
    };
    let out_of_range = || {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            go_quote(token)
        )
    };
    let mut value: i64 = 0;
    for &digit in digits {
        let digit = i64::from(digit - b'0');
        // Accumulates toward the sign so that i64::MIN parses.
        value = value.checked_mul(10).ok_or_else(out_of_range)?;
        value = if negative {
            value.checked_sub(digit)
        } else {
            value.checked_add(digit)
        }
        .ok_or_else(out_of_range)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> Parsed<'_> {
        parse(body, Format::PrometheusText).unwrap_or_else(|error| panic!("{body:?}: {error}"))
    }

    fn open_metrics(body: &str) -> Parsed<'_> {
        parse(body, Format::OpenMetrics).unwrap_or_else(|error| panic!("{body:?}: {error}"))
    }

    fn text_error(body: &str) -> ParseError {
        match parse(body, Format::PrometheusText) {
            Ok(parsed) => panic!("{body:?} parsed: {parsed:?}"),
            Err(error) => error,
        }
    }

    fn open_metrics_error(body: &str) -> ParseError {
        match parse(body, Format::OpenMetrics) {
            Ok(parsed) => panic!("{body:?} parsed: {parsed:?}"),
            Err(error) => error,
        }
    }

    fn label_pairs<'a>(sample: &'a ScrapedSample<'_>) -> Vec<(&'a str, &'a str)> {
        sample
            .labels
            .iter()
            .map(|(name, value)| (*name, value.as_ref()))
            .collect()
    }

    /// A sample read with an order: its position, name, labels and value.
    type OrderedSample = (Option<usize>, String, Vec<(String, String)>, f64);

    /// Parses `body` with the order of `earlier`'s series: each sample's position (when its
    /// labels were skipped), name, labels and value. `resume` maps a series text to the
    /// position the callback says to expect next.
    fn ordered(
        earlier: &str,
        body: &str,
        format: Format,
        resume: &[(&str, usize)],
    ) -> Result<Vec<OrderedSample>, ParseError> {
        let mut order = SeriesOrder::new();
        order.clear(format);
        parse_each(earlier, format, |sample| order.push(Arc::from(sample.series)))
            .expect("the earlier body parses");
        let mut samples = Vec::new();
        parse_each_ordered(body, format, &order, |sample| {
            let labels = sample
                .labels
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect();
            samples.push((sample.position, sample.name.to_owned(), labels, sample.value));
            resume
                .iter()
                .find(|(series, _)| *series == sample.series)
                .map(|(_, position)| *position)
        })?;
        Ok(samples)
    }

    #[test]
    fn an_ordered_parse_skips_the_labels_of_series_written_as_expected() {
        let earlier = "a 1\nb{x=\"1\"} 2\nc 3\nd{y=\"q\\\"uote\"} 4\n";
        let body = "a 5\nb{x=\"1\"} 6\nc_total 7\nc 8\nb{x=\"2\"} 9\nd{y=\"q\\\"uote\"} 10\n";
        let samples = ordered(earlier, body, Format::PrometheusText, &[]).expect("parses");
        let positions: Vec<Option<usize>> = samples.iter().map(|sample| sample.0).collect();
        // `c_total` is not `c`; after it `c` is still expected; `b{x="2"}` is not `d{...}`.
        assert_eq!(positions, [Some(0), Some(1), None, Some(2), None, Some(3)]);
        let names: Vec<&str> = samples.iter().map(|sample| sample.1.as_str()).collect();
        assert_eq!(names, ["a", "b", "c_total", "c", "b", "d"]);
        let values: Vec<f64> = samples.iter().map(|sample| sample.3).collect();
        assert_eq!(values, [5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        // Labels are read only for the series not expected.
        assert!(samples[1].2.is_empty());
        assert_eq!(samples[4].2, [("x".to_owned(), "2".to_owned())]);

        // A bare name expected where the body gives it labels, after blanks or not.
        for body in ["a {z=\"1\"} 1\n", "a{z=\"1\"} 1\n", "a\t{z=\"1\"} 1\n"] {
            let samples = ordered("a 1\n", body, Format::PrometheusText, &[]).expect("parses");
            assert_eq!(samples[0].0, None, "{body:?}");
            assert_eq!(samples[0].2, [("z".to_owned(), "1".to_owned())], "{body:?}");
        }
        // A series expected but now followed by a timestamp, or blanks: still the series.
        let samples = ordered("a 1\n", "a   2 1000\n", Format::PrometheusText, &[]).expect("parses");
        assert_eq!(samples[0].0, Some(0));

        // The order of a body in the other format is not used: a text valid in the text
        // format (a trailing comma) is an error in OpenMetrics.
        let mut text_order = SeriesOrder::new();
        text_order.clear(Format::PrometheusText);
        text_order.push(Arc::from("a{x=\"1\",}"));
        let body = "a{x=\"1\",} 1\n# EOF\n";
        let error = parse_each_ordered(body, Format::OpenMetrics, &text_order, |_| None)
            .expect_err("OpenMetrics refuses the trailing comma");
        assert_eq!(error, open_metrics_error(body));
        let samples = ordered(
            "a{x=\"1\"} 1\n# EOF\n",
            "a{x=\"1\"} 2\n# EOF\n",
            Format::OpenMetrics,
            &[],
        );
        assert_eq!(samples.expect("parses")[0].0, Some(0));
    }

    #[test]
    fn an_ordered_parse_resumes_where_the_caller_says() {
        let earlier = "a 1\nb 2\nc 3\nd 4\n";
        // `a` gone: nothing matches until the caller, knowing `b` was at 1, says 2 is next.
        let samples =
            ordered(earlier, "b 2\nc 3\nd 4\n", Format::PrometheusText, &[("b", 2)]).expect("parses");
        let positions: Vec<Option<usize>> = samples.iter().map(|sample| sample.0).collect();
        assert_eq!(positions, [None, Some(2), Some(3)]);
        // Past the end of the order, nothing is expected.
        let samples = ordered(earlier, "d 4\ne 5\n", Format::PrometheusText, &[("d", 9)]).expect("parses");
        let positions: Vec<Option<usize>> = samples.iter().map(|sample| sample.0).collect();
        assert_eq!(positions, [None, None]);
    }

    #[test]
    fn a_series_over_lines_is_never_expected() {
        // A raw line feed in a quoted value: skipping it would lose the line count.
        let earlier = "a{x=\"1\n2\"} 1\n";
        let samples = ordered(earlier, "a{x=\"1\n2\"} 1\nb{ 2\n", Format::PrometheusText, &[]);
        let expected = parse("a{x=\"1\n2\"} 1\nb{ 2\n", Format::PrometheusText).map(|_| ());
        assert_eq!(samples.map(|_| ()), expected);
    }

    #[test]
    fn content_type_picks_the_format_as_prometheus() {
        let cases = [
            (None, Format::PrometheusText),
            (Some(""), Format::PrometheusText),
            (
                Some("text/plain; version=0.0.4; charset=utf-8"),
                Format::PrometheusText,
            ),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                Format::OpenMetrics,
            ),
            (
                Some(" Application/OpenMetrics-Text ;version=0.0.1"),
                Format::OpenMetrics,
            ),
            (
                Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily"),
                Format::PrometheusText,
            ),
            (Some("application/openmetrics-textx"), Format::PrometheusText),
        ];
        for (content_type, format) in cases {
            assert_eq!(
                Format::from_content_type(content_type),
                format,
                "{content_type:?}"
            );
        }
    }

    #[test]
    fn go_float_syntax() {
        let valid: [(&str, f64); 22] = [
            ("1", 1.0),
            ("-1", -1.0),
            ("+1.5", 1.5),
            ("0042", 42.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1.e3", 1000.0),
            ("1e-3", 0.001),
            ("1E+3", 1000.0),
            ("4.9351e-05", 4.9351e-05),
            ("7.424100000000001e-05", 7.424100000000001e-05),
            ("1.7560473e+07", 1.7560473e+07),
            ("123456789012345678901234567890", 1.2345678901234568e29),
            ("0.1", 0.1),
            ("1e-400", 0.0),
            ("+Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("Inf", f64::INFINITY),
            ("inf", f64::INFINITY),
            ("-infinity", f64::NEG_INFINITY),
            ("+INFINITY", f64::INFINITY),
            ("1.7976931348623157e308", f64::MAX),
        ];
        for (token, value) in valid {
            assert_eq!(parse_go_float(token), Ok(value), "{token}");
        }
        for nan in ["NaN", "nan", "NAN"] {
            assert!(parse_go_float(nan).is_ok_and(f64::is_nan), "{nan}");
        }
        assert!(parse_go_float("-0").is_ok_and(|zero| zero == 0.0 && zero.is_sign_negative()));
        let invalid = [
            "", "+", "-", ".", "e5", ".e5", "1e", "1e+", "1..2", "1.2.3", "+nan", "-NaN", "infin", "nanx",
            "0x10", "1\r", "true", "1 2", "١",
        ];
        for token in invalid {
            assert_eq!(
                parse_go_float(token),
                Err(format!(
                    "strconv.ParseFloat: parsing {}: invalid syntax",
                    go_quote(token)
                )),
                "{token:?}"
            );
        }
        for token in ["0x1p-3", "0x1P-3", "1_000", "p"] {
            assert_eq!(
                parse_go_float(token),
                Err("unsupported character in float".to_owned()),
                "{token}"
            );
        }
        assert_eq!(
            parse_go_float("1e400"),
            Err("strconv.ParseFloat: parsing \"1e400\": value out of range".to_owned())
        );
        assert_eq!(
            parse_go_float("-1e400"),
            Err("strconv.ParseFloat: parsing \"-1e400\": value out of range".to_owned())
        );
    }

    #[test]
    fn fast_path_agrees_with_the_standard_parser() {
        let tokens = [
            "0",
            "1",
            "-1",
            "0.1",
            "0.3",
            "123.456",
            "999999999999999",
            "0.000000000000001",
            "12345.6789012345",
            "-98765.4321",
            "3.141592653589793",
            "1.5",
            "33",
            "0.025",
        ];
        for token in tokens {
            let expected: f64 = token.parse().unwrap();
            assert_eq!(
                parse_go_float(token).unwrap().to_bits(),
                expected.to_bits(),
                "{token}"
            );
        }
    }

    #[test]
    fn go_int64_syntax() {
        assert_eq!(parse_go_int64("1395066363000"), Ok(1_395_066_363_000));
        assert_eq!(parse_go_int64("-3982045"), Ok(-3_982_045));
        assert_eq!(parse_go_int64("+7"), Ok(7));
        assert_eq!(parse_go_int64("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_go_int64("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(
            parse_go_int64("9223372036854775808"),
            Err("strconv.ParseInt: parsing \"9223372036854775808\": value out of range".to_owned())
        );
    }

    #[test]
    fn unescaping_follows_prometheus_replacers() {
        assert_eq!(unescape(r#"a\\b\"c\nd"#, true), "a\\b\"c\nd");
        assert_eq!(unescape(r#"a\\b\"c\nd"#, false), "a\\b\\\"c\nd");
        assert_eq!(unescape(r"\t\x", true), r"\t\x");
        assert_eq!(unescape(r"\\n", true), r"\n");
        assert_eq!(unescape(r"\\\n", true), "\\\n");
        assert_eq!(unescape(r"é\é", true), r"é\é");
        assert_eq!(unescape("end\\", true), "end\\");
    }

    #[test]
    fn borrows_unless_escaped() {
        let parsed = text("a{plain=\"x\",escaped=\"y\\\\z\"} 1\n");
        let labels = &parsed.samples[0].labels;
        assert!(matches!(labels[0].1, Cow::Borrowed("x")));
        assert!(matches!(&labels[1].1, Cow::Owned(value) if value == "y\\z"));
    }

    /// Prometheus' own `TestPromParse` input (written anew), with its expectations.
    #[test]
    fn text_format_whitespace_comments_and_labels() {
        let body = "# HELP go_gc_duration_seconds A summary of the GC invocation durations.\n\
                    # \tTYPE go_gc_duration_seconds summary\n\
                    go_gc_duration_seconds{quantile=\"0\"} 4.9351e-05\n\
                    go_gc_duration_seconds{quantile=\"0.25\",} 7.424100000000001e-05\n\
                    go_gc_duration_seconds{ quantile=\"0.9\", a=\"b\"} 8.3835e-05\n\
                    # Hrandom comment starting with prefix of HELP\n\
                    #\n\
                    # comment with escaped \\n newline\n\
                    # HELP nohelp1\n\
                    # HELP nohelp2 \n\
                    go_gc_duration_seconds { quantile= \"1.0\", a= \"b\", } 8.3835e-05\n\
                    go_gc_duration_seconds { quantile = \"1.0\", a = \"b\" } 8.3835e-05\n\
                    some:aggregate:rate5m{a_b=\"c\"}\t1\n\
                    go_goroutines 33  \t123123\n\
                    _metric_starting_with_underscore 1\n\
                    testmetric{_label_starting_with_underscore=\"foo\"} 1\n\
                    testmetric{label=\"\\\"bar\\\"\"} 1\n\
                    # HELP metric foo\u{0}bar\n\
                    null_byte_metric{a=\"abc\u{0}\"} 1";
        let parsed = text(body);
        let summary: Vec<_> = parsed
            .samples
            .iter()
            .map(|sample| {
                (
                    sample.name,
                    label_pairs(sample),
                    sample.value,
                    sample.timestamp_ms,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "go_gc_duration_seconds",
                    vec![("quantile", "0")],
                    4.9351e-05,
                    None
                ),
                (
                    "go_gc_duration_seconds",
                    vec![("quantile", "0.25")],
                    7.424100000000001e-05,
                    None
                ),
                (
                    "go_gc_duration_seconds",
                    vec![("quantile", "0.9"), ("a", "b")],
                    8.3835e-05,
                    None
                ),
                (
                    "go_gc_duration_seconds",
                    vec![("quantile", "1.0"), ("a", "b")],
                    8.3835e-05,
                    None
                ),
                (
                    "go_gc_duration_seconds",
                    vec![("quantile", "1.0"), ("a", "b")],
                    8.3835e-05,
                    None
                ),
                ("some:aggregate:rate5m", vec![("a_b", "c")], 1.0, None),
                ("go_goroutines", vec![], 33.0, Some(123_123)),
                ("_metric_starting_with_underscore", vec![], 1.0, None),
                (
                    "testmetric",
                    vec![("_label_starting_with_underscore", "foo")],
                    1.0,
                    None
                ),
                ("testmetric", vec![("label", "\"bar\"")], 1.0, None),
                ("null_byte_metric", vec![("a", "abc\u{0}")], 1.0, None),
            ]
        );
        let metadata: Vec<_> = parsed
            .metadata
            .iter()
            .map(|family| (family.name.as_str(), family.metric_type, family.help.as_str()))
            .collect();
        assert_eq!(
            metadata,
            [
                (
                    "go_gc_duration_seconds",
                    MetricType::Summary,
                    "A summary of the GC invocation durations."
                ),
                ("nohelp1", MetricType::Unknown, ""),
                ("nohelp2", MetricType::Unknown, ""),
                ("metric", MetricType::Unknown, "foo\u{0}bar"),
            ]
        );
    }

    #[test]
    fn text_format_lexer_quirks_are_kept() {
        // No blank needed where the lexer needs none; pairs without commas.
        let parsed = text("foo{a=\"b\"}1\nfoo1.5\nfoo-2\nbar{a=\"1\"b=\"2\"} 3\n");
        let values: Vec<_> = parsed
            .samples
            .iter()
            .map(|sample| (sample.name, sample.value))
            .collect();
        assert_eq!(values, [("foo", 1.0), ("foo1", 0.5), ("foo", -2.0), ("bar", 3.0)]);
        assert_eq!(label_pairs(&parsed.samples[3]), [("a", "1"), ("b", "2")]);
        // A raw line feed in a label value, and line numbers that account for it.
        let parsed = text("a{b=\"x\ny\"} 1\n");
        assert_eq!(parsed.samples[0].labels[0].1, "x\ny");
        assert_eq!(text_error("a{b=\"x\ny\"} 1\nc\n").line, 3);
        // Unknown escapes keep their backslash.
        assert_eq!(text("a{b=\"\\t\\x\"} 1").samples[0].labels[0].1, "\\t\\x");
        // HELP text loses the character after the name, whatever it is.
        assert_eq!(text("# HELP foo-bar baz\n").metadata[0].help, "bar baz");
        assert_eq!(text("# HELP foo  two\n").metadata[0].help, " two");
        assert_eq!(
            text("# HELP foo\tx\\\\y\\nz\\\"\n").metadata[0].help,
            "x\\y\nz\\\""
        );
        // A NUL where a line starts ends the body.
        assert_eq!(text("a 1\n\u{0}garbage{\n").samples.len(), 1);
        // Blank lines, leading blanks, no final line feed.
        assert_eq!(text("\n\n  \t\n  a 1\n\t# c\n\nb 2").samples.len(), 2);
        assert!(text("").samples.is_empty());
        // An empty label set, an empty label value.
        assert_eq!(label_pairs(&text("a{} 1\nb{c=\"\"} 2\n").samples[1]), [("c", "")]);
    }

    #[test]
    fn text_format_errors_name_the_line_and_prometheus_message() {
        let cases: &[(&str, usize, &str)] = &[
            ("a", 1, "expected value after metric, got \"INVALID\""),
            ("a 1\nb\n", 2, "expected value after metric, got \"INVALID\""),
            (
                "a{b=\"c\"}{d=\"e\"} 1",
                1,
                "expected value after metric, got \"BOPEN\"",
            ),
            ("a{b='c'} 1\n", 1, "expected label value, got \"INVALID\""),
            ("a{b=\n", 1, "expected label value, got \"INVALID\""),
            (
                "a true\n",
                1,
                "strconv.ParseFloat: parsing \"true\": invalid syntax",
            ),
            (
                "a 1\r\n",
                1,
                "strconv.ParseFloat: parsing \"1\\r\": invalid syntax",
            ),
            (
                "something_weird{problem=\"",
                1,
                "expected label value, got \"INVALID\"",
            ),
            (
                "x 1\nsomething{problem=\"div",
                2,
                "expected label value, got \"INVALID\"",
            ),
            (
                "empty_label_name{=\"\"} 0",
                1,
                "expected label name, got \"EQUAL\"",
            ),
            ("a{,} 0", 1, "expected label name, got \"COMMA\""),
            ("a{b=\"c\",,d=\"e\"} 0", 1, "expected label name, got \"COMMA\""),
            ("a{b \"c\"} 0", 1, "expected equal, got \"INVALID\""),
            ("a{b,} 0", 1, "expected equal, got \"COMMA\""),
            ("a{b\u{0}=\"hiih\"}\t1", 1, "expected equal, got \"INVALID\""),
            (
                "a{b=\u{0}\"ssss\"} 1\n",
                1,
                "expected label value, got \"INVALID\"",
            ),
            (
                "a\u{0}{b=\"ddd\"} 1",
                1,
                "expected value after metric, got \"INVALID\"",
            ),
            (
                "a{b=\"bad escape \\\n\"} 1\n",
                1,
                "expected label value, got \"INVALID\"",
            ),
            (
                "a{b=\"ends in a backslash\\",
                1,
                "expected label value, got \"INVALID\"",
            ),
            ("foo 1_2\n", 1, "unsupported character in float"),
            ("foo 0x1p-3\n", 1, "unsupported character in float"),
            (
                "foo 1e400\n",
                1,
                "strconv.ParseFloat: parsing \"1e400\": value out of range",
            ),
            (
                "foo 0 1_2\n",
                1,
                "expected next entry after timestamp, got \"INVALID\"",
            ),
            (
                "foo 0 1 2\n",
                1,
                "expected next entry after timestamp, got \"TIMESTAMP\"",
            ),
            (
                "a 0 1\u{0}",
                1,
                "expected next entry after timestamp, got \"INVALID\"",
            ),
            (
                "foo 0 1.5\n",
                1,
                "expected next entry after timestamp, got \"INVALID\"",
            ),
            (
                "foo 0 x\n",
                1,
                "expected timestamp or new record, got \"INVALID\"",
            ),
            (
                "foo 0 99999999999999999999\n",
                1,
                "strconv.ParseInt: parsing \"99999999999999999999\": value out of range",
            ),
            ("{a=\"ok\"} 1", 1, "\"INVALID\" is not a valid start token"),
            ("\n\n9 1\n", 3, "\"INVALID\" is not a valid start token"),
            (
                "# TYPE #\n",
                1,
                "expected metric name after TYPE, got \"INVALID\"",
            ),
            (
                "# HELP #\n",
                1,
                "expected metric name after HELP, got \"INVALID\"",
            ),
            (
                "# HELP\n# TYPE \n",
                2,
                "expected metric name after TYPE, got \"INVALID\"",
            ),
            (
                "# HELP\t\n",
                1,
                "expected metric name after HELP, got \"INVALID\"",
            ),
            ("# TYPE a untyped2\n", 1, "invalid metric type \"untyped2\""),
            ("# TYPE a counter \n", 1, "invalid metric type \"counter \""),
            ("# TYPE a\n", 1, "invalid metric type \"\""),
            ("# TYPE a unknown\n", 1, "invalid metric type \"unknown\""),
            ("# TYPE a info\n", 1, "invalid metric type \"info\""),
            ("# HELP aé x\n", 1, "help text is not a valid utf8 string"),
            ("a{b=\"1\",b=\"2\"} 1\n", 1, "label name \"b\" is not unique"),
            (
                "a{__name__=\"b\"} 1\n",
                1,
                "label name \"__name__\" is not unique",
            ),
            (
                "{\"my.metric\"} 1\n",
                1,
                "\"INVALID\" is not a valid start token: quoted UTF-8 metric names are not supported",
            ),
            (
                "a{\"my.label\"=\"x\"} 1\n",
                1,
                "expected label name, got \"INVALID\": quoted UTF-8 label names are not supported",
            ),
        ];
        for &(body, line, message) in cases {
            let error = text_error(body);
            assert_eq!((error.line, error.message.as_str()), (line, message), "{body:?}");
        }
        assert_eq!(
            text_error("a\n").to_string(),
            "expected value after metric, got \"INVALID\" (line 1)"
        );
    }

    #[test]
    fn duplicate_labels_are_found_in_large_label_sets() {
        let pairs: Vec<String> = (0..40).map(|index| format!("l{index}=\"v\"")).collect();
        let mut body = format!("a{{{}}} 1\n", pairs.join(","));
        assert_eq!(text(&body).samples[0].labels.len(), 40);
        body = format!("a{{{},l7=\"again\"}} 1\n", pairs.join(","));
        assert_eq!(text_error(&body).message, "label name \"l7\" is not unique");
        body = format!("a{{{},__name__=\"x\"}} 1\n", pairs.join(","));
        assert_eq!(text_error(&body).message, "label name \"__name__\" is not unique");
    }

    #[test]
    fn open_metrics_samples_timestamps_and_exemplars() {
        let body = "# TYPE foo histogram\n\
                    # HELP foo Some text and \\n some \\\" escaping \\\\ \\x\n\
                    foo_bucket{le=\"0.01\"} 0\n\
                    foo_bucket{le=\"0.1\"} 8 # {} 0.054\n\
                    foo_bucket{le=\"1\"} 11 # {trace_id=\"KOO5S4vxi0o\"} 0.67\n\
                    foo_bucket{le=\"10\"} 17 # {trace_id=\"oHg5SJYRHA0\"} 9.8 1520879607.789\n\
                    foo_bucket{le=\"+Inf\"} 17 1520879607.789 # {a=\"b\",c=\"\\\"\"} 1 2\n\
                    foo_count 17\n\
                    foo_sum 324789.3 -1.5\n\
                    foo_created{} 1520430000.123\n\
                    # EOF\n";
        let parsed = open_metrics(body);
        let summary: Vec<_> = parsed
            .samples
            .iter()
            .map(|sample| {
                (
                    sample.name,
                    label_pairs(sample),
                    sample.value,
                    sample.timestamp_ms,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("foo_bucket", vec![("le", "0.01")], 0.0, None),
                ("foo_bucket", vec![("le", "0.1")], 8.0, None),
                ("foo_bucket", vec![("le", "1")], 11.0, None),
                ("foo_bucket", vec![("le", "10")], 17.0, None),
                ("foo_bucket", vec![("le", "+Inf")], 17.0, Some(1_520_879_607_789)),
                ("foo_count", vec![], 17.0, None),
                ("foo_sum", vec![], 324_789.3, Some(-1500)),
                ("foo_created", vec![], 1_520_430_000.123, None),
            ]
        );
        assert_eq!(
            parsed.metadata,
            [FamilyMetadata {
                name: "foo".to_owned(),
                metric_type: MetricType::Histogram,
                help: "Some text and \n some \" escaping \\ \\x".to_owned(),
                unit: String::new(),
            }]
        );
    }

    #[test]
    fn open_metrics_timestamps_truncate_like_prometheus() {
        let parsed = open_metrics("a 1 1.001\nb 1 -0.0019\nc 1 1e3\nd 1 1e30\n# EOF");
        let timestamps: Vec<_> = parsed.samples.iter().map(|sample| sample.timestamp_ms).collect();
        assert_eq!(
            timestamps,
            [Some(1000), Some(-1), Some(1_000_000), Some(i64::MAX)]
        );
    }

    #[test]
    fn open_metrics_eof_and_structure() {
        assert!(open_metrics("# EOF").samples.is_empty());
        assert!(open_metrics("# EOF\n").samples.is_empty());
        assert_eq!(open_metrics("a 1\n# EOF").samples.len(), 1);
        let parsed = open_metrics(
            "# TYPE s stateset\ns{s=\"a\"} 1\n# TYPE i info\ni_info{v=\"1\"} 1\n# TYPE g gaugehistogram\n\
             g_bucket{le=\"+Inf\"} 2\ng_gcount 2\ng_gsum 3\n# TYPE u unknown\n# UNIT u_seconds seconds\n\
             # UNIT v \n# HELP h \n# UNIT _seconds seconds\n# EOF\n",
        );
        let names: Vec<_> = parsed.samples.iter().map(|sample| sample.name).collect();
        assert_eq!(names, ["s", "i_info", "g_bucket", "g_gcount", "g_gsum"]);
        let metadata: Vec<_> = parsed
            .metadata
            .iter()
            .map(|family| (family.name.as_str(), family.metric_type, family.unit.as_str()))
            .collect();
        assert_eq!(
            metadata,
            [
                ("s", MetricType::StateSet, ""),
                ("i", MetricType::Info, ""),
                ("g", MetricType::GaugeHistogram, ""),
                ("u", MetricType::Unknown, ""),
                ("u_seconds", MetricType::Unknown, "seconds"),
                ("v", MetricType::Unknown, ""),
                ("h", MetricType::Unknown, ""),
                ("_seconds", MetricType::Unknown, "seconds"),
            ]
        );
    }

    /// Prometheus' `TestOpenMetricsParseErrors` inputs (written anew), with line numbers.
    #[test]
    fn open_metrics_errors_name_the_line_and_prometheus_message() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "data does not end with # EOF"),
            ("\n", 1, "\"INVALID\" \"\\n\" is not a valid start token"),
            ("metric", 1, "expected value after metric, got \"EOF\""),
            ("metric 1", 1, "data does not end with # EOF"),
            ("metric 1\n", 2, "data does not end with # EOF"),
            (
                "metric_total 1 # {aa=\"bb\"} 4",
                1,
                "data does not end with # EOF",
            ),
            ("a\n#EOF\n", 1, "expected value after metric, got \"INVALID\""),
            (
                "a 1\n\n# EOF\n",
                2,
                "\"INVALID\" \"\\n\" is not a valid start token",
            ),
            (" a 1\n#EOF\n", 1, "\"INVALID\" \" \" is not a valid start token"),
            ("9\n#EOF\n", 1, "\"INVALID\" \"9\" is not a valid start token"),
            ("a 1\n#EOF\n", 2, "\"INVALID\" \"E\" is not a valid start token"),
            (
                "# comment\n# EOF\n",
                1,
                "\"INVALID\" \"c\" is not a valid start token",
            ),
            ("#", 1, "\"INVALID\" \" \" is not a valid start token"),
            ("# H", 1, "\"INVALID\" \" \" is not a valid start token"),
            ("# HEL\n", 1, "\"INVALID\" \"\\n\" is not a valid start token"),
            ("# TYPE u untyped\n#EOF\n", 1, "invalid metric type \"untyped\""),
            ("# TYPE c counter \n#EOF\n", 1, "invalid metric type \"counter \""),
            (
                "#  TYPE c counter\n#EOF\n",
                1,
                "\"INVALID\" \" \" is not a valid start token",
            ),
            (
                "# TYPE \n#EOF\n",
                1,
                "expected metric name after TYPE, got \"INVALID\"",
            ),
            ("# TYPE ", 1, "expected metric name after TYPE, got \"EOF\""),
            ("# TYPE m\n#EOF\n", 1, "expected text in TYPE"),
            ("# TYPE m gauge", 1, "expected text in TYPE"),
            (
                "# UNIT metric suffix\n#EOF\n",
                1,
                "unit not a suffix of metric \"metric\"",
            ),
            (
                "# UNIT metricsuffix suffix\n#EOF\n",
                1,
                "unit not a suffix of metric \"metricsuffix\"",
            ),
            ("# UNIT m suffix\n#EOF\n", 1, "unit not a suffix of metric \"m\""),
            (
                "# UNIT seconds seconds\n# EOF\n",
                1,
                "unit not a suffix of metric \"seconds\"",
            ),
            (
                "# UNIT \n#EOF\n",
                1,
                "expected metric name after UNIT, got \"INVALID\"",
            ),
            ("# UNIT m\n#EOF\n", 1, "expected text in UNIT"),
            (
                "# HELP \n#EOF\n",
                1,
                "expected metric name after HELP, got \"INVALID\"",
            ),
            ("# HELP m\n#EOF\n", 1, "expected text in HELP"),
            ("a\t1\n#EOF\n", 1, "expected value after metric, got \"INVALID\""),
            ("a  1\n# EOF\n", 1, "expected value after metric, got \"INVALID\""),
            (
                "a {b=\"c\"} 1\n# EOF\n",
                1,
                "strconv.ParseFloat: parsing \"{b=\\\"c\\\"}\": invalid syntax",
            ),
            (
                "a{b=\"c\"}{d=\"e\"} 1\n# EOF\n",
                1,
                "expected value after metric, got \"BOPEN\"",
            ),
            (
                "a 1\t2\n#EOF\n",
                1,
                "strconv.ParseFloat: parsing \"1\\t2\": invalid syntax",
            ),
            (
                "a 1 2 \n#EOF\n",
                1,
                "expected next entry after timestamp, got \"INVALID\"",
            ),
            (
                "a 1 2 #\n#EOF\n",
                1,
                "expected next entry after timestamp, got \"TIMESTAMP\"",
            ),
            ("a 1 2", 1, "expected next entry after timestamp, got \"EOF\""),
            (
                "a 1 \n# EOF\n",
                1,
                "expected timestamp or # symbol, got \"INVALID\"",
            ),
            (
                "a 1 1z\n#EOF\n",
                1,
                "strconv.ParseFloat: parsing \"1z\": invalid syntax",
            ),
            (" # EOF\n", 1, "\"INVALID\" \" \" is not a valid start token"),
            ("# EOF\na 1", 2, "unexpected data after # EOF"),
            ("a 1\n# EOF\n\n", 3, "unexpected data after # EOF"),
            ("# EOFa 1", 1, "unexpected data after # EOF"),
            ("# EOF ", 1, "unexpected data after # EOF"),
            (
                "#\tTYPE c counter\n",
                1,
                "\"INVALID\" \"\\t\" is not a valid start token",
            ),
            ("# TYPE c  counter\n", 1, "invalid metric type \" counter\""),
            ("# TYPE c untyped\n", 1, "invalid metric type \"untyped\""),
            (
                "a 1 1 1\n# EOF\n",
                1,
                "expected next entry after timestamp, got \"TIMESTAMP\"",
            ),
            ("a{b='c'} 1\n# EOF\n", 1, "expected label value, got \"INVALID\""),
            ("a{b=\"c\",} 1\n# EOF\n", 1, "expected label name, got \"BCLOSE\""),
            (
                "a{,b=\"c\"} 1\n# EOF\n",
                1,
                "expected label name or left brace, got \"COMMA\"",
            ),
            ("a{b=\"c\"d=\"e\"} 1\n# EOF\n", 1, "expected comma, got \"LNAME\""),
            (
                "a{b=\"c\",,d=\"e\"} 1\n# EOF\n",
                1,
                "expected label name, got \"COMMA\"",
            ),
            (
                "a{b=\"c\", d=\"e\"} 1\n# EOF\n",
                1,
                "expected label name, got \"INVALID\"",
            ),
            ("a{b=\"c\"", 1, "expected comma or left brace, got \"EOF\""),
            ("a{b =\"c\"} 1\n# EOF\n", 1, "expected equal, got \"INVALID\""),
            ("a{b=\n# EOF\n", 1, "expected label value, got \"INVALID\""),
            ("a{b=", 1, "expected label value, got \"EOF\""),
            (
                "a{b=\"x\ny\"} 1\n# EOF\n",
                1,
                "expected label value, got \"INVALID\"",
            ),
            (
                "a{b=\"x\\\ny\"} 1\n# EOF\n",
                1,
                "expected label value, got \"INVALID\"",
            ),
            (
                "a true\n",
                1,
                "strconv.ParseFloat: parsing \"true\": invalid syntax",
            ),
            (
                "something_weird{problem=\"\n# EOF\n",
                1,
                "expected label value, got \"INVALID\"",
            ),
            (
                "empty_label_name{=\"\"} 0\n# EOF\n",
                1,
                "expected label name or left brace, got \"EQUAL\"",
            ),
            ("foo 1_2\n\n# EOF\n", 1, "unsupported character in float"),
            ("foo 0x1p-3\n\n# EOF\n", 1, "unsupported character in float"),
            ("foo 0 1_2\n\n# EOF\n", 1, "unsupported character in float"),
            (
                "custom_metric_total 1 # {aa=bb}\n# EOF\n",
                1,
                "expected label value, got \"INVALID\"",
            ),
            (
                "custom_metric_total 1 # {aa=\"bb\"}\n# EOF\n",
                1,
                "expected value after exemplar labels, got \"INVALID\"",
            ),
            (
                "custom_metric_total 1 # {aa=\"bb\"}",
                1,
                "expected value after exemplar labels, got \"EOF\"",
            ),
            (
                "custom_metric_total 1 # {aa=\"bb\"}\"x\"\n# EOF\n",
                1,
                "expected value after exemplar labels, got \"LVALUE\"",
            ),
            (
                "custom_metric 1 # {aa=\"bb\"}",
                1,
                "metric name custom_metric does not support exemplars",
            ),
            (
                "custom_metric_total 1 # {aa=\"bb\",,cc=\"dd\"} 1",
                1,
                "expected label name, got \"COMMA\"",
            ),
            (
                "custom_metric_total 1 # {aa=\"bb\"} 1_2",
                1,
                "unsupported character in float",
            ),
            (
                "custom_metric_total 1 # {aa=\"bb\"} 0x1p-3",
                1,
                "unsupported character in float",
            ),
            (
                "custom_metric_total 1 # {aa=\"bb\"} true",
                1,
                "strconv.ParseFloat: parsing \"true\": invalid syntax",
            ),
            (
                "custom_metric_total 1 # {aa=\"bb\",cc=}",
                1,
                "expected label value, got \"INVALID\"",
            ),
            (
                "custom_metric_total 1 # {aa= \"bb\"} 1",
                1,
                "expected label value, got \"VALUE\"",
            ),
            (
                "custom_metric_total 1 # {b=\u{0}\"ssss\"} 1\n",
                1,
                "expected label value, got \"INVALID\"",
            ),
            (
                "custom_metric_total 1 # {b=\"\u{0}ss\"} 1\n",
                1,
                "expected label value, got \"INVALID\"",
            ),
            (
                "custom_metric_total 1 # {} 1 2 3\n",
                1,
                "expected next entry after exemplar timestamp, got \"TIMESTAMP\"",
            ),
            (
                "custom_metric_total 1 # {} 1 2",
                1,
                "expected next entry after exemplar timestamp, got \"EOF\"",
            ),
            (
                "custom_metric_total 1 # {} 1 \n",
                1,
                "expected timestamp or comment, got \"INVALID\"",
            ),
            ("{b=\"c\",} 1", 1, "\"INVALID\" \"{\" is not a valid start token"),
            (
                "{\"my.metric\"} 1\n# EOF\n",
                1,
                "\"INVALID\" \"{\" is not a valid start token: quoted UTF-8 metric names are not supported",
            ),
            (
                "a{\"my.label\"=\"x\"} 1\n# EOF\n",
                1,
                "expected label name or left brace, got \"INVALID\": quoted UTF-8 label names are not supported",
            ),
            ("a 1 NaN", 1, "invalid timestamp"),
            ("a 1 -Inf", 1, "invalid timestamp"),
            ("a 1 Inf", 1, "invalid timestamp"),
            (
                "a_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 NaN",
                1,
                "invalid exemplar timestamp",
            ),
            (
                "a_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 -Inf",
                1,
                "invalid exemplar timestamp",
            ),
            (
                "a{b=\"1\",b=\"2\"} 1\n# EOF\n",
                1,
                "label name \"b\" is not unique",
            ),
            (
                "a{b=\"\u{0}\"} 1\n#EOF",
                2,
                "\"INVALID\" \"E\" is not a valid start token",
            ),
            (
                "a 1\r\n# EOF\n",
                1,
                "strconv.ParseFloat: parsing \"1\\r\": invalid syntax",
            ),
        ];
        for &(body, line, message) in cases {
            let error = open_metrics_error(body);
            assert_eq!((error.line, error.message.as_str()), (line, message), "{body:?}");
        }
    }

    #[test]
    fn open_metrics_nul_bytes_in_label_values_are_characters() {
        for body in [
            "null_byte_metric{a=\"abc\u{0}\"} 1\n# EOF\n",
            "a{b=\"\u{0}ss\"} 1\n# EOF\n",
            "a{b=\"\u{0}\"} 1\n# EOF",
        ] {
            assert_eq!(open_metrics(body).samples.len(), 1, "{body:?}");
        }
    }

    /// Found by running Prometheus 2.42's own parser on the fuzz corpus: its lexer skips NULs
    /// inside label values, help text and comments, and reads one where a token starts as the
    /// end of the body.
    #[test]
    fn nul_bytes_as_prometheus_lexer_reads_them() {
        let text_errors: &[(&str, &str)] = &[
            (
                "# HELP a\u{0}x\n",
                "linebreak expected after metadata, got \"EOF\"",
            ),
            ("# TYPE a\u{0}gauge\n", "invalid metric type \"\""),
        ];
        for &(body, message) in text_errors {
            assert_eq!(text_error(body).message, message, "{body:?}");
        }
        for body in ["#comment\u{0}\nx y z\n", "# \u{0}\nx y z\n", "#\t\u{0}x\nx y z\n"] {
            assert!(text(body).samples.is_empty(), "{body:?}");
        }
        assert_eq!(text("# with\u{0}nul\na 1\n").samples.len(), 1);
        let parsed = text("# T\u{0}YPE a gauge\n# TYPE\u{0} b counter\n# HELP \u{0}c x\n");
        let metadata: Vec<_> = parsed
            .metadata
            .iter()
            .map(|family| (family.name.as_str(), family.metric_type, family.help.as_str()))
            .collect();
        assert_eq!(
            metadata,
            [
                ("a", MetricType::Gauge, ""),
                ("b", MetricType::Counter, ""),
                ("c", MetricType::Unknown, "x")
            ]
        );
        // A backslash escapes the next character that is not a NUL.
        let parsed = text("a{b=\"x\\\u{0}\"\"} 1\n");
        assert_eq!(parsed.samples[0].labels[0].1, "x\\\u{0}\"");
        let parsed = open_metrics("a{b=\"x\\\u{0}\"\"} 1\n# EOF\n");
        assert_eq!(parsed.samples[0].labels[0].1, "x\\\u{0}\"");

        // NULs after a label value's closing quote are skipped, and the value keeps the quote
        // and all NULs but one.
        let parsed = text("a{b=\"c\"\u{0}\u{0},d=\"e\"} 1\n");
        assert_eq!(label_pairs(&parsed.samples[0]), [("b", "c\"\u{0}"), ("d", "e")]);
        let parsed = open_metrics("a{b=\"c\"\u{0}} 1\n# EOF\n");
        assert_eq!(label_pairs(&parsed.samples[0]), [("b", "c\"")]);
        assert_eq!(
            open_metrics_error("a_total 1 # {b=\"c\"\u{0}} 1\n# EOF\n").message,
            "expected comma or left brace, got \"INVALID\""
        );
        // NULs after a metadata line's line feed are skipped, and the text keeps the line feed.
        let parsed = open_metrics("# HELP a h\n\u{0}\u{0}a 1\n# EOF\n");
        assert_eq!(parsed.metadata[0].help, "h\n\u{0}");
        assert_eq!(parsed.samples.len(), 1);
        assert_eq!(
            open_metrics_error("# TYPE a gauge\n\u{0}# EOF\n").message,
            "invalid metric type \"gauge\\n\""
        );
        assert!(open_metrics("# EOF\n\u{0}\u{0}").samples.is_empty());
        assert!(open_metrics("# E\u{0}OF\u{0}").samples.is_empty());
        assert_eq!(open_metrics("# HE\u{0}LP a x\n# EOF\n").metadata[0].help, "x");
        assert_eq!(open_metrics("# UNIT \u{0}a_s s\n# EOF\n").metadata[0].unit, "s");
        let open_metrics_errors: &[(&str, &str)] = &[
            (
                "# HELP\u{0}\u{0}metric\n",
                "\"INVALID\" \"m\" is not a valid start token",
            ),
            (
                "# \u{0}HELP a b\n",
                "\"INVALID\" \"\\x00\" is not a valid start token",
            ),
            ("# EOF\u{0}x", "unexpected data after # EOF"),
        ];
        for &(body, message) in open_metrics_errors {
            assert_eq!(open_metrics_error(body).message, message, "{body:?}");
        }
    }

    /// Also found against Prometheus 2.42: Go's quoting, and the byte it reports.
    #[test]
    fn error_messages_quote_as_go_does() {
        // The lexer stops at a byte; Go prints it as the character of that code.
        assert_eq!(
            open_metrics_error("\u{3d4} 1\n# EOF\n").message,
            "\"INVALID\" \"\u{cf}\" is not a valid start token"
        );
        assert_eq!(
            open_metrics_error("# TYPE a \u{1680}\u{b}\u{7}\u{406b0}\n# EOF\n").message,
            "invalid metric type \"\\u1680\\v\\a\\U000406b0\""
        );
        // The help or type text loses its first byte, even inside a character.
        assert_eq!(
            text_error("# TYPE a\u{555} x\n").message,
            "invalid metric type \"\\x95 x\""
        );
        // ` # ` not followed by `{` is not read as a ` #` timestamp.
        assert_eq!(
            open_metrics_error("a 1 # x\n# EOF\n").message,
            "expected timestamp or # symbol, got \"INVALID\""
        );
        assert_eq!(
            open_metrics_error("a 1 2 # x\n# EOF\n").message,
            "expected next entry after timestamp, got \"INVALID\""
        );
        assert_eq!(
            open_metrics_error("a_total 1 # {} 2 3 # x\n# EOF\n").message,
            "expected next entry after exemplar timestamp, got \"TIMESTAMP\""
        );
        assert_eq!(
            open_metrics_error("a 1 #\n# EOF\n").message,
            "strconv.ParseFloat: parsing \"#\": invalid syntax"
        );
        assert_eq!(
            text_error("a 1 2 3\n").message,
            "expected next entry after timestamp, got \"TIMESTAMP\""
        );
        assert_eq!(
            text_error("a 1 2 -3\n").message,
            "expected next entry after timestamp, got \"INVALID\""
        );
    }

    #[test]
    fn validity_checks() {
        assert!(is_valid_metric_name("a:b_c9"));
        assert!(is_valid_metric_name(":a"));
        assert!(!is_valid_metric_name(""));
        assert!(!is_valid_metric_name("9a"));
        assert!(!is_valid_metric_name("a.b"));
        assert!(is_valid_label_name("_a9"));
        assert!(!is_valid_label_name(":a"));
        assert!(!is_valid_label_name("a:b"));
        assert!(!is_valid_label_name(""));
    }
}
