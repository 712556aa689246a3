"""Receives gradtone OSC bundles with python-osc and checks their content.

Usage: python3 recv_osc.py FRAMES [TIMEOUT_S]

Binds 127.0.0.1 on a free port and prints "PORT <n>" (flushed), then expects FRAMES frames
built as in the Rust test `python_osc_receives_frames`:
  step k = 1000 + k; values conv1 = 0.1·(k+1), fc1 = 2^k (NaN at k = 3), indices 0, 1;
  loss "loss" = 1/(k+1); one alarm "nan" at k = 3.
Exits 0 with an "OK ..." line; raises on a mismatch or when TIMEOUT_S (default 10) passes.
"""
import math
import socket
import sys
import time

from pythonosc.osc_packet import OscPacket


def main() -> None:
    frames = int(sys.argv[1])
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print(f"PORT {sock.getsockname()[1]}", flush=True)

    deadline = time.monotonic() + timeout
    got = {}  # step -> {"values": [...], "losses": [...], "alarms": [...]}
    current = None
    while len(got) < frames:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"got {len(got)} of {frames} frames in {timeout} s")
        sock.settimeout(left)
        data = sock.recv(65536)
        for timed in OscPacket(data).messages:
            m = timed.message
            if m.address == "/gradtone/step":
                current = got.setdefault(m.params[0], {"values": [], "losses": [], "alarms": []})
            elif m.address == "/gradtone/value":
                current["values"].append(tuple(m.params))
            elif m.address == "/gradtone/loss":
                current["losses"].append(tuple(m.params))
            elif m.address == "/gradtone/alarm":
                current["alarms"].append(tuple(m.params))
            else:
                raise AssertionError(f"unexpected address {m.address}")

    alarms = 0
    for k in range(frames):
        f = got[1000 + k]
        (n0, v0, i0), (n1, v1, i1) = f["values"]
        assert (n0, i0, n1, i1) == ("conv1", 0, "fc1", 1), f["values"]
        assert math.isclose(v0, 0.1 * (k + 1), rel_tol=1e-6), (k, v0)
        if k == 3:
            assert math.isnan(v1), (k, v1)
            assert f["alarms"] == [("nan", "step 1003: value fc1 = NaN")], f["alarms"]
        else:
            assert math.isclose(v1, 2.0 ** k, rel_tol=1e-6), (k, v1)
            assert f["alarms"] == [], (k, f["alarms"])
        ((ln, lv),) = f["losses"]
        assert ln == "loss" and math.isclose(lv, 1.0 / (k + 1), rel_tol=1e-6), (k, ln, lv)
        alarms += len(f["alarms"])
    print(f"OK recv_osc: {frames} frames, {alarms} alarm", flush=True)


if __name__ == "__main__":
    main()
