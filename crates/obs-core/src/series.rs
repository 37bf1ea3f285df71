//! The Prometheus data model shared by the metrics store and the query engine: label sets,
//! matchers, and the [`MetricsQuerier`] trait through which PromQL reads storage.
//!
//! Contract of the trait (as Prometheus' `storage/interface.go`): times are milliseconds since
//! the Unix epoch, `mint` and `maxt` are **inclusive**, series come sorted by their label sets,
//! samples sorted by timestamp with unique timestamps, and label sets are sorted by name.

use std::borrow::{Borrow, Cow};
use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use crate::error::{Classify, ErrorKind};

/// The label holding a series' metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// One label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// The label name.
    pub name: LabelStr,
    /// The label value, never empty inside a [`Labels`].
    pub value: LabelStr,
}

/// An immutable label name or value: a shared string, so that copies of a label set share
/// their text (a clone costs a reference count, not an allocation) and the metrics head can
/// keep one copy of each distinct string for all its series (see [`LabelInterner`]).
/// Compares, orders, hashes and prints as the `str` it holds.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelStr(Arc<str>);

impl LabelStr {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for LabelStr {
    fn default() -> LabelStr {
        LabelStr(Arc::from(""))
    }
}

impl Deref for LabelStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for LabelStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for LabelStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LabelStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for LabelStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for LabelStr {
    fn from(text: String) -> LabelStr {
        LabelStr(Arc::from(text))
    }
}

impl From<&String> for LabelStr {
    fn from(text: &String) -> LabelStr {
        LabelStr(Arc::from(text.as_str()))
    }
}

impl From<&str> for LabelStr {
    fn from(text: &str) -> LabelStr {
        LabelStr(Arc::from(text))
    }
}

impl From<Box<str>> for LabelStr {
    fn from(text: Box<str>) -> LabelStr {
        LabelStr(Arc::from(text))
    }
}

impl From<Cow<'_, str>> for LabelStr {
    fn from(text: Cow<'_, str>) -> LabelStr {
        LabelStr(Arc::from(text))
    }
}

impl From<&LabelStr> for LabelStr {
    fn from(text: &LabelStr) -> LabelStr {
        text.clone()
    }
}

