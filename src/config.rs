//! Configuration: plain structs with defaults, readable from a TOML file whose vocabulary
//! follows GoBGP's (`[global]`, `[[peer]]`, `[[announce]]`).
//!
//! Every error names the file, the line and column, the key, and what is allowed; secrets
//! never appear in `Debug` output or errors.
//!
//! ```
//! let cfg = bgp_speaker::config::Config::from_toml(
//!     r#"
//!     [global]
//!     asn = 65001
//!     router-id = "192.0.2.1"
//!
//!     [[peer]]
//!     address = "127.0.0.2"
//!     peer-asn = 65002
//!
//!     [[announce]]
//!     prefix = "198.51.100.0/24"
//!     communities = ["65001:100", "no-export"]
//!     "#,
//!     "example.toml",
//! )?;
//! assert_eq!(cfg.peers[0].hold_time, 90);
//! # Ok::<(), bgp_speaker::config::ConfigError>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use bgp_wire::attribute::Origin as WireOrigin;
use bgp_wire::{AfiSafi, Community, LargeCommunity};
use ipnet::IpNet;
use serde::Deserialize;

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Settings of the speaker itself.
    pub global: Global,
    /// The peers.
    #[serde(default, rename = "peer")]
    pub peers: Vec<Peer>,
    /// The routes to announce.
    #[serde(default, rename = "announce")]
    pub announcements: Vec<Announce>,
}

/// Settings of the speaker itself (`[global]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Global {
    /// Our AS number (1..=4294967295).
    pub asn: u32,
    /// Our BGP identifier (RFC 6286: any non-zero 32-bit value, written as IPv4).
    pub router_id: Ipv4Addr,
    /// Addresses to accept connections on; empty (the default) accepts none.
    #[serde(default)]
    pub listen: Vec<IpAddr>,
    /// The port to listen on.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Pass routes learned from peers on to the other peers (transit / route-server
    /// behaviour). Off by default: an embedder announces only its own routes.
    #[serde(default)]
    pub export_learned: bool,
    /// Where the restart state (how we stopped, what was negotiated, the deadline) is kept,
    /// so that a restarted process sets the GR R and F bits by itself. Default:
    /// [`Global::default_restart_state_file`].
    #[serde(default)]
    pub restart_state_file: Option<PathBuf>,
    /// Routes whose AS_PATH holds more AS numbers than this are treated as withdrawn.
    #[serde(default = "default_max_as_path_length")]
    pub max_as_path_length: u32,
    /// Routes carrying more path attributes than this are treated as withdrawn.
    #[serde(default = "default_max_attributes")]
    pub max_attributes: u32,
    /// A Unix socket on which the running speaker waits for a new process that takes its
    /// sessions over (a hitless upgrade; see `bgp_speaker::handover`). Default: none.
    #[serde(default)]
    pub hand_over_socket: Option<PathBuf>,
}

fn default_max_as_path_length() -> u32 {
    1024
}

fn default_max_attributes() -> u32 {
    128
}

impl Default for Global {
    fn default() -> Self {
        Global {
            asn: 0,
            router_id: Ipv4Addr::UNSPECIFIED,
            listen: Vec::new(),
            port: default_port(),
            export_learned: false,
            restart_state_file: None,
            max_as_path_length: default_max_as_path_length(),
            max_attributes: default_max_attributes(),
            hand_over_socket: None,
        }
    }
}

impl Global {
    /// The restart-state file: the configured one, or one in the system's temporary
    /// directory named after our AS and router id, so that a plain restart of the same
    /// command finds it.
    pub fn default_restart_state_file(&self) -> PathBuf {
        self.restart_state_file.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "bgp-speaker-{}-{}.restart-state",
                self.asn, self.router_id
            ))
        })
    }
}

fn default_port() -> u16 {
    179
}

