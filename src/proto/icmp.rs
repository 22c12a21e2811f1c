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
mod tests {
    use super::*;

    /// An IPv4 packet from `src` to `dst` with protocol `proto` and `body`.
    fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
        p[6] = 0x40; // DF
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        let sum = checksum(0, &p);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    /// An IPv6 packet from `src` to `dst` with next header `nh` and `body`.
    fn v6(src: Ipv6Addr, dst: Ipv6Addr, nh: u8, body: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
        p[6] = nh;
        p[7] = 64;
        p[8..24].copy_from_slice(&src.octets());
        p[24..40].copy_from_slice(&dst.octets());
        p.extend_from_slice(body);
        p
    }

    const A: [u8; 4] = [198, 19, 0, 1];
    const B: [u8; 4] = [198, 19, 0, 9];

    #[test]
    fn v4_host_unreachable_is_well_formed() {
        let echo = [8u8, 0, 0, 0, 0, 1, 0, 1, 42, 42];
        let pkt = v4(A, B, 1, &echo);
        let mut out = [0u8; MAX_LEN];
        let n = build(&pkt, Reason::NoPeer, &mut out).unwrap();
        let r = &out[..n];
        assert_eq!(n, 28 + pkt.len());
        assert_eq!(r[0], 0x45);
        assert_eq!(u16::from_be_bytes([r[2], r[3]]) as usize, n);
        assert_eq!(r[9], 1);
        // From the unreachable destination back to the sender.
        assert_eq!(&r[12..16], &B);
        assert_eq!(&r[16..20], &A);
        assert_eq!(checksum(0, &r[..20]), 0, "IP header checksum");
        assert_eq!((r[20], r[21]), (3, 1), "destination unreachable, host");
        assert_eq!(checksum(0, &r[20..]), 0, "ICMP checksum");
        assert_eq!(&r[28..], &pkt[..], "the whole packet is quoted");
    }

    #[test]
    fn v4_fragmentation_needed_carries_the_mtu_and_quotes_at_most_576() {
        let pkt = v4(A, B, 6, &[7u8; 65000]);
        let mut out = [0u8; MAX_LEN];
        let n = build(&pkt, Reason::TooBig { mtu: 65472 }, &mut out).unwrap();
        assert_eq!(n, 576);
        assert_eq!((out[20], out[21]), (3, 4));
        assert_eq!(u16::from_be_bytes([out[26], out[27]]), 65472);
        assert_eq!(checksum(0, &out[20..n]), 0);
        assert_eq!(&out[28..n], &pkt[..548]);
    }

    #[test]
    fn v6_address_unreachable_and_packet_too_big() {
        let a: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1::9".parse().unwrap();
        let pkt = v6(a, b, 17, &[1u8; 3000]);
        for (reason, typ, code, word) in [
            (Reason::NoPeer, 1, 3, 0u32),
            (Reason::TooBig { mtu: 65488 }, 2, 0, 65488),
        ] {
            let mut out = [0u8; MAX_LEN];
            let n = build(&pkt, reason, &mut out).unwrap();
            assert_eq!(n, MAX_LEN, "quoted up to the IPv6 minimum MTU");
            assert_eq!(out[6], 58);
            assert_eq!(usize::from(u16::from_be_bytes([out[4], out[5]])), n - 40);
            assert_eq!(&out[8..24], &b.octets());
            assert_eq!(&out[24..40], &a.octets());
            assert_eq!((out[40], out[41]), (typ, code));
            assert_eq!(
                u32::from_be_bytes([out[44], out[45], out[46], out[47]]),
                word
            );
            let mut pseudo = [0u8; 40];
            pseudo[..32].copy_from_slice(&out[8..40]);
            pseudo[34..36].copy_from_slice(&((n - 40) as u16).to_be_bytes());
            pseudo[39] = 58;
            assert_eq!(
                checksum(sum_words(0, &pseudo), &out[40..n]),
                0,
                "ICMPv6 checksum"
            );
            assert_eq!(&out[48..n], &pkt[..n - 48]);
        }
    }

