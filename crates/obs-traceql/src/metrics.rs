//! TraceQL metrics: time series from the spans a query selects, for
//! `/api/metrics/query_range`.
//!
//! [`MetricsEval`] follows Tempo's `engine_metrics.go`: the range is aligned to the step
//! (start rounded down, end rounded up, one extra step before the start), each step covers
//! `(t - step, t]` and is stamped with `t`; a span counts in the step holding its start
//! time. Series are labelled by their `by()` fields as written (`resource.service.name`),
//! missing values dropped (all missing: the first label with the string `nil`); a series
//! without `by()` is `{__name__="rate"}` (the function's name). `quantile_over_time` and
//! `histogram_over_time` count spans in power-of-two buckets (`__bucket`, seconds for
//! durations) and interpolate quantiles between buckets exponentially (Tempo's
//! `Log2Quantile`), one series per quantile labelled `p`.
//!
//! `rate` and `count_over_time` report 0 for steps without spans (`quantile_over_time` too);
//! the other functions report nothing there. Second stages (`topk`, `bottomk`, `> 10`) and
//! arithmetic between queries are applied by [`MetricsEval::finish`]. A range whose length
//! is exactly one step is an instant query: one step covering `[start, end]`, stamped `end`.
//!
//! Where this evaluator knowingly differs from Tempo's: spans without a numeric value are
//! skipped by `sum/min/max/avg_over_time` (Tempo lets a missing value turn a sum into NaN);
//! `%` and `^` between series compute instead of giving NaN; `topk`/`bottomk` break ties by
//! labels; no exemplars are kept and sampling hints (`with(sample=...)`) are ignored;
//! `compare()` is refused.

use std::collections::HashMap;

use crate::ast::{
    ArithmeticOp, Field, Intrinsic, MetricsAggregate, MetricsExpr, MetricsFunction, MetricsOp,
    MetricsPipeline, RootExpr, SecondStage,
};
use crate::error::EvalError;
use crate::eval::{At, TraceContext, Value, ValueKey, check_supported};
use crate::model::{AttrValue, Trace};

/// The most steps a range may have (Prometheus' limit of 11,000 points per series).
pub const MAX_STEPS: u64 = 11_000;

/// The most series one metrics function may build.
pub const MAX_SERIES: usize = 10_000;

const NANOS_PER_SECOND: f64 = 1e9;

/// The label of a series without `by()`.
const NAME_LABEL: &str = "__name__";

/// The bucket label of `histogram_over_time`.
const BUCKET_LABEL: &str = "__bucket";

/// The quantile label of `quantile_over_time`.
const QUANTILE_LABEL: &str = "p";

/// One result series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels, in Tempo's order (`by()` fields in query order, then `__bucket` or `p`).
    pub labels: Vec<(String, AttrValue)>,
    /// `(timestamp in Unix milliseconds, value)`, in time order; steps without a value are
    /// absent.
    pub samples: Vec<(i64, f64)>,
}

/// Evaluates a metrics query over traces fed one at a time.
#[derive(Debug)]
pub struct MetricsEval {
    expr: MetricsExpr,
    leaves: Vec<Leaf>,
    range: Range,
}

/// The aligned time range and its steps.
#[derive(Debug, Clone, Copy)]
struct Range {
    start_ns: u64,
    end_ns: u64,
    step_ns: u64,
    steps: usize,
    /// `end - start == step`: one step covering `[start, end]`, stamped `end`.
    instant: bool,
}

