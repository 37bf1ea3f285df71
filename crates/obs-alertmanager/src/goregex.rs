//! Regular expressions in Go's RE2 syntax, as Alertmanager compiles them (`^(?:pattern)$`).
//!
//! The rewriting from Go's syntax to the `regex` crate's is `obs_core::goregex`, shared with
//! relabeling.

use std::fmt;

use obs_core::goregex::compile_anchored;

/// A compiled matcher regex: Go RE2 syntax, anchored at both ends like Alertmanager's
/// `regexp.Compile("^(?:" + v + ")$")`. Equality is by source pattern.
#[derive(Clone)]
pub struct GoRegex {
    source: String,
    anchored: regex::Regex,
}

impl GoRegex {
    /// Compiles `source`, anchored. The error is one line naming the pattern.
    pub fn new(source: &str) -> Result<GoRegex, String> {
        // Patterns arrive from the API (silences): bound the compiled program.
        let anchored = compile_anchored(source, 1 << 20)
            .map_err(|message| format!("error parsing regexp {source:?}: {message}"))?;
        Ok(GoRegex {
            source: source.to_owned(),
            anchored,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches all of `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.anchored.is_match(text)
    }
}

impl PartialEq for GoRegex {
    fn eq(&self, other: &GoRegex) -> bool {
        self.source == other.source
    }
}

impl Eq for GoRegex {}

impl fmt::Debug for GoRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GoRegex").field(&self.source).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        GoRegex::new(pattern).expect("pattern compiles").is_match(text)
    }

    #[test]
    fn anchored_with_go_meanings() {
        assert!(matches("foo|bar", "bar"));
        assert!(
            !matches("foo|bar", "foobar"),
            "anchored around the whole alternation"
        );
        assert!(matches(r"\d+", "123"));
        assert!(!matches(r"\d", "٣"), "Go's \\d is ASCII");
        assert!(matches(r"a\<b", "a<b"));
        assert!(matches("a{", "a{"));
        assert!(!matches(".*", "a\nb"), "dot does not match newline without (?s)");
    }

    #[test]
    fn errors_name_the_pattern_on_one_line() {
        let err = GoRegex::new("(").unwrap_err();
        assert!(err.starts_with("error parsing regexp \"(\": "), "{err}");
        assert!(!err.contains('\n'));
    }
}
