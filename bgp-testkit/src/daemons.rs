//! Real BGP daemons as test peers: FRR (`bgpd` alone, no zebra), BIRD 2 and GoBGP, each
//! started by the test itself on its own loopback address with a generated configuration in
//! a fresh temporary directory, queried through its own CLI, and stopped (exactly the process
//! it started, by PID) when its [`Daemon`] handle is dropped, so a failing test cleans up too.
//!
//! Everything here is blocking (`std::process`, `std::thread::sleep`) and runtime-free; a
//! test drives its own side of the session on a tokio runtime of its own.
//!
//! - [`require_daemon`]: is the daemon installed? Skips (prints `skipped: ...`) or, with
//!   `BGP_INTEROP=require`, panics.
//! - [`Lab::allocate`]: a pair of loopback addresses (daemon, us) not used by another test.
//! - [`DaemonSpec`] → [`Daemon::start`]: config, process, [`Daemon::wait_ready`].
//! - [`Daemon::wait_established`], [`Daemon::routes`], [`Daemon::wait_routes`]: the daemon's
//!   view, parsed into [`DaemonRoute`]s, with bounded waits whose errors name what was
//!   awaited and carry the daemon's log tail.
//! - [`RouteSpec`]: one route with attributes, which a daemon originates (static or network
//!   statement) or our side announces; [`RouteSpec::expected`] is how it must look on the
//!   other side.
//!
//! The configuration quirks that make these daemons peer on loopback are in
//! `/docs/interop.md` and in the comments of each config writer below.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bgp_wire::{
    AfiSafi, AsPath, Asn, Communities, Community, ExtCommunities, ExtCommunity, LargeCommunities,
    LargeCommunity, NextHop, Origin, PathAttributes, Update,
};
use ipnet::IpNet;

/// The FRR BGP daemon's path (Debian package `frr`).
pub const FRR_BGPD: &str = "/usr/lib/frr/bgpd";

/// How a test reacts to a missing daemon: `BGP_INTEROP=require` makes it fail.
pub const INTEROP_ENV: &str = "BGP_INTEROP";

/// Overrides the BGP port the daemons listen on (default 179, which needs root).
pub const PORT_ENV: &str = "BGP_INTEROP_PORT";

/// A harness failure: what was awaited or attempted, and the daemon's log tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonError(pub String);

impl fmt::Display for DaemonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DaemonError {}

/// Results of the harness.
pub type Result<T> = std::result::Result<T, DaemonError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(DaemonError(msg.into()))
}

/// The three daemons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DaemonKind {
    /// FRR 8.x `bgpd`, without zebra; queried with `vtysh --vty_socket`.
    Frr,
    /// BIRD 2; queried with `birdc -s`.
    Bird,
    /// GoBGP 3; queried with `gobgp -u ADDR -p PORT`.
    Gobgp,
}

impl DaemonKind {
    /// All three, in a fixed order.
    pub const ALL: [DaemonKind; 3] = [DaemonKind::Frr, DaemonKind::Bird, DaemonKind::Gobgp];

    /// The short name (`frr`, `bird`, `gobgp`).
    pub fn name(self) -> &'static str {
        match self {
            DaemonKind::Frr => "frr",
            DaemonKind::Bird => "bird",
            DaemonKind::Gobgp => "gobgp",
        }
    }

    /// The daemon binary and its CLI.
    pub fn binaries(self) -> [&'static str; 2] {
        match self {
            DaemonKind::Frr => [FRR_BGPD, "vtysh"],
            DaemonKind::Bird => ["bird", "birdc"],
            DaemonKind::Gobgp => ["gobgpd", "gobgp"],
        }
    }

    /// The kind for a short name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The daemon's `--version` line (for reports), if it runs.
    pub fn version(self) -> Option<String> {
        let out = Command::new(self.binaries()[0])
            .arg("--version")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        text.lines().next().map(|l| l.trim().to_string())
    }
}

impl fmt::Display for DaemonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn on_path(bin: &str) -> bool {
    if bin.contains('/') {
        return Path::new(bin).is_file();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Whether the daemon and its CLI are installed.
pub fn installed(kind: DaemonKind) -> bool {
    kind.binaries().iter().all(|b| on_path(b))
}

/// Whether a test may use `kind`: `Some(kind)` when it is installed; otherwise prints
/// `skipped: <name> not installed` and returns `None`, unless `BGP_INTEROP=require`, in which
/// case it panics (so that CI fails when the packages are missing).
pub fn require_daemon(kind: impl Into<KindName>) -> Option<DaemonKind> {
    let kind = kind.into().0;
    let required = std::env::var(INTEROP_ENV).is_ok_and(|v| v == "require");
    let missing: Vec<&str> = kind
        .binaries()
        .into_iter()
        .filter(|b| !on_path(b))
        .collect();
    if missing.is_empty() {
        return Some(kind);
    }
    assert!(
        !required,
        "{INTEROP_ENV}=require but {kind} is not installed (missing {missing:?}); \
         install the Debian packages frr, bird2 and gobgpd"
    );
    println!("skipped: {kind} not installed (missing {missing:?})");
    None
}

/// A daemon named by kind or by its short name (`"bird"`), for [`require_daemon`].
#[derive(Clone, Copy, Debug)]
pub struct KindName(pub DaemonKind);

impl From<DaemonKind> for KindName {
    fn from(k: DaemonKind) -> Self {
        KindName(k)
    }
}

impl From<&str> for KindName {
    fn from(s: &str) -> Self {
        match DaemonKind::from_name(s) {
            Some(k) => KindName(k),
            None => panic!("unknown daemon {s:?}; expected frr, bird or gobgp"),
        }
    }
}

/// The BGP port the daemons listen on: `BGP_INTEROP_PORT`, or 179.
pub fn bgp_port() -> u16 {
    std::env::var(PORT_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(179)
}

static NEXT_NET: AtomicU32 = AtomicU32::new(1);

/// The loopback addresses of one test: the daemon's and ours, in a /24 of 127.0.0.0/8 that
/// no other test of this process uses and whose port is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lab {
    /// The daemon's address (`.1`).
    pub daemon: Ipv4Addr,
    /// Our address (`.2`).
    pub ours: Ipv4Addr,
}

impl Lab {
    /// Allocates a fresh pair: `127.S.N.1` and `127.S.N.2`, where `S` (64..=127) comes from
    /// the process id (so that concurrent test runs on one machine rarely meet) and `N` from a
    /// per-process counter; an address whose BGP port cannot be bound is passed over.
    pub fn allocate() -> Lab {
        let s = 64 + (std::process::id() % 64) as u8;
        loop {
            let n = NEXT_NET.fetch_add(1, Ordering::Relaxed);
            assert!(n < 250 * 4, "no free loopback /24 left for interop tests");
            let (s, n) = (s.wrapping_add((n / 250) as u8), (n % 250) as u8 + 1);
            let lab = Lab {
                daemon: Ipv4Addr::new(127, s, n, 1),
                ours: Ipv4Addr::new(127, s, n, 2),
            };
            let free =
                |a: Ipv4Addr| TcpListener::bind(SocketAddr::new(a.into(), bgp_port())).is_ok();
            if free(lab.daemon) && free(lab.ours) && free(lab.extra(0)) {
                return lab;
            }
        }
    }

    /// A further address of the same /24 (`.3`, `.4`, ...): a third peer (a monitor behind
    /// the daemon, or a second peer of ours). `extra(0)`'s BGP port was free at allocation.
    pub fn extra(&self, i: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.daemon.octets();
        Ipv4Addr::new(a, b, c, 3 + i)
    }
}

/// One route with the attributes the scenarios check: originated by a daemon (static route
/// or network statement plus policy) or announced by our side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    /// The prefix.
    pub prefix: IpNet,
    /// The next hop (attribute data only: nothing is ever sent to it).
    pub next_hop: IpAddr,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (iBGP only).
    pub local_pref: Option<u32>,
    /// COMMUNITIES, as `(asn, value)`.
    pub communities: Vec<(u16, u16)>,
    /// LARGE_COMMUNITY, as `(global, local1, local2)`.
    pub large_communities: Vec<(u32, u32, u32)>,
    /// Route targets `(asn, value)` (2-octet AS specific, RFC 4360 §4), in EXTENDED
    /// COMMUNITIES.
    pub route_targets: Vec<(u16, u32)>,
    /// How many times the originator prepends its own AS (besides the eBGP one).
    pub prepend: usize,
}

impl RouteSpec {
    /// A plain route: no optional attributes.
    pub fn new(prefix: &str, next_hop: &str) -> RouteSpec {
        RouteSpec {
            prefix: prefix.parse().expect("a prefix"),
            next_hop: next_hop.parse().expect("an address"),
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            route_targets: Vec::new(),
            prepend: 0,
        }
    }

    /// The address family.
    pub fn family(&self) -> AfiSafi {
        match self.prefix {
            IpNet::V4(_) => AfiSafi::IPV4_UNICAST,
            IpNet::V6(_) => AfiSafi::IPV6_UNICAST,
        }
    }

    /// The AS_PATH the originator `asn` sends: its AS `prepend` times, once more over eBGP.
    pub fn as_path(&self, asn: u32, ibgp: bool) -> Vec<u32> {
        let n = self.prepend + usize::from(!ibgp);
        vec![asn; n]
    }

    /// How the route looks to the receiving side when `asn` originated it.
    pub fn expected(&self, asn: u32, ibgp: bool) -> DaemonRoute {
        let mut r = DaemonRoute {
            prefix: self.prefix,
            next_hop: Some(self.next_hop),
            as_path: self.as_path(asn, ibgp),
            origin: Some(Origin::Igp),
            med: self.med,
            local_pref: if ibgp { self.local_pref } else { None },
            communities: self.communities.clone(),
            large_communities: self.large_communities.clone(),
            ext_communities: self
                .route_targets
                .iter()
                .map(|&(a, v)| ExtCommunity::route_target_as2(a, v).to_string())
                .collect(),
        };
        r.normalize();
        r
    }

