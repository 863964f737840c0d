//! End-to-end load generator for the daemon benchmarks of issue 8 (`benches/e2e/run.sh`).
//!
//! ```text
//! bgpload inject  --target ADDR[:PORT] --local ADDR[:PORT] --asn N --peer-asn N
//!                 [--ipv4 N] [--ipv6 N] [--attr-sets N] [--seed S] [--slice I/N]
//!                 [--hold-time S] [--timeout S] [--go-file PATH] [--duration S]
//!                 [--graceful-restart] [--churn RATE --churn-secs N [--churn-go-file PATH]] [--active]
//! bgpload monitor --target ADDR[:PORT] --local ADDR[:PORT] --asn N --peer-asn N --expect N
//!                 [--timeout S] [--watch-secs S [--stop-file PATH]] [--hold-time S] [--active]
//! ```
//!
//! Both peer with one target over TCP on loopback, do the OPEN exchange with bgp-wire and
//! print one JSON object on stdout; progress goes to stderr.
//!
//! - `inject` generates a table with `bgp_testkit::Table::generate` (default: `TableSpec::full()`;
//!   `--ipv4/--ipv6/--attr-sets/--seed` change it, with the first AS of every path set to
//!   `--asn`), encodes it, waits for Established (and for `--go-file` to exist, if given), then
//!   streams the table and the End-of-RIB markers, optionally churns (`--churn RATE` prefix
//!   changes per second for `--churn-secs`, once `--churn-go-file` exists if given), prints
//!   its report, and keeps the session up with keepalives until `--duration` ends (default one
//!   hour) or it is killed. `--slice I/N` sends only every N-th prefix starting at I, so that N
//!   injectors with the same seed send disjoint parts of one table. `--graceful-restart` sets the R bit in the Graceful Restart capability
//!   (a restarted speaker re-sending its table, RFC 4724).
//! - `monitor` decodes every UPDATE (ADD-PATH off), tracks the prefixes it holds, and records
//!   the unix time (ns) when it first held `--expect` prefixes; it then exits, or keeps
//!   watching for `--watch-secs` (withdrawals and per-second counts, for the graceful restart
//!   and churn scenarios), or until `--stop-file` exists.
//!
//! Connections: by default the tool listens on `--local` (port 179 unless given) and accepts
//! one connection from the `--target` address: the daemon is configured to connect to it.
//! (`std::net::TcpStream` cannot bind a source address before connecting, and every injector
//! and monitor needs its own address.) `--active` connects to `--target` instead, from an
//! address the kernel picks; the in-process test uses it.
//!
//! The report is printed as soon as the work is done (the injector then holds the session
//! until stopped): catching SIGTERM needs `unsafe` or another dependency, and neither is worth
//! it for a report that is complete at that point anyway.
//!
//! Every wait is bounded by `--timeout` (default 600 s) or the negotiated hold time.

use std::collections::HashSet;
use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bgp_testkit::wire::{NEXT_HOP_V4, NEXT_HOP_V6, attributes, encode_table};
use bgp_testkit::{Table, TableSpec};
use bgp_wire::capability::{GracefulRestart, GracefulRestartFamily};
use bgp_wire::context::HEADER_LEN;
use bgp_wire::{
    AfiSafi, Asn, Capability, Context, Header, Message, MessageType, NextHop, Nlri, Open,
    pack_announce, pack_withdraw, split_message,
};
use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

const USAGE: &str = "usage:
  bgpload inject  --target ADDR[:PORT] --local ADDR[:PORT] --asn N --peer-asn N
                  [--ipv4 N] [--ipv6 N] [--attr-sets N] [--seed S] [--slice I/N]
                  [--hold-time S] [--timeout S] [--go-file PATH] [--duration S]
                  [--graceful-restart] [--churn RATE --churn-secs N [--churn-go-file PATH]] [--active]
  bgpload monitor --target ADDR[:PORT] --local ADDR[:PORT] --asn N --peer-asn N --expect N
                  [--timeout S] [--watch-secs S [--stop-file PATH]] [--hold-time S] [--active]
  (--listen ADDR is the same as --local ADDR)";

