//! OTLP metrics → the Prometheus data model, as the OpenTelemetry specification's
//! "Prometheus and OpenMetrics compatibility" section says
//! (`specification/compatibility/prometheus_and_openmetrics.md`, "OTLP Metric points to
//! Prometheus").
//!
//! - **Names**: characters outside `[a-zA-Z0-9:]` split the name into words joined by `_`
//!   (runs collapse); the unit becomes a suffix in words (`ms` → `milliseconds`, `By` →
//!   `bytes`, `{packet}` annotations dropped, `foo/s` → `foo_per_second`, `1` → `ratio` on
//!   gauges) unless the name already has it; monotonic sums end in `_total`; a leading digit
//!   gets a `_` prefix.
//! - **Labels**: attribute keys get invalid characters replaced by `_` (a leading digit gets
//!   `key_`, a single leading `_` gets `key`); keys that collide join their values with `;`
//!   in the order of the original keys. Non-string values are written as in the attribute
//!   specification (`true`, `42`, `1.5`, JSON for arrays and maps, base64 for bytes).
//! - **Resource**: `job` is `service.namespace/service.name` (or `service.name`), `instance`
//!   is `service.instance.id`; both override data-point attributes of the same name. Other
//!   resource attributes go on one `target_info` series (value 1) per resource, at the
//!   newest timestamp of its points.
//! - **Scope**: `otel_scope_name` and `otel_scope_version` on every point (configurable).
//! - **Types**: gauges; cumulative sums (monotonic → counter `_total`, else gauge);
//!   cumulative histograms → `_bucket{le}` (cumulative counts, ending at `+Inf`), `_sum`,
//!   `_count`; summaries → `{quantile}`, `_sum`, `_count`. A point flagged "no recorded value"
//!   becomes a stale marker on each of its series.
//! - **Refused, and reported in `partial_success`**: delta temporality (sums and histograms;
//!   the message says how to configure the exporter for cumulative), exponential histograms
//!   (they map to native histograms, which the appliance does not store), points without a
//!   value, metrics without a name or data, and points whose labels break the limits.
//!
//! Exemplars and `_created` series are not produced.

use std::collections::BTreeMap;

use obs_core::series::{Labels, METRIC_NAME_LABEL, MetricMetadata, MetricType, SeriesSamples};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint, metric,
    number_data_point,
};

use crate::chunk::STALE_NAN_BITS;

/// How many refusal messages a conversion keeps (the count covers all of them).
const LISTED_REFUSALS: usize = 10;

/// The data point flag "no recorded value" (`DataPointFlags.FLAG_NO_RECORDED_VALUE_MASK`).
const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// How the conversion behaves.
#[derive(Debug, Clone)]
pub struct OtlpOptions {
    /// Put `otel_scope_name` and `otel_scope_version` on every series (the specification's
    /// default).
    pub scope_labels: bool,
}

impl Default for OtlpOptions {
    fn default() -> OtlpOptions {
        OtlpOptions { scope_labels: true }
    }
}

/// The result of converting one export request.
#[derive(Debug, Default)]
pub struct Converted {
    /// Series and their samples, ready for [`crate::store::MetricsStore::append`].
    pub series: Vec<SeriesSamples>,
    /// For each entry of `series`, the data point (numbered through the request) it came from.
    pub series_points: Vec<u32>,
    /// Data points converted so far.
    converted_points: u32,
    /// Type, help and unit of each metric family seen.
    pub metadata: Vec<(String, MetricMetadata)>,
    /// Data points that could not be converted.
    pub refused_points: u64,
    /// The first reasons, for `partial_success.error_message`.
    pub refusals: Vec<String>,
}

impl Converted {
    fn refuse(&mut self, points: usize, message: impl FnOnce() -> String) {
        if points == 0 {
            return;
        }
        self.refused_points += points as u64;
        if self.refusals.len() < LISTED_REFUSALS {
            self.refusals.push(message());
        }
    }

