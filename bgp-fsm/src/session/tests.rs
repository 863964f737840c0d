//! One test per RFC 4271 §8.2.2 transition, named `<state>_<event>_<outcome>`, and the
//! session-level graceful-restart paths, named after the RFC clause they check. All with
//! virtual time.

use super::*;
use bgp_wire::capability::{Role, code as cap_code};

const V4: AfiSafi = AfiSafi::IPV4_UNICAST;
const V6: AfiSafi = AfiSafi::IPV6_UNICAST;
const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn t(s: u64) -> Time {
    Time::from_secs(s)
}

fn cfg() -> SessionConfig {
    SessionConfig {
        local_asn: Asn(65000),
        peer_asn: Some(Asn(65001)),
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        jitter_seed: 7,
        ..SessionConfig::default()
    }
}

fn gr_cap(flags: u8, fams: &[(AfiSafi, bool)]) -> Capability {
    Capability::GracefulRestart(GracefulRestart {
        flags,
        restart_time: 120,
        families: fams
            .iter()
            .map(|(f, fwd)| GracefulRestartFamily::new(*f, *fwd))
            .collect(),
    })
}

/// The peer's OPEN: IPv4/IPv6 unicast, route refresh, enhanced route refresh, GR with the
/// N bit and both families forwarding.
fn peer_open() -> Open {
    peer_open_with(gr_cap(
        GracefulRestart::NOTIFICATION,
        &[(V4, true), (V6, true)],
    ))
}

fn peer_open_with(gr: Capability) -> Open {
    Open::new(
        Asn(65001),
        90,
        PEER_ID,
        vec![
            Capability::Multiprotocol(V4),
            Capability::Multiprotocol(V6),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            gr,
        ],
    )
}

fn msg(m: impl Into<Message>) -> Input {
    Input::Message(m.into())
}

fn sent(actions: &[Action]) -> Vec<&Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn notification(actions: &[Action]) -> Option<(u8, u8)> {
    sent(actions).into_iter().find_map(|m| match m {
        Message::Notification(n) => Some((n.code, n.subcode)),
        _ => None,
    })
}

fn name(s: &Session) -> &'static str {
    s.state().name()
}

fn session_with(c: SessionConfig) -> Session {
    Session::new(c)
}

fn connect() -> Session {
    let mut s = session_with(cfg());
    assert_eq!(s.handle(t(0), Input::ManualStart), vec![Action::Connect]);
    s
}

fn active() -> Session {
    let mut s = session_with(SessionConfig {
        passive: true,
        ..cfg()
    });
    assert!(s.handle(t(0), Input::ManualStart).is_empty());
    s
}

fn open_sent() -> Session {
    let mut s = connect();
    let _ = s.handle(t(1), Input::TcpConnected);
    assert_eq!(name(&s), "OpenSent");
    s
}

fn open_confirm() -> Session {
    let mut s = open_sent();
    let _ = s.handle(t(2), msg(peer_open()));
    assert_eq!(name(&s), "OpenConfirm");
    s
}

fn established() -> Session {
    let mut s = open_confirm();
    let _ = s.handle(t(3), msg(Message::Keepalive));
    assert_eq!(name(&s), "Established");
    s
}

/// Runs the timers up to `to` while the peer stays alive (a KEEPALIVE from it and write
/// progress on our side at each deadline), collecting the actions.
fn advance(s: &mut Session, to: Time) -> Vec<Action> {
    let mut all = vec![];
    while let Some(at) = s.poll_timeout().filter(|at| *at <= to) {
        all.extend(s.handle_timeout(at));
        if s.state().is_established() {
            all.extend(s.handle(at, msg(Message::Keepalive)));
            all.extend(s.handle(at, Input::SendProgress));
        }
    }
    all
}

fn delay_cfg(passive: bool) -> SessionConfig {
    SessionConfig {
        delay_open: Some(Duration::from_secs(5)),
        passive,
        ..cfg()
    }
}

// ---- Idle ----

#[test]
fn idle_manual_start_goes_connect() {
    let mut s = session_with(cfg());
    assert_eq!(s.handle(t(0), Input::ManualStart), vec![Action::Connect]);
    assert_eq!(name(&s), "Connect");
    assert_eq!(s.connect_retry_counter(), 0);
    let d = s.timers().deadline(Timer::ConnectRetry).unwrap();
    assert!(d >= t(90) && d <= t(120), "jittered 120 s: {d:?}");
}

#[test]
fn idle_manual_start_passive_goes_active() {
    let s = active();
    assert_eq!(name(&s), "Active");
    assert!(s.timers().is_running(Timer::ConnectRetry));
}

#[test]
fn idle_automatic_start_goes_connect() {
    let mut s = session_with(cfg());
    let a = s.handle(t(0), Input::AutomaticStart { passive: false });
    assert_eq!(a, vec![Action::Connect]);
    assert_eq!(name(&s), "Connect");
}

#[test]
fn idle_automatic_start_passive_goes_active() {
    let mut s = session_with(cfg());
    assert!(
        s.handle(t(0), Input::AutomaticStart { passive: true })
            .is_empty()
    );
    assert_eq!(name(&s), "Active");
}

#[test]
fn idle_manual_stop_is_ignored() {
    let mut s = session_with(cfg());
    assert!(s.handle(t(0), Input::ManualStop).is_empty());
    assert_eq!(name(&s), "Idle");
}

#[test]
fn idle_tcp_connection_is_refused() {
    let mut s = session_with(cfg());
    let a = s.handle(t(0), Input::TcpConnectionConfirmed);
    assert_eq!(a, vec![Action::CloseConnection]);
    assert_eq!(name(&s), "Idle");
}

