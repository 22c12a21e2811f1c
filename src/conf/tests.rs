//! Unit tests of the configuration types, parser, writers and lint (moved from the old
//! `conf/mod.rs` unchanged but for their `use` lines).

use super::*;
use crate::crypto::keys::PublicKey;
use std::fmt::Write as _;
use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

// Test-only keys (from `wg genkey`/`wg pubkey`/`wg genpsk`, also in tests/data/config).
const PRIV: &str = "AG1uIxvdiuqQTMflpcUuLhJM4w8hZUL4GEIm+EZwY3g=";
const PUB_OWN: &str = "vYG9yik/j9HcsNjy5LHXxiPR0RMLdqvrM4TEuvEFwDs=";
const PUB1: &str = "PNvoZpPsNv3T1J27WIZYJVcVnJgMZ25v0VC45PYI1HI=";
const PUB2: &str = "+adGQt4VRCD216y5ByRNKO69K/sk+cyc5lnGJXgahRc=";
const PSK: &str = "cbatb90bZPL1qM0ezC3btwTJnjI37+/no3pBi0aLUYw=";

fn pk(s: &str) -> PublicKey {
    s.parse().unwrap()
}

/// A public key made from a number (for generated configurations).
fn numbered_key(n: u32) -> PublicKey {
    let mut b = [7u8; 32];
    b[..4].copy_from_slice(&n.to_le_bytes());
    PublicKey::from_bytes(b)
}

fn err(text: &str) -> ConfigError {
    match Config::parse(text, "wg0.conf") {
        Ok(c) => panic!("parsed unexpectedly: {c:?}"),
        Err(e) => e,
    }
}

fn err_msg(text: &str) -> String {
    err(text).to_string()
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name)
}

fn temp_path(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("wgd-config-test-{}-{tag}.conf", std::process::id()))
}

fn full_text() -> String {
    format!(
        "# comment line\n\
         [Interface]\n\
         PrivateKey = {PRIV}\n\
         ListenPort = 51820\n\
         FwMark = 0x20\n\
         Address = 198.18.0.1/24, 2001:db8::1/64\n\
         Address = 198.18.5.5\n\
         DNS = 198.18.0.53, 2001:db8::53 search.test\n\
         MTU = 1420\n\
         Table = 1234\n\
         PreUp = echo pre-up %i\n\
         PostUp = iptables -A FORWARD -i %i -j ACCEPT --mark=1\n\
         PreDown = echo pre-down\n\
         PostDown = echo post-down one\n\
         PostDown = echo post-down two\n\
         SaveConfig = true\n\
         \n\
         [Peer]\n\
         PublicKey = {PUB1}\n\
         PresharedKey = {PSK}\n\
         AllowedIPs = 198.18.1.0/24, 2001:db8:1::/48\n\
         AllowedIPs = 198.19.0.0/16\n\
         Endpoint = 198.18.255.1:51820\n\
         PersistentKeepalive = 25\n\
         \n\
         [Peer]\n\
         PublicKey = {PUB2}\n\
         AllowedIPs = 198.18.2.0/24\n\
         Endpoint = [2001:db8::ff]:51821\n"
    )
}

// ---- the happy path -------------------------------------------------------------------

#[test]
fn parses_every_key() {
    let c = Config::parse(&full_text(), "wg0.conf").unwrap();
    let i = &c.interface;
    assert_eq!(i.private_key, Some(PRIV.parse().unwrap()));
    assert_eq!(
        i.private_key.as_ref().map(|k| k.public_key()),
        Some(pk(PUB_OWN))
    );
    assert_eq!(i.listen_port, Some(51820));
    assert_eq!(i.fwmark, Some(0x20));
    let addrs: Vec<String> = i.addresses.iter().map(|a| a.to_string()).collect();
    assert_eq!(addrs, ["198.18.0.1/24", "2001:db8::1/64", "198.18.5.5/32"]);
    assert_eq!(i.dns, ["198.18.0.53", "2001:db8::53", "search.test"]);
    assert_eq!(i.mtu, Some(1420));
    assert_eq!(i.table, Some(Table::Id(1234)));
    assert_eq!(i.pre_up, ["echo pre-up %i"]);
    assert_eq!(i.post_up, ["iptables -A FORWARD -i %i -j ACCEPT --mark=1"]);
    assert_eq!(i.pre_down, ["echo pre-down"]);
    assert_eq!(i.post_down, ["echo post-down one", "echo post-down two"]);
    assert!(i.save_config);

    assert_eq!(c.peers.len(), 2);
    let p = &c.peers[0];
    assert_eq!(p.public_key, pk(PUB1));
    assert_eq!(p.preshared_key, Some(PSK.parse().unwrap()));
    let ips: Vec<String> = p.allowed_ips.iter().map(|a| a.to_string()).collect();
    assert_eq!(ips, ["198.18.1.0/24", "2001:db8:1::/48", "198.19.0.0/16"]);
    assert_eq!(
        p.endpoint,
        Some(EndpointSpec {
            host: "198.18.255.1".into(),
            port: 51820
        })
    );
    assert_eq!(p.persistent_keepalive, Some(25));
    let q = &c.peers[1];
    assert_eq!(q.public_key, pk(PUB2));
    assert_eq!(q.preshared_key, None);
    assert_eq!(q.persistent_keepalive, None);
    assert_eq!(
        q.endpoint.as_ref().map(|e| (e.host.as_str(), e.port)),
        Some(("2001:db8::ff", 51821))
    );
}

