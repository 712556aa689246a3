"""gradtone_hook.notebook in a real Jupyter kernel, executed headless with nbclient.

The notebook's first cell is the three lines (``from gradtone_hook.notebook import listen``,
``page = listen(...)``); the test reads the page's address from the cell's displayed output,
fetches the page over HTTP, connects to its WebSocket as the page does, runs the training cell
(a small torch model with ``GradTone``, sending through ``GRADTONE_TO``) and counts one chart
point per step. Then the outputs must be valid after ``page.stop()``, after the kernel is
killed, and after the training is interrupted (SIGINT, Jupyter's interrupt) and then stopped.
Everything on 127.0.0.1, started by the test. Skips loudly without Jupyter, torch or the
gradtone binary; fails under GRADTONE_REQUIRE_JUPYTER=1 (CI).
"""

import csv
import json
import os
import re
import signal
import threading
import time
import urllib.request
import wave

import pytest
from _require import gradtone_bin, need

ENV = "GRADTONE_REQUIRE_JUPYTER"
PYDIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
STEPS = 30


@pytest.fixture
def jupyter(monkeypatch):
    for m in ("nbclient", "nbformat", "ipykernel", "websocket"):
        need(m, ENV)
    need("torch", ENV)
    monkeypatch.setenv("GRADTONE_BIN", gradtone_bin(ENV))  # the kernel inherits it
    monkeypatch.delenv("GRADTONE_TO", raising=False)


def _notebook(tmp_path, mode):
    import nbformat

    cells = [
        # The three lines a user writes (sys.path: this test runs the source tree).
        f"import sys; sys.path.insert(0, {PYDIR!r})\n"
        "from gradtone_hook.notebook import listen\n"
        f"page = listen(csv={str(tmp_path / 'run.csv')!r}, wav={str(tmp_path / 'run.wav')!r})",
        "import os; print(json.dumps({'kernel': os.getpid(), 'gradtone': page.process.pid}))".replace(
            "import os;", "import os, json;"
        ),
        # Training in the same kernel: the hook finds GRADTONE_TO, as any hook made after listen().
        "import torch\n"
        "from gradtone_hook import GradTone\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.05)\n"
        "tone = GradTone(model)\n"
        "x, y = torch.randn(64, 8), torch.randn(64, 1)\n"
        "import itertools, time\n"
        # "interrupt": runs until the user interrupts the kernel (the test sends SIGINT, as
        # Jupyter's interrupt button does).
        + (f"for step in range({STEPS}):\n" if mode != "interrupt" else "for step in itertools.count():\n")
        + "    opt.zero_grad()\n"
        "    loss = torch.nn.functional.mse_loss(model(x), y)\n"
        "    loss.backward()\n"
        "    tone.step(loss=loss)\n"
        "    opt.step()\n" + ("    time.sleep(0.02)\n" if mode == "interrupt" else ""),
        "print('exit', page.stop())",
    ]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])


def _outputs(cell, mime):
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o.get("text", ""))
        elif mime in o.get("data", {}):
            out.append(o["data"][mime])
    return "".join(out)


def _exited(pid, timeout):
    """Waits until ``pid`` is gone (or a zombie: its parent, the killed kernel, cannot reap it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.1)
    return False


def _check_outputs(tmp_path, steps):
    with open(tmp_path / "run.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", "loss", "0", "2"], rows[0]
    assert [int(r[0]) for r in rows[1:]] == list(range(steps))
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows[1:])
    with wave.open(str(tmp_path / "run.wav")) as w:
        assert w.getnframes() > w.getframerate() // 10, w.getnframes()  # sound for every step


def _points(ws, steps, until, on_point=None):
    """Reads the WebSocket: each chart point's step into ``steps``, until ``until()`` or "done"."""
    deadline = time.time() + 90
    while not until() and time.time() < deadline:
        try:
            msg = ws.recv()
        except Exception:  # noqa: BLE001 - closed: the server ended
            return
        if isinstance(msg, str):
            d = json.loads(msg)
            if d["t"] == "point":
                steps.append(d["p"]["step"])
                if on_point:
                    on_point()
            elif d["t"] == "done":
                return


