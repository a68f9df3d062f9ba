#!/usr/bin/env python3
"""Summary of one Benchmarks/million.sh run: reads the run directory's merged reports, the 2-second
samples, /proc/slabinfo at the peak and before, and nstat; prints what Docs/benchmarks.md records."""
import json, re, sys

out, n, rate, procs, sources, backend, interval, hold = sys.argv[1:]
n, procs = int(n), int(procs)


def load(name):
    try:
        return json.load(open(f"{out}/{name}"))
    except (OSError, ValueError) as e:
        print(f"  {name}: missing or unreadable ({e})")
        return None


ld, sv = load("load.json"), load("server.json")
print(f"n={n:,} connect-rate={int(rate):,}/s processes={procs}x2 sources={sources} backend={backend} "
      f"--interval {interval} hold {hold}s")
print("  load average before: " + open(f"{out}/uptime.before").read().split("load average:")[1].strip()
      + "  after: " + open(f"{out}/uptime.after").read().split("load average:")[1].strip())

# Ramp from the live lines ("[  12.0s] open 120,000 ..."): last second with none open to first with all.
err = open(f"{out}/load.err").read()
opens = [(float(t), int(o.replace(",", ""))) for t, o in re.findall(r"\[\s*([\d.]+)s\] open ([\d,]+)", err)]
full = min([t for t, o in opens if o >= n], default=None)
start = max([t for t, o in opens if o == 0 and (full is None or t < full)], default=0.0)
last = max([t for t, o in opens], default=0.0)
peak_live = max([o for t, o in opens], default=0)
if full is not None:
    print(f"  ramp: all {n:,} open {full - start:.0f} s after the first connect ({n / max(full - start, 1):,.0f}/s), "
          f"held {last - full:.0f} s to the last live line")
else:
    print(f"  ramp: never all open; live peak {peak_live:,}")

if ld:
    c, req, lat = ld["connections"], ld["requests"], ld["latency_us"]
    print(f"  load: attempted {c.get('attempted', 0):,} established {c.get('established', 0):,} "
          f"peak open {c.get('peak_open', 0):,} complete={ld.get('complete')} failed workers {len(ld.get('failed_workers', []))}")
    print(f"  requests: " + " ".join(f"{k} {v:,}" for k, v in req.items() if isinstance(v, int)))
    for name in ("connect", "register", "request"):
        l = lat.get(name)
        if l and l.get("count", 1):
            print(f"  {name} us: p50 {l.get('p50', 0):,} p90 {l.get('p90', 0):,} p99 {l.get('p99', 0):,} max {l.get('max', 0):,}")
    fails = {}
    for ph, os_ in ld.get("outcomes", {}).items():
        for o, v in os_.items():
            if isinstance(v, dict):
                fails.update({f"{ph}.{k}": x for k, x in v.items() if x})
            elif v:
                fails[f"{ph}.{o}"] = v
    print(f"  load outcomes: {fails}")
    print(f"  load syscalls: {ld.get('syscalls')}")
    print(f"  load memory: {ld.get('memory')}")
    g = ld.get("generator", {})
    print(f"  generator: max lag {g.get('max_lag_us', 0):,} us, cpu {g.get('cpu_s', 0)} s, ports in use {g.get('ports_in_use', 0)}")
if sv:
    keys = ["accepted", "registered", "peak_open", "register_timeouts", "idle_closed", "closed_by_peer",
            "reset_by_peer", "protocol_errors", "drain_timeouts", "shed", "accept_errors"]
    print("  server: " + " ".join(f"{k} {sv.get(k, 0):,}" for k in keys if isinstance(sv.get(k, 0), int))
          + f" complete={sv.get('complete')} failed workers {len(sv.get('failed_workers', []))}")
    print(f"  server requests: {sv.get('requests')}")
    print(f"  server syscalls: {sv.get('syscalls')}")
    print(f"  server memory: {sv.get('memory')}")

# Memory and CPU from the samples: the peak of TCP sockets in use.
def kv(line):
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}

before = kv(open(f"{out}/before.txt").read())
after = kv(open(f"{out}/after.txt").read())
samples = []
for line in open(f"{out}/samples.txt"):
    f = line.split()
    s = kv(line)
    s["t_ms"] = int(f[0])
    cpu = [int(x) for x in line.split(" cpu ")[1].split()] if " cpu " in line else []
    s["busy"] = sum(cpu) - (cpu[3] + cpu[4] if len(cpu) > 4 else 0)
    s["total"] = sum(cpu)
    samples.append(s)
