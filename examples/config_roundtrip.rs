//! A configuration file's round trip through a device, the way `wg setconf` and `wg showconf`
//! see it:
//!
//! 1. wg-quick style text is parsed into a [`wgd::conf::Config`];
//! 2. the config becomes the UAPI `set` request `wg setconf` would send
//!    ([`wgd::uapi::set_request_from_config`]), printed as the text that goes over the socket;
//! 3. the request is applied to an empty device ([`wgd::uapi::apply`]), as the daemon does at
//!    start-up, on SIGHUP and for every `wg set`;
//! 4. the device answers a UAPI `get` ([`wgd::uapi::format_get`]), as `wg show` asks for it;
//! 5. the get reply is read back into a `Config` and written as `wg showconf` prints it
//!    ([`wgd::conf::Config::to_wg_string`]).
//!
//! The result has the same keys, peers, AllowedIPs and endpoints as the input; only the wg-quick
//! keys (`Address`, `DNS`, ...) are gone: they are not the device's configuration but what
//! `wg-quick` does around it, so neither the set request nor the get reply carries them.
//!
//! Run it with `cargo run --example config_roundtrip`. `cargo test --example config_roundtrip`
//! (and a plain `cargo test`) also runs it, and fails if the round trip loses anything.
//!
//! The keys below are examples generated for this file; never use them for a real tunnel.

use std::time::Duration;
use wgd::conf::{Config, PeerConfig};
use wgd::proto::{Device, Now};
use wgd::{PresharedKey, PrivateKey, PublicKey};

/// The input: what `/etc/wireguard/wg0.conf` could hold.
const CONFIG: &str = "\
[Interface]
# wg-quick keys: used by `wgd up` and wg-quick, not part of the device's configuration.
Address = 198.19.0.1/24, 2001:db8::1/64
MTU = 1420
# wg(8) keys.
PrivateKey = eI5/i1pvs6xqCMWtzMkVMn8EsmifHaN2kcFa06cFWWY=
ListenPort = 51820
FwMark = 0x1234

[Peer]
# A site with an IPv4 endpoint, a preshared key and a keepalive.
PublicKey = /fw8ux+bqgjAITPa2yPZHk3cRsycmrVz2fFWJqYZ4iU=
PresharedKey = 29nGM0n4XA4MuiM9/JfBZ0TrJgwIJ4+sTQFGJZ7arqk=
AllowedIPs = 198.19.0.2/32, 198.19.128.0/17, 2001:db8:1::/48
Endpoint = 198.18.0.2:51820
PersistentKeepalive = 25

[Peer]
# A road warrior with an IPv6 endpoint.
PublicKey = 3Zr9CySvtZsoJA4wlCK+DXkaUtTeEY4ijYwqvfJ+TSU=
AllowedIPs = 198.19.0.3/32, 2001:db8::3/128
Endpoint = [2001:db8::3]:51820
";

