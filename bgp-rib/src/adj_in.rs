//! Adj-RIB-In (RFC 4271 §3.2): the routes one peer sent, per AFI/SAFI and ADD-PATH path id,
//! with the stale marks of graceful restart (RFC 4724 §4.2) and long-lived graceful restart
//! (RFC 9494), and max-prefix accounting.

use bgp_wire::{AfiSafi, Nlri};

use crate::best::SourceId;
use crate::intern::Attrs;
use crate::loc::LocRib;
use crate::table::PerFamily;

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

/// One peer's Adj-RIB-In: a view of the paths it sent (post import policy) in the route
/// table, with its per-family route counts.
#[derive(Clone, Copy, Debug)]
pub struct AdjRibIn<'a> {
    pub(crate) loc: &'a LocRib,
    pub(crate) source: SourceId,
    pub(crate) counts: &'a PerFamily<usize>,
}

impl<'a> AdjRibIn<'a> {
    /// The number of routes of a family.
    pub fn len(&self, family: AfiSafi) -> usize {
        self.counts.get(family).copied().unwrap_or(0)
    }

    /// The number of routes of every family.
    pub fn total(&self) -> usize {
        self.counts.0.iter().sum()
    }

    /// Whether the peer has no route.
    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }

    /// The route for a prefix and path id.
    pub fn get(&self, family: AfiSafi, nlri: &Nlri) -> Option<AdjEntry> {
        self.loc.path(family, self.source, nlri).map(|c| AdjEntry {
            attrs: c.attrs.clone(),
            stale: c.stale,
        })
    }

    /// The routes of a family (a scan of the family's table).
    pub fn iter(&self, family: AfiSafi) -> impl Iterator<Item = (Nlri, AdjEntry)> + 'a {
        self.loc.paths_of(family, self.source).map(|(prefix, c)| {
            (
                c.nlri(prefix),
                AdjEntry {
                    attrs: c.attrs.clone(),
                    stale: c.stale,
                },
            )
        })
    }
}
