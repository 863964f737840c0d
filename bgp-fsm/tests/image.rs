//! Hitless upgrade: an Established session taken as a [`SessionImage`], carried through its
//! encoding, and resumed, must go on exactly as the original would have: same actions at the
//! same times after the hand-over, whatever the new process's clock says.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use bgp_fsm::{
    Action, DownReason, Input, Phase, ResumeError, Session, SessionConfig, SessionImage, Time,
    Timer,
};
use bgp_wire::nlri::{Nlri, Nlris};
use bgp_wire::{AfiSafi, AfiSafiSet, Asn, Message, Notification, RouteRefresh, Update};
use bytes::{Bytes, BytesMut};

const V4: AfiSafi = AfiSafi::IPV4_UNICAST;
const V6: AfiSafi = AfiSafi::IPV6_UNICAST;

fn config(asn: u32, id: u8) -> SessionConfig {
    SessionConfig {
        local_asn: Asn(asn),
        peer_asn: Some(Asn(if asn == 65001 { 65002 } else { 65001 })),
        bgp_id: Ipv4Addr::new(10, 0, 0, id),
        jitter_seed: u64::from(id) * 7919,
        idle_hold_time: Duration::from_secs(2),
        connect_retry_time: Duration::from_secs(10),
        ..SessionConfig::default()
    }
}

fn a_config() -> SessionConfig {
    config(65001, 1)
}

fn b_config() -> SessionConfig {
    SessionConfig {
        passive: true,
        ..config(65002, 2)
    }
}

/// Two sessions, A and B, wired through their messages on a virtual clock.
struct Pair {
    now: Time,
    a: Session,
    b: Session,
}

impl Pair {
    fn new(a: SessionConfig, b: SessionConfig) -> Self {
        Pair {
            now: Time::ZERO,
            a: Session::new(a),
            b: Session::new(b),
        }
    }

    /// Feeds inputs (true: to A) and delivers every message sent until all is quiet.
    fn pump(&mut self, inputs: impl IntoIterator<Item = (bool, Input)>) {
        let mut work: VecDeque<(bool, Input)> = inputs.into_iter().collect();
        while let Some((to_a, input)) = work.pop_front() {
            let s = if to_a { &mut self.a } else { &mut self.b };
            for action in s.handle(self.now, input) {
                self.route(to_a, action, &mut work);
            }
        }
    }

    fn route(&self, from_a: bool, action: Action, work: &mut VecDeque<(bool, Input)>) {
        if let Action::Send(m) = action {
            work.push_back((!from_a, Input::Message(m)));
        }
    }

    /// Connects A to B (B listening) and runs the OPEN exchange.
    fn connect(&mut self) {
        self.pump([
            (true, Input::TcpConnected),
            (false, Input::TcpConnectionConfirmed),
        ]);
    }

    /// Runs both sessions' timers up to `to`, delivering what they send.
    fn run_until(&mut self, to: Time) {
        loop {
            let next = [
                (true, self.a.poll_timeout()),
                (false, self.b.poll_timeout()),
            ]
            .into_iter()
            .filter_map(|(side, at)| at.filter(|at| *at <= to).map(|at| (at, side)))
            .min();
            let Some((at, side)) = next else { break };
            self.now = at;
            let s = if side { &mut self.a } else { &mut self.b };
            let mut work = VecDeque::new();
            for action in s.handle_timeout(at) {
                self.route(side, action, &mut work);
            }
            self.pump(work);
        }
        self.now = to;
    }
}

/// A and B Established, with initial routes sent both ways.
fn established_pair() -> Pair {
    let mut p = Pair::new(a_config(), b_config());
    p.pump([(true, Input::ManualStart), (false, Input::ManualStart)]);
    p.now = Time::from_secs(1);
    p.connect();
    assert!(p.a.state().is_established() && p.b.state().is_established());
    p.pump([
        (true, Input::InitialRoutesSent(None)),
        (false, Input::InitialRoutesSent(None)),
    ]);
    p
}

/// A pair where B restarted (R and F bits) and came back: A holds B's routes Stale, waiting
/// for B's End-of-RIB, and still has to send its own End-of-RIB.
fn pair_with_stale_routes() -> Pair {
    let mut p = established_pair();
    p.run_until(Time::from_secs(40));
    p.pump([(true, Input::TcpFails), (false, Input::TcpFails)]);
    assert_eq!(p.a.graceful_restart().phase(V4), Phase::Retained);
    p.now = Time::from_secs(45);
    let all: AfiSafiSet = [V4, V6].into_iter().collect();
    p.pump([
        (
            false,
            Input::RestartState {
                restarting: true,
                forwarding: all,
            },
        ),
        (true, Input::ManualStart),
        (false, Input::ManualStart),
    ]);
    p.connect();
    assert!(p.a.state().is_established() && p.b.state().is_established());
    assert_eq!(p.a.graceful_restart().phase(V4), Phase::Stale);
    assert_eq!(p.a.graceful_restart().phase(V6), Phase::Stale);
    p.run_until(Time::from_millis(57_321));
    p
}

