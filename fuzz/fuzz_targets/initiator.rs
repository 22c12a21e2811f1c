//! Device A after it sent an initiation to B, fed arbitrary responses and cookie replies from
//! B's address.
//!
//! Input: chunks (see `wgd_fuzz::Chunks`), each one datagram. Chunk flags:
//! - bit 1: leave the datagram as fuzzed (otherwise a response gets A's pending sender index as
//!   its receiver and a recomputed MAC1, a cookie reply gets the pending index as its receiver);
//! - bit 3: run A's timers first (a retransmission picks a new pending index);
//! - bits 4-7: advance the clock by that many seconds first.
//!
//! Invariants: an accepted response installs a current keypair and sends the confirming
//! keepalive; after an accepted cookie reply the next initiation carries a MAC2.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use wgd::proto::constants::REKEY_TIMEOUT;
use wgd::proto::messages::{self, Initiation, RESPONSE_LEN, Response};
use wgd::proto::{DropReason, Received};
use wgd::proto::{Endpoint, TransmitKind};
use wgd_fuzz::{B_ADDR, Chunks, initiated, set_mac1, take};

fuzz_target!(|data: &[u8]| {
    let (mut a, pa, _init) = initiated();
    let pub_a = a.public_key();
    let mut now = wgd_fuzz::start();
    for (flags, body) in Chunks::new(data) {
        now = now.after(Duration::from_secs(u64::from(flags >> 4)));
        let mut out = Vec::new();
        if flags & 8 != 0 {
            a.tick(now, &mut out);
        }
        let pending = a.peer(pa).and_then(|p| p.handshake().local_index());
        let mut msg = body.to_vec();
        let mut fixed = false;
        if let Some(idx) = pending.filter(|_| flags & 2 == 0) {
            let idx = idx.to_le_bytes();
            match messages::message_type(&msg) {
                Ok(messages::TYPE_RESPONSE) if msg.len() >= 12 => {
                    msg[8..12].copy_from_slice(&idx);
                    set_mac1(&pub_a, &mut msg, Response::MAC1_OFFSET);
                    fixed = msg.len() == RESPONSE_LEN;
                }
                Ok(messages::TYPE_COOKIE_REPLY) if msg.len() >= 8 => {
                    msg[4..8].copy_from_slice(&idx);
                }
                _ => {}
            }
        }
        out.clear();
        let r = a.receive(now, Endpoint::new(B_ADDR), &mut msg, &mut out);
        if fixed {
            assert_ne!(r, Err(DropReason::InvalidMac), "recomputed MAC1 refused");
            assert_ne!(r, Err(DropReason::UnknownIndex), "pending index unknown");
        }
        match r {
            Ok(Received::Handshake(id)) => {
                assert_eq!(id, pa);
                let peer = a.peer(pa).expect("peer exists");
                assert!(
                    peer.current_keypair().is_some(),
                    "no keypair after response"
                );
                assert!(
                    take(&out, TransmitKind::Keepalive).is_some(),
                    "no confirming keepalive"
                );
            }
            Ok(Received::CookieReply(id)) => {
                assert_eq!(id, pa);
                // The next initiation (one REKEY_TIMEOUT later) carries MAC2 from the cookie.
                now = now.after(REKEY_TIMEOUT);
                let mut out = Vec::new();
                a.initiate(pa, now, &mut out);
                let init = take(&out, TransmitKind::Initiation).expect("new initiation");
                let init = Initiation::parse(&init).expect("own initiation parses");
                assert_ne!(init.mac2, [0u8; 16], "no MAC2 after an accepted cookie");
            }
            Ok(_) | Err(_) => {}
        }
    }
});
