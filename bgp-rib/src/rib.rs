//! The RIB of a speaker: every peer's Adj-RIB-In and Adj-RIB-Out, the local origin table and
//! the Loc-RIB, wired together. Runtime-free: each call does its work and returns what
//! changed (STYLE 11).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bgp_wire::{AfiSafi, AfiSafiSet, Asn, Community, Context, Message, Nlri, Update};
use bgp_wire::{pack_announce, pack_withdraw};
use bytes::{Bytes, BytesMut};
use ipnet::IpNet;

use crate::adj_in::{AdjEntry, AdjRibIn, InChange, Staleness};
use crate::adj_out::{AdjRibOut, Drained, HOLDS, REFRESH, RESEND};
use crate::best::{Candidate, SourceId, SourceInfo};
use crate::export::{From, export, otc_ingress};
use crate::image::{self, ImageError, ImageStats};
use crate::intern::{AttrStore, Attrs, RouteAttributes};
use crate::loc::{BestChange, BestRoute, InLog, LocRib, PathOp};
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
    /// The session negotiated long-lived graceful restart (RFC 9494): long-lived stale
    /// routes may be advertised to the peer, with LLGR_STALE attached.
    pub llgr: bool,
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
            llgr: false,
        }
    }
}

struct PeerState {
    config: PeerConfig,
    info: SourceInfo,
    /// Routes in the Adj-RIB-In, per family.
    counts: PerFamily<usize>,
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
    /// Changes of the peer's Adj-RIB-In (left empty when [`Rib::report_adj_in`] is off).
    pub adj_in: Vec<InChange>,
    /// The number of changes of the peer's Adj-RIB-In (counted also when they are not
    /// listed).
    pub adj_in_changed: usize,
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
            && self.adj_in_changed == 0
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
    local_info: SourceInfo,
    /// Indexed by `SourceId`; slot 0 (local) is always `None`.
    peers: Vec<Option<PeerState>>,
    /// Local routes announced to some peers only.
    local_scope: Scopes,
    /// Export-rule results by (peer, source, attribute set, family): the prefixes of one
    /// UPDATE or of a table dump share their attributes, so the rules run and the result is
    /// interned once per set, not per prefix. Each entry holds its source set, so that the
    /// set's address is not reused while the entry lives. Cleared by every operation that
    /// can change what the rules decide ([`Rib::begin`]); UPDATEs and drains keep a small
    /// one while prefixes are owed ([`Rib::begin_keeping_memo`]), so that a drain finds the
    /// exports of the UPDATEs just applied rather than running the rules and interning
    /// their result again.
    export_memo: Memo,
    /// While a local route's peer scope is being replaced: the scope it had, which decides
    /// what the peers were told of it.
    scope_before: Option<(AfiSafi, IpNet, Option<Scope>)>,
    /// What each peer was told of a changing prefix (reused between changes).
    told_buf: Vec<(u16, Option<Attrs>)>,
    /// List the Adj-RIB-In changes in [`RibChanges::adj_in`].
    report_adj_in: bool,
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
            local_info: SourceInfo::local(config.local_asn, config.router_id),
            peers: vec![None],
            local_scope: PerFamily::default(),
            export_memo: Memo::default(),
            scope_before: None,
            told_buf: Vec::new(),
            report_adj_in: true,
            sink,
        }
    }

    /// Starts a public operation: drops the export memo of the previous one, then frees
    /// what it released.
    fn begin(&mut self) {
        clear_memo(&mut self.store, &mut self.export_memo);
        self.store.sweep();
    }

    /// Starts an operation that changes neither settings nor sessions (an UPDATE, a drain):
    /// the export memo stays while some peer is owed prefixes, unless it grew past
    /// [`MEMO_KEPT`] entries. (A peer that is up to date costs nothing: once nothing is
    /// owed, the exported sets go.)
    fn begin_keeping_memo(&mut self) {
        if !self.export_memo.is_empty()
            && (self.export_memo.len() > MEMO_KEPT
                || !self.peers.iter().flatten().any(|p| p.adj_out.pending() > 0))
        {
            clear_memo(&mut self.store, &mut self.export_memo);
        }
        self.store.sweep();
    }

    /// Whether operations list the Adj-RIB-In changes in [`RibChanges::adj_in`] (the
    /// default) or only count them in [`RibChanges::adj_in_changed`]. An embedder that does
    /// not look at them saves the list: 48 octets per route when a full table is marked
    /// stale or purged.
    pub fn report_adj_in(&mut self, on: bool) {
        self.report_adj_in = on;
    }

    /// Replaces the route sink.
    pub fn set_sink(&mut self, sink: Box<dyn RouteSink>) {
        self.sink = sink;
    }

    /// The configuration.
    pub fn config(&self) -> &RibConfig {
        &self.config
    }

    /// Adds a peer with the default policies; `None` when 65,535 peers exist already.
    pub fn add_peer(&mut self, config: PeerConfig) -> Option<SourceId> {
        self.add_peer_with(config, Box::new(AcceptAll), Box::new(AcceptAll))
    }

    /// Adds a peer with its import and export policies; `None` when 65,535 peers exist
    /// already.
    pub fn add_peer_with(
        &mut self,
        config: PeerConfig,
        import: Box<dyn ImportPolicy>,
        export: Box<dyn ExportPolicy>,
    ) -> Option<SourceId> {
        // Reuse the slot of a removed peer (none of its routes are left anywhere), so that
        // peers added and removed at runtime never exhaust the identifiers. The export memo
        // knows peers by slot.
        clear_memo(&mut self.store, &mut self.export_memo);
        let slot = match self.peers.iter().skip(1).position(Option::is_none) {
            Some(i) => i + 1,
            None => self.peers.len(),
        };
        let id = SourceId(u16::try_from(slot).ok()?);
        let info = SourceInfo {
            local: false,
            ibgp: config.asn == self.config.local_asn,
            asn: config.asn,
            router_id: config.router_id,
            address: config.address,
        };
        let state = Some(PeerState {
            config,
            info,
            counts: PerFamily::default(),
            adj_out: AdjRibOut::new(),
            import,
            export,
            session: None,
        });
        match self.peers.get_mut(slot) {
            Some(s) => *s = state,
            None => self.peers.push(state),
        }
        Some(id)
    }

    /// Removes a peer and every route it sent.
    pub fn remove_peer(&mut self, peer: SourceId) -> RibChanges {
        let mut ch = self.peer_down(peer, false);
        if let Some(slot) = self.peers.get_mut(usize::from(peer.0)) {
            if let Some(mut p) = slot.take() {
                p.adj_out.clear(&mut self.store);
            }
        }
        self.begin();
        ch.adj_in.shrink_to_fit();
        ch
    }

    /// The session with the peer is established for these families: its Adj-RIB-Out is
    /// filled with the current best routes and End-of-RIB follows them (RFC 4724 §2).
    pub fn peer_up(&mut self, peer: SourceId, ctx: Context, families: AfiSafiSet) {
        self.begin();
        let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) else {
            return;
        };
        p.session = Some((ctx, families));
        p.adj_out.expect_end_of_rib(families);
        // The Loc-RIB is read while the store, memo and peers are written: disjoint fields,
        // so the table is walked in place rather than copied.
        self.export_all_best(peer, families, true);
    }

    /// For every best route of `families` that the peer is to be told: with `owe`, owes it
    /// (a new session: the peer holds nothing yet); otherwise counts it as held by the peer
    /// (a resumed session: the peer holds the export already).
    fn export_all_best(&mut self, peer: SourceId, families: AfiSafiSet, owe: bool) {
        let Rib {
            config,
            store,
            loc,
            local_info,
            peers,
            local_scope,
            export_memo,
            ..
        } = self;
        let env = Env { config, local_info };
        for family in families.iter() {
            let mut held = 0usize;
            for (prefix, best) in loc.iter(family) {
                trim_memo(store, export_memo);
                let scope = scope_for(local_scope, family, &prefix, &best);
                let new = export_route(
                    &env,
                    store,
                    export_memo,
                    peers,
                    peer,
                    family,
                    prefix,
                    &best,
                    scope,
                    Override::NONE,
                );
                let Some(a) = new else { continue };
                store.release(a);
                if !owe {
                    held += 1;
                } else if let Some(Some(p)) = peers.get_mut(usize::from(peer.0)) {
                    p.adj_out.owe(store, family, prefix, None, 0);
                }
            }
            if !owe {
                if let Some(Some(p)) = peers.get_mut(usize::from(peer.0)) {
                    p.adj_out.resume(family, held);
                }
            }
        }
    }

    /// The session with the peer is established for these families and was taken over from
    /// another process (a hitless upgrade): the peer holds the export of the current Loc-RIB
    /// already, so nothing is owed to it and no End-of-RIB is due;
    /// [`AdjRibOut::told_count`] is what that export holds (one walk of the Loc-RIB, as for
    /// [`Rib::peer_up`], that owes nothing). From then on changes are owed to it as to any
    /// peer.
    ///
    /// The new process restores every peer's routes ([`Rib::restore_adj_in`]) and announces
    /// its local routes first, so that the Loc-RIB is what the old one had; changes made
    /// after a peer is resumed are owed to it as usual. What the old process still owed the
    /// peer is not in any image: it should drain every peer before the hand-over.
    pub fn peer_resumed(&mut self, peer: SourceId, ctx: Context, families: AfiSafiSet) {
        self.begin();
        let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) else {
            return;
        };
        p.adj_out.clear(&mut self.store);
        p.session = Some((ctx, families));
        self.export_all_best(peer, families, false);
    }

    /// Like [`Rib::peer_resumed`], with what the peer holds per family as the old process
    /// counted it ([`AdjRibOut::told_count`]), instead of a walk of the export: a hand-over
    /// of many sessions with a full table then costs no walk per session.
    pub fn peer_resumed_with_counts(
        &mut self,
        peer: SourceId,
        ctx: Context,
        families: AfiSafiSet,
        told: &[(AfiSafi, usize)],
    ) {
        self.begin();
        let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) else {
            return;
        };
        p.adj_out.clear(&mut self.store);
        p.session = Some((ctx, families));
        for (family, n) in told {
            if families.contains(*family) {
                p.adj_out.resume(*family, *n);
            }
        }
    }

    /// Appends one peer's Adj-RIB-In, every family, as an image (layout in [`crate::image`]):
    /// its routes as stored (after the import policy), grouped by family, attribute set and
    /// stale mark, each group packed as UPDATE messages. On error nothing is appended.
    pub fn adj_in_image(
        &self,
        peer: SourceId,
        out: &mut BytesMut,
    ) -> Result<ImageStats, ImageError> {
        if !matches!(self.peers.get(usize::from(peer.0)), Some(Some(_))) {
            return Err(ImageError::UnknownPeer(peer));
        }
        let start = out.len();
        let r = self.write_image(peer, out);
        match r {
            Ok(mut stats) => {
                stats.bytes = out.len() - start;
                Ok(stats)
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    fn write_image(&self, peer: SourceId, out: &mut BytesMut) -> Result<ImageStats, ImageError> {
        let ctx = image::image_context();
        let mut stats = ImageStats::default();
        image::write_version(out);
        // Per family: one walk of the peer's routes finds the groups (in order of first
        // appearance) and tags every route with its group, then the routes are placed group
        // by group (a counting sort). No allocation per route or per group besides the
        // group's entry. (A second walk in place of the tagged copies saves memory, 32
        // octets per route while the image is written, but costs more time.)
        let mut index: FastMap<(usize, u8), u32> = FastMap::default();
        let mut groups: Vec<(&Candidate, u32)> = Vec::new();
        let mut tagged: Vec<(u32, Nlri)> = Vec::new();
        let mut sorted: Vec<Nlri> = Vec::new();
        let counts = match self.peers.get(usize::from(peer.0)) {
            Some(Some(p)) => p.counts.clone(),
            _ => return Err(ImageError::UnknownPeer(peer)),
        };
        // About 9 octets per IPv4 route with its path id, 21 for IPv6; an attribute set per
        // record, whose size is not known here.
        let routes: usize = counts.0.iter().sum();
        out.reserve(routes * 12 + 64 * self.store.len().min(routes));
        for (family, &n) in counts.iter() {
            index.clear();
            groups.clear();
            tagged.clear();
            // Growing as the walk goes would rehash and copy them many times over.
            index.reserve(n.min(self.store.len()));
            tagged.reserve(n);
            for (prefix, c) in self.loc.paths_of(family, peer) {
                let key = (
                    Arc::as_ptr(&c.attrs) as usize,
                    (c.stale as u8) << 1 | u8::from(c.add_path),
                );
                let next = u32::try_from(groups.len()).unwrap_or(u32::MAX);
                let g = *index.entry(key).or_insert(next);
                if g == next {
                    groups.push((c, 0));
                }
                if let Some((_, n)) = groups.get_mut(g as usize) {
                    *n += 1;
                }
                tagged.push((g, c.nlri(prefix)));
            }
            let Some(&(_, first)) = tagged.first() else {
                continue;
            };
            // Each group's start in `sorted`, moved along as its routes are placed.
            let mut at: Vec<usize> = Vec::with_capacity(groups.len());
            let mut sum = 0usize;
            for (_, n) in &groups {
                at.push(sum);
                sum += *n as usize;
            }
            sorted.clear();
            sorted.resize(tagged.len(), first);
            for (g, nlri) in &tagged {
                if let Some(i) = at.get_mut(*g as usize) {
                    if let Some(slot) = sorted.get_mut(*i) {
                        *slot = *nlri;
                    }
                    *i += 1;
                }
            }
            let mut from = 0usize;
            for (c, n) in &groups {
                let to = from + *n as usize;
                let nlri = sorted.get(from..to).unwrap_or_default();
                stats.messages += image::write_record(
                    &ctx,
                    family,
                    &c.attrs,
                    c.stale,
                    c.add_path,
                    nlri.iter().copied(),
                    out,
                )?;
                stats.records += 1;
                stats.routes += nlri.len();
                from = to;
            }
        }
        Ok(stats)
    }

    /// Puts back a peer's Adj-RIB-In from an image written by [`Rib::adj_in_image`]: every
    /// route as it was stored (attributes and stale mark), without the import checks or the
    /// import policy (they ran when the route was received: a policy that prepends does not
    /// prepend twice), with the counts and the Loc-RIB updated and best-route changes
    /// reported as usual (the returned changes and the sink). The peer must exist, have no
    /// routes and not be up (so that nothing is owed to it; see [`Rib::peer_resumed`]); other
    /// peers that are up are owed the changes as usual. `keep_adj_rib_in` is not consulted:
    /// the image is what was kept.
    ///
    /// The image is untrusted: it is checked whole before anything changes, and a bad one
    /// is an error, with the RIB as it was.
    pub fn restore_adj_in(
        &mut self,
        peer: SourceId,
        image: &[u8],
    ) -> Result<RibChanges, ImageError> {
        self.begin();
        match self.peers.get(usize::from(peer.0)) {
            Some(Some(p)) if p.session.is_some() => return Err(ImageError::SessionUp(peer)),
            Some(Some(p)) if p.counts.0.iter().any(|n| *n != 0) => {
                return Err(ImageError::NotEmpty(peer));
            }
            Some(Some(_)) => {}
            _ => return Err(ImageError::UnknownPeer(peer)),
        }
        let image = Bytes::copy_from_slice(image);
        // First the whole image is checked (and its routes counted), then applied.
        let routes = image::walk(&image, |_, _| {})?;
        let mut ch = RibChanges::default();
        if self.report_adj_in {
            ch.adj_in.reserve(routes);
        }
        ch.best.reserve(routes);
        image::walk(&image, |record, update| {
            let attrs = self.store.intern(record.attributes(update));
            for (family, mut nlri) in update.announced() {
                if !record.add_path {
                    nlri.path_id = None;
                }
                let route = Some((attrs.clone(), record.stale));
                self.set_path(peer, family, nlri, route, &mut ch);
            }
            self.store.release(attrs);
        })?;
        if let Some(Some(p)) = self.peers.get(usize::from(peer.0)) {
            for (f, n) in p.counts.iter() {
                if p.config.max_prefix.is_some_and(|m| *n > m) {
                    ch.max_prefix_exceeded.push(f);
                }
            }
        }
        Ok(ch)
    }

    /// The session with the peer went down. With `retain_stale` (graceful restart, RFC 4724
    /// §4.2) its routes stay, marked stale; otherwise they are withdrawn.
    pub fn peer_down(&mut self, peer: SourceId, retain_stale: bool) -> RibChanges {
        self.begin();
        if let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) {
            p.session = None;
            p.adj_out.clear(&mut self.store);
        }
        self.bulk(peer, AfiSafi::KNOWN.to_vec(), |c| {
            if !retain_stale {
                PathOp::Remove
            } else if c.stale == Staleness::Fresh {
                c.stale = Staleness::Stale;
                PathOp::Changed
            } else {
                PathOp::Keep
            }
        })
    }

    /// Marks the peer's routes of a family stale (RFC 4724 §4.2). Routes already stale stay
    /// as they are: a second restart does not reset their age.
    pub fn mark_stale(&mut self, peer: SourceId, family: AfiSafi) -> RibChanges {
        self.begin();
        self.bulk(peer, vec![family], |c| {
            if c.stale == Staleness::Fresh {
                c.stale = Staleness::Stale;
                PathOp::Changed
            } else {
                PathOp::Keep
            }
        })
    }

    /// Moves the peer's stale routes of a family to long-lived stale (RFC 9494 §4.2); those
    /// that carry NO_LLGR are removed instead.
    pub fn mark_llgr_stale(&mut self, peer: SourceId, family: AfiSafi) -> RibChanges {
        self.begin();
        self.bulk(peer, vec![family], |c| {
            if c.stale != Staleness::Stale {
                return PathOp::Keep;
            }
            let no_llgr = c
                .attrs
                .attrs
                .communities
                .as_ref()
                .is_some_and(|l| l.contains(Community::NO_LLGR));
            if no_llgr {
                PathOp::Remove
            } else {
                c.stale = Staleness::LlgrStale;
                PathOp::Changed
            }
        })
    }

    /// Removes the peer's routes of a family that are still stale (End-of-RIB, RFC 4724
    /// §4.2, or a timer).
    pub fn purge_stale(&mut self, peer: SourceId, family: AfiSafi) -> RibChanges {
        self.begin();
        self.bulk(peer, vec![family], |c| {
            if c.stale == Staleness::Fresh {
                PathOp::Keep
            } else {
                PathOp::Remove
            }
        })
    }

    /// Applies `op` to every path of a peer in the families, then propagates.
    fn bulk(
        &mut self,
        peer: SourceId,
        families: Vec<AfiSafi>,
        mut op: impl FnMut(&mut Candidate) -> PathOp,
    ) -> RibChanges {
        let mut ch = RibChanges::default();
        if !matches!(self.peers.get(usize::from(peer.0)), Some(Some(_))) {
            return ch;
        }
        if let Some(Some(p)) = self.peers.get(usize::from(peer.0)) {
            if self.report_adj_in {
                let n: usize = families.iter().filter_map(|f| p.counts.get(*f)).sum();
                ch.adj_in.reserve(n);
            }
        }
        let mut log = InLog {
            list: self.report_adj_in.then_some(&mut ch.adj_in),
            changed: 0,
            removed: [0; 4],
            family: 0,
        };
        for family in families {
            let peers = &self.peers;
            let local_info = &self.local_info;
            let lookup = |s: SourceId| lookup_source(peers, local_info, s);
            log.family = family.index().unwrap_or(usize::MAX);
            self.loc.for_source(
                &mut self.store,
                lookup,
                family,
                peer,
                &mut op,
                &mut log,
                &mut ch.best,
            );
        }
        let (changed, removed) = (log.changed, log.removed);
        ch.adj_in_changed += changed;
        if let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) {
            for (n, r) in p.counts.0.iter_mut().zip(removed) {
                *n = n.saturating_sub(r);
            }
        }
        for b in &ch.best {
            self.notify(b);
        }
        ch
    }

    /// Applies an UPDATE from a peer: withdrawals, then announcements after RFC 9234
    /// ingress checks and the import policy. A treat-as-withdraw UPDATE (RFC 7606)
    /// withdraws every prefix it announces.
    pub fn apply_update(&mut self, peer: SourceId, update: &Update) -> RibChanges {
        self.begin_keeping_memo();
        let mut ch = RibChanges {
            end_of_rib: update.end_of_rib(),
            ..RibChanges::default()
        };
        let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) else {
            return ch;
        };
        if !p.config.keep_adj_rib_in {
            return ch;
        }
        let n = update.prefix_count();
        if self.report_adj_in {
            ch.adj_in.reserve(n);
        }
        ch.best.reserve(n);
        for (family, nlri) in update.withdrawn_all() {
            self.set_path(peer, family, nlri, None, &mut ch);
        }
        let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) else {
            return ch;
        };
        let ibgp = p.info.ibgp;
        let a = &update.attributes;
        // Ineligible routes (RFC 4271 §9.1.2): our AS in the path (a loop); a reflected
        // route of our own or one that passed our cluster already (RFC 4456 §8).
        let looped = a
            .as_path
            .as_ref()
            .is_some_and(|path| path.contains(self.config.local_asn))
            || ibgp && a.originator_id == Some(self.config.router_id)
            || ibgp
                && a.cluster_list.as_ref().is_some_and(|l| {
                    l.contains(self.config.cluster_id.unwrap_or(self.config.router_id))
                });
        // RFC 4271 §6.3 and RFC 7606 §7.2: from an external peer the path must start with
        // the peer's AS (not so from a route server, RFC 7947 §2.2.2.1) and carry no
        // confederation segments (RFC 5065 §5.3); otherwise treat-as-withdraw.
        let bad_ebgp_path = !ibgp
            && a.as_path.as_ref().is_some_and(|path| {
                let rs = p.config.local_role == Some(Role::RouteServerClient);
                (!rs && path.first_asn() != Some(p.config.asn))
                    || path.segments().any(|s| s.kind.is_confed())
            });
        // RFC 7606 §7.5, §7.9, §7.10: a malformed LOCAL_PREF, ORIGINATOR_ID or CLUSTER_LIST
        // from an external peer is discarded (it would be stripped anyway), not a withdrawal.
        let treat_as_withdraw = update.errors.iter().any(|e| {
            e.action == bgp_wire::Rfc7606Action::TreatAsWithdraw
                && (ibgp
                    || !matches!(
                        e.attribute_type(),
                        Some(
                            bgp_wire::attribute::type_code::LOCAL_PREF
                                | bgp_wire::attribute::type_code::ORIGINATOR_ID
                                | bgp_wire::attribute::type_code::CLUSTER_LIST
                        )
                    ))
        });
        let mut withdraw_all = treat_as_withdraw || looped || bad_ebgp_path;
        let mut otc = update.attributes.otc;
        if !withdraw_all {
            match otc_ingress(p.config.local_role, p.config.asn, otc) {
                Err(()) => withdraw_all = true,
                Ok(Some(o)) => otc = Some(o),
                Ok(None) => {}
            }
        }
        self.loc.warm(
            update
                .announced()
                .map(|(family, nlri)| (family, nlri.prefix)),
        );
        let mut shared: Option<(AfiSafi, Attrs)> = None;
        for (family, nlri) in update.announced() {
            if withdraw_all {
                self.set_path(peer, family, nlri, None, &mut ch);
                continue;
            }
            let base = match &shared {
                Some((f, a)) if *f == family => a.clone(),
                _ => {
                    let mp_next_hop = match &update.mp_reach {
                        Some(m) if m.family == family => Some(Box::new(m.next_hop.clone())),
                        _ => None,
                    };
                    let mut a = update.attributes.clone();
                    a.otc = otc;
                    if mp_next_hop.is_some() {
                        a.next_hop = None;
                    }
                    if !ibgp {
                        // RFC 7606 §7.5, §7.9, §7.10: discarded when from an external peer.
                        a.local_pref = None;
                        a.originator_id = None;
                        a.cluster_list = None;
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
            let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) else {
                break;
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
            let route = chosen.map(|a| (a, Staleness::Fresh));
            self.set_path(peer, family, nlri, route, &mut ch);
        }
        if let Some((_, a)) = shared {
            self.store.release(a);
        }
        if let Some(Some(p)) = self.peers.get(usize::from(peer.0)) {
            for (f, n) in p.counts.iter() {
                if p.config.max_prefix.is_some_and(|m| *n > m) {
                    ch.max_prefix_exceeded.push(f);
                }
            }
        }
        ch
    }

    /// Sets one path of a peer with its stale mark (`None`: withdrawn), keeps the counts, records the change and
    /// propagates a best-route change.
    fn set_path(
        &mut self,
        peer: SourceId,
        family: AfiSafi,
        nlri: Nlri,
        route: Option<(Attrs, Staleness)>,
        ch: &mut RibChanges,
    ) {
        let entry = route.as_ref().map(|(a, stale)| AdjEntry {
            attrs: a.clone(),
            stale: *stale,
        });
        let peers = &self.peers;
        let local_info = &self.local_info;
        let lookup = |s: SourceId| lookup_source(peers, local_info, s);
        let r = self.loc.set(
            &mut self.store,
            lookup,
            family,
            nlri.prefix,
            peer,
            nlri.path_id,
            route,
        );
        if !r.changed {
            return;
        }
        if let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) {
            if let Some(n) = p.counts.get_mut(family) {
                match (r.before, r.after) {
                    (false, true) => *n += 1,
                    (true, false) => *n = n.saturating_sub(1),
                    _ => {}
                }
            }
        }
        ch.adj_in_changed += 1;
        if self.report_adj_in {
            ch.adj_in.push(InChange {
                family,
                nlri,
                route: entry,
            });
        }
        if let Some(b) = r.best {
            self.propagate(b, ch);
        }
    }

    /// Announces one of the embedder's own routes to every peer. Announcing what is already
    /// announced changes nothing (an empty change set, nothing queued for any peer).
    pub fn announce(
        &mut self,
        family: AfiSafi,
        prefix: IpNet,
        attrs: RouteAttributes,
    ) -> RibChanges {
        self.announce_scoped(family, prefix, attrs, None)
    }

    /// Announces one of the embedder's own routes to the named peers only.
    pub fn announce_to(
        &mut self,
        family: AfiSafi,
        prefix: IpNet,
        attrs: RouteAttributes,
        peers: &[SourceId],
    ) -> RibChanges {
        self.announce_scoped(family, prefix, attrs, Some(peers))
    }

    fn announce_scoped(
        &mut self,
        family: AfiSafi,
        prefix: IpNet,
        attrs: RouteAttributes,
        peers: Option<&[SourceId]>,
    ) -> RibChanges {
        self.begin();
        let mut ch = RibChanges::default();
        let prefix = prefix.trunc();
        let scope_changed = match self.local_scope.get_mut(family) {
            Some(t) => {
                let new: Option<Box<[SourceId]>> = peers.map(|p| {
                    let mut v = p.to_vec();
                    v.sort_unstable();
                    v.dedup();
                    v.into_boxed_slice()
                });
                let old = match &new {
                    Some(n) => t.insert(prefix, n.clone()),
                    None => t.remove(&prefix),
                };
                let changed = old != new;
                // What the peers were told of the route depends on the scope it had.
                self.scope_before = Some((family, prefix, old));
                changed
            }
            None => false,
        };
        let a = self.store.intern(attrs);
        self.set_local(family, prefix, Some(a), &mut ch);
        if scope_changed && ch.best.is_empty() {
            // Same route, other peers: only the Adj-RIBs-Out change.
            if let Some(best) = self.loc.best(family, &prefix) {
                let change = BestChange {
                    family,
                    prefix,
                    old: Some(best.clone()),
                    new: Some(best),
                };
                self.export_all(&change, false);
            }
        }
        self.scope_before = None;
        ch
    }

    /// Withdraws one of the embedder's own routes; a no-op if it was not announced.
    pub fn withdraw(&mut self, family: AfiSafi, prefix: IpNet) -> RibChanges {
        self.begin();
        let mut ch = RibChanges::default();
        let prefix = prefix.trunc();
        self.set_local(family, prefix, None, &mut ch);
        if let Some(t) = self.local_scope.get_mut(family) {
            t.remove(&prefix);
        }
        ch
    }

    /// Re-sends the peer everything it has been told, or should have, for a family: a
    /// route refresh (RFC 2918 §4; RFC 7313 §4 inside BoRR ... EoRR) or a soft reset out.
    /// The peer's Adj-RIB-Out entries are re-marked as owed (no copies), so the next drains
    /// send each prefix once, in its current state, packed as usual: a prefix withdrawn
    /// meanwhile goes as a withdrawal, not again as it was. The drain that writes the last
    /// of them reports the family in [`Drained::refresh_done`] (see also
    /// [`Rib::refresh_pending`]). Idempotent until drained. Returns false, and does nothing,
    /// when the peer is not up or the family not negotiated with it (or not one the RIB
    /// handles).
    #[must_use]
    pub fn refresh_out(&mut self, peer: SourceId, family: AfiSafi) -> bool {
        self.begin();
        let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) else {
            return false;
        };
        match &p.session {
            Some((_, families)) if families.contains(family) => {}
            _ => return false,
        }
        if !p.adj_out.refresh_mark_owed(family) {
            return false;
        }
        // The prefixes the peer holds in their current state: owed again, as they are.
        let Rib {
            config,
            store,
            loc,
            local_info,
            peers,
            local_scope,
            export_memo,
            ..
        } = self;
        let env = Env { config, local_info };
        for (prefix, best) in loc.iter(family) {
            trim_memo(store, export_memo);
            let owed = match peers.get(usize::from(peer.0)) {
                Some(Some(p)) => p.adj_out.is_owed(family, &prefix),
                _ => return false,
            };
            if owed {
                continue;
            }
            let scope = scope_for(local_scope, family, &prefix, &best);
            let held = export_route(
                &env,
                store,
                export_memo,
                peers,
                peer,
                family,
                prefix,
                &best,
                scope,
                Override::NONE,
            );
            let Some(a) = held else { continue };
            store.release(a);
            if let Some(Some(p)) = peers.get_mut(usize::from(peer.0)) {
                p.adj_out
                    .owe(store, family, prefix, None, HOLDS | RESEND | REFRESH);
            }
        }
        if let Some(Some(p)) = peers.get_mut(usize::from(peer.0)) {
            p.adj_out.refresh_started(family);
        }
        true
    }

    /// Whether a re-advertisement started by [`Rib::refresh_out`] is still to be drained.
    pub fn refresh_pending(&self, peer: SourceId, family: AfiSafi) -> bool {
        self.adj_rib_out(peer)
            .is_some_and(|a| a.refresh_pending(family))
    }

    /// Changes a peer's settings in place: its identity (AS, BGP identifier, address), our
    /// next hops and prepends towards it, its roles and flags. When the identity changed,
    /// the decision process runs again for the prefixes it sent; what it should have is then
    /// recomputed from the Loc-RIB (drained as a normal difference: only what changed goes),
    /// and so is what the other peers should have of the routes it sent. The import side
    /// (AS checks, ingress role checks, `keep_adj_rib_in`) applies to UPDATEs received from
    /// then on; a route refresh request re-applies it to the peer's routes. A `max_prefix`
    /// already exceeded is reported. A no-op when nothing changed or the peer is unknown.
    pub fn update_peer_config(&mut self, peer: SourceId, config: PeerConfig) -> RibChanges {
        self.begin();
        let mut ch = RibChanges::default();
        let local_asn = self.config.local_asn;
        let Some(Some(p)) = self.peers.get(usize::from(peer.0)) else {
            return ch;
        };
        if p.config == config {
            return ch;
        }
        let info = SourceInfo {
            local: false,
            ibgp: config.asn == local_asn,
            asn: config.asn,
            router_id: config.router_id,
            address: config.address,
        };
        let info_changed = p.info != info;
        let from_changed = info_changed || p.config.rr_client != config.rr_client;
        // Before anything changes, while what the peers were told can still be computed:
        // the prefixes whose export to the peer changes are owed to it...
        self.owe_export_changes(peer, &config, info);
        if from_changed {
            // ...and the others are owed the routes it sent (reflection and the export
            // rules look at where a route comes from).
            self.owe_routes_of(peer);
        }
        clear_memo(&mut self.store, &mut self.export_memo);
        let Some(Some(p)) = self.peers.get_mut(usize::from(peer.0)) else {
            return ch;
        };
        p.info = info;
        p.config = config;
        for (f, n) in p.counts.iter() {
            if p.config.max_prefix.is_some_and(|m| *n > m) {
                ch.max_prefix_exceeded.push(f);
            }
        }
        if info_changed {
            // The decision process compares identities: select again where the peer has a
            // path (best-route changes are exported to every peer as usual).
            let bulk = self.bulk(peer, AfiSafi::KNOWN.to_vec(), |_| PathOp::Changed);
            ch.best = bulk.best;
        }
        ch
    }

    /// Owes the peer every prefix whose export changes when its settings become `config`
    /// and its identity `info`, with what it was told under the current ones.
    fn owe_export_changes(&mut self, peer: SourceId, config: &PeerConfig, info: SourceInfo) {
        let Rib {
            config: rib_config,
            store,
            loc,
            local_info,
            peers,
            local_scope,
            export_memo,
            ..
        } = self;
        let families = match peers.get(usize::from(peer.0)) {
            Some(Some(PeerState {
                session: Some((_, families)),
                ..
            })) => *families,
            _ => return,
        };
        let env = Env {
            config: rib_config,
            local_info,
        };
        let mut memo_new = Memo::default();
        let ov = Override {
            to: Some((peer, config)),
            from: Some((peer, info, config.rr_client)),
        };
        for family in families.iter() {
            for (prefix, best) in loc.iter(family) {
                trim_memo(store, export_memo);
                trim_memo(store, &mut memo_new);
                match peers.get_mut(usize::from(peer.0)) {
                    Some(Some(p)) => {
                        if p.adj_out.touch(family, prefix) {
                            continue;
                        }
                    }
                    _ => return,
                }
                let scope = scope_for(local_scope, family, &prefix, &best);
                let (e, s, m, ps) = (&env, &mut *store, &mut *export_memo, &mut **peers);
                let told = export_route(
                    e,
                    s,
                    m,
                    ps,
                    peer,
                    family,
                    prefix,
                    &best,
                    scope,
                    Override::NONE,
                );
                let new = export_route(
                    e,
                    s,
                    &mut memo_new,
                    ps,
                    peer,
                    family,
                    prefix,
                    &best,
                    scope,
                    ov,
                );
                let changed = !same(&told, &new);
                if let Some(a) = new {
                    store.release(a);
                }
                if !changed {
                    if let Some(a) = told {
                        store.release(a);
                    }
                    continue;
                }
                if let Some(Some(p)) = peers.get_mut(usize::from(peer.0)) {
                    p.adj_out.owe(store, family, prefix, told, 0);
                }
            }
        }
        clear_memo(store, &mut memo_new);
    }

    /// Owes every other peer the prefixes whose best route comes from `peer`, with what they
    /// were told of them.
    fn owe_routes_of(&mut self, peer: SourceId) {
        let Rib {
            config,
            store,
            loc,
            local_info,
            peers,
            export_memo,
            ..
        } = self;
        let env = Env { config, local_info };
        for family in AfiSafi::KNOWN {
            for (prefix, best) in loc.iter(family) {
                trim_memo(store, export_memo);
                if best.source != peer {
                    continue;
                }
                for id in 1..peers.len() {
                    let Ok(id) = u16::try_from(id) else { break };
                    if id == peer.0 {
                        continue;
                    }
                    let to = SourceId(id);
                    match peers.get_mut(usize::from(id)) {
                        Some(Some(q)) => {
                            let up = q.session.as_ref().is_some_and(|(_, f)| f.contains(family));
                            if !up || q.adj_out.touch(family, prefix) {
                                continue;
                            }
                        }
                        _ => continue,
                    }
                    let told = export_route(
                        &env,
                        store,
                        export_memo,
                        peers,
                        to,
                        family,
                        prefix,
                        &best,
                        None,
                        Override::NONE,
                    );
                    if let Some(Some(q)) = peers.get_mut(usize::from(id)) {
                        q.adj_out.owe(store, family, prefix, told, 0);
                    }
                }
            }
        }
    }

    /// Appends UPDATEs for everything the peer is owed: withdrawals first, then
    /// announcements grouped by attribute set, each group packed as tightly as the session's
    /// maximum message size allows; then the End-of-RIB markers that are due, and the
    /// refreshes that are done are reported.
    pub fn drain(&mut self, peer: SourceId, out: &mut BytesMut) -> Drained {
        self.drain_limited(peer, out, usize::MAX)
    }

    /// Like [`Rib::drain`], but handles at most `max_prefixes` owed prefixes (the oldest
    /// first), so that a writer caps its work per wake-up; the rest stays owed. Each prefix
    /// goes in its current state, exported from the Loc-RIB now. End-of-RIB of a family
    /// follows only once nothing of it is queued; a refresh is done once the prefixes it
    /// re-marked are written.
    pub fn drain_limited(
        &mut self,
        peer: SourceId,
        out: &mut BytesMut,
        max_prefixes: usize,
    ) -> Drained {
        self.begin_keeping_memo();
        let Rib {
            config,
            store,
            loc,
            local_info,
            peers,
            local_scope,
            export_memo,
            ..
        } = self;
        let ctx = match peers.get(usize::from(peer.0)) {
            Some(Some(PeerState {
                session: Some((ctx, _)),
                ..
            })) => *ctx,
            _ => return Drained::default(),
        };
        let env = Env { config, local_info };
        let mut d = Drained::default();
        let mut budget = max_prefixes;
        for family in AfiSafi::KNOWN {
            let taken = match peers.get_mut(usize::from(peer.0)) {
                Some(Some(p)) => p.adj_out.take(family, budget),
                _ => break,
            };
            budget -= taken.len();
            let mut withdraws: Vec<(IpNet, u8)> = Vec::new();
            let mut groups: FastMap<usize, (Attrs, Vec<(IpNet, u8)>)> = FastMap::default();
            let mut settled: Vec<(IpNet, u8, bool)> = Vec::new();
            // The table lookups first, in one tight loop, so that their cache misses overlap
            // (one at a time, between the exports, they cost a third of the drain).
            let bests: Vec<Option<&Candidate>> = taken
                .iter()
                .map(|(prefix, _, _)| loc.candidates(family, prefix).first())
                .collect();
            for ((prefix, told, flags), best) in taken.into_iter().zip(bests) {
                let best = best.map(BestRoute::of);
                let new = best.as_ref().and_then(|b| {
                    let scope = scope_for(local_scope, family, &prefix, b);
                    export_route(
                        &env,
                        store,
                        export_memo,
                        peers,
                        peer,
                        family,
                        prefix,
                        b,
                        scope,
                        Override::NONE,
                    )
                });
                let holds = flags & HOLDS != 0;
                match new {
                    None if holds => withdraws.push((prefix, flags)),
                    // Announced and withdrawn again before the peer heard of it.
                    None => settled.push((prefix, flags, false)),
                    Some(a) => {
                        let unchanged = flags & RESEND == 0
                            && told.as_ref().is_some_and(|t| Arc::ptr_eq(t, &a));
                        if unchanged {
                            settled.push((prefix, flags, true));
                            store.release(a);
                        } else {
                            // The group's reference is given back after the packing; this
                            // one can simply go (the store frees a set once every copy but
                            // its own is gone and one was given back).
                            groups
                                .entry(Arc::as_ptr(&a) as usize)
                                .or_insert_with(|| (a, Vec::new()))
                                .1
                                .push((prefix, flags));
                        }
                    }
                }
            }
            let Some(Some(p)) = peers.get_mut(usize::from(peer.0)) else {
                break;
            };
            let adj_out = &mut p.adj_out;
            for (prefix, flags, holds) in settled {
                adj_out.settle(store, family, &prefix, flags, holds);
            }
            if !withdraws.is_empty() {
                let nlris = withdraws.iter().map(|(p, _)| Nlri::new(*p));
                match pack_withdraw(&ctx, family, nlris, out) {
                    Ok(n) => {
                        d.messages += n;
                        d.withdrawn += withdraws.len();
                        for (prefix, flags) in &withdraws {
                            adj_out.settle(store, family, prefix, *flags, false);
                        }
                    }
                    Err(e) => {
                        d.errors.push(e);
                        for (prefix, flags) in &withdraws {
                            adj_out.park(family, prefix, *flags);
                        }
                    }
                }
            }
            for (_, (a, nlris)) in groups {
                let r = pack_announce(
                    &ctx,
                    &a.attrs,
                    family,
                    a.mp_next_hop.as_deref(),
                    nlris.iter().map(|(p, _)| Nlri::new(*p)),
                    out,
                );
                match r {
                    Ok(n) => {
                        d.messages += n;
                        d.announced += nlris.len();
                        for (prefix, flags) in &nlris {
                            adj_out.settle(store, family, prefix, *flags, true);
                        }
                    }
                    Err(e) => {
                        d.errors.push(e);
                        for (prefix, flags) in &nlris {
                            adj_out.park(family, prefix, *flags);
                        }
                    }
                }
                store.release(a);
            }
            if adj_out.queue_empty(family) && adj_out.end_of_rib_due(family) {
                let eor = Message::Update(Update::end_of_rib_marker(family));
                if eor.encode(&ctx, out).is_ok() {
                    d.messages += 1;
                    d.end_of_rib.push(family);
                }
                adj_out.end_of_rib_sent(family);
            }
            if adj_out.refresh_check(family) {
                d.refresh_done.push(family);
            }
        }
        d
    }

    /// Frees every attribute set no route uses any more, by a full scan of the store. Each
    /// operation already frees, incrementally, what the previous ones released; this is for
    /// audits and tests.
    pub fn sweep(&mut self) {
        clear_memo(&mut self.store, &mut self.export_memo);
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

    /// The multipath (ECMP) set of a prefix: the candidates as good as the best one up to
    /// the eBGP/iBGP step of the decision process (see [`crate::best::multipath`]).
    pub fn multipath(&self, family: AfiSafi, prefix: &IpNet) -> Vec<crate::loc::BestRoute> {
        let cands = self.loc.candidates(family, prefix);
        let lookup = |s: SourceId| lookup_source(&self.peers, &self.local_info, s);
        crate::best::multipath(cands, lookup)
            .into_iter()
            .filter_map(|i| cands.get(i))
            .map(|c| crate::loc::BestRoute {
                source: c.source,
                path_id: c.path_id,
                attrs: c.attrs.clone(),
                stale: c.stale,
            })
            .collect()
    }

    /// A peer's Adj-RIB-In.
    pub fn adj_rib_in(&self, peer: SourceId) -> Option<AdjRibIn<'_>> {
        let p = self.peers.get(usize::from(peer.0))?.as_ref()?;
        Some(AdjRibIn {
            loc: &self.loc,
            source: peer,
            counts: &p.counts,
        })
    }

    /// A peer's Adj-RIB-Out.
    pub fn adj_rib_out(&self, peer: SourceId) -> Option<&AdjRibOut> {
        Some(&self.peers.get(usize::from(peer.0))?.as_ref()?.adj_out)
    }

    /// The embedder's own routes of a family.
    pub fn local_routes(&self, family: AfiSafi) -> impl Iterator<Item = (IpNet, &Attrs)> {
        self.loc
            .paths_of(family, SourceId::LOCAL)
            .map(|(p, c)| (p, &c.attrs))
    }

    fn set_local(
        &mut self,
        family: AfiSafi,
        prefix: IpNet,
        attrs: Option<Attrs>,
        ch: &mut RibChanges,
    ) {
        let peers = &self.peers;
        let local_info = &self.local_info;
        let lookup = |s: SourceId| lookup_source(peers, local_info, s);
        let r = self.loc.set(
            &mut self.store,
            lookup,
            family,
            prefix,
            SourceId::LOCAL,
            None,
            attrs.map(|a| (a, Staleness::Fresh)),
        );
        if let Some(b) = r.best {
            self.propagate(b, ch);
        }
    }

    /// Reports a best-route change to the sink and every peer's Adj-RIB-Out, and records it.
    fn propagate(&mut self, change: BestChange, ch: &mut RibChanges) {
        self.notify(&change);
        ch.best.push(change);
    }

    /// Reports a best-route change to the sink and every peer's Adj-RIB-Out.
    fn notify(&mut self, change: &BestChange) {
        self.export_all(change, true);
    }

    /// Runs the export of a best-route change for every peer (and reports it to the sink
    /// with `to_sink`). What each peer was told is the export of the old best route, computed
    /// before the sink hears of the change, so that a policy whose state follows the sink
    /// (as the speaker's does) decides as it did when the route was sent; what it should have
    /// is computed after.
    fn export_all(&mut self, change: &BestChange, to_sink: bool) {
        let Rib {
            config,
            store,
            local_info,
            peers,
            local_scope,
            export_memo,
            scope_before,
            sink,
            told_buf,
            ..
        } = self;
        let env = Env { config, local_info };
        let family = change.family;
        let prefix = change.prefix;
        let old_scope = match scope_before {
            Some((f, p, s)) if *f == family && *p == prefix => s.as_deref(),
            _ => change
                .old
                .as_ref()
                .and_then(|b| scope_for(local_scope, family, &prefix, b)),
        };
        for id in 1..peers.len() {
            let Ok(id) = u16::try_from(id) else { break };
            match peers.get_mut(usize::from(id)) {
                Some(Some(p)) => {
                    let up = p.session.as_ref().is_some_and(|(_, f)| f.contains(family));
                    // A prefix owed already stays owed, with what the peer was told.
                    if !up || p.adj_out.touch(family, prefix) {
                        continue;
                    }
                }
                _ => continue,
            }
            let told = change.old.as_ref().and_then(|b| {
                export_route(
                    &env,
                    store,
                    export_memo,
                    peers,
                    SourceId(id),
                    family,
                    prefix,
                    b,
                    old_scope,
                    Override::NONE,
                )
            });
            told_buf.push((id, told));
        }
        if to_sink {
            sink.best_changed(change);
        }
        let new_scope = change
            .new
            .as_ref()
            .and_then(|b| scope_for(local_scope, family, &prefix, b));
        for (id, told) in told_buf.drain(..) {
            let new = change.new.as_ref().and_then(|b| {
                export_route(
                    &env,
                    store,
                    export_memo,
                    peers,
                    SourceId(id),
                    family,
                    prefix,
                    b,
                    new_scope,
                    Override::NONE,
                )
            });
            let changed = !same(&told, &new);
            if let Some(a) = new {
                store.release(a);
            }
            if !changed {
                if let Some(a) = told {
                    store.release(a);
                }
                continue;
            }
            if let Some(Some(p)) = peers.get_mut(usize::from(id)) {
                p.adj_out.owe(store, family, prefix, told, 0);
            }
        }
    }
}

