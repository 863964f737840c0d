//! Adj-RIB-In (RFC 4271 §3.2): the routes one peer sent, per AFI/SAFI and ADD-PATH path id,
//! with the stale marks of graceful restart (RFC 4724 §4.2) and long-lived graceful restart
//! (RFC 9494), and max-prefix accounting.

use std::sync::Arc;

use bgp_wire::{AfiSafi, Community, Nlri};

use crate::intern::{AttrStore, Attrs};
use crate::table::{FastMap, PerFamily};

/// How stale a route is. The order is the preference order: fresh routes win over stale
/// ones (RFC 4724 §4.2 keeps them only as a fallback), long-lived stale ones lose to both
/// (RFC 9494 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Staleness {
    /// Received on the current session.
    #[default]
    Fresh,
    /// Kept across a restart of the peer (RFC 4724).
    Stale,
    /// Kept past the restart time as long-lived stale (RFC 9494).
    LlgrStale,
}

/// One route in an Adj-RIB-In.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdjEntry {
    /// The interned attributes (after import policy).
    pub attrs: Attrs,
    /// The stale mark.
    pub stale: Staleness,
}

/// One change of an Adj-RIB-In: the route for `nlri` is now `route` (`None`: gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InChange {
    /// The family.
    pub family: AfiSafi,
    /// The prefix and path id.
    pub nlri: Nlri,
    /// The new state of the route, `None` when withdrawn.
    pub route: Option<AdjEntry>,
}

/// The routes one peer sent (post import policy).
#[derive(Debug, Default)]
pub struct AdjRibIn {
    tables: PerFamily<FastMap<Nlri, AdjEntry>>,
    max_prefix: PerFamily<Option<usize>>,
}

impl AdjRibIn {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the max-prefix limit of a family (RFC 4486 §4: Cease, Maximum Number of Prefixes
    /// Reached, is the session layer's decision).
    pub fn set_max_prefix(&mut self, family: AfiSafi, limit: Option<usize>) {
        if let Some(m) = self.max_prefix.get_mut(family) {
            *m = limit;
        }
    }

    /// Whether the family holds more routes than its limit.
    pub fn exceeds_max_prefix(&self, family: AfiSafi) -> bool {
        match self.max_prefix.get(family) {
            Some(Some(limit)) => self.len(family) > *limit,
            _ => false,
        }
    }

    /// The number of routes of a family.
    pub fn len(&self, family: AfiSafi) -> usize {
        self.tables.get(family).map_or(0, |t| t.len())
    }

    /// The number of routes of every family.
    pub fn total(&self) -> usize {
        self.tables.0.iter().map(|t| t.len()).sum()
    }

    /// Whether the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The route for a prefix and path id.
    pub fn get(&self, family: AfiSafi, nlri: &Nlri) -> Option<&AdjEntry> {
        self.tables.get(family)?.get(nlri)
    }

    /// The routes of a family.
    pub fn iter(&self, family: AfiSafi) -> impl Iterator<Item = (&Nlri, &AdjEntry)> {
        self.tables.get(family).into_iter().flat_map(|t| t.iter())
    }

    /// Stores an announced route. Returns the change, or `None` when the route is already
    /// there, fresh and with the same attributes (a no-op, STYLE 11). Re-announcing a stale
    /// route makes it fresh again (RFC 4724 §4.2).
    pub fn announce(
        &mut self,
        store: &mut AttrStore,
        family: AfiSafi,
        nlri: Nlri,
        attrs: Attrs,
    ) -> Option<InChange> {
        let t = self.tables.get_mut(family)?;
        let entry = AdjEntry {
            attrs,
            stale: Staleness::Fresh,
        };
        match t.get_mut(&nlri) {
            Some(e) if Arc::ptr_eq(&e.attrs, &entry.attrs) && e.stale == Staleness::Fresh => {
                store.release(entry.attrs);
                return None;
            }
            Some(e) => {
                let old = std::mem::replace(e, entry.clone());
                store.release(old.attrs);
            }
            None => {
                t.insert(nlri, entry.clone());
            }
        }
        Some(InChange {
            family,
            nlri,
            route: Some(entry),
        })
    }

    /// Removes a withdrawn route; `None` when there was none (a no-op).
    pub fn withdraw(
        &mut self,
        store: &mut AttrStore,
        family: AfiSafi,
        nlri: &Nlri,
    ) -> Option<InChange> {
        let old = self.tables.get_mut(family)?.remove(nlri)?;
        store.release(old.attrs);
        Some(InChange {
            family,
            nlri: *nlri,
            route: None,
        })
    }

    /// Marks every route of the family stale (RFC 4724 §4.2, the peer restarts). Routes
    /// already stale stay as they are (a second restart does not reset their age).
    pub fn mark_stale(&mut self, family: AfiSafi) -> Vec<InChange> {
        let mut changes = Vec::new();
        if let Some(t) = self.tables.get_mut(family) {
            for (n, e) in t.iter_mut() {
                if e.stale == Staleness::Fresh {
                    e.stale = Staleness::Stale;
                    changes.push(InChange {
                        family,
                        nlri: *n,
                        route: Some(e.clone()),
                    });
                }
            }
        }
        changes
    }

    /// Moves the stale routes of the family to long-lived stale (RFC 9494 §4.2); routes that
    /// carry NO_LLGR are removed instead.
    pub fn mark_llgr_stale(&mut self, store: &mut AttrStore, family: AfiSafi) -> Vec<InChange> {
        let mut changes = Vec::new();
        let Some(t) = self.tables.get_mut(family) else {
            return changes;
        };
        t.retain(|n, e| {
            if e.stale == Staleness::Fresh || e.stale == Staleness::LlgrStale {
                return true;
            }
            let no_llgr = e
                .attrs
                .attrs
                .communities
                .as_ref()
                .is_some_and(|c| c.contains(Community::NO_LLGR));
            if no_llgr {
                store.release(e.attrs.clone());
                changes.push(InChange {
                    family,
                    nlri: *n,
                    route: None,
                });
                return false;
            }
            e.stale = Staleness::LlgrStale;
            changes.push(InChange {
                family,
                nlri: *n,
                route: Some(e.clone()),
            });
            true
        });
        changes
    }

    /// Removes the routes of the family that are still stale (End-of-RIB, or a timer).
    pub fn purge_stale(&mut self, store: &mut AttrStore, family: AfiSafi) -> Vec<InChange> {
        self.remove_where(store, family, |e| e.stale != Staleness::Fresh)
    }

    /// Removes every route of the family.
    pub fn clear_family(&mut self, store: &mut AttrStore, family: AfiSafi) -> Vec<InChange> {
        self.remove_where(store, family, |_| true)
    }

    /// Removes every route.
    pub fn clear(&mut self, store: &mut AttrStore) -> Vec<InChange> {
        let mut v = Vec::new();
        for f in AfiSafi::KNOWN {
            v.extend(self.clear_family(store, f));
        }
        v
    }

    fn remove_where(
        &mut self,
        store: &mut AttrStore,
        family: AfiSafi,
        mut f: impl FnMut(&AdjEntry) -> bool,
    ) -> Vec<InChange> {
        let mut changes = Vec::new();
        if let Some(t) = self.tables.get_mut(family) {
            t.retain(|n, e| {
                if f(e) {
                    store.release(e.attrs.clone());
                    changes.push(InChange {
                        family,
                        nlri: *n,
                        route: None,
                    });
                    false
                } else {
                    true
                }
            });
        }
        changes
    }
}
