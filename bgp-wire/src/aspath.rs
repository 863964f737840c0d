//! AS_PATH (RFC 4271 §4.3, §5.1.2), AS4_PATH and the 2-octet/4-octet transition (RFC 6793),
//! confederation segments (RFC 5065 §3).
//!
//! An [`AsPath`] is held canonically as 4-octet segments: inline when short, otherwise a
//! zero-copy `Bytes` slice on sessions that negotiated 4-octet AS numbers; converted once on
//! 2-octet ones.

use std::fmt;

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::Buf;

use crate::types::Asn;

/// The type of an AS_PATH segment (RFC 4271 §4.3, RFC 5065 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SegmentType {
    /// AS_SET (1): an unordered set of ASes an aggregate traversed.
    AsSet,
    /// AS_SEQUENCE (2): an ordered sequence of ASes.
    AsSequence,
    /// AS_CONFED_SEQUENCE (3): member ASes of the local confederation, ordered.
    AsConfedSequence,
    /// AS_CONFED_SET (4): member ASes of the local confederation, unordered.
    AsConfedSet,
}

impl SegmentType {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            SegmentType::AsSet => 1,
            SegmentType::AsSequence => 2,
            SegmentType::AsConfedSequence => 3,
            SegmentType::AsConfedSet => 4,
        }
    }

    /// The type for a wire code, if defined.
    #[inline]
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => SegmentType::AsSet,
            2 => SegmentType::AsSequence,
            3 => SegmentType::AsConfedSequence,
            4 => SegmentType::AsConfedSet,
            _ => return None,
        })
    }

    /// Whether this is one of the confederation segment types (RFC 5065).
    pub fn is_confed(self) -> bool {
        matches!(
            self,
            SegmentType::AsConfedSequence | SegmentType::AsConfedSet
        )
    }
}

/// An owned AS_PATH segment, used to build paths (RFC 4271 §4.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Segment {
    /// The segment type.
    pub kind: SegmentType,
    /// The AS numbers, in path order.
    pub asns: Vec<Asn>,
}

/// A borrowed view of one segment of an [`AsPath`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentRef<'a> {
    /// The segment type.
    pub kind: SegmentType,
    raw: &'a [u8],
}

impl<'a> SegmentRef<'a> {
    /// The AS numbers of the segment.
    #[inline]
    pub fn asns(self) -> impl Iterator<Item = Asn> + 'a {
        self.raw
            .chunks_exact(4)
            .map(|c| Asn(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
    }

    /// The number of AS numbers in the segment.
    #[inline]
    pub fn len(&self) -> usize {
        self.raw.len() / 4
    }

    /// Whether the segment is empty (never true for a decoded path).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// An owned copy.
    pub fn to_segment(&self) -> Segment {
        Segment {
            kind: self.kind,
            asns: self.asns().collect(),
        }
    }
}

/// Why an AS path could not be parsed (the caller turns it into the RFC 7606 outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MalformedPath {
    /// Offset of the offending segment within the attribute value.
    pub(crate) at: usize,
}

/// AS_PATH or AS4_PATH (RFC 4271 §4.3, RFC 6793 §3): segments of 4-octet AS numbers.
///
/// Equality and hashing are by the canonical bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    raw: Buf,
}

/// The most AS numbers one segment can hold (its count is one octet).
const MAX_SEGMENT: usize = 255;

impl AsPath {
    /// The empty path (routes originated inside the AS, RFC 4271 §5.1.2).
    pub fn empty() -> Self {
        AsPath { raw: Buf::new() }
    }

    /// Builds a path from segments. Empty segments are dropped; segments of more than 255
    /// AS numbers are split into several of the same type.
    pub fn from_segments(segments: impl IntoIterator<Item = Segment>) -> Self {
        let mut out = BytesMut::new();
        for s in segments {
            push_segment(&mut out, s.kind, s.asns.iter().copied());
        }
        AsPath {
            raw: Buf::from_bytes_mut(out),
        }
    }

    /// A path of one AS_SEQUENCE.
    pub fn from_sequence(asns: impl IntoIterator<Item = Asn>) -> Self {
        let mut out = BytesMut::new();
        let v: Vec<Asn> = asns.into_iter().collect();
        push_segment(&mut out, SegmentType::AsSequence, v.into_iter());
        AsPath {
            raw: Buf::from_bytes_mut(out),
        }
    }

