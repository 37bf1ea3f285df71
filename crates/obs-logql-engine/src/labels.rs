//! The labels of one log line while it goes through a pipeline, kept in Loki's three
//! categories (`pkg/logql/log/labels.go`):
//!
//! - **stream** labels: the stream's own, indexed labels (the builder's base);
//! - **structured metadata** stored with the entry; a name that clashes with a stream label
//!   gets the suffix `_extracted`;
//! - **parsed** labels, added by parsers and `label_format`; they take precedence over the other
//!   two categories, which lose a label of the same name.
//!
//! `__error__` and `__error_details__` are not labels while the pipeline runs: they are two
//! fields that only label filters, `drop`, `line_format` and the final result see, and the
//! result puts them with the parsed labels.
//!
//! [`ParserHints`] are Loki's parser hints: what a metric query needs from its parsers. They
//! decide whether parsers run at all (`sum(count_over_time({...} | json [1m]))` needs no label,
//! so Loki never parses, and a line that is not JSON raises no error), which keys they take,
//! and whether parser errors are kept as series labels (`sum by (__error__) (...)`).

use std::collections::HashSet;
use std::sync::Arc;

use obs_core::series::Labels;

/// The error label.
pub(crate) const ERROR_LABEL: &str = "__error__";
/// The error details label.
pub(crate) const ERROR_DETAILS_LABEL: &str = "__error_details__";
/// Set on parser errors that a metric query asked to keep (`by (__error__)`).
pub(crate) const PRESERVE_ERROR_LABEL: &str = "__preserve_error__";
/// Suffix of a parsed or metadata label whose name is already taken.
pub(crate) const DUPLICATE_SUFFIX: &str = "_extracted";

/// `__error__` of a JSON parser failure.
pub(crate) const ERR_JSON: &str = "JSONParserErr";
/// `__error__` of a logfmt parser failure (`--strict`).
pub(crate) const ERR_LOGFMT: &str = "LogfmtParserErr";
/// `__error__` of a failed unwrap conversion.
pub(crate) const ERR_SAMPLE_EXTRACTION: &str = "SampleExtractionErr";
/// `__error__` of a numeric, duration or byte-size label filter on an unreadable value.
pub(crate) const ERR_LABEL_FILTER: &str = "LabelFilterErr";
/// `__error__` of a failed `line_format` or `label_format` template.
pub(crate) const ERR_TEMPLATE_FORMAT: &str = "TemplateFormatErr";

/// A label set built by the engine: sorted by name, names unique, no empty values (an empty
/// value is the same as no label, as in Prometheus' data model and `obs_core`'s [`Labels`]).
pub(crate) type LabelSet = Arc<[(String, String)]>;

/// Builds a [`LabelSet`] from pairs in any order; a later pair of the same name wins.
pub(crate) fn label_set(pairs: impl IntoIterator<Item = (String, String)>) -> LabelSet {
    let mut pairs: Vec<(String, String)> = pairs.into_iter().filter(|(_, value)| !value.is_empty()).collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut unique: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        match unique.last_mut() {
            Some(last) if last.0 == name => last.1 = value,
            _ => unique.push((name, value)),
        }
    }
    unique.into()
}

/// The value of `name` in a [`LabelSet`].
pub(crate) fn label_value<'a>(labels: &'a [(String, String)], name: &str) -> Option<&'a str> {
    labels
        .binary_search_by(|(label, _)| label.as_str().cmp(name))
        .ok()
        .and_then(|index| labels.get(index))
        .map(|(_, value)| value.as_str())
}

/// Prometheus' `labels.String()`: `{a="1", b="2"}`, values quoted as Go does.
pub(crate) fn labels_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("{");
    for (index, (name, value)) in pairs.into_iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push('=');
        out.push_str(&obs_logql::units::go_quote(value));
    }
    out.push('}');
    out
}

/// Loki's `sanitizeLabelKey(key, true)`: spaces trimmed, a leading digit prefixed with `_`,
/// every character other than `[a-zA-Z0-9_]` replaced by `_`. Empty when nothing is left.
pub(crate) fn sanitize_label_key(key: &str) -> String {
    let trimmed = key.trim();
    let mut out = String::with_capacity(trimmed.len() + 1);
    if trimmed.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        out.push('_');
    }
    out.extend(trimmed.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

/// The category of a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    /// A stream label.
    Stream = 0,
    /// Structured metadata.
    Metadata = 1,
    /// Added by a parser or `label_format`.
    Parsed = 2,
}

