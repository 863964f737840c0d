//! Adj-RIB-In images for hitless upgrades: a running process writes one peer's Adj-RIB-In
//! as bytes ([`crate::Rib::adj_in_image`]), a new process puts it back in its own RIB
//! ([`crate::Rib::restore_adj_in`]) and takes the live session over
//! ([`crate::Rib::peer_resumed`]), so that the peer neither re-sends its routes nor hears
//! of the hand-over.
//!
//! The routes are stored after the import policy (and after the RFC 7606 and RFC 9234
//! ingress handling of [`crate::Rib::apply_update`]), so the image holds them as stored and
//! the restore puts them back as they are, without running the policy again.
//!
//! # Layout
//!
//! All integers are big-endian.
//!
//! ```text
//! image   = version:u16 (= IMAGE_VERSION) record*
//! record  = flags:u8 afi:u16 safi:u8 [next_hop:4] mp_next_hop body_len:u32 body
//! flags   = bits 0-1: staleness (0 fresh, 1 stale, 2 long-lived stale)
//!           bit 2: the routes carry ADD-PATH path ids (otherwise every path id is 0)
//!           bit 3: a NEXT_HOP attribute value follows (4 octets)
//!           bits 4-7: zero
//! mp_next_hop = 0 (none) | 1 ipv4:4 | 2 ipv6:16 | 3 global:16 link_local:16
//!             | 4 len:u8 octets:len (a next hop of a family not interpreted)
//! body    = UPDATE message*   (RFC 4271 §4.3, whole messages with their headers)
//! ```
//!
//! A record is one group of routes of one family that share an attribute set and a stale
//! mark. Its UPDATE messages are packed by [`bgp_wire::pack_announce`] with the image
//! context ([`image_context`]): 4-octet AS numbers, path ids in every family, and
//! 65,535-octet messages (RFC 8654). The record header is authoritative for the next hops
//! (the NEXT_HOP attribute and the MP_REACH_NLRI next hop of the stored set, either of which
//! an import policy may have set or removed); the UPDATEs carry the same next hops when
//! they have the usual form for the family, or a placeholder otherwise.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp_wire::context::{HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN};
use bgp_wire::{
    Afi, AfiSafi, AfiSafiSet, Context, DecodeError, EncodeError, ErrorKind, MessageType, NextHop,
    Nlri, Safi, Update, check_header, pack_announce,
};
use bytes::{BufMut, Bytes, BytesMut};

use crate::adj_in::Staleness;
use crate::best::SourceId;
use crate::intern::RouteAttributes;

/// The version an image starts with; a restore refuses any other.
pub const IMAGE_VERSION: u16 = 1;

const STALE_MASK: u8 = 0x03;
const ADD_PATH: u8 = 0x04;
const HAS_NEXT_HOP: u8 = 0x08;
const RESERVED: u8 = 0xf0;

const NH_NONE: u8 = 0;
const NH_V4: u8 = 1;
const NH_V6: u8 = 2;
const NH_V6_LL: u8 = 3;
const NH_OTHER: u8 = 4;

/// The context the UPDATEs of an image are written and read with: 4-octet AS numbers, path
/// ids in every family (the ids the routes are stored under, whatever the session
/// negotiated) and extended messages (RFC 8654).
pub fn image_context() -> Context {
    let all: AfiSafiSet = AfiSafi::KNOWN.into_iter().collect();
    Context {
        four_octet_as: true,
        add_path_receive: all,
        add_path_send: all,
        max_message_len: MAX_EXTENDED_MESSAGE_LEN,
    }
}

/// What [`crate::Rib::adj_in_image`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct ImageStats {
    /// Routes written.
    pub routes: usize,
    /// Records (groups of routes sharing family, attribute set and stale mark).
    pub records: usize,
    /// UPDATE messages written.
    pub messages: usize,
    /// Octets appended.
    pub bytes: usize,
}

