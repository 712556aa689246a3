"""Writer, format and OSC tests. None of these needs torch: CI runs them with plain Python + pytest."""

import io
import json
import math
import os
import socket
import struct
import sys

import pytest

import gradtone_hook
from gradtone_hook import StreamWriter, encode_line, json_number, osc


def strict_loads(line):
    """json.loads that rejects NaN/Infinity tokens, as the Rust reader does."""

    def bad(tok):
        raise ValueError(f"bare non-finite token {tok!r}")

    return json.loads(line, parse_constant=bad)


def test_import_does_not_import_torch():
    # A fresh interpreter: this test process may have torch loaded by other tests.
    import subprocess

    src = os.path.join(os.path.dirname(__file__), "..")
    code = "import sys, gradtone_hook, gradtone_hook.osc; gradtone_hook.StreamWriter; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_line_matches_spec_example_and_key_order():
    line = encode_line(
        12,
        [("conv1", 0.12), ("conv2", 0.8), ("fc1", 1.1), ("fc2", 0.86)],
        {"loss": 2.30},
        rank=0,
        world=4,
        t=1795775400.25,
    )
    assert line == (
        '{"v":1,"step":12,"values":{"conv1":0.12,"conv2":0.8,"fc1":1.1,"fc2":0.86},'
        '"losses":{"loss":2.3},"rank":0,"world":4,"t":1795775400.25}\n'
    )
    # Model order survives even when it is not alphabetical.
    obj = strict_loads(encode_line(0, [("z", 1.0), ("a", 2.0), ("m", 3.0)]))
    assert list(obj["values"]) == ["z", "a", "m"]
    assert "losses" not in obj and "rank" not in obj and "t" not in obj


def test_non_finite_values_are_strings_and_line_is_strict_json():
    line = encode_line(
        5,
        {"a": float("nan"), "b": float("inf"), "c": float("-inf"), "d": None, "e": 1e-300},
        {"loss": float("nan")},
        t=float("nan"),
    )
    assert "NaN" not in line and "Infinity" not in line
    assert line.endswith("\n") and line.count("\n") == 1
    obj = strict_loads(line)
    assert obj["values"] == {"a": "nan", "b": "inf", "c": "-inf", "d": None, "e": 1e-300}
    assert obj["losses"] == {"loss": "nan"}
    assert "t" not in obj  # a non-finite clock is dropped, not written as a string


def test_frame_encoder_writes_the_line_of_encode_line_byte_for_byte():
    """The hook's fast encoder (names escaped once, numbers through one % format) must write
    exactly what encode_line writes, whatever the names and the numbers."""
    import random

    from gradtone_hook._format import FrameEncoder

    names = ["fc1", 'q"uote', "back\\slash", "per%cent", "%r%s", "ünï\u2013code", "tab\tnl\n", "x" * 40]
    enc = FrameEncoder(names)
    rng = random.Random(7)
    specials = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e308, 5e-324, 1.0, 0.1, 3.4028234663852886e38]
    cases = [[rng.random() * 10 ** rng.randint(-30, 30) for _ in names] for _ in range(40)]
    cases += [[rng.choice(specials) for _ in names] for _ in range(40)]
    cases.append([1e308] * len(names))  # finite numbers whose sum overflows
    for k, vals in enumerate(cases):
        params = None if k % 3 == 0 else [rng.choice(specials + [rng.random()]) for _ in names]
        args = dict(
            losses=[("loss", vals[0]), ("aux", 2)] if k % 2 else None,
            rank=k % 4 if k % 5 else None,
            world=4 if k % 5 else None,
            t=[None, 1.7e9 + k / 7, math.nan, 12][k % 4],
            clip=[None, 1.0, 0.0, math.inf, 0.25][k % 5],
        )
        want = encode_line(k, list(zip(names, vals)), params=params and list(zip(names, params)), **args)
        assert enc.line(k, vals, params=params, **args) == want, (vals, params, args)
    with pytest.raises(ValueError, match="3 numbers for 8 names"):
        enc.line(0, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="step must be >= 0"):
        enc.line(-1, [1.0] * len(names))


