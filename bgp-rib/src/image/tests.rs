//! Images: round trips through a fresh RIB, resumed sessions that are owed nothing, bad
//! images (local helpers, STYLE: no testkit inside the crate).

use std::net::{IpAddr, Ipv4Addr};

use bgp_wire::{
    AfiSafi, AfiSafiSet, AsPath, Asn, Communities, Community, Context, MpReach, NextHop, Nlri,
    Nlris, Origin, PathAttributes, Update,
};
use bytes::BytesMut;
use ipnet::IpNet;
use proptest::prelude::*;

use crate::*;

const V4: AfiSafi = AfiSafi::IPV4_UNICAST;
const V6: AfiSafi = AfiSafi::IPV6_UNICAST;

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
    c.local_v6 = Some("2001:db8::fe".parse().unwrap());
    c.llgr = true;
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

/// An UPDATE announcing `prefixes` (IPv4 in the NLRI field, IPv6 in MP_REACH_NLRI), with
/// path ids when `ids` is given.
fn announce(a: PathAttributes, prefixes: &[(IpNet, Option<u32>)]) -> Update {
    let nlri = |v6: bool| {
        prefixes
            .iter()
            .filter(move |(p, _)| matches!(p, IpNet::V6(_)) == v6)
            .map(|&(prefix, path_id)| Nlri { path_id, prefix })
    };
    let ids = prefixes.iter().any(|(_, id)| id.is_some());
    let v6: Vec<Nlri> = nlri(true).collect();
    let mp_reach = (!v6.is_empty()).then(|| MpReach {
        family: V6,
        next_hop: NextHop::Ipv6("2001:db8::9".parse().unwrap()),
        nlri: Nlris::new(V6, ids, v6).unwrap(),
    });
    Update {
        attributes: a,
        nlri: Nlris::new(V4, ids, nlri(false)).unwrap(),
        mp_reach,
        ..Update::default()
    }
}

fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: Nlris::new(V4, false, prefixes.iter().map(|s| Nlri::new(p(s)))).unwrap(),
        ..Update::default()
    }
}

/// Prepends 64999 and adds a community: a policy that must not run twice.
struct Prepend;

impl ImportPolicy for Prepend {
    fn import(
        &mut self,
        _: &PeerConfig,
        _: AfiSafi,
        _: &Nlri,
        attrs: &RouteAttributes,
    ) -> PolicyAction {
        let mut a = attrs.clone();
        a.attrs.as_path = a.attrs.as_path.map(|p| p.prepend(Asn(64999), 1));
        let c = a.attrs.communities.take().unwrap_or_default();
        a.attrs.communities = Some(c.with(Community::new(65000, 7)));
        PolicyAction::Modify(a)
    }
}

/// Unusual stored forms: an IPv4 route with its next hop in MP_REACH_NLRI form and no
/// NEXT_HOP, or with no next hop at all; an IPv6 route that also has NEXT_HOP.
struct OddNextHops;

impl ImportPolicy for OddNextHops {
    fn import(
        &mut self,
        _: &PeerConfig,
        family: AfiSafi,
        nlri: &Nlri,
        attrs: &RouteAttributes,
    ) -> PolicyAction {
        let mut a = attrs.clone();
        match (family == V4, nlri.prefix.prefix_len() % 3) {
            (true, 0) => {
                a.mp_next_hop = a.attrs.next_hop.take().map(|n| Box::new(NextHop::Ipv4(n)));
            }
            (true, 1) => a.attrs.next_hop = None,
            (false, 0) => a.attrs.next_hop = Some(Ipv4Addr::new(192, 0, 2, 7)),
            (false, 1) => {
                a.mp_next_hop = Some(Box::new(NextHop::Other(bytes::Bytes::from_static(&[
                    1, 2, 3,
                ]))));
            }
            _ => return PolicyAction::Accept,
        }
        PolicyAction::Modify(a)
    }
}

#[derive(Clone, Copy)]
enum Policy {
    Accept,
    Prepend,
    Odd,
}

/// The peers of a scenario: configuration, import policy, session context and families.
struct Peers(Vec<(PeerConfig, Policy, Context, AfiSafiSet)>);

