//! Behaviour: messages in the wrong state (RFC 4271 §8.2.2, RFC 6608), peers that go quiet,
//! stop reading, hang up mid-message, connections from strangers and bursts of them.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp_speaker::core::Announcement;
use bgp_speaker::snapshot::SessionState;
use bgp_wire::Message;
use tokio::time::{Instant, timeout};

use crate::harness::{Got, KEEP, KEEP6, Lab, MARKER, VICTIM, VICTIM6, WAIT, net};
use crate::raw;

/// The hostile peer connects and reads the SUT's OPEN (the session is in OpenSent).
async fn open_sent(lab: &Lab) -> crate::harness::Wire {
    let mut w = lab.connect().await;
    match w.recv().await {
        Some(Got::Msg(Message::Open(_))) => w,
        other => panic!("expected the SUT's OPEN, got {other:?}"),
    }
}

/// The hostile peer's OPEN is in; the SUT answered with OPEN and KEEPALIVE (OpenConfirm).
async fn open_confirm(lab: &Lab) -> crate::harness::Wire {
    let mut w = lab.connect().await;
    w.send(&lab.open()).await;
    match w.recv().await {
        Some(Got::Msg(Message::Open(_))) => {}
        other => panic!("expected the SUT's OPEN, got {other:?}"),
    }
    w.expect_keepalive().await;
    w
}

/// RFC 6608: FSM Error, Receive Unexpected Message in OpenSent State.
#[tokio::test]
async fn update_before_open_is_an_fsm_error() {
    let lab = Lab::start().await;
    let mut w = open_sent(&lab).await;
    w.send(&lab.good_update(&[KEEP])).await;
    lab.expect_reset(&mut w, 5, 1).await;
    lab.finish().await;
}

#[tokio::test]
async fn keepalive_before_open_is_an_fsm_error() {
    let lab = Lab::start().await;
    let mut w = open_sent(&lab).await;
    w.send(&raw::keepalive()).await;
    lab.expect_reset(&mut w, 5, 1).await;
    lab.finish().await;
}

#[tokio::test]
async fn route_refresh_before_open_is_an_fsm_error() {
    let lab = Lab::start().await;
    let mut w = open_sent(&lab).await;
    w.send(&raw::msg(5, &[0, 1, 0, 1])).await;
    lab.expect_reset(&mut w, 5, 1).await;
    lab.finish().await;
}

/// RFC 6608: Receive Unexpected Message in OpenConfirm State.
#[tokio::test]
async fn second_open_in_open_confirm_is_an_fsm_error() {
    let lab = Lab::start().await;
    let mut w = open_confirm(&lab).await;
    w.send(&lab.open()).await;
    lab.expect_reset(&mut w, 5, 2).await;
    lab.finish().await;
}

#[tokio::test]
async fn update_in_open_confirm_is_an_fsm_error() {
    let lab = Lab::start().await;
    let mut w = open_confirm(&lab).await;
    w.send(&lab.good_update(&[KEEP])).await;
    lab.expect_reset(&mut w, 5, 2).await;
    lab.finish().await;
}

/// RFC 6608: Receive Unexpected Message in Established State.
#[tokio::test]
async fn open_in_established_is_an_fsm_error() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    w.send(&lab.open()).await;
    lab.expect_reset(&mut w, 5, 3).await;
    lab.finish().await;
}

/// RFC 4271 §6.4: no NOTIFICATION answers a NOTIFICATION; the connection closes.
#[tokio::test]
async fn notification_before_open_closes_without_an_answer() {
    let lab = Lab::start().await;
    let mut w = open_sent(&lab).await;
    w.send(&raw::notification(6, 2)).await;
    w.expect_closed().await;
    lab.finish().await;
}

/// A NOTIFICATION in Established: the session goes down, the peer's routes with it, and no
/// NOTIFICATION answers it.
#[tokio::test]
async fn notification_in_established_drops_the_peers_routes() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    w.send(&raw::notification(6, 4)).await;
    w.expect_closed().await;
    lab.wait_hostile_prefixes(&[]).await;
    lab.finish().await;
}

/// A connection lost halfway through a message: the session goes down cleanly.
#[tokio::test]
async fn hanging_up_mid_message_drops_the_session() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    let m = lab.good_update(&[MARKER]);
    w.send(&m[..m.len() / 2]).await;
    drop(w);
    lab.wait_hostile_prefixes(&[]).await;
    lab.finish().await;
}

