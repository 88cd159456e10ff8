//! The API-keys file (`--api-keys`) and the set of keys it defines.
//!
//! The file holds SHA-256 digests of keys, never keys:
//!
//! ```yaml
//! keys:
//!   - name: mobile-app          # label on the request metrics, field of the request log
//!     sha256: 3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7
//!     scopes: [read, events]
//!     limit: {requestsPerSecond: 200, burst: 400}
//! ```
//!
//! **Lookup in constant time with respect to the key.** A presented key is hashed with SHA-256
//! and the digest looked up in a map keyed by digest. The secret itself is never compared with
//! anything, so no comparison can leak it byte by byte; what a timing attacker could at best
//! learn is where *the digest of their own guess* falls in the map (whose hasher is randomly
//! keyed per process), which says nothing about any real key — finding a key from its digest's
//! leading bytes is a preimage attack on SHA-256. Keys are random (≥ 128 bits, see the README),
//! so an unsalted fast hash is enough: there is no dictionary to attack.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::limits::{Bucket, RateLimit};
use super::scope::Scope;
use crate::reload::{NotUtf8, utf8};

/// Longest key name.
pub const MAX_NAME_LEN: usize = 64;

/// The name of a key: 1 to [`MAX_NAME_LEN`] of `a-z`, `0-9`, `.`, `_`, `-`, starting with a
/// letter or digit. Safe as a metric label value and a log field.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyName(Arc<str>);

impl KeyName {
    /// Checks and wraps a name.
    pub fn new(name: &str) -> Result<Self, KeyFileError> {
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
        let first_ok = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if first_ok && name.len() <= MAX_NAME_LEN && name.chars().all(valid_char) {
            Ok(Self(name.into()))
        } else {
            Err(KeyFileError::InvalidName(name.to_owned()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 digest of a key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of a presented key.
    pub fn of(key: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, key);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// Reads 64 hexadecimal digits (either case).
    pub fn from_hex(hex_digest: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_digest, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({})", hex::encode(self.0))
    }
}

/// Why an API-keys file is refused (at start: the server does not start; on reload: the last
/// good file stays in force).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum KeyFileError {
    /// Not YAML/JSON of the documented shape (unknown field, wrong type, bad limit, …).
    #[error("{0}")]
    Parse(String),
    /// The file is not UTF-8 text.
    #[error(transparent)]
    NotUtf8(#[from] NotUtf8),
    /// The file is empty: most likely a write in progress.
    #[error("the file is empty (write `keys: []` to refuse every request)")]
    Empty,
    /// A name outside the allowed characters or length.
    #[error(
        "key name {0:?} is invalid: 1 to {MAX_NAME_LEN} of a-z, 0-9, '.', '_', '-', starting with a letter or digit"
    )]
    InvalidName(String),
    /// Two entries share a name.
    #[error("key name {0:?} is used twice")]
    DuplicateName(String),
    /// `sha256` is not 64 hexadecimal digits.
    #[error(
        "key {0:?}: sha256 must be the 64 hex digits of the key's SHA-256 digest (the file holds digests, never keys)"
    )]
    InvalidDigest(String),
    /// Two entries have the same digest (one key, two names).
    #[error("keys {0:?} and {1:?} have the same sha256")]
    DuplicateDigest(String, String),
    /// An entry with no scope could call nothing.
    #[error("key {0:?} has no scopes (give at least one of read, events, write, admin)")]
    NoScopes(String),
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    keys: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    sha256: String,
    scopes: Vec<Scope>,
    limit: RateLimit,
}

/// One checked entry of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyEntry {
    /// Its name.
    pub name: KeyName,
    /// The digest of the key.
    pub digest: KeyDigest,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// Its token bucket's limit.
    pub limit: RateLimit,
}

/// Parses and validates a keys file (YAML or JSON) as read from disk: bytes that are not UTF-8
/// are refused ([`KeyFileError::NotUtf8`]), never read with replacement characters. Pure: no I/O.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<KeyEntry>, KeyFileError> {
    parse(utf8(bytes)?)
}

