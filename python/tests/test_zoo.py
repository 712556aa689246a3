"""The zoo (python/zoo): its faults show in the frames where the manifest says, and the judge's
rules say pass and fail where issue 23 does. The full zoo and its judging run as their own CI step
(python/zoo/README.md); here one run per fault kind and the judge's rules on made-up alarms."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, need_torch, skip_or_fail

sys.path.insert(0, os.path.join(REPO, "python", "zoo"))

import judge  # noqa: E402
from judge import Alarm, judge_run  # noqa: E402

# -- the judge's rules ----------------------------------------------------------------------------

FAST = {"name": "x", "fault": "lr_bug", "fault_step": 10, "first_observable": 11, "expect": ["explosion"], "fast": True}


def test_fast_fault_at_plus_zero_or_one_passes_later_fails():
    assert judge_run(FAST, [Alarm(11, "explosion")]).ok
    assert judge_run(FAST, [Alarm(12, "explosion")]).delay == 1
    assert judge_run(FAST, [Alarm(12, "explosion")]).ok
    v = judge_run(FAST, [Alarm(13, "explosion")])
    assert not v.ok and "+2" in v.why
    assert not judge_run(FAST, [Alarm(11, "layer_dead")]).ok  # not a kind that names this fault
    assert not judge_run(FAST, []).ok


def test_trouble_before_the_fault_fails_a_plateau_does_not():
    assert not judge_run(FAST, [Alarm(3, "explosion"), Alarm(11, "explosion")]).ok
    assert not judge_run(FAST, [Alarm(10, "divergence"), Alarm(11, "explosion")]).ok
    assert judge_run(FAST, [Alarm(3, "plateau"), Alarm(11, "explosion")]).ok
    # after the catch, consequences may sound
    assert judge_run(FAST, [Alarm(11, "explosion"), Alarm(12, "layer_dead")]).ok


def test_slow_faults_have_twenty_steps():
    e = {"name": "f", "fault": "frozen_optimizer", "fault_step": 50, "first_observable": 51, "expect": ["frozen"]}
    assert judge_run(e, [Alarm(71, "frozen")]).ok
    assert not judge_run(e, [Alarm(72, "frozen")]).ok


def test_followup_is_required():
    e = {"name": "o", "fault": "loss_scale_overflow", "fault_step": 5, "first_observable": 5, "expect": ["non_finite"]}
    e.update(fast=True, followup={"kind": "frozen", "within": 20})
    assert not judge_run(e, [Alarm(5, "non_finite")]).ok
    assert not judge_run(e, [Alarm(5, "non_finite"), Alarm(26, "frozen")]).ok
    assert judge_run(e, [Alarm(5, "non_finite"), Alarm(25, "frozen")]).ok


def test_vanishing_must_name_the_layers_and_no_healthy_one():
    e = {"name": "v", "fault": "vanishing", "fault_step": 0, "first_observable": 0, "expect": ["vanishing"]}
    e.update(vanishing_layers=["fc1", "fc2"], vanishing_layers_allowed=["fc1", "fc2", "fc3"])
    assert judge_run(e, [Alarm(4, "vanishing", ["fc1", "fc2", "fc3"])]).ok
    assert not judge_run(e, [Alarm(4, "vanishing", ["fc1"])]).ok
    assert not judge_run(e, [Alarm(4, "vanishing", ["fc1", "fc2", "fc9"])]).ok
    assert not judge_run(e, [Alarm(21, "vanishing", ["fc1", "fc2"])]).ok
    assert not judge_run(e, [Alarm(2, "layer_dead", ["fc12"])]).ok


def test_healthy_runs_allow_only_plateaus():
    h = {"name": "h", "fault": None}
    assert judge_run(h, [Alarm(200, "plateau")]).ok
    assert not judge_run(h, [Alarm(42, "explosion")]).ok


# -- the zoo's own trainings -------------------------------------------------------------------------

ONE_PER_KIND = [
    "cnn_lr_bug_s1",
    "mlp_corrupt_nan_s1",
    "mlp_label_shuffle_s1",
    "mlp5_dead_relu_s1",
    "rnn_explode_s1",
    "gru_loss_scale_overflow_s2",
    "mlp20_sigmoid_vanishing_s1",
    "lstm_frozen_optimizer_s1",
    "mlp_sgd_s1",
]


@pytest.fixture(scope="module")
def small_zoo(tmp_path_factory):
    need_torch()
    out = tmp_path_factory.mktemp("zoo")
    # run.py checks every fault against its frames (check_observable) before writing the manifest
    p = subprocess.run(
        [sys.executable, os.path.join(REPO, "python", "zoo", "run.py"), "--out", str(out), "--only", *ONE_PER_KIND],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    with open(out / "manifest.json", encoding="utf-8") as f:
        return out, json.load(f)


def _frames(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_zoo_covers_the_issue():
    import run  # noqa: F401  (importable without torch)

    zoo = _import_zoo()
    faults = zoo.fault_runs()
    healthy = zoo.healthy_runs()
    assert len({r.fault for r in faults}) >= 8
    assert len({r.arch for r in faults}) >= 4
    configs = {r.name.rsplit("_s", 1)[0] for r in healthy}
    assert len(configs) >= 10 and len(healthy) == 2 * len(configs)
    assert {"lstm", "gru", "transformer", "resnet"} <= {r.arch for r in healthy}
    assert any(r.batch == 4 for r in healthy) and any(r.sched == "warmup_cosine" for r in healthy)
    assert {"sgd", "adam", "adamw"} <= {"sgd" if r.opt == "momentum" else r.opt for r in healthy}


def _import_zoo():
    need_torch()
    import zoo

    return zoo


def test_faults_show_where_the_manifest_says(small_zoo):
    out, manifest = small_zoo
    runs = {e["name"]: e for e in manifest["runs"]}
    assert set(runs) == set(ONE_PER_KIND)
    for e in runs.values():
        frames = _frames(out / e["stream"])
        # The hook's default: the weights' norms in the first frames, then on its budget (these
        # CPU steps are short: every few frames).
        assert frames[0]["step"] == 0 and "params" in frames[0] and "params" in frames[1]
        assert 0 < sum("params" in f for f in frames) < len(frames)
        assert all(list(f["params"]) == list(f["values"]) for f in frames if "params" in f)
    fr = runs["lstm_frozen_optimizer_s1"]
    frames = _frames(out / fr["stream"])
    fo = fr["first_observable"]
    assert fo == fr["fault_step"] + 1
    # every frame from fo-1 (the fault step, whose update was the first one skipped) has the same
    # weights; the last one with params before it has others
    after = [f["params"] for f in frames[fo - 1 :] if "params" in f]
    before = [f["params"] for f in frames[: fo - 1] if "params" in f]
    assert len(after) > 5 and all(p == after[0] for p in after)
    assert before[-1] != after[0]
    van = runs["mlp20_sigmoid_vanishing_s1"]
    assert van["vanishing_layers"][:5] == ["fc1", "fc2", "fc3", "fc4", "fc5"]
    assert "fc20" not in van["vanishing_layers_allowed"]


def test_check_observable_rejects_a_fault_that_does_not_show(small_zoo):
    import run

    out, manifest = small_zoo
    healthy = next(e for e in manifest["runs"] if e["fault"] is None)
    frames = _frames(out / healthy["stream"])
    for fault, extra in [
        ("frozen_optimizer", {}),
        ("lr_bug", {}),
        ("loss_scale_overflow", {}),
        ("dead_relu", {"dead_layers": ["fc1"]}),
    ]:
        e = dict(healthy, fault=fault, fault_step=150, first_observable=151, **extra)
        with pytest.raises(ValueError, match="does not show"):
            run.check_observable(e, frames)


def test_judge_runs_the_binary_on_a_zoo_stream(small_zoo, tmp_path):
    """The judge's plumbing against the real binary: the NaN batch is caught at its step."""
    binary = judge.default_binary()
    if not os.path.isfile(binary):
        skip_or_fail(f"*** SKIPPED: no gradtone binary at {binary} (cargo build --release -p gradtone) ***")
    help_text = subprocess.run([binary, "render", "--help"], capture_output=True, text=True).stdout
    stderr_mode = "--alarms" not in help_text
    out, manifest = small_zoo
    e = next(e for e in manifest["runs"] if e["name"] == "mlp_corrupt_nan_s1")
    alarms = judge.run_gradtone(binary, str(out / e["stream"]), str(tmp_path), stderr_mode)
    v = judge_run(e, alarms)
    assert v.ok and v.caught.kind == "non_finite" and v.delay == 0, (v, alarms)
