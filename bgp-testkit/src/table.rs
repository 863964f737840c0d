//! A realistic, deterministic routing table: the input of the codec and RIB benches and of the
//! end-to-end load generator.
//!
//! Prefix lengths follow the shape of today's global table (IPv4 mostly /24 with /22, /23,
//! /20 … behind; IPv6 mostly /48 with /32, /44, /40 …). Attribute sets carry AS paths of one to
//! ten hops, ORIGIN, an occasional MED, and a few communities and large communities, as seen
//! from a transit provider. Routes are grouped by attribute set, as a speaker packs them into
//! UPDATEs. The same seed always yields the same table.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A small, fast, deterministic generator (SplitMix64); tables must not depend on `rand`'s
/// version.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p` percent.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// Picks from a weighted table of `(weight, value)`.
    pub fn weighted<T: Copy>(&mut self, table: &[(u32, T)]) -> T {
        let total: u64 = table.iter().map(|(w, _)| u64::from(*w)).sum();
        let mut x = self.below(total.max(1));
        for &(w, v) in table {
            if x < u64::from(w) {
                return v;
            }
            x -= u64::from(w);
        }
        table[table.len() - 1].1
    }
}

/// IPv4 prefix lengths in the global table, weights in tenths of a percent (2024-ish shape).
pub const IPV4_LENGTHS: &[(u32, u8)] = &[
    (2, 8),
    (1, 10),
    (2, 11),
    (4, 12),
    (6, 13),
    (9, 14),
    (10, 15),
    (13, 16),
    (8, 17),
    (14, 18),
    (26, 19),
    (39, 20),
    (50, 21),
    (96, 22),
    (106, 23),
    (604, 24),
    (2, 25),
    (2, 26),
    (2, 27),
    (1, 28),
    (1, 29),
    (1, 30),
    (1, 32),
];

/// IPv6 prefix lengths in the global table, weights in tenths of a percent.
pub const IPV6_LENGTHS: &[(u32, u8)] = &[
    (10, 28),
    (35, 29),
    (10, 30),
    (5, 31),
    (120, 32),
    (15, 33),
    (15, 34),
    (10, 35),
    (35, 36),
    (10, 37),
    (15, 38),
    (10, 39),
    (60, 40),
    (10, 41),
    (15, 42),
    (10, 43),
    (70, 44),
    (10, 45),
    (35, 46),
    (30, 47),
    (475, 48),
    (5, 56),
    (5, 64),
];

/// The attributes of one group of routes, as plain values (encoded by the caller).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttrSpec {
    /// AS_PATH as one AS_SEQUENCE, first hop first.
    pub as_path: Vec<u32>,
    /// ORIGIN: 0 IGP, 1 EGP, 2 INCOMPLETE.
    pub origin: u8,
    /// MULTI_EXIT_DISC, if any.
    pub med: Option<u32>,
    /// COMMUNITIES values.
    pub communities: Vec<u32>,
    /// LARGE_COMMUNITY values.
    pub large_communities: Vec<(u32, u32, u32)>,
}

/// Routes that share one attribute set.
#[derive(Clone, Debug)]
pub struct RouteGroup {
    /// The shared attributes.
    pub attrs: AttrSpec,
    /// The prefixes (all of one family).
    pub prefixes: Vec<IpNet>,
}

/// A whole table.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// IPv4 groups.
    pub ipv4: Vec<RouteGroup>,
    /// IPv6 groups.
    pub ipv6: Vec<RouteGroup>,
}

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct TableSpec {
    /// Number of IPv4 prefixes.
    pub ipv4_prefixes: usize,
    /// Number of IPv6 prefixes.
    pub ipv6_prefixes: usize,
    /// Number of distinct attribute sets, over both families.
    pub attribute_sets: usize,
    /// Seed.
    pub seed: u64,
    /// The first AS of every path (the peer's AS).
    pub peer_as: u32,
}

impl TableSpec {
    /// The full table of the benches: 1,000,000 IPv4 + 200,000 IPv6 prefixes, about 360,000
    /// attribute sets (about 3.3 prefixes per set).
    pub fn full() -> Self {
        TableSpec {
            ipv4_prefixes: 1_000_000,
            ipv6_prefixes: 200_000,
            attribute_sets: 360_000,
            seed: 0x5eed,
            peer_as: 64_512,
        }
    }

    /// The same shape scaled down by `factor` (for tests and CI smoke runs).
    pub fn scaled_down(self, factor: usize) -> Self {
        let f = factor.max(1);
        TableSpec {
            ipv4_prefixes: self.ipv4_prefixes / f,
            ipv6_prefixes: self.ipv6_prefixes / f,
            attribute_sets: (self.attribute_sets / f).max(1),
            ..self
        }
    }
}

