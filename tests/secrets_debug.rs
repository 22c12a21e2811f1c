//! No key material in `Debug`/`Display` output or in logs.
//!
//! Every public type that holds a private key, a preshared key or a derived secret is built
//! from known key bytes and formatted; the output must not contain the key in any rendering a
//! careless `Debug` would produce (base64, lowercase/uppercase hex, the byte array `[1, 2, ..]`,
//! an escaped byte string). Then a full handshake and data exchange runs through the sans-IO
//! core with a TRACE-level subscriber capturing every event, and the capture is checked for the
//! same keys and for anything key-shaped that is not a public key.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wgd::conf::{Config, InterfaceConfig, PeerConfig};
use wgd::crypto::SecretBytes;
use wgd::crypto::TransportKey;
use wgd::crypto::keys::{PresharedKey, PrivateKey, PublicKey, clamp};
use wgd::proto::Keypair;
use wgd::proto::constants::DEFAULT_MTU;
use wgd::proto::cookie::{CookieChecker, CookieJar};
use wgd::proto::noise::{Handshake, SessionKeys};
use wgd::proto::{Device, Received};
use wgd::proto::{Endpoint, Peer, SendResult};
use wgd::proto::{Instant, Now};
use wgd::uapi::{self, Request};

/// Distinct, recognisable key bytes (clamped, so a device stores them unchanged).
fn key_bytes(seed: u8) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8).wrapping_mul(7) ^ 0x5a;
    }
    clamp(&mut k);
    k
}

/// Every rendering of `k` that would mean a leak.
fn renderings(k: &[u8; 32]) -> Vec<String> {
    let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
    let dec = format!("{k:?}"); // [1, 2, 3, ...]
    let hexdbg = format!("{k:02x?}"); // [01, 02, ...]
    vec![
        STANDARD.encode(k),
        STANDARD.encode(k).trim_end_matches('=').to_string(),
        hex.clone(),
        hex.to_uppercase(),
        // A prefix of the array form is enough to leak most of the key.
        dec[..dec.len() / 2].to_string(),
        hexdbg[..hexdbg.len() / 2].to_string(),
        format!("{:?}", bytes_escaped(k)),
        // Half the key in hex (a truncated print is still a leak).
        hex[..32].to_string(),
    ]
}

