//! PromQL functions and aggregations, with the float semantics of Prometheus 2.42
//! (`promql/functions.go`, `promql/engine.go` `aggregation`, `promql/quantile.go`).

use obs_core::series::{Labels, METRIC_NAME_LABEL};
use promql_parser::parser::token::{self, TokenId};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{Call, Expr, LabelModifier};

use crate::QueryError;
use crate::eval::{EvalSample, Evaluator, Param, Val, absent_labels, unwrap_parens};
use crate::labelset::{FastMap, FastSet, LabelMemo, SharedLabels};

/// The static type of an expression, as Prometheus names it in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StaticType {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl StaticType {
    pub(crate) fn prometheus_name(self) -> &'static str {
        match self {
            StaticType::Scalar => "scalar",
            StaticType::Vector => "instant vector",
            StaticType::Matrix => "range vector",
            StaticType::String => "string",
        }
    }
}

pub(crate) fn static_type(expr: &Expr) -> StaticType {
    match expr.value_type() {
        ValueType::Scalar => StaticType::Scalar,
        ValueType::Vector => StaticType::Vector,
        ValueType::Matrix => StaticType::Matrix,
        ValueType::String => StaticType::String,
    }
}

/// The functions Prometheus 2.42 has (the parser knows newer ones too).
const FUNCTIONS_2_42: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_quantile",
    // Parsed under its Prometheus 3 name; the query text says holt_winters.
    "double_exponential_smoothing",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_replace",
    "label_join",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

/// Refuses what Prometheus 2.42 would not parse: newer functions and aggregations.
pub(crate) fn validate(expr: &Expr) -> Result<(), QueryError> {
    match expr {
        Expr::Call(call) => {
            if !FUNCTIONS_2_42.contains(&call.func.name) {
                return Err(QueryError::BadData(format!(
                    "1:1: parse error: unknown function with name {:?}",
                    call.func.name
                )));
            }
            call.args.args.iter().try_for_each(|arg| validate(arg))
        }
        Expr::Aggregate(aggregate) => {
            if matches!(aggregate.op.id(), token::T_LIMITK | token::T_LIMIT_RATIO) {
                return Err(QueryError::BadData(format!(
                    "1:1: parse error: unknown aggregation {}",
                    aggregate.op
                )));
            }
            validate(&aggregate.expr)?;
            aggregate.param.as_deref().map_or(Ok(()), validate)
        }
        Expr::Unary(unary) => validate(&unary.expr),
        Expr::Binary(binary) => {
            validate(&binary.lhs)?;
            validate(&binary.rhs)
        }
        Expr::Paren(paren) => validate(&paren.expr),
        Expr::Subquery(subquery) => validate(&subquery.expr),
        Expr::MatrixSelector(_)
        | Expr::VectorSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_) => Ok(()),
    }
}

fn arg(call: &Call, index: usize) -> Result<&Expr, QueryError> {
    call.args
        .args
        .get(index)
        .map(|arg| arg.as_ref())
        .ok_or_else(|| QueryError::Execution(format!("missing argument {index} of {}", call.func.name)))
}

/// Applies `f` to every sample's value, dropping the metric name.
fn map_values(samples: Vec<EvalSample>, f: impl Fn(f64) -> f64) -> Vec<EvalSample> {
    samples
        .into_iter()
        .map(|sample| EvalSample {
            labels: sample.labels.without_metric_name(),
            t: sample.t,
            v: f(sample.v),
        })
        .collect()
}

/// Refuses a vector with two samples of the same label set.
pub(crate) fn check_unique(samples: &[EvalSample]) -> Result<(), QueryError> {
    if samples.len() < 2 {
        return Ok(());
    }
    let mut seen = FastSet::default();
    seen.reserve(samples.len());
    for sample in samples {
        if !seen.insert(&sample.labels) {
            return Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".to_owned(),
            ));
        }
    }
    Ok(())
}

