//! Unit tests of `allowedips.rs`.

use super::*;
use crate::proto::index::PeerId;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

impl<K: Key + std::fmt::Debug, T: Copy + Eq> Trie<K, T> {
    /// Checks the structural invariants; panics (test only) if one is broken.
    fn check(&self) {
        let mut reachable = 0usize;
        let mut values = 0usize;
        let mut stack = vec![(self.root, None::<(K, u8, usize)>)];
        while let Some((i, parent)) = stack.pop() {
            if i == NIL {
                continue;
            }
            let n = self.node(i).expect("dangling index");
            reachable += 1;
            assert!(n.cidr <= K::BITS);
            assert_eq!(n.key.masked(n.cidr), n.key, "unmasked key");
            if let Some((pk, pc, b)) = parent {
                assert!(n.cidr > pc, "child not longer than parent");
                assert_eq!(n.key.masked(pc), pk, "child outside parent");
                assert_eq!(n.key.bit(pc), b, "child in wrong slot");
            }
            match n.value {
                Some(_) => values += 1,
                None => assert!(
                    n.child[0] != NIL && n.child[1] != NIL,
                    "branch node without two children"
                ),
            }
            stack.push((n.child[0], Some((n.key, n.cidr, 0))));
            stack.push((n.child[1], Some((n.key, n.cidr, 1))));
        }
        assert_eq!(values, self.len);
        let mut free = 0usize;
        let mut f = self.free;
        while f != NIL {
            free += 1;
            f = self.node(f).expect("dangling free index").child[0];
        }
        assert_eq!(reachable + free, self.nodes.len(), "leaked nodes");
        assert!(reachable <= (2 * self.len).max(1));
    }
}

impl<T: Copy + Eq> AllowedIps<T> {
    fn check(&self) {
        self.v4.check();
        self.v6.check();
    }

    fn node_bytes(&self) -> usize {
        self.v4.nodes.capacity() * size_of::<Node<u32, T>>()
            + self.v6.nodes.capacity() * size_of::<Node<V6Key, T>>()
    }
}

#[test]
fn node_sizes() {
    assert_eq!(size_of::<Node<u32, PeerId>>(), 24);
    assert_eq!(size_of::<Node<V6Key, PeerId>>(), 40);
}

#[test]
fn basic_lpm_v4() {
    let mut t = AllowedIps::new();
    t.insert(ip("10.0.0.0"), 8, 1u32).unwrap();
    t.insert(ip("10.1.0.0"), 16, 2).unwrap();
    t.insert(ip("10.1.2.0"), 24, 3).unwrap();
    t.insert(ip("10.1.2.3"), 32, 4).unwrap();
    t.insert(ip("192.168.4.0"), 22, 5).unwrap();
    t.check();
    assert_eq!(t.len(), 5);
    assert_eq!(t.lookup(ip("10.9.9.9")), Some(1));
    assert_eq!(t.lookup(ip("10.1.9.9")), Some(2));
    assert_eq!(t.lookup(ip("10.1.2.9")), Some(3));
    assert_eq!(t.lookup(ip("10.1.2.3")), Some(4));
    assert_eq!(t.lookup(ip("10.1.2.4")), Some(3));
    assert_eq!(t.lookup(ip("192.168.7.255")), Some(5));
    assert_eq!(t.lookup(ip("192.168.8.0")), None);
    assert_eq!(t.lookup(ip("192.168.3.255")), None);
    assert_eq!(t.lookup(ip("11.0.0.0")), None);
    assert_eq!(t.lookup_v4("10.1.2.3".parse().unwrap()), Some(4));
    // The other family is separate.
    assert_eq!(t.lookup(ip("::")), None);
    assert_eq!(t.get(ip("10.1.2.77"), 24), Some(3));
    assert_eq!(t.get(ip("10.1.0.0"), 15), None);
}

