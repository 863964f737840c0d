//! What two OPENs negotiated (RFC 4271 §4.2, RFC 5492 and the capability RFCs), as one value
//! that also yields the wire [`Context`].

use std::net::Ipv4Addr;

use bgp_wire::capability::{
    AddPath, Capability, ExtendedNextHopEntry, Fqdn, GracefulRestart, LongLivedGracefulRestart,
    Role,
};
use bgp_wire::context::{MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN};
use bgp_wire::{AfiSafi, AfiSafiSet, Asn, Context, Open};

/// The outcome of capability negotiation for one session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Negotiated {
    /// Our AS.
    pub local_asn: Asn,
    /// The peer's AS (4-octet capability value, else the 2-octet field).
    pub peer_asn: Asn,
    /// Our BGP Identifier.
    pub local_bgp_id: Ipv4Addr,
    /// The peer's BGP Identifier.
    pub peer_bgp_id: Ipv4Addr,
    /// The hold time in seconds: the smaller of both proposals; 0 means no keepalives and no
    /// hold timer (RFC 4271 §4.2).
    pub hold_time: u16,
    /// The keepalive interval in seconds (0 with hold time 0).
    pub keepalive_time: u16,
    /// Families both sides advertised, among those this codec decodes. A side without any
    /// multiprotocol capability supports IPv4 unicast only (RFC 4760 §8).
    pub families: AfiSafiSet,
    /// Both sides sent the 4-octet AS capability (RFC 6793).
    pub four_octet_as: bool,
    /// Families on which we receive path identifiers: we can receive, the peer can send
    /// (RFC 7911 §4).
    pub add_path_receive: AfiSafiSet,
    /// Families on which we send path identifiers: we can send, the peer can receive.
    pub add_path_send: AfiSafiSet,
    /// Both sides sent the extended message capability (RFC 8654).
    pub extended_message: bool,
    /// Both sides sent the route refresh capability (RFC 2918).
    pub route_refresh: bool,
    /// Both sides sent the enhanced route refresh capability (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// Our graceful restart capability, as sent.
    pub local_gr: Option<GracefulRestart>,
    /// The peer's graceful restart capability, as received.
    pub peer_gr: Option<GracefulRestart>,
    /// Our long-lived graceful restart capability.
    pub local_llgr: Option<LongLivedGracefulRestart>,
    /// The peer's long-lived graceful restart capability.
    pub peer_llgr: Option<LongLivedGracefulRestart>,
    /// Our role (RFC 9234).
    pub local_role: Option<Role>,
    /// The peer's role (RFC 9234).
    pub peer_role: Option<Role>,
    /// The peer's hostname and domain, if sent.
    pub peer_fqdn: Option<Fqdn>,
    /// Extended next hop tuples both sides listed (RFC 8950 §3): NLRI of these families may
    /// carry next hops of the given address family.
    pub extended_next_hop: Vec<ExtendedNextHopEntry>,
}

impl Negotiated {
    /// Negotiates from our OPEN and the peer's. `keepalive_time` is the configured interval,
    /// `None` for a third of the hold time; it never exceeds that third.
    pub fn new(local: &Open, peer: &Open, keepalive_time: Option<u16>) -> Self {
        let hold_time = local.hold_time.min(peer.hold_time);
        let third = hold_time / 3;
        let keepalive_time = keepalive_time.map_or(third, |k| k.min(third));
        let families = families(local).intersection(families(peer));
        let (mut add_path_receive, mut add_path_send) = (AfiSafiSet::EMPTY, AfiSafiSet::EMPTY);
        if let (Some(ours), Some(theirs)) = (add_path(local), add_path(peer)) {
            for f in families.iter() {
                let (Some(o), Some(t)) = (ours.mode(f), theirs.mode(f)) else {
                    continue;
                };
                if o.can_receive() && t.can_send() {
                    add_path_receive.insert(f);
                }
                if o.can_send() && t.can_receive() {
                    add_path_send.insert(f);
                }
            }
        }
        let both = |code| local.has_capability(code) && peer.has_capability(code);
        use bgp_wire::capability::code;
        Negotiated {
            local_asn: local.asn(),
            peer_asn: peer.asn(),
            local_bgp_id: local.bgp_id,
            peer_bgp_id: peer.bgp_id,
            hold_time,
            keepalive_time,
            families,
            four_octet_as: local.four_octet_as().is_some() && peer.four_octet_as().is_some(),
            add_path_receive,
            add_path_send,
            extended_message: both(code::EXTENDED_MESSAGE),
            route_refresh: both(code::ROUTE_REFRESH),
            enhanced_route_refresh: both(code::ENHANCED_ROUTE_REFRESH),
            local_gr: graceful_restart(local).cloned(),
            peer_gr: graceful_restart(peer).cloned(),
            local_llgr: llgr(local).cloned(),
            peer_llgr: llgr(peer).cloned(),
            local_role: role(local),
            peer_role: role(peer),
            peer_fqdn: peer.capabilities.iter().find_map(|c| match c {
                Capability::Fqdn(f) => Some(f.clone()),
                _ => None,
            }),
            extended_next_hop: {
                let theirs = extended_next_hop(peer);
                extended_next_hop(local)
                    .filter(|e| theirs.clone().any(|t| t == *e))
                    .collect()
            },
        }
    }

