//! The parser: items to a tree per defined template, with Go's grammar and Go's error messages
//! (`template: NAME:LINE: …`).
//!
//! Checks made here, as in Go: functions must exist (`function "nope" not defined`), variables
//! must be declared in scope (`undefined variable "$x"`), `break`/`continue` only inside `range`,
//! and a pipeline stage after the first must be executable. Nesting is capped at
//! [`MAX_PARSE_DEPTH`] so that hostile input cannot overflow the stack.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::TemplateError;
use crate::lex::{Item, ItemKind, lex};

/// Maximum nesting of control structures and parenthesised pipelines.
pub(crate) const MAX_PARSE_DEPTH: usize = 100;

/// One node of a template body.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Action {
        pos: usize,
        pipe: Pipe,
    },
    If(Branch),
    Range(Branch),
    With(Branch),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break {
        pos: usize,
    },
    Continue {
        pos: usize,
    },
}

/// The shared shape of `if`, `range` and `with`.
#[derive(Debug, Clone)]
pub(crate) struct Branch {
    pub(crate) pos: usize,
    pub(crate) pipe: Pipe,
    pub(crate) list: Vec<Node>,
    pub(crate) else_list: Option<Vec<Node>>,
}

/// A pipeline, optionally declaring (`:=`) or assigning (`=`) variables.
#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    pub(crate) pos: usize,
    pub(crate) is_assign: bool,
    pub(crate) decl: Vec<String>,
    pub(crate) cmds: Vec<Command>,
}

/// One stage of a pipeline: a function, method, field or constant and its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub(crate) pos: usize,
    pub(crate) args: Vec<Term>,
}

/// A numeric constant, with every Go type it can represent.
#[derive(Debug, Clone)]
pub(crate) struct Number {
    pub(crate) text: String,
    pub(crate) int: Option<i64>,
    pub(crate) is_uint: bool,
    pub(crate) float: Option<f64>,
}

/// An operand.
#[derive(Debug, Clone)]
pub(crate) enum Term {
    Identifier {
        pos: usize,
        name: String,
    },
    Dot {
        pos: usize,
    },
    Nil {
        pos: usize,
    },
    /// `$x` or `$x.Field.Field`; `ident[0]` is the variable's name.
    Variable {
        pos: usize,
        ident: Vec<String>,
    },
    /// `.Field.Field`.
    Field {
        pos: usize,
        ident: Vec<String>,
    },
    Bool {
        pos: usize,
        value: bool,
    },
    Number {
        pos: usize,
        number: Number,
    },
    String {
        pos: usize,
        quoted: String,
        text: String,
    },
    Pipe(Box<Pipe>),
    /// `(pipeline).Field` or `function.Field`.
    Chain {
        pos: usize,
        node: Box<Term>,
        fields: Vec<String>,
    },
}

impl Term {
    pub(crate) fn pos(&self) -> usize {
        match self {
            Term::Identifier { pos, .. }
            | Term::Dot { pos }
            | Term::Nil { pos }
            | Term::Variable { pos, .. }
            | Term::Field { pos, .. }
            | Term::Bool { pos, .. }
            | Term::Number { pos, .. }
            | Term::String { pos, .. }
            | Term::Chain { pos, .. } => *pos,
            Term::Pipe(pipe) => pipe.pos,
        }
    }

    /// Constants cannot be a pipeline stage after the first.
    fn is_constant(&self) -> bool {
        matches!(
            self,
            Term::Bool { .. }
                | Term::Dot { .. }
                | Term::Nil { .. }
                | Term::Number { .. }
                | Term::String { .. }
        )
    }
}