const CATEGORIES: [Category; 3] = [Category::Stream, Category::Metadata, Category::Parsed];

/// Loki's parser hints for one extraction pipeline (`parser_hints.go`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ParserHints {
    /// The labels the query needs; empty: every label.
    pub(crate) required: Vec<String>,
    /// No label is needed at all: parsers do nothing.
    pub(crate) no_labels: bool,
    /// `__error__` is among the required labels: parser errors become series labels instead
    /// of failing the query.
    pub(crate) preserve_error: bool,
}

impl ParserHints {
    /// Loki's `NewParserHint(required, groups, without, noLabels, metricLabel, stages)`.
    pub(crate) fn new(
        required_label_names: &[String],
        groups: &[String],
        without: bool,
        no_labels: bool,
        metric_label: Option<&str>,
    ) -> ParserHints {
        let mut hints: Vec<String> = Vec::new();
        let mut push = |name: &str| {
            if name.is_empty() {
                return;
            }
            let mut add = |name: &str| {
                if !hints.iter().any(|hint| hint == name) {
                    hints.push(name.to_owned());
                }
            };
            add(name);
            if let Some(stripped) = name.strip_suffix(DUPLICATE_SUFFIX) {
                add(stripped);
            }
        };
        for name in required_label_names.iter().chain(groups) {
            push(name);
        }
        if let Some(metric_label) = metric_label {
            push(metric_label);
        }
        let preserve_error = hints.iter().any(|hint| hint == ERROR_LABEL);
        if no_labels {
            if hints.is_empty() {
                return ParserHints {
                    no_labels: true,
                    ..ParserHints::default()
                };
            }
            return ParserHints {
                required: hints,
                no_labels: false,
                preserve_error,
            };
        }
        if without || groups.is_empty() {
            return ParserHints::default();
        }
        ParserHints {
            required: hints,
            no_labels: false,
            preserve_error,
        }
    }
}

/// The labels of the line being processed. One builder serves a whole query: [`reset`]
/// prepares it for the next line.
///
/// [`reset`]: LabelsBuilder::reset
#[derive(Debug)]
pub(crate) struct LabelsBuilder {
    base: Arc<Labels>,
    deleted: Vec<String>,
    added: [Vec<(String, String)>; 3],
    error: String,
    error_details: String,
    hints: Arc<ParserHints>,
    extracted: HashSet<String>,
}

impl LabelsBuilder {
    pub(crate) fn new(hints: Arc<ParserHints>) -> LabelsBuilder {
        LabelsBuilder {
            base: Arc::new(Labels::default()),
            deleted: Vec::new(),
            added: [Vec::new(), Vec::new(), Vec::new()],
            error: String::new(),
            error_details: String::new(),
            hints,
            extracted: HashSet::new(),
        }
    }

    /// Starts a new line of stream `base` with its structured metadata. A metadata name that a
    /// stream label already has gets `_extracted`; `__error__` and `__error_details__` set the
    /// error fields (Loki's `Add`).
    pub(crate) fn reset(&mut self, base: Arc<Labels>, metadata: &[(String, String)]) {
        self.base = base;
        self.deleted.clear();
        for added in &mut self.added {
            added.clear();
        }
        self.error.clear();
        self.error_details.clear();
        self.extracted.clear();
        for (name, value) in metadata {
            let name = if self.base_has(name) {
                format!("{name}{DUPLICATE_SUFFIX}")
            } else {
                name.clone()
            };
            if name == ERROR_LABEL {
                self.error = value.clone();
                continue;
            }
            if name == ERROR_DETAILS_LABEL {
                self.error_details = value.clone();
                continue;
            }
            self.set(Category::Metadata, &name, value);
        }
    }

    /// Whether the stream labels have `name` (Loki's `BaseHas`).
    pub(crate) fn base_has(&self, name: &str) -> bool {
        self.base.get(name).is_some()
    }

    /// Whether `name` was added in `category`.
    pub(crate) fn has_in_category(&self, name: &str, category: Category) -> bool {
        self.added[category as usize]
            .iter()
            .any(|(added, _)| added == name)
    }

