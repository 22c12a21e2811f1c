//! `wgd up FILE` does to the interface what `wg-quick up FILE` does: the same addresses, MTU
//! and routes (compared in two namespaces from the same file), hooks run with %i, and
//! `Table = off` / `Table = N` are honoured.

mod common;

use common::netns::{Impl, Netns, impl_or_skip, unique_iface, wgd_impl};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand_core::OsRng;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use wgd::crypto::keys::PrivateKey;

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgd-wgq-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `ip` output about `iface` with the interface name and volatile fields normalized.
fn snapshot(ns: &Netns, iface: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for args in [
        vec!["ip", "-o", "addr", "show", "dev", iface],
        vec!["ip", "-4", "route", "show", "dev", iface],
        vec!["ip", "-6", "route", "show", "dev", iface],
        vec!["ip", "-4", "route", "show", "table", "51820"],
        vec!["ip", "-o", "link", "show", "dev", iface],
    ] {
        // (`ip route show table N` fails when the table does not exist: that is "no routes".)
        let out = String::from_utf8_lossy(&ns.run_unchecked(&args).stdout).into_owned();
        for l in out.lines() {
            let l = l.replace(iface, "IFACE");
            // Drop per-run noise: interface index, address lifetimes, link flags other than
            // the MTU, and kernel-added link-local/multicast entries.
            let l: Vec<&str> = l.split_whitespace().collect();
            let mut keep = Vec::new();
            let mut i = 0;
            while i < l.len() {
                match l[i] {
                    "valid_lft" | "preferred_lft" | "qdisc" | "group" | "qlen" | "state"
                    | "mode" => i += 2,
                    w if w.ends_with(':') && w[..w.len() - 1].parse::<u32>().is_ok() => i += 1,
                    w => {
                        keep.push(w.to_string());
                        i += 1;
                    }
                }
            }
            let s = keep.join(" ");
            if s.contains("fe80::") || s.contains("ff00::") {
                continue;
            }
            lines.push(s);
        }
    }
    lines.sort();
    lines
}

/// Runs `wg-quick down FILE` in the namespace when dropped (also on a failed assertion), so the
/// daemon wg-quick started never outlives the test.
struct WgQuickUp<'a> {
    ns: &'a Netns,
    file: PathBuf,
    done: bool,
}

