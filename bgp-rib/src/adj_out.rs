//! Adj-RIB-Out (RFC 4271 §3.2, §9.2): per peer, only what is owed. What the peer holds is not
//! stored: it is the peer's export of the Loc-RIB (export rules and policy, which are
//! deterministic), except for the prefixes that changed since they were last written. Those
//! are kept here, once each, with what the peer was told before the change, and the writer
//! drains them as packed UPDATEs in their latest state: a prefix that changed many times
//! while the peer was slow is sent once, and the memory a slow peer costs is bounded by the
//! table size, not by the churn. A peer that is up to date costs nothing per prefix.
//!
//! A route refresh (RFC 2918, RFC 7313) or a soft reset out re-marks every prefix the peer
//! holds, or is owed, as owed again ([`crate::Rib::refresh_out`]), and
//! [`Drained::refresh_done`] says when the last of them went (for the EoRR).
//!
//! What a peer was told is computed as the export of the best route it was told about, so
//! export policies must decide from their arguments and from state that changes only with
//! the RIB's own notifications (the route sink hears of a change after the old best route's
//! export and before the new one's).

use bgp_wire::{AfiSafi, AfiSafiSet, EncodeError};
use ipnet::IpNet;

use crate::intern::{AttrStore, Attrs};
use crate::loc::{PrefixMap, PrefixQueue};
use crate::table::PerFamily;

/// One prefix owed to the peer.
#[derive(Debug)]
pub(crate) struct Pending {
    /// What the peer was told before the change, when known (`None` with [`HOLDS`] set: it
    /// holds a route, re-marked by a refresh, whose attributes were not kept).
    pub(crate) told: Option<Attrs>,
    pub(crate) flags: u8,
}

/// The entry is in the queue.
pub(crate) const QUEUED: u8 = 1;
/// The peer holds a route for the prefix.
pub(crate) const HOLDS: u8 = 2;
/// Send the current state even if the peer has it (route refresh).
pub(crate) const RESEND: u8 = 4;
/// The entry belongs to the refresh under way.
pub(crate) const REFRESH: u8 = 8;

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
    /// Families whose re-advertisement ([`crate::Rib::refresh_out`]) is now fully written:
    /// the place for the End-of-Route-Refresh marker (RFC 7313 §4).
    pub refresh_done: Vec<AfiSafi>,
    /// Groups that could not be encoded (e.g. attributes too large for the message size);
    /// their prefixes are not sent and the peer keeps what it had; they go out when they
    /// change again.
    pub errors: Vec<EncodeError>,
}

/// The Adj-RIB-Out of one peer: the prefixes owed to it, oldest first.
///
/// Nothing for the prefixes the peer has in their current state. An owed prefix the peer
/// holds nothing for (the common case while a table loads) costs its key twice, in a set
/// and in the queue (8 octets each for IPv4, 20 for IPv6); one the peer holds a route for,
/// or that a refresh re-marked, costs an entry with what the peer was told (16 octets more)
/// instead of the set's.
#[derive(Debug)]
pub struct AdjRibOut {
    /// Owed prefixes with what the peer was told, or flags.
    pending: [PrefixMap<Pending>; 4],
    /// Owed prefixes the peer holds nothing for, with no flags: always queued.
    fresh: [PrefixMap<()>; 4],
    queue: [PrefixQueue; 4],
    eor_pending: AfiSafiSet,
    /// Per family with a refresh under way: how many of its re-marked prefixes are still
    /// queued.
    refresh: PerFamily<Option<usize>>,
    /// Per family: how many prefixes the peer holds a route for.
    advertised: PerFamily<usize>,
}

impl Default for AdjRibOut {
    fn default() -> Self {
        AdjRibOut {
            pending: AfiSafi::KNOWN.map(PrefixMap::for_family),
            fresh: AfiSafi::KNOWN.map(PrefixMap::for_family),
            queue: AfiSafi::KNOWN.map(PrefixQueue::for_family),
            eor_pending: AfiSafiSet::EMPTY,
            refresh: PerFamily::default(),
            advertised: PerFamily::default(),
        }
    }
}

/// One family's part of an [`AdjRibOut`].
struct Part<'a> {
    pending: &'a mut PrefixMap<Pending>,
    fresh: &'a mut PrefixMap<()>,
    queue: &'a mut PrefixQueue,
}

impl AdjRibOut {
    /// An empty Adj-RIB-Out.
    pub fn new() -> Self {
        Self::default()
    }

