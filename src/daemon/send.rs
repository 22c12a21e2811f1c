//! The outbound data path (kernel `send.c`): a batch of inner packets from the TUN → cryptokey
//! routing by destination → counters, headers and padding under `&mut Device` (in order, per
//! peer) → the AEAD of the whole batch on the crypto workers (`&Device` shared, each packet in
//! its own buffer) → runs of equal-sized datagrams to one endpoint leave in one UDP GSO `sendmsg`
//! when a datagram fits the route MTU, singly (the kernel fragments them) when it does not.
//!
//! Order per peer is kept by construction: counters are assigned in TUN order before any
//! encryption, and the batch is sent in that order only once every packet in it is sealed.
//! Every buffer is allocated once, up front; nothing here allocates per packet.

use crate::daemon::faults::{self, Class, Episode};
use crate::daemon::tun::{GROTable, MAX_SUPER_PACKET, Tun, TunReady, VIRTIO_NET_HDR_LEN};
use crate::daemon::udp::{Sock, UdpSockets};
use crate::daemon::workers::Workers;
use crate::proto::device::Device;
use crate::proto::icmp;
use crate::proto::index::PeerId;
use crate::proto::keypair::seal_prepared;
use crate::proto::messages::TRANSPORT_HEADER_LEN;
use crate::proto::peer::{Endpoint, SendResult, Transmit};
use crate::proto::time::{Instant, Now};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tracing::{debug, trace};

/// Packet slots per batch (a 64 KB TCP super-packet splits into at most ~48 at MTU 1420).
pub const SLOTS: usize = 128;
/// Largest inner packet a slot ever holds: the largest MTU a config accepts. Slots are sized to
/// the interface's MTU (128 slots of 64 KB would add 8 MB to every daemon) and grow when a
/// larger packet shows the MTU was raised ([`TxBatch::read`]).
pub const MAX_PACKET: usize = 65535;
/// One slot for inner packets up to `mtu`: header + packet + padding and tag room.
fn slot_len(mtu: usize) -> usize {
    TRANSPORT_HEADER_LEN + mtu.clamp(576, MAX_PACKET) + 32
}
/// Start another TUN read only while this many slots are free (one super-packet's worth).
const READ_MORE_FREE: usize = 64;
/// Most bytes one GSO send carries (IPv4/IPv6 length limits minus headers).
const GSO_MAX_BYTES: usize = 65000;
/// ICMP errors one batch may queue for the TUN (more are dropped; the limiter allows a burst of
/// [`icmp::BURST`] anyway).
const ICMP_SLOTS: usize = 16;
/// The largest inner packet an outer datagram carries over IPv4: 65,507 bytes of UDP payload
/// less the 32 of header and tag, rounded down to the 16-byte padding.
pub const MAX_INNER_V4: usize = (65507 - 32) & !15;
/// The same over IPv6 (65,527 bytes of UDP payload).
pub const MAX_INNER_V6: usize = (65527 - 32) & !15;

/// How long a probed route MTU is trusted before it is probed again (a link's MTU may change).
const ROUTE_MTU_TTL: Duration = Duration::from_secs(1);
/// Endpoints whose route MTU is remembered at most (the cache is emptied when full).
const ROUTE_MTU_ENTRIES: usize = 4096;

/// Route MTUs per endpoint, probed at most once per [`ROUTE_MTU_TTL`]: a UDP GSO send whose
/// segment plus headers exceeds the route MTU fails whole with EINVAL (and quinn-udp then turns
/// GSO off for the socket for good), so only datagrams that fit are batched.
#[derive(Default)]
struct RouteMtus(HashMap<SocketAddr, (usize, Instant)>);

impl RouteMtus {
    /// The largest datagram (UDP payload) one GSO segment to `dst` may carry; 0 if unknown.
    fn max_segment(&mut self, sock: &Sock, dst: SocketAddr, now: Instant) -> usize {
        let mtu = match self.0.get(&dst) {
            Some(&(mtu, at)) if now.since(at) < ROUTE_MTU_TTL => mtu,
            _ => {
                let mtu = sock.route_mtu(dst).unwrap_or_else(|e| {
                    debug!("route MTU to {dst}: {e}");
                    0
                });
                if self.0.len() >= ROUTE_MTU_ENTRIES {
                    self.0.clear();
                }
                self.0.insert(dst, (mtu, now));
                mtu
            }
        };
        Self::payload(dst, mtu)
    }

    /// Probes `dst` again now (a GSO send to it was refused).
    fn reprobe(&mut self, sock: &Sock, dst: SocketAddr, now: Instant) -> usize {
        self.0.remove(&dst);
        self.max_segment(sock, dst, now)
    }

