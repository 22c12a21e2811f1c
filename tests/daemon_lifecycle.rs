//! The daemon's life cycle, with the `wgd` binary in network namespaces: `wgd up` exits with
//! status 0 and takes its interface with it on SIGTERM and SIGINT, exits by itself when its
//! interface is deleted (`ip link del`, as `wg-quick down` does), and costs almost nothing while
//! idle and per ping (syscalls counted with `strace -c`, memory read from `/proc/PID/status`).
//!
//! The daemon under test in the signal and link-deletion tests is spawned here (not through
//! [`StockPeer`]) so that its exit status can be read; its peer is an ordinary [`StockPeer`].

mod common;

use common::netns::{
    Impl, Netns, StockPeer, find_in_path, impl_or_skip, privileged_or_skip_with, unique_iface,
    veth, wgd_impl,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const A_TUN: [&str; 2] = ["198.19.0.1/24", "2001:db8:1::1/64"];
const B_TUN: [&str; 2] = ["198.19.0.2/24", "2001:db8:1::2/64"];
const A_UL: [&str; 2] = ["198.18.0.1/24", "2001:db8::1/64"];
const B_UL: [&str; 2] = ["198.18.0.2/24", "2001:db8::2/64"];
const MTU: u32 = 1420;
/// How long the first handshake and ping through the tunnel may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long wgd may take to exit after SIGTERM or SIGINT.
const SIGNAL_EXIT: Duration = Duration::from_secs(2);
/// How long wgd may take to exit by itself after its interface is deleted.
const LINK_DEL_EXIT: Duration = Duration::from_secs(3);
/// How long the interface may linger after wgd exited (it goes when the TUN fd is closed, which
/// happens before the exit is reported, so this only absorbs scheduling noise).
const LINK_GONE: Duration = Duration::from_secs(1);
/// Idle test: how long to wait after the ping before measuring (past the 10 s passive keepalive).
const SETTLE: Duration = Duration::from_secs(12);
/// Idle test: how long strace counts syscalls.
const STRACE_WINDOW: u32 = 30;
/// Idle test: the most syscalls one wgd may make in [`STRACE_WINDOW`] seconds with no traffic
/// and no persistent keepalive (it should only wake for timers, and none is due in the window).
const MAX_IDLE_SYSCALLS: u64 = 60;
/// Idle test: the most resident memory (now and at its peak) of one idle wgd with one peer.
const MAX_RSS_KIB: u64 = 10 * 1024;

/// The two configurations of a pair: `(server in A, listening on 51820; client in B, with A as
/// its endpoint)`.
fn pair_confs() -> (String, String) {
    common::conf::pair_confs(true, "198.18.0.1:51820")
}

/// `wgd up CONF --interface IFACE` in a namespace, spawned by this test so that its exit status
/// can be read. Drop: SIGTERM to our child's PID if it is still running, SIGKILL after 2 s, the
/// log's tail printed if the test is failing, the temporary directory removed.
struct WgdProc {
    iface: String,
    ns: String,
    child: Child,
    dir: PathBuf,
    log_path: PathBuf,
    status: Option<ExitStatus>,
}

impl WgdProc {
    /// Writes `conf_text` to a 0600 file, starts wgd on it in `ns`, waits (at most 5 s) for the
    /// interface to appear, then adds `tunnel_addrs` and sets the MTU and the link up.
    fn start(ns: &Netns, iface: &str, conf_text: &str, tunnel_addrs: &[&str]) -> WgdProc {
        let dir = std::env::temp_dir().join(format!("wgdt-life-{}-{iface}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let conf_path = dir.join(format!("{iface}.conf"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&conf_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", conf_path.display()));
        f.write_all(conf_text.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf_path.display()));
        drop(f);
        let log_path = dir.join("wgd.log");
        let log = fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log_err = log.try_clone().expect("dup the log file");
        let program = env!("CARGO_BIN_EXE_wgd");
        let conf_arg = conf_path.to_string_lossy().into_owned();
        let child = ns
            .exec_command(&[program, "up", &conf_arg, "--interface", iface])
            .env(
                "RUST_LOG",
                std::env::var("WGDT_RUST_LOG").unwrap_or_else(|_| "wgd=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn wgd in {}: {e}", ns.name));
        // From here on, Drop stops it whatever happens.
        let mut w = WgdProc {
            iface: iface.to_string(),
            ns: ns.name.clone(),
            child,
            dir,
            log_path,
            status: None,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            w.assert_running();
            if link_exists(ns, iface) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{iface} did not appear within 5 s; log:\n{}",
                w.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
        for addr in tunnel_addrs {
            let mut args = vec!["addr", "add", addr, "dev", iface];
            if addr.contains(':') {
                args.push("nodad");
            }
            ns.ip(&args);
        }
        ns.ip(&["link", "set", iface, "mtu", &MTU.to_string(), "up"]);
        w.assert_running();
        w
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the daemon has exited (reaped here, remembered).
    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("cannot poll wgd for {}: {e}", self.iface));
        }
        self.status
    }

    /// Panics with the log if the daemon has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.try_status() {
            panic!(
                "wgd for {} in {} exited ({status}); log:\n{}",
                self.iface,
                self.ns,
                self.log()
            );
        }
    }

    /// Sends `sig` to our child (checked to be still running, hence not reaped, so the PID is
    /// still its own).
    fn signal(&mut self, sig: Signal) {
        self.assert_running();
        let pid = i32::try_from(self.pid()).expect("PID fits i32");
        kill(Pid::from_raw(pid), sig).unwrap_or_else(|e| panic!("kill({pid}, {sig}): {e}"));
    }

    /// Polls (every 5 ms) until the daemon exits or `limit` passes: its status and how long it
    /// took, or `None` if it is still running.
    fn wait_exit(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_status() {
                return Some((status, start.elapsed()));
            }
            if start.elapsed() >= limit {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log_path.display()))
    }
}

