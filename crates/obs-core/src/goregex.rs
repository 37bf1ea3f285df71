//! Go's RE2 regular-expression syntax on the `regex` crate: Prometheus (relabeling, label
//! matchers) and Alertmanager (matchers, `match_re`) compile user patterns with Go's
//! `regexp`, and a pattern must mean here what it means there.

/// Characters the `regex` crate gives a meaning outside a class; escaped to stay literal.
const META_OUTSIDE_CLASS: &str = r"\.+*?()|[]{}^$#&-~";
/// Characters the `regex` crate gives a meaning inside a class (`&&`, `--` and `~~` are set
/// operations, `[` opens a nested class); escaped to stay literal.
const META_INSIDE_CLASS: &str = r"[]\^-&~";

/// Rewrites a pattern from Go's RE2 syntax into the `regex` crate's, keeping Go's meaning
/// where the two differ:
///
/// - `\d`, `\s`, `\w`, `\b` and their negations are ASCII-only in Go, Unicode-aware in Rust;
/// - `\<`, `\>` and other escaped punctuation are literal characters in Go (`\<` and `\>` are
///   word boundaries in Rust);
/// - `\Q...\E` quotes literal text in Go; Rust has no such thing;
/// - a `{` that does not start a repetition (`a{`, `{,3}`, `x{01}`) is literal in Go, an
///   error in Rust;
/// - inside a class, `[` (unless it opens `[:alpha:]`), `&&`, `~~` and a `-` that makes no
///   range are literal in Go, nested classes and set operations in Rust.
///
/// A pattern Go refuses can still compile here (Rust also reads `(?x)`, `(?<name>...)`,
/// repetitions above 1000); no pattern Go accepts changes meaning.
pub fn go_syntax_to_rust(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut index = 0;
    while index < chars.len() {
        index = match chars[index] {
            '\\' => translate_escape_outside_class(&chars, index, &mut out),
            '[' => translate_class(&chars, index, &mut out),
            '{' => {
                if is_go_repetition(&chars[index..]) {
                    out.push('{');
                } else {
                    out.push_str(r"\{");
                }
                index + 1
            }
            other => {
                out.push(other);
                index + 1
            }
        };
    }
    out
}

/// Translates the escape at `chars[start]` (a backslash) outside a class; returns the index
/// after it.
fn translate_escape_outside_class(chars: &[char], start: usize, out: &mut String) -> usize {
    let Some(&escaped) = chars.get(start + 1) else {
        // A trailing backslash: let the regex crate report it.
        out.push('\\');
        return start + 1;
    };
    let replacement = match escaped {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        's' => r"[\t\n\x0C\r ]",
        'S' => r"[^\t\n\x0C\r ]",
        'b' => r"(?-u:\b)",
        'B' => r"(?-u:\B)",
        'Q' => return translate_quoted(chars, start + 2, out),
        _ => return copy_escape(chars, start, out, META_OUTSIDE_CLASS),
    };
    out.push_str(replacement);
    start + 2
}

/// Copies `\Q...\E` text (from `start`, after `\Q`) as escaped literals; returns the index
/// after `\E`, or the end.
fn translate_quoted(chars: &[char], start: usize, out: &mut String) -> usize {
    let mut index = start;
    while index < chars.len() {
        if chars[index] == '\\' && chars.get(index + 1) == Some(&'E') {
            return index + 2;
        }
        push_literal(chars[index], out, META_OUTSIDE_CLASS);
        index += 1;
    }
    index
}

/// Copies the escape at `chars[start]` (a backslash): escaped punctuation becomes the literal
/// character, `\x..`, `\p..` and octal escapes are copied whole, anything else as two
/// characters (the regex crate refuses what it does not know). Returns the index after it.
fn copy_escape(chars: &[char], start: usize, out: &mut String, meta: &str) -> usize {
    let Some(&escaped) = chars.get(start + 1) else {
        out.push('\\');
        return start + 1;
    };
    if escaped.is_ascii() && !escaped.is_ascii_alphanumeric() {
        push_literal(escaped, out, meta);
        return start + 2;
    }
    out.push('\\');
    out.push(escaped);
    let mut index = start + 2;
    match escaped {
        'x' | 'p' | 'P' if chars.get(index) == Some(&'{') => {
            while let Some(&c) = chars.get(index) {
                out.push(c);
                index += 1;
                if c == '}' {
                    break;
                }
            }
        }
        'x' | 'p' | 'P' => {
            // `\x41` has two digits, `\pL` one letter.
            let digits = if escaped == 'x' { 2 } else { 1 };
            for &c in chars.iter().skip(index).take(digits) {
                out.push(c);
                index += 1;
            }
        }
        '0'..='7' => {
            for &c in chars.iter().skip(index).take(2) {
                if !('0'..='7').contains(&c) {
                    break;
                }
                out.push(c);
                index += 1;
            }
        }
        _ => {}
    }
    index
}