impl Table {
    /// Generates a table.
    pub fn generate(spec: TableSpec) -> Table {
        let mut rng = Rng::new(spec.seed);
        let total = spec.ipv4_prefixes + spec.ipv6_prefixes;
        let sets_v4 = if total == 0 {
            0
        } else {
            (spec.attribute_sets * spec.ipv4_prefixes).div_ceil(total)
        };
        let sets_v6 = spec.attribute_sets.saturating_sub(sets_v4);
        let v4 = unique_prefixes(&mut rng, spec.ipv4_prefixes, |rng| {
            let len = rng.weighted(IPV4_LENGTHS);
            // Skip 0/8, 10/8, 127/8 and multicast and above.
            let first = 1 + rng.below(223) as u32;
            let first = if first == 10 || first == 127 {
                11
            } else {
                first
            };
            let addr = (first << 24) | (rng.next_u64() as u32 & 0x00ff_ffff);
            Ipv4Net::new(Ipv4Addr::from(addr), len)
                .map(|n| IpNet::V4(n.trunc()))
                .ok()
        });
        let v6 = unique_prefixes(&mut rng, spec.ipv6_prefixes, |rng| {
            let len = rng.weighted(IPV6_LENGTHS);
            let hi = 0x2000_0000_0000_0000u64 | (rng.next_u64() >> 4);
            let addr = (u128::from(hi) << 64) | u128::from(rng.next_u64());
            Ipv6Net::new(Ipv6Addr::from(addr), len)
                .map(|n| IpNet::V6(n.trunc()))
                .ok()
        });
        Table {
            ipv4: group(&mut rng, v4, sets_v4, spec.peer_as),
            ipv6: group(&mut rng, v6, sets_v6, spec.peer_as),
        }
    }

    /// All prefixes, IPv4 first.
    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.ipv4
            .iter()
            .chain(&self.ipv6)
            .flat_map(|g| g.prefixes.iter().copied())
    }

    /// The number of prefixes.
    pub fn len(&self) -> usize {
        self.ipv4
            .iter()
            .chain(&self.ipv6)
            .map(|g| g.prefixes.len())
            .sum()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unique_prefixes(
    rng: &mut Rng,
    n: usize,
    mut make: impl FnMut(&mut Rng) -> Option<IpNet>,
) -> Vec<IpNet> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    // Bounded: short prefix lengths run out of distinct values, so give up after many misses.
    let mut budget = n.saturating_mul(20) + 1000;
    while out.len() < n && budget > 0 {
        budget -= 1;
        if let Some(p) = make(rng) {
            if seen.insert(p) {
                out.push(p);
            }
        }
    }
    out
}

fn group(rng: &mut Rng, mut prefixes: Vec<IpNet>, sets: usize, peer_as: u32) -> Vec<RouteGroup> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    let sets = sets.clamp(1, prefixes.len());
    // Shuffle so that groups hold unrelated prefixes, as in a real table.
    for i in (1..prefixes.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        prefixes.swap(i, j);
    }
    // Every set gets one prefix; the rest go to sets with a skew (a few sets carry many
    // prefixes, most carry one to three), as in a real table.
    let mut counts = vec![1usize; sets];
    for _ in sets..prefixes.len() {
        let r = rng.below(sets as u64) as usize;
        let idx = if rng.percent(30) { r / 16 } else { r };
        counts[idx] += 1;
    }
    let mut groups = Vec::with_capacity(sets);
    let mut rest = prefixes.as_slice();
    let mut seen = HashSet::with_capacity(sets);
    for c in counts {
        let (mine, tail) = rest.split_at(c);
        rest = tail;
        let attrs = loop {
            let a = attr_spec(rng, peer_as);
            if seen.insert(a.clone()) {
                break a;
            }
        };
        groups.push(RouteGroup {
            attrs,
            prefixes: mine.to_vec(),
        });
    }
    groups
}

fn attr_spec(rng: &mut Rng, peer_as: u32) -> AttrSpec {
    let hops = rng.weighted(&[
        (5, 1usize),
        (20, 2),
        (30, 3),
        (25, 4),
        (10, 5),
        (6, 6),
        (4, 8),
    ]);
    let mut as_path = vec![peer_as];
    for _ in 1..hops {
        let asn = if rng.percent(25) {
            196_608 + rng.below(200_000) as u32
        } else {
            1 + rng.below(64_000) as u32
        };
        as_path.push(asn);
    }
    if rng.percent(5) {
        let last = as_path[as_path.len() - 1];
        as_path.extend([last, last]);
    }
    let ncomm = rng.weighted(&[(40, 0usize), (20, 1), (15, 2), (10, 3), (10, 5), (5, 10)]);
    let communities = (0..ncomm)
        .map(|_| (peer_as & 0xffff) << 16 | rng.below(4000) as u32)
        .collect();
    let large_communities = if rng.percent(10) {
        vec![(peer_as, 1, rng.below(1000) as u32)]
    } else {
        Vec::new()
    };
    AttrSpec {
        as_path,
        origin: rng.weighted(&[(85, 0u8), (1, 1), (14, 2)]),
        med: rng.percent(30).then(|| rng.below(1000) as u32),
        communities,
        large_communities,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_shaped() {
        let spec = TableSpec::full().scaled_down(100);
        let a = Table::generate(spec);
        let b = Table::generate(spec);
        assert_eq!(a.len(), 12_000);
        assert_eq!(
            a.prefixes().collect::<Vec<_>>(),
            b.prefixes().collect::<Vec<_>>()
        );
        let slash24 = a
            .prefixes()
            .filter(|p| matches!(p, IpNet::V4(n) if n.prefix_len() == 24))
            .count();
        assert!((5000..7000).contains(&slash24), "{slash24}");
        assert_eq!(a.ipv4.len() + a.ipv6.len(), 3600);
    }
}
