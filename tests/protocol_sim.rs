//! The sans-IO protocol core driven end to end: two devices, a simulated wire and a test clock
//! that jumps from deadline to deadline (nothing sleeps). Covers the handshake, transport, cookies
//! under load, every timer, key rotation, replay, roaming and staging.

mod common;

use common::packet::icmp4_echo;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use wgd::crypto::keys::{PresharedKey, PrivateKey};
use wgd::proto::PeerId;
use wgd::proto::constants::*;
use wgd::proto::noise::HandshakeError;
use wgd::proto::{Device, DropReason, Received};
use wgd::proto::{Endpoint, PeerError, SendResult, Transmit, TransmitKind};
use wgd::proto::{Instant, Now};
use wgd::proto::{Keypair, OpenError};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum S {
    A,
    B,
}

struct Side {
    dev: Device,
    peer: PeerId,
    addr: SocketAddr,
    inbox: Vec<u16>,
    keepalives: usize,
}

/// Returns false to lose a transmit on the wire.
type Filter = Box<dyn FnMut(S, &Transmit) -> bool>;

struct Sim {
    now: Now,
    a: Side,
    b: Side,
    wire: VecDeque<(S, SocketAddr, Vec<u8>)>,
    /// Every transmit: (time, sender, kind).
    log: Vec<(Instant, S, TransmitKind)>,
    /// Return false to lose a transmit on the wire.
    filter: Filter,
    drops: Vec<(S, DropReason)>,
}

const A_ADDR: &str = "198.18.0.1:51820";
const B_ADDR: &str = "198.18.0.2:51820";

fn rng(seed: u64) -> Box<ChaCha8Rng> {
    Box::new(ChaCha8Rng::seed_from_u64(seed))
}

impl Sim {
    fn new(psk: bool) -> Sim {
        Self::with_seed(psk, 1)
    }

    fn with_seed(psk: bool, seed: u64) -> Sim {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let ka = PrivateKey::generate(&mut r);
        let kb = PrivateKey::generate(&mut r);
        let psk = if psk {
            PresharedKey::generate(&mut r)
        } else {
            PresharedKey::default()
        };
        let (pa, pb) = (ka.public_key(), kb.public_key());
        let mut a = Device::new(ka, rng(seed + 100));
        let mut b = Device::new(kb, rng(seed + 200));
        let peer_a = a.add_peer(pb, psk.clone()).unwrap();
        let peer_b = b.add_peer(pa, psk).unwrap();
        // Cryptokey routing: each side's tunnel address belongs to it (see `packet`).
        a.add_allowed_ip(peer_a, "198.19.0.2".parse().unwrap(), 32)
            .unwrap();
        b.add_allowed_ip(peer_b, "198.19.0.1".parse().unwrap(), 32)
            .unwrap();
        a.peer_mut(peer_a)
            .unwrap()
            .set_endpoint(Endpoint::new(B_ADDR.parse().unwrap()));
        Sim {
            now: Now::simulated(
                Duration::from_secs(1000),
                Duration::from_secs(1_700_000_000),
            ),
            a: Side {
                dev: a,
                peer: peer_a,
                addr: A_ADDR.parse().unwrap(),
                inbox: vec![],
                keepalives: 0,
            },
            b: Side {
                dev: b,
                peer: peer_b,
                addr: B_ADDR.parse().unwrap(),
                inbox: vec![],
                keepalives: 0,
            },
            wire: VecDeque::new(),
            log: vec![],
            filter: Box::new(|_, _| true),
            drops: vec![],
        }
    }

    fn side(&mut self, s: S) -> &mut Side {
        match s {
            S::A => &mut self.a,
            S::B => &mut self.b,
        }
    }

    fn emit(&mut self, from: S, out: Vec<Transmit>) {
        for t in out {
            self.log.push((self.now.mono, from, t.kind));
            if let Some(id) = t.peer {
                self.side(from).dev.note_sent(id, t.data.len());
            }
            if (self.filter)(from, &t) {
                let src = self.side(from).addr;
                let to = if t.endpoint.addr == self.a.addr {
                    S::A
                } else if t.endpoint.addr == self.b.addr {
                    S::B
                } else {
                    continue; // nobody there
                };
                let _ = from;
                self.wire.push_back((to, src, t.data));
            }
        }
    }

