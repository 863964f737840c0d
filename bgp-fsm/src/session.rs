//! The RFC 4271 §8 session state machine, sans-IO (STYLE 2, 4).
//!
//! [`Session::handle`] takes an [`Input`] and the current [`Time`] and returns [`Action`]s;
//! [`Session::poll_timeout`] gives the next deadline and [`Session::handle_timeout`] runs what
//! is due. The driver owns the socket and the clock.
//!
//! Choices where RFC 4271 leaves room (its optional session attributes):
//! - DelayOpen, PassiveTcpEstablishment, DampPeerOscillations and AllowAutomaticStart are in
//!   [`SessionConfig`]. A passive session never initiates a connection: in Active, the
//!   ConnectRetryTimer only restarts itself.
//! - SendNOTIFICATIONwithoutOPEN is true for errors in the peer's OPEN received during
//!   DelayOpen (the peer spoke first and deserves to know why), false otherwise.
//! - A NOTIFICATION received in OpenSent closes the session without answering with an FSM
//!   error (RFC 4271 §8.2.2 lists it among "other events"; answering a NOTIFICATION helps
//!   nobody).
//! - One session is one connection: connection collision (§6.8) is resolved by the driver,
//!   which holds one session per connection, with [`collision_keeps_local_connection`] and
//!   [`Input::OpenCollisionDump`]. A second connection reported to a session past Active is
//!   ignored.
//! - Automatic restart after an error waits for the IdleHoldTimer, which backs off with
//!   consecutive failures when DampPeerOscillations is on.
//! - [`Action::SessionDown`] is emitted when a session leaves Established; failures before
//!   that are visible through [`Session::last_down_reason`].

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use bgp_wire::capability::{
    AddPath, Capability, GracefulRestart, GracefulRestartFamily, LlgrFamily,
    LongLivedGracefulRestart,
};
use bgp_wire::notification::{cease_subcode, code, fsm_subcode, open_subcode};
use bgp_wire::route_refresh::RouteRefreshSubtype;
use bgp_wire::{
    AfiSafi, AfiSafiSet, Asn, Context, DecodeError, Message, Notification, Open, RouteRefresh,
    Update, split_message,
};

use crate::config::SessionConfig;
use crate::gr::{GrMachine, Retention};
use crate::image::{ResumeError, SessionImage};
use crate::negotiated::Negotiated;
use crate::time::Time;
use crate::timer::{Jitter, Timer, Timers};
use crate::validate::validate_open;

/// The RFC 4271 §8 states. Data only one state needs lives in its variant (STYLE 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Idle: refuses connections; waits for a start event.
    Idle,
    /// Connect: waiting for our outgoing connection (or for DelayOpen once connected).
    Connect,
    /// Active: listening for the peer's connection (or waiting for DelayOpen).
    Active,
    /// OpenSent: our OPEN is out, waiting for the peer's. Holds the OPEN we sent.
    OpenSent(Box<Open>),
    /// OpenConfirm: both OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm(Box<Negotiated>),
    /// Established: routes flow.
    Established(Box<Established>),
}

impl State {
    /// The RFC 4271 name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent(_) => "OpenSent",
            State::OpenConfirm(_) => "OpenConfirm",
            State::Established(_) => "Established",
        }
    }

    /// Whether the state is Established.
    pub fn is_established(&self) -> bool {
        matches!(self, State::Established(_))
    }
}

/// What the Established state holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Established {
    /// What the OPENs negotiated.
    pub negotiated: Negotiated,
    /// When the session was established.
    pub since: Time,
    /// Families whose End-of-RIB we have not sent yet.
    pub eor_pending: AfiSafiSet,
}

/// Events for the session (RFC 4271 §8.1), plus what the embedder tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// ManualStart (Event 1), or Event 4 when the session is configured passive.
    ManualStart,
    /// ManualStop (Event 2): Cease/Administrative Shutdown, routes purged, no restart.
    /// With the N bit negotiated it is sent inside a Hard Reset (RFC 8538 §5).
    ManualStop,
    /// An administrative reset whose routes must go: Cease/Hard Reset when the N bit was
    /// negotiated, Cease/Administrative Reset otherwise (RFC 8538 §3); stale routes are
    /// purged and the session restarts automatically.
    HardReset,
    /// AutomaticStart (Event 3), or Event 5 with `passive`.
    AutomaticStart {
        /// Wait for the peer's connection instead of connecting.
        passive: bool,
    },
    /// AutomaticStop (Event 8), sending this NOTIFICATION (e.g. Cease/Maximum Prefixes).
    AutomaticStop(Notification),
    /// Our outgoing connection succeeded (Tcp_CR_Acked, Event 16).
    TcpConnected,
    /// We accepted the peer's connection (TcpConnectionConfirmed, Event 17).
    TcpConnectionConfirmed,
    /// The connection failed or closed (TcpConnectionFails, Event 18).
    TcpFails,
    /// Bytes read from the connection, framed and decoded with the negotiated context.
    Bytes(Bytes),
    /// A message decoded by the driver.
    Message(Message),
    /// The driver resolved a connection collision against this connection (Event 23).
    OpenCollisionDump,
    /// The driver made write progress or has nothing left to write (RFC 9687 §3).
    SendProgress,
    /// Send this UPDATE (dropped unless Established).
    SendUpdate(Update),
    /// The embedder's initial routes for a family (`None`: all) were sent: our End-of-RIB may
    /// go (RFC 4724 §4.1).
    InitialRoutesSent(Option<AfiSafi>),
    /// Ask the peer to re-send a family (RFC 2918).
    RequestRouteRefresh(AfiSafi),
    /// Our re-advertisement of a family after the peer's request is done: send EoRR when
    /// enhanced route refresh was negotiated (RFC 7313 §4).
    RefreshDone(AfiSafi),
    /// The restarting speaker's state, read each time an OPEN is built: whether we restarted
    /// (R bit) and the families whose forwarding state survived (F bits) (RFC 4724 §3).
    RestartState {
        /// We restarted and our End-of-RIB is still to be sent.
        restarting: bool,
        /// Families whose forwarding state was preserved.
        forwarding: AfiSafiSet,
    },
    /// New configuration. When [`SessionConfig::requires_reset`] says so, a session past Idle
    /// is closed with Cease/Other Configuration Change and restarts with it; otherwise the
    /// new settings are taken as they are and apply the next time they are used.
    ConfigChanged(Box<SessionConfig>),
    /// The peer sent more prefixes of `family` than the configured `limit` (RFC 4486 §4):
    /// Cease/Maximum Number of Prefixes Reached, with the family and the limit as data, inside
    /// a Hard Reset when the N bit was negotiated (RFC 8538 §5), so that neither side keeps
    /// the routes. The session then stays in Idle: with `restart_after` it starts again once
    /// that time passed, without, only on [`Input::ManualStart`] or [`Input::HardReset`].
    PrefixLimitExceeded {
        /// The family over its limit.
        family: AfiSafi,
        /// The configured limit.
        limit: u32,
        /// Start again by itself after this long.
        restart_after: Option<Duration>,
    },
}

