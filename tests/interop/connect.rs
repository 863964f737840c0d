//! The other direction of connection set-up: the daemon connects, we only listen (our
//! listener and dispatcher, with our session passive, RFC 4271 §8.1.1); routes flow as in
//! `routes::ebgp`.

use bgp_testkit::daemons::DaemonKind;
use bgp_wire::AfiSafi;

use crate::ours::OurSide;
use crate::routes::daemon_routes;
use crate::{CONVERGE, DAEMON_AS, establish, ok, per_daemon, setup};

per_daemon!(daemon_connects, super::daemon_connects);

fn daemon_connects(kind: DaemonKind) {
    let Some((spec, cfg, lab)) = setup(kind, |spec, ours| {
        spec.neighbor.passive = false;
        spec.routes = daemon_routes(kind, false);
        ours.listen = true;
        ours.passive = true;
    }) else {
        return;
    };
    let theirs = spec.routes.clone();
    let mut pair = establish(spec, cfg, lab);
    pair.ours.initial_routes_done();
    for family in [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST] {
        let mut want: Vec<_> = theirs
            .iter()
            .filter(|r| r.family() == family)
            .map(|r| r.expected(DAEMON_AS, false))
            .collect();
        want.sort_by_key(|r| r.prefix);
        let got = ok(pair
            .ours
            .wait_routes(family, "the daemon's routes", CONVERGE, |r| {
                r.len() >= want.len()
            }));
        assert_eq!(got, want);
    }
}
