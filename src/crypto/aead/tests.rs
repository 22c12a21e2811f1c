//! Unit tests of `aead.rs`.

use super::*;
use crate::crypto;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

fn reference_seal(key: &[u8; 32], counter: u64, data: &mut [u8]) -> [u8; TAG_LEN] {
    let c = chacha20poly1305::ChaCha20Poly1305::new(key.into());
    c.encrypt_in_place_detached(&crypto::nonce(counter), &[], data)
        .expect("reference seal")
        .into()
}

fn both(key: &[u8; 32]) -> [TransportKey; 2] {
    [TransportKey::new(key), TransportKey::new_portable(key)]
}

#[test]
fn matches_chacha20poly1305_for_every_length() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    for len in 0..=2048usize {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        // Counters near 0, near 2^32 (the nonce's word boundary) and anywhere.
        let counter = match len % 3 {
            0 => rng.next_u64() % 4,
            1 => (1u64 << 32) - 2 + rng.next_u64() % 4,
            _ => rng.next_u64(),
        };
        let mut plain = vec![0u8; len];
        rng.fill_bytes(&mut plain);
        let mut want = plain.clone();
        let want_tag = reference_seal(&key, counter, &mut want);
        for k in both(&key) {
            let mut got = plain.clone();
            let tag = k.seal(counter, &mut got);
            assert_eq!(got, want, "ciphertext, len {len}, {}", k.backend());
            assert_eq!(tag, want_tag, "tag, len {len}, {}", k.backend());
            k.open(counter, &mut got, &tag)
                .unwrap_or_else(|_| panic!("open, len {len}, {}", k.backend()));
            assert_eq!(got, plain, "round trip, len {len}, {}", k.backend());
        }
    }
}

#[test]
fn random_cases_match_reference() {
    let mut rng = ChaCha20Rng::seed_from_u64(55);
    for _ in 0..3000 {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let counter = rng.next_u64();
        let len = (rng.next_u32() % 9000) as usize;
        let mut plain = vec![0u8; len];
        rng.fill_bytes(&mut plain);
        let mut want = plain.clone();
        let want_tag = reference_seal(&key, counter, &mut want);
        for k in both(&key) {
            let mut got = plain.clone();
            assert_eq!(k.seal(counter, &mut got), want_tag);
            assert_eq!(got, want);
        }
    }
}

#[test]
fn tampering_is_rejected() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for len in [
        0usize, 1, 15, 16, 17, 63, 64, 191, 192, 193, 448, 449, 1420, 8192,
    ] {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        for k in both(&key) {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut sealed = plain.clone();
            let tag = k.seal(42, &mut sealed);
            assert!(len == 0 || sealed != plain);
            let mut ok = sealed.clone();
            k.open(42, &mut ok, &tag).expect("genuine packet opens");
            assert_eq!(ok, plain);
            assert!(k.open(43, &mut sealed.clone(), &tag).is_err(), "counter");
            let mut other_key = key;
            other_key[0] ^= 1;
            let other = TransportKey::new(&other_key);
            assert!(other.open(42, &mut sealed.clone(), &tag).is_err(), "key");
            for bit in [0usize, 7, 8 * len.saturating_sub(1), 4 * len] {
                if len == 0 {
                    break;
                }
                let mut m = sealed.clone();
                m[bit / 8 % len] ^= 1 << (bit % 8);
                assert!(k.open(42, &mut m, &tag).is_err(), "flip {bit} of {len}");
            }
            for i in 0..TAG_LEN {
                let mut t = tag;
                t[i] ^= 0x80;
                assert!(k.open(42, &mut sealed.clone(), &t).is_err(), "tag byte {i}");
            }
            if len > 0 {
                let mut short = sealed[..len - 1].to_vec();
                assert!(k.open(42, &mut short, &tag).is_err(), "truncated");
            }
        }
    }
}

#[test]
fn failed_open_does_not_decrypt() {
    let k = TransportKey::new(&[3; 32]);
    for len in [100usize, 1420] {
        let mut sealed = vec![9u8; len];
        let mut tag = k.seal(1, &mut sealed);
        tag[0] ^= 1;
        let mut m = sealed.clone();
        assert!(k.open(1, &mut m, &tag).is_err());
        assert_eq!(m, sealed, "ciphertext left as it was");
    }
}

#[test]
fn rfc8439_aead_vector() {
    // RFC 8439 2.4.2 (ChaCha20 encryption). The AEAD as a whole is checked against the
    // chacha20poly1305 crate above.
    let key: [u8; 32] = std::array::from_fn(|i| i as u8);
    let nonce = [0, 0, 0, 0, 0, 0, 0, 0x4a, 0, 0, 0, 0];
    let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    // 2.4.2 uses counter 1 and nonce 000000000000004a00000000: our block 1 onwards with
    // the nonce words (0, 0x4a000000, 0), which a WireGuard counter cannot produce, so
    // drive the AVX2 code directly when present.
    let want_start = [0x6eu8, 0x2e, 0x35, 0x9a, 0x25, 0x68, 0xf9, 0x80];
    let want_end = [0x87u8, 0x4d];
    let mut c = chacha20::ChaCha20::new(&key.into(), &nonce.into());
    let mut buf = [0u8; 64];
    c.apply_keystream(&mut buf);
    let mut ct = plain.to_vec();
    c.apply_keystream(&mut ct);
    assert_eq!(ct[..8], want_start);
    assert_eq!(ct[ct.len() - 2..], want_end);
    #[cfg(target_arch = "x86_64")]
    if detect_avx2() {
        let words: [u32; 8] =
            std::array::from_fn(|i| u32::from_le_bytes(std::array::from_fn(|j| (4 * i + j) as u8)));
        let mut got = plain.to_vec();
        // SAFETY: AVX2 detected above.
        unsafe { avx2::xor_from(&words, &[0, 0x4a00_0000, 0], 1, &mut got) };
        assert_eq!(got, ct);
    }
}

