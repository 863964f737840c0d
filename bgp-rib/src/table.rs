//! Hash maps tuned for prefix keys: a small multiplicative hasher (keys are routing data,
//! not attacker-chosen strings the peer could aim at a slow path; see the note on
//! [`FastHasher`]) and the per-family table array.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use bgp_wire::AfiSafi;

/// A fast non-cryptographic hasher (multiply-rotate over 8-byte words).
///
/// Prefixes are chosen by peers, so in principle a peer could aim for collisions; each
/// map's cost is still bounded by max-prefix limits, and the hasher is seeded per process
/// through the address of a static, which makes offline collision search less useful.
#[derive(Clone, Copy, Debug)]
pub struct FastHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Default for FastHasher {
    fn default() -> Self {
        static SEED: u8 = 0;
        FastHasher(std::ptr::addr_of!(SEED) as u64)
    }
}

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            self.add(u64::from_le_bytes(a));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut a = [0u8; 8];
            a.get_mut(..rest.len())
                .unwrap_or_default()
                .copy_from_slice(rest);
            self.add(u64::from_le_bytes(a));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// The hasher builder.
pub type FastBuild = BuildHasherDefault<FastHasher>;
/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, FastBuild>;
/// A `HashSet` with [`FastHasher`].
pub type FastSet<K> = HashSet<K, FastBuild>;

/// One value per known family ([`AfiSafi::KNOWN`]), indexed by [`AfiSafi::index`].
#[derive(Clone, Debug, Default)]
pub struct PerFamily<T>(pub [T; 4]);

impl<T> PerFamily<T> {
    /// The value for a family; `None` for families the RIB does not handle.
    pub fn get(&self, f: AfiSafi) -> Option<&T> {
        self.0.get(f.index()?)
    }

    /// The value for a family, mutably.
    pub fn get_mut(&mut self, f: AfiSafi) -> Option<&mut T> {
        self.0.get_mut(f.index()?)
    }

    /// Every family with its value.
    pub fn iter(&self) -> impl Iterator<Item = (AfiSafi, &T)> {
        AfiSafi::KNOWN.into_iter().zip(self.0.iter())
    }
}