/// Image of `s` at `at`, through the encoding, resumed at `resume_at` under `config`.
fn hand_over(s: &Session, at: Time, config: SessionConfig, resume_at: Time) -> Session {
    let image = s.image(at).expect("Established");
    let mut buf = BytesMut::new();
    image.encode(&mut buf).expect("encodes");
    let decoded = SessionImage::decode(&buf).expect("decodes");
    assert_eq!(decoded, image);
    Session::resume(config, decoded, resume_at).expect("resumes")
}

/// One step of what happens to A after the hand-over, at a time relative to it.
#[allow(clippy::large_enum_variant)] // test scripts: clarity over size
enum Step {
    /// An input this many milliseconds after the start.
    At(u64, Input),
    /// Run every timer up to this many milliseconds after the start.
    Until(u64),
}

/// Plays the steps from `start`; every action with its time relative to `start`.
fn play(s: &mut Session, start: Time, steps: &[Step]) -> Vec<(Duration, Action)> {
    let mut log = vec![];
    for step in steps {
        match step {
            Step::At(ms, input) => {
                let now = start + Duration::from_millis(*ms);
                log.extend(
                    s.handle(now, input.clone())
                        .into_iter()
                        .map(|a| (now - start, a)),
                );
            }
            Step::Until(ms) => {
                let to = start + Duration::from_millis(*ms);
                while let Some(at) = s.poll_timeout().filter(|at| *at <= to) {
                    log.extend(s.handle_timeout(at).into_iter().map(|a| (at - start, a)));
                }
            }
        }
    }
    log
}

/// The session's timers and GR deadlines relative to `now`.
fn relative_state(s: &Session, now: Time) -> Vec<(String, Duration)> {
    let mut v: Vec<(String, Duration)> = s
        .timers()
        .iter()
        .map(|(t, at)| (format!("{t:?}"), at - now))
        .collect();
    for f in [V4, V6] {
        let g = s.graceful_restart();
        if let Some(d) = g.deadline(f) {
            v.push((format!("{f:?} {:?} deadline", g.phase(f)), d - now));
        }
        if let Some(since) = g.stale_since(f) {
            v.push((format!("{f:?} stale for"), now - since));
        }
    }
    v
}

fn withdraw(prefix: &str) -> Update {
    Update {
        withdrawn: Nlris::new(V4, false, [Nlri::new(prefix.parse().expect("prefix"))])
            .expect("nlri"),
        ..Update::new()
    }
}

/// The original, a copy resumed at the moment of the image and one resumed under another
/// clock, 7 ms after the image (the hand-over took that long), all play the same steps. The
/// other clock's epoch is as recent as the image allows (see
/// `moments_before_the_new_epoch_are_clamped`).
fn check_same_behaviour(p: &Pair, steps: &[Step]) -> Vec<(Duration, Action)> {
    let t = p.now;
    let mut original = p.a.clone();
    let mut same_time = hand_over(&p.a, t, a_config(), t);
    let oldest = p.a.image(t).expect("Established").oldest();
    let later = Time::ZERO + oldest + Duration::from_millis(7);
    assert_ne!(later, t);
    let mut other_clock = hand_over(&p.a, t, a_config(), later);
    assert_eq!(same_time.negotiated(), original.negotiated());
    assert_eq!(other_clock.negotiated(), original.negotiated());
    assert_eq!(same_time.context(), original.context());
    assert_eq!(same_time.state(), original.state());
    assert_eq!(same_time.timers(), original.timers());
    assert_eq!(same_time.graceful_restart(), original.graceful_restart());
    assert_eq!(
        same_time.connect_retry_counter(),
        original.connect_retry_counter()
    );
    assert_eq!(same_time.last_down_reason(), original.last_down_reason());
    assert_eq!(
        relative_state(&other_clock, later),
        relative_state(&original, t)
    );

    let want = play(&mut original, t, steps);
    assert_eq!(play(&mut same_time, t, steps), want);
    assert_eq!(play(&mut other_clock, later, steps), want);
    assert_eq!(same_time.timers(), original.timers());
    assert_eq!(
        relative_state(&other_clock, later + Duration::from_secs(3000)),
        relative_state(&original, t + Duration::from_secs(3000))
    );
    want
}

