//! The RIB of a speaker: every peer's Adj-RIB-In and Adj-RIB-Out, the local origin table and
//! the Loc-RIB, wired together. Runtime-free: each call does its work and returns what
//! changed (STYLE 11).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp_wire::{AfiSafi, AfiSafiSet, Asn, Context, Nlri, Update};
use bytes::BytesMut;
use ipnet::IpNet;

use crate::adj_in::{AdjRibIn, InChange, Staleness};
use crate::adj_out::{AdjRibOut, Drained};
use crate::best::{SourceId, SourceInfo};
use crate::export::{From, export, otc_ingress};
use crate::intern::{AttrStore, Attrs, RouteAttributes};
use crate::loc::{BestChange, LocRib};
use crate::policy::{AcceptAll, ExportPolicy, ImportPolicy, PolicyAction, RouteSink};
use crate::table::{FastMap, PerFamily};

/// This speaker's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RibConfig {
    /// The local AS.
    pub local_asn: Asn,
    /// The local BGP identifier.
    pub router_id: Ipv4Addr,
    /// Act as a route reflector with this CLUSTER_ID (RFC 4456 §7); `None`: no reflection.
    pub cluster_id: Option<Ipv4Addr>,
}

/// Our role on a session (RFC 9234 §3.1), which decides OTC handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// We are the peer's provider (the peer is our customer).
    Provider,
    /// We are the peer's customer.
    Customer,
    /// Lateral peers.
    Peer,
    /// We are a route server (the peer is our RS client).
    RouteServer,
    /// We are a route server client.
    RouteServerClient,
}

/// One peer as the RIB sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's AS (equal to ours: iBGP).
    pub asn: Asn,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// The peer's address.
    pub address: IpAddr,
    /// Our IPv4 address on the session (next hop self).
    pub local_v4: Option<Ipv4Addr>,
    /// Our IPv6 address on the session (next hop self).
    pub local_v6: Option<Ipv6Addr>,
    /// The peer is a route-reflector client (RFC 4456).
    pub rr_client: bool,
    /// Our RFC 9234 role on the session, if roles are in use.
    pub local_role: Option<Role>,
    /// Next hop self: `None` means yes for eBGP, no for iBGP.
    pub next_hop_self: Option<bool>,
    /// Extra prepends of our AS towards this (eBGP) peer.
    pub prepend: usize,
    /// Keep the routes this peer sends; `false` for announce-only embedders, who then pay
    /// no memory for them.
    pub keep_adj_rib_in: bool,
    /// Max-prefix limit per family.
    pub max_prefix: Option<usize>,
    /// Advertise routes back to the peer they came from.
    pub advertise_to_source: bool,
}

impl PeerConfig {
    /// A peer with the defaults: keep its routes, no limit, no roles.
    pub fn new(asn: Asn, router_id: Ipv4Addr, address: IpAddr) -> Self {
        PeerConfig {
            asn,
            router_id,
            address,
            local_v4: None,
            local_v6: None,
            rr_client: false,
            local_role: None,
            next_hop_self: None,
            prepend: 0,
            keep_adj_rib_in: true,
            max_prefix: None,
            advertise_to_source: false,
        }
    }
}

struct PeerState {
    config: PeerConfig,
    info: SourceInfo,
    adj_in: AdjRibIn,
    adj_out: AdjRibOut,
    import: Box<dyn ImportPolicy>,
    export: Box<dyn ExportPolicy>,
    /// The session's context and families, while it is up.
    session: Option<(Context, AfiSafiSet)>,
}

/// What one RIB operation changed.
#[derive(Debug, Default)]
#[must_use]
pub struct RibChanges {
    /// Changes of the peer's Adj-RIB-In.
    pub adj_in: Vec<InChange>,
    /// Real changes of best routes.
    pub best: Vec<BestChange>,
    /// The families whose max-prefix limit the peer exceeded.
    pub max_prefix_exceeded: Vec<AfiSafi>,
    /// The family whose End-of-RIB marker this was, if it was one.
    pub end_of_rib: Option<AfiSafi>,
}

