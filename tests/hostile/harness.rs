//! The lab every case runs in: a speaker under test (the SUT) listening on its own loopback
//! address, a witness speaker with an established session to it, and a scripted hostile peer
//! that talks raw bytes over TCP.
//!
//! Every lab gets its own /24 (`127.77.1.0/24`, `127.77.2.0/24`, ... then `127.78.0.0/24`,
//! ...): `.1` is the SUT, `.2` the hostile peer, `.3` the witness, `.9` and up strangers, so
//! that cases run in parallel without sharing anything.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bgp_speaker::core::{Announcement, Event};
use bgp_speaker::snapshot::{PeerSnapshot, SessionState};
use bgp_speaker::{
    EventStream, GlobalSettings, Network, PeerSettings, ShutdownOptions, Speaker, SpeakerHandle,
};
use bgp_wire::{AfiSafi, Asn, Context, Message, Notification, split_message};
use bytes::BytesMut;
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout};

use crate::raw;

/// The bound on every wait of the suite.
pub(crate) const WAIT: Duration = Duration::from_secs(5);
/// How often the polling waits look again.
const POLL: Duration = Duration::from_millis(5);
/// The SUT's AS.
pub(crate) const SUT_AS: u32 = 65001;
/// The hostile peer's AS.
pub(crate) const HOSTILE_AS: u32 = 65002;
/// The witness's AS.
pub(crate) const WITNESS_AS: u32 = 65003;
/// The SUT's own route.
pub(crate) const SUT_PREFIX: &str = "192.0.2.0/24";
/// The witness's routes.
pub(crate) const WITNESS_PREFIXES: [&str; 3] =
    ["198.51.100.0/24", "198.51.101.0/24", "198.51.102.0/25"];
/// A hostile route that no case touches: it must survive every treat-as-withdraw.
pub(crate) const KEEP: &str = "100.64.0.0/24";
/// The hostile route the bad UPDATE of a case carries.
pub(crate) const VICTIM: &str = "100.64.1.0/24";
/// Announced after the bad UPDATE: once the SUT holds it, the bad UPDATE was handled.
pub(crate) const MARKER: &str = "100.64.2.0/24";
/// A hostile IPv6 route no case touches.
pub(crate) const KEEP6: &str = "2001:db8:1::/48";
/// The hostile IPv6 route the bad UPDATE of an IPv6 case carries.
pub(crate) const VICTIM6: &str = "2001:db8:2::/48";

static NEXT_LAB: AtomicU16 = AtomicU16::new(1);

/// Parses a prefix.
pub(crate) fn net(p: &str) -> IpNet {
    p.parse().expect("a prefix")
}

fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map_or(17_900, |a| a.port())
}

/// A speaker under test, its witness, and the addresses of the hostile peer.
pub(crate) struct Lab {
    /// The speaker under test.
    pub sut: SpeakerHandle,
    sut_events: EventStream,
    witness: SpeakerHandle,
    witness_events: EventStream,
    /// Where the SUT listens.
    pub sut_addr: SocketAddr,
    /// The lab's /24.
    pub base: [u8; 3],
    /// The hostile peer's address.
    pub hostile_ip: Ipv4Addr,
    /// The witness's address.
    pub witness_ip: Ipv4Addr,
    /// The hostile peer's AS as the SUT has it configured.
    pub hostile_as: u32,
}

impl Lab {
    /// A lab with the default settings for the hostile peer.
    pub(crate) async fn start() -> Lab {
        Lab::start_with(|_| {}).await
    }

    /// A lab whose hostile peer settings (on the SUT) `tweak` adjusts.
    pub(crate) async fn start_with(tweak: impl FnOnce(&mut PeerSettings)) -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let [hi, lo] = n.to_be_bytes();
        assert!(hi < 100, "too many labs for the address plan");
        let base = [127, 77 + hi, lo];
        let at = |x: u8| Ipv4Addr::new(base[0], base[1], base[2], x);
        let (sut_ip, hostile_ip, witness_ip) = (at(1), at(2), at(3));
        let port = free_port(IpAddr::V4(sut_ip));
        let sut_addr = SocketAddr::new(IpAddr::V4(sut_ip), port);