/// What the driver and the RIB must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    /// Write this message.
    Send(Message),
    /// Close the connection (or abort the attempt).
    CloseConnection,
    /// The session is established with these parameters; decode and encode with
    /// [`Negotiated::context`].
    Established(Box<Negotiated>),
    /// Routes from the peer.
    UpdateReceived(Update),
    /// The peer's End-of-RIB for a family (RFC 4724 §2).
    EndOfRib(AfiSafi),
    /// The peer asks us to re-send a family (RFC 2918); answer with `SendUpdate`s, then
    /// [`Input::RefreshDone`].
    RouteRefreshRequested(AfiSafi),
    /// Mark every route of this family from the peer as stale and keep it.
    RetainStale(AfiSafi),
    /// Drop the peer's routes of this family that are still stale.
    PurgeStale(AfiSafi),
    /// Mark the peer's stale routes of this family long-lived stale (RFC 9494 §4.3:
    /// LLGR_STALE community, least preferred).
    MarkLlgrStale(AfiSafi),
    /// The session left Established. Every route of the peer goes, except the families
    /// retained by `RetainStale` just before this action.
    SessionDown(DownReason),
}

/// Why a session went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION (an error we found, or an automatic stop).
    NotificationSent(Notification),
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// The hold timer expired (we sent Hold Timer Expired).
    HoldTimerExpired,
    /// The send hold timer expired (RFC 9687).
    SendHoldTimerExpired,
    /// The TCP connection failed or closed.
    TcpError,
    /// Manual stop or administrative reset.
    AdminStop,
    /// A configuration change.
    ConfigChange,
}

impl DownReason {
    /// The NOTIFICATION code and subcode, when one was sent or received.
    pub fn code_subcode(&self) -> Option<(u8, u8)> {
        match self {
            DownReason::NotificationSent(n) | DownReason::NotificationReceived(n) => {
                Some((n.code, n.subcode))
            }
            DownReason::HoldTimerExpired => Some((code::HOLD_TIMER_EXPIRED, 0)),
            DownReason::SendHoldTimerExpired => Some((code::SEND_HOLD_TIMER_EXPIRED, 0)),
            _ => None,
        }
    }
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::NotificationSent(n) => write!(f, "NOTIFICATION sent: {n}"),
            DownReason::NotificationReceived(n) => write!(f, "NOTIFICATION received: {n}"),
            DownReason::HoldTimerExpired => f.write_str("hold timer expired"),
            DownReason::SendHoldTimerExpired => f.write_str("send hold timer expired"),
            DownReason::TcpError => f.write_str("connection lost"),
            DownReason::AdminStop => f.write_str("administrative stop"),
            DownReason::ConfigChange => f.write_str("configuration change"),
        }
    }
}

/// Connection collision resolution (RFC 4271 §6.8, RFC 6286 §2.3): whether the connection we
/// initiated survives. The higher BGP Identifier keeps the connection it initiated; with equal
/// identifiers, the higher AS number does.
pub fn collision_keeps_local_connection(
    local_id: Ipv4Addr,
    local_asn: Asn,
    remote_id: Ipv4Addr,
    remote_asn: Asn,
) -> bool {
    let (l, r) = (u32::from(local_id), u32::from(remote_id));
    if l != r {
        l > r
    } else {
        local_asn > remote_asn
    }
}

/// One BGP session: the RFC 4271 state machine, its timers, and the graceful-restart machine.
#[derive(Clone, Debug)]
pub struct Session {
    config: SessionConfig,
    state: State,
    timers: Timers,
    jitter: Jitter,
    connect_retry_counter: u32,
    failures: u32,
    started: bool,
    passive: bool,
    gr: GrMachine,
    rx: BytesMut,
    ctx: Context,
    restarting: bool,
    forwarding: AfiSafiSet,
    last_down: Option<DownReason>,
    limit_stopped: bool,
    /// Our OPEN and the peer's, from OpenConfirm on, for [`Session::image`].
    opens: Option<Box<(Open, Open)>>,
}

/// Which families get End-of-RIB, for one family or all.
fn select(set: AfiSafiSet, f: Option<AfiSafi>) -> AfiSafiSet {
    match f {
        Some(f) if set.contains(f) => [f].into_iter().collect(),
        Some(_) => AfiSafiSet::EMPTY,
        None => set,
    }
}

