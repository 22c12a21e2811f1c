//! The inbound data path (kernel `receive.c`): datagrams from the UDP socket (recvmmsg, GRO
//! batches) → the AEAD of every transport datagram on the crypto workers (`&Device` shared:
//! index lookup, keypair and replay-window pre-checks, decryption in place) → in arrival order
//! under `&mut Device`: replay-window update, roaming, timers, key rotation → the inner source
//! checked against the peer's AllowedIPs → the TUN, written as one coalesced batch.
//!
//! Handshake messages take another road: they are copied into a bounded queue and consumed
//! with a time budget between data batches ([`HandshakeQueue`]), so a flood of initiations
//! cannot stall established sessions, and the queue's fill level is what puts the device
//! "under load" (cookie replies instead of DH), as in the kernel.

use crate::daemon::faults::Episode;
use crate::daemon::tun::{GROTable, MAX_SUPER_PACKET, Tun, VIRTIO_NET_HDR_LEN};
use crate::daemon::udp::Sock;
use crate::daemon::workers::{MIN_PARALLEL, Workers};
use crate::proto::device::{Device, DropReason, Received, Ticket};
use crate::proto::messages;
use crate::proto::peer::{Endpoint, Transmit};
use crate::proto::time::Now;
use quinn_udp::RecvMeta;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use tracing::trace;

/// Datagram buffers filled per receive call (recvmmsg).
pub const RECV_BUFS: usize = 8;
/// Packets written to the TUN per batch.
pub const TUN_SLOTS: usize = 128;
/// Room in one receive buffer: a GRO batch of up to 64 KB.
const RECV_BUF_LEN: usize = MAX_SUPER_PACKET + 64;
/// Queued handshake messages at most (the kernel's MAX_QUEUED_INCOMING_HANDSHAKES).
pub const HANDSHAKE_QUEUE: usize = 4096;
/// The largest handshake message (an initiation).
const HANDSHAKE_MAX: usize = messages::INITIATION_LEN;

/// Counters of the inbound path.
#[derive(Debug, Default, Clone, Copy)]
pub struct RxStats {
    /// Decrypted packets whose inner source is not in the sending peer's AllowedIPs.
    pub bad_source: u64,
    /// Datagrams dropped (bad MAC, replay, unknown index, garbage...).
    pub dropped: u64,
    /// Of those, replays ([`crate::proto::device::DropReason::is_replay`]): transport datagrams whose
    /// counter was already received or is behind the window, initiations whose timestamp is not
    /// newer.
    pub replayed: u64,
    /// Handshake messages dropped because the handshake queue was full.
    pub handshake_queue_full: u64,
    /// Inner packets written to the TUN.
    pub delivered: u64,
    /// UDP receive calls that failed (e.g. ECONNREFUSED: a peer's ICMP port unreachable).
    pub recv_errors: u64,
    /// TUN write batches the kernel refused (EIO while the interface is down): their packets
    /// were lost. See `daemon::faults`.
    pub tun_write_errors: u64,
}

#[derive(Clone, Copy, Debug)]
enum Status {
    /// Not a transport message: goes to the handshake path.
    Other,
    /// Authenticated and decrypted in place: this many plaintext bytes, and the ticket that
    /// finishes it.
    Opened(Ticket, usize),
    /// Dropped before or by the AEAD.
    Dropped,
    /// Dropped before the AEAD: its counter was already received or is behind the window.
    Replayed,
}

/// Preallocated state of the inbound path.
pub struct RxBatch {
    bufs: [Vec<u8>; RECV_BUFS],
    meta: [RecvMeta; RECV_BUFS],
    status: [Vec<Status>; RECV_BUFS],
    filled: usize,
    tun_out: TunOut,
}

/// Inner packets waiting to be written to the TUN in one batch.
struct TunOut {
    bufs: Vec<Vec<u8>>,
    len: usize,
    gro: GROTable,
    fault: Episode,
}

impl TunOut {
    fn queue(&mut self, tun: &Tun, pkt: &[u8], stats: &mut RxStats) {
        if self.len == TUN_SLOTS {
            self.flush(tun, stats);
        }
        if let Some(b) = self.bufs.get_mut(self.len) {
            b.clear();
            b.resize(VIRTIO_NET_HDR_LEN, 0);
            b.extend_from_slice(pkt);
            self.len += 1;
        }
    }