    /// The wire context for decoding what the peer sends and encoding what we send.
    pub fn context(&self) -> Context {
        Context {
            four_octet_as: self.four_octet_as,
            add_path_receive: self.add_path_receive,
            add_path_send: self.add_path_send,
            max_message_len: if self.extended_message {
                MAX_EXTENDED_MESSAGE_LEN
            } else {
                MAX_MESSAGE_LEN
            },
        }
    }

    /// Whether this is an internal (iBGP) session.
    pub fn is_ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }

    /// Both sides advertised graceful restart (RFC 4724 §3).
    pub fn graceful_restart(&self) -> bool {
        self.local_gr.is_some() && self.peer_gr.is_some()
    }

    /// Both sides set the N bit (RFC 8538 §2).
    pub fn gr_notification(&self) -> bool {
        self.local_gr
            .as_ref()
            .is_some_and(GracefulRestart::notification)
            && self
                .peer_gr
                .as_ref()
                .is_some_and(GracefulRestart::notification)
    }

    /// Families for which the peer's routes are retained when it restarts: negotiated by both
    /// sides and listed in the peer's GR capability (RFC 4724 §4.2).
    pub fn peer_gr_families(&self) -> AfiSafiSet {
        let mut s = AfiSafiSet::EMPTY;
        if let (Some(_), Some(peer)) = (&self.local_gr, &self.peer_gr) {
            for f in &peer.families {
                if self.families.contains(f.afi_safi) {
                    s.insert(f.afi_safi);
                }
            }
        }
        s
    }

    /// Whether the peer said its forwarding state for `family` survived (the F bit).
    pub fn peer_forwarding_state(&self, family: AfiSafi) -> bool {
        self.peer_gr
            .as_ref()
            .and_then(|g| g.family(family))
            .is_some_and(|f| f.forwarding_state())
    }

    /// The peer's long-lived stale time for `family`, when both sides advertised LLGR for it
    /// and it was negotiated (RFC 9494 §4).
    pub fn llgr_stale_time(&self, family: AfiSafi) -> Option<u32> {
        if !self.families.contains(family) {
            return None;
        }
        self.local_llgr.as_ref()?.family(family)?;
        Some(self.peer_llgr.as_ref()?.family(family)?.stale_time)
    }

    /// Whether the peer's LLGR capability sets the F bit for `family`.
    pub fn peer_llgr_forwarding_state(&self, family: AfiSafi) -> bool {
        self.peer_llgr
            .as_ref()
            .and_then(|l| l.family(family))
            .is_some_and(|f| f.forwarding_state())
    }
}

/// The families an OPEN advertises (RFC 4760 §8: none listed means IPv4 unicast).
pub fn families(open: &Open) -> AfiSafiSet {
    let mut any = false;
    let mut s = AfiSafiSet::EMPTY;
    for c in &open.capabilities {
        if let Capability::Multiprotocol(f) = c {
            any = true;
            s.insert(*f);
        }
    }
    if !any {
        s.insert(AfiSafi::IPV4_UNICAST);
    }
    s
}

fn extended_next_hop(open: &Open) -> impl Iterator<Item = ExtendedNextHopEntry> + Clone + '_ {
    open.capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::ExtendedNextHop(e) => Some(e.entries.iter().copied()),
            _ => None,
        })
        .flatten()
}

