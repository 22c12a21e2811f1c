//! The UAPI client, as `wgd show` and `wgd down` use it: [`connect_uapi`] opens the socket of
//! an interface (with errors that say plainly when it is not running), [`uapi_get`] sends
//! `get=1` and reads the reply with [`parse_get_reply`], and [`get_listed`] does the same for
//! an interface found in [`SOCKET_DIR`], where one that is not running is not an error.
//! Blocking I/O on a `std` socket, with [`REPLY_TIMEOUT`].
//!
//! Secrets do not leave this module: the raw reply, which holds the private key, is read into a
//! buffer that is wiped (and never reallocated without wiping), and a [`GetReply`] holds only
//! the public key derived from it and "there is one" for preshared keys.
//!
//! [`SOCKET_DIR`]: super::server::SOCKET_DIR

use super::server::socket_path;
use super::{GetReply, GetReplyError, parse_get_reply};
use crate::conf::{InterfaceNameError, check_interface_name};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long the daemon may take to answer (it answers from its event loop, in microseconds).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply accepted (a million allowed IPs take about 30 MiB).
pub const MAX_REPLY: usize = 256 << 20;

/// Why the client failed. The messages are the ones `wgd show` and `wgd down` print (with the
/// source chain, as `{:#}` of an `anyhow::Error` prints it).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The interface name is not valid (it names the socket file).
    #[error(transparent)]
    InvalidName(#[from] InterfaceNameError),
    /// The interface is not running: it has no socket file.
    #[error("interface {iface} is not running (no {})", .path.display())]
    NotRunning {
        /// The interface.
        iface: String,
        /// Its socket file.
        path: PathBuf,
    },
    /// The interface is not running: its socket file refuses connections (a daemon that died
    /// without removing it).
    #[error(
        "interface {iface} is not running ({} refuses connections: its daemon is gone)",
        .path.display()
    )]
    Stale {
        /// The interface.
        iface: String,
        /// Its socket file.
        path: PathBuf,
    },
    /// Connecting was not permitted (the socket is root's).
    #[error("connecting to {} (are you root?)", .path.display())]
    PermissionDenied {
        /// The socket file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Connecting failed otherwise.
    #[error("connecting to {}", .path.display())]
    Connect {
        /// The socket file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Connecting to a socket found in [`SOCKET_DIR`](super::server::SOCKET_DIR) failed,
    /// other than by its being gone ([`get_listed`]); the message is the system's.
    #[error(transparent)]
    Io(io::Error),
    /// Setting the socket's read and write timeouts failed.
    #[error("setting socket timeouts")]
    Timeouts(#[source] io::Error),
    /// Sending the request failed.
    #[error("{what}: sending the request")]
    Send {
        /// What was asked (`interface IFACE`, or `UAPI`).
        what: String,
        /// The error.
        source: io::Error,
    },
    /// The daemon did not answer within [`REPLY_TIMEOUT`].
    #[error("{what}: no complete reply within {REPLY_TIMEOUT:?}")]
    Timeout {
        /// What was asked.
        what: String,
    },
    /// Reading the reply failed.
    #[error("{what}: reading the reply")]
    Read {
        /// What was asked.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// The daemon closed the connection before the blank line that ends its reply.
    #[error("{what}: the daemon closed the connection before the end of its reply")]
    Closed {
        /// What was asked.
        what: String,
    },
    /// The reply is larger than [`MAX_REPLY`].
    #[error("{what}: reply larger than {MAX_REPLY} bytes")]
    TooLarge {
        /// What was asked.
        what: String,
    },
    /// The reply is not UTF-8.
    #[error("{what}: reply is not UTF-8")]
    NotUtf8 {
        /// What was asked.
        what: String,
        /// The error.
        source: std::str::Utf8Error,
    },
    /// The reply does not parse, or carries an errno other than 0.
    #[error("{what}: bad reply")]
    Reply {
        /// What was asked.
        what: String,
        /// Why.
        source: GetReplyError,
    },
    /// The stats reply does not parse, or the daemon refused the request.
    #[error("{what}: bad stats reply")]
    StatsReply {
        /// What was asked.
        what: String,
        /// Why.
        source: super::StatsReplyError,
    },
}

/// Why [`try_connect`] failed.
enum ConnectError {
    /// There is no socket file.
    Missing,
    /// The socket file is there but nobody listens (a daemon that died without cleaning up).
    Refused,
    /// Anything else (permission denied, ...).
    Other(io::Error),
}

fn try_connect(path: &Path) -> Result<UnixStream, ConnectError> {
    UnixStream::connect(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ConnectError::Missing,
        io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        _ => ConnectError::Other(e),
    })
}

/// Connects to the UAPI socket of `iface`, with an error that says plainly when the interface
/// is not running.
pub fn connect_uapi(iface: &str) -> Result<UnixStream, ClientError> {
    check_interface_name(iface)?;
    let path = socket_path(iface);
    match try_connect(&path) {
        Ok(s) => Ok(s),
        Err(ConnectError::Missing) => Err(ClientError::NotRunning {
            iface: iface.to_owned(),
            path,
        }),
        Err(ConnectError::Refused) => Err(ClientError::Stale {
            iface: iface.to_owned(),
            path,
        }),
        Err(ConnectError::Other(e)) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(ClientError::PermissionDenied { path, source: e })
        }
        Err(ConnectError::Other(e)) => Err(ClientError::Connect { path, source: e }),
    }
}

/// Sends `get=1` over `stream` and parses the reply. The raw reply (which holds the private
/// key) is wiped before returning.
fn get_over(stream: UnixStream, what: &str) -> Result<GetReply, ClientError> {
    let buf = request_over(stream, what, b"get=1\n\n")?;
    let text = std::str::from_utf8(&buf).map_err(|source| ClientError::NotUtf8 {
        what: what.to_owned(),
        source,
    })?;
    parse_get_reply(text).map_err(|source| ClientError::Reply {
        what: what.to_owned(),
        source,
    })
}

/// Sends `request` over `stream` and returns the reply up to its blank line, in a buffer that
/// is wiped when dropped (a `get` reply holds the private key).
fn request_over(
    mut stream: UnixStream,
    what: &str,
    request: &[u8],
) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(REPLY_TIMEOUT)))
        .map_err(ClientError::Timeouts)?;
    stream
        .write_all(request)
        .map_err(|source| ClientError::Send {
            what: what.to_owned(),
            source,
        })?;
    let mut buf = Zeroizing::new(Vec::with_capacity(16384));
    let mut chunk = Zeroizing::new([0u8; 8192]);
    // The reply ends at its first blank line (no line of a reply is empty).
    let mut scanned: usize = 0;
    loop {
        let n = match stream.read(&mut chunk[..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ClientError::Timeout {
                    what: what.to_owned(),
                });
            }
            Err(source) => {
                return Err(ClientError::Read {
                    what: what.to_owned(),
                    source,
                });
            }
        };
        if n == 0 {
            return Err(ClientError::Closed {
                what: what.to_owned(),
            });
        }
        if buf.capacity() - buf.len() < n {
            // Grow by hand: a reallocating `Vec` would leave copies of the key behind.
            let mut bigger = Zeroizing::new(Vec::with_capacity((buf.len() + n) * 2));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        // read() returns at most chunk.len(); `from` <= buf.len() (buf only grows).
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let from = scanned.saturating_sub(1);
        let tail = buf.get(from..).unwrap_or_default();
        if let Some(i) = tail.windows(2).position(|w| w == b"\n\n") {
            buf.truncate(from + i + 2);
            break;
        }
        scanned = buf.len();
        if buf.len() > MAX_REPLY {
            return Err(ClientError::TooLarge {
                what: what.to_owned(),
            });
        }
    }
    Ok(buf)
}

