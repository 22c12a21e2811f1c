//! A WireGuard peer in one plain UDP socket: no TUN device, no root, no async runtime. It
//! pings a stock WireGuard peer (the Linux kernel, wireguard-go, ...) through the tunnel and
//! prints the replies, like `ping` over `wg0` would.
//!
//! The protocol is all [`wgd::proto::Device`]: it turns inner IP packets into datagrams and
//! datagrams back into inner packets, and tells us when its timers need to run. This program is
//! the I/O around it: it owns the socket, reads the clock ([`wgd::daemon::Clock`]) and moves
//! bytes between the socket and the device. Instead of a TUN device, the inner packets (ICMP
//! echo requests) are built here, and the replies are read here.
//!
//! Set up the other end, say a Linux host reachable at 198.18.0.2, with the kernel's WireGuard:
//!
//! ```text
//! # Here: a key pair for this program (`wgd genkey` / `wgd pubkey` work the same).
//! wg genkey > our.key && wg pubkey < our.key        # -> OUR_PUBLIC_KEY
//!
//! # On the peer (root):
//! wg genkey > peer.key && wg pubkey < peer.key      # -> PEER_PUBLIC_KEY
//! ip link add wg0 type wireguard
//! wg set wg0 private-key peer.key listen-port 51820 peer OUR_PUBLIC_KEY allowed-ips 198.19.0.1/32
//! ip address add 198.19.0.2/24 dev wg0
//! ip link set wg0 up
//!
//! # Here again (no root needed):
//! cargo run --example udp_peer -- our.key PEER_PUBLIC_KEY 198.18.0.2:51820
//! ```
//!
//! The peer does not need to know our endpoint: it learns it from our handshake. Our tunnel
//! address is 198.19.0.1 and the peer's 198.19.0.2 (the constants below); the peer's
//! AllowedIPs on our side are just its tunnel address, so the device drops anything from it
//! with another inner source address.
//!
//! The program sends five echo requests one second apart and exits with status 0 if any reply
//! came back, 1 if none did, 2 on a usage error. `cargo test` compiles it but does not run it
//! (it needs a peer).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::exit;
use std::time::{Duration, Instant as StdInstant};
use wgd::daemon::Clock;
use wgd::proto::{Device, Endpoint, Keypair, PeerId, Received, SendResult, Transmit};
use wgd::{PresharedKey, PrivateKey, PublicKey};

/// Our address inside the tunnel (the peer's AllowedIPs for us).
const OUR_TUNNEL_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The peer's address inside the tunnel (our AllowedIPs for it).
const PEER_TUNNEL_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
/// How many echo requests to send, one a second.
const PINGS: u16 = 5;
/// How long to wait for each reply (the first one also waits for the handshake).
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// The ICMP echo identifier of our requests ("wg").
const ECHO_ID: u16 = 0x7767;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: udp_peer PRIVATE_KEY_FILE PEER_PUBLIC_KEY PEER_ENDPOINT");
        eprintln!("  e.g. udp_peer our.key 'base64 public key=' 198.18.0.2:51820");
        exit(2);
    }
    match run(&args[1], &args[2], &args[3]) {
        Ok(replies) if replies > 0 => {}
        Ok(_) => exit(1),
        Err(e) => {
            eprintln!("udp_peer: {e}");
            exit(1);
        }
    }
}

