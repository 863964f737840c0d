//! Network Layer Reachability Information: IP prefixes, optionally with ADD-PATH path
//! identifiers (RFC 4271 §4.3, RFC 4760 §5, RFC 7911 §3).
//!
//! A received NLRI block is validated once, in one pass, and then kept as the zero-copy wire
//! bytes ([`Nlris`]); iterating yields [`Nlri`] values without allocating.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::buf::Buf;
use crate::error::{DecodeError, EncodeError, ErrorKind};
use crate::types::{Afi, AfiSafi};

/// One prefix as carried in NLRI (RFC 4271 §4.3), with its ADD-PATH path identifier
/// (RFC 7911 §3) when the session negotiated ADD-PATH for the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nlri {
    /// The ADD-PATH path identifier, present exactly when the block carries path ids.
    pub path_id: Option<u32>,
    /// The prefix, host bits cleared.
    pub prefix: IpNet,
}

impl Nlri {
    /// A prefix without a path identifier (host bits are cleared).
    pub fn new(prefix: IpNet) -> Self {
        Nlri {
            path_id: None,
            prefix: prefix.trunc(),
        }
    }

    /// A prefix with a path identifier (host bits are cleared).
    pub fn with_path_id(prefix: IpNet, path_id: u32) -> Self {
        Nlri {
            path_id: Some(path_id),
            prefix: prefix.trunc(),
        }
    }

    /// The number of octets this prefix takes on the wire.
    pub fn wire_len(&self, path_ids: bool) -> usize {
        usize::from(self.prefix.prefix_len()).div_ceil(8) + 1 + if path_ids { 4 } else { 0 }
    }
}

impl fmt::Display for Nlri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path_id {
            Some(id) => write!(f, "{} path-id {id}", self.prefix),
            None => write!(f, "{}", self.prefix),
        }
    }
}

impl From<IpNet> for Nlri {
    fn from(p: IpNet) -> Self {
        Nlri::new(p)
    }
}

/// A validated block of NLRI of one family, held as the wire bytes (RFC 4271 §4.3 NLRI and
/// Withdrawn Routes fields, RFC 4760 §3/§4 NLRI inside MP_REACH_NLRI / MP_UNREACH_NLRI).
///
/// For the four families this codec knows ([`AfiSafi::KNOWN`]) every prefix was checked when
/// the block was decoded or built, so [`Nlris::iter`] cannot fail. For other families the
/// bytes are kept uninterpreted so that they round-trip: [`Nlris::iter`] yields nothing and
/// [`Nlris::raw`] gives the bytes.
///
/// Equality and hashing are by content (family and prefixes), not by the exact bytes.
#[derive(Clone, Debug)]
pub struct Nlris {
    family: AfiSafi,
    path_ids: bool,
    count: u32,
    raw: Buf,
}

impl Nlris {
    /// An empty block.
    #[inline]
    pub fn empty(family: AfiSafi) -> Self {
        Nlris {
            family,
            path_ids: false,
            count: 0,
            raw: Buf::new(),
        }
    }

    /// Encodes prefixes into a block. With `path_ids` every prefix is written with its path
    /// identifier (0 when it has none); without, path identifiers are dropped. A prefix of the
    /// wrong address family, or a family this codec does not know, is an error.
    pub fn new(
        family: AfiSafi,
        path_ids: bool,
        nlri: impl IntoIterator<Item = Nlri>,
    ) -> Result<Self, EncodeError> {
        if !family.is_known() {
            return Err(EncodeError::Invalid("NLRI of an unknown family"));
        }
        let v6 = family.afi == Afi::IPV6;
        let mut out = BytesMut::new();
        let mut count: u32 = 0;
        for n in nlri {
            if matches!(n.prefix, IpNet::V6(_)) != v6 {
                return Err(EncodeError::Invalid("prefix of the wrong address family"));
            }
            write_nlri(&n, path_ids, &mut out);
            count = count.saturating_add(1);
        }
        Ok(Nlris {
            family,
            path_ids,
            count,
            raw: Buf::from_bytes_mut(out),
        })
    }

