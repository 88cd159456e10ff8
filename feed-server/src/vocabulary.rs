//! The catalog's vocabulary as small integers: video ids, creator ids, tags, languages and regions
//! interned as [`Term`]s, equal exactly when their strings are equal. The ranking's per-candidate
//! work — the kept counters' lookup, diversity's creator cap and tag spread, the language and
//! region filters, the affinity signals — then hashes and compares integers instead of reading
//! each candidate's strings (a cache miss each, hundreds of candidates per ranking).
//!
//! Terms are interned when a catalog entry is read from storage ([`CatalogEntry::new`]), once
//! per entry, not per ranking, and for the ids of videos whose counters changed or that a
//! checkpoint read at start counts (events are accepted only for catalog videos): every video
//! with counters in process has a term, so the counters are read by it. They are process-wide
//! and never forgotten: the vocabulary holds one entry per distinct video id, creator, tag,
//! language and region of the catalog this process has met — bounded by the catalog (the bench
//! world's 100,000 videos by 10,000 creators over 40 tags: ~110,000 entries, ~6 MiB), not by
//! traffic. A deleted video's strings keep their
//! entries until the process restarts. The ids of a source list are interned when the list is
//! read ([`terms_of`]): feed-server itself wrote them, from catalog writes (a creator's, a tag's,
//! the fresh lists) and from events, which are accepted only for catalog videos (trending, the
//! long tail, a friend's recent videos), so they are catalog ids too and the bound holds.
//! Every other string (a user's profile language, a candidate id from a request) is only looked
//! up ([`known`]), never added, so no client can grow it: such a string without a term is no
//! catalog entry read so far.

use std::ops::Deref;
use std::sync::{Arc, LazyLock};

use foldhash::HashMap;
use parking_lot::RwLock;
use smallvec::SmallVec;

use crate::learning::{DURATION_BUCKETS, duration_bucket};
use crate::model::{ContentType, Video};
use crate::ranking::signals::{self, Normed};
use crate::time::Timestamp;

/// An interned string of the catalog's vocabulary (see the module docs): two terms are equal
/// exactly when their strings are. Only meaningful within one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Term(usize);

impl Term {
    /// The term's position in the vocabulary: dense from 0, in the order terms were added.
    fn index(self) -> usize {
        self.0
    }
}

/// Values by [`Term`] in a dense table (a slot per term up to the largest one stored): a lookup
/// is one indexed read, where a hash map probes its control bytes and then its slot. Terms are
/// dense and bounded by the catalog (see the module docs), so is the table: a slot of the
/// bench world's ~110,000 terms costs `size_of::<Option<V>>()` bytes each.
#[derive(Clone, Debug)]
pub struct TermTable<V> {
    slots: Vec<Option<V>>,
    len: usize,
}

impl<V> Default for TermTable<V> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            len: 0,
        }
    }
}

impl<V> TermTable<V> {
    /// The value of `t`, if stored.
    pub fn get(&self, t: Term) -> Option<&V> {
        self.slots.get(t.index()).and_then(Option::as_ref)
    }

    /// The value of `t` to change in place, if stored.
    pub fn get_mut(&mut self, t: Term) -> Option<&mut V> {
        self.slots.get_mut(t.index()).and_then(Option::as_mut)
    }

    /// Stores `value` as `t`'s, replacing any.
    pub fn insert(&mut self, t: Term, value: V) {
        let i = t.index();
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace(value).is_none() {
            self.len += 1;
        }
    }

    /// Takes `t`'s value out, if stored.
    pub fn remove(&mut self, t: Term) -> Option<V> {
        let taken = self.slots.get_mut(t.index()).and_then(Option::take);
        if taken.is_some() {
            self.len -= 1;
        }
        taken
    }

    /// Whether `t` has a value.
    pub fn contains(&self, t: Term) -> bool {
        self.get(t).is_some()
    }

    /// Values stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops every value (the slots are kept for the next ones).
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.len = 0;
    }
}

