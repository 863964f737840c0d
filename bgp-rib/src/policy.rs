//! The plug-in points: small synchronous traits with default implementations (STYLE 12).

use bgp_wire::{AfiSafi, Nlri};

use crate::intern::RouteAttributes;
use crate::loc::BestChange;
use crate::rib::PeerConfig;

/// What a policy decides for a route.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum PolicyAction {
    /// Take the route as it is.
    Accept,
    /// Drop the route (on import: as if withdrawn; on export: not advertised).
    Reject,
    /// Take the route with these attributes instead.
    Modify(RouteAttributes),
}

/// Import policy of one peer: applied to every announced route before it enters the
/// Adj-RIB-In. The default accepts everything.
pub trait ImportPolicy: Send {
    /// Decides on one route.
    fn import(
        &mut self,
        peer: &PeerConfig,
        family: AfiSafi,
        nlri: &Nlri,
        attrs: &RouteAttributes,
    ) -> PolicyAction {
        let _ = (peer, family, nlri, attrs);
        PolicyAction::Accept
    }
}

/// Export policy of one peer: applied after the export rules, before the Adj-RIB-Out. The
/// default accepts everything.
///
/// The RIB does not keep what each peer was sent: it computes it again as the export of the
/// route that was best (see [`crate::adj_out`]). So a decision must depend only on the
/// arguments and on state that changes with the RIB's own calls: the [`RouteSink`] hears of
/// a best-route change after the old route's export and before the new one's.
pub trait ExportPolicy: Send {
    /// Decides on one route.
    fn export(
        &mut self,
        peer: &PeerConfig,
        family: AfiSafi,
        nlri: &Nlri,
        attrs: &RouteAttributes,
    ) -> PolicyAction {
        let _ = (peer, family, nlri, attrs);
        PolicyAction::Accept
    }
}

/// Receives every real change of a best route (to program a FIB, feed another system, or
/// count). The default ignores them.
pub trait RouteSink: Send {
    /// A best route changed.
    fn best_changed(&mut self, change: &BestChange) {
        let _ = change;
    }
}

/// The default policy and sink: accepts everything, ignores changes.
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl ImportPolicy for AcceptAll {}
impl ExportPolicy for AcceptAll {}
impl RouteSink for AcceptAll {}