    /// Parses an attribute value with 4-octet (`four_octet`) or 2-octet AS numbers. Checks
    /// RFC 7606 §7.2: a defined segment type, a non-zero count, no overrun or underrun.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn decode(value: Buf, four_octet: bool) -> Result<Self, MalformedPath> {
        validate(&value, four_octet)?;
        Ok(Self::from_validated(value, four_octet))
    }

    /// [`AsPath::decode`] of `body[range]`, validated before anything is copied.
    #[inline(always)]
    pub(crate) fn decode_slice(
        body: &Bytes,
        range: Range<usize>,
        four_octet: bool,
    ) -> Result<Self, MalformedPath> {
        let value = body.get(range.clone()).unwrap_or(&[]);
        validate(value, four_octet)?;
        if four_octet {
            return Ok(AsPath {
                raw: Buf::slice_of(body, range),
            });
        }
        Ok(Self::widen(value))
    }

    /// [`AsPath::decode_slice`] into `slot`, built in place.
    #[inline(always)]
    pub(crate) fn decode_slice_into(
        slot: &mut Option<AsPath>,
        body: &Bytes,
        range: Range<usize>,
        four_octet: bool,
    ) -> Result<(), MalformedPath> {
        let value = body.get(range.clone()).unwrap_or(&[]);
        validate(value, four_octet)?;
        if four_octet {
            slot.insert(AsPath::empty()).raw.set_slice_of(body, range);
        } else {
            *slot = Some(Self::widen(value));
        }
        Ok(())
    }

    /// The canonical form of a validated value.
    fn from_validated(value: Buf, four_octet: bool) -> Self {
        if four_octet {
            return AsPath { raw: value };
        }
        Self::widen(&value)
    }

    /// A validated 2-octet path with every ASN widened to 4 octets: the canonical form.
    #[inline(never)]
    fn widen(value: &[u8]) -> Self {
        let mut out = BytesMut::with_capacity(value.len() * 2);
        let mut pos = 0usize;
        while let (Some(&ty), Some(&count)) = (value.get(pos), value.get(pos + 1)) {
            out.put_u8(ty);
            out.put_u8(count);
            let body = value
                .get(pos + 2..pos + 2 + usize::from(count) * 2)
                .unwrap_or(&[]);
            for c in body.chunks_exact(2) {
                out.put_u32(u32::from(u16::from_be_bytes([c[0], c[1]])));
            }
            pos += 2 + usize::from(count) * 2;
        }
        AsPath {
            raw: Buf::from_bytes_mut(out),
        }
    }

    /// Writes the attribute value for a 4-octet or a 2-octet session (every ASN that does not
    /// fit in 2 octets becomes AS_TRANS, RFC 6793 §4.2.2).
    pub(crate) fn encode_value(&self, four_octet: bool, out: &mut BytesMut) {
        if four_octet {
            out.put_slice(&self.raw);
            return;
        }
        for s in self.segments() {
            out.put_u8(s.kind.code());
            out.put_u8(s.len() as u8);
            for a in s.asns() {
                out.put_u16(a.to_two_octet());
            }
        }
    }

    /// The value's length on a 4-octet or a 2-octet session.
    pub(crate) fn encoded_len(&self, four_octet: bool) -> usize {
        if four_octet {
            self.raw.len()
        } else {
            self.segments().map(|s| 2 + 2 * s.len()).sum()
        }
    }

    /// The canonical bytes (4-octet segments).
    #[inline]
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// A copy that shares no memory with the buffer it was decoded from.
    pub fn detached(&self) -> Self {
        AsPath {
            raw: self.raw.detached(),
        }
    }

    /// Whether the path has no segments.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The segments, in order.
    #[inline]
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            buf: self.raw.as_slice(),
        }
    }

    /// Every AS number, in path order, whatever its segment.
    #[inline]
    pub fn asns(&self) -> impl Iterator<Item = Asn> + '_ {
        Asns {
            seg: &[],
            rest: self.raw.as_slice(),
        }
    }

    /// The path length for best-path selection (RFC 4271 §9.1.2.2 a; RFC 5065 §5.3): an
    /// AS_SET counts 1 whatever its size, confederation segments count 0.
    #[inline]
    pub fn len_for_best_path(&self) -> usize {
        self.segments()
            .map(|s| match s.kind {
                SegmentType::AsSequence => s.len(),
                SegmentType::AsSet => 1,
                _ => 0,
            })
            .sum()
    }

    /// The leftmost AS number when the path starts with an AS_SEQUENCE: the neighbouring AS
    /// that RFC 4271 §9.1.2.2 (c) compares MEDs within.
    pub fn first_asn(&self) -> Option<Asn> {
        let s = self.segments().next()?;
        if s.kind == SegmentType::AsSequence {
            s.asns().next()
        } else {
            None
        }
    }

    /// Whether the AS number appears anywhere in the path (loop detection, RFC 4271 §9.1.2).
    pub fn contains(&self, asn: Asn) -> bool {
        self.asns().any(|a| a == asn)
    }

    /// Whether any AS number needs 4 octets (so a 2-octet session also needs AS4_PATH).
    pub fn needs_as4(&self) -> bool {
        self.asns().any(|a| !a.is_two_octet())
    }

    /// The path with `asn` prepended `times` times to the leading AS_SEQUENCE (a new one if
    /// the path starts otherwise or the leading one is full), RFC 4271 §5.1.2.
    pub fn prepend(&self, asn: Asn, times: usize) -> AsPath {
        self.prepend_kind(SegmentType::AsSequence, asn, times)
    }

    /// The path with `asn` prepended to a leading AS_CONFED_SEQUENCE (RFC 5065 §4.1).
    pub fn prepend_confed(&self, asn: Asn) -> AsPath {
        self.prepend_kind(SegmentType::AsConfedSequence, asn, 1)
    }

    fn prepend_kind(&self, kind: SegmentType, asn: Asn, times: usize) -> AsPath {
        if times == 0 {
            return self.clone();
        }
        let mut out = BytesMut::with_capacity(self.raw.len() + 4 * times + 4);
        let mut segs = self.segments();
        match segs.clone().next() {
            Some(first) if first.kind == kind && first.len() + times <= MAX_SEGMENT => {
                segs.next();
                let merged: Vec<Asn> = std::iter::repeat_n(asn, times)
                    .chain(first.asns())
                    .collect();
                push_segment(&mut out, kind, merged.into_iter());
            }
            _ => push_segment(&mut out, kind, std::iter::repeat_n(asn, times)),
        }
        out.put_slice(segs.buf);
        AsPath {
            raw: Buf::from_bytes_mut(out),
        }
    }

    /// The path without confederation segments: what leaves a confederation (RFC 5065 §4.1)
    /// and what AS4_PATH carries (RFC 6793 §3).
    pub fn without_confed(&self) -> AsPath {
        if !self.segments().any(|s| s.kind.is_confed()) {
            return self.clone();
        }
        let mut out = BytesMut::with_capacity(self.raw.len());
        for s in self.segments().filter(|s| !s.kind.is_confed()) {
            out.put_u8(s.kind.code());
            out.put_u8(s.len() as u8);
            out.put_slice(s.raw);
        }
        AsPath {
            raw: Buf::from_bytes_mut(out),
        }
    }

    /// Rebuilds the 4-octet path from the AS_PATH and AS4_PATH a 2-octet session received
    /// (RFC 6793 §4.2.3): when the AS_PATH holds fewer AS numbers than AS4_PATH, AS4_PATH is
    /// ignored; otherwise the leading AS numbers of AS_PATH that AS4_PATH lacks are kept and
    /// AS4_PATH follows. AS numbers are counted as in RFC 4271 §9.1.2.2 (an AS_SET counts 1,
    /// confederation segments 0).
    pub fn merge_as4(as_path: &AsPath, as4_path: &AsPath) -> AsPath {
        let n = as_path.len_for_best_path();
        let n4 = as4_path.len_for_best_path();
        if n < n4 {
            return as_path.clone();
        }
        let mut keep = n - n4;
        let mut out = BytesMut::with_capacity(as_path.raw.len() + as4_path.raw.len());
        for s in as_path.segments() {
            if keep == 0 {
                break;
            }
            match s.kind {
                SegmentType::AsSequence => {
                    let take = keep.min(s.len());
                    push_segment(&mut out, s.kind, s.asns().take(take));
                    keep -= take;
                }
                SegmentType::AsSet => {
                    push_segment(&mut out, s.kind, s.asns());
                    keep -= 1;
                }
                _ => push_segment(&mut out, s.kind, s.asns()),
            }
        }
        out.put_slice(&as4_path.raw);
        AsPath {
            raw: Buf::from_bytes_mut(out),
        }
    }
}