static VOCABULARY: LazyLock<RwLock<HashMap<Box<str>, Term>>> =
    LazyLock::new(|| RwLock::new(HashMap::default()));

/// The term of `s`, added to the vocabulary if new (catalog strings only: see the module docs).
pub fn term(s: &str) -> Term {
    if let Some(&t) = VOCABULARY.read().get(s) {
        return t;
    }
    let mut words = VOCABULARY.write();
    let next = Term(words.len());
    *words.entry(s.into()).or_insert(next)
}

/// The terms of `ids`, in order, each added if new, under one read lock when every id is
/// known already (the common case). For source lists only: their ids are catalog video ids
/// (see the module docs).
pub fn terms_of(ids: &[String]) -> Box<[Term]> {
    known_each(ids.iter().map(String::as_str))
        .into_iter()
        .zip(ids)
        .map(|(t, id)| t.unwrap_or_else(|| term(id)))
        .collect()
}

/// The term of `s` if the vocabulary holds it (a catalog entry read by this process, or a
/// video whose counters changed, added it); never adds one.
pub fn known(s: &str) -> Option<Term> {
    VOCABULARY.read().get(s).copied()
}

/// The term of each of `strings` the vocabulary holds ([`known`]), in order, under one lock.
pub fn known_each<'s>(strings: impl IntoIterator<Item = &'s str>) -> Vec<Option<Term>> {
    let words = VOCABULARY.read();
    strings.into_iter().map(|s| words.get(s).copied()).collect()
}

/// `pairs` whose strings the vocabulary knows, keyed by their terms (the others left out:
/// no catalog entry read so far carries them), under one lock.
pub fn known_of<'s, T, C: FromIterator<(Term, T)>>(
    pairs: impl IntoIterator<Item = (&'s str, T)>,
) -> C {
    let words = VOCABULARY.read();
    pairs
        .into_iter()
        .filter_map(|(s, value)| words.get(s).map(|&t| (t, value)))
        .collect()
}

/// The terms of those of `strings` the vocabulary knows (the others left out), under one lock.
pub fn known_terms<'s, C: FromIterator<Term>>(strings: impl IntoIterator<Item = &'s str>) -> C {
    let words = VOCABULARY.read();
    strings
        .into_iter()
        .filter_map(|s| words.get(s).copied())
        .collect()
}

/// What the ranking reads of each candidate's catalog entry, worked out once when the entry is
/// read (see the module docs) and packed together at the front of the entry
/// ([`CatalogEntry`]): the filters, the signals, diversity and the page TTL read these fields
/// alone, so scoring a candidate reads ~100 adjacent bytes of its entry instead of fields spread
/// over the whole [`Video`] and a separate allocation for the tags.
#[derive(Clone, Debug, PartialEq)]
#[repr(C)]
pub struct CatalogKeys {
    /// The creator.
    pub creator: Term,
    /// Upload time.
    pub published: Timestamp,
    /// Length in milliseconds.
    pub duration_ms: u64,
    /// The language; `None` when empty (any language).
    pub language: Option<Term>,
    /// The region; `None` when empty (any region).
    pub region: Option<Term>,
    /// Kind of content (the page TTL's).
    pub content_type: ContentType,
    /// The duration bucket (index into the completion priors): [`CatalogKeys::bucket`].
    duration_bucket: u8,
    /// The tags, in order (the first is diversity's similarity key); a video's first
    /// [`INLINE_TAGS`] in place, more in an allocation.
    pub tags: SmallVec<[Term; INLINE_TAGS]>,
    /// The content embedding, shared with the video's: [`CatalogKeys::embedding`].
    embedding: Option<Arc<[f32]>>,
    /// The embedding's sum of squares ([`signals::sum_squares`]), computed once.
    embedding_sum_squares: f64,
    /// The video's id.
    pub id: Term,
}

/// How many tags a [`CatalogKeys`] holds without an allocation.
pub const INLINE_TAGS: usize = 2;

// Every duration bucket fits `CatalogKeys::duration_bucket`.
const _: () = assert!(DURATION_BUCKETS <= u8::MAX as usize + 1);

