//! The body of the `rib_updates` fuzz target: a [`bgp_rib::Rib`] fed an arbitrary sequence of
//! operations (peers added, removed, up and down; UPDATEs decoded from arbitrary bytes or
//! built from a few bytes of structure; stale marking and purges; local announcements and
//! withdrawals; route refreshes; full and partial drains), with its invariants checked after
//! every step and, after every full drain, what each peer was told (the drained UPDATEs,
//! decoded and applied to a model of the peer's table) compared with the Loc-RIB routes a
//! simple reference of the export rules says it should have.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp_rib::{PeerConfig, Rib, RibConfig, RouteAttributes, SourceId, Staleness};
use bgp_wire::attribute::Origin;
use bgp_wire::{
    AfiSafi, AfiSafiSet, AsPath, Asn, Communities, Community, Context, Message, MpReach, MpUnreach,
    NextHop, Nlri, Nlris, PathAttributes, Update, context, split_message,
};
use bytes::{Bytes, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{Reader, context_from};

const LOCAL_ASN: Asn = Asn(65000);
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
// The eBGP ones are those of the captured daemons, so that their UPDATEs are accepted.
const PEER_ASNS: [Asn; 4] = [
    LOCAL_ASN,
    Asn(4_200_000_001),
    Asn(4_200_000_002),
    Asn(4_200_000_003),
];
const SLOTS: usize = 4;
const LOCAL_V4: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
const LOCAL_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);

/// The peers each scoped local announcement is for.
type Scopes = HashMap<(AfiSafi, IpNet), Vec<SourceId>>;

/// What a peer was told, as decoded from what was drained for it.
type Told = HashMap<(AfiSafi, IpNet), (PathAttributes, Option<NextHop>)>;

struct Peer {
    id: SourceId,
    config: PeerConfig,
    /// The output context and families while its session is up.
    session: Option<(Context, AfiSafiSet)>,
    told: Told,
    end_of_rib: AfiSafiSet,
}

/// The fuzz target's body. Panics when an invariant does not hold. Returns the number of
/// Loc-RIB routes and of routes told to peers at the end (for tests of the seeds).
pub fn rib_updates(data: &[u8]) -> (usize, usize) {
    let mut r = Reader::new(data);
    let cluster_id = (r.u8() & 1 == 1).then_some(Ipv4Addr::new(192, 0, 2, 99));
    let mut rib = Rib::new(RibConfig {
        local_asn: LOCAL_ASN,
        router_id: ROUTER_ID,
        cluster_id,
    });
    let mut peers: [Option<Peer>; SLOTS] = [None, None, None, None];
    let mut scopes = Scopes::new();
    // Every operation takes at least one byte, so the loop ends with the input.
    let mut steps = 0u32;
    while !r.is_empty() {
        let kind = r.u8();
        step(&mut rib, &mut peers, &mut scopes, kind, &mut r);
        // The table checks walk everything: after the operations that change many routes at
        // once, and every 16th step (most of the run time otherwise).
        steps += 1;
        if matches!(kind % 16, 1 | 3 | 6..=8) || steps % 16 == 0 {
            check_tables(&rib, &peers);
        }
    }
    check_tables(&rib, &peers);
    for p in peers.iter_mut().flatten() {
        drain_all(&mut rib, p);
    }
    for p in peers.iter().flatten() {
        check_told(&rib, p, &peers, &scopes);
    }
    let told = peers.iter().flatten().map(|p| p.told.len()).sum();
    (rib.loc_rib().total(), told)
}

