//! The lexer: template text to items, with Go's rules for delimiters, trim markers (`{{- ` and
//! ` -}}`, a space required next to the dash), comments, strings, numbers and identifiers.
//!
//! Lexing stops at the first error, which becomes an [`ItemKind::Error`] item; the parser reports
//! it only when it reaches it, as Go's does.

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemKind {
    Error,
    Bool,
    /// A printable ASCII character that is not otherwise an item, such as `,`.
    Char,
    CharConstant,
    Complex,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

impl ItemKind {
    fn is_keyword(self) -> bool {
        matches!(
            self,
            ItemKind::Block
                | ItemKind::Break
                | ItemKind::Continue
                | ItemKind::Dot
                | ItemKind::Define
                | ItemKind::Else
                | ItemKind::End
                | ItemKind::If
                | ItemKind::Nil
                | ItemKind::Range
                | ItemKind::Template
                | ItemKind::With
        )
    }
}

/// One lexed item.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) kind: ItemKind,
    /// Byte offset of the item in the input.
    pub(crate) pos: usize,
    pub(crate) val: String,
    /// 1-based line of the item's start.
    pub(crate) line: usize,
}

impl Item {
    /// How Go's parser names an item in "unexpected …" errors.
    pub(crate) fn describe(&self) -> String {
        match self.kind {
            ItemKind::Eof => "EOF".to_owned(),
            ItemKind::Error => self.val.clone(),
            kind if kind.is_keyword() => format!("<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                format!("{}...", crate::gofmt::quote(&head))
            }
            _ => crate::gofmt::quote(&self.val),
        }
    }
}

const LEFT_DELIM: &str = "{{";
const RIGHT_DELIM: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";
/// The trim marker plus the space next to it.
const TRIM_MARKER_LEN: usize = 2;

/// Lexes the whole input.
pub(crate) fn lex(input: &str) -> Vec<Item> {
    let mut lexer = Lexer {
        input,
        pos: 0,
        start: 0,
        line: 1,
        start_line: 1,
        paren_depth: 0,
        items: Vec::new(),
    };
    lexer.run();
    lexer.items
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    line: usize,
    start_line: usize,
    paren_depth: usize,
    items: Vec<Item>,
}