    /// An inner IPv4 packet with sequence number `seq` from `from`.
    fn send(&mut self, from: S, seq: u16) -> SendResult {
        let (src, dst) = match from {
            S::A => (Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 2)),
            S::B => (Ipv4Addr::new(198, 19, 0, 2), Ipv4Addr::new(198, 19, 0, 1)),
        };
        let pkt = icmp4_echo(src, dst, 7, seq, &[0x5a; 40]);
        let mut buf = vec![0u8; Keypair::sealed_len(pkt.len(), DEFAULT_MTU)];
        buf[16..16 + pkt.len()].copy_from_slice(&pkt);
        let now = self.now;
        let mut out = vec![];
        let side = self.side(from);
        let peer = side.peer;
        let r = side
            .dev
            .send(peer, now, &mut buf, pkt.len(), &mut out)
            .unwrap();
        if let SendResult::Sealed { len, endpoint } = r {
            buf.truncate(len);
            out.insert(
                0,
                Transmit {
                    peer: Some(peer),
                    endpoint,
                    kind: TransmitKind::Data,
                    data: buf,
                },
            );
        }
        self.emit(from, out);
        r
    }

    /// Delivers one datagram to `to` as if from `src`.
    fn deliver(
        &mut self,
        to: S,
        src: SocketAddr,
        mut data: Vec<u8>,
    ) -> Result<Received, DropReason> {
        let now = self.now;
        let mut out = vec![];
        let side = self.side(to);
        let r = side
            .dev
            .receive(now, Endpoint::new(src), &mut data, &mut out);
        match r {
            Ok(Received::Data { offset, len, .. }) => {
                let p = &data[offset..offset + len];
                side.inbox.push(u16::from_be_bytes([p[26], p[27]]));
            }
            Ok(Received::Keepalive(_)) => side.keepalives += 1,
            Err(e) => self.drops.push((to, e)),
            _ => {}
        }
        self.emit(to, out);
        r
    }

    /// Delivers everything on the wire (and what it causes), bounded.
    fn pump(&mut self) {
        for _ in 0..100_000 {
            let Some((to, src, data)) = self.wire.pop_front() else {
                return;
            };
            let _ = self.deliver(to, src, data);
        }
        panic!("wire did not settle");
    }

    fn tick(&mut self) {
        let now = self.now;
        for s in [S::A, S::B] {
            let mut out = vec![];
            self.side(s).dev.tick(now, &mut out);
            self.emit(s, out);
        }
        self.pump();
    }

    /// Runs timers until `d` from now, jumping from deadline to deadline.
    fn run_for(&mut self, d: Duration) {
        let end = self.now.mono.plus(d);
        for _ in 0..1_000_000 {
            // The event loop's O(1) wake-up: never after the true earliest deadline (it may be
            // earlier; the tick then finds nothing due). Driving the simulation by it checks
            // that every timer still fires at its exact instant.
            let mut next = None;
            for dev in [&mut self.a.dev, &mut self.b.dev] {
                let (wake, deadline) = (dev.next_wakeup(), dev.next_deadline());
                assert!(
                    match (wake, deadline) {
                        (Some(w), Some(d)) => w <= d,
                        (None, Some(_)) => false,
                        _ => true,
                    },
                    "wake-up {wake:?} later than the deadline {deadline:?}"
                );
                next = match (next, wake) {
                    (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                    (a, b) => a.or(b),
                };
            }
            match next {
                Some(t) if t <= end => {
                    if t > self.now.mono {
                        self.now = self.now.after(t.since(self.now.mono));
                    }
                    self.tick();
                }
                _ => {
                    self.now = self.now.after(end.since(self.now.mono));
                    self.tick();
                    return;
                }
            }
        }
        panic!("timers did not settle");
    }

    fn count(&self, who: S, kind: TransmitKind) -> usize {
        self.log
            .iter()
            .filter(|(_, s, k)| *s == who && *k == kind)
            .count()
    }

    fn times(&self, who: S, kind: TransmitKind) -> Vec<Instant> {
        self.log
            .iter()
            .filter(|(_, s, k)| *s == who && *k == kind)
            .map(|(t, _, _)| *t)
            .collect()
    }

    fn handshake(&mut self) {
        assert_eq!(self.send(S::A, 0), SendResult::Staged);
        self.pump();
        assert!(
            self.a
                .dev
                .peer(self.a.peer)
                .unwrap()
                .current_keypair()
                .is_some()
        );
        assert_eq!(self.b.inbox, vec![0]);
    }
}

#[test]
fn handshake_and_transport_both_ways_with_and_without_psk() {
    for psk in [false, true] {
        let mut s = Sim::new(psk);
        s.handshake();
        // The responder confirmed its next keypair on the first data packet.
        let pb = s.b.dev.peer(s.b.peer).unwrap();
        assert!(pb.current_keypair().is_some() && pb.next_keypair().is_none());
        for i in 1..=50 {
            assert!(matches!(s.send(S::A, i), SendResult::Sealed { .. }));
            assert!(matches!(s.send(S::B, 1000 + i), SendResult::Sealed { .. }));
        }
        s.pump();
        assert_eq!(s.b.inbox, (0..=50).collect::<Vec<_>>());
        assert_eq!(s.a.inbox, (1001..=1050).collect::<Vec<_>>());
        for side in [&s.a, &s.b] {
            let st = side.dev.peer(side.peer).unwrap().stats;
            assert_eq!(st.last_handshake, Some(s.now.wall));
            assert!(st.rx_bytes > 50 * 100 && st.tx_bytes > 50 * 100);
        }
        assert_eq!(s.count(S::A, TransmitKind::Initiation), 1);
        assert_eq!(s.count(S::B, TransmitKind::Response), 1);
        assert!(s.drops.is_empty(), "{:?}", s.drops);
    }
}

