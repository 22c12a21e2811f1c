//! Interface configuration that wg-quick does with `ip`: addresses and link state. (Routes,
//! `Table`, DNS and hooks follow in the operator-facing work.) wgd runs `ip` as wg-quick does,
//! so the result is the same as `wg-quick up` gives.

use crate::config::AllowedIp;
use anyhow::{Context, Result, bail};
use std::process::Command;

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("running ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Adds `addresses` (with their prefix lengths, host bits kept) to `iface`, as `wg-quick`'s
/// `ip -4|-6 address add ADDR dev IFACE`.
pub fn add_addresses(iface: &str, addresses: &[AllowedIp]) -> Result<()> {
    for a in addresses {
        let s = a.to_string();
        if a.addr.is_ipv6() {
            ip(&["-6", "address", "add", &s, "dev", iface, "nodad"])?;
        } else {
            ip(&["-4", "address", "add", &s, "dev", iface])?;
        }
    }
    Ok(())
}

/// Brings `iface` up (ioctl; no `ip` needed).
pub fn link_up(iface: &str) -> Result<()> {
    crate::tun::set_up(iface, true).with_context(|| format!("bringing {iface} up"))
}
