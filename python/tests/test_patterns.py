"""Selection on the common torch.nn layers: the defaults and every documented include pattern
must select every weight (LSTM/GRU/RNN name theirs weight_ih_l0, attention in_proj_weight), and
a pattern that leaves out a parameter with a gradient is named in a warning. Also clipping
(`clip=` -> the frame's "clip") and the package metadata."""

import io
import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def layers(torch):
    nn = torch.nn
    return {
        "Linear": nn.Linear(4, 3),
        "Conv1d": nn.Conv1d(2, 3, 3),
        "Conv2d": nn.Conv2d(2, 3, 3),
        "Conv3d": nn.Conv3d(2, 3, 3),
        "ConvTranspose2d": nn.ConvTranspose2d(2, 3, 3),
        "LSTM": nn.LSTM(4, 5, num_layers=2, bidirectional=True),
        "GRU": nn.GRU(4, 5),
        "RNN": nn.RNN(4, 5),
        "Embedding": nn.Embedding(10, 4),
        "MultiheadAttention": nn.MultiheadAttention(8, 2),
        "MultiheadAttention_kdim": nn.MultiheadAttention(8, 2, kdim=6, vdim=5),
        "LayerNorm": nn.LayerNorm(4),
        "BatchNorm2d": nn.BatchNorm2d(3),
        "GroupNorm": nn.GroupNorm(1, 3),
        "TransformerEncoderLayer": nn.TransformerEncoderLayer(8, 2, dim_feedforward=16),
    }


def documented_patterns():
    """Every include=[...] list written in the READMEs and the package docstrings."""
    files = [
        os.path.join(REPO, "README.md"),
        os.path.join(REPO, "python", "README.md"),
        os.path.join(REPO, "python", "gradtone_hook", "__init__.py"),
        os.path.join(REPO, "python", "gradtone_hook", "_hook.py"),
        os.path.join(REPO, "python", "gradtone_hook", "lightning.py"),
        os.path.join(REPO, "python", "gradtone_hook", "hf.py"),
    ]
    found = []
    for path in files:
        text = open(path, encoding="utf-8").read()
        for m in re.finditer(r"include=\[([^\]]*)\]", text):
            pats = re.findall(r"[\"']([^\"']+)[\"']", m.group(1))
            if pats:
                found.append((os.path.relpath(path, REPO), pats))
    return found


def weights_of(module):
    return [n for n, _ in module.named_parameters() if "weight" in n]


def select(torch, module, **kw):
    from gradtone_hook import GradTone

    return GradTone(module, to=io.StringIO(), group_by="tensor", strict=True, **kw)


def test_defaults_select_every_parameter_of_every_common_layer(torch):
    for kind, module in layers(torch).items():
        tone = select(torch, module)
        assert tone.parameter_names == [n for n, _ in module.named_parameters()], kind


def test_documented_patterns_select_every_weight(torch):
    docs = documented_patterns()
    assert docs, "no include=[...] found in the docs"
    for where, pats in docs:
        for kind, module in layers(torch).items():
            tone = select(torch, module, include=pats)
            missing = set(weights_of(module)) - set(tone.parameter_names)
            assert not missing, f"{where}: include={pats} drops {sorted(missing)} of {kind}"
    # Named explicitly: the parameters that "*weight" used to drop.
    lstm = layers(torch)["LSTM"]
    assert {"weight_ih_l0", "weight_hh_l1_reverse"} <= set(weights_of(lstm))
    mha = layers(torch)["MultiheadAttention"]
    assert "in_proj_weight" in weights_of(mha)


def test_a_pattern_that_drops_a_gradient_is_warned_once(torch, capsys):
    from gradtone_hook import GradTone

    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LSTM(4, 5), torch.nn.Linear(5, 2))
    x = torch.randint(0, 10, (3, 2))
    buf = io.StringIO()
    tone = GradTone(model, to=buf, include=["*weight"], strict=True)
    out, _ = model[1](model[0](x))
    model[2](out).sum().backward()
    tone.step()
    tone.step()
    err = capsys.readouterr().err
    assert err.count("leaves out") == 1
    assert "1.weight_ih_l0" in err and "1.weight_hh_l0" in err and "*weight*" in err
    # Listed in exclude: left out on purpose, no warning.
    tone = GradTone(model, to=io.StringIO(), include=["*weight"], exclude=["1.*", "*.bias"], strict=True)
    tone.step()
    assert "leaves out" not in capsys.readouterr().err
    # Gradless parameters are not worth a warning; once they have a gradient they are.
    model.zero_grad(set_to_none=True)
    tone = GradTone(model, to=io.StringIO(), include=["*weight"], strict=True)
    tone.step()
    assert "leaves out" not in capsys.readouterr().err
    out, _ = model[1](model[0](x))
    model[2](out).sum().backward()
    tone.step()
    assert "1.weight_ih_l0" in capsys.readouterr().err


