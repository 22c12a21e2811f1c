//! The value types shared by the configuration model and the rest of wgd: IP prefixes
//! ([`AllowedIp`]), peer endpoints ([`EndpointSpec`]) and wg-quick routing tables ([`Table`]),
//! each with its `FromStr` (the configuration syntax), `Display` (the same syntax back) and
//! error type; and the one rule for interface names, [`check_interface_name`].

use super::error::shown;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

// ---------------------------------------------------------------------------------------------
// AllowedIp
// ---------------------------------------------------------------------------------------------

/// An IP prefix: an address and a CIDR mask length (`198.18.0.0/24`, `2001:db8::/32`).
///
/// Parsing does not mask: `198.18.0.1/24` keeps its host bits (as `Address` needs); the parser
/// stores peers' `AllowedIPs` as [`AllowedIp::network`], as the kernel does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllowedIp {
    /// The address.
    pub addr: IpAddr,
    /// The mask length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub cidr: u8,
}

/// A string that is not `address[/cidr]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowedIpError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("unable to parse IP address `{0}'")]
    Address(String),
    /// The mask is not a number, or too large for the address family.
    #[error("`{0}' is not in the correct format (CIDR mask out of range or not a number)")]
    Cidr(String),
}

impl AllowedIp {
    /// A prefix; `None` if `cidr` is too long for the address family.
    pub fn new(addr: IpAddr, cidr: u8) -> Option<Self> {
        (cidr <= max_cidr(addr)).then_some(AllowedIp { addr, cidr })
    }

    /// The single-address prefix (`/32` or `/128`).
    pub fn host(addr: IpAddr) -> Self {
        AllowedIp {
            addr,
            cidr: max_cidr(addr),
        }
    }

    /// The longest mask for this prefix's address family (32 or 128).
    pub fn max_cidr(&self) -> u8 {
        max_cidr(self.addr)
    }

    /// The prefix with its host bits cleared (`198.18.0.1/24` → `198.18.0.0/24`).
    pub fn network(&self) -> Self {
        AllowedIp {
            addr: mask_addr(self.addr, self.cidr),
            cidr: self.cidr,
        }
    }

    /// True if bits beyond the mask are set (`wg` warns about such `AllowedIPs`).
    pub fn has_host_bits(&self) -> bool {
        self.network().addr != self.addr
    }

    /// True if every address of `other` is inside `self` (same family, `other` at least as
    /// long, same network bits). A prefix contains itself.
    pub fn contains(&self, other: &AllowedIp) -> bool {
        self.addr.is_ipv4() == other.addr.is_ipv4()
            && other.cidr >= self.cidr
            && mask_addr(other.addr, self.cidr) == mask_addr(self.addr, self.cidr)
    }

    /// True if `ip` is inside this prefix.
    pub fn contains_addr(&self, ip: IpAddr) -> bool {
        self.contains(&AllowedIp::host(ip))
    }
}

fn max_cidr(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask_addr(addr: IpAddr, cidr: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let shift = 32u32.saturating_sub(u32::from(cidr));
            let mask = u32::MAX.checked_shl(shift).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let shift = 128u32.saturating_sub(u32::from(cidr));
            let mask = u128::MAX.checked_shl(shift).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

impl fmt::Display for AllowedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.cidr)
    }
}

impl FromStr for AllowedIp {
    type Err = AllowedIpError;

    /// Parses `address[/cidr]` as `wg` does: an address with a `:` is IPv6, otherwise dotted
    /// IPv4; the mask is decimal digits only; a bare address is `/32` or `/128`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (ip, mask) = match s.split_once('/') {
            Some((ip, mask)) => (ip, Some(mask)),
            None => (s, None),
        };
        let addr = if ip.contains(':') {
            ip.parse::<Ipv6Addr>().map(IpAddr::V6).ok()
        } else {
            ip.parse::<Ipv4Addr>().map(IpAddr::V4).ok()
        }
        .ok_or_else(|| AllowedIpError::Address(shown(ip)))?;
        let cidr = match mask {
            None => max_cidr(addr),
            Some(m) => parse_digits::<u8>(m)
                .filter(|&c| c <= max_cidr(addr))
                .ok_or_else(|| AllowedIpError::Cidr(shown(s)))?,
        };
        Ok(AllowedIp { addr, cidr })
    }
}