/// Evaluates a function call at `t`.
pub(crate) fn call(ev: &Evaluator<'_>, call: &Call, t: i64) -> Result<Val, QueryError> {
    let name = call.func.name;
    let vector = |index| ev.eval_vector(arg(call, index)?, t);
    let scalar = |index| ev.eval_scalar(arg(call, index)?, t);
    let result = match name {
        "time" => return Ok(Val::Scalar(t as f64 / 1000.0)),
        "pi" => return Ok(Val::Scalar(std::f64::consts::PI)),
        "vector" => {
            return Ok(Val::Vector(vec![EvalSample {
                labels: SharedLabels::empty(),
                t,
                v: scalar(0)?,
            }]));
        }
        "scalar" => {
            let samples = vector(0)?;
            return Ok(Val::Scalar(if samples.len() == 1 {
                samples[0].v
            } else {
                f64::NAN
            }));
        }
        "abs" => map_values(vector(0)?, f64::abs),
        "ceil" => map_values(vector(0)?, f64::ceil),
        "floor" => map_values(vector(0)?, f64::floor),
        "exp" => map_values(vector(0)?, f64::exp),
        "sqrt" => map_values(vector(0)?, f64::sqrt),
        "ln" => map_values(vector(0)?, f64::ln),
        "log2" => map_values(vector(0)?, f64::log2),
        "log10" => map_values(vector(0)?, f64::log10),
        "sin" => map_values(vector(0)?, f64::sin),
        "cos" => map_values(vector(0)?, f64::cos),
        "tan" => map_values(vector(0)?, f64::tan),
        "asin" => map_values(vector(0)?, f64::asin),
        "acos" => map_values(vector(0)?, f64::acos),
        "atan" => map_values(vector(0)?, f64::atan),
        "sinh" => map_values(vector(0)?, f64::sinh),
        "cosh" => map_values(vector(0)?, f64::cosh),
        "tanh" => map_values(vector(0)?, f64::tanh),
        "asinh" => map_values(vector(0)?, f64::asinh),
        "acosh" => map_values(vector(0)?, f64::acosh),
        "atanh" => map_values(vector(0)?, f64::atanh),
        "deg" => map_values(vector(0)?, |v| v * 180.0 / std::f64::consts::PI),
        "rad" => map_values(vector(0)?, |v| v * std::f64::consts::PI / 180.0),
        "sgn" => map_values(vector(0)?, |v| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        }),
        "round" => {
            let to_nearest = if call.args.args.len() > 1 { scalar(1)? } else { 1.0 };
            let inverse = 1.0 / to_nearest;
            map_values(vector(0)?, |v| (v * inverse + 0.5).floor() / inverse)
        }
        "clamp" => {
            let samples = vector(0)?;
            let (min, max) = (scalar(1)?, scalar(2)?);
            if max < min {
                Vec::new()
            } else {
                map_values(samples, |v| go_max(min, go_min(max, v)))
            }
        }
        "clamp_max" => {
            let max = scalar(1)?;
            map_values(vector(0)?, |v| go_min(max, v))
        }
        "clamp_min" => {
            let min = scalar(1)?;
            map_values(vector(0)?, |v| go_max(min, v))
        }
        "timestamp" => {
            let inner = unwrap_parens(arg(call, 0)?);
            let samples = match inner {
                Expr::VectorSelector(selector) => ev.instant_selector(selector, t, true)?,
                other => ev.eval_vector(other, t)?,
            };
            samples
                .into_iter()
                .map(|sample| EvalSample {
                    labels: sample.labels.without_metric_name(),
                    t,
                    v: sample.t as f64 / 1000.0,
                })
                .collect()
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute" | "month"
        | "year" => {
            let samples = if call.args.args.is_empty() {
                vec![EvalSample {
                    labels: SharedLabels::empty(),
                    t,
                    v: t as f64 / 1000.0,
                }]
            } else {
                vector(0)?
            };
            map_values(samples, |v| date_part(name, v))
        }
        "sort" | "sort_desc" => {
            let mut samples = vector(0)?;
            sort_samples(&mut samples, name == "sort_desc");
            return Ok(Val::Vector(samples));
        }
        "label_replace" => label_replace(ev, call, t)?,
        "label_join" => label_join(ev, call, t)?,
        "absent" => {
            let samples = vector(0)?;
            if samples.is_empty() {
                let labels = match unwrap_parens(arg(call, 0)?) {
                    Expr::VectorSelector(selector) => absent_labels(selector),
                    _ => Labels::default(),
                };
                vec![EvalSample {
                    labels: SharedLabels::new(labels),
                    t,
                    v: 1.0,
                }]
            } else {
                Vec::new()
            }
        }
        "histogram_quantile" => histogram_quantile(scalar(0)?, vector(1)?, t)?,
        _ => return range_function(ev, call, t).map(Val::Vector),
    };
    check_unique(&result)?;
    Ok(Val::Vector(result))
}

/// Go's `math.Max`: +Inf first, then NaN, and +0 beats -0.
fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && a == b {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: -Inf first, then NaN, and -0 beats +0.
fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && a == b {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

/// Go's `sort.Float64s` order: NaN first, then ascending. A total order.
fn go_float_order(a: &f64, b: &f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// Prometheus' `sort` / `sort_desc`: NaN last in both.
fn sort_samples(samples: &mut [EvalSample], descending: bool) {
    samples.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        (false, false) => {
            let order = a.v.partial_cmp(&b.v).unwrap_or(std::cmp::Ordering::Equal);
            if descending { order.reverse() } else { order }
        }
    });
}

/// Civil date parts of a Unix time in seconds (UTC), exactly as Prometheus 2.42 computes
/// them: `time.Unix(int64(v), 0).UTC()` in Go, whose `int64()` truncates towards zero and
/// turns NaN and out-of-range values into the smallest int64 (amd64), and whose calendar
/// arithmetic wraps on unsigned 64-bit "absolute" seconds.
fn date_part(part: &str, seconds: f64) -> f64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    let unix = if seconds.is_nan() || !(-TWO_63..TWO_63).contains(&seconds) {
        i64::MIN
    } else {
        seconds.trunc() as i64
    };
    let date = GoDate::of(unix);
    match part {
        "day_of_month" => date.day as f64,
        "day_of_week" => date.weekday as f64,
        "day_of_year" => (date.yday + 1) as f64,
        "days_in_month" => days_in_month(date.year, date.month) as f64,
        "hour" => date.hour as f64,
        "minute" => date.minute as f64,
        "month" => date.month as f64,
        "year" => date.year as f64,
        _ => f64::NAN,
    }
}