/// Parses and validates the text of an API-keys file (see [`parse_bytes`]).
pub fn parse(text: &str) -> Result<Vec<KeyEntry>, KeyFileError> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| KeyFileError::Parse(e.to_string()))?;
    if value.is_null() {
        return Err(KeyFileError::Empty);
    }
    let raw: RawFile =
        serde_yaml::from_value(value).map_err(|e| KeyFileError::Parse(e.to_string()))?;
    let mut names = HashSet::new();
    let mut digests: HashMap<KeyDigest, String> = HashMap::new();
    raw.keys
        .into_iter()
        .map(|e| {
            let name = KeyName::new(&e.name)?;
            if !names.insert(name.clone()) {
                return Err(KeyFileError::DuplicateName(e.name));
            }
            let digest = KeyDigest::from_hex(&e.sha256)
                .ok_or_else(|| KeyFileError::InvalidDigest(e.name.clone()))?;
            if let Some(first) = digests.insert(digest, e.name.clone()) {
                return Err(KeyFileError::DuplicateDigest(first, e.name));
            }
            if e.scopes.is_empty() {
                return Err(KeyFileError::NoScopes(e.name));
            }
            Ok(KeyEntry {
                name,
                digest,
                scopes: e.scopes.into_iter().collect(),
                limit: e.limit,
            })
        })
        .collect()
}

/// A key in force.
#[derive(Debug)]
pub struct ApiKey {
    /// Its name (never the key).
    pub name: KeyName,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
    /// Its token bucket.
    pub bucket: Arc<Bucket>,
}

/// The keys in force, by digest.
#[derive(Debug, Default)]
pub struct KeySet {
    by_digest: HashMap<KeyDigest, Arc<ApiKey>>,
}

impl KeySet {
    /// The set of `entries`. A key whose name and limit are unchanged from `previous` keeps its
    /// bucket, so a reload neither refills a drained bucket nor drains a full one.
    pub fn build(entries: Vec<KeyEntry>, previous: Option<&KeySet>) -> Self {
        let old_buckets: HashMap<&KeyName, &Arc<Bucket>> = previous
            .map(|p| p.by_digest.values().map(|k| (&k.name, &k.bucket)).collect())
            .unwrap_or_default();
        let by_digest = entries
            .into_iter()
            .map(|e| {
                let bucket = old_buckets
                    .get(&e.name)
                    .filter(|b| b.limit() == e.limit)
                    .map_or_else(|| Arc::new(Bucket::new(e.limit)), |b| Arc::clone(b));
                let key = ApiKey {
                    name: e.name,
                    scopes: e.scopes,
                    bucket,
                };
                (e.digest, Arc::new(key))
            })
            .collect();
        Self { by_digest }
    }

