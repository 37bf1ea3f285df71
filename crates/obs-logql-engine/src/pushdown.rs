//! What the engine asks of a [`LogSource`](crate::LogSource) beyond the stream selector and
//! the time span: substrings every line contains and correlation keys every entry carries.
//!
//! # Soundness of key pushdown
//!
//! A key `(name, value)` is pushed only when every entry that can reach the end of the
//! pipeline carries it in the source's index, so that the source drops nothing the query
//! could return. The source indexes a key from the stream labels, else the structured
//! metadata, else the first top-level field of a JSON or logfmt line with that name.
//!
//! Take a label filter `name="value"` (non-empty `value`) that is a top-level conjunct (the
//! filter itself or a member of its top-level `and`): a line passes it only if, at that point
//! of the pipeline, label `name` is `value`. When every stage before it is a line filter, a
//! label filter, or `| json` / `| logfmt` without parameters, label `name` can only come from:
//!
//! 1. the stream labels — structured metadata and parsers never replace a stream label: a
//!    clashing name becomes `name_extracted` (Loki's `BaseHas` checks), and the index looks at
//!    stream labels first;
//! 2. else structured metadata — parsers rename a field clashing with metadata the same way,
//!    and the index looks at metadata second;
//! 3. else the first field a parser read with that name: `| json` and `| logfmt` take the
//!    first occurrence and never overwrite a label already extracted; the index takes the
//!    first top-level field.
//!
//! Line filters remove lines but change no label; label filters change no label except
//! `__error__` (never indexed); `| json` and `| logfmt` without parameters only add labels.
//! `regexp`, `pattern`, `unpack`, parameterised parsers, `label_format`, `line_format`
//! (it feeds later parsers), `drop` and `keep` can create, rename or remove `name`, so no key
//! is pushed from a filter after them. A value longer than 256 bytes is not indexed and not
//! pushed; an empty value is satisfied by a missing label and not pushed.
//!
//! The one shape of data the index cannot see is a label whose name a parser builds rather
//! than reads: a nested JSON object flattened into the name (`{"run":{"id":"x"}}` gives
//! `run_id`) or a key that sanitizes to it (`run-id=x`). A source that also indexes those
//! spellings closes the gap; one that does not can miss such lines.

use obs_logql::{LabelFilter, LogExpr, Stage};

/// The longest value a source indexes as a correlation key.
pub(crate) const MAX_KEY_VALUE_BYTES: usize = 256;

/// Substrings every line passing the pipeline contains, as stored: `|=` filters with one
/// string, before any stage that rewrites the line.
pub(crate) fn line_contains(log: &LogExpr) -> Vec<String> {
    let mut substrings: Vec<String> = Vec::new();
    for alternatives in log.required_line_substrings() {
        if let [single] = alternatives.as_slice()
            && !substrings.iter().any(|known| known == single)
        {
            substrings.push((*single).to_owned());
        }
    }
    substrings
}

/// The correlation keys every entry passing the pipeline carries (see the module docs).
/// `post_filters` are the label filters after an unwrap, which run after the whole pipeline.
pub(crate) fn correlation_keys(
    log: &LogExpr,
    post_filters: &[LabelFilter],
    indexed_keys: &[String],
) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    if indexed_keys.is_empty() {
        return keys;
    }
    let mut collect = |filter: &LabelFilter| {
        for (name, value) in filter.required_equalities() {
            let pushable = !value.is_empty()
                && value.len() <= MAX_KEY_VALUE_BYTES
                && indexed_keys.iter().any(|indexed| indexed == name);
            if pushable
                && !keys
                    .iter()
                    .any(|(known, known_value)| known == name && known_value == value)
            {
                keys.push((name.to_owned(), value.to_owned()));
            }
        }
    };
    for stage in &log.pipeline {
        match stage {
            Stage::LineFilter(_) => {}
            Stage::LabelFilter(filter) => collect(filter),
            Stage::Json(parser) if parser.extractions.is_empty() => {}
            Stage::Logfmt(parser) if parser.extractions.is_empty() => {}
            _ => return keys,
        }
    }
    for filter in post_filters {
        collect(filter);
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(query: &str) -> Vec<(String, String)> {
        let expr = obs_logql::parse(query).unwrap();
        let indexed = vec!["run_id".to_owned(), "session_id".to_owned()];
        match &expr {
            obs_logql::Expr::Log(log) => correlation_keys(log, &[], &indexed),
            obs_logql::Expr::Sample(sample) => {
                let range = sample.log_ranges()[0];
                let post = range
                    .unwrap
                    .as_ref()
                    .map(|u| u.post_filters.as_slice())
                    .unwrap_or_default();
                correlation_keys(&range.log, post, &indexed)
            }
        }
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn keys_are_pushed_only_when_sound() {
        assert_eq!(keys(r#"{app="j"} | json | run_id="r1""#), [pair("run_id", "r1")]);
        assert_eq!(
            keys(r#"{app="j"} |= "x" | logfmt --strict | level="info", run_id="r1" | session_id="s""#),
            [pair("run_id", "r1"), pair("session_id", "s")]
        );
        assert_eq!(keys(r#"{app="j"} | run_id="r1""#), [pair("run_id", "r1")]);
        // Not top-level conjuncts, not equalities, not indexed, empty values.
        assert!(keys(r#"{app="j"} | json | run_id="r1" or level="x""#).is_empty());
        assert!(keys(r#"{app="j"} | json | run_id=~"r1""#).is_empty());
        assert!(keys(r#"{app="j"} | json | level="error""#).is_empty());
        assert!(keys(r#"{app="j"} | json | run_id="""#).is_empty());
        // A stage that can create or rename labels before the filter.
        for stage in [
            r#"regexp "(?P<run_id>\\w+)""#,
            r#"pattern "<run_id> <_>""#,
            "unpack",
            r#"json run_id="other""#,
            r#"label_format run_id=x"#,
            r#"line_format "{{.x}}" | json"#,
            "drop level",
            "keep run_id",
        ] {
            let query = format!(r#"{{app="j"}} | {stage} | run_id="r1""#);
            assert!(keys(&query).is_empty(), "{query}");
        }
        // Filters before such a stage still count.
        assert_eq!(
            keys(r#"{app="j"} | json | run_id="r1" | regexp "(?P<x>.)""#),
            [pair("run_id", "r1")]
        );
        let long = "v".repeat(MAX_KEY_VALUE_BYTES + 1);
        assert!(keys(&format!(r#"{{app="j"}} | json | run_id="{long}""#)).is_empty());
        assert_eq!(
            keys(r#"sum(rate({app="j"} | json | unwrap took | run_id="r1" [1m]))"#),
            [pair("run_id", "r1")]
        );
    }

    #[test]
    fn line_substrings_are_single_alternatives() {
        let expr =
            obs_logql::parse(r#"{app="j"} |= "a" |= "b" or "c" != "d" |~ "e" | line_format "x" |= "f""#)
                .unwrap();
        assert_eq!(line_contains(expr.as_log().unwrap()), ["a"]);
    }
}
