//! Codec benchmarks on a realistic full table (1,000,000 IPv4 + 200,000 IPv6 prefixes, about
//! 360,000 attribute sets): full validating decode, the framing-only walk it is compared with,
//! and packed encoding. `BGP_BENCH_SCALE=N` divides the table size by N (for smoke runs).

#![allow(missing_docs)]

use std::hint::black_box;

use bgp_testkit::wire::{attributes, encode_table};
use bgp_testkit::{Table, TableSpec};
use bgp_wire::context::HEADER_LEN;
use bgp_wire::{
    AfiSafi, Context, Message, MessageType, NextHop, Nlri, Update, check_header, pack_announce,
};
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn scale() -> usize {
    std::env::var("BGP_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// Full decode of every message, visiting every prefix and every attribute value: the receive
/// loop of a session, which decodes every UPDATE into one reused [`Update`].
fn decode_all(stream: &Bytes, ctx: &Context) -> u64 {
    let mut u = Update::new();
    let mut sum = 0u64;
    let mut pos = 0;
    while pos < stream.len() {
        let h = match check_header(&stream[pos..], ctx.max_message_len) {
            Ok(Some(h)) => h,
            _ => panic!("bad stream at {pos}"),
        };
        assert_eq!(h.kind, MessageType::Update, "not an update");
        let body = stream.slice(pos + HEADER_LEN..pos + h.len);
        pos += h.len;
        u.decode_into(&body, HEADER_LEN, ctx).expect("decodes");
        sum += visit(&u);
    }
    sum
}

/// The same through [`Message::decode_body`], a new `Message` per message.
fn decode_all_messages(stream: &Bytes, ctx: &Context) -> u64 {
    let mut sum = 0u64;
    let mut pos = 0;
    while pos < stream.len() {
        let h = match check_header(&stream[pos..], ctx.max_message_len) {
            Ok(Some(h)) => h,
            _ => panic!("bad stream at {pos}"),
        };
        let body = stream.slice(pos + HEADER_LEN..pos + h.len);
        pos += h.len;
        let Ok(Message::Update(u)) = Message::decode_body(h, body, ctx) else {
            panic!("not an update");
        };
        sum += visit(&u);
    }
    sum
}

/// Visits every prefix and every attribute value of a decoded UPDATE.
#[inline(always)]
fn visit(u: &Update) -> u64 {
    let mut sum = 0u64;
    for (_, n) in u.announced().chain(u.withdrawn_all()) {
        sum += u64::from(n.prefix.prefix_len());
    }
    let a = &u.attributes;
    if let Some(p) = &a.as_path {
        sum += p.asns().map(|x| u64::from(x.0)).sum::<u64>();
    }
    if let Some(c) = &a.communities {
        sum += c.iter().map(|x| u64::from(x.0)).sum::<u64>();
    }
    if let Some(c) = &a.large_communities {
        sum += c.iter().count() as u64;
    }
    sum += u64::from(a.med.unwrap_or(0)) + u64::from(a.origin.map_or(0, |o| o.code()));
    sum += a.next_hop.map_or(0, |n| u64::from(n.to_bits()));
    if let Some(r) = &u.mp_reach {
        sum += match r.next_hop {
            NextHop::Ipv6(a) => a.segments()[7].into(),
            _ => 0,
        };
    }
    sum
}

/// The framing-only baseline: reads each header, skips the withdrawn routes and attribute
/// headers (looking inside MP_REACH_NLRI only to find its NLRI), and reads every prefix length.
/// Returns the number of prefixes. This is the floor any full decode is compared with.
fn framing_walk(stream: &[u8]) -> usize {
    let mut prefixes = 0;
    let mut pos = 0;
    while pos + 19 <= stream.len() {
        let len = usize::from(u16::from_be_bytes([stream[pos + 16], stream[pos + 17]]));
        let msg = &stream[pos..pos + len];
        pos += len;
        if msg[18] != 2 {
            continue;
        }
        let body = &msg[19..];
        let wlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
        prefixes += count_prefixes(&body[2..2 + wlen]);
        let alen = usize::from(u16::from_be_bytes([body[2 + wlen], body[3 + wlen]]));
        let attrs = &body[4 + wlen..4 + wlen + alen];
        let mut a = 0;
        while a < attrs.len() {
            let flags = attrs[a];
            let code = attrs[a + 1];
            let (vlen, hdr) = if flags & 0x10 != 0 {
                (
                    usize::from(u16::from_be_bytes([attrs[a + 2], attrs[a + 3]])),
                    4,
                )
            } else {
                (usize::from(attrs[a + 2]), 3)
            };
            let v = &attrs[a + hdr..a + hdr + vlen];
            if code == 14 {
                let nhl = usize::from(v[3]);
                prefixes += count_prefixes(&v[5 + nhl..]);
            } else if code == 15 {
                prefixes += count_prefixes(&v[3..]);
            }
            a += hdr + vlen;
        }
        prefixes += count_prefixes(&body[4 + wlen + alen..]);
    }
    prefixes
}

fn count_prefixes(mut nlri: &[u8]) -> usize {
    let mut n = 0;
    while let Some((&bits, rest)) = nlri.split_first() {
        let bytes = usize::from(bits).div_ceil(8);
        nlri = &rest[bytes..];
        n += 1;
    }
    n
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