/// Many messages in one TCP write are all read.
#[tokio::test]
async fn many_messages_in_one_write_are_all_read() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    let mut batch = Vec::new();
    let mut want = Vec::new();
    for i in 0..200u16 {
        want.push(format!("100.65.{}.{}/30", i / 64, (i % 64) * 4));
    }
    for p in &want {
        batch.extend(lab.good_update(&[p.as_str()]));
    }
    batch.extend(raw::keepalive());
    w.send(&batch).await;
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    lab.wait_hostile_prefixes(&want).await;
    w.expect_no_notification().await;
    lab.finish_closing(w).await;
}

/// RFC 4271 §8.2.2: a peer that opens TCP and sends nothing is dropped when the hold time
/// of OpenSent passes, with Hold Timer Expired.
#[tokio::test]
async fn a_silent_peer_is_dropped_by_the_open_hold_timer() {
    let lab = Lab::start_with(|p| p.open_hold_time = Duration::from_secs(1)).await;
    let start = Instant::now();
    let mut w = open_sent(&lab).await;
    lab.expect_reset(&mut w, 4, 0).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "dropped after {took:?}"
    );
    lab.finish().await;
}

/// RFC 4271 §8.2.2 (Established, HoldTimer_Expires): a peer that stops sending is dropped.
#[tokio::test]
async fn a_peer_that_stops_sending_is_dropped_by_the_hold_timer() {
    let lab = Lab::start().await;
    let open = raw::open(
        lab.hostile_as,
        3,
        lab.hostile_ip,
        &raw::default_caps(lab.hostile_as),
    );
    let mut w = lab.session_with(&open).await;
    w.send(&lab.good_update(&[KEEP])).await;
    lab.wait_hostile_prefixes(&[KEEP]).await;
    let start = Instant::now();
    lab.expect_reset(&mut w, 4, 0).await;
    assert!(start.elapsed() < Duration::from_secs(5));
    lab.finish().await;
}

/// A connection from an address that is no configured peer is closed at once, unanswered.
#[tokio::test]
async fn a_connection_from_an_unconfigured_address_is_refused() {
    let mut lab = Lab::start().await;
    let mut w = lab
        .connect_from(lab.ip(9))
        .await
        .expect("TCP connects (the listener accepts, then closes)");
    w.send(&lab.open()).await;
    match w.recv_within(Duration::from_secs(2)).await {
        Some(Got::Closed) => {}
        other => panic!("expected the connection to close unanswered, got {other:?}"),
    }
    lab.assert_witness_intact().await;
    lab.finish().await;
}

/// A burst of connections from strangers: each closed at once, unanswered, in bounded time.
#[tokio::test]
async fn a_burst_of_connections_from_strangers_is_refused_in_bounded_time() {
    let lab = Lab::start().await;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..150u16 {
        let ip = lab.ip(10 + u8::try_from(i % 100).expect("fits"));
        let sut = lab.sut_addr;
        tasks.spawn(async move { outcome(ip, sut).await });
    }
    let mut closed = 0;
    while let Some(r) = tasks.join_next().await {
        match r.expect("the attempt ran").0 {
            Outcome::Closed | Outcome::Refused => closed += 1,
            other => panic!("a stranger got {other:?}"),
        }
    }
    assert_eq!(closed, 150);
    assert!(start.elapsed() < WAIT, "took {:?}", start.elapsed());
    lab.finish().await;
}

/// A burst of connections from the peer's own address: at most one is taken as the session
/// and one more held for collision resolution (RFC 4271 §6.8); the rest are closed at once.
#[tokio::test]
async fn a_burst_of_connections_from_the_peer_is_bounded() {
    let lab = Lab::start().await;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..150 {
        let (ip, sut) = (lab.hostile_ip, lab.sut_addr);
        tasks.spawn(async move { outcome(ip, sut).await });
    }
    let mut opens = 0;
    let mut held = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r.expect("the attempt ran") {
            (Outcome::Closed | Outcome::Refused, _) => {}
            (Outcome::Open, w) => {
                opens += 1;
                held.extend(w);
            }
            other => panic!("unexpected {:?}", other.0),
        }
    }
    drop(held);
    assert!(opens <= 2, "{opens} connections got an OPEN");
    assert!(start.elapsed() < WAIT, "took {:?}", start.elapsed());
    lab.finish().await;
}

