//! The decision for one request, free of I/O: which key a bearer header names, whether it holds
//! the scope the route needs, and the refusals (401, 403, 429) the HTTP layer answers.

use std::sync::Arc;

use super::keys::{ApiKey, KeyName, KeySet};
use super::limits::RetryAfter;
use super::scope::{Access, Scope};

/// Which limit refused a request (the `limit` label of `feed_rate_limited_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitKind {
    /// The key's own bucket.
    Key,
    /// The user's bucket of `GET /v1/feed`.
    User,
    /// The server's bucket in open mode.
    Open,
}

impl LimitKind {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            LimitKind::Key => "key",
            LimitKind::User => "user",
            LimitKind::Open => "open",
        }
    }
}

/// Why a request without a usable key is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unauthenticated {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header of another scheme (`Basic …`): the client does not speak
    /// Bearer, so the challenge carries no error code (RFC 6750 §3.1).
    OtherScheme,
    /// A `Bearer` header without a usable key: empty, not ASCII-printable text, or longer than
    /// [`MAX_KEY_LEN`] (refused without hashing).
    Malformed,
    /// A bearer key no entry of the file has (never issued, mistyped or revoked).
    Unknown,
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq)]
pub enum Refusal {
    /// 401: no known key.
    Unauthenticated(Unauthenticated),
    /// 403: a known key without the scope the route needs.
    Forbidden {
        /// The key's name.
        key: KeyName,
        /// The scope the route needs.
        needs: Scope,
    },
    /// 429: over a limit.
    RateLimited {
        /// The key's name (none in open mode).
        key: Option<KeyName>,
        /// Which limit.
        limit: LimitKind,
        /// When to retry.
        retry_after: RetryAfter,
    },
}

impl Refusal {
    /// The key the refusal names, if any (for metrics and logs).
    pub fn key(&self) -> Option<&KeyName> {
        match self {
            Refusal::Unauthenticated(_) => None,
            Refusal::Forbidden { key, .. } => Some(key),
            Refusal::RateLimited { key, .. } => key.as_ref(),
        }
    }
}

/// Longest key a bearer header may carry (bytes). Issued keys are far shorter (a 256-bit key is
/// 43 to 64 characters); a longer one is refused as malformed before it is hashed.
pub const MAX_KEY_LEN: usize = 256;

/// The bearer key of an `Authorization` header value (`Bearer <key>`, scheme in any case).
pub fn bearer(header: Option<&[u8]>) -> Result<&str, Unauthenticated> {
    let value = header.ok_or(Unauthenticated::Missing)?;
    let trimmed = value.trim_ascii();
    let (scheme, key) = match trimmed.iter().position(|&b| b == b' ') {
        Some(space) => (&trimmed[..space], trimmed[space + 1..].trim_ascii()),
        None => (trimmed, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(Unauthenticated::OtherScheme);
    }
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Unauthenticated::Malformed);
    }
    std::str::from_utf8(key).map_err(|_| Unauthenticated::Malformed)
}

/// Which key, if any, may make a request needing `access`. Pure: no I/O, no limits.
pub fn authorize<'k>(
    keys: &'k KeySet,
    access: Access,
    header: Option<&[u8]>,
) -> Result<Option<&'k Arc<ApiKey>>, Refusal> {
    let Access::Requires(needs) = access else {
        return Ok(None);
    };
    let presented = bearer(header).map_err(Refusal::Unauthenticated)?;
    let key = keys
        .find(presented)
        .ok_or(Refusal::Unauthenticated(Unauthenticated::Unknown))?;
    if key.scopes.contains(&needs) {
        Ok(Some(key))
    } else {
        Err(Refusal::Forbidden {
            key: key.name.clone(),
            needs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys;

    #[test]
    fn bearer_reads_the_key_of_a_bearer_header_only() {
        assert_eq!(bearer(Some(b"Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some(b"bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(None), Err(Unauthenticated::Missing));
        for other in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"abc",
            b"Digest x",
            b"\xff abc",
            b"",
        ] {
            assert_eq!(
                bearer(Some(other)),
                Err(Unauthenticated::OtherScheme),
                "{other:?}"
            );
        }
        for bad in [&b"Bearer"[..], b"Bearer ", b"Bearer \xff"] {
            assert_eq!(
                bearer(Some(bad)),
                Err(Unauthenticated::Malformed),
                "{bad:?}"
            );
        }
        let longest = format!("Bearer {}", "k".repeat(MAX_KEY_LEN));
        assert_eq!(
            bearer(Some(longest.as_bytes())).map(str::len),
            Ok(MAX_KEY_LEN)
        );
        let too_long = format!("Bearer {}", "k".repeat(MAX_KEY_LEN + 1));
        assert_eq!(
            bearer(Some(too_long.as_bytes())),
            Err(Unauthenticated::Malformed)
        );
    }

    fn keys() -> KeySet {
        let sha = |k: &str| hex::encode(ring::digest::digest(&ring::digest::SHA256, k.as_bytes()));
        let text = format!(
            "keys:\n  - {{name: reader, sha256: {}, scopes: [read], limit: {{requestsPerSecond: 1, burst: 1}}}}\n",
            sha("r-key")
        );
        KeySet::build(keys::parse(&text).expect("valid"), None)
    }

    #[test]
    fn authorize_sorts_open_unknown_forbidden_and_allowed() {
        let keys = keys();
        let read = Access::Requires(Scope::Read);
        let write = Access::Requires(Scope::Write);
        assert!(matches!(authorize(&keys, Access::Open, None), Ok(None)));
        assert_eq!(
            authorize(&keys, read, None).err(),
            Some(Refusal::Unauthenticated(Unauthenticated::Missing))
        );
        assert_eq!(
            authorize(&keys, read, Some(b"Bearer nope")).err(),
            Some(Refusal::Unauthenticated(Unauthenticated::Unknown))
        );
        assert_eq!(
            authorize(&keys, write, Some(b"Bearer r-key")).err(),
            Some(Refusal::Forbidden {
                key: KeyName::new("reader").expect("name"),
                needs: Scope::Write
            })
        );
        let allowed = authorize(&keys, read, Some(b"Bearer r-key")).ok().flatten();
        assert_eq!(allowed.map(|k| k.name.as_str()), Some("reader"));
    }
}
