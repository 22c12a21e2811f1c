//! Cryptokey routing: the AllowedIPs table (whitepaper §2, kernel `allowedips.c`).
//!
//! Maps IP prefixes to a value (the daemon uses [`crate::proto::index::PeerId`]). Outbound, the
//! destination of a plaintext packet picks the peer to encrypt to (longest prefix match);
//! inbound, the source of a decrypted packet must map back to the peer that sent it.
//!
//! # Design
//!
//! One path-compressed binary (Patricia) trie per address family, as in the kernel. IPv4 and
//! IPv6 are separate: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is looked up in the IPv6
//! trie and never matches an IPv4 prefix.
//!
//! Every node holds a masked prefix (`key`, `cidr`), an optional value and two children. A child
//! in slot `b` extends its parent's prefix and has bit `b` at position `parent.cidr`. Nodes
//! without a value only exist as branch points with two children (the kernel's "intermediate"
//! nodes), so `n` prefixes need at most `2n - 1` nodes, and every step of a lookup goes strictly
//! deeper into the prefix: a lookup visits at most `bits + 1` nodes, `O(prefix length)`, and
//! allocates nothing.
//!
//! Nodes live in one `Vec` per family and refer to each other by `u32` index instead of pointer
//! (a free list recycles removed slots; a family's storage is released when it becomes empty).
//!
//! # Memory
//!
//! With a 4-byte value such as `PeerId`, an IPv4 node is **24 bytes** (4 key + 2×4 children +
//! 8 `Option<PeerId>` + 1 cidr, padded) and an IPv6 node **40 bytes** (16 key, stored as two
//! `u64` to avoid `u128`'s 16-byte alignment, + 8 + 8 + 1, padded). With at most two nodes per
//! prefix that is ≤ 48 bytes per IPv4 prefix and ≤ 80 bytes per IPv6 prefix (plus up to 2× `Vec`
//! growth slack): 10,000 peers with one IPv4 and one IPv6 prefix each take ≤ 1.3 MB of nodes
//! (≤ 2.6 MB with worst-case slack). The kernel's pointer-based node is about 100 bytes.
//!
//! # Complexity
//!
//! `lookup*`, `insert`, `remove` and `get` are `O(bits)`. `remove_by_value`, `retain`,
//! `iter_by_value` and `entries` walk the whole table (`O(n)`): the value type is only
//! `Copy + Eq`, so there is no per-value index. At 20,000 prefixes one walk is tens of µs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// "No node" in a child or root link. Never a valid index: the arena stays below it.
const NIL: u32 = u32::MAX;

/// Errors from [`AllowedIps::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AllowedIpsError {
    /// The prefix length is longer than the address (more than 32 for IPv4, 128 for IPv6).
    #[error("prefix length /{cidr} is longer than the address ({max} bits)")]
    CidrOutOfRange {
        /// The prefix length given.
        cidr: u8,
        /// The address family's width in bits.
        max: u8,
    },
    /// The table holds as many nodes as a `u32` index can address (about 4 billion).
    #[error("the AllowedIPs table is full")]
    Full,
}

/// An address family's key: the address as an unsigned integer, most significant bit first.
trait Key: Copy + Eq {
    /// Width of the address in bits.
    const BITS: u8;
    /// The address with everything after the first `cidr` bits cleared.
    fn masked(self, cidr: u8) -> Self;
    /// Bit `i` counted from the most significant (0 or 1); `i < BITS`.
    fn bit(self, i: u8) -> usize;
    /// How many leading bits `self` and `other` share (`BITS` if equal).
    fn common_prefix(self, other: Self) -> u8;
    /// The address as an [`IpAddr`].
    fn to_ip(self) -> IpAddr;
}

impl Key for u32 {
    const BITS: u8 = 32;

    #[inline]
    fn masked(self, cidr: u8) -> Self {
        // A shift by 32 (cidr 0) is out of range for `<<`; it means "keep nothing".
        self & u32::MAX
            .checked_shl(32u32.saturating_sub(u32::from(cidr)))
            .unwrap_or(0)
    }

    #[inline]
    fn bit(self, i: u8) -> usize {
        (self.wrapping_shl(u32::from(i)) >> 31) as usize
    }

    #[inline]
    fn common_prefix(self, other: Self) -> u8 {
        // At most 32: fits.
        (self ^ other).leading_zeros() as u8
    }

    fn to_ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
}

/// An IPv6 key, as two `u64` halves (high, low) so that a node is 8-byte rather than 16-byte
/// aligned; arithmetic is done on the `u128` it stands for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct V6Key([u64; 2]);