    #[test]
    fn never_answers_errors_fragments_or_non_unicast() {
        let mut out = [0u8; MAX_LEN];
        // An ICMP error (destination unreachable) gets nothing; an echo request does.
        assert!(
            build(
                &v4(A, B, 1, &[3, 1, 0, 0, 0, 0, 0, 0]),
                Reason::NoPeer,
                &mut out
            )
            .is_none()
        );
        assert!(
            build(
                &v4(A, B, 1, &[8, 0, 0, 0, 0, 0, 0, 0]),
                Reason::NoPeer,
                &mut out
            )
            .is_some()
        );
        // A later fragment.
        let mut frag = v4(A, B, 17, &[0; 16]);
        frag[7] = 1;
        assert!(build(&frag, Reason::NoPeer, &mut out).is_none());
        // Multicast and broadcast destinations, unspecified source.
        assert!(
            build(
                &v4(A, [224, 0, 0, 1], 17, &[0; 8]),
                Reason::NoPeer,
                &mut out
            )
            .is_none()
        );
        assert!(build(&v4(A, [255; 4], 17, &[0; 8]), Reason::NoPeer, &mut out).is_none());
        assert!(build(&v4([0; 4], B, 17, &[0; 8]), Reason::NoPeer, &mut out).is_none());
        let a: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1::9".parse().unwrap();
        assert!(
            build(
                &v6(a, b, 58, &[1, 3, 0, 0, 0, 0, 0, 0]),
                Reason::NoPeer,
                &mut out
            )
            .is_none()
        );
        assert!(
            build(
                &v6(a, b, 58, &[128, 0, 0, 0, 0, 0, 0, 0]),
                Reason::NoPeer,
                &mut out
            )
            .is_some()
        );
        assert!(
            build(
                &v6(a, "ff02::1".parse().unwrap(), 17, &[0; 8]),
                Reason::NoPeer,
                &mut out
            )
            .is_none()
        );
        assert!(
            build(
                &v6(a, b, 44, &[17, 0, 0, 8, 0, 0, 0, 1]),
                Reason::NoPeer,
                &mut out
            )
            .is_none()
        );
        assert!(
            build(
                &v6(a, b, 44, &[17, 0, 0, 0, 0, 0, 0, 1]),
                Reason::NoPeer,
                &mut out
            )
            .is_some()
        );
    }

    #[test]
    fn malformed_input_gets_nothing_and_never_panics() {
        let mut out = [0u8; MAX_LEN];
        let good = v4(A, B, 17, &[0; 40]);
        for len in 0..good.len() {
            // Truncated: the stated length is more than there is.
            assert!(
                build(&good[..len], Reason::NoPeer, &mut out).is_none(),
                "length {len}"
            );
        }
        for first in 0..=255u8 {
            let mut p = good.clone();
            p[0] = first;
            let _ = build(&p, Reason::NoPeer, &mut out);
        }
        let mut small = [0u8; 40];
        assert!(
            build(&good, Reason::NoPeer, &mut small).is_none(),
            "no room"
        );
    }

    #[test]
    fn limiter_allows_a_burst_then_the_rate() {
        let mut l = Limiter::default();
        let t0 = Instant::from_nanos(1_000_000_000);
        let burst = (0..100).filter(|_| l.allow(t0)).count();
        assert_eq!(burst, BURST as usize);
        // One token per millisecond afterwards.
        assert!(l.allow(t0.plus(Duration::from_millis(1))));
        assert!(!l.allow(t0.plus(Duration::from_millis(1))));
        let second = (1..=1000u64)
            .filter(|ms| {
                l.allow(t0.plus(Duration::from_millis(1) + Duration::from_micros(ms * 1000)))
            })
            .count();
        assert_eq!(second, 1000);
    }
}
