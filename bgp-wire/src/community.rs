//! Communities (RFC 1997), extended communities (RFC 4360), large communities (RFC 8092) and
//! CLUSTER_LIST (RFC 4456): fixed-size values packed in an attribute, held as the wire
//! bytes (inline when short, otherwise a zero-copy slice of the message).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::buf::Buf;

use crate::types::Asn;

/// Defines a list of fixed-size values over wire bytes.
macro_rules! packed_list {
    ($(#[$m:meta])* $name:ident, $iter:ident, $item:ty, $size:expr, $from:expr, $to:expr) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
        pub struct $name {
            raw: Buf,
        }

        impl $name {
            /// The size of one value on the wire.
            pub const VALUE_LEN: usize = $size;

            /// Builds the list from values.
            pub fn new(values: impl IntoIterator<Item = $item>) -> Self {
                let mut out = BytesMut::new();
                for v in values {
                    let to: fn(&$item, &mut BytesMut) = $to;
                    to(&v, &mut out);
                }
                $name {
                    raw: Buf::from_bytes_mut(out),
                }
            }

            /// Wraps an attribute value; `None` unless its length is a non-zero multiple of
            /// the value size (RFC 7606 §7).
            #[allow(dead_code)]
            pub(crate) fn from_wire(raw: Buf) -> Option<Self> {
                (!raw.is_empty() && raw.len() % $size == 0).then_some($name { raw })
            }

            /// [`Self::from_wire_slice`] into `slot`, built in place; false (and `slot`
            /// untouched) if the length is wrong.
            #[inline(always)]
            pub(crate) fn from_wire_slice_into(
                slot: &mut Option<Self>,
                body: &Bytes,
                range: Range<usize>,
            ) -> bool {
                let len = range.end.wrapping_sub(range.start);
                if len == 0 || len % $size != 0 || range.end < range.start {
                    return false;
                }
                slot.insert(Self::default()).raw.set_slice_of(body, range);
                true
            }

            /// [`Self::from_wire`] of `body[range]`, checked before anything is copied.
            #[allow(dead_code)]
            #[inline(always)]
            pub(crate) fn from_wire_slice(body: &Bytes, range: Range<usize>) -> Option<Self> {
                let len = range.end.checked_sub(range.start)?;
                if len == 0 || len % $size != 0 {
                    return None;
                }
                Some($name {
                    raw: Buf::slice_of(body, range),
                })
            }

            /// The wire bytes.
            #[inline]
            pub fn raw(&self) -> &[u8] {
                &self.raw
            }

            /// A copy that shares no memory with the buffer it was decoded from.
            pub fn detached(&self) -> Self {
                $name {
                    raw: self.raw.detached(),
                }
            }

            /// The number of values.
            #[inline]
            pub fn len(&self) -> usize {
                self.raw.len() / $size
            }

            /// Whether the list is empty.
            #[inline]
            pub fn is_empty(&self) -> bool {
                self.raw.is_empty()
            }

            /// The values, in wire order.
            #[inline]
            pub fn iter(&self) -> $iter<'_> {
                $iter {
                    inner: self.raw.as_slice().chunks_exact($size),
                }
            }

            /// Whether the list holds the value.
            pub fn contains(&self, v: $item) -> bool {
                self.iter().any(|x| x == v)
            }

            /// A copy with the value appended (unless already present).
            pub fn with(&self, v: $item) -> Self {
                if self.contains(v) {
                    return self.clone();
                }
                let mut out = BytesMut::with_capacity(self.raw.len() + $size);
                out.put_slice(&self.raw);
                let to: fn(&$item, &mut BytesMut) = $to;
                to(&v, &mut out);
                $name {
                    raw: Buf::from_bytes_mut(out),
                }
            }

            /// A copy without the values for which `f` returns false.
            pub fn retain(&self, mut f: impl FnMut($item) -> bool) -> Self {
                $name::new(self.iter().filter(|v| f(*v)))
            }
        }

        impl FromIterator<$item> for $name {
            fn from_iter<T: IntoIterator<Item = $item>>(iter: T) -> Self {
                $name::new(iter)
            }
        }

        impl<'a> IntoIterator for &'a $name {
            type Item = $item;
            type IntoIter = $iter<'a>;
            fn into_iter(self) -> Self::IntoIter {
                self.iter()
            }
        }

        #[doc = concat!("Iterator over a [`", stringify!($name), "`].")]
        #[derive(Clone, Debug)]
        pub struct $iter<'a> {
            inner: std::slice::ChunksExact<'a, u8>,
        }

        impl Iterator for $iter<'_> {
            type Item = $item;
            #[inline]
            fn next(&mut self) -> Option<$item> {
                let from: fn(&[u8]) -> Option<$item> = $from;
                from(self.inner.next()?)
            }
            #[inline]
            fn size_hint(&self) -> (usize, Option<usize>) {
                self.inner.size_hint()
            }
        }
    };
}