    fn flush(&mut self, tun: &Tun, stats: &mut RxStats) {
        let n = self.len;
        self.len = 0;
        if let Some(bufs) = self.bufs.get_mut(..n)
            && n > 0
        {
            match tun.write_batch(&mut self.gro, bufs) {
                Ok(()) => {
                    self.fault.ok();
                    stats.delivered += n as u64;
                }
                Err(e) => {
                    stats.tun_write_errors += 1;
                    self.fault.failed(&e);
                }
            }
        }
    }
}

impl RxBatch {
    /// Allocates every buffer once; `gro_segments` is the most datagrams one receive buffer
    /// may hold.
    pub fn new(gro_segments: usize) -> RxBatch {
        let segs = gro_segments.max(1);
        RxBatch {
            bufs: std::array::from_fn(|_| vec![0; RECV_BUF_LEN.max(1500 * segs)]),
            meta: [RecvMeta::default(); RECV_BUFS],
            status: std::array::from_fn(|_| vec![Status::Dropped; segs]),
            filled: 0,
            tun_out: TunOut {
                bufs: (0..TUN_SLOTS)
                    .map(|_| Vec::with_capacity(VIRTIO_NET_HDR_LEN + MAX_SUPER_PACKET))
                    .collect(),
                len: 0,
                gro: GROTable::default(),
                fault: Episode::new("writing to the TUN"),
            },
        }
    }

    /// Receives one batch without waiting; Ok(false) when the socket has nothing.
    pub fn recv(&mut self, sock: &Sock) -> std::io::Result<bool> {
        let n = {
            let mut slices = self.bufs.each_mut().map(|b| IoSliceMut::new(b));
            match sock.try_recv(&mut slices, &mut self.meta) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        };
        self.filled = n.min(RECV_BUFS);
        Ok(true)
    }

    /// Authenticates and decrypts every transport datagram of the batch in place, spread over
    /// the crypto workers.
    pub fn open(&mut self, dev: &Device, now: Now, workers: &Workers) {
        let n = self.filled;
        let datagrams: usize = self
            .meta
            .iter()
            .take(n)
            .map(|m| m.len.div_ceil(m.stride.max(1)))
            .sum();
        let one = |(d, st): (&mut [u8], &mut Status)| {
            *st = open_one(dev, now, d);
        };
        let per_buf = |((buf, m), st): ((&mut Vec<u8>, &RecvMeta), &mut Vec<Status>)| {
            let len = m.len.min(buf.len());
            let stride = m.stride.max(1);
            buf.get_mut(..len)
                .unwrap_or_default()
                .chunks_mut(stride)
                .zip(st.iter_mut())
                .for_each(one);
        };
        match workers.pool() {
            Some(pool) if datagrams >= MIN_PARALLEL => pool.install(|| {
                self.bufs
                    .par_iter_mut()
                    .zip(self.meta.par_iter())
                    .zip(self.status.par_iter_mut())
                    .take(n)
                    .for_each(|((buf, m), st)| {
                        let len = m.len.min(buf.len());
                        let stride = m.stride.max(1);
                        buf.get_mut(..len)
                            .unwrap_or_default()
                            .par_chunks_mut(stride)
                            .zip(st.par_iter_mut())
                            .with_min_len(MIN_PARALLEL / 2)
                            .for_each(one)
                    })
            }),
            _ => self
                .bufs
                .iter_mut()
                .zip(self.meta.iter())
                .zip(self.status.iter_mut())
                .take(n)
                .for_each(per_buf),
        }
    }