#[test]
fn keys_and_sections_are_case_insensitive_and_whitespace_is_ignored() {
    let text = format!(
        "\u{feff}  [ interface ]  # trailing comment\r\n\
         \tprivatekey\t=\t{PRIV}   \r\n\
         LISTENPORT=51820\r\n\
         Listen Port = 51821\r\n\
         [PEER]\r\n\
         Public Key = {PUB1} # the hub\r\n\
         allowedips = 198.18.0.0 / 24 ,2001:db8::/32\r\n\
         ENDPOINT = 198.18.0.9 : 5000\r\n\
         persistentKEEPALIVE = OFF\r\n"
    );
    let (c, warnings) = Config::parse_with_warnings(&text, "x.conf", Dialect::Wg).unwrap();
    assert_eq!(c.interface.listen_port, Some(51821));
    assert_eq!(c.peers[0].public_key, pk(PUB1));
    assert_eq!(c.peers[0].allowed_ips.len(), 2);
    assert_eq!(
        c.peers[0].endpoint.as_ref().map(ToString::to_string),
        Some("198.18.0.9:5000".to_owned())
    );
    assert_eq!(c.peers[0].persistent_keepalive, None);
    // The repeated ListenPort is reported with both lines.
    assert_eq!(
        warnings,
        ["x.conf:4: ListenPort: given again (before on line 3); this value overrides"]
    );
}

#[test]
fn comments_and_blank_lines_are_skipped_and_lines_counted() {
    let text = "# only comments\n\n   # indented\n\t\n[Interface] # x\nListenPort = 1 # y\n\
                #PrivateKey = nope\nBogus = 1\n";
    let e = err(text);
    assert_eq!(e.line(), Some(8));
    assert_eq!(
        e.to_string(),
        "wg0.conf:8: unknown key `Bogus' in [Interface]"
    );
    // A file with no sections at all is an empty configuration.
    assert_eq!(
        Config::parse("# nothing\n\n", "e").unwrap(),
        Config::default()
    );
    assert_eq!(Config::parse("", "e").unwrap(), Config::default());
}

#[test]
fn allowed_ips_accumulate_and_bare_addresses_are_hosts() {
    let text = format!(
        "[Peer]\nPublicKey={PUB1}\nAllowedIPs=198.18.0.7\nAllowedIPs=2001:db8::7,198.18.0.0/15\n\
         AllowedIPs = 0.0.0.0/0, ::/0\n"
    );
    let c = Config::parse_wg_only(&text, "a").unwrap();
    let ips: Vec<String> = c.peers[0]
        .allowed_ips
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        ips,
        [
            "198.18.0.7/32",
            "2001:db8::7/128",
            "198.18.0.0/15",
            "0.0.0.0/0",
            "::/0"
        ]
    );
}

#[test]
fn allowed_ips_host_bits_are_cleared_with_a_warning() {
    let text = format!("[Peer]\nPublicKey={PUB1}\nAllowedIPs=198.18.3.4/16, 2001:db8::1/32\n");
    let (c, w) = Config::parse_with_warnings(&text, "h.conf", Dialect::Wg).unwrap();
    let ips: Vec<String> = c.peers[0]
        .allowed_ips
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(ips, ["198.18.0.0/16", "2001:db8::/32"]);
    assert_eq!(
        w,
        [
            "h.conf:3: AllowedIPs: 198.18.3.4/16 has a nonzero host part; using 198.18.0.0/16",
            "h.conf:3: AllowedIPs: 2001:db8::1/32 has a nonzero host part; using 2001:db8::/32",
        ]
    );
}

#[test]
fn fwmark_forms() {
    for (v, want) in [
        ("0x1234", Some(0x1234)),
        ("0xffffffff", Some(u32::MAX)),
        ("0x00000000000000001", Some(1)),
        ("4660", Some(4660)),
        ("4294967295", Some(u32::MAX)),
        ("0", None),
        ("0x0", None),
        ("off", None),
        ("OFF", None),
    ] {
        let c = Config::parse(&format!("[Interface]\nFwMark = {v}\n"), "f").unwrap();
        assert_eq!(c.interface.fwmark, want, "{v}");
    }
    for bad in [
        "0x",
        "0X10",
        "0x1g",
        "4294967296",
        "0x100000000",
        "-1",
        "+1",
        "x1",
        "on",
        "1e3",
    ] {
        let e = err(&format!("[Interface]\nFwMark = {bad}\n"));
        assert_eq!(
            e.to_string(),
            format!("wg0.conf:2: FwMark: `{bad}' is neither 0/off nor 0-0xffffffff")
        );
        assert_eq!(e.key(), Some("FwMark"));
    }
}

#[test]
fn listen_port_forms() {
    for (v, want) in [("51820", Some(51820)), ("65535", Some(65535)), ("0", None)] {
        let c = Config::parse(&format!("[Interface]\nListenPort={v}\n"), "p").unwrap();
        assert_eq!(c.interface.listen_port, want);
    }
    for bad in ["65536", "100000", "-1", "port", "5182O", "0x10", "+5"] {
        assert_eq!(
            err_msg(&format!("[Interface]\nListenPort = {bad}\n")),
            format!("wg0.conf:2: ListenPort: `{bad}' is not a port number (0-65535)")
        );
    }
}

#[test]
fn persistent_keepalive_forms() {
    for (v, want) in [
        ("25", Some(25)),
        ("65535", Some(65535)),
        ("0", None),
        ("off", None),
    ] {
        let text = format!("[Peer]\nPublicKey={PUB1}\nPersistentKeepalive={v}\n");
        let c = Config::parse(&text, "k").unwrap();
        assert_eq!(c.peers[0].persistent_keepalive, want, "{v}");
    }
    for bad in ["65536", "-1", "on", "25s", "1.5"] {
        let text = format!("[Peer]\nPublicKey={PUB1}\nPersistentKeepalive = {bad}\n");
        assert_eq!(
            err_msg(&text),
            format!("wg0.conf:3: PersistentKeepalive: `{bad}' is neither 0/off nor 1-65535")
        );
    }
}

