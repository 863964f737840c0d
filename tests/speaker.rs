//! The embedder API end to end: speakers over the in-memory network on a paused (virtual)
//! clock, so every run is the same.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use bgp_speaker::core::{Announcement, Event};
use bgp_speaker::snapshot::{GrState, SessionState};
use bgp_speaker::testkit::{MemoryNetwork, Network, next_event};
use bgp_speaker::{
    EventStream, GlobalSettings, PeerSettings, ShutdownOptions, Speaker, SpeakerHandle,
};
use bgp_wire::capability::GracefulRestart;
use bgp_wire::{AfiSafi, Asn, Capability, Message, split_message};
use bytes::BytesMut;
use ipnet::IpNet;
use tokio::io::AsyncReadExt;

const WAIT: Duration = Duration::from_secs(60);

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

fn peer(n: u8) -> PeerSettings {
    PeerSettings {
        connect_retry: Duration::from_secs(1),
        idle_hold_time: Duration::from_secs(1),
        ..PeerSettings::new(ip(n), Asn(65000 + u32::from(n)))
    }
}

fn settings(net: &MemoryNetwork, me: u8, peers: &[u8]) -> GlobalSettings {
    GlobalSettings {
        asn: Asn(65000 + u32::from(me)),
        router_id: Ipv4Addr::new(192, 0, 2, me),
        listen: vec![SocketAddr::new(ip(me), 179)],
        loc_rib_events: true,
        peers: peers
            .iter()
            .map(|p| PeerSettings {
                local_address: Some(ip(me)),
                ..peer(*p)
            })
            .collect(),
        network: Network::Memory(net.clone()),
        ..GlobalSettings::default()
    }
}

fn route(p: &str) -> Announcement {
    Announcement::new(p.parse().unwrap())
}

fn prefix(p: &str) -> IpNet {
    p.parse().unwrap()
}

async fn up(events: &mut EventStream) {
    next_event(events, WAIT, |e| matches!(e, Event::PeerUp { .. }))
        .await
        .expect("session up");
}

/// Collects route events until `n` prefixes changed; returns (prefix, still there).
async fn route_changes(events: &mut EventStream, n: usize) -> Vec<(IpNet, bool)> {
    let mut v = Vec::new();
    while v.len() < n {
        match next_event(events, WAIT, |e| matches!(e, Event::RouteChanged { .. })).await {
            Some(Event::RouteChanged { prefix, route, .. }) => v.push((prefix, route.is_some())),
            _ => panic!("only {} route changes: {v:?}", v.len()),
        }
    }
    v.sort();
    v
}

async fn pair(net: &MemoryNetwork) -> (SpeakerHandle, EventStream, SpeakerHandle, EventStream) {
    pair_with(net, |_| {}).await
}

/// [`pair`], with A's settings changed by `change` first.
async fn pair_with(
    net: &MemoryNetwork,
    change: impl FnOnce(&mut GlobalSettings),
) -> (SpeakerHandle, EventStream, SpeakerHandle, EventStream) {
    let mut sa = settings(net, 1, &[2]);
    change(&mut sa);
    let (a, mut ae) = Speaker::start(sa).await.unwrap();
    let (b, mut be) = Speaker::start(settings(net, 2, &[1])).await.unwrap();
    up(&mut ae).await;
    up(&mut be).await;
    (a, ae, b, be)
}

/// A restart-state file of its own for a test (each test removes it at the end).
fn state_file(name: &str) -> PathBuf {
    let f = std::env::temp_dir().join(format!("bgp-speaker-tests-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&f);
    f
}

#[tokio::test(start_paused = true)]
async fn announced_routes_reach_the_peer_with_their_attributes() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, _ae, _b, mut be) = pair(&net).await;
    let mut r = route("198.51.100.0/24");
    r.med = Some(7);
    r.communities = vec![bgp_wire::Community::new(65001, 1)];
    r.as_path_prepend = 2;
    assert!(a.announce(r).await.unwrap());
    let Some(Event::RouteChanged {
        prefix: p,
        route: Some(got),
        ..
    }) = next_event(&mut be, WAIT, |e| matches!(e, Event::RouteChanged { .. })).await
    else {
        panic!("no route")
    };
    assert_eq!(p, prefix("198.51.100.0/24"));
    assert_eq!(
        got.next_hop(),
        Some(ip(1)),
        "next hop self: our local address"
    );
    let a = &got.attributes.attrs;
    assert_eq!(a.med, Some(7));
    let path: Vec<u32> = a.as_path.as_ref().unwrap().asns().map(|x| x.0).collect();
    assert_eq!(path, [65001, 65001, 65001]);
    assert_eq!(got.from, Some(bgp_speaker::PeerId::new(ip(1))));
}

#[tokio::test(start_paused = true)]
async fn announcing_twice_sends_nothing_the_second_time() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, _ae, b, mut be) = pair(&net).await;
    assert!(a.announce(route("198.51.100.0/24")).await.unwrap());
    route_changes(&mut be, 1).await;
    let updates = |s: Vec<bgp_speaker::snapshot::PeerSnapshot>| s[0].received.update;
    let before = updates(b.snapshot().await.unwrap());
    assert!(!a.announce(route("198.51.100.0/24")).await.unwrap());
    assert!(!a.set_routes(vec![route("198.51.100.0/24")]).await.unwrap());
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(updates(b.snapshot().await.unwrap()), before);
    assert!(be.try_recv().is_none(), "no event for a no-op");
    // Withdrawing what is not announced is a no-op too.
    assert!(!a.withdraw(prefix("203.0.113.0/24")).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn set_routes_announces_the_new_withdraws_the_gone_and_leaves_the_rest() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, _ae, b, mut be) = pair(&net).await;
    let set = |v: &[&str]| v.iter().map(|p| route(p)).collect::<Vec<_>>();
    assert!(
        a.set_routes(set(&["10.1.0.0/16", "10.2.0.0/16"]))
            .await
            .unwrap()
    );
    route_changes(&mut be, 2).await;
    assert!(
        a.set_routes(set(&["10.2.0.0/16", "10.3.0.0/16"]))
            .await
            .unwrap()
    );
    assert_eq!(
        route_changes(&mut be, 2).await,
        vec![
            (prefix("10.1.0.0/16"), false),
            (prefix("10.3.0.0/16"), true)
        ]
    );
    let table: Vec<IpNet> = b.routes().await.unwrap().into_iter().map(|r| r.1).collect();
    assert_eq!(table.len(), 2);
    assert!(table.contains(&prefix("10.2.0.0/16")));
}

