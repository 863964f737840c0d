//! Small newtypes shared by every message: AS numbers, address families.

use std::fmt;

/// An autonomous system number, always held as 4 octets (RFC 6793).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Asn(pub u32);

impl Asn {
    /// AS_TRANS (RFC 6793 §2): stands in for a 4-octet ASN on 2-octet sessions.
    pub const TRANS: Asn = Asn(23456);

    /// Whether this ASN fits in the 2-octet fields of RFC 4271.
    pub fn is_two_octet(self) -> bool {
        self.0 <= 0xffff
    }

    /// The value for a 2-octet field: the ASN itself, or AS_TRANS when it does not fit.
    pub fn to_two_octet(self) -> u16 {
        u16::try_from(self.0).unwrap_or(Self::TRANS.0 as u16)
    }
}

impl fmt::Display for Asn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u32> for Asn {
    fn from(v: u32) -> Self {
        Asn(v)
    }
}

/// Address Family Identifier (IANA "Address Family Numbers"). Unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Afi(pub u16);

impl Afi {
    /// IPv4.
    pub const IPV4: Afi = Afi(0x0001);
    /// IPv6.
    pub const IPV6: Afi = Afi(0x0002);
}

/// Subsequent Address Family Identifier (RFC 4760). Unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Safi(pub u8);

impl Safi {
    /// Unicast forwarding.
    pub const UNICAST: Safi = Safi(0x01);
    /// Multicast forwarding (RPF).
    pub const MULTICAST: Safi = Safi(0x02);
}

/// An AFI/SAFI pair: the unit of capability negotiation, End-of-RIB and graceful restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AfiSafi {
    /// The address family.
    pub afi: Afi,
    /// The subsequent address family.
    pub safi: Safi,
}

impl AfiSafi {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: AfiSafi = AfiSafi::new(Afi::IPV4, Safi::UNICAST);
    /// IPv6 unicast.
    pub const IPV6_UNICAST: AfiSafi = AfiSafi::new(Afi::IPV6, Safi::UNICAST);
    /// IPv4 multicast.
    pub const IPV4_MULTICAST: AfiSafi = AfiSafi::new(Afi::IPV4, Safi::MULTICAST);
    /// IPv6 multicast.
    pub const IPV6_MULTICAST: AfiSafi = AfiSafi::new(Afi::IPV6, Safi::MULTICAST);

    /// The four families whose NLRI this codec understands (IPv4/IPv6 × unicast/multicast).
    pub const KNOWN: [AfiSafi; 4] = [
        Self::IPV4_UNICAST,
        Self::IPV6_UNICAST,
        Self::IPV4_MULTICAST,
        Self::IPV6_MULTICAST,
    ];

    /// Builds a pair.
    pub const fn new(afi: Afi, safi: Safi) -> Self {
        AfiSafi { afi, safi }
    }

    /// Whether this codec decodes this family's NLRI as IP prefixes.
    #[inline]
    pub fn is_known(self) -> bool {
        // The known families are exactly {IPv4, IPv6} x {unicast, multicast}.
        matches!(self.afi, Afi::IPV4 | Afi::IPV6)
            && matches!(self.safi, Safi::UNICAST | Safi::MULTICAST)
    }

    /// A dense index 0..4 for the known families, for bitsets and per-family arrays.
    #[inline]
    pub fn index(self) -> Option<usize> {
        match (self.afi, self.safi) {
            (Afi::IPV4, Safi::UNICAST) => Some(0),
            (Afi::IPV6, Safi::UNICAST) => Some(1),
            (Afi::IPV4, Safi::MULTICAST) => Some(2),
            (Afi::IPV6, Safi::MULTICAST) => Some(3),
            _ => None,
        }
    }

    /// The family name used in configuration files and JSON (`ipv4-unicast`, ...).
    pub fn name(self) -> Option<&'static str> {
        Some(match self.index()? {
            0 => "ipv4-unicast",
            1 => "ipv6-unicast",
            2 => "ipv4-multicast",
            _ => "ipv6-multicast",
        })
    }

    /// Parses a family name as written by [`AfiSafi::name`].
    pub fn from_name(name: &str) -> Option<AfiSafi> {
        Self::KNOWN.into_iter().find(|f| f.name() == Some(name))
    }
}

impl fmt::Display for AfiSafi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "afi{}/safi{}", self.afi.0, self.safi.0),
        }
    }
}

/// A small set of the known [`AfiSafi`] values, as a bitset (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct AfiSafiSet(u8);

impl AfiSafiSet {
    /// The empty set.
    pub const EMPTY: AfiSafiSet = AfiSafiSet(0);

    /// Adds a family; unknown families are ignored (returns false).
    pub fn insert(&mut self, f: AfiSafi) -> bool {
        match f.index() {
            Some(i) => {
                self.0 |= 1 << i;
                true
            }
            None => false,
        }
    }

    /// Removes a family.
    pub fn remove(&mut self, f: AfiSafi) {
        if let Some(i) = f.index() {
            self.0 &= !(1 << i);
        }
    }

    /// Whether the family is in the set.
    #[inline]
    pub fn contains(self, f: AfiSafi) -> bool {
        f.index().is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The families in the set, in [`AfiSafi::KNOWN`] order.
    pub fn iter(self) -> impl Iterator<Item = AfiSafi> {
        AfiSafi::KNOWN
            .into_iter()
            .filter(move |f| self.contains(*f))
    }

    /// The families in both sets.
    pub fn intersection(self, other: AfiSafiSet) -> AfiSafiSet {
        AfiSafiSet(self.0 & other.0)
    }
}

impl FromIterator<AfiSafi> for AfiSafiSet {
    fn from_iter<T: IntoIterator<Item = AfiSafi>>(iter: T) -> Self {
        let mut s = AfiSafiSet::EMPTY;
        for f in iter {
            s.insert(f);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in AfiSafi::KNOWN {
            assert_eq!(AfiSafi::from_name(f.name().unwrap_or_default()), Some(f));
        }
        assert_eq!(AfiSafi::new(Afi(25), Safi(70)).to_string(), "afi25/safi70");
    }

    #[test]
    fn two_octet_mapping() {
        assert_eq!(Asn(65000).to_two_octet(), 65000);
        assert_eq!(Asn(4_200_000_001).to_two_octet(), 23456);
    }

    #[test]
    fn set_ops() {
        let s: AfiSafiSet = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
            .into_iter()
            .collect();
        assert!(s.contains(AfiSafi::IPV6_UNICAST));
        assert!(!s.contains(AfiSafi::IPV4_MULTICAST));
        assert_eq!(s.iter().count(), 2);
    }
}
