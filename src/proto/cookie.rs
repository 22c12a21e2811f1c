//! MAC1/MAC2 and cookie replies: WireGuard's DoS defence (whitepaper §5.4.4 and §5.4.7, kernel
//! `cookie.c`).
//!
//! - [`CookieChecker`] is the device's responder side: it checks MAC1 on every handshake message,
//!   checks MAC2 when the device is under load, and makes cookie replies.
//! - [`CookieJar`] is a peer's initiator side: it puts MAC1 (and MAC2 while it holds a fresh cookie)
//!   on outgoing handshake messages and consumes cookie replies.

use crate::crypto::keys::PublicKey;
use crate::crypto::{self, MAC_LEN};
use crate::proto::constants::{COOKIE_SECRET_LATENCY, COOKIE_SECRET_MAX_AGE};
use crate::proto::messages::CookieReply;
use crate::proto::time::Instant;
use rand_core::{CryptoRng, RngCore};
use std::net::{IpAddr, SocketAddr};
use zeroize::Zeroizing;

/// Label of the MAC1 key.
pub const LABEL_MAC1: &[u8; 8] = b"mac1----";
/// Label of the cookie encryption key.
pub const LABEL_COOKIE: &[u8; 8] = b"cookie--";

/// Outcome of checking the MACs of a handshake message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacCheck {
    /// MAC1 is wrong: drop silently.
    Invalid,
    /// MAC1 is right; MAC2 was not checked (not under load) or is wrong/absent (under load).
    ValidMac1,
    /// MAC1 and MAC2 are right (under load).
    ValidWithCookie,
}

/// Why a cookie reply was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// We have sent no handshake message this reply could answer.
    #[error("unexpected cookie reply")]
    Unexpected,
    /// The reply did not decrypt with our last MAC1 as associated data.
    #[error("cookie reply failed to authenticate")]
    Auth,
}

/// The bytes a cookie is computed over: source IP then source port (big-endian), as the kernel.
fn source_bytes(src: SocketAddr, out: &mut [u8; 18]) -> &[u8] {
    let port = src.port().to_be_bytes();
    match src.ip().to_canonical() {
        IpAddr::V4(a) => {
            out[..4].copy_from_slice(&a.octets());
            out[4..6].copy_from_slice(&port);
            &out[..6]
        }
        IpAddr::V6(a) => {
            out[..16].copy_from_slice(&a.octets());
            out[16..18].copy_from_slice(&port);
            &out[..18]
        }
    }
}

/// The device's responder side of the cookie mechanism.
pub struct CookieChecker {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    secret: Zeroizing<[u8; 32]>,
    secret_birth: Option<Instant>,
}

impl std::fmt::Debug for CookieChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieChecker(<redacted>)")
    }
}

impl CookieChecker {
    /// A checker for a device whose static public key is `local`.
    pub fn new(local: &PublicKey) -> Self {
        CookieChecker {
            mac1_key: crypto::hash(&[LABEL_MAC1, local.as_bytes()]),
            cookie_key: crypto::hash(&[LABEL_COOKIE, local.as_bytes()]),
            secret: Zeroizing::new([0u8; 32]),
            secret_birth: None,
        }
    }

    /// The cookie for `src`: MAC(secret, ip ‖ port), the secret re-randomised every 120 s.
    fn cookie<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        now: Instant,
        rng: &mut R,
        src: SocketAddr,
    ) -> [u8; MAC_LEN] {
        let stale = match self.secret_birth {
            None => true,
            Some(b) => b.has_expired(COOKIE_SECRET_MAX_AGE, now),
        };
        if stale {
            rng.fill_bytes(&mut self.secret[..]);
            self.secret_birth = Some(now);
        }
        let mut buf = [0u8; 18];
        crypto::mac(&self.secret[..], &[source_bytes(src, &mut buf)])
    }

    /// Checks MAC1 of `msg` (a whole handshake message whose MAC1 is at `mac1_at`, MAC2 right
    /// after it), and MAC2 only when `under_load`.
    pub fn check<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        now: Instant,
        rng: &mut R,
        msg: &[u8],
        mac1_at: usize,
        src: SocketAddr,
        under_load: bool,
    ) -> MacCheck {
        let mac2_at = mac1_at + MAC_LEN;
        let (Some(covered1), Some(mac1), Some(covered2), Some(mac2)) = (
            msg.get(..mac1_at),
            msg.get(mac1_at..mac2_at),
            msg.get(..mac2_at),
            msg.get(mac2_at..mac2_at + MAC_LEN),
        ) else {
            return MacCheck::Invalid;
        };
        if !crypto::ct_eq(&crypto::mac(&self.mac1_key, &[covered1]), mac1) {
            return MacCheck::Invalid;
        }
        if !under_load {
            return MacCheck::ValidMac1;
        }
        let cookie = self.cookie(now, rng, src);
        if crypto::ct_eq(&crypto::mac(&cookie, &[covered2]), mac2) {
            MacCheck::ValidWithCookie
        } else {
            MacCheck::ValidMac1
        }
    }

    /// A cookie reply to the handshake message `msg` (MAC1 at `mac1_at`) with sender index
    /// `sender`, received from `src`.
    pub fn make_reply<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        now: Instant,
        rng: &mut R,
        msg: &[u8],
        mac1_at: usize,
        sender: u32,
        src: SocketAddr,
    ) -> Option<CookieReply> {
        let mac1 = msg.get(mac1_at..mac1_at + MAC_LEN)?;
        let cookie = self.cookie(now, rng, src);
        let mut nonce = [0u8; 24];
        rng.fill_bytes(&mut nonce);
        let mut sealed = [0u8; MAC_LEN + crypto::TAG_LEN];
        sealed[..MAC_LEN].copy_from_slice(&cookie);
        crypto::xaead_seal(&self.cookie_key, &nonce, &mut sealed, mac1);
        Some(CookieReply {
            receiver: sender,
            nonce,
            encrypted_cookie: sealed,
        })
    }
}

