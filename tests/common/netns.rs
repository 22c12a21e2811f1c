//! Harness for integration tests that run in Linux network namespaces.
//!
//! What it gives:
//! - [`privileged_or_skip`]: the gate every privileged test calls first.
//! - [`Netns`]: a namespace of our own (deleted on drop), with commands run inside it
//!   ([`Netns::run`]) and closures run on a thread that entered it ([`Netns::enter`]).
//! - [`veth`]: a veth pair between two namespaces, addressed and reachable when it returns.
//! - [`StockPeer`]: a stock WireGuard daemon (Debian's `wireguard-go`) that is our own child,
//!   configured through `wg setconf`, killed by PID on drop.
//! - [`unique_iface`], [`wg_genkey`] and friends.
//!
//! Rules it keeps (tests using it should keep them too):
//! - Addresses only from 198.18.0.0/15 and 2001:db8::/32, underlay and tunnel alike.
//! - Every wait is bounded in time; every command has a timeout ([`CMD_TIMEOUT`] unless told).
//! - Names are unique per process and call (`wgdt-<pid>-<n>` for namespaces, see
//!   [`unique_iface`] for interfaces), so test binaries may run in parallel. `/var/run/wireguard`
//!   is one directory for the whole machine, so WireGuard interface names must be unique across
//!   all namespaces.
//! - Only PIDs we spawned are ever signalled.
//! - Drop order matters: declare namespaces before the peers living in them, so the peers
//!   (dropped first, in reverse declaration order) are stopped before their namespace is deleted.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, geteuid};

/// Where `ip netns add` puts the namespace handles (bind-mounted nsfs files).
pub const NETNS_RUN_DIR: &str = "/var/run/netns";
/// Where userspace WireGuard daemons put their UAPI sockets (`IFACE.sock`); shared by all
/// namespaces on the machine.
pub const WG_RUN_DIR: &str = "/var/run/wireguard";
/// Default time limit for one command run by the harness ([`Netns::run`] and friends).
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`StockPeer::wireguard_go`] waits for the daemon's UAPI socket to accept connections
/// (measured here: about 50 ms).
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`veth`] waits for the links to come up and the far addresses to answer a ping.
pub const VETH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a [`StockPeer`] gets to exit after SIGTERM before it is sent SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// The tools [`privileged_or_skip`] requires in `PATH`.
pub const REQUIRED_TOOLS: &[&str] = &["ip", "wireguard-go", "wg", "ping"];

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A number unique within this process (shared by every name the harness makes).
fn next_id() -> u64 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Lower-case base-36 digits of `n`, left-padded with `0` to at least `width` characters.
fn base36(mut n: u64, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).expect("base-36 digits are ASCII")
}

/// The full path of `tool` if an executable file of that name is in `PATH`.
pub fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| {
            fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Returns true if privileged netns tests can run: we are root, `/dev/net/tun` exists and
/// [`REQUIRED_TOOLS`] (`ip`, `wireguard-go`, `wg`, `ping`) are in `PATH`.
///
/// If not: when env `CI=true`, panics (CI must run these tests); otherwise prints
/// `SKIPPED <test>: <reason>` loudly to stderr and returns false, and the caller returns early.
/// The message is written to the process's stderr directly, not through `eprintln!`, so that
/// libtest's output capture does not swallow it.
pub fn privileged_or_skip(test: &str) -> bool {
    privileged_or_skip_with(test, &[])
}

/// [`privileged_or_skip`] that also requires `extra_tools` (e.g. `&["iperf3"]`) in `PATH`.
pub fn privileged_or_skip_with(test: &str, extra_tools: &[&str]) -> bool {
    let mut reasons = Vec::new();
    if !geteuid().is_root() {
        reasons.push(format!("not root (euid {})", geteuid()));
    }
    if !Path::new("/dev/net/tun").exists() {
        reasons.push("/dev/net/tun does not exist".to_string());
    }
    for tool in REQUIRED_TOOLS.iter().chain(extra_tools) {
        if find_in_path(tool).is_none() {
            reasons.push(format!("`{tool}` not found in PATH"));
        }
    }
    if reasons.is_empty() {
        return true;
    }
    let reason = reasons.join("; ");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{test}: CI=true but this privileged network-namespace test cannot run: {reason}. \
             CI must run it as root with wireguard-tools, wireguard-go, iproute2 and \
             iputils-ping installed (see .ci/run)."
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n==================== SKIPPED {test}: {reason} ====================\n"
    );
    false
}

