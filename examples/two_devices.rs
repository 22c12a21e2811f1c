//! Two WireGuard devices talking to each other in one process: no sockets, no threads, no real
//! clock.
//!
//! `wgd::proto::Device` is the sans-IO protocol core: you hand it inner IP packets and received
//! datagrams together with the current time ([`Now`]), and it hands back the datagrams to send
//! ([`Transmit`]). Here the "network" is a queue of datagrams and the clock is simulated, so the
//! whole exchange is deterministic and runs instantly, including a wait of two minutes.
//!
//! What happens, step by step:
//!
//! 1. Two devices, A and B, each learn the other's public key (`add_peer`) and which tunnel
//!    addresses the other may use (`add_allowed_ip`: cryptokey routing). A knows where B is
//!    (an endpoint); B learns where A is from A's first handshake message.
//! 2. A sends one packet to B. There is no session yet, so the packet is staged and a handshake
//!    initiation goes out; the response completes the handshake and the staged packet follows.
//! 3. B answers with one packet to A.
//! 4. A packet whose inner source address is not one of A's AllowedIPs is refused by B.
//! 5. The clock runs past `REKEY_AFTER_TIME` (two minutes), with the devices' timers run as an
//!    event loop would run them. The next packet A sends starts a new handshake; data keeps
//!    flowing and then moves to the new keys.
//!
//! Addresses: the underlay (where the UDP datagrams would go) is 198.18.0.1 and 198.18.0.2; the
//! tunnel is 198.19.0.1 (A) and 198.19.0.2 (B), plus 2001:db8::1 and 2001:db8::2 for IPv6.
//!
//! Run it with `cargo run --example two_devices`. `cargo test --example two_devices` (and a
//! plain `cargo test`) also runs it, and fails if any of its checks fails.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use wgd::proto::constants::REKEY_AFTER_TIME;
use wgd::proto::{
    Device, DropReason, Endpoint, Instant, Keypair, Now, PeerId, Received, SendResult, Transmit,
    TransmitKind,
};
use wgd::{PresharedKey, PrivateKey};

/// One side of the tunnel: a device with exactly one peer (the other side).
struct Node {
    name: &'static str,
    device: Device,
    /// The id the device gave to the other side when we added it as a peer.
    peer: PeerId,
    /// Where this node's UDP socket would be bound.
    underlay: SocketAddr,
    /// This node's address inside the tunnel.
    tunnel: Ipv4Addr,
    /// The payloads of the inner packets this node received, in order.
    inbox: Vec<String>,
}

/// A datagram in flight on the simulated wire.
struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    kind: TransmitKind,
    bytes: Vec<u8>,
}

/// The simulated network: a queue of datagrams, and a log of what was sent.
#[derive(Default)]
struct Wire {
    queue: VecDeque<Datagram>,
    /// Every datagram ever sent: who sent it and what it was.
    log: Vec<(&'static str, TransmitKind)>,
}

impl Wire {
    /// Puts what a device asked to send on the wire.
    fn put(&mut self, sender: &Node, now: Now, start: Now, out: Vec<Transmit>) {
        for t in out {
            println!(
                "  {}  {} sends {:?} ({} bytes) to {}",
                time(now, start),
                sender.name,
                t.kind,
                t.data.len(),
                t.endpoint.addr
            );
            self.log.push((sender.name, t.kind));
            self.queue.push_back(Datagram {
                from: sender.underlay,
                to: t.endpoint.addr,
                kind: t.kind,
                bytes: t.data,
            });
        }
    }

