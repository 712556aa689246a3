"""The PyTorch side: read gradient norms after ``backward()`` and write one gradtone frame per step.

torch is imported when a :class:`GradTone` is made, never at package import.
"""

from __future__ import annotations

import collections
import fnmatch
import math
import time as _time
from typing import Any, Sequence

from ._format import FrameEncoder, clip_value, frame_dict
from ._groups import GroupBy, check_group_by, group_of
from ._writer import StreamWriter, _warn

# Wrappers whose parameter names gain a prefix ("module.", "_orig_mod."); we name parameters as
# the user's own model does, so a DDP run and a single-process run sound (and read) the same.
_WRAPPER_ATTRS = {"DistributedDataParallel": "module", "DataParallel": "module", "OptimizedModule": "_orig_mod"}


def _unwrap(model: Any) -> Any:
    for _ in range(8):  # DDP(compile(model)) and the like; bounded to stay safe on odd objects
        attr = _WRAPPER_ATTRS.get(type(model).__name__)
        if attr is None or not hasattr(model, attr):
            return model
        model = getattr(model, attr)
    return model


def _combine(norms: Sequence[float]) -> float:
    """sqrt(sum of squares) of member norms, NaN if any member is NaN (an alarm must not be
    masked by an infinity, as ``math.hypot`` would), overflow-safe for float64 grads."""
    if len(norms) == 1:  # group_by="tensor": a norm is its own combination
        return norms[0]
    h = math.hypot(*norms)  # 0.0 for none; inf if any is inf, else NaN if any is NaN
    if h == math.inf and any(n != n for n in norms):
        return math.nan
    return h


def _stage_name(state: Any) -> str | None:
    stage = state.get("stage") if isinstance(state, dict) else None
    return getattr(stage, "name", None)


