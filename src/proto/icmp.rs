//! ICMP errors answering inner packets the device cannot carry, as the kernel's `wg_xmit`
//! answers them (`icmp_ndo_send`/`icmpv6_ndo_send`): host unreachable (IPv4) or address
//! unreachable (IPv6) when no peer's AllowedIPs covers the destination, so applications fail at
//! once instead of timing out; and, beyond the kernel, "fragmentation needed"/"packet too big"
//! when an inner packet is too large for any outer UDP datagram (tunnel MTUs above 65,472 over
//! IPv4, 65,488 over IPv6), so the sender's path MTU shrinks to what the tunnel carries.
//!
//! Pure code: a packet in, an ICMP packet out (to be written to the TUN), and a token bucket on
//! the injected clock. The error's source is the original packet's destination: a packet the
//! daemon writes to the TUN is *received* by the host, and one whose source is a local address
//! would be dropped as a martian, while the original destination routes back through the
//! tunnel and passes reverse-path filtering.

use crate::proto::time::Instant;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Largest ICMP error built: IPv6's minimum MTU (RFC 4443 2.4(c)); IPv4 quotes up to 576 bytes
/// in all (RFC 1812 4.3.2.3), as Linux does.
pub const MAX_LEN: usize = 1280;
const V4_MAX_LEN: usize = 576;
const TTL: u8 = 64;

/// Why the packet could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No peer's AllowedIPs covers the destination.
    NoPeer,
    /// The packet is larger than `mtu`, the most the tunnel carries to that peer.
    TooBig {
        /// The largest inner packet that fits.
        mtu: u32,
    },
}

/// Builds in `out` the ICMP error answering the inner packet `pkt` for `reason`; returns its
/// length, or `None` where no error may be sent (RFC 1122 3.2.2, RFC 4443 2.4(e)): `pkt` is not
/// a whole IP packet, is itself an ICMP error, is a fragment other than the first, or has a
/// source or destination that is not unicast.
pub fn build(pkt: &[u8], reason: Reason, out: &mut [u8]) -> Option<usize> {
    match pkt.first()? >> 4 {
        4 => build_v4(pkt, reason, out),
        6 => build_v6(pkt, reason, out),
        _ => None,
    }
}

fn build_v4(pkt: &[u8], reason: Reason, out: &mut [u8]) -> Option<usize> {
    let ihl = usize::from(pkt.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*pkt.get(2)?, *pkt.get(3)?]));
    if ihl < 20 || total < ihl || pkt.len() < total {
        return None;
    }
    let frag_offset = u16::from_be_bytes([*pkt.get(6)?, *pkt.get(7)?]) & 0x1fff;
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(pkt.get(12..16)?).ok()?);
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(pkt.get(16..20)?).ok()?);
    let unicast = |a: Ipv4Addr| !(a.is_unspecified() || a.is_multicast() || a.is_broadcast());
    if frag_offset != 0 || !unicast(src) || !unicast(dst) {
        return None;
    }
    // ICMP protocol: answer only queries (echo...), never errors (types 3, 4, 5, 11, 12).
    if *pkt.get(9)? == 1 && matches!(pkt.get(ihl), None | Some(3 | 4 | 5 | 11 | 12)) {
        return None;
    }
    let (code, mtu) = match reason {
        Reason::NoPeer => (1u8, 0u16),
        Reason::TooBig { mtu } => (4, u16::try_from(mtu).unwrap_or(u16::MAX)),
    };
    let quote = total.min(V4_MAX_LEN - 28);
    let len = 28 + quote;
    let out = out.get_mut(..len)?;
    out.fill(0);
    let (ip, icmp) = out.split_at_mut(20);
    put(ip, 0, &[0x45])?;
    put(ip, 2, &u16::try_from(len).ok()?.to_be_bytes())?;
    put(ip, 8, &[TTL])?;
    put(ip, 9, &[1])?;
    put(ip, 12, &dst.octets())?;
    put(ip, 16, &src.octets())?;
    let sum = checksum(0, ip);
    put(ip, 10, &sum.to_be_bytes())?;
    put(icmp, 0, &[3])?;
    put(icmp, 1, &[code])?;
    put(icmp, 6, &mtu.to_be_bytes())?;
    put(icmp, 8, pkt.get(..quote)?)?;
    let sum = checksum(0, icmp);
    put(icmp, 2, &sum.to_be_bytes())?;
    Some(len)
}