impl Range {
    fn new(start_ns: u64, end_ns: u64, step_ns: u64) -> Result<Range, EvalError> {
        if step_ns == 0 {
            return Err(EvalError::InvalidRange("the step must be positive".to_owned()));
        }
        if end_ns <= start_ns {
            return Err(EvalError::InvalidRange(
                "the end must be after the start".to_owned(),
            ));
        }
        if end_ns - start_ns == step_ns {
            return Ok(Range {
                start_ns,
                end_ns,
                step_ns,
                steps: 1,
                instant: true,
            });
        }
        let mut aligned_start = start_ns - start_ns % step_ns;
        let remainder = end_ns % step_ns;
        let aligned_end = if remainder == 0 {
            end_ns
        } else {
            end_ns
                .checked_add(step_ns - remainder)
                .ok_or_else(|| EvalError::InvalidRange("the end is out of range".to_owned()))?
        };
        if aligned_start > step_ns {
            aligned_start -= step_ns;
        }
        let steps = (aligned_end - aligned_start) / step_ns;
        if steps > MAX_STEPS {
            return Err(EvalError::InvalidRange(format!(
                "{steps} steps exceed the limit of {MAX_STEPS}; use a larger step or a shorter range"
            )));
        }
        Ok(Range {
            start_ns: aligned_start,
            end_ns: aligned_end,
            step_ns,
            steps: usize::try_from(steps).unwrap_or(0),
            instant: false,
        })
    }

    /// The step a span starting at `ts_ns` counts in.
    fn step_of(&self, ts_ns: u64) -> Option<usize> {
        let in_range = (self.start_ns..=self.end_ns).contains(&ts_ns);
        if self.instant {
            return in_range.then_some(0);
        }
        // Steps are right-closed: (start, start + step], ...
        if !in_range || ts_ns == self.start_ns {
            return None;
        }
        usize::try_from((ts_ns - self.start_ns - 1) / self.step_ns).ok()
    }

