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
mod tests;