#[inline]
fn be32(c: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(c.get(..4)?.try_into().ok()?))
}

/// A standard community (RFC 1997 §4): 32 bits, conventionally `asn:value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl Community {
    /// NO_EXPORT (RFC 1997): do not advertise outside the AS (or confederation).
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// NO_ADVERTISE (RFC 1997): do not advertise to any peer.
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// NO_EXPORT_SUBCONFED (RFC 1997): do not advertise to external peers, confederation
    /// members included.
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// NOPEER (RFC 3765).
    pub const NOPEER: Community = Community(0xFFFF_FF04);
    /// BLACKHOLE (RFC 7999).
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);
    /// GRACEFUL_SHUTDOWN (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// ACCEPT_OWN (RFC 7611).
    pub const ACCEPT_OWN: Community = Community(0xFFFF_0001);
    /// LLGR_STALE (RFC 9494).
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// NO_LLGR (RFC 9494).
    pub const NO_LLGR: Community = Community(0xFFFF_0007);

    const NAMED: [(Community, &'static str); 9] = [
        (Self::NO_EXPORT, "no-export"),
        (Self::NO_ADVERTISE, "no-advertise"),
        (Self::NO_EXPORT_SUBCONFED, "no-export-subconfed"),
        (Self::NOPEER, "nopeer"),
        (Self::BLACKHOLE, "blackhole"),
        (Self::GRACEFUL_SHUTDOWN, "graceful-shutdown"),
        (Self::ACCEPT_OWN, "accept-own"),
        (Self::LLGR_STALE, "llgr-stale"),
        (Self::NO_LLGR, "no-llgr"),
    ];

    /// `asn:value`.
    pub fn new(asn: u16, value: u16) -> Self {
        Community((u32::from(asn) << 16) | u32::from(value))
    }

    /// The high 16 bits (conventionally the AS).
    pub fn asn(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The low 16 bits.
    pub fn value(self) -> u16 {
        self.0 as u16
    }

    /// The well-known name, if this is one of the named well-known communities.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMED
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, n)| *n)
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}:{}", self.asn(), self.value()),
        }
    }
}

/// The text could not be parsed as a community.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid community")]
pub struct ParseCommunityError;

impl FromStr for Community {
    type Err = ParseCommunityError;
    /// Parses `65000:100` or a well-known name (`no-export`, ...).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some((c, _)) = Self::NAMED.iter().find(|(_, n)| *n == s) {
            return Ok(*c);
        }
        let (a, v) = s.split_once(':').ok_or(ParseCommunityError)?;
        let a = a.parse().map_err(|_| ParseCommunityError)?;
        let v = v.parse().map_err(|_| ParseCommunityError)?;
        Ok(Community::new(a, v))
    }
}

packed_list!(
    /// COMMUNITIES (RFC 1997): a zero-copy list of [`Community`] values.
    Communities,
    CommunitiesIter,
    Community,
    4,
    |c| be32(c).map(Community),
    |v, out| out.put_u32(v.0)
);

/// An extended community (RFC 4360 §2): 8 octets, a type (high, low) and a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtCommunity(pub [u8; 8]);

impl ExtCommunity {
    /// The type high octet (RFC 4360 §2): IANA authority and transitivity bits included.
    pub fn type_high(self) -> u8 {
        self.0[0]
    }

    /// The sub-type (low type octet) for the regular types (RFC 4360 §2).
    pub fn subtype(self) -> u8 {
        self.0[1]
    }

