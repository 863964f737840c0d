//! # bgp-wire
//!
//! The BGP-4 message codec of bgp-speaker: every message, capability and path attribute that a
//! modern speaker exchanges, MP-BGP, ADD-PATH, extended messages, and RFC 7606 error handling.
//!
//! The crate is runtime-free: it reads from and writes to byte buffers and nothing else.
//! Decoding is zero-copy where it matters: a decoded message holds `Bytes` slices of the
//! buffer it came from. What a session negotiated in OPEN travels as an explicit [`Context`]
//! to every decode and encode call.
//!
//! Every decode error is a [`DecodeError`] that names the field and the byte offset, knows the
//! NOTIFICATION to send ([`DecodeError::notification`]) and, for UPDATE attribute errors, the
//! [`Rfc7606Action`]: an UPDATE with a treat-as-withdraw error decodes successfully, with the
//! error recorded in it, so that the session layer can withdraw its prefixes and carry on.
//!
//! ```
//! use bgp_wire::{Context, Message};
//!
//! let ctx = Context::default();
//! let bytes = Message::Keepalive.to_bytes(&ctx)?;
//! assert_eq!(Message::decode(bytes, &ctx)?, Message::Keepalive);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod aspath;
pub mod attribute;
mod buf;
pub mod capability;
pub mod community;
pub mod context;
pub mod error;
pub mod header;
pub mod message;
pub mod nlri;
pub mod notification;
pub mod open;
pub mod pack;
mod reader;
pub mod route_refresh;
pub mod types;
pub mod update;

pub use aspath::{AsPath, Segment, SegmentType};
pub use attribute::{Aggregator, Origin, PathAttributes, RawAttribute};
pub use capability::Capability;
pub use community::{
    ClusterList, Communities, Community, ExtCommunities, ExtCommunity, LargeCommunities,
    LargeCommunity,
};
pub use context::Context;
pub use error::{DecodeError, EncodeError, ErrorKind, Rfc7606Action};
pub use header::{Header, MessageType, check_header, split_message};
pub use message::Message;
pub use nlri::{Nlri, Nlris};
pub use notification::Notification;
pub use open::{Open, OptionalParameter};
pub use pack::{pack_announce, pack_withdraw};
pub use route_refresh::{RouteRefresh, RouteRefreshSubtype};
pub use types::{Afi, AfiSafi, AfiSafiSet, Asn, Safi};
pub use update::{MpReach, MpUnreach, NextHop, Update};
