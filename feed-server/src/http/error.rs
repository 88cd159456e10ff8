//! JSON errors: `{"error": {"code", "message"}}` with the right status.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::model::ErrorCode;

use crate::model::Invalid;
use crate::shed::{self, Overloaded};
use crate::store::StoreError;
use crate::write::WriteError;

/// An error answered to the client; its HTTP status is the code's
/// ([`ErrorCode::http_status`]), so a code and its status never disagree.
#[derive(Debug)]
pub struct ApiError {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// An error with `code` (which decides the status) and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The status of a code as an HTTP type (every code's status is a valid one: a unit test holds it).
fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        });
        // The code rides along for the request metrics (store errors by kind).
        let mut response = (status_of(self.code), Extension(self.code), body).into_response();
        if matches!(
            self.code,
            ErrorCode::Overloaded | ErrorCode::StoreUnavailable
        ) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(shed::RETRY_AFTER.as_secs()),
            );
        }
        response
    }
}

/// The body of every error response: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` of an [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable reason; match on it.
    pub code: ErrorCode,
    /// Human-readable reason; do not parse it.
    pub message: String,
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        Self::new(e.code, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::new(
                ErrorCode::StoreUnavailable,
                format!("the store is unavailable, retry later: {m}"),
            ),
            StoreError::Corrupt(m) => Self::new(ErrorCode::StoreCorrupt, m),
            e @ StoreError::Backlogged { .. } => Self::new(ErrorCode::Overloaded, e.to_string()),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Invalid(e) => e.into(),
            WriteError::Store(e) => e.into(),
        }
    }
}

impl From<Overloaded> for ApiError {
    fn from(e: Overloaded) -> Self {
        Self::new(ErrorCode::Overloaded, e.to_string())
    }
}

impl From<crate::feed::FeedError> for ApiError {
    fn from(e: crate::feed::FeedError) -> Self {
        match e {
            crate::feed::FeedError::Store(e) => e.into(),
            crate::feed::FeedError::Overloaded(e) => e.into(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        // axum answers 422 for well-formed JSON of the wrong shape; this API says 400
        // `invalid_json` for every body it cannot read.
        let code = match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            _ => ErrorCode::InvalidJson,
        };
        Self::new(code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(ErrorCode::InvalidQuery, r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_answers_an_error_status_of_its_own_class() {
        for &code in ErrorCode::ALL {
            let status = status_of(code);
            assert_eq!(status.as_u16(), code.http_status(), "{code:?}");
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code:?}: {status}"
            );
            let response = ApiError::new(code, "m").into_response();
            assert_eq!(response.status(), status, "{code:?}");
        }
        assert_eq!(status_of(ErrorCode::CursorExpired), StatusCode::GONE);
        assert_eq!(
            status_of(ErrorCode::Overloaded),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_of(ErrorCode::TooFewExposures),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
