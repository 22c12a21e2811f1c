//! Writes the seed corpus of every fuzz target under `fuzz/corpus/<target>/`:
//!
//!     cd fuzz && cargo run --example gen_corpus
//!
//! The seeds are valid messages made by the protocol core with the fixed keys, RNG seeds and
//! clock of `wgd_fuzz` (so the targets, which rebuild the same devices, accept them), the
//! shipped configurations from `configs/*.conf`, and typical UAPI requests. Output is
//! deterministic: rerunning rewrites the same files. Files are named by content, so a seed that
//! changed appears as a new file (old ones are not deleted: clear the directory first to drop
//! them).

use std::fs;
use std::path::{Path, PathBuf};
use wgd::proto::Received;
use wgd::proto::cookie::CookieJar;
use wgd::proto::messages::{
    COOKIE_REPLY_LEN, CookieReply, Initiation, RESPONSE_LEN, TYPE_COOKIE_REPLY,
};
use wgd::proto::{Endpoint, TransmitKind};
use wgd::uapi;
use wgd_fuzz::{A_ADDR, Session, chunk, device_b, initiated, start, stranger_initiation, take};

/// Chunk flag: B is under load (responder target).
const UNDER_LOAD: u8 = 1;
/// Chunk flag: keep the fuzzed bytes as they are.
const RAW: u8 = 2;
/// Chunk flag: MACs written by the cookie jar (responder target).
const JAR: u8 = 4;
/// Chunk flag: run the timers first (initiator target).
const TICK: u8 = 8;

struct Out {
    root: PathBuf,
    count: usize,
}

impl Out {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        if let Err(e) = fs::create_dir_all(&dir) {
            panic!("{}: {e}", dir.display());
        }
        let path = dir.join(format!("{name}-{:016x}", fnv1a(bytes)));
        if let Err(e) = fs::write(&path, bytes) {
            panic!("{}: {e}", path.display());
        }
        self.count += 1;
    }
}

/// FNV-1a: a stable content hash for file names (no dependency).
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// B's answers to A's initiation: (response, cookie reply under load).
fn answers(init: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut b, pb) = device_b();
    let mut out = Vec::new();
    let r = b.receive(start(), Endpoint::new(A_ADDR), &mut init.to_vec(), &mut out);
    assert_eq!(r, Ok(Received::Handshake(pb)));
    let resp = take(&out, TransmitKind::Response).expect("response");
    let (mut b, _) = device_b();
    b.note_handshake_queue_len(start().mono, usize::MAX);
    let mut out = Vec::new();
    let r = b.receive(start(), Endpoint::new(A_ADDR), &mut init.to_vec(), &mut out);
    assert_eq!(r, Ok(Received::CookieSent));
    let cookie = take(&out, TransmitKind::CookieReply).expect("cookie reply");
    (resp, cookie)
}

fn messages(o: &mut Out, init: &[u8], resp: &[u8], cookie: &[u8], data: &[Vec<u8>]) {
    o.write("messages", "initiation", init);
    o.write("messages", "response", resp);
    o.write("messages", "cookie-reply", cookie);
    for (i, d) in data.iter().enumerate() {
        o.write("messages", &format!("transport-{i}"), d);
    }
    o.write("messages", "ipv4-packet", &ipv4(&[198, 19, 0, 1], 40));
    o.write("messages", "ipv6-packet", &ipv6(0x0001, 24));
}

/// Checks the premise of the under-load seed: B under load answers A's initiation (MACs by a
/// cookie jar) with a cookie reply, and processes it once the jar holds that cookie.
fn check_cookie_flow(init: &[u8]) {
    let (mut b, pb) = device_b();
    let now = start();
    b.note_handshake_queue_len(now.mono, usize::MAX);
    let mut jar = CookieJar::new(&b.public_key());
    let mut msg = init.to_vec();
    jar.add_macs(now.mono, &mut msg, Initiation::MAC1_OFFSET);
    let mut out = Vec::new();
    let r = b.receive(now, Endpoint::new(A_ADDR), &mut msg, &mut out);
    assert_eq!(r, Ok(Received::CookieSent));
    let reply = take(&out, TransmitKind::CookieReply).expect("cookie reply");
    let reply = CookieReply::parse(&reply).expect("cookie reply parses");
    jar.consume_reply(now.mono, &reply)
        .expect("cookie accepted");
    let mut msg = init.to_vec();
    jar.add_macs(now.mono, &mut msg, Initiation::MAC1_OFFSET);
    let r = b.receive(now, Endpoint::new(A_ADDR), &mut msg, &mut Vec::new());
    assert_eq!(r, Ok(Received::Handshake(pb)));
}

