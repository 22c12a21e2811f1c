//! Shared set-up for wgd's fuzz targets and the seed-corpus generator (`gen-corpus`).
//!
//! Everything is deterministic: fixed static keys, seeded ChaCha RNGs and an injected clock, so
//! the initiation `initiated()` builds inside a target is byte for byte the one the generator
//! answered when it wrote the seeds (a seeded response or cookie reply still authenticates).
//!
//! Several targets read their input as a list of chunks: `flags: u8`, `len: u16 LE`, then `len`
//! bytes (fewer if the input ends). [`Chunks`] reads them, [`chunk`] writes them.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use wgd::crypto;
use wgd::crypto::MAC_LEN;
use wgd::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use wgd::proto::Keypair;
use wgd::proto::Now;
use wgd::proto::PeerId;
use wgd::proto::cookie::LABEL_MAC1;
use wgd::proto::messages::Initiation;
use wgd::proto::{Device, Received};
use wgd::proto::{Endpoint, SendResult, Transmit, TransmitKind};

/// Address of device A (the initiator).
pub const A_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 51820));
/// Address of device B (the responder).
pub const B_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 51820));

/// At most this many chunks are read from one input (bounds the work per input).
pub const MAX_CHUNKS: usize = 8;

/// A fixed static key: 32 bytes of `seed`.
pub fn key(seed: u8) -> PrivateKey {
    PrivateKey::from_bytes([seed; 32])
}

/// Device A's static key.
pub fn key_a() -> PrivateKey {
    key(0x11)
}

/// Device B's static key.
pub fn key_b() -> PrivateKey {
    key(0x22)
}

/// A third key no device knows (an initiation from it must be refused).
pub fn key_stranger() -> PrivateKey {
    key(0x33)
}

/// The preshared key between A and B.
pub fn psk() -> PresharedKey {
    PresharedKey::from_bytes([0x5a; 32])
}

/// A seeded random source.
pub fn rng(seed: u64) -> Box<ChaCha8Rng> {
    Box::new(ChaCha8Rng::seed_from_u64(seed))
}

/// The clock every target starts from.
pub fn start() -> Now {
    Now::simulated(
        Duration::from_secs(1000),
        Duration::from_secs(1_700_000_000),
    )
}

/// Writes MAC1 of `msg[..at]` for a message sent to the device with public key `to`, at
/// `msg[at..at + 16]`. Does nothing if `msg` is too short.
pub fn set_mac1(to: &PublicKey, msg: &mut [u8], at: usize) {
    let key = crypto::hash(&[LABEL_MAC1, to.as_bytes()]);
    if msg.len() < at + MAC_LEN {
        return;
    }
    let mac = crypto::mac(&key, &[&msg[..at]]);
    msg[at..at + MAC_LEN].copy_from_slice(&mac);
}

/// Device A with B as its one peer (endpoint B_ADDR).
pub fn device_a() -> (Device, PeerId) {
    device_with(key_a(), 100, &key_b().public_key(), Some(B_ADDR))
}

/// Device B with A as its one peer (no endpoint: B learns it from the handshake).
pub fn device_b() -> (Device, PeerId) {
    device_with(key_b(), 200, &key_a().public_key(), None)
}

fn device_with(
    local: PrivateKey,
    seed: u64,
    remote: &PublicKey,
    endpoint: Option<SocketAddr>,
) -> (Device, PeerId) {
    let mut d = Device::new(local, rng(seed));
    let id = match d.add_peer(*remote, psk()) {
        Ok(id) => id,
        Err(e) => panic!("fuzz set-up: add_peer: {e}"),
    };
    if let (Some(addr), Some(p)) = (endpoint, d.peer_mut(id)) {
        p.set_endpoint(Endpoint::new(addr));
    }
    (d, id)
}

/// The first transmit of `kind` in `out`.
pub fn take(out: &[Transmit], kind: TransmitKind) -> Option<Vec<u8>> {
    out.iter().find(|t| t.kind == kind).map(|t| t.data.clone())
}

/// Device A after it sent its initiation to B at `start()`: (A, B's id at A, the initiation).
pub fn initiated() -> (Device, PeerId, Vec<u8>) {
    let (mut a, pa) = device_a();
    let mut out = Vec::new();
    a.initiate(pa, start(), &mut out);
    let Some(init) = take(&out, TransmitKind::Initiation) else {
        panic!("fuzz set-up: no initiation");
    };
    (a, pa, init)
}

/// An initiation to B from a key B does not know (for the seed corpus).
pub fn stranger_initiation() -> Vec<u8> {
    let (mut d, id) = device_with(key_stranger(), 300, &key_b().public_key(), Some(B_ADDR));
    let mut out = Vec::new();
    d.initiate(id, start(), &mut out);
    take(&out, TransmitKind::Initiation).unwrap_or_default()
}

/// Prefixes A owns in B's AllowedIPs table.
pub const A_PREFIX_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 19, 0, 0), 16);
/// Prefixes A owns in B's AllowedIPs table.
pub const A_PREFIX_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0), 48);

