//! `wgd down IFACE`: stops the daemon serving IFACE. The daemon is found through its UAPI
//! socket (the kernel names the process at the other end, `SO_PEERCRED`), sent SIGTERM, and
//! waited for (at most [`EXIT_TIMEOUT`]) until it is gone and its socket with it. The daemon
//! takes its interface, routes and wg-quick settings down itself on the way out. A daemon that
//! ran with `--user` leaves its (stale) socket file behind; it is removed here.

use anyhow::{Context, Result, bail};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};
use wgd::uapi::client::connect_uapi;
use wgd::uapi::server::socket_path;

/// How long the daemon gets to exit after SIGTERM.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Arguments of `wgd down`.
#[derive(Debug, clap::Args)]
pub struct DownArgs {
    /// The interface whose daemon to stop
    #[arg(value_name = "IFACE")]
    pub iface: String,
}

/// The PID of the process that listens on the other end of `stream`, as the kernel recorded it
/// (the process that called `listen`); `None` if that process is in a PID namespace we cannot
/// see into.
fn peer_pid(stream: &UnixStream) -> io::Result<Option<libc::pid_t>> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a valid, writable ucred of `len` bytes; the fd is open for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.pid > 0).then_some(cred.pid))
}

/// A handle on process `pid` that cannot be confused with a later process reusing the PID
/// (`pidfd_open`, Linux 5.3); `None` where the kernel lacks it.
fn pidfd_open(pid: libc::pid_t) -> io::Result<Option<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOSYS) => Ok(None),
            _ => Err(e),
        };
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("pidfd out of range"))?;
    // SAFETY: the fd was just returned by the kernel and is owned by nobody else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// SIGTERM to the process, through its pidfd when there is one.
fn terminate(pid: libc::pid_t, pidfd: Option<&OwnedFd>) -> io::Result<()> {
    // SAFETY: plain syscalls with a valid fd (or PID) and a null siginfo.
    let rc = unsafe {
        match pidfd {
            Some(fd) => libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGTERM,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            ) as libc::c_int,
            None => libc::kill(pid, libc::SIGTERM),
        }
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True once the process has exited (a zombie not yet reaped by its parent counts as exited).
fn exited(pid: libc::pid_t, pidfd: Option<&OwnedFd>) -> bool {
    match pidfd {
        Some(fd) => {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, no wait. A pidfd polls readable once the process exits.
            let n = unsafe { libc::poll(&mut p, 1, 0) };
            n > 0 && p.revents != 0
        }
        None => match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
            Err(_) => true,
        },
    }
}

/// Runs `wgd down`.
pub fn down(args: DownArgs) -> Result<()> {
    let iface = args.iface.as_str();
    let path = socket_path(iface);
    let stream = connect_uapi(iface)?;
    let pid = peer_pid(&stream)
        .with_context(|| format!("asking the kernel who serves {}", path.display()))?
        .with_context(|| {
            format!(
                "{} is served by a process in another PID namespace; cannot signal it",
                path.display()
            )
        })?;
    // SAFETY: getpid cannot fail.
    if pid == unsafe { libc::getpid() } {
        bail!("{} is served by this very process", path.display());
    }
    // Pin the process before signalling it. It was alive when we connected (it listens on the
    // socket); the connection is still open, so the PID cannot have been reused unless the
    // daemon died in the instant between the two calls.
    let pidfd =
        pidfd_open(pid).with_context(|| format!("interface {iface}: daemon PID {pid} is gone"))?;
    drop(stream);
    terminate(pid, pidfd.as_ref())
        .with_context(|| format!("interface {iface}: sending SIGTERM to daemon PID {pid}"))?;
    let deadline = Instant::now() + EXIT_TIMEOUT;
    loop {
        let gone = exited(pid, pidfd.as_ref());
        let socket_gone = !path.exists();
        if gone && socket_gone {
            return Ok(());
        }
        if gone {
            // A daemon that dropped privileges (`--user`) cannot unlink its socket from the
            // root-owned directory: the file is left, refusing connections. We are root here.
            if UnixStream::connect(&path).is_err() && std::fs::remove_file(&path).is_ok() {
                tracing::debug!("removed the stale {}", path.display());
                return Ok(());
            }
            // It died without removing its socket (killed by something else meanwhile?).
            bail!(
                "interface {iface}: daemon PID {pid} exited but left {} behind",
                path.display()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "interface {iface}: daemon PID {pid} is still running {} s after SIGTERM",
                EXIT_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
