//! Unit tests of the RIB as a whole (local helpers, STYLE: no testkit inside the crate).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use bgp_wire::{
    AfiSafi, AfiSafiSet, AsPath, Asn, ClusterList, Communities, Community, Context, Message,
    NextHop, Nlri, Nlris, Origin, PathAttributes, Update, header::split_message,
};
use bytes::BytesMut;
use ipnet::IpNet;
use proptest::prelude::*;

use crate::*;

const V4: AfiSafi = AfiSafi::IPV4_UNICAST;

fn p(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn cfg() -> RibConfig {
    RibConfig {
        local_asn: Asn(65000),
        router_id: Ipv4Addr::new(1, 1, 1, 1),
        cluster_id: None,
    }
}

fn peer(asn: u32, n: u8) -> PeerConfig {
    let mut c = PeerConfig::new(
        Asn(asn),
        Ipv4Addr::new(n, n, n, n),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)),
    );
    c.local_v4 = Some(Ipv4Addr::new(10, 0, 0, 254));
    c
}

fn attrs(path: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(path.iter().map(|&a| Asn(a)))),
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 9)),
        ..PathAttributes::default()
    }
}

fn nlris(v: &[&str]) -> Nlris {
    Nlris::new(V4, false, v.iter().map(|s| Nlri::new(p(s)))).unwrap()
}

fn upd(a: PathAttributes, announce: &[&str], withdraw: &[&str]) -> Update {
    Update {
        withdrawn: nlris(withdraw),
        attributes: a,
        nlri: nlris(announce),
        ..Update::default()
    }
}

fn best_source(rib: &Rib, prefix: &str) -> Option<SourceId> {
    rib.loc_rib().best(V4, &p(prefix)).map(|b| b.source)
}

fn up(rib: &mut Rib, id: SourceId) {
    rib.peer_up(
        id,
        Context::default(),
        AfiSafiSet::from_iter([V4, AfiSafi::IPV6_UNICAST]),
    );
}

fn drain_updates(rib: &mut Rib, id: SourceId) -> (Drained, Vec<Update>) {
    let mut out = BytesMut::new();
    let d = rib.drain(id, &mut out);
    let mut v = Vec::new();
    while let Some((_, m)) = split_message(&mut out, 4096).unwrap() {
        let Message::Update(u) = Message::decode(m, &Context::default()).unwrap() else {
            panic!()
        };
        v.push(u);
    }
    (d, v)
}

// ---- Adj-RIB-In ----

#[test]
fn apply_update_returns_the_change_set() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let ch = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8", "11.0.0.0/8"], &[]));
    assert_eq!(ch.adj_in.len(), 2);
    assert_eq!(ch.best.len(), 2);
    assert!(ch.adj_in.iter().all(|c| c.route.is_some()));
    drop(ch);
    // The same again: nothing.
    let ch = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    assert!(ch.is_empty());
    drop(ch);
    // New attributes: one change.
    let ch = rib.apply_update(a, &upd(attrs(&[65001, 7]), &["10.0.0.0/8"], &[]));
    assert_eq!((ch.adj_in.len(), ch.best.len()), (1, 1));
    drop(ch);
    // Withdraw one, and one never announced (a no-op).
    let ch = rib.apply_update(
        a,
        &upd(
            PathAttributes::default(),
            &[],
            &["11.0.0.0/8", "12.0.0.0/8"],
        ),
    );
    assert_eq!(ch.adj_in.len(), 1);
    assert_eq!(ch.adj_in[0].route, None);
    assert_eq!(rib.adj_rib_in(a).unwrap().len(V4), 1);
    assert_eq!(rib.attribute_sets(), 2);
    drop(ch);
    rib.sweep();
    assert_eq!(
        rib.attribute_sets(),
        1,
        "the first set was freed with its last route"
    );
}

#[test]
fn attributes_are_shared_between_routes_and_peers() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let b = rib.add_peer(peer(65001, 3)).unwrap();
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8", "11.0.0.0/8"], &[]));
    let _ = rib.apply_update(b, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    let x = rib
        .adj_rib_in(a)
        .unwrap()
        .get(V4, &Nlri::new(p("11.0.0.0/8")))
        .unwrap();
    let y = rib
        .adj_rib_in(b)
        .unwrap()
        .get(V4, &Nlri::new(p("10.0.0.0/8")))
        .unwrap();
    assert!(Arc::ptr_eq(&x.attrs, &y.attrs));
    assert_eq!(rib.attribute_sets(), 1);
}

#[test]
fn treat_as_withdraw_removes_the_announced_prefixes() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    // The same prefix again, in an UPDATE with a malformed attribute.
    let mut body = BytesMut::new();
    upd(attrs(&[65001]), &["10.0.0.0/8"], &[])
        .encode_body(&Context::default(), &mut body)
        .unwrap();
    let mut raw = body.to_vec();
    // Append a malformed MED (length 2) to the attributes and fix the length.
    let attr_len = u16::from_be_bytes([raw[2], raw[3]]) as usize;
    raw.splice(4 + attr_len..4 + attr_len, [0x80, 4, 2, 0, 0]);
    let l = (attr_len + 5) as u16;
    raw[2..4].copy_from_slice(&l.to_be_bytes());
    let u = Update::decode(raw.into(), 19, &Context::default()).unwrap();
    assert!(u.is_treat_as_withdraw());
    let ch = rib.apply_update(a, &u);
    assert_eq!(ch.adj_in.len(), 1);
    assert_eq!(ch.adj_in[0].route, None);
    assert!(rib.loc_rib().is_empty());
}

#[test]
fn stale_mark_refresh_purge() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8", "11.0.0.0/8"], &[]));
    let ch = rib.peer_down(a, true);
    assert_eq!(ch.adj_in.len(), 2);
    assert!(
        ch.adj_in
            .iter()
            .all(|c| c.route.as_ref().unwrap().stale == Staleness::Stale)
    );
    assert!(
        ch.adj_in.iter().all(|c| c.nlri.path_id.is_none()),
        "as received: no path id"
    );
    // A second restart keeps them stale and reports nothing.
    assert!(rib.mark_stale(a, V4).is_empty());
    // Re-announced: fresh again.
    let ch = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    assert_eq!(ch.adj_in[0].route.as_ref().unwrap().stale, Staleness::Fresh);
    // End-of-RIB: purge what is still stale.
    let ch = rib.apply_update(a, &Update::end_of_rib_marker(V4));
    assert_eq!(ch.end_of_rib, Some(V4));
    let ch = rib.purge_stale(a, V4);
    assert_eq!(ch.adj_in.len(), 1);
    assert_eq!(ch.adj_in[0].nlri.prefix, p("11.0.0.0/8"));
    assert_eq!(rib.loc_rib().len(V4), 1);
}

#[test]
fn llgr_stale_and_no_llgr() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let mut no_llgr = attrs(&[65001]);
    no_llgr.communities = Some(Communities::new([Community::NO_LLGR]));
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    let _ = rib.apply_update(a, &upd(no_llgr, &["11.0.0.0/8"], &[]));
    let _ = rib.mark_stale(a, V4);
    let ch = rib.mark_llgr_stale(a, V4);
    assert_eq!(ch.adj_in.len(), 2);
    assert_eq!(rib.adj_rib_in(a).unwrap().len(V4), 1);
    let e = rib
        .adj_rib_in(a)
        .unwrap()
        .get(V4, &Nlri::new(p("10.0.0.0/8")))
        .unwrap();
    assert_eq!(e.stale, Staleness::LlgrStale);
}

