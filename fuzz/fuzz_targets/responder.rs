//! Device B (fixed keys, A as its one peer) fed arbitrary handshake datagrams from A's address.
//!
//! Input: chunks (see `wgd_fuzz::Chunks`), each one datagram. Chunk flags:
//! - bit 0: B is under load before this datagram (`note_handshake_queue_len`), so MAC2 counts;
//! - bit 1: leave MAC1 as fuzzed (otherwise it is recomputed over the fuzzed bytes, so the
//!   datagram gets past MAC1 into the Noise code);
//! - bit 2: write MAC1 and MAC2 with an initiator-side cookie jar, which holds the cookie from
//!   any earlier cookie reply of B (so a later chunk can pass the MAC2 check);
//! - bits 4-7: advance the clock by that many times 7 ms first (initiation flood limit).
//!
//! Invariants: a fixed MAC1 is never refused; a cookie reply comes only under load, answers the
//! datagram's sender index and decrypts for the jar that wrote MAC1; an accepted initiation is
//! from A and answered by one response to its sender index.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use wgd::proto::constants::UNDER_LOAD_QUEUE_THRESHOLD;
use wgd::proto::cookie::CookieJar;
use wgd::proto::messages::{self, CookieReply, Message, Response};
use wgd::proto::{DropReason, Received};
use wgd::proto::{Endpoint, TransmitKind};
use wgd_fuzz::{A_ADDR, Chunks, device_b, mac1_offset, set_mac1, start, take};

fuzz_target!(|data: &[u8]| {
    let (mut b, pb) = device_b();
    let pub_b = b.public_key();
    let mut jar = CookieJar::new(&pub_b);
    let mut now = start();
    for (flags, body) in Chunks::new(data) {
        now = now.after(Duration::from_millis(u64::from(flags >> 4) * 7));
        if flags & 1 != 0 {
            b.note_handshake_queue_len(now.mono, UNDER_LOAD_QUEUE_THRESHOLD);
        }
        let under_load = b.is_under_load(now.mono);
        let mut msg = body.to_vec();
        let mac1_at = mac1_offset(&msg);
        let mut fixed = false;
        let mut jar_wrote = false;
        if let Some(at) = mac1_at.filter(|_| flags & 2 == 0) {
            if flags & 4 != 0 {
                jar.add_macs(now.mono, &mut msg, at);
                jar_wrote = msg.len() >= at + 32;
            } else {
                set_mac1(&pub_b, &mut msg, at);
            }
            fixed = msg.len() >= at + 32;
        }
        let parsed = Message::parse(&msg);
        let sender = match &parsed {
            Ok(Message::Initiation(m)) => Some(m.sender),
            Ok(Message::Response(m)) => Some(m.sender),
            _ => None,
        };
        let before = b.stats;
        let mut out = Vec::new();
        let r = b.receive(now, Endpoint::new(A_ADDR), &mut msg, &mut out);
        if fixed && parsed.is_ok() {
            assert_ne!(r, Err(DropReason::InvalidMac), "recomputed MAC1 refused");
        }
        match r {
            Ok(Received::CookieSent) => {
                assert!(under_load, "cookie reply while not under load");
                assert_eq!(b.stats.cookie_replies_sent, before.cookie_replies_sent + 1);
                let bytes = take(&out, TransmitKind::CookieReply).expect("cookie reply sent");
                let reply = CookieReply::parse(&bytes).expect("own cookie reply parses");
                assert_eq!(Some(reply.receiver), sender);
                if jar_wrote {
                    jar.consume_reply(now.mono, &reply)
                        .expect("cookie reply does not decrypt for the MAC1 it answers");
                }
            }
            Ok(Received::Handshake(id)) => {
                assert_eq!(id, pb);
                assert_eq!(
                    b.stats.handshakes_processed,
                    before.handshakes_processed + 1
                );
                if let Ok(Message::Initiation(m)) = &parsed {
                    let resp = take(&out, TransmitKind::Response).expect("response sent");
                    let resp = Response::parse(&resp).expect("own response parses");
                    assert_eq!(resp.receiver, m.sender);
                    assert_eq!(out.len(), 1);
                }
            }
            Ok(_) | Err(_) => {}
        }
        if !matches!(r, Ok(Received::CookieSent)) {
            assert!(
                take(&out, TransmitKind::CookieReply).is_none(),
                "cookie reply without CookieSent"
            );
        }
        let _ = messages::message_type(&msg);
    }
});