impl Peers {
    fn add(&self, rib: &mut Rib) -> Vec<SourceId> {
        self.0
            .iter()
            .map(|(c, pol, _, _)| {
                let import: Box<dyn ImportPolicy> = match pol {
                    Policy::Accept => Box::new(AcceptAll),
                    Policy::Prepend => Box::new(Prepend),
                    Policy::Odd => Box::new(OddNextHops),
                };
                rib.add_peer_with(c.clone(), import, Box::new(AcceptAll))
                    .unwrap()
            })
            .collect()
    }

    fn session(&self, i: usize) -> (Context, AfiSafiSet) {
        let (_, _, ctx, f) = &self.0[i];
        (*ctx, *f)
    }
}

fn both() -> AfiSafiSet {
    AfiSafiSet::from_iter([V4, V6])
}

fn scenario() -> Peers {
    let add_path = Context {
        add_path_receive: AfiSafiSet::from_iter([V4]),
        ..Context::default()
    };
    Peers(vec![
        // eBGP, both families, an import policy that prepends.
        (peer(65001, 2), Policy::Prepend, Context::default(), both()),
        // iBGP with ADD-PATH.
        (peer(65000, 3), Policy::Accept, add_path, both()),
        // eBGP that restarted: stale and long-lived stale routes.
        (peer(65002, 4), Policy::Accept, Context::default(), both()),
        // eBGP that sends nothing.
        (peer(65003, 5), Policy::Accept, Context::default(), both()),
    ])
}

fn local_routes(rib: &mut Rib) {
    let a = RouteAttributes::new(PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::empty()),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..PathAttributes::default()
    });
    let _ = rib.announce(V4, p("192.0.2.0/24"), a.clone());
    let _ = rib.announce(V4, p("10.1.0.0/16"), a);
}

/// The original RIB of [`scenario`], every peer up and drained.
fn original() -> (Rib, Vec<SourceId>) {
    let peers = scenario();
    let mut rib = Rib::new(cfg());
    let ids = peers.add(&mut rib);
    local_routes(&mut rib);
    for (i, id) in ids.iter().enumerate() {
        let (ctx, f) = peers.session(i);
        rib.peer_up(*id, ctx, f);
    }
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let v4 = |s: &str| (p(s), None);
    let _ = rib.apply_update(
        a,
        &announce(
            attrs(&[65001, 100]),
            &[
                v4("10.1.0.0/16"),
                v4("10.2.0.0/16"),
                (p("2001:db8:1::/48"), None),
            ],
        ),
    );
    let _ = rib.apply_update(a, &announce(attrs(&[65001]), &[v4("10.3.0.0/16")]));
    let ibgp = PathAttributes {
        local_pref: Some(200),
        ..attrs(&[65010])
    };
    let with_id = |s: &str, id| (p(s), Some(id));
    let _ = rib.apply_update(
        b,
        &announce(
            ibgp.clone(),
            &[
                with_id("10.2.0.0/16", 1),
                with_id("10.2.0.0/16", 2),
                with_id("10.4.0.0/16", 7),
            ],
        ),
    );
    let _ = rib.apply_update(
        b,
        &announce(
            PathAttributes {
                med: Some(5),
                ..ibgp
            },
            &[with_id("10.4.0.0/16", 8)],
        ),
    );
    // C sends routes, restarts (all stale), comes back with some of them: the others stay
    // stale; the IPv6 ones then become long-lived stale.
    let cattrs = PathAttributes {
        communities: Some(Communities::new([Community::new(65002, 1)])),
        ..attrs(&[65002, 300])
    };
    let _ = rib.apply_update(
        c,
        &announce(
            cattrs.clone(),
            &[
                v4("10.5.0.0/16"),
                v4("10.6.0.0/16"),
                v4("10.3.0.0/16"),
                (p("2001:db8:2::/48"), None),
                (p("2001:db8:1::/48"), None),
            ],
        ),
    );
    let _ = rib.peer_down(c, true);
    let (ctx, f) = peers.session(2);
    rib.peer_up(c, ctx, f);
    let _ = rib.apply_update(c, &announce(cattrs, &[v4("10.5.0.0/16")]));
    let _ = rib.mark_llgr_stale(c, V6);
    for id in &ids {
        let _ = drain(&mut rib, *id);
    }
    (rib, ids)
}