    /// The key whose digest is the presented key's, if any.
    pub fn find(&self, presented: &str) -> Option<&Arc<ApiKey>> {
        self.by_digest.get(&KeyDigest::of(presented.as_bytes()))
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    /// Whether no key is in force (every request needing one is refused).
    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The names, sorted (for logs).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_digest.values().map(|k| k.name.as_str()).collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf %s reader-key | sha256sum`
    const READER: &str = "ec4408df15da46b328f6f3246fa723d0aa6cb0f0a0dd9c4626080ab1b02aa3b2";

    fn entry(name: &str, sha: &str, scopes: &str, limit: &str) -> String {
        format!("  - {{name: {name}, sha256: {sha}, scopes: {scopes}, limit: {limit}}}\n")
    }

    fn file(entries: &[String]) -> String {
        format!("keys:\n{}", entries.concat())
    }

    const LIMIT: &str = "{requestsPerSecond: 10, burst: 20}";

    #[test]
    fn the_digest_is_sha256_of_the_key() {
        assert_eq!(
            hex::encode(KeyDigest::of(b"reader-key").0),
            READER,
            "printf %s reader-key | sha256sum"
        );
    }

    #[test]
    fn a_valid_file_parses_in_yaml_and_json() {
        let yaml = file(&[
            entry("reader", READER, "[read]", LIMIT),
            entry("ops.team_1", &"AB".repeat(32), "[write, admin]", LIMIT),
        ]);
        let entries = parse(&yaml).expect("valid");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name.as_str(), "reader");
        assert_eq!(entries[0].scopes, BTreeSet::from([Scope::Read]));
        assert_eq!(entries[0].limit, RateLimit::new(10.0, 20).expect("limit"));
        assert_eq!(
            entries[1].scopes,
            BTreeSet::from([Scope::Write, Scope::Admin])
        );
        let json = format!(
            r#"{{"keys":[{{"name":"reader","sha256":"{READER}","scopes":["read","events"],"limit":{{"requestsPerSecond":0.5,"burst":1}}}}]}}"#
        );
        assert_eq!(parse(&json).expect("json").len(), 1);
        assert_eq!(parse("keys: []").expect("no keys"), vec![]);
    }

    #[test]
    fn every_mistake_is_refused_with_the_entry_named() {
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("keys: [".into(), "did not find expected"),
            ("{}".into(), "missing field `keys`"),
            ("keys: []\nextra: 1".into(), "unknown field `extra`"),
            (
                file(&[entry("Bad Name", READER, "[read]", LIMIT)]),
                "\"Bad Name\"",
            ),
            (file(&[entry("-x", READER, "[read]", LIMIT)]), "\"-x\""),
            (
                file(&[entry(&"a".repeat(65), READER, "[read]", LIMIT)]),
                "is invalid",
            ),
            (
                file(&[entry("a", "abc", "[read]", LIMIT)]),
                "key \"a\": sha256",
            ),
            (
                file(&[entry("a", &"g".repeat(64), "[read]", LIMIT)]),
                "key \"a\": sha256",
            ),
            (
                file(&[entry("a", READER, "[]", LIMIT)]),
                "key \"a\" has no scopes",
            ),
            (
                file(&[entry("a", READER, "[root]", LIMIT)]),
                "unknown variant `root`",
            ),
            (
                file(&[entry(
                    "a",
                    READER,
                    "[read]",
                    "{requestsPerSecond: 0, burst: 1}",
                )]),
                "requestsPerSecond must be between 0.001",
            ),
            (
                // Used to panic in the limiter ("Duration is longer than 584 years").
                file(&[entry(
                    "a",
                    READER,
                    "[read]",
                    "{requestsPerSecond: 1e-12, burst: 1}",
                )]),
                "requestsPerSecond must be between 0.001",
            ),
            (
                file(&[entry(
                    "a",
                    READER,
                    "[read]",
                    "{requestsPerSecond: 0.001, burst: 1000000}",
                )]),
                "burst / requestsPerSecond must be at most 86400 s",
            ),
            (
                file(&[entry(
                    "a",
                    READER,
                    "[read]",
                    "{requestsPerSecond: 1, burst: 0}",
                )]),
                "burst must be between 1",
            ),
            (
                "keys:\n  - {name: a, sha256: x, scopes: [read]}".into(),
                "missing field `limit`",
            ),
            (
                format!(
                    "keys:\n  - {{name: a, key: secret, sha256: {READER}, scopes: [read], limit: {LIMIT}}}"
                ),
                "unknown field `key`",
            ),
            (
                file(&[
                    entry("a", READER, "[read]", LIMIT),
                    entry("a", &"0".repeat(64), "[read]", LIMIT),
                ]),
                "key name \"a\" is used twice",
            ),
            (
                file(&[
                    entry("a", READER, "[read]", LIMIT),
                    entry("b", &READER.to_uppercase(), "[read]", LIMIT),
                ]),
                "keys \"a\" and \"b\" have the same sha256",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).expect_err(&text).to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_set_finds_keys_by_their_digest_only() {
        let entries = parse(&file(&[entry("reader", READER, "[read]", LIMIT)])).expect("valid");
        let set = KeySet::build(entries, None);
        assert_eq!(
            set.find("reader-key").map(|k| k.name.as_str()),
            Some("reader")
        );
        for wrong in ["", "reader-ke", "reader-key ", "Reader-key", READER] {
            assert!(set.find(wrong).is_none(), "{wrong:?}");
        }
        assert_eq!(set.names(), vec!["reader"]);
    }

    #[test]
    fn a_rebuilt_set_keeps_the_buckets_of_unchanged_keys_only() {
        let one = |limit: &str| {
            parse(&file(&[
                entry("reader", READER, "[read]", limit),
                entry("writer", &"0".repeat(64), "[write]", LIMIT),
            ]))
            .expect("valid")
        };
        let first = KeySet::build(one(LIMIT), None);
        let same = KeySet::build(one(LIMIT), Some(&first));
        let changed = KeySet::build(one("{requestsPerSecond: 1, burst: 1}"), Some(&first));
        let bucket = |s: &KeySet, key: &str| s.find(key).map(|k| Arc::clone(&k.bucket));
        let (a, b) = (bucket(&first, "reader-key"), bucket(&same, "reader-key"));
        assert!(matches!((a, b), (Some(a), Some(b)) if Arc::ptr_eq(&a, &b)));
        let (a, c) = (bucket(&first, "reader-key"), bucket(&changed, "reader-key"));
        assert!(matches!((a, c), (Some(a), Some(c)) if !Arc::ptr_eq(&a, &c)));
    }
}