impl RibChanges {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.adj_in.is_empty()
            && self.best.is_empty()
            && self.max_prefix_exceeded.is_empty()
            && self.end_of_rib.is_none()
    }
}

/// The RIB: Adj-RIBs-In, Loc-RIB, local origin table, Adj-RIBs-Out.
pub struct Rib {
    config: RibConfig,
    store: AttrStore,
    loc: LocRib,
    local: PerFamily<FastMap<IpNet, Attrs>>,
    local_info: SourceInfo,
    /// Indexed by `SourceId`; slot 0 (local) is always `None`.
    peers: Vec<Option<PeerState>>,
    sink: Box<dyn RouteSink>,
}

impl std::fmt::Debug for Rib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rib")
            .field("config", &self.config)
            .field("prefixes", &self.loc.total())
            .field("attribute_sets", &self.store.len())
            .finish()
    }
}

impl Rib {
    /// An empty RIB with the default sink (which ignores changes).
    pub fn new(config: RibConfig) -> Self {
        Self::with_sink(config, Box::new(AcceptAll))
    }

    /// An empty RIB that reports best-route changes to `sink`.
    pub fn with_sink(config: RibConfig, sink: Box<dyn RouteSink>) -> Self {
        Rib {
            config,
            store: AttrStore::new(),
            loc: LocRib::new(),
            local: PerFamily::default(),
            local_info: SourceInfo::local(config.local_asn, config.router_id),
            peers: vec![None],
            sink,
        }
    }

    /// Replaces the route sink.
    pub fn set_sink(&mut self, sink: Box<dyn RouteSink>) {
        self.sink = sink;
    }

    /// The configuration.
    pub fn config(&self) -> &RibConfig {
        &self.config
    }

    /// Adds a peer with the default policies.
    pub fn add_peer(&mut self, config: PeerConfig) -> SourceId {
        self.add_peer_with(config, Box::new(AcceptAll), Box::new(AcceptAll))
    }

    /// Adds a peer with its import and export policies.
    pub fn add_peer_with(
        &mut self,
        config: PeerConfig,
        import: Box<dyn ImportPolicy>,
        export: Box<dyn ExportPolicy>,
    ) -> SourceId {
        let mut adj_in = AdjRibIn::new();
        for f in AfiSafi::KNOWN {
            adj_in.set_max_prefix(f, config.max_prefix);
        }
        let info = SourceInfo {
            local: false,
            ibgp: config.asn == self.config.local_asn,
            asn: config.asn,
            router_id: config.router_id,
            address: config.address,
        };
        let id = SourceId(self.peers.len() as u32);
        self.peers.push(Some(PeerState {
            config,
            info,
            adj_in,
            adj_out: AdjRibOut::new(),
            import,
            export,
            session: None,
        }));
        id
    }

    /// Removes a peer and every route it sent.
    pub fn remove_peer(&mut self, peer: SourceId) -> RibChanges {
        let mut ch = self.peer_down(peer, false);
        if let Some(slot) = self.peers.get_mut(peer.0 as usize) {
            if let Some(mut p) = slot.take() {
                p.adj_out.clear(&mut self.store);
            }
        }
        self.store.sweep();
        ch.adj_in.shrink_to_fit();
        ch
    }

