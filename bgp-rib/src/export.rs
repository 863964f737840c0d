//! Export rules: what a peer may be told about a best route, and with which attributes
//! (RFC 4271 §9.1.3, §5.1; RFC 1997; RFC 4456 §8; RFC 9234 §5).

use bgp_wire::{Afi, AfiSafi, AsPath, Asn, Community, NextHop};

use crate::best::{DEFAULT_LOCAL_PREF, SourceInfo};
use crate::intern::RouteAttributes;
use crate::rib::{PeerConfig, RibConfig, Role};

/// Where a route comes from, for the export decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct From<'a> {
    pub(crate) info: &'a SourceInfo,
    pub(crate) same_peer: bool,
    pub(crate) rr_client: bool,
}

/// The attributes to advertise to `to`, or `None` when the route must not be advertised.
pub(crate) fn export(
    cfg: &RibConfig,
    to: &PeerConfig,
    from: From<'_>,
    family: AfiSafi,
    route: &RouteAttributes,
) -> Option<RouteAttributes> {
    let to_ibgp = to.asn == cfg.local_asn;
    let from_local = from.info.local;
    // Never back to where it came from.
    if from.same_peer && !to.advertise_to_source {
        return None;
    }
    // RFC 1997 well-known communities.
    if let Some(c) = &route.attrs.communities {
        if c.contains(Community::NO_ADVERTISE) {
            return None;
        }
        if !to_ibgp
            && (c.contains(Community::NO_EXPORT) || c.contains(Community::NO_EXPORT_SUBCONFED))
        {
            return None;
        }
    }
    // iBGP split horizon, unless reflecting (RFC 4456 §6).
    let reflect = to_ibgp && !from_local && from.info.ibgp;
    if reflect {
        cfg.cluster_id?;
        if !(from.rr_client || to.rr_client) {
            return None;
        }
    }
    // RFC 9234 §5: once OTC is set, never to a provider, peer or route server.
    let otc = route.attrs.otc;
    if otc.is_some()
        && matches!(
            to.local_role,
            Some(Role::Customer | Role::Peer | Role::RouteServerClient)
        )
    {
        return None;
    }

    let mut out = if from_local {
        route.clone()
    } else {
        RouteAttributes {
            attrs: route.attrs.for_propagation(),
            mp_next_hop: route.mp_next_hop.clone(),
        }
    };
    let a = &mut out.attrs;
    if to_ibgp {
        a.local_pref = Some(a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
        if reflect {
            a.originator_id.get_or_insert(from.info.router_id);
            let cluster = cfg.cluster_id.unwrap_or(cfg.router_id);
            a.cluster_list = Some(match &a.cluster_list {
                Some(l) => l.prepend(cluster),
                None => bgp_wire::ClusterList::new([cluster]),
            });
        }
    } else {
        let path = a.as_path.take().unwrap_or_else(AsPath::empty);
        a.as_path = Some(path.without_confed().prepend(cfg.local_asn, 1 + to.prepend));
        a.local_pref = None;
        a.originator_id = None;
        a.cluster_list = None;
        // RFC 4271 §5.1.4: a MED received from a neighbouring AS is not passed on to another.
        if !from_local {
            a.med = None;
        }
    }
    if otc.is_none()
        && matches!(
            to.local_role,
            Some(Role::Provider | Role::Peer | Role::RouteServer)
        )
    {
        a.otc = Some(cfg.local_asn);
    }
    let next_hop_self =
        to.next_hop_self.unwrap_or(!to_ibgp) || from_local && needs_next_hop(&out, family);
    if next_hop_self {
        set_next_hop_self(&mut out, to, family)?;
    }
    Some(out)
}

fn needs_next_hop(r: &RouteAttributes, family: AfiSafi) -> bool {
    if family == AfiSafi::IPV4_UNICAST && r.mp_next_hop.is_none() {
        r.attrs.next_hop.is_none()
    } else {
        r.mp_next_hop.is_none()
    }
}

fn set_next_hop_self(r: &mut RouteAttributes, to: &PeerConfig, family: AfiSafi) -> Option<()> {
    if family == AfiSafi::IPV4_UNICAST {
        if let Some(v4) = to.local_v4 {
            r.attrs.next_hop = Some(v4);
            r.mp_next_hop = None;
            return Some(());
        }
    }
    r.attrs.next_hop = None;
    r.mp_next_hop = Some(Box::new(match (family.afi, to.local_v4, to.local_v6) {
        (Afi::IPV4, Some(v4), _) => NextHop::Ipv4(v4),
        (_, _, Some(v6)) => NextHop::Ipv6(v6),
        _ => return None,
    }));
    Some(())
}

/// RFC 9234 §5 ingress: `Err(())` when the route is a leak (ineligible), otherwise the OTC
/// to set when it is missing.
pub(crate) fn otc_ingress(
    role: Option<Role>,
    peer_asn: Asn,
    otc: Option<Asn>,
) -> Result<Option<Asn>, ()> {
    let Some(role) = role else { return Ok(None) };
    match (role, otc) {
        (Role::Provider | Role::RouteServer, Some(_)) => Err(()),
        (Role::Peer, Some(a)) if a != peer_asn => Err(()),
        (Role::Customer | Role::Peer | Role::RouteServerClient, None) => Ok(Some(peer_asn)),
        _ => Ok(None),
    }
}