/// True if `ip` is inside one of A's prefixes (computed without the trie, to check it).
pub fn in_a_prefixes(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.octets()[..2] == A_PREFIX_V4.0.octets()[..2],
        IpAddr::V6(a) => a.segments()[..3] == A_PREFIX_V6.0.segments()[..3],
    }
}

/// A live session: both sides have a confirmed current keypair.
pub struct Session {
    /// The initiator.
    pub a: Device,
    /// B's id at A.
    pub pa: PeerId,
    /// The responder.
    pub b: Device,
    /// A's id at B.
    pub pb: PeerId,
    /// The clock after the handshake. In B's AllowedIPs, A owns [`A_PREFIX_V4`] and
    /// [`A_PREFIX_V6`].
    pub now: Now,
}

impl Session {
    /// Runs the handshake A → B, the response, and A's confirming keepalive. Panics (a set-up
    /// bug, not a finding) if any step fails.
    pub fn new() -> Session {
        let (mut a, pa, mut init) = initiated();
        let (mut b, pb) = device_b();
        let now = start();
        let mut out = Vec::new();
        let r = b.receive(now, Endpoint::new(A_ADDR), &mut init, &mut out);
        assert_eq!(r, Ok(Received::Handshake(pb)), "fuzz set-up: initiation");
        let Some(mut resp) = take(&out, TransmitKind::Response) else {
            panic!("fuzz set-up: no response");
        };
        out.clear();
        let r = a.receive(now, Endpoint::new(B_ADDR), &mut resp, &mut out);
        assert_eq!(r, Ok(Received::Handshake(pa)), "fuzz set-up: response");
        let Some(mut ka) = take(&out, TransmitKind::Keepalive) else {
            panic!("fuzz set-up: no keepalive");
        };
        out.clear();
        let r = b.receive(now, Endpoint::new(A_ADDR), &mut ka, &mut out);
        assert_eq!(r, Ok(Received::Keepalive(pb)), "fuzz set-up: keepalive");
        let inserted = b
            .add_allowed_ip(pb, IpAddr::V4(A_PREFIX_V4.0), A_PREFIX_V4.1)
            .and_then(|()| b.add_allowed_ip(pb, IpAddr::V6(A_PREFIX_V6.0), A_PREFIX_V6.1));
        assert!(inserted.is_ok(), "fuzz set-up: allowed ips");
        Session { a, pa, b, pb, now }
    }

    /// B's local index of its current keypair (what A writes as the receiver).
    pub fn b_index(&self) -> u32 {
        self.b
            .peer(self.pb)
            .and_then(|p| p.current_keypair())
            .map_or(0, |k| k.local_index)
    }

    /// A seals `plain` for B at `now`; `None` if A staged it instead (no usable keypair).
    pub fn seal_a(&mut self, now: Now, plain: &[u8]) -> Option<Vec<u8>> {
        seal(&mut self.a, self.pa, now, plain)
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

/// `dev` seals `plain` for `peer` at `now`: the datagram, or `None` if it was staged.
pub fn seal(dev: &mut Device, peer: PeerId, now: Now, plain: &[u8]) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; Keypair::sealed_len(plain.len(), dev.mtu())];
    buf.get_mut(16..16 + plain.len())?.copy_from_slice(plain);
    let mut out = Vec::new();
    match dev.send(peer, now, &mut buf, plain.len(), &mut out)? {
        SendResult::Sealed { len, .. } => {
            buf.truncate(len);
            Some(buf)
        }
        // Device::send seals in place; Prepared is only returned by Device::prepare_send.
        SendResult::Prepared { .. } | SendResult::Staged | SendResult::BufferTooSmall => None,
    }
}

/// Reads `flags: u8, len: u16 LE, bytes` chunks, at most [`MAX_CHUNKS`].
pub struct Chunks<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Chunks<'a> {
    /// Chunks of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Chunks {
            rest: data,
            left: MAX_CHUNKS,
        }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let (&[flags, lo, hi], rest) = self.rest.split_first_chunk::<3>()?;
        let len = usize::from(u16::from_le_bytes([lo, hi])).min(rest.len());
        let (body, rest) = rest.split_at(len);
        self.rest = rest;
        self.left -= 1;
        Some((flags, body))
    }
}

/// One chunk as [`Chunks`] reads it.
pub fn chunk(flags: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let mut v = vec![flags];
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&body[..usize::from(len)]);
    v
}

/// The MAC1 offset of a handshake message of this type, if it is one.
pub fn mac1_offset(msg: &[u8]) -> Option<usize> {
    match wgd::proto::messages::message_type(msg) {
        Ok(wgd::proto::messages::TYPE_INITIATION) => Some(Initiation::MAC1_OFFSET),
        Ok(wgd::proto::messages::TYPE_RESPONSE) => {
            Some(wgd::proto::messages::Response::MAC1_OFFSET)
        }
        _ => None,
    }
}