/// Appends one segment, splitting it into 255-ASN pieces.
fn push_segment(out: &mut BytesMut, kind: SegmentType, asns: impl Iterator<Item = Asn>) {
    let mut asns = asns.peekable();
    while asns.peek().is_some() {
        let count_at = out.len();
        out.put_u8(kind.code());
        out.put_u8(0);
        let mut count = 0u8;
        for a in asns.by_ref().take(MAX_SEGMENT) {
            out.put_u32(a.0);
            count += 1;
        }
        if let Some(c) = out.get_mut(count_at + 1) {
            *c = count;
        }
    }
}

impl fmt::Display for AsPath {
    /// `65001 65002 {65003,65004} (65005 65006) [65007]`: sets in braces, confederation
    /// sequences in parentheses, confederation sets in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in self.segments() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, sep, close) = match s.kind {
                SegmentType::AsSequence => ("", " ", ""),
                SegmentType::AsSet => ("{", ",", "}"),
                SegmentType::AsConfedSequence => ("(", " ", ")"),
                SegmentType::AsConfedSet => ("[", ",", "]"),
            };
            f.write_str(open)?;
            for (i, a) in s.asns().enumerate() {
                if i > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{a}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

/// RFC 7606 §7.2 checks of an AS_PATH or AS4_PATH value: every segment of a defined type,
/// with a non-zero count, neither overrunning nor underrunning the value.
#[inline]
fn validate(value: &[u8], four_octet: bool) -> Result<(), MalformedPath> {
    let width = if four_octet { 4 } else { 2 };
    let mut pos = 0usize;
    let n = value.len();
    while pos < n {
        let (Some(&ty), Some(&count)) = (value.get(pos), value.get(pos + 1)) else {
            return Err(MalformedPath { at: pos });
        };
        if !(1..=4).contains(&ty) || count == 0 {
            return Err(MalformedPath { at: pos });
        }
        let end = pos + 2 + usize::from(count) * width;
        if end > n {
            return Err(MalformedPath { at: pos });
        }
        pos = end;
    }
    Ok(())
}

/// Every AS number of a path, in order: the segments walked in place.
#[derive(Clone, Debug)]
struct Asns<'a> {
    /// The AS numbers left in the current segment.
    seg: &'a [u8],
    /// The segments after it.
    rest: &'a [u8],
}

