//! Cryptography: the primitives, the transport AEAD, keys and the random source.

pub(crate) mod aead;
pub mod keys;
mod primitives;
pub(crate) mod rng;

pub use aead::TransportKey;
pub use primitives::*;
