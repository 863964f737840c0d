//! Quick decode-speed check: builds a realistic set of IPv4 UPDATEs (about 3.3 prefixes each,
//! 4-6 AS path, a few communities) and times full validating decodes plus prefix iteration.
//!
//! `cargo run --release -p bgp-wire --example decode_speed`
#![allow(clippy::disallowed_methods, missing_docs)]

use std::net::Ipv4Addr;
use std::time::Instant;

use bgp_wire::{
    AfiSafi, AsPath, Asn, Communities, Community, Context, Message, Nlri, Origin, PathAttributes,
    pack_announce,
};
use bytes::{Bytes, BytesMut};
use ipnet::{IpNet, Ipv4Net};

fn main() {
    sizes();
    pack_speed(&Context::default());
    let ctx = Context::default();
    let mut msgs: Vec<Bytes> = Vec::new();
    let mut seed: u64 = 0x1234_5678;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut prefixes = 0usize;
    let count: u32 = std::env::var("MSGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    for i in 0..count {
        let path_len = 4 + (rnd() % 3) as usize;
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(
                (0..path_len).map(|_| Asn((rnd() % 400_000) as u32)),
            )),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            med: (i % 3 == 0).then_some(10),
            communities: (i % 2 == 0)
                .then(|| Communities::new((0..(1 + rnd() % 4)).map(|_| Community(rnd() as u32)))),
            ..PathAttributes::default()
        };
        // 1..=6 prefixes, mean ~3.3.
        let n = [1, 1, 2, 3, 3, 4, 5, 6, 5, 3][(rnd() % 10) as usize];
        let nlri: Vec<Nlri> = (0..n)
            .map(|_| {
                let len = 16 + (rnd() % 9) as u8;
                Nlri::new(IpNet::V4(
                    Ipv4Net::new(Ipv4Addr::from(rnd() as u32), len).unwrap_or_default(),
                ))
            })
            .collect();
        prefixes += nlri.len();
        let mut out = BytesMut::new();
        pack_announce(&ctx, &attrs, AfiSafi::IPV4_UNICAST, None, nlri, &mut out)
            .unwrap_or_default();
        msgs.push(out.freeze());
    }
    let rounds = if std::env::var_os("ONLY_UPDATE").is_some() {
        0
    } else {
        std::env::var("ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20)
    };
    let rounds2 = std::env::var("ROUNDS2")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut sink = 0u64;
    let mut best_full = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for m in &msgs {
            // Matched by reference: moving the UPDATE out of the message would copy it.
            if let Ok(Message::Update(u)) = &Message::decode(m.clone(), &ctx) {
                for (_, n) in u.announced() {
                    sink = sink.wrapping_add(u64::from(n.prefix.prefix_len()));
                }
                sink += u
                    .attributes
                    .as_path
                    .as_ref()
                    .map_or(0, |p| p.len_for_best_path() as u64);
            }
        }
        best_full = best_full.min(t.elapsed().as_nanos() as f64 / msgs.len() as f64);
    }
    let mut best_msg = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for m in &msgs {
            if let Ok(Message::Update(u)) = &Message::decode(m.clone(), &ctx) {
                sink = sink.wrapping_add(u.nlri.count() as u64);
            }
        }
        best_msg = best_msg.min(t.elapsed().as_nanos() as f64 / msgs.len() as f64);
    }
    if rounds > 0 {
        println!(
            "Message::decode without iterating prefixes, best of {rounds}: {best_msg:.1} ns/UPDATE"
        );
    }
    // The floor: walking the same bytes with the same checks, building nothing.
    let mut best_walk = f64::MAX;
    let walk_rounds = if std::env::var_os("SKIP_WALK").is_some() {
        0
    } else {
        rounds2
    };
    for _ in 0..walk_rounds {
        let t = Instant::now();
        for m in &msgs {
            sink = sink.wrapping_add(walk(m) as u64);
        }
        best_walk = best_walk.min(t.elapsed().as_nanos() as f64 / msgs.len() as f64);
    }
    println!("validate-only walk (the floor), best of {rounds2}: {best_walk:.1} ns/UPDATE");
    // Minimum over repetitions: the machine is shared.
    let mut best = f64::MAX;
    let decode_rounds = if std::env::var_os("SKIP_DECODE").is_some() {
        0
    } else {
        rounds2
    };
    for _ in 0..decode_rounds {
        let t2 = Instant::now();
        for m in &msgs {
            if let Ok(u) = &bgp_wire::Update::decode(m.slice(19..), 19, &ctx) {
                sink = sink.wrapping_add(u.nlri.count() as u64);
            }
        }
        best = best.min(t2.elapsed().as_nanos() as f64 / msgs.len() as f64);
    }
    // Into one reused value: no moves of the large struct at all.
    let mut best_into = f64::MAX;
    let mut u = bgp_wire::Update::default();
    let into_rounds = if std::env::var_os("SKIP_INTO").is_some() {
        0
    } else {
        rounds2
    };
    for _ in 0..into_rounds {
        let t2 = Instant::now();
        for m in &msgs {
            if u.decode_into(m.slice(19..), 19, &ctx).is_ok() {
                sink = sink.wrapping_add(u.nlri.count() as u64);
            }
        }
        best_into = best_into.min(t2.elapsed().as_nanos() as f64 / msgs.len() as f64);
    }
    println!("Update::decode_into a reused value, best of {rounds2}: {best_into:.1} ns/UPDATE");
    println!("Update::decode alone (no prefix iteration), best of {rounds2}: {best:.1} ns/UPDATE");
    println!(
        "Message::decode + iterate prefixes, best of {rounds}: {best_full:.1} ns/UPDATE, {:.1} M prefixes/s (sink {sink})",
        prefixes as f64 / msgs.len() as f64 * 1e3 / best_full
    );
}

