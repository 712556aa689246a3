"""Import an optional framework, or skip loudly; fail instead under its GRADTONE_REQUIRE_* variable.

CI installs JAX/Flax/optax, Keras and Jupyter (python/tools/install_framework_deps.sh) and sets
GRADTONE_REQUIRE_JAX=1, GRADTONE_REQUIRE_KERAS=1, GRADTONE_REQUIRE_JUPYTER=1, so a test that
cannot run there fails, as GRADTONE_REQUIRE_TORCH does for the torch tests (conftest.py).
"""

import importlib
import importlib.util
import os
import shutil
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INSTALL = "bash python/tools/install_framework_deps.sh"


def skip_or_fail(msg, env):
    if os.environ.get(env) == "1":
        pytest.fail(msg.replace("SKIPPED", f"FAILED ({env}=1)"))
    sys.stderr.write(msg + "\n")
    pytest.skip(msg)


def need(module, env):
    """Import ``module`` or skip (fail under ``env``=1) naming the install script."""
    try:
        return importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - ImportError, or a broken wheel raising anything
        skip_or_fail(f"*** SKIPPED: {module} is not importable ({type(e).__name__}: {e}); run {INSTALL} ***", env)


def gradtone_bin(env):
    """The gradtone binary: $GRADTONE_BIN, else the workspace's target/release/gradtone (CI runs
    `cargo test --release` first), else `gradtone` on PATH; skip (fail under ``env``=1) without."""
    for cand in (os.environ.get("GRADTONE_BIN"), os.path.join(REPO, "target", "release", "gradtone")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    found = shutil.which("gradtone")
    if found:
        return found
    skip_or_fail("*** SKIPPED: no gradtone binary (set GRADTONE_BIN, or cargo build --release -p gradtone) ***", env)


def need_installed(module, env):
    """Like :func:`need` without importing (keras imports its backend at import time)."""
    if importlib.util.find_spec(module) is None:
        skip_or_fail(f"*** SKIPPED: {module} is not installed; run {INSTALL} ***", env)
