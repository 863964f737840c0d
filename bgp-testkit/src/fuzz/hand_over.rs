//! The `hand_over_images` target: the images a hand-over carries from one process to the
//! next (`bgp_speaker::handover`), decoded from arbitrary bytes.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

use bgp_fsm::{Action, Input, Session, SessionConfig, SessionImage, Time};
use bgp_rib::{PeerConfig, Rib, RibConfig, SourceId};
use bgp_wire::{AfiSafi, Asn, Context, Message, split_message};
use bytes::BytesMut;

use crate::table::{Table, TableSpec};
use crate::wire::encode_table;

/// The first byte picks the image: even, a session image (`SessionImage::decode`; one that
/// decodes encodes to an image that decodes to the same); odd, a peer's Adj-RIB-In image
/// restored into an empty RIB (`Rib::restore_adj_in`; a table that restores images again and
/// restores to as many routes). Never a panic otherwise.
pub fn hand_over_images(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    if pick & 1 == 0 {
        let Ok(image) = SessionImage::decode(rest) else {
            return;
        };
        let mut out = BytesMut::new();
        if image.encode(&mut out).is_ok() {
            let again = SessionImage::decode(&out);
            assert_eq!(
                again.ok(),
                Some(image),
                "a re-encoded session image decodes the same"
            );
        }
    } else {
        let (mut rib, peer) = empty_rib();
        if rib.restore_adj_in(peer, rest).is_err() {
            return;
        }
        let held = rib.adj_rib_in(peer).map_or(0, |a| a.total());
        let mut out = BytesMut::new();
        assert!(
            rib.adj_in_image(peer, &mut out).is_ok(),
            "a restored table images again"
        );
        let (mut rib2, peer2) = empty_rib();
        assert!(
            rib2.restore_adj_in(peer2, &out).is_ok(),
            "its image restores"
        );
        assert_eq!(rib2.adj_rib_in(peer2).map_or(0, |a| a.total()), held);
    }
}

fn empty_rib() -> (Rib, SourceId) {
    let mut rib = Rib::new(RibConfig {
        local_asn: Asn(65001),
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        cluster_id: None,
    });
    let peer = rib
        .add_peer(PeerConfig::new(
            Asn(65002),
            Ipv4Addr::new(192, 0, 2, 2),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        ))
        .unwrap_or(SourceId(1));
    (rib, peer)
}

/// Seeds for the target: session images of a plain session and of one with graceful
/// restart, and a small table's Adj-RIB-In image (IPv4 and IPv6, some of it stale), each
/// behind its pick byte.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for gr in [false, true] {
        let mut image = BytesMut::new();
        if let Some(i) = established_image(gr) {
            if i.encode(&mut image).is_ok() {
                let mut seed = vec![0u8];
                seed.extend_from_slice(&image);
                v.push(seed);
            }
        }
    }
    let (mut rib, peer) = empty_rib();
    let ctx = Context::default();
    let table = Table::generate(TableSpec {
        ipv4_prefixes: 200,
        ipv6_prefixes: 50,
        attribute_sets: 40,
        seed: 7,
        peer_as: 65002,
    });
    rib.peer_up(
        peer,
        ctx,
        [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
            .into_iter()
            .collect(),
    );
    let mut stream = encode_table(&table, &ctx).stream;
    while let Ok(Some((h, m))) = split_message(&mut stream, ctx.max_message_len) {
        if let Ok(Message::Update(u)) = Message::decode_body(h, m.slice(19..), &ctx) {
            let _ = rib.apply_update(peer, &u);
        }
    }
    let _ = rib.peer_down(peer, true);
    let _ = rib.purge_stale(peer, AfiSafi::IPV4_UNICAST);
    let mut image = BytesMut::new();
    if rib.adj_in_image(peer, &mut image).is_ok() {
        let mut seed = vec![1u8];
        seed.extend_from_slice(&image);
        v.push(seed);
    }
    v
}

/// Drives two sessions to Established through their messages and images the first.
fn established_image(gr: bool) -> Option<SessionImage> {
    let config = |asn: u32, id: u8, passive: bool| {
        let mut c = SessionConfig {
            local_asn: Asn(asn),
            peer_asn: Some(Asn(if asn == 65001 { 65002 } else { 65001 })),
            bgp_id: Ipv4Addr::new(10, 0, 0, id),
            passive,
            ..SessionConfig::default()
        };
        c.graceful_restart.enabled = gr;
        c
    };
    let mut a = Session::new(config(65001, 1, false));
    let mut b = Session::new(config(65002, 2, true));
    let now = Time::ZERO;
    let mut work: VecDeque<(bool, Input)> = VecDeque::from([
        (true, Input::ManualStart),
        (false, Input::ManualStart),
        (true, Input::TcpConnected),
        (false, Input::TcpConnectionConfirmed),
    ]);
    // Bounded: a handshake is a handful of messages.
    for _ in 0..64 {
        let Some((to_a, input)) = work.pop_front() else {
            break;
        };
        let s = if to_a { &mut a } else { &mut b };
        for action in s.handle(now, input) {
            if let Action::Send(m) = action {
                work.push_back((!to_a, Input::Message(m)));
            }
        }
    }
    a.image(now)
}