#[test]
fn basic_lpm_v6() {
    let mut t = AllowedIps::new();
    t.insert(ip("2001:db8::"), 32, 1u32).unwrap();
    t.insert(ip("2001:db8:1::"), 48, 2).unwrap();
    t.insert(ip("2001:db8:1:2::"), 64, 3).unwrap();
    t.insert(ip("2001:db8:1:2::1"), 128, 4).unwrap();
    t.insert(ip("fd00::"), 8, 5).unwrap();
    t.check();
    assert_eq!(t.lookup(ip("2001:db8:ffff::1")), Some(1));
    assert_eq!(t.lookup(ip("2001:db8:1:ffff::1")), Some(2));
    assert_eq!(t.lookup(ip("2001:db8:1:2::2")), Some(3));
    assert_eq!(t.lookup(ip("2001:db8:1:2::1")), Some(4));
    assert_eq!(t.lookup(ip("fdff:ffff::1")), Some(5));
    assert_eq!(t.lookup(ip("fe00::1")), None);
    assert_eq!(t.lookup(ip("2001:db9::")), None);
    assert_eq!(t.lookup_v6("2001:db8:1:2::1".parse().unwrap()), Some(4));
    assert_eq!(t.lookup(ip("32.1.13.184")), None);
}

#[test]
fn default_routes_and_full_length() {
    let mut t = AllowedIps::new();
    t.insert(ip("0.0.0.0"), 0, 1u32).unwrap();
    t.insert(ip("::"), 0, 2).unwrap();
    assert_eq!(t.lookup(ip("1.2.3.4")), Some(1));
    assert_eq!(t.lookup(ip("255.255.255.255")), Some(1));
    assert_eq!(t.lookup(ip("0.0.0.0")), Some(1));
    assert_eq!(t.lookup(ip("::1")), Some(2));
    assert_eq!(
        t.lookup(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
        Some(2)
    );
    t.insert(ip("1.2.3.4"), 32, 3).unwrap();
    t.insert(ip("255.255.255.255"), 32, 4).unwrap();
    t.insert(ip("::1"), 128, 5).unwrap();
    t.insert(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 128, 6)
        .unwrap();
    t.check();
    assert_eq!(t.lookup(ip("1.2.3.4")), Some(3));
    assert_eq!(t.lookup(ip("1.2.3.5")), Some(1));
    assert_eq!(t.lookup(ip("255.255.255.255")), Some(4));
    assert_eq!(t.lookup(ip("::1")), Some(5));
    assert_eq!(t.lookup(ip("::2")), Some(2));
    assert_eq!(
        t.lookup(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
        Some(6)
    );
    // Host bits of a default route are masked away.
    t.insert(ip("9.9.9.9"), 0, 7).unwrap();
    assert_eq!(t.get(ip("0.0.0.0"), 0), Some(7));
    assert_eq!(t.lookup(ip("8.8.8.8")), Some(7));
    assert_eq!(t.len(), 6);
    assert!(t.remove(ip("0.0.0.0"), 0, 7));
    assert_eq!(t.lookup(ip("8.8.8.8")), None);
    assert_eq!(t.lookup(ip("1.2.3.4")), Some(3));
    t.check();
}

#[test]
fn overlapping_in_any_order() {
    let prefixes = [
        ("10.0.0.0", 8, 1u32),
        ("10.128.0.0", 9, 2),
        ("10.0.0.0", 9, 3),
        ("10.64.0.0", 10, 4),
        ("10.64.0.0", 24, 5),
        ("10.64.0.128", 25, 6),
        ("0.0.0.0", 1, 7),
    ];
    // Every rotation of the insertion order must give the same answers.
    for r in 0..prefixes.len() {
        let mut t = AllowedIps::new();
        for k in 0..prefixes.len() {
            let (a, c, v) = prefixes[(k + r) % prefixes.len()];
            t.insert(ip(a), c, v).unwrap();
            t.check();
        }
        assert_eq!(t.lookup(ip("10.200.0.1")), Some(2));
        assert_eq!(t.lookup(ip("10.1.0.1")), Some(3));
        assert_eq!(t.lookup(ip("10.64.1.1")), Some(4));
        assert_eq!(t.lookup(ip("10.64.0.1")), Some(5));
        assert_eq!(t.lookup(ip("10.64.0.200")), Some(6));
        assert_eq!(t.lookup(ip("11.0.0.0")), Some(7));
        assert_eq!(t.lookup(ip("128.0.0.0")), None);
        let all: Vec<_> = t.entries().into_iter().map(|(a, c, _)| (a, c)).collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted, "entries are in address order");
    }
}

#[test]
fn reinsert_moves_prefix() {
    let mut t = AllowedIps::new();
    t.insert(ip("10.0.0.0"), 24, 1u32).unwrap();
    t.insert(ip("10.0.0.0"), 16, 1).unwrap();
    t.insert(ip("10.0.0.9"), 24, 2).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.lookup(ip("10.0.0.1")), Some(2));
    assert_eq!(t.lookup(ip("10.0.1.1")), Some(1));
    assert_eq!(
        t.iter_by_value(1).collect::<Vec<_>>(),
        vec![(ip("10.0.0.0"), 16)]
    );
    assert_eq!(
        t.iter_by_value(2).collect::<Vec<_>>(),
        vec![(ip("10.0.0.0"), 24)]
    );
    // The old owner can no longer remove it.
    assert!(!t.remove(ip("10.0.0.0"), 24, 1));
    assert_eq!(t.lookup(ip("10.0.0.1")), Some(2));
    // Re-inserting for the same owner is idempotent.
    t.insert(ip("10.0.0.0"), 24, 2).unwrap();
    assert_eq!(t.len(), 2);
    t.check();
}

