//! The transport AEAD: ChaCha20-Poly1305 (RFC 8439) with WireGuard's 64-bit counter nonce, keyed
//! once per keypair direction (kernel `chacha20poly1305.c` as used by `send.c`/`receive.c`).
//!
//! This is the one place data packets are encrypted and authenticated, so it is the one place to
//! make fast. [`TransportKey`] is `Sync`: crypto workers share it by reference.
//!
//! Why not `chacha20poly1305::ChaCha20Poly1305` here (it is still used for the handshake, see
//! `crypto.rs`, and as the reference in the tests below): in a default x86-64 build its Poly1305
//! picks AVX2 at run time but calls ~20 AVX2 intrinsics out of line, so every message pays
//! ~1.4 µs of key setup; 1420-byte packets seal at ~0.46 GB/s. `docs/aead.md` has the figures.
//! Instead:
//! - ChaCha20: on CPUs with AVX2 (detected at run time, so the binary still runs on any x86-64)
//!   an 8-blocks-at-a-time AVX2 keystream below ([`avx2`]); for messages of at most
//!   [`SMALL_MAX`] bytes, on other CPUs and other architectures, the `chacha20` crate (which
//!   itself picks AVX2/SSE2 at run time and inlines them properly).
//! - Poly1305: a scalar radix-2^64 implementation ([`Poly1305`]) whose per-message setup is a
//!   few instructions.
//!
//! Both are checked byte for byte against `chacha20poly1305` for every length 0..=2048 and random
//! keys and counters, and against the RFC 8439 vectors. Secrets (the key, the per-message
//! Poly1305 key and state, keystream scratch buffers) are zeroized when dropped.

use crate::crypto::{AuthError, TAG_LEN};
use chacha20::cipher::{KeyIvInit, StreamCipher};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Messages up to this many bytes use the `chacha20` crate even when AVX2 is present: it works
/// four blocks at a time, which is cheaper than eight when there are at most three to do (the
/// first block is the Poly1305 key).
pub const SMALL_MAX: usize = 192;

/// One direction's transport key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct TransportKey {
    key: [u8; 32],
    /// The key as ChaCha20 state words 4..12.
    words: [u32; 8],
    #[zeroize(skip)]
    avx2: bool,
}

impl std::fmt::Debug for TransportKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportKey(..)")
    }
}

