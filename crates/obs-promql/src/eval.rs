//! The evaluator: an interpreter of promql-parser's AST at one evaluation time, run once per
//! step of a range query.
//!
//! Selectors read from a per-query cache filled once per selector node for the whole time span
//! the query needs (a pre-pass computes that span through offsets, `@` and subqueries).
//! Subquery results are memoized per (node, time), so overlapping windows of consecutive
//! steps evaluate each inner step once.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use obs_core::series::{Labels, METRIC_NAME_LABEL, MatchOp, Matcher, SeriesSamples};
use promql_parser::label::MatchOp as ParserMatchOp;
use promql_parser::parser::token::{self, TokenType};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Expr, LabelModifier, MatrixSelector, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorSelector,
};

use crate::functions;
use crate::{Engine, QueryControl, QueryError, Sample, Series, Value};

/// The NaN Prometheus writes as a stale marker.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub(crate) fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// A value during evaluation at one time.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
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

/// Fetched series of one selector node.
type Fetched = Rc<Vec<SeriesSamples>>;

/// The series of a subquery at one reference time.
type SubqueryResult = Rc<Vec<Series>>;

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
    fetched: RefCell<HashMap<usize, Fetched>>,
    subqueries: RefCell<HashMap<(usize, i64), SubqueryResult>>,
    loaded_samples: Cell<usize>,
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
            fetched: RefCell::new(HashMap::new()),
            subqueries: RefCell::new(HashMap::new()),
            loaded_samples: Cell::new(0),
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
            Val::Vector(samples) => Value::Vector(samples),
            Val::Matrix(series) => Value::Matrix(series),
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
        let mut by_labels: HashMap<Labels, usize> = HashMap::new();
        let mut result: Vec<Series> = Vec::new();
        let mut t = self.start;
        let mut points = 0usize;
        while t <= self.end {
            self.check_deadline()?;
            match self.eval(expr, t)? {
                Val::Scalar(v) => {
                    let index = *by_labels.entry(Labels::default()).or_insert_with(|| {
                        result.push(Series {
                            labels: Labels::default(),
                            points: Vec::new(),
                        });
                        result.len() - 1
                    });
                    result[index].points.push((t, v));
                    points += 1;
                }
                Val::Vector(samples) => {
                    for sample in samples {
                        let index = match by_labels.get(&sample.labels) {
                            Some(&index) => index,
                            None => {
                                by_labels.insert(sample.labels.clone(), result.len());
                                result.push(Series {
                                    labels: sample.labels,
                                    points: Vec::new(),
                                });
                                result.len() - 1
                            }
                        };
                        result[index].points.push((t, sample.v));
                        points += 1;
                    }
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
        result.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(Value::Matrix(result))
    }

    /// The series of a selector node, fetched once.
    fn series_of(&self, selector: &VectorSelector) -> Result<Fetched, QueryError> {
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
        let series = Rc::new(series);
        self.fetched.borrow_mut().insert(id, Rc::clone(&series));
        Ok(series)
    }

    pub(crate) fn eval(&self, expr: &Expr, t: i64) -> Result<Val, QueryError> {
        match expr {
            Expr::NumberLiteral(number) => Ok(Val::Scalar(number.val)),
            Expr::StringLiteral(string) => Ok(Val::Str(string.val.clone())),
            Expr::Paren(paren) => self.eval(&paren.expr, t),
            Expr::Unary(unary) => match self.eval(&unary.expr, t)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(samples) => {
                    let negated: Vec<Sample> = samples
                        .into_iter()
                        .map(|sample| Sample {
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
    ) -> Result<Vec<Sample>, QueryError> {
        let series = self.series_of(selector)?;
        let reference = self.reference_time(&selector.at, &selector.offset, t);
        let mut out = Vec::new();
        for one in series.iter() {
            let samples = &one.samples;
            let end = samples.partition_point(|(ts, _)| *ts <= reference);
            if end == 0 {
                continue;
            }
            let (ts, v) = samples[end - 1];
            if ts < reference - self.lookback || is_stale(v) {
                continue;
            }
            out.push(Sample {
                labels: one.labels.clone(),
                t: if sample_times { ts } else { t },
                v,
            });
        }
        Ok(out)
    }

    /// A range selector at `t`: the samples in `[t' - range, t']` without stale markers.
    pub(crate) fn range_selector(&self, matrix: &MatrixSelector, t: i64) -> Result<Vec<Series>, QueryError> {
        let selector = &matrix.vs;
        let series = self.series_of(selector)?;
        let reference = self.reference_time(&selector.at, &selector.offset, t);
        let from = reference - duration_ms(&matrix.range);
        let mut out = Vec::new();
        for one in series.iter() {
            let samples = &one.samples;
            let lo = samples.partition_point(|(ts, _)| *ts < from);
            let hi = samples.partition_point(|(ts, _)| *ts <= reference);
            let points: Vec<(i64, f64)> = samples[lo..hi]
                .iter()
                .copied()
                .filter(|(_, v)| !is_stale(*v))
                .collect();
            if points.is_empty() {
                continue;
            }
            out.push(Series {
                labels: one.labels.clone(),
                points,
            });
        }
        Ok(out)
    }

    /// A subquery at `t`: the inner expression at the multiples of the step in
    /// `[t' - range, t']`, gathered per series.
    pub(crate) fn subquery(&self, subquery: &SubqueryExpr, t: i64) -> Result<Rc<Vec<Series>>, QueryError> {
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
        let from = reference - duration_ms(&subquery.range);
        let mut inner_t = from.div_euclid(step) * step;
        if inner_t < from {
            inner_t += step;
        }
        let mut by_labels: HashMap<Labels, usize> = HashMap::new();
        let mut result: Vec<Series> = Vec::new();
        let mut points = 0usize;
        while inner_t <= reference {
            self.check_deadline()?;
            let samples = match self.eval(&subquery.expr, inner_t)? {
                Val::Scalar(v) => vec![Sample {
                    labels: Labels::default(),
                    t: inner_t,
                    v,
                }],
                Val::Vector(samples) => samples,
                other => {
                    return Err(QueryError::Execution(format!(
                        "subquery is only allowed on instant vector or scalar, got {}",
                        other.type_name()
                    )));
                }
            };
            for sample in samples {
                let index = match by_labels.get(&sample.labels) {
                    Some(&index) => index,
                    None => {
                        by_labels.insert(sample.labels.clone(), result.len());
                        result.push(Series {
                            labels: sample.labels,
                            points: Vec::new(),
                        });
                        result.len() - 1
                    }
                };
                result[index].points.push((inner_t, sample.v));
                points += 1;
            }
            // Memoized subquery points stay in memory for the whole query: they count against
            // the same limit as the samples loaded from storage.
            if self.loaded_samples.get() + points > self.engine.options.max_samples {
                return Err(QueryError::TooManySamples);
            }
            inner_t += step;
        }
        self.loaded_samples.set(self.loaded_samples.get() + points);
        let result = Rc::new(result);
        self.subqueries.borrow_mut().insert(key, Rc::clone(&result));
        Ok(result)
    }

    /// A function argument that must be a range vector: a matrix selector or a subquery, with
    /// its reference end and range (for extrapolation).
    pub(crate) fn range_arg(&self, expr: &Expr, t: i64) -> Result<RangeArg, QueryError> {
        match unwrap_parens(expr) {
            Expr::MatrixSelector(matrix) => {
                let selector = &matrix.vs;
                let end = self.reference_time(&selector.at, &selector.offset, t);
                Ok(RangeArg {
                    series: Rc::new(self.range_selector(matrix, t)?),
                    range_end: end,
                    range_ms: duration_ms(&matrix.range),
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
                    series,
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

    pub(crate) fn eval_vector(&self, expr: &Expr, t: i64) -> Result<Vec<Sample>, QueryError> {
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
        functions::aggregate(op, &aggregate.modifier, param, samples, t).map(Val::Vector)
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
                match op {
                    token::T_LAND | token::T_LOR | token::T_LUNLESS => {
                        Ok(Val::Vector(set_operation(op, lhs, rhs, matching)))
                    }
                    _ => {
                        let out = vector_vector(op, lhs, rhs, matching, card, return_bool)?;
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

/// A range-vector argument of a function.
pub(crate) struct RangeArg {
    pub(crate) series: Rc<Vec<Series>>,
    /// The end of the window (evaluation time minus offset, or the `@` time).
    pub(crate) range_end: i64,
    pub(crate) range_ms: i64,
    /// For `absent_over_time`: the labels its equality matchers name.
    pub(crate) absent_labels: Option<Labels>,
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
    vector: Vec<Sample>,
    scalar: f64,
    scalar_on_left: bool,
    return_bool: bool,
) -> Result<Vec<Sample>, QueryError> {
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
            out.push(Sample {
                labels,
                t: sample.t,
                v: value,
            });
        }
    }
    Ok(out)
}

/// The key two samples match on: the `on` labels, or every label but `__name__` and the
/// `ignoring` ones.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> String {
    let mut key = String::new();
    for label in labels.iter() {
        let include = match matching {
            Some(LabelModifier::Include(on)) => on.labels.contains(&label.name),
            Some(LabelModifier::Exclude(ignoring)) => {
                label.name != METRIC_NAME_LABEL && !ignoring.labels.contains(&label.name)
            }
            None => label.name != METRIC_NAME_LABEL,
        };
        if include {
            key.push_str(&label.name);
            key.push('\u{ff}');
            key.push_str(&label.value);
            key.push('\u{ff}');
        }
    }
    key
}

fn set_operation(
    op: token::TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: Option<&LabelModifier>,
) -> Vec<Sample> {
    match op {
        token::T_LAND => {
            let right: std::collections::HashSet<String> = rhs
                .iter()
                .map(|sample| signature(&sample.labels, matching))
                .collect();
            lhs.into_iter()
                .filter(|sample| right.contains(&signature(&sample.labels, matching)))
                .collect()
        }
        token::T_LUNLESS => {
            let right: std::collections::HashSet<String> = rhs
                .iter()
                .map(|sample| signature(&sample.labels, matching))
                .collect();
            lhs.into_iter()
                .filter(|sample| !right.contains(&signature(&sample.labels, matching)))
                .collect()
        }
        _ => {
            let left: std::collections::HashSet<String> = lhs
                .iter()
                .map(|sample| signature(&sample.labels, matching))
                .collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|sample| !left.contains(&signature(&sample.labels, matching))),
            );
            out
        }
    }
}

fn vector_vector(
    op: token::TokenId,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    matching: Option<&LabelModifier>,
    card: Option<&VectorMatchCardinality>,
    return_bool: bool,
) -> Result<Vec<Sample>, QueryError> {
    let card = card.unwrap_or(&VectorMatchCardinality::OneToOne);
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut one_side: HashMap<String, Sample> = HashMap::with_capacity(one.len());
    for sample in one {
        let key = signature(&sample.labels, matching);
        if let Some(existing) = one_side.get(&key) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                match_group(&sample.labels, matching),
                sample.labels,
                existing.labels
            )));
        }
        one_side.insert(key, sample);
    }
    let include: Option<&promql_parser::label::Labels> = match card {
        VectorMatchCardinality::ManyToOne(labels) | VectorMatchCardinality::OneToMany(labels) => Some(labels),
        _ => None,
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let mut matched: HashMap<String, Vec<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for sample in many {
        let key = signature(&sample.labels, matching);
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
        let mut labels = result_labels(&sample.labels, &other.labels, op, matching, one_to_one, include);
        if return_bool {
            labels = labels.without_metric_name();
        }
        let seen = matched.entry(key).or_default();
        if one_to_one {
            if !seen.is_empty() {
                return Err(QueryError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .to_owned(),
                ));
            }
            seen.push(Labels::default());
        } else {
            if seen.contains(&labels) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches".to_owned(),
                ));
            }
            seen.push(labels.clone());
        }
        out.push(Sample {
            labels,
            t: sample.t,
            v: value,
        });
    }
    Ok(out)
}

fn match_group(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels.filtered(|label| on.labels.contains(&label.name)),
        Some(LabelModifier::Exclude(ignoring)) => {
            labels.filtered(|label| label.name != METRIC_NAME_LABEL && !ignoring.labels.contains(&label.name))
        }
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
            Some(LabelModifier::Include(on)) => labels.filtered(|label| on.labels.contains(&label.name)),
            Some(LabelModifier::Exclude(ignoring)) => {
                labels.filtered(|label| !ignoring.labels.contains(&label.name))
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
