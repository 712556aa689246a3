"""The zoo: real small PyTorch trainings, some healthy, some with a fault injected at a known step.

Every training runs on the CPU with one thread on synthetic data made here (nothing downloaded)
and streams its frames through :class:`gradtone_hook.GradTone` to a file, exactly as a user would:
``tone.step(loss=loss, clip=...)`` after ``backward()`` and before clipping and
``optimizer.step()``. A frame at step ``s`` therefore holds the loss and gradients at the weights
*before* update ``s``, and ``params`` those weights' norms. See README.md for the faults and the
step at which each first shows in a frame.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from gradtone_hook import GradTone  # noqa: E402  (the source tree's hook, as the tests use)

# -- data (made in-process, fixed per kind; a run's seed picks init and batch order) --------------

N_CLASSES = 10
VEC_DIM = 32
IMG = 12
VOCAB = 24
SEQ = 24


def vectors(n: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs N(0,1) in 32-d, labelled by a random tanh teacher network; 5 % label noise."""
    g = torch.Generator().manual_seed(101)
    x = torch.randn(n, VEC_DIM, generator=g)
    w1 = torch.randn(VEC_DIM, 64, generator=g) / math.sqrt(VEC_DIM)
    w2 = torch.randn(64, N_CLASSES, generator=g) / 8
    y = (torch.tanh(x @ w1) @ w2).argmax(1)
    noisy = torch.rand(n, generator=g) < 0.05
    y[noisy] = torch.randint(0, N_CLASSES, (int(noisy.sum()),), generator=g)
    return x, y


