//! `wgd show [IFACE] [--json]`: what a running interface is doing, read over its UAPI socket
//! (`get=1`, with [`wgd::uapi::client`]), printed as `wg show` prints it, or as a JSON document
//! for programs. Neither has a secret to print: a [`GetReply`] holds none.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::time::{SystemTime, UNIX_EPOCH};
use wgd::uapi::client::{get_listed, uapi_get};
use wgd::uapi::server::SOCKET_DIR;
use wgd::uapi::{GetReply, PeerInfo};

/// Arguments of `wgd show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The interface (default: every interface with a socket in /var/run/wireguard)
    #[arg(value_name = "IFACE")]
    pub iface: Option<String>,
    /// Print a JSON document instead: {"interfaces": [...]}, keys in base64, numbers as
    /// numbers, never a private or preshared key
    #[arg(long)]
    pub json: bool,
    /// Print the Prometheus text exposition format instead (for node_exporter's textfile
    /// collector or a scrape wrapper): wireguard_sent_bytes_total,
    /// wireguard_received_bytes_total and wireguard_latest_handshake_seconds per peer, as the
    /// common WireGuard exporters name them, and every wgd drop and handshake counter
    /// (wgd_*), per interface and per peer
    #[arg(long, conflicts_with = "json")]
    pub prometheus: bool,
}

