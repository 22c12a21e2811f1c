//! The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake as WireGuard uses it (whitepaper §5.4.2-5.4.5,
//! kernel `noise.c`). Pure functions of keys, messages, an injected clock and an injected RNG.
//!
//! A peer's [`Handshake`] goes Zeroed → CreatedInitiation → ConsumedResponse (initiator) or
//! Zeroed → ConsumedInitiation → CreatedResponse (responder); [`Handshake::begin_session`] then
//! derives the transport keys and zeroes the handshake.

use crate::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::crypto::{self, SecretBytes, TAG_LEN};
use crate::proto::constants::INITIATIONS_PER_SECOND;
use crate::proto::messages::{Initiation, Response};
use crate::proto::tai64n::{TIMESTAMP_LEN, Tai64n};
use crate::proto::time::{Instant, Now};
use rand_core::{CryptoRng, RngCore};
use std::time::Duration;
use zeroize::Zeroizing;

/// The Noise protocol name.
pub const CONSTRUCTION: &[u8] = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
/// WireGuard's prologue.
pub const IDENTIFIER: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";

/// Why a handshake step failed. Each is a silent drop on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A DH result was all zeros (low-order point) or the static-static DH is unusable.
    #[error("invalid public key (low-order point)")]
    LowOrder,
    /// An AEAD in the message did not authenticate.
    #[error("handshake message failed to decrypt")]
    Decrypt,
    /// The handshake is not in the state this step needs.
    #[error("unexpected handshake message for the current state")]
    State,
    /// The initiation's timestamp is not newer than the greatest accepted from this peer.
    #[error("replayed initiation (timestamp not newer)")]
    Replay,
    /// An initiation came less than 1/INITIATIONS_PER_SECOND after the previous one consumed.
    #[error("initiation flood (too soon after the previous one)")]
    Flood,
}

/// Initial chaining key and hash, shared by all handshakes.
fn initial_ck_hash(responder_static: &PublicKey) -> (SecretBytes, [u8; 32]) {
    let ck = crypto::hash(&[CONSTRUCTION]);
    let h = crypto::hash(&[&ck, IDENTIFIER]);
    let h = crypto::hash(&[&h, responder_static.as_bytes()]);
    (SecretBytes::new(ck), h)
}

fn mix_hash(h: &mut [u8; 32], data: &[u8]) {
    *h = crypto::hash(&[&h[..], data]);
}

/// ck = KDF1(ck, e); h = HASH(h ‖ e).
fn mix_ephemeral(ck: &mut SecretBytes, h: &mut [u8; 32], e: &[u8; 32]) {
    *ck = crypto::kdf1(ck, e);
    mix_hash(h, e);
}

/// (ck, k) = KDF2(ck, dh).
fn mix_key(ck: &mut SecretBytes, dh: &[u8; 32]) -> SecretBytes {
    let (c, k) = crypto::kdf2(ck, dh);
    *ck = c;
    k
}

fn x25519_public(secret: &x25519_dalek::StaticSecret) -> [u8; 32] {
    x25519_dalek::PublicKey::from(secret).to_bytes()
}

fn new_ephemeral<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> x25519_dalek::StaticSecret {
    let mut b = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut b[..]);
    x25519_dalek::StaticSecret::from(*b)
}

/// Keys of a newly derived session.
pub struct SessionKeys {
    /// Key for packets we send.
    pub send: SecretBytes,
    /// Key for packets we receive.
    pub recv: SecretBytes,
    /// Our index for this session (the receiver index of packets sent to us).
    pub local_index: u32,
    /// The peer's index (the receiver index we put on packets).
    pub remote_index: u32,
    /// True if we sent the initiation.
    pub initiator: bool,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("initiator", &self.initiator)
            .finish_non_exhaustive()
    }
}

