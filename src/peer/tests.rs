//! Peer task tests over in-memory pipes, with paused (virtual) time unless they use TCP.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use bgp_fsm::DownReason;
use bgp_wire::capability::Capability;
use bgp_wire::notification::code;
use bgp_wire::{AsPath, Asn, MessageType, Nlri, Nlris, Origin, PathAttributes, Update};
use tokio::io::DuplexStream;

use super::*;
use crate::listener::{self, Dispatcher};
use crate::transport::{MemoryNetwork, TcpConnector};

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const WAIT: Duration = Duration::from_secs(900);

fn config(id: u8, asn: u32, peer_asn: u32, passive: bool) -> PeerConfig {
    PeerConfig {
        session: SessionConfig {
            local_asn: Asn(asn),
            peer_asn: Some(Asn(peer_asn)),
            bgp_id: Ipv4Addr::new(192, 0, 2, id),
            passive,
            families: vec![AfiSafi::IPV4_UNICAST],
            connect_retry_time: Duration::from_secs(5),
            ..SessionConfig::default()
        },
        ..PeerConfig::default()
    }
}

fn update(prefix: &str, asn: u32) -> Update {
    let attributes = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence([Asn(asn)])),
        next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
        ..PathAttributes::default()
    };
    let nlri = Nlris::new(
        AfiSafi::IPV4_UNICAST,
        false,
        [Nlri::new(prefix.parse().unwrap())],
    )
    .unwrap();
    Update {
        attributes,
        nlri,
        ..Update::default()
    }
}

struct Side {
    handle: PeerHandle,
    events: mpsc::Receiver<PeerEvent>,
    outbox: OutboxHandle,
    queue: Arc<Mutex<MemoryOutbox>>,
}

impl Side {
    /// Waits (bounded, in virtual time) for an event matching `pred`; earlier ones are dropped.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Action) -> bool) -> PeerEvent {
        let deadline = Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if pred(&e.action) => return e,
                Ok(Some(_)) => {}
                Ok(None) => panic!("event channel closed while waiting for {what}"),
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    fn drain(&mut self) -> Vec<Action> {
        let mut v = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            v.push(e.action);
        }
        v
    }

    fn push(&self, m: impl Into<Message>) {
        self.queue.lock().unwrap().push(m);
        self.outbox.notify();
    }
}

fn spawn_side(
    id: PeerId,
    cfg: PeerConfig,
    connector: Arc<dyn Connector>,
    event_capacity: usize,
) -> Side {
    let (tx, rx) = mpsc::channel(event_capacity);
    let (outbox, queue) = OutboxHandle::memory();
    let ctx = PeerContext {
        clock: Clock::new(),
        connector,
        events: tx,
    };
    Side {
        handle: spawn_peer(id, cfg, ctx, outbox.clone()),
        events: rx,
        outbox,
        queue,
    }
}

/// A (10.0.0.1, AS 65001, active) and B (10.0.0.2, AS 65002, passive, listening) on an
/// in-memory network.
fn pair(a: PeerConfig, b: PeerConfig) -> (Side, Side) {
    let net = MemoryNetwork::new(16 * 1024);
    let listener = net.listen(SocketAddr::new(B, BGP_PORT), 4);
    let side_b = spawn_side(PeerId::new(A), b, Arc::new(net.connector(B)), 64);
    let dispatcher = Dispatcher::new();
    dispatcher.register(
        side_b.handle.id(),
        side_b.handle.commands(),
        SocketOptions::default(),
    );
    listener::spawn_memory_listener(listener, dispatcher);
    let side_a = spawn_side(PeerId::new(B), a, Arc::new(net.connector(A)), 64);
    (side_a, side_b)
}

fn default_pair() -> (Side, Side) {
    pair(
        config(1, 65001, 65002, false),
        config(2, 65002, 65001, true),
    )
}

fn established(a: &Action) -> bool {
    matches!(a, Action::Established(_))
}

fn session_down(a: &Action) -> bool {
    matches!(a, Action::SessionDown(_))
}

