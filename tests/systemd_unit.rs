//! The shipped unit (`configs/wgd@.service`) lets every feature of `wgd up` write where it
//! writes, and nowhere else (issue #13 item 5), and `systemd-analyze verify` accepts it.

use std::path::Path;

const UNIT: &str = include_str!("../configs/wgd@.service");

/// Every path of the unit's `ReadWritePaths=` lines, with a leading `-` (optional) removed.
fn writable() -> Vec<String> {
    UNIT.lines()
        .filter_map(|l| l.trim().strip_prefix("ReadWritePaths="))
        .flat_map(|v| v.split_whitespace())
        .map(|p| p.trim_start_matches('-').to_string())
        .collect()
}

fn setting(key: &str) -> Option<String> {
    UNIT.lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .next_back()
}

#[test]
fn every_feature_may_write_where_it_writes() {
    let rw = writable();
    let covered = |p: &str| rw.iter().any(|w| p == w || p.starts_with(&format!("{w}/")));
    // The configuration the unit runs, from its ExecStart: SaveConfig writes a temporary file
    // beside it and renames it over it, so its directory must be writable.
    let exec = setting("ExecStart").expect("ExecStart");
    let conf = exec
        .split_whitespace()
        .find(|a| a.ends_with(".conf"))
        .expect("a .conf argument");
    let conf_dir = Path::new(conf)
        .parent()
        .expect("a directory")
        .to_str()
        .unwrap();
    for (feature, path) in [
        ("the UAPI socket", "/run/wireguard/wg0.sock"),
        ("SaveConfig", conf_dir),
        (
            "DNS through Debian's resolvconf",
            "/run/resolvconf/interface/wg0",
        ),
        ("DNS through openresolv", "/etc/resolv.conf"),
        (
            "a default route's src_valid_mark",
            "/proc/sys/net/ipv4/conf/all/src_valid_mark",
        ),
    ] {
        assert!(
            covered(path),
            "{feature} writes {path}, not writable under the unit: {rw:?}"
        );
    }
    // Nothing broader than those: no whole /etc, /proc/sys, /var or /.
    for too_wide in ["/", "/etc", "/proc", "/proc/sys", "/var", "/run", "/usr"] {
        assert!(
            !rw.iter().any(|w| w == too_wide),
            "{too_wide} is writable: {rw:?}"
        );
    }
    assert_eq!(setting("ProtectSystem").as_deref(), Some("strict"));
    assert_eq!(setting("ProtectKernelTunables").as_deref(), Some("yes"));
    assert_eq!(setting("Type").as_deref(), Some("notify"));
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Some(analyze) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        if std::env::var("CI").as_deref() == Ok("true") {
            eprintln!(
                "systemd_analyze_verify_accepts_the_unit: SKIPPED: no systemd-analyze (not part of the CI image)"
            );
        } else {
            eprintln!("systemd_analyze_verify_accepts_the_unit: SKIPPED: no systemd-analyze");
        }
        return;
    };
    // An instance of the template, with ExecStart pointing at the binary under test (verify
    // checks that the program exists).
    let dir = std::env::temp_dir().join(format!("wgd-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("wgd@wg0.service");
    std::fs::write(
        &unit,
        UNIT.replace("/usr/local/bin/wgd", env!("CARGO_BIN_EXE_wgd")),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed: {err}");
    // It warns (exit 0) about settings it cannot parse: none may remain.
    assert!(
        err.trim().is_empty(),
        "systemd-analyze verify warned: {err}"
    );
}
