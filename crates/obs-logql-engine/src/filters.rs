//! Line filters, the `pattern` parser and `ip()` matching, with Loki's algorithms
//! (`pkg/logql/log/filter.go`, `pattern/pattern.go`, `ip.go`).

use std::net::IpAddr;

use obs_logql::{IpMatcher, LineFilter, LineMatch, PatternExpr, PatternNode};

/// Whether `line` passes a line filter (`|=`, `!=`, `|~`, `!~`, `|>`, `!>`, with `or`).
pub(crate) fn line_filter_passes(filter: &LineFilter, line: &str) -> bool {
    filter.passes(|alternative| match alternative {
        LineMatch::Contains(text) => line.contains(text.as_str()),
        LineMatch::Regex(regex) => regex.is_match(line),
        LineMatch::Pattern(pattern) => pattern_test(pattern, line),
        LineMatch::Ip(pattern) => ip_scan(pattern.matcher(), line),
    })
}

/// Whether a `|>` pattern matches the whole line (Loki's `Matcher.Test`): literals found in
/// order, captures never empty, the line ending where the pattern ends.
pub(crate) fn pattern_test(pattern: &PatternExpr, line: &str) -> bool {
    let nodes = pattern.nodes();
    if line.is_empty() || nodes.is_empty() {
        return line.is_empty() && nodes.is_empty();
    }
    let mut offset = 0;
    for (index, node) in nodes.iter().enumerate() {
        let PatternNode::Literal(literal) = node else {
            continue;
        };
        let Some(found) = line[offset..].find(literal.as_str()) else {
            return false;
        };
        // An empty capture between two literals fails. (Loki does not check that a leading
        // literal starts the line: `foo <_>` accepts `xfoo bar`.)
        if index != 0 && found == 0 {
            return false;
        }
        offset += found + literal.len();
    }
    let ends_on_capture = matches!(nodes.last(), Some(PatternNode::Capture(_)));
    ends_on_capture == (offset != line.len())
}

/// The values of the named captures of a `| pattern` expression, in order; fewer than the
/// captures when the line ends early, none when the leading literal does not start the line
/// (Loki's `Matcher.Matches`).
pub(crate) fn pattern_matches<'l>(pattern: &PatternExpr, line: &'l str) -> Vec<&'l str> {
    let mut captures = Vec::new();
    let mut nodes = pattern.nodes();
    if line.is_empty() || nodes.is_empty() {
        return captures;
    }
    let mut rest = line;
    if let Some(PatternNode::Literal(literal)) = nodes.first() {
        if rest.find(literal.as_str()) != Some(0) {
            return captures;
        }
        rest = &rest[literal.len()..];
        nodes = &nodes[1..];
    }
    while let Some(PatternNode::Capture(name)) = nodes.first() {
        let named = name != "_";
        let Some(PatternNode::Literal(literal)) = nodes.get(1) else {
            // Ending on a capture: it takes the rest of the line.
            if named {
                captures.push(rest);
            }
            return captures;
        };
        nodes = &nodes[2..];
        let Some(found) = rest.find(literal.as_str()) else {
            if named {
                captures.push(rest);
            }
            return captures;
        };
        if named {
            captures.push(&rest[..found]);
        }
        rest = &rest[found + literal.len()..];
    }
    captures
}

