//! Unit tests of the UAPI request parser, `set`, the `get` reply and the requests built from a
//! configuration (moved from the old `uapi/mod.rs` unchanged but for their `use` lines).

use super::apply::{Limits, apply_with_limits};
use super::get::SecretText;
use super::*;
use crate::conf::{AllowedIp, Config};
use crate::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::proto::device::Device;
use crate::proto::index::PeerId;
use crate::proto::peer::{Endpoint, TransmitKind};
use crate::proto::time::Now;
use rand_core::OsRng;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, SocketAddrV6};
use std::time::Duration;

const WALL: Duration = Duration::from_secs(1_700_000_000);

fn now() -> Now {
    Now::simulated(Duration::from_secs(5), WALL)
}

fn new_dev() -> Device {
    Device::with_os_rng(PrivateKey::generate(&mut OsRng))
}

fn new_key() -> PublicKey {
    PrivateKey::generate(&mut OsRng).public_key()
}

fn parse_set_text(text: &str) -> SetRequest {
    match parse_request(text.as_bytes()) {
        Ok(Request::Set(r)) => r,
        other => panic!("not a set request: {other:?}"),
    }
}

fn run(text: &str, dev: &mut Device) -> Result<InterfaceChange, UapiError> {
    let mut out = Vec::new();
    apply(parse_request_set(text)?, dev, now(), &mut out)
}

fn parse_request_set(text: &str) -> Result<SetRequest, UapiError> {
    match parse_request(text.as_bytes())? {
        Request::Set(r) => Ok(r),
        other => panic!("not a set: {other:?}"),
    }
}

fn get(dev: &Device) -> String {
    format_get(dev, 51820, None).to_string()
}

