"""Where frames go: stdout/stderr, a file, a file object, UDP datagrams, or OSC over UDP.

Pure Python; no torch needed. A write never raises into the training loop: failures are counted
(:attr:`StreamWriter.errors`) and reported once on stderr.
"""

from __future__ import annotations

import io
import os
import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from . import osc
from ._format import Pairs, encode_line, frame_dict

#: A UDP payload above this may be fragmented on a typical path (MTU ≈ 1500); see stream-format.md.
UDP_SAFE_BYTES = 1400


def _warn(msg: str) -> None:
    # sys.__stderr__ when the user redirected sys.stderr to something that itself fails.
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.write(f"gradtone_hook: {msg}\n")
                stream.flush()
                return
        except Exception:  # noqa: BLE001 - a warning must never crash training either
            continue


def _parse_host_port(to: str) -> tuple[str, str, int]:
    u = urlsplit(to)
    try:
        port = u.port
    except ValueError as e:
        raise ValueError(f"{to!r}: bad port ({e}); expected e.g. udp://127.0.0.1:9999") from None
    if not u.hostname or port is None:
        raise ValueError(f"{to!r}: expected {u.scheme}://HOST:PORT, e.g. {u.scheme}://127.0.0.1:9999")
    return u.scheme, u.hostname, port


#: The environment variable naming the default destination (``to=`` wins over it).
ENV_TO = "GRADTONE_TO"


def default_destination() -> str:
    """``$GRADTONE_TO`` when set and not empty, else ``"stdout"``."""
    return os.environ.get(ENV_TO, "").strip() or "stdout"


