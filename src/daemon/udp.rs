//! The UDP side: one IPv4 and one IPv6 (v6-only) socket on the same listen port, as the kernel
//! binds them, driven through quinn-udp (recvmmsg/sendmsg with packet-info control messages, so
//! replies leave from the address the peer wrote to, and GRO batches on receive).
//!
//! Outer datagrams may be fragmented, as the kernel's WireGuard sends them (DF clear): a tunnel
//! MTU above the path's works, at the cost of fragments. A UDP GSO send must not carry a segment
//! above the route MTU (the kernel refuses the whole send): [`Sock::route_mtu`] says how large a
//! segment may be.

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
    /// GSO segments per send the kernel allowed at bind time (quinn-udp lowers its own figure
    /// to 1 for good after a failed GSO send).
    gso_at_bind: usize,
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
        allow_fragmentation(&std, addr.is_ipv6())?;
        // SAFETY: the fd is owned by `std`, which the AsyncFd owns: it stays open and refers to
        // the same socket until the AsyncFd is dropped, and `as_raw_fd` always returns it.
        let io = unsafe { AsyncFd::register_with_interest(std, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let gso_at_bind = state.max_gso_segments();
        Ok(Sock {
            io,
            state,
            gso_at_bind,
        })
    }

    /// Gives GSO back to a socket that quinn-udp turned it off for after a failed send, by
    /// setting the socket up afresh (the caller knows the failure was a segment above a route
    /// MTU that had just shrunk, not a device without GSO). Returns true if it did.
    fn restore_gso(&mut self) -> io::Result<bool> {
        if self.state.max_gso_segments() >= self.gso_at_bind {
            return Ok(false);
        }
        let std = self.io.get_ref();
        self.state = UdpSocketState::new(std.into())?;
        allow_fragmentation(std, self.local_addr()?.is_ipv6())?;
        Ok(true)
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

    /// The MTU of the route to `dst` (the largest outer packet, IP and UDP headers included,
    /// that leaves unfragmented): `IP_MTU`/`IPV6_MTU` of a throwaway socket connected to `dst`
    /// with this socket's fwmark, so policy routing picks the same route. Five system calls:
    /// callers cache it.
    pub fn route_mtu(&self, dst: SocketAddr) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let domain = if dst.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let probe = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
        let mark = socket2::SockRef::from(self.io.get_ref()).mark()?;
        if mark != 0 {
            probe.set_mark(mark)?;
        }
        probe.connect(&dst.into())?;
        let (level, name) = if dst.is_ipv4() {
            (libc::IPPROTO_IP, libc::IP_MTU)
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_MTU)
        };
        let mtu = get_int(probe.as_raw_fd(), level, name)?;
        usize::try_from(mtu).map_err(|_| io::Error::other("negative route MTU"))
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

/// `setsockopt` of an `int` option (none of socket2, nix or quinn-udp has the ones used here).
fn set_int(
    fd: std::os::fd::RawFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads exactly `size_of::<c_int>()` bytes from a valid, live int.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt` of an `int` option.
fn get_int(
    fd: std::os::fd::RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into a valid, live int and updates `len`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Undoes quinn-udp's "never fragment" (right for QUIC, which sizes its own packets): the
/// kernel's WireGuard sends outer packets with DF clear (`udp_tunnel_xmit_skb(..., df = 0)`) and
/// lets the stack fragment any that exceed the path MTU, so a tunnel MTU above the path's (the
/// default 1420 over PPPoE's 1492, a cloud's 1460, a tunnel in a tunnel) costs fragments instead
/// of black-holing every full-sized packet. `PMTUDISC_DONT` fragments at the route's MTU (path
/// MTU included) and, unlike `WANT`, keeps an ICMP "fragmentation needed" from being queued on
/// the socket as an error; on IPv6, `IPV6_DONTFRAG` off is what lets `__ip6_append_data`
/// fragment a datagram above the MTU instead of refusing it with EMSGSIZE.
fn allow_fragmentation(s: &std::net::UdpSocket, v6: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    if v6 {
        set_int(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        )?;
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 0)
    } else {
        set_int(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        )
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
        if set_int(s.as_raw_fd(), libc::SOL_SOCKET, force, size).is_err() {
            let _ = set_int(s.as_raw_fd(), libc::SOL_SOCKET, plain, size);
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

    /// [`Sock::restore_gso`] on both sockets; true if either got GSO back.
    pub fn restore_gso(&mut self) -> io::Result<bool> {
        let mut restored = false;
        for s in [&mut self.v4, &mut self.v6].into_iter().flatten() {
            restored |= s.restore_gso()?;
        }
        Ok(restored)
    }
}
