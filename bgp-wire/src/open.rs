//! OPEN messages (RFC 4271 §4.2) with capabilities (RFC 5492) and extended optional
//! parameters length (RFC 9072).
//!
//! The codec checks structure only: version 4, optional parameter lengths that fit, and well
//! formed capabilities. What depends on configuration (peer AS, BGP identifier, hold time,
//! required capabilities, role) is checked by the session state machine in `bgp-fsm`.
//!
//! # Layout on encode
//!
//! Each capability is written in an optional parameter of its own (type 2), the layout FRR,
//! GoBGP and Cisco use and RFC 5492 §4 allows; the other optional parameters follow, in order.
//! The RFC 9072 extended form is used only when the optional parameters exceed 255 octets.
//! On decode, capabilities from every Capabilities parameter are gathered in order, so an OPEN
//! that packed several capabilities into one parameter decodes to the same [`Open`] but
//! re-encodes with one parameter per capability.

use std::net::Ipv4Addr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::capability::Capability;
use crate::error::{DecodeError, EncodeError, ErrorKind};
use crate::reader::Reader;
use crate::types::Asn;

/// The only BGP version there is (RFC 4271 §4.2).
pub const BGP_VERSION: u8 = 4;
/// Optional parameter type: Capabilities (RFC 5492 §4).
pub const PARAM_CAPABILITIES: u8 = 0x02;
/// Optional parameter type that marks the extended encoding (RFC 9072 §2).
pub const PARAM_EXTENDED_LENGTH: u8 = 0xff;

/// An OPEN message (RFC 4271 §4.2, RFC 9072 §2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Open {
    /// The protocol version; decoding accepts only [`BGP_VERSION`].
    pub version: u8,
    /// The 2-octet My Autonomous System field: the ASN, or AS_TRANS for a 4-octet ASN
    /// (RFC 6793 §3). See [`Open::asn`] for the speaker's real ASN.
    pub my_as: u16,
    /// The proposed hold time in seconds (0, or at least 3: checked by the session).
    pub hold_time: u16,
    /// The BGP Identifier.
    pub bgp_id: Ipv4Addr,
    /// The capabilities of every Capabilities optional parameter, in order (RFC 5492 §4).
    pub capabilities: Vec<Capability>,
    /// Every other optional parameter, in order, kept as it came.
    pub other_params: Vec<OptionalParameter>,
}

/// An optional parameter other than Capabilities (RFC 4271 §4.2), kept raw. Type 1
/// (Authentication) is deprecated (RFC 5492 §7); others are unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OptionalParameter {
    /// The parameter type; neither [`PARAM_CAPABILITIES`] nor [`PARAM_EXTENDED_LENGTH`].
    pub kind: u8,
    /// The parameter value.
    pub value: Bytes,
}

impl Open {
    /// An OPEN for `asn` with the given hold time, identifier and capabilities, version 4.
    ///
    /// The 2-octet field gets the ASN, or AS_TRANS when it needs 4 octets (RFC 6793 §3).
    /// If `capabilities` holds no 4-octet AS capability, one carrying `asn` is appended (a
    /// modern speaker always sends it; build the struct directly for a 2-octet-only speaker).
    /// Nothing else is added.
    pub fn new(asn: Asn, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        let mut capabilities = capabilities;
        if !capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
        {
            capabilities.push(Capability::FourOctetAs(asn));
        }
        Open {
            version: BGP_VERSION,
            my_as: asn.to_two_octet(),
            hold_time,
            bgp_id,
            capabilities,
            other_params: Vec::new(),
        }
    }