enum State {
    Zeroed,
    CreatedInitiation {
        local_index: u32,
        ephemeral: x25519_dalek::StaticSecret,
        ck: SecretBytes,
        h: [u8; 32],
    },
    ConsumedInitiation {
        remote_index: u32,
        remote_ephemeral: [u8; 32],
        ck: SecretBytes,
        h: [u8; 32],
    },
    CreatedResponse {
        local_index: u32,
        remote_index: u32,
        ck: SecretBytes,
    },
    ConsumedResponse {
        local_index: u32,
        remote_index: u32,
        ck: SecretBytes,
    },
}

/// The first, peer-independent half of consuming an initiation: it authenticates the initiator's
/// static key, which tells the device which peer this is.
pub struct InitiationStart {
    /// The initiator's static public key, decrypted.
    pub initiator_static: PublicKey,
    remote_index: u32,
    remote_ephemeral: [u8; 32],
    ck: SecretBytes,
    h: [u8; 32],
    encrypted_timestamp: [u8; TIMESTAMP_LEN + TAG_LEN],
}

/// Decrypts the static key of an initiation addressed to `local` (§5.4.2, responder side).
pub fn start_consume_initiation(
    local: &PrivateKey,
    msg: &Initiation,
) -> Result<InitiationStart, HandshakeError> {
    let (mut ck, mut h) = initial_ck_hash(&local.public_key());
    mix_ephemeral(&mut ck, &mut h, &msg.ephemeral);
    let es = crypto::dh(local.secret(), &msg.ephemeral).ok_or(HandshakeError::LowOrder)?;
    let k = mix_key(&mut ck, &es);
    let mut stat = msg.encrypted_static;
    crypto::aead_open(&k, 0, &mut stat, &h).map_err(|_| HandshakeError::Decrypt)?;
    mix_hash(&mut h, &msg.encrypted_static);
    let mut key = [0u8; 32];
    key.copy_from_slice(&stat[..32]);
    Ok(InitiationStart {
        initiator_static: PublicKey::from_bytes(key),
        remote_index: msg.sender,
        remote_ephemeral: msg.ephemeral,
        ck,
        h,
        encrypted_timestamp: msg.encrypted_timestamp,
    })
}

/// One peer's handshake state.
pub struct Handshake {
    remote_static: PublicKey,
    psk: PresharedKey,
    /// DH(our static, their static), or `None` if it is all zeros (such a peer never handshakes).
    static_static: Option<SecretBytes>,
    state: State,
    latest_timestamp: Tai64n,
    last_initiation_consumed: Option<Instant>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("remote_static", &self.remote_static)
            .field("state", &self.state_name())
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// A handshake between `local` and the peer `remote` with an optional preshared key (all
    /// zeros = none).
    pub fn new(local: &PrivateKey, remote: PublicKey, psk: PresharedKey) -> Self {
        Handshake {
            remote_static: remote,
            psk,
            static_static: crypto::dh(local.secret(), remote.as_bytes()),
            state: State::Zeroed,
            latest_timestamp: Tai64n::default(),
            last_initiation_consumed: None,
        }
    }

    /// Recomputes the static-static DH after the device's private key changed; drops any
    /// handshake in flight.
    pub fn set_local_key(&mut self, local: &PrivateKey) {
        self.static_static = crypto::dh(local.secret(), self.remote_static.as_bytes());
        self.state = State::Zeroed;
    }

    /// Replaces the preshared key.
    pub fn set_psk(&mut self, psk: PresharedKey) {
        self.psk = psk;
    }

    /// The preshared key.
    pub fn psk(&self) -> &PresharedKey {
        &self.psk
    }

    /// The peer's static public key.
    pub fn remote_static(&self) -> &PublicKey {
        &self.remote_static
    }

    /// Forgets any handshake in flight (the kernel's `handshake_zero`).
    pub fn clear(&mut self) {
        self.state = State::Zeroed;
    }

    /// Our index of the handshake in flight, if any (what a response or cookie reply names).
    pub fn local_index(&self) -> Option<u32> {
        match &self.state {
            State::CreatedInitiation { local_index, .. }
            | State::CreatedResponse { local_index, .. }
            | State::ConsumedResponse { local_index, .. } => Some(*local_index),
            _ => None,
        }
    }