    /// The UDP payload a route MTU leaves: IPv4 20 + UDP 8; IPv6 40 + UDP 8 (the sockets add no
    /// options or extension headers).
    fn payload(dst: SocketAddr, mtu: usize) -> usize {
        let headers = if dst.is_ipv4() { 28 } else { 48 };
        mtu.saturating_sub(headers)
    }
}

#[derive(Clone, Copy, Debug)]
enum Job {
    /// Nothing to send (no peer, staged, dropped).
    Skip,
    /// Header written and counter reserved: seal with that keypair's key, then send.
    Seal {
        peer: PeerId,
        keypair: u32,
        len: usize,
        endpoint: Endpoint,
    },
}

/// What a batch read from the TUN ended with.
pub enum ReadEnd {
    /// The TUN has nothing more for now (or the batch is full).
    Drained,
    /// The interface is gone.
    Gone(std::io::Error),
}

/// Counters of the outbound path.
#[derive(Debug, Default, Clone, Copy)]
pub struct TxStats {
    /// Packets whose destination no peer's AllowedIPs covers.
    pub no_peer: u64,
    /// Packets larger than any outer datagram to their peer carries (tunnel MTU above 65,472).
    pub too_big: u64,
    /// ICMP errors written to the TUN (for `no_peer` and `too_big`).
    pub icmp_sent: u64,
    /// ICMP errors not sent because of the rate limit.
    pub icmp_limited: u64,
    /// Packets sealed and handed to the UDP socket.
    pub sent: u64,
    /// UDP sendmsg calls.
    pub send_calls: u64,
    /// UDP sends that failed (socket buffer full, no route, address gone, ...): their
    /// datagrams were lost. See `daemon::faults`.
    pub send_errors: u64,
}

/// Preallocated state of the outbound path.
pub struct TxBatch {
    scratch: Vec<u8>,
    bufs: Vec<Vec<u8>>,
    sizes: Vec<usize>,
    jobs: Vec<Job>,
    len: usize,
    gso: Vec<u8>,
    route_mtus: RouteMtus,
    icmp: IcmpOut,
    /// A GSO send failed because the route MTU shrank under the cached figure: the sockets
    /// should get GSO back ([`TxBatch::take_gso_lost`]).
    gso_lost: bool,
    /// The current run of failed sends, for one log line per run.
    send_fault: Episode,
}

/// ICMP errors waiting to be written to the TUN, and their rate limit.
struct IcmpOut {
    bufs: Vec<Vec<u8>>,
    len: usize,
    limiter: icmp::Limiter,
    gro: GROTable,
}

impl IcmpOut {
    /// Queues the error answering `pkt` (unless the rules or the rate limit say no).
    fn queue(&mut self, pkt: &[u8], reason: icmp::Reason, now: Instant, stats: &mut TxStats) {
        let Some(buf) = self.bufs.get_mut(self.len) else {
            stats.icmp_limited += 1;
            return;
        };
        buf.resize(VIRTIO_NET_HDR_LEN + icmp::MAX_LEN, 0);
        let Some(out) = buf.get_mut(VIRTIO_NET_HDR_LEN..) else {
            return;
        };
        // Check the packet first: an error for a packet that gets none costs no token.
        let Some(n) = icmp::build(pkt, reason, out) else {
            return;
        };
        if !self.limiter.allow(now) {
            stats.icmp_limited += 1;
            return;
        }
        buf.truncate(VIRTIO_NET_HDR_LEN + n);
        if let Some(h) = buf.get_mut(..VIRTIO_NET_HDR_LEN) {
            h.fill(0);
        }
        self.len += 1;
        stats.icmp_sent += 1;
    }
}

impl TxBatch {
    /// Allocates every buffer once, slots for inner packets up to `mtu` bytes.
    pub fn new(mtu: usize) -> TxBatch {
        TxBatch {
            scratch: vec![0; VIRTIO_NET_HDR_LEN + MAX_SUPER_PACKET],
            bufs: (0..SLOTS).map(|_| vec![0; slot_len(mtu)]).collect(),
            sizes: vec![0; SLOTS],
            jobs: vec![Job::Skip; SLOTS],
            len: 0,
            gso: Vec::with_capacity(GSO_MAX_BYTES + slot_len(MAX_PACKET)),
            route_mtus: RouteMtus::default(),
            icmp: IcmpOut {
                bufs: (0..ICMP_SLOTS)
                    .map(|_| Vec::with_capacity(VIRTIO_NET_HDR_LEN + icmp::MAX_LEN))
                    .collect(),
                len: 0,
                limiter: icmp::Limiter::default(),
                gro: GROTable::default(),
            },
            gso_lost: false,
            send_fault: Episode::new("sending to peers"),
        }
    }

