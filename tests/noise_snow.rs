//! Independent cross-check of wgd's Noise_IKpsk2 handshake against the `snow` crate.
//!
//! snow is configured as `Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s` with WireGuard's prologue and the
//! preshared key at position 2 (all zeros when there is none). The WireGuard mapping is:
//! - initiation = snow message 1 with the 12-byte TAI64N timestamp as payload:
//!   `ephemeral(32) ‖ encrypted_static(48) ‖ encrypted_timestamp(28)` are snow's 108 bytes;
//! - response = snow message 2 with an empty payload: `ephemeral(32) ‖ encrypted_nothing(16)`;
//! - transport: Split() gives (k1, k2); the initiator sends with k1; the AEAD nonce is the
//!   WireGuard counter (snow's ChaChaPoly nonce is 4 zero bytes ‖ counter little-endian).
//!
//! MACs and indices are not part of Noise: the MAC fields stay zero. The handshake hashes of the
//! two implementations are never compared directly; they are AEAD associated data, so any
//! disagreement makes a decryption fail.

use rand_core::{OsRng, RngCore};
use snow::params::NoiseParams;
use snow::{Builder, HandshakeState, StatelessTransportState, TransportState};
use std::time::Duration;
use wgd::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use wgd::proto::Tai64n;
use wgd::proto::constants::DEFAULT_MTU;
use wgd::proto::messages::{Initiation, Response, TransportHeader};
use wgd::proto::noise::{
    CONSTRUCTION, Handshake, HandshakeError, IDENTIFIER, SessionKeys, start_consume_initiation,
};
use wgd::proto::{Instant, Now};
use wgd::proto::{Keypair, OpenError};

/// Written out here rather than taken from wgd, so that a wrong constant in wgd cannot agree with
/// itself.
const PATTERN: &str = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE: &[u8] = b"WireGuard v1 zx2c4 Jason@zx2c4.com";
/// Length of snow's message 1 = the Noise part of an initiation.
const MSG1_LEN: usize = 32 + 48 + 28;
/// Length of snow's message 2 = the Noise part of a response.
const MSG2_LEN: usize = 32 + 16;
const INIT_INDEX: u32 = 0x1111_2222;
const RESP_INDEX: u32 = 0x3333_4444;

fn params() -> NoiseParams {
    PATTERN.parse().expect("snow supports the pattern")
}

#[test]
fn constants_match_wireguard() {
    assert_eq!(CONSTRUCTION, PATTERN.as_bytes());
    assert_eq!(IDENTIFIER, PROLOGUE);
}

/// A wall-clock time that is not on a 2^24 ns granule, so the whitening matters.
fn now() -> Now {
    Now {
        mono: Instant::from_nanos(5_000_000_000),
        wall: Duration::new(1_700_000_123, 987_654_321),
    }
}

