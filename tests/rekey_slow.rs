//! A session kept busy past REKEY_AFTER_TIME (120 s): wgd as the initiator in front of Debian's
//! wireguard-go, pinged every 200 ms for 136 s. wgd must start a new handshake on send once its
//! keypair is 120 s old, and the switch to the new session must cost (almost) no packets.
//!
//! Slow (about 2.5 minutes) by nature: the protocol's timers are not configurable.

mod common;

use common::conf::conf;

use common::netns::{Impl, Netns, StockPeer, impl_or_skip, unique_iface, veth, wgd_impl};
use rand_core::OsRng;
use std::time::{Duration, Instant};
use wgd::crypto::keys::{PresharedKey, PrivateKey};

const A_TUN: [&str; 2] = ["198.19.0.1/24", "2001:db8:1::1/64"];
const B_TUN: [&str; 2] = ["198.19.0.2/24", "2001:db8:1::2/64"];
const A_UL: [&str; 2] = ["198.18.0.1/24", "2001:db8::1/64"];
const B_UL: [&str; 2] = ["198.18.0.2/24", "2001:db8::2/64"];
const MTU: u32 = 1420;
/// How long the first handshake and ping through the tunnel may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Echo requests sent, one per 200 ms: 136 s, past REKEY_AFTER_TIME (120 s) with 16 s to spare.
const PINGS: u32 = 680;
/// Echo requests that may go unanswered (over the whole run, rekey included).
const MAX_LOST: u32 = 2;
/// The time limit of the ping command (it should take about 137 s).
const PING_TIMEOUT: Duration = Duration::from_secs(200);
/// The least the responder's latest-handshake time must advance over the run: the rekey is due
/// 120 s after the first handshake; 5 s of slack for clock rounding and a loaded machine.
const MIN_HANDSHAKE_ADVANCE: u64 = 115;
/// What wireguard-go (v0.0.20220316, LOG_LEVEL=verbose) logs for each handshake initiation it
/// receives (`device/receive.go`: "%v - Received handshake initiation").
const WG_GO_INITIATION: &str = "Received handshake initiation";
/// What it logs for each response it sends.
const WG_GO_RESPONSE: &str = "Sending handshake response";

/// `(transmitted, received)` from ping's summary line
/// ("680 packets transmitted, 679 received, ...").
fn ping_counts(text: &str) -> Option<(u32, u32)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let mut fields = line.split(',');
    let sent = fields.next()?.split_whitespace().next()?.parse().ok()?;
    let received = fields.next()?.split_whitespace().next()?.parse().ok()?;
    Some((sent, received))
}

#[test]
fn wgd_initiator_rekeys_with_wireguard_go_under_traffic() {
    let test = "wgd_initiator_rekeys_with_wireguard_go_under_traffic";
    let w = wgd_impl();
    if !impl_or_skip(test, &w) || !impl_or_skip(test, &Impl::WireguardGo) {
        return;
    }
    // Namespaces first: locals drop in reverse order, so the daemons stop before them.
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &A_UL, &b, &B_UL);
    let ka = PrivateKey::generate(&mut OsRng);
    let kb = PrivateKey::generate(&mut OsRng);
    let psk = PresharedKey::generate(&mut OsRng);
    let ca = conf(
        &ka,
        Some(51820),
        &kb,
        &psk,
        "198.19.0.2/32, 2001:db8:1::2/128",
        None,
    );
    let cb = conf(
        &kb,
        None,
        &ka,
        &psk,
        "198.19.0.1/32, 2001:db8:1::1/128",
        Some("198.18.0.1:51820"),
    );
    // The responder first (an initiation to a closed port is only retried after 5 s).
    let mut server = StockPeer::start(
        &Impl::WireguardGo,
        &a,
        &unique_iface("rka"),
        &ca,
        &A_TUN,
        MTU,
    );
    let mut client = StockPeer::start(&w, &b, &unique_iface("rkb"), &cb, &B_TUN, MTU);
    let client_pub = kb.public_key().to_string();

    assert!(
        b.wait_ping("198.19.0.1", HANDSHAKE_TIMEOUT),
        "no ping through the tunnel within {HANDSHAKE_TIMEOUT:?}"
    );
    let first = server
        .latest_handshake(&client_pub)
        .expect("wireguard-go reports no handshake after a ping went through");
    let inits_before = server.log().matches(WG_GO_INITIATION).count();

    let count = PINGS.to_string();
    let start = Instant::now();
    let ping = [
        "ping",
        "-n",
        "-i",
        "0.2",
        "-c",
        &count,
        "-W",
        "1",
        "198.19.0.1",
    ];
    let out = b.run_unchecked_within(&ping, PING_TIMEOUT);
    let took = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    server.assert_running();
    client.assert_running();

    let last = server
        .latest_handshake(&client_pub)
        .expect("wireguard-go lost its handshake");
    let log = server.log();
    let inits = log.matches(WG_GO_INITIATION).count();
    let responses = log.matches(WG_GO_RESPONSE).count();
    let (sent, received) = ping_counts(&text).unwrap_or_else(|| {
        panic!(
            "no summary from ping ({}, {took:?}):\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let lost = sent.saturating_sub(received);
    let summary = text
        .lines()
        .filter(|l| l.contains("transmitted") || l.starts_with("rtt"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!(
        "{test}: ping ran {took:?}: {sent} sent, {received} received, {lost} lost\n{summary}\n\
         wireguard-go: {inits} handshake initiations received ({inits_before} before the run), \
         {responses} responses sent; latest handshake advanced {} s",
        last.saturating_sub(first)
    );
    assert_eq!(
        sent, PINGS,
        "ping did not send all its requests ({took:?}):\n{text}"
    );
    assert!(
        lost <= MAX_LOST,
        "{lost} of {sent} pings lost (limit {MAX_LOST}):\n{text}"
    );
    assert!(
        inits >= 2,
        "wireguard-go received {inits} handshake initiation(s) in {took:?} of traffic: wgd did not \
         rekey after REKEY_AFTER_TIME"
    );
    assert!(
        last >= first + MIN_HANDSHAKE_ADVANCE,
        "wireguard-go's latest handshake advanced only {} s (from {first} to {last}); expected \
         a rekey about 120 s after the first handshake",
        last.saturating_sub(first)
    );
}
