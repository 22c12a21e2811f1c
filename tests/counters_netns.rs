//! Live counters (issue #13 item 4): each counter `wgd show --prometheus` and `--json` report
//! moves when its event is provoked against a running `wgd up`, while stock `wg` still reads
//! the same socket. The other end is a plain-UDP WireGuard peer in this process
//! (`common::driver`), so the test can replay a datagram and forge an inner source.
//!
//! ```text
//!  A: wgd up, 198.18.0.1 (underlay), 198.19.0.1 (tunnel); its peer D owns 198.19.0.2/32
//!  D: the driver, 198.18.0.2
//! ```

mod common;

use common::driver::Driver;
use common::netns::{Impl, Netns, StockPeer, impl_or_skip, veth, wgd_impl};
use common::packet::{icmp4_echo, parse_echo_reply};
use rand_core::OsRng;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use wgd::crypto::keys::{PresharedKey, PrivateKey};

/// `name{labels} value` lines of a Prometheus text: the value of the first sample of `name`
/// whose labels contain `label`.
fn sample(text: &str, name: &str, label: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn each_counter_moves_when_its_event_is_provoked() {
    let name = "each_counter_moves_when_its_event_is_provoked";
    let w = wgd_impl();
    if !impl_or_skip(name, &w) {
        return;
    }
    let Impl::Wgd(bin) = &w else { unreachable!() };
    let a = Netns::new();
    let d = Netns::new();
    veth(&a, &["198.18.0.1/24"], &d, &["198.18.0.2/24"]);
    let (ka, kd) = (
        PrivateKey::generate(&mut OsRng),
        PrivateKey::generate(&mut OsRng),
    );
    let conf = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\n\n[Peer]\nPublicKey = {}\n\
         AllowedIPs = 198.19.0.2/32\n",
        ka.to_base64().as_str(),
        kd.public_key()
    );
    let key = kd.public_key().to_base64();
    let wgd = StockPeer::start(&w, &a, "wgc", &conf, &["198.19.0.1/24"], 1420);
    let (ours, them): (Ipv4Addr, Ipv4Addr) =
        ("198.19.0.2".parse().unwrap(), "198.19.0.1".parse().unwrap());
    let endpoint: SocketAddr = "198.18.0.1:51820".parse().unwrap();
    let bind: SocketAddr = "198.18.0.2:51821".parse().unwrap();
    d.enter(|| {
        let mut drv = Driver::new(
            kd,
            ka.public_key(),
            PresharedKey::default(),
            Some(endpoint),
            bind,
        );
        // A session, and one echo each way.
        drv.send_packet(&icmp4_echo(ours, them, 7, 1, b"counters"));
        let reply = drv.wait_for(
            Duration::from_secs(10),
            |p| parse_echo_reply(p).is_some_and(|r| r.seq == 1),
            |_, _| {},
        );
        assert!(reply.is_some(), "no echo reply through wgd");
        // A replay: a data datagram sent on the session, then again, byte for byte.
        drv.send_packet(&icmp4_echo(ours, them, 7, 3, b"once"));
        assert!(drv.replay_last(), "no sealed datagram to replay");
        // A forged inner source (not in D's AllowedIPs at A).
        drv.send_packet(&icmp4_echo(
            "198.19.0.66".parse().unwrap(),
            them,
            7,
            2,
            b"forged",
        ));
        std::thread::sleep(Duration::from_millis(200));
    });
    // No peer: A sends to an address nobody owns (ICMP error back, counted).
    let _ = a.run_unchecked(&["ping", "-c", "1", "-W", "1", "198.19.0.77"]);

    let prom = String::from_utf8_lossy(
        &a.run(&[bin.to_str().unwrap(), "show", &wgd.iface, "--prometheus"])
            .stdout,
    )
    .into_owned();
    let il = format!("interface=\"{}\"", wgd.iface);
    let pl = format!("public_key=\"{key}\"");
    for (metric, label) in [
        ("wgd_rx_replayed_total", il.as_str()),
        ("wgd_peer_replayed_total", pl.as_str()),
        ("wgd_rx_bad_source_total", il.as_str()),
        ("wgd_peer_bad_source_total", pl.as_str()),
        ("wgd_tx_no_peer_total", il.as_str()),
        ("wgd_tx_icmp_sent_total", il.as_str()),
        ("wgd_handshakes_processed_total", il.as_str()),
        ("wireguard_received_bytes_total", pl.as_str()),
        ("wireguard_latest_handshake_seconds", pl.as_str()),
    ] {
        let v = sample(&prom, metric, label);
        assert!(
            v.is_some_and(|v| v >= 1),
            "{metric} {{{label}}} = {v:?} in:\n{prom}"
        );
    }
    let json = String::from_utf8_lossy(
        &a.run(&[bin.to_str().unwrap(), "show", &wgd.iface, "--json"])
            .stdout,
    )
    .into_owned();
    assert!(json.contains("\"rx_bad_source\": 1"), "{json}");
    assert!(json.contains("\"bad_source\": 1"), "{json}");
    // Stock wg reads the same socket as before.
    let dump = wgd.wg(&["show", &wgd.iface, "dump"]);
    assert!(dump.contains(&key), "{dump}");
}
