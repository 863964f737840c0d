//! The embedder API: a [`Speaker`] running on the caller's tokio runtime, driven through a
//! cloneable [`SpeakerHandle`], reporting through a bounded [`EventStream`].
//!
//! One task (the speaker task) owns the peer tasks, the listeners and the
//! [`Core`] (behind a mutex that the peer tasks also take, briefly, to
//! drain their Adj-RIB-Out). Commands from handles travel over a bounded channel and are
//! answered over oneshot channels; events go out over a bounded channel and are dropped,
//! counted, when the embedder does not keep up ([`Event::Lagged`]), so that a slow
//! reader never stalls the sessions.
//!
//! Graceful restart, restarting side (RFC 4724 §4.1): [`SpeakerHandle::stop_for_restart`]
//! writes the restart-state file ([`GlobalSettings::restart_state_file`]) and closes the
//! sessions so that helpers keep our routes. The next [`Speaker::start`] reads it: peers
//! found there get the R bit (and F bits for [`GlobalSettings::forwarding_preserved`]),
//! and are sent nothing, End-of-RIB included, until [`SpeakerHandle::initial_routes_done`]
//! (or [`GlobalSettings::eor_deferral`] passes). Then they get our whole table and End-of-RIB,
//! and drop exactly the routes we did not announce again.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bgp_fsm::{GracefulRestartConfig, SessionConfig};
use bgp_wire::{AfiSafi, AfiSafiSet, Asn, MessageType};
use ipnet::IpNet;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::{self, Secret};
use crate::core::{
    Announcement, Core, CoreCommand, CoreOutbox, CoreOutput, CorePeer, CoreSettings, Event,
    ImportLimits, PrefixLimit, Route, describe_down,
};
use crate::handover;
use crate::listener::{self, Dispatcher};
use crate::peer::{
    BGP_PORT, OutboxHandle, PeerCommand, PeerConfig, PeerContext, PeerEvent, PeerHandle, PeerId,
    PeerStats, spawn_peer,
};
use crate::restart_state::{RestartState, RestartStateError, Restarting, StopKind};
use crate::snapshot::{MessageCounts, PeerSnapshot, SessionState};
use crate::sockopt::{SockOptError, SocketOptions};
use crate::transport::{Connector, MemoryNetwork, TcpConnector};

mod hand_over;

/// Where sessions run: TCP, or an in-memory network (tests, see [`crate::testkit`]).
#[derive(Clone, Debug, Default)]
pub enum Network {
    /// TCP sockets.
    #[default]
    Tcp,
    /// The in-memory network: listening and connecting through it.
    Memory(MemoryNetwork),
}

/// The speaker's own settings, and the peers and routes it starts with.
#[derive(Clone, Debug)]
pub struct GlobalSettings {
    /// Our AS.
    pub asn: Asn,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Addresses to accept connections on; empty (the default): none.
    pub listen: Vec<SocketAddr>,
    /// Pass routes learned from peers on to the other peers (route-server style: next hops
    /// are kept). Off by default.
    pub export_learned: bool,
    /// Emit [`Event::RouteChanged`] for every best-route change (for embedders that learn
    /// routes). Off by default: an announce-only embedder pays nothing for it.
    pub loc_rib_events: bool,
    /// The restart-state file; `None`: none is read or written.
    pub restart_state_file: Option<PathBuf>,
    /// Families whose forwarding state survives our restart (F bits, RFC 4724 §3).
    pub forwarding_preserved: AfiSafiSet,
    /// After a restart, how long End-of-RIB waits at most for
    /// [`SpeakerHandle::initial_routes_done`] (RFC 4724 §4.1's selection deferral).
    pub eor_deferral: Duration,
    /// The peers to start with.
    pub peers: Vec<PeerSettings>,
    /// The routes to start with.
    pub announcements: Vec<Announcement>,
    /// Capacity of the event stream.
    pub event_capacity: usize,
    /// Capacity of the command channel of the handles.
    pub command_capacity: usize,
    /// TCP or in memory.
    pub network: Network,
    /// Limits on routes learned from peers (AS_PATH length, attributes per route).
    pub limits: ImportLimits,
    /// A Unix socket to listen on for a new process that takes the sessions over
    /// ([`Speaker::take_over`], [`crate::handover`]); `None` (the default): no hand-over.
    /// The socket file is created with mode 0600.
    pub hand_over_socket: Option<PathBuf>,
    /// How long each side of a hand-over waits for the other at each step.
    pub hand_over_timeout: Duration,
}

impl Default for GlobalSettings {
    fn default() -> Self {
        GlobalSettings {
            asn: Asn(65000),
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            listen: Vec::new(),
            export_learned: false,
            loc_rib_events: false,
            restart_state_file: None,
            forwarding_preserved: AfiSafiSet::EMPTY,
            eor_deferral: Duration::from_secs(120),
            peers: Vec::new(),
            announcements: Vec::new(),
            event_capacity: 1024,
            command_capacity: 64,
            network: Network::Tcp,
            limits: ImportLimits::default(),
            hand_over_socket: None,
            hand_over_timeout: handover::DEFAULT_TIMEOUT,
        }
    }
}

impl GlobalSettings {
    /// The settings of a configuration file: global settings, peers and announcements. The
    /// F bits are set for every family (a CLI speaker programs no forwarding table whose
    /// state a restart could lose).
    pub fn from_config(cfg: &config::Config) -> Self {
        let g = &cfg.global;
        GlobalSettings {
            asn: Asn(g.asn),
            router_id: g.router_id,
            listen: g
                .listen
                .iter()
                .map(|a| SocketAddr::new(*a, g.port))
                .collect(),
            export_learned: g.export_learned,
            restart_state_file: Some(g.default_restart_state_file()),
            // The CLI programs no forwarding table of its own: what forwards traffic for
            // its routes is elsewhere and survives its restart.
            forwarding_preserved: AfiSafi::KNOWN.into_iter().collect(),
            peers: cfg.peers.iter().map(PeerSettings::from).collect(),
            announcements: cfg.announcements.iter().map(Announcement::from).collect(),
            limits: ImportLimits {
                max_as_path_len: g.max_as_path_length as usize,
                max_attributes: g.max_attributes as usize,
            },
            hand_over_socket: g.hand_over_socket.clone(),
            ..GlobalSettings::default()
        }
    }
}

