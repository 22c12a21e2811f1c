//! Unit tests of `ratelimiter.rs`.

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