#[test]
fn the_device_drops_inner_sources_outside_the_senders_allowed_ips() {
    let mut s = Sim::new(false);
    s.handshake();
    assert!(matches!(s.send(S::A, 1), SendResult::Sealed { .. }));
    s.pump();
    assert_eq!(s.b.inbox, [0, 1]);
    // B no longer routes 198.19.0.1 to A: A's next packet authenticates (counters move, as in
    // the kernel) but is not delivered, and the reason says why.
    let pb = s.b.peer;
    assert_eq!(s.b.dev.clear_allowed_ips(pb), 1);
    let rx_before = s.b.dev.peer(pb).unwrap().stats.rx_bytes;
    s.send(S::A, 2);
    s.pump();
    assert_eq!(
        s.b.inbox,
        [0, 1],
        "a packet from an unrouted source was delivered"
    );
    assert_eq!(s.drops, [(S::B, DropReason::SourceNotAllowed)]);
    assert!(s.b.dev.peer(pb).unwrap().stats.rx_bytes > rx_before);
    // A prefix routed to another peer does not let A through either.
    let other =
        s.b.dev
            .add_peer(
                PrivateKey::generate(&mut ChaCha8Rng::seed_from_u64(9)).public_key(),
                PresharedKey::default(),
            )
            .unwrap();
    s.b.dev
        .add_allowed_ip(other, "198.19.0.0".parse().unwrap(), 24)
        .unwrap();
    s.send(S::A, 3);
    s.pump();
    assert_eq!(s.drops.len(), 2);
    // Routed back to A: delivered again. Removing the other peer drops its prefix.
    s.b.dev
        .add_allowed_ip(pb, "198.19.0.1".parse().unwrap(), 32)
        .unwrap();
    s.send(S::A, 4);
    s.pump();
    assert_eq!(s.b.inbox, [0, 1, 4]);
    assert!(s.b.dev.remove_peer(other).is_some());
    assert_eq!(s.b.dev.allowed_ips().len(), 1);
    assert_eq!(
        s.b.dev
            .add_allowed_ip(other, "198.19.1.0".parse().unwrap(), 24),
        Err(wgd::proto::PeerConfigError::NoSuchPeer)
    );
}

#[test]
fn tickets_carry_a_batch_from_decryption_to_delivery_in_order() {
    let mut s = Sim::new(false);
    s.handshake();
    for seq in [1, 2, 3] {
        s.send(S::A, seq);
    }
    let mut batch: Vec<Vec<u8>> = s.wire.drain(..).map(|(_, _, d)| d).collect();
    assert_eq!(batch.len(), 3);
    // The first datagram twice in one batch: both pass the read-only checks.
    batch.insert(1, batch[0].clone());
    let now = s.now;
    let from = Endpoint::new(A_ADDR.parse().unwrap());
    let b = &mut s.b.dev;
    let mut opened = Vec::new();
    for d in &mut batch {
        let (ticket, key) = b.receive_key(now, d).unwrap();
        assert_eq!(ticket.peer, s.b.peer);
        let plain = ticket.open(key, d).unwrap();
        opened.push((ticket, plain));
    }
    assert_eq!(
        opened[0].0, opened[1].0,
        "the duplicate has the same ticket"
    );
    // In order under `&mut`: the duplicate is a replay, the rest are delivered.
    let mut out = vec![];
    let mut results = vec![];
    for (d, (ticket, plain)) in batch.iter_mut().zip(&opened).take(3) {
        results.push(b.receive_opened(now, from, d, *ticket, *plain, &mut out));
    }
    assert!(matches!(results[0], Ok(Received::Data { .. })));
    assert_eq!(
        results[1],
        Err(DropReason::Peer(PeerError::Open(OpenError::Replay)))
    );
    assert!(matches!(results[2], Ok(Received::Data { .. })));
    // A ticket that outlived its peer finds nothing.
    let (ticket, plain) = opened[3];
    assert!(b.remove_peer(s.b.peer).is_some());
    assert_eq!(
        b.receive_opened(now, from, &mut batch[3], ticket, plain, &mut out),
        Err(DropReason::UnknownIndex)
    );
}

#[test]
fn responder_does_not_send_on_unconfirmed_keypair() {
    let mut s = Sim::new(false);
    // Lose everything A sends after its initiation.
    s.filter = Box::new(|from, t| !(from == S::A && t.kind != TransmitKind::Initiation));
    s.send(S::A, 0);
    s.pump();
    let pb = s.b.dev.peer(s.b.peer).unwrap();
    assert!(pb.next_keypair().is_some());
    assert!(pb.current_keypair().is_none());
    assert_eq!(s.send(S::B, 9), SendResult::Staged);
    assert_eq!(s.count(S::B, TransmitKind::Data), 0);
    // The response it sent rate-limits its own initiation for REKEY_TIMEOUT.
    assert_eq!(s.count(S::B, TransmitKind::Initiation), 0);
    // Now A's data gets through: B confirms the keypair and flushes its staged packet.
    s.filter = Box::new(|_, _| true);
    s.send(S::A, 1);
    s.pump();
    assert_eq!(s.a.inbox, vec![9]);
    assert!(s.b.dev.peer(s.b.peer).unwrap().current_keypair().is_some());
}

