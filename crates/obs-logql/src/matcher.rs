//! Regular expressions in Go's syntax and the label matchers built on them.
//!
//! LogQL regexes are Go RE2 regexes. They are translated with `obs_core::goregex` and compiled
//! once, at parse time, so an invalid one is a parse error and the engine never recompiles:
//!
//! - line filters (`|~`, `!~`) and the `regexp` parser search anywhere in the line;
//! - label matchers (stream selectors, label filters, `drop`/`keep`) match the whole value,
//!   with `.` matching a newline, as Prometheus' `labels.Matcher` (which Loki uses) does;
//! - `label_replace` matches the whole value, `.` not matching a newline (Loki compiles
//!   `^(?:re)$` with Go's defaults).

use std::fmt;

use obs_core::goregex::{go_syntax_to_rust, regex_error_message};
use obs_core::series::{MatchOp, Matcher};

/// The most bytes one compiled regular expression may take. Realistic patterns need a few
/// KiB; a bound keeps a hostile query (`.{1000}{1000}`) from taking memory and time.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How a regular expression is applied to text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchoring {
    /// Matches anywhere (line filters, the `regexp` parser).
    Unanchored,
    /// Matches the whole text (`label_replace`).
    Anchored,
    /// Matches the whole text, `.` matching `\n` too (label matchers).
    AnchoredDotMatchesNewline,
}

/// A regular expression in Go's RE2 syntax, compiled.
///
/// Two values are equal when their source text is: how a regex is applied (anchored or not)
/// follows from where it stands in the query.
#[derive(Clone)]
pub struct GoRegex {
    source: String,
    regex: regex::Regex,
}

impl GoRegex {
    /// Compiles `source` (Go syntax); the error is the one-line reason.
    pub(crate) fn compile(source: &str, anchoring: Anchoring) -> Result<GoRegex, String> {
        let translated = go_syntax_to_rust(source);
        let pattern = match anchoring {
            Anchoring::Unanchored => translated,
            Anchoring::Anchored | Anchoring::AnchoredDotMatchesNewline => format!("^(?:{translated})$"),
        };
        let regex = regex::RegexBuilder::new(&pattern)
            .octal(true)
            .dot_matches_new_line(anchoring == Anchoring::AnchoredDotMatchesNewline)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|err| regex_error_message(&err))?;
        Ok(GoRegex {
            source: source.to_owned(),
            regex,
        })
    }

    /// The pattern as the query wrote it (Go syntax).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The compiled expression (its anchoring already applied).
    pub fn regex(&self) -> &regex::Regex {
        &self.regex
    }

    /// Whether the expression matches `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for GoRegex {
    fn eq(&self, other: &GoRegex) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for GoRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GoRegex").field(&self.source).finish()
    }
}

/// A label matcher: `name="v"`, `name!="v"`, `name=~"re"` or `name!~"re"`.
///
/// Regexes match the whole value, with Go's syntax and `.` matching a newline (Prometheus'
/// `labels.Matcher`, which Loki uses). A missing label has the value `""`.
///
/// This is not `obs_core::series::Matcher`: that type compiles the `regex` crate's syntax,
/// not Go's, and compares by identity of its compiled regex; [`LabelMatcher::to_series_matcher`]
/// converts for storage code that takes it.
#[derive(Clone, PartialEq)]
pub struct LabelMatcher {
    name: String,
    op: MatchOp,
    value: String,
    regex: Option<GoRegex>,
}

impl LabelMatcher {
    /// A matcher; a regex value is compiled here (Go syntax). The error is the one-line reason.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<LabelMatcher, String> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                GoRegex::compile(&value, Anchoring::AnchoredDotMatchesNewline)
                    .map_err(|reason| format!("error parsing regexp {value:?}: {reason}"))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(LabelMatcher {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// The label name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The comparison.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value, or the regex as written (Go syntax).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The compiled regex of `=~` and `!~` matchers.
    pub fn regex(&self) -> Option<&GoRegex> {
        self.regex.as_ref()
    }

    /// Whether a label value (`""` when the label is missing) matches.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(value),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether the matcher accepts a stream without the label: such a matcher cannot narrow
    /// an index lookup on its own.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// The same matcher as the storage layer's type (its regex translated to the `regex`
    /// crate's syntax).
    pub fn to_series_matcher(&self) -> Result<Matcher, regex::Error> {
        match self.op {
            MatchOp::Equal | MatchOp::NotEqual => Matcher::new(self.op, &self.name, &self.value),
            MatchOp::Regex | MatchOp::NotRegex => Matcher::new(
                self.op,
                &self.name,
                format!("(?s:{})", go_syntax_to_rust(&self.value)),
            ),
        }
    }
}

impl fmt::Debug for LabelMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelMatcher")
            .field("name", &self.name)
            .field("op", &self.op)
            .field("value", &self.value)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_follow_go_syntax_and_anchoring() {
        let line = GoRegex::compile(r"err\w+", Anchoring::Unanchored).unwrap();
        assert!(line.is_match("an error here"));
        assert!(!line.is_match("err"));
        let digits = GoRegex::compile(r"\d+", Anchoring::Anchored).unwrap();
        assert!(digits.is_match("123"));
        assert!(!digits.is_match("123a"));
        // Go's \d is ASCII only.
        assert!(!digits.is_match("١٢٣"));
        assert!(GoRegex::compile("(", Anchoring::Unanchored).is_err());
        assert!(GoRegex::compile("a{1000}{1000}", Anchoring::Unanchored).is_err());
    }

    #[test]
    fn matchers_match_whole_values_across_newlines() {
        let matcher = LabelMatcher::new(MatchOp::Regex, "app", "a.*b").unwrap();
        assert!(matcher.matches("a\nb"));
        assert!(!matcher.matches("xa\nb"));
        let not_regex = LabelMatcher::new(MatchOp::NotRegex, "app", "foo|bar").unwrap();
        assert!(not_regex.matches(""));
        assert!(!not_regex.matches("foo"));
        assert!(
            LabelMatcher::new(MatchOp::Equal, "app", "")
                .unwrap()
                .matches_empty()
        );
        let error = LabelMatcher::new(MatchOp::Regex, "app", "(").unwrap_err();
        assert!(error.starts_with("error parsing regexp \"(\": "), "{error}");
    }

    #[test]
    fn series_matchers_keep_the_meaning() {
        let matcher = LabelMatcher::new(MatchOp::Regex, "app", r"a\d.b").unwrap();
        let series = matcher.to_series_matcher().unwrap();
        for value in ["a1xb", "a1\nb", "a٣xb", "xa1xb"] {
            assert_eq!(series.matches(value), matcher.matches(value), "{value:?}");
        }
    }
}
