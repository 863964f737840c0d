//! Scenario 5 of the issue: RFC 8538 (Notification Message support for BGP Graceful Restart)
//! with FRR, the one daemon of the three that sets the N bit. BIRD 2.0.12 and GoBGP 3.10
//! do not (docs/interop.md).
//!
//! - RFC 8538 §2: both sides advertise the N bit; it is negotiated.
//! - RFC 8538 §4: with N negotiated, a hold timer expiry (bgpd frozen with SIGSTOP, so our
//!   3 s hold timer fires and we send Hold Timer Expired) is handled like a TCP failure: the
//!   routes are retained as stale (`RetainStale` before `SessionDown(HoldTimerExpired)`), and
//!   End-of-RIB after the session is back purges what is still stale.
//! - RFC 8538 §5: a Cease/Hard Reset (subcode 9) from the peer (`clear bgp X` in bgpd 8.4)
//!   drops the routes: no `RetainStale` before `SessionDown`.

use std::time::Duration;

use bgp_fsm::{Action, DownReason};
use bgp_testkit::daemons::DaemonKind;
use bgp_wire::AfiSafi;
use bgp_wire::notification::code;

use crate::ours::OurSide;
use crate::routes::daemon_routes;
use crate::{CONVERGE, ESTABLISH, establish, ok, setup};

/// Cease subcode Hard Reset (RFC 8538 §3).
const HARD_RESET: u8 = 9;

const FAMILIES: [AfiSafi; 2] = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];

#[test]
fn frr() {
    let kind = DaemonKind::Frr;
    let Some((spec, cfg, lab)) = setup(kind, |spec, ours| {
        spec.neighbor.graceful_restart = Some(120);
        spec.neighbor.hold_time = Some(3);
        ours.hold_time = 3;
        spec.routes = daemon_routes(kind, false);
    }) else {
        return;
    };
    let mut pair = establish(spec, cfg, lab);
    pair.ours.initial_routes_done();
    for f in FAMILIES {
        ok(pair
            .ours
            .wait_routes(f, "FRR's routes", CONVERGE, |r| r.len() == 2));
    }
    let n = pair.ours.status().negotiated.expect("Established");
    // §2
    assert!(n.gr_notification(), "N bit not negotiated: {:?}", n.peer_gr);

    // §4: hold timer expiry keeps the routes.
    ok(pair.daemon.pause());
    let mut retained = Vec::new();
    let down = pair.ours.wait_for(
        "SessionDown (hold timer)",
        Duration::from_secs(10),
        &mut |a| {
            if let Action::RetainStale(f) = a {
                retained.push(*f);
            }
            matches!(a, Action::SessionDown(_))
        },
    );
    ok(pair.daemon.resume());
    let down = ok(down);
    assert_eq!(
        down.action,
        Action::SessionDown(DownReason::HoldTimerExpired)
    );
    for f in FAMILIES {
        assert!(retained.contains(&f), "{f:?} not retained: {retained:?}");
    }
    ok(pair
        .ours
        .wait_for("Established again", ESTABLISH, &mut |a| {
            matches!(a, Action::Established(_))
        }));
    pair.ours.initial_routes_done();
    let mut purged = Vec::new();
    ok(pair
        .ours
        .wait_for("PurgeStale after End-of-RIB", CONVERGE * 2, &mut |a| {
            if let Action::PurgeStale(f) = a {
                purged.push(*f);
            }
            FAMILIES.iter().all(|f| purged.contains(f))
        }));
    ok(pair.daemon.wait_established(lab.ours, ESTABLISH));

    // §5: a Hard Reset drops them.
    let before = pair.ours.history().len();
    ok(pair.daemon.vtysh(&format!("clear bgp {}", lab.ours)));
    let down = ok(pair.ours.wait_for(
        "SessionDown (Hard Reset)",
        Duration::from_secs(10),
        &mut |a| matches!(a, Action::SessionDown(_)),
    ));
    let history = pair.ours.history();
    let between: Vec<&Action> = history[before..].iter().map(|e| &e.action).collect();
    println!("frr `clear bgp`: {between:?}");
    let Action::SessionDown(reason) = &down.action else {
        unreachable!()
    };
    assert_eq!(
        reason.code_subcode(),
        Some((code::CEASE, HARD_RESET)),
        "FRR's `clear bgp` was not a Hard Reset: {reason:?}"
    );
    assert!(
        !between.iter().any(|a| matches!(a, Action::RetainStale(_))),
        "routes retained across a Hard Reset: {between:?}"
    );
}
