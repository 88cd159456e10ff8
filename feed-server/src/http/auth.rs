//! The HTTP side of [`crate::auth`]: the middleware that admits or refuses each request before
//! any handler runs, its 401/403/429 answers, and the request span that carries the key name.

use std::sync::Arc;

use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{HeaderValue, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tracing::Span;

use super::error::{ApiError, ErrorCode};
use super::routes::Route;
use crate::auth::keys::KeyName;
use crate::auth::scope::Scope;
use crate::auth::{Authenticator, LimitKind, Refusal, Unauthenticated};
use crate::model::validate_id;

/// The name of the key a request came with, in the response's extensions for the request
/// metrics (`key` label).
#[derive(Clone, Debug)]
pub struct ClientKey(pub KeyName);

/// The per-user limit for a handler that learns its user from the body (`POST /v1/rank`): put
/// in the request's extensions by [`authenticate`] when `--user-rate-limit` is set.
#[derive(Clone)]
pub struct UserLimit {
    auth: Arc<Authenticator>,
    key: Option<KeyName>,
}

impl UserLimit {
    /// Takes a token of `user`'s bucket, or answers the 429 to send (nothing else done).
    pub async fn charge(&self, user: &str) -> Result<(), Response> {
        self.auth
            .charge_user(self.key.clone(), user)
            .await
            .map_err(|refusal| refusal_response(&refusal))
    }
}

/// The realm of every `WWW-Authenticate` challenge.
pub const REALM: &str = "feed-server";

/// The span of a request: method, path (no query: it may hold user ids and cursors) and the
/// name of its API key (filled in once known; never the key itself).
pub fn request_span(req: &Request) -> Span {
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        key = tracing::field::Empty,
    )
}

/// `user_id` of a `GET /v1/feed` query, for the per-user limit (other parameters ignored). A
/// malformed query or an invalid id is left to the handler's 400 and takes no bucket: only
/// valid ids (at most 128 bytes) are ever tracked, which bounds the limiter's memory.
#[derive(Deserialize)]
struct FeedUser {
    user_id: String,
}

fn feed_user(uri: &Uri) -> Option<String> {
    Query::<FeedUser>::try_from_uri(uri)
        .ok()
        .map(|Query(q)| q.user_id)
        .filter(|id| validate_id("user_id", id).is_ok())
}

/// Admits the request (and tags its response with the key's name) or answers the refusal.
pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let access = super::access::access_of(matched);
    let route = matched.and_then(Route::from_path);
    // Only a per-user limit needs the feed's user before the handler parses the query.
    let user = (route == Some(Route::Feed) && auth.limits_users())
        .then(|| feed_user(req.uri()))
        .flatten();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match auth.admit(access, authorization, user.as_deref()).await {
        Ok(admitted) => {
            if let Some(key) = &admitted.key {
                Span::current().record("key", key.as_str());
            }
            if route == Some(Route::Rank) && auth.limits_users() {
                req.extensions_mut().insert(UserLimit {
                    auth: auth.clone(),
                    key: admitted.key.clone(),
                });
            }
            let mut response = next.run(req).await;
            if let Some(key) = admitted.key {
                response.extensions_mut().insert(ClientKey(key));
            }
            response
        }
        Err(refusal) => {
            let key = refusal.key().cloned();
            if let Some(key) = &key {
                Span::current().record("key", key.as_str());
            }
            let mut response = refusal_response(&refusal);
            if let Some(key) = key {
                response.extensions_mut().insert(ClientKey(key));
            }
            response
        }
    }
}

/// The error code of a response that refused a request before any work (401 `unauthenticated`,
/// 403 `forbidden`, 429 `rate_limited`), or `None` for any other response. Refusals are counted
/// apart from the API request series: anyone can send cheap 401s, and counting them would let a
/// flood dilute a canary's error rate and latency into a promotion.
pub fn refusal_reason(response: &Response) -> Option<ErrorCode> {
    response
        .extensions()
        .get::<ErrorCode>()
        .copied()
        .filter(|code| {
            matches!(
                code,
                ErrorCode::Unauthenticated | ErrorCode::Forbidden | ErrorCode::RateLimited
            )
        })
}

fn challenge(error: Option<&str>, scope: Option<Scope>) -> HeaderValue {
    let mut value = format!("Bearer realm=\"{REALM}\"");
    if let Some(error) = error {
        value.push_str(&format!(", error=\"{error}\""));
    }
    if let Some(scope) = scope {
        value.push_str(&format!(", scope=\"{scope}\""));
    }
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Bearer"))
}

