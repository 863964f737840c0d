//! The CLI (`examples/speaker.rs`) as an operator runs it (issue 5): with no arguments, the
//! self-contained demo exits 0; with a configuration, over loopback TCP against an in-process
//! speaker acting as the graceful-restart helper:
//! - SIGTERM stops for restart: the helper keeps our routes (RFC 4724 §4.2);
//! - started again with the same configuration file, minus one prefix, the CLI comes back as
//!   the restarting speaker by itself (the restart-state file): the helper keeps every route
//!   throughout and, after our End-of-RIB, drops exactly the prefix no longer announced;
//! - SIGINT stops for good: Cease, the helper drops our routes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bgp_speaker::core::Event;
use bgp_speaker::testkit::next_event;
use bgp_speaker::{EventStream, GlobalSettings, PeerSettings, Speaker};
use bgp_wire::Asn;
use ipnet::IpNet;

const CLI: Ipv4Addr = Ipv4Addr::new(127, 0, 61, 1);
const HELPER: Ipv4Addr = Ipv4Addr::new(127, 0, 61, 2);
const PORT: u16 = 11790;
const WAIT: Duration = Duration::from_secs(30);
const KEPT: &str = "198.51.100.0/24";
const DROPPED: &str = "203.0.113.0/24";

/// The example binary `cargo test` built next to this test.
fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join("examples").join("speaker");
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds the examples",
        bin.display()
    );
    bin
}

/// A CLI process, stopped (by its id) when dropped, so that a failing test leaves nothing.
struct Cli(Child);

impl Cli {
    /// Runs the CLI on `config` with `--json`; its stdout is kept for [`Cli::json_lines`].
    fn start(config: &Path) -> Cli {
        let child = Command::new(cli_binary())
            .arg("--config")
            .arg(config)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the CLI");
        Cli(child)
    }

