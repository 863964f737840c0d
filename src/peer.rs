//! The peer task: one tokio task per configured peer that drives its [`Session`] over a
//! [`Transport`](crate::Transport) (STYLE 13).
//!
//! The task owns the connection, the session and the read buffer. It frames with
//! [`bgp_wire::split_message`] (the header is checked before the body is awaited), decodes
//! with the session's context, keeps one sleep until [`Session::poll_timeout`], and carries out
//! the session's actions:
//! - `Connect` through the [`Connector`], `Send` into the write buffer, `CloseConnection`;
//! - the route-affecting actions go to the speaker's core as [`PeerEvent`]s over a bounded
//!   channel. When that channel is full the task stops reading, so TCP pushes back on the
//!   peer; nothing queues without bound.
//!
//! Outgoing routes are pulled, not pushed: while Established and while its write buffer is
//! below [`PeerConfig::write_watermark`], the task drains the peer's [`Outbox`] (the core's
//! Adj-RIB-Out). A slow peer therefore costs Adj-RIB-Out entries, never a growing queue.
//!
//! Choices made here:
//! - A failed connection attempt is not reported to the session as TcpConnectionFails: the
//!   session stays in Connect and its ConnectRetry timer drives the next attempt, so a peer that
//!   refuses connections is retried every ConnectRetryTime. The first failure, and each
//!   failure whose error differs from the last one, is logged at `warn`; repeats are `debug`.
//! - Connection collisions (RFC 4271 §6.8) are resolved here: a connection accepted while
//!   the session is in OpenSent or OpenConfirm is held aside, our OPEN is sent on it and the
//!   peer's OPEN read; then [`collision_keeps_local_connection`] picks the survivor, and the
//!   loser is closed with Cease/Connection Collision Resolution. A connection accepted while
//!   Established is refused, unless graceful restart was negotiated: then, once its OPEN
//!   arrives, the peer has restarted (RFC 4724 §4.2): the old session is treated as a TCP
//!   failure (its routes kept stale) and the new connection carries on.
//! - Stop for restart closes without NOTIFICATION, or with a Cease that is not a Hard Reset
//!   (Administrative Reset) when the N bit was negotiated (RFC 8538 §3), so that a helper
//!   keeps our routes; then the task ends.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bgp_fsm::{
    Action, DownReason, Input, Negotiated, Session, SessionConfig, SessionImage, State, Time,
    collision_keeps_local_connection,
};
use bgp_wire::context::HEADER_LEN;
use bgp_wire::notification::cease_subcode;
use bgp_wire::{
    AfiSafi, AfiSafiSet, Context, Message, MessageType, Notification, Open, split_message,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::clock::Clock;
use crate::sockopt::SocketOptions;
use crate::transport::{BoxTransport, ConnectError, ConnectFuture, Connector, tcp_socket};

/// The BGP port (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;

/// Identifies a peer: its address, port and, for link-local addresses, the interface.
/// Never its AS.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId {
    /// The peer's address.
    pub addr: IpAddr,
    /// The peer's port (179 unless configured).
    pub port: u16,
    /// The interface, for link-local addresses or `SO_BINDTODEVICE`.
    pub interface: Option<String>,
}

impl PeerId {
    /// A peer on the BGP port.
    pub fn new(addr: IpAddr) -> Self {
        PeerId {
            addr,
            port: BGP_PORT,
            interface: None,
        }
    }

    /// The same peer on another port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The address to connect to.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.interface, self.port) {
            (None, BGP_PORT) => write!(f, "{}", self.addr),
            (None, p) => write!(f, "{}", SocketAddr::new(self.addr, p)),
            (Some(i), BGP_PORT) => write!(f, "{}%{i}", self.addr),
            (Some(i), p) => write!(f, "{}%{i} port {p}", self.addr),
        }
    }
}

/// What a peer task tells the core: one route-affecting [`Action`] of the session, with the
/// peer and the time.
///
/// The actions sent are `Established`, `UpdateReceived`, `EndOfRib`, `RetainStale`,
/// `PurgeStale`, `MarkLlgrStale`, `RouteRefreshRequested` and `SessionDown`, in the order the
/// session produced them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerEvent {
    /// The peer.
    pub peer: PeerId,
    /// When the session produced the action.
    pub at: Time,
    /// The action.
    pub action: Action,
}

