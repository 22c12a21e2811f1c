//! wgd: a userspace WireGuard implementation.
//!
//! The crate is split along its boundaries (after the kernel's `drivers/net/wireguard` and
//! wireguard-go's packages); each folder says what it owns and what it may import:
//! - [`proto`]: the sans-IO protocol core: handshake, cookies, timers, keypairs, replay window,
//!   rate limiter, AllowedIPs, the device. Takes bytes and an injected clock ([`proto::time::Now`])
//!   and returns bytes and actions; never touches a socket, tokio or the system clock. Imports
//!   only [`crypto`].
//! - [`crypto`]: BLAKE2s/HMAC/KDF, X25519 and ChaCha20-Poly1305 primitives, the transport AEAD,
//!   static and preshared keys, the random source. Imports nothing from the crate.
//! - [`conf`]: the `.conf` model, its value types, parser, writers and lint. Imports [`crypto`].
//! - [`uapi`]: the cross-platform UAPI: set requests (parse and apply), get replies (write and
//!   parse), the socket server and client. Imports [`proto`], [`conf`], [`crypto`].
//! - [`daemon`]: the I/O edge: the event loop, the send and receive pipelines, TUN, UDP, crypto
//!   workers, privilege drop. Imports everything above.
//! - [`wgquick`]: the `wg-quick` steps run around a device: addresses, routes, DNS, hooks,
//!   SaveConfig. Imports [`conf`] and [`daemon`]'s TUN helpers.
//!
//! The folders are the modules of the API and each re-exports what it offers; of their files
//! only self-contained building blocks are public modules (wire formats, constants, the
//! handshake, cookies, the AllowedIPs table, keys, the UAPI socket, privilege drop). The types
//! most programs need are also at the crate root. `examples/` shows them
//! in use. See `docs/architecture.md` for the path of a packet through these modules.

// The panic rule (docs/security.md): nothing reachable from network, configuration-file or UAPI
// input may panic. Each remaining site carries an `#[expect(..., reason = "...")]` saying why it
// cannot fire; tests are exempt (clippy.toml).
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented
)]

pub mod conf;
pub mod crypto;
pub mod daemon;
pub mod proto;
pub mod uapi;
pub(crate) mod wgquick;

pub use conf::Config;
pub use crypto::keys::{PresharedKey, PrivateKey, PublicKey};
pub use proto::{Device, DropReason, Endpoint, Instant, Now, PeerId, Received, Transmit};
pub use uapi::{Request, SetRequest};
