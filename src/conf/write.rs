//! The writers: a [`Config`] as `wg(8)` text (what `wg showconf` prints) and as `wg-quick(8)`
//! text (what `wg-quick save` writes).

use super::model::Config;
use super::values::AllowedIp;
use std::fmt::Write as _;

impl Config {
    /// The configuration in `wg(8)` format, as `wg showconf` prints it: `[Interface]` with
    /// `ListenPort`, `FwMark`, `PrivateKey`, then each `[Peer]` with `PublicKey`,
    /// `PresharedKey`, `AllowedIPs`, `Endpoint`, `PersistentKeepalive`. The wg-quick keys are
    /// left out. The text contains the secret keys.
    pub fn to_wg_string(&self) -> String {
        let mut s = String::from("[Interface]\n");
        self.write_wg_interface(&mut s);
        self.write_peers(&mut s);
        s
    }

    /// The configuration in `wg-quick(8)` format: the wg-quick keys (in the order `wg-quick
    /// save` writes them) before the `wg` keys. The text contains the secret keys.
    pub fn to_wg_quick_string(&self) -> String {
        let i = &self.interface;
        let mut s = String::from("[Interface]\n");
        if !i.addresses.is_empty() {
            let _ = writeln!(s, "Address = {}", join(&i.addresses));
        }
        if !i.dns.is_empty() {
            let _ = writeln!(s, "DNS = {}", i.dns.join(", "));
        }
        if let Some(mtu) = i.mtu {
            let _ = writeln!(s, "MTU = {mtu}");
        }
        if let Some(table) = i.table {
            let _ = writeln!(s, "Table = {table}");
        }
        for (key, cmds) in [
            ("PreUp", &i.pre_up),
            ("PostUp", &i.post_up),
            ("PreDown", &i.pre_down),
            ("PostDown", &i.post_down),
        ] {
            for cmd in cmds {
                let _ = writeln!(s, "{key} = {cmd}");
            }
        }
        if i.save_config {
            s.push_str("SaveConfig = true\n");
        }
        self.write_wg_interface(&mut s);
        self.write_peers(&mut s);
        s
    }

    fn write_wg_interface(&self, s: &mut String) {
        let i = &self.interface;
        if let Some(port) = i.listen_port.filter(|&p| p != 0) {
            let _ = writeln!(s, "ListenPort = {port}");
        }
        if let Some(mark) = i.fwmark.filter(|&m| m != 0) {
            let _ = writeln!(s, "FwMark = 0x{mark:x}");
        }
        if let Some(k) = &i.private_key {
            s.push_str("PrivateKey = ");
            s.push_str(&k.to_base64());
            s.push('\n');
        }
    }

    fn write_peers(&self, s: &mut String) {
        for p in &self.peers {
            let _ = write!(s, "\n[Peer]\nPublicKey = {}\n", p.public_key);
            if let Some(psk) = &p.preshared_key {
                s.push_str("PresharedKey = ");
                s.push_str(&psk.to_base64());
                s.push('\n');
            }
            if !p.allowed_ips.is_empty() {
                let _ = writeln!(s, "AllowedIPs = {}", join(&p.allowed_ips));
            }
            if let Some(e) = &p.endpoint {
                let _ = writeln!(s, "Endpoint = {e}");
            }
            if let Some(k) = p.persistent_keepalive.filter(|&k| k != 0) {
                let _ = writeln!(s, "PersistentKeepalive = {k}");
            }
        }
    }
}

fn join(ips: &[AllowedIp]) -> String {
    let mut s = String::new();
    for (i, a) in ips.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{a}");
    }
    s
}