    /// The path attributes our side sends for this route as AS `asn` (NEXT_HOP for IPv4;
    /// IPv6 carries its next hop in MP_REACH_NLRI, see [`RouteSpec::wire_next_hop`]).
    pub fn path_attributes(&self, asn: u32, ibgp: bool) -> PathAttributes {
        let path = self.as_path(asn, ibgp);
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(path.into_iter().map(Asn))),
            next_hop: match self.next_hop {
                IpAddr::V4(a) if self.family() == AfiSafi::IPV4_UNICAST => Some(a),
                _ => None,
            },
            med: self.med,
            local_pref: if ibgp { self.local_pref } else { None },
            communities: (!self.communities.is_empty()).then(|| {
                Communities::new(self.communities.iter().map(|&(a, v)| Community::new(a, v)))
            }),
            ext_communities: (!self.route_targets.is_empty()).then(|| {
                ExtCommunities::new(
                    self.route_targets
                        .iter()
                        .map(|&(a, v)| ExtCommunity::route_target_as2(a, v)),
                )
            }),
            large_communities: (!self.large_communities.is_empty()).then(|| {
                LargeCommunities::new(
                    self.large_communities
                        .iter()
                        .map(|&(g, a, b)| LargeCommunity::new(g, a, b)),
                )
            }),
            ..PathAttributes::default()
        }
    }

    /// The next hop for `pack_announce`.
    pub fn wire_next_hop(&self) -> NextHop {
        match self.next_hop {
            IpAddr::V4(a) => NextHop::Ipv4(a),
            IpAddr::V6(a) => NextHop::Ipv6(a),
        }
    }
}

/// A route as one side sees it, in a form every daemon's CLI and our decoder can produce.
/// Lists are sorted; extended communities are written like [`ExtCommunity`]'s `Display`
/// (`rt:65000:100`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonRoute {
    /// The prefix.
    pub prefix: IpNet,
    /// The next hop (the global one for IPv6).
    pub next_hop: Option<IpAddr>,
    /// The AS_PATH, flattened (the scenarios use AS_SEQUENCE only).
    pub as_path: Vec<u32>,
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// COMMUNITIES.
    pub communities: Vec<(u16, u16)>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<(u32, u32, u32)>,
    /// EXTENDED COMMUNITIES, as text.
    pub ext_communities: Vec<String>,
}

impl DaemonRoute {
    fn empty(prefix: IpNet) -> DaemonRoute {
        DaemonRoute {
            prefix,
            next_hop: None,
            as_path: Vec::new(),
            origin: None,
            med: None,
            local_pref: None,
            communities: Vec::new(),
            large_communities: Vec::new(),
            ext_communities: Vec::new(),
        }
    }

    fn normalize(&mut self) {
        self.communities.sort_unstable();
        self.large_communities.sort_unstable();
        self.ext_communities.sort_unstable();
    }

    /// The routes an UPDATE announces, with its attributes (IPv4 NLRI and MP_REACH_NLRI).
    pub fn from_update(u: &Update) -> Vec<DaemonRoute> {
        let a = &u.attributes;
        let base = |prefix: IpNet, next_hop: Option<IpAddr>| {
            let mut r = DaemonRoute {
                prefix,
                next_hop,
                as_path: a
                    .as_path
                    .as_ref()
                    .map(|p| p.asns().map(|x| x.0).collect())
                    .unwrap_or_default(),
                origin: a.origin,
                med: a.med,
                local_pref: a.local_pref,
                communities: a
                    .communities
                    .iter()
                    .flat_map(|c| c.iter())
                    .map(|c| (c.asn(), c.value()))
                    .collect(),
                large_communities: a
                    .large_communities
                    .iter()
                    .flat_map(|c| c.iter())
                    .map(|c| (c.global, c.local1, c.local2))
                    .collect(),
                ext_communities: a
                    .ext_communities
                    .iter()
                    .flat_map(|c| c.iter())
                    .map(|c| c.to_string())
                    .collect(),
            };
            r.normalize();
            r
        };
        let mut out: Vec<DaemonRoute> = u
            .nlri
            .iter()
            .map(|n| base(n.prefix, a.next_hop.map(IpAddr::V4)))
            .collect();
        if let Some(mp) = &u.mp_reach {
            let nh = match &mp.next_hop {
                NextHop::Ipv4(a) => Some(IpAddr::V4(*a)),
                NextHop::Ipv6(a) | NextHop::Ipv6LinkLocal { global: a, .. } => Some(IpAddr::V6(*a)),
                NextHop::Other(_) => None,
            };
            out.extend(mp.nlri.iter().map(|n| base(n.prefix, nh)));
        }
        out
    }
}

/// Session settings of the daemon's one neighbour: us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborSpec {
    /// Our address.
    pub addr: Ipv4Addr,
    /// Our AS.
    pub asn: u32,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<String>,
    /// Hold time the daemon proposes (0: no keepalives); `None`: the daemon's default.
    pub hold_time: Option<u16>,
    /// The daemon never connects; we do.
    pub passive: bool,
    /// Graceful restart (RFC 4724) with this restart time, both roles; `None`: the daemon's
    /// default (helper for FRR and BIRD, off for GoBGP).
    pub graceful_restart: Option<u16>,
}

/// Everything a daemon's generated configuration says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonSpec {
    /// Which daemon.
    pub kind: DaemonKind,
    /// Its address (it listens there, on [`DaemonSpec::port`]).
    pub addr: Ipv4Addr,
    /// Its BGP port.
    pub port: u16,
    /// Its AS.
    pub asn: u32,
    /// Its BGP identifier.
    pub router_id: Ipv4Addr,
    /// Its neighbour (us).
    pub neighbor: NeighborSpec,
    /// Further neighbours (a monitor behind the daemon, say), with the same export as
    /// [`DaemonSpec::neighbor`]: everything the daemon holds, next hops set as for us.
    pub extra_neighbors: Vec<NeighborSpec>,
    /// The routes it originates.
    pub routes: Vec<RouteSpec>,
    /// Many plain IPv4 prefixes it originates besides [`DaemonSpec::routes`] (ORIGIN IGP,
    /// no optional attributes, next hop as for every route): FRR `network` statements, a
    /// BIRD static protocol `bulk4` of its own, for GoBGP an MRT table dump injected with
    /// `gobgp mrt inject global` once the API answers. [`Daemon::withdraw_all`] withdraws
    /// them all.
    pub bulk_routes: Vec<IpNet>,
    /// Log only what is critical: bgpd without zebra logs an error line per route, which
    /// slows it several fold with many routes.
    pub quiet: bool,
}

impl DaemonSpec {
    /// A daemon at `lab.daemon` (AS `asn`) peering with us at `lab.ours` (AS `our_asn`),
    /// passive, originating nothing.
    pub fn new(kind: DaemonKind, lab: Lab, asn: u32, our_asn: u32) -> DaemonSpec {
        DaemonSpec {
            kind,
            addr: lab.daemon,
            port: bgp_port(),
            asn,
            router_id: Ipv4Addr::new(10, 255, 0, 1),
            neighbor: NeighborSpec {
                addr: lab.ours,
                asn: our_asn,
                password: None,
                hold_time: None,
                passive: true,
                graceful_restart: None,
            },
            extra_neighbors: Vec::new(),
            routes: Vec::new(),
            bulk_routes: Vec::new(),
            quiet: false,
        }
    }

    /// Adds a further neighbour at `addr` (AS `asn`) with the settings of the main one
    /// (passive, graceful restart, timers), without a password.
    pub fn add_neighbor(&mut self, addr: Ipv4Addr, asn: u32) {
        let n = NeighborSpec {
            addr,
            asn,
            password: None,
            ..self.neighbor.clone()
        };
        self.extra_neighbors.push(n);
    }

    /// Every neighbour: [`DaemonSpec::neighbor`] first.
    pub fn neighbors(&self) -> impl Iterator<Item = &NeighborSpec> {
        std::iter::once(&self.neighbor).chain(&self.extra_neighbors)
    }

    /// The name of BIRD's protocol for the neighbour at `addr`: `peer` for the main one,
    /// `peerN` for the others.
    pub fn bird_protocol(&self, addr: Ipv4Addr) -> String {
        match self.extra_neighbors.iter().position(|n| n.addr == addr) {
            Some(i) => format!("peer{}", i + 1),
            None => "peer".to_string(),
        }
    }

    /// Whether the session is iBGP.
    pub fn ibgp(&self) -> bool {
        self.asn == self.neighbor.asn
    }
}

/// A running daemon started by the test; dropping it stops exactly that process and removes
/// its directory.
#[derive(Debug)]
pub struct Daemon {
    spec: DaemonSpec,
    dir: PathBuf,
    child: Option<Child>,
    api_port: u16,
    starts: u32,
}

/// How long a stopped daemon gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(200);

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

impl Daemon {
    /// Writes the configuration into a fresh temporary directory and starts the daemon. Does
    /// not wait: see [`Daemon::wait_ready`].
    pub fn start(spec: DaemonSpec) -> Result<Daemon> {
        let dir = std::env::temp_dir().join(format!(
            "bgp-interop-{}-{}-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed),
            spec.kind,
            spec.addr
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| DaemonError(format!("creating {dir:?}: {e}")))?;
        // bgpd drops privileges to the frr user: the directory must be writable for it.
        set_mode(&dir, 0o777)?;
        let mut d = Daemon {
            spec,
            dir,
            child: None,
            api_port: 50051,
            starts: 0,
        };
        d.write_config()?;
        d.spawn(false)?;
        Ok(d)
    }

    /// Starts the daemon and waits (bounded) until its CLI answers.
    pub fn start_ready(spec: DaemonSpec, timeout: Duration) -> Result<Daemon> {
        let d = Daemon::start(spec)?;
        d.wait_ready(timeout)?;
        Ok(d)
    }

    /// The specification it runs with.
    pub fn spec(&self) -> &DaemonSpec {
        &self.spec
    }

    /// The kind.
    pub fn kind(&self) -> DaemonKind {
        self.spec.kind
    }

    /// Its temporary directory (config, logs, sockets).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn write_config(&self) -> Result<()> {
        let (name, text) = match self.spec.kind {
            DaemonKind::Frr => ("bgpd.conf", frr_config(&self.spec, &self.dir)),
            DaemonKind::Bird => ("bird.conf", bird_config(&self.spec, &self.dir)),
            DaemonKind::Gobgp => ("gobgpd.toml", gobgp_config(&self.spec)),
        };
        let path = self.dir.join(name);
        fs::write(&path, text).map_err(|e| DaemonError(format!("writing {path:?}: {e}")))?;
        set_mode(&path, 0o644)
    }