    /// Whether the community is transitive across ASes (bit 0x40 of the type clear).
    pub fn is_transitive(self) -> bool {
        self.0[0] & 0x40 == 0
    }

    /// The 6-octet value after type and sub-type.
    pub fn value(self) -> [u8; 6] {
        let [_, _, a, b, c, d, e, f] = self.0;
        [a, b, c, d, e, f]
    }

    /// Route Target, 2-octet AS specific (RFC 4360 §4, type 0x00, sub-type 0x02).
    pub fn route_target_as2(asn: u16, value: u32) -> Self {
        let [a, b] = asn.to_be_bytes();
        let [c, d, e, f] = value.to_be_bytes();
        ExtCommunity([0x00, 0x02, a, b, c, d, e, f])
    }

    /// Route Target, IPv4 address specific (RFC 4360 §4, type 0x01, sub-type 0x02).
    pub fn route_target_ipv4(addr: Ipv4Addr, value: u16) -> Self {
        let [a, b, c, d] = addr.octets();
        let [e, f] = value.to_be_bytes();
        ExtCommunity([0x01, 0x02, a, b, c, d, e, f])
    }

    /// Route Target, 4-octet AS specific (RFC 5668 §2, type 0x02, sub-type 0x02).
    pub fn route_target_as4(asn: Asn, value: u16) -> Self {
        let [a, b, c, d] = asn.0.to_be_bytes();
        let [e, f] = value.to_be_bytes();
        ExtCommunity([0x02, 0x02, a, b, c, d, e, f])
    }

    /// Whether this is a Route Target of any of the three forms.
    pub fn is_route_target(self) -> bool {
        matches!(self.type_high(), 0x00..=0x02) && self.subtype() == 0x02
    }
}

