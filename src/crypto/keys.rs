//! Static private/public keys and preshared keys, in base64 as `wg(8)` prints them.
//!
//! Secrets are zeroized on drop, compared in constant time and redacted in `Debug`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand_core::{CryptoRng, RngCore};
use std::fmt;
use std::str::FromStr;
use zeroize::{Zeroize, Zeroizing};

/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a key in base64, as `wg` prints it (with one `=` of padding).
pub const KEY_LEN_BASE64: usize = 44;

/// A key that is not 44 characters of canonical base64 ending in `=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Key is not the correct length or format")]
pub struct KeyFormatError;

/// Decodes a key the way wireguard-tools' `key_from_base64` does: exactly 44 characters, the last
/// one `=`, canonical base64 (no stray low bits in the last character).
pub fn decode_base64_key(s: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyFormatError> {
    if s.len() != KEY_LEN_BASE64 || !s.ends_with('=') {
        return Err(KeyFormatError);
    }
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    let mut tmp = Zeroizing::new([0u8; 33]);
    match STANDARD.decode_slice(s.as_bytes(), &mut tmp[..]) {
        Ok(KEY_LEN) => {
            let (key, _) = tmp.split_first_chunk::<KEY_LEN>().ok_or(KeyFormatError)?;
            out.copy_from_slice(key);
            Ok(out)
        }
        _ => Err(KeyFormatError),
    }
}

/// Encodes a key in base64 (44 characters).
pub fn encode_base64_key(k: &[u8; KEY_LEN]) -> String {
    STANDARD.encode(k)
}

/// Decodes a key given as 64 lowercase or uppercase hex digits (the UAPI form).
pub fn decode_hex_key(s: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyFormatError> {
    let b = s.as_bytes();
    if b.len() != 2 * KEY_LEN {
        return Err(KeyFormatError);
    }
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let &[hi, lo] = pair else {
            return Err(KeyFormatError);
        };
        *o = (hex_val(hi).ok_or(KeyFormatError)? << 4) | hex_val(lo).ok_or(KeyFormatError)?;
    }
    Ok(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Encodes a key as 64 lowercase hex digits (the UAPI form).
pub fn encode_hex_key(k: &[u8; KEY_LEN]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(2 * KEY_LEN);
    for b in k {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Clamps a Curve25519 scalar as `wg genkey` does.
pub fn clamp(k: &mut [u8; KEY_LEN]) {
    k[0] &= 248;
    k[31] = (k[31] & 127) | 64;
}

/// A static X25519 public key. Not secret; `Debug` and `Display` print base64.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Wraps raw bytes.
    pub const fn from_bytes(b: [u8; KEY_LEN]) -> Self {
        PublicKey(b)
    }
    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
    /// Base64, as `wg` prints it.
    pub fn to_base64(&self) -> String {
        encode_base64_key(&self.0)
    }
    /// Lowercase hex, as the UAPI carries it.
    pub fn to_hex(&self) -> String {
        encode_hex_key(&self.0)
    }
    /// Parses lowercase or uppercase hex (UAPI).
    pub fn from_hex(s: &str) -> Result<Self, KeyFormatError> {
        Ok(PublicKey(*decode_hex_key(s)?))
    }
}

impl FromStr for PublicKey {
    type Err = KeyFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(PublicKey(*decode_base64_key(s)?))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// A static X25519 private key, zeroized on drop, redacted in `Debug`.
#[derive(Clone)]
pub struct PrivateKey {
    secret: x25519_dalek::StaticSecret,
    public: PublicKey,
}

impl PrivateKey {
    /// Makes a key from 32 bytes. The bytes are used as given (X25519 clamps when it multiplies).
    pub fn from_bytes(mut b: [u8; KEY_LEN]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(b);
        b.zeroize();
        let public = PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes());
        PrivateKey { secret, public }
    }
    /// The key with its scalar clamped, as the kernel and wireguard-go store a configured key
    /// (X25519 clamps anyway, so the public key is the same).
    pub fn clamped(&self) -> PrivateKey {
        let mut b = self.to_bytes();
        clamp(&mut b);
        PrivateKey::from_bytes(*b)
    }

    /// A fresh random key, clamped as `wg genkey` prints it.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(&mut b[..]);
        clamp(&mut b);
        Self::from_bytes(*b)
    }
    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }
    /// The raw secret bytes (for `wg`-style output only).
    pub fn to_bytes(&self) -> Zeroizing<[u8; KEY_LEN]> {
        Zeroizing::new(self.secret.to_bytes())
    }
    /// Base64 of the secret, as `wg genkey` prints it.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(encode_base64_key(&self.to_bytes()))
    }
    /// Lowercase hex of the secret (UAPI `get`).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(encode_hex_key(&self.to_bytes()))
    }
    /// Parses hex (UAPI).
    pub fn from_hex(s: &str) -> Result<Self, KeyFormatError> {
        Ok(Self::from_bytes(*decode_hex_key(s)?))
    }
    /// The X25519 secret, for the handshake.
    pub(crate) fn secret(&self) -> &x25519_dalek::StaticSecret {
        &self.secret
    }
    /// True if all 32 bytes are zero (a UAPI request to remove the key).
    pub fn is_zero(&self) -> bool {
        crate::crypto::ct_eq(&self.to_bytes()[..], &[0u8; KEY_LEN])
    }
}