fn step(
    rib: &mut Rib,
    peers: &mut [Option<Peer>; SLOTS],
    scopes: &mut Scopes,
    kind: u8,
    r: &mut Reader<'_>,
) {
    match kind % 16 {
        0 => {
            let (a, b) = (r.u8(), r.u8());
            let slot = usize::from(a) % SLOTS;
            if let Some(old) = peers[slot].take() {
                let _ = rib.remove_peer(old.id);
            }
            let addr = Ipv4Addr::new(10, 0, 0, a % 4 + 1);
            let mut config = PeerConfig::new(
                PEER_ASNS[usize::from(a >> 2) % 4],
                Ipv4Addr::new(10, 0, 0, a % 4 + 1),
                IpAddr::V4(addr),
            );
            config.local_v4 = Some(LOCAL_V4);
            config.local_v6 = Some(LOCAL_V6);
            config.rr_client = b & 1 != 0;
            config.advertise_to_source = b & 2 != 0;
            config.llgr = b & 4 != 0;
            config.keep_adj_rib_in = b & 8 == 0;
            config.max_prefix = (b & 0x10 != 0).then_some(usize::from(b >> 5));
            config.prepend = usize::from(a >> 6);
            if let Some(id) = rib.add_peer(config.clone()) {
                peers[slot] = Some(Peer {
                    id,
                    config,
                    session: None,
                    told: Told::new(),
                    end_of_rib: AfiSafiSet::EMPTY,
                });
            }
        }
        1 => {
            if let Some(p) = peers[usize::from(r.u8()) % SLOTS].take() {
                let _ = rib.remove_peer(p.id);
            }
        }
        2 => {
            let (a, b) = (r.u8(), r.u8());
            let Some(p) = peers[usize::from(a) % SLOTS].as_mut() else {
                return;
            };
            let mut families = AfiSafiSet::EMPTY;
            for (i, f) in AfiSafi::KNOWN.into_iter().enumerate() {
                if b & (1 << i) != 0 {
                    families.insert(f);
                }
            }
            if families.is_empty() {
                families.insert(AfiSafi::IPV4_UNICAST);
            }
            let mut add_path = AfiSafiSet::EMPTY;
            if b & 0x20 != 0 {
                add_path.insert(AfiSafi::IPV4_UNICAST);
            }
            let ctx = Context {
                four_octet_as: b & 0x10 == 0,
                // Large enough for any attributes received in a 4,096-octet UPDATE plus
                // what the export adds, so that nothing fails to encode.
                max_message_len: context::MAX_EXTENDED_MESSAGE_LEN,
                add_path_receive: add_path,
                add_path_send: add_path,
            };
            if p.session.is_some() {
                let _ = rib.peer_down(p.id, false);
            }
            rib.peer_up(p.id, ctx, families);
            p.session = Some((ctx, families));
            p.told.clear();
            p.end_of_rib = AfiSafiSet::EMPTY;
        }
        3 => {
            let a = r.u8();
            if let Some(p) = peers[usize::from(a) % SLOTS].as_mut() {
                let _ = rib.peer_down(p.id, a & 0x80 != 0);
                p.session = None;
                p.told.clear();
            }
        }
        4 => {
            let (a, c) = (r.u8(), r.u8());
            let len = usize::from(u16::from_be_bytes([r.u8(), r.u8()]));
            let body = Bytes::copy_from_slice(r.take(len));
            let Some(p) = peers[usize::from(a) % SLOTS].as_ref() else {
                return;
            };
            // Received UPDATEs are at most 4,096 octets here.
            let ctx = Context {
                max_message_len: context::MAX_MESSAGE_LEN,
                ..context_from(c)
            };
            if let Ok(u) = Update::decode(body, context::HEADER_LEN, &ctx) {
                let _ = rib.apply_update(p.id, &u);
            }
        }
        5 => {
            let (a, b, c, d) = (r.u8(), r.u8(), r.u8(), r.u8());
            let Some(p) = peers[usize::from(a) % SLOTS].as_ref() else {
                return;
            };
            let u = structured_update(p, a, b, c, d);
            let _ = rib.apply_update(p.id, &u);
        }
        6..=8 => {
            let a = r.u8();
            let Some(p) = peers[usize::from(a) % SLOTS].as_ref() else {
                return;
            };
            let family = AfiSafi::KNOWN[usize::from(a >> 2) % 4];
            let _ = match kind % 16 {
                6 => rib.mark_stale(p.id, family),
                7 => rib.mark_llgr_stale(p.id, family),
                _ => {
                    let _ = rib.purge_stale(p.id, family);
                    // Nothing stale is left of that peer and family.
                    if let Some(adj) = rib.adj_rib_in(p.id) {
                        let stale = adj
                            .iter(family)
                            .filter(|(_, e)| e.stale != Staleness::Fresh)
                            .count();
                        assert_eq!(stale, 0, "stale routes left after purge_stale");
                    }
                    return;
                }
            };
        }
        9 => {
            let (a, b) = (r.u8(), r.u8());
            let (family, prefix) = pool_prefix(a);
            scopes.remove(&(family, prefix));
            let _ = rib.announce(family, prefix, local_attrs(family, b));
        }
        10 => {
            let (family, prefix) = pool_prefix(r.u8());
            scopes.remove(&(family, prefix));
            let _ = rib.withdraw(family, prefix);
        }
        11 => {
            if let Some(p) = peers[usize::from(r.u8()) % SLOTS].as_mut() {
                drain_all(rib, p);
            }
            for p in peers.iter().flatten() {
                if rib.adj_rib_out(p.id).is_some_and(|a| a.pending() == 0) {
                    check_told(rib, p, peers, scopes);
                }
            }
        }
        12 => {
            let (a, n) = (r.u8(), r.u8());
            if let Some(p) = peers[usize::from(a) % SLOTS].as_mut() {
                drain(rib, p, usize::from(n));
            }
        }
        13 => {
            let a = r.u8();
            if let Some(p) = peers[usize::from(a) % SLOTS].as_ref() {
                let family = AfiSafi::KNOWN[usize::from(a >> 2) % 4];
                let ok = rib.refresh_out(p.id, family);
                let expected = p.session.is_some_and(|(_, f)| f.contains(family));
                assert_eq!(ok, expected, "refresh_out of {family}");
            }
        }
        14 => {
            let (a, b, m) = (r.u8(), r.u8(), r.u8());
            let (family, prefix) = pool_prefix(a);
            let to: Vec<SourceId> = peers
                .iter()
                .enumerate()
                .filter(|(i, _)| m & (1 << i) != 0)
                .filter_map(|(_, p)| p.as_ref().map(|p| p.id))
                .collect();
            scopes.insert((family, prefix), to.clone());
            let _ = rib.announce_to(family, prefix, local_attrs(family, b), &to);
        }
        _ => rib.sweep(),
    }
}