def test_json_number_conversions():
    assert json_number(3) == 3 and isinstance(json_number(3), int)
    assert json_number(2.5) == 2.5
    assert json_number(float("nan")) == "nan"

    class F:  # numpy scalars and host tensors are "anything with __float__"
        def __float__(self):
            return -math.inf

    assert json_number(F()) == "-inf"
    with pytest.raises(ValueError):
        encode_line(-1, {})


def test_round_trip_of_floats_is_exact():
    xs = [0.1, 1 / 3, 2.0**-1074, 1.7976931348623157e308, 0.24540574848651886]
    obj = strict_loads(encode_line(1, {f"x{i}": x for i, x in enumerate(xs)}))
    assert list(obj["values"].values()) == xs


def test_writer_to_file_object_text_and_binary():
    buf = io.StringIO()
    w = StreamWriter(buf)
    assert w.write_frame(0, {"a": 1.0}, {"loss": 2.0})
    assert w.write_frame(1, {"a": float("nan")})
    lines = buf.getvalue().splitlines()
    assert [strict_loads(x)["step"] for x in lines] == [0, 1]
    assert strict_loads(lines[1])["values"]["a"] == "nan"
    bbuf = io.BytesIO()
    StreamWriter(bbuf).write_frame(7, {"é": 0.5})
    assert strict_loads(bbuf.getvalue().decode("utf-8"))["values"] == {"é": 0.5}
    w.close()
    assert not buf.closed  # never closes what it was given


def test_writer_to_path_with_rank_placeholder(tmp_path):
    p = str(tmp_path / "run-{rank}.jsonl")
    w = StreamWriter(p)
    assert not os.path.exists(str(tmp_path / "run-3.jsonl"))  # nothing opened before a frame
    w.write_frame(0, {"a": 1.0}, rank=3, world=4)
    w.write_frame(1, {"a": 2.0}, rank=3, world=4)
    w.close()
    lines = (tmp_path / "run-3.jsonl").read_text().splitlines()
    assert [strict_loads(x)["values"]["a"] for x in lines] == [1.0, 2.0]
    assert all(strict_loads(x)["rank"] == 3 for x in lines)
    # Truncates by default, appends on request.
    w = StreamWriter(tmp_path / "x.jsonl")
    w.write_frame(0, {})
    w.close()
    w = StreamWriter(f"file://{tmp_path}/x.jsonl", append=True)
    w.write_frame(1, {})
    w.close()
    assert [strict_loads(x)["step"] for x in (tmp_path / "x.jsonl").read_text().splitlines()] == [0, 1]


def test_writer_to_stdout_is_looked_up_per_write(capsys):
    w = StreamWriter("stdout")
    w.write_frame(4, {"a": 1.5})
    out = capsys.readouterr().out
    assert strict_loads(out)["values"] == {"a": 1.5}


def test_bad_destinations_are_rejected_at_construction():
    with pytest.raises(ValueError, match="udp://HOST:PORT"):
        StreamWriter("udp://127.0.0.1")
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        StreamWriter("tcp://127.0.0.1")
    with pytest.raises(ValueError, match="unknown destination"):
        StreamWriter("http://127.0.0.1:9")
    with pytest.raises(TypeError):
        StreamWriter(42)


def _udp_server():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5.0)
    return s, s.getsockname()[1]


def test_udp_one_datagram_per_line():
    srv, port = _udp_server()
    with srv:
        w = StreamWriter(f"udp://127.0.0.1:{port}")
        for step in range(3):
            assert w.write_frame(step, {"fc1": step * 0.5, "fc2": float("inf")}, {"loss": 1.0}, rank=1, world=2)
        got = [srv.recvfrom(65536)[0] for _ in range(3)]
        w.close()
    for step, d in enumerate(got):
        text = d.decode("utf-8")
        assert text.endswith("\n") and text.count("\n") == 1  # exactly one complete line
        obj = strict_loads(text)
        assert obj["step"] == step and obj["values"] == {"fc1": step * 0.5, "fc2": "inf"}
        assert (obj["rank"], obj["world"]) == (1, 2)


