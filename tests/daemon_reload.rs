//! Operating wgd as a service: SIGHUP reloads the configuration like `wg syncconf` (untouched
//! peers keep their sessions), and systemd's READY=1 arrives on NOTIFY_SOCKET only once the
//! interface carries traffic.

mod common;

use common::netns::{Impl, Netns, StockPeer, impl_or_skip, unique_iface, veth, wgd_impl};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand_core::OsRng;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use wgd::crypto::keys::PrivateKey;

/// A wgd child started by this test; stopped by PID on drop.
struct Wgd {
    child: Child,
    log: std::path::PathBuf,
}

impl Wgd {
    fn start(
        ns: &Netns,
        conf: &std::path::Path,
        iface: &str,
        notify: Option<&std::path::Path>,
    ) -> Wgd {
        let Impl::Wgd(bin) = wgd_impl() else {
            unreachable!()
        };
        let log = conf.with_extension("log");
        let f = std::fs::File::create(&log).expect("log file");
        let mut cmd = ns.exec_command(&[
            bin.to_str().expect("utf-8 path"),
            "-vv",
            "up",
            conf.to_str().expect("utf-8 path"),
            "--interface",
            iface,
        ]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(f);
        if let Some(n) = notify {
            cmd.env("NOTIFY_SOCKET", n);
        }
        Wgd {
            child: cmd.spawn().expect("spawn wgd"),
            log,
        }
    }

    fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).expect("signal our wgd");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Wgd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- wgd log ---\n{}\n--- end ---", self.log());
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// `wg show IFACE dump` peer lines: public key → the tab-separated fields.
fn dump(ns: &Netns, iface: &str) -> Vec<Vec<String>> {
    let out = ns.run(&["wg", "show", iface, "dump"]).stdout;
    String::from_utf8_lossy(&out)
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn sighup_applies_the_difference_and_keeps_untouched_sessions() {
    let name = "sighup_applies_the_difference_and_keeps_untouched_sessions";
    if !impl_or_skip(name, &wgd_impl()) || !impl_or_skip(name, &Impl::WireguardGo) {
        return;
    }
    let dir = tempdir();
    let go_key = PrivateKey::generate(&mut OsRng);
    let our_key = PrivateKey::generate(&mut OsRng);
    let p2 = PrivateKey::generate(&mut OsRng).public_key();
    let p3 = PrivateKey::generate(&mut OsRng).public_key();
    let iface = unique_iface("wgr");
    let go_conf = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\n\n[Peer]\nPublicKey = {}\nAllowedIPs = 198.19.0.2/32\n",
        go_key.to_base64().as_str(),
        our_key.public_key()
    );
    let ours = |p2_allowed: &str, with_p3: bool| {
        let mut c = format!(
            "[Interface]\nPrivateKey = {}\nAddress = 198.19.0.2/24\n\n[Peer]\nPublicKey = {}\nAllowedIPs = 198.19.0.1/32\nEndpoint = 198.18.0.1:51820\n\n[Peer]\nPublicKey = {p2}\nAllowedIPs = {p2_allowed}\n",
            our_key.to_base64().as_str(),
            go_key.public_key()
        );
        if with_p3 {
            c += &format!("\n[Peer]\nPublicKey = {p3}\nAllowedIPs = 198.19.0.30/32\n");
        }
        c
    };
    let conf = dir.join(format!("{iface}.conf"));
    std::fs::write(&conf, ours("198.19.0.20/32", false)).unwrap();

    let go_ns = Netns::new();
    let our_ns = Netns::new();
    veth(&go_ns, &["198.18.0.1/24"], &our_ns, &["198.18.0.2/24"]);
    let _go = StockPeer::start(
        &Impl::WireguardGo,
        &go_ns,
        &unique_iface("wgg"),
        &go_conf,
        &["198.19.0.1/24"],
        1420,
    );
    let wgd = Wgd::start(&our_ns, &conf, &iface, None);
    wait_for("the UAPI socket", Duration::from_secs(5), || {
        std::path::Path::new(&format!("/var/run/wireguard/{iface}.sock")).exists()
    });
    assert!(our_ns.wait_ping("198.19.0.1", Duration::from_secs(10)));
    let before = dump(&our_ns, &iface);
    let p1 = go_key.public_key().to_string();
    let row = |d: &[Vec<String>], k: &str| d.iter().find(|r| r[0] == k).cloned();
    let b1 = row(&before, &p1).expect("peer 1");
    let hs_before: u64 = b1[4].parse().unwrap();
    assert!(hs_before > 0);
    // Later than the handshake's second, so a new handshake would show.
    std::thread::sleep(Duration::from_millis(1100));

    // One peer changed (P2's AllowedIPs), one added (P3), P1 untouched.
    std::fs::write(&conf, ours("198.19.0.21/32", true)).unwrap();
    wgd.signal(Signal::SIGHUP);
    wait_for("the reload", Duration::from_secs(5), || {
        dump(&our_ns, &iface).len() == 3
    });
    let after = dump(&our_ns, &iface);
    assert_eq!(row(&after, &p2.to_string()).unwrap()[3], "198.19.0.21/32");
    assert_eq!(row(&after, &p3.to_string()).unwrap()[3], "198.19.0.30/32");
    our_ns.ping("198.19.0.1", 2);
    let a1 = row(&dump(&our_ns, &iface), &p1).unwrap();
    assert_eq!(
        a1[4].parse::<u64>().unwrap(),
        hs_before,
        "P1 kept its session: no new handshake"
    );
    let (rx_b, tx_b): (u64, u64) = (b1[5].parse().unwrap(), b1[6].parse().unwrap());
    let (rx_a, tx_a): (u64, u64) = (a1[5].parse().unwrap(), a1[6].parse().unwrap());
    assert!(rx_a > rx_b && tx_a > tx_b, "P1's counters continued");

    // A broken file changes nothing.
    std::fs::write(&conf, "[Interface]\nPrivateKey = nope\n").unwrap();
    wgd.signal(Signal::SIGHUP);
    wait_for(
        "the failed reload to be logged",
        Duration::from_secs(5),
        || wgd.log().contains("reload failed"),
    );
    assert_eq!(dump(&our_ns, &iface).len(), 3);
    our_ns.ping("198.19.0.1", 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ready_is_notified_only_when_traffic_passes() {
    let name = "ready_is_notified_only_when_traffic_passes";
    if !impl_or_skip(name, &wgd_impl()) || !impl_or_skip(name, &Impl::WireguardGo) {
        return;
    }
    let dir = tempdir();
    let go_key = PrivateKey::generate(&mut OsRng);
    let our_key = PrivateKey::generate(&mut OsRng);
    let iface = unique_iface("wgn");
    let go_conf = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\n\n[Peer]\nPublicKey = {}\nAllowedIPs = 198.19.0.2/32\n",
        go_key.to_base64().as_str(),
        our_key.public_key()
    );
    let conf = dir.join(format!("{iface}.conf"));
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {}\nAddress = 198.19.0.2/24\n\n[Peer]\nPublicKey = {}\nAllowedIPs = 198.19.0.1/32\nEndpoint = 198.18.0.1:51820\n",
            our_key.to_base64().as_str(),
            go_key.public_key()
        ),
    )
    .unwrap();
    let go_ns = Netns::new();
    let our_ns = Netns::new();
    veth(&go_ns, &["198.18.0.1/24"], &our_ns, &["198.18.0.2/24"]);
    let _go = StockPeer::start(
        &Impl::WireguardGo,
        &go_ns,
        &unique_iface("wgg"),
        &go_conf,
        &["198.19.0.1/24"],
        1420,
    );

