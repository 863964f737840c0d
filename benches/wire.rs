//! Codec benchmarks on a realistic full table (1,000,000 IPv4 + 200,000 IPv6 prefixes, about
//! 360,000 attribute sets): full validating decode, the framing-only walk it is compared with,
//! and packed encoding. `BGP_BENCH_SCALE=N` divides the table size by N (for smoke runs).

#![allow(missing_docs)]

use std::hint::black_box;

use bgp_testkit::wire::{attributes, decode_all, decode_all_messages, encode_table, framing_walk};
use bgp_testkit::{Table, TableSpec};
use bgp_wire::{AfiSafi, Context, NextHop, Nlri, pack_announce};
use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn scale() -> usize {
    std::env::var("BGP_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn encode_all(table: &Table, ctx: &Context, out: &mut BytesMut) -> usize {
    out.clear();
    let nh6 = NextHop::Ipv6(bgp_testkit::wire::NEXT_HOP_V6);
    let mut n = 0;
    for (family, groups, nh) in [
        (AfiSafi::IPV4_UNICAST, &table.ipv4, None),
        (AfiSafi::IPV6_UNICAST, &table.ipv6, Some(&nh6)),
    ] {
        for g in groups {
            let mut attrs = attributes(&g.attrs);
            if nh.is_none() {
                attrs.next_hop = Some(bgp_testkit::wire::NEXT_HOP_V4);
            }
            n += pack_announce(
                ctx,
                &attrs,
                family,
                nh,
                g.prefixes.iter().map(|&p| Nlri::new(p)),
                out,
            )
            .expect("encodes");
        }
    }
    n
}

fn benches(c: &mut Criterion) {
    let ctx = Context::default();
    let table = Table::generate(TableSpec::full().scaled_down(scale()));
    let encoded = encode_table(&table, &ctx);
    let stream = encoded.stream.clone().freeze();
    let prefixes = encoded.prefixes as u64;
    let messages = encoded.updates as u64 + 2;
    eprintln!(
        "table: {} prefixes, {} attribute sets, {} UPDATEs, {} bytes ({:.2} prefixes per UPDATE)",
        prefixes,
        table.ipv4.len() + table.ipv6.len(),
        encoded.updates,
        stream.len(),
        prefixes as f64 / encoded.updates as f64
    );
    assert_eq!(framing_walk(&stream), encoded.prefixes);
    assert_eq!(
        decode_all(&stream, &ctx),
        decode_all_messages(&stream, &ctx)
    );

    let mut g = c.benchmark_group("wire");
    g.sample_size(20);
    g.throughput(Throughput::Elements(prefixes));
    g.bench_function("decode_full_table", |b| {
        b.iter(|| black_box(decode_all(&stream, &ctx)))
    });
    g.bench_function("decode_full_table_message", |b| {
        b.iter(|| black_box(decode_all_messages(&stream, &ctx)))
    });
    g.bench_function("framing_walk_full_table", |b| {
        b.iter(|| black_box(framing_walk(black_box(&stream))))
    });
    let mut out = BytesMut::with_capacity(stream.len());
    g.bench_function("encode_full_table", |b| {
        b.iter(|| black_box(encode_all(&table, &ctx, &mut out)))
    });
    g.finish();
    let mut g = c.benchmark_group("wire_bytes");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("decode_full_table", |b| {
        b.iter(|| black_box(decode_all(&stream, &ctx)))
    });
    g.finish();
    eprintln!("messages in the table: {messages}");
}

criterion_group!(wire, benches);
criterion_main!(wire);
