//! Hostile traffic against a running daemon (issue #6), in namespaces:
//!
//! ```text
//!   attacker (64 addresses 198.18.1.10-73) ---- A: in-process wgd ---- B: wgd (legitimate peer)
//!                                198.18.1.1    198.18.0.1           198.18.0.2
//! ```
//!
//! 1. Datagrams of every length 0..=2000 with random bytes: all dropped and counted, the tunnel
//!    still works.
//! 2. A flood of 240,000 forged initiations (valid MAC1 for A's key, random content) from 64
//!    source addresses over 10 s. Meanwhile the established session keeps carrying pings, and B
//!    restarts: its new handshake must complete through the cookie path (A is under load: the
//!    first initiation gets a cookie reply, the retry 5 s later carries MAC2).
//! 3. A's counters: the share of forged initiations answered with a cookie reply instead of a DH
//!    computation.
//!
//! And, in its own set-up, replays: B's handshake initiation and transport datagrams are captured
//! on A's side of the wire (an `AF_PACKET` socket in A's namespace) and sent again by the
//! attacker, three times each: none is answered, none moves A's endpoint for B, the tunnel keeps
//! working, and A counts every one of them in `rx.replayed`.

mod common;

use common::inproc::{InProc, MTU};
use common::netns::{Impl, Netns, StockPeer, impl_or_skip, unique_iface, veth, wgd_impl};
use rand_core::{OsRng, RngCore};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::Read;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wgd::crypto::keys::{PrivateKey, PublicKey};
use wgd::proto::messages::{INITIATION_LEN, Initiation};

const PORT: u16 = 51820;
/// Forged initiations: at 24,000/s, more than one core can answer with DH computations (a failed
/// initiation costs one X25519, ~60 µs), so the handshake queue fills and A stays under load.
const FORGED: usize = 240_000;
const SOURCES: usize = 64;
/// The flood's length: long enough to cover B's restart and its cookie retry.
const FLOOD_TIME: Duration = Duration::from_secs(10);

fn conf(
    own: &PrivateKey,
    port: Option<u16>,
    peer: &PublicKey,
    allowed: &str,
    ep: Option<&str>,
) -> String {
    let mut c = format!("[Interface]\nPrivateKey = {}\n", own.to_base64().as_str());
    if let Some(p) = port {
        c += &format!("ListenPort = {p}\n");
    }
    c += &format!("\n[Peer]\nPublicKey = {peer}\nAllowedIPs = {allowed}\n");
    if let Some(e) = ep {
        c += &format!("Endpoint = {e}\n");
    }
    c
}

/// The namespaces of both tests: A (the in-process wgd, listening on [`PORT`], 198.18.0.1
/// towards B and 198.18.1.1 towards the attacker), B (a wgd peer, configured but not started:
/// [`Setup::start_b`]) and X, the attacker (198.18.1.10 on `x_dev`). The daemon is the first
/// field, so it stops before the namespaces go.
struct Setup {
    daemon: InProc,
    a_ns: Arc<Netns>,
    a_iface: String,
    a_public: PublicKey,
    b_ns: Netns,
    b_conf: String,
    x_ns: Arc<Netns>,
    x_dev: String,
}

fn setup() -> Setup {
    let a_ns = Arc::new(Netns::new());
    let b_ns = Netns::new();
    let x_ns = Arc::new(Netns::new());
    veth(&a_ns, &["198.18.0.1/24"], &b_ns, &["198.18.0.2/24"]);
    let (_, x_dev) = veth(&a_ns, &["198.18.1.1/24"], &x_ns, &["198.18.1.10/24"]);
    let ka = PrivateKey::generate(&mut OsRng);
    let kb = PrivateKey::generate(&mut OsRng);
    let a_conf = conf(&ka, Some(PORT), &kb.public_key(), "198.19.0.2/32", None);
    let b_conf = conf(
        &kb,
        None,
        &ka.public_key(),
        "198.19.0.1/32",
        Some(&format!("198.18.0.1:{PORT}")),
    );
    let a_iface = unique_iface("wga");
    let (daemon, _) = InProc::start(&a_ns, &a_iface, &a_conf);
    a_ns.ip(&["addr", "add", "198.19.0.1/24", "dev", &a_iface]);
    a_ns.ip(&["link", "set", &a_iface, "up"]);
    Setup {
        daemon,
        a_ns,
        a_iface,
        a_public: ka.public_key(),
        b_ns,
        b_conf,
        x_ns,
        x_dev,
    }
}

impl Setup {
    /// Starts B's wgd (a new interface each time, so B can be restarted).
    fn start_b(&self, w: &Impl) -> StockPeer {
        StockPeer::start(
            w,
            &self.b_ns,
            &unique_iface("wgb"),
            &self.b_conf,
            &["198.19.0.2/24"],
            MTU,
        )
    }
}

