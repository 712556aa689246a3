"""The recorded fixtures (fixtures/*.jsonl) follow docs/stream-format.md. No torch needed."""

import csv
import json
import math
import os

import pytest
from conftest import REPO

FIX = os.path.join(REPO, "fixtures")
SHARED = os.environ.get("GRADTONE_SHARED", "/work/shared")


def load(name):
    def bad(tok):
        raise ValueError(f"bare non-finite token {tok!r}")

    path = os.path.join(FIX, name)
    assert os.path.getsize(path) < 200_000, "fixtures stay small"
    with open(path, "rb") as f:
        raw = f.read()
    assert raw.endswith(b"\n") and b"\r" not in raw
    return [json.loads(line, parse_constant=bad) for line in raw.decode("utf-8").splitlines()]


def check_frame(o):
    assert o["v"] == 1 and isinstance(o["step"], int) and o["step"] >= 0
    for v in list(o["values"].values()) + list(o.get("losses", {}).values()):
        assert isinstance(v, float) or v in ("nan", "inf", "-inf"), v


def test_mnist_fixture_matches_reference_trajectory():
    rows = load("pytorch_mnist_seed.jsonl")
    assert [o["step"] for o in rows] == list(range(201))
    for o in rows:
        check_frame(o)
        assert list(o["values"]) == ["conv1", "conv2", "fc1", "fc2"]
        assert list(o["losses"]) == ["loss"] and "rank" not in o
    ts = [o["t"] for o in rows]
    assert ts == sorted(ts)
    ref = os.path.join(SHARED, "reference", "pytorch", "trajectories", "sgd_lr0.1_bs10_seed1.csv")
    if not os.path.exists(ref):
        pytest.skip(f"*** SKIPPED: reference trajectory {ref} not present (set GRADTONE_SHARED) ***")
    with open(ref) as f:
        want = list(csv.DictReader(f))
    assert len(want) == len(rows)
    worst = 0.0
    for o, w in zip(rows, want):
        for k in ("conv1", "conv2", "fc1", "fc2"):
            worst = max(worst, abs(o["values"][k] - float(w[k])) / float(w[k]))
        assert o["losses"]["loss"] == pytest.approx(float(w["loss"]), rel=1e-6)
    assert worst <= 1e-6, worst  # measured: 0 (bit-identical to the reference run)


def _per_rank(rows):
    by = {}
    for o in rows:
        check_frame(o)
        assert o["world"] == 4 and list(o["values"]) == ["fc1", "fc2", "fc3"]
        by.setdefault(o["rank"], []).append(o)
    assert sorted(by) == [0, 1, 2, 3]
    for r, lines in by.items():
        assert [o["step"] for o in lines] == list(range(50)), r  # each rank's own lines in order
    return by


def _max_lag(rows, rank):
    last, worst = {}, 0
    for o in rows:
        last[o["rank"]] = o["step"]
        if rank in last:
            worst = max(worst, max(last.values()) - last[rank])
    return worst


def test_ddp_fixture_ranks_interleaved_with_a_lagging_rank():
    rows = load("pytorch_ddp_4ranks.jsonl")
    by = _per_rank(rows)
    for step in range(50):
        vals = [by[r][step]["values"] for r in range(4)]
        assert all(v == vals[0] for v in vals[1:])  # all-reduced gradients: same norms
        assert len({by[r][step]["losses"]["loss"] for r in range(4)}) == 4  # own data
    # Rank 3 sleeps before its frame: its line of a step arrives after the other ranks' lines.
    last_of_step = {}
    for o in rows:
        last_of_step[o["step"]] = o["rank"]
    assert sum(1 for r in last_of_step.values() if r == 3) >= 45
    assert _max_lag(rows, 3) == 1


def test_localsgd_fixture_lag_grows_between_syncs():
    rows = load("pytorch_localsgd_4ranks.jsonl")
    by = _per_rank(rows)
    assert by[0][5]["values"] != by[1][5]["values"]  # no gradient all-reduce: ranks differ
    assert _max_lag(rows, 3) >= 5
    assert all(math.isfinite(v) for o in rows for v in o["values"].values())