#[test]
fn ineligible_routes_and_ebgp_only_attributes() {
    let mut rib = Rib::new(RibConfig {
        cluster_id: Some(Ipv4Addr::new(9, 9, 9, 9)),
        ..cfg()
    });
    let e = rib.add_peer(peer(65001, 2)).unwrap();
    let i = rib.add_peer(peer(65000, 3)).unwrap();
    // Our own AS in the path: a loop.
    let ch = rib.apply_update(e, &upd(attrs(&[65001, 65000, 7]), &["10.0.0.0/8"], &[]));
    assert!(ch.adj_in.is_empty());
    // Reflected back to us: our router id as ORIGINATOR_ID, or our cluster in CLUSTER_LIST.
    let own = PathAttributes {
        originator_id: Some(Ipv4Addr::new(1, 1, 1, 1)),
        ..attrs(&[65001])
    };
    assert!(
        rib.apply_update(i, &upd(own, &["10.0.0.0/8"], &[]))
            .adj_in
            .is_empty()
    );
    let cl = PathAttributes {
        cluster_list: Some(ClusterList::new([Ipv4Addr::new(9, 9, 9, 9)])),
        ..attrs(&[65001])
    };
    assert!(
        rib.apply_update(i, &upd(cl, &["10.0.0.0/8"], &[]))
            .adj_in
            .is_empty()
    );
    // From an external peer the path starts with its AS, without confederation segments.
    let ch = rib.apply_update(e, &upd(attrs(&[64999, 65001]), &["12.0.0.0/8"], &[]));
    assert!(ch.adj_in.is_empty());
    let confed = PathAttributes {
        as_path: Some(AsPath::from_segments([
            bgp_wire::Segment {
                kind: bgp_wire::SegmentType::AsSequence,
                asns: vec![Asn(65001)],
            },
            bgp_wire::Segment {
                kind: bgp_wire::SegmentType::AsConfedSequence,
                asns: vec![Asn(64512)],
            },
        ])),
        ..attrs(&[])
    };
    assert!(
        rib.apply_update(e, &upd(confed, &["12.0.0.0/8"], &[]))
            .adj_in
            .is_empty()
    );
    // LOCAL_PREF, ORIGINATOR_ID, CLUSTER_LIST from an external peer are discarded.
    let ext = PathAttributes {
        local_pref: Some(500),
        originator_id: Some(Ipv4Addr::new(5, 5, 5, 5)),
        cluster_list: Some(ClusterList::new([Ipv4Addr::new(5, 5, 5, 5)])),
        ..attrs(&[65001])
    };
    let _ = rib.apply_update(e, &upd(ext, &["11.0.0.0/8"], &[]));
    let b = rib.loc_rib().best(V4, &p("11.0.0.0/8")).unwrap();
    assert_eq!(b.attrs.attrs.local_pref, None);
    assert_eq!(b.attrs.attrs.originator_id, None);
    assert_eq!(b.attrs.attrs.cluster_list, None);
}

#[test]
fn llgr_stale_routes_go_only_to_llgr_peers_with_the_community() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let plain = rib.add_peer(peer(65002, 3)).unwrap();
    let mut c = peer(65003, 4);
    c.llgr = true;
    let with_llgr = rib.add_peer(c).unwrap();
    for id in [plain, with_llgr] {
        up(&mut rib, id);
        let _ = drain_updates(&mut rib, id);
    }
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    for id in [plain, with_llgr] {
        let _ = drain_updates(&mut rib, id);
    }
    let _ = rib.peer_down(a, true);
    // Stale (RFC 4724): nothing changes for anyone.
    assert_eq!(rib.adj_rib_out(plain).unwrap().pending(), 0);
    let ch = rib.mark_llgr_stale(a, V4);
    assert_eq!(ch.best.len(), 1);
    let (d, _) = drain_updates(&mut rib, plain);
    assert_eq!(d.withdrawn, 1, "withdrawn from the peer without LLGR");
    let (_, us) = drain_updates(&mut rib, with_llgr);
    let comms = us[0].attributes.communities.as_ref().unwrap();
    assert!(comms.contains(Community::LLGR_STALE));
    // Re-announced fresh: back to both, without the community.
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    let (d, _) = drain_updates(&mut rib, plain);
    assert_eq!(d.announced, 1);
    let (_, us) = drain_updates(&mut rib, with_llgr);
    assert!(us[0].attributes.communities.is_none());
}

#[test]
fn max_prefix_is_reported() {
    let mut rib = Rib::new(cfg());
    let mut c = peer(65001, 2);
    c.max_prefix = Some(2);
    let a = rib.add_peer(c).unwrap();
    let ch = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8", "11.0.0.0/8"], &[]));
    assert!(ch.max_prefix_exceeded.is_empty());
    let ch = rib.apply_update(a, &upd(attrs(&[65001]), &["12.0.0.0/8"], &[]));
    assert_eq!(ch.max_prefix_exceeded, vec![V4]);
}

#[test]
fn no_adj_rib_in_keeps_nothing() {
    let mut rib = Rib::new(cfg());
    let mut c = peer(65001, 2);
    c.keep_adj_rib_in = false;
    let a = rib.add_peer(c).unwrap();
    let ch = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    assert!(ch.is_empty());
    assert!(rib.loc_rib().is_empty());
    assert_eq!(rib.attribute_sets(), 0);
}

#[test]
fn mp_routes_keep_their_next_hop() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let nh = NextHop::Ipv6("2001:db8::1".parse().unwrap());
    let u = Update {
        attributes: PathAttributes {
            next_hop: None,
            ..attrs(&[65001])
        },
        mp_reach: Some(bgp_wire::MpReach {
            family: AfiSafi::IPV6_UNICAST,
            next_hop: nh.clone(),
            nlri: Nlris::new(
                AfiSafi::IPV6_UNICAST,
                false,
                [Nlri::new(p("2001:db8::/32"))],
            )
            .unwrap(),
        }),
        ..Update::default()
    };
    let ch = rib.apply_update(a, &u);
    assert_eq!(ch.best.len(), 1);
    let b = rib
        .loc_rib()
        .best(AfiSafi::IPV6_UNICAST, &p("2001:db8::/32"))
        .unwrap();
    assert_eq!(b.attrs.mp_next_hop.as_deref(), Some(&nh));
}

// ---- best path ----

fn two_peers(
    a_cfg: PeerConfig,
    b_cfg: PeerConfig,
    a_attrs: PathAttributes,
    b_attrs: PathAttributes,
) -> (Rib, SourceId, SourceId) {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(a_cfg).unwrap();
    let b = rib.add_peer(b_cfg).unwrap();
    let _ = rib.apply_update(a, &upd(a_attrs, &["10.0.0.0/8"], &[]));
    let _ = rib.apply_update(b, &upd(b_attrs, &["10.0.0.0/8"], &[]));
    (rib, a, b)
}

