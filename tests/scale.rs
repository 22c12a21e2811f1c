//! Scale in peers, sans-IO (issue #5 part 3): memory per peer, AllowedIPs and index lookups at
//! 10 versus 10,000 peers, the cost of `Device::tick`/`next_deadline` with 10,000 idle peers, and
//! a 1,000-initiator handshake storm against one responder (normal, then under load with cookie
//! replies and MAC2 retries).
//!
//! Every figure is printed (`cargo test --test scale -- --nocapture`) and recorded in
//! `docs/scale.md`. Timing assertions compare ratios measured in the same run with generous
//! factors, so that a busy 2-core machine does not make them flaky; the tests take one lock so
//! that they never run (and allocate) at the same time.

mod common;

use common::packet::icmp4_echo;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant as StdInstant};
use wgd::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use wgd::proto::Keypair;
use wgd::proto::Now;
use wgd::proto::allowedips::AllowedIps;
use wgd::proto::constants::{
    DEFAULT_MTU, REKEY_TIMEOUT, REKEY_TIMEOUT_JITTER_MAX, UNDER_LOAD_QUEUE_THRESHOLD,
};
use wgd::proto::{Device, Received};
use wgd::proto::{Endpoint, SendResult, Transmit, TransmitKind};
use wgd::proto::{IndexTable, PeerId};

// ---------------------------------------------------------------------------------------------
// A global allocator that counts live heap bytes.
// ---------------------------------------------------------------------------------------------

/// Live heap bytes of the whole test binary (requested sizes, not the allocator's rounding).
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; only a counter is updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on to `System`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// One test at a time: the allocation counter is global and timings want the CPU.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const PEERS: usize = 10_000;
const FEW: usize = 10;

fn rng(seed: u64) -> Box<ChaCha8Rng> {
    Box::new(ChaCha8Rng::seed_from_u64(seed))
}

fn t0() -> Now {
    Now::simulated(
        Duration::from_secs(1000),
        Duration::from_secs(1_700_000_000),
    )
}

/// Peer `i`'s tunnel addresses: 198.18.0.0/16 + i and 2001:db8:5ca1::i.
fn peer_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i as u32)
}

fn peer_v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(u128::from("2001:db8:5ca1::".parse::<Ipv6Addr>().unwrap()) + i as u128)
}

/// Peer `i`'s underlay address in 198.19.0.0/16 (one per peer, so the per-source rate limiter
/// sees distinct sources), port 51820.
fn underlay(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 0)) + 1 + i as u32);
    SocketAddr::new(IpAddr::V4(ip), 51820)
}

/// Distinct public keys (random curve points are fine as peer keys: the device only computes
/// the static-static DH with them).
fn random_keys(n: usize, seed: u64) -> Vec<PublicKey> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut b = [0u8; 32];
            r.fill_bytes(&mut b);
            PublicKey::from_bytes(b)
        })
        .collect()
}

/// A device with `keys.len()` peers (every third one with an endpoint) and its AllowedIPs
/// table (one /32 and one /128 per peer).
fn build(keys: &[PublicKey]) -> (Device, Vec<PeerId>) {
    let mut dev = Device::new(PrivateKey::from_bytes([7; 32]), rng(1));
    let mut ids = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let id = dev.add_peer(*k, PresharedKey::default()).expect("add peer");
        if i % 3 == 0
            && let Some(p) = dev.peer_mut(id)
        {
            p.set_endpoint(Endpoint::new(underlay(i)));
        }
        dev.add_allowed_ip(id, IpAddr::V4(peer_v4(i)), 32)
            .expect("insert v4");
        dev.add_allowed_ip(id, IpAddr::V6(peer_v6(i)), 128)
            .expect("insert v6");
        ids.push(id);
    }
    (dev, ids)
}

/// CPU time of the calling thread (not wall time: on a busy machine the other processes'
/// share does not count against the code measured).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Nanoseconds per iteration of `f` over `iters` iterations (best of `rounds`, which filters
/// out the other processes on a busy machine).
fn ns_per(iters: usize, rounds: usize, mut f: impl FnMut(usize) -> u64) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let start = StdInstant::now();
        let mut acc = 0u64;
        for i in 0..iters {
            acc = acc.wrapping_add(f(i));
        }
        black_box(acc);
        let ns = start.elapsed().as_nanos() as f64 / iters as f64;
        best = best.min(ns);
    }
    best
}

