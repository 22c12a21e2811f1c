//! The device (kernel `device.c` and the dispatch of `receive.c`): the static identity, the
//! peers, the index table, the cookie checker and the under-load state. It takes datagrams and
//! inner packets with an injected clock and returns what to send; it does no I/O.

use crate::crypto::aead::TransportKey;
use crate::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::proto::allowedips::{AllowedIps, AllowedIpsError};
use crate::proto::constants::{DEFAULT_MTU, UNDER_LOAD_AFTER, UNDER_LOAD_QUEUE_THRESHOLD};
use crate::proto::cookie::{CookieChecker, MacCheck};
use crate::proto::index::{IndexTable, PeerId};
use crate::proto::messages::{self, CookieReply, Initiation, Message, Response};
use crate::proto::noise::{self, HandshakeError};
use crate::proto::peer::{
    Ctx, DataReceived, Endpoint, Opened, Peer, PeerError, SendResult, Transmit, TransmitKind,
};
use crate::proto::ratelimiter::RateLimiter;
use crate::proto::time::{Instant, Now};
use rand_core::CryptoRngCore;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

/// What a received datagram turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// An inner IP packet at `buf[offset..offset + len]` from `peer`.
    Data {
        /// The peer.
        peer: PeerId,
        /// Start of the inner packet in the buffer.
        offset: usize,
        /// Its length (trimmed to the IP length).
        len: usize,
        /// Its source address (the device checked it against the peer's AllowedIPs).
        source: IpAddr,
    },
    /// A keepalive from `peer`.
    Keepalive(PeerId),
    /// A handshake message from `peer` was consumed (any reply is in the output list).
    Handshake(PeerId),
    /// A cookie reply for `peer` was consumed.
    CookieReply(PeerId),
    /// Under load, a handshake message without a valid MAC2 was answered with a cookie reply.
    CookieSent,
}

/// Why a datagram was dropped. Every one is silent on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Not a well-formed message.
    #[error(transparent)]
    Malformed(#[from] messages::ParseError),
    /// MAC1 did not verify.
    #[error("invalid MAC1")]
    InvalidMac,
    /// No session or handshake with that receiver index.
    #[error("unknown receiver index")]
    UnknownIndex,
    /// An initiation from a static key that is not a configured peer.
    #[error("initiation from an unknown peer")]
    UnknownPeer,
    /// The per-peer processing failed.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The device has no private key.
    #[error("no private key configured")]
    NoPrivateKey,
    /// A cookie reply that does not match our last handshake message.
    #[error(transparent)]
    Cookie(#[from] crate::proto::cookie::CookieError),
    /// Under load, a handshake message with a valid MAC2 from a source over its rate (or a new
    /// source while the rate limiter's table is full).
    #[error("handshake rate limit exceeded for this source")]
    RateLimited,
    /// An authenticated data packet whose inner source address is not routed to the peer that
    /// sent it (cryptokey routing: the kernel's "dishonest packet peer"). The peer's timers and
    /// counters were updated (it authenticated); the packet is not delivered.
    #[error("inner source address not in the sending peer's AllowedIPs")]
    SourceNotAllowed,
}

impl DropReason {
    /// A replay: a transport counter already received (or behind the replay window), or an
    /// initiation whose timestamp is not newer than the last accepted one from that peer.
    pub fn is_replay(&self) -> bool {
        matches!(
            self,
            DropReason::Peer(
                PeerError::Open(crate::proto::keypair::OpenError::Replay)
                    | PeerError::Handshake(HandshakeError::Replay)
            )
        )
    }
}

impl From<HandshakeError> for DropReason {
    fn from(e: HandshakeError) -> Self {
        DropReason::Peer(PeerError::Handshake(e))
    }
}

/// What [`Device::receive_key`] read from a transport datagram's header and looked up, carried
/// through decryption ([`Ticket::open`], possibly on another core) to
/// [`Device::receive_opened`], so neither parses the header or searches the index table again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The peer whose keypair the receiver index names.
    pub peer: PeerId,
    /// The receiver index: that keypair's local index.
    pub keypair: u32,
    /// The datagram's counter (inside the replay window when the ticket was issued).
    pub counter: u64,
}

