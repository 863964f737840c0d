//! Checks on the peer's OPEN that depend on configuration, each with the NOTIFICATION that
//! RFC 4271 §6.2 and its extensions prescribe. (What is structurally wrong, including the
//! version, was already refused by the codec.)

use bytes::BytesMut;

use bgp_wire::capability::Capability;
use bgp_wire::notification::{code, open_subcode};
use bgp_wire::{Asn, Notification, Open};

use crate::config::SessionConfig;

/// Checks the peer's OPEN against our configuration and our own OPEN. The order of the checks
/// is: peer AS, BGP identifier, hold time, optional parameters, required capabilities, role.
pub fn validate_open(cfg: &SessionConfig, local: &Open, peer: &Open) -> Result<(), Notification> {
    let open_err = |sub| Notification::new(code::OPEN_MESSAGE, sub);
    let peer_asn = peer.asn();
    // RFC 7607 §2: AS 0 is Bad Peer AS. RFC 6793 §4.1: a 4-octet capability with a 2-octet
    // value must match the 2-octet field.
    let inconsistent = peer
        .four_octet_as()
        .is_some_and(|a| a.is_two_octet() && a.to_two_octet() != peer.my_as);
    let wrong = cfg.peer_asn.is_some_and(|want| want != peer_asn);
    if peer_asn == Asn(0) || peer.my_as == 0 || inconsistent || wrong {
        return Err(open_err(open_subcode::BAD_PEER_AS));
    }
    // RFC 6286 §2.2: zero, or ours on an internal session.
    let id = u32::from(peer.bgp_id);
    if id == 0 || (peer.bgp_id == cfg.bgp_id && peer_asn == cfg.local_asn) {
        return Err(open_err(open_subcode::BAD_BGP_IDENTIFIER));
    }
    // RFC 4271 §6.2: hold time 1 or 2 MUST be refused.
    if matches!(peer.hold_time, 1 | 2) {
        return Err(open_err(open_subcode::UNACCEPTABLE_HOLD_TIME));
    }
    // RFC 4271 §6.2: an optional parameter we do not recognize.
    if !peer.other_params.is_empty() {
        return Err(open_err(open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER));
    }
    // RFC 5492 §5: the data lists the capabilities the peer lacks.
    let mut missing = BytesMut::new();
    for c in &local.capabilities {
        if !cfg.required_capabilities.contains(&c.code()) {
            continue;
        }
        let present = match c {
            Capability::Multiprotocol(_) => peer.capabilities.contains(c),
            _ => peer.has_capability(c.code()),
        };
        if !present {
            // Our own capabilities encoded when our OPEN was built; this cannot fail then.
            let _ = c.encode(&mut missing);
        }
    }
    if !missing.is_empty() {
        return Err(Notification::with_data(
            code::OPEN_MESSAGE,
            open_subcode::UNSUPPORTED_CAPABILITY,
            missing.freeze(),
        ));
    }
    check_role(cfg, peer, peer_asn).map_err(|()| open_err(open_subcode::ROLE_MISMATCH))
}

