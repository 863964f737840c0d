//! Scenario 4 of the issue: the daemon restarts (SIGKILL, then started again within its
//! restart time, in restarting mode where the daemon has one: `bird -R`, `gobgpd -r`; bgpd
//! 8.4 has none) and we, the receiving speaker, keep its routes as stale, then purge what is
//! still stale after its End-of-RIB; or it does not come back and we purge at its restart
//! time.
//!
//! - `daemon_restarts::*` (4a): the session's decisions, on a bare peer task.
//! - `others_keep_routes::*`, `daemon_gone::*` (4b): the full speaker, with a second peer of
//!   ours that must see no withdrawal while the routes are stale.
//!
//! RFC 4724 clauses checked:
//! - §3: the restarted daemon's OPEN carries the Graceful Restart capability with the
//!   Restart State (R) bit set.
//! - §4.2: when the TCP session ends without a NOTIFICATION, the receiving speaker retains
//!   the peer's routes for every family in its GR capability, marked stale
//!   (`RetainStale` before `SessionDown`), and goes on using them (no withdrawal to others).
//! - §4.2: once the session is back, the routes of a family whose Forwarding State (F) bit
//!   is now clear are purged at once; for the others, End-of-RIB from the peer purges what is
//!   still stale (`EndOfRib(f)` then `PurgeStale(f)`).
//! - §4.2: if the session is not back within the peer's restart time, its stale routes are
//!   deleted when that timer fires.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bgp_fsm::{Action, DownReason};
use bgp_speaker::{Event, PeerId};
use bgp_testkit::daemons::{Daemon, DaemonKind, DaemonSpec, Lab, require_daemon};
use bgp_wire::AfiSafi;
use ipnet::IpNet;

use crate::ours::{OurConfig, OurSide, PeerTaskSide, SpeakerSide};
use crate::routes::daemon_routes;
use crate::{
    CONVERGE, DAEMON_AS, ESTABLISH, MONITOR_AS, OUR_AS, READY, establish, ok, our_peer, per_daemon,
    setup, speaker_settings,
};

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

// ------------------------------------------------------------------------ with the speaker

per_daemon!(others_keep_routes, super::others_keep_routes);
per_daemon!(daemon_gone, super::daemon_gone);

/// The daemon's prefix it does not originate again after its restart.
const NOT_AGAIN: &str = "100.64.2.0/24";

/// The daemon (GR restart time `restart_time`, originating the routes of scenario 1), our
/// speaker peering with it and, passing on what it learns (`export_learned`), with a second
/// peer of ours: a monitor at `lab.extra(0)` that we connect to. Returns once the monitor
/// holds the daemon's routes.
pub(crate) fn speaker_and_monitor(
    kind: DaemonKind,
    restart_time: u16,
) -> Option<(Daemon, SpeakerSide, PeerTaskSide, Lab)> {
    speaker_and_monitor_with(kind, restart_time, |_, _| {})
}

/// [`speaker_and_monitor`], with `edit` applied to the daemon's specification and our
/// speaker's peer settings for it before they start.
pub(crate) fn speaker_and_monitor_with(
    kind: DaemonKind,
    restart_time: u16,
    edit: impl FnOnce(&mut DaemonSpec, &mut bgp_speaker::PeerSettings),
) -> Option<(Daemon, SpeakerSide, PeerTaskSide, Lab)> {
    let kind = require_daemon(kind)?;
    let lab = Lab::allocate();
    let mut spec = DaemonSpec::new(kind, lab, DAEMON_AS, OUR_AS);
    spec.neighbor.graceful_restart = Some(restart_time);
    spec.routes = daemon_routes(kind, false);
    let mut settings = speaker_settings(&spec, lab, 120);
    edit(&mut spec, &mut settings.peers[0]);
    let daemon = ok(Daemon::start_ready(spec.clone(), READY));
    let mut monitor = PeerTaskSide::start(OurConfig {
        addr: lab.extra(0),
        asn: MONITOR_AS,
        peer: SocketAddr::new(lab.ours.into(), spec.port),
        peer_asn: OUR_AS,
        hold_time: 90,
        password: None,
        listen: true,
        passive: true,
        connect_timeout: None,
    });
    settings.export_learned = true;
    settings
        .peers
        .push(our_peer(lab.ours, lab.extra(0), spec.port, MONITOR_AS, 120));
    let speaker = SpeakerSide::start(settings);
    ok(
        monitor.wait_for("the monitor Established", ESTABLISH, &mut |a| {
            matches!(a, Action::Established(_))
        }),
    );
    monitor.initial_routes_done();
    for f in FAMILIES {
        ok(
            monitor.wait_routes(f, "the daemon's routes through us", CONVERGE, |r| {
                r.len() == 2
            }),
        );
    }
    Some((daemon, speaker, monitor, lab))
}

