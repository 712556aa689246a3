"""Judges gradtone's alarms on the zoo: runs the built ``gradtone`` over every stream of a zoo
directory (``run.py --out DIR``) and checks issue 23's criteria against ``manifest.json``.

    python3 python/zoo/judge.py DIR [--bin target/release/gradtone] [--table OUT.md]

Criteria (a "trouble" alarm is any alarm but ``plateau``):

- a fast fault (``"fast": true``) is caught by an alarm of an expected kind at its first
  observable step or one step later, with no trouble alarm before the first observable step;
- a label bug or a frozen optimizer: an expected alarm within 20 steps of the first observable
  step, no trouble alarm before it;
- vanishing gradients: a ``vanishing`` alarm within 20 steps of the first frame whose layers
  include every ``vanishing_layers`` entry and nothing outside ``vanishing_layers_allowed``;
- a fault with a ``followup`` (a loss-scale overflow leaves Adam crippled): the follow-up kind
  (``frozen``) after the catch, within its ``within`` steps of the first observable step;
- healthy runs: no trouble alarm at all, and at most one plateau alarm across all of them.

The alarms are read from ``--alarms FILE`` (JSON Lines: step, kind, layers, message, numbers).
``--stderr-alarms`` parses the ``alarm: step N: ALARM kind: ...`` lines on stderr instead, for a
binary without ``--alarms`` (layers are then unknown). Exit status 0 when every run passes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
#: A label bug, frozen optimizer or vanishing gradients must be heard within this many steps.
SLOW_WITHIN = 20
#: Healthy runs, all together, may raise at most this many plateau alarms.
HEALTHY_PLATEAUS = 1

_STDERR_ALARM = re.compile(r"^alarm: step (\d+): ALARM (\w+): (.*)$")


def default_binary() -> str:
    """``$GRADTONE_BIN``, else the checkout's release build."""
    return os.environ.get("GRADTONE_BIN") or os.path.join(REPO, "target", "release", "gradtone")


@dataclass
class Alarm:
    step: int
    kind: str
    layers: list[str] = field(default_factory=list)
    message: str = ""

    def __str__(self) -> str:
        shown = ", ".join(self.layers[:4]) + (f", … {len(self.layers)} in all" if len(self.layers) > 4 else "")
        return f"{self.kind}@{self.step}" + (f" [{shown}]" if self.layers else "")


