//! One JSON object per message: prefixes as `10.0.0.0/24`, ASNs as plain numbers.

use bgp_wire::capability::{AddPathMode, Capability};
use bgp_wire::{Message, NextHop, Nlris, Open, PathAttributes, Update};
use serde_json::{Map, Value, json};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn prefixes(n: &Nlris) -> Value {
    n.iter()
        .map(|p| match p.path_id {
            Some(id) => json!({"prefix": p.prefix.to_string(), "path_id": id}),
            None => json!(p.prefix.to_string()),
        })
        .collect()
}

fn next_hop(nh: &NextHop) -> Value {
    match nh {
        NextHop::Ipv4(a) => json!(a.to_string()),
        NextHop::Ipv6(a) => json!(a.to_string()),
        NextHop::Ipv6LinkLocal { global, link_local } => {
            json!([global.to_string(), link_local.to_string()])
        }
        NextHop::Other(b) => json!({"raw": hex(b)}),
    }
}

/// The JSON form of a message.
pub(crate) fn message(m: &Message) -> Value {
    match m {
        Message::Open(o) => open(o),
        Message::Update(u) => update(u),
        Message::Notification(n) => {
            let (code_name, subcode_name) = n.names();
            let mut v = json!({
                "type": "NOTIFICATION", "code": n.code, "subcode": n.subcode,
                "code_name": code_name, "subcode_name": subcode_name, "data": hex(&n.data),
            });
            if let Some(text) = n.shutdown_communication() {
                v["shutdown_communication"] = json!(text);
            }
            if let Some(inner) = n.hard_reset_inner() {
                v["hard_reset_of"] = json!({"code": inner.code, "subcode": inner.subcode});
            }
            v
        }
        Message::Keepalive => json!({"type": "KEEPALIVE"}),
        Message::RouteRefresh(r) => json!({
            "type": "ROUTE-REFRESH",
            "family": r.afi_safi.to_string(),
            "subtype": format!("{:?}", r.subtype),
        }),
    }
}

fn open(o: &Open) -> Value {
    json!({
        "type": "OPEN",
        "version": o.version,
        "my_as": o.my_as,
        "asn": o.asn().0,
        "hold_time": o.hold_time,
        "bgp_id": o.bgp_id.to_string(),
        "capabilities": o.capabilities.iter().map(capability).collect::<Vec<_>>(),
        "other_parameters": o.other_params.iter()
            .map(|p| json!({"type": p.kind, "value": hex(&p.value)}))
            .collect::<Vec<_>>(),
    })
}

fn capability(c: &Capability) -> Value {
    let mut v = match c {
        Capability::Multiprotocol(f) => json!({"name": "multiprotocol", "family": f.to_string()}),
        Capability::RouteRefresh => json!({"name": "route-refresh"}),
        Capability::EnhancedRouteRefresh => json!({"name": "enhanced-route-refresh"}),
        Capability::ExtendedMessage => json!({"name": "extended-message"}),
        Capability::FourOctetAs(a) => json!({"name": "4-octet-as", "asn": a.0}),
        Capability::Role(r) => json!({"name": "role", "role": format!("{r:?}")}),
        Capability::ExtendedNextHop(e) => json!({
            "name": "extended-next-hop",
            "entries": e.entries.iter().map(|x| json!({
                "nlri_afi": x.nlri_afi.0, "nlri_safi": x.nlri_safi, "next_hop_afi": x.next_hop_afi.0,
            })).collect::<Vec<_>>(),
        }),
        Capability::GracefulRestart(g) => json!({
            "name": "graceful-restart",
            "restart_state": g.restart_state(),
            "notification": g.notification(),
            "restart_time": g.restart_time,
            "families": g.families.iter().map(|f| json!({
                "family": f.afi_safi.to_string(), "forwarding_state": f.forwarding_state(),
            })).collect::<Vec<_>>(),
        }),
        Capability::LongLivedGracefulRestart(l) => json!({
            "name": "long-lived-graceful-restart",
            "families": l.families.iter().map(|f| json!({
                "family": f.afi_safi.to_string(), "forwarding_state": f.forwarding_state(),
                "stale_time": f.stale_time,
            })).collect::<Vec<_>>(),
        }),
        Capability::AddPath(a) => json!({
            "name": "add-path",
            "families": a.families.iter().map(|f| json!({
                "family": f.afi_safi.to_string(),
                "mode": match f.mode {
                    AddPathMode::Receive => "receive".to_string(),
                    AddPathMode::Send => "send".to_string(),
                    AddPathMode::Both => "both".to_string(),
                    AddPathMode::Other(x) => x.to_string(),
                },
            })).collect::<Vec<_>>(),
        }),
        Capability::Fqdn(f) => json!({
            "name": "fqdn", "hostname": f.hostname_lossy(), "domain": f.domain_lossy(),
        }),
        other => json!({"name": "unknown", "debug": format!("{other:?}")}),
    };
    v["code"] = json!(c.code());
    v
}