fn drain(rib: &mut Rib, id: SourceId) -> (Drained, BytesMut) {
    let mut out = BytesMut::new();
    let d = rib.drain(id, &mut out);
    (d, out)
}

/// A peer's Adj-RIB-In, every family, in a comparable order.
fn adj_in(rib: &Rib, id: SourceId) -> Vec<(AfiSafi, Nlri, RouteAttributes, Staleness)> {
    let a = rib.adj_rib_in(id).unwrap();
    let mut v: Vec<_> = AfiSafi::KNOWN
        .into_iter()
        .flat_map(|f| {
            a.iter(f)
                .map(move |(n, e)| (f, n, (*e.attrs).clone(), e.stale))
        })
        .collect();
    v.sort_by_key(|x| (x.0.afi.0, x.0.safi.0, x.1));
    v
}

fn loc(rib: &Rib) -> Vec<(IpNet, SourceId, u32, RouteAttributes, Staleness)> {
    let mut v: Vec<_> = AfiSafi::KNOWN
        .into_iter()
        .flat_map(|f| rib.loc_rib().iter(f))
        .map(|(prefix, b)| (prefix, b.source, b.path_id, (*b.attrs).clone(), b.stale))
        .collect();
    v.sort_by_key(|x| x.0);
    v
}

fn image(rib: &Rib, id: SourceId) -> BytesMut {
    let mut out = BytesMut::new();
    let stats = rib.adj_in_image(id, &mut out).unwrap();
    assert_eq!(stats.routes, rib.adj_rib_in(id).unwrap().total());
    assert_eq!(stats.bytes, out.len());
    out
}

/// Restores every peer of `peers` from `images` into a fresh RIB, with the local routes,
/// and resumes them.
fn restored(peers: &Peers, images: &[BytesMut]) -> (Rib, Vec<SourceId>) {
    let mut rib = Rib::new(cfg());
    let ids = peers.add(&mut rib);
    for (id, img) in ids.iter().zip(images) {
        let _ = rib.restore_adj_in(*id, img).unwrap();
    }
    local_routes(&mut rib);
    for (i, id) in ids.iter().enumerate() {
        let (ctx, f) = peers.session(i);
        rib.peer_resumed(*id, ctx, f);
    }
    (rib, ids)
}

#[test]
fn round_trip_resumes_every_peer_owing_nothing() {
    let (mut old, ids) = original();
    let images: Vec<BytesMut> = ids.iter().map(|id| image(&old, *id)).collect();
    let (mut new, new_ids) = restored(&scenario(), &images);
    assert_eq!(ids, new_ids);
    for id in &ids {
        assert_eq!(adj_in(&old, *id), adj_in(&new, *id), "{id:?}");
        for f in AfiSafi::KNOWN {
            let (o, n) = (old.adj_rib_in(*id).unwrap(), new.adj_rib_in(*id).unwrap());
            assert_eq!(o.len(f), n.len(f));
            let (o, n) = (old.adj_rib_out(*id).unwrap(), new.adj_rib_out(*id).unwrap());
            assert_eq!(o.told_count(f), n.told_count(f), "{id:?} {f:?}");
        }
    }
    assert_eq!(loc(&old), loc(&new));
    // The scenario has what it is meant to have.
    let all: Vec<_> = ids.iter().flat_map(|id| adj_in(&old, *id)).collect();
    for s in [Staleness::Fresh, Staleness::Stale, Staleness::LlgrStale] {
        assert!(all.iter().any(|r| r.3 == s), "{s:?}");
    }
    assert!(all.iter().any(|r| r.1.path_id == Some(2)));
    let prepended = adj_in(&old, ids[0]);
    let path = prepended[0].2.attrs.as_path.as_ref().unwrap();
    assert_eq!(
        path.asns().take(2).collect::<Vec<_>>(),
        [Asn(64999), Asn(65001)]
    );
    // Resumed: nothing owed, no End-of-RIB.
    for id in &ids {
        assert_eq!(new.adj_rib_out(*id).unwrap().entries(), 0);
        let (d, out) = drain(&mut new, *id);
        assert_eq!((d.messages, out.len()), (0, 0), "{id:?}: {d:?}");
    }
    // A new route from A: every other peer is told exactly what the original tells it.
    let u = announce(
        attrs(&[65001, 9]),
        &[(p("10.9.0.0/16"), None), (p("10.2.0.0/16"), None)],
    );
    let _ = old.apply_update(ids[0], &u);
    let _ = new.apply_update(ids[0], &u);
    let mut told = 0;
    for id in &ids {
        let (d_old, b_old) = drain(&mut old, *id);
        let (d_new, b_new) = drain(&mut new, *id);
        assert_eq!(d_old, d_new, "{id:?}");
        assert_eq!(b_old, b_new, "{id:?}");
        told += d_new.announced;
    }
    assert!(told > 0);
    // And a withdrawal.
    let _ = old.apply_update(ids[2], &withdraw(&["10.5.0.0/16", "10.6.0.0/16"]));
    let _ = new.apply_update(ids[2], &withdraw(&["10.5.0.0/16", "10.6.0.0/16"]));
    for id in &ids {
        assert_eq!(drain(&mut old, *id).1, drain(&mut new, *id).1, "{id:?}");
    }
}