/// Settings that replace the current ones in one export (a peer's settings being changed).
#[derive(Clone, Copy)]
struct Override<'a> {
    /// The peer exported to, and its settings.
    to: Option<(SourceId, &'a PeerConfig)>,
    /// A source, its identity and whether it is a route-reflector client.
    from: Option<(SourceId, SourceInfo, bool)>,
}

impl Override<'_> {
    const NONE: Override<'static> = Override {
        to: None,
        from: None,
    };
}

/// The attributes `to` is to be told for a best route (export rules, then its export
/// policy), interned: a reference the caller gives back to the store. `None`: not
/// advertised to it. Memoised per peer, source and attribute set (see [`Rib::export_memo`]).
#[allow(clippy::too_many_arguments)]
fn export_route(
    env: &Env<'_>,
    store: &mut AttrStore,
    memo: &mut Memo,
    peers: &mut [Option<PeerState>],
    to: SourceId,
    family: AfiSafi,
    prefix: IpNet,
    best: &BestRoute,
    scope: Option<&[SourceId]>,
    ov: Override<'_>,
) -> Option<Attrs> {
    let (info, rr_client) = if best.source == SourceId::LOCAL {
        if scope.is_some_and(|s| !s.contains(&to)) {
            return None;
        }
        (*env.local_info, false)
    } else {
        match ov.from {
            Some((id, info, rr)) if id == best.source => (info, rr),
            _ => {
                let p = peers.get(usize::from(best.source.0))?.as_ref()?;
                (p.info, p.config.rr_client)
            }
        }
    };
    let PeerState {
        config: own_config,
        export: policy,
        ..
    } = peers.get_mut(usize::from(to.0))?.as_mut()?;
    let to_config: &PeerConfig = match ov.to {
        Some((id, c)) if id == to => c,
        _ => own_config,
    };
    let llgr_stale = best.stale == Staleness::LlgrStale;
    // RFC 9494 §4.5: long-lived stale routes only to peers that negotiated LLGR.
    if llgr_stale && !to_config.llgr {
        return None;
    }
    let family_ix = family.index().unwrap_or(0) as u8;
    let key = (
        to.0,
        best.source.0,
        Arc::as_ptr(&best.attrs) as usize,
        family_ix | u8::from(llgr_stale) << 7,
    );
    let exported = match memo.get(&key) {
        Some((_, v)) => v.clone(),
        None => {
            let from = From {
                info: &info,
                same_peer: best.source == to,
                rr_client,
            };
            let v = export(env.config, to_config, from, family, &best.attrs).map(|mut a| {
                if llgr_stale {
                    let c = a.attrs.communities.take().unwrap_or_default();
                    a.attrs.communities = Some(c.with(Community::LLGR_STALE));
                }
                store.intern(a)
            });
            memo.insert(key, (best.attrs.clone(), v.clone()));
            v
        }
    };
    let attrs = exported?;
    match policy.export(to_config, family, &Nlri::new(prefix), &attrs) {
        PolicyAction::Accept => Some(attrs),
        PolicyAction::Reject => {
            store.release(attrs);
            None
        }
        PolicyAction::Modify(m) => {
            store.release(attrs);
            Some(store.intern(m))
        }
    }
}

