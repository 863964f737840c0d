//! Path attributes (RFC 4271 §4.3, §5) and their RFC 7606 error handling.
//!
//! [`PathAttributes`] holds one field per attribute this codec interprets plus the unknown
//! ones as raw bytes. It carries no NLRI (MP_REACH_NLRI and MP_UNREACH_NLRI live in
//! [`Update`]), so a RIB can intern it: it is `Eq + Hash` and cheap to clone
//! (the variable-length values are `Bytes` slices of the received message).

use std::net::Ipv4Addr;

use bytes::{BufMut, Bytes, BytesMut};

use crate::aspath::AsPath;
use crate::community::{ClusterList, Communities, ExtCommunities, LargeCommunities};
use crate::context::Context;
use crate::error::{DecodeError, EncodeError, ErrorKind, Rfc7606Action};
use crate::types::Asn;
use crate::update::{MpReach, MpUnreach, Update};

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod type_code {
    /// ORIGIN (RFC 4271 §5.1.1).
    pub const ORIGIN: u8 = 1;
    /// AS_PATH (RFC 4271 §5.1.2).
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP (RFC 4271 §5.1.3).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC (RFC 4271 §5.1.4).
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// LOCAL_PREF (RFC 4271 §5.1.5).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE (RFC 4271 §5.1.6).
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR (RFC 4271 §5.1.7).
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID (RFC 4456).
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST (RFC 4456).
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// EXTENDED COMMUNITIES (RFC 4360).
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITY: u8 = 32;
    /// Only to Customer (RFC 9234).
    pub const OTC: u8 = 35;
}

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flags {
    /// Optional (set) or well-known (clear).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: an optional transitive attribute some speaker passed on without knowing it.
    pub const PARTIAL: u8 = 0x20;
    /// The length field is two octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

use flags::{EXTENDED_LENGTH, OPTIONAL, PARTIAL, TRANSITIVE};
use type_code as tc;

/// ORIGIN (RFC 4271 §5.1.1). The order is the RFC 4271 §9.1.2.2 (c) preference: IGP first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Origin {
    /// IGP (0): interior to the originating AS.
    #[default]
    Igp,
    /// EGP (1): learned via EGP.
    Egp,
    /// INCOMPLETE (2): learned some other way.
    Incomplete,
}

impl Origin {
    /// The wire value.
    #[inline]
    pub fn code(self) -> u8 {
        match self {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }
    }

    /// The origin for a wire value, if defined.
    #[inline]
    pub fn from_code(v: u8) -> Option<Self> {
        Some(match v {
            0 => Origin::Igp,
            1 => Origin::Egp,
            2 => Origin::Incomplete,
            _ => return None,
        })
    }
}

/// AGGREGATOR (RFC 4271 §5.1.7; 4-octet AS per RFC 6793): who formed an aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Aggregator {
    /// The AS of the aggregating speaker.
    pub asn: Asn,
    /// Its BGP identifier.
    pub address: Ipv4Addr,
}

/// An attribute this codec does not interpret (RFC 4271 §5: optional attributes a speaker
/// does not recognise), kept with its flags so that it can be passed on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawAttribute {
    /// The flags as received (the Extended Length bit is recomputed when encoding).
    pub flags: u8,
    /// The type code.
    pub type_code: u8,
    /// The value.
    pub value: Bytes,
}

impl RawAttribute {
    /// Whether the Optional bit is set.
    pub fn is_optional(&self) -> bool {
        self.flags & OPTIONAL != 0
    }

    /// Whether the Transitive bit is set.
    pub fn is_transitive(&self) -> bool {
        self.flags & TRANSITIVE != 0
    }

    /// Whether the Partial bit is set.
    pub fn is_partial(&self) -> bool {
        self.flags & PARTIAL != 0
    }
}