impl Session {
    /// A session in Idle.
    pub fn new(config: SessionConfig) -> Self {
        Session {
            jitter: Jitter::new(config.jitter_seed),
            passive: config.passive,
            config,
            state: State::Idle,
            timers: Timers::default(),
            connect_retry_counter: 0,
            failures: 0,
            started: false,
            gr: GrMachine::default(),
            rx: BytesMut::new(),
            ctx: Context::default(),
            restarting: false,
            forwarding: AfiSafiSet::EMPTY,
            last_down: None,
            limit_stopped: false,
            opens: None,
        }
    }

    /// The session as plain data, to continue it in another process with
    /// [`Session::resume`]; `None` unless Established. Deadlines are taken as the time
    /// remaining after `now`, past moments as the time before it.
    pub fn image(&self, now: Time) -> Option<SessionImage> {
        let State::Established(e) = &self.state else {
            return None;
        };
        let (local, peer) = self.opens.as_deref()?;
        Some(SessionImage {
            local_open: local.clone(),
            peer_open: peer.clone(),
            keepalive_time: e.negotiated.keepalive_time,
            established_for: now.saturating_since(e.since),
            eor_pending: e.eor_pending,
            timers: self
                .timers
                .iter()
                .filter(|(t, _)| !t.is_gr())
                .map(|(t, at)| (t, at.saturating_since(now)))
                .collect(),
            graceful_restart: self.gr.image(now),
            connect_retry_counter: self.connect_retry_counter,
            failures: self.failures,
            started: self.started,
            passive: self.passive,
            restarting: self.restarting,
            forwarding: self.forwarding,
            limit_stopped: self.limit_stopped,
            last_down: self.last_down.clone(),
            jitter: Some(self.jitter.state()),
            rx: Bytes::copy_from_slice(&self.rx),
        })
    }