    /// The session with the peer is established for these families: its Adj-RIB-Out is
    /// filled with the current best routes and End-of-RIB follows them (RFC 4724 §2).
    pub fn peer_up(&mut self, peer: SourceId, ctx: Context, families: AfiSafiSet) {
        self.store.sweep();
        let Some(Some(p)) = self.peers.get_mut(peer.0 as usize) else {
            return;
        };
        p.session = Some((ctx, families));
        p.adj_out.expect_end_of_rib(families);
        let routes: Vec<(AfiSafi, IpNet, crate::loc::BestRoute)> = families
            .iter()
            .flat_map(|f| self.loc.iter(f).map(move |(pfx, b)| (f, pfx, b)))
            .collect();
        for (family, prefix, best) in routes {
            let change = BestChange {
                family,
                prefix,
                old: None,
                new: Some(best),
            };
            Self::export_to(
                &self.config,
                &mut self.store,
                &self.local_info,
                &mut self.peers,
                peer,
                &change,
            );
        }
    }

    /// The session with the peer went down. With `retain_stale` (graceful restart, RFC 4724
    /// §4.2) its routes stay, marked stale; otherwise they are withdrawn.
    pub fn peer_down(&mut self, peer: SourceId, retain_stale: bool) -> RibChanges {
        self.store.sweep();
        let mut ch = RibChanges::default();
        let Some(Some(p)) = self.peers.get_mut(peer.0 as usize) else {
            return ch;
        };
        p.session = None;
        p.adj_out.clear(&mut self.store);
        let changes = if retain_stale {
            AfiSafi::KNOWN
                .into_iter()
                .flat_map(|f| p.adj_in.mark_stale(f))
                .collect()
        } else {
            p.adj_in.clear(&mut self.store)
        };
        self.apply_changes(peer, changes, &mut ch);
        ch
    }

    /// Marks the peer's routes of a family stale (RFC 4724 §4.2).
    pub fn mark_stale(&mut self, peer: SourceId, family: AfiSafi) -> RibChanges {
        self.with_adj_in(peer, |a, _| a.mark_stale(family))
    }

    /// Moves the peer's stale routes of a family to long-lived stale (RFC 9494).
    pub fn mark_llgr_stale(&mut self, peer: SourceId, family: AfiSafi) -> RibChanges {
        self.with_adj_in(peer, |a, s| a.mark_llgr_stale(s, family))
    }

    /// Removes the peer's routes of a family that are still stale.
    pub fn purge_stale(&mut self, peer: SourceId, family: AfiSafi) -> RibChanges {
        self.with_adj_in(peer, |a, s| a.purge_stale(s, family))
    }

    fn with_adj_in(
        &mut self,
        peer: SourceId,
        f: impl FnOnce(&mut AdjRibIn, &mut AttrStore) -> Vec<InChange>,
    ) -> RibChanges {
        self.store.sweep();
        let mut ch = RibChanges::default();
        let Some(Some(p)) = self.peers.get_mut(peer.0 as usize) else {
            return ch;
        };
        let changes = f(&mut p.adj_in, &mut self.store);
        self.apply_changes(peer, changes, &mut ch);
        ch
    }