impl Ticket {
    /// Verifies and decrypts the datagram in place with `key` (the key [`Device::receive_key`]
    /// returned with this ticket); returns the plaintext length (the plaintext is `buf[16..]`).
    pub fn open(&self, key: &TransportKey, buf: &mut [u8]) -> Result<usize, DropReason> {
        crate::proto::keypair::open_with_counter(key, self.counter, buf)
            .map_err(|e| DropReason::Peer(PeerError::from(e)))
    }
}

/// Device-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Handshake messages dropped for a bad MAC1.
    pub invalid_mac: u64,
    /// Cookie replies sent (each one a DH computation avoided).
    pub cookie_replies_sent: u64,
    /// Handshake messages that reached the DH computations (an initiation always costs one; a
    /// response only once its receiver index named one of our handshakes).
    pub handshakes_processed: u64,
    /// Handshake messages dropped by the per-source rate limiter (under load only).
    pub rate_limited: u64,
}

/// Why a peer could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerConfigError {
    /// The peer's public key is the device's own.
    #[error("a peer cannot have the interface's own public key")]
    OwnKey,
    /// A peer with that key exists.
    #[error("duplicate peer")]
    Duplicate,
    /// No peer has that id.
    #[error("no such peer")]
    NoSuchPeer,
    /// The prefix could not be added to the AllowedIPs table.
    #[error(transparent)]
    AllowedIp(#[from] AllowedIpsError),
}

/// A WireGuard device.
pub struct Device {
    private_key: PrivateKey,
    /// False while the device has no private key (a placeholder is held, never used).
    key_set: bool,
    checker: CookieChecker,
    peers: Vec<Option<Peer>>,
    /// The empty slots of `peers`, lowest first (so `add_peer` does not walk the vector).
    free: BinaryHeap<Reverse<u32>>,
    by_key: HashMap<PublicKey, PeerId>,
    index: IndexTable,
    /// Cryptokey routing: each prefix routed to the peer that owns it (kernel
    /// `wg->peer_allowedips`). Sending looks destinations up here; receiving checks sources.
    allowed: AllowedIps<PeerId>,
    /// Peers that may own prefixes (a superset): removing or clearing any other peer needs no
    /// walk of the table, which keeps building a large device linear.
    prefixed: HashSet<PeerId>,
    rng: Box<dyn CryptoRngCore + Send + Sync>,
    mtu: usize,
    last_under_load: Option<Instant>,
    /// An instant at or before the earliest timer deadline ([`Device::next_wakeup`]), kept up to
    /// date in O(1) per peer operation so the event loop does not scan every peer per wake-up.
    wakeup: Option<Instant>,
    /// True when `wakeup` must be recomputed (a peer was changed from outside `with_peer`).
    wakeup_dirty: bool,
    limiter: RateLimiter,
    /// Counters.
    pub stats: DeviceStats,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("public_key", &self.private_key.public_key())
            .field("peers", &self.by_key.len())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// A device with static key `private_key` (stored clamped, as the kernel and wireguard-go
    /// do; the public key is the same), taking randomness from `rng`.
    pub fn new(private_key: PrivateKey, rng: Box<dyn CryptoRngCore + Send + Sync>) -> Self {
        let private_key = private_key.clamped();
        Device {
            checker: CookieChecker::new(&private_key.public_key()),
            private_key,
            key_set: true,
            peers: Vec::new(),
            free: BinaryHeap::new(),
            by_key: HashMap::new(),
            index: IndexTable::new(),
            allowed: AllowedIps::new(),
            prefixed: HashSet::new(),
            rng,
            mtu: DEFAULT_MTU,
            last_under_load: None,
            wakeup: None,
            wakeup_dirty: true,
            limiter: RateLimiter::new(),
            stats: DeviceStats::default(),
        }
    }

    /// A device with no private key yet (as `wgd IFACE` starts before `wg setconf`): it neither
    /// sends nor answers handshakes until [`Device::set_private_key`].
    pub fn without_key(mut rng: Box<dyn CryptoRngCore + Send + Sync>) -> Self {
        let placeholder = PrivateKey::generate(&mut *rng);
        let mut d = Self::new(placeholder, rng);
        d.key_set = false;
        d
    }