    /// Grows every slot for inner packets up to `mtu` bytes (allocates; only when the
    /// interface's MTU was raised).
    pub(crate) fn grow(&mut self, mtu: usize) {
        let len = slot_len(mtu);
        if self.bufs.first().is_some_and(|b| b.len() < len) {
            debug!("TUN MTU raised to {mtu}: growing the batch slots");
            for b in &mut self.bufs {
                b.resize(len, 0);
            }
        }
    }

    /// Reads packets from the TUN into free slots (payload at offset 16, room for the header)
    /// until it has none or the batch is nearly full. A packet larger than a slot (the MTU was
    /// raised after start, e.g. `ip link set mtu`) is dropped, and the slots grow to the new MTU.
    pub fn read(&mut self, tun: &Tun, ready: &mut TunReady<'_>) -> ReadEnd {
        // At most SLOTS reads per call; what is left stays readable for the next turn.
        for _ in 0..SLOTS {
            if self.len != 0 && SLOTS - self.len < READ_MORE_FREE {
                break;
            }
            let (Some(bufs), Some(sizes)) = (
                self.bufs.get_mut(self.len..),
                self.sizes.get_mut(self.len..),
            ) else {
                return ReadEnd::Drained;
            };
            // Room for a packet in a slot, less the padding and tag room behind it: a read
            // that fills more was cut short (without offload the TUN read goes straight into
            // the slot and truncates).
            let room = bufs
                .first()
                .map_or(0, |b| b.len() - TRANSPORT_HEADER_LEN - 32);
            match ready.read_batch(&mut self.scratch, bufs, sizes, TRANSPORT_HEADER_LEN) {
                None => return ReadEnd::Drained,
                Some(Ok(1)) if !tun.offload() && sizes.first().is_some_and(|&n| n > room) => {
                    debug!("TUN packet larger than the MTU the slots were sized for: dropped");
                    self.grow_to(tun);
                }
                Some(Ok(n)) => self.len += n.min(SLOTS - self.len),
                Some(Err(e)) if faults::tun_read_is_fatal(&e) => return ReadEnd::Gone(e),
                Some(Err(e)) => {
                    debug!("TUN packet dropped: {e}");
                    if e.kind() == std::io::ErrorKind::InvalidInput {
                        self.grow_to(tun);
                    }
                }
            }
        }
        ReadEnd::Drained
    }

    /// Grows the slots to the interface's MTU now.
    fn grow_to(&mut self, tun: &Tun) {
        match tun.mtu() {
            Ok(mtu) => self.grow(mtu as usize),
            Err(e) => debug!("reading the TUN MTU: {e}"),
        }
    }

    /// Routes every packet by destination and prepares it under `&mut Device` (counter,
    /// header, padding; or staging while there is no session). Handshakes this starts go to
    /// `out`.
    pub fn prepare(
        &mut self,
        dev: &mut Device,
        now: Now,
        stats: &mut TxStats,
        out: &mut Vec<Transmit>,
    ) {
        let n = self.len;
        for ((buf, &size), job) in self
            .bufs
            .iter_mut()
            .zip(&self.sizes)
            .zip(&mut self.jobs)
            .take(n)
        {
            *job = Job::Skip;
            let Some(pkt) = buf.get(TRANSPORT_HEADER_LEN..TRANSPORT_HEADER_LEN + size) else {
                continue;
            };
            let Some(peer) = dev.route(pkt) else {
                stats.no_peer += 1;
                self.icmp.queue(pkt, icmp::Reason::NoPeer, now.mono, stats);
                continue;
            };
            let max = match dev.peer(peer).and_then(|p| p.endpoint()) {
                Some(e) if e.addr.is_ipv6() => MAX_INNER_V6,
                _ => MAX_INNER_V4,
            };
            if size > max {
                stats.too_big += 1;
                let reason = icmp::Reason::TooBig { mtu: max as u32 };
                self.icmp.queue(pkt, reason, now.mono, stats);
                continue;
            }
            match dev.prepare_send(peer, now, buf, size, out) {
                Some(SendResult::Prepared {
                    len,
                    endpoint,
                    keypair,
                }) => {
                    *job = Job::Seal {
                        peer,
                        keypair,
                        len,
                        endpoint,
                    }
                }
                Some(SendResult::BufferTooSmall) => debug!("packet too large for the buffer"),
                _ => {}
            }
        }
    }

    /// Seals every prepared packet, spread over the crypto workers.
    pub fn seal(&mut self, dev: &Device, workers: &Workers) {
        let n = self.len;
        let (Some(bufs), Some(jobs)) = (self.bufs.get_mut(..n), self.jobs.get(..n)) else {
            return;
        };
        let op = |(buf, job): (&mut Vec<u8>, &Job)| {
            if let Job::Seal {
                peer, keypair, len, ..
            } = *job
                && let (Some(key), Some(d)) = (dev.send_key(peer, keypair), buf.get_mut(..len))
            {
                seal_prepared(key, d);
            }
        };
        workers.for_each_pair(bufs, jobs, op);
    }