    /// Applies an UPDATE from a peer: withdrawals, then announcements after RFC 9234
    /// ingress checks and the import policy. A treat-as-withdraw UPDATE (RFC 7606)
    /// withdraws every prefix it announces.
    pub fn apply_update(&mut self, peer: SourceId, update: &Update) -> RibChanges {
        self.store.sweep();
        let mut ch = RibChanges {
            end_of_rib: update.end_of_rib(),
            ..RibChanges::default()
        };
        let Some(Some(p)) = self.peers.get_mut(peer.0 as usize) else {
            return ch;
        };
        if !p.config.keep_adj_rib_in {
            return ch;
        }
        let mut changes = Vec::new();
        for (family, nlri) in update.withdrawn_all() {
            changes.extend(p.adj_in.withdraw(&mut self.store, family, &nlri));
        }
        let mut withdraw_all = update.is_treat_as_withdraw();
        let mut attrs = update.attributes.clone();
        if !withdraw_all {
            match otc_ingress(p.config.local_role, p.config.asn, attrs.otc) {
                Err(()) => withdraw_all = true,
                Ok(Some(otc)) => attrs.otc = Some(otc),
                Ok(None) => {}
            }
        }
        let mut shared: Option<(AfiSafi, Attrs)> = None;
        for (family, nlri) in update.announced() {
            if withdraw_all {
                changes.extend(p.adj_in.withdraw(&mut self.store, family, &nlri));
                continue;
            }
            let base = match &shared {
                Some((f, a)) if *f == family => a.clone(),
                _ => {
                    let mp_next_hop = match &update.mp_reach {
                        Some(m) if m.family == family => Some(m.next_hop.clone()),
                        _ => None,
                    };
                    let mut a = attrs.clone();
                    if mp_next_hop.is_some() {
                        a.next_hop = None;
                    }
                    let interned = self.store.intern(RouteAttributes {
                        attrs: a,
                        mp_next_hop,
                    });
                    if let Some((_, old)) = shared.replace((family, interned.clone())) {
                        self.store.release(old);
                    }
                    interned
                }
            };
            let chosen = match p.import.import(&p.config, family, &nlri, &base) {
                PolicyAction::Accept => Some(base),
                PolicyAction::Reject => {
                    self.store.release(base);
                    None
                }
                PolicyAction::Modify(m) => {
                    self.store.release(base);
                    Some(self.store.intern(m))
                }
            };
            changes.extend(match chosen {
                Some(a) => p.adj_in.announce(&mut self.store, family, nlri, a),
                None => p.adj_in.withdraw(&mut self.store, family, &nlri),
            });
        }
        if let Some((_, a)) = shared {
            self.store.release(a);
        }
        for f in AfiSafi::KNOWN {
            if p.adj_in.exceeds_max_prefix(f) {
                ch.max_prefix_exceeded.push(f);
            }
        }
        self.apply_changes(peer, changes, &mut ch);
        ch
    }

    /// Announces one of the embedder's own routes. Announcing what is already announced
    /// changes nothing.
    pub fn announce(
        &mut self,
        family: AfiSafi,
        prefix: IpNet,
        attrs: RouteAttributes,
    ) -> RibChanges {
        self.store.sweep();
        let mut ch = RibChanges::default();
        let prefix = prefix.trunc();
        let a = self.store.intern(attrs);
        let Some(t) = self.local.get_mut(family) else {
            self.store.release(a);
            return ch;
        };
        if let Some(old) = t.get(&prefix) {
            if std::sync::Arc::ptr_eq(old, &a) {
                self.store.release(a);
                return ch;
            }
        }
        if let Some(old) = t.insert(prefix, a.clone()) {
            self.store.release(old);
        }
        self.loc_update(
            SourceId::LOCAL,
            family,
            prefix,
            0,
            Some((a, Staleness::Fresh)),
            &mut ch,
        );
        ch
    }

    /// Withdraws one of the embedder's own routes; a no-op if it was not announced.
    pub fn withdraw(&mut self, family: AfiSafi, prefix: IpNet) -> RibChanges {
        self.store.sweep();
        let mut ch = RibChanges::default();
        let prefix = prefix.trunc();
        let Some(old) = self.local.get_mut(family).and_then(|t| t.remove(&prefix)) else {
            return ch;
        };
        self.store.release(old);
        self.loc_update(SourceId::LOCAL, family, prefix, 0, None, &mut ch);
        ch
    }

    /// Appends the UPDATEs the peer is owed (see [`AdjRibOut::drain`]).
    pub fn drain(&mut self, peer: SourceId, out: &mut BytesMut) -> Drained {
        self.store.sweep();
        let Some(Some(p)) = self.peers.get_mut(peer.0 as usize) else {
            return Drained::default();
        };
        let Some((ctx, _)) = &p.session else {
            return Drained::default();
        };
        p.adj_out.drain(&mut self.store, ctx, out)
    }

    /// Frees every attribute set no route uses any more, by a full scan of the store. Each
    /// operation already frees, incrementally, what the previous ones released; this is for
    /// audits and tests.
    pub fn sweep(&mut self) {
        self.store.sweep_all();
    }

