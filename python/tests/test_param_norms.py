"""The frame's optional ``params`` (each group's weight norm): right numbers, same sync, and what a
frozen optimizer looks like. The plain hook and both framework callbacks."""

import io
import json
import math

import pytest
from test_frameworks import need, read_frames
from test_hook import backward, make_model, strict_loads


def _frames(buf):
    return [strict_loads(x) for x in buf.getvalue().splitlines()]


@pytest.mark.parametrize("group_by", ["module", "tensor"])
def test_params_are_each_groups_weight_norm(torch, group_by):
    from gradtone_hook import GradTone

    model = make_model(torch)
    buf = io.StringIO()
    tone = GradTone(model, to=buf, group_by=group_by, strict=True)
    frame = tone.step(loss=backward(torch, model))
    (obj,) = _frames(buf)
    assert list(obj["params"]) == list(obj["values"]) == tone.names  # same names, same order
    assert frame["params"] == obj["params"]
    groups = {}
    for n, p in model.named_parameters():
        g = n if group_by == "tensor" else n.rpartition(".")[0]
        groups.setdefault(g, []).append(p.detach())
    for g, ps in groups.items():
        want = torch.linalg.vector_norm(torch.cat([p.flatten() for p in ps])).item()
        assert obj["params"][g] == pytest.approx(want, rel=1e-6), g
    # Parameter norms are not gradient norms (a test that would catch a mix-up).
    fc1 = "fc1" if group_by == "module" else "fc1.weight"
    assert obj["params"][fc1] != pytest.approx(obj["values"][fc1], rel=1e-3)


def test_params_off_and_extra_values_have_none(torch):
    from gradtone_hook import GradTone

    model = make_model(torch)
    buf = io.StringIO()
    tone = GradTone(model, to=buf, strict=True, param_norms=False)
    tone.step(loss=backward(torch, model))
    tone2 = GradTone(model, to=buf, strict=True)
    tone2.step(loss=backward(torch, model), values={"lr": 0.1})
    off, on = _frames(buf)
    assert "params" not in off
    assert "lr" in on["values"] and "lr" not in on["params"]


def test_params_are_read_in_the_same_single_sync(torch, monkeypatch):
    """On a device, the gradients', the weights' norms and the loss come back in one .tolist()
    (the device read, run here on CPU tensors); on the CPU, each norm is read as it is (nothing
    to sync with), and the frame is the same."""
    from gradtone_hook import GradTone

    model = make_model(torch)
    loss = backward(torch, model)
    on_cpu = GradTone(model, to=io.StringIO(), group_by="tensor", strict=True).step(loss=loss)
    tone = GradTone(model, to=io.StringIO(), group_by="tensor", strict=True)
    monkeypatch.setattr(tone, "_on_host", lambda ts: False)
    calls = []
    for meth in ("tolist", "item", "cpu", "__float__"):
        orig = getattr(torch.Tensor, meth)

        def wrapped(self, *a, _orig=orig, _m=meth, **k):
            calls.append(_m)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, meth, wrapped)
    frame = tone.step(loss=loss)
    assert calls == ["tolist"]
    assert len(frame["params"]) == len(frame["values"]) > 0
    assert {k: frame[k] for k in ("values", "params", "losses")} == {
        k: on_cpu[k] for k in ("values", "params", "losses")
    }