/// The 12-byte ChaCha20 nonce for a WireGuard counter: 4 zero bytes, then the counter (LE).
fn nonce_bytes(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

#[cfg(target_arch = "x86_64")]
fn detect_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_avx2() -> bool {
    false
}

impl TransportKey {
    /// The key state for a 32-byte session key.
    #[expect(
        clippy::indexing_slicing,
        reason = "chunks_exact(4) yields 4-byte chunks, so c[0..4] is in bounds"
    )]
    pub fn new(key: &[u8; 32]) -> Self {
        let mut words = [0u32; 8];
        for (w, c) in words.iter_mut().zip(key.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        TransportKey {
            key: *key,
            words,
            avx2: detect_avx2(),
        }
    }

    /// The same key restricted to the portable code path (the `chacha20` crate for every
    /// length), whatever the CPU; for tests and benchmarks of that path.
    #[doc(hidden)]
    pub fn new_portable(key: &[u8; 32]) -> Self {
        let mut k = Self::new(key);
        k.avx2 = false;
        k
    }

    /// Which ChaCha20 code this key uses for long messages: "avx2-8x" or "chacha20-crate".
    pub fn backend(&self) -> &'static str {
        if self.avx2 {
            "avx2-8x"
        } else {
            "chacha20-crate"
        }
    }

    /// Encrypts `data` in place under `counter` (no associated data) and returns the tag.
    pub fn seal(&self, counter: u64, data: &mut [u8]) -> [u8; TAG_LEN] {
        let mut poly = self.encrypt(counter, data);
        poly.update_padded(data);
        poly.lengths(0, data.len() as u64);
        poly.finish()
    }

    /// Verifies `tag` and decrypts `data` in place under `counter`. On failure `data` is
    /// unspecified and must be dropped.
    pub fn open(
        &self,
        counter: u64,
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthError> {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 && data.len() > SMALL_MAX {
            // SAFETY: `avx2` is true only if the CPU has AVX2 (`detect_avx2`).
            return unsafe { self.open_avx2(counter, data, tag) };
        }
        self.open_portable(counter, data, tag)
    }

    /// Encrypts `data` and returns the Poly1305 state keyed for this message.
    fn encrypt(&self, counter: u64, data: &mut [u8]) -> Poly1305 {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 && data.len() > SMALL_MAX {
            // SAFETY: `avx2` is true only if the CPU has AVX2 (`detect_avx2`).
            return unsafe { self.encrypt_avx2(counter, data) };
        }
        self.encrypt_portable(counter, data)
    }

    /// `chacha20` crate path. The first keystream call covers the Poly1305 key block and the
    /// first three data blocks together (one four-block call instead of two).
    #[expect(
        clippy::indexing_slicing,
        reason = "head <= SMALL_MAX = 192 and the scratch is 256 bytes: 64 + head and ..32 are in bounds; head <= data.len()"
    )]
    fn encrypt_portable(&self, counter: u64, data: &mut [u8]) -> Poly1305 {
        let mut cipher = chacha20::ChaCha20::new(&self.key.into(), &nonce_bytes(counter).into());
        let mut first = Scratch::<{ 256 / 8 }>::new();
        let head = data.len().min(SMALL_MAX);
        let buf = first.bytes();
        buf[64..64 + head].copy_from_slice(&data[..head]);
        cipher.apply_keystream(&mut buf[..64 + head]);
        data[..head].copy_from_slice(&buf[64..64 + head]);
        cipher.apply_keystream(&mut data[head..]);
        Poly1305::new(&buf[..32])
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "head <= SMALL_MAX = 192 and the scratch is 256 bytes: 64 + head and ..32 are in bounds; head <= data.len()"
    )]
    fn open_portable(
        &self,
        counter: u64,
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthError> {
        let mut cipher = chacha20::ChaCha20::new(&self.key.into(), &nonce_bytes(counter).into());
        let mut first = Scratch::<{ 256 / 8 }>::new();
        let head = data.len().min(SMALL_MAX);
        let ks = first.bytes();
        cipher.apply_keystream(&mut ks[..64 + head]);
        let mut poly = Poly1305::new(&ks[..32]);
        poly.update_padded(data);
        poly.lengths(0, data.len() as u64);
        verify(poly.finish(), tag)?;
        for (d, k) in data[..head].iter_mut().zip(&ks[64..64 + head]) {
            *d ^= k;
        }
        cipher.apply_keystream(&mut data[head..]);
        Ok(())
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "head <= 448 and the scratch is 512 bytes: 64 + head and ..32 are in bounds; head <= data.len()"
    )]
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn encrypt_avx2(&self, counter: u64, data: &mut [u8]) -> Poly1305 {
        let nonce = nonce_words(counter);
        // Blocks 0..8 in one go: block 0 is the Poly1305 key, blocks 1..8 cover data[..448].
        let mut first = Scratch::<{ 512 / 8 }>::new();
        let head = data.len().min(448);
        let buf = first.bytes();
        buf[64..64 + head].copy_from_slice(&data[..head]);
        // SAFETY: AVX2 is enabled on this function; `buf` is 512 bytes.
        unsafe { avx2::xor_8_blocks(&self.words, &nonce, 0, buf) };
        data[..head].copy_from_slice(&buf[64..64 + head]);
        // SAFETY: as above.
        unsafe { avx2::xor_from(&self.words, &nonce, 8, &mut data[head..]) };
        Poly1305::new(&buf[..32])
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "head <= 448 and the scratch is 512 bytes: 64 + head and ..32 are in bounds; head <= data.len()"
    )]
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn open_avx2(
        &self,
        counter: u64,
        data: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthError> {
        let nonce = nonce_words(counter);
        let mut first = Scratch::<{ 512 / 8 }>::new();
        let ks = first.bytes();
        // SAFETY: AVX2 is enabled on this function; `ks` is 512 bytes.
        unsafe { avx2::xor_8_blocks(&self.words, &nonce, 0, ks) };
        let mut poly = Poly1305::new(&ks[..32]);
        poly.update_padded(data);
        poly.lengths(0, data.len() as u64);
        verify(poly.finish(), tag)?;
        let head = data.len().min(448);
        for (d, k) in data[..head].iter_mut().zip(&ks[64..64 + head]) {
            *d ^= k;
        }
        // SAFETY: as above.
        unsafe { avx2::xor_from(&self.words, &nonce, 8, &mut data[head..]) };
        Ok(())
    }
}