#[test]
fn bad_keys_name_file_line_and_key_without_echoing_the_value() {
    let bad = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB="; // non-canonical
    let text =
        format!("[Interface]\nPrivateKey = {PRIV}\n\n[Peer]\n# the peer\n\nPublicKey = {bad}\n");
    let e = err(&text);
    assert_eq!(
        e.to_string(),
        "wg0.conf:7: PublicKey: Key is not the correct length or format"
    );
    assert_eq!((e.line(), e.key()), (Some(7), Some("PublicKey")));

    let secret_typo = &PRIV[..43];
    let m = err_msg(&format!("[Interface]\nPrivateKey = {secret_typo}\n"));
    assert_eq!(
        m,
        "wg0.conf:2: PrivateKey: Key is not the correct length or format"
    );
    assert!(!m.contains(secret_typo));
    let m = err_msg(&format!(
        "[Peer]\nPublicKey = {PUB1}\nPresharedKey = {PSK}x\n"
    ));
    assert_eq!(
        m,
        "wg0.conf:3: PresharedKey: Key is not the correct length or format"
    );
    assert!(!m.contains(PSK));
    // A key pasted without its name is not echoed: with its '=' it looks like an unknown
    // key, without it like a line without '='.
    let m = err_msg(&format!("[Interface]\n{PRIV}\n"));
    assert_eq!(
        m,
        "wg0.conf:2: unknown key `<43 characters, not shown>' in [Interface]"
    );
    let m = err_msg(&format!("[Interface]\n{}\n", &PRIV[..43]));
    assert_eq!(
        m,
        "wg0.conf:2: line is neither a [Section] header nor `Key = Value'"
    );
    let m = err_msg(&format!("{PRIV}\n"));
    assert!(!m.contains(&PRIV[..20]), "{m}");
    let m = err_msg(&format!("[{PRIV}]\n"));
    assert!(!m.contains(&PRIV[..20]), "{m}");
}

#[test]
fn empty_values_are_errors_for_wg_keys() {
    for (section, key) in [
        ("Interface", "PrivateKey"),
        ("Interface", "ListenPort"),
        ("Interface", "FwMark"),
        ("Interface", "SaveConfig"),
        ("Peer", "PublicKey"),
        ("Peer", "AllowedIPs"),
        ("Peer", "Endpoint"),
        ("Peer", "PersistentKeepalive"),
    ] {
        assert_eq!(
            err_msg(&format!("[{section}]\n{key} =   # nothing\n")),
            format!("wg0.conf:2: {key}: empty value")
        );
    }
    // wg-quick keys may be empty (wg-quick ignores them).
    let c = Config::parse("[Interface]\nAddress =\nDNS=\nMTU=\nTable=\nPostUp=\n", "q").unwrap();
    assert_eq!(c.interface, InterfaceConfig::default());
}

#[test]
fn allowed_ips_errors() {
    for (bad, msg) in [
        (
            "198.18.0.0/33",
            "`198.18.0.0/33' is not in the correct format (CIDR mask out of range or not a number)",
        ),
        (
            "2001:db8::/129",
            "`2001:db8::/129' is not in the correct format (CIDR mask out of range or not a number)",
        ),
        (
            "198.18.0.0/",
            "`198.18.0.0/' is not in the correct format (CIDR mask out of range or not a number)",
        ),
        (
            "198.18.0.0/-1",
            "`198.18.0.0/-1' is not in the correct format (CIDR mask out of range or not a number)",
        ),
        (
            "198.18.0.0/24/8",
            "`198.18.0.0/24/8' is not in the correct format (CIDR mask out of range or not a number)",
        ),
        (
            "198.18.0.0/99999999999999999999",
            "`198.18.0.0/99999999999999999999' is not in the correct format (CIDR mask out of range or not a number)",
        ),
        ("198.18.0/24", "unable to parse IP address `198.18.0'"),
        ("198.18.0.256", "unable to parse IP address `198.18.0.256'"),
        ("198.018.0.1", "unable to parse IP address `198.018.0.1'"),
        ("2001:db8:::1", "unable to parse IP address `2001:db8:::1'"),
        ("host.test/32", "unable to parse IP address `host.test'"),
        ("198.18.0.0/24,", "unable to parse IP address `'"),
        (
            "198.18.0.0/24,,198.19.0.0/24",
            "unable to parse IP address `'",
        ),
        (
            "+198.18.0.0/24",
            "`+198.18.0.0/24': incremental +/- AllowedIPs are for `wg set', not for configuration files",
        ),
        (
            "-198.18.0.0/24",
            "`-198.18.0.0/24': incremental +/- AllowedIPs are for `wg set', not for configuration files",
        ),
    ] {
        let text = format!("[Peer]\nPublicKey={PUB1}\nAllowedIPs = {bad}\n");
        assert_eq!(
            err_msg(&text),
            format!("wg0.conf:3: AllowedIPs: {msg}"),
            "{bad}"
        );
    }
}

#[test]
fn endpoint_forms() {
    for (v, host, port) in [
        ("198.18.0.1:51820", "198.18.0.1", 51820),
        ("[2001:db8::1]:1", "2001:db8::1", 1),
        ("[fe80::1%eth0]:51820", "fe80::1%eth0", 51820),
        ("vpn.example.test:65535", "vpn.example.test", 65535),
        ("gateway:51820", "gateway", 51820),
    ] {
        let e: EndpointSpec = v.parse().unwrap();
        assert_eq!((e.host.as_str(), e.port), (host, port), "{v}");
        assert_eq!(e.to_string(), v);
    }
    let e: EndpointSpec = "[2001:db8::1]:51820".parse().unwrap();
    assert_eq!(
        e.socket_addr(),
        Some("[2001:db8::1]:51820".parse().unwrap())
    );
    let name: EndpointSpec = "vpn.example.test:1".parse().unwrap();
    assert_eq!(name.ip(), None);
    assert_eq!(
        EndpointSpec::from("198.18.0.1:5".parse::<SocketAddr>().unwrap()).to_string(),
        "198.18.0.1:5"
    );
}

