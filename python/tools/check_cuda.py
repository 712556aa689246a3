#!/usr/bin/env python3
"""The hook's GPU path, checked by hand on a machine with CUDA (CI has no GPU, so this is not a
pytest test that would always skip there): fused ``_foreach_norm``, a real CUDA GradScaler, and
one device->host copy per step. Exits non-zero on a failed check.

    python3 python/tools/check_cuda.py
"""
import io
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gradtone_hook import GradTone  # noqa: E402


def strict_loads(line):
    def bad(tok):
        raise ValueError(f"bare non-finite token {tok!r}")

    return json.loads(line, parse_constant=bad)


def make_model():
    nn = torch.nn

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.fc1 = nn.Linear(4 * 6 * 6, 16)
            self.head = nn.Sequential(nn.ReLU(), nn.Linear(16, 3))

        def forward(self, x):
            x = self.bn(self.conv1(x)).relu().flatten(1)
            return self.head(self.fc1(x))

    return Small()


def main():
    if not torch.cuda.is_available():
        sys.exit("no CUDA device: run this on a machine with a GPU")
    model = make_model().cuda()
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(5, 1, 8, 8, device="cuda")
    y = torch.tensor([0, 1, 2, 0, 1], device="cuda")
    torch.nn.functional.cross_entropy(model(x), y).backward()
    want = {n: p.grad.norm().item() for n, p in model.named_parameters()}
    opt.zero_grad()
    buf = io.StringIO()
    tone = GradTone(model, to=buf, group_by="tensor", scaler=scaler, optimizer=opt, strict=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    scaler.get_scale()  # make the scale tensor exist before counting syncs
    calls = {"tolist": 0, "item": 0, "cpu": 0}
    originals = {m: getattr(torch.Tensor, m) for m in calls}
    for meth, orig in originals.items():

        def wrapped(self, *a, _orig=orig, _m=meth, **k):
            calls[_m] += 1
            return _orig(self, *a, **k)

        setattr(torch.Tensor, meth, wrapped)
    try:
        tone.step(loss=loss)
    finally:
        for meth, orig in originals.items():
            setattr(torch.Tensor, meth, orig)
    assert calls == {"tolist": 1, "item": 0, "cpu": 0}, calls
    scaler.unscale_(opt)
    tone.step(loss=loss)
    a, b = (strict_loads(line) for line in buf.getvalue().splitlines())
    for n, w in want.items():
        for got in (a["values"][n], b["values"][n]):
            assert abs(got - w) <= 1e-5 * abs(w), (n, got, w)
    for n, p in model.named_parameters():  # the weights' norms, read in that same copy
        w = p.detach().norm().item()
        assert abs(a["params"][n] - w) <= 1e-5 * abs(w), (n, a["params"][n], w)
    print("CUDA path ok: one device->host copy per step, norms and params equal p.grad.norm(), p.norm()")


if __name__ == "__main__":
    main()
