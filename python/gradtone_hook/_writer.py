"""Where frames go: stdout/stderr, a file, a file object, a TCP stream, UDP datagrams, or OSC
over UDP.

Pure Python; no torch needed. A write never raises into the training loop: failures are counted
(:attr:`StreamWriter.errors`) and reported once on stderr.
"""

from __future__ import annotations

import atexit
import collections
import io
import ipaddress
import os
import socket
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

from . import osc
from ._format import Pairs, encode_dict, frame_dict

#: A UDP payload above this may be fragmented on a typical path (MTU ≈ 1500); see stream-format.md.
UDP_SAFE_BYTES = 1400

#: The largest payload of one UDP datagram over IPv4 (65,535 - 8 - 20 header bytes).
UDP_MAX_BYTES = 65_507

#: Bytes a ``tcp://`` writer keeps queued for a listener that reads slower than frames are made;
#: beyond it frames are skipped (counted in :attr:`StreamWriter.dropped`), never waited for.
TCP_QUEUE_BYTES = 16 << 20

#: How long closing a ``tcp://`` writer (or the interpreter's exit) waits for queued frames.
TCP_CLOSE_SECONDS = 10.0

#: ``send`` flag for a send that never waits (0 where the platform has none: then every frame
#: goes through the sender thread).
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


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
      else stdout -- except that while stdout is a terminal, frames are not printed there (one
      hint on stderr says how to hear them; a pipe or a file gets the frames);
    - ``"stdout"`` / ``"-"`` or ``"stderr"``: JSON Lines on that stream, flushed
      each line (so ``python train.py | gradtone listen`` is live);
    - ``"tcp://HOST:PORT"``: JSON Lines over one TCP connection (what ``gradtone run`` gives
      through ``GRADTONE_TO``): frames of any size. A frame goes to the socket at its step if
      the socket takes it at once, else a background thread sends it, so a step never waits for
      the listener; if it falls more than ``TCP_QUEUE_BYTES`` behind, frames are
      skipped and counted (:attr:`dropped`). Queued frames are sent at :meth:`close` or exit;
    - ``"udp://HOST:PORT"``: one JSON line (with its ``\\n``) per datagram, at most 65,507
      bytes (a larger frame is not sent: counted, and said once);
    - ``"osc://HOST:PORT"``: one OSC ``/gradtone/frame`` message per datagram (values only;
      OSC frames carry no losses/rank, see ``docs/osc.md``);
    - a file path (``str`` or ``os.PathLike``; ``file://`` URLs too): JSON Lines, truncated at
      the first write (``append=True`` to append). ``{rank}`` in the path is replaced by the
      process's rank so several ranks don't overwrite each other's file;
    - a file object with ``write`` (text or binary): JSON Lines; it is flushed, not closed.

    Nothing is opened until the first frame is written.
    """

    def __init__(self, to: Any = None, append: bool = False, warn_large_datagrams: bool = True):
        #: Whether frames are held back while stdout is a terminal (stdout by default only).
        self._quiet_on_tty = to is None and default_destination() == "stdout"
        if to is None:
            to = default_destination()
        self.to = to
        self.append = append
        self.warn_large_datagrams = warn_large_datagrams
        #: Frames that could not be written (socket errors, closed pipes, full disks...).
        self.errors = 0
        #: Frames written successfully.
        self.written = 0
        #: Frames a ``tcp://`` writer skipped because the listener was too far behind (also
        #: counted in :attr:`errors`).
        self.dropped = 0
        #: Frames not printed because the default destination, stdout, was a terminal.
        self.held_back = 0
        self._kind, self._target = self._classify(to)
        self._file: Any = None
        self._owns_file = False
        self._sock: socket.socket | None = None
        self._addr: Any = None
        self._warned_error = False
        self._warned_large = False
        self._warned_too_big = False
        self._warned_dropped = False
        self._hinted = False
        self._loopback = False
        self._sender: _Sender | None = None
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
            if low.startswith(("udp://", "osc://", "tcp://")):
                scheme, host, port = _parse_host_port(s)
                return scheme.lower(), (host, port)
            if low.startswith("file://"):
                return "path", urlsplit(s).path
            if "://" in s:
                raise ValueError(
                    f"unknown destination {s!r}: use 'stdout', 'stderr', 'tcp://HOST:PORT', "
                    "'udp://HOST:PORT', 'osc://HOST:PORT', a file path or a file object"
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
            try:
                self._loopback = ipaddress.ip_address(str(addr[0]).split("%")[0]).is_loopback
            except ValueError:
                self._loopback = False
        elif self._kind == "tcp" and self._sender is None:
            host, port = self._target
            if _is_loopback_host(host):
                # Loopback (gradtone run's listener): connected or refused at once, and the step's
                # own frame goes out with it.
                self._sender = _Sender(_connect(host, port))
            else:
                # Elsewhere a connect can take seconds (a lost SYN, a slow name lookup): the
                # sender thread makes it, and frames wait in its queue meanwhile.
                self._sender = _Sender(None, (host, port))
        elif self._kind == "path" and self._file is None:
            path = self._target
            if "{rank}" in path:
                path = path.replace("{rank}", str(rank if rank is not None else 0))
            # Unbuffered bytes: a line is one write(2) at its step, without the text and
            # buffer layers a flushed text file goes through (a step's cost; lines are
            # \n-terminated on every platform).
            self._file = open(path, "ab" if self.append else "wb", buffering=0)
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
        return self.write_dict(frame_dict(step, values, losses, rank, world, t, clip))

    def write_dict(self, frame: dict) -> bool:
        """Write a frame built by :func:`frame_dict` (for a caller that keeps the dict too: it is
        built once); as :meth:`write_frame` otherwise."""
        if self._kind == "osc":
            # frame_dict turned non-finite values into strings; OSC floats carry them natively.
            vals = frame.get("values", {})
            payload: Any = osc.encode_frame(frame["step"], [(k, _from_json(v)) for k, v in vals.items()])
        else:
            payload = encode_dict(frame)
        return self._send(payload, frame.get("rank"))

    def write_line(self, line: str, rank: int | None = None) -> bool:
        """Write an already encoded JSON line (a ``\\n`` is added if missing); not for OSC."""
        if self._kind == "osc":
            raise ValueError("write_line cannot send to an osc:// destination; use write_frame")
        return self._send(line if line.endswith("\n") else line + "\n", rank)

    def _send(self, payload: Any, rank: int | None) -> bool:
        if self._closed:
            return self._fail(ValueError("writer is closed"))
        if self._quiet_on_tty and _isatty(sys.stdout):
            self.held_back += 1
            if not self._hinted:
                self._hinted = True
                _warn(
                    "frames are not printed to this terminal (GRADTONE_TO is not set). To hear "
                    "this training: gradtone run -- python train.py, or pipe it: python train.py "
                    "| gradtone listen (to='stdout' prints them anyway)."
                )
            return False
        try:
            self._open(rank)
            if self._kind == "tcp":
                assert self._sender is not None
                if not self._sender.put(payload.encode("utf-8")):
                    return self._drop()
            elif self._kind in ("udp", "osc"):
                data = payload.encode("utf-8") if isinstance(payload, str) else payload
                if len(data) > UDP_MAX_BYTES:
                    return self._too_big(len(data))
                if (
                    self.warn_large_datagrams
                    and len(data) > UDP_SAFE_BYTES
                    and not self._loopback
                    and not self._warned_large
                ):
                    self._warned_large = True
                    _warn(
                        f"a frame is {len(data)} bytes, above the ~{UDP_SAFE_BYTES}-byte path MTU: "
                        f"on the way to {self._describe()} it may be fragmented or dropped. Send "
                        "fewer values (include=[...], exclude=[...], or a group_by that makes fewer "
                        "groups), or a stream: gradtone run, a file, stdout."
                    )
                assert self._sock is not None
                self._sock.sendto(data, self._addr)
            elif self._kind == "path":
                _write_all(self._file, payload.encode("utf-8"))
            else:
                f = self._stream()
                _write_text(f, payload)
                f.flush()
        except (OSError, ValueError, AttributeError, UnicodeError) as e:
            return self._fail(e)
        self.written += 1
        return True

    def _too_big(self, size: int) -> bool:
        self.errors += 1
        if not self._warned_too_big:
            self._warned_too_big = True
            _warn(
                f"a frame is {size:,} bytes, and one UDP datagram carries at most {UDP_MAX_BYTES:,}: "
                f"frames this large are not sent to {self._describe()} (counted in .errors). Run "
                "the script under `gradtone run` (a stream, any size), write to a file or stdout, "
                "or send fewer values (include=[...], exclude=[...], a group_by with fewer groups)."
            )
        return False

    def _drop(self) -> bool:
        self.errors += 1
        self.dropped += 1
        if not self._warned_dropped:
            self._warned_dropped = True
            _warn(
                f"{self._describe()} reads frames slower than this training makes them: more than "
                f"{TCP_QUEUE_BYTES >> 20} MiB are waiting, so frames are skipped (counted in "
                ".dropped) rather than slow the training."
            )
        return False

    def _stream(self) -> Any:
        if self._kind == "stdout":
            return sys.stdout  # looked up each time: the user may redirect it after we start
        if self._kind == "stderr":
            return sys.stderr
        return self._target  # a file object; a path is written by _send itself

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
        if self._kind in ("udp", "osc", "tcp"):
            return f"{self._kind}://{self._target[0]}:{self._target[1]}"
        if self._kind == "path":
            return repr(self._target)
        return self._kind

    def close(self) -> None:
        """Close the socket or the file this writer opened (never a stream or object it was given)."""
        self._closed = True
        if self._sender is not None:
            error = self._sender.close(TCP_CLOSE_SECONDS)
            self._sender = None
            if error is not None:
                self._fail(error)
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


def _write_all(f: Any, data: bytes) -> None:
    # A raw file may take part of a write (a signal, a full disk): the rest follows, or the
    # error does.
    view = memoryview(data)
    while view:
        n = f.write(view)
        if not n:
            raise OSError(f"wrote {len(data) - len(view)} of {len(data)} bytes")
        view = view[n:]


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=5.0)
    sock.settimeout(None)  # the sender thread blocks; the training thread never does
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a frame goes out at once
    except OSError:
        pass
    return sock


class _Sender:
    """A socket fed by a daemon thread from a queue of at most ``TCP_QUEUE_BYTES`` (connected
    by the caller, or by the thread to ``address``).

    With nothing queued, the training thread hands a frame to the socket itself, without waiting
    (what the socket buffer cannot take is queued); the thread does the blocking ``sendall`` of
    what is queued. Queued frames are flushed at :meth:`close` and at interpreter exit.
    """

    def __init__(self, sock: socket.socket | None, address: tuple[str, int] | None = None):
        #: None until the thread has connected to ``address``.
        self._sock = sock
        self._address = address
        self._queue: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._cv = threading.Condition()
        self._closing = False
        self._abandoned = False
        #: The error that ended the connection, if one did.
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="gradtone-hook-sender", daemon=True)
        self._thread.start()
        atexit.register(self.close, TCP_CLOSE_SECONDS)

    def put(self, data: bytes) -> bool:
        """Queues ``data``; False (not queued) when the queue is full. Raises the connection's
        error once it has failed."""
        with self._cv:
            if self.error is not None:
                raise self.error
            if not self._queue and _DONTWAIT and self._sock is not None:
                # Nothing waiting: hand the frame to the kernel now, as a datagram would be, so
                # that a process killed right after its step (SIGKILL, OOM, os._exit) has sent
                # it; the thread may not have run since. Never blocks: what the socket buffer
                # cannot take goes to the queue.
                try:
                    sent = self._sock.send(data, _DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as e:
                    self.error = e
                    raise
                if sent == len(data):
                    return True
                data = data[sent:]
            elif self._queue and self._bytes + len(data) > TCP_QUEUE_BYTES:
                return False
            self._queue.append(data)
            self._bytes += len(data)
            self._cv.notify()
        return True

    def _fail(self, e: OSError) -> None:
        """The connection is lost: keep the error, drop what was queued for it."""
        with self._cv:
            self.error = e
            self._queue.clear()
            self._bytes = 0

    def _run(self) -> None:
        if self._sock is None and self._address is not None:
            try:
                sock = _connect(*self._address)
            except OSError as e:
                self._fail(e)
                return
            with self._cv:
                if self._abandoned:  # close() gave up waiting for the connect
                    sock.close()
                    return
                self._sock = sock
        while True:
            with self._cv:
                while not self._queue and not self._closing:
                    self._cv.wait()
                if not self._queue:
                    return
                data = self._queue[0]
            try:
                self._sock.sendall(data)
            except OSError as e:
                self._fail(e)
                return
            with self._cv:
                self._queue.popleft()
                self._bytes -= len(data)

    def close(self, timeout: float) -> OSError | None:
        """Sends what is queued (waiting at most ``timeout`` seconds), then closes the socket;
        the connection's error, if it failed."""
        with self._cv:
            if self._closing:
                return None
            self._closing = True
            self._cv.notify()
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001 - during interpreter shutdown
            pass
        self._thread.join(timeout)
        with self._cv:
            gave_up = self._thread.is_alive()
            self._abandoned = gave_up
            sock = self._sock
        try:
            if sock is not None:
                if gave_up:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in sendall
                sock.close()
        except OSError:
            pass
        # The error our own shutdown gives the thread is not the connection's.
        return None if gave_up else self.error


def _from_json(v: Any) -> Any:
    if isinstance(v, str):
        return float(v)  # "nan" / "inf" / "-inf"
    return v
