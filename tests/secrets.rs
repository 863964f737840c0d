//! Passwords never appear in logs (at any level), `Debug` output, events, snapshots or
//! metrics (issue 7). Its own test binary: it installs a global trace-level subscriber.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgp_speaker::config::Secret;
use bgp_speaker::core::{Announcement, Event};
use bgp_speaker::testkit::{MemoryNetwork, Network, next_event};
use bgp_speaker::{GlobalSettings, PeerSettings, Speaker};
use bgp_wire::Asn;

const PASSWORD: &str = "hunter2-very-secret";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

fn settings(net: &MemoryNetwork, me: u8, other: u8) -> GlobalSettings {
    GlobalSettings {
        asn: Asn(65000 + u32::from(me)),
        router_id: Ipv4Addr::new(192, 0, 2, me),
        listen: vec![SocketAddr::new(ip(me), 179)],
        loc_rib_events: true,
        peers: vec![PeerSettings {
            local_address: Some(ip(me)),
            password: Some(Secret::new(PASSWORD)),
            connect_retry: Duration::from_secs(1),
            idle_hold_time: Duration::from_secs(1),
            ..PeerSettings::new(ip(other), Asn(65000 + u32::from(other)))
        }],
        network: Network::Memory(net.clone()),
        ..GlobalSettings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn passwords_stay_out_of_logs_debug_events_snapshots_and_metrics() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let net = MemoryNetwork::new(64 * 1024);
    let sa = settings(&net, 1, 2);
    let mut seen = format!("{sa:?}");
    let (a, mut ae) = Speaker::start(sa).await.expect("start a");
    let (b, mut be) = Speaker::start(settings(&net, 2, 1)).await.expect("start b");
    for events in [&mut ae, &mut be] {
        next_event(events, Duration::from_secs(60), |e| {
            matches!(e, Event::PeerUp { .. })
        })
        .await
        .expect("up");
    }
    b.announce(Announcement::new("10.9.0.0/16".parse().expect("prefix")))
        .await
        .expect("announce");
    // A new password resets the session: every path that handles it runs.
    let mut p = settings(&net, 1, 2).peers.remove(0);
    p.password = Some(Secret::new(format!("{PASSWORD}-2")));
    seen += &format!("{p:?}");
    assert!(a.update_peer(p).await.expect("update"));
    tokio::time::sleep(Duration::from_secs(30)).await;
    while let Some(e) = ae.try_recv() {
        seen += &format!("{e} {e:?}\n");
    }
    let snap = a.snapshot().await.expect("snapshot");
    seen += &format!("{snap:?}");
    seen += &bgp_speaker::metrics::render(&snap);
    a.shutdown(Default::default()).await.expect("shutdown");
    drop(b);

    let logs =
        String::from_utf8_lossy(&captured.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    assert!(logs.contains("BGP state change"), "trace logs captured");
    for (what, text) in [("logs", &logs), ("debug, events, snapshot, metrics", &seen)] {
        assert!(!text.contains("hunter2"), "password in {what}: {text}");
    }
}