/// Commands to a peer task (over its bounded command channel).
pub enum PeerCommand {
    /// ManualStart.
    Start,
    /// ManualStop: Cease/Administrative Shutdown (inside a Hard Reset with the N bit); the
    /// peer drops our routes.
    Stop,
    /// Stop so that a graceful-restart helper keeps our routes: close without NOTIFICATION,
    /// or with Cease/Administrative Reset (not a Hard Reset) when the N bit was negotiated.
    /// The task ends afterwards.
    StopForRestart,
    /// Administrative reset whose routes must go (Hard Reset with the N bit); the session
    /// restarts by itself.
    HardReset,
    /// Soft reset in: ask the peer to re-send a family, or every negotiated one (RFC 2918).
    SoftResetIn(Option<AfiSafi>),
    /// Our re-advertisement after the peer's route refresh request is done (RFC 7313 EoRR).
    RefreshDone(AfiSafi),
    /// New configuration: the session is reset with Cease/Other Configuration Change.
    ConfigChanged(Box<PeerConfig>),
    /// An external liveness check (BFD, say) says the peer is gone. With `keep_routes` the
    /// connection is dropped as a TCP failure (graceful restart keeps the routes when it was
    /// negotiated); without, as a hard reset (routes purged).
    LivenessDown {
        /// Treat as a transport failure so that graceful restart applies.
        keep_routes: bool,
    },
    /// The embedder's initial routes for a family (`None`: all) are in: End-of-RIB may go.
    InitialRoutesSent(Option<AfiSafi>),
    /// Our restart state for the next OPEN (R bit, F bits) (RFC 4724 §3).
    RestartState {
        /// We restarted.
        restarting: bool,
        /// Families whose forwarding state was preserved.
        forwarding: AfiSafiSet,
    },
    /// The peer went over a prefix limit: stop the session (Cease/Maximum Number of
    /// Prefixes Reached), and start again after `restart_after` if set.
    PrefixLimitExceeded {
        /// The family.
        family: AfiSafi,
        /// The limit.
        limit: u32,
        /// Start again after this long.
        restart_after: Option<Duration>,
    },
    /// A connection from the peer, accepted by a listener.
    Accepted {
        /// The stream.
        stream: BoxTransport,
        /// Where it came from.
        remote: SocketAddr,
    },
    /// Hand-over, step 1: stop reading, processing and timers (writing goes on); the reply
    /// comes once every event the task produced is in the core's channel.
    Quiesce(oneshot::Sender<()>),
    /// Hand-over, step 2 (after [`PeerCommand::Quiesce`]): write everything the outbox owes
    /// into the write buffer, stop writing, and reply with the session's state.
    Freeze(oneshot::Sender<Frozen>),
    /// Hand-over failed: carry on where the task stopped.
    Resume,
    /// Hand-over done: let go of the connection without closing it for the peer (another
    /// process holds it now) and end, without a word to the peer or to the core.
    Release,
}

/// A peer's session as [`PeerCommand::Freeze`] leaves it: what another process needs to
/// carry it on.
#[derive(Debug)]
pub struct Frozen {
    /// The session, when it is Established.
    pub session: Option<SessionImage>,
    /// Bytes read from the peer and not processed yet.
    pub read: Bytes,
    /// Bytes not written to the peer yet: whole messages, except that the first one may
    /// have been partly written already.
    pub write: Bytes,
    /// A duplicate of the connection's socket, when the transport is a TCP stream.
    pub socket: Option<OwnedFd>,
}

impl fmt::Debug for PeerCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerCommand::Start => f.write_str("Start"),
            PeerCommand::Stop => f.write_str("Stop"),
            PeerCommand::StopForRestart => f.write_str("StopForRestart"),
            PeerCommand::HardReset => f.write_str("HardReset"),
            PeerCommand::SoftResetIn(x) => write!(f, "SoftResetIn({x:?})"),
            PeerCommand::RefreshDone(x) => write!(f, "RefreshDone({x:?})"),
            PeerCommand::ConfigChanged(_) => f.write_str("ConfigChanged"),
            PeerCommand::LivenessDown { keep_routes } => {
                write!(f, "LivenessDown {{ keep_routes: {keep_routes} }}")
            }
            PeerCommand::InitialRoutesSent(x) => write!(f, "InitialRoutesSent({x:?})"),
            PeerCommand::RestartState {
                restarting,
                forwarding,
            } => write!(f, "RestartState({restarting}, {forwarding:?})"),
            PeerCommand::Accepted { remote, .. } => write!(f, "Accepted({remote})"),
            PeerCommand::PrefixLimitExceeded { family, limit, .. } => {
                write!(f, "PrefixLimitExceeded({family}, {limit})")
            }
            PeerCommand::Quiesce(_) => f.write_str("Quiesce"),
            PeerCommand::Freeze(_) => f.write_str("Freeze"),
            PeerCommand::Resume => f.write_str("Resume"),
            PeerCommand::Release => f.write_str("Release"),
        }
    }
}

/// A peer's Adj-RIB-Out, as the peer task sees it: something to pull encoded UPDATEs from
/// when the socket can take them (STYLE 12).
pub trait Outbox: Send {
    /// Appends encoded messages (with `ctx`) to `out` until at least `budget` bytes were
    /// appended or nothing is left; returns how many messages were appended. A message is
    /// never split; the last one may go past `budget`.
    fn drain(&mut self, ctx: &Context, out: &mut BytesMut, budget: usize) -> usize;
}

/// A simple [`Outbox`]: a queue of messages, encoded when drained. For tests and for
/// embedders that produce their own UPDATEs.
#[derive(Debug, Default)]
pub struct MemoryOutbox {
    queue: VecDeque<Message>,
    drained: u64,
}

impl MemoryOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues a message.
    pub fn push(&mut self, m: impl Into<Message>) {
        self.queue.push_back(m.into());
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many messages were drained so far.
    pub fn drained(&self) -> u64 {
        self.drained
    }
}

impl Outbox for MemoryOutbox {
    fn drain(&mut self, ctx: &Context, out: &mut BytesMut, budget: usize) -> usize {
        let start = out.len();
        let mut n = 0;
        while out.len() - start < budget {
            let Some(m) = self.queue.pop_front() else {
                break;
            };
            match m.encode(ctx, out) {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(error = %e, "outbox message not encodable, dropped"),
            }
            self.drained += 1;
        }
        n
    }
}

/// A shared [`Outbox`] and the [`Notify`] the core pokes when it has something new.
#[derive(Clone)]
pub struct OutboxHandle {
    outbox: Arc<Mutex<dyn Outbox>>,
    ready: Arc<Notify>,
}

impl OutboxHandle {
    /// Wraps a shared outbox.
    pub fn new(outbox: Arc<Mutex<dyn Outbox>>) -> Self {
        OutboxHandle {
            outbox,
            ready: Arc::new(Notify::new()),
        }
    }

    /// A fresh [`MemoryOutbox`], and the handle to give the peer task.
    pub fn memory() -> (Self, Arc<Mutex<MemoryOutbox>>) {
        let m = Arc::new(Mutex::new(MemoryOutbox::new()));
        (OutboxHandle::new(m.clone()), m)
    }

