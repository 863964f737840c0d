//! OPEN errors (RFC 4271 §6.2, RFC 5492, RFC 6793, RFC 6286, RFC 9072, RFC 8654) and the
//! OPENs that look odd but must be accepted.

use std::net::Ipv4Addr;

use bgp_wire::Asn;

use crate::harness::{HOSTILE_AS, KEEP, Lab, SUT_AS};
use crate::raw;

/// A case whose bad OPEN is the hostile peer's first message: the SUT sends its OPEN, then
/// this NOTIFICATION, and closes.
macro_rules! open_reset_case {
    ($(#[$m:meta])* $name:ident, $bytes:expr, $code:expr, $sub:expr) => {
        $(#[$m])*
        #[tokio::test]
        async fn $name() {
            let lab = Lab::start().await;
            let mut w = lab.connect().await;
            #[allow(clippy::redundant_closure_call)]
            let bytes: Vec<u8> = ($bytes)(&lab);
            w.send(&bytes).await;
            lab.expect_open_reset(&mut w, $code, $sub).await;
            lab.finish().await;
        }
    };
}

/// A case whose odd but valid OPEN must establish the session.
macro_rules! open_accepted_case {
    ($(#[$m:meta])* $name:ident, $bytes:expr) => {
        $(#[$m])*
        #[tokio::test]
        async fn $name() {
            let lab = Lab::start().await;
            #[allow(clippy::redundant_closure_call)]
            let bytes: Vec<u8> = ($bytes)(&lab);
            let mut w = lab.session_with(&bytes).await;
            w.read_table().await;
            w.send(&lab.good_update(&[KEEP])).await;
            lab.wait_hostile_prefixes(&[KEEP]).await;
            lab.finish_closing(w).await;
        }
    };
}

/// An OPEN with the hostile peer's AS, hold time 90, its address as identifier and these
/// raw optional parameters (length `opt_len`).
fn open_params(l: &Lab, opt_len: u8, params: &[u8]) -> Vec<u8> {
    let my_as = u16::try_from(l.hostile_as).expect("2-octet AS");
    raw::msg(
        1,
        &raw::open_body(4, my_as, 90, l.hostile_ip, opt_len, params),
    )
}

/// The default capabilities in the RFC 9072 extended form, padded with `pad` copies of the
/// route refresh capability so that they exceed 255 octets when `pad` is large.
fn extended_params(pad: usize) -> Vec<u8> {
    let mut caps = raw::default_caps(HOSTILE_AS);
    caps.extend(std::iter::repeat_n(raw::cap(2, &[]), pad));
    let mut params = Vec::new();
    for c in caps {
        params.push(2);
        params.extend_from_slice(&u16::try_from(c.len()).expect("fits").to_be_bytes());
        params.extend_from_slice(&c);
    }
    let mut v = vec![255];
    v.extend_from_slice(&u16::try_from(params.len()).expect("fits").to_be_bytes());
    v.extend_from_slice(&params);
    v
}

/// An OPEN with these fixed fields and the default capabilities.
fn open_body_with(version: u8, my_as: u16, hold: u16, id: Ipv4Addr) -> Vec<u8> {
    let params = raw::cap_params(&raw::default_caps(u32::from(my_as)));
    let len = u8::try_from(params.len()).expect("fits");
    raw::msg(1, &raw::open_body(version, my_as, hold, id, len, &params))
}

open_reset_case!(
    version_3_is_unsupported_version,
    |l: &Lab| open_body_with(3, 65002, 90, l.hostile_ip),
    2,
    1
);
open_reset_case!(
    version_5_is_unsupported_version,
    |l: &Lab| open_body_with(5, 65002, 90, l.hostile_ip),
    2,
    1
);
open_reset_case!(
    another_as_is_bad_peer_as,
    |l: &Lab| raw::open(65099, 90, l.hostile_ip, &raw::default_caps(65099)),
    2,
    2
);
open_reset_case!(
    as_0_is_bad_peer_as,
    |l: &Lab| raw::open(0, 90, l.hostile_ip, &raw::default_caps(0)),
    2,
    2
);
open_reset_case!(
    four_octet_capability_disagreeing_with_my_as_is_bad_peer_as,
    |l: &Lab| {
        let caps = vec![raw::cap_mp(1, 1), raw::cap_as4(65099)];
        raw::open(HOSTILE_AS, 90, l.hostile_ip, &caps)
    },
    2,
    2
);
open_reset_case!(
    as_trans_without_the_four_octet_capability_is_bad_peer_as,
    |l: &Lab| raw::open(23456, 90, l.hostile_ip, &[raw::cap_mp(1, 1)]),
    2,
    2
);
open_reset_case!(
    bgp_identifier_0_is_bad_bgp_identifier,
    |_: &Lab| raw::open(
        HOSTILE_AS,
        90,
        Ipv4Addr::UNSPECIFIED,
        &raw::default_caps(HOSTILE_AS)
    ),
    2,
    3
);
open_reset_case!(
    hold_time_1_is_unacceptable,
    |l: &Lab| raw::open(HOSTILE_AS, 1, l.hostile_ip, &raw::default_caps(HOSTILE_AS)),
    2,
    6
);
open_reset_case!(
    hold_time_2_is_unacceptable,
    |l: &Lab| raw::open(HOSTILE_AS, 2, l.hostile_ip, &raw::default_caps(HOSTILE_AS)),
    2,
    6
);
open_reset_case!(
    capability_overrunning_its_parameter_is_malformed,
    |l: &Lab| open_params(l, 8, &[2, 6, 1, 10, 0, 1, 0, 1]),
    2,
    0
);
open_reset_case!(
    truncated_capability_header_is_malformed,
    |l: &Lab| open_params(l, 3, &[2, 1, 65]),
    2,
    0
);
open_reset_case!(
    multiprotocol_capability_of_length_3_is_malformed,
    |l: &Lab| open_params(l, 7, &[2, 5, 1, 3, 0, 1, 0]),
    2,
    0
);
open_reset_case!(
    four_octet_as_capability_of_length_2_is_malformed,
    |l: &Lab| open_params(l, 6, &[2, 4, 65, 2, 0xfd, 0xea]),
    2,
    0
);
open_reset_case!(
    parameter_overrunning_the_optional_parameters_is_malformed,
    |l: &Lab| open_params(l, 4, &[2, 10, 2, 0]),
    2,
    0
);
open_reset_case!(
    optional_parameters_length_beyond_the_message_is_malformed,
    |l: &Lab| {
        let params = raw::cap_params(&raw::default_caps(HOSTILE_AS));
        open_params(l, 200, &params)
    },
    2,
    0
);
open_reset_case!(
    bytes_after_the_optional_parameters_are_malformed,
    |l: &Lab| {
        let mut params = raw::cap_params(&raw::default_caps(HOSTILE_AS));
        let len = u8::try_from(params.len()).expect("fits");
        params.extend_from_slice(&[2, 0, 0]);
        open_params(l, len, &params)
    },
    2,
    0
);
open_reset_case!(
    unknown_optional_parameter_is_unsupported,
    |l: &Lab| {
        let mut params = raw::cap_params(&raw::default_caps(HOSTILE_AS));
        params.extend_from_slice(&[1, 2, 0xde, 0xad]);
        open_params(l, u8::try_from(params.len()).expect("fits"), &params)
    },
    2,
    4
);
open_reset_case!(
    open_longer_than_4096_is_bad_message_length,
    |l: &Lab| open_params(l, 255, &extended_params(1300)),
    1,
    2
);

/// RFC 4271 §6.2: the data of Unsupported Version Number is the version we support.
#[tokio::test]
async fn unsupported_version_names_version_4() {
    let lab = Lab::start().await;
    let mut w = lab.connect().await;
    w.send(&open_body_with(5, 65002, 90, lab.hostile_ip)).await;
    let n = lab.expect_open_reset(&mut w, 2, 1).await;
    assert_eq!(&n.data[..], &[0, 4]);
    lab.finish().await;
}

/// RFC 6286 §2.2: our own identifier from an internal peer is Bad BGP Identifier.
#[tokio::test]
async fn own_bgp_identifier_from_an_internal_peer_is_bad_bgp_identifier() {
    let lab = Lab::start_with(|p| p.asn = Asn(SUT_AS)).await;
    let mut w = lab.connect().await;
    w.send(&raw::open(
        SUT_AS,
        90,
        lab.sut_ip(),
        &raw::default_caps(SUT_AS),
    ))
    .await;
    lab.expect_open_reset(&mut w, 2, 3).await;
    lab.finish().await;
}

open_accepted_case!(
    /// RFC 6286 §2.2: only internal peers must differ from our identifier.
    own_bgp_identifier_from_an_external_peer_is_accepted,
    |l: &Lab| raw::open(HOSTILE_AS, 90, l.sut_ip(), &raw::default_caps(HOSTILE_AS))
);
open_accepted_case!(
    /// RFC 4271 §4.2: hold time 0 (no keepalives) is allowed.
    hold_time_0_is_accepted,
    |l: &Lab| raw::open(HOSTILE_AS, 0, l.hostile_ip, &raw::default_caps(HOSTILE_AS))
);
open_accepted_case!(hold_time_3_is_accepted, |l: &Lab| raw::open(
    HOSTILE_AS,
    3,
    l.hostile_ip,
    &raw::default_caps(HOSTILE_AS)
));
open_accepted_case!(
    /// RFC 5492 §4: handling repeats is capability-specific; identical repeats are harmless.
    duplicated_capabilities_are_accepted,
    |l: &Lab| {
        let mut caps = raw::default_caps(HOSTILE_AS);
        caps.extend(raw::default_caps(HOSTILE_AS));
        raw::open(HOSTILE_AS, 90, l.hostile_ip, &caps)
    }
);
open_accepted_case!(
    /// RFC 5492 §3: an unknown capability is ignored.
    unknown_capability_is_ignored,
    |l: &Lab| {
        let mut caps = raw::default_caps(HOSTILE_AS);
        caps.push(raw::cap(200, &[1, 2, 3, 4, 5]));
        raw::open(HOSTILE_AS, 90, l.hostile_ip, &caps)
    }
);
open_accepted_case!(
    /// RFC 5492 §4: several capabilities may share one optional parameter.
    capabilities_in_one_parameter_are_accepted,
    |l: &Lab| {
        let caps: Vec<u8> = raw::default_caps(HOSTILE_AS).concat();
        let mut params = vec![2, u8::try_from(caps.len()).expect("fits")];
        params.extend_from_slice(&caps);
        open_params(l, u8::try_from(params.len()).expect("fits"), &params)
    }
);
open_accepted_case!(
    /// RFC 9072: optional parameters longer than 255 octets, in the extended form.
    extended_optional_parameters_are_accepted,
    |l: &Lab| open_params(l, 255, &extended_params(200))
);

/// A session with a peer without the 4-octet AS capability (RFC 6793 §4.2): its OPEN,
/// KEEPALIVEs, the SUT's table read with 2-octet AS_PATHs.
async fn legacy_session(lab: &Lab) -> crate::harness::Wire {
    let caps = vec![raw::cap_mp(1, 1), raw::cap_mp(2, 1), raw::cap(2, &[])];
    let open = raw::open(HOSTILE_AS, 90, lab.hostile_ip, &caps);
    let mut w = lab.connect().await;
    w.set_legacy();
    w.send(&open).await;
    match w.recv().await {
        Some(crate::harness::Got::Msg(bgp_wire::Message::Open(_))) => {}
        other => panic!("expected OPEN, got {other:?}"),
    }
    w.send(&raw::keepalive()).await;
    w.expect_keepalive().await;
    w.read_table().await;
    w
}

/// A 2-octet AS_PATH attribute with one AS_SEQUENCE.
fn as_path2(asns: &[u16]) -> Vec<u8> {
    let mut v = vec![2, u8::try_from(asns.len()).expect("fits")];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    raw::attr(raw::WELL_KNOWN, 2, &v)
}

/// RFC 6793 §4.2.3: from a peer without the capability, AS_TRANS in AS_PATH is replaced by
/// the AS4_PATH's 4-octet ASNs.
#[tokio::test]
async fn as4_path_from_a_2_octet_peer_is_merged() {
    let lab = Lab::start().await;
    let mut w = legacy_session(&lab).await;
    let attrs = raw::cat(&[
        raw::origin(0),
        as_path2(&[65002, 23456]),
        raw::next_hop(lab.hostile_ip),
        raw::attr(raw::OPT_TRANS, 17, &raw::as_path_value(2, &[4_200_000_001])),
    ]);
    w.send(&raw::update(&[], &attrs, &raw::prefix(KEEP))).await;
    lab.wait_hostile_prefixes(&[KEEP]).await;
    let r = lab.sut_route(KEEP).await.expect("held");
    let path: Vec<u32> = r
        .attributes
        .attrs
        .as_path
        .as_ref()
        .expect("AS_PATH")
        .asns()
        .map(|a| a.0)
        .collect();
    assert_eq!(path, [65002, 4_200_000_001]);
    w.expect_no_notification().await;
    lab.finish_closing(w).await;
}

/// RFC 6793 §6 (RFC 7606 §7): a malformed AS4_PATH is discarded; the route stays with its
/// AS_PATH.
#[tokio::test]
async fn malformed_as4_path_from_a_2_octet_peer_is_discarded() {
    let lab = Lab::start().await;
    let mut w = legacy_session(&lab).await;
    let attrs = raw::cat(&[
        raw::origin(0),
        as_path2(&[65002, 23456]),
        raw::next_hop(lab.hostile_ip),
        raw::attr(raw::OPT_TRANS, 17, &[2, 3, 0, 0, 0, 1]),
    ]);
    w.send(&raw::update(&[], &attrs, &raw::prefix(KEEP))).await;
    lab.wait_hostile_prefixes(&[KEEP]).await;
    let r = lab.sut_route(KEEP).await.expect("held");
    let path: Vec<u32> = r
        .attributes
        .attrs
        .as_path
        .as_ref()
        .expect("AS_PATH")
        .asns()
        .map(|a| a.0)
        .collect();
    assert_eq!(path, [65002, 23456]);
    w.expect_no_notification().await;
    lab.finish_closing(w).await;
}

/// RFC 6793 §4.1: a peer with a 4-octet AS puts AS_TRANS in My Autonomous System and its AS
/// in the capability; the session establishes.
#[tokio::test]
async fn four_octet_peer_as_via_as_trans_is_accepted() {
    let lab = Lab::start_with(|p| p.asn = Asn(4_200_000_002)).await;
    let mut w = lab.session_with(&lab.open()).await;
    w.read_table().await;
    w.send(&lab.good_update(&[KEEP])).await;
    lab.wait_hostile_prefixes(&[KEEP]).await;
    lab.finish_closing(w).await;
}

/// RFC 4271 without any capability: IPv4 unicast, 2-octet AS numbers (RFC 4760 §7, RFC 6793
/// §4.2). The session establishes.
#[tokio::test]
async fn open_without_capabilities_is_accepted() {
    let lab = Lab::start().await;
    let open = raw::open(HOSTILE_AS, 90, lab.hostile_ip, &[]);
    let mut w = lab.connect().await;
    w.set_legacy();
    w.send(&open).await;
    match w.recv().await {
        Some(crate::harness::Got::Msg(bgp_wire::Message::Open(_))) => {}
        other => panic!("expected OPEN, got {other:?}"),
    }
    w.send(&raw::keepalive()).await;
    w.expect_keepalive().await;
    w.read_table().await;
    let attrs = raw::cat(&[
        raw::origin(0),
        as_path2(&[65002]),
        raw::next_hop(lab.hostile_ip),
    ]);
    w.send(&raw::update(&[], &attrs, &raw::prefix(KEEP))).await;
    lab.wait_hostile_prefixes(&[KEEP]).await;
    w.expect_no_notification().await;
    lab.finish_closing(w).await;
}

open_reset_case!(
    /// RFC 7607 §2: AS 0 in the 4-octet AS capability is Bad Peer AS.
    as_0_in_the_four_octet_capability_is_bad_peer_as,
    |l: &Lab| {
        let caps = vec![raw::cap_mp(1, 1), raw::cap_as4(0)];
        raw::msg(
            1,
            &raw::open_body(
                4,
                23456,
                90,
                l.hostile_ip,
                u8::try_from(raw::cap_params(&caps).len()).expect("fits"),
                &raw::cap_params(&caps),
            ),
        )
    },
    2,
    2
);
open_reset_case!(
    /// RFC 7607 §2: AS 0 in My Autonomous System is Bad Peer AS, whatever the capability says.
    as_0_in_my_autonomous_system_is_bad_peer_as,
    |l: &Lab| {
        let caps = raw::default_caps(HOSTILE_AS);
        raw::msg(
            1,
            &raw::open_body(
                4,
                0,
                90,
                l.hostile_ip,
                u8::try_from(raw::cap_params(&caps).len()).expect("fits"),
                &raw::cap_params(&caps),
            ),
        )
    },
    2,
    2
);