fn verify(computed: [u8; TAG_LEN], tag: &[u8; TAG_LEN]) -> Result<(), AuthError> {
    if bool::from(computed.ct_eq(tag)) {
        Ok(())
    } else {
        Err(AuthError)
    }
}

#[cfg(target_arch = "x86_64")]
fn nonce_words(counter: u64) -> [u32; 3] {
    [0, counter as u32, (counter >> 32) as u32]
}

/// A stack buffer of `W` u64 words (8·W bytes) for keystream, zeroed when made and zeroized on
/// drop. Held as words so that zeroizing it is W volatile stores rather than 8·W.
struct Scratch<const W: usize>([u64; W]);

impl<const W: usize> Scratch<W> {
    fn new() -> Self {
        Scratch([0; W])
    }
    /// All 8·W bytes.
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: u8 has no alignment or validity requirements; the words' storage is exactly
        // 8·W bytes, and the borrow of `self` covers the returned slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), W * 8) }
    }
}

impl<const W: usize> Drop for Scratch<W> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Poly1305 (RFC 8439 section 2.5) over 16-byte blocks, with the accumulator in radix 2^64:
/// h = h0 + h1·2^64 + h2·2^128 (h2 small), products in u128.
///
/// Constant time: straight-line u64/u128 arithmetic (x86-64 `mul` has data-independent
/// timing), no branch or index depends on the key or the message; the final reduction selects
/// with a mask. Branches only depend on lengths.
struct Poly1305 {
    r0: u64,
    r1: u64,
    /// r1 + r1/4 = 5·r1/4 (r1 is a multiple of 4 after clamping), for folding 2^128·r1.
    s1: u64,
    h0: u64,
    h1: u64,
    h2: u64,
    pad0: u64,
    pad1: u64,
}

impl Drop for Poly1305 {
    fn drop(&mut self) {
        let mut words = [
            &mut self.r0,
            &mut self.r1,
            &mut self.s1,
            &mut self.h0,
            &mut self.h1,
            &mut self.h2,
            &mut self.pad0,
            &mut self.pad1,
        ];
        for w in words.iter_mut() {
            w.zeroize();
        }
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "every caller passes at least 8 bytes: halves of 16-byte blocks and quarters of the 32-byte key"
)]
#[inline(always)]
fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

