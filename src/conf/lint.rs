//! The lint: problems worth reporting that do not make a configuration invalid (`wgd check`).

use super::model::Config;
use super::values::AllowedIp;
use std::net::IpAddr;

impl Config {
    /// Problems worth reporting that do not make the configuration invalid (for `wgd check`):
    ///
    /// - the same prefix in the `AllowedIPs` of two peers (the later peer takes it);
    /// - a prefix inside another peer's prefix (longest match decides; often intended, but
    ///   worth seeing);
    /// - the same prefix listed twice for one peer;
    /// - no `PrivateKey`; a peer whose key is the interface's own public key (ignored by
    ///   WireGuard); a peer without `AllowedIPs` (it can neither send nor receive).
    ///
    /// A peer with an `Endpoint` but no `PersistentKeepalive` is normal and not reported.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let own = self.interface.private_key.as_ref().map(|k| k.public_key());
        if own.is_none() {
            w.push("[Interface] has no PrivateKey".to_owned());
        }
        let label = |i: usize| match self.peers.get(i) {
            Some(p) => format!("peer {} ({})", i + 1, p.public_key),
            None => format!("peer {}", i + 1),
        };
        for (i, p) in self.peers.iter().enumerate() {
            if Some(p.public_key) == own {
                w.push(format!(
                    "{} has the interface's own public key; WireGuard ignores such a peer",
                    label(i)
                ));
            }
            if p.allowed_ips.is_empty() {
                w.push(format!(
                    "{} has no AllowedIPs; no traffic can be sent to or received from it",
                    label(i)
                ));
            }
        }

        // Every prefix, as a network, with its peer; sorted so that equal prefixes are adjacent
        // and a prefix comes after every prefix containing it.
        let mut all: Vec<(bool, u128, u8, usize, AllowedIp)> = self
            .peers
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.allowed_ips.iter().map(move |a| (i, a.network())))
            .map(|(i, a)| {
                let (v6, bits) = match a.addr {
                    IpAddr::V4(x) => (false, u128::from(u32::from(x))),
                    IpAddr::V6(x) => (true, u128::from(x)),
                };
                (v6, bits, a.cidr, i, a)
            })
            .collect();
        all.sort_unstable();

        // Innermost-last stack of the distinct prefixes enclosing the current one, with the peer
        // that ends up owning each (the last one listing it: later peers take prefixes over).
        let mut stack: Vec<(AllowedIp, usize)> = Vec::new();
        for group in all.chunk_by(|a, b| a.4 == b.4) {
            let Some(&(_, _, _, first_peer, prefix)) = group.first() else {
                continue;
            };
            let mut peers: Vec<usize> = group.iter().map(|e| e.3).collect();
            // `peers` is sorted: repetitions within one peer are adjacent.
            for run in peers.chunk_by(|a, b| a == b).filter(|r| r.len() > 1) {
                if let Some(&p) = run.first() {
                    w.push(format!(
                        "{} lists AllowedIPs {prefix} {} times",
                        label(p),
                        run.len()
                    ));
                }
            }
            peers.dedup();
            let owner = peers.last().copied().unwrap_or(first_peer);
            if peers.len() > 1 {
                let names: Vec<String> = peers.iter().map(|&p| label(p)).collect();
                w.push(format!(
                    "AllowedIPs {prefix} is in {}; only the last, {}, gets it",
                    names.join(" and "),
                    label(owner)
                ));
            }
            while stack.last().is_some_and(|(p, _)| !p.contains(&prefix)) {
                stack.pop();
            }
            if let Some(&(outer, outer_owner)) = stack.last() {
                if outer_owner != owner {
                    w.push(format!(
                        "AllowedIPs {prefix} of {} lies inside {outer} of {}; the longest \
                         match sends {prefix} to the former",
                        label(owner),
                        label(outer_owner)
                    ));
                }
            }
            stack.push((prefix, owner));
        }
        w
    }
}