/// Go's `time` calendar fields of a Unix time.
struct GoDate {
    year: i64,
    month: i64,
    day: i64,
    yday: i64,
    weekday: i64,
    hour: i64,
    minute: i64,
}

const SECONDS_PER_DAY: u64 = 86_400;
const DAYS_BEFORE: [i64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    if month == 2 && is_leap(year) {
        29
    } else {
        DAYS_BEFORE[month as usize] - DAYS_BEFORE[month as usize - 1]
    }
}

impl GoDate {
    fn of(unix: i64) -> GoDate {
        // Go: abs = uint64(unix + unixToInternal + internalToAbsolute), wrapping.
        const UNIX_TO_ABSOLUTE: u64 = 9_223_372_028_715_321_600;
        const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;
        let abs = (unix as u64).wrapping_add(UNIX_TO_ABSOLUTE);
        let mut d = abs / SECONDS_PER_DAY;
        let days_per_400 = 365 * 400 + 97;
        let days_per_100 = 365 * 100 + 24;
        let days_per_4 = 365 * 4 + 1;
        let mut n = d / days_per_400;
        let mut y = 400 * n;
        d -= days_per_400 * n;
        n = d / days_per_100;
        n -= n >> 2;
        y += 100 * n;
        d -= days_per_100 * n;
        n = d / days_per_4;
        y += 4 * n;
        d -= days_per_4 * n;
        n = d / 365;
        n -= n >> 2;
        y += n;
        d -= 365 * n;
        let year = (y as i64).wrapping_add(ABSOLUTE_ZERO_YEAR);
        let yday = d as i64;
        let mut day = yday;
        let (month, day) = 'month: {
            if is_leap(year) {
                if day > 31 + 29 - 1 {
                    day -= 1;
                } else if day == 31 + 29 - 1 {
                    break 'month (2, 29);
                }
            }
            let mut month = day / 31;
            let end = DAYS_BEFORE[month as usize + 1];
            let begin = if day >= end {
                month += 1;
                end
            } else {
                DAYS_BEFORE[month as usize]
            };
            (month + 1, day - begin + 1)
        };
        // January 1 of the absolute year was a Monday.
        let weekday = ((abs.wrapping_add(SECONDS_PER_DAY) % (7 * SECONDS_PER_DAY)) / SECONDS_PER_DAY) as i64;
        GoDate {
            year,
            month,
            day,
            yday,
            weekday,
            hour: ((abs % SECONDS_PER_DAY) / 3600) as i64,
            minute: ((abs % 3600) / 60) as i64,
        }
    }
}

fn label_replace(ev: &Evaluator<'_>, call: &Call, t: i64) -> Result<Vec<EvalSample>, QueryError> {
    let samples = ev.eval_vector(arg(call, 0)?, t)?;
    let destination = ev.eval_string(arg(call, 1)?, t)?;
    let replacement = ev.eval_string(arg(call, 2)?, t)?;
    let source = ev.eval_string(arg(call, 3)?, t)?;
    let pattern = ev.eval_string(arg(call, 4)?, t)?;
    let regex = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|err| {
        QueryError::Execution(format!(
            "invalid regular expression in label_replace(): {pattern}: {err}"
        ))
    })?;
    if !obs_core::series::is_valid_label_name(&destination) && destination != METRIC_NAME_LABEL {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_replace(): {destination}"
        )));
    }
    let mut out = Vec::with_capacity(samples.len());
    for sample in samples {
        let value = sample.labels.get(&source).unwrap_or("");
        let labels = match regex.captures(value) {
            Some(captures) => {
                let mut expanded = String::new();
                captures.expand(&replacement, &mut expanded);
                SharedLabels::new(
                    sample
                        .labels
                        .with_label(&destination, &expanded)
                        .map_err(|err| QueryError::Execution(err.to_string()))?,
                )
            }
            None => sample.labels,
        };
        out.push(EvalSample {
            labels,
            t: sample.t,
            v: sample.v,
        });
    }
    Ok(out)
}