    fn spawn(&mut self, restarting: bool) -> Result<()> {
        let dir = &self.dir;
        let addr = self.spec.addr.to_string();
        let port = self.spec.port.to_string();
        let mut cmd = match self.spec.kind {
            DaemonKind::Frr => {
                let mut c = Command::new(FRR_BGPD);
                c.arg("-f")
                    .arg(dir.join("bgpd.conf"))
                    .arg("-i")
                    .arg(dir.join("bgpd.pid"))
                    .args(["-Z", "-S", "-l", &addr, "-p", &port, "-P", "0"])
                    .arg("--vty_socket")
                    .arg(dir);
                // bgpd 8.4 has no restarting-mode option (`-K` is zebra's): a bgpd started
                // with `bgp graceful-restart` sets the R bit by itself while its startup
                // (update-delay) phase lasts, if at all (docs/interop.md).
                let _ = restarting;
                c
            }
            DaemonKind::Bird => {
                let _ = fs::remove_file(dir.join("bird.ctl"));
                let mut c = Command::new("bird");
                c.arg("-f")
                    .arg("-c")
                    .arg(dir.join("bird.conf"))
                    .arg("-s")
                    .arg(dir.join("bird.ctl"))
                    .arg("-P")
                    .arg(dir.join("bird.pid"));
                if restarting {
                    c.arg("-R");
                }
                c
            }
            DaemonKind::Gobgp => {
                let mut c = Command::new("gobgpd");
                c.arg("-f")
                    .arg(dir.join("gobgpd.toml"))
                    .args(["-t", "toml", "--pprof-disable"])
                    .arg("--api-hosts")
                    .arg(format!("{addr}:{}", self.api_port));
                if restarting {
                    c.arg("-r");
                }
                c
            }
        };
        let log = dir.join(format!("{}.stdout.log", self.spec.kind));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| DaemonError(format!("opening {log:?}: {e}")))?;
        let err_out = out
            .try_clone()
            .map_err(|e| DaemonError(format!("{log:?}: {e}")))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err_out)
            .spawn()
            .map_err(|e| DaemonError(format!("starting {}: {e}", self.spec.kind)))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    /// Waits (bounded) until the daemon's CLI answers; the daemon must not have exited.
    /// For GoBGP, its routes are added (through the API) once it answers.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        self.wait_until("the CLI to answer", timeout, || {
            let probe = match self.spec.kind {
                DaemonKind::Frr => self.vtysh("show bgp summary json"),
                DaemonKind::Bird => self.birdc(&["show", "status"]),
                DaemonKind::Gobgp => self.gobgp(&["global"]),
            };
            Ok(probe.is_ok())
        })?;
        if self.spec.kind == DaemonKind::Gobgp {
            for r in &self.spec.routes {
                self.gobgp_add(r)?;
            }
            if !self.spec.bulk_routes.is_empty() {
                self.gobgp_inject_bulk()?;
            }
        }
        Ok(())
    }

    /// GoBGP: one `gobgp global rib add` per route would take minutes for a large table, so
    /// the bulk routes go in as an MRT table dump (RFC 6396) through `gobgp mrt inject`.
    ///
    /// `gobgp mrt inject` of 3.10 exits before gobgpd has taken the last paths of its
    /// stream: the last thousand or two of a 100,000-route dump are lost (docs/interop.md).
    /// So the dump carries the first [`MRT_PADDING`] routes a second time at its end (adding
    /// a path that is there already changes nothing, and no session is up yet), and the
    /// table is checked: every bulk route must be there.
    fn gobgp_inject_bulk(&self) -> Result<()> {
        let path = self.dir.join("bulk.mrt");
        let bulk = &self.spec.bulk_routes;
        let padded: Vec<IpNet> = bulk
            .iter()
            .chain(bulk.iter().take(MRT_PADDING))
            .copied()
            .collect();
        let dump = mrt_table_dump(&padded, self.spec.router_id, v4_next_hop(self.spec.kind));
        fs::write(&path, dump).map_err(|e| DaemonError(format!("writing {path:?}: {e}")))?;
        let v4 = bulk.iter().filter(|p| matches!(p, IpNet::V4(_))).count()
            + self
                .spec
                .routes
                .iter()
                .filter(|r| r.family() == AfiSafi::IPV4_UNICAST)
                .count();
        let path = path.to_string_lossy().into_owned();
        for attempt in 1..=3 {
            run_cli_within(
                Command::new("gobgp")
                    .arg("-u")
                    .arg(self.spec.addr.to_string())
                    .arg("-p")
                    .arg(self.api_port.to_string())
                    .args(["mrt", "inject", "global", &path]),
                Duration::from_secs(60),
            )?;
            let mut have = 0;
            let settled = self.wait_until(
                &format!("{v4} IPv4 routes in the global RIB"),
                Duration::from_secs(10),
                || {
                    let out = self.gobgp(&["global", "rib", "-a", "ipv4", "summary"])?;
                    have = parse_gobgp_destinations(&out).unwrap_or(0);
                    Ok(have >= v4)
                },
            );
            if settled.is_ok() {
                return Ok(());
            }
            if attempt == 3 {
                return err(format!(
                    "gobgp mrt inject: {have} of {v4} IPv4 routes in the global RIB after 3 attempts"
                ));
            }
        }
        Ok(())
    }

    /// Changes the routes the daemon originates (for its next start: the configuration is
    /// written again; GoBGP adds them through its API once it answers).
    pub fn set_routes(&mut self, routes: Vec<RouteSpec>) -> Result<()> {
        self.spec.routes = routes;
        self.write_config()
    }

    /// Withdraws every route the daemon sends, [`DaemonSpec::bulk_routes`] included: BIRD
    /// disables the static protocols, GoBGP deletes its global RIB, FRR (where `no network`
    /// a hundred thousand times would take long) puts a deny-all in front of its outbound
    /// route-maps and soft-resets out.
    pub fn withdraw_all(&self) -> Result<()> {
        match self.spec.kind {
            DaemonKind::Frr => self
                .vtysh_many(&[
                    "configure terminal",
                    "route-map OUT4 deny 5",
                    "exit",
                    "route-map OUT6 deny 5",
                    "end",
                    "clear bgp ipv4 unicast * soft out",
                    "clear bgp ipv6 unicast * soft out",
                ])
                .map(|_| ()),
            DaemonKind::Bird => {
                self.birdc(&["disable", "st4"])?;
                self.birdc(&["disable", "st6"])?;
                if !self.spec.bulk_routes.is_empty() {
                    self.birdc(&["disable", "bulk4"])?;
                }
                Ok(())
            }
            DaemonKind::Gobgp => {
                self.gobgp(&["global", "rib", "-a", "ipv4", "del", "all"])?;
                self.gobgp(&["global", "rib", "-a", "ipv6", "del", "all"])?;
                Ok(())
            }
        }
    }

    /// How many prefixes of `family` the daemon holds from `peer` (its Adj-RIB-In after
    /// import policy), from a summary: fast with many routes, where [`Daemon::routes`]
    /// parses every route.
    pub fn received_count(&self, peer: Ipv4Addr, family: AfiSafi) -> Result<usize> {
        let v6 = family == AfiSafi::IPV6_UNICAST;
        match self.spec.kind {
            DaemonKind::Frr => {
                let afi = if v6 { "ipv6" } else { "ipv4" };
                let v = self.vtysh_json(&format!("show bgp {afi} unicast summary json"))?;
                let n = &v["peers"][peer.to_string()]["pfxRcd"];
                n.as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| DaemonError(format!("no pfxRcd for {peer} in {v}")))
            }
            DaemonKind::Bird => {
                let table = if v6 { "master6" } else { "master4" };
                let name = self.spec.bird_protocol(peer);
                let out =
                    self.birdc(&["show", "route", "table", table, "protocol", &name, "count"])?;
                parse_bird_count(&out)
                    .ok_or_else(|| DaemonError(format!("no route count in: {out}")))
            }
            DaemonKind::Gobgp => {
                let out = self.gobgp(&["neighbor", &peer.to_string(), "-j"])?;
                let v: serde_json::Value = serde_json::from_str(&out)
                    .map_err(|e| DaemonError(format!("gobgp neighbor JSON: {e}: {out}")))?;
                parse_gobgp_received(&v, v6)
                    .ok_or_else(|| DaemonError(format!("no received count in: {out}")))
            }
        }
    }

    /// Polls `check` every 200 ms until it returns true, for at most `timeout`. Fails with
    /// `what`, the last check error and the log tail when time runs out, or at once when the
    /// process exited.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            match check() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = e.0,
            }
            if let Some(status) = self.exited() {
                return err(format!(
                    "{} exited ({status}) while waiting for {what}\n{}",
                    self.spec.kind,
                    self.log_tail(40)
                ));
            }
            if Instant::now() >= deadline {
                return err(format!(
                    "timeout after {timeout:?}: {} at {} never showed {what}{}\n{}",
                    self.spec.kind,
                    self.spec.addr,
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(" (last error: {last})")
                    },
                    self.log_tail(40)
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    fn exited(&self) -> Option<String> {
        // try_wait needs &mut; a zero-signal probe by PID says the same without reaping.
        let pid = self.pid()?;
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && !fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        (!alive).then(|| format!("pid {pid}"))
    }

    /// The BGP state of the session with `peer`, as the daemon names it.
    pub fn session_state(&self, peer: Ipv4Addr) -> Result<String> {
        match self.spec.kind {
            DaemonKind::Frr => {
                let v = self.vtysh_json(&format!("show bgp neighbors {peer} json"))?;
                Ok(v[peer.to_string()]["bgpState"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_string())
            }
            DaemonKind::Bird => {
                let name = self.spec.bird_protocol(peer);
                let out = self.birdc(&["show", "protocols", &name])?;
                let line = out
                    .lines()
                    .find(|l| l.starts_with(&format!("{name} ")))
                    .ok_or_else(|| DaemonError(format!("no protocol {name} in: {out}")))?;
                Ok(line.split_whitespace().last().unwrap_or("").to_string())
            }
            DaemonKind::Gobgp => {
                let out = self.gobgp(&["neighbor", &peer.to_string(), "-j"])?;
                let v: serde_json::Value = serde_json::from_str(&out)
                    .map_err(|e| DaemonError(format!("gobgp neighbor JSON: {e}: {out}")))?;
                let s = &v["state"]["session_state"];
                Ok(match s.as_u64() {
                    Some(6) => "Established".to_string(),
                    Some(n) => format!("state {n}"),
                    None => s.as_str().unwrap_or("unknown").to_string(),
                })
            }
        }
    }

    /// The daemon's detailed view of its neighbour `peer`, as its CLI prints it: FRR
    /// `show bgp neighbors X json`, BIRD `show protocols all <name>`, GoBGP
    /// `neighbor X -j`.
    pub fn neighbor_detail(&self, peer: Ipv4Addr) -> Result<String> {
        match self.spec.kind {
            DaemonKind::Frr => self.vtysh(&format!("show bgp neighbors {peer} json")),
            DaemonKind::Bird => {
                let name = self.spec.bird_protocol(peer);
                self.birdc(&["show", "protocols", "all", &name])
            }
            DaemonKind::Gobgp => self.gobgp(&["neighbor", &peer.to_string(), "-j"]),
        }
    }

    /// What the daemon read from `peer`'s Graceful Restart capability (RFC 4724 §3) in the
    /// OPEN of the current session: FRR `gracefulRestartInfo.rBit` and the families' `fBit`,
    /// BIRD `Restart recovery` and `AF preserved` under the neighbour's capabilities, GoBGP
    /// the capability in `remote_cap` (protobuf, base64). `None`: no capability.
    pub fn peer_gr(&self, peer: Ipv4Addr) -> Result<Option<PeerGr>> {
        let text = self.neighbor_detail(peer)?;
        match self.spec.kind {
            DaemonKind::Frr => {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| DaemonError(format!("FRR neighbour JSON: {e}: {text}")))?;
                Ok(parse_frr_peer_gr(&v[peer.to_string()]))
            }
            DaemonKind::Bird => Ok(parse_bird_peer_gr(&text)),
            DaemonKind::Gobgp => {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| DaemonError(format!("gobgp neighbor JSON: {e}: {text}")))?;
                Ok(parse_gobgp_peer_gr(&v))
            }
        }
    }

    /// Whether the session with `peer` is Established.
    pub fn is_established(&self, peer: Ipv4Addr) -> Result<bool> {
        let s = self.session_state(peer)?;
        Ok(s.eq_ignore_ascii_case("established") || s.eq_ignore_ascii_case("establ"))
    }

    /// Waits (bounded) until the session with `peer` is Established.
    pub fn wait_established(&self, peer: Ipv4Addr, timeout: Duration) -> Result<()> {
        self.wait_until(
            &format!("the session with {peer} Established"),
            timeout,
            || self.is_established(peer),
        )
    }

    /// The routes the daemon holds for a family (best path per prefix), parsed from its CLI.
    pub fn routes(&self, family: AfiSafi) -> Result<Vec<DaemonRoute>> {
        let v6 = family == AfiSafi::IPV6_UNICAST;
        let mut routes = match self.spec.kind {
            DaemonKind::Frr => self.frr_routes(v6)?,
            DaemonKind::Bird => {
                let table = if v6 { "master6" } else { "master4" };
                parse_bird_routes(&self.birdc(&["show", "route", "all", "table", table])?)
            }
            DaemonKind::Gobgp => {
                let fam = if v6 { "ipv6" } else { "ipv4" };
                parse_gobgp_rib(&self.gobgp(&["global", "rib", "-a", fam, "-j"])?)?
            }
        };
        // Only what the neighbour (us) sent, not what the daemon originates itself.
        let own: Vec<IpNet> = self.spec.routes.iter().map(|r| r.prefix).collect();
        routes.retain(|r| !own.contains(&r.prefix));
        routes.sort_by_key(|r| r.prefix);
        Ok(routes)
    }

    /// Waits (bounded) until [`Daemon::routes`] satisfies `done`; returns them.
    pub fn wait_routes(
        &self,
        family: AfiSafi,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[DaemonRoute]) -> bool,
    ) -> Result<Vec<DaemonRoute>> {
        let mut seen = Vec::new();
        let r = self.wait_until(what, timeout, || {
            seen = self.routes(family)?;
            Ok(done(&seen))
        });
        match r {
            Ok(()) => Ok(seen),
            Err(e) => err(format!("{e}\nlast routes seen: {seen:#?}")),
        }
    }

    /// Asks the daemon to ask us for our routes again (soft reset in). FRR and BIRD send
    /// ROUTE-REFRESH; GoBGP's `softresetin` only re-runs its import policy.
    pub fn soft_reset_in(&self, peer: Ipv4Addr) -> Result<String> {
        match self.spec.kind {
            DaemonKind::Frr => self.vtysh(&format!("clear bgp ipv4 unicast {peer} soft in")),
            DaemonKind::Bird => self.birdc(&["reload", "in", "peer"]),
            DaemonKind::Gobgp => self.gobgp(&["neighbor", &peer.to_string(), "softresetin"]),
        }
    }

    /// Kills the daemon with SIGKILL (no NOTIFICATION, no FIN handshake of its own: the
    /// kernel resets or closes its connections) and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()
                .map_err(|e| DaemonError(format!("SIGKILL {}: {e}", c.id())))?;
            let _ = c.wait();
        }
        Ok(())
    }

    /// Freezes the daemon (SIGSTOP): it sends nothing, not even KEEPALIVEs, and its TCP
    /// connections stay open, so our hold timer expires.
    pub fn pause(&self) -> Result<()> {
        self.signal("STOP")
    }

    /// Lets a paused daemon run again (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, sig: &str) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| DaemonError(format!("{} is not running", self.spec.kind)))?;
        run_cli(
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string()),
        )
        .map(|_| ())
    }

    /// Starts the daemon again with the same configuration, in graceful-restart restarting
    /// mode (`bird -R`, `gobgpd -r`;
    /// bgpd 8.4 has no such option and is simply started again) when `restarting`; waits until its CLI answers.
    pub fn restart(&mut self, restarting: bool, timeout: Duration) -> Result<()> {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn(restarting)?;
        self.wait_ready(timeout)
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after a bounded wait. Only the process this
    /// handle started, by PID.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let pid = c.id().to_string();
        // A paused daemon must run to act on SIGTERM.
        let _ = Command::new("kill")
            .args(["-CONT", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// The last `n` lines of the daemon's logs.
    pub fn log_tail(&self, n: usize) -> String {
        let mut out = String::new();
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        for f in files {
            let text = tail(&f, 64 * 1024);
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(n);
            out += &format!("== {} (last {} lines)\n", f.display(), lines.len() - from);
            for l in &lines[from..] {
                out += l;
                out.push('\n');
            }
        }
        out
    }

    /// Runs a vtysh command against this bgpd.
    pub fn vtysh(&self, command: &str) -> Result<String> {
        run_cli(
            Command::new("vtysh")
                .arg("--vty_socket")
                .arg(&self.dir)
                .arg("-c")
                .arg(command),
        )
    }

    /// Runs several vtysh commands in one session (configuration mode, say).
    pub fn vtysh_many(&self, commands: &[&str]) -> Result<String> {
        let mut c = Command::new("vtysh");
        c.arg("--vty_socket").arg(&self.dir);
        for x in commands {
            c.arg("-c").arg(x);
        }
        run_cli(&mut c)
    }

    fn vtysh_json(&self, command: &str) -> Result<serde_json::Value> {
        let out = self.vtysh(command)?;
        serde_json::from_str(&out).map_err(|e| DaemonError(format!("{command}: {e}: {out}")))
    }

    /// Runs a birdc command against this BIRD.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        run_cli(
            Command::new("birdc")
                .arg("-s")
                .arg(self.dir.join("bird.ctl"))
                .args(args),
        )
    }

    /// Runs a gobgp command against this gobgpd.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        run_cli(
            Command::new("gobgp")
                .arg("-u")
                .arg(self.spec.addr.to_string())
                .arg("-p")
                .arg(self.api_port.to_string())
                .args(args),
        )
    }

    fn gobgp_add(&self, r: &RouteSpec) -> Result<()> {
        let fam = if r.family() == AfiSafi::IPV6_UNICAST {
            "ipv6"
        } else {
            "ipv4"
        };
        let mut args: Vec<String> = ["global", "rib", "-a", fam, "add"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(r.prefix.to_string());
        args.extend(["nexthop".into(), r.next_hop.to_string()]);
        args.extend(["origin".into(), "igp".into()]);
        if r.prepend > 0 {
            let path = vec![self.spec.asn.to_string(); r.prepend].join(" ");
            args.extend(["aspath".into(), path]);
        }
        if let Some(m) = r.med {
            args.extend(["med".into(), m.to_string()]);
        }
        if let Some(l) = r.local_pref {
            args.extend(["local-pref".into(), l.to_string()]);
        }
        if !r.communities.is_empty() {
            let c: Vec<String> = r
                .communities
                .iter()
                .map(|(a, v)| format!("{a}:{v}"))
                .collect();
            args.extend(["community".into(), c.join(",")]);
        }
        if !r.large_communities.is_empty() {
            let c: Vec<String> = r
                .large_communities
                .iter()
                .map(|(g, a, b)| format!("{g}:{a}:{b}"))
                .collect();
            args.extend(["large-community".into(), c.join(",")]);
        }
        if !r.route_targets.is_empty() {
            args.push("rt".into());
            args.extend(r.route_targets.iter().map(|(a, v)| format!("{a}:{v}")));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.gobgp(&args).map(|_| ())
    }

    fn frr_routes(&self, v6: bool) -> Result<Vec<DaemonRoute>> {
        let afi = if v6 { "ipv6" } else { "ipv4" };
        let table = self.vtysh_json(&format!("show bgp {afi} unicast json"))?;
        let mut out = Vec::new();
        let Some(routes) = table["routes"].as_object() else {
            return Ok(out);
        };
        for prefix in routes.keys() {
            let detail = self.vtysh_json(&format!("show bgp {afi} unicast {prefix} json"))?;
            if let Some(r) = parse_frr_prefix(prefix, &detail)? {
                out.push(r);
            }
        }
        Ok(out)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if std::env::var_os("BGP_INTEROP_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| DaemonError(format!("chmod {path:?}: {e}")))
}

fn tail(path: &Path, bytes: u64) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// CLI calls are bounded too: a CLI that hangs is killed after this long.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);

fn run_cli(cmd: &mut Command) -> Result<String> {
    run_cli_within(cmd, CLI_TIMEOUT)
}

fn run_cli_within(cmd: &mut Command, limit: Duration) -> Result<String> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DaemonError(format!("{shown}: {e}")))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return err(format!("{shown}: no answer within {limit:?}"));
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| DaemonError(format!("{shown}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return err(format!(
            "{shown}: {}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}

// ------------------------------------------------------------------------------- configs

fn v4_next_hop(kind: DaemonKind) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, kind as u8 + 1)
}

fn v6_next_hop(kind: DaemonKind) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, kind as u16 + 1)
}

