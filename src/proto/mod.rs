//! The sans-IO protocol core: bytes and an injected clock in, bytes and actions out. Nothing in
//! here opens a socket, spawns a task or reads the system clock; the daemon does the I/O.
//!
//! The files follow the kernel's `drivers/net/wireguard`:
//! - `device.rs` (`device.c`, the dispatch of `receive.c`): identity, peers, index table,
//!   AllowedIPs, cookie checker, under-load state;
//! - `peer.rs` (`peer.c`, the per-peer halves of `send.c`/`receive.c`): sessions, staging,
//!   roaming, counters;
//! - [`noise`] (`noise.c`): the Noise_IKpsk2 handshake; [`cookie`] (`cookie.c`): MAC1/MAC2 and
//!   cookie replies; `timers.rs` (`timers.c`); `keypair.rs` and `replay.rs` (transport keys and
//!   the anti-replay window); `ratelimiter.rs` (`ratelimiter.c`); [`allowedips`]
//!   (`allowedips.c`); `index.rs` (`peerlookup.c`); [`messages`] (the wire formats);
//!   [`constants`] (the whitepaper's timers and limits); `time.rs` (the injected clock);
//!   `tai64n.rs` (handshake timestamps); `icmp.rs` (ICMP errors for packets the device
//!   cannot carry).
//!
//! Imports only [`crate::crypto`].

pub mod allowedips;
pub mod constants;
pub mod cookie;
pub(crate) mod device;
pub(crate) mod icmp;
pub(crate) mod index;
pub(crate) mod keypair;
pub mod messages;
pub mod noise;
pub(crate) mod peer;
pub(crate) mod ratelimiter;
pub(crate) mod replay;
pub(crate) mod tai64n;
pub(crate) mod time;
pub(crate) mod timers;

pub use allowedips::AllowedIps;
pub use device::{Device, DeviceStats, DropReason, PeerConfigError, Received, Ticket};
pub use index::{IndexTable, PeerId};
pub use keypair::{Keypair, OpenError, SealError, open_datagram, open_with_counter, seal_prepared};
pub use peer::{
    DataReceived, Endpoint, Opened, Peer, PeerError, PeerStats, SendResult, Transmit, TransmitKind,
    inner_packet,
};
pub use ratelimiter::RateLimiter;
pub use replay::ReplayWindow;
pub use tai64n::{TIMESTAMP_LEN, Tai64n};
pub use time::{Instant, Now};
pub use timers::Timers;

/// The rate limiter's constants (kernel `ratelimiter.c`), for tests and tools that model it.
pub mod ratelimits {
    pub use super::ratelimiter::{
        GC_INTERVAL, IDLE_TIMEOUT, MAX_ENTRIES, PACKET_COST, PACKETS_BURSTABLE, PACKETS_PER_SECOND,
        TOKEN_MAX,
    };
}