def _run(tmp_path, mode):
    import websocket
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = _notebook(tmp_path, mode)
    client = NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    steps, ws, pids = [], None, {}
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        shown = _outputs(nb.cells[0], "text/html")
        m = re.search(r'<iframe src="([^"]+)"', shown)
        assert m, f"no page displayed: {nb.cells[0].get('outputs')}"
        url = m.group(1)
        assert url.startswith("http://127.0.0.1:"), url
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200
            assert '<canvas id="chart"' in r.read().decode("utf-8")

        client.execute_cell(nb.cells[1], 1)
        pids = json.loads(_outputs(nb.cells[1], "text/plain"))
        base, _, query = url.replace("http://", "ws://", 1).partition("?")
        ws = websocket.create_connection(base.rstrip("/") + "/ws" + ("?" + query if query else ""), timeout=20)
        hello = json.loads(ws.recv())
        assert hello["t"] == "hello" and hello["points"] == [], hello

        if mode == "interrupt":
            # Interrupt the endless training once the page has drawn 10 steps; stop() after it.
            def interrupt_at_10():
                if len(steps) == 10:
                    os.kill(pids["kernel"], signal.SIGINT)

            reader = threading.Thread(target=_points, args=(ws, steps, lambda: False, interrupt_at_10))
            reader.start()
            with pytest.raises(CellExecutionError, match="KeyboardInterrupt"):
                client.execute_cell(nb.cells[2], 2)
            client.execute_cell(nb.cells[3], 3)
            assert _outputs(nb.cells[3], "text/plain").strip() == "exit 0"
            reader.join(60)
            n = len(steps)
            assert n >= 10 and steps == list(range(n)), steps  # every step sent before the interrupt
        else:
            client.execute_cell(nb.cells[2], 2)  # training
            _points(ws, steps, lambda: len(steps) >= STEPS)
            assert steps == list(range(STEPS)), steps  # one chart point per step, in order
            n = STEPS
            if mode == "stop":
                client.execute_cell(nb.cells[3], 3)
                assert _outputs(nb.cells[3], "text/plain").strip() == "exit 0"
            else:
                os.kill(pids["kernel"], signal.SIGKILL)  # the kernel dies: the pipe to gradtone closes
        assert _exited(pids["gradtone"], 30), "gradtone did not end with its input"
    ws.close()
    _check_outputs(tmp_path, n)


def test_notebook_page_is_served_streams_every_step_and_stop_finalises(jupyter, tmp_path):
    _run(tmp_path, "stop")


def test_killed_kernel_still_leaves_valid_outputs(jupyter, tmp_path):
    _run(tmp_path, "kill")


def test_interrupted_training_then_stop_leaves_valid_outputs(jupyter, tmp_path):
    _run(tmp_path, "interrupt")


def test_frames_above_a_datagram_reach_the_page_whole(monkeypatch, tmp_path):
    # A model heard per tensor makes frames far above a datagram's 64 KiB: the kernel's hooks
    # reach the page through a stream, as under `gradtone run`. No Jupyter needed: the helper
    # itself, with display=False.
    monkeypatch.delenv("GRADTONE_TO", raising=False)
    from gradtone_hook import StreamWriter, encode_line
    from gradtone_hook.notebook import listen

    page = listen(csv=tmp_path / "big.csv", bin=gradtone_bin(ENV), display=False)
    names = [f"model.layers.{i}.weight" for i in range(3000)]
    try:
        w = StreamWriter()  # the default destination: GRADTONE_TO, which listen() set
        assert w.to == page.destination
        for step in range(5):
            line = encode_line(step, [(n, 0.25 * (i + 1) + step) for i, n in enumerate(names)])
            assert len(line) > 90_000
            assert w.write_line(line) is True
        # The writer stays connected (a hook the user never closed): stop() ends the input anyway.
        t = time.monotonic()
        assert page.stop() == 0, page.log
        assert time.monotonic() - t < 15
    finally:
        w.close()
        if page.running:
            page.stop()
    assert page.frames == 5 and w.errors == 0
    with open(tmp_path / "big.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["step", *names]
    assert [int(r[0]) for r in rows[1:]] == [0, 1, 2, 3, 4]
    for r in rows[1:]:
        step = int(r[0])
        assert [float(v) for v in r[1:]] == [0.25 * (i + 1) + step for i in range(3000)]