    // The test's own NOTIFY_SOCKET (an abstract-free path in our temp dir; the namespace does
    // not matter for a Unix socket path).
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind NOTIFY_SOCKET");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let wgd = Wgd::start(&our_ns, &conf, &iface, Some(&sock_path));
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 10 s");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        msg.lines().any(|l| l == "READY=1"),
        "first notification: {msg:?}"
    );
    // At READY=1 everything is in place: the interface is up with its address, the UAPI socket
    // answers, and the first ping goes through (the handshake is made on demand).
    let link = String::from_utf8_lossy(
        &our_ns
            .run(&["ip", "-o", "addr", "show", "dev", &iface])
            .stdout,
    )
    .into_owned();
    assert!(link.contains("198.19.0.2/24"), "{link}");
    assert_eq!(dump(&our_ns, &iface).len(), 1);
    our_ns.ping("198.19.0.1", 1);
    // SIGTERM → STOPPING=1.
    wgd.signal(Signal::SIGTERM);
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wgd-reload-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn watchdog_pings_at_half_the_interval() {
    let name = "watchdog_pings_at_half_the_interval";
    if !impl_or_skip(name, &wgd_impl()) {
        return;
    }
    let dir = tempdir();
    let iface = unique_iface("wgw");
    let conf = dir.join(format!("{iface}.conf"));
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {}\n",
            PrivateKey::generate(&mut OsRng).to_base64().as_str()
        ),
    )
    .unwrap();
    let ns = Netns::new();
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind NOTIFY_SOCKET");
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // WatchdogSec=0.4 s: wgd must ping every 0.2 s. systemd also sets WATCHDOG_PID to the main
    // PID, which sd_notify checks: `exec` keeps the shell's PID through `ip netns exec` to wgd.
    let Impl::Wgd(bin) = wgd_impl() else {
        unreachable!()
    };
    let script = format!(
        "WATCHDOG_PID=$$ exec ip netns exec {} {} up {} --interface {iface}",
        ns.name,
        bin.display(),
        conf.display()
    );
    let log = dir.join("wgd.log");
    let child = std::process::Command::new("sh")
        .args(["-c", &script])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn wgd");
    let _wgd = Wgd { child, log };
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_secs(2) {
        let n = sock.recv(&mut buf).expect("notifications keep coming");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "WATCHDOG=1")
        {
            pings += 1;
        }
    }
    // About 10 in 2 s; allow for a loaded machine, but a missing watchdog gives 0.
    assert!(
        (5..=15).contains(&pings),
        "WATCHDOG=1 pings in 2 s: {pings}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn save_config_writes_the_running_configuration_back() {
    let name = "save_config_writes_the_running_configuration_back";
    if !impl_or_skip(name, &wgd_impl()) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let iface = unique_iface("wgs");
    let conf = dir.join(format!("{iface}.conf"));
    let key = PrivateKey::generate(&mut OsRng);
    std::fs::write(
        &conf,
        format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51999\nAddress = 198.19.0.2/24\nSaveConfig = true\n",
            key.to_base64().as_str()
        ),
    )
    .unwrap();
    let ns = Netns::new();
    let mut wgd = Wgd::start(&ns, &conf, &iface, None);
    wait_for("the UAPI socket", Duration::from_secs(5), || {
        std::path::Path::new(&format!("/var/run/wireguard/{iface}.sock")).exists()
    });
    // A peer added at run time through the stock tool...
    let peer = PrivateKey::generate(&mut OsRng).public_key().to_string();
    ns.run(&[
        "wg",
        "set",
        &iface,
        "peer",
        &peer,
        "allowed-ips",
        "198.19.0.7/32",
        "endpoint",
        "198.18.0.7:51820",
        "persistent-keepalive",
        "25",
    ]);
    // ...is in the file after a clean stop.
    wgd.signal(Signal::SIGTERM);
    wait_for("wgd to exit", Duration::from_secs(5), || {
        matches!(wgd.child.try_wait(), Ok(Some(_)))
    });
    let text = std::fs::read_to_string(&conf).unwrap();
    let cfg = wgd::conf::Config::parse(&text, "saved").expect("the saved file parses");
    assert_eq!(cfg.interface.private_key, Some(key));
    assert_eq!(cfg.interface.listen_port, Some(51999));
    assert!(cfg.interface.save_config);
    assert_eq!(cfg.interface.addresses.len(), 1);
    assert_eq!(cfg.peers.len(), 1);
    assert_eq!(cfg.peers[0].public_key.to_string(), peer);
    assert_eq!(cfg.peers[0].allowed_ips[0].to_string(), "198.19.0.7/32");
    assert_eq!(cfg.peers[0].persistent_keepalive, Some(25));
    let mode = std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the saved file holds a private key");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `wg showconf IFACE` inside `ns`.
