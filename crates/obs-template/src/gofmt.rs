//! Go's `fmt` and `strconv` output for the values templates print.
//!
//! Templates print through `fmt.Fprint`, and `printf`, `humanize` and friends through
//! `fmt.Sprintf`, so their output has to match Go's character for character: `0.1` for `%v` of
//! 0.1, `1e+21` for 1e21, `1.235e+08` for `%.4g` of 123456789, `%!d(string=x)` for a verb that does
//! not fit its operand. Digit generation is Rust's (exact, shortest round-trip or correctly
//! rounded, like Go's); the layout around the digits is Go's.
//!
//! Supported verbs: `%v %s %q %d %b %o %O %x %X %c %U %e %E %f %F %g %G %t %T %%`, flags
//! `+ - # 0 space`, widths and precisions including `*`. Not supported: explicit argument indexes
//! (`%[1]d`) and hexadecimal floats (`%x` of a float).

use crate::value::Value;

/// Width and precision are capped like Go's (`%!(BADWIDTH)` beyond 1e6) so that a template
/// cannot ask for a gigabyte of padding.
const MAX_WIDTH_OR_PRECISION: usize = 1_000_000;

/// The decimal digits of a finite, non-negative float: value = 0.DIGITS × 10^decimal_point,
/// without trailing zeros (Go's `decimalSlice`).
struct Digits {
    digits: Vec<u8>,
    decimal_point: i32,
}

impl Digits {
    /// The shortest digits that round-trip (`prec` = -1 in Go).
    fn shortest(abs: f64) -> Digits {
        Digits::from_scientific(&format!("{abs:e}"))
    }

    /// `significant` correctly rounded significant digits (at least one).
    fn significant(abs: f64, significant: usize) -> Digits {
        let fraction_digits = significant.max(1) - 1;
        Digits::from_scientific(&format!("{abs:.fraction_digits$e}"))
    }

    /// Parses Rust's `{:e}` output, `d.ddddde-5`.
    fn from_scientific(text: &str) -> Digits {
        let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        while digits.len() > 1 && digits.last() == Some(&b'0') {
            digits.pop();
        }
        if digits == [b'0'] {
            return Digits {
                digits: Vec::new(),
                decimal_point: 0,
            };
        }
        Digits {
            digits,
            decimal_point: exponent + 1,
        }
    }

    fn count(&self) -> i32 {
        self.digits.len() as i32
    }

    fn digit(&self, index: i32) -> u8 {
        if index < 0 {
            return b'0';
        }
        self.digits.get(index as usize).copied().unwrap_or(b'0')
    }

