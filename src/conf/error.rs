//! What goes wrong when a configuration is read: [`ConfigError`] names the origin, the line and
//! the key; [`LineProblem`] and [`ValueProblem`] say what is wrong. The helpers `shown` and
//! `shown_name` quote what the user wrote without ever echoing a secret.

use super::values::{AllowedIpError, EndpointError, TableError};
use crate::crypto::keys::{KeyFormatError, PublicKey};
use std::io;

/// A configuration that cannot be read or parsed. The message names the origin, the line and,
/// where there is one, the key; it never contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: {error}")]
    Io {
        /// The file.
        origin: String,
        /// What went wrong.
        error: io::Error,
    },
    /// The file is larger than [`MAX_CONFIG_LEN`](super::MAX_CONFIG_LEN).
    #[error("{origin}: the configuration is larger than {limit} bytes; refusing to parse it")]
    TooLarge {
        /// The file.
        origin: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// A line that is wrong as a whole (syntax, section, unknown key).
    #[error("{origin}:{line}: {problem}")]
    Line {
        /// The file.
        origin: String,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        problem: LineProblem,
    },
    /// A known key with a bad value.
    #[error("{origin}:{line}: {key}: {problem}")]
    Value {
        /// The file.
        origin: String,
        /// The line number, from 1.
        line: usize,
        /// The key, spelled as in the manual page.
        key: &'static str,
        /// What is wrong.
        problem: ValueProblem,
    },
}

impl ConfigError {
    /// The line number the error is about, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Line { line, .. } | ConfigError::Value { line, .. } => Some(*line),
            ConfigError::Io { .. } | ConfigError::TooLarge { .. } => None,
        }
    }

    /// The key the error is about (as spelled in the manual page), if any.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            ConfigError::Value { key, .. } => Some(*key),
            ConfigError::Line {
                problem: LineProblem::WrongSection { key, .. } | LineProblem::WgQuickOnly { key },
                ..
            } => Some(*key),
            _ => None,
        }
    }
}

/// What is wrong with a line as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    /// The line is not valid UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// The line contains a NUL byte.
    #[error("contains a NUL byte")]
    Nul,
    /// The line is longer than [`MAX_LINE_LEN`](super::MAX_LINE_LEN).
    #[error(
        "line is {len} bytes long, more than {limit}; split long lists over several lines \
         (AllowedIPs, Address and DNS accumulate)"
    )]
    TooLong {
        /// The line's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A `[Section]` other than `[Interface]` and `[Peer]`.
    #[error("unknown section `{0}' (expected [Interface] or [Peer])")]
    UnknownSection(String),
    /// Neither a section header nor `Key = Value`.
    #[error("line is neither a [Section] header nor `Key = Value'")]
    NoEquals,
    /// A key before the first section header.
    #[error("key `{0}' is outside of any section (expected [Interface] or [Peer] first)")]
    OutsideSection(String),
    /// A key that no section knows.
    #[error("unknown key `{key}' in [{section}]")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The section it appeared in.
        section: &'static str,
    },
    /// A key of the other section.
    #[error("{key} belongs in [{expected}], not in [{section}]")]
    WrongSection {
        /// The key.
        key: &'static str,
        /// Where it belongs.
        expected: &'static str,
        /// Where it appeared.
        section: &'static str,
    },
    /// A wg-quick key, given to the `wg`-only parser.
    #[error("{key} is a wg-quick(8) key, which wg(8) setconf does not accept")]
    WgQuickOnly {
        /// The key.
        key: &'static str,
    },
    /// A `[Peer]` section without `PublicKey` (the line is the section header's).
    #[error("[Peer] section has no PublicKey")]
    MissingPublicKey,
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueProblem {
    /// `Key =` with nothing after it.
    #[error("empty value")]
    Empty,
    /// A key that is not 44 characters of base64 (the value is not quoted: it may be secret).
    #[error(transparent)]
    Key(#[from] KeyFormatError),
    /// A listen port that is not a number 0-65535.
    #[error("`{0}' is not a port number (0-65535)")]
    Port(String),
    /// A fwmark that is neither `off` nor a 32-bit number.
    #[error("`{0}' is neither 0/off nor 0-0xffffffff")]
    FwMark(String),
    /// A bad `AllowedIPs` or `Address` entry.
    #[error(transparent)]
    Prefix(#[from] AllowedIpError),
    /// An `AllowedIPs` entry with `+`/`-`, which only `wg set` understands.
    #[error("`{0}': incremental +/- AllowedIPs are for `wg set', not for configuration files")]
    Incremental(String),
    /// A bad endpoint.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// A persistent keepalive that is neither `off` nor 0-65535.
    #[error("`{0}' is neither 0/off nor 1-65535")]
    Keepalive(String),
    /// An MTU that is not a number 68-65535.
    #[error("`{0}' is not an MTU (68-65535)")]
    Mtu(String),
    /// A bad routing table.
    #[error(transparent)]
    Table(#[from] TableError),
    /// A `SaveConfig` that is neither `true` nor `false`.
    #[error("`{0}' is neither true nor false")]
    Bool(String),
    /// A second `[Peer]` with the same public key.
    #[error("peer {key} is already defined on line {first_line}")]
    DuplicatePeer {
        /// The repeated key.
        key: PublicKey,
        /// The line of the first definition's `PublicKey`.
        first_line: usize,
    },
}

/// How many characters of a bad value an error message quotes.
const SHOWN_LEN: usize = 64;

/// Quotes at most [`SHOWN_LEN`] characters of a value in a message.
pub(super) fn shown(s: &str) -> String {
    match s.char_indices().nth(SHOWN_LEN) {
        Some((i, _)) => format!("{}...", s.get(..i).unwrap_or_default()),
        None => s.to_owned(),
    }
}

/// Quotes a key or section name the user wrote, unless it could be something else (a pasted
/// key without its name, say): only short names of letters, digits and `_-.[]` are shown.
pub(super) fn shown_name(s: &str) -> String {
    if s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.[]".contains(&b))
    {
        s.to_owned()
    } else {
        format!("<{} characters, not shown>", s.chars().count())
    }
}
