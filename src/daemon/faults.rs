//! What an I/O error on the data path means, decided in one place: the UDP sockets' sends and
//! receives and the TUN's reads and writes all ask [`classify`], count the error, and log a run
//! of errors once ([`Episode`]) instead of once per packet.
//!
//! The network a tunnel runs over has bad moments that are not the daemon's business to fix: the
//! underlay address removed (EADDRNOTAVAIL, ENETUNREACH), the link down (ENETDOWN,
//! EHOSTUNREACH), a full queue (ENOBUFS, EAGAIN), a peer that restarted (ECONNREFUSED from its
//! ICMP port unreachable), a TUN whose link was set down (EIO on write), a packet the kernel
//! refused (EMSGSIZE, EINVAL). Each is transient: the packet is lost, as the kernel's WireGuard
//! loses it, and the protocol's timers (retransmitted handshakes, keepalives) bring the session
//! back once the network is. Only an error that says the descriptor itself is gone is fatal.

use std::io;
use tracing::{info, warn};

/// What an I/O error means for the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Try again later: nothing happened (EAGAIN, EINTR).
    Retry,
    /// The packet is lost; the network or the peer may recover. Counted and logged once per run.
    Transient,
    /// The descriptor is unusable (the interface was deleted, the socket is gone).
    Fatal,
}

/// The class of `e`. Errors without an OS code (tun-rs refusing a malformed packet) are
/// transient.
pub(crate) fn classify(e: &io::Error) -> Class {
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR) => Class::Retry,
        Some(
            libc::EBADF | libc::EBADFD | libc::ENODEV | libc::ENXIO | libc::EFAULT | libc::ENOTSOCK,
        ) => Class::Fatal,
        _ if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
            Class::Retry
        }
        _ => Class::Transient,
    }
}

/// A TUN read error that means the interface is gone: anything with an OS code but EAGAIN,
/// EINTR and EINVAL (after `ip link del` the read fails with EBADFD; EIO and the like on a read
/// never come from a link that is merely down, which just stops delivering). Without an OS code
/// it is a packet tun-rs refused.
pub(crate) fn tun_read_is_fatal(e: &io::Error) -> bool {
    match e.raw_os_error() {
        Some(code) => code != libc::EAGAIN && code != libc::EINTR && code != libc::EINVAL,
        None => false,
    }
}

/// A run of failures of one operation: the first is logged at `warn` with its cause, the rest
/// only counted, and the first success after them is logged at `info` with the count. So a
/// link that is down for a minute under a flood costs two log lines, not one per packet.
#[derive(Debug)]
pub(crate) struct Episode {
    what: &'static str,
    failed: u64,
}

impl Episode {
    /// An episode tracker for `what` ("sending to peers", "writing to the TUN", ...).
    pub(crate) const fn new(what: &'static str) -> Episode {
        Episode { what, failed: 0 }
    }

    /// Notes a failure.
    pub(crate) fn failed(&mut self, e: &io::Error) {
        if self.failed == 0 {
            warn!(
                "{} failed ({e}); the packets are dropped until it works again",
                self.what
            );
        }
        self.failed += 1;
    }

    /// Notes a success: ends a run of failures.
    pub(crate) fn ok(&mut self) {
        if self.failed > 0 {
            info!("{} works again after {} failures", self.what, self.failed);
            self.failed = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_kind() {
        let os = io::Error::from_raw_os_error;
        for transient in [
            libc::ENOBUFS,
            libc::ENETUNREACH,
            libc::EHOSTUNREACH,
            libc::ENETDOWN,
            libc::EADDRNOTAVAIL,
            libc::ECONNREFUSED,
            libc::EIO,
            libc::EMSGSIZE,
            libc::EINVAL,
            libc::EPERM,
        ] {
            assert_eq!(classify(&os(transient)), Class::Transient, "{transient}");
        }
        for retry in [libc::EAGAIN, libc::EINTR] {
            assert_eq!(classify(&os(retry)), Class::Retry);
        }
        for fatal in [libc::EBADF, libc::EBADFD, libc::ENODEV, libc::ENOTSOCK] {
            assert_eq!(classify(&os(fatal)), Class::Fatal);
        }
        assert_eq!(classify(&io::Error::other("tun-rs")), Class::Transient);
        assert!(tun_read_is_fatal(&os(libc::EBADFD)));
        assert!(!tun_read_is_fatal(&os(libc::EAGAIN)));
        assert!(!tun_read_is_fatal(&io::Error::other("bad packet")));
    }

    #[test]
    fn an_episode_counts_failures_until_a_success() {
        let mut e = Episode::new("testing");
        e.ok();
        assert_eq!(e.failed, 0);
        for _ in 0..5 {
            e.failed(&io::Error::from_raw_os_error(libc::EIO));
        }
        assert_eq!(e.failed, 5);
        e.ok();
        assert_eq!(e.failed, 0);
    }
}
