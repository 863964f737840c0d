//! Packing prefixes into as few UPDATE messages as the session's size limit allows
//! (RFC 4271 §4.3, §9.2; RFC 4760; RFC 8654 for the limit). Never truncates (STYLE 10).
//!
//! The attribute block is encoded once per call and copied into each message; each message
//! takes as many whole prefixes as fit in `ctx.max_message_len`, exactly.

use bytes::{BufMut, BytesMut};
use ipnet::IpNet;

use crate::attribute::{self, NextHopMode, PathAttributes, type_code as tc};
use crate::context::{Context, HEADER_LEN};
use crate::error::EncodeError;
use crate::header::{self, MessageType};
use crate::nlri::{Nlri, write_nlri};
use crate::types::{Afi, AfiSafi};
use crate::update::NextHop;

/// Fixed octets of an UPDATE: header, withdrawn length, attribute length.
const UPDATE_FIXED: usize = HEADER_LEN + 4;

/// Appends UPDATE messages announcing `nlri` of `family` with `attrs`, as few as the size
/// limit allows, and returns how many were written.
///
/// IPv4 unicast with no next hop or an IPv4 one goes in the NLRI field with NEXT_HOP set to
/// `next_hop` (or `attrs.next_hop` when `None`); every other case uses MP_REACH_NLRI, which
/// needs `next_hop`, and leaves NEXT_HOP out. Path identifiers are written when the context
/// sends them for the family. On error nothing is appended.
pub fn pack_announce(
    ctx: &Context,
    attrs: &PathAttributes,
    family: AfiSafi,
    next_hop: Option<&NextHop>,
    nlri: impl IntoIterator<Item = Nlri>,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let start = out.len();
    let r = pack_announce_inner(ctx, attrs, family, next_hop, nlri, out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

/// Appends UPDATE messages withdrawing `nlri` of `family` (the Withdrawn Routes field for
/// IPv4 unicast, MP_UNREACH_NLRI otherwise) and returns how many were written. On error
/// nothing is appended.
pub fn pack_withdraw(
    ctx: &Context,
    family: AfiSafi,
    nlri: impl IntoIterator<Item = Nlri>,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let start = out.len();
    let r = pack_withdraw_inner(ctx, family, nlri, out);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn check_family(family: AfiSafi, n: &Nlri) -> Result<(), EncodeError> {
    let v6 = matches!(n.prefix, IpNet::V6(_));
    if v6 != (family.afi == Afi::IPV6) {
        return Err(EncodeError::Invalid("prefix of the wrong address family"));
    }
    Ok(())
}

/// Replaces `scratch` with as many prefixes from `iter` as keep the message, whose size for
/// `n` octets of NLRI is `size_of(n)`, within `max`; an error when not even the first fits.
fn fill_batch<I: Iterator<Item = Nlri>>(
    iter: &mut std::iter::Peekable<I>,
    family: AfiSafi,
    pid: bool,
    max: usize,
    size_of: impl Fn(usize) -> usize,
    scratch: &mut BytesMut,
) -> Result<(), EncodeError> {
    if let Some(first) = iter.peek() {
        let w = first.wire_len(pid);
        if size_of(w) > max {
            return Err(too_long(size_of(w), max));
        }
    }
    scratch.clear();
    while let Some(n) = iter.peek() {
        check_family(family, n)?;
        let w = n.wire_len(pid);
        if size_of(scratch.len() + w) > max {
            break;
        }
        write_nlri(n, pid, scratch);
        iter.next();
    }
    Ok(())
}

fn too_long(len: usize, max: usize) -> EncodeError {
    EncodeError::TooLong { len, max }
}

fn pack_announce_inner(
    ctx: &Context,
    attrs: &PathAttributes,
    family: AfiSafi,
    next_hop: Option<&NextHop>,
    nlri: impl IntoIterator<Item = Nlri>,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    if !family.is_known() {
        return Err(EncodeError::Invalid("NLRI of an unknown family"));
    }
    let max = ctx.max_message_len;
    let pid = ctx.send_path_ids(family);
    let mut iter = nlri.into_iter().peekable();
    if iter.peek().is_none() {
        return Ok(0);
    }
    let field_v4 =
        family == AfiSafi::IPV4_UNICAST && matches!(next_hop, None | Some(NextHop::Ipv4(_)));
    let mut block = BytesMut::with_capacity(256);
    let mut messages = 0;
    if field_v4 {
        let mode = match next_hop {
            Some(NextHop::Ipv4(a)) => NextHopMode::Set(*a),
            _ => NextHopMode::Keep,
        };
        if mode == NextHopMode::Keep && attrs.next_hop.is_none() {
            return Err(EncodeError::Invalid("IPv4 NLRI without a next hop"));
        }
        attrs.encode_with(ctx, mode, &mut block)?;
        let attr_len = u16::try_from(block.len()).map_err(|_| too_long(block.len(), max))?;
        let fixed = UPDATE_FIXED + block.len();
        while let Some(first) = iter.peek() {
            let w = first.wire_len(pid);
            if fixed + w > max {
                return Err(too_long(fixed + w, max));
            }
            let msg = header::begin(out, MessageType::Update);
            out.put_u16(0);
            out.put_u16(attr_len);
            out.put_slice(&block);
            let mut size = fixed;
            while let Some(n) = iter.peek() {
                check_family(family, n)?;
                let w = n.wire_len(pid);
                if size + w > max {
                    break;
                }
                write_nlri(n, pid, out);
                size += w;
                iter.next();
            }
            header::finish(out, msg, max)?;
            messages += 1;
        }
        return Ok(messages);
    }
    let Some(nh) = next_hop else {
        return Err(EncodeError::Invalid("MP_REACH_NLRI without a next hop"));
    };
    let nh_len =
        u8::try_from(nh.wire_len()).map_err(|_| EncodeError::Invalid("next hop too long"))?;
    attrs.encode_with(ctx, NextHopMode::Omit, &mut block)?;
    // MP_REACH_NLRI value: AFI, SAFI, next hop length, next hop, reserved, NLRI.
    let mp_fixed = 5 + nh.wire_len();
    let size_of = |nlri_bytes: usize| {
        let v = mp_fixed + nlri_bytes;
        UPDATE_FIXED + attribute::header_len(v) + v + block.len()
    };
    let mut scratch = BytesMut::with_capacity(max);
    while iter.peek().is_some() {
        fill_batch(&mut iter, family, pid, max, size_of, &mut scratch)?;
        let value_len = mp_fixed + scratch.len();
        let attr_len = attribute::header_len(value_len) + value_len + block.len();
        let msg = header::begin(out, MessageType::Update);
        out.put_u16(0);
        out.put_u16(u16::try_from(attr_len).map_err(|_| too_long(attr_len, max))?);
        attribute::put_header(
            out,
            attribute::flags::OPTIONAL,
            tc::MP_REACH_NLRI,
            value_len,
        )?;
        out.put_u16(family.afi.0);
        out.put_u8(family.safi.0);
        out.put_u8(nh_len);
        match nh {
            NextHop::Ipv4(a) => out.put_slice(&a.octets()),
            NextHop::Ipv6(a) => out.put_slice(&a.octets()),
            NextHop::Ipv6LinkLocal { global, link_local } => {
                out.put_slice(&global.octets());
                out.put_slice(&link_local.octets());
            }
            NextHop::Other(b) => out.put_slice(b),
        }
        out.put_u8(0);
        out.put_slice(&scratch);
        out.put_slice(&block);
        header::finish(out, msg, max)?;
        messages += 1;
    }
    Ok(messages)
}

fn pack_withdraw_inner(
    ctx: &Context,
    family: AfiSafi,
    nlri: impl IntoIterator<Item = Nlri>,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    if !family.is_known() {
        return Err(EncodeError::Invalid("NLRI of an unknown family"));
    }
    let max = ctx.max_message_len;
    let pid = ctx.send_path_ids(family);
    let mut iter = nlri.into_iter().peekable();
    let mut messages = 0;
    let v4 = family == AfiSafi::IPV4_UNICAST;
    // IPv4: header, withdrawn length, prefixes, attribute length 0.
    // Others: header, 0, attribute length, MP_UNREACH_NLRI (AFI, SAFI, prefixes).
    let size_of = |bytes: usize| {
        if v4 {
            UPDATE_FIXED + bytes
        } else {
            UPDATE_FIXED + attribute::header_len(3 + bytes) + 3 + bytes
        }
    };
    let mut scratch = BytesMut::new();
    while iter.peek().is_some() {
        fill_batch(&mut iter, family, pid, max, size_of, &mut scratch)?;
        let msg = header::begin(out, MessageType::Update);
        let len = |n: usize| u16::try_from(n).map_err(|_| too_long(n, max));
        if v4 {
            out.put_u16(len(scratch.len())?);
            out.put_slice(&scratch);
            out.put_u16(0);
        } else {
            let v = 3 + scratch.len();
            out.put_u16(0);
            out.put_u16(len(attribute::header_len(v) + v)?);
            attribute::put_header(out, attribute::flags::OPTIONAL, tc::MP_UNREACH_NLRI, v)?;
            out.put_u16(family.afi.0);
            out.put_u8(family.safi.0);
            out.put_slice(&scratch);
        }
        header::finish(out, msg, max)?;
        messages += 1;
    }
    Ok(messages)
}
