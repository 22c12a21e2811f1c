//! Transport data-path benchmarks (issue #5): sealing and opening batches of 1, 8, 32 and 64
//! packets of 64, 1420 and 8192 bytes through wgd's `Keypair::seal_batch`/`open_batch`, beside
//! the bare AEAD on the same bytes in the same run:
//! - `wgd`: `Keypair` (header, padding, counters, replay window, tag placement) + the AEAD;
//! - `aead`: `wgd::crypto::TransportKey` alone, the AEAD `Keypair` uses;
//! - `crate`: the `chacha20poly1305` crate's `ChaCha20Poly1305` (what wgd used before).
//!
//! Throughput is payload bytes (the AEAD's plaintext; headers and tags are not counted). The
//! tunnel MTU is set to the payload size, so no padding is added and all three variants encrypt
//! exactly the same number of bytes.
//!
//! Opening needs fresh ciphertext each iteration (it decrypts in place) and, for `wgd`, a replay
//! window that has not seen the counters yet. Both come from `iter_batched_ref` setup, which
//! criterion runs outside the timed section: a copy of the pre-sealed packets, and for `wgd` a
//! new `Keypair` from the same session keys (a new replay window; building one is not timed).
//! The bare variants get the same fresh copies, so all three open equally cold data.
//!
//! After the criterion groups a short summary prints GB/s and the wgd/aead and crate/wgd ratios
//! for batches of 64 × 1420 bytes (median of 21 interleaved runs, thread CPU time). `TRANSPORT_SUMMARY=only`
//! prints just the summary.
//!
//! Run: `cargo bench --bench transport` (the whole matrix takes ~4 minutes).

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group};
use std::hint::black_box;
use std::time::Duration;
use wgd::crypto::SecretBytes;
use wgd::crypto::TransportKey;
use wgd::proto::Instant;
use wgd::proto::noise::SessionKeys;
use wgd::proto::{Keypair, OpenError};

const SIZES: [usize; 3] = [64, 1420, 8192];
const BATCHES: [usize; 4] = [1, 8, 32, 64];
const HEADER: usize = 16;
const TAG: usize = 16;
const KEY: [u8; 32] = [0x5a; 32];
const NOW: Instant = Instant::from_nanos(1_000);

fn keys(initiator: bool) -> SessionKeys {
    // The sender's send key is the receiver's receive key.
    let (send, recv) = if initiator {
        (KEY, [0x33; 32])
    } else {
        ([0x33; 32], KEY)
    };
    SessionKeys {
        send: SecretBytes::new(send),
        recv: SecretBytes::new(recv),
        local_index: if initiator { 1 } else { 2 },
        remote_index: if initiator { 2 } else { 1 },
        initiator,
    }
}

fn sender() -> Keypair {
    Keypair::new(keys(true), NOW)
}

fn receiver() -> Keypair {
    Keypair::new(keys(false), NOW)
}

fn nonce(counter: u64) -> chacha20poly1305::Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n.into()
}

/// `batch` buffers laid out as `[header][payload of size][tag]`, payload filled.
fn buffers(size: usize, batch: usize) -> Vec<Vec<u8>> {
    (0..batch)
        .map(|i| {
            let mut v = vec![0u8; HEADER + size + TAG];
            for (j, b) in v[HEADER..HEADER + size].iter_mut().enumerate() {
                *b = (i + j) as u8;
            }
            v
        })
        .collect()
}

/// `batch` datagrams sealed by `sender()` with counters 0..batch.
fn sealed(size: usize, batch: usize) -> Vec<Vec<u8>> {
    let mut tx = sender();
    let mut store = buffers(size, batch);
    let mut lens = vec![size; batch];
    let mut bufs: Vec<&mut [u8]> = store.iter_mut().map(|v| v.as_mut_slice()).collect();
    let (n, err) = tx.seal_batch(NOW, &mut bufs, &mut lens, size);
    assert!(n == batch && err.is_none(), "sealing the fixture");
    store
}

fn seal_wgd(tx: &mut Keypair, store: &mut [Vec<u8>], lens: &mut [usize], size: usize) {
    lens.fill(size);
    let mut bufs: Vec<&mut [u8]> = store.iter_mut().map(|v| v.as_mut_slice()).collect();
    let (n, _) = tx.seal_batch(NOW, &mut bufs, lens, size);
    black_box(n);
}

fn seal_aead(key: &TransportKey, counter: &mut u64, store: &mut [Vec<u8>], size: usize) {
    for v in store.iter_mut() {
        let (data, tag) = v[HEADER..].split_at_mut(size);
        tag.copy_from_slice(&key.seal(*counter, data));
        *counter += 1;
    }
}

