//! Scenario 2: route refresh (RFC 2918; enhanced route refresh, RFC 7313, where the daemon
//! has it). The daemon is told to soft-reset inbound; it sends ROUTE-REFRESH, our peer task
//! reports `RouteRefreshRequested`, we resend and say so (`RefreshDone`, which sends the
//! End-of-RIB refresh marker when enhanced route refresh was negotiated); the daemon then
//! still holds exactly our routes (with enhanced route refresh it would purge what we did
//! not resend, RFC 7313 §4).

use std::time::Duration;

use bgp_fsm::Action;
use bgp_speaker::PeerCommand;
use bgp_testkit::daemons::{DaemonKind, RouteSpec};
use bgp_wire::{AfiSafi, MessageType};

use crate::ours::OurSide;
use crate::routes::our_routes;
use crate::{CONVERGE, OUR_AS, establish, ok, per_daemon, setup};

per_daemon!(soft_reset_in, super::soft_reset_in);

fn soft_reset_in(kind: DaemonKind) {
    let Some((spec, cfg, lab)) = setup(kind, |_, _| {}) else {
        return;
    };
    let mut pair = establish(spec, cfg, lab);
    let enhanced = pair
        .ours
        .status()
        .negotiated
        .is_some_and(|n| n.enhanced_route_refresh);
    println!("{kind}: enhanced route refresh negotiated: {enhanced}");
    let v4: Vec<RouteSpec> = our_routes(false)
        .into_iter()
        .filter(|r| r.family() == AfiSafi::IPV4_UNICAST)
        .collect();
    let want: Vec<_> = v4.iter().map(|r| r.expected(OUR_AS, false)).collect();
    pair.ours.announce(&v4);
    pair.ours.initial_routes_done();
    ok(pair
        .daemon
        .wait_routes(AfiSafi::IPV4_UNICAST, "our routes", CONVERGE, |r| {
            r.len() >= want.len()
        }));

    ok(pair.daemon.soft_reset_in(lab.ours));
    let asked = pair.ours.wait_for(
        "RouteRefreshRequested(IPv4 unicast)",
        Duration::from_secs(if kind == DaemonKind::Gobgp { 5 } else { 10 }),
        &mut |a| matches!(a, Action::RouteRefreshRequested(f) if *f == AfiSafi::IPV4_UNICAST),
    );
    let refreshes = pair.ours.stats().received(MessageType::RouteRefresh);
    if kind == DaemonKind::Gobgp {
        // GoBGP keeps its Adj-RIB-In: `neighbor X softresetin` re-runs the import policy over
        // it and sends nothing (docs/interop.md).
        assert!(
            asked.is_err(),
            "GoBGP sent a ROUTE-REFRESH after all: {asked:?}"
        );
        assert_eq!(refreshes, 0);
        return;
    }
    ok(asked);
    assert!(
        refreshes >= 1,
        "{refreshes} ROUTE-REFRESH messages received"
    );

    // We resend everything of the family, then close the refresh.
    pair.ours.announce(&v4);
    pair.ours
        .command(PeerCommand::RefreshDone(AfiSafi::IPV4_UNICAST));
    std::thread::sleep(Duration::from_secs(2));
    let got = ok(pair.daemon.routes(AfiSafi::IPV4_UNICAST));
    let mut want = want;
    want.sort_by_key(|r| r.prefix);
    let got: Vec<_> = got
        .into_iter()
        .map(|mut r| {
            r.local_pref = None;
            r
        })
        .collect();
    assert_eq!(got, want, "{kind} after the refresh");
    assert!(pair.daemon.is_established(lab.ours).unwrap_or(false));
}
