//! The steps `wg-quick` runs around a device, in its order: PreUp; addresses and link up;
//! routes per `Table` (with the fwmark and rules of a default route), DNS, PostUp; and on the
//! way down PreDown, SaveConfig, rules and DNS undone, the interface removed, PostDown. wgd
//! runs `ip`, `resolvconf` and `bash` as wg-quick does, so the result is the same as
//! `wg-quick up` gives. [`WgQuick`] sequences them; the daemon only creates the TUN and the
//! sockets in between.

use crate::conf::{AllowedIp, Config, InterfaceConfig};
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
            ip(&["-6", "address", "add", &s, "dev", iface])?;
        } else {
            ip(&["-4", "address", "add", &s, "dev", iface])?;
        }
    }
    Ok(())
}

/// Brings `iface` up (ioctl; no `ip` needed).
pub fn link_up(iface: &str) -> Result<()> {
    crate::daemon::tun::set_up(iface, true).with_context(|| format!("bringing {iface} up"))
}

/// Runs wg-quick hooks (`PreUp`, `PostUp`, `PreDown`, `PostDown`) with `%i` replaced by the
/// interface name, through `bash -c` as wg-quick evaluates them. A failing hook is an error.
pub fn run_hooks(kind: &str, iface: &str, cmds: &[String]) -> Result<()> {
    for c in cmds {
        let cmd = c.replace("%i", iface);
        // wg-quick evaluates hooks in a subshell of its `set -e` script: errexit, so
        // `false; touch X` fails at `false` (and a failed PostUp rolls the interface back).
        // `$INTERFACE` is one of wg-quick's variables hooks use.
        let status = Command::new("bash")
            .arg("-e")
            .arg("-c")
            .arg(&cmd)
            .env("INTERFACE", iface)
            .status()
            .with_context(|| format!("running {kind} hook"))?;
        if !status.success() {
            bail!("{kind} hook `{cmd}` failed ({status})");
        }
    }
    Ok(())
}

/// wg-quick's MTU for a file without `MTU` (`set_mtu_up`): the largest MTU of the routes to
/// `endpoints` (`ip route get`: the route's `mtu`, else its device's), else that of the default
/// route, else 1500; minus 80 (the largest WireGuard overhead, IPv6 outer).
pub(crate) fn auto_mtu(endpoints: &[std::net::IpAddr]) -> u32 {
    let mut mtu = endpoints
        .iter()
        .filter_map(|e| route_mtu(&["route", "get", &e.to_string()]))
        .max()
        .unwrap_or(0);
    if mtu == 0 {
        mtu = route_mtu(&["route", "show", "default"]).unwrap_or(0);
    }
    if mtu == 0 {
        mtu = 1500;
    }
    mtu.saturating_sub(80)
}

/// The MTU in the first line `ip ARGS` prints: its `mtu N`, else the `mtu` of its `dev X`.
fn route_mtu(args: &[&str]) -> Option<u32> {
    let out = Command::new("ip").args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?;
    let after = |key: &str| -> Option<String> {
        let mut words = line.split_whitespace();
        words.find(|w| *w == key)?;
        words.next().map(str::to_string)
    };
    if let Some(m) = after("mtu").and_then(|m| m.parse().ok()) {
        return Some(m);
    }
    let dev = after("dev")?;
    let link = Command::new("ip")
        .args(["link", "show", "dev", &dev])
        .output()
        .ok()?;
    let link = String::from_utf8_lossy(&link.stdout);
    let mut words = link.split_whitespace();
    words.find(|w| *w == "mtu")?;
    words.next()?.parse().ok()
}

/// The first routing table number from 51820 with no IPv4 or IPv6 routes (wg-quick's choice of
/// table and fwmark for a default route).
fn free_table() -> u32 {
    let used = |v: &str, t: u32| {
        Command::new("ip")
            .args([v, "route", "show", "table", &t.to_string()])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false)
    };
    let mut t = 51820;
    while t < 51820 + 1000 && (used("-4", t) || used("-6", t)) {
        t += 1;
    }
    t
}

