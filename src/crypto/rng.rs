//! The daemon's random source: the operating system's (`getrandom`), read a block at a time.
//!
//! The protocol draws randomness on the data path: every data packet sent while no
//! "new handshake" timer is pending arms one with a random jitter (as the kernel's
//! `wg_timers_data_sent` does with `get_random_u32_below`). With `rand_core::OsRng` that is one
//! `getrandom` system call per such packet (seen with strace: one per ping answered). This
//! source asks the kernel for [`BLOCK`] bytes at once and hands them out in order; it is still
//! the kernel's randomness, only fetched in bulk, not a userspace generator.
//!
//! Secret hygiene: bytes are wiped from the block as they are handed out, and the block is
//! wiped on drop; `Debug` shows no contents. The block is filled lazily on first use, so a
//! daemon that forks (`wgd IFACE` detaching) must create it after the fork, which
//! [`crate::daemon`] does (the device is built in the child).

use rand_core::{CryptoRng, OsRng, RngCore};
use zeroize::Zeroize;

/// Bytes fetched from the kernel per refill.
pub const BLOCK: usize = 4096;

/// `getrandom`, [`BLOCK`] bytes at a time; see the module documentation.
pub struct BufferedOsRng {
    block: Box<[u8; BLOCK]>,
    /// Bytes of `block` already handed out (and wiped); `BLOCK` when empty.
    used: usize,
}

impl BufferedOsRng {
    /// An empty source; the first draw fills it.
    pub fn new() -> BufferedOsRng {
        BufferedOsRng {
            block: Box::new([0; BLOCK]),
            used: BLOCK,
        }
    }
}

impl Default for BufferedOsRng {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for BufferedOsRng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferedOsRng")
            .field("available", &(BLOCK - self.used))
            .finish_non_exhaustive()
    }
}

impl Drop for BufferedOsRng {
    fn drop(&mut self) {
        self.block.zeroize();
    }
}

impl RngCore for BufferedOsRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if dest.len() >= BLOCK {
            OsRng.fill_bytes(dest);
            return;
        }
        let mut done = 0;
        while done < dest.len() {
            if self.used >= BLOCK {
                OsRng.fill_bytes(&mut *self.block);
                self.used = 0;
            }
            let n = (dest.len() - done).min(BLOCK - self.used);
            if let (Some(to), Some(from)) = (
                dest.get_mut(done..done + n),
                self.block.get_mut(self.used..self.used + n),
            ) {
                to.copy_from_slice(from);
                from.zeroize();
            }
            self.used += n;
            done += n;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for BufferedOsRng {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_span_refills_and_wipe_what_they_hand_out() {
        let mut r = BufferedOsRng::new();
        // Odd sizes so that draws straddle the block boundary.
        let mut total = 0;
        let mut all_zero = 0;
        while total < 3 * BLOCK {
            let mut b = [0u8; 37];
            r.fill_bytes(&mut b);
            all_zero += usize::from(b.iter().all(|&x| x == 0));
            total += b.len();
            // Everything handed out so far is wiped from the block.
            assert!(r.block[..r.used].iter().all(|&x| x == 0));
        }
        assert_eq!(all_zero, 0, "37-byte draws of zeros");
        // Successive words differ (a stuck source would repeat).
        let words: std::collections::HashSet<u64> = (0..1000).map(|_| r.next_u64()).collect();
        assert_eq!(words.len(), 1000);
        // Large requests bypass the block.
        let mut big = vec![0u8; BLOCK + 1];
        r.fill_bytes(&mut big);
        assert!(big.iter().any(|&x| x != 0));
    }

    #[test]
    fn debug_shows_no_bytes() {
        let mut r = BufferedOsRng::new();
        let _ = r.next_u32();
        assert_eq!(
            format!("{r:?}"),
            format!("BufferedOsRng {{ available: {}, .. }}", BLOCK - 4)
        );
    }
}
