//! Soak bench (issue 7, "Leaks"): random UPDATE churn and session flaps against a speaker
//! over loopback TCP for a long time, recording the speaker's open file descriptors and
//! resident memory every minute. Not a CI test; `benches/soak/run.sh` runs it.
//!
//! ```text
//! soak [--speaker PATH] [--duration SECS] [--sample-secs SECS] [--peers N]
//!      [--rate UPDATES_PER_SEC] [--flap-secs SECS] [--prefixes N] [--seed S] [--out FILE]
//! ```
//!
//! The speaker under test runs as a separate process: by default this binary again
//! (`soak --serve`), a `bgp_speaker::Speaker` on a current-thread runtime like the CLI's, with
//! no idle hold time after a session loss (as `tests/flaps.rs`), so that the flaps are not
//! damped; with `--cli`, the CLI example (`examples/speaker.rs`, the `speaker` binary next to
//! this one unless `--speaker` says otherwise) from a generated configuration, whose peers
//! damp oscillations (the idle hold time doubles up to 5 minutes after each flap, so most
//! peers spend most of the run refused in Idle). Either way it listens on 127.0.0.1 (a free
//! port) and waits, passive, for `--peers` eBGP peers from 127.0.0.10, 127.0.0.11, ... (IPv4
//! and IPv6 unicast, export of learned routes on, so every change goes out to the other peers
//! too), and announces a few routes of its own.
//!
//! Each peer is a small task built on bgp-wire: it connects, does the OPEN exchange (the odd
//! peers with graceful restart, so that their flaps keep routes stale until they are back and
//! send End-of-RIB), then sends UPDATEs at `--rate` per second, each announcing or withdrawing
//! one to eight random prefixes of its pool of `--prefixes` (IPv4 and IPv6, overlapping
//! between peers) with random attributes, and reads and counts everything the speaker sends.
//! After a random time (up to twice `--flap-secs`) it flaps: half the time a NOTIFICATION
//! (Cease) and a close, half the time the TCP connection just drops; it reconnects after up
//! to two seconds.
//!
//! Every `--sample-secs` (default 60) it reads `/proc/PID/fd` and `VmRSS` of the speaker and
//! prints a line; at the end, a table and one JSON object (also written to `--out`). Every
//! wait is bounded; the speaker is stopped (SIGINT, then SIGKILL after 10 s) at the end.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bgp_speaker::{Announcement, GlobalSettings, Network, PeerSettings, Speaker};
use bgp_testkit::Rng;
use bgp_wire::capability::{Capability, GracefulRestart, GracefulRestartFamily};
use bgp_wire::{
    AfiSafi, AsPath, Asn, Communities, Community, Context, Message, MessageType, MpReach,
    MpUnreach, NextHop, Nlri, Nlris, Notification, Open, Origin, PathAttributes, Update,
    split_message,
};
use bytes::BytesMut;
use clap::Parser;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Random UPDATE churn and session flaps against a speaker; its fds and RSS every minute.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Test the CLI example instead of a library speaker.
    #[arg(long)]
    cli: bool,
    /// The speaker CLI binary (default: `speaker` next to this binary); implies `--cli`.
    #[arg(long)]
    speaker: Option<PathBuf>,
    /// Internal: be the speaker under test, listening on this port.
    #[arg(long, hide = true)]
    serve: Option<u16>,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 3600)]
    duration: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 60)]
    sample_secs: u64,
    /// Number of peers.
    #[arg(long, default_value_t = 8)]
    peers: u8,
    /// UPDATEs per second per peer.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Mean session lifetime in seconds between flaps.
    #[arg(long, default_value_t = 30)]
    flap_secs: u64,
    /// Prefixes in each peer's pool (half IPv4, half IPv6).
    #[arg(long, default_value_t = 4000)]
    prefixes: u32,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the JSON report here.
    #[arg(long)]
    out: Option<PathBuf>,
}

const SPEAKER_ASN: u32 = 4_200_000_001;
const HOLD_TIME: u16 = 30;
const OWN_ROUTES: [&str; 3] = ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:100::/48"];

#[derive(Default)]
struct Stats {
    updates_sent: AtomicU64,
    prefixes_sent: AtomicU64,
    updates_received: AtomicU64,
    messages_received: AtomicU64,
    sessions: AtomicU64,
    flaps: AtomicU64,
    connect_failures: AtomicU64,
}

