//! Protocol constants, with the kernel's names (`drivers/net/wireguard/messages.h`).
//!
//! Where the kernel and wireguard-go differ, wgd uses the kernel's value (see `docs/protocol.md`).

use std::time::Duration;

/// Send a new initiation after this many messages on one keypair.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Size of the anti-replay window bitmap in bits (an 8192-bit ring).
pub const COUNTER_BITS_TOTAL: u64 = 8192;
/// Bits of the ring that are not usable because of word-granular clearing.
pub const COUNTER_REDUNDANT_BITS: u64 = 64;
/// Usable width of the anti-replay window: 8128 counters.
pub const COUNTER_WINDOW_SIZE: u64 = COUNTER_BITS_TOTAL - COUNTER_REDUNDANT_BITS;
/// Never send, and reject received counters, at or above this (kernel: 2^64 - 8130).
///
/// wireguard-go uses 2^64 - 2^13 - 1; the kernel's value keeps the window from ever wrapping.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - COUNTER_WINDOW_SIZE - 1;

/// The initiator rekeys a session this old on send.
pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
/// Keypairs older than this are never used again.
pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
/// Give up retrying an initiation after this long.
pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
/// Wait this long (plus jitter) for a response before retrying an initiation.
pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound (exclusive) of the random jitter added to handshake timers: 333 ms.
pub const REKEY_TIMEOUT_JITTER_MAX: Duration = Duration::from_millis(334);
/// Passive keepalive after receiving data and sending nothing for this long.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// REKEY_ATTEMPT_TIME / REKEY_TIMEOUT = 18 retries.
pub const MAX_TIMER_HANDSHAKES: u32 =
    (REKEY_ATTEMPT_TIME.as_secs() / REKEY_TIMEOUT.as_secs()) as u32;
/// The cookie secret is re-randomised this often.
pub const COOKIE_SECRET_MAX_AGE: Duration = Duration::from_secs(120);
/// A received cookie is used while younger than MAX_AGE - LATENCY (115 s).
pub const COOKIE_SECRET_LATENCY: Duration = Duration::from_secs(5);
/// At most this many initiations per second are consumed from one peer (one per 20 ms).
pub const INITIATIONS_PER_SECOND: u64 = 50;
/// Packets kept per peer while no session exists; the oldest is dropped beyond.
pub const MAX_STAGED_PACKETS: usize = 128;
/// Capacity of the incoming handshake queue (kernel).
pub const MAX_QUEUED_INCOMING_HANDSHAKES: usize = 4096;
/// The device is "under load" while its handshake queue holds at least this many.
pub const UNDER_LOAD_QUEUE_THRESHOLD: usize = MAX_QUEUED_INCOMING_HANDSHAKES / 8;
/// ... and for this long after it last was.
pub const UNDER_LOAD_AFTER: Duration = Duration::from_secs(1);
/// Default MTU of the tunnel interface.
pub const DEFAULT_MTU: usize = 1420;