impl Drop for WgdProc {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            if matches!(self.child.try_wait(), Ok(None)) {
                let _ = self.child.kill();
                let deadline = Instant::now() + Duration::from_secs(5);
                while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
        if thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(100)..];
            let mut text = String::new();
            for line in tail {
                let _ = writeln!(text, "  {line}");
            }
            eprintln!(
                "--- wgd {} in {} (last {} log lines) ---\n{text}--- end ---",
                self.iface,
                self.ns,
                tail.len()
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// True if `ip link show IFACE` succeeds in `ns`.
fn link_exists(ns: &Netns, iface: &str) -> bool {
    ns.run_unchecked_within(&["ip", "link", "show", iface], Duration::from_secs(10))
        .status
        .success()
}

/// Polls until `iface` is gone from `ns` or `limit` passes: how many `ip link show` it took
/// (1: gone at the first look), `None` if it is still there.
fn wait_link_gone(ns: &Netns, iface: &str, limit: Duration) -> Option<u32> {
    let start = Instant::now();
    let mut looks = 0;
    loop {
        looks += 1;
        if !link_exists(ns, iface) {
            return Some(looks);
        }
        if start.elapsed() >= limit {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A wgd (our own child, [`WgdProc`]) serving in A and a wgd client ([`StockPeer`]) in B, with
/// a session established by a ping from B. Fields drop in declaration order: daemons first, then
/// their namespaces.
struct Served {
    server: WgdProc,
    client: StockPeer,
    a: Netns,
    _b: Netns,
}

fn served() -> Served {
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &A_UL, &b, &B_UL);
    let (ca, cb) = pair_confs();
    let server = WgdProc::start(&a, &unique_iface("wla"), &ca, &A_TUN);
    let client = StockPeer::start(&wgd_impl(), &b, &unique_iface("wlb"), &cb, &B_TUN, MTU);
    assert!(
        b.wait_ping("198.19.0.1", HANDSHAKE_TIMEOUT),
        "no ping through the tunnel within {HANDSHAKE_TIMEOUT:?}"
    );
    Served {
        server,
        client,
        a,
        _b: b,
    }
}

/// SIGTERM or SIGINT to a running wgd with one peer and a live session: exit status 0 within
/// [`SIGNAL_EXIT`], and the interface is gone from its namespace.
fn stops_on_signal(test: &str, sig: Signal) {
    let w = wgd_impl();
    if !impl_or_skip(test, &w) {
        return;
    }
    let mut s = served();
    s.client.assert_running();
    let iface = s.server.iface.clone();
    s.server.signal(sig);
    let Some((status, took)) = s.server.wait_exit(SIGNAL_EXIT) else {
        panic!(
            "wgd (pid {}) still running {SIGNAL_EXIT:?} after {sig}; log:\n{}",
            s.server.pid(),
            s.server.log()
        );
    };
    eprintln!("{test}: wgd exited with {status} {took:?} after {sig}");
    assert_eq!(
        status.code(),
        Some(0),
        "wgd exit status after {sig}: {status}; log:\n{}",
        s.server.log()
    );
    let Some(looks) = wait_link_gone(&s.a, &iface, LINK_GONE) else {
        panic!(
            "{iface} still exists in {} {LINK_GONE:?} after wgd exited",
            s.a.name
        );
    };
    eprintln!("{test}: {iface} gone ({looks} `ip link show` after the exit)");
    let log = s.server.log();
    let name = sig.as_str();
    assert!(
        log.contains(name),
        "wgd did not log the {name}; log:\n{log}"
    );
    // The peer is unaffected (its side just has nobody to talk to).
    s.client.assert_running();
}

#[test]
fn sigterm_exits_zero_and_removes_the_interface() {
    stops_on_signal(
        "sigterm_exits_zero_and_removes_the_interface",
        Signal::SIGTERM,
    );
}

#[test]
fn sigint_exits_zero_and_removes_the_interface() {
    stops_on_signal(
        "sigint_exits_zero_and_removes_the_interface",
        Signal::SIGINT,
    );
}

/// What a process is doing, for a failure message: its state, the syscall it is in
/// (`/proc/PID/syscall`: number then arguments; 232 is `epoll_wait` on x86-64) and its wait
/// channel, plus (if strace is installed) what it does during 1.5 s.
fn describe_process(pid: u32) -> String {
    let read = |f: &str| {
        fs::read_to_string(format!("/proc/{pid}/{f}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| format!("(cannot read: {e})"))
    };
    let state = read("status")
        .lines()
        .find(|l| l.starts_with("State:"))
        .unwrap_or("State: ?")
        .to_string();
    let mut text = format!(
        "{state}\n/proc/{pid}/syscall: {}\n/proc/{pid}/wchan: {}\n/proc/{pid}/fd:\n",
        read("syscall"),
        read("wchan")
    );
    if let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in entries.flatten() {
            let target = fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let _ = writeln!(text, "  {} -> {target}", e.file_name().to_string_lossy());
        }
    }
    if find_in_path("strace").is_some() && find_in_path("timeout").is_some() {
        let out = Command::new("timeout")
            .args(["-k", "2", "-s", "INT", "1.5", "strace", "-f", "-tt", "-p"])
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) => {
                let _ = write!(
                    text,
                    "strace -f -p {pid} for 1.5 s:\n{}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            Err(e) => {
                let _ = write!(text, "(cannot run strace: {e})");
            }
        }
    }
    text
}

/// `ip link del IFACE` under a running wgd (what `wg-quick down` does): the daemon must notice
/// (the TUN fd then polls EPOLLERR and reads fail with EBADFD) and exit with status 0 by itself.
#[test]
fn link_deletion_makes_wgd_exit() {
    let test = "link_deletion_makes_wgd_exit";
    let w = wgd_impl();
    if !impl_or_skip(test, &w) {
        return;
    }
    let mut s = served();
    let iface = s.server.iface.clone();
    s.server.assert_running();
    s.a.ip(&["link", "del", &iface]);
    let Some((status, took)) = s.server.wait_exit(LINK_DEL_EXIT) else {
        let pid = s.server.pid();
        panic!(
            "wgd (pid {pid}) is still running {LINK_DEL_EXIT:?} after `ip link del {iface}` \
             (link present now: {}).\n{}\nlog:\n{}",
            link_exists(&s.a, &iface),
            describe_process(pid),
            s.server.log()
        );
    };
    eprintln!("{test}: wgd exited with {status} {took:?} after `ip link del`");
    assert_eq!(
        status.code(),
        Some(0),
        "wgd exit status after `ip link del`: {status}; log:\n{}",
        s.server.log()
    );
    assert!(!link_exists(&s.a, &iface), "{iface} came back");
    s.client.assert_running();
}

/// `(VmRSS, VmHWM)` of `pid` in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status:\n{status}"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The total number of calls in an `strace -c` summary; 0 for an empty summary (strace writes
/// nothing when the process made no syscall while attached).
fn strace_total_calls(summary: &str) -> u64 {
    if summary.trim().is_empty() {
        return 0;
    }
    let line = summary
        .lines()
        .find(|l| l.split_whitespace().last() == Some("total"))
        .unwrap_or_else(|| panic!("no `total` line in the strace summary:\n{summary}"));
    // "% time, seconds, usecs/call, calls, [errors,] total"
    line.split_whitespace()
        .nth(3)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the calls column of {line:?}"))
}

/// Counts the syscalls of `pid` (all its threads) for [`STRACE_WINDOW`] seconds with
/// `timeout -s INT 30 strace -c -f -p PID -o FILE`: `(total calls, summary text)`.
fn count_syscalls(pid: u32, file: &std::path::Path) -> (u64, String) {
    count_syscalls_for(pid, file, STRACE_WINDOW)
}

/// The calls of one syscall in an `strace -c` summary (0 if it is not listed).
fn strace_calls_of(summary: &str, syscall: &str) -> u64 {
    summary
        .lines()
        .find(|l| l.split_whitespace().last() == Some(syscall))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// `timeout -s INT SECS strace -c -f -p PID -o FILE`: `(total calls, summary text)`.
fn count_syscalls_for(pid: u32, file: &std::path::Path, secs: u32) -> (u64, String) {
    let out = Command::new("timeout")
        .args(["-k", "10", "-s", "INT", &secs.to_string()])
        .args(["strace", "-c", "-f", "-o"])
        .arg(file)
        .args(["-p", &pid.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run timeout/strace");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(&format!("Process {pid} attached")),
        "strace did not attach to {pid} ({}):\n{stderr}",
        out.status
    );
    let summary = fs::read_to_string(file).unwrap_or_default();
    (strace_total_calls(&summary), summary)
}

/// Two namespaces over veth with a wgd server in the first and a wgd client in the second
/// (interfaces `{prefix}a…` and `{prefix}b…`), returned once a ping has gone through the tunnel.
/// The order of the tuple is the order to keep them in: bindings drop in reverse, daemons first.
fn connected_pair(w: &Impl, prefix: &str) -> (Netns, Netns, StockPeer, StockPeer) {
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &A_UL, &b, &B_UL);
    let (ca, cb) = pair_confs();
    let server = StockPeer::start(
        w,
        &a,
        &unique_iface(&format!("{prefix}a")),
        &ca,
        &A_TUN,
        MTU,
    );
    let client = StockPeer::start(
        w,
        &b,
        &unique_iface(&format!("{prefix}b")),
        &cb,
        &B_TUN,
        MTU,
    );
    assert!(
        b.wait_ping("198.19.0.1", HANDSHAKE_TIMEOUT),
        "no ping through the tunnel within {HANDSHAKE_TIMEOUT:?}"
    );
    (a, b, server, client)
}

/// A wgd ↔ wgd pair with no traffic and no persistent keepalive, past the passive keepalive
/// after one ping: each daemon makes at most [`MAX_IDLE_SYSCALLS`] syscalls in 30 s and stays
/// under [`MAX_RSS_KIB`] resident.
#[test]
fn idle_wgd_makes_few_syscalls_and_stays_small() {
    let test = "idle_wgd_makes_few_syscalls_and_stays_small";
    let w = wgd_impl();
    if !impl_or_skip(test, &w) || !privileged_or_skip_with(test, &["strace", "timeout"]) {
        return;
    }
    let (_a, b, mut server, mut client) = connected_pair(&w, "wi");
    thread::sleep(SETTLE);
    server.assert_running();
    client.assert_running();

    let dir = std::env::temp_dir().join(format!("wgdt-idle-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let daemons = [("server", server.pid()), ("client", client.pid())];
    let mut memory = Vec::new();
    for (role, pid) in daemons {
        let (rss, hwm) = memory_kib(pid);
        eprintln!("{test}: idle wgd {role} (pid {pid}): VmRSS {rss} KiB, VmHWM {hwm} KiB");
        memory.push((role, rss, hwm));
    }
    // Both daemons are traced at once: one 30 s window for the two.
    let counts: Vec<(u64, String)> = thread::scope(|scope| {
        let handles: Vec<_> = daemons
            .iter()
            .map(|(role, pid)| {
                let file = dir.join(format!("{role}.strace"));
                scope.spawn(move || count_syscalls(*pid, &file))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("strace thread"))
            .collect()
    });
    let _ = fs::remove_dir_all(&dir);
    for ((role, pid), (calls, summary)) in daemons.iter().zip(&counts) {
        eprintln!(
            "{test}: idle wgd {role} (pid {pid}): {calls} syscalls in {STRACE_WINDOW} s\n{}",
            summary.trim_end()
        );
    }
    server.assert_running();
    client.assert_running();
    for ((role, _), (calls, summary)) in daemons.iter().zip(&counts) {
        assert!(
            *calls <= MAX_IDLE_SYSCALLS,
            "idle wgd {role}: {calls} syscalls in {STRACE_WINDOW} s (limit \
             {MAX_IDLE_SYSCALLS}):\n{summary}"
        );
    }
    for (role, rss, hwm) in memory {
        assert!(
            rss <= MAX_RSS_KIB && hwm <= MAX_RSS_KIB,
            "idle wgd {role}: VmRSS {rss} KiB, VmHWM {hwm} KiB (limit {MAX_RSS_KIB} KiB)"
        );
    }
    // Still a working tunnel after being traced.
    b.ping("198.19.0.1", 1);
}

#[test]
fn removing_the_uapi_socket_makes_wgd_exit() {
    let name = "removing_the_uapi_socket_makes_wgd_exit";
    if !common::netns::privileged_or_skip(name) {
        return;
    }
    let ns = Netns::new();
    let iface = unique_iface("wgs");
    let bin = env!("CARGO_BIN_EXE_wgd");
    let mut child = ns
        .exec_command(&[bin, "-f", &iface])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn wgd -f");
    let sock = std::path::PathBuf::from(format!("/var/run/wireguard/{iface}.sock"));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "socket did not appear"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(&sock).expect("remove the socket file");
    // As wireguard-go: the interface can no longer be managed, so the daemon exits (status 0)
    // and its interface goes with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(s) = child.try_wait().expect("poll wgd") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wgd still running 3 s after its socket was removed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    assert!(
        !ns.run_unchecked(&["ip", "link", "show", &iface])
            .status
            .success()
    );
}

/// Pings through an idle tunnel: what one echo request costs the responding wgd in syscalls.
const PINGS: u64 = 20;

/// The responder's syscalls while it answers [`PINGS`] pings (0.2 s apart, nothing else on the
/// tunnel). Per ping it needs: wake-ups for the UDP socket and the TUN, a `recvmmsg` and a TUN
/// `write`, a TUN `read` and a `sendmsg`, plus the reads that find the queues empty (8 in all).
/// It must not draw from `getrandom` per packet (the timers' jitter), write the runtime's eventfd
/// per packet (a timer moved earlier on every turn) or wake for the UDP socket's EPOLLOUT after
/// each send: each of those once cost one or two more syscalls per ping (223 for 20 pings
/// before, 161 after).
#[test]
fn a_ping_through_an_idle_tunnel_costs_few_syscalls() {
    let test = "a_ping_through_an_idle_tunnel_costs_few_syscalls";
    let w = wgd_impl();
    if !impl_or_skip(test, &w) || !privileged_or_skip_with(test, &["strace", "timeout"]) {
        return;
    }
    let (_a, b, mut server, _client) = connected_pair(&w, "wp");
    let dir = std::env::temp_dir().join(format!("wgdt-ping-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("server.strace");
    let pid = server.pid();
    // strace for 9 s; the pings start 1 s in and take 4 s.
    let (total, summary) = thread::scope(|scope| {
        let counting = scope.spawn(|| count_syscalls_for(pid, &file, 9));
        thread::sleep(Duration::from_secs(1));
        b.ping("198.19.0.1", PINGS as u32);
        counting.join().expect("strace thread")
    });
    let _ = fs::remove_dir_all(&dir);
    eprintln!("{test}: wgd (pid {pid}) answering {PINGS} pings: {total} syscalls\n{summary}");
    server.assert_running();
    let getrandom = strace_calls_of(&summary, "getrandom");
    let writes = strace_calls_of(&summary, "write");
    let epoll_waits = strace_calls_of(&summary, "epoll_wait");
    assert!(getrandom <= 2, "{getrandom} getrandom calls:\n{summary}");
    assert!(
        writes <= PINGS + 4,
        "{writes} writes for {PINGS} TUN writes:\n{summary}"
    );
    assert!(
        epoll_waits <= 2 * PINGS + 10,
        "{epoll_waits} epoll_wait calls for {PINGS} pings:\n{summary}"
    );
    assert!(
        total <= 10 * PINGS,
        "{total} syscalls for {PINGS} pings:\n{summary}"
    );
}