impl CatalogKeys {
    /// The first tag (diversity's similarity key), if any.
    pub fn primary_tag(&self) -> Option<Term> {
        self.tags.first().copied()
    }

    fn of(v: &Video) -> Self {
        let unless_empty = |s: &str| (!s.is_empty()).then(|| term(s));
        Self {
            creator: term(&v.creator_id),
            published: Timestamp::from(v.published_at),
            duration_ms: v.duration_ms,
            language: unless_empty(&v.language),
            region: unless_empty(&v.region),
            content_type: v.content_type,
            // Fits: see the assertion beside `INLINE_TAGS`.
            duration_bucket: duration_bucket(v.duration_ms) as u8,
            tags: v.tags.iter().map(|t| term(t)).collect(),
            embedding: v.embedding.clone(),
            embedding_sum_squares: v.embedding.as_deref().map_or(0.0, signals::sum_squares),
            id: term(&v.id),
        }
    }

    /// The duration bucket as an index into the completion priors.
    pub fn bucket(&self) -> usize {
        usize::from(self.duration_bucket)
    }

    /// The content embedding with its sum of squares, if the video has one.
    pub fn embedding(&self) -> Option<Normed<'_, f32>> {
        let values = self.embedding.as_deref()?;
        Some(Normed::with_sum_squares(values, self.embedding_sum_squares))
    }
}

/// A catalog entry as the ranking reads it: the video with its [`CatalogKeys`]. Dereferences to
/// the [`Video`]; the keys cannot drift from it (the video is not mutable through the entry).
#[derive(Clone, Debug, PartialEq)]
#[repr(C)]
pub struct CatalogEntry {
    // First, beside the `Arc`'s counters: taking a candidate's entry (an `Arc` clone) already
    // brings the line the ranking reads.
    keys: CatalogKeys,
    video: Video,
}

impl CatalogEntry {
    /// The entry of `video`, its keys interned.
    pub fn new(video: Video) -> Self {
        let keys = CatalogKeys::of(&video);
        Self { video, keys }
    }

    /// The entry's interned keys.
    pub fn keys(&self) -> &CatalogKeys {
        &self.keys
    }

    /// The video.
    pub fn video(&self) -> &Video {
        &self.video
    }
}

impl Deref for CatalogEntry {
    type Target = Video;