impl V6Key {
    #[inline]
    fn from_u128(v: u128) -> Self {
        V6Key([(v >> 64) as u64, v as u64])
    }

    #[inline]
    fn get(self) -> u128 {
        (u128::from(self.0[0]) << 64) | u128::from(self.0[1])
    }
}

impl Key for V6Key {
    const BITS: u8 = 128;

    #[inline]
    fn masked(self, cidr: u8) -> Self {
        let mask = u128::MAX
            .checked_shl(128u32.saturating_sub(u32::from(cidr)))
            .unwrap_or(0);
        V6Key::from_u128(self.get() & mask)
    }

    #[inline]
    fn bit(self, i: u8) -> usize {
        (self.get().wrapping_shl(u32::from(i)) >> 127) as usize
    }

    #[inline]
    fn common_prefix(self, other: Self) -> u8 {
        // At most 128: fits.
        (self.get() ^ other.get()).leading_zeros() as u8
    }

    fn to_ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self.get()))
    }
}

/// One trie node. See the module documentation for its size.
#[derive(Clone, Copy, Debug)]
struct Node<K, T> {
    /// The prefix, masked to `cidr` bits.
    key: K,
    /// Arena indices of the children (`NIL` if none); slot `b` has bit `b` at position `cidr`.
    /// On the free list, `child[0]` links to the next free slot.
    child: [u32; 2],
    /// The owner of this prefix; `None` for a branch node (which then has two children).
    value: Option<T>,
    /// Prefix length.
    cidr: u8,
}

impl<K: Copy, T: Copy> Node<K, T> {
    fn new(key: K, cidr: u8, value: Option<T>) -> Self {
        Node {
            key,
            child: [NIL; 2],
            value,
            cidr,
        }
    }

    #[inline]
    fn child(&self, b: usize) -> u32 {
        if b == 0 { self.child[0] } else { self.child[1] }
    }

    #[inline]
    fn set_child(&mut self, b: usize, c: u32) {
        if b == 0 {
            self.child[0] = c;
        } else {
            self.child[1] = c;
        }
    }
}

/// Where a node hangs: the root pointer, or slot `b` of node `p`.
#[derive(Clone, Copy, Debug)]
enum Link {
    Root,
    Child(u32, usize),
}

/// The trie of one address family.
#[derive(Clone, Debug)]
struct Trie<K, T> {
    nodes: Vec<Node<K, T>>,
    root: u32,
    /// Head of the free list threaded through `child[0]`.
    free: u32,
    /// Number of nodes holding a value.
    len: usize,
}

impl<K: Key, T: Copy + Eq> Trie<K, T> {
    const fn new() -> Self {
        Trie {
            nodes: Vec::new(),
            root: NIL,
            free: NIL,
            len: 0,
        }
    }

    #[inline]
    fn node(&self, i: u32) -> Option<&Node<K, T>> {
        self.nodes.get(i as usize)
    }

    /// Longest-prefix match of a full address.
    #[inline]
    fn lookup(&self, addr: K) -> Option<T> {
        let mut best = None;
        let mut i = self.root;
        // `NIL` is never a valid index, so a missing child ends the walk.
        while let Some(n) = self.node(i) {
            if addr.masked(n.cidr) != n.key {
                break;
            }
            if n.value.is_some() {
                best = n.value;
            }
            if n.cidr >= K::BITS {
                break;
            }
            i = n.child(addr.bit(n.cidr));
        }
        best
    }

    /// The owner of exactly `prefix/cidr` (`prefix` already masked).
    fn get(&self, prefix: K, cidr: u8) -> Option<T> {
        let mut i = self.root;
        while let Some(n) = self.node(i) {
            if n.cidr > cidr || prefix.masked(n.cidr) != n.key {
                return None;
            }
            if n.cidr == cidr {
                return n.value;
            }
            i = n.child(prefix.bit(n.cidr));
        }
        None
    }

