//! Adj-RIB-Out (RFC 4271 §3.2, §9.2): per peer, what the peer has been told and what it
//! should have. The writer drains the difference as packed UPDATEs, so a prefix that changed
//! many times while the peer was slow is sent once, in its latest state, and the memory a
//! slow peer costs is bounded by the table size, not by the churn.
//!
//! A route refresh (RFC 2918, RFC 7313) or a soft reset out re-marks what the peer holds as
//! owed again ([`AdjRibOut::refresh`]): the same entries, no copies, drained as usual, and
//! [`Drained::refresh_done`] says when the last of them went (for the EoRR).

use std::sync::Arc;

use bgp_wire::{AfiSafi, AfiSafiSet, Context, EncodeError, Message, Nlri, Update};
use bgp_wire::{pack_announce, pack_withdraw};
use bytes::BytesMut;
use ipnet::IpNet;

use crate::intern::{AttrStore, Attrs};
use crate::loc::PrefixMap;
use crate::table::{FastMap, PerFamily};

#[derive(Clone, Debug)]
pub(crate) struct OutEntry {
    told: Option<Attrs>,
    should: Option<Attrs>,
    queued: bool,
    /// Send `should` even if the peer was told it already (route refresh).
    resend: bool,
}

fn same(a: &Option<Attrs>, b: &Option<Attrs>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// What one drain wrote.
#[derive(Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Drained {
    /// UPDATE messages appended.
    pub messages: usize,
    /// Prefixes announced.
    pub announced: usize,
    /// Prefixes withdrawn.
    pub withdrawn: usize,
    /// End-of-RIB markers sent, by family.
    pub end_of_rib: Vec<AfiSafi>,
    /// Families whose re-advertisement ([`AdjRibOut::refresh`]) is now fully written: the
    /// place for the End-of-Route-Refresh marker (RFC 7313 §4).
    pub refresh_done: Vec<AfiSafi>,
    /// Groups that could not be encoded (e.g. attributes too large for the message size);
    /// their prefixes are not sent and stay not told; they go out when they change again.
    pub errors: Vec<EncodeError>,
}

/// The Adj-RIB-Out of one peer.
///
/// One entry per prefix (8 octets of key for IPv4, 20 for IPv6, 24 of value): we advertise
/// one path per prefix, so no path id is kept.
#[derive(Debug)]
pub struct AdjRibOut {
    tables: [PrefixMap<OutEntry>; 4],
    queue: PerFamily<Vec<IpNet>>,
    eor_pending: AfiSafiSet,
    /// Per family with a refresh under way: how many queued prefixes are still ahead of its
    /// end (the queue is drained oldest first, so everything re-marked is ahead of it).
    refresh: PerFamily<Option<usize>>,
}

impl Default for AdjRibOut {
    fn default() -> Self {
        AdjRibOut {
            tables: AfiSafi::KNOWN.map(PrefixMap::for_family),
            queue: PerFamily::default(),
            eor_pending: AfiSafiSet::EMPTY,
            refresh: PerFamily::default(),
        }
    }
}

