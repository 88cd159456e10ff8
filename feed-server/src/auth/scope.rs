//! Scopes and the access a request needs. Which access each route requires is
//! `http::access::route_access`, the one table the request check and the OpenAPI document's
//! security requirements are both derived from.

use std::fmt;

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

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
