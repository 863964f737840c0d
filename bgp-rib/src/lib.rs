//! # bgp-rib
//!
//! Adj-RIB-In, Loc-RIB and Adj-RIB-Out (RFC 4271 §3.2, §9) with stale-route retention for
//! graceful restart (RFC 4724, RFC 9494), built on [`bgp_wire`]. Runtime-free: every
//! operation is a plain call that returns what changed.
//!
//! - [`intern`]: one shared copy of each distinct attribute set.
//! - [`loc`]: the route table. Per family one hash map from a compact prefix key to the
//!   prefix's candidate paths, best first: every peer's Adj-RIB-In and the local origin
//!   table live here, a single-path prefix costs one 24-octet (IPv4) entry, and the first
//!   candidate is the Loc-RIB route.
//! - [`adj_in`]: a peer's Adj-RIB-In as a view of its paths in that table, stale marks
//!   (graceful restart, long-lived graceful restart), route counts for max-prefix.
//! - [`best`]: the RFC 4271 §9.1 decision process and the multipath set.
//! - [`adj_out`]: what each peer is owed: only the prefixes that changed since they were
//!   written, each with what the peer was told (what it holds otherwise is the export of the
//!   Loc-RIB, so a peer that is up to date costs nothing per prefix), drained as packed
//!   UPDATEs in their current state, and re-sent in full on a route refresh
//!   ([`Rib::refresh_out`]).
//! - [`policy`]: import/export policies and the route sink, small synchronous traits.
//! - [`image`]: one peer's Adj-RIB-In as bytes, and back, for a hitless upgrade.
//! - [`rib`]: all of it wired together, with the import checks, the export rules and the
//!   local origin table.
//!
//! Change sets hold `Arc`s to interned attribute sets; drop them before the next call, so
//! that the sets nobody uses any more are freed by that call (a full scan catches the rest,
//! amortised over releases).
//!
//! ```
//! use bgp_rib::{Rib, RibConfig, RouteAttributes};
//! use bgp_wire::{AfiSafi, AsPath, Asn, Origin, PathAttributes};
//!
//! let mut rib = Rib::new(RibConfig {
//!     local_asn: Asn(65000),
//!     router_id: "192.0.2.1".parse()?,
//!     cluster_id: None,
//! });
//! let attrs = RouteAttributes::new(PathAttributes {
//!     origin: Some(Origin::Igp),
//!     as_path: Some(AsPath::empty()),
//!     next_hop: Some("192.0.2.1".parse()?),
//!     ..PathAttributes::default()
//! });
//! let changes = rib.announce(AfiSafi::IPV4_UNICAST, "10.0.0.0/8".parse()?, attrs.clone());
//! assert_eq!(changes.best.len(), 1);
//! // Announcing it again changes nothing.
//! assert!(rib.announce(AfiSafi::IPV4_UNICAST, "10.0.0.0/8".parse()?, attrs).is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod adj_in;
pub mod adj_out;
pub mod best;
mod export;
pub mod image;
pub mod intern;
pub mod loc;
pub mod policy;
pub mod rib;
pub mod table;

pub use adj_in::{AdjEntry, AdjRibIn, InChange, Staleness};
pub use adj_out::{AdjRibOut, Drained};
pub use best::{Candidate, SourceId, SourceInfo, multipath, select_best};
pub use image::{IMAGE_VERSION, ImageError, ImageStats};
pub use intern::{AttrStore, Attrs, RouteAttributes};
pub use loc::{BestChange, BestRoute, LocRib};
pub use policy::{AcceptAll, ExportPolicy, ImportPolicy, PolicyAction, RouteSink};
pub use rib::{PeerConfig, Rib, RibChanges, RibConfig, Role};

#[cfg(test)]
mod tests;