    fn part(&mut self, f: AfiSafi) -> Option<Part<'_>> {
        let i = f.index()?;
        Some(Part {
            pending: self.pending.get_mut(i)?,
            fresh: self.fresh.get_mut(i)?,
            queue: self.queue.get_mut(i)?,
        })
    }

    /// Asks for End-of-RIB markers once the initial table of these families is drained
    /// (RFC 4724 §2).
    pub(crate) fn expect_end_of_rib(&mut self, families: AfiSafiSet) {
        for f in families.iter() {
            self.eor_pending.insert(f);
        }
    }

    /// Whether End-of-RIB is still to be sent for a family.
    pub(crate) fn end_of_rib_due(&self, family: AfiSafi) -> bool {
        self.eor_pending.contains(family)
    }

    /// End-of-RIB was written for a family.
    pub(crate) fn end_of_rib_sent(&mut self, family: AfiSafi) {
        self.eor_pending.remove(family);
    }

    /// If the prefix is owed already, makes sure it is queued and returns true: what the
    /// peer was told is known, and its latest state goes at the drain.
    pub(crate) fn touch(&mut self, family: AfiSafi, prefix: IpNet) -> bool {
        let Some(t) = self.part(family) else {
            return false;
        };
        if t.fresh.get(&prefix).is_some() {
            return true;
        }
        match t.pending.get_mut(&prefix) {
            Some(e) => {
                if e.flags & QUEUED == 0 {
                    e.flags |= QUEUED;
                    t.queue.push(&prefix);
                }
                true
            }
            None => false,
        }
    }

    /// Queues a prefix that is not owed yet, with what the peer holds for it (`HOLDS` in
    /// `flags` and `told == None`: a route whose attributes are not known). The caller
    /// checked with [`AdjRibOut::touch`] that it is not owed.
    pub(crate) fn owe(
        &mut self,
        store: &mut AttrStore,
        family: AfiSafi,
        prefix: IpNet,
        told: Option<Attrs>,
        flags: u8,
    ) {
        let Some(t) = self.part(family) else {
            if let Some(a) = told {
                store.release(a);
            }
            return;
        };
        let inserted = match told {
            None if flags == 0 => t.fresh.insert(&prefix, ()),
            told => {
                let holds = if told.is_some() { HOLDS } else { 0 };
                let entry = Pending {
                    told,
                    flags: flags | holds | QUEUED,
                };
                t.pending.insert(&prefix, entry)
            }
        };
        if inserted {
            t.queue.push(&prefix);
        }
    }

    /// Marks for a refresh: every owed prefix is re-sent and counts for the refresh; the
    /// caller adds the prefixes the peer holds in their current state with
    /// [`AdjRibOut::owe`] and `HOLDS | RESEND | REFRESH`, then calls
    /// [`AdjRibOut::refresh_started`].
    pub(crate) fn refresh_mark_owed(&mut self, family: AfiSafi) -> bool {
        let Some(t) = self.part(family) else {
            return false;
        };
        // The fresh ones become entries, to carry the mark (they stay queued where they are).
        let mut fresh = Vec::with_capacity(t.fresh.len());
        t.fresh.drain_all_keys(|p| fresh.push(p));
        for prefix in fresh {
            let e = Pending {
                told: None,
                flags: QUEUED,
            };
            t.pending.insert(&prefix, e);
        }
        let queue = &mut *t.queue;
        t.pending.retain(|prefix, e| {
            e.flags |= RESEND | REFRESH;
            if e.flags & QUEUED == 0 {
                e.flags |= QUEUED;
                queue.push(&prefix);
            }
            true
        });
        true
    }

    /// Counts the re-marked prefixes of a refresh.
    pub(crate) fn refresh_started(&mut self, family: AfiSafi) {
        let n = family
            .index()
            .and_then(|i| self.pending.get(i))
            .map_or(0, |t| {
                t.iter().filter(|(_, e)| e.flags & REFRESH != 0).count()
            });
        if let Some(r) = self.refresh.get_mut(family) {
            *r = Some(n);
        }
    }

    /// Whether a refresh of the family ([`crate::Rib::refresh_out`]) is still being
    /// written.
    pub fn refresh_pending(&self, family: AfiSafi) -> bool {
        self.refresh.get(family).is_some_and(Option::is_some)
    }

    /// Whether the prefix is owed (queued or held back after an encoding error).
    pub fn is_owed(&self, family: AfiSafi, prefix: &IpNet) -> bool {
        let Some(i) = family.index() else {
            return false;
        };
        self.pending.get(i).is_some_and(|t| t.get(prefix).is_some())
            || self.fresh.get(i).is_some_and(|t| t.get(prefix).is_some())
    }

    /// The number of prefixes waiting to be sent.
    pub fn pending(&self) -> usize {
        self.queue.iter().map(PrefixQueue::len).sum()
    }

    /// The number of entries held, all families: prefixes owed to the peer. Bounded by the
    /// table size, never by churn; zero once the peer is up to date.
    pub fn entries(&self) -> usize {
        self.pending.iter().map(PrefixMap::len).sum::<usize>()
            + self.fresh.iter().map(PrefixMap::len).sum::<usize>()
    }

    /// The number of prefixes the peer holds a route for (as far as what was written goes).
    pub fn told_count(&self, family: AfiSafi) -> usize {
        self.advertised.get(family).copied().unwrap_or(0)
    }

    /// Records that the peer holds `told` routes of a family that nothing is owed for (a
    /// session taken over with the peer holding the export already).
    pub(crate) fn resume(&mut self, family: AfiSafi, told: usize) {
        if let Some(n) = self.advertised.get_mut(family) {
            *n = told;
        }
    }

    /// Forgets everything (the session went down).
    pub(crate) fn clear(&mut self, store: &mut AttrStore) {
        for t in self.pending.iter_mut() {
            t.drain_all(|e| {
                if let Some(a) = e.told {
                    store.release(a);
                }
            });
        }
        for t in self.fresh.iter_mut() {
            t.drain_all(|()| {});
        }
        for q in self.queue.iter_mut() {
            q.clear();
        }
        self.eor_pending = AfiSafiSet::EMPTY;
        self.refresh = PerFamily::default();
        self.advertised = PerFamily::default();
    }

    /// Takes up to `max` queued prefixes of a family, oldest first: `(prefix, told, flags)`.
    /// Entries with flags or a known `told` stay in the table (no longer queued) until
    /// [`AdjRibOut::settle`] or [`AdjRibOut::park`].
    pub(crate) fn take(&mut self, family: AfiSafi, max: usize) -> Vec<(IpNet, Option<Attrs>, u8)> {
        let Some(t) = self.part(family) else {
            return Vec::new();
        };
        let n = t.queue.len().min(max);
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(prefix) = t.queue.pop() else { break };
            if t.fresh.remove(&prefix).is_some() {
                v.push((prefix, None, 0));
            } else if let Some(e) = t.pending.get_mut(&prefix) {
                e.flags &= !QUEUED;
                v.push((prefix, e.told.clone(), e.flags));
            }
        }
        t.queue.trim();
        v
    }

    /// Whether the queue of a family is empty.
    pub(crate) fn queue_empty(&self, family: AfiSafi) -> bool {
        family
            .index()
            .and_then(|i| self.queue.get(i))
            .is_none_or(PrefixQueue::is_empty)
    }

    /// A taken prefix (with the `flags` [`AdjRibOut::take`] gave) is settled: written (the
    /// peer now holds `holds_now`) or had nothing to send. Its entry goes (nothing changes
    /// the Loc-RIB during a drain).
    pub(crate) fn settle(
        &mut self,
        store: &mut AttrStore,
        family: AfiSafi,
        prefix: &IpNet,
        flags: u8,
        holds_now: bool,
    ) {
        let Some(i) = family.index() else { return };
        let (Some(t), Some(adv), Some(r)) = (
            self.pending.get_mut(i),
            self.advertised.get_mut(family),
            self.refresh.get_mut(family),
        ) else {
            return;
        };
        match (flags & HOLDS != 0, holds_now) {
            (false, true) => *adv += 1,
            (true, false) => *adv = adv.saturating_sub(1),
            _ => {}
        }
        if flags & REFRESH != 0 {
            if let Some(left) = r.as_mut() {
                *left = left.saturating_sub(1);
            }
        }
        if let Some(e) = t.remove(prefix) {
            if let Some(a) = e.told {
                store.release(a);
            }
        }
    }

    /// A taken prefix could not be written: the peer keeps what it had, the entry stays
    /// (not queued) until the prefix changes again.
    pub(crate) fn park(&mut self, family: AfiSafi, prefix: &IpNet, flags: u8) {
        let Some(i) = family.index() else { return };
        let (Some(t), Some(r)) = (self.pending.get_mut(i), self.refresh.get_mut(family)) else {
            return;
        };
        if flags & REFRESH != 0 {
            if let Some(left) = r.as_mut() {
                *left = left.saturating_sub(1);
            }
        }
        match t.get_mut(prefix) {
            Some(e) => e.flags &= !REFRESH,
            None => {
                // A fresh one: the peer holds nothing for it.
                let e = Pending {
                    told: None,
                    flags: 0,
                };
                t.insert(prefix, e);
            }
        }
    }

    /// Reports the refresh of a family as done once none of its prefixes is queued.
    pub(crate) fn refresh_check(&mut self, family: AfiSafi) -> bool {
        match self.refresh.get_mut(family) {
            Some(r @ Some(0)) => {
                *r = None;
                true
            }
            _ => false,
        }
    }
}
