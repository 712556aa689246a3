#!/usr/bin/env python3
"""What the framework callbacks cost beside real training: A B A B ... on CPU.

A = the trainer alone, B = the same trainer with gradtone's callback (frames written to a file,
or, with ``--to env`` under ``gradtone run``, to its private channel).
Two models: a tiny BERT under the Hugging Face ``Trainer`` (gradient accumulation 2,
``max_grad_norm`` 1.0) and a small Transformer ``LightningModule`` (``accumulate_grad_batches``
2, ``gradient_clip_val`` 1.0). Each run trains ``--steps`` optimizer steps; the step time is the
median of the time between consecutive optimizer steps, after ``--warmup`` steps. The cost is
reported two ways, both from the same runs:

- wall: (median B step - median A step) / median A step, the A and B runs interleaved
  (A B A B ...) so that a drift of the machine falls on both alike; and "paired", the median
  over rounds of each round's (B - A) / A. On a shared machine a run's step time drifts by
  several percent from one run to the next: read these over many rounds, or with ``--within N``:
  N more runs with a frame every 2nd step, the median step with a frame against the median step
  without, in the same runs;
- self: the time spent inside the callback's own methods and hooks during a B run, per step
  (the median over steps, after the warmup), over the A step time: what the callback adds, free
  of most of the noise of a shared machine.

Target: at most 2 % of a step. Usage: python3 scripts/bench-callbacks.py [--rounds 3] [--steps 40]
[--threads 1] [--param-norms auto|every|off] [--to file|env] [--within N] (the hook benched is the
one of this checkout, ../python; ``--param-norms`` is the callbacks' ``param_norms``: the weights' norms on
the hook's budget, its default, in every frame, or never). Under ``gradtone run``:
``gradtone run --no-live -- python3 scripts/bench-callbacks.py --to env``.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import torch  # noqa: E402

STEP_MARKS: list[float] = []
#: SELF_TIME[0] at each step mark.
SELF_MARKS: list[float] = []
SELF_TIME = [0.0]


def mark():
    STEP_MARKS.append(time.perf_counter())
    SELF_MARKS.append(SELF_TIME[0])


def timed(fn):
    """Wraps a callback method so that the time spent in it is added to SELF_TIME."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            SELF_TIME[0] += time.perf_counter() - t

    return wrapper


def instrument(cb, names):
    for n in names:
        if hasattr(cb, n):
            setattr(cb, n, timed(getattr(cb, n)))
    return cb


def step_time(marks, warmup):
    """The median time between consecutive marks, the first ``warmup`` steps left out."""
    marks = marks[warmup:]
    return statistics.median(b - a for a, b in zip(marks, marks[1:]))


# -- Hugging Face -----------------------------------------------------------------------------------


#: The callbacks' keyword arguments besides ``to`` and ``group_by`` (from ``--param-norms``).
CB_KW: dict = {}
#: The callbacks' destination: None for a file in a temporary folder (``--to file``), else
#: ``$GRADTONE_TO`` (``--to env``: run the script under ``gradtone run``).
DEST: list = [None]