#[test]
fn endpoint_errors() {
    for (bad, msg) in [
        (
            "198.18.0.1",
            "unable to find port of endpoint `198.18.0.1' (expected host:port or [ipv6]:port)",
        ),
        (
            "198.18.0.1:",
            "unable to find port of endpoint `198.18.0.1:' (expected host:port or [ipv6]:port)",
        ),
        (
            "[2001:db8::1]",
            "unable to find port of endpoint `[2001:db8::1]' (expected host:port or [ipv6]:port)",
        ),
        (
            "[2001:db8::1]:",
            "unable to find port of endpoint `[2001:db8::1]:' (expected host:port or [ipv6]:port)",
        ),
        (
            "[2001:db8::1]51820",
            "unable to find port of endpoint `[2001:db8::1]51820' (expected host:port or [ipv6]:port)",
        ),
        (
            "[2001:db8::1:51820",
            "unable to find matching brace of endpoint `[2001:db8::1:51820'",
        ),
        (
            "2001:db8::1:51820",
            "IPv6 endpoint `2001:db8::1:51820' must be in brackets, as [address]:port",
        ),
        (
            "2001:db8::1",
            "IPv6 endpoint `2001:db8::1' must be in brackets, as [address]:port",
        ),
        (
            "[198.18.0.1]:5",
            "`198.18.0.1' is neither an IP address nor a host name",
        ),
        (
            "[host.test]:5",
            "`host.test' is neither an IP address nor a host name",
        ),
        (
            "[fe80::1%]:5",
            "`fe80::1%' is neither an IP address nor a host name",
        ),
        (":51820", "`' is neither an IP address nor a host name"),
        (
            "198.18.0.256:5",
            "`198.18.0.256' is neither an IP address nor a host name",
        ),
        (
            "bad/host:5",
            "`bad/host' is neither an IP address nor a host name",
        ),
        ("198.18.0.1:0", "`0' is not a port number (1-65535)"),
        ("198.18.0.1:65536", "`65536' is not a port number (1-65535)"),
        ("198.18.0.1:http", "`http' is not a port number (1-65535)"),
        ("[2001:db8::1]:-5", "`-5' is not a port number (1-65535)"),
    ] {
        let text = format!("[Peer]\nPublicKey={PUB1}\nEndpoint = {bad}\n");
        assert_eq!(
            err_msg(&text),
            format!("wg0.conf:3: Endpoint: {msg}"),
            "{bad}"
        );
    }
}

#[test]
fn endpoint_resolve_literals() {
    let e: EndpointSpec = "198.18.0.1:51820".parse().unwrap();
    assert_eq!(e.resolve().unwrap(), "198.18.0.1:51820".parse().unwrap());
    let e: EndpointSpec = "[2001:db8::1]:51820".parse().unwrap();
    assert_eq!(e.resolve().unwrap(), "[2001:db8::1]:51820".parse().unwrap());
    // (Host names go to the system resolver; not exercised here, to stay off the network.)
}

#[test]
fn structural_errors() {
    assert_eq!(
        err_msg("[Interface]\n[Peers]\n"),
        "wg0.conf:2: unknown section `[Peers]' (expected [Interface] or [Peer])"
    );
    assert_eq!(
        err_msg("[Interface]PrivateKey=x\n"),
        "wg0.conf:1: unknown section `<23 characters, not shown>' (expected [Interface] or [Peer])"
    );
    assert_eq!(
        err_msg("ListenPort = 51820\n[Interface]\n"),
        "wg0.conf:1: key `ListenPort' is outside of any section (expected [Interface] or [Peer] first)"
    );
    assert_eq!(
        err_msg("[Interface]\nListenPort 51820\n"),
        "wg0.conf:2: line is neither a [Section] header nor `Key = Value'"
    );
    assert_eq!(
        err_msg(&format!("[Peer]\nPublicKey = {PUB1}\nNonsense = 1\n")),
        "wg0.conf:3: unknown key `Nonsense' in [Peer]"
    );
    let e = err(&format!("[Interface]\nPublicKey = {PUB1}\n"));
    assert_eq!(
        e.to_string(),
        "wg0.conf:2: PublicKey belongs in [Peer], not in [Interface]"
    );
    assert_eq!(e.key(), Some("PublicKey"));
    assert_eq!(
        err_msg(&format!("[Peer]\nPublicKey = {PUB1}\nListenPort = 1\n")),
        "wg0.conf:3: ListenPort belongs in [Interface], not in [Peer]"
    );
    assert_eq!(
        err_msg(&format!(
            "[Peer]\nPublicKey = {PUB1}\nAddress = 198.18.0.1/24\n"
        )),
        "wg0.conf:3: Address belongs in [Interface], not in [Peer]"
    );
    // Unknown keys are quoted, but never at length.
    let long = "K".repeat(500);
    let m = err_msg(&format!("[Interface]\n{long} = 1\n"));
    assert!(m.len() < 150, "{m}");
}

#[test]
fn duplicate_peer_names_both_lines() {
    let text = format!(
        "[Peer]\nPublicKey = {PUB1}\nAllowedIPs = 198.18.0.1\n\n[Peer]\nPublicKey = {PUB2}\n\
         [Peer]\nAllowedIPs = 198.18.0.2\nPublicKey = {PUB1}\n"
    );
    let e = err(&text);
    assert_eq!(
        e.to_string(),
        format!("wg0.conf:9: PublicKey: peer {PUB1} is already defined on line 2")
    );
    assert!(matches!(
        e,
        ConfigError::Value {
            line: 9,
            problem: ValueProblem::DuplicatePeer { first_line: 2, .. },
            ..
        }
    ));
}

#[test]
fn peer_without_public_key() {
    let text = format!(
        "[Interface]\nListenPort=1\n[Peer]\nAllowedIPs = 198.18.0.1\n[Peer]\nPublicKey={PUB1}\n"
    );
    assert_eq!(
        err_msg(&text),
        "wg0.conf:3: [Peer] section has no PublicKey"
    );
    // The last section, ended by the end of the file.
    let text = format!("[Peer]\nPublicKey={PUB1}\n\n[Peer]\nEndpoint=198.18.0.1:1\n");
    assert_eq!(
        err_msg(&text),
        "wg0.conf:4: [Peer] section has no PublicKey"
    );
    assert_eq!(
        err_msg("[Peer]"),
        "wg0.conf:1: [Peer] section has no PublicKey"
    );
}

#[test]
fn repeated_interface_sections_merge_like_wg() {
    let text = format!(
        "[Interface]\nListenPort = 1\n[Peer]\nPublicKey = {PUB1}\n\
         [Interface]\nPrivateKey = {PRIV}\nListenPort = 2\nAddress = 198.18.0.1/24\n"
    );
    let (c, w) = Config::parse_with_warnings(&text, "m.conf", Dialect::WgQuick).unwrap();
    assert_eq!(c.interface.listen_port, Some(2));
    assert!(c.interface.private_key.is_some());
    assert_eq!(c.peers.len(), 1);
    assert_eq!(
        w,
        [
            "m.conf:5: [Interface] appears again (first on line 1); the sections are merged, \
             later values override earlier ones",
            "m.conf:7: ListenPort: given again (before on line 2); this value overrides",
        ]
    );
}

