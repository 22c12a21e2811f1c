//! The handshake receive path under load, sans-IO on a simulated clock: the kernel's order of
//! checks (exact size → MAC1 → under load: MAC2, else a cookie reply → per-source rate limiter →
//! DH), the rate limiter's 5 + 20/s per source, and a flood of forged initiations that costs no
//! DH while a legitimate peer still gets through the cookie path.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use wgd::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use wgd::proto::Now;
use wgd::proto::PeerId;
use wgd::proto::constants::{REKEY_TIMEOUT, UNDER_LOAD_QUEUE_THRESHOLD};
use wgd::proto::cookie::CookieJar;
use wgd::proto::messages::{CookieReply, INITIATION_LEN, Initiation};
use wgd::proto::noise::{Handshake, HandshakeError};
use wgd::proto::ratelimits::{MAX_ENTRIES, PACKETS_BURSTABLE, PACKETS_PER_SECOND};
use wgd::proto::{Device, DropReason, Received};
use wgd::proto::{Endpoint, PeerError, Transmit, TransmitKind};

const B_ADDR: &str = "198.18.0.2:51820";

fn rng(seed: u64) -> Box<ChaCha8Rng> {
    Box::new(ChaCha8Rng::seed_from_u64(seed))
}

fn start() -> Now {
    Now::simulated(
        Duration::from_secs(1000),
        Duration::from_secs(1_700_000_000),
    )
}

/// An initiator outside any Device: builds real initiations for one configured peer of the
/// responder, with MAC1 and (once it holds a cookie) MAC2, from one source address.
struct Initiator {
    key: PrivateKey,
    hs: Handshake,
    jar: CookieJar,
    src: SocketAddr,
    rng: ChaCha8Rng,
    index: u32,
}

impl Initiator {
    fn new(seed: u64, responder: PublicKey, src: &str) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let key = PrivateKey::generate(&mut r);
        Initiator {
            hs: Handshake::new(&key, responder, PresharedKey::default()),
            jar: CookieJar::new(&responder),
            key,
            src: src.parse().unwrap(),
            rng: r,
            index: 0,
        }
    }

    fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    fn initiation(&mut self, now: Now) -> Vec<u8> {
        self.index = self.index.wrapping_add(1);
        let init = self
            .hs
            .create_initiation(&self.key, now, &mut self.rng, self.index)
            .unwrap();
        let mut b = init.to_bytes();
        self.jar.add_macs(now.mono, &mut b, Initiation::MAC1_OFFSET);
        b.to_vec()
    }

    /// Consumes the cookie reply in `out` (the responder's answer to our last initiation).
    fn take_cookie(&mut self, now: Now, out: &[Transmit]) {
        let t = out
            .iter()
            .find(|t| t.kind == TransmitKind::CookieReply)
            .expect("a cookie reply");
        assert_eq!(t.endpoint.addr, self.src);
        let reply = CookieReply::parse(&t.data).unwrap();
        self.jar.consume_reply(now.mono, &reply).unwrap();
        assert!(self.jar.has_fresh_cookie(now.mono));
    }
}

/// The responder device B with the given peers configured.
fn responder(seed: u64, peers: &[PublicKey]) -> Device {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let mut b = Device::new(PrivateKey::generate(&mut r), rng(seed + 1));
    for p in peers {
        b.add_peer(*p, PresharedKey::default()).unwrap();
    }
    b
}

fn b_public(seed: u64) -> PublicKey {
    PrivateKey::generate(&mut ChaCha8Rng::seed_from_u64(seed)).public_key()
}

fn under_load(b: &mut Device, now: Now) {
    b.note_handshake_queue_len(now.mono, UNDER_LOAD_QUEUE_THRESHOLD);
    assert!(b.is_under_load(now.mono));
}

fn deliver(
    b: &mut Device,
    now: Now,
    src: SocketAddr,
    mut data: Vec<u8>,
    out: &mut Vec<Transmit>,
) -> Result<Received, DropReason> {
    b.receive(now, Endpoint::new(src), &mut data, out)
}

