//! The one error type of this crate.

/// Why something was refused. Messages are lowercase, carry the context a user needs, and never
/// contain a secret (passwords, tokens, webhook URLs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// alertmanager.yml is invalid. `path` names the YAML node (`route.routes[1].matchers[0]`),
    /// empty for the whole document.
    #[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    Config {
        /// The YAML path of the offending node.
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// A label matcher (or a list of them) does not parse or its regex does not compile.
    #[error("{0}")]
    Matcher(String),
    /// A silence was refused (`invalid silence: at least one matcher required`).
    #[error("invalid silence: {0}")]
    InvalidSilence(String),
    /// No silence has this ID.
    #[error("silence {0:?} not found")]
    SilenceNotFound(String),
    /// A posted alert was refused.
    #[error("invalid alert: {0}")]
    InvalidAlert(String),
    /// A timestamp does not parse as RFC 3339 or is out of the supported range.
    #[error("{0}")]
    Time(String),
}

impl Error {
    pub(crate) fn config(path: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}
