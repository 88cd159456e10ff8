//! The embedded store's exposure log: a ring buffer of at most `capacity` events that drops the
//! oldest to make room.

use std::collections::VecDeque;

use super::LoggedEvent;

/// A bounded log, oldest first.
#[derive(Debug)]
pub struct RingLog {
    events: VecDeque<LoggedEvent>,
    capacity: usize,
}

impl RingLog {
    /// An empty log holding at most `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            events: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Appends `events` in order; returns how many old events were dropped to make room.
    pub fn append(&mut self, events: &[LoggedEvent]) -> u64 {
        let mut dropped = 0;
        for e in events {
            if self.events.len() == self.capacity {
                self.events.pop_front();
                dropped += 1;
            }
            self.events.push_back(e.clone());
        }
        dropped
    }

    /// The newest `max` events, oldest first.
    pub fn newest(&self, max: usize) -> Vec<LoggedEvent> {
        let skip = self.events.len().saturating_sub(max);
        self.events.iter().skip(skip).cloned().collect()
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EventType;

    fn ev(i: usize) -> LoggedEvent {
        LoggedEvent {
            user_id: format!("u{i}"),
            video_id: "v".into(),
            kind: EventType::Impression,
            watch_ms: None,
            ts: i as f64,
        }
    }

    #[test]
    fn a_full_log_drops_the_oldest_and_counts_them() {
        let mut log = RingLog::new(3);
        assert_eq!(log.append(&[ev(0), ev(1)]), 0);
        assert_eq!(log.append(&[ev(2), ev(3), ev(4)]), 2);
        assert_eq!(log.len(), 3);
        let kept: Vec<f64> = log.newest(10).iter().map(|e| e.ts).collect();
        assert_eq!(kept, [2.0, 3.0, 4.0]);
        let newest: Vec<f64> = log.newest(2).iter().map(|e| e.ts).collect();
        assert_eq!(newest, [3.0, 4.0], "a capped read keeps the newest");
    }
}
