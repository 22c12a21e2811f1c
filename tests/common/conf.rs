//! wg(8)-style configuration text for tests.

use wgd::keys::{PresharedKey, PrivateKey};

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