    /// The rest, in arrival order under `&mut Device`: transport datagrams finish (replay
    /// window, roaming, timers, the AllowedIPs source check) and their inner packets join the
    /// TUN batch; handshake messages go to `hs`.
    pub fn finish(
        &mut self,
        dev: &mut Device,
        now: Now,
        tun: &Tun,
        hs: &mut HandshakeQueue,
        stats: &mut RxStats,
        out: &mut Vec<Transmit>,
    ) {
        let n = self.filled;
        self.filled = 0;
        for k in 0..n {
            let (Some(buf), Some(m), Some(st)) =
                (self.bufs.get_mut(k), self.meta.get(k), self.status.get(k))
            else {
                continue;
            };
            let from = Endpoint {
                addr: SocketAddr::new(m.addr.ip().to_canonical(), m.addr.port()),
                local: m.dst_ip,
            };
            let len = m.len.min(buf.len());
            let stride = m.stride.max(1);
            let Some(data) = buf.get_mut(..len) else {
                continue;
            };
            if data.is_empty() {
                // An empty datagram: no message at all (it has no chunk to go through below).
                stats.dropped += 1;
                continue;
            }
            for (d, status) in data.chunks_mut(stride).zip(st.iter()) {
                match *status {
                    Status::Dropped => stats.dropped += 1,
                    Status::Replayed => {
                        stats.dropped += 1;
                        stats.replayed += 1;
                        dev.note_replayed(d);
                    }
                    Status::Other if d.len() > HANDSHAKE_MAX => stats.dropped += 1,
                    Status::Other => {
                        if !hs.push(from, d) {
                            stats.handshake_queue_full += 1;
                        }
                    }
                    Status::Opened(ticket, plain) => {
                        match dev.receive_opened(now, from, d, ticket, plain, out) {
                            Ok(Received::Data { offset, len, .. }) => {
                                if let Some(p) = d.get(offset..offset + len) {
                                    self.tun_out.queue(tun, p, stats);
                                }
                            }
                            Ok(_) => {}
                            Err(DropReason::SourceNotAllowed) => stats.bad_source += 1,
                            Err(e) => {
                                stats.dropped += 1;
                                stats.replayed += u64::from(e.is_replay());
                                trace!("dropped a datagram from {}: {e}", from.addr);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Writes the queued inner packets to the TUN (coalesced where possible).
    pub fn flush_tun(&mut self, tun: &Tun, stats: &mut RxStats) {
        self.tun_out.flush(tun, stats);
    }
}

/// Pre-checks and decrypts one datagram with only `&Device`.
fn open_one(dev: &Device, now: Now, d: &mut [u8]) -> Status {
    if messages::message_type(d) != Ok(messages::TYPE_TRANSPORT) {
        return Status::Other;
    }
    match dev.receive_key(now, d) {
        Ok((ticket, key)) => match ticket.open(key, d) {
            Ok(n) => Status::Opened(ticket, n),
            Err(_) => Status::Dropped,
        },
        Err(e) if e.is_replay() => Status::Replayed,
        Err(_) => Status::Dropped,
    }
}

/// One queued handshake message (fixed size: no allocation per message).
#[derive(Clone, Copy)]
struct Queued {
    from: Endpoint,
    len: usize,
    data: [u8; HANDSHAKE_MAX],
}

/// The bounded queue of received handshake messages (initiations, responses, cookie replies,
/// and anything else that is not transport data). Its length drives the device's under-load
/// state; the daemon consumes it with a time budget.
pub struct HandshakeQueue {
    items: VecDeque<Queued>,
}

impl Default for HandshakeQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl HandshakeQueue {
    /// An empty queue with all its room allocated.
    pub fn new() -> HandshakeQueue {
        HandshakeQueue {
            items: VecDeque::with_capacity(HANDSHAKE_QUEUE),
        }
    }

    /// Queues a copy of `msg`; false if it was dropped (queue full, or longer than any
    /// handshake message).
    pub fn push(&mut self, from: Endpoint, msg: &[u8]) -> bool {
        if msg.len() > HANDSHAKE_MAX || self.items.len() >= HANDSHAKE_QUEUE {
            return false;
        }
        let mut data = [0u8; HANDSHAKE_MAX];
        if let Some(d) = data.get_mut(..msg.len()) {
            d.copy_from_slice(msg);
        }
        self.items.push_back(Queued {
            from,
            len: msg.len(),
            data,
        });
        true
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if none waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Consumes queued messages until the queue is empty or `budget` has passed on `clock`
    /// (checked after each message). Returns how many were consumed.
    pub fn process(
        &mut self,
        dev: &mut Device,
        now: impl Fn() -> Now,
        budget: std::time::Duration,
        stats: &mut RxStats,
        out: &mut Vec<Transmit>,
    ) -> usize {
        let start = now();
        let mut done = 0;
        while let Some(mut q) = self.items.pop_front() {
            let t = now();
            dev.note_handshake_queue_len(t.mono, self.items.len() + 1);
            if let Some(msg) = q.data.get_mut(..q.len)
                && let Err(e) = dev.receive(t, q.from, msg, out)
            {
                stats.dropped += 1;
                stats.replayed += u64::from(e.is_replay());
                trace!("dropped a handshake message from {}: {e}", q.from.addr);
            }
            done += 1;
            if t.mono.since(start.mono) >= budget {
                break;
            }
        }
        done
    }
}
