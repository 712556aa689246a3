"""PyTorch Lightning: ``Trainer(callbacks=[GradToneCallback()])`` and the training sounds.

The norms are read in ``on_before_optimizer_step``: after ``backward()`` (and after the whole
gradient accumulation), after Lightning has unscaled AMP gradients (``precision="16-mixed"``),
and *before* Lightning clips them (``gradient_clip_val``), so a frame holds the pre-clip norms
and, when the trainer clips by norm, the threshold as ``"clip"``. The loss is the one Lightning
hands to ``on_before_backward`` (summed over accumulated micro-batches, i.e. their mean, since
Lightning divides each by ``accumulate_grad_batches``): the loss whose gradient the optimizer
step applies. (What ``self.log("loss", loss)`` sends a logger per step with accumulation is the
last micro-batch's value; the frame's is the mean of the step's micro-batches.) The step is
``trainer.global_step``; every rank writes its frames with ``rank``/``world`` from the trainer,
like the plain hook.

Importing this module imports Lightning (``lightning.pytorch``, else ``pytorch_lightning``).
"""

from __future__ import annotations

from typing import Any

try:  # the unified package first; the standalone one is the same API
    from lightning.pytorch.callbacks import Callback as _Callback
except ImportError:  # pragma: no cover - depends on what is installed
    from pytorch_lightning.callbacks import Callback as _Callback

from ._hook import GradTone

__all__ = ["GradToneCallback"]


class GradToneCallback(_Callback):
    """Streams each optimizer step's gradient norms to gradtone.

    Args:
        to: destination, as :class:`gradtone_hook.GradTone`'s ``to`` (``None``: the
            ``GRADTONE_TO`` environment variable, else stdout).
        **kwargs: passed to :class:`gradtone_hook.GradTone` (``include``, ``exclude``,
            ``group_by``, ``every``, ``wall_time``, ``strict``, ``append``...). ``rank``,
            ``world`` and ``clip`` come from the trainer unless given here.

    The :class:`~gradtone_hook.GradTone` is created at ``on_fit_start`` for the
    ``LightningModule`` and is available as :attr:`tone` afterwards.
    """

    def __init__(self, to: Any = None, **kwargs: Any):
        super().__init__()
        self.to = to
        self.kwargs = kwargs
        #: The hook, once fitting has started.
        self.tone: GradTone | None = None
        self._loss: Any = None

    # -- Lightning hooks ------------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        kw = dict(self.kwargs)
        if self.tone is not None:
            # A second fit() with the same callback: a new hook that appends to the same file.
            kw.setdefault("append", True)
        kw.setdefault("rank", getattr(trainer, "global_rank", None))
        kw.setdefault("world", getattr(trainer, "world_size", None))
        self.tone = GradTone(pl_module, to=self.to, **kw)

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
        if loss is None:
            return
        loss = loss.detach()
        self._loss = loss if self._loss is None else self._loss + loss

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        tone = self.tone
        if tone is None:
            return
        loss, self._loss = self._loss, None
        # Lightning clips after this hook; only norm clipping has a threshold on the norm.
        clip = self.kwargs.get("clip")
        if clip is None and getattr(trainer, "gradient_clip_algorithm", "norm") in (None, "norm"):
            clip = getattr(trainer, "gradient_clip_val", None)
        # unscaled=True: with a GradScaler, Lightning unscales before calling this hook. As
        # tone.step(), without building the frame's dict (nobody reads it here).
        tone._guarded(int(trainer.global_step), loss, None, None, True, clip, False)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit" and self.tone is not None:
            self.tone.close()