/// `n` indices in 0..m in a scrambled order (a fixed permutation walk, so lookups do not run
/// along memory in insertion order).
fn scrambled(n: usize, m: usize, seed: u64) -> Vec<usize> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| (r.next_u64() % m as u64) as usize).collect()
}

// ---------------------------------------------------------------------------------------------
// 1. 10,000 configured peers
// ---------------------------------------------------------------------------------------------

#[test]
fn memory_per_peer_with_10k_peers() {
    let _g = serial();
    let keys = random_keys(PEERS, 11);
    let before = live();
    let start = StdInstant::now();
    let (dev, ids) = build(&keys);
    let allowed = dev.allowed_ips();
    let build_time = start.elapsed();
    let total = live() - before;
    // The ids vector is the test's, not the device's.
    let ids_bytes = (ids.capacity() * std::mem::size_of::<PeerId>()) as isize;
    let per_peer = (total - ids_bytes) as f64 / PEERS as f64;
    // The table alone, built again on its own.
    let before_table = live();
    let mut table = AllowedIps::new();
    for (i, id) in ids.iter().enumerate() {
        table.insert(IpAddr::V4(peer_v4(i)), 32, *id).unwrap();
        table.insert(IpAddr::V6(peer_v6(i)), 128, *id).unwrap();
    }
    let table_per_peer = (live() - before_table) as f64 / PEERS as f64;
    eprintln!(
        "scale: {PEERS} peers: {per_peer:.0} heap bytes/peer (Device + AllowedIPs), of which \
         AllowedIPs {table_per_peer:.0}; size_of::<Peer>() = {} bytes (Keypair {}); built in \
         {build_time:?}",
        std::mem::size_of::<wgd::proto::Peer>(),
        std::mem::size_of::<Keypair>()
    );
    assert_eq!(dev.peer_ids().count(), PEERS);
    assert_eq!(allowed.len(), 2 * PEERS);
    assert_eq!(table.len(), 2 * PEERS);
    // Measured 6,876 bytes/peer: `Peer` is 4,032 bytes inline (three keypair slots, each with
    // its 1 KiB replay window, even when empty) in a vector grown by doubling (capacity 16,384
    // for 10,000), plus 210 bytes of AllowedIPs. Bound at about 1.5x.
    assert!(
        per_peer < 10_240.0,
        "{per_peer:.0} heap bytes per peer (bound 10,240)"
    );
    assert!(
        table_per_peer < 320.0,
        "AllowedIPs: {table_per_peer:.0} bytes per peer (bound 320)"
    );
    drop((dev, table));
}