impl From<LabelStr> for String {
    fn from(text: LabelStr) -> String {
        text.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for LabelStr {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for LabelStr {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for LabelStr {
    fn eq(&self, other: &String) -> bool {
        &*self.0 == other.as_str()
    }
}

impl PartialEq<LabelStr> for str {
    fn eq(&self, other: &LabelStr) -> bool {
        self == &*other.0
    }
}

impl PartialEq<LabelStr> for &str {
    fn eq(&self, other: &LabelStr) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<LabelStr> for String {
    fn eq(&self, other: &LabelStr) -> bool {
        self.as_str() == &*other.0
    }
}

/// One shared copy of every distinct label name and value of a set of label sets (the metrics
/// head's series): [`LabelInterner::labels`] rebuilds a label set from those copies, so 100k
/// series with the same names and few distinct values hold each string once.
#[derive(Debug, Default)]
pub struct LabelInterner {
    strings: HashSet<LabelStr, foldhash::fast::RandomState>,
}

impl LabelInterner {
    /// The shared copy of `text`, made on first sight.
    pub fn intern(&mut self, text: &LabelStr) -> LabelStr {
        if let Some(shared) = self.strings.get(text.as_str()) {
            return shared.clone();
        }
        self.strings.insert(text.clone());
        text.clone()
    }

    /// `labels` with every name and value replaced by its shared copy.
    pub fn labels(&mut self, labels: &Labels) -> Labels {
        Labels(
            labels
                .0
                .iter()
                .map(|label| Label {
                    name: self.intern(&label.name),
                    value: self.intern(&label.value),
                })
                .collect(),
        )
    }

    /// Forgets strings no label set holds any more; returns how many.
    pub fn purge_unused(&mut self) -> usize {
        let before = self.strings.len();
        self.strings.retain(|text| Arc::strong_count(&text.0) > 1);
        before - self.strings.len()
    }

    /// Distinct strings held.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// True when no string is held.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// A label set: sorted by name, names unique and valid, no empty values (a label with an empty
/// value is the same as no label, as in Prometheus). Sorted by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Labels(Vec<Label>);

/// The most labels a series may have.
pub const MAX_LABELS: usize = 256;
/// The longest label name, in bytes.
pub const MAX_LABEL_NAME_BYTES: usize = 1024;
/// The longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 16 << 10;

/// Why a label set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// A label name is empty.
    #[error("empty label name")]
    EmptyName,
    /// A label name breaks `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name {0:?}: names must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidName(String),
    /// The metric name breaks `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name {0:?}: names must match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName(String),
    /// A label name appears twice.
    #[error("duplicate label name {0:?}")]
    Duplicate(String),
    /// Too many labels, or a name or value too long.
    #[error("{0}")]
    TooLarge(String),
    /// No `__name__`.
    #[error("series has no metric name (label __name__)")]
    MissingMetricName,
}

impl Classify for LabelError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}

/// Whether `name` is a valid label name (Prometheus' legacy rules, as 2.42 applies them).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `name` is a valid metric name.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

impl Labels {
    /// Builds a label set from pairs in any order, validating names, dropping empty values and
    /// refusing duplicates.
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Labels, LabelError>
    where
        N: Into<LabelStr>,
        V: Into<LabelStr>,
    {
        let mut labels: Vec<Label> = Vec::new();
        for (name, value) in pairs {
            let name = name.into();
            let value = value.into();
            if name.is_empty() {
                return Err(LabelError::EmptyName);
            }
            if name.len() > MAX_LABEL_NAME_BYTES {
                return Err(LabelError::TooLarge(format!(
                    "label name of {} bytes exceeds the limit of {MAX_LABEL_NAME_BYTES}",
                    name.len()
                )));
            }
            if value.len() > MAX_LABEL_VALUE_BYTES {
                return Err(LabelError::TooLarge(format!(
                    "value of label {name:?} has {} bytes, over the limit of {MAX_LABEL_VALUE_BYTES}",
                    value.len()
                )));
            }
            if name == METRIC_NAME_LABEL {
                if !is_valid_metric_name(&value) {
                    return Err(LabelError::InvalidMetricName(value.into()));
                }
            } else if !is_valid_label_name(&name) {
                return Err(LabelError::InvalidName(name.into()));
            }
            if value.is_empty() {
                continue;
            }
            labels.push(Label { name, value });
        }
        if labels.len() > MAX_LABELS {
            return Err(LabelError::TooLarge(format!(
                "{} labels exceed the limit of {MAX_LABELS} per series",
                labels.len()
            )));
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = labels.windows(2).find(|pair| pair[0].name == pair[1].name) {
            return Err(LabelError::Duplicate(pair[0].name.to_string()));
        }
        labels.shrink_to_fit();
        Ok(Labels(labels))
    }

    /// Like [`Labels::from_pairs`], and requires a metric name.
    pub fn series<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<Labels, LabelError>
    where
        N: Into<LabelStr>,
        V: Into<LabelStr>,
    {
        let labels = Labels::from_pairs(pairs)?;
        if labels.metric_name().is_none() {
            return Err(LabelError::MissingMetricName);
        }
        Ok(labels)
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|label| label.name.as_str().cmp(name))
            .ok()
            .map(|index| self.0[index].value.as_str())
    }

    /// The metric name.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME_LABEL)
    }

    /// The labels, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    /// The number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends the compact binary form: `u16 count`, then per label `u16 len, name, u32 len,
    /// The labels for which `keep` is true (already valid and sorted: no revalidation).
    pub fn filtered(&self, keep: impl Fn(&Label) -> bool) -> Labels {
        Labels(self.0.iter().filter(|label| keep(label)).cloned().collect())
    }

    /// The label set without `__name__`.
    pub fn without_metric_name(&self) -> Labels {
        if self.metric_name().is_none() {
            return self.clone();
        }
        self.filtered(|label| label.name != METRIC_NAME_LABEL)
    }

    /// The label set with `name` set to `value` (removed when `value` is empty).
    pub fn with_label(&self, name: &str, value: &str) -> Result<Labels, LabelError> {
        if name != METRIC_NAME_LABEL && !is_valid_label_name(name) {
            return Err(LabelError::InvalidName(name.to_owned()));
        }
        if value.len() > MAX_LABEL_VALUE_BYTES {
            return Err(LabelError::TooLarge(format!(
                "value of label {name:?} has {} bytes, over the limit of {MAX_LABEL_VALUE_BYTES}",
                value.len()
            )));
        }
        let mut labels = self.0.clone();
        match labels.binary_search_by(|label| label.name.as_str().cmp(name)) {
            Ok(index) if value.is_empty() => {
                labels.remove(index);
            }
            Ok(index) => labels[index].value = value.into(),
            Err(_) if value.is_empty() => {}
            Err(index) => labels.insert(
                index,
                Label {
                    name: name.into(),
                    value: value.into(),
                },
            ),
        }
        Ok(Labels(labels))
    }

    /// value` (little-endian).
    pub fn encode(&self, buffer: &mut Vec<u8>) {
        buffer.extend_from_slice(&(self.0.len() as u16).to_le_bytes());
        for label in &self.0 {
            buffer.extend_from_slice(&(label.name.len() as u16).to_le_bytes());
            buffer.extend_from_slice(label.name.as_bytes());
            buffer.extend_from_slice(&(label.value.len() as u32).to_le_bytes());
            buffer.extend_from_slice(label.value.as_bytes());
        }
    }

    /// Reads the form written by [`Labels::encode`] from the front of `bytes`; returns the
    /// labels and the bytes consumed. The result is validated like [`Labels::from_pairs`].
    pub fn decode(bytes: &[u8]) -> Result<(Labels, usize), String> {
        let mut reader = ByteReader { bytes, pos: 0 };
        let count = reader.u16()? as usize;
        let mut pairs = Vec::with_capacity(count);
        for _ in 0..count {
            let name_len = reader.u16()? as usize;
            let name = reader.str(name_len)?;
            let value_len = reader.u32()? as usize;
            let value = reader.str(value_len)?;
            pairs.push((name.to_owned(), value.to_owned()));
        }
        let labels = Labels::from_pairs(pairs).map_err(|err| err.to_string())?;
        Ok((labels, reader.pos))
    }
}

struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(len).ok_or("length overflow")?;
        let slice = self.bytes.get(self.pos..end).ok_or("truncated label set")?;
        self.pos = end;
        Ok(slice)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let slice = self.take(2)?;
        Ok(u16::from_le_bytes([slice[0], slice[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let slice = self.take(4)?;
        Ok(u32::from_le_bytes([slice[0], slice[1], slice[2], slice[3]]))
    }

    fn str(&mut self, len: usize) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(len)?).map_err(|_| "label is not UTF-8".to_owned())
    }
}

impl fmt::Display for Labels {
    /// `name{a="1", b="2"}`, as Prometheus prints series.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for label in self.0.iter().filter(|label| label.name != METRIC_NAME_LABEL) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", label.name, label.value)?;
        }
        f.write_str("}")
    }
}

/// How a matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (fully anchored)
    Regex,
    /// `!~` (fully anchored)
    NotRegex,
}

