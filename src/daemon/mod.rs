//! The daemon: the I/O around the sans-IO core. One task owns the [`Device`], the AllowedIPs
//! table, the TUN and the UDP sockets, and waits on all of them and on the next timer deadline at
//! once (no task or timer per packet or per peer).
//!
//! Outbound ([`crate::daemon::send`]): TUN (TSO super-packets split) → AllowedIPs lookup of the
//! destination → counters and headers under `&mut Device` → AEAD on the crypto workers → UDP GSO.
//! Inbound ([`crate::daemon::receive`]): UDP (recvmmsg + GRO) → AEAD on the crypto workers → replay
//! window, timers, roaming under `&mut Device` → AllowedIPs check of the inner source → TUN
//! (coalesced). Handshake messages wait in a bounded queue consumed with a time budget.

pub(crate) mod faults;
pub mod privdrop;
pub(crate) mod receive;
pub(crate) mod reresolve;
pub(crate) mod send;
pub(crate) mod tun;
pub(crate) mod udp;
pub(crate) mod workers;

pub use receive::RxStats;
pub use send::TxStats;

use crate::conf::Config;
use crate::crypto::rng::BufferedOsRng;
use crate::daemon::receive::{HandshakeQueue, RxBatch};
use crate::daemon::send::{ReadEnd, TxBatch};
use crate::daemon::tun::Tun;
use crate::daemon::udp::{Sock, UdpSockets};
use crate::daemon::workers::Workers;
use crate::proto::constants::DEFAULT_MTU;
use crate::proto::device::{Device, DeviceStats};
use crate::proto::index::PeerId;
use crate::proto::peer::{Endpoint, Transmit};
use crate::proto::time::{Instant, Now};
use crate::wgquick::WgQuick;
use anyhow::{Context, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{debug, info, trace, warn};

/// Receive batches one wake-up may take from a UDP socket before the others get a turn.
const UDP_ROUNDS: usize = 8;
/// Time the handshake queue may take per turn before data gets its turn again.
const HANDSHAKE_BUDGET: Duration = Duration::from_millis(1);

/// The protocol's clock read from the system's: CLOCK_BOOTTIME since the daemon started, and
/// the wall clock. Boot time keeps counting while the machine is suspended, as the kernel's
/// WireGuard ages keypairs and handshakes (`ktime_get_coarse_boottime_ns`): after a laptop
/// sleeps for an hour its keys are an hour old, so the first packet after resume starts a new
/// handshake instead of going out under keys the peer discarded long ago. (CLOCK_MONOTONIC,
/// `std::time::Instant`'s clock, stops during suspend.) The I/O layer (this daemon, test
/// drivers) is the only place that reads real clocks.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Duration,
}

/// CLOCK_BOOTTIME: time since boot, suspend included (a vDSO read, no system call).
pub fn boot_time() -> Duration {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}

impl Clock {
    /// A clock whose monotonic origin is now.
    pub fn start() -> Clock {
        Clock {
            origin: boot_time(),
        }
    }

