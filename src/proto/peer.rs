//! One peer's protocol state (kernel `peer.c` with the per-peer parts of `send.c`, `receive.c`
//! and `timers.c`): handshake, cookie jar, the three keypair slots, timers, staged packets,
//! endpoint and counters.
//!
//! Every method takes the injected time and a [`Ctx`] with the device's key, RNG and index table;
//! datagrams to send are appended to an output list as [`Transmit`]s.

use crate::crypto::aead::TransportKey;
use crate::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::proto::constants::{
    KEEPALIVE_TIMEOUT, MAX_STAGED_PACKETS, MAX_TIMER_HANDSHAKES, REJECT_AFTER_TIME,
    REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_TIMEOUT,
};
use crate::proto::cookie::CookieJar;
use crate::proto::index::{IndexTable, PeerId};
use crate::proto::keypair::{self, Keypair, OpenError, SealError};
use crate::proto::messages::{
    CookieReply, Initiation, Response, TRANSPORT_HEADER_LEN, TransportHeader,
};
use crate::proto::noise::{Handshake, HandshakeError, InitiationStart};
use crate::proto::time::{Instant, Now};
use crate::proto::timers::Timers;
use rand_core::CryptoRngCore;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Where a peer is reached: its address, and the local address it last wrote to (replies leave
/// from there: the kernel's sticky source). `local` is forgotten before each handshake retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The peer's address and port.
    pub addr: SocketAddr,
    /// Our address the peer's last packet arrived at, if known.
    pub local: Option<IpAddr>,
}

impl Endpoint {
    /// An endpoint with no known local address.
    pub fn new(addr: SocketAddr) -> Self {
        Endpoint { addr, local: None }
    }
}

/// What a [`Transmit`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransmitKind {
    /// Handshake initiation.
    Initiation,
    /// Handshake response.
    Response,
    /// Cookie reply.
    CookieReply,
    /// Transport data.
    Data,
    /// Transport keepalive (empty payload).
    Keepalive,
}