#[derive(Clone, Copy)]
enum State {
    Text,
    LeftDelim,
    Comment,
    RightDelim,
    InsideAction,
    Space,
    Identifier,
    Field,
    Variable,
    Char,
    Number,
    Quote,
    RawQuote,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim_marker(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() >= 2 && bytes[0] == b'-' && is_space(char::from(bytes[1]))
}

fn has_right_trim_marker(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() >= 2 && is_space(char::from(bytes[0])) && bytes[1] == b'-'
}

fn keyword(word: &str) -> Option<ItemKind> {
    Some(match word {
        "." => ItemKind::Dot,
        "block" => ItemKind::Block,
        "break" => ItemKind::Break,
        "continue" => ItemKind::Continue,
        "define" => ItemKind::Define,
        "else" => ItemKind::Else,
        "end" => ItemKind::End,
        "if" => ItemKind::If,
        "range" => ItemKind::Range,
        "nil" => ItemKind::Nil,
        "template" => ItemKind::Template,
        "with" => ItemKind::With,
        _ => return None,
    })
}

impl<'a> Lexer<'a> {
    fn run(&mut self) {
        let mut state = Some(State::Text);
        while let Some(current) = state {
            state = match current {
                State::Text => self.lex_text(),
                State::LeftDelim => self.lex_left_delim(),
                State::Comment => self.lex_comment(),
                State::RightDelim => self.lex_right_delim(),
                State::InsideAction => self.lex_inside_action(),
                State::Space => self.lex_space(),
                State::Identifier => self.lex_identifier(),
                State::Field => self.lex_field_or_variable(ItemKind::Field),
                State::Variable => self.lex_variable(),
                State::Char => self.lex_char(),
                State::Number => self.lex_number(),
                State::Quote => self.lex_quote(),
                State::RawQuote => self.lex_raw_quote(),
            };
        }
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn next(&mut self) -> Option<char> {
        let c = self.rest().chars().next()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Steps back over `c`, the char `next` just returned.
    fn backup(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.pos -= c.len_utf8();
            if c == '\n' {
                self.line -= 1;
            }
        }
    }

    fn emit(&mut self, kind: ItemKind) {
        self.items.push(Item {
            kind,
            pos: self.start,
            val: self.input[self.start..self.pos].to_owned(),
            line: self.start_line,
        });
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn ignore(&mut self) {
        self.line += self.input[self.start..self.pos].matches('\n').count();
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.next();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn error(&mut self, message: String) -> Option<State> {
        self.items.push(Item {
            kind: ItemKind::Error,
            pos: self.start,
            val: message,
            line: self.start_line,
        });
        None
    }

    fn lex_text(&mut self) -> Option<State> {
        if let Some(offset) = self.rest().find(LEFT_DELIM) {
            self.pos += offset;
            let mut trim_length = 0;
            if has_left_trim_marker(&self.input[self.pos + LEFT_DELIM.len()..]) {
                let text = &self.input[self.start..self.pos];
                trim_length = text.len() - text.trim_end_matches(is_space).len();
            }
            self.pos -= trim_length;
            if self.pos > self.start {
                self.line += self.input[self.start..self.pos].matches('\n').count();
                self.emit(ItemKind::Text);
            }
            self.pos += trim_length;
            self.ignore();
            return Some(State::LeftDelim);
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.line += self.input[self.start..self.pos].matches('\n').count();
            self.emit(ItemKind::Text);
        }
        self.emit(ItemKind::Eof);
        None
    }

    /// Whether the input is at a right delimiter, and whether it has a trim marker.
    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim_marker(rest) && rest[TRIM_MARKER_LEN..].starts_with(RIGHT_DELIM) {
            return (true, true);
        }
        (rest.starts_with(RIGHT_DELIM), false)
    }

    fn lex_left_delim(&mut self) -> Option<State> {
        self.pos += LEFT_DELIM.len();
        let trim_space = has_left_trim_marker(self.rest());
        let after_marker = if trim_space { TRIM_MARKER_LEN } else { 0 };
        if self.input[self.pos + after_marker..].starts_with(LEFT_COMMENT) {
            self.pos += after_marker;
            self.ignore();
            return Some(State::Comment);
        }
        self.emit(ItemKind::LeftDelim);
        self.pos += after_marker;
        self.ignore();
        self.paren_depth = 0;
        Some(State::InsideAction)
    }

    fn lex_comment(&mut self) -> Option<State> {
        self.pos += LEFT_COMMENT.len();
        let Some(offset) = self.rest().find(RIGHT_COMMENT) else {
            return self.error("unclosed comment".to_owned());
        };
        self.pos += offset + RIGHT_COMMENT.len();
        let (delim, trim_space) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".to_owned());
        }
        if trim_space {
            self.pos += TRIM_MARKER_LEN;
        }
        self.pos += RIGHT_DELIM.len();
        if trim_space {
            let rest = self.rest();
            self.pos += rest.len() - rest.trim_start_matches(is_space).len();
        }
        self.ignore();
        Some(State::Text)
    }

    fn lex_right_delim(&mut self) -> Option<State> {
        let trim_space = has_right_trim_marker(self.rest());
        if trim_space {
            self.pos += TRIM_MARKER_LEN;
            self.ignore();
        }
        self.pos += RIGHT_DELIM.len();
        self.emit(ItemKind::RightDelim);
        if trim_space {
            let rest = self.rest();
            self.pos += rest.len() - rest.trim_start_matches(is_space).len();
            self.ignore();
        }
        Some(State::Text)
    }

    fn lex_inside_action(&mut self) -> Option<State> {
        let (delim, _) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return Some(State::RightDelim);
            }
            return self.error("unclosed left paren".to_owned());
        }
        let c = self.next();
        match c {
            None => return self.error("unclosed action".to_owned()),
            Some(c) if is_space(c) => {
                self.backup(Some(c));
                return Some(State::Space);
            }
            Some('=') => self.emit(ItemKind::Assign),
            Some(':') => {
                if self.next() != Some('=') {
                    return self.error("expected :=".to_owned());
                }
                self.emit(ItemKind::Declare);
            }
            Some('|') => self.emit(ItemKind::Pipe),
            Some('"') => return Some(State::Quote),
            Some('`') => return Some(State::RawQuote),
            Some('$') => return Some(State::Variable),
            Some('\'') => return Some(State::Char),
            Some('.') => {
                if let Some(&next) = self.input.as_bytes().get(self.pos)
                    && !next.is_ascii_digit()
                {
                    return Some(State::Field);
                }
                self.backup(c);
                return Some(State::Number);
            }
            Some(c) if c == '+' || c == '-' || c.is_ascii_digit() => {
                self.backup(Some(c));
                return Some(State::Number);
            }
            Some(c) if is_alphanumeric(c) => {
                self.backup(Some(c));
                return Some(State::Identifier);
            }
            Some('(') => {
                self.emit(ItemKind::LeftParen);
                self.paren_depth += 1;
            }
            Some(')') => {
                self.emit(ItemKind::RightParen);
                if self.paren_depth == 0 {
                    return self.error(format!("unexpected right paren {}", go_rune(')')));
                }
                self.paren_depth -= 1;
            }
            Some(c) if c.is_ascii() && !c.is_ascii_control() => self.emit(ItemKind::Char),
            Some(c) => {
                return self.error(format!("unrecognized character in action: {}", go_rune(c)));
            }
        }
        Some(State::InsideAction)
    }

