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