    /// True if a private key is configured.
    pub fn has_private_key(&self) -> bool {
        self.key_set
    }

    /// Removes the private key (a zero key over the UAPI): sessions stop sending and no
    /// handshake is made or answered until a key is set again.
    pub fn clear_private_key(&mut self) {
        self.wakeup_dirty = true;
        let placeholder = PrivateKey::generate(&mut *self.rng);
        self.set_private_key(placeholder);
        self.key_set = false;
    }

    /// A device using the operating system's random source.
    pub fn with_os_rng(private_key: PrivateKey) -> Self {
        Self::new(private_key, Box::new(rand_core::OsRng))
    }

    /// The device's public key.
    pub fn public_key(&self) -> PublicKey {
        self.private_key.public_key()
    }

    /// The device's private key.
    pub fn private_key(&self) -> &PrivateKey {
        &self.private_key
    }

    /// Replaces the private key, as the kernel does on `set private-key`: the cookie keys and
    /// every peer's static-static DH are recomputed, handshakes in flight are dropped, current
    /// keypairs stop being used for sending (a new handshake follows on demand), and a peer whose
    /// public key equals the new public key is removed. Returns the removed peer, if any.
    pub fn set_private_key(&mut self, key: PrivateKey) -> Option<PeerId> {
        self.wakeup_dirty = true;
        let key = key.clamped();
        if self.key_set && key == self.private_key {
            return None;
        }
        self.key_set = true;
        let own = key.public_key();
        self.checker = CookieChecker::new(&own);
        self.private_key = key;
        let clash = self.peer_by_key(&own);
        if let Some(id) = clash {
            self.remove_peer(id);
        }
        let ids: Vec<PeerId> = self.peer_ids().collect();
        for id in ids {
            self.with_peer(id, |p, ctx| p.rekey_after_identity_change(ctx));
        }
        clash
    }

    /// The tunnel MTU used for padding.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Sets the tunnel MTU used for padding.
    pub fn set_mtu(&mut self, mtu: usize) {
        self.mtu = mtu;
    }

    /// Adds a peer.
    pub fn add_peer(
        &mut self,
        public_key: PublicKey,
        psk: PresharedKey,
    ) -> Result<PeerId, PeerConfigError> {
        self.wakeup_dirty = true;
        if public_key == self.public_key() {
            return Err(PeerConfigError::OwnKey);
        }
        if self.by_key.contains_key(&public_key) {
            return Err(PeerConfigError::Duplicate);
        }
        let peer = Peer::new(&self.private_key, public_key, psk);
        // The lowest empty slot, as a walk of the vector would find it, in O(log peers).
        let free = self
            .free
            .pop()
            .and_then(|Reverse(i)| Some((i, self.peers.get_mut(i as usize)?)));
        let id = match free {
            Some((i, entry)) => {
                *entry = Some(peer);
                PeerId(i)
            }
            None => {
                self.peers.push(Some(peer));
                PeerId((self.peers.len() - 1) as u32)
            }
        };
        self.by_key.insert(public_key, id);
        Ok(id)
    }

    /// Removes a peer, freeing its indices and dropping its AllowedIPs.
    pub fn remove_peer(&mut self, id: PeerId) -> Option<Peer> {
        self.wakeup_dirty = true;
        let mut peer = self.peers.get_mut(id.0 as usize)?.take()?;
        self.free.push(Reverse(id.0));
        if self.prefixed.remove(&id) {
            self.allowed.remove_by_value(id);
        }
        self.by_key.remove(peer.public_key());
        let mut ctx = Ctx {
            local: &self.private_key,
            rng: &mut *self.rng,
            index: &mut self.index,
            id,
            mtu: self.mtu,
            key_set: self.key_set,
        };
        peer.shutdown(&mut ctx);
        Some(peer)
    }

    /// Removes every peer (`replace_peers`) and empties the AllowedIPs table; returns their ids.
    pub fn remove_all_peers(&mut self) -> Vec<PeerId> {
        let ids: Vec<PeerId> = self.peer_ids().collect();
        // No peer is left, so no prefix has an owner: one clear instead of a walk per peer.
        self.allowed.clear();
        self.prefixed.clear();
        for &id in &ids {
            self.remove_peer(id);
        }
        ids
    }

