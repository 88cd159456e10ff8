//! Times diversity re-ranking on lists shaped like the bench world's rankings (BENCHMARKS.md,
//! "Where the re-ranking's time goes"): 600 scored items, the better-scored half by 20
//! followed creators in the user's two favourite tags, the rest by any of 10,000 creators in
//! any of 40 tags, one in twenty from the long-tail source; the default knobs; depth 200.
//!
//! `cargo run --release -p feed-server --example rerank_timing` prints, with notes and
//! without, the median and the fastest of 1,000 calls (50 lists, 20 calls each, every call on a
//! fresh copy made outside the timing, the two modes in turn), a checksum of the orders and
//! notes (equal between two versions that agree) and one of the orders alone (equal between
//! the two modes).

use std::time::Instant;

use feed_profile::DiversityKnobs;
use feed_server::ranking::diversity::{Diversifiable, Move, Notes, rerank};
use feed_server::vocabulary::{Term, term};

#[derive(Clone)]
struct Item {
    creator: String,
    tag: String,
    /// Interned when the item is made, as catalog entries are when read.
    terms: (Term, Term),
    long_tail: bool,
    notes: u8,
}

impl Diversifiable for Item {
    fn creator(&self) -> Term {
        self.terms.0
    }
    fn primary_tag(&self) -> Option<Term> {
        Some(self.terms.1)
    }
    fn long_tail(&self) -> bool {
        self.long_tail
    }
    fn note(&mut self, what: Move) {
        self.notes |= 1 << (what as u8);
    }
}

/// A list of `n` items in score order, from a deterministic generator.
fn list(next: &mut impl FnMut(u64) -> u64, n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let (creator, tag) = if i < n / 2 {
                (format!("c{}", next(20)), format!("t{}", next(2)))
            } else {
                (format!("c{}", 100 + next(10_000)), format!("t{}", next(40)))
            };
            Item {
                terms: (term(&creator), term(&tag)),
                creator,
                tag,
                long_tail: next(20) == 0,
                notes: 0,
            }
        })
        .collect()
}

fn main() {
    let mut state: u64 = 42;
    let mut next = |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    let lists: Vec<Vec<Item>> = (0..50).map(|_| list(&mut next, 600)).collect();
    let knobs = DiversityKnobs::default();
    // Both modes, call by call in turn, so that the host's noise falls on both alike.
    let modes = [
        ("with notes", Notes::Given),
        ("without notes", Notes::Skipped),
    ];
    let mut micros = [Vec::new(), Vec::new()];
    let mut checksums = [0usize; 2];
    let mut orders = [0usize; 2];
    for items in &lists {
        for _ in 0..20 {
            for (m, (_, notes)) in modes.iter().enumerate() {
                let input = items.clone();
                let started = Instant::now();
                let out = rerank(input, &knobs, 200, *notes);
                micros[m].push(started.elapsed().as_secs_f64() * 1e6);
                for (slot, item) in out.iter().enumerate() {
                    checksums[m] += slot * (item.notes as usize + item.creator.len());
                    orders[m] += slot * (item.creator.len() + item.tag.len() * 7);
                }
            }
        }
    }
    for (m, (name, _)) in modes.iter().enumerate() {
        let calls = &mut micros[m];
        calls.sort_by(f64::total_cmp);
        println!(
            "rerank of 600 items to 200 {name}: median {:.1} us, fastest {:.1} us over {} calls (checksum {}, order checksum {})",
            calls[calls.len() / 2],
            calls[0],
            calls.len(),
            checksums[m],
            orders[m]
        );
    }
}