    /// The timestamp of step `index`, Unix milliseconds.
    fn timestamp_ms(&self, index: usize) -> i64 {
        let nanos = if self.instant {
            self.end_ns
        } else {
            let offset = (index as u64).saturating_add(1).saturating_mul(self.step_ns);
            self.start_ns.saturating_add(offset)
        };
        i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// One metrics pipeline and the series it has built so far.
#[derive(Debug)]
struct Leaf {
    pipeline: MetricsPipeline,
    series: HashMap<Vec<ValueKey>, Accumulator>,
}

/// The values of one series (one bucket of one series for quantiles and histograms).
#[derive(Debug)]
struct Accumulator {
    /// The `by()` labels, without the bucket.
    labels: Vec<(String, AttrValue)>,
    /// The bucket, for quantiles and histograms.
    bucket: Option<f64>,
    /// Per step: the count, minimum, maximum or sum (NaN: nothing yet).
    values: Vec<f64>,
    /// Per step: how many values `values` sums (averages only).
    counts: Vec<f64>,
}

impl MetricsEval {
    /// Prepares `query` over `[start_ns, end_ns]` in steps of `step_ns` (aligned as Tempo
    /// aligns them). Errors if the query is not a metrics query, uses `compare()` or
    /// `parent.`, or the range is empty or has more than [`MAX_STEPS`] steps.
    pub fn new(query: &RootExpr, start_ns: u64, end_ns: u64, step_ns: u64) -> Result<MetricsEval, EvalError> {
        let Some(expr) = query.metrics() else {
            return Err(EvalError::WrongQueryKind(
                "a search query is not a metrics query; use the search endpoint",
            ));
        };
        check_supported(query)?;
        let range = Range::new(start_ns, end_ns, step_ns)?;
        let mut leaves = Vec::new();
        for pipeline in expr.pipelines() {
            if let MetricsFunction::Compare(_) = pipeline.function {
                return Err(EvalError::Unsupported("compare()".to_owned()));
            }
            leaves.push(Leaf {
                pipeline: pipeline.clone(),
                series: HashMap::new(),
            });
        }
        Ok(MetricsEval {
            expr: expr.clone(),
            leaves,
            range,
        })
    }

    /// Runs the query's pipelines over `trace` and counts every selected span whose start
    /// falls in the range. Errors when a function would exceed [`MAX_SERIES`] series or the
    /// pipeline fails (structural operators over several spansets).
    pub fn observe(&mut self, trace: &Trace) -> Result<(), EvalError> {
        let context = TraceContext::new(trace);
        let range = self.range;
        for leaf in &mut self.leaves {
            let Leaf { pipeline, series } = leaf;
            let MetricsFunction::Aggregate(aggregate) = &pipeline.function else {
                continue;
            };
            let spansets = context.run_pipeline(&pipeline.pipeline)?;
            for spanset in &spansets {
                for &span in &spanset.spans {
                    let Some(start_ns) = context.trace().spans.get(span).map(|data| data.start_ns) else {
                        continue;
                    };
                    let Some(step) = range.step_of(start_ns) else {
                        continue;
                    };
                    observe_span(&context, aggregate, &range, series, span, step)?;
                }
            }
        }
        Ok(())
    }

    /// The result series: first stages turned into values, second stages and arithmetic
    /// applied, steps without a value left out and series without any dropped. Sorted by
    /// labels.
    pub fn finish(self) -> Vec<Series> {
        let range = self.range;
        let mut sets = self
            .leaves
            .into_iter()
            .map(|leaf| {
                let set = first_stage(&leaf, &range);
                apply_stages(set, &leaf.pipeline.second_stages)
            })
            .collect::<Vec<_>>()
            .into_iter();
        let result = combine(&self.expr, &mut sets);
        let mut series: Vec<Series> = result
            .into_iter()
            .filter_map(|data| {
                let samples: Vec<(i64, f64)> = data
                    .values
                    .iter()
                    .enumerate()
                    .filter(|(_, value)| !value.is_nan())
                    .map(|(index, &value)| (range.timestamp_ms(index), value))
                    .collect();
                (!samples.is_empty()).then_some(Series {
                    labels: data.labels,
                    samples,
                })
            })
            .collect();
        series.sort_by_cached_key(|series| labels_key(&series.labels, false));
        series
    }
}

/// Adds one span to the series of its `by()` values.
fn observe_span(
    context: &TraceContext<'_>,
    aggregate: &MetricsAggregate,
    range: &Range,
    series: &mut HashMap<Vec<ValueKey>, Accumulator>,
    span: usize,
    step: usize,
) -> Result<(), EvalError> {
    let at = At::span(span);
    let mut measured = f64::NAN;
    let mut bucket = None;
    match aggregate.op {
        MetricsOp::Rate | MetricsOp::CountOverTime => {}
        MetricsOp::MinOverTime | MetricsOp::MaxOverTime | MetricsOp::SumOverTime | MetricsOp::AvgOverTime => {
            let Some(field) = &aggregate.field else {
                return Ok(());
            };
            measured = measure(context, field, at);
            if measured.is_nan() {
                return Ok(());
            }
        }
        MetricsOp::QuantileOverTime | MetricsOp::HistogramOverTime => {
            let Some(field) = &aggregate.field else {
                return Ok(());
            };
            match bucketize(context, field, at) {
                Some(found) => bucket = Some(found),
                None => return Ok(()),
            }
        }
    }
    let values: Vec<Value<'_>> = aggregate
        .by
        .iter()
        .map(|field| context.field(field, at))
        .collect();
    let mut key: Vec<ValueKey> = values.iter().map(Value::key).collect();
    if let Some(bucket) = bucket {
        key.push(ValueKey::Float(bucket.to_bits()));
    }
    if !series.contains_key(&key) {
        if series.len() >= MAX_SERIES {
            return Err(EvalError::TooManySeries { limit: MAX_SERIES });
        }
        let initial = match aggregate.op {
            MetricsOp::MinOverTime | MetricsOp::MaxOverTime | MetricsOp::SumOverTime => f64::NAN,
            _ => 0.0,
        };
        let accumulator = Accumulator {
            labels: series_labels(aggregate, &values),
            bucket,
            values: vec![initial; range.steps],
            counts: if aggregate.op == MetricsOp::AvgOverTime {
                vec![0.0; range.steps]
            } else {
                Vec::new()
            },
        };
        series.insert(key.clone(), accumulator);
    }
    let Some(accumulator) = series.get_mut(&key) else {
        return Ok(());
    };
    let Some(current) = accumulator.values.get_mut(step) else {
        return Ok(());
    };
    match aggregate.op {
        MetricsOp::Rate
        | MetricsOp::CountOverTime
        | MetricsOp::QuantileOverTime
        | MetricsOp::HistogramOverTime => *current += 1.0,
        MetricsOp::MinOverTime => {
            if current.is_nan() || measured < *current {
                *current = measured;
            }
        }
        MetricsOp::MaxOverTime => {
            if current.is_nan() || measured > *current {
                *current = measured;
            }
        }
        MetricsOp::SumOverTime => {
            *current = if current.is_nan() {
                measured
            } else {
                *current + measured
            };
        }
        MetricsOp::AvgOverTime => {
            *current += measured;
            if let Some(count) = accumulator.counts.get_mut(step) {
                *count += 1.0;
            }
        }
    }
    Ok(())
}

/// The labels of a new series (without the bucket): `by()` fields with a value, or the
/// first one as `nil` when none has one, or `__name__` without `by()` (and without
/// buckets).
fn series_labels(aggregate: &MetricsAggregate, values: &[Value<'_>]) -> Vec<(String, AttrValue)> {
    let mut labels: Vec<(String, AttrValue)> = aggregate
        .by
        .iter()
        .zip(values)
        .filter(|(_, value)| **value != Value::Nil)
        .map(|(field, value)| (field.to_string(), value.to_attr_value()))
        .collect();
    let bucketed = matches!(
        aggregate.op,
        MetricsOp::QuantileOverTime | MetricsOp::HistogramOverTime
    );
    if labels.is_empty() {
        if let Some(first) = aggregate.by.first() {
            labels.push((first.to_string(), AttrValue::String("nil".to_owned())));
        } else if !bucketed {
            labels.push((
                NAME_LABEL.to_owned(),
                AttrValue::String(aggregate.op.as_str().to_owned()),
            ));
        }
    }
    labels
}

/// The value `min/max/sum/avg_over_time` read from a span: `duration` in seconds, other
/// numeric fields as they are (durations in nanoseconds, as Tempo); NaN when missing.
fn measure(context: &TraceContext<'_>, field: &Field, at: At) -> f64 {
    if *field == Field::Intrinsic(Intrinsic::Duration) {
        return context.field(field, at).as_f64() / NANOS_PER_SECOND;
    }
    context.field(field, at).as_f64()
}

/// The power-of-two bucket of a span for quantiles and histograms (Tempo's
/// `bucketizeFnFor`): durations in seconds, integers as they are; `None` for values below 2,
/// floats and missing values (the span is not counted).
fn bucketize(context: &TraceContext<'_>, field: &Field, at: At) -> Option<f64> {
    match context.field(field, at) {
        Value::Duration(nanos) if nanos >= 2 => Some(log2_bucketize(nanos.unsigned_abs()) / NANOS_PER_SECOND),
        Value::Int(value) if value >= 2 => Some(log2_bucketize(value.unsigned_abs())),
        _ => None,
    }
}

/// The smallest power of two at least `value` (Tempo's `Log2Bucketize`); -1 below 2.
fn log2_bucketize(value: u64) -> f64 {
    if value < 2 {
        return -1.0;
    }
    let bits = 64 - (value - 1).leading_zeros();
    2f64.powi(i32::try_from(bits).unwrap_or(64))
}

/// The quantile `p` of power-of-two buckets `(upper bound, count)` sorted by bound, with
/// exponential interpolation inside the bucket (Tempo's `Log2Quantile`).
fn log2_quantile(p: f64, buckets: &[(f64, f64)]) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) || buckets.is_empty() {
        return 0.0;
    }
    let total_count: f64 = buckets.iter().map(|(_, count)| count).sum();
    if total_count <= 0.0 {
        return 0.0;
    }
    let max_samples = (p * total_count).ceil().max(1.0);
    let mut total = 0.0;
    let mut index = 0;
    for (position, &(bound, count)) in buckets.iter().enumerate() {
        index = position;
        if total + count > max_samples {
            break;
        }
        total += count;
        if total == max_samples {
            return bound;
        }
    }
    let Some(&(bound, count)) = buckets.get(index) else {
        return 0.0;
    };
    let interpolation = if count > 0.0 {
        (max_samples - total) / count
    } else {
        0.0
    };
    let max_log = bound.log2();
    let min_log = match index.checked_sub(1).and_then(|previous| buckets.get(previous)) {
        Some(&(previous_bound, _)) => previous_bound.log2(),
        None => max_log - 1.0,
    };
    2f64.powf(min_log + (max_log - min_log) * interpolation)
}

/// Series labels, in order.
type Labels = Vec<(String, AttrValue)>;

/// `(upper bound, count)` of power-of-two buckets.
type Buckets = Vec<(f64, f64)>;

/// A series between stages: labels and one value per step (NaN: none).
#[derive(Debug, Clone)]
struct SeriesData {
    labels: Vec<(String, AttrValue)>,
    values: Vec<f64>,
}

/// The series of one leaf's first stage.
fn first_stage(leaf: &Leaf, range: &Range) -> Vec<SeriesData> {
    let MetricsFunction::Aggregate(aggregate) = &leaf.pipeline.function else {
        return Vec::new();
    };
    let step_seconds = range.step_ns as f64 / NANOS_PER_SECOND;
    let ungrouped_empty;
    let mut accumulators: Vec<&Accumulator> = leaf.series.values().collect();
    // A series without by() exists even when no span was seen (Tempo reports zeros).
    if accumulators.is_empty()
        && aggregate.by.is_empty()
        && matches!(aggregate.op, MetricsOp::Rate | MetricsOp::CountOverTime)
    {
        ungrouped_empty = Accumulator {
            labels: series_labels(aggregate, &[]),
            bucket: None,
            values: vec![0.0; range.steps],
            counts: Vec::new(),
        };
        accumulators.push(&ungrouped_empty);
    }
    match aggregate.op {
        MetricsOp::Rate => accumulators
            .into_iter()
            .map(|acc| SeriesData {
                labels: acc.labels.clone(),
                values: acc.values.iter().map(|count| count / step_seconds).collect(),
            })
            .collect(),
        MetricsOp::CountOverTime
        | MetricsOp::MinOverTime
        | MetricsOp::MaxOverTime
        | MetricsOp::SumOverTime => accumulators
            .into_iter()
            .map(|acc| SeriesData {
                labels: acc.labels.clone(),
                values: acc.values.clone(),
            })
            .collect(),
        MetricsOp::AvgOverTime => accumulators
            .into_iter()
            .map(|acc| SeriesData {
                labels: acc.labels.clone(),
                values: acc
                    .values
                    .iter()
                    .zip(&acc.counts)
                    .map(|(sum, count)| if *count > 0.0 { sum / count } else { f64::NAN })
                    .collect(),
            })
            .collect(),
        MetricsOp::HistogramOverTime => accumulators
            .into_iter()
            .map(|acc| {
                let mut labels = acc.labels.clone();
                labels.push((
                    BUCKET_LABEL.to_owned(),
                    AttrValue::Float(acc.bucket.unwrap_or(0.0)),
                ));
                SeriesData {
                    labels,
                    values: acc.values.clone(),
                }
            })
            .collect(),
        MetricsOp::QuantileOverTime => {
            // Buckets of each label set, per step.
            let mut groups: Vec<(Labels, Vec<Buckets>)> = Vec::new();
            let mut index_of: HashMap<String, usize> = HashMap::new();
            for acc in accumulators {
                let key = labels_key(&acc.labels, false);
                let group = *index_of.entry(key).or_insert_with(|| {
                    groups.push((acc.labels.clone(), vec![Vec::new(); range.steps]));
                    groups.len() - 1
                });
                let Some((_, steps)) = groups.get_mut(group) else {
                    continue;
                };
                for (step, &count) in acc.values.iter().enumerate() {
                    if count > 0.0
                        && let Some(buckets) = steps.get_mut(step)
                    {
                        buckets.push((acc.bucket.unwrap_or(0.0), count));
                    }
                }
            }
            let mut output = Vec::new();
            for (labels, mut steps) in groups {
                for buckets in &mut steps {
                    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                }
                for &quantile in &aggregate.quantiles {
                    let mut quantile_labels = labels.clone();
                    quantile_labels.push((QUANTILE_LABEL.to_owned(), AttrValue::Float(quantile)));
                    output.push(SeriesData {
                        labels: quantile_labels,
                        values: steps
                            .iter()
                            .map(|buckets| {
                                if buckets.is_empty() {
                                    0.0
                                } else {
                                    log2_quantile(quantile, buckets)
                                }
                            })
                            .collect(),
                    });
                }
            }
            output
        }
    }
}

/// Applies second stages in order.
fn apply_stages(mut set: Vec<SeriesData>, stages: &[SecondStage]) -> Vec<SeriesData> {
    for stage in stages {
        set = match *stage {
            SecondStage::TopK(limit) => top_k(set, limit, true),
            SecondStage::BottomK(limit) => top_k(set, limit, false),
            SecondStage::Filter(op, threshold) => set
                .into_iter()
                .filter_map(|mut series| {
                    for value in &mut series.values {
                        if value.is_nan() || !op.compare(*value, threshold) {
                            *value = f64::NAN;
                        }
                    }
                    series
                        .values
                        .iter()
                        .any(|value| !value.is_nan())
                        .then_some(series)
                })
                .collect(),
        };
    }
    set
}

/// `topk(limit)` / `bottomk(limit)` as Tempo computes them: at each step the `limit` series
/// with the highest (lowest) values keep that step's value; other values become NaN and
/// series never selected are dropped. Ties go to the series whose labels sort first.
fn top_k(set: Vec<SeriesData>, limit: u32, highest: bool) -> Vec<SeriesData> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if set.len() <= limit {
        return set;
    }
    let steps = set.iter().map(|series| series.values.len()).max().unwrap_or(0);
    let keys: Vec<String> = set
        .iter()
        .map(|series| labels_key(&series.labels, false))
        .collect();
    let mut kept: Vec<Option<Vec<f64>>> = vec![None; set.len()];
    for step in 0..steps {
        let mut candidates: Vec<(usize, f64)> = set
            .iter()
            .enumerate()
            .filter_map(|(index, series)| series.values.get(step).map(|&value| (index, value)))
            .filter(|(_, value)| !value.is_nan())
            .collect();
        candidates.sort_by(|a, b| {
            let by_value = if highest {
                b.1.total_cmp(&a.1)
            } else {
                a.1.total_cmp(&b.1)
            };
            by_value.then_with(|| keys[a.0].cmp(&keys[b.0]))
        });
        for &(index, value) in candidates.iter().take(limit) {
            if let Some(slot) = kept.get_mut(index) {
                let values = slot.get_or_insert_with(|| vec![f64::NAN; steps]);
                if let Some(target) = values.get_mut(step) {
                    *target = value;
                }
            }
        }
    }
    set.into_iter()
        .zip(kept)
        .filter_map(|(series, values)| {
            values.map(|values| SeriesData {
                labels: series.labels,
                values,
            })
        })
        .collect()
}

