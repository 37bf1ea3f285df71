//! The trace model TraceQL is evaluated over: a whole trace as its spans, each with its
//! intrinsics, attributes, resource, instrumentation scope, events and links.
//!
//! The span store builds it from OTLP spans; the engine reads it. [`kind_from_otlp`] and
//! [`status_from_otlp`] map OTLP's numbering to TraceQL's keywords.

use std::sync::Arc;

use crate::{SpanKind, Status};

/// A typed attribute value as TraceQL sees it. OTLP arrays, maps and bytes are kept as
/// their text (JSON for arrays and maps, base64 for bytes) in [`AttrValue::String`].
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string.
    String(String),
    /// A 64-bit integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// Attributes in the order they were sent (names may repeat only if the sender repeated them;
/// the first one wins on lookup).
pub type Attributes = Vec<(String, AttrValue)>;

/// The first value of `name` in `attributes`.
pub fn attribute<'a>(attributes: &'a [(String, AttrValue)], name: &str) -> Option<&'a AttrValue> {
    attributes
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// A resource: the process that emitted spans (`service.name` among its attributes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    /// Its attributes.
    pub attributes: Attributes,
}

impl Resource {
    /// `service.name`, when it is a string.
    pub fn service_name(&self) -> Option<&str> {
        match attribute(&self.attributes, "service.name") {
            Some(AttrValue::String(name)) => Some(name),
            _ => None,
        }
    }
}

/// An instrumentation scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// `instrumentation:name`.
    pub name: String,
    /// `instrumentation:version`.
    pub version: String,
    /// `instrumentation.<attr>`.
    pub attributes: Attributes,
}

/// An event of a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// `event:name`.
    pub name: String,
    /// Its time, Unix nanoseconds.
    pub time_ns: u64,
    /// `event.<attr>`.
    pub attributes: Attributes,
}

/// A link of a span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Link {
    /// The linked trace (16 bytes).
    pub trace_id: [u8; 16],
    /// The linked span (8 bytes).
    pub span_id: [u8; 8],
    /// `link.<attr>`.
    pub attributes: Attributes,
}

/// One span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Its id (8 bytes).
    pub span_id: [u8; 8],
    /// Its parent's id; all zeros for a root span.
    pub parent_span_id: [u8; 8],
    /// `name`.
    pub name: String,
    /// `kind`.
    pub kind: SpanKind,
    /// `status`.
    pub status: Status,
    /// `statusMessage`.
    pub status_message: String,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// End, Unix nanoseconds (never before the start).
    pub end_ns: u64,
    /// `span.<attr>`.
    pub attributes: Attributes,
    /// `resource.<attr>`; shared by the spans of one resource.
    pub resource: Arc<Resource>,
    /// `instrumentation:*`; shared by the spans of one scope.
    pub scope: Arc<Scope>,
    /// `event:*`, `event.<attr>`.
    pub events: Vec<Event>,
    /// `link:*`, `link.<attr>`.
    pub links: Vec<Link>,
}

impl Span {
    /// `duration` in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Whether it has no parent.
    pub fn is_root(&self) -> bool {
        self.parent_span_id == [0; 8]
    }
}

/// A whole trace (as much of it as the store holds).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Its id (16 bytes).
    pub trace_id: [u8; 16],
    /// Its spans, in no particular order.
    pub spans: Vec<Span>,
}

/// TraceQL's kind of an OTLP `Span.SpanKind` number (unknown numbers are `unspecified`).
pub fn kind_from_otlp(kind: i32) -> SpanKind {
    match kind {
        1 => SpanKind::Internal,
        2 => SpanKind::Server,
        3 => SpanKind::Client,
        4 => SpanKind::Producer,
        5 => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

/// TraceQL's status of an OTLP `Status.StatusCode` number (unknown numbers are `unset`).
pub fn status_from_otlp(code: i32) -> Status {
    match code {
        1 => Status::Ok,
        2 => Status::Error,
        _ => Status::Unset,
    }
}
