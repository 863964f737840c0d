//! The body of the `core_bytes` fuzz target: a whole speaker core without a runtime. One
//! [`bgp_fsm::Session`] (inside the FSM script runner, which checks the session's invariants
//! after every step) and a [`bgp_speaker::core::Core`], wired as the peer task in
//! `src/peer.rs` wires them: bytes from the peer are framed and decoded with the session's
//! context, the session's route actions go to the core, the core's commands come back to the
//! session, the outbox is drained into the write buffer, and time is virtual. The session is
//! brought up with a valid OPEN and KEEPALIVE from the peer; then the input is read as
//! operations, mostly chunks of arbitrary bytes from the peer, interleaved with time steps,
//! drains, reconnections and local announcements. A second peer, established directly in the
//! core, receives what is exported.
//!
//! Checked besides the session's invariants: what the core sends either peer frames and
//! decodes with that peer's context, and announces only current best routes that peer may
//! have (ours; learned ones only with export of learned routes, and never back to where they
//! came from); the core knows the session is up exactly while the FSM is Established; a peer
//! that is down and not restarting has no routes in the Loc-RIB.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use bgp_fsm::script::{Runner, Step};
use bgp_fsm::{Action, Input, Negotiated, Session, SessionConfig, Time};
use bgp_speaker::PeerEvent;
use bgp_speaker::PeerId;
use bgp_speaker::core::{Announcement, Core, CoreCommand, CoreOutput, CorePeer, CoreSettings};
use bgp_speaker::snapshot::GrState;
use bgp_wire::capability::{
    AddPath, AddPathFamily, AddPathMode, Capability, GracefulRestart, GracefulRestartFamily,
    LlgrFamily, LongLivedGracefulRestart,
};
use bgp_wire::{AfiSafi, Asn, Context, Message, Open, context, split_message};
use bytes::{Bytes, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::Reader;

const LOCAL_ASN: Asn = Asn(65001);
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The fuzzed peer's AS, by two bits of the first byte: one private AS and those of the
/// captured daemons (so that their UPDATEs pass the first-AS check), or ours (iBGP).
const PEER_ASNS: [Asn; 4] = [
    Asn(65002),
    Asn(4_200_000_001),
    Asn(4_200_000_002),
    Asn(4_200_000_003),
];
const FAMILIES: [AfiSafi; 2] = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];
/// Work items handled per operation at most (the core and session answering each other).
const MAX_WORK: usize = 10_000;

/// What a run reached, for the tests of the seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreRun {
    /// Times the session was established.
    pub established: usize,
    /// UPDATEs the session passed to the core.
    pub updates: usize,
    /// Routes in the Loc-RIB at the end.
    pub routes: usize,
}

struct Harness {
    runner: Runner,
    core: Core,
    peer: PeerId,
    other: PeerId,
    /// The peer's options for its OPEN.
    options: u8,
    connected: bool,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// How many of the runner's actions were carried out.
    done: usize,
    run: CoreRun,
}

/// The fuzz target's body. Panics when an invariant does not hold.
pub fn core_bytes(data: &[u8]) -> CoreRun {
    let mut r = Reader::new(data);
    let (options, timers) = (r.u8(), r.u8());
    let mut h = Harness::new(options, timers);
    h.connect();
    h.check();
    while !r.is_empty() {
        h.op(&mut r);
        h.check();
    }
    h.run.routes = h.core.routes().len();
    h.run
}

/// The peer's AS for its options byte.
fn peer_asn(options: u8) -> Asn {
    if options & 0x10 != 0 {
        LOCAL_ASN
    } else {
        PEER_ASNS[usize::from(options >> 2) & 3]
    }
}