/// Evaluates the expression tree, taking leaf results in query order.
fn combine(expr: &MetricsExpr, leaves: &mut impl Iterator<Item = Vec<SeriesData>>) -> Vec<SeriesData> {
    match expr {
        MetricsExpr::Pipeline(_) => leaves.next().unwrap_or_default(),
        MetricsExpr::Scalar(_) => Vec::new(),
        MetricsExpr::Staged(staged) => apply_stages(combine(&staged.expr, leaves), &staged.stages),
        MetricsExpr::Binary(binary) => match (&binary.lhs, &binary.rhs) {
            (MetricsExpr::Scalar(scalar), rhs) => {
                let mut set = combine(rhs, leaves);
                for series in &mut set {
                    for value in &mut series.values {
                        *value = arithmetic(binary.op, *scalar, *value);
                    }
                }
                set
            }
            (lhs, MetricsExpr::Scalar(scalar)) => {
                let mut set = combine(lhs, leaves);
                for series in &mut set {
                    for value in &mut series.values {
                        *value = arithmetic(binary.op, *value, *scalar);
                    }
                }
                set
            }
            (lhs, rhs) => {
                let lhs = combine(lhs, leaves);
                let rhs = combine(rhs, leaves);
                series_arithmetic(binary.op, lhs, rhs)
            }
        },
    }
}