fn psks() -> [(&'static str, PresharedKey); 2] {
    [
        ("no psk", PresharedKey::default()),
        ("psk", PresharedKey::generate(&mut OsRng)),
    ]
}

fn snow_initiator(local: &PrivateKey, remote: &PublicKey, psk: &PresharedKey) -> HandshakeState {
    let secret = local.to_bytes();
    Builder::new(params())
        .local_private_key(&secret[..])
        .remote_public_key(remote.as_bytes())
        .prologue(PROLOGUE)
        .psk(2, psk.as_bytes())
        .build_initiator()
        .expect("snow initiator")
}

fn snow_responder(local: &PrivateKey, psk: &PresharedKey) -> HandshakeState {
    let secret = local.to_bytes();
    Builder::new(params())
        .local_private_key(&secret[..])
        .prologue(PROLOGUE)
        .psk(2, psk.as_bytes())
        .build_responder()
        .expect("snow responder")
}

fn initiation_from_noise(sender: u32, m: &[u8]) -> Initiation {
    assert_eq!(m.len(), MSG1_LEN);
    Initiation {
        sender,
        ephemeral: m[..32].try_into().unwrap(),
        encrypted_static: m[32..80].try_into().unwrap(),
        encrypted_timestamp: m[80..108].try_into().unwrap(),
        mac1: [0; 16],
        mac2: [0; 16],
    }
}

fn initiation_noise_part(init: &Initiation) -> Vec<u8> {
    let wire = init.to_bytes();
    let mut v = Vec::with_capacity(MSG1_LEN);
    v.extend_from_slice(&init.ephemeral);
    v.extend_from_slice(&init.encrypted_static);
    v.extend_from_slice(&init.encrypted_timestamp);
    // The same bytes sit contiguously in the wire format after type and sender index.
    assert_eq!(&wire[8..8 + MSG1_LEN], &v[..]);
    v
}

fn response_from_noise(sender: u32, receiver: u32, m: &[u8]) -> Response {
    assert_eq!(m.len(), MSG2_LEN);
    Response {
        sender,
        receiver,
        ephemeral: m[..32].try_into().unwrap(),
        encrypted_nothing: m[32..48].try_into().unwrap(),
        mac1: [0; 16],
        mac2: [0; 16],
    }
}

fn response_noise_part(resp: &Response) -> Vec<u8> {
    let wire = resp.to_bytes();
    let mut v = Vec::with_capacity(MSG2_LEN);
    v.extend_from_slice(&resp.ephemeral);
    v.extend_from_slice(&resp.encrypted_nothing);
    assert_eq!(&wire[12..12 + MSG2_LEN], &v[..]);
    v
}

/// snow writes message 1 with the TAI64N of `t` as payload.
fn snow_write_initiation(hs: &mut HandshakeState, t: Now) -> Vec<u8> {
    let ts = Tai64n::from_wall(t.wall);
    let mut buf = [0u8; 256];
    let n = hs
        .write_message(&ts.0, &mut buf)
        .expect("snow writes msg 1");
    assert_eq!(n, MSG1_LEN, "snow message 1 is the 108-byte Noise part");
    buf[..n].to_vec()
}

/// wgd consumes an initiation as a responder (both halves).
fn wgd_consume(
    local: &PrivateKey,
    hs: &mut Handshake,
    init: &Initiation,
    t: Now,
) -> Result<PublicKey, HandshakeError> {
    let start = start_consume_initiation(local, init)?;
    let who = start.initiator_static;
    hs.finish_consume_initiation(start, t)?;
    Ok(who)
}

fn flip(m: &[u8], byte: usize, mask: u8) -> Vec<u8> {
    let mut v = m.to_vec();
    v[byte] ^= mask;
    v
}

/// The independent decoding of a TAI64N label: 2^62 + 10 + Unix seconds (big-endian), then the
/// nanoseconds rounded down to a multiple of 2^24 (big-endian).
fn expected_tai64n(wall: Duration) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&((1u64 << 62) + 10 + wall.as_secs()).to_be_bytes());
    out[8..].copy_from_slice(&(wall.subsec_nanos() & !((1u32 << 24) - 1)).to_be_bytes());
    out
}

// ---------------------------------------------------------------------------------------------
// Transport cross-checks.

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// wgd seals, snow (stateless, nonce = counter) opens; then snow seals at chosen counters and
/// wgd opens. Also: a wrong nonce or a flipped byte makes the other side fail.
fn check_transport_stateless(snow: &StatelessTransportState, wgd: &mut Keypair, t: Instant) {
    // wgd -> snow, in order from counter 0, then far ahead (a counter whose bytes are asymmetric,
    // so a big-endian nonce would not match).
    let mut counters = vec![0u64, 1, 2, 3, 4];
    let big = 0x0102_0304_0506_0708u64;
    counters.push(big);
    for (i, &expect_counter) in counters.iter().enumerate() {
        if expect_counter == big {
            wgd.set_send_counter(big);
        }
        let len = [0usize, 1, 16, 100, 1419, 37][i];
        let p = payload(len, i as u8);
        let mut buf = vec![0u8; Keypair::sealed_len(len, DEFAULT_MTU)];
        buf[16..16 + len].copy_from_slice(&p);
        let n = wgd.seal(t, &mut buf, len, DEFAULT_MTU).expect("wgd seals");
        let header = TransportHeader::parse(&buf[..n]).unwrap();
        assert_eq!(header.counter, expect_counter);
        assert_eq!(header.receiver, wgd.remote_index);
        let ct = &buf[16..n];
        let mut out = vec![0u8; ct.len()];
        let m = snow
            .read_message(header.counter, ct, &mut out)
            .unwrap_or_else(|e| panic!("snow opens wgd packet at counter {expect_counter}: {e:?}"));
        assert_eq!(m, n - 32);
        assert_eq!(&out[..len], &p[..]);
        assert!(out[len..m].iter().all(|&b| b == 0), "zero padding");
        // Wrong nonce fails.
        assert_eq!(
            snow.read_message(header.counter ^ 1, ct, &mut out),
            Err(snow::Error::Decrypt)
        );
        // A flipped ciphertext or tag byte fails.
        for at in [0, ct.len() - 1] {
            let bad = flip(ct, at, 0x01);
            assert_eq!(
                snow.read_message(header.counter, &bad, &mut out),
                Err(snow::Error::Decrypt),
                "flip at {at}"
            );
        }
    }

    // snow -> wgd, ascending counters (the replay window accepts jumps ahead).
    for (i, counter) in [0u64, 1, 2, 7, 300, big].into_iter().enumerate() {
        let len = [0usize, 5, 16, 64, 1420, 3][i];
        let p = payload(len, 0x80 ^ i as u8);
        let mut pkt = vec![0u8; 16 + len + 16];
        TransportHeader {
            receiver: wgd.local_index,
            counter,
        }
        .write(&mut pkt);
        let n = snow
            .write_message(counter, &p, &mut pkt[16..])
            .expect("snow seals");
        assert_eq!(n, len + 16);
        // A flipped byte fails in wgd and leaves the replay window alone.
        for at in [16, pkt.len() - 1] {
            let mut bad = flip(&pkt, at, 0x80);
            assert_eq!(wgd.open(t, &mut bad), Err(OpenError::Auth), "flip at {at}");
        }
        // Claiming another counter (nonce) fails too.
        let mut wrong = pkt.clone();
        wrong[8..16].copy_from_slice(&(counter + 1).to_le_bytes());
        assert_eq!(wgd.open(t, &mut wrong), Err(OpenError::Auth));
        let (c, plen) = wgd
            .open(t, &mut pkt)
            .unwrap_or_else(|e| panic!("wgd opens snow packet at counter {counter}: {e:?}"));
        assert_eq!((c, plen), (counter, len));
        assert_eq!(&pkt[16..16 + len], &p[..]);
    }
}

