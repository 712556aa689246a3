"""What gradtone_hook.optax.sonify() costs a jitted Flax training step on CPU.

Blocks of steps alternate A B C A B C (A: ``optax.adam``; B: ``optax.chain(sonify(), optax.adam)``,
one host callback per step; C: ``sonify(callback=False)`` and ``tone.poll(state)`` after each
step, no callback; frames written to a file), each block timed as a whole after a warm-up (wall
clock, and the process's CPU time, steadier on a loaded machine), so drift in the machine's speed
falls on every side. Prints the median ms per step of each side and the overheads in percent,
then one ``RESULT`` line.

    python3 python/tools/bench_jax_overhead.py [--blocks 8] [--steps 200] [--width 256]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, default=8, help="blocks per side (A B A B ...)")
    ap.add_argument("--steps", type=int, default=200, help="steps per block")
    ap.add_argument("--width", type=int, default=256, help="hidden width of the 4-layer MLP")
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()

    import flax.linen as nn
    import jax
    import optax

    from gradtone_hook.optax import sonify

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            for _ in range(3):
                x = nn.relu(nn.Dense(a.width)(x))
            return nn.Dense(10)(x)

    model = MLP()
    kx, ky = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, (a.batch, 784))
    y = jax.random.randint(ky, (a.batch,), 0, 10)
    params0 = model.init(jax.random.PRNGKey(1), x)["params"]
    out = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
    out.close()

    def make(tx):
        def loss_fn(p):
            return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, x), y).mean()

        @jax.jit
        def step(p, s):
            loss, g = jax.value_and_grad(loss_fn)(p)
            u, s = tx.update(g, s, p, value=loss)
            return optax.apply_updates(p, u), s, loss

        return step, tx.init(params0)

    poll_tone = sonify(to=out.name + ".poll", callback=False)
    sides = {
        "A plain": make(optax.adam(1e-3)),
        "B sonify": make(optax.chain(sonify(to=out.name), optax.adam(1e-3))),
        "C poll": make(optax.chain(poll_tone, optax.adam(1e-3))),
    }
    state = {k: (params0, s) for k, (_, s) in sides.items()}
    times: dict[str, list[float]] = {k: [] for k in sides}
    dispatch: dict[str, list[float]] = {k: [] for k in sides}
    cpu: dict[str, list[float]] = {k: [] for k in sides}  # process CPU time: steadier under load

    def block(k: str, n: int) -> None:
        step, _ = sides[k]
        p, s = state[k]
        t0, c0 = time.perf_counter(), time.process_time()
        d = 0.0
        for _ in range(n):
            t1 = time.perf_counter()
            p, s, loss = step(p, s)
            if k == "C poll":
                poll_tone.poll(s)
            d += time.perf_counter() - t1  # how long the Python loop is held per step
        jax.block_until_ready((p, s, loss))
        jax.effects_barrier()
        if k == "C poll":
            poll_tone.flush(s)
        times[k].append((time.perf_counter() - t0) / n * 1e3)
        cpu[k].append((time.process_time() - c0) / n * 1e3)
        dispatch[k].append(d / n * 1e6)
        state[k] = (p, s)

    for k in sides:  # compile and warm up
        block(k, a.steps)
        times[k].clear()
        dispatch[k].clear()
        cpu[k].clear()
    for _ in range(a.blocks):
        for k in sides:
            block(k, a.steps)

    med = {k: statistics.median(v) for k, v in times.items()}
    disp = {k: statistics.median(v) for k, v in dispatch.items()}
    cpum = {k: statistics.median(v) for k, v in cpu.items()}
    frames = {}
    for side, path in (("callback", out.name), ("poll", out.name + ".poll")):
        with open(path, encoding="utf-8") as f:
            frames[side] = sum(1 for _ in f)
        os.unlink(path)
    a_ms = med["A plain"]
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, MLP 784-{a.width}x3-10, batch {a.batch}")
    print(f"{a.blocks} blocks of {a.steps} steps per side, alternating A B C A B C")
    for k in sides:
        over = (med[k] / a_ms - 1) * 100
        print(
            f"{k:<9}: {med[k]:.4f} ms/step ({over:+.2f} %), CPU {cpum[k]:.4f} ms/step"
            f" ({(cpum[k] / cpum['A plain'] - 1) * 100:+.2f} %), Python loop held {disp[k]:.1f} us/step;"
            f" blocks {[round(t, 4) for t in times[k]]}"
        )
    b, c = med["B sonify"], med["C poll"]
    print(f"frames written: {frames}")
    print(
        f"RESULT jax_sonify ms_plain={a_ms:.4f} ms_sonify={b:.4f} ms_poll={c:.4f} "
        f"overhead_pct={(b / a_ms - 1) * 100:.3f} overhead_pct_poll={(c / a_ms - 1) * 100:.3f} "
        f"cpu_ms_plain={cpum['A plain']:.4f} cpu_ms_sonify={cpum['B sonify']:.4f} cpu_ms_poll={cpum['C poll']:.4f} "
        f"frames_callback={frames['callback']} frames_poll={frames['poll']}"
    )


if __name__ == "__main__":
    main()
