"""Hugging Face ``transformers.Trainer``: ``Trainer(..., callbacks=[GradToneCallback()])``.

One frame per optimizer step, written in ``on_pre_optimizer_step`` (after the gradient
accumulation, before ``optimizer.step()``). The Trainer clips the gradients (``max_grad_norm``,
1.0 by default) *before* any callback runs, so the norms are read earlier: when the step's last
backward pass has finished (an autograd engine callback queued from the backward itself -- by a
hook on the first selected parameter, registered once -- run after DistributedDataParallel has
averaged the gradients), once per optimizer step, as device
tensors, with no host sync; the micro-batches before the last are not read (accelerate's
``GradientState.sync_gradients`` tells them apart). The frame therefore holds the pre-clip norms
of the accumulated gradient -- what the Trainer clips and logs as ``grad_norm`` -- ``"clip"`` is
``args.max_grad_norm`` when it is > 0, and with fp16 AMP the norms are divided by the Trainer's
loss scale (the gradients are still scaled when backward ends).

The loss is the one the Trainer logs for the step: the model output's ``loss`` of each
micro-batch, weighted as the Trainer weighs it in the loss it back-propagates (divided by the
number of micro-batches, or not when the model already normalised it by the step's token count,
times the number of processes when tokens are averaged across them), summed over the step. The
weight is read from the gradient that reaches the output's ``loss`` during the step's last
backward (kept by ``retain_grad``, or, when that parameter goes without a gradient, by a pre-hook
on the loss's autograd node; the Trainer weighs every micro-batch of a step alike), so whatever
the Trainer's version does, the frame follows (absent when the model computes no loss itself).
The step is ``state.global_step``; every rank writes, with ``rank``/``world`` from
``args.process_index``/``args.world_size``.

Importing this module imports ``transformers``.
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Any

import torch
from transformers import TrainerCallback

from ._hook import GradTone

__all__ = ["GradToneCallback"]

#: Loss dtypes whose product with their gradient needs no conversion.
_WIDE = (torch.float32, torch.float64)


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
        self._norms: list[tuple[list[int], Any]] | None = None
        #: The step's norms from :meth:`GradTone._launch` (the common case), else ``_norms``.
        self._vec: Any = None
        #: The step's loss as the Trainer weighs it: each backward's (loss value, its gradient)
        #: pair, multiplied and summed at the optimizer step (see :meth:`_weighted_loss`).
        self._weighed: list[tuple[Any, Any]] = []
        #: The losses of the step's micro-batches before the last, weighed as the last one.
        self._unweighed: list[Any] = []
        #: The outputs' losses, whose plain mean is the step's when no backward reached them
        #: (summed only then: most steps never need it).
        self._fwd: list[Any] = []
        self._grad_state: Any = None
        #: The end-of-backward read: one engine callback later with several processes (see
        #: :meth:`_after_backward_1`), at once with one.
        self._after_backward = self._after_backward_1
        self._param_hooks = False
        #: Whether this optimizer step gets a frame (``every``): its norms are read.
        self._wanted = True
        #: Whether the end of backward is caught by a hook on one parameter, registered once
        #: (:meth:`_on_grad`), with the loss's gradient kept by ``retain_grad`` -- cheaper than
        #: a hook on each step's loss, which is the way when that parameter went without a
        #: gradient at some step.
        self._trigger = False
        #: The step's last micro-batch's (loss value, loss) whose gradient ``retain_grad`` keeps.
        self._retained: list[tuple[Any, Any]] = []

    # -- capture --------------------------------------------------------------------------------
    def _last_micro_batch(self) -> bool:
        """Whether this backward ends the accumulation of a step that gets a frame (``every``);
        without accelerate's state to tell, every backward is taken for the last."""
        st = self._grad_state
        return self._wanted and (True if st is None else bool(getattr(st, "sync_gradients", True)))

    def _on_grad(self, _param: Any) -> None:
        # A gradient was accumulated (the fallback trigger, for outputs with no tensor to hook):
        # read the norms once the step's last backward is over.
        if not self._queued and self._last_micro_batch():
            self._queued = True
            self._engine().queue_callback(self._after_backward)

    def _on_loss_grad(self, value: Any, grad: Any) -> None:
        # Backward starts at the loss the Trainer built from this output: grad is d(that)/d(value).
        if value is not None and grad is not None:
            self._weighed.append((value, grad))
        if not self._queued and self._last_micro_batch():
            self._queued = True
            self._engine().queue_callback(self._after_backward)

    def _on_loss_grads(self, value: Any, index: int, grads: Any) -> None:
        # The loss's node's pre-hook: its gradients, one per output of the node.
        self._on_loss_grad(value, grads[index])

    def _weighted_loss(self) -> Any:
        """Sum of the micro-batches' loss x its gradient (the last one's for those not hooked):
        a Python float on the CPU, else a device tensor (read with the norms, no sync here)."""
        pairs, self._weighed = self._weighed, []
        rest, self._unweighed = self._unweighed, []
        last = pairs[-1][1]
        scalars = all(v.numel() == 1 and g.numel() == 1 for v, g in pairs) and all(v.numel() == 1 for v in rest)
        if scalars and last.device.type == "cpu":
            w = last.item()
            return math.fsum([v.item() * g.item() for v, g in pairs] + [v.item() * w for v in rest])
        if rest:  # weighed as the last, hooked, micro-batch
            pairs.append((functools.reduce(operator.add, rest), last))
        total: Any = None
        for value, grad in pairs:
            if value.dtype is grad.dtype and value.dtype in _WIDE and value.numel() == 1:
                w = value * grad.detach()  # the common case: one product, no conversions
            else:
                w = (value.float() * grad.detach().float()).sum()
            total = w if total is None else total + w
        return total

    @staticmethod
    def _engine() -> Any:
        return torch.autograd.Variable._execution_engine

    def _after_backward_1(self) -> None:
        # Runs at the end of backward; DDP's own end-of-backward callback (which waits for the
        # all-reduce and writes the averaged gradients) may still be queued behind us, so read one
        # callback later: callbacks queued while callbacks run are run after them.
        self._engine().queue_callback(self._after_backward_2)

    def _after_backward_2(self) -> None:
        self._queued = False
        retained, self._retained = self._retained, []
        for value, loss in retained:  # the loss's gradient, kept by retain_grad
            if loss.grad is not None:
                self._weighed.append((value, loss.grad))
        tone = self.tone
        if tone is None:
            return
        try:
            if tone._dropped:
                tone._warn_dropped()
            # New tensors: clipping later does not change them. The weights' norms are read here
            # too (fused with the gradients'): the weights do not change before optimizer.step().
            self._vec = tone._launch()
            if self._vec is None:
                self._norms = tone._grad_norms()
        except Exception:  # noqa: BLE001 - never crash training; step() then reads post-clip
            self._vec = self._norms = None

    def _on_forward(self, module: Any, _inputs: Any, output: Any) -> None:
        if not module.training:
            return
        loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
        if loss is not None and hasattr(loss, "detach"):
            value = loss.detach()
            self._fwd.append(value if value.numel() == 1 else value.float().mean())
            if loss.requires_grad:
                if not self._last_micro_batch():
                    # The Trainer weighs every micro-batch of a step alike: this one's weight is
                    # read from the step's last backward (one hook per step, not per micro-batch).
                    self._unweighed.append(value)
                    return
                if self._trigger:
                    loss.retain_grad()  # read at the end of backward (see _after_backward_2)
                    self._retained.append((value, loss))
                    return
                node = loss.grad_fn
                if node is not None and hasattr(node, "register_prehook"):
                    # A pre-hook on the loss's node: what a tensor hook does, at half its cost.
                    node.register_prehook(functools.partial(self._on_loss_grads, value, loss.output_nr))
                else:
                    loss.register_hook(functools.partial(self._on_loss_grad, value))
                return
        # No loss to hook (the Trainer computes it from the logits): trigger on the first output
        # tensor that backward will reach, else on the parameters' gradients.
        if isinstance(output, dict):
            outs: Any = output.values()
        elif isinstance(output, (tuple, list)):
            outs = output
        else:
            outs = (output,)
        for x in outs:
            if getattr(x, "requires_grad", False) and hasattr(x, "register_hook"):
                x.register_hook(lambda g: self._on_loss_grad(None, g))
                return
        self._need_param_hooks()

    def _need_param_hooks(self) -> None:
        if self._param_hooks or self.tone is None:
            return
        self._param_hooks = True
        for _, p, _ in self.tone._params:
            self._handles.append(p.register_post_accumulate_grad_hook(self._on_grad))

    # -- Trainer events -------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if model is None:
            return
        self._remove_hooks()
        kw = dict(self.kwargs)
        kw.setdefault("rank", getattr(args, "process_index", None))
        kw.setdefault("world", getattr(args, "world_size", None))
        world = getattr(args, "world_size", None)
        self._after_backward = self._after_backward_2 if world == 1 else self._after_backward_1
        if self.tone is not None:
            kw.setdefault("append", True)  # a second train() appends to the same file
        self.tone = GradTone(model, to=self.to, **kw)
        try:  # shared state: reading it later sees what the Trainer set for each micro-batch
            from accelerate.state import GradientState

            self._grad_state = GradientState()
        except Exception:  # noqa: BLE001 - without accelerate every backward is read
            self._grad_state = None
        self._handles.append(model.register_forward_hook(self._on_forward))
        # The end-of-backward trigger, registered once: on the first selected parameter (the
        # input's side of the model, which every backward reaches).
        first = self.tone._plist[0]
        self._trigger = hasattr(first, "register_post_accumulate_grad_hook")
        self._retained = []
        if self._trigger:
            self._handles.append(first.register_post_accumulate_grad_hook(self._on_grad))

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._queued = False  # in case a backward failed before its end-of-backward callback
        tone = self.tone
        self._wanted = tone is None or int(state.global_step) % tone.every == 0

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        tone = self.tone
        if tone is None:
            return
        norms, self._norms = self._norms, None
        vec, self._vec = self._vec, None
        if self._retained:
            # The trigger's parameter went without a gradient: this step is read as it is now
            # (below, its loss the plain mean); later steps hook each step's loss instead.
            self._trigger = False
            self._retained = []
        step = int(state.global_step)
        if step % tone.every:  # no frame at this step: nothing to read
            tone._next_step = step + 1
            self._weighed, self._unweighed, self._fwd = [], [], []
            return
        scale = _scale_of(kwargs.get("optimizer"))
        loss = None
        try:
            if self._weighed:
                loss = self._weighted_loss()
                # The backward passes carried the fp16 loss scale too.
                loss = loss / scale if scale else loss
            elif self._fwd:
                loss = functools.reduce(operator.add, self._fwd) / len(self._fwd)
        except Exception:  # noqa: BLE001 - odd loss shapes: the frame goes without its loss
            loss = None
        self._weighed, self._unweighed, self._fwd = [], [], []
        clip = self.kwargs.get("clip")
        if clip is None:
            clip = getattr(args, "max_grad_norm", None)
        if vec is None and norms is None:
            # No backward seen (e.g. DeepSpeed owns the gradients): read them now, as they are.
            tone.step(loss=loss, step=step, clip=clip, unscaled=True)
            return
        tone._next_step = step + 1
        try:
            items = [] if loss is None else [("loss", loss)]
            if vec is not None and tone._scalars(items):
                tone._finish(step, vec, scale, items, clip, False)
            else:
                if norms is None:  # a loss of several elements: the general read (it warns)
                    norms = tone._grad_norms()
                tone._emit(step, norms, scale, None, loss, None, None, clip)
        except Exception as e:  # noqa: BLE001 - as GradTone.step: warn once, never end training
            tone._failed(step, e)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._remove_hooks()
        if self.tone is not None:
            self.tone.close()

    def _remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._param_hooks = False


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
