//! How a ranked [`Snapshot`] is kept in the store tier, and read back.
//!
//! Two forms, told apart by their first byte:
//!
//! - **JSON** (`{`): the form every version of feed-server reads and, before compact snapshots,
//!   wrote. Explained snapshots (`explain=true`: per-item signals and explanations) are always
//!   stored in it.
//! - **Compact** (`0x01`, then the snapshot in [postcard](https://postcard.jamesmunns.com/)):
//!   the ids, scores and content-health facts with no field names and integers as varints,
//!   about a fifth of the JSON's bytes. Redis pays for a cached page by its bytes (memory,
//!   and the CPU to read and place them), so this is what a replica writes by default.
//!
//! Every version that writes compact snapshots reads both forms. A version older than compact
//! snapshots reads only JSON: what it cannot read is a cache miss for it (it ranks again) and a
//! cursor it cannot read answers `410 cursor_expired`. A rolling upgrade from such a version
//! that must not show this runs with `--snapshot-format json` until every replica is upgraded
//! (feed-server/README.md).
//!
//! Both forms begin with the snapshot's id (the first field), so that a recheck can tell from a
//! stored head's first bytes which snapshot it is ([`StoredPrefixes`]).

use serde::{Deserialize, Serialize, Serializer};

use crate::cache::{PageTtls, Snapshot};
use crate::model::FeedItem;
use crate::served::ItemFacts;
use crate::store::UserVersion;

/// The form a replica writes its snapshots in (`--snapshot-format`); both are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SnapshotFormat {
    /// Binary, about a fifth of the JSON's bytes; readable by versions that have this option.
    #[default]
    Compact,
    /// JSON, readable by every version: for a rolling upgrade from a version without compact
    /// snapshots.
    Json,
}

/// The first byte of a compact snapshot (a JSON snapshot begins with `{`). A later compact
/// layout takes the next value, so that a reader never mistakes one for the other.
const COMPACT_V1: u8 = 0x01;

/// A stored snapshot that could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The JSON form failed.
    #[error("encoding a snapshot as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The compact form failed.
    #[error("encoding a compact snapshot: {0}")]
    Compact(#[from] postcard::Error),
}

/// Stored bytes that are no snapshot this version reads.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Nothing stored.
    #[error("an empty stored snapshot")]
    Empty,
    /// A first byte of no known form (a later version's layout, or not a snapshot at all).
    #[error("a stored snapshot of unknown form (first byte {0:#04x})")]
    UnknownForm(u8),
    /// A JSON snapshot that does not parse.
    #[error("a stored JSON snapshot: {0}")]
    Json(#[from] serde_json::Error),
    /// A compact snapshot that does not parse.
    #[error("a stored compact snapshot: {0}")]
    Compact(#[from] postcard::Error),
    /// A compact snapshot followed by more bytes.
    #[error("a stored compact snapshot with {0} bytes after its end")]
    Trailing(usize),
}

/// `snapshot`'s first `items` items (and their facts) in `format`. An explained snapshot is
/// stored as JSON whatever the format: the compact form has no signals or explanations.
pub fn encode(
    snapshot: &Snapshot,
    items: usize,
    format: SnapshotFormat,
) -> Result<Vec<u8>, EncodeError> {
    let view = JsonSnapshot::of(snapshot, items);
    let explained = snapshot.explained
        || view
            .items
            .iter()
            .any(|i| i.signals.is_some() || i.explain.is_some());
    if format == SnapshotFormat::Json || explained {
        return Ok(serde_json::to_vec(&view)?);
    }
    let compact = CompactOut {
        id: view.id,
        user_id: view.user_id,
        variant: view.variant,
        generation: view.generation,
        items: ItemsOut(view.items),
        facts: FactsOut(view.facts),
        ranked_at_ms: view.ranked_at_ms,
        page_ttls: view.page_ttls,
        user_version: view.user_version,
    };
    // ~27 bytes an item at the bench world (5.4 KB for 200): one allocation for the whole.
    let mut bytes = Vec::with_capacity(64 + 40 * view.items.len());
    bytes.push(COMPACT_V1);
    Ok(postcard::to_extend(&compact, bytes)?)
}

/// The snapshot stored as `bytes`, in either form.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((b'{', _)) => Ok(serde_json::from_slice(bytes)?),
        Some((&COMPACT_V1, body)) => {
            let (c, rest) = postcard::take_from_bytes::<CompactIn<'_>>(body)?;
            if !rest.is_empty() {
                return Err(DecodeError::Trailing(rest.len()));
            }
            Ok(Snapshot {
                id: c.id,
                user_id: c.user_id,
                variant: c.variant,
                generation: c.generation,
                items: c
                    .items
                    .into_iter()
                    .map(|(video_id, creator_id, score)| FeedItem {
                        video_id: video_id.into(),
                        creator_id: creator_id.into(),
                        score,
                        signals: None,
                        explain: None,
                    })
                    .collect(),
                explained: false,
                facts: c
                    .facts
                    .into_iter()
                    .map(
                        |(published_at_ms, long_tail, previous_of_creator)| ItemFacts {
                            published_at_ms,
                            long_tail,
                            previous_of_creator,
                        },
                    )
                    .collect(),
                ranked_at_ms: c.ranked_at_ms,
                page_ttls: c.page_ttls,
                user_version: c.user_version,
                first_page: Default::default(),
            })
        }
        Some((&first, _)) => Err(DecodeError::UnknownForm(first)),
    }
}

