//! Unit tests of `icmp.rs`.

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
        .filter(|ms| l.allow(t0.plus(Duration::from_millis(1) + Duration::from_micros(ms * 1000))))
        .count();
    assert_eq!(second, 1000);
}