/// The same with snow's stateful transport (its internal nonces start at 0 and count up, which
/// is what WireGuard's counters do on a fresh keypair).
fn check_transport_stateful(snow: &mut TransportState, wgd: &mut Keypair, t: Instant) {
    for i in 0..4u8 {
        let len = 10 * i as usize;
        let p = payload(len, i);
        let mut buf = vec![0u8; Keypair::sealed_len(len, DEFAULT_MTU)];
        buf[16..16 + len].copy_from_slice(&p);
        let n = wgd.seal(t, &mut buf, len, DEFAULT_MTU).unwrap();
        assert_eq!(TransportHeader::parse(&buf).unwrap().counter, u64::from(i));
        assert_eq!(snow.receiving_nonce(), u64::from(i));
        let mut out = vec![0u8; n];
        let m = snow.read_message(&buf[16..n], &mut out).unwrap();
        assert_eq!(m, n - 32);
        assert_eq!(&out[..len], &p[..]);

        assert_eq!(snow.sending_nonce(), u64::from(i));
        let mut pkt = vec![0u8; 16 + len + 16];
        TransportHeader {
            receiver: wgd.local_index,
            counter: snow.sending_nonce(),
        }
        .write(&mut pkt);
        snow.write_message(&p, &mut pkt[16..]).unwrap();
        assert_eq!(wgd.open(t, &mut pkt).unwrap(), (u64::from(i), len));
        assert_eq!(&pkt[16..16 + len], &p[..]);
    }
}

// ---------------------------------------------------------------------------------------------
// Full handshakes.

struct Done {
    snow: HandshakeState,
    wgd: SessionKeys,
}

/// snow initiator (key `a`) ↔ wgd responder (key `b`), checked step by step.
fn snow_initiates(psk: &PresharedKey) -> Done {
    let a = PrivateKey::generate(&mut OsRng);
    let b = PrivateKey::generate(&mut OsRng);
    let t = now();

    let mut si = snow_initiator(&a, &b.public_key(), psk);
    let m1 = snow_write_initiation(&mut si, t);
    let init = initiation_from_noise(INIT_INDEX, &m1);
    assert_eq!(initiation_noise_part(&init), m1);

    let start = start_consume_initiation(&b, &init).expect("wgd authenticates snow's static key");
    assert_eq!(start.initiator_static, a.public_key());
    let mut hb = Handshake::new(&b, a.public_key(), psk.clone());
    hb.finish_consume_initiation(start, t)
        .expect("wgd decrypts snow's timestamp");
    assert_eq!(hb.state_name(), "consumed-initiation");

    let resp = hb.create_response(&mut OsRng, RESP_INDEX).unwrap();
    assert_eq!((resp.sender, resp.receiver), (RESP_INDEX, INIT_INDEX));
    let m2 = response_noise_part(&resp);
    let mut out = [0u8; 64];
    let n = si
        .read_message(&m2, &mut out)
        .expect("snow accepts wgd's response");
    assert_eq!(n, 0, "empty payload");
    assert!(si.is_handshake_finished());
    assert_eq!(si.get_remote_static(), Some(&b.public_key().as_bytes()[..]));

    let keys = hb.begin_session().unwrap();
    assert!(!keys.initiator);
    assert_eq!(
        (keys.local_index, keys.remote_index),
        (RESP_INDEX, INIT_INDEX)
    );
    Done {
        snow: si,
        wgd: keys,
    }
}