async fn run_pair_scenario() {
    let (mut a, mut b) = default_pair();
    a.wait_for("Established at A", established).await;
    b.wait_for("Established at B", established).await;

    a.push(update("198.51.100.0/24", 65001));
    let e = b
        .wait_for("the UPDATE at B", |a| {
            matches!(a, Action::UpdateReceived(_))
        })
        .await;
    let Action::UpdateReceived(u) = e.action else {
        unreachable!()
    };
    let prefixes: Vec<_> = u.announced().map(|(_, n)| n.prefix.to_string()).collect();
    assert_eq!(prefixes, ["198.51.100.0/24"]);
    assert_eq!(e.peer, PeerId::new(A));
    assert!(a.queue.lock().unwrap().is_empty());
    assert_eq!(a.handle.stats().sent(MessageType::Update), 1);
    assert_eq!(b.handle.stats().received(MessageType::Update), 1);
    assert_eq!(b.handle.stats().received(MessageType::Open), 1);
    let status = a.handle.status().borrow().clone();
    assert_eq!(status.state, "Established");
    assert!(status.negotiated.is_some());
}

#[tokio::test(start_paused = true)]
async fn pair_establishes_exchanges_an_update_and_stays_up() {
    run_pair_scenario().await;
    let (mut a, mut b) = default_pair();
    a.wait_for("Established", established).await;
    b.wait_for("Established", established).await;
    // Five hold times of virtual time: keepalives keep the session up.
    tokio::time::sleep(Duration::from_secs(5 * 90)).await;
    for side in [&mut a, &mut b] {
        let events = side.drain();
        assert!(!events.iter().any(session_down), "{events:?}");
    }
    // The deferral timer released End-of-RIB meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn end_of_rib_goes_when_initial_routes_are_in() {
    let (mut a, mut b) = default_pair();
    a.wait_for("Established", established).await;
    b.wait_for("Established", established).await;
    a.handle
        .send(PeerCommand::InitialRoutesSent(None))
        .await
        .unwrap();
    let e = b
        .wait_for("End-of-RIB", |a| matches!(a, Action::EndOfRib(_)))
        .await;
    assert_eq!(e.action, Action::EndOfRib(AfiSafi::IPV4_UNICAST));
    assert!(e.at < Time::from_secs(10), "{:?}", e.at);
}

