//! The sans-IO protocol core: bytes and an injected clock in, bytes and actions out.

pub mod allowedips;
pub mod constants;
pub mod cookie;
pub mod device;
pub mod icmp;
pub mod index;
pub mod keypair;
pub mod messages;
pub mod noise;
pub mod peer;
pub mod ratelimiter;
pub mod replay;
pub mod tai64n;
pub mod time;
pub mod timers;
