//! Best-of-N timing of the codec bench loops (`benches/wire.rs`) on the same generated table:
//! full validating decode into a reused `Update`, the same through `Message::decode_body`, and
//! the framing-only walk, with the decode/walk ratio. On a shared machine the fastest pass is
//! the one least disturbed, so this complements criterion's means.
//!
//! `BGP_BENCH_SCALE=1 cargo run --release --example wire_speed [passes]`
#![allow(clippy::disallowed_methods, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use bgp_testkit::wire::{decode_all, decode_all_messages, encode_table, framing_walk};
use bgp_testkit::{Table, TableSpec};
use bgp_wire::Context;

fn main() {
    let scale = std::env::var("BGP_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let passes: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let ctx = Context::default();
    let table = Table::generate(TableSpec::full().scaled_down(scale));
    let encoded = encode_table(&table, &ctx);
    let stream = encoded.stream.clone().freeze();
    let (updates, prefixes) = (encoded.updates as f64, encoded.prefixes as f64);
    println!(
        "table: {} prefixes, {} UPDATEs, {} bytes; best of {passes} passes",
        encoded.prefixes,
        encoded.updates,
        stream.len()
    );
    let mut best = [f64::MAX; 3];
    for (i, b) in best.iter_mut().enumerate() {
        for _ in 0..passes {
            let t = Instant::now();
            match i {
                0 => black_box(decode_all(&stream, &ctx)),
                1 => black_box(decode_all_messages(&stream, &ctx)),
                _ => black_box(framing_walk(black_box(&stream)) as u64),
            };
            *b = b.min(t.elapsed().as_secs_f64());
        }
    }
    for (name, secs) in [
        ("decode (Update::decode_into)", best[0]),
        ("decode (Message::decode_body)", best[1]),
        ("framing walk", best[2]),
    ] {
        println!(
            "{name:31} {:7.2} ms  {:6.1} ns/UPDATE  {:6.1} M prefixes/s",
            secs * 1e3,
            secs * 1e9 / updates,
            prefixes / secs / 1e6
        );
    }
    println!(
        "ratio decode/walk: {:.2} (Update::decode_into), {:.2} (Message::decode_body)",
        best[0] / best[2],
        best[1] / best[2]
    );
}
