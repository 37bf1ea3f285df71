//! `line_format` and `label_format`: Go `text/template` (the `obs-template` crate) over the
//! line's labels, with Loki's template functions (`pkg/logql/log/fmt.go` and the Sprig
//! functions Loki enables, documented in `docs/sources/query/template_functions.md`).
//!
//! Functions behave as their Go originals, errors included (`error calling div: runtime
//! error: integer divide by zero`). Times are [`GoTime`]s shown in UTC. Not provided: nothing
//! Loki documents is missing; Sprig's functions that Loki does not enable are not added.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use obs_logql::units::{go_quote, parse_bytes, parse_go_duration, parse_go_float};
use obs_template::gotime::{GoTime, TIME_TYPE};
use obs_template::{ArgType, Functions, MissingKey, Template, Value};

use crate::goconv;
use crate::labels::{Category, ERR_TEMPLATE_FORMAT, LabelsBuilder};

/// The longest string a template function may build (`repeat`, `indent`, ...), as the
/// template's own output bound.
const MAX_STRING_BYTES: usize = 1 << 20;

/// What `__line__` and `__timestamp__` return: the line and time being formatted.
#[derive(Debug, Default)]
pub(crate) struct LineContext {
    line: String,
    timestamp_ns: i64,
}

type SharedContext = Arc<Mutex<LineContext>>;

fn set_context(context: &SharedContext, line: &str, timestamp_ns: i64) {
    let mut guard = context.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    line.clone_into(&mut guard.line);
    guard.timestamp_ns = timestamp_ns;
}

/// `| line_format "..."`.
#[derive(Debug)]
pub(crate) struct LineFormatter {
    template: Template,
    /// `{{.name}}` alone: Loki copies the label (or nothing) without running the template.
    simple_key: Option<String>,
    context: SharedContext,
}

impl LineFormatter {
    pub(crate) fn new(text: &str) -> Result<LineFormatter, String> {
        let context = SharedContext::default();
        let template = Template::parse_with_functions("line", text, loki_functions(&context))
            .map_err(|err| format!("invalid line template: {err}"))?
            .with_missing_key(MissingKey::Zero);
        Ok(LineFormatter {
            template,
            simple_key: simple_key(text),
            context,
        })
    }

    /// The new line; on a template error the line is kept and `__error__` set.
    pub(crate) fn format(&self, timestamp_ns: i64, line: String, labels: &mut LabelsBuilder) -> String {
        if let Some(key) = &self.simple_key {
            return labels.get(key).unwrap_or_default().to_owned();
        }
        set_context(&self.context, &line, timestamp_ns);
        let data = Value::StringMap(labels.all_labels().into_iter().collect());
        match self.template.execute(&data) {
            Ok(formatted) => formatted,
            Err(err) => {
                labels.set_error(ERR_TEMPLATE_FORMAT);
                labels.set_error_details(err.message());
                line
            }
        }
    }
}

/// The field of a template that is exactly `{{.name}}` (or `{{ .name }}`).
fn simple_key(text: &str) -> Option<String> {
    let inner = text.strip_prefix("{{")?.strip_suffix("}}")?;
    let name = inner.trim_matches(|c| c == ' ' || c == '\t').strip_prefix('.')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    let valid = (first.is_alphabetic() || first == '_') && chars.all(|c| c.is_alphanumeric() || c == '_');
    valid.then(|| name.to_owned())
}

/// How one `label_format` assignment gets its value.
#[derive(Debug)]
enum LabelSource {
    Rename(String),
    Template(Box<Template>),
}

/// `| label_format dst=src, dst="{{...}}"`.
#[derive(Debug)]
pub(crate) struct LabelsFormatter {
    formats: Vec<(String, LabelSource)>,
    context: SharedContext,
}

impl LabelsFormatter {
    pub(crate) fn new(formats: &[obs_logql::LabelFormat]) -> Result<LabelsFormatter, String> {
        let context = SharedContext::default();
        let mut compiled = Vec::with_capacity(formats.len());
        for format in formats {
            let source = match &format.source {
                obs_logql::LabelFormatSource::Rename(source) => LabelSource::Rename(source.clone()),
                obs_logql::LabelFormatSource::Template(text) => {
                    let template = Template::parse_with_functions("label", text, loki_functions(&context))
                        .map_err(|err| format!("invalid template for label '{}': {err}", format.target))?
                        .with_missing_key(MissingKey::Zero);
                    LabelSource::Template(Box::new(template))
                }
            };
            compiled.push((format.target.clone(), source));
        }
        Ok(LabelsFormatter {
            formats: compiled,
            context,
        })
    }

    /// Applies the assignments in order. Templates all see the labels as they were before the
    /// first template ran (Loki fills its map once per line).
    pub(crate) fn format(&self, timestamp_ns: i64, line: &str, labels: &mut LabelsBuilder) {
        set_context(&self.context, line, timestamp_ns);
        let mut snapshot: Option<Value> = None;
        for (target, source) in &self.formats {
            match source {
                LabelSource::Rename(source) => {
                    if let Some(value) = labels.get(source).map(str::to_owned) {
                        labels.set(Category::Parsed, target, &value);
                        labels.delete(source);
                    }
                }
                LabelSource::Template(template) => {
                    let filled = matches!(&snapshot, Some(Value::StringMap(map)) if !map.is_empty());
                    if !filled {
                        snapshot = Some(Value::StringMap(labels.all_labels().into_iter().collect()));
                    }
                    match template.execute(snapshot.as_ref().unwrap_or(&Value::Nil)) {
                        Ok(value) => labels.set(Category::Parsed, target, &value),
                        Err(err) => {
                            labels.set_error(ERR_TEMPLATE_FORMAT);
                            labels.set_error_details(err.message());
                        }
                    }
                }
            }
        }
    }
}

