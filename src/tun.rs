//! The TUN device: created with the tun-tap crate (no packet-info header), made non-blocking and
//! driven through tokio's `AsyncFd`. MTU, link state and interface index are set/read with the
//! classic `SIOC*IF*` ioctls on a throwaway socket.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

struct IfaceFd(tun_tap::Iface);

impl AsRawFd for IfaceFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A TUN interface.
pub struct Tun {
    fd: AsyncFd<IfaceFd>,
    name: String,
}

/// An `ifreq` for `name`, or an error if the name does not fit.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= req.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?} (1 to 15 bytes)"),
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// Runs an interface ioctl on a throwaway datagram socket.
fn if_ioctl(request: libc::Ioctl, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: plain socket(2) call.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `req` is a valid ifreq for the duration of the call; the kernel reads/writes only
    // within it for these requests.
    let r = unsafe { libc::ioctl(sock, request, req as *mut libc::ifreq) };
    let err = io::Error::last_os_error();
    // SAFETY: closing the socket we opened.
    unsafe { libc::close(sock) };
    if r < 0 { Err(err) } else { Ok(()) }
}

/// Sets the MTU of interface `name`.
pub fn set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let mut req = ifreq(name)?;
    req.ifr_ifru.ifru_mtu =
        libc::c_int::try_from(mtu).map_err(|_| io::Error::other("MTU out of range"))?;
    if_ioctl(libc::SIOCSIFMTU, &mut req)
}

/// Brings interface `name` up (or down).
pub fn set_up(name: &str, up: bool) -> io::Result<()> {
    let mut req = ifreq(name)?;
    if_ioctl(libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    let mut flags = unsafe { req.ifr_ifru.ifru_flags };
    let up_flag = libc::IFF_UP as libc::c_short;
    if up {
        flags |= up_flag;
    } else {
        flags &= !up_flag;
    }
    req.ifr_ifru.ifru_flags = flags;
    if_ioctl(libc::SIOCSIFFLAGS, &mut req)
}

impl Tun {
    /// Creates (or attaches to) TUN interface `name`, without packet information, non-blocking,
    /// registered with the current tokio runtime.
    pub fn create(name: &str) -> io::Result<Tun> {
        // tun-tap would silently truncate a long name and the kernel expands "%d": refuse both.
        ifreq(name)?;
        if name.contains('%') || name.contains('/') || name.chars().any(char::is_whitespace) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {name:?}"),
            ));
        }
        let iface = tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tun)?;
        iface.set_non_blocking()?;
        let name = iface.name().to_string();
        // SAFETY: the fd is owned by `iface` (a File inside tun_tap::Iface), stays open and
        // unchanged until the AsyncFd (which owns `iface`) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(IfaceFd(iface), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Tun { fd, name })
    }

    /// The interface's name as the kernel gave it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits until the TUN has packets to read; the returned handle reads them without waiting.
    pub async fn readable(&self) -> io::Result<TunReady<'_>> {
        // ERROR too: after `ip link del` the fd reports only EPOLLERR (no EPOLLIN), and the read
        // that follows fails with EBADFD, which ends the daemon.
        Ok(TunReady(
            self.fd.ready(Interest::READABLE | Interest::ERROR).await?,
        ))
    }

    /// Writes one packet. A full queue drops the packet (as a NIC would), reported as Ok(0).
    pub fn write(&self, pkt: &[u8]) -> io::Result<usize> {
        match self.fd.get_ref().0.send(pkt) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }
}

/// Read access to a TUN that reported readiness.
pub struct TunReady<'a>(tokio::io::unix::AsyncFdReadyGuard<'a, IfaceFd>);

impl TunReady<'_> {
    /// Reads one packet; `None` when none is left (readiness is then cleared).
    pub fn try_read(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        self.0.try_io(|inner| inner.get_ref().0.recv(buf)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked() {
        assert!(ifreq("").is_err());
        assert!(ifreq("0123456789abcdef").is_err());
        assert!(ifreq("a\0b").is_err());
        assert!(ifreq("wg0").is_ok());
        assert!(ifreq("0123456789abcde").is_ok());
    }
}