#[test]
fn best_path_tie_breakers() {
    // LOCAL_PREF.
    let (rib, _, b) = two_peers(
        peer(65000, 2),
        peer(65000, 3),
        PathAttributes {
            local_pref: Some(100),
            ..attrs(&[1])
        },
        PathAttributes {
            local_pref: Some(200),
            ..attrs(&[1, 2, 3])
        },
    );
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(b));
    // AS_PATH length (an AS_SET counts 1).
    let (rib, a, _) = two_peers(
        peer(65001, 2),
        peer(65002, 3),
        attrs(&[65001, 5]),
        attrs(&[65002, 5, 6]),
    );
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(a));
    // ORIGIN.
    let (rib, _, b) = two_peers(
        peer(65001, 2),
        peer(65002, 3),
        PathAttributes {
            origin: Some(Origin::Incomplete),
            ..attrs(&[65001])
        },
        PathAttributes {
            origin: Some(Origin::Egp),
            ..attrs(&[65002])
        },
    );
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(b));
    // MED, same neighbouring AS: lower wins.
    let (rib, _, b) = two_peers(
        peer(65001, 2),
        peer(65001, 3),
        PathAttributes {
            med: Some(50),
            ..attrs(&[65001])
        },
        PathAttributes {
            med: Some(10),
            ..attrs(&[65001])
        },
    );
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(b));
    // MED, different neighbouring ASes: not compared; the router id decides (a: 2.2.2.2).
    let (rib, a, _) = two_peers(
        peer(65001, 2),
        peer(65002, 3),
        PathAttributes {
            med: Some(50),
            ..attrs(&[65001])
        },
        PathAttributes {
            med: Some(10),
            ..attrs(&[65002])
        },
    );
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(a));
    // eBGP over iBGP.
    let (rib, _, b) = two_peers(
        peer(65000, 2),
        peer(65001, 3),
        attrs(&[65001]),
        attrs(&[65001]),
    );
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(b));
    // Lowest router id, or ORIGINATOR_ID when present.
    let (rib, _, b) = two_peers(
        peer(65000, 2),
        peer(65000, 3),
        PathAttributes {
            originator_id: Some(Ipv4Addr::new(9, 9, 9, 9)),
            ..attrs(&[1])
        },
        attrs(&[1]),
    );
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(b));
    // Shortest CLUSTER_LIST.
    let same_id = Some(Ipv4Addr::new(7, 7, 7, 7));
    let (rib, _, b) = two_peers(
        peer(65000, 2),
        peer(65000, 3),
        PathAttributes {
            originator_id: same_id,
            cluster_list: Some(ClusterList::new([
                Ipv4Addr::new(1, 0, 0, 1),
                Ipv4Addr::new(1, 0, 0, 2),
            ])),
            ..attrs(&[1])
        },
        PathAttributes {
            originator_id: same_id,
            cluster_list: Some(ClusterList::new([Ipv4Addr::new(1, 0, 0, 1)])),
            ..attrs(&[1])
        },
    );
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(b));
    // Lowest peer address (same router id).
    let mut pa = peer(65001, 2);
    let mut pb = peer(65001, 3);
    pa.address = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 200));
    pb.address = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100));
    pb.router_id = pa.router_id;
    let (rib, _, b) = two_peers(pa, pb, attrs(&[65001]), attrs(&[65001]));
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(b));
}

#[test]
fn multipath_set() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    let c = rib.add_peer(peer(65003, 4)).unwrap();
    let _ = rib.apply_update(a, &upd(attrs(&[65001, 9]), &["10.0.0.0/8"], &[]));
    let _ = rib.apply_update(b, &upd(attrs(&[65002, 9]), &["10.0.0.0/8"], &[]));
    let _ = rib.apply_update(c, &upd(attrs(&[65003, 9, 9]), &["10.0.0.0/8"], &[]));
    let set: Vec<SourceId> = rib
        .multipath(V4, &p("10.0.0.0/8"))
        .iter()
        .map(|r| r.source)
        .collect();
    assert_eq!(set.len(), 2);
    assert!(set.contains(&a) && set.contains(&b));
    assert_eq!(
        best_source(&rib, "10.0.0.0/8"),
        Some(a),
        "lowest router id among them"
    );
}

#[test]
fn stale_routes_lose_to_fresh_and_llgr_to_both() {
    let (mut rib, a, b) = two_peers(
        peer(65001, 2),
        peer(65002, 3),
        attrs(&[65001]),
        attrs(&[65002, 1, 2]),
    );
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(a));
    let ch = rib.mark_stale(a, V4);
    assert_eq!(ch.best.len(), 1);
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(b));
    let _ = rib.mark_stale(b, V4);
    assert_eq!(
        best_source(&rib, "10.0.0.0/8"),
        Some(a),
        "both stale: the usual rules"
    );
    let _ = rib.mark_llgr_stale(a, V4);
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(b));
}

#[test]
fn only_real_best_changes_are_reported() {
    let (mut rib, a, _) = two_peers(
        peer(65001, 2),
        peer(65002, 3),
        attrs(&[65001]),
        attrs(&[65002, 1, 2]),
    );
    let log = Arc::new(Mutex::new(0usize));
    struct Count(Arc<Mutex<usize>>);
    impl RouteSink for Count {
        fn best_changed(&mut self, _: &BestChange) {
            *self.0.lock().unwrap() += 1;
        }
    }
    rib.set_sink(Box::new(Count(log.clone())));
    // A worse path from a new peer: Loc-RIB best unchanged.
    let c = rib.add_peer(peer(65003, 4)).unwrap();
    let ch = rib.apply_update(c, &upd(attrs(&[65003, 1, 2, 3]), &["10.0.0.0/8"], &[]));
    assert_eq!((ch.adj_in.len(), ch.best.len()), (1, 0));
    // The best withdrawn: one change, to the next best.
    let ch = rib.apply_update(a, &upd(PathAttributes::default(), &[], &["10.0.0.0/8"]));
    assert_eq!(ch.best.len(), 1);
    assert_eq!(ch.best[0].old.as_ref().unwrap().source, a);
    assert_eq!(*log.lock().unwrap(), 1);
}

#[test]
fn add_path_candidates_from_one_peer() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let mk = |id: u32| Nlris::new(V4, true, [Nlri::with_path_id(p("10.0.0.0/8"), id)]).unwrap();
    let u1 = Update {
        attributes: attrs(&[65001, 1, 2]),
        nlri: mk(1),
        ..Update::default()
    };
    let u2 = Update {
        attributes: attrs(&[65001]),
        nlri: mk(2),
        ..Update::default()
    };
    let _ = rib.apply_update(a, &u1);
    let _ = rib.apply_update(a, &u2);
    assert_eq!(rib.loc_rib().candidates(V4, &p("10.0.0.0/8")).len(), 2);
    assert_eq!(rib.loc_rib().best(V4, &p("10.0.0.0/8")).unwrap().path_id, 2);
    let w = Update {
        withdrawn: mk(2),
        ..Update::default()
    };
    let ids: Vec<_> = rib
        .adj_rib_in(a)
        .unwrap()
        .iter(V4)
        .map(|(n, _)| n.path_id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&Some(1)) && ids.contains(&Some(2)));
    let ch = rib.apply_update(a, &w);
    assert_eq!(ch.best[0].new.as_ref().unwrap().path_id, 1);
}

// ---- local origin ----

#[test]
fn local_announcements_are_idempotent() {
    let mut rib = Rib::new(cfg());
    let ra = RouteAttributes::new(attrs(&[]));
    let ch = rib.announce(V4, p("192.0.2.0/24"), ra.clone());
    assert_eq!(ch.best.len(), 1);
    assert!(rib.announce(V4, p("192.0.2.0/24"), ra.clone()).is_empty());
    assert!(rib.withdraw(V4, p("198.51.100.0/24")).is_empty());
    // Local routes win over learned ones.
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let ch = rib.apply_update(a, &upd(attrs(&[65001]), &["192.0.2.0/24"], &[]));
    assert!(ch.best.is_empty());
    assert_eq!(best_source(&rib, "192.0.2.0/24"), Some(SourceId::LOCAL));
    let ch = rib.withdraw(V4, p("192.0.2.0/24"));
    assert_eq!(ch.best[0].new.as_ref().unwrap().source, a);
}

