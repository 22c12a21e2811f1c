//! The configuration model of wgd, and the parser and writer for the `wg(8)` / `wg-quick(8)`
//! configuration format.
//!
//! Parsing follows wireguard-tools' `config.c` (and `wg-quick`'s `parse_options` for the extra
//! `[Interface]` keys):
//!
//! - everything from `#` to the end of the line is a comment;
//! - all whitespace is removed from a line before it is looked at, so `Public Key = …` and
//!   `PublicKey=…` are the same (the `PreUp`/`PostUp`/`PreDown`/`PostDown` values are the
//!   exception: they keep their inner spaces and are only trimmed, as `wg-quick` does);
//! - section names and keys are case-insensitive;
//! - `AllowedIPs` (and `Address`, `DNS`) are comma-separated lists and accumulate over repeated
//!   lines; any other key given twice overrides the earlier value (a warning says so);
//! - `[Interface]` may appear more than once (`wg` merges the sections);
//! - endpoints are `host:port`, IPv6 literals in brackets; host names are kept as written and
//!   resolved later, by [`EndpointSpec::resolve`].
//!
//! Stricter than `wg`: a `[Peer]` whose `PublicKey` was already used is an error (naming both
//! lines), ports must be numeric, endpoint ports must be non-zero, an unbracketed IPv6 endpoint
//! is refused, and files over [`MAX_CONFIG_LEN`] bytes, lines over [`MAX_LINE_LEN`] bytes, NUL
//! bytes and invalid UTF-8 are refused.
//!
//! Every error names the origin (file name), the line number and, where there is one, the key:
//! `wg0.conf:7: PublicKey: Key is not the correct length or format`. Secret values are never
//! echoed in errors, warnings or `Debug` output.
//!
//! The code is split by concern, one file each; every public item is re-exported here, so
//! callers name it `crate::conf::X` whatever file it lives in:
//!
//! - `values.rs`: the value types the rest of wgd shares ([`AllowedIp`], [`EndpointSpec`],
//!   [`Table`]) with their parsing, display and errors, and [`check_interface_name`];
//! - `model.rs`: the configuration itself ([`Config`], [`InterfaceConfig`], [`PeerConfig`]) and
//!   the [`Dialect`] it is read in;
//! - `error.rs`: [`ConfigError`] and what it carries, and the helpers that keep secrets out of
//!   messages;
//! - `parse.rs`: the parser and the [`Config`] methods that read text and files;
//! - `write.rs`: the [`Config`] methods that write `wg(8)` and `wg-quick(8)` text;
//! - `lint.rs`: [`Config::warnings`], the problems that do not make a configuration invalid.

mod error;
mod lint;
mod model;
mod parse;
mod values;
mod write;

#[cfg(test)]
mod tests;

pub use error::{ConfigError, LineProblem, ValueProblem};
pub use model::{Config, Dialect, InterfaceConfig, PeerConfig};
pub use parse::{MAX_CONFIG_LEN, MAX_LINE_LEN};
pub use values::{
    AllowedIp, AllowedIpError, EndpointError, EndpointSpec, InterfaceNameError, Table, TableError,
    check_interface_name,
};