/// A peer (`[[peer]]`). Peers are identified by address and port, never by AS.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Peer {
    /// The peer's address.
    pub address: IpAddr,
    /// The peer's port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The peer's AS number.
    pub peer_asn: u32,
    /// The local address to connect from (and to expect the peer's connection on).
    #[serde(default)]
    pub local_address: Option<IpAddr>,
    /// Wait for the peer to connect instead of connecting.
    #[serde(default)]
    pub passive: bool,
    /// Hold time to propose, in seconds: 0 (no keepalives) or 3..=65535.
    #[serde(default = "default_hold_time")]
    pub hold_time: u16,
    /// Keepalive interval in seconds; default a third of the negotiated hold time.
    #[serde(default)]
    pub keepalive: Option<u16>,
    /// Seconds between connection attempts.
    #[serde(default = "default_connect_retry")]
    pub connect_retry: u16,
    /// TCP MD5 signature password (RFC 2385); never logged or shown.
    #[serde(default)]
    pub password: Option<Secret>,
    /// IP TTL for eBGP multihop (1 = directly connected).
    #[serde(default)]
    pub ebgp_multihop: Option<u8>,
    /// GTSM (RFC 5082): accept only packets that crossed at most this many hops.
    #[serde(default)]
    pub ttl_security: Option<u8>,
    /// Address families, by name (`ipv4-unicast`, `ipv6-unicast`, ...). Default: the family
    /// of the peer's address.
    #[serde(default)]
    pub families: Vec<Family>,
    /// Graceful restart (RFC 4724).
    #[serde(default)]
    pub graceful_restart: GracefulRestart,
    /// The next hop for IPv4 routes sent to this peer (default: our local address).
    #[serde(default)]
    pub next_hop_ipv4: Option<Ipv4Addr>,
    /// The next hop for IPv6 routes sent to this peer (default: our local address if IPv6).
    #[serde(default)]
    pub next_hop_ipv6: Option<Ipv6Addr>,
    /// Offer extended messages (RFC 8654, up to 65,535 octets); `false` keeps every message
    /// within 4,096 octets.
    #[serde(default = "yes")]
    pub extended_message: bool,
    /// Limits on the prefixes the peer may send, per family (`[[peer.prefix-limit]]`).
    #[serde(default)]
    pub prefix_limit: Vec<PrefixLimit>,
}

/// A limit on the prefixes a peer may send for one family (`[[peer.prefix-limit]]`,
/// RFC 4486).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrefixLimit {
    /// The family (`ipv4-unicast`, `ipv6-unicast`, ...).
    pub family: Family,
    /// The most prefixes the peer may hold.
    pub max: u32,
    /// Warn at this share of `max`, in percent (1..=100). Default 75.
    #[serde(default = "default_warning_percent")]
    pub warning_percent: u8,
    /// Only warn; never stop the session.
    #[serde(default)]
    pub warning_only: bool,
    /// Seconds after which a session stopped for its limit starts again; absent: it
    /// stays down until reset.
    #[serde(default)]
    pub restart_after: Option<u32>,
}

fn default_warning_percent() -> u8 {
    75
}

impl Peer {
    /// The families to negotiate: the configured ones, or the family of the peer's address.
    pub fn families(&self) -> Vec<AfiSafi> {
        if self.families.is_empty() {
            vec![match self.address {
                IpAddr::V4(_) => AfiSafi::IPV4_UNICAST,
                IpAddr::V6(_) => AfiSafi::IPV6_UNICAST,
            }]
        } else {
            self.families.iter().map(|f| f.0).collect()
        }
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("address", &self.address)
            .field("port", &self.port)
            .field("peer_asn", &self.peer_asn)
            .field("local_address", &self.local_address)
            .field("passive", &self.passive)
            .field("hold_time", &self.hold_time)
            .field("keepalive", &self.keepalive)
            .field("connect_retry", &self.connect_retry)
            .field("password", &self.password)
            .field("ebgp_multihop", &self.ebgp_multihop)
            .field("ttl_security", &self.ttl_security)
            .field("families", &self.families)
            .field("graceful_restart", &self.graceful_restart)
            .field("next_hop_ipv4", &self.next_hop_ipv4)
            .field("next_hop_ipv6", &self.next_hop_ipv6)
            .field("extended_message", &self.extended_message)
            .field("prefix_limit", &self.prefix_limit)
            .finish()
    }
}

fn default_hold_time() -> u16 {
    90
}

fn default_connect_retry() -> u16 {
    5
}

/// A secret (a TCP MD5 password): shown as `"<redacted>"` in `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that needs it (the socket option).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// An address family named as in the configuration (`ipv4-unicast`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Family(pub AfiSafi);

impl TryFrom<String> for Family {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        AfiSafi::from_name(&s).map(Family).ok_or_else(|| {
            format!(
                "unknown family {s:?}; allowed: ipv4-unicast, ipv6-unicast, ipv4-multicast, ipv6-multicast"
            )
        })
    }
}