impl FromStr for PrivateKey {
    type Err = KeyFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from_bytes(*decode_base64_key(s)?))
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        crate::crypto::ct_eq(&self.to_bytes()[..], &other.to_bytes()[..])
    }
}
impl Eq for PrivateKey {}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(<redacted>, public {})", self.public)
    }
}

/// A preshared symmetric key (32 bytes), zeroized on drop, redacted in `Debug`.
/// The absent PSK is 32 zero bytes, as in the protocol.
#[derive(Clone, Default)]
pub struct PresharedKey(Zeroizing<[u8; KEY_LEN]>);

impl PresharedKey {
    /// Wraps raw bytes.
    pub fn from_bytes(b: [u8; KEY_LEN]) -> Self {
        PresharedKey(Zeroizing::new(b))
    }
    /// A fresh random key, as `wg genpsk` prints it (no clamping).
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut k = PresharedKey::default();
        rng.fill_bytes(&mut k.0[..]);
        k
    }
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
    /// True for the all-zero key (no PSK).
    pub fn is_zero(&self) -> bool {
        crate::crypto::ct_eq(&self.0[..], &[0u8; KEY_LEN])
    }
    /// Base64, as `wg genpsk` prints it.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(encode_base64_key(&self.0))
    }
    /// Lowercase hex (UAPI).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(encode_hex_key(&self.0))
    }
    /// Parses hex (UAPI).
    pub fn from_hex(s: &str) -> Result<Self, KeyFormatError> {
        Ok(PresharedKey(decode_hex_key(s)?))
    }
}

impl FromStr for PresharedKey {
    type Err = KeyFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(PresharedKey(decode_base64_key(s)?))
    }
}

impl PartialEq for PresharedKey {
    fn eq(&self, other: &Self) -> bool {
        crate::crypto::ct_eq(&self.0[..], &other.0[..])
    }
}
impl Eq for PresharedKey {}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn base64_round_trip_and_format() {
        let k = PrivateKey::generate(&mut OsRng);
        let s = k.to_base64();
        assert_eq!(s.len(), KEY_LEN_BASE64);
        assert!(s.ends_with('='));
        let back: PrivateKey = s.parse().unwrap();
        assert_eq!(back, k);
        assert_eq!(back.public_key(), k.public_key());
    }

    #[test]
    fn generated_keys_are_clamped() {
        for _ in 0..32 {
            let b = PrivateKey::generate(&mut OsRng).to_bytes();
            assert_eq!(b[0] & 7, 0);
            assert_eq!(b[31] & 0xc0, 0x40);
        }
    }

    #[test]
    fn rejects_bad_base64_like_wg() {
        let good = PrivateKey::generate(&mut OsRng).to_base64();
        for bad in [
            "",
            &good[..43],
            &format!("{}A", &good[..43]),   // no '='
            &format!("{}=", good.as_str()), // too long
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!=",
            // Non-canonical: the last data character carries stray low bits.
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",
        ] {
            assert_eq!(
                bad.parse::<PrivateKey>().err(),
                Some(KeyFormatError),
                "{bad:?}"
            );
        }
        assert!(
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE="
                .parse::<PublicKey>()
                .is_ok()
        );
    }

    #[test]
    fn hex_round_trip() {
        let k = PresharedKey::generate(&mut OsRng);
        let h = k.to_hex();
        assert_eq!(h.len(), 64);
        assert!(
            h.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(PresharedKey::from_hex(&h).unwrap(), k);
        assert_eq!(PresharedKey::from_hex(&h.to_uppercase()).unwrap(), k);
        assert!(PresharedKey::from_hex(&h[..63]).is_err());
        assert!(PresharedKey::from_hex(&format!("{}g", &h[..63])).is_err());
    }

    #[test]
    fn debug_never_prints_secrets() {
        let k = PrivateKey::generate(&mut OsRng);
        let p = PresharedKey::generate(&mut OsRng);
        let dk = format!("{k:?}");
        let dp = format!("{p:?}");
        assert!(!dk.contains(k.to_base64().as_str()));
        assert!(!dk.contains(k.to_hex().as_str()));
        assert!(!dp.contains(p.to_base64().as_str()));
        assert!(!dp.contains(p.to_hex().as_str()));
        assert!(dk.contains("redacted") && dp.contains("redacted"));
    }

    #[test]
    fn zero_keys() {
        assert!(PresharedKey::default().is_zero());
        assert!(PrivateKey::from_bytes([0; 32]).is_zero());
        assert!(!PrivateKey::generate(&mut OsRng).is_zero());
    }
}
