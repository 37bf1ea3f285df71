//! Metric queries, step by step, as Loki's step evaluators (`pkg/logql/evaluator.go`,
//! `range_vector.go`).
//!
//! Each range aggregation reads its log range once, over the whole query span
//! (`[start - range - offset, end - offset]`), turning every line that passes the pipeline into
//! a `(timestamp, series, value)` sample. Evaluation then walks the steps in order; at step
//! `t` a range aggregation takes, per series, the samples of the window `(t - offset - range,
//! t - offset]` (start excluded, end included, as Loki's batch iterator) with two cursors that
//! only move forward.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use obs_core::series::Labels;
use obs_logql::units::{parse_bytes, parse_go_duration, parse_go_float};
use obs_logql::{
    BinaryExpr, BinaryOp, Cardinality, Grouping, LabelReplace, MatchOp, RangeAggregation, RangeOp,
    SampleExpr, UnwrapConversion, VectorMatching, VectorOp,
};

use crate::labels::{
    ERR_SAMPLE_EXTRACTION, ERROR_LABEL, LabelSet, LabelsBuilder, PRESERVE_ERROR_LABEL, ParserHints,
    SampleGrouping, label_set, label_value, labels_string,
};
use crate::logs::{DEADLINE_CHECK_EVERY, selector_matches};
use crate::pipeline::{Pipeline, label_filter_passes, required_label_names};
use crate::{
    Deadline, Direction, EngineError, EngineOptions, LogSource, QueryValue, RangeParams, SampleResult,
    SeriesResult, SourceQuery, pushdown,
};

/// Deeper expression trees are refused (the parser stops at 128 levels already).
const MAX_TREE_DEPTH: usize = 512;

/// One sample of an instant vector.
#[derive(Debug, Clone)]
struct Sample {
    labels: LabelSet,
    value: f64,
}

/// The time span a query's range aggregations must read, in nanoseconds, inclusive.
#[derive(Debug, Clone, Copy)]
struct Span {
    first_step_ns: i64,
    last_step_ns: i64,
}

/// `/loki/api/v1/query_range` for a metric query.
pub(crate) fn query_range(
    source: &dyn LogSource,
    expr: &SampleExpr,
    params: &RangeParams,
    options: &EngineOptions,
    deadline: &Deadline,
) -> Result<QueryValue, EngineError> {
    if params.step_ns <= 0 {
        return Err(EngineError::BadQuery(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .to_owned(),
        ));
    }
    let (mut start_ns, mut end_ns) = (params.start_ns, params.end_ns);
    if options.align_queries_with_step {
        // Loki's step-align middleware works in milliseconds.
        let step_ms = (params.step_ns / 1_000_000).max(1);
        start_ns = (start_ns / 1_000_000 / step_ms)
            .saturating_mul(step_ms)
            .saturating_mul(1_000_000);
        end_ns = (end_ns / 1_000_000 / step_ms)
            .saturating_mul(step_ms)
            .saturating_mul(1_000_000);
    }
    let points = (end_ns.saturating_sub(start_ns) / params.step_ns) as u64;
    if points > options.max_points as u64 {
        return Err(EngineError::BadQuery(format!(
            "exceeded maximum resolution of {} points per time series. Try increasing the value of the step parameter",
            thousands(options.max_points)
        )));
    }
    let steps = || {
        (0..=points).map_while(move |index| {
            let step = i64::try_from(index).ok()?.checked_mul(params.step_ns)?;
            start_ns.checked_add(step).filter(|t| *t <= end_ns)
        })
    };
    if let SampleExpr::Literal(value) = expr {
        let points: Vec<(i64, f64)> = steps().map(|t| (t / 1_000_000, *value)).collect();
        return Ok(QueryValue::Matrix(vec![SeriesResult {
            labels: Labels::default(),
            points,
        }]));
    }
    let span = Span {
        first_step_ns: start_ns,
        last_step_ns: end_ns,
    };
    let mut root = Node::build(
        expr,
        None,
        &Context {
            source,
            options,
            deadline,
            span,
        },
        0,
    )?;
    let mut series: HashMap<LabelSet, Vec<(i64, f64)>> = HashMap::new();
    for t in steps() {
        deadline.check()?;
        for sample in root.eval(t)? {
            if options.max_series > 0
                && !series.contains_key(&sample.labels)
                && series.len() >= options.max_series
            {
                return Err(series_limit(options.max_series));
            }
            series
                .entry(sample.labels)
                .or_default()
                .push((t / 1_000_000, sample.value));
        }
    }
    let mut matrix = series
        .into_iter()
        .map(|(labels, points)| {
            Ok(SeriesResult {
                labels: to_labels(&labels)?,
                points,
            })
        })
        .collect::<Result<Vec<SeriesResult>, EngineError>>()?;
    matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(QueryValue::Matrix(matrix))
}

/// `/loki/api/v1/query` for a metric query.
pub(crate) fn query_instant(
    source: &dyn LogSource,
    expr: &SampleExpr,
    time_ns: i64,
    options: &EngineOptions,
    deadline: &Deadline,
) -> Result<QueryValue, EngineError> {
    let timestamp_ms = time_ns / 1_000_000;
    match expr {
        SampleExpr::Literal(value) => {
            return Ok(QueryValue::Scalar {
                timestamp_ns: time_ns,
                value: *value,
            });
        }
        SampleExpr::Vector(value) => {
            return Ok(QueryValue::Vector(vec![SampleResult {
                labels: Labels::default(),
                timestamp_ms,
                value: *value,
            }]));
        }
        _ => {}
    }
    let span = Span {
        first_step_ns: time_ns,
        last_step_ns: time_ns,
    };
    let mut root = Node::build(
        expr,
        None,
        &Context {
            source,
            options,
            deadline,
            span,
        },
        0,
    )?;
    let vector = root.eval(time_ns)?;
    if options.max_series > 0 && vector.len() > options.max_series {
        return Err(series_limit(options.max_series));
    }
    let mut samples = vector
        .into_iter()
        .map(|sample| {
            Ok(SampleResult {
                labels: to_labels(&sample.labels)?,
                timestamp_ms,
                value: sample.value,
            })
        })
        .collect::<Result<Vec<SampleResult>, EngineError>>()?;
    if !sorts_by_value(expr) {
        samples.sort_by(|a, b| a.labels.cmp(&b.labels));
    }
    Ok(QueryValue::Vector(samples))
}