/// A prefix from a small pool, so that operations meet on the same prefixes.
fn pool_prefix(a: u8) -> (AfiSafi, IpNet) {
    let i = a & 0x0f;
    if a & 0x80 == 0 {
        let net = if a & 0x10 == 0 {
            Ipv4Net::new(Ipv4Addr::new(10, 1, i, 0), 24)
        } else {
            Ipv4Net::new(Ipv4Addr::new(10, i, 0, 0), 16)
        };
        let family = if a & 0x40 == 0 {
            AfiSafi::IPV4_UNICAST
        } else {
            AfiSafi::IPV4_MULTICAST
        };
        (family, IpNet::V4(net.unwrap_or_default()))
    } else {
        let net = Ipv6Net::new(
            Ipv6Addr::new(0x2001, 0xdb8, u16::from(i), 0, 0, 0, 0, 0),
            48,
        );
        (AfiSafi::IPV6_UNICAST, IpNet::V6(net.unwrap_or_default()))
    }
}

/// Path attributes from a few bits: ORIGIN, MED, LOCAL_PREF and well-known communities.
fn pool_attrs(b: u8, as_path: AsPath) -> PathAttributes {
    let mut communities = Vec::new();
    match b >> 6 {
        1 => communities.push(Community::NO_EXPORT),
        2 => communities.push(Community::NO_ADVERTISE),
        3 => communities.push(Community::NO_LLGR),
        _ => {}
    }
    if b & 0x20 != 0 {
        communities.push(Community::new(65000, u16::from(b & 7)));
    }
    PathAttributes {
        origin: Some(match b % 3 {
            0 => Origin::Igp,
            1 => Origin::Egp,
            _ => Origin::Incomplete,
        }),
        as_path: Some(as_path),
        med: (b & 4 != 0).then_some(u32::from(b & 3)),
        local_pref: (b & 8 != 0).then_some(100 + u32::from(b & 0x10)),
        communities: (!communities.is_empty()).then(|| Communities::new(communities)),
        ..PathAttributes::default()
    }
}

fn local_attrs(family: AfiSafi, b: u8) -> RouteAttributes {
    let mut attrs = pool_attrs(b, AsPath::empty());
    // Half of them without a next hop: the RIB then sets ours. IPv4 unicast carries it in
    // NEXT_HOP, the other families in MP_REACH_NLRI.
    let mut mp_next_hop = None;
    if b & 0x10 != 0 {
        match family.afi {
            bgp_wire::Afi::IPV4 if family == AfiSafi::IPV4_UNICAST => {
                attrs.next_hop = Some(Ipv4Addr::new(192, 0, 2, 7));
            }
            bgp_wire::Afi::IPV4 => mp_next_hop = Some(NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 7))),
            _ => {
                mp_next_hop = Some(NextHop::Ipv6(Ipv6Addr::new(
                    0x2001, 0xdb8, 0, 0, 0, 0, 0, 7,
                )))
            }
        }
    }
    RouteAttributes {
        attrs,
        mp_next_hop: mp_next_hop.map(Box::new),
    }
}