#[test]
fn the_import_policy_is_not_applied_again() {
    let peers = Peers(vec![(
        peer(65001, 2),
        Policy::Prepend,
        Context::default(),
        both(),
    )]);
    let mut old = Rib::new(cfg());
    let a = peers.add(&mut old)[0];
    let _ = old.apply_update(a, &announce(attrs(&[65001]), &[(p("10.0.0.0/8"), None)]));
    let (new, _) = restored(&peers, &[image(&old, a)]);
    let e = new
        .adj_rib_in(a)
        .unwrap()
        .get(V4, &Nlri::new(p("10.0.0.0/8")));
    let path = e.unwrap().attrs.attrs.as_path.clone().unwrap();
    assert_eq!(path.asns().collect::<Vec<_>>(), [Asn(64999), Asn(65001)]);
}

#[test]
fn unusual_next_hops_round_trip() {
    let peers = Peers(vec![(
        peer(65001, 2),
        Policy::Odd,
        Context::default(),
        both(),
    )]);
    let mut old = Rib::new(cfg());
    let a = peers.add(&mut old)[0];
    local_routes(&mut old);
    let prefixes: Vec<(IpNet, Option<u32>)> = [
        "10.0.0.0/8",
        "10.0.0.0/9",
        "10.0.0.0/10",
        "2001:db8::/32",
        "2001:db8::/33",
        "2001:db8::/34",
    ]
    .iter()
    .map(|s| (p(s), None))
    .collect();
    let _ = old.apply_update(a, &announce(attrs(&[65001]), &prefixes));
    assert_eq!(old.adj_rib_in(a).unwrap().total(), 6);
    let (new, _) = restored(&peers, &[image(&old, a)]);
    assert_eq!(adj_in(&old, a), adj_in(&new, a));
    assert_eq!(loc(&old), loc(&new));
}

#[test]
fn an_empty_peer_restores_to_nothing() {
    let mut old = Rib::new(cfg());
    let a = old.add_peer(peer(65001, 2)).unwrap();
    let mut out = BytesMut::new();
    let stats = old.adj_in_image(a, &mut out).unwrap();
    assert_eq!(&out[..], &IMAGE_VERSION.to_be_bytes());
    assert_eq!((stats.routes, stats.records, stats.messages), (0, 0, 0));
    let mut new = Rib::new(cfg());
    let b = new.add_peer(peer(65001, 2)).unwrap();
    let ch = new.restore_adj_in(b, &out).unwrap();
    assert!(ch.is_empty());
    assert!(new.adj_rib_in(b).unwrap().is_empty());
    assert!(new.loc_rib().is_empty());
}

