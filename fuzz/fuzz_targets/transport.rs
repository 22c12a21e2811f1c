//! The transport receive path of a live session: B (the responder, session confirmed) receives
//! datagrams from A's address; decryption, the replay window, keypair rules, the inner-packet
//! parser and the AllowedIPs source check (as the daemon does it) all run.
//!
//! Input: one mode byte, then chunks (see `wgd_fuzz::Chunks`).
//! - Mode bit 0 clear: raw datagrams. Unless chunk flag bit 1 is set, the type is forced to 4
//!   and the receiver index to B's current one, so the datagram reaches the AEAD.
//! - Mode bit 0 set: each chunk body is a plaintext that A seals for B with its real keypair
//!   (so arbitrary inner packets reach the parser and the AllowedIPs check). Chunk flags:
//!   bit 2: the body's first 8 bytes (LE) become A's send counter first; bit 3: flip one bit of
//!   the sealed datagram (it must then be dropped); bit 0: deliver it twice (the replay must be
//!   dropped).
//! - Chunk flag bits 4-7 advance the clock by that many seconds first (both modes).
//!
//! Invariants: a tampered datagram never decrypts; a replay is never accepted; what B decrypts
//! is exactly what A sealed; the inner packet's length and source are consistent; the device
//! delivers a packet exactly when its source is inside A's prefixes (the trie's verdict equals
//! a direct prefix comparison).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use wgd::proto::Now;
use wgd::proto::allowedips::packet_src;
use wgd::proto::messages::{TRANSPORT_MIN_LEN, TYPE_TRANSPORT};
use wgd::proto::{DropReason, Received};
use wgd::proto::{Endpoint, inner_packet};
use wgd_fuzz::{A_ADDR, Chunks, Session, in_a_prefixes};

/// Delivers `dgram` to B and checks what comes out against the plaintext A sealed, if known.
fn deliver(s: &mut Session, now: Now, dgram: &mut [u8], plain: Option<&[u8]>) -> bool {
    let mut out = Vec::new();
    let r = s.b.receive(now, Endpoint::new(A_ADDR), dgram, &mut out);
    match r {
        Ok(Received::Data {
            peer,
            offset,
            len,
            source,
        }) => {
            assert_eq!(peer, s.pb);
            let inner = dgram
                .get(offset..offset + len)
                .expect("inner packet in buffer");
            assert_eq!(inner_packet(inner).map(|(_, src)| src), Some(source));
            assert_eq!(packet_src(inner), Some(source));
            if let Some(p) = plain {
                // A padded the plaintext with zeros up to the sealed length.
                let sealed_plain = dgram.len().saturating_sub(TRANSPORT_MIN_LEN);
                let mut padded = p.to_vec();
                padded.resize(sealed_plain.max(p.len()), 0);
                let expect = padded
                    .get(..len)
                    .expect("inner packet within the plaintext");
                assert_eq!(inner, expect, "decrypted bytes differ from the sealed ones");
                assert_eq!(inner_packet(&padded), Some((len, source)));
            }
            // The device's source check: only A's own sources are delivered.
            assert!(in_a_prefixes(source), "delivered a packet from {source}");
            true
        }
        Err(DropReason::SourceNotAllowed) => {
            // Authenticated, but the inner source is not A's (checked without the trie).
            if let Some(p) = plain {
                let mut padded = p.to_vec();
                padded.resize(
                    dgram.len().saturating_sub(TRANSPORT_MIN_LEN).max(p.len()),
                    0,
                );
                let src = inner_packet(&padded).map(|(_, src)| src);
                assert!(src.is_some_and(|a| !in_a_prefixes(a)), "{src:?} refused");
            }
            true
        }
        Ok(Received::Keepalive(peer)) => {
            assert_eq!(peer, s.pb);
            if let Some(p) = plain {
                assert!(p.is_empty(), "non-empty plaintext received as a keepalive");
            }
            true
        }
        Ok(_) => true,
        Err(_) => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut s = Session::new();
    let mut now = s.now;
    for (flags, body) in Chunks::new(rest) {
        now = now.after(Duration::from_secs(u64::from(flags >> 4)));
        if mode & 1 == 0 {
            let mut dgram = body.to_vec();
            if flags & 2 == 0 && dgram.len() >= 8 {
                dgram[..4].copy_from_slice(&TYPE_TRANSPORT.to_le_bytes());
                dgram[4..8].copy_from_slice(&s.b_index().to_le_bytes());
            }
            deliver(&mut s, now, &mut dgram, None);
            continue;
        }
        if flags & 4 != 0
            && let Some((&c, _)) = body.split_first_chunk::<8>()
            && let Some(kp) = s.a.peer_mut(s.pa).and_then(|p| p.current_keypair_mut())
        {
            kp.set_send_counter(u64::from_le_bytes(c));
        }
        let Some(sealed) = s.seal_a(now, body) else {
            continue;
        };
        if flags & 8 != 0 {
            let mut bad = sealed.clone();
            let at = usize::from(body.first().copied().unwrap_or(0)) * 7 % bad.len();
            bad[at] ^= 1 << (flags & 7);
            assert!(
                !deliver(&mut s, now, &mut bad, None),
                "a datagram with a flipped bit was accepted"
            );
        }
        let mut first = sealed.clone();
        deliver(&mut s, now, &mut first, Some(body));
        if flags & 1 != 0 {
            let mut again = sealed;
            assert!(
                !deliver(&mut s, now, &mut again, Some(body)),
                "a replayed datagram was accepted"
            );
        }
    }
});
