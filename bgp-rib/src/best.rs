//! The decision process (RFC 4271 §9.1.2.2, RFC 4456 §9, RFC 4724 §4.2, RFC 9494 §4.3).

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};

use bgp_wire::Asn;

use crate::adj_in::Staleness;
use crate::intern::Attrs;

/// Where a route came from: an index into the RIB's sources (0 is the local origin table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub u32);

impl SourceId {
    /// The local origin table (the embedder's own routes).
    pub const LOCAL: SourceId = SourceId(0);
}

/// What the decision process needs to know about a route's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// Whether this is the local origin table.
    pub local: bool,
    /// Whether the peer is internal (same AS).
    pub ibgp: bool,
    /// The peer's AS.
    pub asn: Asn,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    /// The peer's address.
    pub address: IpAddr,
}

impl SourceInfo {
    /// The local origin table.
    pub fn local(asn: Asn, router_id: Ipv4Addr) -> Self {
        SourceInfo {
            local: true,
            ibgp: false,
            asn,
            router_id,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// One candidate path for a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The source.
    pub source: SourceId,
    /// The ADD-PATH path id the source used (0 without ADD-PATH).
    pub path_id: u32,
    /// The attributes.
    pub attrs: Attrs,
    /// The stale mark.
    pub stale: Staleness,
}

/// The LOCAL_PREF used when the attribute is absent.
pub const DEFAULT_LOCAL_PREF: u32 = 100;

fn local_pref(c: &Candidate) -> u32 {
    c.attrs.attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
}

fn path_len(c: &Candidate) -> usize {
    c.attrs
        .attrs
        .as_path
        .as_ref()
        .map_or(0, |p| p.len_for_best_path())
}

fn neighbour_as(c: &Candidate, s: &SourceInfo) -> Option<Asn> {
    match c.attrs.attrs.as_path.as_ref().and_then(|p| p.first_asn()) {
        Some(a) => Some(a),
        // An empty AS_PATH from an internal peer: the route is from our own AS.
        None if !s.local => Some(s.asn),
        None => None,
    }
}

/// The index of the best candidate (RFC 4271 §9.1.2.2), by elimination in this order:
///
/// 0. the freshest (fresh over stale, RFC 4724 §4.2; long-lived stale last, RFC 9494 §4.3);
/// 1. the locally originated ones (the embedder's own routes win, like a weight);
/// 2. highest LOCAL_PREF (absent: 100);
/// 3. shortest AS_PATH (an AS_SET counts 1, confederation segments 0);
/// 4. lowest ORIGIN;
/// 5. lowest MULTI_EXIT_DISC among routes from the same neighbouring AS (absent: 0);
/// 6. eBGP over iBGP;
/// 7. lowest BGP identifier of the source, or ORIGINATOR_ID when present (RFC 4456 §9);
/// 8. shortest CLUSTER_LIST (RFC 4456 §9);
/// 9. lowest peer address; finally lowest source and path id, for determinism.
pub fn select_best<'a>(
    cands: &[Candidate],
    source: impl Fn(SourceId) -> Option<&'a SourceInfo>,
) -> Option<usize> {
    match cands.len() {
        0 => return None,
        1 => return Some(0),
        _ => {}
    }
    let unknown = SourceInfo::local(Asn(0), Ipv4Addr::UNSPECIFIED);
    let info = |c: &Candidate| -> SourceInfo { source(c.source).copied().unwrap_or(unknown) };
    let mut live: Vec<usize> = (0..cands.len()).collect();
    let keep_min = |live: &mut Vec<usize>, key: &dyn Fn(&Candidate) -> u128| {
        let best = live
            .iter()
            .filter_map(|&i| cands.get(i).map(key))
            .min()
            .unwrap_or(0);
        live.retain(|&i| cands.get(i).map(key) == Some(best));
    };
    keep_min(&mut live, &|c| c.stale as u128);
    keep_min(&mut live, &|c| u128::from(!info(c).local));
    keep_min(&mut live, &|c| u128::from(u32::MAX - local_pref(c)));
    keep_min(&mut live, &|c| path_len(c) as u128);
    keep_min(&mut live, &|c| {
        c.attrs.attrs.origin.map_or(3, |o| u128::from(o.code()))
    });
    // MED: drop every route that a route from the same neighbouring AS beats.
    if live.len() > 1 {
        let med = |c: &Candidate| c.attrs.attrs.med.unwrap_or(0);
        let snapshot = live.clone();
        live.retain(|&i| {
            let Some(c) = cands.get(i) else { return false };
            let nas = neighbour_as(c, &info(c));
            !snapshot.iter().any(|&j| {
                cands.get(j).is_some_and(|d| {
                    nas.is_some() && neighbour_as(d, &info(d)) == nas && med(d) < med(c)
                })
            })
        });
    }
    keep_min(&mut live, &|c| u128::from(info(c).ibgp));
    keep_min(&mut live, &|c| {
        let id = c.attrs.attrs.originator_id.unwrap_or(info(c).router_id);
        u128::from(u32::from(id))
    });
    keep_min(&mut live, &|c| {
        c.attrs.attrs.cluster_list.as_ref().map_or(0, |l| l.len()) as u128
    });
    keep_min(&mut live, &|c| match info(c).address {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    });
    live.into_iter()
        .min_by(|&a, &b| match (cands.get(a), cands.get(b)) {
            (Some(x), Some(y)) => (x.source, x.path_id).cmp(&(y.source, y.path_id)),
            _ => Ordering::Equal,
        })
}