#[test]
fn add_peer_cost_is_independent_of_the_peer_count() {
    let _g = serial();
    let keys = random_keys(PEERS, 17);
    let mut dev = Device::new(PrivateKey::from_bytes([7; 32]), rng(1));
    let mut times = Vec::with_capacity(PEERS);
    for k in &keys {
        let start = StdInstant::now();
        dev.add_peer(*k, PresharedKey::default()).expect("add peer");
        times.push(start.elapsed());
    }
    // The median of the first and of the last thousand adds (the median ignores the adds that
    // grew the vector and those the scheduler interrupted).
    let median = |s: &[Duration]| {
        let mut v = s.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    let first = median(&times[..1000]);
    let last = median(&times[PEERS - 1000..]);
    let ratio = last.as_secs_f64() / first.as_secs_f64();
    eprintln!(
        "scale: add_peer: median {first:?} for peers 1-1000, {last:?} for peers 9001-10000 \
         ({ratio:.2}x); total {:?}",
        times.iter().sum::<Duration>()
    );
    assert_eq!(dev.peer_ids().count(), PEERS);
    // Each add computes one static-static DH (~60 us). The slot search used to walk the peer
    // vector (4 KiB per entry): the last thousand adds then cost 3.4x the first (quadratic).
    assert!(
        ratio < 2.0,
        "add_peer at 10k peers costs {ratio:.2}x the first adds"
    );
}

#[test]
fn allowedips_lookup_is_independent_of_the_peer_count() {
    let _g = serial();
    const LOOKUPS: usize = 1_000_000;
    let mut per = Vec::new();
    for n in [FEW, 1_000, PEERS] {
        let keys = random_keys(n, 12);
        let (dev, ids) = build(&keys);
        let allowed = dev.allowed_ips();
        let order = scrambled(LOOKUPS, n, 13);
        let v4: Vec<Ipv4Addr> = order.iter().map(|&i| peer_v4(i)).collect();
        let v6: Vec<Ipv6Addr> = order.iter().map(|&i| peer_v6(i)).collect();
        // Every address is found, and found for the right peer.
        for &i in order.iter().take(1000) {
            assert_eq!(allowed.lookup_v4(peer_v4(i)), Some(ids[i]));
            assert_eq!(allowed.lookup_v6(peer_v6(i)), Some(ids[i]));
        }
        let ns4 = ns_per(LOOKUPS, 3, |i| {
            allowed
                .lookup_v4(black_box(v4[i]))
                .map_or(0, |p| p.0 as u64)
        });
        let ns6 = ns_per(LOOKUPS, 3, |i| {
            allowed
                .lookup_v6(black_box(v6[i]))
                .map_or(0, |p| p.0 as u64)
        });
        eprintln!(
            "scale: AllowedIPs lookup with {n} peers: {ns4:.1} ns (IPv4 /32), {ns6:.1} ns \
             (IPv6 /128), {LOOKUPS} lookups, best of 3"
        );
        per.push((ns4, ns6));
    }
    let ratio = |a: usize, b: usize| (per[a].0 / per[b].0, per[a].1 / per[b].1);
    let (r4, r6) = ratio(2, 0);
    let (s4, s6) = ratio(2, 1);
    eprintln!(
        "scale: AllowedIPs lookup ratios: 10k/10 peers IPv4 {r4:.2}x IPv6 {r6:.2}x; 10k/1k peers \
         IPv4 {s4:.2}x IPv6 {s6:.2}x"
    );
    // The trie's depth grows with log2(peers) until it reaches the prefix length (32 or 128),
    // and a 10k-peer table no longer fits in L1/L2: 1,000x the peers cost 5x to 8x (more when
    // other processes thrash the caches), 10x the peers about 2x. An O(peers) lookup would
    // cost 1,000x and 10x: the bounds sit far below that, and far above the measurements.
    assert!(r4 < 25.0, "IPv4 lookup 10k/10 peers = {r4:.2}x");
    assert!(r6 < 25.0, "IPv6 lookup 10k/10 peers = {r6:.2}x");
    assert!(s4 < 5.0, "IPv4 lookup 10k/1k peers = {s4:.2}x");
    assert!(s6 < 5.0, "IPv6 lookup 10k/1k peers = {s6:.2}x");
}

#[test]
fn receiver_index_lookup_is_independent_of_the_peer_count() {
    let _g = serial();
    const LOOKUPS: usize = 1_000_000;
    let mut per = Vec::new();
    for n in [FEW, PEERS] {
        // Up to four indices per peer (a handshake and three keypairs); allocate them all.
        let mut table = IndexTable::new();
        let mut r = ChaCha8Rng::seed_from_u64(14);
        let mut idx = Vec::new();
        for p in 0..n {
            for _ in 0..4 {
                idx.push((table.allocate(&mut r, PeerId(p as u32)), PeerId(p as u32)));
            }
        }
        assert_eq!(table.len(), 4 * n);
        let order = scrambled(LOOKUPS, idx.len(), 15);
        let probes: Vec<u32> = order.iter().map(|&i| idx[i].0).collect();
        for &i in order.iter().take(1000) {
            assert_eq!(table.get(idx[i].0), Some(idx[i].1));
        }
        let ns = ns_per(LOOKUPS, 3, |i| {
            table.get(black_box(probes[i])).map_or(0, |p| p.0 as u64)
        });
        eprintln!(
            "scale: receiver-index lookup with {n} peers ({} indices): {ns:.1} ns",
            4 * n
        );
        per.push(ns);
    }
    let ratio = per[1] / per[0];
    eprintln!("scale: receiver-index 10k/10 ratio: {ratio:.2}x");
    assert!(ratio < 5.0, "index lookup 10k/10 peers = {ratio:.2}x");
}

#[test]
fn tick_and_next_deadline_with_10k_idle_peers() {
    let _g = serial();
    let mut per = Vec::new();
    for n in [FEW, PEERS] {
        let keys = random_keys(n, 16);
        let (mut dev, _) = build(&keys);
        let now = t0();
        let mut out: Vec<Transmit> = Vec::new();
        let rounds = if n == FEW { 10_000 } else { 200 };
        let tick = ns_per(rounds, 3, |_| {
            let d = dev.tick(now, &mut out);
            d.map_or(0, |t| t.as_nanos())
        });
        let next = ns_per(rounds, 3, |_| {
            dev.next_deadline().map_or(0, |t| t.as_nanos())
        });
        assert!(out.is_empty(), "idle peers sent {} datagrams", out.len());
        assert_eq!(dev.next_deadline(), None, "idle peers have no timer armed");
        eprintln!(
            "scale: {n} idle peers: Device::tick {:.1} us, Device::next_deadline {:.1} us",
            tick / 1e3,
            next / 1e3
        );
        per.push((tick, next));
    }
    let (tick10k, next10k) = per[1];
    eprintln!(
        "scale: tick 10k/10 ratio {:.0}x, next_deadline 10k/10 ratio {:.0}x (both walk every \
         peer: O(peers))",
        tick10k / per[0].0,
        next10k / per[0].1
    );
    // Not a target, a regression guard: both are O(peers) today (see docs/scale.md); with
    // 10,000 peers each must stay well under the 250 ms that would stall the event loop.
    assert!(
        tick10k < 25e6,
        "Device::tick with 10k peers: {tick10k:.0} ns"
    );
    assert!(
        next10k < 25e6,
        "next_deadline with 10k peers: {next10k:.0} ns"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Handshake storm: 1,000 initiators against one responder
// ---------------------------------------------------------------------------------------------

const INITIATORS: usize = 1_000;
const RESPONDER_ADDR: &str = "198.18.255.1:51820";

struct Storm {
    now: Now,
    responder: Device,
    /// The responder's id for initiator i.
    resp_ids: Vec<PeerId>,
    initiators: Vec<Device>,
    /// The initiator's id for the responder (the same in every initiator).
    init_ids: Vec<PeerId>,
    by_addr: HashMap<SocketAddr, usize>,
    /// Thread CPU time spent inside the responder's `receive`.
    responder_busy: Duration,
}

impl Storm {
    fn new(seed: u64) -> Storm {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let rkey = PrivateKey::generate(&mut r);
        let rpub = rkey.public_key();
        let mut responder = Device::new(rkey, rng(seed + 1));
        let mut initiators = Vec::with_capacity(INITIATORS);
        let mut resp_ids = Vec::with_capacity(INITIATORS);
        let mut init_ids = Vec::with_capacity(INITIATORS);
        let mut by_addr = HashMap::new();
        let raddr: SocketAddr = RESPONDER_ADDR.parse().unwrap();
        for i in 0..INITIATORS {
            let k = PrivateKey::generate(&mut r);
            let rid = responder
                .add_peer(k.public_key(), PresharedKey::default())
                .unwrap();
            // Cryptokey routing (see `data_both_ways`): the initiator's tunnel address belongs
            // to it; everything belongs to the responder.
            responder
                .add_allowed_ip(rid, IpAddr::V4(peer_v4(i)), 32)
                .unwrap();
            resp_ids.push(rid);
            let mut d = Device::new(k, rng(seed + 1000 + i as u64));
            let id = d.add_peer(rpub, PresharedKey::default()).unwrap();
            d.add_allowed_ip(id, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)
                .unwrap();
            d.peer_mut(id).unwrap().set_endpoint(Endpoint::new(raddr));
            init_ids.push(id);
            initiators.push(d);
            by_addr.insert(underlay(i), i);
        }
        Storm {
            now: t0(),
            responder,
            resp_ids,
            initiators,
            init_ids,
            by_addr,
            responder_busy: Duration::ZERO,
        }
    }

    /// Delivers datagram `data` from initiator `i` to the responder; returns what it sent.
    fn deliver_to_responder(&mut self, i: usize, mut data: Vec<u8>) -> (Received, Vec<Transmit>) {
        let mut out = vec![];
        let start = thread_cpu();
        let r = self
            .responder
            .receive(self.now, Endpoint::new(underlay(i)), &mut data, &mut out)
            .unwrap_or_else(|e| panic!("responder dropped initiator {i}'s datagram: {e}"));
        self.responder_busy += thread_cpu() - start;
        for t in &out {
            assert_eq!(
                self.by_addr.get(&t.endpoint.addr),
                Some(&i),
                "sent elsewhere"
            );
        }
        (r, out)
    }

    /// Delivers datagram `data` from the responder to initiator `i`.
    fn deliver_to_initiator(&mut self, i: usize, mut data: Vec<u8>) -> (Received, Vec<Transmit>) {
        let mut out = vec![];
        let r = self.initiators[i]
            .receive(
                self.now,
                Endpoint::new(RESPONDER_ADDR.parse().unwrap()),
                &mut data,
                &mut out,
            )
            .unwrap_or_else(|e| panic!("initiator {i} dropped the responder's datagram: {e}"));
        (r, out)
    }

    /// Every initiator's initiation, sent at the same instant.
    fn initiate_all(&mut self) -> Vec<Vec<u8>> {
        (0..INITIATORS)
            .map(|i| {
                let mut out = vec![];
                let id = self.init_ids[i];
                self.initiators[i].initiate(id, self.now, &mut out);
                assert_eq!(out.len(), 1, "initiator {i}");
                assert_eq!(out[0].kind, TransmitKind::Initiation);
                out.remove(0).data
            })
            .collect()
    }

    /// Delivers initiations (in order), then the responses, then the confirmations; asserts
    /// every session completed. Returns the responder's busy time for the initiations alone.
    fn complete(&mut self, initiations: Vec<Vec<u8>>) -> Duration {
        let busy0 = self.responder_busy;
        let mut responses = Vec::with_capacity(INITIATORS);
        for (i, m) in initiations.into_iter().enumerate() {
            let (r, mut out) = self.deliver_to_responder(i, m);
            assert_eq!(r, Received::Handshake(self.resp_ids[i]));
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].kind, TransmitKind::Response);
            responses.push(out.remove(0).data);
        }
        let init_busy = self.responder_busy - busy0;
        let mut confirmations = Vec::with_capacity(INITIATORS);
        for (i, m) in responses.into_iter().enumerate() {
            let (r, mut out) = self.deliver_to_initiator(i, m);
            assert_eq!(r, Received::Handshake(self.init_ids[i]));
            // Nothing staged: the initiator confirms the session with a keepalive.
            assert_eq!(out.len(), 1, "initiator {i}: {out:?}");
            assert_eq!(out[0].kind, TransmitKind::Keepalive);
            confirmations.push(out.remove(0).data);
        }
        for (i, m) in confirmations.into_iter().enumerate() {
            let (r, _) = self.deliver_to_responder(i, m);
            assert_eq!(r, Received::Keepalive(self.resp_ids[i]));
        }
        init_busy
    }

    /// One ICMP echo each way on every session.
    fn data_both_ways(&mut self) {
        let server = Ipv4Addr::new(198, 18, 255, 254);
        for i in 0..INITIATORS {
            let client = peer_v4(i);
            // Initiator -> responder.
            let pkt = icmp4_echo(client, server, 1, i as u16, b"scale");
            let data = seal(&mut self.initiators[i], self.init_ids[i], self.now, &pkt);
            let mut data = data;
            let mut out = vec![];
            let r = self
                .responder
                .receive(self.now, Endpoint::new(underlay(i)), &mut data, &mut out)
                .unwrap_or_else(|e| panic!("data from initiator {i}: {e}"));
            match r {
                Received::Data {
                    peer,
                    offset,
                    len,
                    source,
                } => {
                    assert_eq!(peer, self.resp_ids[i]);
                    assert_eq!(source, IpAddr::V4(client));
                    assert_eq!(&data[offset..offset + len], &pkt[..]);
                }
                other => panic!("initiator {i}'s packet arrived as {other:?}"),
            }
            // Responder -> initiator.
            let back = icmp4_echo(server, client, 1, i as u16, b"elacs");
            let mut data = seal(&mut self.responder, self.resp_ids[i], self.now, &back);
            let mut out = vec![];
            let r = self.initiators[i]
                .receive(
                    self.now,
                    Endpoint::new(RESPONDER_ADDR.parse().unwrap()),
                    &mut data,
                    &mut out,
                )
                .unwrap_or_else(|e| panic!("data to initiator {i}: {e}"));
            match r {
                Received::Data {
                    offset,
                    len,
                    source,
                    ..
                } => {
                    assert_eq!(source, IpAddr::V4(server));
                    assert_eq!(&data[offset..offset + len], &back[..]);
                }
                other => panic!("the reply to initiator {i} arrived as {other:?}"),
            }
        }
    }
}

/// Seals `pkt` for `peer` on a live session; panics if there is none.
fn seal(dev: &mut Device, peer: PeerId, now: Now, pkt: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; Keypair::sealed_len(pkt.len(), DEFAULT_MTU)];
    buf[16..16 + pkt.len()].copy_from_slice(pkt);
    let mut out = vec![];
    match dev.send(peer, now, &mut buf, pkt.len(), &mut out) {
        Some(SendResult::Sealed { len, .. }) => {
            buf.truncate(len);
            buf
        }
        other => panic!("no session to seal on: {other:?}"),
    }
}