#[test]
fn local_announcements_limited_to_named_peers() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    for id in [a, b] {
        up(&mut rib, id);
        let _ = drain_updates(&mut rib, id);
    }
    let ra = RouteAttributes::new(attrs(&[]));
    let _ = rib.announce_to(V4, p("192.0.2.0/24"), ra.clone(), &[b]);
    assert_eq!(rib.adj_rib_out(a).unwrap().pending(), 0);
    assert_eq!(rib.adj_rib_out(b).unwrap().pending(), 1);
    // The same route to everyone: only the Adj-RIBs-Out change.
    let ch = rib.announce(V4, p("192.0.2.0/24"), ra);
    assert!(ch.best.is_empty());
    assert_eq!(rib.adj_rib_out(a).unwrap().pending(), 1);
}

// ---- Adj-RIB-Out ----

#[test]
fn ebgp_export_prepends_and_sets_next_hop_self() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    up(&mut rib, b);
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!(
        d.end_of_rib,
        vec![V4, AfiSafi::IPV6_UNICAST],
        "End-of-RIB after the (empty) table"
    );
    assert_eq!(us.len(), 2);
    let a_attrs = PathAttributes {
        local_pref: Some(300),
        med: Some(5),
        ..attrs(&[65001])
    };
    let _ = rib.apply_update(a, &upd(a_attrs, &["10.0.0.0/8"], &[]));
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!((d.messages, d.announced), (1, 1));
    let got = &us[0].attributes;
    assert_eq!(got.as_path.as_ref().unwrap().to_string(), "65000 65001");
    assert_eq!(got.next_hop, Some(Ipv4Addr::new(10, 0, 0, 254)));
    assert_eq!(got.local_pref, None);
    assert_eq!(got.med, None);
    // Never back to the source.
    up(&mut rib, a);
    let (_, us) = drain_updates(&mut rib, a);
    assert!(us.iter().all(|u| u.nlri.is_empty()));
}

#[test]
fn ipv6_export_uses_mp_reach_with_next_hop_self() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let mut cb = peer(65002, 3);
    cb.local_v6 = Some("2001:db8::fe".parse().unwrap());
    let b = rib.add_peer(cb).unwrap();
    up(&mut rib, b);
    let _ = drain_updates(&mut rib, b);
    let u = Update {
        attributes: PathAttributes {
            next_hop: None,
            ..attrs(&[65001])
        },
        mp_reach: Some(bgp_wire::MpReach {
            family: AfiSafi::IPV6_UNICAST,
            next_hop: NextHop::Ipv6("2001:db8::1".parse().unwrap()),
            nlri: Nlris::new(
                AfiSafi::IPV6_UNICAST,
                false,
                [Nlri::new(p("2001:db8:1::/48"))],
            )
            .unwrap(),
        }),
        ..Update::default()
    };
    let _ = rib.apply_update(a, &u);
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!(d.announced, 1);
    let m = us[0].mp_reach.as_ref().unwrap();
    assert_eq!(m.next_hop, NextHop::Ipv6("2001:db8::fe".parse().unwrap()));
    assert_eq!(us[0].attributes.next_hop, None);
    assert_eq!(
        us[0].attributes.as_path.as_ref().unwrap().to_string(),
        "65000 65001"
    );
    // Withdrawn: an MP_UNREACH_NLRI.
    let w = Update {
        mp_unreach: Some(bgp_wire::MpUnreach {
            family: AfiSafi::IPV6_UNICAST,
            withdrawn: Nlris::new(
                AfiSafi::IPV6_UNICAST,
                false,
                [Nlri::new(p("2001:db8:1::/48"))],
            )
            .unwrap(),
        }),
        ..Update::default()
    };
    let _ = rib.apply_update(a, &w);
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!(d.withdrawn, 1);
    assert_eq!(us[0].withdrawn_all().count(), 1);
}

#[test]
fn removing_a_peer_withdraws_its_routes() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    up(&mut rib, b);
    let _ = drain_updates(&mut rib, b);
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8", "11.0.0.0/8"], &[]));
    let _ = drain_updates(&mut rib, b);
    let ch = rib.remove_peer(a);
    assert_eq!((ch.adj_in.len(), ch.best.len()), (2, 2));
    assert!(ch.best.iter().all(|c| c.new.is_none()));
    assert!(rib.adj_rib_in(a).is_none());
    let (d, _) = drain_updates(&mut rib, b);
    assert_eq!(d.withdrawn, 2);
    drop(ch);
    rib.sweep();
    assert_eq!(rib.attribute_sets(), 0);
}

#[test]
fn ibgp_split_horizon_and_route_reflection() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65000, 2)).unwrap();
    let b = rib.add_peer(peer(65000, 3)).unwrap();
    up(&mut rib, b);
    let _ = drain_updates(&mut rib, b);
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    assert_eq!(
        rib.adj_rib_out(b).unwrap().pending(),
        0,
        "iBGP to iBGP: not without reflection"
    );

    let mut rib = Rib::new(RibConfig {
        cluster_id: Some(Ipv4Addr::new(1, 1, 1, 1)),
        ..cfg()
    });
    let mut ca = peer(65000, 2);
    ca.rr_client = true;
    let a = rib.add_peer(ca).unwrap();
    let b = rib.add_peer(peer(65000, 3)).unwrap();
    up(&mut rib, b);
    let _ = drain_updates(&mut rib, b);
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    let (_, us) = drain_updates(&mut rib, b);
    let got = &us[0].attributes;
    assert_eq!(got.originator_id, Some(Ipv4Addr::new(2, 2, 2, 2)));
    assert_eq!(
        got.cluster_list
            .as_ref()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        vec![Ipv4Addr::new(1, 1, 1, 1)]
    );
    assert_eq!(got.local_pref, Some(100));
    assert_eq!(
        got.next_hop,
        Some(Ipv4Addr::new(10, 0, 0, 9)),
        "next hop unchanged on iBGP"
    );
}

#[test]
fn well_known_communities_are_honoured() {
    for (c, to_ebgp, to_ibgp) in [
        (Community::NO_EXPORT, false, true),
        (Community::NO_EXPORT_SUBCONFED, false, true),
        (Community::NO_ADVERTISE, false, false),
        (Community::new(1, 1), true, true),
    ] {
        let mut rib = Rib::new(cfg());
        let e = rib.add_peer(peer(65002, 3)).unwrap();
        let i = rib.add_peer(peer(65000, 4)).unwrap();
        up(&mut rib, e);
        up(&mut rib, i);
        let _ = drain_updates(&mut rib, e);
        let _ = drain_updates(&mut rib, i);
        let ra = RouteAttributes::new(PathAttributes {
            communities: Some(Communities::new([c])),
            ..attrs(&[])
        });
        let _ = rib.announce(V4, p("192.0.2.0/24"), ra);
        assert_eq!(rib.adj_rib_out(e).unwrap().pending() == 1, to_ebgp, "{c}");
        assert_eq!(rib.adj_rib_out(i).unwrap().pending() == 1, to_ibgp, "{c}");
    }
}

