"""GradTone tests with a real torch (skipped loudly without it; GRADTONE_REQUIRE_TORCH=1 fails instead)."""

import io
import json
import math
import socket

import pytest
from conftest import skip_or_fail

from gradtone_hook import osc


def strict_loads(line):
    def bad(tok):
        raise ValueError(f"bare non-finite token {tok!r}")

    return json.loads(line, parse_constant=bad)


def make_model(torch):
    nn = torch.nn

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.fc1 = nn.Linear(4 * 6 * 6, 16)
            self.head = nn.Sequential(nn.ReLU(), nn.Linear(16, 3))

        def forward(self, x):
            x = self.bn(self.conv1(x)).relu().flatten(1)
            return self.head(self.fc1(x))

    torch.manual_seed(0)
    return Small()


def backward(torch, model, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (5,), generator=g)
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss


def run_one(torch, model, **kw):
    from gradtone_hook import GradTone

    buf = io.StringIO()
    tone = GradTone(model, to=buf, strict=True, **kw)
    loss = backward(torch, model)
    frame = tone.step(loss=loss)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    obj = strict_loads(lines[0])
    return tone, obj, frame, loss


def test_per_tensor_norms_equal_grad_norm(torch):
    model = make_model(torch)
    tone, obj, frame, loss = run_one(torch, model, group_by="tensor")
    params = dict(model.named_parameters())
    assert list(obj["values"]) == list(params)  # every tensor, in model order
    for name, v in obj["values"].items():
        assert v == params[name].grad.norm().item(), name  # exact: same float32 kernel
    assert obj["losses"] == {"loss": loss.item()}
    assert obj["step"] == 0 and obj["v"] == 1 and isinstance(obj["t"], float)
    assert "rank" not in obj  # no process group here
    assert frame["values"] == obj["values"]


def test_module_groups_are_sqrt_of_sum_of_squares(torch):
    model = make_model(torch)
    tone, obj, _, _ = run_one(torch, model)  # group_by="module" is the default
    params = dict(model.named_parameters())
    assert list(obj["values"]) == ["conv1", "bn", "fc1", "head.1"]
    for mod in obj["values"]:
        members = [p.grad.double() for n, p in params.items() if n.rpartition(".")[0] == mod]
        assert len(members) == 2  # weight and bias
        expect = math.sqrt(sum(float((g * g).sum()) for g in members))
        assert obj["values"][mod] == pytest.approx(expect, rel=1e-6), mod
        from_norms = math.sqrt(sum(float(g.float().norm()) ** 2 for g in members))
        assert obj["values"][mod] == pytest.approx(from_norms, rel=1e-12)


def test_include_exclude_and_callable_groups(torch):
    model = make_model(torch)
    _, obj, _, _ = run_one(torch, model, include=["*weight"], group_by="module")
    params = dict(model.named_parameters())
    assert list(obj["values"]) == ["conv1", "bn", "fc1", "head.1"]
    for mod, v in obj["values"].items():
        assert v == pytest.approx(params[mod + ".weight"].grad.norm().item(), rel=1e-12)
    _, obj, _, _ = run_one(torch, model, include=["*weight"], exclude=["bn.*"], group_by="tensor")
    assert list(obj["values"]) == ["conv1.weight", "fc1.weight", "head.1.weight"]
    # A callable: everything but the head in one "body" voice; None drops a tensor.
    _, obj, _, _ = run_one(
        torch, model, group_by=lambda n: None if n.startswith("bn") else ("head" if n.startswith("head") else "body")
    )
    body = [p.grad for n, p in params.items() if n.startswith(("conv1", "fc1"))]
    assert list(obj["values"]) == ["body", "head"]
    assert obj["values"]["body"] == pytest.approx(math.sqrt(sum(g.norm().item() ** 2 for g in body)), rel=1e-12)
    from gradtone_hook import GradTone

    with pytest.raises(ValueError, match="no parameter selected"):
        GradTone(model, to=io.StringIO(), include=["nothing*"])


def test_frozen_and_gradless_parameters(torch):
    model = make_model(torch)
    model.bn.requires_grad_(False)
    from gradtone_hook import GradTone

    buf = io.StringIO()
    tone = GradTone(model, to=buf, strict=True)
    assert tone.names == ["conv1", "fc1", "head.1"]  # frozen bn is not a voice
    model.zero_grad(set_to_none=True)  # no backward: every grad is None
    tone.step()
    obj = strict_loads(buf.getvalue())
    assert obj["values"] == {"conv1": 0.0, "fc1": 0.0, "head.1": 0.0}
    assert "losses" not in obj