/// The next hop a daemon puts on the routes it originates (its export policy sets it: the
/// benchmarking range 198.18.0.0/15 and the documentation prefix, attribute data only).
pub fn origin_next_hop(kind: DaemonKind, v6: bool) -> IpAddr {
    if v6 {
        v6_next_hop(kind).into()
    } else {
        v4_next_hop(kind).into()
    }
}

/// FRR: `frr defaults traditional` and `no bgp ebgp-requires-policy` (or eBGP routes are
/// neither accepted nor sent), `ebgp-multihop` (no zebra, so no connected check), next hops
/// set by an outbound route-map, one route-map per originated route for its attributes.
fn frr_config(s: &DaemonSpec, dir: &Path) -> String {
    let n = &s.neighbor;
    let mut c = String::new();
    c += "frr defaults traditional\nhostname interop\n";
    c += &format!(
        "log file {} {}\n!\n",
        dir.join("frr.log").display(),
        if s.quiet { "critical" } else { "informational" }
    );
    for (i, r) in s.routes.iter().enumerate() {
        c += &format!("route-map ORIG-{i} permit 10\n set origin igp\n");
        if let Some(m) = r.med {
            c += &format!(" set metric {m}\n");
        }
        if let Some(l) = r.local_pref {
            c += &format!(" set local-preference {l}\n");
        }
        if !r.communities.is_empty() {
            let v: Vec<String> = r
                .communities
                .iter()
                .map(|(a, b)| format!("{a}:{b}"))
                .collect();
            c += &format!(" set community {}\n", v.join(" "));
        }
        if !r.large_communities.is_empty() {
            let v: Vec<String> = r
                .large_communities
                .iter()
                .map(|(g, a, b)| format!("{g}:{a}:{b}"))
                .collect();
            c += &format!(" set large-community {}\n", v.join(" "));
        }
        if !r.route_targets.is_empty() {
            let v: Vec<String> = r
                .route_targets
                .iter()
                .map(|(a, b)| format!("{a}:{b}"))
                .collect();
            c += &format!(" set extcommunity rt {}\n", v.join(" "));
        }
        if r.prepend > 0 {
            c += &format!(
                " set as-path prepend {}\n",
                vec![s.asn.to_string(); r.prepend].join(" ")
            );
        }
        c += "!\n";
    }
    c += &format!(
        "route-map OUT4 permit 10\n set ip next-hop {}\n!\n",
        v4_next_hop(s.kind)
    );
    c += &format!(
        "route-map OUT6 permit 10\n set ipv6 next-hop global {}\n!\n",
        v6_next_hop(s.kind)
    );
    c += &format!("router bgp {}\n bgp router-id {}\n", s.asn, s.router_id);
    c += " no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n no bgp network import-check\n";
    if let Some(t) = n.graceful_restart {
        c += &format!(
            " bgp graceful-restart\n bgp graceful-restart restart-time {t}\n bgp graceful-restart preserve-fw-state\n"
        );
    }
    for n in s.neighbors() {
        let p = n.addr;
        c += &format!(" neighbor {p} remote-as {}\n", n.asn);
        c += &format!(" neighbor {p} update-source {}\n", s.addr);
        if s.asn != n.asn {
            c += &format!(" neighbor {p} ebgp-multihop 2\n");
        }
        if n.passive {
            c += &format!(" neighbor {p} passive\n");
        }
        c += &format!(" neighbor {p} advertisement-interval 0\n neighbor {p} timers connect 2\n");
        match n.hold_time {
            Some(0) => c += &format!(" neighbor {p} timers 0 0\n"),
            Some(h) => c += &format!(" neighbor {p} timers {} {h}\n", (h / 3).max(1)),
            None => {}
        }
        if let Some(pw) = &n.password {
            c += &format!(" neighbor {p} password {pw}\n");
        }
    }
    for (afi, out) in [("ipv4", "OUT4"), ("ipv6", "OUT6")] {
        c += &format!(" address-family {afi} unicast\n");
        for (i, r) in s.routes.iter().enumerate() {
            if (r.family() == AfiSafi::IPV6_UNICAST) == (afi == "ipv6") {
                c += &format!("  network {} route-map ORIG-{i}\n", r.prefix);
            }
        }
        for b in &s.bulk_routes {
            if matches!(b, IpNet::V6(_)) == (afi == "ipv6") {
                c += &format!("  network {b}\n");
            }
        }
        for n in s.neighbors() {
            let p = n.addr;
            c += &format!("  neighbor {p} activate\n  neighbor {p} send-community all\n");
            c += &format!("  neighbor {p} route-map {out} out\n");
        }
        c += " exit-address-family\n";
    }
    c += "!\n";
    c
}

