//! Test helpers shared by bgp-speaker's integration tests, benches and fuzz targets: a
//! realistic table generator and captured messages from real daemons.

pub mod table;

pub use table::{AttrSpec, Rng, RouteGroup, Table, TableSpec};
