"""A minimal Open Sound Control 1.0 encoder (and decoder, for tests and debugging).

Only what gradtone needs: messages with int32 ``i``, int64 ``h``, float32 ``f``, string ``s``
and blob ``b`` arguments, big-endian, every field padded to a multiple of 4 bytes.
No dependency on python-osc.

The frame message (the OSC input scheme of ``docs/osc.md``)::

    /gradtone/frame  ,i s f s f ...   step, then (name, value) for each value in model order

A step above 2**31-1 is sent as int64 (``h``). Values are float32; NaN and infinities travel as
the IEEE bit patterns (OSC has no special encoding for them).
"""

from __future__ import annotations

import math
import struct
from typing import Any, Iterable, Sequence

#: OSC address of one training-step frame.
FRAME_ADDRESS = "/gradtone/frame"

_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def _pad(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def osc_string(s: str) -> bytes:
    """An OSC-string: UTF-8, NUL-terminated, padded with NULs to a multiple of 4 bytes."""
    raw = s.encode("utf-8")
    if b"\x00" in raw:
        raise ValueError(f"OSC strings cannot contain NUL: {s!r}")
    return _pad(raw + b"\x00")


def encode_message(address: str, args: Sequence[Any] = (), types: str | None = None) -> bytes:
    """Encode one OSC message.

    ``types`` gives the type tag of each argument (``"isf"``...); if omitted it is inferred:
    ``int`` → ``i`` (``h`` outside the int32 range), ``float`` → ``f``, ``str`` → ``s``,
    ``bytes`` → ``b``.
    """
    if not address.startswith("/"):
        raise ValueError(f"OSC address must start with '/': {address!r}")
    if types is None:
        tags = []
        for a in args:
            if isinstance(a, bool):
                raise TypeError("OSC bool arguments are not supported here; pass an int")
            if isinstance(a, int):
                tags.append("i" if _I32_MIN <= a <= _I32_MAX else "h")
            elif isinstance(a, float):
                tags.append("f")
            elif isinstance(a, str):
                tags.append("s")
            elif isinstance(a, (bytes, bytearray)):
                tags.append("b")
            else:
                raise TypeError(f"cannot infer an OSC type for {type(a).__name__}: {a!r}")
        types = "".join(tags)
    if len(types) != len(args):
        raise ValueError(f"{len(types)} type tags for {len(args)} arguments")
    out = [osc_string(address), osc_string("," + types)]
    for tag, a in zip(types, args):
        if tag == "i":
            out.append(struct.pack(">i", int(a)))
        elif tag == "h":
            out.append(struct.pack(">q", int(a)))
        elif tag == "f":
            out.append(struct.pack(">f", _to_f32(a)))
        elif tag == "d":
            out.append(struct.pack(">d", float(a)))
        elif tag == "s":
            out.append(osc_string(str(a)))
        elif tag == "b":
            blob = bytes(a)
            out.append(struct.pack(">i", len(blob)) + _pad(blob))
        else:
            raise ValueError(f"unsupported OSC type tag {tag!r}")
    return b"".join(out)


def _to_f32(x: Any) -> float:
    """float32 packing raises OverflowError for finite values beyond float32; saturate to ±inf
    instead (that is what a float32 cast does and what a listener should hear)."""
    f = float(x)
    if math.isfinite(f) and abs(f) > 3.4028234663852886e38:
        return math.copysign(math.inf, f)
    return f


def encode_frame(step: int, values: Iterable[tuple[str, Any]], address: str = FRAME_ADDRESS) -> bytes:
    """The ``/gradtone/frame`` message: step, then a (name, float32 value) pair per value.

    ``None`` (a value that could not be computed) is sent as NaN.
    """
    step = int(step)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    args: list[Any] = [step]
    types = ["i" if step <= _I32_MAX else "h"]
    for name, v in values:
        args.append(str(name))
        args.append(math.nan if v is None else float(v))
        types.append("sf")
    return encode_message(address, args, "".join(types))


def _read_string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\x00", pos)
    s = data[pos:end].decode("utf-8")
    return s, end + 1 + (-(end + 1 - pos) % 4)


def decode_message(data: bytes) -> tuple[str, list[Any]]:
    """Decode one OSC message into ``(address, args)``; raises ``ValueError`` on malformed input.

    Supports the tags :func:`encode_message` writes (``i h f d s b``) plus ``T F N``.
    """
    try:
        address, pos = _read_string(data, 0)
        tags, pos = _read_string(data, pos)
        if not tags.startswith(","):
            raise ValueError(f"type tag string must start with ',': {tags!r}")
        args: list[Any] = []
        for tag in tags[1:]:
            if tag == "i":
                args.append(struct.unpack_from(">i", data, pos)[0])
                pos += 4
            elif tag == "h":
                args.append(struct.unpack_from(">q", data, pos)[0])
                pos += 8
            elif tag == "f":
                args.append(struct.unpack_from(">f", data, pos)[0])
                pos += 4
            elif tag == "d":
                args.append(struct.unpack_from(">d", data, pos)[0])
                pos += 8
            elif tag == "s":
                s, pos = _read_string(data, pos)
                args.append(s)
            elif tag == "b":
                (n,) = struct.unpack_from(">i", data, pos)
                pos += 4
                if pos + n > len(data):
                    raise ValueError("blob runs past the end of the packet")
                args.append(data[pos : pos + n])
                pos += n + (-n % 4)
            elif tag in "TFN":
                args.append({"T": True, "F": False, "N": None}[tag])
            else:
                raise ValueError(f"unsupported OSC type tag {tag!r}")
        if pos != len(data):
            raise ValueError(f"{len(data) - pos} trailing bytes after the arguments")
        return address, args
    except (struct.error, UnicodeDecodeError) as e:
        raise ValueError(f"malformed OSC message: {e}") from e
    except ValueError as e:
        if "substring not found" in str(e):
            raise ValueError("malformed OSC message: unterminated string") from e
        raise
