//! Snapshots: what the embedder (and the metrics endpoint) can read about each peer at any
//! time. Plain values, cheap to clone; never a secret.

use std::net::IpAddr;
use std::time::SystemTime;

use bgp_wire::AfiSafi;

/// The RFC 4271 §8 session states, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Idle.
    Idle,
    /// Connect.
    Connect,
    /// Active.
    Active,
    /// OpenSent.
    OpenSent,
    /// OpenConfirm.
    OpenConfirm,
    /// Established.
    Established,
}

impl SessionState {
    /// The RFC name.
    pub fn name(self) -> &'static str {
        match self {
            SessionState::Idle => "Idle",
            SessionState::Connect => "Connect",
            SessionState::Active => "Active",
            SessionState::OpenSent => "OpenSent",
            SessionState::OpenConfirm => "OpenConfirm",
            SessionState::Established => "Established",
        }
    }

    /// The number GoBGP's exporter uses (idle 1 … established 6).
    pub fn number(self) -> u8 {
        match self {
            SessionState::Idle => 1,
            SessionState::Connect => 2,
            SessionState::Active => 3,
            SessionState::OpenSent => 4,
            SessionState::OpenConfirm => 5,
            SessionState::Established => 6,
        }
    }
}

/// Message counts by type, one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// OPEN messages.
    pub open: u64,
    /// UPDATE messages.
    pub update: u64,
    /// NOTIFICATION messages.
    pub notification: u64,
    /// KEEPALIVE messages.
    pub keepalive: u64,
    /// ROUTE-REFRESH messages.
    pub route_refresh: u64,
}

impl MessageCounts {
    /// All messages.
    pub fn total(&self) -> u64 {
        self.open + self.update + self.notification + self.keepalive + self.route_refresh
    }
}

/// Route counts for one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyCounts {
    /// The family.
    pub family: AfiSafi,
    /// Prefixes the peer sent that we hold (Adj-RIB-In), accepted or not.
    pub received: u64,
    /// Of those, the ones the import policy accepted.
    pub accepted: u64,
    /// Prefixes we advertised to the peer (what it has been told).
    pub advertised: u64,
    /// Of the received, those kept stale by graceful restart.
    pub stale: u64,
}

/// The graceful-restart situation of a peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GrState {
    /// Graceful restart is not in effect.
    #[default]
    None,
    /// The peer is restarting; we keep its routes stale (receiving speaker).
    PeerRestarting,
    /// We restarted; our End-of-RIB is pending (restarting speaker).
    LocalRestarting,
}

/// One peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSnapshot {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's port.
    pub port: u16,
    /// The peer's AS.
    pub peer_asn: u32,
    /// Whether the peer is enabled.
    pub enabled: bool,
    /// The session state.
    pub state: SessionState,
    /// Since when the session is in that state.
    pub since: SystemTime,
    /// Negotiated hold time and keepalive interval, in seconds, while Established.
    pub hold_time: Option<u16>,
    /// Negotiated keepalive interval, in seconds, while Established.
    pub keepalive: Option<u16>,
    /// Negotiated capabilities, by name (e.g. `graceful-restart`, `add-path`), while Established.
    pub capabilities: Vec<String>,
    /// Per-family route counts.
    pub families: Vec<FamilyCounts>,
    /// Messages received.
    pub received: MessageCounts,
    /// Messages sent.
    pub sent: MessageCounts,
    /// How many times the session left Established.
    pub flaps: u64,
    /// The last error, in words (e.g. a NOTIFICATION's names, or a connect error).
    pub last_error: Option<String>,
    /// Graceful restart.
    pub graceful_restart: GrState,
}