impl From<&config::Announce> for Announcement {
    fn from(a: &config::Announce) -> Self {
        let mut x = Announcement::new(a.prefix);
        x.next_hop = a.next_hop;
        x.origin = a.origin.into();
        x.med = a.med;
        x.local_pref = a.local_pref;
        x.communities = a.communities.iter().map(|c| c.0).collect();
        x.large_communities = a.large_communities.iter().map(|c| c.0).collect();
        x.as_path_prepend = a.as_path_prepend;
        x.peers = a.peers.clone();
        x
    }
}

/// One peer. Identified by address, port and interface, never by AS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSettings {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's port.
    pub port: u16,
    /// The interface (IPv6 link-local peers, or to bind to a device).
    pub interface: Option<String>,
    /// The peer's AS.
    pub asn: Asn,
    /// Our address on the session (connect from it; our next hop by default).
    pub local_address: Option<IpAddr>,
    /// Wait for the peer's connection.
    pub passive: bool,
    /// Hold time to propose (0, or 3 and more), seconds.
    pub hold_time: u16,
    /// Keepalive interval, seconds; `None`: a third of the hold time.
    pub keepalive: Option<u16>,
    /// Between connection attempts.
    pub connect_retry: Duration,
    /// Before an automatic restart after an error (doubles with repeated failures).
    pub idle_hold_time: Duration,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<Secret>,
    /// TTL for eBGP multihop.
    pub ebgp_multihop: Option<u8>,
    /// GTSM (RFC 5082) hop count.
    pub ttl_security: Option<u8>,
    /// Families; empty: the family of the peer's address.
    pub families: Vec<AfiSafi>,
    /// Graceful restart (RFC 4724, RFC 8538).
    pub graceful_restart: GracefulRestartConfig,
    /// Limits on the prefixes the peer may send, per family (RFC 4486). None by default.
    pub prefix_limits: Vec<PrefixLimit>,
    /// Our IPv4 next hop towards this peer (default: the local address, if IPv4).
    pub next_hop_ipv4: Option<Ipv4Addr>,
    /// Our IPv6 next hop towards this peer (default: the local address, if IPv6).
    pub next_hop_ipv6: Option<Ipv6Addr>,
    /// Whether the session runs (a disabled peer stays configured, in Idle).
    pub enabled: bool,
    /// How long a new connection waits for the peer's OPEN before it is dropped with
    /// Hold Timer Expired (the large hold time of OpenSent, RFC 4271 §8.2.2 suggests 4
    /// minutes).
    pub open_hold_time: Duration,
    /// Offer extended messages (RFC 8654): with both sides offering it, messages up to
    /// 65,535 octets; without, at most 4,096 octets are accepted or sent. On by default.
    pub extended_message: bool,
}

impl Default for PeerSettings {
    fn default() -> Self {
        PeerSettings {
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: BGP_PORT,
            interface: None,
            asn: Asn(65000),
            local_address: None,
            passive: false,
            hold_time: 90,
            keepalive: None,
            connect_retry: Duration::from_secs(5),
            idle_hold_time: Duration::from_secs(5),
            password: None,
            ebgp_multihop: None,
            ttl_security: None,
            families: Vec::new(),
            graceful_restart: GracefulRestartConfig::default(),
            prefix_limits: Vec::new(),
            next_hop_ipv4: None,
            next_hop_ipv6: None,
            enabled: true,
            open_hold_time: Duration::from_secs(240),
            extended_message: true,
        }
    }
}

impl PeerSettings {
    /// A peer at `address` (port 179) in AS `asn`, with the defaults.
    pub fn new(address: IpAddr, asn: Asn) -> Self {
        PeerSettings {
            address,
            asn,
            ..PeerSettings::default()
        }
    }

    /// Its identity.
    pub fn id(&self) -> PeerId {
        PeerId {
            addr: self.address,
            port: self.port,
            interface: self.interface.clone(),
        }
    }

    fn families(&self) -> Vec<AfiSafi> {
        if !self.families.is_empty() {
            return self.families.clone();
        }
        vec![match self.address {
            IpAddr::V4(_) => AfiSafi::IPV4_UNICAST,
            IpAddr::V6(_) => AfiSafi::IPV6_UNICAST,
        }]
    }

    fn peer_config(&self, g: &GlobalSettings) -> PeerConfig {
        let session = SessionConfig {
            local_asn: g.asn,
            peer_asn: Some(self.asn),
            bgp_id: g.router_id,
            hold_time: self.hold_time,
            keepalive_time: self.keepalive,
            open_hold_time: self.open_hold_time,
            extended_message: self.extended_message,
            connect_retry_time: self.connect_retry,
            idle_hold_time: self.idle_hold_time,
            passive: self.passive,
            families: self.families(),
            graceful_restart: self.graceful_restart.clone(),
            // End-of-RIB comes from the Adj-RIB-Out after the table; when we restarted,
            // the core holds it until the initial routes are in.
            wait_for_initial_routes: false,
            eor_deferral_time: g.eor_deferral,
            jitter_seed: u64::from(u32::from(g.router_id)) ^ u64::from(self.port),
            ..SessionConfig::default()
        };
        PeerConfig {
            session,
            socket: SocketOptions {
                password: self.password.clone(),
                ttl: self.ebgp_multihop,
                ttl_security: self.ttl_security,
                local_address: self.local_address,
                device: self.interface.clone(),
            },
            auto_start: false,
            end_of_rib_from_outbox: true,
            ..PeerConfig::default()
        }
    }

