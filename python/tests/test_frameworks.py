"""The framework callbacks against the real packages: PyTorch Lightning and Hugging Face Trainer.

Tiny models on CPU, nothing downloaded. Each frame's norms are checked against ``p.grad.norm()``
read by an independent callback at the same moment. Without lightning/transformers these tests
skip loudly, and fail under GRADTONE_REQUIRE_TORCH=1 (CI installs both).
"""

import json
import math

import pytest
from conftest import need_torch, skip_or_fail


def need(module):
    need_torch()
    try:
        return __import__(module)
    except Exception as e:  # noqa: BLE001
        skip_or_fail(f"*** SKIPPED: {module} is not importable ({type(e).__name__}: {e}) ***")


def read_frames(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# -- PyTorch Lightning ----------------------------------------------------------------------------


def _lightning_run(tmp_path, clip, precision="32-true", accumulate=1):
    need("lightning")
    import lightning.pytorch as pl
    import torch

    from gradtone_hook.lightning import GradToneCallback

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(20, 8)
            self.rnn = torch.nn.LSTM(8, 8, batch_first=True)
            self.head = torch.nn.Linear(8, 3)
            self.losses = []

        def training_step(self, batch, _i):
            x, y = batch
            out, _ = self.rnn(self.embed(x))
            loss = torch.nn.functional.cross_entropy(self.head(out[:, -1]), y)
            self.losses.append(loss.detach().float().item())
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=5.0)  # large: norms change step to step

    class Reference(pl.Callback):
        """p.grad.norm() at the same hook, before Lightning clips."""

        def __init__(self):
            self.norms = []

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.norms.append({n: p.grad.norm().item() for n, p in pl_module.named_parameters()})

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 20, (24, 5), generator=g)
    y = torch.randint(0, 3, (24,), generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    model = Tiny()
    out = tmp_path / "frames.jsonl"
    ref = Reference()
    tone_cb = GradToneCallback(to=str(out), group_by="tensor", strict=True)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=4,
        precision=precision,
        gradient_clip_val=clip,
        accumulate_grad_batches=accumulate,
        callbacks=[ref, tone_cb],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, loader)
    return read_frames(out), ref.norms, model, tone_cb


def test_lightning_callback_norms_equal_grad_norm_and_clip(tmp_path):
    frames, ref, model, cb = _lightning_run(tmp_path, clip=0.05)
    assert len(frames) == len(ref) == 4
    assert [f["step"] for f in frames] == [0, 1, 2, 3]
    names = [n for n, _ in model.named_parameters()]
    assert "rnn.weight_ih_l0" in names and list(frames[0]["values"]) == names
    for f, r in zip(frames, ref):
        for n in names:
            assert f["values"][n] == pytest.approx(r[n], rel=1e-6), n
        assert f["clip"] == 0.05  # pre-clip norms, and the threshold that clipped them
        assert f["rank"] == 0 and f["world"] == 1
    # Clipping really happened after the read: the pre-clip total is far above the threshold.
    assert math.hypot(*frames[0]["values"].values()) > 0.05 * 2
    # The loss is the training_step's loss of that step.
    for f, loss in zip(frames, model.losses):
        assert f["losses"]["loss"] == pytest.approx(loss, rel=1e-6)
    # Different steps, different norms: the frames follow the training.
    assert frames[0]["values"] != frames[3]["values"]
    assert cb.tone.writer.errors == 0


def test_lightning_accumulation_and_no_clip(tmp_path):
    frames, ref, model, _ = _lightning_run(tmp_path, clip=None, accumulate=2)
    assert len(frames) == len(ref) == 4  # one frame per optimizer step, not per batch
    for f, r in zip(frames, ref):
        assert "clip" not in f
        for n, v in r.items():
            assert f["values"][n] == pytest.approx(v, rel=1e-6), n
    # Accumulated: the frame's loss is the mean of its two micro-batches' losses.
    for k, f in enumerate(frames):
        assert f["losses"]["loss"] == pytest.approx(sum(model.losses[2 * k : 2 * k + 2]) / 2, rel=1e-6)


