"""gradtone_hook.optax against real JAX, Flax and optax on CPU.

A small Flax network is trained a few hundred steps with ``optax.chain(sonify(), optax.adam())``
under ``jax.jit``; every frame's norms must equal ``optax.tree.norm`` (``optax.global_norm``'s
current name) of that module's gradients, computed independently in the same step. Skips loudly
without JAX; fails under GRADTONE_REQUIRE_JAX=1 (CI).
"""

import io
import json
import math

import pytest
from _require import need

ENV = "GRADTONE_REQUIRE_JAX"


@pytest.fixture
def jx():
    jax = need("jax", ENV)
    need("optax", ENV)
    need("flax.linen", ENV)
    return jax


def _model():
    import flax.linen as nn

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.relu(nn.Dense(16)(nn.LayerNorm()(x)))

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(32)(x))
            x = Block()(x)
            return nn.Dense(3)(x)

    return Net()


def _data(jax, n=256, d=12):
    import jax.numpy as jnp

    kx, kw = jax.random.split(jax.random.PRNGKey(1))
    x = jax.random.normal(kx, (n, d))
    y = jnp.argmax(x @ jax.random.normal(kw, (d, 3)), axis=1)  # a learnable labelling
    return x, y


def _frames(buf):
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def _close(a, b, rel=2e-5):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-7)


@pytest.mark.parametrize("callback", [True, False], ids=["callback", "poll"])
def test_flax_training_frames_equal_independent_global_norms(jx, callback):
    import jax
    import optax

    from gradtone_hook.optax import sonify

    model = _model()
    x, y = _data(jax)
    params = model.init(jax.random.PRNGKey(0), x[:1])["params"]
    buf = io.StringIO()
    tone = sonify(to=buf, callback=callback)
    tx = optax.chain(tone, optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    state = tx.init(params)

    def loss_fn(p, xb, yb):
        logits = model.apply({"params": p}, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def step(p, s, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        # The independent reference: optax's own norm of each module's subtree.
        ref = {
            "Dense_0": optax.tree.norm(grads["Dense_0"]),
            "Block_0.Dense_0": optax.tree.norm(grads["Block_0"]["Dense_0"]),
            "Block_0.LayerNorm_0": optax.tree.norm(grads["Block_0"]["LayerNorm_0"]),
            "Dense_1": optax.tree.norm(grads["Dense_1"]),
        }
        updates, s = tx.update(grads, s, p, value=loss)
        return optax.apply_updates(p, updates), s, loss, ref

    steps, batch = 300, 32
    refs, losses = [], []
    for i in range(steps):
        j = (i * batch) % x.shape[0]
        params, state, loss, ref = step(params, state, x[j : j + batch], y[j : j + batch])
        refs.append(ref)
        losses.append(loss)
        if not callback:
            tone.poll(state)  # writes the earlier steps whose numbers have reached the host
    if callback:
        tone.flush()  # waits for the callbacks in flight
    else:
        tone.flush(state)
        assert tone.flush(state) == 0, "a state polled twice is written once"

    frames = _frames(buf)
    assert [f["step"] for f in frames] == list(range(steps))
    assert list(frames[0]["values"]) == ["Block_0.Dense_0", "Block_0.LayerNorm_0", "Dense_0", "Dense_1"]
    for f, ref, loss in zip(frames, refs, losses):
        for name, want in ref.items():
            assert _close(f["values"][name], float(want)), (f["step"], name, f["values"][name], float(want))
        assert _close(f["losses"]["loss"], float(loss)), (f["step"], f["losses"], float(loss))
        assert (f["rank"], f["world"]) == (jax.process_index(), jax.process_count())
        assert isinstance(f["t"], float)
    # It trained (the transformation passed the gradients on unchanged).
    first, last = sum(map(float, losses[:20])) / 20, sum(map(float, losses[-20:])) / 20
    assert last < 0.5 * first, (first, last)


def test_every_tensor_grouping_and_non_finite(jx):
    import jax
    import jax.numpy as jnp
    import optax

    from gradtone_hook.optax import sonify

    grads = {"enc": {"w": jnp.array([3.0, 4.0]), "b": jnp.array([12.0])}, "head": {"w": jnp.array([1.0])}}
    buf = io.StringIO()
    tx = optax.chain(sonify(to=buf, group_by="tensor", every=3, start_step=10, wall_time=False), optax.sgd(0.1))
    state = tx.init(grads)
    upd = jax.jit(lambda g, s: tx.update(g, s, None))
    for i in range(7):
        g = grads if i != 6 else {**grads, "head": {"w": jnp.array([jnp.nan])}}
        _, state = upd(g, state)
    jax.effects_barrier()
    frames = _frames(buf)
    assert [f["step"] for f in frames] == [10, 13, 16]
    # Poll mode: the same frames from the state, polled after every update, each written once.
    pbuf = io.StringIO()
    tone = sonify(to=pbuf, group_by="tensor", every=3, start_step=10, wall_time=False, callback=False)
    ptx = optax.chain(tone, optax.sgd(0.1))
    pstate = ptx.init(grads)
    pupd = jax.jit(lambda g, s: ptx.update(g, s, None))
    for i in range(7):
        g = grads if i != 6 else {**grads, "head": {"w": jnp.array([jnp.nan])}}
        _, pstate = pupd(g, pstate)
        tone.poll(pstate)
    tone.flush(pstate)
    assert pbuf.getvalue() == buf.getvalue()
    assert frames[0]["values"] == {"enc.b": 12.0, "enc.w": 5.0, "head.w": 1.0}
    assert "losses" not in frames[0] and "t" not in frames[0]
    assert frames[2]["values"]["head.w"] == "nan"  # an alarm, written as the stream format says

    # By module: sqrt(3² + 4² + 12²) = 13; a callable may drop leaves.
    buf2 = io.StringIO()
    tx2 = sonify(to=buf2, group_by=lambda n: None if n.endswith(".b") else n.split(".")[0], wall_time=False)
    jax.jit(lambda g, s: tx2.update(g, s, None, loss=jnp.array([1.0, 3.0])))(grads, tx2.init(grads))
    buf3 = io.StringIO()
    tx3 = sonify(to=buf3, wall_time=False)
    tx3.update(grads, tx3.init(grads))
    jax.effects_barrier()
    assert _frames(buf2)[0]["values"] == {"enc": 5.0, "head": 1.0}
    assert _frames(buf2)[0]["losses"] == {"loss": 2.0}  # a vector loss is written as its mean
    assert _frames(buf3)[0]["values"] == {"enc": 13.0, "head": 1.0}


def test_bad_arguments_are_refused(jx):
    from gradtone_hook.optax import sonify

    with pytest.raises(ValueError, match="every"):
        sonify(every=0)
    with pytest.raises(ValueError, match="group_by"):
        sonify(group_by="layer")
    with pytest.raises(ValueError, match="unknown destination"):
        sonify(to="ftp://127.0.0.1:1")


def test_module_grouping_is_the_pytorch_hooks():
    """The same parameter names give the same groups as GradTone(model) (which groups inline)."""
    from conftest import need_torch

    torch = need_torch()
    from gradtone_hook import GradTone
    from gradtone_hook._groups import plan

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.LayerNorm(4)
            self.fc = torch.nn.Linear(4, 4)
            self.scale = torch.nn.Parameter(torch.ones(1))

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), Block(), torch.nn.Linear(4, 2))
    names = [n for n, _ in model.named_parameters()]
    for group_by in ("module", "tensor"):
        assert plan(names, group_by)[0] == GradTone(model, to=io.StringIO(), group_by=group_by).names