fn thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, c) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn series_limit(max_series: usize) -> EngineError {
    EngineError::LimitExceeded(format!(
        "maximum number of series ({max_series}) reached for a single query; consider reducing query cardinality by adding more specific stream selectors, reducing the time range, or aggregating results with functions like sum(), count() or topk()"
    ))
}

fn to_labels(labels: &LabelSet) -> Result<Labels, EngineError> {
    Labels::from_pairs(labels.iter().cloned()).map_err(|err| {
        EngineError::BadQuery(format!(
            "series {} cannot be returned: {err}",
            labels_string(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        ))
    })
}

/// Whether an instant result keeps the order of `sort` / `sort_desc` (Loki's `Sortable`).
fn sorts_by_value(expr: &SampleExpr) -> bool {
    match expr {
        SampleExpr::VectorAggregation(aggregation) => {
            matches!(aggregation.op, VectorOp::Sort | VectorOp::SortDesc) || sorts_by_value(&aggregation.expr)
        }
        SampleExpr::Binary(binary) => sorts_by_value(&binary.lhs) || sorts_by_value(&binary.rhs),
        SampleExpr::LabelReplace(replace) => sorts_by_value(&replace.expr),
        SampleExpr::RangeAggregation(_) | SampleExpr::Literal(_) | SampleExpr::Vector(_) => false,
    }
}

struct Context<'c> {
    source: &'c dyn LogSource,
    options: &'c EngineOptions,
    deadline: &'c Deadline,
    span: Span,
}

/// A node of the evaluation tree.
#[derive(Debug)]
enum Node<'q> {
    Range(Box<RangeNode>),
    Aggregate {
        op: VectorOp,
        k: Option<usize>,
        grouping: &'q Grouping,
        inner: Box<Node<'q>>,
    },
    Binary {
        expr: &'q BinaryExpr,
        lhs: Box<Node<'q>>,
        rhs: Box<Node<'q>>,
    },
    /// A binary operation with a number on one side.
    WithLiteral {
        op: BinaryOp,
        literal: f64,
        literal_on_left: bool,
        return_bool: bool,
        inner: Box<Node<'q>>,
    },
    Vector(f64),
    LabelReplace {
        replace: &'q LabelReplace,
        inner: Box<Node<'q>>,
    },
}

impl<'q> Node<'q> {
    fn build(
        expr: &'q SampleExpr,
        pushed_grouping: Option<&'q Grouping>,
        context: &Context<'_>,
        depth: usize,
    ) -> Result<Node<'q>, EngineError> {
        if depth > MAX_TREE_DEPTH {
            return Err(EngineError::BadQuery("query is nested too deeply".to_owned()));
        }
        let child = |expr: &'q SampleExpr, pushed: Option<&'q Grouping>| {
            Node::build(expr, pushed, context, depth + 1)
        };
        Ok(match expr {
            SampleExpr::RangeAggregation(aggregation) => {
                Node::Range(Box::new(RangeNode::read(aggregation, pushed_grouping, context)?))
            }
            SampleExpr::VectorAggregation(aggregation) => {
                // Loki lets a `sum` hand its grouping to the range aggregation below it when that
                // gives the same result with fewer series (`canInjectVectorGrouping`).
                let pushed = match aggregation.expr.as_ref() {
                    SampleExpr::RangeAggregation(range)
                        if aggregation.op == VectorOp::Sum
                            && range.grouping.is_none()
                            && matches!(
                                range.op,
                                RangeOp::BytesOverTime
                                    | RangeOp::BytesRate
                                    | RangeOp::SumOverTime
                                    | RangeOp::Rate
                                    | RangeOp::CountOverTime
                            ) =>
                    {
                        Some(&aggregation.grouping)
                    }
                    _ => None,
                };
                Node::Aggregate {
                    op: aggregation.op,
                    k: aggregation.k,
                    grouping: &aggregation.grouping,
                    inner: Box::new(child(&aggregation.expr, pushed)?),
                }
            }
            SampleExpr::Binary(binary) => match (binary.lhs.as_ref(), binary.rhs.as_ref()) {
                (SampleExpr::Literal(literal), other) | (other, SampleExpr::Literal(literal)) => {
                    if binary.op.is_set_operator() {
                        return Err(EngineError::BadQuery(format!(
                            "unexpected literal for logical/set binary operation ({})",
                            binary.op.as_str()
                        )));
                    }
                    Node::WithLiteral {
                        op: binary.op,
                        literal: *literal,
                        literal_on_left: matches!(binary.lhs.as_ref(), SampleExpr::Literal(_)),
                        return_bool: binary.return_bool,
                        inner: Box::new(child(other, None)?),
                    }
                }
                (lhs, rhs) => Node::Binary {
                    expr: binary,
                    lhs: Box::new(child(lhs, None)?),
                    rhs: Box::new(child(rhs, None)?),
                },
            },
            SampleExpr::Vector(value) => Node::Vector(*value),
            SampleExpr::LabelReplace(replace) => Node::LabelReplace {
                replace,
                inner: Box::new(child(&replace.expr, None)?),
            },
            SampleExpr::Literal(value) => {
                return Err(EngineError::BadQuery(format!(
                    "unexpected literal {value} where a vector is expected"
                )));
            }
        })
    }

    /// The vector at step `t_ns`; steps come in increasing order.
    fn eval(&mut self, t_ns: i64) -> Result<Vec<Sample>, EngineError> {
        match self {
            Node::Range(range) => range.eval(t_ns),
            Node::Aggregate {
                op,
                k,
                grouping,
                inner,
            } => Ok(aggregate(*op, *k, grouping, inner.eval(t_ns)?)),
            Node::Binary { expr, lhs, rhs } => {
                let right = rhs.eval(t_ns)?;
                let left = lhs.eval(t_ns)?;
                binary(expr, left, right)
            }
            Node::WithLiteral {
                op,
                literal,
                literal_on_left,
                return_bool,
                inner,
            } => {
                let vector = inner.eval(t_ns)?;
                Ok(vector
                    .into_iter()
                    .filter_map(|sample| {
                        let (left, right) = if *literal_on_left {
                            (*literal, sample.value)
                        } else {
                            (sample.value, *literal)
                        };
                        merge(*op, left, right, !*return_bool).map(|result| {
                            // A filtering comparison keeps the vector's own value.
                            let value = if op.is_comparison() && !*return_bool {
                                sample.value
                            } else {
                                result
                            };
                            Sample {
                                labels: sample.labels,
                                value,
                            }
                        })
                    })
                    .collect())
            }
            Node::Vector(value) => Ok(vec![Sample {
                labels: LabelSet::from([]),
                value: *value,
            }]),
            Node::LabelReplace { replace, inner } => Ok(inner
                .eval(t_ns)?
                .into_iter()
                .map(|sample| label_replace(replace, sample))
                .collect()),
        }
    }
}