struct Sample {
    at_secs: u64,
    fds: usize,
    rss_kb: usize,
    updates_sent: u64,
    updates_received: u64,
    sessions: u64,
    flaps: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.serve {
        Some(port) => rt.block_on(serve(port, args.peers)),
        None => rt.block_on(run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

fn peer_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + i)
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn config(args: &Args, port: u16, state_file: &std::path::Path) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "[global]\nasn = {SPEAKER_ASN}\nrouter-id = \"192.0.2.1\"\nlisten = [\"127.0.0.1\"]\n\
         port = {port}\nexport-learned = true\nrestart-state-file = \"{}\"\n",
        state_file.display()
    );
    for i in 0..args.peers {
        let _ = writeln!(
            c,
            "[[peer]]\naddress = \"{}\"\npeer-asn = {}\npassive = true\nhold-time = {HOLD_TIME}\n\
             families = [\"ipv4-unicast\", \"ipv6-unicast\"]\nnext-hop-ipv4 = \"198.18.0.1\"\n\
             next-hop-ipv6 = \"2001:db8::1\"\n",
            peer_ip(i),
            65100 + u32::from(i)
        );
    }
    for p in OWN_ROUTES {
        let _ = writeln!(c, "[[announce]]\nprefix = \"{p}\"\n");
    }
    c
}

fn proc_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn proc_rss_kb(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            l.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn proc_cpu_secs(pid: u32) -> f64 {
    // Fields 14 and 15 of /proc/PID/stat (after the parenthesised name): utime, stime.
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = s.rsplit_once(") ").map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state field (3).
    (ticks(11) + ticks(12)) / 100.0
}

fn stop(child: &mut Child) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The speaker under test without the CLI: what `GlobalSettings::from_config` would build
/// from the `--cli` configuration, with no idle hold time.
async fn serve(port: u16, peers: u8) -> Result<(), String> {
    let settings = GlobalSettings {
        asn: Asn(SPEAKER_ASN),
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        listen: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)],
        export_learned: true,
        forwarding_preserved: AfiSafi::KNOWN.into_iter().collect(),
        peers: (0..peers)
            .map(|i| PeerSettings {
                passive: true,
                hold_time: HOLD_TIME,
                idle_hold_time: Duration::ZERO,
                families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
                next_hop_ipv4: Some(Ipv4Addr::new(198, 18, 0, 1)),
                next_hop_ipv6: Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                ..PeerSettings::new(IpAddr::V4(peer_ip(i)), Asn(65100 + u32::from(i)))
            })
            .collect(),
        announcements: OWN_ROUTES
            .iter()
            .filter_map(|p| p.parse().ok())
            .map(Announcement::new)
            .collect(),
        network: Network::Tcp,
        ..GlobalSettings::default()
    };
    let (_handle, mut events) = Speaker::start(settings)
        .await
        .map_err(|e| format!("speaker: {e}"))?;
    // Runs until killed; the events are read as an embedder would.
    while events.recv().await.is_some() {}
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("bgp-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = if args.cli || args.speaker.is_some() {
        let speaker = args
            .speaker
            .clone()
            .unwrap_or_else(|| exe.with_file_name("speaker"));
        let cfg_path = dir.join("speaker.toml");
        std::fs::write(&cfg_path, config(&args, port, &dir.join("restart-state")))
            .map_err(|e| format!("{}: {e}", cfg_path.display()))?;
        let mut c = Command::new(speaker);
        c.arg("--config").arg(&cfg_path);
        c
    } else {
        let mut c = Command::new(&exe);
        c.arg("--serve")
            .arg(port.to_string())
            .arg("--peers")
            .arg(args.peers.to_string());
        c
    };
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("speaker under test: {e}"))?;
    let pid = child.id();
    eprintln!(
        "soak: speaker pid {pid} on 127.0.0.1:{port}, {} peers, {} UPDATEs/s each, flaps every ~{} s, {} s",
        args.peers, args.rate, args.flap_secs, args.duration
    );
    let target = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let stats = Arc::new(Stats::default());
    let stop_flag = Arc::new(AtomicBool::new(false));
    // Give the speaker a moment to listen; the peers retry anyway.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tasks = Vec::new();
    for i in 0..args.peers {
        tasks.push(tokio::spawn(peer_loop(
            i,
            target,
            args.clone(),
            stats.clone(),
            stop_flag.clone(),
        )));
    }
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let mut samples = Vec::new();
    let sample = |stats: &Stats, at: Instant| Sample {
        at_secs: at.duration_since(start).as_secs(),
        fds: proc_fds(pid),
        rss_kb: proc_rss_kb(pid),
        updates_sent: stats.updates_sent.load(Ordering::Relaxed),
        updates_received: stats.updates_received.load(Ordering::Relaxed),
        sessions: stats.sessions.load(Ordering::Relaxed),
        flaps: stats.flaps.load(Ordering::Relaxed),
    };
    println!(
        "{:>6} {:>5} {:>9} {:>12} {:>12} {:>8} {:>6}",
        "secs", "fds", "rss_kb", "upd_sent", "upd_recv", "sessions", "flaps"
    );
    let mut next = start;
    loop {
        let now = Instant::now();
        if now >= next {
            if let Ok(Some(status)) = child.try_wait() {
                stop_flag.store(true, Ordering::Relaxed);
                return Err(format!("the speaker exited: {status}"));
            }
            let s = sample(&stats, now);
            println!(
                "{:>6} {:>5} {:>9} {:>12} {:>12} {:>8} {:>6}",
                s.at_secs, s.fds, s.rss_kb, s.updates_sent, s.updates_received, s.sessions, s.flaps
            );
            samples.push(s);
            next += Duration::from_secs(args.sample_secs.max(1));
        }
        if now >= end {
            break;
        }
        let wake = next.min(end);
        tokio::time::sleep(wake.saturating_duration_since(Instant::now())).await;
    }
    // The last sample at the end, if the schedule did not just take one.
    if samples.last().is_none_or(|s| s.at_secs < args.duration) {
        let s = sample(&stats, Instant::now());
        samples.push(s);
    }
    let speaker_cpu = proc_cpu_secs(pid);
    stop_flag.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    stop(&mut child);
    let _ = std::fs::remove_dir_all(&dir);
    let report = report(&args, &samples, &stats, speaker_cpu);
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, format!("{report}\n"))
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

