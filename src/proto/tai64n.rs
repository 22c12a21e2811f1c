//! TAI64N timestamps for handshake initiations (whitepaper §5.4.2).

use std::time::Duration;

/// Length of a TAI64N timestamp.
pub const TIMESTAMP_LEN: usize = 12;
/// TAI64 label of the Unix epoch: 2^62 + 10 (the kernel's offset; boringtun uses 37, see notes).
const TAI64_EPOCH: u64 = 0x4000_0000_0000_000a;
/// Nanoseconds are rounded down to a multiple of 2^24 ns: the largest power of two not above
/// 1 s / INITIATIONS_PER_SECOND (20 ms), so the timestamp leaks no finer timing (kernel `tai64n_now`).
const NANOS_GRANULE: u32 = 1 << 24;

/// A TAI64N timestamp: 8-byte big-endian seconds then 4-byte big-endian nanoseconds, so that
/// byte-wise comparison orders timestamps.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub struct Tai64n(pub [u8; TIMESTAMP_LEN]);

impl Tai64n {
    /// The timestamp of wall-clock time `wall` (since the Unix epoch), whitened.
    pub fn from_wall(wall: Duration) -> Self {
        let secs = TAI64_EPOCH.wrapping_add(wall.as_secs());
        let nanos = wall.subsec_nanos() & !(NANOS_GRANULE - 1);
        let mut out = [0u8; TIMESTAMP_LEN];
        out[..8].copy_from_slice(&secs.to_be_bytes());
        out[8..].copy_from_slice(&nanos.to_be_bytes());
        Tai64n(out)
    }
    /// True if `self` is strictly later than `other`.
    pub fn is_after(&self, other: &Tai64n) -> bool {
        self.0 > other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_kernel() {
        let t = Tai64n::from_wall(Duration::new(1_700_000_000, 999_999_999));
        let secs = u64::from_be_bytes(t.0[..8].try_into().unwrap());
        let nanos = u32::from_be_bytes(t.0[8..].try_into().unwrap());
        assert_eq!(secs, (1u64 << 62) + 10 + 1_700_000_000);
        assert_eq!(nanos % (1 << 24), 0);
        assert_eq!(nanos, 999_999_999 & !((1 << 24) - 1));
    }

    #[test]
    fn ordering_is_bytewise_and_whitened() {
        let a = Tai64n::from_wall(Duration::new(100, 0));
        let b = Tai64n::from_wall(Duration::new(100, 20_000_000));
        let c = Tai64n::from_wall(Duration::new(101, 0));
        assert!(b.is_after(&a));
        assert!(c.is_after(&b));
        assert!(!a.is_after(&a));
        // Within one 2^24 ns granule two timestamps are equal: the second is a replay.
        let d = Tai64n::from_wall(Duration::new(100, 1_000_000));
        assert_eq!(a, d);
    }
}