// Go's `String()` forms, used in execution errors (`at <.Labels.foo>`).

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Identifier { name, .. } => f.write_str(name),
            Term::Dot { .. } => f.write_str("."),
            Term::Nil { .. } => f.write_str("nil"),
            Term::Variable { ident, .. } => f.write_str(&ident.join(".")),
            Term::Field { ident, .. } => {
                for name in ident {
                    write!(f, ".{name}")?;
                }
                Ok(())
            }
            Term::Bool { value, .. } => write!(f, "{value}"),
            Term::Number { number, .. } => f.write_str(&number.text),
            Term::String { quoted, .. } => f.write_str(quoted),
            Term::Pipe(pipe) => write!(f, "{pipe}"),
            Term::Chain { node, fields, .. } => {
                if let Term::Pipe(pipe) = node.as_ref() {
                    write!(f, "({pipe})")?;
                } else {
                    write!(f, "{node}")?;
                }
                for field in fields {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, arg) in self.args.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            if let Term::Pipe(pipe) = arg {
                write!(f, "({pipe})")?;
            } else {
                write!(f, "{arg}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(" := ")?;
        }
        for (index, cmd) in self.cmds.iter().enumerate() {
            if index > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{cmd}")?;
        }
        Ok(())
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, list: &[Node]) -> fmt::Result {
    for node in list {
        write!(f, "{node}")?;
    }
    Ok(())
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (keyword, branch) = match self {
            Node::Text(text) => return f.write_str(text),
            Node::Action { pipe, .. } => return write!(f, "{{{{{pipe}}}}}"),
            Node::Template { name, pipe, .. } => {
                write!(f, "{{{{template {}", crate::gofmt::quote(name))?;
                if let Some(pipe) = pipe {
                    write!(f, " {pipe}")?;
                }
                return f.write_str("}}");
            }
            Node::Break { .. } => return f.write_str("{{break}}"),
            Node::Continue { .. } => return f.write_str("{{continue}}"),
            Node::If(branch) => ("if", branch),
            Node::Range(branch) => ("range", branch),
            Node::With(branch) => ("with", branch),
        };
        write!(f, "{{{{{keyword} {}}}}}", branch.pipe)?;
        write_list(f, &branch.list)?;
        if let Some(else_list) = &branch.else_list {
            f.write_str("{{else}}")?;
            write_list(f, else_list)?;
        }
        f.write_str("{{end}}")
    }
}

/// The parsed templates of one text: the top-level one under its name and every `define`d or
/// `block` one.
pub(crate) type TreeSet = BTreeMap<String, Vec<Node>>;

/// What `textOrAction` can produce: a node, or the `{{end}}`/`{{else}}` that closes a list.
enum Parsed {
    Node(Node),
    End,
    Else,
}

/// A parse failure; the message is complete.
type ParseResult<T> = Result<T, TemplateError>;

/// Parses `text` into its trees. `has_function` says whether an identifier names a function.
pub(crate) fn parse(name: &str, text: &str, has_function: &dyn Fn(&str) -> bool) -> ParseResult<TreeSet> {
    let mut parser = Parser {
        parse_name: name.to_owned(),
        items: lex(text),
        next_index: 0,
        furthest_fetched: 0,
        vars: vec!["$".to_owned()],
        range_depth: 0,
        action_line: 0,
        depth: 0,
        has_function,
        trees: TreeSet::new(),
    };
    let root = parser.parse_top_level()?;
    parser.add(name, root)?;
    Ok(parser.trees)
}

struct Parser<'f> {
    parse_name: String,
    items: Vec<Item>,
    next_index: usize,
    /// The furthest item handed out so far: Go reports parse errors at its line.
    furthest_fetched: usize,
    vars: Vec<String>,
    range_depth: usize,
    action_line: usize,
    depth: usize,
    has_function: &'f dyn Fn(&str) -> bool,
    trees: TreeSet,
}

fn is_empty_tree(list: &[Node]) -> bool {
    list.iter().all(|node| match node {
        Node::Text(text) => text.trim_matches(|c: char| c.is_whitespace()).is_empty(),
        _ => false,
    })
}

