//! A minimal WireGuard endpoint built on wgd's sans-IO core: one peer, a plain UDP socket, no
//! TUN. It is the I/O layer (so it may read the real clock); the protocol is all `wgd::proto::Device`.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant as StdInstant};
use wgd::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use wgd::proto::Keypair;
use wgd::proto::Now;
use wgd::proto::PeerId;
use wgd::proto::{Device, Received};
use wgd::proto::{Endpoint, SendResult, Transmit};

/// One wgd device with one peer on a UDP socket.
pub struct Driver {
    /// The device.
    pub dev: Device,
    /// The only peer.
    pub peer: PeerId,
    sock: UdpSocket,
    clock: wgd::daemon::Clock,
    /// Datagrams sent, by kind, for assertions.
    pub sent: Vec<wgd::proto::TransmitKind>,
    /// The last sealed data datagram and where it went (to replay it).
    last_sealed: Option<(Vec<u8>, SocketAddr)>,
}

impl Driver {
    /// Binds `bind` and configures one peer (with `endpoint` if we are to initiate).
    pub fn new(
        private: PrivateKey,
        peer: PublicKey,
        psk: PresharedKey,
        endpoint: Option<SocketAddr>,
        bind: SocketAddr,
    ) -> Driver {
        let mut dev = Device::with_os_rng(private);
        let id = dev.add_peer(peer, psk).expect("add peer");
        // The only peer gets everything (AllowedIPs = 0.0.0.0/0, ::/0), so the device's
        // cryptokey source check passes any inner source from it.
        for any in [
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        ] {
            dev.add_allowed_ip(id, any, 0).expect("prefix");
        }
        if let Some(e) = endpoint {
            dev.peer_mut(id)
                .expect("peer")
                .set_endpoint(Endpoint::new(e));
        }
        let sock = UdpSocket::bind(bind).unwrap_or_else(|e| panic!("bind {bind}: {e}"));
        Driver {
            dev,
            peer: id,
            sock,
            clock: wgd::daemon::Clock::start(),
            sent: vec![],
            last_sealed: None,
        }
    }

    /// The injected clock, read from the real one.
    pub fn now(&self) -> Now {
        self.clock.now()
    }

    fn transmit(&mut self, out: Vec<Transmit>) {
        for t in out {
            self.sent.push(t.kind);
            self.sock
                .send_to(&t.data, t.endpoint.addr)
                .unwrap_or_else(|e| panic!("send_to {}: {e}", t.endpoint.addr));
        }
    }

    /// Sends one inner IP packet to the peer (staged until a session exists).
    pub fn send_packet(&mut self, pkt: &[u8]) -> SendResult {
        let mut buf = vec![0u8; Keypair::sealed_len(pkt.len(), self.dev.mtu())];
        buf[16..16 + pkt.len()].copy_from_slice(pkt);
        let mut out = vec![];
        let now = self.now();
        let r = self
            .dev
            .send(self.peer, now, &mut buf, pkt.len(), &mut out)
            .expect("peer exists");
        if let SendResult::Sealed { len, endpoint } = r {
            self.sent.push(wgd::proto::TransmitKind::Data);
            self.sock
                .send_to(&buf[..len], endpoint.addr)
                .unwrap_or_else(|e| panic!("send_to {}: {e}", endpoint.addr));
            buf.truncate(len);
            self.last_sealed = Some((buf, endpoint.addr));
        }
        self.transmit(out);
        r
    }

    /// Sends the last sealed data datagram again, byte for byte (a replay); false if there is
    /// none.
    pub fn replay_last(&self) -> bool {
        match &self.last_sealed {
            Some((d, to)) => self.sock.send_to(d, to).is_ok(),
            None => false,
        }
    }

    /// Runs the protocol (datagrams and timers) until an inner packet for which `want` is true
    /// arrives, or `timeout` passes. Other inner packets go to `other`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut want: impl FnMut(&[u8]) -> bool,
        mut other: impl FnMut(&mut Self, &[u8]),
    ) -> Option<Vec<u8>> {
        let deadline = StdInstant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        while StdInstant::now() < deadline {
            let mut out = vec![];
            let now = self.now();
            let next = self.dev.tick(now, &mut out);
            self.transmit(out);
            let wait = next
                .map(|t| t.since(now.mono))
                .unwrap_or(Duration::from_millis(100))
                .clamp(Duration::from_millis(1), Duration::from_millis(100));
            self.sock.set_read_timeout(Some(wait)).expect("timeout");
            let (n, from) = match self.sock.recv_from(&mut buf) {
                Ok(x) => x,
                Err(_) => continue,
            };
            let mut out = vec![];
            let now = self.now();
            let r = self
                .dev
                .receive(now, Endpoint::new(from), &mut buf[..n], &mut out);
            self.transmit(out);
            if let Ok(Received::Data { offset, len, .. }) = r {
                let pkt = buf[offset..offset + len].to_vec();
                if want(&pkt) {
                    return Some(pkt);
                }
                other(self, &pkt);
            }
        }
        None
    }
}
