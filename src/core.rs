//! The runtime-free core of the speaker: the RIB and the per-peer bookkeeping, driven by the
//! route-affecting actions the peer tasks forward ([`PeerEvent`]) and by the embedder's
//! announcements. No tokio here: every call takes its input and returns what changed
//! ([`CoreOutput`], STYLE 11), so the whole route logic is testable with plain calls.
//!
//! What it does with each session action:
//!
//! | action | RIB call | events |
//! | --- | --- | --- |
//! | `Established` | [`Rib::peer_up`]: Adj-RIB-Out filled, End-of-RIB after the table | [`Event::PeerUp`] |
//! | `UpdateReceived` | [`Rib::apply_update`] | [`Event::RouteChanged`] (opt-in) |
//! | `EndOfRib` | — (the GR machine sends `PurgeStale` when due) | [`Event::EndOfRibReceived`] |
//! | `RetainStale` | [`Rib::mark_stale`] | [`Event::StaleKept`] |
//! | `PurgeStale` | [`Rib::purge_stale`] | [`Event::StalePurged`] |
//! | `MarkLlgrStale` | [`Rib::mark_llgr_stale`] | — |
//! | `RouteRefreshRequested` | [`Rib::refresh_out`]; [`CoreCommand::RefreshDone`] once written | — |
//! | `SessionDown` | [`Rib::peer_down`], keeping the retained families stale | [`Event::PeerDown`] |
//!
//! Outgoing routes are pulled: each peer task drains a [`CoreOutbox`], which locks the core
//! and drains that peer's Adj-RIB-Out. End-of-RIB is written by the RIB after the initial
//! table, so the peer tasks run with [`crate::PeerConfig::end_of_rib_from_outbox`]. A peer we
//! restarted towards (restarting speaker, RFC 4724 §4.1) gets nothing until the embedder
//! says its initial routes are in ([`Core::initial_routes_done`]): then the whole table goes,
//! End-of-RIB last, and the helper purges exactly what we did not send again.
//!
//! Export: the embedder's own routes go to every peer (or to the peers an [`Announcement`]
//! names, with its AS_PATH prepends towards eBGP peers); routes learned from peers go to the
//! other peers only with [`CoreSettings::export_learned`] (route-server style: next hops are
//! kept as received).
//!
//! Route refresh (RFC 2918, RFC 7313): a peer's request re-marks everything it holds of the
//! family in its Adj-RIB-Out ([`Rib::refresh_out`]); the outbox drains it as usual, and the
//! drain that writes the last of it queues [`CoreCommand::RefreshDone`] for the peer task
//! ([`Core::take_commands`]), whose session then sends EoRR when enhanced route refresh was
//! negotiated: the marker is written after the routes. [`Core::soft_reset_out`] re-sends
//! every negotiated family the same way, without EoRR (the peer did not ask).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bgp_fsm::{Action, DownReason, Negotiated};
use bgp_rib::{
    BestChange, ExportPolicy, ImportPolicy, PolicyAction, Rib, RibChanges, RibConfig,
    RouteAttributes, RouteSink, SourceId, Staleness,
};
use bgp_wire::attribute::Origin;
use bgp_wire::{
    AfiSafi, AfiSafiSet, AsPath, Asn, Communities, Community, Context, ExtCommunities,
    ExtCommunity, LargeCommunities, LargeCommunity, NextHop, Nlri, PathAttributes,
};
use bytes::BytesMut;
use ipnet::IpNet;

use crate::peer::{Outbox, PeerEvent, PeerId};
use crate::snapshot::{FamilyCounts, GrState};

/// The family of a prefix: IPv4 or IPv6 unicast.
pub fn family_of(prefix: &IpNet) -> AfiSafi {
    match prefix {
        IpNet::V4(_) => AfiSafi::IPV4_UNICAST,
        IpNet::V6(_) => AfiSafi::IPV6_UNICAST,
    }
}

/// One of the embedder's own routes, with its attributes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The prefix (host bits are cleared).
    pub prefix: IpNet,
    /// The next hop; `None`: our own address on each session (the peer's configured next
    /// hop for the family, else its local address).
    pub next_hop: Option<IpAddr>,
    /// ORIGIN (RFC 4271 §5.1.1).
    pub origin: Origin,
    /// MULTI_EXIT_DISC (RFC 4271 §5.1.4).
    pub med: Option<u32>,
    /// LOCAL_PREF (RFC 4271 §5.1.5), sent to iBGP peers only.
    pub local_pref: Option<u32>,
    /// COMMUNITIES (RFC 1997).
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY (RFC 8092).
    pub large_communities: Vec<LargeCommunity>,
    /// EXTENDED COMMUNITIES (RFC 4360).
    pub ext_communities: Vec<ExtCommunity>,
    /// Extra copies of our AS prepended towards eBGP peers.
    pub as_path_prepend: u8,
    /// Announce only to peers with these addresses; empty: to every peer.
    pub peers: Vec<IpAddr>,
}

impl Announcement {
    /// An announcement of `prefix` with default attributes (ORIGIN IGP, our next hop).
    pub fn new(prefix: IpNet) -> Self {
        Announcement {
            prefix: prefix.trunc(),
            next_hop: None,
            origin: Origin::Igp,
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            ext_communities: Vec::new(),
            as_path_prepend: 0,
            peers: Vec::new(),
        }
    }

    /// The same with this next hop.
    pub fn with_next_hop(mut self, next_hop: IpAddr) -> Self {
        self.next_hop = Some(next_hop);
        self
    }

    /// The family of the prefix.
    pub fn family(&self) -> AfiSafi {
        family_of(&self.prefix)
    }

    fn key(&self) -> (AfiSafi, IpNet) {
        (self.family(), self.prefix.trunc())
    }

    fn scope(&self) -> Option<Scope> {
        (!self.peers.is_empty() || self.as_path_prepend > 0).then(|| Scope {
            peers: self.peers.clone(),
            prepend: self.as_path_prepend,
        })
    }

    /// The attributes of the route in the local origin table.
    pub fn attributes(&self, graceful_shutdown: bool) -> RouteAttributes {
        let list = |v: &[Community]| (!v.is_empty()).then(|| Communities::new(v.iter().copied()));
        let mut communities = self.communities.clone();
        let mut local_pref = self.local_pref;
        if graceful_shutdown {
            // RFC 8326 §4: tag our routes; iBGP peers also see them least preferred.
            if !communities.contains(&Community::GRACEFUL_SHUTDOWN) {
                communities.push(Community::GRACEFUL_SHUTDOWN);
            }
            local_pref = Some(0);
        }
        let mut attrs = PathAttributes {
            origin: Some(self.origin),
            as_path: Some(AsPath::empty()),
            med: self.med,
            local_pref,
            communities: list(&communities),
            large_communities: (!self.large_communities.is_empty())
                .then(|| LargeCommunities::new(self.large_communities.iter().copied())),
            ext_communities: (!self.ext_communities.is_empty())
                .then(|| ExtCommunities::new(self.ext_communities.iter().copied())),
            ..PathAttributes::default()
        };
        let mut mp_next_hop = None;
        match (self.family(), self.next_hop) {
            (_, None) => {}
            (f, Some(IpAddr::V4(v4))) if f == AfiSafi::IPV4_UNICAST => attrs.next_hop = Some(v4),
            (_, Some(IpAddr::V4(v4))) => mp_next_hop = Some(NextHop::Ipv4(v4)),
            (_, Some(IpAddr::V6(v6))) => mp_next_hop = Some(NextHop::Ipv6(v6)),
        }
        RouteAttributes {
            attrs,
            mp_next_hop: mp_next_hop.map(Box::new),
        }
    }
}

/// A best route in the Loc-RIB, as events and queries show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The peer it came from; `None` for our own routes.
    pub from: Option<PeerId>,
    /// Its attributes (shared, interned).
    pub attributes: Arc<RouteAttributes>,
    /// Whether it is kept stale by graceful restart.
    pub stale: bool,
}