/// Runs `cmd` with stdout and stderr captured and `stdin` (or nothing) as its input. If it is
/// still running after `timeout`, kills it by PID (it is our child) and returns what it printed,
/// with a note appended to stderr; the status is then the kill's. Panics only if it cannot spawn.
fn run_cmd(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Small inputs only (keys, configs): fits the pipe buffer, cannot block.
        let _ = pipe.write_all(data);
    }
    let (tx_out, rx_out) = mpsc::channel();
    let (tx_err, rx_err) = mpsc::channel();
    if let Some(mut out) = child.stdout.take() {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            let _ = tx_out.send(buf);
        });
    }
    if let Some(mut err) = child.stderr.take() {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            let _ = tx_err.send(buf);
        });
    }
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_millis(1);
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => panic!("waiting for {desc}: {e}"),
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break wait_bounded(&mut child, Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{desc} survived SIGKILL for 5 s"));
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    // A grandchild may hold the pipes open: collect what arrives within a bounded time.
    let grace = Duration::from_secs(2);
    let stdout = rx_out.recv_timeout(grace).unwrap_or_default();
    let mut stderr = rx_err.recv_timeout(grace).unwrap_or_default();
    if timed_out {
        stderr.extend_from_slice(
            format!("\n[netns harness: killed after the {timeout:?} timeout]\n").as_bytes(),
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Polls `child` until it exits or `limit` passes; `None` if it is still running.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// Panics with the command, its status, stdout and stderr if `out` is not a success.
fn check(what: &str, out: Output) -> Output {
    if !out.status.success() {
        panic!(
            "command failed: {what}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs `ip args...` in the current namespace, checked, with [`CMD_TIMEOUT`].
fn ip_root(args: &[&str]) -> Output {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    check(
        &format!("ip {}", args.join(" ")),
        run_cmd(cmd, None, CMD_TIMEOUT),
    )
}

/// Runs `prog args...` on the host (no namespace), checked, with `stdin` as its input and
/// [`CMD_TIMEOUT`]; returns stdout as a string.
pub fn host_run(prog: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut cmd = Command::new(prog);
    cmd.args(args);
    let out = check(
        &format!("{prog} {}", args.join(" ")),
        run_cmd(cmd, stdin, CMD_TIMEOUT),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh key pair made by `wg genkey` and `wg pubkey`: `(private, public)`, base64 as `wg`
/// prints them, without trailing newlines.
pub fn wg_genkey() -> (String, String) {
    let private = host_run("wg", &["genkey"], None).trim().to_string();
    let public = host_run("wg", &["pubkey"], Some(format!("{private}\n").as_bytes()))
        .trim()
        .to_string();
    assert_eq!(
        private.len(),
        44,
        "unexpected `wg genkey` output {private:?}"
    );
    assert_eq!(public.len(), 44, "unexpected `wg pubkey` output {public:?}");
    (private, public)
}

/// The address part of `addr` in CIDR form (`"2001:db8::1/64"` -> `"2001:db8::1"`).
pub fn strip_prefix_len(addr: &str) -> &str {
    addr.split('/').next().unwrap_or(addr)
}

/// True for an IPv6 address (with or without a prefix length).
pub fn is_ipv6(addr: &str) -> bool {
    addr.contains(':')
}

/// `ip addr add` arguments for `addr` on `dev`; IPv6 gets `nodad` so it is usable at once.
fn addr_add_args<'a>(addr: &'a str, dev: &'a str) -> Vec<&'a str> {
    let mut args = vec!["addr", "add", addr, "dev", dev];
    if is_ipv6(addr) {
        args.push("nodad");
    }
    args
}

/// An interface name unique per process and call, at most 15 characters (IFNAMSIZ - 1):
/// `<prefix><pid in base 36, 5 chars>-<counter in base 36>`, e.g. `wg01ab3-0`.
///
/// WireGuard interface names must be unique across namespaces because `/var/run/wireguard` is
/// shared by all of them. Keep `prefix` short (up to 6 characters leaves room for 46,656 names
/// per process); panics if the name would be longer than 15 characters.
pub fn unique_iface(prefix: &str) -> String {
    let name = format!(
        "{prefix}{}-{}",
        base36(u64::from(std::process::id()), 5),
        base36(next_id(), 1)
    );
    assert!(
        name.len() <= 15 && !prefix.contains('/') && !prefix.contains(char::is_whitespace),
        "unique_iface({prefix:?}) made {name:?}: interface names must be at most 15 characters \
         without '/' or whitespace; use a shorter prefix"
    );
    name
}

/// A network namespace created by the test, named `wgdt-<pid>-<n>` (unique per process and
/// call). Dropping it runs `ip netns del` and nothing else: it kills no process (stop the
/// [`StockPeer`]s inside first, which happens by itself if they were declared after it).
#[derive(Debug)]
pub struct Netns {
    /// The name `ip netns` knows it by (`/var/run/netns/<name>`).
    pub name: String,
}

impl Netns {
    /// `ip netns add` a fresh namespace, bring `lo` up, and disable IPv6 duplicate address
    /// detection in it (`net.ipv6.conf.{all,default}.accept_dad=0`), so that link-local and
    /// global IPv6 addresses of interfaces created later are usable at once.
    pub fn new() -> Netns {
        let name = format!("wgdt-{}-{}", std::process::id(), next_id());
        // A handle of that name can only be left over from a dead process that had our PID.
        if Path::new(NETNS_RUN_DIR).join(&name).exists() {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "del", &name]);
            let _ = run_cmd(cmd, None, CMD_TIMEOUT);
        }
        // The first `ip netns add` on a machine sets up the /var/run/netns mount; parallel
        // first calls can trip over each other, so retry a few times.
        let mut last = None;
        for _ in 0..3 {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "add", &name]);
            let out = run_cmd(cmd, None, CMD_TIMEOUT);
            if out.status.success() {
                last = None;
                break;
            }
            last = Some(out);
            thread::sleep(Duration::from_millis(100));
        }
        if let Some(out) = last {
            check(&format!("ip netns add {name}"), out);
        }
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.run(&[
            "sh",
            "-c",
            "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && \
             echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad",
        ]);
        ns
    }

    /// `ip netns exec NAME args...` with [`CMD_TIMEOUT`]; panics showing the command, status,
    /// stdout and stderr if it fails.
    pub fn run(&self, args: &[&str]) -> Output {
        check(&self.describe(args), self.run_unchecked(args))
    }

    /// `ip netns exec NAME args...` with [`CMD_TIMEOUT`], whatever its exit status.
    pub fn run_unchecked(&self, args: &[&str]) -> Output {
        self.run_unchecked_within(args, CMD_TIMEOUT)
    }

    /// `ip netns exec NAME args...`, killed (by PID) if still running after `timeout`, whatever
    /// its exit status. `ip netns exec` execs the command, so the PID is the command's own.
    pub fn run_unchecked_within(&self, args: &[&str], timeout: Duration) -> Output {
        run_cmd(self.exec_command(args), None, timeout)
    }

    /// `ip -n NAME args...` (checked, [`CMD_TIMEOUT`]): like `run(&["ip", ...])` but without
    /// entering the namespace.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip_root(&full)
    }

    /// A `Command` for `ip netns exec NAME args...`, for callers that want to spawn a long-lived
    /// child themselves (e.g. an `iperf3 -s`; keep it as your child and kill it by PID).
    pub fn exec_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs `f` on a scoped thread that first did `setns(CLONE_NEWNET)` into
    /// `/var/run/netns/NAME`, and returns its result (a panic in `f` is resumed here). Sockets
    /// made inside (`std::net`, tokio, ...) live in this namespace; threads spawned from that
    /// thread (e.g. a tokio runtime built inside `f`) inherit the namespace too.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = Path::new(NETNS_RUN_DIR).join(&self.name);
        let handle = fs::File::open(&path)
            .unwrap_or_else(|e| panic!("cannot open namespace handle {}: {e}", path.display()));
        thread::scope(|scope| {
            let joined = thread::Builder::new()
                .name(format!("in-{}", self.name))
                .spawn_scoped(scope, move || {
                    setns(&handle, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| {
                        panic!("setns(CLONE_NEWNET) into {}: {e}", path.display())
                    });
                    drop(handle);
                    f()
                })
                .expect("cannot spawn a thread for Netns::enter")
                .join();
            match joined {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Pings `dest` (an address, without prefix length) from this namespace once a time
    /// (`ping -c 1 -W 1`) until it answers or `timeout` passes; true if it answered.
    pub fn wait_ping(&self, dest: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.run_unchecked_within(
                &["ping", "-n", "-c", "1", "-W", "1", dest],
                Duration::from_secs(5),
            );
            if out.status.success() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ping -n -c COUNT -i 0.2 -W 2 dest` from this namespace; panics with ping's output unless
    /// every one of the `count` echo requests got its reply. Returns ping's stdout.
    pub fn ping(&self, dest: &str, count: u32) -> String {
        let count_arg = count.to_string();
        let out = self.run(&["ping", "-n", "-c", &count_arg, "-i", "0.2", "-W", "2", dest]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains(&format!("{count} packets transmitted, {count} received")),
            "ping {dest} from {} lost packets:\n{text}",
            self.name
        );
        text
    }

    fn describe(&self, args: &[&str]) -> String {
        format!("ip netns exec {} {}", self.name, args.join(" "))
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "del", &self.name]);
        let out = run_cmd(cmd, None, Duration::from_secs(10));
        if !out.status.success() {
            eprintln!(
                "netns harness: `ip netns del {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
}

/// Creates a veth pair between `a` and `b` (names from [`unique_iface`], returned as
/// `(name in a, name in b)`), adds the addresses (CIDR form; IPv6 with `nodad`), brings both
/// ends up, and returns once both links are up and each side answers a ping to every address of
/// the other (bounded by [`VETH_TIMEOUT`]; panics otherwise).
pub fn veth(a: &Netns, a_addrs: &[&str], b: &Netns, b_addrs: &[&str]) -> (String, String) {
    let if_a = unique_iface("va");
    let if_b = unique_iface("vb");
    a.ip(&[
        "link", "add", &if_a, "type", "veth", "peer", "name", &if_b, "netns", &b.name,
    ]);
    for (ns, dev, addrs) in [(a, &if_a, a_addrs), (b, &if_b, b_addrs)] {
        for addr in addrs {
            ns.ip(&addr_add_args(addr, dev));
        }
        ns.ip(&["link", "set", dev, "up"]);
    }
    let deadline = Instant::now() + VETH_TIMEOUT;
    for (ns, dev) in [(a, &if_a), (b, &if_b)] {
        loop {
            let out = ns.ip(&["-o", "link", "show", "dev", dev]);
            let text = String::from_utf8_lossy(&out.stdout);
            let tentative = ns.ip(&["-o", "-6", "addr", "show", "dev", dev, "tentative"]);
            if text.contains("LOWER_UP") && tentative.stdout.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "veth {dev} in {} not ready after {VETH_TIMEOUT:?}: {text}",
                ns.name
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
    for (from, to_addrs) in [(a, b_addrs), (b, a_addrs)] {
        for addr in to_addrs {
            let dest = strip_prefix_len(addr);
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            assert!(
                from.wait_ping(dest, left),
                "veth: {dest} does not answer ping from {} within {VETH_TIMEOUT:?}",
                from.name
            );
        }
    }
    (if_a, if_b)
}

/// A stock WireGuard daemon (Debian's `wireguard-go` now; boringtun-cli and gotatun can follow
/// the same pattern) running as our own child in a namespace, configured through its UAPI socket
/// with `wg setconf`.
///
/// Its stdout and stderr go to a log file (`LOG_LEVEL` from env `WGDT_LOG_LEVEL`, default
/// `verbose`), printed (last 200 lines) when the peer is dropped during a panic. Drop sends
/// SIGTERM to our child's PID (never by name), waits up to [`STOP_GRACE`], then SIGKILLs and
/// waits, and removes `/var/run/wireguard/IFACE.sock` if it was left behind.
#[derive(Debug)]
pub struct StockPeer {
    /// The WireGuard interface name (also the UAPI socket's name).
    pub iface: String,
    /// The name of the namespace the daemon runs in.
    pub ns: String,
    child: Child,
    dir: PathBuf,
    log_path: PathBuf,
    socket: PathBuf,
    kind: &'static str,
}

/// Which WireGuard implementation a [`StockPeer`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Impl {
    /// Debian's `wireguard-go -f IFACE`, configured with `wg setconf`.
    WireguardGo,
    /// `boringtun-cli -f --disable-drop-privileges IFACE` (crates.io), configured with `wg setconf`.
    Boringtun,
    /// Mullvad's `gotatun -f --disable-drop-privileges IFACE` (crates.io), configured with `wg setconf`.
    Gotatun,
    /// This crate's `wgd up FILE` (the binary under test), configured from the file itself.
    Wgd(PathBuf),
    /// This crate's `wgd -f IFACE` (the binary under test, wireguard-go's invocation: an empty
    /// device and its UAPI socket), configured with `wg setconf` exactly like the stock daemons.
    WgdUapi(PathBuf),
}

impl Impl {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Impl::WireguardGo => "wireguard-go",
            Impl::Boringtun => "boringtun",
            Impl::Gotatun => "gotatun",
            Impl::Wgd(_) => "wgd",
            Impl::WgdUapi(_) => "wgd-uapi",
        }
    }

    /// The program to run, if it can be found (stock peers in `PATH` or `/opt/wgd-ci/bin`,
    /// where `.ci/run` installs the crates.io ones).
    pub fn program(&self) -> Option<PathBuf> {
        let stock = |tool: &str| {
            find_in_path(tool).or_else(|| {
                let p = Path::new("/opt/wgd-ci/bin").join(tool);
                p.exists().then_some(p)
            })
        };
        match self {
            Impl::WireguardGo => stock("wireguard-go"),
            Impl::Boringtun => stock("boringtun-cli"),
            Impl::Gotatun => stock("gotatun"),
            Impl::Wgd(p) | Impl::WgdUapi(p) => p.exists().then(|| p.clone()),
        }
    }
}

/// Crypto worker threads for the wgd daemons this test binary starts (unset: the host default;
/// an empty value is ignored by wgd). A test binary sets it once, before starting daemons, to
/// run wgd's parallel crypto path on a machine whose default is inline.
pub static WGD_CRYPTO_THREADS: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// The `wgd` binary built for these tests.
pub fn wgd_impl() -> Impl {
    Impl::Wgd(PathBuf::from(env!("CARGO_BIN_EXE_wgd")))
}

/// The `wgd` binary built for these tests, run as `wgd -f IFACE` and configured over its UAPI
/// socket with `wg setconf` (see [`Impl::WgdUapi`]).
pub fn wgd_uapi_impl() -> Impl {
    Impl::WgdUapi(PathBuf::from(env!("CARGO_BIN_EXE_wgd")))
}

/// Like [`privileged_or_skip`], and also requires the implementation's program.
pub fn impl_or_skip(test: &str, which: &Impl) -> bool {
    if !privileged_or_skip(test) {
        return false;
    }
    if which.program().is_some() {
        return true;
    }
    let reason = format!("{} is not installed (see .ci/run)", which.name());
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but {reason}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n==================== SKIPPED {test}: {reason} ====================\n"
    );
    false
}

impl StockPeer {
    /// [`StockPeer::start`] with Debian's wireguard-go.
    pub fn wireguard_go(
        ns: &Netns,
        iface: &str,
        conf_text: &str,
        tunnel_addrs: &[&str],
        mtu: u32,
    ) -> StockPeer {
        Self::start(&Impl::WireguardGo, ns, iface, conf_text, tunnel_addrs, mtu)
    }

    /// Starts implementation `which` for interface `iface` in `ns` as our child. Stock daemons
    /// and [`Impl::WgdUapi`] (`wgd -f IFACE`): waits (at most [`SOCKET_TIMEOUT`]) until the UAPI
    /// socket accepts a connection, then runs `wg setconf IFACE` with `conf_text` (the `wg`
    /// config format) from a 0600 temporary file.
    /// [`Impl::Wgd`]: writes `conf_text` to `IFACE.conf` and runs `wgd up` on it, then waits
    /// for the interface to exist. Then `ip addr add`s each of `tunnel_addrs` (CIDR; IPv6 with
    /// `nodad`) and `ip link set IFACE mtu MTU up`.
    ///
    /// `iface` should come from [`unique_iface`]. Panics (after cleaning up) if anything fails,
    /// showing the daemon's log if it died.
    pub fn start(
        which: &Impl,
        ns: &Netns,
        iface: &str,
        conf_text: &str,
        tunnel_addrs: &[&str],
        mtu: u32,
    ) -> StockPeer {
        Self::start_with_env(which, ns, iface, conf_text, tunnel_addrs, mtu, &[])
    }

    /// [`StockPeer::start`] with extra environment variables for the daemon (e.g.
    /// `WGD_NO_TUN_OFFLOAD=1`).
    pub fn start_with_env(
        which: &Impl,
        ns: &Netns,
        iface: &str,
        conf_text: &str,
        tunnel_addrs: &[&str],
        mtu: u32,
        env: &[(&str, &str)],
    ) -> StockPeer {
        assert!(
            !iface.is_empty() && iface.len() <= 15,
            "interface name {iface:?} must be 1 to 15 characters"
        );
        let socket = Path::new(WG_RUN_DIR).join(format!("{iface}.sock"));
        if socket.exists() {
            assert!(
                UnixStream::connect(&socket).is_err(),
                "{} is served by a running daemon: interface name {iface:?} is taken",
                socket.display()
            );
        }
        let dir =
            std::env::temp_dir().join(format!("wgdt-{}-{}-{iface}", std::process::id(), next_id()));
        fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", dir.display()));
        let log_path = dir.join("daemon.log");
        let log = fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot dup {}: {e}", log_path.display()));
        let level = std::env::var("WGDT_LOG_LEVEL").unwrap_or_else(|_| "verbose".to_string());
        let program = which
            .program()
            .unwrap_or_else(|| panic!("{} is not installed", which.name()));
        let program = program.to_string_lossy().into_owned();
        let conf_path = dir.join(format!("{iface}.conf"));
        let mut conf = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&conf_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", conf_path.display()));
        conf.write_all(conf_text.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf_path.display()));
        drop(conf);
        let conf_arg = conf_path.to_string_lossy().into_owned();
        let args: Vec<&str> = match which {
            Impl::WireguardGo | Impl::WgdUapi(_) => vec![&program, "-f", iface],
            Impl::Boringtun | Impl::Gotatun => {
                vec![&program, "-f", "--disable-drop-privileges", iface]
            }
            Impl::Wgd(_) => vec![&program, "up", &conf_arg, "--interface", iface],
        };
        let child = ns
            .exec_command(&args)
            .env("LOG_LEVEL", &level)
            .env(
                "RUST_LOG",
                std::env::var("WGDT_RUST_LOG").unwrap_or_else(|_| "wgd=debug".into()),
            )
            // Also silences the "kernel has first class support" banner.
            .env("WG_PROCESS_FOREGROUND", "1")
            .env(
                "WGD_CRYPTO_THREADS",
                WGD_CRYPTO_THREADS.get().copied().unwrap_or(""),
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {} in {}: {e}", which.name(), ns.name));
        // From here on, Drop stops the daemon whatever happens.
        let mut peer = StockPeer {
            iface: iface.to_string(),
            ns: ns.name.clone(),
            child,
            dir,
            log_path,
            socket,
            kind: which.name(),
        };
        if let Impl::Wgd(_) = which {
            peer.wait_link(ns);
        } else {
            peer.wait_socket();
            ns.run(&["wg", "setconf", iface, &conf_arg]);
        }

        for addr in tunnel_addrs {
            ns.ip(&addr_add_args(addr, iface));
        }
        let mtu = mtu.to_string();
        ns.ip(&["link", "set", iface, "mtu", &mtu, "up"]);
        peer.assert_running();
        peer
    }

    /// Waits until the UAPI socket accepts a connection; panics with the log if the daemon exits
    /// or [`SOCKET_TIMEOUT`] passes.
    fn wait_socket(&mut self) {
        let start = Instant::now();
        loop {
            self.assert_running();
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                start.elapsed() < SOCKET_TIMEOUT,
                "{} did not accept connections within {SOCKET_TIMEOUT:?}; log:\n{}",
                self.socket.display(),
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the interface exists in `ns` (wgd without a UAPI socket); panics with the log
    /// if the daemon exits or [`SOCKET_TIMEOUT`] passes.
    fn wait_link(&mut self, ns: &Netns) {
        let start = Instant::now();
        loop {
            self.assert_running();
            if ns
                .run_unchecked(&["ip", "link", "show", &self.iface])
                .status
                .success()
            {
                return;
            }
            assert!(
                start.elapsed() < SOCKET_TIMEOUT,
                "{} did not appear within {SOCKET_TIMEOUT:?}; log:\n{}",
                self.iface,
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Panics with the daemon's log if it has exited.
    pub fn assert_running(&mut self) {
        match self.child.try_wait() {
            Ok(None) => {}
            Ok(Some(status)) => panic!(
                "{} for {} in {} exited ({status}); log:\n{}",
                self.kind,
                self.iface,
                self.ns,
                self.log()
            ),
            Err(e) => panic!("cannot poll {} for {}: {e}", self.kind, self.iface),
        }
    }

    /// Runs `wg ARGS` in the daemon's namespace (checked, [`CMD_TIMEOUT`]) and returns stdout.
    pub fn wg(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "wg"]).args(args);
        let out = check(
            &format!("ip netns exec {} wg {}", self.ns, args.join(" ")),
            run_cmd(cmd, None, CMD_TIMEOUT),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The Unix time of the latest handshake with the peer whose public key is `peer_public`
    /// (`wg show IFACE latest-handshakes`), or `None` if there was none yet or no such peer.
    pub fn latest_handshake(&self, peer_public: &str) -> Option<u64> {
        self.wg(&["show", &self.iface, "latest-handshakes"])
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(key, _)| *key == peer_public)
            .and_then(|(_, t)| t.trim().parse::<u64>().ok())
            .filter(|t| *t != 0)
    }

    /// Bytes `(received, sent)` with the peer `peer_public` (`wg show IFACE transfer`), `None`
    /// if there is no such peer.
    pub fn transfer(&self, peer_public: &str) -> Option<(u64, u64)> {
        self.wg(&["show", &self.iface, "transfer"])
            .lines()
            .find_map(|line| {
                let mut fields = line.split('\t');
                if fields.next()? != peer_public {
                    return None;
                }
                let rx = fields.next()?.trim().parse().ok()?;
                let tx = fields.next()?.trim().parse().ok()?;
                Some((rx, tx))
            })
    }

    /// The daemon's PID (ours: `ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log_path.display()))
    }
}

impl Drop for StockPeer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Not yet reaped, so the PID is still our child's and cannot have been reused.
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            if wait_bounded(&mut self.child, STOP_GRACE).is_none() {
                let _ = self.child.kill();
                if wait_bounded(&mut self.child, Duration::from_secs(5)).is_none() {
                    eprintln!(
                        "netns harness: daemon (pid {}) survived SIGKILL",
                        self.child.id()
                    );
                }
            }
        }
        if self.socket.exists() {
            let _ = fs::remove_file(&self.socket);
        }
        if thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(200)..];
            let mut text = String::new();
            for line in tail {
                let _ = writeln!(text, "  {line}");
            }
            eprintln!(
                "--- {} {} in {} (last {} log lines) ---\n{text}--- end ---",
                self.kind,
                self.iface,
                self.ns,
                tail.len()
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