#[test]
fn wg_only_rejects_wg_quick_keys() {
    for line in [
        "Address = 198.18.0.1/24",
        "DNS = 198.18.0.53",
        "MTU = 1420",
        "Table = off",
        "PreUp = true",
        "PostUp = true",
        "PreDown = true",
        "PostDown = true",
        "SaveConfig = false",
    ] {
        let text = format!("[Interface]\nPrivateKey = {PRIV}\n{line}\n");
        let key = line.split(' ').next().unwrap();
        let e = Config::parse_wg_only(&text, "wg0.conf").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("wg0.conf:3: {key} is a wg-quick(8) key, which wg(8) setconf does not accept")
        );
        assert_eq!(e.key(), Some(key));
        Config::parse(&text, "wg0.conf").unwrap();
    }
    Config::parse_wg_only(
        &std::fs::read_to_string(fixture("setconf.conf")).unwrap(),
        "s",
    )
    .unwrap();
}

#[test]
fn wg_quick_values() {
    let c = Config::parse(
        "[Interface]\nTable = off\nSaveConfig = FALSE\nMTU = 68\n",
        "q",
    )
    .unwrap();
    assert_eq!(c.interface.table, Some(Table::Off));
    assert!(!c.interface.save_config);
    assert_eq!(c.interface.mtu, Some(68));
    for (v, t) in [
        ("auto", Table::Auto),
        ("AUTO", Table::Auto),
        ("main", Table::Id(254)),
        ("local", Table::Id(255)),
        ("default", Table::Id(253)),
        ("4294967295", Table::Id(u32::MAX)),
    ] {
        assert_eq!(v.parse::<Table>(), Ok(t));
    }
    for (line, msg) in [
        (
            "Table = 0",
            "Table: `0' is neither off, auto, main, local, default nor a table number 1-4294967295",
        ),
        (
            "Table = vpn",
            "Table: `vpn' is neither off, auto, main, local, default nor a table number 1-4294967295",
        ),
        ("MTU = 67", "MTU: `67' is not an MTU (68-65535)"),
        ("MTU = 65536", "MTU: `65536' is not an MTU (68-65535)"),
        ("MTU = big", "MTU: `big' is not an MTU (68-65535)"),
        (
            "SaveConfig = yes",
            "SaveConfig: `yes' is neither true nor false",
        ),
        (
            "Address = 198.18.0.1/40",
            "Address: `198.18.0.1/40' is not in the correct format (CIDR mask out of range or not a number)",
        ),
        (
            "Address = example.test",
            "Address: unable to parse IP address `example.test'",
        ),
    ] {
        assert_eq!(
            err_msg(&format!("[Interface]\n{line}\n")),
            format!("wg0.conf:2: {msg}")
        );
    }
    // Script values keep inner spaces and '='; the comment is still cut off.
    let c = Config::parse(
        "[Interface]\nPostUp =   ip rule add fwmark=1   table  7  # note\n",
        "q",
    )
    .unwrap();
    assert_eq!(c.interface.post_up, ["ip rule add fwmark=1   table  7"]);
}

#[test]
fn zero_keys_mean_none() {
    let zero = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let text = format!(
        "[Interface]\nPrivateKey = {zero}\n[Peer]\nPublicKey = {PUB1}\nPresharedKey = {zero}\n"
    );
    let (c, w) = Config::parse_with_warnings(&text, "z", Dialect::Wg).unwrap();
    assert_eq!(c.interface.private_key, None);
    assert_eq!(c.peers[0].preshared_key, None);
    assert_eq!(
        w,
        ["z:2: PrivateKey: all zeros, which means no private key"]
    );
}

// ---- bytes, sizes, files ----------------------------------------------------------------

#[test]
fn non_utf8_and_nul_are_refused_with_their_line() {
    let mut bytes = b"[Interface]\nListenPort = 1\n# caf".to_vec();
    bytes.extend_from_slice(&[0xc3, 0x28]);
    bytes.extend_from_slice(b"\n");
    let e = Config::parse_bytes(&bytes, "u.conf", Dialect::Wg).unwrap_err();
    assert_eq!(e.to_string(), "u.conf:3: not valid UTF-8");

    let bytes = b"[Interface]\n\nListenPort = 1\0\n";
    let e = Config::parse_bytes(bytes, "n.conf", Dialect::Wg).unwrap_err();
    assert_eq!(e.to_string(), "n.conf:3: contains a NUL byte");
    let e = Config::parse("[Interface]\0", "n.conf").unwrap_err();
    assert_eq!(e.to_string(), "n.conf:1: contains a NUL byte");

    // Valid UTF-8 in a comment is fine.
    Config::parse_bytes("[Interface] # café ✓\n".as_bytes(), "ok", Dialect::Wg).unwrap();
}

#[test]
fn very_long_lines_are_refused() {
    let text = format!("[Interface]\n# {}\n", "x".repeat(MAX_LINE_LEN));
    let e = err(&text);
    assert_eq!(e.line(), Some(2));
    assert!(matches!(
        e,
        ConfigError::Line {
            problem: LineProblem::TooLong { .. },
            ..
        }
    ));
    assert!(
        e.to_string()
            .starts_with("wg0.conf:2: line is 65538 bytes long")
    );
    // Just under the limit is fine.
    let text = format!("[Interface]\n#{}\n", "x".repeat(MAX_LINE_LEN - 1));
    Config::parse(&text, "ok").unwrap();
    // A long value is quoted only in part.
    let text = format!("[Interface]\nListenPort = {}\n", "9".repeat(10_000));
    let m = err_msg(&text);
    assert!(m.len() < 150, "{m}");
    assert!(m.contains("..."));
}

