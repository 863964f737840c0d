//! The harness itself: a dropped `Daemon` leaves no process and no directory behind, also
//! when the test panics; a wait that cannot succeed fails within its bound and names what it
//! waited for.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use bgp_testkit::daemons::{Daemon, DaemonKind, DaemonSpec, Lab, require_daemon};

use crate::{DAEMON_AS, OUR_AS, READY, ok, per_daemon};

per_daemon!(drop_cleans_up, super::drop_cleans_up);

fn gone(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.is_empty() || stat.contains(") Z ")
}

fn drop_cleans_up(kind: DaemonKind) {
    let Some(kind) = require_daemon(kind) else {
        return;
    };
    let lab = Lab::allocate();
    let d = ok(Daemon::start_ready(
        DaemonSpec::new(kind, lab, DAEMON_AS, OUR_AS),
        READY,
    ));
    let pid = d.pid().expect("running");
    let dir = d.dir().to_path_buf();
    // A bounded wait for something that never happens (nobody is at our address).
    let start = Instant::now();
    let e = d
        .wait_established(Ipv4Addr::new(127, 0, 0, 1), Duration::from_secs(1))
        .expect_err("established with nobody");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(e.0.contains("timeout after 1s"), "{e}");
    assert!(e.0.contains("127.0.0.1 Established"), "{e}");

    // Dropped while a test panics.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _d = d;
        panic!("a failing test");
    }));
    assert!(r.is_err());
    assert!(gone(pid), "{kind} (pid {pid}) still runs");
    assert!(!Path::new(&dir).exists(), "{dir:?} still exists");
}
