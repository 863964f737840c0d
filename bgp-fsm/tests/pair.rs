//! The pair harness: two sessions wired together through an in-memory byte pipe and a
//! virtual clock, running whole scenarios (establish, exchange, one side restarts, the other
//! keeps stale routes, End-of-RIB, purge).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use bgp_fsm::{Action, DownReason, Input, Phase, Session, SessionConfig, Time};
use bgp_wire::{AfiSafi, AfiSafiSet, Asn, Message, Update};

const V4: AfiSafi = AfiSafi::IPV4_UNICAST;
const V6: AfiSafi = AfiSafi::IPV6_UNICAST;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// What one side's RIB knows about the other side's routes, per family: present, and stale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct FamilyRoutes {
    present: bool,
    stale: bool,
    llgr: bool,
}

struct Pair {
    now: Time,
    a: Session,
    b: Session,
    connected: bool,
    /// Drop everything written (a black-holed connection).
    black_hole: bool,
    work: VecDeque<(Side, Input)>,
    log: Vec<(Time, Side, Action)>,
    /// Routes each side holds from the other, indexed by the holder.
    rib_a: [FamilyRoutes; 2],
    rib_b: [FamilyRoutes; 2],
    /// Answer route refresh requests and send initial routes automatically.
    auto_routes: bool,
}

fn fam_index(f: AfiSafi) -> usize {
    usize::from(f == V6)
}

/// The UPDATE codec of this branch may still be a stub whose encoding is not a valid
/// message; then UPDATEs travel as decoded messages and everything else as bytes.
fn updates_as_bytes() -> bool {
    Update::end_of_rib_marker(V4).end_of_rib().is_some()
}

fn config(asn: u32, id: u8) -> SessionConfig {
    SessionConfig {
        local_asn: Asn(asn),
        peer_asn: Some(Asn(if asn == 65001 { 65002 } else { 65001 })),
        bgp_id: Ipv4Addr::new(10, 0, 0, id),
        jitter_seed: u64::from(id),
        idle_hold_time: Duration::from_secs(2),
        connect_retry_time: Duration::from_secs(10),
        ..SessionConfig::default()
    }
}

impl Pair {
    fn new(a: SessionConfig, b: SessionConfig) -> Self {
        Pair {
            now: Time::ZERO,
            a: Session::new(a),
            b: Session::new(b),
            connected: false,
            black_hole: false,
            work: VecDeque::new(),
            log: Vec::new(),
            rib_a: Default::default(),
            rib_b: Default::default(),
            auto_routes: true,
        }
    }

    /// A actively connects, B is passive.
    fn standard() -> Self {
        let mut b = config(65002, 2);
        b.passive = true;
        Pair::new(config(65001, 1), b)
    }

