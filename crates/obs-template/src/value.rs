//! The data a template runs over.
//!
//! Go templates reflect over arbitrary Go values; we model the handful of Go types that alerting
//! data is made of, each mapped to the Go type whose behaviour it copies:
//!
//! | [`Value`]            | Go type                   | missing key under `missingkey=zero` |
//! |----------------------|---------------------------|-------------------------------------|
//! | `Nil`                | untyped `nil` / no value  |                                     |
//! | `Bool`               | `bool`                    |                                     |
//! | `Int`                | `int` (64-bit)            |                                     |
//! | `Float`              | `float64`                 |                                     |
//! | `String`             | `string`                  |                                     |
//! | `List`               | `[]interface {}`          |                                     |
//! | `Map`                | `map[string]interface {}` | `<no value>` (a nil interface)      |
//! | `StringMap`          | `map[string]string`       | `""`                                |
//! | `Object`             | a struct, or a named type with methods | see [`Object`]         |
//!
//! Label sets are `StringMap`s, so `{{ $labels.nope }}` expands to `""` in alert rules, as in
//! Prometheus.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A value a template can read, print, compare and iterate.
#[derive(Clone, Default)]
pub enum Value {
    /// Go's untyped `nil`; also what a missing map key or a missing value evaluates to.
    #[default]
    Nil,
    /// A Go `bool`.
    Bool(bool),
    /// A Go `int`.
    Int(i64),
    /// A Go `float64`.
    Float(f64),
    /// A Go `string`.
    String(String),
    /// A Go `[]interface {}`.
    List(Vec<Value>),
    /// A Go `map[string]interface {}`; iterated in key order, like Go.
    Map(BTreeMap<String, Value>),
    /// A Go `map[string]string`, such as a label set.
    StringMap(BTreeMap<String, String>),
    /// A struct, or a named Go type with methods (Alertmanager's `Alerts.Firing`, `time.Time`).
    Object(Arc<dyn Object>),
}

/// A Go value with a named type: a struct with fields, and/or a type with methods.
///
/// This is how callers model data richer than the plain variants: a struct whose missing field is
/// an error (`can't evaluate field Foo in type …`) rather than `<no value>`, or a slice/map type
/// with methods, like Alertmanager's `Alerts` (a list you can `range` over that also has
/// `.Firing`). Field lookup follows Go: methods first, then the [`underlying`](Object::underlying)
/// map's keys, then struct fields.
pub trait Object: fmt::Debug + Send + Sync {
    /// The Go type name used in error messages, e.g. `template.queryResult` or `*time.Time`.
    fn type_name(&self) -> &str;

    /// A struct field, or `None` if the type has no such field.
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }

    /// Whether the type has a method `name`. Methods take precedence over fields and map keys.
    fn has_method(&self, _name: &str) -> bool {
        false
    }

    /// Calls the method `name` with `args`, or returns `None` if the type has no such method.
    /// An `Err` is reported as `error calling NAME: …`.
    fn method(&self, _name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        None
    }

    /// For named slice or map types, the plain value that `range`, `len`, `index`, `eq` and truth
    /// tests see. `None` for structs.
    fn underlying(&self) -> Option<&Value> {
        None
    }

    /// How `{{ . }}` and `%v` print the value (Go's `String()` method, or the struct's fields).
    fn display(&self) -> String;
}

/// A Go struct: named fields in declaration order, and no methods.
///
/// Unlike a [`Value::Map`], reading a field it does not have is an error, as in Go. Prometheus'
/// alert data is a `Record` of `Labels`, `ExternalLabels`, `ExternalURL` and `Value`.
#[derive(Debug, Clone)]
pub struct Record {
    type_name: String,
    fields: Vec<(String, Value)>,
}

impl Record {
    /// A struct of Go type `type_name` with `fields` in declaration order.
    pub fn new(type_name: impl Into<String>, fields: Vec<(String, Value)>) -> Record {
        Record {
            type_name: type_name.into(),
            fields,
        }
    }
}

impl Object for Record {
    fn type_name(&self) -> &str {
        &self.type_name
    }

    fn field(&self, name: &str) -> Option<Value> {
        self.fields
            .iter()
            .find(|(field_name, _)| field_name == name)
            .map(|(_, value)| value.clone())
    }

    fn display(&self) -> String {
        let parts: Vec<String> = self
            .fields
            .iter()
            .map(|(_, value)| crate::gofmt::format_v(value))
            .collect();
        format!("{{{}}}", parts.join(" "))
    }
}

impl Value {
    /// The Go type name, as `%T` and error messages print it.
    pub fn type_name(&self) -> &str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::StringMap(_) => "map[string]string",
            Value::Object(object) => object.type_name(),
        }
    }

    /// Go's truth test (`if`, `with`, `and`, `or`, `not`): false, 0, a nil pointer or interface
    /// value, and any array, slice, map, or string of length zero are false.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(list) => !list.is_empty(),
            Value::Map(map) => !map.is_empty(),
            Value::StringMap(map) => !map.is_empty(),
            Value::Object(object) => object.underlying().is_none_or(Value::is_true),
        }
    }

    /// The plain value behind an [`Object`] of a named slice or map type; `self` otherwise.
    pub(crate) fn plain(&self) -> &Value {
        match self {
            Value::Object(object) => match object.underlying() {
                Some(underlying) => underlying.plain(),
                None => self,
            },
            _ => self,
        }
    }

    /// A `Value::Object` from any [`Object`].
    pub fn object(object: impl Object + 'static) -> Value {
        Value::Object(Arc::new(object))
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "Nil"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Float(x) => write!(f, "Float({x:?})"),
            Value::String(s) => write!(f, "String({s:?})"),
            Value::List(list) => f.debug_tuple("List").field(list).finish(),
            Value::Map(map) => f.debug_tuple("Map").field(map).finish(),
            Value::StringMap(map) => f.debug_tuple("StringMap").field(map).finish(),
            Value::Object(object) => f.debug_tuple("Object").field(object).finish(),
        }
    }
}

impl AsRef<Value> for Value {
    fn as_ref(&self) -> &Value {
        self
    }
}

impl PartialEq for Value {
    /// Structural equality; objects are equal only to themselves.
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::StringMap(a), Value::StringMap(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Value {
        Value::Int(i64::from(i))
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Value {
        Value::Float(x)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<Vec<Value>> for Value {
    fn from(list: Vec<Value>) -> Value {
        Value::List(list)
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(map: BTreeMap<String, Value>) -> Value {
        Value::Map(map)
    }
}

impl From<BTreeMap<String, String>> for Value {
    fn from(map: BTreeMap<String, String>) -> Value {
        Value::StringMap(map)
    }
}
