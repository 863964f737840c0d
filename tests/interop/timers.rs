//! Scenario 7: timers (RFC 4271 §4.2, §4.4, §10). A 3 s hold time stays Established for a
//! minute (twenty hold times, as issue 6 asks); a daemon proposing hold time 0 gives a session
//! without keepalives that stays up.

use std::time::{Duration, Instant};

use bgp_fsm::Action;
use bgp_testkit::daemons::DaemonKind;
use bgp_wire::MessageType;

use crate::ours::OurSide;
use crate::{establish, ok, per_daemon, setup};

per_daemon!(hold_time_3s, super::hold_time_3s);
per_daemon!(hold_time_zero, super::hold_time_zero);

/// How long the short-hold-time session must stay up.
const SOAK: Duration = Duration::from_secs(60);

fn negotiated_hold(pair: &crate::Pair) -> u16 {
    let status = pair.ours.status();
    status.negotiated.map(|n| n.hold_time).expect("Established")
}

fn hold_time_3s(kind: DaemonKind) {
    let Some((spec, cfg, lab)) = setup(kind, |spec, ours| {
        spec.neighbor.hold_time = Some(3);
        ours.hold_time = 3;
    }) else {
        return;
    };
    let mut pair = establish(spec, cfg, lab);
    assert_eq!(negotiated_hold(&pair), 3);
    let stats = pair.ours.stats();
    let before = stats.received(MessageType::Keepalive);
    let start = Instant::now();
    while start.elapsed() < SOAK {
        std::thread::sleep(Duration::from_secs(1));
        assert!(
            ok(pair.daemon.is_established(lab.ours)),
            "{kind} left Established after {:?}\n{}",
            start.elapsed(),
            pair.daemon.log_tail(30)
        );
    }
    let down = pair
        .ours
        .wait_for("no SessionDown", Duration::from_millis(10), &mut |a| {
            matches!(a, Action::SessionDown(_))
        });
    assert!(down.is_err(), "our session went down: {down:?}");
    let keepalives = stats.received(MessageType::Keepalive) - before;
    // The daemon sends one at least every hold time / 3 (RFC 4271 §4.4 suggests a third).
    assert!(
        keepalives as f64 >= SOAK.as_secs_f64() / 3.0,
        "{kind} sent {keepalives} KEEPALIVEs in {SOAK:?}"
    );
    println!("{kind}: {keepalives} KEEPALIVEs received in {SOAK:?} with hold time 3 s");
}

fn hold_time_zero(kind: DaemonKind) {
    let Some((spec, cfg, lab)) = setup(kind, |spec, ours| {
        spec.neighbor.hold_time = Some(0);
        // GoBGP cannot be told to propose 0: `hold-time = 0` is its "unset", so it proposes
        // 90 (docs/interop.md). We propose 0 instead, and GoBGP must accept it.
        ours.hold_time = if kind == DaemonKind::Gobgp { 0 } else { 90 };
    }) else {
        return;
    };
    let mut pair = establish(spec, cfg, lab);
    // RFC 4271 §4.2: the smaller of the two hold times; 0 means no keepalives at all.
    assert_eq!(
        negotiated_hold(&pair),
        0,
        "hold time 0 not negotiated with {kind}"
    );
    let stats = pair.ours.stats();
    let before = stats.received(MessageType::Keepalive);
    std::thread::sleep(Duration::from_secs(8));
    assert!(ok(pair.daemon.is_established(lab.ours)));
    let down = pair
        .ours
        .wait_for("no SessionDown", Duration::from_millis(10), &mut |a| {
            matches!(a, Action::SessionDown(_))
        });
    assert!(down.is_err(), "our session went down: {down:?}");
    assert_eq!(
        stats.received(MessageType::Keepalive),
        before,
        "{kind} sent KEEPALIVEs with hold time 0"
    );
    assert_eq!(
        stats.sent(MessageType::Keepalive),
        1,
        "we sent KEEPALIVEs with hold time 0"
    );
}
