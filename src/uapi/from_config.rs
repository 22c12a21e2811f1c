//! The `set` requests `wg setconf`, `wg addconf` and `wg syncconf` send for a configuration
//! file.

use super::{InterfaceOp, PeerOp, PeerSet, SetRequest};
use crate::conf::{Config, EndpointSpec};
use crate::crypto::keys::{PresharedKey, PublicKey};
use crate::proto::device::Device;
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;

/// The request `wg setconf` (`replace_peers = true`) or `wg addconf` (`false`) sends for a
/// configuration: `private_key`, `listen_port` and `fwmark` if the configuration has them,
/// `replace_peers=true` if asked, then per peer `public_key`, `preshared_key`, `endpoint`,
/// `persistent_keepalive_interval`, `replace_allowed_ips=true` and the `allowed_ip` lines.
///
/// The configuration model cannot tell an absent key from a zero/`off` one, so an absent
/// `PrivateKey`, `ListenPort` or `FwMark` leaves the device's value alone (wg-quick sets the
/// fwmark after `setconf`, which a reload must keep). With `replace_peers = false`, each peer's
/// `preshared_key` and `persistent_keepalive_interval` are always sent (zero when absent), so
/// an updated peer loses a PSK or keepalive the file no longer has.
///
/// Endpoints given as host names are left out (this function does no I/O): use
/// [`set_request_from_config_with`] with a resolver for those.
pub fn set_request_from_config(cfg: &Config, replace_peers: bool) -> SetRequest {
    match set_request_from_config_with(cfg, replace_peers, |e| Ok::<_, Infallible>(e.socket_addr()))
    {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// [`set_request_from_config`], resolving each endpoint with `resolve` (`Ok(None)` leaves that
/// peer's endpoint out; the first error is returned). The daemon passes its one resolver,
/// `daemon::resolve_endpoint`, at start-up and on SIGHUP.
pub fn set_request_from_config_with<E>(
    cfg: &Config,
    replace_peers: bool,
    mut resolve: impl FnMut(&EndpointSpec) -> Result<Option<SocketAddr>, E>,
) -> Result<SetRequest, E> {
    let i = &cfg.interface;
    let mut req = SetRequest::default();
    if let Some(k) = &i.private_key {
        req.interface.push(InterfaceOp::PrivateKey(Some(k.clone())));
    }
    if let Some(p) = i.listen_port {
        req.interface.push(InterfaceOp::ListenPort(p));
    }
    if let Some(m) = i.fwmark {
        req.interface.push(InterfaceOp::Fwmark(m));
    }
    if replace_peers {
        req.interface.push(InterfaceOp::ReplacePeers);
    }
    for p in &cfg.peers {
        let mut set = PeerSet::new(p.public_key);
        match (&p.preshared_key, replace_peers) {
            (Some(k), _) => set.ops.push(PeerOp::PresharedKey(k.clone())),
            (None, false) => set.ops.push(PeerOp::PresharedKey(PresharedKey::default())),
            (None, true) => {}
        }
        if let Some(e) = &p.endpoint {
            if let Some(a) = resolve(e)? {
                set.ops.push(PeerOp::Endpoint(a));
            }
        }
        match (p.persistent_keepalive, replace_peers) {
            (Some(secs), _) => set.ops.push(PeerOp::PersistentKeepalive(secs)),
            (None, false) => set.ops.push(PeerOp::PersistentKeepalive(0)),
            (None, true) => {}
        }
        set.ops.push(PeerOp::ReplaceAllowedIps);
        set.ops
            .extend(p.allowed_ips.iter().copied().map(PeerOp::AllowedIp));
        req.peers.push(set);
    }
    Ok(req)
}

/// The request `wg syncconf` sends: [`set_request_from_config`] without `replace_peers`, plus
/// `remove=true` for every peer of `dev` that the configuration does not list. Peers that stay
/// keep their sessions. Host-name endpoints are left out: a reloading daemon uses
/// [`sync_request_from_config_with`] and its resolver.
pub fn sync_request_from_config(cfg: &Config, dev: &Device) -> SetRequest {
    match sync_request_from_config_with(cfg, dev, |e| Ok::<_, Infallible>(e.socket_addr())) {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// [`sync_request_from_config`], resolving each endpoint with `resolve` (see
/// [`set_request_from_config_with`]).
pub fn sync_request_from_config_with<E>(
    cfg: &Config,
    dev: &Device,
    resolve: impl FnMut(&EndpointSpec) -> Result<Option<SocketAddr>, E>,
) -> Result<SetRequest, E> {
    let mut req = set_request_from_config_with(cfg, false, resolve)?;
    let keep: HashSet<PublicKey> = cfg.peers.iter().map(|p| p.public_key).collect();
    let removals: Vec<PeerSet> = dev
        .peer_ids()
        .filter_map(|id| dev.peer(id).map(|p| *p.public_key()))
        .filter(|k| !keep.contains(k))
        .map(|k| PeerSet {
            public_key: k,
            ops: vec![PeerOp::Remove],
        })
        .collect();
    req.peers.splice(0..0, removals);
    Ok(req)
}
