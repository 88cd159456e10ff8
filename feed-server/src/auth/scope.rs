//! Scopes and the access every [`Route`] requires: the one table the request check and the
//! OpenAPI document's security requirements are both derived from.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::http::routes::Route;

/// What an API key may do. A key holds a set of scopes; a route requires one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read feeds: `GET /v1/feed`, `POST /v1/rank`.
    Read,
    /// Send engagement events: `POST /v1/events`.
    Events,
    /// Change the catalog and users: `PUT/DELETE /v1/videos…`, `PUT /v1/users/{id}/…`.
    Write,
    /// Operate the service: `/v1/admin/*` (`POST /v1/admin/tune`, `POST /v1/admin/replay`), and
    /// the test-only
    /// `/debug/faults`.
    Admin,
}

impl Scope {
    /// Every scope, in declaration order.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Events, Scope::Write, Scope::Admin];

    /// The scope as written in the keys file and in messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Events => "events",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request needs to be let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: probes, scrapes, the contract, unmatched paths (answered 404).
    Open,
    /// A key holding this scope (401 without a known key, 403 without the scope).
    Requires(Scope),
}

/// Path prefix of the administration routes; every route under it requires [`Scope::Admin`].
pub const ADMIN_PREFIX: &str = "/v1/admin/";

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
        for r in [Route::Tune, Route::Replay] {
            assert_eq!(scope(r), Some(Scope::Admin), "{r:?}");
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

    #[test]
    fn scopes_serialise_as_their_names() {
        for s in Scope::ALL {
            assert_eq!(
                serde_json::to_value(s).ok(),
                Some(serde_json::Value::from(s.as_str()))
            );
        }
    }
}