    /// Whether a parsed label named `name` would clash with a stream label or metadata, and so
    /// take the `_extracted` suffix.
    pub(crate) fn clashes(&self, name: &str) -> bool {
        self.base_has(name) || self.has_in_category(name, Category::Metadata)
    }

    /// The value and category of `name`: added labels first, then the stream labels unless
    /// deleted (Loki's `GetWithCategory`). `__error__` is not a label here.
    pub(crate) fn get_with_category(&self, name: &str) -> Option<(&str, Category)> {
        for category in CATEGORIES {
            if let Some((_, value)) = self.added[category as usize]
                .iter()
                .find(|(added, _)| added == name)
            {
                return Some((value, category));
            }
        }
        if self.deleted.iter().any(|deleted| deleted == name) {
            return None;
        }
        self.base.get(name).map(|value| (value, Category::Stream))
    }

    /// The value of `name`, if the line has that label.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.get_with_category(name).map(|(value, _)| value)
    }

    /// Sets a label. A parsed label replaces metadata and stream labels of the same name;
    /// metadata replaces a stream label but never a parsed label (Loki's `Set`).
    pub(crate) fn set(&mut self, category: Category, name: &str, value: &str) {
        match category {
            Category::Parsed => {
                self.remove_added(Category::Metadata, name);
                self.remove_added(Category::Stream, name);
                self.extracted.insert(name.to_owned());
            }
            Category::Metadata => {
                self.remove_added(Category::Stream, name);
                if self.has_in_category(name, Category::Parsed) {
                    return;
                }
            }
            Category::Stream => {
                if self.has_in_category(name, Category::Metadata)
                    || self.has_in_category(name, Category::Parsed)
                {
                    return;
                }
            }
        }
        let added = &mut self.added[category as usize];
        match added.iter_mut().find(|(added, _)| added == name) {
            Some(existing) => value.clone_into(&mut existing.1),
            None => added.push((name.to_owned(), value.to_owned())),
        }
    }

    fn remove_added(&mut self, category: Category, name: &str) {
        self.added[category as usize].retain(|(added, _)| added != name);
    }

    /// Deletes a label from every category and hides the stream label (Loki's `Del`).
    pub(crate) fn delete(&mut self, name: &str) {
        for category in CATEGORIES {
            self.remove_added(category, name);
        }
        self.deleted.push(name.to_owned());
    }

    /// Sets `__error__` (replacing any previous error).
    pub(crate) fn set_error(&mut self, error: &str) {
        error.clone_into(&mut self.error);
    }

    /// Sets `__error_details__`.
    pub(crate) fn set_error_details(&mut self, details: &str) {
        details.clone_into(&mut self.error_details);
    }

    /// Loki's `addErrLabel`: a parser error, with details when there are any, and the
    /// `__preserve_error__` label when the query groups by `__error__`.
    pub(crate) fn add_error_label(&mut self, error: &str, details: Option<&str>) {
        self.set_error(error);
        if let Some(details) = details {
            self.set_error_details(details);
        }
        if self.hints.preserve_error {
            self.set(Category::Parsed, PRESERVE_ERROR_LABEL, "true");
        }
    }

    pub(crate) fn error(&self) -> &str {
        &self.error
    }

    pub(crate) fn error_details(&self) -> &str {
        &self.error_details
    }

    pub(crate) fn has_error(&self) -> bool {
        !self.error.is_empty()
    }

    pub(crate) fn reset_error(&mut self) {
        self.error.clear();
    }

    pub(crate) fn reset_error_details(&mut self) {
        self.error_details.clear();
    }

    /// The stream labels of the line.
    pub(crate) fn base_labels(&self) -> &Arc<Labels> {
        &self.base
    }

    /// Whether the line still has exactly its stream labels: nothing added (metadata
    /// included), nothing deleted.
    pub(crate) fn is_unchanged(&self) -> bool {
        !self.changed()
    }

    /// Whether any label was added or deleted since [`LabelsBuilder::reset`].
    fn changed(&self) -> bool {
        !self.deleted.is_empty() || self.added.iter().any(|added| !added.is_empty())
    }

    // Parser hints.

    /// Whether parsers may take `key`.
    pub(crate) fn should_extract(&self, key: &str) -> bool {
        self.hints.required.is_empty() || self.hints.required.iter().any(|required| required == key)
    }

    /// Whether a JSON object under `prefix` may hold a needed key.
    pub(crate) fn should_extract_prefix(&self, prefix: &str) -> bool {
        self.hints.required.is_empty()
            || self
                .hints
                .required
                .iter()
                .any(|required| required.starts_with(prefix))
    }

    /// Whether a parser already took `key` on this line (later parsers leave it alone).
    pub(crate) fn extracted(&self, key: &str) -> bool {
        self.extracted.contains(key)
    }

    /// Whether parsers have nothing to do on this line.
    pub(crate) fn no_labels(&self) -> bool {
        self.hints.no_labels || self.all_required_extracted()
    }

    /// Whether every required label has been taken.
    pub(crate) fn all_required_extracted(&self) -> bool {
        !self.hints.required.is_empty()
            && self
                .hints
                .required
                .iter()
                .all(|required| self.extracted.contains(required))
    }

    // Results.

    /// Every label of the line: stream labels (minus deleted and replaced ones), metadata,
    /// parsed labels, then `__error__` and `__error_details__` when set (Loki's
    /// `UnsortedLabels`).
    pub(crate) fn all_labels(&self) -> Vec<(String, String)> {
        let mut out =
            Vec::with_capacity(self.base.len() + self.added.iter().map(Vec::len).sum::<usize>() + 2);
        out.extend(self.categorized_stream());
        out.extend(self.categorized_metadata());
        out.extend(self.added[Category::Parsed as usize].iter().cloned());
        self.append_errors(&mut out);
        out
    }

    fn append_errors(&self, out: &mut Vec<(String, String)>) {
        if !self.error.is_empty() {
            out.push((ERROR_LABEL.to_owned(), self.error.clone()));
        }
        if !self.error_details.is_empty() {
            out.push((ERROR_DETAILS_LABEL.to_owned(), self.error_details.clone()));
        }
    }

    /// The stream labels still in the stream category.
    fn categorized_stream(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.base.iter().filter_map(move |label| {
            if self.deleted.iter().any(|name| label.name == *name)
                || self.has_in_category(&label.name, Category::Metadata)
                || self.has_in_category(&label.name, Category::Parsed)
            {
                return None;
            }
            let value = self.added[Category::Stream as usize]
                .iter()
                .find(|(name, _)| *name == label.name)
                .map_or_else(|| label.value.to_string(), |(_, value)| value.clone());
            Some((label.name.to_string(), value))
        })
    }

    fn categorized_metadata(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.added[Category::Metadata as usize]
            .iter()
            .filter(|(name, _)| !self.has_in_category(name, Category::Parsed))
            .cloned()
    }

    /// The stream labels of the result: the stream's own labels minus those deleted or
    /// replaced by metadata or parsed labels.
    pub(crate) fn result_stream_labels(&self) -> Labels {
        if !self.changed() {
            return (*self.base).clone();
        }
        self.base.filtered(|label| {
            !(self.deleted.iter().any(|name| label.name == *name)
                || self.has_in_category(&label.name, Category::Metadata)
                || self.has_in_category(&label.name, Category::Parsed))
        })
    }

    /// The structured metadata of the result, sorted by name.
    pub(crate) fn result_metadata(&self) -> Vec<(String, String)> {
        let mut metadata: Vec<(String, String)> = self.categorized_metadata().collect();
        metadata.sort();
        metadata
    }

    /// The parsed labels of the result, with `__error__` and `__error_details__`, sorted.
    pub(crate) fn result_parsed(&self) -> Vec<(String, String)> {
        let mut parsed = self.added[Category::Parsed as usize].clone();
        self.append_errors(&mut parsed);
        parsed.sort();
        parsed
    }

    /// The labels of a metric sample (Loki's `GroupedLabels`): every label when the line has
    /// an error (so that the error is reported), none when the query needs none, else the
    /// labels kept by the grouping (`by`) or not removed by it (`without`).
    pub(crate) fn grouped_labels(&self, grouping: &SampleGrouping) -> LabelSet {
        if self.has_error() {
            return label_set(self.all_labels());
        }
        if grouping.no_labels {
            return LabelSet::from([]);
        }
        let listed = |name: &str| grouping.groups.iter().any(|group| group == name);
        if !self.changed() {
            // Loki's unchanged path: the stream labels alone (no error details).
            return label_set(
                self.base
                    .iter()
                    .filter(|label| grouping.groups.is_empty() || listed(&label.name) != grouping.without)
                    .map(|label| (label.name.to_string(), label.value.to_string())),
            );
        }
        if grouping.groups.is_empty() {
            return label_set(self.all_labels());
        }
        let mut labels: Vec<(String, String)> = Vec::new();
        labels.extend(self.categorized_stream());
        labels.extend(self.categorized_metadata());
        labels.extend(self.added[Category::Parsed as usize].iter().cloned());
        labels.retain(|(name, _)| listed(name) != grouping.without);
        label_set(labels)
    }
}