/// Arithmetic between two series sets (Tempo's `applyBinaryOp`): series match by their
/// labels other than `__name__`; a series without such labels matches every series of the
/// other side.
fn series_arithmetic(op: ArithmeticOp, lhs: Vec<SeriesData>, rhs: Vec<SeriesData>) -> Vec<SeriesData> {
    let index = |set: &[SeriesData]| -> HashMap<String, usize> {
        set.iter()
            .enumerate()
            .map(|(position, series)| (labels_key(&series.labels, true), position))
            .collect()
    };
    let lhs_index = index(&lhs);
    let rhs_index = index(&rhs);
    let empty_key = String::new();
    let target_is_lhs = rhs_index.contains_key(&empty_key);
    let target = if target_is_lhs { &lhs } else { &rhs };
    let find = |set: &[SeriesData], by_key: &HashMap<String, usize>, key: &String| {
        by_key
            .get(key)
            .or_else(|| by_key.get(&empty_key))
            .and_then(|&position| set.get(position))
            .cloned()
    };
    let mut output = Vec::new();
    for series in target {
        let key = labels_key(&series.labels, true);
        let (Some(left), Some(right)) = (find(&lhs, &lhs_index, &key), find(&rhs, &rhs_index, &key)) else {
            continue;
        };
        let values = left
            .values
            .iter()
            .zip(&right.values)
            .map(|(a, b)| arithmetic(op, *a, *b))
            .collect();
        output.push(SeriesData {
            labels: merge_labels(op, &left.labels, &right.labels),
            values,
        });
    }
    output
}