    /// After the exit: every line it printed, each a JSON object naming its event.
    fn json_lines(&mut self) -> Vec<serde_json::Value> {
        let mut text = String::new();
        if let Some(mut out) = self.0.stdout.take() {
            std::io::Read::read_to_string(&mut out, &mut text).expect("read stdout");
        }
        text.lines()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"));
                assert!(v["event"].is_string(), "no event name: {l}");
                v
            })
            .collect()
    }

    /// Sends `signal` (by the process id) and waits, bounded, for the exit.
    fn stop(&mut self, signal: &str) -> bool {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill {signal} {pid}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the CLI did not exit after {signal}");
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn write_config(path: &Path, state: &Path, prefixes: &[&str]) {
    let mut text = format!(
        "[global]\nasn = 65001\nrouter-id = \"192.0.2.61\"\nrestart-state-file = \"{}\"\n\n\
         [[peer]]\naddress = \"{HELPER}\"\nport = {PORT}\npeer-asn = 65002\n\
         local-address = \"{CLI}\"\nconnect-retry = 1\n",
        state.display()
    );
    for p in prefixes {
        text += &format!("\n[[announce]]\nprefix = \"{p}\"\n");
    }
    std::fs::write(path, text).expect("write the config");
}

async fn event(events: &mut EventStream, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    next_event(events, WAIT, pred)
        .await
        .unwrap_or_else(|| panic!("no {what} within {WAIT:?}"))
}

fn net(p: &str) -> IpNet {
    p.parse().expect("prefix")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restarts_gracefully_and_sigint_stops_for_good() {
    let dir = std::env::temp_dir().join(format!("bgp-speaker-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (config, state) = (dir.join("speaker.toml"), dir.join("restart-state"));
    let _ = std::fs::remove_file(&state);

    let helper = GlobalSettings {
        asn: Asn(65002),
        router_id: HELPER,
        listen: vec![SocketAddr::new(IpAddr::V4(HELPER), PORT)],
        loc_rib_events: true,
        peers: vec![PeerSettings {
            passive: true,
            local_address: Some(IpAddr::V4(HELPER)),
            ..PeerSettings::new(IpAddr::V4(CLI), Asn(65001))
        }],
        ..GlobalSettings::default()
    };
    let (h, mut he) = Speaker::start(helper).await.expect("helper");

    write_config(&config, &state, &[KEPT, DROPPED]);
    let cli = Cli::start(&config);
    event(&mut he, "session", |e| matches!(e, Event::PeerUp { .. })).await;
    let mut learned = Vec::new();
    while learned.len() < 2 {
        if let Event::RouteChanged {
            prefix,
            route: Some(_),
            ..
        } = event(&mut he, "our routes", |e| {
            matches!(e, Event::RouteChanged { .. })
        })
        .await
        {
            learned.push(prefix);
        }
    }

    // SIGTERM: stop for restart. The helper keeps both routes, stale.
    let mut cli = cli;
    assert!(cli.stop("-TERM"), "exit status 0 after SIGTERM");
    let printed: Vec<String> = cli
        .json_lines()
        .iter()
        .map(|v| v["event"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        printed.iter().any(|e| e == "peer-up") && printed.iter().any(|e| e == "end-of-rib-sent"),
        "{printed:?}"
    );
    let down = event(&mut he, "session down", |e| {
        matches!(e, Event::PeerDown { .. })
    })
    .await;
    assert!(
        matches!(
            down,
            Event::PeerDown {
                routes_kept: true,
                ..
            }
        ),
        "{down:?}"
    );
    assert!(state.exists(), "the restart state was written");

    // Started again, one prefix fewer: back as the restarting speaker, by itself.
    write_config(&config, &state, &[KEPT]);
    let cli = Cli::start(&config);
    event(&mut he, "session again", |e| {
        matches!(e, Event::PeerUp { .. })
    })
    .await;
    let mut withdrawn = Vec::new();
    while let Event::RouteChanged { prefix, .. } = event(&mut he, "End-of-RIB and the purge", |e| {
        matches!(
            e,
            Event::RouteChanged { route: None, .. } | Event::StalePurged { .. }
        )
    })
    .await
    {
        withdrawn.push(prefix);
    }
    // The purge may be reported before its route changes reach the stream: collect briefly.
    while let Some(Event::RouteChanged { prefix, .. }) =
        next_event(&mut he, Duration::from_secs(1), |e| {
            matches!(e, Event::RouteChanged { route: None, .. })
        })
        .await
    {
        withdrawn.push(prefix);
    }
    assert_eq!(
        withdrawn,
        vec![net(DROPPED)],
        "exactly the dropped prefix went"
    );
    let routes = h.routes().await.expect("routes");
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0].1, net(KEPT));
    assert!(!routes[0].2.stale, "refreshed after End-of-RIB");

    // SIGINT: stop for good. The helper is told (Cease) and drops our routes.
    let mut cli = cli;
    assert!(cli.stop("-INT"), "exit status 0 after SIGINT");
    let down = event(&mut he, "session down for good", |e| {
        matches!(e, Event::PeerDown { .. })
    })
    .await;
    assert!(
        matches!(
            down,
            Event::PeerDown {
                routes_kept: false,
                ..
            }
        ),
        "{down:?}"
    );
    let deadline = Instant::now() + WAIT;
    while !h.routes().await.expect("routes").is_empty() {
        assert!(
            Instant::now() < deadline,
            "routes still held after the Cease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.shutdown(Default::default()).await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's first command: `cargo run --release --example speaker` with no arguments runs
/// the graceful-restart demo on loopback and exits 0 (here the debug build, bounded).
#[test]
fn the_demo_runs_to_the_end_and_exits_0() {
    let mut child = Command::new(cli_binary())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut text).expect("read stdout");
    }
    assert!(status.success(), "demo failed: {status}\n{text}");
    assert!(text.contains("6. Both stop for good"), "{text}");
}

/// A hitless upgrade as an operator runs it (issue 9): a second CLI process started with
/// `--take-over` takes the live session from the running one, which prints `handed-over`
/// and exits 0; then a third takes it from the second. The helper's session never goes down
/// (hold time 3 s), it receives no UPDATE because of it, and the last process still serves
/// it: SIGINT ends the session with a Cease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_over_moves_the_live_session_to_a_new_process() {
    const CLI2: Ipv4Addr = Ipv4Addr::new(127, 0, 61, 11);
    const HELPER2: Ipv4Addr = Ipv4Addr::new(127, 0, 61, 12);
    let dir = std::env::temp_dir().join(format!("bgp-speaker-cli-ho-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (config, sock) = (dir.join("speaker.toml"), dir.join("hand-over.sock"));
    let text = format!(
        "[global]\nasn = 65001\nrouter-id = \"192.0.2.62\"\nrestart-state-file = \"{}\"\n\
         hand-over-socket = \"{}\"\n\n\
         [[peer]]\naddress = \"{HELPER2}\"\nport = {PORT}\npeer-asn = 65002\n\
         local-address = \"{CLI2}\"\nconnect-retry = 1\nhold-time = 3\n\n\
         [[announce]]\nprefix = \"{KEPT}\"\n",
        dir.join("restart-state").display(),
        sock.display()
    );
    std::fs::write(&config, text).expect("write the config");
    let helper = GlobalSettings {
        asn: Asn(65002),
        router_id: HELPER2,
        listen: vec![SocketAddr::new(IpAddr::V4(HELPER2), PORT)],
        loc_rib_events: true,
        peers: vec![PeerSettings {
            passive: true,
            hold_time: 3,
            local_address: Some(IpAddr::V4(HELPER2)),
            ..PeerSettings::new(IpAddr::V4(CLI2), Asn(65001))
        }],
        ..GlobalSettings::default()
    };
    let (h, mut he) = Speaker::start(helper).await.expect("helper");
    let mut running = Cli::start(&config);
    event(&mut he, "session", |e| matches!(e, Event::PeerUp { .. })).await;
    event(&mut he, "our route", |e| {
        matches!(e, Event::RouteChanged { route: Some(_), .. })
    })
    .await;
    let view = |s: &bgp_speaker::snapshot::PeerSnapshot| (s.state, s.flaps, s.received.update);
    let before = view(&h.snapshot().await.expect("snapshot")[0]);
    for round in 0..2 {
        let next = Command::new(cli_binary())
            .arg("--config")
            .arg(&config)
            .arg("--json")
            .arg("--take-over")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the next CLI");
        let next = Cli(next);
        // The running process hands over and exits by itself.
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Ok(Some(s)) = running.0.try_wait() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the running CLI did not exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "round {round}: exit status {status}");
        let printed = running.json_lines();
        assert!(
            printed
                .iter()
                .any(|v| v["event"] == "handed-over" && v["sessions"] == 1),
            "round {round}: {printed:?}"
        );
        running = next;
        // Longer than the hold time: the new process keeps the session alive.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        while let Some(e) = he.try_recv() {
            assert!(!matches!(e, Event::PeerDown { .. }), "round {round}: {e}");
        }
        let now = view(&h.snapshot().await.expect("snapshot")[0]);
        assert_eq!(now, before, "round {round}: the helper's session changed");
        assert_eq!(h.routes().await.expect("routes").len(), 1);
    }
    assert!(running.stop("-INT"), "exit status 0 after SIGINT");
    let down = event(&mut he, "session down", |e| {
        matches!(e, Event::PeerDown { .. })
    })
    .await;
    assert!(
        matches!(
            down,
            Event::PeerDown {
                routes_kept: false,
                ..
            }
        ),
        "{down:?}"
    );
    h.shutdown(Default::default()).await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
