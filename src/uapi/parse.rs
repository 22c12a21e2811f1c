//! The request parser: [`parse_request`] and the size limits it enforces, with Go's parsing of
//! numbers, endpoints and prefixes as wireguard-go applies it.

use super::{InterfaceOp, PeerOp, PeerSet, Request, SetRequest, UapiError};
use crate::conf::AllowedIp;
use crate::crypto::keys::{PresharedKey, PrivateKey, PublicKey, decode_hex_key};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// The largest request accepted, in bytes, including the terminating blank line (32 MiB:
/// `wg setconf` sends a whole configuration in one request, about 160 bytes per peer with two
/// prefixes, so this is room for some 200,000 peers; 1 MiB refused 10,000).
pub const MAX_REQUEST_LEN: usize = 32 << 20;
/// The most lines a request may have, including the operation line and the blank line (four
/// or more per peer in a `wg setconf`).
pub const MAX_LINES: usize = 1 << 21;
/// The longest line, without its `\n` (wireguard-go's `bufio.Scanner` limit, 64 KiB - 1).
pub const MAX_LINE_LEN: usize = 64 * 1024 - 1;

/// How many bytes of a bad key a message quotes.
const SHOWN_KEY_LEN: usize = 64;

/// Splits the request into lines, enforcing the limits.
struct Lines<'a> {
    rest: &'a [u8],
    /// Number of the last line returned (1-based).
    number: usize,
}

impl<'a> Lines<'a> {
    /// The next line without its `\n`.
    fn next_line(&mut self) -> Result<&'a [u8], UapiError> {
        let Some(end) = self.rest.iter().position(|&b| b == b'\n') else {
            return Err(if self.rest.len() > MAX_LINE_LEN {
                UapiError::LineTooLong {
                    line: self.number + 1,
                }
            } else {
                UapiError::Truncated
            });
        };
        let line = self.rest.get(..end).unwrap_or_default();
        self.rest = self.rest.get(end + 1..).unwrap_or_default();
        self.number += 1;
        if self.number > MAX_LINES {
            return Err(UapiError::TooManyLines);
        }
        if line.len() > MAX_LINE_LEN {
            return Err(UapiError::LineTooLong { line: self.number });
        }
        Ok(line)
    }
}

/// Parses one request: everything read from the socket up to and including the blank line
/// that ends it. Never panics, whatever the bytes.
pub fn parse_request(input: &[u8]) -> Result<Request, UapiError> {
    if input.len() > MAX_REQUEST_LEN {
        return Err(UapiError::RequestTooLarge);
    }
    let mut lines = Lines {
        rest: input,
        number: 0,
    };
    // The operation line is matched exactly, as wireguard-go does (no `\r` allowed).
    match lines.next_line()? {
        b"get=1" => match lines.rest {
            [] => Err(UapiError::Truncated),
            [b'\n'] => Ok(Request::Get),
            [b'\n', ..] => Err(UapiError::TrailingData),
            _ => Err(UapiError::GetTrailing),
        },
        b"set=1" => parse_set(&mut lines).map(Request::Set),
        op if op == super::STATS_OP => match lines.rest {
            [] => Err(UapiError::Truncated),
            [b'\n'] => Ok(Request::Stats),
            [b'\n', ..] => Err(UapiError::TrailingData),
            _ => Err(UapiError::GetTrailing),
        },
        _ => Err(UapiError::UnknownOperation),
    }
}

fn parse_set(lines: &mut Lines<'_>) -> Result<SetRequest, UapiError> {
    let mut req = SetRequest::default();
    let mut peer: Option<PeerSet> = None;
    loop {
        let raw = lines.next_line()?;
        // bufio.ScanLines drops one `\r` before the `\n`.
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            if !lines.rest.is_empty() {
                return Err(UapiError::TrailingData);
            }
            req.peers.extend(peer);
            return Ok(req);
        }
        let n = lines.number;
        let Some(eq) = line.iter().position(|&b| b == b'=') else {
            return Err(UapiError::Malformed { line: n });
        };
        let key = line.get(..eq).unwrap_or_default();
        let value = line.get(eq + 1..).unwrap_or_default();
        if key == b"public_key" {
            let k = PublicKey::from_hex(text(value, n, "public_key")?)
                .map_err(|_| invalid(n, "public_key"))?;
            req.peers.extend(peer.replace(PeerSet::new(k)));
            continue;
        }
        match &mut peer {
            None => req.interface.push(parse_device_line(key, value, n)?),
            Some(p) => {
                if let Some(op) = parse_peer_line(key, value, n)? {
                    p.ops.push(op);
                }
            }
        }
    }
}

fn parse_device_line(key: &[u8], value: &[u8], n: usize) -> Result<InterfaceOp, UapiError> {
    Ok(match key {
        b"private_key" => {
            let b = decode_hex_key(text(value, n, "private_key")?)
                .map_err(|_| invalid(n, "private_key"))?;
            if b.iter().all(|&x| x == 0) {
                InterfaceOp::PrivateKey(None)
            } else {
                InterfaceOp::PrivateKey(Some(PrivateKey::from_bytes(*b)))
            }
        }
        b"listen_port" => InterfaceOp::ListenPort(
            parse_uint(text(value, n, "listen_port")?, u16::MAX.into())
                .and_then(|v| u16::try_from(v).ok())
                .ok_or_else(|| invalid(n, "listen_port"))?,
        ),
        b"fwmark" => InterfaceOp::Fwmark(
            parse_uint(text(value, n, "fwmark")?, u32::MAX.into())
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| invalid(n, "fwmark"))?,
        ),
        b"replace_peers" => {
            flag(value, n, "replace_peers")?;
            InterfaceOp::ReplacePeers
        }
        _ => return Err(unknown_key(key, n, false)),
    })
}