#[test]
fn ten_thousand_lines_parse_quickly() {
    let mut text = format!("[Interface]\nPrivateKey = {PRIV}\nListenPort = 51820\n");
    let peers = 2000u32;
    for n in 0..peers {
        let (a, b) = ((n >> 8) as u8, n as u8);
        let _ = write!(
            text,
            "[Peer]\nPublicKey = {}\nAllowedIPs = 198.18.{a}.{b}/32\nAllowedIPs = 2001:db8:{n:x}::/48\n\
             Endpoint = 198.19.{a}.{b}:51820\n",
            numbered_key(n)
        );
    }
    assert!(text.lines().count() >= 10_000);
    let start = Instant::now();
    let (c, w) = Config::parse_with_warnings(&text, "big", Dialect::Wg).unwrap();
    let parse_time = start.elapsed();
    assert_eq!(c.peers.len(), peers as usize);
    assert!(w.is_empty());
    let start = Instant::now();
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let again = Config::parse_wg_only(&c.to_wg_string(), "again").unwrap();
    assert_eq!(again, c);
    let rest = start.elapsed();
    assert!(
        parse_time < Duration::from_secs(2) && rest < Duration::from_secs(4),
        "parse {parse_time:?}, warnings + round trip {rest:?}"
    );
}

#[test]
fn oversized_input_is_refused() {
    let text = "#".repeat(MAX_CONFIG_LEN + 1);
    let e = Config::parse(&text, "huge.conf").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "huge.conf: the configuration is larger than {MAX_CONFIG_LEN} bytes; refusing to parse it"
        )
    );
    assert!(matches!(
        Config::parse_bytes(text.as_bytes(), "h", Dialect::Wg),
        Err(ConfigError::TooLarge { .. })
    ));

    // A (sparse) file over the limit is refused before it is read.
    let path = temp_path("huge");
    let f = File::create(&path).unwrap();
    f.set_len(MAX_CONFIG_LEN as u64 + 1).unwrap();
    drop(f);
    let r = Config::from_file(&path);
    let _ = std::fs::remove_file(&path);
    let e = r.unwrap_err();
    assert!(matches!(e, ConfigError::TooLarge { .. }));
    assert!(e.to_string().starts_with(&path.display().to_string()));
}

#[test]
fn from_file_reads_the_fixture() {
    let path = fixture("wg0.conf");
    let c = Config::from_file(&path).unwrap();
    assert_eq!(
        c.interface.private_key.as_ref().map(|k| k.public_key()),
        Some(pk(PUB_OWN))
    );
    assert_eq!(c.interface.listen_port, Some(51820));
    assert_eq!(c.interface.fwmark, Some(0x1234));
    assert_eq!(c.interface.table, Some(Table::Off));
    assert_eq!(c.interface.dns, ["198.18.0.53", "example.test"]);
    assert_eq!(c.interface.post_up, ["echo \"up %i\" >> /dev/null"]);
    assert_eq!(c.peers.len(), 2);
    assert_eq!(c.peers[0].allowed_ips.len(), 3);
    assert_eq!(c.peers[1].public_key, pk(PUB2));
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    // The wg-only parser refuses it, naming the file.
    let e = Config::from_file_with_warnings(&path, Dialect::Wg).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:9: Address is a wg-quick(8) key, which wg(8) setconf does not accept",
            path.display()
        )
    );
}

#[test]
fn from_file_errors_name_the_file() {
    let missing = temp_path("missing");
    let e = Config::from_file(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: ", missing.display()))
    );

    let e = Config::from_file(std::env::temp_dir()).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }), "{e}");

    let path = temp_path("latin1");
    std::fs::write(&path, b"[Interface]\n# \xe9t\xe9\n").unwrap();
    let r = Config::from_file(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        r.unwrap_err().to_string(),
        format!("{}:2: not valid UTF-8", path.display())
    );
}

// ---- writing and round trips -----------------------------------------------------------

#[test]
fn to_wg_string_is_showconf() {
    let c = Config::parse(&full_text(), "wg0.conf").unwrap();
    let want = format!(
        "[Interface]\n\
         ListenPort = 51820\n\
         FwMark = 0x20\n\
         PrivateKey = {PRIV}\n\
         \n\
         [Peer]\n\
         PublicKey = {PUB1}\n\
         PresharedKey = {PSK}\n\
         AllowedIPs = 198.18.1.0/24, 2001:db8:1::/48, 198.19.0.0/16\n\
         Endpoint = 198.18.255.1:51820\n\
         PersistentKeepalive = 25\n\
         \n\
         [Peer]\n\
         PublicKey = {PUB2}\n\
         AllowedIPs = 198.18.2.0/24\n\
         Endpoint = [2001:db8::ff]:51821\n"
    );
    assert_eq!(c.to_wg_string(), want);
}

#[test]
fn round_trips() {
    let c = Config::parse(&full_text(), "wg0.conf").unwrap();

    // wg format: the wg-quick keys are dropped, everything else survives.
    let wg = Config::parse_wg_only(&c.to_wg_string(), "wg").unwrap();
    let mut stripped = c.clone();
    stripped.interface = InterfaceConfig {
        private_key: c.interface.private_key.clone(),
        listen_port: c.interface.listen_port,
        fwmark: c.interface.fwmark,
        ..InterfaceConfig::default()
    };
    assert_eq!(wg, stripped);
    assert!(!wg.interface.has_wg_quick_keys());
    assert_eq!(wg.to_wg_string(), c.to_wg_string());

    // wg-quick format: everything survives, and writing is stable.
    let text = c.to_wg_quick_string();
    let q = Config::parse(&text, "wgq").unwrap();
    assert_eq!(q, c);
    assert_eq!(q.to_wg_quick_string(), text);
    assert!(text.starts_with(
        "[Interface]\nAddress = 198.18.0.1/24, 2001:db8::1/64, 198.18.5.5/32\n\
         DNS = 198.18.0.53, 2001:db8::53, search.test\nMTU = 1420\nTable = 1234\n\
         PreUp = echo pre-up %i\n"
    ));
    assert!(text.contains("PostDown = echo post-down one\nPostDown = echo post-down two\n"));
    assert!(text.contains("SaveConfig = true\nListenPort = 51820\n"));

    // The fixture round-trips too.
    let f = Config::from_file(fixture("wg0.conf")).unwrap();
    assert_eq!(Config::parse(&f.to_wg_quick_string(), "f").unwrap(), f);

    // The empty configuration.
    let empty = Config::default();
    assert_eq!(empty.to_wg_string(), "[Interface]\n");
    assert_eq!(
        Config::parse_wg_only(&empty.to_wg_string(), "e").unwrap(),
        empty
    );

    // A model built by hand, with a host-name endpoint and IPv6 scope.
    let mut p = PeerConfig::new(pk(PUB2));
    p.endpoint = Some("[fe80::1%eth0]:7".parse().unwrap());
    p.allowed_ips.push("2001:db8::/32".parse().unwrap());
    let mut h = PeerConfig::new(pk(PUB1));
    h.endpoint = Some("vpn.example.test:51820".parse().unwrap());
    let built = Config {
        interface: InterfaceConfig::default(),
        peers: vec![p, h],
    };
    assert_eq!(
        Config::parse_wg_only(&built.to_wg_string(), "b").unwrap(),
        built
    );
}

