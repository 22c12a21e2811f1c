//! The transport AEAD: ChaCha20-Poly1305 with WireGuard's 64-bit counter nonce, keyed once per
//! keypair direction (kernel `chacha20poly1305.c` as used by `send.c`/`receive.c`).
//!
//! This is the one place data packets are encrypted and authenticated, so it is the one place to
//! make fast. [`TransportKey`] is `Sync`: crypto workers share it by reference.

use crate::crypto::{self, AuthError, TAG_LEN};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Tag};

/// One direction's transport key, expanded once.
pub struct TransportKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for TransportKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportKey(..)")
    }
}

impl TransportKey {
    /// The key state for a 32-byte session key.
    pub fn new(key: &[u8; 32]) -> Self {
        TransportKey {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// Encrypts `data` in place under `counter` (no associated data) and returns the tag.
    pub fn seal(&self, counter: u64, data: &mut [u8]) -> [u8; TAG_LEN] {
        // Only fails for messages longer than 256 GiB, which no caller can pass.
        match self
            .cipher
            .encrypt_in_place_detached(&crypto::nonce(counter), &[], data)
        {
            Ok(tag) => tag.into(),
            Err(_) => [0; TAG_LEN],
        }
    }

    /// Verifies `tag` and decrypts `data` in place under `counter`. On failure `data` is
    /// unspecified and must be dropped.
    pub fn open(
        &self,
        counter: u64,
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthError> {
        self.cipher
            .decrypt_in_place_detached(&crypto::nonce(counter), &[], data, Tag::from_slice(tag))
            .map_err(|_| AuthError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let k = TransportKey::new(&[7; 32]);
        for len in [0usize, 1, 15, 16, 17, 63, 64, 1420, 8192] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut buf = plain.clone();
            let tag = k.seal(42, &mut buf);
            assert!(len == 0 || buf != plain);
            let mut good = buf.clone();
            k.open(42, &mut good, &tag).unwrap();
            assert_eq!(good, plain);
            let mut wrong_counter = buf.clone();
            assert!(k.open(43, &mut wrong_counter, &tag).is_err());
            if len > 0 {
                let mut flipped = buf.clone();
                flipped[len / 2] ^= 1;
                assert!(k.open(42, &mut flipped, &tag).is_err());
            }
        }
    }

    #[test]
    fn matches_the_handshake_aead() {
        // Same construction as crypto::aead_seal with empty AAD.
        let key = [9u8; 32];
        let mut a = vec![5u8; 100 + TAG_LEN];
        crypto::aead_seal(&key, 7, &mut a, &[]);
        let mut b = vec![5u8; 100];
        let tag = TransportKey::new(&key).seal(7, &mut b);
        assert_eq!(&a[..100], &b[..]);
        assert_eq!(&a[100..], &tag);
    }
}
