"""Jupyter: hear and watch the training of this kernel in three lines.

::

    from gradtone_hook.notebook import listen
    page = listen()          # starts `gradtone listen --serve`, shows its page below the cell
    # ... train in later cells with GradTone(model) / sonify() / the callbacks: they send to it

:func:`listen` starts ``gradtone listen - --serve 127.0.0.1:0 --no-live`` as a subprocess (the
binary from ``bin=``, ``$GRADTONE_BIN`` or ``PATH``) and displays the served page (sound, chart,
alarms) in an ``<iframe>``. The hooks of this kernel (and of its child processes) connect to a
TCP port on loopback that ``GRADTONE_TO`` names (a stream: frames of any size), and threads of
this kernel relay their lines into gradtone's standard input: a hook never waits for gradtone
(its writer queues), and this kernel holds the only writer of that pipe. :meth:`Page.stop`, the
kernel's exit, or its death closes the pipe, and gradtone finalises its outputs (``wav=``,
``csv=``, ``plot=``...) as at the end of any stream. The page is served on loopback: the browser
must run on the kernel's machine (for a remote kernel, forward the port:
``ssh -L PORT:127.0.0.1:PORT host``).

IPython is needed only to display the page.
"""

from __future__ import annotations

import atexit
import collections
import html
import os
import shutil
import socket
import subprocess
import threading
import time
from typing import Any, Sequence

from ._writer import ENV_TO

__all__ = ["listen", "Page", "find_binary"]

#: The line gradtone prints on stderr when its page is served.
_SERVED = "serving the live page at "

_current: Page | None = None


def find_binary(bin: str | None = None) -> str:
    """The gradtone binary: ``bin``, else ``$GRADTONE_BIN``, else ``gradtone`` on ``PATH``."""
    for cand in (bin, os.environ.get("GRADTONE_BIN")):
        if cand:
            if os.path.isfile(cand) and os.access(cand, os.X_OK):
                return cand
            raise FileNotFoundError(f"gradtone binary {cand!r} is not an executable file")
    found = shutil.which("gradtone")
    if not found:
        raise FileNotFoundError(
            "no gradtone binary: install it (cargo install --path crates/cli) so that `gradtone` is on "
            "PATH, or pass listen(bin='/path/to/gradtone'), or set GRADTONE_BIN"
        )
    return found


#: After stop(): how long a connection that goes on sending is still relayed.
_DRAIN_SECONDS = 1.0

#: Connections relayed at once, at most (as gradtone's own TCP source).
MAX_CONNECTIONS = 1024

#: A line longer than this is not relayed (gradtone skips lines over 1 MiB unread anyway).
MAX_LINE_BYTES = 1 << 20


class _Relay(threading.Thread):
    """Lines on loopback TCP connections → lines on gradtone's standard input.

    A stream, as under ``gradtone run``: frames of any size (a model heard per tensor makes
    lines far above a datagram's 64 KiB). Each connection (each hook, each process of this
    kernel) is read by its own thread, and only whole lines are written to the pipe, one
    connection's at a time.
    """

    def __init__(self, stdin: Any):
        super().__init__(name="gradtone-relay", daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)  # how soon stop() is noticed
        self.port = self.sock.getsockname()[1]
        self.stdin = stdin
        self.frames = 0
        #: Lines not relayed: longer than :data:`MAX_LINE_BYTES`.
        self.skipped = 0
        self.halt = threading.Event()
        self._write_lock = threading.Lock()
        self._readers: list[threading.Thread] = []

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                try:
                    conn, _ = self.sock.accept()
                except socket.timeout:
                    continue
                alive = [r for r in self._readers if r.is_alive()]
                if len(alive) >= MAX_CONNECTIONS:
                    conn.close()  # one per process is enough: more is not a training
                    continue
                t = threading.Thread(target=self._read, args=(conn,), name="gradtone-relay-conn", daemon=True)
                t.start()
                self._readers = alive + [t]
        except OSError:
            pass  # the listening socket is gone
        finally:
            self.sock.close()

    def _read(self, conn: socket.socket) -> None:
        buf = bytearray()
        skipping = False
        deadline = None
        with conn:
            conn.settimeout(0.2)
            while True:
                if self.halt.is_set():
                    # stop(): what was sent is read on, for a moment (a training still running
                    # in another thread must not hold stop() up).
                    deadline = deadline or time.monotonic() + _DRAIN_SECONDS
                    if time.monotonic() > deadline:
                        return
                try:
                    data = conn.recv(1 << 16)
                except socket.timeout:
                    if self.halt.is_set():
                        return  # what was sent has been read; the sender stays quiet
                    continue
                except OSError:
                    return
                if not data:  # the sender closed: its unterminated last line too
                    if buf and not skipping:
                        self._write(bytes(buf) + b"\n")
                    return
                start = 0
                while True:
                    nl = data.find(b"\n", start)
                    if nl < 0:
                        if not skipping:
                            buf += data[start:]
                            if len(buf) > MAX_LINE_BYTES:
                                buf.clear()
                                skipping = True
                                self.skipped += 1
                        break
                    if not skipping:
                        buf += data[start : nl + 1]
                        if len(buf) <= MAX_LINE_BYTES + 1:
                            if not self._write(bytes(buf)):
                                return
                        else:
                            self.skipped += 1
                    buf.clear()
                    skipping = False
                    start = nl + 1

    def _write(self, line: bytes) -> bool:
        try:
            with self._write_lock:
                self.stdin.write(line)
                self.stdin.flush()
                self.frames += 1
            return True
        except (OSError, ValueError):
            return False  # gradtone has gone (EPIPE) or stop() closed the pipe

    def finish(self, timeout: float) -> None:
        """Stop accepting; let each connection relay what it has sent (until it is quiet)."""
        self.halt.set()
        self.join(timeout)
        for r in list(self._readers):
            r.join(timeout)


