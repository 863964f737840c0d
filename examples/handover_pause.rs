//! How long a hand-over pauses the sessions (issue 9's benchmark): a speaker holding a full
//! table learned from ten peers hands its sessions to a new speaker, several times, over
//! loopback TCP (127.0.81.0/24) and a Unix socket.
//!
//!     cargo run --release --example handover_pause -- [--prefixes N] [--peers N] [--rounds N]
//!
//! Ten peer speakers (in this process) share the table (1,000,000 IPv4 prefixes in 200,000
//! attribute sets by default, `bgp_testkit::TableSpec`) between them and announce it to the
//! speaker under test. Once it holds every prefix, each round starts a new speaker with
//! `Speaker::take_over` and reports, as one JSON line:
//! - `paused_ms`: how long the sessions were paused, from the old speaker's first session
//!   stopping to read until the new one's confirmation (the old speaker's
//!   `Event::HandedOver`); the new speaker serves the sessions from then on;
//! - `take_over_ms`: until `take_over` returned, the routes restored behind the sessions;
//! - `routes`: the prefixes the new speaker holds afterwards (all of them, or the round
//!   fails), and the peers' flaps (zero, or the round fails).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bgp_speaker::core::Event;
use bgp_speaker::{
    Announcement, EventStream, GlobalSettings, PeerSettings, Speaker, SpeakerHandle,
};
use bgp_testkit::table::{Table, TableSpec};
use bgp_wire::{Asn, Community, LargeCommunity};
use clap::Parser;

/// Measures the pause of a hand-over with a full table.
#[derive(Parser, Debug)]
struct Args {
    /// IPv4 prefixes in the table.
    #[arg(long, default_value_t = 1_000_000)]
    prefixes: usize,
    /// Attribute sets in the table.
    #[arg(long, default_value_t = 200_000)]
    sets: usize,
    /// Peers sharing the table.
    #[arg(long, default_value_t = 10)]
    peers: u8,
    /// Hand-overs.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

const NET: u8 = 81;
const WAIT: Duration = Duration::from_secs(600);

fn addr(host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, NET, host)
}

fn dut_settings(peers: u8, sock: &std::path::Path) -> GlobalSettings {
    GlobalSettings {
        asn: Asn(65000),
        router_id: addr(1),
        listen: vec![SocketAddr::new(IpAddr::V4(addr(1)), 179)],
        peers: (0..peers)
            .map(|i| {
                let mut p = PeerSettings::new(IpAddr::V4(addr(10 + i)), Asn(65010 + u32::from(i)));
                p.local_address = Some(IpAddr::V4(addr(1)));
                p.passive = true;
                p
            })
            .collect(),
        hand_over_socket: Some(sock.to_path_buf()),
        event_capacity: 64,
        ..GlobalSettings::default()
    }
}

fn peer_settings(i: u8) -> GlobalSettings {
    let mut p = PeerSettings::new(IpAddr::V4(addr(1)), Asn(65000));
    p.local_address = Some(IpAddr::V4(addr(10 + i)));
    GlobalSettings {
        asn: Asn(65010 + u32::from(i)),
        router_id: addr(10 + i),
        listen: vec![SocketAddr::new(IpAddr::V4(addr(10 + i)), 179)],
        peers: vec![p],
        event_capacity: 64,
        ..GlobalSettings::default()
    }
}

/// The routes the speaker under test holds, from its peers' counters.
async fn held(s: &SpeakerHandle) -> u64 {
    let Ok(snap) = s.snapshot().await else {
        return 0;
    };
    snap.iter()
        .flat_map(|p| p.families.iter())
        .map(|f| f.received)
        .sum()
}

async fn wait_for(ev: &mut EventStream, f: impl Fn(&Event) -> bool) -> Option<Event> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ev.recv()).await {
            Ok(Some(e)) if f(&e) => return Some(e),
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("bgp-handover-pause-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let sock = dir.join("hand-over.sock");
    let table = Table::generate(TableSpec {
        ipv4_prefixes: args.prefixes,
        ipv6_prefixes: 0,
        attribute_sets: args.sets,
        ..TableSpec::full()
    });
    let total = table.len() as u64;
    let (mut dut, mut dut_events) = Speaker::start(dut_settings(args.peers, &sock))
        .await
        .map_err(|e| e.to_string())?;
    dut.initial_routes_done().await.map_err(|e| e.to_string())?;
    let mut peers = Vec::new();
    let mut shares: Vec<Vec<Announcement>> = vec![Vec::new(); usize::from(args.peers)];
    for (k, g) in table.ipv4.iter().enumerate() {
        let i = k % usize::from(args.peers);
        for p in &g.prefixes {
            let mut a = Announcement::new(*p).with_next_hop(IpAddr::V4(addr(10 + i as u8)));
            a.med = g.attrs.med;
            a.communities = g.attrs.communities.iter().map(|c| Community(*c)).collect();
            a.large_communities = g
                .attrs
                .large_communities
                .iter()
                .map(|(a, b, c)| LargeCommunity {
                    global: *a,
                    local1: *b,
                    local2: *c,
                })
                .collect();
            shares[i].push(a);
        }
    }
    let started = Instant::now();
    for (i, share) in shares.into_iter().enumerate() {
        let (p, _e) = Speaker::start(peer_settings(i as u8))
            .await
            .map_err(|e| e.to_string())?;
        for chunk in share.chunks(50_000) {
            p.announce_all(chunk.to_vec())
                .await
                .map_err(|e| e.to_string())?;
        }
        p.initial_routes_done().await.map_err(|e| e.to_string())?;
        peers.push(p);
    }
    let deadline = Instant::now() + WAIT;
    while held(&dut).await < total {
        if Instant::now() > deadline {
            return Err(format!(
                "the table did not arrive ({} of {total})",
                held(&dut).await
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{} peers, {total} prefixes held after {:.1} s; handing over {} times",
        args.peers,
        started.elapsed().as_secs_f64(),
        args.rounds
    );
    for round in 1..=args.rounds {
        let t0 = Instant::now();
        let (next, next_events) = Speaker::take_over(dut_settings(args.peers, &sock), &sock)
            .await
            .map_err(|e| format!("round {round}: {e}"))?;
        let take_over = t0.elapsed();
        let paused = match wait_for(&mut dut_events, |e| {
            matches!(e, Event::HandedOver { .. } | Event::HandOverFailed { .. })
        })
        .await
        {
            Some(Event::HandedOver { paused, .. }) => paused,
            other => return Err(format!("round {round}: {other:?}")),
        };
        let routes = held(&next).await;
        let mut flaps = 0;
        for p in &peers {
            for s in p.snapshot().await.map_err(|e| e.to_string())? {
                flaps += s.flaps;
            }
        }
        println!(
            "{{\"round\": {round}, \"sessions\": {}, \"prefixes\": {total}, \"paused_ms\": {:.2}, \
             \"take_over_ms\": {:.1}, \"routes\": {routes}, \"peer_flaps\": {flaps}}}",
            args.peers,
            paused.as_secs_f64() * 1e3,
            take_over.as_secs_f64() * 1e3
        );
        if routes != total || flaps != 0 {
            return Err(format!("round {round}: {routes} routes, {flaps} flaps"));
        }
        dut = next;
        dut_events = next_events;
    }
    let _ = dut.shutdown(Default::default()).await;
    for p in peers {
        let _ = p.shutdown(Default::default()).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