    /// Validates a received block in one pass (RFC 4271 §4.3, RFC 7911 §3). A prefix length
    /// beyond the family's maximum or a prefix cut short is an Invalid Network Field error
    /// (RFC 7606 §5.3: session reset) at the offending prefix's offset. Blocks of unknown
    /// families are accepted as they are.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn decode(
        family: AfiSafi,
        path_ids: bool,
        raw: Buf,
        offset: usize,
        field: &'static str,
    ) -> Result<Self, DecodeError> {
        if !family.is_known() {
            return Ok(Nlris {
                family,
                path_ids: false,
                count: 0,
                raw,
            });
        }
        let count = validate(&raw, family.afi == Afi::IPV6, path_ids)
            .map_err(|at| DecodeError::new(ErrorKind::InvalidNetworkField, field, offset + at))?;
        Ok(Nlris {
            family,
            path_ids,
            count,
            raw,
        })
    }

    /// [`Nlris::decode`] of `body[range]`: validated in place, then copied inline or sliced.
    #[inline(always)]
    pub(crate) fn decode_slice(
        family: AfiSafi,
        path_ids: bool,
        body: &Bytes,
        range: Range<usize>,
        offset: usize,
        field: &'static str,
    ) -> Result<Self, DecodeError> {
        if !family.is_known() {
            return Ok(Nlris {
                family,
                path_ids: false,
                count: 0,
                raw: Buf::slice_of(body, range),
            });
        }
        let raw = body.get(range.clone()).unwrap_or(&[]);
        let count = validate(raw, family.afi == Afi::IPV6, path_ids)
            .map_err(|at| invalid_network_field(field, offset + at))?;
        Ok(Nlris {
            family,
            path_ids,
            count,
            raw: Buf::slice_of(body, range),
        })
    }

    /// Makes this an empty block of `family`, in place.
    #[inline]
    pub(crate) fn clear(&mut self, family: AfiSafi) {
        self.family = family;
        self.path_ids = false;
        self.count = 0;
        self.raw.clear();
    }

    /// [`Nlris::decode_slice`] into `self`, field by field (no block moved through a
    /// `Result`). On error `self` is left as it was.
    #[inline(always)]
    pub(crate) fn decode_slice_into(
        &mut self,
        family: AfiSafi,
        path_ids: bool,
        body: &Bytes,
        range: Range<usize>,
        offset: usize,
        field: &'static str,
    ) -> Result<(), DecodeError> {
        if !family.is_known() {
            *self = Nlris::decode_slice(family, path_ids, body, range, offset, field)?;
            return Ok(());
        }
        let raw = body.get(range.clone()).unwrap_or(&[]);
        let count = validate(raw, family.afi == Afi::IPV6, path_ids)
            .map_err(|at| invalid_network_field(field, offset + at))?;
        self.family = family;
        self.path_ids = path_ids;
        self.count = count;
        self.raw.set_slice_of(body, range);
        Ok(())
    }

    /// The address family.
    #[inline]
    pub fn family(&self) -> AfiSafi {
        self.family
    }

    /// Whether the prefixes carry ADD-PATH path identifiers.
    #[inline]
    pub fn has_path_ids(&self) -> bool {
        self.path_ids
    }

    /// The number of prefixes (0 for a family this codec does not interpret).
    #[inline]
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Whether the block carries nothing (no bytes at all).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The wire bytes.
    #[inline]
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// A copy that shares no memory with the buffer it was decoded from.
    pub fn detached(&self) -> Self {
        Nlris {
            raw: self.raw.detached(),
            ..self.clone()
        }
    }

    /// The prefixes, canonicalised (host bits cleared), without allocating.
    #[inline]
    pub fn iter(&self) -> NlriIter<'_> {
        NlriIter {
            // `count` is 0 exactly when there is nothing to yield: for a block of a known
            // family it counts the validated prefixes, for any other family it is 0.
            buf: if self.count != 0 {
                self.raw.as_slice()
            } else {
                &[]
            },
            v6: self.family.afi == Afi::IPV6,
            path_ids: self.path_ids,
        }
    }

    /// Writes the block for a session that does (or does not) send path identifiers: the wire
    /// bytes as they are when the setting matches, re-encoded prefix by prefix otherwise.
    pub(crate) fn encode(&self, path_ids: bool, out: &mut BytesMut) {
        if path_ids == self.path_ids || !self.family.is_known() {
            out.put_slice(&self.raw);
        } else {
            for n in self.iter() {
                write_nlri(&n, path_ids, out);
            }
        }
    }

    /// The encoded length for a session with the given path-id setting.
    pub(crate) fn encoded_len(&self, path_ids: bool) -> usize {
        if path_ids == self.path_ids || !self.family.is_known() {
            self.raw.len()
        } else if path_ids {
            self.raw.len() + 4 * self.count()
        } else {
            self.raw.len() - 4 * self.count()
        }
    }
}

impl PartialEq for Nlris {
    fn eq(&self, other: &Self) -> bool {
        if self.family != other.family {
            return false;
        }
        if !self.family.is_known() {
            return self.raw == other.raw;
        }
        self.count == other.count && self.iter().eq(other.iter())
    }
}

impl Eq for Nlris {}