fn session_config(options: u8, timers: u8) -> SessionConfig {
    let mut c = SessionConfig {
        local_asn: LOCAL_ASN,
        peer_asn: Some(peer_asn(options)),
        bgp_id: ROUTER_ID,
        hold_time: [9, 3, 90, 0][usize::from(timers & 3)],
        connect_retry_time: Duration::from_secs(10),
        idle_hold_time: Duration::from_secs(1),
        max_idle_hold_time: Duration::from_secs(30),
        // As the speaker runs its sessions: End-of-RIB comes from the outbox.
        wait_for_initial_routes: false,
        eor_deferral_time: Duration::from_secs(20),
        ..SessionConfig::default()
    };
    if options & 1 != 0 {
        c.add_path = FAMILIES
            .iter()
            .map(|f| AddPathFamily {
                afi_safi: *f,
                mode: AddPathMode::Both,
            })
            .collect();
    }
    c.graceful_restart.stale_time = Duration::from_secs(30);
    c.graceful_restart.max_restart_time = 60;
    c.graceful_restart.refresh_stale_time = Duration::from_secs(25);
    if timers & 4 != 0 {
        c.graceful_restart.llgr_stale_time = Some(100);
    }
    if timers & 8 != 0 {
        c.delay_open = Some(Duration::from_secs(2));
    }
    c.extended_message = timers & 0x10 == 0;
    c
}

/// The peer's OPEN: ADD-PATH (bit 0), graceful restart with F bits and restart time (bits 5,
/// 6), long-lived GR (bit 7); the AS from bits 2 to 4.
fn peer_open(options: u8, hold: u16) -> Open {
    let mut caps = vec![
        Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
        Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
        Capability::ExtendedMessage,
    ];
    if options & 1 != 0 {
        caps.push(Capability::AddPath(AddPath {
            families: FAMILIES
                .iter()
                .map(|f| AddPathFamily {
                    afi_safi: *f,
                    mode: AddPathMode::Both,
                })
                .collect(),
        }));
    }
    if options & 0x20 == 0 {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            flags: GracefulRestart::NOTIFICATION,
            restart_time: if options & 0x40 != 0 { 0 } else { 40 },
            families: FAMILIES
                .iter()
                .map(|f| GracefulRestartFamily::new(*f, options & 0x40 == 0))
                .collect(),
        }));
    }
    if options & 0x80 != 0 {
        caps.push(Capability::LongLivedGracefulRestart(
            LongLivedGracefulRestart {
                families: FAMILIES
                    .iter()
                    .map(|f| LlgrFamily {
                        afi_safi: *f,
                        flags: 0,
                        stale_time: 50,
                    })
                    .collect(),
            },
        ));
    }
    Open::new(peer_asn(options), hold, Ipv4Addr::new(10, 0, 0, 2), caps)
}

/// A prefix from a small pool.
fn pool_prefix(a: u8) -> IpNet {
    let i = a & 0x0f;
    if a & 0x80 == 0 {
        IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, 1, i, 0), 24).unwrap_or_default())
    } else {
        let v6 = Ipv6Addr::new(0x2001, 0xdb8, u16::from(i), 0, 0, 0, 0, 0);
        IpNet::V6(Ipv6Net::new(v6, 48).unwrap_or_default())
    }
}

/// Frames and decodes everything in `buf` with `ctx`; every message must decode cleanly.
/// Returns how many there were.
fn decode_all(buf: &mut BytesMut, ctx: &Context, who: &str) -> usize {
    let mut n = 0;
    loop {
        match split_message(buf, ctx.max_message_len) {
            Ok(Some((h, m))) => {
                n += 1;
                match Message::decode_body(h, m.slice(context::HEADER_LEN..), ctx) {
                    Ok(Message::Update(u)) => {
                        assert!(u.errors.is_empty(), "{who}: UPDATE with errors: {u:?}");
                    }
                    Ok(_) => {}
                    Err(e) => panic!("{who}: a message we sent does not decode: {e}"),
                }
            }
            Ok(None) => break,
            Err(e) => panic!("{who}: what we sent does not frame: {e}"),
        }
    }
    assert!(buf.is_empty(), "{who}: a partial message was written");
    n
}

