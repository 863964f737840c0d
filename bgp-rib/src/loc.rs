//! The route table: for every prefix, every candidate path from every source (each peer's
//! Adj-RIB-In, RFC 4271 §3.2, and the local origin table) and, first, the best one (the
//! Loc-RIB, RFC 4271 §9.1.2).
//!
//! One hash map per family, keyed by a compact prefix (8 octets for IPv4, 20 for IPv6),
//! whose value is 16 octets for the common single-path prefix: the candidate itself (an
//! `Arc` to the interned attributes, path id, source, stale mark). Prefixes with several
//! paths hold them in one boxed vector. A peer's Adj-RIB-In is the view of its paths in this
//! table ([`AdjRibIn`](crate::AdjRibIn)), so a route costs one entry, not two.

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use bgp_wire::{Afi, AfiSafi, Nlri};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::adj_in::{AdjEntry, InChange, Staleness};
use crate::best::{Candidate, SourceId, SourceInfo, select_best};
use crate::intern::{AttrStore, Attrs};
use crate::table::FastMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct K4 {
    addr: u32,
    len: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct K6 {
    addr: [u32; 4],
    len: u8,
}

impl K4 {
    fn of(p: &IpNet) -> Option<K4> {
        match p {
            IpNet::V4(n) => Some(K4 {
                addr: u32::from(n.network()),
                len: n.prefix_len(),
            }),
            IpNet::V6(_) => None,
        }
    }

    fn net(self) -> IpNet {
        IpNet::V4(Ipv4Net::new(self.addr.into(), self.len).unwrap_or_default())
    }
}

impl K6 {
    fn of(p: &IpNet) -> Option<K6> {
        match p {
            IpNet::V6(n) => {
                let a = u128::from(n.network());
                Some(K6 {
                    addr: [
                        (a >> 96) as u32,
                        (a >> 64) as u32,
                        (a >> 32) as u32,
                        a as u32,
                    ],
                    len: n.prefix_len(),
                })
            }
            IpNet::V4(_) => None,
        }
    }

    fn net(self) -> IpNet {
        let [a, b, c, d] = self.addr.map(u128::from);
        let addr = (a << 96) | (b << 64) | (c << 32) | d;
        IpNet::V6(Ipv6Net::new(addr.into(), self.len).unwrap_or_default())
    }
}

/// The candidates of one prefix, best first.
#[derive(Clone, Debug)]
enum Paths {
    One(Candidate),
    /// Boxed so that the enum stays 16 octets (a `Vec` is 24): several paths are the rare
    /// case, the single path the one to keep small.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Candidate>>),
}

impl Paths {
    fn as_slice(&self) -> &[Candidate] {
        match self {
            Paths::One(c) => std::slice::from_ref(c),
            Paths::Many(v) => v,
        }
    }

    fn best(&self) -> Option<&Candidate> {
        self.as_slice().first()
    }
}

/// How a key picks its shard: a multiplicative hash independent of the maps' own hasher
/// (whose top bits hashbrown uses inside each shard).
pub(crate) trait ShardKey: Copy + Eq + std::hash::Hash {
    fn shard(&self) -> usize;
}

const SHARD_BITS: u32 = 6;
/// The number of shards of a [`Sharded`] map.
const SHARDS: usize = 1 << SHARD_BITS;

#[inline]
fn shard_of(x: u64) -> usize {
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SHARD_BITS)) as usize
}

impl ShardKey for K4 {
    #[inline]
    fn shard(&self) -> usize {
        shard_of(u64::from(self.addr) << 8 | u64::from(self.len))
    }
}

impl ShardKey for K6 {
    #[inline]
    fn shard(&self) -> usize {
        let [a, b, c, d] = self.addr.map(u64::from);
        shard_of((a << 32 | b) ^ (c << 32 | d).rotate_left(17) ^ u64::from(self.len))
    }
}