#[derive(Debug)]
enum Outcome {
    /// The connection was refused (the backlog was full).
    Refused,
    /// Closed without a byte.
    Closed,
    /// The SUT sent its OPEN.
    Open,
    /// Something else came.
    Other(#[allow(dead_code)] String),
    /// Nothing within [`WAIT`].
    Silent,
}

/// Connects from `ip`, then waits (boundedly) for the first message or the close; a
/// connection that got an OPEN is returned, still open.
async fn outcome(
    ip: Ipv4Addr,
    sut: std::net::SocketAddr,
) -> (Outcome, Option<crate::harness::Wire>) {
    let s = tokio::net::TcpSocket::new_v4().expect("socket");
    s.bind(std::net::SocketAddr::new(IpAddr::V4(ip), 0))
        .expect("bind");
    let Ok(Ok(stream)) = timeout(WAIT, s.connect(sut)).await else {
        return (Outcome::Refused, None);
    };
    let mut w = crate::harness::Wire::from_stream(stream);
    match w.recv().await {
        Some(Got::Closed) => (Outcome::Closed, None),
        Some(Got::Msg(Message::Open(_))) => (Outcome::Open, Some(w)),
        Some(Got::Msg(m)) => (Outcome::Other(format!("{m:?}")), None),
        None => (Outcome::Silent, None),
    }
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            l.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// A peer that stops reading costs Adj-RIB-Out entries, never a growing queue: while it is
/// blocked, thousands of route changes go to the witness; the SUT moves only what the socket
/// takes; when the peer reads again it gets each prefix in its latest state, not every change.
#[tokio::test]
async fn a_peer_that_stops_reading_costs_no_growing_queue() {
    const N: u32 = 1_300;
    const ROUNDS: u32 = 3;
    // 800 communities make each UPDATE about 3.3 kB: a round is 4 MB, more than the
    // kernel's socket buffers hold (tcp_wmem's maximum is 4 MB of buffer, about half of it
    // payload), so from the second round on only a growing queue could take more.
    let communities: Vec<bgp_wire::Community> = (0..800)
        .map(|i| bgp_wire::Community::new(65001, i))
        .collect();
    let mut lab = Lab::start().await;
    let mut w = lab
        .connect_with(lab.hostile_ip, Some(4096))
        .await
        .expect("connects");
    w.send(&lab.open()).await;
    match w.recv().await {
        Some(Got::Msg(Message::Open(_))) => {}
        other => panic!("expected OPEN, got {other:?}"),
    }
    w.send(&raw::keepalive()).await;
    w.expect_keepalive().await;
    lab.wait_for("the hostile session", |l| async move {
        l.sut_peer(l.hostile_ip).await.state == SessionState::Established
    })
    .await;
    // From here on the hostile peer reads nothing.
    let prefix = |i: u32| -> ipnet::IpNet {
        let a = Ipv4Addr::from(0x0a00_0000 | (i << 8));
        ipnet::IpNet::new(IpAddr::V4(a), 24).expect("a prefix")
    };
    let routes = |round: u32| -> Vec<Announcement> {
        (0..N)
            .map(|i| {
                let mut a = Announcement::new(prefix(i));
                // A MED per prefix: no two share attributes, one UPDATE each.
                a.med = Some(round * N + i);
                a.communities.clone_from(&communities);
                a
            })
            .collect()
    };
    let mut rss = Vec::new();
    let mut blocked_at = Vec::new();
    for round in 0..ROUNDS {
        lab.sut.announce_all(routes(round)).await.expect("announce");
        let last = round * N + N - 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = lab.witness_route(prefix(N - 1)).await;
            if r.is_some_and(|r| r.attributes.attrs.med == Some(last)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the witness did not get round {round}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        blocked_at.push(lab.sut_peer(lab.hostile_ip).await.sent.update);
        rss.push(rss_kb());
    }
    let h = lab.sut_peer(lab.hostile_ip).await;
    assert_eq!(
        h.state,
        SessionState::Established,
        "the slow peer is still up"
    );
    // What the SUT moved towards the blocked peer stopped growing once the socket was full:
    // the kernel's buffers and one write buffer (64 KiB, about 20 of these UPDATEs), far
    // from the N * ROUNDS changes.
    let sent = *blocked_at.last().expect("rounds ran");
    assert!(
        sent < u64::from(N * ROUNDS / 2),
        "{sent} UPDATEs were moved towards a peer that reads nothing: {blocked_at:?}"
    );
    assert!(
        sent - blocked_at[1] < 200,
        "the queue towards the blocked peer grew: {blocked_at:?}"
    );
    // A backstop only (other cases share the process): 4 MB a round queued would show.
    assert!(
        rss[ROUNDS as usize - 1] < rss[0] + 64 * 1024,
        "resident memory grew: {rss:?} kB"
    );
    // The peer reads again: every prefix arrives in its latest state, and in total far
    // fewer announcements than the changes made.
    let mut latest = std::collections::BTreeMap::new();
    let mut announced = 0u64;
    let final_med = |i: u32| (ROUNDS - 1) * N + i;
    let deadline = Instant::now() + Duration::from_secs(20);
    while (0..N).any(|i| latest.get(&prefix(i)) != Some(&final_med(i))) {
        assert!(Instant::now() < deadline, "the table did not arrive");
        match w.recv().await {
            Some(Got::Msg(Message::Update(u))) => {
                for (_, n) in u.announced() {
                    announced += 1;
                    latest.insert(n.prefix, u.attributes.med.unwrap_or(0));
                }
            }
            Some(Got::Msg(Message::Keepalive)) => {}
            other => panic!("expected UPDATEs, got {other:?}"),
        }
    }
    eprintln!("slow reader: moved {blocked_at:?}, RSS {rss:?} kB, then {announced} announcements");
    assert!(
        announced < u64::from(N) * 2,
        "{announced} announcements for {N} prefixes changed {ROUNDS} times"
    );
    lab.assert_witness_intact().await;
    lab.finish_closing(w).await;
}

/// RFC 2918 §4: a ROUTE-REFRESH for a family that was not negotiated is ignored.
#[tokio::test]
async fn route_refresh_for_a_family_not_negotiated_is_ignored() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    w.send(&raw::msg(5, &[0, 1, 0, 128])).await;
    lab.expect_no_reset(&mut w, &[KEEP, VICTIM, KEEP6, VICTIM6])
        .await;
    lab.finish_closing(w).await;
}

/// RFC 7313 §5: a ROUTE-REFRESH with an unknown subtype is ignored.
#[tokio::test]
async fn route_refresh_with_an_unknown_subtype_is_ignored() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    w.send(&raw::msg(5, &[0, 1, 7, 1])).await;
    lab.expect_no_reset(&mut w, &[KEEP, VICTIM, KEEP6, VICTIM6])
        .await;
    lab.finish_closing(w).await;
}

/// A valid ROUTE-REFRESH is answered with the table again (RFC 2918 §4).
#[tokio::test]
async fn route_refresh_is_answered_with_the_table() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    w.send(&raw::msg(5, &[0, 1, 0, 1])).await;
    let deadline = Instant::now() + WAIT;
    let mut seen = std::collections::BTreeSet::new();
    while !seen.contains(&net(crate::harness::SUT_PREFIX)) {
        assert!(Instant::now() < deadline, "no table after ROUTE-REFRESH");
        match w.recv().await {
            Some(Got::Msg(Message::Update(u))) => {
                seen.extend(u.announced().map(|(_, n)| n.prefix));
            }
            Some(Got::Msg(Message::Keepalive | Message::RouteRefresh(_))) => {}
            other => panic!("expected the table again, got {other:?}"),
        }
    }
    lab.finish_closing(w).await;
}

