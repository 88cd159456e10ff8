//! Extractors whose rejections are [`ApiError`]s (JSON bodies, not axum's plain text).

use axum::extract::{FromRequest, FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `axum::Json` answering malformed bodies with a JSON error.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Query` answering malformed query strings with a JSON error.
///
/// A query string that parses is read by `serde_urlencoded` alone. Only one that does not goes
/// through axum's extractor, whose message names the field at fault: to do that it tracks the
/// path of every field it reads, which cost every request of the feed ~0.2 µs (BENCHMARKS.md,
/// "Cached pages: the middleware and the query"). Both parse with the same deserializer, so
/// they accept the same strings.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        match serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()) {
            Ok(value) => Ok(Self(value)),
            Err(_) => match Query::try_from_uri(&parts.uri) {
                Ok(Query(value)) => Ok(Self(value)),
                Err(rejection) => Err(rejection.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;
    use crate::http::error::ErrorCode;

    /// Fields of each kind a query of the API has.
    #[derive(Debug, Deserialize, PartialEq)]
    struct Q {
        user_id: String,
        limit: Option<i64>,
        #[serde(default)]
        explain: bool,
    }

    /// What `ApiQuery` makes of `query`: the value, or the error's code and message.
    fn ours(query: &str) -> Result<Q, (ErrorCode, String)> {
        let (mut parts, ()) = Request::get(format!("/v1/feed?{query}"))
            .body(())
            .map_err(|e| (ErrorCode::Internal, e.to_string()))?
            .into_parts();
        futures::executor::block_on(ApiQuery::<Q>::from_request_parts(&mut parts, &()))
            .map(|ApiQuery(q)| q)
            .map_err(|e| (e.code, e.message))
    }

    /// What axum's `Query` makes of it, as the API answered before the fast path.
    fn axums(query: &str) -> Result<Q, (ErrorCode, String)> {
        let uri = format!("/v1/feed?{query}")
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| (ErrorCode::Internal, e.to_string()))?;
        Query::<Q>::try_from_uri(&uri)
            .map(|Query(q)| q)
            .map_err(|r| (ErrorCode::InvalidQuery, r.body_text()))
    }

    #[test]
    fn a_bad_query_is_answered_with_the_field_at_fault() {
        let Err((code, message)) = ours("user_id=u&limit=ten") else {
            panic!("a limit that is not a number was accepted");
        };
        assert_eq!(code, ErrorCode::InvalidQuery);
        assert!(message.contains("limit"), "{message}");
        assert_eq!(
            ours("user_id=u%201&limit=5&explain=true"),
            Ok(Q {
                user_id: "u 1".to_owned(),
                limit: Some(5),
                explain: true,
            })
        );
    }

    proptest! {
        // Cheap cases, and a value the two could disagree on is a narrow target.
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// The fast path accepts exactly what axum's extractor accepts, with the same value,
        /// and rejects the rest with axum's message.
        #[test]
        fn agrees_with_axums_query(
            pairs in proptest::collection::vec(
                prop_oneof![
                    "user_id=[a-z0-9%+]{0,6}",
                    "limit=[0-9a-z+-]{0,4}",
                    "explain=(true|false|1|yes|)",
                    "[a-z_]{0,8}=?[a-z0-9%]{0,4}",
                ],
                0..5,
            )
        ) {
            let query = pairs.join("&");
            let (a, b) = (ours(&query), axums(&query));
            prop_assert_eq!(a, b);
        }
    }
}
