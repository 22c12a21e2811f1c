//! A wgd daemon running inside the test process (on its own thread, in a namespace).

use super::netns::Netns;
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use wgd::conf::Config;
use wgd::daemon::{self, DaemonStats, Options, Started};

/// Tunnel MTU of the in-process daemon.
pub const MTU: u32 = 1420;
/// How long the daemon may take to create its interface and sockets.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the daemon may take to return after shutdown is requested (and again after its
/// interface is deleted, the fallback).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A daemon run by `wgd::daemon::run` on a thread of this test process inside a namespace, so
/// its counters ([`DaemonStats`]) can be read when it stops, and so a test's global allocator
/// sees it.
///
/// A plain (not scoped) thread, so that waiting for it to stop is bounded: a scope would join it
/// unconditionally. Dropping an `InProc` that was not [`InProc::stop`]ped (a failing test) asks the
/// daemon to stop and waits a bounded time, so declare it after its namespace and before the
/// spokes.
pub struct InProc {
    ns: Arc<Netns>,
    iface: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<DaemonStats>>>,
}

impl InProc {
    /// Starts the daemon for `conf_text` in `ns` on interface `iface` and waits (at most
    /// [`READY_TIMEOUT`]) until it reports ready; panics with its error if it fails.
    pub fn start(ns: &Arc<Netns>, iface: &str, conf_text: &str) -> (InProc, Started) {
        Self::start_with(ns, iface, conf_text, None)
    }

    /// [`InProc::start`] with `crypto_threads` crypto workers (None: the host default).
    pub fn start_with(
        ns: &Arc<Netns>,
        iface: &str,
        conf_text: &str,
        crypto_threads: Option<usize>,
    ) -> (InProc, Started) {
        let cfg =
            Config::parse(conf_text, "inproc.conf").unwrap_or_else(|e| panic!("inproc.conf: {e}"));
        let opts = Options {
            iface: iface.to_string(),
            mtu: Some(MTU),
            config_path: None,
            user: None,
            crypto_threads,
            wg_quick: true,
        };
        let (ready_tx, ready_rx) = mpsc::channel::<Started>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let in_ns = Arc::clone(ns);
        let thread = thread::Builder::new()
            .name("wgd-inproc".to_string())
            .spawn(move || {
                in_ns.enter(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    Ok(rt.block_on(daemon::run(
                        cfg,
                        opts,
                        move |s: &Started| {
                            let _ = ready_tx.send(s.clone());
                        },
                        // Completes on a send and also when the sender is dropped.
                        async move {
                            let _ = stop_rx.await;
                        },
                    ))?)
                })
            })
            .expect("cannot spawn the in-process daemon thread");
        let mut hub = InProc {
            ns: Arc::clone(ns),
            iface: iface.to_string(),
            shutdown: Some(stop_tx),
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(started) => (hub, started),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // `on_ready` was dropped uncalled: `run` returned (or panicked) early.
                let result = hub.thread.take().map(JoinHandle::join);
                panic!("the in-process daemon stopped before it was ready: {result:?}");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the in-process daemon was not ready within {READY_TIMEOUT:?}")
            }
        }
    }

    /// Asks the daemon to stop and returns its counters. Bounded: if it has not returned within
    /// [`STOP_TIMEOUT`], its interface is deleted (which also ends `run`) and it gets as long
    /// again; then this panics.
    pub fn stop(mut self) -> DaemonStats {
        match self.stop_inner() {
            Some(Ok(Ok(stats))) => stats,
            Some(Ok(Err(e))) => panic!("the in-process daemon failed: {e:#}"),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => panic!(
                "the in-process daemon did not stop within {STOP_TIMEOUT:?}, nor after its interface \
                 was deleted"
            ),
        }
    }

    /// Requests the stop and joins the thread if it finishes in bounded time; `None` if not
    /// (the thread is then left behind, detached).
    fn stop_inner(&mut self) -> Option<thread::Result<anyhow::Result<DaemonStats>>> {
        let thread = self.thread.take()?;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if !wait_finished(&thread, STOP_TIMEOUT) {
            eprintln!(
                "in-process daemon still running {STOP_TIMEOUT:?} after the shutdown request; \
                 deleting {}",
                self.iface
            );
            let _ = self.ns.run_unchecked(&["ip", "link", "del", &self.iface]);
            if !wait_finished(&thread, STOP_TIMEOUT) {
                return None;
            }
        }
        Some(thread.join())
    }
}

impl Drop for InProc {
    fn drop(&mut self) {
        if self.thread.is_some() {
            match self.stop_inner() {
                Some(Ok(Ok(stats))) => {
                    eprintln!("in-process daemon stopped during cleanup: {stats:?}")
                }
                Some(Ok(Err(e))) => eprintln!("in-process daemon failed: {e:#}"),
                Some(Err(_)) => eprintln!("in-process daemon thread panicked"),
                None => eprintln!("in-process daemon did not stop; its thread is left behind"),
            }
        }
    }
}

/// Polls until `thread` has finished or `limit` passes; true if it finished.
fn wait_finished<T>(thread: &JoinHandle<T>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}