/// wgd initiator (key `a`) ↔ snow responder (key `b`).
fn wgd_initiates(psk: &PresharedKey) -> Done {
    let a = PrivateKey::generate(&mut OsRng);
    let b = PrivateKey::generate(&mut OsRng);
    let t = now();

    let mut ha = Handshake::new(&a, b.public_key(), psk.clone());
    let init = ha.create_initiation(&a, t, &mut OsRng, INIT_INDEX).unwrap();
    let m1 = initiation_noise_part(&init);

    let mut sr = snow_responder(&b, psk);
    let mut ts = [0u8; 64];
    let n = sr
        .read_message(&m1, &mut ts)
        .expect("snow accepts wgd's initiation");
    assert_eq!(n, 12, "the payload is a 12-byte TAI64N");
    assert_eq!(ts[..12], Tai64n::from_wall(t.wall).0);
    assert_eq!(ts[..12], expected_tai64n(t.wall));
    assert_eq!(sr.get_remote_static(), Some(&a.public_key().as_bytes()[..]));

    let mut m2 = [0u8; 128];
    let n = sr.write_message(&[], &mut m2).unwrap();
    assert_eq!(n, MSG2_LEN);
    assert!(sr.is_handshake_finished());
    let resp = response_from_noise(RESP_INDEX, INIT_INDEX, &m2[..n]);
    ha.consume_response(&a, &resp)
        .expect("wgd accepts snow's response");
    let keys = ha.begin_session().unwrap();
    assert!(keys.initiator);
    assert_eq!(
        (keys.local_index, keys.remote_index),
        (INIT_INDEX, RESP_INDEX)
    );
    Done {
        snow: sr,
        wgd: keys,
    }
}

#[test]
fn snow_initiator_wgd_responder() {
    for (name, psk) in psks() {
        let d = snow_initiates(&psk);
        let t = Instant::from_nanos(1);
        let mut kp = Keypair::new(d.wgd, t);
        let st = d.snow.into_stateless_transport_mode().unwrap();
        assert!(st.is_initiator());
        check_transport_stateless(&st, &mut kp, t);
        eprintln!("snow initiator / wgd responder ({name}): ok");

        let d = snow_initiates(&psk);
        let mut kp = Keypair::new(d.wgd, t);
        let mut st = d.snow.into_transport_mode().unwrap();
        check_transport_stateful(&mut st, &mut kp, t);
    }
}

#[test]
fn wgd_initiator_snow_responder() {
    for (name, psk) in psks() {
        let d = wgd_initiates(&psk);
        let t = Instant::from_nanos(1);
        let mut kp = Keypair::new(d.wgd, t);
        let st = d.snow.into_stateless_transport_mode().unwrap();
        assert!(!st.is_initiator());
        check_transport_stateless(&st, &mut kp, t);
        eprintln!("wgd initiator / snow responder ({name}): ok");

        let d = wgd_initiates(&psk);
        let mut kp = Keypair::new(d.wgd, t);
        let mut st = d.snow.into_transport_mode().unwrap();
        check_transport_stateful(&mut st, &mut kp, t);
    }
}

fn mismatched_psks() -> Vec<(&'static str, PresharedKey, PresharedKey)> {
    vec![
        (
            "initiator has psk, responder none",
            PresharedKey::generate(&mut OsRng),
            PresharedKey::default(),
        ),
        (
            "initiator none, responder has psk",
            PresharedKey::default(),
            PresharedKey::generate(&mut OsRng),
        ),
        (
            "different psks",
            PresharedKey::generate(&mut OsRng),
            PresharedKey::generate(&mut OsRng),
        ),
        ("one bit differs", PresharedKey::default(), {
            let mut b = [0u8; 32];
            b[31] = 0x80;
            PresharedKey::from_bytes(b)
        }),
    ]
}