/// A peer's initiator side: MACs for outgoing handshake messages and the latest cookie.
pub struct CookieJar {
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
    last_mac1: Option<[u8; MAC_LEN]>,
    cookie: Option<(Zeroizing<[u8; MAC_LEN]>, Instant)>,
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieJar")
            .field("has_cookie", &self.cookie.is_some())
            .finish()
    }
}

impl CookieJar {
    /// A jar for messages sent to the peer whose static public key is `remote`.
    pub fn new(remote: &PublicKey) -> Self {
        CookieJar {
            mac1_key: crypto::hash(&[LABEL_MAC1, remote.as_bytes()]),
            cookie_key: crypto::hash(&[LABEL_COOKIE, remote.as_bytes()]),
            last_mac1: None,
            cookie: None,
        }
    }

    /// Writes MAC1, and MAC2 if a cookie younger than 115 s is held (zeros otherwise), into
    /// `msg` at `mac1_at` and `mac1_at + 16`. Remembers MAC1 for a cookie reply.
    pub fn add_macs(&mut self, now: Instant, msg: &mut [u8], mac1_at: usize) {
        let mac2_at = mac1_at + MAC_LEN;
        if msg.len() < mac2_at + MAC_LEN {
            return;
        }
        let Some((head, macs)) = msg.split_at_mut_checked(mac1_at) else {
            return;
        };
        let Some((mac1_out, rest)) = macs.split_first_chunk_mut::<MAC_LEN>() else {
            return;
        };
        let Some((mac2_out, _)) = rest.split_first_chunk_mut::<MAC_LEN>() else {
            return;
        };
        let mac1 = crypto::mac(&self.mac1_key, &[head]);
        // MAC2 covers everything before it, MAC1 included.
        let mac2 = match &self.cookie {
            Some((c, birth))
                if !birth.has_expired(COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY, now) =>
            {
                crypto::mac(&c[..], &[head, &mac1])
            }
            _ => [0u8; MAC_LEN],
        };
        *mac1_out = mac1;
        *mac2_out = mac2;
        self.last_mac1 = Some(mac1);
    }

    /// Consumes a cookie reply: decrypts it with our last MAC1 as associated data and keeps the
    /// cookie. A reply is accepted once per MAC1 sent.
    pub fn consume_reply(&mut self, now: Instant, reply: &CookieReply) -> Result<(), CookieError> {
        let mac1 = self.last_mac1.ok_or(CookieError::Unexpected)?;
        let mut buf = reply.encrypted_cookie;
        crypto::xaead_open(&self.cookie_key, &reply.nonce, &mut buf, &mac1)
            .map_err(|_| CookieError::Auth)?;
        let mut cookie = Zeroizing::new([0u8; MAC_LEN]);
        cookie.copy_from_slice(&buf[..MAC_LEN]);
        self.cookie = Some((cookie, now));
        self.last_mac1 = None;
        Ok(())
    }

    /// True while a cookie younger than 115 s is held.
    pub fn has_fresh_cookie(&self, now: Instant) -> bool {
        matches!(&self.cookie, Some((_, b)) if !b.has_expired(COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY, now))
    }
}

#[cfg(test)]
mod tests;
