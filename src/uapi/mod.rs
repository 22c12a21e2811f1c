//! The cross-platform configuration protocol (wireguard.com/xplatform) that the stock `wg` and
//! `wg-quick` speak to userspace implementations over `/var/run/wireguard/IFACE.sock`: the
//! request parser, the `set` operation on the core, the `get` reply, the socket the daemon
//! serves them on ([`server`]) and the client that asks ([`client`]). Apart from those two
//! modules it is pure: no I/O, no clock, no socket; the daemon reads the request, binds the
//! listen port, sets the fwmark and writes the reply.
//!
//! Behaviour follows wireguard-go's `device/uapi.go` (the implementation `wg` is tested against
//! on Linux), with these deliberate differences:
//!
//! - a `set` is **atomic**: the whole request is parsed and checked before anything changes, so
//!   a bad last line leaves the device as it was (wireguard-go applies line by line and stops
//!   at the first error, keeping what came before);
//! - a request that ends without its blank line is refused with `-EPROTO` (wireguard-go applies
//!   it and answers `errno=0` to a client that has gone);
//! - size limits: at most [`MAX_REQUEST_LEN`] bytes and [`MAX_LINES`] lines (wireguard-go only
//!   limits a line, to 64 KiB, with `-EIO`; the same class is used for all three);
//! - `allowed_ip=-PREFIX` removes one prefix from the peer (the 2025 extension that came with the
//!   kernel's `WGALLOWEDIP_F_REMOVE_ME`; Debian's wireguard-go 0.0.20220316 refuses it with
//!   `-EINVAL`);
//! - `persistent_keepalive_interval` turning on sends one keepalive at the end of the peer's
//!   block, for that peer only (wireguard-go carries the flag over to the following blocks).
//!
//! Errors are answered with a **negative** errno (`errno=-22`), as wireguard-go writes them and
//! `wg` expects: see [`UapiError::errno`].
//!
//! The code is split by concern, one file each; every public item is re-exported here, so
//! callers name it `crate::uapi::X` whatever file it lives in ([`server`] and [`client`]
//! excepted, public modules of their own):
//!
//! - `error.rs`: [`UapiError`] and the errno each class is answered with;
//! - `request.rs`: the request model ([`Request`], [`SetRequest`], [`InterfaceOp`],
//!   [`PeerSet`], [`PeerOp`]) and [`SetRequest::to_request_text`], which writes it as text;
//! - `parse.rs`: [`parse_request`] and the size limits ([`MAX_REQUEST_LEN`], [`MAX_LINES`],
//!   [`MAX_LINE_LEN`]);
//! - `apply.rs`: [`apply`](fn@apply), which returns an [`InterfaceChange`], and the limits it
//!   checks ([`MAX_PEERS`], [`MAX_PREFIXES`]);
//! - `get.rs`: the reply to `get=1`, written ([`format_get`]) and read back
//!   ([`parse_get_reply`] into a [`GetReply`]), and the reply to a `set` ([`format_errno`]);
//! - `from_config.rs`: the requests `wg setconf`, `addconf` and `syncconf` send for a
//!   configuration ([`set_request_from_config`], [`sync_request_from_config`] and their
//!   `_with` forms, which take a resolver);
//! - [`server`]: the socket, as the daemon serves it;
//! - [`client`]: the socket, as `wgd show` and `wgd down` use it: connect, `get=1`.

mod apply;
pub mod client;
mod error;
mod from_config;
mod get;
mod parse;
mod request;
pub mod server;
mod stats;

#[cfg(test)]
mod tests;

pub use apply::{InterfaceChange, MAX_PEERS, MAX_PREFIXES, apply};
pub use error::UapiError;
pub use from_config::{
    set_request_from_config, set_request_from_config_with, sync_request_from_config,
    sync_request_from_config_with,
};
pub use get::{GetReply, GetReplyError, PeerInfo, format_errno, format_get, parse_get_reply};
pub use parse::{MAX_LINE_LEN, MAX_LINES, MAX_REQUEST_LEN, parse_request};
pub use request::{InterfaceOp, PeerOp, PeerSet, Request, SetRequest};
pub use stats::{
    PeerCounters, STATS_OP, STATS_REQUEST, Stats, StatsReplyError, format_stats, parse_stats_reply,
};
