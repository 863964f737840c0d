//! RIB benchmarks on the realistic full table of `bgp-testkit` (1,000,000 IPv4 + 200,000 IPv6
//! prefixes, about 360,000 attribute sets): loading one peer's table into Adj-RIB-In and
//! Loc-RIB, marking it stale, purging it, and filling and draining an Adj-RIB-Out. Before
//! the timed runs it prints the memory per prefix (growth of resident memory, so run it on
//! its own). `BGP_BENCH_SCALE=N` divides the table size by N.

#![allow(missing_docs)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgp_rib::{AttrStore, PeerConfig, Rib, RibConfig, RouteAttributes, SourceId};
use bgp_testkit::wire::{attributes, encode_table};
use bgp_testkit::{Table, TableSpec};
use bgp_wire::{AfiSafi, AfiSafiSet, Asn, Context, Message, Update, context, split_message};
use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};

fn scale() -> usize {
    std::env::var("BGP_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn rss() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            l.split_whitespace().nth(1)?.parse::<usize>().ok()
        })
        .unwrap_or(0)
        * 1024
}

fn decode_all(table: &Table) -> Vec<Update> {
    let ctx = Context::default();
    let mut buf = encode_table(table, &ctx).stream;
    let mut out = Vec::new();
    while let Ok(Some((h, msg))) = split_message(&mut buf, ctx.max_message_len) {
        if let Ok(Message::Update(u)) =
            Message::decode_body(h, msg.slice(context::HEADER_LEN..), &ctx)
        {
            out.push(u);
        }
    }
    out
}

fn rib() -> Rib {
    Rib::new(RibConfig {
        local_asn: Asn(65000),
        router_id: Ipv4Addr::new(192, 0, 2, 254),
        cluster_id: None,
    })
}

fn add_peer(rib: &mut Rib, k: u8) -> SourceId {
    rib.add_peer(PeerConfig::new(
        Asn(64_512),
        Ipv4Addr::new(192, 0, 2, k),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, k)),
    ))
    .expect("room for a peer")
}

fn load(updates: &[Update]) -> (Rib, SourceId) {
    let mut r = rib();
    let p = add_peer(&mut r, 1);
    for u in updates {
        let _ = r.apply_update(p, u);
    }
    (r, p)
}

fn memory_report(table: &Table, updates: &[Update]) {
    let prefixes = table.len();
    // The interned attribute sets alone.
    let before = rss();
    let mut store = AttrStore::new();
    let kept: Vec<_> = table
        .ipv4
        .iter()
        .chain(&table.ipv6)
        .map(|g| store.intern(RouteAttributes::new(attributes(&g.attrs))))
        .collect();
    let attr_bytes = rss().saturating_sub(before);
    std::hint::black_box((&kept, &store));
    let before = rss();
    let (r, _) = load(updates);
    let total = rss().saturating_sub(before);
    eprintln!(
        "memory: {prefixes} prefixes, {} attribute sets: {:.1} MB in all, of which attribute sets ~{:.1} MB; \
         Adj-RIB-In + Loc-RIB {:.1} bytes per prefix",
        r.attribute_sets(),
        total as f64 / 1e6,
        attr_bytes as f64 / 1e6,
        total.saturating_sub(attr_bytes) as f64 / prefixes as f64
    );
}

fn benches(c: &mut Criterion) {
    let table = Table::generate(TableSpec::full().scaled_down(scale()));
    let updates = decode_all(&table);
    eprintln!(
        "table: {} prefixes in {} UPDATEs",
        table.len(),
        updates.len()
    );
    memory_report(&table, &updates);

    let mut g = c.benchmark_group("rib");
    g.sample_size(10);
    g.bench_function("load_full_table", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let loaded = load(&updates);
                spent += t.elapsed();
                drop(loaded);
            }
            spent
        })
    });
    let families = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];
    g.bench_function("mark_stale_full_table", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let (mut r, p) = load(&updates);
                let t = Instant::now();
                for f in families {
                    let _ = r.mark_stale(p, f);
                }
                spent += t.elapsed();
            }
            spent
        })
    });
    g.bench_function("purge_stale_full_table", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let (mut r, p) = load(&updates);
                for f in families {
                    let _ = r.mark_stale(p, f);
                }
                let t = Instant::now();
                for f in families {
                    let _ = r.purge_stale(p, f);
                }
                spent += t.elapsed();
            }
            spent
        })
    });
    g.bench_function("adj_rib_out_fill_and_drain_full_table", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let (mut r, _) = load(&updates);
                let out_peer = add_peer(&mut r, 2);
                let mut out = BytesMut::new();
                let t = Instant::now();
                r.peer_up(
                    out_peer,
                    Context::default(),
                    families.into_iter().collect::<AfiSafiSet>(),
                );
                let _ = r.drain(out_peer, &mut out);
                spent += t.elapsed();
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(rib_benches, benches);
criterion_main!(rib_benches);