#[test]
fn insert_onto_branch_node() {
    let mut t = AllowedIps::new();
    t.insert(ip("10.0.0.0"), 24, 1u32).unwrap();
    t.insert(ip("10.0.1.0"), 24, 2).unwrap();
    // 10.0.0.0/23 now exists as a valueless branch node; giving it a value counts it.
    assert_eq!(t.len(), 2);
    t.insert(ip("10.0.0.0"), 23, 3).unwrap();
    assert_eq!(t.len(), 3);
    t.check();
    assert!(t.remove(ip("10.0.0.0"), 23, 3));
    assert_eq!(t.len(), 2);
    t.check();
    assert_eq!(t.lookup(ip("10.0.0.5")), Some(1));
    assert_eq!(t.lookup(ip("10.0.1.5")), Some(2));
}

#[test]
fn remove_only_by_owner() {
    let mut t = AllowedIps::new();
    t.insert(ip("10.0.0.0"), 8, 1u32).unwrap();
    t.insert(ip("10.1.0.0"), 16, 2).unwrap();
    t.insert(ip("fd00::"), 64, 2).unwrap();
    assert!(!t.remove(ip("10.1.0.0"), 16, 1));
    assert!(!t.remove(ip("10.1.0.0"), 17, 2));
    assert!(!t.remove(ip("10.1.0.0"), 15, 2));
    assert!(!t.remove(ip("10.1.0.0"), 33, 2));
    assert!(!t.remove(ip("fd00::"), 129, 2));
    assert!(!t.remove(ip("fd00::"), 64, 1));
    assert_eq!(t.lookup(ip("10.1.0.1")), Some(2));
    // Host bits are ignored when removing too.
    assert!(t.remove(ip("10.1.99.99"), 16, 2));
    assert!(!t.remove(ip("10.1.0.0"), 16, 2));
    assert_eq!(t.lookup(ip("10.1.0.1")), Some(1));
    assert!(t.remove(ip("fd00::1"), 64, 2));
    assert_eq!(t.lookup(ip("fd00::1")), None);
    assert_eq!(t.len(), 1);
    t.check();
    assert!(t.remove(ip("10.0.0.0"), 8, 1));
    assert!(t.is_empty());
    assert_eq!(
        t.v4.nodes.capacity(),
        0,
        "empty family releases its storage"
    );
    t.check();
}