/// Why an image could not be written or restored. Images are untrusted bytes: every
/// malformation is one of these, with the offset in the image where it was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// No such peer.
    #[error("unknown peer {0:?}")]
    UnknownPeer(SourceId),
    /// The peer's session is up: a restore is for a peer that is not up yet.
    #[error("the session of peer {0:?} is up")]
    SessionUp(SourceId),
    /// The peer has routes already: a restore fills an empty Adj-RIB-In.
    #[error("peer {0:?} has routes already")]
    NotEmpty(SourceId),
    /// A group of routes could not be encoded (an attribute set too large even for an
    /// extended message).
    #[error("cannot encode routes of {family:?}: {source}")]
    Encode {
        /// The family of the group.
        family: AfiSafi,
        /// The encoder's error.
        source: EncodeError,
    },
    /// The image ends inside a field.
    #[error("image truncated in {field} at byte {offset}")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Where it starts.
        offset: usize,
    },
    /// The image has another version.
    #[error("image version {0} (expected {IMAGE_VERSION})")]
    Version(u16),
    /// A field has a value the layout does not allow.
    #[error("bad {field} ({value}) at byte {offset}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u32,
        /// Where it is.
        offset: usize,
    },
    /// A message of a record does not decode.
    #[error("bad UPDATE at byte {offset}: {source}")]
    Message {
        /// Where the message starts.
        offset: usize,
        /// The decoder's error.
        source: DecodeError,
    },
    /// A message decodes but is not what an image holds (withdrawals, another family, a
    /// path id where the record has none, an RFC 7606 error).
    #[error("unexpected UPDATE content at byte {offset}: {reason}")]
    Content {
        /// Where the message starts.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The header of one record: what the routes of its messages share besides their
/// attributes.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) family: AfiSafi,
    pub(crate) stale: Staleness,
    /// Path ids are meaningful (otherwise they are all 0 and restored as absent).
    pub(crate) add_path: bool,
    /// The NEXT_HOP attribute of the stored set.
    pub(crate) next_hop: Option<Ipv4Addr>,
    /// The MP_REACH_NLRI next hop of the stored set.
    pub(crate) mp_next_hop: Option<NextHop>,
}

impl Record {
    /// The stored attribute set of a decoded message of the record.
    pub(crate) fn attributes(&self, update: &Update) -> RouteAttributes {
        let mut attrs = update.attributes.clone();
        attrs.next_hop = self.next_hop;
        RouteAttributes {
            attrs,
            mp_next_hop: self.mp_next_hop.clone().map(Box::new),
        }
    }
}

/// Appends the version that starts an image.
pub(crate) fn write_version(out: &mut BytesMut) {
    out.put_u16(IMAGE_VERSION);
}

fn stale_code(s: Staleness) -> u8 {
    match s {
        Staleness::Fresh => 0,
        Staleness::Stale => 1,
        Staleness::LlgrStale => 2,
    }
}