impl Poly1305 {
    /// `key` is the 32-byte one-time key (r, then s).
    #[expect(
        clippy::indexing_slicing,
        reason = "key is the first 32 bytes of a keystream block (callers slice ..32 of a 256- or 512-byte scratch): constant ranges below 32"
    )]
    #[inline(always)]
    fn new(key: &[u8]) -> Self {
        let r0 = le64(&key[0..8]) & 0x0fff_fffc_0fff_ffff;
        let r1 = le64(&key[8..16]) & 0x0fff_fffc_0fff_fffc;
        Poly1305 {
            r0,
            r1,
            s1: r1 + (r1 >> 2),
            h0: 0,
            h1: 0,
            h2: 0,
            pad0: le64(&key[16..24]),
            pad1: le64(&key[24..32]),
        }
    }

    /// h = (h + m + hibit·2^128) · r, partially reduced mod 2^130 - 5.
    ///
    /// Bounds: on entry h2 <= 4 (after a previous block) so the sum has h2 <= 6; r0, r1 < 2^60
    /// and s1 < 2^61, so d0, d1 < 2^127, d2 < 2^64 and 5·(d2 >> 2) < 2^64; on exit h2 <= 4.
    #[inline(always)]
    fn block(&mut self, m0: u64, m1: u64, hibit: u64) {
        let (r0, r1, s1) = (self.r0 as u128, self.r1 as u128, self.s1 as u128);
        let t = self.h0 as u128 + m0 as u128;
        let h0 = t as u64 as u128;
        let t = self.h1 as u128 + m1 as u128 + (t >> 64);
        let h1 = t as u64 as u128;
        let h2 = self.h2 + hibit + (t >> 64) as u64;
        // (h0 + h1·B + h2·B²)(r0 + r1·B), B = 2^64, using B²·r1 ≡ s1 (mod 2^130 - 5).
        let d0 = h0 * r0 + h1 * s1;
        let d1 = h0 * r1 + h1 * r0 + (h2 * self.s1) as u128 + (d0 >> 64);
        let d2 = h2 * self.r0 + (d1 >> 64) as u64;
        // Bits from 2^130 up are worth 5 times as much at the bottom.
        let c = (d2 & !3) as u128 + (d2 >> 2) as u128;
        let t = (d0 as u64) as u128 + c;
        self.h0 = t as u64;
        let t = (d1 as u64) as u128 + (t >> 64);
        self.h1 = t as u64;
        self.h2 = (d2 & 3) + (t >> 64) as u64;
    }

    /// Absorbs `data`, zero-padding a final partial block (the AEAD's pad16).
    #[expect(
        clippy::indexing_slicing,
        reason = "chunks_exact(16) chunks and a 16-byte array, sliced at constant offsets; rem.len() < 16"
    )]
    #[inline(always)]
    fn update_padded(&mut self, data: &[u8]) {
        let mut chunks = data.chunks_exact(16);
        for c in &mut chunks {
            self.block(le64(&c[0..8]), le64(&c[8..16]), 1);
        }
        let rem = chunks.remainder();
        if !rem.is_empty() {
            let mut b = [0u8; 16];
            b[..rem.len()].copy_from_slice(rem);
            self.block(le64(&b[0..8]), le64(&b[8..16]), 1);
            b.zeroize();
        }
    }

    /// The AEAD's final block: le64(aad_len) || le64(ciphertext_len).
    #[inline(always)]
    fn lengths(&mut self, aad: u64, text: u64) {
        self.block(aad, text, 1);
    }

    /// Plain Poly1305 of a message (a final partial block gets a 1 byte appended, no pad16).
    #[cfg(test)]
    fn update_unpadded(&mut self, data: &[u8]) {
        let mut chunks = data.chunks_exact(16);
        for c in &mut chunks {
            self.block(le64(&c[0..8]), le64(&c[8..16]), 1);
        }
        let rem = chunks.remainder();
        if !rem.is_empty() {
            let mut b = [0u8; 16];
            b[..rem.len()].copy_from_slice(rem);
            b[rem.len()] = 1;
            self.block(le64(&b[0..8]), le64(&b[8..16]), 0);
        }
    }

    /// The tag: (h mod 2^130 - 5) + s, mod 2^128.
    #[inline(always)]
    fn finish(&mut self) -> [u8; TAG_LEN] {
        // h < 5·2^128 < 2p here (h2 <= 4), so one conditional subtraction of p is enough:
        // g = h + 5 reaches 2^130 exactly when h >= p, and then h - p = g mod 2^130.
        let (h0, h1, h2) = (self.h0, self.h1, self.h2);
        let t = h0 as u128 + 5;
        let g0 = t as u64;
        let t = h1 as u128 + (t >> 64);
        let g1 = t as u64;
        let g2 = h2 + (t >> 64) as u64;
        let mask = 0u64.wrapping_sub(g2 >> 2);
        let h0 = (h0 & !mask) | (g0 & mask);
        let h1 = (h1 & !mask) | (g1 & mask);
        let t = h0 as u128 + self.pad0 as u128;
        let o1 = h1.wrapping_add(self.pad1).wrapping_add((t >> 64) as u64);
        let mut out = [0u8; TAG_LEN];
        out[..8].copy_from_slice(&(t as u64).to_le_bytes());
        out[8..].copy_from_slice(&o1.to_le_bytes());
        out
    }
}