#[tokio::test(start_paused = true)]
async fn stop_sends_cease_and_the_peer_reports_it() {
    let (mut a, mut b) = default_pair();
    a.wait_for("Established", established).await;
    b.wait_for("Established", established).await;
    a.handle.send(PeerCommand::Stop).await.unwrap();
    let e = b.wait_for("SessionDown at B", session_down).await;
    let Action::SessionDown(DownReason::NotificationReceived(n)) = e.action else {
        panic!("{e:?}")
    };
    // The N bit was negotiated: Administrative Shutdown inside a Hard Reset (RFC 8538 §5).
    assert_eq!(n.code, code::CEASE);
    let inner = n.hard_reset_inner().expect("a Hard Reset");
    assert_eq!(
        (inner.code, inner.subcode),
        (code::CEASE, cease_subcode::ADMINISTRATIVE_SHUTDOWN)
    );
    let e = a.wait_for("SessionDown at A", session_down).await;
    assert_eq!(e.action, Action::SessionDown(DownReason::AdminStop));
    let status = b.handle.status().borrow().clone();
    assert_eq!(status.flaps, 1);
    assert!(matches!(
        status.last_down,
        Some(DownReason::NotificationReceived(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn stop_for_restart_without_n_bit_closes_silently_and_the_helper_retains() {
    let mut ca = config(1, 65001, 65002, false);
    let mut cb = config(2, 65002, 65001, true);
    ca.session.graceful_restart.notification = false;
    cb.session.graceful_restart.notification = false;
    let (mut a, mut b) = pair(ca, cb);
    a.wait_for("Established", established).await;
    b.wait_for("Established", established).await;
    a.handle.send(PeerCommand::StopForRestart).await.unwrap();
    let e = b
        .wait_for("RetainStale", |a| matches!(a, Action::RetainStale(_)))
        .await;
    assert_eq!(e.action, Action::RetainStale(AfiSafi::IPV4_UNICAST));
    let e = b.wait_for("SessionDown", session_down).await;
    assert_eq!(e.action, Action::SessionDown(DownReason::TcpError));
    tokio::time::timeout(WAIT, a.handle.join())
        .await
        .expect("the task ends after stop for restart");
}

#[tokio::test(start_paused = true)]
async fn stop_for_restart_with_n_bit_sends_a_soft_cease_and_the_helper_retains() {
    let (mut a, mut b) = default_pair();
    a.wait_for("Established", established).await;
    b.wait_for("Established", established).await;
    a.handle.send(PeerCommand::StopForRestart).await.unwrap();
    let e = b
        .wait_for("RetainStale", |a| matches!(a, Action::RetainStale(_)))
        .await;
    assert_eq!(e.action, Action::RetainStale(AfiSafi::IPV4_UNICAST));
    let e = b.wait_for("SessionDown", session_down).await;
    let Action::SessionDown(DownReason::NotificationReceived(n)) = e.action else {
        panic!("{e:?}")
    };
    assert!(!n.is_hard_reset());
    assert_eq!(
        (n.code, n.subcode),
        (code::CEASE, cease_subcode::ADMINISTRATIVE_RESET)
    );
}

#[tokio::test(start_paused = true)]
async fn liveness_down_keeping_routes_is_a_transport_failure() {
    let (mut a, mut b) = default_pair();
    a.wait_for("Established", established).await;
    b.wait_for("Established", established).await;
    a.handle
        .send(PeerCommand::LivenessDown { keep_routes: true })
        .await
        .unwrap();
    let e = a
        .wait_for("RetainStale", |a| matches!(a, Action::RetainStale(_)))
        .await;
    assert_eq!(e.action, Action::RetainStale(AfiSafi::IPV4_UNICAST));
    // And the session comes back by itself.
    a.wait_for("Established again", established).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_runs_on_a_multi_thread_runtime() {
    tokio::time::timeout(Duration::from_secs(20), run_pair_scenario())
        .await
        .expect("pair scenario in time");
}

#[test]
fn pair_runs_on_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(run_pair_scenario());
}

/// The far end of a peer task's connection, driven by the test.
struct Raw {
    s: DuplexStream,
    buf: BytesMut,
    ctx: Context,
}

impl Raw {
    /// A passive peer task (10.0.0.1 side, AS 65001) with this end of its connection.
    async fn connect(cfg: PeerConfig, event_capacity: usize, pipe: usize) -> (Side, Raw) {
        let side = spawn_side(
            PeerId::new(B),
            cfg,
            Arc::new(MemoryNetwork::new(pipe).connector(A)),
            event_capacity,
        );
        let (ours, theirs) = tokio::io::duplex(pipe);
        side.handle
            .send(PeerCommand::Accepted {
                stream: Box::new(theirs),
                remote: SocketAddr::new(B, 40000),
            })
            .await
            .unwrap();
        let raw = Raw {
            s: ours,
            buf: BytesMut::new(),
            ctx: Context::default(),
        };
        (side, raw)
    }

    fn open(hold: u16) -> Open {
        Open::new(
            Asn(65002),
            hold,
            Ipv4Addr::new(192, 0, 2, 2),
            vec![Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)],
        )
    }

    fn bytes(&self, m: Message) -> Vec<u8> {
        m.to_bytes(&self.ctx).unwrap().to_vec()
    }

    async fn send(&mut self, m: Message) {
        let b = self.bytes(m);
        self.s.write_all(&b).await.unwrap();
    }

    async fn send_bytewise(&mut self, m: Message) {
        for byte in self.bytes(m) {
            self.s.write_all(&[byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
    }

    async fn recv(&mut self) -> Message {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some((h, m)) =
                    split_message(&mut self.buf, self.ctx.max_message_len).unwrap()
                {
                    return Message::decode_body(h, m.slice(HEADER_LEN..), &self.ctx).unwrap();
                }
                let n = self.s.read_buf(&mut self.buf).await.unwrap();
                assert!(n > 0, "closed");
            }
        })
        .await
        .expect("a message in time")
    }

    /// OPEN both ways, then KEEPALIVE both ways.
    async fn handshake(&mut self, hold: u16) {
        self.send(Message::Open(Raw::open(hold))).await;
        assert!(matches!(self.recv().await, Message::Open(_)));
        assert_eq!(self.recv().await, Message::Keepalive);
        self.send(Message::Keepalive).await;
    }
}

#[tokio::test(start_paused = true)]
async fn one_byte_writes_are_reassembled() {
    let (mut side, mut raw) = Raw::connect(config(1, 65001, 65002, true), 16, 4096).await;
    raw.send_bytewise(Message::Open(Raw::open(90))).await;
    assert!(matches!(raw.recv().await, Message::Open(_)));
    assert_eq!(raw.recv().await, Message::Keepalive);
    raw.send_bytewise(Message::Keepalive).await;
    side.wait_for("Established", established).await;
    raw.send_bytewise(Message::Update(update("203.0.113.0/24", 65002)))
        .await;
    let e = side
        .wait_for("UPDATE", |a| matches!(a, Action::UpdateReceived(_)))
        .await;
    assert_eq!(
        e.action,
        Action::UpdateReceived(update("203.0.113.0/24", 65002))
    );
}

#[tokio::test(start_paused = true)]
async fn garbage_after_a_valid_message_gets_connection_not_synchronized() {
    let (mut side, mut raw) = Raw::connect(config(1, 65001, 65002, true), 16, 4096).await;
    raw.handshake(90).await;
    side.wait_for("Established", established).await;
    let mut bytes = raw.bytes(Message::Keepalive);
    bytes.extend_from_slice(&[0u8; 19]);
    raw.s.write_all(&bytes).await.unwrap();
    // The keepalive is fine; the bad marker after it is not (RFC 4271 §6.1).
    let m = raw.recv().await;
    let Message::Notification(n) = m else {
        panic!("{m:?}")
    };
    assert_eq!((n.code, n.subcode), (code::MESSAGE_HEADER, 1));
    let e = side.wait_for("SessionDown", session_down).await;
    assert_eq!(
        e.action.clone(),
        Action::SessionDown(DownReason::NotificationSent(n))
    );
}

#[tokio::test(start_paused = true)]
async fn a_bad_length_gets_its_notification_with_the_length() {
    let (mut side, mut raw) = Raw::connect(config(1, 65001, 65002, true), 16, 4096).await;
    raw.handshake(90).await;
    side.wait_for("Established", established).await;
    let mut bytes = vec![0xff; 16];
    bytes.extend_from_slice(&[0x20, 0x00, 2]); // 8192 > 4096
    raw.s.write_all(&bytes).await.unwrap();
    let m = raw.recv().await;
    let Message::Notification(n) = m else {
        panic!("{m:?}")
    };
    assert_eq!((n.code, n.subcode, &n.data[..]), (1, 2, &[0x20, 0x00][..]));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_reader_bounds_the_writer_and_the_send_hold_timer_fires() {
    let mut cfg = config(1, 65001, 65002, true);
    cfg.session.hold_time = 30;
    cfg.session.send_hold_time = Some(Duration::from_secs(60));
    cfg.write_watermark = 16 * 1024;
    let pipe = 8 * 1024;
    let (mut side, mut raw) = Raw::connect(cfg, 16, pipe).await;
    for i in 0..5000u32 {
        let p = format!("10.{}.{}.0/24", (i >> 8) & 0xff, i & 0xff);
        side.queue.lock().unwrap().push(update(&p, 65001));
    }
    raw.handshake(30).await;
    side.wait_for("Established", established).await;
    side.outbox.notify();
    // The test stops reading; it keeps sending keepalives so its own hold timer holds.
    let mut down = None;
    for _ in 0..60 {
        raw.send(Message::Keepalive).await;
        let ev = tokio::time::timeout(Duration::from_secs(5), side.events.recv()).await;
        if let Ok(Some(e)) = ev {
            if session_down(&e.action) {
                down = Some(e);
                break;
            }
        }
        // Memory stays bounded: only a watermark's worth left the outbox.
        let drained = side.queue.lock().unwrap().drained();
        assert!(
            drained < 1000,
            "{drained} messages drained past the watermark"
        );
    }
    let e = down.expect("the send hold timer took the session down");
    assert_eq!(
        e.action,
        Action::SessionDown(DownReason::SendHoldTimerExpired)
    );
    assert!(e.at >= Time::from_secs(60), "{:?}", e.at);
    let left = side.queue.lock().unwrap().len();
    assert!(left > 4000, "{left}");
}

#[tokio::test(start_paused = true)]
async fn a_full_event_channel_stops_reading() {
    let (mut side, mut raw) = Raw::connect(config(1, 65001, 65002, true), 2, 1024).await;
    raw.handshake(90).await;
    side.wait_for("Established", established).await;
    let mut all = Vec::new();
    for i in 0..200u32 {
        let p = format!("10.0.{i}.0/24");
        all.extend(raw.bytes(Message::Update(update(&p, 65002))));
    }
    // The core does not read: the peer task stops reading, and the pipe fills up.
    let Raw { s: mut stream, .. } = raw;
    let writer = tokio::spawn(async move {
        stream.write_all(&all).await.unwrap();
        stream
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        !writer.is_finished(),
        "the writer should have been pushed back"
    );
    // The core catches up: everything arrives.
    let mut n = 0;
    tokio::time::timeout(WAIT, async {
        while n < 200 {
            let e = side.events.recv().await.expect("events");
            if matches!(e.action, Action::UpdateReceived(_)) {
                n += 1;
            }
        }
    })
    .await
    .expect("all updates after the core caught up");
    let _stream = writer.await.unwrap();
}

/// A connector that refuses and counts.
struct Refusing {
    attempts: Arc<Mutex<Vec<Instant>>>,
}

impl Connector for Refusing {
    fn connect(&self, _peer: &PeerId, _o: &SocketOptions) -> ConnectFuture {
        self.attempts.lock().unwrap().push(Instant::now());
        Box::pin(async { Err(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()) })
    }
}

#[tokio::test(start_paused = true)]
async fn refused_connections_are_retried_every_connect_retry_time() {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let c = Refusing {
        attempts: attempts.clone(),
    };
    let mut cfg = config(1, 65001, 65002, false);
    cfg.session.connect_retry_time = Duration::from_secs(10);
    let side = spawn_side(PeerId::new(B), cfg, Arc::new(c), 4);
    tokio::time::sleep(Duration::from_secs(45)).await;
    let status = side.handle.status().borrow().clone();
    assert_eq!(status.state, "Connect");
    assert!(status.last_connect_error.is_some());
    let t = attempts.lock().unwrap().clone();
    assert!((4..=7).contains(&t.len()), "{} attempts", t.len());
    for w in t.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(7500) && gap <= Duration::from_secs(10),
            "{gap:?}"
        );
    }
    drop(side);
}

// --- TCP on loopback (real time, every wait bounded) ---

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const REAL_WAIT: Duration = Duration::from_secs(10);

async fn real_wait_for(side: &mut Side, pred: impl Fn(&Action) -> bool) -> PeerEvent {
    tokio::time::timeout(REAL_WAIT, async {
        loop {
            let e = side.events.recv().await.expect("events");
            if pred(&e.action) {
                return e;
            }
        }
    })
    .await
    .expect("event in time")
}

#[tokio::test]
async fn tcp_listener_accepts_a_configured_peer() {
    let l = listener::bind_tcp(SocketAddr::new(LOOPBACK, 0), &[]).unwrap();
    let port = l.local_addr().unwrap().port();
    // The passive side knows its peer as 127.0.0.1 (the address connections come from).
    let mut passive = spawn_side(
        PeerId::new(LOOPBACK),
        config(2, 65002, 65001, true),
        Arc::new(TcpConnector),
        16,
    );
    let d = Dispatcher::new();
    d.register(
        passive.handle.id(),
        passive.handle.commands(),
        SocketOptions::default(),
    );
    listener::spawn_tcp_listener(l, d);
    let mut active = spawn_side(
        PeerId::new(LOOPBACK).with_port(port),
        config(1, 65001, 65002, false),
        Arc::new(TcpConnector),
        16,
    );
    real_wait_for(&mut active, established).await;
    real_wait_for(&mut passive, established).await;
    active.push(update("192.0.2.0/24", 65001));
    real_wait_for(&mut passive, |a| matches!(a, Action::UpdateReceived(_))).await;
}

#[tokio::test]
async fn tcp_listener_refuses_an_unconfigured_address() {
    let l = listener::bind_tcp(SocketAddr::new(LOOPBACK, 0), &[]).unwrap();
    let at = l.local_addr().unwrap();
    let d = Dispatcher::new();
    let (tx, _rx) = mpsc::channel(1);
    d.register(
        &PeerId::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))),
        tx,
        SocketOptions::default(),
    );
    listener::spawn_tcp_listener(l, d);
    let mut s = tokio::net::TcpStream::connect(at).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(REAL_WAIT, s.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

/// Counts connection attempts of the TCP connector.
struct Counting {
    attempts: mpsc::UnboundedSender<Instant>,
}

impl Connector for Counting {
    fn connect(&self, peer: &PeerId, o: &SocketOptions) -> ConnectFuture {
        let _ = self.attempts.send(Instant::now());
        TcpConnector.connect(peer, o)
    }
}

#[tokio::test]
async fn tcp_connect_is_retried_after_refusal() {
    // A port with nobody listening.
    let port = {
        let l = std::net::TcpListener::bind((LOOPBACK, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let (tx, mut attempts) = mpsc::unbounded_channel();
    let mut cfg = config(1, 65001, 65002, false);
    cfg.session.connect_retry_time = Duration::from_millis(200);
    let side = spawn_side(
        PeerId::new(LOOPBACK).with_port(port),
        cfg,
        Arc::new(Counting { attempts: tx }),
        4,
    );
    let mut times = Vec::new();
    tokio::time::timeout(REAL_WAIT, async {
        while times.len() < 3 {
            times.push(attempts.recv().await.expect("attempts"));
        }
    })
    .await
    .expect("three attempts");
    // Each retry at least 3/4 of the connect retry time after the one before.
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(150),
            "{:?}",
            w[1] - w[0]
        );
    }
    drop(side);
}

#[tokio::test(start_paused = true)]
async fn soft_reset_in_asks_the_peer_for_a_route_refresh() {
    let (mut a, mut b) = default_pair();
    a.wait_for("Established", established).await;
    b.wait_for("Established", established).await;
    a.handle.send(PeerCommand::SoftResetIn(None)).await.unwrap();
    let e = b
        .wait_for("RouteRefreshRequested", |a| {
            matches!(a, Action::RouteRefreshRequested(_))
        })
        .await;
    assert_eq!(
        e.action,
        Action::RouteRefreshRequested(AfiSafi::IPV4_UNICAST)
    );
}

/// Both sides active and listening: they connect to each other at the same moment.
fn colliding_pair() -> (Side, Side) {
    let net = MemoryNetwork::new(16 * 1024);
    let mut sides = Vec::new();
    for (me, them, id, asn, peer_asn) in [(A, B, 1, 65001, 65002), (B, A, 2, 65002, 65001)] {
        let listener = net.listen(SocketAddr::new(me, BGP_PORT), 4);
        let side = spawn_side(
            PeerId::new(them),
            config(id, asn, peer_asn, false),
            Arc::new(net.connector(me)),
            64,
        );
        let d = Dispatcher::new();
        d.register(
            side.handle.id(),
            side.handle.commands(),
            SocketOptions::default(),
        );
        listener::spawn_memory_listener(listener, d);
        sides.push(side);
    }
    let b = sides.pop().unwrap();
    let a = sides.pop().unwrap();
    (a, b)
}

#[tokio::test(start_paused = true)]
async fn a_connection_collision_leaves_one_session() {
    let (mut a, mut b) = colliding_pair();
    a.wait_for("Established at A", established).await;
    b.wait_for("Established at B", established).await;
    // One session survives and stays: no SessionDown, no second Established.
    tokio::time::sleep(Duration::from_secs(300)).await;
    for side in [&mut a, &mut b] {
        let events = side.drain();
        assert!(
            !events.iter().any(|e| session_down(e) || established(e)),
            "{events:?}"
        );
    }
    a.push(update("198.51.100.0/24", 65001));
    b.wait_for("UPDATE", |a| matches!(a, Action::UpdateReceived(_)))
        .await;
}

/// A session established with a raw peer that advertised graceful restart, and a second
/// connection from the peer's address handed to the task: (task, first connection, second
/// connection, the peer's OPEN).
async fn established_gr_with_second_connection() -> (Side, Raw, Raw, Open) {
    let (mut side, mut raw) = Raw::connect(config(1, 65001, 65002, true), 16, 4096).await;
    let gr = bgp_wire::capability::GracefulRestart {
        flags: 0,
        restart_time: 120,
        families: vec![bgp_wire::capability::GracefulRestartFamily::new(
            AfiSafi::IPV4_UNICAST,
            true,
        )],
    };
    let mut open = Raw::open(90);
    open.capabilities.push(Capability::GracefulRestart(gr));
    raw.send(Message::Open(open.clone())).await;
    assert!(matches!(raw.recv().await, Message::Open(_)));
    assert_eq!(raw.recv().await, Message::Keepalive);
    raw.send(Message::Keepalive).await;
    side.wait_for("Established", established).await;
    let (ours, theirs) = tokio::io::duplex(4096);
    side.handle
        .send(PeerCommand::Accepted {
            stream: Box::new(theirs),
            remote: SocketAddr::new(B, 40001),
        })
        .await
        .unwrap();
    let raw2 = Raw {
        s: ours,
        buf: BytesMut::new(),
        ctx: Context::default(),
    };
    (side, raw, raw2, open)
}

#[tokio::test(start_paused = true)]
async fn a_new_connection_while_established_is_a_restarted_peer() {
    let (mut side, raw, mut raw2, open) = established_gr_with_second_connection().await;
    // The peer restarts and connects again; the old connection is silently dead.
    let before = Clock::new();
    raw2.send(Message::Open(open)).await;
    assert!(matches!(raw2.recv().await, Message::Open(_)));
    // The OPEN on the new connection shows the restart: the old session's routes are kept.
    let e = side
        .wait_for("RetainStale", |a| matches!(a, Action::RetainStale(_)))
        .await;
    assert_eq!(e.action, Action::RetainStale(AfiSafi::IPV4_UNICAST));
    assert!(
        before.now() < Time::from_secs(1),
        "at once, not by the hold timer"
    );
    let e = side.wait_for("SessionDown", session_down).await;
    assert_eq!(e.action, Action::SessionDown(DownReason::TcpError));
    assert_eq!(raw2.recv().await, Message::Keepalive);
    raw2.send(Message::Keepalive).await;
    side.wait_for("Established again", established).await;
    drop(raw);
}

/// RFC 4271 §6.2 on a second connection: an OPEN that fails the checks (here a wrong peer
/// AS) gets its NOTIFICATION there, and the established session is left alone, graceful
/// restart or not.
#[tokio::test(start_paused = true)]
async fn a_bad_open_on_a_second_connection_gets_its_notification_and_changes_nothing() {
    let (mut side, mut raw, mut raw2, open) = established_gr_with_second_connection().await;
    let mut bad = open;
    bad.my_as = 65099;
    bad.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    raw2.send(Message::Open(bad)).await;
    assert!(matches!(raw2.recv().await, Message::Open(_)));
    match raw2.recv().await {
        Message::Notification(n) => assert_eq!(
            (n.code, n.subcode),
            (
                bgp_wire::notification::code::OPEN_MESSAGE,
                bgp_wire::notification::open_subcode::BAD_PEER_AS
            )
        ),
        m => panic!("expected a NOTIFICATION, got {m:?}"),
    }
    // The first session stays: it keeps answering keepalives, and nothing went down.
    tokio::time::sleep(Duration::from_secs(60)).await;
    raw.send(Message::Keepalive).await;
    assert_eq!(raw.recv().await, Message::Keepalive);
    while let Ok(e) = side.events.try_recv() {
        assert!(!session_down(&e.action), "{e:?}");
        assert!(!matches!(e.action, Action::RetainStale(_)), "{e:?}");
    }
}

#[tokio::test]
async fn tcp_md5_sessions_need_the_right_password() {
    let probe = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if crate::sockopt::set_md5(&probe, LOOPBACK, Some(b"probe")).is_err() {
        println!("skipped: this kernel refuses TCP_MD5SIG");
        return;
    }
    let secret = crate::config::Secret::new("s3cret");
    let l =
        listener::bind_tcp(SocketAddr::new(LOOPBACK, 0), &[(LOOPBACK, secret.clone())]).unwrap();
    let port = l.local_addr().unwrap().port();
    let with = |pw: Option<&str>| SocketOptions {
        password: pw.map(crate::config::Secret::new),
        ..SocketOptions::default()
    };
    let mut passive = spawn_side(
        PeerId::new(LOOPBACK),
        config(2, 65002, 65001, true),
        Arc::new(TcpConnector),
        16,
    );
    let d = Dispatcher::new();
    d.register(
        passive.handle.id(),
        passive.handle.commands(),
        with(Some("s3cret")),
    );
    listener::spawn_tcp_listener(l, d);

    // A wrong password: no connection, so no session, for a while.
    let mut wrong_cfg = config(3, 65001, 65002, false);
    wrong_cfg.socket = with(Some("wrong"));
    let mut wrong = spawn_side(
        PeerId::new(LOOPBACK).with_port(port),
        wrong_cfg,
        Arc::new(TcpConnector),
        16,
    );
    let none = tokio::time::timeout(Duration::from_millis(1500), wrong.events.recv()).await;
    assert!(none.is_err(), "{none:?}");
    drop(wrong);

    let mut right_cfg = config(1, 65001, 65002, false);
    right_cfg.socket = with(Some("s3cret"));
    let mut active = spawn_side(
        PeerId::new(LOOPBACK).with_port(port),
        right_cfg,
        Arc::new(TcpConnector),
        16,
    );
    real_wait_for(&mut active, established).await;
    real_wait_for(&mut passive, established).await;
}

#[tokio::test(start_paused = true)]
async fn a_second_connection_while_established_without_gr_is_refused() {
    let (mut side, mut raw) = Raw::connect(config(1, 65001, 65002, true), 16, 4096).await;
    raw.handshake(90).await;
    side.wait_for("Established", established).await;
    let (mut ours, theirs) = tokio::io::duplex(4096);
    side.handle
        .send(PeerCommand::Accepted {
            stream: Box::new(theirs),
            remote: SocketAddr::new(B, 40001),
        })
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(WAIT, ours.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0)), "{n:?}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    raw.send(Message::Keepalive).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(side.drain().is_empty());
}

#[tokio::test(start_paused = true)]
async fn flapping_leaves_no_tasks_behind() {
    let (mut a, mut b) = default_pair();
    a.wait_for("Established", established).await;
    b.wait_for("Established", established).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    for _ in 0..30 {
        a.handle.send(PeerCommand::HardReset).await.unwrap();
        b.wait_for("SessionDown", session_down).await;
        a.wait_for("Established again", established).await;
        b.wait_for("Established again", established).await;
    }
    // Closed connections finish flushing within the linger time.
    tokio::time::sleep(PeerConfig::default().close_linger * 2).await;
    assert_eq!(metrics.num_alive_tasks(), baseline);
    assert_eq!(b.handle.status().borrow().flaps, 30);
}

/// Counts `warn` events (a minimal subscriber; the workspace has no tracing-subscriber).
struct WarnCounter(Arc<AtomicUsize>);

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        if *e.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, AtomicOrdering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Refuses with one error for the first `switch_after` attempts, then with another.
struct Changing {
    attempts: Arc<AtomicUsize>,
    switch_after: usize,
}

impl Connector for Changing {
    fn connect(&self, _peer: &PeerId, _o: &SocketOptions) -> ConnectFuture {
        let n = self.attempts.fetch_add(1, AtomicOrdering::SeqCst);
        let kind = if n < self.switch_after {
            std::io::ErrorKind::ConnectionRefused
        } else {
            std::io::ErrorKind::HostUnreachable
        };
        Box::pin(async move { Err(std::io::Error::from(kind).into()) })
    }
}

#[test]
fn a_refusing_peer_is_logged_once_per_distinct_error() {
    let warns = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(WarnCounter(warns.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let mut cfg = config(1, 65001, 65002, false);
        cfg.session.connect_retry_time = Duration::from_secs(10);
        let c = Changing {
            attempts: attempts.clone(),
            switch_after: 5,
        };
        let side = spawn_side(PeerId::new(B), cfg, Arc::new(c), 4);
        tokio::time::sleep(Duration::from_secs(100)).await;
        drop(side);
    });
    assert!(attempts.load(AtomicOrdering::SeqCst) >= 9);
    assert_eq!(warns.load(AtomicOrdering::SeqCst), 2);
}
