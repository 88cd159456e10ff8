//! Diversity re-ranking: a greedy pass over the score-ordered list.
//!
//! Each slot takes the best remaining item that keeps (1) at most `creatorCap` videos of a creator
//! in any `window` consecutive items and (2) videos sharing a primary tag at least `similarSpread`
//! slots apart. Every `round(1 / longTailShare)`-th slot goes to the best long-tail item. When no
//! item fits, the spread rule is relaxed first, then the creator cap, so the list never runs dry.

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt};

use feed_profile::DiversityKnobs;

use crate::vocabulary::Term;

/// Why re-ranking passed over an item at some slot, or placed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    /// Passed over: its creator already filled the cap in the window.
    Capped,
    /// Passed over: a video sharing its first tag is too close.
    Spread,
    /// Placed in a slot reserved for long-tail exploration.
    LongTailSlot,
}

/// What diversity needs to know about a scored item.
pub trait Diversifiable {
    /// The creator.
    fn creator(&self) -> Term;
    /// The first tag, if any.
    fn primary_tag(&self) -> Option<Term>;
    /// Came from the long-tail source.
    fn long_tail(&self) -> bool;
    /// Records what re-ranking did to the item (for explanations): each kind of move at most
    /// once, in no particular order; does nothing by default.
    fn note(&mut self, _what: Move) {}
}

/// Whether an item may take the next slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    Yes,
    Capped,
    Spread,
}

/// An item's creator and primary tag numbered densely from 0 once per re-ranking (from their
/// process-wide [`Term`]s), so that the rules index small arrays.
#[derive(Clone, Copy)]
struct Key {
    creator: usize,
    tag: Option<usize>,
}

/// Numbers every item's creator and primary tag (dense ids from 0, in first-seen order);
/// returns the keys and how many creators and tags there are.
fn dense_keys<T: Diversifiable>(items: &[T]) -> (Vec<Key>, usize, usize) {
    let mut creators: HashMap<Term, usize> = HashMap::with_capacity(items.len());
    let mut tags: HashMap<Term, usize> = HashMap::with_capacity(items.len());
    let keys = items
        .iter()
        .map(|item| {
            let next = creators.len();
            let creator = *creators.entry(item.creator()).or_insert(next);
            let tag = item.primary_tag().map(|t| {
                let next = tags.len();
                *tags.entry(t).or_insert(next)
            });
            Key { creator, tag }
        })
        .collect();
    (keys, creators.len(), tags.len())
}

/// The placed items as the two rules see them, updated as each slot is filled so that
/// [`Placed::fits`] is constant time: the creators' counts in the cap window and each tag's
/// last slot.
struct Placed {
    creator_cap: usize,
    window: usize,
    similar_spread: usize,
    keys: Vec<Key>,
    /// Count of each creator among the placed items from `counted_from` on.
    in_window: Vec<usize>,
    counted_from: usize,
    /// The last slot of each tag.
    tag_last: Vec<Option<usize>>,
}

impl Placed {
    fn new(knobs: &DiversityKnobs, creators: usize, tags: usize, depth: usize) -> Self {
        Self {
            creator_cap: knobs.creator_cap as usize,
            window: knobs.window as usize,
            similar_spread: knobs.similar_spread as usize,
            keys: Vec::with_capacity(depth),
            in_window: vec![0; creators],
            counted_from: 0,
            tag_last: vec![None; tags],
        }
    }

    /// The slot being filled.
    fn slot(&self) -> usize {
        self.keys.len()
    }

    /// Moves the cap window to end at the next slot: `window` consecutive items including it.
    fn slide(&mut self) {
        let slot = self.slot();
        let start = (slot + 1).saturating_sub(self.window).min(slot);
        while self.counted_from < start {
            self.in_window[self.keys[self.counted_from].creator] -= 1;
            self.counted_from += 1;
        }
    }

    /// Whether an item may take the next slot (`spread`: the tag rule applies).
    fn fits(&self, key: Key, spread: bool) -> Fit {
        if self.in_window[key.creator] >= self.creator_cap {
            return Fit::Capped;
        }
        match key.tag.filter(|_| spread) {
            Some(tag) if self.too_close(tag) => Fit::Spread,
            _ => Fit::Yes,
        }
    }

