//! Host names that keep resolving: a peer whose `Endpoint` is a host name and that has had no
//! handshake for longer than [`DEFAULT_AFTER`] (135 s, as wireguard-tools'
//! `reresolve-dns.sh` run from a timer) has its name resolved again, off the event loop
//! (`spawn_blocking`: `getaddrinfo` blocks); a changed address becomes its endpoint, logged.
//! This is how a tunnel follows a peer behind a dynamic-DNS name without a restart.
//!
//! `WGD_RERESOLVE_AFTER=SECONDS` changes the threshold (tests use a few seconds); `0` turns it
//! off.

use crate::conf::{Config, EndpointSpec};
use crate::crypto::keys::PublicKey;
use crate::proto::{Device, Endpoint};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info};

/// Re-resolve a name after this long without a handshake (reresolve-dns.sh's 135 s:
/// REKEY_AFTER_TIME + REKEY_TIMEOUT + slack).
pub(crate) const DEFAULT_AFTER: Duration = Duration::from_secs(135);

/// The peers with host-name endpoints, and the resolutions in flight.
pub(crate) struct Reresolver {
    names: Vec<(PublicKey, EndpointSpec)>,
    after: Duration,
    in_flight: bool,
    tx: mpsc::UnboundedSender<Vec<(PublicKey, SocketAddr)>>,
    rx: mpsc::UnboundedReceiver<Vec<(PublicKey, SocketAddr)>>,
}

impl Reresolver {
    /// For `cfg`'s host-name endpoints (none when `enabled` is false or the environment turns
    /// it off).
    pub(crate) fn new(cfg: &Config, enabled: bool) -> Reresolver {
        let after = match std::env::var("WGD_RERESOLVE_AFTER")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            Some(s) => Duration::from_secs(s),
            None => DEFAULT_AFTER,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let mut r = Reresolver {
            names: Vec::new(),
            after,
            in_flight: false,
            tx,
            rx,
        };
        if enabled && !after.is_zero() {
            r.set_names(cfg);
        }
        r
    }

    /// The names of `cfg` (after a reload).
    pub(crate) fn set_names(&mut self, cfg: &Config) {
        if self.after.is_zero() {
            return;
        }
        self.names = cfg
            .peers
            .iter()
            .filter_map(|p| {
                let e = p.endpoint.as_ref()?;
                e.socket_addr().is_none().then(|| (p.public_key, e.clone()))
            })
            .collect();
    }

    /// How often [`Reresolver::check`] should run: never without names.
    pub(crate) fn interval(&self) -> Option<Duration> {
        (!self.names.is_empty())
            .then(|| (self.after / 4).clamp(Duration::from_secs(1), Duration::from_secs(30)))
    }

    /// Starts resolving the names of the peers whose latest handshake (wall clock `now_wall`)
    /// is older than the threshold, unless a round is still running.
    pub(crate) fn check(&mut self, dev: &Device, now_wall: Duration) {
        if self.in_flight {
            return;
        }
        let due: Vec<(PublicKey, EndpointSpec)> = self
            .names
            .iter()
            .filter(|(key, _)| {
                let Some(p) = dev.peer_by_key(key).and_then(|id| dev.peer(id)) else {
                    return false;
                };
                p.stats
                    .last_handshake
                    .is_none_or(|t| now_wall.saturating_sub(t) > self.after)
            })
            .cloned()
            .collect();
        if due.is_empty() {
            return;
        }
        self.in_flight = true;
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let found: Vec<(PublicKey, SocketAddr)> = due
                .iter()
                .filter_map(|(k, e)| match e.resolve() {
                    Ok(a) => Some((*k, a)),
                    Err(err) => {
                        debug!("re-resolving {e}: {err}");
                        None
                    }
                })
                .collect();
            let _ = tx.send(found);
        });
    }

    /// The next finished round of resolutions.
    pub(crate) async fn done(&mut self) -> Option<Vec<(PublicKey, SocketAddr)>> {
        self.rx.recv().await
    }

    /// Applies a finished round: a changed address becomes the peer's endpoint.
    pub(crate) fn apply(&mut self, dev: &mut Device, found: Vec<(PublicKey, SocketAddr)>) {
        self.in_flight = false;
        for (key, addr) in found {
            let Some(p) = dev.peer_by_key(&key).and_then(|id| dev.peer_mut(id)) else {
                continue;
            };
            if p.endpoint().map(|e| e.addr) != Some(addr) {
                let name = self
                    .names
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, e)| e.to_string())
                    .unwrap_or_default();
                info!(peer = %key, "endpoint {name} re-resolved: now {addr}");
                p.set_endpoint(Endpoint::new(addr));
            }
        }
    }
}
