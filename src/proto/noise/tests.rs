//! Unit tests of `noise.rs`.

use super::*;
use rand_core::OsRng;

fn now(secs: u64) -> Now {
    Now::simulated(
        Duration::from_secs(secs),
        Duration::from_secs(1_700_000_000),
    )
}

struct Pair {
    a: PrivateKey,
    b: PrivateKey,
    ha: Handshake,
    hb: Handshake,
}

fn pair(psk: PresharedKey) -> Pair {
    let a = PrivateKey::generate(&mut OsRng);
    let b = PrivateKey::generate(&mut OsRng);
    let ha = Handshake::new(&a, b.public_key(), psk.clone());
    let hb = Handshake::new(&b, a.public_key(), psk);
    Pair { a, b, ha, hb }
}

fn run(p: &mut Pair, t: Now) -> Result<(SessionKeys, SessionKeys), HandshakeError> {
    let init = p.ha.create_initiation(&p.a, t, &mut OsRng, 111)?;
    let start = start_consume_initiation(&p.b, &init)?;
    assert_eq!(start.initiator_static, p.a.public_key());
    p.hb.finish_consume_initiation(start, t)?;
    let resp = p.hb.create_response(&mut OsRng, 222)?;
    let kb = p.hb.begin_session()?;
    p.ha.consume_response(&p.a, &resp)?;
    let ka = p.ha.begin_session()?;
    Ok((ka, kb))
}

#[test]
fn initial_constants_match_published_values() {
    // Published precomputed values (e.g. in the WireGuard whitepaper's reference code):
    // HASH(CONSTRUCTION) and HASH(HASH(CONSTRUCTION) || IDENTIFIER).
    let ck = crypto::hash(&[CONSTRUCTION]);
    assert_eq!(
        ck,
        [
            96, 226, 109, 174, 243, 39, 239, 192, 46, 195, 53, 226, 160, 37, 210, 208, 22, 235, 66,
            6, 248, 114, 119, 245, 45, 56, 209, 152, 139, 120, 205, 54
        ]
    );
    let h = crypto::hash(&[&ck, IDENTIFIER]);
    assert_eq!(
        h,
        [
            34, 17, 179, 97, 8, 26, 197, 102, 105, 18, 67, 219, 69, 138, 213, 50, 45, 156, 108,
            102, 34, 147, 232, 183, 14, 225, 156, 101, 186, 7, 158, 243
        ]
    );
}

#[test]
fn handshake_without_and_with_psk() {
    for psk in [PresharedKey::default(), PresharedKey::generate(&mut OsRng)] {
        let mut p = pair(psk);
        let (ka, kb) = run(&mut p, now(10)).unwrap();
        assert_eq!(*ka.send, *kb.recv);
        assert_eq!(*ka.recv, *kb.send);
        assert_ne!(*ka.send, *ka.recv);
        assert!(ka.initiator && !kb.initiator);
        assert_eq!((ka.local_index, ka.remote_index), (111, 222));
        assert_eq!((kb.local_index, kb.remote_index), (222, 111));
        assert_eq!(p.ha.state_name(), "zeroed");
        assert_eq!(p.hb.state_name(), "zeroed");
    }
}

#[test]
fn psk_mismatch_fails_at_response() {
    let a = PrivateKey::generate(&mut OsRng);
    let b = PrivateKey::generate(&mut OsRng);
    let mut ha = Handshake::new(&a, b.public_key(), PresharedKey::generate(&mut OsRng));
    let mut hb = Handshake::new(&b, a.public_key(), PresharedKey::default());
    let init = ha.create_initiation(&a, now(1), &mut OsRng, 1).unwrap();
    hb.finish_consume_initiation(start_consume_initiation(&b, &init).unwrap(), now(1))
        .unwrap();
    let resp = hb.create_response(&mut OsRng, 2).unwrap();
    assert_eq!(ha.consume_response(&a, &resp), Err(HandshakeError::Decrypt));
}

#[test]
fn replayed_initiation_rejected() {
    let mut p = pair(PresharedKey::default());
    let init =
        p.ha.create_initiation(&p.a, now(10), &mut OsRng, 1)
            .unwrap();
    let s = start_consume_initiation(&p.b, &init).unwrap();
    p.hb.finish_consume_initiation(s, now(10)).unwrap();
    // The same bytes a second later: timestamp not newer.
    let s = start_consume_initiation(&p.b, &init).unwrap();
    assert_eq!(
        p.hb.finish_consume_initiation(s, now(11)),
        Err(HandshakeError::Replay)
    );
    // An older initiation (captured earlier, sent later) also fails.
    let mut p2 = pair(PresharedKey::default());
    let old = p2
        .ha
        .create_initiation(&p2.a, now(5), &mut OsRng, 1)
        .unwrap();
    let new = p2
        .ha
        .create_initiation(&p2.a, now(6), &mut OsRng, 2)
        .unwrap();
    let s = start_consume_initiation(&p2.b, &new).unwrap();
    p2.hb.finish_consume_initiation(s, now(6)).unwrap();
    let s = start_consume_initiation(&p2.b, &old).unwrap();
    assert_eq!(
        p2.hb.finish_consume_initiation(s, now(7)),
        Err(HandshakeError::Replay)
    );
}