    /// `%e`: d.dddde±dd with `precision` fraction digits.
    fn write_exponential(&self, out: &mut String, precision: usize, exponent_char: char) {
        out.push(char::from(self.digit(0)));
        if precision > 0 {
            out.push('.');
            for index in 1..=precision {
                out.push(char::from(self.digit(index as i32)));
            }
        }
        out.push(exponent_char);
        let exponent = if self.digits.is_empty() {
            0
        } else {
            self.decimal_point - 1
        };
        out.push(if exponent < 0 { '-' } else { '+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
    }

    /// `%f`: ddd.ddd with `precision` fraction digits.
    fn write_fixed(&self, out: &mut String, precision: usize) {
        if self.decimal_point > 0 {
            for index in 0..self.decimal_point {
                out.push(char::from(self.digit(index)));
            }
        } else {
            out.push('0');
        }
        if precision > 0 {
            out.push('.');
            for index in 1..=precision as i32 {
                out.push(char::from(self.digit(self.decimal_point + index - 1)));
            }
        }
    }
}

/// `strconv.FormatFloat(value, verb, precision, 64)` for verbs `e E f F g G`; `precision` `None`
/// is Go's -1 (shortest).
pub(crate) fn format_float(value: f64, verb: char, precision: Option<usize>) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let mut out = String::new();
    if value.is_sign_negative() {
        out.push('-');
    }
    let abs = value.abs();
    match verb {
        'x' | 'X' => out.push_str(&format_hex_float(abs, precision, verb == 'X')),
        'f' | 'F' => match precision {
            Some(precision) => out.push_str(&format!("{abs:.precision$}")),
            None => {
                let digits = Digits::shortest(abs);
                let precision = (digits.count() - digits.decimal_point).max(0) as usize;
                digits.write_fixed(&mut out, precision);
            }
        },
        'e' | 'E' => {
            let exponent_char = if verb == 'E' { 'E' } else { 'e' };
            match precision {
                Some(precision) => {
                    let digits = Digits::significant(abs, precision + 1);
                    digits.write_exponential(&mut out, precision, exponent_char);
                }
                None => {
                    let digits = Digits::shortest(abs);
                    let precision = (digits.count() - 1).max(0) as usize;
                    digits.write_exponential(&mut out, precision, exponent_char);
                }
            }
        }
        _ => {
            let exponent_char = if verb == 'G' { 'E' } else { 'e' };
            let (digits, mut precision, shortest) = match precision {
                Some(precision) => {
                    let precision = precision.max(1);
                    (Digits::significant(abs, precision), precision as i32, false)
                }
                None => {
                    let digits = Digits::shortest(abs);
                    let precision = digits.count();
                    (digits, precision, true)
                }
            };
            let mut exponent_precision = precision;
            if exponent_precision > digits.count() && digits.count() >= digits.decimal_point {
                exponent_precision = digits.count();
            }
            if shortest {
                exponent_precision = 6;
            }
            let exponent = digits.decimal_point - 1;
            if !digits.digits.is_empty() && (exponent < -4 || exponent >= exponent_precision) {
                if precision > digits.count() {
                    precision = digits.count();
                }
                digits.write_exponential(&mut out, (precision - 1).max(0) as usize, exponent_char);
            } else {
                if precision > digits.decimal_point {
                    precision = digits.count();
                }
                digits.write_fixed(&mut out, (precision - digits.decimal_point).max(0) as usize);
            }
        }
    }
    out
}

/// `strconv.FormatFloat(abs, 'x', precision, 64)` of a non-negative finite float:
/// `0x1.8p+01`.
fn format_hex_float(abs: f64, precision: Option<usize>, upper: bool) -> String {
    let bits = abs.to_bits();
    let mut exponent = ((bits >> 52) & 0x7ff) as i32;
    let mut mantissa = bits & ((1 << 52) - 1);
    if exponent == 0 {
        exponent += 1;
    } else {
        mantissa |= 1 << 52;
    }
    exponent -= 1023;
    if mantissa == 0 {
        exponent = 0;
    }
    // The leading 1 (if any) at bit 60.
    mantissa <<= 60 - 52;
    while mantissa != 0 && mantissa & (1 << 60) == 0 {
        mantissa <<= 1;
        exponent -= 1;
    }
    if let Some(precision) = precision
        && precision < 15
    {
        let shift = precision as u32 * 4;
        let extra = (mantissa << shift) & ((1 << 60) - 1);
        mantissa >>= 60 - shift;
        if extra | (mantissa & 1) > 1 << 59 {
            mantissa += 1;
        }
        mantissa <<= 60 - shift;
        if mantissa & (1 << 61) != 0 {
            mantissa >>= 1;
            exponent += 1;
        }
    }
    let digits: &[u8] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = String::from(if upper { "0X" } else { "0x" });
    out.push(char::from(b'0' + ((mantissa >> 60) & 1) as u8));
    mantissa <<= 4;
    match precision {
        None if mantissa != 0 => {
            out.push('.');
            while mantissa != 0 {
                out.push(char::from(digits[((mantissa >> 60) & 15) as usize]));
                mantissa <<= 4;
            }
        }
        Some(precision) if precision > 0 => {
            out.push('.');
            for _ in 0..precision {
                out.push(char::from(digits[((mantissa >> 60) & 15) as usize]));
                mantissa <<= 4;
            }
        }
        _ => {}
    }
    out.push(if upper { 'P' } else { 'p' });
    out.push(if exponent < 0 { '-' } else { '+' });
    let magnitude = exponent.unsigned_abs();
    if magnitude < 10 {
        out.push('0');
    }
    out.push_str(&magnitude.to_string());
    out
}

/// Go's `#` flag on floats: always a decimal point, and `%g` keeps its trailing zeros.
fn apply_sharp(number: &str, verb: char, precision: Option<usize>) -> String {
    let mut digits: i64 = match verb {
        'v' | 'g' | 'G' | 'x' => precision.map_or(6, |precision| precision as i64),
        _ => 0,
    };
    let (sign, body) = number.split_at(1);
    let mut mantissa = String::new();
    let mut tail = String::new();
    let mut has_decimal_point = false;
    let mut saw_nonzero_digit = false;
    for (index, c) in body.char_indices() {
        match c {
            '.' => {
                has_decimal_point = true;
                mantissa.push(c);
            }
            'p' | 'P' => {
                tail = body[index..].to_owned();
                break;
            }
            'e' | 'E' if verb != 'x' && verb != 'X' => {
                tail = body[index..].to_owned();
                break;
            }
            _ => {
                if c != '0' {
                    saw_nonzero_digit = true;
                }
                if saw_nonzero_digit {
                    digits -= 1;
                }
                mantissa.push(c);
            }
        }
    }
    if !has_decimal_point {
        if mantissa == "0" {
            digits -= 1;
        }
        mantissa.push('.');
    }
    while digits > 0 {
        mantissa.push('0');
        digits -= 1;
    }
    format!("{sign}{mantissa}{tail}")
}

/// Go's conversion `int64(value)` on amd64: out-of-range values and NaN become `i64::MIN`.
pub(crate) fn go_float_to_int64(value: f64) -> i64 {
    if value.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&value) {
        return i64::MIN;
    }
    value as i64
}