/// The `key=value` lines of a get reply, checking its framing.
fn kv(reply: &str) -> Vec<(String, String)> {
    let body = reply
        .strip_suffix("errno=0\n\n")
        .expect("ends with errno=0");
    body.lines()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn prefixes(dev: &Device, id: PeerId) -> Vec<String> {
    dev.allowed_ips()
        .iter_by_value(id)
        .map(|(a, c)| format!("{a}/{c}"))
        .collect()
}

fn id_of(dev: &Device, k: &PublicKey) -> PeerId {
    dev.peer_by_key(k).expect("peer exists")
}

fn errno_of(input: &[u8]) -> i32 {
    match parse_request(input) {
        Ok(r) => panic!("accepted: {r:?}"),
        Err(e) => e.errno(),
    }
}

/// xorshift64*: deterministic bytes for the robustness tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

// --- parsing ----------------------------------------------------------------------------

#[test]
fn get_request_forms() {
    assert_eq!(parse_request(b"get=1\n\n"), Ok(Request::Get));
    assert_eq!(parse_request(b"get=1\n"), Err(UapiError::Truncated));
    assert_eq!(parse_request(b"get=1"), Err(UapiError::Truncated));
    assert_eq!(parse_request(b"get=1\nx\n\n"), Err(UapiError::GetTrailing));
    assert_eq!(parse_request(b"get=1\n\r\n"), Err(UapiError::GetTrailing));
    assert_eq!(
        parse_request(b"get=1\n\nget=1\n\n"),
        Err(UapiError::TrailingData)
    );
    assert_eq!(
        parse_request(b"get=1\r\n\n"),
        Err(UapiError::UnknownOperation)
    );
    assert_eq!(
        parse_request(b"get=2\n\n"),
        Err(UapiError::UnknownOperation)
    );
    assert_eq!(parse_request(b"\n"), Err(UapiError::UnknownOperation));
    assert_eq!(parse_request(b""), Err(UapiError::Truncated));
    assert_eq!(
        parse_request(b"set=1\n\n"),
        Ok(Request::Set(SetRequest::default()))
    );
}

#[test]
fn set_request_with_every_key() {
    let sk = "18".repeat(32);
    let (a, b) = ("aa".repeat(32), "bb".repeat(32));
    let psk = "cd".repeat(32);
    let text = format!("set=1\nprivate_key={sk}\nlisten_port=51820\nfwmark=0x1\n\n");
    assert_eq!(
        parse_request(text.as_bytes()),
        Err(UapiError::InvalidValue {
            line: 4,
            key: "fwmark"
        })
    );
    let text = format!(
        "set=1\nprivate_key={sk}\nlisten_port=51820\nfwmark=51820\nreplace_peers=true\n\
         public_key={a}\nprotocol_version=1\npreshared_key={psk}\nendpoint=198.18.0.1:51820\n\
         persistent_keepalive_interval=25\nreplace_allowed_ips=true\n\
         allowed_ip=198.18.1.7/24\nallowed_ip=2001:db8::/32\nallowed_ip=-198.18.2.0/24\n\
         public_key={}\nupdate_only=true\nendpoint=[2001:db8::1%3]:0\n\
         public_key={b}\nremove=true\n\n",
        b.to_uppercase()
    );
    let req = parse_set_text(&text);
    let bytes: [u8; 32] = [0x18; 32];
    assert_eq!(
        req.interface,
        vec![
            InterfaceOp::PrivateKey(Some(PrivateKey::from_bytes(bytes))),
            InterfaceOp::ListenPort(51820),
            InterfaceOp::Fwmark(51820),
            InterfaceOp::ReplacePeers,
        ]
    );
    let pa = PublicKey::from_bytes([0xaa; 32]);
    let pb = PublicKey::from_bytes([0xbb; 32]);
    let ip = |s: &str| s.parse::<AllowedIp>().expect("prefix");
    assert_eq!(
        req.peers,
        vec![
            PeerSet {
                public_key: pa,
                ops: vec![
                    PeerOp::PresharedKey(PresharedKey::from_bytes([0xcd; 32])),
                    PeerOp::Endpoint("198.18.0.1:51820".parse().expect("addr")),
                    PeerOp::PersistentKeepalive(25),
                    PeerOp::ReplaceAllowedIps,
                    PeerOp::AllowedIp(ip("198.18.1.7/24")),
                    PeerOp::AllowedIp(ip("2001:db8::/32")),
                    PeerOp::RemoveAllowedIp(ip("198.18.2.0/24")),
                ],
            },
            PeerSet {
                public_key: pb,
                ops: vec![
                    PeerOp::UpdateOnly,
                    PeerOp::Endpoint(SocketAddr::V6(SocketAddrV6::new(
                        "2001:db8::1".parse().expect("v6"),
                        0,
                        0,
                        3
                    ))),
                ],
            },
            PeerSet {
                public_key: pb,
                ops: vec![PeerOp::Remove],
            },
        ]
    );
    assert_eq!(req.listen_port(), Some(51820));
    assert_eq!(req.fwmark(), Some(Some(51820)));
    // The request prints back to the same request.
    assert_eq!(parse_set_text(&req.to_request_text()), req);
}

#[test]
fn crlf_lines_and_leading_zeros_as_wireguard_go() {
    let req = parse_set_text("set=1\r\n\r\n".replace("set=1\r\n", "set=1\n").as_str());
    assert_eq!(req, SetRequest::default());
    let req = parse_set_text("set=1\nfwmark=10\r\nlisten_port=00080\r\n\r\n");
    assert_eq!(
        req.interface,
        vec![InterfaceOp::Fwmark(10), InterfaceOp::ListenPort(80)]
    );
    let k = "aa".repeat(32);
    let req = parse_set_text(&format!(
        "set=1\npublic_key={k}\nallowed_ip=198.18.9.9/024\n\n"
    ));
    assert_eq!(
        req.peers[0].ops,
        vec![PeerOp::AllowedIp(AllowedIp {
            addr: "198.18.9.9".parse().expect("v4"),
            cidr: 24
        })]
    );
}

#[test]
fn every_error_class_has_a_negative_errno() {
    let k = "aa".repeat(32);
    let peer = |line: &str| format!("set=1\npublic_key={k}\n{line}\n\n");
    let dev_line = |line: &str| format!("set=1\n{line}\n\n");
    let einval = -libc::EINVAL;
    let cases: Vec<(String, i32)> = vec![
        // Not key=value: -EPROTO.
        (dev_line("private_key"), -libc::EPROTO),
        (peer("allowed_ip 198.18.0.0/24"), -libc::EPROTO),
        // Truncated and trailing: -EPROTO.
        ("set=1\nfwmark=9".into(), -libc::EPROTO),
        ("set=1\nfwmark=9\n".into(), -libc::EPROTO),
        ("set=1\n\nx".into(), -libc::EPROTO),
        // Unknown keys: -EINVAL.
        (dev_line("foo=1"), einval),
        (dev_line("=1"), einval),
        (dev_line("Private_key=1"), einval),
        (dev_line("preshared_key=00"), einval),
        (peer("replace_peers=true"), einval),
        (peer("listen_port=1"), einval),
        (peer("\u{ff}\u{fe}=1"), einval),
        // Bad values: -EINVAL.
        (dev_line("private_key="), einval),
        (dev_line(&format!("private_key={}", "g".repeat(64))), einval),
        (dev_line(&format!("private_key={}", "a".repeat(63))), einval),
        (dev_line(&format!("private_key={}", "a".repeat(66))), einval),
        (dev_line("listen_port=65536"), einval),
        (dev_line("listen_port=+5"), einval),
        (dev_line("listen_port=-1"), einval),
        (dev_line("listen_port="), einval),
        (dev_line("listen_port= 5"), einval),
        (dev_line("fwmark=4294967296"), einval),
        (dev_line("fwmark=1_000"), einval),
        (dev_line("replace_peers=false"), einval),
        (dev_line("replace_peers=TRUE"), einval),
        ("set=1\npublic_key=xyz\n\n".into(), einval),
        (format!("set=1\npublic_key={k}0\n\n"), einval),
        (peer("remove=1"), einval),
        (peer("update_only=yes"), einval),
        (peer("replace_allowed_ips="), einval),
        (peer("protocol_version=2"), einval),
        (peer("protocol_version=01"), einval),
        (peer("preshared_key=zz"), einval),
        (peer("persistent_keepalive_interval=65536"), einval),
        (peer("persistent_keepalive_interval=off"), einval),
        (peer("endpoint=198.18.0.1"), einval),
        (peer("endpoint=198.18.0.1:"), einval),
        (peer("endpoint=:51820"), einval),
        (peer("endpoint=198.18.0.1:65536"), einval),
        (peer("endpoint=[198.18.0.1]:5"), einval),
        (peer("endpoint=2001:db8::1:5"), einval),
        (peer("endpoint=[2001:db8::1:5"), einval),
        (peer("endpoint=[2001:db8::1%eth0]:5"), einval),
        (peer("endpoint=host.example:5"), einval),
        (peer("endpoint=198.018.0.1:5"), einval),
        (peer("allowed_ip=198.18.0.1"), einval),
        (peer("allowed_ip=198.18.0.0/33"), einval),
        (peer("allowed_ip=2001:db8::/129"), einval),
        (peer("allowed_ip=198.18.0.0/+8"), einval),
        (peer("allowed_ip=198.18.0.0/"), einval),
        (peer("allowed_ip=fe80::%1/64"), einval),
        (peer("allowed_ip=--198.18.0.0/24"), einval),
        (peer("allowed_ip=-"), einval),
        // Unknown operation and junk after get: -EINVAL.
        ("del=1\n\n".into(), einval),
        ("get=1\nx\n\n".into(), einval),
    ];
    for (input, errno) in cases {
        assert_eq!(errno_of(input.as_bytes()), errno, "{input:?}");
    }
    // Non-UTF-8 values.
    let mut bad = b"set=1\nfwmark=".to_vec();
    bad.extend_from_slice(&[0xff, 0xfe]);
    bad.extend_from_slice(b"\n\n");
    assert_eq!(
        parse_request(&bad),
        Err(UapiError::InvalidValue {
            line: 2,
            key: "fwmark"
        })
    );
    // Size classes: -EIO. Apply-time classes keep their sign too.
    for e in [
        UapiError::RequestTooLarge,
        UapiError::TooManyLines,
        UapiError::LineTooLong { line: 2 },
    ] {
        assert_eq!(e.errno(), -libc::EIO);
    }
    assert_eq!(UapiError::TooManyPeers.errno(), einval);
    assert_eq!(UapiError::TableFull.errno(), -libc::ENOMEM);
    assert_eq!(UapiError::AddrInUse("x".into()).errno(), -98);
    assert_eq!(format_errno(-22), "errno=-22\n\n");
    assert_eq!(format_errno(0), "errno=0\n\n");
}

#[test]
fn errors_name_the_key_and_line_never_the_value() {
    let secret = "5a".repeat(31) + "zz";
    let e = parse_request(format!("set=1\nfwmark=1\nprivate_key={secret}\n\n").as_bytes())
        .expect_err("bad hex");
    let msg = e.to_string();
    assert_eq!(msg, "line 3: invalid value for private_key");
    assert!(!msg.contains("5a5a"));
    let e = parse_request(b"set=1\nlisten_prot=1\n\n").expect_err("unknown");
    assert_eq!(
        e.to_string(),
        "line 2: invalid UAPI device key `listen_prot'"
    );
    let long_key = "k".repeat(1000);
    let e = parse_request(format!("set=1\n{long_key}=1\n\n").as_bytes()).expect_err("unknown");
    assert!(e.to_string().len() < 200);
}

#[test]
fn size_limits() {
    // Over MAX_REQUEST_LEN: refused before looking at it.
    let mut big = b"set=1\n".to_vec();
    big.resize(MAX_REQUEST_LEN + 1, b'a');
    assert_eq!(parse_request(&big), Err(UapiError::RequestTooLarge));
    // Too many (short, valid) lines.
    let text = format!("set=1\n{}\n", "fwmark=1\n".repeat(MAX_LINES));
    assert!(text.len() <= MAX_REQUEST_LEN);
    assert_eq!(parse_request(text.as_bytes()), Err(UapiError::TooManyLines));
    // The most lines allowed: the operation line, the blank line and MAX_LINES - 2 others.
    let text = format!("set=1\n{}\n", "fwmark=1\n".repeat(MAX_LINES - 2));
    let req = parse_set_text(&text);
    assert_eq!(req.interface.len(), MAX_LINES - 2);
    // A line of MAX_LINE_LEN bytes is read; one more is refused, with or without '\n'.
    let ok = format!("set=1\nfwmark={}1\n\n", "0".repeat(MAX_LINE_LEN - 8));
    assert_eq!(parse_set_text(&ok).interface, vec![InterfaceOp::Fwmark(1)]);
    let long = format!("set=1\nfwmark={}1\n\n", "0".repeat(MAX_LINE_LEN - 7));
    assert_eq!(
        parse_request(long.as_bytes()),
        Err(UapiError::LineTooLong { line: 2 })
    );
    let long = format!("set=1\nfwmark={}", "0".repeat(MAX_LINE_LEN));
    assert_eq!(
        parse_request(long.as_bytes()),
        Err(UapiError::LineTooLong { line: 2 })
    );
}

#[test]
fn a_megabyte_of_garbage_is_refused_without_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for prefix in [&b""[..], b"set=1\n", b"get=1\n", b"set=1\npublic_key="] {
        for len in [MAX_REQUEST_LEN - prefix.len(), MAX_REQUEST_LEN + 1] {
            let mut input = prefix.to_vec();
            input.extend(rng.bytes(len));
            assert!(parse_request(&input).is_err());
        }
    }
    // Newline-heavy garbage: short lines, many of them.
    let mut input = b"set=1\n".to_vec();
    input.extend((0..MAX_REQUEST_LEN - 6).map(|i| if i % 3 == 2 { b'\n' } else { b'=' }));
    assert!(parse_request(&input).is_err());
}