    fn session(&mut self, s: Side) -> &mut Session {
        match s {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn rib(&mut self, s: Side) -> &mut [FamilyRoutes; 2] {
        match s {
            Side::A => &mut self.rib_a,
            Side::B => &mut self.rib_b,
        }
    }

    fn input(&mut self, s: Side, i: Input) {
        self.work.push_back((s, i));
        self.pump();
    }

    fn pump(&mut self) {
        while let Some((side, input)) = self.work.pop_front() {
            let now = self.now;
            let actions = self.session(side).handle(now, input);
            self.apply(side, actions);
        }
    }

    fn listening(&self, s: Side) -> bool {
        let st = match s {
            Side::A => self.a.state(),
            Side::B => self.b.state(),
        };
        matches!(st.name(), "Connect" | "Active")
    }

    fn apply(&mut self, side: Side, actions: Vec<Action>) {
        let peer = side.other();
        for a in actions {
            self.log.push((self.now, side, a.clone()));
            match a {
                Action::Connect => {
                    if self.connected {
                        continue;
                    }
                    if self.listening(peer) {
                        self.connected = true;
                        self.work.push_back((side, Input::TcpConnected));
                        self.work.push_back((peer, Input::TcpConnectionConfirmed));
                    } else {
                        self.work.push_back((side, Input::TcpFails));
                    }
                }
                Action::CloseConnection => {
                    if self.connected {
                        self.connected = false;
                        self.work.push_back((peer, Input::TcpFails));
                    }
                }
                Action::Send(m) => {
                    if !self.connected || self.black_hole {
                        continue;
                    }
                    if matches!(m, Message::Update(_)) && !updates_as_bytes() {
                        self.work.push_back((peer, Input::Message(m)));
                        continue;
                    }
                    let ctx = *self.session(side).context();
                    let bytes = m.to_bytes(&ctx).unwrap();
                    // Deliver in two pieces to exercise framing.
                    let cut = bytes.len() / 2;
                    self.work
                        .push_back((peer, Input::Bytes(bytes.slice(..cut))));
                    self.work
                        .push_back((peer, Input::Bytes(bytes.slice(cut..))));
                    self.work.push_back((side, Input::SendProgress));
                }
                Action::Established(n) => {
                    if self.auto_routes {
                        // Our initial routes: one UPDATE per family, then the signal.
                        for f in n.families.iter() {
                            self.work
                                .push_back((side, Input::SendUpdate(Update::end_of_rib_marker(f))));
                        }
                        self.work.push_back((side, Input::InitialRoutesSent(None)));
                    }
                }
                Action::UpdateReceived(_) | Action::EndOfRib(_) => {
                    // The stub UPDATE carries no family: count every UPDATE as routes for
                    // both families (EndOfRib says which one when the codec knows).
                    let fams = match a {
                        Action::EndOfRib(f) => vec![f],
                        _ => vec![V4, V6],
                    };
                    for f in fams {
                        let r = &mut self.rib(side)[fam_index(f)];
                        r.present = true;
                        r.stale = false;
                        r.llgr = false;
                    }
                }
                Action::RouteRefreshRequested(f) => {
                    if self.auto_routes {
                        self.work
                            .push_back((side, Input::SendUpdate(Update::end_of_rib_marker(f))));
                        self.work.push_back((side, Input::RefreshDone(f)));
                    }
                }
                Action::RetainStale(f) => self.rib(side)[fam_index(f)].stale = true,
                Action::MarkLlgrStale(f) => self.rib(side)[fam_index(f)].llgr = true,
                Action::PurgeStale(f) => {
                    let r = &mut self.rib(side)[fam_index(f)];
                    if r.stale {
                        *r = FamilyRoutes::default();
                    }
                }
                Action::SessionDown(_) => {
                    for r in self.rib(side).iter_mut() {
                        if !r.stale {
                            *r = FamilyRoutes::default();
                        }
                    }
                }
            }
        }
    }

    /// Runs both sessions' timers up to `to`.
    fn run_until(&mut self, to: Time) {
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(at) = next.filter(|at| *at <= to) else {
                break;
            };
            self.now = self.now.max(at);
            for side in [Side::A, Side::B] {
                if self.session(side).poll_timeout().is_some_and(|t| t <= at) {
                    let actions = self.session(side).handle_timeout(at);
                    self.apply(side, actions);
                    self.pump();
                }
            }
        }
        self.now = to;
    }

    fn run_for(&mut self, d: Duration) {
        let to = self.now + d;
        self.run_until(to);
    }

    fn both_established(&self) -> bool {
        self.a.state().is_established() && self.b.state().is_established()
    }

    fn actions_of(&self, side: Side, since: Time) -> Vec<Action> {
        self.log
            .iter()
            .filter(|(t, s, _)| *s == side && *t >= since)
            .map(|(_, _, a)| a.clone())
            .collect()
    }

    /// Process restart of A: a fresh session with the R bit and the given F bits; the
    /// connection drops under B.
    fn restart_a(&mut self, forwarding: AfiSafiSet) {
        self.restart(Side::A, forwarding);
    }

    /// Process restart of one side.
    fn restart(&mut self, side: Side, forwarding: AfiSafiSet) {
        let cfg = self.session(side).config().clone();
        *self.session(side) = Session::new(cfg);
        *self.rib(side) = Default::default();
        if self.connected {
            // Only the survivor sees the connection break.
            self.connected = false;
            self.work.push_back((side.other(), Input::TcpFails));
        }
        self.work.push_back((
            side,
            Input::RestartState {
                restarting: true,
                forwarding,
            },
        ));
        self.work.push_back((side, Input::ManualStart));
        self.pump();
    }

    /// The connection breaks under both sides.
    fn drop_connection(&mut self) {
        if self.connected {
            self.connected = false;
            self.work.push_back((Side::A, Input::TcpFails));
            self.work.push_back((Side::B, Input::TcpFails));
        }
    }
}

fn established_pair() -> Pair {
    let mut p = Pair::standard();
    p.input(Side::B, Input::ManualStart);
    p.input(Side::A, Input::ManualStart);
    p.run_for(Duration::from_secs(5));
    assert!(
        p.both_established(),
        "{:?} {:?}",
        p.a.state().name(),
        p.b.state().name()
    );
    p
}

fn all() -> AfiSafiSet {
    [V4, V6].into_iter().collect()
}

#[test]
fn pair_establishes_and_agrees() {
    let p = established_pair();
    let (na, nb) = (p.a.negotiated().unwrap(), p.b.negotiated().unwrap());
    assert_eq!(na.hold_time, 90);
    assert_eq!(nb.hold_time, 90);
    assert_eq!(na.families, nb.families);
    assert_eq!(na.peer_asn, Asn(65002));
    assert_eq!(nb.peer_asn, Asn(65001));
    assert!(na.graceful_restart() && na.gr_notification());
    assert_eq!(*p.a.context(), p.b.context().peer_view());
    // Each side got the other's initial routes.
    assert!(p.rib_a.iter().all(|r| r.present && !r.stale));
    assert!(p.rib_b.iter().all(|r| r.present && !r.stale));
}

#[test]
fn pair_stays_up_for_an_hour_on_keepalives() {
    let mut p = established_pair();
    p.run_for(Duration::from_secs(3600));
    assert!(p.both_established());
    let keepalives = p
        .actions_of(Side::A, Time::ZERO)
        .iter()
        .filter(|a| matches!(a, Action::Send(Message::Keepalive)))
        .count();
    // At least one every 30 s.
    assert!(keepalives >= 3600 / 30, "{keepalives}");
}

#[test]
fn pair_black_hole_hold_timers_expire() {
    let mut p = established_pair();
    p.black_hole = true;
    let t0 = p.now;
    p.run_for(Duration::from_secs(91));
    let downs: Vec<_> = p
        .actions_of(Side::A, t0)
        .into_iter()
        .chain(p.actions_of(Side::B, t0))
        .filter(|a| matches!(a, Action::SessionDown(DownReason::HoldTimerExpired)))
        .collect();
    assert!(!downs.is_empty());
}

#[test]
fn pair_rfc4724_restart_keeps_stale_routes_until_end_of_rib() {
    let mut p = established_pair();
    let t0 = p.now;
    p.restart_a(all());
    // B retained A's routes as stale.
    assert!(p.rib_b.iter().all(|r| r.present && r.stale));
    assert!(
        p.actions_of(Side::B, t0)
            .contains(&Action::SessionDown(DownReason::TcpError))
    );
    // A comes back within B's idle hold and A's connect retry.
    p.run_for(Duration::from_secs(30));
    assert!(p.both_established());
    // A's OPEN had the R bit and F bits set: nothing purged at once.
    assert!(
        p.b.negotiated()
            .unwrap()
            .peer_gr
            .as_ref()
            .unwrap()
            .restart_state()
    );
    let t1 = p.now;
    if updates_as_bytes() {
        // A's End-of-RIB purged what A did not re-send; A re-sent everything, so nothing
        // is stale and the routes are there.
        assert!(
            p.rib_b.iter().all(|r| r.present && !r.stale),
            "{:?}",
            p.rib_b
        );
    } else {
        // Without a real UPDATE codec End-of-RIB is not recognized: the stale timer purges.
        p.run_for(Duration::from_secs(361));
        assert!(
            p.actions_of(Side::B, t1)
                .iter()
                .any(|a| matches!(a, Action::PurgeStale(_)))
                || p.rib_b.iter().all(|r| !r.stale)
        );
    }
    assert!(p.both_established());
    // After its End-of-RIB went out, A no longer claims to be restarting.
    assert!(p.a.build_open().capabilities.iter().all(|c| match c {
        bgp_wire::Capability::GracefulRestart(g) => !g.restart_state(),
        _ => true,
    }));
}

#[test]
fn pair_rfc4724_restart_timer_purges_when_peer_stays_away() {
    let mut p = established_pair();
    let t0 = p.now;
    p.input(Side::A, Input::ManualStop);
    // ManualStop with N negotiated sends Hard Reset: B purges at once.
    assert!(p.rib_b.iter().all(|r| !r.present));
    // Now a peer that vanishes without a word: B keeps the routes for the restart time.
    let mut p = established_pair();
    p.a = Session::new(config(65001, 1));
    p.connected = false;
    p.input(Side::B, Input::TcpFails);
    assert!(p.rib_b.iter().all(|r| r.stale));
    p.run_for(Duration::from_secs(119));
    assert!(p.rib_b.iter().all(|r| r.stale));
    p.run_for(Duration::from_secs(2));
    assert!(p.rib_b.iter().all(|r| !r.present), "{:?}", p.rib_b);
    assert!(p.actions_of(Side::B, t0).contains(&Action::PurgeStale(V4)));
}

#[test]
fn pair_rfc4724_f_bit_clear_purges_at_once() {
    let mut p = established_pair();
    p.auto_routes = false;
    p.restart_a(AfiSafiSet::EMPTY);
    let t0 = p.now;
    p.run_for(Duration::from_secs(30));
    assert!(p.both_established());
    let b = p.actions_of(Side::B, t0);
    let est = b
        .iter()
        .position(|a| matches!(a, Action::Established(_)))
        .unwrap();
    assert_eq!(
        b[est + 1..est + 3],
        [Action::PurgeStale(V4), Action::PurgeStale(V6)]
    );
    assert_eq!(p.b.graceful_restart().phase(V4), Phase::Fresh);
}

#[test]
fn pair_rfc8538_hard_reset_purges_on_both_sides() {
    let mut p = established_pair();
    p.input(Side::A, Input::HardReset);
    assert!(p.rib_b.iter().all(|r| !r.present));
    assert!(p.rib_a.iter().all(|r| !r.present));
    // And the session comes back by itself.
    p.run_for(Duration::from_secs(60));
    assert!(p.both_established());
}

#[test]
fn pair_rfc7313_enhanced_route_refresh_round() {
    let mut p = established_pair();
    let t0 = p.now;
    p.input(Side::B, Input::RequestRouteRefresh(V4));
    let b = p.actions_of(Side::B, t0);
    // B saw A's BoRR (stale marking), the re-sent routes and the EoRR (purge of the rest).
    let retain = b
        .iter()
        .position(|a| *a == Action::RetainStale(V4))
        .unwrap();
    let purge = b.iter().position(|a| *a == Action::PurgeStale(V4)).unwrap();
    assert!(retain < purge);
    assert!(p.rib_b[0].present && !p.rib_b[0].stale);
    assert!(p.both_established());
}

#[test]
fn pair_rfc9494_llgr_after_restart_timer() {
    let mut a = config(65001, 1);
    let mut b = config(65002, 2);
    b.passive = true;
    a.graceful_restart.llgr_stale_time = Some(1000);
    b.graceful_restart.llgr_stale_time = Some(1000);
    let mut p = Pair::new(a, b);
    p.input(Side::B, Input::ManualStart);
    p.input(Side::A, Input::ManualStart);
    p.run_for(Duration::from_secs(5));
    assert!(p.both_established());
    p.a = Session::new(config(65001, 1));
    p.connected = false;
    p.input(Side::B, Input::TcpFails);
    p.run_for(Duration::from_secs(121));
    assert!(
        p.rib_b.iter().all(|r| r.present && r.stale && r.llgr),
        "{:?}",
        p.rib_b
    );
    p.run_for(Duration::from_secs(1000));
    assert!(p.rib_b.iter().all(|r| !r.present));
}

#[derive(Clone, Debug)]
enum Op {
    Restart(bool, u8),
    Flap,
    BlackHole(bool),
    HardReset(bool),
    StopStart(bool),
    Refresh(bool, bool),
    Advance(u16),
}

fn side(a: bool) -> Side {
    if a { Side::A } else { Side::B }
}

fn fams(bits: u8) -> AfiSafiSet {
    [V4, V6]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, f)| f)
        .collect()
}