#[tokio::test(start_paused = true)]
async fn rfc4724_4_2_a_restarting_peer_keeps_its_routes_stale_and_purges_the_unsent_after_eor() {
    let net = MemoryNetwork::new(64 * 1024);
    let file = state_file("receiving");
    let b_settings = |routes| GlobalSettings {
        restart_state_file: Some(file.clone()),
        forwarding_preserved: [AfiSafi::IPV4_UNICAST].into_iter().collect(),
        announcements: routes,
        ..settings(&net, 2, &[1])
    };
    let (a, mut ae) = Speaker::start(settings(&net, 1, &[2])).await.unwrap();
    let (b, mut be) = Speaker::start(b_settings(Vec::new())).await.unwrap();
    up(&mut ae).await;
    up(&mut be).await;
    let set = |v: &[&str]| v.iter().map(|p| route(p)).collect::<Vec<_>>();
    b.set_routes(set(&["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"]))
        .await
        .unwrap();
    route_changes(&mut ae, 3).await;
    // B goes away, to come back with its forwarding state (F bit).
    b.stop_for_restart().await.unwrap();
    let kept = next_event(&mut ae, WAIT, |e| matches!(e, Event::StaleKept { .. })).await;
    assert!(
        matches!(kept, Some(Event::StaleKept { routes: 3, .. })),
        "{kept:?}"
    );
    let down = next_event(&mut ae, WAIT, |e| matches!(e, Event::PeerDown { .. })).await;
    assert!(matches!(
        down,
        Some(Event::PeerDown {
            routes_kept: true,
            ..
        })
    ));
    let snap = a.snapshot().await.unwrap();
    assert_eq!(snap[0].graceful_restart, GrState::PeerRestarting);
    assert_eq!(snap[0].families[0].stale, 3);
    assert!(a.routes().await.unwrap().iter().all(|r| r.2.stale));

    // B is back with two of the three.
    let (b, mut be) = Speaker::start(b_settings(set(&["10.1.0.0/16", "10.2.0.0/16"])))
        .await
        .unwrap();
    up(&mut be).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        a.routes().await.unwrap().len(),
        3,
        "all kept until End-of-RIB"
    );
    b.initial_routes_done().await.unwrap();
    let mut seen = Vec::new();
    let purged = next_event(&mut ae, WAIT, |e| {
        seen.push(e.clone());
        matches!(e, Event::StalePurged { .. })
    })
    .await;
    assert!(
        matches!(purged, Some(Event::StalePurged { routes: 1, .. })),
        "{seen:?}"
    );
    // Nothing was withdrawn before End-of-RIB; exactly the route not sent again after it.
    let eor = seen
        .iter()
        .position(|e| matches!(e, Event::EndOfRibReceived { .. }))
        .expect("End-of-RIB");
    let withdrawn: Vec<(usize, IpNet)> = seen
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::RouteChanged {
                prefix,
                route: None,
                ..
            } => Some((i, *prefix)),
            _ => None,
        })
        .collect();
    assert_eq!(withdrawn.len(), 1, "{seen:?}");
    assert!(withdrawn[0].0 > eor && withdrawn[0].1 == prefix("10.3.0.0/16"));
    let table = a.routes().await.unwrap();
    assert_eq!(table.len(), 2);
    assert!(table.iter().all(|r| !r.2.stale));
    assert_eq!(
        a.snapshot().await.unwrap()[0].graceful_restart,
        GrState::None
    );
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(start_paused = true)]
async fn rfc4724_4_1_after_stop_for_restart_the_r_bit_is_set_and_eor_waits_for_initial_routes() {
    let net = MemoryNetwork::new(64 * 1024);
    let file = state_file("r-bit");
    let a_settings = |routes: Vec<Announcement>| GlobalSettings {
        restart_state_file: Some(file.clone()),
        forwarding_preserved: [AfiSafi::IPV4_UNICAST].into_iter().collect(),
        announcements: routes,
        ..settings(&net, 1, &[2])
    };
    let (a, mut ae) = Speaker::start(a_settings(vec![route("10.1.0.0/16"), route("10.2.0.0/16")]))
        .await
        .unwrap();
    let (b, mut be) = Speaker::start(settings(&net, 2, &[1])).await.unwrap();
    up(&mut ae).await;
    route_changes(&mut be, 2).await;
    a.stop_for_restart().await.unwrap();
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("for-restart")
    );
    next_event(&mut be, WAIT, |e| matches!(e, Event::PeerDown { .. }))
        .await
        .unwrap();

    // A restarted speaker's OPEN, read by hand: B is replaced by a scripted listener.
    b.shutdown(ShutdownOptions::default()).await.unwrap();
    let mut raw = net.listen(SocketAddr::new(ip(2), 179), 1);
    let s = a_settings(Vec::new());
    let (a2, _a2e) = Speaker::start(s).await.unwrap();
    let (mut stream, _) = tokio::time::timeout(WAIT, raw.accept())
        .await
        .unwrap()
        .unwrap();
    let mut buf = BytesMut::new();
    let open = loop {
        if let Some((h, m)) = split_message(&mut buf, 4096).unwrap() {
            match Message::decode_body(h, m.slice(19..), &Default::default()).unwrap() {
                Message::Open(o) => break o,
                m => panic!("{m:?}"),
            }
        }
        assert!(stream.read_buf(&mut buf).await.unwrap() > 0);
    };
    let gr = open
        .capabilities
        .iter()
        .find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        })
        .unwrap();
    assert_ne!(gr.flags & GracefulRestart::RESTART_STATE, 0, "R bit");
    let v4 = gr
        .families
        .iter()
        .find(|f| f.afi_safi == AfiSafi::IPV4_UNICAST)
        .unwrap();
    assert_ne!(v4.flags & 0x80, 0, "F bit");
    a2.shutdown(ShutdownOptions::default()).await.unwrap();
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(start_paused = true)]
async fn rfc4724_4_1_restarting_speaker_holds_routes_and_eor_until_initial_routes_done() {
    let net = MemoryNetwork::new(64 * 1024);
    let file = state_file("deferral");
    let a_settings = |routes: Vec<Announcement>| GlobalSettings {
        restart_state_file: Some(file.clone()),
        forwarding_preserved: [AfiSafi::IPV4_UNICAST].into_iter().collect(),
        announcements: routes,
        ..settings(&net, 1, &[2])
    };
    let (a, mut ae) = Speaker::start(a_settings(vec![route("10.1.0.0/16"), route("10.2.0.0/16")]))
        .await
        .unwrap();
    let (b, mut be) = Speaker::start(settings(&net, 2, &[1])).await.unwrap();
    up(&mut ae).await;
    route_changes(&mut be, 2).await;
    a.stop_for_restart().await.unwrap();
    next_event(&mut be, WAIT, |e| matches!(e, Event::PeerDown { .. }))
        .await
        .unwrap();

    let (a, mut ae) = Speaker::start(a_settings(vec![route("10.2.0.0/16")]))
        .await
        .unwrap();
    up(&mut ae).await;
    let snap = a.snapshot().await.unwrap();
    assert_eq!(snap[0].graceful_restart, GrState::LocalRestarting);
    // However long the embedder takes (within the deferral), B keeps everything.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(b.routes().await.unwrap().len(), 2);
    while let Some(e) = ae.try_recv() {
        assert!(
            !matches!(e, Event::EndOfRibSent { .. }),
            "no End-of-RIB yet"
        );
    }
    a.initial_routes_done().await.unwrap();
    next_event(&mut ae, WAIT, |e| matches!(e, Event::EndOfRibSent { .. }))
        .await
        .expect("End-of-RIB after initial routes");
    next_event(&mut be, WAIT, |e| {
        matches!(e, Event::StalePurged { routes: 1, .. })
    })
    .await
    .expect("the route not sent again is purged");
    let table: Vec<IpNet> = b.routes().await.unwrap().into_iter().map(|r| r.1).collect();
    assert_eq!(table, vec![prefix("10.2.0.0/16")]);
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(start_paused = true)]
async fn the_deferral_timer_releases_end_of_rib_when_the_embedder_never_says() {
    let net = MemoryNetwork::new(64 * 1024);
    let file = state_file("deferral-timer");
    let a_settings = || GlobalSettings {
        restart_state_file: Some(file.clone()),
        forwarding_preserved: [AfiSafi::IPV4_UNICAST].into_iter().collect(),
        eor_deferral: Duration::from_secs(60),
        announcements: vec![route("10.1.0.0/16")],
        ..settings(&net, 1, &[2])
    };
    let (a, mut ae) = Speaker::start(a_settings()).await.unwrap();
    let (_b, mut be) = Speaker::start(settings(&net, 2, &[1])).await.unwrap();
    up(&mut ae).await;
    route_changes(&mut be, 1).await;
    a.stop_for_restart().await.unwrap();
    let start = tokio::time::Instant::now();
    let (_a, mut ae) = Speaker::start(a_settings()).await.unwrap();
    next_event(&mut ae, Duration::from_secs(120), |e| {
        matches!(e, Event::EndOfRibSent { .. })
    })
    .await
    .expect("End-of-RIB after the deferral time");
    assert!(start.elapsed() >= Duration::from_secs(60));
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(start_paused = true)]
async fn removing_a_peer_withdraws_its_routes_from_the_others_with_export_learned() {
    let net = MemoryNetwork::new(64 * 1024);
    let mut hub = settings(&net, 1, &[2, 3]);
    hub.export_learned = true;
    let (a, mut ae) = Speaker::start(hub).await.unwrap();
    let (b, _be) = Speaker::start(settings(&net, 2, &[1])).await.unwrap();
    let (_c, mut ce) = Speaker::start(settings(&net, 3, &[1])).await.unwrap();
    up(&mut ae).await;
    up(&mut ae).await;
    up(&mut ce).await;
    b.announce(route("10.9.0.0/16")).await.unwrap();
    let got = route_changes(&mut ce, 1).await;
    assert_eq!(got, vec![(prefix("10.9.0.0/16"), true)]);
    let path = &ce_route(&_c).await;
    assert_eq!(path, &[65001, 65002], "passed on by the hub");
    a.remove_peer(&bgp_speaker::PeerId::new(ip(2)))
        .await
        .unwrap();
    assert_eq!(
        route_changes(&mut ce, 1).await,
        vec![(prefix("10.9.0.0/16"), false)]
    );
    assert_eq!(a.snapshot().await.unwrap().len(), 1);
}