#[test]
fn replayed_initiation_and_transport_are_dropped() {
    let mut s = Sim::new(false);
    let mut captured = vec![];
    s.send(S::A, 0);
    // Capture the initiation before it is delivered.
    let (to, src, init) = s.wire.pop_front().unwrap();
    captured.push(init.clone());
    s.deliver(to, src, init).unwrap();
    s.pump();
    let data = {
        s.send(S::A, 1);
        s.wire.pop_front().unwrap()
    };
    s.deliver(S::B, data.1, data.2.clone()).unwrap();
    assert_eq!(
        s.deliver(S::B, data.1, data.2.clone()),
        Err(DropReason::Peer(PeerError::Open(OpenError::Replay)))
    );
    s.now = s.now.after(Duration::from_secs(1));
    assert_eq!(
        s.deliver(S::B, s.a.addr, captured[0].clone()),
        Err(DropReason::Peer(PeerError::Handshake(
            HandshakeError::Replay
        )))
    );
    // The replay changed nothing: the session still works.
    s.send(S::A, 2);
    s.pump();
    assert_eq!(s.b.inbox, vec![0, 1, 2]);
}

#[test]
fn mac1_failures_are_dropped_before_any_dh() {
    let mut s = Sim::new(false);
    s.send(S::A, 0);
    let (_, src, mut init) = s.wire.pop_front().unwrap();
    init[120] ^= 1; // inside mac1
    assert_eq!(
        s.deliver(S::B, src, init.clone()),
        Err(DropReason::InvalidMac)
    );
    init[120] ^= 1;
    init[20] ^= 1; // inside the covered part
    assert_eq!(s.deliver(S::B, src, init), Err(DropReason::InvalidMac));
    assert_eq!(s.b.dev.stats.invalid_mac, 2);
    assert_eq!(s.b.dev.stats.handshakes_processed, 0);
}

#[test]
fn cookie_round_trip_under_load() {
    let mut s = Sim::new(false);
    let t = s.now.mono;
    s.b.dev
        .note_handshake_queue_len(t, UNDER_LOAD_QUEUE_THRESHOLD);
    s.send(S::A, 0);
    s.pump();
    // B answered with a cookie, not a response: no DH work done.
    assert_eq!(s.count(S::B, TransmitKind::CookieReply), 1);
    assert_eq!(s.count(S::B, TransmitKind::Response), 0);
    assert_eq!(s.b.dev.stats.cookie_replies_sent, 1);
    assert_eq!(s.b.dev.stats.handshakes_processed, 0);
    assert!(s.a.dev.peer(s.a.peer).unwrap().current_keypair().is_none());
    // Keep B under load; A's retry after REKEY_TIMEOUT carries MAC2 and gets through.
    let t = s.now.mono.plus(Duration::from_secs(5));
    s.b.dev
        .note_handshake_queue_len(t, UNDER_LOAD_QUEUE_THRESHOLD);
    s.run_for(Duration::from_millis(5_400));
    assert_eq!(s.count(S::A, TransmitKind::Initiation), 2);
    assert_eq!(s.count(S::B, TransmitKind::CookieReply), 1);
    assert_eq!(s.count(S::B, TransmitKind::Response), 1);
    assert!(s.b.dev.is_under_load(s.now.mono));
    assert_eq!(s.b.inbox, vec![0]);
    // One DH computation in all, and the retry (valid MAC2) passed the per-source rate limiter.
    assert_eq!(s.b.dev.stats.handshakes_processed, 1);
    assert_eq!(s.b.dev.stats.rate_limited, 0);
    assert_eq!(s.b.dev.rate_limiter().len(), 1);
}

#[test]
fn under_load_lasts_one_second_after_the_queue_drains() {
    let mut s = Sim::new(false);
    let t = s.now.mono;
    s.b.dev
        .note_handshake_queue_len(t, UNDER_LOAD_QUEUE_THRESHOLD - 1);
    assert!(!s.b.dev.is_under_load(t));
    s.b.dev
        .note_handshake_queue_len(t, UNDER_LOAD_QUEUE_THRESHOLD);
    assert!(s.b.dev.is_under_load(t.plus(Duration::from_millis(999))));
    assert!(!s.b.dev.is_under_load(t.plus(Duration::from_secs(1))));
}

#[test]
fn cookie_reply_never_moves_the_endpoint() {
    let mut s = Sim::new(false);
    let t = s.now.mono;
    s.b.dev
        .note_handshake_queue_len(t, UNDER_LOAD_QUEUE_THRESHOLD);
    s.send(S::A, 0);
    let (to, src, init) = s.wire.pop_front().unwrap();
    s.deliver(to, src, init).unwrap();
    let (_, _, cookie) = s.wire.pop_front().unwrap();
    let spoofed: SocketAddr = "198.18.0.99:4444".parse().unwrap();
    assert!(matches!(
        s.deliver(S::A, spoofed, cookie),
        Ok(Received::CookieReply(_))
    ));
    assert_eq!(
        s.a.dev.peer(s.a.peer).unwrap().endpoint().unwrap().addr,
        s.b.addr
    );
}