/// The labels of an arithmetic result (Tempo's `mergeLabels`): the left side's, then the
/// right side's it lacks; `__name__` becomes `(a op b)` when both sides have one, and is
/// dropped otherwise.
fn merge_labels(
    op: ArithmeticOp,
    lhs: &[(String, AttrValue)],
    rhs: &[(String, AttrValue)],
) -> Vec<(String, AttrValue)> {
    let mut labels: Vec<(String, AttrValue)> = lhs.to_vec();
    for (name, value) in rhs {
        if name != NAME_LABEL && !lhs.iter().any(|(existing, _)| existing == name) {
            labels.push((name.clone(), value.clone()));
        }
    }
    let name_of = |set: &[(String, AttrValue)]| {
        set.iter().find_map(|(name, value)| match value {
            AttrValue::String(text) if name == NAME_LABEL => Some(text.clone()),
            _ => None,
        })
    };
    match (name_of(lhs), name_of(rhs)) {
        (Some(left), Some(right)) => {
            for (name, value) in &mut labels {
                if name == NAME_LABEL {
                    *value = AttrValue::String(format!("({left} {} {right})", op.as_str()));
                }
            }
        }
        _ => labels.retain(|(name, _)| name != NAME_LABEL),
    }
    labels
}

/// `a op b` over samples: division by zero is NaN (no sample), as in Tempo.
fn arithmetic(op: ArithmeticOp, lhs: f64, rhs: f64) -> f64 {
    match op {
        ArithmeticOp::Add => lhs + rhs,
        ArithmeticOp::Sub => lhs - rhs,
        ArithmeticOp::Mul => lhs * rhs,
        ArithmeticOp::Div if rhs == 0.0 => f64::NAN,
        ArithmeticOp::Div => lhs / rhs,
        ArithmeticOp::Mod => lhs % rhs,
        ArithmeticOp::Pow => lhs.powf(rhs),
    }
}