/// What `wgd up` added for the wg-quick keys, undone by [`WgQuickState::down`].
#[derive(Debug, Default)]
pub struct WgQuickState {
    rules: Vec<Vec<String>>,
    dns_iface: Option<String>,
    /// nftables tables added for a default route (`ip wg-quick-IFACE`, `ip6 ...`).
    nft_tables: Vec<(&'static str, String)>,
}

impl WgQuickState {
    /// Adds routes for every peer's AllowedIPs as wg-quick does for `table`: none for `Off`; into
    /// table N for `Id(N)`; otherwise into the main table unless already routed via the
    /// interface, and a default route (`/0`) through fwmark policy routing (a table of its own,
    /// `not fwmark T lookup T` and `lookup main suppress_prefixlength 0`). Prefixes go longest
    /// first.
    ///
    /// The table of a default route is the device's fwmark when it has one (`FwMark`), as
    /// wg-quick's `get_fwmark` does; otherwise the first free table from 51820, which then
    /// becomes the fwmark: `set_fwmark` is called with it before the rules exist, so the
    /// daemon's own datagrams never take the new table.
    pub fn add_routes(
        &mut self,
        iface: &str,
        table: Option<&crate::conf::Table>,
        fwmark: Option<u32>,
        prefixes: &[AllowedIp],
        set_fwmark: &mut dyn FnMut(u32) -> Result<()>,
    ) -> Result<()> {
        use crate::conf::Table;
        let mut sorted: Vec<AllowedIp> = prefixes.to_vec();
        sorted.sort_by_key(|p| std::cmp::Reverse(p.cidr));
        sorted.dedup();
        let mut mark = None;
        for p in &sorted {
            let s = p.to_string();
            let v = if p.addr.is_ipv6() { "-6" } else { "-4" };
            match table {
                Some(Table::Off) => {}
                Some(Table::Id(t)) => {
                    ip(&[v, "route", "add", &s, "dev", iface, "table", &t.to_string()])?
                }
                _ if p.cidr == 0 => {
                    let t = match (mark, fwmark.filter(|&m| m != 0)) {
                        (Some(t), _) => t,
                        (None, Some(m)) => m,
                        (None, None) => {
                            let t = free_table();
                            set_fwmark(t)?;
                            t
                        }
                    };
                    mark = Some(t);
                    let ts = t.to_string();
                    let not_mark = vec![
                        v.to_string(),
                        "rule".into(),
                        "add".into(),
                        "not".into(),
                        "fwmark".into(),
                        ts.clone(),
                        "table".into(),
                        ts.clone(),
                    ];
                    let suppress = vec![
                        v.to_string(),
                        "rule".into(),
                        "add".into(),
                        "table".into(),
                        "main".into(),
                        "suppress_prefixlength".into(),
                        "0".into(),
                    ];
                    for rule in [not_mark, suppress] {
                        let args: Vec<&str> = rule.iter().map(String::as_str).collect();
                        ip(&args)?;
                        self.rules.push(rule);
                    }
                    ip(&[v, "route", "add", &s, "dev", iface, "table", &ts])?;
                    self.add_nft_rules(iface, p.addr.is_ipv6(), t)?;
                    if !p.addr.is_ipv6() {
                        let _ = std::fs::write("/proc/sys/net/ipv4/conf/all/src_valid_mark", "1");
                    }
                }
                _ => {
                    let out = Command::new("ip")
                        .args([v, "route", "show", "dev", iface, "match", &s])
                        .output()
                        .context("running ip route show")?;
                    if out.stdout.is_empty() {
                        ip(&[v, "route", "add", &s, "dev", iface])?;
                    }
                }
            }
        }
        Ok(())
    }

