//! The evaluator: an interpreter of promql-parser's AST at one evaluation time, run once per
//! step of a range query.
//!
//! Selectors read from a per-query cache filled once per selector node for the whole time span
//! the query needs (a pre-pass computes that span through offsets, `@` and subqueries).
//! Subquery results are memoized per (node, time).
//!
//! What does not change from step to step is done once per query, and nothing changes an
//! answer:
//!
//! - each fetched series keeps a cursor into its samples that moves with the steps: windows
//!   are borrowed slices, found by galloping from where the previous step's bounds would
//!   move to (a step back in time, as subqueries take, costs a search from there);
//! - range selectors' series lose their stale markers once, at fetch time;
//! - label sets are [`SharedLabels`]: hashed once, `__name__` dropped once; aggregation
//!   groups, match signatures and result labels are memoized per node, and an aggregation
//!   whose inputs are the previous step's label sets reuses that step's grouping;
//! - at the steps of a range query, a function of a matrix selector alone (`rate(x[5m])`) is
//!   computed for blocks of steps, series by series ([`Evaluator::blocked_range_function`]).

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use obs_core::series::{Labels, METRIC_NAME_LABEL, MatchOp, Matcher, SeriesSamples};
use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorSelector,
};

use crate::functions::{self, GroupingMemo, RangeFunction, RangeParams, WindowBounds};
use crate::labelset::{FastMap, FastSet, LabelMemo, PairMemo, SharedLabels};
use crate::{Engine, QueryControl, QueryError, Sample, Series, Value};

/// The NaN Prometheus writes as a stale marker.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub(crate) fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One sample of an instant vector during evaluation.
#[derive(Debug, Clone)]
pub(crate) struct EvalSample {
    pub(crate) labels: SharedLabels,
    /// Milliseconds.
    pub(crate) t: i64,
    pub(crate) v: f64,
}

/// One series of a range vector during evaluation.
#[derive(Debug, Clone)]
pub(crate) struct EvalSeries {
    pub(crate) labels: SharedLabels,
    /// `(milliseconds, value)`, sorted by time.
    pub(crate) points: Vec<(i64, f64)>,
}

/// Whether any sample is a stale marker (a branch-free scan of blocks, which the compiler
/// vectorizes: fetched series are long and rarely hold one).
fn has_stale_marker(samples: &[(i64, f64)]) -> bool {
    samples
        .chunks(64)
        .any(|block| block.iter().fold(false, |found, (_, v)| found | is_stale(*v)))
}

/// A value during evaluation at one time.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<EvalSample>),
    Matrix(Vec<EvalSeries>),
}

impl Val {
    fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Str(_) => "string",
            Val::Vector(_) => "vector",
            Val::Matrix(_) => "matrix",
        }
    }
}

/// One series of a selector node, fetched once per query.
pub(crate) struct FetchedSeries {
    labels: SharedLabels,
    /// Sorted by time; without stale markers when the node is a range selector's (range
    /// selectors never see them, instant selectors need them).
    samples: Vec<(i64, f64)>,
    /// Where the previous step's window started and ended.
    cursor: Cell<Cursor>,
}

/// A window's bounds (`lo..hi`) at the previous step, and how far each moved then: steps of a
/// range query move them by about as much every time, so the next bounds are looked for
/// there first (touching one cache line of samples rather than a search's worth).
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    lo: usize,
    hi: usize,
    lo_moved: isize,
    hi_moved: isize,
}

impl Cursor {
    fn predicted(position: usize, moved: isize) -> usize {
        position.saturating_add_signed(moved)
    }
}

impl FetchedSeries {
    /// The samples in `[from, to]`.
    fn window(&self, from: i64, to: i64) -> &[(i64, f64)] {
        let cursor = self.cursor.get();
        let hi = seek(
            &self.samples,
            Cursor::predicted(cursor.hi, cursor.hi_moved),
            |ts| ts <= to,
        );
        let lo = seek(
            &self.samples,
            Cursor::predicted(cursor.lo, cursor.lo_moved),
            |ts| ts < from,
        );
        self.cursor.set(Cursor {
            lo,
            hi,
            lo_moved: lo as isize - cursor.lo as isize,
            hi_moved: hi as isize - cursor.hi as isize,
        });
        debug_assert!(lo <= hi, "window [{from}, {to}] is not a time range");
        &self.samples[lo.min(hi)..hi]
    }

    /// The newest sample at or before `to`.
    fn newest_at(&self, to: i64) -> Option<(i64, f64)> {
        let cursor = self.cursor.get();
        let end = seek(
            &self.samples,
            Cursor::predicted(cursor.hi, cursor.hi_moved),
            |ts| ts <= to,
        );
        self.cursor.set(Cursor {
            hi: end,
            hi_moved: end as isize - cursor.hi as isize,
            ..cursor
        });
        end.checked_sub(1).map(|index| self.samples[index])
    }
}

/// `samples.partition_point(|s| before(s.0))`, looked for from `hint` outwards: galloping
/// (strides 1, 2, 4, …) then a binary search inside the last stride, so the cost grows with
/// the log of the distance from the hint, not of the series' length.
fn seek(samples: &[(i64, f64)], hint: usize, before: impl Fn(i64) -> bool) -> usize {
    let len = samples.len();
    let hint = hint.min(len);
    if hint < len && before(samples[hint].0) {
        // The answer is after `hint`: `before` holds at `hint + stride / 2`.
        let mut stride = 1;
        while hint + stride < len && before(samples[hint + stride].0) {
            stride *= 2;
        }
        let first = hint + stride / 2 + 1;
        let last = (hint + stride).min(len);
        return first + samples[first..last].partition_point(|sample| before(sample.0));
    }
    if hint == 0 || before(samples[hint - 1].0) {
        return hint;
    }
    // The answer is before `hint`: `before` fails at `hint - 1 - stride / 2`.
    let mut stride = 1;
    while stride < hint && !before(samples[hint - 1 - stride].0) {
        stride *= 2;
    }
    let first = hint.saturating_sub(stride);
    let last = hint - 1 - stride / 2;
    first + samples[first..last].partition_point(|sample| before(sample.0))
}

/// Fetched series of one selector node.
pub(crate) struct FetchedSelector {
    series: Vec<FetchedSeries>,
    /// Whether the series stay distinct without `__name__`, once asked for.
    unique_without_name: OnceCell<bool>,
}

