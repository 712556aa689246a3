"""Hugging Face ``transformers.Trainer``: ``Trainer(..., callbacks=[GradToneCallback()])``.

One frame per optimizer step, written in ``on_pre_optimizer_step`` (after the gradient
accumulation, before ``optimizer.step()``). The Trainer clips the gradients (``max_grad_norm``,
1.0 by default) *before* any callback runs, so the norms are read earlier: when each backward
pass has finished (an autograd engine callback queued from a gradient hook, run after
DistributedDataParallel has averaged the gradients), as device tensors, with no host sync.
The frame therefore holds the pre-clip norms of the accumulated gradient, ``"clip"`` is
``args.max_grad_norm`` when it is > 0, and with fp16 AMP the norms are divided by the
Trainer's loss scale (the gradients are still scaled when backward ends). The loss is the
mean of the model outputs' ``loss`` over the step's micro-batches (read from a forward hook;
absent when the model computes no loss itself). The step is ``state.global_step``; every rank
writes, with ``rank``/``world`` from ``args.process_index``/``args.world_size``.

Importing this module imports ``transformers``.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from ._hook import GradTone

__all__ = ["GradToneCallback"]


class GradToneCallback(TrainerCallback):
    """Streams each optimizer step's gradient norms to gradtone.

    Args:
        to: destination, as :class:`gradtone_hook.GradTone`'s ``to`` (``None``: the
            ``GRADTONE_TO`` environment variable, else stdout).
        **kwargs: passed to :class:`gradtone_hook.GradTone` (``include``, ``exclude``,
            ``group_by``, ``every``, ``wall_time``, ``strict``, ``append``...). ``rank``,
            ``world`` and ``clip`` come from the Trainer's arguments unless given here.

    The :class:`~gradtone_hook.GradTone` is created at ``on_train_begin`` and is available as
    :attr:`tone` afterwards.
    """

    def __init__(self, to: Any = None, **kwargs: Any):
        self.to = to
        self.kwargs = kwargs
        #: The hook, once training has started.
        self.tone: GradTone | None = None
        self._handles: list[Any] = []
        self._queued = False
        self._norms: list[tuple[int, Any]] | None = None
        self._loss_sum: Any = None
        self._loss_n = 0

    # -- capture --------------------------------------------------------------------------------
    def _on_grad(self, _param: Any) -> None:
        # A gradient was accumulated: make sure the norms are read once this backward is over.
        if not self._queued:
            self._queued = True
            self._engine().queue_callback(self._after_backward_1)

    @staticmethod
    def _engine() -> Any:
        import torch

        return torch.autograd.Variable._execution_engine

    def _after_backward_1(self) -> None:
        # Runs at the end of backward; DDP's own end-of-backward callback (which waits for the
        # all-reduce and writes the averaged gradients) may still be queued behind us, so read one
        # callback later: callbacks queued while callbacks run are run after them.
        self._engine().queue_callback(self._after_backward_2)

    def _after_backward_2(self) -> None:
        self._queued = False
        tone = self.tone
        if tone is None:
            return
        try:
            if tone._dropped:
                tone._warn_dropped()
            self._norms = tone._grad_norms()  # new tensors: clipping later does not change them
        except Exception:  # noqa: BLE001 - never crash training; step() then reads post-clip
            self._norms = None

    def _on_forward(self, module: Any, _inputs: Any, output: Any) -> None:
        if not module.training:
            return
        loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
        if loss is None or not hasattr(loss, "detach"):
            return
        loss = loss.detach()
        if loss.numel() != 1:
            loss = loss.float().mean()
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._loss_n += 1

    # -- Trainer events -------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None:
            return
        self._remove_hooks()
        kw = dict(self.kwargs)
        kw.setdefault("rank", getattr(args, "process_index", None))
        kw.setdefault("world", getattr(args, "world_size", None))
        if self.tone is not None:
            kw.setdefault("append", True)  # a second train() appends to the same file
        self.tone = GradTone(model, to=self.to, **kw)
        for _, p, _ in self.tone._params:
            self._handles.append(p.register_post_accumulate_grad_hook(self._on_grad))
        self._handles.append(model.register_forward_hook(self._on_forward))

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._queued = False  # in case a backward failed before its end-of-backward callback

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        tone = self.tone
        if tone is None:
            return
        norms, self._norms = self._norms, None
        loss = None
        if self._loss_sum is not None and self._loss_n:
            loss = self._loss_sum / self._loss_n
        self._loss_sum, self._loss_n = None, 0
        clip = self.kwargs.get("clip")
        if clip is None:
            clip = getattr(args, "max_grad_norm", None)
        step = int(state.global_step)
        if norms is None:
            # No backward seen (e.g. DeepSpeed owns the gradients): read them now, as they are.
            tone.step(loss=loss, step=step, clip=clip, unscaled=True)
            return
        scale = _scale_of(kwargs.get("optimizer"))
        tone._next_step = step + 1
        if step % tone.every:
            return
        try:
            tone._emit(step, norms, scale, None, loss, None, None, clip)
        except Exception as e:  # noqa: BLE001 - as GradTone.step: warn once, never end training
            if tone.strict:
                raise
            tone.step_errors += 1
            if not tone._warned:
                tone._warned = True
                from ._writer import _warn

                _warn(f"step {step}: {type(e).__name__}: {e}. Training goes on.")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._remove_hooks()
        if self.tone is not None:
            self.tone.close()

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def _scale_of(optimizer: Any) -> float | None:
    """The loss scale the gradients carried when backward ended: accelerate's optimizer wrapper
    holds the GradScaler (fp16); ``None`` without one (fp32, bf16)."""
    sc = getattr(optimizer, "scaler", None)
    if sc is None:
        return None
    enabled = getattr(sc, "is_enabled", None)
    if callable(enabled) and not enabled():
        return None
    try:
        return float(sc.get_scale())
    except Exception:  # noqa: BLE001
        return None
