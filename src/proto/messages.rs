//! Wire formats of the four WireGuard messages (whitepaper §5.4, kernel `messages.h`).
//!
//! All integers are little-endian. The message type is a u32 whose upper three bytes must be zero.
//! Parsing checks the exact length and the type, returns a typed error and never panics.

use crate::crypto::{MAC_LEN, TAG_LEN};
use crate::proto::tai64n::TIMESTAMP_LEN;

/// Message type of a handshake initiation.
pub const TYPE_INITIATION: u32 = 1;
/// Message type of a handshake response.
pub const TYPE_RESPONSE: u32 = 2;
/// Message type of a cookie reply.
pub const TYPE_COOKIE_REPLY: u32 = 3;
/// Message type of a transport data message.
pub const TYPE_TRANSPORT: u32 = 4;

/// Exact size of a handshake initiation.
pub const INITIATION_LEN: usize = 148;
/// Exact size of a handshake response.
pub const RESPONSE_LEN: usize = 92;
/// Exact size of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 64;
/// Size of the transport header: type, receiver index, counter.
pub const TRANSPORT_HEADER_LEN: usize = 16;
/// Smallest transport message: header plus the tag of an empty payload (a keepalive).
pub const TRANSPORT_MIN_LEN: usize = TRANSPORT_HEADER_LEN + TAG_LEN;
/// Plaintext is padded to a multiple of this.
pub const PADDING_MULTIPLE: usize = 16;

/// Why a datagram is not a well-formed WireGuard message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than 4 bytes, or the type field has non-zero reserved bytes or an unknown value.
    #[error("unknown message type")]
    UnknownType,
    /// The length does not fit the message type.
    #[error("bad length {len} for message type {kind}")]
    BadLength {
        /// Message type.
        kind: u32,
        /// Length received.
        len: usize,
    },
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

fn read_arr<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut w = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        w.copy_from_slice(s);
    }
    w
}

/// Handshake initiation (type 1), 148 bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Initiation {
    /// Initiator's sender index.
    pub sender: u32,
    /// Initiator's unencrypted ephemeral public key.
    pub ephemeral: [u8; 32],
    /// Initiator's static public key, sealed.
    pub encrypted_static: [u8; 32 + TAG_LEN],
    /// TAI64N timestamp, sealed.
    pub encrypted_timestamp: [u8; TIMESTAMP_LEN + TAG_LEN],
    /// MAC1.
    pub mac1: [u8; MAC_LEN],
    /// MAC2 (zero without a cookie).
    pub mac2: [u8; MAC_LEN],
}

impl Initiation {
    /// Offset of mac1: the part MAC1 covers.
    pub const MAC1_OFFSET: usize = 116;
    /// Offset of mac2: the part MAC2 covers.
    pub const MAC2_OFFSET: usize = 132;

    /// Parses exactly 148 bytes of type 1.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        check(b, TYPE_INITIATION, INITIATION_LEN)?;
        Ok(Initiation {
            sender: read_u32(b, 4),
            ephemeral: read_arr(b, 8),
            encrypted_static: read_arr(b, 40),
            encrypted_timestamp: read_arr(b, 88),
            mac1: read_arr(b, 116),
            mac2: read_arr(b, 132),
        })
    }

    /// Serialises to 148 bytes.
    pub fn to_bytes(&self) -> [u8; INITIATION_LEN] {
        let mut b = [0u8; INITIATION_LEN];
        b[..4].copy_from_slice(&TYPE_INITIATION.to_le_bytes());
        b[4..8].copy_from_slice(&self.sender.to_le_bytes());
        b[8..40].copy_from_slice(&self.ephemeral);
        b[40..88].copy_from_slice(&self.encrypted_static);
        b[88..116].copy_from_slice(&self.encrypted_timestamp);
        b[116..132].copy_from_slice(&self.mac1);
        b[132..148].copy_from_slice(&self.mac2);
        b
    }
}

/// Handshake response (type 2), 92 bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Response {
    /// Responder's sender index.
    pub sender: u32,
    /// The initiator's sender index, echoed.
    pub receiver: u32,
    /// Responder's ephemeral public key.
    pub ephemeral: [u8; 32],
    /// The sealed empty payload.
    pub encrypted_nothing: [u8; TAG_LEN],
    /// MAC1.
    pub mac1: [u8; MAC_LEN],
    /// MAC2.
    pub mac2: [u8; MAC_LEN],
}

impl Response {
    /// Offset of mac1.
    pub const MAC1_OFFSET: usize = 60;
    /// Offset of mac2.
    pub const MAC2_OFFSET: usize = 76;

