#!/usr/bin/env python3
"""What the live page (`--serve`) costs the process it runs in, in memory.

Starts `gradtone listen --udp --serve` on 127.0.0.1 (free ports), feeds it frames like a run
(its 3 minutes of audio history filled first, so the baseline is the steady state), and reads
its RSS from /proc while, on 127.0.0.1 only:

1. 500 WebSocket clients connect and never read (a page frozen in a background tab, or a
   hostile client): peak RSS over the baseline (target: under 100 MB);
2. rounds of 60 ordinary pages come (each reads the hello and the history), stay a second and
   go: RSS after each round, once freed memory had time to go back (target: within 32 MB of
   the baseline).

Prints each number and the verdict; exits 1 when a target is missed. Run from the repository
root after `cargo build --release -p gradtone`:

    python3 scripts/serve_memory.py [--bin target/release/gradtone] [--clients 500]
        [--rounds 4] [--pages 60] [--settle 22]
"""

import argparse
import json
import math
import re
import socket
import subprocess
import sys
import threading
import time


def rss_mb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def frame(step):
    k = float(step)
    values = {
        "conv1": 0.5 + 0.3 * math.sin(k / 50),
        "conv2": 1.5 + 0.2 * math.cos(k / 30),
        "fc1": 0.8 + 0.1 * math.sin(k / 7),
        "fc2": 0.3 + 0.05 * math.cos(k / 11),
    }
    return json.dumps({"step": step, "loss": 2.0 / (1 + k / 100), "values": values}) + "\n"


def upgrade(port, read):
    """A WebSocket client (raw socket): connects, upgrades; reads everything when `read`."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ).encode()
    )
    if not read:
        return s, 0
    got = 0
    s.settimeout(0.5)
    t0 = time.time()
    # The hello and the history, until the stream is down to the live rate or 8 s passed.
    while time.time() - t0 < 8:
        try:
            b = s.recv(1 << 20)
        except socket.timeout:
            break
        if not b:
            break
        got += len(b)
    return s, got


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/gradtone")
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--pages", type=int, default=60)
    ap.add_argument("--hold", type=float, default=25.0, help="seconds the non-readers stay")
    ap.add_argument("--settle", type=float, default=22.0, help="seconds after a round")
    a = ap.parse_args()

    p = subprocess.Popen(
        [a.bin, "listen", "--no-live", "--udp", "127.0.0.1:0", "--serve", "0",
         "--serve-linger", "0", "--idle-timeout", "600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    udp = None
    for line in p.stderr:
        m = re.search(r"udp://(\S+)", line)
        if m:
            udp = m.group(1)
            break
    host, uport = udp.rsplit(":", 1)
    feed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    feed.sendto(frame(0).encode(), (host, int(uport)))
    port = None
    for line in p.stderr:
        m = re.search(r"serving the live page at http://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = int(m.group(1))
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()

    # Fill the 3-minute audio history (80 ms a step: 2,300 steps), then feed in real time.
    step = 1
    for _ in range(2300):
        feed.sendto(frame(step).encode(), (host, int(uport)))
        step += 1
        time.sleep(0.001)
    stop = threading.Event()

    def feeder():
        nonlocal step
        while not stop.is_set():
            feed.sendto(frame(step).encode(), (host, int(uport)))
            step += 1
            time.sleep(0.08)

    threading.Thread(target=feeder, daemon=True).start()
    time.sleep(8)
    base = rss_mb(p.pid)
    print(f"baseline RSS {base:.0f} MB (steps so far {step})", flush=True)

    # 1. Clients that never read.
    stuck = []
    for _ in range(a.clients):
        stuck.append(upgrade(port, read=False)[0])
    peak = base
    t0 = time.time()
    while time.time() - t0 < a.hold:
        peak = max(peak, rss_mb(p.pid))
        time.sleep(0.2)
    for s in stuck:
        s.close()
    time.sleep(a.settle)
    after_stuck = rss_mb(p.pid)
    print(f"{a.clients} non-reading clients: peak RSS {peak:.0f} MB (+{peak - base:.0f} MB); "
          f"after they left {after_stuck:.0f} MB (+{after_stuck - base:.0f} MB)", flush=True)

    # 2. Rounds of pages that come and go.
    rounds = []
    for r in range(a.rounds):
        got = []

        def page():
            s, n = upgrade(port, read=True)
            got.append(n)
            time.sleep(1.0)
            s.close()

        ts = [threading.Thread(target=page) for _ in range(a.pages)]
        rpeak = rss_mb(p.pid)
        for t in ts:
            t.start()
        while any(t.is_alive() for t in ts):
            rpeak = max(rpeak, rss_mb(p.pid))
            time.sleep(0.1)
        time.sleep(a.settle)
        now = rss_mb(p.pid)
        rounds.append(now)
        print(f"round {r + 1}: {a.pages} pages read {sum(got) / len(got) / 1e6:.1f} MB each "
              f"(peak RSS {rpeak:.0f} MB); after it RSS {now:.0f} MB ({now - base:+.0f} MB)",
              flush=True)
    stop.set()
    hwm = rss_mb(p.pid, "VmHWM")
    p.terminate()
    p.wait(timeout=10)

    ok_peak = peak - base <= 100
    ok_rounds = all(abs(x - base) <= 32 for x in rounds)
    print(f"RESULT baseline {base:.0f} MB; {a.clients} non-readers +{peak - base:.0f} MB "
          f"(target <= 100: {'ok' if ok_peak else 'MISSED'}); after {a.rounds} rounds of "
          f"{a.pages} pages {rounds[-1] - base:+.0f} MB, worst "
          f"{max(abs(x - base) for x in rounds):.0f} MB (target <= 32: "
          f"{'ok' if ok_rounds else 'MISSED'}); VmHWM {hwm:.0f} MB")
    sys.exit(0 if ok_peak and ok_rounds else 1)


if __name__ == "__main__":
    main()
