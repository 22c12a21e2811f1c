//! Hub and spokes: three namespaces, the hub's daemon running in this process (so its drop
//! counters can be read when it stops), two spokes running the `wgd` binary with the hub as their
//! only peer. Traffic between the spokes goes through the hub, where the kernel forwards it back
//! into the hub's daemon and cryptokey routing (AllowedIPs) picks the spoke to seal it for; a
//! packet whose inner source is not in the sending spoke's AllowedIPs is dropped and counted.
//!
//! ```text
//!            198.18.1.0/24                        198.18.2.0/24, 2001:db8:2::/64
//! spoke1 ------------------ hub (in-process wgd) -------------------------------- spoke2
//! 198.19.0.2                198.19.0.1                                            198.19.0.3
//! 2001:db8:1::2             2001:db8:1::1                                         2001:db8:1::3
//! ```
//!
//! spoke1 reaches the hub over IPv4 and spoke2 over IPv6, so forwarded traffic also crosses the
//! hub's two UDP sockets.

mod common;

use common::inproc::InProc as Hub;
use common::netns::{Netns, StockPeer, impl_or_skip, unique_iface, veth, wgd_impl};
use rand_core::OsRng;
use std::sync::Arc;
use std::time::Duration;
use wgd::crypto::keys::PrivateKey;

const PORT: u16 = 51820;
const MTU: u32 = 1420;
const HUB_TUN: [&str; 2] = ["198.19.0.1/24", "2001:db8:1::1/64"];
const SPOKE1_TUN: [&str; 2] = ["198.19.0.2/24", "2001:db8:1::2/64"];
const SPOKE2_TUN: [&str; 2] = ["198.19.0.3/24", "2001:db8:1::3/64"];
/// Inner sources spoke1 is not allowed to use (not in its AllowedIPs on the hub).
const SPOOF_V4: &str = "198.19.0.99";
const SPOOF_V6: &str = "2001:db8:1::99";
/// In the tunnel subnet the spokes route to the hub, but no peer's AllowedIPs on the hub.
const NOBODY_V4: &str = "198.19.0.4";
/// Echo requests sent per spoofed source (and to [`NOBODY_V4`]).
const SPOOFED: u32 = 5;
/// How long a spoke may take to complete its first handshake with the hub.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `[Interface]` with `own` (and `ListenPort` if given), then one `[Peer]` per
/// `(key, AllowedIPs, Endpoint)`.
fn conf(
    own: &PrivateKey,
    port: Option<u16>,
    peers: &[(&PrivateKey, &str, Option<&str>)],
) -> String {
    let mut c = format!("[Interface]\nPrivateKey = {}\n", own.to_base64().as_str());
    if let Some(p) = port {
        c += &format!("ListenPort = {p}\n");
    }
    for (key, allowed, endpoint) in peers {
        c += &format!(
            "\n[Peer]\nPublicKey = {}\nAllowedIPs = {allowed}\n",
            key.public_key()
        );
        if let Some(e) = endpoint {
            c += &format!("Endpoint = {e}\n");
        }
    }
    c
}