    /// Parses exactly 92 bytes of type 2.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        check(b, TYPE_RESPONSE, RESPONSE_LEN)?;
        Ok(Response {
            sender: read_u32(b, 4),
            receiver: read_u32(b, 8),
            ephemeral: read_arr(b, 12),
            encrypted_nothing: read_arr(b, 44),
            mac1: read_arr(b, 60),
            mac2: read_arr(b, 76),
        })
    }

    /// Serialises to 92 bytes.
    pub fn to_bytes(&self) -> [u8; RESPONSE_LEN] {
        let mut b = [0u8; RESPONSE_LEN];
        b[..4].copy_from_slice(&TYPE_RESPONSE.to_le_bytes());
        b[4..8].copy_from_slice(&self.sender.to_le_bytes());
        b[8..12].copy_from_slice(&self.receiver.to_le_bytes());
        b[12..44].copy_from_slice(&self.ephemeral);
        b[44..60].copy_from_slice(&self.encrypted_nothing);
        b[60..76].copy_from_slice(&self.mac1);
        b[76..92].copy_from_slice(&self.mac2);
        b
    }
}

/// Cookie reply (type 3), 64 bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CookieReply {
    /// The sender index of the handshake message that triggered it.
    pub receiver: u32,
    /// Random XChaCha20 nonce.
    pub nonce: [u8; 24],
    /// The cookie, sealed.
    pub encrypted_cookie: [u8; MAC_LEN + TAG_LEN],
}

impl CookieReply {
    /// Parses exactly 64 bytes of type 3.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        check(b, TYPE_COOKIE_REPLY, COOKIE_REPLY_LEN)?;
        Ok(CookieReply {
            receiver: read_u32(b, 4),
            nonce: read_arr(b, 8),
            encrypted_cookie: read_arr(b, 32),
        })
    }

    /// Serialises to 64 bytes.
    pub fn to_bytes(&self) -> [u8; COOKIE_REPLY_LEN] {
        let mut b = [0u8; COOKIE_REPLY_LEN];
        b[..4].copy_from_slice(&TYPE_COOKIE_REPLY.to_le_bytes());
        b[4..8].copy_from_slice(&self.receiver.to_le_bytes());
        b[8..32].copy_from_slice(&self.nonce);
        b[32..64].copy_from_slice(&self.encrypted_cookie);
        b
    }
}

/// The header of a transport data message (type 4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TransportHeader {
    /// The receiver's index of the keypair.
    pub receiver: u32,
    /// The nonce counter.
    pub counter: u64,
}

impl TransportHeader {
    /// Parses the header of a transport message of at least 32 bytes.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        if message_type(b)? != TYPE_TRANSPORT {
            return Err(ParseError::UnknownType);
        }
        if b.len() < TRANSPORT_MIN_LEN {
            return Err(ParseError::BadLength {
                kind: TYPE_TRANSPORT,
                len: b.len(),
            });
        }
        Ok(TransportHeader {
            receiver: read_u32(b, 4),
            counter: read_u64(b, 8),
        })
    }

    /// Writes the 16-byte header into `out[..16]`; does nothing if `out` is shorter.
    pub fn write(&self, out: &mut [u8]) {
        if let Some((h, _)) = out.split_first_chunk_mut::<TRANSPORT_HEADER_LEN>() {
            h[..4].copy_from_slice(&TYPE_TRANSPORT.to_le_bytes());
            h[4..8].copy_from_slice(&self.receiver.to_le_bytes());
            h[8..16].copy_from_slice(&self.counter.to_le_bytes());
        }
    }
}

/// A parsed datagram.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// Type 1.
    Initiation(Initiation),
    /// Type 2.
    Response(Response),
    /// Type 3.
    CookieReply(CookieReply),
    /// Type 4 (header only; the payload stays in the buffer).
    Transport(TransportHeader),
}

/// Reads the message type: a u32 LE in 1..=4 (so the three reserved bytes are zero).
pub fn message_type(b: &[u8]) -> Result<u32, ParseError> {
    if b.len() < 4 {
        return Err(ParseError::UnknownType);
    }
    match read_u32(b, 0) {
        t @ (TYPE_INITIATION | TYPE_RESPONSE | TYPE_COOKIE_REPLY | TYPE_TRANSPORT) => Ok(t),
        _ => Err(ParseError::UnknownType),
    }
}

fn check(b: &[u8], kind: u32, len: usize) -> Result<(), ParseError> {
    if message_type(b)? != kind {
        return Err(ParseError::UnknownType);
    }
    if b.len() != len {
        return Err(ParseError::BadLength { kind, len: b.len() });
    }
    Ok(())
}

impl Message {
    /// Parses any message.
    pub fn parse(b: &[u8]) -> Result<Self, ParseError> {
        Ok(match message_type(b)? {
            TYPE_INITIATION => Message::Initiation(Initiation::parse(b)?),
            TYPE_RESPONSE => Message::Response(Response::parse(b)?),
            TYPE_COOKIE_REPLY => Message::CookieReply(CookieReply::parse(b)?),
            _ => Message::Transport(TransportHeader::parse(b)?),
        })
    }
}