fn seal_crate(
    c: &chacha20poly1305::ChaCha20Poly1305,
    counter: &mut u64,
    store: &mut [Vec<u8>],
    size: usize,
) {
    for v in store.iter_mut() {
        let (data, tag) = v[HEADER..].split_at_mut(size);
        if let Ok(t) = c.encrypt_in_place_detached(&nonce(*counter), &[], data) {
            tag.copy_from_slice(&t);
        }
        *counter += 1;
    }
}

fn open_wgd(
    rx: &mut Keypair,
    store: &mut [Vec<u8>],
    results: &mut [Result<(u64, usize), OpenError>],
) {
    let mut bufs: Vec<&mut [u8]> = store.iter_mut().map(|v| v.as_mut_slice()).collect();
    rx.open_batch(NOW, &mut bufs, results);
    black_box(&results[0]);
}

fn open_aead(key: &TransportKey, store: &mut [Vec<u8>], size: usize) -> usize {
    let mut ok = 0;
    for (i, v) in store.iter_mut().enumerate() {
        let (data, tag) = v[HEADER..].split_at_mut(size);
        let tag: &[u8; TAG] = (&*tag).try_into().expect("tag length");
        ok += usize::from(key.open(i as u64, data, tag).is_ok());
    }
    ok
}

fn open_crate(c: &chacha20poly1305::ChaCha20Poly1305, store: &mut [Vec<u8>], size: usize) -> usize {
    let mut ok = 0;
    for (i, v) in store.iter_mut().enumerate() {
        let (data, tag) = v[HEADER..].split_at_mut(size);
        let tag = chacha20poly1305::Tag::from_slice(tag);
        ok += usize::from(
            c.decrypt_in_place_detached(&nonce(i as u64), &[], data, tag)
                .is_ok(),
        );
    }
    ok
}

fn check_fixture() {
    // The three open paths must accept the fixture, or the open figures would time failures.
    for size in SIZES {
        let fixture = sealed(size, 4);
        let mut a = fixture.clone();
        let mut results = vec![Err(OpenError::Malformed); 4];
        open_wgd(&mut receiver(), &mut a, &mut results);
        assert!(results.iter().all(|r| r.is_ok()), "wgd open of the fixture");
        assert_eq!(
            open_aead(&TransportKey::new(&KEY), &mut fixture.clone(), size),
            4
        );
        let c = chacha20poly1305::ChaCha20Poly1305::new(&KEY.into());
        assert_eq!(open_crate(&c, &mut fixture.clone(), size), 4);
    }
}

fn bench_seal(c: &mut Criterion) {
    for size in SIZES {
        let mut g = c.benchmark_group(format!("seal/{size}"));
        for batch in BATCHES {
            g.throughput(Throughput::Bytes((size * batch) as u64));
            let mut store = buffers(size, batch);
            let mut lens = vec![size; batch];
            let mut tx = sender();
            g.bench_function(BenchmarkId::new("wgd", batch), |b| {
                b.iter(|| seal_wgd(&mut tx, &mut store, &mut lens, size))
            });
            let key = TransportKey::new(&KEY);
            let mut counter = 0;
            g.bench_function(BenchmarkId::new("aead", batch), |b| {
                b.iter(|| seal_aead(&key, &mut counter, &mut store, size))
            });
            let cipher = chacha20poly1305::ChaCha20Poly1305::new(&KEY.into());
            let mut counter = 0;
            g.bench_function(BenchmarkId::new("crate", batch), |b| {
                b.iter(|| seal_crate(&cipher, &mut counter, &mut store, size))
            });
        }
        g.finish();
    }
}