def test_lightning_frames_match_what_lightning_logs_and_clips_with_accumulation(tmp_path):
    """accumulate_grad_batches=2 and gradient_clip_val: each frame's loss is the mean of the
    losses Lightning recorded (``self.log``) for the step's two micro-batches -- the loss whose
    gradient the optimizer step applies (Lightning's logger gets the last micro-batch's value,
    checked too) -- and its norms are the ones Lightning then clips, to the threshold."""
    need("lightning")
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import Logger

    from gradtone_hook.lightning import GradToneCallback

    class Recorder(Logger):
        def __init__(self):
            super().__init__()
            self.rows = []

        @property
        def name(self):
            return "recorder"

        @property
        def version(self):
            return 0

        def log_hyperparams(self, *args, **kwargs):
            pass

        def log_metrics(self, metrics, step=None):
            if "train_loss" in metrics:
                self.rows.append((step, metrics["train_loss"]))

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(6, 8)
            self.fc2 = torch.nn.Linear(8, 3)

        def training_step(self, batch, _i):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.fc2(torch.tanh(self.fc1(x))), y)
            self.log("train_loss", loss, on_step=True, on_epoch=False)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=2.0)

    class Reference(pl.Callback):
        """What Lightning recorded per micro-batch; p.grad.norm() before and after its clipping."""

        def __init__(self):
            self.batch_losses, self.pre, self.post = [], [], []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.batch_losses.append(float(trainer.callback_metrics["train_loss"]))
            if batch_idx % 2 == 1:  # the optimizer has stepped with the clipped gradients
                self.post.append({n: p.grad.norm().item() for n, p in pl_module.named_parameters()})

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.pre.append({n: p.grad.norm().item() for n, p in pl_module.named_parameters()})

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(48, 6, generator=g)
    y = torch.randint(0, 3, (48,), generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    out = tmp_path / "frames.jsonl"
    ref, logger = Reference(), Recorder()
    clip = 0.3
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=5,
        accumulate_grad_batches=2,
        gradient_clip_val=clip,
        callbacks=[ref, GradToneCallback(to=str(out), group_by="tensor", strict=True)],
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(Tiny(), loader)
    frames = read_frames(out)
    assert [f["step"] for f in frames] == [0, 1, 2, 3, 4]
    assert len(ref.batch_losses) == 10 and len(ref.pre) == len(ref.post) == 5
    assert [s for s, _ in logger.rows] == [0, 1, 2, 3, 4]
    clipped = 0
    for k, f in enumerate(frames):
        pair = ref.batch_losses[2 * k : 2 * k + 2]
        assert logger.rows[k][1] == pytest.approx(pair[1], rel=1e-6)  # the logger: the last micro-batch
        assert f["losses"]["loss"] == pytest.approx(sum(pair) / 2, rel=1e-6)
        assert f["clip"] == clip
        for n, v in ref.pre[k].items():
            assert f["values"][n] == pytest.approx(v, rel=1e-6), n
        total = math.sqrt(sum(v * v for v in f["values"].values()))
        post_total = math.sqrt(sum(v * v for v in ref.post[k].values()))
        if total > clip:  # Lightning clipped what the frame holds, to the threshold
            clipped += 1
            assert post_total == pytest.approx(clip, rel=1e-4)
            for n, v in ref.post[k].items():
                assert f["values"][n] * clip / (total + 1e-6) == pytest.approx(v, rel=1e-4), n
        else:
            assert post_total == pytest.approx(total, rel=1e-6)
    assert clipped >= 1


# -- Hugging Face Trainer -------------------------------------------------------------------------


def _hf_run(tmp_path, max_grad_norm, accumulate=1, **cb_kwargs):
    need("transformers")
    need("accelerate")
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

    from gradtone_hook.hf import GradToneCallback

    config = BertConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)  # built from a config: nothing downloaded

    class Data(torch.utils.data.Dataset):
        def __init__(self):
            g = torch.Generator().manual_seed(2)
            self.ids = torch.randint(1, 40, (32, 8), generator=g)
            self.labels = torch.randint(0, 2, (32,), generator=g)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return {
                "input_ids": self.ids[i],
                "attention_mask": torch.ones(8, dtype=torch.long),
                "labels": self.labels[i],
            }

    class Reference(TrainerCallback):
        """p.grad.norm() when the Trainer hands over, i.e. after its clipping; and the logged loss
        and grad_norm (the Trainer's own pre-clip total norm)."""

        def __init__(self):
            self.post = []
            self.logged = []
            self.grad_norms = []

        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            self.post.append({n: p.grad.norm().item() for n, p in model.named_parameters() if p.grad is not None})

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.logged.append(logs["loss"])
                self.grad_norms.append(logs.get("grad_norm"))

    out = tmp_path / "frames.jsonl"
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=accumulate,
        max_steps=3,
        learning_rate=1e-2,
        max_grad_norm=max_grad_norm,
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    ref = Reference()
    cb = GradToneCallback(to=str(out), group_by="tensor", strict=True, **cb_kwargs)
    trainer = Trainer(model=model, args=args, train_dataset=Data(), callbacks=[ref, cb])
    reads = []
    real_on_train_begin = cb.on_train_begin

    def count_norm_reads(*a, **kw):
        real_on_train_begin(*a, **kw)
        # The common read (_launch, gradients and weights fused) or the general one.
        real, real_launch = cb.tone._grad_norms, cb.tone._launch
        cb.tone._grad_norms = lambda: reads.append(1) or real()

        def launch():
            vec = real_launch()
            if vec is not None:
                reads.append(1)
            return vec

        cb.tone._launch = launch

    cb.on_train_begin = count_norm_reads
    trainer.train()
    cb.norm_reads = len(reads)
    return read_frames(out), ref, model, cb