/// Graceful restart settings of a peer (`[peer.graceful-restart]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GracefulRestart {
    /// Advertise the capability (RFC 4724). On by default.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The restart time we advertise, in seconds (0..=4095).
    #[serde(default = "default_restart_time")]
    pub restart_time: u16,
    /// RFC 8538: graceful restart also on NOTIFICATIONs and hold-timer expiry (N bit).
    #[serde(default = "yes")]
    pub notification: bool,
}

impl Default for GracefulRestart {
    fn default() -> Self {
        GracefulRestart {
            enabled: true,
            restart_time: default_restart_time(),
            notification: true,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_restart_time() -> u16 {
    120
}

/// A route to announce (`[[announce]]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Announce {
    /// The prefix.
    pub prefix: IpNet,
    /// The next hop; default: the peer's configured next hop for the family, else our
    /// local address.
    #[serde(default)]
    pub next_hop: Option<IpAddr>,
    /// ORIGIN.
    #[serde(default)]
    pub origin: Origin,
    /// MULTI_EXIT_DISC.
    #[serde(default)]
    pub med: Option<u32>,
    /// LOCAL_PREF (sent to iBGP peers only).
    #[serde(default)]
    pub local_pref: Option<u32>,
    /// COMMUNITIES: `"65000:100"` or a well-known name (`no-export`, `no-advertise`, ...).
    #[serde(default)]
    pub communities: Vec<CommunityValue>,
    /// LARGE_COMMUNITY values: `"4200000001:1:2"`.
    #[serde(default)]
    pub large_communities: Vec<LargeCommunityValue>,
    /// How many extra times to prepend our AS.
    #[serde(default)]
    pub as_path_prepend: u8,
    /// Announce only to these peers (by address); default: all.
    #[serde(default)]
    pub peers: Vec<IpAddr>,
}

/// ORIGIN as written in the configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// IGP (the default).
    #[default]
    Igp,
    /// EGP.
    Egp,
    /// INCOMPLETE.
    Incomplete,
}

impl From<Origin> for WireOrigin {
    fn from(o: Origin) -> Self {
        match o {
            Origin::Igp => WireOrigin::Igp,
            Origin::Egp => WireOrigin::Egp,
            Origin::Incomplete => WireOrigin::Incomplete,
        }
    }
}

/// A community as written in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CommunityValue(pub Community);

impl TryFrom<String> for CommunityValue {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let named = [
            ("no-export", Community::NO_EXPORT),
            ("no-advertise", Community::NO_ADVERTISE),
            ("no-export-subconfed", Community::NO_EXPORT_SUBCONFED),
            ("nopeer", Community::NOPEER),
            ("blackhole", Community::BLACKHOLE),
            ("graceful-shutdown", Community::GRACEFUL_SHUTDOWN),
        ];
        if let Some((_, c)) = named.iter().find(|(n, _)| *n == s) {
            return Ok(CommunityValue(*c));
        }
        let parsed = s
            .split_once(':')
            .and_then(|(a, v)| Some(Community::new(a.parse().ok()?, v.parse().ok()?)));
        parsed.map(CommunityValue).ok_or_else(|| {
            format!(
                "invalid community {s:?}; allowed: \"ASN:VALUE\" with both 0..=65535, or one of \
                 no-export, no-advertise, no-export-subconfed, nopeer, blackhole, graceful-shutdown"
            )
        })
    }
}

/// A large community as written in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LargeCommunityValue(pub LargeCommunity);

impl TryFrom<String> for LargeCommunityValue {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let mut it = s.split(':').map(str::parse::<u32>);
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(Ok(g)), Some(Ok(a)), Some(Ok(b)), None) => {
                Ok(LargeCommunityValue(LargeCommunity::new(g, a, b)))
            }
            _ => Err(format!(
                "invalid large community {s:?}; allowed: \"GLOBAL:LOCAL1:LOCAL2\", each 0..=4294967295"
            )),
        }
    }
}

/// A configuration error, with where it is and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct ConfigError {
    /// The file (or other origin) of the configuration.
    pub origin: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong, naming the key and what is allowed.
    pub message: String,
}

