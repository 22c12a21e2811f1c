//! Cryptographic primitives of WireGuard (whitepaper §5.4): HASH, MAC, HMAC, KDF1..3, AEAD, XAEAD, DH.
//!
//! Two distinct BLAKE2s uses: the KDF is HKDF over HMAC-BLAKE2s-256, while MAC1/MAC2 and cookies are
//! *keyed* BLAKE2s with a 16-byte output.

use blake2::digest::{FixedOutput, KeyInit, Mac, Update, consts::U16};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag, XChaCha20Poly1305, XNonce};
use hmac::SimpleHmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Length of a BLAKE2s-256 hash, a chaining key, a symmetric key.
pub const HASH_LEN: usize = 32;
/// Length of a keyed-BLAKE2s MAC (mac1, mac2, cookie).
pub const MAC_LEN: usize = 16;
/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// Length of an X25519 key.
pub const KEY_LEN: usize = 32;

/// A 32-byte secret (chaining key, DH result, session key) that is zeroized when dropped,
/// compared in constant time and redacted in `Debug` (a bare `Zeroizing<[u8; 32]>` would print
/// its bytes).
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<[u8; 32]>);

impl SecretBytes {
    /// Takes ownership of `b` (the caller's copy is the caller's to zeroize).
    pub fn new(b: [u8; 32]) -> Self {
        SecretBytes(Zeroizing::new(b))
    }
}

impl std::ops::Deref for SecretBytes {
    type Target = [u8; 32];
    fn deref(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::ops::DerefMut for SecretBytes {
    fn deref_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0[..], &other.0[..])
    }
}
impl Eq for SecretBytes {}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBytes(<redacted>)")
    }
}

/// Error of an authenticated decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed")]
pub struct AuthError;

/// HASH(parts...) = BLAKE2s-256 over the concatenation.
pub fn hash(parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut h = Blake2s256::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

/// MAC(key, parts...) = keyed BLAKE2s with a 16-byte output. `key` is at most 32 bytes.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    // Keys used here are 32 (mac1 key) or 16 (cookie) bytes; BLAKE2s accepts 1..=32.
    let mut m = match <Blake2sMac<U16> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        // Unreachable for the fixed key sizes of this crate; never reached from input data.
        Err(_) => return [0u8; MAC_LEN],
    };
    for p in parts {
        Update::update(&mut m, p);
    }
    m.finalize_fixed().into()
}

/// HMAC-BLAKE2s-256(key, parts...).
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> SecretBytes {
    let mut m = match <SimpleHmac<Blake2s256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC accepts keys of any length.
        Err(_) => return SecretBytes::default(),
    };
    for p in parts {
        Mac::update(&mut m, p);
    }
    SecretBytes::new(m.finalize().into_bytes().into())
}

/// KDF1(key, input): the first output of HKDF.
pub fn kdf1(key: &[u8; 32], input: &[u8]) -> SecretBytes {
    let t0 = hmac(key, &[input]);
    hmac(&t0[..], &[&[1u8]])
}

/// KDF2(key, input): the first two outputs of HKDF.
pub fn kdf2(key: &[u8; 32], input: &[u8]) -> (SecretBytes, SecretBytes) {
    let t0 = hmac(key, &[input]);
    let t1 = hmac(&t0[..], &[&[1u8]]);
    let t2 = hmac(&t0[..], &[&t1[..], &[2u8]]);
    (t1, t2)
}

/// KDF3(key, input): the first three outputs of HKDF.
pub fn kdf3(key: &[u8; 32], input: &[u8]) -> (SecretBytes, SecretBytes, SecretBytes) {
    let t0 = hmac(key, &[input]);
    let t1 = hmac(&t0[..], &[&[1u8]]);
    let t2 = hmac(&t0[..], &[&t1[..], &[2u8]]);
    let t3 = hmac(&t0[..], &[&t2[..], &[3u8]]);
    (t1, t2, t3)
}

/// The 96-bit ChaCha20-Poly1305 nonce: 4 zero bytes then the 64-bit counter little-endian.
pub fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n.into()
}

/// AEAD(key, counter, plaintext, aad): seals `buf[..len - 16]` in place and writes the tag into the
/// last 16 bytes of `buf`. `buf` must be at least 16 bytes long.
pub fn aead_seal(key: &[u8; 32], counter: u64, buf: &mut [u8], aad: &[u8]) {
    let Some(split) = buf.len().checked_sub(TAG_LEN) else {
        return;
    };
    let (data, tag_out) = buf.split_at_mut(split);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    // Encryption only fails for messages longer than 256 GiB.
    if let Ok(tag) = cipher.encrypt_in_place_detached(&nonce(counter), aad, data) {
        tag_out.copy_from_slice(&tag);
    }
}