    /// How many datagrams of `kind` `sender` has sent so far.
    fn count(&self, sender: &str, kind: TransmitKind) -> usize {
        self.log
            .iter()
            .filter(|(s, k)| *s == sender && *k == kind)
            .count()
    }
}

fn main() {
    // Deterministic keys and randomness, so every run prints the same thing. A real program
    // uses `PrivateKey::generate(&mut rand_core::OsRng)` and `Device::with_os_rng`.
    let mut seed = ChaCha8Rng::seed_from_u64(7);
    let key_a = PrivateKey::generate(&mut seed);
    let key_b = PrivateKey::generate(&mut seed);
    let (public_a, public_b) = (key_a.public_key(), key_b.public_key());

    let mut device_a = Device::new(key_a, Box::new(ChaCha8Rng::seed_from_u64(1)));
    let mut device_b = Device::new(key_b, Box::new(ChaCha8Rng::seed_from_u64(2)));

    // Step 1: each device adds the other as a peer (no preshared key here).
    let b_on_a = device_a
        .add_peer(public_b, PresharedKey::default())
        .expect("add B to A");
    let a_on_b = device_b
        .add_peer(public_a, PresharedKey::default())
        .expect("add A to B");

    // AllowedIPs, both ways: on send, a packet for 198.19.0.2 is routed to B; on receive, a
    // packet from B must come from 198.19.0.2 (or 2001:db8::2), or it is dropped.
    device_a
        .add_allowed_ip(b_on_a, ip("198.19.0.2"), 32)
        .expect("prefix");
    device_a
        .add_allowed_ip(b_on_a, ip("2001:db8::2"), 128)
        .expect("prefix");
    device_b
        .add_allowed_ip(a_on_b, ip("198.19.0.1"), 32)
        .expect("prefix");
    device_b
        .add_allowed_ip(a_on_b, ip("2001:db8::1"), 128)
        .expect("prefix");

    let mut a = Node {
        name: "A",
        device: device_a,
        peer: b_on_a,
        underlay: "198.18.0.1:51820".parse().unwrap(),
        tunnel: Ipv4Addr::new(198, 19, 0, 1),
        inbox: Vec::new(),
    };
    let mut b = Node {
        name: "B",
        device: device_b,
        peer: a_on_b,
        underlay: "198.18.0.2:51820".parse().unwrap(),
        tunnel: Ipv4Addr::new(198, 19, 0, 2),
        inbox: Vec::new(),
    };

    // A knows B's endpoint. B does not know A's: it learns it from A's handshake initiation.
    a.device
        .peer_mut(a.peer)
        .expect("peer")
        .set_endpoint(Endpoint::new(b.underlay));

    // The simulated clock: a monotonic instant (any origin) and the wall-clock time (only used
    // for handshake timestamps). `Now::after` moves both forward.
    let start = Now::simulated(
        Duration::from_secs(1_000),
        Duration::from_secs(1_700_000_000),
    );
    let mut now = start;
    let mut wire = Wire::default();

    // Step 2: the first packet from A to B. No session exists yet: it is staged, and the
    // device queues a handshake initiation.
    println!("A sends the first packet to B:");
    let packet = ipv4_udp(a.tunnel, b.tunnel, b"hello B, this is A");
    let result = send_packet(&mut a, now, start, &packet, &mut wire);
    assert_eq!(result, SendResult::Staged);
    // Initiation -> response -> the staged packet (sealed under the new session).
    deliver_all(&mut a, &mut b, now, start, &mut wire);
    assert_eq!(b.inbox, ["hello B, this is A"]);
    assert_eq!(wire.count("A", TransmitKind::Initiation), 1);
    assert_eq!(wire.count("B", TransmitKind::Response), 1);
    let first_session = a.device.peer(a.peer).unwrap().current_keypair().unwrap();
    let (first_index, first_birth) = (first_session.local_index, first_session.birth);

    // Step 3: B answers. The session exists, so the packet is sealed at once.
    now = now.after(Duration::from_millis(10));
    println!("\nB answers:");
    let packet = ipv4_udp(b.tunnel, a.tunnel, b"hello A, B here");
    let result = send_packet(&mut b, now, start, &packet, &mut wire);
    assert!(matches!(result, SendResult::Sealed { .. }));
    deliver_all(&mut a, &mut b, now, start, &mut wire);
    assert_eq!(a.inbox, ["hello A, B here"]);

    // Step 4: A sends a packet whose inner source is not one of A's AllowedIPs on B. It
    // authenticates (A's keys sealed it) but B refuses to deliver it: cryptokey routing on
    // receive.
    now = now.after(Duration::from_millis(10));
    println!("\nA sends a packet with a forged inner source 198.19.0.99:");
    let packet = ipv4_udp(Ipv4Addr::new(198, 19, 0, 99), b.tunnel, b"spoofed");
    send_packet(&mut a, now, start, &packet, &mut wire);
    let results = deliver_all(&mut a, &mut b, now, start, &mut wire);
    assert_eq!(results, [Err(DropReason::SourceNotAllowed)]);
    assert_eq!(b.inbox.len(), 1, "B delivered nothing new");

    // Step 5: let time pass, running the devices' timers the way an event loop does: sleep
    // until the earliest `next_wakeup`, call `tick`, send what it returns.
    println!("\nTwo minutes pass (timers run):");
    now = run_timers(&mut a, &mut b, now, start, REKEY_AFTER_TIME, &mut wire);

    // The session A started is now older than REKEY_AFTER_TIME. It still works (keys are only
    // refused after REJECT_AFTER_TIME, 180 s), but the next packet A sends also starts a new
    // handshake.
    println!("\nA sends a packet after REKEY_AFTER_TIME:");
    let packet = ipv4_udp(a.tunnel, b.tunnel, b"still there?");
    let result = send_packet(&mut a, now, start, &packet, &mut wire);
    assert!(
        matches!(result, SendResult::Sealed { .. }),
        "old keys still work"
    );
    deliver_all(&mut a, &mut b, now, start, &mut wire);
    assert_eq!(
        wire.count("A", TransmitKind::Initiation),
        2,
        "a second handshake"
    );
    let session = a.device.peer(a.peer).unwrap().current_keypair().unwrap();
    assert_ne!(session.local_index, first_index, "A moved to new keys");
    assert!(session.birth > first_birth);
    let new_index = session.local_index;
    println!(
        "  A's session: index {first_index:#010x} born at {}, now {new_index:#010x} born at {}",
        time_at(first_birth, start),
        time_at(session.birth, start)
    );

    // Data flows both ways on the new session.
    now = now.after(Duration::from_millis(10));
    println!("\nBoth send on the new session:");
    let packet = ipv4_udp(a.tunnel, b.tunnel, b"new keys, A to B");
    send_packet(&mut a, now, start, &packet, &mut wire);
    let packet = ipv4_udp(b.tunnel, a.tunnel, b"new keys, B to A");
    send_packet(&mut b, now, start, &packet, &mut wire);
    deliver_all(&mut a, &mut b, now, start, &mut wire);

    assert_eq!(
        b.inbox,
        ["hello B, this is A", "still there?", "new keys, A to B"]
    );
    assert_eq!(a.inbox, ["hello A, B here", "new keys, B to A"]);
    let session_b = b.device.peer(b.peer).unwrap().current_keypair().unwrap();
    assert_eq!(
        session_b.remote_index, new_index,
        "B uses the new session too"
    );
    println!(
        "\nDone: {} initiations from A, {} responses from B; every honest packet arrived.",
        wire.count("A", TransmitKind::Initiation),
        wire.count("B", TransmitKind::Response)
    );
}

/// Hands one inner IP packet to `node`'s device, addressed by its destination, and puts
/// whatever the device wants to send on the wire.
fn send_packet(
    node: &mut Node,
    now: Now,
    start: Now,
    packet: &[u8],
    wire: &mut Wire,
) -> SendResult {
    // Cryptokey routing on send: the destination address picks the peer.
    let peer = node
        .device
        .route(packet)
        .expect("a peer owns the destination");
    assert_eq!(peer, node.peer);

    // The device encrypts in place. The buffer holds the 16-byte transport header, then the
    // packet, then room for padding and the 16-byte authentication tag.
    let mut buf = vec![0u8; Keypair::sealed_len(packet.len(), node.device.mtu())];
    buf[16..16 + packet.len()].copy_from_slice(packet);

    let mut out = Vec::new();
    let result = node
        .device
        .send(peer, now, &mut buf, packet.len(), &mut out)
        .expect("the peer exists");
    let what = match result {
        SendResult::Sealed { len, .. } => format!("sealed into a {len}-byte datagram"),
        SendResult::Staged => "staged (no session yet)".to_string(),
        other => format!("{other:?}"),
    };
    println!(
        "  {}  {} hands its device a {}-byte packet: {what}",
        time(now, start),
        node.name,
        packet.len()
    );
    // `Sealed`: the encrypted datagram is `buf[..len]`, for `endpoint`. (`Staged`: the device
    // keeps the packet until a handshake completes; it then comes out of a later call.)
    if let SendResult::Sealed { len, endpoint } = result {
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
    wire.put(node, now, start, out);
    result
}

/// Delivers every datagram on the wire, and every datagram those cause, until the wire is
/// quiet. Returns what each delivery resulted in.
fn deliver_all(
    a: &mut Node,
    b: &mut Node,
    now: Now,
    start: Now,
    wire: &mut Wire,
) -> Vec<Result<Received, DropReason>> {
    let mut results = Vec::new();
    // Bounded: a handshake and its packets take a handful of rounds.
    for _ in 0..1_000 {
        let Some(mut datagram) = wire.queue.pop_front() else {
            return results;
        };
        let to = if datagram.to == a.underlay {
            &mut *a
        } else if datagram.to == b.underlay {
            &mut *b
        } else {
            panic!("nobody at {}", datagram.to);
        };
        let mut out = Vec::new();
        // `from` is where the datagram came from: the device uses it to learn (and follow)
        // its peer's endpoint. Transport data is decrypted in place.
        let result = to.device.receive(
            now,
            Endpoint::new(datagram.from),
            &mut datagram.bytes,
            &mut out,
        );
        match result {
            Ok(Received::Data {
                offset,
                len,
                source,
                ..
            }) => {
                let packet = &datagram.bytes[offset..offset + len];
                let text = String::from_utf8_lossy(udp_payload(packet)).into_owned();
                println!(
                    "  {}  {} receives {:?} from {source} (inner packet)",
                    time(now, start),
                    to.name,
                    text
                );
                to.inbox.push(text);
            }
            Ok(other) => println!(
                "  {}  {} receives {:?}: {other:?}",
                time(now, start),
                to.name,
                datagram.kind
            ),
            Err(reason) => println!(
                "  {}  {} drops {:?}: {reason}",
                time(now, start),
                to.name,
                datagram.kind
            ),
        }
        results.push(result);
        // Replies (a handshake response, the staged packets, a keepalive) go on the wire.
        wire.put(to, now, start, out);
    }
    panic!("the wire did not go quiet");
}

/// Runs both devices' timers for `duration`, jumping from one timer deadline to the next, and
/// delivers what they send. Returns the time at the end.
fn run_timers(
    a: &mut Node,
    b: &mut Node,
    mut now: Now,
    start: Now,
    duration: Duration,
    wire: &mut Wire,
) -> Now {
    let end = now.mono.plus(duration);
    // Bounded: a quiet tunnel has a few timers per minute.
    for _ in 0..1_000 {
        // When must the event loop wake up next? (`None`: no timer is armed.)
        let next = [a.device.next_wakeup(), b.device.next_wakeup()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= end => {
                // Sleep until then (here: move the simulated clock), then run the timers.
                now = now.after(t.since(now.mono));
                for node in [&mut *a, &mut *b] {
                    let mut out = Vec::new();
                    node.device.tick(now, &mut out);
                    wire.put(node, now, start, out);
                }
                deliver_all(a, b, now, start, wire);
            }
            // Nothing due before the end.
            _ => return now.after(end.since(now.mono)),
        }
    }
    panic!("the timers did not settle");
}

/// "+12.345s": the simulated time since the start.
fn time(now: Now, start: Now) -> String {
    time_at(now.mono, start)
}

/// "+12.345s": how long after the start the instant `t` is.
fn time_at(t: Instant, start: Now) -> String {
    format!("+{:7.3}s", t.since(start.mono).as_secs_f64())
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("an IP address")
}

/// An IPv4 packet carrying a UDP datagram (to the discard port, 9) with `payload`.
fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total_len = 20 + udp_len;
    let mut p = Vec::with_capacity(total_len);
    // IPv4 header, 20 bytes: version 4 and header length 5 words, no DSCP, total length,
    // identification 0, flags "don't fragment", TTL 64, protocol 17 (UDP), checksum (below),
    // source, destination.
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let checksum = ipv4_header_checksum(&p[..20]);
    p[10..12].copy_from_slice(&checksum.to_be_bytes());
    // A header with the right checksum in it sums to zero: what a receiver checks.
    assert_eq!(ipv4_header_checksum(&p[..20]), 0);
    // UDP header, 8 bytes: source port, destination port, length, checksum 0 (= none, allowed
    // over IPv4).
    p.extend_from_slice(&9u16.to_be_bytes());
    p.extend_from_slice(&9u16.to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// The Internet checksum of an IPv4 header: the ones' complement of the ones'-complement sum
/// of its 16-bit words (computed with the checksum field zero).
fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The payload of a packet built by [`ipv4_udp`].
fn udp_payload(packet: &[u8]) -> &[u8] {
    let header_len = usize::from(packet[0] & 0x0f) * 4;
    &packet[header_len + 8..]
}

#[cfg(test)]
#[test]
fn runs() {
    main();
}