    /// Samples in [`Converted::series`].
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|series| series.samples.len()).sum()
    }

    /// Splits off the series for the store, keeping what [`PointIndex::rejected_points`] needs
    /// to count refused samples as the data points they came from.
    pub fn take_series(&mut self) -> (Vec<SeriesSamples>, PointIndex) {
        let series = std::mem::take(&mut self.series);
        let points = std::mem::take(&mut self.series_points);
        let mut entries: Vec<(u64, i64, u32)> = series
            .iter()
            .zip(points)
            .map(|(series, point)| {
                (
                    label_hash(&series.labels),
                    series.samples.first().map_or(0, |s| s.0),
                    point,
                )
            })
            .collect();
        entries.sort_unstable();
        (series, PointIndex { entries })
    }

    fn next_point(&mut self) -> u32 {
        let point = self.converted_points;
        self.converted_points = self.converted_points.wrapping_add(1);
        point
    }
}

/// Maps the series of a conversion back to their data points.
#[derive(Debug, Default)]
pub struct PointIndex {
    /// `(hash of the labels, timestamp, point)`, sorted.
    entries: Vec<(u64, i64, u32)>,
}

impl PointIndex {
    /// How many distinct data points the store's refusals touch (a histogram point is one
    /// data point however many of its series were refused).
    pub fn rejected_points(&self, rejected: &[crate::store::Rejection]) -> u64 {
        let mut points = std::collections::BTreeSet::new();
        for rejection in rejected {
            let hash = label_hash(&rejection.labels);
            let start = self.entries.partition_point(|entry| entry.0 < hash);
            for entry in self.entries[start..].iter().take_while(|entry| entry.0 == hash) {
                if rejection.timestamp_ms.is_none_or(|ts| ts == entry.1) {
                    points.insert(entry.2);
                }
            }
        }
        points.len() as u64
    }
}

fn label_hash(labels: &Labels) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0).hash_one(labels)
}

/// Converts an export request. Never fails as a whole: what cannot be converted is counted
/// and described in [`Converted`].
pub fn convert(request: &ExportMetricsServiceRequest, options: &OtlpOptions) -> Converted {
    let mut out = Converted::default();
    for resource_metrics in &request.resource_metrics {
        let resource_attributes = resource_metrics
            .resource
            .as_ref()
            .map(|resource| resource.attributes.as_slice())
            .unwrap_or_default();
        let identity = ResourceIdentity::of(resource_attributes);
        let mut newest_ms: Option<i64> = None;
        for scope_metrics in &resource_metrics.scope_metrics {
            let mut base = identity.labels.clone();
            if options.scope_labels
                && let Some(scope) = &scope_metrics.scope
            {
                for (name, value) in [
                    ("otel_scope_name", &scope.name),
                    ("otel_scope_version", &scope.version),
                ] {
                    if !value.is_empty() {
                        base.push((name.to_owned(), value.clone()));
                    }
                }
            }
            for metric in &scope_metrics.metrics {
                convert_metric(metric, &base, &mut out, &mut newest_ms);
            }
        }
        if let Some(ts) = newest_ms {
            target_info(resource_attributes, &identity, ts, &mut out);
        }
    }
    out
}

/// `job` and `instance` of a resource.
struct ResourceIdentity {
    labels: Vec<(String, String)>,
}

const SERVICE_NAME: &str = "service.name";
const SERVICE_NAMESPACE: &str = "service.namespace";
const SERVICE_INSTANCE_ID: &str = "service.instance.id";

impl ResourceIdentity {
    fn of(attributes: &[KeyValue]) -> ResourceIdentity {
        let get = |key: &str| {
            attributes
                .iter()
                .find(|attribute| attribute.key == key)
                .map(|attribute| obs_core::otlp::any_value_string(attribute.value.as_ref()))
        };
        let mut labels = Vec::new();
        if let Some(name) = get(SERVICE_NAME) {
            let job = match get(SERVICE_NAMESPACE) {
                Some(namespace) if !namespace.is_empty() => format!("{namespace}/{name}"),
                _ => name,
            };
            labels.push(("job".to_owned(), job));
        }
        if let Some(instance) = get(SERVICE_INSTANCE_ID) {
            labels.push(("instance".to_owned(), instance));
        }
        ResourceIdentity { labels }
    }

    fn has_identifier(&self) -> bool {
        self.labels.iter().any(|(_, value)| !value.is_empty())
    }
}