class GradTone:
    """Streams gradient norms of ``model`` to gradtone, one frame per :meth:`step`.

    Args:
        model: an ``nn.Module`` (DDP / DataParallel / ``torch.compile`` wrappers are unwrapped
            for naming) or an iterable of ``(name, parameter)`` pairs.
        to: destination, see :class:`StreamWriter`: ``None`` (default: ``$GRADTONE_TO``, else
            stdout), ``"stdout"``, ``"stderr"``,
            ``"udp://HOST:PORT"``, ``"osc://HOST:PORT"``, a file path (``{rank}`` is replaced by
            the rank) or a file object.
        include: glob patterns (``fnmatch``, case-sensitive) on full parameter names; a
            parameter is selected if any pattern matches. Default: every trainable parameter.
            Mind the names: recurrent layers name their weights ``weight_ih_l0`` /
            ``weight_hh_l0`` and attention ``in_proj_weight``, so "the weights" is
            ``["*weight*"]``, not ``["*weight"]``. At the first step, parameters that have a
            gradient but that ``include`` left out are named in a one-time warning (list them
            in ``exclude`` to leave them out silently).
        exclude: glob patterns removed after ``include``.
        clip: the ``max_norm`` you pass to ``torch.nn.utils.clip_grad_norm_`` (every step;
            ``step(clip=...)`` overrides it for one step). Written in each frame as ``"clip"``
            so gradtone can tell a clipped spike from a divergence. Call :meth:`step` after
            ``backward()`` and *before* clipping: the norms are the pre-clip ones.
        group_by: ``"module"`` (default: one value per module, the L2 norm over its selected
            tensors, i.e. sqrt of the sum of their squared norms), ``"tensor"`` (one value per
            parameter tensor) or a callable ``name -> group name`` (``None`` drops the tensor).
        scaler: an AMP ``GradScaler``; norms are divided by its scale unless the gradients were
            already unscaled (``scaler.unscale_(optimizer)``), which is detected from the scaler's
            per-optimizer state (see ``optimizer``) or stated with ``unscaled``.
        optimizer: the optimizer (or a list of them) whose unscale state decides, per parameter,
            whether to divide. Optional; without it the scaler's states must agree.
        unscaled: ``True``/``False`` overrides the detection for every step (``step(unscaled=)``
            overrides it for one step).
        rank, world: override the rank / world size (default: from the initialised default
            ``torch.distributed`` process group, else omitted).
        wall_time: write ``t`` (Unix seconds) in each frame. Default True.
        start_step: the first internally counted step. Default 0.
        every: read and write every N-th step only (no device sync on the others). Default 1.
        strict: raise errors from :meth:`step` instead of warning once and carrying on. Default
            False: a sonification must never end a training run.
        append: append to a file destination instead of truncating it.
        param_norms: also write each group's parameter (weight) norm as the frame's ``"params"``
            (read in the same device sync as the gradient norms), so gradtone can tell weights
            that stopped moving (a frozen or crippled optimizer) while gradients flow.
            ``"auto"`` (default): in every frame while that is cheap; when the hook's own time
            would exceed ``param_budget`` of a step (short steps, e.g. a small model on a CPU),
            in every k-th frame only (k <= 4, chosen from the hook's measured time and the
            time between frames), and in every frame again for the 30 frames after one with a
            non-finite norm or loss, and while two reads in a row are bit-identical. gradtone
            compares each frame's ``"params"`` with the last ones over the steps between, so a
            frozen optimizer is still heard within a few steps. ``True`` or ``"every"``: in
            every frame. ``False``: never.
        param_budget: with ``param_norms="auto"``, the share of a step the hook may take
            (default 0.01: 1 %).
    """

    def __init__(
        self,
        model: Any,
        to: Any = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        group_by: GroupBy = "module",
        scaler: Any = None,
        optimizer: Any = None,
        unscaled: bool | None = None,
        rank: int | None = None,
        world: int | None = None,
        wall_time: bool = True,
        start_step: int = 0,
        every: int = 1,
        strict: bool = False,
        append: bool = False,
        clip: float | None = None,
        param_norms: bool | str = "auto",
        param_budget: float = 0.01,
    ):
        import torch  # lazily: the writer parts of the package work without torch

        self._torch = torch
        if isinstance(include, str):
            include = [include]
        if isinstance(exclude, str):
            exclude = [exclude]
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if start_step < 0:
            raise ValueError(f"start_step must be >= 0, got {start_step}")
        check_group_by(group_by)

        clip_value(clip)  # a bad type fails here, not at every step
        if param_norms not in (True, False, "every", "auto"):
            raise ValueError(f"param_norms must be 'auto', 'every', True or False, got {param_norms!r}")
        if not (isinstance(param_budget, (int, float)) and 0 < param_budget <= 1):
            raise ValueError(f"param_budget must be a share of a step in (0, 1], got {param_budget!r}")

        named = self._named_parameters(model)
        self._params: list[tuple[str, Any, int]] = []  # (name, parameter, group index)
        self._groups: list[str] = []
        #: Trainable parameters that ``include`` left out (checked for gradients at the first step).
        self._dropped: list[tuple[str, Any]] = []
        self._dropped_checks = 0
        index: dict[str, int] = {}
        for name, p in named:
            if not getattr(p, "requires_grad", True):
                continue  # frozen: it never has a gradient to hear
            if include and not any(fnmatch.fnmatchcase(name, pat) for pat in include):
                if not (exclude and any(fnmatch.fnmatchcase(name, pat) for pat in exclude)):
                    self._dropped.append((name, p))
                continue
            if exclude and any(fnmatch.fnmatchcase(name, pat) for pat in exclude):
                continue
            g = group_of(name, group_by)
            if g is None:
                continue
            if g not in index:
                index[g] = len(self._groups)
                self._groups.append(g)
            self._params.append((name, p, index[g]))
        if not self._params:
            names = [n for n, _ in self._named_parameters(model)][:8]
            raise ValueError(
                f"no parameter selected by include={include!r} exclude={exclude!r}; parameter names look like {names}"
            )

        self._include = list(include) if include else None
        #: The selected parameters, and each group's members (indices into them): the per-step
        #: read (:meth:`_launch`) works on these lists, made once.
        self._plist = [p for _, p, _ in self._params]
        self._members: list[list[int]] = [[] for _ in self._groups]
        for i, (_, _, gi) in enumerate(self._params):
            self._members[gi].append(i)
        self._one_per_group = all(m == [i] for i, m in enumerate(self._members))
        self._encoder = FrameEncoder(self._groups)
        #: False once the common read failed (parameters on several devices): not tried again.
        self._common = True
        #: The device :meth:`_on_host` last checked, and whether the common read's tensors were
        #: all on the CPU then.
        self._host_checked: Any = None
        self._host = False
        #: The dtype every selected gradient was last seen in, all alike (see :meth:`_launch`).
        self._one_dtype: Any = None
        self.clip = clip
        self.writer = StreamWriter(to, append=append)
        self.scaler = scaler
        self._optimizers = (
            [] if optimizer is None else list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]
        )
        self.unscaled = unscaled
        #: Whether frames carry ``"params"`` at all (every frame, or on a budget).
        self.param_norms = param_norms is not False
        #: The weights' read on a budget (``"auto"``): see :class:`_ParamBudget`.
        self._budget = _ParamBudget(param_budget) if param_norms == "auto" else None
        #: Whether the step being read reads the weights too (decided by :meth:`_params_now`).
        self._pnow = self.param_norms
        self._rank, self._world = rank, world
        self._dist_checked = rank is not None
        self.wall_time = wall_time
        self.every = every
        self.strict = strict
        self._next_step = start_step
        self._warned = False
        self._warned_mixed = False
        self._warned_loss_shape = False
        #: Steps whose frame could not be computed (exceptions inside :meth:`step`).
        self.step_errors = 0

    # -- public ---------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The value names, in model order (the order of the ``values`` object)."""
        return list(self._groups)

    @property
    def parameter_names(self) -> list[str]:
        """The selected parameter names, in model order."""
        return [n for n, _, _ in self._params]

    @property
    def errors(self) -> int:
        """Frames that could not be delivered (socket/file errors) plus steps that failed."""
        return self.writer.errors + self.step_errors

    def step(
        self,
        loss: Any = None,
        losses: dict[str, Any] | None = None,
        step: int | None = None,
        values: dict[str, Any] | None = None,
        unscaled: bool | None = None,
        clip: float | None = None,
    ) -> dict | None:
        """Read the gradients now and write one frame.

        Call after ``loss.backward()`` and before ``optimizer.step()`` (and before
        ``optimizer.zero_grad()``). With gradient clipping, call it *before*
        ``clip_grad_norm_`` (the frame holds the pre-clip norms, what the model really
        produced) and pass the threshold: ``tone.step(loss=loss, clip=0.25)``; it is written
        as the frame's ``"clip"`` (default: the ``clip`` given to the constructor).

        ``loss`` becomes ``losses["loss"]``; ``losses`` adds named terms (tensors or numbers).
        ``step`` overrides the internal counter (which then continues from ``step + 1``).
        ``values`` adds extra named quantities after the norms (e.g. the learning rate).
        Returns the frame as a dict (``None`` on a skipped or failed step).

        One device→host synchronisation per step (per device holding gradients): all norms
        (from fused ``torch._foreach_norm`` kernels), tensor losses and the AMP scale are stacked
        and read with one ``.tolist()``.
        """
        return self._guarded(step, loss, losses, values, unscaled, clip, True)

    def _guarded(
        self,
        step: int | None,
        loss: Any,
        losses: dict[str, Any] | None,
        values: dict[str, Any] | None,
        unscaled: bool | None,
        clip: float | None,
        want_frame: bool,
    ) -> dict | None:
        """:meth:`step`; with ``want_frame`` False (the framework callbacks, which drop it) the
        frame's dict is not built, only its line."""
        if step is None:
            step = self._next_step
        self._next_step = int(step) + 1
        if int(step) % self.every:
            return None
        try:
            return self._step(
                int(step), loss, losses, values, unscaled, self.clip if clip is None else clip, want_frame
            )
        except Exception as e:  # noqa: BLE001 - never crash the user's training
            self._failed(step, e)
            return None

    def _failed(self, step: Any, e: Exception) -> None:
        if self.strict:
            raise e
        self.step_errors += 1
        if not self._warned:
            self._warned = True
            _warn(f"step {step}: {type(e).__name__}: {e}. Training goes on; further failures are counted silently.")

    def term_norms(self, terms: dict[str, Any]) -> dict[str, float]:
        """Per-loss gradient norms: for a loss ``L = sum_i w_i * L_i``, pass the *weighted* terms
        ``{"d_real": w1 * l1, "d_fake": w2 * l2}`` before ``backward()``; returns
        ``{"d_real/<group>": norm, ...}`` for every selected group, to pass as ``step(values=...)``.
        gradtone hears each term as its own instrument (the part of a value's name before ``/``).

        One ``torch.autograd.grad`` per term with ``retain_graph=True``, so the usual
        ``loss.backward()`` still works afterwards; the cost is one extra backward pass per term.
        Parameters a term does not reach count as 0. AMP scaling is not applied here: pass
        unscaled terms.
        """
        torch = self._torch
        params = [p for _, p, _ in self._params]
        out: dict[str, float] = {}
        for term, value in terms.items():
            if "/" in str(term):
                raise ValueError(f"term name {term!r} must not contain '/' (it separates term and layer)")
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            sq = [
                torch.zeros((), dtype=torch.float64, device=p.device)
                if g is None
                else torch.linalg.vector_norm(g.detach(), 2).to(torch.float64) ** 2
                for p, g in zip(params, grads)
            ]
            per_group: list[list[Any]] = [[] for _ in self._groups]
            for (_, _, gi), v in zip(self._params, sq):
                per_group[gi].append(v.cpu())
            totals = torch.stack([torch.stack(vs).sum() for vs in per_group]).sqrt().tolist()
            out.update({f"{term}/{g}": float(v) for g, v in zip(self._groups, totals)})
        return out

    def close(self) -> None:
        """Close the destination (socket / file opened by the hook)."""
        self.writer.close()

    def __enter__(self) -> GradTone:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------
    @staticmethod
    def _named_parameters(model: Any) -> list[tuple[str, Any]]:
        m = _unwrap(model)
        if hasattr(m, "named_parameters"):
            return list(m.named_parameters())
        return [(str(n), p) for n, p in m]

    def _rank_world(self) -> tuple[int | None, int | None]:
        if not self._dist_checked:
            try:
                dist = self._torch.distributed
                if dist.is_available() and dist.is_initialized():
                    self._rank, self._world = dist.get_rank(), dist.get_world_size()
                    self._dist_checked = True  # a process group doesn't change rank; cache it
            except Exception:  # noqa: BLE001
                pass
        return self._rank, self._world

    def _scale_plan(self, unscaled: bool | None) -> tuple[Any | None, set | None]:
        """(the scale: a tensor, a float or None, the ids of the params NOT to divide or None=all)."""
        sc = self.scaler
        if sc is None:
            return None, None
        if unscaled is None:
            unscaled = self.unscaled
        if unscaled:
            return None, None
        is_enabled = getattr(sc, "is_enabled", None)
        if callable(is_enabled) and not is_enabled():
            return None, None
        skip: set | None = None
        if unscaled is None:
            states = getattr(sc, "_per_optimizer_states", None)
            if isinstance(states, dict) and states:
                # UNSCALED after scaler.unscale_(opt); STEPPED after scaler.step(opt) (which unscales).
                done = {k for k, st in states.items() if _stage_name(st) in ("UNSCALED", "STEPPED")}
                if self._optimizers:
                    skip = {
                        id(p)
                        for o in self._optimizers
                        if id(o) in done
                        for grp in o.param_groups
                        for p in grp["params"]
                    }
                elif done and len(done) == len(states):
                    return None, None
                elif done and not self._warned_mixed:
                    self._warned_mixed = True
                    _warn(
                        "GradScaler: some optimizers were unscaled, some not; pass optimizer=[...] to "
                        "GradTone so each parameter is divided correctly (dividing all for now)."
                    )
        getter = getattr(sc, "_get_scale_async", None)
        scale: Any = None
        if callable(getter):
            try:
                scale = getter()  # a device tensor: read in the same sync as the norms
            except Exception:  # noqa: BLE001
                scale = None
        if scale is None or not hasattr(scale, "device"):
            scale = float(sc.get_scale())
        return scale, skip

    def _param_norms(self) -> list[tuple[list[int], Any]]:
        """The weights' L2 norms, as :meth:`_grad_norms` reads the gradients'."""
        return self._fused_norms((i, p) for i, (_, p, _) in enumerate(self._params))

    def _grad_norms(self) -> list[tuple[list[int], Any]]:
        """The gradients' L2 norms, still on their devices (no host sync): see
        :meth:`_fused_norms`. Parameters without a gradient are left out."""
        return self._fused_norms((i, p.grad) for i, (_, p, _) in enumerate(self._params) if p.grad is not None)

    def _fused_norms(self, tensors: Any) -> list[tuple[list[int], Any]]:
        """L2 norms of ``(index into self._params, tensor)`` pairs, still on their devices (no
        host sync): one ``(indices, 1-d norm tensor)`` per device and dtype, each from a fused
        ``torch._foreach_norm`` (a few kernels, not one per tensor)."""
        torch = self._torch
        batches: dict[tuple[Any, Any], tuple[list[int], list[Any]]] = {}
        for i, t in tensors:
            if t.is_sparse:
                t = t.coalesce()._values()
            idx, ts = batches.setdefault((t.device, t.dtype), ([], []))
            idx.append(i)
            ts.append(t)
        out: list[tuple[list[int], Any]] = []
        with torch.no_grad():  # a grad made with create_graph=True must not grow a graph here
            for (_, dtype), (idx, ts) in batches.items():
                # A half-precision norm overflows at 65504: accumulate and return in float32.
                half = dtype in (torch.float16, torch.bfloat16)
                kw = {"dtype": torch.float32} if half else {}
                try:
                    norms = torch._foreach_norm(ts, 2, **kw)
                except Exception:  # noqa: BLE001 - an old torch or an exotic tensor type
                    norms = [torch.linalg.vector_norm(t, 2, **kw) for t in ts]
                out.append((idx, torch.stack(norms)))
        return out

    def _warn_dropped(self) -> None:
        """Once: name the trainable parameters with a gradient that ``include`` left out (looked
        for during the first 10 steps, then never again)."""
        names = [n for n, p in self._dropped if getattr(p, "grad", None) is not None]
        self._dropped_checks += 1
        if names or self._dropped_checks >= 10:
            self._dropped = []
        if names:
            shown = ", ".join(names[:6]) + (f", ... ({len(names) - 6} more)" if len(names) > 6 else "")
            _warn(
                f"include={self._include!r} leaves out {len(names)} parameter(s) that have gradients: "
                f"{shown}. Recurrent layers name their weights weight_ih_l0/weight_hh_l0 and attention "
                "in_proj_weight: use include=['*weight*'] (or no include at all) to hear them, or list "
                "them in exclude=[...] to leave them out without this warning."
            )

    def _step(
        self,
        step: int,
        loss: Any,
        losses: dict[str, Any] | None,
        values: dict[str, Any] | None,
        unscaled: bool | None,
        clip: float | None,
        want_frame: bool = True,
    ) -> dict | None:
        if self._dropped:
            self._warn_dropped()
        scale, skip = self._scale_plan(unscaled)
        if not values and skip is None and not isinstance(scale, self._torch.Tensor):
            items = self._loss_items(loss, losses)
            if self._scalars(items):
                vec = self._launch(items)
                if vec is not None:
                    return self._finish(step, vec, scale, items, clip, want_frame)
        b = self._budget
        t0 = _perf() if b is not None else 0.0
        norms = self._grad_norms()
        if b is not None:
            b.own += _perf() - t0
        return self._emit(step, norms, scale, skip, loss, losses, values, clip)

    def _params_now(self) -> bool:
        """Whether this step's frame carries the weights' norms (always, never, or on the
        budget's turn); sets :attr:`_pnow`, which the read and the frame follow."""
        b = self._budget
        self._pnow = self.param_norms and (b is None or b.due())
        return self._pnow

    @staticmethod
    def _loss_items(loss: Any, losses: dict[str, Any] | None) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = [] if loss is None else [("loss", loss)]
        if losses:
            items.extend(losses.items())
        return items

    def _scalars(self, items: list[tuple[str, Any]]) -> bool:
        """Whether every tensor among the losses has one element (else the general read warns)."""
        tensor = self._torch.Tensor
        return all(v.numel() == 1 for _, v in items if isinstance(v, tensor))

    def _launch(self, items: Sequence[tuple[str, Any]] = ()) -> Any | None:
        """The common case's read, without a host sync: one vector on the device, the norms of
        every selected gradient, then (with ``param_norms``) of every selected weight, from one
        fused ``torch._foreach_norm`` -- the kernel of ``p.grad.norm()``, so the numbers are the
        same -- and the one-element tensors among the losses ``items``, when they are on the same
        device (else :meth:`_finish` reads them apart); on the CPU, the same numbers as a list of
        Python floats (nothing to sync with there). ``None`` when the case is not the common
        one (a gradient missing, dtypes or devices that differ): then :meth:`_grad_norms` and
        :meth:`_emit` do the general read."""
        if not self._common:
            return None
        b = self._budget
        t0 = _perf() if b is not None else 0.0
        torch = self._torch
        ts = [p.grad for p in self._plist]
        g0 = ts[0]
        # A grad made with create_graph=True must not grow a graph here: the general read (under
        # no_grad, which the common one spares itself for the gradients).
        if g0 is None or g0.requires_grad:
            return None
        dtype = g0.dtype
        if dtype is not self._one_dtype:
            # Every gradient in one dtype: checked in full when the first one's changes (a
            # parameter's dtype rarely does); a gradient that is None fails _foreach_norm below.
            if any(g is None or g.dtype is not dtype for g in ts):
                return None
            self._one_dtype = dtype
        pnow = self._params_now()
        # A half-precision norm overflows at 65504: accumulate and return in float32.
        kw = {"dtype": torch.float32} if dtype in (torch.float16, torch.bfloat16) else {}
        try:
            if pnow and b is None:
                ts += self._plist  # a gradient has its parameter's dtype and device
                with torch.no_grad():  # the weights require grad: no graph for their norms
                    norms = torch._foreach_norm(ts, 2, **kw)
            else:
                norms = torch._foreach_norm(ts, 2, **kw)
        except TypeError:  # a gradient is None (its parameter unused at this step)
            return None
        if pnow and b is not None:  # apart, to time what the weights cost
            t1 = _perf()
            with torch.no_grad():
                norms += torch._foreach_norm(self._plist, 2, **kw)
            b.weights = _perf() - t1
        out = self._gather(ts, norms, items)
        if b is not None:
            b.own += _perf() - t0
        return out

    def _gather(self, ts: list[Any], norms: list[Any], items: Sequence[tuple[str, Any]]) -> Any | None:
        """:meth:`_launch`'s result from the 0-d ``norms`` of the tensors ``ts`` and the losses."""
        torch = self._torch
        if self._on_host(ts):
            # On the CPU there is no device to sync with, and reading each 0-d result is
            # cheaper than stacking them.
            host = [x.item() for x in norms]
            host += [v.item() for _, v in items if isinstance(v, torch.Tensor)]
            return host
        losses = [v.detach().reshape(()) for _, v in items if isinstance(v, torch.Tensor)]
        if losses:
            try:
                return torch.stack([*norms, *losses])
            except RuntimeError:  # a loss elsewhere than the gradients: read apart
                pass
        try:
            return torch.stack(norms)
        except RuntimeError:  # several devices: the general read (one sync per device) from now on
            self._common = False
            return None

    def _weights_now(self) -> list[float]:
        """The selected weights' norms, read now (a frame that :meth:`_launch` read without them
        turned out to need them: see :meth:`_ParamBudget.unusual`); one more sync on a device."""
        torch = self._torch
        p0 = self._plist[0]
        kw = {"dtype": torch.float32} if p0.dtype in (torch.float16, torch.bfloat16) else {}
        with torch.no_grad():
            norms = torch._foreach_norm(self._plist, 2, **kw)
            if self._on_host(self._plist):
                return [x.item() for x in norms]
            return torch.stack(norms).tolist()

    def _on_host(self, ts: list[Any]) -> bool:
        """Whether every tensor of the common read is on the CPU (checked in full when the
        first one's device changes, e.g. after ``model.to(device)``)."""
        dev = ts[0].device
        if dev != self._host_checked:
            self._host_checked = dev
            self._host = dev.type == "cpu" and all(t.device == dev for t in ts)
        return self._host

    def _finish(
        self,
        step: int,
        vec: Any,
        scale: float | None,
        loss_items: list[tuple[str, Any]],
        clip: float | None,
        want_frame: bool,
    ) -> dict | None:
        """Reads what :meth:`_launch` returned (the norms and the tensor losses ``loss_items``
        had then, in one ``.tolist()``), and writes the frame (its dict returned when
        ``want_frame``)."""
        b = self._budget
        t0 = _perf() if b is not None else 0.0
        torch = self._torch
        t = _time.time() if self.wall_time else None
        n = len(self._plist)
        pnow = self._pnow
        size = 2 * n if pnow else n
        tensor = torch.Tensor
        if isinstance(vec, list):  # read on the host already (_on_host)
            host = vec
            if len(host) == size:  # losses known only now (the HF callback's)
                host += [v.item() for _, v in loss_items if isinstance(v, tensor)]
        else:
            extra = [v.detach().reshape(1) for _, v in loss_items if isinstance(v, tensor)]
            if extra and vec.numel() == size:  # losses known only now (the HF callback's)
                try:
                    vec = torch.cat([vec, *extra])
                except RuntimeError:  # a loss elsewhere than the gradients: read apart below
                    pass
            host = vec.tolist()
            if len(host) == size and extra:
                host += [x.item() for x in extra]
        gvals = host[:n]
        if scale is not None:
            gvals = [v / scale for v in gvals]
        if self._one_per_group:
            vals = gvals
        else:
            vals = [_combine([gvals[i] for i in m]) for m in self._members]
        params = None
        pv = host[n : 2 * n] if pnow else None
        if b is not None and b.unusual(gvals, _finite(host[size:])) and not pnow:
            # A step unlike the last ones (a jump of the gradients): the weights' move at this
            # step is what tells a step-size bug, so read them now (the optimizer has not run).
            t1 = _perf()
            try:
                pv = self._weights_now()
                pnow = True
            except Exception:  # noqa: BLE001 - the frame goes without them, never without its norms
                pv = None
            b.weights = _perf() - t1
        if pv is not None:
            params = pv if self._one_per_group else [_combine([pv[i] for i in m]) for m in self._members]
            if b is not None:
                b.saw_weights(pv)
        j = size
        ls = []
        for name, v in loss_items:
            if isinstance(v, tensor):
                v = host[j]
                j += 1
            ls.append((name, v))
        rank, world = self._rank_world()
        frame = None
        if want_frame or self.writer._kind == "osc":
            groups = self._groups
            frame = frame_dict(step, zip(groups, vals), ls, rank, world, t, clip, params and zip(groups, params))
        if self.writer._kind == "osc":
            self.writer.write_dict(frame)
        else:
            self.writer.write_line(self._encoder.line(step, vals, ls, rank, world, t, clip, params), rank)
        if b is not None:
            b.own += _perf() - t0
            b.frame_done(pnow)
        return frame if want_frame else None

    def _emit(
        self,
        step: int,
        norms: list[tuple[list[int], Any]],
        scale: Any,
        skip: set | None,
        loss: Any,
        losses: dict[str, Any] | None,
        values: dict[str, Any] | None,
        clip: float | None,
    ) -> dict:
        """Reads ``norms`` (from :meth:`_grad_norms`), the tensor losses and the scale back in one
        sync per device, and writes the frame."""
        b = self._budget
        t0 = _perf() if b is not None else 0.0
        torch = self._torch
        t = _time.time() if self.wall_time else None

        loss_items: list[tuple[str, Any]] = []
        if loss is not None:
            loss_items.append(("loss", loss))
        if losses:
            loss_items.extend(losses.items())

        # Everything that lives on a device goes into one 1-d tensor per device -> one sync each.
        slots: dict[Any, list[Any]] = {}
        sizes: dict[Any, int] = {}
        where: dict[tuple[str, Any], tuple[Any, int]] = {}

        def park(key: tuple[str, Any], x: Any) -> None:
            x = x.detach()
            dt = torch.float32 if x.device.type == "mps" else torch.float64
            where[key] = (x.device, sizes.get(x.device, 0))
            sizes[x.device] = sizes.get(x.device, 0) + x.numel()
            slots.setdefault(x.device, []).append(x.to(dt))

        for k, (_, ns) in enumerate(norms):
            park(("norms", k), ns)
        for name, v in loss_items:
            if isinstance(v, torch.Tensor):
                v = v.detach()
                if v.numel() != 1:
                    if not self._warned_loss_shape:
                        self._warned_loss_shape = True
                        _warn(f"{name!r} has {v.numel()} elements, not 1; writing its mean")
                    v = v.float().mean()
                park(("loss", name), v.reshape(1))
        if isinstance(scale, torch.Tensor):
            park(("scale", 0), scale.reshape(1))
        # The weights' norms ride along as one vector per device, in the same .tolist().
        pnow = self._params_now()
        t1 = _perf() if b is not None else 0.0
        pvec = self._param_norms() if pnow else []
        if b is not None and pnow:
            b.weights = _perf() - t1
        for k, (_, vec) in enumerate(pvec):
            park(("params", k), vec)
        host = {dev: torch.cat(xs).tolist() for dev, xs in slots.items()}

        def read(key: tuple[str, Any]) -> float:
            dev, j = where[key]
            return host[dev][j]

        scale_f = read(("scale", 0)) if isinstance(scale, torch.Tensor) else scale
        per_group: list[list[float]] = [[] for _ in self._groups]
        for k, (idx, _) in enumerate(norms):
            dev, off = where[("norms", k)]
            for i, v in zip(idx, host[dev][off : off + len(idx)]):
                if scale_f is not None and (skip is None or id(self._params[i][1]) not in skip):
                    v = v / scale_f
                per_group[self._params[i][2]].append(v)
        # A group with no gradient at all (grad is None: unused this step) is written as 0.0:
        # silence, not an alarm (null would mean "could not be computed", i.e. NaN).
        vals: list[tuple[str, Any]] = [(g, _combine(ns)) for g, ns in zip(self._groups, per_group)]
        if values:
            vals.extend((str(k), _host_float(v)) for k, v in values.items())
        ls = [(name, read(("loss", name)) if isinstance(v, torch.Tensor) else v) for name, v in loss_items]

        params: list[tuple[str, Any]] | None = None
        if pvec:
            per_param: list[list[float]] = [[] for _ in self._groups]
            for k, (idx, _) in enumerate(pvec):
                dev, start = where[("params", k)]
                for j, i in enumerate(idx, start=start):
                    per_param[self._params[i][2]].append(host[dev][j])
            params = [(g, _combine(ns)) for g, ns in zip(self._groups, per_param)]
            if b is not None:
                b.saw_weights([v for _, v in params])

        rank, world = self._rank_world()
        frame = frame_dict(step, vals, ls, rank, world, t, clip, params)
        self.writer.write_dict(frame)
        if b is not None:
            # The group norms (the first values; extra ones follow): as the common read does,
            # the budget hears a non-finite step (the weights read it cannot add here).
            b.unusual([v for _, v in vals[: len(self._groups)]], _finite(v for _, v in ls))
            b.own += _perf() - t0
            b.frame_done(pnow)
        return frame