fn report(args: &Args, samples: &[Sample], stats: &Stats, speaker_cpu: f64) -> String {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rows: Vec<serde_json::Value> = samples
        .iter()
        .map(|s| {
            serde_json::json!({
                "secs": s.at_secs,
                "fds": s.fds,
                "rss_kb": s.rss_kb,
                "updates_sent": s.updates_sent,
                "updates_received": s.updates_received,
                "sessions": s.sessions,
                "flaps": s.flaps,
            })
        })
        .collect();
    let fds: Vec<usize> = samples.iter().map(|s| s.fds).collect();
    let rss: Vec<usize> = samples.iter().map(|s| s.rss_kb).collect();
    serde_json::json!({
        "finished_unix": unix,
        "speaker": if args.cli || args.speaker.is_some() { "cli" } else { "library" },
        "duration_secs": args.duration,
        "peers": args.peers,
        "rate_per_peer": args.rate,
        "flap_secs": args.flap_secs,
        "prefixes_per_peer": args.prefixes,
        "seed": args.seed,
        "updates_sent": stats.updates_sent.load(Ordering::Relaxed),
        "prefixes_sent": stats.prefixes_sent.load(Ordering::Relaxed),
        "updates_received": stats.updates_received.load(Ordering::Relaxed),
        "messages_received": stats.messages_received.load(Ordering::Relaxed),
        "sessions": stats.sessions.load(Ordering::Relaxed),
        "flaps": stats.flaps.load(Ordering::Relaxed),
        "connect_failures": stats.connect_failures.load(Ordering::Relaxed),
        "speaker_cpu_secs": speaker_cpu,
        "fds_min": fds.iter().min(),
        "fds_max": fds.iter().max(),
        "rss_kb_min": rss.iter().min(),
        "rss_kb_max": rss.iter().max(),
        "samples": rows,
    })
    .to_string()
}