impl Hash for Nlris {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.family.hash(state);
        if self.family.is_known() {
            for n in self.iter() {
                n.hash(state);
            }
        } else {
            self.raw.hash(state);
        }
    }
}

impl<'a> IntoIterator for &'a Nlris {
    type Item = Nlri;
    type IntoIter = NlriIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl NlriIter<'_> {
    /// An iterator that yields nothing.
    pub(crate) const EMPTY: NlriIter<'static> = NlriIter {
        buf: &[],
        v6: false,
        path_ids: false,
    };

    /// Whether nothing is left.
    #[inline]
    pub(crate) fn is_done(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Checks every prefix of a block of a known family; the count, or the offset of the first bad
/// prefix.
#[inline]
fn validate(raw: &[u8], v6: bool, path_ids: bool) -> Result<u32, usize> {
    let max_len: u8 = if v6 { 128 } else { 32 };
    let skip = if path_ids { 4 } else { 0 };
    let mut pos = 0usize;
    let mut count: u32 = 0;
    let n = raw.len();
    while pos < n {
        let start = pos;
        let Some(&len) = raw.get(pos + skip) else {
            return Err(start);
        };
        if len > max_len {
            return Err(start);
        }
        pos += skip + 1 + usize::from(len).div_ceil(8);
        if pos > n {
            return Err(start);
        }
        count = count.saturating_add(1);
    }
    Ok(count)
}

#[cold]
#[inline(never)]
fn invalid_network_field(field: &'static str, at: usize) -> DecodeError {
    DecodeError::new(ErrorKind::InvalidNetworkField, field, at)
}

/// Iterator over the prefixes of a validated [`Nlris`] block.
#[derive(Clone, Debug)]
pub struct NlriIter<'a> {
    buf: &'a [u8],
    v6: bool,
    path_ids: bool,
}

impl Iterator for NlriIter<'_> {
    type Item = Nlri;

    #[inline]
    fn next(&mut self) -> Option<Nlri> {
        let mut buf = self.buf;
        let path_id = if self.path_ids {
            let (id, rest) = buf.split_first_chunk::<4>()?;
            buf = rest;
            Some(u32::from_be_bytes(*id))
        } else {
            None
        };
        let (&len, tail) = buf.split_first()?;
        let nbytes = usize::from(len).div_ceil(8);
        let (p, rest) = tail.split_at_checked(nbytes)?;
        self.buf = rest;
        // The block was validated when decoded or built, so `len` is within the family's
        // maximum and the constructors below cannot fail; the masks clear the host bits and
        // whatever follows the prefix in a fixed-size read.
        let prefix = if self.v6 {
            let bits = u128::from_be_bytes(read_be::<16>(p, tail)) & mask128(len);
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(bits), len).ok()?)
        } else {
            let bits = u32::from_be_bytes(read_be::<4>(p, tail)) & mask32(len);
            IpNet::V4(Ipv4Net::new(Ipv4Addr::from(bits), len).ok()?)
        };
        Some(Nlri { path_id, prefix })
    }
}

/// The prefix octets `p` (which start `tail`) as the leading bytes of an `N`-octet array:
/// one fixed-size load when `tail` is long enough (the caller masks off what follows the
/// prefix), else a copy into a zeroed array.
#[inline(always)]
fn read_be<const N: usize>(p: &[u8], tail: &[u8]) -> [u8; N] {
    if let Some(head) = tail.first_chunk::<N>() {
        return *head;
    }
    let mut a = [0u8; N];
    for (d, s) in a.iter_mut().zip(p) {
        *d = *s;
    }
    a
}

