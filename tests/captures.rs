//! Every message captured from FRR, BIRD and GoBGP decodes cleanly, and re-encodes to a
//! message that decodes to the same value.

use bgp_testkit::captures;
use bgp_wire::{Message, MessageType, context, split_message};
use bytes::BytesMut;

#[test]
fn every_captured_message_decodes_and_round_trips() {
    let caps = captures::all();
    assert!(caps.len() >= 20, "captures missing: {}", caps.len());
    let mut by_type = [0usize; 6];
    for cap in &caps {
        let ctx = cap.context;
        let mut buf = BytesMut::from(&cap.bytes[..]);
        let mut index = 0;
        while !buf.is_empty() {
            let (header, msg) = match split_message(&mut buf, ctx.max_message_len) {
                Ok(Some(m)) => m,
                Ok(None) => panic!("{}: message {index} truncated", cap.name),
                Err(e) => panic!("{}: message {index}: {e}", cap.name),
            };
            let m = Message::decode_body(header, msg.slice(context::HEADER_LEN..), &ctx)
                .unwrap_or_else(|e| panic!("{}: message {index}: {e}", cap.name));
            if let Message::Update(u) = &m {
                assert!(
                    u.errors.is_empty(),
                    "{}: message {index}: {:?}",
                    cap.name,
                    u.errors
                );
            }
            by_type[usize::from(header.kind.code())] += 1;
            let again = Message::decode(m.to_bytes(&ctx).expect("re-encodes"), &ctx)
                .unwrap_or_else(|e| panic!("{}: message {index} re-encoded: {e}", cap.name));
            assert_eq!(again, m, "{}: message {index}", cap.name);
            index += 1;
        }
    }
    // The totals tcpdump's own decoder counted in the same capture.
    assert_eq!(by_type[usize::from(MessageType::Open.code())], 23);
    assert_eq!(by_type[usize::from(MessageType::Update.code())], 903);
    assert_eq!(by_type[usize::from(MessageType::Notification.code())], 6);
    assert_eq!(by_type[usize::from(MessageType::Keepalive.code())], 20);
    assert_eq!(by_type[usize::from(MessageType::RouteRefresh.code())], 12);
}

#[test]
fn captures_show_the_features_they_were_taken_for() {
    let mut large = 0;
    let mut add_path_ids = 0;
    let mut eor = 0;
    let mut otc = 0;
    let mut gr_r_bit = 0;
    for cap in captures::all() {
        let mut buf = BytesMut::from(&cap.bytes[..]);
        while let Ok(Some((h, msg))) = split_message(&mut buf, cap.context.max_message_len) {
            match Message::decode_body(h, msg.slice(19..), &cap.context) {
                Ok(Message::Update(u)) => {
                    large += usize::from(u.attributes.large_communities.is_some());
                    otc += usize::from(u.attributes.otc.is_some());
                    eor += usize::from(u.end_of_rib().is_some());
                    add_path_ids += u.announced().filter(|(_, n)| n.path_id.is_some()).count();
                }
                Ok(Message::Open(o)) => {
                    gr_r_bit += o
                        .capabilities
                        .iter()
                        .filter(|c| {
                            matches!(c, bgp_wire::Capability::GracefulRestart(g) if g.restart_state())
                        })
                        .count();
                }
                _ => {}
            }
        }
    }
    assert!(large > 0 && add_path_ids > 0 && eor > 0 && otc > 0 && gr_r_bit > 0);
}