        let mut hostile = PeerSettings {
            passive: true,
            local_address: Some(IpAddr::V4(sut_ip)),
            idle_hold_time: Duration::from_millis(50),
            connect_retry: Duration::from_secs(1),
            families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
            next_hop_ipv6: Some("2001:db8::1".parse().expect("address")),
            ..PeerSettings::new(IpAddr::V4(hostile_ip), Asn(HOSTILE_AS))
        };
        tweak(&mut hostile);
        let hostile_as = hostile.asn.0;
        let witness_peer = PeerSettings {
            passive: true,
            local_address: Some(IpAddr::V4(sut_ip)),
            idle_hold_time: Duration::from_millis(50),
            ..PeerSettings::new(IpAddr::V4(witness_ip), Asn(WITNESS_AS))
        };
        let sut_settings = GlobalSettings {
            asn: Asn(SUT_AS),
            router_id: sut_ip,
            listen: vec![sut_addr],
            export_learned: true,
            peers: vec![hostile, witness_peer],
            announcements: vec![Announcement::new(net(SUT_PREFIX))],
            network: Network::Tcp,
            ..GlobalSettings::default()
        };
        let (sut, sut_events) = Speaker::start(sut_settings).await.expect("the SUT starts");

        let witness_settings = GlobalSettings {
            asn: Asn(WITNESS_AS),
            router_id: witness_ip,
            peers: vec![PeerSettings {
                port,
                local_address: Some(IpAddr::V4(witness_ip)),
                connect_retry: Duration::from_millis(200),
                idle_hold_time: Duration::from_millis(50),
                ..PeerSettings::new(IpAddr::V4(sut_ip), Asn(SUT_AS))
            }],
            announcements: WITNESS_PREFIXES
                .iter()
                .map(|p| Announcement::new(net(p)))
                .collect(),
            network: Network::Tcp,
            ..GlobalSettings::default()
        };
        let (witness, witness_events) = Speaker::start(witness_settings)
            .await
            .expect("the witness starts");
        let lab = Lab {
            sut,
            sut_events,
            witness,
            witness_events,
            sut_addr,
            base,
            hostile_ip,
            witness_ip,
            hostile_as,
        };
        lab.wait_for("the witness's routes at the SUT", |l| async move {
            l.sut_holds_witness_routes().await
        })
        .await;
        lab.wait_for("the SUT's route at the witness", |l| async move {
            l.witness_holds_sut_route().await
        })
        .await;
        lab
    }

    /// An address of the lab's /24.
    pub(crate) fn ip(&self, x: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2], x)
    }

    /// The SUT's address (and BGP identifier).
    pub(crate) fn sut_ip(&self) -> Ipv4Addr {
        self.ip(1)
    }

    /// The hostile peer's OPEN with the default capabilities and hold time 90.
    pub(crate) fn open(&self) -> Vec<u8> {
        raw::open(
            self.hostile_as,
            90,
            self.hostile_ip,
            &raw::default_caps(self.hostile_as),
        )
    }

    /// Polls `check` until it holds; panics naming `what` after [`WAIT`].
    pub(crate) async fn wait_for<'a, F, Fut>(&'a self, what: &str, check: F)
    where
        F: Fn(&'a Lab) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if check(self).await {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// The SUT's snapshot of the peer at `ip`.
    pub(crate) async fn sut_peer(&self, ip: Ipv4Addr) -> PeerSnapshot {
        let snap = timeout(WAIT, self.sut.snapshot())
            .await
            .expect("the SUT answers in time")
            .expect("the SUT is alive");
        snap.into_iter()
            .find(|p| p.address == IpAddr::V4(ip))
            .expect("the peer is configured")
    }

    /// The prefixes the SUT holds from the hostile peer (its best routes from there).
    pub(crate) async fn hostile_prefixes(&self) -> BTreeSet<IpNet> {
        self.prefixes_from(self.hostile_ip).await
    }

    async fn prefixes_from(&self, ip: Ipv4Addr) -> BTreeSet<IpNet> {
        let routes = timeout(WAIT, self.sut.routes())
            .await
            .expect("the SUT answers in time")
            .expect("the SUT is alive");
        routes
            .into_iter()
            .filter(|r| r.2.from.as_ref().is_some_and(|f| f.addr == IpAddr::V4(ip)))
            .map(|r| r.1)
            .collect()
    }

    /// The SUT's best route for `prefix`, if any.
    pub(crate) async fn sut_route(&self, prefix: &str) -> Option<bgp_speaker::Route> {
        let routes = timeout(WAIT, self.sut.routes())
            .await
            .expect("the SUT answers in time")
            .expect("the SUT is alive");
        let p = net(prefix);
        routes.into_iter().find(|r| r.1 == p).map(|r| r.2)
    }

    /// Waits until the SUT holds exactly `expected` from the hostile peer.
    pub(crate) async fn wait_hostile_prefixes(&self, expected: &[&str]) {
        let want: BTreeSet<IpNet> = expected.iter().map(|p| net(p)).collect();
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.hostile_prefixes().await;
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the SUT holds {got:?} from the hostile peer, expected {want:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The witness's best route for `prefix`, if any.
    pub(crate) async fn witness_route(&self, prefix: IpNet) -> Option<bgp_speaker::Route> {
        let routes = timeout(WAIT, self.witness.routes())
            .await
            .expect("the witness answers in time")
            .expect("the witness is alive");
        routes.into_iter().find(|r| r.1 == prefix).map(|r| r.2)
    }

    async fn sut_holds_witness_routes(&self) -> bool {
        let got = self.prefixes_from(self.witness_ip).await;
        WITNESS_PREFIXES.iter().all(|p| got.contains(&net(p)))
    }

    async fn witness_holds_sut_route(&self) -> bool {
        let routes = timeout(WAIT, self.witness.routes())
            .await
            .expect("the witness answers in time")
            .expect("the witness is alive");
        routes.iter().any(|r| r.1 == net(SUT_PREFIX))
    }

    /// The SUT answers; the witness's session never left Established (no event, no flap on
    /// either side) and its routes are where they were.
    pub(crate) async fn assert_witness_intact(&mut self) {
        let w = self.sut_peer(self.witness_ip).await;
        assert_eq!(
            w.state,
            SessionState::Established,
            "witness session at the SUT"
        );
        assert_eq!(w.flaps, 0, "the witness session flapped at the SUT");
        let snap = timeout(WAIT, self.witness.snapshot())
            .await
            .expect("the witness answers in time")
            .expect("the witness is alive");
        assert_eq!(
            snap[0].state,
            SessionState::Established,
            "witness's session"
        );
        assert_eq!(snap[0].flaps, 0, "the witness's session flapped");
        let witness_ip = IpAddr::V4(self.witness_ip);
        while let Some(e) = self.sut_events.try_recv() {
            if let Event::PeerDown { peer, .. } = &e {
                assert_ne!(peer.addr, witness_ip, "the SUT lost the witness: {e:?}");
            }
        }
        while let Some(e) = self.witness_events.try_recv() {
            assert!(
                !matches!(e, Event::PeerDown { .. }),
                "the witness lost the SUT: {e:?}"
            );
        }
        assert!(
            self.sut_holds_witness_routes().await,
            "the SUT lost the witness's routes"
        );
        assert!(
            self.witness_holds_sut_route().await,
            "the witness lost the SUT's route"
        );
    }

    /// A raw TCP connection from the hostile peer's address.
    pub(crate) async fn connect(&self) -> Wire {
        self.connect_from(self.hostile_ip)
            .await
            .expect("the SUT accepts TCP")
    }

    /// A raw TCP connection from `ip`.
    pub(crate) async fn connect_from(&self, ip: Ipv4Addr) -> std::io::Result<Wire> {
        self.connect_with(ip, None).await
    }

    /// A raw TCP connection from `ip`, with a receive buffer of `rcvbuf` bytes.
    pub(crate) async fn connect_with(
        &self,
        ip: Ipv4Addr,
        rcvbuf: Option<u32>,
    ) -> std::io::Result<Wire> {
        let s = TcpSocket::new_v4()?;
        s.bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
        if let Some(n) = rcvbuf {
            s.set_recv_buffer_size(n)?;
        }
        let stream = timeout(WAIT, s.connect(self.sut_addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        Ok(Wire::from_stream(stream))
    }

    /// A hostile session in Established (our OPEN, theirs, KEEPALIVEs both ways), with the
    /// SUT's initial table read.
    pub(crate) async fn established(&self) -> Wire {
        let mut w = self.session_with(&self.open()).await;
        w.read_table().await;
        w
    }

    /// A session opened with `open` (retrying while the SUT refuses, as it does in Idle):
    /// KEEPALIVEs exchanged, the SUT's state Established.
    pub(crate) async fn session_with(&self, open: &[u8]) -> Wire {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut w = self.connect().await;
            w.send(open).await;
            match w.recv().await {
                Some(Got::Msg(Message::Open(_))) => {
                    w.send(&raw::keepalive()).await;
                    w.expect_keepalive().await;
                    self.wait_for("the hostile session to be Established", |l| async move {
                        l.sut_peer(l.hostile_ip).await.state == SessionState::Established
                    })
                    .await;
                    return w;
                }
                Some(Got::Closed) => {
                    assert!(Instant::now() < deadline, "the SUT keeps refusing");
                    tokio::time::sleep(POLL).await;
                }
                other => panic!("expected the SUT's OPEN, got {other:?}"),
            }
        }
    }

    /// Announces KEEP and VICTIM (IPv4) and KEEP6 and VICTIM6 (IPv6) with valid UPDATEs and
    /// waits until the SUT holds them.
    pub(crate) async fn announce_base(&self, w: &mut Wire) {
        w.send(&self.good_update(&[KEEP, VICTIM])).await;
        w.send(&self.good_update6(&[KEEP6, VICTIM6])).await;
        self.wait_hostile_prefixes(&[KEEP, VICTIM, KEEP6, VICTIM6])
            .await;
    }

    /// The mandatory attributes of a hostile route (ORIGIN IGP, AS_PATH [hostile AS],
    /// NEXT_HOP the hostile address).
    pub(crate) fn good_attrs(&self) -> Vec<u8> {
        raw::cat(&[
            raw::origin(0),
            self.hostile_path(),
            raw::next_hop(self.hostile_ip),
        ])
    }

    /// AS_PATH of a hostile route: the hostile AS, or empty on an internal session.
    pub(crate) fn hostile_path(&self) -> Vec<u8> {
        if self.hostile_as == SUT_AS {
            raw::attr(raw::WELL_KNOWN, 2, &[])
        } else {
            raw::as_path(&[self.hostile_as])
        }
    }

    /// A valid UPDATE announcing IPv4 `prefixes`.
    pub(crate) fn good_update(&self, prefixes: &[&str]) -> Vec<u8> {
        raw::update(&[], &self.good_attrs(), &raw::prefixes(prefixes))
    }

    /// A valid UPDATE announcing IPv6 `prefixes` in MP_REACH_NLRI.
    pub(crate) fn good_update6(&self, prefixes: &[&str]) -> Vec<u8> {
        let attrs = raw::cat(&[
            raw::origin(0),
            self.hostile_path(),
            raw::mp_reach(2, 1, &NH6, &raw::prefixes(prefixes)),
        ]);
        raw::update(&[], &attrs, &[])
    }

    /// After a bad UPDATE that must not reset the session: announces MARKER, waits until
    /// the SUT holds exactly `expected` plus MARKER from the hostile peer, and checks that
    /// no NOTIFICATION came and the session never left Established.
    pub(crate) async fn expect_no_reset(&self, w: &mut Wire, expected: &[&str]) {
        w.send(&self.good_update(&[MARKER])).await;
        let mut want = expected.to_vec();
        want.push(MARKER);
        self.wait_hostile_prefixes(&want).await;
        w.expect_no_notification().await;
        let h = self.sut_peer(self.hostile_ip).await;
        assert_eq!(h.state, SessionState::Established);
        assert_eq!(h.flaps, 0, "the hostile session was reset");
    }

    /// The SUT sends this NOTIFICATION and closes; the hostile peer's routes are gone.
    pub(crate) async fn expect_reset(&self, w: &mut Wire, code: u8, subcode: u8) -> Notification {
        let n = w.expect_notification().await;
        assert_eq!(
            (n.code, n.subcode),
            (code, subcode),
            "NOTIFICATION {:?} (data {:02x?})",
            n.names(),
            &n.data[..]
        );
        w.expect_closed().await;
        self.wait_hostile_prefixes(&[]).await;
        n
    }

    /// Closes the hostile session `w` (Cease), then [`Lab::finish`].
    pub(crate) async fn finish_closing(self, mut w: Wire) {
        w.send(&raw::notification(6, 2)).await;
        drop(w);
        self.finish().await;
    }

    /// The hostile peer's OPEN was refused: the SUT's own OPEN, then this NOTIFICATION, and
    /// the connection closes.
    pub(crate) async fn expect_open_reset(
        &self,
        w: &mut Wire,
        code: u8,
        subcode: u8,
    ) -> Notification {
        match w.recv().await {
            Some(Got::Msg(Message::Open(_))) => {}
            other => panic!("expected the SUT's OPEN, got {other:?}"),
        }
        self.expect_reset(w, code, subcode).await
    }

    /// Checks the witness, opens a fresh hostile session that gets the SUT's table and
    /// whose route the SUT accepts, checks the witness again, and stops both speakers.
    pub(crate) async fn finish(mut self) {
        self.assert_witness_intact().await;
        {
            let mut w = self.established().await;
            w.send(&self.good_update(&[MARKER])).await;
            self.wait_hostile_prefixes(&[MARKER]).await;
            self.assert_witness_intact().await;
        }
        let stop = ShutdownOptions::default();
        let (w, s) = tokio::join!(
            timeout(WAIT, self.witness.shutdown(stop)),
            timeout(WAIT, self.sut.shutdown(stop))
        );
        w.expect("the witness stops in time")
            .expect("the witness stops");
        s.expect("the SUT stops in time").expect("the SUT stops");
    }
}

/// The IPv6 next hop of hostile IPv6 routes.
pub(crate) const NH6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
];

/// What the hostile peer read.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Got {
    /// A message, decoded.
    Msg(Message),
    /// The SUT closed the connection (or reset it).
    Closed,
}

/// The hostile peer's end of a TCP connection.
pub(crate) struct Wire {
    stream: TcpStream,
    buf: BytesMut,
    ctx: Context,
}

impl Wire {
    /// Wraps a connected stream.
    pub(crate) fn from_stream(stream: TcpStream) -> Wire {
        Wire {
            stream,
            buf: BytesMut::new(),
            ctx: Context::default(),
        }
    }

    /// Reads the SUT's messages as a session without the 4-octet AS capability.
    pub(crate) fn set_legacy(&mut self) {
        self.ctx = Context::legacy();
    }

    /// Writes `bytes` in one go.
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        // A write may fail when the SUT has already closed: what it sent says why.
        let _ = timeout(WAIT, self.stream.write_all(bytes)).await;
    }

    /// Writes `bytes` in writes of `chunk` bytes, flushed one by one.
    pub(crate) async fn send_in_pieces(&mut self, bytes: &[u8], chunk: usize) {
        for c in bytes.chunks(chunk) {
            self.send(c).await;
            self.stream.flush().await.expect("flush");
            tokio::task::yield_now().await;
        }
    }

    /// The next message within [`WAIT`]; `None` when nothing came.
    pub(crate) async fn recv(&mut self) -> Option<Got> {
        self.recv_within(WAIT).await
    }

    /// The next message within `within`; `None` when nothing came.
    pub(crate) async fn recv_within(&mut self, within: Duration) -> Option<Got> {
        let deadline = Instant::now() + within;
        loop {
            match split_message(&mut self.buf, 65_535) {
                Ok(Some((h, m))) => {
                    let msg = Message::decode_body(h, m.slice(19..), &self.ctx)
                        .unwrap_or_else(|e| panic!("the SUT sent a malformed message: {e}"));
                    return Some(Got::Msg(msg));
                }
                Ok(None) => {}
                Err(e) => panic!("the SUT sent a bad header: {e}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return None,
                Ok(Ok(0) | Err(_)) => return Some(Got::Closed),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Reads until a KEEPALIVE.
    pub(crate) async fn expect_keepalive(&mut self) {
        let deadline = Instant::now() + 2 * WAIT;
        loop {
            assert!(Instant::now() < deadline, "the SUT kept talking");
            match self.recv().await {
                Some(Got::Msg(Message::Keepalive)) => return,
                Some(Got::Msg(Message::Update(_))) => {}
                other => panic!("expected KEEPALIVE, got {other:?}"),
            }
        }
    }

    /// Reads the SUT's initial table: until its End-of-RIB for IPv4, checking that the
    /// SUT's route and the witness's came.
    pub(crate) async fn read_table(&mut self) -> BTreeSet<IpNet> {
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + 2 * WAIT;
        loop {
            assert!(Instant::now() < deadline, "the SUT kept talking");
            match self.recv().await {
                Some(Got::Msg(Message::Update(u))) => {
                    if u.end_of_rib() == Some(AfiSafi::IPV4_UNICAST) {
                        break;
                    }
                    seen.extend(u.announced().map(|(_, n)| n.prefix));
                    for (_, n) in u.withdrawn_all() {
                        seen.remove(&n.prefix);
                    }
                }
                Some(Got::Msg(Message::Keepalive)) => {}
                other => panic!("expected the SUT's table, got {other:?}"),
            }
        }
        let want = std::iter::once(SUT_PREFIX).chain(WITNESS_PREFIXES);
        for p in want {
            assert!(seen.contains(&net(p)), "the SUT did not send {p}: {seen:?}");
        }
        seen
    }

    /// Reads until a NOTIFICATION (UPDATEs and KEEPALIVEs before it are skipped).
    pub(crate) async fn expect_notification(&mut self) -> Notification {
        let deadline = Instant::now() + 2 * WAIT;
        loop {
            assert!(Instant::now() < deadline, "the SUT kept talking");
            match self.recv().await {
                Some(Got::Msg(Message::Notification(n))) => return n,
                Some(Got::Msg(Message::Update(_) | Message::Keepalive)) => {}
                other => panic!("expected a NOTIFICATION, got {other:?}"),
            }
        }
    }

    /// Reads until the connection closes; nothing but UPDATEs and KEEPALIVEs may come.
    pub(crate) async fn expect_closed(&mut self) {
        let deadline = Instant::now() + 2 * WAIT;
        loop {
            assert!(Instant::now() < deadline, "the SUT kept talking");
            match self.recv().await {
                Some(Got::Closed) => return,
                Some(Got::Msg(Message::Update(_) | Message::Keepalive)) => {}
                other => panic!("expected the connection to close, got {other:?}"),
            }
        }
    }

    /// Reads what is there (briefly): no NOTIFICATION, no close.
    pub(crate) async fn expect_no_notification(&mut self) {
        let deadline = Instant::now() + 2 * WAIT;
        while let Some(got) = self.recv_within(Duration::from_millis(50)).await {
            assert!(Instant::now() < deadline, "the SUT kept talking");
            match got {
                Got::Msg(Message::Update(_) | Message::Keepalive) => {}
                other => panic!("the session should stay up, got {other:?}"),
            }
        }
    }
}
