//! Scenario 4 of the issue, the part the peer task can show: the daemon restarts (SIGKILL,
//! then started again within its restart time, in restarting mode where the daemon has
//! one: `bird -R`, `gobgpd -r`; bgpd 8.4 has none) and we, the receiving speaker, keep its routes as stale, then purge what is
//! still stale after its End-of-RIB.
//!
//! RFC 4724 clauses checked:
//! - §3: the restarted daemon's OPEN carries the Graceful Restart capability with the
//!   Restart State (R) bit set.
//! - §4.2: when the TCP session ends without a NOTIFICATION, the receiving speaker retains
//!   the peer's routes for every family in its GR capability, marked stale
//!   (`RetainStale` before `SessionDown`).
//! - §4.2: once the session is back, the routes of a family whose Forwarding State (F) bit
//!   is now clear are purged at once; for the others, End-of-RIB from the peer purges what is
//!   still stale (`EndOfRib(f)` then `PurgeStale(f)`).

use std::time::Duration;

use bgp_fsm::{Action, DownReason};
use bgp_testkit::daemons::DaemonKind;
use bgp_wire::AfiSafi;

use crate::ours::OurSide;
use crate::routes::daemon_routes;
use crate::{CONVERGE, ESTABLISH, READY, establish, ok, per_daemon, setup};

per_daemon!(daemon_restarts, super::daemon_restarts);

const FAMILIES: [AfiSafi; 2] = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];

fn daemon_restarts(kind: DaemonKind) {
    let Some((spec, cfg, lab)) = setup(kind, |spec, _| {
        spec.neighbor.graceful_restart = Some(120);
        spec.routes = daemon_routes(kind, false);
    }) else {
        return;
    };
    let mut pair = establish(spec, cfg, lab);
    pair.ours.initial_routes_done();
    for f in FAMILIES {
        ok(pair
            .ours
            .wait_routes(f, "the daemon's routes", CONVERGE, |r| r.len() == 2));
    }
    let first = pair.ours.status().negotiated.expect("Established");
    let peer_gr = first
        .peer_gr
        .clone()
        .expect("the daemon advertised graceful restart");
    println!("{kind} GR capability before the restart: {peer_gr:?}");

    // §4.2: a TCP failure (no NOTIFICATION) keeps the routes, marked stale.
    ok(pair.daemon.kill());
    let mut retained = Vec::new();
    ok(pair
        .ours
        .wait_for("SessionDown after the kill", ESTABLISH, &mut |a| {
            if let Action::RetainStale(f) = a {
                retained.push(*f);
            }
            matches!(a, Action::SessionDown(_))
        }));
    let down = pair.ours.history().last().map(|e| e.action.clone());
    assert_eq!(down, Some(Action::SessionDown(DownReason::TcpError)));
    for f in first.peer_gr_families().iter() {
        assert!(retained.contains(&f), "{f:?} not retained: {retained:?}");
    }
    assert!(!retained.is_empty(), "nothing retained");

    // Back within the restart time, in restarting mode.
    std::thread::sleep(Duration::from_secs(1));
    ok(pair.daemon.restart(true, READY));
    let mark = pair.ours.history().len();
    let up = ok(pair
        .ours
        .wait_for("Established again", ESTABLISH * 2, &mut |a| {
            matches!(a, Action::Established(_))
        }));
    let Action::Established(second) = up.action else {
        unreachable!()
    };
    let gr = second
        .peer_gr
        .clone()
        .expect("GR capability after the restart");
    println!("{kind} GR capability after the restart: {gr:?}");
    // §3: the R bit says the daemon restarted. bgpd 8.4 cannot be started in restarting
    // mode (docs/interop.md); for it the bit is only reported.
    if kind != DaemonKind::Frr {
        assert!(
            gr.restart_state(),
            "{kind} restarted without the R bit: {gr:?}"
        );
    }
    // The restarting daemon waits for our End-of-RIB before it selects and sends.
    pair.ours.initial_routes_done();

    let mut purged = Vec::new();
    ok(pair.ours.wait_for(
        "PurgeStale for every retained family",
        CONVERGE * 2,
        &mut |a| {
            if let Action::PurgeStale(f) = a {
                purged.push(*f);
            }
            retained.iter().all(|f| purged.contains(f))
        },
    ));
    let history = pair.ours.history();
    let after: Vec<&Action> = history[mark..].iter().map(|e| &e.action).collect();
    for f in retained {
        let forwarding = second.peer_forwarding_state(f);
        let eor = after.iter().position(|a| **a == Action::EndOfRib(f));
        let purge = after.iter().position(|a| **a == Action::PurgeStale(f));
        println!(
            "{kind} {f:?}: F bit {forwarding}, End-of-RIB at {eor:?}, PurgeStale at {purge:?} \
             (events since the restart)"
        );
        if forwarding {
            // §4.2: End-of-RIB ends the stale period.
            assert!(
                eor.is_some_and(|e| purge.is_some_and(|p| e < p)),
                "{kind} {f:?}: PurgeStale before End-of-RIB: {after:?}"
            );
        }
    }
    // Its routes are back, with no session loss in between.
    for f in FAMILIES {
        ok(pair
            .ours
            .wait_routes(f, "the daemon's routes again", CONVERGE, |r| r.len() == 2));
    }
}