fn main() {
    // Step 1: parse. `Config::parse` takes the wg-quick dialect; the second argument names the
    // text in error messages ("wg0.conf:7: AllowedIPs: ..."). `Config::from_file` reads a file.
    let config = Config::parse(CONFIG, "wg0.conf").expect("the example config is valid");
    println!(
        "Parsed wg0.conf: {} peers, public key {}\n",
        config.peers.len(),
        config
            .interface
            .private_key
            .as_ref()
            .expect("has a private key")
            .public_key()
    );

    // Step 2: the set request `wg setconf` sends (`true`: replace all existing peers; `false`
    // is `wg addconf`). Endpoints given as host names would be left out: this function does no
    // I/O. (`set_request_from_config_with` takes a resolver.)
    let request = wgd::uapi::set_request_from_config(&config, true);
    // What goes over the UAPI socket. It contains the private key and the preshared key (the
    // text is wiped from memory when dropped).
    println!("The set request, as `wg setconf` would send it:");
    // (It ends with the blank line that ends a request.)
    print!("{}", request.to_request_text().as_str());

    // Step 3: apply it to an empty device. `Device::without_key` is a device before any
    // configuration, as `wgd IFACE` starts; it needs a random source for handshakes.
    let mut device = Device::without_key(Box::new(rand_core::OsRng));
    // The protocol's clock. A program with sockets reads the real one
    // (`wgd::daemon::Clock::start().now()`); nothing here depends on the time.
    let now = Now::simulated(Duration::from_secs(1), Duration::from_secs(1_700_000_000));
    // What the device wants to send because of the request: turning on PersistentKeepalive
    // sends a keepalive at once, which starts a handshake first. A program with a socket sends
    // these; this example has none.
    let mut to_send = Vec::new();
    let change =
        wgd::uapi::apply(request, &mut device, now, &mut to_send).expect("the request applies");
    for t in &to_send {
        println!(
            "(the device asks to send {:?} to {}; no socket here, so it is dropped)",
            t.kind, t.endpoint.addr
        );
    }
    // The listen port and fwmark are not the device's business: they belong to the sockets, so
    // `apply` hands them back for the caller to bind and set.
    let listen_port = change.listen_port.expect("the config sets ListenPort");
    let fwmark = change.fwmark.flatten();
    println!("(bind UDP port {listen_port}, set fwmark {fwmark:?} on the sockets)\n");

    // Step 4: the reply to `get=1`, as `wg show` and `wg showconf` receive it. Keys are hex;
    // the reply also carries runtime state (handshake time, byte counters).
    let reply = wgd::uapi::format_get(&device, listen_port, fwmark);
    println!("The get reply, as `wg showconf` would receive it:");
    print!("{}", reply.as_str());

    // Step 5: back to a configuration, printed as `wg showconf` prints it.
    let shown = config_from_get_reply(&reply);
    let text = shown.to_wg_string();
    println!("The configuration read back, as `wg showconf` prints it:\n");
    print!("{text}");

    // The round trip kept everything the device is configured with. (The device stores its
    // private key clamped; keys from `wg genkey` already are, so this one comes back as is.)
    assert_eq!(shown.interface.private_key, config.interface.private_key);
    assert_eq!(shown.interface.listen_port, config.interface.listen_port);
    assert_eq!(shown.interface.fwmark, config.interface.fwmark);
    assert_eq!(shown.peers.len(), config.peers.len());
    for (before, after) in config.peers.iter().zip(&shown.peers) {
        assert_eq!(after.public_key, before.public_key);
        assert_eq!(after.preshared_key, before.preshared_key);
        assert_eq!(after.endpoint, before.endpoint);
        assert_eq!(after.persistent_keepalive, before.persistent_keepalive);
        // The device lists prefixes in address order (IPv4 first), not in file order.
        let mut want = before.allowed_ips.clone();
        want.sort();
        let mut got = after.allowed_ips.clone();
        got.sort();
        assert_eq!(got, want);
    }
    // And the text itself: parsing it again gives the same configuration.
    assert_eq!(Config::parse(&text, "showconf").expect("valid"), shown);
    println!("\nRound trip OK: same keys, peers, AllowedIPs and endpoints.");
}

/// Reads a UAPI get reply (`key=value` lines, then `errno=0` and a blank line) into a `Config`.
/// Device lines come first; each `public_key=` line starts a peer, and the lines after it
/// belong to that peer. Keys are lowercase hex.
fn config_from_get_reply(reply: &str) -> Config {
    let mut config = Config::default();
    for line in reply.lines() {
        if line.is_empty() {
            break; // The blank line ends the reply.
        }
        let (key, value) = line.split_once('=').expect("key=value");
        // The peer the line belongs to (the last one started).
        let peer = config.peers.last_mut();
        match (key, peer) {
            ("private_key", _) => {
                config.interface.private_key = Some(PrivateKey::from_hex(value).expect("hex"));
            }
            ("listen_port", _) => config.interface.listen_port = Some(number(value)),
            ("fwmark", _) => config.interface.fwmark = Some(number(value)),
            ("public_key", _) => {
                let key = PublicKey::from_hex(value).expect("hex");
                config.peers.push(PeerConfig::new(key));
            }
            ("preshared_key", Some(peer)) => {
                // All zeros means "no preshared key".
                let psk = PresharedKey::from_hex(value).expect("hex");
                peer.preshared_key = (!psk.is_zero()).then_some(psk);
            }
            ("endpoint", Some(peer)) => peer.endpoint = Some(value.parse().expect("endpoint")),
            ("persistent_keepalive_interval", Some(peer)) => {
                // 0 means off.
                let seconds: u16 = number(value);
                peer.persistent_keepalive = (seconds != 0).then_some(seconds);
            }
            ("allowed_ip", Some(peer)) => {
                peer.allowed_ips.push(value.parse().expect("prefix"));
            }
            ("errno", _) => assert_eq!(value, "0", "the get failed"),
            // protocol_version, last_handshake_time_sec/nsec, rx_bytes, tx_bytes: runtime
            // state, not configuration.
            _ => {}
        }
    }
    config
}

fn number<T: std::str::FromStr>(s: &str) -> T {
    s.parse()
        .unwrap_or_else(|_| panic!("`{s}` is not a number"))
}

#[cfg(test)]
#[test]
fn runs() {
    main();
}