impl Route {
    /// The next hop, from NEXT_HOP or MP_REACH_NLRI.
    pub fn next_hop(&self) -> Option<IpAddr> {
        match self.attributes.mp_next_hop.as_deref() {
            Some(NextHop::Ipv4(a)) => Some(IpAddr::V4(*a)),
            Some(NextHop::Ipv6(a)) => Some(IpAddr::V6(*a)),
            Some(NextHop::Ipv6LinkLocal { global, .. }) => Some(IpAddr::V6(*global)),
            _ => self.attributes.attrs.next_hop.map(IpAddr::V4),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.attributes.attrs;
        match self.next_hop() {
            Some(nh) => write!(f, "next-hop {nh}")?,
            None => write!(f, "next-hop self")?,
        }
        match &a.as_path {
            Some(p) if !p.is_empty() => write!(f, " as-path [{p}]")?,
            _ => write!(f, " as-path []")?,
        }
        if let Some(o) = a.origin {
            let o = match o {
                Origin::Igp => "igp",
                Origin::Egp => "egp",
                Origin::Incomplete => "incomplete",
            };
            write!(f, " origin {o}")?;
        }
        if let Some(m) = a.med {
            write!(f, " med {m}")?;
        }
        if let Some(l) = a.local_pref {
            write!(f, " local-pref {l}")?;
        }
        if let Some(c) = &a.communities {
            let v: Vec<String> = c.iter().map(|c| c.to_string()).collect();
            write!(f, " communities [{}]", v.join(" "))?;
        }
        if let Some(c) = &a.large_communities {
            let v: Vec<String> = c.iter().map(|c| c.to_string()).collect();
            write!(f, " large-communities [{}]", v.join(" "))?;
        }
        if let Some(c) = &a.ext_communities {
            let v: Vec<String> = c.iter().map(|c| c.to_string()).collect();
            write!(f, " ext-communities [{}]", v.join(" "))?;
        }
        match &self.from {
            Some(p) => write!(f, " from {p}")?,
            None => write!(f, " (ours)")?,
        }
        if self.stale {
            write!(f, " stale")?;
        }
        Ok(())
    }
}

/// What the speaker tells the embedder. Emitted only when something changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A session reached Established.
    PeerUp {
        /// The peer.
        peer: PeerId,
        /// Its AS.
        asn: Asn,
        /// Its BGP identifier.
        router_id: Ipv4Addr,
        /// The negotiated families.
        families: Vec<AfiSafi>,
        /// Whether graceful restart was negotiated.
        graceful_restart: bool,
    },
    /// A session left Established. With `routes_kept`, the peer is restarting: graceful
    /// restart keeps its routes, stale, until it is back and sends End-of-RIB, or its
    /// restart time passes (RFC 4724 §4.2).
    PeerDown {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: DownReason,
        /// Whether its routes are kept (stale).
        routes_kept: bool,
    },
    /// The peer's End-of-RIB for a family (RFC 4724 §2).
    EndOfRibReceived {
        /// The peer.
        peer: PeerId,
        /// The family.
        family: AfiSafi,
    },
    /// Our End-of-RIB for a family went to the peer, after our routes.
    EndOfRibSent {
        /// The peer.
        peer: PeerId,
        /// The family.
        family: AfiSafi,
    },
    /// Routes of a peer were marked stale and kept (graceful restart, or a BoRR).
    StaleKept {
        /// The peer.
        peer: PeerId,
        /// The family.
        family: AfiSafi,
        /// How many routes went stale.
        routes: usize,
    },
    /// A peer's routes that were still stale were removed.
    StalePurged {
        /// The peer.
        peer: PeerId,
        /// The family.
        family: AfiSafi,
        /// How many routes were removed.
        routes: usize,
    },
    /// The best route of a prefix changed (only with
    /// [`CoreSettings::loc_rib_events`]); `route: None` means it is gone. A change of the
    /// stale mark alone is not reported (see [`Event::StaleKept`]).
    RouteChanged {
        /// The family.
        family: AfiSafi,
        /// The prefix.
        prefix: IpNet,
        /// The new best route.
        route: Option<Route>,
    },
    /// A peer holds at least the warning share of its prefix limit for a family. Reported
    /// once per crossing: again only after its count fell below the threshold.
    PrefixLimitWarning {
        /// The peer.
        peer: PeerId,
        /// The family.
        family: AfiSafi,
        /// Prefixes held from the peer.
        received: u64,
        /// The limit.
        limit: u32,
    },
    /// A peer sent more prefixes of a family than its limit. Unless the limit is
    /// warning-only, the session is stopped with Cease/Maximum Number of Prefixes Reached
    /// (RFC 4486) and its routes dropped.
    PrefixLimitExceeded {
        /// The peer.
        peer: PeerId,
        /// The family.
        family: AfiSafi,
        /// Prefixes held from the peer.
        received: u64,
        /// The limit.
        limit: u32,
        /// Whether the session was stopped (the limit is not warning-only).
        session_stopped: bool,
    },
    /// The event stream was full and this many events were dropped (the receiver lags).
    Lagged {
        /// How many.
        missed: u64,
    },
    /// The sessions went to a new process ([`crate::handover`]); this speaker has stopped
    /// and its handle calls fail from now on.
    HandedOver {
        /// How many Established sessions went.
        sessions: usize,
        /// How long the sessions were paused here, from the first one stopping to read until
        /// the new process confirmed.
        paused: Duration,
    },
    /// A hand-over did not happen. With `stopped`, the new process could not read our
    /// image and this speaker stopped for a graceful restart instead (as
    /// [`crate::SpeakerHandle::stop_for_restart`]); otherwise it carries on as before.
    HandOverFailed {
        /// Why.
        reason: String,
        /// Whether this speaker stopped for a graceful restart.
        stopped: bool,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = |x: &[AfiSafi]| {
            x.iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Event::PeerUp {
                peer,
                asn,
                router_id,
                families,
                graceful_restart,
            } => write!(
                f,
                "peer {peer} up: AS {asn}, router-id {router_id}, families {}{}",
                fam(families),
                if *graceful_restart {
                    ", graceful restart"
                } else {
                    ""
                }
            ),
            Event::PeerDown {
                peer,
                reason,
                routes_kept,
            } => write!(
                f,
                "peer {peer} down: {}{}",
                describe_down(reason),
                if *routes_kept {
                    "; peer restarting, its routes kept stale"
                } else {
                    ""
                }
            ),
            Event::EndOfRibReceived { peer, family } => {
                write!(f, "peer {peer}: End-of-RIB received for {family}")
            }
            Event::EndOfRibSent { peer, family } => {
                write!(f, "peer {peer}: End-of-RIB sent for {family}")
            }
            Event::StaleKept {
                peer,
                family,
                routes,
            } => write!(f, "peer {peer}: {routes} {family} routes kept stale"),
            Event::StalePurged {
                peer,
                family,
                routes,
            } => write!(f, "peer {peer}: {routes} stale {family} routes purged"),
            Event::RouteChanged {
                prefix,
                route: Some(r),
                ..
            } => write!(f, "route {prefix}: {r}"),
            Event::RouteChanged {
                prefix,
                route: None,
                ..
            } => write!(f, "route {prefix}: withdrawn"),
            Event::PrefixLimitWarning {
                peer,
                family,
                received,
                limit,
            } => write!(
                f,
                "peer {peer}: {received} {family} prefixes, near the limit of {limit}"
            ),
            Event::PrefixLimitExceeded {
                peer,
                family,
                received,
                limit,
                session_stopped,
            } => write!(
                f,
                "peer {peer}: {received} {family} prefixes, over the limit of {limit}{}",
                if *session_stopped {
                    "; session stopped"
                } else {
                    ""
                }
            ),
            Event::Lagged { missed } => write!(f, "{missed} events dropped (stream full)"),
            Event::HandedOver { sessions, paused } => write!(
                f,
                "{sessions} sessions handed over to the new process (paused {:.1} ms)",
                paused.as_secs_f64() * 1e3
            ),
            Event::HandOverFailed { reason, stopped } => write!(
                f,
                "hand-over failed: {reason}{}",
                if *stopped {
                    "; stopped for a graceful restart"
                } else {
                    "; carrying on"
                }
            ),
        }
    }
}

/// Why a session went down, in words.
pub fn describe_down(r: &DownReason) -> String {
    r.to_string()
}

/// What the core needs to know about the speaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreSettings {
    /// Our AS.
    pub local_asn: Asn,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Pass routes learned from peers on to the other peers.
    pub export_learned: bool,
    /// Emit [`Event::RouteChanged`] for every best-route change.
    pub loc_rib_events: bool,
    /// Limits on what a route learned from a peer may carry.
    pub limits: ImportLimits,
}

/// Limits on routes learned from peers. A route over a limit is treated as withdrawn (it is
/// not taken, and a route it would replace goes): the session stays up and the rest of the
/// UPDATE is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportLimits {
    /// The most AS numbers an AS_PATH may hold (counting every segment). Default 1,024:
    /// more than any real path, prepends included.
    pub max_as_path_len: usize,
    /// The most path attributes a route may carry. Default 128: about ten times what real
    /// routes carry, so in practice a bound on unknown optional transitive attributes.
    pub max_attributes: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_as_path_len: 1024,
            max_attributes: 128,
        }
    }
}