#[test]
fn idle_other_events_are_ignored() {
    let mut s = session_with(cfg());
    for i in [
        Input::TcpFails,
        msg(Message::Keepalive),
        msg(peer_open()),
        Input::Bytes(Bytes::from_static(&[0xff; 19])),
        Input::OpenCollisionDump,
        Input::SendUpdate(Update::end_of_rib_marker(V4)),
    ] {
        assert!(s.handle(t(0), i).is_empty());
        assert_eq!(name(&s), "Idle");
    }
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn idle_idle_hold_expires_restarts_automatically() {
    let mut s = connect();
    let _ = s.handle(t(1), Input::TcpFails);
    assert_eq!(name(&s), "Idle");
    let at = s.poll_timeout().unwrap();
    assert_eq!(s.timers().deadline(Timer::IdleHold), Some(at));
    assert!(at <= t(1 + 5), "{at:?}");
    assert_eq!(s.handle_timeout(at), vec![Action::Connect]);
    assert_eq!(name(&s), "Connect");
}

#[test]
fn idle_automatic_start_is_ignored_while_idle_hold_runs() {
    let mut s = connect();
    let _ = s.handle(t(1), Input::TcpFails);
    assert!(
        s.handle(t(2), Input::AutomaticStart { passive: false })
            .is_empty()
    );
    assert_eq!(name(&s), "Idle");
}

#[test]
fn idle_hold_time_backs_off_and_recovers() {
    let c = SessionConfig {
        idle_hold_time: Duration::from_secs(10),
        max_idle_hold_time: Duration::from_secs(100),
        ..cfg()
    };
    let mut s = session_with(c);
    let _ = s.handle(t(0), Input::ManualStart);
    let mut now = t(0);
    let mut holds = vec![];
    for _ in 0..6 {
        // Active-side failures count (Connect's TcpFails does not increment the counter).
        let _ = s.handle(now, Input::TcpConnected);
        let _ = s.handle(now, msg(Message::Keepalive));
        assert_eq!(name(&s), "Idle");
        let at = s.timers().deadline(Timer::IdleHold).unwrap();
        holds.push((at - now).as_secs_f64());
        now = at;
        let _ = s.handle_timeout(now);
    }
    // 10, 20, 40, 80, 100, 100 seconds, each jittered by 0.75..1.
    for (h, base) in holds.iter().zip([10.0, 20.0, 40.0, 80.0, 100.0, 100.0]) {
        assert!(*h >= base * 0.75 && *h <= base, "{holds:?}");
    }
    // A session that stays up for the maximum idle hold time resets the back-off.
    let _ = s.handle(now, Input::TcpConnected);
    let _ = s.handle(now, msg(peer_open()));
    let _ = s.handle(now, msg(Message::Keepalive));
    assert_eq!(name(&s), "Established");
    let later = now + Duration::from_secs(100);
    let _ = s.handle(later, Input::TcpFails);
    let at = s.timers().deadline(Timer::IdleHold).unwrap();
    assert!(at - later <= Duration::from_secs(10));
}

// ---- Connect ----

#[test]
fn connect_manual_start_is_ignored() {
    let mut s = connect();
    assert!(s.handle(t(1), Input::ManualStart).is_empty());
    assert_eq!(name(&s), "Connect");
}

#[test]
fn connect_manual_stop_goes_idle() {
    let mut s = connect();
    let a = s.handle(t(1), Input::ManualStop);
    assert_eq!(a, vec![Action::CloseConnection]);
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 0);
    assert_eq!(s.poll_timeout(), None, "no timer, no automatic restart");
    assert_eq!(s.last_down_reason(), Some(&DownReason::AdminStop));
}

#[test]
fn connect_connect_retry_expires_reconnects() {
    let mut s = connect();
    let at = s.poll_timeout().unwrap();
    let a = s.handle_timeout(at);
    assert_eq!(a, vec![Action::CloseConnection, Action::Connect]);
    assert_eq!(name(&s), "Connect");
    assert!(s.poll_timeout().unwrap() > at);
}

#[test]
fn connect_tcp_connected_sends_open() {
    let mut s = connect();
    let a = s.handle(t(1), Input::TcpConnected);
    let [Action::Send(Message::Open(o))] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!(o.hold_time, 90);
    assert_eq!(o.asn(), Asn(65000));
    assert_eq!(name(&s), "OpenSent");
    assert!(!s.timers().is_running(Timer::ConnectRetry));
    assert_eq!(s.timers().deadline(Timer::Hold), Some(t(1 + 240)));
}

#[test]
fn connect_tcp_connected_with_delay_open_waits() {
    let mut s = session_with(delay_cfg(false));
    let _ = s.handle(t(0), Input::ManualStart);
    assert!(s.handle(t(1), Input::TcpConnected).is_empty());
    assert_eq!(name(&s), "Connect");
    assert_eq!(s.timers().deadline(Timer::DelayOpen), Some(t(6)));
    assert!(!s.timers().is_running(Timer::ConnectRetry));
}

#[test]
fn connect_delay_open_expires_sends_open() {
    let mut s = session_with(delay_cfg(false));
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnected);
    let a = s.handle_timeout(t(6));
    assert!(matches!(&a[..], [Action::Send(Message::Open(_))]), "{a:?}");
    assert_eq!(name(&s), "OpenSent");
}

#[test]
fn connect_tcp_fails_goes_idle() {
    let mut s = connect();
    let a = s.handle(t(1), Input::TcpFails);
    assert_eq!(a, vec![Action::CloseConnection]);
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn connect_tcp_fails_during_delay_open_goes_active() {
    let mut s = session_with(delay_cfg(false));
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnected);
    let a = s.handle(t(2), Input::TcpFails);
    assert_eq!(a, vec![Action::CloseConnection]);
    assert_eq!(name(&s), "Active");
    assert!(!s.timers().is_running(Timer::DelayOpen));
    assert!(s.timers().is_running(Timer::ConnectRetry));
}

#[test]
fn connect_open_during_delay_open_goes_open_confirm() {
    let mut s = session_with(delay_cfg(false));
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnected);
    let a = s.handle(t(2), msg(peer_open()));
    let m = sent(&a);
    assert!(
        matches!(m[..], [Message::Open(_), Message::Keepalive]),
        "{a:?}"
    );
    assert_eq!(name(&s), "OpenConfirm");
    assert!(!s.timers().is_running(Timer::DelayOpen));
    assert_eq!(s.timers().deadline(Timer::Hold), Some(t(92)));
}

#[test]
fn connect_bad_open_during_delay_open_sends_notification_goes_idle() {
    let mut s = session_with(delay_cfg(false));
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnected);
    let mut bad = peer_open();
    bad.hold_time = 2;
    let a = s.handle(t(2), msg(bad));
    assert_eq!(notification(&a), Some((2, 6)));
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn connect_version_notification_during_delay_open_goes_idle_uncounted() {
    let mut s = session_with(delay_cfg(false));
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnected);
    let n = Notification::with_data(2, 1, Bytes::from_static(&[0, 4]));
    let _ = s.handle(t(2), msg(n));
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn connect_other_event_goes_idle() {
    let mut s = connect();
    let a = s.handle(t(1), msg(Message::Keepalive));
    assert_eq!(a, vec![Action::CloseConnection]);
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 1);
}

// ---- Active ----

#[test]
fn active_manual_start_is_ignored() {
    let mut s = active();
    assert!(s.handle(t(1), Input::ManualStart).is_empty());
    assert_eq!(name(&s), "Active");
}

