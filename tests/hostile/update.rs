//! UPDATE errors (RFC 4271 §6.3 as revised by RFC 7606, RFC 4760, RFC 6793, RFC 8092):
//! treat-as-withdraw, attribute discard, and the session resets that remain.
//!
//! Every case starts from an Established session whose base routes (KEEP and VICTIM, KEEP6
//! and VICTIM6) the SUT holds; the bad UPDATE carries VICTIM (or VICTIM6).

use bgp_speaker::Route;

use crate::harness::{KEEP, KEEP6, Lab, VICTIM, VICTIM6};
use crate::raw::{self, OPT_TRANS, OPTIONAL, WELL_KNOWN, attr, cat};
use crate::reset_case;

/// Treat-as-withdraw: the UPDATE's prefixes are withdrawn, nothing else, no reset.
macro_rules! withdraw_case {
    ($(#[$m:meta])* $name:ident, $bytes:expr) => {
        withdraw_case!($(#[$m])* $name, $bytes, [KEEP, KEEP6, VICTIM6]);
    };
    ($(#[$m:meta])* $name:ident, $bytes:expr, [$($left:expr),*]) => {
        $(#[$m])*
        #[tokio::test]
        async fn $name() {
            let lab = Lab::start().await;
            let mut w = lab.established().await;
            lab.announce_base(&mut w).await;
            #[allow(clippy::redundant_closure_call)]
            let bytes: Vec<u8> = ($bytes)(&lab);
            w.send(&bytes).await;
            lab.expect_no_reset(&mut w, &[$($left),*]).await;
            lab.finish_closing(w).await;
        }
    };
}

/// Attribute discard: the UPDATE is applied without the bad attribute; `check` holds for
/// VICTIM's new route.
macro_rules! discard_case {
    ($(#[$m:meta])* $name:ident, $bytes:expr, $check:expr) => {
        $(#[$m])*
        #[tokio::test]
        async fn $name() {
            let lab = Lab::start().await;
            let mut w = lab.established().await;
            lab.announce_base(&mut w).await;
            #[allow(clippy::redundant_closure_call)]
            let bytes: Vec<u8> = ($bytes)(&lab);
            w.send(&bytes).await;
            lab.expect_no_reset(&mut w, &[KEEP, VICTIM, KEEP6, VICTIM6]).await;
            let r = lab.sut_route(VICTIM).await.expect("VICTIM is held");
            assert_eq!(r.attributes.attrs.med, Some(77), "the UPDATE was applied: {r:?}");
            #[allow(clippy::redundant_closure_call)]
            let ok: bool = ($check)(&r);
            assert!(ok, "unexpected attributes: {r:?}");
            lab.finish_closing(w).await;
        }
    };
}

/// An UPDATE for VICTIM with these attributes.
fn victim(attrs: &[Vec<u8>]) -> Vec<u8> {
    raw::update(&[], &cat(attrs), &raw::prefix(VICTIM))
}

/// An UPDATE for VICTIM: ORIGIN, AS_PATH, NEXT_HOP valid, MED 77, then `extra`.
fn victim_with(l: &Lab, extra: Vec<u8>) -> Vec<u8> {
    victim(&[l.good_attrs(), raw::med(77), extra])
}

/// An UPDATE for VICTIM6 (MP_REACH_NLRI) with these other attributes.
fn victim6(attrs: &[Vec<u8>]) -> Vec<u8> {
    let mp = raw::mp_reach(2, 1, &crate::harness::NH6, &raw::prefix(VICTIM6));
    let mut all = attrs.to_vec();
    all.push(mp);
    raw::update(&[], &cat(&all), &[])
}

fn path(l: &Lab) -> Vec<u8> {
    raw::as_path(&[l.hostile_as])
}

fn nh(l: &Lab) -> Vec<u8> {
    raw::next_hop(l.hostile_ip)
}

/// AS_PATH with this raw value.
fn path_value(value: &[u8]) -> Vec<u8> {
    attr(WELL_KNOWN, 2, value)
}

// RFC 7606 §7.1: ORIGIN.
withdraw_case!(origin_of_length_2_is_treat_as_withdraw, |l: &Lab| victim(
    &[attr(WELL_KNOWN, 1, &[0, 0]), path(l), nh(l)]
));
withdraw_case!(origin_value_3_is_treat_as_withdraw, |l: &Lab| victim(&[
    raw::origin(3),
    path(l),
    nh(l)
]));
withdraw_case!(
    /// RFC 7606 §3 (c): flags in conflict with the attribute's definition.
    origin_flagged_optional_is_treat_as_withdraw,
    |l: &Lab| victim(&[attr(OPTIONAL, 1, &[0]), path(l), nh(l)])
);
withdraw_case!(
    /// RFC 7606 §3 (d): a missing well-known mandatory attribute.
    missing_origin_is_treat_as_withdraw,
    |l: &Lab| victim(&[path(l), nh(l)])
);

// RFC 7606 §7.2: AS_PATH.
withdraw_case!(as_path_segment_type_5_is_treat_as_withdraw, |l: &Lab| {
    victim(&[
        raw::origin(0),
        path_value(&raw::as_path_value(5, &[l.hostile_as])),
        nh(l),
    ])
});
withdraw_case!(
    as_path_segment_overrunning_the_attribute_is_treat_as_withdraw,
    |l: &Lab| {
        let mut v = raw::as_path_value(2, &[l.hostile_as]);
        v[1] = 3;
        victim(&[raw::origin(0), path_value(&v), nh(l)])
    }
);
withdraw_case!(
    as_path_segment_of_length_0_is_treat_as_withdraw,
    |l: &Lab| victim(&[raw::origin(0), path_value(&[2, 0]), nh(l)])
);
withdraw_case!(
    as_path_with_a_trailing_partial_segment_is_treat_as_withdraw,
    |l: &Lab| {
        let mut v = raw::as_path_value(2, &[l.hostile_as]);
        v.push(2);
        victim(&[raw::origin(0), path_value(&v), nh(l)])
    }
);
withdraw_case!(
    /// RFC 7606 §7.2 (RFC 5065 §5.1): confederation segments from an external peer.
    as_confed_sequence_from_an_external_peer_is_treat_as_withdraw,
    |l: &Lab| {
        let mut v = raw::as_path_value(3, &[64_512]);
        v.extend(raw::as_path_value(2, &[l.hostile_as]));
        victim(&[raw::origin(0), path_value(&v), nh(l)])
    }
);
withdraw_case!(
    /// RFC 4271 §6.3, RFC 7606 §7.2: from an external peer the path starts with its AS.
    as_path_not_starting_with_the_peer_as_is_treat_as_withdraw,
    |l: &Lab| victim(&[raw::origin(0), raw::as_path(&[65_099, l.hostile_as]), nh(l)])
);
withdraw_case!(as_path_flagged_optional_is_treat_as_withdraw, |l: &Lab| {
    victim(&[
        raw::origin(0),
        attr(OPT_TRANS, 2, &raw::as_path_value(2, &[l.hostile_as])),
        nh(l),
    ])
});
withdraw_case!(missing_as_path_is_treat_as_withdraw, |l: &Lab| victim(&[
    raw::origin(0),
    nh(l)
]));

// RFC 7606 §7.3: NEXT_HOP.
withdraw_case!(next_hop_of_length_5_is_treat_as_withdraw, |l: &Lab| victim(
    &[
        raw::origin(0),
        path(l),
        attr(WELL_KNOWN, 3, &[10, 0, 0, 1, 0])
    ]
));
withdraw_case!(next_hop_0_0_0_0_is_treat_as_withdraw, |l: &Lab| victim(&[
    raw::origin(0),
    path(l),
    raw::next_hop("0.0.0.0".parse().expect("address"))
]));
withdraw_case!(multicast_next_hop_is_treat_as_withdraw, |l: &Lab| victim(
    &[
        raw::origin(0),
        path(l),
        raw::next_hop("224.0.0.5".parse().expect("address"))
    ]
));
withdraw_case!(
    /// RFC 4271 §6.3: a NEXT_HOP that is the receiving speaker's own address.
    next_hop_of_the_receiver_is_treat_as_withdraw,
    |l: &Lab| victim(&[raw::origin(0), path(l), raw::next_hop(l.sut_ip())])
);
withdraw_case!(missing_next_hop_is_treat_as_withdraw, |l: &Lab| victim(&[
    raw::origin(0),
    path(l)
]));

// RFC 7606 §7.4: MULTI_EXIT_DISC.
withdraw_case!(med_of_length_3_is_treat_as_withdraw, |l: &Lab| victim(&[
    l.good_attrs(),
    attr(OPTIONAL, 4, &[0, 0, 1])
]));
withdraw_case!(med_flagged_well_known_is_treat_as_withdraw, |l: &Lab| {
    victim(&[l.good_attrs(), attr(WELL_KNOWN, 4, &[0, 0, 0, 1])])
});

// RFC 7606 §7.8, §7.14, RFC 8092 §6: communities.
withdraw_case!(communities_of_length_5_is_treat_as_withdraw, |l: &Lab| {
    victim(&[l.good_attrs(), attr(OPT_TRANS, 8, &[0, 1, 0, 2, 3])])
});
withdraw_case!(communities_of_length_0_is_treat_as_withdraw, |l: &Lab| {
    victim(&[l.good_attrs(), attr(OPT_TRANS, 8, &[])])
});
withdraw_case!(
    large_communities_of_length_13_is_treat_as_withdraw,
    |l: &Lab| victim(&[l.good_attrs(), attr(OPT_TRANS, 32, &[1; 13])])
);
withdraw_case!(
    large_communities_of_length_0_is_treat_as_withdraw,
    |l: &Lab| victim(&[l.good_attrs(), attr(OPT_TRANS, 32, &[])])
);
withdraw_case!(
    extended_communities_of_length_7_is_treat_as_withdraw,
    |l: &Lab| victim(&[l.good_attrs(), attr(OPT_TRANS, 16, &[0, 2, 0, 1, 0, 0, 0])])
);

// RFC 7606 §4: attribute lengths that conflict with the Total Path Attribute Length.
withdraw_case!(
    attribute_length_overrunning_the_attributes_is_treat_as_withdraw,
    |l: &Lab| victim(&[l.good_attrs(), vec![OPTIONAL, 4, 10, 0, 0, 0, 1]])
);
withdraw_case!(
    two_octets_left_in_the_attributes_is_treat_as_withdraw,
    |l: &Lab| victim(&[l.good_attrs(), vec![OPTIONAL, 4]])
);
withdraw_case!(
    extended_length_with_one_length_octet_left_is_treat_as_withdraw,
    |l: &Lab| victim(&[l.good_attrs(), vec![OPTIONAL | 0x10, 4, 0]])
);

// IPv6 in MP_REACH_NLRI: treat-as-withdraw applies to its prefixes too.
withdraw_case!(
    mp_reach_without_origin_is_treat_as_withdraw,
    |l: &Lab| victim6(&[path(l)]),
    [KEEP, VICTIM, KEEP6]
);
withdraw_case!(
    mp_reach_with_a_bad_med_is_treat_as_withdraw,
    |l: &Lab| victim6(&[raw::origin(0), path(l), attr(OPTIONAL, 4, &[1])]),
    [KEEP, VICTIM, KEEP6]
);
withdraw_case!(
    /// Treat-as-withdraw covers both fields of an UPDATE that has both.
    treat_as_withdraw_covers_nlri_and_mp_reach,
    |l: &Lab| {
        let mp = raw::mp_reach(2, 1, &crate::harness::NH6, &raw::prefix(VICTIM6));
        let attrs = cat(&[raw::origin(9), path(l), nh(l), mp]);
        raw::update(&[], &attrs, &raw::prefix(VICTIM))
    },
    [KEEP, KEEP6]
);

// Attribute discard: RFC 7606 §7.5-§7.7, §7.9, §7.10; RFC 6793 §6.
discard_case!(
    atomic_aggregate_of_length_1_is_discarded,
    |l: &Lab| victim_with(l, attr(WELL_KNOWN, 6, &[0])),
    |r: &Route| !r.attributes.attrs.atomic_aggregate
);
discard_case!(
    aggregator_of_length_5_is_discarded,
    |l: &Lab| victim_with(l, attr(OPT_TRANS, 7, &[0, 0, 1, 2, 3])),
    |r: &Route| r.attributes.attrs.aggregator.is_none()
);
discard_case!(
    local_pref_from_an_external_peer_is_discarded,
    |l: &Lab| victim_with(l, attr(WELL_KNOWN, 5, &777u32.to_be_bytes())),
    |r: &Route| r.attributes.attrs.local_pref != Some(777)
);
discard_case!(
    local_pref_of_length_3_from_an_external_peer_is_discarded,
    |l: &Lab| victim_with(l, attr(WELL_KNOWN, 5, &[0, 3, 9])),
    |_: &Route| true
);
discard_case!(
    originator_id_of_length_3_from_an_external_peer_is_discarded,
    |l: &Lab| victim_with(l, attr(OPTIONAL, 9, &[1, 2, 3])),
    |r: &Route| r.attributes.attrs.originator_id.is_none()
);
discard_case!(
    cluster_list_of_length_5_from_an_external_peer_is_discarded,
    |l: &Lab| victim_with(l, attr(OPTIONAL, 10, &[1, 2, 3, 4, 5])),
    |r: &Route| r.attributes.attrs.cluster_list.is_none()
);
discard_case!(
    malformed_as4_path_is_discarded,
    |l: &Lab| victim_with(l, attr(OPT_TRANS, 17, &[2, 5, 0, 0])),
    |r: &Route| r.attributes.attrs.unknown.iter().all(|a| a.type_code != 17)
);
discard_case!(
    malformed_as4_aggregator_is_discarded,
    |l: &Lab| victim_with(l, attr(OPT_TRANS, 18, &[0, 0, 1, 2, 3, 4, 5])),
    |r: &Route| r.attributes.attrs.unknown.iter().all(|a| a.type_code != 18)
);
discard_case!(
    /// RFC 7606 §3 (g): of a repeated attribute, only the first counts.
    repeated_attribute_keeps_the_first,
    |l: &Lab| victim_with(l, raw::med(88)),
    |r: &Route| r.attributes.attrs.med == Some(77)
);
discard_case!(
    /// RFC 4271 §4.3: the extended length form may be used for a short attribute.
    extended_length_on_a_short_attribute_is_accepted,
    |l: &Lab| victim(&[
        attr(WELL_KNOWN | 0x10, 1, &[0]),
        path(l),
        nh(l),
        attr(OPTIONAL | 0x10, 4, &77u32.to_be_bytes())
    ]),
    |_: &Route| true
);
discard_case!(
    /// RFC 4271 §5: an unknown optional transitive attribute is kept (and passed on).
    unknown_optional_transitive_attribute_is_kept,
    |l: &Lab| victim_with(l, attr(OPT_TRANS, 250, &[1, 2, 3])),
    |r: &Route| r.attributes.attrs.unknown.iter().any(|a| a.type_code == 250)
);

// Session resets that remain (RFC 7606 §3 (g), §5.3, §7.11; RFC 4760 §7).
reset_case!(
    repeated_mp_reach_is_malformed_attribute_list,
    |l: &Lab| {
        let mp = raw::mp_reach(2, 1, &crate::harness::NH6, &raw::prefix(VICTIM6));
        raw::update(&[], &cat(&[raw::origin(0), path(l), mp.clone(), mp]), &[])
    },
    3,
    1
);
reset_case!(
    repeated_mp_unreach_is_malformed_attribute_list,
    |_: &Lab| {
        let mp = raw::mp_unreach(2, 1, &raw::prefix(VICTIM6));
        raw::update(&[], &cat(&[mp.clone(), mp]), &[])
    },
    3,
    1
);
reset_case!(
    total_attribute_length_beyond_the_message_is_malformed_attribute_list,
    |l: &Lab| {
        let attrs = l.good_attrs();
        let mut body = vec![0, 0];
        body.extend_from_slice(&u16::try_from(attrs.len() + 10).expect("fits").to_be_bytes());
        body.extend_from_slice(&attrs);
        raw::msg(2, &body)
    },
    3,
    1
);
reset_case!(
    withdrawn_length_beyond_the_message_is_malformed_attribute_list,
    |_: &Lab| raw::msg(2, &[0, 40, 24, 100, 64, 1, 0, 0]),
    3,
    1
);
reset_case!(
    nlri_prefix_length_33_is_invalid_network_field,
    |l: &Lab| raw::update(&[], &l.good_attrs(), &[33, 10, 0, 0, 0, 0]),
    3,
    10
);
reset_case!(
    truncated_nlri_is_invalid_network_field,
    |l: &Lab| raw::update(&[], &l.good_attrs(), &[24, 10]),
    3,
    10
);
reset_case!(
    withdrawn_prefix_length_33_is_invalid_network_field,
    |_: &Lab| raw::update(&[33, 10, 0, 0, 0, 0], &[], &[]),
    3,
    10
);
/// RFC 7606 §5.3: a prefix too long for its family in MP_REACH_NLRI is a session reset; the
/// subcode is Optional Attribute Error (RFC 4760 §7) or Invalid Network Field (RFC 4271
/// §6.3): both name the error.
#[tokio::test]
async fn mp_reach_prefix_length_129_is_a_reset() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    let mut nlri = vec![129];
    nlri.extend_from_slice(&[0x20; 17]);
    let mp = raw::mp_reach(2, 1, &crate::harness::NH6, &nlri);
    w.send(&raw::update(
        &[],
        &cat(&[raw::origin(0), path(&lab), mp]),
        &[],
    ))
    .await;
    let n = w.expect_notification().await;
    assert!(
        n.code == 3 && matches!(n.subcode, 9 | 10),
        "NOTIFICATION {:?}",
        n.names()
    );
    w.expect_closed().await;
    lab.wait_hostile_prefixes(&[]).await;
    lab.finish().await;
}
reset_case!(
    mp_reach_next_hop_of_length_5_is_optional_attribute_error,
    |l: &Lab| {
        let mp = raw::mp_reach(2, 1, &[0x20, 1, 0xd, 0xb8, 0], &raw::prefix(VICTIM6));
        raw::update(&[], &cat(&[raw::origin(0), path(l), mp]), &[])
    },
    3,
    9
);
reset_case!(
    mp_reach_ipv4_next_hop_of_length_3_is_optional_attribute_error,
    |l: &Lab| {
        let mp = raw::mp_reach(1, 1, &[10, 0, 0], &raw::prefix(VICTIM));
        raw::update(&[], &cat(&[raw::origin(0), path(l), mp]), &[])
    },
    3,
    9
);
reset_case!(
    truncated_mp_reach_is_optional_attribute_error,
    |l: &Lab| {
        let mp = attr(OPTIONAL, 14, &[0, 2]);
        raw::update(&[], &cat(&[raw::origin(0), path(l), mp]), &[])
    },
    3,
    9
);
reset_case!(
    /// RFC 4271 §6.3: an unrecognized well-known attribute.
    unrecognized_well_known_attribute_is_a_reset,
    |l: &Lab| victim_with(l, attr(WELL_KNOWN, 100, &[1, 2])),
    3,
    2
);

/// RFC 7606 §5.3 (RFC 4760 §7): a prefix too long for its family in MP_UNREACH_NLRI is a
/// session reset too.
#[tokio::test]
async fn mp_unreach_prefix_length_129_is_a_reset() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    let mut nlri = vec![129];
    nlri.extend_from_slice(&[0x20; 17]);
    w.send(&raw::update(&[], &raw::mp_unreach(2, 1, &nlri), &[]))
        .await;
    let n = w.expect_notification().await;
    assert!(
        n.code == 3 && matches!(n.subcode, 9 | 10),
        "NOTIFICATION {:?}",
        n.names()
    );
    w.expect_closed().await;
    lab.wait_hostile_prefixes(&[]).await;
    lab.finish().await;
}

/// RFC 4760 §3: an IPv6 next hop may carry a link-local address after the global one
/// (32 octets); the route is accepted with the global next hop.
#[tokio::test]
async fn ipv6_next_hop_with_a_link_local_address_is_accepted() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    let mut nh = crate::harness::NH6.to_vec();
    nh.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let mp = raw::mp_reach(2, 1, &nh, &raw::prefix("2001:db8:3::/48"));
    w.send(&raw::update(
        &[],
        &cat(&[raw::origin(0), path(&lab), mp]),
        &[],
    ))
    .await;
    lab.expect_no_reset(&mut w, &[KEEP, VICTIM, KEEP6, VICTIM6, "2001:db8:3::/48"])
        .await;
    let r = lab.sut_route("2001:db8:3::/48").await.expect("held");
    assert_eq!(r.next_hop(), Some("2001:db8::2".parse().expect("address")));
    lab.finish_closing(w).await;
}

/// RFC 4271 §5: an unrecognized optional non-transitive attribute is quietly ignored: the
/// route is accepted and the attribute is not passed on.
#[tokio::test]
async fn unknown_optional_non_transitive_attribute_is_not_passed_on() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    // A community marks the new version of VICTIM (MED is not passed to another AS).
    let community = attr(OPT_TRANS, 8, &[0xfd, 0xea, 0, 7]);
    w.send(&victim_with(
        &lab,
        cat(&[attr(OPTIONAL, 251, &[9, 9]), community]),
    ))
    .await;
    lab.expect_no_reset(&mut w, &[KEEP, VICTIM, KEEP6, VICTIM6])
        .await;
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    loop {
        let r = lab.witness_route(crate::harness::net(VICTIM)).await;
        if r.is_some_and(|r| r.attributes.attrs.communities.is_some()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the witness did not get VICTIM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = lab
        .witness_route(crate::harness::net(VICTIM))
        .await
        .expect("held");
    assert!(
        r.attributes
            .attrs
            .unknown
            .iter()
            .all(|a| a.type_code != 251),
        "passed on: {r:?}"
    );
    lab.finish_closing(w).await;
}

/// RFC 4271 §9.1.2: a route whose AS_PATH holds our own AS is a loop: not installed (and a
/// previous route for the prefix is gone), no reset.
#[tokio::test]
async fn as_path_with_our_own_as_is_ignored() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    w.send(&victim(&[
        raw::origin(0),
        raw::as_path(&[lab.hostile_as, crate::harness::SUT_AS]),
        nh(&lab),
    ]))
    .await;
    lab.expect_no_reset(&mut w, &[KEEP, KEEP6, VICTIM6]).await;
    lab.finish_closing(w).await;
}

/// A peer that withdraws what another peer announced changes nothing (RFC 4271 §3.1: a
/// withdrawal only concerns routes the same peer advertised).
#[tokio::test]
async fn withdrawing_the_witnesss_routes_changes_nothing() {
    let mut lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    let wp = raw::prefixes(&crate::harness::WITNESS_PREFIXES);
    let sp = raw::prefix(crate::harness::SUT_PREFIX);
    w.send(&raw::update(&[wp, sp].concat(), &[], &[])).await;
    lab.expect_no_reset(&mut w, &[KEEP, VICTIM, KEEP6, VICTIM6])
        .await;
    lab.assert_witness_intact().await;
    assert!(lab.sut_route(crate::harness::SUT_PREFIX).await.is_some());
    lab.finish_closing(w).await;
}

/// RFC 4760 §3: IPv4 unicast routes may come in MP_REACH_NLRI (with no NEXT_HOP attribute)
/// and go in MP_UNREACH_NLRI.
#[tokio::test]
async fn ipv4_routes_in_mp_reach_and_mp_unreach_are_accepted() {
    let lab = Lab::start().await;
    let mut w = lab.established().await;
    lab.announce_base(&mut w).await;
    let ip = lab.hostile_ip.octets();
    let mp = raw::mp_reach(1, 1, &ip, &raw::prefix("100.64.9.0/24"));
    w.send(&raw::update(
        &[],
        &cat(&[raw::origin(0), path(&lab), mp]),
        &[],
    ))
    .await;
    w.send(&raw::update(
        &[],
        &raw::mp_unreach(1, 1, &raw::prefix(VICTIM)),
        &[],
    ))
    .await;
    lab.expect_no_reset(&mut w, &[KEEP, KEEP6, VICTIM6, "100.64.9.0/24"])
        .await;
    let r = lab.sut_route("100.64.9.0/24").await.expect("held");
    assert_eq!(r.next_hop(), Some(std::net::IpAddr::V4(lab.hostile_ip)));
    lab.finish_closing(w).await;
}

withdraw_case!(
    /// RFC 4271 §6.3, RFC 7606 §7.2: from an external peer an empty AS_PATH does not start
    /// with the peer's AS: treat-as-withdraw.
    empty_as_path_from_an_external_peer_is_treat_as_withdraw,
    |l: &Lab| victim(&[raw::origin(0), path_value(&[]), nh(l)])
);

withdraw_case!(
    /// An UPDATE that only withdraws, with a malformed attribute beside: the withdrawal is
    /// carried out, no reset (RFC 7606 §2: treat-as-withdraw of nothing more).
    withdrawal_with_a_malformed_attribute_still_withdraws,
    |_: &Lab| raw::update(&raw::prefix(VICTIM), &attr(WELL_KNOWN, 1, &[0, 0]), &[])
);

withdraw_case!(
    /// RFC 7607 §2: AS 0 in AS_PATH makes it malformed (treat-as-withdraw, RFC 7606 §7.2).
    as_0_in_as_path_is_treat_as_withdraw,
    |l: &Lab| victim(&[raw::origin(0), raw::as_path(&[l.hostile_as, 0]), nh(l)])
);

discard_case!(
    /// RFC 7607 §2: AS 0 in AGGREGATOR makes it malformed (attribute discard, RFC 7606
    /// §7.7).
    as_0_in_aggregator_is_discarded,
    |l: &Lab| victim_with(l, attr(OPT_TRANS, 7, &[0, 0, 0, 0, 10, 0, 0, 1])),
    |r: &Route| r.attributes.attrs.aggregator.is_none()
);

withdraw_case!(
    /// RFC 9234 §5: an OTC attribute whose length is not 4 is treat-as-withdraw.
    otc_of_length_3_is_treat_as_withdraw,
    |l: &Lab| victim(&[l.good_attrs(), attr(OPT_TRANS, 35, &[0, 0, 1])])
);