/// One peer line; `None` for `protocol_version=1`, which changes nothing.
fn parse_peer_line(key: &[u8], value: &[u8], n: usize) -> Result<Option<PeerOp>, UapiError> {
    Ok(Some(match key {
        b"update_only" => {
            flag(value, n, "update_only")?;
            PeerOp::UpdateOnly
        }
        b"remove" => {
            flag(value, n, "remove")?;
            PeerOp::Remove
        }
        b"preshared_key" => PeerOp::PresharedKey(
            PresharedKey::from_hex(text(value, n, "preshared_key")?)
                .map_err(|_| invalid(n, "preshared_key"))?,
        ),
        b"endpoint" => PeerOp::Endpoint(
            parse_endpoint(text(value, n, "endpoint")?).ok_or_else(|| invalid(n, "endpoint"))?,
        ),
        b"persistent_keepalive_interval" => {
            let k = "persistent_keepalive_interval";
            PeerOp::PersistentKeepalive(
                parse_uint(text(value, n, k)?, u16::MAX.into())
                    .and_then(|v| u16::try_from(v).ok())
                    .ok_or_else(|| invalid(n, k))?,
            )
        }
        b"replace_allowed_ips" => {
            flag(value, n, "replace_allowed_ips")?;
            PeerOp::ReplaceAllowedIps
        }
        b"allowed_ip" => {
            let v = text(value, n, "allowed_ip")?;
            match v.strip_prefix('-') {
                Some(p) => PeerOp::RemoveAllowedIp(
                    parse_prefix(p).ok_or_else(|| invalid(n, "allowed_ip"))?,
                ),
                None => PeerOp::AllowedIp(parse_prefix(v).ok_or_else(|| invalid(n, "allowed_ip"))?),
            }
        }
        b"protocol_version" => {
            if value != b"1" {
                return Err(invalid(n, "protocol_version"));
            }
            return Ok(None);
        }
        _ => return Err(unknown_key(key, n, true)),
    }))
}

fn invalid(line: usize, key: &'static str) -> UapiError {
    UapiError::InvalidValue { line, key }
}

fn unknown_key(key: &[u8], line: usize, peer: bool) -> UapiError {
    let shown = key.get(..SHOWN_KEY_LEN).unwrap_or(key);
    UapiError::UnknownKey {
        line,
        key: String::from_utf8_lossy(shown).escape_debug().to_string(),
        peer,
    }
}

/// The value as UTF-8 (every valid value is ASCII).
fn text<'a>(value: &'a [u8], line: usize, key: &'static str) -> Result<&'a str, UapiError> {
    std::str::from_utf8(value).map_err(|_| invalid(line, key))
}

/// The only value wireguard-go accepts for a flag.
fn flag(value: &[u8], line: usize, key: &'static str) -> Result<(), UapiError> {
    if value == b"true" {
        Ok(())
    } else {
        Err(invalid(line, key))
    }
}

/// Go's `strconv.ParseUint(s, 10, bits)`: decimal digits only (leading zeros allowed, no sign,
/// no underscore), at most `max`.
fn parse_uint(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        let d = match b {
            b'0'..=b'9' => u64::from(b - b'0'),
            _ => return None,
        };
        v = v.checked_mul(10)?.checked_add(d)?;
        if v > max {
            return None;
        }
    }
    Some(v)
}

/// Go's `netip.ParseAddrPort`, as wireguard-go's bind parses endpoints: `a.b.c.d:port` or
/// `[ipv6]:port` / `[ipv6%zone]:port` (brackets exactly for IPv6). The port may be 0. Only a
/// numeric zone is accepted (a `SocketAddrV6` holds a scope index, not an interface name).
fn parse_endpoint(s: &str) -> Option<SocketAddr> {
    let (host, port) = s.rsplit_once(':')?;
    if host.is_empty() {
        return None;
    }
    let port = u16::try_from(parse_uint(port, u16::MAX.into())?).ok()?;
    match host.strip_prefix('[') {
        Some(inner) => {
            let inner = inner.strip_suffix(']')?;
            let (addr, scope) = match inner.split_once('%') {
                Some((a, zone)) => {
                    let zone = u32::try_from(parse_uint(zone, u32::MAX.into())?).ok()?;
                    (a, zone)
                }
                None => (inner, 0),
            };
            let addr = addr.parse::<Ipv6Addr>().ok()?;
            Some(SocketAddr::V6(SocketAddrV6::new(addr, port, 0, scope)))
        }
        None => {
            let addr = host.parse::<Ipv4Addr>().ok()?;
            Some(SocketAddr::new(IpAddr::V4(addr), port))
        }
    }
}

/// Go's `netip.ParsePrefix`: `address/bits`, the `/bits` required, no zone, bits in range for
/// the family: decimal digits, no sign (as current Go; the older Go that built Debian's
/// wireguard-go took `/+8`), leading zeros allowed (as that Go). Host bits are kept (the table
/// masks them).
fn parse_prefix(s: &str) -> Option<AllowedIp> {
    let (addr, bits) = s.rsplit_once('/')?;
    let addr: IpAddr = if addr.contains(':') {
        IpAddr::V6(addr.parse().ok()?)
    } else {
        IpAddr::V4(addr.parse().ok()?)
    };
    let bits = u8::try_from(parse_uint(bits, 128)?).ok()?;
    AllowedIp::new(addr, bits)
}
