//! Transport keypairs and the data-packet crypto (kernel `noise.c` keypairs, `send.c`/`receive.c`).
//!
//! Sealing and opening work in place on caller-provided buffers laid out as
//! `[16-byte header][payload][padding + 16-byte tag room]`, one packet or a batch at a time, and
//! never allocate. The AEAD key state is built once per keypair.

use crate::crypto::TAG_LEN;
use crate::crypto::aead::TransportKey;
use crate::proto::constants::{REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME};
use crate::proto::messages::{
    TRANSPORT_HEADER_LEN, TRANSPORT_MIN_LEN, TransportHeader, padded_len,
};
use crate::proto::noise::SessionKeys;
use crate::proto::replay::ReplayWindow;
use crate::proto::time::Instant;

/// Why a packet could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The buffer has no room for the header, the padding and the tag.
    #[error("buffer too small for header, padding and tag")]
    BufferTooSmall,
    /// The keypair may not send any more (expired by time or by message count).
    #[error("keypair expired")]
    Expired,
}

/// Why a transport packet was dropped on receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than 32 bytes or not a transport message.
    #[error("malformed transport packet")]
    Malformed,
    /// The keypair may not receive any more.
    #[error("keypair expired")]
    Expired,
    /// The counter was already seen or is older than the window.
    #[error("replayed or too old counter")]
    Replay,
    /// The tag did not verify.
    #[error("authentication failed")]
    Auth,
}

/// One session's transport keys and counters.
pub struct Keypair {
    /// Our index (receiver index of packets sent to us on this keypair).
    pub local_index: u32,
    /// The peer's index (receiver index we write).
    pub remote_index: u32,
    /// True if we initiated the handshake that made it.
    pub initiator: bool,
    /// When it was derived (monotonic).
    pub birth: Instant,
    send: TransportKey,
    recv: TransportKey,
    send_counter: u64,
    send_valid: bool,
    recv_valid: bool,
    replay: ReplayWindow,
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("initiator", &self.initiator)
            .field("send_counter", &self.send_counter)
            .finish_non_exhaustive()
    }
}

impl Keypair {
    /// A keypair from freshly derived session keys, born `now`.
    pub fn new(keys: SessionKeys, now: Instant) -> Self {
        Keypair {
            local_index: keys.local_index,
            remote_index: keys.remote_index,
            initiator: keys.initiator,
            birth: now,
            send: TransportKey::new(&keys.send),
            recv: TransportKey::new(&keys.recv),
            send_counter: 0,
            send_valid: true,
            recv_valid: true,
            replay: ReplayWindow::new(),
        }
    }

    /// The next sending counter (= packets sent so far).
    pub fn send_counter(&self) -> u64 {
        self.send_counter
    }

    /// Test hook: moves the sending counter (to exercise the message limits).
    #[doc(hidden)]
    pub fn set_send_counter(&mut self, c: u64) {
        self.send_counter = c;
    }

    /// True if this keypair may still send at `now`: valid, younger than REJECT_AFTER_TIME and
    /// below REJECT_AFTER_MESSAGES.
    pub fn can_send(&self, now: Instant) -> bool {
        self.send_valid
            && !self.birth.has_expired(REJECT_AFTER_TIME, now)
            && self.send_counter < REJECT_AFTER_MESSAGES
    }

    /// True if this keypair may still receive at `now`.
    pub fn can_receive(&self, now: Instant) -> bool {
        self.recv_valid
            && !self.birth.has_expired(REJECT_AFTER_TIME, now)
            && self.replay.next_expected() < REJECT_AFTER_MESSAGES
    }

    /// Buffer size needed to seal a payload of `len` bytes for a tunnel of `mtu`.
    pub fn sealed_len(len: usize, mtu: usize) -> usize {
        TRANSPORT_HEADER_LEN + padded_len(len, mtu) + TAG_LEN
    }

    /// The key that seals what this keypair sends (shared by crypto workers).
    pub fn send_key(&self) -> &TransportKey {
        &self.send
    }

    /// The key that opens what this keypair receives (shared by crypto workers).
    pub fn recv_key(&self) -> &TransportKey {
        &self.recv
    }

    /// The first half of sealing, the part that needs `&mut self`: reserves the next counter,
    /// writes the header into `buf[..16]` and zero padding after the payload `buf[16..16 + len]`.
    /// Returns the datagram length `n`; [`seal_prepared`] with [`Keypair::send_key`] on
    /// `buf[..n]` finishes it (on any thread).
    pub fn prepare_seal(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        len: usize,
        mtu: usize,
    ) -> Result<usize, SealError> {
        let padded = padded_len(len, mtu);
        let total = TRANSPORT_HEADER_LEN + padded + TAG_LEN;
        let Some(body) = buf.get_mut(..total) else {
            return Err(SealError::BufferTooSmall);
        };
        if !self.can_send(now) {
            self.send_valid = false;
            return Err(SealError::Expired);
        }
        let counter = self.send_counter;
        self.send_counter += 1;
        TransportHeader {
            receiver: self.remote_index,
            counter,
        }
        .write(body);
        if let Some(pad) = body.get_mut(TRANSPORT_HEADER_LEN + len..TRANSPORT_HEADER_LEN + padded) {
            pad.fill(0);
        }
        Ok(total)
    }

    /// Seals the payload `buf[16..16 + len]` in place: writes the header, zero padding and the
    /// tag. Returns the datagram length (`buf[..n]` is to be sent).
    pub fn seal(
        &mut self,
        now: Instant,
        buf: &mut [u8],
        len: usize,
        mtu: usize,
    ) -> Result<usize, SealError> {
        let total = self.prepare_seal(now, buf, len, mtu)?;
        if let Some(d) = buf.get_mut(..total) {
            seal_prepared(&self.send, d);
        }
        Ok(total)
    }