/// BIRD: loopback neighbours are host scope, so `multihop` with an empty IGP table (next
/// hops stay unresolved but routes are kept and shown), `strict bind`; an IPv6 channel on the
/// IPv4 session needs `next hop address` to export.
fn bird_config(s: &DaemonSpec, dir: &Path) -> String {
    let mut c = String::new();
    c += &format!(
        "log \"{}\" all;\nrouter id {};\nprotocol device {{ }}\nipv4 table igp4;\nipv6 table igp6;\n",
        dir.join("bird.log").display(),
        s.router_id
    );
    for (name, v6) in [("st4", false), ("st6", true)] {
        c += &format!(
            "protocol static {name} {{\n  {};\n",
            if v6 { "ipv6" } else { "ipv4" }
        );
        for r in s
            .routes
            .iter()
            .filter(|r| matches!(r.prefix, IpNet::V6(_)) == v6)
        {
            c += &format!("  route {} blackhole;\n", r.prefix);
        }
        c += "}\n";
    }
    if !s.bulk_routes.is_empty() {
        c += "protocol static bulk4 {\n  ipv4;\n";
        for p in s.bulk_routes.iter().filter(|p| matches!(p, IpNet::V4(_))) {
            c += &format!("  route {p} blackhole;\n");
        }
        c += "}\n";
    }
    c +=
        "filter out_filter {\n  if source != RTS_STATIC then reject;\n  bgp_origin = ORIGIN_IGP;\n";
    for r in &s.routes {
        c += &format!("  if net = {} then {{\n", r.prefix);
        if let Some(m) = r.med {
            c += &format!("    bgp_med = {m};\n");
        }
        if let Some(l) = r.local_pref {
            c += &format!("    bgp_local_pref = {l};\n");
        }
        for (a, b) in &r.communities {
            c += &format!("    bgp_community.add(({a},{b}));\n");
        }
        for (g, a, b) in &r.large_communities {
            c += &format!("    bgp_large_community.add(({g},{a},{b}));\n");
        }
        for (a, b) in &r.route_targets {
            c += &format!("    bgp_ext_community.add((rt,{a},{b}));\n");
        }
        for _ in 0..r.prepend {
            c += &format!("    bgp_path.prepend({});\n", s.asn);
        }
        c += "  }\n";
    }
    c += "  accept;\n}\n";
    for n in s.neighbors() {
        // Us: the originated routes with their attributes. A further neighbour (a monitor):
        // everything, the routes learned from us included.
        let export = if n.addr == s.neighbor.addr {
            "filter out_filter"
        } else {
            "all"
        };
        c += &format!(
            "protocol bgp {} {{\n  local {} port {} as {};\n  neighbor {} port {} as {};\n",
            s.bird_protocol(n.addr),
            s.addr,
            s.port,
            s.asn,
            n.addr,
            s.port,
            n.asn
        );
        c += "  multihop 2;\n  strict bind yes;\n  connect retry time 2;\n";
        if n.passive {
            c += "  passive on;\n";
        }
        match n.hold_time {
            Some(0) => c += "  hold time 0;\n",
            Some(h) => c += &format!("  hold time {h};\n  keepalive time {};\n", (h / 3).max(1)),
            None => {}
        }
        if let Some(pw) = &n.password {
            c += &format!("  password \"{pw}\";\n");
        }
        if let Some(t) = n.graceful_restart {
            c += &format!("  graceful restart on;\n  graceful restart time {t};\n");
        }
        for (afi, table, nh) in [
            ("ipv4", "igp4", IpAddr::from(v4_next_hop(s.kind))),
            ("ipv6", "igp6", IpAddr::from(v6_next_hop(s.kind))),
        ] {
            c += &format!(
                "  {afi} {{\n    import all;\n    export {export};\n    igp table {table};\n    next hop address {nh};\n  }};\n"
            );
        }
        c += "}\n";
    }
    c
}

