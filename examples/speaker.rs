//! The bgp-speaker CLI.
//!
//! - No arguments: a self-contained demo on loopback (no router needed): two speakers peer,
//!   one announces routes, the other learns them; the first stops for restart and comes back
//!   as the restarting speaker while the second keeps its routes stale; after the first's
//!   End-of-RIB the second purges exactly the route that was not announced again. Every step
//!   is narrated and bounded in time; exit status 0 when all went as expected.
//! - `--config FILE`: runs a speaker from a TOML configuration (see `examples/speaker.toml`),
//!   printing events as lines (`--json`: one JSON object per line). SIGTERM stops for restart
//!   (graceful-restart helpers keep our routes; the next start with the same configuration
//!   comes back as the restarting speaker), SIGINT stops for good (Cease).
//!   `--metrics ADDR` serves the Prometheus counters over HTTP. `--take-over PATH` takes the
//!   live sessions over from a running speaker waiting on that Unix socket (its
//!   `hand-over-socket`), which exits once they are handed over: an upgrade the peers do not
//!   see (docs/hand-over.md).
//!
//! Logs go to stderr through `tracing-subscriber` (`RUST_LOG` honoured; default `warn`, so a
//! healthy idle speaker prints nothing).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bgp_fsm::GracefulRestartConfig;
use bgp_speaker::config::Config;
use bgp_speaker::core::{Announcement, Event, describe_down};
use bgp_speaker::handover::HandOverError;
use bgp_speaker::snapshot::PeerSnapshot;
use bgp_speaker::{
    EventStream, GlobalSettings, PeerSettings, ShutdownOptions, Speaker, SpeakerHandle,
};
use bgp_wire::{AfiSafi, Asn, Community, LargeCommunity};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A BGP speaker with RFC 4724 graceful restart. Without arguments: a loopback demo.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Run a speaker from this TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print events as JSON, one object per line.
    #[arg(long)]
    json: bool,
    /// Also print every best-route change (Loc-RIB).
    #[arg(long)]
    routes: bool,
    /// Serve Prometheus metrics on this address (HTTP, any path).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Use the multi-thread tokio runtime (default: current-thread, the smallest footprint).
    #[arg(long)]
    multi_thread: bool,
    /// Take the live sessions over from the speaker waiting on this Unix socket (its
    /// `hand-over-socket`), then wait on it for the next one (a hitless upgrade).
    #[arg(long, value_name = "PATH")]
    take_over: Option<PathBuf>,
    /// Wait on this Unix socket for a process that takes the sessions over (overrides the
    /// configuration's `hand-over-socket`).
    #[arg(long, value_name = "PATH")]
    hand_over_socket: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let default_level = if args.config.is_some() {
        "warn"
    } else {
        "error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = if args.multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &args.config {
        Some(path) => rt.block_on(run_config(path, &args)),
        None => rt.block_on(demo()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// --config

async fn run_config(path: &Path, args: &Args) -> Result<(), String> {
    let cfg = Config::from_file(path).map_err(|e| e.to_string())?;
    let mut settings = GlobalSettings::from_config(&cfg);
    settings.loc_rib_events = args.routes;
    if let Some(p) = args.hand_over_socket.as_ref().or(args.take_over.as_ref()) {
        settings.hand_over_socket = Some(p.clone());
    }
    let (speaker, mut events, taken_over) = start(settings, args).await?;
    // Our End-of-RIB (held after a restart) may go once our initial routes are in. Ours are
    // the configured ones, announced at start; with export-learned, the learned ones too:
    // RFC 4724 §4.1 defers until every peer's End-of-RIB is in (or the deferral timer,
    // which the speaker runs, fires).
    // Per peer: `None` until it is up, then the families whose End-of-RIB is still due.
    type Due = HashMap<String, Option<HashSet<AfiSafi>>>;
    let mut waiting: Option<Due> = if taken_over {
        // The sessions and our routes came with the hand-over; the configuration's routes
        // may differ from the old process's: only the difference goes out.
        let routes = settings_routes(&cfg);
        speaker
            .set_routes(routes)
            .await
            .map_err(|e| e.to_string())?;
        None
    } else if cfg.global.export_learned {
        Some(
            cfg.peers
                .iter()
                .map(|p| (peer_name(p.address, p.port), None))
                .collect(),
        )
    } else {
        speaker
            .initial_routes_done()
            .await
            .map_err(|e| e.to_string())?;
        None
    };
    if let Some(addr) = args.metrics {
        if taken_over {
            // The process before still holds the address until it has exited (it does so
            // right after the hand-over): wait for it, and never give the sessions up for it.
            let speaker = speaker.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    if let Ok(l) = tokio::net::TcpListener::bind(addr).await {
                        return serve_metrics(l, speaker).await;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                eprintln!("--metrics {addr}: still in use 10 s after the take-over; no metrics");
            });
        } else {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("--metrics {addr}: {e}"))?;
            tokio::spawn(serve_metrics(l, speaker.clone()));
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Some(e) => {
                    if let Some(w) = &mut waiting {
                        match &e {
                            Event::PeerUp { peer, families, .. } => {
                                let due = families.iter().copied().collect();
                                w.insert(peer.to_string(), Some(due));
                            }
                            Event::EndOfRibReceived { peer, family } => {
                                if let Some(Some(f)) = w.get_mut(&peer.to_string()) {
                                    f.remove(family);
                                }
                            }
                            _ => {}
                        }
                        let all_in = w.values().all(|f| f.as_ref().is_some_and(|f| f.is_empty()));
                        if all_in {
                            waiting = None;
                            speaker.initial_routes_done().await.map_err(|e| e.to_string())?;
                        }
                    }
                    let line = if args.json { event_json(&e).to_string() } else { e.to_string() };
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                        // Nobody reads our output any more: stop for good.
                        let _ = speaker.shutdown(ShutdownOptions::default()).await;
                        return Ok(());
                    }
                    match e {
                        // The new process has the sessions (or, when it could not take them,
                        // we stopped for a graceful restart): this one is done.
                        Event::HandedOver { .. } | Event::HandOverFailed { stopped: true, .. } => {
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                None => return Ok(()),
            },
            _ = term.recv() => {
                eprintln!("SIGTERM: stopping for restart (graceful-restart helpers keep our routes)");
                return speaker.stop_for_restart().await.map_err(|e| e.to_string());
            }
            _ = tokio::signal::ctrl_c() => {
                eprintln!("SIGINT: stopping for good (Cease)");
                return speaker
                    .shutdown(ShutdownOptions::default())
                    .await
                    .map_err(|e| e.to_string());
            }
        }
    }
}

/// Starts the speaker, or (with `--take-over`) takes the sessions over from the running one.
/// Returns whether it took over. When the running one could not hand over because the
/// image was not one this build reads, it stopped for a graceful restart and this one
/// starts as the restarting speaker; when nobody waits on the socket, this one starts
/// afresh. Any other failure leaves the running one in charge, and this one gives up.
async fn start(
    settings: GlobalSettings,
    args: &Args,
) -> Result<(SpeakerHandle, EventStream, bool), String> {
    if let Some(path) = &args.take_over {
        match Speaker::take_over(settings.clone(), path).await {
            Ok((s, e)) => {
                eprintln!("took the sessions over from {}", path.display());
                return Ok((s, e, true));
            }
            Err(HandOverError::Refused(why)) => {
                eprintln!("take-over refused ({why}): starting as a restarting speaker");
            }
            Err(HandOverError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                eprintln!("no speaker waits on {}: starting afresh", path.display());
            }
            Err(e) => return Err(format!("take-over from {}: {e}", path.display())),
        }
    }
    let (s, e) = Speaker::start(settings).await.map_err(|e| e.to_string())?;
    Ok((s, e, false))
}

/// The configuration's routes.
fn settings_routes(cfg: &Config) -> Vec<Announcement> {
    cfg.announcements.iter().map(Announcement::from).collect()
}

/// How a peer is shown in events (see `PeerId`'s `Display`).
fn peer_name(addr: IpAddr, port: u16) -> String {
    bgp_speaker::PeerId::new(addr).with_port(port).to_string()
}

/// A tiny HTTP/1.0 responder: whatever the request, the metrics.
async fn serve_metrics(listener: tokio::net::TcpListener, speaker: SpeakerHandle) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let speaker = speaker.clone();
        tokio::spawn(async move {
            // Read the request head (bounded in size and time); its content does not matter.
            let mut buf = [0u8; 4096];
            let mut n = 0;
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while n < buf.len() {
                    match stream.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            let body = match speaker.snapshot().await {
                Ok(s) => bgp_speaker::metrics::render(&s),
                Err(e) => format!("# speaker unavailable: {e}\n"),
            };
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

fn event_json(e: &Event) -> serde_json::Value {
    use serde_json::json;
    let fam = |f: &AfiSafi| f.to_string();
    match e {
        Event::PeerUp {
            peer,
            asn,
            router_id,
            families,
            graceful_restart,
        } => json!({
            "event": "peer-up", "peer": peer.to_string(), "asn": asn.0,
            "router-id": router_id.to_string(),
            "families": families.iter().map(fam).collect::<Vec<_>>(),
            "graceful-restart": graceful_restart,
        }),
        Event::PeerDown {
            peer,
            reason,
            routes_kept,
        } => json!({
            "event": "peer-down", "peer": peer.to_string(), "reason": describe_down(reason),
            "routes-kept": routes_kept,
        }),
        Event::EndOfRibReceived { peer, family } => json!({
            "event": "end-of-rib-received", "peer": peer.to_string(), "family": fam(family),
        }),
        Event::EndOfRibSent { peer, family } => json!({
            "event": "end-of-rib-sent", "peer": peer.to_string(), "family": fam(family),
        }),
        Event::StaleKept {
            peer,
            family,
            routes,
        } => json!({
            "event": "stale-kept", "peer": peer.to_string(), "family": fam(family),
            "routes": routes,
        }),
        Event::StalePurged {
            peer,
            family,
            routes,
        } => json!({
            "event": "stale-purged", "peer": peer.to_string(), "family": fam(family),
            "routes": routes,
        }),
        Event::RouteChanged {
            family,
            prefix,
            route,
        } => match route {
            Some(r) => {
                let a = &r.attributes.attrs;
                json!({
                    "event": "route", "family": fam(family), "prefix": prefix.to_string(),
                    "next-hop": r.next_hop().map(|n| n.to_string()),
                    "as-path": a.as_path.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                    "med": a.med, "local-pref": a.local_pref,
                    "communities": a.communities.as_ref()
                        .map(|c| c.iter().map(|c| c.to_string()).collect::<Vec<_>>())
                        .unwrap_or_default(),
                    "large-communities": a.large_communities.as_ref()
                        .map(|c| c.iter().map(|c| c.to_string()).collect::<Vec<_>>())
                        .unwrap_or_default(),
                    "from": r.from.as_ref().map(|p| p.to_string()),
                    "stale": r.stale,
                })
            }
            None => json!({
                "event": "route-withdrawn", "family": fam(family), "prefix": prefix.to_string(),
            }),
        },
        Event::PrefixLimitWarning {
            peer,
            family,
            received,
            limit,
        } => json!({
            "event": "prefix-limit-warning", "peer": peer.to_string(), "family": fam(family),
            "received": received, "limit": limit,
        }),
        Event::PrefixLimitExceeded {
            peer,
            family,
            received,
            limit,
            session_stopped,
        } => json!({
            "event": "prefix-limit-exceeded", "peer": peer.to_string(), "family": fam(family),
            "received": received, "limit": limit, "session-stopped": session_stopped,
        }),
        Event::Lagged { missed } => json!({ "event": "lagged", "missed": missed }),
        Event::HandedOver { sessions, paused } => json!({
            "event": "handed-over", "sessions": sessions,
            "paused-ms": paused.as_secs_f64() * 1e3,
        }),
        Event::HandOverFailed { reason, stopped } => json!({
            "event": "hand-over-failed", "reason": reason, "stopped": stopped,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// The demo

const STEP: Duration = Duration::from_secs(15);

fn say(s: impl AsRef<str>) {
    println!("{}", s.as_ref());
    let _ = std::io::stdout().flush();
}

/// Waits for events until `f` says it has seen enough (returns `Some`), within `STEP`.
async fn wait_for<T>(
    events: &mut EventStream,
    what: &str,
    mut f: impl FnMut(&Event) -> Option<T>,
) -> Result<T, String> {
    let r = tokio::time::timeout(STEP, async {
        while let Some(e) = events.recv().await {
            if let Some(t) = f(&e) {
                return Some(t);
            }
        }
        None
    })
    .await;
    match r {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(format!("{what}: the speaker stopped")),
        Err(_) => Err(format!(
            "{what}: did not happen within {} s",
            STEP.as_secs()
        )),
    }
}

/// A port free on both loopback addresses.
fn free_port(a: IpAddr, b: IpAddr) -> Result<u16, String> {
    for _ in 0..20 {
        let l = std::net::TcpListener::bind((a, 0)).map_err(|e| format!("bind {a}: {e}"))?;
        let port = l.local_addr().map_err(|e| e.to_string())?.port();
        if std::net::TcpListener::bind((b, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(format!("no port free on both {a} and {b}"))
}

fn demo_routes() -> Vec<Announcement> {
    let mut v = Vec::new();
    for (i, p) in [
        "198.51.100.0/24",
        "203.0.113.0/24",
        "192.0.2.128/25",
        "100.64.0.0/16",
    ]
    .into_iter()
    .enumerate()
    {
        let Ok(prefix) = p.parse() else { continue };
        let mut a = Announcement::new(prefix);
        a.med = Some(10 * i as u32);
        a.communities = vec![Community::new(65001, 100 + i as u16)];
        if i == 1 {
            a.large_communities = vec![LargeCommunity::new(65001, 1, 2)];
        }
        v.push(a);
    }
    v
}

async fn demo() -> Result<(), String> {
    let a_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let b_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let port = free_port(a_ip, b_ip)?;
    let dir = std::env::temp_dir().join(format!("bgp-speaker-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let state_file = dir.join("a.restart-state");
    let result = demo_steps(a_ip, b_ip, port, &state_file).await;
    let _ = std::fs::remove_dir_all(&dir);
    if result.is_ok() {
        say("demo done: every step happened as expected");
    }
    result
}

fn peer(addr: IpAddr, port: u16, asn: u32, local: IpAddr) -> PeerSettings {
    PeerSettings {
        port,
        local_address: Some(local),
        connect_retry: Duration::from_secs(1),
        idle_hold_time: Duration::from_secs(1),
        graceful_restart: GracefulRestartConfig {
            restart_time: 30,
            ..GracefulRestartConfig::default()
        },
        ..PeerSettings::new(addr, Asn(asn))
    }
}

async fn demo_steps(a_ip: IpAddr, b_ip: IpAddr, port: u16, state: &Path) -> Result<(), String> {
    let a_settings = |routes: Vec<Announcement>| GlobalSettings {
        asn: Asn(65001),
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        listen: vec![SocketAddr::new(a_ip, port)],
        restart_state_file: Some(state.to_path_buf()),
        forwarding_preserved: [AfiSafi::IPV4_UNICAST].into_iter().collect(),
        peers: vec![peer(b_ip, port, 65002, a_ip)],
        announcements: routes,
        ..GlobalSettings::default()
    };
    let b_settings = GlobalSettings {
        asn: Asn(65002),
        router_id: Ipv4Addr::new(192, 0, 2, 2),
        listen: vec![SocketAddr::new(b_ip, port)],
        loc_rib_events: true,
        peers: vec![peer(a_ip, port, 65001, b_ip)],
        ..GlobalSettings::default()
    };
    let err = |e: bgp_speaker::SpeakerError| e.to_string();

    say(format!(
        "1. Starting speaker A (AS 65001) on {a_ip} port {port} and speaker B (AS 65002) on {b_ip} port {port}."
    ));
    let (b, mut b_events) = Speaker::start(b_settings).await.map_err(err)?;
    let (a, mut a_events) = Speaker::start(a_settings(Vec::new())).await.map_err(err)?;
    let up = |e: &Event| match e {
        Event::PeerUp { peer, families, .. } => Some(format!(
            "{peer} ({})",
            families
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => None,
    };
    let p = wait_for(&mut a_events, "A's session with B", up).await?;
    say(format!("   A: session with {p} established"));
    let p = wait_for(&mut b_events, "B's session with A", up).await?;
    say(format!("   B: session with {p} established"));

    let routes = demo_routes();
    say(format!("2. A announces {} routes.", routes.len()));
    a.announce_all(routes.clone()).await.map_err(err)?;
    let again = a.announce_all(routes.clone()).await.map_err(err)?;
    say(format!(
        "   (announcing them a second time changes {})",
        if again {
            "something?!"
        } else {
            "nothing and sends nothing"
        }
    ));
    let mut learned = 0;
    wait_for(&mut b_events, "B learning A's routes", |e| {
        if let Event::RouteChanged {
            prefix,
            route: Some(r),
            ..
        } = e
        {
            say(format!("   B learned {prefix}: {r}"));
            learned += 1;
        }
        (learned == routes.len()).then_some(())
    })
    .await?;

    say(
        "3. A stops for restart: it records its restart state and closes its sessions without a Hard Reset.",
    );
    a.stop_for_restart().await.map_err(err)?;
    drop(a_events);
    say(format!("   A wrote {}", state.display()));
    let (mut kept, mut down) = (0, false);
    wait_for(&mut b_events, "B keeping A's routes stale", |e| {
        match e {
            Event::PeerDown {
                peer,
                reason,
                routes_kept,
            } => {
                say(format!(
                    "   B: session with {peer} down ({}); routes kept: {routes_kept}",
                    describe_down(reason)
                ));
                down = true;
            }
            Event::StaleKept { routes, family, .. } => {
                say(format!(
                    "   B: {routes} {family} routes from A kept, marked stale"
                ));
                kept += routes;
            }
            Event::RouteChanged {
                prefix,
                route: None,
                ..
            } => {
                say(format!("   B: {prefix} withdrawn (unexpected)"));
            }
            _ => {}
        }
        (down && kept == routes.len()).then_some(())
    })
    .await?;
    let table = b.routes().await.map_err(err)?;
    let stale = table.iter().filter(|r| r.2.stale).count();
    say(format!(
        "   B's table: {} routes, {stale} of them stale",
        table.len()
    ));
    if stale != routes.len() {
        return Err(format!(
            "B should hold {} stale routes, holds {stale}",
            routes.len()
        ));
    }

    let again: Vec<Announcement> = routes[..routes.len() - 1].to_vec();
    let dropped = routes[routes.len() - 1].prefix;
    say(format!(
        "4. A starts again as the restarting speaker (restart state found: R and F bits set, End-of-RIB held) and re-announces {} routes, all but {dropped}.",
        again.len()
    ));
    let (a, mut a_events) = Speaker::start(a_settings(again.clone()))
        .await
        .map_err(err)?;
    let p = wait_for(&mut a_events, "A's session with B after the restart", up).await?;
    say(format!("   A: session with {p} established again"));
    let p = wait_for(
        &mut b_events,
        "B's session with A after the restart",
        |e| match e {
            Event::RouteChanged {
                prefix,
                route: None,
                ..
            } => {
                say(format!("   B: {prefix} withdrawn too early (unexpected)"));
                None
            }
            e => up(e),
        },
    )
    .await?;
    say(format!("   B: session with {p} established again"));
    let table = b.routes().await.map_err(err)?;
    say(format!(
        "   B still holds all {} routes while A has not sent End-of-RIB ({} stale)",
        table.len(),
        table.iter().filter(|r| r.2.stale).count()
    ));
    if table.len() != routes.len() {
        return Err("B dropped routes before A's End-of-RIB".into());
    }

    say(
        "5. A's initial routes are in: it tells the speaker, which sends them and then End-of-RIB.",
    );
    a.initial_routes_done().await.map_err(err)?;
    wait_for(&mut a_events, "A sending End-of-RIB", |e| match e {
        Event::EndOfRibSent { peer, family } => {
            say(format!("   A: End-of-RIB for {family} sent to {peer}"));
            Some(())
        }
        _ => None,
    })
    .await?;
    let (mut eor, mut purged, mut gone) = (false, 0, Vec::new());
    wait_for(&mut b_events, "B purging what A did not send again", |e| {
        match e {
            Event::EndOfRibReceived { family, .. } => {
                say(format!("   B: End-of-RIB for {family} received from A"));
                eor = true;
            }
            Event::StalePurged { routes, family, .. } => {
                say(format!("   B: {routes} stale {family} route(s) purged"));
                purged += routes;
            }
            Event::RouteChanged {
                prefix,
                route: None,
                ..
            } => {
                say(format!("   B: {prefix} withdrawn"));
                gone.push(*prefix);
            }
            _ => {}
        }
        (eor && purged >= 1 && !gone.is_empty()).then_some(())
    })
    .await?;
    if purged != 1 || gone != [dropped] {
        return Err(format!(
            "B should have purged exactly {dropped}; purged {purged}: {gone:?}"
        ));
    }
    let table = b.routes().await.map_err(err)?;
    say(format!(
        "   B's table now: {} routes, {} stale:",
        table.len(),
        table.iter().filter(|r| r.2.stale).count()
    ));
    for (_, prefix, r) in &table {
        say(format!("     {prefix}: {r}"));
    }
    let snap: Vec<PeerSnapshot> = b.snapshot().await.map_err(err)?;
    for s in &snap {
        let f = s.families.first();
        say(format!(
            "   B's view of {}: {}, {} flap(s), {} UPDATEs received, {} prefixes received",
            s.address,
            s.state.name(),
            s.flaps,
            s.received.update,
            f.map_or(0, |f| f.received)
        ));
    }

    say("6. Both stop for good (Cease).");
    a.shutdown(ShutdownOptions::default()).await.map_err(err)?;
    b.shutdown(ShutdownOptions::default()).await.map_err(err)?;
    Ok(())
}
