//! Drive a session with a sequence of steps on a virtual clock and check its invariants
//! after every step. The proptest over random input sequences and the fuzz target (see
//! [`fuzz`]) both use it.
//!
//! Invariants checked after each step:
//! - an UPDATE is only sent while Established;
//! - no timer is in the past;
//! - while Established with a non-zero hold time, the next KEEPALIVE is due within the
//!   keepalive interval (hold time / 3 at most);
//! - the timers that run fit the state (no hold timer in Idle, Connect or Active; a hold
//!   timer in OpenSent; DelayOpen only in Connect or Active; ...);
//! - without long-lived GR, a family's stale routes never outlive the peer's largest allowed
//!   restart time plus the stale time (plus the EoRR wait, when a refresh made them stale)
//!   from the moment they went stale.

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;

use bgp_wire::capability::{
    Capability, GracefulRestart, GracefulRestartFamily, LlgrFamily, LongLivedGracefulRestart,
};
use bgp_wire::route_refresh::RouteRefreshSubtype;
use bgp_wire::{AfiSafi, AfiSafiSet, Asn, Message, Notification, Open, RouteRefresh, Update};

use crate::config::SessionConfig;
use crate::session::{Action, Input, Session, State};
use crate::time::Time;
use crate::timer::Timer;

/// One step of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // test scripts: size does not matter, clarity does
pub enum Step {
    /// Feed an input at the current time.
    Input(Input),
    /// Move the clock forward, running every timer at its deadline on the way.
    Advance(Duration),
    /// Move the clock to the next deadline and run it.
    NextTimer,
}

/// An invariant that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The index of the step after which it failed.
    pub step: usize,
    /// What failed.
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "after step {}: {}", self.step, self.what)
    }
}

impl std::error::Error for Violation {}

/// A session on a virtual clock, with the invariant checks.
#[derive(Clone, Debug)]
pub struct Runner {
    session: Session,
    now: Time,
    steps: usize,
    stale_since: [Option<Time>; 4],
    actions: Vec<Action>,
}

