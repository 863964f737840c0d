//! # bgp-speaker
//!
//! A standalone BGP speaker library with RFC 4724 graceful restart, for embedding in Rust
//! daemons. This root package is the only tokio code of the workspace: the codec is
//! [`bgp_wire`], the session state machine [`bgp_fsm`].
//!
//! The runtime pieces:
//! - [`peer`]: one task per peer ([`spawn_peer`]) that drives a [`bgp_fsm::Session`] over any
//!   [`Transport`], sends route events to the core ([`PeerEvent`], bounded), takes
//!   [`PeerCommand`]s and pulls its UPDATEs from an [`Outbox`];
//! - [`transport`]: [`Connector`]s for TCP and for an in-memory network;
//! - [`listener`]: accepting connections and routing them to peer tasks;
//! - [`sockopt`]: TCP MD5, TTL, GTSM, source address, bind to device;
//! - [`clock`]: tokio time as [`bgp_fsm::Time`], virtual in paused tests.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod clock;
pub mod config;
pub mod listener;
pub mod peer;
pub mod sockopt;
pub mod transport;

pub use bgp_wire as wire;
pub use clock::Clock;
pub use listener::Dispatcher;
pub use peer::{
    MemoryOutbox, Outbox, OutboxHandle, PeerCommand, PeerConfig, PeerContext, PeerEvent,
    PeerHandle, PeerId, spawn_peer,
};
pub use transport::{BoxTransport, Connector, MemoryNetwork, TcpConnector, Transport};