    /// True (once) if a GSO send failed because a route MTU shrank: the caller then restores
    /// GSO on the sockets ([`UdpSockets::restore_gso`]).
    pub fn take_gso_lost(&mut self) -> bool {
        std::mem::take(&mut self.gso_lost)
    }

    /// Writes the ICMP errors the last batch queued to the TUN.
    pub fn flush_icmp(&mut self, tun: &Tun) {
        let n = std::mem::take(&mut self.icmp.len);
        if let Some(bufs) = self.icmp.bufs.get_mut(..n)
            && n > 0
            && let Err(e) = tun.write_batch(&mut self.icmp.gro, bufs)
        {
            debug!("writing ICMP errors to the TUN: {e}");
        }
    }

    /// Sends the sealed datagrams in order: each run of equal-sized datagrams to one endpoint
    /// that fit the route MTU in one GSO send, larger ones singly. Empties the batch.
    pub fn send(&mut self, dev: &mut Device, udp: &UdpSockets, now: Instant, stats: &mut TxStats) {
        let n = self.len;
        self.len = 0;
        let mut i = 0;
        while i < n {
            let Some(&Job::Seal {
                peer,
                len,
                endpoint,
                ..
            }) = self.jobs.get(i)
            else {
                i += 1;
                continue;
            };
            let Some(sock) = udp.for_addr(&endpoint.addr) else {
                trace!("no socket for {}", endpoint.addr);
                i += 1;
                continue;
            };
            // The run: same peer and endpoint, every datagram `len` bytes but the last, and
            // `len` within the route MTU (else each datagram goes alone, fragmented).
            let gso = sock.max_segments() > 1
                && self
                    .jobs
                    .get(i + 1)
                    .is_some_and(|j| matches!(j, Job::Seal { .. }))
                && len <= self.route_mtus.max_segment(sock, endpoint.addr, now);
            let max = if gso { sock.max_segments() } else { 1 };
            let mut end = i + 1;
            let mut bytes = len;
            while end < n && end - i < max {
                match self.jobs.get(end) {
                    Some(&Job::Seal {
                        peer: p,
                        len: l,
                        endpoint: e,
                        ..
                    }) if p == peer && e == endpoint && l <= len && bytes + l <= GSO_MAX_BYTES => {
                        bytes += l;
                        end += 1;
                        if l < len {
                            break;
                        }
                    }
                    _ => break,
                }
            }
            let result = if end - i == 1 {
                match self.bufs.get(i).and_then(|b| b.get(..len)) {
                    Some(d) => sock.send(endpoint.addr, endpoint.local, d),
                    // A job longer than its slot cannot be built (prepare sized it); if it were,
                    // nothing went out and nothing is counted as sent.
                    None => Err(std::io::Error::other("sealed datagram outside its slot")),
                }
            } else {
                self.gso.clear();
                for (buf, job) in self.bufs.iter().zip(&self.jobs).take(end).skip(i) {
                    if let Job::Seal { len: l, .. } = *job
                        && let Some(d) = buf.get(..l)
                    {
                        self.gso.extend_from_slice(d);
                    }
                }
                sock.send_segments(endpoint.addr, endpoint.local, &self.gso, Some(len))
            };
            stats.send_calls += 1;
            let result = match result {
                // EINVAL from a GSO send: a segment above the route MTU (the link's MTU fell
                // within the cache's second). Nothing went out; send the run singly, where the
                // kernel fragments, and have GSO restored if the new probe explains it.
                Err(e) if end - i > 1 && e.raw_os_error() == Some(libc::EINVAL) => {
                    debug!(
                        "GSO send to {} refused ({e}); sending singly",
                        endpoint.addr
                    );
                    if len > self.route_mtus.reprobe(sock, endpoint.addr, now) {
                        self.gso_lost = true;
                    }
                    let mut r = Err(std::io::Error::other("empty GSO run"));
                    for d in self.gso.chunks(len) {
                        stats.send_calls += 1;
                        r = sock.send(endpoint.addr, endpoint.local, d);
                    }
                    r
                }
                r => r,
            };
            match result {
                Ok(sticky_ok) => {
                    self.send_fault.ok();
                    stats.sent += (end - i) as u64;
                    dev.note_sent(peer, bytes);
                    if !sticky_ok && let Some(p) = dev.peer_mut(peer) {
                        p.set_endpoint(Endpoint::new(endpoint.addr));
                    }
                }
                Err(e) => {
                    stats.send_errors += 1;
                    if faults::classify(&e) != Class::Retry {
                        self.send_fault.failed(&e);
                    }
                    trace!("send to {}: {e}", endpoint.addr);
                }
            }
            i = end;
        }
    }
}