impl WgQuickUp<'_> {
    fn down(&mut self) -> bool {
        self.done = true;
        self.ns
            .exec_command(&["wg-quick", "down", self.file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for WgQuickUp<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.down();
        }
    }
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = kill(Pid::from_raw(self.0.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn conf(table: &str, hook_file: &Path) -> String {
    let k = PrivateKey::generate(&mut OsRng);
    let p1 = PrivateKey::generate(&mut OsRng).public_key();
    let p2 = PrivateKey::generate(&mut OsRng).public_key();
    format!(
        "[Interface]\nPrivateKey = {}\nAddress = 198.19.0.2/24, 2001:db8:1::2/64\nMTU = 1380\n{table}\
         PostUp = echo up %i >> {hook}\nPreDown = echo down %i >> {hook}\n\n\
         [Peer]\nPublicKey = {p1}\nAllowedIPs = 198.19.0.1/32, 198.19.5.0/24, 2001:db8:5::/48\n\n\
         [Peer]\nPublicKey = {p2}\nAllowedIPs = 198.19.6.0/25, 2001:db8:6::/64\n",
        k.to_base64().as_str(),
        hook = hook_file.display()
    )
}

fn wait_link(ns: &Netns, iface: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ns
        .run_unchecked(&["ip", "link", "show", iface])
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "{iface} did not appear");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let addresses and routes settle.
    std::thread::sleep(Duration::from_millis(300));
}

fn compare(name: &str, table_line: &str) {
    let w = wgd_impl();
    if !impl_or_skip(name, &w) {
        return;
    }
    let Impl::Wgd(bin) = w else { unreachable!() };
    let dir = tempdir(name);
    let hooks = dir.join("hooks.log");
    let text = conf(table_line, &hooks);
    let (if_q, if_w) = (unique_iface("wgq"), unique_iface("wgw"));
    let (fq, fw) = (
        dir.join(format!("{if_q}.conf")),
        dir.join(format!("{if_w}.conf")),
    );
    std::fs::write(&fq, &text).unwrap();
    std::fs::write(&fw, &text).unwrap();
    let nq = Netns::new();
    let nw = Netns::new();
    // Output to a file: the daemon wg-quick starts inherits it and would hold a pipe open.
    let qlog = dir.join("wg-quick.log");
    let q = nq
        .exec_command(&["wg-quick", "up", fq.to_str().unwrap()])
        // wg-quick does the interface work itself; the userspace implementation only serves
        // `wg setconf`. (Debian's wireguard-go detaches before its socket is ready, and
        // wg-quick's `wg setconf` then races it.)
        .env("WG_QUICK_USERSPACE_IMPLEMENTATION", bin.to_str().unwrap())
        .stdout(std::fs::File::create(&qlog).unwrap())
        .stderr(std::fs::File::options().append(true).open(&qlog).unwrap())
        .status()
        .expect("wg-quick up");
    let mut up = WgQuickUp {
        ns: &nq,
        file: fq.clone(),
        done: false,
    };
    let qtext = std::fs::read_to_string(&qlog).unwrap_or_default();
    assert!(q.success(), "wg-quick up: {qtext}");
    let _wgd = Proc(
        nw.exec_command(&[bin.to_str().unwrap(), "up", fw.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wgd up"),
    );
    wait_link(&nw, &if_w);
    let (a, b) = (snapshot(&nq, &if_q), snapshot(&nw, &if_w));
    let down = up.down();
    assert_eq!(a, b, "wg-quick (left) and wgd up (right) differ");
    assert!(a.iter().any(|l| l.contains("198.19.0.2/24")), "{a:?}");
    assert!(a.iter().any(|l| l.contains("mtu 1380")), "{a:?}");
    assert!(down, "wg-quick down");
    drop(_wgd);
    let log = std::fs::read_to_string(&hooks).unwrap_or_default();
    assert!(
        log.contains(&format!("up {if_w}")) && log.contains(&format!("down {if_w}")),
        "hooks: {log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn same_addresses_and_routes_as_wg_quick() {
    compare("same_addresses_and_routes_as_wg_quick", "");
}

#[test]
fn same_with_table_off() {
    compare("same_with_table_off", "Table = off\n");
}

#[test]
fn same_with_table_number() {
    compare("same_with_table_number", "Table = 51820\n");
}

/// Brings `text` up with `wg-quick up` in one namespace and `wgd up` in another (each with an
/// underlay 198.18.0.2/24), compares the interface snapshot plus the output of `extra`
/// commands (`IFACE` stands for the interface name), and returns the two namespaces and
/// interface names with both still up, for checks of their own. wg-quick is taken down, and
/// wgd stopped, when the returned guard drops.
struct Both {
    nq: Netns,
    nw: Netns,
    if_q: String,
    if_w: String,
    fq: PathBuf,
    wgd: Option<Proc>,
    dir: PathBuf,
}

impl Drop for Both {
    fn drop(&mut self) {
        let _ = self
            .nq
            .exec_command(&["wg-quick", "down", self.fq.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        self.wgd.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn both_up(name: &str, bin: &Path, text: &str, underlay_mtu: &str) -> (Both, bool, String) {
    let dir = tempdir(name);
    let (if_q, if_w) = (unique_iface("wgq"), unique_iface("wgw"));
    let (fq, fw) = (
        dir.join(format!("{if_q}.conf")),
        dir.join(format!("{if_w}.conf")),
    );
    std::fs::write(&fq, text).unwrap();
    std::fs::write(&fw, text).unwrap();
    let (nq, nw) = (Netns::new(), Netns::new());
    for ns in [&nq, &nw] {
        // An underlay of its own (no dummy driver on every kernel: a veth pair in the namespace).
        ns.ip(&["link", "add", "ul0", "type", "veth", "peer", "name", "ul1"]);
        ns.ip(&["addr", "add", "198.18.0.2/24", "dev", "ul0"]);
        ns.ip(&["link", "set", "ul1", "mtu", underlay_mtu, "up"]);
        ns.ip(&["link", "set", "ul0", "mtu", underlay_mtu, "up"]);
    }
    let qlog = dir.join("wg-quick.log");
    let q = nq
        .exec_command(&["wg-quick", "up", fq.to_str().unwrap()])
        .env("WG_QUICK_USERSPACE_IMPLEMENTATION", bin.to_str().unwrap())
        .stdout(std::fs::File::create(&qlog).unwrap())
        .stderr(std::fs::File::options().append(true).open(&qlog).unwrap())
        .status()
        .expect("wg-quick up");
    let qtext = std::fs::read_to_string(&qlog).unwrap_or_default();
    let wlog = dir.join("wgd.log");
    let wgd = Proc(
        nw.exec_command(&[bin.to_str().unwrap(), "up", fw.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&wlog).unwrap())
            .spawn()
            .expect("wgd up"),
    );
    let b = Both {
        nq,
        nw,
        if_q,
        if_w,
        fq,
        wgd: Some(wgd),
        dir,
    };
    (b, q.success(), qtext)
}

/// `args` run in `ns` with `iface` for IFACE, output lines with the name normalized, sorted.
fn capture(ns: &Netns, iface: &str, args: &[&str]) -> Vec<String> {
    let args: Vec<String> = args.iter().map(|a| a.replace("IFACE", iface)).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = String::from_utf8_lossy(&ns.run_unchecked(&args).stdout).into_owned();
    let mut v: Vec<String> = out
        .lines()
        .map(|l| l.replace(iface, "IFACE").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

#[test]
fn fwmark_is_the_table_of_a_default_route_as_in_wg_quick_and_survives_a_reload() {
    let name = "fwmark_is_the_table_of_a_default_route_as_in_wg_quick_and_survives_a_reload";
    let w = wgd_impl();
    // A default route: wg-quick adds its nftables rules (and fails without nft or iptables).
    if !impl_or_skip(name, &w) || !common::netns::privileged_or_skip_with(name, &["nft"]) {
        return;
    }
    let Impl::Wgd(bin) = w else { unreachable!() };
    let k = PrivateKey::generate(&mut OsRng);
    let p = PrivateKey::generate(&mut OsRng).public_key();
    let text = format!(
        "[Interface]\nPrivateKey = {}\nAddress = 198.19.0.2/24\nFwMark = 0x1234\n\n\
         [Peer]\nPublicKey = {p}\nAllowedIPs = 0.0.0.0/0\nEndpoint = 198.18.0.1:51820\n",
        k.to_base64().as_str()
    );
    let (b, ok, qtext) = both_up(name, &bin, &text, "1500");
    assert!(ok, "wg-quick up: {qtext}");
    wait_link(&b.nw, &b.if_w);
    let views: [&[&str]; 4] = [
        &["ip", "-4", "rule", "show"],
        &["ip", "-4", "route", "show", "table", "4660"],
        &["wg", "show", "IFACE", "fwmark"],
        // wg-quick's firewall for a default route: spoofed packets to the tunnel address
        // dropped, the connmark save/restore for the marked UDP.
        &["nft", "list", "table", "ip", "wg-quick-IFACE"],
    ];
    for v in views {
        let (q, ours) = (capture(&b.nq, &b.if_q, v), capture(&b.nw, &b.if_w, v));
        assert_eq!(q, ours, "{v:?}: wg-quick (left) and wgd up (right) differ");
        assert!(!q.is_empty(), "{v:?} shows nothing");
    }
    assert_eq!(
        capture(&b.nw, &b.if_w, &["wg", "show", "IFACE", "fwmark"]),
        ["0x1234"]
    );
    // A reload keeps the sockets' mark and the rule in agreement: the daemon's own datagrams
    // to its endpoint stay out of the tunnel (before, they were routed into it: a loop).
    let pid = b.wgd.as_ref().map(|p| p.0.id()).unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGHUP).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let route = capture(
        &b.nw,
        &b.if_w,
        &["ip", "route", "get", "198.18.0.1", "mark", "0x1234"],
    )
    .join(" ");
    assert!(
        route.contains("dev ul0") && !route.contains("IFACE"),
        "the daemon's own traffic is routed: {route}"
    );
    assert_eq!(
        capture(&b.nw, &b.if_w, &["wg", "show", "IFACE", "fwmark"]),
        ["0x1234"]
    );
    // Down: the nft table goes with the interface, for both (namespaces still there).
    let mut b = b;
    for ns in [&b.nq, &b.nw] {
        let tables =
            String::from_utf8_lossy(&ns.run(&["nft", "list", "tables"]).stdout).into_owned();
        assert!(
            tables.contains("wg-quick-"),
            "no table while up in {}",
            ns.name
        );
    }
    let down =
        b.nq.exec_command(&["wg-quick", "down", b.fq.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("wg-quick down");
    assert!(down.success(), "wg-quick down");
    drop(b.wgd.take());
    for ns in [&b.nq, &b.nw] {
        let tables =
            String::from_utf8_lossy(&ns.run(&["nft", "list", "tables"]).stdout).into_owned();
        assert!(
            !tables.contains("wg-quick-"),
            "left behind in {}: {tables}",
            ns.name
        );
    }
}

#[test]
fn without_address_the_link_is_up_with_its_routes_as_in_wg_quick() {
    let name = "without_address_the_link_is_up_with_its_routes_as_in_wg_quick";
    let w = wgd_impl();
    // A default route: wg-quick adds its nftables rules (and fails without nft or iptables).
    if !impl_or_skip(name, &w) || !common::netns::privileged_or_skip_with(name, &["nft"]) {
        return;
    }
    let Impl::Wgd(bin) = w else { unreachable!() };
    let k = PrivateKey::generate(&mut OsRng);
    let p = PrivateKey::generate(&mut OsRng).public_key();
    let text = format!(
        "[Interface]\nPrivateKey = {}\n\n[Peer]\nPublicKey = {p}\n\
         AllowedIPs = 198.19.5.0/24, 2001:db8:5::/48, 0.0.0.0/0\n",
        k.to_base64().as_str()
    );
    let (b, ok, qtext) = both_up(name, &bin, &text, "1500");
    assert!(ok, "wg-quick up: {qtext}");
    wait_link(&b.nw, &b.if_w);
    let (q, ours) = (snapshot(&b.nq, &b.if_q), snapshot(&b.nw, &b.if_w));
    assert_eq!(q, ours, "wg-quick (left) and wgd up (right) differ");
    assert!(q.iter().any(|l| l.contains(",UP,")), "link not up: {q:?}");
    assert!(q.iter().any(|l| l.starts_with("198.19.5.0/24")), "{q:?}");
    for v in [
        &["ip", "-4", "rule", "show"][..],
        &["ip", "-4", "route", "show", "table", "51820"][..],
    ] {
        assert_eq!(
            capture(&b.nq, &b.if_q, v),
            capture(&b.nw, &b.if_w, v),
            "{v:?}"
        );
    }
}

#[test]
fn a_failing_post_up_fails_and_rolls_back_as_in_wg_quick() {
    let name = "a_failing_post_up_fails_and_rolls_back_as_in_wg_quick";
    let w = wgd_impl();
    if !impl_or_skip(name, &w) {
        return;
    }
    let Impl::Wgd(bin) = w else { unreachable!() };
    let dir = tempdir("postup-marks");
    let k = PrivateKey::generate(&mut OsRng);
    let p = PrivateKey::generate(&mut OsRng).public_key();
    let mark = dir.join("touched-%i");
    let text = format!(
        "[Interface]\nPrivateKey = {}\nAddress = 198.19.0.2/24\n\
         PostUp = false; touch {}\n\n[Peer]\nPublicKey = {p}\nAllowedIPs = 198.19.5.0/24\n",
        k.to_base64().as_str(),
        mark.display()
    );
    let (mut b, ok, qtext) = both_up(name, &bin, &text, "1500");
    assert!(!ok, "wg-quick up succeeded with a failing PostUp: {qtext}");
    // wgd up exits non-zero and takes the interface with it.
    let mut wgd = b.wgd.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(s)) = wgd.0.try_wait() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "wgd up still running after a failed PostUp"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    for (ns, iface) in [(&b.nq, &b.if_q), (&b.nw, &b.if_w)] {
        assert!(
            !ns.run_unchecked(&["ip", "link", "show", iface])
                .status
                .success(),
            "{iface} still exists"
        );
        let touched = dir.join(format!("touched-{iface}"));
        assert!(
            !touched.exists(),
            "errexit: `touch` ran after `false` for {iface}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_mtu_it_is_the_route_mtu_less_80_as_in_wg_quick() {
    let name = "without_mtu_it_is_the_route_mtu_less_80_as_in_wg_quick";
    let w = wgd_impl();
    if !impl_or_skip(name, &w) {
        return;
    }
    let Impl::Wgd(bin) = w else { unreachable!() };
    let k = PrivateKey::generate(&mut OsRng);
    let p = PrivateKey::generate(&mut OsRng).public_key();
    let text = format!(
        "[Interface]\nPrivateKey = {}\nAddress = 198.19.0.2/24\n\n\
         [Peer]\nPublicKey = {p}\nAllowedIPs = 198.19.5.0/24\nEndpoint = 198.18.0.1:51820\n",
        k.to_base64().as_str()
    );
    // The endpoint is reached over a 1400-byte underlay: wg-quick sets 1320 (wgd used 1420).
    let (b, ok, qtext) = both_up(name, &bin, &text, "1400");
    assert!(ok, "wg-quick up: {qtext}");
    wait_link(&b.nw, &b.if_w);
    let (q, ours) = (snapshot(&b.nq, &b.if_q), snapshot(&b.nw, &b.if_w));
    assert_eq!(q, ours, "wg-quick (left) and wgd up (right) differ");
    assert!(q.iter().any(|l| l.contains("mtu 1320")), "{q:?}");
}

#[test]
fn same_with_table_main() {
    compare("same_with_table_main", "Table = main\n");
}