/// A hash map split into [`SHARDS`] maps by key: each grows on its own, so that growing a
/// large table never holds the old and the new copy of all of it at once (a single
/// 1,000,000-prefix map briefly needs 26 MB more while it doubles; a shard 1/64 of that).
#[derive(Debug)]
pub(crate) struct Sharded<K, V> {
    shards: Box<[FastMap<K, V>]>,
    len: usize,
}

impl<K: ShardKey, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| FastMap::default()).collect(),
            len: 0,
        }
    }
}

impl<K: ShardKey, V> Sharded<K, V> {
    #[inline]
    fn shard(&self, k: &K) -> Option<&FastMap<K, V>> {
        self.shards.get(k.shard())
    }

    #[inline]
    fn shard_mut(&mut self, k: &K) -> Option<&mut FastMap<K, V>> {
        self.shards.get_mut(k.shard())
    }

    fn get(&self, k: &K) -> Option<&V> {
        self.shard(k)?.get(k)
    }

    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.shard_mut(k)?.get_mut(k)
    }

    /// The value of a key, or the one `v` gives (if any) inserted, with whether it was: one
    /// probe of the table where `get_mut` and then `insert` take two.
    fn get_or_insert(&mut self, k: K, v: impl FnOnce() -> Option<V>) -> Option<(&mut V, bool)> {
        let t = self.shards.get_mut(k.shard())?;
        match t.entry(k) {
            Entry::Occupied(e) => Some((e.into_mut(), false)),
            Entry::Vacant(e) => {
                let v = v()?;
                self.len += 1;
                Some((e.insert(v), true))
            }
        }
    }

    fn insert(&mut self, k: K, v: V) -> bool {
        let Some(t) = self.shard_mut(&k) else {
            return false;
        };
        if t.insert(k, v).is_none() {
            self.len += 1;
        }
        true
    }

    fn remove(&mut self, k: &K) -> Option<V> {
        let t = self.shard_mut(k)?;
        let v = t.remove(k)?;
        shrink(t);
        self.len -= 1;
        Some(v)
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|t| t.iter())
    }

    fn retain(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        let mut len = 0;
        for t in self.shards.iter_mut() {
            t.retain(&mut f);
            shrink(t);
            len += t.len();
        }
        self.len = len;
    }

    fn drain_all(&mut self, mut f: impl FnMut(V)) {
        for t in self.shards.iter_mut() {
            t.drain().for_each(|(_, v)| f(v));
            // Give the memory back: a table that filled once need not stay that large.
            *t = FastMap::default();
        }
        self.len = 0;
    }
}

/// Gives back most of a map's room once three quarters of it are unused (amortised: it
/// takes as many removals as the shrink moves entries), so that a burst of entries (a whole
/// table owed to a peer) does not leave an empty table of its size behind.
fn shrink<K: ShardKey, V>(t: &mut FastMap<K, V>) {
    let cap = t.capacity();
    if cap > 64 && t.len() < cap / 4 {
        t.shrink_to(t.len() * 2);
    }
}

/// A map from prefixes of one family to `V`, keyed compactly (8 octets for IPv4, 20 for
/// IPv6). A prefix of the other address family is never found and never stored.
#[derive(Debug)]
pub(crate) enum PrefixMap<V> {
    V4(Sharded<K4, V>),
    V6(Sharded<K6, V>),
}

impl<V> PrefixMap<V> {
    /// An empty map for a family.
    pub(crate) fn for_family(f: AfiSafi) -> Self {
        if f.afi == Afi::IPV6 {
            PrefixMap::V6(Sharded::default())
        } else {
            PrefixMap::V4(Sharded::default())
        }
    }

    pub(crate) fn get(&self, p: &IpNet) -> Option<&V> {
        match self {
            PrefixMap::V4(t) => t.get(&K4::of(p)?),
            PrefixMap::V6(t) => t.get(&K6::of(p)?),
        }
    }

    pub(crate) fn get_mut(&mut self, p: &IpNet) -> Option<&mut V> {
        match self {
            PrefixMap::V4(t) => t.get_mut(&K4::of(p)?),
            PrefixMap::V6(t) => t.get_mut(&K6::of(p)?),
        }
    }