/// A datagram to send.
#[derive(Clone, Debug)]
pub struct Transmit {
    /// The peer it is for (none for a cookie reply to an unauthenticated source).
    pub peer: Option<PeerId>,
    /// Where to send it.
    pub endpoint: Endpoint,
    /// What it is.
    pub kind: TransmitKind,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Result of handing an inner packet to [`Peer::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendResult {
    /// Sealed in place: send `buf[..len]` to `endpoint`.
    Sealed {
        /// Datagram length.
        len: usize,
        /// Destination.
        endpoint: Endpoint,
    },
    /// Header and padding written and the counter reserved ([`Peer::prepare_send`]): encrypt
    /// `buf[..len]` with `keypair::seal_prepared` and the send key of the keypair whose local
    /// index is `keypair` ([`Peer::send_key`]), then send it to `endpoint`.
    Prepared {
        /// Datagram length.
        len: usize,
        /// Destination.
        endpoint: Endpoint,
        /// Local index of the keypair that reserved the counter.
        keypair: u32,
    },
    /// No usable session: the packet was copied to the staging queue (a handshake may have
    /// been queued); it leaves when the session is up.
    Staged,
    /// Dropped: the buffer has no room for the header, padding and tag.
    BufferTooSmall,
}

/// A transport datagram that authenticated and was decrypted in place: what
/// [`Peer::receive_opened`] needs, read from its header once, before decryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The receiver index: the local index of the keypair that opened it.
    pub keypair: u32,
    /// Its counter (checked against the replay window before decryption, recorded after).
    pub counter: u64,
    /// Plaintext bytes at `buf[16..]` (0 for a keepalive).
    pub plain_len: usize,
}

/// Result of a transport packet accepted by [`Peer::receive_data`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataReceived {
    /// An inner IP packet at `buf[offset..offset + len]`, trimmed to its IP length.
    Packet {
        /// Start of the inner packet in the datagram buffer.
        offset: usize,
        /// Its length.
        len: usize,
        /// Its source address (to check against the peer's AllowedIPs).
        source: IpAddr,
    },
    /// A keepalive.
    Keepalive,
}

/// Why a packet for this peer was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// A transport packet failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// No keypair with that index.
    #[error("no keypair with that index")]
    UnknownIndex,
    /// The decrypted payload is not a well-formed IPv4/IPv6 packet.
    #[error("invalid inner packet")]
    InvalidInnerPacket,
}

/// Traffic counters, as `wg show` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Bytes of datagrams received from the peer (authenticated ones).
    pub rx_bytes: u64,
    /// Bytes of datagrams sent to the peer: counted by the I/O layer through
    /// [`crate::proto::device::Device::note_sent`] once the send succeeded, as the kernel counts.
    pub tx_bytes: u64,
    /// Wall-clock time of the last completed handshake (since the Unix epoch).
    pub last_handshake: Option<Duration>,
    /// Staged packets dropped (queue full, or handshake given up).
    pub staged_dropped: u64,
    /// Handshake initiations sent.
    pub initiations_sent: u64,
    /// Transport datagrams from the peer refused as replays (counter seen or behind the
    /// window).
    pub replayed: u64,
    /// Authenticated packets from the peer whose inner source is not in its AllowedIPs.
    pub bad_source: u64,
}

/// The device's state that a peer operation needs.
pub struct Ctx<'a> {
    /// The device's static private key.
    pub local: &'a PrivateKey,
    /// The device's random source.
    pub rng: &'a mut dyn CryptoRngCore,
    /// The device's index table.
    pub index: &'a mut IndexTable,
    /// This peer's id.
    pub id: PeerId,
    /// Tunnel MTU (for padding).
    pub mtu: usize,
    /// False while the device has no private key: no handshake is sent.
    pub key_set: bool,
}

struct Staged {
    buf: Vec<u8>,
    len: usize,
}

/// One peer.
pub struct Peer {
    public_key: PublicKey,
    handshake: Handshake,
    cookies: CookieJar,
    handshake_index: Option<u32>,
    previous: Option<Keypair>,
    current: Option<Keypair>,
    next: Option<Keypair>,
    /// The timers (public for inspection in tests and by the daemon).
    pub timers: Timers,
    staged: VecDeque<Staged>,
    endpoint: Option<Endpoint>,
    last_sent_handshake: Option<Instant>,
    sent_lastminute_handshake: bool,
    /// Counters.
    pub stats: PeerStats,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("public_key", &self.public_key)
            .field("endpoint", &self.endpoint)
            .field("handshake", &self.handshake)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// The length of the IP packet at the start of `p` (IPv4 total length, IPv6 payload length +
/// 40) and its source address, if it is well formed and fits in `p`.
pub fn inner_packet(p: &[u8]) -> Option<(usize, IpAddr)> {
    match p.first()? >> 4 {
        4 if p.len() >= 20 => {
            let len = usize::from(u16::from_be_bytes(p.get(2..4)?.try_into().ok()?));
            let src: [u8; 4] = p.get(12..16)?.try_into().ok()?;
            (20..=p.len())
                .contains(&len)
                .then_some((len, IpAddr::from(src)))
        }
        6 if p.len() >= 40 => {
            let len = usize::from(u16::from_be_bytes(p.get(4..6)?.try_into().ok()?)) + 40;
            let src: [u8; 16] = p.get(8..24)?.try_into().ok()?;
            (len <= p.len()).then_some((len, IpAddr::from(src)))
        }
        _ => None,
    }
}

impl Peer {
    /// A peer with static key `remote` and preshared key `psk` (zero = none), for a device whose
    /// private key is `local`.
    pub fn new(local: &PrivateKey, remote: PublicKey, psk: PresharedKey) -> Self {
        Peer {
            public_key: remote,
            handshake: Handshake::new(local, remote, psk),
            cookies: CookieJar::new(&remote),
            handshake_index: None,
            previous: None,
            current: None,
            next: None,
            timers: Timers::default(),
            staged: VecDeque::new(),
            endpoint: None,
            last_sent_handshake: None,
            sent_lastminute_handshake: false,
            stats: PeerStats::default(),
        }
    }

    /// The peer's static public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The preshared key.
    pub fn preshared_key(&self) -> &PresharedKey {
        self.handshake.psk()
    }

    /// Replaces the preshared key.
    pub fn set_preshared_key(&mut self, psk: PresharedKey) {
        self.handshake.set_psk(psk);
    }

    /// Recomputes handshake state after the device's private key changed.
    pub fn set_local_key(&mut self, local: &PrivateKey) {
        self.handshake.set_local_key(local);
    }

    /// The persistent keepalive interval, if on.
    pub fn persistent_keepalive(&self) -> Option<Duration> {
        self.timers.persistent_keepalive_interval
    }

    /// After the device's private key changed: recompute the static-static DH, drop the
    /// handshake in flight and stop sending on the current keypairs (kernel
    /// `wg_noise_expire_current_peer_keypairs`); a new handshake follows on demand.
    pub fn rekey_after_identity_change(&mut self, ctx: &mut Ctx<'_>) {
        self.handshake.set_local_key(ctx.local);
        if let Some(i) = self.handshake_index.take() {
            ctx.index.remove(i);
        }
        for kp in [&mut self.current, &mut self.next].into_iter().flatten() {
            kp.expire_sending();
        }
    }

    /// The current endpoint.
    pub fn endpoint(&self) -> Option<Endpoint> {
        self.endpoint
    }

    /// Sets the endpoint (configuration, or roaming after an authenticated packet).
    pub fn set_endpoint(&mut self, e: Endpoint) {
        self.endpoint = Some(e);
    }

    /// The handshake (for inspection).
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// The current keypair, if any.
    pub fn current_keypair(&self) -> Option<&Keypair> {
        self.current.as_ref()
    }

    /// The current keypair, mutable (test hook).
    #[doc(hidden)]
    pub fn current_keypair_mut(&mut self) -> Option<&mut Keypair> {
        self.current.as_mut()
    }

    /// The previous keypair, if any.
    pub fn previous_keypair(&self) -> Option<&Keypair> {
        self.previous.as_ref()
    }

    /// The next (unconfirmed, responder side) keypair, if any.
    pub fn next_keypair(&self) -> Option<&Keypair> {
        self.next.as_ref()
    }

    /// Packets waiting for a session.
    pub fn staged_len(&self) -> usize {
        self.staged.len()
    }

    /// The earliest timer deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Sets the persistent keepalive interval (None = off). When turned on, a keepalive is sent
    /// at once, as the kernel does.
    pub fn set_persistent_keepalive(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Now,
        interval: Option<Duration>,
        out: &mut Vec<Transmit>,
    ) {
        let interval = interval.filter(|d| !d.is_zero());
        self.timers.persistent_keepalive_interval = interval;
        if interval.is_some() {
            self.send_keepalive(ctx, now, out);
        } else {
            self.timers.persistent_keepalive = None;
        }
    }

    fn emit(&mut self, ctx: &Ctx<'_>, kind: TransmitKind, data: Vec<u8>, out: &mut Vec<Transmit>) {
        if let Some(endpoint) = self.endpoint {
            out.push(Transmit {
                peer: Some(ctx.id),
                endpoint,
                kind,
                data,
            });
        }
    }

    fn set_handshake_index(&mut self, ctx: &mut Ctx<'_>) -> u32 {
        if let Some(old) = self.handshake_index.take() {
            ctx.index.remove(old);
        }
        let i = ctx.index.allocate(ctx.rng, ctx.id);
        self.handshake_index = Some(i);
        i
    }

    fn drop_keypair(ctx: &mut Ctx<'_>, kp: Option<Keypair>) {
        if let Some(kp) = kp {
            ctx.index.remove(kp.local_index);
        }
    }

    /// The kernel's `wg_packet_send_queued_handshake_initiation`: sends an initiation unless one
    /// was sent (or a response) less than REKEY_TIMEOUT ago.
    pub fn send_handshake_initiation(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Now,
        is_retry: bool,
        out: &mut Vec<Transmit>,
    ) {
        if !is_retry {
            self.timers.handshake_attempts = 0;
        }
        if !ctx.key_set {
            return;
        }
        if self
            .last_sent_handshake
            .is_some_and(|t| !t.has_expired(REKEY_TIMEOUT, now.mono))
        {
            return;
        }
        self.last_sent_handshake = Some(now.mono);
        let index = self.set_handshake_index(ctx);
        let Ok(init) = self
            .handshake
            .create_initiation(ctx.local, now, ctx.rng, index)
        else {
            return;
        };
        let mut bytes = init.to_bytes();
        self.cookies
            .add_macs(now.mono, &mut bytes, Initiation::MAC1_OFFSET);
        self.timers.any_authenticated_packet_traversal(now.mono);
        self.timers.any_authenticated_packet_sent();
        self.stats.initiations_sent += 1;
        self.emit(ctx, TransmitKind::Initiation, bytes.to_vec(), out);
        self.timers.handshake_initiated(now.mono, ctx.rng);
    }

    /// Places a new keypair as the kernel's `add_new_keypair` does: an initiator uses it at once;
    /// a responder parks it in `next` until the first data packet confirms it.
    fn add_keypair(&mut self, ctx: &mut Ctx<'_>, kp: Keypair) {
        if kp.initiator {
            if let Some(next) = self.next.take() {
                let old_prev = self.previous.replace(next);
                Self::drop_keypair(ctx, old_prev);
                let old_cur = self.current.take();
                Self::drop_keypair(ctx, old_cur);
            } else {
                let cur = self.current.take();
                let old_prev = std::mem::replace(&mut self.previous, cur);
                Self::drop_keypair(ctx, old_prev);
            }
            self.current = Some(kp);
        } else {
            let old_next = self.next.replace(kp);
            Self::drop_keypair(ctx, old_next);
            let old_prev = self.previous.take();
            Self::drop_keypair(ctx, old_prev);
        }
    }

    /// Consumes an initiation whose static key named this peer, and answers it.
    pub fn receive_initiation(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Now,
        from: Endpoint,
        start: InitiationStart,
        len: usize,
        out: &mut Vec<Transmit>,
    ) -> Result<(), PeerError> {
        self.handshake.finish_consume_initiation(start, now)?;
        self.endpoint = Some(from);
        self.stats.rx_bytes += len as u64;
        // wg_packet_send_handshake_response
        self.last_sent_handshake = Some(now.mono);
        let index = self.set_handshake_index(ctx);
        let resp = self.handshake.create_response(ctx.rng, index)?;
        let mut bytes = resp.to_bytes();
        self.cookies
            .add_macs(now.mono, &mut bytes, Response::MAC1_OFFSET);
        let keys = self.handshake.begin_session()?;
        self.handshake_index = None;
        self.add_keypair(ctx, Keypair::new(keys, now.mono));
        self.timers.session_derived(now.mono);
        self.timers.any_authenticated_packet_traversal(now.mono);
        self.timers.any_authenticated_packet_sent();
        self.emit(ctx, TransmitKind::Response, bytes.to_vec(), out);
        self.timers.any_authenticated_packet_received();
        self.timers.any_authenticated_packet_traversal(now.mono);
        Ok(())
    }

    /// Consumes a response to our initiation; the session starts and staged packets (or a
    /// keepalive) confirm it.
    pub fn receive_response(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Now,
        from: Endpoint,
        msg: &Response,
        out: &mut Vec<Transmit>,
    ) -> Result<(), PeerError> {
        self.handshake.consume_response(ctx.local, msg)?;
        self.endpoint = Some(from);
        let keys = self.handshake.begin_session()?;
        self.handshake_index = None;
        self.add_keypair(ctx, Keypair::new(keys, now.mono));
        self.timers.session_derived(now.mono);
        self.handshake_complete(now);
        self.stats.rx_bytes += crate::proto::messages::RESPONSE_LEN as u64;
        self.send_keepalive(ctx, now, out);
        self.timers.any_authenticated_packet_received();
        self.timers.any_authenticated_packet_traversal(now.mono);
        Ok(())
    }

    /// Consumes a cookie reply to our last handshake message. Never updates the endpoint.
    pub fn receive_cookie_reply(
        &mut self,
        now: Now,
        reply: &CookieReply,
    ) -> Result<(), crate::proto::cookie::CookieError> {
        self.cookies.consume_reply(now.mono, reply)
    }

    fn handshake_complete(&mut self, now: Now) {
        self.timers.handshake_complete();
        self.sent_lastminute_handshake = false;
        self.stats.last_handshake = Some(now.wall);
    }

    /// True if `index` is the local index of one of this peer's keypairs or its handshake.
    pub fn owns_index(&self, index: u32) -> bool {
        self.handshake_index == Some(index)
            || [&self.current, &self.previous, &self.next]
                .into_iter()
                .flatten()
                .any(|k| k.local_index == index)
    }

    /// The keypair slot whose local index is `index`.
    fn slot_for(&self, index: u32) -> Option<&Keypair> {
        [&self.current, &self.next, &self.previous]
            .into_iter()
            .flatten()
            .find(|k| k.local_index == index)
    }

    /// The checks before decrypting a transport datagram that need no `&mut` (known keypair,
    /// not expired, counter inside the replay window); returns the key that opens it. Crypto
    /// workers call this through a shared `&Device`.
    ///
    /// `keypair` (the receiver index) and `counter` come from the datagram's header, read once
    /// by the caller; `len` is the datagram's length.
    pub fn receive_key(
        &self,
        now: Now,
        keypair: u32,
        counter: u64,
        len: usize,
    ) -> Result<&TransportKey, PeerError> {
        let kp = self.slot_for(keypair).ok_or(PeerError::UnknownIndex)?;
        kp.check_counter(now.mono, counter, len)?;
        Ok(kp.recv_key())
    }

    /// Receives a transport datagram: [`Peer::receive_key`], the AEAD, and
    /// [`Peer::receive_opened`] in one.
    pub fn receive_data(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Now,
        from: Endpoint,
        buf: &mut [u8],
        out: &mut Vec<Transmit>,
    ) -> Result<DataReceived, PeerError> {
        let header = TransportHeader::parse(buf).map_err(|_| OpenError::Malformed)?;
        let key = self.receive_key(now, header.receiver, header.counter, buf.len())?;
        let plain_len = keypair::open_with_counter(key, header.counter, buf)?;
        let opened = Opened {
            keypair: header.receiver,
            counter: header.counter,
            plain_len,
        };
        self.receive_opened(ctx, now, from, buf, opened, out)
    }

    /// The rest of receiving once the datagram authenticated and was decrypted in place
    /// (`opened.plain_len` bytes at `buf[16..]`): replay window update, roaming, key rotation,
    /// timers, and the inner packet's length and source. The keypair is found again by its
    /// local index among this peer's three slots (an earlier datagram of the batch may have
    /// rotated it from next to current), without parsing the header again.
    pub fn receive_opened(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Now,
        from: Endpoint,
        buf: &mut [u8],
        opened: Opened,
        out: &mut Vec<Transmit>,
    ) -> Result<DataReceived, PeerError> {
        let Opened {
            keypair,
            counter,
            plain_len,
        } = opened;
        let kp = [&mut self.current, &mut self.next, &mut self.previous]
            .into_iter()
            .flatten()
            .find(|k| k.local_index == keypair)
            .ok_or(PeerError::UnknownIndex)?;
        if !kp.accept_counter(counter) {
            self.stats.replayed += 1;
            return Err(OpenError::Replay.into());
        }
        // Authenticated and not a replay: the peer may roam here.
        self.endpoint = Some(from);
        self.stats.rx_bytes += buf.len() as u64;
        let was_next = self.next.as_ref().is_some_and(|k| k.local_index == keypair);
        if was_next {
            // wg_noise_received_with_keypair: next → current → previous.
            let next = self.next.take();
            let cur = std::mem::replace(&mut self.current, next);
            let old_prev = std::mem::replace(&mut self.previous, cur);
            Self::drop_keypair(ctx, old_prev);
            self.handshake_complete(now);
            self.send_staged(ctx, now, out);
        }
        self.keep_key_fresh_on_receive(ctx, now, out);
        self.timers.any_authenticated_packet_received();
        self.timers.any_authenticated_packet_traversal(now.mono);
        if plain_len == 0 {
            return Ok(DataReceived::Keepalive);
        }
        self.timers.data_received(now.mono);
        let plain = buf
            .get(TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + plain_len)
            .ok_or(PeerError::InvalidInnerPacket)?;
        let (len, source) = inner_packet(plain).ok_or(PeerError::InvalidInnerPacket)?;
        Ok(DataReceived::Packet {
            offset: TRANSPORT_HEADER_LEN,
            len,
            source,
        })
    }

    /// The receive side of `keep_key_fresh`: an initiator whose session is nearly too old to
    /// receive on (REJECT − KEEPALIVE − REKEY_TIMEOUT = 165 s) starts a handshake, once.
    fn keep_key_fresh_on_receive(&mut self, ctx: &mut Ctx<'_>, now: Now, out: &mut Vec<Transmit>) {
        if self.sent_lastminute_handshake {
            return;
        }
        let stale = self.current.as_ref().is_some_and(|k| {
            k.can_send(now.mono)
                && k.initiator
                && k.birth.has_expired(
                    REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT,
                    now.mono,
                )
        });
        if stale {
            self.sent_lastminute_handshake = true;
            self.send_handshake_initiation(ctx, now, false, out);
        }
    }

    /// The send side of `keep_key_fresh`: rekey after REKEY_AFTER_MESSAGES, or (initiator only)
    /// after REKEY_AFTER_TIME.
    fn keep_key_fresh_on_send(&mut self, ctx: &mut Ctx<'_>, now: Now, out: &mut Vec<Transmit>) {
        let stale = self.current.as_ref().is_some_and(|k| {
            k.can_send(now.mono)
                && (k.send_counter() > REKEY_AFTER_MESSAGES
                    || (k.initiator && k.birth.has_expired(REKEY_AFTER_TIME, now.mono)))
        });
        if stale {
            self.send_handshake_initiation(ctx, now, false, out);
        }
    }

    fn stage(&mut self, ctx: &Ctx<'_>, payload: &[u8]) {
        let mut buf = vec![0u8; Keypair::sealed_len(payload.len(), ctx.mtu)];
        // sealed_len leaves room for the header, the payload (padded) and the tag.
        if let Some(b) = buf.get_mut(TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + payload.len()) {
            b.copy_from_slice(payload);
        }
        self.staged.push_back(Staged {
            buf,
            len: payload.len(),
        });
        while self.staged.len() > MAX_STAGED_PACKETS {
            self.staged.pop_front();
            self.stats.staged_dropped += 1;
        }
    }

    /// Prepares the inner packet `buf[16..16 + len]` for sending: with a usable session,
    /// reserves a counter and writes the header and padding (the AEAD is left to the caller, so a
    /// batch can be encrypted on several cores); otherwise stages a copy and starts a handshake.
    pub fn prepare_send(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Now,
        buf: &mut [u8],
        len: usize,
        out: &mut Vec<Transmit>,
    ) -> SendResult {
        let Some(payload) = buf.get(TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + len) else {
            return SendResult::BufferTooSmall;
        };
        let ready = self.staged.is_empty()
            && self.endpoint.is_some()
            && self.current.as_ref().is_some_and(|k| k.can_send(now.mono));
        if !ready {
            self.stage(ctx, payload);
            self.send_staged(ctx, now, out);
            return SendResult::Staged;
        }
        let (Some(kp), Some(endpoint)) = (self.current.as_mut(), self.endpoint) else {
            return SendResult::BufferTooSmall;
        };
        let keypair = kp.local_index;
        match kp.prepare_seal(now.mono, buf, len, ctx.mtu) {
            Ok(n) => {
                self.after_data_sent(ctx, now, len > 0, out);
                SendResult::Prepared {
                    len: n,
                    endpoint,
                    keypair,
                }
            }
            Err(SealError::BufferTooSmall) => SendResult::BufferTooSmall,
            Err(SealError::Expired) => {
                if let Some(payload) = buf.get(TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + len) {
                    let copy = payload.to_vec();
                    self.stage(ctx, &copy);
                }
                self.send_handshake_initiation(ctx, now, false, out);
                SendResult::Staged
            }
        }
    }

    /// The send key of the keypair with local index `keypair` if it is still the current one.
    pub fn send_key(&self, keypair: u32) -> Option<&TransportKey> {
        self.current
            .as_ref()
            .filter(|k| k.local_index == keypair)
            .map(Keypair::send_key)
    }

    /// Sends the inner packet `buf[16..16 + len]`: [`Peer::prepare_send`] and the AEAD in one.
    pub fn send(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Now,
        buf: &mut [u8],
        len: usize,
        out: &mut Vec<Transmit>,
    ) -> SendResult {
        match self.prepare_send(ctx, now, buf, len, out) {
            SendResult::Prepared {
                len,
                endpoint,
                keypair,
            } => match (self.send_key(keypair), buf.get_mut(..len)) {
                (Some(key), Some(d)) => {
                    keypair::seal_prepared(key, d);
                    SendResult::Sealed { len, endpoint }
                }
                _ => SendResult::BufferTooSmall,
            },
            other => other,
        }
    }

    fn after_data_sent(
        &mut self,
        ctx: &mut Ctx<'_>,
        now: Now,
        data: bool,
        out: &mut Vec<Transmit>,
    ) {
        self.timers.any_authenticated_packet_traversal(now.mono);
        self.timers.any_authenticated_packet_sent();
        if data {
            self.timers.data_sent(now.mono, ctx.rng);
        }
        self.keep_key_fresh_on_send(ctx, now, out);
    }

    /// The kernel's `wg_packet_send_staged_packets`: seals every staged packet with the current
    /// keypair, or starts a handshake if there is none usable.
    pub fn send_staged(&mut self, ctx: &mut Ctx<'_>, now: Now, out: &mut Vec<Transmit>) {
        if self.staged.is_empty() {
            return;
        }
        let usable = self.current.as_ref().is_some_and(|k| k.can_send(now.mono));
        let Some(endpoint) = self.endpoint.filter(|_| usable) else {
            self.send_handshake_initiation(ctx, now, false, out);
            return;
        };
        let mut any_data = false;
        let mut sent_any = false;
        while let Some(mut s) = self.staged.pop_front() {
            let Some(kp) = self.current.as_mut() else {
                self.staged.push_front(s);
                break;
            };
            match kp.seal(now.mono, &mut s.buf, s.len, ctx.mtu) {
                Ok(n) => {
                    s.buf.truncate(n);
                    let kind = if s.len == 0 {
                        TransmitKind::Keepalive
                    } else {
                        any_data = true;
                        TransmitKind::Data
                    };
                    sent_any = true;
                    out.push(Transmit {
                        peer: Some(ctx.id),
                        endpoint,
                        kind,
                        data: s.buf,
                    });
                }
                Err(SealError::BufferTooSmall) => self.stats.staged_dropped += 1,
                Err(SealError::Expired) => {
                    self.staged.push_front(s);
                    self.send_handshake_initiation(ctx, now, false, out);
                    break;
                }
            }
        }
        if sent_any {
            self.after_data_sent(ctx, now, any_data, out);
        }
    }

    /// The kernel's `wg_packet_send_keepalive`: an empty packet unless data is already staged.
    pub fn send_keepalive(&mut self, ctx: &mut Ctx<'_>, now: Now, out: &mut Vec<Transmit>) {
        if self.staged.is_empty() {
            self.stage(ctx, &[]);
        }
        self.send_staged(ctx, now, out);
    }

    /// Drops every key and handshake in flight (timer_zero_key_material, peer removal).
    pub fn zero_keys(&mut self, ctx: &mut Ctx<'_>) {
        for kp in [self.previous.take(), self.current.take(), self.next.take()] {
            Self::drop_keypair(ctx, kp);
        }
        if let Some(i) = self.handshake_index.take() {
            ctx.index.remove(i);
        }
        self.handshake.clear();
    }

    /// Frees all indices and stops all timers (before the peer is removed).
    pub fn shutdown(&mut self, ctx: &mut Ctx<'_>) {
        self.zero_keys(ctx);
        self.timers.stop_all();
        self.staged.clear();
    }

    /// Runs the timers due at `now`.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>, now: Now, out: &mut Vec<Transmit>) {
        let fired = self.timers.expire(now.mono);
        if fired.retransmit_handshake {
            if self.timers.handshake_attempts > MAX_TIMER_HANDSHAKES {
                // Given up after MAX_TIMER_HANDSHAKES + 2 initiations.
                self.timers.send_keepalive = None;
                self.stats.staged_dropped += self.staged.len() as u64;
                self.staged.clear();
                if self.timers.zero_key_material.is_none() {
                    self.timers.zero_key_material = Some(now.mono.plus(REJECT_AFTER_TIME * 3));
                }
            } else {
                self.timers.handshake_attempts += 1;
                if let Some(e) = self.endpoint.as_mut() {
                    e.local = None;
                }
                self.send_handshake_initiation(ctx, now, true, out);
            }
        }
        if fired.send_keepalive {
            self.send_keepalive(ctx, now, out);
            if self.timers.need_another_keepalive {
                self.timers.need_another_keepalive = false;
                self.timers.send_keepalive = Some(now.mono.plus(KEEPALIVE_TIMEOUT));
            }
        }
        if fired.new_handshake {
            if let Some(e) = self.endpoint.as_mut() {
                e.local = None;
            }
            self.send_handshake_initiation(ctx, now, false, out);
        }
        if fired.zero_key_material {
            self.zero_keys(ctx);
        }
        if fired.persistent_keepalive && self.timers.persistent_keepalive_interval.is_some() {
            self.send_keepalive(ctx, now, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_packet_lengths() {
        let mut v4 = [0u8; 48];
        v4[0] = 0x45;
        v4[2..4].copy_from_slice(&28u16.to_be_bytes());
        v4[12..16].copy_from_slice(&[198, 19, 0, 2]);
        assert_eq!(inner_packet(&v4), Some((28, "198.19.0.2".parse().unwrap())));
        v4[2..4].copy_from_slice(&49u16.to_be_bytes());
        assert_eq!(inner_packet(&v4), None, "longer than the plaintext");
        v4[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(inner_packet(&v4), None, "shorter than a header");
        let mut v6 = [0u8; 64];
        v6[0] = 0x60;
        v6[4..6].copy_from_slice(&8u16.to_be_bytes());
        v6[8..24].copy_from_slice(
            &"2001:db8:1::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        assert_eq!(
            inner_packet(&v6),
            Some((48, "2001:db8:1::2".parse().unwrap()))
        );
        v6[4..6].copy_from_slice(&25u16.to_be_bytes());
        assert_eq!(inner_packet(&v6), None);
        assert_eq!(inner_packet(&[0x50; 40]), None);
        assert_eq!(inner_packet(&[0x45; 19]), None);
        assert_eq!(inner_packet(&[]), None);
    }
}