impl Parser<'_> {
    fn error<T>(&self, message: impl fmt::Display) -> ParseResult<T> {
        let line = self.items.get(self.furthest_fetched).map_or(1, |item| item.line);
        Err(TemplateError::Parse(format!(
            "template: {}:{}: {}",
            self.parse_name, line, message
        )))
    }

    fn item(&self, index: usize) -> Item {
        match self.items.get(index) {
            Some(item) => item.clone(),
            // The lexer always ends with EOF or an error; repeat the last item past the end.
            None => self.items.last().cloned().unwrap_or(Item {
                kind: ItemKind::Eof,
                pos: 0,
                val: String::new(),
                line: 1,
            }),
        }
    }

    fn next(&mut self) -> Item {
        let item = self.item(self.next_index);
        if self.next_index < self.items.len() {
            self.furthest_fetched = self.furthest_fetched.max(self.next_index);
            self.next_index += 1;
        }
        item
    }

    fn backup(&mut self) {
        self.next_index = self.next_index.saturating_sub(1);
    }

    fn peek(&mut self) -> Item {
        let item = self.next();
        self.backup();
        item
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let item = self.next();
            if item.kind != ItemKind::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let item = self.next_non_space();
        self.backup();
        item
    }

    fn expect(&mut self, expected: ItemKind, context: &str) -> ParseResult<Item> {
        let item = self.next_non_space();
        if item.kind != expected {
            return self.unexpected(&item, context);
        }
        Ok(item)
    }

    fn unexpected<T>(&self, item: &Item, context: &str) -> ParseResult<T> {
        if item.kind == ItemKind::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != item.line {
                extra = format!(" in action started at {}:{}", self.parse_name, self.action_line);
                if item.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_owned();
                }
            }
            return self.error(format!("{}{extra}", item.val));
        }
        self.error(format!("unexpected {} in {context}", item.describe()))
    }

    fn enter(&mut self) -> ParseResult<()> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return self.error("max expression depth exceeded");
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Records a template; an empty body never replaces a non-empty one.
    fn add(&mut self, name: &str, root: Vec<Node>) -> ParseResult<()> {
        match self.trees.get(name) {
            Some(existing) if !is_empty_tree(existing) => {
                if !is_empty_tree(&root) {
                    return self.error(format!(
                        "template: multiple definition of template {}",
                        crate::gofmt::quote(name)
                    ));
                }
                Ok(())
            }
            _ => {
                self.trees.insert(name.to_owned(), root);
                Ok(())
            }
        }
    }

    fn parse_top_level(&mut self) -> ParseResult<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().kind != ItemKind::Eof {
            if self.peek().kind == ItemKind::LeftDelim {
                let delim_index = self.next_index;
                self.next();
                if self.next_non_space().kind == ItemKind::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.next_index = delim_index;
            }
            match self.text_or_action()? {
                Parsed::Node(node) => root.push(node),
                Parsed::End => return self.error("unexpected {{end}}"),
                Parsed::Else => return self.error("unexpected {{else}}"),
            }
        }
        Ok(root)
    }

    /// Parses a nested template body with its own variable scope, as Go's fresh `Tree` does.
    fn with_fresh_scope<T>(&mut self, body: impl FnOnce(&mut Self) -> ParseResult<T>) -> ParseResult<T> {
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".to_owned()]);
        let saved_range_depth = std::mem::replace(&mut self.range_depth, 0);
        let result = body(self);
        self.vars = saved_vars;
        self.range_depth = saved_range_depth;
        result
    }

    fn parse_definition(&mut self) -> ParseResult<()> {
        const CONTEXT: &str = "define clause";
        let item = self.next_non_space();
        if item.kind != ItemKind::String && item.kind != ItemKind::RawString {
            return self.unexpected(&item, CONTEXT);
        }
        let name = self.unquote(&item.val)?;
        self.expect(ItemKind::RightDelim, CONTEXT)?;
        let (root, end) = self.with_fresh_scope(|parser| parser.item_list())?;
        if let Parsed::Else = end {
            return self.error(format!("unexpected {{{{else}}}} in {CONTEXT}"));
        }
        self.add(&name, root)
    }

    fn item_list(&mut self) -> ParseResult<(Vec<Node>, Parsed)> {
        self.enter()?;
        let mut list = Vec::new();
        while self.peek_non_space().kind != ItemKind::Eof {
            match self.text_or_action()? {
                Parsed::Node(node) => list.push(node),
                end @ (Parsed::End | Parsed::Else) => {
                    self.leave();
                    return Ok((list, end));
                }
            }
        }
        self.error("unexpected EOF")
    }

    fn text_or_action(&mut self) -> ParseResult<Parsed> {
        let item = self.next_non_space();
        match item.kind {
            ItemKind::Text => Ok(Parsed::Node(Node::Text(item.val))),
            ItemKind::LeftDelim => {
                self.action_line = item.line;
                let result = self.action();
                self.action_line = 0;
                result
            }
            _ => self.unexpected(&item, "input"),
        }
    }

    fn action(&mut self) -> ParseResult<Parsed> {
        let item = self.next_non_space();
        match item.kind {
            ItemKind::Block => return self.block_control().map(Parsed::Node),
            ItemKind::Break => return self.break_control(item.pos, true).map(Parsed::Node),
            ItemKind::Continue => return self.break_control(item.pos, false).map(Parsed::Node),
            ItemKind::Else => return self.else_control(),
            ItemKind::End => {
                self.expect(ItemKind::RightDelim, "end")?;
                return Ok(Parsed::End);
            }
            ItemKind::If => return self.branch_control("if").map(Parsed::Node),
            ItemKind::Range => return self.branch_control("range").map(Parsed::Node),
            ItemKind::Template => return self.template_control().map(Parsed::Node),
            ItemKind::With => return self.branch_control("with").map(Parsed::Node),
            _ => {}
        }
        self.backup();
        let pos = self.peek().pos;
        let pipe = self.pipeline("command", ItemKind::RightDelim)?;
        Ok(Parsed::Node(Node::Action { pos, pipe }))
    }

    fn break_control(&mut self, pos: usize, is_break: bool) -> ParseResult<Node> {
        let keyword = if is_break { "break" } else { "continue" };
        let item = self.next_non_space();
        if item.kind != ItemKind::RightDelim {
            return self.unexpected(&item, &format!("{{{{{keyword}}}}}"));
        }
        if self.range_depth == 0 {
            return self.error(format!("{{{{{keyword}}}}} outside {{{{range}}}}"));
        }
        Ok(if is_break {
            Node::Break { pos }
        } else {
            Node::Continue { pos }
        })
    }

    fn else_control(&mut self) -> ParseResult<Parsed> {
        if self.peek_non_space().kind == ItemKind::If {
            // `{{else if …}}`: the `if` is left for branch_control.
            return Ok(Parsed::Else);
        }
        self.expect(ItemKind::RightDelim, "else")?;
        Ok(Parsed::Else)
    }

    fn branch_control(&mut self, context: &str) -> ParseResult<Node> {
        let saved_vars = self.vars.len();
        let result = self.parse_control(context);
        self.vars.truncate(saved_vars);
        let branch = result?;
        Ok(match context {
            "if" => Node::If(branch),
            "range" => Node::Range(branch),
            _ => Node::With(branch),
        })
    }

    fn parse_control(&mut self, context: &str) -> ParseResult<Branch> {
        let pipe = self.pipeline(context, ItemKind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let list_result = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, next) = list_result?;
        let mut else_list = None;
        if let Parsed::Else = next {
            if context == "if" && self.peek().kind == ItemKind::If {
                self.next();
                self.enter()?;
                let nested = self.branch_control("if")?;
                self.leave();
                else_list = Some(vec![nested]);
            } else {
                let (list, next) = self.item_list()?;
                if !matches!(next, Parsed::End) {
                    return self.error("expected end; found {{else}}");
                }
                else_list = Some(list);
            }
        }
        Ok(Branch {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    fn parse_template_name(&mut self, item: &Item, context: &str) -> ParseResult<String> {
        match item.kind {
            ItemKind::String | ItemKind::RawString => self.unquote(&item.val),
            _ => self.unexpected(item, context),
        }
    }

    fn block_control(&mut self) -> ParseResult<Node> {
        const CONTEXT: &str = "block clause";
        let item = self.next_non_space();
        let name = self.parse_template_name(&item, CONTEXT)?;
        let pipe = self.pipeline(CONTEXT, ItemKind::RightDelim)?;
        let (root, end) = self.with_fresh_scope(|parser| parser.item_list())?;
        if let Parsed::Else = end {
            return self.error(format!("unexpected {{{{else}}}} in {CONTEXT}"));
        }
        self.add(&name, root)?;
        Ok(Node::Template {
            pos: item.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_control(&mut self) -> ParseResult<Node> {
        const CONTEXT: &str = "template clause";
        let item = self.next_non_space();
        let name = self.parse_template_name(&item, CONTEXT)?;
        let mut pipe = None;
        if self.next_non_space().kind != ItemKind::RightDelim {
            self.backup();
            pipe = Some(self.pipeline(CONTEXT, ItemKind::RightDelim)?);
        }
        Ok(Node::Template {
            pos: item.pos,
            name,
            pipe,
        })
    }

    fn pipeline(&mut self, context: &str, end: ItemKind) -> ParseResult<Pipe> {
        self.enter()?;
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // Declarations and assignments.
        loop {
            let variable = self.peek_non_space();
            if variable.kind != ItemKind::Variable {
                break;
            }
            let variable_index = self.next_index;
            self.next();
            let next = self.peek_non_space();
            match next.kind {
                ItemKind::Assign | ItemKind::Declare => {
                    pipe.is_assign = next.kind == ItemKind::Assign;
                    self.next_non_space();
                    pipe.decl.push(variable.val.clone());
                    self.vars.push(variable.val);
                    break;
                }
                ItemKind::Char if next.val == "," => {
                    self.next_non_space();
                    pipe.decl.push(variable.val.clone());
                    self.vars.push(variable.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            ItemKind::Variable | ItemKind::RightDelim | ItemKind::RightParen => {
                                continue;
                            }
                            _ => return self.error("range can only initialize variables"),
                        }
                    }
                    return self.error(format!("too many declarations in {context}"));
                }
                _ => {
                    self.next_index = variable_index;
                    break;
                }
            }
        }
        loop {
            let item = self.next_non_space();
            match item.kind {
                kind if kind == end => {
                    self.check_pipeline(&pipe, context)?;
                    self.leave();
                    return Ok(pipe);
                }
                ItemKind::Bool
                | ItemKind::CharConstant
                | ItemKind::Complex
                | ItemKind::Dot
                | ItemKind::Field
                | ItemKind::Identifier
                | ItemKind::Number
                | ItemKind::Nil
                | ItemKind::RawString
                | ItemKind::String
                | ItemKind::Variable
                | ItemKind::LeftParen => {
                    self.backup();
                    let command = self.command()?;
                    pipe.cmds.push(command);
                }
                _ => return self.unexpected(&item, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> ParseResult<()> {
        if pipe.cmds.is_empty() {
            return self.error(format!("missing value for {context}"));
        }
        for (index, cmd) in pipe.cmds.iter().enumerate().skip(1) {
            if cmd.args.first().is_some_and(Term::is_constant) {
                return self.error(format!("non executable command in pipeline stage {}", index + 1));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> ParseResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(operand) = self.operand()? {
                args.push(operand);
            }
            let item = self.next();
            match item.kind {
                ItemKind::Space => continue,
                ItemKind::RightDelim | ItemKind::RightParen => self.backup(),
                ItemKind::Pipe => {}
                _ => return self.unexpected(&item, "operand"),
            }
            break;
        }
        if args.is_empty() {
            return self.error("empty command");
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self) -> ParseResult<Option<Term>> {
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != ItemKind::Field {
            return Ok(Some(term));
        }
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == ItemKind::Field {
            let item = self.next();
            fields.push(item.val[1..].to_owned());
        }
        Ok(Some(match term {
            Term::Field { mut ident, .. } => {
                ident.extend(fields);
                Term::Field {
                    pos: chain_pos,
                    ident,
                }
            }
            Term::Variable { mut ident, .. } => {
                ident.extend(fields);
                Term::Variable {
                    pos: chain_pos,
                    ident,
                }
            }
            term if term.is_constant() => {
                return self.error(format!(
                    "unexpected . after term {}",
                    crate::gofmt::quote(&term.to_string())
                ));
            }
            term => Term::Chain {
                pos: chain_pos,
                node: Box::new(term),
                fields,
            },
        }))
    }

    fn term(&mut self) -> ParseResult<Option<Term>> {
        let item = self.next_non_space();
        let pos = item.pos;
        Ok(Some(match item.kind {
            ItemKind::Identifier => {
                if !(self.has_function)(&item.val) {
                    return self.error(format!("function {} not defined", crate::gofmt::quote(&item.val)));
                }
                Term::Identifier { pos, name: item.val }
            }
            ItemKind::Dot => Term::Dot { pos },
            ItemKind::Nil => Term::Nil { pos },
            ItemKind::Variable => {
                if !self.vars.contains(&item.val) {
                    return self.error(format!("undefined variable {}", crate::gofmt::quote(&item.val)));
                }
                Term::Variable {
                    pos,
                    ident: vec![item.val],
                }
            }
            ItemKind::Field => Term::Field {
                pos,
                ident: vec![item.val[1..].to_owned()],
            },
            ItemKind::Bool => Term::Bool {
                pos,
                value: item.val == "true",
            },
            ItemKind::CharConstant | ItemKind::Complex | ItemKind::Number => {
                let number = match parse_number(&item.val, item.kind) {
                    Ok(number) => number,
                    Err(message) => return self.error(message),
                };
                Term::Number { pos, number }
            }
            ItemKind::LeftParen => Term::Pipe(Box::new(
                self.pipeline("parenthesized pipeline", ItemKind::RightParen)?,
            )),
            ItemKind::String | ItemKind::RawString => Term::String {
                pos,
                text: self.unquote(&item.val)?,
                quoted: item.val,
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }

    fn unquote(&self, quoted: &str) -> ParseResult<String> {
        match unquote(quoted) {
            Some(text) => Ok(text),
            None => self.error("invalid syntax"),
        }
    }
}

/// Go's `strconv.Unquote` for `"…"` and `` `…` `` literals.
fn unquote(quoted: &str) -> Option<String> {
    if let Some(raw) = quoted.strip_prefix('`').and_then(|rest| rest.strip_suffix('`')) {
        return Some(raw.replace('\r', ""));
    }
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\n' {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let (decoded, _) = unescape(&mut chars, '"')?;
        match decoded {
            Unescaped::Char(c) => out.push(c),
            Unescaped::Byte(byte) => {
                // A lone byte such as \xff is kept as U+FFFD: Rust strings hold only UTF-8.
                if byte.is_ascii() {
                    out.push(char::from(byte));
                } else {
                    out.push('\u{FFFD}');
                }
            }
        }
    }
    Some(out)
}

enum Unescaped {
    Char(char),
    Byte(u8),
}

/// Decodes one escape after the backslash.
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, quote: char) -> Option<(Unescaped, ())> {
    let c = chars.next()?;
    let simple = match c {
        'a' => Some('\x07'),
        'b' => Some('\x08'),
        'f' => Some('\x0c'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\x0b'),
        '\\' => Some('\\'),
        c if c == quote => Some(c),
        _ => None,
    };
    if let Some(simple) = simple {
        return Some((Unescaped::Char(simple), ()));
    }
    let mut take_digits = |count: usize, radix: u32| -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..count {
            value = value * radix + chars.next()?.to_digit(radix)?;
        }
        Some(value)
    };
    match c {
        'x' => Some((Unescaped::Byte(take_digits(2, 16)? as u8), ())),
        'u' => Some((Unescaped::Char(char::from_u32(take_digits(4, 16)?)?), ())),
        'U' => Some((Unescaped::Char(char::from_u32(take_digits(8, 16)?)?), ())),
        '0'..='7' => {
            let rest = take_digits(2, 8)?;
            let value = c.to_digit(8)? * 64 + rest;
            if value > 255 {
                return None;
            }
            Some((Unescaped::Byte(value as u8), ()))
        }
        _ => None,
    }
}

/// Go's `newNumber`: which of int, uint and float64 a constant can be.
fn parse_number(text: &str, kind: ItemKind) -> Result<Number, String> {
    if kind == ItemKind::CharConstant {
        let inner = text
            .strip_prefix('\'')
            .and_then(|rest| rest.strip_suffix('\''))
            .ok_or("invalid syntax")?;
        let mut chars = inner.chars().peekable();
        let value = match chars.next() {
            Some('\\') => match unescape(&mut chars, '\'').ok_or("invalid syntax")?.0 {
                Unescaped::Char(c) => c as i64,
                Unescaped::Byte(byte) => i64::from(byte),
            },
            Some(c) => c as i64,
            None => return Err("invalid syntax".to_owned()),
        };
        if chars.next().is_some() {
            return Err(format!("malformed character constant: {text}"));
        }
        return Ok(Number {
            text: text.to_owned(),
            int: Some(value),
            is_uint: true,
            float: Some(value as f64),
        });
    }
    let imaginary = text
        .strip_suffix('i')
        .is_some_and(|real| parse_go_float(real).is_some());
    if kind == ItemKind::Complex || imaginary {
        return Err(format!(
            "complex constant {} is not supported",
            crate::gofmt::quote(text)
        ));
    }
    let integer = parse_go_integer(text);
    let mut number = Number {
        text: text.to_owned(),
        int: None,
        is_uint: false,
        float: None,
    };
    if let Some(integer) = integer {
        number.int = i64::try_from(integer).ok();
        number.is_uint = integer >= 0 && integer <= i128::from(u64::MAX);
        if number.int.is_some() || number.is_uint {
            number.float = Some(integer as f64);
        }
    }
    if number.int.is_none()
        && !number.is_uint
        && let Some(float) = parse_go_float(text)
    {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {}", crate::gofmt::quote(text)));
        }
        number.float = Some(float);
        if float.fract() == 0.0 && float.abs() < 9.2e18 {
            number.int = Some(float as i64);
            number.is_uint = float >= 0.0;
        }
    }
    if number.int.is_none() && !number.is_uint && number.float.is_none() {
        return Err(format!("illegal number syntax: {}", crate::gofmt::quote(text)));
    }
    Ok(number)
}

/// Removes Go digit-separating underscores; `None` if they are misplaced.
fn strip_underscores(digits: &str) -> Option<String> {
    if digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    Some(digits.replace('_', ""))
}

/// `strconv.ParseInt(text, 0, 64)` widened: base prefixes, a leading-zero octal, underscores.
fn parse_go_integer(text: &str) -> Option<i128> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest.trim_start_matches('_'))
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest.trim_start_matches('_'))
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest.trim_start_matches('_'))
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if radix == 10 && unsigned.contains('_') && !unsigned.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let digits = strip_underscores(digits)?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(&digits, radix).ok()?;
    if magnitude > u128::from(u64::MAX) {
        return None;
    }
    let magnitude = magnitude as i128;
    Some(if negative { -magnitude } else { magnitude })
}

/// `strconv.ParseFloat(text, 64)` for decimal literals (hexadecimal floats are not supported).
fn parse_go_float(text: &str) -> Option<f64> {
    let cleaned = strip_underscores(text)?;
    if cleaned.is_empty()
        || !cleaned
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return None;
    }
    // Go rejects a literal out of float64's range ("1e400") instead of rounding it to infinity.
    cleaned.parse::<f64>().ok().filter(|value| value.is_finite())
}