/// `target_info` for a resource with attributes beyond the identifying ones.
fn target_info(attributes: &[KeyValue], identity: &ResourceIdentity, ts: i64, out: &mut Converted) {
    let others: Vec<&KeyValue> = attributes
        .iter()
        .filter(|attribute| {
            ![SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_INSTANCE_ID].contains(&attribute.key.as_str())
        })
        .collect();
    if others.is_empty() || !identity.has_identifier() {
        return;
    }
    let mut pairs = normalized_attributes(others.into_iter());
    override_with(&mut pairs, &identity.labels);
    pairs.push((METRIC_NAME_LABEL.to_owned(), "target_info".to_owned()));
    match Labels::series(pairs) {
        Ok(labels) => {
            out.series.push(SeriesSamples {
                labels,
                samples: vec![(ts, 1.0)],
            });
            let point = out.next_point();
            out.series_points.push(point);
        }
        Err(err) => out.refuse(1, || format!("target_info of a resource refused: {err}")),
    }
    out.metadata.push((
        "target_info".to_owned(),
        MetricMetadata {
            metric_type: MetricType::Gauge,
            help: "Target metadata".to_owned(),
            unit: String::new(),
        },
    ));
}

/// What kind of Prometheus family a metric becomes, for its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

fn convert_metric(
    metric: &Metric,
    base: &[(String, String)],
    out: &mut Converted,
    newest_ms: &mut Option<i64>,
) {
    let Some(data) = &metric.data else {
        out.refuse(1, || format!("metric {:?} has no data", metric.name));
        return;
    };
    let points = match data {
        metric::Data::Gauge(gauge) => gauge.data_points.len(),
        metric::Data::Sum(sum) => sum.data_points.len(),
        metric::Data::Histogram(histogram) => histogram.data_points.len(),
        metric::Data::ExponentialHistogram(histogram) => histogram.data_points.len(),
        metric::Data::Summary(summary) => summary.data_points.len(),
    };
    if metric.name.is_empty() {
        out.refuse(points.max(1), || "a metric without a name was refused".to_owned());
        return;
    }
    let cumulative = AggregationTemporality::Cumulative as i32;
    let (family, metric_type) = match data {
        metric::Data::Gauge(_) => (Family::Gauge, MetricType::Gauge),
        metric::Data::Sum(sum) if sum.aggregation_temporality != cumulative => {
            out.refuse(points, || {
                delta_message(&metric.name, sum.aggregation_temporality)
            });
            return;
        }
        metric::Data::Sum(sum) if sum.is_monotonic => (Family::Counter, MetricType::Counter),
        metric::Data::Sum(_) => (Family::Gauge, MetricType::Gauge),
        metric::Data::Histogram(histogram) if histogram.aggregation_temporality != cumulative => {
            out.refuse(points, || {
                delta_message(&metric.name, histogram.aggregation_temporality)
            });
            return;
        }
        metric::Data::Histogram(_) => (Family::Histogram, MetricType::Histogram),
        metric::Data::ExponentialHistogram(_) => {
            out.refuse(points, || {
                format!(
                    "exponential histogram {:?} refused: it maps to a Prometheus native histogram, which \
                     this appliance does not store; configure the SDK view to use explicit bucket histograms",
                    metric.name
                )
            });
            return;
        }
        metric::Data::Summary(_) => (Family::Summary, MetricType::Summary),
    };
    let (name, unit) = normalize_metric_name(&metric.name, &metric.unit, family);
    let mut converter = PointConverter {
        point: 0,
        name: &name,
        otlp_name: &metric.name,
        base,
        out,
        newest_ms,
    };
    match data {
        metric::Data::Gauge(gauge) => gauge.data_points.iter().for_each(|point| converter.number(point)),
        metric::Data::Sum(sum) => sum.data_points.iter().for_each(|point| converter.number(point)),
        metric::Data::Histogram(histogram) => histogram
            .data_points
            .iter()
            .for_each(|point| converter.histogram(point)),
        metric::Data::Summary(summary) => summary
            .data_points
            .iter()
            .for_each(|point| converter.summary(point)),
        metric::Data::ExponentialHistogram(_) => {}
    }
    out.metadata.push((
        name,
        MetricMetadata {
            metric_type,
            help: metric.description.clone(),
            unit,
        },
    ));
}

