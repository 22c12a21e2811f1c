//! The protocol core against a stock peer on the wire: Debian's wireguard-go in one namespace,
//! a driver built on wgd's core (plain UDP, no TUN) in another. The driver completes the
//! handshake, sends ICMP echo requests (IPv4 and IPv6 inner) to wireguard-go's tunnel addresses
//! and decrypts the kernel's echo replies. As initiator and as responder, with and without PSK,
//! over IPv4 and IPv6 underlay.

mod common;

use common::driver::Driver;
use common::netns::{Netns, StockPeer, privileged_or_skip, unique_iface, veth};
use common::packet::{icmp_echo, parse_echo_reply};
use rand_core::OsRng;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use wgd::crypto::keys::{PresharedKey, PrivateKey};

const GO_TUN4: &str = "198.19.0.1";
const GO_TUN6: &str = "2001:db8:1::1";
const OUR_TUN4: &str = "198.19.0.2";
const OUR_TUN6: &str = "2001:db8:1::2";

fn case(name: &str, we_initiate: bool, psk: bool, v6_underlay: bool) {
    if !privileged_or_skip(name) {
        return;
    }
    let go_ns = Netns::new();
    let our_ns = Netns::new();
    veth(
        &go_ns,
        &["198.18.0.1/24", "2001:db8::1/64"],
        &our_ns,
        &["198.18.0.2/24", "2001:db8::2/64"],
    );
    let (go_ul, our_ul) = if v6_underlay {
        ("[2001:db8::1]", "[2001:db8::2]")
    } else {
        ("198.18.0.1", "198.18.0.2")
    };
    let go_key = PrivateKey::generate(&mut OsRng);
    let our_key = PrivateKey::generate(&mut OsRng);
    let psk = if psk {
        PresharedKey::generate(&mut OsRng)
    } else {
        PresharedKey::default()
    };
    let mut conf = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\n\n[Peer]\nPublicKey = {}\nAllowedIPs = {OUR_TUN4}/32, {OUR_TUN6}/128\n",
        go_key.to_base64().as_str(),
        our_key.public_key()
    );
    if !psk.is_zero() {
        conf += &format!("PresharedKey = {}\n", psk.to_base64().as_str());
    }
    if !we_initiate {
        conf += &format!("Endpoint = {our_ul}:51821\n");
    }
    let iface = unique_iface("wgw");
    let go = StockPeer::wireguard_go(
        &go_ns,
        &iface,
        &conf,
        &[&format!("{GO_TUN4}/24"), &format!("{GO_TUN6}/64")],
        1420,
    );

    let go_pub = go_key.public_key();
    let bind: SocketAddr = format!("{our_ul}:51821").parse().unwrap();
    let go_endpoint: SocketAddr = format!("{go_ul}:51820").parse().unwrap();
    // When wireguard-go initiates, something must make it: a ping from its namespace to our
    // tunnel address, running in the background (bounded count and deadline).
    let mut pinger = (!we_initiate).then(|| {
        go_ns
            .exec_command(&["ping", "-c", "20", "-i", "0.5", "-w", "15", OUR_TUN4])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ping")
    });

    let (replies, sent) = our_ns.enter(|| {
        let mut d = Driver::new(
            our_key,
            go_pub,
            psk,
            we_initiate.then_some(go_endpoint),
            bind,
        );
        if !we_initiate {
            // Wait for wireguard-go's handshake and its first data packet (the staged echo
            // request), and answer the echo as a host would not need to: we only need the
            // session to be confirmed.
            let got = d.wait_for(Duration::from_secs(15), |_| true, |_, _| {});
            assert!(got.is_some(), "no packet from wireguard-go's initiation");
            let p = d.dev.peer(d.peer).unwrap();
            assert!(p.current_keypair().is_some(), "session confirmed by data");
            assert!(!p.current_keypair().unwrap().initiator);
        }
        let mut replies = vec![];
        for (i, (src, dst)) in [(OUR_TUN4, GO_TUN4), (OUR_TUN6, GO_TUN6)]
            .iter()
            .enumerate()
        {
            let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
            let seq = i as u16 + 1;
            let payload = format!("wgd interop {seq}").into_bytes();
            d.send_packet(&icmp_echo(src, dst, 0x77, seq, &payload));
            let reply = d
                .wait_for(
                    Duration::from_secs(10),
                    |p| parse_echo_reply(p).is_some_and(|r| r.seq == seq && r.id == 0x77),
                    |_, _| {},
                )
                .unwrap_or_else(|| panic!("no echo reply from {dst}"));
            let r = parse_echo_reply(&reply).unwrap();
            assert_eq!((r.src, r.dst), (dst, src));
            assert_eq!(r.payload, payload);
            replies.push(r);
        }
        let p = d.dev.peer(d.peer).unwrap();
        assert_eq!(p.current_keypair().unwrap().initiator, we_initiate);
        assert!(p.stats.last_handshake.is_some());
        (replies, d.sent.clone())
    });
    if let Some(mut p) = pinger.take() {
        let _ = p.kill();
        let _ = p.wait();
    }
    assert_eq!(replies.len(), 2);
    let initiations = sent
        .iter()
        .filter(|k| **k == wgd::proto::TransmitKind::Initiation)
        .count();
    assert_eq!(initiations, usize::from(we_initiate));
    // wireguard-go saw the same session.
    let dump = go.wg(&["show", &iface, "latest-handshakes"]);
    let ts: u64 = dump
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    assert!(ts > 0, "wireguard-go reports a handshake: {dump}");
    let eps = go.wg(&["show", &iface, "endpoints"]);
    assert!(
        eps.contains(&bind.to_string()),
        "wireguard-go's endpoint for us: {eps}"
    );
}

#[test]
fn wgd_initiates_ipv4_underlay() {
    case("wgd_initiates_ipv4_underlay", true, false, false);
}

#[test]
fn wgd_initiates_ipv4_underlay_psk() {
    case("wgd_initiates_ipv4_underlay_psk", true, true, false);
}

#[test]
fn wgd_initiates_ipv6_underlay() {
    case("wgd_initiates_ipv6_underlay", true, false, true);
}

#[test]
fn wgd_initiates_ipv6_underlay_psk() {
    case("wgd_initiates_ipv6_underlay_psk", true, true, true);
}

#[test]
fn wireguard_go_initiates_ipv4_underlay() {
    case("wireguard_go_initiates_ipv4_underlay", false, false, false);
}

#[test]
fn wireguard_go_initiates_ipv4_underlay_psk() {
    case(
        "wireguard_go_initiates_ipv4_underlay_psk",
        false,
        true,
        false,
    );
}

#[test]
fn wireguard_go_initiates_ipv6_underlay() {
    case("wireguard_go_initiates_ipv6_underlay", false, false, true);
}

#[test]
fn wireguard_go_initiates_ipv6_underlay_psk() {
    case(
        "wireguard_go_initiates_ipv6_underlay_psk",
        false,
        true,
        true,
    );
}
