//! Session configuration: plain structs with `Default` (STYLE 12).

use std::net::Ipv4Addr;
use std::time::Duration;

use bgp_wire::capability::{AddPathFamily, Fqdn, Role};
use bgp_wire::{AfiSafi, Asn};

/// What one session needs to know about itself and its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS number.
    pub local_asn: Asn,
    /// The peer's AS number; `None` accepts any (non-zero) AS.
    pub peer_asn: Option<Asn>,
    /// Our BGP Identifier (RFC 6286).
    pub bgp_id: Ipv4Addr,
    /// The hold time we propose, in seconds (RFC 4271 §4.2; 0 or at least 3). Default 90.
    pub hold_time: u16,
    /// The keepalive interval; `None` is a third of the negotiated hold time. It is never
    /// longer than that third (RFC 4271 §4.4).
    pub keepalive_time: Option<u16>,
    /// The hold time used in OpenSent before the peer's OPEN arrives (RFC 4271 §8.2.2
    /// suggests 4 minutes).
    pub open_hold_time: Duration,
    /// ConnectRetryTime (RFC 4271 §10 suggests 120 s). Jittered.
    pub connect_retry_time: Duration,
    /// PassiveTcpEstablishment: never initiate a connection, wait for the peer's.
    pub passive: bool,
    /// DelayOpen: wait this long after the connection before sending OPEN, or until the peer's
    /// OPEN arrives (RFC 4271 §8.1.1).
    pub delay_open: Option<Duration>,
    /// AllowAutomaticStart: after an error, restart by itself once the idle hold time passed.
    pub allow_automatic_start: bool,
    /// DampPeerOscillations: the idle hold time doubles with each consecutive failure, from
    /// `idle_hold_time` up to `max_idle_hold_time`, and returns to `idle_hold_time` once a
    /// session stayed established for `max_idle_hold_time`. Without it the idle hold time is
    /// always `idle_hold_time`.
    pub damp_peer_oscillations: bool,
    /// The first idle hold time.
    pub idle_hold_time: Duration,
    /// The largest idle hold time.
    pub max_idle_hold_time: Duration,
    /// The send hold timer of RFC 9687; `None` disables it. The timer used is the larger of
    /// this and twice the negotiated hold time (RFC 9687 §3 suggests 8 minutes).
    pub send_hold_time: Option<Duration>,
    /// Families we advertise with the multiprotocol capability (RFC 4760).
    pub families: Vec<AfiSafi>,
    /// Advertise route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Advertise enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// Advertise extended messages (RFC 8654).
    pub extended_message: bool,
    /// ADD-PATH per family (RFC 7911).
    pub add_path: Vec<AddPathFamily>,
    /// Our BGP role (RFC 9234), for eBGP sessions.
    pub role: Option<Role>,
    /// Strict role mode: refuse a peer that does not send the role capability (RFC 9234 §4.2).
    pub strict_role: bool,
    /// Our hostname and domain (FQDN capability).
    pub fqdn: Option<Fqdn>,
    /// Codes of our capabilities the peer must also advertise (RFC 5492 §5). For the
    /// multiprotocol capability, every family we advertise must be advertised back.
    pub required_capabilities: Vec<u8>,
    /// Graceful restart (RFC 4724, RFC 8538, RFC 9494).
    pub graceful_restart: GracefulRestartConfig,
    /// Hold back our End-of-RIB for each family until the embedder says its initial routes
    /// were sent ([`crate::Input::InitialRoutesSent`]) or the deferral timer fires. When false
    /// and we are not restarting, End-of-RIB goes out right after the session is established.
    pub wait_for_initial_routes: bool,
    /// How long our End-of-RIB may be held back (RFC 4724 §4.1's selection deferral time).
    pub eor_deferral_time: Duration,
    /// Seed for timer jitter.
    pub jitter_seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            local_asn: Asn(65000),
            peer_asn: None,
            bgp_id: Ipv4Addr::new(192, 0, 2, 1),
            hold_time: 90,
            keepalive_time: None,
            open_hold_time: Duration::from_secs(240),
            connect_retry_time: Duration::from_secs(120),
            passive: false,
            delay_open: None,
            allow_automatic_start: true,
            damp_peer_oscillations: true,
            idle_hold_time: Duration::from_secs(5),
            max_idle_hold_time: Duration::from_secs(300),
            send_hold_time: Some(Duration::from_secs(480)),
            families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
            route_refresh: true,
            enhanced_route_refresh: true,
            extended_message: true,
            add_path: Vec::new(),
            role: None,
            strict_role: false,
            fqdn: None,
            required_capabilities: Vec::new(),
            graceful_restart: GracefulRestartConfig::default(),
            wait_for_initial_routes: true,
            eor_deferral_time: Duration::from_secs(360),
            jitter_seed: 1,
        }
    }
}

impl SessionConfig {
    /// Whether moving a running session from `self` to `new` needs the session reset: true
    /// when anything that goes into our OPEN or into what the OPENs negotiate differs.
    /// Timers that only run outside Established (connect retry, idle hold, open hold,
    /// delay open), passivity, the send hold timer, the End-of-RIB deferral and the jitter
    /// seed take effect the next time they are used, without a reset.
    pub fn requires_reset(&self, new: &SessionConfig) -> bool {
        let carried = SessionConfig {
            open_hold_time: new.open_hold_time,
            connect_retry_time: new.connect_retry_time,
            passive: new.passive,
            delay_open: new.delay_open,
            allow_automatic_start: new.allow_automatic_start,
            damp_peer_oscillations: new.damp_peer_oscillations,
            idle_hold_time: new.idle_hold_time,
            max_idle_hold_time: new.max_idle_hold_time,
            send_hold_time: new.send_hold_time,
            wait_for_initial_routes: new.wait_for_initial_routes,
            eor_deferral_time: new.eor_deferral_time,
            jitter_seed: new.jitter_seed,
            ..self.clone()
        };
        carried != *new
    }
}

/// Graceful restart in both roles (RFC 4724), with RFC 8538 and long-lived GR (RFC 9494).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Advertise the capability and act as receiving speaker. When false, a peer's GR
    /// capability is ignored and every session loss purges its routes.
    pub enabled: bool,
    /// Helper only: advertise the capability without families, so that the peer does not
    /// keep our routes when we restart (RFC 4724 §3).
    pub helper_only: bool,
    /// The restart time we advertise, in seconds (12 bits).
    pub restart_time: u16,
    /// Set the N bit (RFC 8538): NOTIFICATIONs other than Hard Reset keep routes too.
    pub notification: bool,
    /// The stale-path time: how long after the peer is back we wait for its End-of-RIB.
    pub stale_time: Duration,
    /// The peer's restart time is raised to at least this (seconds).
    pub min_restart_time: u16,
    /// The peer's restart time is cut to at most this (seconds).
    pub max_restart_time: u16,
    /// Long-lived GR: the stale time we advertise per family (24 bits, seconds); `None` means
    /// no LLGR capability and no long-lived retention.
    pub llgr_stale_time: Option<u32>,
    /// The peer's long-lived stale time is cut to at most this (seconds).
    pub max_llgr_stale_time: u32,
    /// How long we wait for the peer's End of Route Refresh after its BoRR (RFC 7313 §4).
    pub refresh_stale_time: Duration,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            enabled: true,
            helper_only: false,
            restart_time: 120,
            notification: true,
            stale_time: Duration::from_secs(360),
            min_restart_time: 0,
            max_restart_time: 3600,
            llgr_stale_time: None,
            max_llgr_stale_time: 86_400,
            refresh_stale_time: Duration::from_secs(360),
        }
    }
}