def test_udp_frames_above_a_datagram_are_refused_once_clearly(capsys):
    srv, port = _udp_server()
    with srv:
        w = StreamWriter(f"udp://127.0.0.1:{port}")
        huge = {f"v{i}": 1.0 for i in range(8000)}  # > 64 KiB: no datagram can carry it
        assert w.write_frame(0, huge) is False
        assert w.write_frame(1, huge) is False
        assert w.write_frame(2, {"a": 1.0}) is True  # later small frames still go out
        assert strict_loads(srv.recvfrom(65536)[0])["step"] == 2
        w.close()
    err = capsys.readouterr().err
    assert (w.errors, w.written) == (2, 1)
    assert err.count("gradtone_hook:") == 1, err  # one line, not one per step
    assert "one UDP datagram carries at most 65,507" in err and "gradtone run" in err
    assert "Message too long" not in err
    # Loopback has no path MTU to speak of: no fragmentation warning there.
    assert "MTU" not in err


def test_no_mtu_warning_on_loopback_even_for_large_datagrams(capsys):
    for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
        try:
            srv = socket.socket(family, socket.SOCK_DGRAM)
            srv.bind((host, 0))
        except OSError:
            continue  # no IPv6 on this machine
        with srv:
            srv.settimeout(5.0)
            port = srv.getsockname()[1]
            name = f"[{host}]" if ":" in host else host
            w = StreamWriter(f"udp://{name}:{port}")
            assert w.write_frame(0, {f"layer{i}": 0.5 for i in range(400)})  # ≈ 6 KB
            assert len(srv.recvfrom(65536)[0]) > 1400
            w.close()
    assert capsys.readouterr().err == ""


def test_mtu_warning_beyond_loopback_gives_advice_other_than_the_default(capsys):
    """To another machine, a frame above ~1400 bytes may be fragmented: said once, with advice
    that is not the default grouping. Nothing is sent anywhere: the socket is a stand-in."""

    class Socket:
        def __init__(self):
            self.sent = []

        def sendto(self, data, addr):
            self.sent.append(len(data))

    w = StreamWriter("udp://192.0.2.1:9")  # TEST-NET-1, never contacted

    def fake_open(rank):
        if w._sock is None:
            w._sock, w._addr, w._loopback = Socket(), ("192.0.2.1", 9), False

    w._open = fake_open
    for step in range(3):
        assert w.write_frame(step, {f"layer{i}": 0.5 for i in range(200)})
    err = capsys.readouterr().err
    assert err.count("gradtone_hook:") == 1 and "MTU" in err, err
    assert "group_by='module'" not in err  # the default: no advice at all
    assert "gradtone run" in err and len(w._sock.sent) == 3


def _tcp_server():
    """A loopback TCP server that collects every byte of every connection."""
    import threading

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(10.0)
    got = []

    def serve():
        conn, _ = srv.accept()
        conn.settimeout(10.0)
        buf = bytearray()
        with conn:
            while True:
                b = conn.recv(1 << 16)
                if not b:
                    break
                buf += b
        got.append(bytes(buf))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, srv.getsockname()[1], t, got


def test_tcp_carries_frames_of_any_size_whole():
    srv, port, t, got = _tcp_server()
    with srv:
        w = StreamWriter(f"tcp://127.0.0.1:{port}")
        big = [(f"model.layers.{i}.weight", 0.001 * i) for i in range(20000)]  # ≈ 600 KB a line
        for step in range(5):
            assert w.write_frame(step, big, {"loss": 1.0}) is True
        w.close()  # sends what is queued, then closes: the server sees the end
        t.join(10)
    lines = got[0].decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 6
    for step, line in enumerate(lines[:-1]):
        assert len(line) > 300_000
        obj = strict_loads(line)
        assert obj["step"] == step and len(obj["values"]) == 20000
    assert (w.errors, w.dropped, w.written) == (0, 0, 5)