fn attributes(a: &PathAttributes) -> Value {
    let mut m = Map::new();
    if let Some(o) = a.origin {
        m.insert("origin".into(), json!(format!("{o:?}").to_uppercase()));
    }
    if let Some(p) = &a.as_path {
        let segs: Vec<Value> = p
            .segments()
            .map(|s| {
                json!({
                    "type": format!("{:?}", s.kind),
                    "asns": s.asns().map(|x| x.0).collect::<Vec<_>>(),
                })
            })
            .collect();
        m.insert("as_path".into(), json!(segs));
    }
    if let Some(nh) = a.next_hop {
        m.insert("next_hop".into(), json!(nh.to_string()));
    }
    if let Some(v) = a.med {
        m.insert("med".into(), json!(v));
    }
    if let Some(v) = a.local_pref {
        m.insert("local_pref".into(), json!(v));
    }
    if a.atomic_aggregate {
        m.insert("atomic_aggregate".into(), json!(true));
    }
    if let Some(ag) = &a.aggregator {
        m.insert(
            "aggregator".into(),
            json!({"asn": ag.asn.0, "address": ag.address.to_string()}),
        );
    }
    if let Some(c) = &a.communities {
        m.insert(
            "communities".into(),
            json!(c.iter().map(|x| x.to_string()).collect::<Vec<_>>()),
        );
    }
    if let Some(id) = a.originator_id {
        m.insert("originator_id".into(), json!(id.to_string()));
    }
    if let Some(c) = &a.cluster_list {
        m.insert("cluster_list".into(), json!(format!("{c:?}")));
    }
    if let Some(c) = &a.ext_communities {
        m.insert(
            "extended_communities".into(),
            json!(c.iter().map(|x| x.to_string()).collect::<Vec<_>>()),
        );
    }
    if let Some(c) = &a.large_communities {
        m.insert(
            "large_communities".into(),
            json!(c.iter().map(|x| x.to_string()).collect::<Vec<_>>()),
        );
    }
    if let Some(otc) = a.otc {
        m.insert("otc".into(), json!(otc.0));
    }
    if !a.unknown.is_empty() {
        m.insert(
            "unknown".into(),
            a.unknown
                .iter()
                .map(|r| json!({"type": r.type_code, "flags": r.flags, "value": hex(&r.value)}))
                .collect(),
        );
    }
    Value::Object(m)
}

fn update(u: &Update) -> Value {
    let mut v = json!({"type": "UPDATE"});
    if let Some(f) = u.end_of_rib() {
        v["end_of_rib"] = json!(f.to_string());
        return v;
    }
    if !u.withdrawn.is_empty() {
        v["withdrawn"] = prefixes(&u.withdrawn);
    }
    v["attributes"] = attributes(&u.attributes);
    if !u.nlri.is_empty() {
        v["nlri"] = prefixes(&u.nlri);
    }
    if let Some(r) = &u.mp_reach {
        v["mp_reach"] = json!({
            "family": r.family.to_string(), "next_hop": next_hop(&r.next_hop),
            "nlri": if r.family.is_known() { prefixes(&r.nlri) } else { json!({"raw": hex(r.nlri.raw())}) },
        });
    }
    if let Some(r) = &u.mp_unreach {
        v["mp_unreach"] = json!({
            "family": r.family.to_string(),
            "withdrawn": if r.family.is_known() { prefixes(&r.withdrawn) } else { json!({"raw": hex(r.withdrawn.raw())}) },
        });
    }
    if !u.errors.is_empty() {
        v["rfc7606"] = u
            .errors
            .iter()
            .map(|e| {
                json!({
                    "action": format!("{:?}", e.action), "error": e.kind.to_string(),
                    "field": e.field, "offset": e.offset,
                })
            })
            .collect();
    }
    v
}