#[test]
fn retransmits_with_jitter_then_gives_up_and_zeroes_keys() {
    let mut s = Sim::new(false);
    s.filter = Box::new(|_, _| false); // a black hole
    s.send(S::A, 0);
    s.run_for(Duration::from_secs(200));
    let t = s.times(S::A, TransmitKind::Initiation);
    // The kernel gives up after MAX_TIMER_HANDSHAKES + 2 = 20 initiations.
    assert_eq!(t.len(), MAX_TIMER_HANDSHAKES as usize + 2);
    for w in t.windows(2) {
        let gap = w[1].since(w[0]);
        assert!(
            gap >= REKEY_TIMEOUT && gap < REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX,
            "{gap:?}"
        );
    }
    let gaps: Vec<Duration> = t.windows(2).map(|w| w[1].since(w[0])).collect();
    assert!(gaps.iter().any(|g| *g != gaps[0]), "jitter is random");
    let pa = s.a.dev.peer(s.a.peer).unwrap();
    assert_eq!(pa.staged_len(), 0, "staged packets dropped on giving up");
    assert_eq!(pa.stats.staged_dropped, 1);
    let zero_at = pa.timers.zero_key_material.expect("key zeroing armed");
    let gave_up = t.last().unwrap().plus(REKEY_TIMEOUT);
    assert!(zero_at >= gave_up.plus(REJECT_AFTER_TIME * 3));
    assert!(zero_at < gave_up.plus(REJECT_AFTER_TIME * 3 + REKEY_TIMEOUT_JITTER_MAX));
    s.run_for(Duration::from_secs(600));
    assert_eq!(s.a.dev.indices_in_use(), 0, "handshake index freed");
    assert_eq!(s.a.dev.next_deadline(), None, "an idle dead peer sleeps");
}

#[test]
fn passive_keepalive_after_ten_seconds() {
    let mut s = Sim::new(false);
    s.handshake();
    let t_recv = s.now.mono;
    // B received data (A's packet 0) and sends nothing: one keepalive at exactly +10 s.
    s.run_for(Duration::from_secs(30));
    let ka = s.times(S::B, TransmitKind::Keepalive);
    assert_eq!(ka, vec![t_recv.plus(KEEPALIVE_TIMEOUT)]);
    // A keepalive received is not data: A does not answer it with a keepalive.
    assert_eq!(s.count(S::A, TransmitKind::Keepalive), 0);
    assert_eq!(s.a.keepalives, 1);
}

#[test]
fn new_handshake_when_data_sent_and_nothing_received() {
    let mut s = Sim::new(false);
    s.handshake();
    s.run_for(Duration::from_secs(20)); // settle B's passive keepalive
    s.filter = Box::new(|from, _| from == S::A); // B goes silent
    let t_send = s.now.mono;
    s.send(S::A, 1);
    s.run_for(Duration::from_secs(16));
    let inits = s.times(S::A, TransmitKind::Initiation);
    let last = *inits.last().unwrap();
    let due = t_send.plus(KEEPALIVE_TIMEOUT + REKEY_TIMEOUT);
    assert_eq!(inits.len(), 2);
    assert!(
        last >= due && last < due.plus(REKEY_TIMEOUT_JITTER_MAX),
        "{last:?} {due:?}"
    );
}

#[test]
fn persistent_keepalive_every_interval() {
    let mut s = Sim::new(false);
    s.handshake();
    s.run_for(Duration::from_secs(11));
    let before = s.count(S::A, TransmitKind::Keepalive);
    let mut out = vec![];
    let (peer, now) = (s.a.peer, s.now);
    s.a.dev
        .set_persistent_keepalive(peer, now, Some(Duration::from_secs(25)), &mut out);
    s.emit(S::A, out);
    s.pump();
    let t0 = s.now.mono;
    assert_eq!(
        s.count(S::A, TransmitKind::Keepalive),
        before + 1,
        "sent at once"
    );
    s.run_for(Duration::from_secs(80));
    let ka: Vec<Instant> = s
        .times(S::A, TransmitKind::Keepalive)
        .into_iter()
        .filter(|t| *t > t0)
        .collect();
    assert_eq!(
        ka,
        (1..=3)
            .map(|i| t0.plus(Duration::from_secs(25 * i)))
            .collect::<Vec<_>>()
    );
}

#[test]
fn initiator_rekeys_after_rekey_after_time_on_send() {
    let mut s = Sim::new(false);
    s.handshake();
    let born = s.now.mono;
    s.run_for(REKEY_AFTER_TIME - Duration::from_secs(1));
    s.send(S::A, 1);
    assert_eq!(s.count(S::A, TransmitKind::Initiation), 1);
    s.run_for(Duration::from_secs(1));
    s.send(S::A, 2);
    assert_eq!(s.count(S::A, TransmitKind::Initiation), 2);
    s.pump();
    let cur = s.a.dev.peer(s.a.peer).unwrap().current_keypair().unwrap();
    assert!(cur.birth > born);
    // The responder never rekeys on time alone.
    let mut r = Sim::new(false);
    r.handshake();
    r.run_for(REKEY_AFTER_TIME + Duration::from_secs(1));
    r.send(S::B, 1);
    assert_eq!(r.count(S::B, TransmitKind::Initiation), 0);
}