/// A label matcher. A missing label has the value `""`, as in Prometheus.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or pattern.
    pub value: String,
    regex: Option<regex::Regex>,
}

impl Matcher {
    /// A matcher; regular expressions are anchored at both ends like Prometheus' (`^(?:re)$`).
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, regex::Error> {
        let value = value.into();
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(regex::Regex::new(&format!("^(?:{value})$"))?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.into(),
            op,
            value,
            regex,
        })
    }

    /// `name="value"`.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            op: MatchOp::Equal,
            value: value.into(),
            regex: None,
        }
    }

    /// Whether a label value (`""` when absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(regex)) => regex.is_match(value),
            (MatchOp::NotRegex, Some(regex)) => !regex.is_match(value),
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    /// Whether a label set matches.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// One series and its samples in a queried range.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series.
    pub labels: Labels,
    /// `(timestamp_ms, value)`, sorted by timestamp, timestamps unique.
    pub samples: Vec<(i64, f64)>,
}

/// Why a query of storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The query would load more samples than allowed.
    #[error("query would load more than {limit} samples; narrow the selectors or the time range")]
    TooManySamples {
        /// The limit.
        limit: usize,
    },
    /// Reading storage failed.
    #[error("storage read failed: {0}")]
    Read(String),
}

impl Classify for StorageError {
    fn kind(&self) -> ErrorKind {
        match self {
            StorageError::TooManySamples { .. } => ErrorKind::Execution,
            StorageError::Read(_) => ErrorKind::Internal,
        }
    }
}

