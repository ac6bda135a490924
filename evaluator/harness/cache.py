"""The harness's cache (``$LUME_HARNESS_CACHE``, else ``~/.cache/lume-harness``) and the hashes its keys are
made of: the stub target (``target-<hash>``) and the dry-run's before scores (``dry-run-before-<key>``).

An entry is copied in under a temporary name and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def default_cache_dir() -> Path:
    return Path(os.environ.get("LUME_HARNESS_CACHE") or Path.home() / ".cache" / "lume-harness")


def data_files(data: Path) -> list[Path]:
    """Every file under ``data`` that a key covers (hidden files and folders left out), sorted; ``data``
    itself when it is a file (a data set given as one .jsonl or .parquet file)."""
    if data.is_file():
        return [data]
    return sorted(p for p in data.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                         p.relative_to(data).parts))


def hash_data_files(digest, data: Path) -> None:
    """Feed ``digest`` every data file's relative path and the sha256 of its bytes."""
    for path in data_files(data):
        digest.update(path.relative_to(data).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (symlinks by their target text)."""
    hashes = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink():
            hashes[relative] = "symlink:" + os.readlink(path)
        elif path.is_file():
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            hashes[relative] = digest.hexdigest()
    return hashes


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(f"{'changed' if name in after else 'removed'}: {name}" for name in before
                  if after.get(name) != before[name]) + sorted(f"added: {name}" for name in after if name not in before)


def store(source: Path, entry: Path) -> bool:
    """Copy ``source`` into the cache as ``entry``, under a temporary name renamed into place: never half an
    entry. False (and nothing left behind) when another run cached it first or there is no space: the cache is
    only a shortcut."""
    staging = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.partial-", dir=entry.parent))
        shutil.copytree(source, staging, dirs_exist_ok=True)
        staging.chmod(0o755)
        os.rename(staging, entry)
        return True
    except OSError:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        return False