fn arb_op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        (any::<bool>(), any::<u8>()).prop_map(|(a, b)| Op::Restart(a, b)),
        Just(Op::Flap),
        any::<bool>().prop_map(Op::BlackHole),
        any::<bool>().prop_map(Op::HardReset),
        any::<bool>().prop_map(Op::StopStart),
        (any::<bool>(), any::<bool>()).prop_map(|(a, b)| Op::Refresh(a, b)),
        (0u16..400).prop_map(Op::Advance),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Whatever happens, once the network heals the pair comes back, and no route stays
    /// stale: every stale family is purged or refreshed by End-of-RIB or the stale timer.
    #[test]
    fn pair_recovers_from_any_sequence(ops in proptest::collection::vec(arb_op(), 0..25)) {
        let mut p = established_pair();
        for op in ops {
            match op {
                Op::Restart(a, f) => p.restart(side(a), fams(f)),
                Op::Flap => {
                    p.drop_connection();
                    p.pump();
                }
                Op::BlackHole(on) => p.black_hole = on,
                Op::HardReset(a) => p.input(side(a), Input::HardReset),
                Op::StopStart(a) => {
                    p.input(side(a), Input::ManualStop);
                    p.input(side(a), Input::ManualStart);
                }
                Op::Refresh(a, v6) => {
                    p.input(side(a), Input::RequestRouteRefresh(if v6 { V6 } else { V4 }))
                }
                Op::Advance(s) => p.run_for(Duration::from_secs(u64::from(s))),
            }
        }
        p.black_hole = false;
        // Heal: a black-holed connection dies by its hold timer; then both reconnect.
        p.run_for(Duration::from_secs(1200));
        proptest::prop_assert!(
            p.both_established(),
            "{} {}", p.a.state().name(), p.b.state().name()
        );
        proptest::prop_assert!(p.rib_a.iter().all(|r| r.present && !r.stale), "{:?}", p.rib_a);
        proptest::prop_assert!(p.rib_b.iter().all(|r| r.present && !r.stale), "{:?}", p.rib_b);
        proptest::prop_assert!(p.a.graceful_restart().stale_families().is_empty());
    }
}
