"""Shared fixtures. Tests that need ../shared skip, saying so, where it is absent (a user's fresh clone)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
GOLDEN = SHARED / "golden"


# Where the session runs with flash attention off (below), tests that hold numbers to golden files made on real
# machines skip: math attention under a forced path is no real machine's kernels.
FLASH_OFF_SKIP = ("forced kernel path with flash attention off (conftest): torch's math attention is no real "
                  "machine's kernels, so golden numbers made on real machines do not bind it")


def skip_where_flash_off() -> None:
    if KERNEL_PATH_NOTE:
        pytest.skip(FLASH_OFF_SKIP)


def _forced_kernel_path() -> str:
    """Under ATEN_CPU_CAPABILITY (another CPU's kernel path, README "Another machine"): where this CPU's bfloat16
    flash attention fails on the forced path (a torch 2.13 bug on CPUs with AMX), flash attention off for the
    session, here and in every child process (machine.forced_path_environment). The note, or ""."""
    if not os.environ.get("ATEN_CPU_CAPABILITY"):
        return ""
    from evaluator.core.machine import forced_path_environment

    scratch = Path(tempfile.mkdtemp(prefix="lume-kernel-path-"))
    atexit.register(shutil.rmtree, scratch, True)
    env, note = forced_path_environment(dict(os.environ), scratch)
    if note:
        import torch

        os.environ["PYTHONPATH"] = env["PYTHONPATH"]
        torch.backends.cuda.enable_flash_sdp(False)  # also governs the CPU kernels
    return note


KERNEL_PATH_NOTE = _forced_kernel_path()


def pytest_report_header(config):
    if os.environ.get("ATEN_CPU_CAPABILITY"):
        return [f"forced kernel path ATEN_CPU_CAPABILITY={os.environ['ATEN_CPU_CAPABILITY']}"
                + (f": {KERNEL_PATH_NOTE}" if KERNEL_PATH_NOTE else "")]
    return []


@pytest.fixture(scope="session")
def golden() -> Path:
    if not GOLDEN.is_dir():
        pytest.skip(f"needs the golden files at {GOLDEN} (../shared beside the project); absent here")
    return GOLDEN


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"needs ../shared at {SHARED}; absent here")
    return SHARED