fn delta_message(name: &str, temporality: i32) -> String {
    if temporality == AggregationTemporality::Delta as i32 {
        format!(
            "metric {name:?} refused: delta temporality is not supported; configure the exporter for \
             cumulative temporality (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative)"
        )
    } else {
        format!("metric {name:?} refused: aggregation temporality {temporality} is not valid")
    }
}

/// Turns the points of one metric into series.
struct PointConverter<'a> {
    /// The number of the point being converted.
    point: u32,
    /// The Prometheus name.
    name: &'a str,
    /// The name as sent, for messages.
    otlp_name: &'a str,
    base: &'a [(String, String)],
    out: &'a mut Converted,
    newest_ms: &'a mut Option<i64>,
}

impl PointConverter<'_> {
    /// The labels of a point's series: attributes, then the resource's and scope's labels.
    fn labels(&self, attributes: &[KeyValue]) -> Vec<(String, String)> {
        let mut pairs = normalized_attributes(attributes.iter());
        override_with(&mut pairs, self.base);
        pairs
    }

    fn emit(
        &mut self,
        pairs: &[(String, String)],
        suffix: &str,
        extra: Option<(&str, String)>,
        ts: i64,
        value: f64,
    ) {
        let mut pairs = pairs.to_vec();
        if let Some((name, value)) = extra {
            override_with(&mut pairs, &[(name.to_owned(), value)]);
        }
        pairs.push((METRIC_NAME_LABEL.to_owned(), format!("{}{suffix}", self.name)));
        match Labels::series(pairs) {
            Ok(labels) => {
                *self.newest_ms = Some(self.newest_ms.map_or(ts, |newest| newest.max(ts)));
                self.out.series.push(SeriesSamples {
                    labels,
                    samples: vec![(ts, value)],
                });
                self.out.series_points.push(self.point);
            }
            Err(err) => {
                let name = self.name;
                self.out
                    .refuse(1, || format!("a point of {name}{suffix} refused: {err}"));
            }
        }
    }

    fn number(&mut self, point: &NumberDataPoint) {
        self.point = self.out.next_point();
        let value = match point.value {
            _ if point.flags & FLAG_NO_RECORDED_VALUE != 0 => f64::from_bits(STALE_NAN_BITS),
            Some(number_data_point::Value::AsDouble(value)) => value,
            Some(number_data_point::Value::AsInt(value)) => value as f64,
            None => {
                let name = self.otlp_name;
                self.out.refuse(1, || format!("a point of {name:?} has no value"));
                return;
            }
        };
        let labels = self.labels(&point.attributes);
        self.emit(&labels, "", None, timestamp_ms(point.time_unix_nano), value);
    }

    fn histogram(&mut self, point: &HistogramDataPoint) {
        self.point = self.out.next_point();
        let ts = timestamp_ms(point.time_unix_nano);
        let stale = point.flags & FLAG_NO_RECORDED_VALUE != 0;
        let value = |value: f64| {
            if stale {
                f64::from_bits(STALE_NAN_BITS)
            } else {
                value
            }
        };
        let bounds = &point.explicit_bounds;
        if !point.bucket_counts.is_empty() && point.bucket_counts.len() != bounds.len() + 1 {
            let name = self.otlp_name;
            self.out.refuse(1, || {
                format!(
                    "a point of histogram {name:?} refused: {} bucket counts for {} bounds (need bounds + 1)",
                    point.bucket_counts.len(),
                    bounds.len()
                )
            });
            return;
        }
        let labels = self.labels(&point.attributes);
        if let Some(sum) = point.sum {
            self.emit(&labels, "_sum", None, ts, value(sum));
        }
        self.emit(&labels, "_count", None, ts, value(point.count as f64));
        let mut cumulative = 0u64;
        for (index, bound) in bounds.iter().enumerate() {
            cumulative = cumulative.saturating_add(point.bucket_counts.get(index).copied().unwrap_or(0));
            self.emit(
                &labels,
                "_bucket",
                Some(("le", obs_core::otlp::format_float(*bound))),
                ts,
                value(cumulative as f64),
            );
        }
        self.emit(
            &labels,
            "_bucket",
            Some(("le", "+Inf".to_owned())),
            ts,
            value(point.count as f64),
        );
    }

    fn summary(&mut self, point: &SummaryDataPoint) {
        self.point = self.out.next_point();
        let ts = timestamp_ms(point.time_unix_nano);
        let stale = point.flags & FLAG_NO_RECORDED_VALUE != 0;
        let value = |value: f64| {
            if stale {
                f64::from_bits(STALE_NAN_BITS)
            } else {
                value
            }
        };
        let labels = self.labels(&point.attributes);
        self.emit(&labels, "_sum", None, ts, value(point.sum));
        self.emit(&labels, "_count", None, ts, value(point.count as f64));
        for quantile in &point.quantile_values {
            self.emit(
                &labels,
                "",
                Some(("quantile", obs_core::otlp::format_float(quantile.quantile))),
                ts,
                value(quantile.value),
            );
        }
    }
}