#[test]
fn initiator_rekeys_on_receive_at_165_seconds() {
    let mut s = Sim::new(false);
    s.handshake();
    s.run_for(REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT - Duration::from_secs(1));
    s.send(S::B, 1);
    s.pump();
    assert_eq!(s.count(S::A, TransmitKind::Initiation), 1);
    s.run_for(Duration::from_secs(1));
    s.filter = Box::new(|from, t| !(from == S::A && t.kind == TransmitKind::Initiation));
    s.send(S::B, 2);
    s.pump();
    assert_eq!(
        s.count(S::A, TransmitKind::Initiation),
        2,
        "last-minute handshake"
    );
    // ...only once until a handshake completes.
    s.send(S::B, 3);
    s.pump();
    assert_eq!(s.count(S::A, TransmitKind::Initiation), 2);
}

#[test]
fn keys_zeroed_after_three_reject_after_times() {
    let mut s = Sim::new(false);
    s.handshake();
    assert!(s.a.dev.indices_in_use() > 0);
    s.run_for(REJECT_AFTER_TIME * 3 - Duration::from_secs(1));
    assert!(s.a.dev.peer(s.a.peer).unwrap().current_keypair().is_some());
    s.run_for(Duration::from_secs(2));
    for side in [&s.a, &s.b] {
        let p = side.dev.peer(side.peer).unwrap();
        assert!(p.current_keypair().is_none() && p.previous_keypair().is_none());
        assert_eq!(side.dev.indices_in_use(), 0);
    }
}

/// Every slot, not only current/previous: a responder whose response was lost holds a `next`
/// keypair, the initiator a handshake in flight. 540 s (REJECT_AFTER_TIME * 3) without a new
/// session drops all of it on both sides: keypairs (their TransportKeys zeroize on drop),
/// handshake state, indices.
#[test]
fn unconfirmed_keypair_and_handshake_state_dropped_after_three_reject_after_times() {
    let mut s = Sim::new(true);
    s.filter = Box::new(|from, _| from == S::A); // B's responses are lost
    assert_eq!(s.send(S::A, 0), SendResult::Staged);
    s.pump();
    let pb = s.b.dev.peer(s.b.peer).unwrap();
    assert!(pb.next_keypair().is_some(), "responder parked a keypair");
    assert!(pb.current_keypair().is_none());
    let pa = s.a.dev.peer(s.a.peer).unwrap();
    assert_eq!(pa.handshake().state_name(), "created-initiation");
    assert!(s.a.dev.indices_in_use() > 0 && s.b.dev.indices_in_use() > 0);
    // A retries for REKEY_ATTEMPT_TIME (90 s), B keeps answering into the void; nothing is
    // zeroed before 540 s after the last session B derived.
    s.run_for(Duration::from_secs(100));
    assert!(s.b.dev.peer(s.b.peer).unwrap().next_keypair().is_some());
    // A gives up at most ~107 s in (20 initiations, jittered), then arms its own 540 s.
    s.run_for(REJECT_AFTER_TIME * 3 + Duration::from_secs(30));
    for (name, side) in [("A", &s.a), ("B", &s.b)] {
        let p = side.dev.peer(side.peer).unwrap();
        assert!(p.current_keypair().is_none(), "{name}: current");
        assert!(p.previous_keypair().is_none(), "{name}: previous");
        assert!(p.next_keypair().is_none(), "{name}: next");
        assert_eq!(p.handshake().state_name(), "zeroed", "{name}: handshake");
        assert_eq!(side.dev.indices_in_use(), 0, "{name}: indices");
        assert_eq!(p.staged_len(), 0, "{name}: staged");
    }
}

#[test]
fn key_rotation_without_loss_in_either_direction() {
    let mut s = Sim::new(true);
    s.handshake();
    let mut seq: u16 = 1;
    // 400 s of traffic, 5 packets a second each way: crosses REKEY_AFTER_TIME three times.
    for _ in 0..2_000 {
        s.send(S::A, seq);
        s.send(S::B, seq);
        s.pump();
        s.run_for(Duration::from_millis(200));
        seq += 1;
    }
    assert_eq!(s.b.inbox, (0..seq).collect::<Vec<_>>());
    assert_eq!(s.a.inbox, (1..seq).collect::<Vec<_>>());
    let hs = s.count(S::A, TransmitKind::Initiation);
    assert!((3..=4).contains(&hs), "handshakes: {hs}");
    assert_eq!(s.count(S::B, TransmitKind::Initiation), 0);
    assert!(s.drops.is_empty(), "{:?}", s.drops);
}