def test_clip_is_written_and_norms_are_pre_clip(torch):
    from gradtone_hook import GradTone

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    (model(torch.randn(5, 6)) * 100).sum().backward()
    want = {n: p.grad.norm().item() for n, p in model.named_parameters()}
    buf = io.StringIO()
    tone = GradTone(model, to=buf, group_by="tensor", clip=0.25, wall_time=False, strict=True)
    tone.step()  # the constructor's clip
    tone.step(clip=0.5)  # one step's own
    tone.step(clip=float("inf"))  # clip_grad_norm_(inf) only measures: no clip written
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
    a, b, c = (json.loads(x) for x in buf.getvalue().splitlines())
    assert a["clip"] == 0.25 and b["clip"] == 0.5 and "clip" not in c
    for n, v in want.items():
        assert a["values"][n] == pytest.approx(v, rel=1e-6)  # read before clipping
    assert list(a) == ["v", "step", "values", "params", "clip"]
    with pytest.raises(TypeError):
        GradTone(model, to=io.StringIO(), clip="big")


def test_encode_line_clip_field():
    from gradtone_hook import encode_line

    line = encode_line(3, {"fc": 2.0}, {"loss": 1.5}, rank=0, world=2, clip=0.25)
    assert line == '{"v":1,"step":3,"values":{"fc":2.0},"losses":{"loss":1.5},"clip":0.25,"rank":0,"world":2}\n'
    for nothing in (None, 0, -1.0, float("nan"), float("inf")):
        assert '"clip"' not in encode_line(3, {"fc": 2.0}, clip=nothing)


def test_docs_say_where_step_goes_with_clipping():
    for path in ("README.md", "python/README.md"):
        text = open(os.path.join(REPO, path), encoding="utf-8").read()
        # tone.step(...) appears in the example before clip_grad_norm_, with the threshold.
        i = text.find("tone.step(loss=loss, clip=")
        j = text.find("clip_grad_norm_(", i)
        assert i >= 0 and j > i, path


def test_one_wheel_packaging():
    """The root pyproject.toml makes the one wheel: maturin (pinned) packs the `gradtone` binary
    and the package gradtone_hook, with SPDX license metadata. The build itself, the installed
    wheel and a `gradtone run` from it are tested by python/tools/wheel_test.sh (CI)."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    meta = tomllib.load(open(os.path.join(REPO, "pyproject.toml"), "rb"))
    build = meta["build-system"]
    assert build["build-backend"] == "maturin"
    assert len(build["requires"]) == 1 and re.fullmatch(r"maturin==\d+\.\d+\.\d+", build["requires"][0])
    project = meta["project"]
    assert project["name"] == "gradtone"
    assert project["license"] == "MIT OR Apache-2.0"  # a string (PEP 639), not a table
    for f in project["license-files"] + [project["readme"]]:
        assert os.path.isfile(os.path.join(REPO, f)), f
    # The version is the CLI's (Cargo.toml), so `gradtone --version` and `pip show` agree.
    assert project["dynamic"] == ["version"] and "version" not in project
    assert project["dependencies"] == []  # never replace a user's torch build
    tool = meta["tool"]["maturin"]
    assert tool["bindings"] == "bin" and tool["strip"] is True
    assert tool["compatibility"] == "pypi" and tool["auditwheel"] == "check"
    cli = tomllib.load(open(os.path.join(REPO, tool["manifest-path"]), "rb"))
    assert [b["name"] for b in cli["bin"]] == ["gradtone"]
    package = os.path.join(REPO, tool["python-source"], *tool["module-name"].split("."))
    import gradtone_hook

    assert os.path.samefile(os.path.join(package, "__init__.py"), gradtone_hook.__file__)
    # One way to install: no second, hook-only distribution beside the wheel.
    assert not os.path.exists(os.path.join(REPO, "python", "pyproject.toml"))


def test_require_torch_turns_a_missing_torch_into_a_failure():
    """CI sets GRADTONE_REQUIRE_TORCH=1: a torch test must then fail, never skip."""
    code = (
        "import os, sys; sys.modules['torch'] = None\n"  # `import torch` raises ImportError
        "sys.path.insert(0, 'tests'); import conftest\n"
        "try:\n    conftest.need_torch()\nexcept BaseException as e:\n    print(type(e).__name__)\n"
    )
    here = os.path.join(REPO, "python")
    for env, want in (({"GRADTONE_REQUIRE_TORCH": "1"}, "Failed"), ({"GRADTONE_REQUIRE_TORCH": ""}, "Skipped")):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=here, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
        )
        assert out.stdout.strip() == want, out.stdout + out.stderr