#[test]
fn handshake_storm_1000_initiators() {
    let _g = serial();
    let mut s = Storm::new(21);
    let initiations = s.initiate_all();
    let busy = s.complete(initiations);
    s.data_both_ways();
    assert_eq!(s.responder.stats.handshakes_processed, INITIATORS as u64);
    assert_eq!(s.responder.stats.cookie_replies_sent, 0);
    for i in 0..INITIATORS {
        let p = s.responder.peer(s.resp_ids[i]).unwrap();
        assert!(p.current_keypair().is_some(), "responder session {i}");
        assert!(p.stats.last_handshake.is_some());
    }
    let rate = INITIATORS as f64 / busy.as_secs_f64();
    eprintln!(
        "scale: storm: {INITIATORS} initiations consumed by one responder in {busy:?} of its \
         thread CPU time: {rate:.0} handshakes/s on one core (all {INITIATORS} sessions carried data \
         both ways)"
    );
    assert!(rate > 100.0, "{rate:.0} handshakes/s");
}

#[test]
fn handshake_storm_under_load_cookies_then_mac2() {
    let _g = serial();
    let mut s = Storm::new(31);
    s.responder
        .note_handshake_queue_len(s.now.mono, UNDER_LOAD_QUEUE_THRESHOLD);
    assert!(s.responder.is_under_load(s.now.mono));
    // Round 1: every initiation gets a cookie reply, no DH work.
    let initiations = s.initiate_all();
    let busy0 = s.responder_busy;
    let mut replies = Vec::with_capacity(INITIATORS);
    for (i, m) in initiations.into_iter().enumerate() {
        let (r, mut out) = s.deliver_to_responder(i, m);
        assert_eq!(r, Received::CookieSent, "initiator {i}");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, TransmitKind::CookieReply);
        replies.push(out.remove(0).data);
    }
    let cookie_busy = s.responder_busy - busy0;
    assert_eq!(s.responder.stats.cookie_replies_sent, INITIATORS as u64);
    assert_eq!(s.responder.stats.handshakes_processed, 0);
    for (i, m) in replies.into_iter().enumerate() {
        let (r, out) = s.deliver_to_initiator(i, m);
        assert_eq!(r, Received::CookieReply(s.init_ids[i]));
        assert!(out.is_empty());
    }
    // Round 2: the retransmit timer (REKEY_TIMEOUT + jitter) fires on every initiator; the
    // responder is still under load (the queue is still long), and every retry carries a MAC2.
    s.now = s
        .now
        .after(REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX + Duration::from_millis(1));
    s.responder
        .note_handshake_queue_len(s.now.mono, UNDER_LOAD_QUEUE_THRESHOLD);
    assert!(s.responder.is_under_load(s.now.mono));
    let mut retries = Vec::with_capacity(INITIATORS);
    for i in 0..INITIATORS {
        let mut out = vec![];
        let now = s.now;
        s.initiators[i].tick(now, &mut out);
        assert_eq!(out.len(), 1, "initiator {i} retransmits once: {out:?}");
        assert_eq!(out[0].kind, TransmitKind::Initiation);
        // MAC2 (the last 16 bytes) is set now.
        assert!(out[0].data[132..148].iter().any(|&b| b != 0), "no MAC2");
        retries.push(out.remove(0).data);
    }
    let busy = s.complete(retries);
    s.data_both_ways();
    assert_eq!(s.responder.stats.cookie_replies_sent, INITIATORS as u64);
    assert_eq!(s.responder.stats.handshakes_processed, INITIATORS as u64);
    let rate = INITIATORS as f64 / busy.as_secs_f64();
    let cookie_rate = INITIATORS as f64 / cookie_busy.as_secs_f64();
    eprintln!(
        "scale: storm under load: {} cookie replies ({cookie_busy:?}, {cookie_rate:.0}/s), then \
         {} handshakes with MAC2 ({busy:?}, {rate:.0}/s); all {INITIATORS} sessions carried \
         data both ways",
        s.responder.stats.cookie_replies_sent, s.responder.stats.handshakes_processed
    );
    // A cookie reply costs no DH: it must be much cheaper than a handshake.
    assert!(
        cookie_busy * 3 < busy,
        "cookie replies {cookie_busy:?} vs handshakes {busy:?}"
    );
}