fn label_join(ev: &Evaluator<'_>, call: &Call, t: i64) -> Result<Vec<EvalSample>, QueryError> {
    let samples = ev.eval_vector(arg(call, 0)?, t)?;
    let destination = ev.eval_string(arg(call, 1)?, t)?;
    let separator = ev.eval_string(arg(call, 2)?, t)?;
    let mut sources = Vec::new();
    for index in 3..call.args.args.len() {
        let source = ev.eval_string(arg(call, index)?, t)?;
        if !obs_core::series::is_valid_label_name(&source) && source != METRIC_NAME_LABEL {
            return Err(QueryError::Execution(format!(
                "invalid source label name in label_join(): {source}"
            )));
        }
        sources.push(source);
    }
    if !obs_core::series::is_valid_label_name(&destination) && destination != METRIC_NAME_LABEL {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_join(): {destination}"
        )));
    }
    let mut out = Vec::with_capacity(samples.len());
    for sample in samples {
        let joined = sources
            .iter()
            .map(|source| sample.labels.get(source).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&separator);
        let labels = sample
            .labels
            .with_label(&destination, &joined)
            .map_err(|err| QueryError::Execution(err.to_string()))?;
        out.push(EvalSample {
            labels: SharedLabels::new(labels),
            t: sample.t,
            v: sample.v,
        });
    }
    Ok(out)
}

/// A function over a range vector, resolved from its name once per call rather than once per
/// series and step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeFunction {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    HoltWinters,
    Changes,
    Resets,
    AvgOverTime,
    SumOverTime,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    PresentOverTime,
    LastOverTime,
}

impl RangeFunction {
    pub(crate) fn of(name: &str) -> Option<RangeFunction> {
        Some(match name {
            "rate" => RangeFunction::Rate,
            "increase" => RangeFunction::Increase,
            "delta" => RangeFunction::Delta,
            "irate" => RangeFunction::Irate,
            "idelta" => RangeFunction::Idelta,
            "deriv" => RangeFunction::Deriv,
            "predict_linear" => RangeFunction::PredictLinear,
            "double_exponential_smoothing" => RangeFunction::HoltWinters,
            "changes" => RangeFunction::Changes,
            "resets" => RangeFunction::Resets,
            "avg_over_time" => RangeFunction::AvgOverTime,
            "sum_over_time" => RangeFunction::SumOverTime,
            "count_over_time" => RangeFunction::CountOverTime,
            "min_over_time" => RangeFunction::MinOverTime,
            "max_over_time" => RangeFunction::MaxOverTime,
            "stddev_over_time" => RangeFunction::StddevOverTime,
            "stdvar_over_time" => RangeFunction::StdvarOverTime,
            "quantile_over_time" => RangeFunction::QuantileOverTime,
            "present_over_time" => RangeFunction::PresentOverTime,
            "last_over_time" => RangeFunction::LastOverTime,
            _ => return None,
        })
    }

    /// Whether the function takes scalar arguments besides its range vector.
    pub(crate) fn has_parameters(self) -> bool {
        matches!(
            self,
            RangeFunction::PredictLinear | RangeFunction::HoltWinters | RangeFunction::QuantileOverTime
        )
    }

    /// Whether the output keeps the metric name (only `last_over_time` does).
    pub(crate) fn keeps_metric_name(self) -> bool {
        self == RangeFunction::LastOverTime
    }
}

/// The end of a range function's window (evaluation time minus offset, or the `@` time) and
/// its length, for extrapolation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowBounds {
    pub(crate) end: i64,
    pub(crate) range_ms: i64,
}

/// The scalar arguments of a range function, evaluated once per step.
#[derive(Debug, Default)]
pub(crate) struct RangeParams {
    quantile: f64,
    smoothing: f64,
    trend: f64,
    horizon: f64,
}

/// A range function's value over one series' window (`None`: no output sample). `scratch` is
/// a reusable buffer.
pub(crate) fn range_value(
    function: RangeFunction,
    bounds: WindowBounds,
    points: &[(i64, f64)],
    t: i64,
    params: &RangeParams,
    scratch: &mut Vec<f64>,
) -> Option<f64> {
    match function {
        RangeFunction::Rate => extrapolated_rate(bounds, points, true, true),
        RangeFunction::Increase => extrapolated_rate(bounds, points, true, false),
        RangeFunction::Delta => extrapolated_rate(bounds, points, false, false),
        RangeFunction::Irate => instant_delta(points, true),
        RangeFunction::Idelta => instant_delta(points, false),
        RangeFunction::Deriv => {
            if points.len() < 2 {
                None
            } else {
                Some(linear_regression(points, points[0].0).0)
            }
        }
        RangeFunction::PredictLinear => {
            if points.len() < 2 {
                None
            } else {
                let (slope, intercept) = linear_regression(points, t);
                Some(intercept + slope * params.horizon)
            }
        }
        RangeFunction::HoltWinters => holt_winters(points, params.smoothing, params.trend),
        RangeFunction::Changes => Some(changes(points)),
        RangeFunction::Resets => Some(resets(points)),
        RangeFunction::AvgOverTime => Some(avg(points.iter().map(|p| p.1))),
        RangeFunction::SumOverTime => Some(points.iter().map(|p| p.1).sum()),
        RangeFunction::CountOverTime => Some(points.len() as f64),
        RangeFunction::MinOverTime => Some(fold_min_max(points, false)),
        RangeFunction::MaxOverTime => Some(fold_min_max(points, true)),
        RangeFunction::StddevOverTime => Some(stdvar_over_time(points).sqrt()),
        RangeFunction::StdvarOverTime => Some(stdvar_over_time(points)),
        RangeFunction::QuantileOverTime => {
            scratch.clear();
            scratch.extend(points.iter().map(|p| p.1));
            Some(quantile_of(params.quantile, scratch))
        }
        RangeFunction::PresentOverTime => Some(1.0),
        RangeFunction::LastOverTime => points.last().map(|last| last.1),
    }
}

