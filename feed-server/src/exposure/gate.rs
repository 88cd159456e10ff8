//! At most one tune at a time: a tune holds a [`Permit`] from before it reads the log until its
//! fit is done (also when the client went away meanwhile), and a second one is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The single tune slot.
#[derive(Clone, Debug, Default)]
pub struct TuneGate {
    busy: Arc<AtomicBool>,
}

/// Holds the slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    busy: Arc<AtomicBool>,
}

impl TuneGate {
    /// The slot, or `None` when a tune holds it.
    pub fn try_acquire(&self) -> Option<Permit> {
        self.busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Permit {
                busy: self.busy.clone(),
            })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_permit_at_a_time_and_free_again_when_dropped() {
        let gate = TuneGate::default();
        let first = gate.try_acquire();
        assert!(first.is_some());
        assert!(gate.try_acquire().is_none());
        drop(first);
        assert!(gate.try_acquire().is_some());
    }
}