    /// Tells the peer task there is something to send.
    pub fn notify(&self) {
        self.ready.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, dyn Outbox + 'static> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for OutboxHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OutboxHandle")
    }
}

/// A peer's session as it stands, published on every state change (for snapshots).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The RFC 4271 state name.
    pub state: &'static str,
    /// Since when.
    pub since: Time,
    /// What was negotiated, while Established.
    pub negotiated: Option<Box<Negotiated>>,
    /// Why the session last went to Idle.
    pub last_down: Option<DownReason>,
    /// The last failed connection attempt's error, until a connection succeeds.
    pub last_connect_error: Option<String>,
    /// How many times the session left Established.
    pub flaps: u64,
}

impl Default for PeerStatus {
    fn default() -> Self {
        PeerStatus {
            state: "Idle",
            since: Time::ZERO,
            negotiated: None,
            last_down: None,
            last_connect_error: None,
            flaps: 0,
        }
    }
}

/// Message counters of a peer, by type (cheap atomics, read at any time).
#[derive(Debug, Default)]
pub struct PeerStats {
    received: [AtomicU64; 5],
    sent: [AtomicU64; 5],
}

impl PeerStats {
    /// Messages of this type received.
    pub fn received(&self, kind: MessageType) -> u64 {
        self.received[slot(kind)].load(Ordering::Relaxed)
    }

    /// Messages of this type sent (UPDATEs drained from the outbox included).
    pub fn sent(&self, kind: MessageType) -> u64 {
        self.sent[slot(kind)].load(Ordering::Relaxed)
    }

    fn count_received(&self, kind: MessageType) {
        self.received[slot(kind)].fetch_add(1, Ordering::Relaxed);
    }

    fn count_sent(&self, kind: MessageType, n: u64) {
        self.sent[slot(kind)].fetch_add(n, Ordering::Relaxed);
    }
}

fn slot(kind: MessageType) -> usize {
    usize::from(kind.code() - 1)
}

/// A peer task's configuration: the session's and the transport's.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The session.
    pub session: SessionConfig,
    /// Socket options for TCP.
    pub socket: SocketOptions,
    /// Start the session as soon as the task runs.
    pub auto_start: bool,
    /// The write buffer is not filled from the outbox beyond this many bytes.
    pub write_watermark: usize,
    /// At most this many messages are handled per wake-up before other work gets a turn.
    pub messages_per_wakeup: usize,
    /// How long a closed connection may take to flush its last bytes (a NOTIFICATION).
    pub close_linger: Duration,
    /// The [`Outbox`] writes the End-of-RIB markers (after the initial table, as the RIB's
    /// Adj-RIB-Out does), so the session's own are not sent: they would overtake routes
    /// still waiting in the outbox, or go twice.
    pub end_of_rib_from_outbox: bool,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            session: SessionConfig::default(),
            socket: SocketOptions::default(),
            auto_start: true,
            write_watermark: 64 * 1024,
            messages_per_wakeup: 64,
            close_linger: Duration::from_secs(2),
            end_of_rib_from_outbox: false,
        }
    }
}

/// What a peer task needs from the speaker.
#[derive(Clone)]
pub struct PeerContext {
    /// The speaker's clock.
    pub clock: Clock,
    /// Opens outgoing connections.
    pub connector: Arc<dyn Connector>,
    /// Where events go (bounded).
    pub events: mpsc::Sender<PeerEvent>,
}

/// The handle to a running peer task.
#[derive(Debug)]
pub struct PeerHandle {
    id: PeerId,
    commands: mpsc::Sender<PeerCommand>,
    status: watch::Receiver<PeerStatus>,
    stats: Arc<PeerStats>,
    task: JoinHandle<()>,
}

impl PeerHandle {
    /// The peer.
    pub fn id(&self) -> &PeerId {
        &self.id
    }

    /// Sends a command; waits while the command channel is full. Fails once the task ended.
    pub async fn send(&self, cmd: PeerCommand) -> Result<(), PeerCommand> {
        self.commands.send(cmd).await.map_err(|e| e.0)
    }

    /// A sender for commands (for a listener).
    pub fn commands(&self) -> mpsc::Sender<PeerCommand> {
        self.commands.clone()
    }

    /// The session's status, updated on every state change.
    pub fn status(&self) -> watch::Receiver<PeerStatus> {
        self.status.clone()
    }