    /// Name of the current state (for logs and tests).
    pub fn state_name(&self) -> &'static str {
        match self.state {
            State::Zeroed => "zeroed",
            State::CreatedInitiation { .. } => "created-initiation",
            State::ConsumedInitiation { .. } => "consumed-initiation",
            State::CreatedResponse { .. } => "created-response",
            State::ConsumedResponse { .. } => "consumed-response",
        }
    }

    fn ss(&self) -> Result<&SecretBytes, HandshakeError> {
        self.static_static.as_ref().ok_or(HandshakeError::LowOrder)
    }

    /// Creates an initiation (MAC fields zero; the caller adds them). `local_index` is a fresh
    /// unique sender index.
    pub fn create_initiation<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        local: &PrivateKey,
        now: Now,
        rng: &mut R,
        local_index: u32,
    ) -> Result<Initiation, HandshakeError> {
        let ss = self.ss()?.clone();
        let (mut ck, mut h) = initial_ck_hash(&self.remote_static);
        let ephemeral = new_ephemeral(rng);
        let e_pub = x25519_public(&ephemeral);
        mix_ephemeral(&mut ck, &mut h, &e_pub);
        let es = crypto::dh(&ephemeral, self.remote_static.as_bytes())
            .ok_or(HandshakeError::LowOrder)?;
        let k = mix_key(&mut ck, &es);
        let mut encrypted_static = [0u8; 32 + TAG_LEN];
        encrypted_static[..32].copy_from_slice(local.public_key().as_bytes());
        crypto::aead_seal(&k, 0, &mut encrypted_static, &h);
        mix_hash(&mut h, &encrypted_static);
        let k = mix_key(&mut ck, &ss);
        let mut encrypted_timestamp = [0u8; TIMESTAMP_LEN + TAG_LEN];
        encrypted_timestamp[..TIMESTAMP_LEN].copy_from_slice(&Tai64n::from_wall(now.wall).0);
        crypto::aead_seal(&k, 0, &mut encrypted_timestamp, &h);
        mix_hash(&mut h, &encrypted_timestamp);
        self.state = State::CreatedInitiation {
            local_index,
            ephemeral,
            ck,
            h,
        };
        Ok(Initiation {
            sender: local_index,
            ephemeral: e_pub,
            encrypted_static,
            encrypted_timestamp,
            mac1: [0; 16],
            mac2: [0; 16],
        })
    }

    /// Finishes consuming an initiation whose static key named this peer: decrypts the timestamp
    /// and applies the replay and flood checks. On success the handshake is ConsumedInitiation.
    pub fn finish_consume_initiation(
        &mut self,
        start: InitiationStart,
        now: Now,
    ) -> Result<(), HandshakeError> {
        let InitiationStart {
            remote_index,
            remote_ephemeral,
            mut ck,
            mut h,
            encrypted_timestamp,
            ..
        } = start;
        let ss = self.ss()?.clone();
        let k = mix_key(&mut ck, &ss);
        let mut ts = encrypted_timestamp;
        crypto::aead_open(&k, 0, &mut ts, &h).map_err(|_| HandshakeError::Decrypt)?;
        mix_hash(&mut h, &encrypted_timestamp);
        let mut t = [0u8; TIMESTAMP_LEN];
        t.copy_from_slice(&ts[..TIMESTAMP_LEN]);
        let t = Tai64n(t);
        if !t.is_after(&self.latest_timestamp) {
            return Err(HandshakeError::Replay);
        }
        if let Some(last) = self.last_initiation_consumed {
            let min_gap = Duration::from_nanos(1_000_000_000 / INITIATIONS_PER_SECOND);
            if !last.has_expired(min_gap, now.mono) {
                return Err(HandshakeError::Flood);
            }
        }
        self.latest_timestamp = t;
        self.last_initiation_consumed = Some(now.mono);
        self.state = State::ConsumedInitiation {
            remote_index,
            remote_ephemeral,
            ck,
            h,
        };
        Ok(())
    }

    /// Creates the response to a consumed initiation (MAC fields zero). `local_index` is a fresh
    /// unique sender index.
    pub fn create_response<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        local_index: u32,
    ) -> Result<Response, HandshakeError> {
        let State::ConsumedInitiation {
            remote_index,
            remote_ephemeral,
            ck,
            h,
        } = &self.state
        else {
            return Err(HandshakeError::State);
        };
        let (remote_index, remote_ephemeral) = (*remote_index, *remote_ephemeral);
        let (mut ck, mut h) = (ck.clone(), *h);
        let ephemeral = new_ephemeral(rng);
        let e_pub = x25519_public(&ephemeral);
        mix_ephemeral(&mut ck, &mut h, &e_pub);
        let ee = crypto::dh(&ephemeral, &remote_ephemeral).ok_or(HandshakeError::LowOrder)?;
        ck = crypto::kdf1(&ck, &ee[..]);
        let se = crypto::dh(&ephemeral, self.remote_static.as_bytes())
            .ok_or(HandshakeError::LowOrder)?;
        ck = crypto::kdf1(&ck, &se[..]);
        let (c, tau, k) = crypto::kdf3(&ck, self.psk.as_bytes());
        ck = c;
        mix_hash(&mut h, &tau[..]);
        let mut encrypted_nothing = [0u8; TAG_LEN];
        crypto::aead_seal(&k, 0, &mut encrypted_nothing, &h);
        self.state = State::CreatedResponse {
            local_index,
            remote_index,
            ck,
        };
        Ok(Response {
            sender: local_index,
            receiver: remote_index,
            ephemeral: e_pub,
            encrypted_nothing,
            mac1: [0; 16],
            mac2: [0; 16],
        })
    }

    /// Consumes a response to our initiation (the device found this peer by `msg.receiver`).
    pub fn consume_response(
        &mut self,
        local: &PrivateKey,
        msg: &Response,
    ) -> Result<(), HandshakeError> {
        let State::CreatedInitiation {
            local_index,
            ephemeral,
            ck,
            h,
        } = &self.state
        else {
            return Err(HandshakeError::State);
        };
        if *local_index != msg.receiver {
            return Err(HandshakeError::State);
        }
        let (mut ck, mut h) = (ck.clone(), *h);
        mix_ephemeral(&mut ck, &mut h, &msg.ephemeral);
        let ee = crypto::dh(ephemeral, &msg.ephemeral).ok_or(HandshakeError::LowOrder)?;
        ck = crypto::kdf1(&ck, &ee[..]);
        let se = crypto::dh(local.secret(), &msg.ephemeral).ok_or(HandshakeError::LowOrder)?;
        ck = crypto::kdf1(&ck, &se[..]);
        let (c, tau, k) = crypto::kdf3(&ck, self.psk.as_bytes());
        ck = c;
        mix_hash(&mut h, &tau[..]);
        let mut nothing = msg.encrypted_nothing;
        crypto::aead_open(&k, 0, &mut nothing, &h).map_err(|_| HandshakeError::Decrypt)?;
        self.state = State::ConsumedResponse {
            local_index: msg.receiver,
            remote_index: msg.sender,
            ck,
        };
        Ok(())
    }

    /// Derives the transport keys once the handshake is complete (CreatedResponse or
    /// ConsumedResponse) and zeroes the handshake.
    pub fn begin_session(&mut self) -> Result<SessionKeys, HandshakeError> {
        let (local_index, remote_index, ck, initiator) = match &self.state {
            State::CreatedResponse {
                local_index,
                remote_index,
                ck,
            } => (*local_index, *remote_index, ck, false),
            State::ConsumedResponse {
                local_index,
                remote_index,
                ck,
            } => (*local_index, *remote_index, ck, true),
            _ => return Err(HandshakeError::State),
        };
        let (t1, t2) = crypto::kdf2(ck, &[]);
        let (send, recv) = if initiator { (t1, t2) } else { (t2, t1) };
        self.state = State::Zeroed;
        Ok(SessionKeys {
            send,
            recv,
            local_index,
            remote_index,
            initiator,
        })
    }
}

#[cfg(test)]
mod tests;
