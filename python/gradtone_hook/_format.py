"""The gradtone stream format, version 1 (docs/stream-format.md): one JSON object per line.

Pure Python; no torch needed.
"""

from __future__ import annotations

import json
import math
from typing import Any, Iterable, Mapping, Tuple, Union

#: The stream-format version this package writes.
FORMAT_VERSION = 1

Number = Union[int, float, str, None]
Pairs = Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]


def json_number(x: Any) -> Number:
    """One value as the stream format wants it.

    Finite numbers stay numbers; NaN, +inf and -inf become the strings ``"nan"``, ``"inf"``,
    ``"-inf"`` (JSON has no such tokens; readers reject bare ``NaN``). ``None`` stays ``null``
    (which readers take as NaN: a value that could not be computed). Anything with
    ``__float__`` (numpy scalars, 0-d tensors already on the host) is converted.
    """
    if type(x) is float and x - x == 0.0:  # the common case, a finite float: as it is
        return x
    if x is None:
        return None
    if isinstance(x, bool):
        # bool is an int subclass; a True norm is almost certainly a caller's mistake, but
        # writing 1/0 keeps the line valid rather than crashing a training run.
        return int(x)
    if isinstance(x, int):
        return x
    f = float(x)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def clip_value(clip: Any) -> float | None:
    """The clipping threshold as written in a frame: a finite number > 0, else ``None`` (no
    clipping: ``clip_grad_norm_(max_norm=inf)`` or 0 only measures)."""
    if clip is None or isinstance(clip, bool):
        return None
    try:
        c = float(clip)
    except (TypeError, ValueError):
        raise TypeError(f"clip must be a number (clip_grad_norm_'s max_norm), got {clip!r}") from None
    if not math.isfinite(c) or c <= 0.0:
        return None
    return c


def _pairs(p: Pairs | None):
    if p is None:
        return []
    if isinstance(p, Mapping):
        return list(p.items())
    return list(p)