#[test]
fn rfc8439_poly1305_vectors() {
    // RFC 8439 2.5.2.
    let key: [u8; 32] = [
        0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33, 0x7f, 0x44, 0x52, 0xfe, 0x42, 0xd5, 0x06,
        0xa8, 0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d, 0xb2, 0xfd, 0x4a, 0xbf, 0xf6, 0xaf, 0x41, 0x49,
        0xf5, 0x1b,
    ];
    let mut p = Poly1305::new(&key);
    p.update_unpadded(b"Cryptographic Forum Research Group");
    assert_eq!(
        p.finish(),
        [
            0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01,
            0x27, 0xa9
        ]
    );
    // RFC 8439 A.3 #3 (r = 0 ... s = key half) and the carry edge cases #6/#7/#10/#11.
    let mut k = [0u8; 32];
    k[..16].copy_from_slice(&[
        0x36, 0xe5, 0xf6, 0xb5, 0xc5, 0xe0, 0x60, 0x70, 0xf0, 0xef, 0xca, 0x96, 0x22, 0x7a, 0x86,
        0x3e,
    ]);
    let text = b"Any submission to the IETF intended by the Contributor for publication as all or part of an IETF Internet-Draft or RFC and any statement made within the context of an IETF activity is considered an \"IETF Contribution\". Such statements include oral statements in IETF sessions, as well as written and electronic communications made at any time or place, which are addressed to";
    let mut p = Poly1305::new(&k);
    p.update_unpadded(text);
    assert_eq!(
        p.finish(),
        [
            0xf3, 0x47, 0x7e, 0x7c, 0xd9, 0x54, 0x17, 0xaf, 0x89, 0xa6, 0xb8, 0x79, 0x4c, 0x31,
            0x0c, 0xf0
        ]
    );
    let edge = |key: [u8; 32], msg: &[u8], want: [u8; 16]| {
        let mut p = Poly1305::new(&key);
        p.update_unpadded(msg);
        assert_eq!(p.finish(), want);
    };
    let mut r2 = [0u8; 32];
    r2[0] = 2;
    // A.3 #6: h reaches 2^130 - 5 + something: R = 2, M = ff..ff, S = 0 -> 03 00..
    edge(r2, &[0xff; 16], {
        let mut t = [0u8; 16];
        t[0] = 3;
        t
    });
    // A.3 #7: R = 2, S = ff..ff, M = 02 00.. -> 03 00..
    let mut k7 = r2;
    k7[16..].copy_from_slice(&[0xff; 16]);
    let mut m7 = [0u8; 16];
    m7[0] = 2;
    edge(k7, &m7, {
        let mut t = [0u8; 16];
        t[0] = 3;
        t
    });
    // A.3 #8: R = 1, M = ff..ff (16) || fb fe .. fe (16) || 01 01 .. 01 (16) -> 0
    let mut r1 = [0u8; 32];
    r1[0] = 1;
    let mut m11 = vec![0xffu8; 16];
    m11.push(0xfb);
    m11.extend_from_slice(&[0xfe; 15]);
    m11.extend_from_slice(&[0x01; 16]);
    edge(r1, &m11, [0; 16]);
}

#[test]
fn poly1305_matches_crate() {
    use poly1305::universal_hash::KeyInit as _;
    let mut rng = ChaCha20Rng::seed_from_u64(1305);
    for len in 0..=2048usize {
        for _ in 0..2 {
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            if len % 7 == 0 {
                // Extreme keys: all r bits that survive clamping set, s all ones.
                key = [0xff; 32];
            }
            let mut msg = vec![0u8; len];
            rng.fill_bytes(&mut msg);
            if len % 5 == 0 {
                msg.fill(0xff);
            }
            let want: [u8; 16] = poly1305::Poly1305::new(&key.into())
                .compute_unpadded(&msg)
                .into();
            let mut p = Poly1305::new(&key);
            p.update_unpadded(&msg);
            assert_eq!(p.finish(), want, "len {len}");
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

#[test]
fn key_is_sync_and_debug_hides_it() {
    fn is_sync<T: Sync + Send>() {}
    is_sync::<TransportKey>();
    let s = format!("{:?}", TransportKey::new(&[0xab; 32]));
    assert!(
        !s.contains("171") && !s.to_lowercase().contains("ab"),
        "{s}"
    );
}
