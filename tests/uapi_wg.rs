//! The stock `wg` and `wg-quick` drive wgd over its UAPI socket (`/var/run/wireguard/IFACE.sock`),
//! as they drive wireguard-go:
//!
//! - `wg setconf`, `wg show` (pretty and `dump`), `wg set ... remove`, `wg set ... allowed-ips`,
//!   `wg syncconf` and `wg showconf` against `wgd -f IFACE`, with a wireguard-go peer for traffic;
//! - the same configuration and the same `wg` commands applied to wireguard-go and to wgd side by
//!   side, their `wg show dump` (and raw `get=1`) compared field by field;
//! - `WG_QUICK_USERSPACE_IMPLEMENTATION=wgd wg-quick up FILE` / `down FILE`;
//! - bad requests on the socket (each answered with a negative errno or a closed connection,
//!   the configuration unchanged) and non-root clients refused.
//!
//! Needs root, `wg`, `wireguard-go`, `ip`, `ping` (and `wg-quick` for its test); skips (or, with
//! CI=true, fails) without them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::netns::{
    Impl, NETNS_RUN_DIR, Netns, StockPeer, WG_RUN_DIR, impl_or_skip, privileged_or_skip_with,
    unique_iface, veth, wg_genkey, wgd_uapi_impl,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Gid, Pid, Uid};
use wgd::conf::Config;
use wgd::crypto::keys::PublicKey;

const UNDERLAY_A: [&str; 2] = ["198.18.0.1/24", "2001:db8::1/64"];
const UNDERLAY_B: [&str; 2] = ["198.18.0.2/24", "2001:db8::2/64"];
const MTU: u32 = 1420;
/// The uid/gid `nobody` (65534) the non-root clients drop to.
const NOBODY: u32 = 65534;
/// How long one UAPI exchange may take.
const UAPI_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The wgd implementation under test (`wgd -f IFACE` + `wg setconf`), or `None` (skipped).
fn wgd_or_skip(test: &str) -> Option<Impl> {
    let w = wgd_uapi_impl();
    impl_or_skip(test, &w).then_some(w)
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A temporary directory of our own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wgdt-uapi-{}-{tag}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        TempDir(dir)
    }

    /// Writes `text` to `NAME` (mode 0600) and returns its path as a string.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        let _ = fs::remove_file(&path);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        f.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn socket_of(iface: &str) -> PathBuf {
    Path::new(WG_RUN_DIR).join(format!("{iface}.sock"))
}

fn hex_of(public_b64: &str) -> String {
    public_b64
        .parse::<PublicKey>()
        .unwrap_or_else(|_| panic!("bad public key {public_b64:?}"))
        .to_hex()
}

/// The interface line of `wg show IFACE dump`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DumpIface {
    private_key: String,
    public_key: String,
    listen_port: String,
    fwmark: String,
}

/// One peer line of `wg show IFACE dump`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DumpPeer {
    public_key: String,
    preshared_key: String,
    endpoint: String,
    allowed_ips: Vec<String>,
    latest_handshake: u64,
    rx: u64,
    tx: u64,
    keepalive: String,
}

impl DumpPeer {
    fn allowed_set(&self) -> BTreeSet<String> {
        self.allowed_ips.iter().cloned().collect()
    }
}

/// Parses `wg show IFACE dump` field by field (4 tab-separated fields on the first line, 8 on
/// each peer line); panics on any other shape.
fn parse_dump(text: &str) -> (DumpIface, Vec<DumpPeer>) {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_else(|| panic!("empty dump"));
    let f: Vec<&str> = first.split('\t').collect();
    assert_eq!(f.len(), 4, "interface line of the dump: {first:?}\n{text}");
    let iface = DumpIface {
        private_key: f[0].into(),
        public_key: f[1].into(),
        listen_port: f[2].into(),
        fwmark: f[3].into(),
    };
    let mut peers = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 8, "peer line of the dump: {line:?}\n{text}");
        let num = |s: &str| -> u64 {
            s.parse()
                .unwrap_or_else(|_| panic!("number expected, got {s:?} in {line:?}"))
        };
        peers.push(DumpPeer {
            public_key: f[0].into(),
            preshared_key: f[1].into(),
            endpoint: f[2].into(),
            allowed_ips: if f[3] == "(none)" {
                Vec::new()
            } else {
                f[3].split(',').map(str::to_string).collect()
            },
            latest_handshake: num(f[4]),
            rx: num(f[5]),
            tx: num(f[6]),
            keepalive: f[7].into(),
        });
    }
    (iface, peers)
}

fn peers_by_key(peers: &[DumpPeer]) -> BTreeMap<String, DumpPeer> {
    peers
        .iter()
        .map(|p| (p.public_key.clone(), p.clone()))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `wg show IFACE` (pretty) as one `key -> value` map per blank-line-separated section (the
/// interface first, then one per peer with key `peer`).
fn parse_pretty(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let (k, v) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("`wg show` line without \": \": {line:?}\n{text}"));
        assert!(
            cur.insert(k.to_string(), v.to_string()).is_none(),
            "`wg show` repeats {k:?} in one section:\n{text}"
        );
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    assert!(!out.is_empty(), "empty `wg show` output");
    out
}

/// `wg show IFACE dump` of `peer`, parsed.
fn dump(peer: &StockPeer) -> (DumpIface, BTreeMap<String, DumpPeer>, String) {
    let text = peer.wg(&["show", &peer.iface, "dump"]);
    let (iface, peers) = parse_dump(&text);
    (iface, peers_by_key(&peers), text)
}

/// Reads one UAPI reply (through `errno=N\n\n`) or until EOF; EOF, a reset or a timeout end
/// the read with what arrived.
fn read_reply(stream: &mut UnixStream, until_eof: bool) -> Vec<u8> {
    let deadline = Instant::now() + UAPI_TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if !until_eof && reply_complete(&got) {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    got
}

/// True once `buf` holds a whole reply (ends with an `errno=N` line and a blank line).
fn reply_complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    text.ends_with("\n\n")
        && text
            .trim_end_matches('\n')
            .rsplit('\n')
            .next()
            .is_some_and(|l| l.starts_with("errno="))
}

/// Sends `request` on a fresh connection to `socket` (then shuts down the write side if
/// `close_write`) and returns the first reply (or everything up to EOF if `close_write`).
fn uapi_exchange(socket: &Path, request: &[u8], close_write: bool) -> io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(UAPI_TIMEOUT))?;
    s.set_write_timeout(Some(UAPI_TIMEOUT))?;
    s.write_all(request)?;
    if close_write {
        s.shutdown(Shutdown::Write)?;
    }
    Ok(read_reply(&mut s, close_write))
}

/// `get=1` over the socket; panics unless the reply ends with `errno=0`.
fn uapi_get(socket: &Path) -> String {
    let reply = uapi_exchange(socket, b"get=1\n\n", false)
        .unwrap_or_else(|e| panic!("get=1 on {}: {e}", socket.display()));
    let text = String::from_utf8(reply).expect("get reply is UTF-8");
    assert!(
        text.ends_with("errno=0\n\n"),
        "get=1 on {} did not end with errno=0:\n{text}",
        socket.display()
    );
    text
}

/// `(last_handshake_time_sec, last_handshake_time_nsec, rx_bytes, tx_bytes)` of the peer
/// `public_hex` in a raw `get=1` reply.
fn raw_peer_times(get: &str, public_hex: &str) -> (u64, u64, u64, u64) {
    let mut inside = false;
    let (mut sec, mut nsec, mut rx, mut tx) = (None, None, None, None);
    for line in get.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k == "public_key" {
            inside = v == public_hex;
            continue;
        }
        if !inside {
            continue;
        }
        let n = v.parse::<u64>().ok();
        match k {
            "last_handshake_time_sec" => sec = n,
            "last_handshake_time_nsec" => nsec = n,
            "rx_bytes" => rx = n,
            "tx_bytes" => tx = n,
            _ => {}
        }
    }
    match (sec, nsec, rx, tx) {
        (Some(a), Some(b), Some(c), Some(d)) => (a, b, c, d),
        _ => panic!("peer {public_hex} incomplete in get reply:\n{get}"),
    }
}