/// GoBGP: `local-address-list` and the neighbour's `local-address`; a global export policy
/// sets the next hops; routes are added through the API once it answers.
fn gobgp_config(s: &DaemonSpec) -> String {
    let mut c = format!(
        "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = {}\n  local-address-list = [\"{}\"]\n",
        s.asn, s.router_id, s.port, s.addr
    );
    c += "[global.apply-policy.config]\n  export-policy-list = [\"nexthop\"]\n  default-export-policy = \"accept-route\"\n  default-import-policy = \"accept-route\"\n";
    for (name, p, max) in [("all-v4", "0.0.0.0/0", 32), ("all-v6", "::/0", 128)] {
        c += &format!(
            "[[defined-sets.prefix-sets]]\n  prefix-set-name = \"{name}\"\n  [[defined-sets.prefix-sets.prefix-list]]\n    ip-prefix = \"{p}\"\n    masklength-range = \"0..{max}\"\n"
        );
    }
    c += "[[policy-definitions]]\n  name = \"nexthop\"\n";
    for (st, set, nh) in [
        ("v4", "all-v4", IpAddr::from(v4_next_hop(s.kind))),
        ("v6", "all-v6", IpAddr::from(v6_next_hop(s.kind))),
    ] {
        c += &format!(
            "  [[policy-definitions.statements]]\n    name = \"{st}\"\n    [policy-definitions.statements.conditions.match-prefix-set]\n      prefix-set = \"{set}\"\n    [policy-definitions.statements.actions]\n      route-disposition = \"accept-route\"\n    [policy-definitions.statements.actions.bgp-actions]\n      set-next-hop = \"{nh}\"\n"
        );
    }
    for n in s.neighbors() {
        c += &format!(
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n",
            n.addr, n.asn
        );
        if let Some(pw) = &n.password {
            c += &format!("    auth-password = \"{pw}\"\n");
        }
        c += &format!(
            "  [neighbors.transport.config]\n    local-address = \"{}\"\n    passive-mode = {}\n    remote-port = {}\n",
            s.addr, n.passive, s.port
        );
        c += "  [neighbors.timers.config]\n    connect-retry = 2\n";
        if let Some(h) = n.hold_time {
            c += &format!(
                "    hold-time = {h}\n    keepalive-interval = {}\n",
                if h == 0 { 0 } else { (h / 3).max(1) }
            );
        }
        if s.asn != n.asn {
            c += "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = 2\n";
        }
        if let Some(t) = n.graceful_restart {
            c += &format!(
                "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = {t}\n"
            );
        }
        for fam in ["ipv4-unicast", "ipv6-unicast"] {
            c += &format!(
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{fam}\"\n"
            );
            if n.graceful_restart.is_some() {
                c += "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n";
            }
        }
    }
    c
}

/// How many routes [`Daemon::gobgp_inject_bulk`] repeats at the end of its MRT dump, to
/// absorb the tail that `gobgp mrt inject` loses.
const MRT_PADDING: usize = 20_000;

/// An MRT TABLE_DUMP_V2 dump (RFC 6396 §4.3) of IPv4 `prefixes`, each with ORIGIN IGP, an
/// empty AS_PATH and `next_hop`, from one peer: what `gobgp mrt inject global` reads.
pub fn mrt_table_dump(prefixes: &[IpNet], router_id: Ipv4Addr, next_hop: Ipv4Addr) -> Vec<u8> {
    const TABLE_DUMP_V2: u16 = 13;
    const PEER_INDEX_TABLE: u16 = 1;
    const RIB_IPV4_UNICAST: u16 = 2;
    fn record(out: &mut Vec<u8>, subtype: u16, body: &[u8]) {
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&TABLE_DUMP_V2.to_be_bytes());
        out.extend_from_slice(&subtype.to_be_bytes());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
    }
    let mut out = Vec::with_capacity(prefixes.len() * 40);
    let mut b = Vec::new();
    b.extend_from_slice(&router_id.octets());
    b.extend_from_slice(&0u16.to_be_bytes()); // no view name
    b.extend_from_slice(&1u16.to_be_bytes()); // one peer
    b.push(0x02); // IPv4 address, 4-octet AS
    b.extend_from_slice(&router_id.octets());
    b.extend_from_slice(&router_id.octets());
    b.extend_from_slice(&0u32.to_be_bytes());
    record(&mut out, PEER_INDEX_TABLE, &b);
    // ORIGIN IGP, AS_PATH empty, NEXT_HOP (RFC 4271 §4.3).
    let mut attrs = vec![0x40, 0x01, 0x01, 0x00, 0x40, 0x02, 0x00, 0x40, 0x03, 0x04];
    attrs.extend_from_slice(&next_hop.octets());
    for (seq, p) in prefixes.iter().enumerate() {
        let IpNet::V4(p) = p else { continue };
        b.clear();
        b.extend_from_slice(&(seq as u32).to_be_bytes());
        b.push(p.prefix_len());
        let bytes = usize::from(p.prefix_len()).div_ceil(8);
        b.extend_from_slice(&p.network().octets()[..bytes]);
        b.extend_from_slice(&1u16.to_be_bytes()); // one entry
        b.extend_from_slice(&0u16.to_be_bytes()); // peer index
        b.extend_from_slice(&0u32.to_be_bytes()); // originated time
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(&attrs);
        record(&mut out, RIB_IPV4_UNICAST, &b);
    }
    out
}

// ------------------------------------------------------------------------------- parsers

/// A neighbour's Graceful Restart capability (RFC 4724 §3) as a daemon read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerGr {
    /// The Restart State (R) bit.
    pub restart_state: bool,
    /// The families with the Forwarding State (F) bit set.
    pub forwarding: Vec<AfiSafi>,
}

/// FRR: `gracefulRestartInfo` of one neighbour of `show bgp neighbors X json`.
pub fn parse_frr_peer_gr(n: &serde_json::Value) -> Option<PeerGr> {
    let gr = n.get("gracefulRestartInfo")?;
    let mut forwarding = Vec::new();
    for (key, f) in [
        ("ipv4Unicast", AfiSafi::IPV4_UNICAST),
        ("ipv6Unicast", AfiSafi::IPV6_UNICAST),
    ] {
        if gr[key]["fBit"].as_bool() == Some(true) {
            forwarding.push(f);
        }
    }
    Some(PeerGr {
        restart_state: gr["rBit"].as_bool() == Some(true),
        forwarding,
    })
}

/// BIRD: the `Graceful restart` block under `Neighbor capabilities` of `show protocols all`.
pub fn parse_bird_peer_gr(text: &str) -> Option<PeerGr> {
    let caps = text.split("Neighbor capabilities").nth(1)?;
    let block = caps.split("      Graceful restart\n").nth(1)?;
    let mut gr = PeerGr::default();
    for line in block.lines() {
        // The block's lines are indented deeper than the capability names.
        if !line.starts_with("        ") {
            break;
        }
        let line = line.trim();
        if line == "Restart recovery" {
            gr.restart_state = true;
        }
        if let Some(afs) = line.strip_prefix("AF preserved:") {
            for af in afs.split_whitespace() {
                match af {
                    "ipv4" => gr.forwarding.push(AfiSafi::IPV4_UNICAST),
                    "ipv6" => gr.forwarding.push(AfiSafi::IPV6_UNICAST),
                    _ => {}
                }
            }
        }
    }
    Some(gr)
}