if samples:
    peak = max(samples, key=lambda s: s["tcp_inuse"])
    sockets = peak["tcp_inuse"] - before["tcp_inuse"]
    per_sock = lambda kb: kb * 1024 / max(sockets, 1)
    print(f"  at the peak ({peak['t_ms'] / 1000:.0f} s): {sockets:,} more TCP sockets than before "
          f"(both ends: {sockets / 2:,.0f} connections)")
    print(f"  kernel: Slab +{(peak['slab_kb'] - before['slab_kb']) / 1024:,.0f} MiB = {per_sock(peak['slab_kb'] - before['slab_kb']):,.0f} B per socket; "
          f"SUnreclaim +{(peak['sunreclaim_kb'] - before['sunreclaim_kb']) / 1024:,.0f} MiB = {per_sock(peak['sunreclaim_kb'] - before['sunreclaim_kb']):,.0f} B per socket; "
          f"TCP buffer pages {peak['tcp_mem_pages']:,}")
    print(f"  user: RSS of our {peak['procs']} processes {peak['rss_kb'] / 1024:,.0f} MiB = {per_sock(peak['rss_kb']):,.0f} B per socket "
          f"(processes' idle RSS included)")
    print(f"  after stop: Slab {after['slab_kb'] - before['slab_kb']:+,} kB, SUnreclaim {after['sunreclaim_kb'] - before['sunreclaim_kb']:+,} kB vs before")
    # CPU: ours (utime+stime ticks, 100/s) and the machine's busy share, over the ramp and the hold.
    hz = 100
    first, final = samples[0], samples[-1]
    ramp_end = next((s for s in samples if s["tcp_inuse"] - before["tcp_inuse"] >= 2 * n * 0.999), None)
    def span(a, b, label):
        secs = (b["t_ms"] - a["t_ms"]) / 1000
        if secs <= 0:
            return
        ours = (b["cpu_ticks"] - a["cpu_ticks"]) / hz
        busy = (b["busy"] - a["busy"]) / max(b["total"] - a["total"], 1)
        mine = f"ours {ours:,.1f} s = {ours / secs:.2f} cores; " if b["procs"] == a["procs"] and ours >= 0 else ""
        print(f"  cpu {label} ({secs:.0f} s): {mine}machine busy {busy * 200:.0f}% of 2 cores")
    if ramp_end:
        span(first, ramp_end, "ramp")
        held = [s for s in samples if s["t_ms"] >= ramp_end["t_ms"] and s["procs"] == ramp_end["procs"]]
        span(ramp_end, held[-1], "hold")
    else:
        span(first, final, "whole run")

# CPU of each side from bash's `times` after each was reaped (its workers included): "0m1.5s 0m2.0s".
def times(path):
    try:
        u, sy = open(path).read().splitlines()[-1].split()[:2]  # the children's line
    except (OSError, ValueError):
        return None
    sec = lambda x: int(x.split("m")[0]) * 60 + float(x.split("m")[1].rstrip("s"))
    return sec(u), sec(sy)
tl, tb = times(f"{out}/times.load"), times(f"{out}/times.both")
if tl and tb:
    ts = (tb[0] - tl[0], tb[1] - tl[1])
    answered = ld["requests"]["answered"] if ld else 0
    print(f"  cpu, whole run: load {tl[0]:,.1f} s user + {tl[1]:,.1f} s system; server {ts[0]:,.1f} s user + {ts[1]:,.1f} s system"
          + (f"; per request (connects included): load {sum(tl) / answered * 1e6:,.0f} us, server {sum(ts) / answered * 1e6:,.0f} us" if answered else ""))

# Slab caches that grew, peak vs before (active objects x object size).
def slabs(path):
    d = {}
    try:
        for line in open(path):
            f = line.split()
            if len(f) > 4 and not line.startswith(("#", "slabinfo")):
                d[f[0]] = int(f[1]) * int(f[3])
    except OSError:
        pass
    return d
b, p = slabs(f"{out}/slabinfo.before"), slabs(f"{out}/slabinfo.peak")
if b and p and samples:
    grew = sorted(((p[k] - b.get(k, 0), k) for k in p), reverse=True)[:10]
    print("  slabinfo, growth per socket: " + ", ".join(f"{k} {v / max(sockets, 1):,.0f} B" for v, k in grew if v > 0))

def counters(path):
    k = {}
    for line in open(path):
        f = line.split()
        if len(f) >= 2 and f[0][0].isalpha():
            k[f[0]] = int(f[1])
    return k
kb, ka = counters(f"{out}/nstat.before"), counters(f"{out}/nstat.after")
print("  nstat (system-wide, during the load): " + " ".join(f"{a}={v - kb.get(a, 0)}" for a, v in ka.items()))