class StreamWriter:
    """Writes gradtone frames to one destination.

    ``to`` is one of:

    - ``None`` (the default): the ``GRADTONE_TO`` environment variable's destination (same
      syntax as below; ``gradtone run -- python train.py`` sets it to its private listener),
      else stdout;
    - ``"stdout"`` / ``"-"`` or ``"stderr"``: JSON Lines on that stream, flushed
      each line (so ``python train.py | gradtone listen`` is live);
    - ``"udp://HOST:PORT"``: one JSON line (with its ``\\n``) per datagram;
    - ``"osc://HOST:PORT"``: one OSC ``/gradtone/frame`` message per datagram (values only;
      OSC frames carry no losses/rank, see ``docs/osc.md``);
    - a file path (``str`` or ``os.PathLike``; ``file://`` URLs too): JSON Lines, truncated at
      the first write (``append=True`` to append). ``{rank}`` in the path is replaced by the
      process's rank so several ranks don't overwrite each other's file;
    - a file object with ``write`` (text or binary): JSON Lines; it is flushed, not closed.

    Nothing is opened until the first frame is written.
    """

    def __init__(self, to: Any = None, append: bool = False, warn_large_datagrams: bool = True):
        if to is None:
            to = default_destination()
        self.to = to
        self.append = append
        self.warn_large_datagrams = warn_large_datagrams
        #: Frames that could not be written (socket errors, closed pipes, full disks...).
        self.errors = 0
        #: Frames written successfully.
        self.written = 0
        self._kind, self._target = self._classify(to)
        self._file: Any = None
        self._owns_file = False
        self._sock: socket.socket | None = None
        self._addr: Any = None
        self._warned_error = False
        self._warned_large = False
        self._closed = False

    @staticmethod
    def _classify(to: Any) -> tuple[str, Any]:
        if to is None or to in ("stdout", "-"):
            return "stdout", None
        if to == "stderr":
            return "stderr", None
        if isinstance(to, (str, os.PathLike)):
            s = os.fspath(to)
            if isinstance(s, bytes):
                s = os.fsdecode(s)
            low = s.lower()
            if low.startswith(("udp://", "osc://")):
                scheme, host, port = _parse_host_port(s)
                return scheme.lower(), (host, port)
            if low.startswith("file://"):
                return "path", urlsplit(s).path
            if "://" in s:
                raise ValueError(
                    f"unknown destination {s!r}: use 'stdout', 'stderr', 'udp://HOST:PORT', "
                    "'osc://HOST:PORT', a file path or a file object"
                )
            return "path", s
        if hasattr(to, "write"):
            return "fileobj", to
        raise TypeError(f"cannot write gradtone frames to {type(to).__name__}: {to!r}")

    # -- opening -------------------------------------------------------------------------------
    def _open(self, rank: int | None) -> None:
        if self._kind in ("udp", "osc") and self._sock is None:
            host, port = self._target
            # getaddrinfo so both IPv4 and IPv6 literals / names work; the first result wins.
            family, socktype, proto, _, addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
            self._sock = socket.socket(family, socktype, proto)
            self._addr = addr
        elif self._kind == "path" and self._file is None:
            path = self._target
            if "{rank}" in path:
                path = path.replace("{rank}", str(rank if rank is not None else 0))
            # newline="\n": the format is \n-terminated on every platform.
            self._file = open(path, "a" if self.append else "w", encoding="utf-8", newline="\n")
            self._owns_file = True

    # -- writing -------------------------------------------------------------------------------
    def write_frame(
        self,
        step: int,
        values: Pairs | None = None,
        losses: Pairs | None = None,
        rank: int | None = None,
        world: int | None = None,
        t: float | None = None,
        clip: float | None = None,
        params: Pairs | None = None,
    ) -> bool:
        """Write one frame; returns True on success. Never raises for I/O failures.

        ``clip``: the ``clip_grad_norm_`` threshold at this step (the values being pre-clip
        norms); written as the frame's ``"clip"`` when finite and > 0. ``params``: each group's
        parameter norm (same names as ``values``), the frame's optional ``"params"``; not sent
        over OSC.

        Malformed arguments (a negative step, a value that is not a number) do raise
        ``ValueError``/``TypeError``: they are programming errors, not transient ones.
        """
        if self._kind == "osc":
            vals = frame_dict(step, values).get("values", {})
            # frame_dict turned non-finite values into strings; OSC floats carry them natively.
            payload: Any = osc.encode_frame(step, [(k, _from_json(v)) for k, v in vals.items()])
        else:
            payload = encode_line(step, values, losses, rank, world, t, clip, params)
        return self._send(payload, rank)

    def write_line(self, line: str, rank: int | None = None) -> bool:
        """Write an already encoded JSON line (a ``\\n`` is added if missing); not for OSC."""
        if self._kind == "osc":
            raise ValueError("write_line cannot send to an osc:// destination; use write_frame")
        return self._send(line if line.endswith("\n") else line + "\n", rank)

    def _send(self, payload: Any, rank: int | None) -> bool:
        if self._closed:
            return self._fail(ValueError("writer is closed"))
        try:
            self._open(rank)
            if self._kind in ("udp", "osc"):
                data = payload.encode("utf-8") if isinstance(payload, str) else payload
                if self.warn_large_datagrams and len(data) > UDP_SAFE_BYTES and not self._warned_large:
                    self._warned_large = True
                    _warn(
                        f"a frame is {len(data)} bytes, above the ~{UDP_SAFE_BYTES}-byte path MTU: "
                        "it may be fragmented or dropped; select fewer tensors (include=..., "
                        "group_by='module')"
                    )
                assert self._sock is not None
                self._sock.sendto(data, self._addr)
            else:
                f = self._stream()
                _write_text(f, payload)
                f.flush()
        except (OSError, ValueError, AttributeError, UnicodeError) as e:
            return self._fail(e)
        self.written += 1
        return True

    def _stream(self) -> Any:
        if self._kind == "stdout":
            return sys.stdout  # looked up each time: the user may redirect it after we start
        if self._kind == "stderr":
            return sys.stderr
        if self._kind == "fileobj":
            return self._target
        return self._file

    def _fail(self, e: BaseException) -> bool:
        self.errors += 1
        if not self._warned_error:
            self._warned_error = True
            _warn(
                f"cannot write to {self._describe()}: {type(e).__name__}: {e}. Training goes on; "
                "further failures are counted silently (see .errors)."
            )
        return False

    def _describe(self) -> str:
        if self._kind in ("udp", "osc"):
            return f"{self._kind}://{self._target[0]}:{self._target[1]}"
        if self._kind == "path":
            return repr(self._target)
        return self._kind

    def close(self) -> None:
        """Close the socket or the file this writer opened (never a stream or object it was given)."""
        self._closed = True
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        if self._owns_file and self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _write_text(f: Any, text: str) -> None:
    # One write call per line: on a pipe, writes up to PIPE_BUF (4096) bytes are atomic, so the
    # lines of several processes sharing a stdout pipe (torchrun) interleave whole.
    if isinstance(f, io.TextIOBase):
        f.write(text)
    elif isinstance(f, (io.RawIOBase, io.BufferedIOBase)):
        f.write(text.encode("utf-8"))
    else:
        try:
            f.write(text)
        except TypeError:  # a duck-typed binary sink
            f.write(text.encode("utf-8"))


def _from_json(v: Any) -> Any:
    if isinstance(v, str):
        return float(v)  # "nan" / "inf" / "-inf"
    return v
