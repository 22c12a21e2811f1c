//! The UAPI request parser on arbitrary bytes, and `apply` of every `set` it accepts.
//!
//! Invariants: a parsed `set` written back with `to_request_text` parses to the same request;
//! `apply` is atomic (on error, `format_get` prints exactly what it printed before); after a
//! successful `apply` every AllowedIPs entry belongs to an existing peer and no peer has the
//! device's own public key; every error maps to a negative errno.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use wgd::proto::Device;
use wgd::uapi::{self, Request};
use wgd_fuzz::{A_PREFIX_V4, A_PREFIX_V6, device_b, rng, start};

/// B with A as a peer owning two prefixes, or a device with no key and no peers.
fn devices() -> [Device; 2] {
    let (mut b, pb) = device_b();
    let ok = b
        .add_allowed_ip(pb, IpAddr::V4(A_PREFIX_V4.0), A_PREFIX_V4.1)
        .and_then(|()| b.add_allowed_ip(pb, IpAddr::V6(A_PREFIX_V6.0), A_PREFIX_V6.1));
    assert!(ok.is_ok(), "fuzz set-up: allowed ips");
    [b, Device::without_key(rng(400))]
}

fn check_consistent(dev: &Device) {
    for (addr, cidr, id) in dev.allowed_ips().entries() {
        assert!(
            dev.peer(id).is_some(),
            "{addr}/{cidr} routes to a removed peer"
        );
    }
    if dev.has_private_key() {
        let own = dev.public_key();
        assert!(
            dev.peer_by_key(&own).is_none(),
            "a peer has the device's own key"
        );
    }
    for id in dev.peer_ids() {
        let key = *dev.peer(id).expect("listed peer exists").public_key();
        assert_eq!(dev.peer_by_key(&key), Some(id));
    }
}

fuzz_target!(|data: &[u8]| {
    let req = match uapi::parse_request(data) {
        Ok(Request::Set(req)) => req,
        Ok(Request::Get) => {
            for dev in devices() {
                let text = uapi::format_get(&dev, 51820, Some(7));
                assert!(text.ends_with("errno=0\n\n"));
            }
            return;
        }
        Ok(Request::Stats) => {
            for dev in devices() {
                let text = uapi::format_stats(&dev, &[("rx_dropped", 1)]);
                assert_eq!(
                    uapi::parse_stats_reply(&text).map(|s| s.peers.len()),
                    Ok(dev.peer_ids().count())
                );
            }
            return;
        }
        Err(e) => {
            assert!(e.errno() < 0);
            return;
        }
    };
    let wire = req.to_request_text();
    match uapi::parse_request(wire.as_bytes()) {
        Ok(Request::Set(back)) => assert_eq!(back, req, "request text:\n{}", wire.as_str()),
        Ok(other) => panic!("set request reparsed as {other:?}"),
        Err(e) => panic!("written request does not parse: {e}\n{}", wire.as_str()),
    }
    for mut dev in devices() {
        let before = uapi::format_get(&dev, 0, None);
        let mut out = Vec::new();
        match uapi::apply(req.clone(), &mut dev, start(), &mut out) {
            Ok(_change) => check_consistent(&dev),
            Err(e) => {
                assert!(e.errno() < 0);
                let after = uapi::format_get(&dev, 0, None);
                assert_eq!(after, before, "a failed set changed the device");
            }
        }
    }
});
