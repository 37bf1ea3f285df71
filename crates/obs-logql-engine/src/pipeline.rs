//! A log pipeline compiled for execution: each [`Stage`] of the syntax tree with what it needs
//! at run time (templates parsed, the ANSI regex), applied line by line as Loki's
//! `streamPipeline.Process` does.

use std::sync::{Arc, OnceLock};

use obs_logql::units::{parse_bytes, parse_go_duration, parse_go_float};
use obs_logql::{LabelFilter, LogExpr, MatchOp, NamedMatcher, Stage};

use crate::filters::{ip_scan, line_filter_passes, pattern_matches};
use crate::json;
use crate::labels::{
    Category, DUPLICATE_SUFFIX, ERR_LABEL_FILTER, ERROR_DETAILS_LABEL, ERROR_LABEL, LabelsBuilder,
    PRESERVE_ERROR_LABEL, ParserHints, sanitize_label_key,
};
use crate::logfmt;
use crate::template::{LabelsFormatter, LineFormatter, template_fields};

/// One stage, ready to run.
#[derive(Debug)]
enum Step<'q> {
    LineFilter(&'q obs_logql::LineFilter),
    Json(&'q obs_logql::JsonParser),
    Logfmt(&'q obs_logql::LogfmtParser),
    Regexp(&'q obs_logql::GoRegex),
    Pattern(&'q obs_logql::PatternExpr),
    Unpack,
    LabelFilter(&'q LabelFilter),
    LineFormat(Box<LineFormatter>),
    LabelFormat(Box<LabelsFormatter>),
    Drop(&'q [NamedMatcher]),
    Keep(&'q [NamedMatcher]),
    Decolorize,
}

/// A compiled pipeline.
#[derive(Debug)]
pub(crate) struct Pipeline<'q> {
    steps: Vec<Step<'q>>,
}

impl<'q> Pipeline<'q> {
    /// Compiles the stages of `log`; the error is a bad template.
    pub(crate) fn new(log: &'q LogExpr) -> Result<Pipeline<'q>, String> {
        let mut steps = Vec::with_capacity(log.pipeline.len());
        for stage in &log.pipeline {
            steps.push(match stage {
                Stage::LineFilter(filter) => Step::LineFilter(filter),
                Stage::Json(parser) => Step::Json(parser),
                Stage::Logfmt(parser) => Step::Logfmt(parser),
                Stage::Regexp(regex) => Step::Regexp(regex),
                Stage::Pattern(pattern) => Step::Pattern(pattern),
                Stage::Unpack => Step::Unpack,
                Stage::LabelFilter(filter) => Step::LabelFilter(filter),
                Stage::LineFormat(text) => Step::LineFormat(Box::new(LineFormatter::new(text)?)),
                Stage::LabelFormat(formats) => Step::LabelFormat(Box::new(LabelsFormatter::new(formats)?)),
                Stage::Drop(matchers) => Step::Drop(matchers),
                Stage::Keep(matchers) => Step::Keep(matchers),
                Stage::Decolorize => Step::Decolorize,
            });
        }
        Ok(Pipeline { steps })
    }

    /// Runs the line through every stage: the resulting line, or `None` when a filter drops
    /// it. `labels` must have been [reset](LabelsBuilder::reset) for the line.
    pub(crate) fn process(
        &self,
        timestamp_ns: i64,
        line: String,
        labels: &mut LabelsBuilder,
    ) -> Option<String> {
        let mut line = line;
        for step in &self.steps {
            match step {
                Step::LineFilter(filter) => {
                    if !line_filter_passes(filter, &line) {
                        return None;
                    }
                }
                Step::Json(parser) => {
                    if parser.extractions.is_empty() {
                        json::json_parse(&line, labels);
                    } else {
                        json::json_extract(&line, &parser.extractions, labels);
                    }
                }
                Step::Logfmt(parser) => {
                    if parser.extractions.is_empty() {
                        logfmt::logfmt_parse(&line, parser, labels);
                    } else {
                        logfmt::logfmt_extract(&line, parser, labels);
                    }
                }
                Step::Regexp(regex) => regexp_parse(regex, &line, labels),
                Step::Pattern(pattern) => pattern_parse(pattern, &line, labels),
                Step::Unpack => line = json::unpack(line, labels),
                Step::LabelFilter(filter) => {
                    if !label_filter_passes(filter, labels) {
                        return None;
                    }
                }
                Step::LineFormat(formatter) => line = formatter.format(timestamp_ns, line, labels),
                Step::LabelFormat(formatter) => formatter.format(timestamp_ns, &line, labels),
                Step::Drop(matchers) => drop_labels(matchers, labels),
                Step::Keep(matchers) => keep_labels(matchers, labels),
                Step::Decolorize => line = decolorize(line),
            }
        }
        Some(line)
    }
}

/// The labels a stage reads, for parser hints (Loki's `RequiredLabelNames`).
pub(crate) fn required_label_names(log: &LogExpr, post_filters: &[LabelFilter]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !names.iter().any(|known| known == name) {
            names.push(name.to_owned());
        }
    };
    let filters = log.pipeline.iter().filter_map(|stage| match stage {
        Stage::LabelFilter(filter) => Some(filter),
        _ => None,
    });
    for filter in filters.chain(post_filters) {
        for name in filter_label_names(filter) {
            add(name);
        }
    }
    for stage in &log.pipeline {
        match stage {
            Stage::LineFormat(text) => template_fields(text).iter().for_each(|name| add(name)),
            Stage::LabelFormat(formats) => {
                for format in formats {
                    match &format.source {
                        obs_logql::LabelFormatSource::Rename(source) => add(source),
                        obs_logql::LabelFormatSource::Template(text) => {
                            template_fields(text).iter().for_each(|name| add(name));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    names
}

/// The labels a label filter reads; a string matcher that accepts every value (`=~".*"`)
/// reads none, as Loki turns it into a no-op.
fn filter_label_names(filter: &LabelFilter) -> Vec<&str> {
    match filter {
        LabelFilter::And(children) | LabelFilter::Or(children) => {
            children.iter().flat_map(filter_label_names).collect()
        }
        LabelFilter::Matcher(matcher) if matcher.op() == MatchOp::Regex && matcher.value() == ".*" => {
            Vec::new()
        }
        leaf => leaf.leaf_name().into_iter().collect(),
    }
}

/// `| regexp "(?P<name>...)"`: the named groups of the first match.
fn regexp_parse(regex: &obs_logql::GoRegex, line: &str, labels: &mut LabelsBuilder) {
    let regex = regex.regex();
    let Some(captures) = regex.captures(line) else {
        return;
    };
    for (index, name) in regex.capture_names().enumerate() {
        let Some(name) = name else {
            continue;
        };
        let sanitized = sanitize_label_key(name);
        if sanitized.is_empty() {
            continue;
        }
        let key = if labels.clashes(&sanitized) {
            format!("{sanitized}{DUPLICATE_SUFFIX}")
        } else {
            sanitized
        };
        if !labels.should_extract(&key) || labels.extracted(&key) {
            continue;
        }
        let value = captures.get(index).map_or("", |group| group.as_str());
        labels.set(Category::Parsed, &key, value);
    }
}

/// `| pattern "<name> ..."`.
fn pattern_parse(pattern: &obs_logql::PatternExpr, line: &str, labels: &mut LabelsBuilder) {
    if labels.no_labels() {
        return;
    }
    let values = pattern_matches(pattern, line);
    for (name, value) in pattern.capture_names().zip(values) {
        let key = if labels.clashes(name) {
            format!("{name}{DUPLICATE_SUFFIX}")
        } else {
            name.to_owned()
        };
        if labels.extracted(&key) || !labels.should_extract(&key) {
            continue;
        }
        labels.set(Category::Parsed, &key, value);
    }
}

/// Whether the line passes a label filter (`pkg/logql/log/label_filter.go`). Conversion
/// errors set `__error__` (unless one is already set) and keep the line; `and` evaluates
/// every side, `or` stops at the first that passes.
pub(crate) fn label_filter_passes(filter: &LabelFilter, labels: &mut LabelsBuilder) -> bool {
    match filter {
        LabelFilter::And(children) => {
            let mut all = true;
            for child in children {
                all &= label_filter_passes(child, labels);
            }
            all
        }
        LabelFilter::Or(children) => children.iter().any(|child| label_filter_passes(child, labels)),
        LabelFilter::Matcher(matcher) => {
            let value = if matcher.name() == ERROR_LABEL {
                labels.error()
            } else {
                labels.get(matcher.name()).unwrap_or_default()
            };
            matcher.matches(value)
        }
        LabelFilter::Number { name, op, value } => {
            compare_label(labels, name, parse_go_float, |found| op.compare(found, *value))
        }
        LabelFilter::Duration { name, op, value } => {
            compare_label(labels, name, parse_go_duration, |found| {
                op.compare(found, value.as_nanos())
            })
        }
        LabelFilter::Bytes { name, op, value } => {
            compare_label(labels, name, parse_bytes, |found| op.compare(found, *value))
        }
        LabelFilter::Ip {
            name,
            negated,
            pattern,
        } => {
            if labels.has_error() {
                return true;
            }
            let Some(value) = labels.get(name) else {
                return false;
            };
            ip_scan(pattern.matcher(), value) != *negated
        }
    }
}

fn compare_label<T>(
    labels: &mut LabelsBuilder,
    name: &str,
    parse: fn(&str) -> Result<T, String>,
    compare: impl FnOnce(T) -> bool,
) -> bool {
    let Some(text) = labels.get(name) else {
        return false;
    };
    match parse(text) {
        Ok(found) => compare(found),
        Err(details) => {
            if !labels.has_error() {
                labels.set_error(ERR_LABEL_FILTER);
                labels.set_error_details(&details);
            }
            true
        }
    }
}

/// `| drop a, b="v"` (`drop_labels.go`): `__error__` and `__error_details__` clear the error.
fn drop_labels(matchers: &[NamedMatcher], labels: &mut LabelsBuilder) {
    for item in matchers {
        match item {
            NamedMatcher::Name(name) => {
                if name == ERROR_LABEL {
                    labels.reset_error();
                } else if name == ERROR_DETAILS_LABEL {
                    labels.reset_error_details();
                } else if labels.get(name).is_some() {
                    labels.delete(name);
                }
            }
            NamedMatcher::Matcher(matcher) => {
                let name = matcher.name();
                if name == ERROR_LABEL {
                    if matcher.matches(labels.error()) {
                        labels.reset_error();
                    }
                } else if name == ERROR_DETAILS_LABEL {
                    if matcher.matches(labels.error_details()) {
                        labels.reset_error_details();
                    }
                } else if matcher.matches(labels.get(name).unwrap_or_default()) {
                    labels.delete(name);
                }
            }
        }
    }
}

/// `| keep a, b="v"` (`keep_labels.go`): every other label is deleted; the error labels stay.
fn keep_labels(matchers: &[NamedMatcher], labels: &mut LabelsBuilder) {
    if matchers.is_empty() {
        return;
    }
    for (name, value) in labels.all_labels() {
        if matches!(
            name.as_str(),
            ERROR_LABEL | ERROR_DETAILS_LABEL | PRESERVE_ERROR_LABEL
        ) {
            continue;
        }
        let keep = matchers.iter().any(|item| match item {
            NamedMatcher::Name(kept) => *kept == name,
            NamedMatcher::Matcher(matcher) => matcher.name() == name && matcher.matches(&value),
        });
        if !keep {
            labels.delete(&name);
        }
    }
}

/// `| decolorize`: ANSI escape sequences removed (Loki's pattern, from `acarl005/stripansi`).
fn decolorize(line: String) -> String {
    static ANSI: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let ansi = ANSI.get_or_init(|| {
        regex::Regex::new(
            r"[\x1B\x{9B}][\[\]()#;?]*(?:(?:(?:[a-zA-Z0-9]*(?:;[a-zA-Z0-9]*)*)?\x07)|(?:(?:[0-9]{1,4}(?:;[0-9]{0,4})*)?[0-9A-PRZcf-ntqry=><~]))",
        )
        .ok()
    });
    match ansi {
        Some(ansi) if ansi.is_match(&line) => ansi.replace_all(&line, "").into_owned(),
        _ => line,
    }
}

/// The hints of a log query: every label is wanted.
pub(crate) fn log_query_hints() -> Arc<ParserHints> {
    Arc::new(ParserHints::default())
}

#[cfg(test)]
mod tests {
    use obs_core::series::Labels;

    use super::*;

    struct Run {
        line: Option<String>,
        labels: LabelsBuilder,
    }

    fn run(query: &str, stream: &[(&str, &str)], line: &str) -> Run {
        let expr = obs_logql::parse(query).unwrap();
        let log = expr.as_log().unwrap();
        let pipeline = Pipeline::new(log).unwrap();
        let mut labels = LabelsBuilder::new(log_query_hints());
        labels.reset(Arc::new(Labels::from_pairs(stream.iter().copied()).unwrap()), &[]);
        let line = pipeline.process(1_000, line.to_owned(), &mut labels);
        Run { line, labels }
    }

    fn parsed(run: &Run) -> Vec<(String, String)> {
        run.labels.result_parsed()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn regexp_extracts_named_groups() {
        let groups = run(
            r#"{app="a"} | regexp "(?P<method>\\w+) (?P<path>\\S+)( (?P<opt>x))?""#,
            &[("app", "a")],
            "GET /api",
        );
        assert_eq!(
            parsed(&groups),
            pairs(&[("method", "GET"), ("opt", ""), ("path", "/api")])
        );
        let clash = run(r#"{app="a"} | regexp "(?P<app>\\w+)""#, &[("app", "a")], "web");
        assert_eq!(parsed(&clash), pairs(&[("app_extracted", "web")]));
    }

    #[test]
    fn numeric_filters_convert_or_flag_errors() {
        let query = r#"{app="a"} | logfmt | status >= 500"#;
        assert!(run(query, &[("app", "a")], "status=503").line.is_some());
        assert!(run(query, &[("app", "a")], "status=200").line.is_none());
        assert!(run(query, &[("app", "a")], "other=1").line.is_none());
        let bad = run(query, &[("app", "a")], "status=abc");
        assert!(bad.line.is_some());
        assert_eq!(
            parsed(&bad),
            pairs(&[
                ("__error__", "LabelFilterErr"),
                (
                    "__error_details__",
                    r#"strconv.ParseFloat: parsing "abc": invalid syntax"#
                ),
                ("status", "abc"),
            ])
        );
        let duration = r#"{app="a"} | logfmt | took > 1s"#;
        assert!(run(duration, &[("app", "a")], "took=1500ms").line.is_some());
        assert!(run(duration, &[("app", "a")], "took=500ms").line.is_none());
        let bytes = r#"{app="a"} | logfmt | size > 1KB"#;
        assert!(run(bytes, &[("app", "a")], "size=2KB").line.is_some());
        assert!(run(bytes, &[("app", "a")], "size=999").line.is_none());
        let ip = r#"{app="a"} | logfmt | addr = ip("10.0.0.0/8")"#;
        assert!(run(ip, &[("app", "a")], "addr=10.1.2.3").line.is_some());
        assert!(run(ip, &[("app", "a")], "addr=11.1.2.3").line.is_none());
    }

    #[test]
    fn and_or_evaluate_like_loki() {
        let query = r#"{app="a"} | logfmt | level="error" or status >= 500 and path=~"/api.*""#;
        assert!(run(query, &[("app", "a")], "level=error").line.is_some());
        assert!(
            run(query, &[("app", "a")], "status=503 path=/api/x")
                .line
                .is_some()
        );
        assert!(run(query, &[("app", "a")], "status=503 path=/web").line.is_none());
        let error_filter = r#"{app="a"} | json | __error__="""#;
        assert!(run(error_filter, &[("app", "a")], "not json").line.is_none());
        assert!(run(error_filter, &[("app", "a")], r#"{"a":1}"#).line.is_some());
        let error_details = r#"{app="a"} | json | __error_details__!="""#;
        // Loki's label filters do not see the details (they are not a label yet).
        assert!(run(error_details, &[("app", "a")], "not json").line.is_none());
    }

    #[test]
    fn drop_and_keep() {
        let dropped = run(
            r#"{app="a", env="prod"} | logfmt | drop level, env, __error__, status="200""#,
            &[("app", "a"), ("env", "prod")],
            "level=info status=200 x=1",
        );
        assert_eq!(parsed(&dropped), pairs(&[("x", "1")]));
        assert_eq!(dropped.labels.result_stream_labels().get("env"), None);
        let errors = run(
            r#"{app="a"} | json | drop __error__, __error_details__"#,
            &[("app", "a")],
            "x",
        );
        assert!(parsed(&errors).is_empty());
        let kept = run(
            r#"{app="a", env="prod"} | logfmt | keep level, x="2""#,
            &[("app", "a"), ("env", "prod")],
            "level=info x=1 y=2",
        );
        assert_eq!(parsed(&kept), pairs(&[("level", "info")]));
        assert!(kept.labels.result_stream_labels().is_empty());
    }

    #[test]
    fn line_rewriting_stages() {
        let formatted = run(
            r#"{app="a"} | logfmt | line_format "{{.level | upper}}: {{.msg}}" |= "INFO""#,
            &[("app", "a")],
            r#"level=info msg="hello there""#,
        );
        assert_eq!(formatted.line.as_deref(), Some("INFO: hello there"));
        let colors = run(
            r#"{app="a"} | decolorize"#,
            &[("app", "a")],
            "\u{1b}[31mred\u{1b}[0m plain",
        );
        assert_eq!(colors.line.as_deref(), Some("red plain"));
        let relabelled = run(
            r#"{app="a"} | logfmt | label_format lvl=level, combined="{{.app}}/{{.level}}""#,
            &[("app", "a")],
            "level=warn",
        );
        assert_eq!(parsed(&relabelled), pairs(&[("combined", "a/"), ("lvl", "warn")]));
    }

    #[test]
    fn later_parsers_do_not_overwrite_earlier_ones() {
        let both = run(
            r#"{app="a"} | logfmt | regexp "level=(?P<level>\\w+) (?P<x>\\w+)""#,
            &[("app", "a")],
            "level=info extra",
        );
        assert_eq!(parsed(&both), pairs(&[("level", "info"), ("x", "extra")]));
    }

    #[test]
    fn required_names_feed_hints() {
        let expr = obs_logql::parse(
            r#"{app="a"} | json | status >= 500 | level=~".*" | line_format "{{.msg}}" | label_format a=b"#,
        )
        .unwrap();
        let names = required_label_names(expr.as_log().unwrap(), &[]);
        assert_eq!(names, ["status", "msg", "b"]);
    }
}
