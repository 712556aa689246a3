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
``jax.debug.callback(..., ordered=False)``: no ``device_get``, no ``block_until_ready``; the
callback only formats and writes one line. Measured (``tools/bench_jax_overhead.py``): on the CPU
backend JAX runs a computation that holds a host callback synchronously, so the Python loop
waits for each step; ``sonify(callback=False)`` with ``tone.poll(state)`` after each step puts no
callback in the step and keeps the dispatch asynchronous. The gradients pass through unchanged.

Importing this module imports jax and optax.
"""

from __future__ import annotations

import collections
import functools
import threading
import time as _time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax as _optax

from ._groups import GroupBy, check_group_by, plan
from ._writer import StreamWriter, _warn

__all__ = ["sonify", "Sonify", "SonifyState", "tree_names", "group_norms"]


class SonifyState(NamedTuple):
    """The transformation's state: the updates seen, and the last recorded frame's numbers."""

    count: Any  #: updates seen (the next update's index)
    step: Any  #: the step number of the last recorded frame (-1: none yet)
    norms: Any  #: its group norms
    loss: Any  #: its loss (NaN where none was given)


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
    """The host side: writes frames. Never raises into the computation."""

    def __init__(self, to: Any, append: bool, wall_time: bool, rank: int | None, world: int | None, strict: bool):
        self.writer = StreamWriter(to, append=append)
        self.wall_time = wall_time
        self.rank, self.world = rank, world
        self.strict = strict
        self.errors = 0
        self.groups: list[str] = []
        self._warned = False
        self._last = -1  # the last step written: a state polled twice is written once
        # ordered=False callbacks may run on several runtime threads: one frame at a time.
        self._lock = threading.Lock()

    def __call__(self, groups: list[str], has_loss: bool, step: Any, norms: Any, loss: Any) -> None:
        try:
            step = int(step)
            with self._lock:
                if step < 0 or step <= self._last:
                    return
                t = _time.time() if self.wall_time else None
                rank = jax.process_index() if self.rank is None else self.rank
                world = jax.process_count() if self.world is None else self.world
                vals = [(g, float(v)) for g, v in zip(groups, norms.tolist())]
                losses = [("loss", float(loss))] if has_loss else None
                self.writer.write_frame(step, vals, losses, rank, world, t)
                self._last = step
        except Exception as e:  # noqa: BLE001 - an exception here would abort the user's step
            if self.strict:
                raise
            self.errors += 1
            if not self._warned:
                self._warned = True
                _warn(f"optax frame at step {step}: {type(e).__name__}: {e}. Training goes on.")


#: Frames copied but not yet written in poll mode; past this, poll() waits for the oldest.
MAX_PENDING = 64


class Sonify(_optax.GradientTransformationExtraArgs):
    """What :func:`sonify` returns: an optax transformation (``init``/``update``); with
    ``callback=False``, :meth:`poll` and :meth:`flush` write the frames from the host."""

    def poll(self, opt_state: Any) -> int:
        """Poll mode (``sonify(callback=False)``): call after each step with the new optimizer
        state. Starts copying the step's norms to the host (``copy_to_host_async``) and writes the
        frames of earlier steps whose copies have arrived; never waits for the device unless
        :data:`MAX_PENDING` frames are queued. Returns the frames written."""
        return self._poll(opt_state, False)  # type: ignore[attr-defined]

    def flush(self, opt_state: Any = None) -> int:
        """Write every pending frame (and ``opt_state``'s last one), waiting for the device: call
        once after training. In callback mode, waits for the callbacks in flight. Returns the
        frames written."""
        return self._poll(opt_state, True)  # type: ignore[attr-defined]


def _state_of(tree: Any) -> SonifyState | None:
    if isinstance(tree, SonifyState):
        return tree
    if isinstance(tree, (tuple, list)):  # optax.chain's state: ours is usually at the top
        for x in tree:
            if isinstance(x, SonifyState):
                return x
    leaves = jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, SonifyState))
    return next((x for x in leaves if isinstance(x, SonifyState)), None)


def sonify(
    to: Any = None,
    group_by: GroupBy = "module",
    every: int = 1,
    callback: bool = True,
    start_step: int = 0,
    rank: int | None = None,
    world: int | None = None,
    wall_time: bool = True,
    append: bool = False,
    strict: bool = False,
) -> Sonify:
    """A gradient transformation that writes one gradtone frame per update and returns the
    gradients unchanged. Chain it first: ``optax.chain(sonify(), optax.adam(1e-3))``.

    Args:
        to: destination, as :class:`gradtone_hook.StreamWriter` (``None``: ``$GRADTONE_TO``,
            else stdout; ``"udp://127.0.0.1:9999"``, a file path...).
        group_by: ``"module"`` (default: one norm per module, the path without its last part),
            ``"tensor"`` (one per leaf) or a callable ``name -> group`` (``None`` leaves it out).
        every: record every N-th update only (the others compute nothing). Default 1.
        callback: ``True`` (default): the compiled step hands each frame to the host with
            ``jax.debug.callback(ordered=False)``, nothing else to call. ``False``: no callback
            in the step (on the CPU backend a step holding one is run synchronously; README
            has the numbers); the frame stays in the optimizer state and ``tone.poll(state)``
            after each step writes it from the loop, ``tone.flush(state)`` after the last.
        start_step: the step number of the first update. Default 0.
        rank, world: override ``jax.process_index()`` / ``jax.process_count()``.
        wall_time: write ``t`` (Unix seconds, when the frame reached the host) in each frame.
        append: append to a file destination instead of truncating it.
        strict: let a failure to build a frame raise instead of warning once.

    ``update(grads, state, params=None, value=loss)`` (optax's name for the objective, which
    ``optax.chain`` passes on) or ``loss=loss`` adds the loss to the frame.
    """
    check_group_by(group_by)
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    emitter = _Emitter(to, append, wall_time, rank, world, strict)
    has_loss_seen = [False]  # poll mode: whether update() was given a loss (known at trace time)

    def init_fn(params: Any) -> SonifyState:
        groups = plan(tree_names(params)[0], group_by)[0]
        if not groups:
            raise ValueError(
                f"group_by={group_by!r} left out every parameter; names look like {tree_names(params)[0][:6]}"
            )
        emitter.groups = groups
        norms = jax.eval_shape(lambda p: group_norms(p, group_by)[1], params)
        return SonifyState(
            count=jnp.zeros([], jnp.int32),
            step=jnp.full([], -1, jnp.int32),
            norms=jnp.zeros(norms.shape, norms.dtype),
            loss=jnp.full([], jnp.nan, jnp.float32),
        )

    def update_fn(updates: Any, state: SonifyState, params: Any = None, **extra: Any) -> tuple[Any, SonifyState]:
        del params
        loss = extra.get("value", extra.get("loss"))
        has_loss = loss is not None
        has_loss_seen[0] = has_loss
        count = state.count

        def record() -> tuple[Any, Any, Any]:
            groups, norms = group_norms(updates, group_by)
            if groups != emitter.groups and emitter.groups:
                raise ValueError(
                    f"the gradients' groups {groups[:6]} are not the parameters' {emitter.groups[:6]} "
                    "given to init: sonify() needs the same tree in init and update"
                )
            lv = jnp.mean(jnp.asarray(loss, jnp.float32)) if has_loss else jnp.float32(jnp.nan)
            step = count + start_step
            if callback:
                cb = functools.partial(emitter, groups, has_loss)
                jax.debug.callback(cb, step, norms, lv, ordered=False)
            return step.astype(jnp.int32), norms.astype(state.norms.dtype), lv

        if every == 1:
            step, norms, lv = record()
        else:
            step, norms, lv = jax.lax.cond(count % every == 0, record, lambda: (state.step, state.norms, state.loss))
        return updates, SonifyState(count=count + 1, step=step, norms=norms, loss=lv)

    pending: collections.deque = collections.deque()

    def write(item: tuple[Any, Any, Any]) -> None:
        step, norms, lv = (np.asarray(x) for x in item)
        emitter(emitter.groups, has_loss_seen[0], step, norms, lv)

    def poll(opt_state: Any, wait: bool) -> int:
        before = emitter.writer.written
        if callback:
            if wait:
                jax.effects_barrier()  # the callbacks in flight have run
            return emitter.writer.written - before
        st = _state_of(opt_state) if opt_state is not None else None
        if st is not None:
            item = (st.step, st.norms, st.loss)
            for x in item:
                if hasattr(x, "copy_to_host_async"):
                    x.copy_to_host_async()
            pending.append(item)
        while pending and (
            wait or len(pending) > MAX_PENDING or all(not hasattr(x, "is_ready") or x.is_ready() for x in pending[0])
        ):
            write(pending.popleft())
        return emitter.writer.written - before

    tx = Sonify(init_fn, update_fn)
    tx.writer = emitter.writer  # type: ignore[attr-defined]
    tx._poll = poll  # type: ignore[attr-defined]
    return tx
