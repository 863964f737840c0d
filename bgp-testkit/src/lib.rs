//! Test helpers shared by bgp-speaker's integration tests, benches and fuzz targets: a
//! realistic table generator, its wire encoding, the captured messages of real daemons, and
//! the bodies of the fuzz targets.

#![forbid(unsafe_code)]

pub mod captures;
pub mod fuzz;
pub mod table;
pub mod wire;

pub use table::{AttrSpec, Rng, RouteGroup, Table, TableSpec};
