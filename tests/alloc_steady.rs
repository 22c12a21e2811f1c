//! No heap allocation per packet in steady state (issue #5).
//!
//! The daemon runs inside this test process (its thread and its crypto workers are named
//! `wgd-*`), under a global allocator that counts every allocation made on those threads. A wgd
//! peer runs as a separate process in a second namespace. After a warm-up (handshake, a first
//! TCP transfer in both directions, so the batches, GRO tables and queues have reached their
//! working size), iperf3 moves TCP data both ways and UDP datagrams through the tunnel; the
//! daemon's allocations during that window, divided by the packets it moved, must be ~0.

mod common;

use common::inproc::{InProc, MTU};
use common::netns::{Netns, StockPeer, privileged_or_skip_with, unique_iface, veth, wgd_impl};
use rand_core::OsRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wgd::crypto::keys::PrivateKey;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// 0: not decided yet, 1: a daemon thread (counted), 2: another thread, 3: deciding.
    static KIND: Cell<u8> = const { Cell::new(0) };
}

/// True on the daemon's threads. Deciding reads the thread's name, which may allocate: the
/// allocations made while deciding are not counted.
fn counted() -> bool {
    KIND.with(|k| match k.get() {
        1 => true,
        2 | 3 => false,
        _ => {
            k.set(3);
            let daemon = std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("wgd-"));
            k.set(if daemon { 1 } else { 2 });
            daemon
        }
    })
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PORT: u16 = 51820;
const A_TUN: [&str; 2] = ["198.19.0.1/24", "2001:db8:1::1/64"];
const B_TUN: [&str; 2] = ["198.19.0.2/24", "2001:db8:1::2/64"];

fn conf(
    own: &PrivateKey,
    port: Option<u16>,
    peer: &PrivateKey,
    allowed: &str,
    ep: Option<&str>,
) -> String {
    let mut c = format!("[Interface]\nPrivateKey = {}\n", own.to_base64().as_str());
    if let Some(p) = port {
        c += &format!("ListenPort = {p}\n");
    }
    c += &format!(
        "\n[Peer]\nPublicKey = {}\nAllowedIPs = {allowed}\n",
        peer.public_key()
    );
    if let Some(e) = ep {
        c += &format!("Endpoint = {e}\n");
    }
    c
}

/// Runs iperf3 in `client_ns` against the server at `dest`; returns the bytes received.
fn iperf(client_ns: &Netns, dest: &str, extra: &[&str]) -> u64 {
    let mut args = vec!["iperf3", "-c", dest, "-J"];
    args.extend_from_slice(extra);
    let out = client_ns.run_unchecked_within(&args, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&out.stdout);
    // "sum_received": {... "bytes": N ...}; for UDP the "sum" block has the bytes.
    let key = if extra.contains(&"-u") {
        "\"sum\":"
    } else {
        "\"sum_received\":"
    };
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("iperf3 {extra:?} gave no {key}: {text}"));
    let rest = &text[at..];
    let b = rest.find("\"bytes\":").expect("bytes field") + "\"bytes\":".len();
    rest[b..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a byte count")
}

#[test]
fn no_allocation_per_packet_in_steady_state() {
    let test = "no_allocation_per_packet_in_steady_state";
    if !privileged_or_skip_with(test, &["iperf3"]) {
        return;
    }
    // Inline crypto (the default under 4 cores), then on a 2-thread worker pool. One after the
    // other: both count on the same global counter.
    measure(Some(1));
    measure(Some(2));
}

fn measure(crypto_threads: Option<usize>) {
    let a_ns = Arc::new(Netns::new());
    let b_ns = Netns::new();
    veth(&a_ns, &["198.18.0.1/24"], &b_ns, &["198.18.0.2/24"]);
    let ka = PrivateKey::generate(&mut OsRng);
    let kb = PrivateKey::generate(&mut OsRng);
    let a_conf = conf(
        &ka,
        Some(PORT),
        &kb,
        "198.19.0.2/32, 2001:db8:1::2/128",
        None,
    );
    let b_conf = conf(
        &kb,
        None,
        &ka,
        "198.19.0.1/32, 2001:db8:1::1/128",
        Some(&format!("198.18.0.1:{PORT}")),
    );

    let a_iface = unique_iface("wga");
    let before_start = ALLOCS.load(Ordering::Relaxed);
    let (daemon, _) = InProc::start_with(&a_ns, &a_iface, &a_conf, crypto_threads);
    for addr in A_TUN {
        let mut args = vec!["addr", "add", addr, "dev", &a_iface];
        if addr.contains(':') {
            args.push("nodad");
        }
        a_ns.ip(&args);
    }
    a_ns.ip(&["link", "set", &a_iface, "up"]);
    // The counter works: starting the daemon allocated its buffers on its thread.
    let at_start = ALLOCS.load(Ordering::Relaxed) - before_start;
    assert!(
        at_start > 0,
        "the counting allocator saw {at_start} allocations on the daemon's threads at start-up: \
         are they still named wgd-*?"
    );
    let mut peer = StockPeer::start(
        &wgd_impl(),
        &b_ns,
        &unique_iface("wgb"),
        &b_conf,
        &B_TUN,
        MTU,
    );
    assert!(
        b_ns.wait_ping("198.19.0.1", Duration::from_secs(10)),
        "no tunnel"
    );

    // iperf3 servers in A (the in-process side), as our children.
    let mut server = a_ns
        .exec_command(&["iperf3", "-s", "-p", "5201"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(300));

    // Warm-up: both directions, TCP and UDP.
    iperf(&b_ns, "198.19.0.1", &["-t", "1"]);
    iperf(&b_ns, "198.19.0.1", &["-t", "1", "-R"]);
    iperf(
        &b_ns,
        "198.19.0.1",
        &["-t", "1", "-u", "-b", "200M", "-l", "1200"],
    );

    let before = ALLOCS.load(Ordering::Relaxed);
    let mut bytes = 0;
    bytes += iperf(&b_ns, "198.19.0.1", &["-t", "2"]);
    bytes += iperf(&b_ns, "198.19.0.1", &["-t", "2", "-R"]);
    bytes += iperf(
        &b_ns,
        "198.19.0.1",
        &["-t", "2", "-u", "-b", "200M", "-l", "1200"],
    );
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;

    let _ = server.kill();
    let _ = server.wait();
    peer.assert_running();
    let stats = daemon.stop();
    // Every inner packet is at most MTU bytes: this is a lower bound on packets moved.
    let packets = bytes / u64::from(MTU);
    eprintln!(
        "crypto threads {crypto_threads:?}: steady state: {allocs} allocations on the daemon's threads while moving {bytes} bytes \
         (>= {packets} packets) through it; daemon counters: {stats:?}"
    );
    assert!(
        packets > 50_000,
        "too little traffic to judge: {packets} packets"
    );
    // Zero per packet; a few per second are allowed for timers and handshakes.
    assert!(
        allocs * 1000 < packets,
        "{allocs} allocations for {packets} packets: more than 1 per 1000 packets"
    );
}
