#!/usr/bin/env python3
"""Issue 12's first failure, as a client: N connections to a `ringstorm serve` (protocol ringstorm)
register, send REQUESTs as fast as the server takes them for FILL seconds, then hold the connection
without ever reading, for HOLD seconds. Loopback only; bounded in count and time.

    Scripts/never-reading-clients.py PORT [N=200] [FILL=10] [HOLD=25]
"""
import select, socket, struct, sys, time

port = int(sys.argv[1]); n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
fill = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
hold = float(sys.argv[4]) if len(sys.argv) > 4 else 25.0
payload = b"x" * 32000
request = struct.pack(">IBQQ", 17 + len(payload), 3, 1, 1) + payload
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(struct.pack(">IBQ", 9, 1, 1000 + i))
    s.recv(13)  # REGISTERED (read once; never again)
    s.setblocking(False)
    socks.append([s, 0])
end = time.time() + fill
sent = 0
while time.time() < end:
    _, writable, _ = select.select([], [s for s, _ in socks], [], 0.1)
    for entry in socks:
        s, offset = entry
        if s not in writable: continue
        try:
            k = s.send(request[offset:])
        except (BlockingIOError, ConnectionError):
            continue
        sent += k
        entry[1] = (offset + k) % len(request)
print(f"filled: {sent / 1e6:.1f} MB sent on {n} connections in {fill} s; holding {hold} s without reading", flush=True)
time.sleep(hold)
for s, _ in socks: s.close()
