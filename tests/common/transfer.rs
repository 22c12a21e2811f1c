//! A checksummed TCP transfer between two namespaces: the server hashes what it receives, the
//! client hashes what it sends (SHA-256), and the test compares the two.

use super::netns::Netns;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Result of one transfer.
#[derive(Debug)]
pub struct Transfer {
    /// SHA-256 of what the client sent.
    pub sent: [u8; 32],
    /// SHA-256 of what the server received.
    pub received: [u8; 32],
    /// Bytes the server received.
    pub bytes: u64,
    /// Wall time of the transfer.
    pub elapsed: Duration,
}

impl Transfer {
    /// Megabits per second.
    pub fn mbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64() / 1e6
    }
}

/// Sends `bytes` pseudo-random bytes over TCP from `client_ns` to `server` (an address in
/// `server_ns`), with `during` called on the test thread once the transfer is under way.
/// Bounded by `timeout`; panics if it does not complete.
pub fn tcp_transfer(
    server_ns: &Netns,
    server: SocketAddr,
    client_ns: &Netns,
    bytes: u64,
    timeout: Duration,
    during: impl FnOnce(),
) -> Transfer {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (progress_tx, progress_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let srv = s.spawn(|| {
            server_ns.enter(|| {
                let l = TcpListener::bind(server).expect("bind the transfer server");
                ready_tx.send(()).expect("signal ready");
                let (mut c, _) = l.accept().expect("accept");
                c.set_read_timeout(Some(timeout)).expect("timeout");
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 16];
                let mut total = 0u64;
                loop {
                    match c.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => {
                            h.update(&buf[..n]);
                            total += n as u64;
                        }
                        Err(e) => panic!("transfer server read after {total} bytes: {e}"),
                    }
                }
                (h.finalize().into(), total)
            })
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server ready");
        let start = Instant::now();
        let cli = s.spawn(|| {
            client_ns.enter(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut c = loop {
                    match TcpStream::connect_timeout(&server, Duration::from_secs(2)) {
                        Ok(c) => break c,
                        Err(e) if Instant::now() < deadline => {
                            let _ = e;
                            thread::sleep(Duration::from_millis(100));
                        }
                        Err(e) => panic!("connect to {server}: {e}"),
                    }
                };
                c.set_write_timeout(Some(timeout)).expect("timeout");
                let mut rng = ChaCha8Rng::seed_from_u64(bytes);
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 16];
                let mut left = bytes;
                let mut signalled = false;
                while left > 0 {
                    let n = left.min(buf.len() as u64) as usize;
                    rng.fill_bytes(&mut buf[..n]);
                    c.write_all(&buf[..n]).expect("transfer client write");
                    h.update(&buf[..n]);
                    left -= n as u64;
                    if !signalled && bytes - left >= bytes / 4 {
                        let _ = progress_tx.send(());
                        signalled = true;
                    }
                }
                drop(c);
                let d: [u8; 32] = h.finalize().into();
                d
            })
        });
        if progress_rx.recv_timeout(timeout).is_ok() {
            during();
        }
        let sent = cli.join().expect("client thread");
        let (received, total) = srv.join().expect("server thread");
        Transfer {
            sent,
            received,
            bytes: total,
            elapsed: start.elapsed(),
        }
    })
}