/// An UPDATE from pool prefixes and attributes: a few prefixes of one family announced or
/// withdrawn, with path ids for ADD-PATH.
fn structured_update(p: &Peer, a: u8, b: u8, c: u8, d: u8) -> Update {
    let (family, first) = pool_prefix(c);
    let mut nlri = vec![first];
    for k in 1..=(d & 3) {
        let (f, q) = pool_prefix(c.wrapping_add(k.wrapping_mul(5)));
        if f == family {
            nlri.push(q);
        }
    }
    let add_path = d & 4 != 0;
    let path_id = u32::from(d >> 5);
    let nlris = |v: &[IpNet]| {
        Nlris::new(
            family,
            add_path,
            v.iter().map(|q| match add_path {
                true => Nlri::with_path_id(*q, path_id),
                false => Nlri::new(*q),
            }),
        )
        .unwrap_or_else(|_| Nlris::empty(family))
    };
    let mut u = Update::default();
    if a & 0x80 != 0 {
        if family == AfiSafi::IPV4_UNICAST {
            u.withdrawn = nlris(&nlri);
        } else {
            u.mp_unreach = Some(MpUnreach {
                family,
                withdrawn: nlris(&nlri),
            });
        }
        return u;
    }
    // The path starts with the peer's AS, mostly; sometimes it carries ours (a loop).
    let mut path = vec![p.config.asn, Asn(64512 + u32::from(b & 3))];
    if a & 0x40 != 0 {
        path.push(LOCAL_ASN);
    }
    if a & 0x20 != 0 {
        path.remove(0);
    }
    u.attributes = pool_attrs(b, AsPath::from_sequence(path));
    if family == AfiSafi::IPV4_UNICAST {
        u.attributes.next_hop = Some(Ipv4Addr::new(10, 0, 0, 1 + (d >> 3 & 3)));
        u.nlri = nlris(&nlri);
    } else {
        let next_hop = match family.afi {
            bgp_wire::Afi::IPV4 => NextHop::Ipv4(Ipv4Addr::new(10, 0, 0, 1 + (d >> 3 & 3))),
            _ => NextHop::Ipv6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        };
        u.mp_reach = Some(MpReach {
            family,
            next_hop,
            nlri: nlris(&nlri),
        });
    }
    u
}

/// Drains everything the peer is owed (bounded: every drain takes what is queued).
fn drain_all(rib: &mut Rib, p: &mut Peer) {
    drain(rib, p, usize::MAX);
    if let Some(a) = rib.adj_rib_out(p.id) {
        assert!(
            p.session.is_none() || a.pending() == 0,
            "pending after a full drain"
        );
    }
}

fn drain(rib: &mut Rib, p: &mut Peer, max: usize) {
    let mut out = BytesMut::new();
    let d = rib.drain_limited(p.id, &mut out, max);
    let Some((ctx, families)) = p.session else {
        assert!(out.is_empty() && d.messages == 0, "drained while down");
        return;
    };
    assert!(d.errors.is_empty(), "encode errors: {:?}", d.errors);
    let mut messages = 0;
    loop {
        let (h, m) = match split_message(&mut out, ctx.max_message_len) {
            Ok(Some(x)) => x,
            Ok(None) => break,
            Err(e) => panic!("drained bytes do not frame: {e}"),
        };
        messages += 1;
        let m = Message::decode_body(h, m.slice(context::HEADER_LEN..), &ctx)
            .unwrap_or_else(|e| panic!("drained UPDATE does not decode: {e}"));
        let Message::Update(u) = m else {
            panic!("drained a message that is not an UPDATE")
        };
        assert!(
            u.errors.is_empty(),
            "drained UPDATE with errors: {:?}",
            u.errors
        );
        if let Some(f) = u.end_of_rib() {
            assert!(families.contains(f), "End-of-RIB of {f}, not negotiated");
            assert!(p.end_of_rib.insert(f), "second End-of-RIB of {f}");
            continue;
        }
        for (f, n) in u.withdrawn_all() {
            assert!(families.contains(f), "withdrawal of {f}, not negotiated");
            assert!(n.path_id.unwrap_or(0) == 0, "path id sent");
            assert!(
                p.told.remove(&(f, n.prefix)).is_some(),
                "withdrawal of {} never announced",
                n.prefix
            );
        }
        let mp = u.mp_reach.as_ref().map(|m| (m.family, m.next_hop.clone()));
        for (f, n) in u.announced() {
            assert!(families.contains(f), "route of {f}, not negotiated");
            let nh = mp
                .as_ref()
                .filter(|(mf, _)| *mf == f)
                .map(|(_, h)| h.clone());
            p.told.insert((f, n.prefix), (u.attributes.clone(), nh));
        }
    }
    assert_eq!(messages, d.messages, "message count");
    // No End-of-RIB before the family's initial table went.
    for f in d.end_of_rib {
        assert!(p.end_of_rib.contains(f));
    }
}

