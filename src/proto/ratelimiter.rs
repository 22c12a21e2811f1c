//! The per-source rate limiter for handshake messages (kernel `ratelimiter.c`; facts and
//! constants only, the code is wgd's own).
//!
//! Under load, a handshake message whose MAC2 verifies (so its source address is known to be
//! able to receive) still costs a DH computation. This limiter caps that cost per source with a
//! token bucket:
//!
//! - **Rate**: [`PACKETS_PER_SECOND`] = 20 messages per second, with a burst of
//!   [`PACKETS_BURSTABLE`] = 5. Tokens are counted in nanoseconds of credit: one message costs
//!   [`PACKET_COST`] = 50 ms of credit and a bucket holds at most [`TOKEN_MAX`] = 250 ms. A new
//!   source starts full and pays for its first message at once (4 × 50 ms left), as in the kernel.
//! - **Key**: the source IP, IPv4 by /32 and IPv6 by /64 (the upper 64 bits: one host usually owns
//!   a whole /64). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket reports
//!   IPv4 peers) is the IPv4 address. The port is not part of the key.
//! - **Memory**: at most [`MAX_ENTRIES`] = 65,536 sources (the kernel's `max_entries` =
//!   8 × `table_size`, with `table_size` = 8192 on any machine with more than 1 GiB of RAM). When
//!   the table is full a *new* source is refused (its message is dropped) and nothing is evicted,
//!   as the kernel does: eviction would let an attacker with many addresses flush a legitimate
//!   source's bucket and so reset its burst. Each entry is 32 bytes; the table's worst case is
//!   about 4.3 MiB (hashbrown rounds 65,536 entries up to 131,072 slots of 33 bytes).
//! - **Garbage collection**: an entry not touched for more than [`IDLE_TIMEOUT`] = 1 s is removed
//!   (a bucket refills in 250 ms, so a removed entry would have been full anyway: GC never changes
//!   a verdict). The caller drives it with its clock: [`RateLimiter::tick`] runs a sweep at most
//!   once per [`GC_INTERVAL`] = 1 s (the kernel's delayed work runs every second), and
//!   [`RateLimiter::next_deadline`] says when (`None` while the table is empty, so an idle device
//!   never wakes up for it). A full table also sweeps on insert once a sweep is due, so a caller
//!   that forgets to tick cannot lock new sources out for longer than that.
//! - **Hashing**: std's `RandomState` (SipHash-1-3 with a random 128-bit key drawn per table), so
//!   an attacker cannot choose addresses that collide in the table (the kernel uses hsiphash with
//!   a random key for the same reason).
//!
//! It is pure: the time is always passed in ([`Instant`]), nothing sleeps or spawns. One limiter
//! belongs to one [`Device`](crate::proto::device::Device) (the kernel has one table for the whole
//! system, keyed by network namespace as well).

use crate::proto::time::Instant;
use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::net::IpAddr;
use std::time::Duration;

/// Handshake messages allowed per second per source, once the burst is spent.
pub const PACKETS_PER_SECOND: u64 = 20;
/// Messages a source may send at once after being quiet.
pub const PACKETS_BURSTABLE: u64 = 5;
/// Credit one message costs, in nanoseconds (50 ms).
pub const PACKET_COST: u64 = 1_000_000_000 / PACKETS_PER_SECOND;
/// Most credit a bucket holds, in nanoseconds (250 ms).
pub const TOKEN_MAX: u64 = PACKET_COST * PACKETS_BURSTABLE;
/// Most sources tracked at once; a new source beyond is refused.
pub const MAX_ENTRIES: usize = 65_536;
/// An entry untouched for longer than this is removed by a sweep.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// Sweeps run at most this often.
pub const GC_INTERVAL: Duration = Duration::from_secs(1);

/// Capacity kept after a sweep empties most of the table (avoids reallocating for a trickle).
const MIN_RETAINED_CAPACITY: usize = 64;

/// What the limiter keys a source by: its IPv4 address, or the /64 of its IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKey {
    /// An IPv4 source (also an IPv4-mapped IPv6 one).
    V4(u32),
    /// The upper 64 bits of an IPv6 source.
    V6(u64),
}

impl SourceKey {
    /// The key of source address `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(a) => SourceKey::V4(u32::from(a)),
            IpAddr::V6(a) => SourceKey::V6((u128::from(a) >> 64) as u64),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// When the bucket was last looked at (allowed or not).
    last: Instant,
    /// Credit in nanoseconds, at most TOKEN_MAX.
    tokens: u64,
}