    /// Whether the spread rule keeps `tag` out of the next slot: it was placed fewer than
    /// `similarSpread` slots ago.
    fn too_close(&self, tag: usize) -> bool {
        let spread_start = (self.slot() + 1).saturating_sub(self.similar_spread);
        self.tag_last[tag].is_some_and(|at| at >= spread_start)
    }

    fn place(&mut self, key: Key) {
        self.in_window[key.creator] += 1;
        if let Some(tag) = key.tag {
            self.tag_last[tag] = Some(self.slot());
        }
        self.keys.push(key);
    }
}

/// Why items were passed over, by position, as bits ([`Move::Capped`], [`Move::Spread`]):
/// gathered during the scans and given to an item once, when it is placed, so that a scan
/// touches no item.
#[derive(Clone, Copy, Default)]
struct PassedOver(u8);

impl PassedOver {
    const CAPPED: u8 = 1;
    const SPREAD: u8 = 2;

    fn add(&mut self, fit: Fit) {
        match fit {
            Fit::Yes => {}
            Fit::Capped => self.0 |= Self::CAPPED,
            Fit::Spread => self.0 |= Self::SPREAD,
        }
    }

    fn moves(self) -> impl Iterator<Item = Move> {
        [(Self::CAPPED, Move::Capped), (Self::SPREAD, Move::Spread)]
            .into_iter()
            .filter(move |(bit, _)| self.0 & bit != 0)
            .map(|(_, what)| what)
    }
}

/// Whether re-ranking tells the items what it did to them ([`Diversifiable::note`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notes {
    /// Each placed item is told why better-scored items passed it or it them (an explained
    /// ranking shows it).
    Given,
    /// The order only: a ranking nobody will see explained. Same order as [`Notes::Given`].
    Skipped,
}

/// Re-ranks `items` (best first) into at most `depth` items, with or without `notes`: the same
/// order either way. With notes, [`noted`]; without, [`by_tag_queues`], which does not need to
/// look at the items a slot passes over.
pub fn rerank<T: Diversifiable>(
    items: Vec<T>,
    knobs: &DiversityKnobs,
    depth: usize,
    notes: Notes,
) -> Vec<T> {
    match notes {
        Notes::Given => noted(items, knobs, depth),
        Notes::Skipped => {
            let picks = by_tag_queues(&items, knobs, depth);
            let mut items: Vec<Option<T>> = items.into_iter().map(Some).collect();
            picks
                .into_iter()
                .filter_map(|at| items[at].take())
                .collect()
        }
    }
}

/// Every `long_tail_every`-th slot is reserved for a long-tail item (0: none).
fn long_tail_every(knobs: &DiversityKnobs) -> usize {
    if knobs.long_tail_share > 0.0 {
        (1.0 / knobs.long_tail_share).round() as usize
    } else {
        0
    }
}

/// The items' positions grouped by primary tag, one queue per tag and one more (the last) for
/// the items without a tag, each in score order: all in one allocation, queue `q` being
/// `positions[start[q]..start[q + 1]]`.
struct Queues {
    positions: Vec<usize>,
    start: Vec<usize>,
}

/// The queue of an item keyed `key` among `tags` dense tags: its tag's, or the last one.
fn queue_of(key: Key, tags: usize) -> usize {
    key.tag.unwrap_or(tags)
}

impl Queues {
    /// The queues of items keyed `keys` (best first) over `tags` dense tags.
    fn of(keys: &[Key], tags: usize) -> Self {
        let mut start = vec![0usize; tags + 2];
        for &key in keys {
            start[queue_of(key, tags) + 1] += 1;
        }
        for q in 1..start.len() {
            start[q] += start[q - 1];
        }
        let mut next = start.clone();
        let mut positions = vec![0usize; keys.len()];
        for (at, &key) in keys.iter().enumerate() {
            let q = queue_of(key, tags);
            positions[next[q]] = at;
            next[q] += 1;
        }
        Self { positions, start }
    }

    /// How many queues (tags + 1).
    fn count(&self) -> usize {
        self.start.len() - 1
    }

    /// Queue `q`, best first.
    fn queue(&self, q: usize) -> &[usize] {
        &self.positions[self.start[q]..self.start[q + 1]]
    }
}

/// The queues' heads (each queue's first item not taken), as a set of positions kept in order:
/// one bit per item. Every item is in one queue, so a head's position names its queue.
struct Heads {
    words: Vec<u64>,
}

