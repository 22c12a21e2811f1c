//! Unit tests of `cookie.rs`.

use super::*;
use crate::crypto::keys::PrivateKey;
use crate::proto::messages::Initiation;
use rand_core::OsRng;
use std::time::Duration;

fn msg() -> [u8; 148] {
    Initiation {
        sender: 42,
        ephemeral: [1; 32],
        encrypted_static: [2; 48],
        encrypted_timestamp: [3; 28],
        mac1: [0; 16],
        mac2: [0; 16],
    }
    .to_bytes()
}

fn setup() -> (CookieChecker, CookieJar) {
    let responder = PrivateKey::generate(&mut OsRng).public_key();
    (CookieChecker::new(&responder), CookieJar::new(&responder))
}

const SRC: &str = "198.18.0.2:51820";

#[test]
fn mac1_checked_always_mac2_only_under_load() {
    let (mut checker, mut jar) = setup();
    let src: SocketAddr = SRC.parse().unwrap();
    let t = Instant::from_nanos(1);
    let mut m = msg();
    jar.add_macs(t, &mut m, Initiation::MAC1_OFFSET);
    assert_eq!(m[132..], [0u8; 16], "no cookie: mac2 is zero");
    assert_eq!(
        checker.check(t, &mut OsRng, &m, 116, src, false),
        MacCheck::ValidMac1
    );
    assert_eq!(
        checker.check(t, &mut OsRng, &m, 116, src, true),
        MacCheck::ValidMac1
    );
    let mut bad = m;
    bad[20] ^= 1;
    assert_eq!(
        checker.check(t, &mut OsRng, &bad, 116, src, false),
        MacCheck::Invalid
    );
    let mut badmac = m;
    badmac[116] ^= 1;
    assert_eq!(
        checker.check(t, &mut OsRng, &badmac, 116, src, true),
        MacCheck::Invalid
    );
    // MAC1 for another responder's key fails.
    let mut other = CookieJar::new(&PrivateKey::generate(&mut OsRng).public_key());
    let mut m2 = msg();
    other.add_macs(t, &mut m2, 116);
    assert_eq!(
        checker.check(t, &mut OsRng, &m2, 116, src, false),
        MacCheck::Invalid
    );
    assert_eq!(
        checker.check(t, &mut OsRng, &m[..100], 116, src, false),
        MacCheck::Invalid
    );
}

#[test]
fn cookie_round_trip() {
    let (mut checker, mut jar) = setup();
    let src: SocketAddr = SRC.parse().unwrap();
    let t0 = Instant::from_nanos(1_000);
    let mut m = msg();
    jar.add_macs(t0, &mut m, 116);
    let reply = checker
        .make_reply(t0, &mut OsRng, &m, 116, 42, src)
        .unwrap();
    assert_eq!(reply.receiver, 42);
    assert_eq!(reply.to_bytes().len(), 64);
    jar.consume_reply(t0, &reply).unwrap();
    // Once per MAC1: the same reply again is unexpected.
    assert_eq!(jar.consume_reply(t0, &reply), Err(CookieError::Unexpected));
    let t1 = t0.plus(Duration::from_secs(1));
    let mut m2 = msg();
    jar.add_macs(t1, &mut m2, 116);
    assert_ne!(m2[132..], [0u8; 16]);
    assert_eq!(
        checker.check(t1, &mut OsRng, &m2, 116, src, true),
        MacCheck::ValidWithCookie
    );
    // The cookie is bound to the source address and port.
    let other: SocketAddr = "198.18.0.3:51820".parse().unwrap();
    assert_eq!(
        checker.check(t1, &mut OsRng, &m2, 116, other, true),
        MacCheck::ValidMac1
    );
    let other_port: SocketAddr = "198.18.0.2:51821".parse().unwrap();
    assert_eq!(
        checker.check(t1, &mut OsRng, &m2, 116, other_port, true),
        MacCheck::ValidMac1
    );
}

#[test]
fn reply_bound_to_last_mac1() {
    let (mut checker, mut jar) = setup();
    let src: SocketAddr = SRC.parse().unwrap();
    let t = Instant::from_nanos(5);
    let mut first = msg();
    jar.add_macs(t, &mut first, 116);
    let reply = checker
        .make_reply(t, &mut OsRng, &first, 116, 42, src)
        .unwrap();
    let mut second = msg();
    second[10] = 99;
    jar.add_macs(t, &mut second, 116);
    assert_eq!(jar.consume_reply(t, &reply), Err(CookieError::Auth));
    let mut tampered = checker
        .make_reply(t, &mut OsRng, &second, 116, 42, src)
        .unwrap();
    tampered.encrypted_cookie[0] ^= 1;
    assert_eq!(jar.consume_reply(t, &tampered), Err(CookieError::Auth));
    // Nothing sent yet: unexpected.
    let (_, mut fresh) = setup();
    assert_eq!(fresh.consume_reply(t, &reply), Err(CookieError::Unexpected));
}

#[test]
fn cookie_expires_after_115s_and_secret_rotates_after_120s() {
    let (mut checker, mut jar) = setup();
    let src: SocketAddr = SRC.parse().unwrap();
    let t0 = Instant::from_nanos(1);
    let mut m = msg();
    jar.add_macs(t0, &mut m, 116);
    let reply = checker.make_reply(t0, &mut OsRng, &m, 116, 1, src).unwrap();
    jar.consume_reply(t0, &reply).unwrap();
    assert!(jar.has_fresh_cookie(t0.plus(Duration::from_secs(114))));
    assert!(!jar.has_fresh_cookie(t0.plus(Duration::from_secs(115))));
    let mut late = msg();
    jar.add_macs(t0.plus(Duration::from_secs(115)), &mut late, 116);
    assert_eq!(late[132..], [0u8; 16]);
    // The responder's secret rotates at 120 s: an old cookie stops working.
    let t_ok = t0.plus(Duration::from_secs(100));
    let mut m3 = msg();
    jar.add_macs(t_ok, &mut m3, 116);
    assert_eq!(
        checker.check(t_ok, &mut OsRng, &m3, 116, src, true),
        MacCheck::ValidWithCookie
    );
    let t_rot = t0.plus(Duration::from_secs(120));
    assert_eq!(
        checker.check(t_rot, &mut OsRng, &m3, 116, src, true),
        MacCheck::ValidMac1
    );
}

#[test]
fn debug_redacts() {
    let (checker, jar) = setup();
    assert_eq!(format!("{checker:?}"), "CookieChecker(<redacted>)");
    assert!(!format!("{jar:?}").contains('['));
}