/// How the samples of a range aggregation are labelled.
#[derive(Debug, Clone, Default)]
pub(crate) struct SampleGrouping {
    /// The labels of `by` / `without`.
    pub(crate) groups: Vec<String>,
    /// `without`.
    pub(crate) without: bool,
    /// `by ()`, or a query that needs no label: every sample has the empty label set.
    pub(crate) no_labels: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(stream: &[(&str, &str)], metadata: &[(&str, &str)]) -> LabelsBuilder {
        let mut builder = LabelsBuilder::new(Arc::new(ParserHints::default()));
        let base = Arc::new(Labels::from_pairs(stream.iter().copied()).unwrap());
        let metadata: Vec<(String, String)> = metadata
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        builder.reset(base, &metadata);
        builder
    }

    #[test]
    fn categories_take_precedence_as_loki_does() {
        let mut labels = builder(
            &[("app", "api"), ("level", "info")],
            &[("trace_id", "t1"), ("app", "x")],
        );
        // Metadata clashing with a stream label is renamed.
        assert_eq!(labels.get("app_extracted"), Some("x"));
        assert_eq!(labels.get("app"), Some("api"));
        labels.set(Category::Parsed, "level", "error");
        assert_eq!(labels.get("level"), Some("error"));
        assert_eq!(labels.result_stream_labels().get("level"), None);
        labels.set(Category::Metadata, "level", "ignored");
        assert_eq!(labels.get("level"), Some("error"));
        labels.delete("app");
        assert_eq!(labels.get("app"), None);
        labels.set_error("JSONParserErr");
        assert_eq!(
            labels.result_parsed(),
            [
                ("__error__".to_owned(), "JSONParserErr".to_owned()),
                ("level".to_owned(), "error".to_owned())
            ]
        );
        assert_eq!(
            labels.result_metadata(),
            [
                ("app_extracted".to_owned(), "x".to_owned()),
                ("trace_id".to_owned(), "t1".to_owned())
            ]
        );
        assert!(labels.result_stream_labels().is_empty());
    }