#[test]
fn resumed_session_keeps_stale_deadlines_keepalives_and_hold_timer() {
    let p = pair_with_stale_routes();
    let t = p.now;
    let stale = p.a.graceful_restart().deadline(V4).expect("stale deadline");
    let resumed = hand_over(&p.a, t, a_config(), Time::ZERO + Duration::from_secs(1));
    assert_eq!(
        resumed.graceful_restart().deadline(V4),
        Some(Time::from_secs(1) + (stale - t))
    );
    assert_eq!(resumed.graceful_restart().phase(V4), Phase::Stale);

    let steps = [
        Step::At(1_000, Input::Message(Message::Keepalive)),
        Step::At(
            2_000,
            Input::Message(Message::Update(withdraw("10.1.0.0/16"))),
        ),
        Step::At(3_000, Input::SendUpdate(withdraw("10.2.0.0/16"))),
        Step::At(4_000, Input::InitialRoutesSent(Some(V4))),
        Step::Until(60_000),
        Step::At(
            61_000,
            Input::Message(Message::Update(Update::end_of_rib_marker(V6))),
        ),
        Step::At(
            62_000,
            Input::Message(Message::RouteRefresh(RouteRefresh::borr(V6))),
        ),
        // Silence from the peer: the hold timer expires 90 s after the BoRR.
        Step::Until(3_000_000),
    ];
    let log = check_same_behaviour(&p, &steps);
    let at = |d: u64| Duration::from_millis(d);
    assert!(log.contains(&(at(2_000), Action::UpdateReceived(withdraw("10.1.0.0/16")))));
    assert!(log.contains(&(at(61_000), Action::EndOfRib(V6))));
    assert!(log.contains(&(at(61_000), Action::PurgeStale(V6))));
    assert!(log.contains(&(at(62_000), Action::RetainStale(V6))));
    assert!(log.contains(&(
        at(152_000),
        Action::SessionDown(DownReason::HoldTimerExpired)
    )));
    let keepalives: Vec<Duration> = log
        .iter()
        .filter(|(_, a)| *a == Action::Send(Message::Keepalive))
        .map(|(d, _)| *d)
        .collect();
    assert!(keepalives.len() >= 4, "{keepalives:?}");
    // V4 stayed stale (no End-of-RIB): purged by the GR timers at the same moment for all.
    assert!(log.iter().any(|(_, a)| *a == Action::PurgeStale(V4)));
}

#[test]
fn resumed_session_handles_a_notification_like_the_original() {
    let p = pair_with_stale_routes();
    let steps = [
        Step::At(1_000, Input::Message(Message::Keepalive)),
        Step::At(
            5_000,
            Input::Message(Message::Notification(Notification::cease(2))),
        ),
        Step::Until(3_000_000),
    ];
    let log = check_same_behaviour(&p, &steps);
    let down = DownReason::NotificationReceived(Notification::cease(2));
    assert!(log.contains(&(Duration::from_secs(5), Action::SessionDown(down))));
    // RFC 8538: the N bit keeps the routes across a NOTIFICATION.
    assert!(log.contains(&(Duration::from_secs(5), Action::RetainStale(V4))));
}

#[test]
fn resumed_session_of_a_plain_pair_keeps_its_timers() {
    let mut p = established_pair();
    p.run_until(Time::from_millis(100_250));
    let steps = [
        Step::Until(50_000),
        Step::At(50_500, Input::Message(Message::Keepalive)),
        Step::At(51_000, Input::SendProgress),
        Step::At(52_000, Input::RequestRouteRefresh(V6)),
        Step::At(53_000, Input::RefreshDone(V4)),
        Step::Until(200_000),
    ];
    let log = check_same_behaviour(&p, &steps);
    assert!(log.contains(&(
        Duration::from_millis(140_500),
        Action::SessionDown(DownReason::HoldTimerExpired)
    )));
}

#[test]
fn the_negotiation_is_recomputed_exactly() {
    for keepalive in [None, Some(10), Some(100)] {
        let a = SessionConfig {
            keepalive_time: keepalive,
            ..a_config()
        };
        let mut p = Pair::new(a.clone(), b_config());
        p.pump([(true, Input::ManualStart), (false, Input::ManualStart)]);
        p.connect();
        let image = p.a.image(p.now).expect("Established");
        let resumed = Session::resume(a, image.clone(), p.now).expect("resumes");
        assert_eq!(resumed.negotiated(), p.a.negotiated());
        let n = bgp_fsm::Negotiated::new(
            &image.local_open,
            &image.peer_open,
            Some(image.keepalive_time),
        );
        assert_eq!(Some(&n), p.a.negotiated());
    }
}

#[test]
fn image_is_none_unless_established() {
    let mut s = Session::new(a_config());
    assert!(s.image(Time::ZERO).is_none());
    let _ = s.handle(Time::ZERO, Input::ManualStart);
    let _ = s.handle(Time::ZERO, Input::TcpConnected);
    assert_eq!(s.state().name(), "OpenSent");
    assert!(s.image(Time::ZERO).is_none());
    let mut p = established_pair();
    assert!(p.a.image(p.now).is_some());
    p.pump([(true, Input::TcpFails)]);
    assert!(p.a.image(p.now).is_none());
}