    /// The AllowedIPs table (read-only: prefixes change through the device, so that each one
    /// belongs to a peer that exists).
    pub fn allowed_ips(&self) -> &AllowedIps<PeerId> {
        &self.allowed
    }

    /// Routes `addr/cidr` to peer `id` (moving it from another peer if it had it, as the
    /// kernel does). Host bits after the prefix are ignored.
    pub fn add_allowed_ip(
        &mut self,
        id: PeerId,
        addr: IpAddr,
        cidr: u8,
    ) -> Result<(), PeerConfigError> {
        if self.peer(id).is_none() {
            return Err(PeerConfigError::NoSuchPeer);
        }
        self.allowed.insert(addr, cidr, id)?;
        self.prefixed.insert(id);
        Ok(())
    }

    /// Removes `addr/cidr` if peer `id` owns it (`allowed_ip=-prefix`); returns whether it did.
    pub fn remove_allowed_ip(&mut self, id: PeerId, addr: IpAddr, cidr: u8) -> bool {
        self.allowed.remove(addr, cidr, id)
    }

    /// Removes every prefix of peer `id` (`replace_allowed_ips`); returns how many. `O(table)`
    /// unless the peer owns none since it was created or last cleared.
    pub fn clear_allowed_ips(&mut self, id: PeerId) -> usize {
        if self.prefixed.remove(&id) {
            self.allowed.remove_by_value(id)
        } else {
            0
        }
    }

    /// The peer an inner packet goes to, by its destination address (cryptokey routing).
    pub fn route(&self, pkt: &[u8]) -> Option<PeerId> {
        self.allowed.lookup_packet_dst(pkt)
    }

    /// The peer with this public key.
    pub fn peer_by_key(&self, key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(key).copied()
    }