/// The path attributes of an UPDATE other than MP_REACH_NLRI / MP_UNREACH_NLRI
/// (RFC 4271 §4.3, §5). AS4_PATH and AS4_AGGREGATOR never appear here: on 2-octet sessions
/// they are merged into `as_path` and `aggregator` when decoding and generated again when
/// encoding (RFC 6793 §4.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    /// ORIGIN (RFC 4271 §5.1.1), well-known mandatory.
    pub origin: Option<Origin>,
    /// AS_PATH (RFC 4271 §5.1.2), well-known mandatory; 4-octet canonical form.
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (RFC 4271 §5.1.3), for IPv4 NLRI in the NLRI field.
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC (RFC 4271 §5.1.4).
    pub med: Option<u32>,
    /// LOCAL_PREF (RFC 4271 §5.1.5).
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE (RFC 4271 §5.1.6).
    pub atomic_aggregate: bool,
    /// AGGREGATOR (RFC 4271 §5.1.7), 4-octet AS.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES (RFC 1997).
    pub communities: Option<Communities>,
    /// ORIGINATOR_ID (RFC 4456 §8).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456 §8).
    pub cluster_list: Option<ClusterList>,
    /// EXTENDED COMMUNITIES (RFC 4360).
    pub ext_communities: Option<ExtCommunities>,
    /// LARGE_COMMUNITY (RFC 8092).
    pub large_communities: Option<LargeCommunities>,
    /// Only to Customer (RFC 9234 §5).
    pub otc: Option<Asn>,
    /// Attributes not interpreted here, in ascending type-code order.
    pub unknown: Vec<RawAttribute>,
}

/// What to do with NEXT_HOP when encoding an attribute block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NextHopMode {
    /// Write `next_hop` as it is.
    Keep,
    /// Write this next hop instead.
    Set(Ipv4Addr),
    /// Leave NEXT_HOP out (MP_REACH_NLRI carries the next hop, RFC 4760 §3).
    Omit,
}

impl PathAttributes {
    /// No attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes every attribute, keeping the capacity of `unknown`.
    #[inline]
    pub(crate) fn clear(&mut self) {
        // Field by field: resetting an `Option` writes its discriminant only.
        let PathAttributes {
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
        } = self;
        *origin = None;
        *as_path = None;
        *next_hop = None;
        *med = None;
        *local_pref = None;
        *atomic_aggregate = false;
        *aggregator = None;
        *communities = None;
        *originator_id = None;
        *cluster_list = None;
        *ext_communities = None;
        *large_communities = None;
        *otc = None;
        unknown.clear();
    }

    /// Whether no attribute is present.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The attributes as they are passed on to another peer (RFC 4271 §5, §9.1.3):
    /// unrecognised optional non-transitive attributes are dropped, unrecognised optional
    /// transitive ones get the Partial bit set.
    pub fn for_propagation(&self) -> PathAttributes {
        let mut out = self.clone();
        out.unknown = self
            .unknown
            .iter()
            .filter(|a| a.is_optional() && a.is_transitive())
            .map(|a| RawAttribute {
                flags: a.flags | PARTIAL,
                ..a.clone()
            })
            .collect();
        out
    }

    /// A copy that shares no memory with the message it was decoded from, so that keeping
    /// it (in a RIB) does not keep the received buffer alive. Small values are inline
    /// already; only large ones are copied.
    pub fn detached(&self) -> PathAttributes {
        PathAttributes {
            as_path: self.as_path.as_ref().map(AsPath::detached),
            communities: self.communities.as_ref().map(Communities::detached),
            cluster_list: self.cluster_list.as_ref().map(ClusterList::detached),
            ext_communities: self.ext_communities.as_ref().map(ExtCommunities::detached),
            large_communities: self
                .large_communities
                .as_ref()
                .map(LargeCommunities::detached),
            unknown: self
                .unknown
                .iter()
                .map(|a| RawAttribute {
                    value: Bytes::copy_from_slice(&a.value),
                    ..a.clone()
                })
                .collect(),
            ..self.clone()
        }
    }

    /// The unknown attribute of this type code, if present.
    pub fn unknown_attribute(&self, type_code: u8) -> Option<&RawAttribute> {
        self.unknown.iter().find(|a| a.type_code == type_code)
    }

