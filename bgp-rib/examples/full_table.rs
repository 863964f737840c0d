//! Full-table load: memory per prefix and time, for one peer's 1,000,000 IPv4 + 200,000 IPv6
//! prefixes with about 360,000 attribute sets (about 3.3 prefixes per UPDATE).
//!
//! `cargo run --release -p bgp-rib --example full_table`
#![allow(clippy::disallowed_methods, missing_docs, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use bgp_rib::{AttrStore, PeerConfig, Rib, RibConfig, RouteAttributes};
use bgp_wire::{
    AfiSafi, AsPath, Asn, Communities, Community, MpReach, NextHop, Nlri, Nlris, Origin,
    PathAttributes, Update,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Resident memory in bytes (Linux), the workspace forbids `unsafe`, so no counting
/// allocator: growth of RSS during each phase is what is reported.
fn live() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// CPU time of this process in seconds (user + system, from /proc/self/stat): unlike wall
/// time it does not count the time other processes on a shared machine had the CPU.
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let sets = 360_000usize;
    let attrs: Vec<PathAttributes> = (0..sets)
        .map(|i| PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(
                std::iter::once(Asn(65001))
                    .chain((0..3 + rnd() % 4).map(|_| Asn((rnd() % 400_000) as u32))),
            )),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            med: (i % 3 == 0).then_some(10),
            communities: (i % 2 == 0)
                .then(|| Communities::new((0..1 + rnd() % 4).map(|_| Community(rnd() as u32)))),
            ..PathAttributes::default()
        })
        .collect();
    // Distinct prefixes.
    let mut v4: Vec<IpNet> = Vec::with_capacity(1_000_000);
    let mut seen = std::collections::HashSet::new();
    while v4.len() < 1_000_000 {
        let len = 16 + (rnd() % 9) as u8;
        let n = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(rnd() as u32), len).unwrap()).trunc();
        if seen.insert(n) {
            v4.push(n);
        }
    }
    let mut v6: Vec<IpNet> = Vec::with_capacity(200_000);
    while v6.len() < 200_000 {
        let len = 32 + (rnd() % 17) as u8;
        let a =
            (u128::from(rnd()) << 64 | 0x2000 << 112) & !(0xe000u128 << 112) | (0x2000u128 << 112);
        let n = IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len).unwrap()).trunc();
        if seen.insert(n) {
            v6.push(n);
        }
    }
    drop(seen);
    // UPDATEs: about 3.3 prefixes each, attribute sets round-robin.
    let mut updates = Vec::new();
    let mut set = 0usize;
    let mut i = 0;
    while i < v4.len() {
        let n = [1, 1, 2, 3, 3, 4, 5, 6, 5, 3][(rnd() % 10) as usize].min(v4.len() - i);
        let nlri = Nlris::new(
            AfiSafi::IPV4_UNICAST,
            false,
            v4[i..i + n].iter().map(|p| Nlri::new(*p)),
        )
        .unwrap();
        updates.push(Update {
            attributes: attrs[set % sets].clone(),
            nlri,
            ..Update::default()
        });
        set += 1;
        i += n;
    }
    let mut i = 0;
    while i < v6.len() {
        let n = [1, 1, 2, 3, 3, 4, 5, 6, 5, 3][(rnd() % 10) as usize].min(v6.len() - i);
        let nlri = Nlris::new(
            AfiSafi::IPV6_UNICAST,
            false,
            v6[i..i + n].iter().map(|p| Nlri::new(*p)),
        )
        .unwrap();
        updates.push(Update {
            attributes: PathAttributes {
                next_hop: None,
                ..attrs[set % sets].clone()
            },
            mp_reach: Some(MpReach {
                family: AfiSafi::IPV6_UNICAST,
                next_hop: NextHop::Ipv6("2001:db8::1".parse().unwrap()),
                nlri,
            }),
            ..Update::default()
        });
        set += 1;
        i += n;
    }
    let prefixes = v4.len() + v6.len();

    // What the interned attribute sets alone cost.
    let before = live();
    let mut store = AttrStore::new();
    let interned: Vec<_> = attrs
        .iter()
        .map(|a| store.intern(RouteAttributes::new(a.clone())))
        .collect();
    let attr_bytes = live() - before;
    // Kept alive (not freed) so that the RIB below cannot reuse its pages.
    std::hint::black_box((&interned, &store));

    let mut rib = Rib::new(RibConfig {
        local_asn: Asn(65000),
        router_id: Ipv4Addr::new(1, 1, 1, 1),
        cluster_id: None,
    });
    let peer = rib
        .add_peer(PeerConfig::new(
            Asn(65001),
            Ipv4Addr::new(2, 2, 2, 2),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        ))
        .unwrap();
    let before = live();
    let c0 = cpu();
    let t = Instant::now();
    for u in &updates {
        let _ = rib.apply_update(peer, u);
    }
    let load = t.elapsed();
    let load_cpu = cpu() - c0;
    let total = live() - before;
    println!(
        "load {} prefixes in {} UPDATEs: {:.2} s wall, {:.2} s CPU ({:.0} ns/prefix wall); {} attribute sets",
        prefixes,
        updates.len(),
        load.as_secs_f64(),
        load_cpu,
        load.as_nanos() as f64 / prefixes as f64,
        rib.attribute_sets()
    );
    println!(
        "memory: {:.1} MB total, interned attributes ~{:.1} MB, Adj-RIB-In + Loc-RIB {:.1} bytes/prefix",
        total as f64 / 1e6,
        attr_bytes as f64 / 1e6,
        (total.saturating_sub(attr_bytes)) as f64 / prefixes as f64
    );
    if std::env::var_os("LOAD_ONLY").is_some() {
        return;
    }
    // Route-server scale: more peers sending the same prefixes with their own AS paths.
    let extra: u32 = std::env::var("EXTRA_PEERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if extra > 0 {
        let before = live();
        let sets_before = rib.attribute_sets();
        let c0 = cpu();
        for k in 0..extra {
            let id = rib
                .add_peer(PeerConfig::new(
                    Asn(65100 + k),
                    Ipv4Addr::new(4, 4, 4, k as u8),
                    IpAddr::V4(Ipv4Addr::new(10, 0, 1, k as u8)),
                ))
                .unwrap();
            for u in &updates {
                let mut u = u.clone();
                if let Some(p) = &u.attributes.as_path {
                    u.attributes.as_path = Some(p.prepend(Asn(65100 + k), 1));
                }
                let _ = rib.apply_update(id, &u);
            }
        }
        let grown = live() - before;
        let new_sets = rib.attribute_sets() - sets_before;
        println!(
            "{extra} more peers with the same table: {:.2} s CPU, {:.1} MB, {} new attribute sets; {:.1} bytes per extra path beyond their attributes (~{:.0} bytes per set)",
            cpu() - c0,
            grown as f64 / 1e6,
            new_sets,
            (grown as f64 - new_sets as f64 * attr_bytes as f64 / sets as f64)
                / (prefixes as f64 * f64::from(extra)),
            attr_bytes as f64 / sets as f64,
        );
        return;
    }
    // A second (eBGP) peer comes up: the whole table goes into its Adj-RIB-Out and is
    // drained as packed UPDATEs.
    let mut cfg = PeerConfig::new(
        Asn(65002),
        Ipv4Addr::new(3, 3, 3, 3),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
    );
    cfg.local_v4 = Some(Ipv4Addr::new(10, 0, 0, 254));
    cfg.local_v6 = Some("2001:db8::254".parse().unwrap());
    let out_peer = rib.add_peer(cfg).unwrap();
    let before = live();
    let c0 = cpu();
    let t = Instant::now();
    rib.peer_up(
        out_peer,
        bgp_wire::Context::default(),
        [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
            .into_iter()
            .collect(),
    );
    let fill = (t.elapsed(), cpu() - c0);
    let out_bytes = live() - before;
    let c0 = cpu();
    let t = Instant::now();
    let mut buf = bytes::BytesMut::new();
    let d = rib.drain(out_peer, &mut buf);
    println!(
        "Adj-RIB-Out fill: {:.2} s wall, {:.2} s CPU, {:.1} bytes/prefix; drain: {:.2} s wall, {:.2} s CPU, {} UPDATEs, {:.1} MB, {} prefixes ({:.2} per UPDATE)",
        fill.0.as_secs_f64(),
        fill.1,
        out_bytes as f64 / prefixes as f64,
        t.elapsed().as_secs_f64(),
        cpu() - c0,
        d.messages,
        buf.len() as f64 / 1e6,
        d.announced,
        d.announced as f64 / d.messages as f64
    );
    drop(buf);
    let c0 = cpu();
    let t = Instant::now();
    let ch = rib.peer_down(peer, true);
    let n = ch.adj_in.len();
    drop(ch);
    println!(
        "mark stale: {:.3} s wall, {:.2} s CPU ({n} routes)",
        t.elapsed().as_secs_f64(),
        cpu() - c0
    );
    let c0 = cpu();
    let t = Instant::now();
    let mut purged = 0;
    let mut kept = Vec::new();
    for f in [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST] {
        let ch = rib.purge_stale(peer, f);
        purged += ch.adj_in.len();
        kept.push(ch);
    }
    let call = t.elapsed();
    drop(kept);
    println!(
        "purge: {:.3} s wall, {:.2} s CPU ({purged} routes; {:.3} s of it dropping the change sets)",
        t.elapsed().as_secs_f64(),
        cpu() - c0,
        (t.elapsed() - call).as_secs_f64()
    );
    rib.sweep();
    println!(
        "after purge: {} attribute sets, {} prefixes",
        rib.attribute_sets(),
        rib.loc_rib().total()
    );
}