#[test]
fn otc_roles() {
    let mut rib = Rib::new(cfg());
    let mut from_provider = peer(65001, 2);
    from_provider.local_role = Some(Role::Customer);
    let mut from_customer = peer(65003, 4);
    from_customer.local_role = Some(Role::Provider);
    let mut to_peer = peer(65002, 3);
    to_peer.local_role = Some(Role::Peer);
    let prov = rib.add_peer(from_provider).unwrap();
    let cust = rib.add_peer(from_customer).unwrap();
    let lateral = rib.add_peer(to_peer).unwrap();
    up(&mut rib, lateral);
    up(&mut rib, cust);
    let _ = drain_updates(&mut rib, lateral);
    let _ = drain_updates(&mut rib, cust);
    // From a provider: OTC added on ingress; not sent to a peer, sent to a customer.
    let _ = rib.apply_update(prov, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    assert_eq!(
        rib.loc_rib()
            .best(V4, &p("10.0.0.0/8"))
            .unwrap()
            .attrs
            .attrs
            .otc,
        Some(Asn(65001))
    );
    assert_eq!(rib.adj_rib_out(lateral).unwrap().pending(), 0);
    assert_eq!(rib.adj_rib_out(cust).unwrap().pending(), 1);
    // From a customer with OTC set: a leak, dropped.
    let leak = PathAttributes {
        otc: Some(Asn(64999)),
        ..attrs(&[65003])
    };
    let ch = rib.apply_update(cust, &upd(leak, &["11.0.0.0/8"], &[]));
    assert!(ch.adj_in.is_empty());
    // From a customer without OTC: to the peer, with OTC = our AS.
    let _ = rib.apply_update(cust, &upd(attrs(&[65003]), &["12.0.0.0/8"], &[]));
    let (_, us) = drain_updates(&mut rib, lateral);
    let u = us.iter().find(|u| !u.nlri.is_empty()).unwrap();
    assert_eq!(u.attributes.otc, Some(Asn(65000)));
}

#[test]
fn slow_peer_gets_each_prefix_once_in_its_latest_state() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    up(&mut rib, b);
    let _ = drain_updates(&mut rib, b);
    for i in 0..5u32 {
        let _ = rib.apply_update(
            a,
            &upd(attrs(&[65001, i + 1]), &["10.0.0.0/8", "11.0.0.0/8"], &[]),
        );
    }
    assert_eq!(rib.adj_rib_out(b).unwrap().pending(), 2);
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!((d.messages, d.announced), (1, 2));
    assert_eq!(
        us[0].attributes.as_path.as_ref().unwrap().to_string(),
        "65000 65001 5"
    );
    // Announced then withdrawn before a drain: nothing to send.
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["12.0.0.0/8"], &[]));
    let _ = rib.apply_update(a, &upd(PathAttributes::default(), &[], &["12.0.0.0/8"]));
    let (d, _) = drain_updates(&mut rib, b);
    assert_eq!(d.messages, 0);
    // Withdrawals are packed too.
    let _ = rib.apply_update(
        a,
        &upd(
            PathAttributes::default(),
            &[],
            &["10.0.0.0/8", "11.0.0.0/8"],
        ),
    );
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!((d.messages, d.withdrawn), (1, 2));
    assert_eq!(us[0].withdrawn.count(), 2);
}

#[test]
fn initial_table_is_packed_then_end_of_rib() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let prefixes: Vec<String> = (0..3000u32)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = prefixes.iter().map(|s| s.as_str()).collect();
    for chunk in refs.chunks(500) {
        let _ = rib.apply_update(a, &upd(attrs(&[65001]), chunk, &[]));
    }
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    up(&mut rib, b);
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!(d.announced, 3000);
    assert_eq!(d.end_of_rib, vec![V4, AfiSafi::IPV6_UNICAST]);
    assert_eq!(us.iter().map(|u| u.nlri.count()).sum::<usize>(), 3000);
    // 3000 prefixes of 4 octets: three full messages, then the two markers.
    assert_eq!(us.len(), 5);
    assert_eq!(us[us.len() - 2].end_of_rib(), Some(V4));
    assert_eq!(us[us.len() - 1].end_of_rib(), Some(AfiSafi::IPV6_UNICAST));
}

#[test]
fn drain_work_can_be_capped() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let prefixes: Vec<String> = (0..100u32).map(|i| format!("10.0.{i}.0/24")).collect();
    let refs: Vec<&str> = prefixes.iter().map(|s| s.as_str()).collect();
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &refs, &[]));
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    rib.peer_up(b, Context::default(), AfiSafiSet::from_iter([V4]));
    let mut out = BytesMut::new();
    let d = rib.drain_limited(b, &mut out, 60);
    assert_eq!((d.announced, d.end_of_rib.len()), (60, 0));
    assert_eq!(rib.adj_rib_out(b).unwrap().pending(), 40);
    let d = rib.drain_limited(b, &mut out, 60);
    assert_eq!((d.announced, d.end_of_rib), (40, vec![V4]));
}

// ---- route refresh and soft reset out ----

/// The announced prefixes with their AS_PATH, and the withdrawn prefixes, of some UPDATEs.
fn announced_withdrawn(us: &[Update]) -> (Vec<(IpNet, String)>, Vec<IpNet>) {
    let mut ann = Vec::new();
    let mut wd = Vec::new();
    for u in us {
        let path = u.attributes.as_path.as_ref().map(|p| p.to_string());
        for (_, n) in u.announced() {
            ann.push((n.prefix, path.clone().unwrap_or_default()));
        }
        wd.extend(u.withdrawn_all().map(|(_, n)| n.prefix));
    }
    ann.sort();
    wd.sort();
    (ann, wd)
}

#[test]
fn refresh_out_resends_every_told_prefix_once_in_its_current_state() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    let c = rib.add_peer(peer(65003, 4)).unwrap();
    up(&mut rib, b);
    up(&mut rib, c);
    let _ = rib.apply_update(
        a,
        &upd(
            attrs(&[65001]),
            &["10.0.0.0/8", "11.0.0.0/8", "12.0.0.0/8"],
            &[],
        ),
    );
    let _ = rib.apply_update(a, &upd(attrs(&[65001, 9]), &["13.0.0.0/8"], &[]));
    for x in [b, c] {
        let (d, _) = drain_updates(&mut rib, x);
        assert_eq!(d.announced, 4);
        assert!(d.refresh_done.is_empty());
    }
    // Meanwhile: one prefix changes, one is withdrawn, neither drained yet.
    let _ = rib.apply_update(a, &upd(attrs(&[65001, 7]), &["11.0.0.0/8"], &[]));
    let _ = rib.apply_update(a, &upd(PathAttributes::default(), &[], &["12.0.0.0/8"]));

    assert!(!rib.refresh_pending(b, V4));
    assert!(rib.refresh_out(b, V4));
    // Idempotent: asking again before the drain sends nothing more.
    assert!(rib.refresh_out(b, V4));
    assert!(rib.refresh_pending(b, V4));
    assert_eq!(rib.adj_rib_out(b).unwrap().pending(), 4);
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!(d.refresh_done, vec![V4]);
    assert!(
        d.end_of_rib.is_empty(),
        "End-of-RIB went with the initial table"
    );
    assert!(!rib.refresh_pending(b, V4));
    let (ann, wd) = announced_withdrawn(&us);
    assert_eq!(
        ann,
        [
            (p("10.0.0.0/8"), "65000 65001".to_string()),
            (p("11.0.0.0/8"), "65000 65001 7".to_string()),
            (p("13.0.0.0/8"), "65000 65001 9".to_string()),
        ],
        "every prefix once, with its current attributes"
    );
    assert_eq!(
        wd,
        [p("12.0.0.0/8")],
        "the withdrawn prefix is withdrawn, not re-sent"
    );
    // Packed as usual: one UPDATE per attribute set, one for the withdrawal.
    assert_eq!((d.messages, d.announced, d.withdrawn), (4, 3, 1));
    // Done: the next drain has nothing.
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!(d, Drained::default());
    assert!(us.is_empty());
    // The other peer gets only the difference, and no refresh.
    let (d, us) = drain_updates(&mut rib, c);
    assert!(d.refresh_done.is_empty());
    let (ann, wd) = announced_withdrawn(&us);
    assert_eq!(ann, [(p("11.0.0.0/8"), "65000 65001 7".to_string())]);
    assert_eq!(wd, [p("12.0.0.0/8")]);
}

