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

use std::collections::VecDeque;

use bgp_wire::{AfiSafi, AfiSafiSet, EncodeError};
use ipnet::IpNet;

use crate::intern::{AttrStore, Attrs};
use crate::loc::PrefixMap;
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
/// One entry per owed prefix (8 octets of key for IPv4, 20 for IPv6, 16 of value, and its
/// place in the queue); nothing for the prefixes the peer has in their current state.
#[derive(Debug)]
pub struct AdjRibOut {
    pending: [PrefixMap<Pending>; 4],
    queue: PerFamily<VecDeque<IpNet>>,
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
            queue: PerFamily::default(),
            eor_pending: AfiSafiSet::EMPTY,
            refresh: PerFamily::default(),
            advertised: PerFamily::default(),
        }
    }
}

impl AdjRibOut {
    /// An empty Adj-RIB-Out.
    pub fn new() -> Self {
        Self::default()
    }

    fn parts(&mut self, f: AfiSafi) -> Option<(&mut PrefixMap<Pending>, &mut VecDeque<IpNet>)> {
        let t = self.pending.get_mut(f.index()?)?;
        let q = self.queue.get_mut(f)?;
        Some((t, q))
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
        let Some((t, q)) = self.parts(family) else {
            return false;
        };
        match t.get_mut(&prefix) {
            Some(e) => {
                if e.flags & QUEUED == 0 {
                    e.flags |= QUEUED;
                    q.push_back(prefix);
                }
                true
            }
            None => false,
        }
    }

    /// Queues a prefix that is not owed yet, with what the peer holds for it (`holds` set
    /// and `told == None`: a route whose attributes are not known). The caller checked with
    /// [`AdjRibOut::touch`] that it is not owed.
    pub(crate) fn owe(
        &mut self,
        store: &mut AttrStore,
        family: AfiSafi,
        prefix: IpNet,
        told: Option<Attrs>,
        flags: u8,
    ) {
        let Some((t, q)) = self.parts(family) else {
            if let Some(a) = told {
                store.release(a);
            }
            return;
        };
        let holds = if told.is_some() { HOLDS } else { 0 };
        let entry = Pending {
            told,
            flags: flags | holds | QUEUED,
        };
        if t.insert(&prefix, entry) {
            q.push_back(prefix);
        }
    }

    /// Marks for a refresh: every owed prefix (they were re-marked as the refresh started)
    /// is re-sent; the caller adds the prefixes the peer holds in their current state with
    /// [`AdjRibOut::owe`] and `RESEND | REFRESH`, then calls [`AdjRibOut::refresh_started`].
    pub(crate) fn refresh_mark_owed(&mut self, family: AfiSafi) -> bool {
        let Some((t, q)) = self.parts(family) else {
            return false;
        };
        t.retain(|prefix, e| {
            e.flags |= RESEND | REFRESH;
            if e.flags & QUEUED == 0 {
                e.flags |= QUEUED;
                q.push_back(prefix);
            }
            true
        });
        true
    }

    /// Counts the re-marked prefixes of a refresh.
    pub(crate) fn refresh_started(&mut self, family: AfiSafi) {
        let n = self
            .pending
            .get(family.index().unwrap_or(usize::MAX))
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
        self.pending
            .get(family.index().unwrap_or(usize::MAX))
            .is_some_and(|t| t.get(prefix).is_some())
    }

    /// The number of prefixes waiting to be sent.
    pub fn pending(&self) -> usize {
        self.queue.0.iter().map(VecDeque::len).sum()
    }

    /// The number of entries held, all families: prefixes owed to the peer. Bounded by the
    /// table size, never by churn; zero once the peer is up to date.
    pub fn entries(&self) -> usize {
        self.pending.iter().map(PrefixMap::len).sum()
    }

    /// The number of prefixes the peer holds a route for (as far as what was written goes).
    pub fn told_count(&self, family: AfiSafi) -> usize {
        self.advertised.get(family).copied().unwrap_or(0)
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
        for q in self.queue.0.iter_mut() {
            *q = VecDeque::new();
        }
        self.eor_pending = AfiSafiSet::EMPTY;
        self.refresh = PerFamily::default();
        self.advertised = PerFamily::default();
    }

    /// Takes up to `max` queued prefixes of a family, oldest first, with their entries
    /// (still in the table, no longer queued): `(prefix, told, flags)`.
    pub(crate) fn take(&mut self, family: AfiSafi, max: usize) -> Vec<(IpNet, Option<Attrs>, u8)> {
        let Some((t, q)) = self.parts(family) else {
            return Vec::new();
        };
        let n = q.len().min(max);
        let mut v = Vec::with_capacity(n);
        for prefix in q.drain(..n) {
            if let Some(e) = t.get_mut(&prefix) {
                e.flags &= !QUEUED;
                v.push((prefix, e.told.clone(), e.flags));
            }
        }
        if q.is_empty() && q.capacity() > 1024 {
            *q = VecDeque::new();
        }
        v
    }

    /// Whether the queue of a family is empty.
    pub(crate) fn queue_empty(&self, family: AfiSafi) -> bool {
        self.queue.get(family).is_none_or(VecDeque::is_empty)
    }

    /// A taken prefix is settled: written (the peer now holds `holds_now`) or had nothing
    /// to send. Its entry goes (nothing changes the Loc-RIB during a drain).
    pub(crate) fn settle(
        &mut self,
        store: &mut AttrStore,
        family: AfiSafi,
        prefix: &IpNet,
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
        let Some(e) = t.get_mut(prefix) else { return };
        let held = e.flags & HOLDS != 0;
        match (held, holds_now) {
            (false, true) => *adv += 1,
            (true, false) => *adv = adv.saturating_sub(1),
            _ => {}
        }
        if e.flags & REFRESH != 0 {
            e.flags &= !REFRESH;
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
    pub(crate) fn park(&mut self, family: AfiSafi, prefix: &IpNet) {
        let Some(i) = family.index() else { return };
        let (Some(t), Some(r)) = (self.pending.get_mut(i), self.refresh.get_mut(family)) else {
            return;
        };
        if let Some(e) = t.get_mut(prefix) {
            if e.flags & REFRESH != 0 {
                e.flags &= !REFRESH;
                if let Some(left) = r.as_mut() {
                    *left = left.saturating_sub(1);
                }
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