    /// A peer.
    pub fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(id.0 as usize)?.as_ref()
    }

    /// A peer, mutable (configuration).
    pub fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.wakeup_dirty = true;
        self.peers.get_mut(id.0 as usize)?.as_mut()
    }

    /// Ids of all peers.
    pub fn peer_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| PeerId(i as u32))
    }

    /// Records `bytes` sent to peer `id` (after the I/O layer's send succeeded).
    pub fn note_sent(&mut self, id: PeerId, bytes: usize) {
        if let Some(p) = self.peer_mut(id) {
            p.stats.tx_bytes += bytes as u64;
        }
    }

    /// Number of local indices in use (handshakes and keypairs).
    pub fn indices_in_use(&self) -> usize {
        self.index.len()
    }

    /// Runs `f` on a peer with a context borrowed from the device.
    fn with_peer<T>(
        &mut self,
        id: PeerId,
        f: impl FnOnce(&mut Peer, &mut Ctx<'_>) -> T,
    ) -> Option<T> {
        let peer = self.peers.get_mut(id.0 as usize)?.as_mut()?;
        let mut ctx = Ctx {
            local: &self.private_key,
            rng: &mut *self.rng,
            index: &mut self.index,
            id,
            mtu: self.mtu,
            key_set: self.key_set,
        };
        let r = f(peer, &mut ctx);
        // A deadline of this peer may have moved earlier: keep `wakeup` at or before it. (One
        // that moved later leaves `wakeup` early, which only costs a tick that finds nothing.)
        if let Some(d) = peer.next_deadline() {
            self.wakeup = Some(self.wakeup.map_or(d, |w| w.min(d)));
        }
        Some(r)
    }

    /// Sets a peer's persistent keepalive interval (None or zero = off); turning it on sends a
    /// keepalive at once.
    pub fn set_persistent_keepalive(
        &mut self,
        id: PeerId,
        now: Now,
        interval: Option<Duration>,
        out: &mut Vec<Transmit>,
    ) {
        self.with_peer(id, |p, ctx| {
            p.set_persistent_keepalive(ctx, now, interval, out)
        });
    }

    /// Starts a handshake with a peer now (as on demand, rate limited to one per REKEY_TIMEOUT).
    pub fn initiate(&mut self, id: PeerId, now: Now, out: &mut Vec<Transmit>) {
        self.with_peer(id, |p, ctx| {
            p.send_handshake_initiation(ctx, now, false, out)
        });
    }

    /// Sends an inner packet `buf[16..16 + len]` to peer `id` (see [`Peer::send`]).
    pub fn send(
        &mut self,
        id: PeerId,
        now: Now,
        buf: &mut [u8],
        len: usize,
        out: &mut Vec<Transmit>,
    ) -> Option<SendResult> {
        self.with_peer(id, |p, ctx| p.send(ctx, now, buf, len, out))
    }

    /// Prepares an inner packet `buf[16..16 + len]` for peer `id` without encrypting it (see
    /// [`Peer::prepare_send`]); the caller seals `SendResult::Prepared` datagrams with
    /// [`crate::proto::keypair::seal_prepared`] and [`Device::send_key`], possibly on other cores.
    pub fn prepare_send(
        &mut self,
        id: PeerId,
        now: Now,
        buf: &mut [u8],
        len: usize,
        out: &mut Vec<Transmit>,
    ) -> Option<SendResult> {
        self.with_peer(id, |p, ctx| p.prepare_send(ctx, now, buf, len, out))
    }

    /// The send key of peer `id`'s keypair with local index `keypair`, if still current.
    pub fn send_key(&self, id: PeerId, keypair: u32) -> Option<&TransportKey> {
        self.peer(id)?.send_key(keypair)
    }

    /// Tells the device how many handshake messages wait in its queue. The device is under load
    /// while that is at least 1/8 of the queue's capacity, and for one second after.
    pub fn note_handshake_queue_len(&mut self, now: Instant, queue_len: usize) {
        if queue_len >= UNDER_LOAD_QUEUE_THRESHOLD {
            self.last_under_load = Some(now);
        }
    }

    /// The per-source handshake rate limiter (applied under load to messages with a valid MAC2).
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// True if handshake messages must carry a valid MAC2 at `now`.
    pub fn is_under_load(&self, now: Instant) -> bool {
        self.last_under_load
            .is_some_and(|t| !t.has_expired(UNDER_LOAD_AFTER, now))
    }

    /// Processes one received datagram from `from`, decrypting transport data in place.
    pub fn receive(
        &mut self,
        now: Now,
        from: Endpoint,
        buf: &mut [u8],
        out: &mut Vec<Transmit>,
    ) -> Result<Received, DropReason> {
        match messages::message_type(buf)? {
            messages::TYPE_TRANSPORT => self.receive_transport(now, from, buf, out),
            messages::TYPE_COOKIE_REPLY => {
                let reply = CookieReply::parse(buf)?;
                let id = self
                    .index
                    .get(reply.receiver)
                    .ok_or(DropReason::UnknownIndex)?;
                let peer = self.peer_mut(id).ok_or(DropReason::UnknownIndex)?;
                peer.receive_cookie_reply(now, &reply)?;
                Ok(Received::CookieReply(id))
            }
            _ => self.receive_handshake(now, from, buf, out),
        }
    }

    fn receive_transport(
        &mut self,
        now: Now,
        from: Endpoint,
        buf: &mut [u8],
        out: &mut Vec<Transmit>,
    ) -> Result<Received, DropReason> {
        let (ticket, key) = match self.receive_key(now, buf) {
            Ok(t) => t,
            Err(e) => {
                if e.is_replay() {
                    self.note_replayed(buf);
                }
                return Err(e);
            }
        };
        let plain_len = ticket.open(key, buf)?;
        self.receive_opened(now, from, buf, ticket, plain_len, out)
    }

    /// Counts a transport datagram that the read-only checks refused as a replay against the
    /// peer its receiver index names (per-peer `replayed`; replays found on delivery are
    /// counted there).
    pub fn note_replayed(&mut self, buf: &[u8]) {
        let Ok(header) = messages::TransportHeader::parse(buf) else {
            return;
        };
        if let Some(id) = self.index.get(header.receiver) {
            if let Some(p) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) {
                p.stats.replayed += 1;
            }
        }
    }

    /// For a transport datagram: the checks before decryption that need no `&mut` (known
    /// receiver index, keypair usable, counter inside the replay window), the ticket that
    /// carries what they learned from the header, and the key that opens it. With
    /// [`Ticket::open`] and [`Device::receive_opened`] this is [`Device::receive`] split so the
    /// AEAD of a batch can run on several cores; the header is parsed and the index looked up
    /// once, here (the kernel carries the keypair in the packet's control block likewise).
    pub fn receive_key(&self, now: Now, buf: &[u8]) -> Result<(Ticket, &TransportKey), DropReason> {
        let header = messages::TransportHeader::parse(buf)?;
        let id = self
            .index
            .get(header.receiver)
            .ok_or(DropReason::UnknownIndex)?;
        let peer = self.peer(id).ok_or(DropReason::UnknownIndex)?;
        let key = peer.receive_key(now, header.receiver, header.counter, buf.len())?;
        let ticket = Ticket {
            peer: id,
            keypair: header.receiver,
            counter: header.counter,
        };
        Ok((ticket, key))
    }

    /// The rest of receiving a transport datagram that authenticated and was decrypted in place
    /// ([`Ticket::open`]): replay window, roaming, timers, and the AllowedIPs check of the inner
    /// source ([`DropReason::SourceNotAllowed`]).
    pub fn receive_opened(
        &mut self,
        now: Now,
        from: Endpoint,
        buf: &mut [u8],
        ticket: Ticket,
        plain_len: usize,
        out: &mut Vec<Transmit>,
    ) -> Result<Received, DropReason> {
        let id = ticket.peer;
        let opened = Opened {
            keypair: ticket.keypair,
            counter: ticket.counter,
            plain_len,
        };
        let r = self
            .with_peer(id, |p, ctx| {
                p.receive_opened(ctx, now, from, buf, opened, out)
            })
            .ok_or(DropReason::UnknownIndex)??;
        Ok(match r {
            DataReceived::Keepalive => Received::Keepalive(id),
            DataReceived::Packet {
                offset,
                len,
                source,
            } => {
                // Cryptokey routing, receive side (kernel receive.c): the inner source must be
                // routed back to the peer whose key opened the packet.
                if self.allowed.lookup(source) != Some(id) {
                    if let Some(p) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) {
                        p.stats.bad_source += 1;
                    }
                    return Err(DropReason::SourceNotAllowed);
                }
                Received::Data {
                    peer: id,
                    offset,
                    len,
                    source,
                }
            }
        })
    }

    fn receive_handshake(
        &mut self,
        now: Now,
        from: Endpoint,
        buf: &mut [u8],
        out: &mut Vec<Transmit>,
    ) -> Result<Received, DropReason> {
        let msg = Message::parse(buf)?;
        let (mac1_at, sender) = match &msg {
            Message::Initiation(m) => (Initiation::MAC1_OFFSET, m.sender),
            Message::Response(m) => (Response::MAC1_OFFSET, m.sender),
            _ => return Err(messages::ParseError::UnknownType.into()),
        };
        if !self.key_set {
            return Err(DropReason::NoPrivateKey);
        }
        let under_load = self.is_under_load(now.mono);
        match self.checker.check(
            now.mono,
            &mut *self.rng,
            buf,
            mac1_at,
            from.addr,
            under_load,
        ) {
            MacCheck::Invalid => {
                self.stats.invalid_mac += 1;
                return Err(DropReason::InvalidMac);
            }
            // Under load, a valid MAC2 proves the source address; the per-source token bucket
            // then bounds the DH work that address can cause (kernel: cookie.c asks the
            // rate limiter only after MAC2 verified).
            MacCheck::ValidWithCookie => {
                if !self.limiter.allow(now.mono, from.addr.ip()) {
                    self.stats.rate_limited += 1;
                    return Err(DropReason::RateLimited);
                }
            }
            MacCheck::ValidMac1 if under_load => {
                if let Some(reply) = self.checker.make_reply(
                    now.mono,
                    &mut *self.rng,
                    buf,
                    mac1_at,
                    sender,
                    from.addr,
                ) {
                    self.stats.cookie_replies_sent += 1;
                    out.push(Transmit {
                        peer: None,
                        endpoint: from,
                        kind: TransmitKind::CookieReply,
                        data: reply.to_bytes().to_vec(),
                    });
                }
                return Ok(Received::CookieSent);
            }
            MacCheck::ValidMac1 => {}
        }
        match msg {
            Message::Initiation(m) => {
                self.stats.handshakes_processed += 1;
                let start = noise::start_consume_initiation(&self.private_key, &m)?;
                let id = self
                    .peer_by_key(&start.initiator_static)
                    .ok_or(DropReason::UnknownPeer)?;
                let len = buf.len();
                self.with_peer(id, |p, ctx| {
                    p.receive_initiation(ctx, now, from, start, len, out)
                })
                .ok_or(DropReason::UnknownPeer)??;
                Ok(Received::Handshake(id))
            }
            Message::Response(m) => {
                let id = self.index.get(m.receiver).ok_or(DropReason::UnknownIndex)?;
                self.stats.handshakes_processed += 1;
                self.with_peer(id, |p, ctx| p.receive_response(ctx, now, from, &m, out))
                    .ok_or(DropReason::UnknownIndex)??;
                Ok(Received::Handshake(id))
            }
            _ => Err(messages::ParseError::UnknownType.into()),
        }
    }

    /// Runs every peer's timers due at `now` and, at most once a second, the rate limiter's
    /// sweep of idle sources; returns the next deadline.
    pub fn tick(&mut self, now: Now, out: &mut Vec<Transmit>) -> Option<Instant> {
        self.limiter.tick(now.mono);
        for i in 0..self.peers.len() {
            let id = PeerId(i as u32);
            let due = self
                .peer(id)
                .and_then(Peer::next_deadline)
                .is_some_and(|d| d <= now.mono);
            if due {
                self.with_peer(id, |p, ctx| p.tick(ctx, now, out));
            }
        }
        self.wakeup = self.next_deadline();
        self.wakeup_dirty = false;
        self.wakeup
    }

    /// When the event loop must call [`Device::tick`] next: at or before the earliest timer
    /// deadline (possibly earlier, after a deadline moved later). O(1) except after a peer was
    /// changed through [`Device::peer_mut`] or added/removed, when it rescans.
    pub fn next_wakeup(&mut self) -> Option<Instant> {
        if self.wakeup_dirty {
            self.wakeup = self.next_deadline();
            self.wakeup_dirty = false;
        }
        match (self.wakeup, self.limiter.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The earliest timer deadline over all peers, and the rate limiter's next sweep while it
    /// tracks any source (an idle device has none).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .iter()
            .flatten()
            .filter_map(Peer::next_deadline)
            .chain(self.limiter.next_deadline())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    fn key() -> PublicKey {
        PrivateKey::generate(&mut OsRng).public_key()
    }

    #[test]
    fn replays_are_told_apart_from_other_drops() {
        use crate::proto::keypair::OpenError;
        assert!(DropReason::from(HandshakeError::Replay).is_replay());
        assert!(DropReason::Peer(PeerError::Open(OpenError::Replay)).is_replay());
        for other in [
            DropReason::from(HandshakeError::Flood),
            DropReason::from(HandshakeError::Decrypt),
            DropReason::Peer(PeerError::Open(OpenError::Auth)),
            DropReason::UnknownIndex,
            DropReason::InvalidMac,
        ] {
            assert!(!other.is_replay(), "{other:?}");
        }
    }

    #[test]
    fn add_peer_reuses_the_lowest_free_slot() {
        let mut d = Device::with_os_rng(PrivateKey::generate(&mut OsRng));
        let ids: Vec<PeerId> = (0..6)
            .map(|_| d.add_peer(key(), PresharedKey::default()).unwrap())
            .collect();
        assert_eq!(ids, (0..6).map(PeerId).collect::<Vec<_>>());
        for i in [4, 1, 3] {
            assert!(d.remove_peer(PeerId(i)).is_some());
        }
        assert!(d.remove_peer(PeerId(1)).is_none(), "already removed");
        let again: Vec<PeerId> = (0..4)
            .map(|_| d.add_peer(key(), PresharedKey::default()).unwrap())
            .collect();
        assert_eq!(again, [PeerId(1), PeerId(3), PeerId(4), PeerId(6)]);
        assert_eq!(d.peer_ids().count(), 7);
    }
}
