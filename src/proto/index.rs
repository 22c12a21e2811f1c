//! Sender indices: random 32-bit values, unique across the device's handshakes and keypairs
//! (kernel `peerlookup.c`). A counter would leak how many sessions exist.

use rand_core::{CryptoRng, RngCore};
use std::collections::HashMap;

/// A peer's handle inside a [`crate::proto::device::Device`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerId(pub u32);

/// Map from our local indices to the peer that owns each.
#[derive(Debug, Default)]
pub struct IndexTable {
    map: HashMap<u32, PeerId>,
}

impl IndexTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allocates a fresh random index for `peer`, unique in the table.
    pub fn allocate<R: RngCore + CryptoRng + ?Sized>(&mut self, rng: &mut R, peer: PeerId) -> u32 {
        loop {
            let i = rng.next_u32();
            if let std::collections::hash_map::Entry::Vacant(e) = self.map.entry(i) {
                e.insert(peer);
                return i;
            }
        }
    }

    /// The peer owning `index`.
    pub fn get(&self, index: u32) -> Option<PeerId> {
        self.map.get(&index).copied()
    }

    /// Frees `index`.
    pub fn remove(&mut self, index: u32) {
        self.map.remove(&index);
    }

    /// Number of indices in use.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if no index is in use.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn unique_random_indices() {
        let mut t = IndexTable::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(t.allocate(&mut OsRng, PeerId(1))));
        }
        let v: Vec<u32> = seen.iter().copied().collect();
        // Not a counter: indices are spread over the whole range.
        assert!(v.iter().any(|&i| i > u32::MAX / 2));
        assert!(!(0..10_000u32).all(|i| seen.contains(&i)));
        t.remove(v[0]);
        assert_eq!(t.get(v[0]), None);
        assert_eq!(t.get(v[1]), Some(PeerId(1)));
        assert_eq!(t.len(), 9_999);
    }
}