/// How a stored snapshot of a given id begins, in either form: a recheck reads
/// [`StoredPrefixes::bytes_to_read`] bytes of a stored head and asks
/// [`StoredPrefixes::matches`].
#[derive(Clone, Debug)]
pub struct StoredPrefixes {
    json: Vec<u8>,
    compact: Vec<u8>,
}

impl StoredPrefixes {
    /// The prefixes of snapshot `id` (`None` only if a string failed to serialise, which it
    /// cannot).
    pub fn of(id: &str) -> Option<Self> {
        let quoted = serde_json::to_vec(id).ok()?;
        let json = [b"{\"id\":".as_slice(), &quoted].concat();
        let compact = postcard::to_extend(id, vec![COMPACT_V1]).ok()?;
        Some(Self { json, compact })
    }

    /// Bytes of a stored head to read: the longer prefix.
    pub fn bytes_to_read(&self) -> usize {
        self.json.len().max(self.compact.len())
    }

    /// Whether `stored` (the first [`StoredPrefixes::bytes_to_read`] bytes of a stored snapshot) begins
    /// as this id's snapshot in either form.
    pub fn matches(&self, stored: &[u8]) -> bool {
        stored.starts_with(&self.json) || stored.starts_with(&self.compact)
    }
}

/// The JSON form of a snapshot, or of its first items: the one place its field names and order
/// are written (`id` first).
#[derive(Serialize)]
pub(crate) struct JsonSnapshot<'a> {
    id: &'a str,
    user_id: &'a str,
    variant: &'a str,
    generation: u64,
    items: &'a [FeedItem],
    explained: bool,
    facts: &'a [ItemFacts],
    ranked_at_ms: i64,
    page_ttls: &'a PageTtls,
    user_version: UserVersion,
}

impl<'a> JsonSnapshot<'a> {
    /// `snapshot` with its first `items` items (and their facts) only.
    pub(crate) fn of(snapshot: &'a Snapshot, items: usize) -> Self {
        Self {
            id: &snapshot.id,
            user_id: &snapshot.user_id,
            variant: &snapshot.variant,
            generation: snapshot.generation,
            items: &snapshot.items[..items.min(snapshot.items.len())],
            explained: snapshot.explained,
            facts: &snapshot.facts[..items.min(snapshot.facts.len())],
            ranked_at_ms: snapshot.ranked_at_ms,
            page_ttls: &snapshot.page_ttls,
            user_version: snapshot.user_version,
        }
    }
}

/// The compact form as written; [`CompactIn`] reads it back (postcard is positional: the two
/// must list the same fields in the same order, which the round-trip tests pin).
#[derive(Serialize)]
struct CompactOut<'a> {
    id: &'a str,
    user_id: &'a str,
    variant: &'a str,
    generation: u64,
    items: ItemsOut<'a>,
    facts: FactsOut<'a>,
    ranked_at_ms: i64,
    page_ttls: &'a PageTtls,
    user_version: UserVersion,
}