/// The type of a metric family, as `# TYPE` lines and `/api/v1/metadata` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricType {
    /// A monotonic counter.
    Counter,
    /// A gauge.
    Gauge,
    /// A classic histogram (`_bucket`, `_sum`, `_count`).
    Histogram,
    /// A summary (quantiles, `_sum`, `_count`).
    Summary,
    /// An OpenMetrics info metric.
    Info,
    /// An OpenMetrics state set.
    StateSet,
    /// An OpenMetrics gauge histogram.
    GaugeHistogram,
    /// Untyped.
    Unknown,
}

impl MetricType {
    /// The name Prometheus' API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Unknown => "unknown",
        }
    }
}

/// What a metric family is: its type, help text and unit (`/api/v1/metadata`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricMetadata {
    /// The type.
    pub metric_type: MetricType,
    /// The help text (may be empty).
    pub help: String,
    /// The unit (may be empty).
    pub unit: String,
}

/// Read access to metrics, as the query engine sees it. See the [module docs](self) for the
/// contract.
pub trait MetricsQuerier: Send + Sync {
    /// Series matching every matcher that have at least one sample in `[mint_ms, maxt_ms]`,
    /// with those samples.
    fn select(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<SeriesSamples>, StorageError>;

    /// Label sets of the series matching every matcher with data in `[mint_ms, maxt_ms]`,
    /// sorted. The default reads the samples too; stores answer from their index.
    fn series(&self, matchers: &[Matcher], mint_ms: i64, maxt_ms: i64) -> Result<Vec<Labels>, StorageError> {
        Ok(self
            .select(matchers, mint_ms, maxt_ms)?
            .into_iter()
            .map(|series| series.labels)
            .collect())
    }

    /// Sorted, unique label names of the series matching `matchers` (all series when empty)
    /// with data in `[mint_ms, maxt_ms]`.
    fn label_names(
        &self,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<String>, StorageError>;

    /// Sorted, unique values of label `name` among the series matching `matchers` with data in
    /// `[mint_ms, maxt_ms]`.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint_ms: i64,
        maxt_ms: i64,
    ) -> Result<Vec<String>, StorageError>;

    /// Metadata by metric family name, sorted by name; one family (`metric`) or all, at most
    /// `limit` families. A family may have several distinct entries (different sources).
    fn metadata(&self, metric: Option<&str>, limit: Option<usize>) -> Vec<(String, Vec<MetricMetadata>)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_label_sets_share_their_strings_and_unused_ones_are_purged() {
        let mut interner = LabelInterner::default();
        let pairs = [("__name__", "up"), ("job", "node"), ("instance", "a:9100")];
        let first = interner.labels(&Labels::series(pairs).expect("valid"));
        let second = interner.labels(&Labels::series(pairs).expect("valid"));
        assert_eq!(first, second);
        assert_eq!(interner.len(), 6);
        for (a, b) in first.iter().zip(second.iter()) {
            assert!(
                std::ptr::eq(a.name.as_str(), b.name.as_str()),
                "{} shared",
                a.name
            );
            assert!(
                std::ptr::eq(a.value.as_str(), b.value.as_str()),
                "{} shared",
                a.value
            );
        }
        let other = interner.labels(&Labels::series([("__name__", "up"), ("job", "api")]).expect("valid"));
        assert_eq!(interner.len(), 7, "only `api` is new");
        drop(other);
        assert_eq!(
            interner.purge_unused(),
            1,
            "`api` is held by no label set any more"
        );
        drop((first, second));
        assert_eq!(interner.purge_unused(), 6);
        assert!(interner.is_empty());
    }

    #[test]
    fn label_strings_compare_hash_and_print_as_their_text() {
        use std::hash::BuildHasher;
        let text = LabelStr::from("a\"b");
        assert_eq!(text, "a\"b");
        assert_eq!("a\"b", text);
        assert_eq!(text, "a\"b".to_owned());
        assert_eq!(format!("{text} {text:?}"), "a\"b \"a\\\"b\"");
        let hasher = foldhash::fast::FixedState::with_seed(1);
        assert_eq!(hasher.hash_one(&text), hasher.hash_one("a\"b"));
        let (a, b) = (LabelStr::from("a"), LabelStr::from("b"));
        assert!(a < b);
        assert_eq!(String::from(text), "a\"b");
    }

    #[test]
    fn label_sets_are_sorted_validated_and_round_trip() {
        let labels =
            Labels::series([("job", "node"), ("__name__", "up"), ("empty", ""), ("a", "1")]).unwrap();
        let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "a", "job"]);
        assert_eq!(labels.to_string(), "up{a=\"1\", job=\"node\"}");
        let mut buffer = Vec::new();
        labels.encode(&mut buffer);
        buffer.push(0xff);
        let (decoded, used) = Labels::decode(&buffer).unwrap();
        assert_eq!((decoded, used), (labels, buffer.len() - 1));
        assert!(Labels::decode(&buffer[..5]).is_err());