impl ImportLimits {
    /// Whether a route with these attributes is within the limits.
    pub fn allows(&self, attrs: &bgp_wire::attribute::PathAttributes) -> bool {
        let path_len: usize = attrs
            .as_path
            .as_ref()
            .map_or(0, |p| p.segments().map(|s| s.len()).sum());
        if path_len > self.max_as_path_len {
            return false;
        }
        let known = [
            attrs.origin.is_some(),
            attrs.as_path.is_some(),
            attrs.next_hop.is_some(),
            attrs.med.is_some(),
            attrs.local_pref.is_some(),
            attrs.atomic_aggregate,
            attrs.aggregator.is_some(),
            attrs.communities.is_some(),
            attrs.originator_id.is_some(),
            attrs.cluster_list.is_some(),
            attrs.ext_communities.is_some(),
            attrs.large_communities.is_some(),
            attrs.otc.is_some(),
        ]
        .into_iter()
        .filter(|x| *x)
        .count();
        known + attrs.unknown.len() <= self.max_attributes
    }
}

/// A limit on the prefixes a peer may send for one family (RFC 4486 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefixLimit {
    /// The family.
    pub family: AfiSafi,
    /// The most prefixes the peer may hold in our Adj-RIB-In for the family.
    pub max: u32,
    /// At this share of `max`, in percent, an [`Event::PrefixLimitWarning`] goes out.
    /// Default 75.
    pub warning_percent: u8,
    /// Only report, never stop the session.
    pub warning_only: bool,
    /// After a stop, start the session again after this long; `None`: it stays down until
    /// the peer is reset or enabled again.
    pub restart_after: Option<std::time::Duration>,
}

impl PrefixLimit {
    /// A limit of `max` prefixes for `family`, warning at 75 %, stopping the session and
    /// keeping it down.
    pub fn new(family: AfiSafi, max: u32) -> Self {
        PrefixLimit {
            family,
            max,
            warning_percent: 75,
            warning_only: false,
            restart_after: None,
        }
    }

    fn warning_at(&self) -> u64 {
        (u64::from(self.max) * u64::from(self.warning_percent.min(100))).div_ceil(100)
    }
}

/// One peer as the core sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorePeer {
    /// The peer's AS.
    pub asn: Asn,
    /// Our IPv4 next hop towards it (next hop self for our own routes).
    pub local_v4: Option<Ipv4Addr>,
    /// Our IPv6 next hop towards it.
    pub local_v6: Option<Ipv6Addr>,
    /// We restarted and the peer kept our routes: hold everything (End-of-RIB included)
    /// until [`Core::initial_routes_done`] (RFC 4724 §4.1).
    pub restarting: bool,
    /// Limits on the prefixes the peer may send, per family.
    pub prefix_limits: Vec<PrefixLimit>,
}

/// One peer's part of a hand-over image, as the core gives and takes it.
#[derive(Clone, Debug)]
pub struct PeerImage {
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// Its Adj-RIB-In ([`bgp_rib::Rib::adj_in_image`]).
    pub adj_in: bytes::Bytes,
    /// Families kept stale by graceful restart.
    pub stale: AfiSafiSet,
    /// Families whose prefix-limit warning was reported.
    pub limit_warned: AfiSafiSet,
    /// Families over their prefix limit.
    pub limit_exceeded: AfiSafiSet,
    /// What the peer holds from us, per family, as counted ([`bgp_rib::AdjRibOut::told_count`]);
    /// `None`: count it again on resuming.
    pub told: Option<Vec<(AfiSafi, usize)>>,
}

/// What a peer task should be told, as a result of a core call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreCommand {
    /// Our re-advertisement after a route refresh request is done (EoRR, RFC 7313).
    RefreshDone(AfiSafi),
    /// Our initial routes are in: the session may clear its restarting state.
    InitialRoutesSent,
    /// The peer went over its prefix limit: stop the session (see
    /// [`bgp_fsm::Input::PrefixLimitExceeded`]).
    PrefixLimitExceeded(PrefixLimit),
}

/// What one core call produced.
#[derive(Debug, Default)]
#[must_use]
pub struct CoreOutput {
    /// Events for the embedder.
    pub events: Vec<Event>,
    /// Peers whose outbox has something new.
    pub notify: Vec<PeerId>,
    /// Commands for peer tasks.
    pub commands: Vec<(PeerId, CoreCommand)>,
    /// Whether the call changed the RIB.
    pub changed: bool,
}