    fn lex_space(&mut self) -> Option<State> {
        let mut num_spaces = 0;
        while let Some(c) = self.peek() {
            if !is_space(c) {
                break;
            }
            self.next();
            num_spaces += 1;
        }
        // Is the last space the start of a " -}}" trim marker?
        let before_last = &self.input[self.pos - 1..];
        if has_right_trim_marker(before_last) && before_last[TRIM_MARKER_LEN..].starts_with(RIGHT_DELIM) {
            let last = self.input[..self.pos].chars().next_back();
            self.backup(last);
            if num_spaces == 1 {
                return Some(State::RightDelim);
            }
        }
        self.emit(ItemKind::Space);
        Some(State::InsideAction)
    }

    fn lex_identifier(&mut self) -> Option<State> {
        loop {
            let c = self.next();
            if c.is_some_and(is_alphanumeric) {
                continue;
            }
            self.backup(c);
            let word = &self.input[self.start..self.pos];
            if !self.at_terminator() {
                return self.error(format!("bad character {}", go_rune_opt(c)));
            }
            if let Some(kind) = keyword(word) {
                self.emit(kind);
            } else if word.starts_with('.') {
                self.emit(ItemKind::Field);
            } else if word == "true" || word == "false" {
                self.emit(ItemKind::Bool);
            } else {
                self.emit(ItemKind::Identifier);
            }
            return Some(State::InsideAction);
        }
    }

    fn lex_variable(&mut self) -> Option<State> {
        if self.at_terminator() {
            self.emit(ItemKind::Variable);
            return Some(State::InsideAction);
        }
        self.lex_field_or_variable(ItemKind::Variable)
    }

    fn lex_field_or_variable(&mut self, kind: ItemKind) -> Option<State> {
        if self.at_terminator() {
            self.emit(if kind == ItemKind::Variable {
                ItemKind::Variable
            } else {
                ItemKind::Dot
            });
            return Some(State::InsideAction);
        }
        let mut c;
        loop {
            c = self.next();
            if !c.is_some_and(is_alphanumeric) {
                self.backup(c);
                break;
            }
        }
        if !self.at_terminator() {
            return self.error(format!("bad character {}", go_rune_opt(c)));
        }
        self.emit(kind);
        Some(State::InsideAction)
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            Some(_) => self.rest().starts_with(RIGHT_DELIM),
        }
    }

    fn lex_char(&mut self) -> Option<State> {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    None | Some('\n') => {
                        return self.error("unterminated character constant".to_owned());
                    }
                    Some(_) => {}
                },
                None | Some('\n') => {
                    return self.error("unterminated character constant".to_owned());
                }
                Some('\'') => break,
                Some(_) => {}
            }
        }
        self.emit(ItemKind::CharConstant);
        Some(State::InsideAction)
    }

    fn lex_number(&mut self) -> Option<State> {
        if !self.scan_number() {
            let text = self.input[self.start..self.pos].to_owned();
            return self.error(format!("bad number syntax: {}", crate::gofmt::quote(&text)));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            // A complex constant such as 1+2i.
            if !self.scan_number() || !self.input[..self.pos].ends_with('i') {
                let text = self.input[self.start..self.pos].to_owned();
                return self.error(format!("bad number syntax: {}", crate::gofmt::quote(&text)));
            }
            self.emit(ItemKind::Complex);
        } else {
            self.emit(ItemKind::Number);
        }
        Some(State::InsideAction)
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 10 + 1 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 16 + 6 + 1 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alphanumeric) {
            self.next();
            return false;
        }
        true
    }

    fn lex_quote(&mut self) -> Option<State> {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    None | Some('\n') => {
                        return self.error("unterminated quoted string".to_owned());
                    }
                    Some(_) => {}
                },
                None | Some('\n') => return self.error("unterminated quoted string".to_owned()),
                Some('"') => break,
                Some(_) => {}
            }
        }
        self.emit(ItemKind::String);
        Some(State::InsideAction)
    }

    fn lex_raw_quote(&mut self) -> Option<State> {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string".to_owned()),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(ItemKind::RawString);
        Some(State::InsideAction)
    }
}

/// Go's `%#U`: `U+0041 'A'`.
fn go_rune(c: char) -> String {
    let printable = if c.is_ascii() {
        !c.is_ascii_control()
    } else {
        crate::gofmt::is_go_printable(c)
    };
    if !printable {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{}'", c as u32, c)
    }
}

fn go_rune_opt(c: Option<char>) -> String {
    match c {
        Some(c) => go_rune(c),
        // Go prints its eof rune, -1.
        None => "U+FFFFFFFFFFFFFFFF".to_owned(),
    }
}
