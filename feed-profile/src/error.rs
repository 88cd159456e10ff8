use thiserror::Error;

/// Why a profile or experiment file was rejected.
#[derive(Debug, Error, PartialEq)]
pub enum ProfileError {
    /// The file is not valid YAML/JSON, or a field has the wrong type or an unknown name.
    #[error("cannot parse ranking profile: {0}")]
    Parse(String),
    /// The file parsed but a value is out of range; `field` is the dotted path to it.
    #[error("invalid ranking profile: {field}: {message}")]
    Invalid {
        /// Dotted path of the offending field, e.g. `variants[1].profile.weights.affinity`.
        field: String,
        /// What is wrong, in words a platform engineer understands.
        message: String,
    },
}

impl ProfileError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with `prefix.` put in front of its field path.
    pub(crate) fn within(self, prefix: &str) -> Self {
        match self {
            Self::Invalid { field, message } => Self::Invalid {
                field: format!("{prefix}.{field}"),
                message,
            },
            other => other,
        }
    }
}