    /// The value of a prefix, or the one `v` gives (if any) inserted, with whether it was;
    /// `None` for a prefix of the other address family.
    pub(crate) fn get_or_insert(
        &mut self,
        p: &IpNet,
        v: impl FnOnce() -> Option<V>,
    ) -> Option<(&mut V, bool)> {
        match self {
            PrefixMap::V4(t) => t.get_or_insert(K4::of(p)?, v),
            PrefixMap::V6(t) => t.get_or_insert(K6::of(p)?, v),
        }
    }

    /// Inserts; false (and `v` dropped) for a prefix of the other address family.
    pub(crate) fn insert(&mut self, p: &IpNet, v: V) -> bool {
        match self {
            PrefixMap::V4(t) => K4::of(p).is_some_and(|k| t.insert(k, v)),
            PrefixMap::V6(t) => K6::of(p).is_some_and(|k| t.insert(k, v)),
        }
    }

    pub(crate) fn remove(&mut self, p: &IpNet) -> Option<V> {
        match self {
            PrefixMap::V4(t) => t.remove(&K4::of(p)?),
            PrefixMap::V6(t) => t.remove(&K6::of(p)?),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            PrefixMap::V4(t) => t.len,
            PrefixMap::V6(t) => t.len,
        }
    }

    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = (IpNet, &V)> + '_> {
        match self {
            PrefixMap::V4(t) => Box::new(t.iter().map(|(k, v)| (k.net(), v))),
            PrefixMap::V6(t) => Box::new(t.iter().map(|(k, v)| (k.net(), v))),
        }
    }

    pub(crate) fn retain(&mut self, mut f: impl FnMut(IpNet, &mut V) -> bool) {
        match self {
            PrefixMap::V4(t) => t.retain(|k, v| f(k.net(), v)),
            PrefixMap::V6(t) => t.retain(|k, v| f(k.net(), v)),
        }
    }

    /// Removes everything, handing each value to `f`.
    pub(crate) fn drain_all(&mut self, f: impl FnMut(V)) {
        match self {
            PrefixMap::V4(t) => t.drain_all(f),
            PrefixMap::V6(t) => t.drain_all(f),
        }
    }

    /// Removes everything, handing each prefix to `f`.
    pub(crate) fn drain_all_keys(&mut self, mut f: impl FnMut(IpNet)) {
        match self {
            PrefixMap::V4(t) => {
                t.iter().for_each(|(k, _)| f(k.net()));
                t.drain_all(|_| {});
            }
            PrefixMap::V6(t) => {
                t.iter().for_each(|(k, _)| f(k.net()));
                t.drain_all(|_| {});
            }
        }
    }
}

/// A first-in first-out queue of prefixes of one family, as compact keys.
#[derive(Debug)]
pub(crate) enum PrefixQueue {
    V4(VecDeque<K4>),
    V6(VecDeque<K6>),
}

impl PrefixQueue {
    /// An empty queue for a family.
    pub(crate) fn for_family(f: AfiSafi) -> Self {
        if f.afi == Afi::IPV6 {
            PrefixQueue::V6(VecDeque::new())
        } else {
            PrefixQueue::V4(VecDeque::new())
        }
    }

    /// Appends a prefix (of the queue's address family; others are ignored).
    pub(crate) fn push(&mut self, p: &IpNet) {
        match self {
            PrefixQueue::V4(q) => q.extend(K4::of(p)),
            PrefixQueue::V6(q) => q.extend(K6::of(p)),
        }
    }