    fn deref(&self) -> &Video {
        &self.video
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn video(creator: &str, tags: &[&str], language: &str, region: &str, ms: u64) -> Video {
        Video {
            id: "v".into(),
            creator_id: creator.into(),
            published_at: Utc::now(),
            duration_ms: ms,
            language: language.into(),
            region: region.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            content_type: ContentType::Short,
            embedding: None,
        }
    }

    #[test]
    fn an_entry_keeps_its_embedding_with_the_sum_of_squares_of_its_values() {
        let mut v = video("vocabulary-test-c", &[], "", "", 1_000);
        assert!(CatalogEntry::new(v.clone()).keys().embedding().is_none());
        v.embedding = Some(Arc::from([0.5f32, -1.25, 3.0]));
        let taste = [1.0, 2.0, -0.5];
        let entry = CatalogEntry::new(v.clone());
        let kept = signals::normed_cosine(Some(Normed::new(&taste)), entry.keys().embedding());
        let direct = signals::cosine(Some(&taste), v.embedding.as_deref());
        assert!(direct.is_some());
        assert_eq!(kept.map(f64::to_bits), direct.map(f64::to_bits));
    }

    #[test]
    fn equal_strings_and_only_they_share_a_term() {
        let a = term("vocabulary-test-a");
        assert_eq!(term("vocabulary-test-a"), a);
        assert_eq!(term(&String::from("vocabulary-test-a")), a);
        assert_ne!(term("vocabulary-test-b"), a);
        assert_ne!(
            term("vocabulary-test-A"),
            a,
            "terms are case-sensitive, as ids are"
        );
        assert_ne!(term(""), a);
    }

    #[test]
    fn looking_up_never_adds() {
        assert_eq!(known("vocabulary-test-never-interned"), None);
        assert_eq!(known("vocabulary-test-never-interned"), None);
        let t = term("vocabulary-test-interned-later");
        assert_eq!(known("vocabulary-test-interned-later"), Some(t));
    }

    #[test]
    fn a_term_table_stores_replaces_and_clears_by_term() {
        let (a, b, c) = (term("vt-table-a"), term("vt-table-b"), term("vt-table-c"));
        let mut t: TermTable<u32> = TermTable::default();
        assert!(t.is_empty() && t.get(a).is_none() && !t.contains(b));
        t.insert(b, 1);
        t.insert(a, 2);
        t.insert(b, 3);
        assert_eq!((t.get(a), t.get(b), t.get(c)), (Some(&2), Some(&3), None));
        assert_eq!(t.len(), 2, "a replaced value is counted once");
        if let Some(v) = t.get_mut(a) {
            *v += 10;
        }
        assert_eq!(t.get(a), Some(&12));
        assert!(t.get_mut(c).is_none());
        t.clear();
        assert!(t.is_empty() && t.get(a).is_none() && t.get(b).is_none());
        t.insert(c, 4);
        assert_eq!((t.len(), t.get(c)), (1, Some(&4)));
    }

    #[test]
    fn a_lists_ids_get_their_terms_in_order_new_ones_added() {
        let old = term("vt-list-old");
        let ids = ["vt-list-new", "vt-list-old", "vt-list-new"].map(String::from);
        let terms = terms_of(&ids);
        assert_eq!(terms.len(), 3);
        assert_eq!(terms[1], old);
        assert_eq!(terms[0], terms[2], "equal ids, one term");
        assert_eq!(known("vt-list-new"), Some(terms[0]), "added");
        assert!(terms_of(&[]).is_empty());
    }

    #[test]
    fn known_of_keeps_the_known_strings_under_their_terms() {
        let (a, b) = (term("vt-known-a"), term("vt-known-b"));
        let found: Vec<(Term, u8)> = known_of([
            ("vt-known-a", 1),
            ("vt-known-unheard", 2),
            ("vt-known-b", 3),
        ]);
        assert_eq!(found, [(a, 1), (b, 3)]);
        let terms: Vec<Term> = known_terms(["vt-known-b", "vt-known-unheard", "vt-known-a"]);
        assert_eq!(terms, [b, a]);
        assert_eq!(
            known_each(["vt-known-b", "vt-known-unheard", "vt-known-a"]),
            [Some(b), None, Some(a)]
        );
        assert_eq!(known("vt-known-unheard"), None);
    }

    #[test]
    fn an_entry_keys_its_creator_primary_tag_language_region_and_bucket() {
        let e = CatalogEntry::new(video("vt-c1", &["vt-cats", "vt-dogs"], "en", "", 30_000));
        let k = e.keys();
        assert_eq!(k.id, term("v"));
        assert_eq!(k.creator, term("vt-c1"));
        assert_eq!(k.primary_tag(), Some(term("vt-cats")), "the first tag");
        assert_eq!(&*k.tags, [term("vt-cats"), term("vt-dogs")]);
        assert_eq!(k.language, Some(term("en")));
        assert_eq!(k.region, None, "an empty region is any region, not a term");
        assert_eq!(k.bucket(), duration_bucket(30_000));
        assert_eq!(k.published, Timestamp::from(e.published_at));
        assert_eq!(
            (k.duration_ms, k.content_type),
            (30_000, ContentType::Short)
        );
        assert_eq!(&*e.creator_id, "vt-c1", "the entry reads as its video");

        let bare = CatalogEntry::new(video("vt-c2", &[], "", "fr", 1));
        assert_eq!(bare.keys().primary_tag(), None);
        assert_eq!(bare.keys().language, None);
        assert_eq!(bare.keys().region, Some(term("fr")));
        assert_ne!(bare.keys().creator, k.creator);
    }
}