    /// Continues an Established session from its [`SessionImage`] under `config`, in
    /// Established at `now`, each deadline `now` plus its remaining time. Nothing is sent:
    /// the peer sees the session go on (the next KEEPALIVE comes from the keepalive timer).
    ///
    /// The image is refused when the session could not go on under `config` without a reset:
    /// when the OPEN we would send differs from the session's (AS, identifier, hold time,
    /// capabilities; the R and F bits are taken from the session's OPEN), when the configured
    /// peer AS or other checks refuse the peer's OPEN, or when the configured keepalive
    /// interval negotiates another one. This is [`SessionConfig::requires_reset`] seen from
    /// the OPENs, since the old configuration is not carried: settings that neither go into
    /// an OPEN nor decide its acceptance (the graceful-restart stale, refresh and restart
    /// time bounds, the timers outside Established, the jitter seed) are taken as they are,
    /// and apply the next time they are used; the running deadlines come from the image.
    /// The jitter continues from the image's state when it carries one.
    pub fn resume(
        config: SessionConfig,
        image: SessionImage,
        now: Time,
    ) -> Result<Session, ResumeError> {
        let SessionImage {
            local_open,
            peer_open,
            keepalive_time,
            established_for,
            eor_pending,
            timers: remaining,
            graceful_restart,
            connect_retry_counter,
            failures,
            started,
            passive,
            restarting,
            forwarding,
            limit_stopped,
            last_down,
            jitter,
            rx,
        } = image;
        check_resume(&config, &local_open, &peer_open)?;
        let by_config = Negotiated::new(&local_open, &peer_open, config.keepalive_time);
        if by_config.keepalive_time != keepalive_time {
            return Err(ResumeError::KeepaliveTime {
                image: keepalive_time,
                config: by_config.keepalive_time,
            });
        }
        let negotiated = Negotiated::new(&local_open, &peer_open, Some(keepalive_time));
        let ctx = negotiated.context();
        let mut probe = BytesMut::from(&rx[..]);
        if rx.len() >= ctx.max_message_len
            || !matches!(split_message(&mut probe, ctx.max_message_len), Ok(None))
        {
            return Err(ResumeError::Buffered);
        }
        let gr = GrMachine::from_image(now, &graceful_restart)?;
        let mut timers = Timers::default();
        for (t, d) in remaining {
            if !t.is_gr() {
                timers.set(t, now + d);
            }
        }
        gr.sync_timers(&mut timers);
        let since = Time::from_duration(now.since_epoch().saturating_sub(established_for));
        tracing::info!(state = "Established", "BGP session resumed");
        Ok(Session {
            jitter: jitter.map_or_else(|| Jitter::new(config.jitter_seed), Jitter::from_state),
            config,
            state: State::Established(Box::new(Established {
                negotiated,
                since,
                eor_pending,
            })),
            timers,
            connect_retry_counter,
            failures,
            started,
            passive,
            gr,
            rx: BytesMut::from(&rx[..]),
            ctx,
            restarting,
            forwarding,
            last_down,
            limit_stopped,
            opens: Some(Box::new((local_open, peer_open))),
        })
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The timer table.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// The graceful-restart machine.
    pub fn graceful_restart(&self) -> &GrMachine {
        &self.gr
    }

    /// What was negotiated, in OpenConfirm and Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        match &self.state {
            State::OpenConfirm(n) => Some(n),
            State::Established(e) => Some(&e.negotiated),
            _ => None,
        }
    }

    /// The wire context in use (the default one until Established).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The ConnectRetryCounter of RFC 4271 §8.
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// Why the session last went to Idle.
    pub fn last_down_reason(&self) -> Option<&DownReason> {
        self.last_down.as_ref()
    }

    /// The next deadline; call [`Session::handle_timeout`] when it has passed.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next().map(|(t, _)| t)
    }

    /// The OPEN we send now: our capabilities, the R bit and the F bits as last set by
    /// [`Input::RestartState`].
    pub fn build_open(&self) -> Open {
        let c = &self.config;
        let mut caps: Vec<Capability> = c
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        if c.route_refresh {
            caps.push(Capability::RouteRefresh);
        }
        if c.enhanced_route_refresh {
            caps.push(Capability::EnhancedRouteRefresh);
        }
        if c.extended_message {
            caps.push(Capability::ExtendedMessage);
        }
        if !c.add_path.is_empty() {
            caps.push(Capability::AddPath(AddPath {
                families: c.add_path.clone(),
            }));
        }
        let ibgp = c.peer_asn == Some(c.local_asn);
        if let Some(role) = c.role.filter(|r| !ibgp && r.expected_peer_role().is_some()) {
            caps.push(Capability::Role(role));
        }
        let g = &c.graceful_restart;
        let known = || c.families.iter().copied().filter(|f| f.is_known());
        if g.enabled {
            let mut flags = 0;
            if self.restarting {
                flags |= GracefulRestart::RESTART_STATE;
            }
            if g.notification {
                flags |= GracefulRestart::NOTIFICATION;
            }
            let families = if g.helper_only {
                Vec::new()
            } else {
                known()
                    .map(|f| GracefulRestartFamily::new(f, self.forwarding.contains(f)))
                    .collect()
            };
            caps.push(Capability::GracefulRestart(GracefulRestart {
                flags,
                restart_time: g.restart_time.min(GracefulRestart::MAX_RESTART_TIME),
                families,
            }));
            if let Some(stale) = g.llgr_stale_time {
                caps.push(Capability::LongLivedGracefulRestart(
                    LongLivedGracefulRestart {
                        families: known()
                            .map(|f| LlgrFamily {
                                afi_safi: f,
                                flags: if self.forwarding.contains(f) {
                                    LlgrFamily::FORWARDING_STATE
                                } else {
                                    0
                                },
                                stale_time: stale.min(LlgrFamily::MAX_STALE_TIME),
                            })
                            .collect(),
                    },
                ));
            }
        }
        if let Some(f) = &c.fqdn {
            caps.push(Capability::Fqdn(f.clone()));
        }
        Open::new(c.local_asn, c.hold_time, c.bgp_id, caps)
    }

    /// Handles one input at time `now`.
    #[must_use]
    pub fn handle(&mut self, now: Time, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::ManualStart => {
                if self.state == State::Idle {
                    self.limit_stopped = false;
                    self.started = true;
                    self.failures = 0;
                    self.connect_retry_counter = 0;
                    self.timers.stop(Timer::IdleHold);
                    self.start(now, self.config.passive, &mut out);
                }
            }
            Input::AutomaticStart { passive } => {
                if self.state == State::Idle && !self.timers.is_running(Timer::IdleHold) {
                    self.started = true;
                    self.start(now, passive, &mut out);
                }
            }
            Input::ManualStop => self.manual_stop(now, &mut out),
            Input::HardReset => self.hard_reset(now, &mut out),
            Input::AutomaticStop(n) => self.automatic_stop(now, n, &mut out),
            Input::TcpConnected | Input::TcpConnectionConfirmed => self.tcp_up(now, &mut out),
            Input::TcpFails => self.tcp_fails(now, &mut out),
            Input::Bytes(b) => self.receive_bytes(now, &b, &mut out),
            Input::Message(m) => self.receive(now, m, &mut out),
            Input::OpenCollisionDump => self.collision_dump(now, &mut out),
            Input::SendProgress => {
                if self.timers.is_running(Timer::SendHold) {
                    self.start_send_hold(now);
                }
            }
            Input::SendUpdate(u) => {
                if self.state.is_established() {
                    self.send(now, Message::Update(u), &mut out);
                }
            }
            Input::InitialRoutesSent(f) => self.initial_routes_sent(now, f, &mut out),
            Input::RequestRouteRefresh(f) => {
                if let State::Established(e) = &self.state {
                    let n = &e.negotiated;
                    if (n.route_refresh || n.enhanced_route_refresh) && n.families.contains(f) {
                        let m = Message::RouteRefresh(RouteRefresh::request(f));
                        self.send(now, m, &mut out);
                    }
                }
            }
            Input::RefreshDone(f) => {
                let due = self.negotiated().is_some_and(|n| {
                    self.state.is_established()
                        && n.enhanced_route_refresh
                        && n.families.contains(f)
                });
                if due {
                    let m = Message::RouteRefresh(RouteRefresh::eorr(f));
                    self.send(now, m, &mut out);
                }
            }
            Input::RestartState {
                restarting,
                forwarding,
            } => {
                self.restarting = restarting;
                self.forwarding = forwarding;
            }
            Input::ConfigChanged(cfg) => self.config_changed(now, *cfg, &mut out),
            Input::PrefixLimitExceeded {
                family,
                limit,
                restart_after,
            } => self.prefix_limit_exceeded(now, family, limit, restart_after, &mut out),
        }
        self.gr.sync_timers(&mut self.timers);
        out
    }

    /// Runs every timer whose deadline is at or before `now`.
    #[must_use]
    pub fn handle_timeout(&mut self, now: Time) -> Vec<Action> {
        let mut out = Vec::new();
        // Each handler stops or moves its own timer to the future; the bound is a safety net.
        for _ in 0..64 {
            let Some((at, timer)) = self.timers.next() else {
                break;
            };
            if at > now {
                break;
            }
            self.timers.stop(timer);
            self.on_timer(now, timer, &mut out);
            self.gr.sync_timers(&mut self.timers);
        }
        out
    }

    fn set_state(&mut self, new: State) {
        if self.state.name() != new.name() {
            tracing::info!(
                from = self.state.name(),
                to = new.name(),
                "BGP state change"
            );
        }
        self.state = new;
    }

    fn start(&mut self, now: Time, passive: bool, out: &mut Vec<Action>) {
        self.passive = passive;
        self.start_connect_retry(now);
        if passive {
            self.set_state(State::Active);
        } else {
            out.push(Action::Connect);
            self.set_state(State::Connect);
        }
    }

    fn start_connect_retry(&mut self, now: Time) {
        let d = self.jitter.apply(self.config.connect_retry_time);
        self.timers.set(Timer::ConnectRetry, now + d);
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        let k = self.negotiated()?.keepalive_time;
        (k > 0).then(|| Duration::from_secs(u64::from(k)))
    }

    fn start_keepalive(&mut self, now: Time) {
        match self.keepalive_interval() {
            Some(k) => {
                // RFC 4271 §4.4: never more than one KEEPALIVE a second, jitter or not.
                let d = self.jitter.apply(k).max(Duration::from_secs(1));
                self.timers.set(Timer::Keepalive, now + d);
            }
            None => self.timers.stop(Timer::Keepalive),
        }
    }

    fn start_hold(&mut self, now: Time) {
        let h = self.negotiated().map_or(0, |n| n.hold_time);
        if h == 0 {
            self.timers.stop(Timer::Hold);
        } else {
            self.timers
                .set(Timer::Hold, now + Duration::from_secs(u64::from(h)));
        }
    }

    fn start_send_hold(&mut self, now: Time) {
        let Some(base) = self.config.send_hold_time else {
            return;
        };
        let hold = self.negotiated().map_or(0, |n| n.hold_time);
        let d = base.max(Duration::from_secs(2 * u64::from(hold)));
        self.timers.set(Timer::SendHold, now + d);
    }

    fn send(&mut self, now: Time, m: Message, out: &mut Vec<Action>) {
        let restarts_keepalive = matches!(m, Message::Keepalive | Message::Update(_));
        out.push(Action::Send(m));
        if restarts_keepalive && matches!(self.state, State::Established(_)) {
            self.start_keepalive(now);
        }
    }

    fn send_open(&mut self, now: Time, out: &mut Vec<Action>) {
        let open = self.build_open();
        out.push(Action::Send(Message::Open(open.clone())));
        self.timers.stop(Timer::ConnectRetry);
        self.timers.stop(Timer::DelayOpen);
        self.timers
            .set(Timer::Hold, now + self.config.open_hold_time);
        self.set_state(State::OpenSent(Box::new(open)));
    }

    fn idle_hold_time(&mut self) -> Duration {
        let base = self.config.idle_hold_time;
        let d = if self.config.damp_peer_oscillations {
            let exp = self.failures.saturating_sub(1).min(20);
            base.checked_mul(1 << exp)
                .unwrap_or(self.config.max_idle_hold_time)
                .min(self.config.max_idle_hold_time.max(base))
        } else {
            base
        };
        self.jitter.apply(d)
    }

    /// Leaves for Idle: closes the connection, runs the GR machine if Established, counts
    /// the failure (ConnectRetryCounter and damping) when `count`, and arms the automatic
    /// restart when allowed.
    fn go_idle(&mut self, now: Time, reason: DownReason, count: bool, out: &mut Vec<Action>) {
        if self.state == State::Idle {
            return;
        }
        out.push(Action::CloseConnection);
        if let State::Established(e) = &self.state {
            let retention = retention(&reason, &e.negotiated);
            let cfg = &self.config.graceful_restart;
            self.gr
                .session_down(now, &e.negotiated, cfg, retention, out);
            out.push(Action::SessionDown(reason.clone()));
            if now.saturating_since(e.since) >= self.config.max_idle_hold_time {
                self.failures = 0;
            }
        }
        self.rx.clear();
        self.ctx = Context::default();
        self.opens = None;
        for t in [
            Timer::ConnectRetry,
            Timer::Hold,
            Timer::Keepalive,
            Timer::DelayOpen,
            Timer::SendHold,
            Timer::Deferral,
        ] {
            self.timers.stop(t);
        }
        if count {
            self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
            self.failures = self.failures.saturating_add(1);
        }
        tracing::debug!(?reason, "session to Idle");
        self.last_down = Some(reason);
        self.set_state(State::Idle);
        if self.started && self.config.allow_automatic_start {
            let d = self.idle_hold_time();
            self.timers.set(Timer::IdleHold, now + d);
        }
    }

    fn notify_and_idle(&mut self, now: Time, n: Notification, out: &mut Vec<Action>) {
        out.push(Action::Send(Message::Notification(n.clone())));
        self.go_idle(now, DownReason::NotificationSent(n), true, out);
    }

    fn fsm_error(&mut self, now: Time, out: &mut Vec<Action>) {
        let sub = match self.state {
            State::OpenSent(_) => fsm_subcode::UNEXPECTED_IN_OPEN_SENT,
            State::OpenConfirm(_) => fsm_subcode::UNEXPECTED_IN_OPEN_CONFIRM,
            State::Established(_) => fsm_subcode::UNEXPECTED_IN_ESTABLISHED,
            _ => fsm_subcode::UNSPECIFIED,
        };
        self.notify_and_idle(now, Notification::new(code::FSM, sub), out);
    }

    /// "Any other event" in Connect and Active: no NOTIFICATION (no OPEN was sent).
    fn other_event_before_open(&mut self, now: Time, out: &mut Vec<Action>) {
        self.go_idle(now, DownReason::TcpError, true, out);
    }

    fn has_open_out(&self) -> bool {
        matches!(
            self.state,
            State::OpenSent(_) | State::OpenConfirm(_) | State::Established(_)
        )
    }

    fn manual_stop(&mut self, now: Time, out: &mut Vec<Action>) {
        self.started = false;
        self.timers.stop(Timer::IdleHold);
        if self.has_open_out() {
            let cease = Notification::cease(cease_subcode::ADMINISTRATIVE_SHUTDOWN);
            let n = match self.negotiated() {
                Some(neg) if neg.gr_notification() && self.state.is_established() => {
                    Notification::hard_reset(&cease)
                }
                _ => cease,
            };
            out.push(Action::Send(Message::Notification(n)));
        }
        self.go_idle(now, DownReason::AdminStop, false, out);
        self.connect_retry_counter = 0;
        self.gr.purge_all(out);
        self.timers.stop(Timer::IdleHold);
    }

    fn prefix_limit_exceeded(
        &mut self,
        now: Time,
        family: AfiSafi,
        limit: u32,
        restart_after: Option<Duration>,
        out: &mut Vec<Action>,
    ) {
        if !self.has_open_out() {
            return;
        }
        // RFC 4486 §4: AFI (2 octets), SAFI (1), the upper bound (4).
        let mut data = Vec::with_capacity(7);
        data.extend_from_slice(&family.afi.0.to_be_bytes());
        data.push(family.safi.0);
        data.extend_from_slice(&limit.to_be_bytes());
        let cease = Notification::with_data(code::CEASE, cease_subcode::MAX_PREFIXES, data);
        let n = match self.negotiated() {
            Some(neg) if neg.gr_notification() && self.state.is_established() => {
                Notification::hard_reset(&cease)
            }
            _ => cease,
        };
        self.notify_and_idle(now, n, out);
        self.gr.purge_all(out);
        self.timers.stop(Timer::IdleHold);
        match restart_after {
            Some(d) => self.timers.set(Timer::IdleHold, now + d),
            None => {
                self.started = false;
                self.limit_stopped = true;
            }
        }
    }

    fn hard_reset(&mut self, now: Time, out: &mut Vec<Action>) {
        if self.state == State::Idle && std::mem::take(&mut self.limit_stopped) {
            // An operator's reset lifts a prefix-limit stop.
            self.started = true;
            self.failures = 0;
            self.connect_retry_counter = 0;
            self.start(now, self.config.passive, out);
            return;
        }
        if self.has_open_out() {
            let reset = Notification::cease(cease_subcode::ADMINISTRATIVE_RESET);
            let n = match self.negotiated() {
                Some(neg) if neg.gr_notification() => Notification::hard_reset(&reset),
                _ => reset,
            };
            out.push(Action::Send(Message::Notification(n)));
            self.go_idle(now, DownReason::AdminStop, false, out);
        }
        self.gr.purge_all(out);
    }

    fn automatic_stop(&mut self, now: Time, n: Notification, out: &mut Vec<Action>) {
        match self.state {
            State::Idle => {}
            State::Connect | State::Active => self.other_event_before_open(now, out),
            _ => self.notify_and_idle(now, n, out),
        }
    }

    fn collision_dump(&mut self, now: Time, out: &mut Vec<Action>) {
        match self.state {
            State::Idle => {}
            State::Connect | State::Active => self.other_event_before_open(now, out),
            _ => {
                let n = Notification::cease(cease_subcode::CONNECTION_COLLISION_RESOLUTION);
                self.notify_and_idle(now, n, out);
            }
        }
    }

    fn config_changed(&mut self, now: Time, cfg: SessionConfig, out: &mut Vec<Action>) {
        if self.state == State::Idle || !self.config.requires_reset(&cfg) {
            self.passive = cfg.passive;
            self.config = cfg;
            return;
        }
        if self.has_open_out() {
            let n = Notification::cease(cease_subcode::OTHER_CONFIGURATION_CHANGE);
            out.push(Action::Send(Message::Notification(n)));
        }
        self.config = cfg;
        self.go_idle(now, DownReason::ConfigChange, false, out);
    }

    fn tcp_up(&mut self, now: Time, out: &mut Vec<Action>) {
        match self.state {
            // Idle refuses connections.
            State::Idle => out.push(Action::CloseConnection),
            State::Connect | State::Active => {
                if self.timers.is_running(Timer::DelayOpen) {
                    return;
                }
                self.timers.stop(Timer::ConnectRetry);
                match self.config.delay_open {
                    Some(d) => self.timers.set(Timer::DelayOpen, now + d),
                    None => self.send_open(now, out),
                }
            }
            // A second connection: the driver resolves collisions (§6.8).
            _ => {}
        }
    }

    fn tcp_fails(&mut self, now: Time, out: &mut Vec<Action>) {
        match self.state {
            State::Idle => {}
            State::Connect => {
                if self.timers.is_running(Timer::DelayOpen) {
                    self.timers.stop(Timer::DelayOpen);
                    self.start_connect_retry(now);
                    out.push(Action::CloseConnection);
                    self.set_state(State::Active);
                } else {
                    self.go_idle(now, DownReason::TcpError, false, out);
                }
            }
            State::OpenSent(_) => {
                out.push(Action::CloseConnection);
                self.rx.clear();
                self.timers.stop(Timer::Hold);
                self.start_connect_retry(now);
                self.set_state(State::Active);
            }
            _ => self.go_idle(now, DownReason::TcpError, true, out),
        }
    }

    fn receive_bytes(&mut self, now: Time, b: &[u8], out: &mut Vec<Action>) {
        if self.state == State::Idle {
            return;
        }
        self.rx.extend_from_slice(b);
        while self.state != State::Idle {
            match split_message(&mut self.rx, self.ctx.max_message_len) {
                Ok(None) => break,
                Ok(Some((h, msg))) => {
                    let body = msg.slice(bgp_wire::context::HEADER_LEN..);
                    match Message::decode_body(h, body, &self.ctx) {
                        Ok(m) => self.receive(now, m, out),
                        Err(e) => self.decode_error(now, e, out),
                    }
                }
                Err(e) => self.decode_error(now, e, out),
            }
        }
    }

    /// BGPHeaderErr, BGPOpenMsgErr, UpdateMsgErr (Events 21, 22, 28) and the other message
    /// errors: the NOTIFICATION the error calls for, then Idle.
    fn decode_error(&mut self, now: Time, e: DecodeError, out: &mut Vec<Action>) {
        tracing::debug!(error = %e, "decode error");
        match self.state {
            State::Idle => {}
            State::Connect | State::Active => self.go_idle(
                now,
                DownReason::NotificationSent(e.notification()),
                true,
                out,
            ),
            _ => self.notify_and_idle(now, e.notification(), out),
        }
    }

    fn receive(&mut self, now: Time, m: Message, out: &mut Vec<Action>) {
        tracing::debug!(kind = ?m.kind(), state = self.state.name(), "message received");
        match (&self.state, m) {
            (State::Idle, _) => {}
            (State::Connect | State::Active, Message::Open(peer))
                if self.timers.is_running(Timer::DelayOpen) =>
            {
                self.open_during_delay(now, &peer, out)
            }
            (State::Connect | State::Active, Message::Notification(n)) => {
                let count = !(is_version_error(&n) && self.timers.is_running(Timer::DelayOpen));
                self.go_idle(now, DownReason::NotificationReceived(n), count, out);
            }
            (State::Connect | State::Active, _) => self.other_event_before_open(now, out),
            (State::OpenSent(local), Message::Open(peer)) => {
                let local = (**local).clone();
                self.open_received(now, &local, &peer, out);
            }
            (_, Message::Notification(n)) => {
                let count = !is_version_error(&n) || self.state.is_established();
                self.go_idle(now, DownReason::NotificationReceived(n), count, out);
            }
            (State::OpenConfirm(_), Message::Keepalive) => self.establish(now, out),
            (State::Established(_), m) => self.receive_established(now, m, out),
            (State::OpenSent(_) | State::OpenConfirm(_), _) => self.fsm_error(now, out),
        }
    }

    /// Event 20: the peer's OPEN while DelayOpenTimer runs.
    fn open_during_delay(&mut self, now: Time, peer: &Open, out: &mut Vec<Action>) {
        let local = self.build_open();
        if let Err(n) = validate_open(&self.config, &local, peer) {
            return self.notify_and_idle(now, n, out);
        }
        out.push(Action::Send(Message::Open(local.clone())));
        self.timers.stop(Timer::ConnectRetry);
        self.timers.stop(Timer::DelayOpen);
        self.confirm(now, &local, peer, out);
    }

    /// Event 19 in OpenSent.
    fn open_received(&mut self, now: Time, local: &Open, peer: &Open, out: &mut Vec<Action>) {
        if let Err(n) = validate_open(&self.config, local, peer) {
            return self.notify_and_idle(now, n, out);
        }
        self.timers.stop(Timer::ConnectRetry);
        self.timers.stop(Timer::DelayOpen);
        self.confirm(now, local, peer, out);
    }

    fn confirm(&mut self, now: Time, local: &Open, peer: &Open, out: &mut Vec<Action>) {
        let neg = Negotiated::new(local, peer, self.config.keepalive_time);
        self.opens = Some(Box::new((local.clone(), peer.clone())));
        out.push(Action::Send(Message::Keepalive));
        self.set_state(State::OpenConfirm(Box::new(neg)));
        self.start_keepalive(now);
        self.start_hold(now);
    }

    /// Event 26 in OpenConfirm.
    fn establish(&mut self, now: Time, out: &mut Vec<Action>) {
        let State::OpenConfirm(neg) = &self.state else {
            return;
        };
        let neg = (**neg).clone();
        self.ctx = neg.context();
        let wait = self.restarting || self.config.wait_for_initial_routes;
        let (eor_pending, immediate) = if wait {
            (neg.families, AfiSafiSet::EMPTY)
        } else {
            (AfiSafiSet::EMPTY, neg.families)
        };
        out.push(Action::Established(Box::new(neg.clone())));
        self.gr
            .session_up(now, &neg, &self.config.graceful_restart, out);
        self.set_state(State::Established(Box::new(Established {
            negotiated: neg,
            since: now,
            eor_pending,
        })));
        self.start_hold(now);
        self.start_send_hold(now);
        if !eor_pending.is_empty() {
            self.timers
                .set(Timer::Deferral, now + self.config.eor_deferral_time);
        }
        for f in immediate.iter() {
            self.send(now, Message::Update(Update::end_of_rib_marker(f)), out);
        }
        if eor_pending.is_empty() {
            self.restarting = false;
        }
    }

    fn receive_established(&mut self, now: Time, m: Message, out: &mut Vec<Action>) {
        let State::Established(e) = &self.state else {
            return;
        };
        let neg = &e.negotiated;
        let (rr, err, families) = (
            neg.route_refresh || neg.enhanced_route_refresh,
            neg.enhanced_route_refresh,
            neg.families,
        );
        match m {
            Message::Keepalive => self.start_hold(now),
            Message::Update(u) => {
                self.start_hold(now);
                match u.end_of_rib() {
                    Some(f) => {
                        out.push(Action::EndOfRib(f));
                        self.gr.end_of_rib(f, out);
                    }
                    None => out.push(Action::UpdateReceived(u)),
                }
            }
            Message::RouteRefresh(r) => {
                self.start_hold(now);
                // RFC 2918 §4: a family not negotiated, or no capability: ignore.
                if !rr || !families.contains(r.afi_safi) {
                    return;
                }
                match r.subtype {
                    RouteRefreshSubtype::Request => {
                        if err {
                            let m = Message::RouteRefresh(RouteRefresh::borr(r.afi_safi));
                            self.send(now, m, out);
                        }
                        out.push(Action::RouteRefreshRequested(r.afi_safi));
                    }
                    RouteRefreshSubtype::BeginningOfRefresh if err => {
                        let cfg = &self.config.graceful_restart;
                        self.gr.begin_refresh(now, r.afi_safi, cfg, out);
                    }
                    RouteRefreshSubtype::EndOfRefresh if err => {
                        self.gr.end_refresh(r.afi_safi, out);
                    }
                    // RFC 7313 §5: unknown subtypes are ignored.
                    _ => {}
                }
            }
            Message::Open(_) => self.fsm_error(now, out),
            Message::Notification(n) => {
                self.go_idle(now, DownReason::NotificationReceived(n), true, out)
            }
        }
    }

    fn initial_routes_sent(&mut self, now: Time, f: Option<AfiSafi>, out: &mut Vec<Action>) {
        let State::Established(e) = &mut self.state else {
            return;
        };
        let due = select(e.eor_pending, f);
        for f in due.iter() {
            e.eor_pending.remove(f);
        }
        let done = e.eor_pending.is_empty();
        for f in due.iter() {
            self.send(now, Message::Update(Update::end_of_rib_marker(f)), out);
        }
        if done {
            self.timers.stop(Timer::Deferral);
            self.restarting = false;
        }
    }

    fn on_timer(&mut self, now: Time, timer: Timer, out: &mut Vec<Action>) {
        match (timer, &self.state) {
            (Timer::ConnectRetry, State::Connect) => {
                out.push(Action::CloseConnection);
                self.timers.stop(Timer::DelayOpen);
                self.start_connect_retry(now);
                out.push(Action::Connect);
            }
            (Timer::ConnectRetry, State::Active) => {
                self.start_connect_retry(now);
                if !self.passive {
                    out.push(Action::Connect);
                    self.set_state(State::Connect);
                }
            }
            (Timer::DelayOpen, State::Connect | State::Active) => self.send_open(now, out),
            (Timer::IdleHold, State::Idle) if self.started && self.config.allow_automatic_start => {
                // Restart the way the session was last started (passive or not).
                self.start(now, self.passive, out);
            }
            (Timer::Hold, State::OpenSent(_) | State::OpenConfirm(_) | State::Established(_)) => {
                let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0);
                out.push(Action::Send(Message::Notification(n)));
                self.go_idle(now, DownReason::HoldTimerExpired, true, out);
            }
            (Timer::Keepalive, State::OpenConfirm(_) | State::Established(_)) => {
                out.push(Action::Send(Message::Keepalive));
                self.start_keepalive(now);
            }
            (Timer::SendHold, State::Established(_)) => {
                let n = Notification::new(code::SEND_HOLD_TIMER_EXPIRED, 0);
                out.push(Action::Send(Message::Notification(n)));
                self.go_idle(now, DownReason::SendHoldTimerExpired, true, out);
            }
            (Timer::Deferral, State::Established(_)) => {
                self.initial_routes_sent(now, None, out);
            }
            (Timer::Restart | Timer::Stale | Timer::LlgrStale | Timer::RefreshStale, _) => {
                self.gr.handle_timeout(now, out);
            }
            // A timer that does not belong to the state: stopped already, nothing else.
            _ => {}
        }
    }
}

