//! Unit tests of `keypair.rs`.

use super::*;
use crate::crypto::SecretBytes;
use crate::proto::constants::DEFAULT_MTU;
use std::time::Duration;

pub(crate) fn pair(now: Instant) -> (Keypair, Keypair) {
    let k1 = SecretBytes::new([1u8; 32]);
    let k2 = SecretBytes::new([2u8; 32]);
    let a = Keypair::new(
        SessionKeys {
            send: k1.clone(),
            recv: k2.clone(),
            local_index: 10,
            remote_index: 20,
            initiator: true,
        },
        now,
    );
    let b = Keypair::new(
        SessionKeys {
            send: k2,
            recv: k1,
            local_index: 20,
            remote_index: 10,
            initiator: false,
        },
        now,
    );
    (a, b)
}

fn packet(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; Keypair::sealed_len(payload.len(), DEFAULT_MTU)];
    v[16..16 + payload.len()].copy_from_slice(payload);
    v
}

#[test]
fn seal_open_with_padding() {
    let t = Instant::from_nanos(1);
    let (mut a, mut b) = pair(t);
    for len in [0usize, 1, 15, 16, 17, 100, 1419, 1420] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut buf = packet(&payload);
        let n = a.seal(t, &mut buf, len, DEFAULT_MTU).unwrap();
        assert_eq!(n, 16 + padded_len(len, DEFAULT_MTU) + 16);
        if len <= 1408 {
            assert_eq!((n - 32) % 16, 0, "padded to a multiple of 16");
        } else {
            assert_eq!(n - 32, DEFAULT_MTU, "padding stops at the MTU");
        }
        assert_eq!(u32::from_le_bytes(buf[4..8].try_into().unwrap()), 20);
        let (_, plen) = b.open(t, &mut buf[..n]).unwrap();
        assert_eq!(&buf[16..16 + len], &payload[..]);
        assert!(buf[16 + len..16 + plen].iter().all(|&x| x == 0));
    }
    // A keepalive is exactly 32 bytes.
    let mut ka = [0u8; 32];
    assert_eq!(a.seal(t, &mut ka, 0, DEFAULT_MTU).unwrap(), 32);
    assert_eq!(b.open(t, &mut ka).unwrap().1, 0);
}

#[test]
fn replay_truncation_and_bit_flips_dropped() {
    let t = Instant::from_nanos(1);
    let (mut a, mut b) = pair(t);
    let mut buf = packet(b"hello");
    let n = a.seal(t, &mut buf, 5, DEFAULT_MTU).unwrap();
    let sealed = buf[..n].to_vec();
    // Every single-bit flip fails. (The receiver index, bytes 4..8, selects the keypair; the
    // device drops unknown indices before this point.)
    for byte in (0..4).chain(8..n) {
        let mut m = sealed.clone();
        m[byte] ^= 0x01;
        assert!(b.open(t, &mut m).is_err(), "flip at {byte}");
    }
    // Truncations fail.
    for cut in 0..n {
        let mut m = sealed[..cut].to_vec();
        assert!(b.open(t, &mut m).is_err(), "cut {cut}");
    }
    // The window was not touched by the failures: the original still opens, once.
    let mut m = sealed.clone();
    assert!(b.open(t, &mut m).is_ok());
    let mut m = sealed.clone();
    assert_eq!(b.open(t, &mut m), Err(OpenError::Replay));
}

#[test]
fn reordering_within_and_beyond_window() {
    let t = Instant::from_nanos(1);
    let (mut a, mut b) = pair(t);
    let mut sealed = Vec::new();
    for i in 0..9000u32 {
        let mut buf = packet(&i.to_le_bytes());
        let n = a.seal(t, &mut buf, 4, DEFAULT_MTU).unwrap();
        buf.truncate(n);
        sealed.push(buf);
    }
    // Newest first, then the rest backwards: accepted while within 8128 of the newest.
    let newest = sealed.len() - 1;
    assert!(b.open(t, &mut sealed[newest].clone()).is_ok());
    for i in (0..newest).rev() {
        let r = b.open(t, &mut sealed[i].clone());
        if (newest - i) as u64 <= crate::proto::constants::COUNTER_WINDOW_SIZE {
            assert!(r.is_ok(), "{i}");
        } else {
            assert_eq!(r, Err(OpenError::Replay), "{i}");
        }
    }
}

#[test]
fn expiry_by_time_and_count() {
    let t = Instant::from_nanos(1);
    let (mut a, mut b) = pair(t);
    let late = t.plus(REJECT_AFTER_TIME);
    let mut buf = packet(b"x");
    assert_eq!(
        a.seal(late, &mut buf, 1, DEFAULT_MTU),
        Err(SealError::Expired)
    );
    let (mut a, _) = pair(t);
    let mut buf = packet(b"x");
    let n = a.seal(t, &mut buf, 1, DEFAULT_MTU).unwrap();
    assert_eq!(b.open(late, &mut buf[..n]), Err(OpenError::Expired));
    let (mut a, _) = pair(t);
    a.set_send_counter(REJECT_AFTER_MESSAGES - 1);
    assert!(a.seal(t, &mut packet(b"x"), 1, DEFAULT_MTU).is_ok());
    assert_eq!(
        a.seal(t, &mut packet(b"x"), 1, DEFAULT_MTU),
        Err(SealError::Expired)
    );
    // Once invalid, stays invalid.
    a.set_send_counter(0);
    assert!(!a.can_send(t));
    let _ = Duration::ZERO;
}

#[test]
fn batch_round_trip() {
    let t = Instant::from_nanos(1);
    let (mut a, mut b) = pair(t);
    let mut store: Vec<Vec<u8>> = (0..64u8).map(|i| packet(&[i; 100])).collect();
    let mut lens = vec![100usize; 64];
    let mut bufs: Vec<&mut [u8]> = store.iter_mut().map(|v| v.as_mut_slice()).collect();
    assert_eq!(
        a.seal_batch(t, &mut bufs, &mut lens, DEFAULT_MTU),
        (64, None)
    );
    let mut rx: Vec<&mut [u8]> = bufs
        .iter_mut()
        .zip(&lens)
        .map(|(b, &n)| &mut b[..n])
        .collect();
    let mut results = vec![Err(OpenError::Malformed); 64];
    b.open_batch(t, &mut rx, &mut results);
    for (i, r) in results.iter().enumerate() {
        assert_eq!(*r, Ok((i as u64, 112)));
        assert_eq!(rx[i][16..116], [i as u8; 100]);
    }
}