    fn alloc(&mut self, node: Node<K, T>) -> Result<u32, AllowedIpsError> {
        let i = self.free;
        if let Some(slot) = self.nodes.get_mut(i as usize) {
            self.free = slot.child[0];
            *slot = node;
            return Ok(i);
        }
        let i = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&i| i < NIL)
            .ok_or(AllowedIpsError::Full)?;
        self.nodes.push(node);
        Ok(i)
    }

    fn release(&mut self, i: u32) {
        let free = self.free;
        if let Some(slot) = self.nodes.get_mut(i as usize) {
            slot.value = None;
            slot.child = [free, NIL];
            self.free = i;
        }
    }

    fn set_link(&mut self, link: Link, target: u32) {
        match link {
            Link::Root => self.root = target,
            Link::Child(p, b) => {
                if let Some(n) = self.nodes.get_mut(p as usize) {
                    n.set_child(b, target);
                }
            }
        }
    }

    /// Drops the storage once nothing is left (no value ⇒ no branch nodes either).
    fn reset_if_empty(&mut self) {
        if self.len == 0 {
            *self = Trie::new();
        }
    }

    fn insert(&mut self, key: K, cidr: u8, value: T) -> Result<(), AllowedIpsError> {
        let key = key.masked(cidr);
        let mut link = Link::Root;
        let mut cur = self.root;
        loop {
            let Some(n) = self.node(cur).copied() else {
                // Empty slot: hang a new leaf here.
                let leaf = self.alloc(Node::new(key, cidr, Some(value)))?;
                self.set_link(link, leaf);
                self.len += 1;
                return Ok(());
            };
            let common = key.common_prefix(n.key).min(cidr).min(n.cidr);
            if common == n.cidr && n.cidr == cidr {
                // The prefix exists (maybe as a branch node): it now belongs to `value`.
                if let Some(slot) = self.nodes.get_mut(cur as usize) {
                    if slot.value.is_none() {
                        self.len += 1;
                    }
                    slot.value = Some(value);
                }
                return Ok(());
            }
            if common == n.cidr {
                // `n` is a strictly shorter prefix of ours (so `n.cidr < cidr <= BITS`): descend.
                let b = key.bit(n.cidr);
                link = Link::Child(cur, b);
                cur = n.child(b);
                continue;
            }
            let mut fresh = Node::new(key, cidr, Some(value));
            if common == cidr {
                // Ours is a strictly shorter prefix of `n`'s: insert above `n`.
                fresh.set_child(n.key.bit(cidr), cur);
                let i = self.alloc(fresh)?;
                self.set_link(link, i);
                self.len += 1;
                return Ok(());
            }
            // The prefixes differ at bit `common` (< both lengths): a branch node holds both.
            let leaf = self.alloc(fresh)?;
            let mut branch = Node::new(key.masked(common), common, None);
            branch.set_child(key.bit(common), leaf);
            branch.set_child(n.key.bit(common), cur);
            let b = match self.alloc(branch) {
                Ok(b) => b,
                Err(e) => {
                    self.release(leaf);
                    return Err(e);
                }
            };
            self.set_link(link, b);
            self.len += 1;
            return Ok(());
        }
    }

    /// Removes node `i` (hanging at `link`) if it has no value and fewer than two children,
    /// hoisting its only child. Returns whether it was removed.
    fn compact(&mut self, link: Link, i: u32) -> bool {
        let Some(n) = self.node(i).copied() else {
            return false;
        };
        if n.value.is_some() {
            return false;
        }
        let replacement = match n.child {
            [NIL, NIL] => NIL,
            [c, NIL] | [NIL, c] => c,
            _ => return false,
        };
        self.set_link(link, replacement);
        self.release(i);
        true
    }

    fn remove(&mut self, key: K, cidr: u8, value: T) -> bool {
        let key = key.masked(cidr);
        let mut parent_link = Link::Root;
        let mut link = Link::Root;
        let mut cur = self.root;
        while let Some(n) = self.node(cur).copied() {
            if n.cidr > cidr || key.masked(n.cidr) != n.key {
                return false;
            }
            if n.cidr == cidr {
                if n.value != Some(value) {
                    return false;
                }
                if let Some(slot) = self.nodes.get_mut(cur as usize) {
                    slot.value = None;
                }
                self.len = self.len.saturating_sub(1);
                if self.compact(link, cur) {
                    // If `cur` was a leaf, its parent may now be a branch with one child.
                    if let Link::Child(p, _) = link {
                        self.compact(parent_link, p);
                    }
                }
                self.reset_if_empty();
                return true;
            }
            let b = key.bit(n.cidr);
            parent_link = link;
            link = Link::Child(cur, b);
            cur = n.child(b);
        }
        false
    }

    /// Keeps the prefixes for which `f` returns true; returns how many were removed.
    fn retain(&mut self, f: &mut impl FnMut(IpAddr, u8, T) -> bool) -> usize {
        let before = self.len;
        self.root = self.retain_from(self.root, f);
        self.reset_if_empty();
        before.saturating_sub(self.len)
    }

    /// Post-order: filters the subtree at `i` and returns its new root. Recursion depth is at
    /// most `BITS + 1`, since each level is strictly longer than the one above.
    fn retain_from(&mut self, i: u32, f: &mut impl FnMut(IpAddr, u8, T) -> bool) -> u32 {
        let Some(n) = self.node(i).copied() else {
            return NIL;
        };
        let c0 = self.retain_from(n.child[0], f);
        let c1 = self.retain_from(n.child[1], f);
        let mut value = n.value;
        if let Some(v) = value {
            if !f(n.key.to_ip(), n.cidr, v) {
                value = None;
                self.len = self.len.saturating_sub(1);
            }
        }
        if value.is_none() && (c0 == NIL || c1 == NIL) {
            self.release(i);
            return if c0 == NIL { c1 } else { c0 };
        }
        if let Some(slot) = self.nodes.get_mut(i as usize) {
            slot.child = [c0, c1];
            slot.value = value;
        }
        i
    }

    /// Calls `f` on every prefix in address order (then shorter before longer).
    fn walk(&self, mut f: impl FnMut(K, u8, T)) {
        // Pre-order, child 0 first: a prefix precedes everything it contains, and the 0 side
        // precedes the 1 side. At most one pending right sibling per level, plus one.
        let mut stack = Vec::with_capacity(usize::from(K::BITS) + 2);
        stack.push(self.root);
        while let Some(i) = stack.pop() {
            let Some(n) = self.node(i) else { continue };
            if let Some(v) = n.value {
                f(n.key, n.cidr, v);
            }
            stack.push(n.child[1]);
            stack.push(n.child[0]);
        }
    }
}

