//! Our side of an interop session.
//!
//! The scenarios talk to our side only through [`OurSide`]: announce routes, say the initial
//! routes are in, wait for session events, look at the status. Today it is [`PeerTaskSide`]:
//! one peer task ([`bgp_speaker::spawn_peer`]) over TCP with an outbox that packs the
//! announced routes with `bgp_wire::pack_announce`. When the full speaker API lands, a
//! `SpeakerSide` implementing the same trait (routes through the RIB, events from the
//! speaker's handle) lets the same scenarios run against it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgp_fsm::{Action, SessionConfig};
use bgp_speaker::config::Secret;
use bgp_speaker::peer::PeerStatus;
use bgp_speaker::sockopt::SocketOptions;
use bgp_speaker::transport::ConnectFuture;
use bgp_speaker::{
    Clock, Connector, Dispatcher, Event, GlobalSettings, Outbox, OutboxHandle, PeerCommand,
    PeerConfig, PeerContext, PeerEvent, PeerHandle, PeerId, Route, ShutdownOptions, Speaker,
    SpeakerError, SpeakerHandle, TcpConnector, listener, spawn_peer,
};
use bgp_testkit::daemons::{DaemonRoute, RouteSpec};
use bgp_wire::{AfiSafi, Asn, Context, pack_announce};
use bytes::BytesMut;
use ipnet::IpNet;
use tokio::sync::mpsc;

/// What a scenario needs from our side.
pub(crate) trait OurSide {
    /// Queues routes for the peer (sent as soon as the session is up, or at once).
    fn announce(&mut self, routes: &[RouteSpec]);
    /// Our initial routes are in: End-of-RIB may go (RFC 4724 §4.1).
    fn initial_routes_done(&mut self);
    /// Waits (bounded) for an event matching `pred`, looking first at the events not yet
    /// offered to a `wait_for`; every event is kept in the history.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: &mut dyn FnMut(&Action) -> bool,
    ) -> Result<PeerEvent, String>;
    /// Every event seen so far, in order.
    fn history(&mut self) -> Vec<PeerEvent>;
    /// The session's status.
    fn status(&self) -> PeerStatus;
}

/// Settings of our side.
#[derive(Clone, Debug)]
pub(crate) struct OurConfig {
    /// Our address.
    pub(crate) addr: Ipv4Addr,
    /// Our AS.
    pub(crate) asn: u32,
    /// The daemon's address and port.
    pub(crate) peer: SocketAddr,
    /// The daemon's AS.
    pub(crate) peer_asn: u32,
    /// Hold time we propose.
    pub(crate) hold_time: u16,
    /// TCP MD5 password.
    pub(crate) password: Option<String>,
    /// Also listen on our address (for daemons that connect).
    pub(crate) listen: bool,
    /// Never connect; wait for the daemon (PassiveTcpEstablishment, RFC 4271 §8.1.1).
    pub(crate) passive: bool,
    /// Give up a connection attempt that gets no answer after this long, as an error (so
    /// that the status says why); `None`: the ConnectRetry timer drops it silently.
    pub(crate) connect_timeout: Option<Duration>,
}

impl OurConfig {
    /// The session configuration: IPv4 and IPv6 unicast, GR on, short retry timers.
    pub(crate) fn peer_config(&self) -> PeerConfig {
        PeerConfig {
            session: SessionConfig {
                local_asn: Asn(self.asn),
                peer_asn: Some(Asn(self.peer_asn)),
                bgp_id: self.addr,
                hold_time: self.hold_time,
                passive: self.passive,
                connect_retry_time: Duration::from_secs(2),
                idle_hold_time: Duration::from_secs(1),
                damp_peer_oscillations: false,
                families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
                ..SessionConfig::default()
            },
            socket: SocketOptions {
                password: self.password.clone().map(Secret::new),
                local_address: Some(IpAddr::V4(self.addr)),
                ..SocketOptions::default()
            },
            ..PeerConfig::default()
        }
    }
}

/// Routes waiting to go out, packed with the session's negotiated context when drained.
#[derive(Debug, Default)]
pub(crate) struct AnnounceOutbox {
    routes: Vec<(RouteSpec, u32, bool)>,
}

