//! Tunnel MTUs above and below the path MTU (issue #10, item 1): wgd ↔ wgd, wireguard-go and
//! boringtun in namespaces over a veth underlay of 1500 or 1400 bytes, IPv4 and IPv6, with wgd's
//! TUN offload on and off, at tunnel MTU 1280, 1420, 1500, 9000, 34,736 and 65,535 (the largest
//! a TUN accepts). At each MTU: a SHA-256-checked TCP transfer each way (inner IPv4) and UDP
//! datagrams of every size class up to the largest one packet carries, echoed back and compared
//! byte for byte (inner IPv4 and IPv6).
//!
//! A tunnel MTU above the path's works only if the outer datagrams may be fragmented, as the
//! kernel sends them; before the fix every full-sized packet above tunnel MTU 1440 (1500 underlay)
//! vanished while pings passed. Above ~65,475 no outer UDP datagram can carry a full inner packet:
//! wgd answers those with ICMP "fragmentation needed"/"packet too big", so TCP and UDP senders
//! shrink to what fits (see `docs/architecture.md`, "Outer fragmentation").

mod common;

use common::conf::pair_confs;
use common::netns::{Impl, Netns, StockPeer, impl_or_skip, unique_iface, veth, wgd_impl};
use common::transfer::tcp_transfer;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const A_TUN: [&str; 2] = ["198.19.0.1/24", "2001:db8:1::1/64"];
const B_TUN: [&str; 2] = ["198.19.0.2/24", "2001:db8:1::2/64"];
const A_UL: [&str; 2] = ["198.18.0.1/24", "2001:db8::1/64"];
const B_UL: [&str; 2] = ["198.18.0.2/24", "2001:db8::2/64"];

/// Tunnel MTUs tried over every underlay, wgd at both ends: up to 65,535, the largest a TUN
/// accepts.
const MTUS: [u32; 6] = [1280, 1420, 1500, 9000, 34736, 65535];
/// The same against a stock peer, whose largest is 65,472: the largest inner packet one outer
/// IPv4 datagram carries (65,507 bytes of UDP payload less 32 of header and tag, padded to 16).
/// Above it wireguard-go drops what it cannot send without an ICMP error (TCP and full-sized
/// UDP from its side stall; wgd's side passes, answering with "fragmentation needed"), and
/// boringtun-cli 0.7.1 at MTU 65,535 passes pings but not even 8-byte UDP datagrams (measured).
const STOCK_MTUS: [u32; 6] = [1280, 1420, 1500, 9000, 34736, 65472];
/// Bytes of each TCP transfer (one each way per MTU).
const TCP_BYTES: u64 = 3 << 20;
/// How long one transfer may take before the MTU counts as a black hole.
const TCP_TIMEOUT: Duration = Duration::from_secs(20);
/// Rounds of the UDP size classes per family.
const UDP_ROUNDS: usize = 3;
/// Tries per UDP datagram (the first datagram above a new path-MTU limit may be lost while
/// the sender learns it from wgd's ICMP).
const UDP_TRIES: usize = 4;
const UDP_PORT: u16 = 5300;

/// One underlay: family and veth MTU.
#[derive(Clone, Copy, Debug)]
struct Underlay {
    v6: bool,
    mtu: u32,
}

const UNDERLAYS: [Underlay; 4] = [
    Underlay {
        v6: false,
        mtu: 1500,
    },
    Underlay {
        v6: false,
        mtu: 1400,
    },
    Underlay {
        v6: true,
        mtu: 1500,
    },
    Underlay {
        v6: true,
        mtu: 1400,
    },
];

/// `conf` with `MTU = mtu` in its `[Interface]` section (wgd reads it; `wg setconf` would not).
fn with_mtu(conf: &str, mtu: u32) -> String {
    conf.replacen("[Interface]\n", &format!("[Interface]\nMTU = {mtu}\n"), 1)
}