/// GoBGP: the `GracefulRestartCapability` in `state.remote_cap` of `gobgp neighbor X -j`,
/// a base64 protobuf: `flags = 1` (0x08 R, 0x04 N), `time = 2`, `tuples = 3`, each
/// `family = 1 { afi = 1, safi = 2 }`, `flags = 2` (0x80 F).
pub fn parse_gobgp_peer_gr(v: &serde_json::Value) -> Option<PeerGr> {
    let caps = v["state"]["remote_cap"].as_array()?;
    let cap = caps.iter().find(|c| {
        c["type_url"]
            .as_str()
            .is_some_and(|t| t.ends_with("GracefulRestartCapability"))
    })?;
    let bytes = base64_decode(cap["value"].as_str().unwrap_or(""))?;
    let mut gr = PeerGr::default();
    for (field, value) in protobuf_fields(&bytes)? {
        match (field, value) {
            (1, Pb::Varint(flags)) => gr.restart_state = flags & 0x08 != 0,
            (3, Pb::Bytes(tuple)) => {
                let (mut afi, mut safi, mut flags) = (0, 0, 0);
                for (f, v) in protobuf_fields(tuple)? {
                    match (f, v) {
                        (1, Pb::Bytes(family)) => {
                            for (f, v) in protobuf_fields(family)? {
                                match (f, v) {
                                    (1, Pb::Varint(x)) => afi = x,
                                    (2, Pb::Varint(x)) => safi = x,
                                    _ => {}
                                }
                            }
                        }
                        (2, Pb::Varint(x)) => flags = x,
                        _ => {}
                    }
                }
                if flags & 0x80 != 0 {
                    match (afi, safi) {
                        (1, 1) => gr.forwarding.push(AfiSafi::IPV4_UNICAST),
                        (2, 1) => gr.forwarding.push(AfiSafi::IPV6_UNICAST),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(gr)
}

enum Pb<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The top-level fields of a protobuf message (varint and length-delimited only).
fn protobuf_fields(mut b: &[u8]) -> Option<Vec<(u64, Pb<'_>)>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            x |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(x);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        match key & 7 {
            0 => out.push((key >> 3, Pb::Varint(varint(&mut b)?))),
            2 => {
                let len = usize::try_from(varint(&mut b)?).ok()?;
                if len > b.len() {
                    return None;
                }
                let (v, rest) = b.split_at(len);
                out.push((key >> 3, Pb::Bytes(v)));
                b = rest;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Standard base64 with padding.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The count of `birdc show route ... count`: `100000 of 100000 routes for 100000 networks
/// in table master4` (the first number).
pub fn parse_bird_count(text: &str) -> Option<usize> {
    text.lines()
        .find(|l| l.contains(" routes for "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The count of `gobgp global rib -a ipv4 summary`: `Destination: 100000, Path: 100000`.
pub fn parse_gobgp_destinations(text: &str) -> Option<usize> {
    let rest = text.split("Destination:").nth(1)?;
    rest.split(',').next()?.trim().parse().ok()
}

/// The prefixes received in one family from `gobgp neighbor X -j`
/// (`afi_safis[].state.received`; absent when zero).
pub fn parse_gobgp_received(v: &serde_json::Value, v6: bool) -> Option<usize> {
    let afi = if v6 { 2 } else { 1 };
    let fams = v["afi_safis"].as_array()?;
    let f = fams.iter().find(|f| {
        let fam = &f["state"]["family"];
        fam["afi"].as_u64() == Some(afi) && fam["safi"].as_u64() == Some(1)
    })?;
    Some(f["state"]["received"].as_u64().unwrap_or(0) as usize)
}

fn parse_origin(s: &str) -> Option<Origin> {
    match s.to_ascii_lowercase().as_str() {
        "igp" | "i" => Some(Origin::Igp),
        "egp" | "e" => Some(Origin::Egp),
        "incomplete" | "?" => Some(Origin::Incomplete),
        _ => None,
    }
}

fn parse_pair<A: std::str::FromStr, B: std::str::FromStr>(s: &str, sep: char) -> Option<(A, B)> {
    let (a, b) = s.split_once(sep)?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

fn parse_triple(s: &str, sep: char) -> Option<(u32, u32, u32)> {
    let mut it = s.split(sep).map(|x| x.trim().parse::<u32>());
    let t = (it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?);
    it.next().is_none().then_some(t)
}

/// FRR's `show bgp <afi> unicast <prefix> json`: the best path.
pub fn parse_frr_prefix(prefix: &str, v: &serde_json::Value) -> Result<Option<DaemonRoute>> {
    let prefix: IpNet = prefix
        .parse()
        .map_err(|e| DaemonError(format!("FRR prefix {prefix}: {e}")))?;
    let Some(paths) = v["paths"].as_array() else {
        return Ok(None);
    };
    let best = paths
        .iter()
        .find(|p| p["bestpath"]["overall"].as_bool() == Some(true))
        .or_else(|| paths.first());
    let Some(p) = best else { return Ok(None) };
    let mut r = DaemonRoute::empty(prefix);
    r.as_path = p["aspath"]["string"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    r.origin = p["origin"].as_str().and_then(parse_origin);
    r.med = p["metric"].as_u64().map(|x| x as u32);
    r.local_pref = p["locPrf"].as_u64().map(|x| x as u32);
    r.communities = p["community"]["string"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| parse_pair(x, ':'))
        .collect();
    r.large_communities = p["largeCommunity"]["string"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|x| parse_triple(x, ':'))
        .collect();
    r.ext_communities = p["extendedCommunity"]["string"]
        .as_str()
        .unwrap_or("")
        .split_whitespace()
        .map(|x| match x.strip_prefix("RT:") {
            Some(rest) => format!("rt:{rest}"),
            None => x.to_string(),
        })
        .collect();
    r.next_hop = p["nexthops"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["scope"].as_str() != Some("link-local"))
        .and_then(|n| n["ip"].as_str())
        .and_then(|s| s.parse().ok());
    r.normalize();
    Ok(Some(r))
}

/// BIRD's `show route all`: one route per prefix (the first, which is the best).
pub fn parse_bird_routes(text: &str) -> Vec<DaemonRoute> {
    let mut out: BTreeMap<IpNet, DaemonRoute> = BTreeMap::new();
    let mut current: Option<IpNet> = None;
    let mut skip = false;
    for line in text.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if !line.starts_with(char::is_whitespace) && !line.is_empty() {
            if let Ok(p) = first.parse::<IpNet>() {
                skip = out.contains_key(&p);
                current = Some(p);
                out.entry(p).or_insert_with(|| DaemonRoute::empty(p));
                continue;
            }
        }
        // Continuation lines of a second route for the same prefix start with spaces and
        // carry no prefix; "unicast [" marks another route of the same prefix.
        let t = line.trim_start();
        if (t.starts_with("unicast [") || t.starts_with("unreachable ["))
            && line.starts_with(char::is_whitespace)
        {
            skip = true;
            continue;
        }
        let (Some(p), false) = (current, skip) else {
            continue;
        };
        let Some(r) = out.get_mut(&p) else { continue };
        let t = line.trim();
        let Some((key, val)) = t.split_once(':') else {
            continue;
        };
        let val = val.trim();
        match key {
            "BGP.origin" => r.origin = parse_origin(val),
            "BGP.as_path" => {
                r.as_path = val
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            }
            "BGP.next_hop" => {
                r.next_hop = val
                    .split_whitespace()
                    .filter_map(|x| x.parse::<IpAddr>().ok())
                    .find(|a| !matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local()))
            }
            "BGP.med" => r.med = val.parse().ok(),
            "BGP.local_pref" => r.local_pref = val.parse().ok(),
            "BGP.community" => {
                r.communities = bird_tuples(val)
                    .iter()
                    .filter_map(|t| parse_pair(t, ','))
                    .collect()
            }
            "BGP.large_community" => {
                r.large_communities = bird_tuples(val)
                    .iter()
                    .filter_map(|t| parse_triple(t, ','))
                    .collect()
            }
            "BGP.ext_community" => {
                r.ext_communities = bird_tuples(val)
                    .iter()
                    .map(|t| {
                        let parts: Vec<&str> = t.split(',').map(str::trim).collect();
                        parts.join(":")
                    })
                    .collect()
            }
            _ => {}
        }
    }
    out.into_values()
        .map(|mut r| {
            r.normalize();
            r
        })
        .collect()
}

/// `(a,b) (c, d)` → `["a,b", "c, d"]`.
fn bird_tuples(s: &str) -> Vec<String> {
    s.split('(')
        .filter_map(|x| x.split_once(')').map(|(inner, _)| inner.to_string()))
        .collect()
}

/// GoBGP's `global rib -a <fam> -j`: the best path per prefix.
pub fn parse_gobgp_rib(text: &str) -> Result<Vec<DaemonRoute>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| DaemonError(format!("gobgp rib JSON: {e}: {text}")))?;
    let mut out = Vec::new();
    let Some(map) = v.as_object() else {
        return Ok(out);
    };
    for (prefix, paths) in map {
        let prefix: IpNet = prefix
            .parse()
            .map_err(|e| DaemonError(format!("gobgp prefix {prefix}: {e}")))?;
        let paths = paths.as_array().cloned().unwrap_or_default();
        let Some(p) = paths
            .iter()
            .find(|p| p["best"].as_bool() == Some(true))
            .or_else(|| paths.first())
        else {
            continue;
        };
        let mut r = DaemonRoute::empty(prefix);
        for a in p["attrs"].as_array().into_iter().flatten() {
            match a["type"].as_u64() {
                Some(1) => r.origin = a["value"].as_u64().and_then(|x| Origin::from_code(x as u8)),
                Some(2) => {
                    r.as_path = a["as_paths"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|s| s["asns"].as_array().cloned().unwrap_or_default())
                        .filter_map(|x| x.as_u64().map(|x| x as u32))
                        .collect()
                }
                Some(3) => r.next_hop = a["nexthop"].as_str().and_then(|s| s.parse().ok()),
                Some(4) => r.med = a["metric"].as_u64().map(|x| x as u32),
                Some(5) => r.local_pref = a["value"].as_u64().map(|x| x as u32),
                Some(8) => {
                    r.communities = a["communities"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|c| c.as_u64())
                        .map(|c| ((c >> 16) as u16, c as u16))
                        .collect()
                }
                Some(14) => {
                    r.next_hop = a["nexthop"].as_str().and_then(|s| s.parse().ok());
                }
                Some(16) => {
                    r.ext_communities = a["value"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| {
                            let kind = match e["subtype"].as_u64() {
                                Some(2) => "rt",
                                Some(3) => "soo",
                                _ => "ext",
                            };
                            format!("{kind}:{}", e["value"].as_str().unwrap_or(""))
                        })
                        .collect()
                }
                Some(32) => {
                    r.large_communities = a["value"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|l| {
                            Some((
                                l["ASN"].as_u64()? as u32,
                                l["LocalData1"].as_u64()? as u32,
                                l["LocalData2"].as_u64()? as u32,
                            ))
                        })
                        .collect()
                }
                _ => {}
            }
        }
        r.normalize();
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use bgp_wire::{Context, Message, pack_announce};
    use bytes::BytesMut;

    use super::*;

    fn spec() -> RouteSpec {
        let mut r = RouteSpec::new("203.0.113.0/24", "198.18.0.100");
        r.med = Some(10);
        r.communities = vec![(65000, 2), (65000, 1)];
        r.large_communities = vec![(4_200_000_001, 1, 2), (4_200_000_001, 1, 1)];
        r.route_targets = vec![(65000, 100)];
        r.prepend = 2;
        r
    }

    // Trimmed from `birdc show route all table master4` of BIRD 2.0.12 in routes::ebgp::bird;
    // the second route of 203.0.113.0/24 (indented) was added by hand.
    const BIRD: &str = "BIRD 2.0.12 ready.
Table master4:
198.51.100.0/25      unreachable [peer 18:47:41.720 from 127.95.2.2] * (100) [AS4200000001i]
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 4200000001
\tBGP.next_hop: 198.18.0.100
\tBGP.local_pref: 100
100.64.1.0/24        blackhole [st4 18:47:41.482] * (200)
\tType: static univ
203.0.113.0/24       unreachable [peer 18:47:41.720 from 127.95.2.2] * (100) [AS4200000001i]
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 4200000001 4200000001 4200000001
\tBGP.next_hop: 198.18.0.100
\tBGP.med: 10
\tBGP.local_pref: 100
\tBGP.community: (65000,1) (65000,2)
\tBGP.ext_community: (rt, 65000, 100)
\tBGP.large_community: (4200000001, 1, 1) (4200000001, 1, 2)
                     unreachable [peer2 18:47:42.000 from 127.95.2.3] (100) [AS65555i]
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65555
\tBGP.next_hop: 198.18.0.200
\tBGP.med: 99
";

    #[test]
    fn bird_show_route_all_parses_the_best_route_per_prefix() {
        let routes = parse_bird_routes(BIRD);
        assert_eq!(routes.len(), 3);
        let mut want = spec().expected(4_200_000_001, false);
        want.local_pref = Some(100);
        assert_eq!(routes[2], want);
        assert_eq!(
            routes[1].prefix,
            "198.51.100.0/25".parse::<IpNet>().unwrap()
        );
        assert_eq!(routes[1].as_path, vec![4_200_000_001]);
        assert_eq!(
            routes[0].origin, None,
            "a static route has no BGP attributes"
        );
    }

    #[test]
    fn frr_prefix_json_parses() {
        // Trimmed from `show bgp ipv6 unicast 2001:db8:100::/48 json` of bgpd 8.4.4.
        let text = r#"{"prefix":"2001:db8:100::/48","paths":[{"aspath":{"string":"4200000001 4200000001",
            "length":2},"origin":"IGP","metric":20,"bestpath":{"overall":true},
            "community":{"string":"65000:3"},"extendedCommunity":{"string":"RT:65000:106"},
            "largeCommunity":{"string":"4200000001:6:6"},
            "nexthops":[{"ip":"2001:db8:ffff::100","afi":"ipv6","scope":"global"},
                        {"ip":"fe80::1","afi":"ipv6","scope":"link-local"}]}]}"#;
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let r = parse_frr_prefix("2001:db8:100::/48", &v).unwrap().unwrap();
        let mut want = RouteSpec::new("2001:db8:100::/48", "2001:db8:ffff::100");
        want.med = Some(20);
        want.communities = vec![(65000, 3)];
        want.large_communities = vec![(4_200_000_001, 6, 6)];
        want.route_targets = vec![(65000, 106)];
        want.prepend = 1;
        assert_eq!(r, want.expected(4_200_000_001, false));
    }

    #[test]
    fn gobgp_rib_json_parses() {
        // From `gobgp global rib -a ipv6 -j` of GoBGP 3.10.0.
        let text = r#"{"2001:db8:100::/48":[{"nlri":{"prefix":"2001:db8:100::/48"},"best":true,
            "attrs":[{"type":1,"value":0},{"type":2,"as_paths":[{"segment_type":2,"num":2,
            "asns":[4200000001,4200000001]}]},{"type":4,"metric":20},{"type":8,
            "communities":[4259840003]},{"type":16,"value":[{"type":0,"subtype":2,
            "value":"65000:106"}]},{"type":32,"value":[{"ASN":4200000001,"LocalData1":6,
            "LocalData2":6}]},{"type":14,"nexthop":"2001:db8:ffff::100","afi":2,"safi":1,
            "value":[{"prefix":"2001:db8:100::/48"}]}],"stale":false}]}"#;
        let r = parse_gobgp_rib(text).unwrap();
        let mut want = RouteSpec::new("2001:db8:100::/48", "2001:db8:ffff::100");
        want.med = Some(20);
        want.communities = vec![(65000, 3)];
        want.large_communities = vec![(4_200_000_001, 6, 6)];
        want.route_targets = vec![(65000, 106)];
        want.prepend = 1;
        assert_eq!(r, vec![want.expected(4_200_000_001, false)]);
    }

    #[test]
    fn a_packed_route_spec_decodes_to_its_expected_view() {
        let ctx = Context::default();
        let mut v6 = RouteSpec::new("2001:db8:100::/48", "2001:db8:ffff::100");
        v6.local_pref = Some(200);
        v6.communities = vec![(65000, 3)];
        for (r, ibgp) in [(spec(), false), (v6, true)] {
            let mut out = BytesMut::new();
            let nh = r.wire_next_hop();
            let nh = (r.family() != AfiSafi::IPV4_UNICAST).then_some(&nh);
            let attrs = r.path_attributes(4_200_000_001, ibgp);
            pack_announce(&ctx, &attrs, r.family(), nh, [r.prefix.into()], &mut out).unwrap();
            let Message::Update(u) = Message::decode(out.freeze(), &ctx).unwrap() else {
                panic!("not an UPDATE")
            };
            assert_eq!(
                DaemonRoute::from_update(&u),
                vec![r.expected(4_200_000_001, ibgp)]
            );
        }
    }

    #[test]
    fn configs_name_the_neighbour_and_the_routes() {
        let lab = Lab {
            daemon: Ipv4Addr::new(127, 1, 2, 1),
            ours: Ipv4Addr::new(127, 1, 2, 2),
        };
        let mut s = DaemonSpec::new(DaemonKind::Frr, lab, 4_200_000_002, 4_200_000_001);
        s.routes = vec![spec()];
        s.neighbor.password = Some("pw".into());
        s.neighbor.hold_time = Some(0);
        let dir = Path::new("/tmp/x");
        let frr = frr_config(&s, dir);
        assert!(
            frr.contains(" neighbor 127.1.2.2 remote-as 4200000001\n"),
            "{frr}"
        );
        assert!(frr.contains(" neighbor 127.1.2.2 timers 0 0\n"), "{frr}");
        assert!(frr.contains(" neighbor 127.1.2.2 password pw\n"), "{frr}");
        assert!(
            frr.contains("  network 203.0.113.0/24 route-map ORIG-0\n"),
            "{frr}"
        );
        assert!(
            frr.contains(" set as-path prepend 4200000002 4200000002\n"),
            "{frr}"
        );
        s.kind = DaemonKind::Bird;
        let bird = bird_config(&s, dir);
        assert!(
            bird.contains("neighbor 127.1.2.2 port 179 as 4200000001;"),
            "{bird}"
        );
        assert!(bird.contains("hold time 0;"), "{bird}");
        assert!(
            bird.contains("    bgp_ext_community.add((rt,65000,100));\n"),
            "{bird}"
        );
        s.kind = DaemonKind::Gobgp;
        let gobgp = gobgp_config(&s);
        assert!(
            gobgp.contains("neighbor-address = \"127.1.2.2\""),
            "{gobgp}"
        );
        assert!(gobgp.contains("auth-password = \"pw\""), "{gobgp}");
    }

    #[test]
    fn kinds_have_names() {
        for k in DaemonKind::ALL {
            assert_eq!(DaemonKind::from_name(k.name()), Some(k));
        }
    }

    #[test]
    fn summary_counts() {
        let bird =
            "BIRD 2.0.12 ready.\n100000 of 100000 routes for 100000 networks in table master4\n";
        assert_eq!(parse_bird_count(bird), Some(100_000));
        assert_eq!(parse_bird_count("BIRD 2.0.12 ready.\n"), None);
        let gobgp = "Table afi:AFI_IP safi:SAFI_UNICAST\nDestination: 98078, Path: 98078\n";
        assert_eq!(parse_gobgp_destinations(gobgp), Some(98_078));
        let v: serde_json::Value = serde_json::from_str(
            r#"{"afi_safis":[{"state":{"family":{"afi":1,"safi":1},"received":7}},
                {"state":{"family":{"afi":2,"safi":1}}}]}"#,
        )
        .unwrap();
        assert_eq!(parse_gobgp_received(&v, false), Some(7));
        assert_eq!(parse_gobgp_received(&v, true), Some(0));
    }

    #[test]
    fn peer_gr_views() {
        // gobgp neighbor -j of GoBGP 3.10 after our restart: flags 0x0C (R, N), 120 s,
        // IPv4 and IPv6 unicast with F.
        let v: serde_json::Value = serde_json::from_str(
            r#"{"state":{"remote_cap":[{"type_url":"type.googleapis.com/apipb.GracefulRestartCapability",
                "value":"CAwQeBoJCgQIARABEIABGgkKBAgCEAEQgAE="}]}}"#,
        )
        .unwrap();
        let want = PeerGr {
            restart_state: true,
            forwarding: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
        };
        assert_eq!(parse_gobgp_peer_gr(&v), Some(want.clone()));
        // Trimmed from birdc show protocols all peer of BIRD 2.0.12, the same moment.
        let bird = "    Neighbor capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Route refresh
      Graceful restart
        Restart time: 120
        Restart recovery
        AF supported: ipv4 ipv6
        AF preserved: ipv4 ipv6
      4-octet AS numbers
