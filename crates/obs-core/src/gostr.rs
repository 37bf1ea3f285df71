//! Go's double-quoted string literals, as the lexers of LogQL and TraceQL (both generated
//! from Go grammars with Go's `text/scanner` rules) read them.

/// Reads the double-quoted literal at the start of `text` (which starts with `"`): its
/// decoded value and the bytes it took, quotes included. Escapes are Go's (`\a \b \f \n \r
/// \t \v \\ \"`, three octal digits, `\x` two hex digits as a byte, `\u` / `\U` code
/// points); a literal may not span lines and must decode to UTF-8. Errors are the scanner's
/// messages: `literal not terminated`, `invalid char escape`, `invalid UTF-8 in string literal`.
pub fn unquote_prefix(text: &str) -> Result<(String, usize), &'static str> {
    let mut bytes: Vec<u8> = Vec::with_capacity(text.len().min(64));
    let mut chars = text.char_indices().skip(1);
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => {
                return String::from_utf8(bytes)
                    .map(|value| (value, index + 1))
                    .map_err(|_| "invalid UTF-8 in string literal");
            }
            '\n' => break,
            '\\' => {
                let Some((_, escape)) = chars.next() else {
                    break;
                };
                let mut push_char = |c: char| bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                match escape {
                    'a' => push_char('\x07'),
                    'b' => push_char('\x08'),
                    'f' => push_char('\x0c'),
                    'n' => push_char('\n'),
                    'r' => push_char('\r'),
                    't' => push_char('\t'),
                    'v' => push_char('\x0b'),
                    '\\' => push_char('\\'),
                    '"' => push_char('"'),
                    '0'..='7' => {
                        let mut value = escape.to_digit(8).unwrap_or_default();
                        for _ in 0..2 {
                            let digit = chars
                                .next()
                                .and_then(|(_, d)| d.to_digit(8))
                                .ok_or("invalid char escape")?;
                            value = value * 8 + digit;
                        }
                        bytes.push(u8::try_from(value).map_err(|_| "invalid char escape")?);
                    }
                    'x' | 'u' | 'U' => {
                        let digits = match escape {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut value: u32 = 0;
                        for _ in 0..digits {
                            let digit = chars
                                .next()
                                .and_then(|(_, d)| d.to_digit(16))
                                .ok_or("invalid char escape")?;
                            value = value * 16 + digit;
                        }
                        if escape == 'x' {
                            bytes.push(u8::try_from(value).unwrap_or_default());
                        } else {
                            push_char(char::from_u32(value).ok_or("invalid char escape")?);
                        }
                    }
                    _ => return Err("invalid char escape"),
                }
            }
            other => bytes.extend_from_slice(other.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    Err("literal not terminated")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escapes_decode_and_errors_name_the_problem() {
        assert_eq!(
            unquote_prefix(r#""a\tb\"\101\x41\u00e9\U0001F600" rest"#),
            Ok(("a\tb\"AAé😀".to_owned(), 32))
        );
        assert_eq!(unquote_prefix(r#""""#), Ok((String::new(), 2)));
        assert_eq!(unquote_prefix("\"abc"), Err("literal not terminated"));
        assert_eq!(unquote_prefix("\"a\nb\""), Err("literal not terminated"));
        assert_eq!(unquote_prefix(r#""\q""#), Err("invalid char escape"));
        assert_eq!(unquote_prefix(r#""\400""#), Err("invalid char escape"));
        assert_eq!(
            unquote_prefix(r#""\xff""#),
            Err("invalid UTF-8 in string literal")
        );
    }
}