fn responder(o: &mut Out, init: &[u8], resp: &[u8]) {
    check_cookie_flow(init);
    o.write("responder", "initiation", &chunk(0, init));
    o.write("responder", "initiation-raw-mac1", &chunk(RAW, init));
    o.write(
        "responder",
        "initiation-replayed",
        &cat(&[chunk(0, init), chunk(0x30, init)]),
    );
    // Under load: the first try earns a cookie, the second carries MAC2 and is processed.
    o.write(
        "responder",
        "under-load-cookie-then-mac2",
        &cat(&[chunk(UNDER_LOAD | JAR, init), chunk(UNDER_LOAD | JAR, init)]),
    );
    o.write(
        "responder",
        "under-load-no-cookie",
        &chunk(UNDER_LOAD, init),
    );
    o.write("responder", "stranger", &chunk(0, &stranger_initiation()));
    o.write("responder", "response", &chunk(0, resp));
    let mut short = init.to_vec();
    short.truncate(100);
    o.write("responder", "truncated", &chunk(0, &short));
}

fn initiator(o: &mut Out, resp: &[u8], cookie: &[u8]) {
    assert_eq!(resp.len(), RESPONSE_LEN);
    assert_eq!(cookie.len(), COOKIE_REPLY_LEN);
    assert_eq!(
        u32::from_le_bytes([cookie[0], cookie[1], cookie[2], cookie[3]]),
        TYPE_COOKIE_REPLY
    );
    o.write("initiator", "response", &chunk(0, resp));
    o.write("initiator", "response-raw", &chunk(RAW, resp));
    o.write("initiator", "cookie-reply", &chunk(0, cookie));
    o.write(
        "initiator",
        "cookie-then-response",
        &cat(&[chunk(0, cookie), chunk(0, resp)]),
    );
    o.write(
        "initiator",
        "retry-then-response",
        &cat(&[chunk(0x50 | TICK, &[]), chunk(0, resp)]),
    );
    o.write(
        "initiator",
        "response-twice",
        &cat(&[chunk(0, resp), chunk(0, resp)]),
    );
}

/// An IPv4 header (+ zero payload) of `len` bytes from `src` to 198.19.0.2.
fn ipv4(src: &[u8; 4], len: u16) -> Vec<u8> {
    let mut p = vec![0u8; usize::from(len)];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(src);
    p[16..20].copy_from_slice(&[198, 19, 0, 2]);
    p
}

/// An IPv6 header + `payload` zero bytes from 2001:db8:<net>::1 to 2001:db8:1::2.
fn ipv6(net: u16, payload: u16) -> Vec<u8> {
    let mut p = vec![0u8; 40 + usize::from(payload)];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&payload.to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..12].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    p[12..14].copy_from_slice(&net.to_be_bytes());
    p[23] = 1;
    p[24..28].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    p[29] = 1;
    p[39] = 2;
    p
}

/// Transport seeds; returns some sealed datagrams for the messages target.
fn transport(o: &mut Out) -> Vec<Vec<u8>> {
    let inside = ipv4(&[198, 19, 0, 1], 60);
    let outside = ipv4(&[198, 18, 7, 7], 28);
    let v6 = ipv6(0x0001, 16);
    let mut counter = 5u64.to_le_bytes().to_vec();
    counter.extend_from_slice(&inside[8..]);
    // Sealed mode (mode byte 1).
    let sealed = |chunks: &[Vec<u8>]| cat(&[vec![1u8], cat(chunks)]);
    o.write("transport", "sealed-ipv4", &sealed(&[chunk(0, &inside)]));
    o.write(
        "transport",
        "sealed-ipv4-outside",
        &sealed(&[chunk(0, &outside)]),
    );
    o.write("transport", "sealed-ipv6", &sealed(&[chunk(0, &v6)]));
    o.write("transport", "sealed-keepalive", &sealed(&[chunk(0, &[])]));
    o.write("transport", "sealed-replay", &sealed(&[chunk(1, &inside)]));
    o.write(
        "transport",
        "sealed-tampered",
        &sealed(&[chunk(8 | 3, &inside)]),
    );
    o.write(
        "transport",
        "sealed-counter",
        &sealed(&[chunk(4, &counter)]),
    );
    o.write(
        "transport",
        "sealed-late",
        &sealed(&[chunk(0, &inside), chunk(0xf0, &v6), chunk(0xf0, &inside)]),
    );
    o.write(
        "transport",
        "sealed-garbage",
        &sealed(&[chunk(0, &[0x45; 24])]),
    );
    // Raw mode (mode byte 0): datagrams A really sealed, in a fresh session each.
    let mut s = Session::new();
    let now = s.now;
    let d1 = s.seal_a(now, &inside).expect("sealed");
    let d2 = s.seal_a(now, &[]).expect("sealed keepalive");
    let d3 = s.seal_a(now, &v6).expect("sealed");
    let raw = |chunks: &[Vec<u8>]| cat(&[vec![0u8], cat(chunks)]);
    o.write("transport", "raw-data", &raw(&[chunk(RAW, &d1)]));
    o.write(
        "transport",
        "raw-three",
        &raw(&[chunk(0, &d1), chunk(0, &d2), chunk(0, &d3)]),
    );
    o.write(
        "transport",
        "raw-short",
        &raw(&[chunk(0, &[4, 0, 0, 0, 1, 2, 3, 4])]),
    );
    vec![d1, d2]
}

