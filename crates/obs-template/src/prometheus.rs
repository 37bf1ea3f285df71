//! Prometheus' template functions and alert-rule expansion (`template/template.go` and
//! `rules/alerting.go` in prometheus/prometheus), ported for identical output.
//!
//! Alert-rule `labels` and `annotations` are expanded with `missingkey=zero` over a struct of
//! `Labels`, `ExternalLabels`, `ExternalURL` and `Value`, after prepending
//! `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`
//! (so columns in error messages on line 1 count that prefix, as in Prometheus).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::TemplateError;
use crate::funcs::{ArgType, Functions, url_query_escape};
use crate::gofmt::format_float;
use crate::gotime::{GoDuration, GoTime, GoTimePointer};
use crate::template::{MissingKey, Template};
use crate::value::{Object, Record, Value};

/// What Prometheus prepends to every alert label and annotation template.
pub const ALERT_TEMPLATE_PREFIX: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// The Go type of the alert data, for error messages.
const ALERT_DATA_TYPE: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }";

const SAMPLE_TYPE: &str = "*template.sample";
const QUERY_RESULT_TYPE: &str = "template.queryResult";

/// One sample of an instant-query result, as the `query` function returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series' labels, `__name__` included.
    pub labels: BTreeMap<String, String>,
    /// The sample value.
    pub value: f64,
}

/// Runs an instant PromQL query for the `query` template function.
pub type QueryFn = Arc<dyn Fn(&str) -> Result<Vec<Sample>, String> + Send + Sync>;

/// What Prometheus' template functions need from their surroundings.
#[derive(Clone, Default)]
pub struct PrometheusContext {
    /// `--web.external-url`, for `externalURL` and `pathPrefix`.
    pub external_url: String,
    /// The evaluation time, in milliseconds since the epoch, for `now`.
    pub timestamp_ms: i64,
    /// Runs `query "…"`; without one, `query` fails with an error.
    pub query: Option<QueryFn>,
}

impl fmt::Debug for PrometheusContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusContext")
            .field("external_url", &self.external_url)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("query", &self.query.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

/// A query-result sample: a struct with `Labels` and `Value`.
#[derive(Debug, Clone)]
struct SampleObject {
    labels: Value,
    value: f64,
}

impl Object for SampleObject {
    fn type_name(&self) -> &str {
        SAMPLE_TYPE
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Labels" => Some(self.labels.clone()),
            "Value" => Some(Value::Float(self.value)),
            _ => None,
        }
    }

    fn display(&self) -> String {
        format!(
            "&{{{} {}}}",
            crate::gofmt::format_v(&self.labels),
            crate::gofmt::format_v(&Value::Float(self.value))
        )
    }
}

/// A query result: a list of samples with its own Go type.
#[derive(Debug, Clone)]
struct QueryResult {
    samples: Value,
}

impl Object for QueryResult {
    fn type_name(&self) -> &str {
        QUERY_RESULT_TYPE
    }

    fn underlying(&self) -> Option<&Value> {
        Some(&self.samples)
    }

    fn display(&self) -> String {
        crate::gofmt::format_v(&self.samples)
    }
}

fn query_result(samples: Vec<Value>) -> Value {
    Value::object(QueryResult {
        samples: Value::List(samples),
    })
}

fn samples_of(value: &Value) -> Vec<Value> {
    match value.plain() {
        Value::List(samples) => samples.clone(),
        _ => Vec::new(),
    }
}

fn sample_field(sample: &Value, name: &str) -> Result<Value, String> {
    match sample {
        Value::Object(object) => object
            .field(name)
            .ok_or_else(|| format!("can't evaluate field {name}")),
        _ => Err("runtime error: invalid memory address or nil pointer dereference".to_owned()),
    }
}

fn sample_label(sample: &Value, label: &str) -> Result<String, String> {
    match sample_field(sample, "Labels")? {
        Value::StringMap(labels) => Ok(labels.get(label).cloned().unwrap_or_default()),
        _ => Ok(String::new()),
    }
}

