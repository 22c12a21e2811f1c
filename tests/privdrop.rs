//! `--user`: wgd drops to an unprivileged user once its interface and sockets exist, keeps only
//! CAP_NET_ADMIN, and still carries traffic and answers `wg` over its UAPI socket.
//!
//! Two namespaces over veth: A runs `wgd --user nobody up FILE` (the server, port 51820), B runs
//! `wgd --user nobody -f IFACE` configured afterwards with `wg setconf` (the client). Root and
//! namespaces needed: skipped loudly when not root and CI is unset.

mod common;

use common::conf::pair_confs;
use common::netns::{Netns, privileged_or_skip, unique_iface, veth};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use std::{fs, io::Write, thread};

const WGD: &str = env!("CARGO_BIN_EXE_wgd");
const CAP_NET_ADMIN: u64 = 1 << 12;

/// A wgd started by this test, stopped (SIGTERM, then SIGKILL) and cleaned up on drop.
struct Dropped {
    child: Child,
    iface: String,
    dir: PathBuf,
    log: PathBuf,
    socket: PathBuf,
}

impl Dropped {
    /// `wgd --user USER ARGS...` in `ns`; waits until the UAPI socket accepts connections and
    /// the process runs as `uid` (the drop comes after the socket exists).
    fn start(ns: &Netns, iface: &str, user: &str, uid: u32, args: &[&str], dir: PathBuf) -> Self {
        let log = dir.join("wgd.log");
        let out = fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("dup log");
        let mut full = vec![WGD, "--user", user];
        full.extend_from_slice(args);
        let child = ns
            .exec_command(&full)
            .env("RUST_LOG", "wgd=trace")
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn wgd");
        let mut d = Dropped {
            child,
            iface: iface.to_string(),
            dir,
            log,
            socket: Path::new("/var/run/wireguard").join(format!("{iface}.sock")),
        };
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("wgd exited early ({st}); log:\n{}", d.log_text());
            }
            let dropped =
                status(d.pid()).is_some_and(|s| field(&s, "Uid").contains(&uid.to_string()));
            if dropped && UnixStream::connect(&d.socket).is_ok() {
                return d;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "wgd did not come up and drop privileges in 10 s; log:\n{}",
                d.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Dropped {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pid) = i32::try_from(self.child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            if self.wait_exit(Duration::from_secs(3)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if thread::panicking() {
            eprintln!(
                "--- wgd {} log ---\n{}--- end ---",
                self.iface,
                self.log_text()
            );
        }
        // A dropped daemon cannot unlink its socket from the root-owned directory.
        let _ = fs::remove_file(&self.socket);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn status(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/status")).ok()
}

/// The value of `Name:` in a /proc status text.
fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn hex_field(status: &str, name: &str) -> u64 {
    u64::from_str_radix(&field(status, name), 16).unwrap_or(u64::MAX)
}

/// Every thread of `pid` runs as `uid`/`gid` with only CAP_NET_ADMIN and no_new_privs.
fn assert_dropped(pid: u32, uid: u32, gid: u32, groups: &[u32]) {
    let tasks: Vec<_> = fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .filter_map(Result::ok)
        .collect();
    assert!(!tasks.is_empty());
    for t in tasks {
        let s = fs::read_to_string(t.path().join("status")).expect("task status");
        let ids = |n| {
            field(&s, n)
                .split_whitespace()
                .map(|x| x.parse::<u32>().expect("id"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids("Uid"),
            vec![uid; 4],
            "real, effective, saved, fs uid:\n{s}"
        );
        assert_eq!(
            ids("Gid"),
            vec![gid; 4],
            "real, effective, saved, fs gid:\n{s}"
        );
        let mut g = ids("Groups");
        g.sort_unstable();
        let mut want = groups.to_vec();
        want.sort_unstable();
        want.dedup();
        assert_eq!(g, want, "supplementary groups:\n{s}");
        for set in ["CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"] {
            assert_eq!(
                hex_field(&s, set),
                CAP_NET_ADMIN,
                "{set} must be CAP_NET_ADMIN (bit 12) only:\n{s}"
            );
        }
        assert_eq!(field(&s, "NoNewPrivs"), "1", "no_new_privs:\n{s}");
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgd-privdrop-{}-{tag}", std::process::id()));
    fs::create_dir_all(&d).expect("temp dir");
    d
}

fn write_0600(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("conf file");
    f.write_all(text.as_bytes()).expect("write conf");
}

/// `wg ARGS` in `ns` (as root): (success, stdout + stderr).
fn wg(ns: &Netns, args: &[&str]) -> (bool, String) {
    let mut full = vec!["wg"];
    full.extend_from_slice(args);
    let out = ns.run_unchecked(&full);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn wg_ok(ns: &Netns, args: &[&str]) -> String {
    let (ok, text) = wg(ns, args);
    assert!(ok, "wg {} failed: {text}", args.join(" "));
    text
}

fn public_of(conf: &str) -> String {
    let line = conf
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .expect("PrivateKey line");
    let k: wgd::crypto::keys::PrivateKey = line.trim().parse().expect("key");
    k.public_key().to_base64()
}

#[test]
fn dropped_daemons_keep_only_net_admin_and_still_work() {
    if !privileged_or_skip("dropped_daemons_keep_only_net_admin_and_still_work") {
        return;
    }
    let nobody = wgd::daemon::privdrop::resolve("nobody").expect("user nobody exists");
    let a = Netns::new();
    let b = Netns::new();
    veth(&a, &["198.18.0.1/24"], &b, &["198.18.0.2/24"]);
    let (conf_a, conf_b) = pair_confs(true, "198.18.0.1:51820");
    let (pub_a, pub_b) = (public_of(&conf_a), public_of(&conf_b));
    let (ia, ib) = (unique_iface("wgpa"), unique_iface("wgpb"));

    // A: `wgd --user nobody up FILE`.
    let dir_a = temp_dir(&ia);
    let file_a = dir_a.join(format!("{ia}.conf"));
    write_0600(&file_a, &conf_a);
    let file_a_s = file_a.to_string_lossy().into_owned();
    let mut da = Dropped::start(
        &a,
        &ia,
        "nobody",
        nobody.uid,
        &["up", &file_a_s, "--interface", &ia],
        dir_a,
    );
    // B: `wgd --user nobody -f IFACE`, configured over the UAPI after the drop.
    let dir_b = temp_dir(&ib);
    let file_b = dir_b.join(format!("{ib}.conf"));
    write_0600(&file_b, &conf_b);
    let mut db = Dropped::start(&b, &ib, "nobody", nobody.uid, &["-f", &ib], dir_b);
    wg_ok(&b, &["setconf", &ib, &file_b.to_string_lossy()]);
    for (ns, i, addr) in [(&a, &ia, "198.19.0.1/24"), (&b, &ib, "198.19.0.2/24")] {
        ns.ip(&["addr", "add", addr, "dev", i]);
        ns.ip(&["link", "set", i, "mtu", "1420", "up"]);
    }

    // The process state, read by the kernel: ids, groups, five capability sets, no_new_privs.
    for d in [&da, &db] {
        assert_dropped(d.pid(), nobody.uid, nobody.gid, &nobody.groups);
    }

    // The handshake and the traffic all happen after the drop.
    assert!(
        b.wait_ping("198.19.0.1", Duration::from_secs(10)),
        "no ping through the tunnel after the drop"
    );
    b.ping("198.19.0.1", 3);
    a.ping("198.19.0.2", 2);
    let handshake = wg_ok(&a, &["show", &ia, "latest-handshakes"]);
    assert!(handshake.contains(&pub_b), "{handshake}");

    // `wg set` through the UAPI (the socket accepts root; the daemon is nobody now).
    wg_ok(&a, &["set", &ia, "fwmark", "0x1234"]); // SO_MARK: needs CAP_NET_ADMIN
    assert_eq!(wg_ok(&a, &["show", &ia, "fwmark"]).trim(), "0x1234");
    wg_ok(&b, &["set", &ib, "listen-port", "40000"]); // re-bind, unprivileged port
    assert_eq!(wg_ok(&b, &["show", &ib, "listen-port"]).trim(), "40000");
    // A privileged port needs CAP_NET_BIND_SERVICE, which was not kept (B listened on a high
    // port): refused with an errno, nothing changes, the daemon lives on.
    let (ok, text) = wg(&b, &["set", &ib, "listen-port", "80"]);
    assert!(!ok, "binding port 80 after the drop succeeded: {text}");
    assert_eq!(wg_ok(&b, &["show", &ib, "listen-port"]).trim(), "40000");
    assert!(db.child.try_wait().expect("poll").is_none(), "B died");

    // The session goes on without a new handshake, over B's new port (A follows B's endpoint).
    b.ping("198.19.0.1", 3);
    a.ping("198.19.0.2", 2);
    assert_eq!(
        wg_ok(&a, &["show", &ia, "latest-handshakes"]),
        handshake,
        "a new handshake happened"
    );
    let ep = wg_ok(&a, &["show", &ia, "endpoints"]);
    assert!(ep.contains(&format!("{pub_b}\t198.18.0.2:40000")), "{ep}");
    let ep = wg_ok(&b, &["show", &ib, "endpoints"]);
    assert!(ep.contains(&pub_a), "{ep}");
    for d in [&da, &db] {
        assert_dropped(d.pid(), nobody.uid, nobody.gid, &nobody.groups);
    }

    // `wgd down` (root) stops A: SIGTERM, clean exit, interface gone, and it removes the
    // socket file the dropped daemon could not.
    let out = Command::new(WGD)
        .args(["down", &ia])
        .output()
        .expect("wgd down");
    assert!(
        out.status.success(),
        "wgd down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = da.wait_exit(Duration::from_secs(5)).expect("A exited");
    assert!(st.success(), "A exit status {st}; log:\n{}", da.log_text());
    assert!(!da.socket.exists(), "wgd down left the stale socket");
    assert!(
        !a.run_unchecked(&["ip", "link", "show", &ia])
            .status
            .success()
    );

    // SIGTERM stops B cleanly; its socket file stays behind, stale (refuses connections).
    kill(Pid::from_raw(db.pid() as i32), Signal::SIGTERM).expect("SIGTERM");
    let st = db.wait_exit(Duration::from_secs(5)).expect("B exited");
    assert!(st.success(), "B exit status {st}; log:\n{}", db.log_text());
    assert!(
        UnixStream::connect(&db.socket).is_err(),
        "B's socket still answers"
    );
    assert!(
        !b.run_unchecked(&["ip", "link", "show", &ib])
            .status
            .success()
    );
    let log = db.log_text();
    assert!(log.contains("dropped privileges to nobody"), "{log}");
    assert!(!log.contains("panicked"), "{log}");

    // Both daemons logged at TRACE level through a handshake, traffic and UAPI get/set: no
    // private key or PSK in base64 or hex.
    let secrets = secrets_of(&conf_a)
        .into_iter()
        .chain(secrets_of(&conf_b))
        .collect::<Vec<_>>();
    assert!(
        secrets.len() >= 6,
        "two private keys and a PSK, each in 2 forms"
    );
    for (name, text) in [("A", da.log_text()), ("B", log)] {
        assert!(
            text.lines().count() > 5,
            "{name} logged almost nothing:\n{text}"
        );
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "{name}'s TRACE log contains a key"
            );
        }
    }
}

/// The private key and PSK of a configuration text, in base64 and in hex.
fn secrets_of(conf: &str) -> Vec<String> {
    use base64::Engine;
    conf.lines()
        .filter_map(|l| {
            l.strip_prefix("PrivateKey = ")
                .or_else(|| l.strip_prefix("PresharedKey = "))
        })
        .flat_map(|b64| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .expect("base64 key");
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            [b64.trim().to_string(), hex]
        })
        .collect()
}

#[test]
fn unknown_user_fails_before_anything_exists() {
    // No privileges needed: the user is resolved before any interface or socket is made.
    let iface = unique_iface("wgpx");
    for args in [
        vec!["--user", "no-such-user-wgd", "-f", &iface],
        vec![
            "--user",
            "nobody:no-such-group-wgd",
            "up",
            "/nonexistent/x.conf",
        ],
        vec!["--user", "root", "-f", &iface],
    ] {
        let out = Command::new(WGD).args(&args).output().expect("run wgd");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("wgd: --user"), "{args:?}: {err}");
        assert!(
            err.contains("unknown user")
                || err.contains("unknown group")
                || err.contains("is root"),
            "{args:?}: {err}"
        );
    }
    assert!(
        !Path::new("/var/run/wireguard")
            .join(format!("{iface}.sock"))
            .exists()
    );
}