/// Gets a cookie for `i` from `b` (under load at `now`): one initiation without MAC2, answered by
/// a cookie reply and no DH work.
fn fetch_cookie(b: &mut Device, i: &mut Initiator, now: Now) {
    let before = b.stats;
    let mut out = vec![];
    let msg = i.initiation(now);
    assert_eq!(
        deliver(b, now, i.src, msg, &mut out),
        Ok(Received::CookieSent)
    );
    assert_eq!(b.stats.handshakes_processed, before.handshakes_processed);
    assert_eq!(b.stats.cookie_replies_sent, before.cookie_replies_sent + 1);
    i.take_cookie(now, &out);
}

/// Drops that come from the per-peer handshake rules after the DH work (20 ms flood check,
/// timestamp replay), i.e. not from the device's load defences.
fn is_per_peer_handshake_rule(e: &DropReason) -> bool {
    matches!(
        e,
        DropReason::Peer(PeerError::Handshake(
            HandshakeError::Flood | HandshakeError::Replay
        ))
    )
}

#[test]
fn not_under_load_the_limiter_does_not_apply() {
    let b_seed = 10;
    let mut i = Initiator::new(1, b_public(b_seed), "198.18.0.1:40000");
    let mut b = responder(b_seed, &[i.public_key()]);
    let t0 = start();
    let (mut ok, mut per_peer) = (0, 0);
    let mut responses = 0;
    for k in 0..100u64 {
        let now = t0.after(Duration::from_millis(10 * k));
        assert!(!b.is_under_load(now.mono));
        let mut out = vec![];
        match deliver(&mut b, now, i.src, i.initiation(now), &mut out) {
            Ok(Received::Handshake(_)) => ok += 1,
            Err(e) if is_per_peer_handshake_rule(&e) => per_peer += 1,
            r => panic!("initiation {k}: {r:?}"),
        }
        responses += out
            .iter()
            .filter(|t| t.kind == TransmitKind::Response)
            .count();
    }
    // Every one of the 100 cost the DH work; none was rate limited (the 20 ms per-peer flood
    // rule, which runs after the DH, accepted every other one).
    assert_eq!(b.stats.handshakes_processed, 100);
    assert_eq!(b.stats.rate_limited, 0);
    assert_eq!(b.stats.cookie_replies_sent, 0);
    assert!(b.rate_limiter().is_empty());
    assert_eq!(ok + per_peer, 100);
    assert_eq!(ok, 50);
    assert_eq!(responses, ok);
    eprintln!(
        "not under load: {:?}, accepted {ok}, per-peer rule {per_peer}",
        b.stats
    );
}