#[test]
fn remove_by_value_leaves_others() {
    let mut t = AllowedIps::new();
    t.insert(ip("10.0.0.0"), 8, 1u32).unwrap();
    t.insert(ip("10.1.0.0"), 16, 2).unwrap();
    t.insert(ip("10.1.1.0"), 24, 1).unwrap();
    t.insert(ip("10.1.1.1"), 32, 2).unwrap();
    t.insert(ip("fd00::"), 8, 1).unwrap();
    t.insert(ip("fd00::1"), 128, 2).unwrap();
    t.insert(ip("fd00::2"), 128, 3).unwrap();
    assert_eq!(t.remove_by_value(1), 3);
    t.check();
    assert_eq!(t.len(), 4);
    assert_eq!(t.lookup(ip("10.2.0.0")), None);
    assert_eq!(t.lookup(ip("10.1.1.2")), Some(2));
    assert_eq!(t.lookup(ip("10.1.1.1")), Some(2));
    assert_eq!(t.lookup(ip("fd00::1")), Some(2));
    assert_eq!(t.lookup(ip("fd00::2")), Some(3));
    assert_eq!(t.lookup(ip("fd00::3")), None);
    assert_eq!(t.iter_by_value(1).count(), 0);
    assert_eq!(
        t.iter_by_value(2).collect::<Vec<_>>(),
        vec![
            (ip("10.1.0.0"), 16),
            (ip("10.1.1.1"), 32),
            (ip("fd00::1"), 128)
        ]
    );
    assert_eq!(t.remove_by_value(9), 0);
    assert_eq!(t.remove_by_value(2), 3);
    assert_eq!(t.remove_by_value(3), 1);
    assert!(t.is_empty());
    t.check();
    t.insert(ip("10.0.0.0"), 8, 4).unwrap();
    t.clear();
    assert!(t.is_empty());
    assert_eq!(t.lookup(ip("10.0.0.1")), None);
}

#[test]
fn host_bits_masked() {
    let mut t = AllowedIps::new();
    t.insert(ip("198.19.0.77"), 24, 1u32).unwrap();
    t.insert(ip("2001:db8::dead:beef"), 64, 2).unwrap();
    assert_eq!(
        t.entries(),
        vec![(ip("198.19.0.0"), 24, 1), (ip("2001:db8::"), 64, 2)]
    );
    assert_eq!(t.lookup(ip("198.19.0.1")), Some(1));
    assert_eq!(t.lookup(ip("2001:db8::1")), Some(2));
    // Same prefix, different host bits: a move, not a second entry.
    t.insert(ip("198.19.0.200"), 24, 3).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t.lookup(ip("198.19.0.1")), Some(3));
}

#[test]
fn cidr_out_of_range() {
    let mut t = AllowedIps::new();
    assert_eq!(
        t.insert(ip("10.0.0.0"), 33, 1u32),
        Err(AllowedIpsError::CidrOutOfRange { cidr: 33, max: 32 })
    );
    assert_eq!(
        t.insert(ip("::"), 129, 1),
        Err(AllowedIpsError::CidrOutOfRange {
            cidr: 129,
            max: 128
        })
    );
    assert_eq!(
        t.insert(ip("::"), 255, 1),
        Err(AllowedIpsError::CidrOutOfRange {
            cidr: 255,
            max: 128
        })
    );
    assert!(t.is_empty());
    assert_eq!(t.get(ip("10.0.0.0"), 33), None);
    assert!(t.insert(ip("10.0.0.0"), 32, 1).is_ok());
    assert!(t.insert(ip("::"), 128, 1).is_ok());
    let e = t.insert(ip("1.2.3.4"), 40, 1).unwrap_err();
    assert!(e.to_string().contains("/40"));
}