#[test]
fn restore_reports_best_changes_and_owes_peers_that_are_up() {
    let (old, ids) = original();
    let img = image(&old, ids[0]);
    let mut new = Rib::new(cfg());
    let new_ids = scenario().add(&mut new);
    // Peer D was resumed before A's routes are restored (the caller should order it the
    // other way): it is owed what the restore changes, like any peer that is up.
    new.peer_resumed(new_ids[3], Context::default(), both());
    assert_eq!(new.adj_rib_out(new_ids[3]).unwrap().entries(), 0);
    let ch = new.restore_adj_in(new_ids[0], &img).unwrap();
    assert_eq!(ch.best.len(), 4);
    assert_eq!(ch.adj_in.len(), 4);
    assert_eq!(new.adj_rib_out(new_ids[0]).unwrap().entries(), 0);
    assert_eq!(new.adj_rib_out(new_ids[3]).unwrap().entries(), 4);
}

#[test]
fn restore_preconditions() {
    let (old, ids) = original();
    let img = image(&old, ids[0]);
    let mut new = Rib::new(cfg());
    let new_ids = scenario().add(&mut new);
    assert_eq!(
        new.restore_adj_in(SourceId(99), &img).unwrap_err(),
        ImageError::UnknownPeer(SourceId(99))
    );
    new.peer_up(new_ids[0], Context::default(), both());
    assert_eq!(
        new.restore_adj_in(new_ids[0], &img).unwrap_err(),
        ImageError::SessionUp(new_ids[0])
    );
    let _ = new.restore_adj_in(new_ids[1], &img).unwrap();
    assert_eq!(
        new.restore_adj_in(new_ids[1], &img).unwrap_err(),
        ImageError::NotEmpty(new_ids[1])
    );
    let mut out = BytesMut::new();
    assert_eq!(
        old.adj_in_image(SourceId(99), &mut out).unwrap_err(),
        ImageError::UnknownPeer(SourceId(99))
    );
    assert!(out.is_empty());
}

#[test]
fn a_set_too_large_for_a_message_is_an_error_and_writes_nothing() {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let huge = PathAttributes {
        communities: Some(Communities::new((0..17_000).map(Community))),
        ..attrs(&[65001])
    };
    let _ = rib.apply_update(a, &announce(huge, &[(p("10.0.0.0/8"), None)]));
    let mut out = BytesMut::from(&b"kept"[..]);
    let e = rib.adj_in_image(a, &mut out).unwrap_err();
    assert!(matches!(e, ImageError::Encode { family: V4, .. }), "{e:?}");
    assert_eq!(&out[..], b"kept");
}

// ---- bad images ----

fn restore_fresh(image: &[u8]) -> (Rib, SourceId, Result<RibChanges, ImageError>) {
    let mut rib = Rib::new(cfg());
    let a = rib.add_peer(peer(65001, 2)).unwrap();
    let r = rib.restore_adj_in(a, image);
    (rib, a, r)
}

fn err(image: &[u8]) -> ImageError {
    restore_fresh(image).2.unwrap_err()
}

#[test]
fn bad_image_vectors() {
    assert_eq!(
        err(&[]),
        ImageError::Truncated {
            field: "version",
            offset: 0
        }
    );
    assert_eq!(err(&[0x00, 0x02]), ImageError::Version(2));
    assert_eq!(
        err(&[0x00, 0x01, 0x03]),
        ImageError::BadField {
            field: "record flags",
            value: 3,
            offset: 2
        }
    );
    assert_eq!(
        err(&[0x00, 0x01, 0x10]),
        ImageError::BadField {
            field: "record flags",
            value: 0x10,
            offset: 2
        }
    );
    assert_eq!(
        err(&[0x00, 0x01, 0x00, 0x00, 0x03, 0x01]),
        ImageError::BadField {
            field: "record family",
            value: 0x0301,
            offset: 3
        }
    );
    assert_eq!(
        err(&[0x00, 0x01, 0x00, 0x00, 0x01, 0x01, 0x09]),
        ImageError::BadField {
            field: "record MP next hop type",
            value: 9,
            offset: 6
        }
    );
    // A length far beyond the image: refused before anything is allocated.
    assert_eq!(
        err(&[
            0x00, 0x01, 0x00, 0x00, 0x01, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff
        ]),
        ImageError::Truncated {
            field: "record body",
            offset: 11
        }
    );
    // A KEEPALIVE where an UPDATE belongs.
    let mut keepalive = vec![
        0x00, 0x01, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 19,
    ];
    keepalive.extend([0xff; 16]);
    keepalive.extend([0x00, 19, 4]);
    assert_eq!(
        err(&keepalive),
        ImageError::Content {
            offset: 11,
            reason: "not an UPDATE"
        }
    );
    // A message cut short inside its record.
    keepalive[10] = 18;
    assert_eq!(
        err(&keepalive[..29]),
        ImageError::Truncated {
            field: "UPDATE message",
            offset: 11
        }
    );
}