/// Restart time advertised in the Graceful Restart capability, seconds.
const GR_RESTART_TIME: u16 = 120;
/// Largest chunk written to the socket at once; keepalives go in between chunks.
const CHUNK: usize = 64 * 1024;
/// Granularity of every polling loop.
const TICK: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let parsed = Args::parse(rest);
    let result = match (cmd.as_str(), parsed) {
        (_, Err(e)) => Err(e),
        ("inject", Ok(a)) => InjectOpts::from_args(&a).and_then(|o| inject_main(&o)),
        ("monitor", Ok(a)) => MonitorOpts::from_args(&a).and_then(|o| monitor_main(&o)),
        _ => Err("unknown subcommand".into()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bgpload {cmd}: error: {e}");
            if e.to_string().contains("usage") || e.to_string().contains("--") {
                eprintln!("{USAGE}");
            }
            ExitCode::from(1)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arguments

/// `--key value` pairs and bare flags.
struct Args {
    pairs: Vec<(String, Option<String>)>,
}

/// Flags that take no value.
const BARE_FLAGS: &[&str] = &["--graceful-restart", "--active"];

impl Args {
    fn parse(args: &[String]) -> Result<Args> {
        let mut pairs = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if !a.starts_with("--") {
                return Err(format!("unexpected argument {a:?}").into());
            }
            if BARE_FLAGS.contains(&a.as_str()) {
                pairs.push((a.clone(), None));
            } else {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                pairs.push((a.clone(), Some(v.clone())));
            }
        }
        Ok(Args { pairs })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    fn flag(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    fn num<T: std::str::FromStr>(&self, key: &str, default: Option<T>) -> Result<T> {
        match self.get(key) {
            Some(v) => v
                .replace('_', "")
                .parse()
                .map_err(|_| format!("{key}: not a number: {v:?}").into()),
            None => default.ok_or_else(|| format!("{key} is required").into()),
        }
    }

    fn check_known(&self, known: &[&str]) -> Result<()> {
        for (k, _) in &self.pairs {
            if !known.contains(&k.as_str()) && !BARE_FLAGS.contains(&k.as_str()) {
                return Err(format!("unknown option {k}").into());
            }
        }
        Ok(())
    }
}

/// Parses `ADDR` or `ADDR:PORT` (port 179 by default); only loopback addresses are accepted.
fn parse_addr(s: &str) -> Result<SocketAddr> {
    let addr = match s.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => SocketAddr::new(
            s.parse::<IpAddr>()
                .map_err(|_| format!("not an address: {s:?}"))?,
            179,
        ),
    };
    if !addr.ip().is_loopback() {
        return Err(format!("{s}: only loopback addresses are allowed").into());
    }
    Ok(addr)
}

/// What both subcommands share: who we are, whom we peer with, how long we wait.
#[derive(Clone, Debug)]
struct PeerOpts {
    target: SocketAddr,
    local: SocketAddr,
    asn: u32,
    peer_asn: u32,
    hold_time: u16,
    timeout: Duration,
    active: bool,
    restarted: bool,
}

const PEER_KEYS: &[&str] = &[
    "--target",
    "--local",
    "--listen",
    "--asn",
    "--peer-asn",
    "--hold-time",
    "--timeout",
];

impl PeerOpts {
    fn from_args(a: &Args) -> Result<PeerOpts> {
        let target = parse_addr(a.get("--target").ok_or("--target is required")?)?;
        let local = a
            .get("--local")
            .or(a.get("--listen"))
            .ok_or("--local (or --listen) is required")?;
        let hold_time: u16 = a.num("--hold-time", Some(90))?;
        if hold_time != 0 && hold_time < 3 {
            return Err("--hold-time must be 0 or at least 3".into());
        }
        Ok(PeerOpts {
            target,
            local: parse_addr(local)?,
            asn: a.num("--asn", None)?,
            peer_asn: a.num("--peer-asn", None)?,
            hold_time,
            timeout: Duration::from_secs(a.num("--timeout", Some(600))?),
            active: a.flag("--active"),
            restarted: a.flag("--graceful-restart"),
        })
    }
}

#[derive(Clone, Debug)]
struct InjectOpts {
    peer: PeerOpts,
    spec: TableSpec,
    /// `(i, n)`: send only prefixes whose index in the table is `i` modulo `n`.
    slice: (usize, usize),
    go_file: Option<PathBuf>,
    /// Churn starts when this file exists (after convergence, say).
    churn_go_file: Option<PathBuf>,
    duration: Duration,
    churn_rate: u64,
    churn_secs: u64,
}

impl InjectOpts {
    fn from_args(a: &Args) -> Result<InjectOpts> {
        let mut keys = PEER_KEYS.to_vec();
        keys.extend([
            "--ipv4",
            "--ipv6",
            "--attr-sets",
            "--seed",
            "--slice",
            "--go-file",
            "--churn-go-file",
            "--duration",
            "--churn",
            "--churn-secs",
        ]);
        a.check_known(&keys)?;
        let peer = PeerOpts::from_args(a)?;
        let full = TableSpec::full();
        let spec = TableSpec {
            ipv4_prefixes: a.num("--ipv4", Some(full.ipv4_prefixes))?,
            ipv6_prefixes: a.num("--ipv6", Some(full.ipv6_prefixes))?,
            attribute_sets: a.num("--attr-sets", Some(full.attribute_sets))?,
            seed: a.num("--seed", Some(full.seed))?,
            peer_as: peer.asn,
        };
        let slice = match a.get("--slice") {
            None => (0, 1),
            Some(s) => {
                let (i, n) = s.split_once('/').ok_or("--slice takes I/N")?;
                let i: usize = i.parse().map_err(|_| "--slice: bad I")?;
                let n: usize = n.parse().map_err(|_| "--slice: bad N")?;
                if n == 0 || i >= n {
                    return Err("--slice I/N needs 0 <= I < N".into());
                }
                (i, n)
            }
        };
        let churn_rate: u64 = a.num("--churn", Some(0))?;
        let churn_secs: u64 = a.num("--churn-secs", Some(if churn_rate > 0 { 60 } else { 0 }))?;
        Ok(InjectOpts {
            peer,
            spec,
            slice,
            go_file: a.get("--go-file").map(PathBuf::from),
            churn_go_file: a.get("--churn-go-file").map(PathBuf::from),
            duration: Duration::from_secs(a.num("--duration", Some(3600))?),
            churn_rate,
            churn_secs,
        })
    }
}

#[derive(Clone, Debug)]
struct MonitorOpts {
    peer: PeerOpts,
    expect: usize,
    watch: Duration,
    /// Ends the watch phase early once this file exists.
    stop_file: Option<PathBuf>,
}

impl MonitorOpts {
    fn from_args(a: &Args) -> Result<MonitorOpts> {
        let mut keys = PEER_KEYS.to_vec();
        keys.extend(["--expect", "--watch-secs", "--stop-file"]);
        a.check_known(&keys)?;
        let expect: usize = a.num("--expect", None)?;
        if expect == 0 {
            return Err("--expect must be at least 1".into());
        }
        Ok(MonitorOpts {
            peer: PeerOpts::from_args(a)?,
            expect,
            watch: Duration::from_secs(a.num("--watch-secs", Some(0))?),
            stop_file: a.get("--stop-file").map(PathBuf::from),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Session plumbing

/// Unix time in nanoseconds.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Where the TCP connection comes from.
enum Endpoint {
    /// Accept one connection from this address on the listener.
    Listen(TcpListener, IpAddr),
    /// Connect to this address.
    Connect(SocketAddr),
}

impl Endpoint {
    fn for_opts(p: &PeerOpts) -> Result<Endpoint> {
        if p.active {
            return Ok(Endpoint::Connect(p.target));
        }
        let l =
            TcpListener::bind(p.local).map_err(|e| format!("cannot listen on {}: {e}", p.local))?;
        Ok(Endpoint::Listen(l, p.target.ip()))
    }

    fn stream(self, deadline: Instant) -> Result<TcpStream> {
        match self {
            Endpoint::Connect(addr) => loop {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                    Ok(s) => return Ok(s),
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("cannot connect to {addr}: {e}").into());
                    }
                    Err(_) => thread::sleep(TICK * 5),
                }
            },
            Endpoint::Listen(l, from) => {
                l.set_nonblocking(true)?;
                loop {
                    match l.accept() {
                        Ok((s, peer)) if peer.ip() == from => {
                            s.set_nonblocking(false)?;
                            return Ok(s);
                        }
                        Ok((_, peer)) => eprintln!("bgpload: ignoring connection from {peer}"),
                        Err(e) if e.kind() == IoKind::WouldBlock => {}
                        Err(e) => return Err(format!("accept: {e}").into()),
                    }
                    if Instant::now() >= deadline {
                        return Err(format!("no connection from {from} in time").into());
                    }
                    thread::sleep(TICK / 2);
                }
            }
        }
    }
}

/// The receiving half of a session: a framing buffer over a stream.
struct Receiver {
    stream: TcpStream,
    buf: BytesMut,
    scratch: Vec<u8>,
    ctx: Context,
    read_timeout: Option<Duration>,
    bytes: u64,
}

impl Receiver {
    fn new(stream: TcpStream) -> Receiver {
        Receiver {
            stream,
            buf: BytesMut::with_capacity(256 * 1024),
            scratch: vec![0; 256 * 1024],
            ctx: Context::default(),
            read_timeout: None,
            bytes: 0,
        }
    }

    /// The next whole message's header and bytes, waiting at most `wait` for more input;
    /// `None` when nothing complete arrived in time. A closed connection is an error.
    fn next_frame(&mut self, wait: Duration) -> Result<Option<(Header, Bytes)>> {
        if let Some(f) = split_message(&mut self.buf, self.ctx.max_message_len)
            .map_err(|e| format!("bad message from peer: {e}"))?
        {
            return Ok(Some(f));
        }
        let wait = wait.max(Duration::from_millis(1));
        if self.read_timeout != Some(wait) {
            self.stream.set_read_timeout(Some(wait))?;
            self.read_timeout = Some(wait);
        }
        match self.stream.read(&mut self.scratch) {
            Ok(0) => Err("peer closed the connection".into()),
            Ok(n) => {
                self.bytes += n as u64;
                self.buf.extend_from_slice(&self.scratch[..n]);
                Ok(split_message(&mut self.buf, self.ctx.max_message_len)
                    .map_err(|e| format!("bad message from peer: {e}"))?)
            }
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => Ok(None),
            Err(e) if e.kind() == IoKind::Interrupted => Ok(None),
            Err(e) => Err(format!("read: {e}").into()),
        }
    }

    fn decode(&self, header: Header, msg: Bytes) -> Result<Message> {
        Message::decode_body(header, msg.slice(HEADER_LEN..), &self.ctx)
            .map_err(|e| format!("cannot decode {:?} from peer: {e}", header.kind).into())
    }
}

/// An established session.
struct Session {
    writer: TcpStream,
    rx: Receiver,
    /// Negotiated hold time; zero means no keepalives and no hold timer.
    hold: Duration,
    peer_open: Open,
    established_ns: u64,
}

impl Session {
    /// Connects (or accepts), exchanges OPENs and KEEPALIVEs, and returns once Established.
    fn establish(p: &PeerOpts, endpoint: Endpoint) -> Result<Session> {
        let deadline = Instant::now() + p.timeout;
        let stream = endpoint.stream(deadline)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(p.timeout))?;
        let mut writer = stream.try_clone()?;
        let mut rx = Receiver::new(stream);
        let open = Open::new(
            Asn(p.asn),
            p.hold_time,
            router_id(p.local.ip()),
            capabilities(p),
        );
        write_message(&mut writer, &Message::Open(open), &rx.ctx)?;
        let peer_open = match recv_until(&mut rx, deadline, "OPEN")? {
            Message::Open(o) => o,
            Message::Notification(n) => return Err(format!("peer sent NOTIFICATION: {n}").into()),
            other => return Err(format!("expected OPEN, got {:?}", other.kind()).into()),
        };
        if peer_open.asn().0 != p.peer_asn {
            return Err(format!(
                "peer is AS {}, expected AS {}",
                peer_open.asn().0,
                p.peer_asn
            )
            .into());
        }
        if peer_open.hold_time != 0 && peer_open.hold_time < 3 {
            return Err(format!("peer proposes hold time {}", peer_open.hold_time).into());
        }
        // RFC 4271 §4.2: the smaller of the two proposals.
        let hold = Duration::from_secs(u64::from(p.hold_time.min(peer_open.hold_time)));
        rx.ctx = Context {
            four_octet_as: peer_open.four_octet_as().is_some(),
            ..Context::default()
        };
        write_message(&mut writer, &Message::Keepalive, &rx.ctx)?;
        match recv_until(&mut rx, deadline, "KEEPALIVE")? {
            Message::Keepalive => {}
            Message::Notification(n) => return Err(format!("peer sent NOTIFICATION: {n}").into()),
            other => return Err(format!("expected KEEPALIVE, got {:?}", other.kind()).into()),
        }
        eprintln!(
            "bgpload: established with {} (AS {}, hold time {} s, 4-octet AS {})",
            p.target.ip(),
            peer_open.asn().0,
            hold.as_secs(),
            rx.ctx.four_octet_as
        );
        Ok(Session {
            writer,
            rx,
            hold,
            peer_open,
            established_ns: now_ns(),
        })
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        (!self.hold.is_zero()).then(|| self.hold / 3)
    }
}

fn recv_until(rx: &mut Receiver, deadline: Instant, what: &str) -> Result<Message> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out waiting for {what}").into());
        }
        if let Some((h, m)) = rx.next_frame(left.min(TICK))? {
            return rx.decode(h, m);
        }
    }
}