        assert_eq!(Labels::series([("a", "1")]), Err(LabelError::MissingMetricName));
        assert_eq!(
            Labels::series([("__name__", "x"), ("a", "1"), ("a", "2")]),
            Err(LabelError::Duplicate("a".into()))
        );
        assert!(matches!(
            Labels::series([("__name__", "1x")]),
            Err(LabelError::InvalidMetricName(_))
        ));
        assert!(matches!(
            Labels::series([("__name__", "x"), ("b-c", "1")]),
            Err(LabelError::InvalidName(_))
        ));
        assert_eq!(
            Labels::series([("__name__", "x"), ("", "1")]),
            Err(LabelError::EmptyName)
        );
        assert!(is_valid_metric_name("node:cpu:rate5m") && !is_valid_label_name("a:b"));
        let long = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        assert!(matches!(
            Labels::series([("__name__", "x"), ("a", long.as_str())]),
            Err(LabelError::TooLarge(_))
        ));
        let many: Vec<(String, String)> = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), "v".to_owned()))
            .collect();
        assert!(matches!(Labels::from_pairs(many), Err(LabelError::TooLarge(_))));
    }

    #[test]
    fn matchers_follow_prometheus() {
        let labels = Labels::series([("__name__", "up"), ("job", "node")]).unwrap();
        let matches = |op, name, value| Matcher::new(op, name, value).unwrap().matches_labels(&labels);
        assert!(matches(MatchOp::Equal, "job", "node"));
        assert!(matches(MatchOp::Equal, "missing", ""));
        assert!(!matches(MatchOp::NotEqual, "missing", ""));
        assert!(matches(MatchOp::Regex, "job", "no.*"));
        assert!(!matches(MatchOp::Regex, "job", "od"), "regexes are anchored");
        assert!(matches(MatchOp::NotRegex, "job", "od"));
        assert!(matches(MatchOp::Regex, "missing", ".*"));
        assert!(Matcher::new(MatchOp::Regex, "job", "(").is_err());
    }
}