_perf = _time.perf_counter

#: The most frames between two reads of the weights on a budget. gradtone hears a frozen
#: optimizer after 5 steps of identical weights: a span of 4 identical, then (the hook reads
#: every frame once two reads match) one more step; within about 8 steps of the freeze (the
#: zoo's frozen runs: 5-7).
PARAM_EVERY_MAX = 4

#: Frames with the weights' norms in every one after a frame with a non-finite norm or loss: a
#: run crippled by it (a poisoned optimizer state) is judged on the movement of each step.
PARAM_DENSE_AFTER_NON_FINITE = 30


#: A frame read without the weights whose total gradient norm is more than this factor above
#: (or below) the median of the last :data:`UNUSUAL_WINDOW` frames' totals reads them too.
UNUSUAL_FACTOR = 2.0
UNUSUAL_WINDOW = 9


def _finite(xs: Any) -> bool:
    """Whether no number among ``xs`` is NaN or infinite (anything else is ignored)."""
    return all(x - x == 0.0 for x in xs if type(x) is float)


class _ParamBudget:
    """When a hook with ``param_norms="auto"`` reads the weights' norms: every frame while the
    hook's own time per frame, weights included, stays within ``share`` of the time between
    frames; else every k-th frame, k the smallest that brings the weights' share of it (their
    read time / k) within what the rest of the hook leaves of the budget, at most
    :data:`PARAM_EVERY_MAX` (when the rest alone exceeds it); every frame for
    :data:`PARAM_DENSE_AFTER_NON_FINITE` frames after a non-finite one. Starts at 1; the times
    are running means (a tenth of each new frame), measured with ``time.perf_counter``."""

    def __init__(self, share: float):
        self.share = float(share)
        #: Frames between two reads of the weights (1: every frame).
        self.k = 1
        #: Frames written since the weights were last read.
        self.since = 0
        #: Frames still to read in full after a non-finite one.
        self.dense = 0
        #: The weights' norms of the last frame that read them (see :meth:`saw_weights`).
        self.last_weights: list[float] | None = None
        #: The last frames' total gradient norms (finite ones; see :meth:`unusual`).
        self.totals: collections.deque[float] = collections.deque(maxlen=UNUSUAL_WINDOW)
        #: This frame's time inside the hook so far, and its weights' read (seconds).
        self.own = 0.0
        self.weights = 0.0
        #: Running means: the hook's time per frame without the weights, the weights' read,
        #: the time between frames; None until measured.
        self.base: float | None = None
        self.read: float | None = None
        self.interval: float | None = None
        self._last: float | None = None

    def due(self) -> bool:
        """Whether this frame reads the weights."""
        return self.dense > 0 or self.since + 1 >= self.k

    def saw_weights(self, norms: list[float]) -> None:
        """A frame read the weights' ``norms``: the same as the last ones, bit for bit, looks like
        an optimizer that stopped stepping. The next frames read them too, so that gradtone,
        which hears that after 5 identical steps, does not wait two more spans of k."""
        if norms == self.last_weights:
            self.dense = max(self.dense, PARAM_EVERY_MAX + 1)
        self.last_weights = norms

    def unusual(self, norms: list[float], losses_finite: bool = True) -> bool:
        """Whether a frame's gradient norms are unlike the last ones': their total is
        non-finite, or off by more than :data:`UNUSUAL_FACTOR` from the median of the last
        :data:`UNUSUAL_WINDOW` totals. Then a frame read without the weights reads them too.
        A non-finite total or loss (``losses_finite`` False) also makes the next
        :data:`PARAM_DENSE_AFTER_NON_FINITE` frames read them."""
        total = math.hypot(*norms)  # inf if any is infinite, else NaN if any is NaN
        recent = self.totals
        if not (total - total == 0.0 and losses_finite):
            self.dense = PARAM_DENSE_AFTER_NON_FINITE + 1  # this frame's frame_done counts one
            return True
        odd = False
        if len(recent) >= 3:
            med = sorted(recent)[len(recent) // 2]
            odd = total > UNUSUAL_FACTOR * med or total * UNUSUAL_FACTOR < med
        recent.append(total)
        return odd

    @staticmethod
    def _mean(old: float | None, new: float) -> float:
        return new if old is None else old + 0.1 * (new - old)

    def frame_done(self, read: bool) -> None:
        """Called once per frame written, after :meth:`unusual`: updates the means and k."""
        now = _perf()
        if self._last is not None:
            self.interval = self._mean(self.interval, now - self._last)
        self._last = now
        if read:
            self.read = self._mean(self.read, self.weights)
            self.since = 0
        else:
            self.since += 1
        self.dense = max(0, self.dense - 1)
        self.base = self._mean(self.base, self.own - (self.weights if read else 0.0))
        self.own = self.weights = 0.0
        if self.interval is None or self.read is None:
            return
        left = self.share * self.interval - self.base
        if left <= 0:
            self.k = PARAM_EVERY_MAX
        else:
            self.k = max(1, min(PARAM_EVERY_MAX, math.ceil(self.read / left)))


def _host_float(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    return v


__all__ = ["GradTone"]