    /// Appends the attribute block (RFC 4271 §4.3) for this session: ascending type codes,
    /// Extended Length only when a value exceeds 255 octets. On a 2-octet session, AS
    /// numbers that do not fit become AS_TRANS and AS4_PATH / AS4_AGGREGATOR carry the real
    /// ones (RFC 6793 §4.2.2). Unknown attributes whose type code is one of those encoded
    /// here are skipped.
    pub fn encode(&self, ctx: &Context, out: &mut BytesMut) -> Result<(), EncodeError> {
        self.encode_with(ctx, NextHopMode::Keep, out)
    }

    pub(crate) fn encode_with(
        &self,
        ctx: &Context,
        nh: NextHopMode,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let four = ctx.four_octet_as;
        let mut unknown = UnknownCursor::new(&self.unknown);
        let wk = TRANSITIVE;
        let ot = OPTIONAL | TRANSITIVE;
        let on = OPTIONAL;

        // Type code 0 is reserved, but an unknown attribute may carry it.
        unknown.up_to(tc::ORIGIN, out)?;
        if let Some(o) = self.origin {
            put_header(out, wk, tc::ORIGIN, 1)?;
            out.put_u8(o.code());
        }
        if let Some(p) = &self.as_path {
            put_header(out, wk, tc::AS_PATH, p.encoded_len(four))?;
            p.encode_value(four, out);
        }
        let next_hop = match nh {
            NextHopMode::Keep => self.next_hop,
            NextHopMode::Set(a) => Some(a),
            NextHopMode::Omit => None,
        };
        if let Some(a) = next_hop {
            put_header(out, wk, tc::NEXT_HOP, 4)?;
            out.put_slice(&a.octets());
        }
        if let Some(m) = self.med {
            put_header(out, on, tc::MULTI_EXIT_DISC, 4)?;
            out.put_u32(m);
        }
        if let Some(l) = self.local_pref {
            put_header(out, wk, tc::LOCAL_PREF, 4)?;
            out.put_u32(l);
        }
        if self.atomic_aggregate {
            put_header(out, wk, tc::ATOMIC_AGGREGATE, 0)?;
        }
        if let Some(a) = self.aggregator {
            if four {
                put_header(out, ot, tc::AGGREGATOR, 8)?;
                out.put_u32(a.asn.0);
            } else {
                put_header(out, ot, tc::AGGREGATOR, 6)?;
                out.put_u16(a.asn.to_two_octet());
            }
            out.put_slice(&a.address.octets());
        }
        if let Some(c) = &self.communities {
            put_raw(out, ot, tc::COMMUNITIES, c.raw())?;
        }
        if let Some(a) = self.originator_id {
            put_header(out, on, tc::ORIGINATOR_ID, 4)?;
            out.put_slice(&a.octets());
        }
        if let Some(c) = &self.cluster_list {
            put_raw(out, on, tc::CLUSTER_LIST, c.raw())?;
        }
        unknown.up_to(tc::EXTENDED_COMMUNITIES, out)?;
        if let Some(c) = &self.ext_communities {
            put_raw(out, ot, tc::EXTENDED_COMMUNITIES, c.raw())?;
        }
        if !four {
            if let Some(p) = self.as_path.as_ref().filter(|p| p.needs_as4()) {
                let p4 = p.without_confed();
                put_raw(out, ot, tc::AS4_PATH, p4.raw())?;
            }
            if let Some(a) = self.aggregator.filter(|a| !a.asn.is_two_octet()) {
                put_header(out, ot, tc::AS4_AGGREGATOR, 8)?;
                out.put_u32(a.asn.0);
                out.put_slice(&a.address.octets());
            }
        }
        unknown.up_to(tc::LARGE_COMMUNITY, out)?;
        if let Some(c) = &self.large_communities {
            put_raw(out, ot, tc::LARGE_COMMUNITY, c.raw())?;
        }
        unknown.up_to(tc::OTC, out)?;
        if let Some(a) = self.otc {
            put_header(out, ot, tc::OTC, 4)?;
            out.put_u32(a.0);
        }
        unknown.last(out)
    }
}

/// Whether a type code is one that [`PathAttributes`] (or the UPDATE) encodes itself.
fn is_handled(code: u8) -> bool {
    matches!(code, 1..=10 | 14..=18 | tc::LARGE_COMMUNITY | tc::OTC)
}

