//! The logfmt stages: `| logfmt`, `| logfmt --strict --keep-empty` and
//! `| logfmt label="key"`, with the decoder Loki adapted from `go-logfmt`
//! (`pkg/logql/log/logfmt/decode.go`): the same pair boundaries, quoting rules and error
//! messages (`logfmt syntax error at pos 8 : unexpected '"'`).

use obs_logql::{LogfmtExtraction, LogfmtParser};

use crate::labels::{Category, DUPLICATE_SUFFIX, ERR_LOGFMT, LabelsBuilder, sanitize_label_key};

/// A decoder over one line.
#[derive(Debug)]
struct Decoder<'a> {
    line: &'a [u8],
    pos: usize,
    key: Option<&'a [u8]>,
    value: Option<Vec<u8>>,
    error: Option<String>,
}

impl<'a> Decoder<'a> {
    fn new(line: &'a str) -> Decoder<'a> {
        Decoder {
            line: line.as_bytes(),
            pos: 0,
            key: None,
            value: None,
            error: None,
        }
    }

    fn end_of_line(&self) -> bool {
        self.pos >= self.line.len()
    }

    fn syntax_error(&mut self, message: &str) {
        self.error = Some(format!("logfmt syntax error at pos {} : {message}", self.pos + 1));
    }

    fn unexpected_byte(&mut self, byte: u8) {
        let shown = match byte {
            b'"' => "'\"'".to_owned(),
            b'=' => "'='".to_owned(),
            other => format!("'{}'", char::from(other)),
        };
        self.error = Some(format!(
            "logfmt syntax error at pos {} : unexpected {shown}",
            self.pos + 1
        ));
    }

    /// Skips to the next whitespace after a bad pair; always `false`.
    fn skip_value(&mut self) -> bool {
        match self.line[self.pos..].iter().position(|b| *b <= b' ') {
            Some(offset) => self.pos += offset,
            None => self.pos = self.line.len(),
        }
        false
    }

    fn key_has_replacement(key: &[u8], multibyte: bool) -> bool {
        multibyte && String::from_utf8_lossy(key).contains(char::REPLACEMENT_CHARACTER)
    }

    /// Reads the next pair; `false` at the end of the line or on a malformed pair (the error
    /// is kept in `self.error`).
    fn scan_pair(&mut self) -> bool {
        self.key = None;
        self.value = None;
        let line = self.line;
        // Skip leading garbage (spaces and control bytes).
        match line[self.pos..].iter().position(|b| *b > b' ') {
            Some(offset) => self.pos += offset,
            None => {
                self.pos = line.len();
                return false;
            }
        }
        // The key.
        let start = self.pos;
        let mut multibyte = false;
        loop {
            let Some(&byte) = line.get(self.pos) else {
                if self.pos > start {
                    let key = &line[start..self.pos];
                    if Self::key_has_replacement(key, multibyte) {
                        self.syntax_error("invalid key");
                        return false;
                    }
                    self.key = Some(key);
                }
                return true;
            };
            match byte {
                b'=' => {
                    if self.pos > start {
                        let key = &line[start..self.pos];
                        if Self::key_has_replacement(key, multibyte) {
                            self.syntax_error("invalid key");
                            return self.skip_value();
                        }
                        self.key = Some(key);
                    }
                    if self.key.is_none() {
                        self.unexpected_byte(byte);
                        return self.skip_value();
                    }
                    break;
                }
                b'"' => {
                    self.unexpected_byte(byte);
                    return self.skip_value();
                }
                byte if byte <= b' ' => {
                    if self.pos > start {
                        let key = &line[start..self.pos];
                        if Self::key_has_replacement(key, multibyte) {
                            self.syntax_error("invalid key");
                            return false;
                        }
                        self.key = Some(key);
                    }
                    return true;
                }
                byte => {
                    if byte >= 0x80 {
                        multibyte = true;
                    }
                    self.pos += 1;
                }
            }
        }
        // `=`, then the value.
        self.pos += 1;
        let Some(&first) = line.get(self.pos) else {
            return true;
        };
        if first <= b' ' {
            return true;
        }
        if first == b'"' {
            return self.quoted_value();
        }
        let start = self.pos;
        loop {
            let Some(&byte) = line.get(self.pos) else {
                if self.pos > start {
                    self.value = Some(line[start..self.pos].to_vec());
                }
                return true;
            };
            match byte {
                b'=' | b'"' => {
                    self.unexpected_byte(byte);
                    return self.skip_value();
                }
                byte if byte <= b' ' => {
                    if self.pos > start {
                        self.value = Some(line[start..self.pos].to_vec());
                    }
                    return true;
                }
                _ => self.pos += 1,
            }
        }
    }

    fn quoted_value(&mut self) -> bool {
        let line = self.line;
        let start = self.pos;
        let mut has_escape = false;
        let mut escape = false;
        let mut index = self.pos + 1;
        while let Some(&byte) = line.get(index) {
            if escape {
                escape = false;
            } else if byte == b'\\' {
                has_escape = true;
                escape = true;
            } else if byte == b'"' {
                self.pos = index + 1;
                let quoted = &line[start..self.pos];
                if has_escape {
                    match unquote(quoted) {
                        Some(value) => self.value = Some(value),
                        None => {
                            self.syntax_error("invalid quoted value");
                            return false;
                        }
                    }
                } else if quoted.len() > 2 {
                    self.value = Some(quoted[1..quoted.len() - 1].to_vec());
                }
                return true;
            }
            index += 1;
        }
        self.pos = line.len();
        self.syntax_error("unterminated quoted value");
        false
    }
}

fn hex4(data: &[u8]) -> Option<u32> {
    if data.len() < 6 || data[0] != b'\\' || data[1] != b'u' {
        return None;
    }
    let digits = std::str::from_utf8(&data[2..6]).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

/// The unquoting of `encoding/json`, as Loki's logfmt decoder uses it (with `\'` allowed).
fn unquote(quoted: &[u8]) -> Option<Vec<u8>> {
    if quoted.len() < 2 || quoted[0] != b'"' || quoted[quoted.len() - 1] != b'"' {
        return None;
    }
    let inner = &quoted[1..quoted.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut index = 0;
    while index < inner.len() {
        let byte = inner[index];
        match byte {
            b'\\' => {
                let escaped = *inner.get(index + 1)?;
                index += 2;
                match escaped {
                    b'"' | b'\\' | b'/' | b'\'' => out.push(escaped),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        index -= 2;
                        let first = hex4(&inner[index..])?;
                        index += 6;
                        let mut code_point = first;
                        if (0xD800..0xE000).contains(&first) {
                            let pair = hex4(inner.get(index..).unwrap_or_default())
                                .filter(|second| (0xDC00..0xE000).contains(second) && first < 0xDC00);
                            match pair {
                                Some(second) => {
                                    code_point = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                                    index += 6;
                                }
                                None => code_point = 0xFFFD,
                            }
                        }
                        let c = char::from_u32(code_point).unwrap_or(char::REPLACEMENT_CHARACTER);
                        let mut buffer = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                    }
                    _ => return None,
                }
            }
            b'"' => return None,
            byte if byte < b' ' => return None,
            _ => {
                out.push(byte);
                index += 1;
            }
        }
    }
    Some(out)
}

fn value_text(value: Option<Vec<u8>>) -> String {
    let text = String::from_utf8_lossy(&value.unwrap_or_default()).into_owned();
    if text.contains(char::REPLACEMENT_CHARACTER) {
        return text.replace(char::REPLACEMENT_CHARACTER, " ");
    }
    text
}

/// `| logfmt [--strict] [--keep-empty]`: every pair becomes a label.
pub(crate) fn logfmt_parse(line: &str, parser: &LogfmtParser, labels: &mut LabelsBuilder) {
    if labels.no_labels() {
        return;
    }
    let mut decoder = Decoder::new(line);
    while !decoder.end_of_line() {
        if !decoder.scan_pair() {
            if parser.strict {
                break;
            }
            continue;
        }
        let Some(key) = decoder.key else {
            continue;
        };
        let sanitized = sanitize_label_key(&String::from_utf8_lossy(key));
        if sanitized.is_empty() {
            continue;
        }
        let name = if labels.clashes(&sanitized) {
            format!("{sanitized}{DUPLICATE_SUFFIX}")
        } else {
            sanitized
        };
        if !labels.should_extract(&name) || labels.extracted(&name) {
            continue;
        }
        let value = value_text(decoder.value.take());
        if !parser.keep_empty && value.is_empty() {
            continue;
        }
        labels.set(Category::Parsed, &name, &value);
        if labels.all_required_extracted() {
            break;
        }
    }
    if parser.strict
        && let Some(error) = decoder.error.take()
    {
        labels.add_error_label(ERR_LOGFMT, Some(&error));
    }
}

/// `| logfmt label="key", ...`: only the listed keys, each set to the empty value first.
pub(crate) fn logfmt_extract(line: &str, parser: &LogfmtParser, labels: &mut LabelsBuilder) {
    let extractions: &[LogfmtExtraction] = &parser.extractions;
    if labels.no_labels() {
        return;
    }
    for extraction in extractions {
        if !labels.clashes(&extraction.label) {
            labels.set(Category::Parsed, &extraction.label, "");
        }
    }
    let is_label = |name: &str| extractions.iter().any(|extraction| extraction.label == name);
    let mut decoder = Decoder::new(line);
    while !decoder.end_of_line() {
        if !decoder.scan_pair() {
            if parser.strict {
                break;
            }
            continue;
        }
        let Some(key) = decoder.key else {
            continue;
        };
        let sanitized = sanitize_label_key(&String::from_utf8_lossy(key));
        if sanitized.is_empty() || (!is_label(&sanitized) && !labels.should_extract(&sanitized)) {
            continue;
        }
        if !is_label(&sanitized) && labels.extracted(&sanitized) {
            continue;
        }
        let raw = decoder.value.take().unwrap_or_default();
        let value = match String::from_utf8(raw) {
            Ok(text) if !text.contains(char::REPLACEMENT_CHARACTER) => text,
            _ => String::new(),
        };
        let mut name = extractions
            .iter()
            .find(|extraction| extraction.key == sanitized)
            .map_or(sanitized, |extraction| extraction.label.clone());
        if is_label(&name) {
            if labels.clashes(&name) {
                name.push_str(DUPLICATE_SUFFIX);
                if labels.extracted(&name) || !labels.should_extract(&name) {
                    break;
                }
            }
            labels.set(Category::Parsed, &name, &value);
            if labels.all_required_extracted() {
                break;
            }
        }
    }
    if parser.strict
        && let Some(error) = decoder.error.take()
    {
        labels.add_error_label(ERR_LOGFMT, Some(&error));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use obs_core::series::Labels;

    use super::*;
    use crate::labels::ParserHints;

    fn builder(stream: &[(&str, &str)]) -> LabelsBuilder {
        let mut builder = LabelsBuilder::new(Arc::new(ParserHints::default()));
        builder.reset(Arc::new(Labels::from_pairs(stream.iter().copied()).unwrap()), &[]);
        builder
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parser(strict: bool, keep_empty: bool) -> LogfmtParser {
        LogfmtParser {
            strict,
            keep_empty,
            extractions: Vec::new(),
        }
    }

    #[test]
    fn pairs_become_labels() {
        let mut labels = builder(&[("app", "api")]);
        logfmt_parse(
            r#"level=info msg="hello \"world\"" app=x duration=1.5s empty= bare a.b=c"#,
            &parser(false, false),
            &mut labels,
        );
        assert_eq!(
            labels.result_parsed(),
            pairs(&[
                ("a_b", "c"),
                ("app_extracted", "x"),
                ("duration", "1.5s"),
                ("level", "info"),
                ("msg", "hello \"world\""),
            ])
        );
        let mut keep = builder(&[]);
        logfmt_parse("empty= bare x=1", &parser(false, true), &mut keep);
        assert_eq!(
            keep.result_parsed(),
            pairs(&[("bare", ""), ("empty", ""), ("x", "1")])
        );
    }

    #[test]
    fn malformed_pairs_are_skipped_or_strict_errors() {
        let mut lenient = builder(&[]);
        logfmt_parse(r#"a=1 b"c=2 d=3"#, &parser(false, false), &mut lenient);
        assert_eq!(lenient.result_parsed(), pairs(&[("a", "1"), ("d", "3")]));
        let mut strict = builder(&[]);
        logfmt_parse(r#"a=1 b"c=2 d=3"#, &parser(true, false), &mut strict);
        assert_eq!(
            strict.result_parsed(),
            pairs(&[
                ("__error__", "LogfmtParserErr"),
                (
                    "__error_details__",
                    "logfmt syntax error at pos 6 : unexpected '\"'"
                ),
                ("a", "1"),
            ])
        );
        let mut unterminated = builder(&[]);
        logfmt_parse(r#"a="open"#, &parser(true, false), &mut unterminated);
        assert_eq!(
            unterminated.error_details(),
            "logfmt syntax error at pos 8 : unterminated quoted value"
        );
    }

    #[test]
    fn extractions_take_only_listed_keys() {
        let mut labels = builder(&[]);
        let parser = LogfmtParser {
            strict: false,
            keep_empty: false,
            extractions: vec![
                LogfmtExtraction {
                    label: "lvl".to_owned(),
                    key: "level".to_owned(),
                },
                LogfmtExtraction {
                    label: "missing".to_owned(),
                    key: "missing".to_owned(),
                },
            ],
        };
        logfmt_extract("level=warn msg=hi", &parser, &mut labels);
        assert_eq!(labels.result_parsed(), pairs(&[("lvl", "warn"), ("missing", "")]));
    }

    #[test]
    fn hostile_input_never_panics() {
        for input in [
            "=",
            "\"",
            "a=\"\\",
            "a=\"\\u12",
            "a=\"\\ud800\\u\"",
            "é=1",
            "\u{fffd}=1",
            "a==b",
            " ",
        ] {
            let mut labels = builder(&[]);
            logfmt_parse(input, &parser(true, true), &mut labels);
            logfmt_parse(input, &parser(false, false), &mut labels);
        }
    }
}