/// RFC 9234 §4.2: on eBGP sessions, both roles must pair up (Table 2); several role
/// capabilities must agree; in strict mode the peer must send one.
fn check_role(cfg: &SessionConfig, peer: &Open, peer_asn: Asn) -> Result<(), ()> {
    let Some(ours) = cfg.role else {
        return Ok(());
    };
    if peer_asn == cfg.local_asn {
        return Ok(());
    }
    let mut roles = peer.capabilities.iter().filter_map(|c| match c {
        Capability::Role(r) => Some(*r),
        _ => None,
    });
    let Some(theirs) = roles.next() else {
        return if cfg.strict_role { Err(()) } else { Ok(()) };
    };
    if roles.any(|r| r != theirs) || ours.expected_peer_role() != Some(theirs) {
        return Err(());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_wire::AfiSafi;
    use bgp_wire::capability::{Role, code as cap_code};
    use bgp_wire::open::OptionalParameter;
    use bytes::Bytes;
    use std::net::Ipv4Addr;

    fn cfg() -> SessionConfig {
        SessionConfig {
            local_asn: Asn(65000),
            peer_asn: Some(Asn(65001)),
            bgp_id: Ipv4Addr::new(10, 0, 0, 1),
            ..SessionConfig::default()
        }
    }

    fn local() -> Open {
        Open::new(
            Asn(65000),
            90,
            Ipv4Addr::new(10, 0, 0, 1),
            vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::RouteRefresh,
            ],
        )
    }

    fn peer(asn: u32) -> Open {
        Open::new(
            Asn(asn),
            90,
            Ipv4Addr::new(10, 0, 0, 2),
            vec![Capability::Multiprotocol(AfiSafi::IPV4_UNICAST)],
        )
    }

    fn sub(r: Result<(), Notification>) -> (u8, u8) {
        let n = r.unwrap_err();
        (n.code, n.subcode)
    }

    #[test]
    fn good_open_passes() {
        assert_eq!(validate_open(&cfg(), &local(), &peer(65001)), Ok(()));
    }

    #[test]
    fn bad_peer_as_rfc4271_6_2() {
        assert_eq!(sub(validate_open(&cfg(), &local(), &peer(65002))), (2, 2));
    }

    #[test]
    fn four_octet_peer_as_via_capability_rfc6793() {
        let c = SessionConfig {
            peer_asn: Some(Asn(4_200_000_001)),
            ..cfg()
        };
        let p = peer(4_200_000_001);
        assert_eq!(p.my_as, 23456);
        assert_eq!(validate_open(&c, &local(), &p), Ok(()));
        // The same OPEN without the capability says AS_TRANS: not our peer.
        let mut legacy = p.clone();
        legacy
            .capabilities
            .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
        assert_eq!(sub(validate_open(&c, &local(), &legacy)), (2, 2));
        // A 2-octet capability value that contradicts the 2-octet field.
        let mut odd = peer(65001);
        odd.my_as = 65009;
        assert_eq!(sub(validate_open(&cfg(), &local(), &odd)), (2, 2));
    }

    #[test]
    fn peer_as_zero_rfc7607() {
        let c = SessionConfig {
            peer_asn: None,
            ..cfg()
        };
        assert_eq!(sub(validate_open(&c, &local(), &peer(0))), (2, 2));
    }

    #[test]
    fn bad_bgp_identifier_rfc6286() {
        let mut p = peer(65001);
        p.bgp_id = Ipv4Addr::UNSPECIFIED;
        assert_eq!(sub(validate_open(&cfg(), &local(), &p)), (2, 3));
        // Our own identifier on eBGP is allowed (RFC 6286 §2.2) ...
        p.bgp_id = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(validate_open(&cfg(), &local(), &p), Ok(()));
        // ... but not on iBGP.
        let ibgp = SessionConfig {
            peer_asn: Some(Asn(65000)),
            ..cfg()
        };
        let mut p = peer(65000);
        p.bgp_id = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(sub(validate_open(&ibgp, &local(), &p)), (2, 3));
    }

    #[test]
    fn hold_time_one_or_two_rfc4271_6_2() {
        for (h, ok) in [(0, true), (1, false), (2, false), (3, true)] {
            let mut p = peer(65001);
            p.hold_time = h;
            let r = validate_open(&cfg(), &local(), &p);
            if ok {
                assert_eq!(r, Ok(()));
            } else {
                assert_eq!(sub(r), (2, 6));
            }
        }
    }

    #[test]
    fn unknown_optional_parameter() {
        let mut p = peer(65001);
        p.other_params.push(OptionalParameter {
            kind: 1,
            value: Bytes::new(),
        });
        assert_eq!(sub(validate_open(&cfg(), &local(), &p)), (2, 4));
    }

    #[test]
    fn required_capability_missing_lists_it_rfc5492_5() {
        let c = SessionConfig {
            required_capabilities: vec![cap_code::ROUTE_REFRESH, cap_code::MULTIPROTOCOL],
            ..cfg()
        };
        let n = validate_open(&c, &local(), &peer(65001)).unwrap_err();
        assert_eq!((n.code, n.subcode), (2, 7));
        assert_eq!(&n.data[..], &[2, 0]);
        let mut p = peer(65001);
        p.capabilities = vec![Capability::RouteRefresh];
        let n = validate_open(&c, &local(), &p).unwrap_err();
        assert_eq!(&n.data[..], &[1, 4, 0, 1, 0, 1]);
    }

    #[test]
    fn role_mismatch_rfc9234() {
        let c = SessionConfig {
            role: Some(Role::Provider),
            ..cfg()
        };
        let with = |roles: &[Role]| {
            let mut p = peer(65001);
            p.capabilities
                .extend(roles.iter().map(|r| Capability::Role(*r)));
            p
        };
        assert_eq!(
            validate_open(&c, &local(), &with(&[Role::Customer])),
            Ok(())
        );
        assert_eq!(
            sub(validate_open(&c, &local(), &with(&[Role::Peer]))),
            (2, 11)
        );
        assert_eq!(
            sub(validate_open(
                &c,
                &local(),
                &with(&[Role::Customer, Role::Peer])
            )),
            (2, 11)
        );
        assert_eq!(
            sub(validate_open(&c, &local(), &with(&[Role::Unknown(9)]))),
            (2, 11)
        );
        // No role from the peer: fine unless strict.
        assert_eq!(validate_open(&c, &local(), &with(&[])), Ok(()));
        let strict = SessionConfig {
            strict_role: true,
            ..c.clone()
        };
        assert_eq!(sub(validate_open(&strict, &local(), &with(&[]))), (2, 11));
        // Roles do not apply to iBGP.
        let ibgp = SessionConfig {
            peer_asn: Some(Asn(65000)),
            ..strict
        };
        assert_eq!(validate_open(&ibgp, &local(), &peer(65000)), Ok(()));
    }
}