    /// The time now.
    pub fn now(&self) -> Now {
        Now {
            mono: Instant::from_duration(boot_time().saturating_sub(self.origin)),
            wall: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    /// The tokio instant at which protocol time `t` comes, reckoned from the two clocks now:
    /// tokio's timers run on CLOCK_MONOTONIC, which does not count a suspend, so the event loop
    /// recomputes this on every wake-up (after a resume, deadlines that passed during the sleep
    /// are in the past and fire at once).
    pub fn deadline(&self, t: Instant) -> tokio::time::Instant {
        tokio::time::Instant::now() + t.since(self.now().mono)
    }
}

/// Counters of what the daemon did and dropped, for tests and reports.
#[derive(Debug, Default, Clone, Copy)]
pub struct DaemonStats {
    /// The outbound path's counters (`tx.no_peer`: packets no peer's AllowedIPs covers).
    pub tx: TxStats,
    /// The inbound path's counters.
    pub rx: RxStats,
    /// The protocol core's counters (cookies, handshakes, MACs).
    pub device: DeviceStats,
}

impl DaemonStats {
    /// Every device-wide counter with its name, as `wgd-stats=1` reports it (the UAPI's
    /// `name=value` lines, `wgd show --json` and `--prometheus`).
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let (t, r, d) = (&self.tx, &self.rx, &self.device);
        vec![
            ("tx_no_peer", t.no_peer),
            ("tx_too_big", t.too_big),
            ("tx_icmp_sent", t.icmp_sent),
            ("tx_icmp_limited", t.icmp_limited),
            ("tx_sent", t.sent),
            ("tx_send_calls", t.send_calls),
            ("tx_send_errors", t.send_errors),
            ("rx_delivered", r.delivered),
            ("rx_dropped", r.dropped),
            ("rx_replayed", r.replayed),
            ("rx_bad_source", r.bad_source),
            ("rx_handshake_queue_full", r.handshake_queue_full),
            ("rx_recv_errors", r.recv_errors),
            ("rx_tun_write_errors", r.tun_write_errors),
            ("handshakes_processed", d.handshakes_processed),
            ("invalid_mac", d.invalid_mac),
            ("cookie_replies_sent", d.cookie_replies_sent),
            ("rate_limited", d.rate_limited),
        ]
    }
}

/// Options of one daemon instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// Interface name.
    pub iface: String,
    /// Tunnel MTU. None: as wg-quick chooses it when the file has no `MTU` (with
    /// [`Options::wg_quick`]): the largest MTU of the routes to the peers' endpoints, else of
    /// the default route, else 1500, minus 80; without `wg_quick`, 1420.
    pub mtu: Option<u32>,
    /// The configuration file, re-read on SIGHUP (None: SIGHUP is ignored).
    pub config_path: Option<std::path::PathBuf>,
    /// `--user`: the user to become once everything privileged is set up (None: stay root).
    pub user: Option<crate::daemon::privdrop::Target>,
    /// Crypto worker threads (None: `WGD_CRYPTO_THREADS` or the default for this host, see
    /// [`Workers::from_env`]).
    pub crypto_threads: Option<usize>,
    /// Run wg-quick's steps around the device (`wgd up`): hooks, addresses, the link up,
    /// routes, DNS. False for a bare device, as `wgd IFACE` and wireguard-go create it for
    /// `wg-quick`, which then does those steps itself.
    pub wg_quick: bool,
}