/// Every `errno=N` in `reply` (one per request answered); panics if anything else is there.
fn errnos(reply: &[u8]) -> Vec<i64> {
    let text = String::from_utf8_lossy(reply);
    let mut out = Vec::new();
    for part in text.split_terminator("\n\n") {
        let n = part
            .strip_prefix("errno=")
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("reply is not a lone errno=N line: {part:?} in {text:?}"));
        out.push(n);
    }
    out
}

/// A deterministic generator for garbage (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 56) as u8).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// 1. wg setconf / show / set / syncconf against wgd, with traffic from a wireguard-go peer
// ---------------------------------------------------------------------------------------------

#[test]
fn wg_setconf_show_set_syncconf_drive_wgd() {
    let test = "wg_setconf_show_set_syncconf_drive_wgd";
    let Some(wgd_impl) = wgd_or_skip(test) else {
        return;
    };
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &UNDERLAY_A, &b, &UNDERLAY_B);
    let dir = TempDir::new("show");

    let (priv_a, pub_a) = wg_genkey();
    let (priv_b, pub_b) = wg_genkey();
    let (_, pub_c) = wg_genkey();
    let (_, pub_d) = wg_genkey();
    let (_, pub_e) = wg_genkey();
    let psk = host_genpsk();
    let psk_e = host_genpsk();
    let conf_b = format!(
        "[Interface]\nPrivateKey = {priv_b}\nListenPort = 51820\n\n\
         [Peer]\nPublicKey = {pub_a}\nPresharedKey = {psk}\n\
         AllowedIPs = 198.19.0.1/32, 2001:db8:1::1/128\n"
    );
    let conf_a = format!(
        "[Interface]\nPrivateKey = {priv_a}\nListenPort = 51821\nFwMark = 0x2a\n\n\
         [Peer]\nPublicKey = {pub_b}\nPresharedKey = {psk}\nEndpoint = 198.18.0.2:51820\n\
         AllowedIPs = 2001:db8:1::2/128, 198.19.0.2/32\nPersistentKeepalive = 25\n\n\
         [Peer]\nPublicKey = {pub_c}\nEndpoint = [2001:db8::99]:51830\n\
         AllowedIPs = 198.19.10.0/24, 2001:db8:10::/48\n\n\
         [Peer]\nPublicKey = {pub_d}\nAllowedIPs = 198.19.20.0/24\n"
    );
    // Responder first; both are our children, stopped (by PID) before the namespaces go.
    let go = StockPeer::wireguard_go(
        &b,
        &unique_iface("ub"),
        &conf_b,
        &["198.19.0.2/24", "2001:db8:1::2/64"],
        MTU,
    );
    let t0 = now_unix();
    let mut w = StockPeer::start(
        &wgd_impl,
        &a,
        &unique_iface("ua"),
        &conf_a,
        &["198.19.0.1/24", "2001:db8:1::1/64"],
        MTU,
    );
    let iface = w.iface.clone();

    assert!(
        a.wait_ping("198.19.0.2", Duration::from_secs(12)),
        "no ping reply through the wgd <-> wireguard-go tunnel"
    );
    a.ping("198.19.0.2", 3);
    a.ping("2001:db8:1::2", 3);
    b.ping("198.19.0.1", 3);
    b.ping("2001:db8:1::1", 3);
    w.assert_running();

    // --- wg show IFACE (pretty) -------------------------------------------------------------
    let show = w.wg(&["show", &iface]);
    eprintln!("wg show {iface}:\n{show}");
    let sections = parse_pretty(&show);
    let iface_sec = &sections[0];
    for (k, v) in [
        ("interface", iface.as_str()),
        ("public key", pub_a.as_str()),
        ("private key", "(hidden)"),
        ("listening port", "51821"),
        ("fwmark", "0x2a"),
    ] {
        assert_eq!(
            iface_sec.get(k).map(String::as_str),
            Some(v),
            "{k}:\n{show}"
        );
    }
    let peer_sec = |key: &str| {
        sections
            .iter()
            .find(|s| s.get("peer").map(String::as_str) == Some(key))
            .unwrap_or_else(|| panic!("`wg show` has no section for peer {key}:\n{show}"))
    };
    let allowed = |sec: &BTreeMap<String, String>| -> BTreeSet<String> {
        sec.get("allowed ips")
            .map(|v| v.split(", ").map(str::to_string).collect())
            .unwrap_or_default()
    };
    let sb = peer_sec(&pub_b);
    assert_eq!(
        sb.get("preshared key").map(String::as_str),
        Some("(hidden)")
    );
    assert_eq!(
        sb.get("endpoint").map(String::as_str),
        Some("198.18.0.2:51820")
    );
    assert_eq!(allowed(sb), set(&["198.19.0.2/32", "2001:db8:1::2/128"]));
    assert_eq!(
        sb.get("persistent keepalive").map(String::as_str),
        Some("every 25 seconds")
    );
    let hs = sb.get("latest handshake").cloned().unwrap_or_default();
    assert!(
        (hs.ends_with("seconds ago") || hs.ends_with("second ago") || hs == "Now")
            && !hs.contains("year")
            && !hs.contains("minute"),
        "latest handshake should be seconds ago: {hs:?}\n{show}"
    );
    let transfer = sb.get("transfer").cloned().unwrap_or_default();
    assert!(
        transfer.contains(" received, ") && transfer.ends_with(" sent"),
        "transfer: {transfer:?}\n{show}"
    );
    let sc = peer_sec(&pub_c);
    assert_eq!(
        sc.get("endpoint").map(String::as_str),
        Some("[2001:db8::99]:51830")
    );
    assert_eq!(allowed(sc), set(&["198.19.10.0/24", "2001:db8:10::/48"]));
    for k in [
        "preshared key",
        "latest handshake",
        "transfer",
        "persistent keepalive",
    ] {
        assert!(
            !sc.contains_key(k),
            "peer C should have no {k:?} line:\n{show}"
        );
    }
    let sd = peer_sec(&pub_d);
    assert_eq!(allowed(sd), set(&["198.19.20.0/24"]));
    assert!(!sd.contains_key("endpoint"), "{show}");
    // Peer sections: the one with a handshake comes first (wg sorts by latest handshake).
    let first_peer = show.lines().find(|l| l.starts_with("peer: "));
    assert_eq!(
        first_peer,
        Some(format!("peer: {pub_b}").as_str()),
        "{show}"
    );

    // --- wg show IFACE dump, field by field ----------------------------------------------------
    let (di, peers, text) = dump(&w);
    eprintln!("wg show {iface} dump:\n{text}");
    let t1 = now_unix();
    assert_eq!(
        di,
        DumpIface {
            private_key: priv_a.clone(),
            public_key: pub_a.clone(),
            listen_port: "51821".into(),
            fwmark: "0x2a".into(),
        }
    );
    assert_eq!(
        peers.keys().cloned().collect::<BTreeSet<_>>(),
        set(&[&pub_b, &pub_c, &pub_d])
    );
    let pb = &peers[&pub_b];
    assert_eq!(pb.preshared_key, psk);
    assert_eq!(pb.endpoint, "198.18.0.2:51820");
    assert_eq!(
        pb.allowed_set(),
        set(&["198.19.0.2/32", "2001:db8:1::2/128"])
    );
    assert!(
        (t0..=t1).contains(&pb.latest_handshake),
        "latest handshake {} not within [{t0}, {t1}] (Unix time expected)",
        pb.latest_handshake
    );
    // 4 pings of 84/104-byte packets each way at least, plus the handshake.
    assert!(
        pb.rx > 500 && pb.tx > 500,
        "transfer rx={} tx={}",
        pb.rx,
        pb.tx
    );
    assert_eq!(pb.keepalive, "25");
    let pc = &peers[&pub_c];
    assert_eq!(pc.preshared_key, "(none)");
    assert_eq!(pc.endpoint, "[2001:db8::99]:51830");
    assert_eq!(
        pc.allowed_set(),
        set(&["198.19.10.0/24", "2001:db8:10::/48"])
    );
    assert_eq!((pc.latest_handshake, pc.rx), (0, 0));
    assert_eq!(pc.keepalive, "off");
    let pd = &peers[&pub_d];
    assert_eq!(
        (
            pd.preshared_key.as_str(),
            pd.endpoint.as_str(),
            pd.keepalive.as_str()
        ),
        ("(none)", "(none)", "off")
    );
    assert_eq!(pd.allowed_ips, vec!["198.19.20.0/24".to_string()]);
    assert_eq!((pd.latest_handshake, pd.rx, pd.tx), (0, 0, 0));

    // The counters agree with wireguard-go's view of the same session (read back to back; a
    // keepalive may slip in between, so retry a few times).
    let mut agreed = None;
    for _ in 0..5 {
        let ours = &dump(&w).1[&pub_b];
        let theirs = &dump(&go).1[&pub_a];
        if ours.rx == theirs.tx && ours.tx == theirs.rx {
            agreed = Some((ours.rx, ours.tx));
            break;
        }
        eprintln!(
            "transfer mismatch: wgd rx={} tx={}, wireguard-go rx={} tx={}",
            ours.rx, ours.tx, theirs.rx, theirs.tx
        );
        thread::sleep(Duration::from_millis(300));
    }
    let (rx, tx) = agreed.expect("wgd's transfer counters never matched wireguard-go's");
    eprintln!("transfer: wgd rx={rx} tx={tx} == wireguard-go tx/rx");

    // --- the fwmark and port are on wgd's UDP sockets (ss shows SO_MARK) ------------------------
    assert_sockets(&a, 51821, Some("0x2a"));
    w.wg(&["set", &iface, "fwmark", "0x2b"]);
    assert_eq!(dump(&w).0.fwmark, "0x2b");
    assert_sockets(&a, 51821, Some("0x2b"));
    w.wg(&["set", &iface, "fwmark", "off"]);
    assert_eq!(dump(&w).0.fwmark, "off");
    assert_sockets(&a, 51821, None);
    // (syncconf below sets it back to 0x2a)

    // --- wg set IFACE peer X remove --------------------------------------------------------
    w.wg(&["set", &iface, "peer", &pub_d, "remove"]);
    let peers = dump(&w).1;
    assert_eq!(
        peers.keys().cloned().collect::<BTreeSet<_>>(),
        set(&[&pub_b, &pub_c]),
        "after removing D"
    );

    // --- wg set IFACE peer X allowed-ips ... (replaces the list) ---------------------------
    w.wg(&[
        "set",
        &iface,
        "peer",
        &pub_c,
        "allowed-ips",
        "198.19.11.0/24,2001:db8:11::/48",
    ]);
    w.wg(&[
        "set",
        &iface,
        "peer",
        &pub_b,
        "allowed-ips",
        "198.19.0.2/32,2001:db8:1::2/128,198.19.30.0/24",
    ]);
    let peers = dump(&w).1;
    assert_eq!(
        peers[&pub_c].allowed_set(),
        set(&["198.19.11.0/24", "2001:db8:11::/48"])
    );
    assert_eq!(
        peers[&pub_b].allowed_set(),
        set(&["198.19.0.2/32", "2001:db8:1::2/128", "198.19.30.0/24"])
    );
    // `wg set` can also create a peer (D again, for syncconf to remove).
    w.wg(&[
        "set",
        &iface,
        "peer",
        &pub_d,
        "allowed-ips",
        "198.19.20.0/24",
    ]);
    assert!(dump(&w).1.contains_key(&pub_d));
    a.ping("198.19.0.2", 2);

    // --- wg syncconf: B unchanged, C changed, D removed, E added -------------------------------
    let socket = socket_of(&iface);
    let before = raw_peer_times(&uapi_get(&socket), &hex_of(&pub_b));
    let sync = format!(
        "[Interface]\nPrivateKey = {priv_a}\nListenPort = 51821\nFwMark = 0x2a\n\n\
         [Peer]\nPublicKey = {pub_b}\nPresharedKey = {psk}\nEndpoint = 198.18.0.2:51820\n\
         AllowedIPs = 198.19.0.2/32, 2001:db8:1::2/128, 198.19.30.0/24\n\
         PersistentKeepalive = 25\n\n\
         [Peer]\nPublicKey = {pub_c}\nEndpoint = [2001:db8::98]:51831\n\
         AllowedIPs = 198.19.12.0/24\nPersistentKeepalive = 15\n\n\
         [Peer]\nPublicKey = {pub_e}\nPresharedKey = {psk_e}\nAllowedIPs = 198.19.40.0/24\n"
    );
    let sync_path = dir.file("sync.conf", &sync);
    w.wg(&["syncconf", &iface, &sync_path]);
    let (di, peers, text) = dump(&w);
    eprintln!("after syncconf:\n{text}");
    assert_eq!(di.listen_port, "51821");
    assert_eq!(di.fwmark, "0x2a");
    assert_eq!(
        peers.keys().cloned().collect::<BTreeSet<_>>(),
        set(&[&pub_b, &pub_c, &pub_e]),
        "syncconf must leave exactly B, C, E"
    );
    let pc = &peers[&pub_c];
    assert_eq!(pc.endpoint, "[2001:db8::98]:51831");
    assert_eq!(pc.allowed_ips, vec!["198.19.12.0/24".to_string()]);
    assert_eq!(pc.keepalive, "15");
    let pe = &peers[&pub_e];
    assert_eq!(pe.preshared_key, psk_e);
    assert_eq!(pe.allowed_ips, vec!["198.19.40.0/24".to_string()]);
    assert_eq!(
        (pe.endpoint.as_str(), pe.keepalive.as_str()),
        ("(none)", "off")
    );
    let pb = &peers[&pub_b];
    assert_eq!(pb.preshared_key, psk);
    assert_eq!(pb.keepalive, "25");
    // The unchanged peer keeps its session: same handshake time (to the nanosecond), counters
    // not reset, and traffic flows on without a new handshake.
    let after = raw_peer_times(&uapi_get(&socket), &hex_of(&pub_b));
    assert_eq!(
        (after.0, after.1),
        (before.0, before.1),
        "syncconf re-handshook the unchanged peer"
    );
    assert!(
        after.2 >= before.2 && after.3 >= before.3,
        "syncconf reset the unchanged peer's counters: {before:?} -> {after:?}"
    );
    a.ping("198.19.0.2", 2);
    b.ping("2001:db8:1::1", 2);
    let later = raw_peer_times(&uapi_get(&socket), &hex_of(&pub_b));
    assert_eq!(
        (later.0, later.1),
        (before.0, before.1),
        "traffic after syncconf needed a new handshake: the session was dropped"
    );
    w.assert_running();
    drop(go);
}

