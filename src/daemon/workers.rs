//! Crypto workers: the AEAD of a batch spread over the machine's cores (a rayon pool), or done
//! inline on the I/O thread when there is one core, when `WGD_CRYPTO_THREADS=1`, or when the
//! batch is too small to be worth the hand-off.
//!
//! Workers only ever see one batch at a time, through shared references to keys and disjoint
//! mutable buffers; the I/O thread waits for the whole batch, so packets leave in the order
//! their counters were assigned (the kernel keeps per-peer order with a queue of done/not-done
//! packets; a batch barrier gives the same guarantee with less machinery).

use rayon::prelude::*;

/// Hosts with fewer cores seal and open inline by default. Measured on 2 cores
/// (`scripts/bench-variants.sh`, `docs/benchmarks.md`): with the crypto spread over a 2-thread
/// pool a TCP stream through two wgd on the same host ran at 0.8x the inline speed and cost 1.3x
/// the CPU per GB, because the other core is already busy with the kernel's network stack, the
/// peer and the application, and the hand-off (wake-ups, rayon's idle spinning) is pure cost.
pub const MIN_CORES_FOR_WORKERS: usize = 4;

/// Below this many packets a batch is sealed/opened inline: waking a worker costs more.
pub const MIN_PARALLEL: usize = 8;

/// The crypto worker pool (none: inline).
pub struct Workers {
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workers({})", self.threads())
    }
}

impl Workers {
    /// `threads` workers; 0 or 1 means inline on the calling thread.
    pub fn new(threads: usize) -> Workers {
        let pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("wgd-crypto-{i}"))
                    .build()
                    .ok()
            })
            .flatten();
        Workers { pool }
    }

    /// `WGD_CRYPTO_THREADS` workers if set; otherwise one per core on hosts with at least
    /// [`MIN_CORES_FOR_WORKERS`] cores, inline below that.
    pub fn from_env() -> Workers {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = std::env::var("WGD_CRYPTO_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if cores >= MIN_CORES_FOR_WORKERS {
                cores
            } else {
                1
            });
        Workers::new(threads)
    }

    /// Number of threads crypto runs on (1 = inline).
    pub fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or(1, rayon::ThreadPool::current_num_threads)
    }

    /// Runs `op` on each pair `(a[i], b[i])`, in parallel when worth it; returns once all are done.
    pub fn for_each_pair<A: Send, B: Sync>(
        &self,
        a: &mut [A],
        b: &[B],
        op: impl Fn((&mut A, &B)) + Sync + Send,
    ) {
        match &self.pool {
            Some(pool) if a.len() >= MIN_PARALLEL => pool.install(|| {
                a.par_iter_mut()
                    .zip(b.par_iter())
                    .with_min_len(MIN_PARALLEL / 2)
                    .for_each(op)
            }),
            _ => a.iter_mut().zip(b.iter()).for_each(op),
        }
    }

    /// The pool, for callers with their own parallel shape.
    pub fn pool(&self) -> Option<&rayon::ThreadPool> {
        self.pool.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_is_visited_once_inline_and_parallel() {
        for threads in [1, 2, 4] {
            let w = Workers::new(threads);
            for n in [0usize, 1, 7, 8, 9, 64, 129] {
                let mut a = vec![0u32; n];
                let b: Vec<u32> = (0..n as u32).collect();
                w.for_each_pair(&mut a, &b, |(x, y)| *x += *y + 1);
                assert!(
                    a.iter().zip(&b).all(|(x, y)| *x == *y + 1),
                    "threads {threads} n {n}"
                );
            }
        }
    }
}