def test_frozen_optimizer_shows_bit_identical_params(torch):
    """optimizer.step() skipped from step 3: from frame 4 on the params repeat exactly while the
    gradients are not zero; before, every frame's params differ from the previous one."""
    from gradtone_hook import GradTone

    model = make_model(torch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    buf = io.StringIO()
    tone = GradTone(model, to=buf, strict=True, param_norms="every")
    for step in range(8):
        loss = backward(torch, model, seed=step)
        tone.step(loss=loss)
        if step < 3:
            opt.step()
    frames = _frames(buf)
    for prev, cur in zip(frames, frames[1:]):
        moved = cur["step"] <= 3
        if moved:
            assert all(cur["params"][g] != prev["params"][g] for g in tone.names), cur["step"]
        else:
            assert cur["params"] == prev["params"], cur["step"]  # bit-identical
        assert all(v > 0 for v in cur["values"].values())


def test_nan_weights_become_strings(torch):
    from gradtone_hook import GradTone

    model = make_model(torch)
    with torch.no_grad():
        model.fc1.weight[0, 0] = float("nan")
        model.conv1.weight[0, 0, 0, 0] = float("inf")
    buf = io.StringIO()
    GradTone(model, to=buf, strict=True).step()
    line = buf.getvalue()
    obj = strict_loads(line)
    assert obj["params"]["fc1"] == "nan" and obj["params"]["conv1"] == "inf"
    assert obj["params"]["bn"] == pytest.approx(
        torch.linalg.vector_norm(torch.cat([model.bn.weight, model.bn.bias])).item()
    )


# "auto" (the default) with a budget nobody can meet: the weights are read in frames 0 and 1 (k
# is 1 until the time between frames is known), then every 4th frame only.
TINY_BUDGET = {"param_budget": 1e-9}
EVERY = {"param_norms": "every"}


@pytest.mark.parametrize("kw", [EVERY, TINY_BUDGET], ids=["every", "tiny_budget"])
def test_lightning_callback_params_are_the_weights_before_the_step(tmp_path, kw):
    need("lightning")
    import lightning.pytorch as pl
    import torch

    from gradtone_hook.lightning import GradToneCallback

    class Lin(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(6, 3)
            self.out = torch.nn.Linear(3, 2)

        def training_step(self, batch, _i):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.out(self.fc(x).relu()), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    class Reference(pl.Callback):
        def __init__(self):
            self.params = []
            self.grads = []  # before Lightning clips (it clips after this hook)

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.params.append({n: p.detach().norm().item() for n, p in pl_module.named_parameters()})
            self.grads.append({n: p.grad.norm().item() for n, p in pl_module.named_parameters()})

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(torch.randn(16, 6, generator=g), torch.randint(0, 2, (16,), generator=g))
    out = tmp_path / "frames.jsonl"
    ref = Reference()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        callbacks=[ref, GradToneCallback(to=str(out), group_by="tensor", strict=True, **kw)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(Lin(), torch.utils.data.DataLoader(data, batch_size=4))
    frames = read_frames(out)
    assert len(frames) == len(ref.params) == 3
    for f, gr in zip(frames, ref.grads):
        assert f["values"] == gr  # every frame, p.grad.norm() exactly
    if kw is TINY_BUDGET:
        assert "params" not in frames[2]
        frames, ref.params = frames[:2], ref.params[:2]
    for f, r in zip(frames, ref.params):
        assert list(f["params"]) == list(f["values"]) == list(r)
        for n, v in r.items():
            assert f["params"][n] == pytest.approx(v, rel=1e-6), n
    assert frames[0]["params"] != frames[-1]["params"]


@pytest.mark.parametrize("kw", [EVERY, TINY_BUDGET], ids=["every", "tiny_budget"])
def test_hf_callback_params_are_the_weights_before_the_step(tmp_path, kw):
    need("transformers")
    need("accelerate")
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

    from gradtone_hook.hf import GradToneCallback

    config = BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
        max_position_embeddings=8,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            ids = torch.tensor([(i * 7 + k) % 29 + 1 for k in range(6)])
            return {"input_ids": ids, "labels": torch.tensor(i % 2)}

    class Reference(TrainerCallback):
        def __init__(self):
            self.params = []

        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            self.params.append({n: p.detach().norm().item() for n, p in model.named_parameters() if p.requires_grad})

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        max_steps=3,
        learning_rate=5e-2,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    ref = Reference()
    out = tmp_path / "frames.jsonl"
    Trainer(
        model=model,
        args=args,
        train_dataset=Data(),
        callbacks=[ref, GradToneCallback(to=str(out), group_by="tensor", strict=True, **kw)],
    ).train()
    frames = read_frames(out)
    assert len(frames) == len(ref.params) == 3
    assert all(len(f["values"]) == len(ref.params[0]) for f in frames)  # the gradients: every frame
    if kw is TINY_BUDGET:
        assert "params" not in frames[2]
        frames, ref.params = frames[:2], ref.params[:2]
    for f, r in zip(frames, ref.params):
        assert list(f["params"]) == list(f["values"])
        for n, v in r.items():
            assert f["params"][n] == pytest.approx(v, rel=1e-5), n
    assert json.dumps(frames[0]["params"]) != json.dumps(frames[-1]["params"])


def _budget_run(torch, steps, pause=0.0, **kw):
    """``steps`` SGD steps of the test model with ``GradTone(..., **kw)``: the frames, the hook,
    and each step's gradient norms as ``p.grad.norm()`` gives them (by group, ``group_by="tensor"``)."""
    import time

    from gradtone_hook import GradTone

    model = make_model(torch)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    buf = io.StringIO()
    tone = GradTone(model, to=buf, group_by="tensor", strict=True, wall_time=False, **kw)
    grads = []
    for step in range(steps):
        opt.zero_grad()
        loss = backward(torch, model, seed=step)
        grads.append({n: p.grad.norm().item() for n, p in model.named_parameters()})
        tone.step(loss=loss)
        opt.step()
        time.sleep(pause)  # the rest of a (slow) training step
    return _frames(buf), tone, grads


def test_budget_reads_the_weights_every_step_when_steps_are_slow(torch):
    """A budget of the whole step, steps of 20 ms: reading the weights always fits, k stays 1."""
    frames, tone, grads = _budget_run(torch, 8, pause=0.02, param_budget=1.0)
    assert [("params" in f) for f in frames] == [True] * 8
    assert tone._budget.k == 1
    assert [f["values"] for f in frames] == grads


def test_budget_reads_the_weights_every_kth_step_and_the_gradients_every_step(torch):
    """A budget nobody meets: k goes to its bound, 4, once the step time is known (after frame
    1); the weights are read in frames 0, 1, 5, 9, ...; every frame has every gradient norm, equal
    to p.grad.norm(); a frame with params has the weights' norms before that step's update."""
    from gradtone_hook._hook import PARAM_EVERY_MAX

    frames, tone, grads = _budget_run(torch, 40, **TINY_BUDGET)
    assert PARAM_EVERY_MAX == 4 and tone._budget.k == PARAM_EVERY_MAX
    assert [f["step"] for f in frames if "params" in f] == [0, 1, *range(5, 40, 4)]
    assert [f["values"] for f in frames] == grads
    assert all(list(f["params"]) == list(f["values"]) for f in frames if "params" in f)
    # The same run with the weights read every step gives the same numbers where both have them.
    every, _, _ = _budget_run(torch, 40, **EVERY)
    for f, e in zip(frames, every):
        assert f["values"] == e["values"]
        if "params" in f:
            assert f["params"] == e["params"]


@pytest.mark.parametrize(
    "base_ms, read_ms, want_k",
    [(0.05, 0.01, 1), (0.05, 0.06, 2), (0.07, 0.08, 3), (0.05, 0.19, 4), (0.09, 5.0, 4), (0.2, 0.01, 4)],
)
def test_budget_k_is_the_smallest_that_fits_and_bounded(monkeypatch, base_ms, read_ms, want_k):
    """1 % of a 10 ms step is 0.1 ms: after the hook's other work (base), the weights' read
    divided by k must fit in what is left; at least 1, at most 4 (also when nothing is left)."""
    from gradtone_hook import _hook

    clock = [0.0]
    monkeypatch.setattr(_hook, "_perf", lambda: clock[0])
    b = _hook._ParamBudget(0.01)
    for _ in range(3):  # constant times: the running means are those times
        clock[0] += 0.010
        b.own, b.weights = (base_ms + read_ms) / 1e3, read_ms / 1e3
        b.frame_done(True)
    assert b.k == want_k
    assert b.due() == (want_k == 1)  # the weights were just read


def _tiny_budget_run(torch, lr):
    """The test model with an SGD optimizer and a hook whose budget nobody meets (weights read in
    frames 0 and 1, then every 4th), writing per tensor to a buffer: (model, opt, buf, tone)."""
    from gradtone_hook import GradTone

    model = make_model(torch)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    buf = io.StringIO()
    tone = GradTone(model, to=buf, group_by="tensor", strict=True, wall_time=False, **TINY_BUDGET)
    return model, opt, buf, tone


def test_budget_reads_the_weights_every_step_after_a_non_finite_one(torch):
    """A budget nobody meets, and a non-finite loss at step 12: the weights are read every 4th
    frame, in the non-finite one, then in each of the 30 frames after it (what gradtone needs to
    tell a run crippled by it), then every 4th again."""
    from gradtone_hook._hook import PARAM_DENSE_AFTER_NON_FINITE

    model, opt, buf, tone = _tiny_budget_run(torch, lr=1e-2)
    for step in range(60):
        loss = backward(torch, model, seed=step)
        tone.step(loss=loss * math.nan if step == 12 else loss)
        opt.step()
    with_params = [f["step"] for f in _frames(buf) if "params" in f]
    assert PARAM_DENSE_AFTER_NON_FINITE == 30
    assert with_params == [0, 1, 5, 9, *range(12, 43), 46, 50, 54, 58]
    # The detector's count of a frozen optimizer survives the gaps: tested in Rust
    # (crates/detect/tests/detector.rs, norms sent every k-th step).


def test_budget_reads_the_weights_of_a_step_whose_gradients_jump(torch):
    """A budget nobody meets: a step whose gradients are 50x the last ones' (a step-size bug's
    first sign) reads the weights too, between two of the every-4th reads."""
    model, opt, buf, tone = _tiny_budget_run(torch, lr=1e-3)
    for step in range(20):
        loss = backward(torch, model, seed=step)
        if step == 11:
            for p in model.parameters():
                p.grad.mul_(50.0)
        tone.step(loss=loss)
        opt.step()
    with_params = [f["step"] for f in _frames(buf) if "params" in f]
    assert with_params == [0, 1, 5, 9, 11, 15, 19]


def test_budget_reads_the_weights_every_step_once_they_stop_moving(torch):
    """A budget nobody meets, and optimizer.step() skipped from step 10: the read at step 13
    still differs from step 9's (updates 9 happened), the one at 17 equals 13's bit for bit,
    and from then on every frame reads the weights (gradtone hears 5 identical steps at once,
    not after two more spans of 4); the numbers are the weights' norms."""
    model, opt, buf, tone = _tiny_budget_run(torch, lr=1e-2)
    for step in range(30):
        loss = backward(torch, model, seed=step)
        tone.step(loss=loss)
        if step < 10:
            opt.step()
    frames = _frames(buf)
    with_params = [f["step"] for f in frames if "params" in f]
    assert with_params == [0, 1, 5, 9, 13, *range(17, 30)]
    frozen = [f["params"] for f in frames if "params" in f and f["step"] >= 13]
    assert all(p == frozen[0] for p in frozen)
    assert frozen[0] == {n: p.detach().norm().item() for n, p in model.named_parameters()}
