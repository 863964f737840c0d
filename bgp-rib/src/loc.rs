//! Loc-RIB (RFC 4271 §3.2, §9.1.2): every candidate path per prefix and the best one.

use std::sync::Arc;

use bgp_wire::AfiSafi;
use ipnet::IpNet;

use crate::adj_in::Staleness;
use crate::best::{Candidate, SourceId, SourceInfo, select_best};
use crate::intern::{AttrStore, Attrs};
use crate::table::{FastMap, PerFamily};

/// The candidates of one prefix: one inline (the common case), more in a boxed slice.
#[derive(Clone, Debug)]
enum Cands {
    One(Candidate),
    Many(Vec<Candidate>),
}

impl Cands {
    fn as_slice(&self) -> &[Candidate] {
        match self {
            Cands::One(c) => std::slice::from_ref(c),
            Cands::Many(v) => v,
        }
    }
}

#[derive(Clone, Debug)]
struct LocEntry {
    cands: Cands,
    best: u32,
}

impl LocEntry {
    fn best(&self) -> Option<&Candidate> {
        self.cands.as_slice().get(self.best as usize)
    }
}

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
    fn of(c: &Candidate) -> Self {
        BestRoute {
            source: c.source,
            path_id: c.path_id,
            attrs: c.attrs.clone(),
            stale: c.stale,
        }
    }

    fn same(a: &Option<BestRoute>, b: &Option<BestRoute>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(x), Some(y)) => {
                x.source == y.source
                    && x.path_id == y.path_id
                    && x.stale == y.stale
                    && Arc::ptr_eq(&x.attrs, &y.attrs)
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

/// The Loc-RIB.
#[derive(Debug, Default)]
pub struct LocRib {
    tables: PerFamily<FastMap<IpNet, LocEntry>>,
}

impl LocRib {
    /// An empty Loc-RIB.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of prefixes with a route, per family.
    pub fn len(&self, family: AfiSafi) -> usize {
        self.tables.get(family).map_or(0, |t| t.len())
    }

    /// The number of prefixes with a route, in every family.
    pub fn total(&self) -> usize {
        self.tables.0.iter().map(|t| t.len()).sum()
    }

    /// Whether there is no route at all.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The best route of a prefix.
    pub fn best(&self, family: AfiSafi, prefix: &IpNet) -> Option<BestRoute> {
        self.tables
            .get(family)?
            .get(prefix)?
            .best()
            .map(BestRoute::of)
    }

    /// The candidates of a prefix.
    pub fn candidates(&self, family: AfiSafi, prefix: &IpNet) -> &[Candidate] {
        self.tables
            .get(family)
            .and_then(|t| t.get(prefix))
            .map_or(&[], |e| e.cands.as_slice())
    }

    /// Every prefix of a family with its best route.
    pub fn iter(&self, family: AfiSafi) -> impl Iterator<Item = (IpNet, BestRoute)> + '_ {
        self.tables
            .get(family)
            .into_iter()
            .flat_map(|t| t.iter())
            .filter_map(|(p, e)| Some((*p, BestRoute::of(e.best()?))))
    }

    /// Sets (or with `route == None` removes) the candidate of `source`/`path_id` for a
    /// prefix and reruns the decision process for it. Returns the change of the best route,
    /// if there is one.
    #[allow(clippy::too_many_arguments)]
    pub fn update<'a>(
        &mut self,
        store: &mut AttrStore,
        sources: impl Fn(SourceId) -> Option<&'a SourceInfo>,
        family: AfiSafi,
        prefix: IpNet,
        source: SourceId,
        path_id: u32,
        route: Option<(Attrs, Staleness)>,
    ) -> Option<BestChange> {
        let t = self.tables.get_mut(family)?;
        let old_best = t.get(&prefix).and_then(|e| e.best()).map(BestRoute::of);
        let same_cand = |c: &Candidate| c.source == source && c.path_id == path_id;
        // Fast path: the prefix's only candidate is the one that changes.
        let mut route = route;
        let mut only_one_gone = false;
        if let Some(LocEntry {
            cands: Cands::One(c),
            ..
        }) = t.get_mut(&prefix)
        {
            if same_cand(c) {
                match route.take() {
                    Some((attrs, stale)) => {
                        let old = std::mem::replace(&mut c.attrs, attrs);
                        c.stale = stale;
                        store.release(old);
                    }
                    None => only_one_gone = true,
                }
                if !only_one_gone {
                    let new_best = t.get(&prefix).and_then(|e| e.best()).map(BestRoute::of);
                    return (!BestRoute::same(&old_best, &new_best)).then_some(BestChange {
                        family,
                        prefix,
                        old: old_best,
                        new: new_best,
                    });
                }
            }
        }
        if only_one_gone {
            if let Some(LocEntry {
                cands: Cands::One(c),
                ..
            }) = t.remove(&prefix)
            {
                store.release(c.attrs);
            }
            return Some(BestChange {
                family,
                prefix,
                old: old_best,
                new: None,
            });
        }
        match (t.get_mut(&prefix), route) {
            (None, None) => return None,
            (None, Some((attrs, stale))) => {
                t.insert(
                    prefix,
                    LocEntry {
                        cands: Cands::One(Candidate {
                            source,
                            path_id,
                            attrs,
                            stale,
                        }),
                        best: 0,
                    },
                );
            }
            (Some(e), route) => {
                let mut v = match std::mem::replace(&mut e.cands, Cands::Many(Vec::new())) {
                    Cands::One(c) => vec![c],
                    Cands::Many(v) => v,
                };
                if let Some(i) = v.iter().position(same_cand) {
                    let old = v.swap_remove(i);
                    store.release(old.attrs);
                }
                if let Some((attrs, stale)) = route {
                    v.push(Candidate {
                        source,
                        path_id,
                        attrs,
                        stale,
                    });
                }
                // Keep a stable order so that the decision's last tie-break is stable too.
                v.sort_by_key(|c| (c.source, c.path_id));
                if v.is_empty() {
                    t.remove(&prefix);
                } else {
                    let best = select_best(&v, &sources).unwrap_or(0) as u32;
                    e.best = best;
                    e.cands = if v.len() == 1 {
                        match v.pop() {
                            Some(c) => Cands::One(c),
                            None => Cands::Many(v),
                        }
                    } else {
                        Cands::Many(v)
                    };
                }
            }
        }
        let new_best = t.get(&prefix).and_then(|e| e.best()).map(BestRoute::of);
        if BestRoute::same(&old_best, &new_best) {
            return None;
        }
        Some(BestChange {
            family,
            prefix,
            old: old_best,
            new: new_best,
        })
    }
}