impl Iterator for Asns<'_> {
    type Item = Asn;

    #[inline]
    fn next(&mut self) -> Option<Asn> {
        loop {
            if let Some((a, seg)) = self.seg.split_first_chunk::<4>() {
                self.seg = seg;
                return Some(Asn(u32::from_be_bytes(*a)));
            }
            let (&[ty, count], rest) = self.rest.split_first_chunk::<2>()?;
            SegmentType::from_code(ty)?;
            let (seg, rest) = rest.split_at_checked(usize::from(count) * 4)?;
            self.seg = seg;
            self.rest = rest;
        }
    }

    #[inline]
    fn fold<B, F: FnMut(B, Asn) -> B>(self, init: B, mut f: F) -> B {
        let be = |c: &[u8]| Asn(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        let mut acc = self.seg.chunks_exact(4).map(be).fold(init, &mut f);
        let mut rest = self.rest;
        while let Some((&[ty, count], tail)) = rest.split_first_chunk::<2>() {
            if SegmentType::from_code(ty).is_none() {
                break;
            }
            let Some((seg, tail)) = tail.split_at_checked(usize::from(count) * 4) else {
                break;
            };
            acc = seg.chunks_exact(4).map(be).fold(acc, &mut f);
            rest = tail;
        }
        acc
    }
}

