//! Host names that keep resolving (issue #13 item 3): a peer behind a name moves to a new
//! address, the name is updated, and `wgd up` follows without a restart once the peer has gone
//! quiet. The name is served from a hosts file bind-mounted over /etc/hosts in a private mount
//! namespace of the daemon (no DNS traffic); `WGD_RERESOLVE_AFTER=2` shortens the 135-second
//! threshold.
//!
//! ```text
//!  P: wgd, 198.18.0.1 then 198.18.0.3 (underlay), 198.19.0.1 (tunnel), no endpoint for W
//!  W: wgd up, Endpoint = peer.wgd.test:51820, 198.19.0.2
//! ```

mod common;

use common::netns::{Impl, Netns, StockPeer, impl_or_skip, unique_iface, veth, wgd_impl};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand_core::OsRng;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use wgd::crypto::keys::PrivateKey;

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

#[test]
fn a_peer_behind_a_name_that_moves_is_followed_without_a_restart() {
    let name = "a_peer_behind_a_name_that_moves_is_followed_without_a_restart";
    let w = wgd_impl();
    if !impl_or_skip(name, &w)
        || !common::netns::privileged_or_skip_with(name, &["unshare", "mount"])
    {
        return;
    }
    let Impl::Wgd(bin) = &w else { unreachable!() };
    let dir = std::env::temp_dir().join(format!("wgd-reres-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n198.18.0.1 peer.wgd.test\n").unwrap();

    let p = Netns::new();
    let wn = Netns::new();
    let (vp, _) = veth(&p, &["198.18.0.1/24"], &wn, &["198.18.0.2/24"]);
    let (kp, kw) = (
        PrivateKey::generate(&mut OsRng),
        PrivateKey::generate(&mut OsRng),
    );
    let pconf = format!(
        "[Interface]\nPrivateKey = {}\nListenPort = 51820\n\n[Peer]\nPublicKey = {}\n\
         AllowedIPs = 198.19.0.2/32\n",
        kp.to_base64().as_str(),
        kw.public_key()
    );
    let _peer = StockPeer::start(&w, &p, "wgp", &pconf, &["198.19.0.1/24"], 1420);
    let iface = unique_iface("wgr");
    let wconf = dir.join(format!("{iface}.conf"));
    std::fs::write(
        &wconf,
        format!(
            "[Interface]\nPrivateKey = {}\nAddress = 198.19.0.2/24\n\n[Peer]\nPublicKey = {}\n\
             AllowedIPs = 198.19.0.1/32\nEndpoint = peer.wgd.test:51820\n",
            kw.to_base64().as_str(),
            kp.public_key()
        ),
    )
    .unwrap();
    let log = dir.join("wgd.log");
    let script = format!(
        "mount --bind {} /etc/hosts && exec {} -v up {} --interface {iface}",
        hosts.display(),
        bin.display(),
        wconf.display()
    );
    let _wgd = Proc(
        wn.exec_command(&["unshare", "-m", "sh", "-c", &script])
            .env("WGD_RERESOLVE_AFTER", "2")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("wgd up in a private mount namespace"),
    );
    assert!(
        wn.wait_ping("198.19.0.1", Duration::from_secs(10)),
        "no tunnel through the name: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // The peer moves; its name follows (same file, rewritten in place: the bind mount shows it).
    // (Deleting a primary address deletes its secondaries unless they are promoted.)
    let promote = format!("net.ipv4.conf.{vp}.promote_secondaries=1");
    p.run(&[
        "sysctl",
        "-qw",
        "net.ipv4.conf.all.promote_secondaries=1",
        &promote,
    ]);
    p.ip(&["addr", "add", "198.18.0.3/24", "dev", &vp]);
    p.ip(&["addr", "del", "198.18.0.1/24", "dev", &vp]);
    std::fs::write(&hosts, "127.0.0.1 localhost\n198.18.0.3 peer.wgd.test\n").unwrap();
    let start = Instant::now();
    let followed = wn.wait_ping("198.19.0.1", Duration::from_secs(20));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(followed, "the tunnel did not follow the name:\n{text}");
    eprintln!("peer moved: traffic again after {:?}", start.elapsed());
    assert!(text.contains("re-resolved: now 198.18.0.3:51820"), "{text}");
    let endpoints =
        String::from_utf8_lossy(&wn.run(&["wg", "show", &iface, "endpoints"]).stdout).into_owned();
    assert!(endpoints.contains("198.18.0.3:51820"), "{endpoints}");
    let _ = std::fs::remove_dir_all(&dir);
}
