//! The one error classification of the appliance.
//!
//! Every library error answers [`Classify::kind`]; the API layer maps an [`ErrorKind`] to an
//! HTTP status, a gRPC code and each API family's error body in exactly one place, so that the
//! same fault looks the same on every port.

use std::time::Duration;

/// What kind of failure an error is, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or violates a rule; retrying it unchanged will fail again.
    BadInput,
    /// The request's media type or encoding is not supported.
    UnsupportedMediaType,
    /// The thing asked for does not exist.
    NotFound,
    /// The request or its decompressed body exceeds a configured limit.
    TooLarge,
    /// The appliance is saturated (queues full, disk budget exhausted); retry later.
    Overloaded,
    /// The appliance cannot serve this now (starting, shutting down, disk failed); retry later.
    Unavailable,
    /// A query parsed but failed while evaluating (Prometheus' `execution`).
    Execution,
    /// A query ran out of time.
    Timeout,
    /// The client went away or cancelled.
    Canceled,
    /// A bug or an unexpected fault inside the appliance.
    Internal,
}

impl ErrorKind {
    /// Whether a client should retry the same request later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Overloaded | ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Internal
        )
    }

    /// A stable lowercase name, for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "bad_input",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::NotFound => "not_found",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Execution => "execution",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Canceled => "canceled",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error that knows its [`ErrorKind`].
pub trait Classify: std::error::Error {
    /// The class of this error.
    fn kind(&self) -> ErrorKind;

    /// How long a client should wait before retrying, for retryable errors.
    fn retry_after(&self) -> Option<Duration> {
        match self.kind() {
            ErrorKind::Overloaded | ErrorKind::Unavailable => Some(Duration::from_secs(5)),
            _ => None,
        }
    }

    /// The message that may be sent to a client. Internal faults are not described to clients;
    /// they are logged instead.
    fn client_message(&self) -> String {
        match self.kind() {
            ErrorKind::Internal => "internal error; see the appliance's log".to_owned(),
            _ => self.to_string(),
        }
    }
}