fn showconf(ns: &Netns, iface: &str) -> String {
    String::from_utf8_lossy(&ns.run(&["wg", "showconf", iface]).stdout).into_owned()
}

#[test]
fn start_up_and_sighup_build_the_same_device_with_host_name_endpoints() {
    let name = "start_up_and_sighup_build_the_same_device_with_host_name_endpoints";
    if !impl_or_skip(name, &wgd_impl()) {
        return;
    }
    let dir = tempdir();
    let key = PrivateKey::generate(&mut OsRng);
    let old_peer = PrivateKey::generate(&mut OsRng).public_key();
    let [p1, p2, p3] = [(); 3].map(|()| PrivateKey::generate(&mut OsRng).public_key());
    let psk = wgd::crypto::keys::PresharedKey::generate(&mut OsRng);
    let head = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51830\n",
        key.to_base64().as_str()
    );
    let before = format!("{head}\n[Peer]\nPublicKey = {old_peer}\nAllowedIPs = 198.19.9.0/24\n");
    // A host-name endpoint (`localhost`, resolved through the namespace's /etc/hosts), a
    // literal one with a PSK and a keepalive, and a peer with no endpoint.
    let after = format!(
        "{head}\n[Peer]\nPublicKey = {p1}\nAllowedIPs = 198.19.1.0/24\nEndpoint = localhost:51831\n\
         \n[Peer]\nPublicKey = {p2}\nPresharedKey = {}\nAllowedIPs = 198.19.2.0/24, 2001:db8:2::/48\n\
         Endpoint = 198.18.0.99:51832\nPersistentKeepalive = 25\n\
         \n[Peer]\nPublicKey = {p3}\nAllowedIPs = 198.19.3.3/32\n",
        psk.to_base64().as_str()
    );

    // Reloaded: started from `before`, then SIGHUP with `after`.
    let reload_ns = Netns::new();
    let reload_iface = unique_iface("wgh");
    let reload_conf = dir.join(format!("{reload_iface}.conf"));
    std::fs::write(&reload_conf, &before).unwrap();
    let reloaded = Wgd::start(&reload_ns, &reload_conf, &reload_iface, None);
    wait_for("the UAPI socket", Duration::from_secs(5), || {
        std::path::Path::new(&format!("/var/run/wireguard/{reload_iface}.sock")).exists()
    });
    wait_for("the first device", Duration::from_secs(5), || {
        dump(&reload_ns, &reload_iface).len() == 1
    });
    std::fs::write(&reload_conf, &after).unwrap();
    reloaded.signal(Signal::SIGHUP);
    wait_for("the reload", Duration::from_secs(5), || {
        reloaded.log().contains("SIGHUP: reloaded")
    });
    let via_reload = showconf(&reload_ns, &reload_iface);

    // Started from `after` directly.
    let start_ns = Netns::new();
    let start_iface = unique_iface("wgs");
    let start_conf = dir.join(format!("{start_iface}.conf"));
    std::fs::write(&start_conf, &after).unwrap();
    let _started = Wgd::start(&start_ns, &start_conf, &start_iface, None);
    wait_for("the UAPI socket", Duration::from_secs(5), || {
        std::path::Path::new(&format!("/var/run/wireguard/{start_iface}.sock")).exists()
    });
    wait_for("the second device", Duration::from_secs(5), || {
        dump(&start_ns, &start_iface).len() == 3
    });
    let via_start = showconf(&start_ns, &start_iface);

    // The host name resolved on reload as at start-up (`wg syncconf` resolves it too).
    let p1_block = via_reload
        .split("[Peer]")
        .find(|b| b.contains(&p1.to_string()))
        .expect("P1 after the reload");
    assert!(
        p1_block.contains("Endpoint = 127.0.0.1:51831")
            || p1_block.contains("Endpoint = [::1]:51831"),
        "the host-name peer added on SIGHUP has no endpoint:\n{via_reload}"
    );
    assert!(!via_reload.contains(&old_peer.to_string()));
    assert_eq!(
        via_reload, via_start,
        "start-up and SIGHUP built different devices from the same file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
