"""Runs the zoo: every training of zoo.py in parallel processes, one thread each, writing
``OUT/<name>.jsonl`` (the hook's frames) and ``OUT/manifest.json``.

    python3 python/zoo/run.py --out target/zoo [--jobs 2] [--only NAME ...] [--seeds 1 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _train(run_dict: dict, out_dir: str) -> dict:
    import zoo  # in the worker: torch is imported once per process

    run = zoo.Run(**run_dict)
    tmp = os.path.join(out_dir, f".{run.name}.jsonl.part")
    t0 = time.perf_counter()
    summary = zoo.train(run, tmp)
    os.replace(tmp, os.path.join(out_dir, f"{run.name}.jsonl"))
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def _read(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _num(v) -> float:
    return float(v) if v is not None else math.nan


def vanishing_layers(frames: list[dict], first: int = 20) -> tuple[list[str], list[str]]:
    """From a vanishing run's first ``first`` frames: (layers whose median gradient norm is below
    1e-6 of the largest layer's median: vanishing by any reading; layers below 1e-2 of it: may
    also be named). The judge wants every layer of the first list named and none outside the
    second."""
    names = list(frames[0]["values"])
    med = {}
    for n in names:
        xs = sorted(_num(f["values"][n]) for f in frames[:first])
        med[n] = xs[len(xs) // 2]
    top = max(med.values())
    return [n for n in names if med[n] < 1e-6 * top], [n for n in names if med[n] < 1e-2 * top]


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def _total(frame: dict) -> float:
    return math.sqrt(sum(_num(v) ** 2 for v in frame["values"].values()))


def _rel_moves(frames: list[dict], lo: int, hi: int) -> list[float]:
    """Between consecutive frames with ``params`` in steps [lo, hi] (the hook may send them
    every k-th step only): the largest relative change of a group's parameter norm, per step."""
    pf = [f for f in frames if "params" in f and lo <= f["step"] <= hi]
    out = []
    for fa, fb in zip(pf, pf[1:]):
        a, b = fa["params"], fb["params"]
        rel = max(abs(_num(b[g]) - _num(a[g])) / max(abs(_num(a[g])), 1e-30) for g in a)
        out.append(rel / (fb["step"] - fa["step"]))
    return out


def check_observable(entry: dict, frames: list[dict]) -> None:
    """Raises ValueError unless the fault shows in the frames at ``first_observable`` as this
    module's README says (so the judge's deadlines are fair). Frames are indexed by step."""
    fault = entry["fault"]
    if fault is None:
        return
    fo, k = entry["first_observable"], entry["fault_step"]
    by_step = {f["step"]: f for f in frames}
    if fo not in by_step:
        raise ValueError(f"{entry['name']}: no frame at the first observable step {fo}")
    at = by_step[fo]
    loss = _num(at["losses"]["loss"])
    before = [by_step[s] for s in range(max(0, k - 20), k)]

    def fail(why: str) -> None:
        raise ValueError(f"{entry['name']} ({fault}): does not show at step {fo}: {why}")

    if fault in ("lr_bug", "rnn_explode", "corrupt_batch", "label_bug"):
        med_loss = _median([_num(f["losses"]["loss"]) for f in before])
        med_norm = _median([_total(f) for f in before])
        factor = 10.0 if fault == "corrupt_batch" else 1.3
        if math.isfinite(loss) and loss < factor * med_loss and _total(at) < 3 * med_norm:
            fail(f"loss {loss:.4g} vs median {med_loss:.4g}, norm {_total(at):.4g} vs {med_norm:.4g}")
    elif fault == "dead_relu":
        dead = entry["dead_layers"]
        if any(_num(at["values"][n]) != 0.0 for n in dead) or any(
            _num(by_step[fo - 1]["values"][n]) == 0 for n in dead
        ):
            fail(f"{dead} are not exactly 0 at {fo} and alive at {fo - 1}")
    elif fault == "loss_scale_overflow":
        if all(math.isfinite(_num(v)) for v in at["values"].values()):
            fail("no non-finite norm")
        moves_before = _median(_rel_moves(frames, k - 20, k - 1))
        moves_after = _median(_rel_moves(frames, fo + 1, fo + 21))
        if not moves_after < 0.2 * moves_before:
            fail(f"weights still move: {moves_after:.3g}/step after, {moves_before:.3g} before")
    elif fault == "vanishing":
        if len(entry["vanishing_layers"]) < 5:
            fail(f"only {entry['vanishing_layers']} vanish")
    elif fault == "frozen_optimizer":
        # The weights of every frame from k on are those of frame k; the last frame with params
        # before k has others (the hook may send params every k-th step only).
        pf = [f for f in frames if "params" in f]
        frozen = [f["params"] for f in pf if f["step"] >= fo - 1]
        moving = [f["params"] for f in pf if f["step"] < fo - 1]
        if len(frozen) < 2 or any(p != frozen[0] for p in frozen) or not moving or moving[-1] == frozen[0]:
            fail("params not identical from this step on, or already before")
        if any(_num(v) == 0 for v in at["values"].values()):
            fail("a gradient is 0")