#[test]
fn under_load_a_cookie_reply_costs_no_dh_and_the_retry_completes() {
    let b_seed = 20;
    let mut i = Initiator::new(2, b_public(b_seed), "198.18.0.1:40000");
    let mut b = responder(b_seed, &[i.public_key()]);
    let t0 = start();
    under_load(&mut b, t0);
    fetch_cookie(&mut b, &mut i, t0);
    assert_eq!(b.stats.handshakes_processed, 0);
    assert!(b.rate_limiter().is_empty());
    // The retry after REKEY_TIMEOUT carries MAC2, passes the limiter and is answered.
    let t1 = t0.after(REKEY_TIMEOUT);
    under_load(&mut b, t1);
    let mut out = vec![];
    assert!(matches!(
        deliver(&mut b, t1, i.src, i.initiation(t1), &mut out),
        Ok(Received::Handshake(_))
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, TransmitKind::Response);
    assert_eq!(b.stats.handshakes_processed, 1);
    assert_eq!(b.stats.cookie_replies_sent, 1);
    assert_eq!(b.stats.rate_limited, 0);
    assert_eq!(b.rate_limiter().len(), 1);
    // A MAC2 for another source's address does not verify: another cookie reply, no DH.
    let moved: SocketAddr = "198.18.0.1:40001".parse().unwrap();
    let mut out = vec![];
    assert_eq!(
        deliver(&mut b, t1, moved, i.initiation(t1), &mut out),
        Ok(Received::CookieSent)
    );
    assert_eq!(b.stats.handshakes_processed, 1);
}

#[test]
fn under_load_one_source_gets_five_plus_twenty_per_second_and_another_is_unaffected() {
    let b_seed = 30;
    let pk = b_public(b_seed);
    let mut flooder = Initiator::new(3, pk, "198.18.0.1:40000");
    let mut other = Initiator::new(4, pk, "198.18.0.3:40000");
    let mut b = responder(b_seed, &[flooder.public_key(), other.public_key()]);
    let t0 = start();
    under_load(&mut b, t0);
    fetch_cookie(&mut b, &mut flooder, t0);
    fetch_cookie(&mut b, &mut other, t0);

    // 100 initiations with a valid MAC2 from one source in one second, every 10 ms.
    let (mut processed, mut limited) = (0u64, 0u64);
    let mut other_done = false;
    for k in 0..100u64 {
        let now = t0.after(Duration::from_millis(10 * k));
        under_load(&mut b, now);
        let before = b.stats.handshakes_processed;
        let mut out = vec![];
        match deliver(&mut b, now, flooder.src, flooder.initiation(now), &mut out) {
            Err(DropReason::RateLimited) => limited += 1,
            Ok(Received::Handshake(_)) => processed += 1,
            Err(e) if is_per_peer_handshake_rule(&e) => processed += 1,
            r => panic!("initiation {k}: {r:?}"),
        }
        assert!(b.stats.handshakes_processed - before <= 1);
        // Half way, the other source sends its initiation: it is processed and answered.
        if k == 50 {
            let mut out = vec![];
            assert!(matches!(
                deliver(&mut b, now, other.src, other.initiation(now), &mut out),
                Ok(Received::Handshake(_))
            ));
            assert_eq!(out[0].kind, TransmitKind::Response);
            other_done = true;
        }
    }
    assert!(other_done);
    // The last message left at t = 0.99 s: 5 + ⌊20 × 0.99⌋ = 24 got to the DH work.
    let expected = PACKETS_BURSTABLE + PACKETS_PER_SECOND * 990 / 1000;
    assert_eq!(expected, 24);
    assert_eq!(processed, expected);
    assert_eq!(limited, 100 - expected);
    assert_eq!(b.stats.rate_limited, 100 - expected);
    assert_eq!(b.stats.handshakes_processed, expected + 1);
    assert_eq!(b.stats.cookie_replies_sent, 2);
    // The other source's bucket (one message at 0.5 s) has refilled to the full burst of 5.
    let now = t0.after(Duration::from_millis(995));
    for _ in 0..PACKETS_BURSTABLE {
        let mut out = vec![];
        let r = deliver(&mut b, now, other.src, other.initiation(now), &mut out);
        assert!(
            r.is_ok() || r.as_ref().is_err_and(is_per_peer_handshake_rule),
            "{r:?}"
        );
    }
    let mut out = vec![];
    assert_eq!(
        deliver(&mut b, now, other.src, other.initiation(now), &mut out),
        Err(DropReason::RateLimited)
    );
    eprintln!("one source, 100 in 1 s under load: {:?}", b.stats);
}

/// B and a real peer device A, exchanging over a wire that the test pumps by hand.
struct Pair {
    a: Device,
    a_peer: PeerId,
    a_addr: SocketAddr,
    b: Device,
}

impl Pair {
    fn new(b_seed: u64) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(77);
        let ka = PrivateKey::generate(&mut r);
        let b = responder(b_seed, &[ka.public_key()]);
        let mut a = Device::new(ka, rng(78));
        let a_peer = a.add_peer(b.public_key(), PresharedKey::default()).unwrap();
        a.peer_mut(a_peer)
            .unwrap()
            .set_endpoint(Endpoint::new(B_ADDR.parse().unwrap()));
        Pair {
            a,
            a_peer,
            a_addr: "198.18.0.1:51820".parse().unwrap(),
            b,
        }
    }

    /// Delivers `out` (sent by A) and everything it causes between A and B; returns what B did
    /// with each message from A.
    fn pump(&mut self, now: Now, from_a: Vec<Transmit>) -> Vec<Result<Received, DropReason>> {
        let mut results = vec![];
        let mut to_b = from_a;
        for _ in 0..16 {
            if to_b.is_empty() {
                return results;
            }
            let mut to_a = vec![];
            for t in to_b.drain(..) {
                assert_eq!(t.endpoint.addr, B_ADDR.parse::<SocketAddr>().unwrap());
                results.push(deliver(&mut self.b, now, self.a_addr, t.data, &mut to_a));
            }
            for t in to_a {
                assert_eq!(t.endpoint.addr, self.a_addr);
                let mut data = t.data;
                let from = Endpoint::new(B_ADDR.parse().unwrap());
                self.a.receive(now, from, &mut data, &mut to_b).unwrap();
            }
        }
        panic!("wire did not settle");
    }

    fn a_has_session(&self) -> bool {
        self.a
            .peer(self.a_peer)
            .unwrap()
            .current_keypair()
            .is_some()
    }
}