impl AdjRibOut {
    /// An empty Adj-RIB-Out.
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self, f: AfiSafi) -> Option<&PrefixMap<OutEntry>> {
        self.tables.get(f.index()?)
    }

    /// Asks for End-of-RIB markers once the initial table of these families is drained
    /// (RFC 4724 §2).
    pub fn expect_end_of_rib(&mut self, families: AfiSafiSet) {
        for f in families.iter() {
            self.eor_pending.insert(f);
        }
    }

    /// Sets what the peer should have for a prefix (`None`: nothing). A no-op when nothing
    /// changes; otherwise the prefix is queued once, however often it changes before the
    /// next drain.
    pub fn set(
        &mut self,
        store: &mut AttrStore,
        family: AfiSafi,
        prefix: IpNet,
        should: Option<Attrs>,
    ) {
        let (Some(t), Some(q)) = (
            family.index().and_then(|i| self.tables.get_mut(i)),
            self.queue.get_mut(family),
        ) else {
            if let Some(a) = should {
                store.release(a);
            }
            return;
        };
        match t.get_mut(&prefix) {
            Some(e) => {
                if same(&e.should, &should) {
                    if let Some(a) = should {
                        store.release(a);
                    }
                    return;
                }
                if let Some(old) = std::mem::replace(&mut e.should, should) {
                    store.release(old);
                }
                if !e.queued {
                    e.queued = true;
                    q.push(prefix);
                }
            }
            None => {
                let Some(a) = should else {
                    return;
                };
                let entry = OutEntry {
                    told: None,
                    should: Some(a.clone()),
                    queued: true,
                    resend: false,
                };
                if t.insert(&prefix, entry) {
                    q.push(prefix);
                }
                store.release(a);
            }
        }
    }

    /// Marks everything the peer has been told, or should have, for a family as owed again,
    /// so that the next drains send it all once more in its current state (route refresh,
    /// RFC 2918 §4; soft reset out). Only the entries are re-marked: no copies. Calling it
    /// again before the drain changes nothing but moves the end of the refresh past what was
    /// queued meanwhile. The drain that writes the last re-marked prefix reports the family
    /// in [`Drained::refresh_done`]. Returns false for a family the RIB does not handle.
    pub fn refresh(&mut self, family: AfiSafi) -> bool {
        let (Some(t), Some(q), Some(r)) = (
            family.index().and_then(|i| self.tables.get_mut(i)),
            self.queue.get_mut(family),
            self.refresh.get_mut(family),
        ) else {
            return false;
        };
        t.retain(|prefix, e| {
            if e.told.is_some() || e.should.is_some() {
                e.resend = true;
                if !e.queued {
                    e.queued = true;
                    q.push(prefix);
                }
            }
            true
        });
        *r = Some(q.len());
        true
    }

    /// Whether a refresh of the family ([`AdjRibOut::refresh`]) is still being written.
    pub fn refresh_pending(&self, family: AfiSafi) -> bool {
        self.refresh.get(family).is_some_and(Option::is_some)
    }

    /// What the peer has been told about a prefix.
    pub fn told(&self, family: AfiSafi, prefix: &IpNet) -> Option<&Attrs> {
        self.table(family)?.get(prefix)?.told.as_ref()
    }

    /// What the peer should have for a prefix.
    pub fn should(&self, family: AfiSafi, prefix: &IpNet) -> Option<&Attrs> {
        self.table(family)?.get(prefix)?.should.as_ref()
    }

    /// The number of prefixes waiting to be sent.
    pub fn pending(&self) -> usize {
        self.queue.0.iter().map(|q| q.len()).sum()
    }

    /// The number of entries held, all families: prefixes the peer was told about or is
    /// owed. Bounded by the table size, never by churn.
    pub fn entries(&self) -> usize {
        self.tables.iter().map(|t| t.len()).sum()
    }

    /// The number of prefixes the peer has been told about.
    pub fn told_count(&self, family: AfiSafi) -> usize {
        self.table(family)
            .map_or(0, |t| t.iter().filter(|(_, e)| e.told.is_some()).count())
    }

    /// Forgets everything (the session went down).
    pub fn clear(&mut self, store: &mut AttrStore) {
        for t in self.tables.iter_mut() {
            t.drain_all(|e| {
                for a in [e.told, e.should].into_iter().flatten() {
                    store.release(a);
                }
            });
        }
        for q in self.queue.0.iter_mut() {
            q.clear();
        }
        self.eor_pending = AfiSafiSet::EMPTY;
        self.refresh = PerFamily::default();
    }

    /// Appends UPDATEs for everything queued: withdrawals first, then announcements grouped
    /// by attribute set, each group packed as tightly as `ctx.max_message_len` allows; then
    /// the End-of-RIB markers that are due, and the refreshes that are done are reported.
    pub fn drain(&mut self, store: &mut AttrStore, ctx: &Context, out: &mut BytesMut) -> Drained {
        self.drain_limited(store, ctx, out, usize::MAX)
    }

    /// Like [`AdjRibOut::drain`], but handles at most `max_prefixes` queued prefixes (the
    /// oldest first), so that a writer caps its work per wake-up; the rest stays queued.
    /// End-of-RIB of a family follows only once its queue is empty; a refresh is done once
    /// the prefixes queued when it started are drained.
    pub fn drain_limited(
        &mut self,
        store: &mut AttrStore,
        ctx: &Context,
        out: &mut BytesMut,
        max_prefixes: usize,
    ) -> Drained {
        let mut d = Drained::default();
        let mut budget = max_prefixes;
        for family in AfiSafi::KNOWN {
            let (Some(t), Some(q), Some(refresh)) = (
                family.index().and_then(|i| self.tables.get_mut(i)),
                self.queue.get_mut(family),
                self.refresh.get_mut(family),
            ) else {
                continue;
            };
            let take = q.len().min(budget);
            budget -= take;
            let queue: Vec<IpNet> = if take == q.len() {
                std::mem::take(q)
            } else {
                q.drain(..take).collect()
            };
            let queue_empty = q.is_empty();
            let mut withdraws: Vec<IpNet> = Vec::new();
            let mut groups: FastMap<usize, (Attrs, Vec<IpNet>)> = FastMap::default();
            for nlri in queue {
                let Some(e) = t.get_mut(&nlri) else { continue };
                e.queued = false;
                let resend = std::mem::take(&mut e.resend) && e.should.is_some();
                if same(&e.told, &e.should) && !resend {
                    // Announced and withdrawn again before the peer heard of it: nothing
                    // told, nothing owed, so the entry goes (no residue per prefix churned).
                    if e.told.is_none() && e.should.is_none() {
                        t.remove(&nlri);
                    }
                    continue;
                }
                match &e.should {
                    None => withdraws.push(nlri),
                    Some(a) => {
                        groups
                            .entry(Arc::as_ptr(a) as usize)
                            .or_insert_with(|| (a.clone(), Vec::new()))
                            .1
                            .push(nlri);
                    }
                }
            }
            let mut done: Vec<IpNet> = Vec::new();
            if !withdraws.is_empty() {
                match pack_withdraw(ctx, family, withdraws.iter().map(|p| Nlri::new(*p)), out) {
                    Ok(n) => {
                        d.messages += n;
                        d.withdrawn += withdraws.len();
                        done.extend(withdraws);
                    }
                    Err(e) => d.errors.push(e),
                }
            }
            for (_, (a, nlris)) in groups {
                let r = pack_announce(
                    ctx,
                    &a.attrs,
                    family,
                    a.mp_next_hop.as_ref(),
                    nlris.iter().map(|p| Nlri::new(*p)),
                    out,
                );
                match r {
                    Ok(n) => {
                        d.messages += n;
                        d.announced += nlris.len();
                        done.extend(nlris);
                    }
                    Err(e) => d.errors.push(e),
                }
                store.release(a);
            }
            for nlri in done {
                let Some(e) = t.get_mut(&nlri) else { continue };
                let should = e.should.clone();
                if let Some(old) = std::mem::replace(&mut e.told, should) {
                    store.release(old);
                }
                if e.told.is_none() && e.should.is_none() {
                    t.remove(&nlri);
                }
            }
            if queue_empty && self.eor_pending.contains(family) {
                let eor = Message::Update(Update::end_of_rib_marker(family));
                if eor.encode(ctx, out).is_ok() {
                    d.messages += 1;
                    d.end_of_rib.push(family);
                }
                self.eor_pending.remove(family);
            }
            if let Some(left) = *refresh {
                let left = left.saturating_sub(take);
                *refresh = (left > 0).then_some(left);
                if left == 0 {
                    d.refresh_done.push(family);
                }
            }
        }
        d
    }
}
