//! Scenario 8 of the issue: 100,000 IPv4 prefixes each way, then the withdrawal of all of
//! them, each way. Our side is the full [`bgp_speaker::Speaker`] (routes through the RIB's
//! Adj-RIB-Out, packed into as few UPDATEs as fit); the daemon originates its prefixes as
//! FRR `network` statements, a BIRD static protocol, or (GoBGP) an MRT table dump injected
//! through its API (`DaemonSpec::bulk_routes`), and withdraws them all with
//! `Daemon::withdraw_all`. Counts are read from summaries (the daemon's CLI, our snapshot).
//!
//! The test prints the times it measured; it asserts none of them, only that each step
//! finishes within a generous bound ([`STEP`]).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp_speaker::{Announcement, Event};
use bgp_testkit::daemons::{Daemon, DaemonKind, DaemonSpec, Lab, require_daemon};
use bgp_wire::AfiSafi;
use ipnet::{IpNet, Ipv4Net};

use crate::ours::SpeakerSide;
use crate::{DAEMON_AS, ESTABLISH, OUR_AS, ok, per_daemon, speaker_settings};

per_daemon!(hundred_thousand, super::hundred_thousand);

/// Prefixes each way.
const N: usize = 100_000;

/// The bound of each step (the daemon's start with its table, convergence both ways, each
/// withdrawal): about four times the slowest seen on a loaded 2-core machine (GoBGP taking
/// our 100,000 prefixes: up to 24 s), so that a failure means something and still comes
/// within a minute and a half.
const STEP: Duration = Duration::from_secs(90);

/// `n` consecutive /24s from `first`.
fn slash24s(first: Ipv4Addr, n: usize) -> Vec<IpNet> {
    let base = u32::from(first);
    (0..n as u32)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base + (i << 8)), 24).unwrap()))
        .collect()
}

/// How many IPv4 prefixes our speaker holds from the daemon (its Adj-RIB-In).
fn ours_received(speaker: &SpeakerSide, lab: Lab) -> usize {
    ours_counts(speaker, lab).0
}

/// Received and accepted IPv4 prefixes from the daemon.
fn ours_counts(speaker: &SpeakerSide, lab: Lab) -> (usize, usize) {
    let snap = speaker.call(|h| async move { h.snapshot().await });
    snap.iter()
        .find(|p| p.address == std::net::IpAddr::V4(lab.daemon))
        .and_then(|p| {
            p.families
                .iter()
                .find(|f| f.family == AfiSafi::IPV4_UNICAST)
        })
        .map_or((0, 0), |f| (f.received as usize, f.accepted as usize))
}

/// Polls `count` until it returns `want`; returns how long that took. Bounded by [`STEP`].
fn until_count(what: &str, mut count: impl FnMut() -> usize, want: usize) -> Duration {
    let start = Instant::now();
    let mut last = usize::MAX;
    loop {
        let n = count();
        if n == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < STEP,
            "{what}: {n} after {STEP:?} (want {want}; last seen {last})"
        );
        last = n;
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn hundred_thousand(kind: DaemonKind) {
    let Some(kind) = require_daemon(kind) else {
        return;
    };
    let lab = Lab::allocate();
    let theirs = slash24s(Ipv4Addr::new(40, 0, 0, 0), N);
    let mine = slash24s(Ipv4Addr::new(20, 0, 0, 0), N);
    let mut spec = DaemonSpec::new(kind, lab, DAEMON_AS, OUR_AS);
    spec.bulk_routes = theirs;
    spec.quiet = true;
    let t = Instant::now();
    let daemon = ok(Daemon::start_ready(spec.clone(), STEP));
    let ready = t.elapsed();

    let mut settings = speaker_settings(&spec, lab, 120);
    let nh = "198.18.0.100".parse().unwrap();
    settings.announcements = mine
        .iter()
        .map(|p| Announcement::new(*p).with_next_hop(nh))
        .collect();
    let mut speaker = SpeakerSide::start(settings);
    let (up_at, _) =
        ok(speaker.wait_event("PeerUp", ESTABLISH, |e| matches!(e, Event::PeerUp { .. })));

    // Both ways at once, as on a real session: poll both counts until both are complete.
    let daemon_count = || match daemon.received_count(lab.ours, AfiSafi::IPV4_UNICAST) {
        Ok(n) => n,
        Err(e) => panic!("{e}"),
    };
    let (mut to_daemon, mut to_us) = (None, None);
    let mut last = (0, 0);
    while to_daemon.is_none() || to_us.is_none() {
        if to_daemon.is_none() {
            last.0 = daemon_count();
            if last.0 == N {
                to_daemon = Some(up_at.elapsed());
            }
        }
        if to_us.is_none() {
            last.1 = ours_received(&speaker, lab);
            if last.1 == N {
                to_us = Some(up_at.elapsed());
            }
        }
        assert!(
            up_at.elapsed() < STEP,
            "{kind}: not converged after {STEP:?}: the daemon holds {} of ours, we {} of its \
             (received, accepted: {:?}; UPDATEs received {:?})",
            last.0,
            last.1,
            ours_counts(&speaker, lab),
            speaker
                .call(|h| async move { h.snapshot().await })
                .iter()
                .map(|p| (p.address, p.received.update))
                .collect::<Vec<_>>(),
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let (to_daemon, to_us) = (to_daemon.unwrap(), to_us.unwrap());
    // End-of-RIB (RFC 4724 §2 recommends it after the initial update, GR or not): FRR and
    // BIRD send it; GoBGP 3.10 only when graceful restart is negotiated (not here).
    let eor_at = speaker.events().into_iter().find_map(|(at, e)| {
        matches!(e, Event::EndOfRibReceived { family, .. } if family == AfiSafi::IPV4_UNICAST)
            .then(|| at.duration_since(up_at))
    });
    assert_eq!(
        eor_at.is_some(),
        kind != DaemonKind::Gobgp,
        "{kind}: End-of-RIB at {eor_at:?}"
    );
    let stats = speaker.call(|h| async move { h.snapshot().await });
    let counts = stats
        .iter()
        .find(|p| p.address == std::net::IpAddr::V4(lab.daemon))
        .map(|p| (p.received.update, p.sent.update))
        .unwrap_or_default();

    // Withdraw all of ours, then the daemon all of its.
    speaker.call(|h| async move { h.set_routes(Vec::new()).await });
    let withdraw_ours = until_count(&format!("{kind} holding none of ours"), daemon_count, 0);
    ok(daemon.withdraw_all());
    let withdraw_theirs = until_count(
        &format!("us holding none of {kind}'s"),
        || ours_received(&speaker, lab),
        0,
    );

    println!(
        "{kind}: {N} prefixes each way: daemon ready {ready:.1?}; after Established: \
         the daemon holds ours in {to_daemon:.1?}, we hold its in {to_us:.1?} \
         (its End-of-RIB at {eor_at:.1?}); UPDATEs received {}, sent {}; withdrawal of ours seen \
         by the daemon in {withdraw_ours:.1?}, of its by us in {withdraw_theirs:.1?}",
        counts.0, counts.1,
    );
}