/// Walks the unknown attributes in type-code order while the known ones are written.
struct UnknownCursor<'a> {
    sorted: Vec<&'a RawAttribute>,
    next: usize,
}

impl<'a> UnknownCursor<'a> {
    fn new(unknown: &'a [RawAttribute]) -> Self {
        let mut sorted: Vec<&RawAttribute> = unknown
            .iter()
            .filter(|a| !is_handled(a.type_code))
            .collect();
        sorted.sort_by_key(|a| a.type_code);
        UnknownCursor { sorted, next: 0 }
    }

    /// Writes the unknown attributes with a type code below `code`.
    fn up_to(&mut self, code: u8, out: &mut BytesMut) -> Result<(), EncodeError> {
        while let Some(a) = self.sorted.get(self.next).filter(|a| a.type_code < code) {
            put_raw(out, a.flags, a.type_code, &a.value)?;
            self.next += 1;
        }
        Ok(())
    }

    /// Writes the rest (type code 255).
    fn last(&mut self, out: &mut BytesMut) -> Result<(), EncodeError> {
        while let Some(a) = self.sorted.get(self.next) {
            put_raw(out, a.flags, a.type_code, &a.value)?;
            self.next += 1;
        }
        Ok(())
    }
}

/// Writes an attribute header: Extended Length only when the value exceeds 255 octets.
#[inline]
pub(crate) fn put_header(
    out: &mut BytesMut,
    flags: u8,
    code: u8,
    len: usize,
) -> Result<(), EncodeError> {
    let flags = flags & !(EXTENDED_LENGTH | 0x0f);
    if len > 255 {
        let l = u16::try_from(len).map_err(|_| EncodeError::FieldTooLong {
            field: "path attribute",
            len,
        })?;
        out.put_u8(flags | EXTENDED_LENGTH);
        out.put_u8(code);
        out.put_u16(l);
    } else {
        out.put_u8(flags);
        out.put_u8(code);
        out.put_u8(len as u8);
    }
    Ok(())
}

/// The header length [`put_header`] writes for a value of `len` octets.
#[inline]
pub(crate) fn header_len(len: usize) -> usize {
    if len > 255 { 4 } else { 3 }
}

fn put_raw(out: &mut BytesMut, flags: u8, code: u8, value: &[u8]) -> Result<(), EncodeError> {
    put_header(out, flags, code, value.len())?;
    out.put_slice(value);
    Ok(())
}

/// The field name of an attribute, for errors.
pub(crate) fn field_name(code: u8) -> &'static str {
    match code {
        tc::ORIGIN => "UPDATE attribute ORIGIN",
        tc::AS_PATH => "UPDATE attribute AS_PATH",
        tc::NEXT_HOP => "UPDATE attribute NEXT_HOP",
        tc::MULTI_EXIT_DISC => "UPDATE attribute MULTI_EXIT_DISC",
        tc::LOCAL_PREF => "UPDATE attribute LOCAL_PREF",
        tc::ATOMIC_AGGREGATE => "UPDATE attribute ATOMIC_AGGREGATE",
        tc::AGGREGATOR => "UPDATE attribute AGGREGATOR",
        tc::COMMUNITIES => "UPDATE attribute COMMUNITIES",
        tc::ORIGINATOR_ID => "UPDATE attribute ORIGINATOR_ID",
        tc::CLUSTER_LIST => "UPDATE attribute CLUSTER_LIST",
        tc::MP_REACH_NLRI => "UPDATE attribute MP_REACH_NLRI",
        tc::MP_UNREACH_NLRI => "UPDATE attribute MP_UNREACH_NLRI",
        tc::EXTENDED_COMMUNITIES => "UPDATE attribute EXTENDED_COMMUNITIES",
        tc::AS4_PATH => "UPDATE attribute AS4_PATH",
        tc::AS4_AGGREGATOR => "UPDATE attribute AS4_AGGREGATOR",
        tc::LARGE_COMMUNITY => "UPDATE attribute LARGE_COMMUNITY",
        tc::OTC => "UPDATE attribute OTC",
        _ => "UPDATE attribute",
    }
}