    /// The message counters.
    pub fn stats(&self) -> Arc<PeerStats> {
        self.stats.clone()
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits for the task to end: after `StopForRestart`, or once every command sender is
    /// dropped (including the ones given to a [`crate::Dispatcher`]).
    pub async fn join(self) {
        drop(self.commands);
        let _ = self.task.await;
    }
}

/// The capacity of a peer's command channel.
pub const COMMAND_CAPACITY: usize = 32;

/// Spawns the task for one peer on the current runtime.
pub fn spawn_peer(
    id: PeerId,
    config: PeerConfig,
    ctx: PeerContext,
    outbox: OutboxHandle,
) -> PeerHandle {
    spawn_task(id, config, ctx, outbox, |_| {})
}

/// Spawns the task for a peer whose Established session another process handed over: it
/// carries on with `session` over `stream`, processes `read` first and writes `write`
/// first, and starts nothing (no OPEN, no connection attempt).
#[allow(clippy::too_many_arguments)]
pub fn spawn_resumed_peer(
    id: PeerId,
    config: PeerConfig,
    ctx: PeerContext,
    outbox: OutboxHandle,
    session: Session,
    stream: BoxTransport,
    read: Bytes,
    write: Bytes,
) -> PeerHandle {
    spawn_task(id, config, ctx, outbox, move |task| {
        task.session = session;
        task.install(stream, false);
        task.rbuf.extend_from_slice(&read);
        task.wbuf.extend_from_slice(&write);
        task.outbox_ready = true;
        task.resumed = true;
        let now = task.clock.now();
        task.publish(now);
        // Established since it came up in the process before, not since the hand-over.
        if let State::Established(e) = task.session.state() {
            let since = e.since;
            task.status.send_modify(|s| s.since = since);
        }
    })
}

/// Builds a peer task, lets `prepare` set it up, and spawns it.
fn spawn_task(
    id: PeerId,
    config: PeerConfig,
    ctx: PeerContext,
    outbox: OutboxHandle,
    prepare: impl FnOnce(&mut PeerTask),
) -> PeerHandle {
    let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
    let (status_tx, status) = watch::channel(PeerStatus::default());
    let stats = Arc::new(PeerStats::default());
    let span = tracing::info_span!("peer", peer = %id);
    let mut task = PeerTask::new(id.clone(), config, ctx, outbox, rx);
    task.status = status_tx;
    task.stats = stats.clone();
    prepare(&mut task);
    let task = tokio::spawn(task.run().instrument(span));
    PeerHandle {
        id,
        commands: tx,
        status,
        stats,
        task,
    }
}

/// A connection held aside during a collision: our OPEN is sent on it and the peer's read.
type CandidateFuture =
    Pin<Box<dyn Future<Output = Result<(BoxTransport, BytesMut, Open), String>> + Send>>;

/// What woke the task up.
enum Wake {
    Command(Option<PeerCommand>),
    Timer,
    Connected(Result<BoxTransport, ConnectError>),
    Candidate(Result<(BoxTransport, BytesMut, Open), String>),
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Flushed,
    CoreGone,
    OutboxReady,
    More,
}

struct PeerTask {
    id: PeerId,
    config: PeerConfig,
    session: Session,
    clock: Clock,
    connector: Arc<dyn Connector>,
    events: mpsc::Sender<PeerEvent>,
    outbox: OutboxHandle,
    commands: mpsc::Receiver<PeerCommand>,
    rd: Option<ReadHalf<BoxTransport>>,
    wr: Option<WriteHalf<BoxTransport>>,
    initiated: bool,
    connecting: Option<ConnectFuture>,
    candidate: Option<CandidateFuture>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    pending: VecDeque<PeerEvent>,
    outbox_ready: bool,
    suppress_open: bool,
    last_connect_error: Option<String>,
    status: watch::Sender<PeerStatus>,
    /// What `status` shows (state and connection error), to skip the lock when unchanged.
    shown: (&'static str, Option<String>),
    stats: Arc<PeerStats>,
    exit: bool,
    /// Quiesced for a hand-over: no reading, processing, timers or outbox.
    paused: bool,
    /// Frozen for a hand-over: no writing either.
    frozen: bool,
    /// The reply to [`PeerCommand::Quiesce`], sent once the events are out.
    quiesced: Option<oneshot::Sender<()>>,
    /// The session came from another process: nothing to start.
    resumed: bool,
}

impl PeerTask {
    fn new(
        id: PeerId,
        config: PeerConfig,
        ctx: PeerContext,
        outbox: OutboxHandle,
        commands: mpsc::Receiver<PeerCommand>,
    ) -> Self {
        PeerTask {
            id,
            session: Session::new(config.session.clone()),
            config,
            clock: ctx.clock,
            connector: ctx.connector,
            events: ctx.events,
            outbox,
            commands,
            rd: None,
            wr: None,
            initiated: false,
            connecting: None,
            candidate: None,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            pending: VecDeque::new(),
            outbox_ready: false,
            suppress_open: false,
            last_connect_error: None,
            status: watch::channel(PeerStatus::default()).0,
            shown: ("Idle", None),
            stats: Arc::default(),
            exit: false,
            paused: false,
            frozen: false,
            quiesced: None,
            resumed: false,
        }
    }

    async fn run(mut self) {
        if self.config.auto_start && !self.resumed {
            self.input(Input::ManualStart);
        }
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let sleep = tokio::time::sleep_until(far);
        tokio::pin!(sleep);
        let mut armed: Option<Time> = None;
        loop {
            let more = if self.paused {
                if self.pending.is_empty() {
                    if let Some(r) = self.quiesced.take() {
                        let _ = r.send(());
                    }
                }
                false
            } else {
                self.drain_outbox();
                self.process_buffer()
            };
            if self.exit && self.pending.is_empty() {
                break;
            }
            let deadline = self.session.poll_timeout();
            if deadline != armed {
                armed = deadline;
                let at = deadline.map_or(far, |t| self.clock.instant(t));
                sleep.as_mut().reset(at);
            }
            let max = self.session.context().max_message_len;
            let live = !self.paused;
            let can_read = live
                && self.rd.is_some()
                && self.pending.is_empty()
                && !more
                && self.rbuf.len() < max;
            let room = max.saturating_sub(self.rbuf.len());
            let want_outbox = live
                && self.session.state().is_established()
                && self.wbuf.len() < self.config.write_watermark;
            let wake = tokio::select! {
                cmd = self.commands.recv(), if !self.exit => Wake::Command(cmd),
                () = &mut sleep, if armed.is_some() && !self.exit && live => Wake::Timer,
                r = connect_result(&mut self.connecting), if live => Wake::Connected(r),
                r = candidate_result(&mut self.candidate), if live => Wake::Candidate(r),
                r = read_some(&mut self.rd, &mut self.rbuf, room), if can_read => Wake::Read(r),
                r = write_some(&mut self.wr, &mut self.wbuf), if !self.wbuf.is_empty() && !self.frozen => {
                    Wake::Wrote(r)
                }
                r = self.events.reserve(), if !self.pending.is_empty() => match r {
                    Ok(permit) => {
                        if let Some(e) = self.pending.pop_front() {
                            permit.send(e);
                        }
                        Wake::Flushed
                    }
                    Err(_) => Wake::CoreGone,
                },
                () = self.outbox.ready.notified(), if want_outbox => Wake::OutboxReady,
                () = std::future::ready(()), if more => Wake::More,
            };
            match wake {
                Wake::Command(Some(cmd)) => self.command(cmd),
                Wake::Command(None) => self.shut_down(),
                Wake::Timer => {
                    armed = None;
                    if self.wr.is_some() && self.wbuf.is_empty() {
                        self.input(Input::SendProgress);
                    }
                    let now = self.clock.now();
                    let actions = self.session.handle_timeout(now);
                    self.perform(now, actions);
                }
                Wake::Connected(r) => self.connected(r),
                Wake::Candidate(r) => self.candidate_done(r),
                Wake::Read(r) => self.read_done(r),
                Wake::Wrote(r) => self.write_done(r),
                Wake::Flushed => self.flush_events(),
                Wake::CoreGone => self.core_gone(),
                Wake::OutboxReady => self.outbox_ready = true,
                Wake::More => {}
            }
        }
        self.close_connection();
    }

