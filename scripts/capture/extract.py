#!/usr/bin/env python3
"""Split a pcap of BGP sessions into raw per-direction BGP message streams.

Standard library only. Reads classic pcap (either byte order, micro- or nanosecond timestamps) with
link type Ethernet (1), Linux cooked (113) or Linux cooked v2 (276); IPv4 and IPv6; reassembles each
TCP direction by sequence number (duplicates and retransmissions dropped), splits the byte stream at
the BGP header length field (checking the 16-byte 0xff marker) and writes

  OUT/<sender>-to-<receiver>[-N].bin   raw messages back to back, as on the wire
  OUT/MANIFEST.md                      message counts and negotiated decoding parameters
  OUT/manifest.tsv                     file, four_octet_as, add_path_receive, extended_message

A direction with several TCP connections (restart, collision) gets -1, -2, ... in connection order.
"""
import argparse
import collections
import os
import struct
import sys

MSG_TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}
AFI = {1: "ipv4", 2: "ipv6", 25: "l2vpn", 16388: "bgp-ls"}
SAFI = {1: "unicast", 2: "multicast", 4: "labeled-unicast", 128: "vpn", 70: "evpn", 133: "flowspec",
        71: "bgp-ls", 132: "rtc"}
CAP_NAMES = {1: "multiprotocol", 2: "route-refresh", 5: "extended-nexthop", 6: "extended-message",
             9: "bgp-role", 64: "graceful-restart", 65: "4-octet-as", 67: "dynamic-capability",
             69: "add-path", 70: "enhanced-route-refresh", 71: "long-lived-gr", 73: "fqdn",
             74: "bfd-strict", 75: "software-version", 128: "route-refresh-old(128)"}
NOTIF_CODES = {1: "Message Header Error", 2: "OPEN Message Error", 3: "UPDATE Message Error",
               4: "Hold Timer Expired", 5: "FSM Error", 6: "Cease", 7: "ROUTE-REFRESH Message Error"}
CEASE_SUB = {1: "Maximum Number of Prefixes Reached", 2: "Administrative Shutdown",
             3: "Peer De-configured", 4: "Administrative Reset", 5: "Connection Rejected",
             6: "Other Configuration Change", 7: "Connection Collision Resolution",
             8: "Out of Resources", 9: "Hard Reset", 10: "BFD Down"}
ROLES = {0: "provider", 1: "rs", 2: "rs-client", 3: "customer", 4: "peer"}


def fam(afi, safi):
    return "%s-%s" % (AFI.get(afi, "afi%d" % afi), SAFI.get(safi, "safi%d" % safi))