/// Strings borrowed from the stored bytes: each is copied once, into what the snapshot keeps.
#[derive(Deserialize)]
struct CompactIn<'a> {
    id: String,
    user_id: String,
    variant: String,
    generation: u64,
    /// `(video_id, creator_id, score)`.
    #[serde(borrow)]
    items: Vec<(&'a str, &'a str, f64)>,
    /// `(published_at_ms, long_tail, previous_of_creator)`.
    facts: Vec<(i64, bool, Option<u32>)>,
    ranked_at_ms: i64,
    page_ttls: PageTtls,
    user_version: UserVersion,
}

struct ItemsOut<'a>(&'a [FeedItem]);

impl Serialize for ItemsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|i| (&i.video_id, &i.creator_id, i.score)))
    }
}

struct FactsOut<'a>(&'a [ItemFacts]);

impl Serialize for FactsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|f| (f.published_at_ms, f.long_tail, f.previous_of_creator)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot of `n` items by `n / 3` creators, with facts and mixed page TTLs.
    fn ranked(n: usize) -> Snapshot {
        let items: Vec<FeedItem> = (0..n)
            .map(|i| FeedItem {
                video_id: format!("v{}", 1000 + i).into(),
                creator_id: format!("c{}", i % (n / 3).max(1)).into(),
                score: 1.0 / (i as f64 + 3.0),
                signals: None,
                explain: None,
            })
            .collect();
        let facts = crate::served::facts_of(
            items
                .iter()
                .enumerate()
                .map(|(i, it)| (&*it.creator_id, 1_796_375_495_540 - i as i64, i % 7 == 0)),
        );
        Snapshot {
            id: "0123456789abcdef0123456789abcdef".into(),
            user_id: "u42".into(),
            variant: "treatment".into(),
            generation: 7,
            items,
            explained: false,
            facts,
            ranked_at_ms: 1_796_375_500_000,
            page_ttls: PageTtls(vec![(20, 120), (100, 10)]),
            user_version: UserVersion(9),
            first_page: Default::default(),
        }
    }

    fn cut(s: &Snapshot, items: usize) -> Snapshot {
        let mut s = s.clone();
        s.items.truncate(items);
        s.facts.truncate(items);
        s
    }

    #[test]
    fn either_form_reads_back_the_snapshot_written() -> Result<(), Box<dyn std::error::Error>> {
        let s = ranked(200);
        assert!(s.facts.iter().any(|f| f.previous_of_creator.is_some()));
        assert!(s.facts.iter().any(|f| f.previous_of_creator.is_none()));
        // serde_json reads a float back to within a unit in the last place, not always exactly
        // (no `float_roundtrip`); the compact form keeps the score's bits.
        let read_back = |bytes: &[u8], format| -> Result<Snapshot, DecodeError> {
            let mut read = decode(bytes)?;
            if format == SnapshotFormat::Json {
                for (got, wrote) in read.items.iter_mut().zip(&s.items) {
                    assert!((got.score - wrote.score).abs() <= 1e-15 * wrote.score.abs());
                    got.score = wrote.score;
                }
            }
            Ok(read)
        };
        for format in [SnapshotFormat::Compact, SnapshotFormat::Json] {
            let bytes = encode(&s, s.items.len(), format)?;
            assert_eq!(read_back(&bytes, format)?, s, "{format:?}");
            // A head keeps the first items and their facts, nothing else changes.
            let head = encode(&s, 101, format)?;
            assert_eq!(read_back(&head, format)?, cut(&s, 101), "{format:?}");
            assert_eq!(
                read_back(&encode(&s, 500, format)?, format)?,
                s,
                "{format:?}"
            );
        }
        assert_eq!(
            encode(&s, 200, SnapshotFormat::Json)?,
            serde_json::to_vec(&s)?
        );
        Ok(())
    }

    #[test]
    fn a_compact_snapshot_is_a_fraction_of_the_json() -> Result<(), Box<dyn std::error::Error>> {
        let s = ranked(200);
        let compact = encode(&s, 200, SnapshotFormat::Compact)?.len();
        let json = encode(&s, 200, SnapshotFormat::Json)?.len();
        eprintln!("200 items: compact {compact} bytes, JSON {json}");
        assert!(compact * 3 < json, "compact {compact} vs JSON {json} bytes");
        Ok(())
    }

    #[test]
    fn an_explained_snapshot_is_stored_as_json_in_either_format()
    -> Result<(), Box<dyn std::error::Error>> {
        let mut s = ranked(30);
        s.explained = true;
        for item in &mut s.items {
            item.signals = Some(Box::default());
            item.explain = Some(Box::default());
        }
        let bytes = encode(&s, 30, SnapshotFormat::Compact)?;
        assert_eq!(bytes, encode(&s, 30, SnapshotFormat::Json)?);
        let read = decode(&bytes)?;
        assert!(read.explained);
        assert!(
            read.items
                .iter()
                .all(|i| i.signals.is_some() && i.explain.is_some())
        );
        Ok(())
    }

    /// A recheck tells a stored head's snapshot from its first bytes, in either form, whatever
    /// characters its id holds: not from a snapshot whose id differs in its last character or
    /// extends it.
    #[test]
    fn a_stored_head_begins_as_its_prefix_in_either_form() -> Result<(), Box<dyn std::error::Error>>
    {
        let ids = [
            "0123456789abcdef0123456789abcdef",
            "a",
            "quote\"and\\slash",
            "ünïcode",
        ];
        for format in [SnapshotFormat::Compact, SnapshotFormat::Json] {
            for id in ids {
                let prefixes = StoredPrefixes::of(id).ok_or("prefixes")?;
                let begins = |stored_id: &str| -> Result<bool, EncodeError> {
                    let mut s = ranked(200);
                    s.id = stored_id.to_owned();
                    let bytes = encode(&s, 101, format)?;
                    Ok(prefixes.matches(&bytes[..prefixes.bytes_to_read().min(bytes.len())]))
                };
                assert!(begins(id)?, "{id} {format:?}");
                assert!(!begins(&format!("{id}x"))?, "{id}x {format:?}");
                let mut other: Vec<char> = id.chars().collect();
                if let Some(last) = other.last_mut() {
                    *last = if *last == 'e' { 'f' } else { 'e' };
                }
                let other: String = other.into_iter().collect();
                assert!(!begins(&other)?, "{other} {format:?}");
            }
        }
        Ok(())
    }

    #[test]
    fn bytes_of_no_known_form_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let s = ranked(50);
        let compact = encode(&s, 50, SnapshotFormat::Compact)?;
        assert!(matches!(decode(&[]), Err(DecodeError::Empty)));
        assert!(matches!(
            decode(b"\x02abc"),
            Err(DecodeError::UnknownForm(2))
        ));
        assert!(matches!(
            decode(b"[1,2]"),
            Err(DecodeError::UnknownForm(b'['))
        ));
        assert!(matches!(decode(b"{\"id\":"), Err(DecodeError::Json(_))));
        assert!(matches!(
            decode(&compact[..compact.len() - 3]),
            Err(DecodeError::Compact(_))
        ));
        let longer = [compact.as_slice(), b"xy"].concat();
        assert!(matches!(decode(&longer), Err(DecodeError::Trailing(2))));
        Ok(())
    }

    /// What a version before this one reads: `ItemFacts` as it was derived then, without a
    /// default for `previous_of_creator`, which the JSON form now leaves out when empty.
    #[test]
    fn a_json_snapshot_is_read_by_the_previous_facts_reader()
    -> Result<(), Box<dyn std::error::Error>> {
        #[derive(Deserialize, Debug, PartialEq)]
        struct PreviousFacts {
            published_at_ms: i64,
            long_tail: bool,
            previous_of_creator: Option<u32>,
        }
        #[derive(Deserialize)]
        struct PreviousSnapshot {
            facts: Vec<PreviousFacts>,
        }
        let s = ranked(60);
        let read: PreviousSnapshot =
            serde_json::from_slice(&encode(&s, 60, SnapshotFormat::Json)?)?;
        let want: Vec<PreviousFacts> = s
            .facts
            .iter()
            .map(|f| PreviousFacts {
                published_at_ms: f.published_at_ms,
                long_tail: f.long_tail,
                previous_of_creator: f.previous_of_creator,
            })
            .collect();
        assert_eq!(read.facts, want);
        Ok(())
    }
}
