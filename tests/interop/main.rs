//! Interop against real FRR, BIRD and GoBGP (issue 6), each started by the test on its own
//! loopback address with a generated configuration (see `bgp_testkit::daemons`).
//!
//! Every scenario runs against each daemon: a test named `<scenario>::<daemon>`. Without the
//! daemon installed the test prints `skipped: ...` and passes, unless `BGP_INTEROP=require`
//! (as `.ci/run` sets), in which case it fails. `docs/interop.md` has the scenario × daemon
//! table and what each daemon does differently from the RFCs.
//!
//! Our side is [`ours::PeerTaskSide`] (one peer task over TCP) behind the [`ours::OurSide`]
//! trait, so that the scenarios can later run against the full speaker.

mod connect;
mod graceful_restart;
mod hand_over;
mod harness;
mod many_routes;
mod md5;
mod ours;
mod refresh;
mod rfc8538;
mod routes;
mod timers;
mod we_restart;

use std::net::SocketAddr;
use std::time::Duration;

use bgp_fsm::{Action, GracefulRestartConfig};
use bgp_speaker::{GlobalSettings, PeerSettings};
use bgp_testkit::daemons::{Daemon, DaemonKind, DaemonSpec, Lab, require_daemon};
use bgp_wire::{AfiSafi, Asn};

use ours::{OurConfig, OurSide, PeerTaskSide};

/// Our AS (4-octet, RFC 6793).
pub(crate) const OUR_AS: u32 = 4_200_000_001;
/// The daemon's AS in eBGP scenarios.
pub(crate) const DAEMON_AS: u32 = 4_200_000_002;

/// The AS of a third peer: a monitor behind the daemon, or a second peer of ours.
pub(crate) const MONITOR_AS: u32 = 4_200_000_003;

/// How long a daemon may take until its CLI answers.
pub(crate) const READY: Duration = Duration::from_secs(15);
/// How long a session may take to come up.
pub(crate) const ESTABLISH: Duration = Duration::from_secs(20);
/// How long routes may take to arrive.
pub(crate) const CONVERGE: Duration = Duration::from_secs(15);

/// Defines one test per daemon, `<module>::frr`, `::bird`, `::gobgp`, each calling
/// `$body(kind)`.
macro_rules! per_daemon {
    ($name:ident, $body:path) => {
        mod $name {
            use bgp_testkit::daemons::DaemonKind;
            #[test]
            fn frr() {
                $body(DaemonKind::Frr)
            }
            #[test]
            fn bird() {
                $body(DaemonKind::Bird)
            }
            #[test]
            fn gobgp() {
                $body(DaemonKind::Gobgp)
            }
        }
    };
}
pub(crate) use per_daemon;

/// Unwraps a harness result, failing the test with its message (which names what was
/// awaited and carries the daemon's log tail).
pub(crate) fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(x) => x,
        Err(e) => panic!("{e}"),
    }
}

/// A daemon and our side, both up.
pub(crate) struct Pair {
    /// The daemon.
    pub(crate) daemon: Daemon,
    /// Our side.
    pub(crate) ours: PeerTaskSide,
}

/// The common start of a scenario: `None` when the daemon is not installed (skipped);
/// otherwise a lab, the daemon specification (eBGP, passive daemon) for `edit`, and our
/// configuration matching it.
pub(crate) fn setup(
    kind: DaemonKind,
    edit: impl FnOnce(&mut DaemonSpec, &mut OurConfig),
) -> Option<(DaemonSpec, OurConfig, Lab)> {
    let kind = require_daemon(kind)?;
    let lab = Lab::allocate();
    let mut spec = DaemonSpec::new(kind, lab, DAEMON_AS, OUR_AS);
    let mut ours = OurConfig {
        addr: lab.ours,
        asn: OUR_AS,
        peer: SocketAddr::new(lab.daemon.into(), spec.port),
        peer_asn: DAEMON_AS,
        hold_time: 90,
        password: None,
        listen: false,
        passive: false,
        connect_timeout: None,
    };
    edit(&mut spec, &mut ours);
    ours.peer_asn = spec.asn;
    Some((spec, ours, lab))
}

/// Starts the daemon, then our side, and waits until both say Established.
pub(crate) fn establish(spec: DaemonSpec, cfg: OurConfig, lab: Lab) -> Pair {
    let daemon = ok(Daemon::start_ready(spec, READY));
    let mut ours = PeerTaskSide::start(cfg);
    ok(ours.wait_for("Established", ESTABLISH, &mut |a| {
        matches!(a, Action::Established(_))
    }));
    ok(daemon.wait_established(lab.ours, ESTABLISH));
    Pair { daemon, ours }
}

/// Our speaker's settings for a session with the daemon of `spec` (IPv4 and IPv6 unicast,
/// graceful restart with `restart_time`, short retry timers), from `lab.ours`.
pub(crate) fn speaker_settings(spec: &DaemonSpec, lab: Lab, restart_time: u16) -> GlobalSettings {
    GlobalSettings {
        asn: Asn(OUR_AS),
        router_id: lab.ours,
        peers: vec![our_peer(
            lab.ours,
            spec.addr,
            spec.port,
            spec.asn,
            restart_time,
        )],
        ..GlobalSettings::default()
    }
}

/// One peer of our speaker at `addr:port` (AS `asn`), connecting from `local`.
pub(crate) fn our_peer(
    local: std::net::Ipv4Addr,
    addr: std::net::Ipv4Addr,
    port: u16,
    asn: u32,
    restart_time: u16,
) -> PeerSettings {
    PeerSettings {
        address: addr.into(),
        port,
        asn: Asn(asn),
        local_address: Some(local.into()),
        connect_retry: Duration::from_secs(2),
        idle_hold_time: Duration::from_secs(1),
        families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
        graceful_restart: GracefulRestartConfig {
            restart_time,
            ..GracefulRestartConfig::default()
        },
        ..PeerSettings::default()
    }
}
