//! # bgp-speaker
//!
//! A standalone BGP speaker library with RFC 4724 graceful restart, for embedding in Rust
//! daemons. This root package is the only tokio code of the workspace: the codec is
//! [`bgp_wire`], the session state machine [`bgp_fsm`], the RIB [`bgp_rib`].
//!
//! The embedder API is [`Speaker::start`]: it runs on the caller's runtime and returns a
//! cloneable [`SpeakerHandle`] (peers, routes, snapshots, the two ways to stop) and an
//! [`EventStream`] (sessions, End-of-RIB, graceful restart, best-route changes). Two speakers
//! over the in-memory network of the [`testkit`], on a virtual clock:
//!
//! ```
//! use bgp_speaker::testkit::{MemoryNetwork, next_event};
//! use bgp_speaker::{Announcement, Event, GlobalSettings, Network, PeerSettings, Speaker};
//! use bgp_wire::Asn;
//! use std::time::Duration;
//!
//! let rt = tokio::runtime::Builder::new_current_thread()
//!     .enable_all()
//!     .start_paused(true)
//!     .build()?;
//! rt.block_on(async {
//!     let net = MemoryNetwork::new(64 * 1024);
//!     let settings = |asn, me: &str, peer: &str, peer_asn| GlobalSettings {
//!         asn: Asn(asn),
//!         router_id: me.parse().unwrap(),
//!         listen: vec![format!("{me}:179").parse().unwrap()],
//!         loc_rib_events: true,
//!         peers: vec![PeerSettings::new(peer.parse().unwrap(), Asn(peer_asn))],
//!         network: Network::Memory(net.clone()),
//!         ..GlobalSettings::default()
//!     };
//!     let (a, _) = Speaker::start(settings(65001, "10.0.0.1", "10.0.0.2", 65002)).await?;
//!     let (b, mut b_events) = Speaker::start(settings(65002, "10.0.0.2", "10.0.0.1", 65001)).await?;
//!
//!     let route = Announcement::new("198.51.100.0/24".parse()?).with_next_hop("10.0.0.1".parse()?);
//!     assert!(a.announce(route.clone()).await?);
//!     assert!(!a.announce(route).await?, "announcing it again changes nothing");
//!
//!     let learned = next_event(&mut b_events, Duration::from_secs(60), |e| {
//!         matches!(e, Event::RouteChanged { route: Some(_), .. })
//!     })
//!     .await;
//!     assert!(learned.is_some());
//!     assert_eq!(b.routes().await?.len(), 1);
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The layers under it, each usable alone:
//! - [`speaker`]: the speaker task, settings, handle and events;
//! - [`core`]: the runtime-free core: the RIB and the per-peer bookkeeping, fed by the
//!   sessions' actions;
//! - [`testkit`]: the in-memory network and virtual-time helpers for embedders' own tests;
//! - [`config`], [`restart_state`], [`snapshot`], [`metrics`]: the TOML configuration, the
//!   restart-state file, peer snapshots and their Prometheus rendering.
//!
//! The runtime pieces:
//! - [`peer`]: one task per peer ([`spawn_peer`]) that drives a [`bgp_fsm::Session`] over any
//!   [`Transport`], sends route events to the core ([`PeerEvent`], bounded), takes
//!   [`PeerCommand`]s and pulls its UPDATEs from an [`Outbox`];
//! - [`transport`]: [`Connector`]s for TCP and for an in-memory network;
//! - [`listener`]: accepting connections and routing them to peer tasks;
//! - [`sockopt`]: TCP MD5, TTL, GTSM, source address, bind to device;
//! - [`clock`]: tokio time as [`bgp_fsm::Time`], virtual in paused tests.
//!
//! Two bare peer tasks over the in-memory network, on a paused (virtual) clock:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use bgp_fsm::Action;
//! use bgp_speaker::sockopt::SocketOptions;
//! use bgp_speaker::{
//!     listener, Clock, Dispatcher, MemoryNetwork, OutboxHandle, PeerConfig, PeerContext,
//!     PeerId, spawn_peer,
//! };
//! use bgp_wire::Asn;
//!
//! let rt = tokio::runtime::Builder::new_current_thread()
//!     .enable_all()
//!     .start_paused(true)
//!     .build()?;
//! rt.block_on(async {
//!     let (a, b) = ("10.0.0.1".parse()?, "10.0.0.2".parse()?);
//!     let net = MemoryNetwork::new(64 * 1024);
//!     let clock = Clock::new();
//!     let peer = |me, id: u8, asn, peer_asn, passive| {
//!         let mut c = PeerConfig::default();
//!         c.session.local_asn = Asn(asn);
//!         c.session.peer_asn = Some(Asn(peer_asn));
//!         c.session.bgp_id = std::net::Ipv4Addr::new(192, 0, 2, id);
//!         c.session.passive = passive;
//!         let (tx, rx) = tokio::sync::mpsc::channel(64);
//!         let ctx = PeerContext { clock, connector: Arc::new(net.connector(me)), events: tx };
//!         (ctx, c, rx)
//!     };
//!     // B listens and waits; A connects.
//!     let (ctx_b, cfg_b, mut events_b) = peer(b, 2, 65002, 65001, true);
//!     let b_task = spawn_peer(PeerId::new(a), cfg_b, ctx_b, OutboxHandle::memory().0);
//!     let dispatcher = Dispatcher::new();
//!     dispatcher.register(b_task.id(), b_task.commands(), SocketOptions::default());
//!     listener::spawn_memory_listener(net.listen(SocketAddr::new(b, 179), 4), dispatcher);
//!     let (ctx_a, cfg_a, _events_a) = peer(a, 1, 65001, 65002, false);
//!     let _a_task = spawn_peer(PeerId::new(b), cfg_a, ctx_a, OutboxHandle::memory().0);
//!
//!     let event = events_b.recv().await.expect("an event");
//!     assert!(matches!(event.action, Action::Established(_)));
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod clock;
pub mod config;
pub mod core;
pub mod handover;
pub mod listener;
pub mod metrics;
pub mod peer;
pub mod restart_state;
pub mod snapshot;
pub mod sockopt;
pub mod speaker;
pub mod testkit;
pub mod transport;

pub use bgp_wire as wire;
pub use clock::Clock;
pub use core::{Announcement, Event, ImportLimits, PrefixLimit, Route};
pub use listener::Dispatcher;
pub use peer::{
    MemoryOutbox, Outbox, OutboxHandle, PeerCommand, PeerConfig, PeerContext, PeerEvent,
    PeerHandle, PeerId, spawn_peer,
};
pub use speaker::{
    EventStream, GlobalSettings, Network, PeerSettings, Reset, ShutdownOptions, Speaker,
    SpeakerError, SpeakerHandle,
};
pub use transport::{BoxTransport, Connector, MemoryNetwork, TcpConnector, Transport};
