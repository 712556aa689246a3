#!/usr/bin/env bash
# The one wheel for Python users, tested as a user gets it (CI runs this once, after the Rust
# tests so that target/release is warm):
#   1. `pip wheel .` from the repository root (maturin backend, pinned in pyproject.toml) builds
#      gradtone-<version>-py3-none-manylinux_*.whl: the `gradtone` executable + gradtone_hook;
#      its size (< 30 MB), tag, contents and metadata are checked;
#   2. the wheel goes into a fresh venv (--system-site-packages, only so that the torch already
#      installed by install_test_deps.sh is visible), installed offline, and everything after
#      runs with a PATH that holds no cargo or rustc;
#   3. `gradtone run --csv … -- python train.py` there: a tiny torch training with the hook
#      imported from the wheel; the CSV must hold one row per step whose loss and norms are the
#      ones the script computed itself (p.grad.norm()), and the script's exit status (3) must
#      come back.
# Any failure exits non-zero with a line saying what. Usage: bash python/tools/wheel_test.sh
# (PYTHON=... to build with another interpreter; KEEP=1 keeps the work folder).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
MAX_MB=30
STEPS=25
fail() { echo "wheel_test: FAILED: $*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gradtone-wheel.XXXXXX")"
if [ "${KEEP:-}" = 1 ]; then echo "wheel_test: work folder $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi

echo "== wheel_test: build (pip wheel . → maturin, release profile, the workspace's target/)"
t0=$(date +%s)
# maturin's PEP 517 hook builds a plain `linux` wheel (no audit) unless told otherwise: here it
# is told to make the distributable one, manylinux-tagged and checked (pyproject.toml: auditwheel).
MATURIN_PEP517_ARGS="--compatibility pypi" \
  "$PY" -m pip wheel --disable-pip-version-check --no-deps -w "$WORK/dist" . \
  || fail "pip wheel . did not build (see above)"