/// A per-source token bucket for handshake messages, with bounded memory.
pub struct RateLimiter {
    table: HashMap<SourceKey, Bucket, RandomState>,
    max_entries: usize,
    /// When the next sweep is due (meaningful while the table is not empty).
    next_gc: Instant,
    refused_full: u64,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("entries", &self.table.len())
            .field("max_entries", &self.max_entries)
            .finish_non_exhaustive()
    }
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimiter {
    /// A limiter holding at most [`MAX_ENTRIES`] sources.
    pub fn new() -> Self {
        Self::with_max_entries(MAX_ENTRIES)
    }

    /// A limiter holding at most `max_entries` sources (tests, small devices).
    pub fn with_max_entries(max_entries: usize) -> Self {
        RateLimiter {
            table: HashMap::with_hasher(RandomState::new()),
            max_entries,
            next_gc: Instant::ZERO,
            refused_full: 0,
        }
    }

    /// Whether one handshake message from `src` may be processed at `now`; if so, its cost is
    /// taken from the source's bucket. A refused message costs nothing. A new source is refused
    /// only when the table is full (after a sweep, if one is due).
    pub fn allow(&mut self, now: Instant, src: IpAddr) -> bool {
        let key = SourceKey::of(src);
        if self.table.len() >= self.max_entries && !self.table.contains_key(&key) {
            if now >= self.next_gc {
                self.gc(now);
            }
            if self.table.len() >= self.max_entries {
                self.refused_full += 1;
                return false;
            }
        }
        if self.table.is_empty() {
            self.next_gc = now.plus(GC_INTERVAL);
        }
        match self.table.entry(key) {
            Entry::Occupied(mut e) => {
                let b = e.get_mut();
                let elapsed = u64::try_from(now.since(b.last).as_nanos()).unwrap_or(u64::MAX);
                let tokens = b.tokens.saturating_add(elapsed).min(TOKEN_MAX);
                b.last = b.last.max(now);
                let allowed = tokens >= PACKET_COST;
                b.tokens = if allowed {
                    tokens - PACKET_COST
                } else {
                    tokens
                };
                allowed
            }
            Entry::Vacant(e) => {
                e.insert(Bucket {
                    last: now,
                    tokens: TOKEN_MAX - PACKET_COST,
                });
                true
            }
        }
    }

    /// Removes every entry untouched for more than [`IDLE_TIMEOUT`] at `now`, releases memory the
    /// table no longer needs, and schedules the next sweep. Returns how many were removed. Costs
    /// one pass over the table (at most [`MAX_ENTRIES`]).
    pub fn gc(&mut self, now: Instant) -> usize {
        let before = self.table.len();
        self.table.retain(|_, b| now.since(b.last) <= IDLE_TIMEOUT);
        let len = self.table.len();
        let keep = (len * 2).max(MIN_RETAINED_CAPACITY);
        if self.table.capacity() > keep * 2 {
            self.table.shrink_to(keep);
        }
        self.next_gc = now.plus(GC_INTERVAL);
        before - len
    }

    /// Runs a sweep if one is due at `now` (cheap otherwise). Returns how many were removed.
    pub fn tick(&mut self, now: Instant) -> usize {
        match self.next_deadline() {
            Some(t) if t <= now => self.gc(now),
            _ => 0,
        }
    }

    /// When [`RateLimiter::tick`] next has work to do; `None` while no source is tracked.
    pub fn next_deadline(&self) -> Option<Instant> {
        (!self.table.is_empty()).then_some(self.next_gc)
    }

    /// Number of sources tracked.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True if no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Entries the table can hold without reallocating (a measure of its memory).
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Most sources tracked at once.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Messages refused because the table was full (a subset of all refusals).
    pub fn refused_table_full(&self) -> u64 {
        self.refused_full
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const T0: Instant = Instant::from_nanos(1_000_000_000_000);

    fn at(ns: u64) -> Instant {
        Instant::from_nanos(T0.as_nanos() + ns)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn constants_match_the_kernel() {
        assert_eq!(PACKET_COST, 50_000_000);
        assert_eq!(TOKEN_MAX, 250_000_000);
        assert_eq!(MAX_ENTRIES, 8 * 8192);
    }

    #[test]
    fn burst_of_five_then_exactly_twenty_per_second() {
        let mut rl = RateLimiter::new();
        let a = ip("198.18.0.1");
        for i in 0..5 {
            assert!(rl.allow(T0, a), "burst message {i}");
        }
        assert!(!rl.allow(T0, a));
        // The next token is earned 50 ms later, to the nanosecond.
        assert!(!rl.allow(at(PACKET_COST - 1), a));
        assert!(rl.allow(at(PACKET_COST), a));
        assert!(!rl.allow(at(PACKET_COST), a));
        // Then a message every millisecond for 10 s: exactly 20 per second get through, each
        // exactly on a 50 ms boundary.
        let mut allowed = vec![];
        for ms in 1..=10_000u64 {
            let t = PACKET_COST + ms * 1_000_000;
            if rl.allow(at(t), a) {
                allowed.push(t);
            }
        }
        assert_eq!(allowed.len(), 200);
        assert!(
            allowed
                .iter()
                .enumerate()
                .all(|(i, &t)| t == PACKET_COST * (i as u64 + 2))
        );
    }

    #[test]
    fn refill_is_capped_at_the_burst() {
        let mut rl = RateLimiter::new();
        let a = ip("198.18.0.1");
        for _ in 0..5 {
            assert!(rl.allow(T0, a));
        }
        // Quiet for 120 ms: two tokens and 20 ms of credit.
        let t = 120_000_000;
        assert!(rl.allow(at(t), a));
        assert!(rl.allow(at(t), a));
        assert!(!rl.allow(at(t), a));
        assert!(!rl.allow(at(t + 30_000_000 - 1), a));
        assert!(rl.allow(at(t + 30_000_000), a));
        // Quiet for 10 s (no sweep): still only the burst of 5.
        let t = 10_000_000_000;
        for _ in 0..5 {
            assert!(rl.allow(at(t), a));
        }
        assert!(!rl.allow(at(t), a));
        // Refused messages cost nothing: hammering does not delay the next token.
        for ns in (0..PACKET_COST).step_by(1_000_000) {
            assert!(!rl.allow(at(t + ns), a));
        }
        assert!(rl.allow(at(t + PACKET_COST), a));
    }

    #[test]
    fn ipv6_sources_share_their_slash_64() {
        let mut rl = RateLimiter::new();
        let a = ip("2001:db8:1:2::1");
        let b = ip("2001:db8:1:2:ffff:ffff:ffff:fffe");
        let other = ip("2001:db8:1:3::1");
        for _ in 0..3 {
            assert!(rl.allow(T0, a));
        }
        assert!(rl.allow(T0, b));
        assert!(rl.allow(T0, b));
        assert!(!rl.allow(T0, a));
        assert!(!rl.allow(T0, b));
        for _ in 0..5 {
            assert!(rl.allow(T0, other));
        }
        assert_eq!(rl.len(), 2);
        assert_eq!(SourceKey::of(a), SourceKey::of(b));
        assert_ne!(SourceKey::of(a), SourceKey::of(other));
    }

    #[test]
    fn ipv4_sources_are_separate_per_address_and_mapped_ipv6_is_ipv4() {
        let mut rl = RateLimiter::new();
        let a = ip("198.18.0.1");
        let b = ip("198.18.0.2");
        for _ in 0..5 {
            assert!(rl.allow(T0, a));
        }
        assert!(!rl.allow(T0, a));
        for _ in 0..5 {
            assert!(rl.allow(T0, b));
        }
        let mapped = IpAddr::V6(Ipv4Addr::new(198, 18, 0, 1).to_ipv6_mapped());
        assert!(!rl.allow(T0, mapped));
        assert_eq!(SourceKey::of(mapped), SourceKey::V4(0xc612_0001));
        // ::ffff:0:0/96 only: an IPv4-compatible (::a.b.c.d) address stays IPv6.
        let compat = IpAddr::V6(Ipv6Addr::from(0xc612_0001u128));
        assert_eq!(SourceKey::of(compat), SourceKey::V6(0));
        assert_eq!(rl.len(), 2);
    }

    #[test]
    fn sweep_removes_idle_entries_and_frees_memory() {
        let mut rl = RateLimiter::new();
        assert_eq!(rl.next_deadline(), None);
        for i in 0..10_000u32 {
            assert!(rl.allow(T0, IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i))));
        }
        let busy = ip("198.19.0.1");
        assert!(rl.allow(T0, busy));
        let big = rl.capacity();
        assert!(big >= 10_001);
        assert_eq!(rl.next_deadline(), Some(at(1_000_000_000)));
        // Not due yet: tick does nothing.
        assert_eq!(rl.tick(at(999_999_999)), 0);
        assert_eq!(rl.len(), 10_001);
        // The busy source keeps its entry alive.
        assert!(rl.allow(at(600_000_000), busy));
        // Idle exactly 1 s: kept (the kernel removes only "more than one second").
        assert_eq!(rl.tick(at(1_000_000_000)), 0);
        assert_eq!(rl.next_deadline(), Some(at(2_000_000_000)));
        assert_eq!(rl.tick(at(1_999_999_999)), 0);
        // Idle 1 s + 1 ns: gone; the busy one (touched at 0.6 s) too by now.
        assert_eq!(rl.tick(at(2_000_000_000)), 10_001);
        assert!(rl.is_empty());
        assert_eq!(rl.next_deadline(), None);
        assert!(
            rl.capacity() <= 4 * MIN_RETAINED_CAPACITY && rl.capacity() < big / 16,
            "{} -> {}",
            big,
            rl.capacity()
        );
        // A swept source comes back with a fresh burst (it would have refilled anyway).
        for _ in 0..5 {
            assert!(rl.allow(at(2_000_000_000), busy));
        }
        assert!(!rl.allow(at(2_000_000_000), busy));
    }

    #[test]
    fn busy_source_survives_sweeps() {
        let mut rl = RateLimiter::new();
        let a = ip("198.18.0.1");
        for s in 0..5u64 {
            rl.allow(at(s * 1_000_000_000), a);
            rl.tick(at(s * 1_000_000_000 + 500_000_000));
            assert_eq!(rl.len(), 1);
        }
    }

    #[test]
    fn the_cap_holds_under_a_million_sources() {
        let mut rl = RateLimiter::new();
        let mut allowed = 0usize;
        let mut max_len = 0;
        let mut max_cap = 0;
        // One million distinct sources (IPv4 and IPv6 /64s) within one second.
        for i in 0..1_000_000u64 {
            let t = at(i * 999); // ~0.999 s in all
            let src = if i % 2 == 0 {
                IpAddr::V4(Ipv4Addr::from(0xc612_0000u32.wrapping_add(i as u32)))
            } else {
                IpAddr::V6(Ipv6Addr::from(
                    ((0x2001_0db8_0000_0000u128 + u128::from(i)) << 64) | 1,
                ))
            };
            if rl.allow(t, src) {
                allowed += 1;
            }
            max_len = max_len.max(rl.len());
            max_cap = max_cap.max(rl.capacity());
        }
        assert_eq!(allowed, MAX_ENTRIES);
        assert_eq!(max_len, MAX_ENTRIES);
        assert_eq!(rl.refused_table_full(), (1_000_000 - MAX_ENTRIES) as u64);
        // hashbrown: 65,536 entries fit in 131,072 slots (capacity 114,688); never more.
        assert!(max_cap < 2 * MAX_ENTRIES, "capacity {max_cap}");
        // A tracked source is still limited normally, not refused for the table being full: its
        // bucket (first message at 0 s) has refilled to the full burst by 0.999 s.
        let first = ip("198.18.0.0");
        for _ in 0..5 {
            assert!(rl.allow(at(999_000_000), first));
        }
        assert!(!rl.allow(at(999_000_000), first));
        // A full table sweeps on insert when a sweep is due, so a new source gets in once the
        // entries have been idle for more than 1 s, even if the caller never ticks.
        let late = ip("198.19.255.255");
        // Sweep due at 1 s, but nothing has been idle for more than 1 s yet.
        assert!(!rl.allow(at(1_000_000_000), late));
        // Entries are idle long enough now, but the next sweep is not due before 2 s.
        assert!(!rl.allow(at(1_500_000_000), late));
        assert!(rl.allow(at(2_000_000_000), late));
        assert_eq!(rl.len(), 1);
    }

    #[test]
    fn a_clock_that_steps_back_earns_nothing() {
        let mut rl = RateLimiter::new();
        let a = ip("198.18.0.1");
        for _ in 0..5 {
            assert!(rl.allow(at(1_000_000_000), a));
        }
        assert!(!rl.allow(at(0), a));
        assert!(!rl.allow(at(1_000_000_000 + PACKET_COST - 1), a));
        assert!(rl.allow(at(1_000_000_000 + PACKET_COST), a));
    }
}