impl Runner {
    /// A runner for a new session at time zero.
    pub fn new(config: SessionConfig) -> Self {
        Runner {
            session: Session::new(config),
            now: Time::ZERO,
            steps: 0,
            stale_since: [None; 4],
            actions: Vec::new(),
        }
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Every action so far.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Runs one step and checks the invariants.
    pub fn step(&mut self, step: Step) -> Result<(), Violation> {
        match step {
            Step::Input(i) => {
                let was = self.session.state().is_established();
                let a = self.session.handle(self.now, i);
                self.observe(was, a)?;
            }
            Step::Advance(d) => {
                let to = self.now + d;
                while let Some(at) = self.session.poll_timeout().filter(|at| *at <= to) {
                    self.fire(at)?;
                }
                self.now = to;
            }
            Step::NextTimer => {
                if let Some(at) = self.session.poll_timeout() {
                    self.fire(at.max(self.now))?;
                }
            }
        }
        self.check()?;
        self.steps += 1;
        Ok(())
    }

    fn fire(&mut self, at: Time) -> Result<(), Violation> {
        self.now = at;
        let was = self.session.state().is_established();
        let a = self.session.handle_timeout(at);
        self.observe(was, a)?;
        self.check()
    }

    fn violation(&self, what: String) -> Violation {
        Violation {
            step: self.steps,
            what,
        }
    }

    fn observe(&mut self, was_established: bool, actions: Vec<Action>) -> Result<(), Violation> {
        let mut established = was_established;
        let mut retained = AfiSafiSet::EMPTY;
        for a in &actions {
            match a {
                Action::Established(_) => established = true,
                Action::CloseConnection => established = false,
                Action::Send(Message::Update(_)) if !established => {
                    return Err(self.violation("UPDATE sent outside Established".into()));
                }
                Action::RetainStale(f) => {
                    retained.insert(*f);
                    if let Some(slot) = f.index().and_then(|i| self.stale_since.get_mut(i)) {
                        slot.get_or_insert(self.now);
                    }
                }
                Action::MarkLlgrStale(_) => {}
                Action::PurgeStale(f) => {
                    if let Some(slot) = f.index().and_then(|i| self.stale_since.get_mut(i)) {
                        *slot = None;
                    }
                }
                Action::SessionDown(_) => {
                    // Everything not retained just before goes with the session.
                    for (f, slot) in AfiSafi::KNOWN.iter().zip(self.stale_since.iter_mut()) {
                        if !retained.contains(*f) {
                            *slot = None;
                        }
                    }
                }
                _ => {}
            }
        }
        self.actions.extend(actions);
        Ok(())
    }

    fn check(&self) -> Result<(), Violation> {
        let s = &self.session;
        let timers = s.timers();
        for (t, at) in timers.iter() {
            if at < self.now {
                return Err(self.violation(format!("{t:?} in the past")));
            }
        }
        let running = |t| timers.is_running(t);
        let ok = match s.state() {
            State::Idle => ![
                Timer::Hold,
                Timer::Keepalive,
                Timer::DelayOpen,
                Timer::SendHold,
                Timer::ConnectRetry,
                Timer::Deferral,
            ]
            .into_iter()
            .any(running),
            State::Connect | State::Active => {
                let forbidden = [
                    Timer::Hold,
                    Timer::Keepalive,
                    Timer::SendHold,
                    Timer::Deferral,
                ];
                let any_forbidden = forbidden.into_iter().any(running);
                let both = running(Timer::DelayOpen) && running(Timer::ConnectRetry);
                !any_forbidden && !both
            }
            State::OpenSent(_) => running(Timer::Hold) && !running(Timer::DelayOpen),
            State::OpenConfirm(n) => {
                running(Timer::Hold) == (n.hold_time != 0) && !running(Timer::DelayOpen)
            }
            State::Established(e) => {
                running(Timer::Hold) == (e.negotiated.hold_time != 0)
                    && !running(Timer::DelayOpen)
                    && !running(Timer::ConnectRetry)
            }
        };
        if !ok {
            return Err(self.violation(format!(
                "timers {:?} do not fit state {}",
                timers.iter().collect::<Vec<_>>(),
                s.state().name()
            )));
        }
        if let State::Established(e) = s.state() {
            let k = Duration::from_secs(u64::from(e.negotiated.keepalive_time));
            if e.negotiated.hold_time != 0 {
                match timers.deadline(Timer::Keepalive) {
                    Some(at) if at - self.now <= k => {}
                    other => {
                        return Err(
                            self.violation(format!("next KEEPALIVE at {other:?}, interval {k:?}"))
                        );
                    }
                }
            }
        }
        let g = &s.config().graceful_restart;
        if g.llgr_stale_time.is_none() {
            let bound = Duration::from_secs(u64::from(g.max_restart_time))
                + g.stale_time
                + g.refresh_stale_time;
            for (f, since) in AfiSafi::KNOWN.iter().zip(self.stale_since) {
                if let Some(since) = since.filter(|s| self.now > *s + bound) {
                    return Err(self.violation(format!(
                        "{f} stale since {since:?}, still stale at {:?}",
                        self.now
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Runs a whole script; the first violation stops it.
pub fn run(
    config: SessionConfig,
    steps: impl IntoIterator<Item = Step>,
) -> Result<Runner, Violation> {
    let mut r = Runner::new(config);
    for s in steps {
        r.step(s)?;
    }
    Ok(r)
}

/// The configuration the fuzz target and the proptest use: AS 65000 talking to AS 65001,
/// short timers so that sequences reach them.
pub fn test_config() -> SessionConfig {
    let mut c = SessionConfig {
        local_asn: Asn(65000),
        peer_asn: Some(Asn(65001)),
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        hold_time: 9,
        connect_retry_time: Duration::from_secs(10),
        idle_hold_time: Duration::from_secs(1),
        max_idle_hold_time: Duration::from_secs(30),
        eor_deferral_time: Duration::from_secs(20),
        ..SessionConfig::default()
    };
    c.graceful_restart.stale_time = Duration::from_secs(30);
    c.graceful_restart.max_restart_time = 60;
    c.graceful_restart.refresh_stale_time = Duration::from_secs(25);
    c
}

const FAMILIES: [AfiSafi; 2] = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];

/// The peer's OPEN in one of a few shapes chosen by the bits of `v`: F bits for IPv4 and
/// IPv6 (bits 0, 1), restart time 40 or 0 (bit 2), LLGR (bit 3), no N bit (bit 4), no GR
/// (bit 5), an unacceptable hold time (bits 6 and 7).
pub fn peer_open(v: u8) -> Open {
    let fams = FAMILIES
        .iter()
        .enumerate()
        .map(|(i, f)| GracefulRestartFamily::new(*f, v & (1 << i) != 0))
        .collect();
    let mut caps = vec![
        Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
        Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
    ];
    let flags = if v & 0x10 != 0 {
        0
    } else {
        GracefulRestart::NOTIFICATION
    };
    if v & 0x20 == 0 {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            flags,
            restart_time: u16::from(v >> 2 & 1) * 40,
            families: fams,
        }));
    }
    if v & 0x08 != 0 {
        caps.push(Capability::LongLivedGracefulRestart(
            LongLivedGracefulRestart {
                families: FAMILIES
                    .iter()
                    .map(|f| LlgrFamily {
                        afi_safi: *f,
                        flags: if v & 1 != 0 {
                            LlgrFamily::FORWARDING_STATE
                        } else {
                            0
                        },
                        stale_time: 50,
                    })
                    .collect(),
            },
        ));
    }
    let hold = if v & 0xc0 == 0xc0 { 2 } else { 9 };
    Open::new(Asn(65001), hold, Ipv4Addr::new(10, 0, 0, 2), caps)
}

/// Decodes arbitrary bytes into steps, two or more bytes per step (kind, parameter, and for
/// raw bytes the bytes themselves). Several kinds map to the handshake so that random input
/// reaches Established often.
pub fn steps_from_bytes(data: &[u8]) -> Vec<Step> {
    let mut steps = Vec::with_capacity(data.len() / 2 + 1);
    let mut i = 0;
    while let (Some(&kind), Some(&p)) = (data.get(i), data.get(i + 1)) {
        i += 2;
        let fam = FAMILIES[usize::from(p & 1)];
        let input = |x| Step::Input(x);
        let m = |m: Message| Step::Input(Input::Message(m));
        match kind % 28 {
            0 | 1 => steps.push(input(Input::ManualStart)),
            2 => steps.push(input(Input::ManualStop)),
            3 => steps.push(input(Input::AutomaticStart {
                passive: p & 1 == 1,
            })),
            4 => steps.push(input(Input::TcpConnected)),
            5 => steps.push(input(Input::TcpConnectionConfirmed)),
            6 => steps.push(input(Input::TcpFails)),
            7 => steps.push(m(Message::Open(peer_open(p)))),
            8 => steps.push(m(Message::Keepalive)),
            9 => steps.push(m(Message::Notification(match p % 4 {
                0 => Notification::cease(2),
                1 => Notification::hard_reset(&Notification::cease(4)),
                2 => Notification::new(2, 1),
                _ => Notification::new(3, 1),
            }))),
            10 => steps.push(m(Message::Update(Update::end_of_rib_marker(fam)))),
            11 => steps.push(m(Message::RouteRefresh(RouteRefresh {
                afi_safi: fam,
                subtype: RouteRefreshSubtype::from_value(p >> 1 & 0x3),
            }))),
            12 => {
                let n = usize::from(p);
                let end = (i + n).min(data.len());
                let b = data
                    .get(i..end)
                    .map(Bytes::copy_from_slice)
                    .unwrap_or_default();
                i = end;
                steps.push(input(Input::Bytes(b)));
            }
            13 => steps.push(input(Input::SendUpdate(Update::end_of_rib_marker(fam)))),
            14 => steps.push(input(Input::InitialRoutesSent((p & 2 == 0).then_some(fam)))),
            15 => steps.push(input(Input::HardReset)),
            16 => steps.push(input(Input::OpenCollisionDump)),
            17 => steps.push(input(Input::SendProgress)),
            18 => steps.push(Step::Advance(Duration::from_millis(u64::from(p) * 250))),
            19 | 20 => steps.push(Step::NextTimer),
            21 => steps.push(input(Input::RequestRouteRefresh(fam))),
            22 => steps.push(input(Input::RefreshDone(fam))),
            23 => steps.push(input(Input::RestartState {
                restarting: p & 4 != 0,
                forwarding: FAMILIES
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| p & (1 << i) != 0)
                    .map(|(_, f)| *f)
                    .collect(),
            })),
            24 => steps.push(input(Input::AutomaticStop(Notification::cease(1)))),
            _ => {
                // The handshake: connect, OPEN, KEEPALIVE.
                steps.push(input(Input::TcpConnected));
                steps.push(m(Message::Open(peer_open(p & 0x3f))));
                steps.push(m(Message::Keepalive));
            }
        }
    }
    steps
}

/// The fuzz target's body: arbitrary bytes as a step sequence on [`test_config`].
pub fn fuzz(data: &[u8]) -> Result<(), Violation> {
    run(test_config(), steps_from_bytes(data)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_handshake_reaches_established() {
        let r = run(test_config(), steps_from_bytes(&[0, 0, 27, 3])).unwrap();
        assert!(r.session().state().is_established());
    }

    #[test]
    fn the_checker_catches_a_stuck_stale_route() {
        let mut r = Runner::new(test_config());
        r.stale_since[0] = Some(Time::ZERO);
        r.now = Time::from_secs(1000);
        assert!(r.check().is_err());
    }

    /// Runs `steps`, handing the session over through its image (encoded, decoded, resumed
    /// at the same moment) before every step at which it is Established, and the same steps
    /// without hand-over; both must act and end alike.
    fn hand_over_changes_nothing(config: SessionConfig, steps: Vec<Step>) -> Result<usize, String> {
        let mut plain = Runner::new(config.clone());
        let mut moved = Runner::new(config.clone());
        let mut handed = 0;
        for (i, step) in steps.into_iter().enumerate() {
            if let Some(image) = moved.session.image(moved.now) {
                let mut buf = bytes::BytesMut::new();
                image
                    .encode(&mut buf)
                    .map_err(|e| format!("step {i}: {e}"))?;
                let image =
                    crate::SessionImage::decode(&buf).map_err(|e| format!("step {i}: {e}"))?;
                moved.session = Session::resume(config.clone(), image, moved.now)
                    .map_err(|e| format!("step {i}: {e}"))?;
                handed += 1;
            }
            let (a, b) = (plain.step(step.clone()), moved.step(step));
            if a != b || plain.actions != moved.actions || plain.now != moved.now {
                return Err(format!("step {i} after {handed} hand-overs: {a:?} / {b:?}"));
            }
            let (p, m) = (&plain.session, &moved.session);
            let same = p.state() == m.state()
                && p.timers() == m.timers()
                && p.graceful_restart() == m.graceful_restart()
                && p.context() == m.context()
                && p.connect_retry_counter() == m.connect_retry_counter()
                && p.last_down_reason() == m.last_down_reason()
                && p.build_open() == m.build_open()
                && p.image(plain.now) == m.image(moved.now);
            if !same {
                return Err(format!(
                    "step {i}: sessions differ after {handed} hand-overs"
                ));
            }
            if a.is_err() {
                break;
            }
        }
        Ok(handed)
    }

    #[test]
    fn a_hand_over_after_the_handshake_changes_nothing() {
        let mut data = vec![0, 0, 27, 3, 8, 0, 18, 40, 10, 1, 19, 0, 9, 0, 18, 200];
        data.extend([0, 0, 27, 3, 12, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 18, 90]);
        let steps = steps_from_bytes(&data);
        let handed = hand_over_changes_nothing(test_config(), steps);
        // Twice in each of the two sessions, the last one with 5 octets of a header buffered.
        assert_eq!(handed, Ok(4));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_sequences_with_hand_overs_act_as_without(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            llgr in any::<bool>(),
        ) {
            let mut c = test_config();
            if llgr {
                c.graceful_restart.llgr_stale_time = Some(100);
            }
            let r = hand_over_changes_nothing(c, steps_from_bytes(&data));
            prop_assert!(r.is_ok(), "{:?}", r);
        }

        #[test]
        fn random_input_sequences_keep_the_invariants(
            data in proptest::collection::vec(any::<u8>(), 0..400)
        ) {
            if let Err(v) = fuzz(&data) {
                prop_assert!(false, "{}", v);
            }
        }

        #[test]
        fn random_sequences_with_llgr_and_delay_open(
            data in proptest::collection::vec(any::<u8>(), 0..300)
        ) {
            let mut c = test_config();
            c.delay_open = Some(Duration::from_secs(2));
            c.graceful_restart.llgr_stale_time = Some(100);
            c.send_hold_time = None;
            if let Err(v) = run(c, steps_from_bytes(&data)) {
                prop_assert!(false, "{}", v);
            }
        }
    }
}
