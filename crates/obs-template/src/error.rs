//! The one error type of the crate.
//!
//! Messages follow Go's `text/template` word for word, so that an operator who knows Prometheus'
//! or Alertmanager's errors recognises ours:
//!
//! - parse errors name the template and the line: `template: test:1: function "nope" not defined`;
//! - execution errors add the byte column (0-based, as Go counts it), the template being run and
//!   the offending node: `template: test:1:3: executing "test" at <.Foo>: map has no entry for
//!   key "Foo"`.

use obs_core::error::{Classify, ErrorKind};

/// A template failed to parse or to execute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The text is not a valid template.
    #[error("{0}")]
    Parse(String),
    /// The template parsed but failed while executing (bad argument type, function error, missing
    /// template …).
    #[error("{0}")]
    Execute(String),
    /// Execution hit one of the [`crate::Limits`]: output size, nesting depth or step budget.
    #[error("{0}")]
    LimitExceeded(String),
}

impl TemplateError {
    /// The full message, as Go would print it.
    pub fn message(&self) -> &str {
        match self {
            TemplateError::Parse(message)
            | TemplateError::Execute(message)
            | TemplateError::LimitExceeded(message) => message,
        }
    }

    /// The same error with its message prefixed, as Prometheus' expander wraps Go's errors
    /// (`error executing template NAME: …`).
    pub(crate) fn wrap(self, prefix: &str) -> TemplateError {
        match self {
            TemplateError::Parse(message) => TemplateError::Parse(format!("{prefix}: {message}")),
            TemplateError::Execute(message) => TemplateError::Execute(format!("{prefix}: {message}")),
            TemplateError::LimitExceeded(message) => {
                TemplateError::LimitExceeded(format!("{prefix}: {message}"))
            }
        }
    }
}

impl Classify for TemplateError {
    fn kind(&self) -> ErrorKind {
        match self {
            TemplateError::Parse(_) => ErrorKind::BadInput,
            TemplateError::Execute(_) => ErrorKind::Execution,
            TemplateError::LimitExceeded(_) => ErrorKind::TooLarge,
        }
    }
}
