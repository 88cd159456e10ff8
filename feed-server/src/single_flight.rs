//! One ranking of a user's first page at a time: requests that miss both cache tiers while the
//! user's page is being ranked wait for that ranking and take its page, instead of each ranking
//! the same page and taking a place in the ranking queue ([`crate::shed`]). A cache stampede
//! has several such requests: a client fetching twice (a retry, a double mount), the predictive
//! warm-up ranking a user whose request arrives meanwhile, a hot user's page expiring under many
//! requests (the bench's Zipf traffic).
//!
//! [`KeyedLocks`] is an async mutex per key, made on first use and dropped with its last holder
//! or waiter: memory holds only the keys being ranked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

type Lock = Arc<tokio::sync::Mutex<()>>;

/// Async mutexes by key (see the module docs).
#[derive(Debug, Default)]
pub struct KeyedLocks {
    held: Mutex<HashMap<String, Lock>>,
}

/// Holds `key`'s lock until dropped.
#[derive(Debug)]
pub struct KeyGuard<'a> {
    locks: &'a KeyedLocks,
    key: String,
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
        let mut held = self
            .locks
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Release first, then forget the key when nobody else holds or waits for it (each
        // holds a clone of the lock, and clones are made only under `held`).
        if let Some(guard) = self.guard.take() {
            let lock = OwnedMutexGuard::mutex(&guard).clone();
            drop(guard);
            if Arc::strong_count(&lock) == 2 {
                held.remove(&self.key);
            }
        }
    }
}

impl KeyedLocks {
    /// Waits until no one else holds `key`, then holds it.
    pub async fn lock(&self, key: &str) -> KeyGuard<'_> {
        let lock = {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            held.entry(key.to_owned()).or_default().clone()
        };
        let (guard, waited) = match lock.clone().try_lock_owned() {
            Ok(guard) => (guard, false),
            Err(_) => (lock.lock_owned().await, true),
        };
        KeyGuard {
            locks: self,
            key: key.to_owned(),
            guard: Some(guard),
            waited,
        }
    }

    /// Keys held or waited for now.
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
        while Arc::strong_count(&locks.held.lock().expect("lock")["alice"]) < 3 {
            tokio::task::yield_now().await;
        }
        drop(first);
        assert_eq!(locks.len(), 1, "the waiter still needs the key");
        assert!(waiter.await.expect("join"));
        assert!(locks.is_empty());
    }
}