    /// Seals a batch: for each `i`, `bufs[i][16..16 + lens[i]]` is a payload; on return `lens[i]`
    /// is the datagram length. Stops at the first failure and returns how many were sealed.
    pub fn seal_batch(
        &mut self,
        now: Instant,
        bufs: &mut [&mut [u8]],
        lens: &mut [usize],
        mtu: usize,
    ) -> (usize, Option<SealError>) {
        for (i, (buf, len)) in bufs.iter_mut().zip(lens.iter_mut()).enumerate() {
            match self.seal(now, buf, *len, mtu) {
                Ok(n) => *len = n,
                Err(e) => return (i, Some(e)),
            }
        }
        (bufs.len().min(lens.len()), None)
    }

    /// The checks before decryption that need no `&mut`: the keypair may still receive and the
    /// counter is inside the replay window. Returns the counter.
    pub fn check_receive(&self, now: Instant, buf: &[u8]) -> Result<u64, OpenError> {
        let header = TransportHeader::parse(buf).map_err(|_| OpenError::Malformed)?;
        self.check_counter(now, header.counter, buf.len())?;
        Ok(header.counter)
    }

    /// [`Keypair::check_receive`] for a datagram of `len` bytes whose header was already read.
    pub fn check_counter(&self, now: Instant, counter: u64, len: usize) -> Result<(), OpenError> {
        if len < TRANSPORT_MIN_LEN {
            return Err(OpenError::Malformed);
        }
        if !self.can_receive(now) {
            return Err(OpenError::Expired);
        }
        if !self.replay.check(counter) {
            return Err(OpenError::Replay);
        }
        Ok(())
    }

    /// After a datagram under `counter` authenticated: marks the counter as seen. False if it
    /// was seen meanwhile (a duplicate in the same batch): the packet must then be dropped.
    pub fn accept_counter(&mut self, counter: u64) -> bool {
        self.replay.accept(counter)
    }

    /// Opens a transport datagram in place. On success returns the counter and the plaintext
    /// length; the plaintext (padded inner packet) is `buf[16..16 + n]`. The replay window is
    /// updated only after the packet authenticated.
    pub fn open(&mut self, now: Instant, buf: &mut [u8]) -> Result<(u64, usize), OpenError> {
        let counter = match self.check_receive(now, buf) {
            Ok(c) => c,
            Err(OpenError::Expired) => {
                self.recv_valid = false;
                return Err(OpenError::Expired);
            }
            Err(e) => return Err(e),
        };
        let n = open_datagram(&self.recv, buf)?;
        if !self.replay.accept(counter) {
            return Err(OpenError::Replay);
        }
        Ok((counter, n))
    }

    /// Opens a batch of datagrams of one keypair in place; `results[i]` receives the outcome for
    /// `bufs[i]`.
    pub fn open_batch(
        &mut self,
        now: Instant,
        bufs: &mut [&mut [u8]],
        results: &mut [Result<(u64, usize), OpenError>],
    ) {
        for (buf, r) in bufs.iter_mut().zip(results.iter_mut()) {
            *r = self.open(now, buf);
        }
    }

    /// Stops sending on this keypair (receiving continues until it expires).
    pub fn expire_sending(&mut self) {
        self.send_valid = false;
    }
}

/// The second half of sealing (see [`Keypair::prepare_seal`]): encrypts `dgram[16..n - 16]`
/// in place under the counter in the header and writes the tag into the last 16 bytes. Needs only
/// the key, so a batch can be split across threads.
pub fn seal_prepared(key: &TransportKey, dgram: &mut [u8]) {
    let Some(body_len) = dgram.len().checked_sub(TRANSPORT_MIN_LEN) else {
        return;
    };
    let Ok(header) = TransportHeader::parse(dgram) else {
        return;
    };
    let Some(body) = dgram.get_mut(TRANSPORT_HEADER_LEN..) else {
        return;
    };
    let (data, tag_out) = body.split_at_mut(body_len);
    tag_out.copy_from_slice(&key.seal(header.counter, data));
}

/// Verifies and decrypts a transport datagram in place under the counter in its header; returns
/// the plaintext length (the plaintext is `dgram[16..16 + n]`). Needs only the key; the replay
/// window is the caller's (see [`Keypair::check_receive`] and [`Keypair::accept_counter`]).
pub fn open_datagram(key: &TransportKey, dgram: &mut [u8]) -> Result<usize, OpenError> {
    let header = TransportHeader::parse(dgram).map_err(|_| OpenError::Malformed)?;
    open_with_counter(key, header.counter, dgram)
}

/// [`open_datagram`] under `counter`, read from the header earlier (the receive path's ticket),
/// so the header is not parsed again.
pub fn open_with_counter(
    key: &TransportKey,
    counter: u64,
    dgram: &mut [u8],
) -> Result<usize, OpenError> {
    let body_len = dgram
        .len()
        .checked_sub(TRANSPORT_MIN_LEN)
        .ok_or(OpenError::Malformed)?;
    let body = dgram
        .get_mut(TRANSPORT_HEADER_LEN..)
        .ok_or(OpenError::Malformed)?;
    let (data, tag) = body.split_at_mut(body_len);
    let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| OpenError::Malformed)?;
    key.open(counter, data, tag).map_err(|_| OpenError::Auth)?;
    Ok(body_len)
}

#[cfg(test)]
mod tests;