impl Outbox for AnnounceOutbox {
    fn drain(&mut self, ctx: &Context, out: &mut BytesMut, budget: usize) -> usize {
        let start = out.len();
        let mut n = 0;
        while out.len() - start < budget && !self.routes.is_empty() {
            let (r, asn, ibgp) = self.routes.remove(0);
            let attrs = r.path_attributes(asn, ibgp);
            let nh = r.wire_next_hop();
            let nh = (r.family() != AfiSafi::IPV4_UNICAST).then_some(&nh);
            match pack_announce(ctx, &attrs, r.family(), nh, [r.prefix.into()], out) {
                Ok(k) => n += k,
                Err(e) => panic!("pack_announce {}: {e}", r.prefix),
            }
        }
        n
    }
}

/// [`TcpConnector`] with a bound: an attempt without an answer fails with `TimedOut`.
///
/// A SYN with a wrong (or missing) TCP MD5 signature is dropped by the peer's kernel
/// (RFC 2385 §2.0), so the attempt neither succeeds nor fails; the peer task's status would
/// say nothing. This makes it say "no answer".
struct TimeoutConnector(Duration);

impl Connector for TimeoutConnector {
    fn connect(&self, peer: &PeerId, options: &SocketOptions) -> ConnectFuture {
        let t = self.0;
        let attempt = TcpConnector.connect(peer, options);
        Box::pin(async move {
            match tokio::time::timeout(t, attempt).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no answer to our SYN within {t:?} (TCP MD5 mismatch, filter, or peer down)"
                    ),
                )
                .into()),
            }
        })
    }
}

/// Our side as one peer task over TCP, on a runtime of its own (one worker thread), so that
/// the test thread may block on the daemon's CLI while the session keeps running.
pub(crate) struct PeerTaskSide {
    cfg: OurConfig,
    rt: tokio::runtime::Runtime,
    handle: Option<PeerHandle>,
    events: mpsc::Receiver<PeerEvent>,
    outbox: OutboxHandle,
    queue: Arc<Mutex<AnnounceOutbox>>,
    seen: Vec<PeerEvent>,
    /// `seen[..cursor]` were offered to a `wait_for` predicate already.
    cursor: usize,
}

impl PeerTaskSide {
    /// Spawns the peer task; it connects to the daemon (and, with `listen`, accepts).
    pub(crate) fn start(cfg: OurConfig) -> PeerTaskSide {
        Self::start_with(cfg.clone(), cfg.peer_config())
    }

