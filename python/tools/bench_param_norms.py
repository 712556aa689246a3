#!/usr/bin/env python3
"""What the frame's ``params`` costs on CPU (one thread): the median time of a training step, and
of the hook's ``step()`` without ``params`` (``param_norms=False``) and with it, each timed on
its own (short operations, so a busy machine disturbs the medians little). Prints a table.

    python3 python/tools/bench_param_norms.py [--steps 200]
"""

import argparse
import io
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "zoo")))
from gradtone_hook import GradTone  # noqa: E402


def models():
    import zoo

    def mlp_wide():
        return zoo.MLP(784, 512, 4, 10), torch.randn(64, 784), torch.randint(0, 10, (64,))

    def cnn():
        x, y = zoo.images(256)
        return zoo.CNN(), x[:32], y[:32]

    def transformer():
        x, y = zoo.text(64)
        return zoo.TransformerLM(), x[:16], y[:16]

    return {
        "mlp 784-512x3-10, batch 64": mlp_wide,
        "zoo CNN, batch 32": cnn,
        "zoo Transformer LM, batch 16": transformer,
    }


def _median_us(fn, n):
    for _ in range(20):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("| model | tensors | training step (µs) | hook.step, no params (µs) | hook.step with params (µs) ", end="")
    print("| params' extra, % of a step |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, make in models().items():
        model, x, y = make()
        opt = torch.optim.SGD(model.parameters(), lr=1e-6)

        def train_step(model=model, opt=opt, x=x, y=y):
            opt.zero_grad()
            out = model(x)
            loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
            loss.backward()
            opt.step()
            return loss

        step_us = _median_us(train_step, args.steps)
        loss = train_step()  # gradients in place for the hook
        hook_us = {}
        for pn in (False, True):
            buf = io.StringIO()
            tone = GradTone(model, to=buf, wall_time=False, param_norms=pn)

            def hook_step(tone=tone, buf=buf, loss=loss):
                tone.step(loss=loss)
                buf.seek(0)
                buf.truncate()

            hook_us[pn] = _median_us(hook_step, args.steps)
        extra = (hook_us[True] - hook_us[False]) / step_us * 100
        n = sum(1 for _ in model.parameters())
        print(f"| {name} | {n} | {step_us:.0f} | {hook_us[False]:.0f} | {hook_us[True]:.0f} | {extra:+.1f} % |")


if __name__ == "__main__":
    main()