impl FetchedSelector {
    /// Whether dropping `__name__` keeps every series distinct (then a function's output over
    /// any of them needs no duplicate check).
    fn unique_without_name(&self) -> bool {
        *self.unique_without_name.get_or_init(|| {
            let mut seen = FastSet::default();
            self.series
                .iter()
                .all(|one| seen.insert(one.labels.without_metric_name()))
        })
    }
}

type Fetched = Rc<FetchedSelector>;

/// The series of a subquery at one reference time.
type SubqueryResult = Rc<Vec<EvalSeries>>;

pub(crate) struct Evaluator<'a> {
    engine: &'a Engine,
    start: i64,
    end: i64,
    step: i64,
    lookback: i64,
    deadline: Instant,
    control: &'a QueryControl,
    /// Time span each selector node needs, by node address.
    spans: HashMap<usize, (i64, i64)>,
    fetched: RefCell<FastMap<usize, Fetched>>,
    subqueries: RefCell<FastMap<(usize, i64), SubqueryResult>>,
    loaded_samples: Cell<usize>,
    /// Grouping per aggregation node.
    groupings: RefCell<FastMap<usize, GroupingMemo>>,
    /// Match signatures per binary node.
    signatures: RefCell<FastMap<usize, LabelMemo>>,
    /// Result labels of vector matching per binary node, by (many side, one side).
    pair_memos: RefCell<FastMap<usize, PairMemo>>,
    /// Whether the expression is being evaluated at a step of the range query itself (not at
    /// an instant query's time, nor at a subquery's inner steps).
    at_range_step: Cell<bool>,
    /// Per call node: the block of steps [`Evaluator::blocked_range_function`] computed last.
    range_blocks: RefCell<FastMap<usize, RangeBlock>>,
}

fn node_id<T>(node: &T) -> usize {
    node as *const T as usize
}

fn duration_ms(duration: &std::time::Duration) -> i64 {
    duration.as_millis() as i64
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(duration)) => duration_ms(duration),
        Some(Offset::Neg(duration)) => -duration_ms(duration),
        None => 0,
    }
}

fn system_time_ms(time: &SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(duration) => duration.as_millis() as i64,
        Err(err) => -(err.duration().as_millis() as i64),
    }
}