/// Ten thousand KEEPALIVEs in one burst change nothing.
#[tokio::test]
async fn a_flood_of_keepalives_is_harmless() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    w.send(&raw::keepalive().repeat(10_000)).await;
    lab.expect_no_reset(&mut w, &[KEEP, VICTIM, KEEP6, VICTIM6])
        .await;
    lab.finish_closing(w).await;
}

/// A connection from the witness's address, while the witness's session is Established,
/// whose OPEN names another AS: refused with Bad Peer AS (RFC 4271 §6.2); the witness's
/// session is not touched. (With graceful restart negotiated an OPEN on a new connection
/// means the peer restarted, RFC 4724 §4.2, but only an OPEN that the peer could have sent:
/// one that fails the checks of RFC 4271 §6.2 is no restart.)
#[tokio::test]
async fn an_invalid_open_from_an_established_peers_address_leaves_its_session_alone() {
    let mut lab = Lab::start().await;
    let mut w = lab
        .connect_from(lab.witness_ip)
        .await
        .expect("TCP connects");
    w.send(&raw::open(65099, 90, lab.ip(99), &raw::default_caps(65099)))
        .await;
    match w.recv().await {
        Some(Got::Msg(Message::Open(_))) => {}
        other => panic!("expected the SUT's OPEN, got {other:?}"),
    }
    let n = w.expect_notification().await;
    assert_eq!((n.code, n.subcode), (2, 2), "{:?}", n.names());
    w.expect_closed().await;
    lab.assert_witness_intact().await;
    lab.finish().await;
}