#[test]
fn initiation_flood_rejected_within_20ms() {
    let mut p = pair(PresharedKey::default());
    let t0 = now(10);
    let i1 = p.ha.create_initiation(&p.a, t0, &mut OsRng, 1).unwrap();
    p.hb.finish_consume_initiation(start_consume_initiation(&p.b, &i1).unwrap(), t0)
        .unwrap();
    // Newer timestamp (next 2^24 ns granule) but only 19 ms later on the monotonic clock.
    let t1 = t0.after(Duration::from_millis(19));
    let mut t1w = t1;
    t1w.wall += Duration::from_millis(40);
    let i2 = p.ha.create_initiation(&p.a, t1w, &mut OsRng, 2).unwrap();
    assert_eq!(
        p.hb.finish_consume_initiation(start_consume_initiation(&p.b, &i2).unwrap(), t1),
        Err(HandshakeError::Flood)
    );
    let t2 = t0.after(Duration::from_millis(20));
    p.hb.finish_consume_initiation(start_consume_initiation(&p.b, &i2).unwrap(), t2)
        .unwrap();
}

#[test]
fn tampered_initiation_fails() {
    let mut p = pair(PresharedKey::default());
    let init = p.ha.create_initiation(&p.a, now(1), &mut OsRng, 1).unwrap();
    for field in 0..3 {
        let mut m = init.clone();
        match field {
            0 => m.encrypted_static[3] ^= 1,
            1 => m.ephemeral[3] ^= 1,
            _ => m.encrypted_timestamp[3] ^= 1,
        }
        let r = start_consume_initiation(&p.b, &m)
            .and_then(|s| p.hb.finish_consume_initiation(s, now(1)));
        assert!(r.is_err(), "field {field}");
    }
    // Addressed to someone else.
    let c = PrivateKey::generate(&mut OsRng);
    assert_eq!(
        start_consume_initiation(&c, &init).err(),
        Some(HandshakeError::Decrypt)
    );
}

#[test]
fn low_order_keys_rejected() {
    let a = PrivateKey::generate(&mut OsRng);
    let mut h = Handshake::new(&a, PublicKey::from_bytes([0; 32]), PresharedKey::default());
    assert_eq!(
        h.create_initiation(&a, now(1), &mut OsRng, 1).err(),
        Some(HandshakeError::LowOrder)
    );
    let mut p = pair(PresharedKey::default());
    let mut init = p.ha.create_initiation(&p.a, now(1), &mut OsRng, 1).unwrap();
    init.ephemeral = [0; 32];
    assert_eq!(
        start_consume_initiation(&p.b, &init).err(),
        Some(HandshakeError::LowOrder)
    );
}

#[test]
fn response_checks_state_and_index() {
    let mut p = pair(PresharedKey::default());
    let init = p.ha.create_initiation(&p.a, now(1), &mut OsRng, 7).unwrap();
    p.hb.finish_consume_initiation(start_consume_initiation(&p.b, &init).unwrap(), now(1))
        .unwrap();
    let mut resp = p.hb.create_response(&mut OsRng, 8).unwrap();
    // A response before any initiation, or to another index, is refused.
    let mut fresh = Handshake::new(&p.a, p.b.public_key(), PresharedKey::default());
    assert_eq!(
        fresh.consume_response(&p.a, &resp),
        Err(HandshakeError::State)
    );
    resp.receiver = 9;
    assert_eq!(
        p.ha.consume_response(&p.a, &resp),
        Err(HandshakeError::State)
    );
    resp.receiver = 7;
    let mut bad = resp.clone();
    bad.encrypted_nothing[0] ^= 1;
    assert_eq!(
        p.ha.consume_response(&p.a, &bad),
        Err(HandshakeError::Decrypt)
    );
    p.ha.consume_response(&p.a, &resp).unwrap();
    // Twice: the state moved on.
    assert_eq!(
        p.ha.consume_response(&p.a, &resp),
        Err(HandshakeError::State)
    );
    assert!(p.ha.begin_session().is_ok());
    assert_eq!(p.ha.begin_session().err(), Some(HandshakeError::State));
}

#[test]
fn debug_redacts() {
    let p = pair(PresharedKey::generate(&mut OsRng));
    let d = format!("{:?}", p.ha);
    assert!(!d.contains(p.ha.psk().to_base64().as_str()));
}