# ------------------------------------------------------------------ pcap reading
def read_pcap(path):
    """Yield (ts, linktype, frame)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise SystemExit("pcap too short")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    elif magic == b"\x0a\x0d\x0d\x0a":
        raise SystemExit("pcapng not supported: capture with tcpdump -w (classic pcap)")
    else:
        raise SystemExit("not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(end + "I", data[20:24])[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(end + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + incl]
        off += incl
        if len(frame) < incl:
            print("warning: truncated last packet record", file=sys.stderr)
            break
        if incl < orig:
            print("warning: packet truncated by snaplen (%d < %d)" % (incl, orig), file=sys.stderr)
        yield sec + frac / (1e9 if nano else 1e6), linktype, frame


def ip_payload(linktype, frame):
    """Return (ethertype, l3 bytes) or None."""
    if linktype == 1:  # Ethernet
        if len(frame) < 14:
            return None
        etype = struct.unpack("!H", frame[12:14])[0]
        off = 14
        while etype in (0x8100, 0x88A8) and len(frame) >= off + 4:
            etype = struct.unpack("!H", frame[off + 2:off + 4])[0]
            off += 4
        return etype, frame[off:]
    if linktype == 113:  # Linux cooked v1
        if len(frame) < 16:
            return None
        return struct.unpack("!H", frame[14:16])[0], frame[16:]
    if linktype == 276:  # Linux cooked v2
        if len(frame) < 20:
            return None
        return struct.unpack("!H", frame[0:2])[0], frame[20:]
    if linktype in (101, 12, 14):  # raw IP
        v = frame[0] >> 4 if frame else 0
        return (0x0800 if v == 4 else 0x86DD), frame
    raise SystemExit("unsupported link type %d" % linktype)


def tcp_segment(etype, pkt):
    """Return (src, dst, sport, dport, seq, flags, payload) or None."""
    import ipaddress
    if etype == 0x0800:
        if len(pkt) < 20:
            return None
        ihl = (pkt[0] & 0x0F) * 4
        total = struct.unpack("!H", pkt[2:4])[0]
        if pkt[9] != 6:
            return None
        frag = struct.unpack("!H", pkt[6:8])[0]
        if frag & 0x3FFF:
            print("warning: IP fragment ignored", file=sys.stderr)
            return None
        src = str(ipaddress.IPv4Address(pkt[12:16]))
        dst = str(ipaddress.IPv4Address(pkt[16:20]))
        tcp = pkt[ihl:total] if total else pkt[ihl:]
    elif etype == 0x86DD:
        if len(pkt) < 40 or pkt[6] != 6:  # no extension headers expected on lo
            return None
        plen = struct.unpack("!H", pkt[4:6])[0]
        src = str(ipaddress.IPv6Address(pkt[8:24]))
        dst = str(ipaddress.IPv6Address(pkt[24:40]))
        tcp = pkt[40:40 + plen]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport, seq = struct.unpack("!HHI", tcp[0:8])
    doff = (tcp[12] >> 4) * 4
    flags = tcp[13]
    return src, dst, sport, dport, seq, flags, tcp[doff:]


# ------------------------------------------------------------------ TCP reassembly
class Flow:
    """One direction of one TCP connection."""

    def __init__(self, key, ts):
        self.key = key  # (src, sport, dst, dport)
        self.first_ts = ts
        self.isn = None
        self.segs = []  # (seq, payload)
        self.conn = None

    def stream(self):
        if not self.segs:
            return b"", 0
        base = (self.isn + 1) & 0xFFFFFFFF if self.isn is not None else min(s for s, _ in self.segs)
        rel = []
        for seq, data in self.segs:
            r = (seq - base) & 0xFFFFFFFF
            if r >= 0x80000000:  # before base (should not happen)
                r -= 1 << 32
            rel.append((r, data))
        rel.sort(key=lambda x: x[0])
        out = bytearray()
        gaps = 0
        for r, data in rel:
            end = r + len(data)
            if end <= len(out):
                continue  # duplicate / retransmission
            if r > len(out):
                gaps += 1
                print("warning: gap of %d bytes in %s" % (r - len(out), self.key), file=sys.stderr)
                break
            out += data[len(out) - r:]
        return bytes(out), gaps


def reassemble(pcap):
    flows = []
    active = {}  # key -> Flow
    for ts, lt, frame in read_pcap(pcap):
        p = ip_payload(lt, frame)
        if p is None:
            continue
        seg = tcp_segment(*p)
        if seg is None:
            continue
        src, dst, sport, dport, seq, flags, payload = seg
        key = (src, sport, dst, dport)
        syn = flags & 0x02
        fl = active.get(key)
        if syn:
            if fl is None or (fl.isn is not None and fl.isn != seq) or (fl.isn is None and fl.segs):
                fl = Flow(key, ts)
                active[key] = fl
                flows.append(fl)
            fl.isn = seq
            continue
        if fl is None:
            fl = Flow(key, ts)  # connection started before capture
            active[key] = fl
            flows.append(fl)
        if payload:
            fl.segs.append((seq, payload))
    # pair directions into connections
    for fl in flows:
        s, sp, d, dp = fl.key
        rev = [g for g in flows if g.key == (d, dp, s, sp)]
        if rev:
            # the reverse flow closest in start time
            fl.peer = min(rev, key=lambda g: abs(g.first_ts - fl.first_ts))
        else:
            fl.peer = None
    return flows


# ------------------------------------------------------------------ BGP
def split_bgp(stream, label):
    msgs = []
    off = 0
    while off + 19 <= len(stream):
        if stream[off:off + 16] != b"\xff" * 16:
            raise SystemExit("%s: bad BGP marker at stream offset %d" % (label, off))
        ln = struct.unpack("!H", stream[off + 16:off + 18])[0]
        if ln < 19:
            raise SystemExit("%s: bad BGP length %d at offset %d" % (label, ln, off))
        if off + ln > len(stream):
            break
        msgs.append(stream[off:off + ln])
        off += ln
    if off != len(stream):
        print("warning: %s: %d trailing bytes (incomplete message) dropped" % (label, len(stream) - off),
              file=sys.stderr)
    return msgs


def parse_open(msg):
    body = msg[19:]
    version, my_as, hold, bgp_id, oplen = struct.unpack("!BHH4sB", body[:10])
    params = body[10:10 + oplen]
    ext = False
    if oplen == 255 and len(body) > 12 and body[10] == 255:  # RFC 9072
        ext = True
        oplen = struct.unpack("!H", body[11:13])[0]
        params = body[13:13 + oplen]
    caps = []  # (code, value)
    off = 0
    while off < len(params):
        if ext:
            ptype, plen = struct.unpack("!BH", params[off:off + 3])
            off += 3
        else:
            ptype, plen = params[off], params[off + 1]
            off += 2
        pval = params[off:off + plen]
        off += plen
        if ptype != 2:
            continue
        c = 0
        while c + 2 <= len(pval):
            code, clen = pval[c], pval[c + 1]
            caps.append((code, pval[c + 2:c + 2 + clen]))
            c += 2 + clen
    return {"version": version, "my_as": my_as, "hold": hold, "id": ".".join(str(b) for b in bgp_id),
            "caps": caps, "ext_params": ext}


def cap_summary(o):
    mp, addpath, out = set(), {}, []
    info = {"as4": None, "extmsg": False}
    for code, v in o["caps"]:
        name = CAP_NAMES.get(code, "cap%d" % code)
        if code == 1 and len(v) >= 4:
            a, _, s = struct.unpack("!HBB", v[:4])
            mp.add(fam(a, s))
            out.append("mp(%s)" % fam(a, s))
        elif code == 65 and len(v) == 4:
            info["as4"] = struct.unpack("!I", v)[0]
            out.append("as4(%d)" % info["as4"])
        elif code == 6:
            info["extmsg"] = True
            out.append(name)
        elif code == 69:
            parts = []
            for i in range(0, len(v) - 3, 4):
                a, s, sr = struct.unpack("!HBB", v[i:i + 4])
                addpath[fam(a, s)] = sr
                parts.append("%s:%s" % (fam(a, s), {1: "rx", 2: "tx", 3: "rx+tx"}.get(sr, sr)))
            out.append("add-path(%s)" % ",".join(parts))
        elif code == 64 and len(v) >= 2:
            fl = struct.unpack("!H", v[:2])[0]
            flags = "".join(n for b, n in ((0x8000, "R"), (0x4000, "N")) if fl & b)
            fams = []
            for i in range(2, len(v) - 3, 4):
                a, s, ff = struct.unpack("!HBB", v[i:i + 4])
                fams.append(fam(a, s) + ("+F" if ff & 0x80 else ""))
            out.append("gr(flags=%s,time=%d,%s)" % (flags or "-", fl & 0x0FFF, ",".join(fams) or "no-afs"))
        elif code == 71:
            fams = []
            for i in range(0, len(v) - 6, 7):
                a, s, ff = struct.unpack("!HBB", v[i:i + 4])
                t = int.from_bytes(v[i + 4:i + 7], "big")
                fams.append("%s%s/%ds" % (fam(a, s), "+F" if ff & 0x80 else "", t))
            out.append("llgr(%s)" % ",".join(fams))
        elif code == 9 and len(v) == 1:
            out.append("role(%s)" % ROLES.get(v[0], v[0]))
        elif code == 73 and len(v) >= 1:
            hl = v[0]
            host = v[1:1 + hl].decode("ascii", "replace")
            dl = v[1 + hl] if len(v) > 1 + hl else 0
            dom = v[2 + hl:2 + hl + dl].decode("ascii", "replace")
            out.append("fqdn(%s%s)" % (host, "." + dom if dom else ""))
        elif code == 5:
            parts = []
            for i in range(0, len(v) - 5, 6):
                a, s, nh = struct.unpack("!HHH", v[i:i + 6])
                parts.append("%s/nh-afi%d" % (fam(a, s), nh))
            out.append("extended-nexthop(%s)" % ",".join(parts))
        elif code == 75 and v:
            out.append("software-version(%s)" % v[1:1 + v[0]].decode("ascii", "replace"))
        else:
            out.append(name if not v else "%s[%d bytes]" % (name, len(v)))
    info["mp"] = mp
    info["addpath"] = addpath
    info["list"] = out
    return info


def notif_desc(msg):
    code, sub = msg[19], msg[20]
    data = msg[21:]
    s = "%d/%d %s" % (code, sub, NOTIF_CODES.get(code, "?"))
    if code == 6:
        s += " / " + CEASE_SUB.get(sub, "?")
        if sub in (2, 4) and data:
            n = data[0]
            s += ' "%s"' % data[1:1 + n].decode("utf-8", "replace")
    elif data:
        s += " data=%s" % data.hex()
    return s


def is_eor(msg):
    body = msg[19:]
    if len(body) == 4 and body == b"\x00\x00\x00\x00":
        return "ipv4-unicast"
    # MP_UNREACH only, no withdrawn, with empty NLRI
    if len(body) >= 4:
        wl = struct.unpack("!H", body[:2])[0]
        if wl == 0:
            al = struct.unpack("!H", body[2:4])[0]
            attrs = body[4:4 + al]
            if len(body) == 4 + al and len(attrs) in (6, 7):
                flags, t = attrs[0], attrs[1]
                ext = flags & 0x10
                ln = struct.unpack("!H", attrs[2:4])[0] if ext else attrs[2]
                hv = attrs[4:] if ext else attrs[3:]
                if t == 15 and ln == 3 and len(hv) == 3:
                    a, s = struct.unpack("!HB", hv)
                    return fam(a, s)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--header", help="markdown file put at the top of MANIFEST.md")
    ap.add_argument("--name", action="append", default=[], metavar="ADDR=NAME",
                    help="name for an address (repeatable); unnamed addresses are used verbatim")
    args = ap.parse_args()
    names = dict(n.split("=", 1) for n in args.name)

    flows = reassemble(args.pcap)
    streams = {}
    for fl in flows:
        data, _ = fl.stream()
        fl.msgs = split_bgp(data, "%s:%d->%s:%d" % fl.key) if data else []
    # group by sender->receiver, in connection order
    groups = collections.OrderedDict()
    for fl in sorted(flows, key=lambda f: f.first_ts):
        if not fl.msgs:
            continue
        s, _, d, _ = fl.key
        base = "%s-to-%s" % (names.get(s, s), names.get(d, d))
        groups.setdefault(base, []).append(fl)

    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):  # remove results of an earlier run
        if f.endswith(".bin") or f in ("MANIFEST.md", "manifest.tsv"):
            os.remove(os.path.join(args.out, f))
    for base, fls in groups.items():
        for i, fl in enumerate(fls):
            fl.fname = base + (".bin" if len(fls) == 1 else "-%d.bin" % (i + 1))
    rows = []
    md = []
    for base in sorted(groups):
        fls = groups[base]
        for fl in fls:
            fname = fl.fname
            with open(os.path.join(args.out, fname), "wb") as f:
                for m in fl.msgs:
                    f.write(m)
            counts = collections.Counter(MSG_TYPES.get(m[18], "type%d" % m[18]) for m in fl.msgs)
            eors = [e for e in (is_eor(m) for m in fl.msgs if m[18] == 2) if e]
            notifs = [notif_desc(m) for m in fl.msgs if m[18] == 3]
            rr = collections.Counter()
            for m in fl.msgs:
                if m[18] == 5:
                    a, sub, s = struct.unpack("!HBB", m[19:23])
                    rr["%s%s" % (fam(a, s), {0: "", 1: " BoRR", 2: " EoRR"}.get(sub, " sub%d" % sub))] += 1
            mine = theirs = None
            if fl.msgs[0][18] == 1:
                mine = cap_summary(parse_open(fl.msgs[0]))
            peer = getattr(fl, "peer", None)
            if peer is not None and peer.msgs and peer.msgs[0][18] == 1:
                theirs = cap_summary(parse_open(peer.msgs[0]))
            if mine and theirs:
                as4 = int(mine["as4"] is not None and theirs["as4"] is not None)
                both = mine["mp"] & theirs["mp"]
                addp = sorted(f for f, v in mine["addpath"].items()
                              if v & 2 and theirs["addpath"].get(f, 0) & 1 and f in both)
                extm = int(mine["extmsg"] and theirs["extmsg"])
                neg = "negotiated from both OPENs"
            else:
                as4 = int(bool(mine and mine["as4"] is not None))
                addp, extm = [], 0
                neg = "no OPEN from the other side on this connection; guessed, nothing to decode beyond OPEN"
            rows.append((fname, as4, ",".join(addp), extm))
            size = sum(len(m) for m in fl.msgs)
            md.append("## %s\n" % fname)
            md.append("- connection: %s:%d -> %s:%d, %d bytes, %d messages: %s" % (
                fl.key[0], fl.key[1], fl.key[2], fl.key[3], size, len(fl.msgs),
                ", ".join("%s %d" % (t, counts[t]) for t in
                          ["OPEN", "UPDATE", "NOTIFICATION", "KEEPALIVE", "ROUTE-REFRESH"] if counts[t])
                + "".join(", %s %d" % (t, n) for t, n in counts.items() if t not in MSG_TYPES.values())))
            md.append("- decoding (%s): four_octet_as=%d, add_path_receive=%s, extended_message=%d" % (
                neg, as4, ",".join(addp) or "none", extm))
            rev = getattr(getattr(fl, "peer", None), "fname", None)
            md.append("- other direction of this connection: %s" % (rev or "none (receiver sent nothing)"))
            if eors:
                md.append("- End-of-RIB markers: %s" % ", ".join(eors))
            if rr:
                md.append("- ROUTE-REFRESH: %s" % ", ".join("%s x%d" % kv for kv in sorted(rr.items())))
            if notifs:
                md.append("- NOTIFICATION: %s" % "; ".join(notifs))
            if mine:
                md.append("- sender OPEN capabilities: %s" % " ".join(mine["list"]))
            if theirs:
                md.append("- receiver OPEN capabilities: %s" % " ".join(theirs["list"]))
            md.append("")

    with open(os.path.join(args.out, "manifest.tsv"), "w") as f:
        f.write("file\tfour_octet_as\tadd_path_receive\textended_message\n")
        for r in rows:
            f.write("%s\t%d\t%s\t%d\n" % r)
    with open(os.path.join(args.out, "MANIFEST.md"), "w") as f:
        if args.header:
            with open(args.header) as h:
                f.write(h.read().rstrip("\n") + "\n\n")
        f.write("\n".join(md))
    for r in rows:
        print("%-24s as4=%d addpath=%-26s extmsg=%d" % r)


if __name__ == "__main__":
    main()