def images(n: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """12×12 images: one smooth random prototype per class, shifted by up to ±2 pixels, scaled,
    plus noise: a CNN learns it in a few hundred steps, an MLP less well."""
    g = torch.Generator().manual_seed(202)
    protos = torch.randn(N_CLASSES, 1, IMG, IMG, generator=g)
    protos = F.avg_pool2d(F.pad(protos, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    protos = protos / protos.flatten(1).std(1).view(-1, 1, 1, 1)
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    x = protos[y].clone()
    sh = torch.randint(-2, 3, (n, 2), generator=g)
    for i in range(n):
        x[i] = torch.roll(x[i], shifts=(int(sh[i, 0]), int(sh[i, 1])), dims=(1, 2))
    x = x * (0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=g)) + 0.9 * torch.randn(x.shape, generator=g)
    return x, y


def text(n: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences from a sparse random Markov chain (each token has a few likely
    successors): an LM's loss falls from ln 24 ≈ 3.18 towards the chain's entropy."""
    g = torch.Generator().manual_seed(303)
    logits = torch.randn(VOCAB, VOCAB, generator=g) * 2.5
    probs = torch.softmax(logits, 1)
    seq = torch.empty(n, SEQ + 1, dtype=torch.long)
    seq[:, 0] = torch.randint(0, VOCAB, (n,), generator=g)
    for t in range(SEQ):
        seq[:, t + 1] = torch.multinomial(probs[seq[:, t]], 1, generator=g).squeeze(1)
    return seq[:, :-1].contiguous(), seq[:, 1:].contiguous()


DATA = {"vectors": vectors, "images": images, "text": text}

# -- models ------------------------------------------------------------------------------------


class MLP(nn.Module):
    """fc1 … fcN (names as a user would write them)."""

    def __init__(self, d_in: int, width: int, depth: int, n_out: int, act: str = "relu"):
        super().__init__()
        dims = [d_in] + [width] * (depth - 1) + [n_out]
        self.depth = depth
        self.act = {"relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[act]
        for i in range(depth):
            setattr(self, f"fc{i + 1}", nn.Linear(dims[i], dims[i + 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for i in range(self.depth):
            x = getattr(self, f"fc{i + 1}")(x)
            if i < self.depth - 1:
                x = self.act(x)
        return x


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 3 * 3, 48)
        self.fc2 = nn.Linear(48, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class ResNet(nn.Module):
    """A ResNet in miniature: stem, two residual blocks with BatchNorm, global pool, head."""

    def __init__(self, c: int = 12):
        super().__init__()
        self.stem = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(c)
        self.block1 = Block(c)
        self.block2 = Block(c)
        self.head = nn.Linear(c, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.block2(F.max_pool2d(self.block1(x), 2))
        return self.head(x.mean((2, 3)))


class RecurrentLM(nn.Module):
    def __init__(self, cell: str = "lstm", hidden: int = 48, nonlinearity: str = "tanh"):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 24)
        if cell == "rnn":
            self.rnn = nn.RNN(24, hidden, batch_first=True, nonlinearity=nonlinearity)
        else:
            self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](24, hidden, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.embed(x))[0])


class TransformerLM(nn.Module):
    def __init__(self, d: int = 32, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(SEQ, d)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(d, 2, 64, dropout=0.0, batch_first=True, norm_first=True) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, VOCAB)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(SEQ), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.pos.weight[: x.shape[1]]
        for b in self.blocks:
            h = b(h, src_mask=self.mask, is_causal=True)
        return self.head(self.norm(h))


def build(arch: str, **kw: Any) -> tuple[nn.Module, str]:
    """(model, data kind)."""
    if arch == "mlp":
        return MLP(VEC_DIM, kw.get("width", 64), kw.get("depth", 3), N_CLASSES, kw.get("act", "relu")), "vectors"
    if arch == "mlp_img":
        return MLP(IMG * IMG, kw.get("width", 64), kw.get("depth", 5), N_CLASSES, kw.get("act", "relu")), "images"
    if arch == "cnn":
        return CNN(), "images"
    if arch == "resnet":
        return ResNet(), "images"
    if arch in ("rnn", "gru", "lstm"):
        return RecurrentLM(arch, nonlinearity=kw.get("nonlinearity", "tanh")), "text"
    if arch == "transformer":
        return TransformerLM(), "text"
    raise ValueError(f"unknown arch {arch!r}")


# -- runs ----------------------------------------------------------------------------------------


@dataclass
class Run:
    """One training. ``fault``: None (healthy) or one of FAULTS, applied at ``fault_step``."""

    name: str
    arch: str
    opt: str = "sgd"  # sgd | momentum | adam | adamw
    lr: float = 0.05
    batch: int = 32
    steps: int = 300
    sched: str = "const"  # const | warmup_cosine
    warmup: int = 0
    clip: float | None = None
    seed: int = 1
    arch_kw: dict = field(default_factory=dict)
    fault: str | None = None
    fault_step: int | None = None
    fault_kw: dict = field(default_factory=dict)


#: fault kind -> (alarm kinds the judge accepts as catching it, the first step it can show in a
#: frame as an offset from fault_step, whether it is "fast": must be heard at +0/+1).
FAULTS = {
    # lr × 100 applied to the update of step k: frame k is computed before that update.
    "lr_bug": (["explosion", "divergence", "non_finite"], 1, True),
    # batch k's inputs are corrupt (NaN entries / garbage of magnitude 1e3): frame k's loss and grads.
    "corrupt_batch": (["non_finite", "explosion", "divergence"], 0, True),
    # labels shuffled (or constant) from batch k on: frame k's loss is on the wrong labels. Constant
    # labels are learnt within a few steps: the loss falls to 0 and every gradient with it, so the
    # dead-gradient alarms are what such a run really shows (its one-batch spike at k is within
    # the reach of healthy batch noise).
    "label_bug": (["divergence", "plateau", "explosion", "oscillation", "dead", "layer_dead"], 0, False),
    # a layer's bias set to -1e3 before the forward of step k: frame k has zero gradients upstream.
    "dead_relu": (["layer_dead", "dead"], 0, True),
    # unclipped ReLU Elman RNN, lr × 20 for the update of step k on: frame k+1 shows the blow-up.
    "rnn_explode": (["explosion", "divergence", "non_finite"], 1, True),
    # gradients of step k × 1e24..1e30 (a loss scale never divided out): frame k's norms overflow to inf;
    # Adam's second moment is poisoned and the run goes on crippled.
    "loss_scale_overflow": (["non_finite"], 0, True),
    # 20-layer sigmoid MLP: the first layers' gradients vanish from step 0.
    "vanishing": (["vanishing"], 0, False),
    # optimizer.step() silently skipped from step k: frame k+1 holds the same weights as frame k.
    "frozen_optimizer": (["frozen"], 1, False),
}


def _optimizer(run: Run, model: nn.Module) -> torch.optim.Optimizer:
    ps = model.parameters()
    if run.opt == "sgd":
        return torch.optim.SGD(ps, lr=run.lr)
    if run.opt == "momentum":
        return torch.optim.SGD(ps, lr=run.lr, momentum=0.9, weight_decay=5e-4)
    if run.opt == "adam":
        return torch.optim.Adam(ps, lr=run.lr)
    if run.opt == "adamw":
        return torch.optim.AdamW(ps, lr=run.lr, weight_decay=0.01)
    raise ValueError(f"unknown optimizer {run.opt!r}")


def _lr_factor(run: Run, s: int) -> float:
    if run.sched == "warmup_cosine":
        if s < run.warmup:
            return (s + 1) / run.warmup
        p = (s - run.warmup) / max(1, run.steps - run.warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p))
    return 1.0


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))


def train(run: Run, out_path: str, stop_after_nan: int = 10) -> dict:
    """Trains ``run`` and writes its frames to ``out_path``; returns a summary."""
    torch.set_num_threads(1)
    torch.manual_seed(run.seed)
    model, kind = build(run.arch, **run.arch_kw)
    x_all, y_all = DATA[kind]()
    opt = _optimizer(run, model)
    gen = torch.Generator().manual_seed(10_000 + run.seed)
    k, fk = run.fault_step, run.fault_kw
    tone = GradTone(model, to=out_path, clip=run.clip)
    nan_since = None
    losses = []
    try:
        for s in range(run.steps):
            idx = torch.randint(0, len(y_all), (run.batch,), generator=gen)
            x, y = x_all[idx].clone(), y_all[idx].clone()
            faulty = k is not None and s >= k
            if run.fault == "corrupt_batch" and s == k:
                if fk.get("how") == "nan":
                    x.view(-1)[::7] = float("nan")  # NaN features in the batch
                else:
                    # garbage: bytes read as floats (a truncated file, a bad shard): huge values
                    x = torch.randn(x.shape, generator=gen) * 1e3
            if run.fault == "label_bug" and faulty:
                y = torch.zeros_like(y) if fk.get("how") == "constant" else y[torch.randperm(len(y), generator=gen)]
            if run.fault == "dead_relu" and s == k:
                with torch.no_grad():
                    getattr(model, fk["layer"]).bias.fill_(-1e3)
            factor = _lr_factor(run, s)
            if run.fault in ("lr_bug", "rnn_explode") and faulty:
                factor *= fk["factor"]
            for grp in opt.param_groups:
                grp["lr"] = run.lr * factor
            opt.zero_grad(set_to_none=True)
            loss = _loss(model, x, y)
            loss.backward()
            if run.fault == "loss_scale_overflow" and s == k:
                for p in model.parameters():
                    if p.grad is not None:
                        p.grad.mul_(fk.get("scale", 1e24))  # scaled gradients handed on as if unscaled
            tone.step(loss=loss, clip=run.clip)
            losses.append(loss.item())
            if run.clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), run.clip)
            if run.fault == "frozen_optimizer" and faulty:
                continue  # the bug: optimizer.step() is skipped, nothing says so
            opt.step()
            if not math.isfinite(losses[-1]):
                nan_since = s if nan_since is None else nan_since
                if s - nan_since >= stop_after_nan:
                    break  # a dead run stays dead: save the time
    finally:
        tone.close()
    return {
        "name": run.name,
        "steps": len(losses),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "errors": tone.errors,
    }


# -- the zoo ---------------------------------------------------------------------------------------


def healthy_runs(seeds: tuple[int, ...] = (1, 2)) -> list[Run]:
    """Ten healthy configurations, two seeds each (other seeds: a zoo no detector was tuned on)."""
    cfgs = [
        # the misfire 1: norms rise 7-14x while the loss falls fastest
        dict(name="cnn_momentum_warmup_cosine", arch="cnn", opt="momentum", lr=0.05, sched="warmup_cosine", warmup=40),
        dict(name="mlp5_adam", arch="mlp_img", opt="adam", lr=1e-3, arch_kw={"depth": 5}),
        # the misfire 6: batch-4 noise, over a longer run (more windows for a plateau rule)
        dict(name="mlp_adam_bs4", arch="mlp", opt="adam", lr=1e-3, batch=4, steps=600),
        dict(name="resnet_bn_momentum", arch="resnet", opt="momentum", lr=0.05, batch=16),
        dict(name="lstm_adam_clip", arch="lstm", opt="adam", lr=3e-3, batch=16, clip=0.5),
        dict(name="gru_adamw_clip", arch="gru", opt="adamw", lr=3e-3, batch=16, clip=1.0),
        dict(
            name="transformer_adamw_warmup_cosine",
            arch="transformer",
            opt="adamw",
            lr=3e-3,
            batch=16,
            sched="warmup_cosine",
            warmup=30,
            clip=1.0,
        ),
        # clipping on most steps
        dict(name="rnn_sgd_clip", arch="rnn", opt="sgd", lr=0.5, batch=16, clip=0.25),
        dict(name="cnn_adamw_bs4", arch="cnn", opt="adamw", lr=1e-3, batch=4, steps=600),
        dict(name="mlp_sgd", arch="mlp", opt="sgd", lr=0.1),
    ]
    runs = []
    for c in cfgs:
        for seed in seeds:
            runs.append(Run(**{**c, "name": f"{c['name']}_s{seed}", "seed": seed}))
    return runs


def fault_runs(seeds: tuple[int, ...] = (1, 2)) -> list[Run]:
    """Every fault kind on one or two architectures, two seeds each (seed n's fault comes
    10·((n-1) mod 4) steps later, so no detector can learn one step)."""
    F_ = dict
    bases = [
        Run("cnn_lr_bug", "cnn", "momentum", 0.02, steps=200, fault="lr_bug", fault_step=130, fault_kw=F_(factor=100)),
        Run(
            "transformer_lr_bug",
            "transformer",
            "adamw",
            1e-3,
            batch=16,
            steps=200,
            clip=1.0,
            fault="lr_bug",
            fault_step=120,
            fault_kw=F_(factor=100),
        ),
        Run(
            "mlp_corrupt_nan",
            "mlp",
            "adam",
            1e-3,
            steps=200,
            fault="corrupt_batch",
            fault_step=140,
            fault_kw=F_(how="nan"),
        ),
        Run("cnn_corrupt_garbage", "cnn", "momentum", 0.02, steps=200, fault="corrupt_batch", fault_step=150),
        Run("mlp_label_shuffle", "mlp", "adam", 1e-3, steps=220, fault="label_bug", fault_step=150),
        Run(
            "resnet_label_constant",
            "resnet",
            "momentum",
            0.05,
            batch=16,
            steps=220,
            fault="label_bug",
            fault_step=140,
            fault_kw=F_(how="constant"),
        ),
        Run(
            "mlp5_dead_relu",
            "mlp_img",
            "adam",
            1e-3,
            steps=200,
            arch_kw={"depth": 5},
            fault="dead_relu",
            fault_step=130,
            fault_kw=F_(layer="fc3"),
        ),
        Run(
            "rnn_explode",
            "rnn",
            "sgd",
            0.3,
            batch=16,
            steps=200,
            arch_kw={"nonlinearity": "relu"},
            fault="rnn_explode",
            fault_step=140,
            fault_kw=F_(factor=20),
        ),
        Run(
            "transformer_loss_scale_overflow",
            "transformer",
            "adam",
            1e-3,
            batch=16,
            steps=220,
            fault="loss_scale_overflow",
            fault_step=130,
        ),
        Run(
            "gru_loss_scale_overflow",
            "gru",
            "adam",
            3e-3,
            batch=16,
            steps=220,
            fault="loss_scale_overflow",
            fault_step=150,
            fault_kw=F_(scale=1e30),
        ),
        Run(
            "mlp20_sigmoid_vanishing",
            "mlp",
            "sgd",
            0.1,
            steps=150,
            arch_kw={"depth": 20, "width": 32, "act": "sigmoid"},
            fault="vanishing",
            fault_step=0,
        ),
        Run("cnn_frozen_optimizer", "cnn", "adam", 1e-3, steps=220, fault="frozen_optimizer", fault_step=150),
        Run(
            "lstm_frozen_optimizer",
            "lstm",
            "sgd",
            1.0,
            batch=16,
            steps=220,
            clip=1.0,
            fault="frozen_optimizer",
            fault_step=140,
        ),
    ]
    runs = []
    for b in bases:
        for seed in seeds:
            late = 10 * ((seed - 1) % 4) if b.fault_step else 0
            runs.append(dataclasses.replace(b, name=f"{b.name}_s{seed}", seed=seed, fault_step=b.fault_step + late))
    return runs


def all_runs(seeds: tuple[int, ...] = (1, 2)) -> list[Run]:
    return fault_runs(seeds) + healthy_runs(seeds)
