//! The wg(8)/wg-quick(8) configuration parser on arbitrary bytes, in both dialects.
//!
//! Invariants: a configuration that parses is written back (`to_wg_quick_string`,
//! `to_wg_string`) as text that parses to the same configuration (the wg keys only for the wg
//! form); the `set` request built from it (`uapi::set_request_from_config`) survives the UAPI
//! text round trip; `warnings()` never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgd::conf::{Config, Dialect};
use wgd::uapi::{self, Request};

fuzz_target!(|data: &[u8]| {
    for dialect in [Dialect::Wg, Dialect::WgQuick] {
        let Ok((cfg, _warnings)) = Config::parse_bytes(data, "fuzz.conf", dialect) else {
            continue;
        };
        let _ = cfg.warnings();
        if dialect == Dialect::Wg {
            assert!(!cfg.interface.has_wg_quick_keys());
        }

        let text = cfg.to_wg_quick_string();
        match Config::parse(&text, "rewritten.conf") {
            Ok(again) => assert_eq!(again, cfg, "wg-quick text:\n{text}"),
            Err(e) => panic!("written wg-quick config does not parse: {e}\n{text}"),
        }

        let text = cfg.to_wg_string();
        match Config::parse_wg_only(&text, "rewritten.conf") {
            Ok(again) => {
                let i = &cfg.interface;
                assert_eq!(again.interface.private_key, i.private_key, "{text}");
                assert_eq!(again.interface.listen_port, i.listen_port, "{text}");
                assert_eq!(again.interface.fwmark, i.fwmark, "{text}");
                assert!(!again.interface.has_wg_quick_keys());
                assert_eq!(again.peers, cfg.peers, "wg text:\n{text}");
            }
            Err(e) => panic!("written wg config does not parse: {e}\n{text}"),
        }

        for replace in [false, true] {
            let req = uapi::set_request_from_config(&cfg, replace);
            let wire = req.to_request_text();
            match uapi::parse_request(wire.as_bytes()) {
                Ok(Request::Set(back)) => assert_eq!(back, req),
                Ok(other) => panic!("set request parsed as {other:?}"),
                Err(e) => panic!("set request from a config does not parse: {e}"),
            }
        }
    }
});