/// `left op right` for arithmetic and comparisons (Loki's `MergeBinOp`): `None` when a
/// filtering comparison fails; division and modulo by zero give NaN.
fn merge(op: BinaryOp, left: f64, right: f64, filter: bool) -> Option<f64> {
    let truth = |holds: bool| -> Option<f64> {
        if holds {
            Some(1.0)
        } else if filter {
            None
        } else {
            Some(0.0)
        }
    };
    match op {
        BinaryOp::Add => Some(left + right),
        BinaryOp::Sub => Some(left - right),
        BinaryOp::Mul => Some(left * right),
        BinaryOp::Div => Some(if right == 0.0 { f64::NAN } else { left / right }),
        BinaryOp::Mod => Some(if right == 0.0 { f64::NAN } else { left % right }),
        BinaryOp::Pow => Some(left.powf(right)),
        BinaryOp::Equal => truth(left == right),
        BinaryOp::NotEqual => truth(left != right),
        BinaryOp::Greater => truth(left > right),
        BinaryOp::GreaterOrEqual => truth(left >= right),
        BinaryOp::Less => truth(left < right),
        BinaryOp::LessOrEqual => truth(left <= right),
        BinaryOp::Or | BinaryOp::And | BinaryOp::Unless => None,
    }
}

/// The labels two samples are matched on (`on (...)` keeps, `ignoring (...)` drops).
fn signature(labels: &LabelSet, matching: &VectorMatching) -> LabelSet {
    let listed = |name: &str| matching.labels.iter().any(|label| label == name);
    if matching.on {
        labels.iter().filter(|(name, _)| listed(name)).cloned().collect()
    } else if matching.labels.is_empty() {
        Arc::clone(labels)
    } else {
        labels.iter().filter(|(name, _)| !listed(name)).cloned().collect()
    }
}

/// Loki's `resultMetric`: the "many" side's labels (only the `on` labels for one-to-one `on`,
/// without the `ignoring` labels for one-to-one `ignoring`), plus the `group_x` labels taken
/// from the "one" side.
fn result_labels(many: &LabelSet, one: &LabelSet, matching: &VectorMatching) -> LabelSet {
    let listed = |name: &str| matching.labels.iter().any(|label| label == name);
    let mut labels: Vec<(String, String)> = many
        .iter()
        .filter(|(name, _)| {
            matching.cardinality != Cardinality::OneToOne
                || (if matching.on { listed(name) } else { !listed(name) })
        })
        .cloned()
        .collect();
    for name in &matching.include {
        labels.retain(|(label, _)| label != name);
        if let Some(value) = label_value(one, name) {
            labels.push((name.clone(), value.to_owned()));
        }
    }
    label_set(labels)
}

fn binary(expr: &BinaryExpr, lhs: Vec<Sample>, rhs: Vec<Sample>) -> Result<Vec<Sample>, EngineError> {
    let matching = &expr.matching;
    let lhs_signatures: Vec<LabelSet> = lhs
        .iter()
        .map(|sample| signature(&sample.labels, matching))
        .collect();
    let rhs_signatures: Vec<LabelSet> = rhs
        .iter()
        .map(|sample| signature(&sample.labels, matching))
        .collect();
    match expr.op {
        BinaryOp::And => {
            if lhs.is_empty() || rhs.is_empty() {
                return Ok(Vec::new());
            }
            let right: HashSet<&LabelSet> = rhs_signatures.iter().collect();
            Ok(lhs
                .into_iter()
                .zip(&lhs_signatures)
                .filter(|(_, signature)| right.contains(signature))
                .map(|(sample, _)| sample)
                .collect())
        }
        BinaryOp::Or => {
            if lhs.is_empty() {
                return Ok(rhs);
            }
            if rhs.is_empty() {
                return Ok(lhs);
            }
            let left: HashSet<LabelSet> = lhs_signatures.into_iter().collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .zip(&rhs_signatures)
                    .filter(|(_, signature)| !left.contains(*signature))
                    .map(|(sample, _)| sample),
            );
            Ok(out)
        }
        BinaryOp::Unless => {
            if lhs.is_empty() || rhs.is_empty() {
                return Ok(lhs);
            }
            let right: HashSet<&LabelSet> = rhs_signatures.iter().collect();
            Ok(lhs
                .into_iter()
                .zip(&lhs_signatures)
                .filter(|(_, signature)| !right.contains(signature))
                .map(|(sample, _)| sample)
                .collect())
        }
        op => vector_binary(
            op,
            expr.return_bool,
            matching,
            lhs,
            rhs,
            lhs_signatures,
            rhs_signatures,
        ),
    }
}

