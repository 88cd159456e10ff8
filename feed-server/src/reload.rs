//! Hot reload of a configuration file by polling: the one loop behind the ranking profile
//! (`--profile`, [`crate::experiments`]) and the API keys (`--api-keys`, [`crate::auth`]).
//!
//! The file is read every `every`; content that differs from the last content seen is handed
//! to the [`Reloadable`], which either makes it the next generation or rejects it. A rejection
//! or an unreadable file is logged and counted by the target, and the last good configuration
//! keeps serving: a bad edit never takes the server down or opens it up. A reload that panics (a
//! bug: validation should have refused the content) is caught, logged and counted like a
//! rejection, and polling goes on, so later changes (a key revocation) still take effect.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// What a successful reload put in force, for the log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The new generation (1 is the file read at start).
    pub generation: u64,
    /// A short, secret-free summary (variant names, key names).
    pub summary: String,
}

/// A configuration file that is not UTF-8 text (refused rather than read with replacement
/// characters, which could silently change a name or a digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the file is not UTF-8 text (invalid byte at offset {valid_up_to})")]
pub struct NotUtf8 {
    /// Bytes before the first invalid one.
    pub valid_up_to: usize,
}

/// The text of a configuration file, or [`NotUtf8`].
pub fn utf8(bytes: &[u8]) -> Result<&str, NotUtf8> {
    std::str::from_utf8(bytes).map_err(|e| NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })
}

/// A configuration that a changed file can replace.
pub trait Reloadable: Send + Sync + 'static {
    /// What the file holds, for log messages (`ranking profile`, `API keys`).
    const WHAT: &'static str;

    /// Why new content is rejected.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Parses, validates and applies new file content; returns what is now in force, or why the
    /// content was rejected (the configuration in force is then unchanged).
    fn reload(&self, bytes: &[u8]) -> Result<Applied, Self::Error>;

    /// Counts a rejected change or an unreadable file (its `…_reload_errors_total` metric).
    fn count_rejection(&self);
}

/// A file to watch for a [`Reloadable`], set up at start and spawned when serving.
pub struct Watch<T> {
    /// What the file configures.
    pub target: Arc<T>,
    /// The file.
    pub path: PathBuf,
    /// The content read at start (in force).
    pub initial: Vec<u8>,
    /// How often the file is read (at least 10 ms).
    pub every: Duration,
}

impl<T: Reloadable> Watch<T> {
    /// Polls the file in a task until `stop` fires.
    pub fn spawn(self, stop: CancellationToken) {
        tokio::spawn(watch(
            self.target,
            self.path,
            self.initial,
            self.every.max(Duration::from_millis(10)),
            stop,
        ));
    }
}

/// Polls `path` every `every` until `stop` fires; `initial` is the content already in force.
pub async fn watch<T: Reloadable>(
    target: Arc<T>,
    path: PathBuf,
    initial: Vec<u8>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut last = initial;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                // Reported once per disappearance, not on every tick.
                if last.is_empty() {
                    continue;
                }
                tracing::error!(path = %path.display(), error = %e, "{} file unreadable; keeping the last good configuration", T::WHAT);
                target.count_rejection();
                last.clear();
                continue;
            }
        };
        if bytes == last {
            continue;
        }
        last = bytes.clone();
        // The target swaps its configuration in one store at the end of `reload`: a panic
        // before it leaves the configuration in force untouched.
        match std::panic::catch_unwind(AssertUnwindSafe(|| target.reload(&bytes))) {
            Ok(Ok(Applied {
                generation,
                summary,
            })) => {
                tracing::info!(path = %path.display(), generation, summary, "{} reloaded", T::WHAT);
            }
            Ok(Err(error)) => {
                tracing::error!(path = %path.display(), %error, "{} rejected; keeping the last good configuration", T::WHAT);
                target.count_rejection();
            }
            Err(_) => {
                tracing::error!(path = %path.display(), "{} reload panicked (a bug); keeping the last good configuration and polling on", T::WHAT);
                target.count_rejection();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// Applies any text except `panic`, on which it panics, as a buggy validator would.
    #[derive(Default)]
    struct Fragile {
        applied: Mutex<Vec<String>>,
        rejections: AtomicU64,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("invalid")]
    struct Invalid(#[from] NotUtf8);

    impl Reloadable for Fragile {
        const WHAT: &'static str = "test file";
        type Error = Invalid;

        fn reload(&self, bytes: &[u8]) -> Result<Applied, Invalid> {
            let text = utf8(bytes)?;
            assert_ne!(text, "panic", "a reload panicked");
            let mut applied = self
                .applied
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            applied.push(text.to_owned());
            Ok(Applied {
                generation: applied.len() as u64,
                summary: text.to_owned(),
            })
        }

        fn count_rejection(&self) {
            self.rejections.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Replaces the file atomically, so the poller never reads half a write.
    fn replace(path: &std::path::Path, bytes: &[u8]) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).expect("write");
        std::fs::rename(&tmp, path).expect("rename");
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never happened: {what}");
    }

    #[tokio::test]
    async fn a_panicking_or_non_utf8_reload_is_counted_and_polling_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(&path, "first").expect("write");
        let target = Arc::new(Fragile::default());
        let stop = CancellationToken::new();
        Watch {
            target: target.clone(),
            path: path.clone(),
            initial: b"first".to_vec(),
            every: Duration::from_millis(10),
        }
        .spawn(stop.clone());
        replace(&path, b"panic");
        until("the panic counted", || {
            target.rejections.load(Ordering::Relaxed) == 1
        })
        .await;
        replace(&path, b"caf\xe9");
        until("invalid UTF-8 counted", || {
            target.rejections.load(Ordering::Relaxed) == 2
        })
        .await;
        // The loop survived both: the next good change is applied.
        replace(&path, b"second");
        until("the next change applied", || {
            target
                .applied
                .lock()
                .is_ok_and(|a| a.as_slice() == ["second"])
        })
        .await;
        assert_eq!(utf8(b"caf\xe9"), Err(NotUtf8 { valid_up_to: 3 }));
        stop.cancel();
    }
}