impl Config {
    /// Reads a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// Parses and checks a configuration; `origin` names it in errors (usually the path).
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let err_at = |offset: Option<usize>, message: String| {
            let (line, column) = offset.map_or((0, 0), |o| line_col(text, o));
            ConfigError {
                origin: origin.to_string(),
                line,
                column,
                message,
            }
        };
        let cfg: Config = toml::from_str(text)
            .map_err(|e| err_at(e.span().map(|s| s.start), e.message().trim().to_string()))?;
        cfg.check()
            .map_err(|(needle, msg)| err_at(find_key(text, &needle), msg))?;
        Ok(cfg)
    }

    /// Checks what the types alone do not; returns the text to locate and the message.
    fn check(&self) -> Result<(), (String, String)> {
        let g = &self.global;
        if g.asn == 0 {
            return Err(("asn".into(), "global.asn: must be 1..=4294967295".into()));
        }
        if g.router_id.is_unspecified() {
            return Err((
                "router-id".into(),
                "global.router-id: must be a non-zero IPv4-formatted identifier".into(),
            ));
        }
        for (i, p) in self.peers.iter().enumerate() {
            let at = p.address.to_string();
            let name = at.clone();
            let key = |k: &str| format!("peer[{i}] ({name}).{k}");
            if p.peer_asn == 0 {
                return Err((at, format!("{}: must be 1..=4294967295", key("peer-asn"))));
            }
            if matches!(p.hold_time, 1 | 2) {
                return Err((
                    "hold-time".into(),
                    format!(
                        "{}: must be 0 or 3..=65535 (RFC 4271 §4.2)",
                        key("hold-time")
                    ),
                ));
            }
            if p.graceful_restart.restart_time > 4095 {
                return Err((
                    "restart-time".into(),
                    format!(
                        "{}: must be 0..=4095 seconds (RFC 4724 §3)",
                        key("restart-time")
                    ),
                ));
            }
            if p.ebgp_multihop.is_some() && p.ttl_security.is_some() {
                return Err((
                    "ttl-security".into(),
                    format!(
                        "{}: ebgp-multihop and ttl-security exclude each other",
                        key("ttl-security")
                    ),
                ));
            }
            for (k, l) in p.prefix_limit.iter().enumerate() {
                if !(1..=100).contains(&l.warning_percent) {
                    return Err((
                        "warning-percent".into(),
                        format!(
                            "{}: must be 1..=100",
                            key(&format!("prefix-limit[{k}].warning-percent"))
                        ),
                    ));
                }
                if p.prefix_limit[..k].iter().any(|o| o.family == l.family) {
                    return Err((
                        "family".into(),
                        format!(
                            "{}: {} has a limit already",
                            key(&format!("prefix-limit[{k}].family")),
                            l.family.0
                        ),
                    ));
                }
            }
            if let Some(j) = self.peers[..i]
                .iter()
                .position(|q| q.address == p.address && q.port == p.port)
            {
                return Err((
                    at.clone(),
                    format!("peer[{i}]: address {at} port {} is also peer[{j}]", p.port),
                ));
            }
        }
        for (i, a) in self.announcements.iter().enumerate() {
            let at = a.prefix.to_string();
            if a.prefix != a.prefix.trunc() {
                return Err((
                    at.clone(),
                    format!(
                        "announce[{i}].prefix: {at} has host bits set; did you mean {}?",
                        a.prefix.trunc()
                    ),
                ));
            }
            for peer in &a.peers {
                if !self.peers.iter().any(|p| p.address == *peer) {
                    return Err((
                        peer.to_string(),
                        format!("announce[{i}].peers: {peer} is not a configured peer"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |n| before.len() - n - 1)
        + 1;
    (line, column)
}

fn find_key(text: &str, needle: &str) -> Option<usize> {
    text.find(needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
[global]
asn = 4200000001
router-id = "192.0.2.1"
listen = ["127.0.0.1"]

[[peer]]
address = "127.0.0.2"
peer-asn = 65002
password = "hunter2"
families = ["ipv4-unicast", "ipv6-unicast"]
[peer.graceful-restart]
restart-time = 60

[[announce]]
prefix = "198.51.100.0/24"
communities = ["65001:100", "no-export"]
large-communities = ["4200000001:1:2"]
peers = ["127.0.0.2"]
"#;

    #[test]
    fn parses_with_defaults() {
        let c = Config::from_toml(OK, "t.toml").unwrap();
        assert_eq!(c.global.asn, 4_200_000_001);
        assert_eq!(c.global.port, 179);
        assert!(!c.global.export_learned);
        let p = &c.peers[0];
        assert_eq!((p.hold_time, p.connect_retry, p.passive), (90, 5, false));
        assert_eq!(p.graceful_restart.restart_time, 60);
        assert!(p.graceful_restart.enabled && p.graceful_restart.notification);
        assert_eq!(
            p.families(),
            vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
        );
        let a = &c.announcements[0];
        assert_eq!(a.communities[1].0, Community::NO_EXPORT);
        assert_eq!(a.origin, Origin::Igp);
    }

    #[test]
    fn password_never_shows() {
        let c = Config::from_toml(OK, "t.toml").unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
        assert_eq!(
            c.peers[0].password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
    }

    fn err(text: &str) -> ConfigError {
        Config::from_toml(text, "t.toml").unwrap_err()
    }

    #[test]
    fn errors_name_file_line_key_and_what_is_allowed() {
        let e = err(&OK.replace("\"no-export\"", "\"no-exprot\""));
        assert_eq!((e.origin.as_str(), e.line), ("t.toml", 17));
        assert!(
            e.message.contains("no-exprot") && e.message.contains("allowed"),
            "{e}"
        );

        let e = err(&OK.replace("peer-asn = 65002", "peer-asn = 65002\nhold-time = 2"));
        assert_eq!(e.line, 10);
        assert!(
            e.message.contains("hold-time") && e.message.contains("3..=65535"),
            "{e}"
        );

        let e = err(&OK.replace("198.51.100.0/24", "198.51.100.7/24"));
        assert_eq!(e.line, 16);
        assert!(e.message.contains("198.51.100.0/24"), "{e}");

        let e = err(&OK.replace("peers = [\"127.0.0.2\"]", "peers = [\"127.0.0.9\"]"));
        assert!(e.message.contains("not a configured peer"), "{e}");

        let e = err(&OK.replace("listen", "listne"));
        assert_eq!(e.line, 5);
        assert!(e.message.contains("listne"), "{e}");

        let e = err(&OK.replace(
            "families = [\"ipv4-unicast\"",
            "families = [\"ipv4-unicorn\"",
        ));
        assert!(
            e.message.contains("ipv4-unicorn") && e.message.contains("ipv6-unicast"),
            "{e}"
        );
        assert_eq!(e.to_string().split(':').next(), Some("t.toml"));
    }

    #[test]
    fn the_annotated_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/speaker.toml");
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.peers.len(), 1);
        assert_eq!(c.announcements.len(), 2);
        let l = &c.peers[0].prefix_limit[0];
        assert_eq!(
            (l.max, l.warning_percent, l.restart_after),
            (100_000, 75, Some(300))
        );
        assert_eq!(c.global.max_as_path_length, 1024);
    }

    #[test]
    fn prefix_limits_are_checked() {
        let with = |extra: &str| {
            OK.replace(
                "[peer.graceful-restart]",
                &format!("{extra}\n[peer.graceful-restart]"),
            )
        };
        let c = Config::from_toml(
            &with(
                "[[peer.prefix-limit]]\nfamily = \"ipv6-unicast\"\nmax = 10\nwarning-only = true",
            ),
            "t.toml",
        )
        .unwrap();
        let l = &c.peers[0].prefix_limit[0];
        assert_eq!(
            (l.family.0, l.max, l.warning_only),
            (AfiSafi::IPV6_UNICAST, 10, true)
        );
        let e = err(&with(
            "[[peer.prefix-limit]]\nfamily = \"ipv4-unicast\"\nmax = 10\nwarning-percent = 0",
        ));
        assert!(e.message.contains("prefix-limit[0].warning-percent"), "{e}");
        assert!(e.message.contains("1..=100"), "{e}");
        let e = err(&with("[[peer.prefix-limit]]\nfamily = \"ipv4-unicast\""));
        assert!(e.message.contains("max"), "{e}");
    }

    #[test]
    fn default_restart_state_file_is_stable() {
        let c = Config::from_toml(OK, "t.toml").unwrap();
        let f = c.global.default_restart_state_file();
        assert_eq!(f, c.global.default_restart_state_file());
        assert!(f.to_string_lossy().contains("4200000001"));
    }
}
