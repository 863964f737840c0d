//! A test kit for embedders: run a speaker against scripted peers, or two speakers against
//! each other, deterministically: in memory and on a virtual clock.
//!
//! - [`MemoryNetwork`]: an in-memory network addressed like TCP; give it to
//!   [`GlobalSettings::network`](crate::speaker::GlobalSettings::network) as
//!   [`Network::Memory`], or connect to a speaker with [`MemoryNetwork::connect`] and speak
//!   BGP by hand (with [`bgp_wire`] or a [`bgp_fsm::Session`]).
//! - Virtual time: run the test with `#[tokio::test(start_paused = true)]` (or a runtime built
//!   with `start_paused(true)`); the speaker's [`Clock`] follows tokio's, so hold timers,
//!   restart timers and deferrals pass in no real time, in a reproducible order.
//! - [`next_event`]: waits (in virtual time) for the first event matching a predicate.
//!
//! ```
//! use std::time::Duration;
//! use bgp_speaker::testkit::{MemoryNetwork, next_event};
//! use bgp_speaker::speaker::{GlobalSettings, Network, PeerSettings, Speaker};
//! use bgp_speaker::core::Event;
//! use bgp_wire::Asn;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true)
//! #     .build()?.block_on(async {
//! let net = MemoryNetwork::new(64 * 1024);
//! let settings = |me: &str, peer: &str| GlobalSettings {
//!     router_id: me.parse().unwrap(),
//!     listen: vec![format!("{me}:179").parse().unwrap()],
//!     peers: vec![PeerSettings::new(peer.parse().unwrap(), Asn(65000))],
//!     network: Network::Memory(net.clone()),
//!     ..GlobalSettings::default()
//! };
//! let (_a, _) = Speaker::start(settings("10.0.0.1", "10.0.0.2")).await?;
//! let (_b, mut events) = Speaker::start(settings("10.0.0.2", "10.0.0.1")).await?;
//! let up = next_event(&mut events, Duration::from_secs(30), |e| {
//!     matches!(e, Event::PeerUp { .. })
//! })
//! .await;
//! assert!(up.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

pub use crate::clock::Clock;
pub use crate::core::Event;
pub use crate::speaker::EventStream;
pub use crate::speaker::Network;
pub use crate::transport::{MemoryConnector, MemoryListener, MemoryNetwork};

/// The first event within `within` (tokio time: virtual in paused tests) for which `pred`
/// holds; the events before it are dropped. `None` when none came in time, or the speaker
/// stopped.
pub async fn next_event(
    events: &mut EventStream,
    within: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Option<Event> {
    tokio::time::timeout(within, async {
        while let Some(e) = events.recv().await {
            if pred(&e) {
                return Some(e);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}