fn same(a: &Option<Attrs>, b: &Option<Attrs>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// Keeps an export memo bounded during a walk of the whole table (a new session, a refresh,
/// new settings): past 65,536 results it is emptied and the exported sets nobody holds are
/// freed, so that a walk does not keep an exported copy of every attribute set alive until
/// it ends. Safe within an operation: every set a caller still uses is held by it, and the
/// memo's keys go with it. (Bulk changes keep theirs: a whole table withdrawn would export
/// each set again for every prefix.)
fn trim_memo(store: &mut AttrStore, memo: &mut Memo) {
    if memo.len() >= 65_536 {
        clear_memo(store, memo);
        store.sweep();
    }
}

/// Empties an export memo, giving its references back to the store.
fn clear_memo(store: &mut AttrStore, memo: &mut Memo) {
    // Clearing a map touches every bucket, used or not: an empty memo is left alone, and a
    // large one (after a walk of the table) is given back rather than kept for the next
    // operation, which is usually one UPDATE.
    if memo.is_empty() {
        return;
    }
    for (_, (source, v)) in memo.drain() {
        store.release(source);
        if let Some(a) = v {
            store.release(a);
        }
    }
    if memo.capacity() > 1024 {
        *memo = Memo::default();
    }
}

fn lookup_source<'a>(
    peers: &'a [Option<PeerState>],
    local_info: &'a SourceInfo,
    s: SourceId,
) -> Option<&'a SourceInfo> {
    if s == SourceId::LOCAL {
        Some(local_info)
    } else {
        peers.get(usize::from(s.0))?.as_ref().map(|p| &p.info)
    }
}

/// What every export reads besides the peers.
struct Env<'a> {
    config: &'a RibConfig,
    local_info: &'a SourceInfo,
}

/// The peers a scoped local route goes to.
type Scope = Box<[SourceId]>;

type Scopes = PerFamily<FastMap<IpNet, Scope>>;

/// Export-rule results: (peer, source, source attribute set's address, family index | LLGR
/// stale mark) → (that source set, the exported set or `None`).
type Memo = FastMap<(u16, u16, usize, u8), (Attrs, Option<Attrs>)>;

/// The export memo entries kept from one UPDATE or drain to the next: the exports of the
/// latest few hundred UPDATEs, about as far as a peer's writer is typically behind.
const MEMO_KEPT: usize = 1024;

/// The peers a best route is limited to: those of a scoped local announcement.
fn scope_for<'a>(
    scopes: &'a Scopes,
    family: AfiSafi,
    prefix: &IpNet,
    best: &BestRoute,
) -> Option<&'a [SourceId]> {
    if best.source != SourceId::LOCAL {
        return None;
    }
    scopes.get(family)?.get(prefix).map(|s| &**s)
}