/// A connection from the witness's address that sends garbage instead of an OPEN: closed;
/// the witness's session is not touched.
#[tokio::test]
async fn garbage_from_an_established_peers_address_leaves_its_session_alone() {
    let mut lab = Lab::start().await;
    let mut w = lab
        .connect_from(lab.witness_ip)
        .await
        .expect("TCP connects");
    w.send(&[0x55; 64]).await;
    let deadline = Instant::now() + WAIT;
    loop {
        match w.recv().await {
            Some(Got::Closed) => break,
            Some(Got::Msg(Message::Open(_) | Message::Notification(_))) => {}
            other => panic!("expected the connection to close, got {other:?}"),
        }
        assert!(Instant::now() < deadline);
    }
    lab.assert_witness_intact().await;
    lab.finish().await;
}

/// A second connection from the hostile peer's address while its session (graceful restart
/// not negotiated) is Established: refused, the session and its routes untouched.
#[tokio::test]
async fn a_second_connection_while_established_is_refused() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    let mut second = lab.connect().await;
    second.send(&lab.open()).await;
    match second.recv().await {
        Some(Got::Closed) => {}
        Some(Got::Msg(Message::Notification(n))) => {
            assert_eq!(n.code, 6, "{:?}", n.names());
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    lab.expect_no_reset(&mut w, &[KEEP, VICTIM, KEEP6, VICTIM6])
        .await;
    lab.finish_closing(w).await;
}

/// Connection collision (RFC 4271 §6.8): while the first connection is in OpenSent, a second
/// one from the same address sends an OPEN with version 5. The second gets the NOTIFICATION
/// that OPEN calls for (RFC 4271 §6.2: Unsupported Version Number); the first carries on.
#[tokio::test]
async fn a_bad_open_on_a_colliding_connection_gets_its_notification() {
    let lab = Lab::start().await;
    let mut first = open_sent(&lab).await;
    let mut second = lab.connect().await;
    let mut bad = lab.open();
    bad[19] = 5;
    second.send(&bad).await;
    match second.recv().await {
        Some(Got::Msg(Message::Open(_))) => {}
        other => panic!("expected the SUT's OPEN, got {other:?}"),
    }
    let n = second.expect_notification().await;
    assert_eq!((n.code, n.subcode), (2, 1), "{:?}", n.names());
    second.expect_closed().await;
    first.send(&lab.open()).await;
    first.send(&raw::keepalive()).await;
    first.expect_keepalive().await;
    first.read_table().await;
    lab.finish_closing(first).await;
}

/// Connection collision (RFC 4271 §6.8): a second connection from the same address that
/// sends a bad OPEN is dropped; the first, in OpenSent, carries on to Established.
#[tokio::test]
async fn a_bad_colliding_connection_leaves_the_first_alone() {
    let lab = Lab::start().await;
    let mut first = open_sent(&lab).await;
    let mut second = lab.connect().await;
    let mut bad = lab.open();
    bad[19] = 5;
    second.send(&bad).await;
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "the SUT kept talking");
        match second.recv().await {
            Some(Got::Closed) => break,
            Some(Got::Msg(Message::Open(_) | Message::Notification(_))) => {}
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }
    first.send(&lab.open()).await;
    first.send(&raw::keepalive()).await;
    match first.recv().await {
        Some(Got::Msg(Message::Keepalive)) => {}
        other => panic!("expected KEEPALIVE, got {other:?}"),
    }
    first.read_table().await;
    lab.finish_closing(first).await;
}