#[test]
fn ipv4_mapped_not_folded() {
    let mut t = AllowedIps::new();
    t.insert(ip("10.0.0.0"), 8, 1u32).unwrap();
    assert_eq!(t.lookup(ip("::ffff:10.0.0.1")), None);
    t.insert(ip("::ffff:0.0.0.0"), 96, 2).unwrap();
    assert_eq!(t.lookup(ip("::ffff:10.0.0.1")), Some(2));
    assert_eq!(t.lookup(ip("10.0.0.1")), Some(1));
    assert_eq!(t.lookup(ip("11.0.0.1")), None);
}

fn v4_packet(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0u8; 28];
    p[0] = 0x45;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p
}

fn v6_packet(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut p = vec![0u8; 48];
    p[0] = 0x60;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p
}

#[test]
fn packet_helpers() {
    let mut t = AllowedIps::new();
    t.insert(ip("10.0.0.0"), 24, 1u32).unwrap();
    t.insert(ip("10.0.1.0"), 24, 2).unwrap();
    t.insert(ip("fd00::"), 64, 3).unwrap();
    t.insert(ip("fd01::"), 64, 4).unwrap();
    let p = v4_packet([10, 0, 0, 5], [10, 0, 1, 5]);
    assert_eq!(packet_src(&p), Some(ip("10.0.0.5")));
    assert_eq!(packet_dst(&p), Some(ip("10.0.1.5")));
    assert_eq!(t.lookup_packet_src(&p), Some(1));
    assert_eq!(t.lookup_packet_dst(&p), Some(2));
    assert_eq!(t.lookup_packet_dst(&p[..20]), Some(2));
    assert_eq!(t.lookup_packet_dst(&p[..19]), None);
    let p = v6_packet("fd00::1".parse().unwrap(), "fd01::1".parse().unwrap());
    assert_eq!(t.lookup_packet_src(&p), Some(3));
    assert_eq!(t.lookup_packet_dst(&p), Some(4));
    assert_eq!(t.lookup_packet_src(&p[..40]), Some(3));
    assert_eq!(t.lookup_packet_src(&p[..39]), None);
    let mut bad = p.clone();
    bad[0] = 0x50;
    assert_eq!(t.lookup_packet_dst(&bad), None);
}

#[test]
fn packet_helpers_on_garbage() {
    let mut t = AllowedIps::new();
    t.insert(ip("0.0.0.0"), 0, 1u32).unwrap();
    t.insert(ip("::"), 0, 2).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for len in 0..64usize {
        for first in 0..=255u8 {
            for fill in [0x00u8, 0xff, 0x45, 0x60, 0xaa] {
                let mut p = vec![fill; len];
                if let Some(b) = p.first_mut() {
                    *b = first;
                }
                let (want_src, want_dst) = match first >> 4 {
                    4 if len >= 20 => (Some(1), Some(1)),
                    6 if len >= 40 => (Some(2), Some(2)),
                    _ => (None, None),
                };
                assert_eq!(t.lookup_packet_src(&p), want_src, "len {len} {first:#x}");
                assert_eq!(t.lookup_packet_dst(&p), want_dst, "len {len} {first:#x}");
                assert_eq!(packet_src(&p).is_some(), want_src.is_some());
                assert_eq!(packet_dst(&p).is_some(), want_dst.is_some());
            }
        }
        for _ in 0..32 {
            let mut p = vec![0u8; len];
            rng.fill_bytes(&mut p);
            let _ = t.lookup_packet_src(&p);
            let _ = t.lookup_packet_dst(&p);
        }
    }
}

/// The obviously correct reference: a list of (masked prefix, cidr, value).
#[derive(Default)]
struct Naive {
    v: Vec<(IpAddr, u8, u32)>,
}

