//! Encoding generated tables into wire messages, as a peer would send them.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_wire::context::HEADER_LEN;
use bgp_wire::{
    AfiSafi, AsPath, Asn, Communities, Community, Context, LargeCommunities, LargeCommunity,
    Message, MessageType, NextHop, Nlri, Origin, PathAttributes, Update, check_header,
    pack_announce,
};
use bytes::{Bytes, BytesMut};

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

// The benchmark loops, shared by `benches/wire.rs` and `examples/wire_speed.rs`. They panic on
// a stream that is not a valid run of UPDATEs: they only ever see generated tables.

/// Full decode of every message, visiting every prefix and every attribute value: the receive
/// loop of a session, which decodes every UPDATE into one reused [`Update`].
pub fn decode_all(stream: &Bytes, ctx: &Context) -> u64 {
    let mut u = Update::new();
    let mut sum = 0u64;
    let mut pos = 0;
    while pos < stream.len() {
        let h = match check_header(&stream[pos..], ctx.max_message_len) {
            Ok(Some(h)) => h,
            _ => panic!("bad stream at {pos}"),
        };
        assert_eq!(h.kind, MessageType::Update, "not an update");
        let body = stream.slice(pos + HEADER_LEN..pos + h.len);
        pos += h.len;
        u.decode_into(&body, HEADER_LEN, ctx).expect("decodes");
        sum += visit(&u);
    }
    sum
}

/// The same through [`Message::decode_body`], a new `Message` per message.
pub fn decode_all_messages(stream: &Bytes, ctx: &Context) -> u64 {
    let mut sum = 0u64;
    let mut pos = 0;
    while pos < stream.len() {
        let h = match check_header(&stream[pos..], ctx.max_message_len) {
            Ok(Some(h)) => h,
            _ => panic!("bad stream at {pos}"),
        };
        let body = stream.slice(pos + HEADER_LEN..pos + h.len);
        pos += h.len;
        let Ok(Message::Update(u)) = Message::decode_body(h, body, ctx) else {
            panic!("not an update");
        };
        sum += visit(&u);
    }
    sum
}

/// Visits every prefix and every attribute value of a decoded UPDATE.
#[inline(always)]
fn visit(u: &Update) -> u64 {
    let mut sum = 0u64;
    for (_, n) in u.announced().chain(u.withdrawn_all()) {
        sum += u64::from(n.prefix.prefix_len());
    }
    let a = &u.attributes;
    if let Some(p) = &a.as_path {
        sum += p.asns().map(|x| u64::from(x.0)).sum::<u64>();
    }
    if let Some(c) = &a.communities {
        sum += c.iter().map(|x| u64::from(x.0)).sum::<u64>();
    }
    if let Some(c) = &a.large_communities {
        sum += c.iter().count() as u64;
    }
    sum += u64::from(a.med.unwrap_or(0)) + u64::from(a.origin.map_or(0, |o| o.code()));
    sum += a.next_hop.map_or(0, |n| u64::from(n.to_bits()));
    if let Some(r) = &u.mp_reach {
        sum += match r.next_hop {
            NextHop::Ipv6(a) => a.segments()[7].into(),
            _ => 0,
        };
    }
    sum
}

/// The framing-only baseline: reads each header, skips the withdrawn routes and attribute
/// headers (looking inside MP_REACH_NLRI only to find its NLRI), and reads every prefix length.
/// Returns the number of prefixes. This is the floor any full decode is compared with.
pub fn framing_walk(stream: &[u8]) -> usize {
    let mut prefixes = 0;
    let mut pos = 0;
    while pos + 19 <= stream.len() {
        let len = usize::from(u16::from_be_bytes([stream[pos + 16], stream[pos + 17]]));
        let msg = &stream[pos..pos + len];
        pos += len;
        if msg[18] != 2 {
            continue;
        }
        let body = &msg[19..];
        let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
        prefixes += count_prefixes(&body[2..2 + wlen]);
        let alen = usize::from(u16::from_be_bytes([body[2 + wlen], body[3 + wlen]]));
        let attrs = &body[4 + wlen..4 + wlen + alen];
        let mut a = 0;
        while a < attrs.len() {
            let flags = attrs[a];
            let code = attrs[a + 1];
            let (vlen, hdr) = if flags & 0x10 != 0 {
                (
                    usize::from(u16::from_be_bytes([attrs[a + 2], attrs[a + 3]])),
                    4,
                )
            } else {
                (usize::from(attrs[a + 2]), 3)
            };
            let v = &attrs[a + hdr..a + hdr + vlen];
            if code == 14 {
                let nhl = usize::from(v[3]);
                prefixes += count_prefixes(&v[5 + nhl..]);
            } else if code == 15 {
                prefixes += count_prefixes(&v[3..]);
            }
            a += hdr + vlen;
        }
        prefixes += count_prefixes(&body[4 + wlen + alen..]);
    }
    prefixes
}

fn count_prefixes(mut nlri: &[u8]) -> usize {
    let mut n = 0;
    while let Some((&bits, rest)) = nlri.split_first() {
        let bytes = usize::from(bits).div_ceil(8);
        nlri = &rest[bytes..];
        n += 1;
    }
    n
}