fn write_message(w: &mut TcpStream, m: &Message, ctx: &Context) -> Result<()> {
    let b = m
        .to_bytes(ctx)
        .map_err(|e| format!("cannot encode {:?}: {e}", m.kind()))?;
    w.write_all(&b)
        .map_err(|e| format!("write {:?}: {e}", m.kind()))?;
    Ok(())
}

/// The OPEN capabilities of both tools: IPv4 and IPv6 unicast, route refresh, graceful
/// restart (R bit when restarted, F bit for both families) and 4-octet AS.
fn capabilities(p: &PeerOpts) -> Vec<Capability> {
    let families = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];
    let mut caps: Vec<Capability> = families
        .iter()
        .map(|&f| Capability::Multiprotocol(f))
        .collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::GracefulRestart(GracefulRestart {
        flags: if p.restarted {
            GracefulRestart::RESTART_STATE
        } else {
            0
        },
        restart_time: GR_RESTART_TIME,
        families: families
            .iter()
            .map(|&f| GracefulRestartFamily::new(f, true))
            .collect(),
    }));
    caps.push(Capability::FourOctetAs(Asn(p.asn)));
    caps
}

/// A BGP identifier from a loopback address: 127.a.b.c becomes 10.a.b.c (unique per tool
/// address, and not the 127/8 that some daemons frown upon).
fn router_id(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => {
            let [_, a, b, c] = v4.octets();
            Ipv4Addr::new(10, a, b, c)
        }
        IpAddr::V6(_) => Ipv4Addr::new(10, 255, 255, 1),
    }
}

