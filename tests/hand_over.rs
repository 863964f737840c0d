//! Hand-over of live sessions between two speakers ([`bgp_speaker::handover`]), over
//! loopback TCP (127.0.71.0/24 to 127.0.73.0/24) and a Unix socket, in one process: the peer's session never
//! leaves Established, it receives nothing because of the hand-over, and the new speaker has
//! the routes and carries on. Also the failures: nobody takes over in time (rollback), a
//! taker that dies mid-way, a speaker that is gone.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use bgp_speaker::core::{Announcement, Event};
use bgp_speaker::handover::HandOverError;
use bgp_speaker::snapshot::SessionState;
use bgp_speaker::{EventStream, GlobalSettings, PeerSettings, Speaker, SpeakerHandle};
use bgp_wire::Asn;
use ipnet::IpNet;

const WAIT: Duration = Duration::from_secs(20);

fn ip(net: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, net, host)
}

fn prefix(p: &str) -> IpNet {
    p.parse().expect("prefix")
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("bgp-hand-over-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The speaker that moves (A, AS 65001) and its one peer (B, AS 65002), hold time 3 s: a
/// hand-over that paused the keepalives for long would end the session.
fn a_settings(net: u8, sock: &std::path::Path) -> GlobalSettings {
    let mut p = PeerSettings::new(IpAddr::V4(ip(net, 2)), Asn(65002));
    p.hold_time = 3;
    p.local_address = Some(IpAddr::V4(ip(net, 1)));
    GlobalSettings {
        asn: Asn(65001),
        router_id: ip(net, 1),
        listen: vec![SocketAddr::new(IpAddr::V4(ip(net, 1)), 179)],
        loc_rib_events: true,
        peers: vec![p],
        announcements: vec![
            Announcement::new(prefix("198.51.100.0/24")).with_next_hop(IpAddr::V4(ip(net, 1))),
        ],
        hand_over_socket: Some(sock.to_path_buf()),
        hand_over_timeout: Duration::from_secs(5),
        ..GlobalSettings::default()
    }
}

fn b_settings(net: u8) -> GlobalSettings {
    let mut p = PeerSettings::new(IpAddr::V4(ip(net, 1)), Asn(65001));
    p.hold_time = 3;
    p.passive = true;
    p.local_address = Some(IpAddr::V4(ip(net, 2)));
    GlobalSettings {
        asn: Asn(65002),
        router_id: ip(net, 2),
        listen: vec![SocketAddr::new(IpAddr::V4(ip(net, 2)), 179)],
        loc_rib_events: true,
        peers: vec![p],
        announcements: vec![
            Announcement::new(prefix("203.0.113.0/24")).with_next_hop(IpAddr::V4(ip(net, 2))),
        ],
        ..GlobalSettings::default()
    }
}

async fn next(ev: &mut EventStream, what: &str, f: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ev.recv()).await {
            Ok(Some(e)) if f(&e) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event stream ended waiting for {what}"),
            Err(_) => panic!("no {what} within {WAIT:?}"),
        }
    }
}

async fn has_route(s: &SpeakerHandle, p: &str) -> bool {
    let p = prefix(p);
    s.routes()
        .await
        .expect("routes")
        .iter()
        .any(|(_, q, _)| *q == p)
}

/// B's view of its session with A: (state, flaps, UPDATEs received, UPDATEs sent).
async fn b_view(b: &SpeakerHandle) -> (SessionState, u64, u64, u64) {
    let s = b.snapshot().await.expect("snapshot");
    let p = &s[0];
    (p.state, p.flaps, p.received.update, p.sent.update)
}