/// The JSON error and headers of a refusal: 401 `unauthenticated` and 403 `forbidden` with a
/// `WWW-Authenticate` challenge (RFC 6750), 429 `rate_limited` with `Retry-After` (seconds).
pub fn refusal_response(refusal: &Refusal) -> Response {
    match refusal {
        Refusal::Unauthenticated(why) => {
            let (message, error) = match why {
                Unauthenticated::Missing => (
                    "this route needs an API key: send `Authorization: Bearer <key>`",
                    None,
                ),
                // RFC 6750 §3.1: a client that tried another scheme gets no error code.
                Unauthenticated::OtherScheme => (
                    "this route takes `Authorization: Bearer <key>`, not another scheme",
                    None,
                ),
                Unauthenticated::Malformed => (
                    "the Authorization header is `Bearer` without a usable key (empty, not text, or longer than 256 bytes)",
                    Some("invalid_request"),
                ),
                Unauthenticated::Unknown => (
                    "the API key is not valid (never issued, mistyped or revoked)",
                    Some("invalid_token"),
                ),
            };
            let mut response = ApiError::new(ErrorCode::Unauthenticated, message).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge(error, None));
            response
        }
        Refusal::Forbidden { key, needs } => {
            let mut response = ApiError::new(
                ErrorCode::Forbidden,
                format!("the API key {key:?} lacks the `{needs}` scope this route needs"),
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                challenge(Some("insufficient_scope"), Some(*needs)),
            );
            response
        }
        Refusal::RateLimited {
            key,
            limit,
            retry_after,
        } => {
            let secs = retry_after.0;
            let message = match (limit, key) {
                (LimitKind::Key, Some(key)) => {
                    format!("the API key {key:?} is over its rate limit; retry after {secs} s")
                }
                (LimitKind::User, _) => {
                    format!("too many feed requests for this user; retry after {secs} s")
                }
                _ => format!("the server is over its rate limit; retry after {secs} s"),
            };
            let mut response = ApiError::new(ErrorCode::RateLimited, message).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::limits::RetryAfter;
    use axum::http::StatusCode;

    fn header_of(r: &Response, name: header::HeaderName) -> &str {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn refusals_answer_their_status_code_and_challenge() {
        let r = refusal_response(&Refusal::Unauthenticated(Unauthenticated::Missing));
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header_of(&r, header::WWW_AUTHENTICATE),
            "Bearer realm=\"feed-server\""
        );
        let r = refusal_response(&Refusal::Unauthenticated(Unauthenticated::OtherScheme));
        assert_eq!(
            header_of(&r, header::WWW_AUTHENTICATE),
            "Bearer realm=\"feed-server\"",
            "no error code for a client of another scheme (RFC 6750 §3.1)"
        );
        let r = refusal_response(&Refusal::Unauthenticated(Unauthenticated::Malformed));
        assert!(header_of(&r, header::WWW_AUTHENTICATE).ends_with("error=\"invalid_request\""));
        let r = refusal_response(&Refusal::Unauthenticated(Unauthenticated::Unknown));
        assert!(header_of(&r, header::WWW_AUTHENTICATE).ends_with("error=\"invalid_token\""));
        let key = KeyName::new("reader").expect("name");
        let r = refusal_response(&Refusal::Forbidden {
            key: key.clone(),
            needs: Scope::Write,
        });
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            header_of(&r, header::WWW_AUTHENTICATE),
            "Bearer realm=\"feed-server\", error=\"insufficient_scope\", scope=\"write\""
        );
        let r = refusal_response(&Refusal::RateLimited {
            key: Some(key),
            limit: LimitKind::Key,
            retry_after: RetryAfter(7),
        });
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header_of(&r, header::RETRY_AFTER), "7");
        assert_eq!(
            r.extensions().get::<ErrorCode>(),
            Some(&ErrorCode::RateLimited)
        );
    }

    #[test]
    fn the_feed_user_is_read_from_the_query_only_when_there() {
        let uri = |s: &str| s.parse::<Uri>().expect("uri");
        assert_eq!(
            feed_user(&uri("/v1/feed?user_id=u%201&limit=5")),
            Some("u 1".to_owned())
        );
        assert_eq!(feed_user(&uri("/v1/feed?limit=5")), None);
        let long = "u".repeat(129);
        assert_eq!(feed_user(&uri(&format!("/v1/feed?user_id={long}"))), None);
        assert_eq!(feed_user(&uri("/v1/feed?user_id=")), None);
        assert_eq!(feed_user(&uri("/v1/feed")), None);
    }
}