impl fmt::Display for ExtCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        match (v[0], v[1]) {
            (0x00, 0x02) => write!(
                f,
                "rt:{}:{}",
                u16::from_be_bytes([v[2], v[3]]),
                u32::from_be_bytes([v[4], v[5], v[6], v[7]])
            ),
            (0x01, 0x02) => write!(
                f,
                "rt:{}:{}",
                Ipv4Addr::new(v[2], v[3], v[4], v[5]),
                u16::from_be_bytes([v[6], v[7]])
            ),
            (0x02, 0x02) => write!(
                f,
                "rt:{}:{}",
                u32::from_be_bytes([v[2], v[3], v[4], v[5]]),
                u16::from_be_bytes([v[6], v[7]])
            ),
            _ => {
                f.write_str("0x")?;
                for b in v {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

packed_list!(
    /// EXTENDED COMMUNITIES (RFC 4360 §2): a zero-copy list of [`ExtCommunity`] values.
    ExtCommunities,
    ExtCommunitiesIter,
    ExtCommunity,
    8,
    |c| Some(ExtCommunity(c.get(..8)?.try_into().ok()?)),
    |v, out| out.put_slice(&v.0)
);

/// A large community (RFC 8092 §3): `global:local1:local2`, three 32-bit fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    /// The Global Administrator (conventionally an AS number).
    pub global: u32,
    /// The first Local Data Part.
    pub local1: u32,
    /// The second Local Data Part.
    pub local2: u32,
}

impl LargeCommunity {
    /// `global:local1:local2`.
    pub fn new(global: u32, local1: u32, local2: u32) -> Self {
        LargeCommunity {
            global,
            local1,
            local2,
        }
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

impl FromStr for LargeCommunity {
    type Err = ParseCommunityError;
    /// Parses `global:local1:local2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut it = s
            .split(':')
            .map(|p| p.parse::<u32>().map_err(|_| ParseCommunityError));
        let (Some(g), Some(a), Some(b), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err(ParseCommunityError);
        };
        Ok(LargeCommunity::new(g?, a?, b?))
    }
}

packed_list!(
    /// LARGE_COMMUNITY (RFC 8092 §3): a zero-copy list of [`LargeCommunity`] values.
    LargeCommunities,
    LargeCommunitiesIter,
    LargeCommunity,
    12,
    |c| Some(LargeCommunity::new(be32(c)?, be32(c.get(4..)?)?, be32(c.get(8..)?)?)),
    |v, out| {
        out.put_u32(v.global);
        out.put_u32(v.local1);
        out.put_u32(v.local2);
    }
);

packed_list!(
    /// CLUSTER_LIST (RFC 4456 §8): the CLUSTER_IDs a reflected route passed, most recent
    /// first.
    ClusterList,
    ClusterListIter,
    Ipv4Addr,
    4,
    |c| be32(c).map(Ipv4Addr::from),
    |v, out| out.put_slice(&v.octets())
);

impl ClusterList {
    /// A copy with `id` prepended (what a route reflector does, RFC 4456 §8).
    pub fn prepend(&self, id: Ipv4Addr) -> Self {
        let mut out = BytesMut::with_capacity(self.raw.len() + 4);
        out.put_slice(&id.octets());
        out.put_slice(&self.raw);
        ClusterList {
            raw: Buf::from_bytes_mut(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_display_and_parse() {
        assert_eq!(Community::new(65000, 100).to_string(), "65000:100");
        assert_eq!(Community::NO_EXPORT.to_string(), "no-export");
        assert_eq!(Community::BLACKHOLE.to_string(), "blackhole");
        for (c, n) in Community::NAMED {
            assert_eq!(n.parse::<Community>(), Ok(c));
        }
        assert_eq!("65000:100".parse(), Ok(Community(0xFDE8_0064)));
        assert!("65000".parse::<Community>().is_err());
        assert!("70000:1".parse::<Community>().is_err());
    }

    #[test]
    fn communities_zero_copy() {
        let c = Communities::new([Community::NO_EXPORT, Community::new(1, 2)]);
        assert_eq!(c.raw(), &[0xff, 0xff, 0xff, 0x01, 0, 1, 0, 2]);
        let d = Communities::from_wire(Buf::copy_from_slice(c.raw())).unwrap();
        assert_eq!(d, c);
        assert!(d.contains(Community::NO_EXPORT));
        assert_eq!(d.len(), 2);
        assert!(Communities::from_wire(Buf::copy_from_slice(&[1, 2, 3])).is_none());
        assert!(Communities::from_wire(Buf::new()).is_none());
        assert_eq!(d.with(Community::NO_EXPORT), d);
        assert_eq!(d.with(Community(5)).len(), 3);
        assert_eq!(d.retain(|c| c != Community::NO_EXPORT).len(), 1);
    }

    #[test]
    fn ext_communities() {
        let rt = ExtCommunity::route_target_as2(65000, 100);
        assert_eq!(rt.0, [0, 2, 0xfd, 0xe8, 0, 0, 0, 100]);
        assert!(rt.is_transitive() && rt.is_route_target());
        assert_eq!(rt.to_string(), "rt:65000:100");
        let rt4 = ExtCommunity::route_target_as4(Asn(4_200_000_000), 7);
        assert_eq!(rt4.to_string(), "rt:4200000000:7");
        let rti = ExtCommunity::route_target_ipv4(Ipv4Addr::new(192, 0, 2, 1), 9);
        assert_eq!(rti.to_string(), "rt:192.0.2.1:9");
        assert_eq!(rti.value(), [192, 0, 2, 1, 0, 9]);
        let l = ExtCommunities::new([rt, rti]);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![rt, rti]);
        assert!(ExtCommunities::from_wire(Buf::copy_from_slice(&[0; 12])).is_none());
    }

    #[test]
    fn large_communities() {
        let l = LargeCommunity::new(4_200_000_000, 1, 2);
        assert_eq!(l.to_string(), "4200000000:1:2");
        assert_eq!("4200000000:1:2".parse(), Ok(l));
        assert!("1:2".parse::<LargeCommunity>().is_err());
        let list = LargeCommunities::new([l]);
        assert_eq!(list.raw().len(), 12);
        assert_eq!(list.iter().next(), Some(l));
    }

    #[test]
    fn cluster_list() {
        let c = ClusterList::new([Ipv4Addr::new(1, 1, 1, 1)]).prepend(Ipv4Addr::new(2, 2, 2, 2));
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            vec![Ipv4Addr::new(2, 2, 2, 2), Ipv4Addr::new(1, 1, 1, 1)]
        );
    }
}
