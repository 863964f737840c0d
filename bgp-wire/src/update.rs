//! UPDATE messages (RFC 4271 §4.3), multiprotocol reachability (RFC 4760), End-of-RIB
//! (RFC 4724 §2) and revised error handling (RFC 7606).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::attribute::{self, BlockInfo, NextHopMode, PathAttributes, type_code as tc};
use crate::context::Context;
use crate::error::{DecodeError, EncodeError, ErrorKind, Rfc7606Action};
use crate::nlri::{Nlri, NlriIter, Nlris};
use crate::types::{Afi, AfiSafi, Safi};

/// The next hop of MP_REACH_NLRI (RFC 4760 §3): IPv4, IPv6 (RFC 2545 §3), IPv6 global plus
/// link-local (RFC 2545 §3), IPv6 for IPv4 NLRI (RFC 8950), or uninterpreted bytes for
/// families this codec does not know.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// An IPv4 address (4 octets).
    Ipv4(Ipv4Addr),
    /// A global IPv6 address (16 octets).
    Ipv6(Ipv6Addr),
    /// A global and a link-local IPv6 address (32 octets, RFC 2545 §3).
    Ipv6LinkLocal {
        /// The global address.
        global: Ipv6Addr,
        /// The link-local address.
        link_local: Ipv6Addr,
    },
    /// The next hop of a family this codec does not interpret, as received.
    Other(Bytes),
}

impl NextHop {
    /// The length on the wire.
    pub fn wire_len(&self) -> usize {
        match self {
            NextHop::Ipv4(_) => 4,
            NextHop::Ipv6(_) => 16,
            NextHop::Ipv6LinkLocal { .. } => 32,
            NextHop::Other(b) => b.len(),
        }
    }

    fn write(&self, out: &mut BytesMut) {
        match self {
            NextHop::Ipv4(a) => out.put_slice(&a.octets()),
            NextHop::Ipv6(a) => out.put_slice(&a.octets()),
            NextHop::Ipv6LinkLocal { global, link_local } => {
                out.put_slice(&global.octets());
                out.put_slice(&link_local.octets());
            }
            NextHop::Other(b) => out.put_slice(b),
        }
    }

    /// Parses a next hop for a known family; `None` if the length does not fit the family
    /// (RFC 7606 §7.11).
    fn parse(family: AfiSafi, raw: &[u8]) -> Option<NextHop> {
        let v6 =
            |b: &[u8]| -> Option<Ipv6Addr> { Some(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?)) };
        match (family.afi, raw.len()) {
            (Afi::IPV4, 4) => Some(NextHop::Ipv4(Ipv4Addr::from(
                <[u8; 4]>::try_from(raw).ok()?,
            ))),
            (Afi::IPV4 | Afi::IPV6, 16) => Some(NextHop::Ipv6(v6(raw)?)),
            (Afi::IPV4 | Afi::IPV6, 32) => Some(NextHop::Ipv6LinkLocal {
                global: v6(raw.get(..16)?)?,
                link_local: v6(raw.get(16..)?)?,
            }),
            _ => None,
        }
    }
}

/// MP_REACH_NLRI (RFC 4760 §3): reachable prefixes of one family and their next hop. For a
/// family this codec does not know, `next_hop` is [`NextHop::Other`] and `nlri` holds the
/// uninterpreted bytes, so the attribute round-trips.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// The family of the NLRI.
    pub family: AfiSafi,
    /// The next hop.
    pub next_hop: NextHop,
    /// The reachable prefixes.
    pub nlri: Nlris,
}

/// Builds an error for the attribute being decoded.
pub(crate) type AttrErr<'a> = &'a dyn Fn(ErrorKind) -> DecodeError;

impl MpReach {
    /// Decodes the attribute value `body[range]`, whose first byte is at `offset` in the
    /// message, into `slot`. Any malformation is a session reset (RFC 7606 §7.11), after
    /// which `slot` holds an unspecified value.
    #[inline]
    pub(crate) fn decode_into(
        slot: &mut Option<MpReach>,
        body: &Bytes,
        range: Range<usize>,
        offset: usize,
        ctx: &Context,
        err: AttrErr<'_>,
    ) -> Result<(), DecodeError> {
        let bad = || err(ErrorKind::OptionalAttribute(tc::MP_REACH_NLRI));
        let value = body.get(range.clone()).ok_or_else(bad)?;
        let &[a0, a1, safi, nh_len, ..] = value else {
            return Err(bad());
        };
        let family = AfiSafi::new(Afi(u16::from_be_bytes([a0, a1])), Safi(safi));
        let nh_end = 4 + usize::from(nh_len);
        let nh = value.get(4..nh_end).ok_or_else(bad)?;
        // One reserved octet follows the next hop (RFC 4760 §3).
        if value.len() < nh_end + 1 {
            return Err(bad());
        }
        let next_hop = if family.is_known() {
            NextHop::parse(family, nh).ok_or_else(bad)?
        } else {
            NextHop::Other(body.slice(range.start + 4..range.start + nh_end))
        };
        // Built in place: the NLRI block is written straight into the slot.
        let m = slot.insert(MpReach {
            family,
            next_hop,
            nlri: Nlris::empty(family),
        });
        m.nlri.decode_slice_into(
            family,
            ctx.receive_path_ids(family),
            body,
            range.start + nh_end + 1..range.end,
            offset + nh_end + 1,
            "UPDATE MP_REACH_NLRI NLRI",
        )
    }

    fn value_len(&self, ctx: &Context) -> usize {
        5 + self.next_hop.wire_len() + self.nlri.encoded_len(ctx.send_path_ids(self.family))
    }

    /// Appends the whole attribute (RFC 4760 §3).
    pub(crate) fn encode(&self, ctx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        if self.nlri.family() != self.family {
            return Err(EncodeError::Invalid(
                "MP_REACH_NLRI with NLRI of another family",
            ));
        }
        let nh_len = u8::try_from(self.next_hop.wire_len())
            .map_err(|_| EncodeError::Invalid("MP_REACH_NLRI next hop too long"))?;
        attribute::put_header(
            out,
            attribute::flags::OPTIONAL,
            tc::MP_REACH_NLRI,
            self.value_len(ctx),
        )?;
        out.put_u16(self.family.afi.0);
        out.put_u8(self.family.safi.0);
        out.put_u8(nh_len);
        self.next_hop.write(out);
        out.put_u8(0);
        self.nlri.encode(ctx.send_path_ids(self.family), out);
        Ok(())
    }
}

/// MP_UNREACH_NLRI (RFC 4760 §4): withdrawn prefixes of one family.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// The family of the withdrawn prefixes.
    pub family: AfiSafi,
    /// The withdrawn prefixes (uninterpreted bytes for unknown families).
    pub withdrawn: Nlris,
}

impl MpUnreach {
    /// Decodes the attribute value `body[range]`, whose first byte is at `offset` in the
    /// message (RFC 7606 §7.12: malformation is a session reset).
    pub(crate) fn decode(
        body: &Bytes,
        range: Range<usize>,
        offset: usize,
        ctx: &Context,
        err: AttrErr<'_>,
    ) -> Result<MpUnreach, DecodeError> {
        let bad = || err(ErrorKind::OptionalAttribute(tc::MP_UNREACH_NLRI));
        let value = body.get(range.clone()).ok_or_else(bad)?;
        let &[a0, a1, safi, ..] = value else {
            return Err(bad());
        };
        let family = AfiSafi::new(Afi(u16::from_be_bytes([a0, a1])), Safi(safi));
        let withdrawn = Nlris::decode_slice(
            family,
            ctx.receive_path_ids(family),
            body,
            range.start + 3..range.end,
            offset + 3,
            "UPDATE MP_UNREACH_NLRI NLRI",
        )?;
        Ok(MpUnreach { family, withdrawn })
    }

    /// Appends the whole attribute (RFC 4760 §4).
    pub(crate) fn encode(&self, ctx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        if self.withdrawn.family() != self.family {
            return Err(EncodeError::Invalid(
                "MP_UNREACH_NLRI with NLRI of another family",
            ));
        }
        let pid = ctx.send_path_ids(self.family);
        attribute::put_header(
            out,
            attribute::flags::OPTIONAL,
            tc::MP_UNREACH_NLRI,
            3 + self.withdrawn.encoded_len(pid),
        )?;
        out.put_u16(self.family.afi.0);
        out.put_u8(self.family.safi.0);
        self.withdrawn.encode(pid, out);
        Ok(())
    }
}

