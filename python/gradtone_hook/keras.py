"""Keras 3: ``model.fit(..., callbacks=[GradToneCallback()])`` and the training sounds.

A Keras callback never sees the gradients, so this one wraps the model's optimizer for the
length of ``fit``: its ``apply`` (which ``fit`` calls on every backend, through
``stateless_apply`` on JAX) first reads one L2 norm per layer (the variables' paths without
their last part and the model's name: ``sequential/dense_1/kernel`` → ``dense_1``, grouped as
:class:`gradtone_hook.GradTone` groups PyTorch modules) of the gradients a
``LossScaleOptimizer`` hands its inner optimizer (unscaled), and writes a frame numbered by
``optimizer.iterations``. Tested on the JAX and PyTorch backends; on JAX the norms leave the
compiled step through ``jax.debug.callback(ordered=False)``; on PyTorch they are read with one
``.tolist()``, as the PyTorch hook does. The TensorFlow backend is not supported (a
``RuntimeError`` at the start of ``fit``).

Frames carry no loss: ``fit`` only reports the running mean of the epoch, not the step's loss.
Importing this module imports keras.
"""

from __future__ import annotations

import threading
import time as _time
from typing import Any

import keras

from ._groups import GroupBy, check_group_by, plan
from ._writer import StreamWriter, _warn

__all__ = ["GradToneCallback"]


class GradToneCallback(keras.callbacks.Callback):
    """Streams each optimizer step's per-layer gradient norms to gradtone.

    Args:
        to: destination, as :class:`gradtone_hook.StreamWriter` (``None``: ``$GRADTONE_TO``,
            else stdout).
        group_by: ``"module"`` (default: one value per layer), ``"tensor"`` (one per variable)
            or a callable ``name -> group`` (``None`` leaves it out); names are the variables'
            paths less the model's name, with ``.`` for ``/`` (``dense_1.kernel``).
        rank, world: written in each frame when given (Keras has no process group of its own).
        wall_time: write ``t`` (Unix seconds) in each frame. Default True.
        append: append to a file destination instead of truncating it.
        strict: let a failure to build a frame raise instead of warning once.
    """

    def __init__(
        self,
        to: Any = None,
        group_by: GroupBy = "module",
        rank: int | None = None,
        world: int | None = None,
        wall_time: bool = True,
        append: bool = False,
        strict: bool = False,
    ):
        super().__init__()
        check_group_by(group_by)
        self.writer = StreamWriter(to, append=append)
        self.group_by = group_by
        self.rank, self.world = rank, world
        self.wall_time = wall_time
        self.strict = strict
        #: Steps whose frame could not be built or written.
        self.step_errors = 0
        self._warned = False
        self._lock = threading.Lock()
        self._patched: Any = None

    # -- Keras hooks ----------------------------------------------------------------------------
    def on_train_begin(self, logs: Any = None) -> None:
        backend = keras.backend.backend()
        if backend not in ("jax", "torch"):
            raise RuntimeError(
                f"gradtone_hook.keras supports the jax and torch Keras backends, not {backend!r}; "
                "set KERAS_BACKEND=jax or KERAS_BACKEND=torch"
            )
        opt = self.model.optimizer
        # A LossScaleOptimizer hands unscaled gradients to its inner optimizer: hear those.
        inner = getattr(opt, "inner_optimizer", None) or opt
        original = inner.apply  # the bound method of the class (or of a wrapper before us)

        def apply(grads: Any, trainable_variables: Any = None) -> Any:
            self._frame(inner, backend, grads, trainable_variables)
            return original(grads, trainable_variables)

        inner.apply = apply  # an instance attribute: stateless_apply's self.apply finds it
        self._patched = (inner, original)
        # fit() made (or reused) its train step before this event; a compiled one would keep
        # whatever it traced: build it anew around the wrapper.
        self.model.make_train_function(force=True)

    def on_train_end(self, logs: Any = None) -> None:
        if self._patched is not None:
            inner, _ = self._patched
            try:
                del inner.apply  # back to the class's method
            except AttributeError:
                pass
            self._patched = None
            self.model.train_function = None  # the next fit() traces a step without the wrapper
        if keras.backend.backend() == "jax":
            import jax

            jax.effects_barrier()  # the last steps' callbacks have written their frames

    # -- internals ------------------------------------------------------------------------------
    def _frame(self, opt: Any, backend: str, grads: Any, variables: Any) -> None:
        try:
            variables = list(variables) if variables is not None else list(opt._trainable_variables)
            pairs = [(v, g) for v, g in zip(variables, grads) if g is not None]
            prefix = f"{self.model.name}/" if self.model is not None else None
            names = [_strip(v.path, prefix).replace("/", ".") for v, _ in pairs]
            groups, member = plan(names, self.group_by)
            if not groups:
                return
            ops = keras.ops
            sums: list[Any] = [None] * len(groups)
            for gi, (_, g) in zip(member, pairs):
                if gi < 0:
                    continue
                g = ops.cast(g, "float32")
                s = ops.sum(g * g)
                sums[gi] = s if sums[gi] is None else sums[gi] + s
            norms = ops.sqrt(ops.stack(sums))
            step = opt.iterations.value
            if backend == "jax":
                import jax

                jax.debug.callback(lambda st, ns: self._write(groups, st, ns), step, norms, ordered=False)
            else:
                self._write(groups, step, norms)
        except Exception as e:  # noqa: BLE001 - a sonification must never end a training run
            self._fail(e)

    def _write(self, groups: list[str], step: Any, norms: Any) -> None:
        try:
            if hasattr(norms, "detach"):
                norms = norms.detach().cpu()
            if hasattr(step, "detach"):
                step = step.detach().cpu()
            vals = [(g, float(v)) for g, v in zip(groups, norms.tolist())]
            t = _time.time() if self.wall_time else None
            with self._lock:
                self.writer.write_frame(int(step), vals, None, self.rank, self.world, t)
        except Exception as e:  # noqa: BLE001
            self._fail(e)

    def _fail(self, e: BaseException) -> None:
        if self.strict:
            raise e
        self.step_errors += 1
        if not self._warned:
            self._warned = True
            _warn(f"keras frame: {type(e).__name__}: {e}. Training goes on; further failures are counted silently.")


def _strip(path: str, prefix: str | None) -> str:
    # "sequential/dense_1/kernel": the model's own name is the same on every path, so it goes.
    return path[len(prefix) :] if prefix and path.startswith(prefix) else path