fn naive_mask(a: IpAddr, cidr: u8) -> IpAddr {
    match a {
        IpAddr::V4(a) => {
            let m = if cidr == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(cidr))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if cidr == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(cidr))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl Naive {
    fn insert(&mut self, a: IpAddr, cidr: u8, value: u32) {
        let a = naive_mask(a, cidr);
        match self.v.iter_mut().find(|e| e.0 == a && e.1 == cidr) {
            Some(e) => e.2 = value,
            None => self.v.push((a, cidr, value)),
        }
    }

    fn remove(&mut self, a: IpAddr, cidr: u8, value: u32) -> bool {
        let a = naive_mask(a, cidr);
        match self.v.iter().position(|e| *e == (a, cidr, value)) {
            Some(i) => {
                self.v.swap_remove(i);
                true
            }
            None => false,
        }
    }

    fn lookup(&self, a: IpAddr) -> Option<u32> {
        self.v
            .iter()
            .filter(|e| e.0.is_ipv4() == a.is_ipv4() && naive_mask(a, e.1) == e.0)
            .max_by_key(|e| e.1)
            .map(|e| e.2)
    }
}

/// Addresses clustered around a few bases, so that prefixes nest and diverge at all depths.
struct Gen {
    rng: ChaCha8Rng,
    bases4: Vec<u32>,
    bases6: Vec<u128>,
}

impl Gen {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bases4 = (0..8).map(|_| rng.next_u32()).collect();
        let bases6 = (0..8)
            .map(|_| (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()))
            .collect();
        Gen {
            rng,
            bases4,
            bases6,
        }
    }

    fn below(&mut self, n: u32) -> u32 {
        self.rng.next_u32() % n
    }

    fn addr(&mut self) -> IpAddr {
        let keep = self.below(129);
        if self.below(2) == 0 {
            let j = self.below(8) as usize;
            let base = self.bases4[j];
            let r = self.rng.next_u32();
            let keep = keep.min(32);
            let low = u32::MAX.checked_shr(keep).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(base ^ (r & low)))
        } else {
            let j = self.below(8) as usize;
            let base = self.bases6[j];
            let r = (u128::from(self.rng.next_u64()) << 64) | u128::from(self.rng.next_u64());
            let low = u128::MAX.checked_shr(keep).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(base ^ (r & low)))
        }
    }

    fn cidr_for(&mut self, a: IpAddr) -> u8 {
        let max = if a.is_ipv4() { 33 } else { 129 };
        self.below(max) as u8
    }
}