/// An UPDATE message (RFC 4271 §4.3, RFC 4760).
///
/// `withdrawn` and `nlri` are the IPv4 unicast fields of RFC 4271; other families travel in
/// `mp_reach` / `mp_unreach`, kept apart from `attributes` so that a RIB can intern the
/// attributes without NLRI. `errors` holds the RFC 7606 errors that did not reset the
/// session: when one of them is treat-as-withdraw ([`Update::is_treat_as_withdraw`]), every
/// announced prefix must be handled as withdrawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn Routes: IPv4 unicast prefixes no longer reachable.
    pub withdrawn: Nlris,
    /// The path attributes other than MP_REACH_NLRI / MP_UNREACH_NLRI.
    pub attributes: PathAttributes,
    /// Network Layer Reachability Information: IPv4 unicast prefixes announced.
    pub nlri: Nlris,
    /// MP_REACH_NLRI (RFC 4760 §3).
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI (RFC 4760 §4).
    pub mp_unreach: Option<MpUnreach>,
    /// Errors that RFC 7606 handles without a session reset (treat-as-withdraw, attribute
    /// discard). Empty for a well-formed UPDATE; ignored when encoding.
    pub errors: Vec<DecodeError>,
}

impl Default for Update {
    fn default() -> Self {
        Update {
            withdrawn: Nlris::empty(AfiSafi::IPV4_UNICAST),
            attributes: PathAttributes::default(),
            nlri: Nlris::empty(AfiSafi::IPV4_UNICAST),
            mp_reach: None,
            mp_unreach: None,
            errors: Vec::new(),
        }
    }
}

impl Update {
    /// An empty UPDATE (which is also the IPv4 unicast End-of-RIB marker).
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes the body of an UPDATE (the message after its 19-octet header); `offset` is
    /// where the body starts in the message, for error offsets.
    ///
    /// RFC 7606 decides the outcome of every error: a session reset is returned as `Err`;
    /// treat-as-withdraw and attribute discard yield `Ok` with the error in
    /// [`Update::errors`], the offending attribute left out, and all prefixes still there.
    #[inline]
    pub fn decode(body: Bytes, offset: usize, ctx: &Context) -> Result<Update, DecodeError> {
        // Decoded where it is returned, so the large value is not moved afterwards.
        let mut r = Ok(Update::new());
        if let Ok(u) = &mut r {
            u.decode_into(&body, offset, ctx)?;
        }
        r
    }

    /// Decodes the body of an UPDATE into `self`, replacing what it held: the same result as
    /// [`Update::decode`], without moving a new `Update` to the caller and reusing the
    /// capacity of `self`'s vectors. A receive loop keeps one `Update` and decodes every
    /// message into it. Only values too large to be held inline keep a reference to `body`.
    ///
    /// On `Err` (a session reset) `self` holds an unspecified, valid UPDATE.
    pub fn decode_into(
        &mut self,
        body: &Bytes,
        offset: usize,
        ctx: &Context,
    ) -> Result<(), DecodeError> {
        self.clear();
        let list_err =
            |at: usize| DecodeError::new(ErrorKind::MalformedAttributeList, "UPDATE lengths", at);
        let n = body.len();
        let len_at = |pos: usize| -> Option<usize> {
            let b = body.get(pos..pos + 2)?;
            Some(usize::from(u16::from_be_bytes([b[0], b[1]])))
        };
        // RFC 4271 §6.3: lengths inconsistent with the message are a Malformed Attribute List.
        let wd_len = len_at(0).ok_or_else(|| list_err(offset))?;
        let wd_end = 2 + wd_len;
        let attr_len = len_at(wd_end).ok_or_else(|| list_err(offset))?;
        let attr_from = wd_end + 2;
        let attr_to = attr_from + attr_len;
        if attr_to > n {
            return Err(list_err(offset + wd_end));
        }

        let v4 = AfiSafi::IPV4_UNICAST;
        let pid = ctx.receive_path_ids(v4);
        // `clear` left both fields empty.
        if wd_len != 0 {
            self.withdrawn.decode_slice_into(
                v4,
                pid,
                body,
                2..wd_end,
                offset + 2,
                "UPDATE withdrawn routes",
            )?;
        }
        if attr_to < n {
            self.nlri.decode_slice_into(
                v4,
                pid,
                body,
                attr_to..n,
                offset + attr_to,
                "UPDATE NLRI",
            )?;
        }
        let attr_off = offset + attr_from;
        let mut info = BlockInfo::default();
        attribute::decode_block(body, attr_from, attr_to, attr_off, ctx, self, &mut info)?;

        // RFC 7606 §3 (d): missing well-known mandatory attributes, when there is NLRI.
        // NEXT_HOP is needed only for the IPv4 NLRI field (RFC 4760 §3).
        let reach = !self.nlri.is_empty() || self.mp_reach.is_some();
        if reach && !info.stopped {
            let mut required = [tc::ORIGIN, tc::AS_PATH, 0];
            if !self.nlri.is_empty() {
                required[2] = tc::NEXT_HOP;
            }
            for code in required.into_iter().filter(|&c| c != 0) {
                if !info.seen.contains(code) {
                    self.errors.push(
                        DecodeError::new(
                            ErrorKind::MissingWellKnownAttribute(code),
                            "UPDATE path attributes",
                            attr_off,
                        )
                        .with_data(Bytes::copy_from_slice(&[code]))
                        .with_action(Rfc7606Action::TreatAsWithdraw),
                    );
                }
            }
        }
        Ok(())
    }

    /// Empties the UPDATE, keeping the capacity of its vectors.
    #[inline]
    fn clear(&mut self) {
        let v4 = AfiSafi::IPV4_UNICAST;
        self.withdrawn.clear(v4);
        self.nlri.clear(v4);
        self.attributes.clear();
        self.mp_reach = None;
        self.mp_unreach = None;
        self.errors.clear();
    }

    /// Appends the body for this session. MP_REACH_NLRI and MP_UNREACH_NLRI come first
    /// (RFC 7606 §5.1), then the other attributes in ascending type-code order.
    pub fn encode_body(&self, ctx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        let v4 = AfiSafi::IPV4_UNICAST;
        if self.withdrawn.family() != v4 || self.nlri.family() != v4 {
            return Err(EncodeError::Invalid(
                "withdrawn routes or NLRI field not IPv4 unicast",
            ));
        }
        let pid = ctx.send_path_ids(v4);
        let wd_len = self.withdrawn.encoded_len(pid);
        out.put_u16(
            u16::try_from(wd_len).map_err(|_| EncodeError::FieldTooLong {
                field: "withdrawn routes",
                len: wd_len,
            })?,
        );
        self.withdrawn.encode(pid, out);
        let len_at = out.len();
        out.put_u16(0);
        if let Some(m) = &self.mp_reach {
            m.encode(ctx, out)?;
        }
        if let Some(m) = &self.mp_unreach {
            m.encode(ctx, out)?;
        }
        self.attributes.encode_with(ctx, NextHopMode::Keep, out)?;
        let attr_len = out.len() - len_at - 2;
        let l = u16::try_from(attr_len).map_err(|_| EncodeError::FieldTooLong {
            field: "path attributes",
            len: attr_len,
        })?;
        if let Some(slot) = out.get_mut(len_at..len_at + 2) {
            slot.copy_from_slice(&l.to_be_bytes());
        }
        self.nlri.encode(pid, out);
        Ok(())
    }

    /// Whether an RFC 7606 treat-as-withdraw error was found: every prefix this UPDATE
    /// announces ([`Update::announced`]) must then be handled as withdrawn.
    #[inline]
    pub fn is_treat_as_withdraw(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.action == Rfc7606Action::TreatAsWithdraw)
    }

    /// The family whose End-of-RIB marker this UPDATE is (RFC 4724 §2), if it is one: an
    /// empty UPDATE for IPv4 unicast, an UPDATE with nothing but an empty MP_UNREACH_NLRI
    /// for the other families. An UPDATE whose attributes were dropped as malformed
    /// (RFC 7606) had attributes, so it is never a marker.
    pub fn end_of_rib(&self) -> Option<AfiSafi> {
        let bare = self.errors.is_empty()
            && self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && self.mp_reach.is_none()
            && self.attributes.is_empty();
        if !bare {
            return None;
        }
        match &self.mp_unreach {
            None => Some(AfiSafi::IPV4_UNICAST),
            Some(m) if m.withdrawn.is_empty() => Some(m.family),
            Some(_) => None,
        }
    }

    /// The End-of-RIB marker for a family (RFC 4724 §2).
    #[must_use]
    pub fn end_of_rib_marker(family: AfiSafi) -> Update {
        let mut u = Update::new();
        if family != AfiSafi::IPV4_UNICAST {
            u.mp_unreach = Some(MpUnreach {
                family,
                withdrawn: Nlris::empty(family),
            });
        }
        u
    }

    /// Every announced prefix with its family: the NLRI field, then MP_REACH_NLRI.
    #[inline]
    pub fn announced(&self) -> Prefixes<'_> {
        let mp = self.mp_reach.as_ref().map(|m| (m.family, &m.nlri));
        Prefixes::new(&self.nlri, mp)
    }

    /// Every withdrawn prefix with its family: the Withdrawn Routes field, then
    /// MP_UNREACH_NLRI.
    #[inline]
    pub fn withdrawn_all(&self) -> Prefixes<'_> {
        let mp = self.mp_unreach.as_ref().map(|m| (m.family, &m.withdrawn));
        Prefixes::new(&self.withdrawn, mp)
    }

    /// The number of prefixes announced plus withdrawn.
    #[inline]
    pub fn prefix_count(&self) -> usize {
        self.withdrawn.count()
            + self.nlri.count()
            + self.mp_reach.as_ref().map_or(0, |m| m.nlri.count())
            + self.mp_unreach.as_ref().map_or(0, |m| m.withdrawn.count())
    }
}