#[test]
fn staged_packets_keep_the_newest_128_and_flush_in_order() {
    let mut s = Sim::new(false);
    s.filter = Box::new(|from, _| from == S::A); // responses lost
    for i in 0..200 {
        assert_eq!(s.send(S::A, i), SendResult::Staged);
    }
    s.pump();
    let pa = s.a.dev.peer(s.a.peer).unwrap();
    assert_eq!(pa.staged_len(), MAX_STAGED_PACKETS);
    assert_eq!(pa.stats.staged_dropped, 72);
    s.filter = Box::new(|_, _| true);
    s.run_for(Duration::from_secs(6));
    assert_eq!(s.b.inbox, (72..200).collect::<Vec<_>>());
}

#[test]
fn endpoint_roams_only_after_authentication() {
    let mut s = Sim::new(false);
    s.handshake();
    let new_addr: SocketAddr = "[2001:db8::a]:40000".parse().unwrap();
    // Garbage and a bad packet from elsewhere do not move B's idea of A.
    s.send(S::A, 1);
    let (_, _, mut pkt) = s.wire.pop_front().unwrap();
    let good = pkt.clone();
    pkt[40] ^= 1;
    assert!(s.deliver(S::B, new_addr, pkt).is_err());
    assert!(
        s.deliver(S::B, new_addr, vec![4, 0, 0, 0, 1, 2, 3])
            .is_err()
    );
    assert_eq!(
        s.b.dev.peer(s.b.peer).unwrap().endpoint().unwrap().addr,
        s.a.addr
    );
    // An authenticated packet from the new address does.
    s.deliver(S::B, new_addr, good).unwrap();
    assert_eq!(
        s.b.dev.peer(s.b.peer).unwrap().endpoint().unwrap().addr,
        new_addr
    );
}

#[test]
fn message_limits_trigger_rekey() {
    let mut s = Sim::new(false);
    s.handshake();
    let peer = s.a.peer;
    s.a.dev
        .peer_mut(peer)
        .unwrap()
        .current_keypair_mut()
        .unwrap()
        .set_send_counter(REKEY_AFTER_MESSAGES + 1);
    assert!(matches!(s.send(S::A, 1), SendResult::Sealed { .. }));
    assert_eq!(
        s.count(S::A, TransmitKind::Initiation),
        1,
        "rekey after messages"
    );
    let mut s = Sim::new(false);
    s.handshake();
    // Past the REKEY_TIMEOUT rate limit of the first initiation.
    s.run_for(REKEY_TIMEOUT);
    s.a.dev
        .peer_mut(peer)
        .unwrap()
        .current_keypair_mut()
        .unwrap()
        .set_send_counter(REJECT_AFTER_MESSAGES);
    assert_eq!(
        s.send(S::A, 1),
        SendResult::Staged,
        "never sends at the reject limit"
    );
    assert_eq!(s.count(S::A, TransmitKind::Initiation), 2);
    s.pump();
    assert_eq!(s.b.inbox, vec![0, 1], "sent on the new session");
}

#[test]
fn random_datagrams_of_every_length_change_nothing() {
    let mut s = Sim::new(false);
    s.handshake();
    let mut r = ChaCha8Rng::seed_from_u64(9);
    use rand_chacha::rand_core::RngCore;
    let indices = s.b.dev.indices_in_use();
    for len in 0..2000 {
        let mut v = vec![0u8; len];
        r.fill_bytes(&mut v);
        if len >= 4 {
            v[0] = (len % 6) as u8;
            v[1..4].fill(0);
        }
        let from: SocketAddr = "198.18.0.77:1234".parse().unwrap();
        assert!(s.deliver(S::B, from, v).is_err());
    }
    assert!(s.wire.is_empty(), "no answer to garbage");
    assert_eq!(s.b.dev.indices_in_use(), indices);
    s.send(S::A, 1);
    s.pump();
    assert_eq!(s.b.inbox, vec![0, 1]);
}

#[test]
fn one_initiation_per_rekey_timeout_under_a_burst() {
    let mut s = Sim::new(false);
    s.filter = Box::new(|_, _| false);
    for i in 0..50 {
        s.send(S::A, i);
        s.now = s.now.after(Duration::from_millis(90)); // 4.5 s of sends
    }
    assert_eq!(s.count(S::A, TransmitKind::Initiation), 1);
}

#[test]
fn cached_source_address_forgotten_before_each_retry() {
    let mut s = Sim::new(false);
    let local: std::net::IpAddr = "198.18.0.1".parse().unwrap();
    let peer = s.a.peer;
    s.a.dev.peer_mut(peer).unwrap().set_endpoint(Endpoint {
        addr: B_ADDR.parse().unwrap(),
        local: Some(local),
    });
    s.filter = Box::new(|_, _| false);
    s.send(S::A, 0);
    assert_eq!(
        s.a.dev.peer(peer).unwrap().endpoint().unwrap().local,
        Some(local)
    );
    s.run_for(Duration::from_millis(5_400));
    assert_eq!(s.count(S::A, TransmitKind::Initiation), 2);
    let e = s.a.dev.peer(peer).unwrap().endpoint().unwrap();
    assert_eq!(e.local, None, "sticky source cleared for the retry");
    assert_eq!(
        e.addr,
        B_ADDR.parse::<SocketAddr>().unwrap(),
        "address kept"
    );
}