/// The Optional and Transitive bits an attribute must carry, and what RFC 7606 prescribes
/// when it is malformed (§7.1-§7.14, RFC 6793 §6, RFC 8092 §5, RFC 9234 §5).
const fn spec(code: u8) -> Option<(u8, Rfc7606Action)> {
    use Rfc7606Action::*;
    Some(match code {
        tc::ORIGIN | tc::AS_PATH | tc::NEXT_HOP | tc::LOCAL_PREF => (TRANSITIVE, TreatAsWithdraw),
        tc::ATOMIC_AGGREGATE => (TRANSITIVE, AttributeDiscard),
        tc::MULTI_EXIT_DISC | tc::ORIGINATOR_ID | tc::CLUSTER_LIST => (OPTIONAL, TreatAsWithdraw),
        tc::AGGREGATOR | tc::AS4_PATH | tc::AS4_AGGREGATOR => {
            (OPTIONAL | TRANSITIVE, AttributeDiscard)
        }
        tc::COMMUNITIES | tc::EXTENDED_COMMUNITIES | tc::LARGE_COMMUNITY | tc::OTC => {
            (OPTIONAL | TRANSITIVE, TreatAsWithdraw)
        }
        tc::MP_REACH_NLRI | tc::MP_UNREACH_NLRI => (OPTIONAL, SessionReset),
        _ => return None,
    })
}

/// [`spec`] for every type code, one octet each: the required Optional and Transitive bits,
/// plus the action in the low bits (0 for a type code this codec does not interpret).
const SPEC: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match spec(i as u8) {
            Some((want, Rfc7606Action::AttributeDiscard)) => want | 1,
            Some((want, Rfc7606Action::TreatAsWithdraw)) => want | 2,
            Some((want, Rfc7606Action::SessionReset)) => want | 3,
            None => 0,
        };
        i += 1;
    }
    t
};

/// The action encoded in a [`SPEC`] entry (which must not be 0).
#[cold]
fn spec_action(entry: u8) -> Rfc7606Action {
    match entry & 3 {
        1 => Rfc7606Action::AttributeDiscard,
        2 => Rfc7606Action::TreatAsWithdraw,
        _ => Rfc7606Action::SessionReset,
    }
}

/// A 256-bit set of attribute type codes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Seen([u64; 4]);

impl Seen {
    /// Inserts; returns false if it was already there.
    fn insert(&mut self, code: u8) -> bool {
        let (w, b) = (usize::from(code >> 6), code & 63);
        let Some(word) = self.0.get_mut(w) else {
            return false;
        };
        let was = *word & (1 << b) != 0;
        *word |= 1 << b;
        !was
    }

    /// Whether the code is in the set.
    pub(crate) fn contains(&self, code: u8) -> bool {
        let (w, b) = (usize::from(code >> 6), code & 63);
        self.0.get(w).is_some_and(|word| word & (1 << b) != 0)
    }
}

/// What decoding the attribute block found besides the attributes themselves.
#[derive(Debug, Default)]
pub(crate) struct BlockInfo {
    /// Type codes encountered (well-formed or not).
    pub(crate) seen: Seen,
    /// Parsing stopped early at a length overrun or underrun (RFC 7606 §4).
    pub(crate) stopped: bool,
    /// Type codes whose repetition has been reported already.
    pub(crate) dup_reported: Seen,
}

/// An error whose NOTIFICATION data is the whole attribute, `body[from + start..from + end]`
/// (RFC 4271 §6.3), at offset `base + start` in the message.
#[cold]
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn attr_err(
    body: &Bytes,
    from: usize,
    base: usize,
    start: usize,
    end: usize,
    kind: ErrorKind,
    code: u8,
    action: Rfc7606Action,
) -> DecodeError {
    DecodeError::new(kind, field_name(code), base + start)
        .with_data(body.slice(from + start..from + end))
        .with_action(action)
}

/// A duplicate attribute (RFC 7606 §3 (g), (h)).
#[cold]
#[inline(never)]
fn duplicate(code: u8, at: usize) -> DecodeError {
    DecodeError::new(ErrorKind::MalformedAttributeList, field_name(code), at)
}

