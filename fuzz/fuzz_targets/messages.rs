//! Every wire-format parser on arbitrary bytes: `message_type`, `Message::parse` and the four
//! message types, the inner-packet parser (`peer::inner_packet`) and the header readers of the
//! AllowedIPs lookups (`allowedips::packet_src`/`packet_dst`), plus `padded_len`.
//!
//! Invariants: a parsed message reserialises to exactly the input bytes; the type-specific
//! parsers agree with `Message::parse`; an inner packet's length fits the buffer and its source
//! is what `packet_src` reads; padding never shrinks a packet and adds less than 16 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgd::proto::allowedips::{packet_dst, packet_src};
use wgd::proto::inner_packet;
use wgd::proto::messages::{
    self, CookieReply, Initiation, Message, PADDING_MULTIPLE, Response, TRANSPORT_HEADER_LEN,
    TRANSPORT_MIN_LEN, TransportHeader,
};

fuzz_target!(|data: &[u8]| {
    let ty = messages::message_type(data);
    match Message::parse(data) {
        Ok(Message::Initiation(m)) => {
            assert_eq!(ty, Ok(messages::TYPE_INITIATION));
            assert_eq!(&m.to_bytes()[..], data);
            assert_eq!(Initiation::parse(data).as_ref(), Ok(&m));
        }
        Ok(Message::Response(m)) => {
            assert_eq!(ty, Ok(messages::TYPE_RESPONSE));
            assert_eq!(&m.to_bytes()[..], data);
            assert_eq!(Response::parse(data).as_ref(), Ok(&m));
        }
        Ok(Message::CookieReply(m)) => {
            assert_eq!(ty, Ok(messages::TYPE_COOKIE_REPLY));
            assert_eq!(&m.to_bytes()[..], data);
            assert_eq!(CookieReply::parse(data).as_ref(), Ok(&m));
        }
        Ok(Message::Transport(h)) => {
            assert_eq!(ty, Ok(messages::TYPE_TRANSPORT));
            assert!(data.len() >= TRANSPORT_MIN_LEN);
            let mut w = [0u8; TRANSPORT_HEADER_LEN];
            h.write(&mut w);
            assert_eq!(&w[..], &data[..TRANSPORT_HEADER_LEN]);
            assert_eq!(TransportHeader::parse(data), Ok(h));
        }
        Err(_) => {
            // Each type-specific parser must refuse it too.
            assert!(Initiation::parse(data).is_err());
            assert!(Response::parse(data).is_err());
            assert!(CookieReply::parse(data).is_err());
            assert!(TransportHeader::parse(data).is_err());
        }
    }
    if let Ok(t) = ty {
        assert!((1..=4).contains(&t));
        assert_eq!(&data[..4], &t.to_le_bytes());
    }

    if let Some((len, src)) = inner_packet(data) {
        assert!(len <= data.len());
        assert_eq!(packet_src(data), Some(src));
        assert!(packet_dst(data).is_some());
    }
    let _ = packet_dst(data);

    // padded_len on lengths and MTUs taken from the input.
    if let Some((&[a, b, c, d], _)) = data.split_first_chunk::<4>() {
        let len = usize::from(u16::from_le_bytes([a, b]));
        let mtu = usize::from(u16::from_le_bytes([c, d]));
        let p = messages::padded_len(len, mtu);
        assert!(p >= len);
        assert!(p - len < PADDING_MULTIPLE);
        if mtu > 0 && len <= mtu {
            assert!(p <= mtu);
        }
    }
});