    fn core_peer(&self, restarting: bool) -> CorePeer {
        let v4 = match self.local_address {
            Some(IpAddr::V4(a)) => Some(a),
            _ => None,
        };
        let v6 = match self.local_address {
            Some(IpAddr::V6(a)) => Some(a),
            _ => None,
        };
        CorePeer {
            asn: self.asn,
            local_v4: self.next_hop_ipv4.or(v4),
            local_v6: self.next_hop_ipv6.or(v6),
            restarting,
            prefix_limits: self.prefix_limits.clone(),
        }
    }
}

impl From<&config::Peer> for PeerSettings {
    fn from(p: &config::Peer) -> Self {
        PeerSettings {
            address: p.address,
            port: p.port,
            interface: None,
            asn: Asn(p.peer_asn),
            local_address: p.local_address,
            passive: p.passive,
            hold_time: p.hold_time,
            keepalive: p.keepalive,
            connect_retry: Duration::from_secs(u64::from(p.connect_retry)),
            password: p.password.clone(),
            ebgp_multihop: p.ebgp_multihop,
            ttl_security: p.ttl_security,
            families: p.families(),
            graceful_restart: GracefulRestartConfig {
                enabled: p.graceful_restart.enabled,
                restart_time: p.graceful_restart.restart_time,
                notification: p.graceful_restart.notification,
                ..GracefulRestartConfig::default()
            },
            next_hop_ipv4: p.next_hop_ipv4,
            next_hop_ipv6: p.next_hop_ipv6,
            extended_message: p.extended_message,
            prefix_limits: p
                .prefix_limit
                .iter()
                .map(|l| PrefixLimit {
                    family: l.family.0,
                    max: l.max,
                    warning_percent: l.warning_percent,
                    warning_only: l.warning_only,
                    restart_after: l.restart_after.map(|s| Duration::from_secs(u64::from(s))),
                })
                .collect(),
            ..PeerSettings::default()
        }
    }
}

/// How to reset a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// Close the session (Cease; Hard Reset with the N bit: the peer drops our routes) and
    /// start again.
    Hard,
    /// Ask the peer to send its routes again (route refresh, RFC 2918).
    SoftIn,
    /// Send the peer our routes again: everything it should have, for every negotiated
    /// family, in its current state (no End-of-Route-Refresh marker: the peer did not ask).
    /// Nothing while the session is down.
    SoftOut,
}

/// How to stop for good.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownOptions {
    /// RFC 8326: first re-announce our routes with the GRACEFUL_SHUTDOWN community and wait
    /// this long, so that peers move their traffic away before the sessions close.
    pub graceful_shutdown: Option<Duration>,
}

