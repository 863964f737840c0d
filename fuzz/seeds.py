#!/usr/bin/env python3
"""Writes seed inputs built from the captured FRR, BIRD and GoBGP sessions
(bgp-testkit/captures) for the rib_updates and core_bytes targets:

    fuzz/seeds.py rib_updates DIR
    fuzz/seeds.py core_bytes DIR

The formats are those read by bgp_testkit::fuzz::rib and bgp_testkit::fuzz::core."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURES = os.path.join(HERE, "..", "bgp-testkit", "captures")
# Index of the sender's AS in the targets' peer AS tables.
SENDER = {"frr": 1, "bird": 2, "gobgp": 3}
MAX_SEED = 6000


def captures():
    with open(os.path.join(CAPTURES, "manifest.tsv")) as f:
        for line in f.read().splitlines()[1:]:
            if not line.strip():
                continue
            name, as4, add_path, ext = line.split("\t")
            ctx = 0 if as4 == "1" else 1
            if ext == "1":
                ctx |= 2
            fams = add_path.split(",") if add_path else []
            for i, fam in enumerate(["ipv4-unicast", "ipv6-unicast", "ipv4-multicast", "ipv6-multicast"]):
                if fam in fams:
                    ctx |= 1 << (2 + i)
            with open(os.path.join(CAPTURES, name), "rb") as g:
                yield name, ctx, g.read()


def messages(data):
    i = 0
    while i + 19 <= len(data):
        n = int.from_bytes(data[i + 16 : i + 18], "big")
        if n < 19:
            return
        yield data[i + 18], data[i : i + n]
        i += n


def rib_seed(name, ctx, data):
    slot = SENDER[name.split("-")[0]]
    out = bytearray([0])
    out += bytes([0, slot | slot << 2, 0])  # add the sender's peer
    out += bytes([0, 0, 0])  # an iBGP peer in slot 0
    other = 1 if slot != 1 else 2
    out += bytes([0, other | other << 2, 0])  # another eBGP peer
    for s in (0, slot, other):
        out += bytes([2, s, 0x03])  # up for IPv4 and IPv6 unicast
    for kind, m in messages(data):
        if kind != 2:
            continue
        body = m[19:]
        if len(out) + len(body) > MAX_SEED:
            break
        out += bytes([4, slot, ctx & ~2]) + len(body).to_bytes(2, "big") + body
    out += bytes([11, 0, 11, other])
    return bytes(out)


def core_seed(name, ctx, data):
    # Config byte: the peer's OPEN options (ADD-PATH when the capture has it, 4-octet AS).
    # The peer's AS is the sender's, so that its AS_PATHs pass the first-AS check.
    cfg = (0x01 if ctx & 0x0C else 0x00) | SENDER[name.split("-")[0]] << 2
    out = bytearray([cfg, 0])
    for kind, m in messages(data):
        if kind not in (2, 4):  # UPDATEs and KEEPALIVEs; the handshake is the target's
            continue
        if len(out) + len(m) > MAX_SEED:
            break
        out += bytes([0]) + len(m).to_bytes(2, "big") + m
        out += bytes([4, 4])  # a second of time
    out += bytes([6, 0, 7, 15])  # drain to the peer, it reads; drain to the other peer
    return bytes(out)


def main():
    target, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    make = {"rib_updates": rib_seed, "core_bytes": core_seed}[target]
    for name, ctx, data in captures():
        seed = make(name, ctx, data)
        with open(os.path.join(out, "capture-" + name.replace(".bin", "")), "wb") as f:
            f.write(seed)


if __name__ == "__main__":
    main()