/// Sets up the device and the socket, sends the pings; returns how many replies came back.
fn run(key_file: &str, peer_key: &str, peer_endpoint: &str) -> Result<u16, String> {
    // Keys in the usual base64 form (`wg genkey`, `wg pubkey`).
    let private_key: PrivateKey = std::fs::read_to_string(key_file)
        .map_err(|e| format!("reading {key_file}: {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("{key_file}: {e}"))?;
    let peer_key: PublicKey = peer_key
        .parse()
        .map_err(|e| format!("peer public key: {e}"))?;
    let peer_endpoint: SocketAddr = peer_endpoint
        .parse()
        .map_err(|e| format!("peer endpoint {peer_endpoint}: {e} (want IP:PORT)"))?;

    // The device: our identity, with the operating system's random source.
    println!("our public key: {}", private_key.public_key());
    let mut device = Device::with_os_rng(private_key);

    // The peer: its public key (no preshared key), its AllowedIPs, and where to reach it.
    let peer = device
        .add_peer(peer_key, PresharedKey::default())
        .map_err(|e| format!("adding the peer: {e}"))?;
    device
        .add_allowed_ip(peer, IpAddr::V4(PEER_TUNNEL_IP), 32)
        .map_err(|e| format!("AllowedIPs: {e}"))?;
    device
        .peer_mut(peer)
        .expect("just added")
        .set_endpoint(Endpoint::new(peer_endpoint));

    // One UDP socket on any local address and a port the system picks, of the endpoint's
    // family.
    let any: IpAddr = match peer_endpoint {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).map_err(|e| format!("bind: {e}"))?;

    let mut tunnel = Tunnel {
        device,
        peer,
        socket,
        clock: Clock::start(),
    };

    println!("PING {PEER_TUNNEL_IP} through the tunnel to {peer_endpoint}");
    let mut replies = 0;
    for seq in 1..=PINGS {
        let sent_at = StdInstant::now();
        let request = icmp_echo_request(OUR_TUNNEL_IP, PEER_TUNNEL_IP, ECHO_ID, seq);
        tunnel.send_packet(&request)?;
        let reply = tunnel.receive_until(sent_at + REPLY_TIMEOUT, |packet| {
            is_echo_reply(packet, PEER_TUNNEL_IP, ECHO_ID, seq)
        })?;
        match reply {
            Some(packet) => {
                replies += 1;
                println!(
                    "{} bytes from {PEER_TUNNEL_IP}: icmp_seq={seq} time={:.1} ms",
                    packet.len(),
                    sent_at.elapsed().as_secs_f64() * 1000.0
                );
            }
            None => println!("no reply to icmp_seq={seq}"),
        }
        // Keep running the protocol until the next ping is due (one a second).
        if seq < PINGS {
            tunnel.receive_until(sent_at + Duration::from_secs(1), |_| false)?;
        }
    }
    let stats = tunnel.device.peer(tunnel.peer).expect("peer").stats;
    println!(
        "{PINGS} sent, {replies} received; {} bytes sent and {} received on the wire",
        stats.tx_bytes, stats.rx_bytes
    );
    Ok(replies)
}

/// The device, its only peer, the socket and the clock.
struct Tunnel {
    device: Device,
    peer: PeerId,
    socket: UdpSocket,
    clock: Clock,
}

impl Tunnel {
    /// Sends the datagrams the device asked for (handshake messages, keepalives, packets that
    /// were waiting for a session).
    fn send_datagrams(&mut self, out: Vec<Transmit>) -> Result<(), String> {
        for t in out {
            self.socket
                .send_to(&t.data, t.endpoint.addr)
                .map_err(|e| format!("send to {}: {e}", t.endpoint.addr))?;
            // The device counts bytes sent only once the I/O layer says they left.
            if let Some(peer) = t.peer {
                self.device.note_sent(peer, t.data.len());
            }
        }
        Ok(())
    }

    /// Sends one inner IP packet to the peer. Without a session the device keeps it and starts
    /// a handshake; it goes out when the handshake completes (in `receive_until`).
    fn send_packet(&mut self, packet: &[u8]) -> Result<(), String> {
        // The device encrypts in place: 16 bytes of header before the packet, room for padding
        // and the 16-byte tag after it.
        let mut buf = vec![0u8; Keypair::sealed_len(packet.len(), self.device.mtu())];
        buf[16..16 + packet.len()].copy_from_slice(packet);
        let mut out = Vec::new();
        let now = self.clock.now();
        let result = self
            .device
            .send(self.peer, now, &mut buf, packet.len(), &mut out)
            .expect("the peer exists");
        if let SendResult::Sealed { len, endpoint } = result {
            self.socket
                .send_to(&buf[..len], endpoint.addr)
                .map_err(|e| format!("send to {}: {e}", endpoint.addr))?;
            self.device.note_sent(self.peer, len);
        }
        self.send_datagrams(out)
    }

    /// Runs the protocol (received datagrams and timers) until an inner packet for which `want`
    /// is true arrives (returned), or until `deadline` (None).
    fn receive_until(
        &mut self,
        deadline: StdInstant,
        mut want: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>, String> {
        let mut buf = vec![0u8; 65536];
        // Bounded: each turn waits at least a millisecond or handles one datagram.
        for _ in 0..100_000 {
            let left = deadline.saturating_duration_since(StdInstant::now());
            if left.is_zero() {
                return Ok(None);
            }

            // Run the timers that are due (handshake retries, keepalives, rekeying) and learn
            // when the next one is.
            let mut out = Vec::new();
            let now = self.clock.now();
            let next_timer = self.device.tick(now, &mut out);
            self.send_datagrams(out)?;

            // Wait for a datagram, but not past the next timer or the deadline. (A zero read
            // timeout is an error, hence the millisecond.)
            let mut wait = left;
            if let Some(t) = next_timer {
                wait = wait.min(t.since(now.mono));
            }
            self.socket
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .map_err(|e| format!("set_read_timeout: {e}"))?;
            let (n, from) = match self.socket.recv_from(&mut buf) {
                Ok(received) => received,
                // Timed out (or interrupted): go round, running the timers.
                Err(_) => continue,
            };

            // Hand the datagram to the device. It decrypts transport data in place and may
            // answer (a handshake response, packets that waited for the session, a keepalive).
            let mut out = Vec::new();
            let now = self.clock.now();
            let result = self
                .device
                .receive(now, Endpoint::new(from), &mut buf[..n], &mut out);
            self.send_datagrams(out)?;
            match result {
                Ok(Received::Data {
                    offset,
                    len,
                    source,
                    ..
                }) => {
                    // The inner packet, from an address in the peer's AllowedIPs (the device
                    // checked). A TUN device would get it here.
                    let packet = &buf[offset..offset + len];
                    if want(packet) {
                        return Ok(Some(packet.to_vec()));
                    }
                    println!("(ignored a {len}-byte inner packet from {source})");
                }
                Ok(Received::Handshake(_)) => println!("(handshake with {from} complete)"),
                // Keepalives, cookie replies: nothing to do.
                Ok(_) => {}
                // Not for us, forged, replayed, or from an inner source the peer may not use.
                Err(reason) => eprintln!("(dropped a datagram from {from}: {reason})"),
            }
        }
        Ok(None)
    }
}

/// An IPv4 packet carrying an ICMP echo request with a 56-byte payload (as `ping` sends).
fn icmp_echo_request(src: Ipv4Addr, dst: Ipv4Addr, id: u16, seq: u16) -> Vec<u8> {
    // ICMP: type 8 (echo request), code 0, checksum (below), identifier, sequence, payload.
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend((0..56u8).map(|i| i + 0x10));
    let checksum = internet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&checksum.to_be_bytes());

    // IPv4 header: version 4 and 5 words of header, no DSCP, total length, identification 0,
    // "don't fragment", TTL 64, protocol 1 (ICMP), checksum (below), source, destination.
    let total_len = (20 + icmp.len()) as u16;
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&total_len.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    let checksum = internet_checksum(&packet);
    packet[10..12].copy_from_slice(&checksum.to_be_bytes());

    packet.extend_from_slice(&icmp);
    packet
}

/// True if `packet` is an IPv4 ICMP echo reply from `from` with this identifier and sequence.
fn is_echo_reply(packet: &[u8], from: Ipv4Addr, id: u16, seq: u16) -> bool {
    if packet.len() < 20 || packet[0] >> 4 != 4 || packet[9] != 1 || packet[12..16] != from.octets()
    {
        return false;
    }
    let icmp = &packet[usize::from(packet[0] & 0x0f) * 4..];
    icmp.len() >= 8
        && icmp[0] == 0 // type 0: echo reply
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
}

/// The Internet checksum (RFC 1071): the ones' complement of the ones'-complement sum of the
/// 16-bit words (computed with the checksum field zero).
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
