//! # bgp-speaker
//!
//! A standalone BGP speaker library with RFC 4724 graceful restart, for embedding in Rust
//! daemons. This root package will hold the tokio runtime and the embedder API; the codec is
//! [`bgp_wire`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod metrics;
pub mod restart_state;
pub mod snapshot;

pub use bgp_wire as wire;