def test_hf_callback_norms_equal_grad_norm_without_clipping(tmp_path):
    frames, ref, model, cb = _hf_run(tmp_path, max_grad_norm=0.0)
    assert [f["step"] for f in frames] == [0, 1, 2]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    for f, post in zip(frames, ref.post):
        assert "clip" not in f
        assert set(post) <= set(f["values"])
        for n, v in post.items():  # nothing clipped: pre == post, exactly the same kernel
            assert f["values"][n] == pytest.approx(v, rel=1e-6), n
        assert f["rank"] == 0 and f["world"] == 1
    # The frame's loss is the model's loss of that step, as the Trainer logs it (rounded to 1e-4).
    assert len(ref.logged) == 3
    for f, logged in zip(frames, ref.logged):
        assert f["losses"]["loss"] == pytest.approx(logged, abs=2e-4)
    assert cb.tone.writer.errors == 0


def test_hf_callback_reports_pre_clip_norms_and_the_threshold(tmp_path):
    clip = 1e-3  # far below any real norm: every step is clipped
    frames, ref, _, _ = _hf_run(tmp_path, max_grad_norm=clip, accumulate=2)
    assert len(frames) == 3  # one per optimizer step, 2 micro-batches each
    for f, post in zip(frames, ref.post):
        assert f["clip"] == clip
        total = math.sqrt(sum(v * v for v in f["values"].values()))
        assert total > 100 * clip  # the pre-clip norm, not the clipped one
        # clip_grad_norm_ scaled every gradient by clip / (total + 1e-6): undo it and compare.
        coef = clip / (total + 1e-6)
        for n, v in post.items():
            assert f["values"][n] * coef == pytest.approx(v, rel=1e-4, abs=1e-12), n


def test_hf_frames_match_what_the_trainer_logs_and_clips_with_accumulation(tmp_path):
    """Accumulation 2 and clipping at 0.5: the frame's loss is the Trainer's logged loss (the
    model normalises its loss by the step's label count, so the micro-batches' losses add up),
    the frame's norms combine to the Trainer's logged pre-clip grad_norm, and they are read once
    per optimizer step, not after every micro-batch."""
    frames, ref, model, cb = _hf_run(tmp_path, max_grad_norm=0.5, accumulate=2)
    assert [f["step"] for f in frames] == [0, 1, 2]
    assert len(ref.logged) == len(ref.grad_norms) == 3
    assert cb.norm_reads == 3  # 6 backward passes, 3 optimizer steps
    clipped = 0
    for f, logged, gn, post in zip(frames, ref.logged, ref.grad_norms, ref.post):
        assert f["losses"]["loss"] == pytest.approx(logged, rel=1e-6)
        total = math.sqrt(sum(v * v for v in f["values"].values()))
        assert total == pytest.approx(gn, rel=1e-5)
        assert f["clip"] == 0.5
        post_total = math.sqrt(sum(v * v for v in post.values()))
        if total > 0.5:  # clipped by the Trainer: to 0.5, from the norm the frame holds
            clipped += 1
            assert post_total == pytest.approx(0.5, rel=1e-4)
        else:
            assert post_total == pytest.approx(total, rel=1e-6)
    assert 1 <= clipped < 3, [math.sqrt(sum(v * v for v in f["values"].values())) for f in frames]
    # The losses differ from step to step: each frame is its own step's.
    assert len({f["losses"]["loss"] for f in frames}) == 3


def test_hf_every_reads_only_the_steps_it_writes(tmp_path):
    frames, ref, _, cb = _hf_run(tmp_path, max_grad_norm=0.0, accumulate=2, every=2)
    assert [f["step"] for f in frames] == [0, 2]
    assert cb.norm_reads == 2  # steps 0 and 2; not step 1, nor any first micro-batch
    for f, post in zip(frames, [ref.post[0], ref.post[2]]):
        for n, v in post.items():
            assert f["values"][n] == pytest.approx(v, rel=1e-6), n
    for f, logged in zip(frames, [ref.logged[0], ref.logged[2]]):
        assert f["losses"]["loss"] == pytest.approx(logged, rel=1e-6)