#[test]
fn active_manual_stop_goes_idle() {
    let mut s = active();
    assert_eq!(
        s.handle(t(1), Input::ManualStop),
        vec![Action::CloseConnection]
    );
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn active_connect_retry_expires_goes_connect() {
    // An active session that lost its connection in OpenSent waits in Active.
    let mut s = open_sent();
    let _ = s.handle(t(2), Input::TcpFails);
    assert_eq!(name(&s), "Active");
    let at = s.poll_timeout().unwrap();
    assert_eq!(s.handle_timeout(at), vec![Action::Connect]);
    assert_eq!(name(&s), "Connect");
}

#[test]
fn active_connect_retry_expires_passive_stays_active() {
    let mut s = active();
    let at = s.poll_timeout().unwrap();
    assert!(s.handle_timeout(at).is_empty());
    assert_eq!(name(&s), "Active");
    assert!(s.poll_timeout().unwrap() > at);
}

#[test]
fn active_tcp_connection_confirmed_sends_open() {
    let mut s = active();
    let a = s.handle(t(1), Input::TcpConnectionConfirmed);
    assert!(matches!(&a[..], [Action::Send(Message::Open(_))]));
    assert_eq!(name(&s), "OpenSent");
}

#[test]
fn active_tcp_connection_confirmed_with_delay_open_waits() {
    let mut s = session_with(delay_cfg(true));
    let _ = s.handle(t(0), Input::ManualStart);
    assert!(s.handle(t(1), Input::TcpConnectionConfirmed).is_empty());
    assert_eq!(name(&s), "Active");
    assert_eq!(s.timers().deadline(Timer::DelayOpen), Some(t(6)));
}

#[test]
fn active_delay_open_expires_sends_open() {
    let mut s = session_with(delay_cfg(true));
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnectionConfirmed);
    let a = s.handle_timeout(t(6));
    assert!(matches!(&a[..], [Action::Send(Message::Open(_))]));
    assert_eq!(name(&s), "OpenSent");
}

#[test]
fn active_open_during_delay_open_goes_open_confirm() {
    let mut s = session_with(delay_cfg(true));
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnectionConfirmed);
    let a = s.handle(t(2), msg(peer_open()));
    assert!(matches!(
        sent(&a)[..],
        [Message::Open(_), Message::Keepalive]
    ));
    assert_eq!(name(&s), "OpenConfirm");
}

#[test]
fn active_tcp_fails_goes_idle() {
    let mut s = session_with(delay_cfg(true));
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnectionConfirmed);
    let _ = s.handle(t(2), Input::TcpFails);
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn active_other_event_goes_idle() {
    let mut s = active();
    let _ = s.handle(t(1), msg(Message::Keepalive));
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 1);
}

// ---- OpenSent ----

#[test]
fn open_sent_manual_start_is_ignored() {
    let mut s = open_sent();
    assert!(s.handle(t(2), Input::ManualStart).is_empty());
    assert_eq!(name(&s), "OpenSent");
}