#[test]
fn psk_mismatch_snow_initiator_fails_at_response() {
    for (name, psk_i, psk_r) in mismatched_psks() {
        let a = PrivateKey::generate(&mut OsRng);
        let b = PrivateKey::generate(&mut OsRng);
        let t = now();
        let mut si = snow_initiator(&a, &b.public_key(), &psk_i);
        let init = initiation_from_noise(INIT_INDEX, &snow_write_initiation(&mut si, t));
        // psk2 enters only after message 1: the initiation is still accepted.
        let mut hb = Handshake::new(&b, a.public_key(), psk_r);
        assert_eq!(
            wgd_consume(&b, &mut hb, &init, t),
            Ok(a.public_key()),
            "{name}"
        );
        let resp = hb.create_response(&mut OsRng, RESP_INDEX).unwrap();
        let mut out = [0u8; 64];
        assert_eq!(
            si.read_message(&response_noise_part(&resp), &mut out),
            Err(snow::Error::Decrypt),
            "{name}"
        );
        assert!(!si.is_handshake_finished(), "{name}");
    }
}

#[test]
fn psk_mismatch_wgd_initiator_fails_at_response() {
    for (name, psk_i, psk_r) in mismatched_psks() {
        let a = PrivateKey::generate(&mut OsRng);
        let b = PrivateKey::generate(&mut OsRng);
        let t = now();
        let mut ha = Handshake::new(&a, b.public_key(), psk_i);
        let init = ha.create_initiation(&a, t, &mut OsRng, INIT_INDEX).unwrap();
        let mut sr = snow_responder(&b, &psk_r);
        let mut ts = [0u8; 64];
        assert_eq!(
            sr.read_message(&initiation_noise_part(&init), &mut ts),
            Ok(12),
            "{name}"
        );
        let mut m2 = [0u8; 128];
        let n = sr.write_message(&[], &mut m2).unwrap();
        let resp = response_from_noise(RESP_INDEX, INIT_INDEX, &m2[..n]);
        assert_eq!(
            ha.consume_response(&a, &resp),
            Err(HandshakeError::Decrypt),
            "{name}"
        );
        assert_eq!(ha.state_name(), "created-initiation", "{name}");
    }
}