    #[test]
    fn grouping_keeps_errors_visible() {
        let mut labels = builder(&[("app", "api"), ("pod", "p1")], &[]);
        let by_app = SampleGrouping {
            groups: vec!["app".to_owned()],
            ..SampleGrouping::default()
        };
        assert_eq!(
            &*labels.grouped_labels(&by_app),
            [("app".to_owned(), "api".to_owned())]
        );
        let without_app = SampleGrouping {
            groups: vec!["app".to_owned()],
            without: true,
            no_labels: false,
        };
        assert_eq!(
            &*labels.grouped_labels(&without_app),
            [("pod".to_owned(), "p1".to_owned())]
        );
        labels.set_error("SampleExtractionErr");
        assert_eq!(labels.grouped_labels(&by_app).len(), 3);
    }

    #[test]
    fn hints_follow_loki_rules() {
        let none = ParserHints::new(&[], &[], false, true, None);
        assert!(none.no_labels);
        let by_level = ParserHints::new(&[], &["level".to_owned()], false, false, None);
        assert_eq!(by_level.required, ["level"]);
        let without = ParserHints::new(&[], &["level".to_owned()], true, false, None);
        assert!(without.required.is_empty() && !without.no_labels);
        let errors = ParserHints::new(&[], &["__error__".to_owned()], false, false, None);
        assert!(errors.preserve_error);
        let suffixed = ParserHints::new(&["app_extracted".to_owned()], &[], false, true, None);
        assert_eq!(suffixed.required, ["app_extracted", "app"]);
    }

    #[test]
    fn sanitizes_keys_like_loki() {
        assert_eq!(sanitize_label_key("a.b-c"), "a_b_c");
        assert_eq!(sanitize_label_key(" 1st "), "_1st");
        assert_eq!(sanitize_label_key("é"), "_");
        assert_eq!(sanitize_label_key("  "), "");
    }
}
