//! The expressions of `| json label="expr"` and `| logfmt label="expr"`.
//!
//! A JSON expression is a path: fields (`a.b`), quoted keys (`["a b"]`) and array indexes
//! (`[0]`), as Loki's `jsonexpr` reads it. A logfmt expression names one key.

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonPathSegment {
    /// An object member: `a` in `a.b`, or `"a b"` in `["a b"]`.
    Key(String),
    /// An array element: `0` in `a[0]`.
    Index(usize),
}

/// Parses a JSON path expression; the error follows Loki's wording.
pub(crate) fn parse_json_path(expression: &str) -> Result<Vec<JsonPathSegment>, String> {
    let tokens = tokenize(expression, true).map_err(|reason| cannot_parse(expression, &reason))?;
    let mut path = Vec::new();
    let mut index = 0;
    let syntax_error = |found: Option<&Token>, expecting: &str| {
        cannot_parse(
            expression,
            &format!(
                "syntax error: unexpected {}, expecting {expecting}",
                describe(found)
            ),
        )
    };
    // The first segment: a field, `["key"]` or `[index]`.
    match tokens.first() {
        Some(Token::Field(name)) => {
            path.push(JsonPathSegment::Key(name.clone()));
            index = 1;
        }
        Some(Token::OpenBracket) => {}
        other => return Err(syntax_error(other, "LSB or FIELD")),
    }
    while index < tokens.len() {
        match &tokens[index] {
            Token::Dot => match tokens.get(index + 1) {
                Some(Token::Field(name)) => {
                    path.push(JsonPathSegment::Key(name.clone()));
                    index += 2;
                }
                other => return Err(syntax_error(other, "FIELD")),
            },
            Token::OpenBracket => {
                let segment = match tokens.get(index + 1) {
                    Some(Token::Str(key)) => JsonPathSegment::Key(key.clone()),
                    Some(Token::Index(element)) => JsonPathSegment::Index(*element),
                    other => return Err(syntax_error(other, "STRING or INDEX")),
                };
                match tokens.get(index + 2) {
                    Some(Token::CloseBracket) => {}
                    other => return Err(syntax_error(other, "RSB")),
                }
                path.push(segment);
                index += 3;
            }
            other => return Err(syntax_error(Some(other), "LSB or DOT")),
        }
    }
    Ok(path)
}

/// Parses a logfmt expression: one key, bare (`msg`) or quoted (`"msg"`).
pub(crate) fn parse_logfmt_key(expression: &str) -> Result<String, String> {
    let tokens = tokenize(expression, false).map_err(|reason| cannot_parse(expression, &reason))?;
    match tokens.as_slice() {
        [Token::Field(key)] | [Token::Str(key)] => Ok(key.clone()),
        [] => Err(cannot_parse(expression, "syntax error: unexpected $end")),
        [_, second, ..] => Err(cannot_parse(
            expression,
            &format!("syntax error: unexpected {}", describe(Some(second))),
        )),
        [other] => Err(cannot_parse(
            expression,
            &format!("syntax error: unexpected {}", describe(Some(other))),
        )),
    }
}

fn cannot_parse(expression: &str, reason: &str) -> String {
    format!("cannot parse expression [{expression}]: {reason}")
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Field(String),
    Str(String),
    Index(usize),
    Dot,
    OpenBracket,
    CloseBracket,
}

fn describe(token: Option<&Token>) -> &'static str {
    match token {
        None => "$end",
        Some(Token::Field(_)) => "FIELD",
        Some(Token::Str(_)) => "STRING",
        Some(Token::Index(_)) => "INDEX",
        Some(Token::Dot) => "DOT",
        Some(Token::OpenBracket) => "LSB",
        Some(Token::CloseBracket) => "RSB",
    }
}

/// Splits an expression into tokens. A quoted key ends at the next `"` or `]`, as in Loki.
fn tokenize(expression: &str, json: bool) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = expression.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {}
            '[' if json => tokens.push(Token::OpenBracket),
            ']' if json => tokens.push(Token::CloseBracket),
            '.' if json => tokens.push(Token::Dot),
            '0'..='9' if json => {
                let mut end = start + 1;
                while let Some(&(offset, next)) = chars.peek() {
                    match next {
                        '0'..='9' => {
                            end = offset + 1;
                            chars.next();
                        }
                        '.' => return Err("cannot use float as array index".to_owned()),
                        ' ' | '\t' | '\n' | ']' => break,
                        other => return Err(format!("non-integer value: {other}")),
                    }
                }
                let element = expression[start..end]
                    .parse()
                    .map_err(|_| format!("array index out of range: {}", &expression[start..end]))?;
                tokens.push(Token::Index(element));
            }
            'a'..='z' | 'A'..='Z' | '_' => {
                let mut end = start + 1;
                while let Some(&(offset, next)) = chars.peek() {
                    if !(next.is_ascii_alphanumeric() || next == '_') {
                        break;
                    }
                    end = offset + 1;
                    chars.next();
                }
                tokens.push(Token::Field(expression[start..end].to_owned()));
            }
            '"' => {
                let mut key = String::new();
                for (_, next) in chars.by_ref() {
                    if next == '"' || next == ']' {
                        break;
                    }
                    key.push(next);
                }
                tokens.push(Token::Str(key));
            }
            other => return Err(format!("unexpected char {other}")),
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> JsonPathSegment {
        JsonPathSegment::Key(name.to_owned())
    }

    #[test]
    fn json_paths_parse_like_loki() {
        assert_eq!(parse_json_path("app"), Ok(vec![key("app")]));
        assert_eq!(
            parse_json_path(r#"["field with space"]"#),
            Ok(vec![key("field with space")])
        );
        assert_eq!(parse_json_path("[0]"), Ok(vec![JsonPathSegment::Index(0)]));
        assert_eq!(parse_json_path("pod.uuid"), Ok(vec![key("pod"), key("uuid")]));
        assert_eq!(
            parse_json_path(r#"["pod"]["uuid"]"#),
            Ok(vec![key("pod"), key("uuid")])
        );
        assert_eq!(
            parse_json_path(r#"pod.deployment.params[0]["param"]"#),
            Ok(vec![
                key("pod"),
                key("deployment"),
                key("params"),
                JsonPathSegment::Index(0),
                key("param")
            ])
        );
        assert_eq!(parse_json_path("utf8"), Ok(vec![key("utf8")]));
    }

    #[test]
    fn invalid_json_paths_are_refused() {
        assert_eq!(
            parse_json_path("pod..uuid").unwrap_err(),
            "cannot parse expression [pod..uuid]: syntax error: unexpected DOT, expecting FIELD"
        );
        assert_eq!(
            parse_json_path(r#"["pod""#).unwrap_err(),
            r#"cannot parse expression [["pod"]: syntax error: unexpected $end, expecting RSB"#
        );
        for bad in [
            "",
            "field with space",
            r#""pod"]"#,
            "a[1.5]",
            "a[1x]",
            "a-b",
            "[99999999999999999999999]",
        ] {
            assert!(parse_json_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn logfmt_keys_are_one_name() {
        assert_eq!(parse_logfmt_key("msg"), Ok("msg".to_owned()));
        assert_eq!(parse_logfmt_key(" msg "), Ok("msg".to_owned()));
        assert_eq!(parse_logfmt_key(r#""msg""#), Ok("msg".to_owned()));
        for bad in ["", "a.b", "a b", "1a"] {
            assert!(parse_logfmt_key(bad).is_err(), "{bad:?}");
        }
    }
}