/// Nanoseconds to milliseconds.
fn timestamp_ms(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

/// Replaces (or adds) the labels of `extras` in `pairs`.
fn override_with(pairs: &mut Vec<(String, String)>, extras: &[(String, String)]) {
    for (name, value) in extras {
        match pairs.iter_mut().find(|(existing, _)| existing == name) {
            Some(pair) => pair.1 = value.clone(),
            None => pairs.push((name.clone(), value.clone())),
        }
    }
}

/// Attributes as label pairs with normalised names; values of colliding names joined with `;`
/// in the order of the original keys.
fn normalized_attributes<'a>(attributes: impl Iterator<Item = &'a KeyValue>) -> Vec<(String, String)> {
    let mut by_name: BTreeMap<String, Vec<(&'a str, String)>> = BTreeMap::new();
    for attribute in attributes {
        if attribute.key.is_empty() {
            continue;
        }
        by_name
            .entry(normalize_label_name(&attribute.key))
            .or_default()
            .push((
                attribute.key.as_str(),
                obs_core::otlp::any_value_string(attribute.value.as_ref()),
            ));
    }
    by_name
        .into_iter()
        .map(|(name, mut values)| {
            if values.len() == 1 {
                let (_, value) = values.pop().unwrap_or_default();
                return (name, value);
            }
            values.sort_by(|a, b| a.0.cmp(b.0));
            let joined = values
                .into_iter()
                .map(|(_, value)| value)
                .collect::<Vec<_>>()
                .join(";");
            (name, joined)
        })
        .collect()
}

/// An attribute key as a Prometheus label name.
pub fn normalize_label_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "key_");
    } else if name.starts_with('_') && !name.starts_with("__") {
        name.insert_str(0, "key");
    }
    name
}

/// Unit abbreviations in words (UCUM as OpenTelemetry uses it).
fn unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "B" => "bytes",
        "KB" => "kilobytes",
        "MB" => "megabytes",
        "GB" => "gigabytes",
        "TB" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

/// The denominator of a `foo/bar` unit in words.
fn per_unit_word(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// Words of a name: runs of `[a-zA-Z0-9:]`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|word| !word.is_empty())
}