fn config(o: &mut Out, repo: &Path) {
    let mut names: Vec<PathBuf> = fs::read_dir(repo.join("configs"))
        .expect("configs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
        .collect();
    names.sort();
    for p in names {
        let text = fs::read(&p).expect("read config");
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("conf");
        o.write("config", stem, &text);
    }
    o.write(
        "config",
        "wg-minimal",
        b"[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\n[Peer]\n\
PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 198.19.0.0/16, 2001:db8::/32\n\
Endpoint = [2001:db8::1]:51820\nPersistentKeepalive = 25\n",
    );
    o.write(
        "config",
        "wg-quick-keys",
        b"[Interface]\nAddress = 198.19.0.1/24\nDNS = 198.18.0.53, example.test\nMTU = 1380\n\
Table = off\nPreUp = true\nPostDown = echo down # comment\nSaveConfig = true\nFwMark = 0x51\n\
ListenPort = 0\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
PresharedKey = SoxYjILqxh+E6a0lewj8TZS3Hzct2yS0GL7KiSwSLDc=\nEndpoint = host.example.test:51820\n",
    );
}

fn uapi_seeds(o: &mut Out, repo: &Path) {
    o.write("uapi", "get", b"get=1\n\n");
    let a = wgd_fuzz::key_a();
    let b = wgd_fuzz::key_b();
    let set = format!(
        "set=1\nprivate_key={}\nlisten_port=51820\nfwmark=0\nreplace_peers=true\n\
public_key={}\npreshared_key={}\nendpoint=198.18.0.1:51820\n\
persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=198.19.0.0/16\n\
allowed_ip=2001:db8:1::/48\n\n",
        b.to_hex().as_str(),
        a.public_key().to_hex(),
        wgd_fuzz::psk().to_hex().as_str(),
    );
    o.write("uapi", "set-full", set.as_bytes());
    let update = format!(
        "set=1\npublic_key={}\nupdate_only=true\nendpoint=[2001:db8::1]:51820\n\
allowed_ip=-198.19.0.0/16\nallowed_ip=198.19.7.0/24\n\n",
        a.public_key().to_hex()
    );
    o.write("uapi", "set-update", update.as_bytes());
    let remove = format!(
        "set=1\npublic_key={}\nremove=true\n\n",
        a.public_key().to_hex()
    );
    o.write("uapi", "set-remove", remove.as_bytes());
    let own = format!(
        "set=1\nprivate_key={}\npublic_key={}\nallowed_ip=198.19.0.0/16\n\n",
        a.to_hex().as_str(),
        b.public_key().to_hex()
    );
    o.write("uapi", "set-own-key", own.as_bytes());
    o.write(
        "uapi",
        "set-zero-key",
        format!("set=1\nprivate_key={}\n\n", "0".repeat(64)).as_bytes(),
    );
    // What `wg setconf` sends for the shipped configuration.
    if let Ok(cfg) = wgd::conf::Config::from_file(repo.join("configs/wgd-a.conf")) {
        let req = uapi::set_request_from_config(&cfg, true);
        o.write("uapi", "setconf-wgd-a", req.to_request_text().as_bytes());
    }
}

fn main() {
    let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = fuzz_dir.parent().expect("fuzz/ has a parent");
    let mut o = Out {
        root: fuzz_dir.join("corpus"),
        count: 0,
    };
    let (_a, _pa, init) = initiated();
    assert!(Initiation::parse(&init).is_ok());
    let (resp, cookie) = answers(&init);
    let data = transport(&mut o);
    messages(&mut o, &init, &resp, &cookie, &data);
    responder(&mut o, &init, &resp);
    initiator(&mut o, &resp, &cookie);
    config(&mut o, repo);
    uapi_seeds(&mut o, repo);
    println!("wrote {} seeds under {}", o.count, o.root.display());
}
