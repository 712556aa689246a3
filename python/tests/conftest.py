"""Test setup: test the source tree (not an installed copy), and skip torch tests loudly.

Set GRADTONE_REQUIRE_TORCH=1 (CI with torch) to turn those skips into failures.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def skip_or_fail(msg):
    """Skip loudly, or fail under GRADTONE_REQUIRE_TORCH=1 (CI, where everything must run)."""
    if os.environ.get("GRADTONE_REQUIRE_TORCH") == "1":
        pytest.fail(msg.replace("SKIPPED", "FAILED (GRADTONE_REQUIRE_TORCH=1)"))
    sys.stderr.write(msg + "\n")
    pytest.skip(msg)


def need_torch():
    """Import torch or skip (fail under GRADTONE_REQUIRE_TORCH=1) with a clear reason."""
    try:
        import torch  # noqa: F401
    except Exception as e:  # ImportError, or a broken CUDA wheel raising OSError
        msg = (
            f"*** SKIPPED: torch is not importable ({type(e).__name__}: {e}); install it "
            "(bash /work/shared/reference/pytorch/install_torch.sh) and run with "
            "~/.cache/torch-ref/venv/bin/python -m pytest python/tests ***"
        )
        skip_or_fail(msg)
    return torch


@pytest.fixture
def torch():
    return need_torch()
