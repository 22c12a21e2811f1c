//! The daemon carrying real traffic: wgd in network namespaces over veth, against itself and
//! against stock peers (wireguard-go, boringtun-cli), with pings over IPv4 and IPv6 inner
//! addresses and SHA-256-checked TCP transfers; roaming; hub and spokes with a spoofed source.
//!
//! Every wgd here runs its crypto on a 2-thread worker pool (`WGD_CRYPTO_THREADS=2`), which is
//! not the default on hosts under 4 cores: the other daemon tests cover the inline default, these
//! cover the parallel path (ordering, integrity, interop) on any CI machine.

mod common;

use common::conf::pair_confs;

use common::netns::{Impl, Netns, StockPeer, impl_or_skip, unique_iface, veth, wgd_impl};
use common::transfer::tcp_transfer;
use std::time::Duration;

const A_TUN: [&str; 2] = ["198.19.0.1/24", "2001:db8:1::1/64"];
const B_TUN: [&str; 2] = ["198.19.0.2/24", "2001:db8:1::2/64"];
const A_UL: [&str; 2] = ["198.18.0.1/24", "2001:db8::1/64"];
const B_UL: [&str; 2] = ["198.18.0.2/24", "2001:db8::2/64"];

/// Two namespaces over veth, `server` in A listening on 51820, `client` in B with A as its
/// endpoint. Fields drop in declaration order: the daemons stop before their namespaces go.
struct Pair {
    server: StockPeer,
    client: StockPeer,
    a: Netns,
    b: Netns,
}

fn pair(server: &Impl, client: &Impl, v6_underlay: bool, psk: bool) -> Pair {
    let _ = common::netns::WGD_CRYPTO_THREADS.set("2");
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &A_UL, &b, &B_UL);
    let endpoint = if v6_underlay {
        "[2001:db8::1]:51820"
    } else {
        "198.18.0.1:51820"
    };
    let (ca, cb) = pair_confs(psk, endpoint);
    let server = StockPeer::start(server, &a, &unique_iface("wga"), &ca, &A_TUN, 1420);
    let client = StockPeer::start(client, &b, &unique_iface("wgb"), &cb, &B_TUN, 1420);
    Pair {
        a,
        b,
        server,
        client,
    }
}

fn ping_both_families(p: &Pair) {
    // The client initiates: its first ping triggers the handshake.
    assert!(
        p.b.wait_ping("198.19.0.1", Duration::from_secs(10)),
        "IPv4 through the tunnel"
    );
    p.b.ping("198.19.0.1", 3);
    p.b.ping("2001:db8:1::1", 3);
    // And the other way round on the established session.
    p.a.ping("198.19.0.2", 2);
    p.a.ping("2001:db8:1::2", 2);
}

fn transfer(p: &Pair, mb: u64) {
    let t = tcp_transfer(
        &p.a,
        "198.19.0.1:5201".parse().unwrap(),
        &p.b,
        mb << 20,
        Duration::from_secs(120),
        || {},
    );
    assert_eq!(t.bytes, mb << 20);
    assert_eq!(t.sent, t.received, "SHA-256 of the transfer");
    eprintln!(
        "transfer {} MiB {} -> {}: {:.0} Mbit/s",
        mb,
        p.client_kind(),
        p.server_kind(),
        t.mbit_per_s()
    );
}

impl Pair {
    fn client_kind(&self) -> String {
        self.client.iface.clone()
    }
    fn server_kind(&self) -> String {
        self.server.iface.clone()
    }
}

#[test]
fn wgd_to_wgd_ping_and_200mb_transfer() {
    let w = wgd_impl();
    if !impl_or_skip("wgd_to_wgd_ping_and_200mb_transfer", &w) {
        return;
    }
    let p = pair(&w, &w, false, false);
    ping_both_families(&p);
    transfer(&p, 200);
}

#[test]
fn wgd_to_wgd_ipv6_underlay_with_psk() {
    let w = wgd_impl();
    if !impl_or_skip("wgd_to_wgd_ipv6_underlay_with_psk", &w) {
        return;
    }
    let p = pair(&w, &w, true, true);
    ping_both_families(&p);
    transfer(&p, 20);
}

fn interop(name: &str, stock: Impl, wgd_initiates: bool) {
    let w = wgd_impl();
    if !impl_or_skip(name, &w) || !impl_or_skip(name, &stock) {
        return;
    }
    let p = if wgd_initiates {
        pair(&stock, &w, false, true)
    } else {
        pair(&w, &stock, false, true)
    };
    ping_both_families(&p);
    transfer(&p, 50);
}

#[test]
fn interop_wgd_initiates_to_wireguard_go() {
    interop(
        "interop_wgd_initiates_to_wireguard_go",
        Impl::WireguardGo,
        true,
    );
}

#[test]
fn interop_wireguard_go_initiates_to_wgd() {
    interop(
        "interop_wireguard_go_initiates_to_wgd",
        Impl::WireguardGo,
        false,
    );
}

#[test]
fn interop_wgd_initiates_to_boringtun() {
    interop("interop_wgd_initiates_to_boringtun", Impl::Boringtun, true);
}

#[test]
fn interop_boringtun_initiates_to_wgd() {
    interop("interop_boringtun_initiates_to_wgd", Impl::Boringtun, false);
}

#[test]
fn roaming_client_changes_address_mid_transfer() {
    let w = wgd_impl();
    if !impl_or_skip("roaming_client_changes_address_mid_transfer", &w) {
        return;
    }
    let p = pair(&w, &w, false, false);
    assert!(p.b.wait_ping("198.19.0.1", Duration::from_secs(10)));
    let veth_b =
        p.b.run(&["ip", "-o", "-4", "addr", "show", "to", "198.18.0.2"])
            .stdout;
    let dev = String::from_utf8_lossy(&veth_b)
        .split_whitespace()
        .nth(1)
        .expect("veth name")
        .to_string();
    let t = tcp_transfer(
        &p.a,
        "198.19.0.1:5201".parse().unwrap(),
        &p.b,
        100 << 20,
        Duration::from_secs(60),
        || {
            // The client's underlay address changes under the running transfer. (Deleted first:
            // removing a primary address also removes its secondaries.)
            p.b.ip(&["addr", "del", "198.18.0.2/24", "dev", &dev]);
            p.b.ip(&["addr", "add", "198.18.0.3/24", "dev", &dev]);
        },
    );
    assert_eq!(t.sent, t.received);
    assert_eq!(t.bytes, 100 << 20);
    // Resumed at once, not after the 15 s new-handshake timer forgot the stale source.
    assert!(
        t.elapsed < Duration::from_secs(12),
        "transfer took {:?}",
        t.elapsed
    );
    let addrs = String::from_utf8_lossy(
        &p.b.run(&["ip", "-o", "-4", "addr", "show", "dev", &dev])
            .stdout,
    )
    .into_owned();
    assert!(
        addrs.contains("198.18.0.3") && !addrs.contains("198.18.0.2/"),
        "{addrs}"
    );
    // The server now answers at the new address: a fresh ping works both ways.
    p.a.ping("198.19.0.2", 2);
}