/// Decodes the path attributes field (RFC 4271 §4.3) with RFC 7606 error handling. Session
/// reset errors are returned as `Err`; treat-as-withdraw and attribute-discard errors are
/// recorded in the result.
///
/// The block is `body[from..to]`; `base` is the offset of `body[from]` in the message. The
/// attributes, MP_REACH_NLRI / MP_UNREACH_NLRI and the errors go into `u`, what else was
/// found into `d` (written in place rather than returned: it is hot and 40 octets).
#[inline]
pub(crate) fn decode_block(
    body: &Bytes,
    from: usize,
    to: usize,
    base: usize,
    ctx: &Context,
    u: &mut Update,
    d: &mut BlockInfo,
) -> Result<(), DecodeError> {
    let buf: &[u8] = body.get(from..to).unwrap_or(&[]);
    let mut as4_path: Option<AsPath> = None;
    let mut as4_aggregator: Option<Aggregator> = None;
    let four = ctx.four_octet_as;
    let n = buf.len();
    let mut pos = 0usize;
    while pos < n {
        let start = pos;
        let Some(&[fl, code, l0]) = buf.get(pos..).and_then(|b| b.first_chunk::<3>()) else {
            // RFC 7606 §4: fewer octets left than an attribute header.
            u.errors.push(underrun(body, from, to, base, start));
            d.stopped = true;
            break;
        };
        let (len, hlen) = if fl & EXTENDED_LENGTH != 0 {
            let Some(&l1) = buf.get(pos + 3) else {
                u.errors.push(underrun(body, from, to, base, start));
                d.stopped = true;
                break;
            };
            (usize::from(u16::from_be_bytes([l0, l1])), 4)
        } else {
            (usize::from(l0), 3)
        };
        let vstart = pos + hlen;
        let end = vstart + len;
        let Some(value) = buf.get(vstart..end) else {
            // RFC 7606 §4: the attribute overruns the Total Path Attribute Length.
            let action = if matches!(code, tc::MP_REACH_NLRI | tc::MP_UNREACH_NLRI) {
                Rfc7606Action::SessionReset
            } else {
                Rfc7606Action::TreatAsWithdraw
            };
            let e = attr_err(
                body,
                from,
                base,
                start,
                n,
                ErrorKind::AttributeLength(code),
                code,
                action,
            );
            if action == Rfc7606Action::SessionReset {
                return Err(e);
            }
            u.errors.push(e);
            d.stopped = true;
            break;
        };
        pos = end;
        // Errors are built out of line, only when one is found.
        macro_rules! err {
            ($kind:expr, $action:expr) => {
                attr_err(body, from, base, start, end, $kind, code, $action)
            };
        }
        if !d.seen.insert(code) {
            // RFC 7606 §3 (g), (h).
            let e = duplicate(code, base + start);
            if matches!(code, tc::MP_REACH_NLRI | tc::MP_UNREACH_NLRI) {
                return Err(e);
            }
            // One report per type code: a message full of repeats must not turn into a list
            // of errors many times its size.
            if d.dup_reported.insert(code) {
                u.errors
                    .push(e.with_action(Rfc7606Action::AttributeDiscard));
            }
            continue;
        }
        let entry = SPEC[usize::from(code)];
        if entry == 0 {
            if fl & OPTIONAL == 0 {
                // RFC 4271 §6.3: an unrecognized well-known attribute.
                return Err(err!(
                    ErrorKind::UnrecognizedWellKnownAttribute(code),
                    Rfc7606Action::SessionReset
                ));
            }
            u.attributes.unknown.push(RawAttribute {
                // RFC 4271 §4.3: the low four flag bits are unused and ignored on receipt;
                // Extended Length is recomputed when encoding.
                flags: fl & (OPTIONAL | TRANSITIVE | PARTIAL),
                type_code: code,
                value: body.slice(from + vstart..from + end),
            });
            continue;
        }
        if fl & (OPTIONAL | TRANSITIVE) != entry & (OPTIONAL | TRANSITIVE) {
            // RFC 7606 §3 (c).
            let action = spec_action(entry);
            let e = err!(ErrorKind::AttributeFlags(code), action);
            if action == Rfc7606Action::SessionReset {
                return Err(e);
            }
            u.errors.push(e);
            continue;
        }
        let a = &mut u.attributes;
        // `Err(kind)`: the attribute is malformed; the RFC 7606 action is in `entry`.
        let result: Result<(), ErrorKind> = match code {
            tc::ORIGIN => match value {
                &[v] => match Origin::from_code(v) {
                    Some(o) => {
                        a.origin = Some(o);
                        Ok(())
                    }
                    None => Err(ErrorKind::InvalidOrigin(v)),
                },
                _ => Err(ErrorKind::AttributeLength(code)),
            },
            tc::AS_PATH => {
                let bad = AsPath::decode_slice_into(&mut a.as_path, body, from + vstart..from + end, four)
                        .is_err()
                        // RFC 7607 §2: AS 0 in AS_PATH makes it malformed.
                        || a.as_path.as_ref().is_some_and(|p| p.contains(Asn(0)));
                if bad {
                    a.as_path = None;
                    // No NOTIFICATION data for a malformed AS_PATH (RFC 4271 §6.3).
                    u.errors.push(
                        DecodeError::new(
                            ErrorKind::MalformedAsPath,
                            field_name(code),
                            base + start,
                        )
                        .with_action(spec_action(entry)),
                    );
                }
                Ok(())
            }
            tc::NEXT_HOP => u32_value(value, code).and_then(|v| {
                // RFC 4271 §6.3: a NEXT_HOP must be a valid IP host address; RFC 7606 §7.3:
                // one that is not is treat-as-withdraw.
                let ip = Ipv4Addr::from(v);
                if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
                    return Err(ErrorKind::InvalidNextHop);
                }
                a.next_hop = Some(ip);
                Ok(())
            }),
            tc::MULTI_EXIT_DISC => u32_value(value, code).map(|v| a.med = Some(v)),
            tc::LOCAL_PREF => u32_value(value, code).map(|v| a.local_pref = Some(v)),
            tc::ATOMIC_AGGREGATE => {
                if value.is_empty() {
                    a.atomic_aggregate = true;
                    Ok(())
                } else {
                    Err(ErrorKind::AttributeLength(code))
                }
            }
            tc::AGGREGATOR => match (four, value) {
                // RFC 7607 §2: AS 0 in AGGREGATOR makes it malformed (RFC 7606 §7.7:
                // attribute discard).
                (true, &[0, 0, 0, 0, ..]) | (false, &[0, 0, ..]) => {
                    Err(ErrorKind::OptionalAttribute(code))
                }
                (true, &[a0, a1, a2, a3, b0, b1, b2, b3]) => {
                    a.aggregator = Some(Aggregator {
                        asn: Asn(u32::from_be_bytes([a0, a1, a2, a3])),
                        address: Ipv4Addr::new(b0, b1, b2, b3),
                    });
                    Ok(())
                }
                (false, &[a0, a1, b0, b1, b2, b3]) => {
                    a.aggregator = Some(Aggregator {
                        asn: Asn(u32::from(u16::from_be_bytes([a0, a1]))),
                        address: Ipv4Addr::new(b0, b1, b2, b3),
                    });
                    Ok(())
                }
                _ => Err(ErrorKind::AttributeLength(code)),
            },
            tc::COMMUNITIES => {
                if Communities::from_wire_slice_into(
                    &mut a.communities,
                    body,
                    from + vstart..from + end,
                ) {
                    Ok(())
                } else {
                    Err(ErrorKind::AttributeLength(code))
                }
            }
            tc::ORIGINATOR_ID => {
                u32_value(value, code).map(|v| a.originator_id = Some(Ipv4Addr::from(v)))
            }
            tc::CLUSTER_LIST => {
                if ClusterList::from_wire_slice_into(
                    &mut a.cluster_list,
                    body,
                    from + vstart..from + end,
                ) {
                    Ok(())
                } else {
                    Err(ErrorKind::AttributeLength(code))
                }
            }
            tc::EXTENDED_COMMUNITIES => {
                if ExtCommunities::from_wire_slice_into(
                    &mut a.ext_communities,
                    body,
                    from + vstart..from + end,
                ) {
                    Ok(())
                } else {
                    Err(ErrorKind::AttributeLength(code))
                }
            }
            tc::LARGE_COMMUNITY => {
                if LargeCommunities::from_wire_slice_into(
                    &mut a.large_communities,
                    body,
                    from + vstart..from + end,
                ) {
                    Ok(())
                } else {
                    Err(ErrorKind::AttributeLength(code))
                }
            }
            tc::OTC => u32_value(value, code).map(|v| a.otc = Some(Asn(v))),
            tc::AS4_PATH => {
                if four {
                    // RFC 6793 §4.1: a NEW speaker discards AS4_PATH from a NEW speaker.
                    Ok(())
                } else {
                    match AsPath::decode_slice(body, from + vstart..from + end, true) {
                        // RFC 7607 §2: AS 0 makes AS4_PATH malformed (RFC 6793 §6: discarded).
                        Ok(p)
                            if !p.segments().any(|s| s.kind.is_confed()) && !p.contains(Asn(0)) =>
                        {
                            as4_path = Some(p);
                            Ok(())
                        }
                        _ => Err(ErrorKind::MalformedAsPath),
                    }
                }
            }
            tc::AS4_AGGREGATOR => {
                if four {
                    Ok(())
                } else {
                    match *value {
                        [0, 0, 0, 0, _, _, _, _] => Err(ErrorKind::OptionalAttribute(code)),
                        [a0, a1, a2, a3, b0, b1, b2, b3] => {
                            as4_aggregator = Some(Aggregator {
                                asn: Asn(u32::from_be_bytes([a0, a1, a2, a3])),
                                address: Ipv4Addr::new(b0, b1, b2, b3),
                            });
                            Ok(())
                        }
                        _ => Err(ErrorKind::AttributeLength(code)),
                    }
                }
            }
            tc::MP_REACH_NLRI => {
                MpReach::decode_into(
                    &mut u.mp_reach,
                    body,
                    from + vstart..from + end,
                    base + vstart,
                    ctx,
                    &|k| err!(k, Rfc7606Action::SessionReset),
                )?;
                Ok(())
            }
            tc::MP_UNREACH_NLRI => {
                u.mp_unreach = Some(MpUnreach::decode(
                    body,
                    from + vstart..from + end,
                    base + vstart,
                    ctx,
                    &|k| err!(k, Rfc7606Action::SessionReset),
                )?);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(kind) = result {
            u.errors.push(err!(kind, spec_action(entry)));
        }
    }
    if !four {
        merge_as4(&mut u.attributes, as4_path, as4_aggregator);
    }
    if u.attributes.unknown.len() > 1 {
        u.attributes.unknown.sort_by_key(|a| a.type_code);
    }
    Ok(())
}

/// RFC 6793 §4.2.3: rebuild AS_PATH and AGGREGATOR from their AS4_ counterparts.
fn merge_as4(a: &mut PathAttributes, as4_path: Option<AsPath>, as4_agg: Option<Aggregator>) {
    if let Some(agg4) = as4_agg {
        match a.aggregator {
            Some(agg) if agg.asn != Asn::TRANS => return, // both AS4_ attributes ignored
            Some(_) => a.aggregator = Some(agg4),
            None => {}
        }
    }
    if let (Some(p4), Some(p)) = (as4_path, &a.as_path) {
        a.as_path = Some(AsPath::merge_as4(p, &p4));
    }
}

fn underrun(body: &Bytes, from: usize, to: usize, base: usize, start: usize) -> DecodeError {
    DecodeError::new(
        ErrorKind::MalformedAttributeList,
        "UPDATE path attributes",
        base + start,
    )
    .with_data(body.slice(from + start..to))
    .with_action(Rfc7606Action::TreatAsWithdraw)
}

/// A four-octet value; anything else is an Attribute Length error for `code`.
#[inline]
fn u32_value(v: &[u8], code: u8) -> Result<u32, ErrorKind> {
    match v {
        &[a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(ErrorKind::AttributeLength(code)),
    }
}