// ---------------------------------------------------------------------------------------------
// EndpointSpec
// ---------------------------------------------------------------------------------------------

/// A peer's endpoint as written: a host (IP literal or host name, without brackets) and a port.
/// Host names are resolved by [`EndpointSpec::resolve`], not by the parser.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EndpointSpec {
    /// An IPv4 address, an IPv6 address (optionally with a `%scope`), or a host name.
    pub host: String,
    /// The UDP port (non-zero).
    pub port: u16,
}

/// A string that is not `host:port` / `[ipv6]:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Nothing was given.
    #[error("unable to parse empty endpoint")]
    Empty,
    /// `[` without `]`.
    #[error("unable to find matching brace of endpoint `{0}'")]
    NoClosingBracket(String),
    /// No `:port` (or an empty one).
    #[error("unable to find port of endpoint `{0}' (expected host:port or [ipv6]:port)")]
    MissingPort(String),
    /// The port is not a number 1-65535.
    #[error("`{0}' is not a port number (1-65535)")]
    BadPort(String),
    /// An IPv6 address without brackets (`2001:db8::1:51820` is ambiguous).
    #[error("IPv6 endpoint `{0}' must be in brackets, as [address]:port")]
    UnbracketedIpv6(String),
    /// The host is neither an IP address nor a plausible host name.
    #[error("`{0}' is neither an IP address nor a host name")]
    BadHost(String),
}

impl EndpointSpec {
    /// Resolves the endpoint with the system resolver (`getaddrinfo` for host names), taking the
    /// first address, as `wg` does.
    pub fn resolve(&self) -> io::Result<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{self}: no IPv4 or IPv6 address found"),
                )
            })
    }

    /// The address, if the host is an IP literal (no resolution needed).
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The socket address, if the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.ip().map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl From<SocketAddr> for EndpointSpec {
    fn from(a: SocketAddr) -> Self {
        EndpointSpec {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

impl fmt::Display for EndpointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for EndpointSpec {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(EndpointError::Empty);
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| EndpointError::NoClosingBracket(shown(s)))?;
            let port = after
                .strip_prefix(':')
                .filter(|p| !p.is_empty())
                .ok_or_else(|| EndpointError::MissingPort(shown(s)))?;
            // Inside brackets: an IPv6 literal, optionally with a non-empty %scope.
            let (addr, scope) = match host.split_once('%') {
                Some((a, scope)) => (a, Some(scope)),
                None => (host, None),
            };
            let scope_ok = scope.is_none_or(|sc| {
                !sc.is_empty()
                    && sc
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            });
            if addr.parse::<Ipv6Addr>().is_err() || !scope_ok {
                return Err(EndpointError::BadHost(shown(host)));
            }
            (host, port)
        } else {
            if s.bytes().filter(|&b| b == b':').count() > 1 {
                return Err(EndpointError::UnbracketedIpv6(shown(s)));
            }
            let (host, port) = s
                .rsplit_once(':')
                .filter(|(_, p)| !p.is_empty())
                .ok_or_else(|| EndpointError::MissingPort(shown(s)))?;
            if !is_plausible_host(host) {
                return Err(EndpointError::BadHost(shown(host)));
            }
            (host, port)
        };
        let port = parse_digits::<u16>(port)
            .filter(|&p| p != 0)
            .ok_or_else(|| EndpointError::BadPort(shown(port)))?;
        Ok(EndpointSpec {
            host: host.to_owned(),
            port,
        })
    }
}

/// An IPv4 literal, or a host name of ASCII letters, digits, `-`, `_` and `.` that does not
/// look like a broken IPv4 literal.
fn is_plausible_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host.parse::<Ipv4Addr>().is_ok();
    }
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