#[test]
fn random_bytes_of_many_lengths_never_panic() {
    let mut rng = Rng(42);
    let alphabet = b"=\n\r\0-/:.[]%0123456789abcdef";
    for len in 0..3000 {
        let raw = rng.bytes(len);
        let _ = parse_request(&raw);
        // Mostly the characters the grammar cares about, after a valid first line.
        let mut text = if len % 2 == 0 {
            b"set=1\n".to_vec()
        } else {
            b"get=1\n".to_vec()
        };
        text.extend((0..len).map(|_| alphabet[rng.below(alphabet.len())]));
        let _ = parse_request(&text);
    }
}

#[test]
fn mutated_requests_never_panic_and_print_back() {
    let (a, b) = ("aa".repeat(32), "bb".repeat(32));
    let base = format!(
        "set=1\nprivate_key={}\nlisten_port=51820\nfwmark=7\nreplace_peers=true\n\
         public_key={a}\npreshared_key={}\nendpoint=[2001:db8::1]:51820\n\
         persistent_keepalive_interval=25\nreplace_allowed_ips=true\n\
         allowed_ip=198.18.0.0/24\nallowed_ip=2001:db8:1::/48\nallowed_ip=-198.18.0.0/24\n\
         public_key={b}\nupdate_only=true\nallowed_ip=198.18.1.0/24\nprotocol_version=1\n\
         public_key={a}\nremove=true\n\n",
        "18".repeat(32),
        "cd".repeat(32)
    );
    let mut rng = Rng(7);
    let mut accepted = 0;
    for _ in 0..3000 {
        let mut m = base.clone().into_bytes();
        let alphabet = b"0123456789abcdef=\n:/.-[]";
        for _ in 0..1 + rng.below(2) {
            if m.is_empty() {
                break;
            }
            let i = rng.below(m.len());
            match rng.below(8) {
                0 => m[i] = rng.next() as u8,
                1 | 2 => {
                    m.remove(i);
                }
                3 | 4 => m.insert(i, alphabet[rng.below(alphabet.len())]),
                5 => m.truncate(i),
                _ => m[i] = alphabet[rng.below(alphabet.len())],
            }
        }
        if let Ok(Request::Set(req)) = parse_request(&m) {
            accepted += 1;
            assert_eq!(parse_set_text(&req.to_request_text()), req);
            let mut dev = new_dev();
            let mut out = Vec::new();
            apply(req, &mut dev, now(), &mut out).expect("applies");
            let reply = format_get(&dev, 1, Some(2));
            assert!(reply.ends_with("errno=0\n\n"));
        }
    }
    assert!(accepted > 100, "only {accepted} mutations parsed");
}

// --- get --------------------------------------------------------------------------------

#[test]
fn secret_text_grows_without_losing_bytes() {
    use std::fmt::Write as _;
    let mut t = SecretText::with_capacity(1);
    let mut want = String::new();
    for i in 0..200 {
        let _ = write!(t, "line {i}=");
        t.push_str(&"ab".repeat(i % 40));
        t.push('\n');
        want += &format!("line {i}={}\n", "ab".repeat(i % 40));
    }
    assert_eq!(*t.0, want);
    assert!(t.0.capacity() >= want.len());
}