/// The label names a template reads (`.name` fields), for parser hints. Loose on purpose: a
/// name too many only makes a parser extract one more label.
pub(crate) fn template_fields(text: &str) -> Vec<String> {
    static FIELD: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let Some(field) = FIELD
        .get_or_init(|| regex::Regex::new(r"\.([A-Za-z_][A-Za-z0-9_]*)").ok())
        .as_ref()
    else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").unwrap_or(after.len());
        for capture in field.captures_iter(&after[..end]) {
            if let Some(name) = capture.get(1)
                && !names.iter().any(|known| known == name.as_str())
            {
                names.push(name.as_str().to_owned());
            }
        }
        rest = &after[end..];
    }
    names
}

// Argument helpers. The template engine has checked the declared types.

fn string_arg(args: &[Value], index: usize) -> &str {
    match args.get(index) {
        Some(Value::String(text)) => text,
        _ => "",
    }
}

fn arg(args: &[Value], index: usize) -> &Value {
    args.get(index).unwrap_or(&Value::Nil)
}

fn int_arg(args: &[Value], index: usize) -> i64 {
    match args.get(index) {
        Some(Value::Int(value)) => *value,
        _ => 0,
    }
}

fn time_arg(args: &[Value], index: usize) -> Result<GoTime, String> {
    if let Some(Value::Object(object)) = args.get(index)
        && object.type_name() == TIME_TYPE
        && let Some(Ok(Value::Int(nanos))) = object.method("UnixNano", &[])
    {
        // `UnixNano` wraps outside ±292 years; Go's zero time is the one such value in use.
        if let Some(Ok(Value::Bool(true))) = object.method("IsZero", &[]) {
            return Ok(GoTime::zero());
        }
        return Ok(GoTime::from_unix_nanos(i128::from(nanos)));
    }
    Err(format!("invalid value; expected {TIME_TYPE}"))
}

fn time_value(time: GoTime) -> Value {
    Value::object(time)
}

fn check_size(len: usize) -> Result<(), String> {
    if len > MAX_STRING_BYTES {
        return Err(format!(
            "result of {len} bytes exceeds the limit of {MAX_STRING_BYTES}"
        ));
    }
    Ok(())
}

/// Sprig's `toInt64` (spf13/cast): numbers truncated, strings read with a base prefix after
/// dropping a zero fraction (`"3.00"`), booleans as 0/1, anything else 0.
fn to_int64(value: &Value) -> i64 {
    match value {
        Value::Int(value) => *value,
        Value::Float(value) => *value as i64,
        Value::Bool(value) => i64::from(*value),
        Value::String(text) => goconv::parse_int_base0(trim_zero_decimal(text)).unwrap_or(0),
        _ => 0,
    }
}

/// cast's `trimZeroDecimal`: `3.00` → `3`.
fn trim_zero_decimal(text: &str) -> &str {
    let mut found_zero = false;
    for (index, byte) in text.bytes().enumerate().rev() {
        match byte {
            b'.' if found_zero => return &text[..index],
            b'0' => found_zero = true,
            _ => return text,
        }
    }
    text
}

/// Sprig's `toFloat64`.
fn to_float64(value: &Value) -> f64 {
    match value {
        Value::Int(value) => *value as f64,
        Value::Float(value) => *value,
        Value::Bool(value) => f64::from(u8::from(*value)),
        Value::String(text) => parse_go_float(text).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Sprig's `empty`: the zero value of its type (structs, like times, never are).
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Nil => true,
        Value::Bool(value) => !value,
        Value::Int(value) => *value == 0,
        Value::Float(value) => *value == 0.0,
        Value::String(text) => text.is_empty(),
        Value::List(list) => list.is_empty(),
        Value::Map(map) => map.is_empty(),
        Value::StringMap(map) => map.is_empty(),
        Value::Object(_) => false,
    }
}

/// Go's `math.Max`.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_infinite() && a > 0.0 || b.is_infinite() && b > 0.0 {
        return f64::INFINITY;
    }
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == 0.0 && b == 0.0 {
        return if a.is_sign_negative() { b } else { a };
    }
    if a > b { a } else { b }
}

/// Go's `math.Min`.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_infinite() && a < 0.0 || b.is_infinite() && b < 0.0 {
        return f64::NEG_INFINITY;
    }
    if a.is_nan() || b.is_nan() {
        return f64::NAN;
    }
    if a == 0.0 && b == 0.0 {
        return if a.is_sign_negative() { a } else { b };
    }
    if a < b { a } else { b }
}

/// A decimal number, as Sprig's `addf`, `subf`, `mulf` and `divf` compute with
/// `shopspring/decimal`: `addf 0.1 0.2` is `0.3`.
#[derive(Debug, Clone, Copy)]
struct Decimal {
    mantissa: i128,
    scale: u32,
}

const DIVISION_PRECISION: u32 = 16;

impl Decimal {
    /// The shortest decimal that reads back as `value`; `None` for NaN, infinities and
    /// numbers too large for the mantissa.
    fn from_f64(value: f64) -> Option<Decimal> {
        if !value.is_finite() {
            return None;
        }
        let text = format!("{value}");
        let (int_part, frac_part) = text.split_once('.').unwrap_or((&text, ""));
        let digits = format!("{int_part}{frac_part}");
        Some(Decimal {
            mantissa: digits.parse().ok()?,
            scale: u32::try_from(frac_part.len()).ok()?,
        })
    }

    fn rescale(self, scale: u32) -> Option<i128> {
        self.mantissa
            .checked_mul(10i128.checked_pow(scale.checked_sub(self.scale)?)?)
    }