impl<'a> Evaluator<'a> {
    pub(crate) fn new(
        engine: &'a Engine,
        control: &'a QueryControl,
        start: i64,
        end: i64,
        step: i64,
    ) -> Evaluator<'a> {
        let timeout = control.timeout.map_or(engine.options.timeout, |timeout| {
            timeout.min(engine.options.timeout)
        });
        Evaluator {
            engine,
            start,
            end,
            step,
            lookback: control
                .lookback_delta_ms
                .unwrap_or(engine.options.lookback_delta_ms),
            deadline: Instant::now() + timeout,
            control,
            spans: HashMap::new(),
            fetched: RefCell::new(FastMap::default()),
            subqueries: RefCell::new(FastMap::default()),
            loaded_samples: Cell::new(0),
            groupings: RefCell::new(FastMap::default()),
            signatures: RefCell::new(FastMap::default()),
            pair_memos: RefCell::new(FastMap::default()),
            at_range_step: Cell::new(false),
            range_blocks: RefCell::new(FastMap::default()),
        }
    }

    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.start),
            Some(AtModifier::End) => Some(self.end),
            Some(AtModifier::At(time)) => Some(system_time_ms(time)),
        }
    }

    /// Records, for every selector, the span of data it needs when `expr` is evaluated at
    /// times in `[tmin, tmax]`.
    fn plan(&mut self, expr: &Expr, tmin: i64, tmax: i64) {
        match expr {
            Expr::VectorSelector(selector) => {
                let (lo, hi) = self.reference_span(&selector.at, &selector.offset, tmin, tmax);
                self.widen(node_id(selector), lo - self.lookback, hi);
            }
            Expr::MatrixSelector(matrix) => {
                let selector = &matrix.vs;
                let (lo, hi) = self.reference_span(&selector.at, &selector.offset, tmin, tmax);
                self.widen(node_id(selector), lo - duration_ms(&matrix.range), hi);
            }
            Expr::Subquery(subquery) => {
                let (lo, hi) = self.reference_span(&subquery.at, &subquery.offset, tmin, tmax);
                let inner_min = lo - duration_ms(&subquery.range);
                self.plan(&subquery.expr, inner_min, hi);
            }
            Expr::Aggregate(aggregate) => {
                self.plan(&aggregate.expr, tmin, tmax);
                if let Some(param) = &aggregate.param {
                    self.plan(param, tmin, tmax);
                }
            }
            Expr::Unary(unary) => self.plan(&unary.expr, tmin, tmax),
            Expr::Binary(binary) => {
                self.plan(&binary.lhs, tmin, tmax);
                self.plan(&binary.rhs, tmin, tmax);
            }
            Expr::Paren(paren) => self.plan(&paren.expr, tmin, tmax),
            Expr::Call(call) => {
                for arg in &call.args.args {
                    self.plan(arg, tmin, tmax);
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }

    fn reference_span(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        tmin: i64,
        tmax: i64,
    ) -> (i64, i64) {
        let offset = offset_ms(offset);
        match self.at_ms(at) {
            Some(at) => (at - offset, at - offset),
            None => (tmin - offset, tmax - offset),
        }
    }

    fn widen(&mut self, id: usize, lo: i64, hi: i64) {
        let span = self.spans.entry(id).or_insert((lo, hi));
        span.0 = span.0.min(lo);
        span.1 = span.1.max(hi);
    }

    fn check_deadline(&self) -> Result<(), QueryError> {
        if let Some(canceled) = &self.control.canceled
            && canceled.load(Ordering::Relaxed)
        {
            return Err(QueryError::Canceled("query evaluation"));
        }
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout("query evaluation"));
        }
        Ok(())
    }

    pub(crate) fn run_instant(mut self, expr: &Expr) -> Result<Value, QueryError> {
        self.plan(expr, self.start, self.start);
        let t = self.start;
        Ok(match self.eval(expr, t)? {
            Val::Scalar(v) => Value::Scalar { t, v },
            Val::Str(v) => Value::String { t, v },
            Val::Vector(samples) => Value::Vector(
                samples
                    .into_iter()
                    .map(|sample| Sample {
                        labels: sample.labels.into_labels(),
                        t: sample.t,
                        v: sample.v,
                    })
                    .collect(),
            ),
            Val::Matrix(series) => Value::Matrix(series.into_iter().map(public_series).collect()),
        })
    }

    pub(crate) fn run_range(mut self, expr: &Expr) -> Result<Value, QueryError> {
        match functions::static_type(expr) {
            functions::StaticType::Scalar | functions::StaticType::Vector => {}
            other => {
                return Err(QueryError::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    other.prometheus_name()
                )));
            }
        }
        self.plan(expr, self.start, self.end);
        self.at_range_step.set(true);
        let mut gathered = Gathered::default();
        let mut t = self.start;
        let mut points = 0usize;
        while t <= self.end {
            self.check_deadline()?;
            match self.eval(expr, t)? {
                Val::Scalar(v) => {
                    gathered.push(&SharedLabels::empty(), t, v);
                    points += 1;
                }
                Val::Vector(samples) => {
                    for sample in &samples {
                        gathered.push(&sample.labels, t, sample.v);
                    }
                    points += samples.len();
                }
                other => {
                    return Err(QueryError::BadData(format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        other.type_name()
                    )));
                }
            }
            if points > self.engine.options.max_samples {
                return Err(QueryError::TooManySamples);
            }
            t += self.step;
        }
        let mut result = gathered.series;
        result.sort_by(|a, b| a.labels.labels().cmp(b.labels.labels()));
        Ok(Value::Matrix(result.into_iter().map(public_series).collect()))
    }

    /// The series of a selector node, fetched once. A range selector's (`for_range`) lose
    /// their stale markers.
    fn series_of(&self, selector: &VectorSelector, for_range: bool) -> Result<Fetched, QueryError> {
        let id = node_id(selector);
        if let Some(found) = self.fetched.borrow().get(&id) {
            return Ok(Rc::clone(found));
        }
        self.check_deadline()?;
        let (mint, maxt) = self.spans.get(&id).copied().unwrap_or((self.start, self.end));
        let matchers = convert_matchers(selector)?;
        let series = self.engine.querier.select(&matchers, mint, maxt)?;
        let samples: usize = series.iter().map(|one| one.samples.len()).sum();
        let loaded = self.loaded_samples.get() + samples;
        if loaded > self.engine.options.max_samples {
            return Err(QueryError::TooManySamples);
        }
        self.loaded_samples.set(loaded);
        let fetched = Rc::new(FetchedSelector {
            series: series
                .into_iter()
                .map(|SeriesSamples { labels, mut samples }| {
                    if for_range && has_stale_marker(&samples) {
                        samples.retain(|(_, v)| !is_stale(*v));
                    }
                    FetchedSeries {
                        labels: SharedLabels::new(labels),
                        samples,
                        cursor: Cell::new(Cursor::default()),
                    }
                })
                .collect(),
            unique_without_name: OnceCell::new(),
        });
        self.fetched.borrow_mut().insert(id, Rc::clone(&fetched));
        Ok(fetched)
    }

    pub(crate) fn eval(&self, expr: &Expr, t: i64) -> Result<Val, QueryError> {
        match expr {
            Expr::NumberLiteral(number) => Ok(Val::Scalar(number.val)),
            Expr::StringLiteral(string) => Ok(Val::Str(string.val.clone())),
            Expr::Paren(paren) => self.eval(&paren.expr, t),
            Expr::Unary(unary) => match self.eval(&unary.expr, t)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(samples) => {
                    let negated: Vec<EvalSample> = samples
                        .into_iter()
                        .map(|sample| EvalSample {
                            labels: sample.labels.without_metric_name(),
                            t: sample.t,
                            v: -sample.v,
                        })
                        .collect();
                    functions::check_unique(&negated)?;
                    Ok(Val::Vector(negated))
                }
                other => Err(QueryError::Execution(format!(
                    "unary expression only allowed on expressions of type scalar or vector, got: {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(selector) => Ok(Val::Vector(self.instant_selector(selector, t, false)?)),
            Expr::MatrixSelector(matrix) => Ok(Val::Matrix(self.range_selector(matrix, t)?)),
            Expr::Subquery(subquery) => Ok(Val::Matrix(self.subquery(subquery, t)?.as_ref().clone())),
            Expr::Aggregate(aggregate) => self.aggregate(aggregate, t),
            Expr::Binary(binary) => self.binary(binary, t),
            Expr::Call(call) => functions::call(self, call, t),
            Expr::Extension(_) => Err(QueryError::Execution("unsupported expression".to_owned())),
        }
    }

    /// The reference time of a selector evaluated at `t`.
    fn reference_time(&self, at: &Option<AtModifier>, offset: &Option<Offset>, t: i64) -> i64 {
        self.at_ms(at).unwrap_or(t) - offset_ms(offset)
    }

    /// An instant selector at `t`: the newest sample per series in `[t' - lookback, t']`,
    /// stale markers dropping the series. Samples carry the evaluation time, or with
    /// `sample_times` their own (for `timestamp()`).
    pub(crate) fn instant_selector(
        &self,
        selector: &VectorSelector,
        t: i64,
        sample_times: bool,
    ) -> Result<Vec<EvalSample>, QueryError> {
        let fetched = self.series_of(selector, false)?;
        let reference = self.reference_time(&selector.at, &selector.offset, t);
        let mut out = Vec::with_capacity(fetched.series.len());
        for one in &fetched.series {
            let Some((ts, v)) = one.newest_at(reference) else {
                continue;
            };
            if ts < reference - self.lookback || is_stale(v) {
                continue;
            }
            out.push(EvalSample {
                labels: one.labels.clone(),
                t: if sample_times { ts } else { t },
                v,
            });
        }
        Ok(out)
    }

    /// A range selector at `t`, as a value: the samples in `[t' - range, t']` without stale
    /// markers. Functions read the windows in place through [`Evaluator::range_arg`].
    fn range_selector(&self, matrix: &MatrixSelector, t: i64) -> Result<Vec<EvalSeries>, QueryError> {
        let selector = &matrix.vs;
        let fetched = self.series_of(selector, true)?;
        let reference = self.reference_time(&selector.at, &selector.offset, t);
        let from = reference - duration_ms(&matrix.range);
        let mut out = Vec::new();
        for one in &fetched.series {
            let points = one.window(from, reference);
            if points.is_empty() {
                continue;
            }
            out.push(EvalSeries {
                labels: one.labels.clone(),
                points: points.to_vec(),
            });
        }
        Ok(out)
    }

    /// A subquery at `t`: the inner expression at the multiples of the step in
    /// `[t' - range, t']`, gathered per series.
    pub(crate) fn subquery(&self, subquery: &SubqueryExpr, t: i64) -> Result<SubqueryResult, QueryError> {
        let reference = self.reference_time(&subquery.at, &subquery.offset, t);
        let key = (node_id(subquery), reference);
        if let Some(found) = self.subqueries.borrow().get(&key) {
            return Ok(Rc::clone(found));
        }
        let step = subquery
            .step
            .as_ref()
            .map(duration_ms)
            .filter(|step| *step > 0)
            .unwrap_or(self.engine.options.default_subquery_step_ms);
        // The inner steps are not the range query's steps.
        let outer_at_range_step = self.at_range_step.replace(false);
        let gathered = self.subquery_steps(subquery, step, reference);
        self.at_range_step.set(outer_at_range_step);
        let (gathered, points) = gathered?;
        self.loaded_samples.set(self.loaded_samples.get() + points);
        let result = Rc::new(gathered.series);
        self.subqueries.borrow_mut().insert(key, Rc::clone(&result));
        Ok(result)
    }

    /// A subquery's inner expression at the multiples of `step` in `[reference - range,
    /// reference]`, gathered per series, and the number of points.
    fn subquery_steps(
        &self,
        subquery: &SubqueryExpr,
        step: i64,
        reference: i64,
    ) -> Result<(Gathered, usize), QueryError> {
        let from = reference - duration_ms(&subquery.range);
        let mut inner_t = from.div_euclid(step) * step;
        if inner_t < from {
            inner_t += step;
        }
        let mut gathered = Gathered::default();
        let mut points = 0usize;
        while inner_t <= reference {
            self.check_deadline()?;
            match self.eval(&subquery.expr, inner_t)? {
                Val::Scalar(v) => {
                    gathered.push(&SharedLabels::empty(), inner_t, v);
                    points += 1;
                }
                Val::Vector(samples) => {
                    for sample in &samples {
                        gathered.push(&sample.labels, inner_t, sample.v);
                    }
                    points += samples.len();
                }
                other => {
                    return Err(QueryError::Execution(format!(
                        "subquery is only allowed on instant vector or scalar, got {}",
                        other.type_name()
                    )));
                }
            }
            // Memoized subquery points stay in memory for the whole query: they count against
            // the same limit as the samples loaded from storage.
            if self.loaded_samples.get() + points > self.engine.options.max_samples {
                return Err(QueryError::TooManySamples);
            }
            inner_t += step;
        }
        Ok((gathered, points))
    }

    /// A function argument that must be a range vector: a matrix selector or a subquery, with
    /// its reference end and range (for extrapolation).
    pub(crate) fn range_arg(&self, expr: &Expr, t: i64) -> Result<RangeArg, QueryError> {
        match unwrap_parens(expr) {
            Expr::MatrixSelector(matrix) => {
                let selector = &matrix.vs;
                let end = self.reference_time(&selector.at, &selector.offset, t);
                let range_ms = duration_ms(&matrix.range);
                Ok(RangeArg {
                    source: RangeSource::Selector(self.series_of(selector, true)?),
                    range_end: end,
                    range_ms,
                    absent_labels: Some(absent_labels(selector)),
                })
            }
            Expr::Subquery(subquery) => {
                let end = self.reference_time(&subquery.at, &subquery.offset, t);
                let series = self.subquery(subquery, t)?;
                let range_ms = duration_ms(&subquery.range);
                // The subquery's own points are in [end - range, end] already (aligned to its
                // step); keep them all.
                Ok(RangeArg {
                    source: RangeSource::Subquery(series),
                    range_end: end,
                    range_ms,
                    absent_labels: None,
                })
            }
            other => Err(QueryError::Execution(format!(
                "expected a range vector argument, got {}",
                functions::static_type(other).prometheus_name()
            ))),
        }
    }

    pub(crate) fn eval_scalar(&self, expr: &Expr, t: i64) -> Result<f64, QueryError> {
        match self.eval(expr, t)? {
            Val::Scalar(v) => Ok(v),
            other => Err(QueryError::Execution(format!(
                "expected a scalar, got {}",
                other.type_name()
            ))),
        }
    }

    pub(crate) fn eval_vector(&self, expr: &Expr, t: i64) -> Result<Vec<EvalSample>, QueryError> {
        match self.eval(expr, t)? {
            Val::Vector(samples) => Ok(samples),
            other => Err(QueryError::Execution(format!(
                "expected an instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    pub(crate) fn eval_string(&self, expr: &Expr, t: i64) -> Result<String, QueryError> {
        match self.eval(expr, t)? {
            Val::Str(v) => Ok(v),
            other => Err(QueryError::Execution(format!(
                "expected a string, got {}",
                other.type_name()
            ))),
        }
    }

    fn aggregate(&self, aggregate: &AggregateExpr, t: i64) -> Result<Val, QueryError> {
        let op = aggregate.op.id();
        let param = match &aggregate.param {
            Some(param) if op == token::T_COUNT_VALUES => Param::Label(self.eval_string(param, t)?),
            Some(param) => Param::Number(self.eval_scalar(param, t)?),
            None => Param::None,
        };
        let samples = self.eval_vector(&aggregate.expr, t)?;
        let mut groupings = self.groupings.borrow_mut();
        let grouping = groupings.entry(node_id(aggregate)).or_default();
        functions::aggregate(op, &aggregate.modifier, param, samples, t, grouping).map(Val::Vector)
    }

    fn binary(&self, binary: &BinaryExpr, t: i64) -> Result<Val, QueryError> {
        let op = binary.op.id();
        let return_bool = binary.return_bool();
        let lhs = self.eval(&binary.lhs, t)?;
        let rhs = self.eval(&binary.rhs, t)?;
        match (lhs, rhs) {
            (Val::Scalar(a), Val::Scalar(b)) => {
                let (value, keep) = scalar_binop(op, a, b)?;
                if is_comparison(op) {
                    // The parser only lets comparisons of scalars through with `bool`.
                    Ok(Val::Scalar(if keep { 1.0 } else { 0.0 }))
                } else {
                    Ok(Val::Scalar(value))
                }
            }
            (Val::Vector(vector), Val::Scalar(scalar)) => {
                let out = vector_scalar(op, vector, scalar, false, return_bool)?;
                functions::check_unique(&out)?;
                Ok(Val::Vector(out))
            }
            (Val::Scalar(scalar), Val::Vector(vector)) => {
                let out = vector_scalar(op, vector, scalar, true, return_bool)?;
                functions::check_unique(&out)?;
                Ok(Val::Vector(out))
            }
            (Val::Vector(lhs), Val::Vector(rhs)) => {
                let modifier = binary.modifier.as_ref();
                let matching = modifier.and_then(|modifier| modifier.matching.as_ref());
                let card = modifier.map(|modifier| &modifier.card);
                let mut memos = self.signatures.borrow_mut();
                let signatures = memos.entry(node_id(binary)).or_default();
                match op {
                    token::T_LAND | token::T_LOR | token::T_LUNLESS => {
                        Ok(Val::Vector(set_operation(op, lhs, rhs, matching, signatures)))
                    }
                    _ => {
                        let mut pair_memos = self.pair_memos.borrow_mut();
                        let results = pair_memos.entry(node_id(binary)).or_default();
                        let matcher = VectorMatcher {
                            op,
                            matching,
                            card,
                            return_bool,
                        };
                        let out = matcher.apply(lhs, rhs, signatures, results)?;
                        functions::check_unique(&out)?;
                        Ok(Val::Vector(out))
                    }
                }
            }
            (lhs, rhs) => Err(QueryError::Execution(format!(
                "binary expression must contain only scalar and instant vector types, got {} and {}",
                lhs.type_name(),
                rhs.type_name()
            ))),
        }
    }
}

/// Samples of successive evaluation times gathered per label set, in order of first
/// appearance.
#[derive(Default)]
struct Gathered {
    index: FastMap<SharedLabels, usize>,
    series: Vec<EvalSeries>,
}

impl Gathered {
    fn push(&mut self, labels: &SharedLabels, t: i64, v: f64) {
        let position = match self.index.get(labels) {
            Some(&position) => position,
            None => {
                self.index.insert(labels.clone(), self.series.len());
                self.series.push(EvalSeries {
                    labels: labels.clone(),
                    points: Vec::new(),
                });
                self.series.len() - 1
            }
        };
        self.series[position].points.push((t, v));
    }
}

fn public_series(series: EvalSeries) -> Series {
    Series {
        labels: series.labels.into_labels(),
        points: series.points,
    }
}

/// How many steps of a range query [`Evaluator::blocked_range_function`] computes at once…
const BLOCK_STEPS: usize = 64;
/// …unless that would hold more values than this (16 MiB) for a selector with many series.
const BLOCK_MAX_VALUES: usize = 1 << 20;

/// A range function's values over a matrix selector's series at consecutive steps of the
/// range query.
struct RangeBlock {
    /// The first step's time.
    first_t: i64,
    steps: usize,
    /// `values[step_index * series_count + series_index]` (one step's values together);
    /// `None` where there is no output sample.
    values: Vec<Option<f64>>,
    fetched: Fetched,
}

impl Evaluator<'_> {
    /// Whether the expression is being evaluated at one of the range query's steps, which
    /// are `start`, `start + step`, … in this order.
    pub(crate) fn at_range_query_step(&self) -> bool {
        self.at_range_step.get()
    }

    /// `function(matrix)` at step `t` of the range query.
    ///
    /// Evaluating every series at one step, then every series at the next, reads one window
    /// of each series per step, and the first read of each is a cache miss. Instead, at the
    /// first step of a block, this evaluates the function for the next [`BLOCK_STEPS`] steps
    /// series by series (each series' samples read in order, once) and keeps the values; the
    /// block's later steps only pick theirs. The values are those of the same function over
    /// the same windows: only the order of the work changes.
    pub(crate) fn blocked_range_function(
        &self,
        call: &Call,
        matrix: &MatrixSelector,
        function: RangeFunction,
        t: i64,
    ) -> Result<Vec<EvalSample>, QueryError> {
        debug_assert!(!function.has_parameters(), "{function:?} takes parameters");
        let mut blocks = self.range_blocks.borrow_mut();
        let id = node_id(call);
        let block = match blocks.get(&id) {
            Some(block) if t >= block.first_t && t < block.first_t + block.steps as i64 * self.step => block,
            _ => {
                let fetched = self.series_of(&matrix.vs, true)?;
                let block = self.range_block(matrix, function, fetched, t);
                blocks.insert(id, block);
                &blocks[&id]
            }
        };
        debug_assert_eq!(
            (t - block.first_t) % self.step,
            0,
            "{t} is not a step of the block"
        );
        let step_index = ((t - block.first_t) / self.step) as usize;
        let keeps_name = function.keeps_metric_name();
        let series_count = block.fetched.series.len();
        let step_values = &block.values[step_index * series_count..(step_index + 1) * series_count];
        let mut out = Vec::with_capacity(series_count);
        for (one, value) in block.fetched.series.iter().zip(step_values) {
            if let Some(v) = *value {
                out.push(EvalSample {
                    labels: if keeps_name {
                        one.labels.clone()
                    } else {
                        one.labels.without_metric_name()
                    },
                    t,
                    v,
                });
            }
        }
        // Series of one selector that stay distinct without their names cannot collide.
        if keeps_name || !block.fetched.unique_without_name() {
            functions::check_unique(&out)?;
        }
        Ok(out)
    }

    /// The values of `function(matrix)` at the steps from `first_t` on, series by series.
    fn range_block(
        &self,
        matrix: &MatrixSelector,
        function: RangeFunction,
        fetched: Fetched,
        first_t: i64,
    ) -> RangeBlock {
        let selector = &matrix.vs;
        let range_ms = duration_ms(&matrix.range);
        let series_count = fetched.series.len();
        let steps = usize::try_from((self.end - first_t) / self.step + 1)
            .unwrap_or(1)
            .min(BLOCK_STEPS)
            .min(BLOCK_MAX_VALUES / series_count.max(1))
            .max(1);
        let params = RangeParams::default();
        let mut scratch = Vec::new();
        let mut values = vec![None; series_count * steps];
        for (series_index, one) in fetched.series.iter().enumerate() {
            for step_index in 0..steps {
                let t = first_t + step_index as i64 * self.step;
                let end = self.reference_time(&selector.at, &selector.offset, t);
                let points = one.window(end - range_ms, end);
                if !points.is_empty() {
                    let bounds = WindowBounds { end, range_ms };
                    values[step_index * series_count + series_index] =
                        functions::range_value(function, bounds, points, t, &params, &mut scratch);
                }
            }
        }
        RangeBlock {
            first_t,
            steps,
            values,
            fetched,
        }
    }
}

/// Where a range function's windows come from.
pub(crate) enum RangeSource {
    /// A matrix selector: windows are slices of the fetched series.
    Selector(Fetched),
    /// A subquery: its series, already limited to the window.
    Subquery(SubqueryResult),
}

/// A range-vector argument of a function.
pub(crate) struct RangeArg {
    pub(crate) source: RangeSource,
    /// The end of the window (evaluation time minus offset, or the `@` time).
    pub(crate) range_end: i64,
    pub(crate) range_ms: i64,
    /// For `absent_over_time`: the labels its equality matchers name.
    pub(crate) absent_labels: Option<Labels>,
}

impl RangeArg {
    /// Calls `f` with every series' labels and non-empty window, in series order.
    pub(crate) fn for_each_window(&self, mut f: impl FnMut(&SharedLabels, &[(i64, f64)])) {
        match &self.source {
            RangeSource::Selector(fetched) => {
                let from = self.range_end - self.range_ms;
                for one in &fetched.series {
                    let points = one.window(from, self.range_end);
                    if !points.is_empty() {
                        f(&one.labels, points);
                    }
                }
            }
            RangeSource::Subquery(series) => {
                for one in series.iter() {
                    f(&one.labels, &one.points);
                }
            }
        }
    }

    pub(crate) fn bounds(&self) -> WindowBounds {
        WindowBounds {
            end: self.range_end,
            range_ms: self.range_ms,
        }
    }

    /// How many series there are (with a sample in the window or not).
    pub(crate) fn series_count(&self) -> usize {
        match &self.source {
            RangeSource::Selector(fetched) => fetched.series.len(),
            RangeSource::Subquery(series) => series.len(),
        }
    }

    /// Whether no series has a sample in the window.
    pub(crate) fn is_empty(&self) -> bool {
        match &self.source {
            RangeSource::Selector(fetched) => {
                let from = self.range_end - self.range_ms;
                fetched
                    .series
                    .iter()
                    .all(|one| one.window(from, self.range_end).is_empty())
            }
            RangeSource::Subquery(series) => series.is_empty(),
        }
    }

    /// Whether the series stay distinct once `__name__` is dropped, known without looking at
    /// the step's windows.
    pub(crate) fn unique_without_name(&self) -> bool {
        match &self.source {
            RangeSource::Selector(fetched) => fetched.unique_without_name(),
            RangeSource::Subquery(_) => false,
        }
    }
}

pub(crate) enum Param {
    None,
    Number(f64),
    Label(String),
}

pub(crate) fn unwrap_parens(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(paren) => unwrap_parens(&paren.expr),
        other => other,
    }
}

/// The selector's matchers for storage, with the metric name as a matcher.
pub(crate) fn convert_matchers(selector: &VectorSelector) -> Result<Vec<Matcher>, QueryError> {
    let mut matchers = Vec::new();
    let has_name_matcher = selector
        .matchers
        .matchers
        .iter()
        .any(|matcher| matcher.name == METRIC_NAME_LABEL);
    if let Some(name) = &selector.name
        && !has_name_matcher
    {
        matchers.push(Matcher::equal(METRIC_NAME_LABEL, name.clone()));
    }
    if !selector.matchers.or_matchers.is_empty() {
        return Err(QueryError::BadData(
            "`or` in label matchers is not supported".to_owned(),
        ));
    }
    for matcher in &selector.matchers.matchers {
        let op = match matcher.op {
            ParserMatchOp::Equal => MatchOp::Equal,
            ParserMatchOp::NotEqual => MatchOp::NotEqual,
            ParserMatchOp::Re(_) => MatchOp::Regex,
            ParserMatchOp::NotRe(_) => MatchOp::NotRegex,
        };
        let converted = Matcher::new(op, matcher.name.clone(), matcher.value.clone()).map_err(|err| {
            QueryError::BadData(format!("invalid regular expression {:?}: {err}", matcher.value))
        })?;
        matchers.push(converted);
    }
    Ok(matchers)
}

/// The labels `absent()` reports for a selector: its equality matchers, except a name matched
/// twice (Prometheus' historic behaviour).
pub(crate) fn absent_labels(selector: &VectorSelector) -> Labels {
    let mut labels = Labels::default();
    let mut seen: Vec<&str> = Vec::new();
    for matcher in &selector.matchers.matchers {
        if matcher.name == METRIC_NAME_LABEL {
            continue;
        }
        if matches!(matcher.op, ParserMatchOp::Equal) && !seen.contains(&matcher.name.as_str()) {
            labels = labels.with_label(&matcher.name, &matcher.value).unwrap_or(labels);
            seen.push(&matcher.name);
        } else {
            labels = labels.with_label(&matcher.name, "").unwrap_or(labels);
        }
    }
    labels
}

pub(crate) fn is_comparison(op: token::TokenId) -> bool {
    matches!(
        op,
        token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE
    )
}

/// Operators after which results lose `__name__` (Prometheus' `shouldDropMetricName`).
fn drops_metric_name(op: token::TokenId) -> bool {
    matches!(
        op,
        token::T_ADD | token::T_SUB | token::T_DIV | token::T_MUL | token::T_POW | token::T_MOD
    )
}

/// `(value, keep)` of an element-wise operation (Prometheus' `vectorElemBinop`).
fn scalar_binop(op: token::TokenId, lhs: f64, rhs: f64) -> Result<(f64, bool), QueryError> {
    Ok(match op {
        token::T_ADD => (lhs + rhs, true),
        token::T_SUB => (lhs - rhs, true),
        token::T_MUL => (lhs * rhs, true),
        token::T_DIV => (lhs / rhs, true),
        token::T_POW => (lhs.powf(rhs), true),
        token::T_MOD => (go_mod(lhs, rhs), true),
        token::T_EQLC => (lhs, lhs == rhs),
        token::T_NEQ => (lhs, lhs != rhs),
        token::T_GTR => (lhs, lhs > rhs),
        token::T_LSS => (lhs, lhs < rhs),
        token::T_GTE => (lhs, lhs >= rhs),
        token::T_LTE => (lhs, lhs <= rhs),
        token::T_ATAN2 => (lhs.atan2(rhs), true),
        other => {
            return Err(QueryError::Execution(format!(
                "operator {} not allowed here",
                TokenType::new(other)
            )));
        }
    })
}

/// Go's `math.Mod`: the result has the sign of `x`; `Mod(±Inf, y)` and `Mod(x, 0)` are NaN,
/// `Mod(x, ±Inf)` is `x`.
fn go_mod(x: f64, y: f64) -> f64 {
    if y == 0.0 || x.is_infinite() || x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    x % y
}

fn vector_scalar(
    op: token::TokenId,
    vector: Vec<EvalSample>,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
) -> Result<Vec<EvalSample>, QueryError> {
    let mut out = Vec::with_capacity(vector.len());
    for sample in vector {
        let (lhs, rhs) = if scalar_on_left {
            (scalar, sample.v)
        } else {
            (sample.v, scalar)
        };
        let (mut value, mut keep) = scalar_binop(op, lhs, rhs)?;
        if is_comparison(op) && scalar_on_left {
            value = rhs;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if drops_metric_name(op) || return_bool {
                sample.labels.without_metric_name()
            } else {
                sample.labels
            };
            out.push(EvalSample {
                labels,
                t: sample.t,
                v: value,
            });
        }
    }
    Ok(out)
}

/// The key two samples match on (the `on` labels, or every label but `__name__` and the
/// `ignoring` ones), memoized per label set in `signatures`.
fn signature(
    labels: &SharedLabels,
    matching: Option<&LabelModifier>,
    signatures: &mut LabelMemo,
) -> SharedLabels {
    signatures.get_or_derive(labels, |labels| match_group(labels, matching))
}

fn set_operation(
    op: token::TokenId,
    lhs: Vec<EvalSample>,
    rhs: Vec<EvalSample>,
    matching: Option<&LabelModifier>,
    signatures: &mut LabelMemo,
) -> Vec<EvalSample> {
    match op {
        token::T_LAND | token::T_LUNLESS => {
            let keep_matched = op == token::T_LAND;
            let right: FastSet<SharedLabels> = rhs
                .iter()
                .map(|sample| signature(&sample.labels, matching, signatures))
                .collect();
            lhs.into_iter()
                .filter(|sample| {
                    right.contains(&signature(&sample.labels, matching, signatures)) == keep_matched
                })
                .collect()
        }
        _ => {
            let left: FastSet<SharedLabels> = lhs
                .iter()
                .map(|sample| signature(&sample.labels, matching, signatures))
                .collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|sample| !left.contains(&signature(&sample.labels, matching, signatures))),
            );
            out
        }
    }
}

/// A binary arithmetic or comparison operation between two vectors (Prometheus'
/// `VectorBinop`).
struct VectorMatcher<'e> {
    op: token::TokenId,
    matching: Option<&'e LabelModifier>,
    card: Option<&'e VectorMatchCardinality>,
    return_bool: bool,
}

impl VectorMatcher<'_> {
    fn apply(
        &self,
        lhs: Vec<EvalSample>,
        rhs: Vec<EvalSample>,
        signatures: &mut LabelMemo,
        results: &mut PairMemo,
    ) -> Result<Vec<EvalSample>, QueryError> {
        let (op, matching, return_bool) = (self.op, self.matching, self.return_bool);
        let card = self.card.unwrap_or(&VectorMatchCardinality::OneToOne);
        let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
        let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
        let mut one_side: FastMap<SharedLabels, EvalSample> = FastMap::default();
        one_side.reserve(one.len());
        for sample in one {
            let key = signature(&sample.labels, matching, signatures);
            if let Some(existing) = one_side.get(&key) {
                let side = if one_to_many { "left" } else { "right" };
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    key, sample.labels, existing.labels
                )));
            }
            one_side.insert(key, sample);
        }
        let include: Option<&promql_parser::label::Labels> = match card {
            VectorMatchCardinality::ManyToOne(labels) | VectorMatchCardinality::OneToMany(labels) => {
                Some(labels)
            }
            _ => None,
        };
        let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
        // One-to-one: the match keys seen; otherwise the (key, result labels) seen.
        let mut matched_keys: FastSet<SharedLabels> = FastSet::default();
        let mut matched_results: FastSet<(SharedLabels, SharedLabels)> = FastSet::default();
        let mut out = Vec::with_capacity(many.len());
        for sample in many {
            let key = signature(&sample.labels, matching, signatures);
            let Some(other) = one_side.get(&key) else {
                continue;
            };
            let (left, right) = if one_to_many {
                (other.v, sample.v)
            } else {
                (sample.v, other.v)
            };
            let (mut value, keep) = scalar_binop(op, left, right)?;
            if return_bool {
                value = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let mut labels = results.get_or_derive(&sample.labels, &other.labels, |many, one| {
                result_labels(many, one, op, matching, one_to_one, include)
            });
            if return_bool {
                labels = labels.without_metric_name();
            }
            if one_to_one {
                if !matched_keys.insert(key) {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                            .to_owned(),
                    ));
                }
            } else if !matched_results.insert((key, labels.clone())) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches".to_owned(),
                ));
            }
            out.push(EvalSample {
                labels,
                t: sample.t,
                v: value,
            });
        }
        Ok(out)
    }
}