def run_gradtone(binary: str, stream: str, workdir: str, stderr_alarms: bool) -> list[Alarm]:
    """The alarms gradtone raises on ``stream`` (rendered offline; only a CSV is written besides)."""
    base = os.path.join(workdir, os.path.basename(stream))
    cmd = [binary, "render", stream, "--csv", base + ".csv"]
    alarms_path = base + ".alarms.jsonl"
    if not stderr_alarms:
        cmd += ["--alarms", alarms_path]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-800:]}")
    if stderr_alarms:
        out = []
        for line in p.stderr.splitlines():
            m = _STDERR_ALARM.match(line.strip())
            if m:
                out.append(Alarm(int(m.group(1)), m.group(2), [], m.group(3)))
        return out
    if not os.path.isfile(alarms_path):
        raise RuntimeError(f"{binary} wrote no {alarms_path} (a binary without --alarms? try --stderr-alarms)")
    out = []
    with open(alarms_path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                out.append(
                    Alarm(
                        int(obj["step"]),
                        str(obj["kind"]),
                        [str(x) for x in obj.get("layers", [])],
                        str(obj.get("message", "")),
                    )
                )
            except (ValueError, KeyError, TypeError) as e:
                raise RuntimeError(f"{alarms_path}:{n}: not an alarm object ({e}): {line[:200]!r}") from None
    return out


def is_trouble(a: Alarm) -> bool:
    return a.kind != "plateau"


@dataclass
class Verdict:
    ok: bool
    caught: Alarm | None
    delay: int | None
    why: str


def judge_run(entry: dict, alarms: list[Alarm], first_step: int = 0) -> Verdict:
    """One run's verdict (healthy runs: only the trouble alarms; plateaus are counted by the caller)."""
    alarms = sorted(alarms, key=lambda a: a.step)
    fault = entry.get("fault")
    if not fault:
        trouble = [a for a in alarms if is_trouble(a)]
        if trouble:
            return Verdict(False, trouble[0], None, f"trouble alarm on a healthy run: {trouble[0]}")
        return Verdict(True, None, None, "quiet")

    fo = int(entry["first_observable"])
    v = _catch(entry, alarms, fo, first_step)
    early = [a for a in alarms if is_trouble(a) and a.step < fo]
    if early:
        return Verdict(False, v.caught, v.delay, f"trouble alarm before the fault shows: {early[0]}")
    return v


def _catch(entry: dict, alarms: list[Alarm], fo: int, first_step: int) -> Verdict:
    """Whether (and by which alarm) the fault is caught, ignoring earlier false alarms."""
    fault = entry["fault"]
    expect = set(entry.get("expect") or [])
    if fault == "vanishing":
        start = first_step
        sure = set(entry.get("vanishing_layers") or [])
        allowed = set(entry.get("vanishing_layers_allowed") or sure)
        cands = [a for a in alarms if a.kind == "vanishing" and a.step <= start + SLOW_WITHIN]
        if not cands:
            return Verdict(False, None, None, f"no vanishing alarm within {SLOW_WITHIN} steps of the start")
        a = cands[0]
        named = set(a.layers)
        if not sure <= named:
            return Verdict(False, a, a.step - fo, f"vanishing layers not named: {sorted(sure - named, key=_layer_key)}")
        if not named <= allowed:
            return Verdict(
                False, a, a.step - fo, f"named layers that do not vanish: {sorted(named - allowed, key=_layer_key)}"
            )
        return Verdict(True, a, a.step - fo, "named the vanishing layers")

    window = 1 if entry.get("fast") else SLOW_WITHIN
    cands = [a for a in alarms if a.kind in expect and fo <= a.step <= fo + window]
    if not cands:
        later = [a for a in alarms if a.kind in expect and a.step > fo + window]
        late = f" (first at {later[0]}, +{later[0].step - fo})" if later else ""
        return Verdict(False, None, None, f"no {'/'.join(sorted(expect))} alarm within +{window}{late}")
    caught = cands[0]
    follow = entry.get("followup")
    if follow:
        kind, within = follow["kind"], int(follow["within"])
        then = [a for a in alarms if a.kind == kind and caught.step < a.step <= fo + within]
        if not then:
            why = f"caught, but no {kind} alarm within +{within} (run left crippled)"
            return Verdict(False, caught, caught.step - fo, why)
        return Verdict(True, caught, caught.step - fo, f"caught, then {then[0]} (+{then[0].step - fo})")
    return Verdict(True, caught, caught.step - fo, "caught")


def _layer_key(name: str):
    m = re.match(r"^(\D*)(\d+)$", name)
    return (m.group(1), int(m.group(2))) if m else (name, 0)


def _first_step(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return int(json.loads(line)["step"])
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("zoo", help="directory with manifest.json and the streams (python/zoo/run.py --out)")
    ap.add_argument(
        "--bin",
        default=default_binary(),
        help="the gradtone binary (default: $GRADTONE_BIN, else target/release/gradtone)",
    )
    ap.add_argument("--table", help="also write the table (Markdown) to this file")
    ap.add_argument(
        "--stderr-alarms", action="store_true", help="parse stderr's alarm lines (a binary without --alarms)"
    )
    args = ap.parse_args(argv)

    if not os.path.isfile(args.bin):
        ap.error(f"{args.bin}: no gradtone binary; build it (cargo build --release -p gradtone) or pass --bin")
    manifest_path = os.path.join(args.zoo, "manifest.json")
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        ap.error(f"{manifest_path}: {e}; make the zoo first: python3 python/zoo/run.py --out {args.zoo}")

    rows = []
    fails = 0
    healthy_plateaus: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gradtone-judge-") as work:
        for e in manifest["runs"]:
            stream = os.path.join(args.zoo, e["stream"])
            try:
                alarms = run_gradtone(args.bin, stream, work, args.stderr_alarms)
            except (RuntimeError, OSError, subprocess.SubprocessError) as err:
                print(f"judge: {e['name']}: {err}", file=sys.stderr)
                return 2
            v = judge_run(e, alarms, _first_step(stream))
            if not e.get("fault"):
                healthy_plateaus += [f"{e['name']}: {a}" for a in alarms if a.kind == "plateau"]
            fails += not v.ok
            first = min(alarms, key=lambda a: a.step) if alarms else None
            rows.append(
                (
                    e["name"],
                    e.get("fault") or "—",
                    "—" if e.get("fault_step") is None else str(e["fault_step"]),
                    "—" if e.get("first_observable") is None else str(e["first_observable"]),
                    str(first) if first else "—",
                    str(v.caught) if v.caught and e.get("fault") else "—",
                    "—" if v.delay is None else f"{v.delay:+d}",
                    ("pass" if v.ok else "FAIL") + ("" if v.ok and v.why in ("caught", "quiet") else f": {v.why}"),
                )
            )
    plateau_ok = len(healthy_plateaus) <= HEALTHY_PLATEAUS
    head = ("run", "fault", "fault step", "first observable", "first alarm", "caught by", "delay", "verdict")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    n_fault = sum(1 for e in manifest["runs"] if e.get("fault"))
    n_ok_fault = sum(1 for r, e in zip(rows, manifest["runs"]) if e.get("fault") and r[-1].startswith("pass"))
    n_healthy = len(rows) - n_fault
    n_ok_healthy = sum(1 for r, e in zip(rows, manifest["runs"]) if not e.get("fault") and r[-1].startswith("pass"))
    summary = (
        f"faults caught: {n_ok_fault}/{n_fault}; healthy runs without a trouble alarm: {n_ok_healthy}/{n_healthy}; "
        f"plateau alarms on healthy runs: {len(healthy_plateaus)} (at most {HEALTHY_PLATEAUS}: "
        f"{'pass' if plateau_ok else 'FAIL'})"
        + (f" [{'; '.join(healthy_plateaus)}]" if healthy_plateaus else "")
        + (" (alarms parsed from stderr)" if args.stderr_alarms else "")
    )
    text = "\n".join(lines) + "\n\n" + summary + "\n"
    print(text, end="")
    if args.table:
        with open(args.table, "w", encoding="utf-8") as f:
            f.write(text)
    return 0 if fails == 0 and plateau_ok else 1


if __name__ == "__main__":
    sys.exit(main())