/// `strconv.ParseFloat(s, 64)` with Go's error messages.
fn parse_go_float(s: &str) -> Result<f64, String> {
    let invalid = || {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            crate::gofmt::quote(s)
        )
    };
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    let is_special = matches!(unsigned, "inf" | "infinity" | "nan");
    if lower.starts_with(['+', '-']) && unsigned == "nan" {
        return Err(invalid());
    }
    if !is_special
        && !s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return Err(invalid());
    }
    let value: f64 = s.parse().map_err(|_| invalid())?;
    if value.is_infinite() && !is_special {
        return Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            crate::gofmt::quote(s)
        ));
    }
    Ok(value)
}

/// Prometheus' `ConvertToFloat`: float64, string, integers and durations.
fn convert_to_float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Float(x) => Ok(*x),
        Value::String(s) => parse_go_float(s),
        Value::Int(i) => Ok(*i as f64),
        Value::Object(object) if object.type_name() == "*time.Duration" => {
            match object.method("Seconds", &[]) {
                Some(Ok(Value::Float(seconds))) => Ok(seconds),
                _ => Err(format!("can't convert {} to float", object.type_name())),
            }
        }
        other => Err(format!("can't convert {} to float", other.type_name())),
    }
}

fn g4(value: f64) -> String {
    format_float(value, 'g', Some(4))
}

fn humanize(value: f64) -> String {
    if value == 0.0 || value.is_nan() || value.is_infinite() {
        return g4(value);
    }
    let mut v = value;
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
        return format!("{}{prefix}", g4(v));
    }
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}", g4(v))
}

fn humanize_1024(value: f64) -> String {
    if value.abs() <= 1.0 || value.is_nan() || value.is_infinite() {
        return g4(value);
    }
    let mut v = value;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

fn humanize_duration(value: f64) -> String {
    if value.is_nan() || value.is_infinite() {
        return g4(value);
    }
    if value == 0.0 {
        return format!("{}s", g4(value));
    }
    if value.abs() >= 1.0 {
        let sign = if value < 0.0 { "-" } else { "" };
        let v = value.abs();
        let duration = crate::gofmt::go_float_to_int64(v);
        let seconds = duration % 60;
        let minutes = (duration / 60) % 60;
        let hours = (duration / 60 / 60) % 24;
        let days = duration / 60 / 60 / 24;
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", g4(v));
    }
    let mut v = value;
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Prometheus' `FloatToTime`: `None` for NaN and infinities, an error past int64 nanoseconds,
/// else the time truncated to milliseconds (Prometheus' `model.Time`).
fn float_to_time(value: f64) -> Result<Option<GoTime>, String> {
    if value.is_nan() || value.is_infinite() {
        return Ok(None);
    }
    let nanos = value * 1e9;
    if nanos > i64::MAX as f64 || nanos < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            crate::gofmt::format_v(&Value::Float(value))
        ));
    }
    let millis = crate::gofmt::go_float_to_int64(nanos) / 1_000_000;
    Ok(Some(GoTime::from_unix_nanos(i128::from(millis) * 1_000_000)))
}

/// Go's `net.SplitHostPort`: `None` where Go returns an error.
fn split_host_port(host_port: &str) -> Option<(&str, &str)> {
    let last_colon = host_port.rfind(':')?;
    let (host, inner_start, inner_end);
    if host_port.starts_with('[') {
        let end = host_port.find(']')?;
        if end + 1 == host_port.len() || end + 1 != last_colon {
            return None;
        }
        host = &host_port[1..end];
        inner_start = 1;
        inner_end = end + 1;
    } else {
        host = &host_port[..last_colon];
        if host.contains(':') {
            return None;
        }
        inner_start = 0;
        inner_end = 0;
    }
    if host_port[inner_start..].contains('[') || host_port[inner_end..].contains(']') {
        return None;
    }
    Some((host, &host_port[last_colon + 1..]))
}