fn bytes_escaped(k: &[u8; 32]) -> String {
    k.iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

/// The first rendering of one of `keys` found in `text`.
fn leak(text: &str, keys: &[(&str, [u8; 32])]) -> Option<String> {
    keys.iter().find_map(|(name, k)| {
        renderings(k)
            .into_iter()
            .find(|r| text.contains(r.as_str()))
            .map(|r| format!("the {name} ({r})"))
    })
}

fn assert_no_key(what: &str, text: &str, keys: &[(&str, [u8; 32])]) {
    if let Some(l) = leak(text, keys) {
        panic!("{what} contains {l}:\n{text}");
    }
}

/// Anything key-shaped: 64 hex digits in a row, 43 base64 characters then '=', or a list of
/// 32 decimal numbers. Public keys (given) are allowed.
fn key_shaped(text: &str, public: &[PublicKey]) -> Vec<String> {
    let allowed: Vec<String> = public
        .iter()
        .flat_map(|p| [p.to_base64(), p.to_hex()])
        .collect();
    let mut found = Vec::new();
    let b = text.as_bytes();
    let run =
        |start: usize, ok: &dyn Fn(u8) -> bool| b[start..].iter().take_while(|c| ok(**c)).count();
    let mut i = 0;
    while i < b.len() {
        let h = run(i, &|c| c.is_ascii_hexdigit());
        if h >= 64 {
            let s = &text[i..i + h];
            if !allowed
                .iter()
                .any(|a| s.contains(a.as_str()) && s.len() == a.len())
            {
                found.push(s.to_string());
            }
        }
        let n = run(i, &|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/');
        if n == 43 && b.get(i + 43) == Some(&b'=') {
            let s = &text[i..i + 44];
            if !allowed.iter().any(|a| a == s) {
                found.push(s.to_string());
            }
        }
        i += h.max(n).max(1);
    }
    // 32 comma-separated numbers in brackets.
    for part in text.split('[').skip(1) {
        let inner = part.split(']').next().unwrap_or("");
        let nums = inner
            .split(", ")
            .filter(|x| x.parse::<u8>().is_ok())
            .count();
        if nums >= 16 {
            found.push(format!("[{inner}]"));
        }
    }
    found
}

#[test]
fn the_checks_themselves_catch_a_leak() {
    let k = key_bytes(9);
    let keys = [("test key", k)];
    for r in renderings(&k) {
        assert!(leak(&format!("x {r} y"), &keys).is_some(), "{r} not caught");
    }
    let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(key_shaped(&format!("k={hex}\n"), &[]).len(), 1);
    assert_eq!(key_shaped(&format!("{:?}", k), &[]).len(), 1);
    let b64 = STANDARD.encode(k);
    assert_eq!(key_shaped(&format!("key {b64} end"), &[]).len(), 1);
    let public = PublicKey::from_bytes(k);
    assert!(key_shaped(&format!("{public} {}", public.to_hex()), &[public]).is_empty());
}

#[test]
fn debug_and_display_of_secret_bearing_types_show_no_key() {
    let own = key_bytes(1);
    let peer_own = key_bytes(2);
    let psk_b = key_bytes(3);
    let session_send = key_bytes(4);
    let session_recv = key_bytes(5);
    let keys = [
        ("private key", own),
        ("peer's private key", peer_own),
        ("preshared key", psk_b),
        ("send session key", session_send),
        ("receive session key", session_recv),
    ];
    let sk = PrivateKey::from_bytes(own);
    let peer_sk = PrivateKey::from_bytes(peer_own);
    let psk = PresharedKey::from_bytes(psk_b);
    let remote = peer_sk.public_key();

    let mut shown: Vec<(&str, String)> = vec![
        ("PrivateKey", format!("{sk:?}")),
        ("PresharedKey", format!("{psk:?}")),
        ("SecretBytes", format!("{:?}", SecretBytes::new(own))),
        (
            "Option<SecretBytes>",
            format!("{:?}", Some(SecretBytes::new(psk_b))),
        ),
        (
            "TransportKey",
            format!("{:?}", TransportKey::new(&session_send)),
        ),
        (
            "Handshake",
            format!("{:?}", Handshake::new(&sk, remote, psk.clone())),
        ),
        ("Peer", format!("{:?}", Peer::new(&sk, remote, psk.clone()))),
        (
            "CookieChecker",
            format!("{:?}", CookieChecker::new(&sk.public_key())),
        ),
        ("CookieJar", format!("{:?}", CookieJar::new(&remote))),
    ];
    let session = || SessionKeys {
        send: SecretBytes::new(session_send),
        recv: SecretBytes::new(session_recv),
        local_index: 7,
        remote_index: 9,
        initiator: true,
    };
    shown.push(("SessionKeys", format!("{:?}", session())));
    shown.push((
        "Keypair",
        format!(
            "{:?}",
            Keypair::new(session(), Instant::from_duration(Duration::ZERO))
        ),
    ));

    // A device with the peer, a handshake in flight and a session.
    let mut dev = Device::new(sk.clone(), Box::new(ChaCha8Rng::seed_from_u64(1)));
    let id = dev.add_peer(remote, psk.clone()).expect("peer");
    let now = Now::simulated(Duration::from_secs(10), Duration::from_secs(1_700_000_000));
    let mut out = Vec::new();
    dev.peer_mut(id)
        .expect("peer")
        .set_endpoint(Endpoint::new("198.18.0.2:51820".parse().expect("addr")));
    dev.initiate(id, now, &mut out);
    assert!(!out.is_empty(), "an initiation was queued");
    shown.push(("Device", format!("{dev:?}")));
    shown.push(("Peer (in a device)", format!("{:?}", dev.peer(id))));
    shown.push(("Transmit", format!("{out:?}")));

    // Configuration: parsed from text with both secrets.
    let text = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\n\n[Peer]\nPublicKey = {}\n\
         PresharedKey = {}\nAllowedIPs = 198.19.0.2/32\nEndpoint = 198.18.0.2:51820\n",
        STANDARD.encode(own),
        remote,
        STANDARD.encode(psk_b)
    );
    let cfg = Config::parse(&text, "test.conf").expect("config parses");
    assert_eq!(
        cfg.interface.private_key.as_ref(),
        Some(&sk),
        "the key is in there"
    );
    shown.push(("Config", format!("{cfg:?}")));
    shown.push(("InterfaceConfig", format!("{:?}", cfg.interface)));
    shown.push(("PeerConfig", format!("{:?}", cfg.peers)));
    let mut pc = PeerConfig::new(remote);
    pc.preshared_key = Some(psk.clone());
    shown.push(("PeerConfig (built)", format!("{pc:?}")));
    let ic = InterfaceConfig {
        private_key: Some(sk.clone()),
        ..InterfaceConfig::default()
    };
    shown.push(("InterfaceConfig (built)", format!("{ic:?}")));
    // Errors about a key value must not echo it either.
    let bad = text.replace(&STANDARD.encode(psk_b), &STANDARD.encode(psk_b)[..43]);
    let err = Config::parse(&bad, "bad.conf").expect_err("a truncated PSK");
    shown.push(("ConfigError", format!("{err:?} / {err}")));

    // UAPI requests: a set with both keys, and a refused one.
    let req_text = format!(
        "set=1\nprivate_key={}\npublic_key={}\npreshared_key={}\nallowed_ip=198.19.0.2/32\n\n",
        hex(&own),
        remote.to_hex(),
        hex(&psk_b)
    );
    let req = uapi::parse_request(req_text.as_bytes()).expect("request parses");
    assert!(matches!(req, Request::Set(_)));
    shown.push(("Request", format!("{req:?}")));
    if let Request::Set(set) = &req {
        shown.push(("SetRequest", format!("{set:?}")));
        shown.push(("InterfaceOp", format!("{:?}", set.interface)));
        shown.push(("PeerSet", format!("{:?}", set.peers)));
    }
    let bad_req = req_text.replace(&hex(&psk_b), &hex(&psk_b)[..63]);
    let uerr = uapi::parse_request(bad_req.as_bytes()).expect_err("a truncated PSK");
    shown.push(("UapiError", format!("{uerr:?} / {uerr}")));

    // The UAPI `get` reply legitimately carries the keys (root-only socket): make sure this
    // test's key set would see them, so the checks above are meaningful.
    dev.add_allowed_ip(id, "198.19.0.2".parse().expect("ip"), 32)
        .expect("insert");
    let get = uapi::format_get(&dev, 51820, None);
    assert!(get.contains(&hex(&own)) && get.contains(&hex(&psk_b)));

    for (what, text) in &shown {
        assert_no_key(what, text, &keys);
        if *what == "Transmit" {
            continue; // a datagram's bytes: ephemeral key and ciphertext, shaped like anything
        }
        let shaped = key_shaped(text, &[sk.public_key(), remote]);
        assert!(
            shaped.is_empty(),
            "{what} shows key-shaped {shaped:?}:\n{text}"
        );
    }
    // Public keys are fine to show (and are how an operator tells peers apart).
    assert!(shown.iter().any(|(_, t)| t.contains(&remote.to_base64())));
}

fn hex(k: &[u8; 32]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `MakeWriter` that appends to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[test]
fn trace_logs_of_a_handshake_and_data_exchange_show_no_key() {
    let own_a = key_bytes(11);
    let own_b = key_bytes(12);
    let psk_b = key_bytes(13);
    let keys = [
        ("A's private key", own_a),
        ("B's private key", own_b),
        ("preshared key", psk_b),
    ];
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    let delivered = tracing::subscriber::with_default(subscriber, || {
        exchange(own_a, own_b, PresharedKey::from_bytes(psk_b))
    });
    // Round 0: A's staged packet after the handshake; rounds 1-3: one each way.
    assert_eq!(delivered, 7, "every packet went through");
    let log = String::from_utf8(capture.0.lock().map(|v| v.clone()).unwrap_or_default())
        .expect("utf-8 log");
    let pa = PrivateKey::from_bytes(own_a).public_key();
    let pb = PrivateKey::from_bytes(own_b).public_key();
    assert_no_key("the TRACE log", &log, &keys);
    let shaped = key_shaped(&log, &[pa, pb]);
    assert!(
        shaped.is_empty(),
        "the TRACE log shows key-shaped {shaped:?}:\n{log}"
    );
    // The capture worked. (The sans-IO core itself logs nothing today; the events above are
    // what the I/O layer logs about its results, so any future logging is covered as well.)
    assert!(
        log.contains("receive") && log.contains("after the exchange"),
        "{log}"
    );
    assert!(
        log.contains("PrivateKey(<redacted>") || log.contains("Device"),
        "{log}"
    );
    eprintln!(
        "TRACE log of the exchange: {} lines, {} bytes",
        log.lines().count(),
        log.len()
    );
}

/// Two devices: A initiates, then three packets each way. Returns how many were delivered.
fn exchange(own_a: [u8; 32], own_b: [u8; 32], psk: PresharedKey) -> usize {
    let (ka, kb) = (PrivateKey::from_bytes(own_a), PrivateKey::from_bytes(own_b));
    let (pa, pb) = (ka.public_key(), kb.public_key());
    let mut a = Device::new(ka, Box::new(ChaCha8Rng::seed_from_u64(21)));
    let mut b = Device::new(kb, Box::new(ChaCha8Rng::seed_from_u64(22)));
    let ida = a.add_peer(pb, psk.clone()).expect("peer");
    let idb = b.add_peer(pa, psk).expect("peer");
    // Cryptokey routing: each side accepts the other's tunnel address as a source.
    a.add_allowed_ip(ida, "198.19.0.2".parse().expect("ip"), 32)
        .expect("prefix");
    b.add_allowed_ip(idb, "198.19.0.1".parse().expect("ip"), 32)
        .expect("prefix");
    let addr_a: SocketAddr = "198.18.0.1:51820".parse().expect("addr");
    let addr_b: SocketAddr = "198.18.0.2:51820".parse().expect("addr");
    a.peer_mut(ida)
        .expect("peer")
        .set_endpoint(Endpoint::new(addr_b));
    let mut now = Now::simulated(Duration::from_secs(100), Duration::from_secs(1_700_000_000));
    let mut delivered = 0;
    // (device index 0 = A, 1 = B) → datagrams in flight to the other one.
    let mut wire: Vec<(usize, SocketAddr, Vec<u8>)> = Vec::new();
    let mut devs = [(&mut a, ida, addr_a), (&mut b, idb, addr_b)];
    for round in 0..4u16 {
        for from in 0..2usize {
            if round == 0 && from == 1 {
                continue; // B answers only once it knows A's endpoint
            }
            let (src, dst) = if from == 0 {
                (Ipv4Addr::new(198, 19, 0, 1), Ipv4Addr::new(198, 19, 0, 2))
            } else {
                (Ipv4Addr::new(198, 19, 0, 2), Ipv4Addr::new(198, 19, 0, 1))
            };
            let pkt = common::packet::icmp4_echo(src, dst, 1, round, &[0x42; 64]);
            let mut buf = vec![0u8; Keypair::sealed_len(pkt.len(), DEFAULT_MTU)];
            buf[16..16 + pkt.len()].copy_from_slice(&pkt);
            let (dev, id, me) = &mut devs[from];
            let mut out = Vec::new();
            let sent = dev.send(*id, now, &mut buf, pkt.len(), &mut out);
            // What the daemon logs about a send, plus the state it could be tempted to log.
            tracing::trace!(result = ?sent, peer = ?dev.peer(*id), "send");
            if let Some(SendResult::Sealed { len, .. }) = sent {
                buf.truncate(len);
                wire.push((1 - from, *me, buf));
            }
            for t in &out {
                tracing::trace!(kind = ?t.kind, endpoint = ?t.endpoint, "transmit");
            }
            wire.extend(out.into_iter().map(|t| (1 - from, *me, t.data)));
            // Deliver until the wire is empty (bounded).
            for _ in 0..100 {
                let Some((to, from_addr, mut data)) = wire.pop() else {
                    break;
                };
                let (dev, _, me) = &mut devs[to];
                let mut out = Vec::new();
                let r = dev.receive(now, Endpoint::new(from_addr), &mut data, &mut out);
                match &r {
                    Ok(Received::Data { .. }) => delivered += 1,
                    Ok(_) => {}
                    // As the daemon logs a drop: Display of the reason.
                    Err(e) => tracing::trace!("dropped a datagram from {from_addr}: {e}"),
                }
                tracing::trace!(result = ?r, device = ?dev, "receive");
                wire.extend(out.into_iter().map(|t| (1 - to, *me, t.data)));
            }
            now = now.after(Duration::from_millis(50));
        }
    }
    for (dev, id, _) in &mut devs {
        let mut out = Vec::new();
        dev.tick(now.after(Duration::from_secs(30)), &mut out);
        let p = dev.peer(*id);
        tracing::debug!(
            handshake = ?p.map(Peer::handshake),
            current = ?p.and_then(Peer::current_keypair),
            timers = ?p.map(|p| &p.timers),
            "after the exchange"
        );
    }
    delivered
}