/// Iterator over the segments of an [`AsPath`].
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for Segments<'a> {
    type Item = SegmentRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<SegmentRef<'a>> {
        let (&[ty, count], rest) = self.buf.split_first_chunk::<2>()?;
        let (raw, rest) = rest.split_at_checked(usize::from(count) * 4)?;
        self.buf = rest;
        Some(SegmentRef {
            kind: SegmentType::from_code(ty)?,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seq(v: &[u32]) -> Segment {
        Segment {
            kind: SegmentType::AsSequence,
            asns: v.iter().map(|&a| Asn(a)).collect(),
        }
    }

    fn set(v: &[u32]) -> Segment {
        Segment {
            kind: SegmentType::AsSet,
            asns: v.iter().map(|&a| Asn(a)).collect(),
        }
    }

    #[test]
    fn two_octet_decode_widens() {
        let p =
            AsPath::decode(Buf::copy_from_slice(&[2, 2, 0xfd, 0xe8, 0x5b, 0xa0]), false).unwrap();
        assert_eq!(p.raw(), &[2, 2, 0, 0, 0xfd, 0xe8, 0, 0, 0x5b, 0xa0]);
        assert_eq!(p.to_string(), "65000 23456");
        let mut out = BytesMut::new();
        p.encode_value(false, &mut out);
        assert_eq!(&out[..], &[2, 2, 0xfd, 0xe8, 0x5b, 0xa0]);
    }

    #[test]
    fn malformed_paths() {
        for (raw, at) in [
            (&[5u8, 1, 0, 0, 0, 1][..], 0),  // undefined type
            (&[2, 0][..], 0),                // zero count
            (&[2, 2, 0, 0, 0, 1][..], 0),    // overrun
            (&[2, 1, 0, 0, 0, 1, 2][..], 6), // underrun
        ] {
            assert_eq!(
                AsPath::decode(Buf::copy_from_slice(raw), true),
                Err(MalformedPath { at })
            );
        }
    }

    #[test]
    fn best_path_length_and_helpers() {
        let p = AsPath::from_segments([
            Segment {
                kind: SegmentType::AsConfedSequence,
                asns: vec![Asn(1), Asn(2)],
            },
            seq(&[65001, 65002]),
            set(&[3, 4, 5]),
        ]);
        assert_eq!(p.len_for_best_path(), 3);
        assert_eq!(p.first_asn(), None);
        assert!(p.contains(Asn(4)));
        assert_eq!(p.to_string(), "(1 2) 65001 65002 {3,4,5}");
        assert_eq!(p.without_confed().to_string(), "65001 65002 {3,4,5}");
        let q = AsPath::from_sequence([Asn(7)]).prepend(Asn(9), 2);
        assert_eq!(q.to_string(), "9 9 7");
        assert_eq!(q.first_asn(), Some(Asn(9)));
        assert_eq!(AsPath::empty().prepend(Asn(1), 1).to_string(), "1");
        assert_eq!(
            p.prepend(Asn(9), 1).to_string(),
            "9 (1 2) 65001 65002 {3,4,5}"
        );
    }

    #[test]
    fn long_segments_split() {
        let p = AsPath::from_sequence((0..300).map(Asn));
        let segs: Vec<_> = p.segments().map(|s| s.len()).collect();
        assert_eq!(segs, vec![255, 45]);
        let q = p.prepend(Asn(1), 1);
        assert_eq!(
            q.segments().map(|s| s.len()).collect::<Vec<_>>(),
            vec![1, 255, 45]
        );
        assert_eq!(q.len_for_best_path(), 301);
    }

    /// RFC 6793 §4.2.3 examples.
    #[test]
    fn as4_merge() {
        // AS_PATH 65001 23456 23456 65002; AS4_PATH 4200000001 4200000002 65002.
        let as_path = AsPath::from_sequence([65001, 23456, 23456, 65002].map(Asn));
        let as4 = AsPath::from_sequence([4_200_000_001, 4_200_000_002, 65002].map(Asn));
        let m = AsPath::merge_as4(&as_path, &as4);
        assert_eq!(m.to_string(), "65001 4200000001 4200000002 65002");
        // AS4_PATH longer than AS_PATH: ignored.
        let short = AsPath::from_sequence([23456].map(Asn));
        assert_eq!(AsPath::merge_as4(&short, &as4), short);
        // An AS_SET in the leading part counts 1 and is kept whole.
        let with_set = AsPath::from_segments([seq(&[65001]), set(&[1, 2]), seq(&[23456])]);
        let as4 = AsPath::from_sequence([4_200_000_001].map(Asn));
        assert_eq!(
            AsPath::merge_as4(&with_set, &as4).to_string(),
            "65001 {1,2} 4200000001"
        );
    }

    fn arb_segment() -> impl Strategy<Value = Segment> {
        (1u8..=4, proptest::collection::vec(any::<u32>(), 1..20)).prop_map(|(k, v)| Segment {
            kind: SegmentType::from_code(k).unwrap(),
            asns: v.into_iter().map(Asn).collect(),
        })
    }

    pub(crate) fn arb_path() -> impl Strategy<Value = AsPath> {
        proptest::collection::vec(arb_segment(), 0..5).prop_map(AsPath::from_segments)
    }

    proptest! {
        #[test]
        fn round_trip_four_octet(p in arb_path()) {
            let mut out = BytesMut::new();
            p.encode_value(true, &mut out);
            prop_assert_eq!(out.len(), p.encoded_len(true));
            prop_assert_eq!(AsPath::decode(Buf::copy_from_slice(&out), true).unwrap(), p);
        }

        #[test]
        fn round_trip_two_octet(p in arb_path()) {
            let mut out = BytesMut::new();
            p.encode_value(false, &mut out);
            prop_assert_eq!(out.len(), p.encoded_len(false));
            let d = AsPath::decode(Buf::copy_from_slice(&out), false).unwrap();
            let mapped: Vec<Asn> = p.asns().map(|a| Asn(u32::from(a.to_two_octet()))).collect();
            prop_assert_eq!(d.asns().collect::<Vec<_>>(), mapped);
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..40), four in any::<bool>()) {
            if let Ok(p) = AsPath::decode(Buf::copy_from_slice(&raw), four) {
                let _ = p.len_for_best_path();
                let _ = p.to_string();
            }
        }
    }
}