/// A session with a negotiated hold time of 3 s; the times (since the first read) of the
/// SUT's first three KEEPALIVEs after its table, while the hostile peer keeps its own side
/// alive.
async fn keepalive_times(lab: &Lab) -> (crate::harness::Wire, Vec<Duration>) {
    let open = raw::open(
        lab.hostile_as,
        3,
        lab.hostile_ip,
        &raw::default_caps(lab.hostile_as),
    );
    let mut w = lab.session_with(&open).await;
    w.read_table().await;
    let mut at = Vec::new();
    let start = Instant::now();
    while at.len() < 3 {
        assert!(start.elapsed() < WAIT, "KEEPALIVEs at {at:?}");
        w.send(&raw::keepalive()).await;
        match w.recv_within(Duration::from_millis(500)).await {
            Some(Got::Msg(Message::Keepalive)) => at.push(start.elapsed()),
            Some(Got::Msg(Message::Update(_))) | None => {}
            other => panic!("expected KEEPALIVEs, got {other:?}"),
        }
    }
    (w, at)
}

/// RFC 4271 §4.4, §10: with a negotiated hold time of 3 s the SUT sends KEEPALIVEs about
/// every second (a third of it, jittered), so the session stays up.
#[tokio::test]
async fn keepalives_keep_a_short_negotiated_hold_time_alive() {
    let lab = Lab::start().await;
    let (w, at) = keepalive_times(&lab).await;
    for pair in at.windows(2) {
        assert!(pair[1] - pair[0] <= Duration::from_millis(1600), "{at:?}");
    }
    lab.finish_closing(w).await;
}

/// RFC 4271 §4.4: KEEPALIVEs MUST NOT be sent more often than one per second (the jitter of
/// §10 must not shorten a one-second interval).
#[tokio::test]
async fn keepalives_are_at_most_one_per_second() {
    let lab = Lab::start().await;
    let (w, at) = keepalive_times(&lab).await;
    for pair in at.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(990), "{at:?}");
    }
    lab.finish_closing(w).await;
}

/// RFC 4271 §4.4: with a negotiated hold time of 0, no periodic KEEPALIVEs are sent, even
/// with a short keepalive interval configured.
#[tokio::test]
async fn no_keepalives_when_the_hold_time_is_0() {
    let lab = Lab::start_with(|p| p.keepalive = Some(1)).await;
    let open = raw::open(
        lab.hostile_as,
        0,
        lab.hostile_ip,
        &raw::default_caps(lab.hostile_as),
    );
    let mut w = lab.session_with(&open).await;
    w.read_table().await;
    let until = Instant::now() + Duration::from_millis(2500);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match w.recv_within(left).await {
            Some(Got::Msg(Message::Update(_))) | None => {}
            other => panic!("nothing periodic may come, got {other:?}"),
        }
    }
    lab.finish_closing(w).await;
}

/// RFC 4486 §4: a flood beyond the peer's prefix limit ends its session with Cease/Maximum
/// Number of Prefixes Reached, whose data names the family and the limit (inside a Hard
/// Reset when the N bit was negotiated, RFC 8538 §5); its routes go, nothing else does, and
/// once the configured restart time passed the peer is welcome again.
#[tokio::test]
async fn a_route_flood_beyond_the_prefix_limit_stops_the_session() {
    let mut limit = bgp_speaker::PrefixLimit::new(bgp_wire::AfiSafi::IPV4_UNICAST, 1000);
    limit.restart_after = Some(Duration::from_millis(500));
    let lab = Lab::start_with(|p| p.prefix_limits = vec![limit]).await;
    let mut w = lab.established().await;
    let prefixes: Vec<String> = (0..5000u32)
        .map(|i| format!("10.{}.{}.0/24", 64 + i / 256, i % 256))
        .collect();
    for chunk in prefixes.chunks(400) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        w.send(&lab.good_update(&chunk)).await;
    }
    let mut n = w.expect_notification().await;
    if let Some(inner) = n.hard_reset_inner() {
        n = inner;
    }
    assert_eq!((n.code, n.subcode), (6, 1), "{:?}", n.names());
    // AFI 1, SAFI 1, the limit 1000.
    assert_eq!(&n.data[..], &[0, 1, 1, 0, 0, 0x03, 0xe8]);
    w.expect_closed().await;
    lab.wait_hostile_prefixes(&[]).await;
    lab.finish().await;
}