fn open_json(o: &Open) -> Value {
    let caps: Vec<Value> = o
        .capabilities
        .iter()
        .map(|c| match c {
            Capability::Multiprotocol(f) => json!(format!("mp:{f}")),
            Capability::GracefulRestart(g) => json!(format!(
                "gr:flags={:#x},time={},families={}",
                g.flags,
                g.restart_time,
                g.families.len()
            )),
            Capability::FourOctetAs(a) => json!(format!("as4:{}", a.0)),
            other => json!(format!("code{}", other.code())),
        })
        .collect();
    json!({
        "asn": o.asn().0,
        "hold_time": o.hold_time,
        "bgp_id": o.bgp_id.to_string(),
        "capabilities": caps,
    })
}

// ---------------------------------------------------------------------------------------------
// inject

/// What the reader thread of the injector shares with the writer.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    closed: AtomicBool,
    error: Mutex<Option<String>>,
    messages: AtomicU64,
    updates: AtomicU64,
}

impl Shared {
    fn fail(&self, e: String) {
        if let Ok(mut g) = self.error.lock() {
            g.get_or_insert(e);
        }
        self.closed.store(true, Ordering::SeqCst);
    }

    fn check(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            let e = self
                .error
                .lock()
                .ok()
                .and_then(|g| g.clone())
                .unwrap_or_else(|| "session closed".into());
            return Err(e.into());
        }
        Ok(())
    }
}

/// Reads and discards what the target sends (framing only; NOTIFICATIONs decoded), and
/// enforces the hold timer. Runs until `stop` or an error.
fn drain(mut rx: Receiver, hold: Duration, shared: Arc<Shared>) {
    let mut last = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) {
        match rx.next_frame(TICK) {
            Ok(Some((h, m))) => {
                last = Instant::now();
                shared.messages.fetch_add(1, Ordering::Relaxed);
                match h.kind {
                    MessageType::Update => {
                        shared.updates.fetch_add(1, Ordering::Relaxed);
                    }
                    MessageType::Notification => {
                        let why = match rx.decode(h, m) {
                            Ok(Message::Notification(n)) => format!("peer sent NOTIFICATION: {n}"),
                            _ => "peer sent a malformed NOTIFICATION".into(),
                        };
                        shared.fail(why);
                        return;
                    }
                    _ => {}
                }
            }
            Ok(None) => {
                if !hold.is_zero() && last.elapsed() > hold {
                    shared.fail("hold timer expired (nothing from the peer)".into());
                    return;
                }
            }
            Err(e) => {
                shared.fail(e.to_string());
                return;
            }
        }
    }
}

/// Sends keepalives on time from the writing side.
struct Keepalives {
    every: Option<Duration>,
    last: Instant,
    sent: u64,
}

impl Keepalives {
    fn due(&mut self, w: &mut TcpStream, ctx: &Context) -> Result<()> {
        if let Some(every) = self.every {
            if self.last.elapsed() >= every {
                write_message(w, &Message::Keepalive, ctx)?;
                self.last = Instant::now();
                self.sent += 1;
            }
        }
        Ok(())
    }
}

