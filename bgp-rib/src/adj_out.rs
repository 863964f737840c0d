//! Adj-RIB-Out (RFC 4271 §3.2, §9.2): per peer, what the peer has been told and what it
//! should have. The writer drains the difference as packed UPDATEs, so a prefix that changed
//! many times while the peer was slow is sent once, in its latest state, and the memory a
//! slow peer costs is bounded by the table size, not by the churn.

use std::sync::Arc;

use bgp_wire::{AfiSafi, AfiSafiSet, Context, EncodeError, Message, Nlri, Update};
use bgp_wire::{pack_announce, pack_withdraw};
use bytes::BytesMut;

use crate::intern::{AttrStore, Attrs};
use crate::table::{FastMap, PerFamily};

#[derive(Clone, Debug)]
struct OutEntry {
    told: Option<Attrs>,
    should: Option<Attrs>,
    queued: bool,
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
    /// Groups that could not be encoded (e.g. attributes too large for the message size);
    /// their prefixes stay queued as not told.
    pub errors: Vec<EncodeError>,
}

/// The Adj-RIB-Out of one peer.
#[derive(Debug, Default)]
pub struct AdjRibOut {
    tables: PerFamily<FastMap<Nlri, OutEntry>>,
    queue: PerFamily<Vec<Nlri>>,
    eor_pending: AfiSafiSet,
}

impl AdjRibOut {
    /// An empty Adj-RIB-Out.
    pub fn new() -> Self {
        Self::default()
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
        nlri: Nlri,
        should: Option<Attrs>,
    ) {
        let (Some(t), Some(q)) = (self.tables.get_mut(family), self.queue.get_mut(family)) else {
            return;
        };
        match t.get_mut(&nlri) {
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
                    q.push(nlri);
                }
            }
            None => {
                if should.is_none() {
                    return;
                }
                t.insert(
                    nlri,
                    OutEntry {
                        told: None,
                        should,
                        queued: true,
                    },
                );
                q.push(nlri);
            }
        }
    }

    /// What the peer has been told about a prefix.
    pub fn told(&self, family: AfiSafi, nlri: &Nlri) -> Option<&Attrs> {
        self.tables.get(family)?.get(nlri)?.told.as_ref()
    }

    /// What the peer should have for a prefix.
    pub fn should(&self, family: AfiSafi, nlri: &Nlri) -> Option<&Attrs> {
        self.tables.get(family)?.get(nlri)?.should.as_ref()
    }

    /// The number of prefixes waiting to be sent.
    pub fn pending(&self) -> usize {
        self.queue.0.iter().map(|q| q.len()).sum()
    }

    /// The number of prefixes the peer has been told about.
    pub fn told_count(&self, family: AfiSafi) -> usize {
        self.tables
            .get(family)
            .map_or(0, |t| t.values().filter(|e| e.told.is_some()).count())
    }

    /// Forgets everything (the session went down).
    pub fn clear(&mut self, store: &mut AttrStore) {
        for t in self.tables.0.iter_mut() {
            for (_, e) in t.drain() {
                for a in [e.told, e.should].into_iter().flatten() {
                    store.release(a);
                }
            }
        }
        for q in self.queue.0.iter_mut() {
            q.clear();
        }
        self.eor_pending = AfiSafiSet::EMPTY;
    }

    /// Appends UPDATEs for everything queued: withdrawals first, then announcements grouped
    /// by attribute set, each group packed as tightly as `ctx.max_message_len` allows; then
    /// the End-of-RIB markers that are due.
    pub fn drain(&mut self, store: &mut AttrStore, ctx: &Context, out: &mut BytesMut) -> Drained {
        let mut d = Drained::default();
        for family in AfiSafi::KNOWN {
            let (Some(t), Some(q)) = (self.tables.get_mut(family), self.queue.get_mut(family))
            else {
                continue;
            };
            let queue = std::mem::take(q);
            let mut withdraws: Vec<Nlri> = Vec::new();
            let mut groups: FastMap<usize, (Attrs, Vec<Nlri>)> = FastMap::default();
            for nlri in queue {
                let Some(e) = t.get_mut(&nlri) else { continue };
                e.queued = false;
                if same(&e.told, &e.should) {
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
            let mut done: Vec<Nlri> = Vec::new();
            if !withdraws.is_empty() {
                match pack_withdraw(ctx, family, withdraws.iter().copied(), out) {
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
                    nlris.iter().copied(),
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
            if self.eor_pending.contains(family) {
                let eor = Message::Update(Update::end_of_rib_marker(family));
                if eor.encode(ctx, out).is_ok() {
                    d.messages += 1;
                    d.end_of_rib.push(family);
                }
                self.eor_pending.remove(family);
            }
        }
        d
    }
}