/// ChaCha20 with AVX2, eight blocks at a time: one 256-bit register per state word, lane i
/// holding block `counter + i`; the result is transposed back to eight 64-byte blocks.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    // Every function here is only called from `#[target_feature(enable = "avx2")]` code after
    // run-time detection; `inline(always)` keeps the intrinsics inlined into that code.

    #[inline(always)]
    unsafe fn rot16(x: __m256i) -> __m256i {
        unsafe {
            _mm256_shuffle_epi8(
                x,
                _mm256_set_epi8(
                    13, 12, 15, 14, 9, 8, 11, 10, 5, 4, 7, 6, 1, 0, 3, 2, 13, 12, 15, 14, 9, 8, 11,
                    10, 5, 4, 7, 6, 1, 0, 3, 2,
                ),
            )
        }
    }

    #[inline(always)]
    unsafe fn rot8(x: __m256i) -> __m256i {
        unsafe {
            _mm256_shuffle_epi8(
                x,
                _mm256_set_epi8(
                    14, 13, 12, 15, 10, 9, 8, 11, 6, 5, 4, 7, 2, 1, 0, 3, 14, 13, 12, 15, 10, 9, 8,
                    11, 6, 5, 4, 7, 2, 1, 0, 3,
                ),
            )
        }
    }

    #[inline(always)]
    unsafe fn rotl<const L: i32, const R: i32>(x: __m256i) -> __m256i {
        unsafe { _mm256_or_si256(_mm256_slli_epi32::<L>(x), _mm256_srli_epi32::<R>(x)) }
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "x has 16 lanes and every call site passes constant indices below 16"
    )]
    #[inline(always)]
    unsafe fn quarter(x: &mut [__m256i; 16], a: usize, b: usize, c: usize, d: usize) {
        unsafe {
            x[a] = _mm256_add_epi32(x[a], x[b]);
            x[d] = rot16(_mm256_xor_si256(x[d], x[a]));
            x[c] = _mm256_add_epi32(x[c], x[d]);
            x[b] = rotl::<12, 20>(_mm256_xor_si256(x[b], x[c]));
            x[a] = _mm256_add_epi32(x[a], x[b]);
            x[d] = rot8(_mm256_xor_si256(x[d], x[a]));
            x[c] = _mm256_add_epi32(x[c], x[d]);
            x[b] = rotl::<7, 25>(_mm256_xor_si256(x[b], x[c]));
        }
    }

    /// 8x8 transpose of 32-bit lanes: output b holds lane b of every input.
    #[inline(always)]
    unsafe fn transpose(v: [__m256i; 8]) -> [__m256i; 8] {
        unsafe {
            let t0 = _mm256_unpacklo_epi32(v[0], v[1]);
            let t1 = _mm256_unpackhi_epi32(v[0], v[1]);
            let t2 = _mm256_unpacklo_epi32(v[2], v[3]);
            let t3 = _mm256_unpackhi_epi32(v[2], v[3]);
            let t4 = _mm256_unpacklo_epi32(v[4], v[5]);
            let t5 = _mm256_unpackhi_epi32(v[4], v[5]);
            let t6 = _mm256_unpacklo_epi32(v[6], v[7]);
            let t7 = _mm256_unpackhi_epi32(v[6], v[7]);
            let u0 = _mm256_unpacklo_epi64(t0, t2);
            let u1 = _mm256_unpackhi_epi64(t0, t2);
            let u2 = _mm256_unpacklo_epi64(t1, t3);
            let u3 = _mm256_unpackhi_epi64(t1, t3);
            let u4 = _mm256_unpacklo_epi64(t4, t6);
            let u5 = _mm256_unpackhi_epi64(t4, t6);
            let u6 = _mm256_unpacklo_epi64(t5, t7);
            let u7 = _mm256_unpackhi_epi64(t5, t7);
            [
                _mm256_permute2x128_si256::<0x20>(u0, u4),
                _mm256_permute2x128_si256::<0x20>(u1, u5),
                _mm256_permute2x128_si256::<0x20>(u2, u6),
                _mm256_permute2x128_si256::<0x20>(u3, u7),
                _mm256_permute2x128_si256::<0x31>(u0, u4),
                _mm256_permute2x128_si256::<0x31>(u1, u5),
                _mm256_permute2x128_si256::<0x31>(u2, u6),
                _mm256_permute2x128_si256::<0x31>(u3, u7),
            ]
        }
    }

    /// XORs keystream blocks `counter..counter + 8` into the 512 bytes at `out`.
    ///
    /// # Safety
    /// AVX2 must be available and `out` valid for 512 bytes of reads and writes.
    #[expect(
        clippy::indexing_slicing,
        reason = "x has 16 entries, lo and hi 8, and b < 8: constant-bounded indices"
    )]
    #[inline(always)]
    unsafe fn blocks8(key: &[u32; 8], nonce: &[u32; 3], counter: u32, out: *mut u8) {
        unsafe {
            let w = |x: u32| _mm256_set1_epi32(x as i32);
            let init = [
                w(0x6170_7865),
                w(0x3320_646e),
                w(0x7962_2d32),
                w(0x6b20_6574),
                w(key[0]),
                w(key[1]),
                w(key[2]),
                w(key[3]),
                w(key[4]),
                w(key[5]),
                w(key[6]),
                w(key[7]),
                _mm256_add_epi32(w(counter), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0)),
                w(nonce[0]),
                w(nonce[1]),
                w(nonce[2]),
            ];
            let mut x = init;
            for _ in 0..10 {
                quarter(&mut x, 0, 4, 8, 12);
                quarter(&mut x, 1, 5, 9, 13);
                quarter(&mut x, 2, 6, 10, 14);
                quarter(&mut x, 3, 7, 11, 15);
                quarter(&mut x, 0, 5, 10, 15);
                quarter(&mut x, 1, 6, 11, 12);
                quarter(&mut x, 2, 7, 8, 13);
                quarter(&mut x, 3, 4, 9, 14);
            }
            for (xi, ii) in x.iter_mut().zip(init.iter()) {
                *xi = _mm256_add_epi32(*xi, *ii);
            }
            let lo = transpose([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
            let hi = transpose([x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15]]);
            for b in 0..8 {
                let p = out.add(64 * b).cast::<__m256i>();
                _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), lo[b]));
                let p = out.add(64 * b + 32).cast::<__m256i>();
                _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), hi[b]));
            }
        }
    }

    /// XORs keystream blocks `counter..counter + 8` into `buf[..512]`.
    ///
    /// # Safety
    /// AVX2 must be available. Does nothing if `buf` is shorter than 512 bytes.
    #[inline(always)]
    pub(super) unsafe fn xor_8_blocks(
        key: &[u32; 8],
        nonce: &[u32; 3],
        counter: u32,
        buf: &mut [u8],
    ) {
        if buf.len() >= 512 {
            // SAFETY: 512 bytes are in bounds; AVX2 per this function's contract.
            unsafe { blocks8(key, nonce, counter, buf.as_mut_ptr()) }
        }
    }

    /// XORs the keystream from block `counter` on into `data`.
    ///
    /// # Safety
    /// AVX2 must be available.
    #[expect(
        clippy::indexing_slicing,
        reason = "n = rest.len() is a chunks_exact(512) remainder, below the 512-byte scratch"
    )]
    #[inline(always)]
    pub(super) unsafe fn xor_from(key: &[u32; 8], nonce: &[u32; 3], counter: u32, data: &mut [u8]) {
        let mut counter = counter;
        let mut chunks = data.chunks_exact_mut(512);
        for c in &mut chunks {
            // SAFETY: `c` is 512 bytes; AVX2 per this function's contract.
            unsafe { blocks8(key, nonce, counter, c.as_mut_ptr()) };
            counter = counter.wrapping_add(8);
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut tail = super::Scratch::<{ 512 / 8 }>::new();
            let buf = tail.bytes();
            let n = rest.len();
            buf[..n].copy_from_slice(rest);
            // SAFETY: `buf` is 512 bytes; AVX2 per this function's contract.
            unsafe { blocks8(key, nonce, counter, buf.as_mut_ptr()) };
            rest.copy_from_slice(&buf[..n]);
        }
    }
}

#[cfg(test)]
mod tests;