def test_a_gradient_gone_after_the_first_steps_takes_the_general_read(torch):
    """Steps 0-1 with every gradient (the common read, its dtype check done once), step 2 with
    fc1's gradients None (unused at that step): its frame still has every other norm, exact,
    and fc1 at 0.0 (silence), as the general read writes it."""
    from gradtone_hook import GradTone

    model = make_model(torch)
    buf = io.StringIO()
    tone = GradTone(model, to=buf, group_by="tensor", strict=True, param_norms=False)
    for step in range(3):
        backward(torch, model, seed=step)
        if step == 2:
            model.fc1.weight.grad = model.fc1.bias.grad = None
        tone.step()
    frames = [strict_loads(line) for line in buf.getvalue().splitlines()]
    assert [f["step"] for f in frames] == [0, 1, 2]
    last = frames[2]["values"]
    assert last["fc1.weight"] == 0.0 and last["fc1.bias"] == 0.0
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert last[name] == p.grad.norm().item(), name


def test_nan_and_inf_gradients_become_strings(torch):
    model = make_model(torch)
    from gradtone_hook import GradTone

    buf = io.StringIO()
    tone = GradTone(model, to=buf, group_by="module", strict=True)
    loss = backward(torch, model)
    model.fc1.weight.grad[0, 0] = float("nan")
    model.conv1.bias.grad[1] = float("inf")  # conv1 group: inf weight-free member
    model.head[1].weight.grad[0, 0] = float("-inf")
    tone.step(losses={"ce": loss, "bad": torch.tensor(float("nan")), "host": float("inf")})
    line = buf.getvalue()
    assert "NaN" not in line and "Infinity" not in line
    obj = strict_loads(line)  # strict JSON: would raise on a bare NaN token
    assert obj["values"]["fc1"] == "nan"
    assert obj["values"]["conv1"] == "inf"
    assert obj["values"]["head.1"] == "inf"  # a norm is never negative
    assert isinstance(obj["values"]["bn"], float)
    assert obj["losses"] == {"ce": loss.item(), "bad": "nan", "host": "inf"}
    # NaN wins over inf inside a group: the alarm must not be masked.
    model.fc1.bias.grad[0] = float("inf")
    buf.truncate(0)
    buf.seek(0)
    tone.step()
    assert strict_loads(buf.getvalue())["values"]["fc1"] == "nan"


def test_step_counting_every_and_extra_values(torch):
    model = make_model(torch)
    from gradtone_hook import GradTone

    buf = io.StringIO()
    tone = GradTone(model, to=buf, start_step=10, every=2, wall_time=False, strict=True)
    backward(torch, model)
    for _ in range(4):
        tone.step(values={"lr": 0.1, "temp": torch.tensor(2.5)})
    tone.step(step=100)
    tone.step()  # 101: skipped by every=2
    tone.step()  # 102
    objs = [strict_loads(x) for x in buf.getvalue().splitlines()]
    assert [o["step"] for o in objs] == [10, 12, 100, 102]
    assert list(objs[0]["values"])[-2:] == ["lr", "temp"] and objs[0]["values"]["temp"] == 2.5
    assert all("t" not in o for o in objs)


class FakeScaler:
    """Just what GradTone needs of a GradScaler when no real one is at hand."""

    def __init__(self, scale):
        self.scale = scale

    def get_scale(self):
        return self.scale


def test_fake_scaler_divides(torch):
    model = make_model(torch)
    _, plain, _, _ = run_one(torch, model, group_by="tensor")
    _, scaled, _, _ = run_one(torch, model, group_by="tensor", scaler=FakeScaler(1024.0))
    for k in plain["values"]:
        assert scaled["values"][k] == pytest.approx(plain["values"][k] / 1024.0, rel=1e-15)
    _, same, _, _ = run_one(torch, model, group_by="tensor", scaler=FakeScaler(1024.0), unscaled=True)
    assert same["values"] == plain["values"]


def _real_cpu_scaler(torch):
    amp = getattr(torch, "amp", None)
    if amp is None or not hasattr(amp, "GradScaler"):
        skip_or_fail("*** SKIPPED: torch.amp.GradScaler not in this torch ***")
    try:
        return amp.GradScaler("cpu", init_scale=2.0**12)
    except Exception as e:  # older torch: CUDA only
        skip_or_fail(f"*** SKIPPED: no CPU GradScaler in this torch ({e}) ***")


