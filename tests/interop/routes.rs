//! Scenario 1: a session over IPv4 with 4-octet ASNs, routes both ways, IPv4 and IPv6
//! unicast (IPv6 in MP_REACH_NLRI over the IPv4 session, RFC 4760, with a global next hop,
//! RFC 2545), with MED, communities (RFC 1997), large communities (RFC 8092), extended
//! communities (RFC 4360), AS_PATH prepends, and LOCAL_PREF in the iBGP variant. The daemon
//! must show exactly what we sent; we must decode exactly what it sent.

use bgp_testkit::daemons::{DaemonKind, DaemonRoute, RouteSpec, origin_next_hop};
use bgp_wire::AfiSafi;

use crate::ours::OurSide;
use crate::{CONVERGE, DAEMON_AS, OUR_AS, establish, ok, per_daemon, setup};

per_daemon!(ebgp, super::ebgp_both_ways);
per_daemon!(ibgp, super::ibgp_both_ways);

fn ebgp_both_ways(kind: DaemonKind) {
    both_ways(kind, false);
}

fn ibgp_both_ways(kind: DaemonKind) {
    both_ways(kind, true);
}

/// The routes our side announces.
pub(crate) fn our_routes(ibgp: bool) -> Vec<RouteSpec> {
    let mut full = RouteSpec::new("203.0.113.0/24", "198.18.0.100");
    full.med = Some(10);
    full.communities = vec![(65000, 1), (65000, 2)];
    full.large_communities = vec![(OUR_AS, 1, 1), (OUR_AS, 1, 2)];
    full.route_targets = vec![(65000, 100)];
    full.prepend = 2;
    let plain = RouteSpec::new("198.51.100.0/25", "198.18.0.100");
    let mut v6 = RouteSpec::new("2001:db8:100::/48", "2001:db8:ffff::100");
    v6.med = Some(20);
    v6.communities = vec![(65000, 3)];
    v6.large_communities = vec![(OUR_AS, 6, 6)];
    v6.route_targets = vec![(65000, 106)];
    v6.prepend = 1;
    let v6_plain = RouteSpec::new("2001:db8:101::/48", "2001:db8:ffff::100");
    let mut all = vec![full, plain, v6, v6_plain];
    if ibgp {
        for (i, r) in all.iter_mut().enumerate() {
            r.local_pref = Some(200 + i as u32);
            // Both sides are in one AS: a prepend would be our own AS in the path, which the
            // receiver drops as a loop (RFC 4271 §9.1.2).
            r.prepend = 0;
        }
    }
    all
}

/// The routes the daemon originates.
pub(crate) fn daemon_routes(kind: DaemonKind, ibgp: bool) -> Vec<RouteSpec> {
    let nh4 = origin_next_hop(kind, false).to_string();
    let nh6 = origin_next_hop(kind, true).to_string();
    let mut full = RouteSpec::new("100.64.1.0/24", &nh4);
    full.med = Some(30);
    full.communities = vec![(65001, 1), (65001, 2)];
    full.large_communities = vec![(DAEMON_AS, 2, 2)];
    full.route_targets = vec![(65001, 200)];
    full.prepend = 2;
    let plain = RouteSpec::new("100.64.2.0/24", &nh4);
    let mut v6 = RouteSpec::new("2001:db8:200::/48", &nh6);
    v6.med = Some(40);
    v6.communities = vec![(65001, 3)];
    v6.large_communities = vec![(DAEMON_AS, 7, 7)];
    v6.route_targets = vec![(65001, 207)];
    v6.prepend = 1;
    let v6_plain = RouteSpec::new("2001:db8:201::/48", &nh6);
    let mut all = vec![full, plain, v6, v6_plain];
    if kind == DaemonKind::Frr {
        // FRR sends MED 0 on a `network` route without a metric (its IGP metric; there is
        // no zebra here, so 0).
        for r in all.iter_mut().filter(|r| r.med.is_none()) {
            r.med = Some(0);
        }
    }
    if ibgp {
        for (i, r) in all.iter_mut().enumerate() {
            r.local_pref = Some(300 + i as u32);
            // Both sides are in one AS: a prepend would be our own AS in the path, which the
            // receiver drops as a loop (RFC 4271 §9.1.2).
            r.prepend = 0;
        }
    }
    all
}

fn expected(routes: &[RouteSpec], asn: u32, ibgp: bool, family: AfiSafi) -> Vec<DaemonRoute> {
    let mut v: Vec<DaemonRoute> = routes
        .iter()
        .filter(|r| r.family() == family)
        .map(|r| r.expected(asn, ibgp))
        .collect();
    v.sort_by_key(|r| r.prefix);
    v
}

fn both_ways(kind: DaemonKind, ibgp: bool) {
    let Some((spec, cfg, lab)) = setup(kind, |spec, _| {
        if ibgp {
            spec.asn = OUR_AS;
        }
        spec.routes = daemon_routes(kind, ibgp);
    }) else {
        return;
    };
    let daemon_as = spec.asn;
    let theirs = spec.routes.clone();
    let mut pair = establish(spec, cfg, lab);
    let mine = our_routes(ibgp);
    pair.ours.announce(&mine);
    pair.ours.initial_routes_done();

    for family in [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST] {
        // Ours, as the daemon shows them.
        let want = expected(&mine, OUR_AS, ibgp, family);
        let got =
            ok(pair
                .daemon
                .wait_routes(family, &format!("our {family:?} routes"), CONVERGE, |r| {
                    r.len() >= want.len()
                }));
        let got = normalize_daemon_view(kind, ibgp, got);
        assert_eq!(got, want, "{kind} shows our {family:?} routes differently");

        // Theirs, as we decoded them.
        let want = expected(&theirs, daemon_as, ibgp, family);
        let got = ok(pair.ours.wait_routes(
            family,
            &format!("{kind}'s {family:?} routes"),
            CONVERGE,
            |r| r.len() >= want.len(),
        ));
        assert_eq!(
            got, want,
            "we decoded {kind}'s {family:?} routes differently"
        );
    }
    let _ = lab;
}

/// What a daemon adds on its own when showing a received route, and which the comparison
/// leaves out (docs/interop.md).
fn normalize_daemon_view(
    kind: DaemonKind,
    ibgp: bool,
    mut routes: Vec<DaemonRoute>,
) -> Vec<DaemonRoute> {
    if !ibgp && kind == DaemonKind::Bird {
        for r in &mut routes {
            // BIRD shows its default LOCAL_PREF (100) on routes learned over eBGP; it never
            // came on the wire (RFC 4271 §5.1.5: not sent to external peers).
            if r.local_pref == Some(100) {
                r.local_pref = None;
            }
        }
    }
    routes
}
