#!/usr/bin/env python3
"""Benchmarks/truth_capture.py PCAP PORT: how each TCP connection to PORT ended, from a capture.

Reads a pcap written by `tcpdump -i lo -w` (Ethernet link type on Linux loopback, IPv4) and, per
connection (client address and port) the server accepted (SYN+ACK seen; a refused SYN is none), finds the first FIN or RST sent by each side. Prints one JSON
object: for the server's view, connections whose first end came from the client as FIN (the server
counts closed_by_peer) or RST (reset_by_peer); for the clients' view, connections whose first end came
from the server as FIN (clients count closed) or RST (reset). The standard library only: no dpkt/scapy.
"""
import json
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        header = f.read(24)
        magic = struct.unpack("<I", header[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        linktype = struct.unpack(endian + "I", header[20:24])[0]
        while True:
            record = f.read(16)
            if len(record) < 16:
                return
            _, _, caplen, _ = struct.unpack(endian + "IIII", record)
            data = f.read(caplen)
            if linktype == 1:  # Ethernet
                if len(data) < 14 or struct.unpack("!H", data[12:14])[0] != 0x0800:
                    continue
                data = data[14:]
            elif linktype == 113:  # Linux cooked (any)
                data = data[16:]
            elif linktype == 276:  # Linux cooked v2
                data = data[20:]
            if len(data) < 20 or data[0] >> 4 != 4 or data[9] != 6:
                continue
            ihl = (data[0] & 0x0F) * 4
            tcp = data[ihl:]
            if len(tcp) < 14:
                continue
            src, dst = data[12:16], data[16:20]
            sport, dport = struct.unpack("!HH", tcp[:4])
            flags = tcp[13]
            yield src, sport, dst, dport, flags


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    first = {}  # (client addr, client port) -> {"client": flag, "server": flag}
    for src, sport, dst, dport, flags in packets(path):
        if dport == port:
            key, side = (src, sport), "client"
        elif sport == port:
            key, side = (dst, dport), "server"
        else:
            continue
        if flags & 0x02 and not flags & 0x10 and side == "client":
            first[key] = {}  # a new SYN: a new connection on this client port
            continue
        if flags & 0x02 and flags & 0x10 and side == "server":
            first.setdefault(key, {})["established"] = True  # SYN+ACK: the server took it
            continue
        kind = "RST" if flags & 0x04 else ("FIN" if flags & 0x01 else None)
        if kind is None:
            continue
        ends = first.setdefault(key, {})
        if "first" not in ends:
            ends["first"] = side
        ends.setdefault(side, kind)
    result = {"connections": len(first), "client_fin_first": 0, "client_rst_first": 0,
              "server_fin_first": 0, "server_rst_first": 0}
    first = {k: v for k, v in first.items() if v.get("established")}  # a refused SYN (RST) is no connection
    result["connections"] = len(first)
    for ends in first.values():
        if "first" in ends:
            side = ends["first"]
            result["%s_%s_first" % (side, ends[side].lower())] += 1
    print(json.dumps(result, sort_keys=True))


main()