def test_real_grad_scaler_before_and_after_unscale(torch):
    from gradtone_hook import GradTone

    model = make_model(torch)
    scaler = _real_cpu_scaler(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 1, 8, 8, generator=g), torch.randint(0, 3, (5,), generator=g)

    ref = torch.nn.functional.cross_entropy(model(x), y)
    ref.backward()
    want = {n: p.grad.norm().item() for n, p in model.named_parameters()}
    opt.zero_grad()

    buf = io.StringIO()
    tone = GradTone(model, to=buf, group_by="tensor", scaler=scaler, strict=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    scaler.scale(loss).backward()
    tone.step(loss=loss)  # grads still scaled by 4096: the hook divides
    scaler.unscale_(opt)
    tone.step(loss=loss)  # detected from the scaler's optimizer state: no division
    scaler.step(opt)
    scaler.update()
    a, b = (strict_loads(x) for x in buf.getvalue().splitlines())
    for n, w in want.items():
        assert a["values"][n] == pytest.approx(w, rel=1e-5), n
        assert b["values"][n] == pytest.approx(w, rel=1e-5), n


def test_one_host_sync_per_step(torch, monkeypatch):
    """All norms, the tensor loss and the scaler's scale come back in one .tolist()."""
    from gradtone_hook import GradTone

    model = make_model(torch)
    scaler = _real_cpu_scaler(torch)
    tone = GradTone(model, to=io.StringIO(), group_by="tensor", scaler=scaler, strict=True)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(5, 1, 8, 8)), torch.tensor([0, 1, 2, 0, 1]))
    scaler.scale(loss).backward()
    calls = {"tolist": 0, "item": 0, "cpu": 0, "float": 0}
    for meth in ("tolist", "item", "cpu", "__float__"):
        orig = getattr(torch.Tensor, meth)

        def wrapped(self, *a, _orig=orig, _m=meth, **k):
            calls[_m.strip("_")] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, meth, wrapped)
    tone.step(loss=loss, losses={"aux": loss * 2})
    assert calls == {"tolist": 1, "item": 0, "cpu": 0, "float": 0}


def test_never_crashes_training(torch, capsys):
    from gradtone_hook import GradTone

    model = make_model(torch)
    buf = io.StringIO()
    buf.close()
    tone = GradTone(model, to=buf)
    backward(torch, model)
    for _ in range(3):
        tone.step(loss=torch.tensor(1.0))
    tone.step(losses={"weird": object()})  # a programming error: warned once, not raised
    tone.step(losses={"weird": object()})
    assert tone.writer.errors == 3 and tone.step_errors == 2 and tone.errors == 5
    err = capsys.readouterr().err
    assert err.count("gradtone_hook: cannot write") == 1 and err.count("gradtone_hook: step") == 1
    strict = GradTone(model, to=io.StringIO(), strict=True)
    with pytest.raises(TypeError):
        strict.step(losses={"weird": object()})


def test_udp_and_osc_from_the_hook(torch):
    from gradtone_hook import GradTone

    model = make_model(torch)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(5.0)
    port = srv.getsockname()[1]
    with srv:
        loss = backward(torch, model)
        with GradTone(model, to=f"udp://127.0.0.1:{port}", include="*weight", strict=True) as tone:
            tone.step(loss=loss)
        obj = strict_loads(srv.recvfrom(65536)[0].decode())
        with GradTone(model, to=f"osc://127.0.0.1:{port}", include="*weight", strict=True) as tone:
            tone.step(loss=loss, step=7)
        addr, args = osc.decode_message(srv.recvfrom(65536)[0])
    assert list(obj["values"]) == ["conv1", "bn", "fc1", "head.1"]
    assert addr == "/gradtone/frame" and args[0] == 7
    assert args[1::2] == ["conv1", "bn", "fc1", "head.1"]
    for name, v in zip(args[1::2], args[2::2]):
        assert v == pytest.approx(obj["values"][name], rel=1e-6)  # float32 on the wire