    /// Feeds an input to the session at the current time and carries out the actions.
    fn input(&mut self, input: Input) {
        let now = self.clock.now();
        let actions = self.session.handle(now, input);
        self.perform(now, actions);
    }

    fn perform(&mut self, now: Time, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Connect => self.start_connect(),
                Action::Send(m) => self.send(m),
                Action::CloseConnection => self.close_connection(),
                Action::Established(n) => {
                    self.outbox_ready = true;
                    self.last_connect_error = None;
                    self.emit(now, Action::Established(n));
                }
                Action::SessionDown(r) => {
                    self.status.send_modify(|s| s.flaps += 1);
                    self.emit(now, Action::SessionDown(r));
                }
                other => self.emit(now, other),
            }
        }
        self.publish(now);
    }

    /// Publishes the status when the state or the connection error changed.
    fn publish(&mut self, now: Time) {
        let state = self.session.state();
        let error = &self.last_connect_error;
        if self.shown.0 == state.name() && self.shown.1 == *error {
            return;
        }
        self.shown = (state.name(), error.clone());
        self.status.send_if_modified(|s| {
            if s.state == state.name() && s.last_connect_error == *error {
                return false;
            }
            if s.state != state.name() {
                s.since = now;
            }
            s.state = state.name();
            s.negotiated = match state {
                State::Established(e) => Some(Box::new(e.negotiated.clone())),
                _ => None,
            };
            s.last_down = self.session.last_down_reason().cloned();
            s.last_connect_error.clone_from(error);
            true
        });
    }

    fn emit(&mut self, at: Time, action: Action) {
        self.pending.push_back(PeerEvent {
            peer: self.id.clone(),
            at,
            action,
        });
        self.flush_events();
    }

