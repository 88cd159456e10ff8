use thiserror::Error;

/// Why a FeedRollout (or a part of it) cannot be used.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ApiError {
    /// A duration string does not parse.
    #[error("{value:?} is not a duration such as 30s, 15m or 1h30m")]
    Duration {
        /// The text.
        value: String,
    },
    /// A field is out of range or inconsistent with another.
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the field, e.g. `spec.strategy.steps[2].setWeight`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The generated schema could not be turned into a CRD (a bug, caught by the tests).
    #[error("cannot build the CRD schema: {0}")]
    Schema(String),
}

impl ApiError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