pub(crate) fn is_daemon(peer: &PeerId, lab: Lab) -> bool {
    peer.addr == std::net::IpAddr::V4(lab.daemon)
}

/// Scenario 4, with the speaker: the daemon restarts (SIGKILL, started again within its
/// restart time, without one of its prefixes).
///
/// - RFC 4724 §4.2: on the TCP failure we keep its routes, stale, and go on using them: a
///   second peer of ours sees no withdrawal while the daemon is down, nor while it is back
///   and has not sent End-of-RIB (`PeerDown { routes_kept: true }`, `StaleKept`).
/// - RFC 4724 §4.2: after its End-of-RIB for a family we purge the routes still stale
///   there: exactly the prefix it did not send again (`EndOfRibReceived` before
///   `StalePurged { routes: 1 }`); the second peer sees exactly that one withdrawn; the other
///   routes are fresh again.
fn others_keep_routes(kind: DaemonKind) {
    let Some((mut daemon, mut speaker, mut monitor, lab)) = speaker_and_monitor(kind, 120) else {
        return;
    };
    let mark = monitor.mark();
    ok(daemon.kill());
    let (_, down) = ok(speaker.wait_event(
        "PeerDown of the daemon",
        ESTABLISH,
        |e| matches!(e, Event::PeerDown { peer, .. } if is_daemon(peer, lab)),
    ));
    assert!(
        matches!(
            down,
            Event::PeerDown {
                routes_kept: true,
                ..
            }
        ),
        "§4.2: routes not kept: {down}"
    );
    // StaleKept comes with the session's RetainStale, before PeerDown.
    let events = speaker.events();
    for f in FAMILIES {
        assert!(
            events.iter().any(|(_, e)| matches!(e,
                Event::StaleKept { family, routes: 2, peer } if *family == f && is_daemon(peer, lab))),
            "§4.2: no StaleKept({f}, 2): {events:#?}"
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let (w, downs) = monitor.withdrawn_since(mark);
    assert_eq!(downs, 0, "our session with the monitor went down");
    assert!(w.is_empty(), "§4.2: we withdrew stale routes: {w:?}");

    // Back within its restart time, without one prefix.
    let routes: Vec<_> = daemon_routes(kind, false)
        .into_iter()
        .filter(|r| r.prefix.to_string() != NOT_AGAIN)
        .collect();
    ok(daemon.set_routes(routes));
    ok(daemon.restart(true, READY));
    ok(speaker.wait_event(
        "PeerUp of the daemon again",
        ESTABLISH * 2,
        |e| matches!(e, Event::PeerUp { peer, .. } if is_daemon(peer, lab)),
    ));
    ok(speaker.wait_event(
        "StalePurged(IPv4, 1)",
        CONVERGE * 2,
        |e| matches!(e, Event::StalePurged { family, .. } if *family == AfiSafi::IPV4_UNICAST),
    ));
    let events = speaker.events();
    let pos = |p: &dyn Fn(&Event) -> bool| events.iter().position(|(_, e)| p(e));
    let eor = pos(
        &|e| matches!(e, Event::EndOfRibReceived { family, .. } if *family == AfiSafi::IPV4_UNICAST),
    );
    let purged = pos(&|e| matches!(e, Event::StalePurged { .. }));
    assert!(
        eor.is_some() && eor < purged,
        "§4.2: purge before End-of-RIB: {events:#?}"
    );
    assert!(
        matches!(
            events[purged.unwrap()].1,
            Event::StalePurged { routes: 1, .. }
        ),
        "§4.2: exactly one IPv4 route purged: {events:#?}"
    );
    // Loc-RIB: the daemon's three routes, none stale.
    ok(speaker.wait_rib(
        "the daemon's 3 routes, fresh",
        CONVERGE,
        Duration::from_millis(200),
        |r| {
            let theirs: Vec<_> = r
                .iter()
                .filter(|(_, _, x)| x.from.as_ref().is_some_and(|p| is_daemon(p, lab)))
                .collect();
            theirs.len() == 3
                && theirs.iter().all(|(_, _, x)| !x.stale)
                && theirs.iter().all(|(_, p, _)| p.to_string() != NOT_AGAIN)
        },
    ));
    ok(
        monitor.wait_routes(AfiSafi::IPV4_UNICAST, "one IPv4 route", CONVERGE, |r| {
            r.len() == 1
        }),
    );
    std::thread::sleep(Duration::from_secs(1));
    let (w, downs) = monitor.withdrawn_since(mark);
    assert_eq!(downs, 0, "our session with the monitor went down");
    let want: Vec<IpNet> = vec![NOT_AGAIN.parse().unwrap()];
    assert_eq!(
        w, want,
        "the second peer must see exactly the purged prefix go"
    );
    assert_eq!(monitor.received_routes(AfiSafi::IPV6_UNICAST).len(), 2);
}

/// The daemon's restart time in [`daemon_gone`].
const SHORT_RESTART: Duration = Duration::from_secs(5);

/// Scenario 4, with the speaker: the daemon (restart time 5 s) is killed and does not come
/// back. RFC 4724 §4.2: the receiving speaker keeps the stale routes until the restart
/// timer (the peer's restart time) expires, then deletes them. We measure when `StalePurged`
/// arrives after the kill and require restart time ≤ purge ≤ restart time + 2 s; the second
/// peer sees no withdrawal before, and all the daemon's routes withdrawn after.
fn daemon_gone(kind: DaemonKind) {
    let Some((mut daemon, mut speaker, mut monitor, lab)) =
        speaker_and_monitor(kind, SHORT_RESTART.as_secs() as u16)
    else {
        return;
    };
    let mark = monitor.mark();
    let killed = Instant::now();
    ok(daemon.kill());
    let (down_at, down) = ok(speaker.wait_event(
        "PeerDown of the daemon",
        ESTABLISH,
        |e| matches!(e, Event::PeerDown { peer, .. } if is_daemon(peer, lab)),
    ));
    assert!(
        matches!(
            down,
            Event::PeerDown {
                routes_kept: true,
                ..
            }
        ),
        "§4.2: routes not kept: {down}"
    );
    // Shortly before the restart time: nothing withdrawn yet.
    let before = killed + SHORT_RESTART - Duration::from_millis(700);
    std::thread::sleep(before.saturating_duration_since(Instant::now()));
    let (w, downs) = monitor.withdrawn_since(mark);
    assert_eq!(downs, 0, "our session with the monitor went down");
    assert!(
        w.is_empty(),
        "§4.2: withdrawn before the restart time: {w:?}"
    );
    for f in FAMILIES {
        let (at, e) = ok(speaker.wait_event(
            &format!("StalePurged({f})"),
            SHORT_RESTART * 3,
            |e| matches!(e, Event::StalePurged { family, .. } if *family == f),
        ));
        let after_kill = at.duration_since(killed);
        let after_down = at.duration_since(down_at);
        println!(
            "{kind} {f}: restart time {SHORT_RESTART:?}; purge {after_kill:?} after the kill, \
             {after_down:?} after PeerDown ({e})"
        );
        assert!(
            after_kill >= SHORT_RESTART && after_kill <= SHORT_RESTART + Duration::from_secs(2),
            "§4.2: purge {after_kill:?} after the kill, restart time {SHORT_RESTART:?}"
        );
        assert!(matches!(e, Event::StalePurged { routes: 2, .. }), "{e}");
    }
    for f in FAMILIES {
        ok(monitor.wait_routes(f, "none of the daemon's routes", CONVERGE, |r| r.is_empty()));
    }
    let (mut w, downs) = monitor.withdrawn_since(mark);
    w.sort();
    let mut want: Vec<IpNet> = daemon_routes(kind, false)
        .iter()
        .map(|r| r.prefix)
        .collect();
    want.sort();
    assert_eq!(downs, 0, "our session with the monitor went down");
    assert_eq!(
        w, want,
        "the second peer sees each of the daemon's routes withdrawn once"
    );
}