#[test]
fn get_reply_is_byte_for_byte_wireguard_go() {
    let mut dev = Device::with_os_rng(PrivateKey::from_bytes([0x18; 32]));
    let pa = PublicKey::from_bytes([0xaa; 32]);
    let id = dev.add_peer(pa, PresharedKey::default()).expect("add");
    {
        let p = dev.peer_mut(id).expect("peer");
        p.set_endpoint(Endpoint::new("198.18.0.1:51820".parse().expect("addr")));
        p.stats.tx_bytes = 1234;
        p.stats.rx_bytes = 5678;
        p.stats.last_handshake = Some(Duration::new(1_700_000_123, 456_789));
        p.timers.persistent_keepalive_interval = Some(Duration::from_secs(25));
    }
    for (a, c) in [("198.18.5.0", 24), ("2001:db8::", 32), ("198.18.1.0", 24)] {
        dev.add_allowed_ip(id, a.parse().expect("ip"), c)
            .expect("insert");
    }
    let pb = PublicKey::from_bytes([0xbb; 32]);
    let idb = dev
        .add_peer(pb, PresharedKey::from_bytes([0x01; 32]))
        .expect("add");
    dev.add_allowed_ip(idb, "2001:db8:1::".parse().expect("ip"), 48)
        .expect("insert");
    let clamped_key_hex = format!("{}58", "18".repeat(31));
    let expected = format!(
        "private_key={}\nlisten_port=44951\nfwmark=7\n\
         public_key={}\npreshared_key={}\nprotocol_version=1\nendpoint=198.18.0.1:51820\n\
         last_handshake_time_sec=1700000123\nlast_handshake_time_nsec=456789\n\
         tx_bytes=1234\nrx_bytes=5678\npersistent_keepalive_interval=25\n\
         allowed_ip=198.18.1.0/24\nallowed_ip=198.18.5.0/24\nallowed_ip=2001:db8::/32\n\
         public_key={}\npreshared_key={}\nprotocol_version=1\n\
         last_handshake_time_sec=0\nlast_handshake_time_nsec=0\n\
         tx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\n\
         allowed_ip=2001:db8:1::/48\nerrno=0\n\n",
        // The device stores its key clamped (0x18 in the last byte becomes 0x58).
        clamped_key_hex,
        "aa".repeat(32),
        "00".repeat(32),
        "bb".repeat(32),
        "01".repeat(32),
    );
    assert_eq!(*format_get(&dev, 44951, Some(7)), expected);
    // No listen_port line for 0, no fwmark line for none or 0.
    let reply = format_get(&dev, 0, Some(0));
    assert!(!reply.contains("listen_port=") && !reply.contains("fwmark="));
    // An IPv6 endpoint in brackets.
    dev.peer_mut(idb)
        .expect("peer")
        .set_endpoint(Endpoint::new("[2001:db8::9]:7".parse().expect("addr")));
    assert!(get(&dev).contains("\nendpoint=[2001:db8::9]:7\n"));
}

#[test]
fn private_key_is_clamped_like_wireguard_go() {
    // wireguard-go answers this `set` with the clamped key in `get` (checked against
    // Debian's wireguard-go 0.0.20220316).
    let mut dev = new_dev();
    let sk = format!("18{}", "11".repeat(31));
    run(&format!("set=1\nprivate_key={sk}\n\n"), &mut dev).expect("set");
    let reply = get(&dev);
    assert!(reply.starts_with(&format!("private_key=18{}51\n", "11".repeat(30))));
    // Setting the same key again changes nothing.
    let pk = dev.public_key();
    run(&format!("set=1\nprivate_key={sk}\n\n"), &mut dev).expect("set");
    assert_eq!(dev.public_key(), pk);
}

// --- set semantics ----------------------------------------------------------------------

#[test]
fn config_to_set_to_get_round_trip() {
    let sk = PrivateKey::generate(&mut OsRng);
    let (pa, pb) = (new_key(), new_key());
    let psk = PresharedKey::generate(&mut OsRng);
    let text = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\nFwMark = 0x1234\n\n\
         [Peer]\nPublicKey = {}\nPresharedKey = {}\nEndpoint = 198.18.0.1:51820\n\
         PersistentKeepalive = 25\nAllowedIPs = 198.18.1.0/24, 2001:db8:a::/48\n\n\
         [Peer]\nPublicKey = {}\nEndpoint = [2001:db8::2]:51821\n\
         AllowedIPs = 198.18.2.1/32\n",
        sk.to_base64().as_str(),
        pa.to_base64(),
        psk.to_base64().as_str(),
        pb.to_base64()
    );
    let cfg = Config::parse(&text, "wg0.conf").expect("config");
    let req = set_request_from_config(&cfg, true);
    // What `wg setconf` sends, and it parses back to the same request.
    let wire = req.to_request_text();
    assert!(wire.starts_with("set=1\nprivate_key="));
    assert!(wire.contains("\nlisten_port=51820\nfwmark=4660\nreplace_peers=true\npublic_key="));
    assert_eq!(wire.matches("replace_allowed_ips=true\n").count(), 2);
    assert!(!wire.contains("persistent_keepalive_interval=0"));
    assert_eq!(parse_set_text(&wire), req);

    let mut dev = new_dev();
    let mut out = Vec::new();
    let change = apply(req, &mut dev, now(), &mut out).expect("apply");
    assert_eq!(change.listen_port, Some(51820));
    assert_eq!(change.fwmark, Some(Some(0x1234)));
    assert_eq!(change.peers_added.len(), 2);
    assert!(change.peers_removed.is_empty());
    // Turning the keepalive on sent something to peer A (a handshake: no session yet).
    assert!(out.iter().any(|t| t.peer == dev.peer_by_key(&pa)
        && t.endpoint.addr == "198.18.0.1:51820".parse().expect("addr")
        && t.kind == TransmitKind::Initiation));

    let pairs = kv(&format_get(&dev, 51820, change.fwmark.flatten()));
    let value = |k: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(value("private_key"), vec![sk.clamped().to_hex().as_str()]);
    assert_eq!(value("listen_port"), vec!["51820"]);
    assert_eq!(value("fwmark"), vec!["4660"]);
    let mut keys = value("public_key");
    keys.sort_unstable();
    let mut want = vec![pa.to_hex(), pb.to_hex()];
    want.sort_unstable();
    assert_eq!(keys, want);
    // Per peer, in the reply's order.
    let mut peers: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut current = String::new();
    for (k, v) in &pairs {
        if k == "public_key" {
            current = v.clone();
        } else if !current.is_empty() {
            peers
                .entry(current.clone())
                .or_default()
                .push((k.clone(), v.clone()));
        }
    }
    let a = &peers[&pa.to_hex()];
    let a_keys: Vec<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        a_keys,
        [
            "preshared_key",
            "protocol_version",
            "endpoint",
            "last_handshake_time_sec",
            "last_handshake_time_nsec",
            "tx_bytes",
            "rx_bytes",
            "persistent_keepalive_interval",
            "allowed_ip",
            "allowed_ip"
        ]
    );
    let a_get = |k: &str| -> Vec<String> {
        a.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(a_get("preshared_key"), vec![psk.to_hex().to_string()]);
    assert_eq!(a_get("endpoint"), vec!["198.18.0.1:51820"]);
    assert_eq!(a_get("persistent_keepalive_interval"), vec!["25"]);
    assert_eq!(a_get("last_handshake_time_sec"), vec!["0"]);
    assert_eq!(
        a_get("allowed_ip"),
        vec!["198.18.1.0/24", "2001:db8:a::/48"]
    );
    let b = &peers[&pb.to_hex()];
    assert!(b.contains(&("preshared_key".into(), "00".repeat(32))));
    assert!(b.contains(&("endpoint".into(), "[2001:db8::2]:51821".into())));
    assert!(b.contains(&("persistent_keepalive_interval".into(), "0".into())));
    assert!(b.contains(&("allowed_ip".into(), "198.18.2.1/32".into())));

    // Applying the same configuration again gives the same reply (peers are re-created).
    let before = get(&dev);
    let mut out = Vec::new();
    apply(
        set_request_from_config(&cfg, true),
        &mut dev,
        now(),
        &mut out,
    )
    .expect("apply");
    assert_eq!(get(&dev), before);
}

