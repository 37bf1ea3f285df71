//! The query side of Prometheus' HTTP API, as Grafana's Prometheus datasource calls it:
//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values`, `/api/v1/query_exemplars`, `/api/v1/format_query`.
//!
//! Parameters come from the URL and, for POST, from a form body (body values first, as Go's
//! `Request.FormValue` reads them). Times are Unix seconds (decimals allowed) or RFC 3339;
//! durations are seconds or Prometheus durations. Error messages and types are Prometheus'
//! (`invalid parameter "time": cannot parse "x" to a valid timestamp`, …).
//!
//! Queries run on the blocking pool, at most `max_concurrency` at once (others wait for a
//! slot, within their timeout); a client that goes away cancels its query.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use obs_core::error::ErrorKind;
use obs_core::series::{Labels, Matcher, MetricsQuerier};
use obs_core::time::TimestampMs;
use obs_promql::{Engine, QueryControl, QueryError, json};

use super::success;
use crate::AppState;
use crate::error::{ApiError, ApiFamily};

/// Request parameters: the form body's first, then the URL's.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Params, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if *method == Method::POST && is_form {
            pairs.extend(
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
                    .map_err(|err| bad_data(format!("error parsing form values: {err}")))?,
            );
        }
        if let Some(query) = uri.query() {
            pairs.extend(
                serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                    .map_err(|err| bad_data(format!("error parsing form values: {err}")))?,
            );
        }
        Ok(Params(pairs))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

fn bad_data(message: impl Into<String>) -> ApiError {
    ApiError::new(ApiFamily::Prometheus, ErrorKind::BadInput, message)
}

fn invalid_param(name: &str, message: impl std::fmt::Display) -> ApiError {
    bad_data(format!("invalid parameter {name:?}: {message}"))
}

/// The longest query whose position search is attempted (it parses every prefix).
const MAX_POSITIONED_QUERY: usize = 2048;

