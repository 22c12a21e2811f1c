//! Shared helpers for the integration tests.
//!
//! Each integration test file includes this module with `mod common;`. Not every test binary uses
//! every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod conf;
pub mod driver;
pub mod inproc;
pub mod netns;
pub mod packet;
pub mod transfer;
