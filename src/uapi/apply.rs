//! [`apply`]: a `set` request on the device, checked first so that it is atomic, and the
//! limits it checks ([`MAX_PEERS`], [`MAX_PREFIXES`]).

use super::{InterfaceOp, PeerOp, PeerSet, SetRequest, UapiError};
use crate::crypto::keys::{PresharedKey, PublicKey};
use crate::proto::device::Device;
use crate::proto::index::PeerId;
use crate::proto::peer::{Endpoint, Transmit};
use crate::proto::time::Now;
use std::collections::HashSet;
use std::time::Duration;

/// The most peers a device may have after a `set` (the kernel's `MAX_PEERS_PER_DEVICE`).
pub const MAX_PEERS: usize = 1 << 20;
/// The most AllowedIPs prefixes the table may hold after a `set` (what its `u32`-indexed node
/// arena can address, with at most two nodes per prefix).
pub const MAX_PREFIXES: usize = (1 << 31) - 1;

/// What a `set` changed that the caller applies or needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceChange {
    /// The listen port to bind (0: any); `None` if the request did not set it.
    pub listen_port: Option<u16>,
    /// The fwmark to set on the sockets: `Some(None)` removes it; `None` if not set.
    pub fwmark: Option<Option<u32>>,
    /// Peers created, in order.
    pub peers_added: Vec<PeerId>,
    /// Peers removed, in order. Ids are reused, so an id may be in both lists (e.g. a peer
    /// created and removed by `update_only`, or removed and another one created in its slot).
    pub peers_removed: Vec<PeerId>,
}

/// Limits checked before a request is applied.
#[derive(Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_peers: usize,
    pub(super) max_prefixes: usize,
}

const LIMITS: Limits = Limits {
    max_peers: MAX_PEERS,
    max_prefixes: MAX_PREFIXES,
};

/// Applies a `set` request to the device (and so its AllowedIPs table), with wireguard-go's
/// semantics, atomically: the request is checked first and, on error, nothing has changed.
///
/// - `private_key`: [`Device::set_private_key`] (clamped, as wireguard-go and the kernel do;
///   a peer with the new public key is removed with its prefixes); the zero key removes it.
/// - `listen_port` / `fwmark`: returned in [`InterfaceChange`] for the caller to apply to the
///   sockets (if that fails, answer [`UapiError::AddrInUse`]).
/// - `replace_peers`: every existing peer is removed before the blocks are applied.
/// - A block for the device's own public key is ignored; one for an unknown key creates the
///   peer (with the zero preshared key and no endpoint), unless `update_only` is in it.
/// - `remove`: the peer and its prefixes go; `replace_allowed_ips` clears its prefixes;
///   `allowed_ip` takes a prefix (from any other peer); `allowed_ip=-P` drops `P` if this peer
///   owns it.
/// - `persistent_keepalive_interval` from off to on sends a keepalive at the end of the block
///   (a handshake first if there is no session); on to another value just changes it.
///
/// Cost: `O(request)` plus one walk of the table per `remove` or `replace_allowed_ips` of a
/// peer that owned prefixes (none for peers the request created; see
/// [`Device::clear_allowed_ips`]).
pub fn apply(
    req: SetRequest,
    dev: &mut Device,
    now: Now,
    out: &mut Vec<Transmit>,
) -> Result<InterfaceChange, UapiError> {
    apply_with_limits(req, dev, now, out, LIMITS)
}

pub(super) fn apply_with_limits(
    req: SetRequest,
    dev: &mut Device,
    now: Now,
    out: &mut Vec<Transmit>,
    limits: Limits,
) -> Result<InterfaceChange, UapiError> {
    check(&req, dev, limits)?;
    let mut change = InterfaceChange::default();
    let mut applier = Applier {
        dev,
        change: &mut change,
    };
    for op in req.interface {
        applier.interface_op(op);
    }
    for block in req.peers {
        applier.peer_block(block, now, out);
    }
    Ok(change)
}

/// A dry run on the set of peer keys: everything that could make the request fail, checked
/// before anything changes.
fn check(req: &SetRequest, dev: &Device, limits: Limits) -> Result<(), UapiError> {
    let mut present: HashSet<PublicKey> = dev
        .peer_ids()
        .filter_map(|id| dev.peer(id).map(|p| *p.public_key()))
        .collect();
    let mut own = dev.has_private_key().then(|| dev.public_key());
    for op in &req.interface {
        match op {
            InterfaceOp::PrivateKey(Some(k)) => {
                let pk = k.public_key();
                present.remove(&pk);
                own = Some(pk);
            }
            InterfaceOp::PrivateKey(None) => own = None,
            InterfaceOp::ReplacePeers => present.clear(),
            InterfaceOp::ListenPort(_) | InterfaceOp::Fwmark(_) => {}
        }
    }
    let mut added_prefixes: usize = 0;
    for block in &req.peers {
        let key = block.public_key;
        let mut dummy = own == Some(key);
        let mut created = false;
        if !dummy && !present.contains(&key) {
            if present.len() >= limits.max_peers {
                return Err(UapiError::TooManyPeers);
            }
            present.insert(key);
            created = true;
        }
        for op in &block.ops {
            match op {
                PeerOp::Remove => {
                    if !dummy {
                        present.remove(&key);
                    }
                    dummy = true;
                }
                PeerOp::UpdateOnly if created && !dummy => {
                    present.remove(&key);
                    dummy = true;
                }
                PeerOp::AllowedIp(_) if !dummy => added_prefixes += 1,
                _ => {}
            }
        }
    }
    if dev.allowed_ips().len().saturating_add(added_prefixes) > limits.max_prefixes {
        return Err(UapiError::TableFull);
    }
    Ok(())
}