#[test]
fn open_sent_manual_stop_sends_cease_goes_idle() {
    let mut s = open_sent();
    let a = s.handle(t(2), Input::ManualStop);
    assert_eq!(notification(&a), Some((6, 2)));
    assert!(a.contains(&Action::CloseConnection));
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn open_sent_automatic_stop_sends_notification_goes_idle() {
    let mut s = open_sent();
    let a = s.handle(t(2), Input::AutomaticStop(Notification::cease(1)));
    assert_eq!(notification(&a), Some((6, 1)));
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn open_sent_hold_timer_expires_sends_notification_goes_idle() {
    let mut s = open_sent();
    assert_eq!(s.poll_timeout(), Some(t(241)));
    let a = s.handle_timeout(t(241));
    assert_eq!(notification(&a), Some((4, 0)));
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.last_down_reason(), Some(&DownReason::HoldTimerExpired));
}

#[test]
fn open_sent_tcp_fails_goes_active() {
    let mut s = open_sent();
    assert_eq!(
        s.handle(t(2), Input::TcpFails),
        vec![Action::CloseConnection]
    );
    assert_eq!(name(&s), "Active");
    assert!(s.timers().is_running(Timer::ConnectRetry));
    assert!(!s.timers().is_running(Timer::Hold));
}

#[test]
fn open_sent_open_goes_open_confirm() {
    let mut s = open_sent();
    let a = s.handle(t(2), msg(peer_open()));
    assert_eq!(a, vec![Action::Send(Message::Keepalive)]);
    assert_eq!(name(&s), "OpenConfirm");
    assert_eq!(s.timers().deadline(Timer::Hold), Some(t(92)));
    let k = s.timers().deadline(Timer::Keepalive).unwrap();
    assert!(k > t(2) && k <= t(32), "{k:?}");
    assert_eq!(s.negotiated().map(|n| n.peer_bgp_id), Some(PEER_ID));
}

#[test]
fn open_sent_open_bytes_goes_open_confirm() {
    let mut s = open_sent();
    let b = Message::Open(peer_open())
        .to_bytes(&Context::default())
        .unwrap();
    // Split across two reads.
    let _ = s.handle(t(2), Input::Bytes(b.slice(..10)));
    assert_eq!(name(&s), "OpenSent");
    let a = s.handle(t(2), Input::Bytes(b.slice(10..)));
    assert_eq!(a, vec![Action::Send(Message::Keepalive)]);
    assert_eq!(name(&s), "OpenConfirm");
}

#[test]
fn open_sent_open_with_bad_peer_as_sends_notification_goes_idle() {
    let mut s = open_sent();
    let mut o = peer_open();
    o.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    o.my_as = 65009;
    let a = s.handle(t(2), msg(o));
    assert_eq!(notification(&a), Some((2, 2)));
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn open_sent_open_with_zero_bgp_id_sends_notification_goes_idle() {
    let mut s = open_sent();
    let mut o = peer_open();
    o.bgp_id = Ipv4Addr::UNSPECIFIED;
    assert_eq!(notification(&s.handle(t(2), msg(o))), Some((2, 3)));
}

#[test]
fn open_sent_open_with_role_mismatch_sends_notification_goes_idle() {
    let mut s = session_with(SessionConfig {
        role: Some(Role::Customer),
        ..cfg()
    });
    let _ = s.handle(t(0), Input::ManualStart);
    let a = s.handle(t(1), Input::TcpConnected);
    let [Action::Send(Message::Open(ours))] = &a[..] else {
        panic!()
    };
    assert!(
        ours.capabilities
            .contains(&Capability::Role(Role::Customer))
    );
    let mut o = peer_open();
    o.capabilities.push(Capability::Role(Role::Customer));
    assert_eq!(notification(&s.handle(t(2), msg(o))), Some((2, 11)));
}

#[test]
fn open_sent_open_without_required_capability_sends_notification_goes_idle() {
    let mut s = session_with(SessionConfig {
        extended_message: true,
        required_capabilities: vec![cap_code::EXTENDED_MESSAGE],
        ..cfg()
    });
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnected);
    let a = s.handle(t(2), msg(peer_open()));
    let [Action::Send(Message::Notification(n)), ..] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!((n.code, n.subcode, &n.data[..]), (2, 7, &[6u8, 0][..]));
}

#[test]
fn open_sent_unsupported_version_bytes_sends_notification_goes_idle() {
    let mut s = open_sent();
    let mut b = Message::Open(peer_open())
        .to_bytes(&Context::default())
        .unwrap()
        .to_vec();
    b[19] = 3;
    let a = s.handle(t(2), Input::Bytes(Bytes::from(b)));
    let [Action::Send(Message::Notification(n)), ..] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!((n.code, n.subcode, &n.data[..]), (2, 1, &[0u8, 4][..]));
    assert_eq!(name(&s), "Idle");
}

#[test]
fn open_sent_header_error_sends_notification_goes_idle() {
    let mut s = open_sent();
    let mut b = vec![0xff; 16];
    b[0] = 0;
    b.extend_from_slice(&[0, 19, 4]);
    let a = s.handle(t(2), Input::Bytes(Bytes::from(b)));
    assert_eq!(notification(&a), Some((1, 1)));
    assert_eq!(name(&s), "Idle");
}

#[test]
fn open_sent_collision_dump_sends_cease_goes_idle() {
    let mut s = open_sent();
    let a = s.handle(t(2), Input::OpenCollisionDump);
    assert_eq!(notification(&a), Some((6, 7)));
    assert_eq!(name(&s), "Idle");
}

#[test]
fn open_sent_version_notification_goes_idle_uncounted() {
    let mut s = open_sent();
    let _ = s.handle(t(2), msg(Notification::new(2, 1)));
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn open_sent_notification_goes_idle_without_answer() {
    let mut s = open_sent();
    let a = s.handle(t(2), msg(Notification::cease(2)));
    assert_eq!(notification(&a), None);
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn open_sent_unexpected_message_sends_fsm_error_goes_idle() {
    let mut s = open_sent();
    let a = s.handle(t(2), msg(Message::Keepalive));
    assert_eq!(notification(&a), Some((5, 1)));
    assert_eq!(name(&s), "Idle");
}

// ---- OpenConfirm ----

#[test]
fn open_confirm_manual_stop_sends_cease_goes_idle() {
    let mut s = open_confirm();
    let a = s.handle(t(3), Input::ManualStop);
    assert_eq!(notification(&a), Some((6, 2)));
    assert_eq!(name(&s), "Idle");
}

#[test]
fn open_confirm_automatic_stop_sends_notification_goes_idle() {
    let mut s = open_confirm();
    let a = s.handle(t(3), Input::AutomaticStop(Notification::cease(8)));
    assert_eq!(notification(&a), Some((6, 8)));
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn open_confirm_hold_timer_expires_sends_notification_goes_idle() {
    let mut s = open_confirm();
    // Keepalives go out every ~30 s; the peer stays silent for 90 s.
    let mut last = vec![];
    while name(&s) == "OpenConfirm" {
        let at = s.poll_timeout().unwrap();
        last = s.handle_timeout(at);
    }
    assert_eq!(notification(&last), Some((4, 0)));
    assert_eq!(s.last_down_reason(), Some(&DownReason::HoldTimerExpired));
}

#[test]
fn open_confirm_keepalive_timer_expires_sends_keepalive() {
    let mut s = open_confirm();
    let at = s.timers().deadline(Timer::Keepalive).unwrap();
    assert_eq!(s.handle_timeout(at), vec![Action::Send(Message::Keepalive)]);
    assert_eq!(name(&s), "OpenConfirm");
    assert!(s.timers().deadline(Timer::Keepalive).unwrap() > at);
}

#[test]
fn open_confirm_tcp_fails_goes_idle() {
    let mut s = open_confirm();
    assert_eq!(
        s.handle(t(3), Input::TcpFails),
        vec![Action::CloseConnection]
    );
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn open_confirm_notification_goes_idle() {
    let mut s = open_confirm();
    let _ = s.handle(t(3), msg(Notification::cease(2)));
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn open_confirm_version_notification_goes_idle_uncounted() {
    let mut s = open_confirm();
    let _ = s.handle(t(3), msg(Notification::new(2, 1)));
    assert_eq!(s.connect_retry_counter(), 0);
}

#[test]
fn open_confirm_keepalive_goes_established() {
    let mut s = open_confirm();
    let a = s.handle(t(3), msg(Message::Keepalive));
    let [Action::Established(n)] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!(n.peer_asn, Asn(65001));
    assert!(n.families.contains(V4) && n.families.contains(V6));
    assert!(n.enhanced_route_refresh && n.gr_notification());
    assert_eq!(name(&s), "Established");
    assert_eq!(s.timers().deadline(Timer::Hold), Some(t(93)));
    assert_eq!(s.timers().deadline(Timer::SendHold), Some(t(3 + 480)));
    assert_eq!(s.timers().deadline(Timer::Deferral), Some(t(3 + 360)));
}

#[test]
fn open_confirm_collision_dump_sends_cease_goes_idle() {
    let mut s = open_confirm();
    assert_eq!(
        notification(&s.handle(t(3), Input::OpenCollisionDump)),
        Some((6, 7))
    );
    assert_eq!(name(&s), "Idle");
}

#[test]
fn open_confirm_unexpected_message_sends_fsm_error_goes_idle() {
    let mut s = open_confirm();
    let a = s.handle(t(3), msg(RouteRefresh::request(V4)));
    assert_eq!(notification(&a), Some((5, 2)));
    assert_eq!(name(&s), "Idle");
}

#[test]
fn open_confirm_header_error_sends_notification_goes_idle() {
    let mut s = open_confirm();
    let mut b = vec![0xff; 16];
    b.extend_from_slice(&[0, 19, 9]);
    let a = s.handle(t(3), Input::Bytes(Bytes::from(b)));
    let [Action::Send(Message::Notification(n)), ..] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!((n.code, n.subcode, &n.data[..]), (1, 3, &[9u8][..]));
}

// ---- Established ----

#[test]
fn established_manual_start_is_ignored() {
    let mut s = established();
    assert!(s.handle(t(4), Input::ManualStart).is_empty());
}

#[test]
fn established_manual_stop_sends_hard_reset_goes_idle() {
    // The N bit was negotiated: Administrative Shutdown goes inside a Hard Reset
    // (RFC 8538 §5) and nothing is retained.
    let mut s = established();
    let a = s.handle(t(4), Input::ManualStop);
    let [Action::Send(Message::Notification(n)), ..] = &a[..] else {
        panic!("{a:?}")
    };
    assert!(n.is_hard_reset());
    assert_eq!(n.hard_reset_inner(), Some(Notification::cease(2)));
    assert_eq!(
        a[1..],
        [
            Action::CloseConnection,
            Action::SessionDown(DownReason::AdminStop)
        ]
    );
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn established_manual_stop_without_n_bit_sends_cease() {
    let mut s = open_sent();
    let _ = s.handle(t(2), msg(peer_open_with(gr_cap(0, &[(V4, true)]))));
    let _ = s.handle(t(3), msg(Message::Keepalive));
    let a = s.handle(t(4), Input::ManualStop);
    assert_eq!(notification(&a), Some((6, 2)));
}

#[test]
fn established_automatic_stop_sends_notification_goes_idle() {
    let mut s = established();
    let a = s.handle(t(4), Input::AutomaticStop(Notification::cease(1)));
    assert_eq!(notification(&a), Some((6, 1)));
    assert!(
        a.contains(&Action::SessionDown(DownReason::NotificationSent(
            Notification::cease(1)
        )))
    );
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn established_hold_timer_expires_sends_notification_goes_idle() {
    let mut s = established();
    let mut all = vec![];
    while name(&s) == "Established" {
        let at = s.poll_timeout().unwrap();
        assert!(at <= t(93));
        all.extend(s.handle_timeout(at));
    }
    assert_eq!(notification(&all), Some((4, 0)));
    assert!(all.contains(&Action::SessionDown(DownReason::HoldTimerExpired)));
}

#[test]
fn established_keepalive_timer_expires_sends_keepalive() {
    let mut s = established();
    let at = s.timers().deadline(Timer::Keepalive).unwrap();
    assert_eq!(s.handle_timeout(at), vec![Action::Send(Message::Keepalive)]);
    let next = s.timers().deadline(Timer::Keepalive).unwrap();
    assert!(next > at && next <= at + Duration::from_secs(30));
}

#[test]
fn established_send_update_restarts_keepalive_timer() {
    let mut s = established();
    let a = s.handle(t(20), Input::SendUpdate(Update::end_of_rib_marker(V4)));
    assert!(matches!(&a[..], [Action::Send(Message::Update(_))]));
    let k = s.timers().deadline(Timer::Keepalive).unwrap();
    assert!(k > t(20) && k <= t(50), "{k:?}");
}

#[test]
fn established_keepalive_restarts_hold_timer() {
    let mut s = established();
    assert!(s.handle(t(50), msg(Message::Keepalive)).is_empty());
    assert_eq!(s.timers().deadline(Timer::Hold), Some(t(140)));
}

#[test]
fn established_update_is_delivered_and_restarts_hold_timer() {
    let mut s = established();
    let u = Update::end_of_rib_marker(V4);
    let a = s.handle(t(50), msg(u.clone()));
    match u.end_of_rib() {
        Some(f) => assert_eq!(a, vec![Action::EndOfRib(f)]),
        None => assert_eq!(a, vec![Action::UpdateReceived(u)]),
    }
    assert_eq!(s.timers().deadline(Timer::Hold), Some(t(140)));
}

#[test]
fn established_update_header_error_sends_notification_goes_idle() {
    let mut s = established();
    let mut b = vec![0xff; 16];
    b.extend_from_slice(&[0, 20, 2, 0]);
    let a = s.handle(t(5), Input::Bytes(Bytes::from(b)));
    let [Action::Send(Message::Notification(n)), ..] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!((n.code, n.subcode, &n.data[..]), (1, 2, &[0u8, 20][..]));
    assert_eq!(name(&s), "Idle");
}

#[test]
fn established_notification_goes_idle() {
    let mut s = established();
    let n = Notification::cease(2);
    let a = s.handle(t(5), msg(n.clone()));
    assert!(a.contains(&Action::SessionDown(DownReason::NotificationReceived(n))));
    assert_eq!(name(&s), "Idle");
    assert_eq!(s.connect_retry_counter(), 1);
}

#[test]
fn established_tcp_fails_goes_idle() {
    let mut s = established();
    let a = s.handle(t(5), Input::TcpFails);
    assert!(a.contains(&Action::SessionDown(DownReason::TcpError)));
    assert_eq!(name(&s), "Idle");
}

#[test]
fn established_open_sends_fsm_error_goes_idle() {
    let mut s = established();
    let a = s.handle(t(5), msg(peer_open()));
    assert_eq!(notification(&a), Some((5, 3)));
    assert_eq!(name(&s), "Idle");
}

#[test]
fn established_collision_dump_sends_cease_goes_idle() {
    let mut s = established();
    assert_eq!(
        notification(&s.handle(t(5), Input::OpenCollisionDump)),
        Some((6, 7))
    );
}

#[test]
fn established_send_hold_timer_expires_sends_notification_goes_idle_rfc9687() {
    let mut s = established();
    let mut all = vec![];
    let mut now = t(3);
    // The peer keeps us alive but we never make write progress.
    while name(&s) == "Established" {
        let at = s.poll_timeout().unwrap();
        now = at;
        all.extend(s.handle_timeout(at));
        let _ = s.handle(now, msg(Message::Keepalive));
    }
    assert_eq!(now, t(3 + 480));
    assert_eq!(notification(&all), Some((8, 0)));
    assert!(all.contains(&Action::SessionDown(DownReason::SendHoldTimerExpired)));
}

#[test]
fn established_send_progress_restarts_send_hold_timer() {
    let mut s = established();
    let _ = s.handle(t(100), Input::SendProgress);
    assert_eq!(s.timers().deadline(Timer::SendHold), Some(t(580)));
}

#[test]
fn established_send_update_outside_established_is_dropped() {
    let mut s = open_confirm();
    assert!(
        s.handle(t(3), Input::SendUpdate(Update::end_of_rib_marker(V4)))
            .is_empty()
    );
}

// ---- End-of-RIB and route refresh ----

#[test]
fn rfc4724_4_1_eor_waits_for_initial_routes() {
    let mut s = established();
    let a = s.handle(t(10), Input::InitialRoutesSent(Some(V6)));
    assert_eq!(
        a,
        vec![Action::Send(Message::Update(Update::end_of_rib_marker(V6)))]
    );
    assert!(s.timers().is_running(Timer::Deferral));
    // Again for the same family: nothing.
    assert!(
        s.handle(t(10), Input::InitialRoutesSent(Some(V6)))
            .is_empty()
    );
    let a = s.handle(t(11), Input::InitialRoutesSent(None));
    assert_eq!(
        a,
        vec![Action::Send(Message::Update(Update::end_of_rib_marker(V4)))]
    );
    assert!(!s.timers().is_running(Timer::Deferral));
}

#[test]
fn rfc4724_4_1_deferral_timer_sends_pending_eor() {
    let mut s = established();
    let a = advance(&mut s, t(3 + 360));
    let eors: Vec<_> = sent(&a)
        .into_iter()
        .filter(|m| matches!(m, Message::Update(_)))
        .collect();
    assert_eq!(eors.len(), 2);
    assert!(!s.timers().is_running(Timer::Deferral));
}

#[test]
fn eor_sent_at_once_when_nothing_is_pending() {
    let mut s = session_with(SessionConfig {
        wait_for_initial_routes: false,
        ..cfg()
    });
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnected);
    let _ = s.handle(t(2), msg(peer_open()));
    let a = s.handle(t(3), msg(Message::Keepalive));
    assert!(matches!(a[0], Action::Established(_)));
    assert_eq!(
        a[1..],
        [
            Action::Send(Message::Update(Update::end_of_rib_marker(V4))),
            Action::Send(Message::Update(Update::end_of_rib_marker(V6))),
        ]
    );
    assert!(!s.timers().is_running(Timer::Deferral));
}

#[test]
fn eor_only_for_families_both_sides_negotiated() {
    let mut s = open_sent();
    let mut o = peer_open();
    o.capabilities
        .retain(|c| c != &Capability::Multiprotocol(V6));
    let _ = s.handle(t(2), msg(o));
    let _ = s.handle(t(3), msg(Message::Keepalive));
    let a = s.handle(t(4), Input::InitialRoutesSent(None));
    assert_eq!(
        a,
        vec![Action::Send(Message::Update(Update::end_of_rib_marker(V4)))]
    );
    assert!(
        s.handle(t(4), Input::InitialRoutesSent(Some(V6)))
            .is_empty()
    );
}

#[test]
fn rfc7313_4_peer_request_is_wrapped_in_borr_eorr() {
    let mut s = established();
    let a = s.handle(t(5), msg(RouteRefresh::request(V4)));
    assert_eq!(
        a,
        vec![
            Action::Send(Message::RouteRefresh(RouteRefresh::borr(V4))),
            Action::RouteRefreshRequested(V4)
        ]
    );
    let a = s.handle(t(6), Input::RefreshDone(V4));
    assert_eq!(
        a,
        vec![Action::Send(Message::RouteRefresh(RouteRefresh::eorr(V4)))]
    );
}

#[test]
fn rfc7313_4_peer_borr_marks_stale_and_eorr_purges() {
    let mut s = established();
    assert_eq!(
        s.handle(t(5), msg(RouteRefresh::borr(V6))),
        vec![Action::RetainStale(V6)]
    );
    assert_eq!(s.timers().deadline(Timer::RefreshStale), Some(t(5 + 360)));
    assert_eq!(
        s.handle(t(6), msg(RouteRefresh::eorr(V6))),
        vec![Action::PurgeStale(V6)]
    );
    assert!(!s.timers().is_running(Timer::RefreshStale));
}

#[test]
fn rfc7313_4_eorr_timer_purges() {
    let mut s = established();
    let _ = s.handle(t(5), msg(RouteRefresh::borr(V6)));
    let all = advance(&mut s, t(365));
    assert!(all.contains(&Action::PurgeStale(V6)), "{all:?}");
    assert_eq!(name(&s), "Established");
}

#[test]
fn rfc2918_refresh_for_a_family_not_negotiated_is_ignored() {
    let mut s = established();
    let f = AfiSafi::IPV4_MULTICAST;
    assert!(s.handle(t(5), msg(RouteRefresh::request(f))).is_empty());
    assert!(s.handle(t(5), Input::RequestRouteRefresh(f)).is_empty());
    let a = s.handle(t(5), Input::RequestRouteRefresh(V4));
    assert_eq!(
        a,
        vec![Action::Send(Message::RouteRefresh(RouteRefresh::request(
            V4
        )))]
    );
}

// ---- Graceful restart through the session ----

#[test]
fn rfc4724_4_2_tcp_loss_retains_then_restart_timer_purges() {
    let mut s = established();
    let a = s.handle(t(10), Input::TcpFails);
    assert_eq!(
        a,
        vec![
            Action::CloseConnection,
            Action::RetainStale(V4),
            Action::RetainStale(V6),
            Action::SessionDown(DownReason::TcpError)
        ]
    );
    assert_eq!(s.timers().deadline(Timer::Restart), Some(t(130)));
    // Keep the session from coming back: stop automatic restarts by failing connects.
    let mut all = vec![];
    while let Some(at) = s.poll_timeout().filter(|at| *at <= t(130)) {
        all.extend(s.handle_timeout(at));
        if name(&s) == "Connect" {
            all.extend(s.handle(at, Input::TcpFails));
        }
    }
    assert!(all.contains(&Action::PurgeStale(V4)) && all.contains(&Action::PurgeStale(V6)));
}

#[test]
fn rfc4724_4_2_session_back_with_f_bit_clear_purges_at_once() {
    let mut s = established();
    let _ = s.handle(t(10), Input::TcpFails);
    let at = s.poll_timeout().unwrap();
    let _ = s.handle_timeout(at);
    let _ = s.handle(at, Input::TcpConnected);
    let back = peer_open_with(gr_cap(
        GracefulRestart::RESTART_STATE | GracefulRestart::NOTIFICATION,
        &[(V4, false), (V6, true)],
    ));
    let _ = s.handle(at, msg(back));
    let a = s.handle(at, msg(Message::Keepalive));
    assert!(matches!(a[0], Action::Established(_)));
    assert_eq!(a[1..], [Action::PurgeStale(V4)]);
    assert_eq!(s.graceful_restart().phase(V6), crate::gr::Phase::Stale);
    assert!(s.timers().is_running(Timer::Stale));
}

#[test]
fn rfc4724_4_2_end_of_rib_purges_the_rest() {
    let mut s = established();
    let _ = s.handle(t(10), Input::TcpFails);
    let at = s.poll_timeout().unwrap();
    let _ = s.handle_timeout(at);
    let _ = s.handle(at, Input::TcpConnected);
    let _ = s.handle(at, msg(peer_open()));
    let _ = s.handle(at, msg(Message::Keepalive));
    let eor = Update::end_of_rib_marker(V4);
    if eor.end_of_rib().is_none() {
        // The UPDATE codec is still a stub on this branch: End-of-RIB cannot be recognized.
        return;
    }
    let a = s.handle(at, msg(eor));
    assert_eq!(a, vec![Action::EndOfRib(V4), Action::PurgeStale(V4)]);
}

#[test]
fn rfc8538_4_notification_with_n_bit_retains() {
    let mut s = established();
    let a = s.handle(t(10), msg(Notification::new(3, 1)));
    assert!(a.contains(&Action::RetainStale(V4)), "{a:?}");
}

#[test]
fn rfc8538_4_hold_timer_expiry_with_n_bit_retains() {
    let mut s = established();
    let mut all = vec![];
    while s.state().is_established() {
        let at = s.poll_timeout().unwrap();
        all.extend(s.handle_timeout(at));
    }
    assert!(all.contains(&Action::SessionDown(DownReason::HoldTimerExpired)));
    assert!(all.contains(&Action::RetainStale(V4)), "{all:?}");
}

#[test]
fn rfc8538_3_hard_reset_received_purges() {
    let mut s = established();
    let hr = Notification::hard_reset(&Notification::cease(2));
    let a = s.handle(t(10), msg(hr.clone()));
    assert_eq!(
        a,
        vec![
            Action::CloseConnection,
            Action::SessionDown(DownReason::NotificationReceived(hr))
        ]
    );
}

#[test]
fn rfc4724_notification_without_n_bit_purges() {
    let mut s = open_sent();
    let _ = s.handle(t(2), msg(peer_open_with(gr_cap(0, &[(V4, true)]))));
    let _ = s.handle(t(3), msg(Message::Keepalive));
    let a = s.handle(t(10), msg(Notification::cease(2)));
    assert!(
        !a.iter().any(|a| matches!(a, Action::RetainStale(_))),
        "{a:?}"
    );
    // TCP loss still retains without N.
    let mut s = open_sent();
    let _ = s.handle(t(2), msg(peer_open_with(gr_cap(0, &[(V4, true)]))));
    let _ = s.handle(t(3), msg(Message::Keepalive));
    assert!(
        s.handle(t(10), Input::TcpFails)
            .contains(&Action::RetainStale(V4))
    );
}

#[test]
fn rfc8538_hard_reset_input_sends_hard_reset_and_purges() {
    let mut s = established();
    let a = s.handle(t(10), Input::HardReset);
    let [Action::Send(Message::Notification(n)), ..] = &a[..] else {
        panic!("{a:?}")
    };
    assert!(n.is_hard_reset());
    assert_eq!(n.hard_reset_inner(), Some(Notification::cease(4)));
    assert!(!a.iter().any(|a| matches!(a, Action::RetainStale(_))));
    // It restarts by itself.
    assert!(s.timers().is_running(Timer::IdleHold));
}

#[test]
fn manual_stop_while_peer_restarting_purges_stale() {
    let mut s = established();
    let _ = s.handle(t(10), Input::TcpFails);
    let a = s.handle(t(11), Input::ManualStop);
    assert_eq!(a, vec![Action::PurgeStale(V4), Action::PurgeStale(V6)]);
}

#[test]
fn peer_without_gr_capability_purges_on_loss() {
    let mut s = open_sent();
    let mut o = peer_open();
    o.capabilities
        .retain(|c| !matches!(c, Capability::GracefulRestart(_)));
    let _ = s.handle(t(2), msg(o));
    let _ = s.handle(t(3), msg(Message::Keepalive));
    let a = s.handle(t(10), Input::TcpFails);
    assert_eq!(
        a,
        vec![
            Action::CloseConnection,
            Action::SessionDown(DownReason::TcpError)
        ]
    );
}

#[test]
fn gr_disabled_sends_no_capability_and_purges_on_loss() {
    let mut c = cfg();
    c.graceful_restart.enabled = false;
    let mut s = session_with(c);
    let _ = s.handle(t(0), Input::ManualStart);
    let a = s.handle(t(1), Input::TcpConnected);
    let [Action::Send(Message::Open(o))] = &a[..] else {
        panic!()
    };
    assert!(!o.has_capability(cap_code::GRACEFUL_RESTART));
    let _ = s.handle(t(2), msg(peer_open()));
    let _ = s.handle(t(3), msg(Message::Keepalive));
    let a = s.handle(t(10), Input::TcpFails);
    assert!(!a.iter().any(|a| matches!(a, Action::RetainStale(_))));
}

#[test]
fn rfc4724_3_helper_only_advertises_no_families() {
    let mut c = cfg();
    c.graceful_restart.helper_only = true;
    let o = session_with(c).build_open();
    let gr = o.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g.clone()),
        _ => None,
    });
    let gr = gr.unwrap();
    assert!(gr.families.is_empty());
    assert!(gr.notification() && !gr.restart_state());
}

#[test]
fn rfc4724_3_restarting_speaker_sets_r_bit_and_embedder_f_bits() {
    let mut s = session_with(cfg());
    let fwd: AfiSafiSet = [V6].into_iter().collect();
    let _ = s.handle(
        t(0),
        Input::RestartState {
            restarting: true,
            forwarding: fwd,
        },
    );
    let o = s.build_open();
    let Some(Capability::GracefulRestart(gr)) = o
        .capabilities
        .iter()
        .find(|c| c.code() == cap_code::GRACEFUL_RESTART)
    else {
        panic!()
    };
    assert!(gr.restart_state());
    assert_eq!(gr.family(V4).map(|f| f.forwarding_state()), Some(false));
    assert_eq!(gr.family(V6).map(|f| f.forwarding_state()), Some(true));
}

#[test]
fn rfc4724_4_1_restarting_speaker_defers_eor_then_clears_r_bit() {
    let mut s = session_with(SessionConfig {
        wait_for_initial_routes: false,
        ..cfg()
    });
    let _ = s.handle(
        t(0),
        Input::RestartState {
            restarting: true,
            forwarding: AfiSafiSet::EMPTY,
        },
    );
    let _ = s.handle(t(0), Input::ManualStart);
    let _ = s.handle(t(1), Input::TcpConnected);
    let _ = s.handle(t(2), msg(peer_open()));
    let a = s.handle(t(3), msg(Message::Keepalive));
    // Restarting: no End-of-RIB until the routes are in or the deferral timer fires.
    assert_eq!(a.len(), 1, "{a:?}");
    let a = advance(&mut s, t(3 + 360));
    let eors = sent(&a)
        .into_iter()
        .filter(|m| matches!(m, Message::Update(_)))
        .count();
    assert_eq!(eors, 2);
    let o = s.build_open();
    assert!(o.capabilities.iter().all(|c| match c {
        Capability::GracefulRestart(g) => !g.restart_state(),
        _ => true,
    }));
}

#[test]
fn config_change_sends_cease_and_restarts() {
    let mut s = established();
    let changed = SessionConfig {
        hold_time: 30,
        ..cfg()
    };
    let a = s.handle(t(5), Input::ConfigChanged(Box::new(changed)));
    assert_eq!(notification(&a), Some((6, 6)));
    assert!(a.contains(&Action::SessionDown(DownReason::ConfigChange)));
    assert!(s.timers().is_running(Timer::IdleHold));
}

#[test]
fn config_change_of_local_timers_keeps_the_session() {
    let mut s = established();
    let changed = SessionConfig {
        connect_retry_time: Duration::from_secs(7),
        idle_hold_time: Duration::from_secs(1),
        passive: true,
        ..cfg()
    };
    assert!(!cfg().requires_reset(&changed));
    let a = s.handle(t(5), Input::ConfigChanged(Box::new(changed)));
    assert!(a.is_empty(), "{a:?}");
    assert_eq!(name(&s), "Established");
    // The new idle hold time is used the next time the session goes down.
    let a = s.handle(t(6), Input::TcpFails);
    assert!(a.iter().any(|a| matches!(a, Action::SessionDown(_))));
    // (Jittered down by at most a quarter.)
    let at = s.poll_timeout().expect("idle hold timer");
    assert!(at > t(6) && at <= t(7), "{at:?}");
}

#[test]
fn requires_reset_for_what_goes_into_the_open() {
    let base = cfg();
    for changed in [
        SessionConfig {
            hold_time: 9,
            ..cfg()
        },
        SessionConfig {
            families: vec![V4],
            ..cfg()
        },
        SessionConfig {
            bgp_id: Ipv4Addr::new(1, 2, 3, 4),
            ..cfg()
        },
        SessionConfig {
            route_refresh: false,
            ..cfg()
        },
    ] {
        assert!(base.requires_reset(&changed), "{changed:?}");
    }
    assert!(!base.requires_reset(&cfg()));
}

fn prefix_limit(restart_after: Option<Duration>) -> Input {
    Input::PrefixLimitExceeded {
        family: V4,
        limit: 1000,
        restart_after,
    }
}

/// RFC 4486 §4: Cease/Maximum Number of Prefixes Reached with AFI, SAFI and the limit as
/// data; RFC 8538 §5: inside a Hard Reset when the N bit was negotiated, so no side keeps
/// the routes.
#[test]
fn prefix_limit_rfc4486_4_rfc8538_5_hard_reset_and_stays_down() {
    let mut s = established();
    let a = s.handle(t(5), prefix_limit(None));
    let n = sent(&a)
        .into_iter()
        .find_map(|m| match m {
            Message::Notification(n) => Some(n.clone()),
            _ => None,
        })
        .expect("a NOTIFICATION");
    assert!(n.is_hard_reset());
    let inner = n.hard_reset_inner().expect("inner");
    assert_eq!((inner.code, inner.subcode), (6, 1));
    assert_eq!(&inner.data[..], &[0, 1, 1, 0, 0, 0x03, 0xe8]);
    assert!(!a.iter().any(|a| matches!(a, Action::RetainStale(_))));
    assert!(a.iter().any(|a| matches!(a, Action::SessionDown(_))));
    assert_eq!(name(&s), "Idle");
    // No automatic restart, however long we wait.
    assert!(!s.timers().is_running(Timer::IdleHold));
    assert!(advance(&mut s, t(10_000)).is_empty());
    // An operator's reset starts it again.
    assert_eq!(s.handle(t(10_001), Input::HardReset), vec![Action::Connect]);
    assert_eq!(name(&s), "Connect");
}

#[test]
fn prefix_limit_without_n_bit_is_a_plain_cease_and_restarts_after_the_set_time() {
    let mut s = open_sent();
    let _ = s.handle(t(2), msg(peer_open_with(gr_cap(0, &[(V4, true)]))));
    let _ = s.handle(t(3), msg(Message::Keepalive));
    assert_eq!(name(&s), "Established");
    let a = s.handle(t(5), prefix_limit(Some(Duration::from_secs(60))));
    assert_eq!(notification(&a), Some((6, 1)));
    assert!(!a.iter().any(|a| matches!(a, Action::RetainStale(_))));
    assert_eq!(s.poll_timeout(), Some(t(65)));
    assert_eq!(s.handle_timeout(t(65)), vec![Action::Connect]);
}

#[test]
fn collision_resolution_rfc4271_6_8_and_rfc6286_2_3() {
    let lo = Ipv4Addr::new(1, 1, 1, 1);
    let hi = Ipv4Addr::new(2, 2, 2, 2);
    assert!(collision_keeps_local_connection(hi, Asn(1), lo, Asn(2)));
    assert!(!collision_keeps_local_connection(lo, Asn(2), hi, Asn(1)));
    assert!(collision_keeps_local_connection(lo, Asn(2), lo, Asn(1)));
    assert!(!collision_keeps_local_connection(lo, Asn(1), lo, Asn(2)));
}

#[test]
fn down_reason_code_subcode() {
    assert_eq!(DownReason::HoldTimerExpired.code_subcode(), Some((4, 0)));
    assert_eq!(
        DownReason::SendHoldTimerExpired.code_subcode(),
        Some((8, 0))
    );
    assert_eq!(
        DownReason::NotificationReceived(Notification::cease(9)).code_subcode(),
        Some((6, 9))
    );
    assert_eq!(DownReason::TcpError.code_subcode(), None);
}

#[test]
fn our_open_carries_what_is_configured() {
    let mut c = cfg();
    c.families = vec![V4, V6, AfiSafi::new(bgp_wire::Afi(25), bgp_wire::Safi(70))];
    c.add_path = vec![bgp_wire::capability::AddPathFamily {
        afi_safi: V4,
        mode: bgp_wire::capability::AddPathMode::Both,
    }];
    c.role = Some(Role::Provider);
    c.fqdn = Some(bgp_wire::capability::Fqdn::new("r1", "lab"));
    c.graceful_restart.llgr_stale_time = Some(3600);
    let o = session_with(c.clone()).build_open();
    for code in [
        cap_code::MULTIPROTOCOL,
        cap_code::ROUTE_REFRESH,
        cap_code::ENHANCED_ROUTE_REFRESH,
        cap_code::EXTENDED_MESSAGE,
        cap_code::ADD_PATH,
        cap_code::ROLE,
        cap_code::GRACEFUL_RESTART,
        cap_code::LONG_LIVED_GRACEFUL_RESTART,
        cap_code::FOUR_OCTET_AS,
        cap_code::FQDN,
    ] {
        assert!(o.has_capability(code), "{code}");
    }
    // Unknown families are advertised but get no GR entry.
    let Some(Capability::GracefulRestart(gr)) = o
        .capabilities
        .iter()
        .find(|c| c.code() == cap_code::GRACEFUL_RESTART)
    else {
        panic!()
    };
    assert_eq!(gr.families.len(), 2);
    assert!(!gr.restart_state() && gr.notification());
    // The OPEN encodes.
    assert!(Message::Open(o).to_bytes(&Context::default()).is_ok());
    // No role on iBGP (RFC 9234 §4.2).
    c.peer_asn = Some(c.local_asn);
    assert!(!session_with(c).build_open().has_capability(cap_code::ROLE));
}

#[test]
fn open_and_keepalive_in_one_read_go_established() {
    let mut s = open_sent();
    let ctx = Context::default();
    let mut b = BytesMut::new();
    Message::Open(peer_open()).encode(&ctx, &mut b).unwrap();
    Message::Keepalive.encode(&ctx, &mut b).unwrap();
    let a = s.handle(t(2), Input::Bytes(b.freeze()));
    assert!(matches!(
        a[..],
        [Action::Send(Message::Keepalive), Action::Established(_)]
    ));
    assert_eq!(name(&s), "Established");
}

#[test]
fn bytes_after_a_fatal_error_are_dropped() {
    let mut s = established();
    let mut b = vec![0u8; 16];
    b.extend_from_slice(&[0, 19, 4]);
    b.extend_from_slice(&Message::Keepalive.to_bytes(&Context::default()).unwrap());
    let a = s.handle(t(5), Input::Bytes(Bytes::from(b)));
    assert_eq!(sent(&a).len(), 1);
    assert_eq!(notification(&a), Some((1, 1)));
    assert_eq!(name(&s), "Idle");
}

#[test]
fn rfc7313_5_route_refresh_of_wrong_length_sends_notification_with_the_message() {
    let mut s = established();
    let mut b = vec![0xff; 16];
    b.extend_from_slice(&[0, 24, 5, 0, 1, 0, 1, 0]);
    let a = s.handle(t(5), Input::Bytes(Bytes::from(b.clone())));
    let [Action::Send(Message::Notification(n)), ..] = &a[..] else {
        panic!("{a:?}")
    };
    assert_eq!((n.code, n.subcode), (7, 1));
    assert_eq!(&n.data[..], &b[..]);
    assert_eq!(name(&s), "Idle");
}

#[test]
fn established_messages_use_the_negotiated_context() {
    let s = established();
    let n = s.negotiated().unwrap();
    assert_eq!(*s.context(), n.context());
    // We offered extended messages, the peer did not: 4096.
    assert_eq!(s.context().max_message_len, 4096);
}

#[test]
fn idle_idle_hold_expires_restarts_passive_when_started_passive() {
    let mut s = session_with(cfg());
    let _ = s.handle(t(0), Input::AutomaticStart { passive: true });
    let _ = s.handle(t(1), Input::TcpConnectionConfirmed);
    let _ = s.handle(t(2), Input::TcpFails);
    assert_eq!(name(&s), "Active");
    let _ = s.handle(t(3), msg(Message::Keepalive));
    assert_eq!(name(&s), "Idle");
    let at = s.poll_timeout().unwrap();
    assert!(s.handle_timeout(at).is_empty());
    assert_eq!(name(&s), "Active");
}