def test_lightning_amp_grad_scaler_norms_are_true(tmp_path):
    """16-mixed with a real (CPU) GradScaler: Lightning unscales before on_before_optimizer_step,
    so the frame's norms are the true ones, not divided twice nor left scaled."""
    need("lightning")
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.plugins.precision import MixedPrecision

    from gradtone_hook.lightning import GradToneCallback

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(6, 3)

        def training_step(self, batch, _i):
            return self.fc(batch[0]).float().pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Reference(pl.Callback):
        def __init__(self):
            self.norms, self.scales = [], []

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self.norms.append({n: p.grad.norm().item() for n, p in pl_module.named_parameters()})
            self.scales.append(trainer.precision_plugin.scaler.get_scale())

    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(12, 6)), batch_size=4)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    out = tmp_path / "amp.jsonl"
    ref = Reference()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
        callbacks=[ref, GradToneCallback(to=str(out), group_by="tensor", strict=True)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(Tiny(), loader)
    frames = read_frames(out)
    assert len(frames) == 3 and ref.scales[0] == 2.0**10
    for f, r in zip(frames, ref.norms):
        for n, v in r.items():
            assert f["values"][n] == pytest.approx(v, rel=1e-6), n
        assert max(f["values"].values()) < 100  # not left multiplied by 1024


def test_hf_callback_divides_the_fp16_loss_scale():
    """The Trainer's order with fp16 (on CPU, with a real GradScaler and accelerate's optimizer
    wrapper): scaled backward -> (callback captures) -> unscale + clip -> on_pre_optimizer_step.
    The frame holds the true pre-clip norms."""
    need("transformers")
    need("accelerate")
    import inspect
    import io
    import types

    import torch
    from accelerate.optimizer import AcceleratedOptimizer

    from gradtone_hook.hf import GradToneCallback

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2))
    x = torch.randn(4, 5)
    model(x).pow(2).sum().backward()
    want = {n: p.grad.norm().item() for n, p in model.named_parameters()}
    model.zero_grad()

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    # accelerate's optimizer wrapper keeps the Trainer's GradScaler as .scaler (it needs a live
    # Accelerator to be built, so a stand-in with the same attribute plays it here).
    assert "self.scaler = scaler" in inspect.getsource(AcceleratedOptimizer.__init__)
    opt = types.SimpleNamespace(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), scaler=scaler)
    buf = io.StringIO()
    cb = GradToneCallback(to=buf, group_by="tensor", strict=True)
    args = types.SimpleNamespace(max_grad_norm=0.01, process_index=0, world_size=1)
    state = types.SimpleNamespace(global_step=0)
    cb.on_train_begin(args, state, None, model=model)
    cb.on_step_begin(args, state, None)
    scaler.scale(model(x).pow(2).sum()).backward()
    scaler.unscale_(opt.optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
    cb.on_pre_optimizer_step(args, state, None, optimizer=opt)
    cb.on_train_end(args, state, None)
    frame = json.loads(buf.getvalue())
    assert frame["clip"] == 0.01
    for n, v in want.items():
        assert frame["values"][n] == pytest.approx(v, rel=1e-5), n
    assert not cb._handles  # hooks removed at the end


def test_hf_callback_without_a_gradient_on_its_trigger_parameter(tmp_path):
    """The callback catches the end of backward with a hook on the first selected parameter,
    registered once. A model whose first parameter never gets a gradient (an unused layer):
    step 0 is read as it is at the optimizer step (no clipping here, so the same norms), then
    each step's loss is hooked; every frame's norms are p.grad.norm(), accumulation 2, and from
    step 1 on the loss is the Trainer's logged one."""
    need("transformers")
    need("accelerate")
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from gradtone_hook.hf import GradToneCallback

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Linear(3, 3)  # first, and never in the forward
            self.fc = torch.nn.Linear(6, 2)

        def forward(self, x, labels=None):
            logits = self.fc(x)
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 32

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return {"x": torch.randn(6, generator=g), "labels": torch.tensor(i % 2)}

    class Reference(TrainerCallback):
        def __init__(self):
            self.post, self.logged = [], []

        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            self.post.append({n: p.grad.norm().item() for n, p in model.named_parameters() if p.grad is not None})

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.logged.append(logs["loss"])

    torch.manual_seed(0)
    out = tmp_path / "frames.jsonl"
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        max_steps=3,
        learning_rate=1e-2,
        max_grad_norm=0.0,
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    ref = Reference()
    cb = GradToneCallback(to=str(out), group_by="tensor", strict=True)
    Trainer(model=Model(), args=args, train_dataset=Data(), callbacks=[ref, cb]).train()
    frames = read_frames(out)
    assert [f["step"] for f in frames] == [0, 1, 2]
    assert cb._trigger is False  # switched to a hook on each step's loss
    for f, post in zip(frames, ref.post):
        assert f["values"]["unused.weight"] == 0.0
        for n, v in post.items():
            assert f["values"][n] == pytest.approx(v, rel=1e-6), n
    for f, logged in zip(frames[1:], ref.logged[1:]):
        assert f["losses"]["loss"] == pytest.approx(logged, abs=2e-4)