/// Appends one record: the routes `nlri` of `family` with the stored set `attrs`. Returns
/// the number of messages; on error nothing is appended.
pub(crate) fn write_record(
    ctx: &Context,
    family: AfiSafi,
    attrs: &RouteAttributes,
    stale: Staleness,
    add_path: bool,
    nlri: impl IntoIterator<Item = Nlri>,
    out: &mut BytesMut,
) -> Result<usize, ImageError> {
    let start = out.len();
    let next_hop = attrs.attrs.next_hop;
    let mut flags = stale_code(stale);
    if add_path {
        flags |= ADD_PATH;
    }
    if next_hop.is_some() {
        flags |= HAS_NEXT_HOP;
    }
    out.put_u8(flags);
    out.put_u16(family.afi.0);
    out.put_u8(family.safi.0);
    if let Some(a) = next_hop {
        out.put_slice(&a.octets());
    }
    let mp = attrs.mp_next_hop.as_deref();
    match mp {
        None => out.put_u8(NH_NONE),
        Some(NextHop::Ipv4(a)) => {
            out.put_u8(NH_V4);
            out.put_slice(&a.octets());
        }
        Some(NextHop::Ipv6(a)) => {
            out.put_u8(NH_V6);
            out.put_slice(&a.octets());
        }
        Some(NextHop::Ipv6LinkLocal { global, link_local }) => {
            out.put_u8(NH_V6_LL);
            out.put_slice(&global.octets());
            out.put_slice(&link_local.octets());
        }
        Some(NextHop::Other(b)) => {
            let Ok(len) = u8::try_from(b.len()) else {
                out.truncate(start);
                return Err(ImageError::Encode {
                    family,
                    source: EncodeError::Invalid("MP_REACH_NLRI next hop too long"),
                });
            };
            out.put_u8(NH_OTHER);
            out.put_u8(len);
            out.put_slice(b);
        }
    }
    // The next hop the UPDATEs carry: the stored one when it has the family's usual form
    // (IPv4 unicast in the NLRI field), a placeholder otherwise (the header has the truth;
    // a loopback address, which the decoder accepts as a host address).
    let v6 = family.afi == Afi::IPV6;
    let wire_nh = if family == AfiSafi::IPV4_UNICAST {
        NextHop::Ipv4(next_hop.unwrap_or(Ipv4Addr::LOCALHOST))
    } else {
        match mp {
            Some(nh @ (NextHop::Ipv6(_) | NextHop::Ipv6LinkLocal { .. })) if v6 => nh.clone(),
            Some(nh @ NextHop::Ipv4(_)) if !v6 => nh.clone(),
            _ if v6 => NextHop::Ipv6(Ipv6Addr::LOCALHOST),
            _ => NextHop::Ipv4(Ipv4Addr::LOCALHOST),
        }
    };
    let len_at = out.len();
    out.put_u32(0);
    let body_start = out.len();
    match pack_announce(ctx, &attrs.attrs, family, Some(&wire_nh), nlri, out) {
        Ok(n) => {
            let len = out.len() - body_start;
            let Ok(len) = u32::try_from(len) else {
                out.truncate(start);
                return Err(ImageError::Encode {
                    family,
                    source: EncodeError::FieldTooLong {
                        field: "image record",
                        len,
                    },
                });
            };
            if let Some(slot) = out.get_mut(len_at..len_at + 4) {
                slot.copy_from_slice(&len.to_be_bytes());
            }
            Ok(n)
        }
        Err(source) => {
            out.truncate(start);
            Err(ImageError::Encode { family, source })
        }
    }
}

/// A bounds-checked reader over the image.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], ImageError> {
        let end = self.pos.checked_add(n);
        let s = end
            .and_then(|e| self.buf.get(self.pos..e))
            .ok_or(ImageError::Truncated {
                field,
                offset: self.pos,
            })?;
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ImageError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ImageError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, ImageError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, ImageError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
}

fn bad(field: &'static str, value: impl Into<u32>, offset: usize) -> ImageError {
    ImageError::BadField {
        field,
        value: value.into(),
        offset,
    }
}