async fn ce_route(c: &SpeakerHandle) -> Vec<u32> {
    let r = c.routes().await.unwrap();
    r[0].2
        .attributes
        .attrs
        .as_path
        .as_ref()
        .unwrap()
        .asns()
        .map(|a| a.0)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn learned_routes_stay_put_without_export_learned() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, mut ae) = Speaker::start(settings(&net, 1, &[2, 3])).await.unwrap();
    let (b, _be) = Speaker::start(settings(&net, 2, &[1])).await.unwrap();
    let (c, mut ce) = Speaker::start(settings(&net, 3, &[1])).await.unwrap();
    up(&mut ae).await;
    up(&mut ae).await;
    up(&mut ce).await;
    b.announce(route("10.9.0.0/16")).await.unwrap();
    route_changes(&mut ae, 1).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(c.routes().await.unwrap().is_empty());
    drop(a);
}

#[tokio::test(start_paused = true)]
async fn snapshots_count_routes_messages_and_state() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, _ae, b, mut be) = pair(&net).await;
    a.set_routes(vec![route("10.1.0.0/16"), route("10.2.0.0/16")])
        .await
        .unwrap();
    b.announce(route("10.3.0.0/16")).await.unwrap();
    route_changes(&mut be, 3).await;
    let s = &a.snapshot().await.unwrap()[0];
    assert_eq!(s.state, SessionState::Established);
    assert_eq!((s.address, s.port, s.peer_asn), (ip(2), 179, 65002));
    assert!(s.capabilities.iter().any(|c| c == "graceful-restart"));
    assert_eq!(s.hold_time, Some(90));
    let f = &s.families[0];
    assert_eq!(f.family, AfiSafi::IPV4_UNICAST);
    assert_eq!(
        (f.received, f.accepted, f.advertised, f.stale),
        (1, 1, 2, 0)
    );
    assert!(s.received.open >= 1, "{:?}", s.received);
    assert!(s.sent.update >= 2, "{:?}", s.sent);
    assert_eq!(s.flaps, 0);
    let text = bgp_speaker::metrics::render(&a.snapshot().await.unwrap());
    assert!(text.contains("bgp_session_up{peer=\"10.0.0.2:179\"} 1"));
}

