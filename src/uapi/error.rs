//! [`UapiError`]: why a request was refused, and the errno each class is answered with.

use super::{MAX_LINE_LEN, MAX_LINES, MAX_PEERS, MAX_REQUEST_LEN};

/// Why a request was refused. [`UapiError::errno`] is the value to answer with.
///
/// Messages never contain a value (it may be a key); only key names and line numbers
/// (the operation line is line 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UapiError {
    /// The request is larger than [`MAX_REQUEST_LEN`].
    #[error("request larger than {MAX_REQUEST_LEN} bytes")]
    RequestTooLarge,
    /// The request has more than [`MAX_LINES`] lines.
    #[error("request has more than {MAX_LINES} lines")]
    TooManyLines,
    /// A line is longer than [`MAX_LINE_LEN`].
    #[error("line {line} is longer than {MAX_LINE_LEN} bytes")]
    LineTooLong {
        /// The line number.
        line: usize,
    },
    /// The request ends before its blank line.
    #[error("request ends before its terminating blank line")]
    Truncated,
    /// The first line is neither `get=1` nor `set=1`. wireguard-go closes the connection
    /// without a reply in this case; answering `-EINVAL` is also fine for `wg`.
    #[error("unknown operation (expected get=1 or set=1)")]
    UnknownOperation,
    /// `get=1` is not followed by the blank line.
    #[error("trailing data in get request")]
    GetTrailing,
    /// Bytes after the blank line that ends the request.
    #[error("data after the end of the request")]
    TrailingData,
    /// A line without `=`.
    #[error("line {line}: not key=value")]
    Malformed {
        /// The line number.
        line: usize,
    },
    /// A key that is not valid where it stands (device keys before the first `public_key`,
    /// peer keys after it).
    #[error("line {line}: invalid UAPI {} key `{key}'", if *.peer { "peer" } else { "device" })]
    UnknownKey {
        /// The line number.
        line: usize,
        /// The key (lossy UTF-8, at most 64 bytes).
        key: String,
        /// True after the first `public_key`.
        peer: bool,
    },
    /// A known key with a value that does not parse (bad hex, number out of range, bad address,
    /// a flag other than `true`, a protocol version other than 1).
    #[error("line {line}: invalid value for {key}")]
    InvalidValue {
        /// The line number.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// The request would leave the device with more than [`MAX_PEERS`] peers.
    #[error("too many peers (at most {MAX_PEERS})")]
    TooManyPeers,
    /// The request would leave more than [`MAX_PREFIXES`](super::MAX_PREFIXES) AllowedIPs prefixes.
    #[error("the AllowedIPs table is full")]
    TableFull,
    /// For the caller: binding the new listen port, or setting the fwmark, failed.
    #[error("cannot apply listen port or fwmark: {0}")]
    AddrInUse(String),
}

impl UapiError {
    /// The errno to answer with, negative as `wg` expects, by wireguard-go's classes:
    /// `-EPROTO` for a line that is not `key=value` (and a truncated request or trailing
    /// bytes), `-EINVAL` for an unknown key or a bad value (and an unknown operation, too many
    /// peers), `-EIO` for the size limits (wireguard-go's class for an over-long line),
    /// `-EADDRINUSE` for a port or fwmark that cannot be applied, `-ENOMEM` for a full table.
    pub fn errno(&self) -> i32 {
        match self {
            UapiError::RequestTooLarge
            | UapiError::TooManyLines
            | UapiError::LineTooLong { .. } => -libc::EIO,
            UapiError::Truncated | UapiError::TrailingData | UapiError::Malformed { .. } => {
                -libc::EPROTO
            }
            UapiError::UnknownOperation
            | UapiError::GetTrailing
            | UapiError::UnknownKey { .. }
            | UapiError::InvalidValue { .. }
            | UapiError::TooManyPeers => -libc::EINVAL,
            UapiError::TableFull => -libc::ENOMEM,
            UapiError::AddrInUse(_) => -libc::EADDRINUSE,
        }
    }
}