    /// Takes the oldest prefix.
    pub(crate) fn pop(&mut self) -> Option<IpNet> {
        match self {
            PrefixQueue::V4(q) => q.pop_front().map(K4::net),
            PrefixQueue::V6(q) => q.pop_front().map(K6::net),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            PrefixQueue::V4(q) => q.len(),
            PrefixQueue::V6(q) => q.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the queue and gives its memory back.
    pub(crate) fn clear(&mut self) {
        match self {
            PrefixQueue::V4(q) => *q = VecDeque::new(),
            PrefixQueue::V6(q) => *q = VecDeque::new(),
        }
    }

    /// Gives the memory back once the queue is empty after a burst.
    pub(crate) fn trim(&mut self) {
        let big = match self {
            PrefixQueue::V4(q) => q.is_empty() && q.capacity() > 1024,
            PrefixQueue::V6(q) => q.is_empty() && q.capacity() > 1024,
        };
        if big {
            self.clear();
        }
    }
}

type FamilyTable = PrefixMap<Paths>;

/// The best route of a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BestRoute {
    /// Its source.
    pub source: SourceId,
    /// Its ADD-PATH path id at the source.
    pub path_id: u32,
    /// Its attributes.
    pub attrs: Attrs,
    /// Its stale mark.
    pub stale: Staleness,
}

impl BestRoute {
    pub(crate) fn of(c: &Candidate) -> Self {
        BestRoute {
            source: c.source,
            path_id: c.path_id,
            attrs: c.attrs.clone(),
            stale: c.stale,
        }
    }

    /// Whether two best routes are the same route: same source, path and attributes. A
    /// change of the graceful-restart stale mark alone is not a change of the best route
    /// (the route and what is advertised stay the same); becoming long-lived stale is, since
    /// it changes what may be advertised (RFC 9494 §4.5).
    fn same(a: Option<&Candidate>, b: Option<&Candidate>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(x), Some(y)) => {
                x.source == y.source
                    && x.path_id == y.path_id
                    && Arc::ptr_eq(&x.attrs, &y.attrs)
                    && llgr(x.stale) == llgr(y.stale)
            }
            _ => false,
        }
    }
}

/// A change of the best route of a prefix (reported only when something changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BestChange {
    /// The family.
    pub family: AfiSafi,
    /// The prefix.
    pub prefix: IpNet,
    /// The best route before.
    pub old: Option<BestRoute>,
    /// The best route now (`None`: unreachable).
    pub new: Option<BestRoute>,
}

/// What [`LocRib::set`] did.
#[derive(Debug, Default)]
pub(crate) struct SetResult {
    /// The source's path existed before.
    pub(crate) before: bool,
    /// The source's path exists now.
    pub(crate) after: bool,
    /// The path changed (otherwise the call was a no-op).
    pub(crate) changed: bool,
    /// The change of the best route.
    pub(crate) best: Option<BestChange>,
}

/// Where the Adj-RIB-In changes of an operation go: counted always, listed when the RIB
/// reports them ([`crate::Rib::report_adj_in`]).
pub(crate) struct InLog<'a> {
    pub(crate) list: Option<&'a mut Vec<InChange>>,
    pub(crate) changed: usize,
    /// Per family index: the paths removed.
    pub(crate) removed: [usize; 4],
    pub(crate) family: usize,
}

impl InLog<'_> {
    /// Records one change (`removed`: the path is gone); `f` builds it when it is listed.
    pub(crate) fn push(&mut self, removed: bool, f: impl FnOnce() -> InChange) {
        self.changed += 1;
        if removed {
            if let Some(n) = self.removed.get_mut(self.family) {
                *n += 1;
            }
        }
        if let Some(l) = self.list.as_mut() {
            l.push(f());
        }
    }
}

/// What a bulk per-source operation does with one path.
pub(crate) enum PathOp {
    Keep,
    Changed,
    Remove,
}

/// The route table and Loc-RIB.
#[derive(Debug)]
pub struct LocRib {
    tables: [FamilyTable; 4],
}

impl Default for LocRib {
    fn default() -> Self {
        // Indexed by `AfiSafi::index`: IPv4 unicast, IPv6 unicast, IPv4 multicast, IPv6 multicast.
        LocRib {
            tables: AfiSafi::KNOWN.map(PrefixMap::for_family),
        }
    }
}

fn table_index(f: AfiSafi) -> Option<usize> {
    let i = f.index()?;
    // Guard the V4/V6 layout above.
    let v6 = f.afi == Afi::IPV6;
    (matches!(i, 1 | 3) == v6).then_some(i)
}

