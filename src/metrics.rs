//! Peer counters in the Prometheus text format (version 0.0.4).
//!
//! | metric | labels | meaning | MetalLB | GoBGP exporter |
//! | --- | --- | --- | --- | --- |
//! | `bgp_session_up` | peer | 1 when Established | `metallb_bgp_session_up` | `gobgp_peer_up` |
//! | `bgp_session_state` | peer | Idle 1 … Established 6 | — | `gobgp_peer_session_state` |
//! | `bgp_session_flaps_total` | peer | times the session left Established | — | `gobgp_peer_flop_count` |
//! | `bgp_messages_received_total` | peer, type | messages received by type | `metallb_bgp_*_received` | — |
//! | `bgp_messages_sent_total` | peer, type | messages sent by type (`type="update"`: `metallb_bgp_updates_total`) | `metallb_bgp_*_sent` | — |
//! | `bgp_prefixes_received` | peer, family | prefixes the peer sent that we hold | `metallb_bgp_received_prefixes_total` | `gobgp_peer_received_route_count` |
//! | `bgp_prefixes_accepted` | peer, family | of those, accepted by the import policy | — | `gobgp_peer_accepted_route_count` |
//! | `bgp_prefixes_advertised` | peer, family | prefixes advertised to the peer | `metallb_bgp_announced_prefixes_total` | `gobgp_peer_advertised_route_count` |
//! | `bgp_prefixes_stale` | peer, family | received prefixes kept stale by graceful restart | — | — |
//! | `bgp_graceful_restart` | peer | 0 none, 1 peer restarting, 2 we are restarting | — | — |
//!
//! The `peer` label is `address:port` (peers are identified by address, never by AS).

use std::fmt::Write;

use crate::snapshot::{GrState, PeerSnapshot};

/// Renders the counters of `peers`.
pub fn render(peers: &[PeerSnapshot]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        "bgp_session_up",
        "gauge",
        "1 when the session is Established.",
    );
    family(
        "bgp_session_state",
        "gauge",
        "Session state: Idle 1, Connect 2, Active 3, OpenSent 4, OpenConfirm 5, Established 6.",
    );
    family(
        "bgp_session_flaps_total",
        "counter",
        "Times the session left Established.",
    );
    family(
        "bgp_messages_received_total",
        "counter",
        "Messages received, by type.",
    );
    family(
        "bgp_messages_sent_total",
        "counter",
        "Messages sent, by type.",
    );
    family(
        "bgp_prefixes_received",
        "gauge",
        "Prefixes received from the peer and held.",
    );
    family(
        "bgp_prefixes_accepted",
        "gauge",
        "Received prefixes accepted by the import policy.",
    );
    family(
        "bgp_prefixes_advertised",
        "gauge",
        "Prefixes advertised to the peer.",
    );
    family(
        "bgp_prefixes_stale",
        "gauge",
        "Received prefixes kept stale by graceful restart.",
    );
    family(
        "bgp_graceful_restart",
        "gauge",
        "Graceful restart: 0 none, 1 peer restarting, 2 we are restarting.",
    );
    for p in peers {
        let peer = match p.address {
            std::net::IpAddr::V4(a) => format!("{a}:{}", p.port),
            std::net::IpAddr::V6(a) => format!("[{a}]:{}", p.port),
        };
        let up = u8::from(p.state == crate::snapshot::SessionState::Established);
        let _ = writeln!(out, "bgp_session_up{{peer=\"{peer}\"}} {up}");
        let _ = writeln!(
            out,
            "bgp_session_state{{peer=\"{peer}\"}} {}",
            p.state.number()
        );
        let _ = writeln!(
            out,
            "bgp_session_flaps_total{{peer=\"{peer}\"}} {}",
            p.flaps
        );
        for (dir, c) in [("received", &p.received), ("sent", &p.sent)] {
            for (ty, n) in [
                ("open", c.open),
                ("update", c.update),
                ("notification", c.notification),
                ("keepalive", c.keepalive),
                ("route_refresh", c.route_refresh),
            ] {
                let _ = writeln!(
                    out,
                    "bgp_messages_{dir}_total{{peer=\"{peer}\",type=\"{ty}\"}} {n}"
                );
            }
        }
        for f in &p.families {
            let fam = f.family.to_string();
            for (name, n) in [
                ("received", f.received),
                ("accepted", f.accepted),
                ("advertised", f.advertised),
                ("stale", f.stale),
            ] {
                let _ = writeln!(
                    out,
                    "bgp_prefixes_{name}{{peer=\"{peer}\",family=\"{fam}\"}} {n}"
                );
            }
        }
        let gr = match p.graceful_restart {
            GrState::None => 0,
            GrState::PeerRestarting => 1,
            GrState::LocalRestarting => 2,
        };
        let _ = writeln!(out, "bgp_graceful_restart{{peer=\"{peer}\"}} {gr}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{FamilyCounts, MessageCounts, SessionState};
    use bgp_wire::AfiSafi;

    #[test]
    fn renders_every_family_of_metrics_with_peer_labels() {
        let p = PeerSnapshot {
            address: "2001:db8::2".parse().unwrap(),
            port: 179,
            peer_asn: 65002,
            enabled: true,
            state: SessionState::Established,
            since: std::time::UNIX_EPOCH,
            hold_time: Some(90),
            keepalive: Some(30),
            capabilities: vec!["graceful-restart".into()],
            families: vec![FamilyCounts {
                family: AfiSafi::IPV6_UNICAST,
                received: 3,
                accepted: 2,
                advertised: 5,
                stale: 0,
            }],
            received: MessageCounts {
                update: 7,
                ..MessageCounts::default()
            },
            sent: MessageCounts::default(),
            flaps: 1,
            last_error: None,
            graceful_restart: GrState::PeerRestarting,
        };
        let text = render(&[p]);
        assert!(
            text.contains("bgp_session_up{peer=\"[2001:db8::2]:179\"} 1\n"),
            "{text}"
        );
        assert!(text.contains(
            "bgp_messages_received_total{peer=\"[2001:db8::2]:179\",type=\"update\"} 7\n"
        ));
        assert!(text.contains(
            "bgp_prefixes_advertised{peer=\"[2001:db8::2]:179\",family=\"ipv6-unicast\"} 5\n"
        ));
        assert!(text.contains("bgp_graceful_restart{peer=\"[2001:db8::2]:179\"} 1\n"));
        // Every sample line belongs to a declared metric family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
