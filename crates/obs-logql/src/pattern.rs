//! Pattern expressions: `<ip> - <_> [<ts>] "<method> <path> <_>"`, the argument of the
//! `pattern` parser and of the `|>` / `!>` line filters.
//!
//! A capture is `<name>` with an ASCII identifier inside; `<_>` captures without a name.
//! Everything else, a `<` that starts no capture included, is literal text.

/// One piece of a pattern expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternNode {
    /// Text that must appear as is.
    Literal(String),
    /// `<name>`; the name is `_` for an unnamed capture (`<_>`).
    Capture(String),
}

impl PatternNode {
    /// Whether this is a capture with a name (not `<_>`).
    pub fn is_named_capture(&self) -> bool {
        matches!(self, PatternNode::Capture(name) if name != "_")
    }
}

/// A parsed pattern expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternExpr {
    source: String,
    nodes: Vec<PatternNode>,
}

impl PatternExpr {
    /// The pattern of a `| pattern "..."` stage: at least one named capture, no two captures
    /// in a row, no name twice (Loki's `pattern.New`).
    pub(crate) fn parser(source: &str) -> Result<PatternExpr, String> {
        let nodes = split_nodes(source);
        if nodes.is_empty() {
            return Err("syntax error: unexpected $end".to_owned());
        }
        if !nodes.iter().any(PatternNode::is_named_capture) {
            return Err("at least one capture is required".to_owned());
        }
        check_no_consecutive_captures(&nodes)?;
        let mut seen: Vec<&str> = Vec::new();
        for node in &nodes {
            if let PatternNode::Capture(name) = node
                && name != "_"
            {
                if seen.contains(&name.as_str()) {
                    return Err(format!("duplicate capture name ({name}): invalid expression"));
                }
                seen.push(name);
            }
        }
        Ok(PatternExpr {
            source: source.to_owned(),
            nodes,
        })
    }

    /// The pattern of a `|>` / `!>` line filter: only unnamed captures, no two in a row; the
    /// empty pattern matches only empty lines (Loki's `pattern.ParseLineFilter`).
    pub(crate) fn line_filter(source: &str) -> Result<PatternExpr, String> {
        let nodes = split_nodes(source);
        check_no_consecutive_captures(&nodes)?;
        if let Some(PatternNode::Capture(name)) = nodes.iter().find(|node| node.is_named_capture()) {
            return Err(format!("named captures are not allowed: found '<{name}>'"));
        }
        Ok(PatternExpr {
            source: source.to_owned(),
            nodes,
        })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Literals and captures, in order; two literals are never adjacent.
    pub fn nodes(&self) -> &[PatternNode] {
        &self.nodes
    }

    /// The names of the named captures, in order.
    pub fn capture_names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().filter_map(|node| match node {
            PatternNode::Capture(name) if name != "_" => Some(name.as_str()),
            _ => None,
        })
    }
}

fn check_no_consecutive_captures(nodes: &[PatternNode]) -> Result<(), String> {
    for pair in nodes.windows(2) {
        if let [PatternNode::Capture(first), PatternNode::Capture(second)] = pair {
            return Err(format!(
                "found consecutive capture '<{first}><{second}>': invalid expression"
            ));
        }
    }
    Ok(())
}

/// Splits a pattern into literals and captures; adjacent literal text forms one literal.
fn split_nodes(source: &str) -> Vec<PatternNode> {
    let mut nodes = Vec::new();
    let mut literal = String::new();
    let mut rest = source;
    while let Some(c) = rest.chars().next() {
        if c == '<'
            && let Some(name_len) = capture_name_len(&rest[1..])
        {
            if !literal.is_empty() {
                nodes.push(PatternNode::Literal(std::mem::take(&mut literal)));
            }
            nodes.push(PatternNode::Capture(rest[1..1 + name_len].to_owned()));
            rest = &rest[name_len + 2..];
            continue;
        }
        literal.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !literal.is_empty() {
        nodes.push(PatternNode::Literal(literal));
    }
    nodes
}

/// The length of `name` if `text` starts with `name>` and `name` is an ASCII identifier.
fn capture_name_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let len = bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    (bytes.get(len) == Some(&b'>')).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(text: &str) -> PatternNode {
        PatternNode::Literal(text.to_owned())
    }

    fn capture(name: &str) -> PatternNode {
        PatternNode::Capture(name.to_owned())
    }

    #[test]
    fn patterns_split_into_literals_and_captures() {
        let pattern = PatternExpr::parser(r#"<ip> - <_> [<ts>] "<method> <path> <_>""#).unwrap();
        assert_eq!(
            pattern.nodes(),
            [
                capture("ip"),
                literal(" - "),
                capture("_"),
                literal(" ["),
                capture("ts"),
                literal("] \""),
                capture("method"),
                literal(" "),
                capture("path"),
                literal(" "),
                capture("_"),
                literal("\""),
            ]
        );
        assert_eq!(
            pattern.capture_names().collect::<Vec<_>>(),
            ["ip", "ts", "method", "path"]
        );
        let odd = PatternExpr::parser("<a> <1b> <> <c d> <é>").unwrap();
        assert_eq!(odd.nodes(), [capture("a"), literal(" <1b> <> <c d> <é>")]);
    }

    #[test]
    fn parser_patterns_are_validated_like_loki() {
        assert_eq!(
            PatternExpr::parser("<_> foo").unwrap_err(),
            "at least one capture is required"
        );
        assert_eq!(
            PatternExpr::parser("<a><b>").unwrap_err(),
            "found consecutive capture '<a><b>': invalid expression"
        );
        assert_eq!(
            PatternExpr::parser("<a> <a>").unwrap_err(),
            "duplicate capture name (a): invalid expression"
        );
        assert!(PatternExpr::parser("").is_err());
    }

    #[test]
    fn line_filter_patterns_take_only_unnamed_captures() {
        assert!(PatternExpr::line_filter("").unwrap().nodes().is_empty());
        assert!(PatternExpr::line_filter("<_> foo <_>").is_ok());
        assert_eq!(
            PatternExpr::line_filter("<foo> bar").unwrap_err(),
            "named captures are not allowed: found '<foo>'"
        );
        assert!(PatternExpr::line_filter("<_><_>").is_err());
    }
}