impl Heads {
    /// An empty set over `len` positions.
    fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// Adds the head at position `at` (`at` < the length given to [`Heads::new`]).
    fn insert(&mut self, at: usize) {
        self.words[at / 64] |= 1 << (at % 64);
    }

    /// Removes the head at position `at`.
    fn remove(&mut self, at: usize) {
        self.words[at / 64] &= !(1 << (at % 64));
    }

    /// The heads, best (lowest position) first.
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let bit = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    i * 64 + bit
                })
            })
        })
    }

    /// The best head.
    fn first(&self) -> Option<usize> {
        self.iter().next()
    }
}

/// The positions in `items` of the re-ranked list, in order, picked as [`noted`] picks them.
///
/// The items not placed yet wait in one queue per primary tag (items without a tag in one more),
/// each in score order, and the queues are ordered by their heads. A slot's first fit is the
/// best among the queues whose tag the spread rule allows: walk the queues by head, skip those
/// whose tag is too close (at most `similarSpread − 1` of them), and in each look for the first
/// item whose creator is not capped (at most `window / creatorCap` creators are); stop at a
/// queue whose head is behind the best found. The long-tail slot looks only at the long-tail
/// items, in their own queue. A slot so usually costs a few steps, however many items the
/// spread rule passes over (at worst, a queue long with capped creators' items, one scan of it).
fn by_tag_queues<T: Diversifiable>(
    items: &[T],
    knobs: &DiversityKnobs,
    depth: usize,
) -> Vec<usize> {
    let (keys, creators, tags) = dense_keys(items);
    let depth = depth.min(items.len());
    let queues = Queues::of(&keys, tags);
    let long_tail: Vec<usize> = (0..items.len())
        .filter(|&at| items[at].long_tail())
        .collect();
    let mut taken = vec![false; items.len()];
    // Each queue's first item not taken, and the set of those heads (walked in position order).
    let mut heads = vec![0usize; queues.count()];
    let mut by_head = Heads::new(items.len());
    for q in 0..queues.count() {
        if let Some(&at) = queues.queue(q).first() {
            by_head.insert(at);
        }
    }
    let mut long_tail_head = 0;
    let mut placed = Placed::new(knobs, creators, tags, depth);
    let long_tail_every = long_tail_every(knobs);
    let mut out = Vec::with_capacity(depth);
    // The first item of a queue, from its head on, whose creator is not capped.
    let uncapped = |queue: &[usize], from: usize, placed: &Placed, taken: &[bool]| {
        queue[from..]
            .iter()
            .copied()
            .find(|&at| !taken[at] && placed.fits(keys[at], false) == Fit::Yes)
    };
    while out.len() < depth {
        placed.slide();
        let slot = placed.slot();
        let wants_long_tail = long_tail_every > 0 && (slot + 1).is_multiple_of(long_tail_every);
        // The best item over the queues, with the spread rule or without.
        let best = |spread: bool, placed: &Placed| {
            let mut best: Option<usize> = None;
            for head in by_head.iter() {
                if best.is_some_and(|b| head > b) {
                    break;
                }
                let q = queue_of(keys[head], tags);
                if spread && q < tags && placed.too_close(q) {
                    continue;
                }
                if let Some(at) = uncapped(queues.queue(q), heads[q], placed, &taken) {
                    best = Some(best.map_or(at, |b| b.min(at)));
                }
            }
            best
        };
        let first_fit = best(true, &placed);
        let long_tail_pick = match first_fit {
            Some(_) if wants_long_tail => long_tail[long_tail_head..]
                .iter()
                .copied()
                .find(|&at| !taken[at] && placed.fits(keys[at], true) == Fit::Yes),
            _ => None,
        };
        let pick = long_tail_pick
            .or(first_fit)
            .or_else(|| best(false, &placed))
            .or_else(|| by_head.first());
        let Some(at) = pick else {
            break;
        };
        taken[at] = true;
        placed.place(keys[at]);
        out.push(at);
        let q = queue_of(keys[at], tags);
        let queue = queues.queue(q);
        if queue[heads[q]] == at {
            by_head.remove(at);
            while heads[q] < queue.len() && taken[queue[heads[q]]] {
                heads[q] += 1;
            }
            if let Some(&next) = queue.get(heads[q]) {
                by_head.insert(next);
            }
        }
        while long_tail_head < long_tail.len() && taken[long_tail[long_tail_head]] {
            long_tail_head += 1;
        }
    }
    out
}