/// `ping -n -c COUNT -i 0.2 -W 1 -I SOURCE DEST` in `ns`, whatever its status; returns how many
/// replies arrived (panics if ping's summary line is missing or shows a different count sent).
fn ping_from(ns: &Netns, source: &str, dest: &str, count: u32) -> u32 {
    let count_arg = count.to_string();
    let out = ns.run_unchecked(&[
        "ping", "-n", "-c", &count_arg, "-i", "0.2", "-W", "1", "-I", source, dest,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| {
            panic!(
                "ping -I {source} {dest} in {}: no summary\n{text}\n{}",
                ns.name,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let mut numbers = summary
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse::<u32>().ok());
    let sent = numbers.next();
    let received = numbers.next();
    assert_eq!(
        sent,
        Some(count),
        "ping -I {source} {dest} in {}: {summary}",
        ns.name
    );
    received.unwrap_or_else(|| panic!("ping -I {source} {dest}: cannot parse {summary:?}"))
}

/// Packets the kernel received on `iface` in `ns` (for a TUN: what the daemon wrote into it).
fn rx_packets(ns: &Netns, iface: &str) -> u64 {
    let path = format!("/sys/class/net/{iface}/statistics/rx_packets");
    let out = ns.run(&["cat", &path]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path} in {}: {text:?}: {e}", ns.name))
}

#[test]
fn hub_routes_between_spokes_and_drops_spoofed_sources() {
    let w = wgd_impl();
    if !impl_or_skip("hub_routes_between_spokes_and_drops_spoofed_sources", &w) {
        return;
    }
    // Namespaces first: dropped last, after the daemons living in them have stopped.
    let hub_ns = Arc::new(Netns::new());
    let s1 = Netns::new();
    let s2 = Netns::new();
    veth(&hub_ns, &["198.18.1.1/24"], &s1, &["198.18.1.2/24"]);
    veth(
        &hub_ns,
        &["198.18.2.1/24", "2001:db8:2::1/64"],
        &s2,
        &["198.18.2.2/24", "2001:db8:2::2/64"],
    );

    let kh = PrivateKey::generate(&mut OsRng);
    let k1 = PrivateKey::generate(&mut OsRng);
    let k2 = PrivateKey::generate(&mut OsRng);
    let hub_conf = conf(
        &kh,
        Some(PORT),
        &[
            (&k1, "198.19.0.2/32, 2001:db8:1::2/128", None),
            (&k2, "198.19.0.3/32, 2001:db8:1::3/128", None),
        ],
    );
    // Each spoke routes the whole tunnel subnet to the hub.
    let spoke_allowed = "198.19.0.0/24, 2001:db8:1::/64";
    let s1_conf = conf(
        &k1,
        None,
        &[(&kh, spoke_allowed, Some(&format!("198.18.1.1:{PORT}")))],
    );
    let s2_conf = conf(
        &k2,
        None,
        &[(&kh, spoke_allowed, Some(&format!("[2001:db8:2::1]:{PORT}")))],
    );

    // The hub, in this process; its TUN is created in the hub namespace by the entered thread.
    let hub_iface = unique_iface("wgh");
    let (hub, started) = Hub::start(&hub_ns, &hub_iface, &hub_conf);
    assert_eq!(started.iface, hub_iface);
    assert_eq!(started.port, PORT);
    for addr in HUB_TUN {
        let mut args = vec!["addr", "add", addr, "dev", &hub_iface];
        if addr.contains(':') {
            args.push("nodad");
        }
        hub_ns.ip(&args);
    }
    hub_ns.ip(&["link", "set", &hub_iface, "up"]);
    // The hub's kernel forwards spoke-to-spoke packets back out of the tunnel interface. No ICMP
    // redirects: they would only tell a spoke what its on-link route already says.
    hub_ns.run(&[
        "sh",
        "-c",
        &format!(
            "echo 1 > /proc/sys/net/ipv4/ip_forward && \
             echo 1 > /proc/sys/net/ipv6/conf/all/forwarding && \
             echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects && \
             echo 0 > /proc/sys/net/ipv4/conf/{hub_iface}/send_redirects"
        ),
    ]);

    let mut spoke1 = StockPeer::start(&w, &s1, &unique_iface("wgs"), &s1_conf, &SPOKE1_TUN, MTU);
    let mut spoke2 = StockPeer::start(&w, &s2, &unique_iface("wgs"), &s2_conf, &SPOKE2_TUN, MTU);

    // Both spokes handshake with the hub (the hub has no endpoints: it learns them from these).
    assert!(
        s1.wait_ping("198.19.0.1", HANDSHAKE_TIMEOUT),
        "spoke1 cannot reach the hub through the tunnel"
    );
    assert!(
        s2.wait_ping("198.19.0.1", HANDSHAKE_TIMEOUT),
        "spoke2 cannot reach the hub through the tunnel"
    );
    s1.ping("2001:db8:1::1", 2);
    s2.ping("2001:db8:1::1", 2);

    // Spoke to spoke through the hub, both ways, both inner families: every reply arrives.
    s1.ping("198.19.0.3", 5);
    s1.ping("2001:db8:1::3", 5);
    s2.ping("198.19.0.2", 5);
    s2.ping("2001:db8:1::2", 5);

    // A destination the spokes route to the hub but no peer's AllowedIPs covers there: the hub's
    // kernel forwards it into the hub's daemon, which has nobody to seal it for (tx_no_peer).
    let got = ping_from(&s1, "198.19.0.2", NOBODY_V4, SPOOFED);
    assert_eq!(got, 0, "{NOBODY_V4} is nobody's, yet it answered");

    // Spoofed inner sources: spoke1's daemon seals them (its peer's AllowedIPs cover the hub's
    // address), the hub's daemon opens them and must drop them (rx_bad_source), so no reply.
    let spoof_v4 = format!("{SPOOF_V4}/32");
    let spoof_v6 = format!("{SPOOF_V6}/128");
    s1.ip(&["addr", "add", &spoof_v4, "dev", &spoke1.iface]);
    s1.ip(&["addr", "add", &spoof_v6, "dev", &spoke1.iface, "nodad"]);
    let hub_rx_before = rx_packets(&hub_ns, &hub_iface);
    let spoofed_v4 = ping_from(&s1, SPOOF_V4, "198.19.0.1", SPOOFED);
    let spoofed_v6 = ping_from(&s1, SPOOF_V6, "2001:db8:1::1", SPOOFED);
    // Spoofed sources towards the other spoke too: dropped at the hub before forwarding.
    let spoofed_fwd = ping_from(&s1, SPOOF_V4, "198.19.0.3", SPOOFED);
    // Not even written to the hub's TUN. (The replies would be lost anyway, since the hub has no
    // route back to a spoofed source: 0 replies alone proves nothing.)
    let hub_rx_spoofed = rx_packets(&hub_ns, &hub_iface) - hub_rx_before;
    s1.ip(&["addr", "del", &spoof_v4, "dev", &spoke1.iface]);
    s1.ip(&["addr", "del", &spoof_v6, "dev", &spoke1.iface]);

    // Traffic from the real addresses is unaffected.
    s1.ping("198.19.0.1", 3);
    s1.ping("2001:db8:1::1", 3);
    s1.ping("198.19.0.3", 3);
    s2.ping("2001:db8:1::2", 3);

    spoke1.assert_running();
    spoke2.assert_running();
    let stats = hub.stop();
    eprintln!("hub stats: {stats:?}");
    assert_eq!(
        (spoofed_v4, spoofed_v6, spoofed_fwd),
        (0, 0, 0),
        "spoofed pings were answered (v4 to hub, v6 to hub, v4 to spoke2)"
    );
    assert_eq!(
        hub_rx_spoofed, 0,
        "spoofed packets were delivered to the hub's TUN {hub_iface}"
    );
    // Exactly the spoofed packets: none of the legitimate traffic was counted as spoofed.
    assert_eq!(
        stats.rx.bad_source,
        3 * u64::from(SPOOFED),
        "hub rx_bad_source: {stats:?}"
    );
    assert!(
        stats.tx.no_peer >= u64::from(SPOOFED),
        "hub tx_no_peer (pings to {NOBODY_V4}): {stats:?}"
    );
    // `run` removed what it created: the hub's interface is gone.
    assert!(
        !hub_ns
            .run_unchecked(&["ip", "link", "show", &hub_iface])
            .status
            .success(),
        "{hub_iface} still exists after the hub stopped"
    );
}