    fn add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        Some(Decimal {
            mantissa: self.rescale(scale)?.checked_add(other.rescale(scale)?)?,
            scale,
        })
    }

    fn sub(self, other: Decimal) -> Option<Decimal> {
        self.add(Decimal {
            mantissa: other.mantissa.checked_neg()?,
            scale: other.scale,
        })
    }

    fn mul(self, other: Decimal) -> Option<Decimal> {
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(other.mantissa)?,
            scale: self.scale.checked_add(other.scale)?,
        })
    }

    /// Division rounded half away from zero to 16 places (`DivRound(d2, 16)`).
    fn div(self, other: Decimal) -> Option<Decimal> {
        if other.mantissa == 0 {
            return None;
        }
        let exponent = i64::from(other.scale) + i64::from(DIVISION_PRECISION) - i64::from(self.scale);
        let (numerator, denominator) = if exponent >= 0 {
            let factor = 10i128.checked_pow(u32::try_from(exponent).ok()?)?;
            (self.mantissa.checked_mul(factor)?, other.mantissa)
        } else {
            let factor = 10i128.checked_pow(u32::try_from(-exponent).ok()?)?;
            (self.mantissa, other.mantissa.checked_mul(factor)?)
        };
        let mut quotient = numerator.checked_div(denominator)?;
        let remainder = numerator.checked_rem(denominator)?;
        if remainder.unsigned_abs().checked_mul(2)? >= denominator.unsigned_abs() {
            let away_from_zero = if (numerator < 0) == (denominator < 0) {
                1
            } else {
                -1
            };
            quotient = quotient.checked_add(away_from_zero)?;
        }
        Some(Decimal {
            mantissa: quotient,
            scale: DIVISION_PRECISION,
        })
    }

    fn to_f64(self) -> f64 {
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let padded = if digits.len() <= scale {
            format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
        } else {
            digits
        };
        let (int_part, frac_part) = padded.split_at(padded.len() - scale);
        let value: f64 = format!("{int_part}.{frac_part}0").parse().unwrap_or(0.0);
        if self.mantissa < 0 { -value } else { value }
    }
}

#[derive(Debug, Clone, Copy)]
enum DecimalOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Sprig's `execDecimalOp`: `first op rest[0] op rest[1] ...` in decimal arithmetic, falling
/// back to floating point where a decimal cannot hold the values.
fn decimal_op(first: &Value, rest: &[Value], op: DecimalOp) -> Result<Value, String> {
    let mut float = to_float64(first);
    let mut decimal = Decimal::from_f64(float);
    for value in rest {
        let operand = to_float64(value);
        if matches!(op, DecimalOp::Div) && operand == 0.0 {
            return Err("decimal division by 0".to_owned());
        }
        decimal = decimal
            .zip(Decimal::from_f64(operand))
            .and_then(|(left, right)| match op {
                DecimalOp::Add => left.add(right),
                DecimalOp::Sub => left.sub(right),
                DecimalOp::Mul => left.mul(right),
                DecimalOp::Div => left.div(right),
            });
        float = match op {
            DecimalOp::Add => float + operand,
            DecimalOp::Sub => float - operand,
            DecimalOp::Mul => float * operand,
            DecimalOp::Div => float / operand,
        };
        if let Some(exact) = decimal {
            float = exact.to_f64();
        }
    }
    Ok(Value::Float(float))
}

/// `strings.Title`: the first letter of each word in title case.
fn title(text: &str) -> String {
    let is_separator = |c: char| {
        if c.is_ascii() {
            return !(c.is_ascii_alphanumeric() || c == '_');
        }
        if c.is_alphanumeric() {
            return false;
        }
        c.is_whitespace()
    };
    let mut previous = ' ';
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_separator(previous) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        previous = c;
    }
    out
}

/// The largest char boundary at or below `index`.
fn floor_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// Sprig's `trunc` (byte offsets, kept on character boundaries).
fn trunc(count: i64, text: &str) -> String {
    let len = i64::try_from(text.len()).unwrap_or(i64::MAX);
    if count < 0 && len + count > 0 {
        let start = usize::try_from(len + count).unwrap_or(0);
        return text[floor_boundary(text, start)..].to_owned();
    }
    if count >= 0 && len > count {
        let end = usize::try_from(count).unwrap_or(0);
        return text[..floor_boundary(text, end)].to_owned();
    }
    text.to_owned()
}

/// Sprig's `substr`; out-of-range bounds are Go's slice panic, reported as an error.
fn substr(start: i64, end: i64, text: &str) -> Result<String, String> {
    let len = i64::try_from(text.len()).unwrap_or(i64::MAX);
    let out_of_range =
        || format!("runtime error: slice bounds out of range [{start}:{end}] with length {len}");
    let slice = |from: i64, to: i64| -> Result<String, String> {
        if from < 0 || to < from || to > len {
            return Err(out_of_range());
        }
        let from = floor_boundary(text, usize::try_from(from).unwrap_or(0));
        let to = floor_boundary(text, usize::try_from(to).unwrap_or(0));
        Ok(text[from..to.max(from)].to_owned())
    };
    if start < 0 {
        return slice(0, end);
    }
    if end < 0 || end > len {
        return slice(start, len);
    }
    slice(start, end)
}

/// Loki's `alignLeft` / `alignRight` (runes).
fn align(count: i64, text: &str, left: bool) -> Result<String, String> {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len();
    let Ok(count) = usize::try_from(count) else {
        return Ok(text.to_owned());
    };
    if count == len {
        return Ok(text.to_owned());
    }
    if count > len {
        check_size(text.len() + count - len)?;
        let pad = " ".repeat(count - len);
        return Ok(if left {
            format!("{text}{pad}")
        } else {
            format!("{pad}{text}")
        });
    }
    Ok(if left {
        chars[..count].iter().collect()
    } else {
        chars[len - count..].iter().collect()
    })
}

fn repeat(count: i64, text: &str) -> Result<String, String> {
    let Ok(count) = usize::try_from(count) else {
        return Err("strings: negative Repeat count".to_owned());
    };
    check_size(text.len().saturating_mul(count))?;
    Ok(text.repeat(count))
}

fn indent(spaces: i64, text: &str) -> Result<String, String> {
    let pad = repeat(spaces, " ")?;
    let lines = text.matches('\n').count() + 1;
    check_size(text.len().saturating_add(pad.len().saturating_mul(lines)))?;
    Ok(format!("{pad}{}", text.replace('\n', &format!("\n{pad}"))))
}