    /// wg-quick's nftables rules for a default route through `table`, when `nft` is installed:
    /// in table `ip[6] wg-quick-IFACE`, a raw prerouting rule dropping packets to the
    /// interface's addresses that arrive on another interface from a non-local source (so the
    /// tunnel's address cannot be reached by spoofing it from the LAN), and the connmark
    /// save/restore that keeps replies to the daemon's marked UDP out of the tunnel. Removed on
    /// the way down. (wg-quick falls back to iptables-restore without nft; wgd does not.)
    fn add_nft_rules(&mut self, iface: &str, v6: bool, table: u32) -> Result<()> {
        let (family, proto) = if v6 { ("ip6", "-6") } else { ("ip", "-4") };
        let name = format!("wg-quick-{iface}");
        if self
            .nft_tables
            .iter()
            .any(|(f, t)| *f == family && *t == name)
        {
            return Ok(());
        }
        let nft = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("nft").is_file()))
            .unwrap_or(false);
        if !nft {
            tracing::warn!(
                "nft not found: the wg-quick firewall rules for the default route are not added"
            );
            return Ok(());
        }
        let mut cmd = format!(
            "add table {family} {name}\n\
             add chain {family} {name} preraw {{ type filter hook prerouting priority -300; }}\n\
             add chain {family} {name} premangle {{ type filter hook prerouting priority -150; }}\n\
             add chain {family} {name} postmangle {{ type filter hook postrouting priority -150; }}\n"
        );
        let addrs = Command::new("ip")
            .args([proto, "-o", "addr", "show", "dev", iface])
            .output()
            .context("running ip addr show")?;
        for line in String::from_utf8_lossy(&addrs.stdout).lines() {
            let mut words = line.split_whitespace();
            if words.any(|w| w == "inet" || w == "inet6") {
                if let Some(addr) = words.next().and_then(|a| a.split('/').next()) {
                    cmd += &format!(
                        "add rule {family} {name} preraw iifname != \"{iface}\" {family} daddr {addr} fib saddr type != local drop\n"
                    );
                }
            }
        }
        cmd += &format!(
            "add rule {family} {name} postmangle meta l4proto udp mark {table} ct mark set mark \n\
             add rule {family} {name} premangle meta l4proto udp meta mark set ct mark \n"
        );
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("running nft")?;
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin.write_all(cmd.as_bytes()).context("writing to nft")?;
        }
        let status = child.wait().context("waiting for nft")?;
        if !status.success() {
            bail!("nft -f failed ({status}) for:\n{cmd}");
        }
        self.nft_tables.push((family, name));
        Ok(())
    }

    /// Sets DNS servers and search domains through `resolvconf`, as wg-quick does. Without
    /// `resolvconf` on the machine, warns and carries on.
    pub fn set_dns(&mut self, iface: &str, dns: &[String]) -> Result<()> {
        if dns.is_empty() {
            return Ok(());
        }
        let (servers, search): (Vec<&String>, Vec<&String>) =
            dns.iter().partition(|d| is_dns_server(d));
        let mut input = String::new();
        for s in servers {
            input += &format!("nameserver {s}\n");
        }
        if !search.is_empty() {
            let names: Vec<&str> = search.iter().map(|s| s.as_str()).collect();
            input += &format!("search {}\n", names.join(" "));
        }
        let name = format!("{}{iface}", resolvconf_prefix());
        let child = Command::new("resolvconf")
            .args(["-a", &name, "-m", "0", "-x"])
            .stdin(std::process::Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("DNS not set: cannot run resolvconf ({e})");
                return Ok(());
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            stdin
                .write_all(input.as_bytes())
                .context("writing to resolvconf")?;
        }
        let status = child.wait().context("waiting for resolvconf")?;
        if !status.success() {
            bail!("resolvconf -a {name} failed ({status})");
        }
        self.dns_iface = Some(name);
        Ok(())
    }

    /// Undoes the rules and DNS settings (routes through the interface vanish with it).
    pub fn down(&mut self) {
        for (family, table) in self.nft_tables.drain(..).rev() {
            let r = Command::new("nft")
                .args(["delete", "table", family, &table])
                .status();
            if !r.is_ok_and(|s| s.success()) {
                tracing::warn!("nft delete table {family} {table} failed");
            }
        }
        for rule in self.rules.drain(..).rev() {
            let mut args: Vec<&str> = rule.iter().map(String::as_str).collect();
            if let Some(a) = args.get_mut(2) {
                *a = "del";
            }
            if let Err(e) = ip(&args) {
                tracing::warn!("{e:#}");
            }
        }
        if let Some(name) = self.dns_iface.take() {
            let _ = Command::new("resolvconf")
                .args(["-d", &name, "-f"])
                .status();
        }
    }
}

/// wg-quick's interface name prefix for resolvconf: the first line of
/// `/etc/resolvconf/interface-order` that is a name pattern `NAME*` (`^([A-Za-z0-9-]+)\*$`)
/// gives `NAME.` (Debian's file has `tun*`: the tunnel registers as `tun.wg0` and its DNS is
/// ordered above the LAN's); none, or no file: no prefix.
fn resolvconf_prefix() -> String {
    std::fs::read_to_string("/etc/resolvconf/interface-order")
        .map(|s| interface_order_prefix(&s))
        .unwrap_or_default()
}