/// `fmt.Sprint(value)`: the `%v` form.
pub(crate) fn format_v(value: &Value) -> String {
    let mut out = String::new();
    Printer::new(&mut out).print_value(value, 'v', &Spec::default());
    out
}

/// `fmt.Sprint(args...)`: operands printed with `%v`, a space between two operands when neither
/// is a string.
pub(crate) fn sprint<V: AsRef<Value>>(args: &[V]) -> String {
    let mut out = String::new();
    for (index, arg) in args.iter().enumerate() {
        let arg = arg.as_ref();
        let is_string = matches!(arg, Value::String(_));
        if index > 0 && !is_string && !matches!(args[index - 1].as_ref(), Value::String(_)) {
            out.push(' ');
        }
        Printer::new(&mut out).print_value(arg, 'v', &Spec::default());
    }
    out
}

/// `fmt.Sprintln(args...)`: operands printed with `%v`, always space-separated, then a newline.
pub(crate) fn sprintln<V: AsRef<Value>>(args: &[V]) -> String {
    let mut out = String::new();
    for (index, arg) in args.iter().enumerate() {
        let arg = arg.as_ref();
        if index > 0 {
            out.push(' ');
        }
        Printer::new(&mut out).print_value(arg, 'v', &Spec::default());
    }
    out.push('\n');
    out
}

