//! The TUN device, opened with the tun-rs crate: no packet-info header, and where the kernel
//! allows it `IFF_VNET_HDR` with TCP segmentation offload (TUNSETOFFLOAD TSO4/TSO6, plus UDP
//! segmentation on Linux >= 6.2). One read then carries up to 64 KB of TCP segments, which
//! tun-rs splits into MTU-sized packets, and a batch written back is coalesced (GRO) into such
//! super-packets, so the kernel crosses the TUN once per 64 KB instead of once per packet.
//! The fd is non-blocking and driven through tokio's `AsyncFd`. MTU and link state are set with
//! the classic `SIOC*IF*` ioctls on a throwaway socket.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
pub use tun_rs::{GROTable, VIRTIO_NET_HDR_LEN};

/// The TUN's transmit queue (packets the kernel holds for us to read).
pub const TX_QUEUE_LEN: u32 = 1000;

/// Largest packet a TUN read can carry (a 64 KB GSO super-packet).
pub const MAX_SUPER_PACKET: usize = 65535;

struct DevFd(tun_rs::SyncDevice);

impl AsRawFd for DevFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A TUN interface.
pub struct Tun {
    fd: AsyncFd<DevFd>,
    name: String,
    offload: bool,
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

/// The MTU of interface `name`.
pub fn mtu(name: &str) -> io::Result<u32> {
    let mut req = ifreq(name)?;
    if_ioctl(libc::SIOCGIFMTU, &mut req)?;
    // SAFETY: SIOCGIFMTU filled the mtu member.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::other("negative MTU"))
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
    /// Creates (or attaches to) TUN interface `name`, without packet information, with offloads
    /// when the kernel has them, non-blocking, registered with the current tokio runtime. The
    /// link is left as it was (down when new).
    pub fn create(name: &str) -> io::Result<Tun> {
        // The kernel expands "%d" and truncates long names: refuse both.
        ifreq(name)?;
        if name.contains('%') || name.contains('/') || name.chars().any(char::is_whitespace) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {name:?}"),
            ));
        }
        let build = |offload: bool| {
            tun_rs::DeviceBuilder::new()
                .name(name)
                .offload(offload)
                // The kernel queues packets for us (replies to what we deliver) while we are
                // busy with the UDP side; 500 (the default) overflows under bursts from many
                // peers (tests/scale_netns.rs saw ~1,000 drops in a 1,000-peer storm).
                .tx_queue_len(TX_QUEUE_LEN)
                .inherit_enable_state()
                .build_sync()
        };
        let no_offload = std::env::var_os("WGD_NO_TUN_OFFLOAD").is_some_and(|v| v != "0");
        let (dev, offload) = if no_offload {
            (build(false)?, false)
        } else {
            match build(true) {
                Ok(d) => (d, true),
                Err(e) => {
                    tracing::info!("TUN offload unavailable ({e}); one packet per read");
                    (build(false)?, false)
                }
            }
        };
        dev.set_nonblocking(true)?;
        // SAFETY: the fd is owned by `dev`, stays open and unchanged until the AsyncFd (which
        // owns `dev`) is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(DevFd(dev), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Tun {
            fd,
            name: name.to_string(),
            offload,
        })
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface's MTU now.
    pub fn mtu(&self) -> io::Result<u32> {
        mtu(&self.name)
    }

    /// True if reads may carry TCP super-packets and writes are coalesced.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Waits until the TUN has packets to read; the returned handle reads them without waiting.
    pub async fn readable(&self) -> io::Result<TunReady<'_>> {
        // ERROR too: after `ip link del` the fd reports only EPOLLERR (no EPOLLIN), and the read
        // that follows fails with EBADFD, which ends the daemon.
        Ok(TunReady(
            self.fd.ready(Interest::READABLE | Interest::ERROR).await?,
        ))
    }

    /// Writes a batch of packets, each at `bufs[i][VIRTIO_NET_HDR_LEN..]` (the room in front is
    /// for the offload header). With offload, TCP segments of one flow are coalesced first
    /// (`gro` is scratch state reused across calls); the buffers may then grow up to 64 KB, so
    /// give them that capacity to stay allocation-free. A full queue drops packets (as a NIC
    /// would).
    pub fn write_batch(&self, gro: &mut GROTable, bufs: &mut [Vec<u8>]) -> io::Result<()> {
        let dev = &self.fd.get_ref().0;
        let offset = if self.offload { VIRTIO_NET_HDR_LEN } else { 0 };
        let r = if self.offload {
            dev.send_multiple(gro, bufs, offset)
        } else {
            // Without IFF_VNET_HDR the packets start at the front of the buffer.
            let mut last = Ok(0);
            for b in bufs.iter() {
                if let Some(p) = b.get(VIRTIO_NET_HDR_LEN..) {
                    last = dev.send(p);
                }
            }
            last
        };
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Read access to a TUN that reported readiness.
pub struct TunReady<'a>(tokio::io::unix::AsyncFdReadyGuard<'a, DevFd>);

impl TunReady<'_> {
    /// Reads the next packet or super-packet and splits it into `bufs` (packet `i` at
    /// `bufs[i][offset..offset + sizes[i]]`, TCP/IP headers and checksums completed);
    /// `scratch` holds the raw read (64 KB + the offload header). `None` when nothing is left
    /// (readiness is then cleared).
    pub fn read_batch(
        &mut self,
        scratch: &mut [u8],
        bufs: &mut [Vec<u8>],
        sizes: &mut [usize],
        offset: usize,
    ) -> Option<io::Result<usize>> {
        self.0
            .try_io(|inner| {
                inner
                    .get_ref()
                    .0
                    .recv_multiple(scratch, bufs, sizes, offset)
            })
            .ok()
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