/// What went wrong with a speaker call.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// A listening socket could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: SockOptError,
    },
    /// A socket option (a TCP MD5 key on a listening socket) was refused.
    #[error(transparent)]
    SocketOption(#[from] SockOptError),
    /// The restart-state file could not be written.
    #[error(transparent)]
    RestartState(#[from] RestartStateError),
    /// No such peer.
    #[error("no peer {0}")]
    UnknownPeer(PeerId),
    /// A peer with that address and port exists already.
    #[error("peer {0} exists already")]
    PeerExists(PeerId),
    /// The speaker holds as many peers as it can (65,535).
    #[error("too many peers")]
    TooManyPeers,
    /// Not supported yet.
    #[error("not supported yet: {0}")]
    Unsupported(&'static str),
    /// The speaker has stopped.
    #[error("the speaker has stopped")]
    Stopped,
    /// The hand-over socket could not be set up.
    #[error("hand-over socket {path}: {source}")]
    HandOverSocket {
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The events of a speaker (bounded; see [`Event::Lagged`]).
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
}

impl EventStream {
    /// The next event; `None` once the speaker has stopped.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }
}

type Reply<T> = oneshot::Sender<Result<T, SpeakerError>>;

enum Command {
    AddPeer(Box<PeerSettings>, Reply<()>),
    UpdatePeer(Box<PeerSettings>, Reply<bool>),
    RemovePeer(PeerId, Reply<()>),
    Enable(PeerId, bool, Reply<()>),
    Reset(PeerId, Reset, Reply<()>),
    LivenessDown(PeerId, bool, Reply<()>),
    Announce(Vec<Announcement>, Reply<bool>),
    Withdraw(Vec<IpNet>, Reply<bool>),
    SetRoutes(Vec<Announcement>, Reply<bool>),
    InitialRoutesDone(Reply<()>),
    Snapshot(Reply<Vec<PeerSnapshot>>),
    Routes(Reply<Vec<(AfiSafi, IpNet, Route)>>),
    StopForRestart(Reply<()>),
    Shutdown(ShutdownOptions, Reply<()>),
    HandOver(std::os::unix::net::UnixStream),
}

/// A handle to a running speaker; cheap to clone. Every call waits for the speaker task
/// to carry it out, and fails with [`SpeakerError::Stopped`] once the speaker stopped.
#[derive(Clone, Debug)]
pub struct SpeakerHandle {
    tx: mpsc::Sender<Command>,
}

/// Starts speakers.
#[derive(Debug)]
pub struct Speaker;

impl Speaker {
    /// Starts a speaker on the current tokio runtime (current-thread or multi-thread): binds
    /// the listeners, reads the restart-state file, starts the peers and announces the
    /// routes of `settings`. Fails when a listener cannot be bound or a peer cannot be set
    /// up (a TCP MD5 key the kernel refuses, say).
    ///
    /// ```
    /// use bgp_speaker::speaker::{GlobalSettings, PeerSettings, Speaker};
    /// use bgp_speaker::core::{Announcement, Event};
    /// use bgp_speaker::testkit::MemoryNetwork;
    /// use bgp_speaker::speaker::Network;
    /// use bgp_wire::Asn;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true)
    /// #     .build()?.block_on(async {
    /// let net = MemoryNetwork::new(64 * 1024);
    /// let speaker = |asn, me: &str, peer: &str, peer_asn| GlobalSettings {
    ///     asn: Asn(asn),
    ///     router_id: me.parse().unwrap(),
    ///     listen: vec![format!("{me}:179").parse().unwrap()],
    ///     loc_rib_events: true,
    ///     peers: vec![PeerSettings::new(peer.parse().unwrap(), Asn(peer_asn))],
    ///     network: Network::Memory(net.clone()),
    ///     ..GlobalSettings::default()
    /// };
    /// let (a, _a_events) = Speaker::start(speaker(65001, "10.0.0.1", "10.0.0.2", 65002)).await?;
    /// let (_b, mut b_events) = Speaker::start(speaker(65002, "10.0.0.2", "10.0.0.1", 65001)).await?;
    /// a.announce(Announcement::new("198.51.100.0/24".parse()?).with_next_hop("10.0.0.1".parse()?))
    ///     .await?;
    /// loop {
    ///     if let Some(Event::RouteChanged { prefix, route: Some(r), .. }) = b_events.recv().await {
    ///         assert_eq!(prefix.to_string(), "198.51.100.0/24");
    ///         assert_eq!(r.next_hop(), Some("10.0.0.1".parse()?));
    ///         break;
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn start(
        settings: GlobalSettings,
    ) -> Result<(SpeakerHandle, EventStream), SpeakerError> {
        let (tx, commands) = mpsc::channel(settings.command_capacity.max(1));
        let (events_tx, rx) = mpsc::channel(settings.event_capacity.max(1));
        let mut runner = Runner::new(settings, commands, events_tx, Vec::new())?;
        runner.begin().await?;
        runner.listen_for_hand_over(tx.downgrade())?;
        tokio::spawn(runner.run());
        Ok((SpeakerHandle { tx }, EventStream { rx }))
    }
}

impl SpeakerHandle {
    async fn call<T>(&self, f: impl FnOnce(Reply<T>) -> Command) -> Result<T, SpeakerError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(f(tx))
            .await
            .map_err(|_| SpeakerError::Stopped)?;
        rx.await.map_err(|_| SpeakerError::Stopped)?
    }

    /// Adds a peer and starts its session (unless disabled).
    pub async fn add_peer(&self, peer: PeerSettings) -> Result<(), SpeakerError> {
        self.call(|r| Command::AddPeer(Box::new(peer), r)).await
    }

    /// Changes a peer's settings (found by address, port and interface). Returns whether
    /// the session had to be reset: only changes to what the OPENs negotiate (AS, hold
    /// time, keepalive, families, graceful restart) or to the connection (local address,
    /// password, TTL, GTSM) reset it. Next hops and prefix limits apply at once to a running
    /// session (only the difference is sent); connect-retry and idle-hold times, and
    /// passivity, the next time they are used; `enabled` starts or stops the session.
    pub async fn update_peer(&self, peer: PeerSettings) -> Result<bool, SpeakerError> {
        self.call(|r| Command::UpdatePeer(Box::new(peer), r)).await
    }

    /// Removes a peer: Cease, and its routes are withdrawn from the others.
    pub async fn remove_peer(&self, peer: &PeerId) -> Result<(), SpeakerError> {
        self.call(|r| Command::RemovePeer(peer.clone(), r)).await
    }

    /// Starts a disabled peer's session.
    pub async fn enable_peer(&self, peer: &PeerId) -> Result<(), SpeakerError> {
        self.call(|r| Command::Enable(peer.clone(), true, r)).await
    }

    /// Stops a peer's session (Cease) and keeps it in Idle until enabled.
    pub async fn disable_peer(&self, peer: &PeerId) -> Result<(), SpeakerError> {
        self.call(|r| Command::Enable(peer.clone(), false, r)).await
    }

    /// Resets a peer's session.
    pub async fn reset_peer(&self, peer: &PeerId, how: Reset) -> Result<(), SpeakerError> {
        self.call(|r| Command::Reset(peer.clone(), how, r)).await
    }

    /// An external liveness check (BFD, say) lost the peer: the session goes down, its
    /// routes kept by graceful restart (`keep_routes`) or dropped.
    pub async fn liveness_down(
        &self,
        peer: &PeerId,
        keep_routes: bool,
    ) -> Result<(), SpeakerError> {
        self.call(|r| Command::LivenessDown(peer.clone(), keep_routes, r))
            .await
    }

    /// Announces a route (or changes its attributes). Returns whether anything changed:
    /// announcing what is announced already changes nothing and sends nothing.
    pub async fn announce(&self, route: Announcement) -> Result<bool, SpeakerError> {
        self.call(|r| Command::Announce(vec![route], r)).await
    }

    /// Announces several routes.
    pub async fn announce_all(&self, routes: Vec<Announcement>) -> Result<bool, SpeakerError> {
        self.call(|r| Command::Announce(routes, r)).await
    }

    /// Withdraws a route; returns whether it was announced.
    pub async fn withdraw(&self, prefix: IpNet) -> Result<bool, SpeakerError> {
        self.call(|r| Command::Withdraw(vec![prefix], r)).await
    }

    /// Makes our routes exactly `routes` (desired state): the others are withdrawn, new and
    /// changed ones announced, the rest left alone. Returns whether anything changed.
    pub async fn set_routes(&self, routes: Vec<Announcement>) -> Result<bool, SpeakerError> {
        self.call(|r| Command::SetRoutes(routes, r)).await
    }

    /// After a restart: our initial routes are in; End-of-RIB may go (RFC 4724 §4.1).
    pub async fn initial_routes_done(&self) -> Result<(), SpeakerError> {
        self.call(Command::InitialRoutesDone).await
    }

    /// Every peer's state and counters.
    pub async fn snapshot(&self) -> Result<Vec<PeerSnapshot>, SpeakerError> {
        self.call(Command::Snapshot).await
    }

    /// The best routes (Loc-RIB).
    pub async fn routes(&self) -> Result<Vec<(AfiSafi, IpNet, Route)>, SpeakerError> {
        self.call(Command::Routes).await
    }

    /// Stops so that graceful-restart helpers keep our routes: writes the restart-state
    /// file, closes the sessions without a Hard Reset, and ends the speaker.
    pub async fn stop_for_restart(&self) -> Result<(), SpeakerError> {
        self.call(Command::StopForRestart).await
    }

    /// Stops for good: peers are told (Cease) and drop our routes; optionally the RFC 8326
    /// GRACEFUL_SHUTDOWN community first.
    pub async fn shutdown(&self, options: ShutdownOptions) -> Result<(), SpeakerError> {
        self.call(|r| Command::Shutdown(options, r)).await
    }
}

struct PeerEntry {
    settings: PeerSettings,
    handle: PeerHandle,
    outbox: OutboxHandle,
}

struct Runner {
    settings: GlobalSettings,
    core: Arc<Mutex<Core>>,
    peers: BTreeMap<PeerId, PeerEntry>,
    dispatcher: Dispatcher,
    clock: Clock,
    epoch: SystemTime,
    commands: mpsc::Receiver<Command>,
    peer_events: mpsc::Receiver<PeerEvent>,
    peer_events_tx: mpsc::Sender<PeerEvent>,
    events: mpsc::Sender<Event>,
    missed: u64,
    restart: Option<RestartState>,
    deferral: Option<Instant>,
    wake: Arc<Notify>,
    listeners: Vec<JoinHandle<()>>,
    /// The TCP listeners, whose MD5 keys follow the peers.
    tcp_listeners: Vec<Arc<tokio::net::TcpListener>>,
    /// The task accepting hand-over connections.
    hand_over_listener: Option<JoinHandle<()>>,
}

fn lock(m: &Mutex<Core>) -> MutexGuard<'_, Core> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Peer events handled under one lock of the core, at most.
const EVENTS_PER_LOCK: usize = 64;

/// The capacity of the channel from the peer tasks to the speaker task.
const PEER_EVENT_CAPACITY: usize = 1024;

impl Runner {
    fn new(
        settings: GlobalSettings,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
        inherited: Vec<(SocketAddr, std::os::fd::OwnedFd)>,
    ) -> Result<Self, SpeakerError> {
        let core = Core::new(CoreSettings {
            local_asn: settings.asn,
            router_id: settings.router_id,
            export_learned: settings.export_learned,
            loc_rib_events: settings.loc_rib_events,
            limits: settings.limits,
        });
        let core = Arc::new(Mutex::new(core));
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        lock(&core).set_waker(Box::new(move || w.notify_one()));
        let mut inherited = inherited;
        let restart = match &settings.restart_state_file {
            Some(path) => match RestartState::load(path) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "restart state ignored: cold start");
                    None
                }
            },
            None => None,
        };
        let dispatcher = Dispatcher::new();
        let mut listeners = Vec::new();
        let mut tcp_listeners = Vec::new();
        for addr in &settings.listen {
            match &settings.network {
                Network::Tcp => {
                    let keys: Vec<_> = settings
                        .peers
                        .iter()
                        .filter_map(|p| p.password.clone().map(|s| (p.address, s)))
                        .collect();
                    let listen_error = |source| SpeakerError::Listen {
                        addr: *addr,
                        source,
                    };
                    let l = match inherited.iter().position(|(a, _)| a == addr) {
                        // Handed over by the process before: already bound and listening.
                        Some(i) => {
                            let (_, fd) = inherited.swap_remove(i);
                            let std = std::net::TcpListener::from(fd);
                            let l = std
                                .set_nonblocking(true)
                                .and_then(|()| tokio::net::TcpListener::from_std(std))
                                .map_err(|e| listen_error(SockOptError::from(e)))?;
                            for (peer, key) in &keys {
                                listener::set_listener_md5(&l, *peer, Some(key))
                                    .map_err(listen_error)?;
                            }
                            l
                        }
                        None => listener::bind_tcp(*addr, &keys).map_err(listen_error)?,
                    };
                    let l = Arc::new(l);
                    tcp_listeners.push(l.clone());
                    listeners.push(listener::spawn_shared_tcp_listener(l, dispatcher.clone()));
                }
                Network::Memory(net) => {
                    let l = net.listen(*addr, 16);
                    listeners.push(listener::spawn_memory_listener(l, dispatcher.clone()));
                }
            }
        }
        let (peer_events_tx, peer_events) = mpsc::channel(PEER_EVENT_CAPACITY);
        Ok(Runner {
            settings,
            core,
            peers: BTreeMap::new(),
            dispatcher,
            clock: Clock::new(),
            epoch: SystemTime::now(),
            commands,
            peer_events,
            peer_events_tx,
            events,
            missed: 0,
            restart,
            deferral: None,
            wake,
            listeners,
            tcp_listeners,
            hand_over_listener: None,
        })
    }

    /// Starts the configured peers and announces the configured routes.
    async fn begin(&mut self) -> Result<(), SpeakerError> {
        let routes = std::mem::take(&mut self.settings.announcements);
        for a in routes {
            let out = lock(&self.core).announce(a);
            self.apply(out).await;
        }
        let peers = std::mem::take(&mut self.settings.peers);
        for p in peers {
            if let Err(e) = self.add_peer(p).await {
                // Stop what was started: a speaker starts whole or not at all.
                self.stop_peers(PeerCommand::Stop).await;
                return Err(e);
            }
        }
        Ok(())
    }

    fn restarting_for(&self, id: &PeerId) -> Option<Restarting> {
        self.restart
            .as_ref()?
            .restarting(id.addr, id.port, SystemTime::now())
    }

    fn connector(&self, s: &PeerSettings) -> Arc<dyn Connector> {
        match &self.settings.network {
            Network::Tcp => Arc::new(TcpConnector),
            Network::Memory(net) => {
                let local = s
                    .local_address
                    .or_else(|| self.settings.listen.first().map(|a| a.ip()))
                    .unwrap_or(IpAddr::V4(self.settings.router_id));
                Arc::new(net.connector(local))
            }
        }
    }

    async fn add_peer(&mut self, s: PeerSettings) -> Result<(), SpeakerError> {
        let id = s.id();
        if self.peers.contains_key(&id) {
            return Err(SpeakerError::PeerExists(id));
        }
        // A refused key is an error, never an unauthenticated session.
        if s.password.is_some() {
            self.set_md5(s.address, s.password.as_ref())?;
        }
        let restarting = if lock(&self.core).is_initial_routes_done() {
            None
        } else {
            self.restarting_for(&id)
        };
        if restarting.is_some() && self.deferral.is_none() {
            self.deferral = Some(Instant::now() + self.settings.eor_deferral);
        }
        let out = lock(&self.core)
            .add_peer(id.clone(), s.core_peer(restarting.is_some()))
            .ok_or(SpeakerError::TooManyPeers)?;
        let cfg = s.peer_config(&self.settings);
        let socket = cfg.socket.clone();
        let ctx = PeerContext {
            clock: self.clock,
            connector: self.connector(&s),
            events: self.peer_events_tx.clone(),
        };
        let outbox = OutboxHandle::new(Arc::new(Mutex::new(CoreOutbox::new(
            self.core.clone(),
            id.clone(),
        ))));
        let handle = spawn_peer(id.clone(), cfg, ctx, outbox.clone());
        self.dispatcher.register(&id, handle.commands(), socket);
        if let Some(r) = restarting {
            tracing::info!(peer = %id, "restarting speaker: R bit set, End-of-RIB held");
            let _ = handle
                .send(PeerCommand::RestartState {
                    restarting: true,
                    forwarding: r
                        .forwarding
                        .intersection(self.settings.forwarding_preserved),
                })
                .await;
        }
        if s.enabled {
            let _ = handle.send(PeerCommand::Start).await;
        }
        self.peers.insert(
            id,
            PeerEntry {
                settings: s,
                handle,
                outbox,
            },
        );
        self.apply(out).await;
        Ok(())
    }

    async fn remove_peer(&mut self, id: &PeerId) -> Result<(), SpeakerError> {
        let Some(e) = self.peers.remove(id) else {
            return Err(SpeakerError::UnknownPeer(id.clone()));
        };
        self.dispatcher.unregister(id.addr);
        if e.settings.password.is_some() {
            let _ = self.set_md5(id.addr, None);
        }
        let _ = e.handle.send(PeerCommand::Stop).await;
        // Dropping the handle closes the task's command channel: it ends.
        drop(e);
        let out = lock(&self.core).remove_peer(id);
        self.apply(out).await;
        Ok(())
    }

    async fn update_peer(&mut self, s: PeerSettings) -> Result<bool, SpeakerError> {
        let id = s.id();
        let Some(e) = self.peers.get_mut(&id) else {
            return Err(SpeakerError::UnknownPeer(id));
        };
        if e.settings == s {
            return Ok(false);
        }
        let only_enabled = PeerSettings {
            enabled: s.enabled,
            ..e.settings.clone()
        } == s;
        if only_enabled {
            let enable = s.enabled;
            e.settings.enabled = enable;
            let cmd = if enable {
                PeerCommand::Start
            } else {
                PeerCommand::Stop
            };
            let _ = e.handle.send(cmd).await;
            return Ok(false);
        }
        if e.settings.password != s.password {
            let (addr, pw) = (s.address, s.password.clone());
            self.set_md5(addr, pw.as_ref())?;
        }
        let Some(e) = self.peers.get_mut(&id) else {
            return Err(SpeakerError::UnknownPeer(id));
        };
        let old_cfg = e.settings.peer_config(&self.settings);
        let cfg = s.peer_config(&self.settings);
        let reset = old_cfg.session.requires_reset(&cfg.session) || old_cfg.socket != cfg.socket;
        let out = lock(&self.core).update_peer(&id, s.core_peer(false));
        if old_cfg.socket != cfg.socket {
            self.dispatcher
                .register(&id, e.handle.commands(), cfg.socket.clone());
        }
        // The peer task resets the session only when the new settings require it.
        let _ = e
            .handle
            .send(PeerCommand::ConfigChanged(Box::new(cfg)))
            .await;
        if e.settings.enabled != s.enabled {
            let cmd = if s.enabled {
                PeerCommand::Start
            } else {
                PeerCommand::Stop
            };
            let _ = e.handle.send(cmd).await;
        }
        e.settings = s;
        self.apply(out).await;
        Ok(reset)
    }

    /// Sets (or, with `None`, removes) the MD5 key for `peer` on every TCP listener.
    /// Removing a key that is not there is not an error.
    fn set_md5(&self, peer: IpAddr, password: Option<&Secret>) -> Result<(), SpeakerError> {
        for l in &self.tcp_listeners {
            let r = listener::set_listener_md5(l, peer, password);
            if password.is_some() {
                r?;
            }
        }
        Ok(())
    }

    async fn peer_command(&mut self, id: &PeerId, cmd: PeerCommand) -> Result<(), SpeakerError> {
        let Some(e) = self.peers.get(id) else {
            return Err(SpeakerError::UnknownPeer(id.clone()));
        };
        let _ = e.handle.send(cmd).await;
        Ok(())
    }

    /// Carries out a core call's output.
    async fn apply(&mut self, out: CoreOutput) {
        for p in &out.notify {
            if let Some(e) = self.peers.get(p) {
                e.outbox.notify();
            }
        }
        for (p, c) in out.commands {
            let cmd = match c {
                CoreCommand::RefreshDone(f) => PeerCommand::RefreshDone(f),
                CoreCommand::InitialRoutesSent => PeerCommand::InitialRoutesSent(None),
                CoreCommand::PrefixLimitExceeded(l) => PeerCommand::PrefixLimitExceeded {
                    family: l.family,
                    limit: l.max,
                    restart_after: l.restart_after,
                },
            };
            if let Some(e) = self.peers.get(&p) {
                let _ = e.handle.send(cmd).await;
            }
        }
        for e in out.events {
            self.emit(e);
        }
    }

    fn emit(&mut self, e: Event) {
        if self.missed > 0 {
            match self.events.try_send(Event::Lagged {
                missed: self.missed,
            }) {
                Ok(()) => self.missed = 0,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.missed += 1;
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        match self.events.try_send(e) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self.missed += 1,
            // Nobody listens: fine.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    async fn run(mut self) {
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        loop {
            let deferral = self.deferral;
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => {
                        if self.command(cmd).await {
                            break;
                        }
                    }
                    None => {
                        // Every handle is gone: stop for good.
                        self.shutdown(ShutdownOptions::default()).await;
                        break;
                    }
                },
                Some(ev) = self.peer_events.recv() => {
                    // What else is already waiting is handled under the same lock, and its
                    // outcome carried out once: fewer lock hand-offs and outbox wake-ups
                    // while a table arrives.
                    let out = {
                        let mut core = lock(&self.core);
                        let mut out = core.handle(ev);
                        for _ in 1..EVENTS_PER_LOCK {
                            match self.peer_events.try_recv() {
                                Ok(ev) => out.merge(core.handle(ev)),
                                Err(_) => break,
                            }
                        }
                        out
                    };
                    self.apply(out).await;
                }
                () = self.wake.notified() => {
                    let out = {
                        let mut core = lock(&self.core);
                        CoreOutput {
                            events: core.take_events(),
                            commands: core.take_commands(),
                            ..CoreOutput::default()
                        }
                    };
                    self.apply(out).await;
                }
                () = tokio::time::sleep_until(deferral.unwrap_or(far)), if deferral.is_some() => {
                    tracing::info!("End-of-RIB deferral time passed: releasing our routes");
                    self.initial_routes_done().await;
                }
            }
        }
        for l in &self.listeners {
            l.abort();
        }
        if let Some(l) = self.hand_over_listener.take() {
            l.abort();
        }
    }

    async fn initial_routes_done(&mut self) {
        self.deferral = None;
        let out = lock(&self.core).initial_routes_done();
        self.apply(out).await;
    }

    /// Carries out one command; returns true when the speaker stops.
    async fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::AddPeer(s, r) => {
                let x = self.add_peer(*s).await;
                let _ = r.send(x);
            }
            Command::UpdatePeer(s, r) => {
                let x = self.update_peer(*s).await;
                let _ = r.send(x);
            }
            Command::RemovePeer(id, r) => {
                let x = self.remove_peer(&id).await;
                let _ = r.send(x);
            }
            Command::Enable(id, on, r) => {
                if let Some(e) = self.peers.get_mut(&id) {
                    e.settings.enabled = on;
                }
                let cmd = if on {
                    PeerCommand::Start
                } else {
                    PeerCommand::Stop
                };
                let x = self.peer_command(&id, cmd).await;
                let _ = r.send(x);
            }
            Command::Reset(id, how, r) => {
                let x = match how {
                    Reset::Hard => self.peer_command(&id, PeerCommand::HardReset).await,
                    Reset::SoftIn => self.peer_command(&id, PeerCommand::SoftResetIn(None)).await,
                    Reset::SoftOut => {
                        let out = lock(&self.core).soft_reset_out(&id);
                        match out {
                            Some(out) => {
                                self.apply(out).await;
                                Ok(())
                            }
                            None => Err(SpeakerError::UnknownPeer(id.clone())),
                        }
                    }
                };
                let _ = r.send(x);
            }
            Command::LivenessDown(id, keep_routes, r) => {
                let x = self
                    .peer_command(&id, PeerCommand::LivenessDown { keep_routes })
                    .await;
                let _ = r.send(x);
            }
            Command::Announce(routes, r) => {
                let mut out = CoreOutput::default();
                {
                    let mut core = lock(&self.core);
                    for a in routes {
                        let o = core.announce(a);
                        out.changed |= o.changed;
                        out.events.extend(o.events);
                        out.notify.extend(o.notify);
                    }
                }
                out.notify.sort();
                out.notify.dedup();
                let changed = out.changed;
                self.apply(out).await;
                let _ = r.send(Ok(changed));
            }
            Command::Withdraw(prefixes, r) => {
                let mut out = CoreOutput::default();
                {
                    let mut core = lock(&self.core);
                    for p in prefixes {
                        let o = core.withdraw(p);
                        out.changed |= o.changed;
                        out.events.extend(o.events);
                        out.notify.extend(o.notify);
                    }
                }
                out.notify.sort();
                out.notify.dedup();
                let changed = out.changed;
                self.apply(out).await;
                let _ = r.send(Ok(changed));
            }
            Command::SetRoutes(routes, r) => {
                let out = lock(&self.core).set_routes(routes);
                let changed = out.changed;
                self.apply(out).await;
                let _ = r.send(Ok(changed));
            }
            Command::InitialRoutesDone(r) => {
                self.initial_routes_done().await;
                let _ = r.send(Ok(()));
            }
            Command::Snapshot(r) => {
                let _ = r.send(Ok(self.snapshot()));
            }
            Command::Routes(r) => {
                let _ = r.send(Ok(lock(&self.core).routes()));
            }
            Command::StopForRestart(r) => {
                let x = self.stop_for_restart().await;
                let _ = r.send(x);
                return true;
            }
            Command::Shutdown(opts, r) => {
                self.shutdown(opts).await;
                let _ = r.send(Ok(()));
                return true;
            }
            Command::HandOver(stream) => return self.hand_over(stream).await,
        }
        false
    }

    fn snapshot(&self) -> Vec<PeerSnapshot> {
        let core = lock(&self.core);
        self.peers
            .iter()
            .map(|(id, e)| {
                let status = e.handle.status().borrow().clone();
                let stats = e.handle.stats();
                let (families, gr) = core.peer_counts(id);
                let neg = status.negotiated.as_deref();
                let last_error = status
                    .last_connect_error
                    .clone()
                    .or_else(|| status.last_down.as_ref().map(describe_down));
                PeerSnapshot {
                    address: id.addr,
                    port: id.port,
                    peer_asn: e.settings.asn.0,
                    enabled: e.settings.enabled,
                    state: state_of(status.state),
                    since: self.epoch + status.since.since_epoch(),
                    hold_time: neg.map(|n| n.hold_time),
                    keepalive: neg.map(|n| n.keepalive_time),
                    capabilities: neg.map(capabilities).unwrap_or_default(),
                    families,
                    received: counts(&stats, PeerStats::received),
                    sent: counts(&stats, PeerStats::sent),
                    flaps: status.flaps,
                    last_error,
                    graceful_restart: gr,
                }
            })
            .collect()
    }

    async fn stop_for_restart(&mut self) -> Result<(), SpeakerError> {
        let restart_time = self
            .peers
            .values()
            .map(|e| e.settings.graceful_restart.restart_time)
            .max()
            .unwrap_or(0);
        let mut state = RestartState::new(
            StopKind::ForRestart,
            SystemTime::now(),
            Duration::from_secs(u64::from(restart_time)),
        );
        {
            let core = lock(&self.core);
            for id in self.peers.keys() {
                let Some(n) = core.negotiated(id) else {
                    continue;
                };
                let Some(gr) = n.local_gr.as_ref().filter(|_| n.graceful_restart()) else {
                    continue;
                };
                let families: AfiSafiSet = gr
                    .families
                    .iter()
                    .map(|f| f.afi_safi)
                    .filter(|f| n.families.contains(*f))
                    .collect();
                state.add_peer(
                    id.addr,
                    id.port,
                    families,
                    families.intersection(self.settings.forwarding_preserved),
                );
            }
        }
        let saved = match &self.settings.restart_state_file {
            Some(path) => state.save(path).map_err(SpeakerError::from),
            None => Ok(()),
        };
        self.stop_peers(PeerCommand::StopForRestart).await;
        saved
    }

    async fn shutdown(&mut self, opts: ShutdownOptions) {
        if let Some(wait) = opts.graceful_shutdown {
            let out = lock(&self.core).graceful_shutdown();
            self.apply(out).await;
            tokio::time::sleep(wait).await;
        }
        if let Some(path) = &self.settings.restart_state_file {
            let state = RestartState::new(StopKind::ForGood, SystemTime::now(), Duration::ZERO);
            if let Err(e) = state.save(path) {
                tracing::warn!(error = %e, "restart state not written");
            }
        }
        self.stop_peers(PeerCommand::Stop).await;
    }

    /// Sends `how` to every peer task and waits (boundedly) for them to end.
    async fn stop_peers(&mut self, how: PeerCommand) {
        for l in &self.listeners {
            l.abort();
        }
        let peers = std::mem::take(&mut self.peers);
        let mut handles = Vec::new();
        for (id, e) in peers {
            self.dispatcher.unregister(id.addr);
            let cmd = match &how {
                PeerCommand::StopForRestart => PeerCommand::StopForRestart,
                _ => PeerCommand::Stop,
            };
            let _ = e.handle.send(cmd).await;
            handles.push(e.handle);
        }
        let all = async {
            for h in handles {
                h.join().await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .is_err()
        {
            tracing::warn!("peer tasks did not end within 5 s");
        }
        // Let the last bytes (a NOTIFICATION) be flushed by the closing connections.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn state_of(name: &str) -> SessionState {
    match name {
        "Connect" => SessionState::Connect,
        "Active" => SessionState::Active,
        "OpenSent" => SessionState::OpenSent,
        "OpenConfirm" => SessionState::OpenConfirm,
        "Established" => SessionState::Established,
        _ => SessionState::Idle,
    }
}

fn counts(stats: &PeerStats, f: fn(&PeerStats, MessageType) -> u64) -> MessageCounts {
    MessageCounts {
        open: f(stats, MessageType::Open),
        update: f(stats, MessageType::Update),
        notification: f(stats, MessageType::Notification),
        keepalive: f(stats, MessageType::Keepalive),
        route_refresh: f(stats, MessageType::RouteRefresh),
    }
}

fn capabilities(n: &bgp_fsm::Negotiated) -> Vec<String> {
    let mut v = vec!["multiprotocol".to_string()];
    let flags = [
        (n.route_refresh, "route-refresh"),
        (n.enhanced_route_refresh, "enhanced-route-refresh"),
        (n.four_octet_as, "four-octet-as"),
        (n.extended_message, "extended-message"),
        (
            !n.add_path_receive.is_empty() || !n.add_path_send.is_empty(),
            "add-path",
        ),
        (n.graceful_restart(), "graceful-restart"),
        (n.gr_notification(), "graceful-restart-notification"),
        (
            n.local_llgr.is_some() && n.peer_llgr.is_some(),
            "long-lived-graceful-restart",
        ),
        (n.local_role.is_some() && n.peer_role.is_some(), "role"),
        (n.peer_fqdn.is_some(), "fqdn"),
    ];
    v.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_string()));
    v
}