/// The Prometheus name of an OTLP metric (before `_bucket` / `_sum` / `_count`) and its unit
/// in words.
fn normalize_metric_name(name: &str, unit: &str, family: Family) -> (String, String) {
    let mut tokens: Vec<String> = words(name).map(str::to_owned).collect();
    // `{packet}` and the like are annotations, not units.
    let mut plain_unit = String::new();
    let mut depth = 0usize;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            c if depth == 0 => plain_unit.push(c),
            _ => {}
        }
    }
    let plain_unit = plain_unit.trim();
    let (main, per) = match plain_unit.split_once('/') {
        Some((main, per)) => (main.trim(), per.trim()),
        None => (plain_unit, ""),
    };
    let mut unit_words: Vec<String> = Vec::new();
    if !main.is_empty() && main != "1" {
        let word = unit_word(main)
            .map(str::to_owned)
            .unwrap_or_else(|| words(main).collect::<Vec<_>>().join("_"));
        if !word.is_empty() {
            for part in word.split('_') {
                if !tokens.iter().any(|token| token == part) {
                    tokens.push(part.to_owned());
                }
            }
            unit_words.push(word);
        }
    }
    if !per.is_empty() {
        let word = per_unit_word(per)
            .map(str::to_owned)
            .unwrap_or_else(|| words(per).collect::<Vec<_>>().join("_"));
        if !word.is_empty() {
            if !(tokens.iter().any(|token| token == "per") && tokens.contains(&word)) {
                tokens.push("per".to_owned());
                tokens.push(word.clone());
            }
            unit_words.push(format!("per_{word}"));
        }
    }
    if family == Family::Counter {
        tokens.retain(|token| token != "total");
        tokens.push("total".to_owned());
    }
    if family == Family::Gauge && main == "1" && per.is_empty() {
        if !tokens.iter().any(|token| token == "ratio") {
            tokens.push("ratio".to_owned());
        }
        unit_words.push("ratio".to_owned());
    }
    let mut normalized = tokens.join("_");
    if normalized.is_empty() {
        normalized.push('_');
    }
    if normalized.starts_with(|c: char| c.is_ascii_digit()) {
        normalized.insert(0, '_');
    }
    (normalized, unit_words.join("_"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, InstrumentationScope};
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum, Summary,
        summary_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn attr(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn text(key: &str, value: &str) -> KeyValue {
        attr(key, any_value::Value::StringValue(value.to_owned()))
    }

    fn request(resource: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "jarvis.worker".to_owned(),
                        version: "1.2".to_owned(),
                        ..Default::default()
                    }),
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn number(attributes: Vec<KeyValue>, time_ms: u64, value: f64) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            time_unix_nano: time_ms * 1_000_000,
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        }
    }

    fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
        Metric {
            name: name.to_owned(),
            unit: unit.to_owned(),
            description: format!("help of {name}"),
            data: Some(data),
            ..Default::default()
        }
    }

    fn series(converted: &Converted) -> Vec<String> {
        let mut all: Vec<String> = converted
            .series
            .iter()
            .map(|series| format!("{} {:?}", series.labels, series.samples))
            .collect();
        all.sort();
        all
    }

    #[test]
    fn names_follow_the_specification() {
        let name = |name, unit, family| normalize_metric_name(name, unit, family).0;
        assert_eq!(
            name("http.server.duration", "ms", Family::Histogram),
            "http_server_duration_milliseconds"
        );
        assert_eq!(
            name("http.server.request.size", "By", Family::Histogram),
            "http_server_request_size_bytes"
        );
        assert_eq!(name("requests", "{request}", Family::Counter), "requests_total");
        assert_eq!(
            name("requests.total.count", "1", Family::Counter),
            "requests_count_total"
        );
        assert_eq!(
            name("system.cpu.utilization", "1", Family::Gauge),
            "system_cpu_utilization_ratio"
        );
        assert_eq!(name("net.io", "By/s", Family::Gauge), "net_io_bytes_per_second");
        assert_eq!(name("latency_seconds", "s", Family::Gauge), "latency_seconds");
        assert_eq!(name("2xx.responses", "", Family::Counter), "_2xx_responses_total");
        assert_eq!(name("weird--name..x", "", Family::Gauge), "weird_name_x");
        assert_eq!(name("node:cpu:rate", "", Family::Gauge), "node:cpu:rate");
        assert_eq!(name("queue.depth", "{message}", Family::Gauge), "queue_depth");
        assert_eq!(name("temp", "Cel", Family::Gauge), "temp_celsius");
        assert_eq!(normalize_metric_name("a", "ms", Family::Gauge).1, "milliseconds");
    }

    #[test]
    fn label_names_are_sanitized() {
        assert_eq!(normalize_label_name("http.method"), "http_method");
        assert_eq!(normalize_label_name("0day"), "key_0day");
        assert_eq!(normalize_label_name("_private"), "key_private");
        assert_eq!(normalize_label_name("__reserved"), "__reserved");
        assert_eq!(normalize_label_name("k8s.pod-name"), "k8s_pod_name");
    }

    #[test]
    fn counters_gauges_and_resource_become_prometheus_series() {
        let resource = vec![
            text("service.name", "jarvis"),
            text("service.namespace", "agents"),
            text("service.instance.id", "pod-1"),
            text("host.name", "node-52"),
            attr("telemetry.sdk.version", any_value::Value::IntValue(3)),
        ];
        let metrics = vec![
            metric(
                "llm.tokens",
                "{token}",
                metric::Data::Sum(Sum {
                    data_points: vec![number(
                        vec![text("model", "gpt"), text("job", "ignored")],
                        1_000,
                        42.0,
                    )],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            ),
            metric(
                "queue.depth",
                "",
                metric::Data::Sum(Sum {
                    data_points: vec![number(
                        vec![attr("ready", any_value::Value::BoolValue(true))],
                        2_000,
                        -3.0,
                    )],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: false,
                }),
            ),
            metric(
                "memory.usage",
                "By",
                metric::Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: 3_000_000_000,
                        value: Some(number_data_point::Value::AsInt(7)),
                        ..Default::default()
                    }],
                }),
            ),
        ];
        let converted = convert(&request(resource, metrics), &OtlpOptions::default());
        assert_eq!(converted.refused_points, 0, "{:?}", converted.refusals);
        let scope = r#"otel_scope_name="jarvis.worker", otel_scope_version="1.2""#;
        assert_eq!(
            series(&converted),
            vec![
                format!(
                    r#"llm_tokens_total{{instance="pod-1", job="agents/jarvis", model="gpt", {scope}}} [(1000, 42.0)]"#
                ),
                format!(r#"memory_usage_bytes{{instance="pod-1", job="agents/jarvis", {scope}}} [(3000, 7.0)]"#),
                format!(
                    r#"queue_depth{{instance="pod-1", job="agents/jarvis", {scope}, ready="true"}} [(2000, -3.0)]"#
                ),
                r#"target_info{host_name="node-52", instance="pod-1", job="agents/jarvis", telemetry_sdk_version="3"} [(3000, 1.0)]"#.to_owned(),
            ]
        );
        let types: Vec<(&str, MetricType, &str)> = converted
            .metadata
            .iter()
            .map(|(name, meta)| (name.as_str(), meta.metric_type, meta.unit.as_str()))
            .collect();
        assert!(types.contains(&("llm_tokens_total", MetricType::Counter, "")));
        assert!(types.contains(&("memory_usage_bytes", MetricType::Gauge, "bytes")));
        assert!(types.contains(&("queue_depth", MetricType::Gauge, "")));
    }

    #[test]
    fn histograms_and_summaries_expand_like_prometheus() {
        let metrics = vec![
            metric(
                "http.server.duration",
                "ms",
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        time_unix_nano: 5_000_000_000,
                        count: 10,
                        sum: Some(123.5),
                        bucket_counts: vec![1, 2, 3, 4],
                        explicit_bounds: vec![0.5, 10.0, 100.0],
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ),
            metric(
                "rpc.latency",
                "s",
                metric::Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        time_unix_nano: 5_000_000_000,
                        count: 4,
                        sum: 2.0,
                        quantile_values: vec![
                            summary_data_point::ValueAtQuantile {
                                quantile: 0.5,
                                value: 0.4,
                            },
                            summary_data_point::ValueAtQuantile {
                                quantile: 1.0,
                                value: 0.9,
                            },
                        ],
                        ..Default::default()
                    }],
                }),
            ),
        ];
        let options = OtlpOptions { scope_labels: false };
        let converted = convert(&request(vec![text("service.name", "api")], metrics), &options);
        assert_eq!(converted.refused_points, 0, "{:?}", converted.refusals);
        assert_eq!(
            series(&converted),
            vec![
                r#"http_server_duration_milliseconds_bucket{job="api", le="+Inf"} [(5000, 10.0)]"#,
                r#"http_server_duration_milliseconds_bucket{job="api", le="0.5"} [(5000, 1.0)]"#,
                r#"http_server_duration_milliseconds_bucket{job="api", le="10"} [(5000, 3.0)]"#,
                r#"http_server_duration_milliseconds_bucket{job="api", le="100"} [(5000, 6.0)]"#,
                r#"http_server_duration_milliseconds_count{job="api"} [(5000, 10.0)]"#,
                r#"http_server_duration_milliseconds_sum{job="api"} [(5000, 123.5)]"#,
                r#"rpc_latency_seconds_count{job="api"} [(5000, 4.0)]"#,
                r#"rpc_latency_seconds_sum{job="api"} [(5000, 2.0)]"#,
                r#"rpc_latency_seconds{job="api", quantile="0.5"} [(5000, 0.4)]"#,
                r#"rpc_latency_seconds{job="api", quantile="1"} [(5000, 0.9)]"#,
            ]
        );
    }

    #[test]
    fn unconvertible_points_are_counted_and_explained() {
        let metrics = vec![
            metric(
                "delta.requests",
                "",
                metric::Data::Sum(Sum {
                    data_points: vec![number(vec![], 1, 1.0), number(vec![], 2, 1.0)],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    is_monotonic: true,
                }),
            ),
            metric(
                "sizes",
                "",
                metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![Default::default()],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ),
            metric(
                "no.value",
                "",
                metric::Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint::default()],
                }),
            ),
            metric(
                "bad.buckets",
                "",
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        bucket_counts: vec![1, 2],
                        explicit_bounds: vec![1.0, 2.0, 3.0],
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ),
            Metric {
                name: "nodata".to_owned(),
                ..Default::default()
            },
        ];
        let converted = convert(&request(vec![], metrics), &OtlpOptions::default());
        assert_eq!(converted.refused_points, 6);
        assert!(converted.series.is_empty());
        let all = converted.refusals.join("\n");
        assert!(
            all.contains("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=cumulative"),
            "{all}"
        );
        assert!(all.contains("\"no.value\" has no value"), "{all}");
        assert!(all.contains("native histogram"), "{all}");
        assert!(all.contains("3 bounds"), "{all}");
        assert!(all.contains("nodata"), "{all}");
    }

    #[test]
    fn no_recorded_value_is_a_stale_marker_and_collisions_join() {
        let point = NumberDataPoint {
            attributes: vec![
                text("a.b", "1"),
                text("a-b", "2"),
                attr(
                    "list",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(any_value::Value::StringValue("x".to_owned())),
                            },
                            AnyValue {
                                value: Some(any_value::Value::DoubleValue(1.5)),
                            },
                        ],
                    }),
                ),
                attr("raw", any_value::Value::BytesValue(b"hi!?".to_vec())),
            ],
            time_unix_nano: 9_000_000,
            flags: FLAG_NO_RECORDED_VALUE,
            value: None,
            ..Default::default()
        };
        let metrics = vec![metric(
            "g",
            "",
            metric::Data::Gauge(Gauge {
                data_points: vec![point],
            }),
        )];
        let converted = convert(&request(vec![], metrics), &OtlpOptions { scope_labels: false });
        assert_eq!(converted.refused_points, 0);
        let only = &converted.series[0];
        assert_eq!(
            only.labels.get("a_b"),
            Some("2;1"),
            "ordered by original key: a-b < a.b"
        );
        assert_eq!(only.labels.get("list"), Some(r#"["x",1.5]"#));
        assert_eq!(only.labels.get("raw"), Some("aGkhPw=="));
        assert_eq!(only.samples[0].1.to_bits(), STALE_NAN_BITS);
        // No identifying attribute: no target_info.
        assert_eq!(converted.series.len(), 1);
    }

    #[test]
    fn json_requests_decode_with_the_otlp_json_mapping() {
        let body = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeMetrics":[{"scope":{"name":"s"},"metrics":[{"name":"hits","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,
            "dataPoints":[{"timeUnixNano":"1700000000000000000","asInt":"5","attributes":[{"key":"code","value":{"intValue":"200"}}]}]}}]}]}]}"#;
        let request: ExportMetricsServiceRequest = serde_json::from_str(body).unwrap();
        let converted = convert(&request, &OtlpOptions::default());
        assert_eq!(
            series(&converted),
            vec![r#"hits_total{code="200", job="svc", otel_scope_name="s"} [(1700000000000, 5.0)]"#]
        );
    }
}