impl Harness {
    fn new(options: u8, timers: u8) -> Self {
        let settings = CoreSettings {
            local_asn: LOCAL_ASN,
            router_id: ROUTER_ID,
            export_learned: timers & 0x20 == 0,
            loc_rib_events: timers & 0x40 == 0,
            limits: Default::default(),
        };
        let mut core = Core::new(settings);
        let peer = PeerId::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let other = PeerId::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)));
        let restarting = timers & 0x80 != 0;
        for (id, asn) in [(&peer, peer_asn(options)), (&other, Asn(65003))] {
            let _ = core.add_peer(
                id.clone(),
                CorePeer {
                    asn,
                    local_v4: Some(Ipv4Addr::new(10, 0, 0, 1)),
                    local_v6: Some(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1)),
                    restarting,
                    prefix_limits: Vec::new(),
                },
            );
        }
        // The other peer is up at once, negotiated from two sessions' OPENs.
        let ours = Session::new(session_config(0, 0)).build_open();
        let theirs = Open::new(
            Asn(65003),
            90,
            Ipv4Addr::new(10, 0, 0, 3),
            vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            ],
        );
        let neg = Negotiated::new(&ours, &theirs, None);
        let _ = core.handle(PeerEvent {
            peer: other.clone(),
            at: Time::ZERO,
            action: Action::Established(Box::new(neg)),
        });
        // A few routes of our own, so that the peer is sent something.
        for p in [0x01, 0x02, 0x81] {
            let a = Announcement::new(pool_prefix(p));
            let _ = core.announce(a);
        }
        let mut runner = Runner::new(session_config(options, timers));
        if let Err(v) = runner.step(Step::Input(Input::ManualStart)) {
            panic!("session invariant: {v}");
        }
        let mut h = Harness {
            runner,
            core,
            peer,
            other,
            options,
            connected: false,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            done: 0,
            run: CoreRun::default(),
        };
        h.settle(VecDeque::new());
        h
    }

    /// Runs one step of the session and carries out what it did.
    fn step(&mut self, step: Step) {
        if let Err(v) = self.runner.step(step) {
            panic!("session invariant: {v}");
        }
        self.settle(VecDeque::new());
    }

    /// Carries out the session's new actions and the inputs they cause, until none is left.
    fn settle(&mut self, mut inputs: VecDeque<Input>) {
        for _ in 0..MAX_WORK {
            let actions: Vec<Action> = self.runner.actions()[self.done..].to_vec();
            self.done = self.runner.actions().len();
            for a in actions {
                self.perform(a, &mut inputs);
            }
            let Some(input) = inputs.pop_front() else {
                return;
            };
            if let Err(v) = self.runner.step(Step::Input(input)) {
                panic!("session invariant: {v}");
            }
        }
        panic!("the session and the core keep answering each other");
    }

    fn perform(&mut self, action: Action, inputs: &mut VecDeque<Input>) {
        let now = self.runner.now();
        match action {
            Action::Connect => {}
            Action::Send(m) => {
                // The outbox sends End-of-RIB after the routes (end_of_rib_from_outbox).
                if matches!(&m, Message::Update(u) if u.end_of_rib().is_some()) {
                    return;
                }
                if self.connected {
                    let ctx = *self.runner.session().context();
                    // A message that cannot be encoded is logged and not sent, as there.
                    let _ = m.encode(&ctx, &mut self.wbuf);
                }
            }
            Action::CloseConnection => {
                self.connected = false;
                self.rbuf.clear();
                self.wbuf.clear();
            }
            other => {
                match &other {
                    Action::Established(_) => self.run.established += 1,
                    Action::UpdateReceived(_) => self.run.updates += 1,
                    _ => {}
                }
                let out = self.core.handle(PeerEvent {
                    peer: self.peer.clone(),
                    at: now,
                    action: other,
                });
                self.apply(out, inputs);
            }
        }
    }

    /// A core call's output: commands for our peer go to the session.
    fn apply(&mut self, out: CoreOutput, inputs: &mut VecDeque<Input>) {
        for (p, c) in out.commands {
            if p == self.peer {
                inputs.push_back(match c {
                    CoreCommand::RefreshDone(f) => Input::RefreshDone(f),
                    CoreCommand::InitialRoutesSent => Input::InitialRoutesSent(None),
                    CoreCommand::PrefixLimitExceeded(l) => Input::PrefixLimitExceeded {
                        family: l.family,
                        limit: l.max,
                        restart_after: l.restart_after,
                    },
                });
            }
        }
    }

    /// The pending commands and events of drains.
    fn take_pending(&mut self) {
        let _ = self.core.take_events();
        let commands = self.core.take_commands();
        let out = CoreOutput {
            commands,
            ..CoreOutput::default()
        };
        let mut inputs = VecDeque::new();
        self.apply(out, &mut inputs);
        self.settle(inputs);
    }

    /// A new connection and the peer's valid OPEN and KEEPALIVE, as bytes.
    fn connect(&mut self) {
        if self.connected {
            return;
        }
        self.step(Step::Input(Input::ManualStart));
        self.connected = true;
        self.rbuf.clear();
        self.wbuf.clear();
        self.step(Step::Input(Input::TcpConnected));
        let hold = self.runner.session().config().hold_time;
        let mut bytes = BytesMut::new();
        let ctx = Context::default();
        let open = Message::Open(peer_open(self.options, hold));
        if open.encode(&ctx, &mut bytes).is_ok() {
            let _ = Message::Keepalive.encode(&ctx, &mut bytes);
        }
        self.receive(&bytes);
    }

    /// Bytes from the peer: framed and decoded as the peer task does.
    fn receive(&mut self, bytes: &[u8]) {
        if !self.connected {
            return;
        }
        self.rbuf.extend_from_slice(bytes);
        // Each message takes at least 19 bytes from the buffer; an error takes all of it.
        while self.connected {
            let ctx = *self.runner.session().context();
            match split_message(&mut self.rbuf, ctx.max_message_len) {
                Ok(None) => break,
                Ok(Some((h, msg))) => {
                    let body = msg.slice(context::HEADER_LEN..);
                    match Message::decode_body(h, body, &ctx) {
                        Ok(m) => self.step(Step::Input(Input::Message(m))),
                        Err(_) => self.step(Step::Input(Input::Bytes(msg))),
                    }
                }
                Err(_) => {
                    let rest: Bytes = self.rbuf.split().freeze();
                    self.step(Step::Input(Input::Bytes(rest)));
                }
            }
        }
    }

    /// The peer reads what we wrote: all of it must decode.
    fn flush(&mut self) {
        if self.wbuf.is_empty() {
            return;
        }
        let ctx = *self.runner.session().context();
        let mut w = self.wbuf.split();
        decode_all(&mut w, &ctx, "to the peer");
        if self.connected {
            self.step(Step::Input(Input::SendProgress));
        }
    }

    /// The peer task's outbox drain.
    fn drain(&mut self, max: usize) {
        if !self.connected || !self.runner.session().state().is_established() {
            return;
        }
        let before = self.wbuf.len();
        let _ = self.core.drain_limited(&self.peer, &mut self.wbuf, max);
        if let (Some(n), Some(drained)) =
            (self.core.negotiated(&self.peer), self.wbuf.get(before..))
        {
            let mut drained = BytesMut::from(drained);
            let ctx = n.context();
            let peer = self.peer.clone();
            self.check_exported(&mut drained, &ctx, &peer);
        }
        self.take_pending();
    }

    /// What a drain announced to `to` is best routes it may have: ours, or (with export of
    /// learned routes) those of the other peer, never its own.
    fn check_exported(&self, buf: &mut BytesMut, ctx: &Context, to: &PeerId) {
        let routes = self.core.routes();
        let export_learned = self.core.settings().export_learned;
        while let Ok(Some((h, m))) = split_message(buf, ctx.max_message_len) {
            let Ok(Message::Update(u)) =
                Message::decode_body(h, m.slice(context::HEADER_LEN..), ctx)
            else {
                panic!("drained a message that is not an UPDATE, or does not decode")
            };
            for (f, n) in u.announced() {
                let best = routes.iter().find(|(rf, p, _)| *rf == f && *p == n.prefix);
                let Some((_, _, route)) = best else {
                    panic!("{} announced to {to}, not a best route", n.prefix)
                };
                match &route.from {
                    None => {}
                    Some(from) => {
                        assert!(
                            from != to,
                            "{} sent back to the peer it came from",
                            n.prefix
                        );
                        assert!(
                            export_learned,
                            "{} learned, exported without export_learned",
                            n.prefix
                        );
                    }
                }
            }
        }
    }

    fn op(&mut self, r: &mut Reader<'_>) {
        let kind = r.u8();
        match kind % 16 {
            0..=3 => {
                let len = usize::from(u16::from_be_bytes([r.u8(), r.u8()]));
                let bytes = r.take(len);
                self.receive(bytes);
            }
            4 => {
                let ms = u64::from(r.u8()) * 250;
                self.step(Step::Advance(Duration::from_millis(ms)));
            }
            5 => self.step(Step::NextTimer),
            6 => {
                let n = r.u8();
                self.drain(if n == 0 { usize::MAX } else { usize::from(n) });
            }
            7 => self.flush(),
            8 => {
                let a = r.u8();
                let mut ann = Announcement::new(pool_prefix(a));
                ann.med = (a & 0x40 != 0).then_some(u32::from(a & 0x30));
                ann.as_path_prepend = (a >> 4) & 3;
                let out = self.core.announce(ann);
                self.settle_output(out);
            }
            9 => {
                let out = self.core.withdraw(pool_prefix(r.u8()));
                self.settle_output(out);
            }
            10 => {
                // The connection breaks.
                if self.connected {
                    self.connected = false;
                    self.rbuf.clear();
                    self.wbuf.clear();
                    self.step(Step::Input(Input::TcpFails));
                }
            }
            11 => {
                // The connection breaks if up; a new one with a new OPEN.
                let o = r.u8();
                if self.connected {
                    self.connected = false;
                    self.step(Step::Input(Input::TcpFails));
                }
                self.options = o;
                self.connect();
            }
            12 => {
                let a = r.u8();
                let family = FAMILIES[usize::from(a & 1)];
                let input = match a >> 1 & 3 {
                    0 => Input::RequestRouteRefresh(family),
                    1 => Input::HardReset,
                    2 => Input::ManualStop,
                    _ => Input::SendProgress,
                };
                self.step(Step::Input(input));
            }
            13 => {
                let out = self.core.initial_routes_done();
                self.settle_output(out);
            }
            14 => {
                if let Some(out) = self.core.soft_reset_out(&self.peer) {
                    self.settle_output(out);
                }
                let out = self.core.graceful_shutdown();
                self.settle_output(out);
            }
            _ => {
                // What the other peer is sent must decode with its context.
                let mut out = BytesMut::new();
                let _ = self.core.drain(&self.other, &mut out);
                if let Some(n) = self.core.negotiated(&self.other) {
                    let ctx = n.context();
                    let mut copy = out.clone();
                    decode_all(&mut out, &ctx, "to the other peer");
                    let other = self.other.clone();
                    self.check_exported(&mut copy, &ctx, &other);
                }
                self.take_pending();
            }
        }
    }

    fn settle_output(&mut self, out: CoreOutput) {
        let mut inputs = VecDeque::new();
        self.apply(out, &mut inputs);
        self.settle(inputs);
    }

    fn check(&self) {
        let established = self.runner.session().state().is_established();
        assert_eq!(
            self.core.negotiated(&self.peer).is_some(),
            established,
            "the core and the session disagree about the session being up"
        );
        let (_, gr) = self.core.peer_counts(&self.peer);
        if !established && gr == GrState::None {
            let held = self
                .core
                .routes()
                .iter()
                .filter(|(_, _, r)| r.from.as_ref() == Some(&self.peer))
                .count();
            assert_eq!(held, 0, "routes of a peer that is down and not restarting");
        }
    }
}