/// The interfaces with a socket in [`SOCKET_DIR`], sorted by name (none if the directory does
/// not exist).
fn socket_interfaces() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(SOCKET_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {SOCKET_DIR}")),
    };
    let mut names = Vec::new();
    for entry in dir {
        let entry = entry.with_context(|| format!("listing {SOCKET_DIR}"))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(iface) = name.strip_suffix(".sock") else {
            continue;
        };
        if wgd::conf::check_interface_name(iface).is_err() {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_socket()) {
            names.push(iface.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Runs `wgd show`.
pub fn show(args: ShowArgs) -> Result<()> {
    let mut shown: Vec<(String, GetReply)> = Vec::new();
    let mut failed = 0usize;
    match &args.iface {
        Some(iface) => shown.push((iface.clone(), uapi_get(iface)?)),
        None => {
            // Asked all at once, so that one daemon that does not answer costs one timeout, not
            // one per interface; reported in name order.
            let names = socket_interfaces()?;
            let results: Vec<Option<Result<GetReply>>> = std::thread::scope(|scope| {
                let handles: Vec<_> = names
                    .iter()
                    .map(|iface| {
                        scope.spawn(move || get_listed(iface).map(|r| r.map_err(Into::into)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Some(Err(anyhow::anyhow!("panicked"))))
                    })
                    .collect()
            });
            for (iface, result) in names.into_iter().zip(results) {
                match result {
                    None => {}
                    Some(Ok(r)) => shown.push((iface, r)),
                    Some(Err(e)) => {
                        let _ = writeln!(io::stderr(), "wgd: interface {iface}: {e:#}");
                        failed += 1;
                    }
                }
            }
        }
    }
    // The counters (wgd's own `wgd-stats=1` request); `None` where the daemon does not answer
    // it (wireguard-go), which is not an error.
    let counters: Vec<Option<wgd::uapi::Stats>> = if args.json || args.prometheus {
        shown
            .iter()
            .map(|(iface, _)| wgd::uapi::client::uapi_stats(iface).ok())
            .collect()
    } else {
        Vec::new()
    };
    let text = if args.json {
        format_json(&shown, &counters)
    } else if args.prometheus {
        format_prometheus(&shown, &counters)
    } else {
        let now = unix_now();
        let parts: Vec<String> = shown
            .iter()
            .map(|(name, r)| format_human(name, r, now))
            .collect();
        parts.join("\n")
    };
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // `wgd show | head`: the reader has all it wanted.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        r => r.context("writing to stdout")?,
    }
    if failed > 0 {
        bail!("{failed} interface(s) could not be read");
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------------------------------------
// Human output, as `wg show` (without colours)
// ---------------------------------------------------------------------------------------------

/// `1 minute, 5 seconds` (wg's `pretty_time`); empty for 0.
fn pretty_time(mut left: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (365 * 24 * 3600, "year"),
        (24 * 3600, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut parts = Vec::new();
    for (size, unit) in UNITS {
        let n = left / size;
        left %= size;
        if n > 0 {
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
    }
    parts.join(", ")
}

/// When the latest handshake was, relative to `now` (wg's `ago`).
fn ago(then: u64, now: u64) -> String {
    match now.cmp(&then) {
        std::cmp::Ordering::Equal => "Now".to_owned(),
        std::cmp::Ordering::Less => {
            "(System clock wound backward; connection problems may ensue.)".to_owned()
        }
        std::cmp::Ordering::Greater => format!("{} ago", pretty_time(now - then)),
    }
}

/// A byte count as wg prints it: `512 B`, `1.50 KiB`, `3.25 MiB`, `1.00 GiB`, `2.00 TiB`.
fn bytes(b: u64) -> String {
    const KIB: u64 = 1024;
    let f = b as f64;
    if b < KIB {
        format!("{b} B")
    } else if b < KIB.pow(2) {
        format!("{:.2} KiB", f / 1024.0)
    } else if b < KIB.pow(3) {
        format!("{:.2} MiB", f / 1024f64.powi(2))
    } else if b < KIB.pow(4) {
        format!("{:.2} GiB", f / 1024f64.powi(3))
    } else {
        format!("{:.2} TiB", f / 1024f64.powi(4))
    }
}

/// One interface as `wg show IFACE` prints it; peers with the most recent handshake first.
pub(crate) fn format_human(name: &str, r: &GetReply, now: u64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "interface: {name}");
    if let Some(k) = &r.public_key {
        let _ = writeln!(s, "  public key: {k}");
        s.push_str("  private key: (hidden)\n");
    }
    if let Some(p) = r.listen_port {
        let _ = writeln!(s, "  listening port: {p}");
    }
    if let Some(m) = r.fwmark {
        let _ = writeln!(s, "  fwmark: 0x{m:x}");
    }
    let mut peers: Vec<&PeerInfo> = r.peers.iter().collect();
    peers.sort_by(|a, b| {
        let key = |p: &PeerInfo| (p.last_handshake_sec.unwrap_or(0), p.last_handshake_nsec);
        key(b).cmp(&key(a))
    });
    for p in peers {
        let _ = write!(s, "\npeer: {}\n", p.public_key);
        if p.has_preshared_key {
            s.push_str("  preshared key: (hidden)\n");
        }
        if let Some(e) = &p.endpoint {
            let _ = writeln!(s, "  endpoint: {e}");
        }
        if p.allowed_ips.is_empty() {
            s.push_str("  allowed ips: (none)\n");
        } else {
            let _ = writeln!(s, "  allowed ips: {}", p.allowed_ips.join(", "));
        }
        if let Some(t) = p.last_handshake_sec {
            let _ = writeln!(s, "  latest handshake: {}", ago(t, now));
        }
        if p.rx_bytes != 0 || p.tx_bytes != 0 {
            let _ = writeln!(
                s,
                "  transfer: {} received, {} sent",
                bytes(p.rx_bytes),
                bytes(p.tx_bytes)
            );
        }
        if let Some(k) = p.persistent_keepalive {
            let _ = writeln!(s, "  persistent keepalive: every {}", pretty_time(k.into()));
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// JSON output
// ---------------------------------------------------------------------------------------------

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

/// The document `wgd show --json` prints (pretty-printed, ending with a newline):
///
/// ```text
/// {"interfaces": [{"name", "public_key" (base64 or null), "listen_port" (or null),
///   "fwmark" (or null), "peers": [{"public_key", "has_preshared_key", "endpoint" (or null),
///   "allowed_ips": [...], "latest_handshake" (Unix seconds, or null for never),
///   "rx_bytes", "tx_bytes", "persistent_keepalive" (seconds, or null for off)}]}]}
/// ```
///
/// Interfaces sorted by name, peers in the daemon's order. No private or preshared key.
pub(crate) fn format_json(
    interfaces: &[(String, GetReply)],
    counters: &[Option<wgd::uapi::Stats>],
) -> String {
    let mut s = String::from("{\n  \"interfaces\": [");
    for (i, (name, r)) in interfaces.iter().enumerate() {
        let stats = counters.get(i).and_then(Option::as_ref);
        s.push_str(if i == 0 { "\n" } else { ",\n" });
        let _ = write!(
            s,
            "    {{\n      \"name\": {},\n      \"public_key\": {},\n      \"listen_port\": {},\n      \
             \"fwmark\": {},\n      \"counters\": {},\n      \"peers\": [",
            json_str(name),
            json_opt(r.public_key.map(|k| json_str(&k.to_base64()))),
            json_opt(r.listen_port),
            json_opt(r.fwmark),
            json_counters(stats.map(|st| st.device.as_slice())),
        );
        for (j, p) in r.peers.iter().enumerate() {
            s.push_str(if j == 0 { "\n" } else { ",\n" });
            let ips: Vec<String> = p.allowed_ips.iter().map(|a| json_str(a)).collect();
            let peer_counters = stats.and_then(|st| {
                st.peers
                    .iter()
                    .find(|c| c.public_key == p.public_key)
                    .map(|c| c.counters.as_slice())
            });
            let _ = write!(
                s,
                "        {{\n          \"public_key\": {},\n          \"has_preshared_key\": {},\n          \
                 \"endpoint\": {},\n          \"allowed_ips\": [{}],\n          \
                 \"latest_handshake\": {},\n          \"rx_bytes\": {},\n          \
                 \"tx_bytes\": {},\n          \"persistent_keepalive\": {},\n          \
                 \"counters\": {}\n        }}",
                json_str(&p.public_key.to_base64()),
                p.has_preshared_key,
                json_opt(p.endpoint.as_deref().map(json_str)),
                ips.join(", "),
                json_opt(p.last_handshake_sec),
                p.rx_bytes,
                p.tx_bytes,
                json_opt(p.persistent_keepalive),
                json_counters(peer_counters),
            );
        }
        s.push_str(if r.peers.is_empty() {
            "]\n    }"
        } else {
            "\n      ]\n    }"
        });
    }
    s.push_str(if interfaces.is_empty() {
        "]\n}\n"
    } else {
        "\n  ]\n}\n"
    });
    s
}

/// `{"name": value, ...}`, or `null` when the daemon gave no counters.
fn json_counters(c: Option<&[(String, u64)]>) -> String {
    match c {
        None => "null".to_owned(),
        Some(c) => {
            let items: Vec<String> = c
                .iter()
                .map(|(k, v)| format!("{}: {v}", json_str(k)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// A label value in the Prometheus text format: `\`, `"` and newlines escaped.
fn prom_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition format (version 0.0.4) for `wgd show --prometheus`: per
/// peer `wireguard_sent_bytes_total`, `wireguard_received_bytes_total` (counters) and
/// `wireguard_latest_handshake_seconds` (gauge, 0 for never), labelled `interface`,
/// `public_key` and `allowed_ips` as the common WireGuard exporters do; then wgd's own
/// counters, `wgd_<name>_total` per interface and `wgd_peer_<name>_total` per peer (where the
/// daemon answers `wgd-stats=1`). Each metric family is written once, with HELP and TYPE.
pub(crate) fn format_prometheus(
    interfaces: &[(String, GetReply)],
    counters: &[Option<wgd::uapi::Stats>],
) -> String {
    let mut families: Vec<(String, &str, &str, Vec<String>)> = Vec::new();
    let mut sample =
        |name: &str, kind: &'static str, help: &'static str, labels: String, v: u64| {
            let line = format!("{name}{{{labels}}} {v}");
            match families.iter_mut().find(|f| f.0 == name) {
                Some(f) => f.3.push(line),
                None => families.push((name.to_owned(), kind, help, vec![line])),
            }
        };
    for (i, (iface, r)) in interfaces.iter().enumerate() {
        let il = format!("interface=\"{}\"", prom_label(iface));
        for p in &r.peers {
            let pl = format!(
                "{il},public_key=\"{}\",allowed_ips=\"{}\"",
                prom_label(&p.public_key.to_base64()),
                prom_label(&p.allowed_ips.join(","))
            );
            sample(
                "wireguard_sent_bytes_total",
                "counter",
                "Bytes sent to the peer.",
                pl.clone(),
                p.tx_bytes,
            );
            sample(
                "wireguard_received_bytes_total",
                "counter",
                "Bytes received from the peer.",
                pl.clone(),
                p.rx_bytes,
            );
            sample(
                "wireguard_latest_handshake_seconds",
                "gauge",
                "Unix time of the latest handshake with the peer (0: never).",
                pl,
                p.last_handshake_sec.unwrap_or(0),
            );
        }
        let Some(st) = counters.get(i).and_then(Option::as_ref) else {
            continue;
        };
        for (k, v) in &st.device {
            sample(
                &format!("wgd_{k}_total"),
                "counter",
                "A wgd device counter (see docs/usage.md).",
                il.clone(),
                *v,
            );
        }
        for pc in &st.peers {
            let pl = format!(
                "{il},public_key=\"{}\"",
                prom_label(&pc.public_key.to_base64())
            );
            for (k, v) in &pc.counters {
                // Bytes and the handshake time are the wireguard_* families above.
                if matches!(
                    k.as_str(),
                    "rx_bytes" | "tx_bytes" | "latest_handshake_seconds"
                ) {
                    continue;
                }
                sample(
                    &format!("wgd_peer_{k}_total"),
                    "counter",
                    "A wgd per-peer counter (see docs/usage.md).",
                    pl.clone(),
                    *v,
                );
            }
        }
    }
    let mut s = String::new();
    for (name, kind, help, lines) in families {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for l in lines {
            s.push_str(&l);
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgd::crypto::keys::{PrivateKey, PublicKey};
    use wgd::uapi::parse_get_reply;

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
    fn human_output_like_wg() {
        let r = parse_get_reply(&sample()).unwrap();
        let out = format_human("wg0", &r, 1065);
        let pk = |b| PublicKey::from_hex(&hex(b)).unwrap().to_base64();
        let own = PrivateKey::from_hex(&hex(0x18)).unwrap().public_key();
        let expected = format!(
            "interface: wg0\n  public key: {own}\n  private key: (hidden)\n  \
             listening port: 51820\n  fwmark: 0x1234\n\n\
             peer: {}\n  preshared key: (hidden)\n  endpoint: 198.18.0.2:51820\n  \
             allowed ips: 198.19.0.2/32, 2001:db8:1::2/128\n  \
             latest handshake: 1 minute, 5 seconds ago\n  transfer: 100 B received, 1.50 KiB sent\n  \
             persistent keepalive: every 25 seconds\n\n\
             peer: {}\n  allowed ips: (none)\n",
            pk(0x11),
            pk(0x33)
        );
        assert_eq!(out, expected);
        assert!(!out.contains(&hex(0x18)));
    }

    #[test]
    fn time_and_byte_units() {
        assert_eq!(ago(10, 10), "Now");
        assert_eq!(ago(10, 11), "1 second ago");
        assert_eq!(ago(0, 3600 + 120), "1 hour, 2 minutes ago");
        assert_eq!(ago(0, 366 * 86400), "1 year, 1 day ago");
        assert!(ago(11, 10).contains("wound backward"));
        assert_eq!(pretty_time(65), "1 minute, 5 seconds");
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.00 KiB");
        assert_eq!(bytes(5 << 20), "5.00 MiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
        assert_eq!(bytes(2 << 40), "2.00 TiB");
    }

    #[test]
    fn json_escaping_and_shape() {
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        assert_eq!(format_json(&[], &[]), "{\n  \"interfaces\": []\n}\n");
        let r = parse_get_reply(&sample()).unwrap();
        let j = format_json(
            &[
                ("wg0".into(), r.clone()),
                ("wg1".into(), GetReply::default()),
            ],
            &[],
        );
        assert!(j.contains("\"listen_port\": 51820"), "{j}");
        assert!(j.contains("\"has_preshared_key\": true"), "{j}");
        assert!(j.contains("\"latest_handshake\": 1000"), "{j}");
        assert!(j.contains("\"persistent_keepalive\": null"), "{j}");
        assert!(j.contains("\"peers\": []"), "{j}");
        for secret in [hex(0x18), hex(0x22)] {
            assert!(!j.contains(&secret));
        }
        let sk = PrivateKey::from_hex(&hex(0x18)).unwrap();
        assert!(!j.contains(sk.to_base64().as_str()));
        assert!(j.contains("\"counters\": null"), "{j}");
    }

    #[test]
    fn counters_in_json_and_prometheus() {
        let r = parse_get_reply(&sample()).unwrap();
        let peer = r.peers[0].public_key;
        let stats = wgd::uapi::Stats {
            device: vec![("rx_dropped".into(), 7), ("tx_no_peer".into(), 2)],
            peers: vec![wgd::uapi::PeerCounters {
                public_key: peer,
                counters: vec![("replayed".into(), 3), ("rx_bytes".into(), 9)],
            }],
        };
        let ifaces = [("wg\"0".to_string(), r.clone())];
        let j = format_json(&ifaces, &[Some(stats.clone())]);
        assert!(
            j.contains("\"counters\": {\"rx_dropped\": 7, \"tx_no_peer\": 2}"),
            "{j}"
        );
        assert!(
            j.contains("\"counters\": {\"replayed\": 3, \"rx_bytes\": 9}"),
            "{j}"
        );
        let p = format_prometheus(&ifaces, &[Some(stats)]);
        let key = peer.to_base64();
        for want in [
            "# TYPE wireguard_sent_bytes_total counter".to_string(),
            "# TYPE wireguard_latest_handshake_seconds gauge".to_string(),
            format!("wireguard_received_bytes_total{{interface=\"wg\\\"0\",public_key=\"{key}\","),
            "wgd_rx_dropped_total{interface=\"wg\\\"0\"} 7".to_string(),
            format!("wgd_peer_replayed_total{{interface=\"wg\\\"0\",public_key=\"{key}\"}} 3"),
        ] {
            assert!(p.contains(&want), "missing {want} in:\n{p}");
        }
        // Bytes appear once, as the exporters' family, not again as wgd_peer_rx_bytes_total.
        assert!(!p.contains("wgd_peer_rx_bytes_total"), "{p}");
        assert_eq!(p.matches("# TYPE wgd_rx_dropped_total").count(), 1);
    }
}