    /// Sends what the channel takes now; the rest waits (and reading stops meanwhile).
    fn flush_events(&mut self) {
        while let Some(e) = self.pending.pop_front() {
            match self.events.try_send(e) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(e)) => {
                    self.pending.push_front(e);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.core_gone();
                    break;
                }
            }
        }
    }

    fn core_gone(&mut self) {
        if !self.exit {
            tracing::debug!("event receiver gone; peer task ends");
        }
        self.pending.clear();
        self.exit = true;
    }

    fn shut_down(&mut self) {
        tracing::debug!("command channel closed; peer task ends");
        self.input(Input::ManualStop);
        self.exit = true;
    }

    fn send(&mut self, m: Message) {
        if self.suppress_open && matches!(m, Message::Open(_)) {
            // Our OPEN already went out on a connection adopted after a collision.
            self.suppress_open = false;
            return;
        }
        if self.config.end_of_rib_from_outbox
            && matches!(&m, Message::Update(u) if u.end_of_rib().is_some())
        {
            // The outbox sends End-of-RIB after the routes it holds.
            return;
        }
        if self.wr.is_none() {
            tracing::debug!(kind = ?m.kind(), "no connection; message dropped");
            return;
        }
        tracing::debug!(kind = ?m.kind(), "message sent");
        let start = self.wbuf.len();
        match m.encode(self.session.context(), &mut self.wbuf) {
            Ok(()) => self.stats.count_sent(m.kind(), 1),
            Err(e) => {
                tracing::warn!(error = %e, kind = ?m.kind(), "message not encodable, not sent")
            }
        }
        tracing::trace!(bytes = ?&self.wbuf[start..], "bytes queued");
    }

    fn drain_outbox(&mut self) {
        if !self.outbox_ready
            || !self.session.state().is_established()
            || self.wr.is_none()
            || self.wbuf.len() >= self.config.write_watermark
        {
            return;
        }
        let budget = self.config.write_watermark - self.wbuf.len();
        let before = self.wbuf.len();
        let ctx = *self.session.context();
        let n = self.outbox.lock().drain(&ctx, &mut self.wbuf, budget);
        let written = self.wbuf.len() - before;
        if n > 0 {
            self.stats.count_sent(MessageType::Update, n as u64);
            tracing::debug!(messages = n, bytes = written, "UPDATEs from the outbox");
        }
        // Budget used up: there may be more once the socket takes it.
        self.outbox_ready = written >= budget;
    }

    fn start_connect(&mut self) {
        if self.rd.is_some() || self.exit {
            return;
        }
        let f = self.connector.connect(&self.id, &self.config.socket);
        self.connecting = Some(f);
    }

    fn connected(&mut self, r: Result<BoxTransport, ConnectError>) {
        self.connecting = None;
        match r {
            Ok(stream) => {
                tracing::debug!("connected");
                self.last_connect_error = None;
                self.install(stream, true);
                self.input(Input::TcpConnected);
            }
            Err(e) => {
                // The ConnectRetry timer retries; log a repeated error only once.
                let text = e.to_string();
                if self.last_connect_error.as_deref() != Some(&text) {
                    // The peer is named here too: the span is off at the default level.
                    tracing::warn!(peer = %self.id, error = %text, "connection attempt failed");
                    self.last_connect_error = Some(text);
                    self.publish(self.clock.now());
                } else {
                    tracing::debug!(error = %text, "connection attempt failed again");
                }
            }
        }
    }

    fn install(&mut self, stream: BoxTransport, initiated: bool) {
        let (rd, wr) = tokio::io::split(stream);
        self.rd = Some(rd);
        self.wr = Some(wr);
        self.initiated = initiated;
        self.rbuf.clear();
        self.wbuf.clear();
    }

    /// Drops the connection; what is left in the write buffer (a NOTIFICATION, usually) is
    /// flushed in the background for at most `close_linger`.
    fn close_connection(&mut self) {
        self.connecting = None;
        self.rbuf.clear();
        self.suppress_open = false;
        let (Some(rd), Some(mut wr)) = (self.rd.take(), self.wr.take()) else {
            self.wbuf.clear();
            return;
        };
        let rest = self.wbuf.split().freeze();
        let linger = self.config.close_linger;
        tokio::spawn(
            async move {
                let flush = async {
                    if !rest.is_empty() {
                        wr.write_all(&rest).await?;
                    }
                    wr.shutdown().await
                };
                let _ = tokio::time::timeout(linger, flush).await;
                drop(rd);
            }
            .in_current_span(),
        );
        tracing::debug!("connection closed");
    }

    fn read_done(&mut self, r: std::io::Result<usize>) {
        match r {
            Ok(0) => {
                tracing::debug!("connection closed by the peer");
                self.transport_failed();
            }
            Ok(n) => tracing::trace!(bytes = n, "read"),
            Err(e) => {
                tracing::debug!(error = %e, "read failed");
                self.transport_failed();
            }
        }
    }

    fn write_done(&mut self, r: std::io::Result<usize>) {
        match r {
            Ok(n) if n > 0 => {
                self.wbuf.advance(n);
                self.input(Input::SendProgress);
            }
            Ok(_) => self.transport_failed(),
            Err(e) => {
                tracing::debug!(error = %e, "write failed");
                self.transport_failed();
            }
        }
    }

    fn transport_failed(&mut self) {
        self.wbuf.clear();
        self.close_connection();
        self.input(Input::TcpFails);
    }

    /// Frames and decodes what the read buffer holds, at most `messages_per_wakeup`
    /// messages, stopping while events wait for the core. Returns whether more is buffered.
    fn process_buffer(&mut self) -> bool {
        for _ in 0..self.config.messages_per_wakeup {
            if !self.pending.is_empty() || self.rd.is_none() {
                return false;
            }
            let ctx = *self.session.context();
            match split_message(&mut self.rbuf, ctx.max_message_len) {
                Ok(None) => return false,
                Ok(Some((h, msg))) => {
                    tracing::trace!(bytes = ?&msg[..], "message bytes");
                    let body = msg.slice(HEADER_LEN..);
                    match Message::decode_body(h, body, &ctx) {
                        Ok(m) => {
                            self.stats.count_received(m.kind());
                            tracing::debug!(kind = ?m.kind(), "message received");
                            self.input(Input::Message(m));
                        }
                        // The session frames and decodes these bytes again and answers
                        // with the NOTIFICATION the error calls for.
                        Err(_) => self.input(Input::Bytes(msg)),
                    }
                }
                Err(_) => {
                    let bytes = self.rbuf.split().freeze();
                    self.input(Input::Bytes(bytes));
                }
            }
        }
        // The cap was reached: is a whole message (or a bad header) still waiting?
        match bgp_wire::check_header(&self.rbuf, self.session.context().max_message_len) {
            Ok(Some(h)) => self.rbuf.len() >= h.len,
            Ok(None) => false,
            Err(_) => true,
        }
    }

    fn command(&mut self, cmd: PeerCommand) {
        tracing::debug!(?cmd, "command");
        match cmd {
            PeerCommand::Start => self.input(Input::ManualStart),
            PeerCommand::Stop => self.input(Input::ManualStop),
            PeerCommand::StopForRestart => self.stop_for_restart(),
            PeerCommand::HardReset => self.input(Input::HardReset),
            PeerCommand::SoftResetIn(f) => {
                let families = self.session.negotiated().map(|n| n.families);
                for fam in families.into_iter().flat_map(|s| s.iter()) {
                    if f.is_none_or(|f| f == fam) {
                        self.input(Input::RequestRouteRefresh(fam));
                    }
                }
            }
            PeerCommand::RefreshDone(f) => self.input(Input::RefreshDone(f)),
            PeerCommand::ConfigChanged(cfg) => {
                let session = Box::new(cfg.session.clone());
                let socket_changed = self.config.socket != cfg.socket;
                self.config = *cfg;
                self.input(Input::ConfigChanged(session));
                if socket_changed && self.rd.is_some() {
                    // The connection was made with the old socket options: make a new one.
                    let n = Notification::cease(cease_subcode::OTHER_CONFIGURATION_CHANGE);
                    self.input(Input::AutomaticStop(n));
                }
            }
            PeerCommand::PrefixLimitExceeded {
                family,
                limit,
                restart_after,
            } => self.input(Input::PrefixLimitExceeded {
                family,
                limit,
                restart_after,
            }),
            PeerCommand::LivenessDown { keep_routes: true } => {
                if self.rd.is_some() {
                    self.wbuf.clear();
                    self.transport_failed();
                }
            }
            PeerCommand::LivenessDown { keep_routes: false } => self.input(Input::HardReset),
            PeerCommand::InitialRoutesSent(f) => self.input(Input::InitialRoutesSent(f)),
            PeerCommand::RestartState {
                restarting,
                forwarding,
            } => self.input(Input::RestartState {
                restarting,
                forwarding,
            }),
            PeerCommand::Accepted { stream, remote } => {
                if self.paused {
                    tracing::debug!(%remote, "connection refused: hand-over under way");
                } else {
                    self.accepted(stream, remote);
                }
            }
            PeerCommand::Quiesce(reply) => {
                self.paused = true;
                self.quiesced = Some(reply);
            }
            PeerCommand::Freeze(reply) => {
                let _ = reply.send(self.freeze());
            }
            PeerCommand::Resume => {
                self.paused = false;
                self.frozen = false;
            }
            PeerCommand::Release => {
                // Dropped without a shutdown: the socket stays open in the other process,
                // so the peer sees nothing.
                self.rd = None;
                self.wr = None;
                self.wbuf.clear();
                self.rbuf.clear();
                self.connecting = None;
                self.candidate = None;
                self.pending.clear();
                self.exit = true;
            }
        }
    }

    /// Writes what the outbox owes into the write buffer, stops writing, and gives the
    /// session's state for a hand-over.
    fn freeze(&mut self) -> Frozen {
        self.paused = true;
        self.frozen = true;
        let now = self.clock.now();
        let established = self.session.state().is_established() && self.wr.is_some();
        if established {
            let ctx = *self.session.context();
            // Everything owed, whatever the watermark: the next process starts from a peer
            // that was told everything.
            let n = self.outbox.lock().drain(&ctx, &mut self.wbuf, usize::MAX);
            if n > 0 {
                self.stats.count_sent(MessageType::Update, n as u64);
            }
        }
        let socket = match (self.rd.take(), self.wr.take()) {
            (Some(rd), Some(wr)) => {
                let stream = rd.unsplit(wr);
                let fd = match tcp_socket(&stream) {
                    Some(Ok(fd)) => Some(fd),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "socket not duplicated for the hand-over");
                        None
                    }
                    None => None,
                };
                let (rd, wr) = tokio::io::split(stream);
                self.rd = Some(rd);
                self.wr = Some(wr);
                fd
            }
            (rd, wr) => {
                self.rd = rd;
                self.wr = wr;
                None
            }
        };
        Frozen {
            session: if established {
                self.session.image(now)
            } else {
                None
            },
            read: Bytes::copy_from_slice(&self.rbuf),
            write: Bytes::copy_from_slice(&self.wbuf),
            socket,
        }
    }

    fn stop_for_restart(&mut self) {
        let n_bit = self.session.state().is_established()
            && self
                .session
                .negotiated()
                .is_some_and(|n| n.gr_notification());
        if n_bit {
            let cease = Notification::cease(cease_subcode::ADMINISTRATIVE_RESET);
            self.input(Input::AutomaticStop(cease));
        } else {
            // No NOTIFICATION: to the peer this is a transport failure (RFC 4724 §4.2).
            self.wbuf.clear();
            self.close_connection();
            self.input(Input::TcpFails);
        }
        self.close_connection();
        self.exit = true;
    }

    fn accepted(&mut self, stream: BoxTransport, remote: SocketAddr) {
        let connected = self.rd.is_some();
        match self.session.state() {
            State::Idle => {
                tracing::debug!(%remote, "connection refused: session is Idle");
            }
            State::Connect | State::Active if !connected => {
                tracing::debug!(%remote, "connection accepted");
                self.connecting = None;
                self.install(stream, false);
                self.input(Input::TcpConnectionConfirmed);
            }
            State::Established(e) if !e.negotiated.graceful_restart() => {
                tracing::debug!(%remote, "connection refused: session is Established");
            }
            _ => {
                if self.candidate.is_some() {
                    tracing::debug!(%remote, "connection refused: a collision is being resolved");
                    return;
                }
                // A collision, or (while Established with graceful restart) perhaps the peer
                // restarted: its OPEN decides.
                tracing::debug!(%remote, "second connection: reading the peer's OPEN");
                let open = self.session.build_open();
                let cfg = self.session.config().clone();
                let hold = self.config.session.open_hold_time;
                self.candidate = Some(Box::pin(candidate(stream, open, cfg, hold)));
            }
        }
    }

    fn candidate_done(&mut self, r: Result<(BoxTransport, BytesMut, Open), String>) {
        self.candidate = None;
        let (stream, rest, open) = match r {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "colliding connection dropped");
                return;
            }
        };
        let cfg = self.session.config();
        let keep_local =
            collision_keeps_local_connection(cfg.bgp_id, cfg.local_asn, open.bgp_id, open.asn());
        let state = self.session.state();
        let primary_alive = self.rd.is_some();
        let restarted = match state {
            State::Established(e) => e.negotiated.graceful_restart(),
            _ => false,
        };
        if restarted {
            // RFC 4724 §4.2: an OPEN on a new connection while Established means the peer
            // restarted; the old session failed as if its TCP connection had.
            tracing::debug!("OPEN on a new connection while Established: the peer restarted");
            self.wbuf.clear();
            self.transport_failed();
            self.adopt(stream, rest, Some(open));
            return;
        }
        let dump_new = state.is_established()
            || (primary_alive && self.initiated && keep_local)
            || *state == State::Idle;
        if dump_new {
            tracing::debug!("collision: keeping the existing connection");
            let n = Notification::cease(cease_subcode::CONNECTION_COLLISION_RESOLUTION);
            let ctx = Context::default();
            tokio::spawn(
                async move {
                    let mut stream = stream;
                    let mut out = BytesMut::new();
                    if Message::Notification(n).encode(&ctx, &mut out).is_ok() {
                        let _ = tokio::time::timeout(Duration::from_secs(2), async {
                            stream.write_all(&out).await?;
                            stream.shutdown().await
                        })
                        .await;
                    }
                }
                .in_current_span(),
            );
            return;
        }
        tracing::debug!("collision: keeping the peer's connection");
        if primary_alive {
            self.input(Input::OpenCollisionDump);
        }
        self.adopt(stream, rest, Some(open));
    }

    /// Restarts the session on a connection accepted from the peer; `open` is the peer's
    /// OPEN when ours went out on it already.
    fn adopt(&mut self, stream: BoxTransport, rest: BytesMut, open: Option<Open>) {
        self.close_connection();
        let now = self.clock.now();
        let actions = self.session.handle(now, Input::ManualStart);
        // We have a connection: no outgoing attempt.
        let actions = actions
            .into_iter()
            .filter(|a| *a != Action::Connect)
            .collect();
        self.perform(now, actions);
        self.install(stream, false);
        self.rbuf = rest;
        self.suppress_open = open.is_some();
        self.input(Input::TcpConnectionConfirmed);
        if let Some(open) = open {
            // Read on the side connection: count it here.
            self.stats.count_received(MessageType::Open);
            self.input(Input::Message(Message::Open(open)));
        }
    }
}

