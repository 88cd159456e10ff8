//! API keys for the key-isolation phase: random keys and the feed-server `--api-keys` file that
//! holds only their SHA-256 digests (the format of feed-server/README.md, written as JSON, which
//! the server reads like YAML).

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Random bytes in a generated key (256 bits, as the README recommends).
const KEY_BYTES: usize = 32;

/// A scope a benchmark key may hold (the bench only reads feeds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `GET /v1/feed`, `POST /v1/rank`.
    Read,
}

/// A key's token bucket, as the keys file spells it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    /// Sustained requests per second.
    pub requests_per_second: f64,
    /// Bucket size.
    pub burst: u32,
}

/// A generated key: its name in the server's metrics and the secret clients send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchKey {
    /// Name (the `key` label of feed-server's request metrics).
    pub name: String,
    /// The secret sent as `Authorization: Bearer <secret>`; never written to the keys file.
    pub secret: String,
    /// Scopes granted.
    pub scopes: Vec<Scope>,
    /// Rate limit.
    pub limit: Limit,
}

impl BenchKey {
    /// A new key with 256 random bits (hex), read scope and `limit`.
    pub fn generate<R: RngCore>(rng: &mut R, name: &str, limit: Limit) -> Self {
        let mut bytes = [0u8; KEY_BYTES];
        rng.fill_bytes(&mut bytes);
        Self {
            name: name.to_owned(),
            secret: hex::encode(bytes),
            scopes: vec![Scope::Read],
            limit,
        }
    }
}

/// Lowercase hex SHA-256 of a key, the `sha256` of its entry in the keys file.
pub fn digest(secret: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        secret.as_bytes(),
    ))
}

#[derive(Serialize)]
struct KeysFile<'a> {
    keys: Vec<Entry<'a>>,
}

#[derive(Serialize)]
struct Entry<'a> {
    name: &'a str,
    sha256: String,
    scopes: &'a [Scope],
    limit: Limit,
}

/// The feed-server `--api-keys` file for `keys`: names, digests, scopes and limits — no secret.
pub fn keys_file(keys: &[BenchKey]) -> String {
    let file = KeysFile {
        keys: keys
            .iter()
            .map(|k| Entry {
                name: &k.name,
                sha256: digest(&k.secret),
                scopes: &k.scopes,
                limit: k.limit,
            })
            .collect(),
    };
    // Plain structs of strings and numbers always serialise.
    serde_json::to_string_pretty(&file).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const LIMIT: Limit = Limit {
        requests_per_second: 50.0,
        burst: 50,
    };

    #[test]
    fn digest_is_sha256_hex() {
        // FIPS 180-2 test vector, and what `printf %s abc | sha256sum` prints.
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_keys_are_distinct_256_bit_hex() {
        let mut rng = StdRng::seed_from_u64(7);
        let a = BenchKey::generate(&mut rng, "flooder", LIMIT);
        let b = BenchKey::generate(&mut rng, "victim", LIMIT);
        assert_ne!(a.secret, b.secret);
        for k in [&a, &b] {
            assert_eq!(k.secret.len(), 64);
            assert!(k.secret.bytes().all(|c| c.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn keys_file_holds_digests_never_secrets() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = BenchKey::generate(&mut rng, "flooder", LIMIT);
        let b = BenchKey::generate(&mut rng, "victim", LIMIT);
        let file = keys_file(&[a.clone(), b.clone()]);
        assert!(!file.contains(&a.secret) && !file.contains(&b.secret));
        let parsed: serde_json::Value = serde_json::from_str(&file).expect("JSON");
        let keys = parsed["keys"].as_array().expect("keys array");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0]["name"], "flooder");
        assert_eq!(keys[0]["sha256"], digest(&a.secret));
        assert_eq!(keys[1]["sha256"], digest(&b.secret));
        assert_eq!(keys[0]["scopes"], serde_json::json!(["read"]));
        assert_eq!(
            keys[0]["limit"],
            serde_json::json!({"requestsPerSecond": 50.0, "burst": 50})
        );
    }
}