/// Loki's `vectorBinop`: arithmetic and comparisons between two vectors.
fn vector_binary(
    op: BinaryOp,
    return_bool: bool,
    matching: &VectorMatching,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    lhs_signatures: Vec<LabelSet>,
    rhs_signatures: Vec<LabelSet>,
) -> Result<Vec<Sample>, EngineError> {
    let one_to_many = matching.cardinality == Cardinality::OneToMany;
    // The "many" side is walked; the "one" side is indexed.
    let (many, one, many_signatures, one_signatures) = if one_to_many {
        (rhs, lhs, rhs_signatures, lhs_signatures)
    } else {
        (lhs, rhs, lhs_signatures, rhs_signatures)
    };
    let mut one_index: HashMap<&LabelSet, &Sample> = HashMap::with_capacity(one.len());
    for (sample, signature) in one.iter().zip(&one_signatures) {
        if one_index.insert(signature, sample).is_some() {
            let side = if one_to_many { "left" } else { "right" };
            return Err(EngineError::BadQuery(format!(
                "found duplicate series on the {side} hand-side;many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
    }
    let mut matched: HashMap<&LabelSet, HashSet<LabelSet>> = HashMap::new();
    let mut out = Vec::new();
    for (sample, signature) in many.iter().zip(&many_signatures) {
        let Some(other) = one_index.get(signature) else {
            continue;
        };
        let labels = result_labels(&sample.labels, &other.labels, matching);
        if matching.cardinality == Cardinality::OneToOne {
            if matched.insert(signature, HashSet::new()).is_some() {
                return Err(EngineError::BadQuery(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .to_owned(),
                ));
            }
        } else if !matched.entry(signature).or_default().insert(Arc::clone(&labels)) {
            return Err(EngineError::BadQuery(
                "multiple matches for labels: grouping labels must ensure unique matches".to_owned(),
            ));
        }
        let (left, right) = if one_to_many {
            (other.value, sample.value)
        } else {
            (sample.value, other.value)
        };
        if let Some(result) = merge(op, left, right, !return_bool) {
            // A filtering comparison returns the left-hand sample's value.
            let value = if op.is_comparison() && !return_bool {
                left
            } else {
                result
            };
            out.push(Sample { labels, value });
        }
    }
    Ok(out)
}

fn label_replace(replace: &LabelReplace, sample: Sample) -> Sample {
    let source = label_value(&sample.labels, &replace.src).unwrap_or_default();
    let Some(captures) = replace.regex.regex().captures(source) else {
        return sample;
    };
    let mut value = String::new();
    captures.expand(&replace.replacement, &mut value);
    let labels = sample
        .labels
        .iter()
        .filter(|(name, _)| *name != replace.dst)
        .cloned()
        .chain((!value.is_empty()).then(|| (replace.dst.clone(), value)));
    Sample {
        labels: label_set(labels),
        value: sample.value,
    }
}

/// The group of a sample: `by` keeps the listed labels, `without` drops them.
fn group_key(labels: &LabelSet, grouping: &Grouping) -> LabelSet {
    let listed = |name: &str| grouping.labels.iter().any(|label| label == name);
    labels
        .iter()
        .filter(|(name, _)| {
            if grouping.without {
                !listed(name) && name != obs_core::series::METRIC_NAME_LABEL
            } else {
                listed(name)
            }
        })
        .cloned()
        .collect()
}

/// Orders values for `topk` / `sort_desc` (largest first) or `bottomk` / `sort` (smallest
/// first), NaN last either way, as Loki's heaps end up.
fn by_value(descending: bool) -> impl Fn(&Sample, &Sample) -> std::cmp::Ordering {
    move |a, b| match (a.value.is_nan(), b.value.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        (false, false) => {
            let order = a.value.partial_cmp(&b.value).unwrap_or(std::cmp::Ordering::Equal);
            if descending { order.reverse() } else { order }
        }
    }
}

/// The state of one group of a vector aggregation.
#[derive(Debug)]
struct Group {
    labels: LabelSet,
    value: f64,
    mean: f64,
    count: usize,
    members: Vec<Sample>,
}

/// Loki's `VectorAggEvaluator` for one step. Input is taken in label order so that ties in
/// `topk` / `bottomk` resolve the same way every time.
fn aggregate(op: VectorOp, k: Option<usize>, grouping: &Grouping, mut input: Vec<Sample>) -> Vec<Sample> {
    let k = k.unwrap_or(0);
    if matches!(op, VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk) && k < 1 {
        return Vec::new();
    }
    input.sort_by(|a, b| a.labels.cmp(&b.labels));
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<LabelSet, usize> = HashMap::new();
    for sample in input {
        let key = group_key(&sample.labels, grouping);
        let Some(&position) = index.get(&key) else {
            index.insert(Arc::clone(&key), groups.len());
            groups.push(Group {
                labels: key,
                value: if matches!(op, VectorOp::Stddev | VectorOp::Stdvar) {
                    0.0
                } else {
                    sample.value
                },
                mean: sample.value,
                count: 1,
                members: vec![sample],
            });
            continue;
        };
        let Some(group) = groups.get_mut(position) else {
            continue;
        };
        let value = sample.value;
        match op {
            VectorOp::Sum => group.value += value,
            VectorOp::Avg => {
                group.count += 1;
                let keeps_infinite_mean = group.mean.is_infinite()
                    && ((value.is_infinite() && (group.mean > 0.0) == (value > 0.0))
                        || (!value.is_infinite() && !value.is_nan()));
                if !keeps_infinite_mean {
                    group.mean += (value - group.mean) / group.count as f64;
                }
            }
            VectorOp::Max => {
                if group.value < value || group.value.is_nan() {
                    group.value = value;
                }
            }
            VectorOp::Min => {
                if group.value > value || group.value.is_nan() {
                    group.value = value;
                }
            }
            VectorOp::Count => group.count += 1,
            VectorOp::Stddev | VectorOp::Stdvar => {
                group.count += 1;
                let delta = value - group.mean;
                group.mean += delta / group.count as f64;
                group.value += delta * (value - group.mean);
            }
            VectorOp::Topk
            | VectorOp::Bottomk
            | VectorOp::ApproxTopk
            | VectorOp::Sort
            | VectorOp::SortDesc => {
                group.members.push(sample);
            }
        }
    }
    let mut out = Vec::new();
    for group in groups {
        let value = match op {
            VectorOp::Avg => group.mean,
            VectorOp::Count => group.count as f64,
            VectorOp::Stddev => (group.value / group.count as f64).sqrt(),
            VectorOp::Stdvar => group.value / group.count as f64,
            VectorOp::Topk
            | VectorOp::ApproxTopk
            | VectorOp::SortDesc
            | VectorOp::Bottomk
            | VectorOp::Sort => {
                let descending = matches!(op, VectorOp::Topk | VectorOp::ApproxTopk | VectorOp::SortDesc);
                let mut members = group.members;
                members.sort_by(by_value(descending));
                if matches!(op, VectorOp::Topk | VectorOp::ApproxTopk | VectorOp::Bottomk) {
                    members.truncate(k);
                }
                out.extend(members);
                continue;
            }
            VectorOp::Sum | VectorOp::Max | VectorOp::Min => group.value,
        };
        out.push(Sample {
            labels: group.labels,
            value,
        });
    }
    out
}

/// One series a range aggregation has seen.
#[derive(Debug)]
struct SeriesInfo {
    labels: LabelSet,
    /// The `__error__` of a series that must fail the query if a window holds it.
    error: Option<String>,
}

/// A range aggregation: its samples over the whole query span and the window cursors.
#[derive(Debug)]
struct RangeNode {
    op: RangeOp,
    quantile: f64,
    range_ns: i64,
    offset_ns: i64,
    series: Vec<SeriesInfo>,
    /// `(timestamp, series, value)` in time order.
    samples: Vec<(i64, u32, f64)>,
    window_start: usize,
    window_end: usize,
    buckets: Vec<Vec<(i64, f64)>>,
    /// `absent_over_time`: the labels of the sample returned for an empty window.
    absent_labels: Option<LabelSet>,
}

impl RangeNode {
    fn read(
        aggregation: &RangeAggregation,
        pushed_grouping: Option<&Grouping>,
        context: &Context<'_>,
    ) -> Result<RangeNode, EngineError> {
        let range = &aggregation.range;
        let log = &range.log;
        let range_ns = i64::try_from(range.interval.as_nanos())
            .unwrap_or(i64::MAX)
            .max(1);
        let offset_ns = range.offset.as_nanos();

        // How samples are labelled (Loki's `RangeAggregationExpr.extractor`).
        let grouping = pushed_grouping.or(aggregation.grouping.as_ref());
        let mut groups: Vec<String> = grouping
            .map(|grouping| grouping.labels.clone())
            .unwrap_or_default();
        let mut without = grouping.is_some_and(|grouping| grouping.without);
        let mut no_labels = grouping.is_some_and(Grouping::is_single_group);
        if aggregation.op == RangeOp::AbsentOverTime {
            no_labels = true;
        }
        let post_filters = range
            .unwrap
            .as_ref()
            .map(|unwrap| unwrap.post_filters.as_slice())
            .unwrap_or_default();
        let unwrap_label = range.unwrap.as_ref().map(|unwrap| unwrap.label.as_str());
        if let Some(label) = unwrap_label
            && (groups.is_empty() || without)
        {
            without = true;
            groups.push(label.to_owned());
        }
        groups.sort();
        let hints = ParserHints::new(
            &required_label_names(log, post_filters),
            &groups,
            without,
            no_labels,
            unwrap_label,
        );
        let sample_grouping = SampleGrouping {
            groups,
            without,
            no_labels,
        };

        let pipeline = Pipeline::new(log).map_err(EngineError::BadQuery)?;
        let selector = log.matchers();
        let matches_stream = |labels: &Labels| selector_matches(selector, labels);
        let span = context.span;
        let query = SourceQuery {
            matches_stream: &matches_stream,
            start_ns: span
                .first_step_ns
                .saturating_sub(range_ns)
                .saturating_sub(offset_ns),
            end_ns: span.last_step_ns.saturating_sub(offset_ns).saturating_add(1),
            line_contains: pushdown::line_contains(log),
            keys: pushdown::correlation_keys(log, post_filters, &context.options.indexed_keys),
            direction: Direction::Forward,
        };
        let mut labels = LabelsBuilder::new(Arc::new(hints));
        let mut series: Vec<SeriesInfo> = Vec::new();
        let mut series_index: HashMap<LabelSet, u32> = HashMap::new();
        let mut samples: Vec<(i64, u32, f64)> = Vec::new();
        let mut last_plain: Option<(Arc<Labels>, u32)> = None;
        let mut read = 0u64;
        let mut failure: Option<EngineError> = None;
        context.source.select(&query, &mut |entry| {
            read += 1;
            if read.is_multiple_of(DEADLINE_CHECK_EVERY)
                && let Err(err) = context.deadline.check()
            {
                failure = Some(err);
                return ControlFlow::Break(());
            }
            if entry.timestamp_ns < query.start_ns || entry.timestamp_ns >= query.end_ns {
                return ControlFlow::Continue(());
            }
            let timestamp_ns = entry.timestamp_ns;
            labels.reset(entry.stream, &entry.metadata);
            let Some(line) = pipeline.process(timestamp_ns, entry.line, &mut labels) else {
                return ControlFlow::Continue(());
            };
            let value = match &range.unwrap {
                None => match aggregation.op {
                    RangeOp::BytesOverTime | RangeOp::BytesRate => line.len() as f64,
                    _ => 1.0,
                },
                Some(unwrap) => {
                    let Some(text) = labels.get(&unwrap.label).filter(|text| !text.is_empty()) else {
                        return ControlFlow::Continue(());
                    };
                    let converted = match unwrap.conversion {
                        None => parse_go_float(text),
                        Some(UnwrapConversion::Duration | UnwrapConversion::DurationSeconds) => {
                            parse_go_duration(text).map(|nanos| nanos as f64 / 1e9)
                        }
                        Some(UnwrapConversion::Bytes) => parse_bytes(text).map(|bytes| bytes as f64),
                    };
                    let value = match converted {
                        Ok(value) => value,
                        Err(details) => {
                            labels.set_error(ERR_SAMPLE_EXTRACTION);
                            labels.set_error_details(&details);
                            0.0
                        }
                    };
                    let mut passes = true;
                    for filter in &unwrap.post_filters {
                        passes &= label_filter_passes(filter, &mut labels);
                    }
                    if !passes {
                        return ControlFlow::Continue(());
                    }
                    value
                }
            };
            // Lines of one stream that no stage relabelled share a series: skip building and
            // hashing its label set again.
            let plain = !labels.has_error() && (sample_grouping.no_labels || labels.is_unchanged());
            if plain
                && let Some((base, id)) = &last_plain
                && (sample_grouping.no_labels
                    || Arc::ptr_eq(base, labels.base_labels())
                    || **base == **labels.base_labels())
            {
                samples.push((timestamp_ns, *id, value));
                return ControlFlow::Continue(());
            }
            let sample_labels = labels.grouped_labels(&sample_grouping);
            let id = match series_index.get(&sample_labels) {
                Some(id) => *id,
                None => {
                    let Ok(id) = u32::try_from(series.len()) else {
                        failure = Some(EngineError::LimitExceeded(
                            "too many series in one range".to_owned(),
                        ));
                        return ControlFlow::Break(());
                    };
                    let error = label_value(&sample_labels, ERROR_LABEL)
                        .filter(|_| label_value(&sample_labels, PRESERVE_ERROR_LABEL) != Some("true"))
                        .map(str::to_owned);
                    series.push(SeriesInfo {
                        labels: Arc::clone(&sample_labels),
                        error,
                    });
                    series_index.insert(sample_labels, id);
                    id
                }
            };
            if plain {
                last_plain = Some((Arc::clone(labels.base_labels()), id));
            }
            samples.push((timestamp_ns, id, value));
            ControlFlow::Continue(())
        })?;
        if let Some(err) = failure {
            return Err(err);
        }
        context.deadline.check()?;
        if !samples.is_sorted_by_key(|sample| sample.0) {
            samples.sort_by_key(|sample| sample.0);
        }
        let absent_labels = (aggregation.op == RangeOp::AbsentOverTime).then(|| absent_labels(log));
        Ok(RangeNode {
            op: aggregation.op,
            quantile: aggregation.quantile.unwrap_or(0.0),
            range_ns,
            offset_ns,
            buckets: (0..series.len()).map(|_| Vec::new()).collect(),
            series,
            samples,
            window_start: 0,
            window_end: 0,
            absent_labels,
        })
    }

    fn eval(&mut self, t_ns: i64) -> Result<Vec<Sample>, EngineError> {
        let end = t_ns.saturating_sub(self.offset_ns);
        let start = end.saturating_sub(self.range_ns);
        while self
            .samples
            .get(self.window_end)
            .is_some_and(|sample| sample.0 <= end)
        {
            self.window_end += 1;
        }
        while self.window_start < self.window_end
            && self
                .samples
                .get(self.window_start)
                .is_some_and(|sample| sample.0 <= start)
        {
            self.window_start += 1;
        }
        let mut touched: Vec<u32> = Vec::new();
        for &(timestamp, id, value) in self
            .samples
            .get(self.window_start..self.window_end)
            .unwrap_or_default()
        {
            let Some(bucket) = self.buckets.get_mut(id as usize) else {
                continue;
            };
            if bucket.is_empty() {
                touched.push(id);
            }
            bucket.push((timestamp, value));
        }
        touched.sort_unstable();
        let mut out = Vec::with_capacity(touched.len());
        let mut failure = None;
        for id in &touched {
            let (Some(info), Some(bucket)) = (self.series.get(*id as usize), self.buckets.get(*id as usize))
            else {
                continue;
            };
            if let Some(error) = &info.error {
                failure.get_or_insert_with(|| pipeline_error(error, &info.labels));
                continue;
            }
            out.push(Sample {
                labels: Arc::clone(&info.labels),
                value: range_value(self.op, self.quantile, bucket, self.range_ns, end),
            });
        }
        for id in touched {
            if let Some(bucket) = self.buckets.get_mut(id as usize) {
                bucket.clear();
            }
        }
        if let Some(err) = failure {
            return Err(err);
        }
        if let Some(labels) = &self.absent_labels {
            if out.is_empty() {
                return Ok(vec![Sample {
                    labels: Arc::clone(labels),
                    value: 1.0,
                }]);
            }
            return Ok(Vec::new());
        }
        Ok(out)
    }
}

/// Loki's `PipelineError`.
fn pipeline_error(error: &str, labels: &LabelSet) -> EngineError {
    let series = labels_string(labels.iter().map(|(name, value)| (name.as_str(), value.as_str())));
    EngineError::BadQuery(format!(
        "pipeline error: '{error}' for series: '{series}'.\nUse a label filter to intentionally skip this error. (e.g | __error__!=\"{error}\").\nTo skip all potential errors you can match empty errors.(e.g __error__=\"\")\nThe label filter can also be specified after unwrap. (e.g | unwrap latency | __error__=\"\" )\n"
    ))
}

/// The labels of `absent_over_time`'s sample: the selector's equality matchers, minus any
/// name matched more than once or by another operator (Loki's `absentLabels`).
fn absent_labels(log: &obs_logql::LogExpr) -> LabelSet {
    let mut labels: Vec<(String, String)> = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    for matcher in log.matchers() {
        if matcher.name() == obs_core::series::METRIC_NAME_LABEL {
            continue;
        }
        if matcher.op() == MatchOp::Equal && !labels.iter().any(|(name, _)| name == matcher.name()) {
            if !matcher.value().is_empty() {
                labels.push((matcher.name().to_owned(), matcher.value().to_owned()));
            }
        } else {
            dropped.push(matcher.name());
        }
    }
    labels.retain(|(name, _)| !dropped.contains(&name.as_str()));
    label_set(labels)
}

/// The value of a range aggregation over one series' samples in a window (`range_vector.go`).
fn range_value(op: RangeOp, quantile: f64, samples: &[(i64, f64)], range_ns: i64, window_end_ns: i64) -> f64 {
    let range_seconds = range_ns as f64 / 1e9;
    let values = samples.iter().map(|(_, value)| *value);
    let sum = || values.clone().sum::<f64>();
    match op {
        RangeOp::CountOverTime => samples.len() as f64,
        RangeOp::Rate | RangeOp::BytesRate => sum() / range_seconds,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => sum(),
        RangeOp::RateCounter => extrapolated_rate(samples, range_ns, window_end_ns),
        RangeOp::AvgOverTime => {
            let mut mean: f64 = 0.0;
            let mut count: f64 = 0.0;
            for value in values {
                count += 1.0;
                if mean.is_infinite()
                    && ((value.is_infinite() && (mean > 0.0) == (value > 0.0))
                        || (!value.is_infinite() && !value.is_nan()))
                {
                    continue;
                }
                mean += value / count - mean / count;
            }
            mean
        }
        RangeOp::MaxOverTime => values.fold(
            f64::NAN,
            |max, value| if value > max || max.is_nan() { value } else { max },
        ),
        RangeOp::MinOverTime => values.fold(
            f64::NAN,
            |min, value| if value < min || min.is_nan() { value } else { min },
        ),
        RangeOp::StdvarOverTime | RangeOp::StddevOverTime => {
            let (mut aux, mut count, mut mean): (f64, f64, f64) = (0.0, 0.0, 0.0);
            for value in values {
                count += 1.0;
                let delta = value - mean;
                mean += delta / count;
                aux += delta * (value - mean);
            }
            if op == RangeOp::StddevOverTime {
                (aux / count).sqrt()
            } else {
                aux / count
            }
        }
        RangeOp::QuantileOverTime => quantile_of(quantile, values.collect()),
        RangeOp::FirstOverTime => samples.first().map_or(f64::NAN, |sample| sample.1),
        RangeOp::LastOverTime => samples.last().map_or(f64::NAN, |sample| sample.1),
        RangeOp::AbsentOverTime => 1.0,
    }
}

/// Loki's `Quantile`: linear interpolation between the closest ranks.
fn quantile_of(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    let at = |index: f64| values.get(index as usize).copied().unwrap_or(f64::NAN);
    at(lower) * (1.0 - weight) + at(upper) * weight
}

/// Loki's `extrapolatedRate` for `rate_counter`: Prometheus' counter rate with resets, the
/// window bounds taken from the query (`(end - range, end]`), nanosecond timestamps.
fn extrapolated_rate(samples: &[(i64, f64)], range_ns: i64, window_end_ns: i64) -> f64 {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return 0.0;
    };
    if samples.len() < 2 {
        return 0.0;
    }
    let range_start_ns = window_end_ns - range_ns;
    let mut result = last.1 - first.1;
    let mut previous = 0.0;
    for (_, value) in samples {
        if *value < previous {
            result += previous;
        }
        previous = *value;
    }
    let mut duration_to_start = (first.0 - range_start_ns) as f64 / 1e9;
    let mut duration_to_end = (window_end_ns - last.0) as f64 / 1e9;
    let sampled_interval = (last.0 - first.0) as f64 / 1e9;
    let average_between = sampled_interval / (samples.len() - 1) as f64;
    let threshold = average_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average_between / 2.0;
    }
    let mut duration_to_zero = duration_to_start;
    if result > 0.0 && first.1 >= 0.0 {
        duration_to_zero = sampled_interval * (first.1 / result);
    }
    if duration_to_zero < duration_to_start {
        duration_to_start = duration_to_zero;
    }
    if duration_to_end >= threshold {
        duration_to_end = average_between / 2.0;
    }
    let extrapolated = sampled_interval + duration_to_start + duration_to_end;
    result *= extrapolated / sampled_interval;
    result / (range_ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(values: &[(i64, f64)]) -> Vec<(i64, f64)> {
        values.to_vec()
    }

    #[test]
    fn range_functions_match_loki() {
        let window = samples(&[(1_000_000_000, 1.0), (2_000_000_000, 4.0), (3_000_000_000, 2.0)]);
        let range = 10_000_000_000;
        let value = |op| range_value(op, 0.5, &window, range, 3_000_000_000);
        assert_eq!(value(RangeOp::CountOverTime), 3.0);
        assert_eq!(value(RangeOp::Rate), 0.7);
        assert_eq!(value(RangeOp::SumOverTime), 7.0);
        assert!((value(RangeOp::AvgOverTime) - 7.0 / 3.0).abs() < 1e-12);
        assert_eq!(value(RangeOp::MaxOverTime), 4.0);
        assert_eq!(value(RangeOp::MinOverTime), 1.0);
        assert_eq!(value(RangeOp::FirstOverTime), 1.0);
        assert_eq!(value(RangeOp::LastOverTime), 2.0);
        assert_eq!(value(RangeOp::QuantileOverTime), 2.0);
        assert!((value(RangeOp::StdvarOverTime) - 14.0 / 9.0).abs() < 1e-12);
        assert!((value(RangeOp::StddevOverTime) - (14.0f64 / 9.0).sqrt()).abs() < 1e-12);
        assert_eq!(quantile_of(0.9, vec![1.0, 2.0, 3.0, 4.0, 5.0]), 4.6);
        assert_eq!(quantile_of(-1.0, vec![1.0]), f64::NEG_INFINITY);
        assert!(quantile_of(0.5, vec![]).is_nan());
    }

    #[test]
    fn counter_rate_extrapolates_and_handles_resets() {
        // A counter growing 1 per second, sampled every 10s over a 60s window.
        let window: Vec<(i64, f64)> = (1..=6).map(|i| (i * 10_000_000_000, (i * 10) as f64)).collect();
        let rate = extrapolated_rate(&window, 60_000_000_000, 60_000_000_000);
        assert!((rate - 1.0).abs() < 1e-9, "{rate}");
        let reset = [
            (10_000_000_000, 5.0),
            (20_000_000_000, 10.0),
            (30_000_000_000, 2.0),
        ];
        let with_reset = extrapolated_rate(&reset, 30_000_000_000, 30_000_000_000);
        assert!(with_reset > 0.0);
        assert_eq!(
            extrapolated_rate(&reset[..1], 30_000_000_000, 30_000_000_000),
            0.0
        );
    }

    fn sample(pairs: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            labels: label_set(pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))),
            value,
        }
    }

    #[test]
    fn vector_aggregations_group_and_rank() {
        let input = || {
            vec![
                sample(&[("app", "a"), ("pod", "1")], 3.0),
                sample(&[("app", "a"), ("pod", "2")], 5.0),
                sample(&[("app", "b"), ("pod", "3")], 1.0),
                sample(&[("app", "b"), ("pod", "4")], f64::NAN),
            ]
        };
        let by_app = Grouping {
            without: false,
            labels: vec!["app".to_owned()],
        };
        let sums = aggregate(VectorOp::Sum, None, &by_app, input()[..3].to_vec());
        assert_eq!(sums.iter().map(|s| s.value).collect::<Vec<_>>(), [8.0, 1.0]);
        let count = aggregate(VectorOp::Count, None, &Grouping::default(), input());
        assert_eq!(count[0].value, 4.0);
        let top = aggregate(VectorOp::Topk, Some(1), &by_app, input());
        assert_eq!(top.iter().map(|s| s.value).collect::<Vec<_>>(), [5.0, 1.0]);
        let bottom = aggregate(VectorOp::Bottomk, Some(3), &Grouping::default(), input());
        assert_eq!(
            bottom.iter().map(|s| s.value).collect::<Vec<_>>(),
            [1.0, 3.0, 5.0]
        );
        let sorted = aggregate(VectorOp::SortDesc, None, &Grouping::default(), input());
        assert_eq!(
            sorted.iter().take(3).map(|s| s.value).collect::<Vec<_>>(),
            [5.0, 3.0, 1.0]
        );
        assert!(sorted[3].value.is_nan());
        let without_pod = Grouping {
            without: true,
            labels: vec!["pod".to_owned()],
        };
        let max = aggregate(VectorOp::Max, None, &without_pod, input());
        assert_eq!(max.iter().map(|s| s.value).collect::<Vec<_>>(), [5.0, 1.0]);
        let stddev = aggregate(
            VectorOp::Stddev,
            None,
            &Grouping::default(),
            input()[..2].to_vec(),
        );
        assert_eq!(stddev[0].value, 1.0);
        assert!(aggregate(VectorOp::Topk, Some(0), &Grouping::default(), input()).is_empty());
    }

    #[test]
    fn binary_merges_follow_loki() {
        assert_eq!(merge(BinaryOp::Div, 1.0, 0.0, true).map(f64::is_nan), Some(true));
        assert_eq!(merge(BinaryOp::Mod, 7.0, 3.0, true), Some(1.0));
        assert_eq!(merge(BinaryOp::Greater, 1.0, 2.0, true), None);
        assert_eq!(merge(BinaryOp::Greater, 1.0, 2.0, false), Some(0.0));
        assert_eq!(merge(BinaryOp::Pow, 2.0, 10.0, true), Some(1024.0));
    }

    #[test]
    fn steps_are_formatted_with_thousands() {
        assert_eq!(thousands(11_000), "11,000");
        assert_eq!(thousands(500), "500");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