#[test]
fn a_bad_image_changes_nothing() {
    let (old, ids) = original();
    let mut img = image(&old, ids[0]).to_vec();
    img.extend([0x00, 0x00]);
    let (rib, a, r) = restore_fresh(&img);
    assert!(matches!(r, Err(ImageError::Truncated { .. })), "{r:?}");
    assert!(rib.adj_rib_in(a).unwrap().is_empty());
    assert!(rib.loc_rib().is_empty());
}

#[test]
fn a_record_with_the_wrong_family_is_refused() {
    let (old, ids) = original();
    let img = image(&old, ids[2]).to_vec();
    // The first record's family: claim IPv4 multicast for IPv4 unicast routes or the other
    // way round; either way the messages do not match it.
    let mut bad = img.clone();
    bad[5] = if bad[5] == 1 { 2 } else { 1 };
    let e = err(&bad);
    assert!(matches!(e, ImageError::Content { .. }), "{e:?}");
}

#[test]
fn every_truncation_and_flip_is_handled() {
    let (old, ids) = original();
    for id in &ids {
        let img = image(&old, *id).to_vec();
        for n in 0..img.len() {
            let _ = restore_fresh(&img[..n]);
        }
        for i in 0..img.len() {
            let mut bad = img.clone();
            bad[i] ^= 0x5a;
            let _ = restore_fresh(&bad);
        }
    }
}

// ---- proptest ----

fn arb_route() -> impl Strategy<Value = (bool, u8, u8, Option<u32>, u8)> {
    // IPv6?, prefix number, prefix length step, path id, attribute set.
    (
        any::<bool>(),
        0u8..40,
        0u8..3,
        proptest::option::of(0u32..3),
        0u8..6,
    )
}

fn route_prefix(v6: bool, n: u8, len: u8) -> IpNet {
    if v6 {
        let a = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | u128::from(n) << 96;
        IpNet::V6(ipnet::Ipv6Net::new(a.into(), 40 + len).unwrap()).trunc()
    } else {
        let a = 0x0a00_0000u32 | u32::from(n) << 16;
        IpNet::V4(ipnet::Ipv4Net::new(a.into(), 16 + len).unwrap()).trunc()
    }
}

fn route_attrs(k: u8) -> PathAttributes {
    PathAttributes {
        med: (k % 2 == 0).then_some(u32::from(k)),
        communities: (k % 3 == 0).then(|| Communities::new([Community::new(1, u16::from(k))])),
        ..attrs(&[65001, 100 + u32::from(k)])
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random tables of two peers (one with ADD-PATH, one with an odd import policy), some
    /// restarted: every Adj-RIB-In and the Loc-RIB come back equal, and the resumed peers
    /// are owed nothing.
    #[test]
    fn random_tables_round_trip(
        routes in proptest::collection::vec((0usize..2, arb_route()), 0..60),
        fresh_again in proptest::collection::vec(any::<bool>(), 60),
        restart in any::<bool>(),
        llgr in any::<bool>(),
    ) {
        let peers = Peers(vec![
            (peer(65001, 2), Policy::Odd, Context::default(), both()),
            (peer(65001, 3), Policy::Prepend, Context::default(), both()),
        ]);
        let mut old = Rib::new(cfg());
        let ids = peers.add(&mut old);
        local_routes(&mut old);
        let mut sent: Vec<(usize, Update)> = Vec::new();
        for (who, (v6, n, len, id, k)) in &routes {
            // ADD-PATH only from the first peer; one path id per UPDATE.
            let id = if *who == 0 { *id } else { None };
            let u = announce(route_attrs(*k), &[(route_prefix(*v6, *n, *len), id)]);
            let _ = old.apply_update(ids[*who], &u);
            sent.push((*who, u));
        }
        if restart {
            let _ = old.peer_down(ids[1], true);
            for ((who, u), again) in sent.iter().zip(&fresh_again) {
                if *who == 1 && *again {
                    let _ = old.apply_update(ids[1], u);
                }
            }
            if llgr {
                let _ = old.mark_llgr_stale(ids[1], V6);
            }
        }
        let images: Vec<BytesMut> = ids.iter().map(|id| image(&old, *id)).collect();
        let (mut new, _) = restored(&peers, &images);
        for id in &ids {
            prop_assert_eq!(adj_in(&old, *id), adj_in(&new, *id));
            let (d, out) = drain(&mut new, *id);
            prop_assert_eq!((d.messages, out.len()), (0, 0));
        }
        prop_assert_eq!(loc(&old), loc(&new));
    }

    /// Arbitrary bytes, with or without a valid version: an error or a restore, never a
    /// panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        versioned in any::<bool>(),
    ) {
        let mut img = Vec::new();
        if versioned {
            img.extend(IMAGE_VERSION.to_be_bytes());
        }
        img.extend(bytes);
        let _ = restore_fresh(&img);
    }
}