def test_tcp_never_waits_for_a_listener_that_does_not_read(monkeypatch, capsys):
    import threading

    import gradtone_hook._writer as writer_mod

    monkeypatch.setattr(writer_mod, "TCP_QUEUE_BYTES", 1 << 20)
    monkeypatch.setattr(writer_mod, "TCP_CLOSE_SECONDS", 0.2)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)  # accepted by the kernel, never read
    with srv:
        w = StreamWriter(f"tcp://127.0.0.1:{srv.getsockname()[1]}")
        line = encode_line(0, [(f"v{i}", 0.5) for i in range(20000)])  # ≈ 300 KB
        ok = []
        # 30 MB: far beyond the queue and the kernel's buffers. A write that waited for the
        # listener would never return.
        writes = threading.Thread(target=lambda: ok.extend(w.write_line(line) for _ in range(100)), daemon=True)
        writes.start()
        writes.join(120)
        assert not writes.is_alive(), "a write waited for a listener that never reads"
        w.close()
    assert ok[0] is True and ok.count(False) == w.dropped > 50
    assert w.errors == w.dropped
    err = capsys.readouterr().err
    assert err.count("gradtone_hook:") == 1 and "frames are skipped" in err, err


def test_tcp_frames_are_sent_by_the_step_itself_so_a_killed_process_has_sent_them():
    # SIGKILL (the OOM killer), a crash in native code, os._exit: no atexit, no sender thread
    # run. The frames of the steps before it are the ones that tell what happened: each must
    # have left the process at its step, as a datagram would have.
    import subprocess

    srv, port, t, got = _tcp_server()
    script = (
        "import os, signal, sys\n"
        "from gradtone_hook import StreamWriter\n"
        f"w = StreamWriter('tcp://127.0.0.1:{port}')\n"
        "for step in range(5):\n"
        "    assert w.write_frame(step, {'a': float(step)})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(gradtone_hook.__file__))]))
    with srv:
        r = subprocess.run([sys.executable, "-c", script], env=env, timeout=60)
        t.join(10)
    assert r.returncode == -9
    steps = [strict_loads(line)["step"] for line in got[0].decode("utf-8").splitlines()]
    assert steps == [0, 1, 2, 3, 4]


def test_tcp_connect_beyond_loopback_never_holds_a_step(monkeypatch, capsys):
    # A connect elsewhere can take seconds (a lost SYN, a slow name lookup). It must not be
    # the training's: the sender thread makes it. No traffic leaves: the connect is a stand-in.
    import time

    def slow_refused(address, timeout=None):
        time.sleep(1.5)
        raise ConnectionRefusedError(f"refused by the stand-in for {address}")

    monkeypatch.setattr(socket, "create_connection", slow_refused)
    w = StreamWriter("tcp://gradtone-test.invalid:9")
    t = time.monotonic()
    for step in range(3):
        w.write_frame(step, {"a": 1.0})
    assert time.monotonic() - t < 0.5, "a step waited for the connection"
    time.sleep(2.0)  # the thread's connect has failed by now
    assert w.write_frame(3, {"a": 1.0}) is False
    w.close()
    assert w.errors >= 1
    assert capsys.readouterr().err.count("cannot write to tcp://gradtone-test.invalid:9") == 1


def test_tcp_refused_connection_is_counted_once(capsys):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    w = StreamWriter(f"tcp://127.0.0.1:{port}")
    assert w.write_frame(0, {"a": 1.0}) is False
    assert w.write_frame(1, {"a": 1.0}) is False
    w.close()
    assert w.errors == 2
    assert capsys.readouterr().err.count("cannot write to tcp://127.0.0.1") == 1


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_default_stdout_on_a_terminal_prints_one_hint_not_frames(monkeypatch, capsys):
    monkeypatch.delenv("GRADTONE_TO", raising=False)
    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    w = StreamWriter()
    for step in range(5):
        assert w.write_frame(step, {"a": 1.0}) is False
    assert term.getvalue() == "" and w.held_back == 5 and w.errors == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gradtone run -- python train.py" in err, err
    # Asked for explicitly, stdout gets the frames even on a terminal.
    w2 = StreamWriter("stdout")
    assert w2.write_frame(0, {"a": 1.0}) is True
    assert strict_loads(term.getvalue())["step"] == 0
    # A pipe (not a terminal) gets them by default: `python train.py | gradtone listen`.
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stdout", pipe)
    assert StreamWriter().write_frame(0, {"a": 1.0}) is True
    assert strict_loads(pipe.getvalue())["step"] == 0


def test_a_script_on_a_real_terminal_shows_one_line_of_ours():
    """A pseudo-terminal as the script's stdout and stderr, as when run by hand."""
    import pty
    import subprocess

    src = os.path.join(os.path.dirname(__file__), "..")
    code = (
        "from gradtone_hook import StreamWriter\n"
        "w = StreamWriter()\n"
        "for s in range(20):\n"
        "    w.write_frame(s, {f'layer{i}': 0.5 for i in range(100)})\n"
        "print('training done')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GRADTONE_TO"}
    main, sub = pty.openpty()
    p = subprocess.Popen([sys.executable, "-c", code], cwd=src, stdout=sub, stderr=sub, env=env)
    os.close(sub)
    out = b""
    while True:
        try:
            b = os.read(main, 1 << 16)
        except OSError:  # EIO: the script ended and closed the terminal
            break
        if not b:
            break
        out += b
    os.close(main)
    assert p.wait(timeout=60) == 0
    text = out.decode("utf-8", "replace")
    lines = [l for l in text.splitlines() if l.strip()]
    assert lines[-1] == "training done", text
    assert '"step"' not in text
    assert len(lines) == 2 and lines[0].startswith("gradtone_hook: frames are not printed"), text


def test_closed_file_object_never_raises(capsys):
    buf = io.StringIO()
    buf.close()
    w = StreamWriter(buf)
    for i in range(5):
        assert w.write_frame(i, {"a": 1.0}) is False
    assert w.errors == 5
    assert capsys.readouterr().err.count("gradtone_hook: cannot write") == 1


def test_broken_pipe_on_stdout_is_counted(monkeypatch, capsys):
    class Broken(io.TextIOBase):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Broken())
    w = StreamWriter("stdout")
    assert w.write_frame(0, {"a": 1.0}) is False
    assert w.write_frame(1, {"a": 1.0}) is False
    assert w.errors == 2
    assert "BrokenPipeError" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- OSC