/// A snow initiator aimed at a different responder key is rejected by wgd at the static key.
#[test]
fn wrong_responder_key_rejected() {
    let a = PrivateKey::generate(&mut OsRng);
    let b = PrivateKey::generate(&mut OsRng);
    let c = PrivateKey::generate(&mut OsRng);
    let mut si = snow_initiator(&a, &c.public_key(), &PresharedKey::default());
    let init = initiation_from_noise(INIT_INDEX, &snow_write_initiation(&mut si, now()));
    assert_eq!(
        start_consume_initiation(&b, &init).err(),
        Some(HandshakeError::Decrypt)
    );
    assert!(start_consume_initiation(&c, &init).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Tampering: every byte of each Noise message, two different bit flips each.

const MASKS: [u8; 2] = [0x01, 0x80];

#[test]
fn tampered_snow_initiation_rejected_by_wgd() {
    for (name, psk) in psks() {
        let a = PrivateKey::generate(&mut OsRng);
        let b = PrivateKey::generate(&mut OsRng);
        let t = now();
        let mut si = snow_initiator(&a, &b.public_key(), &psk);
        let m1 = snow_write_initiation(&mut si, t);
        let mut hb = Handshake::new(&b, a.public_key(), psk.clone());
        for byte in 0..MSG1_LEN {
            for mask in MASKS {
                let init = initiation_from_noise(INIT_INDEX, &flip(&m1, byte, mask));
                let r = wgd_consume(&b, &mut hb, &init, t);
                assert!(
                    matches!(
                        r,
                        Err(HandshakeError::Decrypt) | Err(HandshakeError::LowOrder)
                    ),
                    "{name}: byte {byte} mask {mask:#x}: {r:?}"
                );
                assert_eq!(hb.state_name(), "zeroed");
            }
        }
        // The untouched message is still accepted, and the handshake completes.
        let init = initiation_from_noise(INIT_INDEX, &m1);
        assert_eq!(wgd_consume(&b, &mut hb, &init, t), Ok(a.public_key()));
        let resp = hb.create_response(&mut OsRng, RESP_INDEX).unwrap();
        let mut out = [0u8; 64];
        assert_eq!(
            si.read_message(&response_noise_part(&resp), &mut out),
            Ok(0)
        );
    }
}

#[test]
fn tampered_wgd_initiation_rejected_by_snow() {
    for (name, psk) in psks() {
        let a = PrivateKey::generate(&mut OsRng);
        let b = PrivateKey::generate(&mut OsRng);
        let mut ha = Handshake::new(&a, b.public_key(), psk.clone());
        let init = ha
            .create_initiation(&a, now(), &mut OsRng, INIT_INDEX)
            .unwrap();
        let m1 = initiation_noise_part(&init);
        let mut ts = [0u8; 64];
        for byte in 0..MSG1_LEN {
            for mask in MASKS {
                let mut sr = snow_responder(&b, &psk);
                let r = sr.read_message(&flip(&m1, byte, mask), &mut ts);
                assert!(
                    matches!(r, Err(snow::Error::Decrypt) | Err(snow::Error::Dh)),
                    "{name}: byte {byte} mask {mask:#x}: {r:?}"
                );
            }
        }
        let mut sr = snow_responder(&b, &psk);
        assert_eq!(sr.read_message(&m1, &mut ts), Ok(12));
    }
}

#[test]
fn tampered_wgd_response_rejected_by_snow() {
    for (name, psk) in psks() {
        let a = PrivateKey::generate(&mut OsRng);
        let b = PrivateKey::generate(&mut OsRng);
        let t = now();
        // A fixed snow ephemeral lets each attempt start from a fresh, identical snow state.
        let mut e = [0u8; 32];
        OsRng.fill_bytes(&mut e);
        let secret = a.to_bytes();
        let fresh = || {
            Builder::new(params())
                .local_private_key(&secret[..])
                .remote_public_key(b.public_key().as_bytes())
                .prologue(PROLOGUE)
                .psk(2, psk.as_bytes())
                .fixed_ephemeral_key_for_testing_only(&e)
                .build_initiator()
                .unwrap()
        };
        let mut si = fresh();
        let m1 = snow_write_initiation(&mut si, t);
        let mut hb = Handshake::new(&b, a.public_key(), psk.clone());
        wgd_consume(&b, &mut hb, &initiation_from_noise(INIT_INDEX, &m1), t).unwrap();
        let m2 = response_noise_part(&hb.create_response(&mut OsRng, RESP_INDEX).unwrap());
        let mut out = [0u8; 64];
        for byte in 0..MSG2_LEN {
            for mask in MASKS {
                let mut si = fresh();
                assert_eq!(snow_write_initiation(&mut si, t), m1);
                let r = si.read_message(&flip(&m2, byte, mask), &mut out);
                assert!(
                    matches!(r, Err(snow::Error::Decrypt) | Err(snow::Error::Dh)),
                    "{name}: byte {byte} mask {mask:#x}: {r:?}"
                );
            }
        }
        let mut si = fresh();
        assert_eq!(snow_write_initiation(&mut si, t), m1);
        assert_eq!(si.read_message(&m2, &mut out), Ok(0));
    }
}

#[test]
fn tampered_snow_response_rejected_by_wgd() {
    for (name, psk) in psks() {
        let a = PrivateKey::generate(&mut OsRng);
        let b = PrivateKey::generate(&mut OsRng);
        let mut ha = Handshake::new(&a, b.public_key(), psk.clone());
        let init = ha
            .create_initiation(&a, now(), &mut OsRng, INIT_INDEX)
            .unwrap();
        let mut sr = snow_responder(&b, &psk);
        let mut ts = [0u8; 64];
        sr.read_message(&initiation_noise_part(&init), &mut ts)
            .unwrap();
        let mut m2 = [0u8; 128];
        let n = sr.write_message(&[], &mut m2).unwrap();
        let m2 = &m2[..n];
        for byte in 0..MSG2_LEN {
            for mask in MASKS {
                let resp = response_from_noise(RESP_INDEX, INIT_INDEX, &flip(m2, byte, mask));
                let r = ha.consume_response(&a, &resp);
                assert!(
                    matches!(
                        r,
                        Err(HandshakeError::Decrypt) | Err(HandshakeError::LowOrder)
                    ),
                    "{name}: byte {byte} mask {mask:#x}: {r:?}"
                );
                assert_eq!(ha.state_name(), "created-initiation");
            }
        }
        let resp = response_from_noise(RESP_INDEX, INIT_INDEX, m2);
        assert_eq!(ha.consume_response(&a, &resp), Ok(()));
    }
}