impl LocRib {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self, f: AfiSafi) -> Option<&FamilyTable> {
        self.tables.get(table_index(f)?)
    }

    fn table_mut(&mut self, f: AfiSafi) -> Option<&mut FamilyTable> {
        self.tables.get_mut(table_index(f)?)
    }

    /// The number of prefixes with a route, per family.
    pub fn len(&self, family: AfiSafi) -> usize {
        self.table(family).map_or(0, FamilyTable::len)
    }

    /// The number of prefixes with a route, in every family.
    pub fn total(&self) -> usize {
        self.tables.iter().map(FamilyTable::len).sum()
    }

    /// Whether there is no route at all.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The best route of a prefix.
    pub fn best(&self, family: AfiSafi, prefix: &IpNet) -> Option<BestRoute> {
        self.table(family)?.get(prefix)?.best().map(BestRoute::of)
    }

    /// The candidates of a prefix, best first.
    pub fn candidates(&self, family: AfiSafi, prefix: &IpNet) -> &[Candidate] {
        self.table(family)
            .and_then(|t| t.get(prefix))
            .map_or(&[], Paths::as_slice)
    }

    /// Looks prefixes up ahead of changing them one at a time: the cache misses of these
    /// lookups overlap, and each change then finds its part of the table in the cache.
    pub(crate) fn warm(&self, prefixes: impl Iterator<Item = (AfiSafi, IpNet)>) {
        for (family, prefix) in prefixes {
            std::hint::black_box(self.table(family).and_then(|t| t.get(&prefix)).is_some());
        }
    }

    /// Every prefix of a family with its best route.
    pub fn iter(&self, family: AfiSafi) -> impl Iterator<Item = (IpNet, BestRoute)> + '_ {
        self.table(family)
            .into_iter()
            .flat_map(|t| t.iter())
            .filter_map(|(p, e)| Some((p, BestRoute::of(e.best()?))))
    }

    /// Every path of one source in a family.
    pub(crate) fn paths_of(
        &self,
        family: AfiSafi,
        source: SourceId,
    ) -> impl Iterator<Item = (IpNet, &Candidate)> + '_ {
        self.table(family)
            .into_iter()
            .flat_map(|t| t.iter())
            .flat_map(move |(p, e)| {
                e.as_slice()
                    .iter()
                    .filter(move |c| c.source == source)
                    .map(move |c| (p, c))
            })
    }

    /// One source's path for a prefix and path id.
    pub(crate) fn path(
        &self,
        family: AfiSafi,
        source: SourceId,
        nlri: &Nlri,
    ) -> Option<&Candidate> {
        let id = nlri.path_id.unwrap_or(0);
        self.candidates(family, &nlri.prefix)
            .iter()
            .find(|c| c.source == source && c.path_id == id)
    }

    /// Sets (or with `route == None` removes) the path of `source`/`path_id` for a prefix
    /// and reruns the decision process for it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn set<'a>(
        &mut self,
        store: &mut AttrStore,
        sources: impl Fn(SourceId) -> Option<&'a SourceInfo>,
        family: AfiSafi,
        prefix: IpNet,
        source: SourceId,
        path_id: Option<u32>,
        route: Option<(Attrs, Staleness)>,
    ) -> SetResult {
        let add_path = path_id.is_some();
        let path_id = path_id.unwrap_or(0);
        let mut r = SetResult::default();
        let Some(t) = self.table_mut(family) else {
            if let Some((a, _)) = route {
                store.release(a);
            }
            return r;
        };
        let same = |c: &Candidate| c.source == source && c.path_id == path_id;
        let mut route = route;
        // The new best route is taken from the candidate, not read back from the table
        // (that read would wait for the table's cache line).
        let mut new = None;
        let found = t.get_or_insert(&prefix, || {
            let (attrs, stale) = route.take()?;
            let c = Candidate {
                attrs,
                path_id,
                source,
                stale,
                add_path,
            };
            new = Some(BestRoute::of(&c));
            Some(Paths::One(c))
        });
        let paths = match found {
            Some((paths, false)) => paths,
            Some((_, true)) => {
                r.after = true;
                r.changed = true;
                r.best = Some(BestChange {
                    family,
                    prefix,
                    old: None,
                    new,
                });
                return r;
            }
            None => {
                // No path and none to add, or a prefix of the other address family.
                if let Some((a, _)) = route {
                    store.release(a);
                }
                return r;
            }
        };
        let old_best = paths.best().cloned();
        // The single-path prefix whose path changes: the common case, done in place.
        if let Paths::One(c) = paths {
            if same(c) {
                r.before = true;
                match route {
                    Some((attrs, stale)) => {
                        r.after = true;
                        if Arc::ptr_eq(&c.attrs, &attrs) && c.stale == stale {
                            store.release(attrs);
                            return r;
                        }
                        let attrs_changed = !Arc::ptr_eq(&c.attrs, &attrs);
                        let llgr_changed = llgr(c.stale) != llgr(stale);
                        store.release(std::mem::replace(&mut c.attrs, attrs));
                        c.stale = stale;
                        r.changed = true;
                        if attrs_changed || llgr_changed {
                            r.best = Some(BestChange {
                                family,
                                prefix,
                                old: old_best.as_ref().map(BestRoute::of),
                                new: Some(BestRoute::of(c)),
                            });
                        }
                    }
                    None => {
                        if let Some(Paths::One(c)) = t.remove(&prefix) {
                            store.release(c.attrs);
                        }
                        r.changed = true;
                        r.best = Some(BestChange {
                            family,
                            prefix,
                            old: old_best.as_ref().map(BestRoute::of),
                            new: None,
                        });
                    }
                }
                return r;
            }
        }
        let mut v: Vec<Candidate> = match std::mem::replace(paths, Paths::Many(Box::default())) {
            Paths::One(c) => vec![c],
            Paths::Many(v) => *v,
        };
        match (v.iter().position(same), route) {
            (Some(i), Some((attrs, stale))) => {
                r.before = true;
                r.after = true;
                if let Some(c) = v.get_mut(i) {
                    if Arc::ptr_eq(&c.attrs, &attrs) && c.stale == stale {
                        store.release(attrs);
                    } else {
                        store.release(std::mem::replace(&mut c.attrs, attrs));
                        c.stale = stale;
                        r.changed = true;
                    }
                }
            }
            (Some(i), None) => {
                r.before = true;
                r.changed = true;
                store.release(v.swap_remove(i).attrs);
            }
            (None, Some((attrs, stale))) => {
                r.after = true;
                r.changed = true;
                v.push(Candidate {
                    attrs,
                    path_id,
                    source,
                    stale,
                    add_path,
                });
            }
            (None, None) => {}
        }
        if r.changed {
            order_best_first(&mut v, &sources);
        }
        if !store_back(t, &prefix, paths_of(v)) {
            // (unreachable: the entry was there)
        }
        let new_best = t.get(&prefix).and_then(Paths::best);
        if r.changed && !BestRoute::same(old_best.as_ref(), new_best) {
            r.best = Some(BestChange {
                family,
                prefix,
                old: old_best.as_ref().map(BestRoute::of),
                new: new_best.map(BestRoute::of),
            });
        }
        r
    }

    /// Applies `op` to every path of `source` in a family; reports the paths that changed
    /// and the best routes that changed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn for_source<'a>(
        &mut self,
        store: &mut AttrStore,
        sources: impl Fn(SourceId) -> Option<&'a SourceInfo>,
        family: AfiSafi,
        source: SourceId,
        mut op: impl FnMut(&mut Candidate) -> PathOp,
        changes: &mut InLog<'_>,
        best: &mut Vec<BestChange>,
    ) {
        let Some(t) = self.table_mut(family) else {
            return;
        };
        t.retain(|prefix, paths| {
            let touched = paths.as_slice().iter().any(|c| c.source == source);
            if !touched {
                return true;
            }
            // A single path: changed in place, no allocation.
            if let Paths::One(c) = paths {
                let nlri = c.nlri(prefix);
                let was_llgr = llgr(c.stale);
                let old = BestRoute::of(c);
                return match op(c) {
                    PathOp::Keep => true,
                    PathOp::Changed => {
                        // Only the stale mark changes: the same best route, unless it became
                        // (or stopped being) long-lived stale.
                        if was_llgr != llgr(c.stale) {
                            best.push(BestChange {
                                family,
                                prefix,
                                old: Some(old),
                                new: Some(BestRoute::of(c)),
                            });
                        }
                        changes.push(false, || InChange {
                            family,
                            nlri,
                            route: Some(AdjEntry {
                                attrs: c.attrs.clone(),
                                stale: c.stale,
                            }),
                        });
                        true
                    }
                    PathOp::Remove => {
                        store.release(c.attrs.clone());
                        changes.push(true, || InChange {
                            family,
                            nlri,
                            route: None,
                        });
                        best.push(BestChange {
                            family,
                            prefix,
                            old: Some(old),
                            new: None,
                        });
                        false
                    }
                };
            }
            let old_best = paths.best().cloned();
            let mut v: Vec<Candidate> = match std::mem::replace(paths, Paths::Many(Box::default()))
            {
                Paths::One(c) => vec![c],
                Paths::Many(v) => *v,
            };
            let mut any = false;
            v.retain_mut(|c| {
                if c.source != source {
                    return true;
                }
                let nlri = c.nlri(prefix);
                match op(c) {
                    PathOp::Keep => true,
                    PathOp::Changed => {
                        any = true;
                        changes.push(false, || InChange {
                            family,
                            nlri,
                            route: Some(AdjEntry {
                                attrs: c.attrs.clone(),
                                stale: c.stale,
                            }),
                        });
                        true
                    }
                    PathOp::Remove => {
                        any = true;
                        store.release(c.attrs.clone());
                        changes.push(true, || InChange {
                            family,
                            nlri,
                            route: None,
                        });
                        false
                    }
                }
            });
            if any {
                order_best_first(&mut v, &sources);
            }
            let new_best = v.first();
            if any && !BestRoute::same(old_best.as_ref(), new_best) {
                best.push(BestChange {
                    family,
                    prefix,
                    old: old_best.as_ref().map(BestRoute::of),
                    new: new_best.map(BestRoute::of),
                });
            }
            match paths_of(v) {
                Some(p) => {
                    *paths = p;
                    true
                }
                None => false,
            }
        });
    }
}

