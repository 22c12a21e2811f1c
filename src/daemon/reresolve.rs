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
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info};

/// Re-resolve a name after this long without a handshake (reresolve-dns.sh's 135 s:
/// REKEY_AFTER_TIME + REKEY_TIMEOUT + slack).
pub(crate) const DEFAULT_AFTER: Duration = Duration::from_secs(135);

/// How often `wg` retries a temporary resolver failure by default
/// (`WG_ENDPOINT_RESOLUTION_RETRIES`).
pub(crate) const DEFAULT_RETRIES: u32 = 15;

/// `WG_ENDPOINT_RESOLUTION_RETRIES`: a count, or `infinity` (`None`: retry forever).
pub(crate) fn retries_from_env() -> Option<u32> {
    match std::env::var("WG_ENDPOINT_RESOLUTION_RETRIES") {
        Ok(v) if v == "infinity" => None,
        Ok(v) => Some(v.parse().unwrap_or(DEFAULT_RETRIES)),
        Err(_) => Some(DEFAULT_RETRIES),
    }
}

/// True for the resolver answers `wg` treats as permanent (EAI_NONAME, EAI_FAIL, EAI_NODATA):
/// the name does not exist or has no address. Anything else (EAI_AGAIN, a system error) may
/// pass. The standard library gives `getaddrinfo`'s message, not its code; Rust programs run
/// in the C locale, so the messages are glibc's English ones.
pub(crate) fn is_permanent(e: &io::Error) -> bool {
    let m = e.to_string();
    m.contains("Name or service not known")
        || m.contains("Non-recoverable failure in name resolution")
        || m.contains("No address associated with hostname")
        || e.kind() == io::ErrorKind::NotFound
}

/// Resolves `e` as `wg` does: a temporary failure is retried `retries` times (`None`: forever),
/// sleeping 1 s first and then 1.2 times longer each time, at most 20 s.
pub(crate) fn resolve_with_retries(
    e: &EndpointSpec,
    retries: Option<u32>,
    mut sleep: impl FnMut(Duration),
) -> io::Result<SocketAddr> {
    resolve_with_retries_by(|| e.resolve(), &e.to_string(), retries, &mut sleep)
}

fn resolve_with_retries_by(
    mut resolve: impl FnMut() -> io::Result<SocketAddr>,
    name: &str,
    mut retries: Option<u32>,
    sleep: &mut impl FnMut(Duration),
) -> io::Result<SocketAddr> {
    let mut wait = Duration::from_secs(1);
    loop {
        match resolve() {
            Ok(a) => return Ok(a),
            Err(err) => {
                let left = match retries {
                    Some(0) => return Err(err),
                    _ if is_permanent(&err) => return Err(err),
                    Some(n) => Some(n - 1),
                    None => None,
                };
                tracing::warn!(
                    "{err}: `{name}'. Trying again in {:.2} seconds...",
                    wait.as_secs_f64()
                );
                sleep(wait);
                retries = left;
                wait = (wait * 6 / 5).min(Duration::from_secs(20));
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary() -> io::Error {
        io::Error::other(
            "failed to lookup address information: Temporary failure in name resolution",
        )
    }

    #[test]
    fn a_temporary_failure_is_retried_as_wg_does_and_a_permanent_one_is_not() {
        let addr: SocketAddr = "198.18.0.1:51820".parse().unwrap();
        // Two temporary failures, then an answer: two sleeps, 1 s then 1.2 s.
        let mut answers = vec![Ok(addr), Err(temporary()), Err(temporary())];
        let mut slept = Vec::new();
        let r = resolve_with_retries_by(|| answers.pop().unwrap(), "n", Some(15), &mut |d| {
            slept.push(d)
        });
        assert_eq!(r.unwrap(), addr);
        assert_eq!(
            slept,
            [Duration::from_millis(1000), Duration::from_millis(1200)]
        );
        // Out of retries.
        let mut slept = Vec::new();
        let r = resolve_with_retries_by(|| Err(temporary()), "n", Some(3), &mut |d| slept.push(d));
        assert!(r.is_err());
        assert_eq!(slept.len(), 3);
        // The waits grow to 20 s and stay there.
        let mut slept = Vec::new();
        let _ = resolve_with_retries_by(|| Err(temporary()), "n", Some(30), &mut |d| slept.push(d));
        assert_eq!(slept.last(), Some(&Duration::from_secs(20)));
        // A name that does not exist: no retry.
        let mut slept = Vec::new();
        let nx = || {
            Err(io::Error::other(
                "failed to lookup address information: Name or service not known",
            ))
        };
        assert!(resolve_with_retries_by(nx, "n", Some(15), &mut |d| slept.push(d)).is_err());
        assert!(slept.is_empty());
    }
}