    /// The number of distinct interned attribute sets.
    pub fn attribute_sets(&self) -> usize {
        self.store.len()
    }

    /// The Loc-RIB.
    pub fn loc_rib(&self) -> &LocRib {
        &self.loc
    }

    /// A peer's Adj-RIB-In.
    pub fn adj_rib_in(&self, peer: SourceId) -> Option<&AdjRibIn> {
        Some(&self.peers.get(peer.0 as usize)?.as_ref()?.adj_in)
    }

    /// A peer's Adj-RIB-Out.
    pub fn adj_rib_out(&self, peer: SourceId) -> Option<&AdjRibOut> {
        Some(&self.peers.get(peer.0 as usize)?.as_ref()?.adj_out)
    }

    /// The embedder's own routes of a family.
    pub fn local_routes(&self, family: AfiSafi) -> impl Iterator<Item = (&IpNet, &Attrs)> {
        self.local.get(family).into_iter().flat_map(|t| t.iter())
    }

    fn apply_changes(&mut self, peer: SourceId, changes: Vec<InChange>, ch: &mut RibChanges) {
        for c in &changes {
            let route = c.route.as_ref().map(|e| (e.attrs.clone(), e.stale));
            let path_id = c.nlri.path_id.unwrap_or(0);
            self.loc_update(peer, c.family, c.nlri.prefix, path_id, route, ch);
        }
        ch.adj_in = changes;
    }

    fn loc_update(
        &mut self,
        source: SourceId,
        family: AfiSafi,
        prefix: IpNet,
        path_id: u32,
        route: Option<(Attrs, Staleness)>,
        ch: &mut RibChanges,
    ) {
        let peers = &self.peers;
        let local_info = &self.local_info;
        let lookup = |s: SourceId| -> Option<&SourceInfo> {
            if s == SourceId::LOCAL {
                Some(local_info)
            } else {
                peers.get(s.0 as usize)?.as_ref().map(|p| &p.info)
            }
        };
        let Some(change) = self.loc.update(
            &mut self.store,
            lookup,
            family,
            prefix,
            source,
            path_id,
            route,
        ) else {
            return;
        };
        self.sink.best_changed(&change);
        for id in 1..self.peers.len() {
            Self::export_to(
                &self.config,
                &mut self.store,
                &self.local_info,
                &mut self.peers,
                SourceId(id as u32),
                &change,
            );
        }
        ch.best.push(change);
    }

    /// Runs the export rules and policy of one peer for a best-route change and records the
    /// result in its Adj-RIB-Out.
    fn export_to(
        config: &RibConfig,
        store: &mut AttrStore,
        local_info: &SourceInfo,
        peers: &mut [Option<PeerState>],
        to: SourceId,
        change: &BestChange,
    ) {
        let from = change.new.as_ref().and_then(|b| {
            if b.source == SourceId::LOCAL {
                Some((*local_info, false, b))
            } else {
                let p = peers.get(b.source.0 as usize)?.as_ref()?;
                Some((p.info, p.config.rr_client, b))
            }
        });
        let Some(Some(p)) = peers.get_mut(to.0 as usize) else {
            return;
        };
        let Some((_, families)) = &p.session else {
            return;
        };
        if !families.contains(change.family) {
            return;
        }
        let nlri = Nlri::new(change.prefix);
        let should = from.and_then(|(info, rr_client, best)| {
            let from = From {
                info: &info,
                same_peer: best.source == to,
                rr_client,
            };
            let attrs = export(config, &p.config, from, change.family, &best.attrs)?;
            match p.export.export(&p.config, change.family, &nlri, &attrs) {
                PolicyAction::Accept => Some(attrs),
                PolicyAction::Reject => None,
                PolicyAction::Modify(m) => Some(m),
            }
        });
        let should = should.map(|a| store.intern(a));
        p.adj_out.set(store, change.family, nlri, should);
    }
}
