//! The access every [`Route`] requires: the one table the request check (`super::auth`) and the
//! OpenAPI document's security requirements (`super::openapi_security`) are both derived from.

use crate::auth::scope::{ADMIN_PREFIX, Access, Scope};

use super::routes::Route;

/// The access a route requires. Exhaustive: a route added to [`Route`] does not compile until
/// it is given one here (and a unit test checks API routes are never open).
pub const fn route_access(route: Route) -> Access {
    match route {
        Route::Feed | Route::Rank => Access::Requires(Scope::Read),
        Route::Events => Access::Requires(Scope::Events),
        Route::Videos | Route::Video | Route::Follows | Route::Profile => {
            Access::Requires(Scope::Write)
        }
        Route::Tune | Route::Replay => Access::Requires(Scope::Admin),
        // Kubelet probes and Prometheus scrapes carry no key; the contract is public.
        Route::Healthz | Route::Readyz | Route::Metrics | Route::OpenApi => Access::Open,
    }
}

/// The access of a request from the path pattern the router matched: a [`Route`]'s, admin for
/// patterns outside the vocabulary (the fault-injection build's `/debug/faults`), open when no
/// route matched (the 404 tells nothing the public contract does not).
pub fn access_of(matched: Option<&str>) -> Access {
    match matched {
        Some(pattern) => Route::from_path(pattern).map_or(Access::Requires(Scope::Admin), |r| {
            if r.path().starts_with(ADMIN_PREFIX) {
                Access::Requires(Scope::Admin)
            } else {
                route_access(r)
            }
        }),
        None => Access::Open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::routes::TrafficClass;

    #[test]
    fn every_api_route_requires_a_scope_and_only_operational_routes_are_open() {
        for r in Route::ALL {
            let access = access_of(Some(r.path()));
            match r.class() {
                TrafficClass::Api => assert!(
                    matches!(access, Access::Requires(_)),
                    "{r:?} is an API route without a scope"
                ),
                TrafficClass::Operational => assert_eq!(access, Access::Open, "{r:?}"),
            }
            if r.path().starts_with(ADMIN_PREFIX) {
                assert_eq!(access, Access::Requires(Scope::Admin), "{r:?}");
            }
        }
    }

    #[test]
    fn the_scope_table_of_the_issue() {
        let scope = |r| match route_access(r) {
            Access::Requires(s) => Some(s),
            Access::Open => None,
        };
        assert_eq!(scope(Route::Feed), Some(Scope::Read));
        assert_eq!(scope(Route::Rank), Some(Scope::Read));
        assert_eq!(scope(Route::Events), Some(Scope::Events));
        for r in [Route::Videos, Route::Video, Route::Follows, Route::Profile] {
            assert_eq!(scope(r), Some(Scope::Write), "{r:?}");
        }
        for r in [
            Route::Healthz,
            Route::Readyz,
            Route::Metrics,
            Route::OpenApi,
        ] {
            assert_eq!(scope(r), None, "{r:?}");
        }
    }

    #[test]
    fn strays_are_admin_and_unmatched_paths_open() {
        assert_eq!(
            access_of(Some("/debug/faults")),
            Access::Requires(Scope::Admin)
        );
        assert_eq!(access_of(None), Access::Open);
    }
}