/// The padded plaintext length of an inner packet of `len` bytes for a tunnel of `mtu`: rounded
/// up to a multiple of 16 but never beyond the MTU; a keepalive (0) stays 0. A packet larger than
/// the MTU is padded as the kernel's `calculate_skb_padding` does (by its length modulo the MTU).
pub fn padded_len(len: usize, mtu: usize) -> usize {
    let align = |n: usize| {
        n.div_ceil(PADDING_MULTIPLE)
            .saturating_mul(PADDING_MULTIPLE)
    };
    if mtu == 0 {
        return align(len);
    }
    let last = if len > mtu { len % mtu } else { len };
    let padded = align(last).min(mtu);
    len.saturating_add(padded.saturating_sub(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sizes() {
        assert_eq!(INITIATION_LEN, 4 + 4 + 32 + 48 + 28 + 16 + 16);
        assert_eq!(RESPONSE_LEN, 4 + 4 + 4 + 32 + 16 + 16 + 16);
        assert_eq!(COOKIE_REPLY_LEN, 4 + 4 + 24 + 32);
        assert_eq!(TRANSPORT_MIN_LEN, 32);
    }

    #[test]
    fn round_trips() {
        let i = Initiation {
            sender: 0xa1b2c3d4,
            ephemeral: [1; 32],
            encrypted_static: [2; 48],
            encrypted_timestamp: [3; 28],
            mac1: [4; 16],
            mac2: [5; 16],
        };
        let b = i.to_bytes();
        assert_eq!(b[..8], [1, 0, 0, 0, 0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(Initiation::parse(&b).unwrap(), i);
        assert_eq!(b[Initiation::MAC1_OFFSET..][..16], [4; 16]);
        assert_eq!(b[Initiation::MAC2_OFFSET..][..16], [5; 16]);
        let r = Response {
            sender: 7,
            receiver: 8,
            ephemeral: [9; 32],
            encrypted_nothing: [10; 16],
            mac1: [11; 16],
            mac2: [12; 16],
        };
        let rb = r.to_bytes();
        assert_eq!(Response::parse(&rb).unwrap(), r);
        assert_eq!(rb[Response::MAC1_OFFSET..][..16], [11; 16]);
        let c = CookieReply {
            receiver: 3,
            nonce: [4; 24],
            encrypted_cookie: [5; 32],
        };
        assert_eq!(CookieReply::parse(&c.to_bytes()).unwrap(), c);
        let mut t = [0u8; 48];
        TransportHeader {
            receiver: 0x01020304,
            counter: 0x0506070809,
        }
        .write(&mut t);
        assert_eq!(t[..16], [4, 0, 0, 0, 4, 3, 2, 1, 9, 8, 7, 6, 5, 0, 0, 0]);
        assert_eq!(
            Message::parse(&t).unwrap(),
            Message::Transport(TransportHeader {
                receiver: 0x01020304,
                counter: 0x0506070809
            })
        );
    }

    #[test]
    fn rejects_wrong_sizes_and_reserved_bytes() {
        let b = Initiation {
            sender: 1,
            ephemeral: [0; 32],
            encrypted_static: [0; 48],
            encrypted_timestamp: [0; 28],
            mac1: [0; 16],
            mac2: [0; 16],
        }
        .to_bytes();
        assert!(Message::parse(&b[..147]).is_err());
        let mut longer = b.to_vec();
        longer.push(0);
        assert!(Message::parse(&longer).is_err());
        let mut reserved = b;
        reserved[1] = 1;
        assert_eq!(Message::parse(&reserved), Err(ParseError::UnknownType));
        reserved[1] = 0;
        reserved[3] = 0x80;
        assert_eq!(Message::parse(&reserved), Err(ParseError::UnknownType));
        // Transport under 32 bytes is dropped.
        let mut t = [0u8; 31];
        t[0] = 4;
        assert!(Message::parse(&t).is_err());
        for len in 0..4 {
            assert_eq!(
                Message::parse(&[1u8; 4][..len]),
                Err(ParseError::UnknownType)
            );
        }
        assert_eq!(Message::parse(&[5, 0, 0, 0]), Err(ParseError::UnknownType));
        assert_eq!(Message::parse(&[0, 0, 0, 0]), Err(ParseError::UnknownType));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u32 = 12345;
        for len in 0..300 {
            let mut v = vec![0u8; len];
            for b in v.iter_mut() {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *b = (x >> 16) as u8;
            }
            if len >= 4 {
                v[0] = (len % 5) as u8;
                v[1..4].fill(0);
            }
            let _ = Message::parse(&v);
        }
    }

    #[test]
    fn padding() {
        assert_eq!(padded_len(0, 1420), 0);
        assert_eq!(padded_len(1, 1420), 16);
        assert_eq!(padded_len(16, 1420), 16);
        assert_eq!(padded_len(17, 1420), 32);
        assert_eq!(padded_len(1419, 1420), 1420);
        assert_eq!(padded_len(1418, 1420), 1420);
        assert_eq!(padded_len(1420, 1420), 1420);
        assert_eq!(padded_len(1409, 1410), 1410);
        // Over the MTU (should not happen): padded by the length modulo the MTU, as the kernel.
        assert_eq!(padded_len(1500, 1420), 1500);
        assert_eq!(padded_len(1430, 1420), 1436);
        assert_eq!(padded_len(2840, 1420), 2840);
        assert_eq!(padded_len(33, 0), 48);
    }
}