/// One peer: connect, OPEN exchange, churn, flap, again, until stopped.
async fn peer_loop(
    i: u8,
    target: SocketAddr,
    args: Args,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Rng::new(args.seed.wrapping_mul(1000).wrapping_add(u64::from(i)));
    while !stop.load(Ordering::Relaxed) {
        match session(i, target, &args, &stats, &stop, &mut rng).await {
            Ok(()) => {}
            Err(e) => {
                stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                log_error(i, &e);
            }
        }
        let pause = Duration::from_millis(100 + rng.below(1900));
        tokio::time::sleep(pause).await;
    }
}

fn log_error(i: u8, e: &str) {
    // Errors are expected now and then (the speaker refusing a connection while the previous
    // one is still being torn down); they are counted, and shown only when asked for.
    if std::env::var_os("SOAK_VERBOSE").is_some() {
        eprintln!("peer {i}: {e}");
    }
}

/// Reads whole messages into `buf` until one is there; bounded by `deadline`.
async fn read_message(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Result<Option<MessageType>, String> {
    loop {
        match split_message(buf, bgp_wire::context::MAX_EXTENDED_MESSAGE_LEN) {
            Ok(Some((h, _))) => return Ok(Some(h.kind)),
            Ok(None) => {}
            Err(e) => return Err(format!("bad bytes from the speaker: {e}")),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        buf.reserve(64 * 1024);
        match tokio::time::timeout(left, rd.read_buf(buf)).await {
            Ok(Ok(0)) => return Err("connection closed by the speaker".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("read: {e}")),
            Err(_) => return Ok(None),
        }
    }
}

async fn session(
    i: u8,
    target: SocketAddr,
    args: &Args,
    stats: &Arc<Stats>,
    stop: &Arc<AtomicBool>,
    rng: &mut Rng,
) -> Result<(), String> {
    let sock = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    sock.bind(SocketAddr::new(IpAddr::V4(peer_ip(i)), 0))
        .map_err(|e| format!("bind: {e}"))?;
    let stream = tokio::time::timeout(Duration::from_secs(10), sock.connect(target))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let ctx = Context {
        max_message_len: bgp_wire::context::MAX_EXTENDED_MESSAGE_LEN,
        ..Context::default()
    };
    let asn = Asn(65100 + u32::from(i));
    let gr = i % 2 == 1;
    let mut caps = vec![
        Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
        Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
        Capability::RouteRefresh,
        Capability::ExtendedMessage,
    ];
    if gr {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            flags: GracefulRestart::NOTIFICATION,
            restart_time: 30,
            families: [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
                .into_iter()
                .map(|f| GracefulRestartFamily::new(f, true))
                .collect(),
        }));
    }
    let open = Open::new(asn, HOLD_TIME, Ipv4Addr::new(10, 0, 0, 10 + i), caps);
    let mut out = BytesMut::new();
    Message::Open(open)
        .encode(&ctx, &mut out)
        .map_err(|e| e.to_string())?;
    wr.write_all(&out)
        .await
        .map_err(|e| format!("write: {e}"))?;
    // The OPEN exchange: the speaker's OPEN, then its KEEPALIVE after ours.
    let mut rbuf = BytesMut::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    match read_message(&mut rd, &mut rbuf, deadline).await? {
        Some(MessageType::Open) => {}
        other => return Err(format!("expected OPEN, got {other:?}")),
    }
    out.clear();
    Message::Keepalive
        .encode(&ctx, &mut out)
        .map_err(|e| e.to_string())?;
    wr.write_all(&out)
        .await
        .map_err(|e| format!("write: {e}"))?;
    match read_message(&mut rd, &mut rbuf, deadline).await? {
        Some(MessageType::Keepalive) => {}
        other => return Err(format!("expected KEEPALIVE, got {other:?}")),
    }
    stats.sessions.fetch_add(1, Ordering::Relaxed);
    // Everything the speaker sends from now on is read and counted by its own task.
    let reader_stats = stats.clone();
    let reader = tokio::spawn(async move {
        let far = Instant::now() + Duration::from_secs(86_400);
        while let Ok(Some(kind)) = read_message(&mut rd, &mut rbuf, far).await {
            reader_stats
                .messages_received
                .fetch_add(1, Ordering::Relaxed);
            if kind == MessageType::Update {
                reader_stats
                    .updates_received
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let lifetime = Duration::from_millis(rng.below(2 * args.flap_secs.max(1) * 1000) + 500);
    let until = Instant::now() + lifetime;
    let tick = Duration::from_secs(1) / args.rate.max(1);
    let mut next_keepalive = Instant::now();
    let mut result = Ok(());
    // A routes-at-start burst, then steady churn.
    let pool = args.prefixes.max(2);
    while Instant::now() < until && !stop.load(Ordering::Relaxed) && !reader.is_finished() {
        out.clear();
        if Instant::now() >= next_keepalive {
            let _ = Message::Keepalive.encode(&ctx, &mut out);
            next_keepalive = Instant::now() + Duration::from_secs(u64::from(HOLD_TIME / 3));
        }
        let u = random_update(i, asn, pool, rng);
        let n = u.prefix_count() as u64;
        if Message::Update(u).encode(&ctx, &mut out).is_ok() {
            stats.updates_sent.fetch_add(1, Ordering::Relaxed);
            stats.prefixes_sent.fetch_add(n, Ordering::Relaxed);
        }
        let write = tokio::time::timeout(Duration::from_secs(10), wr.write_all(&out)).await;
        match write {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                result = Err(format!("write: {e}"));
                break;
            }
            Err(_) => {
                result = Err("write timed out".into());
                break;
            }
        }
        tokio::time::sleep(tick).await;
    }
    if result.is_ok() && !stop.load(Ordering::Relaxed) {
        stats.flaps.fetch_add(1, Ordering::Relaxed);
        if rng.percent(50) {
            out.clear();
            let _ = Message::Notification(Notification::cease(4)).encode(&ctx, &mut out);
            let _ = tokio::time::timeout(Duration::from_secs(2), wr.write_all(&out)).await;
        }
    }
    reader.abort();
    let _ = reader.await;
    drop(wr);
    result
}

/// An UPDATE announcing or withdrawing one to eight prefixes of the peer's pool (half of the
/// pool shared with every peer, so that best paths move between them).
fn random_update(i: u8, asn: Asn, pool: u32, rng: &mut Rng) -> Update {
    let v6 = rng.percent(40);
    let count = 1 + rng.below(8) as usize;
    let nlri: Vec<Nlri> = (0..count)
        .map(|_| {
            let k = rng.below(u64::from(pool)) as u32;
            // Even indices are shared between peers; odd ones are this peer's own.
            let owner = if k % 2 == 0 { 0 } else { u32::from(i) + 1 };
            let prefix = if v6 {
                let hi = (owner << 8) | (k >> 16);
                Ipv6Net::new(
                    Ipv6Addr::new(0x2001, 0xdb8, hi as u16, k as u16, 0, 0, 0, 0),
                    64,
                )
                .map(IpNet::V6)
            } else {
                let x = (10u32 << 24) | (owner << 20) | ((k & 0xfff) << 8);
                Ipv4Net::new(Ipv4Addr::from(x), 24).map(IpNet::V4)
            };
            Nlri::new(prefix.unwrap_or_default())
        })
        .collect();
    let family = if v6 {
        AfiSafi::IPV6_UNICAST
    } else {
        AfiSafi::IPV4_UNICAST
    };
    let Ok(block) = Nlris::new(family, false, nlri) else {
        return Update::default();
    };
    let mut u = Update::default();
    if rng.percent(30) {
        if v6 {
            u.mp_unreach = Some(MpUnreach {
                family,
                withdrawn: block,
            });
        } else {
            u.withdrawn = block;
        }
        return u;
    }
    let mut path = vec![asn];
    for _ in 0..rng.below(4) {
        path.push(Asn(64512 + rng.below(512) as u32));
    }
    let mut communities = Vec::new();
    for _ in 0..rng.below(4) {
        communities.push(Community::new(65000, rng.below(100) as u16));
    }
    u.attributes = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(path)),
        med: rng.percent(50).then(|| rng.below(1000) as u32),
        communities: (!communities.is_empty()).then(|| Communities::new(communities)),
        ..PathAttributes::default()
    };
    if v6 {
        u.mp_reach = Some(MpReach {
            family,
            next_hop: NextHop::Ipv6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0xffff,
                0,
                0,
                0,
                0,
                u16::from(i) + 10,
            )),
            nlri: block,
        });
    } else {
        u.attributes.next_hop = Some(Ipv4Addr::new(10, 0, 0, 10 + i));
        u.nlri = block;
    }
    u
}