#[inline]
fn mask32(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

#[inline]
fn mask128(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

/// Appends one prefix in wire form (RFC 4271 §4.3, RFC 7911 §3: path id first).
#[inline]
pub(crate) fn write_nlri(n: &Nlri, path_ids: bool, out: &mut BytesMut) {
    if path_ids {
        out.put_u32(n.path_id.unwrap_or(0));
    }
    let len = n.prefix.prefix_len();
    let nbytes = usize::from(len).div_ceil(8);
    out.put_u8(len);
    match n.prefix.addr() {
        IpAddr::V4(a) => {
            let o = (u32::from(a) & mask32(len)).to_be_bytes();
            out.put_slice(o.get(..nbytes).unwrap_or(&o));
        }
        IpAddr::V6(a) => {
            let o = (u128::from(a) & mask128(len)).to_be_bytes();
            out.put_slice(o.get(..nbytes).unwrap_or(&o));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_bytes_both_ways() {
        let b = Nlris::new(
            AfiSafi::IPV4_UNICAST,
            false,
            [
                Nlri::new(p("10.0.0.0/8")),
                Nlri::new(p("192.168.1.0/24")),
                Nlri::new(p("0.0.0.0/0")),
            ],
        )
        .unwrap();
        assert_eq!(b.raw(), &[8, 10, 24, 192, 168, 1, 0]);
        let d = Nlris::decode(
            AfiSafi::IPV4_UNICAST,
            false,
            Buf::copy_from_slice(b.raw()),
            0,
            "t",
        )
        .unwrap();
        assert_eq!(d, b);
        assert_eq!(d.count(), 3);
        assert_eq!(d.iter().nth(1).unwrap().prefix, p("192.168.1.0/24"));
    }

    #[test]
    fn host_bits_are_cleared() {
        let d = Nlris::decode(
            AfiSafi::IPV4_UNICAST,
            false,
            Buf::copy_from_slice(&[9, 10, 0xff]),
            0,
            "t",
        )
        .unwrap();
        assert_eq!(d.iter().next().unwrap().prefix, p("10.128.0.0/9"));
    }

    #[test]
    fn ipv6_and_add_path() {
        let n = [Nlri::with_path_id(p("2001:db8::/32"), 7)];
        let b = Nlris::new(AfiSafi::IPV6_UNICAST, true, n).unwrap();
        assert_eq!(b.raw(), &[0, 0, 0, 7, 32, 0x20, 0x01, 0x0d, 0xb8]);
        let d = Nlris::decode(
            AfiSafi::IPV6_UNICAST,
            true,
            Buf::copy_from_slice(b.raw()),
            0,
            "t",
        )
        .unwrap();
        assert_eq!(d.iter().collect::<Vec<_>>(), n);
        // Re-encoding for a session without ADD-PATH drops the id.
        let mut out = BytesMut::new();
        d.encode(false, &mut out);
        assert_eq!(&out[..], &[32, 0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(d.encoded_len(false), 5);
    }

    #[test]
    fn invalid_network_field() {
        for (raw, at) in [
            (&[33u8, 1, 2, 3, 4, 5][..], 19),
            (&[8, 10, 24, 1, 2][..], 21),
            (&[8][..], 19),
        ] {
            let e = Nlris::decode(
                AfiSafi::IPV4_UNICAST,
                false,
                Buf::copy_from_slice(raw),
                19,
                "t",
            )
            .unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidNetworkField);
            assert_eq!(e.offset, at);
            assert_eq!(e.notification().subcode, 10);
            assert!(e.is_session_reset());
        }
        let e = Nlris::decode(
            AfiSafi::IPV6_UNICAST,
            false,
            Buf::copy_from_slice(&[129]),
            0,
            "t",
        );
        assert!(e.is_err());
        // ADD-PATH: a path id with nothing after it.
        let e = Nlris::decode(
            AfiSafi::IPV4_UNICAST,
            true,
            Buf::copy_from_slice(&[0, 0, 0, 1]),
            0,
            "t",
        );
        assert!(e.is_err());
    }

    #[test]
    fn wrong_family_refused() {
        assert!(Nlris::new(AfiSafi::IPV4_UNICAST, false, [Nlri::new(p("::/0"))]).is_err());
    }

    pub(crate) fn arb_nlri(v6: bool, path_ids: bool) -> impl Strategy<Value = Nlri> {
        let pid = if path_ids {
            any::<u32>().prop_map(Some).boxed()
        } else {
            Just(None).boxed()
        };
        let prefix = if v6 {
            (any::<u128>(), 0u8..=128)
                .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap()))
                .boxed()
        } else {
            (any::<u32>(), 0u8..=32)
                .prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap()))
                .boxed()
        };
        (pid, prefix).prop_map(|(path_id, prefix)| Nlri {
            path_id,
            prefix: prefix.trunc(),
        })
    }

    proptest! {
        #[test]
        fn round_trip((v6, ids, v) in (any::<bool>(), any::<bool>()).prop_flat_map(|(v6, ids)| {
            (Just(v6), Just(ids), proptest::collection::vec(arb_nlri(v6, ids), 0..20))
        })) {
            let fam = if v6 { AfiSafi::IPV6_UNICAST } else { AfiSafi::IPV4_UNICAST };
            let b = Nlris::new(fam, ids, v.clone()).unwrap();
            let d = Nlris::decode(fam, ids, Buf::copy_from_slice(b.raw()), 0, "t").unwrap();
            prop_assert_eq!(d.iter().collect::<Vec<_>>(), v);
            prop_assert_eq!(d, b);
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64), ids in any::<bool>()) {
            if let Ok(d) = Nlris::decode(AfiSafi::IPV6_UNICAST, ids, Buf::copy_from_slice(&raw), 0, "t") {
                prop_assert_eq!(d.iter().count(), d.count());
            }
        }
    }
}