/// Pushes `c` as a literal, escaped if `meta` holds it.
fn push_literal(c: char, out: &mut String, meta: &str) {
    if meta.contains(c) {
        out.push('\\');
    }
    out.push(c);
}

/// Translates the class that opens at `chars[start]` (`[`); returns the index after its `]`,
/// or the end if it is not closed (the regex crate then reports it).
fn translate_class(chars: &[char], start: usize, out: &mut String) -> usize {
    out.push('[');
    let mut index = start + 1;
    if chars.get(index) == Some(&'^') {
        out.push('^');
        index += 1;
    }
    // A `]` right after `[` or `[^` is a literal.
    let mut first = true;
    while index < chars.len() {
        if chars[index] == ']' && !first {
            out.push(']');
            return index + 1;
        }
        first = false;
        if let Some(next) = copy_posix_class(chars, index, out) {
            index = next;
            continue;
        }
        if chars[index] == '\\' {
            let perl_class = match chars.get(index + 1) {
                Some('d') => Some("0-9"),
                Some('w') => Some("0-9A-Za-z_"),
                Some('s') => Some(r"\t\n\x0C\r "),
                Some('D') => Some("[^0-9]"),
                Some('W') => Some("[^0-9A-Za-z_]"),
                Some('S') => Some(r"[^\t\n\x0C\r ]"),
                _ => None,
            };
            if let Some(members) = perl_class {
                out.push_str(members);
                index += 2;
                continue;
            }
            if matches!(chars.get(index + 1), Some('p' | 'P')) {
                index = copy_escape(chars, index, out, META_INSIDE_CLASS);
                continue;
            }
        }
        // A character, or a range: a `-` after a character, not followed by `]`.
        index = copy_class_char(chars, index, out);
        let makes_range =
            chars.get(index) == Some(&'-') && chars.get(index + 1).is_some_and(|next| *next != ']');
        if makes_range {
            out.push('-');
            index = copy_class_char(chars, index + 1, out);
        }
    }
    index
}

/// Copies `[:name:]` at `chars[start]`, as Go reads it (up to the next `:]`); returns the
/// index after it, or `None` if there is none.
fn copy_posix_class(chars: &[char], start: usize, out: &mut String) -> Option<usize> {
    if chars.get(start) != Some(&'[') || chars.get(start + 1) != Some(&':') {
        return None;
    }
    let close = (start + 2..chars.len().saturating_sub(1))
        .find(|&index| chars[index] == ':' && chars[index + 1] == ']')?;
    out.extend(&chars[start..close + 2]);
    Some(close + 2)
}

/// Copies one class member character at `chars[start]` (a literal or an escape); returns the
/// index after it.
fn copy_class_char(chars: &[char], start: usize, out: &mut String) -> usize {
    if chars[start] == '\\' {
        return copy_escape(chars, start, out, META_INSIDE_CLASS);
    }
    push_literal(chars[start], out, META_INSIDE_CLASS);
    start + 1
}

/// Whether `chars`, which starts with `{`, starts a repetition Go accepts: `{n}`, `{n,}` or
/// `{n,m}`, with no leading zeros.
fn is_go_repetition(chars: &[char]) -> bool {
    let mut index = 1;
    let Some(after_min) = skip_go_int(chars, index) else {
        return false;
    };
    index = after_min;
    if chars.get(index) == Some(&',') {
        index += 1;
        if let Some(after_max) = skip_go_int(chars, index) {
            index = after_max;
        }
    }
    chars.get(index) == Some(&'}')
}

/// The index after the decimal number at `chars[start]`, if there is one without a leading
/// zero.
fn skip_go_int(chars: &[char], start: usize) -> Option<usize> {
    let digits = chars[start.min(chars.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if digits == 0 || (digits > 1 && chars[start] == '0') {
        return None;
    }
    Some(start + digits)
}

/// The one-line reason of a `regex` crate error (its syntax errors draw the pattern and a
/// caret over several lines; the pattern there is the rewritten, anchored one).
pub fn regex_error_message(err: &regex::Error) -> String {
    match err {
        regex::Error::Syntax(text) => {
            let last_line = text.lines().last().unwrap_or_default();
            last_line.strip_prefix("error: ").unwrap_or(last_line).to_owned()
        }
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled regex exceeds the size limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// Compiles `pattern` (Go's RE2 syntax) anchored at both ends, as Prometheus and Alertmanager
/// compile `^(?:` + pattern + `)$`, with Go's octal escapes (`\012`) and at most `size_limit`
/// bytes of compiled program. The error is the one-line reason.
pub fn compile_anchored(pattern: &str, size_limit: usize) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{})$", go_syntax_to_rust(pattern)))
        .octal(true)
        .size_limit(size_limit)
        .build()
        .map_err(|err| regex_error_message(&err))
}