def _ddp_worker(rank, world, port, out_dir):
    import os

    import torch
    import torch.distributed as dist

    from gradtone_hook import GradTone

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        tone = GradTone(ddp, to=os.path.join(out_dir, "rank{rank}.jsonl"), strict=True)
        g = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        for _ in range(3):
            opt.zero_grad()
            x = torch.randn(4, 6, generator=g)
            loss = ddp(x).pow(2).mean()
            loss.backward()
            tone.step(loss=loss)
            opt.step()
        tone.close()
        # Both ranks done before either tears gloo down: a rank that destroys its group while
        # the other still talks to it can abort in gloo's C++ teardown ("terminate called
        # without an active exception"), failing the test for no fault of the hook.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_ranks(torch, tmp_path):
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available() or not dist.is_gloo_available():
        skip_or_fail("*** SKIPPED: torch.distributed with gloo is not available in this torch ***")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    mp.start_processes(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    per_rank = {}
    for r in (0, 1):
        per_rank[r] = [strict_loads(x) for x in (tmp_path / f"rank{r}.jsonl").read_text().splitlines()]
        assert [o["step"] for o in per_rank[r]] == [0, 1, 2]
        assert all((o["rank"], o["world"]) == (r, 2) for o in per_rank[r])
        assert list(per_rank[r][0]["values"]) == ["0", "2"]  # no "module." prefix from DDP
    for a, b in zip(per_rank[0], per_rank[1]):
        # DDP all-reduces gradients: the norms agree across ranks, the local losses do not.
        for k in a["values"]:
            assert a["values"][k] == pytest.approx(b["values"][k], rel=1e-6)
        assert a["losses"]["loss"] != b["losses"]["loss"]


def test_term_norms_are_each_weighted_terms_gradient(torch):
    """term_norms gives each weighted term's own per-group gradient norm (checked against a
    separate backward per term), leaves the graph usable for the total's backward, and the
    frame's values name them term/group: gradtone's instruments."""
    from gradtone_hook import GradTone

    model = make_model(torch)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 1, 8, 8, generator=g)
    y = torch.randint(0, 3, (5,), generator=g)
    buf = io.StringIO()
    tone = GradTone(model, to=buf, strict=True, include=["*weight"])

    def terms():
        out = model(x)
        ce = torch.nn.functional.cross_entropy(out, y)
        reg = 0.3 * sum((p**2).sum() for n, p in model.named_parameters() if n.endswith("weight"))
        return ce, reg

    # Independent answer: one backward per term on a fresh graph.
    want = {}
    for k, name in enumerate(["ce", "reg"]):
        model.zero_grad()
        terms()[k].backward()
        for grp, pname in [("conv1", "conv1.weight"), ("fc1", "fc1.weight"), ("head.1", "head.1.weight")]:
            want[f"{name}/{grp}"] = dict(model.named_parameters())[pname].grad.norm().item()

    model.zero_grad()
    ce, reg = terms()
    got = tone.term_norms({"ce": ce, "reg": reg})
    (ce + reg).backward()  # the graph is still there
    frame = tone.step(losses={"ce": ce, "reg": reg}, values=got)
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-5), (k, got[k], v)
    names = list(strict_loads(buf.getvalue().splitlines()[0])["values"])
    assert names[: len(tone.names)] == tone.names
    assert "ce/conv1" in names and "reg/head.1" in names
    # The total's norm is not the sum of the terms' norms, but within the triangle bound.
    total = frame["values"]["fc1"]
    assert total <= got["ce/fc1"] + got["reg/fc1"] + 1e-9
    with pytest.raises(ValueError):
        tone.term_norms({"a/b": ce})


@pytest.mark.parametrize("mixed", [False, True])
def test_half_gradients_are_reduced_in_float32_on_every_read(torch, mixed):
    """The common read (one fused _foreach_norm for every tensor) must not reduce a float16
    gradient in float16 (it overflows at 65504), alone or beside float32 ones (mixed dtypes go
    to the general read, one batch per dtype)."""
    from gradtone_hook import GradTone

    model = torch.nn.Sequential(torch.nn.Linear(300, 300), torch.nn.Linear(300, 2))
    model[0].half()
    if not mixed:
        model[1].half()
    for p in model.parameters():
        p.grad = torch.full_like(p, 200.0)  # the weight: sqrt(300 * 300 * 200^2) = 60,000
    buf = io.StringIO()
    tone = GradTone(model, to=buf, group_by="tensor", strict=True)
    frame = tone.step(loss=torch.tensor(1.5))
    obj = strict_loads(buf.getvalue())
    for n, p in model.named_parameters():
        want = p.grad.float().norm().item()
        assert obj["values"][n] == pytest.approx(want, rel=1e-6), n
        assert obj["params"][n] == pytest.approx(p.detach().float().norm().item(), rel=1e-3), n
    assert obj["values"]["0.weight"] == pytest.approx(60000.0, rel=1e-6)
    assert obj["losses"] == {"loss": 1.5} and frame["values"] == obj["values"]
