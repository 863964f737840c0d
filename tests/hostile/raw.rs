//! Raw BGP bytes, built by hand so that any field can be wrong: headers, OPENs with their
//! optional parameters and capabilities, UPDATEs with their path attributes and NLRI.

use std::net::Ipv4Addr;

/// A message: marker, length (computed), type, body (RFC 4271 §4.1).
pub(crate) fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(19 + body.len()).expect("message fits the length field");
    msg_with_len(kind, len, body)
}

/// A message whose length field says `len`, whatever the body.
pub(crate) fn msg_with_len(kind: u8, len: u16, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0xff; 16];
    v.extend_from_slice(&len.to_be_bytes());
    v.push(kind);
    v.extend_from_slice(body);
    v
}

/// KEEPALIVE (RFC 4271 §4.4).
pub(crate) fn keepalive() -> Vec<u8> {
    msg(4, &[])
}

/// NOTIFICATION (RFC 4271 §4.5).
pub(crate) fn notification(code: u8, subcode: u8) -> Vec<u8> {
    msg(3, &[code, subcode])
}

/// One capability: code, length, value (RFC 5492 §4).
pub(crate) fn cap(code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![code, u8::try_from(value.len()).expect("capability fits")];
    v.extend_from_slice(value);
    v
}

/// Multiprotocol (RFC 4760 §8).
pub(crate) fn cap_mp(afi: u16, safi: u8) -> Vec<u8> {
    let a = afi.to_be_bytes();
    cap(1, &[a[0], a[1], 0, safi])
}

/// 4-octet AS (RFC 6793 §3).
pub(crate) fn cap_as4(asn: u32) -> Vec<u8> {
    cap(65, &asn.to_be_bytes())
}

/// What the scripted peer advertises by default: IPv4 and IPv6 unicast, route refresh,
/// 4-octet AS.
pub(crate) fn default_caps(asn: u32) -> Vec<Vec<u8>> {
    vec![cap_mp(1, 1), cap_mp(2, 1), cap(2, &[]), cap_as4(asn)]
}

/// Optional parameters: each capability in a parameter of its own (type 2).
pub(crate) fn cap_params(caps: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for c in caps {
        v.push(2);
        v.push(u8::try_from(c.len()).expect("parameter fits"));
        v.extend_from_slice(c);
    }
    v
}

/// An OPEN body with the given fields; `opt_len` is written as given (normally
/// `params.len()`).
pub(crate) fn open_body(
    version: u8,
    my_as: u16,
    hold: u16,
    id: Ipv4Addr,
    opt_len: u8,
    params: &[u8],
) -> Vec<u8> {
    let mut v = vec![version];
    v.extend_from_slice(&my_as.to_be_bytes());
    v.extend_from_slice(&hold.to_be_bytes());
    v.extend_from_slice(&id.octets());
    v.push(opt_len);
    v.extend_from_slice(params);
    v
}

/// A well-formed OPEN (RFC 4271 §4.2) with these capabilities.
pub(crate) fn open(asn: u32, hold: u16, id: Ipv4Addr, caps: &[Vec<u8>]) -> Vec<u8> {
    let params = cap_params(caps);
    let my_as = u16::try_from(asn).unwrap_or(23456);
    let opt_len = u8::try_from(params.len()).expect("parameters fit");
    msg(1, &open_body(4, my_as, hold, id, opt_len, &params))
}

/// An UPDATE (RFC 4271 §4.3) from its three parts, lengths computed.
pub(crate) fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&u16::try_from(withdrawn.len()).expect("fits").to_be_bytes());
    v.extend_from_slice(withdrawn);
    v.extend_from_slice(&u16::try_from(attrs.len()).expect("fits").to_be_bytes());
    v.extend_from_slice(attrs);
    v.extend_from_slice(nlri);
    msg(2, &v)
}

/// One path attribute; the extended-length form when `flags` has 0x10.
pub(crate) fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, code];
    if flags & 0x10 != 0 {
        v.extend_from_slice(&u16::try_from(value.len()).expect("fits").to_be_bytes());
    } else {
        v.push(u8::try_from(value.len()).expect("fits"));
    }
    v.extend_from_slice(value);
    v
}

/// Attribute flags.
pub(crate) const WELL_KNOWN: u8 = 0x40;
/// Optional, non-transitive.
pub(crate) const OPTIONAL: u8 = 0x80;
/// Optional, transitive.
pub(crate) const OPT_TRANS: u8 = 0xc0;

/// ORIGIN.
pub(crate) fn origin(v: u8) -> Vec<u8> {
    attr(WELL_KNOWN, 1, &[v])
}

/// AS_PATH: one AS_SEQUENCE of 4-octet ASNs.
pub(crate) fn as_path(asns: &[u32]) -> Vec<u8> {
    attr(WELL_KNOWN, 2, &as_path_value(2, asns))
}

/// One AS_PATH segment of 4-octet ASNs.
pub(crate) fn as_path_value(seg_type: u8, asns: &[u32]) -> Vec<u8> {
    let mut v = vec![seg_type, u8::try_from(asns.len()).expect("fits")];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    v
}

/// NEXT_HOP.
pub(crate) fn next_hop(ip: Ipv4Addr) -> Vec<u8> {
    attr(WELL_KNOWN, 3, &ip.octets())
}

/// MULTI_EXIT_DISC.
pub(crate) fn med(v: u32) -> Vec<u8> {
    attr(OPTIONAL, 4, &v.to_be_bytes())
}

/// An IPv4 or IPv6 prefix in NLRI encoding: length, then the significant octets.
pub(crate) fn prefix(p: &str) -> Vec<u8> {
    let net: ipnet::IpNet = p.parse().expect("a prefix");
    let len = net.prefix_len();
    let octets: Vec<u8> = match net.addr() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut v = vec![len];
    v.extend_from_slice(&octets[..usize::from(len).div_ceil(8)]);
    v
}

/// Several prefixes back to back.
pub(crate) fn prefixes(ps: &[&str]) -> Vec<u8> {
    ps.iter().flat_map(|p| prefix(p)).collect()
}

/// MP_REACH_NLRI (RFC 4760 §3) with a raw next hop.
pub(crate) fn mp_reach(afi: u16, safi: u8, nh: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut v = afi.to_be_bytes().to_vec();
    v.push(safi);
    v.push(u8::try_from(nh.len()).expect("fits"));
    v.extend_from_slice(nh);
    v.push(0);
    v.extend_from_slice(nlri);
    attr(OPTIONAL | 0x10, 14, &v)
}

/// MP_UNREACH_NLRI (RFC 4760 §4).
pub(crate) fn mp_unreach(afi: u16, safi: u8, nlri: &[u8]) -> Vec<u8> {
    let mut v = afi.to_be_bytes().to_vec();
    v.push(safi);
    v.extend_from_slice(nlri);
    attr(OPTIONAL | 0x10, 15, &v)
}

/// Concatenates attribute blocks.
pub(crate) fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}