/// [`rerank`] with notes.
///
/// Each slot scans the remaining items to the first that fits, with a constant-time check per
/// item (creators and tags interned up front); a long-tail slot scans on from that first fit for
/// a long-tail item, and a slot where nothing fits scans once more with the spread rule relaxed.
/// A re-ranking so costs O(depth × items) integer operations at most. The scans
/// read a compact queue of positions and the keys beside it and note why an item was passed
/// over in a byte beside it; an item itself is touched only when it is placed, and is then
/// given its notes (each kind of move once).
fn noted<T: Diversifiable>(items: Vec<T>, knobs: &DiversityKnobs, depth: usize) -> Vec<T> {
    let (keys, creators, tags) = dense_keys(&items);
    let long_tail: Vec<bool> = items.iter().map(Diversifiable::long_tail).collect();
    let mut passed_over = vec![PassedOver::default(); items.len()];
    let mut items: Vec<Option<T>> = items.into_iter().map(Some).collect();
    // Positions in `items` of the items not placed yet, best first.
    let mut remaining: VecDeque<usize> = (0..items.len()).collect();
    let depth = depth.min(remaining.len());
    let mut placed = Placed::new(knobs, creators, tags, depth);
    let mut out: Vec<T> = Vec::with_capacity(depth);
    let long_tail_every = long_tail_every(knobs);
    // Why each of the first items of `remaining` does not fit this slot (spread rule on).
    let mut misfits: Vec<Fit> = Vec::new();
    while out.len() < depth && !remaining.is_empty() {
        placed.slide();
        let slot = placed.slot();
        let wants_long_tail = long_tail_every > 0 && (slot + 1).is_multiple_of(long_tail_every);
        // One scan to the first item that fits, remembering why the ones before it do not.
        misfits.clear();
        let first_fit = remaining.iter().position(|&at| {
            let fit = placed.fits(keys[at], true);
            if fit != Fit::Yes {
                misfits.push(fit);
            }
            fit == Fit::Yes
        });
        let long_tail_pick = match first_fit {
            Some(first) if wants_long_tail => remaining
                .iter()
                .skip(first)
                .position(|&at| long_tail[at] && placed.fits(keys[at], true) == Fit::Yes)
                .map(|p| first + p),
            _ => None,
        };
        let pick = long_tail_pick
            .or(first_fit)
            .or_else(|| {
                remaining
                    .iter()
                    .position(|&at| placed.fits(keys[at], false) == Fit::Yes)
            })
            .unwrap_or(0);
        // The better-scored items passed over at this slot, and why.
        for (i, &at) in remaining.iter().take(pick).enumerate() {
            let fit = match misfits.get(i) {
                Some(&fit) => fit,
                None => placed.fits(keys[at], true),
            };
            passed_over[at].add(fit);
        }
        let Some(at) = remaining.remove(pick) else {
            break;
        };
        placed.place(keys[at]);
        if let Some(mut item) = items[at].take() {
            for what in passed_over[at].moves() {
                item.note(what);
            }
            if long_tail_pick.is_some() {
                item.note(Move::LongTailSlot);
            }
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::term;

    #[derive(Clone, Debug, PartialEq)]
    struct It(&'static str, &'static str, bool);
    impl Diversifiable for It {
        fn creator(&self) -> Term {
            term(self.0)
        }
        fn primary_tag(&self) -> Option<Term> {
            Some(term(self.1))
        }
        fn long_tail(&self) -> bool {
            self.2
        }
    }

    fn knobs(cap: u32, window: u32, spread: u32, lt: f64) -> DiversityKnobs {
        DiversityKnobs {
            creator_cap: cap,
            window,
            similar_spread: spread,
            long_tail_share: lt,
        }
    }

    #[test]
    fn creator_cap_holds_in_every_window_when_possible() {
        let mut items = vec![];
        for i in 0..10 {
            items.push(It("hot", if i % 2 == 0 { "a" } else { "b" }, false));
        }
        for _ in 0..10 {
            items.push(It("other", "c", false));
        }
        for _ in 0..10 {
            items.push(It("third", "d", false));
        }
        let out = rerank(items, &knobs(2, 5, 1, 0.0), 12, Notes::Given);
        for w in out.windows(5) {
            assert!(w.iter().filter(|i| i.0 == "hot").count() <= 2, "{out:?}");
        }
    }

    #[test]
    fn similar_content_is_spread_and_list_never_runs_dry() {
        let items = vec![
            It("a", "x", false),
            It("b", "x", false),
            It("c", "y", false),
            It("d", "x", false),
        ];
        let out = rerank(items, &knobs(5, 5, 2, 0.0), 10, Notes::Given);
        let tags: Vec<&str> = out.iter().map(|i| i.1).collect();
        assert_eq!(
            tags,
            ["x", "y", "x", "x"],
            "spread first, relaxed when only x is left"
        );
    }

    /// An item that remembers what re-ranking did to it.
    #[derive(Debug)]
    struct Noted(It, Vec<Move>);
    impl Diversifiable for Noted {
        fn creator(&self) -> Term {
            self.0.creator()
        }
        fn primary_tag(&self) -> Option<Term> {
            self.0.primary_tag()
        }
        fn long_tail(&self) -> bool {
            self.0.long_tail()
        }
        fn note(&mut self, what: Move) {
            if !self.1.contains(&what) {
                self.1.push(what);
            }
        }
    }

    #[test]
    fn every_move_is_noted_on_the_item_it_happened_to() {
        let items = vec![
            Noted(It("a", "x", false), vec![]),
            Noted(It("a", "y", false), vec![]),
            Noted(It("a", "z", false), vec![]), // third of "a": capped
            Noted(It("b", "y", false), vec![]), // "y" right after "y": spread
            Noted(It("c", "w", false), vec![]),
            Noted(It("d", "v", true), vec![]), // long tail
        ];
        let out = rerank(items, &knobs(2, 10, 2, 0.25), 6, Notes::Given);
        let order: Vec<(&str, &str)> = out.iter().map(|n| (n.0.0, n.0.1)).collect();
        assert_eq!(
            order,
            [
                ("a", "x"),
                ("a", "y"),
                ("c", "w"),
                ("d", "v"),
                ("b", "y"),
                ("a", "z")
            ]
        );
        let notes = |creator: &str, tag: &str| -> Vec<Move> {
            out.iter()
                .find(|n| n.0.0 == creator && n.0.1 == tag)
                .map(|n| n.1.clone())
                .unwrap_or_default()
        };
        assert_eq!(notes("a", "z"), [Move::Capped]);
        assert_eq!(notes("b", "y"), [Move::Spread]);
        assert_eq!(notes("d", "v"), [Move::LongTailSlot]);
        assert!(notes("a", "x").is_empty() && notes("c", "w").is_empty());
    }

    /// The re-ranking as first written (every check scans the window and compares strings): the
    /// oracle the constant-time checks must agree with.
    fn reference<T: Diversifiable>(items: Vec<T>, knobs: &DiversityKnobs, depth: usize) -> Vec<T> {
        let mut remaining: VecDeque<T> = items.into();
        let mut out: Vec<T> = Vec::new();
        let long_tail_every = if knobs.long_tail_share > 0.0 {
            (1.0 / knobs.long_tail_share).round() as usize
        } else {
            0
        };
        while out.len() < depth && !remaining.is_empty() {
            let slot = out.len();
            let wants_long_tail = long_tail_every > 0 && (slot + 1).is_multiple_of(long_tail_every);
            let fits = |item: &T, spread: bool| -> Fit {
                let window_start = (slot + 1).saturating_sub(knobs.window as usize);
                let same = out[window_start..]
                    .iter()
                    .filter(|o| o.creator() == item.creator())
                    .count();
                if same >= knobs.creator_cap as usize {
                    return Fit::Capped;
                }
                let Some(tag) = item.primary_tag().filter(|_| spread) else {
                    return Fit::Yes;
                };
                let spread_start = (slot + 1).saturating_sub(knobs.similar_spread as usize);
                if out[spread_start..]
                    .iter()
                    .any(|o| o.primary_tag() == Some(tag))
                {
                    Fit::Spread
                } else {
                    Fit::Yes
                }
            };
            let long_tail_pick = wants_long_tail
                .then(|| {
                    remaining
                        .iter()
                        .position(|i| i.long_tail() && fits(i, true) == Fit::Yes)
                })
                .flatten();
            let pick = long_tail_pick
                .or_else(|| remaining.iter().position(|i| fits(i, true) == Fit::Yes))
                .or_else(|| remaining.iter().position(|i| fits(i, false) == Fit::Yes))
                .unwrap_or(0);
            for item in remaining.iter_mut().take(pick) {
                match fits(item, true) {
                    Fit::Yes => {}
                    Fit::Capped => item.note(Move::Capped),
                    Fit::Spread => item.note(Move::Spread),
                }
            }
            if let Some(mut item) = remaining.remove(pick) {
                if long_tail_pick.is_some() {
                    item.note(Move::LongTailSlot);
                }
                out.push(item);
            }
        }
        out
    }

    /// A generated item: its position in the input identifies it.
    #[derive(Clone, Debug, PartialEq)]
    struct Gen {
        at: usize,
        creator: String,
        tag: Option<String>,
        long_tail: bool,
        /// Which moves were noted (capped, spread, long-tail slot): the contract is what
        /// happened, not how often or in which order.
        notes: [bool; 3],
    }
    impl Diversifiable for Gen {
        fn creator(&self) -> Term {
            term(&self.creator)
        }
        fn primary_tag(&self) -> Option<Term> {
            self.tag.as_deref().map(term)
        }
        fn long_tail(&self) -> bool {
            self.long_tail
        }
        fn note(&mut self, what: Move) {
            let i = match what {
                Move::Capped => 0,
                Move::Spread => 1,
                Move::LongTailSlot => 2,
            };
            self.notes[i] = true;
        }
    }

    proptest::proptest! {
        /// Same order, same items, same notes as the reference (the same order without notes),
        /// on lists with few creators and
        /// tags (so the rules bind), items without a tag, long-tail items, every knob in range.
        #[test]
        fn agrees_with_the_reference(
            raw in proptest::collection::vec((0u8..6, proptest::option::of(0u8..5), proptest::bool::weighted(0.2)), 0..80),
            cap in 1u32..4,
            extra_window in 0u32..8,
            spread in 1u32..6,
            share in proptest::sample::select(vec![0.0, 0.1, 0.25, 0.5, 1.0]),
            depth in 0usize..100,
        ) {
            let items: Vec<Gen> = raw
                .iter()
                .enumerate()
                .map(|(at, (c, t, lt))| Gen {
                    at,
                    creator: format!("creator-{c}"),
                    tag: t.map(|t| format!("tag-{t}")),
                    long_tail: *lt,
                    notes: [false; 3],
                })
                .collect();
            let k = knobs(cap, cap + extra_window, spread, share);
            let expected = reference(items.clone(), &k, depth);
            proptest::prop_assert_eq!(&rerank(items.clone(), &k, depth, Notes::Given), &expected);
            // Without notes: the same items in the same order, none of them told anything.
            let plain = rerank(items, &k, depth, Notes::Skipped);
            let order = |list: &[Gen]| list.iter().map(|g| g.at).collect::<Vec<_>>();
            proptest::prop_assert_eq!(order(&plain), order(&expected));
            proptest::prop_assert!(plain.iter().all(|g| g.notes == [false; 3]));
        }
    }

    #[test]
    fn heads_are_walked_in_position_order_across_words() {
        let mut heads = Heads::new(200);
        assert_eq!(heads.first(), None);
        for at in [128, 0, 64, 63, 199, 127] {
            heads.insert(at);
        }
        assert_eq!(heads.iter().collect::<Vec<_>>(), [0, 63, 64, 127, 128, 199]);
        heads.remove(0);
        heads.remove(64);
        assert_eq!(heads.first(), Some(63));
        assert_eq!(heads.iter().collect::<Vec<_>>(), [63, 127, 128, 199]);
        assert_eq!(Heads::new(0).iter().count(), 0);
    }

    #[test]
    fn long_tail_gets_its_share_of_slots() {
        let mut items: Vec<It> = (0..20).map(|_| It("c", "t", false)).collect();
        items.push(It("lt", "t", true));
        items.push(It("lt2", "t", true));
        let out = rerank(items, &knobs(100, 100, 1, 0.2), 10, Notes::Given);
        assert!(
            out[4].2 && out[9].2,
            "slots 5 and 10 go to long-tail items: {out:?}"
        );
    }
}