/// Functions over a range vector: one output sample per input series.
fn range_function(ev: &Evaluator<'_>, call: &Call, t: i64) -> Result<Vec<EvalSample>, QueryError> {
    let name = call.func.name;
    // At the steps of a range query, a function of a matrix selector alone is evaluated for
    // blocks of steps at once, series by series.
    if let (Some(function), [only]) = (RangeFunction::of(name), call.args.args.as_slice())
        && !function.has_parameters()
        && ev.at_range_query_step()
        && let Expr::MatrixSelector(matrix) = unwrap_parens(only)
    {
        return ev.blocked_range_function(call, matrix, function, t);
    }
    // The range argument's position: quantile_over_time takes the quantile first.
    let range_index = usize::from(name == "quantile_over_time");
    let range = ev.range_arg(arg(call, range_index)?, t)?;
    let extra = |index| ev.eval_scalar(arg(call, index)?, t);
    if name == "absent_over_time" {
        if range.is_empty() {
            let labels = range.absent_labels.clone().unwrap_or_default();
            return Ok(vec![EvalSample {
                labels: SharedLabels::new(labels),
                t,
                v: 1.0,
            }]);
        }
        return Ok(Vec::new());
    }
    let quantile = if name == "quantile_over_time" {
        extra(0)?
    } else {
        0.0
    };
    let (smoothing, trend) = if name == "double_exponential_smoothing" && !range.is_empty() {
        // Prometheus checks the factors only when there is a series to smooth.
        let (sf, tf) = (extra(1)?, extra(2)?);
        if sf <= 0.0 || sf >= 1.0 {
            return Err(QueryError::Execution(format!(
                "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
            )));
        }
        if tf <= 0.0 || tf >= 1.0 {
            return Err(QueryError::Execution(format!(
                "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
            )));
        }
        (sf, tf)
    } else {
        (0.0, 0.0)
    };
    let horizon = if name == "predict_linear" { extra(1)? } else { 0.0 };
    let Some(function) = RangeFunction::of(name) else {
        // Unreachable for the functions `validate` lets through; refused, as before, only
        // when there is a series to apply it to.
        if range.is_empty() {
            return Ok(Vec::new());
        }
        return Err(QueryError::Execution(format!("unsupported function {name}")));
    };
    let params = RangeParams {
        quantile,
        smoothing,
        trend,
        horizon,
    };
    let keeps_name = function.keeps_metric_name();
    let bounds = range.bounds();
    let mut out = Vec::with_capacity(range.series_count());
    let mut scratch: Vec<f64> = Vec::new();
    range.for_each_window(|labels, points| {
        if let Some(v) = range_value(function, bounds, points, t, &params, &mut scratch) {
            out.push(EvalSample {
                labels: if keeps_name {
                    labels.clone()
                } else {
                    labels.without_metric_name()
                },
                t,
                v,
            });
        }
    });
    // Series of one selector that stay distinct without their names cannot collide.
    if keeps_name || !range.unique_without_name() {
        check_unique(&out)?;
    }
    Ok(out)
}