def hf_run(with_cb, steps, out):
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

    from gradtone_hook.hf import GradToneCallback

    class Marks(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            mark()

    config = BertConfig(
        vocab_size=1000,
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=64,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)

    class Data(torch.utils.data.Dataset):
        def __init__(self, n):
            g = torch.Generator().manual_seed(2)
            self.ids = torch.randint(1, 1000, (n, 32), generator=g)
            self.labels = torch.randint(0, 2, (n,), generator=g)

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            mask = torch.ones(32, dtype=torch.long)
            return {"input_ids": self.ids[i], "attention_mask": mask, "labels": self.labels[i]}

    args = TrainingArguments(
        output_dir=os.path.join(out, "hf"),
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        max_steps=steps,
        learning_rate=1e-4,
        max_grad_norm=1.0,
        logging_strategy="no",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    callbacks = [Marks()]
    if with_cb:
        cb = GradToneCallback(to=DEST[0] or os.path.join(out, "hf.jsonl"), group_by="tensor", **CB_KW)
        instrument(
            cb,
            [
                "on_step_begin",
                "on_pre_optimizer_step",
                "_on_grad",
                "_on_forward",
                "_after_backward_1",
                "_after_backward_2",
                "_on_loss_grad",
            ],
        )
        callbacks.append(cb)
    Trainer(model=model, args=args, train_dataset=Data(16 * steps + 64), callbacks=callbacks).train()


# -- Lightning --------------------------------------------------------------------------------------


def lightning_run(with_cb, steps, out):
    import lightning.pytorch as pl

    from gradtone_hook.lightning import GradToneCallback

    class Marks(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if (batch_idx + 1) % 2 == 0:  # an optimizer step every 2 batches
                mark()

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(1000, 128)
            layer = torch.nn.TransformerEncoderLayer(128, 4, 256, batch_first=True, dropout=0.0)
            self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = torch.nn.Linear(128, 2)

        def training_step(self, batch, _i):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.head(self.encoder(self.embed(x)).mean(1)), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-4)

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    n = 16 * steps + 64
    x = torch.randint(0, 1000, (n, 32), generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    callbacks = [Marks()]
    if with_cb:
        cb = GradToneCallback(to=DEST[0] or os.path.join(out, "pl.jsonl"), group_by="tensor", **CB_KW)
        instrument(cb, ["on_before_backward", "on_before_optimizer_step"])
        callbacks.append(cb)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        accumulate_grad_batches=2,
        gradient_clip_val=1.0,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
    )
    trainer.fit(Tiny(), loader)


def within_run(run, runs: int, steps: int, warmup: int, out: str) -> tuple[float, float]:
    """The median duration of the steps that write a frame and of those that do not, in
    ``runs`` runs of ``steps`` steps with ``every=2`` (frames at even steps): what a frame costs,
    measured step against step in the same runs."""
    CB_KW["every"] = 2
    try:
        with_frame, without = [], []
        for _ in range(runs):
            STEP_MARKS.clear()
            run(True, steps, out)
            # STEP_MARKS[j] ends optimizer step j; step j (j >= 1) lasts marks[j] - marks[j - 1].
            for j in range(max(1, warmup), len(STEP_MARKS)):
                (with_frame if j % 2 == 0 else without).append(STEP_MARKS[j] - STEP_MARKS[j - 1])
        return statistics.median(with_frame), statistics.median(without)
    finally:
        del CB_KW["every"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="A B pairs per model")
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    ap.add_argument("--warmup", type=int, default=5, help="steps left out of each run's median")
    ap.add_argument("--only", choices=["hf", "lightning"], help="bench one model only")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    ap.add_argument(
        "--param-norms",
        choices=["auto", "every", "off"],
        default="auto",
        help="the callbacks' param_norms: the weights' norms on a budget (the default), in every frame, or never",
    )
    ap.add_argument(
        "--to",
        choices=["file", "env"],
        default="file",
        help="where the frames go: a file (default), or $GRADTONE_TO (run this under `gradtone run -- ...`)",
    )
    ap.add_argument(
        "--within",
        type=int,
        default=0,
        metavar="N",
        help="also N runs with a frame every 2nd step (every=2), of 5x --steps each: the median step "
        "with a frame minus the median step without, within the same runs (free of the drift between runs)",
    )
    a = ap.parse_args()
    if a.to == "env":
        DEST[0] = os.environ.get("GRADTONE_TO")
        if not DEST[0]:
            ap.error("--to env needs $GRADTONE_TO: gradtone run -- python3 scripts/bench-callbacks.py --to env")
    CB_KW["param_norms"] = {"auto": "auto", "every": "every", "off": False}[a.param_norms]
    torch.set_num_threads(a.threads)
    import logging

    logging.disable(logging.WARNING)
    worst = 0.0
    with tempfile.TemporaryDirectory() as out:
        for name, run in (("hf", hf_run), ("lightning", lightning_run)):
            if a.only and a.only != name:
                continue
            a_times, b_times, selfs = [], [], []
            for r in range(a.rounds):
                for with_cb in (False, True):
                    STEP_MARKS.clear()
                    SELF_MARKS.clear()
                    SELF_TIME[0] = 0.0
                    run(with_cb, a.steps, out)
                    st = step_time(STEP_MARKS, a.warmup)
                    (b_times if with_cb else a_times).append(st)
                    if with_cb:
                        selfs.append(step_time(SELF_MARKS, a.warmup))
                    print(f"{name} round {r} {'B' if with_cb else 'A'}: {st * 1e3:.2f} ms/step", file=sys.stderr)
            ma, mb = statistics.median(a_times), statistics.median(b_times)
            wall = (mb - ma) / ma
            paired = statistics.median((b - a) / a for a, b in zip(a_times, b_times))
            self_cost = statistics.median(selfs) / ma
            worst = max(worst, self_cost)
            print(
                f"{name}: A {ma * 1e3:.2f} ms/step, B {mb * 1e3:.2f} ms/step, wall {wall * 100:+.2f} % "
                f"(paired {paired * 100:+.2f} %), "
                f"self {statistics.median(selfs) * 1e3:.3f} ms/step = {self_cost * 100:.2f} % of a step"
            )
            if a.within:
                with_frame, without = within_run(run, a.within, 5 * a.steps, a.warmup, out)
                cost = (with_frame - without) / without
                print(
                    f"{name} within runs (every=2): a step with a frame {with_frame * 1e3:.2f} ms, without "
                    f"{without * 1e3:.2f} ms: {cost * 100:+.2f} %"
                )
    print(f"worst self cost: {worst * 100:.2f} % (target <= 2 %; param_norms={a.param_norms})")


if __name__ == "__main__":
    main()