/// Packing speed: a large batch of prefixes sharing one attribute set.
fn pack_speed(ctx: &Context) {
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence([Asn(65001), Asn(65002)])),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..PathAttributes::default()
    };
    let nlri: Vec<Nlri> = (0..100_000u32)
        .map(|i| {
            Nlri::new(IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(i << 8), 24).unwrap_or_default(),
            ))
        })
        .collect();
    let mut out = BytesMut::with_capacity(600_000);
    let mut best = f64::MAX;
    let mut msgs = 0;
    for _ in 0..20 {
        out.clear();
        let t = Instant::now();
        msgs = pack_announce(
            ctx,
            &attrs,
            AfiSafi::IPV4_UNICAST,
            None,
            nlri.iter().copied(),
            &mut out,
        )
        .unwrap_or_default();
        best = best.min(t.elapsed().as_nanos() as f64 / nlri.len() as f64);
    }
    println!(
        "pack_announce: {best:.1} ns/prefix ({msgs} messages for {} prefixes)",
        nlri.len()
    );
}

fn sizes() {
    println!(
        "sizes: Update {} PathAttributes {} Nlris {} MpReach {} Message {}",
        std::mem::size_of::<bgp_wire::Update>(),
        std::mem::size_of::<PathAttributes>(),
        std::mem::size_of::<bgp_wire::Nlris>(),
        std::mem::size_of::<bgp_wire::MpReach>(),
        std::mem::size_of::<Message>(),
    );
}

/// Checks what a decode checks, builds nothing: the cost floor of parsing.
fn walk(m: &[u8]) -> usize {
    let Some(b) = m.get(19..) else { return 0 };
    let len = |i: usize| {
        b.get(i..i + 2)
            .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
    };
    let Some(wd) = len(0) else { return 0 };
    let Some(al) = len(2 + wd) else { return 0 };
    let (a0, a1) = (4 + wd, 4 + wd + al);
    let mut n = 0;
    let mut i = a0;
    while i + 3 <= a1 {
        let (fl, code) = (b[i], b[i + 1]);
        let (l, h) = if fl & 0x10 != 0 {
            (len(i + 2).unwrap_or(0), 4)
        } else {
            (usize::from(b[i + 2]), 3)
        };
        n += usize::from(code);
        i += h + l;
    }
    let mut j = a1;
    while let Some(&pl) = b.get(j) {
        if pl > 32 {
            return 0;
        }
        j += 1 + usize::from(pl).div_ceil(8);
        n += 1;
    }
    n
}
