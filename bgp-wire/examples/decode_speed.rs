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
    for i in 0..100_000u32 {
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
        20
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
            if let Ok(Message::Update(u)) = Message::decode(m.clone(), &ctx) {
                for (_, n) in u.announced() {
                    sink = sink.wrapping_add(u64::from(n.prefix.prefix_len()));
                }
                sink += u
                    .attributes
                    .as_path
                    .map_or(0, |p| p.len_for_best_path() as u64);
            }
        }
        best_full = best_full.min(t.elapsed().as_nanos() as f64 / msgs.len() as f64);
    }
    // Minimum over repetitions: the machine is shared.
    let mut best = f64::MAX;
    for _ in 0..rounds2 {
        let t2 = Instant::now();
        for m in &msgs {
            if let Ok(u) = bgp_wire::Update::decode(m.slice(19..), 19, &ctx) {
                sink = sink.wrapping_add(u.nlri.count() as u64);
            }
        }
        best = best.min(t2.elapsed().as_nanos() as f64 / msgs.len() as f64);
    }
    // The receive-loop form: every message decoded into one reused `Update`.
    let mut reused = bgp_wire::Update::new();
    let mut best_into = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for m in &msgs {
            let body = m.slice(19..);
            if reused.decode_into(&body, 19, &ctx).is_ok() {
                for (_, n) in reused.announced() {
                    sink = sink.wrapping_add(u64::from(n.prefix.prefix_len()));
                }
                sink += reused
                    .attributes
                    .as_path
                    .as_ref()
                    .map_or(0, |p| p.len_for_best_path() as u64);
            }
        }
        best_into = best_into.min(t.elapsed().as_nanos() as f64 / msgs.len() as f64);
    }
    println!("Update::decode alone (no prefix iteration), best of {rounds2}: {best:.1} ns/UPDATE");
    println!(
        "Update::decode_into (reused) + iterate prefixes, best of {rounds}: {best_into:.1} ns/UPDATE, {:.1} M prefixes/s",
        prefixes as f64 / msgs.len() as f64 * 1e3 / best_into
    );
    println!(
        "Message::decode + iterate prefixes, best of {rounds}: {best_full:.1} ns/UPDATE, {:.1} M prefixes/s (sink {sink})",
        prefixes as f64 / msgs.len() as f64 * 1e3 / best_full
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