/// `strings.Replace(s, old, new, n)`; a negative `n` replaces every occurrence.
fn replace_n(text: &str, old: &str, new: &str, count: i64) -> Result<String, String> {
    let replaced = match usize::try_from(count) {
        Ok(count) => text.replacen(old, new, count),
        Err(_) => text.replace(old, new),
    };
    check_size(replaced.len())?;
    Ok(replaced)
}

/// `url.QueryEscape`.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(byte)),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `url.QueryUnescape`.
fn query_unescape(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let escape = bytes.get(index..index + 3).unwrap_or(&bytes[index..]);
                let decoded = (escape.len() == 3)
                    .then(|| std::str::from_utf8(&escape[1..]).ok())
                    .flatten()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                let Some(decoded) = decoded else {
                    return Err(format!(
                        "invalid URL escape {}",
                        go_quote(&String::from_utf8_lossy(escape))
                    ));
                };
                out.push(decoded);
                index += 3;
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

const BASE64_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (position, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if position <= chunk.len() {
                out.push(char::from(BASE64_ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `base64.StdEncoding.DecodeString`; the error is Go's.
fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let illegal = |position: usize| format!("illegal base64 data at input byte {position}");
    if !bytes.len().is_multiple_of(4) {
        let position = bytes.len() - bytes.len() % 4;
        // Go reports the first byte it could not use.
        let first_bad = bytes
            .iter()
            .position(|b| !BASE64_ALPHABET.contains(b))
            .map_or(position, |bad| bad.min(position));
        return Err(illegal(first_bad));
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (chunk_index, chunk) in bytes.chunks(4).enumerate() {
        let last = chunk_index + 1 == bytes.len() / 4;
        let mut n: u32 = 0;
        let mut padding = 0;
        for (offset, &byte) in chunk.iter().enumerate() {
            let position = chunk_index * 4 + offset;
            let value = if byte == b'=' {
                if !last || offset < 2 || (offset == 2 && chunk[3] != b'=') {
                    return Err(illegal(position));
                }
                padding += 1;
                0
            } else {
                if padding > 0 {
                    return Err(illegal(position));
                }
                BASE64_ALPHABET
                    .iter()
                    .position(|a| *a == byte)
                    .ok_or_else(|| illegal(position))? as u32
            };
            n = (n << 6) | value;
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - padding]);
    }
    Ok(out)
}

/// Loki's `b64dec`: missing padding added, errors returned as the text.
fn b64dec(text: &str) -> String {
    let mut padded = text.to_owned();
    let remainder = padded.len() % 4;
    if remainder != 0 && remainder != 1 {
        padded.push_str(&"=".repeat(4 - remainder));
    }
    match base64_decode(&padded) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) => err,
    }
}

/// Loki's `unixToTime`: days, seconds, milliseconds, microseconds or nanoseconds, told apart
/// by the number of digits.
fn unix_to_time(epoch: &str) -> Result<GoTime, String> {
    let parsed: Result<i64, String> = epoch
        .parse::<i64>()
        .map_err(|_| format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(epoch)));
    let value = parsed.map_err(|err| format!("unable to parse time '{epoch}': {err}"))?;
    let value = i128::from(value);
    match epoch.len() {
        5 => Ok(GoTime::from_unix_nanos(value * 86_400 * 1_000_000_000)),
        10 => Ok(GoTime::from_unix_nanos(value * 1_000_000_000)),
        13 => Ok(GoTime::from_unix_nanos(value * 1_000_000)),
        16 => Ok(GoTime::from_unix_nanos(value * 1_000)),
        19 => Ok(GoTime::from_unix_nanos(value)),
        _ => Err(format!("unable to parse time '{epoch}': %!w(<nil>)")),
    }
}

fn json_to_value(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(value) => Value::Bool(value),
        serde_json::Value::Number(number) => Value::Float(number.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(text) => Value::String(text),
        serde_json::Value::Array(items) => Value::List(items.into_iter().map(json_to_value).collect()),
        serde_json::Value::Object(map) => Value::Map(
            map.into_iter()
                .map(|(key, value)| (key, json_to_value(value)))
                .collect::<BTreeMap<String, Value>>(),
        ),
    }
}

/// Compiled regexes of the regex functions, by pattern (a small bounded cache).
#[derive(Debug, Default)]
struct RegexCache {
    compiled: Mutex<HashMap<String, regex::Regex>>,
}

impl RegexCache {
    fn get(&self, pattern: &str) -> Result<regex::Regex, String> {
        let mut compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(regex) = compiled.get(pattern) {
            return Ok(regex.clone());
        }
        let regex = regex::RegexBuilder::new(&obs_core::goregex::go_syntax_to_rust(pattern))
            .octal(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|err| {
                format!(
                    "error parsing regexp: {}: `{pattern}`",
                    obs_core::goregex::regex_error_message(&err)
                )
            })?;
        if compiled.len() < 64 {
            compiled.insert(pattern.to_owned(), regex.clone());
        }
        Ok(regex)
    }
}

fn string_fn(functions: &mut Functions, name: &str, body: fn(&str) -> String) {
    functions.insert(name, &[ArgType::String], None, move |args| {
        Ok(Value::String(body(string_arg(args, 0))))
    });
}

fn string2_fn(functions: &mut Functions, name: &str, body: fn(&str, &str) -> String) {
    functions.insert(name, &[ArgType::String, ArgType::String], None, move |args| {
        Ok(Value::String(body(string_arg(args, 0), string_arg(args, 1))))
    });
}

/// Loki's template functions, with `__line__` and `__timestamp__` reading `context`.
fn loki_functions(context: &SharedContext) -> Functions {
    let mut functions = Functions::new();
    let line_context = Arc::clone(context);
    functions.insert("__line__", &[], None, move |_| {
        let guard = line_context
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(Value::String(guard.line.clone()))
    });
    let time_context = Arc::clone(context);
    functions.insert("__timestamp__", &[], None, move |_| {
        let guard = time_context
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(time_value(GoTime::from_unix_nanos(i128::from(
            guard.timestamp_ns,
        ))))
    });

    // Loki's own (older, Go-named) functions.
    string_fn(&mut functions, "ToLower", str::to_lowercase);
    string_fn(&mut functions, "ToUpper", str::to_uppercase);
    functions.insert(
        "Replace",
        &[ArgType::String, ArgType::String, ArgType::String, ArgType::Int],
        None,
        |args| {
            replace_n(
                string_arg(args, 0),
                string_arg(args, 1),
                string_arg(args, 2),
                int_arg(args, 3),
            )
            .map(Value::String)
        },
    );
    string2_fn(&mut functions, "Trim", |text, cutset| {
        text.trim_matches(|c| cutset.contains(c)).to_owned()
    });
    string2_fn(&mut functions, "TrimLeft", |text, cutset| {
        text.trim_start_matches(|c| cutset.contains(c)).to_owned()
    });
    string2_fn(&mut functions, "TrimRight", |text, cutset| {
        text.trim_end_matches(|c| cutset.contains(c)).to_owned()
    });
    string2_fn(&mut functions, "TrimPrefix", |text, prefix| {
        text.strip_prefix(prefix).unwrap_or(text).to_owned()
    });
    string2_fn(&mut functions, "TrimSuffix", |text, suffix| {
        text.strip_suffix(suffix).unwrap_or(text).to_owned()
    });
    string_fn(&mut functions, "TrimSpace", |text| text.trim().to_owned());

    let cache = Arc::new(RegexCache::default());
    let replace_cache = Arc::clone(&cache);
    functions.insert(
        "regexReplaceAll",
        &[ArgType::String, ArgType::String, ArgType::String],
        None,
        move |args| {
            let regex = replace_cache.get(string_arg(args, 0))?;
            let replaced = regex.replace_all(string_arg(args, 1), string_arg(args, 2));
            check_size(replaced.len())?;
            Ok(Value::String(replaced.into_owned()))
        },
    );
    let literal_cache = Arc::clone(&cache);
    functions.insert(
        "regexReplaceAllLiteral",
        &[ArgType::String, ArgType::String, ArgType::String],
        None,
        move |args| {
            let regex = literal_cache.get(string_arg(args, 0))?;
            let replaced = regex.replace_all(string_arg(args, 1), regex::NoExpand(string_arg(args, 2)));
            check_size(replaced.len())?;
            Ok(Value::String(replaced.into_owned()))
        },
    );
    let count_cache = Arc::clone(&cache);
    functions.insert("count", &[ArgType::String, ArgType::String], None, move |args| {
        let regex = count_cache.get(string_arg(args, 0))?;
        let count = regex.find_iter(string_arg(args, 1)).count();
        Ok(Value::Int(i64::try_from(count).unwrap_or(i64::MAX)))
    });
    functions.insert("urldecode", &[ArgType::String], None, |args| {
        query_unescape(string_arg(args, 0)).map(Value::String)
    });
    string_fn(&mut functions, "urlencode", query_escape);
    functions.insert("bytes", &[ArgType::String], None, |args| {
        parse_bytes(string_arg(args, 0)).map(|bytes| Value::Float(bytes as f64))
    });
    for name in ["duration", "duration_seconds"] {
        functions.insert(name, &[ArgType::String], None, |args| {
            parse_go_duration(string_arg(args, 0)).map(|nanos| Value::Float(nanos as f64 / 1e9))
        });
    }
    functions.insert("unixEpochMillis", &[ArgType::Named(TIME_TYPE)], None, |args| {
        Ok(Value::String(time_arg(args, 0)?.unix_millis().to_string()))
    });
    functions.insert("unixEpochNanos", &[ArgType::Named(TIME_TYPE)], None, |args| {
        Ok(Value::String(time_arg(args, 0)?.unix_nanos().to_string()))
    });
    functions.insert(
        "toDateInZone",
        &[ArgType::String, ArgType::String, ArgType::String],
        None,
        |args| {
            let parsed = GoTime::parse(string_arg(args, 0), string_arg(args, 2)).unwrap_or_else(GoTime::zero);
            Ok(time_value(parsed))
        },
    );
    functions.insert("unixToTime", &[ArgType::String], None, |args| {
        unix_to_time(string_arg(args, 0)).map(time_value)
    });
    functions.insert("alignLeft", &[ArgType::Int, ArgType::String], None, |args| {
        align(int_arg(args, 0), string_arg(args, 1), true).map(Value::String)
    });
    functions.insert("alignRight", &[ArgType::Int, ArgType::String], None, |args| {
        align(int_arg(args, 0), string_arg(args, 1), false).map(Value::String)
    });
    string_fn(&mut functions, "b64dec", b64dec);

    // The Sprig functions Loki enables.
    string_fn(&mut functions, "b64enc", |text| base64_encode(text.as_bytes()));
    string_fn(&mut functions, "lower", str::to_lowercase);
    string_fn(&mut functions, "upper", str::to_uppercase);
    string_fn(&mut functions, "title", title);
    functions.insert("trunc", &[ArgType::Int, ArgType::String], None, |args| {
        Ok(Value::String(trunc(int_arg(args, 0), string_arg(args, 1))))
    });
    functions.insert(
        "substr",
        &[ArgType::Int, ArgType::Int, ArgType::String],
        None,
        |args| substr(int_arg(args, 0), int_arg(args, 1), string_arg(args, 2)).map(Value::String),
    );
    functions.insert("contains", &[ArgType::String, ArgType::String], None, |args| {
        Ok(Value::Bool(string_arg(args, 1).contains(string_arg(args, 0))))
    });
    functions.insert("hasPrefix", &[ArgType::String, ArgType::String], None, |args| {
        Ok(Value::Bool(string_arg(args, 1).starts_with(string_arg(args, 0))))
    });
    functions.insert("hasSuffix", &[ArgType::String, ArgType::String], None, |args| {
        Ok(Value::Bool(string_arg(args, 1).ends_with(string_arg(args, 0))))
    });
    functions.insert("indent", &[ArgType::Int, ArgType::String], None, |args| {
        indent(int_arg(args, 0), string_arg(args, 1)).map(Value::String)
    });
    functions.insert("nindent", &[ArgType::Int, ArgType::String], None, |args| {
        indent(int_arg(args, 0), string_arg(args, 1)).map(|text| Value::String(format!("\n{text}")))
    });
    functions.insert(
        "replace",
        &[ArgType::String, ArgType::String, ArgType::String],
        None,
        |args| {
            replace_n(string_arg(args, 2), string_arg(args, 0), string_arg(args, 1), -1).map(Value::String)
        },
    );
    functions.insert("repeat", &[ArgType::Int, ArgType::String], None, |args| {
        repeat(int_arg(args, 0), string_arg(args, 1)).map(Value::String)
    });
    string_fn(&mut functions, "trim", |text| text.trim().to_owned());
    string2_fn(&mut functions, "trimAll", |cutset, text| {
        text.trim_matches(|c| cutset.contains(c)).to_owned()
    });
    string2_fn(&mut functions, "trimSuffix", |suffix, text| {
        text.strip_suffix(suffix).unwrap_or(text).to_owned()
    });
    string2_fn(&mut functions, "trimPrefix", |prefix, text| {
        text.strip_prefix(prefix).unwrap_or(text).to_owned()
    });
    functions.insert("int", &[ArgType::Any], None, |args| {
        Ok(Value::Int(args.first().map_or(0, to_int64)))
    });
    functions.insert("float64", &[ArgType::Any], None, |args| {
        Ok(Value::Float(args.first().map_or(0.0, to_float64)))
    });
    functions.insert("add", &[], Some(ArgType::Any), |args| {
        Ok(Value::Int(
            args.iter().map(to_int64).fold(0i64, i64::wrapping_add),
        ))
    });
    functions.insert("sub", &[ArgType::Any, ArgType::Any], None, |args| {
        let (a, b) = (to_int64(arg(args, 0)), to_int64(arg(args, 1)));
        Ok(Value::Int(a.wrapping_sub(b)))
    });
    functions.insert("mul", &[ArgType::Any], Some(ArgType::Any), |args| {
        let first = args.first().map_or(0, to_int64);
        Ok(Value::Int(
            args.iter().skip(1).map(to_int64).fold(first, i64::wrapping_mul),
        ))
    });
    functions.insert("div", &[ArgType::Any, ArgType::Any], None, |args| {
        let (a, b) = (to_int64(arg(args, 0)), to_int64(arg(args, 1)));
        if b == 0 {
            return Err("runtime error: integer divide by zero".to_owned());
        }
        Ok(Value::Int(a.wrapping_div(b)))
    });
    functions.insert("mod", &[ArgType::Any, ArgType::Any], None, |args| {
        let (a, b) = (to_int64(arg(args, 0)), to_int64(arg(args, 1)));
        if b == 0 {
            return Err("runtime error: integer divide by zero".to_owned());
        }
        Ok(Value::Int(a.wrapping_rem(b)))
    });
    functions.insert("addf", &[], Some(ArgType::Any), |args| {
        decimal_op(&Value::Float(0.0), args, DecimalOp::Add)
    });
    for (name, op) in [
        ("subf", DecimalOp::Sub),
        ("mulf", DecimalOp::Mul),
        ("divf", DecimalOp::Div),
    ] {
        functions.insert(name, &[ArgType::Any], Some(ArgType::Any), move |args| {
            decimal_op(arg(args, 0), args.get(1..).unwrap_or_default(), op)
        });
    }
    functions.insert("max", &[ArgType::Any], Some(ArgType::Any), |args| {
        Ok(Value::Int(args.iter().map(to_int64).max().unwrap_or(0)))
    });
    functions.insert("min", &[ArgType::Any], Some(ArgType::Any), |args| {
        Ok(Value::Int(args.iter().map(to_int64).min().unwrap_or(0)))
    });
    functions.insert("maxf", &[ArgType::Any], Some(ArgType::Any), |args| {
        let first = to_float64(arg(args, 0));
        Ok(Value::Float(
            args.get(1..)
                .unwrap_or_default()
                .iter()
                .map(to_float64)
                .fold(first, go_max),
        ))
    });
    functions.insert("minf", &[ArgType::Any], Some(ArgType::Any), |args| {
        let first = to_float64(arg(args, 0));
        Ok(Value::Float(
            args.get(1..)
                .unwrap_or_default()
                .iter()
                .map(to_float64)
                .fold(first, go_min),
        ))
    });
    functions.insert("ceil", &[ArgType::Any], None, |args| {
        Ok(Value::Float(to_float64(arg(args, 0)).ceil()))
    });
    functions.insert("floor", &[ArgType::Any], None, |args| {
        Ok(Value::Float(to_float64(arg(args, 0)).floor()))
    });
    functions.insert(
        "round",
        &[ArgType::Any, ArgType::Int],
        Some(ArgType::Float),
        |args| {
            let round_on = match args.get(2) {
                Some(Value::Float(value)) => *value,
                _ => 0.5,
            };
            let value = to_float64(arg(args, 0));
            let power = 10f64.powf(int_arg(args, 1) as f64);
            let digit = power * value;
            let fraction = digit - digit.trunc();
            let rounded = if fraction >= round_on {
                digit.ceil()
            } else {
                digit.floor()
            };
            Ok(Value::Float(rounded / power))
        },
    );
    functions.insert("fromJson", &[ArgType::String], None, |args| {
        Ok(serde_json::from_str::<serde_json::Value>(string_arg(args, 0)).map_or(Value::Nil, json_to_value))
    });
    functions.insert("date", &[ArgType::String, ArgType::Any], None, |args| {
        let time = match args.get(1) {
            Some(Value::Int(seconds)) => GoTime::from_unix_nanos(i128::from(*seconds) * 1_000_000_000),
            Some(value @ Value::Object(_)) => {
                time_arg(std::slice::from_ref(value), 0).unwrap_or_else(|_| GoTime::now())
            }
            _ => GoTime::now(),
        };
        Ok(Value::String(time.format(string_arg(args, 0))))
    });
    functions.insert("toDate", &[ArgType::String, ArgType::String], None, |args| {
        let parsed = GoTime::parse(string_arg(args, 0), string_arg(args, 1)).unwrap_or_else(GoTime::zero);
        Ok(time_value(parsed))
    });
    functions.insert("now", &[], None, |_| Ok(time_value(GoTime::now())));
    functions.insert("unixEpoch", &[ArgType::Named(TIME_TYPE)], None, |args| {
        Ok(Value::String(time_arg(args, 0)?.unix_seconds().to_string()))
    });
    functions.insert(
        "default",
        &[ArgType::Any],
        Some(ArgType::Any),
        |args| match args.get(1) {
            Some(given) if !is_empty(given) => Ok(given.clone()),
            _ => Ok(args.first().cloned().unwrap_or(Value::Nil)),
        },
    );
    functions
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use obs_core::series::Labels;

    use super::*;
    use crate::labels::ParserHints;

    fn labels(pairs: &[(&str, &str)]) -> LabelsBuilder {
        let mut builder = LabelsBuilder::new(Arc::new(ParserHints::default()));
        builder.reset(Arc::new(Labels::from_pairs([("app", "api")]).unwrap()), &[]);
        for (name, value) in pairs {
            builder.set(Category::Parsed, name, value);
        }
        builder
    }

    fn render(template: &str, pairs: &[(&str, &str)]) -> String {
        let formatter = LineFormatter::new(template).unwrap();
        let mut builder = labels(pairs);
        let out = formatter.format(1_700_000_000_123_456_789, "the line".to_owned(), &mut builder);
        assert!(!builder.has_error(), "{template}: {}", builder.error_details());
        out
    }

    #[test]
    fn line_format_reads_labels_and_line() {
        assert_eq!(render("{{.app}} {{.msg}} {{.nope}}", &[("msg", "hi")]), "api hi ");
        assert_eq!(render("{{.msg}}", &[("msg", "hi")]), "hi");
        assert_eq!(render("{{ __line__ | upper }}", &[]), "THE LINE");
        assert_eq!(
            render("{{ __timestamp__ }}", &[]),
            "2023-11-14 22:13:20.123456789 +0000 UTC"
        );
        assert_eq!(
            render(r#"{{ __timestamp__ | date "2006-01-02" }}"#, &[]),
            "2023-11-14"
        );
        assert_eq!(render("{{ __timestamp__ | unixEpoch }}", &[]), "1700000000");
        assert_eq!(
            render("{{ __timestamp__ | unixEpochMillis }}", &[]),
            "1700000000123"
        );
        assert_eq!(
            render("{{ __timestamp__ | unixEpochNanos }}", &[]),
            "1700000000123456789"
        );
    }

    #[test]
    fn string_functions_match_go() {
        let cases: &[(&str, &str)] = &[
            (r#"{{ ToLower "AbC" }}{{ ToUpper "x" }}"#, "abcX"),
            (r#"{{ Replace "aaa" "a" "b" 2 }}"#, "bba"),
            (
                r#"{{ Trim "xxhixx" "x" }}|{{ TrimLeft "xhi" "x" }}|{{ TrimRight "hix" "x" }}"#,
                "hi|hi|hi",
            ),
            (
                r#"{{ TrimPrefix "prefix-x" "prefix-" }}{{ TrimSuffix "x.go" ".go" }}{{ TrimSpace "  y " }}"#,
                "xxy",
            ),
            (r#"{{ title "hello wORLD-x" }}"#, "Hello WORLD-X"),
            (r#"{{ trunc 3 "abcdef" }}|{{ trunc -2 "abcdef" }}"#, "abc|ef"),
            (
                r#"{{ substr 1 3 "abcdef" }}|{{ substr -1 2 "abcdef" }}|{{ substr 4 99 "abcdef" }}"#,
                "bc|ab|ef",
            ),
            (
                r#"{{ if contains "he" "hello" }}y{{ end }}{{ if hasPrefix "he" "hello" }}p{{ end }}{{ if hasSuffix "lo" "hello" }}s{{ end }}"#,
                "yps",
            ),
            (r#"{{ indent 2 "a\nb" }}|{{ nindent 1 "c" }}"#, "  a\n  b|\n c"),
            (
                r#"{{ replace "a" "b" "banana" }}|{{ repeat 3 "ab" }}"#,
                "bbnbnb|ababab",
            ),
            (
                r#"{{ trim " x " }}|{{ trimAll "$" "$5$" }}|{{ trimSuffix "-" "a-" }}|{{ trimPrefix "-" "-a" }}"#,
                "x|5|a|a",
            ),
            (
                r#"{{ regexReplaceAll "(\\d+)" "a12b3" "<$1>" }}|{{ regexReplaceAllLiteral "\\d" "a1" "$1" }}"#,
                "a<12>b<3>|a$1",
            ),
            (r#"{{ count "a" "banana" }}"#, "3"),
            (
                r#"{{ urlencode "a b&c" }}|{{ urldecode "a+b%26c" }}"#,
                "a+b%26c|a b&c",
            ),
            (
                r#"{{ b64enc "hello" }}|{{ b64dec "aGVsbG8" }}|{{ b64dec "aGVsbG8=" }}"#,
                "aGVsbG8=|hello|hello",
            ),
            (
                r#"{{ alignLeft 5 "ab" }}|{{ alignRight 5 "ab" }}|{{ alignLeft 2 "abcd" }}|{{ alignRight 2 "abcd" }}"#,
                "ab   |   ab|ab|cd",
            ),
            (
                r#"{{ default "x" "" }}|{{ default "x" "y" }}|{{ "" | default "z" }}"#,
                "x|y|z",
            ),
            (r#"{{ printf "%05.1f|%s" 3.14159 "s" }}"#, "003.1|s"),
            (r#"{{ lower "ABC" }}{{ upper "d" }}"#, "abcD"),
        ];
        for (template, expected) in cases {
            assert_eq!(&render(template, &[]), expected, "{template}");
        }
    }

    #[test]
    fn math_functions_match_sprig() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{{ add 1 2 "3" }}|{{ sub 10 "4" }}|{{ mul 2 3 4 }}|{{ div 7 2 }}|{{ mod 7 3 }}"#,
                "6|6|24|3|1",
            ),
            (
                r#"{{ addf 0.1 0.2 }}|{{ subf 1 0.9 }}|{{ mulf 1.1 3 }}|{{ divf 1 3 }}"#,
                "0.3|0.1|3.3|0.3333333333333333",
            ),
            (
                r#"{{ max 1 5 3 }}|{{ min 4 2 }}|{{ maxf 1.5 2.5 }}|{{ minf 1.5 2.5 }}"#,
                "5|2|2.5|1.5",
            ),
            (
                r#"{{ ceil 1.2 }}|{{ floor 1.8 }}|{{ round 3.14159 2 }}|{{ round 2.5 0 }}"#,
                "2|1|3.14|3",
            ),
            (
                r#"{{ int "42" }}|{{ int "3.00" }}|{{ int 3.9 }}|{{ float64 "1.5" }}|{{ int "junk" }}"#,
                "42|3|3|1.5|0",
            ),
            (
                r#"{{ duration "1m30s" }}|{{ duration_seconds "500ms" }}|{{ bytes "2KiB" }}"#,
                "90|0.5|2048",
            ),
            (r#"{{ add .n 1 }}"#, "42"),
        ];
        for (template, expected) in cases {
            assert_eq!(&render(template, &[("n", "41")]), expected, "{template}");
        }
    }

    #[test]
    fn time_and_json_functions() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{{ toDate "2006-01-02" "2021-11-02" | unixEpoch }}"#,
                "1635811200",
            ),
            (
                r#"{{ toDateInZone "2006-01-02" "UTC" "2021-11-02" | unixEpochMillis }}"#,
                "1635811200000",
            ),
            (
                r#"{{ date "2006-01-02 15:04" (unixToTime "1679577215") }}"#,
                "2023-03-23 13:13",
            ),
            (
                r#"{{ unixToTime "19373" | unixEpoch }}|{{ unixToTime "1673798889902" | unixEpochMillis }}"#,
                "1673827200|1673798889902",
            ),
            (r#"{{ (toDate "2006-01-02" "bad").Year }}"#, "1"),
            (
                r#"{{ $j := fromJson "{\"a\":{\"b\":[1,2]}}" }}{{ index $j.a.b 1 }}"#,
                "2",
            ),
            (r#"{{ date "2006" 0 }}"#, "1970"),
        ];
        for (template, expected) in cases {
            assert_eq!(&render(template, &[]), expected, "{template}");
        }
        assert!(render("{{ now | unixEpoch }}", &[]).parse::<i64>().unwrap() > 1_600_000_000);
    }

    #[test]
    fn template_errors_set_error_labels() {
        let formatter = LineFormatter::new(r#"{{ div 1 0 }}"#).unwrap();
        let mut builder = labels(&[]);
        let line = formatter.format(0, "kept".to_owned(), &mut builder);
        assert_eq!(line, "kept");
        assert_eq!(builder.error(), "TemplateFormatErr");
        assert!(
            builder.error_details().contains("integer divide by zero"),
            "{}",
            builder.error_details()
        );
        let error = LineFormatter::new("{{ .a ").unwrap_err();
        assert!(error.starts_with("invalid line template: "), "{error}");
        assert!(LineFormatter::new("{{ nosuchfunction }}").is_err());
        let mut huge = labels(&[]);
        LineFormatter::new(r#"{{ repeat 100000000 "x" }}"#)
            .unwrap()
            .format(0, String::new(), &mut huge);
        assert_eq!(huge.error(), "TemplateFormatErr");
    }

    #[test]
    fn label_format_renames_and_templates() {
        let formats = [
            obs_logql::LabelFormat {
                target: "dst".to_owned(),
                source: obs_logql::LabelFormatSource::Rename("src".to_owned()),
            },
            obs_logql::LabelFormat {
                target: "both".to_owned(),
                source: obs_logql::LabelFormatSource::Template("{{.app}}-{{.dst}}-{{.src}}".to_owned()),
            },
        ];
        let formatter = LabelsFormatter::new(&formats).unwrap();
        let mut builder = labels(&[("src", "v")]);
        formatter.format(0, "line", &mut builder);
        assert_eq!(builder.get("dst"), Some("v"));
        assert_eq!(builder.get("src"), None);
        assert_eq!(builder.get("both"), Some("api-v-"));
    }

    #[test]
    fn template_fields_are_found() {
        assert_eq!(
            template_fields("{{.a}} x.y {{ .b.c | f .d }}"),
            ["a", "b", "c", "d"]
        );
        assert_eq!(super::simple_key("{{ .msg }}"), Some("msg".to_owned()));
        assert_eq!(super::simple_key("{{.msg}} x"), None);
    }

    #[test]
    fn base64_round_trips() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            assert_eq!(
                base64_decode(&base64_encode(text.as_bytes())).unwrap(),
                text.as_bytes()
            );
        }
        assert_eq!(
            base64_decode("a!==").unwrap_err(),
            "illegal base64 data at input byte 1"
        );
    }
}