#[test]
fn host_name_endpoints_need_a_resolver() {
    let pa = new_key();
    let cfg = Config::parse(
        &format!(
            "[Peer]\nPublicKey = {}\nEndpoint = vpn.example:51820\nAllowedIPs = 198.18.0.0/24\n",
            pa.to_base64()
        ),
        "x",
    )
    .expect("config");
    let req = set_request_from_config(&cfg, true);
    assert!(
        !req.peers[0]
            .ops
            .iter()
            .any(|o| matches!(o, PeerOp::Endpoint(_)))
    );
    assert_eq!(req.interface, vec![InterfaceOp::ReplacePeers]);
    let addr: SocketAddr = "198.18.0.9:51820".parse().expect("addr");
    let req = set_request_from_config_with(&cfg, true, |e| {
        assert_eq!(e.host, "vpn.example");
        Ok::<_, ()>(Some(SocketAddr::new(addr.ip(), e.port)))
    })
    .expect("resolved");
    assert!(req.peers[0].ops.contains(&PeerOp::Endpoint(addr)));
    assert_eq!(
        set_request_from_config_with(&cfg, true, |_| Err("no such host")),
        Err("no such host")
    );
}

#[test]
fn an_error_anywhere_changes_nothing() {
    let mut dev = new_dev();
    let (pa, pb) = (new_key(), new_key());
    run(
        &format!(
            "set=1\npublic_key={}\nallowed_ip=198.18.0.0/24\nendpoint=198.18.0.1:1\n\
             public_key={}\nallowed_ip=198.18.1.0/24\n\n",
            pa.to_hex(),
            pb.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    let before = get(&dev);
    let own = dev.public_key();
    let sweeping = format!(
        "set=1\nprivate_key={}\nreplace_peers=true\npublic_key={}\nallowed_ip=198.18.1.0/24\n\
         endpoint=198.18.0.2:2\npersistent_keepalive_interval=5\npublic_key={}\nremove=true\n",
        "77".repeat(32),
        new_key().to_hex(),
        pa.to_hex()
    );
    // The last line is bad: a parse error, so apply never runs.
    for bad_last in [
        "allowed_ip=198.18.0.0/33\n\n",
        "bogus=1\n\n",
        "remove\n\n",
        "",
    ] {
        assert!(run(&format!("{sweeping}{bad_last}"), &mut dev).is_err());
        assert_eq!(get(&dev), before);
        assert_eq!(dev.public_key(), own);
    }
    // A check failure after many valid changes: nothing applied either.
    let mut many = String::from("set=1\nfwmark=3\n");
    let _ = writeln!(many, "public_key={}\nremove=true", pa.to_hex());
    let _ = writeln!(many, "public_key={}\nallowed_ip=198.18.7.0/24", pb.to_hex());
    for _ in 0..3 {
        let _ = writeln!(
            many,
            "public_key={}\nallowed_ip=2001:db8::/32",
            new_key().to_hex()
        );
    }
    many.push('\n');
    let small = Limits {
        max_peers: 3,
        max_prefixes: 100,
    };
    let mut out = Vec::new();
    assert_eq!(
        apply_with_limits(parse_set_text(&many), &mut dev, now(), &mut out, small),
        Err(UapiError::TooManyPeers)
    );
    assert_eq!(get(&dev), before);
    let tight = Limits {
        max_peers: 10,
        max_prefixes: 5,
    };
    assert_eq!(
        apply_with_limits(parse_set_text(&many), &mut dev, now(), &mut out, tight),
        Err(UapiError::TableFull)
    );
    assert_eq!(get(&dev), before);
    assert!(out.is_empty());
    // Within the limits (A is removed first, so three new peers fit in four), it applies.
    let fits = Limits {
        max_peers: 4,
        max_prefixes: 6,
    };
    apply_with_limits(parse_set_text(&many), &mut dev, now(), &mut out, fits).expect("fits");
    assert_eq!(dev.peer_ids().count(), 4);
}

#[test]
fn replace_peers_removes_every_peer_first() {
    let mut dev = new_dev();
    let (pa, pb, pc) = (new_key(), new_key(), new_key());
    run(
        &format!(
            "set=1\npublic_key={}\npreshared_key={}\nallowed_ip=198.18.0.0/24\n\
             public_key={}\nallowed_ip=198.18.1.0/24\n\n",
            pa.to_hex(),
            "11".repeat(32),
            pb.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    let (ida, idb) = (id_of(&dev, &pa), id_of(&dev, &pb));
    let change = run(
        &format!(
            "set=1\nreplace_peers=true\npublic_key={}\nallowed_ip=198.18.2.0/24\n\
             public_key={}\n\n",
            pa.to_hex(),
            pc.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    let mut removed = change.peers_removed.clone();
    removed.sort();
    assert_eq!(removed, {
        let mut v = vec![ida, idb];
        v.sort();
        v
    });
    assert_eq!(change.peers_added.len(), 2);
    assert!(dev.peer_by_key(&pb).is_none());
    let ida = id_of(&dev, &pa);
    // A was re-created: its old PSK and prefix are gone.
    assert!(dev.peer(ida).expect("peer").preshared_key().is_zero());
    assert_eq!(prefixes(&dev, ida), ["198.18.2.0/24"]);
    assert_eq!(dev.allowed_ips().len(), 1);
    assert!(dev.peer_by_key(&pc).is_some());
    // replace_peers alone empties the device.
    run("set=1\nreplace_peers=true\n\n", &mut dev).expect("set");
    assert_eq!(dev.peer_ids().count(), 0);
    assert!(dev.allowed_ips().is_empty());
}

#[test]
fn remove_drops_the_peer_and_ignores_the_rest_of_its_block() {
    let mut dev = new_dev();
    let (pa, pb) = (new_key(), new_key());
    run(
        &format!(
            "set=1\npublic_key={}\nallowed_ip=198.18.0.0/24\nallowed_ip=2001:db8::/32\n\
             public_key={}\nallowed_ip=198.18.1.0/24\n\n",
            pa.to_hex(),
            pb.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    let (ida, idb) = (id_of(&dev, &pa), id_of(&dev, &pb));
    let change = run(
        &format!(
            "set=1\npublic_key={}\nremove=true\nallowed_ip=198.18.1.0/24\n\
             endpoint=198.18.0.1:1\n\n",
            pa.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    assert_eq!(change.peers_removed, vec![ida]);
    assert!(change.peers_added.is_empty());
    assert!(dev.peer_by_key(&pa).is_none());
    assert!(prefixes(&dev, ida).is_empty());
    // The line after `remove` did not take B's prefix.
    assert_eq!(prefixes(&dev, idb), ["198.18.1.0/24"]);
    // Removing an unknown peer creates nothing (wireguard-go creates and removes it).
    let pc = new_key();
    run(
        &format!("set=1\npublic_key={}\nremove=true\n\n", pc.to_hex()),
        &mut dev,
    )
    .expect("set");
    assert!(dev.peer_by_key(&pc).is_none());
    assert_eq!(dev.peer_ids().count(), 1);
    // A peer removed and added again in one request starts afresh.
    run(
        &format!(
            "set=1\npublic_key={0}\nremove=true\npublic_key={0}\nallowed_ip=198.18.3.0/24\n\n",
            pb.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    assert_eq!(prefixes(&dev, id_of(&dev, &pb)), ["198.18.3.0/24"]);
    assert_eq!(dev.allowed_ips().len(), 1);
}

#[test]
fn update_only_never_creates() {
    let mut dev = new_dev();
    let (pa, pb) = (new_key(), new_key());
    run(
        &format!(
            "set=1\npublic_key={}\nallowed_ip=198.18.0.0/24\n\n",
            pa.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    let ida = id_of(&dev, &pa);
    let change = run(
        &format!(
            "set=1\npublic_key={}\nupdate_only=true\nendpoint=198.18.0.1:51820\n\
             allowed_ip=198.18.1.0/24\npublic_key={}\nupdate_only=true\n\
             allowed_ip=198.18.0.0/24\nendpoint=198.18.0.2:1\n\n",
            pa.to_hex(),
            pb.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    assert!(dev.peer_by_key(&pb).is_none());
    assert_eq!(
        dev.peer(ida).and_then(|p| p.endpoint()).map(|e| e.addr),
        Some("198.18.0.1:51820".parse().expect("addr"))
    );
    // B's lines did not take A's prefix.
    assert_eq!(prefixes(&dev, ida), ["198.18.0.0/24", "198.18.1.0/24"]);
    // As in wireguard-go, the unknown peer was created and removed again.
    assert_eq!(change.peers_added.len(), 1);
    assert_eq!(change.peers_added, change.peers_removed);
    // wireguard-go applies lines in order: `update_only` after an `allowed_ip` of a new peer
    // removes the peer and the prefix it had just taken.
    run(
        &format!(
            "set=1\npublic_key={}\nallowed_ip=198.18.1.0/24\nupdate_only=true\n\n",
            pb.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    assert!(dev.peer_by_key(&pb).is_none());
    assert_eq!(prefixes(&dev, ida), ["198.18.0.0/24"]);
}

#[test]
fn allowed_ips_move_between_peers_and_minus_removes_one() {
    let mut dev = new_dev();
    let (pa, pb) = (new_key(), new_key());
    run(
        &format!(
            "set=1\npublic_key={}\nallowed_ip=198.18.0.0/24\nallowed_ip=2001:db8::/32\n\
             allowed_ip=198.18.9.0/24\npublic_key={}\nallowed_ip=198.18.1.0/24\n\n",
            pa.to_hex(),
            pb.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    let (ida, idb) = (id_of(&dev, &pa), id_of(&dev, &pb));
    // B takes A's IPv6 prefix (host bits ignored) and removes one of its own by `-`; a
    // `-` for a prefix B does not own (A's 198.18.0.0/24) leaves it with A.
    run(
        &format!(
            "set=1\npublic_key={}\nallowed_ip=2001:db8::1/32\nallowed_ip=-198.18.1.9/24\n\
             allowed_ip=-198.18.0.0/24\nallowed_ip=-2001:db8:ffff::/48\n\n",
            pb.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    assert_eq!(prefixes(&dev, ida), ["198.18.0.0/24", "198.18.9.0/24"]);
    assert_eq!(prefixes(&dev, idb), ["2001:db8::/32"]);
    // replace_allowed_ips clears only that peer's, then adds.
    run(
        &format!(
            "set=1\npublic_key={}\nreplace_allowed_ips=true\nallowed_ip=198.18.4.0/22\n\n",
            pa.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    assert_eq!(prefixes(&dev, ida), ["198.18.4.0/22"]);
    assert_eq!(prefixes(&dev, idb), ["2001:db8::/32"]);
    // In order: an `allowed_ip` before `replace_allowed_ips` is cleared with the rest.
    run(
        &format!(
            "set=1\npublic_key={}\nallowed_ip=198.18.12.0/24\nreplace_allowed_ips=true\n\n",
            pb.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    assert!(prefixes(&dev, idb).is_empty());
    assert_eq!(
        dev.allowed_ips().lookup("198.18.12.1".parse().expect("ip")),
        None
    );
}

#[test]
fn zero_values_remove() {
    let mut dev = new_dev();
    let pa = new_key();
    let change = run(
        &format!(
            "set=1\nfwmark=5\npublic_key={}\npreshared_key={}\npersistent_keepalive_interval=9\n\n",
            pa.to_hex(),
            "42".repeat(32)
        ),
        &mut dev,
    )
    .expect("set");
    assert_eq!(change.fwmark, Some(Some(5)));
    let ida = id_of(&dev, &pa);
    assert!(!dev.peer(ida).expect("peer").preshared_key().is_zero());
    let change = run(
        &format!(
            "set=1\nprivate_key={}\nfwmark=0\npublic_key={}\npreshared_key={}\n\
             persistent_keepalive_interval=0\n\n",
            "00".repeat(32),
            pa.to_hex(),
            "00".repeat(32)
        ),
        &mut dev,
    )
    .expect("set");
    assert_eq!(change.fwmark, Some(None));
    assert_eq!(change.listen_port, None);
    assert!(!dev.has_private_key());
    let p = dev.peer(ida).expect("peer");
    assert!(p.preshared_key().is_zero());
    assert_eq!(p.persistent_keepalive(), None);
    let reply = format_get(&dev, 51820, change.fwmark.flatten());
    assert!(reply.starts_with("listen_port=51820\npublic_key="));
    assert!(reply.contains(&format!("preshared_key={}\n", "00".repeat(32))));
    assert!(reply.contains("persistent_keepalive_interval=0\n"));
    // Removing an absent key again is fine; a new key brings the line back.
    run(
        &format!("set=1\nprivate_key={}\n\n", "00".repeat(32)),
        &mut dev,
    )
    .expect("set");
    assert!(!dev.has_private_key());
    run(
        &format!("set=1\nprivate_key={}\n\n", "48".repeat(32)),
        &mut dev,
    )
    .expect("set");
    assert!(get(&dev).starts_with(&format!("private_key={}", "48".repeat(32))));
}

#[test]
fn own_public_key_is_ignored_and_a_clashing_private_key_drops_the_peer() {
    let mut dev = new_dev();
    let own = dev.public_key();
    let change = run(
        &format!(
            "set=1\npublic_key={}\nallowed_ip=198.18.0.0/24\nendpoint=198.18.0.1:1\n\n",
            own.to_hex()
        ),
        &mut dev,
    )
    .expect("silently ignored, as wireguard-go and the kernel do");
    assert_eq!(change, InterfaceChange::default());
    assert_eq!(dev.peer_ids().count(), 0);
    assert!(dev.allowed_ips().is_empty());
    // A peer whose key becomes the device's own goes, with its prefixes; the peer block
    // for it after the key change is then ignored too.
    let new_sk = PrivateKey::generate(&mut OsRng);
    let clash = new_sk.public_key();
    let other = new_key();
    run(
        &format!(
            "set=1\npublic_key={}\nallowed_ip=198.18.1.0/24\npublic_key={}\n\
             allowed_ip=198.18.2.0/24\n\n",
            clash.to_hex(),
            other.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    let idc = id_of(&dev, &clash);
    let change = run(
        &format!(
            "set=1\nprivate_key={}\npublic_key={}\nallowed_ip=198.18.3.0/24\n\n",
            new_sk.to_hex().as_str(),
            clash.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    assert_eq!(change.peers_removed, vec![idc]);
    assert!(change.peers_added.is_empty());
    assert_eq!(dev.public_key(), clash);
    assert!(dev.peer_by_key(&clash).is_none());
    assert_eq!(dev.allowed_ips().len(), 1);
    assert_eq!(prefixes(&dev, id_of(&dev, &other)), ["198.18.2.0/24"]);
}

#[test]
fn keepalive_is_sent_when_turned_on_only() {
    let mut dev = new_dev();
    let pa = new_key();
    let mut out = Vec::new();
    // Keepalive before endpoint in the block: the packet still goes to that endpoint.
    let req = parse_set_text(&format!(
        "set=1\npublic_key={}\npersistent_keepalive_interval=25\nendpoint=198.18.0.7:51820\n\n",
        pa.to_hex()
    ));
    apply(req, &mut dev, now(), &mut out).expect("set");
    let ida = id_of(&dev, &pa);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].peer, Some(ida));
    assert_eq!(
        out[0].endpoint.addr,
        "198.18.0.7:51820".parse().expect("addr")
    );
    assert_eq!(
        dev.peer(ida).and_then(|p| p.persistent_keepalive()),
        Some(Duration::from_secs(25))
    );
    // On to another value: changed, nothing sent.
    out.clear();
    let req = parse_set_text(&format!(
        "set=1\npublic_key={}\npersistent_keepalive_interval=30\n\n",
        pa.to_hex()
    ));
    apply(req, &mut dev, now(), &mut out).expect("set");
    assert!(out.is_empty());
    assert_eq!(
        dev.peer(ida).and_then(|p| p.persistent_keepalive()),
        Some(Duration::from_secs(30))
    );
    // Off: nothing sent; off then on in one block: sent.
    let req = parse_set_text(&format!(
        "set=1\npublic_key={}\npersistent_keepalive_interval=0\n\n",
        pa.to_hex()
    ));
    apply(req, &mut dev, now(), &mut out).expect("set");
    assert!(out.is_empty());
    assert_eq!(dev.peer(ida).and_then(|p| p.persistent_keepalive()), None);
    let req = parse_set_text(&format!(
        "set=1\npublic_key={}\npersistent_keepalive_interval=0\n\
         persistent_keepalive_interval=10\n\n",
        pa.to_hex()
    ));
    apply(
        req,
        &mut dev,
        now().after(Duration::from_secs(10)),
        &mut out,
    )
    .expect("set");
    assert!(!out.is_empty());
    // On, then off again within the block: nothing sent.
    out.clear();
    let pb = new_key();
    let req = parse_set_text(&format!(
        "set=1\npublic_key={}\nendpoint=198.18.0.8:1\npersistent_keepalive_interval=10\n\
         persistent_keepalive_interval=0\n\n",
        pb.to_hex()
    ));
    apply(req, &mut dev, now(), &mut out).expect("set");
    assert!(out.is_empty());
}

#[test]
fn listen_port_and_fwmark_last_value_wins() {
    let mut dev = new_dev();
    let change = run(
        "set=1\nlisten_port=1\nfwmark=2\nlisten_port=0\nfwmark=0\nfwmark=3\n\n",
        &mut dev,
    )
    .expect("set");
    assert_eq!(change.listen_port, Some(0));
    assert_eq!(change.fwmark, Some(Some(3)));
}

#[test]
fn sync_request_removes_peers_not_in_the_file() {
    let mut dev = new_dev();
    let (pa, pb, pc) = (new_key(), new_key(), new_key());
    run(
        &format!(
            "set=1\npublic_key={}\npreshared_key={}\npersistent_keepalive_interval=5\n\
             allowed_ip=198.18.0.0/24\npublic_key={}\nallowed_ip=198.18.1.0/24\n\n",
            pa.to_hex(),
            "33".repeat(32),
            pb.to_hex()
        ),
        &mut dev,
    )
    .expect("set");
    let ida = id_of(&dev, &pa);
    let cfg = Config::parse(
        &format!(
            "[Peer]\nPublicKey = {}\nAllowedIPs = 198.18.5.0/24\n\n[Peer]\nPublicKey = {}\n",
            pa.to_base64(),
            pc.to_base64()
        ),
        "x",
    )
    .expect("config");
    let req = sync_request_from_config(&cfg, &dev);
    assert!(!req.interface.contains(&InterfaceOp::ReplacePeers));
    let mut out = Vec::new();
    apply(req, &mut dev, now(), &mut out).expect("sync");
    // A kept its slot (and so its sessions), lost its PSK, keepalive and old prefix.
    assert_eq!(dev.peer_by_key(&pa), Some(ida));
    let p = dev.peer(ida).expect("peer");
    assert!(p.preshared_key().is_zero());
    assert_eq!(p.persistent_keepalive(), None);
    assert_eq!(prefixes(&dev, ida), ["198.18.5.0/24"]);
    assert!(dev.peer_by_key(&pb).is_none());
    assert!(dev.peer_by_key(&pc).is_some());
    assert_eq!(dev.allowed_ips().len(), 1);
}

/// The get-reply parser (moved from `src/cli/show.rs` with [`parse_get_reply`]).
mod get_reply {
    use super::*;

    fn hex(b: u8) -> String {
        format!("{b:02x}").repeat(32)
    }

    fn sample() -> String {
        format!(
            "private_key={}\nlisten_port=51820\nfwmark=4660\n\
             public_key={}\npreshared_key={}\nprotocol_version=1\nendpoint=198.18.0.2:51820\n\
             last_handshake_time_sec=1000\nlast_handshake_time_nsec=5\ntx_bytes=1536\n\
             rx_bytes=100\npersistent_keepalive_interval=25\nallowed_ip=198.19.0.2/32\n\
             allowed_ip=2001:db8:1::2/128\nfuture_key=whatever\n\
             public_key={}\npreshared_key={}\nlast_handshake_time_sec=0\n\
             last_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\n\
             persistent_keepalive_interval=0\nerrno=0\n\n",
            hex(0x18),
            hex(0x11),
            hex(0x22),
            hex(0x33),
            hex(0)
        )
    }

    #[test]
    fn parses_a_full_reply() {
        let r = parse_get_reply(&sample()).unwrap();
        let sk = PrivateKey::from_hex(&hex(0x18)).unwrap();
        assert_eq!(r.public_key, Some(sk.public_key()));
        assert_eq!(r.listen_port, Some(51820));
        assert_eq!(r.fwmark, Some(4660));
        assert_eq!(r.peers.len(), 2);
        let p = &r.peers[0];
        assert_eq!(p.public_key, PublicKey::from_hex(&hex(0x11)).unwrap());
        assert!(p.has_preshared_key);
        assert_eq!(p.endpoint.as_deref(), Some("198.18.0.2:51820"));
        assert_eq!(p.allowed_ips, ["198.19.0.2/32", "2001:db8:1::2/128"]);
        assert_eq!(
            (p.last_handshake_sec, p.last_handshake_nsec),
            (Some(1000), 5)
        );
        assert_eq!((p.rx_bytes, p.tx_bytes), (100, 1536));
        assert_eq!(p.persistent_keepalive, Some(25));
        let q = &r.peers[1];
        assert!(!q.has_preshared_key);
        assert_eq!(q.endpoint, None);
        assert_eq!(q.last_handshake_sec, None);
        assert_eq!(q.persistent_keepalive, None);
        assert!(q.allowed_ips.is_empty());
    }

    #[test]
    fn empty_device_and_stop_at_blank_line() {
        let r = parse_get_reply("errno=0\n\ngarbage").unwrap();
        assert_eq!(r, GetReply::default());
        let r = parse_get_reply(&format!("private_key={}\nerrno=0\n\n", hex(0))).unwrap();
        assert_eq!(r.public_key, None);
    }

    #[test]
    fn errors() {
        let e = parse_get_reply("errno=-19\n\n").unwrap_err().to_string();
        assert!(
            e.contains("errno=-19") && e.contains("No such device"),
            "{e}"
        );
        for bad in [
            "errno=0\n",
            "listen_port=1\n\n",
            "listen_port=70000\nerrno=0\n\n",
            "public_key=xyz\nerrno=0\n\n",
            "nonsense\nerrno=0\n\n",
            "errno=0\nlisten_port=1\n\n",
            "errno=zero\n\n",
        ] {
            assert!(parse_get_reply(bad).is_err(), "{bad:?}");
        }
    }
}
