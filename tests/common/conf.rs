//! wg(8)-style configuration text for tests.

use wgd::crypto::keys::{PresharedKey, PrivateKey};

/// A configuration with one peer: our key, an optional ListenPort, the peer's key (its public
/// half is used), a PSK (zero = none), the peer's AllowedIPs and an optional Endpoint.
pub fn conf(
    own: &PrivateKey,
    port: Option<u16>,
    peer: &PrivateKey,
    psk: &PresharedKey,
    allowed: &str,
    endpoint: Option<&str>,
) -> String {
    let mut c = format!("[Interface]\nPrivateKey = {}\n", own.to_base64().as_str());
    if let Some(p) = port {
        c += &format!("ListenPort = {p}\n");
    }
    c += &format!(
        "\n[Peer]\nPublicKey = {}\nAllowedIPs = {allowed}\n",
        peer.public_key()
    );
    if !psk.is_zero() {
        c += &format!("PresharedKey = {}\n", psk.to_base64().as_str());
    }
    if let Some(e) = endpoint {
        c += &format!("Endpoint = {e}\n");
    }
    c
}

/// The configurations of the usual two-host pair: the server (ListenPort 51820, AllowedIPs of
/// the client's tunnel addresses 198.19.0.2 and 2001:db8:1::2) and the client (the server's
/// tunnel addresses, `endpoint` = the server's underlay address). Fresh keys; a random PSK when
/// `psk`.
pub fn pair_confs(psk: bool, endpoint: &str) -> (String, String) {
    use rand_core::OsRng;
    let ka = PrivateKey::generate(&mut OsRng);
    let kb = PrivateKey::generate(&mut OsRng);
    let psk = if psk {
        PresharedKey::generate(&mut OsRng)
    } else {
        PresharedKey::default()
    };
    let server = conf(
        &ka,
        Some(51820),
        &kb,
        &psk,
        "198.19.0.2/32, 2001:db8:1::2/128",
        None,
    );
    let client = conf(
        &kb,
        None,
        &ka,
        &psk,
        "198.19.0.1/32, 2001:db8:1::1/128",
        Some(endpoint),
    );
    (server, client)
}