/// Whether `text` holds an address that `matcher` accepts, scanning as Loki's `ipFilter`
/// does: at each position that looks like the start of an IPv4 or IPv6 address, the longest
/// run of address characters is parsed.
pub(crate) fn ip_scan(matcher: IpMatcher, text: &str) -> bool {
    const IPV4_CHARSET: &[u8] = b"0123456789.";
    const IPV6_CHARSET: &[u8] = b"0123456789abcdefABCDEF:.";
    let bytes = text.as_bytes();
    let at = |index: usize| bytes.get(index).copied().unwrap_or(0);
    let is_hex = |byte: u8| byte.is_ascii_hexdigit();
    let try_parse = |start: usize, charset: &[u8]| -> (bool, usize) {
        let len = bytes[start..].iter().take_while(|b| charset.contains(b)).count();
        let candidate = &text[start..start + len];
        match candidate.parse::<IpAddr>() {
            Ok(addr) if matcher.contains(addr) => (true, 0),
            _ => (false, len),
        }
    };
    let mut index = 0;
    while index < bytes.len() {
        let ipv4_hint = index + 3 < bytes.len()
            && bytes[index].is_ascii_digit()
            && (bytes[index + 1] == b'.' || bytes[index + 2] == b'.' || bytes[index + 3] == b'.');
        if ipv4_hint {
            let (found, skip) = try_parse(index, IPV4_CHARSET);
            if found {
                return true;
            }
            index += skip + 1;
            continue;
        }
        let (a, b, c, d, e) = (
            at(index),
            at(index + 1),
            at(index + 2),
            at(index + 3),
            at(index + 4),
        );
        let ipv6_hint = (a == b':' && b == b':' && is_hex(c))
            || (is_hex(a) && b == b':')
            || (is_hex(a) && is_hex(b) && c == b':')
            || (is_hex(a) && is_hex(b) && is_hex(c) && d == b':')
            || (is_hex(a) && is_hex(b) && is_hex(c) && is_hex(d) && e == b':');
        if ipv6_hint {
            let (found, skip) = try_parse(index, IPV6_CHARSET);
            if found {
                return true;
            }
            index += skip + 1;
            continue;
        }
        index += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(query: &str) -> LineFilter {
        let expr = obs_logql::parse(query).unwrap();
        let log = expr.as_log().unwrap();
        match &log.pipeline[0] {
            obs_logql::Stage::LineFilter(filter) => filter.clone(),
            other => panic!("not a line filter: {other:?}"),
        }
    }

    fn pattern(query: &str) -> PatternExpr {
        let expr = obs_logql::parse(query).unwrap();
        match &expr.as_log().unwrap().pipeline[0] {
            obs_logql::Stage::Pattern(pattern) => pattern.clone(),
            obs_logql::Stage::LineFilter(filter) => match &filter.alternatives[0] {
                LineMatch::Pattern(pattern) => pattern.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn line_filters_match_as_loki() {
        assert!(line_filter_passes(&filter(r#"{a="b"} |= "err""#), "an error"));
        assert!(!line_filter_passes(&filter(r#"{a="b"} != "err""#), "an error"));
        assert!(line_filter_passes(
            &filter(r#"{a="b"} |= "x" or "err""#),
            "an error"
        ));
        assert!(!line_filter_passes(
            &filter(r#"{a="b"} != "x" or "err""#),
            "an error"
        ));
        assert!(line_filter_passes(&filter(r#"{a="b"} |~ "(?i)ERR""#), "an error"));
        assert!(line_filter_passes(&filter(r#"{a="b"} !~ "^x""#), "an error"));
        assert!(line_filter_passes(&filter(r#"{a="b"} |= """#), "anything"));
        assert!(!line_filter_passes(&filter(r#"{a="b"} != """#), "anything"));
    }

    #[test]
    fn pattern_filters_test_whole_lines() {
        let p = pattern(r#"{a="b"} |> "<_> bar <_>""#);
        assert!(pattern_test(&p, "foo bar baz"));
        assert!(!pattern_test(&p, " bar "));
        assert!(!pattern_test(&pattern(r#"{a="b"} |> "<_> bar""#), "foo bar baz"));
        assert!(pattern_test(&pattern(r#"{a="b"} |> "<_> baz""#), "foo bar baz"));
        assert!(pattern_test(&pattern(r#"{a="b"} |> "foo <_>""#), "foo bar baz"));
        assert!(pattern_test(&pattern(r#"{a="b"} |> "foo <_>""#), "xfoo bar"));
        assert!(pattern_test(&pattern(r#"{a="b"} |> """#), ""));
        assert!(!pattern_test(&pattern(r#"{a="b"} |> """#), "x"));
    }

    #[test]
    fn pattern_parser_captures() {
        let p = pattern(r#"{a="b"} | pattern "<ip> - <_> [<ts>] \"<method> <path> <_>\"""#);
        let line = r#"10.0.0.1 - - [10/Oct/2023:13:55:36] "GET /api/v1 HTTP/1.1" 200"#;
        assert_eq!(
            pattern_matches(&p, line),
            ["10.0.0.1", "10/Oct/2023:13:55:36", "GET", "/api/v1"]
        );
        let tail = pattern(r#"{a="b"} | pattern "<method> <path>""#);
        assert_eq!(pattern_matches(&tail, "GET /x y"), ["GET", "/x y"]);
        let short = pattern(r#"{a="b"} | pattern "<a> <b> <c>""#);
        assert_eq!(pattern_matches(&short, "one"), ["one"]);
        let leading = pattern(r#"{a="b"} | pattern "level=<level> <_>""#);
        assert!(pattern_matches(&leading, "x level=info msg").is_empty());
        assert_eq!(pattern_matches(&leading, "level=info msg"), ["info"]);
    }

    #[test]
    fn ip_filters_find_addresses_in_text() {
        let cidr = |query: &str| match &filter(query).alternatives[0] {
            LineMatch::Ip(pattern) => pattern.matcher(),
            other => panic!("{other:?}"),
        };
        let private = cidr(r#"{a="b"} |= ip("192.168.0.0/16")"#);
        assert!(ip_scan(private, "request from 192.168.1.20 accepted"));
        assert!(!ip_scan(private, "request from 10.0.0.1"));
        assert!(!ip_scan(private, "version 1.2.3"));
        let single = cidr(r#"{a="b"} |= ip("::1")"#);
        assert!(ip_scan(single, "listening on ::1 port 80"));
        let range = cidr(r#"{a="b"} |= ip("10.0.0.1-10.0.0.9")"#);
        assert!(ip_scan(range, "x=10.0.0.5,"));
        assert!(!ip_scan(range, "x=10.0.0.10"));
        assert!(!ip_scan(range, "1.2"));
    }
}