/// The prefixes of the IPv4 field of an UPDATE and then those of its MP_REACH_NLRI or
/// MP_UNREACH_NLRI: a flat two-stage iterator, cheaper per prefix than a chain of adapters.
/// Returned by [`Update::announced`] and [`Update::withdrawn_all`].
#[derive(Clone, Debug)]
pub struct Prefixes<'a> {
    cur: NlriIter<'a>,
    cur_family: AfiSafi,
    next: NlriIter<'a>,
    next_family: AfiSafi,
}

impl<'a> Prefixes<'a> {
    #[inline]
    fn new(v4: &'a Nlris, mp: Option<(AfiSafi, &'a Nlris)>) -> Self {
        let (next_family, next) = match mp {
            // `Nlris::iter` yields nothing for families this codec does not interpret.
            Some((family, n)) => (family, n.iter()),
            None => (AfiSafi::IPV4_UNICAST, NlriIter::EMPTY),
        };
        Prefixes {
            cur: v4.iter(),
            cur_family: AfiSafi::IPV4_UNICAST,
            next,
            next_family,
        }
    }
}

impl Iterator for Prefixes<'_> {
    type Item = (AfiSafi, Nlri);

    #[inline]
    fn next(&mut self) -> Option<(AfiSafi, Nlri)> {
        loop {
            if let Some(n) = self.cur.next() {
                return Some((self.cur_family, n));
            }
            if self.next.is_done() {
                return None;
            }
            self.cur = std::mem::replace(&mut self.next, NlriIter::EMPTY);
            self.cur_family = self.next_family;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::field_reassign_with_default)]
    use super::*;
    use crate::aspath::{AsPath, Segment, SegmentType};
    use crate::attribute::{Aggregator, Origin, RawAttribute};
    use crate::buf::Buf;
    use crate::community::{
        ClusterList, Communities, Community, ExtCommunities, ExtCommunity, LargeCommunities,
        LargeCommunity,
    };
    use crate::message::Message;
    use crate::nlri::tests::arb_nlri;
    use crate::pack::{pack_announce, pack_withdraw};
    use crate::types::{AfiSafiSet, Asn};
    use ipnet::IpNet;
    use proptest::prelude::*;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// ORIGIN IGP, AS_PATH 65001, NEXT_HOP 192.0.2.1.
    const BASE: [u8; 20] = [
        0x40, 1, 1, 0, //
        0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9, //
        0x40, 3, 4, 192, 0, 2, 1,
    ];

    fn body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Bytes {
        let mut v = Vec::new();
        v.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
        v.extend_from_slice(withdrawn);
        v.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        v.extend_from_slice(attrs);
        v.extend_from_slice(nlri);
        Bytes::from(v)
    }

    fn dec(b: Bytes) -> Result<Update, DecodeError> {
        Update::decode(b, 19, &Context::default())
    }

    fn base_attrs() -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([Asn(65001)])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..PathAttributes::default()
        }
    }

    fn v4(prefixes: &[&str]) -> Nlris {
        Nlris::new(
            AfiSafi::IPV4_UNICAST,
            false,
            prefixes.iter().map(|s| Nlri::new(p(s))),
        )
        .unwrap()
    }

    fn encode_body(u: &Update, ctx: &Context) -> Vec<u8> {
        let mut out = BytesMut::new();
        u.encode_body(ctx, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn simple_update_both_ways() {
        let b = body(&[24, 198, 51, 100], &BASE, &[8, 10, 16, 172, 16]);
        let u = dec(b.clone()).unwrap();
        let want = Update {
            withdrawn: v4(&["198.51.100.0/24"]),
            attributes: base_attrs(),
            nlri: v4(&["10.0.0.0/8", "172.16.0.0/16"]),
            ..Update::default()
        };
        assert_eq!(u, want);
        assert!(u.errors.is_empty());
        assert_eq!(encode_body(&want, &Context::default()), b.to_vec());
        assert_eq!(u.announced().count(), 2);
        assert_eq!(u.withdrawn_all().count(), 1);
        assert_eq!(u.prefix_count(), 3);
    }

    /// Each attribute: its bytes, and the PathAttributes it decodes to.
    fn attribute_vectors() -> Vec<(Vec<u8>, PathAttributes)> {
        let none = PathAttributes::default();
        vec![
            (
                vec![0x40, 1, 1, 2],
                PathAttributes {
                    origin: Some(Origin::Incomplete),
                    ..none.clone()
                },
            ),
            (
                vec![
                    0x40, 2, 16, 2, 2, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0, 1, 1, 0, 0, 0, 7,
                ],
                PathAttributes {
                    as_path: Some(AsPath::from_segments([
                        Segment {
                            kind: SegmentType::AsSequence,
                            asns: vec![Asn(65001), Asn(4_200_000_000)],
                        },
                        Segment {
                            kind: SegmentType::AsSet,
                            asns: vec![Asn(7)],
                        },
                    ])),
                    ..none.clone()
                },
            ),
            (
                vec![0x40, 2, 0],
                PathAttributes {
                    as_path: Some(AsPath::empty()),
                    ..none.clone()
                },
            ),
            (
                vec![0x40, 3, 4, 10, 0, 0, 1],
                PathAttributes {
                    next_hop: Some(Ipv4Addr::new(10, 0, 0, 1)),
                    ..none.clone()
                },
            ),
            (
                vec![0x80, 4, 4, 0, 0, 0, 50],
                PathAttributes {
                    med: Some(50),
                    ..none.clone()
                },
            ),
            (
                vec![0x40, 5, 4, 0, 0, 0, 100],
                PathAttributes {
                    local_pref: Some(100),
                    ..none.clone()
                },
            ),
            (
                vec![0x40, 6, 0],
                PathAttributes {
                    atomic_aggregate: true,
                    ..none.clone()
                },
            ),
            (
                vec![0xc0, 7, 8, 0, 0, 0xfd, 0xe9, 192, 0, 2, 9],
                PathAttributes {
                    aggregator: Some(Aggregator {
                        asn: Asn(65001),
                        address: Ipv4Addr::new(192, 0, 2, 9),
                    }),
                    ..none.clone()
                },
            ),
            (
                vec![0xc0, 8, 8, 0xff, 0xff, 0xff, 0x01, 0xfd, 0xe8, 0, 100],
                PathAttributes {
                    communities: Some(Communities::new([
                        Community::NO_EXPORT,
                        Community::new(65000, 100),
                    ])),
                    ..none.clone()
                },
            ),
            (
                vec![0x80, 9, 4, 1, 2, 3, 4],
                PathAttributes {
                    originator_id: Some(Ipv4Addr::new(1, 2, 3, 4)),
                    ..none.clone()
                },
            ),
            (
                vec![0x80, 10, 8, 1, 1, 1, 1, 2, 2, 2, 2],
                PathAttributes {
                    cluster_list: Some(ClusterList::new([
                        Ipv4Addr::new(1, 1, 1, 1),
                        Ipv4Addr::new(2, 2, 2, 2),
                    ])),
                    ..none.clone()
                },
            ),
            (
                vec![0xc0, 16, 8, 0, 2, 0xfd, 0xe8, 0, 0, 0, 100],
                PathAttributes {
                    ext_communities: Some(ExtCommunities::new([ExtCommunity::route_target_as2(
                        65000, 100,
                    )])),
                    ..none.clone()
                },
            ),
            (
                vec![0xc0, 32, 12, 0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2],
                PathAttributes {
                    large_communities: Some(LargeCommunities::new([LargeCommunity::new(
                        65000, 1, 2,
                    )])),
                    ..none.clone()
                },
            ),
            (
                vec![0xc0, 35, 4, 0, 0, 0xfd, 0xe8],
                PathAttributes {
                    otc: Some(Asn(65000)),
                    ..none.clone()
                },
            ),
            (
                vec![0xe0, 99, 2, 0xab, 0xcd],
                PathAttributes {
                    unknown: vec![RawAttribute {
                        flags: 0xe0,
                        type_code: 99,
                        value: Bytes::from_static(&[0xab, 0xcd]),
                    }],
                    ..none.clone()
                },
            ),
        ]
    }

    #[test]
    fn every_attribute_both_ways() {
        let ctx = Context::default();
        for (bytes, attrs) in attribute_vectors() {
            let u = dec(body(&[], &bytes, &[])).unwrap();
            assert!(u.errors.is_empty(), "{bytes:?}: {:?}", u.errors);
            assert_eq!(u.attributes, attrs, "{bytes:?}");
            let mut out = BytesMut::new();
            attrs.encode(&ctx, &mut out).unwrap();
            assert_eq!(&out[..], &bytes[..]);
        }
    }

    #[test]
    fn decode_into_a_reused_update_equals_decode() {
        let ctx = Context::default();
        let mut bodies = vec![
            body(&[24, 198, 51, 100], &BASE, &[8, 10, 16, 172, 16]),
            // Treat-as-withdraw (bad ORIGIN), an unknown attribute, a duplicate.
            body(
                &[],
                &[0x40, 1, 1, 9, 0xe0, 99, 1, 7, 0x40, 1, 1, 0],
                &[8, 10],
            ),
            body(&[], &[], &[]),
            // A session reset: prefix length 33.
            body(&[], &BASE, &[33, 1, 2, 3, 4, 5]),
        ];
        bodies.extend(
            attribute_vectors()
                .into_iter()
                .map(|(a, _)| body(&[], &a, &[])),
        );
        let mut u = Update::new();
        for _ in 0..2 {
            for b in &bodies {
                let want = Update::decode(b.clone(), 19, &ctx);
                let got = u.decode_into(b, 19, &ctx);
                match want {
                    Ok(w) => {
                        assert_eq!(got, Ok(()));
                        assert_eq!(u, w);
                    }
                    Err(e) => assert_eq!(got, Err(e)),
                }
            }
        }
    }

    #[test]
    fn extended_length_only_when_needed() {
        let big = PathAttributes {
            communities: Some(Communities::new((0..64).map(Community))),
            ..PathAttributes::default()
        };
        let mut out = BytesMut::new();
        big.encode(&Context::default(), &mut out).unwrap();
        assert_eq!(&out[..4], &[0xd0, 8, 1, 0]);
        // An extended-length encoding of a short value decodes the same.
        let u = dec(body(&[], &[0x50, 1, 0, 1, 0], &[])).unwrap();
        assert_eq!(u.attributes.origin, Some(Origin::Igp));
    }

    #[test]
    fn attributes_are_encoded_in_type_code_order() {
        // Received out of order: OTC, COMMUNITIES, unknown 40, ORIGIN.
        let attrs = [
            &[0xc0u8, 35, 4, 0, 0, 0, 1][..],
            &[0xc0, 8, 4, 0, 1, 0, 1],
            &[0xc0, 40, 1, 9],
            &[0x40, 1, 1, 0],
        ]
        .concat();
        let u = dec(body(&[], &attrs, &[])).unwrap();
        let out = encode_body(&u, &Context::default());
        let codes: Vec<u8> = {
            let mut v = Vec::new();
            let mut i = 4;
            while i < out.len() {
                v.push(out[i + 1]);
                i += 3 + usize::from(out[i + 2]);
            }
            v
        };
        assert_eq!(codes, vec![1, 8, 35, 40]);
    }

    #[test]
    fn propagation_sets_partial_and_drops_non_transitive() {
        let a = PathAttributes {
            unknown: vec![
                RawAttribute {
                    flags: 0xc0,
                    type_code: 40,
                    value: Bytes::new(),
                },
                RawAttribute {
                    flags: 0x80,
                    type_code: 41,
                    value: Bytes::new(),
                },
            ],
            ..PathAttributes::default()
        };
        let p = a.for_propagation();
        assert_eq!(p.unknown.len(), 1);
        assert_eq!(p.unknown[0].flags, 0xe0);
        assert!(p.unknown[0].is_partial());
    }

    /// An UPDATE with BASE plus `extra` attributes (inserted after BASE) and NLRI 10/8.
    fn with_extra(extra: &[u8]) -> Result<Update, DecodeError> {
        dec(body(&[], &[&BASE[..], extra].concat(), &[8, 10]))
    }

    /// RFC 7606 §7: per-attribute errors that are treat-as-withdraw.
    #[test]
    fn treat_as_withdraw_cases() {
        let at = 23 + BASE.len();
        let cases: Vec<(Vec<u8>, ErrorKind)> = vec![
            (vec![0x80, 4, 2, 0, 0], ErrorKind::AttributeLength(4)),
            (vec![0x40, 4, 4, 0, 0, 0, 1], ErrorKind::AttributeFlags(4)),
            (
                vec![0x40, 5, 5, 0, 0, 0, 0, 1],
                ErrorKind::AttributeLength(5),
            ),
            (vec![0xc0, 8, 3, 0, 0, 1], ErrorKind::AttributeLength(8)),
            (vec![0xc0, 8, 0], ErrorKind::AttributeLength(8)),
            (vec![0x40, 8, 4, 0, 0, 0, 1], ErrorKind::AttributeFlags(8)),
            (
                vec![0x80, 9, 5, 0, 0, 0, 0, 1],
                ErrorKind::AttributeLength(9),
            ),
            (
                vec![0x80, 10, 6, 0, 0, 0, 0, 0, 1],
                ErrorKind::AttributeLength(10),
            ),
            (vec![0x80, 10, 0], ErrorKind::AttributeLength(10)),
            (
                vec![0xc0, 16, 4, 0, 0, 0, 1],
                ErrorKind::AttributeLength(16),
            ),
            (
                vec![0xc0, 32, 8, 0, 0, 0, 0, 0, 0, 0, 1],
                ErrorKind::AttributeLength(32),
            ),
            (vec![0xc0, 35, 2, 0, 1], ErrorKind::AttributeLength(35)),
        ];
        for (extra, kind) in cases {
            let u = with_extra(&extra).unwrap();
            assert!(u.is_treat_as_withdraw(), "{extra:?}");
            assert_eq!(u.errors.len(), 1);
            let e = &u.errors[0];
            assert_eq!(e.kind, kind);
            assert_eq!(e.action, Rfc7606Action::TreatAsWithdraw);
            assert_eq!(e.offset, at);
            assert_eq!(
                &e.data[..],
                &extra[..],
                "NOTIFICATION data is the attribute"
            );
            assert_eq!(e.notification().code, 3);
            assert_eq!(
                u.announced().map(|(_, n)| n.prefix).collect::<Vec<_>>(),
                vec![p("10.0.0.0/8")]
            );
            assert_eq!(
                u.attributes,
                base_attrs(),
                "the bad attribute is not stored"
            );
        }
    }

    #[test]
    fn well_known_attribute_errors() {
        // ORIGIN: bad length, bad value, bad flags (RFC 7606 §7.1, §3 c).
        for (attr, kind, sub) in [
            (&[0x40u8, 1, 2, 0, 0][..], ErrorKind::AttributeLength(1), 5),
            (&[0x40, 1, 1, 3], ErrorKind::InvalidOrigin(3), 6),
            (&[0xc0, 1, 1, 0], ErrorKind::AttributeFlags(1), 4),
        ] {
            let attrs = [attr, &BASE[4..]].concat();
            let u = dec(body(&[], &attrs, &[8, 10])).unwrap();
            assert!(u.is_treat_as_withdraw());
            assert_eq!(u.errors[0].kind, kind);
            assert_eq!(u.errors[0].offset, 23);
            let n = u.errors[0].notification();
            assert_eq!((n.code, n.subcode, &n.data[..]), (3, sub, attr));
            assert_eq!(u.attributes.origin, None);
            assert_eq!(u.nlri.count(), 1);
        }
        // AS_PATH malformed (RFC 7606 §7.2): zero-length segment.
        let attrs = [&BASE[..4], &[0x40, 2, 2, 2, 0], &BASE[13..]].concat();
        let u = dec(body(&[], &attrs, &[8, 10])).unwrap();
        assert_eq!(u.errors[0].kind, ErrorKind::MalformedAsPath);
        assert_eq!(u.errors[0].offset, 27);
        assert_eq!(u.errors[0].notification().subcode, 11);
        assert!(u.is_treat_as_withdraw());
        // NEXT_HOP of 3 octets (RFC 7606 §7.3).
        let attrs = [&BASE[..13], &[0x40, 3, 3, 1, 2, 3]].concat();
        let u = dec(body(&[], &attrs, &[8, 10])).unwrap();
        assert_eq!(u.errors[0].kind, ErrorKind::AttributeLength(3));
        assert!(u.is_treat_as_withdraw());
        // NEXT_HOP that is not a host address (RFC 4271 §6.3, RFC 7606 §7.3): Invalid
        // NEXT_HOP Attribute, treat-as-withdraw, the attribute as data.
        for nh in [
            [0, 0, 0, 0],
            [224, 0, 0, 5],
            [239, 1, 2, 3],
            [255, 255, 255, 255],
        ] {
            let attr = [&[0x40u8, 3, 4][..], &nh].concat();
            let attrs = [&BASE[..13], &attr].concat();
            let u = dec(body(&[], &attrs, &[8, 10])).unwrap();
            assert_eq!(u.errors[0].kind, ErrorKind::InvalidNextHop, "{nh:?}");
            assert!(u.is_treat_as_withdraw());
            assert_eq!(u.attributes.next_hop, None);
            let n = u.errors[0].notification();
            assert_eq!((n.code, n.subcode, &n.data[..]), (3, 8, &attr[..]));
        }
    }

    #[test]
    fn attribute_discard_cases() {
        for extra in [
            &[0x40u8, 6, 1, 0][..],                      // ATOMIC_AGGREGATE with a value
            &[0xc0, 7, 6, 0xfd, 0xe9, 1, 2, 3, 4],       // AGGREGATOR of 2-octet size
            &[0x40, 7, 8, 0, 0, 0xfd, 0xe9, 1, 2, 3, 4], // AGGREGATOR flags
            &[0x80, 6, 0],                               // ATOMIC_AGGREGATE flags
        ] {
            let u = with_extra(extra).unwrap();
            assert!(!u.is_treat_as_withdraw(), "{extra:?}");
            assert_eq!(u.errors.len(), 1);
            assert_eq!(u.errors[0].action, Rfc7606Action::AttributeDiscard);
            assert_eq!(&u.errors[0].data[..], extra);
            assert_eq!(u.attributes, base_attrs());
        }
    }

    #[test]
    fn missing_well_known_attributes() {
        // No NEXT_HOP with IPv4 NLRI.
        let u = dec(body(&[], &BASE[..13], &[8, 10])).unwrap();
        assert_eq!(u.errors.len(), 1);
        let e = &u.errors[0];
        assert_eq!(e.kind, ErrorKind::MissingWellKnownAttribute(3));
        assert_eq!((e.offset, &e.data[..]), (23, &[3u8][..]));
        assert_eq!(e.notification().subcode, 3);
        assert!(u.is_treat_as_withdraw());
        // Nothing at all with NLRI: ORIGIN, AS_PATH and NEXT_HOP missing.
        let u = dec(body(&[], &[], &[8, 10])).unwrap();
        let kinds: Vec<_> = u.errors.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                ErrorKind::MissingWellKnownAttribute(1),
                ErrorKind::MissingWellKnownAttribute(2),
                ErrorKind::MissingWellKnownAttribute(3)
            ]
        );
        // Without NLRI nothing is mandatory (a withdrawal).
        let u = dec(body(&[8, 10], &[], &[])).unwrap();
        assert!(u.errors.is_empty());
        // MP_REACH only: NEXT_HOP is not required (RFC 4760 §3).
        let mp = [
            0x80, 14, 22, 0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,
        ];
        let mut attrs = mp.to_vec();
        // NLRI ::/0 (one octet: length 0); patch the attribute length.
        attrs[2] = 22;
        let attrs = [&attrs[..], &BASE[..13]].concat();
        let u = dec(body(&[], &attrs, &[])).unwrap();
        assert!(u.errors.is_empty(), "{:?}", u.errors);
        assert_eq!(u.announced().count(), 1);
    }

    #[test]
    fn attribute_overrun_and_underrun_are_treat_as_withdraw() {
        // The last attribute claims 9 octets, 4 remain (RFC 7606 §4).
        let attrs = [&BASE[..], &[0x80, 4, 9, 0, 0, 0, 1]].concat();
        let u = dec(body(&[], &attrs, &[8, 10])).unwrap();
        assert!(u.is_treat_as_withdraw());
        assert_eq!(u.errors.len(), 1);
        assert_eq!(u.errors[0].kind, ErrorKind::AttributeLength(4));
        assert_eq!(u.errors[0].offset, 43);
        assert_eq!(
            u.nlri.count(),
            1,
            "NLRI found through Total Path Attribute Length"
        );
        // Two stray octets after the last attribute.
        let attrs = [&BASE[..], &[0x80, 4]].concat();
        let u = dec(body(&[], &attrs, &[8, 10])).unwrap();
        assert!(u.is_treat_as_withdraw());
        assert_eq!(u.errors[0].kind, ErrorKind::MalformedAttributeList);
        assert_eq!(u.errors[0].offset, 43);
        assert_eq!(u.nlri.count(), 1);
    }

    /// RFC 7607 §2: AS 0 makes AS_PATH malformed (treat-as-withdraw, RFC 7606 §7.2) and
    /// AGGREGATOR malformed (attribute discard, §7.7); on a 2-octet session AS4_PATH and
    /// AS4_AGGREGATOR with AS 0 are discarded (RFC 6793 §6).
    #[test]
    fn as_0_is_malformed_rfc7607() {
        let path = [0x40u8, 2, 10, 2, 2, 0, 0, 0xfd, 0xe9, 0, 0, 0, 0];
        let attrs = [&BASE[..4], &path[..], &BASE[13..]].concat();
        let u = dec(body(&[], &attrs, &[8, 10])).unwrap();
        assert!(u.is_treat_as_withdraw());
        assert_eq!(u.errors.len(), 1);
        assert_eq!(u.errors[0].kind, ErrorKind::MalformedAsPath);
        assert_eq!(u.errors[0].notification().subcode, 11);
        assert_eq!(u.attributes.as_path, None);

        let agg = [0xc0u8, 7, 8, 0, 0, 0, 0, 1, 2, 3, 4];
        let u = with_extra(&agg).unwrap();
        assert!(!u.is_treat_as_withdraw());
        assert_eq!(u.errors.len(), 1);
        assert_eq!(u.errors[0].action, Rfc7606Action::AttributeDiscard);
        assert_eq!(&u.errors[0].data[..], &agg[..]);
        assert_eq!(u.attributes, base_attrs());

        let legacy = Context::legacy();
        for extra in [
            &[0xc0u8, 17, 6, 2, 1, 0, 0, 0, 0][..],
            &[0xc0, 18, 8, 0, 0, 0, 0, 1, 2, 3, 4],
        ] {
            let attrs = [
                &BASE[..4],
                &[0x40, 2, 4, 2, 1, 0x5b, 0xa0],
                &BASE[13..],
                &[0xc0, 7, 6, 0x5b, 0xa0, 1, 2, 3, 4],
                extra,
            ]
            .concat();
            let u = Update::decode(body(&[], &attrs, &[8, 10]), 19, &legacy).unwrap();
            assert_eq!(u.errors.len(), 1, "{extra:?}");
            assert_eq!(u.errors[0].action, Rfc7606Action::AttributeDiscard);
            assert_eq!(u.attributes.as_path.unwrap().to_string(), "23456");
            assert_eq!(u.attributes.aggregator.unwrap().asn, Asn::TRANS);
        }
    }

    #[test]
    fn duplicates_keep_the_first() {
        let u = with_extra(&[0x40, 1, 1, 2]).unwrap();
        assert_eq!(u.attributes.origin, Some(Origin::Igp));
        assert_eq!(u.errors.len(), 1);
        assert_eq!(u.errors[0].action, Rfc7606Action::AttributeDiscard);
        assert_eq!(u.errors[0].offset, 43);
        assert!(!u.is_treat_as_withdraw());
        // A thousand repeats: still one report.
        let many: Vec<u8> = std::iter::repeat_n([0x40u8, 1, 1, 2], 1000)
            .flatten()
            .collect();
        let u = with_extra(&many).unwrap();
        assert_eq!(u.errors.len(), 1);
    }

    fn session_reset(b: Bytes) -> DecodeError {
        let e = dec(b).unwrap_err();
        assert_eq!(e.action, Rfc7606Action::SessionReset);
        e
    }

    #[test]
    fn session_reset_cases() {
        // Withdrawn Routes Length beyond the message.
        let e = session_reset(Bytes::from_static(&[0, 9, 8, 10, 0, 0]));
        assert_eq!(
            (e.kind.clone(), e.offset),
            (ErrorKind::MalformedAttributeList, 19)
        );
        assert_eq!(e.notification().subcode, 1);
        // Total Path Attribute Length beyond the message.
        let e = session_reset(Bytes::from_static(&[0, 0, 0, 30, 0x40, 1, 1, 0]));
        assert_eq!(
            (e.kind.clone(), e.offset),
            (ErrorKind::MalformedAttributeList, 21)
        );
        // NLRI prefix length 33 (RFC 7606 §5.3).
        let e = session_reset(body(&[], &BASE, &[8, 10, 33, 1, 2, 3, 4, 5]));
        assert_eq!(
            (e.kind.clone(), e.offset),
            (ErrorKind::InvalidNetworkField, 45)
        );
        assert_eq!(e.notification().subcode, 10);
        // Truncated NLRI.
        let e = session_reset(body(&[], &BASE, &[24, 10, 0]));
        assert_eq!(e.kind, ErrorKind::InvalidNetworkField);
        // Truncated withdrawn route.
        let e = session_reset(body(&[16, 10], &[], &[]));
        assert_eq!(
            (e.kind.clone(), e.offset),
            (ErrorKind::InvalidNetworkField, 21)
        );
        // Unrecognized well-known attribute.
        let e = session_reset(body(&[], &[0x40, 99, 1, 7], &[]));
        assert_eq!(e.kind, ErrorKind::UnrecognizedWellKnownAttribute(99));
        assert_eq!((e.offset, &e.data[..]), (23, &[0x40u8, 99, 1, 7][..]));
        assert_eq!(e.notification().subcode, 2);
        // MP_UNREACH_NLRI twice (RFC 7606 §3 g).
        let unreach = [0x80u8, 15, 3, 0, 2, 1];
        let e = session_reset(body(&[], &[unreach, unreach].concat(), &[]));
        assert_eq!(
            (e.kind.clone(), e.offset),
            (ErrorKind::MalformedAttributeList, 29)
        );
        // MP_REACH_NLRI with a 5-octet IPv6 next hop (RFC 7606 §7.11).
        let bad_nh = [0x80u8, 14, 10, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0];
        let e = session_reset(body(&[], &bad_nh, &[]));
        assert_eq!(e.kind, ErrorKind::OptionalAttribute(14));
        assert_eq!(&e.data[..], &bad_nh[..]);
        assert_eq!(e.notification().subcode, 9);
        // MP_REACH_NLRI too short for its header.
        let e = session_reset(body(&[], &[0x80, 14, 2, 0, 2], &[]));
        assert_eq!(e.kind, ErrorKind::OptionalAttribute(14));
        // MP_UNREACH_NLRI with an IPv6 prefix of length 129.
        let e = session_reset(body(&[], &[0x80, 15, 5, 0, 2, 1, 129, 0], &[]));
        assert_eq!(
            (e.kind.clone(), e.offset),
            (ErrorKind::InvalidNetworkField, 29)
        );
        // MP_REACH_NLRI with bad flags.
        let e = session_reset(body(&[], &[0xc0, 15, 3, 0, 2, 1], &[]));
        assert_eq!(e.kind, ErrorKind::AttributeFlags(15));
        // MP_REACH_NLRI overrunning the attributes.
        let e = session_reset(body(&[], &[0x80, 15, 9, 0, 2, 1], &[]));
        assert_eq!(e.kind, ErrorKind::AttributeLength(15));
    }

    #[test]
    fn mp_reach_next_hops_both_ways() {
        let ctx = Context::default();
        let g: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let ll: Ipv6Addr = "fe80::1".parse().unwrap();
        for (family, nh) in [
            (AfiSafi::IPV6_UNICAST, NextHop::Ipv6(g)),
            (
                AfiSafi::IPV6_UNICAST,
                NextHop::Ipv6LinkLocal {
                    global: g,
                    link_local: ll,
                },
            ),
            (AfiSafi::IPV4_UNICAST, NextHop::Ipv6(g)), // RFC 8950
            (
                AfiSafi::IPV4_MULTICAST,
                NextHop::Ipv4(Ipv4Addr::new(192, 0, 2, 1)),
            ),
            (
                AfiSafi::new(Afi(25), Safi(70)),
                NextHop::Other(Bytes::from_static(&[1, 2, 3])),
            ),
        ] {
            let nlri = if family.afi == Afi::IPV6 {
                Nlris::new(family, false, [Nlri::new(p("2001:db8:1::/48"))]).unwrap()
            } else if family.is_known() {
                Nlris::new(family, false, [Nlri::new(p("10.1.0.0/16"))]).unwrap()
            } else {
                Nlris::decode(family, false, Buf::copy_from_slice(&[9, 9, 9]), 0, "t").unwrap()
            };
            let u = Update {
                attributes: PathAttributes {
                    next_hop: None,
                    ..base_attrs()
                },
                mp_reach: Some(MpReach {
                    family,
                    next_hop: nh.clone(),
                    nlri,
                }),
                ..Update::default()
            };
            let b = Message::Update(u.clone()).to_bytes(&ctx).unwrap();
            // MP_REACH_NLRI is the first attribute (RFC 7606 §5.1).
            assert_eq!(b[23], 0x80);
            assert_eq!(b[24], 14);
            assert_eq!(usize::from(b[29]), nh.wire_len());
            assert_eq!(Message::decode(b, &ctx).unwrap(), Message::Update(u));
        }
        // IPv6 MP_REACH bytes.
        let attrs = [
            0x80u8, 14, 26, 0, 2, 1, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
            32, 0x20, 1, 0xd, 0xb8,
        ];
        let u = dec(body(&[], &[&attrs[..], &BASE[..13]].concat(), &[])).unwrap();
        let m = u.mp_reach.unwrap();
        assert_eq!(m.next_hop, NextHop::Ipv6(g));
        assert_eq!(m.nlri.iter().next().unwrap().prefix, p("2001:db8::/32"));
    }

    #[test]
    fn end_of_rib_for_every_family() {
        let ctx = Context::default();
        let unknown = AfiSafi::new(Afi(25), Safi(70));
        for f in AfiSafi::KNOWN.into_iter().chain([unknown]) {
            let m = Update::end_of_rib_marker(f);
            assert_eq!(m.end_of_rib(), Some(f));
            let b = Message::Update(m.clone()).to_bytes(&ctx).unwrap();
            if f == AfiSafi::IPV4_UNICAST {
                assert_eq!(&b[16..], &[0, 23, 2, 0, 0, 0, 0]);
            } else {
                let [a0, a1] = f.afi.0.to_be_bytes();
                assert_eq!(
                    &b[16..],
                    &[0, 29, 2, 0, 0, 0, 6, 0x80, 15, 3, a0, a1, f.safi.0]
                );
            }
            let Message::Update(d) = Message::decode(b, &ctx).unwrap() else {
                panic!()
            };
            assert_eq!(d.end_of_rib(), Some(f));
        }
        // Not End-of-RIB: an UPDATE whose only attribute was malformed (RFC 7606 §4: its
        // length overruns) is treat-as-withdraw with nothing to withdraw, not a marker.
        let u = dec(body(&[], &[0x40, 1, 5], &[])).unwrap();
        assert!(u.is_treat_as_withdraw());
        assert_eq!(u.end_of_rib(), None);
        // Not End-of-RIB: anything else present.
        let mut u = Update::end_of_rib_marker(AfiSafi::IPV6_UNICAST);
        u.attributes.origin = Some(Origin::Igp);
        assert_eq!(u.end_of_rib(), None);
        let u = dec(body(&[8, 10], &[], &[])).unwrap();
        assert_eq!(u.end_of_rib(), None);
    }

    #[test]
    fn add_path_nlri() {
        let mut ctx = Context::default();
        ctx.add_path_receive = AfiSafiSet::from_iter([AfiSafi::IPV4_UNICAST]);
        ctx.add_path_send = ctx.add_path_receive;
        let b = body(
            &[0, 0, 0, 9, 8, 11],
            &BASE,
            &[0, 0, 0, 1, 8, 10, 0, 0, 0, 2, 8, 10],
        );
        let u = Update::decode(b.clone(), 19, &ctx).unwrap();
        let ann: Vec<Nlri> = u.announced().map(|(_, n)| n).collect();
        assert_eq!(
            ann,
            vec![
                Nlri::with_path_id(p("10.0.0.0/8"), 1),
                Nlri::with_path_id(p("10.0.0.0/8"), 2)
            ]
        );
        assert_eq!(
            u.withdrawn.iter().next(),
            Some(Nlri::with_path_id(p("11.0.0.0/8"), 9))
        );
        assert_eq!(encode_body(&u, &ctx), b.to_vec());
        // Without ADD-PATH the same bytes are a different (here: invalid) NLRI.
        assert!(dec(b).is_err());
        // Re-encoding for a peer without ADD-PATH drops the ids.
        let out = encode_body(&u, &Context::default());
        assert_eq!(&out[out.len() - 4..], &[8, 10, 8, 10]);
    }

    #[test]
    fn as4_on_two_octet_sessions() {
        let legacy = Context::legacy();
        let path = AsPath::from_sequence([Asn(65001), Asn(4_200_000_001), Asn(65002)]);
        let agg = Aggregator {
            asn: Asn(4_200_000_009),
            address: Ipv4Addr::new(192, 0, 2, 9),
        };
        let attrs = PathAttributes {
            as_path: Some(path.clone()),
            aggregator: Some(agg),
            ..base_attrs()
        };
        let mut out = BytesMut::new();
        attrs.encode(&legacy, &mut out).unwrap();
        let want = [
            &[0x40u8, 1, 1, 0][..],
            &[0x40, 2, 8, 2, 3, 0xfd, 0xe9, 0x5b, 0xa0, 0xfd, 0xea],
            &[0x40, 3, 4, 192, 0, 2, 1],
            &[0xc0, 7, 6, 0x5b, 0xa0, 192, 0, 2, 9],
            &[
                0xc0, 17, 14, 2, 3, 0, 0, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x01, 0, 0, 0xfd, 0xea,
            ],
            &[0xc0, 18, 8, 0xfa, 0x56, 0xea, 0x09, 192, 0, 2, 9],
        ]
        .concat();
        assert_eq!(&out[..], &want[..]);
        let u = Update::decode(body(&[], &want, &[8, 10]), 19, &legacy).unwrap();
        assert!(u.errors.is_empty());
        assert_eq!(u.attributes, attrs);

        // AGGREGATOR other than AS_TRANS: AS4_AGGREGATOR and AS4_PATH ignored (RFC 6793 §4.2.3).
        let mixed = [
            &want[..22],
            &[0xc0, 7, 6, 0xfd, 0xe9, 192, 0, 2, 9],
            &want[31..],
        ]
        .concat();
        let u = Update::decode(body(&[], &mixed, &[8, 10]), 19, &legacy).unwrap();
        assert_eq!(
            u.attributes.as_path.unwrap().to_string(),
            "65001 23456 65002"
        );
        assert_eq!(u.attributes.aggregator.unwrap().asn, Asn(65001));

        // On a 4-octet session AS4_PATH / AS4_AGGREGATOR are discarded.
        let four = [
            &BASE[..],
            &[0xc0, 17, 6, 2, 1, 0, 0, 0, 7],
            &[0xc0, 18, 8, 0, 0, 0, 7, 1, 2, 3, 4],
        ]
        .concat();
        let u = dec(body(&[], &four, &[8, 10])).unwrap();
        assert_eq!(u.attributes, base_attrs());
        assert!(u.errors.is_empty());

        // Malformed AS4_PATH on a 2-octet session: attribute discard, AS_PATH kept.
        let bad = [
            &BASE[..4],
            &[0x40, 2, 4, 2, 1, 0x5b, 0xa0],
            &BASE[13..],
            &[0xc0, 17, 2, 2, 0],
        ]
        .concat();
        let u = Update::decode(body(&[], &bad, &[8, 10]), 19, &legacy).unwrap();
        assert_eq!(u.errors.len(), 1);
        assert_eq!(u.errors[0].action, Rfc7606Action::AttributeDiscard);
        assert_eq!(u.attributes.as_path.unwrap().to_string(), "23456");
    }

    fn ipv4_24(i: u32) -> Nlri {
        Nlri::new(IpNet::V4(
            ipnet::Ipv4Net::new(Ipv4Addr::from((i + 1) << 8), 24).unwrap(),
        ))
    }

    fn decode_all(buf: &[u8], ctx: &Context) -> Vec<Update> {
        let mut b = BytesMut::from(buf);
        let mut v = Vec::new();
        while let Some((_, m)) = crate::header::split_message(&mut b, ctx.max_message_len).unwrap()
        {
            let Message::Update(u) = Message::decode(m, ctx).unwrap() else {
                panic!()
            };
            v.push(u);
        }
        assert!(b.is_empty());
        v
    }

    #[test]
    fn packing_fills_to_exactly_the_limit() {
        let ctx = Context::default();
        let attrs = base_attrs();
        let mut block = BytesMut::new();
        attrs.encode(&ctx, &mut block).unwrap();
        let room = 4096 - 23 - block.len();
        let mut prefixes: Vec<Nlri> = (0..(room / 4) as u32).map(ipv4_24).collect();
        match room % 4 {
            1 => prefixes.push(Nlri::new(p("0.0.0.0/0"))),
            2 => prefixes.push(Nlri::new(p("11.0.0.0/8"))),
            3 => prefixes.push(Nlri::new(p("11.1.0.0/16"))),
            _ => {}
        }
        let mut out = BytesMut::new();
        let n = pack_announce(
            &ctx,
            &attrs,
            AfiSafi::IPV4_UNICAST,
            None,
            prefixes.iter().copied(),
            &mut out,
        )
        .unwrap();
        assert_eq!((n, out.len()), (1, 4096));
        // One more prefix spills into a second message.
        prefixes.push(Nlri::new(p("12.0.0.1/32")));
        out.clear();
        let n = pack_announce(
            &ctx,
            &attrs,
            AfiSafi::IPV4_UNICAST,
            None,
            prefixes.iter().copied(),
            &mut out,
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(u16::from_be_bytes([out[16], out[17]]), 4096);
        let us = decode_all(&out, &ctx);
        assert_eq!(us[1].nlri.count(), 1);
        let got: Vec<Nlri> = us.iter().flat_map(|u| u.nlri.iter()).collect();
        assert_eq!(got, prefixes);
        assert!(
            us.iter()
                .all(|u| u.attributes == attrs && u.errors.is_empty())
        );
    }

    #[test]
    fn packing_mp_and_withdrawals() {
        let mut ctx = Context::default();
        ctx.add_path_send = AfiSafiSet::from_iter([AfiSafi::IPV6_UNICAST]);
        let rx = ctx.peer_view();
        let attrs = PathAttributes {
            next_hop: None,
            ..base_attrs()
        };
        let nh = NextHop::Ipv6("2001:db8::1".parse().unwrap());
        let prefixes: Vec<Nlri> = (0..2000u32)
            .map(|i| Nlri::with_path_id(p(&format!("2001:db8:{i:x}::/48")), i))
            .collect();
        let mut out = BytesMut::new();
        let n = pack_announce(
            &ctx,
            &attrs,
            AfiSafi::IPV6_UNICAST,
            Some(&nh),
            prefixes.iter().copied(),
            &mut out,
        )
        .unwrap();
        let us = decode_all(&out, &rx);
        assert_eq!(us.len(), n);
        // Each message but the last is full: the next prefix (11 octets) would not fit.
        let mut b = &out[..];
        for _ in 0..n - 1 {
            let len = usize::from(u16::from_be_bytes([b[16], b[17]]));
            assert!(len <= 4096 && len + 11 > 4096, "{len}");
            b = &b[len..];
        }
        let got: Vec<Nlri> = us
            .iter()
            .flat_map(|u| u.announced().map(|(_, n)| n))
            .collect();
        assert_eq!(got, prefixes);
        assert!(
            us.iter()
                .all(|u| u.attributes == attrs && u.errors.is_empty())
        );

        // Withdrawals: IPv4 in the Withdrawn Routes field, IPv6 in MP_UNREACH_NLRI.
        out.clear();
        let n = pack_withdraw(
            &ctx,
            AfiSafi::IPV6_UNICAST,
            prefixes.iter().copied(),
            &mut out,
        )
        .unwrap();
        let us = decode_all(&out, &rx);
        assert_eq!(us.len(), n);
        let got: Vec<Nlri> = us
            .iter()
            .flat_map(|u| u.withdrawn_all().map(|(_, n)| n))
            .collect();
        assert_eq!(got, prefixes);
        out.clear();
        let v4: Vec<Nlri> = (0..3000).map(ipv4_24).collect();
        let n = pack_withdraw(&ctx, AfiSafi::IPV4_UNICAST, v4.iter().copied(), &mut out).unwrap();
        // (4096 - 23) / 4 = 1018 prefixes per message.
        assert_eq!(n, 3);
        assert_eq!(u16::from_be_bytes([out[16], out[17]]), 23 + 1018 * 4);
        let got: Vec<Nlri> = decode_all(&out, &rx)
            .iter()
            .flat_map(|u| u.withdrawn.iter())
            .collect();
        assert_eq!(got, v4);
    }

    #[test]
    fn packing_errors_leave_the_buffer_alone() {
        let ctx = Context::default();
        let mut out = BytesMut::from(&b"xy"[..]);
        let huge = PathAttributes {
            communities: Some(Communities::new((0..1100).map(Community))),
            ..base_attrs()
        };
        let e = pack_announce(
            &ctx,
            &huge,
            AfiSafi::IPV4_UNICAST,
            None,
            [ipv4_24(1)],
            &mut out,
        );
        assert!(matches!(e, Err(EncodeError::TooLong { .. })));
        let e = pack_announce(
            &ctx,
            &base_attrs(),
            AfiSafi::IPV4_UNICAST,
            None,
            [ipv4_24(1), Nlri::new(p("::/0"))],
            &mut out,
        );
        assert!(e.is_err());
        let e = pack_announce(
            &ctx,
            &base_attrs(),
            AfiSafi::IPV6_UNICAST,
            None,
            [Nlri::new(p("::/0"))],
            &mut out,
        );
        assert!(e.is_err());
        assert_eq!(&out[..], b"xy");
        assert_eq!(
            pack_withdraw(&ctx, AfiSafi::IPV4_UNICAST, [], &mut out),
            Ok(0)
        );
        // An explicit IPv4 next hop overrides the attribute's.
        let nh = NextHop::Ipv4(Ipv4Addr::new(10, 9, 9, 9));
        pack_announce(
            &ctx,
            &base_attrs(),
            AfiSafi::IPV4_UNICAST,
            Some(&nh),
            [ipv4_24(1)],
            &mut out,
        )
        .unwrap();
        let us = decode_all(&out[2..], &ctx);
        assert_eq!(us[0].attributes.next_hop, Some(Ipv4Addr::new(10, 9, 9, 9)));
    }

    // ---- proptest ----

    fn arb_attrs(confed: bool) -> impl Strategy<Value = PathAttributes> {
        let seg = (
            if confed { 1u8..=4 } else { 1u8..=2 },
            // AS 0 makes a path malformed (RFC 7607 §2).
            proptest::collection::vec(1u32.., 1..8),
        )
            .prop_map(|(k, v)| Segment {
                kind: SegmentType::from_code(k).unwrap(),
                asns: v.into_iter().map(Asn).collect(),
            });
        let path = proptest::collection::vec(seg, 0..4).prop_map(AsPath::from_segments);
        let ip = any::<u32>().prop_map(Ipv4Addr::from);
        // A NEXT_HOP is a host address (RFC 4271 §6.3): not 0.0.0.0, multicast or broadcast.
        let host = ip.clone().prop_filter("a host address", |a| {
            !(a.is_unspecified() || a.is_multicast() || a.is_broadcast())
        });
        let unknown = proptest::collection::btree_map(
            prop_oneof![11u8..14, 19u8..32, 36u8..=255],
            (
                prop_oneof![Just(0x80u8), Just(0xc0), Just(0xe0)],
                proptest::collection::vec(any::<u8>(), 0..300),
            ),
            0..3,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(t, (f, v))| RawAttribute {
                    flags: f,
                    type_code: t,
                    value: Bytes::from(v),
                })
                .collect::<Vec<_>>()
        });
        (
            (
                proptest::option::of(prop_oneof![
                    Just(Origin::Igp),
                    Just(Origin::Egp),
                    Just(Origin::Incomplete)
                ]),
                proptest::option::of(path),
                proptest::option::of(host),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
                any::<bool>(),
                proptest::option::of((1u32.., ip.clone()).prop_map(|(a, i)| Aggregator {
                    asn: Asn(a),
                    address: i,
                })),
            ),
            (
                proptest::option::of(
                    proptest::collection::vec(any::<u32>(), 1..80)
                        .prop_map(|v| Communities::new(v.into_iter().map(Community))),
                ),
                proptest::option::of(ip.clone()),
                proptest::option::of(
                    proptest::collection::vec(ip, 1..4).prop_map(ClusterList::new),
                ),
                proptest::option::of(
                    proptest::collection::vec(any::<[u8; 8]>(), 1..5)
                        .prop_map(|v| ExtCommunities::new(v.into_iter().map(ExtCommunity))),
                ),
                proptest::option::of(
                    proptest::collection::vec(any::<(u32, u32, u32)>(), 1..30).prop_map(|v| {
                        LargeCommunities::new(
                            v.into_iter().map(|(a, b, c)| LargeCommunity::new(a, b, c)),
                        )
                    }),
                ),
                proptest::option::of(any::<u32>().prop_map(Asn)),
                unknown,
            ),
        )
            .prop_map(
                |(
                    (origin, as_path, next_hop, med, local_pref, atomic_aggregate, aggregator),
                    (
                        communities,
                        originator_id,
                        cluster_list,
                        ext_communities,
                        large_communities,
                        otc,
                        unknown,
                    ),
                )| PathAttributes {
                    origin,
                    as_path,
                    next_hop,
                    med,
                    local_pref,
                    atomic_aggregate,
                    aggregator,
                    communities,
                    originator_id,
                    cluster_list,
                    ext_communities,
                    large_communities,
                    otc,
                    unknown,
                },
            )
    }

    fn arb_update(confed: bool, v4_ids: bool, v6_ids: bool) -> impl Strategy<Value = Update> {
        let v4 = move || {
            proptest::collection::vec(arb_nlri(false, v4_ids), 0..6)
                .prop_map(move |v| Nlris::new(AfiSafi::IPV4_UNICAST, v4_ids, v).unwrap())
        };
        let v6 = proptest::collection::vec(arb_nlri(true, v6_ids), 0..6)
            .prop_map(move |v| Nlris::new(AfiSafi::IPV6_UNICAST, v6_ids, v).unwrap());
        let v6w = proptest::collection::vec(arb_nlri(true, v6_ids), 0..6)
            .prop_map(move |v| Nlris::new(AfiSafi::IPV6_UNICAST, v6_ids, v).unwrap());
        let nh = prop_oneof![
            any::<u128>().prop_map(|a| NextHop::Ipv6(Ipv6Addr::from(a))),
            (any::<u128>(), any::<u128>()).prop_map(|(a, b)| NextHop::Ipv6LinkLocal {
                global: Ipv6Addr::from(a),
                link_local: Ipv6Addr::from(b)
            }),
        ];
        (
            v4(),
            arb_attrs(confed),
            v4(),
            proptest::option::of((nh, v6)),
            proptest::option::of(v6w),
        )
            .prop_map(|(withdrawn, mut attributes, nlri, mp, mpu)| {
                // Mandatory attributes present whenever something is announced.
                if !nlri.is_empty() || mp.is_some() {
                    attributes.origin.get_or_insert(Origin::Igp);
                    attributes.as_path.get_or_insert_with(AsPath::empty);
                }
                if !nlri.is_empty() {
                    attributes.next_hop.get_or_insert(Ipv4Addr::LOCALHOST);
                }
                Update {
                    withdrawn,
                    attributes,
                    nlri,
                    mp_reach: mp.map(|(next_hop, nlri)| MpReach {
                        family: AfiSafi::IPV6_UNICAST,
                        next_hop,
                        nlri,
                    }),
                    mp_unreach: mpu.map(|withdrawn| MpUnreach {
                        family: AfiSafi::IPV6_UNICAST,
                        withdrawn,
                    }),
                    errors: Vec::new(),
                }
            })
    }

    proptest! {
        #[test]
        fn update_round_trip(u in arb_update(true, false, false)) {
            let mut ctx = Context::default();
            ctx.max_message_len = 65535;
            let b = Message::Update(u.clone()).to_bytes(&ctx).unwrap();
            prop_assert_eq!(Message::decode(b, &ctx).unwrap(), Message::Update(u));
        }

        #[test]
        fn update_round_trip_add_path(u in arb_update(true, true, true)) {
            let mut ctx = Context::default();
            ctx.max_message_len = 65535;
            ctx.add_path_send = AfiSafiSet::from_iter([AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]);
            let rx = ctx.peer_view();
            let b = Message::Update(u.clone()).to_bytes(&ctx).unwrap();
            prop_assert_eq!(Message::decode(b, &rx).unwrap(), Message::Update(u));
        }

        #[test]
        fn update_round_trip_two_octet(u in arb_update(false, false, false)) {
            let mut ctx = Context::legacy();
            ctx.max_message_len = 65535;
            let b = Message::Update(u.clone()).to_bytes(&ctx).unwrap();
            prop_assert_eq!(Message::decode(b, &ctx).unwrap(), Message::Update(u));
        }

        #[test]
        fn attributes_round_trip(a in arb_attrs(true)) {
            let ctx = Context::default();
            let mut out = BytesMut::new();
            a.encode(&ctx, &mut out).unwrap();
            let mut u = Update::new();
            let b = out.freeze();
            attribute::decode_block(&b, 0, b.len(), 23, &ctx, &mut u, &mut BlockInfo::default()).unwrap();
            prop_assert!(u.errors.is_empty());
            prop_assert_eq!(u.attributes, a);
        }

        #[test]
        fn mutated_updates_never_panic(
            u in arb_update(true, false, false),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            legacy in any::<bool>(),
        ) {
            let ctx = Context { max_message_len: 65535, ..Context::default() };
            let mut body = BytesMut::new();
            u.encode_body(&ctx, &mut body).unwrap();
            let mut raw = body.to_vec();
            if raw.is_empty() {
                return Ok(());
            }
            for (i, v) in flips {
                let at = i.index(raw.len());
                raw[at] = v;
            }
            let rx = if legacy { Context::legacy() } else { ctx };
            match Update::decode(Bytes::from(raw), 19, &rx) {
                Ok(d) => {
                    let _ = d.announced().count() + d.withdrawn_all().count();
                    let _ = d.is_treat_as_withdraw();
                    let _ = Message::Update(d).to_bytes(&ctx);
                }
                Err(e) => {
                    prop_assert_eq!(e.action, Rfc7606Action::SessionReset);
                    let _ = e.notification();
                }
            }
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200), legacy in any::<bool>()) {
            let ctx = if legacy { Context::legacy() } else { Context::default() };
            if let Ok(u) = Update::decode(Bytes::from(raw), 19, &ctx) {
                let _ = u.announced().count() + u.withdrawn_all().count();
                let _ = Message::Update(u).to_bytes(&Context { max_message_len: 65535, ..ctx });
            }
        }

        #[test]
        fn packer_round_trip(
            attrs in arb_attrs(true),
            prefixes in proptest::collection::vec(arb_nlri(false, false), 1..3000),
        ) {
            let ctx = Context::default();
            let attrs = PathAttributes { next_hop: Some(Ipv4Addr::LOCALHOST), ..attrs };
            let mut out = BytesMut::new();
            match pack_announce(&ctx, &attrs, AfiSafi::IPV4_UNICAST, None, prefixes.iter().copied(), &mut out) {
                Ok(n) => {
                    let us = decode_all(&out, &ctx);
                    prop_assert_eq!(us.len(), n);
                    let got: Vec<Nlri> = us.iter().flat_map(|u| u.nlri.iter()).collect();
                    prop_assert_eq!(got, prefixes);
                }
                Err(EncodeError::TooLong { .. }) => prop_assert!(out.is_empty()),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
