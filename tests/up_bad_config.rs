//! `wgd up` on a bad configuration: a message naming file and line, exit status 1, and nothing
//! created (no interface, no UAPI socket).

mod common;

use common::netns::{Netns, privileged_or_skip, unique_iface};
use rand_core::OsRng;
use std::process::Stdio;
use wgd::crypto::keys::PrivateKey;

#[test]
fn bad_configs_fail_cleanly_and_create_nothing() {
    if !privileged_or_skip("bad_configs_fail_cleanly_and_create_nothing") {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_wgd");
    let key = PrivateKey::generate(&mut OsRng).to_base64();
    let peer = PrivateKey::generate(&mut OsRng).public_key();
    let good_peer = format!("[Peer]\nPublicKey = {peer}\nAllowedIPs = 198.19.0.2/32\n");
    let mut long = format!("[Interface]\nPrivateKey = {}\n", key.as_str());
    for i in 0..9_998u32 {
        long += &format!("# comment {i}\n");
    }
    long += "ListenPort = 70000\n"; // line 10,001: out of range
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "bad key",
            format!("[Interface]\nPrivateKey = {}x\n", &key[..43]),
            ":2: PrivateKey",
        ),
        (
            "unknown section",
            format!("[Interface]\nPrivateKey = {}\n[Peers]\n", key.as_str()),
            ":3:",
        ),
        (
            "unknown key",
            format!(
                "[Interface]\nPrivateKey = {}\nListenPorts = 1\n",
                key.as_str()
            ),
            ":3:",
        ),
        (
            "duplicate peer",
            format!(
                "[Interface]\nPrivateKey = {}\n{good_peer}{good_peer}",
                key.as_str()
            ),
            ":7: PublicKey",
        ),
        (
            "port out of range",
            format!(
                "[Interface]\nPrivateKey = {}\nListenPort = 65536\n",
                key.as_str()
            ),
            ":3: ListenPort",
        ),
        ("10,000-line file", long, ":10001: ListenPort"),
    ];
    let ns = Netns::new();
    let dir = std::env::temp_dir().join(format!("wgd-badconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (what, text, want) in cases {
        let iface = unique_iface("wgx");
        let file = dir.join(format!("{iface}.conf"));
        std::fs::write(&file, text).unwrap();
        let out = ns
            .exec_command(&[bin, "up", file.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .expect("run wgd up");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains(&format!("{iface}.conf{want}")),
            "{what}: {err}"
        );
        assert!(
            !err.contains(&key[..20]),
            "{what}: the key must not be echoed: {err}"
        );
        assert!(
            !ns.run_unchecked(&["ip", "link", "show", &iface])
                .status
                .success(),
            "{what}: no interface"
        );
        assert!(
            !std::path::Path::new(&format!("/var/run/wireguard/{iface}.sock")).exists(),
            "{what}: no socket"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
