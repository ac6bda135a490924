"""Shared fixtures. Tests that need ../shared skip, saying so, where it is absent (a user's fresh clone)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROJECT = Path(__file__).resolve().parents[1]
SHARED = PROJECT.parent / "shared"
GOLDEN = SHARED / "golden"


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