/// [`MTUS`] for wgd as the peer, else [`STOCK_MTUS`]; or the comma-separated list in
/// `WGDT_MTUS` (to rerun one case by hand).
fn mtus(peer: &Impl) -> Vec<u32> {
    match (std::env::var("WGDT_MTUS"), peer) {
        (Ok(v), _) => v.split(',').filter_map(|m| m.trim().parse().ok()).collect(),
        (Err(_), Impl::Wgd(_)) => MTUS.to_vec(),
        (Err(_), _) => STOCK_MTUS.to_vec(),
    }
}

/// Starts `which` for one end at tunnel MTU `mtu`.
fn start(
    which: &Impl,
    ns: &Netns,
    prefix: &str,
    conf: &str,
    addrs: &[&str],
    mtu: u32,
    offload: bool,
) -> StockPeer {
    let env: &[(&str, &str)] = if offload {
        &[]
    } else {
        &[("WGD_NO_TUN_OFFLOAD", "1")]
    };
    let conf = match which {
        Impl::Wgd(_) => with_mtu(conf, mtu),
        _ => conf.to_string(),
    };
    StockPeer::start_with_env(which, ns, &unique_iface(prefix), &conf, addrs, mtu, env)
}

/// The payload of UDP datagram `seq` of `len` bytes: the sequence number, then bytes only that
/// number produces.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(seq).fill_bytes(&mut p);
    for (d, s) in p.iter_mut().zip(seq.to_le_bytes()) {
        *d = s;
    }
    p
}

/// Runs a UDP echo server on `bind` in `server_ns` while `client_ns` sends datagrams of every
/// size class up to `max` to it, each compared byte for byte with its echo. Returns an error
/// naming the first datagram that never came back intact.
fn udp_echo(
    server_ns: &Netns,
    bind: SocketAddr,
    client_ns: &Netns,
    max: usize,
) -> Result<(), String> {
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            server_ns.enter(|| {
                let sock = UdpSocket::bind(bind).expect("bind the UDP echo server");
                sock.set_read_timeout(Some(Duration::from_millis(100)))
                    .expect("timeout");
                ready_tx.send(()).expect("ready");
                let mut buf = vec![0u8; 65536];
                let deadline = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            })
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("echo server ready");
        let result = client_ns.enter(|| {
            let any: SocketAddr = if bind.is_ipv4() {
                "0.0.0.0:0".parse().unwrap()
            } else {
                "[::]:0".parse().unwrap()
            };
            let sock = UdpSocket::bind(any).expect("bind the UDP client");
            sock.set_read_timeout(Some(Duration::from_millis(500)))
                .expect("timeout");
            let sizes = [8, 100, 1000, max / 2, max - 1, max];
            let mut buf = vec![0u8; 65536];
            let mut seq = 0u64;
            for _ in 0..UDP_ROUNDS {
                for &len in &sizes {
                    seq += 1;
                    let p = payload(seq, len);
                    let mut ok = false;
                    for _ in 0..UDP_TRIES {
                        if let Err(e) = sock.send_to(&p, bind) {
                            // EMSGSIZE right after an ICMP "too big": the next try fragments.
                            eprintln!("  udp send of {len} bytes: {e}");
                            continue;
                        }
                        // Skip stale echoes of earlier tries.
                        let until = Instant::now() + Duration::from_millis(500);
                        while Instant::now() < until {
                            match sock.recv_from(&mut buf) {
                                Ok((n, _)) if buf[..n] == p[..] => {
                                    ok = true;
                                    break;
                                }
                                Ok((n, _)) if n >= 8 && buf[..8] == p[..8] => {
                                    return Err(format!(
                                        "datagram {seq} ({len} B) came back altered"
                                    ));
                                }
                                Ok(_) => {}
                                Err(_) => break,
                            }
                        }
                        if ok {
                            break;
                        }
                    }
                    if !ok {
                        return Err(format!(
                            "no echo of datagram {seq} ({len} B) to {bind} after {UDP_TRIES} tries"
                        ));
                    }
                }
            }
            Ok(())
        });
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// Largest UDP payload one inner packet of `mtu` bytes carries (and UDP allows).
fn udp_max(mtu: u32, v6: bool) -> usize {
    let mtu = mtu as usize;
    if v6 {
        (mtu - 48).min(65527)
    } else {
        (mtu - 28).min(65507)
    }
}

/// One underlay and one peer kind: every tunnel MTU, both directions, TCP and UDP. Returns the
/// failures (empty: all passed), each naming the case.
fn underlay_case(peer: &Impl, offload: bool, ul: Underlay) -> Vec<String> {
    let a = Netns::new();
    let b = Netns::new();
    let (va, vb) = veth(&a, &A_UL, &b, &B_UL);
    let mtu = ul.mtu.to_string();
    a.ip(&["link", "set", "dev", &va, "mtu", &mtu]);
    b.ip(&["link", "set", "dev", &vb, "mtu", &mtu]);
    let endpoint = if ul.v6 {
        "[2001:db8::1]:51820"
    } else {
        "198.18.0.1:51820"
    };
    let w = wgd_impl();
    let mut failures = Vec::new();
    for m in mtus(peer) {
        let case = format!(
            "wgd <-> {} tunnel MTU {m} over {} underlay MTU {} offload {}",
            peer.name(),
            if ul.v6 { "IPv6" } else { "IPv4" },
            ul.mtu,
            if offload { "on" } else { "off" }
        );
        let started = Instant::now();
        let (ca, cb) = pair_confs(false, endpoint);
        let server = start(&w, &a, "wma", &ca, &A_TUN, m, offload);
        let client = start(peer, &b, "wmb", &cb, &B_TUN, m, offload);
        let mut fail = |what: String| failures.push(format!("{case}: {what}"));
        if !b.wait_ping("198.19.0.1", Duration::from_secs(10)) {
            fail("no ping through the tunnel".into());
            drop((client, server));
            continue;
        }
        for (from, to, dst) in [(&b, &a, "198.19.0.1:5201"), (&a, &b, "198.19.0.2:5202")] {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                tcp_transfer(
                    to,
                    dst.parse().unwrap(),
                    from,
                    TCP_BYTES,
                    TCP_TIMEOUT,
                    || {},
                )
            }));
            match r {
                Ok(t) if t.bytes == TCP_BYTES && t.sent == t.received => {}
                Ok(t) => fail(format!(
                    "TCP to {dst}: {} of {TCP_BYTES} bytes, hashes equal: {}",
                    t.bytes,
                    t.sent == t.received
                )),
                Err(_) => fail(format!("TCP to {dst} failed or stalled")),
            }
        }
        for (bind, v6) in [("198.19.0.1", false), ("2001:db8:1::1", true)] {
            let addr = SocketAddr::new(bind.parse().unwrap(), UDP_PORT);
            if let Err(e) = udp_echo(&a, addr, &b, udp_max(m, v6)) {
                fail(format!("UDP: {e}"));
            }
        }
        eprintln!("{case}: {:.1} s", started.elapsed().as_secs_f64());
        drop((client, server));
    }
    failures
}

