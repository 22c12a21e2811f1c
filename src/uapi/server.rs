//! The UAPI socket (wireguard.com/xplatform): `/var/run/wireguard/IFACE.sock`, as wireguard-go
//! serves it, so that the stock `wg` and `wg-quick` drive wgd unchanged.
//!
//! Connections are served by small tasks that only read a bounded request (32 MiB, 10 s) and
//! write the reply; the request itself goes to the event loop that owns the device, over a
//! channel, so configuration changes never race the data path.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// Where userspace WireGuard implementations put their sockets.
pub const SOCKET_DIR: &str = "/var/run/wireguard";
/// Largest request accepted (the parser's limit).
pub const MAX_REQUEST: usize = crate::uapi::MAX_REQUEST_LEN;
/// Longest a client may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A request for the event loop, with where to send the reply.
pub struct IpcRequest {
    /// The request bytes, up to and including the blank line that ends it.
    pub bytes: Vec<u8>,
    /// The reply (a full `...errno=N\n\n` text).
    pub reply: oneshot::Sender<zeroize::Zeroizing<String>>,
}

/// The listening socket; removes its file when dropped.
pub struct IpcServer {
    path: PathBuf,
}

impl Drop for IpcServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The socket path for `iface`.
pub fn socket_path(iface: &str) -> PathBuf {
    Path::new(SOCKET_DIR).join(format!("{iface}.sock"))
}

/// Why [`serve`] could not serve the socket.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A daemon answers on the socket already.
    #[error("{} is served by a running daemon: interface {iface} is in use", path.display())]
    InUse {
        /// The socket file.
        path: PathBuf,
        /// The interface.
        iface: String,
    },
    /// Creating the directory, removing a stale socket or binding failed.
    #[error("{what} {}", path.display())]
    Io {
        /// "creating", "removing stale" or "binding".
        what: &'static str,
        /// The directory or socket file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
}

/// Binds the socket for `iface` (directory 0755, socket 0600 via umask 077) and spawns the
/// accept loop on the current runtime. A socket file that refuses connections is stale and is
/// replaced; one that accepts belongs to a running daemon and is an error.
pub fn serve(iface: &str) -> Result<(IpcServer, mpsc::Receiver<IpcRequest>), ServeError> {
    let io_err = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| ServeError::Io { what, path, source }
    };
    let dir = Path::new(SOCKET_DIR);
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    let path = socket_path(iface);
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(ServeError::InUse {
                path,
                iface: iface.to_string(),
            });
        }
        std::fs::remove_file(&path).map_err(io_err("removing stale", &path))?;
    }
    // SAFETY: umask(2) cannot fail; restored right after the bind.
    let old = unsafe { libc::umask(0o077) };
    let bound = UnixListener::bind(&path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(io_err("binding", &path))?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(accept_loop(listener, tx));
    Ok((IpcServer { path }, rx))
}

async fn accept_loop(listener: UnixListener, tx: mpsc::Sender<IpcRequest>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if !authorized(&stream) {
                    debug!("UAPI: refused a connection from a non-root user");
                    continue;
                }
                tokio::spawn(serve_connection(stream, tx.clone()));
            }
            Err(e) => {
                warn!("UAPI accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Only root (or the daemon's own user) may configure the interface.
fn authorized(stream: &UnixStream) -> bool {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    match stream.peer_cred() {
        Ok(c) => c.uid() == 0 || c.uid() == me,
        Err(_) => false,
    }
}

/// Reads requests on one connection until EOF; each ends with an empty line.
async fn serve_connection(mut stream: UnixStream, tx: mpsc::Sender<IpcRequest>) {
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let req =
            match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream, &mut pending))
                .await
            {
                Ok(Ok(Some(r))) => r,
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    debug!("UAPI read: {e}");
                    // -EIO, as the parser answers an oversized request.
                    let _ = stream.write_all(b"errno=-5\n\n").await;
                    return;
                }
                Err(_) => return,
            };
        let (reply_tx, reply_rx) = oneshot::channel();
        if tx
            .send(IpcRequest {
                bytes: req,
                reply: reply_tx,
            })
            .await
            .is_err()
        {
            return;
        }
        let Ok(reply) = reply_rx.await else { return };
        if stream.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads one request (through its terminating blank line) into a new buffer; `None` at a clean