class Page:
    """A running ``gradtone listen --serve``: :attr:`url`, :meth:`show`, :meth:`stop`."""

    def __init__(
        self, process: subprocess.Popen, url: str, log: collections.deque, relay: _Relay, width: Any, height: int
    ):
        self.process = process
        self._relay = relay
        #: The served page (``http://127.0.0.1:PORT/``).
        self.url = url
        #: ``GRADTONE_TO`` as :func:`listen` set it (hooks made after stop() fall back to stdout).
        self.destination = f"tcp://127.0.0.1:{relay.port}"
        self._log = log
        self._width, self._height = width, height
        self._lock = threading.Lock()

    @property
    def log(self) -> list[str]:
        """The last lines gradtone wrote (stderr and stdout)."""
        return list(self._log)

    @property
    def frames(self) -> int:
        """Frames relayed to gradtone so far."""
        return self._relay.frames

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def html(self) -> str:
        """The ``<iframe>`` (and a link to open the page in its own tab)."""
        u = html.escape(self.url, quote=True)
        w = html.escape(str(self._width), quote=True)
        return (
            f'<iframe src="{u}" width="{w}" height="{int(self._height)}" allow="autoplay" '
            f'style="border:1px solid #ccc"></iframe>'
            f'<div style="font-size:small">gradtone: <a href="{u}" target="_blank">{u}</a></div>'
        )

    def show(self) -> None:
        """Display the page (again) below the current cell."""
        from IPython.display import HTML, display

        display(HTML(self.html()))

    def stop(self, timeout: float = 30.0) -> int | None:
        """End the input: gradtone finalises its outputs and exits (killed if it has not after
        ``timeout`` seconds). Returns its exit status."""
        global _current
        with self._lock:
            if os.environ.get(ENV_TO) == self.destination:
                del os.environ[ENV_TO]
            self._relay.finish(timeout)
            if self.process.stdin is not None:
                try:
                    self.process.stdin.close()
                except OSError:
                    pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if _current is self:
                _current = None
            return self.process.poll()


def _drain(stream: Any, log: collections.deque, url_box: list, ready: threading.Event) -> None:
    try:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            log.append(line)
            if not ready.is_set() and line.startswith(_SERVED):
                url_box.append(line[len(_SERVED) :].strip())
                ready.set()
    finally:
        ready.set()  # gradtone ended before serving: listen() reports its log


def listen(
    wav: str | os.PathLike | None = None,
    csv: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    args: Sequence[str] = (),
    serve: str = "127.0.0.1:0",
    bin: str | None = None,
    width: Any = "100%",
    height: int = 520,
    display: bool = True,
    timeout: float = 30.0,
) -> Page:
    """Start gradtone on a served page, point this kernel's hooks at it, and show the page.

    Args:
        wav, csv, plot: files gradtone writes (``--wav``, ``--csv``, ``--plot``) when the input
            ends (:meth:`Page.stop`, the kernel's exit).
        args: more ``gradtone listen`` flags (``["--mapping", "seed", "--midi", "run.mid"]``).
        serve: the address to serve on (``--serve``); default: loopback, a free port.
        bin: the gradtone binary (default: ``$GRADTONE_BIN``, else ``gradtone`` on ``PATH``).
        width, height: the ``<iframe>``'s size.
        display: show the page below the cell (needs IPython).
        timeout: seconds to wait for gradtone to serve its page.

    Sets ``GRADTONE_TO`` so that every hook made afterwards in this kernel (``GradTone``,
    ``sonify()``, the Lightning/HF/Keras callbacks) sends to the page; a hook given ``to=``
    keeps its own destination. A second :func:`listen` stops the first page.
    """
    global _current
    exe = find_binary(bin)
    if _current is not None:
        _current.stop()
    cmd = [exe, "listen", "-", "--serve", serve, "--no-live"]
    for flag, path in (("--wav", wav), ("--csv", csv), ("--plot", plot)):
        if path is not None:
            cmd += [flag, os.fspath(path)]
    cmd += list(args)
    # stdin: the relay's pipe; stdout/stderr: drained into page.log, never into the cell.
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    log: collections.deque = collections.deque(maxlen=200)
    url_box: list[str] = []
    ready = threading.Event()
    threading.Thread(target=_drain, args=(proc.stdout, log, url_box, ready), daemon=True).start()
    if not ready.wait(timeout) or not url_box:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        tail = "\n".join(list(log)[-10:])
        raise RuntimeError(f"gradtone did not serve its page within {timeout:g} s ({' '.join(cmd)}):\n{tail}")
    relay = _Relay(proc.stdin)
    relay.start()
    page = Page(proc, url_box[0], log, relay, width, height)
    os.environ[ENV_TO] = page.destination
    _current = page
    if display:
        page.show()
    return page


@atexit.register
def _stop_at_exit() -> None:
    # The kernel shuts down: end the input so gradtone writes its outputs (a killed kernel
    # closes the pipe as well, with the same result).
    if _current is not None:
        try:
            _current.stop(timeout=10.0)
        except Exception:  # noqa: BLE001 - nothing to report to at exit
            pass
