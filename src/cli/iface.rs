//! `wgd [-f|--foreground] IFACE`: the invocation wireguard-go has and wg-quick uses. Creates the
//! interface and its UAPI socket with no configuration (`wg setconf` follows), and unless asked
//! to stay in the foreground, detaches only once the socket accepts connections.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use wgd::conf::Config;
use wgd::daemon::Options;
use wgd::proto::constants::DEFAULT_MTU;

/// Forks; the parent waits until the child reports readiness (or dies) and exits with 0 or 1.
/// Returns the pipe the child writes its readiness to.
fn detach() -> Result<std::fs::File> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: the fds were just created and are owned here only.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: called before any thread exists (no runtime yet), so the child is consistent.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()).context("fork"),
        0 => {
            drop(rd);
            // SAFETY: setsid in the child: a new session, detached from the terminal.
            unsafe { libc::setsid() };
            redirect_stdio();
            Ok(std::fs::File::from(wr))
        }
        _child => {
            drop(wr);
            let mut r = std::fs::File::from(rd);
            let mut b = [0u8; 1];
            let ok = matches!(r.read(&mut b), Ok(1) if b[0] == b'1');
            std::process::exit(if ok { 0 } else { 1 });
        }
    }
}

/// Stdin and stdout to /dev/null; stderr stays for the logs.
fn redirect_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto the standard descriptors with a valid fd.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}

/// Runs interface `iface` with an empty configuration.
pub fn run(
    iface: &str,
    foreground: bool,
    user: Option<wgd::daemon::privdrop::Target>,
) -> Result<()> {
    wgd::conf::check_interface_name(iface)?;
    let foreground = foreground || std::env::var("WG_PROCESS_FOREGROUND").as_deref() == Ok("1");
    let mut ready_pipe = if foreground { None } else { Some(detach()?) };
    let opts = Options {
        iface: iface.to_string(),
        mtu: Some(DEFAULT_MTU as u32),
        config_path: None,
        user,
        crypto_threads: None,
        wg_quick: false,
    };
    super::foreground::run_daemon(Config::default(), opts, |_| {
        if let Some(mut p) = ready_pipe.take() {
            let _ = p.write_all(b"1");
        }
    })
}