#[test]
fn debug_never_prints_secrets() {
    let c = Config::parse(&full_text(), "wg0.conf").unwrap();
    let d = format!("{c:?} {:#?}", c);
    assert!(!d.contains(PRIV));
    assert!(!d.contains(PSK));
    assert!(d.contains("redacted"));
    assert!(d.contains(PUB1));
    // Errors and warnings neither.
    let (_, w) = Config::parse_with_warnings(
        &format!("[Interface]\nPrivateKey={PRIV}\nPrivateKey={PRIV}\n"),
        "w",
        Dialect::Wg,
    )
    .unwrap();
    assert_eq!(w.len(), 1);
    assert!(!w[0].contains(PRIV));
}

// ---- AllowedIp ---------------------------------------------------------------------------

#[test]
fn allowed_ip_parse_display_and_contains() {
    let a: AllowedIp = "198.19.0.0/24".parse().unwrap();
    assert_eq!(a.to_string(), "198.19.0.0/24");
    assert_eq!(
        "198.19.0.1".parse::<AllowedIp>().unwrap().to_string(),
        "198.19.0.1/32"
    );
    assert_eq!(
        "2001:db8::1".parse::<AllowedIp>().unwrap().to_string(),
        "2001:db8::1/128"
    );
    assert_eq!(
        "2001:DB8:0::/32".parse::<AllowedIp>().unwrap().to_string(),
        "2001:db8::/32"
    );
    let host_bits: AllowedIp = "198.18.77.1/17".parse().unwrap();
    assert!(host_bits.has_host_bits());
    assert_eq!(host_bits.network().to_string(), "198.18.0.0/17");
    assert!(!host_bits.network().has_host_bits());
    assert_eq!(
        "2001:db8:ffff::1/33"
            .parse::<AllowedIp>()
            .unwrap()
            .network()
            .to_string(),
        "2001:db8:8000::/33"
    );
    let all4: AllowedIp = "0.0.0.0/0".parse().unwrap();
    let all6: AllowedIp = "::/0".parse().unwrap();
    assert_eq!(all4.network(), all4);
    assert!(all4.contains(&a) && !all4.contains(&all6) && !all6.contains(&a));
    assert!(a.contains(&a));
    assert!(a.contains(&"198.19.0.128/25".parse().unwrap()));
    assert!(!a.contains(&"198.19.1.0/24".parse().unwrap()));
    assert!(!a.contains(&"198.19.0.0/23".parse().unwrap()));
    assert!(a.contains_addr("198.19.0.255".parse().unwrap()));
    assert!(!a.contains_addr("2001:db8::1".parse().unwrap()));
    assert_eq!(AllowedIp::new("198.18.0.0".parse().unwrap(), 33), None);
    assert_eq!(
        AllowedIp::new("2001:db8::".parse().unwrap(), 128).map(|a| a.max_cidr()),
        Some(128)
    );
    assert_eq!(
        AllowedIp::host("198.18.0.9".parse().unwrap()).to_string(),
        "198.18.0.9/32"
    );
    for bad in [
        "",
        "/24",
        "198.18.0.0/ 24",
        " 198.18.0.0",
        "198.18.0.0/24 ",
        "2001:db8::%1/64",
    ] {
        assert!(bad.parse::<AllowedIp>().is_err(), "{bad:?}");
    }
}

// ---- warnings ----------------------------------------------------------------------------

fn with_peers(peers: &[(&str, &str, &str)]) -> Config {
    let mut text = format!("[Interface]\nPrivateKey = {PRIV}\n");
    for (key, ips, extra) in peers {
        let _ = write!(
            text,
            "[Peer]\nPublicKey = {key}\nAllowedIPs = {ips}\n{extra}\n"
        );
    }
    Config::parse(&text, "w").unwrap()
}

#[test]
fn no_warnings_for_a_clean_config() {
    // An Endpoint without PersistentKeepalive is fine.
    let c = with_peers(&[
        (
            PUB1,
            "198.18.1.0/24, 2001:db8:1::/48",
            "Endpoint = 198.18.255.1:51820",
        ),
        (PUB2, "198.18.2.0/24, 2001:db8:2::/48", ""),
    ]);
    assert_eq!(c.warnings(), Vec::<String>::new());
}

#[test]
fn warns_about_the_same_prefix_in_two_peers() {
    let c = with_peers(&[(PUB1, "198.18.1.0/24", ""), (PUB2, "198.18.1.0/24", "")]);
    assert_eq!(
        c.warnings(),
        [format!(
            "AllowedIPs 198.18.1.0/24 is in peer 1 ({PUB1}) and peer 2 ({PUB2}); only the \
             last, peer 2 ({PUB2}), gets it"
        )]
    );
    // Host bits do not hide a duplicate.
    let c = with_peers(&[(PUB1, "2001:db8::/32", ""), (PUB2, "2001:db8::1/32", "")]);
    assert_eq!(c.warnings().len(), 1);
}

