"""gradtone_hook.keras with real Keras 3 on its JAX and PyTorch backends (one subprocess each:
the backend is chosen once per process, by KERAS_BACKEND).

A 4-8-1 tanh MLP is fitted with plain SGD for 3 epochs of 5 batches, unshuffled; the test replays
the same training in NumPy (the gradients of MSE through tanh, derived by hand) and every frame's
per-layer norm must equal the replay's. Skips loudly without Keras; fails under
GRADTONE_REQUIRE_KERAS=1 (CI).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from _require import need, need_installed

ENV = "GRADTONE_REQUIRE_KERAS"
HERE = os.path.dirname(os.path.abspath(__file__))


def _replay(init, lr=0.05, batch=16, epochs=3):
    """Per step: {layer: L2 norm of its gradients}, by hand, in float64."""
    x, y = init["x"].astype(np.float64), init["y"].astype(np.float64)
    w1, b1, w2, b2 = (init[f"arr_{i}"].astype(np.float64) for i in range(4))
    out = []
    for _ in range(epochs):
        for j in range(0, len(x), batch):
            xb, yb = x[j : j + batch], y[j : j + batch]
            h = np.tanh(xb @ w1 + b1)
            d = 2.0 * (h @ w2 + b2 - yb) / yb.size  # d mean((yhat - y)^2) / d yhat
            gw2, gb2 = h.T @ d, d.sum(0)
            dz = (d @ w2.T) * (1.0 - h * h)
            gw1, gb1 = xb.T @ dz, dz.sum(0)
            out.append(
                {
                    "hidden": float(np.sqrt((gw1**2).sum() + (gb1**2).sum())),
                    "out": float(np.sqrt((gw2**2).sum() + (gb2**2).sum())),
                }
            )
            w1, b1, w2, b2 = w1 - lr * gw1, b1 - lr * gb1, w2 - lr * gw2, b2 - lr * gb2
    return out


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_keras_fit_norms_equal_a_hand_replay(backend, tmp_path):
    need_installed("keras", ENV)
    need(backend, ENV)
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.pop("GRADTONE_TO", None)
    r = subprocess.run(
        [sys.executable, os.path.join(HERE, "keras_fit.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got_backend, errors, first_loss, last_loss = r.stdout.split()
    assert (got_backend, errors) == (backend, "0"), r.stdout
    assert float(last_loss) < float(first_loss)
    with open(tmp_path / "frames.jsonl", encoding="utf-8") as f:
        frames = [json.loads(line) for line in f]
    want = _replay(np.load(tmp_path / "init.npz"))
    assert [fr["step"] for fr in frames] == list(range(len(want))) and len(want) == 15
    for fr, ref in zip(frames, want):
        assert list(fr["values"]) == ["hidden", "out"], fr
        for k, v in ref.items():
            assert fr["values"][k] == pytest.approx(v, rel=1e-4), (fr["step"], k)
    with open(tmp_path / "frames2.jsonl", encoding="utf-8") as f:
        later = [json.loads(line)["step"] for line in f]
    assert later == list(range(20, 25)), later  # steps 15-19: the fit without the callback