/// The checks of [`Session::resume`] on the OPENs, in the order of the error's fields.
fn check_resume(config: &SessionConfig, local: &Open, peer: &Open) -> Result<(), ResumeError> {
    if local.asn() != config.local_asn {
        return Err(ResumeError::LocalAsn {
            image: local.asn(),
            config: config.local_asn,
        });
    }
    if local.bgp_id != config.bgp_id {
        return Err(ResumeError::BgpId {
            image: local.bgp_id,
            config: config.bgp_id,
        });
    }
    if let Some(want) = config.peer_asn.filter(|a| *a != peer.asn()) {
        return Err(ResumeError::PeerAsn {
            image: peer.asn(),
            config: want,
        });
    }
    if local.hold_time != config.hold_time {
        return Err(ResumeError::HoldTime {
            image: local.hold_time,
            config: config.hold_time,
        });
    }
    // Our OPEN as the configuration builds it, with the R and F bits the session sent.
    let mut probe = Session::new(config.clone());
    let gr = local.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g),
        _ => None,
    });
    probe.restarting = gr.is_some_and(|g| g.flags & GracefulRestart::RESTART_STATE != 0);
    for c in &local.capabilities {
        match c {
            Capability::GracefulRestart(g) => {
                for f in g.families.iter().filter(|f| f.forwarding_state()) {
                    probe.forwarding.insert(f.afi_safi);
                }
            }
            Capability::LongLivedGracefulRestart(l) => {
                for f in l.families.iter().filter(|f| f.forwarding_state()) {
                    probe.forwarding.insert(f.afi_safi);
                }
            }
            _ => {}
        }
    }
    if probe.build_open() != *local {
        return Err(ResumeError::Capabilities);
    }
    validate_open(config, local, peer).map_err(ResumeError::PeerRejected)
}

fn is_version_error(n: &Notification) -> bool {
    n.code == code::OPEN_MESSAGE && n.subcode == open_subcode::UNSUPPORTED_VERSION
}

/// Whether graceful restart keeps the peer's routes after this loss (RFC 4724 §4.2,
/// RFC 8538 §4): TCP loss always; with the N bit on both sides, also the hold timers and any
/// NOTIFICATION but Hard Reset. Administrative stops and configuration changes never.
fn retention(reason: &DownReason, neg: &Negotiated) -> Retention {
    let keep = neg.graceful_restart()
        && match reason {
            DownReason::TcpError => true,
            DownReason::HoldTimerExpired | DownReason::SendHoldTimerExpired => {
                neg.gr_notification()
            }
            DownReason::NotificationSent(n) | DownReason::NotificationReceived(n) => {
                neg.gr_notification() && !n.is_hard_reset()
            }
            DownReason::AdminStop | DownReason::ConfigChange => false,
        };
    if keep {
        Retention::Retain
    } else {
        Retention::Purge
    }
}

#[cfg(test)]
mod tests;