/// Every underlay for one peer kind and offload setting; panics listing every failing case.
fn matrix(name: &str, peer: Impl, offload: bool) {
    let w = wgd_impl();
    if !impl_or_skip(name, &w) || !impl_or_skip(name, &peer) {
        return;
    }
    let failures: Vec<String> = UNDERLAYS
        .iter()
        .flat_map(|&ul| underlay_case(&peer, offload, ul))
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn mtus_wgd_to_wgd_offload_on() {
    matrix("mtus_wgd_to_wgd_offload_on", wgd_impl(), true);
}

#[test]
fn mtus_wgd_to_wgd_offload_off() {
    matrix("mtus_wgd_to_wgd_offload_off", wgd_impl(), false);
}

#[test]
fn mtus_wgd_to_wireguard_go() {
    matrix("mtus_wgd_to_wireguard_go", Impl::WireguardGo, true);
}

#[test]
fn mtus_wgd_to_wireguard_go_offload_off() {
    matrix(
        "mtus_wgd_to_wireguard_go_offload_off",
        Impl::WireguardGo,
        false,
    );
}

#[test]
fn mtus_wgd_to_boringtun() {
    matrix("mtus_wgd_to_boringtun", Impl::Boringtun, true);
}

#[test]
fn mtus_wgd_to_boringtun_offload_off() {
    matrix("mtus_wgd_to_boringtun_offload_off", Impl::Boringtun, false);
}

/// A fault while traffic flows (issue #10, item 4): the underlay's MTU falls from 1500 to 1400
/// in the middle of a TCP transfer at tunnel MTU 1420 (full-sized datagrams no longer fit the
/// route: GSO batches of them are refused until the cached route MTU is probed again), then
/// rises again during a second transfer. Both complete intact, with no restart.
#[test]
fn underlay_mtu_falls_and_rises_mid_transfer() {
    let w = wgd_impl();
    if !impl_or_skip("underlay_mtu_falls_and_rises_mid_transfer", &w) {
        return;
    }
    let a = Netns::new();
    let b = Netns::new();
    let (va, vb) = veth(&a, &A_UL, &b, &B_UL);
    let (ca, cb) = pair_confs(false, "198.18.0.1:51820");
    let mut server = start(&w, &a, "wfa", &ca, &A_TUN, 1420, true);
    let mut client = start(&w, &b, "wfb", &cb, &B_TUN, 1420, true);
    assert!(
        b.wait_ping("198.19.0.1", Duration::from_secs(10)),
        "tunnel up"
    );
    let set_mtu = |m: &str| {
        a.ip(&["link", "set", "dev", &va, "mtu", m]);
        b.ip(&["link", "set", "dev", &vb, "mtu", m]);
    };
    for (mtu, bytes) in [("1400", 64u64 << 20), ("1500", 32 << 20)] {
        let t = tcp_transfer(
            &a,
            "198.19.0.1:5201".parse().unwrap(),
            &b,
            bytes,
            Duration::from_secs(60),
            || set_mtu(mtu),
        );
        assert_eq!(t.bytes, bytes, "underlay MTU -> {mtu} mid-transfer");
        assert_eq!(t.sent, t.received, "SHA-256 with the underlay MTU -> {mtu}");
        eprintln!(
            "underlay MTU -> {mtu} mid-transfer: {:.0} Mbit/s",
            t.mbit_per_s()
        );
    }
    server.assert_running();
    client.assert_running();
    for (who, p) in [("server", &server), ("client", &client)] {
        let log = p.log();
        eprintln!(
            "{who}: {} refused GSO sends, {} GSO restores",
            log.matches("sending singly").count(),
            log.matches("UDP GSO restored").count()
        );
    }
}

#[test]
fn tunnel_mtu_raised_after_start_to_the_largest() {
    let w = wgd_impl();
    if !impl_or_skip("tunnel_mtu_raised_after_start_to_the_largest", &w) {
        return;
    }
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &A_UL, &b, &B_UL);
    let (ca, cb) = pair_confs(false, "198.18.0.1:51820");
    let mut server = start(&w, &a, "wfa", &ca, &A_TUN, 1420, true);
    let mut client = start(&w, &b, "wfb", &cb, &B_TUN, 1420, true);
    assert!(
        b.wait_ping("198.19.0.1", Duration::from_secs(10)),
        "tunnel up"
    );
    // `ip link set mtu` after start, as an operator would: the daemons must pad for the new
    // MTU (before, padding for the old one pushed 65,472-byte packets past the largest UDP
    // datagram and TCP moved nothing).
    a.ip(&["link", "set", "dev", &server.iface, "mtu", "65535"]);
    b.ip(&["link", "set", "dev", &client.iface, "mtu", "65535"]);
    let bytes = 16u64 << 20;
    let t = tcp_transfer(
        &a,
        "198.19.0.1:5201".parse().unwrap(),
        &b,
        bytes,
        Duration::from_secs(60),
        || {},
    );
    assert_eq!(t.bytes, bytes, "TCP after the MTU was raised to 65,535");
    assert_eq!(t.sent, t.received, "SHA-256 after the MTU raise");
    eprintln!(
        "tunnel MTU raised to 65,535 after start: {:.0} Mbit/s",
        t.mbit_per_s()
    );
    server.assert_running();
    client.assert_running();
    assert!(server.log().contains("interface MTU changed mtu=65535"));
}