#[test]
fn resume_refuses_a_configuration_that_needs_a_reset() {
    let p = established_pair();
    let image = p.a.image(p.now).expect("Established");
    let resume = |c: SessionConfig| Session::resume(c, image.clone(), p.now).err();
    assert_eq!(
        resume(SessionConfig {
            local_asn: Asn(65009),
            ..a_config()
        }),
        Some(ResumeError::LocalAsn {
            image: Asn(65001),
            config: Asn(65009)
        })
    );
    assert_eq!(
        resume(SessionConfig {
            bgp_id: Ipv4Addr::new(10, 9, 9, 9),
            ..a_config()
        }),
        Some(ResumeError::BgpId {
            image: Ipv4Addr::new(10, 0, 0, 1),
            config: Ipv4Addr::new(10, 9, 9, 9)
        })
    );
    assert_eq!(
        resume(SessionConfig {
            peer_asn: Some(Asn(65003)),
            ..a_config()
        }),
        Some(ResumeError::PeerAsn {
            image: Asn(65002),
            config: Asn(65003)
        })
    );
    assert_eq!(
        resume(SessionConfig {
            hold_time: 30,
            ..a_config()
        }),
        Some(ResumeError::HoldTime {
            image: 90,
            config: 30
        })
    );
    assert_eq!(
        resume(SessionConfig {
            keepalive_time: Some(10),
            ..a_config()
        }),
        Some(ResumeError::KeepaliveTime {
            image: 30,
            config: 10
        })
    );
    assert_eq!(
        resume(SessionConfig {
            route_refresh: false,
            ..a_config()
        }),
        Some(ResumeError::Capabilities)
    );
    let mut gr_off = a_config();
    gr_off.graceful_restart.enabled = false;
    assert_eq!(resume(gr_off), Some(ResumeError::Capabilities));
    let mut bad_peer = image.clone();
    bad_peer.peer_open.bgp_id = Ipv4Addr::UNSPECIFIED;
    assert!(matches!(
        Session::resume(a_config(), bad_peer, p.now),
        Err(ResumeError::PeerRejected(n)) if n.code == 2
    ));
    let mut twice = image.clone();
    let g = bgp_fsm::GrFamilyImage {
        family: V4,
        phase: Phase::Stale,
        remaining: Some(Duration::from_secs(1)),
        stale_for: None,
        cap_remaining: None,
        llgr: None,
    };
    twice.graceful_restart = vec![g, g];
    assert_eq!(
        Session::resume(a_config(), twice, p.now).err(),
        Some(ResumeError::GrFamily(V4))
    );
    // What does not touch the OPENs goes on.
    let mut fine = a_config();
    fine.connect_retry_time = Duration::from_secs(99);
    fine.graceful_restart.stale_time = Duration::from_secs(99);
    fine.jitter_seed = 3;
    fine.peer_asn = None;
    assert_eq!(resume(fine), None);
}

#[test]
fn buffered_bytes_of_a_partial_message_are_carried() {
    let mut p = established_pair();
    p.run_until(Time::from_secs(20));
    let ka = Message::Keepalive.to_bytes(p.a.context()).expect("encodes");
    let _ = p.a.handle(p.now, Input::Bytes(ka.slice(..10)));
    let image = p.a.image(p.now).expect("Established");
    assert_eq!(image.rx, ka.slice(..10));
    let mut resumed = hand_over(&p.a, p.now, a_config(), p.now);
    let later = p.now + Duration::from_secs(2);
    let rest = Input::Bytes(ka.slice(10..));
    assert_eq!(resumed.handle(later, rest.clone()), p.a.handle(later, rest));
    assert_eq!(
        resumed.timers().deadline(Timer::Hold),
        Some(later + Duration::from_secs(90))
    );
    assert_eq!(resumed.timers(), p.a.timers());

    let mut whole = image;
    whole.rx = Bytes::copy_from_slice(&ka);
    assert_eq!(
        Session::resume(a_config(), whole, p.now).err(),
        Some(ResumeError::Buffered)
    );
}

#[test]
fn moments_before_the_new_epoch_are_clamped() {
    let p = pair_with_stale_routes();
    let image = p.a.image(p.now).expect("Established");
    assert!(image.oldest() >= image.established_for);
    let early = Time::from_secs(1);
    let resumed = Session::resume(a_config(), image.clone(), early).expect("resumes");
    let bgp_fsm::State::Established(e) = resumed.state() else {
        panic!("not Established");
    };
    assert_eq!(e.since, Time::ZERO);
    let late = Time::ZERO + image.oldest();
    let resumed = Session::resume(a_config(), image.clone(), late).expect("resumes");
    assert_eq!(relative_state(&resumed, late), relative_state(&p.a, p.now));
}