/// `fmt.Sprintf(format, args...)`.
pub(crate) fn sprintf<V: AsRef<Value>>(format: &str, args: &[V]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = format.chars().collect();
    let mut arg_index = 0;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        let mut spec = Spec::default();
        // Flags.
        while i < chars.len() {
            match chars[i] {
                '#' => spec.sharp = true,
                '0' => spec.zero = !spec.minus,
                '+' => spec.plus = true,
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                ' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        // Width.
        if i < chars.len() && chars[i] == '*' {
            i += 1;
            match take_int_arg(args, &mut arg_index) {
                Some(width) => {
                    if width < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = Some(width.unsigned_abs() as usize);
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
        } else {
            let (number, next) = parse_number(&chars, i);
            if let Some(number) = number {
                if number > MAX_WIDTH_OR_PRECISION {
                    out.push_str("%!(BADWIDTH)");
                } else {
                    spec.width = Some(number);
                }
            }
            i = next;
        }
        // Precision.
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            if i < chars.len() && chars[i] == '*' {
                i += 1;
                match take_int_arg(args, &mut arg_index) {
                    Some(precision) if precision >= 0 => {
                        spec.precision = Some(precision as usize);
                    }
                    Some(_) => {}
                    None => out.push_str("%!(BADPREC)"),
                }
            } else {
                let (number, next) = parse_number(&chars, i);
                match number {
                    Some(number) if number > MAX_WIDTH_OR_PRECISION => {
                        out.push_str("%!(BADPREC)");
                    }
                    Some(number) => spec.precision = Some(number),
                    None => spec.precision = Some(0),
                }
                i = next;
            }
        }
        if i >= chars.len() {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = chars[i];
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        if verb == 'v' {
            // `%+v` and `%#v` ask for struct field names and Go syntax, not for a sign.
            spec.plus = false;
            spec.sharp = false;
        }
        let Some(arg) = args.get(arg_index).map(AsRef::as_ref) else {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(MISSING)");
            continue;
        };
        arg_index += 1;
        if verb == 'T' {
            Printer::new(&mut out).pad_string(arg.type_name(), &spec);
            continue;
        }
        Printer::new(&mut out).print_value(arg, verb, &spec);
    }
    if arg_index < args.len() {
        out.push_str("%!(EXTRA ");
        for (index, arg) in args[arg_index..].iter().enumerate() {
            let arg = arg.as_ref();
            if index > 0 {
                out.push_str(", ");
            }
            out.push_str(arg.type_name());
            out.push('=');
            Printer::new(&mut out).print_value(arg, 'v', &Spec::default());
        }
        out.push(')');
    }
    out
}

fn take_int_arg<V: AsRef<Value>>(args: &[V], arg_index: &mut usize) -> Option<i64> {
    let arg = args.get(*arg_index)?.as_ref();
    *arg_index += 1;
    match arg {
        Value::Int(i) if i.unsigned_abs() <= MAX_WIDTH_OR_PRECISION as u64 => Some(*i),
        _ => None,
    }
}

fn parse_number(chars: &[char], start: usize) -> (Option<usize>, usize) {
    let mut i = start;
    let mut number: usize = 0;
    while i < chars.len() && chars[i].is_ascii_digit() {
        number = number
            .saturating_mul(10)
            .saturating_add(chars[i] as usize - '0' as usize);
        i += 1;
    }
    if i == start {
        (None, start)
    } else {
        (Some(number), i)
    }
}

/// The flags, width and precision of one verb.
#[derive(Debug, Clone, Default)]
struct Spec {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

struct Printer<'o> {
    out: &'o mut String,
}

impl<'o> Printer<'o> {
    fn new(out: &'o mut String) -> Printer<'o> {
        Printer { out }
    }

    fn print_value(&mut self, value: &Value, verb: char, spec: &Spec) {
        match value {
            Value::Nil => match verb {
                'v' => self.pad_string("<nil>", spec),
                _ => self.bad_verb(value, verb, spec),
            },
            Value::Bool(b) => match verb {
                't' | 'v' => self.pad_string(if *b { "true" } else { "false" }, spec),
                _ => self.bad_verb(value, verb, spec),
            },
            Value::Int(i) => self.print_int(*i, verb, spec, value),
            Value::Float(x) => self.print_float(*x, verb, spec, value),
            Value::String(s) => self.print_string(s, verb, spec, value),
            Value::List(list) => {
                self.out.push('[');
                for (index, element) in list.iter().enumerate() {
                    if index > 0 {
                        self.out.push(' ');
                    }
                    self.print_element(element, verb, spec);
                }
                self.out.push(']');
            }
            Value::Map(map) => {
                self.out.push_str("map[");
                for (index, (key, element)) in map.iter().enumerate() {
                    if index > 0 {
                        self.out.push(' ');
                    }
                    self.print_string(key, verb, spec, &Value::String(key.clone()));
                    self.out.push(':');
                    self.print_element(element, verb, spec);
                }
                self.out.push(']');
            }
            Value::StringMap(map) => {
                self.out.push_str("map[");
                for (index, (key, element)) in map.iter().enumerate() {
                    if index > 0 {
                        self.out.push(' ');
                    }
                    self.print_string(key, verb, spec, &Value::String(key.clone()));
                    self.out.push(':');
                    self.print_string(element, verb, spec, &Value::String(element.clone()));
                }
                self.out.push(']');
            }
            Value::Object(object) => match verb {
                'v' | 's' => self.pad_string(&object.display(), spec),
                'q' => self.pad_string(&quote(&object.display()), spec),
                _ => self.bad_verb(value, verb, spec),
            },
        }
    }

    /// An element of a list or map: a nil interface prints as `<nil>` whatever the verb.
    fn print_element(&mut self, element: &Value, verb: char, spec: &Spec) {
        if let Value::Nil = element {
            self.pad_string("<nil>", spec);
        } else {
            self.print_value(element, verb, spec);
        }
    }

    /// `%!verb(type=value)`, the value printed with `%v` and the verb's flags and width.
    fn bad_verb(&mut self, value: &Value, verb: char, spec: &Spec) {
        self.out.push_str("%!");
        self.out.push(verb);
        self.out.push('(');
        match value {
            Value::Nil => self.out.push_str("<nil>"),
            _ => {
                self.out.push_str(value.type_name());
                self.out.push('=');
                self.print_value(value, 'v', spec);
            }
        }
        self.out.push(')');
    }

    /// Pads to the width with spaces (or zeros with the `0` flag), left or right.
    fn pad_string(&mut self, text: &str, spec: &Spec) {
        let length = text.chars().count();
        let padding = spec.width.map_or(0, |width| width.saturating_sub(length));
        if padding == 0 {
            self.out.push_str(text);
            return;
        }
        if spec.minus {
            self.out.push_str(text);
            self.push_repeated(' ', padding);
        } else {
            self.push_repeated(if spec.zero { '0' } else { ' ' }, padding);
            self.out.push_str(text);
        }
    }

    fn push_repeated(&mut self, c: char, count: usize) {
        self.out.extend(std::iter::repeat_n(c, count));
    }

    fn print_string(&mut self, s: &str, verb: char, spec: &Spec, value: &Value) {
        let truncated: String = match spec.precision {
            Some(precision) => s.chars().take(precision).collect(),
            None => s.to_owned(),
        };
        match verb {
            'v' | 's' => self.pad_string(&truncated, spec),
            'q' => {
                let quoted = if spec.sharp && can_backquote(&truncated) {
                    format!("`{truncated}`")
                } else if spec.plus {
                    quote_ascii(&truncated)
                } else {
                    quote(&truncated)
                };
                self.pad_string(&quoted, spec);
            }
            'x' | 'X' => {
                let bytes = match spec.precision {
                    Some(precision) => &s.as_bytes()[..precision.min(s.len())],
                    None => s.as_bytes(),
                };
                let mut hex = String::new();
                for (index, byte) in bytes.iter().enumerate() {
                    if spec.space && index > 0 {
                        hex.push(' ');
                    }
                    if spec.sharp && (spec.space || index == 0) {
                        hex.push_str(if verb == 'x' { "0x" } else { "0X" });
                    }
                    if verb == 'x' {
                        hex.push_str(&format!("{byte:02x}"));
                    } else {
                        hex.push_str(&format!("{byte:02X}"));
                    }
                }
                self.pad_string(&hex, spec);
            }
            _ => self.bad_verb(value, verb, spec),
        }
    }

    fn print_int(&mut self, i: i64, verb: char, spec: &Spec, value: &Value) {
        match verb {
            'v' | 'd' => self.format_integer(i, 10, verb, spec),
            'b' => self.format_integer(i, 2, verb, spec),
            'o' | 'O' => self.format_integer(i, 8, verb, spec),
            'x' | 'X' => self.format_integer(i, 16, verb, spec),
            'c' => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                self.pad_string(&c.to_string(), spec);
            }
            'q' => {
                let c = u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .unwrap_or('\u{FFFD}');
                self.pad_string(&quote_rune(c, spec.plus), spec);
            }
            'U' => {
                let mut text = format!("U+{:04X}", i);
                if spec.sharp
                    && let Some(c) = u32::try_from(i).ok().and_then(char::from_u32)
                    && !c.is_control()
                {
                    text.push_str(&format!(" '{c}'"));
                }
                self.pad_string(&text, spec);
            }
            _ => self.bad_verb(value, verb, spec),
        }
    }

    /// Go's `fmtInteger`: precision is a minimum digit count, `0` with a width becomes one.
    fn format_integer(&mut self, i: i64, base: u32, verb: char, spec: &Spec) {
        let negative = i < 0;
        let magnitude = i.unsigned_abs();
        let mut min_digits = 0;
        if let Some(precision) = spec.precision {
            min_digits = precision;
            if precision == 0 && magnitude == 0 {
                let padding = spec.width.unwrap_or(0);
                self.push_repeated(' ', padding);
                return;
            }
        } else if spec.zero
            && let Some(width) = spec.width
        {
            min_digits = width;
            if negative || spec.plus || spec.space {
                min_digits = min_digits.saturating_sub(1);
            }
        }
        let mut digits = match base {
            2 => format!("{magnitude:b}"),
            8 => format!("{magnitude:o}"),
            16 if verb == 'X' => format!("{magnitude:X}"),
            16 => format!("{magnitude:x}"),
            _ => magnitude.to_string(),
        };
        if digits.len() < min_digits {
            digits = format!("{}{digits}", "0".repeat(min_digits - digits.len()));
        }
        let mut prefix = String::new();
        if negative {
            prefix.push('-');
        } else if spec.plus {
            prefix.push('+');
        } else if spec.space {
            prefix.push(' ');
        }
        match (base, spec.sharp, verb) {
            (2, true, _) => prefix.push_str("0b"),
            (8, _, 'O') => prefix.push_str("0o"),
            (8, true, _) if !digits.starts_with('0') => prefix.push('0'),
            (16, true, 'x') => prefix.push_str("0x"),
            (16, true, 'X') => prefix.push_str("0X"),
            _ => {}
        }
        let text = format!("{prefix}{digits}");
        let unpadded_zero = Spec {
            zero: false,
            ..spec.clone()
        };
        self.pad_string(&text, &unpadded_zero);
    }

    /// Go's `fmtFloat`: sign handling, and no zero padding for infinities and NaN.
    fn print_float(&mut self, x: f64, verb: char, spec: &Spec, value: &Value) {
        let (format_verb, default_precision) = match verb {
            'v' => ('g', None),
            'g' | 'G' | 'x' | 'X' => (verb, None),
            'e' | 'E' | 'f' | 'F' => (verb, Some(6)),
            _ => {
                self.bad_verb(value, verb, spec);
                return;
            }
        };
        let precision = spec.precision.or(default_precision);
        let formatted = format_float(x, format_verb, precision);
        let mut number = if formatted.starts_with('-') || formatted.starts_with('+') {
            formatted
        } else {
            format!("+{formatted}")
        };
        if spec.sharp && x.is_finite() {
            number = apply_sharp(&number, verb, precision);
        }
        if spec.space && number.starts_with('+') && !spec.plus {
            number.replace_range(0..1, " ");
        }
        if x.is_infinite() || x.is_nan() {
            if x.is_nan() && !spec.space && !spec.plus {
                number.remove(0);
            }
            let no_zero = Spec {
                zero: false,
                ..spec.clone()
            };
            self.pad_string(&number, &no_zero);
            return;
        }
        if spec.plus || !number.starts_with('+') {
            let length = number.chars().count();
            if spec.zero
                && let Some(width) = spec.width
                && width > length
            {
                let (sign, rest) = number.split_at(1);
                self.out.push_str(sign);
                self.push_repeated('0', width - length);
                self.out.push_str(rest);
                return;
            }
            self.pad_string(&number, spec);
            return;
        }
        self.pad_string(&number[1..], spec);
    }
}

/// `strconv.Quote`: a double-quoted Go string literal, non-printable runes escaped.
pub(crate) fn quote(s: &str) -> String {
    quote_with(s, '"', false)
}

fn quote_ascii(s: &str) -> String {
    quote_with(s, '"', true)
}

fn quote_rune(c: char, ascii_only: bool) -> String {
    quote_with(&c.to_string(), '\'', ascii_only)
}

fn quote_with(s: &str, quote_char: char, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote_char);
    for c in s.chars() {
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            c if c == quote_char => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_ascii() => out.push(c),
            c if ascii_only || !is_go_printable(c) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote_char);
    out
}

/// An approximation of Go's `strconv.IsPrint` for non-ASCII runes: everything but control,
/// separator (other than U+0020), private-use, surrogate, and unassigned-looking format runes.
pub(crate) fn is_go_printable(c: char) -> bool {
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0x00AD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xE000..=0xF8FF | 0xFFF9..=0xFFFB))
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(format: &str, args: &[Value]) -> String {
        sprintf(format, args)
    }

    #[test]
    fn float_verbs_match_go() {
        // Expected strings recorded from Go 1.19's fmt.
        let cases: &[(f64, &str)] = &[
            (
                0.1,
                "0.1|0.1|0.1|1.000000e-01|0.10|0|0000.100|0.1| 1.00e-01|       0.1|0.10      |000.1|0.1|0.100000",
            ),
            (
                1e21,
                "1e+21|1e+21|1e+21|1.000000e+21|1000000000000000000000.00|1000000000000000000000|1000000000000000000000.000|1e+21| 1.00e+21|     1e+21|1000000000000000000000.00|1e+21|1e+21|1000000000000000000000.000000",
            ),
            (
                123456789.0,
                "1.23456789e+08|1.23456789e+08|1.235e+08|1.234568e+08|123456789.00|123456789|123456789.000|1.23456789e+08| 1.23e+08|  1.23e+08|123456789.00|1.23456789e+08|1.23e+08|123456789.000000",
            ),
            (
                100000.0,
                "100000|100000|1e+05|1.000000e+05|100000.00|100000|100000.000|100000| 1.00e+05|     1e+05|100000.00 |100000|1e+05|100000.000000",
            ),
            (
                1e-5,
                "1e-05|1e-05|1e-05|1.000000e-05|0.00|0|0000.000|1e-05| 1.00e-05|     1e-05|0.00      |1e-05|1e-05|0.000010",
            ),
            (
                12.345,
                "12.345|12.345|12.35|1.234500e+01|12.35|12|0012.345|12.345| 1.23e+01|      12.3|12.35     |12.345|12.3|12.345000",
            ),
            (
                2.5,
                "2.5|2.5|2.5|2.500000e+00|2.50|2|0002.500|2.5| 2.50e+00|       2.5|2.50      |002.5|2.5|2.500000",
            ),
            (
                0.125,
                "0.125|0.125|0.125|1.250000e-01|0.12|0|0000.125|0.125| 1.25e-01|     0.125|0.12      |0.125|0.125|0.125000",
            ),
            (
                f64::INFINITY,
                "+Inf|+Inf|+Inf|+Inf|+Inf|+Inf|    +Inf|+Inf| Inf|      +Inf|+Inf      | +Inf|+Inf|+Inf",
            ),
            (
                f64::NAN,
                "NaN|NaN|NaN|NaN|NaN|NaN|     NaN|NaN| NaN|       NaN|NaN       |  NaN|NaN|NaN",
            ),
            (
                -0.0,
                "-0|-0|-0|-0.000000e+00|-0.00|-0|-000.000|-0|-0.00e+00|        -0|-0.00     |-0000|-0|-0.000000",
            ),
            (
                5e-324,
                "5e-324|5e-324|4.941e-324|4.940656e-324|0.00|0|0000.000|5e-324| 4.94e-324| 4.94e-324|0.00      |5e-324|4.94e-324|0.000000",
            ),
        ];
        for (value, expected) in cases {
            let args = vec![Value::Float(*value); 14];
            let got = f(
                "%v|%g|%.4g|%e|%.2f|%.0f|%08.3f|%+v|% .2e|%10.3g|%-10.2f|%05v|%.3v|%f",
                &args,
            );
            assert_eq!(&got, expected, "value {value}");
        }
    }

    #[test]
    fn string_and_integer_verbs_match_go() {
        let s = |x: &str| Value::String(x.to_owned());
        assert_eq!(
            f(
                "%05s|%-5s|%5.2s|%q|%x|% x|%#x|%X|%10q|%.1q",
                &[
                    s("abc"),
                    s("ab"),
                    s("abcdef"),
                    s("a\"b\n\x00é\u{2028}"),
                    s("hi"),
                    s("hi"),
                    s("hi"),
                    s("hi"),
                    s("a"),
                    s("abc")
                ]
            ),
            r#"00abc|ab   |   ab|"a\"b\n\x00é\u2028"|6869|68 69|0x6869|6869|       "a"|"a""#
        );
        let ints: Vec<Value> = [
            42, 42, 42, -42, 42, 42, 255, 255, 255, 8, 8, 5, 65, 65, 65, 65, 7, 7, -255,
        ]
        .into_iter()
        .map(Value::Int)
        .collect();
        assert_eq!(
            f(
                "%d|%5d|%-5d|%05d|%+d|% d|%x|%X|%#x|%o|%#o|%b|%c|%q|%U|%#U|%.3d|%08.3d|%x",
                &ints
            ),
            "42|   42|42   |-0042|+42| 42|ff|FF|0xff|10|010|101|A|'A'|U+0041|U+0041 'A'|007|     007|-ff"
        );
    }

    #[test]
    fn mismatches_and_argument_errors_match_go() {
        assert_eq!(
            f(
                "%d|%s|%f|%t|%v|%d",
                &[
                    Value::from("str"),
                    Value::Int(5),
                    Value::Int(5),
                    Value::Int(5),
                    Value::Nil,
                    Value::Nil
                ]
            ),
            "%!d(string=str)|%!s(int=5)|%!f(int=5)|%!t(int=5)|<nil>|%!d(<nil>)"
        );
        assert_eq!(f("%d %d", &[Value::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(
            f("%d\n", &[Value::Int(1), Value::from("x"), Value::Float(2.5)]),
            "1\n%!(EXTRA string=x, float64=2.5)"
        );
        assert_eq!(
            f("%!|%z|%|%5%|%", &[Value::Int(3)]),
            "%!!(int=3)|%!z(MISSING)|%!|(MISSING)%|%!(NOVERB)"
        );
        assert_eq!(
            f(
                "%*d|%-*d|%.*f|%*d",
                &[
                    Value::Int(5),
                    Value::Int(1),
                    Value::Int(5),
                    Value::Int(2),
                    Value::Int(2),
                    Value::Float(3.14259),
                    Value::from("x"),
                    Value::Int(4)
                ]
            ),
            "    1|2    |3.14|%!(BADWIDTH)4"
        );
        assert_eq!(f("%10000000d", &[Value::Int(1)]), "%!(BADWIDTH)1");
    }

    #[test]
    fn composite_values_print_like_go() {
        let list = Value::List(vec![
            Value::Int(1),
            Value::from("a"),
            Value::Nil,
            Value::Float(2.5),
        ]);
        let map = Value::Map(
            [
                ("b".to_owned(), Value::Int(1)),
                ("a".to_owned(), Value::from("x")),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(
            f("%v|%v|%v", &[list, map, Value::StringMap(Default::default())]),
            "[1 a <nil> 2.5]|map[a:x b:1]|map[]"
        );
        assert_eq!(
            sprint(&[
                Value::Int(1),
                Value::Int(2),
                Value::from("a"),
                Value::from("b"),
                Value::Int(3),
                Value::Nil,
                Value::Float(4.5),
                Value::Bool(true)
            ]),
            "1 2ab3 <nil> 4.5 true"
        );
        assert_eq!(
            sprintln(&[Value::from("a"), Value::Int(1), Value::Int(2)]),
            "a 1 2\n"
        );
        assert_eq!(
            f(
                "%6.2f%%|%e|%E|%G|%.3e",
                &[
                    Value::Float(99.5),
                    Value::Float(1e-10),
                    Value::Float(123456.0),
                    Value::Float(1e-7),
                    Value::Float(0.0)
                ]
            ),
            " 99.50%|1.000000e-10|1.234560E+05|1E-07|0.000e+00"
        );
    }
}
