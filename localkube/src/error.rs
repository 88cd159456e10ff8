//! API errors and the `Status` objects the API server answers them with.

use serde_json::{Value, json};

/// One invalid field of a 422.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `spec.strategy.steps[0].setWeight`
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or an unknown token.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403, with the RBAC message.
    #[error("{message}")]
    Forbidden {
        /// The API server's sentence.
        message: String,
        /// Object name, when the request named one.
        name: Option<String>,
        /// API group.
        group: String,
        /// Plural resource.
        kind: String,
    },
    /// 404.
    #[error("{qualified} \"{name}\" not found")]
    NotFound {
        /// `deployments.apps`
        qualified: String,
        /// The object.
        name: String,
    },
    /// 404 for a path that names no served resource.
    #[error("the server could not find the requested resource")]
    NoSuchResource,
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409 AlreadyExists.
    #[error("{qualified} \"{name}\" already exists")]
    AlreadyExists {
        /// `deployments.apps`
        qualified: String,
        /// The object.
        name: String,
    },
    /// 409 Conflict (stale resourceVersion, apply conflicts).
    #[error("{0}")]
    Conflict(String),
    /// 410 Gone: the resourceVersion is compacted.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// What the client asked for.
        requested: u64,
        /// The oldest resourceVersion still served.
        oldest: u64,
    },
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: the object breaks its schema or rules.
    #[error("{kind} \"{name}\" is invalid: {}", causes_text(.causes))]
    Invalid {
        /// `FeedRollout.feedroll.dev`
        kind: String,
        /// The object.
        name: String,
        /// Every invalid field.
        causes: Vec<Cause>,
    },
    /// A failure injected by a test, with its status code.
    #[error("injected failure")]
    Injected(u16),
}

fn causes_text(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    match parts.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", parts.join(", ")),
    }
}

impl ApiError {
    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized => 401,
            Self::Forbidden { .. } => 403,
            Self::NotFound { .. } | Self::NoSuchResource => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::AlreadyExists { .. } | Self::Conflict(_) => 409,
            Self::Expired { .. } => 410,
            Self::UnsupportedMediaType(_) => 415,
            Self::Invalid { .. } => 422,
            Self::Injected(code) => *code,
        }
    }

    /// The `reason` of the Status.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden { .. } => "Forbidden",
            Self::NotFound { .. } | Self::NoSuchResource => "NotFound",
            Self::MethodNotAllowed(_) => "MethodNotAllowed",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict(_) => "Conflict",
            Self::Expired { .. } => "Expired",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::Invalid { .. } => "Invalid",
            Self::Injected(_) => "Injected",
        }
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.to_string(), "reason": self.reason(),
            "code": self.code()});
        match self {
            Self::Forbidden {
                name, group, kind, ..
            } => {
                s["details"] = json!({"group": group, "kind": kind});
                if let Some(n) = name {
                    s["details"]["name"] = json!(n);
                }
            }
            Self::NotFound { qualified, name } | Self::AlreadyExists { qualified, name } => {
                let (kind, group) = qualified.split_once('.').unwrap_or((qualified, ""));
                s["details"] = json!({"name": name, "group": group, "kind": kind});
            }
            Self::Invalid { kind, name, causes } => {
                let (k, group) = kind.split_once('.').unwrap_or((kind, ""));
                s["details"] = json!({"name": name, "group": group, "kind": k,
                    "causes": causes.iter().map(|c| json!({"reason": "FieldValueInvalid",
                        "message": c.message, "field": c.field})).collect::<Vec<_>>()});
            }
            _ => {}
        }
        s
    }
}
