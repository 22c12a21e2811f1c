//! The configuration model: one `[Interface]` and its `[Peer]`s, as read from a file or built
//! by the UAPI, and the [`Dialect`] that says which keys a file may contain.

use super::values::{AllowedIp, EndpointSpec, Table};
use crate::crypto::keys::{PresharedKey, PrivateKey, PublicKey};

/// The `[Interface]` section. `Debug` never prints the private key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// `PrivateKey`. An all-zero key (which `wg` treats as "no key") is stored as `None`.
    pub private_key: Option<PrivateKey>,
    /// `ListenPort`; `None` (or 0 in the file) lets the system choose.
    pub listen_port: Option<u16>,
    /// `FwMark`; `None` when absent, `0` or `off`.
    pub fwmark: Option<u32>,
    /// wg-quick `Address`: interface addresses, host bits kept (`198.18.0.1/24`).
    pub addresses: Vec<AllowedIp>,
    /// wg-quick `DNS`: name server addresses and search domains, as written.
    pub dns: Vec<String>,
    /// wg-quick `MTU`.
    pub mtu: Option<u32>,
    /// wg-quick `Table`.
    pub table: Option<Table>,
    /// wg-quick `PreUp` commands, in order.
    pub pre_up: Vec<String>,
    /// wg-quick `PostUp` commands, in order.
    pub post_up: Vec<String>,
    /// wg-quick `PreDown` commands, in order.
    pub pre_down: Vec<String>,
    /// wg-quick `PostDown` commands, in order.
    pub post_down: Vec<String>,
    /// wg-quick `SaveConfig`.
    pub save_config: bool,
}

impl InterfaceConfig {
    /// True if any wg-quick-only key is set.
    pub fn has_wg_quick_keys(&self) -> bool {
        !self.addresses.is_empty()
            || !self.dns.is_empty()
            || self.mtu.is_some()
            || self.table.is_some()
            || !self.pre_up.is_empty()
            || !self.post_up.is_empty()
            || !self.pre_down.is_empty()
            || !self.post_down.is_empty()
            || self.save_config
    }
}

/// A `[Peer]` section. `Debug` never prints the preshared key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// `PublicKey` (required).
    pub public_key: PublicKey,
    /// `PresharedKey`. An all-zero key (no PSK) is stored as `None`.
    pub preshared_key: Option<PresharedKey>,
    /// `AllowedIPs`, in file order, host bits cleared.
    pub allowed_ips: Vec<AllowedIp>,
    /// `Endpoint`, unresolved.
    pub endpoint: Option<EndpointSpec>,
    /// `PersistentKeepalive` in seconds (1-65535); `None` when absent, `0` or `off`.
    pub persistent_keepalive: Option<u16>,
}

impl PeerConfig {
    /// A peer with only a public key.
    pub fn new(public_key: PublicKey) -> Self {
        PeerConfig {
            public_key,
            preshared_key: None,
            allowed_ips: Vec::new(),
            endpoint: None,
            persistent_keepalive: None,
        }
    }
}

/// A whole configuration: one interface and its peers, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The `[Interface]` section (merged, if it appeared more than once).
    pub interface: InterfaceConfig,
    /// The `[Peer]` sections.
    pub peers: Vec<PeerConfig>,
}

/// Which keys a configuration may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Only what `wg setconf` accepts.
    Wg,
    /// `wg` keys plus `wg-quick`'s `Address`, `DNS`, `MTU`, `Table`, `PreUp`, `PostUp`,
    /// `PreDown`, `PostDown` and `SaveConfig`.
    WgQuick,
}