#[tokio::test(start_paused = true)]
async fn peers_are_added_updated_disabled_and_enabled_at_runtime() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, mut ae) = Speaker::start(settings(&net, 1, &[])).await.unwrap();
    let (_b, mut be) = Speaker::start(settings(&net, 2, &[1])).await.unwrap();
    let p = PeerSettings {
        local_address: Some(ip(1)),
        ..peer(2)
    };
    a.add_peer(p.clone()).await.unwrap();
    assert!(a.add_peer(p.clone()).await.is_err(), "added twice");
    up(&mut ae).await;
    up(&mut be).await;
    assert!(
        !a.update_peer(p.clone()).await.unwrap(),
        "no change, no reset"
    );
    let changed = PeerSettings {
        hold_time: 30,
        ..p.clone()
    };
    assert!(
        a.update_peer(changed).await.unwrap(),
        "a new hold time resets"
    );
    next_event(&mut ae, WAIT, |e| matches!(e, Event::PeerDown { .. }))
        .await
        .unwrap();
    up(&mut ae).await;
    assert_eq!(a.snapshot().await.unwrap()[0].hold_time, Some(30));
    a.disable_peer(&p.id()).await.unwrap();
    next_event(&mut ae, WAIT, |e| matches!(e, Event::PeerDown { .. }))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let s = &a.snapshot().await.unwrap()[0];
    assert!(!s.enabled);
    assert_eq!(s.state, SessionState::Idle);
    a.enable_peer(&p.id()).await.unwrap();
    up(&mut ae).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_tells_the_peer_which_drops_our_routes() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, _ae, b, mut be) = pair(&net).await;
    a.announce(route("10.1.0.0/16")).await.unwrap();
    route_changes(&mut be, 1).await;
    a.shutdown(ShutdownOptions {
        graceful_shutdown: Some(Duration::from_secs(1)),
    })
    .await
    .unwrap();
    // RFC 8326: first the routes again, with GRACEFUL_SHUTDOWN; then the Cease.
    let tagged = next_event(&mut be, WAIT, |e| matches!(e, Event::RouteChanged { .. })).await;
    let Some(Event::RouteChanged { route: Some(r), .. }) = tagged else {
        panic!("{tagged:?}")
    };
    let c = r.attributes.attrs.communities.as_ref().unwrap();
    assert!(c.contains(bgp_wire::Community::GRACEFUL_SHUTDOWN));
    let down = next_event(&mut be, WAIT, |e| matches!(e, Event::PeerDown { .. })).await;
    assert!(
        matches!(
            down,
            Some(Event::PeerDown {
                routes_kept: false,
                ..
            })
        ),
        "{down:?}"
    );
    assert!(b.routes().await.unwrap().is_empty());
    assert!(a.snapshot().await.is_err(), "stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_the_multi_thread_runtime_too() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, _ae, b, mut be) = pair(&net).await;
    let routes: Vec<Announcement> = (0..200u32)
        .map(|i| route(&format!("10.{}.{}.0/24", i / 256, i % 256)))
        .collect();
    assert!(a.set_routes(routes).await.unwrap());
    route_changes(&mut be, 200).await;
    assert_eq!(b.routes().await.unwrap().len(), 200);
    a.shutdown(ShutdownOptions::default()).await.unwrap();
    let down = next_event(&mut be, WAIT, |e| matches!(e, Event::PeerDown { .. })).await;
    assert!(down.is_some());
    assert!(b.routes().await.unwrap().is_empty());
}

