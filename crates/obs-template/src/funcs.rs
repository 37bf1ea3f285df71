//! Functions a template can call: the registry callers fill ([`Functions`]) and Go's builtins.
//!
//! A function declares the Go types of its parameters ([`ArgType`]) so that arguments are checked
//! the way Go checks them: a constant of the wrong kind is `expected string; found 1`, a computed
//! value of the wrong type is `wrong type for value; expected string; got int`, a missing value for
//! a non-nillable parameter is `invalid value; expected string`. Go does not convert between `int`
//! and `float64` when calling a function, and neither do we.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::value::Value;

/// The Go type of a function parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// `interface {}`: anything, including nil.
    Any,
    /// `string`.
    String,
    /// `float64`.
    Float,
    /// `int`.
    Int,
    /// `bool`.
    Bool,
    /// An [`Object`](crate::Object) whose [`type_name`](crate::Object::type_name) is this (a
    /// pointer type in Go: nil is accepted).
    Named(&'static str),
}

impl ArgType {
    /// The Go spelling of the type, for error messages.
    pub(crate) fn go_name(self) -> &'static str {
        match self {
            ArgType::Any => "interface {}",
            ArgType::String => "string",
            ArgType::Float => "float64",
            ArgType::Int => "int",
            ArgType::Bool => "bool",
            ArgType::Named(name) => name,
        }
    }

    /// Whether Go would accept nil for a parameter of this type.
    pub(crate) fn can_be_nil(self) -> bool {
        matches!(self, ArgType::Any | ArgType::Named(_))
    }
}

/// The parameters of a function: fixed ones, then optionally a variadic tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signature {
    pub(crate) params: Vec<ArgType>,
    pub(crate) variadic: Option<ArgType>,
}

impl Signature {
    /// The type of the parameter at `index` (the variadic element type past the fixed ones).
    pub(crate) fn param(&self, index: usize) -> ArgType {
        match self.params.get(index) {
            Some(param) => *param,
            None => self.variadic.unwrap_or(ArgType::Any),
        }
    }
}

type NativeFn = dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync;

/// A function implemented in Rust. An `Err` is reported as `error calling NAME: MESSAGE`.
#[derive(Clone)]
pub struct Function {
    pub(crate) signature: Signature,
    call: Arc<NativeFn>,
}

impl Function {
    pub(crate) fn call(&self, args: &[Value]) -> Result<Value, String> {
        (self.call)(args)
    }
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

/// A set of named functions, Go's `template.FuncMap`. They take precedence over the builtins of
/// the same name, as in Go.
#[derive(Debug, Clone, Default)]
pub struct Functions {
    by_name: BTreeMap<String, Function>,
}

impl Functions {
    /// No functions beyond Go's builtins.
    pub fn new() -> Functions {
        Functions::default()
    }

    /// Adds (or replaces) `name`, taking arguments of types `params`, then any number of
    /// `variadic` ones if given.
    pub fn insert(
        &mut self,
        name: &str,
        params: &[ArgType],
        variadic: Option<ArgType>,
        call: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) {
        self.by_name.insert(
            name.to_owned(),
            Function {
                signature: Signature {
                    params: params.to_vec(),
                    variadic,
                },
                call: Arc::new(call),
            },
        );
    }

    /// Adds every function of `other`, replacing those of the same name.
    pub fn extend(&mut self, other: Functions) {
        self.by_name.extend(other.by_name);
    }

    /// Whether `name` is defined here (builtins not included).
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Function> {
        self.by_name.get(name)
    }
}

/// Go's builtin functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Html,
    Js,
    UrlQuery,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Call,
}

impl Builtin {
    pub(crate) fn lookup(name: &str) -> Option<Builtin> {
        Some(match name {
            "and" => Builtin::And,
            "or" => Builtin::Or,
            "not" => Builtin::Not,
            "len" => Builtin::Len,
            "index" => Builtin::Index,
            "slice" => Builtin::Slice,
            "print" => Builtin::Print,
            "printf" => Builtin::Printf,
            "println" => Builtin::Println,
            "html" => Builtin::Html,
            "js" => Builtin::Js,
            "urlquery" => Builtin::UrlQuery,
            "eq" => Builtin::Eq,
            "ne" => Builtin::Ne,
            "lt" => Builtin::Lt,
            "le" => Builtin::Le,
            "gt" => Builtin::Gt,
            "ge" => Builtin::Ge,
            "call" => Builtin::Call,
            _ => return None,
        })
    }

    pub(crate) fn signature(self) -> Signature {
        let (params, variadic) = match self {
            Builtin::And | Builtin::Or | Builtin::Index | Builtin::Slice | Builtin::Eq | Builtin::Call => {
                (vec![ArgType::Any], Some(ArgType::Any))
            }
            Builtin::Not | Builtin::Len => (vec![ArgType::Any], None),
            Builtin::Print | Builtin::Println | Builtin::Html | Builtin::Js | Builtin::UrlQuery => {
                (vec![], Some(ArgType::Any))
            }
            Builtin::Printf => (vec![ArgType::String], Some(ArgType::Any)),
            Builtin::Ne | Builtin::Lt | Builtin::Le | Builtin::Gt | Builtin::Ge => {
                (vec![ArgType::Any, ArgType::Any], None)
            }
        };
        Signature { params, variadic }
    }
}

/// `template.HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `template.JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if c.is_ascii() => out.push(c),
            c if crate::gofmt::is_go_printable(c) || c == ' ' => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// `url.QueryEscape`: unreserved bytes kept, space as `+`, everything else `%XX`.
pub(crate) fn url_query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
