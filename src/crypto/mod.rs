//! Cryptography: the primitives, the transport AEAD, keys and the random source.

pub mod aead;
pub mod keys;
mod primitives;
pub mod rng;

pub use primitives::*;