/// A forged initiation: random everything, with a valid MAC1 for `responder` (anyone who knows
/// the public key can compute it) and no MAC2.
fn forged_initiation(mac1_key: &[u8; 32]) -> [u8; INITIATION_LEN] {
    let mut m = [0u8; INITIATION_LEN];
    OsRng.fill_bytes(&mut m);
    m[..4].copy_from_slice(&1u32.to_le_bytes());
    let mac1 = wgd::crypto::mac(mac1_key, &[&m[..Initiation::MAC1_OFFSET]]);
    m[Initiation::MAC1_OFFSET..Initiation::MAC1_OFFSET + 16].copy_from_slice(&mac1);
    m[Initiation::MAC1_OFFSET + 16..].fill(0);
    m
}

/// Sends `count` forged initiations to `target` from `SOURCES` sockets, paced over `time`.
fn flood(target: SocketAddr, responder: PublicKey, count: usize, time: Duration) -> usize {
    let mac1_key = wgd::crypto::hash(&[wgd::proto::cookie::LABEL_MAC1, responder.as_bytes()]);
    let socks: Vec<UdpSocket> = (0..SOURCES)
        .map(|i| {
            let s = UdpSocket::bind(format!("198.18.1.{}:0", 10 + i)).expect("bind a source");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect();
    let start = Instant::now();
    let mut sent = 0;
    for i in 0..count {
        // Pace: packet i leaves at i/count of the flood time.
        let due = time.mul_f64(i as f64 / count as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let m = forged_initiation(&mac1_key);
        if socks[i % SOURCES].send_to(&m, target).is_ok() {
            sent += 1;
        }
        // Drain cookie replies so the sockets' buffers do not fill up.
        let mut buf = [0u8; 256];
        while socks[i % SOURCES].recv(&mut buf).is_ok() {}
    }
    sent
}

#[test]
fn garbage_and_initiation_flood_do_not_stop_a_legitimate_peer() {
    let test = "garbage_and_initiation_flood_do_not_stop_a_legitimate_peer";
    let w = wgd_impl();
    if !impl_or_skip(test, &w) {
        return;
    }
    let s = setup();
    for i in 1..SOURCES {
        let addr = format!("198.18.1.{}/24", 10 + i);
        s.x_ns.ip(&["addr", "add", &addr, "dev", &s.x_dev]);
    }
    let (b_ns, x_ns) = (&s.b_ns, &s.x_ns);
    let peer = s.start_b(&w);
    assert!(
        b_ns.wait_ping("198.19.0.1", Duration::from_secs(10)),
        "no tunnel"
    );

    // 1. Random datagrams of every length.
    let target: SocketAddr = format!("198.18.1.1:{PORT}").parse().expect("addr");
    let garbage_sent = x_ns.enter(move || {
        let s = UdpSocket::bind("198.18.1.10:0").expect("bind");
        let mut sent = 0;
        for len in 0..=2000usize {
            let mut d = vec![0u8; len];
            OsRng.fill_bytes(&mut d);
            if s.send_to(&d, target).is_ok() {
                sent += 1;
            }
            if len % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        sent
    });
    assert_eq!(garbage_sent, 2001);
    b_ns.ping("198.19.0.1", 3);

    // 2. The flood, in the background.
    let responder = s.a_public;
    let flood_ns = Arc::clone(x_ns);
    let flooder = std::thread::spawn(move || {
        flood_ns.enter(move || flood(target, responder, FORGED, FLOOD_TIME))
    });
    std::thread::sleep(Duration::from_millis(500));
    // The established session keeps carrying traffic during the flood.
    let out = b_ns.run_unchecked_within(
        &[
            "ping",
            "-n",
            "-c",
            "40",
            "-i",
            "0.05",
            "-W",
            "1",
            "198.19.0.1",
        ],
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let received: u32 = text
        .split(", ")
        .find_map(|f| f.strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        received >= 36,
        "established session lost pings during the flood:\n{text}"
    );

    // B restarts: a fresh handshake while A is under load.
    drop(peer);
    let restarted = Instant::now();
    let _peer = s.start_b(&w);
    assert!(
        b_ns.wait_ping("198.19.0.1", Duration::from_secs(25)),
        "the restarted peer could not handshake during the flood"
    );
    let reconnect = restarted.elapsed();
    let sent = flooder.join().expect("flood thread");
    let stats = s.daemon.stop();
    let d = stats.device;
    eprintln!(
        "garbage: 2001 datagrams; flood: {sent} forged initiations from {SOURCES} sources; \
         reconnect of the restarted peer took {reconnect:?}\nA: {stats:?}"
    );
    assert_eq!(sent, FORGED);
    // Every forged initiation was either answered with a cookie (no DH) or cost one DH (the
    // device was not under load yet, or no longer): count the share avoided.
    let dh = d.handshakes_processed;
    let avoided = d.cookie_replies_sent as f64 / FORGED as f64;
    eprintln!(
        "cookie replies {} ({:.1}% of the forged initiations: DH avoided), DH computations {dh}, \
         dropped (queue full) {}",
        d.cookie_replies_sent,
        avoided * 100.0,
        stats.rx.handshake_queue_full
    );
    assert!(
        avoided >= 0.7,
        "only {:.1}% of the forged initiations avoided a DH",
        avoided * 100.0
    );
    // The restarted peer went through the cookie path: its first initiation got a cookie reply
    // and it retried after REKEY_TIMEOUT (5 s).
    assert!(
        reconnect >= Duration::from_millis(4500),
        "the restarted peer connected in {reconnect:?}: A was not under load"
    );
    // Garbage: every datagram dropped, on top of the forged initiations that reached a DH and
    // failed to decrypt (all but the legitimate peer's few handshakes).
    assert!(stats.rx.dropped >= 2001 + dh.saturating_sub(4), "{stats:?}");
}

/// The UDP payload of `pkt` (an IPv4 packet as an `AF_PACKET` datagram socket returns it) if it
/// is one whole datagram from `src` to `dst`:`port` (not a GSO super-packet: its UDP length
/// must match the IP length and the bytes captured).
fn udp_payload(pkt: &[u8], src: [u8; 4], dst: [u8; 4], port: u16) -> Option<&[u8]> {
    if pkt.len() < 28 || pkt[0] >> 4 != 4 || pkt[9] != 17 {
        return None;
    }
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    let udp = pkt.get(ihl..total)?;
    if total != pkt.len() || pkt[12..16] != src || pkt[16..20] != dst || udp.len() < 8 {
        return None;
    }
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    (dport == port && ulen == udp.len()).then(|| &udp[8..])
}

#[test]
fn replayed_initiations_and_transport_are_dropped_and_counted() {
    let test = "replayed_initiations_and_transport_are_dropped_and_counted";
    let w = wgd_impl();
    if !impl_or_skip(test, &w) {
        return;
    }
    let s = setup();
    let (a_ns, b_ns, x_ns, a_iface) = (&s.a_ns, &s.b_ns, &s.x_ns, &s.a_iface);

    // Capture what reaches A from B, from before B's first initiation until a few pings later.
    let tap = a_ns.enter(|| {
        let proto = Protocol::from(i32::from((libc::ETH_P_IP as u16).to_be()));
        let s = Socket::new(Domain::PACKET, Type::DGRAM, Some(proto)).expect("AF_PACKET socket");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        s
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stop_tap = Arc::clone(&stop);
    let capture = std::thread::spawn(move || {
        let mut tap = tap;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 65_536];
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stop_tap.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok(n) = tap.read(&mut buf)
                && let Some(p) = udp_payload(&buf[..n], [198, 18, 0, 2], [198, 18, 0, 1], PORT)
            {
                seen.push(p.to_vec());
            }
        }
        seen
    });
    let _peer = s.start_b(&w);
    assert!(
        b_ns.wait_ping("198.19.0.1", Duration::from_secs(10)),
        "no tunnel"
    );
    b_ns.ping("198.19.0.1", 5);
    stop.store(true, Ordering::Relaxed);
    let captured = capture.join().expect("capture thread");
    let initiations = captured
        .iter()
        .filter(|d| d.len() == INITIATION_LEN && d[0] == 1)
        .count();
    let transport = captured.iter().filter(|d| d[0] == 4).count();
    assert!(
        initiations >= 1 && transport >= 6,
        "captured {} datagrams from B: {initiations} initiations, {transport} transport",
        captured.len()
    );

    // The attacker sends every captured initiation and transport datagram three times from its
    // own address; A must answer none (a replayed initiation must not get a response).
    let target: SocketAddr = format!("198.18.1.1:{PORT}").parse().expect("addr");
    let replays: Vec<Vec<u8>> = captured
        .into_iter()
        .filter(|d| d[0] == 1 || d[0] == 4)
        .collect();
    let (sent, answers) = x_ns.enter(move || {
        let s = UdpSocket::bind("198.18.1.10:0").expect("bind");
        let mut sent = 0u64;
        for _ in 0..3 {
            for d in &replays {
                if s.send_to(d, target).is_ok() {
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        s.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("read timeout");
        let mut answers = 0;
        let mut buf = [0u8; 2048];
        while s.recv(&mut buf).is_ok() {
            answers += 1;
        }
        (sent, answers)
    });
    assert_eq!(sent, 3 * (initiations + transport) as u64);
    assert_eq!(answers, 0, "A answered replayed datagrams");
    // Nothing changed: A still sends to B's own address, and the session carries traffic.
    let endpoints =
        String::from_utf8_lossy(&a_ns.run(&["wg", "show", a_iface, "endpoints"]).stdout)
            .into_owned();
    assert!(
        endpoints.contains("198.18.0.2:"),
        "A's endpoint for B moved after the replays: {endpoints}"
    );
    b_ns.ping("198.19.0.1", 3);
    let stats = s.daemon.stop();
    eprintln!(
        "replayed {sent} datagrams ({initiations} initiations and {transport} transport \
         datagrams, 3 times each); A: {stats:?}"
    );
    assert_eq!(stats.rx.replayed, sent, "replays counted by A: {stats:?}");
}