/// B's view once both sides sent their route and End-of-RIB (two UPDATEs each way).
async fn b_settled(b: &SpeakerHandle) -> (SessionState, u64, u64, u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = b_view(b).await;
        if v.0 == SessionState::Established && v.2 >= 2 && v.3 >= 2 {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never settled: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fails if B saw its session with A go down.
fn no_flap(ev: &mut EventStream) {
    while let Some(e) = ev.try_recv() {
        assert!(!matches!(e, Event::PeerDown { .. }), "B saw {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_hand_overs_are_invisible_to_the_peer() {
    let net = 71;
    let dir = Dir::new("repeat");
    let sock = dir.0.join("ho.sock");
    let (b, mut be) = Speaker::start(b_settings(net)).await.expect("B");
    let (mut a, mut ae) = Speaker::start(a_settings(net, &sock)).await.expect("A");
    a.initial_routes_done().await.expect("initial");
    next(&mut be, "B: A's route", |e| {
        matches!(e, Event::RouteChanged { prefix: p, route: Some(_), .. } if *p == prefix("198.51.100.0/24"))
    })
    .await;
    next(&mut ae, "A: B's route", |e| {
        matches!(e, Event::RouteChanged { prefix: p, route: Some(_), .. } if *p == prefix("203.0.113.0/24"))
    })
    .await;
    let before = b_settled(&b).await;
    assert_eq!(before.0, SessionState::Established);
    for round in 0..5 {
        let (a2, mut ae2) = Speaker::take_over(a_settings(net, &sock), &sock)
            .await
            .unwrap_or_else(|e| panic!("round {round}: take-over: {e}"));
        let done = next(&mut ae, "HandedOver", |e| {
            matches!(e, Event::HandedOver { .. } | Event::HandOverFailed { .. })
        })
        .await;
        assert!(
            matches!(done, Event::HandedOver { sessions: 1, .. }),
            "{done}"
        );
        next(&mut ae2, "PeerUp on the new speaker", |e| {
            matches!(e, Event::PeerUp { .. })
        })
        .await;
        // The old speaker is gone; the new one has the routes.
        assert!(a.routes().await.is_err(), "the old speaker still answers");
        assert!(
            has_route(&a2, "203.0.113.0/24").await,
            "round {round}: B's route lost"
        );
        assert!(
            has_route(&a2, "198.51.100.0/24").await,
            "round {round}: our route lost"
        );
        no_flap(&mut be);
        let now = b_view(&b).await;
        assert_eq!(now, before, "round {round}: B's session changed");
        a = a2;
        ae = ae2;
    }
    // Past several hold times: keepalives flowed from the new speakers.
    tokio::time::sleep(Duration::from_secs(4)).await;
    no_flap(&mut be);
    assert_eq!(b_view(&b).await, before);
    // And the session still carries routes both ways.
    a.announce(Announcement::new(prefix("192.0.2.0/24")).with_next_hop(IpAddr::V4(ip(net, 1))))
        .await
        .expect("announce");
    next(&mut be, "B: the new route", |e| {
        matches!(e, Event::RouteChanged { prefix: p, route: Some(_), .. } if *p == prefix("192.0.2.0/24"))
    })
    .await;
    b.withdraw(prefix("203.0.113.0/24"))
        .await
        .expect("withdraw");
    next(&mut ae, "A: B's withdrawal", |e| {
        matches!(e, Event::RouteChanged { prefix: p, route: None, .. } if *p == prefix("203.0.113.0/24"))
    })
    .await;
    let _ = a.shutdown(Default::default()).await;
    let _ = b.shutdown(Default::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taker_that_dies_mid_way_leaves_the_sessions_with_the_old_speaker() {
    let net = 72;
    let dir = Dir::new("dies");
    let sock = dir.0.join("ho.sock");
    let (b, mut be) = Speaker::start(b_settings(net)).await.expect("B");
    let mut s = a_settings(net, &sock);
    s.hand_over_timeout = Duration::from_secs(1);
    let (a, mut ae) = Speaker::start(s).await.expect("A");
    a.initial_routes_done().await.expect("initial");
    next(&mut be, "B: A's route", |e| {
        matches!(e, Event::RouteChanged { prefix: p, route: Some(_), .. } if *p == prefix("198.51.100.0/24"))
    })
    .await;
    let before = b_settled(&b).await;
    // A taker that reads the start of the image and dies.
    let path = sock.clone();
    tokio::task::spawn_blocking(move || {
        let mut c = UnixStream::connect(path).expect("connect");
        let mut buf = [0u8; 16];
        let _ = std::io::Read::read(&mut c, &mut buf);
    })
    .await
    .expect("taker");
    let e = next(&mut ae, "HandOverFailed", |e| {
        matches!(e, Event::HandOverFailed { .. } | Event::HandedOver { .. })
    })
    .await;
    assert!(
        matches!(e, Event::HandOverFailed { stopped: false, .. }),
        "{e}"
    );
    // A taker that never answers: rolled back after the timeout.
    let path = sock.clone();
    let silent = std::thread::spawn(move || {
        let c = UnixStream::connect(path).expect("connect");
        std::thread::sleep(Duration::from_secs(3));
        drop(c);
    });
    let e = next(&mut ae, "HandOverFailed", |e| {
        matches!(e, Event::HandOverFailed { .. } | Event::HandedOver { .. })
    })
    .await;
    assert!(
        matches!(e, Event::HandOverFailed { stopped: false, .. }),
        "{e}"
    );
    let _ = silent.join();
    // The old speaker carries on: B saw nothing, and routes still flow.
    tokio::time::sleep(Duration::from_secs(1)).await;
    no_flap(&mut be);
    assert_eq!(b_view(&b).await, before);
    a.announce(Announcement::new(prefix("192.0.2.0/24")).with_next_hop(IpAddr::V4(ip(net, 1))))
        .await
        .expect("announce");
    next(&mut be, "B: the new route", |e| {
        matches!(e, Event::RouteChanged { prefix: p, route: Some(_), .. } if *p == prefix("192.0.2.0/24"))
    })
    .await;
    // And a real take-over still works afterwards.
    let (a2, _ae2) = Speaker::take_over(a_settings(net, &sock), &sock)
        .await
        .expect("take-over");
    assert!(has_route(&a2, "203.0.113.0/24").await);
    let _ = a2.shutdown(Default::default()).await;
    let _ = b.shutdown(Default::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_over_from_nobody_is_an_error_that_says_so() {
    let dir = Dir::new("nobody");
    let sock = dir.0.join("ho.sock");
    let e = Speaker::take_over(a_settings(73, &sock), &sock)
        .await
        .expect_err("an error");
    assert!(
        matches!(&e, HandOverError::Io(io) if io.kind() == std::io::ErrorKind::NotFound),
        "{e}"
    );
}

/// The new side of a version mismatch: an image in a format this build does not read is
/// refused clearly (the reason names both versions), and the taker waits for the running
/// speaker to close the socket (it stops for a graceful restart) before it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_of_an_unknown_format_is_refused() {
    use std::io::{Read, Write};
    let dir = Dir::new("version");
    let sock = dir.0.join("ho.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    // A running speaker of a future version.
    let old = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().expect("accept");
        let mut prelude = b"BGPHOVER".to_vec();
        prelude.extend_from_slice(&99u32.to_be_bytes());
        prelude.extend_from_slice(&2u32.to_be_bytes());
        prelude.extend_from_slice(&3u64.to_be_bytes());
        prelude.extend_from_slice(&0u32.to_be_bytes());
        prelude.extend_from_slice(b"{}abc");
        c.write_all(&prelude).expect("write");
        let mut answer = String::new();
        let mut byte = [0u8; 1];
        while c.read(&mut byte).expect("read") == 1 && byte[0] != b'\n' {
            answer.push(byte[0] as char);
        }
        // Stopping for a graceful restart takes a moment; then the socket closes.
        std::thread::sleep(Duration::from_millis(300));
        answer
    });
    let started = std::time::Instant::now();
    let e = Speaker::take_over(a_settings(74, &sock), &sock)
        .await
        .expect_err("refused");
    let answer = old.join().expect("old");
    assert!(answer.starts_with("REFUSE"), "{answer}");
    assert!(answer.contains("99") && answer.contains('1'), "{answer}");
    assert!(
        matches!(&e, HandOverError::Refused(why) if why.contains("99")),
        "{e}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "returned before the running speaker closed the socket"
    );
}

/// The old side of a version mismatch: the new process refuses the image, and the running
/// speaker falls back to a graceful restart: it stops for restart (the peer keeps its routes,
/// stale) and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_image_falls_back_to_a_graceful_restart() {
    use std::io::{Read, Write};
    let net = 75;
    let dir = Dir::new("refused");
    let sock = dir.0.join("ho.sock");
    let (b, mut be) = Speaker::start(b_settings(net)).await.expect("B");
    let mut s = a_settings(net, &sock);
    s.restart_state_file = Some(dir.0.join("restart-state"));
    let (a, mut ae) = Speaker::start(s).await.expect("A");
    a.initial_routes_done().await.expect("initial");
    next(&mut be, "B: A's route", |e| {
        matches!(e, Event::RouteChanged { prefix: p, route: Some(_), .. } if *p == prefix("198.51.100.0/24"))
    })
    .await;
    b_settled(&b).await;
    // A new process of an older version: it reads the prelude and refuses.
    let path = sock.clone();
    let taker = std::thread::spawn(move || {
        let mut c = UnixStream::connect(path).expect("connect");
        let mut prelude = [0u8; 28];
        c.read_exact(&mut prelude).expect("prelude");
        c.write_all(b"REFUSE format version 1 is too new for me\n")
            .expect("answer");
        // The running speaker closes the socket once it has stopped.
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
    });
    let e = next(&mut ae, "HandOverFailed", |e| {
        matches!(e, Event::HandOverFailed { .. } | Event::HandedOver { .. })
    })
    .await;
    assert!(
        matches!(&e, Event::HandOverFailed { stopped: true, reason } if reason.contains("too new")),
        "{e}"
    );
    taker.join().expect("taker");
    let down = next(&mut be, "B: PeerDown", |e| {
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
        "B must keep A's routes: {down}"
    );
    assert!(
        has_route(&b, "198.51.100.0/24").await,
        "A's route kept, stale"
    );
    assert!(
        dir.0.join("restart-state").exists(),
        "restart state written"
    );
    assert!(a.routes().await.is_err(), "A stopped");
    let _ = b.shutdown(Default::default()).await;
}

/// The running speaker dies after it sent the image: the new one gets no confirmation (the
/// socket closes instead), carries the sessions on anyway, since nobody else holds them, and
/// asks the peer for its routes again (route refresh), as they did not come. The peer's session
/// never goes down. (A proxy between the two passes the image and its sockets, and on the new
/// speaker's ACK kills the old one, whose runtime is dropped as a process dying would drop it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_speaker_dying_after_sending_leaves_the_new_one_in_charge() {
    use sendfd::{RecvWithFd, SendWithFd};
    use std::io::{Read, Write};
    let net = 76;
    let dir = Dir::new("old-dies");
    let (sock, proxy) = (dir.0.join("ho.sock"), dir.0.join("proxy.sock"));
    let (b, mut be) = Speaker::start(b_settings(net)).await.expect("B");
    // The old speaker on a runtime of its own, in a thread that can be ended at once.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let settings = a_settings(net, &sock);
    let old = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (a, _ae) = Speaker::start(settings).await.expect("A");
            a.initial_routes_done().await.expect("initial");
            ready_tx.send(()).expect("ready");
            let _ = kill_rx.await;
        });
        // Every task and socket of the old speaker goes, as with a process that died.
        rt.shutdown_background();
    });
    ready_rx.recv_timeout(WAIT).expect("A started");
    next(&mut be, "B: A's route", |e| {
        matches!(e, Event::RouteChanged { prefix: p, route: Some(_), .. } if *p == prefix("198.51.100.0/24"))
    })
    .await;
    let before = b_settled(&b).await;

    let listener = std::os::unix::net::UnixListener::bind(&proxy).expect("bind proxy");
    let old_sock = sock.clone();
    let relay = std::thread::spawn(move || {
        let (new_side, _) = listener.accept().expect("accept");
        let old_side = UnixStream::connect(old_sock).expect("connect to A");
        let (o, n) = (
            old_side.try_clone().expect("clone"),
            new_side.try_clone().expect("clone"),
        );
        // Old to new: the image, sockets included.
        let pump = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut fds = [0; 250];
            loop {
                match o.recv_with_fd(&mut buf, &mut fds) {
                    Ok((0, _)) | Err(_) => break,
                    Ok((len, nfds)) => {
                        let chunk = &buf[..len];
                        let sent = if nfds > 0 {
                            n.send_with_fd(chunk, &fds[..nfds]).unwrap_or(0)
                        } else {
                            0
                        };
                        if (&n).write_all(&chunk[sent..]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        // New to old: the answer is held back; the old speaker dies instead.
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while (&new_side).read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
            answer.push(byte[0]);
        }
        assert_eq!(answer, b"ACK");
        let _ = kill_tx.send(());
        let _ = old_side.shutdown(std::net::Shutdown::Both);
        let _ = new_side.shutdown(std::net::Shutdown::Both);
        let _ = pump.join();
    });
    let (a2, mut ae2) = Speaker::take_over(a_settings(net, &proxy), &proxy)
        .await
        .expect("take-over");
    relay.join().expect("relay");
    old.join().expect("old");
    // The new speaker asks B for its routes again and gets them.
    next(&mut ae2, "B's route again", |e| {
        matches!(e, Event::RouteChanged { prefix: p, route: Some(_), .. } if *p == prefix("203.0.113.0/24"))
    })
    .await;
    // Past the hold time: B's session never went down, and B received nothing from us.
    tokio::time::sleep(Duration::from_secs(4)).await;
    no_flap(&mut be);
    let after = b_view(&b).await;
    assert_eq!((after.0, after.1, after.2), (before.0, before.1, before.2));
    assert!(
        after.3 > before.3,
        "B sent its routes again after the refresh"
    );
    assert!(has_route(&a2, "203.0.113.0/24").await);
    assert!(has_route(&b, "198.51.100.0/24").await);
    let _ = a2.shutdown(Default::default()).await;
    let _ = b.shutdown(Default::default()).await;
}