struct Applier<'a> {
    dev: &'a mut Device,
    change: &'a mut InterfaceChange,
}

impl Applier<'_> {
    fn interface_op(&mut self, op: InterfaceOp) {
        match op {
            InterfaceOp::PrivateKey(Some(k)) => {
                if let Some(id) = self.dev.set_private_key(k.clamped()) {
                    self.change.peers_removed.push(id);
                }
            }
            InterfaceOp::PrivateKey(None) => {
                if self.dev.has_private_key() {
                    let before: Vec<PeerId> = self.dev.peer_ids().collect();
                    self.dev.clear_private_key();
                    // The random placeholder key cannot clash with a peer in practice; if it
                    // did, that peer (and its prefixes) went.
                    for id in before {
                        if self.dev.peer(id).is_none() {
                            self.change.peers_removed.push(id);
                        }
                    }
                }
            }
            InterfaceOp::ListenPort(p) => self.change.listen_port = Some(p),
            InterfaceOp::Fwmark(m) => self.change.fwmark = Some((m != 0).then_some(m)),
            InterfaceOp::ReplacePeers => {
                let ids = self.dev.remove_all_peers();
                self.change.peers_removed.extend(ids);
            }
        }
    }

    fn remove_peer(&mut self, id: PeerId) {
        self.dev.remove_peer(id);
        self.change.peers_removed.push(id);
    }

    fn peer_block(&mut self, block: PeerSet, now: Now, out: &mut Vec<Transmit>) {
        let key = block.public_key;
        let own = self.dev.has_private_key().then(|| self.dev.public_key());
        let mut created = false;
        // `None`: wireguard-go's "dummy" peer, whose lines are parsed but change nothing.
        let mut cur = if own == Some(key) {
            None
        } else if let Some(id) = self.dev.peer_by_key(&key) {
            Some(id)
        } else {
            // Cannot fail: not our own key, not present (and the count was checked).
            match self.dev.add_peer(key, PresharedKey::default()) {
                Ok(id) => {
                    created = true;
                    self.change.peers_added.push(id);
                    Some(id)
                }
                Err(_) => None,
            }
        };
        let mut keepalive_on = false;
        for op in block.ops {
            let Some(id) = cur else { continue };
            match op {
                PeerOp::Remove => {
                    self.remove_peer(id);
                    cur = None;
                }
                PeerOp::UpdateOnly => {
                    if created {
                        self.remove_peer(id);
                        cur = None;
                    }
                }
                PeerOp::PresharedKey(k) => {
                    if let Some(p) = self.dev.peer_mut(id) {
                        p.set_preshared_key(k);
                    }
                }
                PeerOp::Endpoint(a) => {
                    if let Some(p) = self.dev.peer_mut(id) {
                        p.set_endpoint(Endpoint::new(a));
                    }
                }
                PeerOp::PersistentKeepalive(secs) => {
                    let was_off = self
                        .dev
                        .peer(id)
                        .is_none_or(|p| p.persistent_keepalive().is_none());
                    if secs == 0 {
                        self.dev.set_persistent_keepalive(id, now, None, out);
                    } else if let Some(p) = self.dev.peer_mut(id) {
                        // Only stored here; the keepalive (if turned on) leaves at the end of
                        // the block, to the endpoint the block may still set.
                        p.timers.persistent_keepalive_interval =
                            Some(Duration::from_secs(secs.into()));
                    }
                    keepalive_on = was_off && secs != 0;
                }
                PeerOp::ReplaceAllowedIps => {
                    self.dev.clear_allowed_ips(id);
                }
                PeerOp::AllowedIp(a) => {
                    // Cannot fail: the peer exists, the prefix length was checked by the
                    // parser, the table size by `check`.
                    let _ = self.dev.add_allowed_ip(id, a.addr, a.cidr);
                }
                PeerOp::RemoveAllowedIp(a) => {
                    self.dev.remove_allowed_ip(id, a.addr, a.cidr);
                }
            }
        }
        if let Some(id) = cur.filter(|_| keepalive_on) {
            let interval = self.dev.peer(id).and_then(|p| p.persistent_keepalive());
            self.dev.set_persistent_keepalive(id, now, interval, out);
        }
    }
}
