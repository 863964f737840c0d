//! UPDATE messages (RFC 4271 §4.3), multiprotocol reachability (RFC 4760), End-of-RIB
//! (RFC 4724 §2) and revised error handling (RFC 7606).

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

use crate::attribute::{self, NextHopMode, PathAttributes, type_code as tc};
use crate::context::Context;
use crate::error::{DecodeError, EncodeError, ErrorKind, Rfc7606Action};
use crate::nlri::{Nlri, Nlris};
use crate::reader::Reader;
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
    /// Decodes the attribute value whose first byte is at `offset` in the message. Any
    /// malformation is a session reset (RFC 7606 §7.11).
    pub(crate) fn decode(
        value: Bytes,
        offset: usize,
        ctx: &Context,
        err: AttrErr<'_>,
    ) -> Result<MpReach, DecodeError> {
        let bad = || err(ErrorKind::OptionalAttribute(tc::MP_REACH_NLRI));
        let &[a0, a1, safi, nh_len, ..] = &*value else {
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
            NextHop::Other(value.slice(4..nh_end))
        };
        let nlri = Nlris::decode(
            family,
            ctx.receive_path_ids(family),
            value.slice(nh_end + 1..),
            offset + nh_end + 1,
            "UPDATE MP_REACH_NLRI NLRI",
        )?;
        Ok(MpReach {
            family,
            next_hop,
            nlri,
        })
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
    /// Decodes the attribute value whose first byte is at `offset` in the message (RFC 7606
    /// §7.12: malformation is a session reset).
    pub(crate) fn decode(
        value: Bytes,
        offset: usize,
        ctx: &Context,
        err: AttrErr<'_>,
    ) -> Result<MpUnreach, DecodeError> {
        let &[a0, a1, safi, ..] = &*value else {
            return Err(err(ErrorKind::OptionalAttribute(tc::MP_UNREACH_NLRI)));
        };
        let family = AfiSafi::new(Afi(u16::from_be_bytes([a0, a1])), Safi(safi));
        let withdrawn = Nlris::decode(
            family,
            ctx.receive_path_ids(family),
            value.slice(3..),
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
    pub fn decode(body: Bytes, offset: usize, ctx: &Context) -> Result<Update, DecodeError> {
        let list_err =
            |at: usize| DecodeError::new(ErrorKind::MalformedAttributeList, "UPDATE lengths", at);
        let mut r = Reader::new(body, offset);
        let at = r.offset();
        let wd_len = usize::from(
            r.u16("UPDATE withdrawn routes length")
                .map_err(|_| list_err(at))?,
        );
        let wd_off = r.offset();
        let wd = r
            .take(wd_len, "UPDATE withdrawn routes")
            .map_err(|_| list_err(at))?;
        let at = r.offset();
        let attr_len = usize::from(
            r.u16("UPDATE total path attribute length")
                .map_err(|_| list_err(at))?,
        );
        let attr_off = r.offset();
        let attrs = r
            .take(attr_len, "UPDATE path attributes")
            .map_err(|_| list_err(at))?;
        let nlri_off = r.offset();
        let nlri_raw = r.take_rest();

        let v4 = AfiSafi::IPV4_UNICAST;
        let pid = ctx.receive_path_ids(v4);
        let withdrawn = Nlris::decode(v4, pid, wd, wd_off, "UPDATE withdrawn routes")?;
        let nlri = Nlris::decode(v4, pid, nlri_raw, nlri_off, "UPDATE NLRI")?;
        let mut block = attribute::decode_block(attrs, attr_off, ctx)?;

        // RFC 7606 §3 (d): missing well-known mandatory attributes, when there is NLRI.
        // NEXT_HOP is needed only for the IPv4 NLRI field (RFC 4760 §3).
        let reach = !nlri.is_empty() || block.mp_reach.is_some();
        if reach && !block.stopped {
            let mut required = [tc::ORIGIN, tc::AS_PATH, 0];
            if !nlri.is_empty() {
                required[2] = tc::NEXT_HOP;
            }
            for code in required.into_iter().filter(|&c| c != 0) {
                if !block.seen.contains(code) {
                    block.errors.push(
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
        Ok(Update {
            withdrawn,
            attributes: block.attrs,
            nlri,
            mp_reach: block.mp_reach,
            mp_unreach: block.mp_unreach,
            errors: block.errors,
        })
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
    pub fn is_treat_as_withdraw(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.action == Rfc7606Action::TreatAsWithdraw)
    }

    /// The family whose End-of-RIB marker this UPDATE is (RFC 4724 §2), if it is one: an
    /// empty UPDATE for IPv4 unicast, an UPDATE with nothing but an empty MP_UNREACH_NLRI
    /// for the other families.
    pub fn end_of_rib(&self) -> Option<AfiSafi> {
        let bare = self.withdrawn.is_empty()
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
    pub fn announced(&self) -> impl Iterator<Item = (AfiSafi, Nlri)> + '_ {
        let v4 = self.nlri.iter().map(|n| (AfiSafi::IPV4_UNICAST, n));
        let mp = self
            .mp_reach
            .iter()
            .flat_map(|m| m.nlri.iter().map(move |n| (m.family, n)));
        v4.chain(mp)
    }

    /// Every withdrawn prefix with its family: the Withdrawn Routes field, then
    /// MP_UNREACH_NLRI.
    pub fn withdrawn_all(&self) -> impl Iterator<Item = (AfiSafi, Nlri)> + '_ {
        let v4 = self.withdrawn.iter().map(|n| (AfiSafi::IPV4_UNICAST, n));
        let mp = self
            .mp_unreach
            .iter()
            .flat_map(|m| m.withdrawn.iter().map(move |n| (m.family, n)));
        v4.chain(mp)
    }

    /// The number of prefixes announced plus withdrawn.
    pub fn prefix_count(&self) -> usize {
        self.withdrawn.count()
            + self.nlri.count()
            + self.mp_reach.as_ref().map_or(0, |m| m.nlri.count())
            + self.mp_unreach.as_ref().map_or(0, |m| m.withdrawn.count())
    }
}
