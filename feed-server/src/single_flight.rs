//! One ranking of a user's first page at a time: requests that miss both cache tiers while the
//! user's page is being ranked wait for that ranking and take its page, instead of each ranking
//! the same page and taking a place in the ranking queue ([`crate::shed`]). A cache stampede
//! has several such requests: a client fetching twice (a retry, a double mount), a hot user's
//! page expiring under many requests (the bench's Zipf traffic). Only the request that found
//! the key free ranks under it: one that waited and finds no page it can use ranks without it
//! (`crate::feed`), so no request waits for more than one ranking.
//!
//! [`KeyedLocks`] is an async mutex per key, made on first use and dropped with its last holder
//! or waiter: memory holds only the keys being ranked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::OwnedMutexGuard;

type Lock = tokio::sync::Mutex<()>;

/// Async mutexes by key (see the module docs).
#[derive(Debug, Default)]
pub struct KeyedLocks {
    /// Each key's lock, kept alive by its holder and waiters only: a key whose lock is gone
    /// (its last holder released it, or its last waiter was cancelled, e.g. by the request
    /// timeout) is removed when any guard is dropped.
    held: Mutex<HashMap<String, Weak<Lock>>>,
}

/// Holds a key's lock until dropped.
#[derive(Debug)]
pub struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    guard: Option<OwnedMutexGuard<()>>,
    waited: bool,
}

impl KeyGuard<'_> {
    /// Whether another holder had the key when this one asked: it finished before this guard
    /// was granted, so what it made (a cached page) may now serve this request.
    pub fn waited(&self) -> bool {
        self.waited
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        // Release first (the guard holds the lock alive), then forget every key nobody holds
        // or waits for: this one, and any left by a cancelled waiter. The map holds only the
        // keys being ranked, so the sweep is short.
        drop(self.guard.take());
        self.locks
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, lock| lock.strong_count() > 0);
    }
}

impl KeyedLocks {
    /// Waits until no one else holds `key`, then holds it.
    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let lock = {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            match held.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(Lock::new(()));
                    held.insert(key.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        let (guard, waited) = match lock.clone().try_lock_owned() {
            Ok(guard) => (guard, false),
            Err(_) => (lock.lock_owned().await, true),
        };
        KeyGuard {
            locks: self,
            guard: Some(guard),
            waited,
        }
    }

    /// Keys held or waited for now (and keys of cancelled waiters not yet swept).
    pub fn len(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is held or waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_key_and_the_next_knows_it_waited() {
        let locks = Arc::new(KeyedLocks::default());
        let first = locks.lock("alice").await;
        assert!(!first.waited());
        // Another key is independent.
        let other = locks.lock("bob").await;
        assert!(!other.waited());
        drop(other);

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let waiter = tokio::spawn({
            let locks = locks.clone();
            async move {
                let guard = locks.lock("alice").await;
                tx.send(guard.waited()).expect("send");
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            rx.try_recv().is_err(),
            "granted while the first holds the key"
        );
        drop(first);
        assert_eq!(
            rx.recv().await,
            Some(true),
            "the second waited for the first"
        );
        waiter.await.expect("join");
        assert!(
            locks.is_empty(),
            "keys are forgotten with their last holder"
        );
    }

    #[tokio::test]
    async fn a_key_stays_while_someone_waits_for_it() {
        let locks = Arc::new(KeyedLocks::default());
        let first = locks.lock("alice").await;
        let waiter = tokio::spawn({
            let locks = locks.clone();
            async move { locks.lock("alice").await.waited() }
        });
        while locks.held.lock().expect("lock")["alice"].strong_count() < 2 {
            tokio::task::yield_now().await;
        }
        drop(first);
        assert_eq!(locks.len(), 1, "the waiter still needs the key");
        assert!(waiter.await.expect("join"));
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_cancelled_waiter_leaves_no_key_behind() {
        let locks = Arc::new(KeyedLocks::default());
        let waiter = |locks: Arc<KeyedLocks>| {
            tokio::spawn(async move {
                let _guard = locks.lock("alice").await;
            })
        };
        let waiting_for =
            |locks: &KeyedLocks| locks.held.lock().expect("lock")["alice"].strong_count() >= 2;

        // Cancelled while the holder still holds the key: the holder's release sweeps it.
        let first = locks.lock("alice").await;
        let cancelled = waiter(locks.clone());
        while !waiting_for(&locks) {
            tokio::task::yield_now().await;
        }
        cancelled.abort();
        assert!(cancelled.await.expect_err("aborted").is_cancelled());
        drop(first);
        assert!(locks.is_empty(), "swept with the last guard");

        // Cancelled after the holder released (woken, never run): no guard of its own is
        // dropped, so the next guard dropped anywhere sweeps the key.
        let first = locks.lock("alice").await;
        let cancelled = waiter(locks.clone());
        while !waiting_for(&locks) {
            tokio::task::yield_now().await;
        }
        drop(first);
        assert_eq!(locks.len(), 1, "the woken waiter still holds the key");
        cancelled.abort();
        assert!(cancelled.await.expect_err("aborted").is_cancelled());
        drop(locks.lock("bob").await);
        assert!(locks.is_empty(), "swept by another key's guard");
    }
}