/// A parse error as Prometheus words it, `<line>:<column>: parse error: <message>`. The parser
/// does not report positions, so the position is estimated: the first token after the longest
/// prefix that parses on its own (or the end of the input).
fn parse_error(query: &str, err: &obs_promql::QueryError) -> String {
    let message = err.to_string();
    if query.len() > MAX_POSITIONED_QUERY {
        return format!("parse error: {message}");
    }
    let mut last_ok = 0;
    for (index, _) in query.char_indices().skip(1) {
        if obs_promql::parse(&query[..index]).is_ok() {
            last_ok = index;
        }
    }
    let rest = &query[last_ok..];
    let offset = last_ok + (rest.len() - rest.trim_start().len());
    let before = &query[..offset.min(query.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |text| text.chars().count()) + 1;
    format!("{line}:{column}: parse error: {message}")
}

/// Prometheus' `parseTime`: Unix seconds with decimals, or RFC 3339.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        let whole = seconds.trunc();
        let millis = ((seconds - whole) * 1000.0).round();
        return Ok(whole as i64 * 1000 + millis as i64);
    }
    match text {
        // Prometheus' own boundary times (its minTime / maxTime, formatted).
        "-292273086-05-16T16:47:06Z" => return Ok(i64::MIN / 1_000_000 * 1000),
        "292277025-08-18T07:12:54.999999999Z" => return Ok(i64::MAX / 1_000_000 * 1000),
        _ => {}
    }
    parse_rfc3339(text).ok_or_else(|| format!("cannot parse {text:?} to a valid timestamp"))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` to milliseconds.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours: i64 = rest[1..3].parse().ok()?;
            let minutes: i64 = rest[4..6].parse().ok()?;
            sign * (hours * 60 + minutes)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// Prometheus' `parseDuration`: seconds with decimals, or a Prometheus duration; milliseconds.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        let millis = seconds * 1000.0;
        if !millis.is_finite() || millis.abs() > 9.2e18 / 1e6 {
            return Err(format!(
                "cannot parse {text:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok(millis as i64);
    }
    text.parse::<obs_core::units::PromDuration>()
        .map(|duration| duration.as_std().as_millis() as i64)
        .map_err(|_| format!("cannot parse {text:?} to a valid duration"))
}

fn time_param(params: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(default),
        Some(text) => parse_time(text).map_err(|err| invalid_param(name, err)),
    }
}

/// Sets the flag when dropped: a request future dropped because its client went away
/// cancels the query it waits for.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn engine(state: &AppState) -> Result<Engine, ApiError> {
    let store = state.metrics().ok_or_else(|| {
        ApiError::new(
            ApiFamily::Prometheus,
            ErrorKind::Unavailable,
            "starting up: the metrics store is replaying its write-ahead log",
        )
    })?;
    let querier: Arc<dyn MetricsQuerier> = Arc::clone(store) as Arc<dyn MetricsQuerier>;
    Ok(Engine::new(querier, state.query_options()))
}

fn query_error(err: &QueryError) -> ApiError {
    ApiError::from_error(ApiFamily::Prometheus, err)
}

/// Runs `work` on the blocking pool in a query slot, cancelling it if the client goes away.
async fn run_query<T: Send + 'static>(
    state: &AppState,
    control: QueryControl,
    work: impl FnOnce(&QueryControl) -> Result<T, QueryError> + Send + 'static,
) -> Result<T, ApiError> {
    let canceled = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(Arc::clone(&canceled));
    let timeout = control.timeout.unwrap_or(state.query_options().timeout);
    let slot = tokio::time::timeout(timeout, state.query_slots().acquire_owned())
        .await
        .map_err(|_| query_error(&QueryError::Timeout("queue")))?
        .map_err(|_| query_error(&QueryError::Canceled("queue")))?;
    let control = QueryControl {
        canceled: Some(canceled),
        ..control
    };
    let task = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work(&control)
    });
    match task.await {
        Ok(result) => result.map_err(|err| query_error(&err)),
        Err(err) => {
            tracing::error!(error = %err, "a query panicked");
            Err(ApiError::new(
                ApiFamily::Prometheus,
                ErrorKind::Internal,
                "the query failed unexpectedly",
            ))
        }
    }
}

fn control_from(params: &Params) -> Result<QueryControl, ApiError> {
    let mut control = QueryControl::default();
    if let Some(text) = params.get("timeout").filter(|text| !text.is_empty()) {
        let millis = parse_duration(text).map_err(|err| invalid_param("timeout", err))?;
        control.timeout = Some(std::time::Duration::from_millis(millis.max(0) as u64));
    }
    if let Some(text) = params.get("lookback_delta").filter(|text| !text.is_empty()) {
        let millis = parse_duration(text).map_err(|err| invalid_param("lookback_delta", err))?;
        control.lookback_delta_ms = Some(millis);
    }
    Ok(control)
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(crate) async fn instant_query(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match instant_query_inner(&state, &method, &uri, &headers, &body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn instant_query_inner(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let params = Params::parse(method, uri, headers, body)?;
    let time = time_param(&params, "time", TimestampMs::now().0)?;
    let control = control_from(&params)?;
    let query = params.get("query").unwrap_or_default().to_owned();
    // Prometheus' range endpoint reports parse errors without the parameter prefix.
    obs_promql::parse(&query).map_err(|err| invalid_param("query", parse_error(&query, &err)))?;
    let engine = engine(state)?;
    let value = run_query(state, control, move |control| {
        engine.instant_with(&query, time, control)
    })
    .await?;
    Ok(json_response(json::success_body(&value)))
}

pub(crate) async fn range_query(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match range_query_inner(&state, &method, &uri, &headers, &body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn range_query_inner(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let params = Params::parse(method, uri, headers, body)?;
    let start =
        parse_time(params.get("start").unwrap_or_default()).map_err(|err| invalid_param("start", err))?;
    let end = parse_time(params.get("end").unwrap_or_default()).map_err(|err| invalid_param("end", err))?;
    if end < start {
        return Err(bad_data("end timestamp must not be before start time"));
    }
    let step =
        parse_duration(params.get("step").unwrap_or_default()).map_err(|err| invalid_param("step", err))?;
    if step <= 0 {
        return Err(bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > state.query_options().max_points_per_series {
        return Err(bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let control = control_from(&params)?;
    let query = params.get("query").unwrap_or_default().to_owned();
    // Prometheus' range endpoint reports parse errors without the parameter prefix.
    obs_promql::parse(&query).map_err(|err| bad_data(parse_error(&query, &err)))?;
    let engine = engine(state)?;
    let value = run_query(state, control, move |control| {
        engine.range_with(&query, start, end, step, control)
    })
    .await?;
    Ok(json_response(json::success_body(&value)))
}

/// The union of the `match[]` selectors' matcher sets (none: every series).
fn match_sets(params: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    params
        .all("match[]")
        .into_iter()
        .map(|text| obs_promql::selector_matchers(text).map_err(|err| invalid_param("match[]", err)))
        .collect()
}

/// `start` / `end` of the metadata endpoints: the whole store when absent.
fn metadata_range(params: &Params) -> Result<(i64, i64), ApiError> {
    let start = time_param(params, "start", i64::MIN / 2)?;
    let end = time_param(params, "end", i64::MAX / 2)?;
    Ok((start, end))
}

fn limit_param(params: &Params) -> Result<Option<usize>, ApiError> {
    match params.get("limit") {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(limit) if limit < 0 => Err(bad_data("limit must be positive")),
            Ok(0) => Ok(None),
            Ok(limit) => Ok(Some(limit as usize)),
            Err(_) => Err(invalid_param(
                "limit",
                format!("cannot parse {text:?} to a valid limit"),
            )),
        },
    }
}

fn store(state: &AppState) -> Result<Arc<obs_metrics::store::MetricsStore>, ApiError> {
    state.metrics().cloned().ok_or_else(|| {
        ApiError::new(
            ApiFamily::Prometheus,
            ErrorKind::Unavailable,
            "starting up: the metrics store is replaying its write-ahead log",
        )
    })
}

pub(crate) async fn series(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = Params::parse(&method, &uri, &headers, &body)?;
        let sets = match_sets(&params)?;
        if sets.is_empty() {
            return Err(bad_data("no match[] parameter provided"));
        }
        let (start, end) = metadata_range(&params)?;
        let limit = limit_param(&params)?;
        let store = store(&state)?;
        let found = run_query(&state, QueryControl::default(), move |_| {
            let mut all: Vec<Labels> = Vec::new();
            for matchers in &sets {
                all.extend(store.series(matchers, start, end)?);
            }
            all.sort();
            all.dedup();
            Ok(all)
        })
        .await?;
        let mut out = String::from("{\"status\":\"success\",\"data\":[");
        for (index, labels) in found.iter().take(limit.unwrap_or(usize::MAX)).enumerate() {
            if index > 0 {
                out.push(',');
            }
            json::write_labels(labels, &mut out);
        }
        out.push_str("]}");
        Ok(json_response(out))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// What a label listing reads: every label name, or the values of one label.
#[derive(Clone)]
enum Listing {
    Names,
    Values(String),
}

/// `/api/v1/labels` and `/api/v1/label/<name>/values`: the union over the `match[]` sets (all
/// series without one), sorted, unique, cut at `limit`.
async fn list_labels(state: &AppState, listing: Listing, params: &Params) -> Result<Response, ApiError> {
    let sets = match_sets(params)?;
    let (start, end) = metadata_range(params)?;
    let limit = limit_param(params)?;
    let store = store(state)?;
    let mut found = run_query(state, QueryControl::default(), move |_| {
        let read = |matchers: &[Matcher]| match &listing {
            Listing::Names => store.label_names(matchers, start, end),
            Listing::Values(name) => store.label_values(name, matchers, start, end),
        };
        let mut found: Vec<String> = Vec::new();
        if sets.is_empty() {
            found = read(&[])?;
        }
        for matchers in &sets {
            found.extend(read(matchers)?);
        }
        found.sort();
        found.dedup();
        Ok(found)
    })
    .await?;
    if let Some(limit) = limit {
        found.truncate(limit);
    }
    Ok(success(found))
}

pub(crate) async fn label_names(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = match Params::parse(&method, &uri, &headers, &body) {
        Ok(params) => list_labels(&state, Listing::Names, &params).await,
        Err(err) => Err(err),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !obs_core::series::is_valid_label_name(&name) {
        return bad_data(format!("invalid label name: {name:?}")).into_response();
    }
    let result = match Params::parse(&method, &uri, &headers, &body) {
        Ok(params) => list_labels(&state, Listing::Values(name), &params).await,
        Err(err) => Err(err),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Exemplars are not stored: a valid query gets an empty success (Grafana reads that as
/// "exemplars supported, none here").
pub(crate) async fn query_exemplars(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let result = (|| {
        let params = Params::parse(&method, &uri, &headers, &body)?;
        let query = params.get("query").unwrap_or_default();
        obs_promql::parse(query).map_err(|err| invalid_param("query", err))?;
        let start = time_param(&params, "start", i64::MIN / 2)?;
        let end = time_param(&params, "end", i64::MAX / 2)?;
        if end < start {
            return Err(bad_data("end timestamp must not be before start time"));
        }
        Ok(success(Vec::<()>::new()))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn format_query(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let result = (|| {
        let params = Params::parse(&method, &uri, &headers, &body)?;
        let query = params.get("query").unwrap_or_default();
        let formatted = obs_promql::format_query(query).map_err(|err| invalid_param("query", err))?;
        Ok(success(formatted))
    })();
    result.unwrap_or_else(|err: ApiError| err.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_carry_a_position() {
        let error = |query: &str| parse_error(query, &obs_promql::parse(query).unwrap_err());
        assert!(
            error("foo bar").starts_with("1:5: parse error: "),
            "{}",
            error("foo bar")
        );
        assert!(
            error("sum(rate(x[5m])").starts_with("1:"),
            "{}",
            error("sum(rate(x[5m])")
        );
        // The estimate points at the operator whose operand is missing (Prometheus points at
        // the `*` on line 2).
        assert!(
            error("up +\n  * 2").starts_with("1:4: parse error: "),
            "{}",
            error("up +\n  * 2")
        );
        assert!(
            error("up\n  + bar baz").starts_with("2:9: parse error: "),
            "{}",
            error("up\n  + bar baz")
        );
        assert!(error("1 +").starts_with("1:3: parse error: "), "{}", error("1 +"));
    }

    #[test]
    fn times_parse_like_prometheus() {
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(parse_time("1435781451"), Ok(1_435_781_451_000));
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z"), Ok(1_435_781_451_781));
        assert_eq!(parse_time("2015-07-01T22:10:51+02:00"), Ok(1_435_781_451_000));
        assert!(
            parse_time("yesterday")
                .unwrap_err()
                .contains("cannot parse \"yesterday\" to a valid timestamp")
        );
        assert_eq!(parse_duration("15"), Ok(15_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert!(parse_duration("x").is_err());
    }
}
