//! A read cache shared by the rankings of one replica, for data every user reads alike (the
//! trending, fresh, creator, tag and long-tail lists): entries are at most `ttl` old, because the whole
//! cache expires together, and a lookup is one hash probe under a read lock.

use foldhash::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

/// Entries read within the last `ttl`; `ttl` zero turns the cache off.
pub(crate) struct SharedCache<K, V> {
    ttl: Duration,
    max_entries: usize,
    inner: RwLock<Epoch<K, V>>,
}

struct Epoch<K, V> {
    started: Instant,
    entries: HashMap<K, V>,
}

impl<K: Hash + Eq, V: Clone> SharedCache<K, V> {
    /// A cache whose entries live at most `ttl`; emptied when it reaches `max_entries`.
    pub(crate) fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            ttl,
            max_entries,
            inner: RwLock::new(Epoch {
                started: Instant::now(),
                entries: HashMap::default(),
            }),
        }
    }

    /// The cached value of each key, `None` where it must be read.
    pub(crate) fn lookup(&self, keys: impl Iterator<Item = K>) -> Vec<Option<V>> {
        let epoch = self.inner.read();
        if self.ttl.is_zero() || epoch.started.elapsed() >= self.ttl {
            return keys.map(|_| None).collect();
        }
        keys.map(|k| epoch.entries.get(&k).cloned()).collect()
    }

    /// Keeps values read just now.
    pub(crate) fn insert(&self, read: impl IntoIterator<Item = (K, V)>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut epoch = self.inner.write();
        if epoch.started.elapsed() >= self.ttl || epoch.entries.len() >= self.max_entries {
            epoch.started = Instant::now();
            epoch.entries.clear();
        }
        epoch.entries.extend(read);
    }

    /// Drops everything.
    pub(crate) fn clear(&self) {
        self.inner.write().entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys<'a>(k: &'a [&'static str]) -> impl Iterator<Item = &'static str> + 'a {
        k.iter().copied()
    }

    #[test]
    fn serves_within_the_ttl_then_reads_again() {
        let c = SharedCache::new(Duration::from_millis(50), 10);
        assert_eq!(c.lookup(keys(&["a"])), [None]);
        c.insert([("a", 1)]);
        assert_eq!(c.lookup(keys(&["a", "b"])), [Some(1), None]);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.lookup(keys(&["a"])), [None], "older than the ttl");
        c.insert([("b", 2)]);
        assert_eq!(c.lookup(keys(&["a", "b"])), [None, Some(2)], "a new epoch");
    }

    #[test]
    fn clear_capacity_and_off() {
        let c = SharedCache::new(Duration::from_secs(60), 2);
        c.insert([("a", 1), ("b", 2)]);
        assert_eq!(c.lookup(keys(&["a", "b"])), [Some(1), Some(2)]);
        c.insert([("c", 3)]);
        assert_eq!(
            c.lookup(keys(&["a", "b", "c"])),
            [None, None, Some(3)],
            "emptied when full"
        );
        c.insert([("d", 4)]);
        c.clear();
        assert_eq!(c.lookup(keys(&["d"])), [None]);
        let off = SharedCache::new(Duration::ZERO, 2);
        off.insert([("a", 1)]);
        assert_eq!(off.lookup(keys(&["a"])), [None]);
    }
}
