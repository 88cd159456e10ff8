//! The outer middleware of every route: the request's span, its metrics, and a warning for each
//! server error — one layer whose future wraps the inner one, so a request costs no allocation
//! here (it replaced `tower_http`'s `TraceLayer` and an `axum::middleware::from_fn`, which
//! boxed the rest of the stack and its future on every request; BENCHMARKS.md, "Cached pages:
//! the middleware and the query").
//!
//! What is counted where: `record` below and [`super::routes`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Span;

use super::error::ErrorCode;
use super::routes::{self, TrafficClass};
use super::{auth, feed};
use crate::state::SharedState;

/// Adds [`Observe`] around a service.
#[derive(Clone)]
pub struct ObserveLayer {
    state: SharedState,
}

impl ObserveLayer {
    /// Records into `state`'s metrics.
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            state: self.state.clone(),
        }
    }
}

/// Runs a request inside its span ([`auth::request_span`]) and records its response in the
/// metrics (by route class: [`super::routes`]). Each response is logged in the span: a server
/// error at WARN (`response failed`), any other at DEBUG (`response`;
/// `RUST_LOG=info,feed_server::http::observe=debug` logs every request), both with `status` and
/// `latency_ms`.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    state: SharedState,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let span = auth::request_span(&req);
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let method = req.method().clone();
        let start = Instant::now();
        // The inner layers' synchronous parts (authentication's header checks) run in the span.
        let inner = span.in_scope(|| self.inner.call(req));
        Observed {
            inner,
            span,
            seen: Some(Seen {
                state: self.state.clone(),
                matched,
                method,
                start,
            }),
        }
    }
}

/// What [`Observe`] keeps of a request until its response.
struct Seen {
    state: SharedState,
    matched: Option<MatchedPath>,
    method: Method,
    start: Instant,
}

pin_project_lite::pin_project! {
    /// The future of [`Observe`]: the inner one, polled in the request's span.
    pub struct Observed<F> {
        #[pin]
        inner: F,
        span: Span,
        seen: Option<Seen>,
    }
}

impl<F, E> Future for Observed<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = std::task::ready!(this.inner.poll(cx));
        if let (Ok(response), Some(seen)) = (&result, this.seen.take()) {
            let elapsed = seen.start.elapsed();
            record(&seen, response, elapsed.as_secs_f64());
            let (status, latency_ms) = (response.status().as_u16(), elapsed.as_millis() as u64);
            if response.status().is_server_error() {
                tracing::warn!(status, latency_ms, "response failed");
            } else {
                tracing::debug!(status, latency_ms, "response");
            }
        }
        Poll::Ready(result)
    }
}

/// Counts a response: API routes in the request metrics the rollout checks judge, refusals of
/// authentication and rate limits in their own counter (see [`auth::refusal_reason`]), probes,
/// scrapes and unmatched paths in the operational counter only (see [`routes`]); store failures
/// by kind.
fn record(seen: &Seen, response: &Response, seconds: f64) {
    let (class, route) = routes::classify(seen.matched.as_ref().map(MatchedPath::as_str));
    let status = response.status();
    let method = seen.method.as_str();
    let m = &seen.state.metrics;
    match class {
        TrafficClass::Api if let Some(reason) = auth::refusal_reason(response) => {
            let key = response.extensions().get::<auth::ClientKey>();
            m.http_refused
                .with_label_values(&[route, reason.as_str(), key.map_or("", |k| k.0.as_str())])
                .inc();
        }
        TrafficClass::Api => {
            let variant = response
                .extensions()
                .get::<feed::ServedVariant>()
                .map_or("", |v| v.0.as_str());
            let key = response
                .extensions()
                .get::<auth::ClientKey>()
                .map_or("", |k| k.0.as_str());
            m.http_requests
                .with_label_values(&[route, method, status.as_str(), variant, key])
                .inc();
            m.http_duration
                .with_label_values(&[route, method, variant, key])
                .observe(seconds);
        }
        TrafficClass::Operational => m
            .http_operational
            .with_label_values(&[route, status.as_str()])
            .inc(),
    }
    // Only failures of the store itself, not timeouts or warm-up.
    if let Some(code) = response.extensions().get::<ErrorCode>()
        && let Some(kind) = code.as_str().strip_prefix("store_")
    {
        m.store_errors.with_label_values(&[kind]).inc();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::http::error::ApiError;
    use crate::http::routes::Route;
    use crate::state::AppState;

    /// Log lines written while a test runs (the subscriber's output, plain text).
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut out) = self.0.lock() {
                out.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            self.0
                .lock()
                .map(|out| String::from_utf8_lossy(&out).into_owned())
                .unwrap_or_default()
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_store_failure_is_counted_by_route_and_kind_and_logged_in_its_span()
    -> Result<(), Box<dyn std::error::Error>> {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let state = Arc::new(AppState::for_tests()?);
        let app = Router::new()
            .route(
                Route::Feed.path(),
                get(|| async { ApiError::new(ErrorCode::StoreUnavailable, "down") }),
            )
            .route(Route::Healthz.path(), get(|| async { "ok" }))
            .layer(ObserveLayer::new(state.clone()));
        let call = |path: &str| {
            let req = Request::get(path).body(Body::empty());
            let app = app.clone();
            async move { Ok::<_, Box<dyn std::error::Error>>(app.oneshot(req?).await?) }
        };

        let failed = call("/v1/feed?user_id=u").await?;
        assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
        let m = &state.metrics;
        let labels = ["/v1/feed", "GET", "503", "", ""];
        assert_eq!(m.http_requests.with_label_values(&labels).get(), 1);
        let duration = ["/v1/feed", "GET", "", ""];
        assert_eq!(
            m.http_duration
                .with_label_values(&duration)
                .get_sample_count(),
            1
        );
        assert_eq!(m.store_errors.with_label_values(&["unavailable"]).get(), 1);
        let log = lines.text();
        assert!(
            log.contains("WARN") && log.contains("response failed") && log.contains("status=503"),
            "{log}"
        );
        assert!(log.contains("request{method=GET path=/v1/feed"), "{log}");
        assert!(
            !log.contains("user_id"),
            "the query stays out of the logs: {log}"
        );

        // A probe: the operational counter only, and nothing logged at INFO.
        let probe = call("/healthz").await?;
        assert_eq!(probe.status(), StatusCode::OK);
        let op = m.http_operational.with_label_values(&["/healthz", "200"]);
        assert_eq!(op.get(), 1);
        let api = m
            .http_requests
            .with_label_values(&["/healthz", "GET", "200", "", ""]);
        assert_eq!(api.get(), 0, "a probe is not API traffic");
        assert_eq!(lines.text().lines().count(), log.lines().count());
        Ok(())
    }
}