/// EOF. Bytes after the request stay in `pending`.
async fn read_request(
    stream: &mut UnixStream,
    pending: &mut Vec<u8>,
) -> io::Result<Option<Vec<u8>>> {
    let mut chunk = [0u8; 4096];
    // Bytes of `pending` already searched for the end: each read is scanned once, not the
    // whole request again (which was quadratic in its size).
    let mut scanned = 0;
    loop {
        if let Some(end) = request_end(pending, scanned) {
            let rest = pending.split_off(end);
            let req = std::mem::replace(pending, rest);
            return Ok(Some(req));
        }
        if pending.len() > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request too large",
            ));
        }
        // A "\n\n" may straddle two reads.
        scanned = pending.len().saturating_sub(1);
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            if pending.is_empty() {
                return Ok(None);
            }
            // A truncated request: hand it over so the parser can answer with an errno.
            return Ok(Some(std::mem::take(pending)));
        }
        // read() returns at most chunk.len().
        pending.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// The end of the first request in `buf`: just past the first "\n\n" (or a lone leading "\n"),
/// searching from `from` (the caller knows there is no "\n\n" in `buf[..from + 1]`).
fn request_end(buf: &[u8], from: usize) -> Option<usize> {
    if buf.first() == Some(&b'\n') {
        return Some(1);
    }
    let from = from.min(buf.len());
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| from + i + 2)
}

/// Completes when the socket file of `iface` is removed or renamed away (wireguard-go exits
/// then too: the interface can no longer be managed). inotify on the socket directory, so it
/// costs no wake-ups; if inotify is unavailable it never completes.
pub async fn socket_removed(iface: &str) {
    match watch_removal(iface).await {
        Ok(()) => {}
        Err(e) => {
            debug!("not watching the UAPI socket file: {e}");
            std::future::pending::<()>().await;
        }
    }
}

struct Inotify(std::os::fd::OwnedFd);

impl std::os::fd::AsRawFd for Inotify {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

async fn watch_removal(iface: &str) -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: inotify_init1 returns a new fd or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that we own from here on.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let dir = std::ffi::CString::new(SOCKET_DIR.as_bytes()).map_err(io::Error::other)?;
    // SAFETY: valid fd and NUL-terminated path.
    let wd = unsafe {
        libc::inotify_add_watch(
            owned.as_raw_fd(),
            dir.as_ptr(),
            libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_DELETE_SELF,
        )
    };
    if wd < 0 {
        return Err(io::Error::last_os_error());
    }
    let name = format!("{iface}.sock");
    // SAFETY: the fd stays open and unchanged while the AsyncFd owns it.
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(
            Inotify(owned),
            tokio::io::Interest::READABLE,
        )
    }
    .map_err(|e| e.into_parts().1)?;
    let mut buf = [0u8; 4096];
    loop {
        let mut guard = afd.readable().await?;
        let n = match guard.try_io(|inner| {
            // SAFETY: reading into our buffer from our fd.
            let r = unsafe {
                libc::read(
                    inner.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(r as usize)
            }
        }) {
            Ok(r) => r?,
            Err(_) => continue,
        };
        // Walk the events: struct inotify_event { wd, mask, cookie, len, name[len] }.
        let mut at = 0usize;
        while let Some((hdr, _)) = buf.get(at..).and_then(|b| b.split_first_chunk::<16>()) {
            let mask = u32::from_ne_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
            let len = u32::from_ne_bytes([hdr[12], hdr[13], hdr[14], hdr[15]]) as usize;
            let raw = buf.get(at + 16..(at + 16 + len).min(n)).unwrap_or(&[]);
            let ev_name = raw.split(|b| *b == 0).next().unwrap_or(&[]);
            if mask & libc::IN_DELETE_SELF != 0
                || std::ffi::OsStr::from_bytes(ev_name) == std::ffi::OsStr::new(&name)
            {
                return Ok(());
            }
            at += 16 + len;
            if at >= n {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_boundaries() {
        assert_eq!(request_end(b"get=1\n\n", 0), Some(7));
        assert_eq!(request_end(b"get=1\n", 0), None);
        assert_eq!(request_end(b"set=1\nfwmark=0\n\nget=1\n\n", 0), Some(16));
        assert_eq!(request_end(b"\n", 0), Some(1));
        assert_eq!(request_end(b"", 0), None);
        // Resuming after a read that ended in the middle of the "\n\n".
        assert_eq!(request_end(b"get=1\n\n", 5), Some(7));
        assert_eq!(request_end(b"set=1\nfwmark=0\n\nget=1\n\n", 14), Some(16));
        assert_eq!(request_end(b"get=1\n", 99), None);
    }
}