/// A text key identifying a label set (typed values, in order), optionally without
/// `__name__`.
fn labels_key(labels: &[(String, AttrValue)], skip_name: bool) -> String {
    let mut key = String::new();
    for (name, value) in labels {
        if skip_name && name == NAME_LABEL {
            continue;
        }
        let typed = match value {
            AttrValue::String(text) => format!("s{text}"),
            AttrValue::Int(number) => format!("i{number}"),
            AttrValue::Float(number) => format!("f{number:e}"),
            AttrValue::Bool(flag) => format!("b{flag}"),
        };
        key.push_str(&format!("{}:{name}={}:{typed}\u{0}", name.len(), typed.len()));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_buckets_round_up_to_powers_of_two() {
        assert_eq!(log2_bucketize(0), -1.0);
        assert_eq!(log2_bucketize(2), 2.0);
        assert_eq!(log2_bucketize(3), 4.0);
        assert_eq!(log2_bucketize(4), 4.0);
        assert_eq!(log2_bucketize(5), 8.0);
        assert_eq!(log2_bucketize(u64::MAX), 2f64.powi(64));
    }

    #[test]
    fn log2_quantiles_interpolate_exponentially() {
        // 10 samples at <=1, 10 at <=2: p50 is exactly the first bucket's bound.
        assert_eq!(log2_quantile(0.5, &[(1.0, 10.0), (2.0, 10.0)]), 1.0);
        // p75: 15 of 20 samples, half way into (1, 2] -> 2^(0 + 1 * 0.5).
        assert!((log2_quantile(0.75, &[(1.0, 10.0), (2.0, 10.0)]) - 2f64.sqrt()).abs() < 1e-12);
        // One bucket (4): p50 of 2 samples is its bound; p25 -> 1 sample of 2 half way from 2.
        assert_eq!(log2_quantile(1.0, &[(4.0, 2.0)]), 4.0);
        assert!((log2_quantile(0.25, &[(4.0, 4.0)]) - 2f64.powf(1.25)).abs() < 1e-12);
        assert_eq!(log2_quantile(0.5, &[]), 0.0);
    }

    #[test]
    fn ranges_align_like_tempo() {
        // start 95s, end 205s, step 10s: start -> 90s - 10s = 80s, end -> 210s: 13 steps.
        let range = Range::new(95_000_000_000, 205_000_000_000, 10_000_000_000).unwrap();
        assert_eq!(
            (range.start_ns, range.end_ns, range.steps),
            (80_000_000_000, 210_000_000_000, 13)
        );
        assert_eq!(range.timestamp_ms(0), 90_000);
        assert_eq!(range.step_of(80_000_000_000), None);
        assert_eq!(range.step_of(80_000_000_001), Some(0));
        assert_eq!(range.step_of(90_000_000_000), Some(0));
        assert_eq!(range.step_of(90_000_000_001), Some(1));
        assert_eq!(range.step_of(210_000_000_000), Some(12));
        assert_eq!(range.step_of(210_000_000_001), None);
        assert!(Range::new(0, 10, 0).is_err());
        assert!(Range::new(10, 10, 1).is_err());
        assert!(Range::new(0, 11_001 * 1_000, 1_000).is_err());
        let instant = Range::new(100, 200, 100).unwrap();
        assert!(instant.instant);
        assert_eq!(
            (instant.step_of(100), instant.step_of(200), instant.step_of(201)),
            (Some(0), Some(0), None)
        );
    }
}