fn build_v6(pkt: &[u8], reason: Reason, out: &mut [u8]) -> Option<usize> {
    let payload = usize::from(u16::from_be_bytes([*pkt.get(4)?, *pkt.get(5)?]));
    if pkt.len() < 40 + payload {
        return None;
    }
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(pkt.get(8..24)?).ok()?);
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(pkt.get(24..40)?).ok()?);
    if src.is_unspecified() || src.is_multicast() || dst.is_unspecified() || dst.is_multicast() {
        return None;
    }
    match *pkt.get(6)? {
        // ICMPv6 errors have types below 128.
        58 if pkt.get(40).is_none_or(|&t| t < 128) => return None,
        // A fragment header: only the first fragment is answered.
        44 if pkt.get(42..44).is_none_or(
            |o| !matches!(*o, [hi, lo] if u16::from_be_bytes([hi, lo]) & 0xfff8 == 0),
        ) =>
        {
            return None;
        }
        _ => {}
    }
    let (typ, code, word) = match reason {
        Reason::NoPeer => (1u8, 3u8, 0u32),
        Reason::TooBig { mtu } => (2, 0, mtu),
    };
    let quote = (40 + payload).min(MAX_LEN - 48);
    let len = 48 + quote;
    let icmp_len = u16::try_from(8 + quote).ok()?;
    let out = out.get_mut(..len)?;
    out.fill(0);
    let (ip, icmp) = out.split_at_mut(40);
    put(ip, 0, &[0x60])?;
    put(ip, 4, &icmp_len.to_be_bytes())?;
    put(ip, 6, &[58])?;
    put(ip, 7, &[TTL])?;
    put(ip, 8, &dst.octets())?;
    put(ip, 24, &src.octets())?;
    put(icmp, 0, &[typ])?;
    put(icmp, 1, &[code])?;
    put(icmp, 4, &word.to_be_bytes())?;
    put(icmp, 8, pkt.get(..quote)?)?;
    // The pseudo-header: source, destination, upper-layer length, next header.
    let mut pseudo = [0u8; 40];
    put(&mut pseudo, 0, ip.get(8..40)?)?;
    put(&mut pseudo, 34, &icmp_len.to_be_bytes())?;
    put(&mut pseudo, 39, &[58])?;
    let sum = checksum(sum_words(0, &pseudo), icmp);
    put(icmp, 2, &sum.to_be_bytes())?;
    Some(len)
}

/// Copies `bytes` into `buf` at offset `at`; `None` if they do not fit.
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> Option<()> {
    buf.get_mut(at..at.checked_add(bytes.len())?)?
        .copy_from_slice(bytes);
    Some(())
}

/// One's-complement sum of `data` as big-endian 16-bit words, added to `acc`.
fn sum_words(mut acc: u32, data: &[u8]) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        if let [hi, lo] = *w {
            acc += u32::from(u16::from_be_bytes([hi, lo]));
        }
    }
    if let [last] = words.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// The Internet checksum (RFC 1071) of `data`, starting from the partial sum `acc`.
fn checksum(acc: u32, data: &[u8]) -> u16 {
    let mut sum = sum_words(acc, data);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Token bucket for ICMP errors, the kernel's global ICMP limit (`icmp_msgs_per_sec` 1000,
/// `icmp_msgs_burst` 50): a flood of unroutable packets costs at most that many replies.
#[derive(Debug)]
pub struct Limiter {
    tokens: u32,
    last: Instant,
}

/// Errors per second at most.
pub const RATE_PER_SEC: u32 = 1000;
/// Errors allowed in one burst.
pub const BURST: u32 = 50;

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            tokens: BURST,
            last: Instant::ZERO,
        }
    }
}

impl Limiter {
    /// True if an error may be sent at `now` (and takes its token).
    pub fn allow(&mut self, now: Instant) -> bool {
        let per_token = Duration::from_secs(1) / RATE_PER_SEC;
        let earned = now.since(self.last).as_nanos() / per_token.as_nanos();
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(earned).min(BURST);
            self.last = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests;
