//! The reply to `get=1`, both ways: [`format_get`] writes it (through [`SecretText`], which
//! keeps keys from being left behind in freed memory) and [`parse_get_reply`] reads it into a
//! [`GetReply`], which holds no secret; and [`format_errno`], the reply to a `set`.

use crate::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::proto::device::Device;
use crate::proto::index::PeerId;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
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

/// One interface as its daemon describes it. Holds no secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetReply {
    /// Derived from `private_key`; `None` when the interface has no (or an all-zero) key.
    pub public_key: Option<PublicKey>,
    /// `listen_port`; `None` when absent or 0.
    pub listen_port: Option<u16>,
    /// `fwmark`; `None` when absent or 0.
    pub fwmark: Option<u32>,
    /// The peers, in the daemon's order.
    pub peers: Vec<PeerInfo>,
}

/// One peer of a [`GetReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub public_key: PublicKey,
    /// A non-zero `preshared_key` was reported.
    pub has_preshared_key: bool,
    /// `endpoint`, as the daemon wrote it (`198.18.0.1:51820`, `[2001:db8::1]:51820`).
    pub endpoint: Option<String>,
    /// `allowed_ip` lines, as the daemon wrote them, in its order.
    pub allowed_ips: Vec<String>,
    /// `last_handshake_time_sec` (Unix time); `None` for 0 (never).
    pub last_handshake_sec: Option<u64>,
    /// `last_handshake_time_nsec`.
    pub last_handshake_nsec: u32,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// `persistent_keepalive_interval` in seconds; `None` for 0 (off).
    pub persistent_keepalive: Option<u16>,
}

impl PeerInfo {
    fn new(public_key: PublicKey) -> Self {
        PeerInfo {
            public_key,
            has_preshared_key: false,
            endpoint: None,
            allowed_ips: Vec::new(),
            last_handshake_sec: None,
            last_handshake_nsec: 0,
            rx_bytes: 0,
            tx_bytes: 0,
            persistent_keepalive: None,
        }
    }
}

/// Why a reply to `get=1` was refused by [`parse_get_reply`]. Messages name line numbers and
/// keys; they quote a value only where it should be a number (at most 40 characters), never a
/// key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetReplyError {
    /// The reply ends before its blank line.
    #[error("truncated (no blank line at the end)")]
    Truncated,
    /// An empty line (only the blank line that ends the reply is empty).
    #[error("line {line}: empty line")]
    EmptyLine {
        /// The line number.
        line: usize,
    },
    /// A line after the `errno` line.
    #[error("line {line}: data after errno")]
    AfterErrno {
        /// The line number.
        line: usize,
    },
    /// A line without `=`.
    #[error("line {line}: not key=value")]
    Malformed {
        /// The line number.
        line: usize,
    },
    /// A value that should be a number (in range for its key) and is not.
    #[error("line {line}: {key}: `{value}' is not a valid number")]
    BadNumber {
        /// The line number.
        line: usize,
        /// The key.
        key: String,
        /// The value, at most 40 characters of it.
        value: String,
        /// Why it does not parse.
        source: std::num::ParseIntError,
    },
    /// A key that is not 64 hex digits.
    #[error("line {line}: {key}: not a 64-digit hex key")]
    BadKey {
        /// The line number.
        line: usize,
        /// The key (`private_key`, `public_key` or `preshared_key`).
        key: String,
    },
    /// The reply has no `errno` line.
    #[error("no errno line")]
    NoErrno,
    /// The daemon answered with an error: `errno` other than 0.
    #[error("the daemon answered errno={errno} ({})", errno_text(*errno))]
    Errno {
        /// The errno as the daemon wrote it (negative, as wireguard-go writes it).
        errno: i64,
    },
}

/// The system's text for `errno` (its sign ignored).
fn errno_text(errno: i64) -> String {
    i32::try_from(errno.unsigned_abs())
        .map(|c| io::Error::from_raw_os_error(c).to_string())
        .unwrap_or_else(|_| "unknown error".into())
}

/// Parses a reply to `get=1` (wireguard.com/xplatform): `key=value` lines, device keys first,
/// then each peer starting at its `public_key`, ending with `errno=N` and a blank line. Unknown
/// keys are skipped; `errno` other than 0 is an error. Parsing stops at the first blank line.
pub fn parse_get_reply(text: &str) -> Result<GetReply, GetReplyError> {
    let mut reply = GetReply::default();
    let mut peer: Option<PeerInfo> = None;
    let mut errno: Option<i64> = None;
    let Some(end) = text.find("\n\n") else {
        return Err(GetReplyError::Truncated);
    };
    for (n, line) in text[..end].split('\n').enumerate() {
        let lineno = n + 1;
        if line.is_empty() {
            return Err(GetReplyError::EmptyLine { line: lineno });
        }
        if errno.is_some() {
            return Err(GetReplyError::AfterErrno { line: lineno });
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(GetReplyError::Malformed { line: lineno });
        };
        let num_err = |source| GetReplyError::BadNumber {
            line: lineno,
            key: key.to_owned(),
            value: shown(value),
            source,
        };
        let key_err = |_| GetReplyError::BadKey {
            line: lineno,
            key: key.to_owned(),
        };
        match key {
            "errno" => errno = Some(value.parse().map_err(num_err)?),
            "private_key" => {
                let k = PrivateKey::from_hex(value).map_err(key_err)?;
                reply.public_key = (!k.is_zero()).then(|| k.public_key());
            }
            "listen_port" => {
                reply.listen_port = Some(value.parse().map_err(num_err)?).filter(|&p| p != 0)
            }
            "fwmark" => reply.fwmark = Some(value.parse().map_err(num_err)?).filter(|&m| m != 0),
            "public_key" => {
                let k = PublicKey::from_hex(value).map_err(key_err)?;
                reply.peers.extend(peer.replace(PeerInfo::new(k)));
            }
            _ => {
                let Some(p) = peer.as_mut() else {
                    continue; // an unknown device key
                };
                match key {
                    "preshared_key" => {
                        let k = PresharedKey::from_hex(value).map_err(key_err)?;
                        p.has_preshared_key = !k.is_zero();
                    }
                    "endpoint" => p.endpoint = Some(value.to_owned()),
                    "allowed_ip" => p.allowed_ips.push(value.to_owned()),
                    "last_handshake_time_sec" => {
                        p.last_handshake_sec =
                            Some(value.parse().map_err(num_err)?).filter(|&s| s != 0)
                    }
                    "last_handshake_time_nsec" => {
                        p.last_handshake_nsec = value.parse().map_err(num_err)?
                    }
                    "rx_bytes" => p.rx_bytes = value.parse().map_err(num_err)?,
                    "tx_bytes" => p.tx_bytes = value.parse().map_err(num_err)?,
                    "persistent_keepalive_interval" => {
                        p.persistent_keepalive =
                            Some(value.parse().map_err(num_err)?).filter(|&s| s != 0)
                    }
                    _ => {} // protocol_version and keys from the future
                }
            }
        }
    }
    match errno {
        None => return Err(GetReplyError::NoErrno),
        Some(0) => {}
        Some(e) => return Err(GetReplyError::Errno { errno: e }),
    }
    reply.peers.extend(peer);
    Ok(reply)
}

/// At most 40 characters of `s`, for error messages.
fn shown(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}
