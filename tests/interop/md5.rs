//! Scenario 6 of the issue: TCP MD5 signatures (RFC 2385). The right password establishes;
//! a wrong one never does (bounded wait), and our side says why: its status shows the
//! connection attempts getting no answer, and the kernel counts the segments it dropped for a
//! bad signature (`TcpExt: TCPMD5Failure`).

use std::time::{Duration, Instant};

use bgp_fsm::Action;
use bgp_testkit::daemons::{Daemon, DaemonKind};

use crate::ours::{OurSide, PeerTaskSide};
use crate::{READY, establish, ok, per_daemon, setup};

per_daemon!(md5_right_password, super::right_password);
per_daemon!(md5_wrong_password, super::wrong_password);

const PASSWORD: &str = "interop-s3cret";

fn right_password(kind: DaemonKind) {
    let Some((spec, cfg, lab)) = setup(kind, |spec, ours| {
        spec.neighbor.password = Some(PASSWORD.into());
        ours.password = Some(PASSWORD.into());
    }) else {
        return;
    };
    let _pair = establish(spec, cfg, lab);
}

/// The kernel's count of TCP segments dropped for a bad MD5 signature.
fn md5_failures() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("TcpExt:")).collect();
    let [names, values] = lines[..] else { return 0 };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "TCPMD5Failure")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn wrong_password(kind: DaemonKind) {
    let Some((spec, cfg, lab)) = setup(kind, |spec, ours| {
        spec.neighbor.password = Some(PASSWORD.into());
        ours.password = Some("not-the-password".into());
        ours.connect_timeout = Some(Duration::from_millis(1500));
    }) else {
        return;
    };
    let before = md5_failures();
    let daemon = ok(Daemon::start_ready(spec, READY));
    let mut ours = PeerTaskSide::start(cfg);
    let start = Instant::now();
    let up = ours.wait_for("Established", Duration::from_secs(8), &mut |a| {
        matches!(a, Action::Established(_))
    });
    assert!(up.is_err(), "established with a wrong password: {up:?}");
    assert!(!ok(daemon.is_established(lab.ours)));
    let status = ours.status();
    println!(
        "{kind}, wrong password, after {:?}: state {}, last connect error {:?}",
        start.elapsed(),
        status.state,
        status.last_connect_error
    );
    assert!(
        status
            .last_connect_error
            .as_deref()
            .is_some_and(|e| e.contains("no answer")),
        "our status does not say why: {status:?}"
    );
    let dropped = md5_failures() - before;
    assert!(
        dropped > 0,
        "the kernel dropped no segment for a bad MD5 signature"
    );
}