async fn connect_result(
    connecting: &mut Option<ConnectFuture>,
) -> Result<BoxTransport, ConnectError> {
    match connecting.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn candidate_result(
    c: &mut Option<CandidateFuture>,
) -> Result<(BoxTransport, BytesMut, Open), String> {
    match c.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn read_some(
    rd: &mut Option<ReadHalf<BoxTransport>>,
    buf: &mut BytesMut,
    room: usize,
) -> std::io::Result<usize> {
    match rd.as_mut() {
        Some(rd) => {
            buf.reserve(room);
            let mut limited = buf.limit(room);
            rd.read_buf(&mut limited).await
        }
        None => std::future::pending().await,
    }
}

async fn write_some(
    wr: &mut Option<WriteHalf<BoxTransport>>,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    match wr.as_mut() {
        Some(wr) => wr.write(buf).await,
        None => std::future::pending().await,
    }
}

/// Sends our OPEN on a colliding connection and reads the peer's, within `hold`, and checks
/// it as the session would (RFC 4271 §6.2, with `cfg`). An OPEN that fails a check, or a
/// malformed or unexpected message, gets its NOTIFICATION on that connection, which then
/// closes: the running session is not touched.
async fn candidate(
    mut stream: BoxTransport,
    ours: Open,
    cfg: SessionConfig,
    hold: Duration,
) -> Result<(BoxTransport, BytesMut, Open), String> {
    let ctx = Context::default();
    let work = async {
        let mut out = BytesMut::new();
        Message::Open(ours.clone())
            .encode(&ctx, &mut out)
            .map_err(|e| (e.to_string(), None))?;
        stream
            .write_all(&out)
            .await
            .map_err(|e| (e.to_string(), None))?;
        let mut buf = BytesMut::with_capacity(ctx.max_message_len);
        loop {
            let frame = split_message(&mut buf, ctx.max_message_len)
                .map_err(|e| (e.to_string(), Some(e.notification())))?;
            match frame {
                Some((h, msg)) => {
                    let open = match Message::decode_body(h, msg.slice(HEADER_LEN..), &ctx) {
                        Ok(Message::Open(o)) => o,
                        Ok(m) => {
                            let n = Notification::new(
                                bgp_wire::notification::code::FSM,
                                bgp_wire::notification::fsm_subcode::UNEXPECTED_IN_OPEN_SENT,
                            );
                            return Err((format!("expected OPEN, got {:?}", m.kind()), Some(n)));
                        }
                        Err(e) => return Err((e.to_string(), Some(e.notification()))),
                    };
                    if let Err(n) = bgp_fsm::validate_open(&cfg, &ours, &open) {
                        return Err((format!("OPEN refused: {n}"), Some(n)));
                    }
                    return Ok((buf, open));
                }
                None => {
                    let room = ctx.max_message_len - buf.len();
                    let mut limited = (&mut buf).limit(room);
                    let n = stream
                        .read_buf(&mut limited)
                        .await
                        .map_err(|e| (e.to_string(), None))?;
                    if n == 0 {
                        return Err(("closed before OPEN".into(), None));
                    }
                }
            }
        }
    };
    let err = match tokio::time::timeout(hold, work).await {
        Ok(Ok((rest, open))) => return Ok((stream, rest, open)),
        Ok(Err(e)) => e,
        Err(_) => {
            // RFC 4271 §8.2.2: the hold timer expires in OpenSent.
            let n = Notification::new(bgp_wire::notification::code::HOLD_TIMER_EXPIRED, 0);
            ("no OPEN within the hold time".into(), Some(n))
        }
    };
    if let (_, Some(n)) = &err {
        let mut out = BytesMut::new();
        if Message::Notification(n.clone())
            .encode(&ctx, &mut out)
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                stream.write_all(&out).await?;
                stream.shutdown().await
            })
            .await;
        }
    }
    Err(err.0)
}

#[cfg(test)]
mod tests;