#[tokio::test]
async fn tcp_md5_keys_follow_peers_added_at_runtime_or_fail_clearly() {
    // A TCP listener on loopback; adding a peer with a password sets its key on it, or
    // fails with the kernel's reason (never an unauthenticated session).
    let s = GlobalSettings {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        ..GlobalSettings::default()
    };
    let (a, _ae) = Speaker::start(s).await.unwrap();
    let p = PeerSettings {
        password: Some(bgp_speaker::config::Secret::new("hunter2")),
        passive: true,
        ..PeerSettings::new("127.0.0.9".parse().unwrap(), Asn(65009))
    };
    match a.add_peer(p.clone()).await {
        Ok(()) => {
            a.remove_peer(&p.id()).await.unwrap();
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("MD5"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
    a.shutdown(ShutdownOptions::default()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn liveness_loss_keeps_routes_when_asked_and_a_hard_reset_drops_them() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, mut ae, b, mut be) = pair(&net).await;
    b.announce(route("10.2.0.0/16")).await.unwrap();
    a.announce(route("10.1.0.0/16")).await.unwrap();
    route_changes(&mut ae, 1).await;
    route_changes(&mut be, 1).await;
    let b_id = bgp_speaker::PeerId::new(ip(2));

    // BFD says B is gone, keep its routes: a transport failure, graceful restart applies.
    a.liveness_down(&b_id, true).await.unwrap();
    let down = next_event(&mut ae, WAIT, |e| matches!(e, Event::PeerDown { .. })).await;
    assert!(
        matches!(
            down,
            Some(Event::PeerDown {
                routes_kept: true,
                ..
            })
        ),
        "{down:?}"
    );
    assert!(a.routes().await.unwrap().iter().any(|r| r.2.stale));
    up(&mut ae).await;
    next_event(&mut ae, WAIT, |e| {
        matches!(
            e,
            Event::StalePurged { .. } | Event::EndOfRibReceived { .. }
        )
    })
    .await
    .unwrap();

    // B saw a transport failure too, and kept A's routes.
    let down = next_event(&mut be, WAIT, |e| matches!(e, Event::PeerDown { .. })).await;
    assert!(
        matches!(
            down,
            Some(Event::PeerDown {
                routes_kept: true,
                ..
            })
        ),
        "{down:?}"
    );
    up(&mut be).await;
    next_event(&mut be, WAIT, |e| {
        matches!(e, Event::EndOfRibReceived { .. })
    })
    .await
    .unwrap();

    // A hard reset: both sides drop the other's routes (RFC 8538 §3: Hard Reset).
    a.reset_peer(&b_id, bgp_speaker::Reset::Hard).await.unwrap();
    let down = next_event(&mut be, WAIT, |e| matches!(e, Event::PeerDown { .. })).await;
    assert!(
        matches!(
            down,
            Some(Event::PeerDown {
                routes_kept: false,
                ..
            })
        ),
        "{down:?}"
    );
    let gone = next_event(&mut be, WAIT, |e| {
        matches!(e, Event::RouteChanged { route: None, .. })
    })
    .await;
    assert!(gone.is_some());
    // The session comes back by itself, and the routes with it.
    up(&mut be).await;
    route_changes(&mut be, 1).await;
    assert_eq!(b.routes().await.unwrap().len(), 2);

    // Soft reset in asks B again; soft reset out sends B our routes again.
    a.reset_peer(&b_id, bgp_speaker::Reset::SoftIn)
        .await
        .unwrap();
    a.reset_peer(&b_id, bgp_speaker::Reset::SoftOut)
        .await
        .unwrap();
    let unknown = bgp_speaker::PeerId::new(ip(99));
    assert!(matches!(
        a.reset_peer(&unknown, bgp_speaker::Reset::Hard).await,
        Err(bgp_speaker::SpeakerError::UnknownPeer(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_lags_gets_a_count_of_what_it_missed_and_never_stalls_the_speaker() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, mut ae) = Speaker::start(settings(&net, 1, &[2])).await.unwrap();
    let (b, mut be) = Speaker::start(GlobalSettings {
        event_capacity: 4,
        ..settings(&net, 2, &[1])
    })
    .await
    .unwrap();
    up(&mut ae).await;
    up(&mut be).await;
    let routes: Vec<Announcement> = (0..50u32)
        .map(|i| route(&format!("10.0.{i}.0/24")))
        .collect();
    a.set_routes(routes).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // B carried on: it holds every route, though its reader did not keep up.
    assert_eq!(b.routes().await.unwrap().len(), 50);
    let mut seen = Vec::new();
    while let Some(e) = be.try_recv() {
        seen.push(e);
    }
    assert_eq!(seen.len(), 4);
    // The next event that fits says how many were dropped.
    a.withdraw(prefix("10.0.0.0/24")).await.unwrap();
    let lagged = next_event(&mut be, WAIT, |e| matches!(e, Event::Lagged { .. })).await;
    assert!(
        matches!(lagged, Some(Event::Lagged { missed }) if missed >= 46),
        "{lagged:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn many_flaps_leave_no_task_and_no_route_behind() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, mut ae, b, mut be) = pair(&net).await;
    a.set_routes(vec![route("10.1.0.0/16"), route("10.2.0.0/16")])
        .await
        .unwrap();
    route_changes(&mut be, 2).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    let b_id = bgp_speaker::PeerId::new(ip(2));
    for _ in 0..200 {
        a.reset_peer(&b_id, bgp_speaker::Reset::Hard).await.unwrap();
        next_event(&mut ae, WAIT, |e| matches!(e, Event::PeerDown { .. }))
            .await
            .unwrap();
        // B damps the oscillation (its idle hold time doubles, up to 300 s): virtual time.
        next_event(&mut ae, Duration::from_secs(900), |e| {
            matches!(e, Event::PeerUp { .. })
        })
        .await
        .expect("back up");
    }
    // Let closing connections linger out.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(tasks(), before, "tasks left behind");
    assert_eq!(b.routes().await.unwrap().len(), 2);
    let s = &a.snapshot().await.unwrap()[0];
    assert_eq!(s.flaps, 200);
    assert_eq!(s.state, SessionState::Established);
}

/// A peer at `ip(2)` (AS 65002) scripted by hand, to see exactly what speaker 1 sends and in
/// which order.
struct Scripted {
    stream: tokio::io::DuplexStream,
    buf: BytesMut,
    ctx: bgp_wire::Context,
}

impl Scripted {
    /// Accepts speaker 1's connection and completes the OPEN exchange, offering route
    /// refresh and, with `enhanced`, enhanced route refresh (RFC 7313).
    async fn establish(
        listener: &mut bgp_speaker::testkit::MemoryListener,
        enhanced: bool,
    ) -> Self {
        let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        let mut s = Scripted {
            stream,
            buf: BytesMut::new(),
            ctx: bgp_wire::Context::default(),
        };
        let Message::Open(theirs) = s.next().await else {
            panic!("no OPEN")
        };
        let mut caps = vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::RouteRefresh,
        ];
        if enhanced {
            caps.push(Capability::EnhancedRouteRefresh);
        }
        let ours = bgp_wire::Open::new(Asn(65002), 90, Ipv4Addr::new(192, 0, 2, 2), caps);
        s.send(Message::Open(ours.clone())).await;
        s.send(Message::Keepalive).await;
        let neg = bgp_fsm::Negotiated::new(&ours, &theirs, None);
        assert_eq!(neg.enhanced_route_refresh, enhanced);
        s.ctx = neg.context();
        s
    }

    async fn send(&mut self, m: Message) {
        use tokio::io::AsyncWriteExt;
        let mut out = BytesMut::new();
        m.encode(&self.ctx, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next message other than KEEPALIVE.
    async fn next(&mut self) -> Message {
        loop {
            if let Some((h, m)) = split_message(&mut self.buf, 65535).unwrap() {
                match Message::decode_body(h, m.slice(19..), &self.ctx).unwrap() {
                    Message::Keepalive => continue,
                    m => return m,
                }
            }
            let n = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("a message in time")
                .unwrap();
            assert!(n > 0, "connection closed");
        }
    }

    /// Every message (but KEEPALIVEs) that comes within `quiet` of the last one.
    async fn until_quiet(&mut self, quiet: Duration) -> Vec<Message> {
        let mut v = Vec::new();
        while let Ok(m) = tokio::time::timeout(quiet, self.next()).await {
            v.push(m);
        }
        v
    }
}

/// What a sequence of messages says, in order: `BoRR`, `EoRR`, `EoR`, or the prefixes an
/// UPDATE announces.
fn describe(ms: &[Message]) -> Vec<String> {
    use bgp_wire::route_refresh::RouteRefreshSubtype;
    ms.iter()
        .map(|m| match m {
            Message::Update(u) if u.end_of_rib().is_some() => "EoR".to_string(),
            Message::Update(u) => {
                let mut v: Vec<String> = u.announced().map(|(_, n)| n.prefix.to_string()).collect();
                v.sort();
                v.join(" ")
            }
            Message::RouteRefresh(r) => match r.subtype {
                RouteRefreshSubtype::BeginningOfRefresh => "BoRR".to_string(),
                RouteRefreshSubtype::EndOfRefresh => "EoRR".to_string(),
                s => format!("{s:?}"),
            },
            m => format!("{:?}", m.kind()),
        })
        .collect()
}

async fn scripted_pair(
    net: &MemoryNetwork,
    enhanced: bool,
) -> (SpeakerHandle, EventStream, Scripted) {
    let (a, ae, mut raw) = scripted_with(
        net,
        enhanced,
        vec![route("10.1.0.0/16"), route("10.2.0.0/16")],
    )
    .await;
    let first = raw.until_quiet(Duration::from_secs(5)).await;
    assert_eq!(describe(&first), ["10.1.0.0/16 10.2.0.0/16", "EoR"]);
    (a, ae, raw)
}

/// Speaker 1 with these routes, and the scripted peer established with it.
async fn scripted_with(
    net: &MemoryNetwork,
    enhanced: bool,
    announcements: Vec<Announcement>,
) -> (SpeakerHandle, EventStream, Scripted) {
    let mut listener = net.listen(SocketAddr::new(ip(2), 179), 1);
    let (a, ae) = Speaker::start(GlobalSettings {
        announcements,
        ..settings(net, 1, &[2])
    })
    .await
    .unwrap();
    let raw = Scripted::establish(&mut listener, enhanced).await;
    (a, ae, raw)
}

#[tokio::test(start_paused = true)]
async fn rfc2918_a_route_refresh_request_gets_every_route_again() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, _ae, mut raw) = scripted_pair(&net, false).await;
    raw.send(Message::RouteRefresh(bgp_wire::RouteRefresh::request(
        AfiSafi::IPV4_UNICAST,
    )))
    .await;
    let again = raw.until_quiet(Duration::from_secs(5)).await;
    assert_eq!(
        describe(&again),
        ["10.1.0.0/16 10.2.0.0/16"],
        "no EoRR without RFC 7313"
    );
    a.shutdown(ShutdownOptions::default()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn rfc7313_4_the_re_advertisement_goes_between_borr_and_eorr() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, _ae, mut raw) = scripted_pair(&net, true).await;
    // A route withdrawn before the request is not sent again.
    assert!(a.withdraw(prefix("10.2.0.0/16")).await.unwrap());
    let Message::Update(u) = raw.next().await else {
        panic!("no withdrawal")
    };
    assert_eq!(u.withdrawn_all().count(), 1);
    raw.send(Message::RouteRefresh(bgp_wire::RouteRefresh::request(
        AfiSafi::IPV4_UNICAST,
    )))
    .await;
    let again = raw.until_quiet(Duration::from_secs(5)).await;
    assert_eq!(describe(&again), ["BoRR", "10.1.0.0/16", "EoRR"]);
    a.shutdown(ShutdownOptions::default()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn soft_reset_out_re_sends_our_routes_without_refresh_markers() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, _ae, mut raw) = scripted_pair(&net, true).await;
    let peer_id = bgp_speaker::PeerId::new(ip(2));
    a.reset_peer(&peer_id, bgp_speaker::Reset::SoftOut)
        .await
        .unwrap();
    let again = raw.until_quiet(Duration::from_secs(5)).await;
    assert_eq!(describe(&again), ["10.1.0.0/16 10.2.0.0/16"]);
    let unknown = bgp_speaker::PeerId::new(ip(9));
    assert!(matches!(
        a.reset_peer(&unknown, bgp_speaker::Reset::SoftOut).await,
        Err(bgp_speaker::SpeakerError::UnknownPeer(_))
    ));
    a.shutdown(ShutdownOptions::default()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn rfc7313_4_eorr_follows_a_table_larger_than_the_write_buffer() {
    // 20,000 prefixes: several times the peer task's write watermark (64 KiB) and the
    // in-memory pipe, so the re-advertisement takes many drains.
    const N: usize = 20_000;
    let net = MemoryNetwork::new(64 * 1024);
    let routes: Vec<Announcement> = (0..N)
        .map(|i| route(&format!("10.{}.{}.0/24", i / 256, i % 256)))
        .collect();
    let (a, _ae, mut raw) = scripted_with(&net, true, routes).await;
    let count = |ms: &[Message]| -> usize {
        ms.iter()
            .map(|m| match m {
                Message::Update(u) => u.announced().count(),
                _ => 0,
            })
            .sum()
    };
    let mut first = Vec::new();
    loop {
        let m = raw.next().await;
        let eor = matches!(&m, Message::Update(u) if u.end_of_rib().is_some());
        first.push(m);
        if eor {
            break;
        }
    }
    assert_eq!(count(&first), N);
    raw.send(Message::RouteRefresh(bgp_wire::RouteRefresh::request(
        AfiSafi::IPV4_UNICAST,
    )))
    .await;
    let mut again = Vec::new();
    loop {
        let m = raw.next().await;
        let eorr = matches!(&m, Message::RouteRefresh(r)
            if r.subtype == bgp_wire::route_refresh::RouteRefreshSubtype::EndOfRefresh);
        again.push(m);
        if eorr {
            break;
        }
    }
    assert_eq!(describe(&again[..1]), ["BoRR"]);
    assert_eq!(count(&again), N, "every route before the EoRR");
    assert!(again.len() > 10, "in many UPDATEs: {}", again.len());
    assert!(raw.until_quiet(Duration::from_secs(5)).await.is_empty());
    a.shutdown(ShutdownOptions::default()).await.unwrap();
}

/// Collects events until `pred` matches one, skipping the others.
async fn wait_event(events: &mut EventStream, pred: impl Fn(&Event) -> bool) -> Event {
    next_event(events, WAIT, pred).await.expect("event")
}

#[tokio::test(start_paused = true)]
async fn a_new_next_hop_applies_without_a_session_reset() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, mut ae, _b, mut be) = pair(&net).await;
    a.announce(route("10.1.0.0/16")).await.unwrap();
    route_changes(&mut be, 1).await;
    let changed = PeerSettings {
        local_address: Some(ip(1)),
        next_hop_ipv4: Some(Ipv4Addr::new(192, 0, 2, 99)),
        ..peer(2)
    };
    assert!(
        !a.update_peer(changed).await.unwrap(),
        "a next hop needs no reset"
    );
    let Event::RouteChanged { route: Some(r), .. } =
        wait_event(&mut be, |e| matches!(e, Event::RouteChanged { .. })).await
    else {
        panic!("no route")
    };
    assert_eq!(r.next_hop(), Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99))));
    // A slower timer changes nothing on the wire either.
    let slower = PeerSettings {
        local_address: Some(ip(1)),
        next_hop_ipv4: Some(Ipv4Addr::new(192, 0, 2, 99)),
        connect_retry: Duration::from_secs(30),
        ..peer(2)
    };
    assert!(!a.update_peer(slower).await.unwrap());
    tokio::time::sleep(Duration::from_secs(300)).await;
    while let Some(e) = ae.try_recv() {
        assert!(!matches!(e, Event::PeerDown { .. }), "{e:?}");
    }
    assert_eq!(a.snapshot().await.unwrap()[0].flaps, 0);
}

/// RFC 4486 §4: over the limit, Cease/Maximum Number of Prefixes Reached (inside a Hard
/// Reset, RFC 8538 §5, as both sides negotiated the N bit): the peer's routes go, and the
/// session stays down until reset.
#[tokio::test(start_paused = true)]
async fn prefix_limit_warns_then_stops_the_session_until_reset() {
    let mut limit = bgp_speaker::PrefixLimit::new(AfiSafi::IPV4_UNICAST, 3);
    limit.warning_percent = 50;
    let net = MemoryNetwork::new(64 * 1024);
    let (a, mut ae, b, mut be) = pair_with(&net, |s| s.peers[0].prefix_limits = vec![limit]).await;
    b.announce_all(vec![route("10.1.0.0/16"), route("10.2.0.0/16")])
        .await
        .unwrap();
    let e = wait_event(&mut ae, |e| matches!(e, Event::PrefixLimitWarning { .. })).await;
    assert!(
        matches!(
            e,
            Event::PrefixLimitWarning {
                received: 2,
                limit: 3,
                ..
            }
        ),
        "{e:?}"
    );
    b.announce_all(vec![route("10.3.0.0/16"), route("10.4.0.0/16")])
        .await
        .unwrap();
    let e = wait_event(&mut ae, |e| matches!(e, Event::PrefixLimitExceeded { .. })).await;
    assert!(
        matches!(
            e,
            Event::PrefixLimitExceeded {
                limit: 3,
                session_stopped: true,
                ..
            }
        ),
        "{e:?}"
    );
    let Event::PeerDown {
        reason,
        routes_kept,
        ..
    } = wait_event(&mut be, |e| matches!(e, Event::PeerDown { .. })).await
    else {
        unreachable!()
    };
    assert!(!routes_kept, "a Hard Reset: the peer keeps nothing");
    let (code, subcode) = reason.code_subcode().expect("a NOTIFICATION");
    assert_eq!((code, subcode), (6, 9), "Hard Reset: {reason}");
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(a.routes().await.unwrap().is_empty(), "its routes went");
    assert_eq!(
        a.snapshot().await.unwrap()[0].state,
        SessionState::Idle,
        "stays down"
    );
    // An operator's reset starts it again (and, as the peer still sends four, it stops
    // again).
    b.withdraw(prefix("10.4.0.0/16")).await.unwrap();
    a.reset_peer(&peer(2).id(), bgp_speaker::Reset::Hard)
        .await
        .unwrap();
    up(&mut ae).await;
    route_changes(&mut ae, 3).await;
    assert_eq!(a.routes().await.unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn prefix_limit_restarts_after_the_set_time_or_only_warns() {
    let mut limit = bgp_speaker::PrefixLimit::new(AfiSafi::IPV4_UNICAST, 1);
    limit.restart_after = Some(Duration::from_secs(120));
    let net = MemoryNetwork::new(64 * 1024);
    let first = limit.clone();
    let (a, mut ae, b, _be) = pair_with(&net, |s| s.peers[0].prefix_limits = vec![first]).await;
    b.announce_all(vec![route("10.1.0.0/16"), route("10.2.0.0/16")])
        .await
        .unwrap();
    wait_event(&mut ae, |e| matches!(e, Event::PeerDown { .. })).await;
    let down_at = tokio::time::Instant::now();
    b.withdraw(prefix("10.2.0.0/16")).await.unwrap();
    next_event(&mut ae, Duration::from_secs(300), |e| {
        matches!(e, Event::PeerUp { .. })
    })
    .await
    .expect("up again");
    let after = down_at.elapsed();
    assert!(
        after >= Duration::from_secs(120) && after < Duration::from_secs(130),
        "{after:?}"
    );
    route_changes(&mut ae, 1).await;
    // Warning only: the limit is reported once, the session stays.
    limit.warning_only = true;
    let p = PeerSettings {
        local_address: Some(ip(1)),
        prefix_limits: vec![limit],
        ..peer(2)
    };
    assert!(!a.update_peer(p).await.unwrap(), "a limit needs no reset");
    b.announce(route("10.2.0.0/16")).await.unwrap();
    let e = wait_event(&mut ae, |e| matches!(e, Event::PrefixLimitExceeded { .. })).await;
    assert!(
        matches!(
            e,
            Event::PrefixLimitExceeded {
                session_stopped: false,
                ..
            }
        ),
        "{e:?}"
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(a.routes().await.unwrap().len(), 2);
    assert_eq!(
        a.snapshot().await.unwrap()[0].state,
        SessionState::Established
    );
}

/// An AS_PATH longer than the limit: the route is treated as withdrawn (RFC 7606 style:
/// the session stays, the rest of the UPDATE is kept).
#[tokio::test(start_paused = true)]
async fn routes_over_the_as_path_limit_are_treated_as_withdrawn() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, mut ae, b, _be) = pair_with(&net, |s| s.limits.max_as_path_len = 4).await;
    let mut long = route("10.1.0.0/16");
    long.as_path_prepend = 5;
    let mut short = route("10.2.0.0/16");
    short.as_path_prepend = 2;
    b.announce_all(vec![short, long]).await.unwrap();
    let got = route_changes(&mut ae, 1).await;
    assert_eq!(got, vec![(prefix("10.2.0.0/16"), true)]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(a.routes().await.unwrap().len(), 1);
    assert_eq!(a.snapshot().await.unwrap()[0].flaps, 0);
}

/// RFC 4271 §6.3: a route whose NEXT_HOP is the receiving speaker's own address is ignored,
/// without a NOTIFICATION; the rest of the peer's routes are taken.
#[tokio::test(start_paused = true)]
async fn a_route_with_our_own_address_as_next_hop_is_ignored() {
    let net = MemoryNetwork::new(64 * 1024);
    let (a, mut ae, b, _be) = pair(&net).await;
    b.announce_all(vec![
        route("10.1.0.0/16").with_next_hop(ip(1)),
        route("10.2.0.0/16"),
    ])
    .await
    .unwrap();
    let got = route_changes(&mut ae, 1).await;
    assert_eq!(got, vec![(prefix("10.2.0.0/16"), true)]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(a.routes().await.unwrap().len(), 1);
    assert_eq!(a.snapshot().await.unwrap()[0].flaps, 0);
}
