//! wgd: a userspace WireGuard implementation.
//!
//! The protocol core (everything under this crate except the daemon) is sans-IO: it takes bytes,
//! an injected clock ([`time::Now`]) and an injected random source, and returns bytes and actions.
//! It never touches a socket or reads the system clock. See `docs/protocol.md` for the layout.
//!
//! Module split (after the kernel's `drivers/net/wireguard`):
//! - [`crypto`]: BLAKE2s hash/MAC/HMAC/KDF, ChaCha20-Poly1305, X25519 (`noise.c` primitives)
//! - [`keys`]: static and preshared keys, base64 as `wg` prints them
//! - [`messages`]: wire formats of the four message types
//! - [`tai64n`]: handshake timestamps
//! - [`noise`]: the Noise_IKpsk2 handshake (`noise.c`)
//! - [`cookie`]: MAC1/MAC2 and cookie replies (`cookie.c`)
//! - [`replay`]: the anti-replay window (`receive.c` counter_validate)
//! - [`aead`]: the transport ChaCha20-Poly1305, keyed once per keypair direction
//! - [`keypair`]: transport keys, in-place and batch seal/open (`noise.c` keypairs, `send.c`/`receive.c` crypto)
//! - [`timers`]: the per-peer timer state machine (`timers.c`)
//! - [`peer`]: one peer's protocol state (`peer.c`)
//! - [`ratelimiter`]: the per-source token bucket for handshakes under load (`ratelimiter.c`)
//! - [`device`]: the device: identity, peers, index table, dispatch (`device.c`, `receive.c`)
//! - [`icmp`]: ICMP errors for inner packets the device cannot carry (`send.c` `icmp_ndo_send`)
//! - [`index`]: random, unique 32-bit sender indices (`peerlookup.c`)
//! - [`rng`]: the daemon's random source (`getrandom` read a block at a time)
//! - [`privdrop`]: `--user`: becoming an unprivileged user with only `CAP_NET_ADMIN` left

pub mod aead;
pub mod allowedips;
pub mod config;
pub mod constants;
pub mod cookie;
pub mod crypto;
pub mod daemon;
pub mod device;
pub mod icmp;
pub mod index;
pub mod ipc;
pub mod keypair;
pub mod keys;
pub mod messages;
pub mod netconf;
pub mod noise;
pub mod peer;
pub mod privdrop;
pub mod ratelimiter;
pub mod receive;
pub mod replay;
pub mod rng;
pub mod send;
pub mod tai64n;
pub mod time;
pub mod timers;
pub mod tun;
pub mod uapi;
pub mod udp;
pub mod workers;