fn bench_open(c: &mut Criterion) {
    for size in SIZES {
        let mut g = c.benchmark_group(format!("open/{size}"));
        for batch in BATCHES {
            g.throughput(Throughput::Bytes((size * batch) as u64));
            let fixture = sealed(size, batch);
            let mut results = vec![Err(OpenError::Malformed); batch];
            g.bench_function(BenchmarkId::new("wgd", batch), |b| {
                b.iter_batched_ref(
                    || (receiver(), fixture.clone()),
                    |(rx, store)| open_wgd(rx, store, &mut results),
                    BatchSize::SmallInput,
                )
            });
            let key = TransportKey::new(&KEY);
            g.bench_function(BenchmarkId::new("aead", batch), |b| {
                b.iter_batched_ref(
                    || fixture.clone(),
                    |store| open_aead(&key, store, size),
                    BatchSize::SmallInput,
                )
            });
            let cipher = chacha20poly1305::ChaCha20Poly1305::new(&KEY.into());
            g.bench_function(BenchmarkId::new("crate", batch), |b| {
                b.iter_batched_ref(
                    || fixture.clone(),
                    |store| open_crate(&cipher, store, size),
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Rounds of the summary: each round runs every variant once, in turn.
const ROUNDS: usize = 21;

/// One run: the thread CPU time per call of `f` over 200 calls, each on fresh inputs from
/// `setup` (made before the clock starts).
fn per_call<S>(setup: &mut impl FnMut() -> S, f: &mut impl FnMut(&mut S)) -> f64 {
    const CALLS: usize = 200;
    let mut inputs: Vec<S> = (0..CALLS).map(|_| setup()).collect();
    let t = cpu_time();
    for s in inputs.iter_mut() {
        f(s);
    }
    (cpu_time() - t).as_secs_f64() / CALLS as f64
}

/// The median per-call time of each variant over [`ROUNDS`] interleaved rounds (A B C A B C
/// ...), so that a drift of the machine (frequency, a neighbour) hits every variant alike.
fn interleaved_medians<const N: usize>(variants: [&mut dyn FnMut() -> f64; N]) -> [f64; N] {
    let mut variants = variants;
    let mut runs = [(); N].map(|_| Vec::with_capacity(ROUNDS));
    for _ in 0..ROUNDS {
        for (v, r) in variants.iter_mut().zip(runs.iter_mut()) {
            r.push(v());
        }
    }
    runs.map(|mut r| {
        r.sort_by(f64::total_cmp);
        r[r.len() / 2]
    })
}

/// GB/s and ratios for batches of 64 × 1420 bytes.
fn summary() {
    const SIZE: usize = 1420;
    const BATCH: usize = 64;
    let bytes = (SIZE * BATCH) as f64;
    let key = TransportKey::new(&KEY);
    let cipher = chacha20poly1305::ChaCha20Poly1305::new(&KEY.into());
    let fixture = sealed(SIZE, BATCH);

    let mut tx = sender();
    let mut lens = vec![SIZE; BATCH];
    let mut counter = 0u64;
    let mut counter2 = 0u64;
    let [seal_wgd_s, seal_aead_s, seal_crate_s] = interleaved_medians([
        &mut || {
            per_call(&mut || buffers(SIZE, BATCH), &mut |s| {
                seal_wgd(&mut tx, s, &mut lens, SIZE)
            })
        },
        &mut || {
            per_call(&mut || buffers(SIZE, BATCH), &mut |s| {
                seal_aead(&key, &mut counter, s, SIZE)
            })
        },
        &mut || {
            per_call(&mut || buffers(SIZE, BATCH), &mut |s| {
                seal_crate(&cipher, &mut counter2, s, SIZE)
            })
        },
    ]);
    let mut results = vec![Err(OpenError::Malformed); BATCH];
    let [open_wgd_s, open_aead_s, open_crate_s] = interleaved_medians([
        &mut || {
            per_call(&mut || (receiver(), fixture.clone()), &mut |(rx, s)| {
                open_wgd(rx, s, &mut results)
            })
        },
        &mut || {
            per_call(&mut || fixture.clone(), &mut |s| {
                black_box(open_aead(&key, s, SIZE));
            })
        },
        &mut || {
            per_call(&mut || fixture.clone(), &mut |s| {
                black_box(open_crate(&cipher, s, SIZE));
            })
        },
    ]);
    let gbs = |s: f64| bytes / s / 1e9;
    println!();
    println!(
        "transport summary: batches of {BATCH} x {SIZE}-byte packets, one thread, AEAD backend {}",
        key.backend()
    );
    println!(
        "(median of {ROUNDS} interleaved runs of 200 batches each, thread CPU time; payload bytes)"
    );
    for (op, w, a, c) in [
        ("seal", seal_wgd_s, seal_aead_s, seal_crate_s),
        ("open", open_wgd_s, open_aead_s, open_crate_s),
    ] {
        println!(
            "  {op}: wgd {:.2} GB/s, bare aead {:.2} GB/s, chacha20poly1305 crate {:.2} GB/s; \
             wgd/aead time {:.3} (overhead {:+.1}%), crate/wgd time {:.2}",
            gbs(w),
            gbs(a),
            gbs(c),
            w / a,
            (w / a - 1.0) * 100.0,
            c / w
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = bench_seal, bench_open
}

fn main() {
    check_fixture();
    if std::env::var("TRANSPORT_SUMMARY").as_deref() != Ok("only") {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
    // `cargo test --benches` runs this binary with --test: skip the timing summary there.
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        summary();
    }
}