/// Reads an image: calls `f` for every UPDATE message with its record, after checking
/// that the message holds only announcements of the record's family with the path ids the
/// record allows. Returns the number of routes. Nothing is allocated from a length in the
/// image: records and messages are slices of `image`, whose length is checked first.
pub(crate) fn walk(
    image: &Bytes,
    mut f: impl FnMut(&Record, &Update),
) -> Result<usize, ImageError> {
    let ctx = image_context();
    let mut c = Cursor { buf: image, pos: 0 };
    let version = c.u16("version")?;
    if version != IMAGE_VERSION {
        return Err(ImageError::Version(version));
    }
    let mut update = Update::new();
    let mut routes = 0usize;
    while c.pos < image.len() {
        let at = c.pos;
        let flags = c.u8("record flags")?;
        let stale = match flags & STALE_MASK {
            0 => Staleness::Fresh,
            1 => Staleness::Stale,
            2 => Staleness::LlgrStale,
            _ => return Err(bad("record flags", flags, at)),
        };
        if flags & RESERVED != 0 {
            return Err(bad("record flags", flags, at));
        }
        let fam_at = c.pos;
        let afi = c.u16("record AFI")?;
        let safi = c.u8("record SAFI")?;
        let family = AfiSafi {
            afi: Afi(afi),
            safi: Safi(safi),
        };
        if family.index().is_none() {
            return Err(bad(
                "record family",
                u32::from(afi) << 8 | u32::from(safi),
                fam_at,
            ));
        }
        let next_hop = if flags & HAS_NEXT_HOP != 0 {
            Some(Ipv4Addr::from(c.array::<4>("record next hop")?))
        } else {
            None
        };
        let nh_at = c.pos;
        let mp_next_hop = match c.u8("record MP next hop type")? {
            NH_NONE => None,
            NH_V4 => Some(NextHop::Ipv4(c.array::<4>("record MP next hop")?.into())),
            NH_V6 => Some(NextHop::Ipv6(c.array::<16>("record MP next hop")?.into())),
            NH_V6_LL => {
                let global = c.array::<16>("record MP next hop")?.into();
                let link_local = c.array::<16>("record MP next hop")?.into();
                Some(NextHop::Ipv6LinkLocal { global, link_local })
            }
            NH_OTHER => {
                let len = usize::from(c.u8("record MP next hop length")?);
                let from = c.pos;
                c.take(len, "record MP next hop")?;
                Some(NextHop::Other(image.slice(from..from + len)))
            }
            t => return Err(bad("record MP next hop type", t, nh_at)),
        };
        let record = Record {
            family,
            stale,
            add_path: flags & ADD_PATH != 0,
            next_hop,
            mp_next_hop,
        };
        let body_len = c.u32("record length")?;
        let body_at = c.pos;
        let body_len = usize::try_from(body_len).map_err(|_| ImageError::Truncated {
            field: "record body",
            offset: body_at,
        })?;
        c.take(body_len, "record body")?;
        let body_end = body_at + body_len;
        let mut pos = body_at;
        while pos < body_end {
            let rest = image.get(pos..body_end).unwrap_or_default();
            let header = check_header(rest, ctx.max_message_len)
                .map_err(|source| ImageError::Message {
                    offset: pos,
                    source,
                })?
                .filter(|h| h.len <= rest.len())
                .ok_or(ImageError::Truncated {
                    field: "UPDATE message",
                    offset: pos,
                })?;
            if header.kind != MessageType::Update {
                return Err(ImageError::Content {
                    offset: pos,
                    reason: "not an UPDATE",
                });
            }
            let body = image.slice(pos + HEADER_LEN..pos + header.len);
            update
                .decode_into(&body, HEADER_LEN, &ctx)
                .map_err(|source| ImageError::Message {
                    offset: pos,
                    source,
                })?;
            check_update(&record, &update, pos)?;
            routes += update.prefix_count();
            f(&record, &update);
            pos += header.len;
        }
    }
    Ok(routes)
}

/// Checks that a decoded message of a record is what [`write_record`] writes.
fn check_update(record: &Record, update: &Update, offset: usize) -> Result<(), ImageError> {
    let content = |reason| Err(ImageError::Content { offset, reason });
    // A missing ORIGIN or AS_PATH is how the set was stored (an import policy may remove
    // them); any other error is not something the writer produces.
    let unexpected = update
        .errors
        .iter()
        .any(|e| !matches!(e.kind, ErrorKind::MissingWellKnownAttribute(_)));
    if unexpected {
        return content("an attribute error");
    }
    if !update.withdrawn.is_empty() || update.mp_unreach.is_some() {
        return content("withdrawn routes");
    }
    let field = !update.nlri.is_empty();
    let mp = update.mp_reach.as_ref();
    if field && (record.family != AfiSafi::IPV4_UNICAST || mp.is_some()) {
        return content("NLRI field in a record of another family");
    }
    if mp.is_some_and(|m| m.family != record.family) {
        return content("MP_REACH_NLRI of another family");
    }
    if !field && mp.is_none_or(|m| m.nlri.is_empty()) {
        return content("no routes");
    }
    if !record.add_path && update.announced().any(|(_, n)| n.path_id != Some(0)) {
        return content("path id in a record without path ids");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
