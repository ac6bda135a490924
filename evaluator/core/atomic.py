"""Atomic file output: write to a temporary name in the same folder, then rename.

A reader (or a crash) sees either the old file, the new one, or nothing; never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from evaluator.core.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; a result file is as readable as any other
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_with_atomic(target: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Run ``writer(tmp_path)`` and move the result onto ``target``."""
    with atomic_path(target) as tmp:
        writer(tmp)


def write_json(path: str | Path, data: dict) -> None:
    """``data`` as indented JSON with a final newline, atomically (metrics.json, gate.json)."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def check_output_dir(path: str | Path) -> Path:
    """``--out``: a folder, or a path not there yet (created when the first file is written)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: --out exists and is not a directory")
    return path