def hand_decode(packet):
    """An OSC decoder written independently of gradtone_hook.osc, straight from the OSC 1.0 spec."""

    def string(pos):
        end = packet.index(b"\0", pos)
        assert all(b == 0 for b in packet[end : (end + 4) & ~3]), "padding must be NULs"
        return packet[pos:end].decode(), (end + 4) & ~3

    assert len(packet) % 4 == 0
    addr, pos = string(0)
    tags, pos = string(pos)
    assert tags[0] == ","
    args = []
    for tag in tags[1:]:
        if tag == "i":
            args.append(struct.unpack(">i", packet[pos : pos + 4])[0])
            pos += 4
        elif tag == "h":
            args.append(struct.unpack(">q", packet[pos : pos + 8])[0])
            pos += 8
        elif tag == "f":
            args.append(struct.unpack(">f", packet[pos : pos + 4])[0])
            pos += 4
        elif tag == "s":
            s, pos = string(pos)
            args.append(s)
        else:
            raise AssertionError(tag)
    assert pos == len(packet)
    return addr, tags, args


def test_osc_frame_bytes_exact():
    pkt = osc.encode_frame(12, [("conv1", 0.5), ("fc", float("nan"))])
    expected = (
        b"/gradtone/frame\0"  # 15 chars + NUL = 16
        + b",isfsf\0\0"  # 6 + NUL -> 8
        + struct.pack(">i", 12)
        + b"conv1\0\0\0"
        + struct.pack(">f", 0.5)
        + b"fc\0\0"
        + b"\x7f\xc0\x00\x00"  # float32 quiet NaN
    )
    assert pkt == expected
    addr, tags, args = hand_decode(pkt)
    assert (addr, tags) == ("/gradtone/frame", ",isfsf")
    assert args[:4] == [12, "conv1", 0.5, "fc"] and math.isnan(args[4])