fn strip_port(host_port: &str) -> String {
    match split_host_port(host_port) {
        Some((host, _)) => host.to_owned(),
        None => host_port.to_owned(),
    }
}

fn strip_domain(host_port: &str) -> String {
    let (host, port) = split_host_port(host_port).unwrap_or((host_port, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return host_port.to_owned();
    }
    let short = host.split('.').next().unwrap_or_default();
    if port.is_empty() {
        return short.to_owned();
    }
    if short.contains(':') {
        format!("[{short}]:{port}")
    } else {
        format!("{short}:{port}")
    }
}

/// Title-cases the first letter of every word and leaves the rest alone (`cases.Title` with
/// `cases.NoLower`).
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        let is_word_char = c.is_alphanumeric() || matches!(c, '\'' | '’' | '_');
        if is_word_char && !in_word {
            out.push_str(&map_single(c, char::to_uppercase));
        } else {
            out.push(c);
        }
        in_word = is_word_char;
    }
    out
}

/// Go maps case rune by rune; a rune without a single-rune mapping stays as it is.
fn map_single<I: Iterator<Item = char> + ExactSizeIterator>(c: char, map: fn(char) -> I) -> String {
    let mapped = map(c);
    if mapped.len() == 1 {
        mapped.collect()
    } else {
        c.to_string()
    }
}

/// Prometheus' `model.ParseDuration` (allowing a leading `-`), in seconds.
fn parse_prometheus_duration(text: &str) -> Result<f64, String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let invalid = || format!("not a valid duration string: {}", crate::gofmt::quote(unsigned));
    if unsigned == "0" {
        return Ok(0.0);
    }
    if unsigned.is_empty() {
        return Err("empty duration string".to_owned());
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3_600_000_000_000),
        ("w", 7 * 24 * 3_600_000_000_000),
        ("d", 24 * 3_600_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ];
    let mut rest = unsigned;
    let mut total: u64 = 0;
    let mut last_unit = 0;
    while !rest.is_empty() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits_end].parse().map_err(|_| invalid())?;
        rest = &rest[digits_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        if unit_end == 0 {
            return Err(invalid());
        }
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let Some(position) = UNITS.iter().position(|(name, _)| *name == unit) else {
            return Err(format!(
                "unknown unit {} in duration {}",
                crate::gofmt::quote(unit),
                crate::gofmt::quote(unsigned)
            ));
        };
        if position < last_unit {
            return Err(invalid());
        }
        last_unit = position + 1;
        let multiplier = UNITS[position].1;
        if number > (1u64 << 63) / multiplier {
            return Err("duration out of range".to_owned());
        }
        total += number * multiplier;
        if total > i64::MAX as u64 {
            return Err("duration out of range".to_owned());
        }
    }
    let seconds = total as f64 / 1e9;
    Ok(if negative { -seconds } else { seconds })
}

