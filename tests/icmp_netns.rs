//! ICMP errors for traffic the tunnel cannot carry (issue #10, item 3), as the kernel's
//! WireGuard sends them: a packet routed to the interface whose destination no peer's
//! AllowedIPs covers is answered with host unreachable (IPv4) / address unreachable (IPv6), so
//! `ping` fails at once instead of waiting out its timeout.

mod common;

use common::conf::pair_confs;
use common::netns::{Netns, StockPeer, impl_or_skip, unique_iface, veth, wgd_impl};
use std::time::{Duration, Instant};

const A_TUN: [&str; 2] = ["198.19.0.1/24", "2001:db8:1::1/64"];
const B_TUN: [&str; 2] = ["198.19.0.2/24", "2001:db8:1::2/64"];
const A_UL: [&str; 2] = ["198.18.0.1/24", "2001:db8::1/64"];
const B_UL: [&str; 2] = ["198.18.0.2/24", "2001:db8::2/64"];

#[test]
fn no_peer_destination_gets_host_unreachable_at_once() {
    let w = wgd_impl();
    if !impl_or_skip("no_peer_destination_gets_host_unreachable_at_once", &w) {
        return;
    }
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &A_UL, &b, &B_UL);
    let (ca, cb) = pair_confs(false, "198.18.0.1:51820");
    let _server = StockPeer::start(&w, &a, &unique_iface("wia"), &ca, &A_TUN, 1420);
    let _client = StockPeer::start(&w, &b, &unique_iface("wib"), &cb, &B_TUN, 1420);
    assert!(
        b.wait_ping("198.19.0.1", Duration::from_secs(10)),
        "tunnel up"
    );
    // In the interface's subnets (so routed to it), covered by no peer's AllowedIPs.
    for (dest, expect) in [
        ("198.19.0.77", "Destination Host Unreachable"),
        ("2001:db8:1::77", "Address unreachable"),
    ] {
        let start = Instant::now();
        let out = b.run_unchecked(&["ping", "-n", "-c", "1", "-W", "5", dest]);
        let took = start.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "ping {dest} cannot succeed:\n{text}");
        assert!(
            text.contains(expect),
            "ping {dest}: expected {expect:?}:\n{text}"
        );
        assert!(
            took < Duration::from_secs(2),
            "ping {dest} took {took:?}: it waited for its timeout"
        );
        eprintln!("ping {dest}: {expect} after {took:?}");
    }
    // The established tunnel is untouched.
    b.ping("198.19.0.1", 2);
}
