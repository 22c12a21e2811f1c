//! The daemon's protocol clock is CLOCK_BOOTTIME (issue #10, item 2): key and handshake ages
//! count the time a machine spends suspended, as the kernel's do.
//!
//! A machine that never slept has CLOCK_BOOTTIME == CLOCK_MONOTONIC, so reading both proves
//! nothing. This test re-runs itself in a new time namespace whose boot clock is a day ahead of
//! its monotonic clock (`unshare --time --boottime 86400`, Linux >= 5.6): there the daemon's
//! clock must read the day, `std::time::Instant` would not. Needs root (CI runs it).

mod common;

use std::process::Command;
use std::time::Duration;

const OFFSET: Duration = Duration::from_secs(86_400);
const CHILD: &str = "WGDT_CLOCK_CHILD";

#[test]
fn the_daemon_clock_reads_boot_time() {
    if std::env::var_os(CHILD).is_some() {
        // In the time namespace: boot time runs a day ahead of monotonic time.
        let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
        let boot = wgd::daemon::boot_time();
        let ahead = boot.saturating_sub(Duration::from(mono));
        assert!(
            ahead >= OFFSET && ahead < OFFSET + Duration::from_secs(60),
            "the daemon clock is {ahead:?} ahead of CLOCK_MONOTONIC, expected the namespace's {OFFSET:?}"
        );
        // And the protocol's Now is taken from it.
        let clock = wgd::daemon::Clock::start();
        std::thread::sleep(Duration::from_millis(20));
        let elapsed = Duration::from_nanos(clock.now().mono.as_nanos());
        assert!(elapsed >= Duration::from_millis(20) && elapsed < Duration::from_secs(5));
        println!("clock-child-ok");
        return;
    }
    if !common::netns::privileged_or_skip_with("the_daemon_clock_reads_boot_time", &["unshare"]) {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--time", "--boottime", &OFFSET.as_secs().to_string(), "--"])
        .arg(&exe)
        .args(["--exact", "the_daemon_clock_reads_boot_time", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .expect("run unshare");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("clock-child-ok"),
        "in a time namespace with boot time a day ahead:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