/// Keeps only the prefixes whose index is `i` modulo `n`, dropping emptied groups.
fn slice_table(table: &mut Table, (i, n): (usize, usize)) {
    if n <= 1 {
        return;
    }
    let mut idx = 0usize;
    for groups in [&mut table.ipv4, &mut table.ipv6] {
        for g in groups.iter_mut() {
            g.prefixes.retain(|_| {
                let keep = idx % n == i;
                idx += 1;
                keep
            });
        }
        groups.retain(|g| !g.prefixes.is_empty());
    }
}

fn inject_main(o: &InjectOpts) -> Result<ExitCode> {
    let t0 = Instant::now();
    let mut table = Table::generate(o.spec);
    slice_table(&mut table, o.slice);
    let ctx = Context::default();
    let encoded = encode_table(&table, &ctx);
    let generate_ms = t0.elapsed().as_millis() as u64;
    eprintln!(
        "bgpload inject: {} prefixes in {} UPDATEs ({} bytes), generated in {generate_ms} ms",
        encoded.prefixes,
        encoded.updates,
        encoded.stream.len()
    );
    let endpoint = Endpoint::for_opts(&o.peer)?;
    let print = |report: &Value| {
        println!("{report}");
        let _ = std::io::stdout().flush();
    };
    match inject(o, endpoint, &table, &encoded.stream, generate_ms, print)? {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("bgpload inject: session ended: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Runs one injection: establishes, does the work, hands the report to `report` (so that it
/// is out before the holding phase, during which the process may be killed), then holds the
/// session for `--duration`. Returns how the holding phase ended. (Split from `inject_main`
/// so that the test can run it in process.)
fn inject(
    o: &InjectOpts,
    endpoint: Endpoint,
    table: &Table,
    stream: &[u8],
    generate_ms: u64,
    report: impl FnOnce(&Value),
) -> Result<Result<()>> {
    let session = Session::establish(&o.peer, endpoint)?;
    let ctx = session.rx.ctx;
    let hold = session.hold;
    let mut ka = Keepalives {
        every: session.keepalive_interval(),
        last: Instant::now(),
        sent: 0,
    };
    let Session {
        mut writer,
        rx,
        peer_open,
        established_ns,
        ..
    } = session;
    let shared = Arc::new(Shared::default());
    let reader = {
        let shared = shared.clone();
        thread::spawn(move || drain(rx, hold, shared))
    };
    let mut r = match inject_work(o, &mut writer, &ctx, &mut ka, &shared, table, stream) {
        Ok(r) => r,
        Err(e) => {
            shared.stop.store(true, Ordering::SeqCst);
            let _ = writer.shutdown(Shutdown::Both);
            let _ = reader.join();
            return Err(e);
        }
    };
    if let Value::Object(m) = &mut r {
        m.insert("established_ns".into(), json!(established_ns));
        m.insert("generate_ms".into(), json!(generate_ms));
        m.insert("peer_open".into(), open_json(&peer_open));
        m.insert("hold_time".into(), json!(hold.as_secs()));
        m.insert("target".into(), json!(o.peer.target.to_string()));
        m.insert("asn".into(), json!(o.peer.asn));
        m.insert("graceful_restart_r_bit".into(), json!(o.peer.restarted));
        m.insert(
            "received_messages".into(),
            json!(shared.messages.load(Ordering::Relaxed)),
        );
    }
    report(&r);
    let until = Instant::now() + o.duration;
    let held = hold_session(&mut writer, &ctx, &mut ka, &shared, until);
    shared.stop.store(true, Ordering::SeqCst);
    // No more writes; the reader notices `stop` within one TICK.
    let _ = writer.shutdown(Shutdown::Write);
    let _ = reader.join();
    eprintln!(
        "bgpload inject: done; received {} messages ({} UPDATEs), sent {} keepalives",
        shared.messages.load(Ordering::Relaxed),
        shared.updates.load(Ordering::Relaxed),
        ka.sent
    );
    Ok(held)
}

/// Waits for the go file, sends the table and End-of-RIB, churns; returns the report.
fn inject_work(
    o: &InjectOpts,
    w: &mut TcpStream,
    ctx: &Context,
    ka: &mut Keepalives,
    shared: &Shared,
    table: &Table,
    stream: &[u8],
) -> Result<Value> {
    wait_for_file(o.go_file.as_ref(), o.peer.timeout, w, ctx, ka, shared)?;
    shared.check()?;
    let first_update_ns = now_ns();
    let t = Instant::now();
    let messages = send_stream(w, ctx, ka, shared, stream)?;
    let sent_ns = now_ns();
    let send_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "bgpload inject: table and End-of-RIB written in {send_secs:.3} s ({messages} messages)"
    );
    let mut report = json!({
        "mode": "inject",
        "prefixes": table.len(),
        "ipv4": table.ipv4.iter().map(|g| g.prefixes.len()).sum::<usize>(),
        "ipv6": table.ipv6.iter().map(|g| g.prefixes.len()).sum::<usize>(),
        "attr_sets": table.ipv4.len() + table.ipv6.len(),
        "slice": format!("{}/{}", o.slice.0, o.slice.1),
        "messages": messages,
        "updates": messages.saturating_sub(2),
        "bytes": stream.len(),
        "first_update_ns": first_update_ns,
        "sent_ns": sent_ns,
        "send_secs": send_secs,
    });
    if o.churn_rate > 0 && o.churn_secs > 0 {
        wait_for_file(o.churn_go_file.as_ref(), o.peer.timeout, w, ctx, ka, shared)?;
        let churn = churn(o, w, ctx, ka, shared, table)?;
        if let Value::Object(m) = &mut report {
            m.insert("churn".into(), churn);
        }
    }
    if let Value::Object(m) = &mut report {
        m.insert("keepalives_sent".into(), json!(ka.sent));
    }
    Ok(report)
}

/// Waits (bounded) until `file` exists, keeping the session up; no file, no wait.
fn wait_for_file(
    file: Option<&PathBuf>,
    timeout: Duration,
    w: &mut TcpStream,
    ctx: &Context,
    ka: &mut Keepalives,
    shared: &Shared,
) -> Result<()> {
    let Some(file) = file else {
        return Ok(());
    };
    let deadline = Instant::now() + timeout;
    while !file.exists() {
        shared.check()?;
        ka.due(w, ctx)?;
        if Instant::now() >= deadline {
            return Err(format!("{} did not appear in time", file.display()).into());
        }
        thread::sleep(TICK / 2);
    }
    Ok(())
}

/// Writes back-to-back messages in chunks cut at message boundaries, with keepalives in
/// between when due. Returns the number of messages.
fn send_stream(
    w: &mut TcpStream,
    ctx: &Context,
    ka: &mut Keepalives,
    shared: &Shared,
    stream: &[u8],
) -> Result<u64> {
    let mut pos = 0;
    let mut messages = 0u64;
    while pos < stream.len() {
        let start = pos;
        while pos < stream.len() && pos - start < CHUNK {
            let len = stream
                .get(pos + 16..pos + 18)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
                .filter(|&l| l >= HEADER_LEN)
                .ok_or("internal: encoded stream is not whole messages")?;
            pos += len;
            messages += 1;
        }
        let chunk = stream
            .get(start..pos)
            .ok_or("internal: encoded stream is not whole messages")?;
        shared.check()?;
        ka.due(w, ctx)?;
        w.write_all(chunk).map_err(|e| format!("write: {e}"))?;
    }
    Ok(messages)
}

/// After the table: `rate` prefix changes per second for `secs` seconds, sent in ten batches
/// per second. Half of each batch withdraws the next prefixes of the table, the other half
/// re-announces (with their original attributes) prefixes withdrawn in earlier batches, so
/// that about one batch's worth is withdrawn at any time.
fn churn(
    o: &InjectOpts,
    w: &mut TcpStream,
    ctx: &Context,
    ka: &mut Keepalives,
    shared: &Shared,
    table: &Table,
) -> Result<Value> {
    let all: Vec<(usize, IpNet)> = table
        .ipv4
        .iter()
        .chain(&table.ipv6)
        .enumerate()
        .flat_map(|(gi, g)| g.prefixes.iter().map(move |&p| (gi, p)))
        .collect();
    if all.is_empty() {
        return Err("--churn needs a non-empty table".into());
    }
    let groups: Vec<_> = table.ipv4.iter().chain(&table.ipv6).collect();
    let batches_per_sec = 10u64;
    // Prefixes withdraw_at.. are announced; announce_at..withdraw_at are withdrawn.
    let (mut withdraw_at, mut announce_at) = (0usize, 0usize);
    let mut per_second = Vec::new();
    let start_ns = now_ns();
    let mut last_batch_ns = start_ns;
    let start = Instant::now();
    for sec in 0..o.churn_secs {
        let (mut ann, mut wd, mut updates) = (0u64, 0u64, 0u64);
        for b in 0..batches_per_sec {
            let n = o.churn_rate * (b + 1) / batches_per_sec - o.churn_rate * b / batches_per_sec;
            let mut out = BytesMut::new();
            let mut withdraw: Vec<Nlri> = Vec::new();
            let mut announce: Vec<(usize, Vec<Nlri>)> = Vec::new();
            let n = n as usize;
            // Re-announce only what earlier batches withdrew, then withdraw the rest.
            let n_announce = (n / 2).min(withdraw_at - announce_at);
            for _ in 0..n_announce {
                let (gi, p) = all[announce_at % all.len()];
                announce_at += 1;
                match announce.last_mut() {
                    Some((g, v)) if *g == gi => v.push(Nlri::new(p)),
                    _ => announce.push((gi, vec![Nlri::new(p)])),
                }
            }
            for _ in n_announce..n {
                withdraw.push(Nlri::new(all[withdraw_at % all.len()].1));
                withdraw_at += 1;
            }
            for fam in [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST] {
                let v6 = fam == AfiSafi::IPV6_UNICAST;
                let these: Vec<Nlri> = withdraw
                    .iter()
                    .copied()
                    .filter(|n| matches!(n.prefix, IpNet::V6(_)) == v6)
                    .collect();
                if !these.is_empty() {
                    wd += these.len() as u64;
                    updates += pack_withdraw(ctx, fam, these, &mut out)
                        .map_err(|e| format!("encode withdraw: {e}"))?
                        as u64;
                }
            }
            for (gi, nlri) in announce {
                let g = groups.get(gi).ok_or("internal: group index")?;
                let mut attrs = attributes(&g.attrs);
                let v6 = matches!(nlri.first().map(|n| n.prefix), Some(IpNet::V6(_)));
                let (fam, nh) = if v6 {
                    (AfiSafi::IPV6_UNICAST, Some(NextHop::Ipv6(NEXT_HOP_V6)))
                } else {
                    attrs.next_hop = Some(NEXT_HOP_V4);
                    (AfiSafi::IPV4_UNICAST, None)
                };
                ann += nlri.len() as u64;
                updates += pack_announce(ctx, &attrs, fam, nh.as_ref(), nlri, &mut out)
                    .map_err(|e| format!("encode announce: {e}"))?
                    as u64;
            }
            send_stream(w, ctx, ka, shared, &out)?;
            last_batch_ns = now_ns();
            // Pace: batch b+1 of second `sec` is due at (sec + (b+1)/10) seconds.
            let due = Duration::from_millis(sec * 1000 + (b + 1) * 1000 / batches_per_sec);
            while start.elapsed() < due {
                shared.check()?;
                ka.due(w, ctx)?;
                thread::sleep((due - start.elapsed()).min(TICK / 5));
            }
        }
        per_second.push(json!({"sec": sec, "announced": ann, "withdrawn": wd, "updates": updates}));
    }
    Ok(json!({
        "rate": o.churn_rate,
        "secs": o.churn_secs,
        "start_ns": start_ns,
        "end_ns": now_ns(),
        "last_batch_ns": last_batch_ns,
        "per_second": per_second,
    }))
}

/// Keeps the session up until `until`, the peer closes it, or it fails.
fn hold_session(
    w: &mut TcpStream,
    ctx: &Context,
    ka: &mut Keepalives,
    shared: &Shared,
    until: Instant,
) -> Result<()> {
    while Instant::now() < until {
        shared.check()?;
        ka.due(w, ctx)?;
        thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// monitor

fn monitor_main(o: &MonitorOpts) -> Result<ExitCode> {
    let endpoint = Endpoint::for_opts(&o.peer)?;
    let report = monitor(o, endpoint)?;
    let ok = report.get("full_ns").is_some_and(|v| !v.is_null());
    println!("{report}");
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// Counters of the monitor, per second of the watch phase.
#[derive(Default, Clone, Copy)]
struct Counts {
    updates: u64,
    announced: u64,
    withdrawn: u64,
}

impl Counts {
    fn json(&self) -> Value {
        json!({"updates": self.updates, "announced": self.announced, "withdrawn": self.withdrawn})
    }
}

/// Peers, tracks the prefixes held until `expect` are held (then watches for `watch`), or
/// until the timeout. Returns the report; a session failure after the session came up is
/// reported in it (`error`), not as an `Err`.
fn monitor(o: &MonitorOpts, endpoint: Endpoint) -> Result<Value> {
    let mut s = Session::establish(&o.peer, endpoint)?;
    let ctx = s.rx.ctx;
    let mut ka = Keepalives {
        every: s.keepalive_interval(),
        last: Instant::now(),
        sent: 0,
    };
    let deadline = Instant::now() + o.peer.timeout;
    let mut held: HashSet<IpNet> = HashSet::with_capacity(o.expect.min(4_000_000));
    let mut total = Counts::default();
    let mut after_full = Counts::default();
    let mut per_second: Vec<Counts> = Vec::new();
    let mut first_update_ns = None;
    let mut last_update_ns = None;
    let mut full_ns: Option<u64> = None;
    let mut full_at: Option<Instant> = None;
    let mut eor: Vec<(String, u64)> = Vec::new();
    let mut treat_as_withdraw = 0u64;
    let mut last_rx = Instant::now();
    let mut error = None;
    let mut stopped_by_file = false;
    loop {
        let now = Instant::now();
        if let Some(at) = full_at {
            if now >= at + o.watch {
                break;
            }
            if o.stop_file.as_ref().is_some_and(|f| f.exists()) {
                stopped_by_file = true;
                break;
            }
        } else if now >= deadline {
            error = Some(format!(
                "timed out holding {} of {} prefixes",
                held.len(),
                o.expect
            ));
            break;
        }
        if let Err(e) = ka.due(&mut s.writer, &ctx) {
            error = Some(e.to_string());
            break;
        }
        let frame = match s.rx.next_frame(TICK) {
            Ok(f) => f,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        let Some((h, m)) = frame else {
            if !s.hold.is_zero() && last_rx.elapsed() > s.hold {
                error = Some("hold timer expired (nothing from the peer)".into());
                break;
            }
            continue;
        };
        last_rx = Instant::now();
        if h.kind == MessageType::Keepalive {
            continue;
        }
        let msg = match s.rx.decode(h, m) {
            Ok(msg) => msg,
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        };
        let u = match msg {
            Message::Update(u) => u,
            Message::Notification(n) => {
                error = Some(format!("peer sent NOTIFICATION: {n}"));
                break;
            }
            _ => continue,
        };
        let t = now_ns();
        if let Some(f) = u.end_of_rib() {
            eor.push((f.to_string(), t));
            continue;
        }
        first_update_ns.get_or_insert(t);
        last_update_ns = Some(t);
        let mut c = Counts {
            updates: 1,
            ..Counts::default()
        };
        let withdraw_all = u.is_treat_as_withdraw();
        if withdraw_all {
            treat_as_withdraw += 1;
        }
        for (_, n) in u.withdrawn_all() {
            held.remove(&n.prefix);
            c.withdrawn += 1;
        }
        for (_, n) in u.announced() {
            if withdraw_all {
                held.remove(&n.prefix);
                c.withdrawn += 1;
            } else {
                held.insert(n.prefix);
                c.announced += 1;
            }
        }
        total.updates += c.updates;
        total.announced += c.announced;
        total.withdrawn += c.withdrawn;
        if let Some(at) = full_at {
            after_full.updates += c.updates;
            after_full.announced += c.announced;
            after_full.withdrawn += c.withdrawn;
            let sec = at.elapsed().as_secs() as usize;
            if sec < 86_400 {
                if per_second.len() <= sec {
                    per_second.resize(sec + 1, Counts::default());
                }
                let p = &mut per_second[sec];
                p.updates += c.updates;
                p.announced += c.announced;
                p.withdrawn += c.withdrawn;
            }
        } else if held.len() >= o.expect {
            full_ns = Some(t);
            full_at = Some(Instant::now());
            eprintln!(
                "bgpload monitor: holding {} prefixes after {} UPDATEs",
                held.len(),
                total.updates
            );
        }
    }
    let _ = s.writer.shutdown(Shutdown::Write);
    Ok(json!({
        "mode": "monitor",
        "target": o.peer.target.to_string(),
        "asn": o.peer.asn,
        "expect": o.expect,
        "held": held.len(),
        "updates": total.updates,
        "announced": total.announced,
        "withdrawn": total.withdrawn,
        "treat_as_withdraw_updates": treat_as_withdraw,
        "established_ns": s.established_ns,
        "first_update_ns": first_update_ns,
        "full_ns": full_ns,
        "last_update_ns": last_update_ns,
        "end_of_rib_ns": eor.iter().map(|(f, t)| json!({"family": f, "ns": t})).collect::<Vec<_>>(),
        "watch_secs": o.watch.as_secs(),
        "stopped_by_file": stopped_by_file,
        "after_full": after_full.json(),
        "per_second_after_full": per_second.iter().map(Counts::json).collect::<Vec<_>>(),
        "bytes_received": s.rx.bytes,
        "hold_time": s.hold.as_secs(),
        "peer_open": open_json(&s.peer_open),
        "error": error,
    }))
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Args {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        Args::parse(&v).unwrap()
    }

    #[test]
    fn options_parse_and_reject() {
        let o = InjectOpts::from_args(&args(
            "--target 127.0.8.1 --local 127.0.8.10:1179 --asn 65101 --peer-asn 4200000001 \
             --ipv4 1_000_000 --ipv6 0 --attr-sets 200000 --slice 3/10 --graceful-restart",
        ))
        .unwrap();
        assert_eq!(o.peer.target.port(), 179);
        assert_eq!(o.peer.local.port(), 1179);
        assert_eq!(o.spec.ipv4_prefixes, 1_000_000);
        assert_eq!(o.spec.peer_as, 65101);
        assert_eq!(o.slice, (3, 10));
        assert!(o.peer.restarted);
        let bad = [
            "--target 10.0.0.1 --local 127.0.0.2 --asn 1 --peer-asn 2",
            "--target 127.0.0.1 --local 127.0.0.2 --asn 1",
            "--target 127.0.0.1 --local 127.0.0.2 --asn 1 --peer-asn 2 --slice 4/4",
            "--target 127.0.0.1 --local 127.0.0.2 --asn 1 --peer-asn 2 --bogus 1",
        ];
        for b in bad {
            assert!(InjectOpts::from_args(&args(b)).is_err(), "{b}");
        }
        assert!(Args::parse(&["--asn".to_string()]).is_err());
    }

    #[test]
    fn slices_are_disjoint_and_complete() {
        let spec = TableSpec::full().scaled_down(1000);
        let whole = Table::generate(spec);
        let mut seen = HashSet::new();
        for i in 0..3 {
            let mut t = Table::generate(spec);
            slice_table(&mut t, (i, 3));
            for p in t.prefixes() {
                assert!(seen.insert(p));
            }
        }
        assert_eq!(seen.len(), whole.len());
    }

    /// An injector and a monitor peered directly with each other, in process: the monitor
    /// watches for `watch` after holding everything, the injector churns `churn` prefixes per
    /// second for one second if non-zero. Returns both reports.
    fn pair(watch: Duration, churn: u64) -> (Value, Value) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = |asn, peer_asn, target| PeerOpts {
            target,
            local: SocketAddr::from(([127, 0, 0, 1], 0)),
            asn,
            peer_asn,
            hold_time: 9,
            timeout: Duration::from_secs(20),
            active: false,
            restarted: false,
        };
        let spec = TableSpec {
            ipv4_prefixes: 3000,
            ipv6_prefixes: 500,
            attribute_sets: 700,
            seed: 7,
            peer_as: 65101,
        };
        let mon = MonitorOpts {
            peer: peer(65001, 65101, SocketAddr::from(([127, 0, 0, 1], 179))),
            expect: 3500,
            watch,
            stop_file: None,
        };
        let monitor_thread =
            thread::spawn(move || monitor(&mon, Endpoint::Listen(listener, addr.ip())).unwrap());
        let inj = InjectOpts {
            peer: PeerOpts {
                active: true,
                ..peer(65101, 65001, addr)
            },
            spec,
            slice: (0, 1),
            go_file: None,
            churn_go_file: None,
            duration: watch + Duration::from_secs(1),
            churn_rate: churn,
            churn_secs: u64::from(churn > 0),
        };
        let table = Table::generate(spec);
        let enc = encode_table(&table, &Context::default());
        // The monitor leaves once it is done, which ends the injector's hold phase early.
        let mut report = Value::Null;
        let _held = inject(&inj, Endpoint::Connect(addr), &table, &enc.stream, 0, |r| {
            report = r.clone()
        })
        .unwrap();
        (report, monitor_thread.join().unwrap())
    }

    #[test]
    fn inject_into_monitor() {
        let (report, m) = pair(Duration::ZERO, 0);
        assert_eq!(m["held"], 3500, "{m}");
        assert_eq!(m["error"], Value::Null, "{m}");
        assert_eq!(m["updates"], report["updates"], "{m} {report}");
        assert!(m["full_ns"].as_u64().unwrap() >= report["first_update_ns"].as_u64().unwrap());
        assert_eq!(report["peer_open"]["asn"], 65001);
    }

    #[test]
    fn churn_reaches_the_monitor() {
        let (report, m) = pair(Duration::from_secs(3), 2000);
        // Ten batches of 200: the first only withdraws (nothing to re-announce yet), the others
        // re-announce 100 and withdraw 100; the last batch's 200 stay withdrawn.
        let churn = &report["churn"]["per_second"][0];
        assert_eq!(churn["announced"], 900, "{report}");
        assert_eq!(churn["withdrawn"], 1100, "{report}");
        assert_eq!(m["after_full"]["announced"], 900, "{m}");
        assert_eq!(m["after_full"]["withdrawn"], 1100, "{m}");
        assert_eq!(m["held"], 3500 - 200, "{m}");
    }
}