    /// Spawns the peer task with a hand-made configuration.
    pub(crate) fn start_with(cfg: OurConfig, peer_cfg: PeerConfig) -> PeerTaskSide {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, events) = mpsc::channel(1024);
        let queue = Arc::new(Mutex::new(AnnounceOutbox::default()));
        let outbox = OutboxHandle::new(queue.clone());
        let id = PeerId::new(cfg.peer.ip()).with_port(cfg.peer.port());
        let handle = rt.block_on(async {
            let ctx = PeerContext {
                clock: Clock::new(),
                connector: match cfg.connect_timeout {
                    Some(t) => Arc::new(TimeoutConnector(t)) as Arc<dyn Connector>,
                    None => Arc::new(TcpConnector),
                },
                events: tx,
            };
            let h = spawn_peer(id, peer_cfg.clone(), ctx, outbox.clone());
            if cfg.listen {
                let keys: Vec<_> = peer_cfg
                    .socket
                    .password
                    .iter()
                    .map(|p| (cfg.peer.ip(), p.clone()))
                    .collect();
                let l =
                    listener::bind_tcp(SocketAddr::new(cfg.addr.into(), cfg.peer.port()), &keys)
                        .expect("bind our listener");
                let d = Dispatcher::new();
                d.register(h.id(), h.commands(), peer_cfg.socket.clone());
                listener::spawn_tcp_listener(l, d);
            }
            h
        });
        PeerTaskSide {
            cfg,
            rt,
            handle: Some(handle),
            events,
            outbox,
            queue,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// Sends a command to the peer task.
    pub(crate) fn command(&self, cmd: PeerCommand) {
        let h = self.handle.as_ref().expect("peer task");
        self.rt.block_on(h.send(cmd)).expect("peer task gone");
    }

    fn pull(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
    }

    /// The routes received so far: every UPDATE applied in order (announcements replace,
    /// withdrawals remove), as [`DaemonRoute`]s sorted by prefix.
    pub(crate) fn received_routes(&mut self, family: AfiSafi) -> Vec<DaemonRoute> {
        self.pull();
        let mut table = std::collections::BTreeMap::new();
        for e in &self.seen {
            match &e.action {
                Action::UpdateReceived(u) => {
                    for p in u.withdrawn_all() {
                        table.remove(&p.1.prefix);
                    }
                    for r in DaemonRoute::from_update(u) {
                        // Receiver-side loop detection (RFC 4271 §9.1.2): a route whose
                        // AS_PATH holds our AS is not ours to use; the core drops it.
                        if r.as_path.contains(&self.cfg.asn) {
                            table.remove(&r.prefix);
                        } else {
                            table.insert(r.prefix, r);
                        }
                    }
                }
                Action::SessionDown(_) => table.clear(),
                _ => {}
            }
        }
        let v6 = family == AfiSafi::IPV6_UNICAST;
        table
            .into_values()
            .filter(|r| matches!(r.prefix, ipnet::IpNet::V6(_)) == v6)
            .collect()
    }

    /// Waits (bounded) until the received routes of `family` satisfy `done`.
    pub(crate) fn wait_routes(
        &mut self,
        family: AfiSafi,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[DaemonRoute]) -> bool,
    ) -> Result<Vec<DaemonRoute>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.received_routes(family);
            if done(&r) {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timeout after {timeout:?}: our side never received {what}; received: {r:#?}\nevents: {:#?}",
                    self.brief_history()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The actions seen so far, in short form (for error messages).
    pub(crate) fn brief_history(&self) -> Vec<String> {
        self.seen
            .iter()
            .map(|e| match &e.action {
                Action::UpdateReceived(u) => format!(
                    "UpdateReceived({} announced, {} withdrawn)",
                    u.announced().count(),
                    u.withdrawn_all().count()
                ),
                Action::Established(_) => "Established".to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// How many events were seen so far (a mark for [`PeerTaskSide::withdrawn_since`]).
    pub(crate) fn mark(&mut self) -> usize {
        self.pull();
        self.seen.len()
    }

    /// Every prefix withdrawn in the UPDATEs received since `mark` (in order, repeats
    /// kept), and how many times the session went down since.
    pub(crate) fn withdrawn_since(&mut self, mark: usize) -> (Vec<IpNet>, usize) {
        self.pull();
        let mut withdrawn = Vec::new();
        let mut downs = 0;
        for e in &self.seen[mark.min(self.seen.len())..] {
            match &e.action {
                Action::UpdateReceived(u) => {
                    withdrawn.extend(u.withdrawn_all().map(|p| p.1.prefix))
                }
                Action::SessionDown(_) => downs += 1,
                _ => {}
            }
        }
        (withdrawn, downs)
    }

    /// The message counters.
    pub(crate) fn stats(&self) -> Arc<bgp_speaker::peer::PeerStats> {
        self.handle.as_ref().expect("peer task").stats()
    }
}

impl OurSide for PeerTaskSide {
    fn announce(&mut self, routes: &[RouteSpec]) {
        let ibgp = self.cfg.asn == self.cfg.peer_asn;
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.routes
            .extend(routes.iter().map(|r| (r.clone(), self.cfg.asn, ibgp)));
        drop(q);
        self.outbox.notify();
    }

    fn initial_routes_done(&mut self) {
        self.command(PeerCommand::InitialRoutesSent(None));
    }

    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: &mut dyn FnMut(&Action) -> bool,
    ) -> Result<PeerEvent, String> {
        while self.cursor < self.seen.len() {
            let e = &self.seen[self.cursor];
            self.cursor += 1;
            if pred(&e.action) {
                return Ok(e.clone());
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let events = &mut self.events;
            let next = self
                .rt
                .block_on(async { tokio::time::timeout(left, events.recv()).await });
            match next {
                Ok(Some(e)) => {
                    self.seen.push(e.clone());
                    self.cursor = self.seen.len();
                    if pred(&e.action) {
                        return Ok(e);
                    }
                }
                Ok(None) => return Err(format!("event channel closed while waiting for {what}")),
                Err(_) => {
                    return Err(format!(
                        "timeout after {timeout:?}: our side never saw {what}; status {:?}; events: {:#?}",
                        self.status(),
                        self.brief_history()
                    ));
                }
            }
        }
    }

    fn history(&mut self) -> Vec<PeerEvent> {
        self.pull();
        self.seen.clone()
    }

    fn status(&self) -> PeerStatus {
        self.handle
            .as_ref()
            .map(|h| h.status().borrow().clone())
            .unwrap_or_default()
    }
}

impl Drop for PeerTaskSide {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            // Stop (Cease) and let the task end; bounded.
            let _ = self.rt.block_on(async {
                let _ = h.send(PeerCommand::Stop).await;
                tokio::time::timeout(Duration::from_secs(3), h.join()).await
            });
        }
    }
}

/// Our side as the full speaker ([`Speaker`]: routes through the RIB, graceful restart from
/// the restart-state file), on a runtime of its own (one worker thread). Its events are
/// collected by a task as they come, each with the instant it arrived, so that a test can
/// measure when something happened while it was blocked on a daemon's CLI.
pub(crate) struct SpeakerSide {
    rt: Option<tokio::runtime::Runtime>,
    handle: SpeakerHandle,
    events: Arc<Mutex<Vec<(Instant, Event)>>>,
    /// `events[..cursor]` were offered to a `wait_event` predicate already.
    cursor: usize,
}

impl SpeakerSide {
    /// Starts a speaker with `settings`.
    pub(crate) fn start(settings: GlobalSettings) -> SpeakerSide {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let handle = rt.block_on(async {
            let (h, mut stream) = Speaker::start(settings).await.expect("speaker starts");
            tokio::spawn(async move {
                while let Some(e) = stream.recv().await {
                    let mut v = sink.lock().unwrap_or_else(|e| e.into_inner());
                    v.push((Instant::now(), e));
                }
            });
            h
        });
        SpeakerSide {
            rt: Some(rt),
            handle,
            events,
            cursor: 0,
        }
    }

    /// Runs a handle call to completion.
    pub(crate) fn call<T, F>(&self, f: impl FnOnce(SpeakerHandle) -> F) -> T
    where
        F: std::future::Future<Output = Result<T, SpeakerError>>,
    {
        let rt = self.rt.as_ref().expect("runtime");
        let h = self.handle.clone();
        match rt.block_on(async move { tokio::time::timeout(Duration::from_secs(30), f(h)).await })
        {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => panic!("speaker call failed: {e}"),
            Err(_) => panic!("speaker call did not return within 30 s"),
        }
    }

    /// Every event so far, with the instant it arrived.
    pub(crate) fn events(&self) -> Vec<(Instant, Event)> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits (bounded) for an event matching `pred`, looking first at the events not yet
    /// offered to a `wait_event`.
    pub(crate) fn wait_event(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Result<(Instant, Event), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.events();
            while self.cursor < all.len() {
                let (at, e) = &all[self.cursor];
                self.cursor += 1;
                if pred(e) {
                    return Ok((*at, e.clone()));
                }
            }
            if Instant::now() >= deadline {
                let shown: Vec<String> = all.iter().map(|(_, e)| e.to_string()).collect();
                return Err(format!(
                    "timeout after {timeout:?}: our speaker never saw {what}; events: {shown:#?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the speaker's Loc-RIB satisfies `done`; returns it.
    pub(crate) fn wait_rib(
        &self,
        what: &str,
        timeout: Duration,
        poll: Duration,
        mut done: impl FnMut(&[(AfiSafi, IpNet, Route)]) -> bool,
    ) -> Result<Vec<(AfiSafi, IpNet, Route)>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.call(|h| async move { h.routes().await });
            if done(&r) {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timeout after {timeout:?}: our speaker's Loc-RIB never showed {what}; it holds {} routes",
                    r.len()
                ));
            }
            std::thread::sleep(poll);
        }
    }

    /// Stops for restart (RFC 4724 §4.1: the restart-state file is written, the sessions
    /// close without a Hard Reset) and lets the runtime go, as a process that exits would.
    pub(crate) fn stop_for_restart(mut self) {
        self.call(|h| async move { h.stop_for_restart().await });
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(3));
        }
    }
}

impl Drop for SpeakerSide {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            let h = self.handle.clone();
            // Stop for good (Cease); bounded. A speaker stopped already answers Stopped.
            let _ = rt.block_on(async move {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    h.shutdown(ShutdownOptions::default()),
                )
                .await
            });
            rt.shutdown_timeout(Duration::from_secs(3));
        }
    }
}
