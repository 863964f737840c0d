//! Test helpers shared by bgp-speaker's integration tests, benches and fuzz targets: a
//! realistic table generator, its wire encoding, the captured messages of real daemons, and
//! the bodies of the fuzz targets, and real BGP daemons (FRR, BIRD, GoBGP) as test peers
//! ([`daemons`]).

#![forbid(unsafe_code)]

pub mod captures;
pub mod daemons;
pub mod fuzz;
pub mod table;
pub mod wire;

pub use table::{AttrSpec, Rng, RouteGroup, Table, TableSpec};