// ---------------------------------------------------------------------------------------------
// Table
// ---------------------------------------------------------------------------------------------

/// `wg-quick`'s `Table`: where routes for `AllowedIPs` go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Table {
    /// No routes at all.
    Off,
    /// The default: the main table, with special handling of default routes.
    Auto,
    /// A numbered routing table (`main`, `local` and `default` are parsed as 254, 255 and 253).
    Id(u32),
}

/// A `Table` value that is not `off`, `auto`, a standard table name or a table number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}' is neither off, auto, main, local, default nor a table number 1-4294967295")]
pub struct TableError(String);

impl FromStr for Table {
    type Err = TableError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let named = [
            ("off", Table::Off),
            ("auto", Table::Auto),
            ("main", Table::Id(254)),
            ("local", Table::Id(255)),
            ("default", Table::Id(253)),
        ];
        if let Some((_, t)) = named.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)) {
            return Ok(*t);
        }
        parse_digits::<u32>(s)
            .filter(|&n| n != 0)
            .map(Table::Id)
            .ok_or_else(|| TableError(shown(s)))
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Table::Off => f.write_str("off"),
            Table::Auto => f.write_str("auto"),
            Table::Id(n) => write!(f, "{n}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Interface names
// ---------------------------------------------------------------------------------------------

/// The longest interface name in bytes: the kernel's `IFNAMSIZ` (16) less the terminating NUL.
const MAX_INTERFACE_NAME_LEN: usize = 15;

/// An interface name that [`check_interface_name`] refuses. Every message starts with
/// `invalid interface name` and quotes the name (escaped, at most 64 characters of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceNameError {
    /// The empty string.
    #[error("invalid interface name \"\": 1 to 15 characters of A-Z a-z 0-9 _ = + . -")]
    Empty,
    /// Longer than 15 bytes.
    #[error("invalid interface name {name:?}: {len} bytes, more than 15")]
    TooLong {
        /// The name as given (shortened).
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// `.` or `..`, which the kernel refuses as interface names.
    #[error("invalid interface name {0:?}: `.' and `..' are not interface names")]
    Dots(String),
    /// A character outside `A-Z a-z 0-9 _ = + . -`.
    #[error("invalid interface name {name:?}: {ch:?} is not allowed (only A-Z a-z 0-9 _ = + . -)")]
    BadChar {
        /// The name as given (shortened).
        name: String,
        /// The first character not allowed.
        ch: char,
    },
}

/// Checks an interface name given on the command line or taken from a configuration file's
/// name (`wgd up`, `wgd IFACE`, `wgd show`, `wgd down`): 1 to 15 bytes, each one of
/// `A-Z a-z 0-9 _ = + . -`, and not `.` or `..`.
///
/// The character set and length are `wg-quick`'s rule (`[a-zA-Z0-9_=+.-]{1,15}`), chosen so
/// that wgd accepts exactly the names `wg-quick up NAME` does; `.` and `..` are refused on top
/// of it, as the kernel refuses them. The rule is stricter than the kernel's own (which takes
/// any bytes but `/`, `:`, whitespace and NUL): it also keeps `%` (which the kernel would
/// expand to a number) out, and makes every name safe as the file name of its UAPI socket,
/// `/var/run/wireguard/NAME.sock`.
pub fn check_interface_name(name: &str) -> Result<(), InterfaceNameError> {
    if name.is_empty() {
        return Err(InterfaceNameError::Empty);
    }
    if name.len() > MAX_INTERFACE_NAME_LEN {
        return Err(InterfaceNameError::TooLong {
            name: shown(name),
            len: name.len(),
        });
    }
    if name == "." || name == ".." {
        return Err(InterfaceNameError::Dots(name.to_owned()));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_=+.-".contains(c);
    if let Some(ch) = name.chars().find(|&c| !allowed(c)) {
        return Err(InterfaceNameError::BadChar {
            name: shown(name),
            ch,
        });
    }
    Ok(())
}

/// Parses a non-empty string of ASCII digits (no sign, no spaces).
pub(super) fn parse_digits<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