/// A forged initiation: random content, a correct MAC1 for `b` (MAC1 needs only B's public key),
/// and no MAC2 (a spoofed source never receives the cookie).
fn forged_initiation(jar: &mut CookieJar, r: &mut ChaCha8Rng, now: Now) -> Vec<u8> {
    let mut m = [0u8; INITIATION_LEN];
    r.fill_bytes(&mut m[4..Initiation::MAC1_OFFSET]);
    m[0] = 1;
    jar.add_macs(now.mono, &mut m, Initiation::MAC1_OFFSET);
    m.to_vec()
}

fn forged_source(k: u64) -> SocketAddr {
    // Spread over 198.18.0.0/15 and 2001:db8::/32 (distinct /32s and /64s).
    let port = 1024 + (k % 60_000) as u16;
    if k % 2 == 0 {
        let ip = Ipv4Addr::from(0xc612_0000u32 | (k as u32 & 0x1_ffff));
        SocketAddr::new(IpAddr::V4(ip), port)
    } else {
        let ip = Ipv6Addr::from((0x2001_0db8u128 << 96) | (u128::from(k) << 64) | 7);
        SocketAddr::new(IpAddr::V6(ip), port)
    }
}

#[test]
fn a_flood_of_forged_initiations_costs_no_dh_and_a_real_peer_still_gets_through() {
    let b_seed = 40;
    let mut p = Pair::new(b_seed);
    let mut jar = CookieJar::new(&p.b.public_key());
    let mut r = ChaCha8Rng::seed_from_u64(41);
    let t0 = start();
    const FORGED: u64 = 100_000;
    // 100,000 forged initiations over 7 s (one every 70 µs), B under load all along. A starts
    // its handshake at once; it gets a cookie, and its retry after REKEY_TIMEOUT carries MAC2.
    let step = Duration::from_micros(70);
    let mut out = vec![];
    p.a.initiate(p.a_peer, t0, &mut out);
    assert_eq!(out.len(), 1);
    under_load(&mut p.b, t0);
    let first = p.pump(t0, out);
    assert_eq!(first, vec![Ok(Received::CookieSent)]);
    assert_eq!(p.b.stats.handshakes_processed, 0);
    let (mut cookie_sent, mut other) = (0u64, 0u64);
    let mut completed_at = None;
    let mut max_entries = 0;
    for k in 0..FORGED {
        let now = t0.after(step * (k as u32 + 1));
        under_load(&mut p.b, now);
        let mut out = vec![];
        let msg = forged_initiation(&mut jar, &mut r, now);
        match deliver(&mut p.b, now, forged_source(k), msg, &mut out) {
            Ok(Received::CookieSent) => {
                cookie_sent += 1;
                assert_eq!(out.len(), 1);
                assert_eq!(out[0].kind, TransmitKind::CookieReply);
            }
            _ => other += 1,
        }
        max_entries = max_entries.max(p.b.rate_limiter().len());
        // The legitimate peer's timers run alongside (its retry is due after 5 s + jitter).
        if k % 100 == 0 {
            let mut out = vec![];
            p.a.tick(now, &mut out);
            p.b.tick(now, &mut vec![]);
            let results = p.pump(now, out);
            if completed_at.is_none() && p.a_has_session() {
                completed_at = Some(now.mono.since(t0.mono));
                assert!(results.contains(&Ok(Received::Handshake(PeerId(0)))));
            }
        }
    }
    let stats = p.b.stats;
    eprintln!(
        "flood of {FORGED} forged initiations under load: {stats:?}; most limiter entries \
         {max_entries}, at the end {}; legitimate handshake completed after {completed_at:?}",
        p.b.rate_limiter().len()
    );
    // No forged initiation reached the DH work: every one got a cookie reply.
    assert_eq!(cookie_sent, FORGED);
    assert_eq!(other, 0);
    assert_eq!(stats.cookie_replies_sent, FORGED + 1);
    assert_eq!(stats.invalid_mac, 0);
    assert_eq!(stats.rate_limited, 0);
    // The only DH work was the legitimate peer's initiation, sent with its cookie.
    assert_eq!(stats.handshakes_processed, 1);
    let done = completed_at.expect("the legitimate handshake completed during the flood");
    assert!(done >= REKEY_TIMEOUT && done < REKEY_TIMEOUT + Duration::from_millis(400));
    assert!(p.a_has_session());
    // Only sources with a valid MAC2 enter the limiter's table: the flood added none, the real
    // peer one, and B's tick swept that one away after it was idle for more than 1 s.
    assert_eq!(max_entries, 1);
    assert!(max_entries <= MAX_ENTRIES);
    assert!(p.b.rate_limiter().is_empty());
}