";
        assert_eq!(parse_bird_peer_gr(bird), Some(want.clone()));
        let frr: serde_json::Value = serde_json::from_str(
            r#"{"gracefulRestartInfo":{"rBit":true,"nBit":true,
                "ipv4Unicast":{"fBit":true},"ipv6Unicast":{"fBit":true}}}"#,
        )
        .unwrap();
        assert_eq!(parse_frr_peer_gr(&frr), Some(want));
    }

    #[test]
    fn mrt_dump_layout() {
        let p: Vec<IpNet> = vec![
            "40.0.0.0/24".parse().unwrap(),
            "40.0.1.128/25".parse().unwrap(),
        ];
        let d = mrt_table_dump(&p, Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(198, 18, 0, 3));
        // PEER_INDEX_TABLE: 12-byte header, 4 + 2 + 2 + 13-byte peer entry.
        assert_eq!(&d[4..8], &[0, 13, 0, 1]);
        assert_eq!(u32::from_be_bytes(d[8..12].try_into().unwrap()), 21);
        let rib = &d[12 + 21..];
        assert_eq!(&rib[4..8], &[0, 13, 0, 2]);
        // seq 0, /24, 3 prefix bytes, 1 entry, peer 0, time 0, 14 bytes of attributes.
        let body = &rib[12..];
        assert_eq!(&body[..8], &[0, 0, 0, 0, 24, 40, 0, 0]);
        assert_eq!(&body[8..10], &[0, 1]);
        assert_eq!(&body[16..18], &[0, 14]);
        assert_eq!(&body[18 + 10..18 + 14], &[198, 18, 0, 3]);
        let len = u32::from_be_bytes(rib[8..12].try_into().unwrap()) as usize;
        let second = &rib[12 + len..];
        assert_eq!(&second[12..17], &[0, 0, 0, 1, 25]);
        assert_eq!(&second[17..21], &[40, 0, 1, 128]);
    }

    #[test]
    fn extra_neighbours_in_every_config() {
        let lab = Lab {
            daemon: Ipv4Addr::new(127, 64, 1, 1),
            ours: Ipv4Addr::new(127, 64, 1, 2),
        };
        assert_eq!(lab.extra(0), Ipv4Addr::new(127, 64, 1, 3));
        for kind in DaemonKind::ALL {
            let mut s = DaemonSpec::new(kind, lab, 4_200_000_002, 4_200_000_001);
            s.add_neighbor(lab.extra(0), 4_200_000_003);
            let text = match kind {
                DaemonKind::Frr => frr_config(&s, Path::new("/tmp/x")),
                DaemonKind::Bird => bird_config(&s, Path::new("/tmp/x")),
                DaemonKind::Gobgp => gobgp_config(&s),
            };
            for n in [lab.ours, lab.extra(0)] {
                assert!(
                    text.contains(&n.to_string()),
                    "{kind}: {n} missing:\n{text}"
                );
            }
            assert!(text.contains("4200000003"), "{kind}:\n{text}");
        }
        let mut s = DaemonSpec::new(DaemonKind::Bird, lab, 4_200_000_002, 4_200_000_001);
        s.add_neighbor(lab.extra(0), 4_200_000_003);
        assert_eq!(s.bird_protocol(lab.ours), "peer");
        assert_eq!(s.bird_protocol(lab.extra(0)), "peer1");
        let text = bird_config(&s, Path::new("/tmp/x"));
        assert!(text.contains("protocol bgp peer1 {"), "{text}");
        assert!(text.contains("export all;"), "{text}");
    }
}
