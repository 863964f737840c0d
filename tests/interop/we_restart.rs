//! Scenario 3 of the issue: we restart, the daemon is the graceful-restart helper (receiving
//! speaker). Our side is the full [`bgp_speaker::Speaker`]: it stops with
//! `SpeakerHandle::stop_for_restart` (restart-state file written, sessions closed without a
//! Hard Reset), and a new speaker starts from that file as the restarting speaker, announces
//! its routes minus a few, and says `initial_routes_done`. A monitor (a peer task of ours at a
//! third address, in a third AS) peers with the daemon and sees what the daemon does with our
//! routes.
//!
//! RFC clauses checked:
//! - RFC 4724 §4.1 (restarting speaker): after the restart our OPEN carries the R bit and the
//!   F bits of the families whose forwarding state we kept; we defer our End-of-RIB until our
//!   initial routes are in, and send it after them.
//! - RFC 4724 §4.2 (receiving speaker), as the daemon implements it: when the session ends
//!   without a NOTIFICATION, it keeps our routes (marked stale) and goes on using them: the
//!   monitor sees **no withdrawal** while we are down and while we are back but have not
//!   sent End-of-RIB; after our End-of-RIB it removes the routes still stale: exactly the
//!   prefixes we did not announce again.
//! - RFC 8538 §4 (FRR, the one daemon here that negotiates the N bit): our stop sends
//!   Cease/Administrative Reset, not a Hard Reset, so the helper keeps the routes as it would
//!   after a TCP failure.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bgp_fsm::Action;
use bgp_speaker::{Announcement, Event};
use bgp_testkit::daemons::{Daemon, DaemonKind, DaemonSpec, Lab, require_daemon};
use bgp_wire::{AfiSafi, AfiSafiSet};
use ipnet::IpNet;

use crate::ours::{OurConfig, OurSide, PeerTaskSide, SpeakerSide};
use crate::{
    CONVERGE, DAEMON_AS, ESTABLISH, MONITOR_AS, OUR_AS, READY, ok, per_daemon, speaker_settings,
};

per_daemon!(helper_keeps_routes, super::helper_keeps_routes);

const FAMILIES: [AfiSafi; 2] = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];

/// A temporary directory of the test, removed on drop (also when the test fails).
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("bgp-interop-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temporary directory");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Our routes before the restart: ten IPv4, three IPv6.
fn before() -> Vec<IpNet> {
    let mut v: Vec<IpNet> = (0..10)
        .map(|i| format!("198.51.100.{}/28", i * 16).parse().unwrap())
        .collect();
    v.extend((0..3).map(|i| format!("2001:db8:10{i}::/48").parse::<IpNet>().unwrap()));
    v
}

/// What we no longer announce after the restart: two IPv4 prefixes, one IPv6.
fn dropped() -> Vec<IpNet> {
    [
        "198.51.100.128/28",
        "198.51.100.144/28",
        "2001:db8:102::/48",
    ]
    .iter()
    .map(|p| p.parse().unwrap())
    .collect()
}

fn announcements(prefixes: &[IpNet]) -> Vec<Announcement> {
    prefixes
        .iter()
        .map(|p| {
            let nh = match p {
                IpNet::V4(_) => "198.18.0.100".parse().unwrap(),
                IpNet::V6(_) => "2001:db8:ffff::100".parse().unwrap(),
            };
            Announcement::new(*p).with_next_hop(nh)
        })
        .collect()
}

fn count(prefixes: &[IpNet], f: AfiSafi) -> usize {
    prefixes
        .iter()
        .filter(|p| matches!(p, IpNet::V6(_)) == (f == AfiSafi::IPV6_UNICAST))
        .count()
}

/// Starts the monitor: a peer task at `lab.extra(0)` that connects to the daemon.
pub(crate) fn start_monitor(spec: &DaemonSpec, lab: Lab) -> PeerTaskSide {
    let mut m = PeerTaskSide::start(OurConfig {
        addr: lab.extra(0),
        asn: MONITOR_AS,
        peer: SocketAddr::new(spec.addr.into(), spec.port),
        peer_asn: spec.asn,
        hold_time: 90,
        password: None,
        listen: false,
        passive: false,
        connect_timeout: None,
    });
    ok(m.wait_for("the monitor Established", ESTABLISH, &mut |a| {
        matches!(a, Action::Established(_))
    }));
    m.initial_routes_done();
    m
}