    /// The value of the 4-octet AS capability, if the OPEN carries one (RFC 6793 §3).
    pub fn four_octet_as(&self) -> Option<Asn> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }

    /// The speaker's ASN: the 4-octet AS capability's value if present, else the 2-octet
    /// field (RFC 6793 §4.1).
    pub fn asn(&self) -> Asn {
        self.four_octet_as().unwrap_or(Asn(u32::from(self.my_as)))
    }

    /// Whether the OPEN lists a capability with this code.
    pub fn has_capability(&self, code: u8) -> bool {
        self.capabilities.iter().any(|c| c.code() == code)
    }

    /// Decodes the body of an OPEN (after the 19-octet header); `offset` is the body's position
    /// in the message, for errors.
    ///
    /// Errors: a version other than 4 is [`ErrorKind::UnsupportedVersion`] with the data of
    /// RFC 4271 §6.2 (the 2-octet version 4); optional parameter lengths that overrun or fall
    /// short of the message, and malformed capabilities, are [`ErrorKind::MalformedOpen`] at
    /// the offset of the offending length or parameter.
    pub fn decode(body: Bytes, offset: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body, offset);
        let version = r.u8("OPEN version")?;
        if version != BGP_VERSION {
            return Err(DecodeError::new(
                ErrorKind::UnsupportedVersion(version),
                "OPEN version",
                offset,
            )
            .with_data(Bytes::from_static(&[0, BGP_VERSION])));
        }
        let my_as = r.u16("OPEN my AS")?;
        let hold_time = r.u16("OPEN hold time")?;
        let bgp_id = Ipv4Addr::from(r.array::<4>("OPEN BGP identifier")?);
        let len_at = r.offset();
        let malformed = |what, at| {
            DecodeError::new(
                ErrorKind::MalformedOpen(what),
                "OPEN optional parameters",
                at,
            )
        };
        let opt_len = r.u8("OPEN optional parameters length")?;
        // RFC 9072 §2: a non-zero length followed by type 255 announces the extended form.
        let extended = opt_len != 0 && r.peek_rest().first() == Some(&PARAM_EXTENDED_LENGTH);
        let params_len = if extended {
            let _ = r.u8("OPEN non-ext OP type")?;
            r.u16("OPEN extended optional parameters length")
                .map_err(|_| malformed("extended optional parameters length truncated", len_at))?
        } else {
            u16::from(opt_len)
        };
        let params_len = usize::from(params_len);
        if params_len != r.remaining() {
            return Err(malformed(
                "optional parameters length does not match the message length",
                len_at,
            ));
        }
        let mut capabilities = Vec::new();
        let mut other_params = Vec::new();
        while !r.is_empty() {
            let at = r.offset();
            let kind = r.u8("OPEN optional parameter type")?;
            let len = if extended {
                r.u16("OPEN optional parameter length")
                    .map_err(|_| malformed("optional parameter header truncated", at))?
            } else {
                r.u8("OPEN optional parameter length")
                    .map(u16::from)
                    .map_err(|_| malformed("optional parameter header truncated", at))?
            };
            let value_at = r.offset();
            let value = r
                .take(usize::from(len), "OPEN optional parameter value")
                .map_err(|_| malformed("optional parameter length overruns the message", at))?;
            if kind == PARAM_CAPABILITIES {
                capabilities.extend(Capability::decode_all(value, value_at)?);
            } else {
                other_params.push(OptionalParameter { kind, value });
            }
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id,
            capabilities,
            other_params,
        })
    }

    /// The length of the optional parameters in the basic form (1-octet parameter lengths),
    /// or `None` when they do not fit it.
    fn basic_params_len(&self) -> Option<usize> {
        let mut total = 0usize;
        for c in &self.capabilities {
            total += 2 + c.encoded_len();
        }
        for p in &self.other_params {
            total += 2 + p.value.len();
        }
        (total <= 0xff).then_some(total)
    }

    /// Writes the body of an OPEN. Errors: a capability that does not encode, an optional
    /// parameter of type 2 or 255 in `other_params`, or parameters too long even for the
    /// extended form. On error `out` is left as it was.
    pub fn encode_body(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let r = self.encode_inner(out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn encode_inner(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        if self
            .other_params
            .iter()
            .any(|p| p.kind == PARAM_CAPABILITIES || p.kind == PARAM_EXTENDED_LENGTH)
        {
            return Err(EncodeError::Invalid(
                "optional parameter of type 2 or 255 in other_params",
            ));
        }
        out.put_u8(self.version);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_id.octets());
        let extended = self.basic_params_len().is_none();
        let len_at = out.len();
        if extended {
            out.put_slice(&[0xff, PARAM_EXTENDED_LENGTH, 0, 0]);
        } else {
            out.put_u8(0);
        }
        let params_start = out.len();
        let put_len = |out: &mut BytesMut, len: usize| {
            if extended {
                out.put_u16(len as u16);
            } else {
                out.put_u8(len as u8);
            }
        };
        for c in &self.capabilities {
            // A capability is at most 257 octets, so its parameter length always fits.
            out.put_u8(PARAM_CAPABILITIES);
            put_len(out, c.encoded_len());
            c.encode(out)?;
        }
        for p in &self.other_params {
            out.put_u8(p.kind);
            let len = p.value.len();
            if len > usize::from(u16::MAX) || (!extended && len > 0xff) {
                return Err(EncodeError::FieldTooLong {
                    field: "OPEN optional parameter",
                    len,
                });
            }
            put_len(out, len);
            out.put_slice(&p.value);
        }
        let total = out.len() - params_start;
        if extended {
            let t = u16::try_from(total).map_err(|_| EncodeError::FieldTooLong {
                field: "OPEN optional parameters",
                len: total,
            })?;
            if let Some(s) = out.get_mut(len_at + 2..len_at + 4) {
                s.copy_from_slice(&t.to_be_bytes());
            }
        } else if let Some(b) = out.get_mut(len_at) {
            *b = total as u8;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{
        AddPath, AddPathFamily, AddPathMode, Fqdn, GracefulRestart, GracefulRestartFamily,
        LlgrFamily, LongLivedGracefulRestart, Role, arb,
    };
    use crate::context::Context;
    use crate::message::Message;
    use crate::notification::{code, open_subcode};
    use crate::types::AfiSafi;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn hdr(len: usize) -> Vec<u8> {
        let mut v = vec![0xff; 16];
        v.extend_from_slice(&(len as u16).to_be_bytes());
        v.push(1);
        v
    }

    fn message(body: &[u8]) -> Bytes {
        let mut v = hdr(19 + body.len());
        v.extend_from_slice(body);
        Bytes::from(v)
    }

    fn decode(body: &[u8]) -> Result<Message, DecodeError> {
        Message::decode(message(body), &Context::default())
    }

    /// An OPEN with the capabilities FRR sends when graceful restart, LLGR, ADD-PATH, a role
    /// and extended messages are configured, in FRR's layout (one capability per optional
    /// parameter, RFC 5492 §4), AS 4200000001 with AS_TRANS in the 2-octet field. Written by
    /// hand from the RFC layouts, not captured.
    fn frr_body() -> Vec<u8> {
        let mut b = vec![
            0x04, // version
            0x5b, 0xa0, // my AS: AS_TRANS 23456
            0x00, 0xb4, // hold time 180
            0x0a, 0x00, 0x00, 0x01, // BGP identifier 10.0.0.1
            0x00, // optional parameters length, patched below
        ];
        let params: &[&[u8]] = &[
            &[0x02, 0x06, 0x01, 0x04, 0x00, 0x01, 0x00, 0x01], // MP IPv4 unicast
            &[0x02, 0x06, 0x01, 0x04, 0x00, 0x02, 0x00, 0x01], // MP IPv6 unicast
            &[0x02, 0x02, 0x02, 0x00],                         // route refresh
            &[0x02, 0x02, 0x46, 0x00],                         // enhanced route refresh
            &[0x02, 0x06, 0x41, 0x04, 0xfa, 0x56, 0xea, 0x01], // 4-octet AS 4200000001
            &[0x02, 0x06, 0x45, 0x04, 0x00, 0x01, 0x01, 0x03], // ADD-PATH IPv4 unicast both
            &[0x02, 0x03, 0x09, 0x01, 0x03],                   // role: customer
            &[0x02, 0x02, 0x06, 0x00],                         // extended message
            // FQDN: "frr1", "lab.example"
            b"\x02\x13\x49\x11\x04frr1\x0blab.example",
            // GR: R bit, restart time 120, IPv4 and IPv6 unicast with F bit
            &[
                0x02, 0x0c, 0x40, 0x0a, 0x80, 0x78, 0x00, 0x01, 0x01, 0x80, 0x00, 0x02, 0x01, 0x80,
            ],
            // LLGR: IPv4 unicast, stale time 3600
            &[
                0x02, 0x09, 0x47, 0x07, 0x00, 0x01, 0x01, 0x00, 0x00, 0x0e, 0x10,
            ],
        ];
        for p in params {
            b.extend_from_slice(p);
        }
        b[9] = (b.len() - 10) as u8;
        b
    }

    fn frr_open() -> Open {
        Open {
            version: 4,
            my_as: 23456,
            hold_time: 180,
            bgp_id: Ipv4Addr::new(10, 0, 0, 1),
            capabilities: vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
                Capability::RouteRefresh,
                Capability::EnhancedRouteRefresh,
                Capability::FourOctetAs(Asn(4_200_000_001)),
                Capability::AddPath(AddPath {
                    families: vec![AddPathFamily {
                        afi_safi: AfiSafi::IPV4_UNICAST,
                        mode: AddPathMode::Both,
                    }],
                }),
                Capability::Role(Role::Customer),
                Capability::ExtendedMessage,
                Capability::Fqdn(Fqdn::new("frr1", "lab.example")),
                Capability::GracefulRestart(GracefulRestart {
                    flags: GracefulRestart::RESTART_STATE,
                    restart_time: 120,
                    families: vec![
                        GracefulRestartFamily::new(AfiSafi::IPV4_UNICAST, true),
                        GracefulRestartFamily::new(AfiSafi::IPV6_UNICAST, true),
                    ],
                }),
                Capability::LongLivedGracefulRestart(LongLivedGracefulRestart {
                    families: vec![LlgrFamily {
                        afi_safi: AfiSafi::IPV4_UNICAST,
                        flags: 0,
                        stale_time: 3600,
                    }],
                }),
            ],
            other_params: vec![],
        }
    }

    #[test]
    fn frr_open_both_ways() {
        let body = frr_body();
        let open = frr_open();
        assert_eq!(decode(&body).unwrap(), Message::Open(open.clone()));
        let bytes = Message::Open(open.clone())
            .to_bytes(&Context::default())
            .unwrap();
        assert_eq!(bytes, message(&body));
        assert_eq!(open.asn(), Asn(4_200_000_001));
        assert_eq!(open.four_octet_as(), Some(Asn(4_200_000_001)));
        assert!(open.has_capability(crate::capability::code::GRACEFUL_RESTART));
    }

    #[test]
    fn new_puts_as_trans_and_adds_the_four_octet_capability() {
        let id = Ipv4Addr::new(192, 0, 2, 1);
        let o = Open::new(Asn(4_200_000_001), 90, id, vec![Capability::RouteRefresh]);
        assert_eq!(o.my_as, 23456);
        assert_eq!(o.version, 4);
        assert_eq!(
            o.capabilities,
            vec![
                Capability::RouteRefresh,
                Capability::FourOctetAs(Asn(4_200_000_001))
            ]
        );
        let o = Open::new(
            Asn(65001),
            90,
            id,
            vec![Capability::FourOctetAs(Asn(65001))],
        );
        assert_eq!(o.my_as, 65001);
        assert_eq!(o.capabilities.len(), 1);
        assert_eq!(o.asn(), Asn(65001));
    }

    #[test]
    fn asn_without_capability_is_the_two_octet_field() {
        let o = decode(&[4, 0xfd, 0xe9, 0, 90, 1, 1, 1, 1, 0]).unwrap();
        let Message::Open(o) = o else { panic!() };
        assert_eq!(o.asn(), Asn(65001));
        assert_eq!(o.four_octet_as(), None);
        assert!(o.capabilities.is_empty());
    }

    #[test]
    fn several_capabilities_in_one_parameter_like_bird() {
        let body = [
            4, 0xfd, 0xe9, 0, 240, 1, 2, 3, 4, 12, // fixed part
            2, 10, 1, 4, 0, 1, 0, 1, 2, 0, 0x46, 0, // one parameter, three capabilities
        ];
        let Message::Open(o) = decode(&body).unwrap() else {
            panic!()
        };
        assert_eq!(
            o.capabilities,
            vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::RouteRefresh,
                Capability::EnhancedRouteRefresh
            ]
        );
    }

    #[test]
    fn other_parameters_kept_raw() {
        let body = [4, 0, 1, 0, 0, 1, 2, 3, 4, 9, 1, 3, 9, 9, 9, 2, 2, 2, 0];
        let Message::Open(o) = decode(&body).unwrap() else {
            panic!()
        };
        assert_eq!(
            o.other_params,
            vec![OptionalParameter {
                kind: 1,
                value: Bytes::from_static(&[9, 9, 9])
            }]
        );
        assert_eq!(o.capabilities, vec![Capability::RouteRefresh]);
        // Re-encoded: capabilities first, then the other parameters.
        let mut out = BytesMut::new();
        o.encode_body(&mut out).unwrap();
        assert_eq!(
            &out[..],
            &[4, 0, 1, 0, 0, 1, 2, 3, 4, 9, 2, 2, 2, 0, 1, 3, 9, 9, 9]
        );
    }

    /// An OPEN whose optional parameters exceed 255 octets: 40 unknown capabilities of 6
    /// octets, each in its own parameter (8 octets), 320 octets in all (RFC 9072 §2).
    fn big_open() -> Open {
        let caps = (0..40u8)
            .map(|i| Capability::Unknown {
                code: 0x80 + i,
                data: Bytes::from(vec![i; 4]),
            })
            .collect();
        Open {
            version: 4,
            my_as: 65001,
            hold_time: 90,
            bgp_id: Ipv4Addr::new(1, 1, 1, 1),
            capabilities: caps,
            other_params: vec![],
        }
    }

    #[test]
    fn extended_optional_parameters_rfc9072_both_ways() {
        let mut body = vec![4, 0xfd, 0xe9, 0, 90, 1, 1, 1, 1, 0xff, 0xff];
        // 40 parameters of 3 + 6 octets.
        body.extend_from_slice(&(40u16 * 9).to_be_bytes());
        for i in 0..40u8 {
            body.extend_from_slice(&[2, 0, 6, 0x80 + i, 4, i, i, i, i]);
        }
        let open = big_open();
        assert_eq!(decode(&body).unwrap(), Message::Open(open.clone()));
        let bytes = Message::Open(open).to_bytes(&Context::default()).unwrap();
        assert_eq!(bytes, message(&body));
    }

    #[test]
    fn extended_form_accepted_even_when_short() {
        // RFC 9072 allows the extended form for any length; one route refresh capability.
        let body = [4, 0, 1, 0, 0, 1, 2, 3, 4, 0xff, 0xff, 0, 5, 2, 0, 2, 2, 0];
        let Message::Open(o) = decode(&body).unwrap() else {
            panic!()
        };
        assert_eq!(o.capabilities, vec![Capability::RouteRefresh]);
        let mut out = BytesMut::new();
        o.encode_body(&mut out).unwrap();
        assert_eq!(&out[..], &[4, 0, 1, 0, 0, 1, 2, 3, 4, 4, 2, 2, 2, 0]);
    }

    #[test]
    fn basic_form_up_to_255_octets() {
        // 63 route refresh capabilities of 4 octets per parameter and a 3-octet raw one: 255.
        let o = Open {
            capabilities: vec![Capability::RouteRefresh; 63],
            other_params: vec![OptionalParameter {
                kind: 0x80,
                value: Bytes::from_static(&[0; 1]),
            }],
            ..big_open()
        };
        let mut out = BytesMut::new();
        o.encode_body(&mut out).unwrap();
        assert_eq!(out[9], 255);
        assert_eq!(out.len(), 10 + 255);
        let back = Open::decode(out.freeze(), 19).unwrap();
        assert_eq!(back, o);
    }

    fn err(body: &[u8]) -> DecodeError {
        decode(body).unwrap_err()
    }

    fn assert_malformed(e: &DecodeError, offset: usize) {
        assert!(matches!(e.kind, ErrorKind::MalformedOpen(_)), "{e:?}");
        assert_eq!(e.offset, offset, "{e:?}");
        let n = e.notification();
        assert_eq!(
            (n.code, n.subcode, n.data.len()),
            (code::OPEN_MESSAGE, open_subcode::UNSPECIFIC, 0)
        );
    }

    #[test]
    fn unsupported_version_carries_version_4() {
        let e = err(&[3, 0, 1, 0, 90, 1, 1, 1, 1, 0]);
        assert_eq!(e.kind, ErrorKind::UnsupportedVersion(3));
        assert_eq!(e.offset, 19);
        let n = e.notification();
        assert_eq!(
            (n.code, n.subcode, &n.data[..]),
            (
                code::OPEN_MESSAGE,
                open_subcode::UNSUPPORTED_VERSION,
                &[0, 4][..]
            )
        );
        assert_eq!(
            err(&[5, 0, 1, 0, 90, 1, 1, 1, 1, 0]).notification().data[..],
            [0, 4]
        );
    }

    #[test]
    fn optional_parameters_length_overrun() {
        // Says 4, has 2.
        assert_malformed(&err(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 4, 2, 0]), 28);
        // Says 0, has 2 (bytes after the parameters).
        assert_malformed(&err(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 0, 2, 0]), 28);
        // Extended: says 8, has 4.
        assert_malformed(
            &err(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 0xff, 0xff, 0, 8, 2, 0, 1, 0]),
            28,
        );
        // Extended: the 2-octet length itself is cut.
        assert_malformed(&err(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 0xff, 0xff, 0]), 28);
    }

    #[test]
    fn optional_parameter_overruns_the_parameters() {
        // Parameter at 29 says 5 octets, 2 are left.
        assert_malformed(&err(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 4, 2, 5, 2, 0]), 29);
        // Parameter header cut after the type.
        assert_malformed(&err(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 3, 2, 0, 2]), 31);
        // Extended: parameter length octets cut.
        assert_malformed(
            &err(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 0xff, 0xff, 0, 2, 2, 0]),
            32,
        );
    }

    #[test]
    fn capability_errors_inside_open_carry_absolute_offsets() {
        // Capability at 31 says 4 octets, its parameter holds 2 after the header.
        assert_malformed(&err(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 4, 2, 2, 0x41, 4]), 31);
        // Truncated capability: a 4-octet AS capability of 2 octets.
        assert_malformed(
            &err(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 6, 2, 4, 0x41, 2, 0, 1]),
            31,
        );
        // Second capability of a parameter is the bad one.
        assert_malformed(
            &err(&[4, 0, 1, 0, 90, 1, 1, 1, 1, 7, 2, 5, 2, 0, 6, 1, 0]),
            33,
        );
    }

    #[test]
    fn encode_refuses_reserved_parameter_types() {
        for kind in [PARAM_CAPABILITIES, PARAM_EXTENDED_LENGTH] {
            let o = Open {
                other_params: vec![OptionalParameter {
                    kind,
                    value: Bytes::new(),
                }],
                ..big_open()
            };
            let mut out = BytesMut::from(&b"ab"[..]);
            assert!(o.encode_body(&mut out).is_err());
            assert_eq!(&out[..], b"ab");
        }
    }

    #[test]
    fn encode_refuses_an_open_over_4096() {
        let o = Open {
            other_params: (0..20)
                .map(|i| OptionalParameter {
                    kind: 0x80 + i,
                    value: Bytes::from(vec![0; 250]),
                })
                .collect(),
            ..big_open()
        };
        let e = Message::Open(o).to_bytes(&Context::default()).unwrap_err();
        assert!(matches!(e, EncodeError::TooLong { max: 4096, .. }), "{e:?}");
    }

    fn arb_open() -> impl Strategy<Value = Open> {
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            vec(arb::capability(), 0..12),
            vec(
                (
                    any::<u8>().prop_filter("raw type", |k| {
                        *k != PARAM_CAPABILITIES && *k != PARAM_EXTENDED_LENGTH
                    }),
                    vec(any::<u8>(), 0..300),
                ),
                0..3,
            ),
        )
            .prop_map(|(my_as, hold_time, id, capabilities, params)| Open {
                version: 4,
                my_as,
                hold_time,
                bgp_id: Ipv4Addr::from(id),
                capabilities,
                other_params: params
                    .into_iter()
                    .map(|(kind, v)| OptionalParameter {
                        kind,
                        value: Bytes::from(v),
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn open_round_trip(o in arb_open()) {
            let ctx = Context::default();
            let m = Message::Open(o);
            match m.to_bytes(&ctx) {
                Ok(b) => prop_assert_eq!(Message::decode(b, &ctx).unwrap(), m),
                // Only an OPEN over 4096 octets may fail to encode.
                Err(e) => prop_assert!(matches!(e, EncodeError::TooLong { .. }), "{:?}", e),
            }
        }

        #[test]
        fn capability_round_trip_in_open(c in arb::capability()) {
            let ctx = Context::default();
            let m = Message::Open(Open::new(Asn(65001), 90, Ipv4Addr::new(1, 2, 3, 4), vec![c]));
            let b = m.to_bytes(&ctx).unwrap();
            prop_assert_eq!(Message::decode(b, &ctx).unwrap(), m);
        }

        #[test]
        fn open_decode_never_panics(v in vec(any::<u8>(), 0..400)) {
            let _ = Open::decode(Bytes::from(v), 19);
        }
    }
}