fn match_group(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => {
            labels.filtered(|label| on.labels.iter().any(|name| label.name == *name))
        }
        Some(LabelModifier::Exclude(ignoring)) => labels.filtered(|label| {
            label.name != METRIC_NAME_LABEL && !ignoring.labels.iter().any(|name| label.name == *name)
        }),
        None => labels.without_metric_name(),
    }
}

/// Prometheus' `resultMetric`.
fn result_labels(
    many: &Labels,
    one: &Labels,
    op: token::TokenId,
    matching: Option<&LabelModifier>,
    one_to_one: bool,
    include: Option<&promql_parser::label::Labels>,
) -> Labels {
    let mut labels = if drops_metric_name(op) {
        many.without_metric_name()
    } else {
        many.clone()
    };
    if one_to_one {
        labels = match matching {
            Some(LabelModifier::Include(on)) => {
                labels.filtered(|label| on.labels.iter().any(|name| label.name == *name))
            }
            Some(LabelModifier::Exclude(ignoring)) => {
                labels.filtered(|label| !ignoring.labels.iter().any(|name| label.name == *name))
            }
            None => labels,
        };
    }
    if let Some(include) = include {
        for name in &include.labels {
            let value = one.get(name).unwrap_or("");
            labels = labels.with_label(name, value).unwrap_or(labels);
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, Value};

    fn series(timestamps: &[i64]) -> FetchedSeries {
        FetchedSeries {
            labels: SharedLabels::empty(),
            samples: timestamps.iter().map(|&ts| (ts, ts as f64)).collect(),
            cursor: Cell::new(Cursor::default()),
        }
    }

    #[test]
    fn seek_finds_the_partition_point_from_any_hint() {
        let samples: Vec<(i64, f64)> = (0..40).map(|index| (index * 10, 0.0)).collect();
        for len in [0, 1, 2, 3, 17, 40] {
            let samples = &samples[..len];
            for threshold in -5..=405 {
                let expected = samples.partition_point(|sample| sample.0 <= threshold);
                for hint in 0..=len + 3 {
                    assert_eq!(
                        seek(samples, hint, |ts| ts <= threshold),
                        expected,
                        "len {len}, threshold {threshold}, hint {hint}"
                    );
                }
            }
        }
    }

    #[test]
    fn windows_match_a_fresh_search_whichever_way_time_moves() {
        // Irregular timestamps, and evaluation times going forward in steps of several sizes,
        // backward (as a subquery's inner steps do at each outer step), and jumping around.
        let timestamps: Vec<i64> = (0..500i64).map(|index| index * 15 + (index * 7) % 11).collect();
        let one = series(&timestamps);
        let mut state: u64 = 42;
        let mut random = move |bound: i64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as i64 % bound
        };
        let mut to = -100;
        for round in 0..5_000 {
            to = match round % 4 {
                0 => to + 60,
                1 => to + random(200),
                2 => to - random(400),
                _ => random(8_000) - 200,
            };
            let range = [0, 1, 15, 75, 300][random(5) as usize];
            let from = to - range;
            let lo = one.samples.partition_point(|sample| sample.0 < from);
            let hi = one.samples.partition_point(|sample| sample.0 <= to);
            assert_eq!(
                one.window(from, to),
                &one.samples[lo..hi],
                "window [{from}, {to}]"
            );
            let newest = hi.checked_sub(1).map(|index| one.samples[index]);
            assert_eq!(one.newest_at(to), newest, "newest at {to}");
        }
    }

    /// Series in memory, for evaluating whole queries.
    struct InMemory(Vec<SeriesSamples>);

    impl obs_core::series::MetricsQuerier for InMemory {
        fn select(
            &self,
            matchers: &[Matcher],
            mint_ms: i64,
            maxt_ms: i64,
        ) -> Result<Vec<SeriesSamples>, obs_core::series::StorageError> {
            Ok(self
                .0
                .iter()
                .filter(|one| matchers.iter().all(|matcher| matcher.matches_labels(&one.labels)))
                .map(|one| SeriesSamples {
                    labels: one.labels.clone(),
                    samples: one
                        .samples
                        .iter()
                        .copied()
                        .filter(|(ts, _)| (mint_ms..=maxt_ms).contains(ts))
                        .collect(),
                })
                .filter(|one| !one.samples.is_empty())
                .collect())
        }

        fn label_names(
            &self,
            _: &[Matcher],
            _: i64,
            _: i64,
        ) -> Result<Vec<String>, obs_core::series::StorageError> {
            Ok(Vec::new())
        }

        fn label_values(
            &self,
            _: &str,
            _: &[Matcher],
            _: i64,
            _: i64,
        ) -> Result<Vec<String>, obs_core::series::StorageError> {
            Ok(Vec::new())
        }

        fn metadata(
            &self,
            _: Option<&str>,
            _: Option<usize>,
        ) -> Vec<(String, Vec<obs_core::series::MetricMetadata>)> {
            Vec::new()
        }
    }

    /// A float's bits, every NaN alike (their sign and payload depend on code generation).
    fn bits(v: f64) -> u64 {
        if v.is_nan() {
            f64::NAN.to_bits()
        } else {
            v.to_bits()
        }
    }

    #[test]
    fn range_queries_equal_an_instant_query_at_every_step() {
        // Counters scraped every 15 s with jitter, a reset, a gap, a stale marker and a late
        // start; the blocks of steps and the per-step path must give what instant queries do.
        let stale = f64::from_bits(STALE_NAN_BITS);
        let mut all = Vec::new();
        for (index, instance) in ["a", "b", "c"].iter().enumerate() {
            let labels = Labels::series([("__name__", "requests_total"), ("instance", instance)]).unwrap();
            let mut value = 0.0;
            let samples = (0..400i64)
                .filter(|n| !(150..170).contains(n) || index != 1)
                .skip(if index == 2 { 60 } else { 0 })
                .map(|n| {
                    value = if n == 200 { 3.0 } else { value + (n % 7) as f64 };
                    let ts = n * 15_000 + (n * 37 + index as i64 * 1_000) % 900;
                    (ts, if n == 300 && index == 0 { stale } else { value })
                })
                .collect();
            all.push(SeriesSamples { labels, samples });
        }
        let engine = Engine::new(
            std::sync::Arc::new(InMemory(all)),
            crate::EngineOptions::default(),
        );
        let queries = [
            "rate(requests_total[1m])",
            "increase(requests_total[75s])",
            "delta(requests_total[2m])",
            "irate(requests_total[1m])",
            "idelta((requests_total[1m]))",
            "deriv(requests_total[3m])",
            "changes(requests_total[5m])",
            "resets(requests_total[5m])",
            "avg_over_time(requests_total[1m])",
            "sum_over_time(requests_total[1m])",
            "count_over_time(requests_total[30s])",
            "min_over_time(requests_total[1m])",
            "max_over_time(requests_total[1m] offset 2m)",
            "stddev_over_time(requests_total[2m])",
            "stdvar_over_time(requests_total[2m] offset -1m)",
            "present_over_time(requests_total[1m])",
            "last_over_time(requests_total[1m])",
            "rate(requests_total[1m] @ 3000)",
            "sum by (instance) (irate(requests_total[45s])) / on() group_left sum(rate(requests_total[2m]))",
            "max_over_time(rate(requests_total[1m])[5m:20s])",
        ];
        for query in queries {
            for (start, end, step) in [
                (0, 6_000_000, 60_000),
                (-60_000, 3_000_000, 7_000),
                (1_000_000, 1_001_000, 1_000),
            ] {
                let Ok(Value::Matrix(range)) = engine.range(query, start, end, step) else {
                    panic!("{query}: no matrix");
                };
                let mut expected: std::collections::BTreeMap<String, Vec<(i64, u64)>> = Default::default();
                let mut t = start;
                while t <= end {
                    let Ok(Value::Vector(samples)) = engine.instant(query, t) else {
                        panic!("{query} at {t}: no vector");
                    };
                    for sample in samples {
                        expected
                            .entry(sample.labels.to_string())
                            .or_default()
                            .push((t, bits(sample.v)));
                    }
                    t += step;
                }
                let actual: std::collections::BTreeMap<String, Vec<(i64, u64)>> = range
                    .iter()
                    .map(|series| {
                        let points = series.points.iter().map(|&(t, v)| (t, bits(v))).collect();
                        (series.labels.to_string(), points)
                    })
                    .collect();
                assert_eq!(actual, expected, "{query} over [{start}, {end}] by {step}");
            }
        }
    }
}
