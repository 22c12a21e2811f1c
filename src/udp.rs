//! The UDP side: one IPv4 and one IPv6 (v6-only) socket on the same listen port, as the kernel
//! binds them, driven through quinn-udp (recvmmsg/sendmsg with packet-info control messages, so
//! replies leave from the address the peer wrote to, and GRO batches on receive).

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Socket buffer size asked for (wireguard-go uses 7 MiB).
pub const SOCKET_BUFFER: usize = 7 << 20;

/// One bound UDP socket.
///
/// Registered with tokio for readability only: sends never wait (a datagram that finds the
/// socket buffer full is dropped, as the kernel's `send4`/`send6` drop it), and a socket
/// registered for writability too gets an edge-triggered EPOLLOUT wake-up each time sent
/// datagrams are freed, one more `epoll_wait` per packet sent on an idle tunnel.
pub struct Sock {
    io: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
}

impl Sock {
    fn bind(addr: SocketAddr, fwmark: Option<u32>) -> io::Result<Sock> {
        let domain = if addr.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let s = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_nonblocking(true)?;
        if let Some(mark) = fwmark {
            s.set_mark(mark)?;
        }
        force_buffers(&s);
        s.bind(&addr.into())?;
        let std: std::net::UdpSocket = s.into();
        let state = UdpSocketState::new((&std).into())?;
        // SAFETY: the fd is owned by `std`, which the AsyncFd owns: it stays open and refers to
        // the same socket until the AsyncFd is dropped, and `as_raw_fd` always returns it.
        let io = unsafe { AsyncFd::register_with_interest(std, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Sock { io, state })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Waits until the socket is readable.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await.map(|_| ())
    }

    /// Receives a batch without waiting: Ok(n) datagram buffers filled, or WouldBlock.
    pub fn try_recv(
        &self,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        self.io.try_io(Interest::READABLE, |s| {
            self.state.recv(s.into(), bufs, meta)
        })
    }

    /// Sends one datagram from `src` (if given) to `dst`. If that fails with a source given (the
    /// address is no longer ours: EINVAL, or ENETUNREACH/EADDRNOTAVAIL depending on the route),
    /// sends again letting the kernel choose and returns `Ok(false)`: the caller should forget
    /// that source, as the kernel resets its cached source when the route lookup fails.
    pub fn send(&self, dst: SocketAddr, src: Option<IpAddr>, data: &[u8]) -> io::Result<bool> {
        self.send_segments(dst, src, data, None)
    }

    /// Sends `data` as datagrams of `segment` bytes each (the last may be shorter) in one
    /// `sendmsg` with UDP GSO, where the kernel has it (see [`Sock::max_segments`]); otherwise as
    /// [`Sock::send`].
    pub fn send_segments(
        &self,
        dst: SocketAddr,
        src: Option<IpAddr>,
        data: &[u8],
        segment: Option<usize>,
    ) -> io::Result<bool> {
        let t = Transmit {
            destination: dst,
            ecn: None,
            contents: data,
            segment_size: segment.filter(|&s| s < data.len()),
            src_ip: src,
        };
        match self.state.try_send(self.io.get_ref().into(), &t) {
            Ok(()) => Ok(true),
            Err(e) if src.is_some() && e.kind() != io::ErrorKind::WouldBlock => {
                let t = Transmit { src_ip: None, ..t };
                self.state
                    .try_send(self.io.get_ref().into(), &t)
                    .map(|()| false)
            }
            Err(e) => Err(e),
        }
    }

    /// Sets or clears SO_MARK.
    pub fn set_fwmark(&self, mark: Option<u32>) -> io::Result<()> {
        socket2::SockRef::from(self.io.get_ref()).set_mark(mark.unwrap_or(0))
    }

    /// Datagrams one GSO send may carry (1 without GSO).
    pub fn max_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// Datagrams per GRO buffer (1 without GRO).
    pub fn gro_segments(&self) -> usize {
        self.state.gro_segments()
    }
}

/// Sets 7 MiB socket buffers, with the FORCE variants when privileged (they ignore the
/// rmem_max/wmem_max caps), falling back to the capped ones.
fn force_buffers(s: &Socket) {
    use std::os::fd::AsRawFd;
    let size = SOCKET_BUFFER as libc::c_int;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        // SAFETY: setsockopt with a valid int option value and its length.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                force,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            // SAFETY: as above.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    plain,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}

/// The device's UDP sockets.
pub struct UdpSockets {
    /// IPv4 socket.
    pub v4: Option<Sock>,
    /// IPv6 socket (v6-only).
    pub v6: Option<Sock>,
    port: u16,
}

impl UdpSockets {
    /// Binds `port` (0 = a random free port shared by both families) on IPv4 and, where the
    /// host has IPv6, on IPv6.
    pub fn bind(port: u16, fwmark: Option<u32>) -> io::Result<UdpSockets> {
        let mut last_err = None;
        // With port 0 the IPv6 bind of the port IPv4 got may collide; retry a few times.
        for _ in 0..10 {
            let v4 = Sock::bind(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port), fwmark)?;
            let got = v4.local_addr()?.port();
            match Sock::bind(SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), got), fwmark) {
                Ok(v6) => {
                    return Ok(UdpSockets {
                        v4: Some(v4),
                        v6: Some(v6),
                        port: got,
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
                    return Ok(UdpSockets {
                        v4: Some(v4),
                        v6: None,
                        port: got,
                    });
                }
                Err(e) if port == 0 && e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("could not bind a UDP port")))
    }

    /// The listen port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket for a destination's family.
    pub fn for_addr(&self, dst: &SocketAddr) -> Option<&Sock> {
        if dst.is_ipv4() {
            self.v4.as_ref()
        } else {
            self.v6.as_ref()
        }
    }

    /// Sets or clears SO_MARK on both sockets.
    pub fn set_fwmark(&self, mark: Option<u32>) -> io::Result<()> {
        for s in [&self.v4, &self.v6].into_iter().flatten() {
            s.set_fwmark(mark)?;
        }
        Ok(())
    }
}