#[test]
fn refresh_out_needs_the_session_and_the_family() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    // Not up.
    assert!(!rib.refresh_out(b, V4));
    assert!(!rib.refresh_pending(b, V4));
    rib.peer_up(b, Context::default(), AfiSafiSet::from_iter([V4]));
    // Not negotiated; unknown peer.
    assert!(!rib.refresh_out(b, AfiSafi::IPV6_UNICAST));
    assert!(!rib.refresh_out(SourceId(99), V4));
    let _ = drain_updates(&mut rib, b);
    // A refresh pending when the session goes down is forgotten with the Adj-RIB-Out.
    assert!(rib.refresh_out(b, V4));
    let _ = rib.peer_down(b, false);
    assert!(!rib.refresh_pending(b, V4));
}

#[test]
fn refresh_of_an_empty_table_is_done_at_the_next_drain() {
    let mut rib = Rib::new(cfg());
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    up(&mut rib, b);
    let _ = drain_updates(&mut rib, b);
    assert!(rib.refresh_out(b, AfiSafi::IPV6_UNICAST));
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!(
        (d.messages, d.refresh_done),
        (0, vec![AfiSafi::IPV6_UNICAST])
    );
    assert!(us.is_empty());
}

#[test]
fn refresh_is_done_when_what_was_queued_at_its_start_is_drained() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let prefixes: Vec<String> = (0..100u32).map(|i| format!("10.0.{i}.0/24")).collect();
    let refs: Vec<&str> = prefixes.iter().map(|s| s.as_str()).collect();
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &refs, &[]));
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    rib.peer_up(b, Context::default(), AfiSafiSet::from_iter([V4]));
    let _ = drain_updates(&mut rib, b);
    assert!(rib.refresh_out(b, V4));
    // A change after the refresh started queues behind it.
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.1.0.0/24"], &[]));
    let mut out = BytesMut::new();
    let d = rib.drain_limited(b, &mut out, 60);
    assert_eq!((d.announced, d.refresh_done.len()), (60, 0));
    assert!(rib.refresh_pending(b, V4));
    let d = rib.drain_limited(b, &mut out, 40);
    assert_eq!((d.announced, d.refresh_done), (40, vec![V4]));
    assert_eq!(rib.adj_rib_out(b).unwrap().pending(), 1);
    let d = rib.drain_limited(b, &mut out, 40);
    assert_eq!((d.announced, d.refresh_done.len()), (1, 0));
}

#[test]
fn update_peer_config_recomputes_what_the_peer_should_have() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    let c = rib.add_peer(peer(65003, 4)).unwrap();
    up(&mut rib, b);
    up(&mut rib, c);
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8", "11.0.0.0/8"], &[]));
    let _ = drain_updates(&mut rib, b);
    let _ = drain_updates(&mut rib, c);
    // The same settings: nothing.
    let ch = rib.update_peer_config(b, peer(65002, 3));
    assert!(ch.is_empty());
    assert_eq!(rib.adj_rib_out(b).unwrap().pending(), 0);
    // Prepends and another next hop towards b: both prefixes again, in one UPDATE.
    let mut nb = peer(65002, 3);
    nb.prepend = 2;
    nb.local_v4 = Some(Ipv4Addr::new(10, 0, 0, 253));
    let ch = rib.update_peer_config(b, nb.clone());
    assert!(ch.best.is_empty());
    let (d, us) = drain_updates(&mut rib, b);
    assert_eq!((d.messages, d.announced), (1, 2));
    assert_eq!(
        us[0].attributes.as_path.as_ref().unwrap().to_string(),
        "65000 65000 65000 65001"
    );
    assert_eq!(
        us[0].attributes.next_hop,
        Some(Ipv4Addr::new(10, 0, 0, 253))
    );
    // The others are not touched.
    assert_eq!(rib.adj_rib_out(c).unwrap().pending(), 0);
    // Now an internal peer: the path as received, with LOCAL_PREF.
    let mut ib = nb.clone();
    ib.asn = Asn(65000);
    let _ = rib.update_peer_config(b, ib);
    let (_, us) = drain_updates(&mut rib, b);
    let u = us.iter().find(|u| u.nlri.count() > 0).unwrap();
    assert_eq!(u.attributes.as_path.as_ref().unwrap().to_string(), "65001");
    assert_eq!(u.attributes.local_pref, Some(100));
    // A max-prefix limit already exceeded is reported.
    let mut na = peer(65001, 2);
    na.max_prefix = Some(1);
    let ch = rib.update_peer_config(a, na);
    assert_eq!(ch.max_prefix_exceeded, vec![V4]);
}

#[test]
fn update_peer_config_with_a_new_identity_runs_the_decision_again() {
    let (mut rib, a, b) = two_peers(
        peer(65001, 2),
        peer(65001, 3),
        attrs(&[65001]),
        PathAttributes {
            communities: Some(Communities::new([Community::new(65001, 3)])),
            ..attrs(&[65001])
        },
    );
    let c = rib.add_peer(peer(65003, 4)).unwrap();
    up(&mut rib, c);
    let _ = drain_updates(&mut rib, c);
    // The lowest BGP identifier wins: a (2.2.2.2) over b (3.3.3.3).
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(a));
    let mut na = peer(65001, 2);
    na.router_id = Ipv4Addr::new(9, 9, 9, 9);
    let ch = rib.update_peer_config(a, na);
    assert_eq!(ch.best.len(), 1);
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(b));
    // The other peers get b's route.
    let (d, us) = drain_updates(&mut rib, c);
    assert_eq!((d.messages, d.announced), (1, 1));
    assert!(us[0].attributes.communities.is_some());
    // Back: a wins again.
    let _ = rib.update_peer_config(a, peer(65001, 2));
    assert_eq!(best_source(&rib, "10.0.0.0/8"), Some(a));
    let (_, us) = drain_updates(&mut rib, c);
    assert!(us[0].attributes.communities.is_none());
}

// ---- proptest: everything announced then withdrawn leaves nothing ----

fn arb_prefix() -> impl Strategy<Value = IpNet> {
    (0u32..64, 8u8..=24).prop_map(|(a, l)| {
        IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(a << 24 | a << 8), l).unwrap()).trunc()
    })
}

fn arb_route_attrs() -> impl Strategy<Value = PathAttributes> {
    (
        proptest::collection::vec(65001u32..65004, 1..4),
        proptest::option::of(0u32..3),
        any::<bool>(),
    )
        .prop_map(|(path, med, comm)| PathAttributes {
            med,
            communities: comm.then(|| Communities::new([Community::new(1, 2)])),
            ..attrs(&path)
        })
}