fn helper_keeps_routes(kind: DaemonKind) {
    let Some(kind) = require_daemon(kind) else {
        return;
    };
    let lab = Lab::allocate();
    let mut spec = DaemonSpec::new(kind, lab, DAEMON_AS, OUR_AS);
    spec.neighbor.graceful_restart = Some(120);
    spec.add_neighbor(lab.extra(0), MONITOR_AS);
    let daemon = ok(Daemon::start_ready(spec.clone(), READY));
    let mut monitor = start_monitor(&spec, lab);

    let dir = TempDir::new(&format!("restart-{}", lab.ours));
    let mut settings = speaker_settings(&spec, lab, 120);
    settings.restart_state_file = Some(dir.0.join("restart-state.json"));
    settings.forwarding_preserved = FAMILIES.into_iter().collect::<AfiSafiSet>();
    settings.eor_deferral = Duration::from_secs(60);
    let all = before();
    let gone = dropped();
    let kept: Vec<IpNet> = all.iter().filter(|p| !gone.contains(p)).copied().collect();

    // Before: the monitor holds all our routes, through the daemon.
    let mut first = SpeakerSide::start(crate::GlobalSettings {
        announcements: announcements(&all),
        ..settings.clone()
    });
    let (_, up) = ok(first.wait_event("PeerUp", ESTABLISH, |e| matches!(e, Event::PeerUp { .. })));
    assert!(
        matches!(
            up,
            Event::PeerUp {
                graceful_restart: true,
                ..
            }
        ),
        "graceful restart not negotiated with {kind}: {up}"
    );
    for f in FAMILIES {
        ok(
            monitor.wait_routes(f, "our routes through the daemon", CONVERGE, |r| {
                r.len() == count(&all, f)
            }),
        );
    }
    let mark = monitor.mark();

    // We stop for restart: the helper keeps our routes (RFC 4724 §4.2, RFC 8538 §4).
    first.stop_for_restart();
    let stopped = Instant::now();
    ok(
        daemon.wait_until("the session with us down", ESTABLISH, || {
            Ok(!daemon.is_established(lab.ours)?)
        }),
    );
    let held: Vec<usize> = FAMILIES
        .iter()
        .map(|f| ok(daemon.routes(*f)).len())
        .collect();
    println!("{kind}: session down; the daemon holds {held:?} of our IPv4, IPv6 routes");
    std::thread::sleep(Duration::from_secs(2));
    let (w, downs) = monitor.withdrawn_since(mark);
    assert_eq!(downs, 0, "the monitor's session went down");
    assert!(
        w.is_empty(),
        "{kind} withdrew our routes while we restarted (RFC 4724 §4.2): {w:?}"
    );

    // We start again as the restarting speaker (RFC 4724 §4.1): R and F bits, our
    // End-of-RIB held until our initial routes are in.
    let mut second = SpeakerSide::start(crate::GlobalSettings {
        announcements: announcements(&kept),
        ..settings.clone()
    });
    ok(
        second.wait_event("PeerUp after the restart", ESTABLISH * 2, |e| {
            matches!(e, Event::PeerUp { .. })
        }),
    );
    println!(
        "{kind}: back after {:?}",
        Instant::now().duration_since(stopped)
    );
    // RFC 4724 §3, §4.1: the daemon read the R bit and our F bits.
    ok(daemon.wait_established(lab.ours, ESTABLISH));
    let gr = ok(daemon.peer_gr(lab.ours));
    println!("{kind}: our GR capability as the daemon read it after the restart: {gr:?}");
    let gr = gr.expect("the daemon saw our GR capability");
    assert!(gr.restart_state, "{kind} saw no R bit: {gr:?}");
    for f in FAMILIES {
        assert!(
            gr.forwarding.contains(&f),
            "{kind} saw no F bit for {f:?}: {gr:?}"
        );
    }
    // The helper waits for our End-of-RIB; nothing may go meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    let (w, downs) = monitor.withdrawn_since(mark);
    assert_eq!(downs, 0, "the monitor's session went down");
    assert!(
        w.is_empty(),
        "{kind} withdrew our routes before our End-of-RIB (RFC 4724 §4.2): {w:?}"
    );
    assert!(
        !second
            .events()
            .iter()
            .any(|(_, e)| matches!(e, Event::EndOfRibSent { .. })),
        "End-of-RIB went before initial_routes_done (RFC 4724 §4.1)"
    );

    second.call(|h| async move { h.initial_routes_done().await });
    for f in FAMILIES {
        ok(second.wait_event(
            &format!("EndOfRibSent({f})"),
            CONVERGE,
            |e| matches!(e, Event::EndOfRibSent { family, .. } if *family == f),
        ));
    }
    for f in FAMILIES {
        ok(
            monitor.wait_routes(f, "exactly the routes we announced again", CONVERGE, |r| {
                r.len() == count(&kept, f)
            }),
        );
    }
    // Anything more would come at once; give it a moment.
    std::thread::sleep(Duration::from_secs(1));
    let (mut w, downs) = monitor.withdrawn_since(mark);
    w.sort();
    let mut want = gone.clone();
    want.sort();
    assert_eq!(downs, 0, "the monitor's session went down");
    assert_eq!(
        w, want,
        "{kind} after our End-of-RIB: withdrawn must be exactly what we did not announce again"
    );
    for f in FAMILIES {
        let got: Vec<IpNet> = monitor
            .received_routes(f)
            .iter()
            .map(|r| r.prefix)
            .collect();
        let mut want: Vec<IpNet> = kept
            .iter()
            .filter(|p| count(&[**p], f) == 1)
            .copied()
            .collect();
        want.sort();
        assert_eq!(got, want, "the monitor's {f:?} routes after the restart");
    }
    drop(second);
    drop(dir);
}