/// Cheap invariants, after every operation.
fn check_tables(rib: &Rib, peers: &[Option<Peer>; SLOTS]) {
    let loc = rib.loc_rib();
    let mut total = 0;
    for f in AfiSafi::KNOWN {
        let n = loc.iter(f).count();
        assert_eq!(n, loc.len(f), "Loc-RIB count of {f}");
        total += n;
        for (prefix, best) in loc.iter(f) {
            let cands = loc.candidates(f, &prefix);
            assert!(!cands.is_empty(), "best route without candidates");
            if best.source != SourceId::LOCAL {
                let adj = rib.adj_rib_in(best.source);
                let held = adj.and_then(|a| a.get(f, &Nlri::with_path_id(prefix, best.path_id)));
                let held = held.or_else(|| adj.and_then(|a| a.get(f, &Nlri::new(prefix))));
                assert!(
                    held.is_some(),
                    "best route of {prefix} not in its Adj-RIB-In"
                );
            }
        }
    }
    assert_eq!(total, loc.total(), "Loc-RIB total");
    for p in peers.iter().flatten() {
        let Some(adj) = rib.adj_rib_in(p.id) else {
            panic!("peer lost")
        };
        let mut sum = 0;
        for f in AfiSafi::KNOWN {
            let n = adj.iter(f).count();
            assert_eq!(n, adj.len(f), "Adj-RIB-In count of {f}");
            sum += n;
            for (nlri, _) in adj.iter(f) {
                assert!(
                    loc.best(f, &nlri.prefix).is_some(),
                    "path without a best route"
                );
            }
        }
        assert_eq!(sum, adj.total(), "Adj-RIB-In total");
        if !p.config.keep_adj_rib_in {
            assert_eq!(sum, 0, "routes kept for a peer that keeps none");
        }
        if let Some(out) = rib.adj_rib_out(p.id) {
            if p.session.is_none() {
                assert_eq!(out.entries(), 0, "Adj-RIB-Out of a peer that is down");
            }
        }
    }
}

/// After a full drain: the peer was told exactly the best routes it should have, with the
/// attributes its Adj-RIB-Out holds.
fn check_told(rib: &Rib, p: &Peer, peers: &[Option<Peer>; SLOTS], scopes: &Scopes) {
    let Some((_, families)) = p.session else {
        assert!(p.told.is_empty());
        return;
    };
    let Some(out) = rib.adj_rib_out(p.id) else {
        panic!("peer lost")
    };
    let loc = rib.loc_rib();
    let mut expected = 0;
    for f in families.iter() {
        let mut told = 0;
        for (prefix, best) in loc.iter(f) {
            let should = exported(rib, p, peers, scopes, (f, prefix), &best);
            let got = p.told.get(&(f, prefix));
            assert_eq!(
                should,
                got.is_some(),
                "{f} {prefix} from {:?} ({:?}): should be told {should}, told {}",
                best.source,
                best.stale,
                got.is_some()
            );
            if got.is_some() {
                told += 1;
            }
        }
        expected += told;
        assert_eq!(told, out.told_count(f), "told count of {f}");
    }
    assert_eq!(
        expected,
        p.told.len(),
        "prefixes told that are not in the Loc-RIB"
    );
}

/// The export rules, as simply as they can be said for the peers this target builds (no
/// roles, every peer with both next hops): whether `to` should have the best route.
fn exported(
    rib: &Rib,
    to: &Peer,
    peers: &[Option<Peer>; SLOTS],
    scopes: &Scopes,
    (family, prefix): (AfiSafi, IpNet),
    best: &bgp_rib::BestRoute,
) -> bool {
    let to_ibgp = to.config.asn == LOCAL_ASN;
    if best.stale == Staleness::LlgrStale && !to.config.llgr {
        return false;
    }
    let local = best.source == SourceId::LOCAL;
    if local
        && scopes
            .get(&(family, prefix))
            .is_some_and(|s| !s.contains(&to.id))
    {
        return false;
    }
    if best.source == to.id && !to.config.advertise_to_source {
        return false;
    }
    if let Some(c) = &best.attrs.attrs.communities {
        if c.contains(Community::NO_ADVERTISE) {
            return false;
        }
        if !to_ibgp
            && (c.contains(Community::NO_EXPORT) || c.contains(Community::NO_EXPORT_SUBCONFED))
        {
            return false;
        }
    }
    if to_ibgp && !local {
        let from = peers.iter().flatten().find(|p| p.id == best.source);
        let Some(from) = from else {
            panic!("best route from an unknown peer")
        };
        if from.config.asn == LOCAL_ASN {
            if rib.config().cluster_id.is_none() {
                return false;
            }
            if !(from.config.rr_client || to.config.rr_client) {
                return false;
            }
        }
    }
    true
}