def test_osc_decoder_round_trip_and_edge_cases():
    vals = [("a" * n, float(n) / 8) for n in range(1, 9)] + [("inf", float("inf")), ("big", 1e39), ("none", None)]
    pkt = osc.encode_frame(2**33, vals)
    addr, tags, args = hand_decode(pkt)
    assert tags == ",h" + "sf" * len(vals) and args[0] == 2**33
    assert args[1::2] == [n for n, _ in vals]
    got = args[2::2]
    assert got[:8] == [float(n) / 8 for n in range(1, 9)]
    assert got[8] == math.inf and got[9] == math.inf  # 1e39 saturates to float32 +inf
    assert math.isnan(got[10])  # None -> NaN
    assert osc.decode_message(pkt)[0] == "/gradtone/frame"
    m = osc.encode_message("/x", [1, 2.5, "s", b"\x01\x02\x03"])
    assert osc.decode_message(m) == ("/x", [1, 2.5, "s", b"\x01\x02\x03"])
    with pytest.raises(ValueError):
        osc.decode_message(b"/x\0\0,i\0\0\0\0")  # int runs past the end
    with pytest.raises(ValueError):
        osc.encode_message("no-slash", [])


def test_osc_with_python_osc_if_installed():
    try:
        from pythonosc.osc_message import OscMessage
    except ImportError:
        pytest.skip("*** SKIPPED: python-osc not installed (optional cross-check; the hand decoder ran above) ***")
    msg = OscMessage(osc.encode_frame(3, [("fc1", 1.25), ("fc2", -2.0)]))
    assert msg.address == "/gradtone/frame"
    assert list(msg.params) == [3, "fc1", 1.25, "fc2", -2.0]


def test_osc_over_udp():
    srv, port = _udp_server()
    with srv:
        w = StreamWriter(f"osc://127.0.0.1:{port}")
        assert w.write_frame(9, [("conv1", 0.25), ("fc2", float("-inf"))], {"loss": 1.0}, rank=0, world=1)
        addr, tags, args = hand_decode(srv.recvfrom(65536)[0])
        w.close()
    assert (addr, tags) == ("/gradtone/frame", ",isfsf")
    assert args == [9, "conv1", 0.25, "fc2", -math.inf]
    with pytest.raises(ValueError):
        StreamWriter(f"osc://127.0.0.1:{port}").write_line("{}")


def test_version_is_exposed():
    assert gradtone_hook.FORMAT_VERSION == 1 and gradtone_hook.__version__


def test_gradtone_to_is_the_default_destination(monkeypatch, tmp_path):
    # `gradtone run` sets GRADTONE_TO; to= wins over it; unset or empty means stdout.
    target = tmp_path / "frames.jsonl"
    monkeypatch.setenv("GRADTONE_TO", str(target))
    w = StreamWriter()
    assert w.write_frame(1, {"fc1": 0.5})
    w.close()
    assert '"step":1' in target.read_text()
    explicit = tmp_path / "explicit.jsonl"
    w = StreamWriter(str(explicit))
    w.write_frame(2, {"fc1": 0.5})
    w.close()
    assert explicit.exists() and '"step":1' in target.read_text()
    monkeypatch.setenv("GRADTONE_TO", "udp://127.0.0.1:9")
    assert StreamWriter()._kind == "udp"
    monkeypatch.setenv("GRADTONE_TO", "")
    assert StreamWriter()._kind == "stdout"
    monkeypatch.delenv("GRADTONE_TO")
    assert StreamWriter()._kind == "stdout"