/// Prometheus' `extrapolatedRate` (rate, increase, delta).
fn extrapolated_rate(
    bounds: WindowBounds,
    points: &[(i64, f64)],
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let range_start = bounds.end - bounds.range_ms;
    let range_end = bounds.end;
    let (first_t, first_v) = points[0];
    let (last_t, last_v) = points[points.len() - 1];
    let mut result = last_v - first_v;
    if counter {
        let mut last = 0.0;
        for &(_, v) in points {
            if v < last {
                result += last;
            }
            last = v;
        }
    }
    let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
    let duration_to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_between = sampled_interval / (points.len() - 1) as f64;
    if counter && result > 0.0 && first_v >= 0.0 {
        let duration_to_zero = sampled_interval * (first_v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = average_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    extrapolate_to += if duration_to_start < threshold {
        duration_to_start
    } else {
        average_between / 2.0
    };
    extrapolate_to += if duration_to_end < threshold {
        duration_to_end
    } else {
        average_between / 2.0
    };
    // One factor, then one multiplication, in Prometheus' order: the last digit depends on it.
    let mut factor = extrapolate_to / sampled_interval;
    if per_second {
        factor /= bounds.range_ms as f64 / 1000.0;
    }
    result *= factor;
    Some(result)
}

/// `irate` / `idelta`: the last two samples.
fn instant_delta(points: &[(i64, f64)], rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (last_t, last_v) = points[points.len() - 1];
    let (previous_t, previous_v) = points[points.len() - 2];
    let result = if rate && last_v < previous_v {
        last_v
    } else {
        last_v - previous_v
    };
    let interval = last_t - previous_t;
    if interval == 0 {
        return None;
    }
    if rate {
        Some(result / (interval as f64 / 1000.0))
    } else {
        Some(result)
    }
}

/// Kahan-compensated running sum.
fn kahan_add(value: f64, sum: f64, compensation: f64) -> (f64, f64) {
    let total = sum + value;
    let compensation = if total.is_infinite() {
        0.0
    } else if sum.abs() >= value.abs() {
        compensation + ((sum - total) + value)
    } else {
        compensation + ((value - total) + sum)
    };
    (total, compensation)
}

/// Least-squares slope and intercept, times relative to `intercept_time` in seconds.
fn linear_regression(points: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = points[0].1;
    let mut constant_y = true;
    for (index, &(ts, v)) in points.iter().enumerate() {
        if constant_y && index > 0 && v != init_y {
            constant_y = false;
        }
        n += 1.0;
        let x = (ts - intercept_time) as f64 / 1e3;
        (sum_x, c_x) = kahan_add(x, sum_x, c_x);
        (sum_y, c_y) = kahan_add(v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_add(x * v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_add(x * x, sum_x2, c_x2);
    }
    if constant_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn holt_winters(points: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let mut s0 = 0.0;
    let mut s1 = points[0].1;
    let mut b = points[1].1 - points[0].1;
    for (index, point) in points.iter().enumerate().skip(1) {
        let x = sf * point.1;
        if index > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

fn changes(points: &[(i64, f64)]) -> f64 {
    let mut changes = 0.0;
    for pair in points.windows(2) {
        let (previous, current) = (pair[0].1, pair[1].1);
        if !(current == previous || (current.is_nan() && previous.is_nan())) {
            changes += 1.0;
        }
    }
    changes
}

fn resets(points: &[(i64, f64)]) -> f64 {
    points.windows(2).filter(|pair| pair[1].1 < pair[0].1).count() as f64
}

/// Prometheus' incremental mean, robust to overflow and infinities.
fn avg(values: impl Iterator<Item = f64>) -> f64 {
    let mut mean = 0.0f64;
    let mut count = 0.0;
    for v in values {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        mean += v / count - mean / count;
    }
    mean
}

fn fold_min_max(points: &[(i64, f64)], max: bool) -> f64 {
    let mut result = points[0].1;
    for &(_, v) in points {
        let better = if max { v > result } else { v < result };
        if better || result.is_nan() {
            result = v;
        }
    }
    result
}

fn stdvar_over_time(points: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in points {
        count += 1.0;
        let delta = v - (mean + c_mean);
        (mean, c_mean) = kahan_add(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_add(delta * (v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Prometheus' `quantile`: linear interpolation between ranks.
fn quantile_of(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(go_float_order);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn histogram_quantile(q: f64, samples: Vec<EvalSample>, t: i64) -> Result<Vec<EvalSample>, QueryError> {
    let mut groups: Vec<(SharedLabels, Vec<(f64, f64)>)> = Vec::new();
    let mut index: FastMap<Labels, usize> = FastMap::default();
    for sample in samples {
        let Some(bound) = sample.labels.get("le").and_then(parse_go_float) else {
            continue;
        };
        let key = sample.labels.filtered(|label| label.name != "le");
        let position = match index.get(&key) {
            Some(&position) => position,
            None => {
                let labels = SharedLabels::new(key.without_metric_name());
                index.insert(key, groups.len());
                groups.push((labels, Vec::new()));
                groups.len() - 1
            }
        };
        groups[position].1.push((bound, sample.v));
    }
    let out: Vec<EvalSample> = groups
        .into_iter()
        .filter(|(_, buckets)| !buckets.is_empty())
        .map(|(labels, mut buckets)| EvalSample {
            labels,
            t,
            v: bucket_quantile(q, &mut buckets),
        })
        .collect();
    check_unique(&out)?;
    Ok(out)
}

/// A bucket bound as Go's `strconv.ParseFloat` reads it.
fn parse_go_float(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

/// Prometheus' `bucketQuantile` for classic histograms.
fn bucket_quantile(q: f64, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| go_float_order(&a.0, &b.0));
    if buckets.last().is_none_or(|last| last.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce buckets with the same bound.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(bound, count) in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == bound => last.1 += count,
            _ => merged.push((bound, count)),
        }
    }
    // Ensure monotonic counts.
    let mut max = f64::NEG_INFINITY;
    for bucket in &mut merged {
        if bucket.1 > max {
            max = bucket.1;
        } else if bucket.1 < max {
            bucket.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|bucket| bucket.1 < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let mut bucket_start = 0.0;
    let bucket_end = merged[b].0;
    let mut count = merged[b].1;
    if b > 0 {
        bucket_start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// One group of an aggregation.
struct Group {
    labels: SharedLabels,
    value: f64,
    mean: f64,
    count: f64,
    /// The values, for `quantile` only.
    values: Vec<f64>,
    heap: Vec<EvalSample>,
}

/// How an aggregation node's input samples fall into groups, kept from step to step.
#[derive(Default)]
pub(crate) struct GroupingMemo {
    /// Each input label set's group labels.
    group_labels: LabelMemo,
    /// The last grouped step's input label sets in order, each one's group position (groups
    /// numbered in order of first appearance), and each group's labels. A step whose inputs
    /// are the same label sets in the same order (a selector's series at consecutive steps
    /// usually are) reuses them without hashing anything.
    inputs: Vec<SharedLabels>,
    positions: Vec<usize>,
    groups: Vec<SharedLabels>,
}

impl GroupingMemo {
    /// Each sample's group position, and each group's labels.
    fn assign(
        &mut self,
        samples: &[EvalSample],
        modifier: &Option<LabelModifier>,
    ) -> (&[usize], &[SharedLabels]) {
        let unchanged = self.inputs.len() == samples.len()
            && samples
                .iter()
                .zip(&self.inputs)
                .all(|(sample, previous)| sample.labels.same_set(previous));
        if !unchanged {
            self.inputs.clear();
            self.positions.clear();
            self.groups.clear();
            let mut index: FastMap<SharedLabels, usize> = FastMap::default();
            for sample in samples {
                let key = self
                    .group_labels
                    .get_or_derive(&sample.labels, |labels| grouping_labels(labels, modifier));
                let position = match index.get(&key) {
                    Some(&position) => position,
                    None => {
                        index.insert(key.clone(), self.groups.len());
                        self.groups.push(key);
                        self.groups.len() - 1
                    }
                };
                self.inputs.push(sample.labels.clone());
                self.positions.push(position);
            }
        }
        (&self.positions, &self.groups)
    }
}

/// `count_values`' groups: the grouping labels plus the value's label, so they depend on the
/// step's values and are not kept.
fn count_values_groups(
    samples: &[EvalSample],
    modifier: &Option<LabelModifier>,
    value_label: &str,
    group_labels: &mut LabelMemo,
) -> Result<(Vec<usize>, Vec<SharedLabels>), QueryError> {
    let mut index: FastMap<SharedLabels, usize> = FastMap::default();
    let mut positions = Vec::with_capacity(samples.len());
    let mut groups = Vec::new();
    for sample in samples {
        let grouping = group_labels.get_or_derive(&sample.labels, |labels| grouping_labels(labels, modifier));
        let key = SharedLabels::new(
            grouping
                .with_label(value_label, &format_count_value(sample.v))
                .map_err(|err| QueryError::Execution(err.to_string()))?,
        );
        let position = match index.get(&key) {
            Some(&position) => position,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(key);
                groups.len() - 1
            }
        };
        positions.push(position);
    }
    Ok((positions, groups))
}

/// Evaluates an aggregation over `samples` at `t`. `grouping` keeps the node's grouping across
/// the steps of the query.
pub(crate) fn aggregate(
    op: TokenId,
    modifier: &Option<LabelModifier>,
    param: Param,
    samples: Vec<EvalSample>,
    t: i64,
    grouping: &mut GroupingMemo,
) -> Result<Vec<EvalSample>, QueryError> {
    let mut k = 0usize;
    let mut q = 0.0;
    let mut value_label = String::new();
    match (op, &param) {
        (token::T_TOPK | token::T_BOTTOMK, Param::Number(n)) => {
            if !(*n >= i64::MIN as f64 && *n <= i64::MAX as f64) {
                return Err(QueryError::Execution(format!("Scalar value {n} overflows int64")));
            }
            let truncated = n.trunc() as i64;
            if truncated < 1 {
                return Ok(Vec::new());
            }
            k = truncated as usize;
        }
        (token::T_QUANTILE, Param::Number(n)) => q = *n,
        (token::T_COUNT_VALUES, Param::Label(label)) => {
            if !obs_core::series::is_valid_label_name(label) {
                return Err(QueryError::Execution(format!("invalid label name {label:?}")));
            }
            value_label = label.clone();
        }
        _ => {}
    }
    let counted_values;
    let (positions, group_labels) = if op == token::T_COUNT_VALUES {
        counted_values = count_values_groups(&samples, modifier, &value_label, &mut grouping.group_labels)?;
        (counted_values.0.as_slice(), counted_values.1.as_slice())
    } else {
        grouping.assign(&samples, modifier)
    };
    let stddev = matches!(op, token::T_STDDEV | token::T_STDVAR);
    let topk = matches!(op, token::T_TOPK | token::T_BOTTOMK);
    let mut groups: Vec<Group> = Vec::with_capacity(group_labels.len());
    for (sample, &position) in samples.into_iter().zip(positions) {
        debug_assert!(
            position <= groups.len(),
            "groups are numbered in order of first appearance"
        );
        if position == groups.len() {
            groups.push(Group {
                labels: group_labels[position].clone(),
                value: if stddev { 0.0 } else { sample.v },
                mean: sample.v,
                count: 1.0,
                values: if op == token::T_QUANTILE {
                    vec![sample.v]
                } else {
                    Vec::new()
                },
                heap: if topk { vec![sample] } else { vec![] },
            });
            continue;
        }
        let group = &mut groups[position];
        match op {
            token::T_SUM => group.value += sample.v,
            token::T_AVG => {
                group.count += 1.0;
                if group.mean.is_infinite() {
                    if sample.v.is_infinite() && (group.mean > 0.0) == (sample.v > 0.0) {
                        continue;
                    }
                    if !sample.v.is_infinite() && !sample.v.is_nan() {
                        continue;
                    }
                }
                group.mean += sample.v / group.count - group.mean / group.count;
            }
            token::T_GROUP => {}
            token::T_COUNT | token::T_COUNT_VALUES => group.count += 1.0,
            token::T_MAX if group.value < sample.v || group.value.is_nan() => group.value = sample.v,
            token::T_MIN if group.value > sample.v || group.value.is_nan() => group.value = sample.v,
            token::T_STDDEV | token::T_STDVAR => {
                group.count += 1.0;
                let delta = sample.v - group.mean;
                group.mean += delta / group.count;
                group.value += delta * (sample.v - group.mean);
            }
            token::T_TOPK | token::T_BOTTOMK => push_bounded(&mut group.heap, sample, k, op == token::T_TOPK),
            token::T_QUANTILE => group.values.push(sample.v),
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for mut group in groups {
        let value = match op {
            token::T_SUM | token::T_MAX | token::T_MIN => group.value,
            token::T_AVG => group.mean,
            token::T_GROUP => 1.0,
            token::T_COUNT | token::T_COUNT_VALUES => group.count,
            token::T_STDDEV | token::T_STDVAR => {
                let variance = group.value / group.count;
                if op == token::T_STDDEV {
                    variance.sqrt()
                } else {
                    variance
                }
            }
            token::T_QUANTILE => quantile_of(q, &mut group.values),
            token::T_TOPK | token::T_BOTTOMK => {
                let topk = op == token::T_TOPK;
                sort_heap_output(&mut group.heap, topk);
                for mut sample in group.heap {
                    sample.t = t;
                    out.push(sample);
                }
                continue;
            }
            other => {
                return Err(QueryError::Execution(format!(
                    "unsupported aggregation {}",
                    promql_parser::parser::token::TokenType::new(other)
                )));
            }
        };
        out.push(EvalSample {
            labels: group.labels,
            t,
            v: value,
        });
    }
    Ok(out)
}

/// The output label set of a sample's group.
fn grouping_labels(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        Some(LabelModifier::Include(by)) => {
            labels.filtered(|label| by.labels.iter().any(|name| label.name == *name))
        }
        Some(LabelModifier::Exclude(without)) => labels.filtered(|label| {
            label.name != METRIC_NAME_LABEL && !without.labels.iter().any(|name| label.name == *name)
        }),
        None => Labels::default(),
    }
}

/// `count_values`' label value: Go's `strconv.FormatFloat(v, 'f', -1, 64)`.
fn format_count_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

/// Whether `a` ranks below `b` for topk (NaN lowest); for bottomk the order is reversed (NaN
/// still lowest priority).
fn worse(a: f64, b: f64, topk: bool) -> bool {
    if topk {
        a < b || (a.is_nan() && !b.is_nan())
    } else {
        a > b || (a.is_nan() && !b.is_nan())
    }
}

/// Keeps the `k` best samples.
fn push_bounded(kept: &mut Vec<EvalSample>, sample: EvalSample, k: usize, topk: bool) {
    if kept.len() < k {
        kept.push(sample);
        return;
    }
    // The worst kept sample is replaced when the new one is better.
    let mut worst = 0;
    for index in 1..kept.len() {
        if worse(kept[index].v, kept[worst].v, topk) {
            worst = index;
        }
    }
    if worse(kept[worst].v, sample.v, topk) {
        kept[worst] = sample;
    }
}

/// topk output: descending (bottomk ascending), NaN last.
fn sort_heap_output(samples: &mut [EvalSample], topk: bool) {
    samples.sort_by(|a, b| {
        if worse(a.v, b.v, topk) {
            std::cmp::Ordering::Greater
        } else if worse(b.v, a.v, topk) {
            std::cmp::Ordering::Less
        } else {
            std::cmp::Ordering::Equal
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_matches_go() {
        // 2024-02-29T13:45:00Z, a Thursday.
        let t = 1_709_214_300.0;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("hour", t), 13.0);
        assert_eq!(date_part("minute", t), 45.0);
        assert_eq!(date_part("year", -1.0), 1969.0);
        // Go turns NaN into the smallest int64 and wraps (Prometheus 2.42's answer).
        assert_eq!(date_part("year", f64::NAN), 292_277_026_596.0);
        assert_eq!(date_part("month", -2.5e-7), 1.0);
    }

    #[test]
    fn quantiles_interpolate() {
        assert_eq!(quantile_of(0.5, &mut [1.0, 3.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile_of(2.0, &mut [1.0]), f64::INFINITY);
        let mut buckets = vec![(0.1, 1.0), (0.5, 3.0), (f64::INFINITY, 4.0)];
        assert!((bucket_quantile(0.5, &mut buckets) - 0.3).abs() < 1e-12);
    }
}