t1=$(date +%s)
shopt -s nullglob
wheels=("$WORK"/dist/*.whl)
[ "${#wheels[@]}" -eq 1 ] || fail "expected one wheel in $WORK/dist, found ${#wheels[@]}"
WHEEL="${wheels[0]}"
bytes=$(stat -c %s "$WHEEL")
echo "wheel_test: built $(basename "$WHEEL") in $((t1 - t0)) s, $bytes bytes"
[ "$bytes" -lt $((MAX_MB * 1024 * 1024)) ] || fail "the wheel is $bytes bytes, over $MAX_MB MB"

# The Cargo version is the wheel's (pyproject.toml: dynamic version).
CARGO_VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$CARGO_VERSION" ] || fail "no workspace.package version in Cargo.toml"
"$PY" - "$WHEEL" "$CARGO_VERSION" <<'PY' || fail "the wheel's name, tag or contents (above)"
import re, sys, zipfile
wheel, version = sys.argv[1], sys.argv[2]
name = wheel.rsplit("/", 1)[-1]
m = re.fullmatch(r"gradtone-([^-]+)-py3-none-(.+)\.whl", name)
assert m, f"unexpected wheel name {name} (want gradtone-VERSION-py3-none-PLATFORM.whl)"
assert m.group(1) == version, f"wheel version {m.group(1)} != Cargo's {version}"
tags = m.group(2).split(".")
assert all(re.fullmatch(r"manylinux_2_\d+_x86_64|manylinux2014_x86_64", t) for t in tags), f"not manylinux: {tags}"
print("wheel_test: platform tag", m.group(2))
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    exe = f"gradtone-{version}.data/scripts/gradtone"
    assert exe in names, f"no {exe} in the wheel: {names}"
    assert (z.getinfo(exe).external_attr >> 16) & 0o111, "the executable is not executable"
    for mod in ("__init__", "_hook", "_writer", "_format", "osc", "lightning", "hf"):
        assert f"gradtone_hook/{mod}.py" in names, f"gradtone_hook/{mod}.py missing: {names}"
    stray = [n for n in names if n.startswith(("tests/", "tools/", "gradtone_hook/tests", "python/"))]
    assert not stray, f"test or tool files in the wheel: {stray}"
    meta = z.read(f"gradtone-{version}.dist-info/METADATA").decode()
    for want in ("Name: gradtone\n", f"Version: {version}\n", "License-Expression: MIT OR Apache-2.0\n"):
        assert want in meta, f"METADATA lacks {want!r}"
    assert any(n.endswith("LICENSE-APACHE") for n in names) and any(n.endswith("LICENSE-MIT") for n in names)
    big = z.getinfo(exe).file_size
print(f"wheel_test: executable {big} bytes unpacked; gradtone_hook and licenses present")
PY

echo "== wheel_test: a fresh venv with the wheel, and no Rust on the PATH"
"$PY" -m venv --system-site-packages "$WORK/venv" || fail "$PY -m venv (Debian's python3 needs python3-venv)"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --disable-pip-version-check --no-index --no-deps "$WHEEL" \
  || fail "pip install of the wheel into the venv"
# PATH: the venv's bin, then the system's folders without any that hold cargo or rustc.
clean="$WORK/venv/bin"
IFS=: read -r -a dirs <<<"$PATH"
for d in "${dirs[@]}"; do
  [ -n "$d" ] && [ -d "$d" ] || continue
  [ -e "$d/cargo" ] || [ -e "$d/rustc" ] || [ -e "$d/rustup" ] || clean="$clean:$d"
done
run_clean() { env -u CARGO_HOME -u RUSTUP_HOME -u CARGO_TARGET_DIR -u PYTHONPATH PATH="$clean" "$@"; }
run_clean bash -c '! command -v cargo && ! command -v rustc' >/dev/null || fail "cargo or rustc still on the PATH: $clean"
where=$(run_clean bash -c 'command -v gradtone') || fail "no gradtone on the venv's PATH"
[ "$where" = "$WORK/venv/bin/gradtone" ] || fail "gradtone found at $where, not the venv's"
got=$(cd "$WORK" && run_clean gradtone --version) || fail "gradtone --version"
[ "$got" = "gradtone $CARGO_VERSION" ] || fail "gradtone --version said '$got', want 'gradtone $CARGO_VERSION'"
hook=$(cd "$WORK" && run_clean python -c 'import gradtone_hook; print(gradtone_hook.__file__)') \
  || fail "import gradtone_hook in the venv"
case "$hook" in "$WORK/venv/"*) ;; *) fail "gradtone_hook imported from $hook, not the venv" ;; esac
hook_version=$(cd "$WORK" && run_clean python -c 'import gradtone_hook; print(gradtone_hook.__version__)') \
  || fail "gradtone_hook.__version__ in the venv"
[ "$hook_version" = "$CARGO_VERSION" ] \
  || fail "gradtone_hook.__version__ is '$hook_version', want the wheel's $CARGO_VERSION"
echo "wheel_test: gradtone at $where ($got), gradtone_hook at $hook"

echo "== wheel_test: gradtone run --csv … -- python train.py, in the venv"
cat >"$WORK/train.py" <<'PY'
# A user's tiny training script: the hook from the wheel, its destination the default
# ($GRADTONE_TO, which `gradtone run` sets). It also keeps its own account of the norms.
import json, sys
import torch
from gradtone_hook import GradTone

steps = int(sys.argv[1])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
tone = GradTone(model)
x = torch.randn(64, 8)
y = (x.sum(1) > 0).long()
mine = []
for step in range(steps):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    tone.step(loss=loss)
    norms = {n: torch.sqrt(sum(p.grad.norm() ** 2 for p in m.parameters())).item()
             for n, m in model.named_children() if any(True for _ in m.parameters())}
    mine.append({"loss": loss.item(), "norms": norms})
    opt.step()
    print(f"step {step} loss {loss.item():.4f}")
json.dump(mine, open("mine.json", "w"))
tone.close()
sys.exit(3)
PY
set +e
(cd "$WORK" && run_clean gradtone run --no-live --csv run.csv -- python train.py "$STEPS" \
  >"$WORK/run.out" 2>"$WORK/run.err")
rc=$?
set -e
cat "$WORK/run.err" >&2
[ "$rc" -eq 3 ] || fail "gradtone run exited $rc, want the script's 3"
# stdout is the script's alone: its STEPS lines, nothing of gradtone's.
[ "$(grep -c '^step [0-9]* loss ' "$WORK/run.out")" -eq "$STEPS" ] && [ "$(wc -l <"$WORK/run.out")" -eq "$STEPS" ] \
  || fail "stdout is not the script's $STEPS lines: $(head -c 2000 "$WORK/run.out")"
"$PY" - "$WORK/run.csv" "$WORK/mine.json" "$STEPS" <<'PY' || fail "the CSV does not match the training (above)"
import csv, json, math, sys
path, mine_path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = list(csv.DictReader(open(path)))
mine = json.load(open(mine_path))
assert len(mine) == steps, f"the script recorded {len(mine)} steps"
assert len(rows) == steps, f"{len(rows)} CSV rows for {steps} steps"
for i, (row, want) in enumerate(zip(rows, mine)):
    assert int(row["step"]) == i, f"row {i}: step {row['step']}"
    loss = float(row["loss"])
    assert math.isclose(loss, want["loss"], rel_tol=1e-5), f"row {i}: loss {loss} vs {want['loss']}"
    names = [k for k in row if k not in ("step", "loss")]
    assert sorted(names) == sorted(want["norms"]), f"columns {names} vs modules {list(want['norms'])}"
    for n in names:
        v = float(row[n])
        assert math.isfinite(v) and v > 0, f"row {i} {n}: {v}"
        assert math.isclose(v, want["norms"][n], rel_tol=1e-5), f"row {i} {n}: {v} vs {want['norms'][n]}"
print(f"wheel_test: {len(rows)} rows, one per step, columns {names}; loss and norms = the script's own")
PY
echo "wheel_test: OK ($(basename "$WHEEL"), $bytes bytes, built in $((t1 - t0)) s)"
