//! The reply to `get=1`: [`format_get`] writes it (through [`SecretText`], which keeps keys
//! from being left behind in freed memory), and [`format_errno`], the reply to a `set`.

use crate::proto::device::Device;
use crate::proto::index::PeerId;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use zeroize::Zeroizing;

/// The reply to `get=1`, as wireguard-go prints it, ending with `errno=0\n\n`:
/// `private_key` (if the device has one), `listen_port` (if not 0), `fwmark` (if set), then for
/// each peer `public_key`, `preshared_key`, `protocol_version=1`, `endpoint` (if known),
/// `last_handshake_time_sec`, `last_handshake_time_nsec` (Unix time, 0 for never), `tx_bytes`,
/// `rx_bytes`, `persistent_keepalive_interval`, and one `allowed_ip` per prefix. Keys are
/// lowercase hex. Peers come in id order, prefixes in address order (IPv4 first).
///
/// The text contains the private key. `O(peers + prefixes)`.
pub fn format_get(dev: &Device, listen_port: u16, fwmark: Option<u32>) -> Zeroizing<String> {
    let mut by_peer: HashMap<PeerId, Vec<(IpAddr, u8)>> = HashMap::new();
    for (addr, cidr, id) in dev.allowed_ips().entries() {
        by_peer.entry(id).or_default().push((addr, cidr));
    }
    // Holds the private key and the PSKs in hex: wiped when dropped (after server.rs wrote it),
    // and never reallocated without wiping the old buffer.
    let mut s = SecretText::with_capacity(256 + 512 * dev.peer_ids().count());
    if dev.has_private_key() {
        s.push_str("private_key=");
        s.push_str(&dev.private_key().to_hex());
        s.push('\n');
    }
    if listen_port != 0 {
        let _ = writeln!(s, "listen_port={listen_port}");
    }
    if let Some(m) = fwmark.filter(|&m| m != 0) {
        let _ = writeln!(s, "fwmark={m}");
    }
    for id in dev.peer_ids() {
        let Some(p) = dev.peer(id) else { continue };
        let _ = writeln!(s, "public_key={}", p.public_key().to_hex());
        s.push_str("preshared_key=");
        s.push_str(&p.preshared_key().to_hex());
        s.push('\n');
        s.push_str("protocol_version=1\n");
        if let Some(e) = p.endpoint() {
            let _ = writeln!(s, "endpoint={}", e.addr);
        }
        let hs = p.stats.last_handshake.unwrap_or_default();
        let _ = writeln!(s, "last_handshake_time_sec={}", hs.as_secs());
        let _ = writeln!(s, "last_handshake_time_nsec={}", hs.subsec_nanos());
        let _ = writeln!(s, "tx_bytes={}", p.stats.tx_bytes);
        let _ = writeln!(s, "rx_bytes={}", p.stats.rx_bytes);
        let pka = p.persistent_keepalive().map_or(0, |d| d.as_secs());
        let _ = writeln!(s, "persistent_keepalive_interval={pka}");
        for (addr, cidr) in by_peer.get(&id).into_iter().flatten() {
            let _ = writeln!(s, "allowed_ip={addr}/{cidr}");
        }
    }
    s.push_str("errno=0\n\n");
    s.0
}

/// A text buffer for replies that carry keys: it grows by copying into a new allocation and
/// wiping the old one (a `String` would leave the old copy in freed memory), and is zeroized
/// when dropped.
pub(super) struct SecretText(pub(super) Zeroizing<String>);

impl SecretText {
    pub(super) fn with_capacity(n: usize) -> Self {
        SecretText(Zeroizing::new(String::with_capacity(n)))
    }

    pub(super) fn push_str(&mut self, t: &str) {
        if self.0.capacity() - self.0.len() < t.len() {
            let want = (self.0.len() + t.len()).max(2 * self.0.capacity());
            let mut bigger = String::with_capacity(want);
            bigger.push_str(&self.0);
            // The old buffer is wiped (whole capacity) when this Zeroizing drops.
            let _old = Zeroizing::new(std::mem::replace(&mut *self.0, bigger));
        }
        self.0.push_str(t);
    }

    pub(super) fn push(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0u8; 4]));
    }
}

impl std::fmt::Write for SecretText {
    fn write_str(&mut self, t: &str) -> std::fmt::Result {
        self.push_str(t);
        Ok(())
    }
}

/// The reply to a `set`, or to a request that failed: `errno=N\n\n` (0, or a negative errno
/// from [`UapiError::errno`](super::UapiError::errno)).
pub fn format_errno(e: i32) -> String {
    format!("errno={e}\n\n")
}