/// `wgd-stats=1` on the UAPI socket of `iface`: the daemon's counters (see
/// [`format_stats`](super::format_stats)).
pub fn uapi_stats(iface: &str) -> Result<super::Stats, ClientError> {
    let what = format!("interface {iface}");
    let stream = connect_uapi(iface)?;
    let buf = request_over(stream, &what, super::STATS_REQUEST)?;
    let text = std::str::from_utf8(&buf).map_err(|source| ClientError::NotUtf8 {
        what: what.clone(),
        source,
    })?;
    super::parse_stats_reply(text).map_err(|source| ClientError::StatsReply { what, source })
}

/// `get=1` on the UAPI socket of `iface`.
pub fn uapi_get(iface: &str) -> Result<GetReply, ClientError> {
    let stream = connect_uapi(iface)?;
    get_over(stream, &format!("interface {iface}"))
}

/// `get=1` for an interface found in [`SOCKET_DIR`](super::server::SOCKET_DIR); `None` if it
/// is not running after all. As `wg`, a socket nobody listens on (or that went away meanwhile)
/// is not an interface; unlike `wg`, it is left in place.
pub fn get_listed(iface: &str) -> Option<Result<GetReply, ClientError>> {
    let stream = match try_connect(&socket_path(iface)) {
        Ok(s) => s,
        Err(ConnectError::Missing | ConnectError::Refused) => return None,
        Err(ConnectError::Other(e)) => return Some(Err(ClientError::Io(e))),
    };
    match get_over(stream, "UAPI") {
        Ok(r) => Some(Ok(r)),
        // Its daemon stopped while we asked: the interface is gone, not broken.
        Err(_) if vanished(iface) => None,
        Err(e) => Some(Err(e)),
    }
}

/// True if the socket of `iface` is gone or no longer accepts connections.
fn vanished(iface: &str) -> bool {
    matches!(
        try_connect(&socket_path(iface)),
        Err(ConnectError::Missing | ConnectError::Refused)
    )
}
