//! Opaque paging cursors: base64url of `{snapshot id}:{offset}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes a cursor.
pub fn encode(snapshot: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{snapshot}:{offset}"))
}

/// Decodes a cursor; `None` when it was not made by [`encode`].
pub fn decode(cursor: &str) -> Option<(String, usize)> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, offset) = text.rsplit_once(':')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((id.to_owned(), offset.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        assert_eq!(
            decode(&encode("abc123", 40)),
            Some(("abc123".to_owned(), 40))
        );
        assert_eq!(decode("not base64!"), None);
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode("zz:1")), None);
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode("ab:-1")), None);
    }
}
