//! Anti-replay window for transport counters, in the manner of RFC 6479 with the kernel's size:
//! an 8192-bit ring of 64-bit words of which 8128 counters are usable.
//!
//! The window is only updated by [`ReplayWindow::accept`], which the receive path calls *after* a
//! packet authenticated; [`ReplayWindow::check`] is the cheap pre-check before decryption.

use crate::proto::constants::{COUNTER_BITS_TOTAL, COUNTER_WINDOW_SIZE, REJECT_AFTER_MESSAGES};

const WORDS: usize = (COUNTER_BITS_TOTAL / 64) as usize;

/// Sliding window of received counters.
#[derive(Clone)]
pub struct ReplayWindow {
    /// One more than the greatest accepted counter (0 = nothing accepted yet).
    next: u64,
    ring: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            next: 0,
            ring: [0; WORDS],
        }
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("next", &self.next)
            .finish()
    }
}

impl ReplayWindow {
    /// A fresh window.
    pub fn new() -> Self {
        Self::default()
    }

    /// One more than the greatest counter accepted so far.
    pub fn next_expected(&self) -> u64 {
        self.next
    }

    /// True if `counter` could be accepted: below REJECT_AFTER_MESSAGES, not older than the
    /// window, and not yet seen. Changes nothing.
    pub fn check(&self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        let c = counter + 1;
        if c.saturating_add(COUNTER_WINDOW_SIZE) < self.next {
            return false;
        }
        if c > self.next {
            return true;
        }
        let (word, bit) = Self::slot(c);
        // `slot` reduces the word modulo the ring's length; a miss would read as a replay.
        self.ring.get(word).is_some_and(|w| w & bit == 0)
    }

    /// Records `counter` as received; returns false (and changes nothing) if it is a replay, too
    /// old, or at/above REJECT_AFTER_MESSAGES. Call only after the packet authenticated.
    pub fn accept(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        let c = counter + 1;
        if c > self.next {
            // Clear the words between the old top and the new one (at most the whole ring).
            let cur_word = self.next / 64;
            let new_word = c / 64;
            let steps = (new_word - cur_word).min(WORDS as u64);
            for i in 1..=steps {
                if let Some(w) = self.ring.get_mut(((cur_word + i) % WORDS as u64) as usize) {
                    *w = 0;
                }
            }
            self.next = c;
        }
        let (word, bit) = Self::slot(c);
        match self.ring.get_mut(word) {
            Some(w) => {
                *w |= bit;
                true
            }
            None => false,
        }
    }

    fn slot(c: u64) -> (usize, u64) {
        (((c / 64) % WORDS as u64) as usize, 1u64 << (c % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_and_replays() {
        let mut w = ReplayWindow::new();
        for c in 0..20_000 {
            assert!(w.accept(c), "{c}");
            assert!(!w.accept(c), "replay {c}");
        }
    }

    #[test]
    fn reordered_within_window_accepted_once() {
        let mut w = ReplayWindow::new();
        assert!(w.accept(10_000));
        // Everything down to 10_000 - 8128 + 1 is still in the window... (kernel: accepted iff
        // counter + 1 + WINDOW >= top, top = 10_001).
        let oldest = 10_000 - COUNTER_WINDOW_SIZE;
        assert!(w.check(oldest));
        assert!(!w.check(oldest - 1));
        for c in (oldest..10_000).rev() {
            assert!(w.accept(c), "{c}");
        }
        for c in oldest..=10_000 {
            assert!(!w.accept(c), "replay {c}");
        }
        assert!(!w.accept(oldest - 1));
    }

    #[test]
    fn wide_enough_for_stock_peers() {
        // A 1024-bit window would drop these reordered packets.
        let mut w = ReplayWindow::new();
        assert!(w.accept(10_000));
        assert!(w.accept(10_000 - 4_000));
        assert!(w.accept(10_000 - 8_000));
    }

    #[test]
    fn big_jump_clears_ring() {
        let mut w = ReplayWindow::new();
        for c in 0..100 {
            assert!(w.accept(c));
        }
        assert!(w.accept(1_000_000));
        // Old counters are out of the window now, and fresh ones in range are unseen.
        assert!(!w.accept(50));
        for c in (1_000_000 - 8_000)..1_000_000 {
            assert!(w.check(c), "{c}");
        }
        // Counters that map to the same ring slots as the earlier 0..100 are unseen.
        let alias = 8192 * 122 + 10;
        assert!(alias < 1_000_000 && alias + COUNTER_WINDOW_SIZE > 1_000_000);
        assert!(w.accept(alias - 1));
    }

    #[test]
    fn check_does_not_mutate() {
        let mut w = ReplayWindow::new();
        assert!(w.check(5));
        assert!(w.check(5));
        assert_eq!(w.next_expected(), 0);
        assert!(w.accept(5));
        assert!(!w.check(5));
    }

    #[test]
    fn reject_after_messages() {
        let mut w = ReplayWindow::new();
        assert!(!w.check(REJECT_AFTER_MESSAGES));
        assert!(!w.accept(u64::MAX));
        assert!(w.accept(REJECT_AFTER_MESSAGES - 1));
        assert!(!w.accept(REJECT_AFTER_MESSAGES));
        assert!(w.accept(REJECT_AFTER_MESSAGES - 2));
    }

    #[test]
    fn counter_zero_is_valid_first() {
        let mut w = ReplayWindow::new();
        assert!(w.accept(0));
        assert!(!w.accept(0));
        assert!(w.accept(2));
        assert!(w.accept(1));
    }
}