#[test]
fn warns_about_a_prefix_inside_another_peers_prefix() {
    let c = with_peers(&[
        (PUB1, "198.18.0.0/15, 2001:db8::/32", ""),
        (PUB2, "198.18.7.0/24, 198.18.7.128/25, 2001:db8:5::/48", ""),
    ]);
    let w = c.warnings();
    assert_eq!(
        w,
        [
            format!(
                "AllowedIPs 198.18.7.0/24 of peer 2 ({PUB2}) lies inside 198.18.0.0/15 of \
                 peer 1 ({PUB1}); the longest match sends 198.18.7.0/24 to the former"
            ),
            format!(
                "AllowedIPs 2001:db8:5::/48 of peer 2 ({PUB2}) lies inside 2001:db8::/32 of \
                 peer 1 ({PUB1}); the longest match sends 2001:db8:5::/48 to the former"
            ),
        ]
    );
    // IPv4 and IPv6 never overlap; disjoint prefixes are fine.
    let c = with_peers(&[(PUB1, "0.0.0.0/0", ""), (PUB2, "::/0", "")]);
    assert!(c.warnings().is_empty());
    let c = with_peers(&[(PUB1, "198.18.0.0/16", ""), (PUB2, "198.19.0.0/16", "")]);
    assert!(c.warnings().is_empty());
}

#[test]
fn warns_about_a_prefix_repeated_within_a_peer() {
    let c = with_peers(&[(
        PUB1,
        "198.18.1.0/24, 198.18.2.0/24, 198.18.1.1/24",
        "AllowedIPs = 198.18.1.0/24",
    )]);
    assert_eq!(
        c.warnings(),
        [format!(
            "peer 1 ({PUB1}) lists AllowedIPs 198.18.1.0/24 3 times"
        )]
    );
    // Repeated in one peer and also in another: both are reported.
    let c = with_peers(&[
        (PUB1, "198.18.1.0/24, 198.18.1.0/24", ""),
        (PUB2, "198.18.1.0/24", ""),
    ]);
    assert_eq!(
        c.warnings(),
        [
            format!("peer 1 ({PUB1}) lists AllowedIPs 198.18.1.0/24 2 times"),
            format!(
                "AllowedIPs 198.18.1.0/24 is in peer 1 ({PUB1}) and peer 2 ({PUB2}); only \
                 the last, peer 2 ({PUB2}), gets it"
            ),
        ]
    );
}

#[test]
fn other_warnings() {
    let text = format!(
        "[Peer]\nPublicKey = {PUB_OWN}\nAllowedIPs = 198.18.0.1\n[Peer]\nPublicKey = {PUB1}\n"
    );
    let c = Config::parse(&text, "o").unwrap();
    assert_eq!(
        c.warnings(),
        [
            "[Interface] has no PrivateKey".to_owned(),
            format!(
                "peer 2 ({PUB1}) has no AllowedIPs; no traffic can be sent to or received from it"
            )
        ]
    );
    let mut c = c;
    c.interface.private_key = Some(PRIV.parse().unwrap());
    assert_eq!(
        c.warnings()[0],
        format!(
            "peer 1 ({PUB_OWN}) has the interface's own public key; WireGuard ignores such a peer"
        )
    );
}

// ---- interface names ---------------------------------------------------------------------

#[test]
fn interface_names_follow_wg_quick() {
    for good in [
        "wg0",
        "a",
        "abcdefghijklmno", // 15 bytes, the most
        "wgx01ab3-0",      // as tests/common/netns.rs makes them
        "A-Z_a=z+0.9",
        "...",
        "wg.0",
        "-",
    ] {
        assert_eq!(check_interface_name(good), Ok(()), "{good:?}");
    }

    assert_eq!(check_interface_name(""), Err(InterfaceNameError::Empty));
    for (long, len) in [
        ("abcdefghijklmnop", 16),
        ("a-name-that-is-too-long", 23),
        ("../../etc/passwd", 16),
        ("éééééééé", 16), // 8 characters, but 16 bytes
    ] {
        assert_eq!(
            check_interface_name(long),
            Err(InterfaceNameError::TooLong {
                name: long.to_owned(),
                len
            }),
            "{long:?}"
        );
    }
    for dots in [".", ".."] {
        assert_eq!(
            check_interface_name(dots),
            Err(InterfaceNameError::Dots(dots.to_owned()))
        );
    }
    for (bad, ch) in [
        ("wg/0", '/'),
        ("../x", '/'),
        ("wg 0", ' '),
        ("wg\t0", '\t'),
        ("wg\n0", '\n'),
        ("wg\0x", '\0'),
        ("wg%d", '%'),
        ("wg:0", ':'),
        ("wg@home", '@'),
        ("wg*", '*'),
        ("wgé", 'é'),
    ] {
        assert_eq!(
            check_interface_name(bad),
            Err(InterfaceNameError::BadChar {
                name: bad.to_owned(),
                ch
            }),
            "{bad:?}"
        );
    }
}

#[test]
fn interface_name_errors_say_what_is_wrong() {
    let msg = |name: &str| check_interface_name(name).unwrap_err().to_string();
    assert_eq!(
        msg(""),
        "invalid interface name \"\": 1 to 15 characters of A-Z a-z 0-9 _ = + . -"
    );
    assert_eq!(
        msg("a-name-that-is-too-long"),
        "invalid interface name \"a-name-that-is-too-long\": 23 bytes, more than 15"
    );
    assert_eq!(
        msg(".."),
        "invalid interface name \"..\": `.' and `..' are not interface names"
    );
    assert_eq!(
        msg("wg 0"),
        "invalid interface name \"wg 0\": ' ' is not allowed (only A-Z a-z 0-9 _ = + . -)"
    );
    // Control characters are escaped, and a long name is quoted only in part.
    assert_eq!(
        msg("wg\n0"),
        "invalid interface name \"wg\\n0\": '\\n' is not allowed (only A-Z a-z 0-9 _ = + . -)"
    );
    let m = msg(&"x".repeat(10_000));
    assert!(m.len() < 150, "{m}");
    assert!(m.contains("...") && m.contains("10000 bytes"), "{m}");
}
