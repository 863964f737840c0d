//! Message header errors (RFC 4271 §6.1): every one resets the session with code 1.

use crate::harness::{Lab, MARKER};
use crate::raw;
use crate::reset_case;

reset_case!(
    bad_marker_is_connection_not_synchronized,
    |_: &Lab| {
        let mut m = raw::keepalive();
        m[3] = 0xfe;
        m
    },
    1,
    1
);
reset_case!(
    length_18_is_bad_message_length,
    |_: &Lab| raw::msg_with_len(4, 18, &[]),
    1,
    2
);
reset_case!(
    length_0_is_bad_message_length,
    |_: &Lab| raw::msg_with_len(4, 0, &[]),
    1,
    2
);
reset_case!(
    length_4097_without_extended_messages_is_bad_message_length,
    |_: &Lab| raw::msg(2, &[0; 4097 - 19]),
    1,
    2
);
reset_case!(
    length_65535_is_bad_message_length,
    |_: &Lab| raw::msg_with_len(2, 65_535, &[0; 64]),
    1,
    2
);
reset_case!(
    keepalive_with_a_body_is_bad_message_length,
    |_: &Lab| raw::msg(4, &[0]),
    1,
    2
);
reset_case!(
    update_shorter_than_23_is_bad_message_length,
    |_: &Lab| raw::msg(2, &[0, 0]),
    1,
    2
);
reset_case!(
    open_shorter_than_29_is_bad_message_length,
    |_: &Lab| raw::msg(1, &[4, 0xfd, 0xea, 0, 90]),
    1,
    2
);
reset_case!(type_0_is_bad_message_type, |_: &Lab| raw::msg(0, &[]), 1, 3);
reset_case!(
    type_200_is_bad_message_type,
    |_: &Lab| raw::msg(200, &[1, 2, 3]),
    1,
    3
);
reset_case!(
    route_refresh_with_a_bad_length_is_route_refresh_error,
    |_: &Lab| raw::msg(5, &[0, 1, 0, 1, 0]),
    7,
    1
);
reset_case!(
    garbage_after_a_valid_message_is_connection_not_synchronized,
    |l: &Lab| {
        let mut v = l.good_update(&[MARKER]);
        v.extend_from_slice(&[0xab; 40]);
        v
    },
    1,
    1
);

/// The data of Bad Message Length is the erroneous length field (RFC 4271 §6.1).
#[tokio::test]
async fn bad_message_length_carries_the_length() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    w.send(&raw::msg_with_len(4, 18, &[])).await;
    let n = lab.expect_reset(&mut w, 1, 2).await;
    assert_eq!(&n.data[..], &[0, 18]);
    lab.finish().await;
}

/// The data of Bad Message Type is the erroneous type field (RFC 4271 §6.1).
#[tokio::test]
async fn bad_message_type_carries_the_type() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    w.send(&raw::msg(77, &[])).await;
    let n = lab.expect_reset(&mut w, 1, 3).await;
    assert_eq!(&n.data[..], &[77]);
    lab.finish().await;
}

/// A session whose every message arrives one byte per TCP write works as any other.
#[tokio::test]
async fn messages_split_into_one_byte_writes_still_work() {
    let lab = Lab::start().await;
    let mut w = lab.connect().await;
    w.send_in_pieces(&lab.open(), 1).await;
    match w.recv().await {
        Some(crate::harness::Got::Msg(bgp_wire::Message::Open(_))) => {}
        other => panic!("expected OPEN, got {other:?}"),
    }
    w.send_in_pieces(&raw::keepalive(), 1).await;
    w.expect_keepalive().await;
    w.read_table().await;
    w.send_in_pieces(&lab.good_update(&[crate::harness::KEEP, MARKER]), 1)
        .await;
    w.send_in_pieces(&lab.good_update6(&[crate::harness::KEEP6]), 3)
        .await;
    lab.wait_hostile_prefixes(&[crate::harness::KEEP, MARKER, crate::harness::KEEP6])
        .await;
    w.expect_no_notification().await;
    lab.finish_closing(w).await;
}

/// RFC 8654: once extended messages are negotiated, an UPDATE longer than 4096 octets is
/// read like any other.
#[tokio::test]
async fn an_update_over_4096_octets_is_read_when_extended_messages_were_negotiated() {
    let lab = Lab::start().await;
    let mut caps = raw::default_caps(lab.hostile_as);
    caps.push(raw::cap(6, &[]));
    let open = raw::open(lab.hostile_as, 90, lab.hostile_ip, &caps);
    let mut w = lab.session_with(&open).await;
    w.read_table().await;
    let want: Vec<String> = (0..1500u32)
        .map(|i| format!("100.{}.{}.0/24", 66 + i / 256, i % 256))
        .collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    let m = lab.good_update(&want);
    assert!(m.len() > 4096, "{} octets", m.len());
    w.send(&m).await;
    lab.wait_hostile_prefixes(&want).await;
    w.expect_no_notification().await;
    lab.finish_closing(w).await;
}

/// RFC 8654 §4 and the speaker's message-size limit: with extended messages switched off on
/// our side, the peer's offer negotiates nothing, and an UPDATE over 4096 octets is a Bad
/// Message Length (1/2) carrying the length.
#[tokio::test]
async fn an_update_over_4096_octets_is_refused_when_we_do_not_offer_extended_messages() {
    let lab = Lab::start_with(|p| p.extended_message = false).await;
    let mut caps = raw::default_caps(lab.hostile_as);
    caps.push(raw::cap(6, &[]));
    let open = raw::open(lab.hostile_as, 90, lab.hostile_ip, &caps);
    let mut w = lab.session_with(&open).await;
    w.read_table().await;
    let big: Vec<String> = (0..1500u32)
        .map(|i| format!("100.{}.{}.0/24", 66 + i / 256, i % 256))
        .collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let m = lab.good_update(&big);
    assert!(m.len() > 4096, "{} octets", m.len());
    w.send(&m).await;
    let n = lab.expect_reset(&mut w, 1, 2).await;
    assert_eq!(&n.data[..], &(m.len() as u16).to_be_bytes());
    lab.finish().await;
}

/// RFC 4271 §4.1: 4096 octets is the largest message without extended messages, and it is
/// read.
#[tokio::test]
async fn a_message_of_exactly_4096_octets_is_read() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    // /24s take 4 octets each; the remainder is made up with a /32 (5), /8 (2) or /16 (3).
    let room = 4096 - lab.good_update(&[]).len();
    let mut prefixes: Vec<String> = (0..room / 4)
        .map(|i| format!("100.{}.{}.0/24", 66 + i / 256, i % 256))
        .collect();
    match room % 4 {
        1 => {
            prefixes.pop();
            prefixes.push("100.200.0.1/32".to_string());
        }
        2 => prefixes.push("44.0.0.0/8".to_string()),
        3 => prefixes.push("45.1.0.0/16".to_string()),
        _ => {}
    }
    let ps: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let m = lab.good_update(&ps);
    assert_eq!(m.len(), 4096);
    w.send(&m).await;
    lab.wait_hostile_prefixes(&ps).await;
    w.expect_no_notification().await;
    lab.finish_closing(w).await;
}