/// The path of a URL (`pathPrefix`).
fn url_path(url: &str) -> &str {
    let after_scheme = match url.find("://") {
        Some(index) => &url[index + 3..],
        None => url,
    };
    let path = match after_scheme.find('/') {
        Some(index) => &after_scheme[index..],
        None => "",
    };
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// A regex compile error in Go's words where the two engines agree on the fault (`missing
/// closing )`), else in the Rust engine's.
fn regex_error(pattern: &str, error: &regex::Error) -> String {
    let detail = error
        .to_string()
        .lines()
        .rev()
        .find(|line| line.starts_with("error:"))
        .map(|line| line.trim_start_matches("error:").trim().to_owned())
        .unwrap_or_else(|| error.to_string());
    let go_detail = match detail.as_str() {
        "unclosed group" => "missing closing )",
        "unopened group" => "unexpected )",
        "unclosed character class" => "missing closing ]",
        "repetition operator missing expression" => "missing argument to repetition operator",
        "unrecognized escape sequence" => "invalid escape sequence",
        "invalid character class range, the start must be <= the end" => "invalid character class range",
        "incomplete escape sequence, reached end of pattern prematurely" => {
            "trailing backslash at end of expression"
        }
        other => other,
    };
    format!("error parsing regexp: {go_detail}: `{pattern}`")
}

fn string_arg(args: &[Value], index: usize) -> String {
    match args.get(index) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn float_function(functions: &mut Functions, name: &str, body: fn(f64) -> Result<String, String>) {
    functions.insert(name, &[ArgType::Any], None, move |args| {
        let value = convert_to_float(&args[0])?;
        body(value).map(Value::String)
    });
}

impl PrometheusContext {
    /// Prometheus' template functions bound to this context.
    pub fn functions(&self) -> Functions {
        let mut functions = Functions::new();
        let query = self.query.clone();
        functions.insert("query", &[ArgType::String], None, move |args| {
            let Some(query) = &query else {
                return Err("queries are not available in this context".to_owned());
            };
            let samples = query(&string_arg(args, 0))?;
            Ok(query_result(
                samples
                    .into_iter()
                    .map(|sample| {
                        Value::object(SampleObject {
                            labels: Value::StringMap(sample.labels),
                            value: sample.value,
                        })
                    })
                    .collect(),
            ))
        });
        functions.insert("first", &[ArgType::Named(QUERY_RESULT_TYPE)], None, |args| {
            samples_of(&args[0])
                .into_iter()
                .next()
                .ok_or_else(|| "first() called on vector with no elements".to_owned())
        });
        functions.insert(
            "label",
            &[ArgType::String, ArgType::Named(SAMPLE_TYPE)],
            None,
            |args| sample_label(&args[1], &string_arg(args, 0)).map(Value::String),
        );
        functions.insert("value", &[ArgType::Named(SAMPLE_TYPE)], None, |args| {
            sample_field(&args[0], "Value")
        });
        functions.insert("strvalue", &[ArgType::Named(SAMPLE_TYPE)], None, |args| {
            sample_label(&args[0], "__value__").map(Value::String)
        });
        functions.insert(
            "sortByLabel",
            &[ArgType::String, ArgType::Named(QUERY_RESULT_TYPE)],
            None,
            |args| {
                let label = string_arg(args, 0);
                let mut keyed: Vec<(String, Value)> = samples_of(&args[1])
                    .into_iter()
                    .map(|sample| (sample_label(&sample, &label).unwrap_or_default(), sample))
                    .collect();
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(query_result(
                    keyed.into_iter().map(|(_, sample)| sample).collect(),
                ))
            },
        );
        functions.insert("args", &[], Some(ArgType::Any), |args| {
            Ok(Value::Map(
                args.iter()
                    .enumerate()
                    .map(|(index, arg)| (format!("arg{index}"), arg.clone()))
                    .collect(),
            ))
        });
        functions.insert(
            "reReplaceAll",
            &[ArgType::String, ArgType::String, ArgType::String],
            None,
            |args| {
                let pattern = string_arg(args, 0);
                let regex = regex::Regex::new(&pattern).map_err(|error| {
                    format!("regexp: Compile(`{pattern}`): {}", regex_error(&pattern, &error))
                })?;
                let text = string_arg(args, 2);
                let replacement = string_arg(args, 1);
                let replaced = regex.replace_all(&text, replacement.as_str());
                Ok(Value::String(replaced.into_owned()))
            },
        );
        functions.insert("safeHtml", &[ArgType::String], None, |args| {
            Ok(Value::String(string_arg(args, 0)))
        });
        functions.insert("match", &[ArgType::String, ArgType::String], None, |args| {
            let pattern = string_arg(args, 0);
            let regex = regex::Regex::new(&pattern).map_err(|error| regex_error(&pattern, &error))?;
            Ok(Value::Bool(regex.is_match(&string_arg(args, 1))))
        });
        functions.insert("title", &[ArgType::String], None, |args| {
            Ok(Value::String(title(&string_arg(args, 0))))
        });
        functions.insert("toUpper", &[ArgType::String], None, |args| {
            Ok(Value::String(
                string_arg(args, 0)
                    .chars()
                    .map(|c| map_single(c, char::to_uppercase))
                    .collect(),
            ))
        });
        functions.insert("toLower", &[ArgType::String], None, |args| {
            Ok(Value::String(
                string_arg(args, 0)
                    .chars()
                    .map(|c| map_single(c, char::to_lowercase))
                    .collect(),
            ))
        });
        functions.insert("graphLink", &[ArgType::String], None, |args| {
            Ok(Value::String(format!(
                "/graph?g0.expr={}&g0.tab=0",
                url_query_escape(&string_arg(args, 0))
            )))
        });
        functions.insert("tableLink", &[ArgType::String], None, |args| {
            Ok(Value::String(format!(
                "/graph?g0.expr={}&g0.tab=1",
                url_query_escape(&string_arg(args, 0))
            )))
        });
        functions.insert("stripPort", &[ArgType::String], None, |args| {
            Ok(Value::String(strip_port(&string_arg(args, 0))))
        });
        functions.insert("stripDomain", &[ArgType::String], None, |args| {
            Ok(Value::String(strip_domain(&string_arg(args, 0))))
        });
        float_function(&mut functions, "humanize", |v| Ok(humanize(v)));
        float_function(&mut functions, "humanize1024", |v| Ok(humanize_1024(v)));
        float_function(&mut functions, "humanizeDuration", |v| Ok(humanize_duration(v)));
        float_function(&mut functions, "humanizePercentage", |v| {
            Ok(format!("{}%", g4(v * 100.0)))
        });
        float_function(&mut functions, "humanizeTimestamp", |v| {
            Ok(match float_to_time(v)? {
                Some(time) => time.display(),
                None => g4(v),
            })
        });
        functions.insert("toTime", &[ArgType::Any], None, |args| {
            let value = convert_to_float(&args[0])?;
            match float_to_time(value)? {
                Some(time) => Ok(Value::object(GoTimePointer(time))),
                None => Err("value is NaN or Inf".to_owned()),
            }
        });
        functions.insert("toDuration", &[ArgType::Any], None, |args| {
            let seconds = convert_to_float(&args[0])?;
            let nanos = crate::gofmt::go_float_to_int64(seconds * 1e9);
            Ok(Value::object(GoDuration::from_nanos(nanos)))
        });
        let timestamp_ms = self.timestamp_ms;
        functions.insert("now", &[], None, move |_| {
            Ok(Value::Float(timestamp_ms as f64 / 1000.0))
        });
        let external_url = self.external_url.clone();
        let path_prefix = url_path(&external_url).to_owned();
        functions.insert("pathPrefix", &[], None, move |_| {
            Ok(Value::String(path_prefix.clone()))
        });
        functions.insert("externalURL", &[], None, move |_| {
            Ok(Value::String(external_url.clone()))
        });
        functions.insert("parseDuration", &[ArgType::String], None, |args| {
            parse_prometheus_duration(&string_arg(args, 0)).map(Value::Float)
        });
        functions.insert("urlQueryEscape", &[ArgType::String], None, |args| {
            Ok(Value::String(url_query_escape(&string_arg(args, 0))))
        });
        functions
    }

    /// Prometheus' `Expander.Expand`: parses `text` as template `name` with Prometheus'
    /// functions and `missingkey=zero`, executes it over `data`, and wraps errors as Prometheus
    /// does (`error parsing template NAME: …`, `error executing template NAME: …`).
    pub fn expand(&self, name: &str, text: &str, data: &Value) -> Result<String, TemplateError> {
        let template = Template::parse_with_functions(name, text, self.functions())
            .map_err(|error| error.wrap(&format!("error parsing template {name}")))?
            .with_missing_key(MissingKey::Zero);
        template
            .execute(data)
            .map_err(|error| error.wrap(&format!("error executing template {name}")))
    }

    /// Expands one alert-rule label or annotation of rule `rule_name` for one alert, as
    /// Prometheus' rule evaluation does (template name `__alert_RULE`).
    pub fn expand_alert(
        &self,
        rule_name: &str,
        text: &str,
        labels: &BTreeMap<String, String>,
        external_labels: &BTreeMap<String, String>,
        value: f64,
    ) -> Result<String, TemplateError> {
        let data = alert_template_data(labels, external_labels, &self.external_url, value);
        let full_text = format!("{ALERT_TEMPLATE_PREFIX}{text}");
        self.expand(&format!("__alert_{rule_name}"), &full_text, &data)
    }
}

/// The data alert templates run over: Prometheus' `AlertTemplateData` struct.
pub fn alert_template_data(
    labels: &BTreeMap<String, String>,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
    value: f64,
) -> Value {
    Value::object(Record::new(
        ALERT_DATA_TYPE,
        vec![
            ("Labels".to_owned(), Value::StringMap(labels.clone())),
            (
                "ExternalLabels".to_owned(),
                Value::StringMap(external_labels.clone()),
            ),
            ("ExternalURL".to_owned(), Value::String(external_url.to_owned())),
            ("Value".to_owned(), Value::Float(value)),
        ],
    ))
}

/// Prometheus' alert-rule expansion: prepends the `$labels`, `$externalLabels`, `$externalURL`
/// and `$value` definitions and executes `text` with Prometheus' functions and
/// `missingkey=zero`. The template is named `__alert`; `now` is the current time and `query` is
/// unavailable (use [`PrometheusContext::expand_alert`] to set them and the rule name).
///
/// ```
/// use std::collections::BTreeMap;
/// let labels = BTreeMap::from([("instance".to_owned(), "db1:9100".to_owned())]);
/// let text = "{{ $labels.instance | stripPort }} is at {{ $value | humanizePercentage }}";
/// let expanded = obs_template::expand_alert_template(text, &labels, &BTreeMap::new(), "", 0.9512).unwrap();
/// assert_eq!(expanded, "db1 is at 95.12%");
/// ```
pub fn expand_alert_template(
    text: &str,
    labels: &BTreeMap<String, String>,
    external_labels: &BTreeMap<String, String>,
    external_url: &str,
    value: f64,
) -> Result<String, TemplateError> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64);
    let context = PrometheusContext {
        external_url: external_url.to_owned(),
        timestamp_ms: now_ms,
        query: None,
    };
    let data = alert_template_data(labels, external_labels, external_url, value);
    context.expand("__alert", &format!("{ALERT_TEMPLATE_PREFIX}{text}"), &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_port_follows_go() {
        assert_eq!(split_host_port("foo:80"), Some(("foo", "80")));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", "80")));
        assert_eq!(split_host_port("foo"), None);
        assert_eq!(split_host_port("2001:0DB8::1"), None);
        assert_eq!(split_host_port("[2001:0DB8::1]::12345"), None);
        assert_eq!(split_host_port("[::1]"), None);
    }

    #[test]
    fn prometheus_durations_parse_like_model_parse_duration() {
        assert_eq!(parse_prometheus_duration("1h2m10ms"), Ok(3720.01));
        assert_eq!(parse_prometheus_duration("-30m"), Ok(-1800.0));
        assert_eq!(parse_prometheus_duration("0"), Ok(0.0));
        assert_eq!(
            parse_prometheus_duration("1m1h"),
            Err("not a valid duration string: \"1m1h\"".to_owned())
        );
        assert_eq!(
            parse_prometheus_duration("5x"),
            Err("unknown unit \"x\" in duration \"5x\"".to_owned())
        );
    }

    #[test]
    fn url_path_is_the_external_url_path() {
        assert_eq!(url_path("http://testhost:9090/path/prefix"), "/path/prefix");
        assert_eq!(url_path("http://testhost:9090"), "");
        assert_eq!(url_path("https://h/p?q=1"), "/p");
    }
}