fn add_path(open: &Open) -> Option<&AddPath> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::AddPath(a) => Some(a),
        _ => None,
    })
}

fn graceful_restart(open: &Open) -> Option<&GracefulRestart> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g),
        _ => None,
    })
}

fn llgr(open: &Open) -> Option<&LongLivedGracefulRestart> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::LongLivedGracefulRestart(l) => Some(l),
        _ => None,
    })
}

fn role(open: &Open) -> Option<Role> {
    open.capabilities.iter().find_map(|c| match c {
        Capability::Role(r) => Some(*r),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_wire::capability::{AddPathFamily, AddPathMode, GracefulRestartFamily, LlgrFamily};
    use bgp_wire::{Afi, Safi};

    fn open(asn: u32, hold: u16, caps: Vec<Capability>) -> Open {
        Open::new(Asn(asn), hold, Ipv4Addr::new(10, 0, 0, asn as u8), caps)
    }

    fn ap(f: AfiSafi, mode: AddPathMode) -> Capability {
        Capability::AddPath(AddPath {
            families: vec![AddPathFamily { afi_safi: f, mode }],
        })
    }

    #[test]
    fn hold_time_is_the_minimum_and_keepalive_a_third() {
        let n = Negotiated::new(&open(1, 90, vec![]), &open(2, 30, vec![]), None);
        assert_eq!((n.hold_time, n.keepalive_time), (30, 10));
        let n = Negotiated::new(&open(1, 90, vec![]), &open(2, 90, vec![]), Some(60));
        assert_eq!(n.keepalive_time, 30);
        let n = Negotiated::new(&open(1, 90, vec![]), &open(2, 90, vec![]), Some(5));
        assert_eq!(n.keepalive_time, 5);
        let n = Negotiated::new(&open(1, 0, vec![]), &open(2, 90, vec![]), None);
        assert_eq!((n.hold_time, n.keepalive_time), (0, 0));
    }

    #[test]
    fn families_intersect_and_default_to_ipv4_unicast_rfc4760() {
        let mp = |f| Capability::Multiprotocol(f);
        let a = open(
            1,
            90,
            vec![mp(AfiSafi::IPV4_UNICAST), mp(AfiSafi::IPV6_UNICAST)],
        );
        let b = open(
            2,
            90,
            vec![mp(AfiSafi::IPV6_UNICAST), mp(AfiSafi::IPV6_MULTICAST)],
        );
        let n = Negotiated::new(&a, &b, None);
        assert_eq!(
            n.families.iter().collect::<Vec<_>>(),
            vec![AfiSafi::IPV6_UNICAST]
        );
        // No MP capability at all: IPv4 unicast.
        let n = Negotiated::new(&a, &open(2, 90, vec![]), None);
        assert_eq!(
            n.families.iter().collect::<Vec<_>>(),
            vec![AfiSafi::IPV4_UNICAST]
        );
        // Unknown families are not counted.
        let evpn = AfiSafi::new(Afi(25), Safi(70));
        let n = Negotiated::new(
            &open(1, 90, vec![mp(evpn)]),
            &open(2, 90, vec![mp(evpn)]),
            None,
        );
        assert!(n.families.is_empty());
    }

    #[test]
    fn four_octet_as_needs_both() {
        let mut legacy = open(2, 90, vec![]);
        legacy.capabilities.clear();
        let n = Negotiated::new(&open(1, 90, vec![]), &legacy, None);
        assert!(!n.four_octet_as);
        assert!(!n.context().four_octet_as);
        let n = Negotiated::new(&open(1, 90, vec![]), &open(4_200_000_001, 90, vec![]), None);
        assert!(n.four_octet_as);
        assert_eq!(n.peer_asn, Asn(4_200_000_001));
    }

    #[test]
    fn add_path_per_direction_rfc7911() {
        let v4 = AfiSafi::IPV4_UNICAST;
        let n = Negotiated::new(
            &open(1, 90, vec![ap(v4, AddPathMode::Both)]),
            &open(2, 90, vec![ap(v4, AddPathMode::Send)]),
            None,
        );
        assert!(n.add_path_receive.contains(v4));
        assert!(!n.add_path_send.contains(v4));
        let ctx = n.context();
        assert!(ctx.receive_path_ids(v4) && !ctx.send_path_ids(v4));
        let n = Negotiated::new(
            &open(1, 90, vec![ap(v4, AddPathMode::Send)]),
            &open(2, 90, vec![ap(v4, AddPathMode::Send)]),
            None,
        );
        assert!(n.add_path_receive.is_empty() && n.add_path_send.is_empty());
    }

    #[test]
    fn extended_message_and_route_refresh_need_both() {
        let n = Negotiated::new(
            &open(
                1,
                90,
                vec![Capability::ExtendedMessage, Capability::RouteRefresh],
            ),
            &open(
                2,
                90,
                vec![
                    Capability::ExtendedMessage,
                    Capability::EnhancedRouteRefresh,
                ],
            ),
            None,
        );
        assert!(n.extended_message && !n.route_refresh && !n.enhanced_route_refresh);
        assert_eq!(n.context().max_message_len, 65535);
    }

    #[test]
    fn extended_next_hop_needs_both_rfc8950() {
        use bgp_wire::capability::ExtendedNextHop;
        let e = |safi| ExtendedNextHopEntry {
            nlri_afi: Afi::IPV4,
            nlri_safi: safi,
            next_hop_afi: Afi::IPV6,
        };
        let cap = |v: Vec<ExtendedNextHopEntry>| {
            Capability::ExtendedNextHop(ExtendedNextHop { entries: v })
        };
        let n = Negotiated::new(
            &open(1, 90, vec![cap(vec![e(1), e(128)])]),
            &open(2, 90, vec![cap(vec![e(1)])]),
            None,
        );
        assert_eq!(n.extended_next_hop, vec![e(1)]);
        let n = Negotiated::new(
            &open(1, 90, vec![cap(vec![e(1)])]),
            &open(2, 90, vec![]),
            None,
        );
        assert!(n.extended_next_hop.is_empty());
    }

    #[test]
    fn graceful_restart_families_only_negotiated_ones() {
        let gr = |n_bit: bool, fams: Vec<GracefulRestartFamily>| {
            Capability::GracefulRestart(GracefulRestart {
                flags: if n_bit {
                    GracefulRestart::NOTIFICATION
                } else {
                    0
                },
                restart_time: 120,
                families: fams,
            })
        };
        let v4 = AfiSafi::IPV4_UNICAST;
        let v6 = AfiSafi::IPV6_UNICAST;
        let local = open(1, 90, vec![gr(true, vec![])]);
        let peer = open(
            2,
            90,
            vec![gr(
                true,
                vec![
                    GracefulRestartFamily::new(v4, true),
                    GracefulRestartFamily::new(v6, false),
                ],
            )],
        );
        let n = Negotiated::new(&local, &peer, None);
        assert!(n.graceful_restart() && n.gr_notification());
        // Neither side listed IPv6 in MP: only IPv4 unicast counts.
        assert_eq!(n.peer_gr_families().iter().collect::<Vec<_>>(), vec![v4]);
        assert!(n.peer_forwarding_state(v4));
        assert!(!n.peer_forwarding_state(v6));
        let n = Negotiated::new(&open(1, 90, vec![gr(false, vec![])]), &peer, None);
        assert!(!n.gr_notification());
        let n = Negotiated::new(&open(1, 90, vec![]), &peer, None);
        assert!(!n.graceful_restart() && n.peer_gr_families().is_empty());
    }

    #[test]
    fn llgr_needs_both_sides_and_the_family() {
        let l = |t| {
            Capability::LongLivedGracefulRestart(LongLivedGracefulRestart {
                families: vec![LlgrFamily {
                    afi_safi: AfiSafi::IPV4_UNICAST,
                    flags: 0x80,
                    stale_time: t,
                }],
            })
        };
        let n = Negotiated::new(&open(1, 90, vec![l(10)]), &open(2, 90, vec![l(500)]), None);
        assert_eq!(n.llgr_stale_time(AfiSafi::IPV4_UNICAST), Some(500));
        assert!(n.peer_llgr_forwarding_state(AfiSafi::IPV4_UNICAST));
        assert_eq!(n.llgr_stale_time(AfiSafi::IPV6_UNICAST), None);
        let n = Negotiated::new(&open(1, 90, vec![]), &open(2, 90, vec![l(500)]), None);
        assert_eq!(n.llgr_stale_time(AfiSafi::IPV4_UNICAST), None);
    }
}