proptest! {
    #[test]
    fn announce_then_withdraw_leaves_nothing(
        ops in proptest::collection::vec(
            (0usize..3, arb_route_attrs(), proptest::collection::vec(arb_prefix(), 0..6), proptest::collection::vec(arb_prefix(), 0..3)),
            1..30,
        ),
        local in proptest::collection::vec((arb_prefix(), arb_route_attrs()), 0..5),
    ) {
        let mut rib = Rib::new(cfg());
        let peers: Vec<SourceId> = (0..3u8).map(|i| rib.add_peer(peer(65001 + u32::from(i), i + 2)).unwrap()).collect();
        let out = rib.add_peer(peer(65010, 20)).unwrap();
        up(&mut rib, out);
        let mut announced: Vec<(SourceId, IpNet)> = Vec::new();
        for (who, a, ann, wd) in &ops {
            let to_str = |v: &Vec<IpNet>| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
            let (ann_s, wd_s) = (to_str(ann), to_str(wd));
            let ann_r: Vec<&str> = ann_s.iter().map(|s| s.as_str()).collect();
            let wd_r: Vec<&str> = wd_s.iter().map(|s| s.as_str()).collect();
            // The path starts with the sending peer's AS, as an external peer's must.
            let mut a = a.clone();
            a.as_path = a.as_path.map(|p| p.prepend(Asn(65001 + *who as u32), 1));
            let _ = rib.apply_update(peers[*who], &upd(a, &ann_r, &wd_r));
            announced.extend(ann.iter().map(|p| (peers[*who], *p)));
            if *who == 0 {
                let _ = rib.drain(out, &mut BytesMut::new());
            }
        }
        for (pfx, a) in &local {
            let _ = rib.announce(V4, *pfx, RouteAttributes::new(a.clone()));
        }
        prop_assert!(rib.attribute_sets() > 0 || announced.is_empty() && local.is_empty());
        for (who, pfx) in announced {
            let s = pfx.to_string();
            let _ = rib.apply_update(who, &upd(PathAttributes::default(), &[], &[s.as_str()]));
        }
        for (pfx, _) in &local {
            let _ = rib.withdraw(V4, *pfx);
        }
        let _ = rib.drain(out, &mut BytesMut::new());
        rib.sweep();
        prop_assert!(rib.loc_rib().is_empty());
        for id in peers.iter().chain([&out]) {
            prop_assert!(rib.adj_rib_in(*id).unwrap().is_empty());
            prop_assert_eq!(rib.adj_rib_out(*id).unwrap().pending(), 0);
            prop_assert_eq!(rib.adj_rib_out(*id).unwrap().told_count(V4), 0);
        }
        prop_assert_eq!(rib.attribute_sets(), 0);
    }
}

proptest! {
    /// Graceful restart in the mix: random UPDATEs, restarts (stale marks), long-lived stale
    /// marks and purges, local announcements, drains; then everything withdrawn and purged
    /// leaves every table empty and every attribute set freed.
    #[test]
    fn restarts_and_purges_leave_nothing(
        ops in proptest::collection::vec(
            prop_oneof![
                (0usize..3, arb_route_attrs(), proptest::collection::vec(arb_prefix(), 0..6))
                    .prop_map(|(w, a, v)| (0u8, w, a, v)),
                (0usize..3).prop_map(|w| (1u8, w, PathAttributes::default(), vec![])),
                (0usize..3).prop_map(|w| (2u8, w, PathAttributes::default(), vec![])),
                (0usize..3).prop_map(|w| (3u8, w, PathAttributes::default(), vec![])),
                (arb_route_attrs(), arb_prefix()).prop_map(|(a, p)| (4u8, 0, a, vec![p])),
            ],
            1..40,
        ),
    ) {
        let mut rib = Rib::new(cfg());
        let peers: Vec<SourceId> = (0..3u8)
            .map(|i| rib.add_peer(peer(65001 + u32::from(i), i + 2)).unwrap())
            .collect();
        let mut c = peer(65010, 20);
        c.llgr = true;
        let out = rib.add_peer(c).unwrap();
        up(&mut rib, out);
        let mut announced: Vec<(SourceId, IpNet)> = Vec::new();
        let mut local: Vec<IpNet> = Vec::new();
        for (kind, who, a, pfx) in &ops {
            let id = peers[*who];
            match kind {
                0 => {
                    let s: Vec<String> = pfx.iter().map(|p| p.to_string()).collect();
                    let r: Vec<&str> = s.iter().map(|x| x.as_str()).collect();
                    let mut a = a.clone();
                    a.as_path = a.as_path.map(|p| p.prepend(Asn(65001 + *who as u32), 1));
                    let _ = rib.apply_update(id, &upd(a, &r, &[]));
                    announced.extend(pfx.iter().map(|p| (id, *p)));
                }
                1 => drop(rib.peer_down(id, true)),
                2 => drop(rib.mark_llgr_stale(id, V4)),
                3 => drop(rib.purge_stale(id, V4)),
                _ => {
                    let _ = rib.announce(V4, pfx[0], RouteAttributes::new(a.clone()));
                    local.push(pfx[0]);
                }
            }
            if *who == 1 {
                let _ = rib.drain(out, &mut BytesMut::new());
            }
        }
        for (id, pfx) in announced {
            let s = pfx.to_string();
            let _ = rib.apply_update(id, &upd(PathAttributes::default(), &[], &[s.as_str()]));
        }
        for pfx in local {
            let _ = rib.withdraw(V4, pfx);
        }
        for id in &peers {
            let _ = rib.purge_stale(*id, V4);
        }
        let _ = rib.drain(out, &mut BytesMut::new());
        rib.sweep();
        prop_assert!(rib.loc_rib().is_empty());
        for id in peers.iter().chain([&out]) {
            prop_assert!(rib.adj_rib_in(*id).unwrap().is_empty());
            prop_assert_eq!(rib.adj_rib_out(*id).unwrap().pending(), 0);
            prop_assert_eq!(rib.adj_rib_out(*id).unwrap().told_count(V4), 0);
        }
        prop_assert_eq!(rib.attribute_sets(), 0);
    }
}

#[test]
fn peers_added_and_removed_at_runtime_never_exhaust_identifiers() {
    let mut rib = Rib::new(cfg());
    let keep = rib.add_peer(peer(65001, 1)).unwrap();
    let _ = rib.apply_update(keep, &upd(attrs(&[65001]), &["10.0.0.0/24"], &[]));
    for _ in 0..70_000 {
        let id = rib.add_peer(peer(65002, 2)).unwrap();
        assert_ne!(id, keep);
        let _ = rib.remove_peer(id);
    }
    assert_eq!(best_source(&rib, "10.0.0.0/24"), Some(keep));
}

#[test]
fn churn_before_a_drain_leaves_no_adj_rib_out_entry_behind() {
    let mut rib = Rib::new(cfg());
    let src = rib.add_peer(peer(65001, 1)).unwrap();
    let out = rib.add_peer(peer(65002, 2)).unwrap();
    up(&mut rib, src);
    up(&mut rib, out);
    let _ = drain_updates(&mut rib, out);
    for i in 0..100u8 {
        let pfx = format!("10.{i}.0.0/16");
        let _ = rib.apply_update(src, &upd(attrs(&[65001]), &[&pfx], &[]));
        let _ = rib.apply_update(src, &upd(attrs(&[65001]), &[], &[&pfx]));
    }
    let (d, _) = drain_updates(&mut rib, out);
    assert_eq!((d.announced, d.withdrawn), (0, 0));
    assert_eq!(rib.adj_rib_out(out).map(|a| a.entries()), Some(0));
}

// ---- proptest: what a peer received is the export of the Loc-RIB ----

/// A peer's view, rebuilt from the UPDATEs it received: prefix -> (AS_PATH, communities,
/// next hop). Panics on a withdrawal of a prefix it does not hold.
fn receive(view: &mut std::collections::BTreeMap<IpNet, String>, out: &mut BytesMut) {
    while let Some((_, m)) = split_message(out, 4096).unwrap() {
        let Message::Update(u) = Message::decode(m, &Context::default()).unwrap() else {
            panic!("not an UPDATE")
        };
        for (_, n) in u.withdrawn_all() {
            assert!(
                view.remove(&n.prefix).is_some(),
                "withdrawal of {} that the peer does not hold",
                n.prefix
            );
        }
        let a = &u.attributes;
        let desc = format!(
            "{:?} {:?} {:?} {:?} {:?}",
            a.as_path.as_ref().map(|p| p.to_string()),
            a.communities,
            a.next_hop,
            a.med,
            a.local_pref
        );
        for (_, n) in u.announced() {
            view.insert(n.prefix, desc.clone());
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Update(usize, PathAttributes, Vec<IpNet>, Vec<IpNet>),
    Local(IpNet, PathAttributes, Option<bool>),
    LocalWithdraw(IpNet),
    Down(usize, bool),
    Llgr(usize),
    Purge(usize),
    Refresh,
    Prepend(usize),
    RouterId(usize, u8),
    Drain(usize),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            0usize..3,
            arb_route_attrs(),
            proptest::collection::vec(arb_prefix(), 0..6),
            proptest::collection::vec(arb_prefix(), 0..3)
        )
            .prop_map(|(w, a, ann, wd)| Op::Update(w, a, ann, wd)),
        2 => (arb_prefix(), arb_route_attrs(), proptest::option::of(any::<bool>()))
            .prop_map(|(p, a, s)| Op::Local(p, a, s)),
        1 => arb_prefix().prop_map(Op::LocalWithdraw),
        1 => (0usize..3, any::<bool>()).prop_map(|(w, r)| Op::Down(w, r)),
        1 => (0usize..3).prop_map(Op::Llgr),
        1 => (0usize..3).prop_map(Op::Purge),
        1 => Just(Op::Refresh),
        1 => (0usize..3).prop_map(Op::Prepend),
        1 => (0usize..3, 1u8..9).prop_map(|(w, r)| Op::RouterId(w, r)),
        4 => (0usize..8).prop_map(Op::Drain),
    ]
}