def frame_dict(
    step: int,
    values: Pairs | None = None,
    losses: Pairs | None = None,
    rank: int | None = None,
    world: int | None = None,
    t: float | None = None,
    clip: float | None = None,
    params: Pairs | None = None,
) -> dict:
    """The JSON object of one frame, keys in the order of the spec, values in the given order.

    ``clip`` is the ``max_norm`` given to ``torch.nn.utils.clip_grad_norm_`` at this step (the
    values are the norms *before* clipping); it is written only when it is a finite number > 0.
    ``params`` (optional) is each group's parameter (weight) norm, same names and order as
    ``values``; written when given and not empty.
    """
    step = int(step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    obj: dict = {"v": FORMAT_VERSION, "step": step}
    obj["values"] = {str(k): json_number(v) for k, v in _pairs(values)}
    ps = _pairs(params)
    if ps:
        obj["params"] = {str(k): json_number(v) for k, v in ps}
    ls = _pairs(losses)
    if ls:
        obj["losses"] = {str(k): json_number(v) for k, v in ls}
    c = clip_value(clip)
    if c is not None:
        obj["clip"] = c
    if rank is not None:
        obj["rank"] = int(rank)
    if world is not None:
        obj["world"] = int(world)
    if t is not None:
        tv = json_number(t)
        if isinstance(tv, (int, float)):  # a non-finite clock is dropped, not sent as a string
            obj["t"] = tv
    return obj


def encode_line(
    step: int,
    values: Pairs | None = None,
    losses: Pairs | None = None,
    rank: int | None = None,
    world: int | None = None,
    t: float | None = None,
    clip: float | None = None,
    params: Pairs | None = None,
) -> str:
    """One ``\\n``-terminated line of the stream format.

    >>> encode_line(3, {"fc1": 0.5, "fc2": float("nan")}, {"loss": 2.3})
    '{"v":1,"step":3,"values":{"fc1":0.5,"fc2":"nan"},"losses":{"loss":2.3}}\\n'
    """
    return encode_dict(frame_dict(step, values, losses, rank, world, t, clip, params))


def _number_text(v: Any) -> str:
    """One number of a frame as JSON text (see :func:`json_number`)."""
    v = json_number(v)
    if type(v) is float:
        return repr(v)  # what json writes for a finite float
    return json.dumps(v)


class FrameEncoder:
    """The line :func:`encode_line` writes, for frames whose value names are fixed (a hook's
    groups), made without the intermediate dict: the names are escaped once, and the numbers of a
    frame whose values are all finite go through one ``%`` format, in C. Byte for byte the line
    of ``encode_dict(frame_dict(...))`` (a test pins it); this is what keeps a step's cost low.
    """

    def __init__(self, names: Iterable[str]):
        keys = [json.dumps(str(n), ensure_ascii=False) + ":" for n in names]
        #: Escaped ``"name":`` prefixes, in the order of the values.
        self._keys = keys
        # %r of a float is float.__repr__, what json writes for a float.
        self._template = ",".join(k.replace("%", "%%") + "%r" for k in keys)
        #: Escaped ``"name":`` prefixes of the losses seen so far (a few names, one per term).
        self._loss_keys: dict[str, str] = {}
        self._head = f'{{"v":{FORMAT_VERSION},"step":%d,"values":'
        #: :meth:`_tail`'s text by its arguments.
        self._tails: dict[tuple, str] = {}

    def _loss_key(self, name: str) -> str:
        k = self._loss_keys.get(name)
        if k is None:
            k = json.dumps(name, ensure_ascii=False) + ":"
            if len(self._loss_keys) < 1024:  # names a caller makes up per step are not kept
                self._loss_keys[name] = k
        return k

    def _object(self, floats: list) -> str:
        if len(floats) != len(self._keys):
            raise ValueError(f"{len(floats)} numbers for {len(self._keys)} names")
        # The sum of finite floats is finite unless it overflows; a NaN or an infinity makes it
        # NaN or infinite: then each number is written as json_number writes it.
        if math.isfinite(sum(floats)):
            return "{" + self._template % tuple(floats) + "}"
        return "{" + ",".join(k + _number_text(v) for k, v in zip(self._keys, floats)) + "}"

    def line(
        self,
        step: int,
        values: list,
        losses: Pairs | None = None,
        rank: int | None = None,
        world: int | None = None,
        t: float | None = None,
        clip: float | None = None,
        params: list | None = None,
    ) -> str:
        """As :func:`encode_line`, with ``values`` (and ``params``, if given and not empty) lists
        of Python floats, one per name given to the constructor."""
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        out = self._head % step + self._object(values)
        if params:
            out += ',"params":' + self._object(params)
        if losses:
            obj = {str(k): v for k, v in _pairs(losses)}  # a name twice: the last value, as a dict
            key = self._loss_key
            out += ',"losses":{' + ",".join([key(k) + _number_text(v) for k, v in obj.items()]) + "}"
        out += self._tail(clip, rank, world)
        if t is not None:
            if type(t) is float and t - t == 0.0:
                out += ',"t":' + repr(t)  # repr is what json writes for a float
            else:
                tv = json_number(t)
                if isinstance(tv, (int, float)):  # a non-finite clock is dropped
                    out += ',"t":' + repr(tv)
        return out + "}\n"

    def _tail(self, clip: Any, rank: Any, world: Any) -> str:
        """The frame's ``clip``, ``rank`` and ``world`` (the same at every step, mostly: kept)."""
        key = (clip, rank, world, type(clip), type(rank), type(world))  # True == 1, but not here
        try:
            return self._tails[key]
        except (KeyError, TypeError):  # TypeError: an unhashable clip, checked below
            pass
        parts = []
        c = clip_value(clip)
        if c is not None:
            parts += [',"clip":', repr(c)]
        if rank is not None:
            parts += [',"rank":', str(int(rank))]
        if world is not None:
            parts += [',"world":', str(int(world))]
        tail = "".join(parts)
        if len(self._tails) < 64:
            try:
                self._tails[key] = tail
            except TypeError:
                pass
        return tail


def encode_dict(obj: dict) -> str:
    """The line of a frame made by :func:`frame_dict`."""
    # allow_nan=False: a bare NaN token must never reach a reader (it would reject the line).
    return json.dumps(obj, allow_nan=False, separators=(",", ":"), ensure_ascii=False) + "\n"