/// The AllowedIPs table: IPv4 and IPv6 prefixes, each owned by one value (a peer).
///
/// See the module documentation for the structure, memory use and complexity.
#[derive(Clone, Debug)]
pub struct AllowedIps<T> {
    v4: Trie<u32, T>,
    v6: Trie<V6Key, T>,
}

impl<T: Copy + Eq> Default for AllowedIps<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Eq> AllowedIps<T> {
    /// An empty table.
    pub const fn new() -> Self {
        AllowedIps {
            v4: Trie::new(),
            v6: Trie::new(),
        }
    }

    /// Routes `addr/cidr` to `value`.
    ///
    /// Host bits after the prefix are cleared (`198.19.0.77/24` is stored as `198.19.0.0/24`).
    /// If the prefix already belongs to another value it moves to `value`, as in the kernel.
    pub fn insert(&mut self, addr: IpAddr, cidr: u8, value: T) -> Result<(), AllowedIpsError> {
        match addr {
            IpAddr::V4(a) => {
                check_cidr::<u32>(cidr)?;
                self.v4.insert(u32::from(a), cidr, value)
            }
            IpAddr::V6(a) => {
                check_cidr::<V6Key>(cidr)?;
                self.v6.insert(V6Key::from_u128(u128::from(a)), cidr, value)
            }
        }
    }

    /// Removes `addr/cidr` (host bits ignored) if it belongs to `value`; returns whether it did.
    /// A prefix owned by another value, or absent, is left alone (wireguard-go's
    /// `allowed_ip=-prefix`).
    pub fn remove(&mut self, addr: IpAddr, cidr: u8, value: T) -> bool {
        match addr {
            IpAddr::V4(a) => cidr <= u32::BITS as u8 && self.v4.remove(u32::from(a), cidr, value),
            IpAddr::V6(a) => {
                cidr <= V6Key::BITS && self.v6.remove(V6Key::from_u128(u128::from(a)), cidr, value)
            }
        }
    }

    /// Removes every prefix owned by `value` (peer removed, or `replace_allowed_ips`); returns
    /// how many. Other values' prefixes are untouched. `O(n)`.
    pub fn remove_by_value(&mut self, value: T) -> usize {
        self.retain(|_, _, v| v != value)
    }

    /// Keeps only the prefixes for which `f(network address, cidr, value)` returns true;
    /// returns how many were removed. The call order of `f` is unspecified. `O(n)`.
    pub fn retain(&mut self, mut f: impl FnMut(IpAddr, u8, T) -> bool) -> usize {
        self.v4.retain(&mut f) + self.v6.retain(&mut f)
    }

    /// Removes everything and releases the storage.
    pub fn clear(&mut self) {
        *self = Self::new();
    }

    /// The owner of exactly `addr/cidr` (host bits ignored), if any.
    pub fn get(&self, addr: IpAddr, cidr: u8) -> Option<T> {
        match addr {
            IpAddr::V4(a) if cidr <= 32 => self.v4.get(u32::from(a).masked(cidr), cidr),
            IpAddr::V6(a) if cidr <= 128 => {
                let k = V6Key::from_u128(u128::from(a)).masked(cidr);
                self.v6.get(k, cidr)
            }
            _ => None,
        }
    }

