//! Attribute interning: one shared copy of each distinct attribute set, freed when the last
//! route that uses it goes.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use bgp_wire::{NextHop, PathAttributes};

use crate::table::{FastBuild, FastMap};

/// What a route carries besides its prefix: the path attributes and, for families announced
/// in MP_REACH_NLRI (RFC 4760 §3), the next hop from that attribute.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct RouteAttributes {
    /// The path attributes (NEXT_HOP inside for IPv4 unicast in the NLRI field).
    pub attrs: PathAttributes,
    /// The MP_REACH_NLRI next hop, for every other family. Boxed: most routes (IPv4
    /// unicast) have none, and an interned set is 32 octets smaller for it.
    pub mp_next_hop: Option<Box<NextHop>>,
}

impl RouteAttributes {
    /// Attributes without an MP next hop.
    pub fn new(attrs: PathAttributes) -> Self {
        RouteAttributes {
            attrs,
            mp_next_hop: None,
        }
    }
}

/// A shared, interned attribute set. Compare with [`Arc::ptr_eq`].
pub type Attrs = Arc<RouteAttributes>;

fn content_hash(a: &RouteAttributes) -> u64 {
    let mut h = FastBuild::default().build_hasher();
    a.hash(&mut h);
    std::hash::Hasher::finish(&h)
}

/// The interning table.
///
/// [`AttrStore::intern`] hands out the one shared copy; holders give theirs back with
/// [`AttrStore::release`], and [`AttrStore::sweep`] frees the sets that nobody but the store
/// holds any more. Interned copies are [detached](PathAttributes::detached) from the
/// received message, so a RIB never keeps receive buffers alive.
#[derive(Debug, Default)]
pub struct AttrStore {
    /// Keyed by the content hash, computed once per set (a growing table then rehashes
    /// 8-octet keys, not whole attribute sets): 16 octets per set.
    set: FastMap<u64, Attrs>,
    /// The rare distinct sets whose hash a set in `set` has already.
    collisions: FastMap<u64, Vec<Attrs>>,
    len: usize,
    pending: Vec<Attrs>,
    /// Releases since the last full scan (see [`AttrStore::sweep`]).
    released: usize,
}

impl AttrStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared copy of these attributes (stored on first use).
    pub fn intern(&mut self, a: RouteAttributes) -> Attrs {
        let h = content_hash(&a);
        match self.set.get(&h) {
            Some(x) if **x == a => return x.clone(),
            Some(_) => {
                if let Some(x) = self
                    .collisions
                    .get(&h)
                    .and_then(|v| v.iter().find(|x| ***x == a))
                {
                    return x.clone();
                }
            }
            None => {}
        }
        let arc = Arc::new(RouteAttributes {
            attrs: a.attrs.detached(),
            mp_next_hop: a.mp_next_hop,
        });
        self.len += 1;
        match self.set.entry(h) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(h).or_default().push(arc.clone());
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(arc.clone());
            }
        }
        arc
    }

    /// Removes one set (by identity).
    fn remove(&mut self, a: &Attrs) {
        let h = content_hash(a);
        match self.set.get(&h) {
            Some(x) if Arc::ptr_eq(x, a) => {
                // One of the colliding sets, if any, takes its place.
                let next = self.collisions.get_mut(&h).and_then(Vec::pop);
                if self.collisions.get(&h).is_some_and(Vec::is_empty) {
                    self.collisions.remove(&h);
                }
                match next {
                    Some(n) => {
                        self.set.insert(h, n);
                    }
                    None => {
                        self.set.remove(&h);
                    }
                }
                self.len -= 1;
            }
            Some(_) => {
                if let Some(v) = self.collisions.get_mut(&h) {
                    let before = v.len();
                    v.retain(|x| !Arc::ptr_eq(x, a));
                    self.len -= before - v.len();
                    if v.is_empty() {
                        self.collisions.remove(&h);
                    }
                }
            }
            None => {}
        }
    }

    /// Gives back one holder's reference; the set is freed at the next [`AttrStore::sweep`]
    /// if nobody else holds it then.
    pub fn release(&mut self, a: Attrs) {
        self.pending.push(a);
        self.released += 1;
    }

    /// Frees the released sets that only the store still holds.
    ///
    /// A set released while someone else still held a transient copy (a change set the
    /// caller had not dropped yet) is caught by a full scan that runs once the releases since
    /// the last one outnumber half the store, so the cost stays amortised O(1) per release.
    pub fn sweep(&mut self) {
        if self.released > 1024 && self.released > self.len / 2 {
            self.sweep_all();
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable_by_key(|a| Arc::as_ptr(a) as usize);
        let mut i = 0;
        while let Some(a) = pending.get(i) {
            let mut j = i + 1;
            while pending.get(j).is_some_and(|b| Arc::ptr_eq(a, b)) {
                j += 1;
            }
            // Held by the store and by the `j - i` pending copies only: nobody uses it.
            if Arc::strong_count(a) == 1 + (j - i) {
                let a = a.clone();
                self.remove(&a);
            }
            i = j;
        }
        pending.clear();
        // Keep the buffer for the next operation, unless a bulk release made it large.
        if pending.capacity() <= 4096 {
            self.pending = pending;
        }
    }

    /// Frees every set that only the store holds (a full scan; for tests and audits).
    pub fn sweep_all(&mut self) {
        self.pending = Vec::new();
        self.released = 0;
        let mut collisions = std::mem::take(&mut self.collisions);
        for v in collisions.values_mut() {
            v.retain(|a| Arc::strong_count(a) > 1);
        }
        collisions.retain(|_, v| !v.is_empty());
        let mut promoted = Vec::new();
        self.set.retain(|h, a| {
            if Arc::strong_count(a) > 1 {
                return true;
            }
            if let Some(n) = collisions.get_mut(h).and_then(Vec::pop) {
                promoted.push((*h, n));
            }
            false
        });
        collisions.retain(|_, v| !v.is_empty());
        self.set.extend(promoted);
        self.collisions = collisions;
        self.len = self.set.len() + self.collisions.values().map(Vec::len).sum::<usize>();
    }

    /// The number of distinct attribute sets held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no set is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_wire::Origin;

    fn attrs(med: u32) -> RouteAttributes {
        RouteAttributes::new(PathAttributes {
            origin: Some(Origin::Igp),
            med: Some(med),
            ..PathAttributes::default()
        })
    }

    #[test]
    fn one_copy_per_distinct_set_freed_with_the_last_user() {
        let mut s = AttrStore::new();
        let a = s.intern(attrs(1));
        let b = s.intern(attrs(1));
        let c = s.intern(attrs(2));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(s.len(), 2);
        s.release(a);
        s.sweep();
        assert_eq!(s.len(), 2, "b still uses it");
        s.release(b);
        s.release(c);
        s.sweep();
        assert!(s.is_empty());
    }
}