def manifest_entry(run, summary: dict, out_dir: str) -> dict:
    import zoo

    entry = {
        "name": run.name,
        "arch": run.arch,
        "fault": run.fault,
        "fault_step": run.fault_step,
        "first_observable": None,
        "expect": [],
        "fast": False,
        "stream": f"{run.name}.jsonl",
        "config": {
            k: v for k, v in dataclasses.asdict(run).items() if k not in ("name", "arch", "fault", "fault_step")
        },
        "summary": summary,
    }
    if run.fault is not None:
        expect, offset, fast = zoo.FAULTS[run.fault]
        entry.update(first_observable=run.fault_step + offset, expect=expect, fast=fast)
        if run.fault == "vanishing":
            sure, allowed = vanishing_layers(_read(os.path.join(out_dir, entry["stream"])))
            entry["vanishing_layers"] = sure
            entry["vanishing_layers_allowed"] = allowed
        if run.fault == "dead_relu":
            # the biased layer's ReLU is off: its own and every earlier layer's gradient is 0
            depth = run.arch_kw.get("depth", 5)
            layer = int(run.fault_kw["layer"][2:])
            entry["dead_layers"] = [f"fc{i}" for i in range(1, min(layer, depth) + 1)]
        if run.fault == "loss_scale_overflow":
            entry["followup"] = {"kind": "frozen", "within": 20}
        check_observable(entry, _read(os.path.join(out_dir, entry["stream"])))
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for the streams and manifest.json")
    ap.add_argument("--jobs", type=int, default=2, help="parallel training processes (default 2)")
    ap.add_argument("--only", nargs="*", help="run only these names (the manifest lists only them)")
    ap.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[1, 2],
        help="seeds of every configuration (default 1 2; others: a held-out zoo)",
    )
    args = ap.parse_args(argv)

    import zoo

    runs = zoo.all_runs(tuple(args.seeds))
    if args.only:
        unknown = set(args.only) - {r.name for r in runs}
        if unknown:
            ap.error(f"unknown run name(s): {sorted(unknown)}")
        runs = [r for r in runs if r.name in args.only]
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=ctx) as pool:
        futs = [pool.submit(_train, dataclasses.asdict(r), args.out) for r in runs]
        summaries = [f.result() for f in futs]
    wall = time.perf_counter() - t0
    entries = [manifest_entry(r, s, args.out) for r, s in zip(runs, summaries)]
    manifest = {
        "version": 1,
        "note": "frame s holds the loss and gradients at the weights before update s; see python/zoo/README.md",
        "wall_seconds": round(wall, 1),
        "jobs": args.jobs,
        "runs": entries,
    }
    tmp = os.path.join(args.out, ".manifest.json.part")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, os.path.join(args.out, "manifest.json"))
    n_fault = sum(1 for e in entries if e["fault"])
    print(f"zoo: {len(entries)} runs ({n_fault} with a fault) in {wall:.1f} s with {args.jobs} jobs -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