fn llgr(s: Staleness) -> bool {
    s == Staleness::LlgrStale
}

fn order_best_first<'a>(
    v: &mut [Candidate],
    sources: &impl Fn(SourceId) -> Option<&'a SourceInfo>,
) {
    if let Some(i) = select_best(v, sources) {
        v.swap(0, i);
    }
}

fn paths_of(mut v: Vec<Candidate>) -> Option<Paths> {
    match v.len() {
        0 => None,
        1 => v.pop().map(Paths::One),
        _ => Some(Paths::Many(Box::new(v))),
    }
}

/// Puts the paths back for a prefix (removing the entry when there are none).
fn store_back(t: &mut FamilyTable, prefix: &IpNet, p: Option<Paths>) -> bool {
    match p {
        Some(p) => match t.get_mut(prefix) {
            Some(slot) => {
                *slot = p;
                true
            }
            None => t.insert(prefix, p),
        },
        None => t.remove(prefix).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_layout() {
        assert_eq!(std::mem::size_of::<Candidate>(), 16);
        assert_eq!(std::mem::size_of::<Paths>(), 16);
        assert_eq!(std::mem::size_of::<(K4, Paths)>(), 24);
        assert_eq!(std::mem::size_of::<(K6, Paths)>(), 40);
    }

    #[test]
    fn keys_round_trip() {
        for s in ["10.0.0.0/8", "0.0.0.0/0", "255.255.255.255/32"] {
            let p: IpNet = s.parse().unwrap();
            assert_eq!(K4::of(&p).unwrap().net(), p);
        }
        for s in ["2001:db8::/32", "::/0", "ffff::1/128"] {
            let p: IpNet = s.parse().unwrap();
            assert_eq!(K6::of(&p).unwrap().net(), p);
        }
    }
}
