//! The per-peer timers of the whitepaper §6 and the kernel's `timers.c`, as deadlines on the
//! injected monotonic clock. Nothing sleeps: [`Timers::next_deadline`] tells the caller when to
//! come back and [`Timers::expire`] says which timers fired at `now`.
//!
//! The event methods mirror the kernel's `wg_timers_*` hooks one for one; [`crate::proto::peer::Peer`]
//! calls them at the same points of the send and receive paths as the kernel does.

use crate::proto::constants::{
    KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX,
};
use crate::proto::time::Instant;
use rand_core::RngCore;
use std::time::Duration;

/// Which timers fired.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    /// No response to our initiation within REKEY_TIMEOUT (+ jitter).
    pub retransmit_handshake: bool,
    /// Data received and nothing sent for KEEPALIVE_TIMEOUT: send a passive keepalive.
    pub send_keepalive: bool,
    /// Data sent and nothing received for KEEPALIVE + REKEY_TIMEOUT (+ jitter): new handshake.
    pub new_handshake: bool,
    /// No new session for 3 × REJECT_AFTER_TIME: zero all keys.
    pub zero_key_material: bool,
    /// The persistent keepalive interval passed without authenticated traffic.
    pub persistent_keepalive: bool,
}

impl Fired {
    /// True if any fired.
    pub fn any(&self) -> bool {
        self.retransmit_handshake
            || self.send_keepalive
            || self.new_handshake
            || self.zero_key_material
            || self.persistent_keepalive
    }
}

/// Random jitter in [0, 333 ms], as the kernel's `get_random_u32_below(HZ / 3)`.
pub fn jitter<R: RngCore + ?Sized>(rng: &mut R) -> Duration {
    Duration::from_nanos(rng.next_u64() % REKEY_TIMEOUT_JITTER_MAX.as_nanos() as u64)
}

/// Deadlines of one peer's five timers.
#[derive(Debug, Default, Clone)]
pub struct Timers {
    /// `timer_retransmit_handshake`.
    pub retransmit_handshake: Option<Instant>,
    /// `timer_send_keepalive`.
    pub send_keepalive: Option<Instant>,
    /// `timer_new_handshake`.
    pub new_handshake: Option<Instant>,
    /// `timer_zero_key_material`.
    pub zero_key_material: Option<Instant>,
    /// `timer_persistent_keepalive`.
    pub persistent_keepalive: Option<Instant>,
    /// Retries of the current initiation so far.
    pub handshake_attempts: u32,
    /// Another passive keepalive is due after the pending one.
    pub need_another_keepalive: bool,
    /// The persistent keepalive interval (None = off).
    pub persistent_keepalive_interval: Option<Duration>,
}

impl Timers {
    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.retransmit_handshake,
            self.send_keepalive,
            self.new_handshake,
            self.zero_key_material,
            self.persistent_keepalive,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Clears and reports every timer whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Fired {
        fn take(t: &mut Option<Instant>, now: Instant) -> bool {
            if t.is_some_and(|d| d <= now) {
                *t = None;
                true
            } else {
                false
            }
        }
        Fired {
            retransmit_handshake: take(&mut self.retransmit_handshake, now),
            send_keepalive: take(&mut self.send_keepalive, now),
            new_handshake: take(&mut self.new_handshake, now),
            zero_key_material: take(&mut self.zero_key_material, now),
            persistent_keepalive: take(&mut self.persistent_keepalive, now),
        }
    }

    /// Cancels all timers (peer removed or keys zeroed).
    pub fn stop_all(&mut self) {
        let interval = self.persistent_keepalive_interval;
        *self = Timers::default();
        self.persistent_keepalive_interval = interval;
    }

    /// `wg_timers_data_sent`: arm new-handshake unless pending.
    pub fn data_sent<R: RngCore + ?Sized>(&mut self, now: Instant, rng: &mut R) {
        if self.new_handshake.is_none() {
            self.new_handshake = Some(now.plus(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter(rng)));
        }
    }