#[test]
fn polling_timers_do_not_expire_an_inflight_handshake() {
    // A reported bug in another implementation discarded responses after at most one 250 ms
    // poll. Here: poll every 250 ms and deliver the response 4.9 s after the initiation.
    let mut s = Sim::new(false);
    s.send(S::A, 0);
    let (to, src, init) = s.wire.pop_front().unwrap();
    s.deliver(to, src, init).unwrap();
    let (_, bsrc, response) = s.wire.pop_front().unwrap();
    for _ in 0..19 {
        s.now = s.now.after(Duration::from_millis(250));
        s.tick();
    }
    s.now = s.now.after(Duration::from_millis(150));
    assert_eq!(s.count(S::A, TransmitKind::Initiation), 1);
    assert!(matches!(
        s.deliver(S::A, bsrc, response),
        Ok(Received::Handshake(_))
    ));
    s.pump();
    assert_eq!(s.b.inbox, vec![0]);
}

#[test]
fn private_key_change_forces_a_new_handshake() {
    let mut s = Sim::new(false);
    s.handshake();
    let peer = s.b.peer;
    // B changes its key: A's handshakes with the old key must now fail; B stops sending on the
    // old session.
    let new = PrivateKey::generate(&mut ChaCha8Rng::seed_from_u64(77));
    assert_eq!(s.b.dev.set_private_key(new.clone()), None);
    assert_eq!(s.send(S::B, 5), SendResult::Staged);
    assert!(
        !s.b.dev
            .peer(peer)
            .unwrap()
            .current_keypair()
            .unwrap()
            .can_send(s.now.mono)
    );
    // A peer with the device's own new public key is removed.
    let own = new.public_key();
    let mut d = Device::new(
        PrivateKey::generate(&mut ChaCha8Rng::seed_from_u64(5)),
        rng(6),
    );
    let id = d.add_peer(own, PresharedKey::default()).unwrap();
    assert_eq!(d.set_private_key(new), Some(id));
    assert!(d.peer(id).is_none());
}

#[test]
fn a_device_without_a_private_key_is_silent() {
    let mut r = ChaCha8Rng::seed_from_u64(3);
    let mut d = Device::without_key(rng(4));
    assert!(!d.has_private_key());
    let other = PrivateKey::generate(&mut r);
    let id = d
        .add_peer(other.public_key(), PresharedKey::default())
        .unwrap();
    d.peer_mut(id)
        .unwrap()
        .set_endpoint(Endpoint::new(B_ADDR.parse().unwrap()));
    let now = Now::simulated(Duration::from_secs(1), Duration::from_secs(1_700_000_000));
    let mut out = vec![];
    d.initiate(id, now, &mut out);
    assert!(out.is_empty(), "no initiation without a key");
    // An initiation addressed to it is dropped before any DH.
    let mut s = Sim::new(false);
    s.send(S::A, 0);
    let (_, _, mut init) = s.wire.pop_front().unwrap();
    assert_eq!(
        d.receive(
            now,
            Endpoint::new(A_ADDR.parse().unwrap()),
            &mut init,
            &mut out
        ),
        Err(DropReason::NoPrivateKey)
    );
    d.set_private_key(PrivateKey::generate(&mut r));
    assert!(d.has_private_key());
    d.initiate(id, now, &mut out);
    assert_eq!(out.len(), 1);
    d.clear_private_key();
    assert!(!d.has_private_key());
}

/// Suspend and resume: the clock jumps 10 minutes between two packets with no timer run in
/// between (the daemon's clock is CLOCK_BOOTTIME, which counts the sleep). Either side's next
/// packet must start a new handshake instead of going out under the expired keypair, and be
/// delivered once the handshake completes.
#[test]
fn a_ten_minute_clock_jump_rekeys_before_sending_and_loses_nothing() {
    for sender in [S::A, S::B] {
        let mut s = Sim::new(false);
        s.handshake();
        assert!(matches!(s.send(S::B, 1), SendResult::Sealed { .. }));
        s.pump();
        let jumped = s.now.mono.plus(Duration::from_secs(600));
        s.now = s.now.after(Duration::from_secs(600));
        let logged = s.log.len();
        let seq = 100;
        assert_eq!(
            s.send(sender, seq),
            SendResult::Staged,
            "{sender:?} must not seal under a 10-minute-old keypair"
        );
        let after: Vec<_> = s.log[logged..]
            .iter()
            .map(|&(t, who, k)| (t, who, k))
            .collect();
        assert_eq!(
            after.first().map(|&(t, who, k)| (t, who, k)),
            Some((jumped, sender, TransmitKind::Initiation)),
            "the first thing {sender:?} sends after the jump is an initiation: {after:?}"
        );
        s.pump();
        let inbox = match sender {
            S::A => &s.b.inbox,
            S::B => &s.a.inbox,
        };
        assert_eq!(
            inbox.last(),
            Some(&seq),
            "the staged packet arrives after the handshake"
        );
        // Data after the jump went out only under the new keypair: the receiver dropped nothing.
        assert!(s.drops.is_empty(), "drops after the jump: {:?}", s.drops);
    }
}