    /// The owner of the longest prefix containing `addr`. `O(address bits)`, no allocation.
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> Option<T> {
        match addr {
            IpAddr::V4(a) => self.lookup_v4(a),
            IpAddr::V6(a) => self.lookup_v6(a),
        }
    }

    /// [`lookup`](Self::lookup) for an IPv4 address.
    #[inline]
    pub fn lookup_v4(&self, addr: Ipv4Addr) -> Option<T> {
        self.v4.lookup(u32::from(addr))
    }

    /// [`lookup`](Self::lookup) for an IPv6 address. IPv4-mapped addresses stay IPv6.
    #[inline]
    pub fn lookup_v6(&self, addr: Ipv6Addr) -> Option<T> {
        self.v6.lookup(V6Key::from_u128(u128::from(addr)))
    }

    /// Looks up the destination of an IPv4 or IPv6 packet (outbound: which peer to send to).
    /// `None` if the packet is too short for its header or not IPv4/IPv6; see [`packet_dst`].
    #[inline]
    pub fn lookup_packet_dst(&self, pkt: &[u8]) -> Option<T> {
        self.lookup(packet_dst(pkt)?)
    }

    /// Looks up the source of an IPv4 or IPv6 packet (inbound: which peer may have sent it).
    /// `None` if the packet is too short for its header or not IPv4/IPv6; see [`packet_src`].
    #[inline]
    pub fn lookup_packet_src(&self, pkt: &[u8]) -> Option<T> {
        self.lookup(packet_src(pkt)?)
    }

    /// The prefixes owned by `value` (for `wg show allowed-ips`), as (network address, cidr).
    ///
    /// Ordered by address, not insertion: IPv4 before IPv6, then by network address, then
    /// shorter prefixes first. `O(n)`.
    pub fn iter_by_value(&self, value: T) -> impl Iterator<Item = (IpAddr, u8)> + use<T> {
        let mut out = Vec::new();
        self.v4.walk(|k, c, v| {
            if v == value {
                out.push((k.to_ip(), c));
            }
        });
        self.v6.walk(|k, c, v| {
            if v == value {
                out.push((k.to_ip(), c));
            }
        });
        out.into_iter()
    }

    /// Every prefix with its owner, in the order of [`iter_by_value`](Self::iter_by_value).
    pub fn entries(&self) -> Vec<(IpAddr, u8, T)> {
        let mut out = Vec::with_capacity(self.len());
        self.v4.walk(|k, c, v| out.push((k.to_ip(), c, v)));
        self.v6.walk(|k, c, v| out.push((k.to_ip(), c, v)));
        out
    }

    /// Number of prefixes (both families).
    pub fn len(&self) -> usize {
        self.v4.len + self.v6.len
    }

    /// True if no prefix is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check_cidr<K: Key>(cidr: u8) -> Result<(), AllowedIpsError> {
    if cidr > K::BITS {
        return Err(AllowedIpsError::CidrOutOfRange { cidr, max: K::BITS });
    }
    Ok(())
}

/// Offset of (source, destination) in the IPv4 header, which is at least 20 bytes.
const V4_ADDRS: (usize, usize) = (12, 16);
const V4_HEADER: usize = 20;
/// Offset of (source, destination) in the 40-byte IPv6 header.
const V6_ADDRS: (usize, usize) = (8, 24);
const V6_HEADER: usize = 40;

fn packet_addr(pkt: &[u8], dst: bool) -> Option<IpAddr> {
    match pkt.first()? >> 4 {
        4 if pkt.len() >= V4_HEADER => {
            let at = if dst { V4_ADDRS.1 } else { V4_ADDRS.0 };
            let b: [u8; 4] = pkt.get(at..at + 4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 if pkt.len() >= V6_HEADER => {
            let at = if dst { V6_ADDRS.1 } else { V6_ADDRS.0 };
            let b: [u8; 16] = pkt.get(at..at + 16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// The destination address of an IPv4 or IPv6 packet, read from its header.
///
/// `None` unless the version nibble is 4 with at least 20 bytes, or 6 with at least 40 bytes.
/// Nothing else in the header is checked (lengths and checksums are the caller's concern).
pub fn packet_dst(pkt: &[u8]) -> Option<IpAddr> {
    packet_addr(pkt, true)
}

/// The source address of an IPv4 or IPv6 packet; same rules as [`packet_dst`].
pub fn packet_src(pkt: &[u8]) -> Option<IpAddr> {
    packet_addr(pkt, false)
}

#[cfg(test)]
mod tests {
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
}