/// Why [`run`] could not bring the interface up, or stopped with an error. Each variant names
/// the step; the cause is its [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configured endpoint's host name did not resolve.
    #[error("resolving Endpoint {endpoint}")]
    Resolve {
        /// The endpoint as configured.
        endpoint: String,
        /// The resolver's error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration could not be applied to the device (more peers or prefixes than a
    /// device holds).
    #[error("applying the configuration")]
    Apply(#[source] crate::uapi::UapiError),
    /// A system call for the interface, the sockets or the signal handlers failed.
    #[error("{what}")]
    Io {
        /// The step (e.g. "creating TUN interface wg0").
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Serving the UAPI socket failed (its directory, a live socket of the same name, binding).
    #[error(transparent)]
    Uapi(#[from] crate::uapi::server::ServeError),
    /// A wg-quick step failed: a PreUp/PostUp hook, `ip`, `resolvconf` (everything done up to
    /// then was undone).
    #[error(transparent)]
    WgQuick(Box<dyn std::error::Error + Send + Sync>),
    /// Dropping privileges (`--user`) failed.
    #[error(transparent)]
    Privileges(#[from] crate::daemon::privdrop::PrivDropError),
}

impl Error {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// Resolves a configured endpoint: the one resolver of start-up and SIGHUP (as `wg setconf`
/// and `wg syncconf` resolve host names; a name that does not resolve fails the whole set).
/// No retries: SIGHUP must not stall the event loop (start-up retries, see
/// [`resolve_endpoint_at_start`]).
pub fn resolve_endpoint(
    e: &crate::conf::EndpointSpec,
) -> std::result::Result<Option<std::net::SocketAddr>, Error> {
    resolve_endpoint_with(e, Some(0))
}

/// [`resolve_endpoint`] with `wg`'s retries at start-up, before the event loop runs: a
/// temporary resolver failure is retried `WG_ENDPOINT_RESOLUTION_RETRIES` times (default 15;
/// `infinity`: forever), after 1 s and then 1.2 times longer each time, up to 20 s.
pub fn resolve_endpoint_at_start(
    e: &crate::conf::EndpointSpec,
) -> std::result::Result<Option<std::net::SocketAddr>, Error> {
    resolve_endpoint_with(e, reresolve::retries_from_env())
}

fn resolve_endpoint_with(
    e: &crate::conf::EndpointSpec,
    retries: Option<u32>,
) -> std::result::Result<Option<std::net::SocketAddr>, Error> {
    reresolve::resolve_with_retries(e, retries, std::thread::sleep)
        .map(Some)
        .map_err(|source| Error::Resolve {
            endpoint: e.to_string(),
            source,
        })
}

/// The state the event loop owns besides the I/O objects.
pub(crate) struct Daemon {
    /// The protocol core (with its cryptokey routing table).
    pub dev: Device,
    clock: Clock,
    out: Vec<Transmit>,
    /// The fwmark on the sockets.
    fwmark: Option<u32>,
    tx_stats: TxStats,
    rx_stats: RxStats,
    /// When the interface's MTU was last read ([`Daemon::follow_mtu`]).
    mtu_checked: Option<Instant>,
}

/// How often the interface's MTU is read while packets flow.
const MTU_CHECK: Duration = Duration::from_secs(1);

impl Daemon {
    /// Builds the device from a configuration: an empty device, then the same set request
    /// that `wg setconf` sends (and SIGHUP and the UAPI `set` apply), with host-name endpoints
    /// resolved by [`resolve_endpoint`]. Persistent keepalives (and the handshakes they start)
    /// wait in the output queue until the sockets exist.
    pub fn from_config(cfg: &Config, mtu: u32) -> std::result::Result<Daemon, Error> {
        let mut dev = Device::without_key(Box::new(BufferedOsRng::new()));
        dev.set_mtu(mtu as usize);
        let mut d = Daemon {
            dev,
            clock: Clock::start(),
            out: Vec::new(),
            fwmark: None,
            tx_stats: TxStats::default(),
            rx_stats: RxStats::default(),
            mtu_checked: None,
        };
        if let Some(own) = cfg.interface.private_key.as_ref().map(|k| k.public_key()) {
            if cfg.peers.iter().any(|p| p.public_key == own) {
                warn!("a [Peer] has the interface's own public key: ignored, as `wg setconf` does");
            }
        }
        let req = crate::uapi::set_request_from_config_with(cfg, true, resolve_endpoint_at_start)?;
        let now = d.now();
        let change = crate::uapi::apply(req, &mut d.dev, now, &mut d.out).map_err(Error::Apply)?;
        d.fwmark = change.fwmark.flatten();
        Ok(d)
    }

    /// The injected clock, read from the system's.
    pub fn now(&self) -> Now {
        self.clock.now()
    }

    /// Sends everything the core queued.
    fn flush(&mut self, udp: &UdpSockets) {
        for t in self.out.drain(..) {
            send_one(
                &mut self.dev,
                udp,
                &mut self.tx_stats,
                t.peer,
                t.endpoint,
                &t.data,
            );
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> DaemonStats {
        DaemonStats {
            tx: self.tx_stats,
            rx: self.rx_stats,
            device: self.dev.stats,
        }
    }

    /// Reads the interface's MTU at most once a second while packets flow (one ioctl), so that
    /// padding and the batch slots follow `ip link set mtu` after start, as the kernel's
    /// WireGuard reads `dev->mtu` for every packet.
    fn follow_mtu(&mut self, tun: &Tun, tx: &mut TxBatch) {
        let now = self.now().mono;
        if self
            .mtu_checked
            .is_some_and(|t| !t.has_expired(MTU_CHECK, now))
        {
            return;
        }
        self.mtu_checked = Some(now);
        match tun.mtu() {
            Ok(m) if m as usize != self.dev.mtu() => {
                info!(mtu = m, "interface MTU changed");
                self.dev.set_mtu(m as usize);
                tx.grow(m as usize);
            }
            Ok(_) => {}
            Err(e) => debug!("reading the TUN MTU: {e}"),
        }
    }

    /// Moves one batch of packets from the TUN to the peers.
    fn on_tun(&mut self, udp: &UdpSockets, tx: &mut TxBatch, workers: &Workers) {
        let now = self.now();
        tx.prepare(&mut self.dev, now, &mut self.tx_stats, &mut self.out);
        tx.seal(&self.dev, workers);
        tx.send(&mut self.dev, udp, now.mono, &mut self.tx_stats);
        self.flush(udp);
    }

    /// Receives what `sock` has (bounded per wake-up): data goes to the TUN, handshake
    /// messages to the queue.
    fn on_udp(&mut self, udp: &UdpSockets, sock: &Sock, tun: &Tun, io: &mut DataPath) {
        for _ in 0..UDP_ROUNDS {
            match io.rx.recv(sock) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    // ECONNREFUSED and the like (a peer's ICMP port unreachable): transient.
                    self.rx_stats.recv_errors += 1;
                    if faults::classify(&e) == faults::Class::Fatal {
                        warn!("UDP receive: {e}");
                    } else {
                        trace!("UDP receive: {e}");
                    }
                    break;
                }
            }
            let now = self.now();
            io.rx.open(&self.dev, now, &io.workers);
            io.rx.finish(
                &mut self.dev,
                now,
                tun,
                &mut io.handshakes,
                &mut self.rx_stats,
                &mut self.out,
            );
            self.flush(udp);
        }
        io.rx.flush_tun(tun, &mut self.rx_stats);
        let now = self.now();
        self.dev
            .note_handshake_queue_len(now.mono, io.handshakes.len());
    }

    /// Consumes queued handshake messages for at most [`HANDSHAKE_BUDGET`].
    fn on_handshakes(&mut self, udp: &UdpSockets, hs: &mut HandshakeQueue) {
        let clock = self.clock;
        hs.process(
            &mut self.dev,
            || clock.now(),
            HANDSHAKE_BUDGET,
            &mut self.rx_stats,
            &mut self.out,
        );
        self.flush(udp);
    }

    /// Answers one UAPI request. A `set` is applied atomically; a new listen port is bound
    /// before the old sockets are dropped, so a failure leaves everything as it was.
    fn on_uapi(&mut self, udp: &mut UdpSockets, bytes: &[u8]) -> zeroize::Zeroizing<String> {
        use crate::uapi::{self, Request};
        let req = match uapi::parse_request(bytes) {
            Ok(r) => r,
            Err(e) => {
                debug!("UAPI request refused: {e}");
                return uapi::format_errno(e.errno()).into();
            }
        };
        match req {
            Request::Get => uapi::format_get(&self.dev, udp.port(), self.fwmark),
            Request::Set(set) => self.apply_set(udp, set).into(),
            Request::Stats => uapi::format_stats(&self.dev, &self.stats().counters()).into(),
        }
    }

    /// Applies a `set` atomically; a new listen port is bound before anything else changes, so
    /// a failure leaves everything as it was. Returns the `errno=` reply.
    fn apply_set(&mut self, udp: &mut UdpSockets, set: crate::uapi::SetRequest) -> String {
        use crate::uapi;
        let rebound = match set.listen_port() {
            Some(p) if p != udp.port() || p == 0 => match UdpSockets::bind(p, self.fwmark) {
                Ok(s) => Some(s),
                Err(e) => {
                    debug!("UAPI: cannot bind port {p}: {e}");
                    return uapi::format_errno(-libc::EADDRINUSE);
                }
            },
            _ => None,
        };
        let now = self.now();
        match uapi::apply(set, &mut self.dev, now, &mut self.out) {
            Ok(change) => {
                if let Some(s) = rebound {
                    info!(port = s.port(), "listen port changed");
                    *udp = s;
                }
                if let Some(mark) = change.fwmark {
                    self.fwmark = mark;
                    if let Err(e) = udp.set_fwmark(mark) {
                        warn!("setting fwmark: {e}");
                    }
                }
                self.flush(udp);
                uapi::format_errno(0)
            }
            Err(e) => {
                debug!("UAPI set refused: {e}");
                uapi::format_errno(e.errno())
            }
        }
    }

    /// SIGHUP: re-reads the configuration and applies only the difference, like `wg syncconf`:
    /// peers that did not change keep their sessions and counters.
    fn reload(&mut self, udp: &mut UdpSockets, path: &std::path::Path) -> Result<Config> {
        let cfg = Config::from_file(path).map_err(anyhow::Error::new)?;
        let req = crate::uapi::sync_request_from_config_with(&cfg, &self.dev, resolve_endpoint)?;
        let reply = self.apply_set(udp, req);
        if reply.starts_with("errno=0") {
            Ok(cfg)
        } else {
            anyhow::bail!("applying {}: {}", path.display(), reply.trim())
        }
    }

    /// The running configuration in wg-quick form: the interface keys of `base` with the
    /// device's current key, port, fwmark and peers (what `wg-quick save` writes).
    fn current_config(&self, base: &Config, port: u16) -> Config {
        use crate::conf::{AllowedIp, EndpointSpec, PeerConfig};
        let mut c = Config {
            interface: base.interface.clone(),
            peers: Vec::new(),
        };
        c.interface.private_key = self
            .dev
            .has_private_key()
            .then(|| self.dev.private_key().clone());
        c.interface.listen_port = (port != 0).then_some(port);
        c.interface.fwmark = self.fwmark;
        for id in self.dev.peer_ids() {
            let Some(p) = self.dev.peer(id) else { continue };
            let mut pc = PeerConfig::new(*p.public_key());
            pc.preshared_key = (!p.preshared_key().is_zero()).then(|| p.preshared_key().clone());
            pc.allowed_ips = self
                .dev
                .allowed_ips()
                .iter_by_value(id)
                .filter_map(|(a, cidr)| AllowedIp::new(a, cidr))
                .collect();
            pc.endpoint = p.endpoint().map(|e| EndpointSpec::from(e.addr));
            pc.persistent_keepalive = p
                .persistent_keepalive()
                .and_then(|d| u16::try_from(d.as_secs()).ok());
            c.peers.push(pc);
        }
        c
    }

    /// SaveConfig: writes the running configuration over `path` (0600, via a temporary file).
    fn save_config(&self, base: &Config, port: u16, path: &std::path::Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = self.current_config(base, port).to_wg_quick_string();
        let tmp = path.with_extension("conf.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    }

    /// Runs the timers due now.
    fn on_timer(&mut self, udp: &UdpSockets) {
        let now = self.now();
        self.dev.tick(now, &mut self.out);
        self.flush(udp);
    }
}

/// Sends one datagram to a peer's endpoint; forgets a sticky source the kernel refused.
fn send_one(
    dev: &mut Device,
    udp: &UdpSockets,
    stats: &mut TxStats,
    peer: Option<PeerId>,
    e: Endpoint,
    data: &[u8],
) {
    let Some(sock) = udp.for_addr(&e.addr) else {
        debug!("no socket for {}", e.addr);
        return;
    };
    match sock.send(e.addr, e.local, data) {
        Ok(sticky_ok) => {
            if let Some(id) = peer {
                dev.note_sent(id, data.len());
                if !sticky_ok && let Some(p) = dev.peer_mut(id) {
                    p.set_endpoint(Endpoint::new(e.addr));
                }
            }
        }
        Err(err) => {
            stats.send_errors += 1;
            trace!("send to {}: {err}", e.addr);
        }
    }
}

/// The data path's preallocated state.
struct DataPath {
    rx: RxBatch,
    tx: TxBatch,
    handshakes: HandshakeQueue,
    workers: Workers,
}

/// Future that never completes when the socket is absent.
async fn readable(sock: Option<&Sock>) -> std::io::Result<()> {
    match sock {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

/// Completes on SIGTERM or SIGINT (what `wgd up` and `wgd IFACE` stop on). The handlers are
/// installed when this is called, so call it before the daemon starts.
pub fn termination() -> std::result::Result<impl std::future::Future<Output = ()>, Error> {
    let mut term =
        signal(SignalKind::terminate()).map_err(Error::io("installing the SIGTERM handler"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(Error::io("installing the SIGINT handler"))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
    })
}

/// Information about a started daemon.
#[derive(Debug, Clone)]
pub struct Started {
    /// The interface name.
    pub iface: String,
    /// The UDP listen port.
    pub port: u16,
}

/// Creates the interface and sockets for `cfg`, calls `on_ready`, and runs until `shutdown`
/// completes (the CLI passes [`termination`]) or until the interface is deleted. Everything it created is gone
/// when it returns; the drop counters are returned.
pub async fn run(
    cfg: Config,
    opts: Options,
    on_ready: impl FnOnce(&Started),
    shutdown: impl std::future::Future<Output = ()>,
) -> std::result::Result<DaemonStats, Error> {
    let mut d = Daemon::from_config(&cfg, opts.mtu.unwrap_or(DEFAULT_MTU as u32))?;
    let mtu = match opts.mtu {
        Some(m) => m,
        None if opts.wg_quick => {
            let endpoints: Vec<std::net::IpAddr> = d
                .dev
                .peer_ids()
                .filter_map(|id| Some(d.dev.peer(id)?.endpoint()?.addr.ip()))
                .collect();
            crate::wgquick::auto_mtu(&endpoints)
        }
        None => DEFAULT_MTU as u32,
    };
    d.dev.set_mtu(mtu as usize);
    let wgquick = |e: anyhow::Error| Error::WgQuick(e.into());
    let mut wgq = WgQuick::pre_up(&cfg, &opts.iface, opts.wg_quick).map_err(wgquick)?;
    let tun = Tun::create(&opts.iface)
        .map_err(Error::io(format!("creating TUN interface {}", opts.iface)))?;
    crate::daemon::tun::set_mtu(tun.name(), mtu).map_err(Error::io("setting the MTU"))?;
    wgq.link(tun.name()).map_err(wgquick)?;
    let mut udp = UdpSockets::bind(cfg.interface.listen_port.unwrap_or(0), cfg.interface.fwmark)
        .map_err(Error::io("binding the UDP listen port"))?;
    let (_ipc, mut ipc_rx) = crate::uapi::server::serve(tun.name())?;
    // The rest of wg-quick's `up` (undone by `down` on the way out, and by itself if a step
    // fails), then, with everything in place, dropping root (`--user`).
    wgq.up(&cfg, |mark| {
        d.fwmark = Some(mark);
        udp.set_fwmark(Some(mark))
            .context("setting the fwmark for the default route")
    })
    .map_err(wgquick)?;
    if let Some(t) = &opts.user {
        if let Err(e) = crate::daemon::privdrop::drop_privileges(t, udp.port()) {
            wgq.abort();
            return Err(e.into());
        }
    }
    let started = Started {
        iface: tun.name().to_string(),
        port: udp.port(),
    };
    info!(iface = %started.iface, port = started.port, "interface up");

    // Persistent keepalives start at once, as when the kernel is configured: what applying the
    // configuration queued leaves now.
    d.flush(&udp);
    on_ready(&started);
    // systemd Type=notify: ready once the interface, sockets and configuration are in place.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let mut watchdog_usec = 0u64;
    let watchdog = sd_notify::watchdog_enabled(false, &mut watchdog_usec)
        .then(|| Duration::from_micros(watchdog_usec / 2).max(Duration::from_millis(100)));
    let mut watchdog_tick = watchdog.map(tokio::time::interval);
    let mut sighup =
        signal(SignalKind::hangup()).map_err(Error::io("installing the SIGHUP handler"))?;
    // Host-name endpoints resolved again when their peer has gone quiet (wgd up only).
    let mut reres = reresolve::Reresolver::new(&cfg, opts.wg_quick);
    let mut reres_tick =
        tokio::time::interval(reres.interval().unwrap_or(Duration::from_secs(3600)));
    reres_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let gro = [&udp.v4, &udp.v6]
        .into_iter()
        .flatten()
        .map(Sock::gro_segments)
        .max()
        .unwrap_or(1);
    let mut io = DataPath {
        rx: RxBatch::new(gro.max(64)),
        tx: TxBatch::new(mtu as usize),
        handshakes: HandshakeQueue::new(),
        workers: opts
            .crypto_threads
            .map_or_else(Workers::from_env, Workers::new),
    };
    info!(
        offload = tun.offload(),
        crypto_threads = io.workers.threads(),
        "data path ready"
    );
    let far = Duration::from_secs(3600);
    tokio::pin!(shutdown);
    let socket_iface = tun.name().to_string();
    let socket_gone = crate::uapi::server::socket_removed(&socket_iface);
    tokio::pin!(socket_gone);
    // One timer for the protocol's next deadline, moved only when that deadline comes earlier
    // than the one armed (or the armed one has fired). Moving a tokio timer earlier wakes the
    // runtime's driver (an eventfd write and one more epoll_wait): doing it on every turn cost
    // two system calls per packet on an idle tunnel. Firing early is harmless: `on_timer` runs
    // the core's timers that are due (none, then) and the loop arms the next deadline.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now() + far);
    tokio::pin!(timer);
    loop {
        let deadline = match d.dev.next_wakeup() {
            Some(t) => d.clock.deadline(t),
            None => tokio::time::Instant::now() + far,
        };
        if deadline < timer.deadline() || timer.is_elapsed() {
            timer.as_mut().reset(deadline);
        }
        tokio::select! {
            _ = &mut shutdown => { info!("shutdown requested"); break; }
            _ = &mut socket_gone => { info!("UAPI socket file removed: shutting down"); break; }
            _ = sighup.recv() => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
                match opts.config_path.as_deref() {
                    Some(path) => match d.reload(&mut udp, path) {
                        Ok(new) => {
                            reres.set_names(&new);
                            if let Some(every) = reres.interval() {
                                reres_tick = tokio::time::interval(every);
                            }
                            info!("SIGHUP: reloaded {}", path.display());
                        }
                        Err(e) => warn!("SIGHUP: reload failed, configuration unchanged: {e:#}"),
                    },
                    None => info!("SIGHUP ignored: no configuration file"),
                }
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            }
            _ = async { match watchdog_tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            }
            Some(req) = ipc_rx.recv() => {
                let reply = d.on_uapi(&mut udp, &req.bytes);
                let _ = req.reply.send(reply);
            }
            r = tun.readable() => {
                let mut ready = match r {
                    Ok(r) => r,
                    Err(e) => { info!("TUN error ({e}): interface gone, exiting"); break; }
                };
                d.follow_mtu(&tun, &mut io.tx);
                if let ReadEnd::Gone(e) = io.tx.read(&tun, &mut ready) {
                    info!("TUN read failed ({e}): interface gone, exiting");
                    break;
                }
                d.on_tun(&udp, &mut io.tx, &io.workers);
                io.tx.flush_icmp(&tun);
                if io.tx.take_gso_lost() {
                    match udp.restore_gso() {
                        Ok(true) => info!("a route MTU shrank: UDP GSO restored for datagrams that fit it"),
                        Ok(false) => {}
                        Err(e) => warn!("restoring UDP GSO: {e}"),
                    }
                }
            }
            r = readable(udp.v4.as_ref()) => {
                if r.is_ok() && let Some(s) = udp.v4.as_ref() {
                    d.on_udp(&udp, s, &tun, &mut io);
                }
            }
            r = readable(udp.v6.as_ref()) => {
                if r.is_ok() && let Some(s) = udp.v6.as_ref() {
                    d.on_udp(&udp, s, &tun, &mut io);
                }
            }
            _ = std::future::ready(()), if !io.handshakes.is_empty() => {
                d.on_handshakes(&udp, &mut io.handshakes);
            }
            _ = &mut timer => d.on_timer(&udp),
            _ = reres_tick.tick(), if reres.interval().is_some() => {
                let wall = d.now().wall;
                reres.check(&d.dev, wall);
            }
            Some(found) = reres.done() => reres.apply(&mut d.dev, found),
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    // wg-quick's `down`: PreDown, SaveConfig, rules and DNS undone, the interface removed
    // (dropping the TUN), PostDown.
    let port = udp.port();
    wgq.down(
        || {
            if let Some(path) = opts.config_path.as_deref() {
                match d.save_config(&cfg, port, path) {
                    Ok(()) => info!("saved the configuration to {}", path.display()),
                    Err(e) => warn!("SaveConfig: {e:#}"),
                }
            }
        },
        || drop(tun),
    );
    let stats = d.stats();
    info!(?stats, "stopped");
    Ok(stats)
}