fn interface_order_prefix(order: &str) -> String {
    order
        .lines()
        .find_map(|l| {
            let name = l.strip_suffix('*')?;
            (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                .then(|| format!("{name}."))
        })
        .unwrap_or_default()
}

/// wg-quick's classification of a `DNS` entry: a server if it is all digits and dots or has a
/// colon (IPv6, scoped ones like `fe80::53%eth0` included), else a search domain.
fn is_dns_server(v: &str) -> bool {
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')) || v.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolvconf_prefix_is_the_first_name_pattern_as_wg_quick_reads_it() {
        let debian = "# interface-order(5)\nlo.inet6\nlo.inet\nlo.@(dnsmasq|pdnsd)\n\
                      lo.!(pdns|pdns-recursor)\nlo\ntun*\ntap*\nhso*\nem+([0-9])?(_+([0-9]))*\n";
        assert_eq!(interface_order_prefix(debian), "tun.");
        assert_eq!(interface_order_prefix("lo\nwg-x*\ntun*\n"), "wg-x.");
        assert_eq!(interface_order_prefix("lo\ntun.*\n*\n"), "");
        assert_eq!(interface_order_prefix(""), "");
    }

    #[test]
    fn dns_entries_are_servers_or_search_domains_as_wg_quick_splits_them() {
        for server in ["198.18.0.53", "2001:db8::53", "fe80::53%eth0", "::1"] {
            assert!(is_dns_server(server), "{server}");
        }
        for domain in ["example.com", "corp", "a1.example", "1.example"] {
            assert!(!is_dns_server(domain), "{domain}");
        }
    }
}

/// The wg-quick steps of one interface, from `PreUp` to `PostDown`.
#[derive(Debug)]
pub(crate) struct WgQuick {
    /// False: every step does nothing (a bare device for `wg-quick` to configure).
    enabled: bool,
    iface: String,
    q: InterfaceConfig,
    state: WgQuickState,
}

impl WgQuick {
    /// `PreUp`, before the interface exists (`%i` is the name it will have). With `enabled`
    /// false, this and every later step do nothing.
    pub(crate) fn pre_up(cfg: &Config, iface: &str, enabled: bool) -> Result<WgQuick> {
        if enabled {
            run_hooks("PreUp", iface, &cfg.interface.pre_up)?;
        }
        Ok(WgQuick {
            enabled,
            iface: iface.to_string(),
            q: cfg.interface.clone(),
            state: WgQuickState::default(),
        })
    }

    /// Once the interface exists as `iface`: `Address`, then the link up (wg-quick's
    /// `set_mtu_up` brings it up with or without addresses).
    pub(crate) fn link(&mut self, iface: &str) -> Result<()> {
        self.iface = iface.to_string();
        if !self.enabled {
            return Ok(());
        }
        add_addresses(iface, &self.q.addresses)?;
        link_up(iface)
    }

    /// Once the sockets exist, in wg-quick's order: DNS, routes for every peer's AllowedIPs per
    /// `Table` (with or without `Address`; a default route without a configured `FwMark` needs
    /// one on the sockets: `set_fwmark` is called with it before its rules exist), `PostUp`. On
    /// failure everything done so far is undone.
    pub(crate) fn up(
        &mut self,
        cfg: &Config,
        set_fwmark: impl FnMut(u32) -> Result<()>,
    ) -> Result<()> {
        let r = self.up_steps(cfg, set_fwmark);
        if r.is_err() {
            self.state.down();
        }
        r
    }

    fn up_steps(
        &mut self,
        cfg: &Config,
        mut set_fwmark: impl FnMut(u32) -> Result<()>,
    ) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        let prefixes: Vec<AllowedIp> = cfg
            .peers
            .iter()
            .flat_map(|p| p.allowed_ips.iter().copied())
            .collect();
        self.state.set_dns(&self.iface, &self.q.dns)?;
        self.state.add_routes(
            &self.iface,
            self.q.table.as_ref(),
            self.q.fwmark,
            &prefixes,
            &mut set_fwmark,
        )?;
        run_hooks("PostUp", &self.iface, &self.q.post_up)
    }

    /// The way down: `PreDown`, then `save` (SaveConfig, if the file asks for it), rules and
    /// DNS undone, `remove` (drops the interface), `PostDown`. Failures are logged: every step
    /// runs.
    pub(crate) fn down(mut self, save: impl FnOnce(), remove: impl FnOnce()) {
        if !self.enabled {
            remove();
            return;
        }
        if let Err(e) = run_hooks("PreDown", &self.iface, &self.q.pre_down) {
            tracing::warn!("{e:#}");
        }
        if self.q.save_config {
            save();
        }
        self.state.down();
        remove();
        if let Err(e) = run_hooks("PostDown", &self.iface, &self.q.post_down) {
            tracing::warn!("{e:#}");
        }
    }

    /// Undoes `up` without the hooks (a start that failed after `up`).
    pub(crate) fn abort(mut self) {
        self.state.down();
    }
}