/// Checks with `ss -uanep` in `ns` that wgd has exactly its IPv4 and IPv6 UDP sockets on
/// `port`, each with SO_MARK `mark` (`None`: no mark).
fn assert_sockets(ns: &Netns, port: u16, mark: Option<&str>) {
    let out = ns.run(&["ss", "-H", "-uanep"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("\"wgd\"")).collect();
    let on_port: Vec<&&str> = ours
        .iter()
        .filter(|l| l.contains(&format!("0.0.0.0:{port} ")) || l.contains(&format!("[::]:{port} ")))
        .collect();
    assert_eq!(
        (ours.len(), on_port.len()),
        (2, 2),
        "wgd should have two UDP sockets, both on port {port}:\n{text}"
    );
    for l in on_port {
        match mark {
            Some(m) => assert!(
                l.contains(&format!("fwmark:{m} ")),
                "socket without fwmark {m}: {l}"
            ),
            None => assert!(!l.contains("fwmark:"), "socket still marked: {l}"),
        }
    }
}

/// `wg genpsk`, trimmed.
fn host_genpsk() -> String {
    common::netns::host_run("wg", &["genpsk"], None)
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// 1b. wg showconf round-trips
// ---------------------------------------------------------------------------------------------

/// Sorts what the UAPI does not order (peers, AllowedIPs) so two models compare as sets.
fn normalized(mut cfg: Config) -> Config {
    for p in &mut cfg.peers {
        p.allowed_ips.sort();
    }
    cfg.peers.sort_by_key(|p| p.public_key.to_base64());
    cfg
}

#[test]
fn wg_showconf_round_trips_through_wgd() {
    let test = "wg_showconf_round_trips_through_wgd";
    let Some(wgd_impl) = wgd_or_skip(test) else {
        return;
    };
    let ns = Netns::new();
    let dir = TempDir::new("showconf");
    let (priv_a, _) = wg_genkey();
    let (_, p1) = wg_genkey();
    let (_, p2) = wg_genkey();
    let (_, p3) = wg_genkey();
    let psk = host_genpsk();
    let conf_a = format!(
        "[Interface]\nPrivateKey = {priv_a}\nListenPort = 51822\nFwMark = 0x10\n\n\
         [Peer]\nPublicKey = {p1}\nPresharedKey = {psk}\nEndpoint = 198.18.0.9:51820\n\
         AllowedIPs = 198.19.3.0/24, 2001:db8:3::/64, 198.19.1.1/32\nPersistentKeepalive = 30\n\n\
         [Peer]\nPublicKey = {p2}\nEndpoint = [2001:db8::5]:51820\n\
         AllowedIPs = 2001:db8:2::/48, 198.19.2.0/25\n\n\
         [Peer]\nPublicKey = {p3}\n"
    );
    let w = StockPeer::start(&wgd_impl, &ns, &unique_iface("us"), &conf_a, &[], MTU);
    let shown = w.wg(&["showconf", &w.iface]);
    eprintln!("wg showconf {}:\n{shown}", w.iface);
    let model_a = Config::parse(&conf_a, "A").expect("parsing A");
    let model_b = Config::parse(&shown, "showconf").expect("parsing showconf output");
    assert_eq!(
        model_b.interface.private_key, model_a.interface.private_key,
        "private key did not round-trip"
    );
    let (na, nb) = (normalized(model_a.clone()), normalized(model_b.clone()));
    assert_eq!(
        na, nb,
        "showconf model differs from the setconf model:\n{shown}"
    );
    let keys =
        |c: &Config| -> Vec<String> { c.peers.iter().map(|p| p.public_key.to_base64()).collect() };
    let same_peer_order = keys(&model_a) == keys(&model_b);
    let same_prefix_order = model_a
        .peers
        .iter()
        .zip(&model_b.peers)
        .all(|(x, y)| x.public_key != y.public_key || x.allowed_ips == y.allowed_ips);
    eprintln!(
        "showconf round-trip: models equal (exactly: {}); peer order kept: {same_peer_order}; \
         AllowedIPs order kept: {same_prefix_order} (wgd lists prefixes by address)",
        model_a == model_b
    );
    // Feeding showconf back is a fixed point.
    let again = dir.file("again.conf", &shown);
    w.wg(&["setconf", &w.iface, &again]);
    let shown2 = w.wg(&["showconf", &w.iface]);
    assert_eq!(
        shown2, shown,
        "setconf(showconf) then showconf changed the text"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Side by side with wireguard-go
// ---------------------------------------------------------------------------------------------

/// Compares two dumps field by field, except the interface name and the transient counters
/// (rx/tx); AllowedIPs as ordered lists, falling back to sets (noted in `notes`).
fn compare_dumps(step: &str, go: &str, wgd: &str, notes: &mut Vec<String>) {
    let (gi, gp) = parse_dump(go);
    let (wi, wp) = parse_dump(wgd);
    let ctx = || format!("step {step}\n--- wireguard-go ---\n{go}--- wgd ---\n{wgd}");
    assert_eq!(gi, wi, "interface line differs, {}", ctx());
    let gk: Vec<&str> = gp.iter().map(|p| p.public_key.as_str()).collect();
    let wk: Vec<&str> = wp.iter().map(|p| p.public_key.as_str()).collect();
    if gk != wk {
        notes.push(format!(
            "{step}: peer order differs (go {gk:?}, wgd {wk:?})"
        ));
    }
    let (gm, wm) = (peers_by_key(&gp), peers_by_key(&wp));
    assert_eq!(
        gm.keys().collect::<Vec<_>>(),
        wm.keys().collect::<Vec<_>>(),
        "peer sets differ, {}",
        ctx()
    );
    for (key, g) in &gm {
        let w = &wm[key];
        assert_eq!(g.preshared_key, w.preshared_key, "psk of {key}, {}", ctx());
        assert_eq!(g.endpoint, w.endpoint, "endpoint of {key}, {}", ctx());
        assert_eq!(g.keepalive, w.keepalive, "keepalive of {key}, {}", ctx());
        assert_eq!(
            g.latest_handshake,
            w.latest_handshake,
            "latest handshake of {key}, {}",
            ctx()
        );
        if g.allowed_ips != w.allowed_ips {
            assert_eq!(
                g.allowed_set(),
                w.allowed_set(),
                "allowed ips of {key} differ as sets, {}",
                ctx()
            );
            notes.push(format!(
                "{step}: allowed-ips order of {key}: go {:?}, wgd {:?}",
                g.allowed_ips, w.allowed_ips
            ));
        }
        if (g.rx, g.tx) != (w.rx, w.tx) {
            notes.push(format!(
                "{step}: transfer of {key} (not compared): go rx={} tx={}, wgd rx={} tx={}",
                g.rx, g.tx, w.rx, w.tx
            ));
        }
    }
}

/// Raw `get=1` replies compared as one multiset of lines per section (interface, then each
/// peer by public key), leaving out the transient counters and the final `errno=0`; the order
/// of the keys within each section is compared too (a difference is only noted: `wg` does not
/// depend on it).
fn compare_raw_gets(step: &str, go: &str, wgd: &str, notes: &mut Vec<String>) {
    fn sections(get: &str) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut current = "interface".to_string();
        for line in get.lines() {
            if let Some(k) = line.strip_prefix("public_key=") {
                current = k.to_string();
            }
            if line.is_empty()
                || [
                    "tx_bytes=",
                    "rx_bytes=",
                    "last_handshake_time_nsec=",
                    "errno=",
                ]
                .iter()
                .any(|p| line.starts_with(p))
            {
                continue;
            }
            out.entry(current.clone())
                .or_default()
                .push(line.to_string());
        }
        out
    }
    let sorted = |m: &BTreeMap<String, Vec<String>>| -> BTreeMap<String, Vec<String>> {
        m.iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                v.sort();
                (k.clone(), v)
            })
            .collect()
    };
    let (g, w) = (sections(go), sections(wgd));
    assert_eq!(
        sorted(&g),
        sorted(&w),
        "raw get=1 replies differ at step {step}\n--- wireguard-go ---\n{go}--- wgd ---\n{wgd}"
    );
    let keys = |lines: &[String]| -> Vec<String> {
        let mut ks: Vec<String> = lines
            .iter()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
            .collect();
        ks.dedup();
        ks
    };
    for (section, lines) in &g {
        let (kg, kw) = (keys(lines), keys(&w[section]));
        if kg != kw {
            notes.push(format!(
                "{step}: raw get key order in section {section}: go {kg:?}, wgd {kw:?}"
            ));
        }
    }
}

#[test]
fn side_by_side_with_wireguard_go() {
    let test = "side_by_side_with_wireguard_go";
    let Some(wgd_impl) = wgd_or_skip(test) else {
        return;
    };
    let ns_go = Netns::new();
    let ns_wgd = Netns::new();
    let dir = TempDir::new("sbs");
    let (priv_a, _) = wg_genkey();
    let (priv_a2, _) = wg_genkey();
    let (_, p1) = wg_genkey();
    let (_, p2) = wg_genkey();
    let (_, p3) = wg_genkey();
    let (_, p4) = wg_genkey();
    let (_, p5) = wg_genkey();
    let psk1 = host_genpsk();
    let psk3 = host_genpsk();
    // AllowedIPs deliberately not in address order, v4 and v6 mixed.
    let conf = format!(
        "[Interface]\nPrivateKey = {priv_a}\nListenPort = 51823\nFwMark = 0x1234\n\n\
         [Peer]\nPublicKey = {p1}\nPresharedKey = {psk1}\nEndpoint = 198.18.5.1:51820\n\
         AllowedIPs = 198.19.9.0/24, 2001:db8:9::/64, 198.19.1.0/24, 2001:db8:1::/64, \
         198.19.5.5/32\n\
         PersistentKeepalive = 25\n\n\
         [Peer]\nPublicKey = {p2}\nEndpoint = [2001:db8:5::2]:51821\n\
         AllowedIPs = 2001:db8:20::/48, 198.19.20.0/24\n\n\
         [Peer]\nPublicKey = {p3}\nPresharedKey = {psk3}\n\
         AllowedIPs = 198.19.31.0/24, 198.19.30.0/24\n\n\
         [Peer]\nPublicKey = {p4}\nAllowedIPs = 198.19.40.0/24\nPersistentKeepalive = 1\n"
    );
    let go = StockPeer::wireguard_go(&ns_go, &unique_iface("sg"), &conf, &[], MTU);
    let w = StockPeer::start(&wgd_impl, &ns_wgd, &unique_iface("sw"), &conf, &[], MTU);
    let mut notes = Vec::new();

    let mut step_no = 0;
    let mut compare = |step: &str, notes: &mut Vec<String>| {
        step_no += 1;
        let step = format!("{step_no} {step}");
        let dg = go.wg(&["show", &go.iface, "dump"]);
        let dw = w.wg(&["show", &w.iface, "dump"]);
        eprintln!("== {step}\n-- wireguard-go:\n{dg}-- wgd:\n{dw}");
        compare_dumps(&step, &dg, &dw, notes);
        compare_raw_gets(
            &step,
            &uapi_get(&socket_of(&go.iface)),
            &uapi_get(&socket_of(&w.iface)),
            notes,
        );
        let cg = Config::parse(&go.wg(&["showconf", &go.iface]), "go").expect("go showconf");
        let cw = Config::parse(&w.wg(&["showconf", &w.iface]), "wgd").expect("wgd showconf");
        assert_eq!(
            normalized(cg),
            normalized(cw),
            "showconf models differ at {step}"
        );
    };
    // Both get every command, in the same order.
    let both = |args: &[&str]| {
        for p in [&go, &w] {
            let mut full = vec![args[0], p.iface.as_str()];
            full.extend_from_slice(&args[1..]);
            p.wg(&full);
        }
    };

    compare("setconf", &mut notes);
    both(&["set", "peer", &p2, "remove"]);
    compare("set peer remove", &mut notes);
    both(&[
        "set",
        "peer",
        &p1,
        "allowed-ips",
        "198.19.5.0/24,2001:db8:5::/64,198.19.1.1/32",
    ]);
    compare("set allowed-ips (replace)", &mut notes);
    // A prefix already owned by p1 moves to p3.
    both(&[
        "set",
        "peer",
        &p3,
        "allowed-ips",
        "198.19.5.0/24,198.19.30.0/24",
    ]);
    compare("set allowed-ips (prefix moves between peers)", &mut notes);
    both(&["set", "listen-port", "51900", "fwmark", "off"]);
    compare("set listen-port fwmark off", &mut notes);
    both(&[
        "set",
        "peer",
        &p1,
        "endpoint",
        "[2001:db8::7]:51820",
        "persistent-keepalive",
        "off",
        "preshared-key",
        "/dev/null",
    ]);
    compare("set endpoint, keepalive off, psk removed", &mut notes);
    both(&["set", "peer", &p4, "allowed-ips", ""]);
    compare("set allowed-ips empty", &mut notes);
    let new_key = dir.file("new.key", &format!("{priv_a2}\n"));
    both(&["set", "private-key", &new_key, "fwmark", "0x99"]);
    compare("set private-key fwmark", &mut notes);
    both(&["set", "private-key", "/dev/null"]);
    compare("set private-key /dev/null (removed)", &mut notes);
    both(&["set", "private-key", &new_key]);
    compare("set private-key again", &mut notes);
    let add = dir.file(
        "add.conf",
        &format!(
            "[Peer]\nPublicKey = {p5}\nAllowedIPs = 198.19.50.0/24\nEndpoint = 198.18.5.5:51820\n\n\
             [Peer]\nPublicKey = {p3}\nAllowedIPs = 2001:db8:30::/48\n"
        ),
    );
    both(&["addconf", &add]);
    compare("addconf (new peer, appended prefix)", &mut notes);
    let sync = dir.file(
        "sync.conf",
        &format!(
            "[Interface]\nPrivateKey = {priv_a2}\nListenPort = 51901\n\n\
             [Peer]\nPublicKey = {p1}\nAllowedIPs = 198.19.1.1/32, 2001:db8:5::/64\n\
             Endpoint = 198.18.5.1:51820\n\n\
             [Peer]\nPublicKey = {p2}\nPresharedKey = {psk1}\nAllowedIPs = 198.19.20.0/24\n\n\
             [Peer]\nPublicKey = {p5}\nAllowedIPs = 198.19.50.0/24\nEndpoint = 198.18.5.5:51820\n"
        ),
    );
    both(&["syncconf", &sync]);
    compare("syncconf", &mut notes);
    both(&["setconf", &dir.file("re.conf", &conf)]);
    compare("setconf again", &mut notes);

    eprintln!("side-by-side notes ({}):", notes.len());
    for n in &notes {
        eprintln!("  {n}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. wg-quick up/down with WG_QUICK_USERSPACE_IMPLEMENTATION=wgd
// ---------------------------------------------------------------------------------------------

/// `(st_dev, st_ino)` of a network namespace file (a handle or /proc/PID/ns/net).
fn ns_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A live (not zombie) process whose argv is exactly `argv`, in network namespace `ns`.
fn find_process(argv: &[&str], ns: &Netns) -> Vec<u32> {
    let want = ns_id(&Path::new(NETNS_RUN_DIR).join(&ns.name));
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if process_matches(pid, argv) && ns_id(&e.path().join("ns/net")) == want {
            found.push(pid);
        }
    }
    found
}

/// True if `pid` is alive (not a zombie) and its argv is exactly `argv`.
fn process_matches(pid: u32, argv: &[&str]) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .collect();
    if args.len() != argv.len() || args.iter().zip(argv).any(|(a, b)| *a != b.as_bytes()) {
        return false;
    }
    // A zombie has exited already (its parent, init, just has not reaped it yet).
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Cleans up after a failed wg-quick test: deletes the link (the daemon then exits by itself)
/// and only if the daemon we launched (found by exact argv and namespace) is still there after
/// a grace period, signals that PID.
struct WgQuickGuard<'a> {
    ns: &'a Netns,
    iface: String,
    argv: Vec<String>,
    pid: Option<u32>,
}

impl Drop for WgQuickGuard<'_> {
    fn drop(&mut self) {
        let link = self
            .ns
            .run_unchecked(&["ip", "link", "show", "dev", &self.iface]);
        if link.status.success() {
            let _ = self
                .ns
                .run_unchecked(&["ip", "link", "del", "dev", &self.iface]);
        }
        let argv: Vec<&str> = self.argv.iter().map(String::as_str).collect();
        if let Some(pid) = self.pid {
            let deadline = Instant::now() + Duration::from_secs(3);
            while process_matches(pid, &argv) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            for sig in [Signal::SIGTERM, Signal::SIGKILL] {
                if !process_matches(pid, &argv) {
                    break;
                }
                eprintln!("wg-quick test cleanup: {sig} to wgd pid {pid}");
                let _ = kill(Pid::from_raw(pid as i32), sig);
                thread::sleep(Duration::from_secs(1));
            }
        }
        let sock = socket_of(&self.iface);
        if sock.exists() && UnixStream::connect(&sock).is_err() {
            let _ = fs::remove_file(&sock);
        }
    }
}

/// Runs `wg-quick ACTION FILE` in `ns` with wgd as the userspace implementation; stdout and
/// stderr (and the detached daemon's stderr) go to `log`. Kills wg-quick (our child, by PID)
/// after 60 s. Returns success and the log so far.
fn wg_quick(ns: &Netns, action: &str, file: &str, wgd: &Path, log: &Path) -> (bool, String) {
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
    let err = out.try_clone().expect("dup log");
    let mut child = ns
        .exec_command(&["wg-quick", action, file])
        .env("WG_QUICK_USERSPACE_IMPLEMENTATION", wgd)
        .env_remove("WG_PROCESS_FOREGROUND")
        .env("RUST_LOG", "wgd=info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawning wg-quick");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("waiting for wg-quick") {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let text = fs::read_to_string(log).unwrap_or_default();
    (status.is_some_and(|s| s.success()), text)
}

#[test]
fn wg_quick_up_down_with_wgd() {
    let test = "wg_quick_up_down_with_wgd";
    if !privileged_or_skip_with(test, &["wg-quick"]) {
        return;
    }
    let Some(Impl::WgdUapi(wgd_path)) = wgd_or_skip(test) else {
        return;
    };
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &UNDERLAY_A, &b, &UNDERLAY_B);
    let dir = TempDir::new("quick");
    let (priv_a, pub_a) = wg_genkey();
    let (priv_b, pub_b) = wg_genkey();
    let quick_mtu = 1380;
    let conf_b = format!(
        "[Interface]\nPrivateKey = {priv_b}\nListenPort = 51820\n\n\
         [Peer]\nPublicKey = {pub_a}\nAllowedIPs = 198.19.0.1/32, 2001:db8:1::1/128\n"
    );
    let go = StockPeer::wireguard_go(
        &b,
        &unique_iface("qb"),
        &conf_b,
        &["198.19.0.2/24", "2001:db8:1::2/64"],
        quick_mtu,
    );
    let iface = unique_iface("qa");
    let file = dir.file(
        &format!("{iface}.conf"),
        &format!(
            "[Interface]\nPrivateKey = {priv_a}\n\
             Address = 198.19.0.1/32, 2001:db8:1::1/128\nMTU = {quick_mtu}\n\n\
             [Peer]\nPublicKey = {pub_b}\nEndpoint = 198.18.0.2:51820\n\
             AllowedIPs = 198.19.0.2/32, 2001:db8:1::2/128\n"
        ),
    );
    let log = dir.0.join("wg-quick.log");
    let wgd_str = wgd_path.to_string_lossy().into_owned();
    let argv = vec![wgd_str.clone(), iface.clone()];
    let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut guard = WgQuickGuard {
        ns: &a,
        iface: iface.clone(),
        argv: argv.clone(),
        pid: None,
    };

    let started = Instant::now();
    let (ok, text) = wg_quick(&a, "up", &file, &wgd_path, &log);
    let up_time = started.elapsed();
    guard.pid = find_process(&argv_ref, &a).first().copied();
    assert!(ok, "wg-quick up failed; log:\n{text}");
    eprintln!("wg-quick up took {up_time:?}; log:\n{text}");
    assert!(
        text.contains(&format!("[#] {wgd_str} {iface}")),
        "wg-quick did not fall back to wgd:\n{text}"
    );
    let pids = find_process(&argv_ref, &a);
    assert_eq!(
        pids.len(),
        1,
        "expected one `{wgd_str} {iface}` process in {}: {pids:?}",
        a.name
    );
    let pid = pids[0];
    guard.pid = Some(pid);
    // Detached: not wg-quick's child any more (re-parented), in its own session.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    eprintln!("wgd daemon pid {pid}; /proc/{pid}/stat: {}", stat.trim());

    // --- addresses, MTU, routes ----------------------------------------------------------------
    let addr =
        String::from_utf8_lossy(&a.ip(&["-o", "addr", "show", "dev", &iface]).stdout).into_owned();
    assert!(addr.contains("inet 198.19.0.1/32"), "ip addr:\n{addr}");
    assert!(addr.contains("inet6 2001:db8:1::1/128"), "ip addr:\n{addr}");
    let link =
        String::from_utf8_lossy(&a.ip(&["-o", "link", "show", "dev", &iface]).stdout).into_owned();
    assert!(
        link.contains(&format!("mtu {quick_mtu} ")),
        "ip link:\n{link}"
    );
    assert!(
        link.contains(",UP") || link.contains("<UP"),
        "ip link:\n{link}"
    );
    let r4 =
        String::from_utf8_lossy(&a.ip(&["-4", "route", "show", "dev", &iface]).stdout).into_owned();
    let r6 =
        String::from_utf8_lossy(&a.ip(&["-6", "route", "show", "dev", &iface]).stdout).into_owned();
    assert!(
        r4.lines().any(|l| l.starts_with("198.19.0.2 ")),
        "ip -4 route:\n{r4}"
    );
    assert!(
        r6.lines().any(|l| l.starts_with("2001:db8:1::2 ")),
        "ip -6 route:\n{r6}"
    );
    eprintln!("ip addr:\n{addr}ip link:\n{link}ip -4 route:\n{r4}ip -6 route:\n{r6}");

    // --- the tunnel works ------------------------------------------------------------------
    assert!(
        a.wait_ping("198.19.0.2", Duration::from_secs(12)),
        "no ping reply through the wg-quick tunnel; log:\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    a.ping("198.19.0.2", 3);
    a.ping("2001:db8:1::2", 3);
    b.ping("198.19.0.1", 3);
    b.ping("2001:db8:1::1", 3);
    // Full-size packets fit the MTU (1380 - 28 = 1352 bytes of ICMP payload).
    let big = a.run(&[
        "ping",
        "-n",
        "-c",
        "2",
        "-W",
        "2",
        "-M",
        "do",
        "-s",
        "1352",
        "198.19.0.2",
    ]);
    assert!(big.status.success());
    let show = String::from_utf8_lossy(&a.run(&["wg", "show", &iface]).stdout).into_owned();
    assert!(show.contains("latest handshake: "), "wg show:\n{show}");
    assert!(show.contains(&format!("peer: {pub_b}")), "wg show:\n{show}");
    assert!(go.latest_handshake(&pub_a).is_some());

    // --- wg-quick down: the link goes, the daemon exits by itself ------------------------------
    let (ok, text) = wg_quick(&a, "down", &file, &wgd_path, &log);
    assert!(ok, "wg-quick down failed; log:\n{text}");
    let down_at = Instant::now();
    let mut exited = None;
    while down_at.elapsed() < Duration::from_secs(5) {
        if !process_matches(pid, &argv_ref) {
            exited = Some(down_at.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let exited = exited.unwrap_or_else(|| {
        panic!(
            "wgd (pid {pid}) still running 5 s after wg-quick down; log:\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        )
    });
    eprintln!("wgd exited {exited:?} after wg-quick down");
    assert!(
        !a.run_unchecked(&["ip", "link", "show", "dev", &iface])
            .status
            .success(),
        "{iface} still exists after wg-quick down"
    );
    let sock = socket_of(&iface);
    let deadline = Instant::now() + Duration::from_secs(2);
    while sock.exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(!sock.exists(), "{} left behind", sock.display());
    let log_text = fs::read_to_string(&log).unwrap_or_default();
    eprintln!("wg-quick down log:\n{log_text}");
    assert!(
        !log_text.contains("panicked"),
        "the daemon panicked:\n{log_text}"
    );
    drop(guard);
}

// ---------------------------------------------------------------------------------------------
// 4. Bad input over the socket, non-root clients
// ---------------------------------------------------------------------------------------------

/// What a child that dropped to uid/gid 65534 saw.
#[derive(Debug, PartialEq, Eq)]
enum NobodyOutcome {
    /// connect() failed with this errno.
    ConnectFailed(i32),
    /// Connected, sent get=1, and the server closed without a reply.
    ClosedWithoutReply,
    /// Connected and got reply bytes.
    Replied,
    /// Connected, but nothing happened before the 5 s receive timeout.
    Timeout,
    /// The child could not drop privileges or create a socket.
    Setup(i32),
}

/// Forks a child that drops to uid/gid 65534 (nix `setgid`/`setuid`), connects to `socket`,
/// and if connected sends `get=1` and waits (at most 5 s) for a reply. The child only makes raw
/// system calls (everything it needs is prepared before the fork), so forking from a
/// multi-threaded test process is safe. The parent waits for it (bounded, then kills it by PID).
fn connect_as_nobody(socket: &Path) -> NobodyOutcome {
    let path = CString::new(socket.as_os_str().as_encoded_bytes()).expect("path without NUL");
    // SAFETY: sockaddr_un is plain old data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes_with_nul();
    assert!(bytes.len() <= addr.sun_path.len(), "socket path too long");
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let addr_len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    let request = b"get=1\n\n";
    let timeout = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: the child only calls async-signal-safe functions (setgroups, setgid, setuid,
    // socket, setsockopt, connect, write, read, _exit) on data prepared before the fork.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: see above; `_exit` never returns, so no destructor or atexit runs here.
        unsafe {
            let errno = || *libc::__errno_location();
            if libc::setgroups(0, std::ptr::null()) != 0
                || nix::unistd::setgid(Gid::from_raw(NOBODY)).is_err()
                || nix::unistd::setuid(Uid::from_raw(NOBODY)).is_err()
            {
                libc::_exit(200);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if fd < 0 {
                libc::_exit(201);
            }
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
            if libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), addr_len) != 0 {
                libc::_exit(10 + errno().clamp(0, 150));
            }
            let _ = libc::write(fd, request.as_ptr().cast(), request.len());
            let mut buf = [0u8; 64];
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            libc::_exit(match n {
                0 => 1,
                n if n > 0 => 2,
                _ if errno() == libc::EAGAIN => 3,
                _ if errno() == libc::ECONNRESET => 1,
                _ => 4,
            });
        }
    }
    let child = Pid::from_raw(pid);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => {
                return match code {
                    1 => NobodyOutcome::ClosedWithoutReply,
                    2 => NobodyOutcome::Replied,
                    3 => NobodyOutcome::Timeout,
                    c @ 10..=160 => NobodyOutcome::ConnectFailed(c - 10),
                    c => NobodyOutcome::Setup(c),
                };
            }
            Ok(nix::sys::wait::WaitStatus::StillAlive) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            other => {
                // Ours: kill by PID and reap.
                let _ = kill(child, Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(child, None);
                panic!("the uid-65534 child did not finish: {other:?}");
            }
        }
    }
}

#[test]
fn bad_requests_and_non_root_clients_are_refused() {
    let test = "bad_requests_and_non_root_clients_are_refused";
    let Some(wgd_impl) = wgd_or_skip(test) else {
        return;
    };
    let ns = Netns::new();
    let (priv_a, _) = wg_genkey();
    let (_, p1) = wg_genkey();
    let (_, p2) = wg_genkey();
    let psk = host_genpsk();
    let conf = format!(
        "[Interface]\nPrivateKey = {priv_a}\nListenPort = 51824\nFwMark = 0x5\n\n\
         [Peer]\nPublicKey = {p1}\nPresharedKey = {psk}\nEndpoint = 198.18.0.9:51820\n\
         AllowedIPs = 198.19.0.0/24, 2001:db8:1::/64\n\n\
         [Peer]\nPublicKey = {p2}\nAllowedIPs = 198.19.2.0/24\n"
    );
    let mut w = StockPeer::start(&wgd_impl, &ns, &unique_iface("ux"), &conf, &[], MTU);
    let socket = socket_of(&w.iface);
    let baseline = uapi_get(&socket);
    eprintln!("baseline get=1:\n{baseline}");
    let h1 = hex_of(&p1);

    // (name, request, shut the write side down after sending)
    let mut cases: Vec<(String, Vec<u8>, bool)> = vec![
        (
            "unknown device key".into(),
            b"set=1\nbogus_key=1\n\n".to_vec(),
            false,
        ),
        (
            "unknown peer key".into(),
            format!("set=1\npublic_key={h1}\nbogus=1\n\n").into_bytes(),
            false,
        ),
        (
            "bad hex private key".into(),
            format!("set=1\nprivate_key={}\n\n", "zz".repeat(32)).into_bytes(),
            false,
        ),
        (
            "short hex private key".into(),
            b"set=1\nprivate_key=abcd\n\n".to_vec(),
            false,
        ),
        (
            "non-hex public key".into(),
            format!("set=1\npublic_key={}\n\n", "G".repeat(64)).into_bytes(),
            false,
        ),
        (
            "bad hex preshared key".into(),
            format!("set=1\npublic_key={h1}\npreshared_key=xyz\n\n").into_bytes(),
            false,
        ),
        (
            "truncated line, then EOF".into(),
            b"set=1\nlisten_port=123".to_vec(),
            true,
        ),
        (
            "no final blank line, then EOF".into(),
            b"set=1\nfwmark=7\n".to_vec(),
            true,
        ),
        (
            "line without '='".into(),
            b"set=1\nlisten_port\n\n".to_vec(),
            false,
        ),
        (
            "operation line without '='".into(),
            b"hello\n\n".to_vec(),
            false,
        ),
        ("unknown operation".into(), b"frob=1\n\n".to_vec(), false),
        ("set=2".into(), b"set=2\nfwmark=8\n\n".to_vec(), false),
        ("empty request".into(), b"\n".to_vec(), false),
        (
            "protocol_version=2 (peer)".into(),
            format!("set=1\npublic_key={h1}\nprotocol_version=2\n\n").into_bytes(),
            false,
        ),
        (
            "protocol_version=2 (device)".into(),
            b"set=1\nprotocol_version=2\n\n".to_vec(),
            false,
        ),
        (
            "listen_port out of range".into(),
            b"set=1\nlisten_port=65536\n\n".to_vec(),
            false,
        ),
        (
            "fwmark out of range".into(),
            b"set=1\nfwmark=4294967296\n\n".to_vec(),
            false,
        ),
        (
            "keepalive out of range".into(),
            format!("set=1\npublic_key={h1}\npersistent_keepalive_interval=65536\n\n").into_bytes(),
            false,
        ),
        (
            "allowed_ip /33".into(),
            format!("set=1\npublic_key={h1}\nallowed_ip=198.19.0.0/33\n\n").into_bytes(),
            false,
        ),
        (
            "bad endpoint".into(),
            format!("set=1\npublic_key={h1}\nendpoint=nonsense\n\n").into_bytes(),
            false,
        ),
        (
            "peer key before public_key".into(),
            b"set=1\nendpoint=198.18.0.1:1\n\n".to_vec(),
            false,
        ),
        (
            "NUL in a value".into(),
            b"set=1\nfwmark=\x001\n\n".to_vec(),
            false,
        ),
        (
            "invalid UTF-8".into(),
            b"set=1\nfwmark=\xff\xfe\n\n".to_vec(),
            false,
        ),
        (
            "valid lines then a bad one (atomic: nothing applied)".into(),
            format!(
                "set=1\nfwmark=9\nlisten_port=51999\nreplace_peers=true\npublic_key={h1}\n\
                 allowed_ip=198.19.99.0/24\nbogus=1\n\n"
            )
            .into_bytes(),
            false,
        ),
    ];
    // Over the line limit but under the size limit: MAX_LINES `fwmark=1` lines.
    let mut many = b"set=1\n".to_vec();
    for _ in 0..wgd::uapi::MAX_LINES {
        many.extend_from_slice(b"fwmark=1\n");
    }
    many.push(b'\n');
    assert!(many.len() < wgd::uapi::MAX_REQUEST_LEN);
    cases.push(("MAX_LINES + 2 lines".into(), many, false));
    // One line longer than 64 KiB.
    let mut long = b"set=1\nfwmark=".to_vec();
    long.extend(std::iter::repeat_n(b'1', 70_000));
    long.extend_from_slice(b"\n\n");
    cases.push(("a 70 KB line".into(), long, false));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    cases.push(("1 MB of random garbage".into(), rng.bytes(1_000_000), true));
    let no_newline: Vec<u8> = rng
        .bytes((1 << 20) + 8192)
        .into_iter()
        .map(|b| if b == b'\n' { b'x' } else { b })
        .collect();
    cases.push(("1 MiB + 8 KiB without a newline".into(), no_newline, true));

    let mut summary = Vec::new();
    for (name, request, close_write) in &cases {
        let reply = {
            let mut s =
                UnixStream::connect(&socket).unwrap_or_else(|e| panic!("{name}: connect: {e}"));
            s.set_read_timeout(Some(UAPI_TIMEOUT)).expect("timeout");
            s.set_write_timeout(Some(UAPI_TIMEOUT)).expect("timeout");
            // Big requests: write on another thread while this one reads the replies.
            let mut writer = s.try_clone().expect("clone stream");
            let req = request.clone();
            let close = *close_write;
            let t = thread::spawn(move || {
                let r = writer.write_all(&req);
                if close {
                    let _ = writer.shutdown(Shutdown::Write);
                }
                r
            });
            let reply = read_reply(&mut s, *close_write);
            let wrote = t.join().expect("writer thread");
            if let Err(e) = wrote {
                eprintln!("{name}: write ended early: {e} (server closed)");
            }
            reply
        };
        let codes = errnos(&reply);
        assert!(
            codes.iter().all(|&n| n < 0),
            "{name}: expected a negative errno or a closed connection, got {:?}",
            String::from_utf8_lossy(&reply)
        );
        summary.push(format!(
            "{name}: {}",
            if codes.is_empty() {
                "closed without reply".to_string()
            } else if codes.len() == 1 {
                format!("errno={}", codes[0])
            } else {
                format!(
                    "{} replies, errnos {:?}",
                    codes.len(),
                    codes.iter().collect::<BTreeSet<_>>()
                )
            }
        ));
        w.assert_running();
        let now = uapi_get(&socket);
        assert_eq!(now, baseline, "{name}: the configuration changed");
    }

    // A listen port already taken in the namespace: refused (EADDRINUSE), nothing changes.
    let taken = ns.enter(|| std::net::UdpSocket::bind("0.0.0.0:51825").expect("bind 51825"));
    let reply = uapi_exchange(&socket, b"set=1\nlisten_port=51825\nfwmark=6\n\n", false)
        .expect("listen_port exchange");
    let codes = errnos(&reply);
    summary.push(format!("listen_port already in use: errno={codes:?}"));
    assert_eq!(
        codes,
        vec![-i64::from(libc::EADDRINUSE)],
        "taken listen port"
    );
    let out = ns.run_unchecked(&["wg", "set", &w.iface, "listen-port", "51825"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    summary.push(format!(
        "`wg set listen-port <taken>`: {:?} {}",
        out.status.code(),
        stderr.trim()
    ));
    assert!(
        !out.status.success() && stderr.contains("Address already in use"),
        "{stderr}"
    );
    drop(taken);
    w.assert_running();
    assert_eq!(uapi_get(&socket), baseline, "after the taken listen port");

    // A client that sends a request and goes away without reading the reply.
    {
        let mut s = UnixStream::connect(&socket).expect("connect");
        s.write_all(b"get=1\n\n").expect("write");
    }
    // An idle client does not block the others; two requests on one connection get two replies.
    let idle = UnixStream::connect(&socket).expect("connect idle");
    let t = Instant::now();
    let reply = uapi_exchange(&socket, b"get=1\n\nset=1\n\n", true).expect("pipelined");
    let text = String::from_utf8_lossy(&reply);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "blocked by an idle client"
    );
    assert_eq!(
        text.matches("errno=0\n\n").count(),
        2,
        "two replies expected:\n{text}"
    );
    drop(idle);
    w.assert_running();
    assert_eq!(uapi_get(&socket), baseline);

    // --- non-root clients ------------------------------------------------------------------
    let meta = fs::metadata(&socket).expect("socket metadata");
    let dir_meta = fs::metadata(WG_RUN_DIR).expect("run dir metadata");
    eprintln!(
        "socket mode {:o} uid {}; {WG_RUN_DIR} mode {:o}",
        meta.mode() & 0o7777,
        meta.uid(),
        dir_meta.mode() & 0o7777
    );
    assert_eq!(meta.uid(), 0, "socket must be root-owned");
    assert_eq!(
        meta.mode() & 0o077,
        0,
        "socket must not be accessible to group/others"
    );
    assert_eq!(dir_meta.mode() & 0o7777, 0o755, "{WG_RUN_DIR} mode");

    let outcome = connect_as_nobody(&socket);
    summary.push(format!(
        "uid 65534 connect (socket as created): {outcome:?}"
    ));
    assert_eq!(
        outcome,
        NobodyOutcome::ConnectFailed(libc::EACCES),
        "a uid-65534 client must be refused by the socket's permissions"
    );
    // The stock tool as uid 65534 is refused too, and does not unlink the socket.
    let out = Command::new("wg")
        .args(["show", &w.iface])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("running wg as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    summary.push(format!(
        "`wg show` as uid 65534: {:?} {}",
        out.status.code(),
        stderr.trim()
    ));
    assert!(!out.status.success(), "wg show as nobody succeeded");
    assert!(
        stderr.contains("Permission denied"),
        "wg as nobody: {stderr}"
    );
    assert!(socket.exists(), "the socket was unlinked");

    // With the file opened up to everyone, the daemon's peer-credential check still refuses.
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o777)).expect("chmod");
    let outcome = connect_as_nobody(&socket);
    fs::set_permissions(&socket, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .expect("chmod back");
    summary.push(format!("uid 65534 with the socket chmod 0777: {outcome:?}"));
    assert_eq!(
        outcome,
        NobodyOutcome::ClosedWithoutReply,
        "the daemon must close a non-root connection without a reply"
    );
    w.assert_running();
    assert_eq!(uapi_get(&socket), baseline);

    eprintln!("bad-input results ({} cases):", summary.len());
    for s in &summary {
        eprintln!("  {s}");
    }
}
