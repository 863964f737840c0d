//! Encoding generated tables into wire messages, as a peer would send them.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_wire::{
    AfiSafi, AsPath, Asn, Communities, Community, Context, LargeCommunities, LargeCommunity,
    NextHop, Nlri, Origin, PathAttributes, Update, pack_announce,
};
use bytes::BytesMut;

use crate::table::{AttrSpec, Table};

/// The IPv4 next hop used in test routes: from the benchmarking range, so that no daemon
/// treats it as martian (FRR and GoBGP reject 127/8); nothing is ever sent to it.
pub const NEXT_HOP_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The IPv6 next hop used in test routes (documentation range).
pub const NEXT_HOP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// The path attributes for an [`AttrSpec`].
pub fn attributes(spec: &AttrSpec) -> PathAttributes {
    PathAttributes {
        origin: Origin::from_code(spec.origin),
        as_path: Some(AsPath::from_sequence(spec.as_path.iter().map(|&a| Asn(a)))),
        med: spec.med,
        communities: (!spec.communities.is_empty())
            .then(|| Communities::new(spec.communities.iter().map(|&c| Community(c)))),
        large_communities: (!spec.large_communities.is_empty()).then(|| {
            LargeCommunities::new(
                spec.large_communities
                    .iter()
                    .map(|&(g, a, b)| LargeCommunity::new(g, a, b)),
            )
        }),
        ..PathAttributes::default()
    }
}

/// A table as the UPDATE messages a peer sends for it (one attribute set's prefixes packed
/// together, IPv4 in the NLRI field, IPv6 in MP_REACH_NLRI), then the End-of-RIB markers.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The messages, back to back, headers included.
    pub stream: BytesMut,
    /// How many UPDATE messages carry routes.
    pub updates: usize,
    /// How many prefixes they carry.
    pub prefixes: usize,
}

/// Encodes `table` with `ctx`.
///
/// # Panics
/// When the table cannot be encoded, which is a bug in the generator or the packer.
pub fn encode_table(table: &Table, ctx: &Context) -> Encoded {
    let mut stream = BytesMut::new();
    let mut updates = 0;
    let mut prefixes = 0;
    for (family, groups) in [
        (AfiSafi::IPV4_UNICAST, &table.ipv4),
        (AfiSafi::IPV6_UNICAST, &table.ipv6),
    ] {
        for g in groups {
            let mut attrs = attributes(&g.attrs);
            let nh = if family == AfiSafi::IPV4_UNICAST {
                attrs.next_hop = Some(NEXT_HOP_V4);
                None
            } else {
                Some(NextHop::Ipv6(NEXT_HOP_V6))
            };
            updates += pack_announce(
                ctx,
                &attrs,
                family,
                nh.as_ref(),
                g.prefixes.iter().map(|&p| Nlri::new(p)),
                &mut stream,
            )
            .expect("generated routes encode");
            prefixes += g.prefixes.len();
        }
    }
    for family in [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST] {
        let eor = bgp_wire::Message::Update(Update::end_of_rib_marker(family));
        eor.encode(ctx, &mut stream).expect("End-of-RIB encodes");
    }
    Encoded {
        stream,
        updates,
        prefixes,
    }
}