impl CoreOutput {
    /// Adds the outcome of another call to this one (events in order, each peer notified once).
    pub fn merge(&mut self, other: CoreOutput) {
        self.events.extend(other.events);
        for p in other.notify {
            if !self.notify.contains(&p) {
                self.notify.push(p);
            }
        }
        self.commands.extend(other.commands);
        self.changed |= other.changed;
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Scope {
    peers: Vec<IpAddr>,
    prepend: u8,
}

/// State shared between the core and the RIB's sink and export policies.
#[derive(Debug)]
struct ExportShared {
    export_learned: bool,
    local_asn: Asn,
    /// Prefixes whose best route is one of ours.
    local_best: HashSet<(AfiSafi, IpNet)>,
    /// Our announcements that are not for every peer unchanged.
    scopes: HashMap<(AfiSafi, IpNet), Scope>,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Tracker(Arc<Mutex<ExportShared>>);

impl RouteSink for Tracker {
    fn best_changed(&mut self, change: &BestChange) {
        let key = (change.family, change.prefix);
        let local = |b: &Option<bgp_rib::loc::BestRoute>| {
            b.as_ref().is_some_and(|b| b.source == SourceId::LOCAL)
        };
        // Learned routes replacing learned routes (the bulk of a table) touch nothing here.
        match (local(&change.old), local(&change.new)) {
            (_, true) => {
                lock(&self.0).local_best.insert(key);
            }
            (true, false) => {
                lock(&self.0).local_best.remove(&key);
            }
            (false, false) => {}
        }
    }
}

struct PeerExport {
    shared: Arc<Mutex<ExportShared>>,
    /// Learned routes are exported and none of ours is scoped or prepended: every route
    /// goes as it is, without a look at the shared state.
    accept_all: Arc<AtomicBool>,
}

struct PeerImport(ImportLimits);

impl ImportPolicy for PeerImport {
    fn import(
        &mut self,
        peer: &bgp_rib::PeerConfig,
        _family: AfiSafi,
        _nlri: &Nlri,
        attrs: &RouteAttributes,
    ) -> PolicyAction {
        if !self.0.allows(&attrs.attrs) || points_at_us(peer, attrs) {
            PolicyAction::Reject
        } else {
            PolicyAction::Accept
        }
    }
}

/// RFC 4271 §6.3: a NEXT_HOP that is our own address is semantically incorrect; the route is
/// ignored (no NOTIFICATION, the session stays).
fn points_at_us(peer: &bgp_rib::PeerConfig, attrs: &RouteAttributes) -> bool {
    let v4 = |a: Ipv4Addr| peer.local_v4 == Some(a);
    let v6 = |a: Ipv6Addr| peer.local_v6 == Some(a);
    attrs.attrs.next_hop.is_some_and(v4)
        || match attrs.mp_next_hop.as_deref() {
            Some(&bgp_wire::NextHop::Ipv4(a)) => v4(a),
            Some(&bgp_wire::NextHop::Ipv6(a))
            | Some(&bgp_wire::NextHop::Ipv6LinkLocal { global: a, .. }) => v6(a),
            _ => false,
        }
}

impl ExportPolicy for PeerExport {
    fn export(
        &mut self,
        peer: &bgp_rib::PeerConfig,
        family: AfiSafi,
        nlri: &Nlri,
        attrs: &RouteAttributes,
    ) -> PolicyAction {
        if self.accept_all.load(Ordering::Relaxed) {
            return PolicyAction::Accept;
        }
        let s = lock(&self.shared);
        let key = (family, nlri.prefix);
        if !s.local_best.contains(&key) {
            return if s.export_learned {
                PolicyAction::Accept
            } else {
                PolicyAction::Reject
            };
        }
        let Some(scope) = s.scopes.get(&key) else {
            return PolicyAction::Accept;
        };
        if !scope.peers.is_empty() && !scope.peers.contains(&peer.address) {
            return PolicyAction::Reject;
        }
        if scope.prepend > 0 && peer.asn != s.local_asn {
            let mut a = attrs.clone();
            let path = a.attrs.as_path.take().unwrap_or_else(AsPath::empty);
            a.attrs.as_path = Some(path.prepend(s.local_asn, usize::from(scope.prepend)));
            return PolicyAction::Modify(a);
        }
        PolicyAction::Accept
    }
}

struct PeerSlot {
    source: SourceId,
    config: CorePeer,
    router_id: Ipv4Addr,
    negotiated: Option<Box<Negotiated>>,
    /// Restarting speaker: nothing is drained until the initial routes are in.
    hold_output: bool,
    /// Families the GR machine keeps stale.
    stale: AfiSafiSet,
    /// Families whose route refresh the peer asked for and we are still re-sending: the
    /// peer task is told when the drain has written them (EoRR, RFC 7313 §4).
    refresh_asked: AfiSafiSet,
    /// Families whose prefix-limit warning was reported (re-armed below the threshold).
    limit_warned: AfiSafiSet,
    /// Families reported over their prefix limit.
    limit_exceeded: AfiSafiSet,
}

/// The core: the RIB and the peers. See the module documentation.
pub struct Core {
    settings: CoreSettings,
    rib: Rib,
    shared: Arc<Mutex<ExportShared>>,
    accept_all: Arc<AtomicBool>,
    peers: BTreeMap<PeerId, PeerSlot>,
    by_source: HashMap<SourceId, PeerId>,
    announced: HashMap<(AfiSafi, IpNet), Announcement>,
    graceful_shutdown: bool,
    initial_routes_done: bool,
    /// Events produced while draining (End-of-RIB sent), picked up by [`Core::take_events`].
    pending: Vec<Event>,
    /// Commands produced while draining (a refresh written), picked up by
    /// [`Core::take_commands`].
    pending_commands: Vec<(PeerId, CoreCommand)>,
    waker: Option<Box<dyn Fn() + Send>>,
}

impl fmt::Debug for Core {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Core")
            .field("settings", &self.settings)
            .field("rib", &self.rib)
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .field("announced", &self.announced.len())
            .finish()
    }
}

impl Core {
    /// An empty core.
    pub fn new(settings: CoreSettings) -> Self {
        let shared = Arc::new(Mutex::new(ExportShared {
            export_learned: settings.export_learned,
            local_asn: settings.local_asn,
            local_best: HashSet::new(),
            scopes: HashMap::new(),
        }));
        let mut rib = Rib::with_sink(
            RibConfig {
                local_asn: settings.local_asn,
                router_id: settings.router_id,
                cluster_id: None,
            },
            Box::new(Tracker(shared.clone())),
        );
        // Only the counts are used: no list of every route a restart marks stale.
        rib.report_adj_in(false);
        Core {
            accept_all: Arc::new(AtomicBool::new(settings.export_learned)),
            settings,
            rib,
            shared,
            peers: BTreeMap::new(),
            by_source: HashMap::new(),
            announced: HashMap::new(),
            graceful_shutdown: false,
            initial_routes_done: false,
            pending: Vec::new(),
            pending_commands: Vec::new(),
            waker: None,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &CoreSettings {
        &self.settings
    }

    /// The RIB (read only).
    pub fn rib(&self) -> &Rib {
        &self.rib
    }

    /// Called (with the core locked) when a drain produced events or commands; the driver
    /// then calls [`Core::take_events`] and [`Core::take_commands`].
    pub fn set_waker(&mut self, waker: Box<dyn Fn() + Send>) {
        self.waker = Some(waker);
    }

    /// The events produced outside of a call's [`CoreOutput`] (while draining).
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.pending)
    }

    /// The commands for peer tasks produced outside of a call's [`CoreOutput`] (while
    /// draining): [`CoreCommand::RefreshDone`] once a requested refresh is written.
    pub fn take_commands(&mut self) -> Vec<(PeerId, CoreCommand)> {
        std::mem::take(&mut self.pending_commands)
    }

    fn rib_peer(&self, id: &PeerId, config: &CorePeer, router_id: Ipv4Addr) -> bgp_rib::PeerConfig {
        let mut p = bgp_rib::PeerConfig::new(config.asn, router_id, id.addr);
        p.local_v4 = config.local_v4;
        p.local_v6 = config.local_v6;
        // Next hops are kept as they are (ours as announced, learned ones as received:
        // route-server style); a route of ours without one gets our address.
        p.next_hop_self = Some(false);
        p.keep_adj_rib_in = true;
        p
    }

    fn add_to_rib(
        &mut self,
        id: &PeerId,
        config: &CorePeer,
        router_id: Ipv4Addr,
    ) -> Option<SourceId> {
        let p = self.rib_peer(id, config, router_id);
        self.rib.add_peer_with(
            p,
            Box::new(PeerImport(self.settings.limits)),
            Box::new(PeerExport {
                shared: self.shared.clone(),
                accept_all: self.accept_all.clone(),
            }),
        )
    }

    /// Adds a peer (replacing one with the same id, whose routes go). `None` when the RIB
    /// holds as many peers as it can (65,535).
    pub fn add_peer(&mut self, id: PeerId, config: CorePeer) -> Option<CoreOutput> {
        let mut out = self.remove_peer(&id);
        let source = self.add_to_rib(&id, &config, Ipv4Addr::UNSPECIFIED)?;
        self.by_source.insert(source, id.clone());
        let hold_output = config.restarting && !self.initial_routes_done;
        self.peers.insert(
            id,
            PeerSlot {
                source,
                config,
                router_id: Ipv4Addr::UNSPECIFIED,
                negotiated: None,
                hold_output,
                stale: AfiSafiSet::EMPTY,
                refresh_asked: AfiSafiSet::EMPTY,
                limit_warned: AfiSafiSet::EMPTY,
                limit_exceeded: AfiSafiSet::EMPTY,
            },
        );
        out.changed = true;
        Some(out)
    }

    /// Changes a peer's settings without touching its session or its routes: next hops
    /// and prefix limits apply from now on (what the peer should have is recomputed and only
    /// the difference is sent; a lowered limit may be exceeded at once). Unknown peers are
    /// ignored.
    pub fn update_peer(&mut self, id: &PeerId, config: CorePeer) -> CoreOutput {
        let Some(slot) = self.peers.get_mut(id) else {
            return CoreOutput::default();
        };
        let restarting = slot.config.restarting;
        slot.config = CorePeer {
            restarting,
            ..config
        };
        let (source, router_id) = (slot.source, slot.router_id);
        let config = slot.config.clone();
        let p = self.rib_peer(id, &config, router_id);
        let ch = self.rib.update_peer_config(source, p);
        let mut out = self.output(ch);
        // Its own Adj-RIB-Out may have changed without any best route changing.
        if let Some(slot) = self.peers.get(id) {
            let pending = self
                .rib
                .adj_rib_out(source)
                .is_some_and(|a| a.pending() > 0);
            if pending && slot.negotiated.is_some() && !slot.hold_output && !out.notify.contains(id)
            {
                out.notify.push(id.clone());
            }
        }
        self.check_prefix_limits(id, &mut out);
        out.changed = true;
        out
    }

    /// Compares a peer's per-family prefix counts with its limits: warnings, and a stop
    /// command once a limit is exceeded.
    fn check_prefix_limits(&mut self, id: &PeerId, out: &mut CoreOutput) {
        let Some(slot) = self.peers.get_mut(id) else {
            return;
        };
        if slot.config.prefix_limits.is_empty() {
            return;
        }
        let Some(adj_in) = self.rib.adj_rib_in(slot.source) else {
            return;
        };
        for limit in &slot.config.prefix_limits {
            let f = limit.family;
            let received = adj_in.len(f) as u64;
            if received > u64::from(limit.max) {
                if !slot.limit_exceeded.contains(f) {
                    slot.limit_exceeded.insert(f);
                    slot.limit_warned.insert(f);
                    tracing::warn!(peer = %id, family = %f, received, limit = limit.max,
                        "maximum number of prefixes exceeded");
                    out.events.push(Event::PrefixLimitExceeded {
                        peer: id.clone(),
                        family: f,
                        received,
                        limit: limit.max,
                        session_stopped: !limit.warning_only,
                    });
                    if !limit.warning_only {
                        out.commands
                            .push((id.clone(), CoreCommand::PrefixLimitExceeded(limit.clone())));
                    }
                }
            } else {
                slot.limit_exceeded.remove(f);
            }
            if received >= limit.warning_at() {
                if !slot.limit_warned.contains(f) && !slot.limit_exceeded.contains(f) {
                    slot.limit_warned.insert(f);
                    out.events.push(Event::PrefixLimitWarning {
                        peer: id.clone(),
                        family: f,
                        received,
                        limit: limit.max,
                    });
                }
            } else {
                slot.limit_warned.remove(f);
            }
        }
    }

    /// Removes a peer: its routes are withdrawn from the others.
    pub fn remove_peer(&mut self, id: &PeerId) -> CoreOutput {
        let Some(slot) = self.peers.remove(id) else {
            return CoreOutput::default();
        };
        self.by_source.remove(&slot.source);
        let ch = self.rib.remove_peer(slot.source);
        let mut out = self.output(ch);
        out.changed = true;
        out
    }

    /// The peers.
    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// What the session with a peer negotiated, while it is up.
    pub fn negotiated(&self, id: &PeerId) -> Option<&Negotiated> {
        self.peers.get(id)?.negotiated.as_deref()
    }

    /// Applies one action of a peer's session.
    pub fn handle(&mut self, event: PeerEvent) -> CoreOutput {
        let PeerEvent { peer, action, .. } = event;
        let Some(slot) = self.peers.get_mut(&peer) else {
            // A peer removed while its task was still talking.
            return CoreOutput::default();
        };
        let source = slot.source;
        match action {
            Action::Established(neg) => self.established(peer, *neg),
            Action::UpdateReceived(u) => {
                let ch = self.rib.apply_update(source, &u);
                let mut out = self.output(ch);
                self.check_prefix_limits(&peer, &mut out);
                out
            }
            Action::EndOfRib(family) => CoreOutput {
                events: vec![Event::EndOfRibReceived { peer, family }],
                ..CoreOutput::default()
            },
            Action::RetainStale(family) => {
                slot.stale.insert(family);
                let ch = self.rib.mark_stale(source, family);
                let routes = ch.adj_in_changed;
                let mut out = self.output(ch);
                if routes > 0 {
                    out.events.push(Event::StaleKept {
                        peer,
                        family,
                        routes,
                    });
                }
                out
            }
            Action::PurgeStale(family) => {
                slot.stale.remove(family);
                let ch = self.rib.purge_stale(source, family);
                let routes = ch.adj_in_changed;
                let mut out = self.output(ch);
                if routes > 0 {
                    out.events.push(Event::StalePurged {
                        peer,
                        family,
                        routes,
                    });
                }
                out
            }
            Action::MarkLlgrStale(family) => {
                let ch = self.rib.mark_llgr_stale(source, family);
                self.output(ch)
            }
            Action::RouteRefreshRequested(family) => {
                tracing::debug!(peer = %peer, %family, "route refresh requested");
                let mut out = CoreOutput::default();
                if self.rib.refresh_out(source, family) {
                    // RefreshDone follows once the drain has written the routes.
                    slot.refresh_asked.insert(family);
                    if !slot.hold_output {
                        out.notify.push(peer);
                    }
                } else {
                    // Nothing the RIB can re-send (a family it does not handle).
                    out.commands.push((peer, CoreCommand::RefreshDone(family)));
                }
                out
            }
            Action::SessionDown(reason) => self.session_down(peer, reason),
            // Not route-affecting; peer tasks do not forward them.
            Action::Connect | Action::Send(_) | Action::CloseConnection => CoreOutput::default(),
        }
    }

    fn established(&mut self, peer: PeerId, neg: Negotiated) -> CoreOutput {
        let Some(slot) = self.peers.get(&peer) else {
            return CoreOutput::default();
        };
        let (mut source, config) = (slot.source, slot.config.clone());
        let mut out = CoreOutput::default();
        // The RIB learns the peer's identifier (a decision-process tie-break) when it first
        // comes up; with no routes of it held, the peer is re-added under it.
        let empty = self.rib.adj_rib_in(source).is_none_or(|a| a.is_empty());
        if slot.router_id != neg.peer_bgp_id && empty {
            let ch = self.rib.remove_peer(source);
            out.merge(self.output(ch));
            self.by_source.remove(&source);
            let mut c = config.clone();
            c.asn = neg.peer_asn;
            // The slot just freed is reused, so this cannot run out of identifiers.
            if let Some(s) = self.add_to_rib(&peer, &c, neg.peer_bgp_id) {
                source = s;
                self.by_source.insert(source, peer.clone());
            }
        }
        let Some(slot) = self.peers.get_mut(&peer) else {
            return out;
        };
        slot.source = source;
        slot.router_id = neg.peer_bgp_id;
        slot.refresh_asked = AfiSafiSet::EMPTY;
        self.rib.peer_up(source, neg.context(), neg.families);
        if !slot.hold_output {
            out.notify.push(peer.clone());
        }
        out.events.push(Event::PeerUp {
            peer,
            asn: neg.peer_asn,
            router_id: neg.peer_bgp_id,
            families: neg.families.iter().collect(),
            graceful_restart: neg.graceful_restart(),
        });
        slot.negotiated = Some(Box::new(neg));
        out.changed = true;
        out
    }

    fn session_down(&mut self, peer: PeerId, reason: DownReason) -> CoreOutput {
        let Some(slot) = self.peers.get_mut(&peer) else {
            return CoreOutput::default();
        };
        slot.negotiated = None;
        slot.refresh_asked = AfiSafiSet::EMPTY;
        let source = slot.source;
        let keep = slot.stale;
        let mut out = CoreOutput {
            events: vec![Event::PeerDown {
                peer,
                reason,
                routes_kept: !keep.is_empty(),
            }],
            changed: true,
            ..CoreOutput::default()
        };
        let ch = self.rib.peer_down(source, !keep.is_empty());
        out.merge(self.output(ch));
        if !keep.is_empty() {
            // Every family was marked stale; those the GR machine did not retain go.
            for f in AfiSafi::KNOWN {
                if !keep.contains(f) {
                    let ch = self.rib.purge_stale(source, f);
                    out.merge(self.output(ch));
                }
            }
        }
        out
    }

    /// For a hand-over: whether the peer's session can move as it is: up, owed nothing
    /// (everything was written), not holding our routes back for a restart.
    pub fn ready_to_move(&self, id: &PeerId) -> bool {
        let Some(slot) = self.peers.get(id) else {
            return false;
        };
        slot.negotiated.is_some()
            && !slot.hold_output
            && self
                .rib
                .adj_rib_out(slot.source)
                .is_some_and(|a| a.pending() == 0)
    }

    /// For a hand-over: the peer's part of the image: its identifier and its
    /// graceful-restart and prefix-limit marks; its routes only with `routes`
    /// ([`bgp_rib::Rib::adj_in_image`]; `None` when they cannot be imaged).
    pub fn peer_image(&self, id: &PeerId, routes: bool) -> Option<PeerImage> {
        let slot = self.peers.get(id)?;
        let mut adj_in = BytesMut::new();
        if routes {
            if let Err(e) = self.rib.adj_in_image(slot.source, &mut adj_in) {
                tracing::warn!(peer = %id, error = %e, "routes not imaged");
                return None;
            }
        }
        let told = self.rib.adj_rib_out(slot.source).map(|a| {
            AfiSafi::KNOWN
                .iter()
                .map(|f| (*f, a.told_count(*f)))
                .filter(|(_, n)| *n > 0)
                .collect()
        });
        Some(PeerImage {
            router_id: slot.router_id,
            adj_in: adj_in.freeze(),
            stale: slot.stale,
            limit_warned: slot.limit_warned,
            limit_exceeded: slot.limit_exceeded,
            told,
        })
    }

    /// For a take-over: gives a peer (added with [`Core::add_peer`], its session not up)
    /// the routes and marks of its image. Best-route changes are reported as usual.
    pub fn restore_peer(
        &mut self,
        id: &PeerId,
        image: &PeerImage,
    ) -> Result<CoreOutput, bgp_rib::ImageError> {
        let Some(slot) = self.peers.get(id) else {
            return Ok(CoreOutput::default());
        };
        let (mut source, config) = (slot.source, slot.config.clone());
        // Under its identifier (a decision-process tie-break), as `established` does.
        if slot.router_id != image.router_id {
            let _ = self.rib.remove_peer(source);
            self.by_source.remove(&source);
            if let Some(s) = self.add_to_rib(id, &config, image.router_id) {
                source = s;
                self.by_source.insert(source, id.clone());
            }
        }
        let ch = self.rib.restore_adj_in(source, &image.adj_in)?;
        let mut out = self.output(ch);
        if let Some(slot) = self.peers.get_mut(id) {
            slot.source = source;
            slot.router_id = image.router_id;
            slot.stale = image.stale;
            slot.limit_warned = image.limit_warned;
            slot.limit_exceeded = image.limit_exceeded;
        }
        out.changed = true;
        Ok(out)
    }

    /// For a take-over: the peer's session is up again, and the peer holds exactly what our
    /// export of the Loc-RIB gives it: nothing is owed, no End-of-RIB is due. `told`: how
    /// many routes it holds per family, as the old process counted them (else they are
    /// counted by a walk of the export).
    pub fn resume_peer(
        &mut self,
        id: &PeerId,
        neg: Negotiated,
        told: Option<&[(AfiSafi, usize)]>,
    ) -> CoreOutput {
        let Some(slot) = self.peers.get_mut(id) else {
            return CoreOutput::default();
        };
        match told {
            Some(t) => {
                self.rib
                    .peer_resumed_with_counts(slot.source, neg.context(), neg.families, t)
            }
            None => self
                .rib
                .peer_resumed(slot.source, neg.context(), neg.families),
        }
        slot.hold_output = false;
        let out = CoreOutput {
            events: vec![Event::PeerUp {
                peer: id.clone(),
                asn: neg.peer_asn,
                router_id: neg.peer_bgp_id,
                families: neg.families.iter().collect(),
                graceful_restart: neg.graceful_restart(),
            }],
            changed: true,
            ..CoreOutput::default()
        };
        slot.negotiated = Some(Box::new(neg));
        out
    }

    /// For a take-over: the flags the old process had (initial routes in, graceful
    /// shutdown on), set without sending anything.
    pub fn restore_flags(&mut self, initial_routes_done: bool, graceful_shutdown: bool) {
        self.initial_routes_done = initial_routes_done;
        self.graceful_shutdown = graceful_shutdown;
    }

    /// Whether graceful shutdown (RFC 8326) is on.
    pub fn is_graceful_shutdown(&self) -> bool {
        self.graceful_shutdown
    }

    /// The embedder's initial routes are in: peers we restarted towards get their table
    /// and End-of-RIB now, and every session may clear its restarting state.
    pub fn initial_routes_done(&mut self) -> CoreOutput {
        let mut out = CoreOutput::default();
        if self.initial_routes_done {
            return out;
        }
        self.initial_routes_done = true;
        for (id, slot) in &mut self.peers {
            if slot.hold_output {
                slot.hold_output = false;
                out.notify.push(id.clone());
            }
            out.commands
                .push((id.clone(), CoreCommand::InitialRoutesSent));
        }
        out.changed = true;
        out
    }

    /// Whether [`Core::initial_routes_done`] was called.
    pub fn is_initial_routes_done(&self) -> bool {
        self.initial_routes_done
    }

    /// Announces (or changes) one of our routes. Announcing what is announced already
    /// changes nothing and sends nothing.
    pub fn announce(&mut self, a: Announcement) -> CoreOutput {
        let key = a.key();
        let (family, prefix) = key;
        let mut out = CoreOutput::default();
        if self.announced.get(&key) == Some(&a) {
            return out;
        }
        let scope = a.scope();
        let scope_changed = lock(&self.shared).scopes.get(&key) != scope.as_ref();
        if scope_changed && self.announced.contains_key(&key) {
            // The same attributes would not be exported again: re-announce. Withdrawn while
            // the old scope still decides the export (the RIB computes from it what each
            // peer was told).
            let ch = self.rib.withdraw(family, prefix);
            out.merge(self.output(ch));
        }
        if scope_changed {
            let mut s = lock(&self.shared);
            match &scope {
                Some(sc) => s.scopes.insert(key, sc.clone()),
                None => s.scopes.remove(&key),
            };
            self.accept_all
                .store(s.export_learned && s.scopes.is_empty(), Ordering::Relaxed);
        }
        let attrs = a.attributes(self.graceful_shutdown);
        let ch = self.rib.announce(family, prefix, attrs);
        out.merge(self.output(ch));
        self.announced.insert(key, a);
        out.changed = true;
        out
    }

    /// Withdraws one of our routes; a no-op when it is not announced.
    pub fn withdraw(&mut self, prefix: IpNet) -> CoreOutput {
        let key = (family_of(&prefix), prefix.trunc());
        if self.announced.remove(&key).is_none() {
            return CoreOutput::default();
        }
        // The scope goes after the route: it decides what the peers were told of it.
        let ch = self.rib.withdraw(key.0, key.1);
        {
            let mut s = lock(&self.shared);
            s.scopes.remove(&key);
            self.accept_all
                .store(s.export_learned && s.scopes.is_empty(), Ordering::Relaxed);
        }
        let mut out = self.output(ch);
        out.changed = true;
        out
    }

    /// Makes our routes exactly `routes`: withdraws the others, announces the new and the
    /// changed ones; the rest is left alone.
    pub fn set_routes(&mut self, routes: Vec<Announcement>) -> CoreOutput {
        let wanted: HashSet<(AfiSafi, IpNet)> = routes.iter().map(Announcement::key).collect();
        let gone: Vec<IpNet> = self
            .announced
            .keys()
            .filter(|k| !wanted.contains(k))
            .map(|k| k.1)
            .collect();
        let mut out = CoreOutput::default();
        for p in gone {
            out.merge(self.withdraw(p));
        }
        for a in routes {
            out.merge(self.announce(a));
        }
        out
    }

    /// Our announced routes.
    pub fn announced(&self) -> impl Iterator<Item = &Announcement> {
        self.announced.values()
    }

    /// RFC 8326: re-announces our routes with the GRACEFUL_SHUTDOWN community (and
    /// LOCAL_PREF 0 for iBGP), so that peers move away before we stop.
    pub fn graceful_shutdown(&mut self) -> CoreOutput {
        let mut out = CoreOutput::default();
        if self.graceful_shutdown {
            return out;
        }
        self.graceful_shutdown = true;
        let routes: Vec<Announcement> = self.announced.values().cloned().collect();
        for a in routes {
            let ch = self.rib.announce(a.family(), a.prefix, a.attributes(true));
            out.merge(self.output(ch));
        }
        out
    }

    /// Soft reset out: re-sends the peer everything it should have, for every negotiated
    /// family ([`Rib::refresh_out`]), without End-of-Route-Refresh markers (the peer did not
    /// ask). `None` for an unknown peer; nothing while its session is down.
    pub fn soft_reset_out(&mut self, id: &PeerId) -> Option<CoreOutput> {
        let slot = self.peers.get(id)?;
        let mut out = CoreOutput::default();
        let Some(neg) = &slot.negotiated else {
            return Some(out);
        };
        let mut any = false;
        for family in neg.families.iter() {
            any |= self.rib.refresh_out(slot.source, family);
        }
        if any && !slot.hold_output {
            out.notify.push(id.clone());
        }
        Some(out)
    }

    /// Drains what `peer` is owed into `out` (the peer task's write buffer). Nothing while
    /// the peer is held back for our restart, or not up.
    pub fn drain(&mut self, peer: &PeerId, out: &mut BytesMut) -> usize {
        self.drain_limited(peer, out, usize::MAX)
    }

    /// Whether the peer's Adj-RIB-Out has prefixes queued that a drain would take now (the
    /// session is up and our routes are not held back).
    pub fn has_queued(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|slot| {
            !slot.hold_output
                && slot.negotiated.is_some()
                && self
                    .rib
                    .adj_rib_out(slot.source)
                    .is_some_and(|a| a.pending() > 0)
        })
    }

    /// Like [`Core::drain`], for at most `max_prefixes` of what the peer is owed, so that a
    /// writer can take a table in slices as the socket accepts them.
    pub fn drain_limited(
        &mut self,
        peer: &PeerId,
        out: &mut BytesMut,
        max_prefixes: usize,
    ) -> usize {
        let Some(slot) = self.peers.get_mut(peer) else {
            return 0;
        };
        if slot.hold_output || slot.negotiated.is_none() {
            return 0;
        }
        let d = self.rib.drain_limited(slot.source, out, max_prefixes);
        for e in &d.errors {
            tracing::warn!(peer = %peer, error = %e, "routes not encodable, not sent");
        }
        let mut wake = false;
        for family in d.refresh_done {
            // The routes are in the write buffer: the EoRR the command causes follows them.
            if slot.refresh_asked.contains(family) {
                slot.refresh_asked.remove(family);
                self.pending_commands
                    .push((peer.clone(), CoreCommand::RefreshDone(family)));
                wake = true;
            }
        }
        for family in d.end_of_rib {
            self.pending.push(Event::EndOfRibSent {
                peer: peer.clone(),
                family,
            });
            wake = true;
        }
        if wake {
            if let Some(w) = &self.waker {
                w();
            }
        }
        d.messages
    }

    /// The best routes of the Loc-RIB.
    pub fn routes(&self) -> Vec<(AfiSafi, IpNet, Route)> {
        let mut v = Vec::new();
        for f in AfiSafi::KNOWN {
            for (prefix, b) in self.rib.loc_rib().iter(f) {
                v.push((f, prefix, self.route(&b)));
            }
        }
        v
    }

    fn route(&self, b: &bgp_rib::BestRoute) -> Route {
        Route {
            from: self.by_source.get(&b.source).cloned(),
            attributes: b.attrs.clone(),
            stale: b.stale != Staleness::Fresh,
        }
    }

    /// Route counts of a peer per negotiated (or, when down, held) family, and its
    /// graceful-restart state.
    pub fn peer_counts(&self, id: &PeerId) -> (Vec<FamilyCounts>, GrState) {
        let Some(slot) = self.peers.get(id) else {
            return (Vec::new(), GrState::None);
        };
        let adj_in = self.rib.adj_rib_in(slot.source);
        let adj_out = self.rib.adj_rib_out(slot.source);
        let families: Vec<AfiSafi> = match &slot.negotiated {
            Some(n) => n.families.iter().collect(),
            None => AfiSafi::KNOWN
                .into_iter()
                .filter(|f| adj_in.is_some_and(|a| a.len(*f) > 0))
                .collect(),
        };
        let counts = families
            .into_iter()
            .map(|family| {
                let received = adj_in.map_or(0, |a| a.len(family)) as u64;
                let stale = adj_in.map_or(0, |a| {
                    a.iter(family)
                        .filter(|(_, e)| e.stale != Staleness::Fresh)
                        .count()
                }) as u64;
                FamilyCounts {
                    family,
                    received,
                    // The import policy accepts everything; rejected routes are not held.
                    accepted: received,
                    advertised: adj_out.map_or(0, |a| a.told_count(family)) as u64,
                    stale,
                }
            })
            .collect();
        let gr = if slot.hold_output {
            GrState::LocalRestarting
        } else if !slot.stale.is_empty() {
            GrState::PeerRestarting
        } else {
            GrState::None
        };
        (counts, gr)
    }

    /// Turns RIB changes into events and outbox notifications.
    fn output(&mut self, ch: RibChanges) -> CoreOutput {
        let mut out = CoreOutput::default();
        if ch.best.is_empty() {
            return out;
        }
        out.changed = true;
        for (id, slot) in &self.peers {
            // Only the peers whose Adj-RIB-Out now holds something to send.
            let pending = self
                .rib
                .adj_rib_out(slot.source)
                .is_some_and(|a| a.pending() > 0);
            if pending && slot.negotiated.is_some() && !slot.hold_output {
                out.notify.push(id.clone());
            }
        }
        if self.settings.loc_rib_events {
            for c in &ch.best {
                let only_stale = match (&c.old, &c.new) {
                    (Some(o), Some(n)) => {
                        o.source == n.source
                            && o.path_id == n.path_id
                            && Arc::ptr_eq(&o.attrs, &n.attrs)
                    }
                    _ => false,
                };
                if only_stale {
                    continue;
                }
                out.events.push(Event::RouteChanged {
                    family: c.family,
                    prefix: c.prefix,
                    route: c.new.as_ref().map(|b| self.route(b)),
                });
            }
        }
        out
    }
}

/// A peer's [`Outbox`] backed by the core: drains that peer's Adj-RIB-Out.
pub struct CoreOutbox {
    core: Arc<Mutex<Core>>,
    peer: PeerId,
}

impl CoreOutbox {
    /// The outbox of `peer`.
    pub fn new(core: Arc<Mutex<Core>>, peer: PeerId) -> Self {
        CoreOutbox { core, peer }
    }
}

impl Outbox for CoreOutbox {
    fn drain(&mut self, _ctx: &Context, out: &mut BytesMut, budget: usize) -> usize {
        // Slices of the Adj-RIB-Out until the budget is used: what the peer has not taken
        // stays one entry per prefix there, never a queue of messages here.
        const SLICE: usize = 1024;
        let start = out.len();
        let mut messages = 0;
        let mut core = lock(&self.core);
        while out.len() - start < budget {
            let n = core.drain_limited(&self.peer, out, SLICE);
            messages += n;
            // A slice can settle without a message (prefixes back to what the peer has):
            // go on while something is queued.
            if n == 0 && !core.has_queued(&self.peer) {
                break;
            }
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_fsm::{Session, SessionConfig, Time};
    use bgp_wire::{Message, Update};

    fn settings() -> CoreSettings {
        CoreSettings {
            local_asn: Asn(65001),
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            export_learned: false,
            loc_rib_events: true,
            limits: ImportLimits::default(),
        }
    }

    fn peer(n: u8) -> PeerId {
        PeerId::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    fn negotiated(asn: u32, id: u8) -> Negotiated {
        // Two sessions' OPENs give a realistic negotiation.
        let ours = Session::new(SessionConfig {
            local_asn: Asn(65001),
            ..SessionConfig::default()
        })
        .build_open();
        let theirs = Session::new(SessionConfig {
            local_asn: Asn(asn),
            bgp_id: Ipv4Addr::new(192, 0, 2, id),
            ..SessionConfig::default()
        })
        .build_open();
        Negotiated::new(&ours, &theirs, None)
    }

    fn ev(p: &PeerId, action: Action) -> PeerEvent {
        PeerEvent {
            peer: p.clone(),
            at: Time::ZERO,
            action,
        }
    }

    fn core_with(n: u8, restarting: bool) -> (Core, PeerId) {
        let mut c = Core::new(settings());
        let p = peer(n);
        let _ = c.add_peer(
            p.clone(),
            CorePeer {
                asn: Asn(65002),
                local_v4: Some(Ipv4Addr::new(10, 0, 0, 100)),
                local_v6: None,
                restarting,
                prefix_limits: Vec::new(),
            },
        );
        (c, p)
    }

    fn messages(c: &mut Core, p: &PeerId) -> Vec<Message> {
        let mut buf = BytesMut::new();
        let n = c.drain(p, &mut buf);
        let ctx = c.negotiated(p).map(|n| n.context()).unwrap_or_default();
        let mut v = Vec::new();
        while let Some((h, m)) = bgp_wire::split_message(&mut buf, 65535).unwrap() {
            v.push(Message::decode_body(h, m.slice(19..), &ctx).unwrap());
        }
        assert_eq!(v.len(), n);
        v
    }

    fn announce(s: &str) -> Announcement {
        Announcement::new(s.parse().unwrap())
    }

    #[test]
    fn announce_twice_changes_nothing_the_second_time() {
        let (mut c, p) = core_with(2, false);
        let out = c.handle(ev(&p, Action::Established(Box::new(negotiated(65002, 2)))));
        assert!(matches!(out.events[0], Event::PeerUp { .. }));
        // Empty table: End-of-RIB only, for IPv4 and IPv6 unicast.
        let m = messages(&mut c, &p);
        assert_eq!(m.len(), 2);
        assert!(
            m.iter()
                .all(|m| matches!(m, Message::Update(u) if u.end_of_rib().is_some()))
        );
        let out = c.announce(announce("198.51.100.0/24"));
        assert!(out.changed && out.notify == vec![p.clone()]);
        assert_eq!(messages(&mut c, &p).len(), 1);
        let out = c.announce(announce("198.51.100.0/24"));
        assert!(!out.changed && out.events.is_empty() && out.notify.is_empty());
        assert!(messages(&mut c, &p).is_empty());
        assert!(!c.withdraw("203.0.113.0/24".parse().unwrap()).changed);
    }

    /// A slice of the outbox whose prefixes all settle without a message (each went back to
    /// what the peer has) must not end the drain while more is queued behind it.
    #[test]
    fn a_drain_goes_past_a_slice_that_sends_nothing() {
        let (mut c, p) = core_with(2, false);
        let _ = c.handle(ev(&p, Action::Established(Box::new(negotiated(65002, 2)))));
        let _ = messages(&mut c, &p);
        let many: Vec<Announcement> = (0..1500u32)
            .map(|i| announce(&format!("10.{}.{}.0/24", i / 256, i % 256)))
            .collect();
        let _ = c.set_routes(many.clone());
        assert!(!messages(&mut c, &p).is_empty());
        // Gone and back, unchanged: owed, but nothing to send for them.
        let _ = c.set_routes(Vec::new());
        let _ = c.set_routes(many.clone());
        let mut last = many;
        last.push(announce("198.51.100.0/24"));
        let _ = c.set_routes(last);
        let core = Arc::new(Mutex::new(c));
        let mut outbox = CoreOutbox::new(core.clone(), p.clone());
        let mut buf = BytesMut::new();
        let n = outbox.drain(&Context::default(), &mut buf, 1 << 20);
        assert_eq!(n, 1, "the new prefix behind 1,500 unchanged ones");
        assert!(!lock(&core).has_queued(&p));
    }

    #[test]
    fn set_routes_withdraws_only_what_is_gone() {
        let (mut c, p) = core_with(2, false);
        let _ = c.handle(ev(&p, Action::Established(Box::new(negotiated(65002, 2)))));
        let _ = messages(&mut c, &p);
        let _ = c.set_routes(vec![announce("10.1.0.0/16"), announce("10.2.0.0/16")]);
        let _ = messages(&mut c, &p);
        let out = c.set_routes(vec![announce("10.2.0.0/16"), announce("10.3.0.0/16")]);
        let changed: Vec<String> = out
            .events
            .iter()
            .filter_map(|e| match e {
                Event::RouteChanged { prefix, route, .. } => {
                    Some(format!("{prefix} {}", route.is_some()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(changed, ["10.1.0.0/16 false", "10.3.0.0/16 true"]);
        let m = messages(&mut c, &p);
        let (mut wd, mut ann) = (0, 0);
        for m in m {
            if let Message::Update(u) = m {
                wd += u.withdrawn_all().count();
                ann += u.announced().count();
            }
        }
        assert_eq!((wd, ann), (1, 1));
    }

    #[test]
    fn scoped_announcement_goes_only_to_named_peers_with_prepends() {
        let mut c = Core::new(settings());
        for n in [2, 3] {
            let _ = c.add_peer(
                peer(n),
                CorePeer {
                    asn: Asn(65000 + u32::from(n)),
                    local_v4: Some(Ipv4Addr::new(10, 0, 0, 100)),
                    local_v6: None,
                    restarting: false,
                    prefix_limits: Vec::new(),
                },
            );
            let neg = negotiated(65000 + u32::from(n), n);
            let _ = c.handle(ev(&peer(n), Action::Established(Box::new(neg))));
            let _ = messages(&mut c, &peer(n));
        }
        let mut a = announce("10.9.0.0/16");
        a.peers = vec![peer(3).addr];
        a.as_path_prepend = 2;
        let _ = c.announce(a);
        assert!(messages(&mut c, &peer(2)).is_empty());
        let m = messages(&mut c, &peer(3));
        let Message::Update(u) = &m[0] else { panic!() };
        let path: Vec<u32> = u
            .attributes
            .as_path
            .as_ref()
            .unwrap()
            .asns()
            .map(|a| a.0)
            .collect();
        assert_eq!(path, [65001, 65001, 65001]);
    }

    fn update(prefixes: &[&str]) -> Update {
        Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::from_sequence([Asn(65002)])),
                next_hop: Some(Ipv4Addr::new(10, 0, 0, 2)),
                ..PathAttributes::default()
            },
            nlri: bgp_wire::Nlris::new(
                AfiSafi::IPV4_UNICAST,
                false,
                prefixes.iter().map(|p| Nlri::new(p.parse().unwrap())),
            )
            .unwrap(),
            ..Update::default()
        }
    }

    #[test]
    fn graceful_restart_keeps_stale_and_purges_what_was_not_sent_again() {
        let (mut c, p) = core_with(2, false);
        let _ = c.handle(ev(&p, Action::Established(Box::new(negotiated(65002, 2)))));
        let out = c.handle(ev(
            &p,
            Action::UpdateReceived(update(&["10.1.0.0/16", "10.2.0.0/16"])),
        ));
        assert_eq!(out.events.len(), 2);
        let v4 = AfiSafi::IPV4_UNICAST;
        let out = c.handle(ev(&p, Action::RetainStale(v4)));
        assert_eq!(
            out.events,
            vec![Event::StaleKept {
                peer: p.clone(),
                family: v4,
                routes: 2
            }]
        );
        let out = c.handle(ev(&p, Action::SessionDown(DownReason::TcpError)));
        assert!(matches!(
            out.events[..],
            [Event::PeerDown {
                routes_kept: true,
                ..
            }]
        ));
        assert_eq!(c.routes().len(), 2);
        assert!(c.routes().iter().all(|r| r.2.stale));
        assert_eq!(c.peer_counts(&p).1, GrState::PeerRestarting);
        let _ = c.handle(ev(&p, Action::Established(Box::new(negotiated(65002, 2)))));
        let out = c.handle(ev(&p, Action::UpdateReceived(update(&["10.2.0.0/16"]))));
        // Stale to fresh with the same attributes: not a route event.
        assert!(out.events.is_empty(), "{:?}", out.events);
        let _ = c.handle(ev(&p, Action::EndOfRib(v4)));
        let out = c.handle(ev(&p, Action::PurgeStale(v4)));
        assert!(out.events.contains(&Event::StalePurged {
            peer: p.clone(),
            family: v4,
            routes: 1
        }));
        let routes = c.routes();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].1.to_string(), "10.2.0.0/16");
        assert_eq!(c.peer_counts(&p).1, GrState::None);
    }

    #[test]
    fn restarting_speaker_holds_everything_until_initial_routes_are_done() {
        let (mut c, p) = core_with(2, true);
        let _ = c.handle(ev(&p, Action::Established(Box::new(negotiated(65002, 2)))));
        let _ = c.announce(announce("10.1.0.0/16"));
        assert!(messages(&mut c, &p).is_empty());
        assert_eq!(c.peer_counts(&p).1, GrState::LocalRestarting);
        let out = c.initial_routes_done();
        assert_eq!(out.notify, vec![p.clone()]);
        assert_eq!(
            out.commands,
            vec![(p.clone(), CoreCommand::InitialRoutesSent)]
        );
        let m = messages(&mut c, &p);
        assert_eq!(m.len(), 3);
        assert!(matches!(&m[0], Message::Update(u) if u.announced().count() == 1));
        assert!(matches!(&m[1], Message::Update(u) if u.end_of_rib().is_some()));
        assert_eq!(
            c.take_events()[0],
            Event::EndOfRibSent {
                peer: p.clone(),
                family: AfiSafi::IPV4_UNICAST
            }
        );
    }

    #[test]
    fn a_route_refresh_resends_the_family_then_says_refresh_done() {
        let (mut c, p) = core_with(2, false);
        let _ = c.handle(ev(&p, Action::Established(Box::new(negotiated(65002, 2)))));
        let _ = c.set_routes(vec![announce("10.1.0.0/16"), announce("10.2.0.0/16")]);
        assert_eq!(messages(&mut c, &p).len(), 3, "routes, two End-of-RIBs");
        let _ = c.take_events();
        let v4 = AfiSafi::IPV4_UNICAST;
        let out = c.handle(ev(&p, Action::RouteRefreshRequested(v4)));
        assert_eq!(out.notify, vec![p.clone()]);
        assert!(out.commands.is_empty(), "RefreshDone waits for the routes");
        assert!(c.take_commands().is_empty());
        let m = messages(&mut c, &p);
        assert_eq!(m.len(), 1);
        assert!(matches!(&m[0], Message::Update(u) if u.announced().count() == 2));
        assert_eq!(
            c.take_commands(),
            vec![(p.clone(), CoreCommand::RefreshDone(v4))]
        );
        assert!(c.take_events().is_empty(), "no End-of-RIB again");
        // Soft reset out: the same routes again, and no RefreshDone (the peer did not ask).
        let out = c.soft_reset_out(&p).unwrap();
        assert_eq!(out.notify, vec![p.clone()]);
        let m = messages(&mut c, &p);
        assert_eq!(m.len(), 1);
        assert!(c.take_commands().is_empty());
        assert!(c.soft_reset_out(&peer(9)).is_none());
        // A refresh of a family with nothing in it is done at once, at the next drain.
        let _ = c.handle(ev(&p, Action::RouteRefreshRequested(AfiSafi::IPV6_UNICAST)));
        assert!(messages(&mut c, &p).is_empty());
        assert_eq!(
            c.take_commands(),
            vec![(p.clone(), CoreCommand::RefreshDone(AfiSafi::IPV6_UNICAST))]
        );
    }

    #[test]
    fn learned_routes_are_exported_only_with_export_learned() {
        for export_learned in [false, true] {
            let mut c = Core::new(CoreSettings {
                export_learned,
                ..settings()
            });
            for n in [2, 3] {
                let _ = c.add_peer(
                    peer(n),
                    CorePeer {
                        asn: Asn(65000 + u32::from(n)),
                        local_v4: None,
                        local_v6: None,
                        restarting: false,
                        prefix_limits: Vec::new(),
                    },
                );
                let neg = negotiated(65000 + u32::from(n), n);
                let _ = c.handle(ev(&peer(n), Action::Established(Box::new(neg))));
                let _ = messages(&mut c, &peer(n));
            }
            let _ = c.handle(ev(
                &peer(2),
                Action::UpdateReceived(update(&["10.1.0.0/16"])),
            ));
            assert_eq!(
                messages(&mut c, &peer(3)).len(),
                usize::from(export_learned)
            );
            // Removing the peer withdraws what it sent from the others.
            let out = c.remove_peer(&peer(2));
            assert!(out.changed);
            assert_eq!(
                messages(&mut c, &peer(3)).len(),
                usize::from(export_learned)
            );
            assert!(c.routes().is_empty());
        }
    }

    #[test]
    fn import_limits_count_as_numbers_and_attributes() {
        use bgp_wire::attribute::{PathAttributes, RawAttribute};
        let l = ImportLimits {
            max_as_path_len: 3,
            max_attributes: 4,
        };
        let mut a = PathAttributes::new();
        a.origin = Some(Origin::Igp);
        a.as_path = Some(AsPath::from_sequence([Asn(1), Asn(2), Asn(3)]));
        a.next_hop = Some(Ipv4Addr::new(192, 0, 2, 1));
        assert!(l.allows(&a));
        a.as_path = Some(AsPath::from_sequence([Asn(1), Asn(2), Asn(3), Asn(4)]));
        assert!(!l.allows(&a), "four AS numbers");
        a.as_path = Some(AsPath::from_sequence([Asn(1)]));
        let raw = |t| RawAttribute {
            flags: 0xc0,
            type_code: t,
            value: bytes::Bytes::new(),
        };
        a.unknown = vec![raw(200)];
        assert!(l.allows(&a), "four attributes");
        a.unknown.push(raw(201));
        assert!(!l.allows(&a), "five attributes");
    }
}