/// Opens `buf` (ciphertext followed by a 16-byte tag) in place; the plaintext is `buf[..len - 16]`.
pub fn aead_open(
    key: &[u8; 32],
    counter: u64,
    buf: &mut [u8],
    aad: &[u8],
) -> Result<(), AuthError> {
    let split = buf.len().checked_sub(TAG_LEN).ok_or(AuthError)?;
    let (data, tag) = buf.split_at_mut(split);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt_in_place_detached(&nonce(counter), aad, data, Tag::from_slice(tag))
        .map_err(|_| AuthError)
}

/// XAEAD seal (cookie replies): XChaCha20-Poly1305 with a 24-byte nonce; tag in the last 16 bytes.
pub fn xaead_seal(key: &[u8; 32], nonce: &[u8; 24], buf: &mut [u8], aad: &[u8]) {
    let Some(split) = buf.len().checked_sub(TAG_LEN) else {
        return;
    };
    let (data, tag_out) = buf.split_at_mut(split);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    if let Ok(tag) = cipher.encrypt_in_place_detached(XNonce::from_slice(nonce), aad, data) {
        tag_out.copy_from_slice(&tag);
    }
}

/// XAEAD open (cookie replies).
pub fn xaead_open(
    key: &[u8; 32],
    nonce: &[u8; 24],
    buf: &mut [u8],
    aad: &[u8],
) -> Result<(), AuthError> {
    let split = buf.len().checked_sub(TAG_LEN).ok_or(AuthError)?;
    let (data, tag) = buf.split_at_mut(split);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, data, Tag::from_slice(tag))
        .map_err(|_| AuthError)
}

/// DH(private, public): X25519. Returns `None` for an all-zero result (a low-order public key),
/// which aborts the handshake as in the kernel. The check is constant time.
pub fn dh(private: &x25519_dalek::StaticSecret, public: &[u8; 32]) -> Option<SecretBytes> {
    let shared = private.diffie_hellman(&x25519_dalek::PublicKey::from(*public));
    let out = SecretBytes::new(shared.to_bytes());
    if bool::from(out.ct_eq(&[0u8; 32])) {
        None
    } else {
        Some(out)
    }
}

/// Constant-time equality of two byte strings of equal length.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blake2s_known_answer() {
        // RFC 7693 Appendix B: BLAKE2s-256("abc").
        let h = hash(&[b"abc"]);
        assert_eq!(h[..8], [0x50, 0x8C, 0x5E, 0x8C, 0x32, 0x7C, 0x14, 0xE2]);
        // Hashing in parts equals hashing the concatenation.
        assert_eq!(hash(&[b"a", b"bc"]), h);
    }

    #[test]
    fn construction_hash_matches_kernel_constant() {
        // HASH("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s") starts with 0x60 0xe2 0x6d 0xae (the
        // precomputed initial chaining key published for WireGuard).
        let c = hash(&[b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"]);
        assert_eq!(c[..4], [0x60, 0xe2, 0x6d, 0xae]);
    }

    #[test]
    fn hmac_is_not_keyed_blake2() {
        let k = [7u8; 32];
        let m = mac(&k, &[b"x"]);
        let h = hmac(&k, &[b"x"]);
        assert_ne!(m[..], h[..16]);
    }

    #[test]
    fn kdf_outputs_chain() {
        let ck = [1u8; 32];
        let (a, b) = kdf2(&ck, b"in");
        let (a3, b3, c3) = kdf3(&ck, b"in");
        assert_eq!(*a, *a3);
        assert_eq!(*b, *b3);
        assert_ne!(*b3, *c3);
        assert_eq!(*kdf1(&ck, b"in"), *a);
    }

    #[test]
    fn aead_round_trip_and_tamper() {
        let key = [3u8; 32];
        let mut buf = *b"hello world.....\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        aead_seal(&key, 9, &mut buf, b"ad");
        let mut ok = buf;
        assert!(aead_open(&key, 9, &mut ok, b"ad").is_ok());
        assert_eq!(&ok[..16], b"hello world.....");
        let mut bad = buf;
        bad[3] ^= 1;
        assert_eq!(aead_open(&key, 9, &mut bad, b"ad"), Err(AuthError));
        let mut wrong_nonce = buf;
        assert_eq!(aead_open(&key, 8, &mut wrong_nonce, b"ad"), Err(AuthError));
        let mut short = [0u8; 15];
        assert_eq!(aead_open(&key, 0, &mut short, b""), Err(AuthError));
    }

    #[test]
    fn nonce_layout() {
        let n = nonce(0x0102030405060708);
        assert_eq!(n[..4], [0, 0, 0, 0]);
        assert_eq!(n[4..], [8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn dh_rejects_low_order_points() {
        let sk = x25519_dalek::StaticSecret::from([9u8; 32]);
        assert!(dh(&sk, &[0u8; 32]).is_none());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(dh(&sk, &one).is_none());
        let pk = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from([5u8; 32]));
        assert!(dh(&sk, pk.as_bytes()).is_some());
    }
}
