//! The HTTP side of [`crate::auth`]: the middleware that admits or refuses each request before
//! any handler runs, its 401/403/429 answers, and the request span that carries the key name.

use std::convert::Infallible;
use std::future::{Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Query, Request};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower::{Layer, Service, ServiceExt};
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
/// in the request's extensions by [`Authenticate`] when `--user-rate-limit` is set.
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

/// Adds [`Authenticate`] around a service.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    /// Admits or refuses with `auth`.
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Authenticate<S> {
        Authenticate {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// Admits each request (and tags its response with the key's name) or answers the refusal
/// without calling the inner service. The key's checks are synchronous, so an admitted request
/// goes straight to the inner service, with nothing allocated; only a per-user limit
/// (`--user-rate-limit` on `GET /v1/feed`) waits for its bucket first.
#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S> Service<Request> for Authenticate<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Admission<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let auth = &self.auth;
        let matched = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let access = super::access::access_of(matched);
        let route = matched.and_then(Route::from_path);
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        let admitted = match auth.admit(access, authorization) {
            Ok(admitted) => admitted,
            Err(refusal) => return Admission::refused(&refusal),
        };
        if let Some(key) = &admitted.key {
            Span::current().record("key", key.as_str());
        }
        if route == Some(Route::Rank) && auth.limits_users() {
            req.extensions_mut().insert(UserLimit {
                auth: auth.clone(),
                key: admitted.key.clone(),
            });
        }
        // Only a per-user limit needs the feed's user before the handler parses the query.
        let user = (route == Some(Route::Feed) && auth.limits_users())
            .then(|| feed_user(req.uri()))
            .flatten();
        let key = admitted.key;
        let Some(user) = user else {
            return Admission::Admitted {
                inner: self.inner.call(req),
                key,
            };
        };
        // The service that was made ready answers; a clone is left for the next request.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        let auth = auth.clone();
        Admission::PerUser {
            future: Box::pin(async move {
                if let Err(refusal) = auth.charge_user(key.clone(), &user).await {
                    return tagged(refusal_response(&refusal), refusal.key().cloned());
                }
                let Ok(response) = inner.oneshot(req).await;
                tagged(response, key)
            }),
        }
    }
}

/// `response` with the name of the key its request came with, for the request metrics.
fn tagged(mut response: Response, key: Option<KeyName>) -> Response {
    if let Some(key) = key {
        response.extensions_mut().insert(ClientKey(key));
    }
    response
}

pin_project_lite::pin_project! {
    /// The future of [`Authenticate`].
    #[project = AdmissionProj]
    pub enum Admission<F> {
        /// Refused: the answer.
        Refused { answer: Ready<Result<Response, Infallible>> },
        /// Admitted: the inner service's answer, tagged with the key.
        Admitted {
            #[pin]
            inner: F,
            key: Option<KeyName>,
        },
        /// Waiting for the user's bucket, then the inner service.
        PerUser { future: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F> Admission<F> {
    fn refused(refusal: &Refusal) -> Self {
        let key = refusal.key().cloned();
        if let Some(key) = &key {
            Span::current().record("key", key.as_str());
        }
        Self::Refused {
            answer: std::future::ready(Ok(tagged(refusal_response(refusal), key))),
        }
    }
}

impl<F> Future for Admission<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AdmissionProj::Refused { answer } => Pin::new(answer).poll(cx),
            AdmissionProj::Admitted { inner, key } => {
                let Ok(response) = std::task::ready!(inner.poll(cx));
                Poll::Ready(Ok(tagged(response, key.take())))
            }
            AdmissionProj::PerUser { future } => future.as_mut().poll(cx).map(Ok),
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