#[test]
fn differential_against_linear_scan() {
    let mut g = Gen::new(0x5eed_a11d);
    let mut t = AllowedIps::new();
    let mut n = Naive::default();
    let mut removed = 0usize;
    let mut by_value = 0usize;
    for step in 0..10_000 {
        match g.below(100) {
            0..=59 => {
                let a = g.addr();
                let c = g.cidr_for(a);
                let v = g.below(40);
                t.insert(a, c, v).unwrap();
                n.insert(a, c, v);
            }
            60..=74 if !n.v.is_empty() => {
                // Remove an existing prefix, with the right owner or a random one.
                let (a, c, mut v) = n.v[g.below(n.v.len() as u32) as usize];
                if g.below(2) == 0 {
                    v = g.below(40);
                }
                let want = n.remove(a, c, v);
                assert_eq!(t.remove(a, c, v), want, "remove {a}/{c} by {v}");
                removed += usize::from(want);
            }
            75..=84 => {
                let a = g.addr();
                let c = g.cidr_for(a);
                let v = g.below(40);
                assert_eq!(t.remove(a, c, v), n.remove(a, c, v));
            }
            85 if step % 10 == 0 => {
                let v = g.below(40);
                let before = n.v.len();
                n.v.retain(|e| e.2 != v);
                assert_eq!(t.remove_by_value(v), before - n.v.len());
                by_value += 1;
            }
            _ => {
                for _ in 0..20 {
                    let a = g.addr();
                    assert_eq!(t.lookup(a), n.lookup(a), "lookup {a} at step {step}");
                }
                // Addresses inside stored prefixes.
                for _ in 0..10 {
                    if n.v.is_empty() {
                        break;
                    }
                    let (p, c, _) = n.v[g.below(n.v.len() as u32) as usize];
                    let a = g.addr();
                    let inside = match (p, a) {
                        (IpAddr::V4(p), IpAddr::V4(a)) => {
                            let m = u32::MAX.checked_shr(u32::from(c)).unwrap_or(0);
                            IpAddr::V4(Ipv4Addr::from(u32::from(p) | (u32::from(a) & m)))
                        }
                        (IpAddr::V6(p), IpAddr::V6(a)) => {
                            let m = u128::MAX.checked_shr(u32::from(c)).unwrap_or(0);
                            IpAddr::V6(Ipv6Addr::from(u128::from(p) | (u128::from(a) & m)))
                        }
                        _ => p,
                    };
                    assert_eq!(t.lookup(inside), n.lookup(inside), "lookup {inside}");
                }
            }
        }
        assert_eq!(t.len(), n.v.len());
        if step % 97 == 0 {
            t.check();
            let mut want = n.v.clone();
            want.sort();
            assert_eq!(t.entries(), want);
            for v in 0..40 {
                let mine: Vec<_> = t.iter_by_value(v).collect();
                let theirs: Vec<_> = want
                    .iter()
                    .filter(|e| e.2 == v)
                    .map(|e| (e.0, e.1))
                    .collect();
                assert_eq!(mine, theirs);
            }
        }
    }
    assert!(n.v.len() > 2000, "the table grew: {}", n.v.len());
    assert!(removed > 300, "removals happened: {removed}");
    assert!(by_value > 5, "remove_by_value happened: {by_value}");
    t.check();
    for _ in 0..20_000 {
        let a = g.addr();
        assert_eq!(t.lookup(a), n.lookup(a));
    }
    // Drain everything through the owner-checked path.
    for (a, c, v) in n.v.clone() {
        assert!(t.remove(a, c, v));
    }
    assert!(t.is_empty());
    t.check();
}

#[test]
fn scale_10k_values() {
    const N: u32 = 10_000;
    let mut t = AllowedIps::new();
    for i in 0..N {
        let v4 = Ipv4Addr::from(0x0a00_0000 | (i << 8));
        let v6 = Ipv6Addr::from((0xfd00_u128 << 112) | (u128::from(i) << 64));
        t.insert(IpAddr::V4(v4), 24, PeerId(i)).unwrap();
        t.insert(IpAddr::V6(v6), 64, PeerId(i)).unwrap();
    }
    t.insert(ip("0.0.0.0"), 0, PeerId(N)).unwrap();
    assert_eq!(t.len(), 2 * N as usize + 1);
    t.check();
    for i in 0..N {
        let v4 = Ipv4Addr::from(0x0a00_0000 | (i << 8) | (i & 0xff));
        let v6 = Ipv6Addr::from((0xfd00_u128 << 112) | (u128::from(i) << 64) | 0x1234);
        assert_eq!(t.lookup_v4(v4), Some(PeerId(i)));
        assert_eq!(t.lookup_v6(v6), Some(PeerId(i)));
    }
    assert_eq!(
        t.lookup(ip("10.39.16.1")),
        Some(PeerId(N)),
        "past the last /24"
    );
    assert_eq!(t.lookup(ip("fd00:0:0:2710::1")), None);
    let bytes = t.node_bytes();
    assert!(
        bytes < 3 << 20,
        "{bytes} bytes of nodes for {} prefixes",
        t.len()
    );
    // Removing half the peers keeps the other half intact.
    for i in (0..N).step_by(2) {
        assert_eq!(t.remove_by_value(PeerId(i)), 2);
    }
    t.check();
    for i in 0..N {
        let v4 = Ipv4Addr::from(0x0a00_0000 | (i << 8) | 7);
        let want = if i % 2 == 0 { PeerId(N) } else { PeerId(i) };
        assert_eq!(t.lookup_v4(v4), Some(want));
    }
}
