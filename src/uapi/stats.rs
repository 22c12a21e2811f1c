//! `wgd-stats=1`: wgd's own request on the UAPI socket, for the counters an operator watches
//! (drops by reason, handshakes, cookies, rate limiting, per device and per peer) while the
//! daemon runs. Stock `wg` never sends it, so what `wg` sees on the socket is unchanged; a
//! wireguard-go socket answers it with an errno (unknown operation).
//!
//! The reply has the shape of a `get` reply: `name=value` lines for the device, then per peer
//! a `public_key=HEX` line and its `name=value` lines, then `errno=0` and a blank line. Every
//! value is an unsigned decimal counter (or, for `latest_handshake_seconds`, Unix seconds).

use crate::crypto::keys::PublicKey;
use crate::proto::Device;
use std::fmt::Write as _;

/// The operation line of the request.
pub const STATS_OP: &[u8] = b"wgd-stats=1";

/// The request as a client sends it.
pub const STATS_REQUEST: &[u8] = b"wgd-stats=1\n\n";

/// Counters read from a running daemon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Device-wide counters, in the daemon's order.
    pub device: Vec<(String, u64)>,
    /// Per peer, in the device's order.
    pub peers: Vec<PeerCounters>,
}

/// One peer's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCounters {
    /// The peer.
    pub public_key: PublicKey,
    /// Its counters, in the daemon's order.
    pub counters: Vec<(String, u64)>,
}

/// Why a stats reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsReplyError {
    /// The daemon answered with an error (e.g. wireguard-go: unknown operation).
    #[error("the daemon refused the request (errno={0}); is it wgd?")]
    Errno(i64),
    /// A line is not `name=value` with a decimal value, or a key is not 64 hex digits.
    #[error("malformed stats line {0}")]
    Malformed(usize),
    /// No `errno=` line.
    #[error("truncated stats reply")]
    Truncated,
}

/// The reply to `wgd-stats=1`: `device` (the daemon's own counters, name and value), then each
/// peer's counters from the core.
pub fn format_stats(dev: &Device, device: &[(&str, u64)]) -> String {
    let mut s = String::with_capacity(64 * device.len() + 256 * dev.peer_ids().count());
    for (name, v) in device {
        let _ = writeln!(s, "{name}={v}");
    }
    for id in dev.peer_ids() {
        let Some(p) = dev.peer(id) else { continue };
        let st = &p.stats;
        let _ = writeln!(s, "public_key={}", p.public_key().to_hex());
        let _ = writeln!(s, "rx_bytes={}", st.rx_bytes);
        let _ = writeln!(s, "tx_bytes={}", st.tx_bytes);
        let hs = st.last_handshake.map_or(0, |d| d.as_secs());
        let _ = writeln!(s, "latest_handshake_seconds={hs}");
        let _ = writeln!(s, "handshake_initiations_sent={}", st.initiations_sent);
        let _ = writeln!(s, "staged_dropped={}", st.staged_dropped);
        let _ = writeln!(s, "replayed={}", st.replayed);
        let _ = writeln!(s, "bad_source={}", st.bad_source);
    }
    s.push_str("errno=0\n\n");
    s
}

/// Parses a [`format_stats`] reply.
pub fn parse_stats_reply(text: &str) -> Result<Stats, StatsReplyError> {
    let mut stats = Stats::default();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once('=').ok_or(StatsReplyError::Malformed(n))?;
        match k {
            "errno" => {
                let e: i64 = v.parse().map_err(|_| StatsReplyError::Malformed(n))?;
                return if e == 0 {
                    Ok(stats)
                } else {
                    Err(StatsReplyError::Errno(e))
                };
            }
            "public_key" => {
                let key = PublicKey::from_hex(v).map_err(|_| StatsReplyError::Malformed(n))?;
                stats.peers.push(PeerCounters {
                    public_key: key,
                    counters: Vec::new(),
                });
            }
            _ => {
                let v: u64 = v.parse().map_err(|_| StatsReplyError::Malformed(n))?;
                match stats.peers.last_mut() {
                    Some(p) => p.counters.push((k.to_string(), v)),
                    None => stats.device.push((k.to_string(), v)),
                }
            }
        }
    }
    Err(StatsReplyError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::PrivateKey;
    use rand_core::OsRng;

    #[test]
    fn a_stats_reply_round_trips_and_errors_are_told_apart() {
        let mut dev = Device::with_os_rng(PrivateKey::generate(&mut OsRng));
        let pk = PrivateKey::generate(&mut OsRng).public_key();
        let id = dev
            .add_peer(pk, crate::crypto::keys::PresharedKey::default())
            .expect("peer");
        if let Some(p) = dev.peer_mut(id) {
            p.stats.replayed = 3;
            p.stats.bad_source = 2;
            p.stats.rx_bytes = 1000;
        }
        let text = format_stats(&dev, &[("rx_dropped", 7), ("tx_no_peer", 1)]);
        let s = parse_stats_reply(&text).expect("parses");
        assert_eq!(
            s.device,
            [("rx_dropped".to_string(), 7), ("tx_no_peer".to_string(), 1)]
        );
        assert_eq!(s.peers.len(), 1);
        assert_eq!(s.peers[0].public_key, pk);
        let get = |k: &str| {
            s.peers[0]
                .counters
                .iter()
                .find(|(n, _)| n == k)
                .map(|c| c.1)
        };
        assert_eq!(get("replayed"), Some(3));
        assert_eq!(get("bad_source"), Some(2));
        assert_eq!(get("rx_bytes"), Some(1000));
        assert_eq!(
            parse_stats_reply("errno=-22\n\n"),
            Err(StatsReplyError::Errno(-22))
        );
        assert_eq!(
            parse_stats_reply("rx_dropped=x\nerrno=0\n\n"),
            Err(StatsReplyError::Malformed(1))
        );
        assert_eq!(
            parse_stats_reply("rx_dropped=1\n"),
            Err(StatsReplyError::Truncated)
        );
    }
}
