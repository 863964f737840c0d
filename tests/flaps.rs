//! Session flaps over loopback TCP leave the process's open file descriptors and resident
//! memory where they were (issue 5: a Calico release leaked sockets until nodes ran dry).
//! Real sockets and real time, every wait bounded. CI runs 2,000 flaps (about a minute);
//! `BGP_FLAPS=10000` runs the 10,000 (see BENCHMARKS.md for that run).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_speaker::core::{Announcement, Event};
use bgp_speaker::testkit::next_event;
use bgp_speaker::{GlobalSettings, Network, PeerId, PeerSettings, Reset, Speaker};
use bgp_wire::Asn;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_kb() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            l.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn settings(me: IpAddr, other: IpAddr, port: u16, listen: bool, passive: bool) -> GlobalSettings {
    let IpAddr::V4(v4) = me else { unreachable!() };
    GlobalSettings {
        asn: Asn(65000 + u32::from(v4.octets()[3])),
        router_id: v4,
        listen: if listen {
            vec![SocketAddr::new(me, port)]
        } else {
            Vec::new()
        },
        peers: vec![PeerSettings {
            port,
            local_address: Some(me),
            passive,
            connect_retry: Duration::from_millis(200),
            // No damping: the test flaps on purpose, as fast as the sessions come back.
            idle_hold_time: Duration::ZERO,
            ..PeerSettings::new(other, Asn(65000 + u32::from(other_octet(other))))
        }],
        network: Network::Tcp,
        ..GlobalSettings::default()
    }
}

fn other_octet(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(v) => v.octets()[3],
        IpAddr::V6(_) => 0,
    }
}

fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map_or(17_900, |a| a.port())
}

#[tokio::test(flavor = "current_thread")]
async fn flaps_leave_fds_and_memory_where_they_were() {
    let flaps: usize = std::env::var("BGP_FLAPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let a_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 91, 1));
    let b_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 91, 2));
    let port = free_port(b_ip);
    // A connects out; B listens and waits (passive), so no collisions.
    let (a, mut ae) = Speaker::start(settings(a_ip, b_ip, port, false, false))
        .await
        .expect("A starts");
    let (b, _be) = Speaker::start(settings(b_ip, a_ip, port, true, true))
        .await
        .expect("B starts");
    a.announce(Announcement::new("198.51.100.0/24".parse().unwrap()))
        .await
        .expect("announce");
    let wait = Duration::from_secs(10);
    let b_id = PeerId::new(b_ip).with_port(port);
    next_event(&mut ae, wait, |e| matches!(e, Event::PeerUp { .. }))
        .await
        .expect("first session up");
    let mut measured = (0, 0);
    // Warm up (allocator pools, buffers at their working size), then measure.
    for (round, n) in [200, flaps].into_iter().enumerate() {
        if round == 1 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            measured = (open_fds(), rss_kb());
        }
        for _ in 0..n {
            a.reset_peer(&b_id, Reset::Hard).await.expect("reset");
            next_event(&mut ae, wait, |e| matches!(e, Event::PeerDown { .. }))
                .await
                .expect("session down");
            next_event(&mut ae, wait, |e| matches!(e, Event::PeerUp { .. }))
                .await
                .expect("session back up");
        }
    }
    let (fds, rss) = measured;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (fds_after, rss_after) = (open_fds(), rss_kb());
    eprintln!("{flaps} flaps: fds {fds} -> {fds_after}, RSS {rss} kB -> {rss_after} kB");
    assert_eq!(fds_after, fds, "file descriptors leaked");
    assert!(
        rss_after <= rss + 2048,
        "resident memory grew from {rss} kB to {rss_after} kB"
    );
    let s = &a.snapshot().await.expect("snapshot")[0];
    assert!(s.flaps >= flaps as u64);
    drop(b);
}