#[test]
fn the_limiter_sweeps_from_device_tick_and_wakes_the_device_only_when_needed() {
    let b_seed = 50;
    let mut i = Initiator::new(5, b_public(b_seed), "[2001:db8:1:2::1]:40000");
    let mut b = responder(b_seed, &[i.public_key()]);
    let t0 = start();
    assert_eq!(b.next_deadline(), None);
    under_load(&mut b, t0);
    fetch_cookie(&mut b, &mut i, t0);
    let mut out = vec![];
    assert!(deliver(&mut b, t0, i.src, i.initiation(t0), &mut out).is_ok());
    assert_eq!(b.rate_limiter().len(), 1);
    // The device now has a deadline for the sweep (plus its peer's timers): 1 s after the entry.
    let sweep = t0.mono.plus(Duration::from_secs(1));
    assert!(b.next_deadline().is_some_and(|d| d <= sweep));
    // The entry is idle exactly 1 s at the first sweep: kept; more than 1 s at the next: gone.
    b.tick(t0.after(Duration::from_secs(1)), &mut vec![]);
    assert_eq!(b.rate_limiter().len(), 1);
    b.tick(t0.after(Duration::from_secs(2)), &mut vec![]);
    assert!(b.rate_limiter().is_empty());
}

#[test]
fn under_load_hysteresis_is_one_second() {
    let b_seed = 60;
    let mut i = Initiator::new(6, b_public(b_seed), "198.18.0.1:40000");
    let mut b = responder(b_seed, &[i.public_key()]);
    let t0 = start();
    // Below the threshold: not under load.
    b.note_handshake_queue_len(t0.mono, UNDER_LOAD_QUEUE_THRESHOLD - 1);
    assert!(!b.is_under_load(t0.mono));
    // At the threshold once, at t0: under load until t0 + 1 s (exclusive), as the kernel's
    // `!wg_birthdate_has_expired(last_under_load, 1)`.
    b.note_handshake_queue_len(t0.mono, UNDER_LOAD_QUEUE_THRESHOLD);
    let almost = t0.after(Duration::from_secs(1) - Duration::from_nanos(1));
    let mut out = vec![];
    assert_eq!(
        deliver(&mut b, almost, i.src, i.initiation(almost), &mut out),
        Ok(Received::CookieSent)
    );
    assert_eq!(b.stats.handshakes_processed, 0);
    // A short queue afterwards does not end it early.
    b.note_handshake_queue_len(almost.mono, 0);
    assert!(b.is_under_load(almost.mono));
    // At t0 + 1 s: no MAC2 needed and no rate limiting; the same kind of message is processed.
    let later = t0.after(Duration::from_secs(1));
    assert!(!b.is_under_load(later.mono));
    let mut out = vec![];
    assert!(matches!(
        deliver(&mut b, later, i.src, i.initiation(later), &mut out),
        Ok(Received::Handshake(_))
    ));
    assert_eq!(b.stats.handshakes_processed, 1);
    assert!(b.rate_limiter().is_empty());
}