fn out_peer(prepend: usize) -> PeerConfig {
    let mut c = peer(65010, 20);
    c.llgr = true;
    c.prepend = prepend;
    c
}

proptest! {
    /// Random changes of the Loc-RIB (UPDATEs, local routes with and without a peer scope,
    /// restarts, long-lived stale marks, purges, identity changes of a source, new settings
    /// towards the peer, route refreshes) with drains of random size in between: once
    /// everything is drained, the peer holds exactly what a peer that comes up now with the
    /// same settings is sent (the export of the Loc-RIB), and it was never sent a withdrawal
    /// of a prefix it did not hold.
    #[test]
    fn what_the_peer_received_is_the_export_of_the_loc_rib(
        ops in proptest::collection::vec(arb_op(), 1..60),
    ) {
        let mut rib = Rib::new(cfg());
        let peers: Vec<SourceId> = (0..3u8)
            .map(|i| rib.add_peer(peer(65001 + u32::from(i), i + 2)).unwrap())
            .collect();
        let mut prepend = 0;
        let out = rib.add_peer(out_peer(prepend)).unwrap();
        up(&mut rib, out);
        let mut view = std::collections::BTreeMap::new();
        let mut buf = BytesMut::new();
        for op in &ops {
            match op {
                Op::Update(who, a, ann, wd) => {
                    let s = |v: &Vec<IpNet>| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
                    let (ann_s, wd_s) = (s(ann), s(wd));
                    let ann_r: Vec<&str> = ann_s.iter().map(|x| x.as_str()).collect();
                    let wd_r: Vec<&str> = wd_s.iter().map(|x| x.as_str()).collect();
                    let mut a = a.clone();
                    a.as_path = a.as_path.map(|p| p.prepend(Asn(65001 + *who as u32), 1));
                    let _ = rib.apply_update(peers[*who], &upd(a, &ann_r, &wd_r));
                }
                Op::Local(pfx, a, scope) => {
                    let attrs = RouteAttributes::new(a.clone());
                    let _ = match scope {
                        None => rib.announce(V4, *pfx, attrs),
                        Some(with_out) => {
                            // The peer that comes up at the end is `out`'s successor.
                            let to: Vec<SourceId> = if *with_out {
                                vec![out, SourceId(out.0 + 1), peers[0]]
                            } else {
                                vec![peers[1]]
                            };
                            rib.announce_to(V4, *pfx, attrs, &to)
                        }
                    };
                }
                Op::LocalWithdraw(pfx) => drop(rib.withdraw(V4, *pfx)),
                Op::Down(who, retain) => drop(rib.peer_down(peers[*who], *retain)),
                Op::Llgr(who) => drop(rib.mark_llgr_stale(peers[*who], V4)),
                Op::Purge(who) => drop(rib.purge_stale(peers[*who], V4)),
                Op::Refresh => prop_assert!(rib.refresh_out(out, V4)),
                Op::Prepend(n) => {
                    prepend = *n;
                    let _ = rib.update_peer_config(out, out_peer(prepend));
                }
                Op::RouterId(who, r) => {
                    let mut c = peer(65001 + *who as u32, *who as u8 + 2);
                    c.router_id = Ipv4Addr::new(*r, 0, 0, 1);
                    let _ = rib.update_peer_config(peers[*who], c);
                }
                Op::Drain(n) => {
                    let _ = rib.drain_limited(out, &mut buf, *n);
                    receive(&mut view, &mut buf);
                }
            }
        }
        let _ = rib.drain(out, &mut buf);
        receive(&mut view, &mut buf);
        prop_assert_eq!(rib.adj_rib_out(out).unwrap().pending(), 0);
        prop_assert_eq!(rib.adj_rib_out(out).unwrap().entries(), 0);
        prop_assert_eq!(rib.adj_rib_out(out).unwrap().told_count(V4), view.len());
        // A new peer with the same settings gets the export of the Loc-RIB.
        let fresh = rib.add_peer(out_peer(prepend)).unwrap();
        up(&mut rib, fresh);
        let mut expected = std::collections::BTreeMap::new();
        let _ = rib.drain(fresh, &mut buf);
        receive(&mut expected, &mut buf);
        prop_assert_eq!(view, expected);
    }
}

#[test]
fn adj_in_changes_can_be_counted_without_the_list() {
    let mut rib = Rib::new(cfg());
    rib.report_adj_in(false);
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let ch = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8", "11.0.0.0/8"], &[]));
    assert_eq!(
        (ch.adj_in.len(), ch.adj_in_changed, ch.best.len()),
        (0, 2, 2)
    );
    assert!(!ch.is_empty());
    drop(ch);
    let ch = rib.peer_down(a, true);
    assert_eq!((ch.adj_in.len(), ch.adj_in_changed), (0, 2));
    drop(ch);
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8"], &[]));
    let ch = rib.purge_stale(a, V4);
    assert_eq!((ch.adj_in.len(), ch.adj_in_changed), (0, 1));
    assert_eq!(rib.adj_rib_in(a).unwrap().len(V4), 1);
    assert!(rib.mark_stale(a, AfiSafi::IPV6_UNICAST).is_empty());
}

#[test]
fn exported_sets_live_only_while_they_are_written() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let b = rib.add_peer(peer(65002, 3)).unwrap();
    up(&mut rib, b);
    let _ = rib.apply_update(a, &upd(attrs(&[65001]), &["10.0.0.0/8", "11.0.0.0/8"], &[]));
    let _ = rib.apply_update(a, &upd(attrs(&[65001, 7]), &["12.0.0.0/8"], &[]));
    let (d, _) = drain_updates(&mut rib, b);
    assert_eq!(
        (d.messages, d.announced),
        (2 + 2, 3),
        "two UPDATEs, two End-of-RIB"
    );
    // The next operation frees what the drain exported: only the received sets remain,
    // without a full scan.
    let (d, _) = drain_updates(&mut rib, b);
    assert_eq!(d, Drained::default());
    assert_eq!(rib.attribute_sets(), 2);
    assert_eq!(rib.adj_rib_out(b).unwrap().entries(), 0);
    // A late peer: owed the table, then up to date.
    let c = rib.add_peer(peer(65003, 4)).unwrap();
    up(&mut rib, c);
    assert_eq!(rib.adj_rib_out(c).unwrap().pending(), 3);
    let _ = drain_updates(&mut rib, c);
    let _ = drain_updates(&mut rib, c);
    assert_eq!(rib.attribute_sets(), 2);
    assert_eq!(rib.adj_rib_out(c).unwrap().told_count(V4), 3);
}
