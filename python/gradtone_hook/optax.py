"""JAX / optax: a gradient transformation that hears the gradients, in front of any optimizer.

::

    import optax
    from gradtone_hook.optax import sonify

    tx = optax.chain(sonify(), optax.adam(1e-3))   # sonify() first: it sees the raw gradients
    state = tx.init(params)

    @jax.jit
    def train_step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params, value=loss)  # value=: the loss, optional
        return optax.apply_updates(params, updates), state, loss

One frame per ``update`` (i.e. per step): the L2 norm of the gradients of each module, named from
the parameter tree's paths (``Dense_0.kernel`` → ``Dense_0``, grouped as
:class:`gradtone_hook.GradTone` groups PyTorch modules), the loss when ``value=`` (or ``loss=``) is
given, and ``rank``/``world`` from ``jax.process_index()``/``jax.process_count()``.

The norms are computed inside the compiled step and handed to the host with
``jax.debug.callback(..., ordered=False)``: no ``device_get``, no ``block_until_ready``, so the
Python loop keeps dispatching asynchronously; the callback only formats and writes one line.
The transformation passes the gradients through unchanged.

Importing this module imports jax and optax.
"""

from __future__ import annotations

import functools
import threading
import time as _time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax as _optax

from ._groups import GroupBy, check_group_by, plan
from ._writer import StreamWriter, _warn

__all__ = ["sonify", "SonifyState", "tree_names", "group_norms"]


class SonifyState(NamedTuple):
    """The transformation's state: how many updates it has seen (the next frame's step)."""

    count: Any


def _key_part(k: Any) -> str:
    # DictKey.key, GetAttrKey.name, SequenceKey.idx, FlattenedIndexKey.key
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def tree_names(tree: Any) -> tuple[list[str], list[Any]]:
    """The parameter names of a pytree (path parts joined by ``.``) and its leaves, in
    ``jax.tree_util`` order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [".".join(_key_part(k) for k in path) for path, _ in flat], [x for _, x in flat]


def _sq(x: Any) -> Any:
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        x = jnp.abs(x)
    # float16/bfloat16 would overflow at 65504: accumulate in float32 (float64 stays float64)
    acc = jnp.promote_types(x.dtype, jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    x = x.astype(acc)
    return jnp.sum(x * x)


def group_norms(tree: Any, group_by: GroupBy = "module") -> tuple[list[str], Any]:
    """The group names and a 1-d array of their L2 norms (traceable; used inside ``update``)."""
    check_group_by(group_by)
    names, leaves = tree_names(tree)
    groups, member = plan(names, group_by)
    sums: list[Any] = [None] * len(groups)
    for gi, x in zip(member, leaves):
        if gi < 0:
            continue
        s = _sq(x)
        sums[gi] = s if sums[gi] is None else sums[gi] + s
    if not groups:
        return [], jnp.zeros((0,), jnp.float32)
    dt = jnp.result_type(*sums)
    return groups, jnp.sqrt(jnp.stack([s.astype(dt) for s in sums]))


class _Emitter:
    """The host side: one line per callback. Never raises into the computation."""

    def __init__(self, to: Any, append: bool, wall_time: bool, rank: int | None, world: int | None, strict: bool):
        self.writer = StreamWriter(to, append=append)
        self.wall_time = wall_time
        self.rank, self.world = rank, world
        self.strict = strict
        self.errors = 0
        self._warned = False
        # ordered=False callbacks may run on several runtime threads: one line at a time.
        self._lock = threading.Lock()

    def __call__(self, groups: list[str], step: Any, norms: Any, loss: Any = None) -> None:
        try:
            t = _time.time() if self.wall_time else None
            vals = [(g, float(v)) for g, v in zip(groups, norms.tolist())]
            losses = None if loss is None else [("loss", float(loss))]
            rank = jax.process_index() if self.rank is None else self.rank
            world = jax.process_count() if self.world is None else self.world
            with self._lock:
                self.writer.write_frame(int(step), vals, losses, rank, world, t)
        except Exception as e:  # noqa: BLE001 - an exception here would abort the user's step
            if self.strict:
                raise
            self.errors += 1
            if not self._warned:
                self._warned = True
                _warn(f"optax frame at step {step}: {type(e).__name__}: {e}. Training goes on.")


def sonify(
    to: Any = None,
    group_by: GroupBy = "module",
    every: int = 1,
    start_step: int = 0,
    rank: int | None = None,
    world: int | None = None,
    wall_time: bool = True,
    append: bool = False,
    strict: bool = False,
) -> _optax.GradientTransformationExtraArgs:
    """A gradient transformation that writes one gradtone frame per update and returns the
    gradients unchanged. Chain it first: ``optax.chain(sonify(), optax.adam(1e-3))``.

    Args:
        to: destination, as :class:`gradtone_hook.StreamWriter` (``None``: ``$GRADTONE_TO``,
            else stdout; ``"udp://127.0.0.1:9999"``, a file path...).
        group_by: ``"module"`` (default: one norm per module, the path without its last part),
            ``"tensor"`` (one per leaf) or a callable ``name -> group`` (``None`` leaves it out).
        every: write every N-th update only (the others compute nothing). Default 1.
        start_step: the step number of the first update. Default 0.
        rank, world: override ``jax.process_index()`` / ``jax.process_count()``.
        wall_time: write ``t`` (Unix seconds, when the step ran) in each frame.
        append: append to a file destination instead of truncating it.
        strict: let a failure to build a frame raise (inside the step) instead of warning once.

    ``update(grads, state, params=None, value=loss)`` (optax's name for the objective, which
    ``optax.chain`` passes on) or ``loss=loss`` adds the loss to the frame.
    """
    check_group_by(group_by)
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    emitter = _Emitter(to, append, wall_time, rank, world, strict)

    def init_fn(params: Any) -> SonifyState:
        del params
        return SonifyState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates: Any, state: SonifyState, params: Any = None, **extra: Any) -> tuple[Any, SonifyState]:
        del params
        loss = extra.get("value", extra.get("loss"))
        count = state.count

        def emit() -> None:
            groups, norms = group_norms(updates, group_by)
            args = [count + start_step, norms]
            if loss is not None:
                args.append(jnp.mean(jnp.asarray(loss, jnp.float32)))
            jax.debug.callback(functools.partial(emitter, groups), *args, ordered=False)

        if every == 1:
            emit()
        else:
            jax.lax.cond(count % every == 0, emit, lambda: None)
        return updates, SonifyState(count=count + 1)

    return _optax.GradientTransformationExtraArgs(init_fn, update_fn)