    /// `wg_timers_data_received`: arm the passive keepalive, or ask for another after it.
    pub fn data_received(&mut self, now: Instant) {
        if self.send_keepalive.is_none() {
            self.send_keepalive = Some(now.plus(KEEPALIVE_TIMEOUT));
        } else {
            self.need_another_keepalive = true;
        }
    }

    /// `wg_timers_any_authenticated_packet_sent`: no passive keepalive needed now.
    pub fn any_authenticated_packet_sent(&mut self) {
        self.send_keepalive = None;
    }

    /// `wg_timers_any_authenticated_packet_received`: the peer is alive, no new handshake needed.
    pub fn any_authenticated_packet_received(&mut self) {
        self.new_handshake = None;
    }

    /// `wg_timers_any_authenticated_packet_traversal`: restart the persistent keepalive.
    pub fn any_authenticated_packet_traversal(&mut self, now: Instant) {
        if let Some(i) = self.persistent_keepalive_interval {
            self.persistent_keepalive = Some(now.plus(i));
        }
    }

    /// `wg_timers_handshake_initiated`: expect a response within REKEY_TIMEOUT + jitter.
    pub fn handshake_initiated<R: RngCore + ?Sized>(&mut self, now: Instant, rng: &mut R) {
        self.retransmit_handshake = Some(now.plus(REKEY_TIMEOUT + jitter(rng)));
    }

    /// `wg_timers_handshake_complete`: stop retransmitting.
    pub fn handshake_complete(&mut self) {
        self.retransmit_handshake = None;
        self.handshake_attempts = 0;
    }

    /// `wg_timers_session_derived`: zero the keys 3 × REJECT_AFTER_TIME from now unless renewed.
    pub fn session_derived(&mut self, now: Instant) {
        self.zero_key_material = Some(now.plus(REJECT_AFTER_TIME * 3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn s(secs: u64) -> Instant {
        Instant::from_nanos(secs * 1_000_000_000)
    }

    #[test]
    fn jitter_bounds() {
        for _ in 0..1000 {
            assert!(jitter(&mut OsRng) < Duration::from_millis(334));
        }
    }

    #[test]
    fn new_handshake_not_rearmed_while_pending() {
        let mut t = Timers::default();
        t.data_sent(s(0), &mut OsRng);
        let first = t.new_handshake.unwrap();
        assert!(first >= s(15) && first < s(15).plus(Duration::from_millis(334)));
        t.data_sent(s(3), &mut OsRng);
        assert_eq!(t.new_handshake, Some(first));
        t.any_authenticated_packet_received();
        assert_eq!(t.new_handshake, None);
    }

    #[test]
    fn passive_keepalive_and_need_another() {
        let mut t = Timers::default();
        t.data_received(s(1));
        assert_eq!(t.send_keepalive, Some(s(11)));
        t.data_received(s(2));
        assert!(t.need_another_keepalive);
        assert_eq!(t.send_keepalive, Some(s(11)));
        assert!(!t.expire(s(10)).send_keepalive);
        assert!(t.expire(s(11)).send_keepalive);
        assert_eq!(t.send_keepalive, None);
        t.data_received(s(12));
        t.any_authenticated_packet_sent();
        assert_eq!(t.send_keepalive, None);
    }

    #[test]
    fn persistent_keepalive_restarts_on_traversal() {
        let mut t = Timers {
            persistent_keepalive_interval: Some(Duration::from_secs(25)),
            ..Default::default()
        };
        t.any_authenticated_packet_traversal(s(0));
        t.any_authenticated_packet_traversal(s(10));
        assert_eq!(t.persistent_keepalive, Some(s(35)));
        assert_eq!(t.next_deadline(), Some(s(35)));
        t.stop_all();
        assert_eq!(t.next_deadline(), None);
        assert_eq!(
            t.persistent_keepalive_interval,
            Some(Duration::from_secs(25))
        );
    }

    #[test]
    fn zero_key_material_after_540s() {
        let mut t = Timers::default();
        t.session_derived(s(7));
        assert_eq!(t.zero_key_material, Some(s(547)));
        assert!(!t.expire(s(546)).any());
        assert!(t.expire(s(547)).zero_key_material);
    }
}
