//! The request model: [`Request`], a [`SetRequest`] with its [`InterfaceOp`] lines and
//! [`PeerSet`] blocks of [`PeerOp`] lines, and [`SetRequest::to_request_text`], which writes a
//! request back as `wg` sends it.

use crate::conf::AllowedIp;
use crate::crypto::keys::{KEY_LEN, PresharedKey, PrivateKey, PublicKey};
use std::fmt::Write as _;
use std::net::SocketAddr;
use zeroize::Zeroizing;

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `get=1`: answer with [`format_get`](super::format_get).
    Get,
    /// `set=1`: [`apply`](fn@super::apply) it, answer with
    /// [`format_errno`](super::format_errno).
    Set(SetRequest),
    /// `wgd-stats=1` (wgd's own): answer with [`format_stats`](super::format_stats).
    Stats,
}

/// A `set` request: the device lines, then one block per `public_key=` line, each in request
/// order (order matters: wireguard-go applies line by line, and [`apply`](fn@super::apply)
/// does the same). `Debug` never prints a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetRequest {
    /// Device-level lines, in order.
    pub interface: Vec<InterfaceOp>,
    /// Peer blocks, in order. A key may have more than one block.
    pub peers: Vec<PeerSet>,
}

/// One device-level line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceOp {
    /// `private_key=`: the new key (clamped when applied), `None` for the all-zero key, which
    /// removes it.
    PrivateKey(Option<PrivateKey>),
    /// `listen_port=`: 0 lets the system choose.
    ListenPort(u16),
    /// `fwmark=`: 0 removes the mark.
    Fwmark(u32),
    /// `replace_peers=true`: remove every peer before the peer blocks.
    ReplacePeers,
}

/// A `public_key=` line and the lines after it, up to the next `public_key=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSet {
    /// The peer. A block for the device's own public key is ignored (as wireguard-go and the
    /// kernel do); a block for an unknown key creates the peer unless it says `update_only`.
    pub public_key: PublicKey,
    /// The block's lines, in order (`protocol_version=1` is checked and dropped).
    pub ops: Vec<PeerOp>,
}

impl PeerSet {
    /// A block with no lines yet.
    pub fn new(public_key: PublicKey) -> Self {
        PeerSet {
            public_key,
            ops: Vec::new(),
        }
    }
}

/// One peer-level line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerOp {
    /// `remove=true`: remove the peer; the rest of its block is ignored.
    Remove,
    /// `update_only=true`: if the block created the peer, remove it again; the rest of the
    /// block is then ignored (only existing peers are updated).
    UpdateOnly,
    /// `preshared_key=`: the all-zero key removes it.
    PresharedKey(PresharedKey),
    /// `endpoint=`.
    Endpoint(SocketAddr),
    /// `persistent_keepalive_interval=` in seconds; 0 turns it off.
    PersistentKeepalive(u16),
    /// `replace_allowed_ips=true`: drop the peer's prefixes.
    ReplaceAllowedIps,
    /// `allowed_ip=PREFIX`: route the prefix to the peer (taking it from another peer).
    AllowedIp(AllowedIp),
    /// `allowed_ip=-PREFIX`: drop the prefix if this peer owns it.
    RemoveAllowedIp(AllowedIp),
}

impl SetRequest {
    /// The listen port the request sets last, if any.
    pub fn listen_port(&self) -> Option<u16> {
        self.interface.iter().rev().find_map(|op| match op {
            InterfaceOp::ListenPort(p) => Some(*p),
            _ => None,
        })
    }

    /// The fwmark the request sets last, if any (`Some(None)`: remove it).
    pub fn fwmark(&self) -> Option<Option<u32>> {
        self.interface.iter().rev().find_map(|op| match op {
            InterfaceOp::Fwmark(m) => Some((*m != 0).then_some(*m)),
            _ => None,
        })
    }

    /// The request as `wg` would send it: `set=1\n`, the lines, the blank line. Contains the
    /// secret keys (wiped on drop).
    pub fn to_request_text(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::from("set=1\n"));
        for op in &self.interface {
            match op {
                InterfaceOp::PrivateKey(Some(k)) => {
                    s.push_str("private_key=");
                    s.push_str(&k.to_hex());
                    s.push('\n');
                }
                InterfaceOp::PrivateKey(None) => {
                    s.push_str("private_key=");
                    s.push_str(&"0".repeat(2 * KEY_LEN));
                    s.push('\n');
                }
                InterfaceOp::ListenPort(p) => {
                    let _ = writeln!(s, "listen_port={p}");
                }
                InterfaceOp::Fwmark(m) => {
                    let _ = writeln!(s, "fwmark={m}");
                }
                InterfaceOp::ReplacePeers => s.push_str("replace_peers=true\n"),
            }
        }
        for peer in &self.peers {
            let _ = writeln!(s, "public_key={}", peer.public_key.to_hex());
            for op in &peer.ops {
                match op {
                    PeerOp::Remove => s.push_str("remove=true\n"),
                    PeerOp::UpdateOnly => s.push_str("update_only=true\n"),
                    PeerOp::PresharedKey(k) => {
                        s.push_str("preshared_key=");
                        s.push_str(&k.to_hex());
                        s.push('\n');
                    }
                    PeerOp::Endpoint(a) => {
                        let _ = writeln!(s, "endpoint={a}");
                    }
                    PeerOp::PersistentKeepalive(secs) => {
                        let _ = writeln!(s, "persistent_keepalive_interval={secs}");
                    }
                    PeerOp::ReplaceAllowedIps => s.push_str("replace_allowed_ips=true\n"),
                    PeerOp::AllowedIp(a) => {
                        let _ = writeln!(s, "allowed_ip={a}");
                    }
                    PeerOp::RemoveAllowedIp(a) => {
                        let _ = writeln!(s, "allowed_ip=-{a}");
                    }
                }
            }
        }
        s.push('\n');
        s
    }
}
