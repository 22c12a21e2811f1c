//! Smoke tests of the network-namespace harness (`tests/common/netns.rs`) against stock
//! WireGuard: two Debian `wireguard-go` daemons in two namespaces joined by a veth pair ping each
//! other through the tunnel, over IPv4 and IPv6 inner addresses, with an IPv4 and an IPv6
//! underlay endpoint. Needs root; skips (or, with CI=true, fails) without it.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::netns::{Netns, StockPeer, privileged_or_skip, unique_iface, veth, wg_genkey};

/// Underlay addresses of the two namespaces.
const UNDERLAY_A: [&str; 2] = ["198.18.0.1/24", "2001:db8::1/64"];
const UNDERLAY_B: [&str; 2] = ["198.18.0.2/24", "2001:db8::2/64"];
/// Tunnel addresses of the two WireGuard interfaces.
const TUNNEL_A: [&str; 2] = ["198.19.0.1/24", "2001:db8:1::1/64"];
const TUNNEL_B: [&str; 2] = ["198.19.0.2/24", "2001:db8:1::2/64"];
const PORT: u16 = 51820;
const MTU: u32 = 1420;

/// Brings up wireguard-go in `b` (responder, started first) and in `a` (initiator, with
/// `endpoint_of_b`), then pings both ways over both inner address families.
fn wireguard_go_pair(endpoint_of_b: &str) {
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &UNDERLAY_A, &b, &UNDERLAY_B);

    let (priv_a, pub_a) = wg_genkey();
    let (priv_b, pub_b) = wg_genkey();
    let conf_b = format!(
        "[Interface]\nPrivateKey = {priv_b}\nListenPort = {PORT}\n\n\
         [Peer]\nPublicKey = {pub_a}\nAllowedIPs = 198.19.0.1/32, 2001:db8:1::1/128\n"
    );
    let conf_a = format!(
        "[Interface]\nPrivateKey = {priv_a}\nListenPort = {PORT}\n\n\
         [Peer]\nPublicKey = {pub_b}\nEndpoint = {endpoint_of_b}\n\
         AllowedIPs = 198.19.0.2/32, 2001:db8:1::2/128\n"
    );
    // Declared after the namespaces: dropped (stopped) before them.
    let peer_b = StockPeer::wireguard_go(&b, &unique_iface("wg"), &conf_b, &TUNNEL_B, MTU);
    let peer_a = StockPeer::wireguard_go(&a, &unique_iface("wg"), &conf_a, &TUNNEL_A, MTU);

    // The first packet triggers the handshake; allow for one REKEY_TIMEOUT retry.
    assert!(
        a.wait_ping("198.19.0.2", Duration::from_secs(12)),
        "no ping reply through the tunnel from {} to 198.19.0.2",
        a.name
    );
    a.ping("198.19.0.2", 3);
    a.ping("2001:db8:1::2", 3);
    b.ping("198.19.0.1", 3);
    b.ping("2001:db8:1::1", 3);

    assert!(
        peer_a.latest_handshake(&pub_b).is_some(),
        "initiator reports no handshake:\n{}",
        peer_a.wg(&["show", &peer_a.iface])
    );
    assert!(
        peer_b.latest_handshake(&pub_a).is_some(),
        "responder reports no handshake:\n{}",
        peer_b.wg(&["show", &peer_b.iface])
    );
    let (rx, tx) = peer_b
        .transfer(&pub_a)
        .expect("responder lists the initiator as a peer");
    assert!(rx > 0 && tx > 0, "responder transfer rx={rx} tx={tx}");
    let show = peer_b.wg(&["show", &peer_b.iface, "endpoints"]);
    let expected_ip = endpoint_of_b
        .rsplit_once(':')
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
        .expect("endpoint has a port");
    let expected_peer_ip = if expected_ip.contains(':') {
        "2001:db8::1"
    } else {
        "198.18.0.1"
    };
    assert!(
        show.contains(expected_peer_ip),
        "responder sees the initiator at an unexpected endpoint: {show}"
    );
}

#[test]
fn wireguard_go_pair_over_ipv4_underlay() {
    if !privileged_or_skip("wireguard_go_pair_over_ipv4_underlay") {
        return;
    }
    wireguard_go_pair(&format!("198.18.0.2:{PORT}"));
}

#[test]
fn wireguard_go_pair_over_ipv6_underlay() {
    if !privileged_or_skip("wireguard_go_pair_over_ipv6_underlay") {
        return;
    }
    wireguard_go_pair(&format!("[2001:db8::2]:{PORT}"));
}

/// `Netns::enter` puts std::net sockets in the namespace: a UDP datagram crosses the veth pair
/// between sockets bound to addresses that exist only inside the two namespaces.
#[test]
fn enter_binds_sockets_inside_the_namespace() {
    if !privileged_or_skip("enter_binds_sockets_inside_the_namespace") {
        return;
    }
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &UNDERLAY_A, &b, &UNDERLAY_B);
    for (addr_a, addr_b) in [
        ("198.18.0.1", "198.18.0.2"),
        ("[2001:db8::1]", "[2001:db8::2]"),
    ] {
        let receiver = b.enter(|| {
            let sock = UdpSocket::bind(format!("{addr_b}:0")).expect("bind in namespace b");
            sock.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("set read timeout");
            sock
        });
        let to = receiver.local_addr().expect("receiver address");
        a.enter(|| {
            let sock = UdpSocket::bind(format!("{addr_a}:0")).expect("bind in namespace a");
            sock.send_to(b"hello through veth", to)
                .expect("send to namespace b");
        });
        let mut buf = [0u8; 64];
        let (n, from) = receiver
            .recv_from(&mut buf)
            .expect("datagram from namespace a");
        assert_eq!(&buf[..n], b"hello through veth");
        assert_eq!(
            from.ip().to_string(),
            addr_a.trim_start_matches('[').trim_end_matches(']')
        );
    }
    // The host namespace has none of these addresses.
    assert!(
        UdpSocket::bind("198.18.0.1:0").is_err(),
        "198.18.0.1 should exist only inside {}",
        a.name
    );
}
