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
mod tests;