// ---- speed ----

/// CPU time of the calling thread in seconds (user + system, from /proc; 10 ms ticks): on a
/// shared machine, wall time also counts the time other processes had the CPU.
fn thread_cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// `nice -n 19 cargo test -p bgp-rib --release -- --ignored image_speed --nocapture`:
/// 1,000,000 IPv4 prefixes in 200,000 attribute sets, imaged and restored.
#[test]
#[ignore = "a release-mode measurement"]
#[allow(clippy::disallowed_methods)]
fn image_speed() {
    use std::time::Instant;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let sets = 200_000u32;
    let prefixes = 1_000_000u32;
    let mut old = Rib::new(cfg());
    old.report_adj_in(false);
    let a = old.add_peer(peer(65001, 2)).unwrap();
    let (t, c) = (Instant::now(), thread_cpu());
    // Five prefixes per UPDATE, one attribute set each.
    let per = prefixes / sets;
    for s in 0..sets {
        let pa = PathAttributes {
            med: (s % 3 == 0).then_some(10),
            communities: (s % 2 == 0)
                .then(|| Communities::new((0..1 + rnd() % 4).map(|_| Community(rnd() as u32)))),
            ..attrs(&[65001, 100_000 + (rnd() % 300_000) as u32, 1_000_000 + s])
        };
        let list: Vec<(IpNet, Option<u32>)> = (0..per)
            .map(|i| {
                let n = s * per + i;
                let net = ipnet::Ipv4Net::new(Ipv4Addr::from(0x0100_0000 + (n << 8)), 24);
                (IpNet::V4(net.unwrap()), None)
            })
            .collect();
        let _ = old.apply_update(a, &announce(pa, &list));
    }
    let load = (t.elapsed(), thread_cpu() - c);
    assert_eq!(old.adj_rib_in(a).unwrap().total(), prefixes as usize);
    let (t, c) = (Instant::now(), thread_cpu());
    let mut out = BytesMut::new();
    let stats = old.adj_in_image(a, &mut out).unwrap();
    let imaged = (t.elapsed(), thread_cpu() - c);
    let mut new = Rib::new(cfg());
    new.report_adj_in(false);
    let b = new.add_peer(peer(65001, 2)).unwrap();
    let (t, c) = (Instant::now(), thread_cpu());
    let ch = new.restore_adj_in(b, &out).unwrap();
    let restored = (t.elapsed(), thread_cpu() - c);
    drop(ch);
    let (t, c) = (Instant::now(), thread_cpu());
    new.peer_resumed(b, Context::default(), both());
    let resumed = (t.elapsed(), thread_cpu() - c);
    assert_eq!(new.adj_rib_in(b).unwrap().total(), prefixes as usize);
    println!(
        "(wall, thread CPU s): load (apply_update) {load:?}; image {imaged:?} ({} records, \
         {} messages, {} bytes); restore {restored:?}; peer_resumed {resumed:?}",
        stats.records, stats.messages, stats.bytes
    );
}
