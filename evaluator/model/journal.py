"""The resume journal of an evaluation run: finished rows, appended as they finish, so that a run that was
killed continues where it stopped when it is started again with the same checkpoint, data and settings.

Layout: ``<out>/.partial/<key>/`` holds ``run.json`` (what the key was computed from, for a human) and one
append-only ``<stream>.jsonl`` per split or MIA set (``forget``, ``retain``, ``mia_member``,
``mia_nonmember``), one line per finished row: ``{"i": <row index>, ...values}``. Each line is flushed as
it is written (a killed process loses at most the row it was computing; ``fsync`` is not called, so a power
cut may lose more, never corrupt what is kept). When read back, the first line that is not a complete,
well-formed record (a torn last line) and everything after it is dropped and cut off the file.

The key (16 hex digits of a SHA-256) covers:

- the checkpoint: every file under its folder by relative path and size, plus the SHA-256 of its content
  for files up to 64 MiB (config, tokenizer, a small model) and the modification time in nanoseconds for
  larger ones (hashing gigabytes of weights would cost minutes; a rewritten weight file changes its mtime);
- the rows: ids, inputs, outputs and tasks of both sets, and the MIA documents, as loaded (so the same rows
  from jsonl or parquet share a key);
- the settings that change a result: mode, dtype, max_new_tokens, trust_remote_code, and in fast mode the
  batch size and recheck margin; the torch and transformers versions; the hardware
  (``evaluator.core.machine.hardware_key``: the CPU kernel path, vendor, family, model and bfloat16 flags, and the
  GPU model): bfloat16 rounds differently on another CPU even under the same kernel-path label (SPEC 6), so a
  journal moved to another machine kind is not reused.

What holds: in official mode rows are computed one at a time and independently, so a resumed run gives
byte-identical files to an uninterrupted one. In fast mode a row's result depends on its batch, so the
journal keeps whole streams only (a split or MIA set is journaled once all its batches are done, and
recomputed from scratch otherwise, with the batches of an uninterrupted run): resumed == uninterrupted
there too, at a coarser grain.

Several processes (``accelerate launch``): in official mode every process appends the rows it finishes to
a file of its own (``<stream>.jsonl`` for the main process, ``<stream>.rank<k>.jsonl`` for process k), and a
restarted run reads every process's file, so it may resume with another number of processes: rows are
independent, whoever computed them. A process cuts a torn tail off its own files only; the others' are read
up to their first bad line, which is where their owner cuts them. In fast mode the main process journals
whole streams, and the number of processes is part of the key (it changes the batches).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Iterable

import torch
import transformers

from evaluator.core.machine import hardware_key
from evaluator.core.results import JOURNAL_DIR

FORMAT = 1
HASHED_FILE_LIMIT = 64 * 2**20


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_fingerprint(folder: str | Path) -> list[list]:
    """[relative path, size, "sha256:<hex>" or "mtime_ns:<int>"] for every file under ``folder``, sorted."""
    folder = Path(folder)
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        mark = (f"sha256:{_sha256_file(path)}" if stat.st_size <= HASHED_FILE_LIMIT
                else f"mtime_ns:{stat.st_mtime_ns}")
        entries.append([path.relative_to(folder).as_posix(), stat.st_size, mark])
    return entries


def sha256_json(value) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def run_description(checkpoint, sets: dict, documents: dict | None, settings: dict) -> dict:
    """What the key is computed from (``sets``/``documents``: the loaded tables; ``settings``: the ones that
    change a result)."""
    rows = {name: {c: [str(v) for v in table[c]] for c in ("id", "input", "output", "task")}
            for name, table in sets.items()}
    mia = (None if documents is None else
           sha256_json({name: [str(d) for d in table["document"]] for name, table in documents.items()}))
    return {"format": FORMAT, "checkpoint": str(checkpoint), "checkpoint_files": checkpoint_fingerprint(checkpoint),
            "rows_sha256": sha256_json(rows), "mia_sha256": mia, "settings": settings,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
            # bfloat16 rounds by CPU and device, not by kernel path alone (SPEC 6): rows from another machine
            # kind are not reused
            "hardware": hardware_key()}


def run_key(description: dict) -> str:
    keyed = {k: v for k, v in description.items() if k != "checkpoint"}  # the folder's content, not its name
    return sha256_json(keyed)[:16]


class Journal:
    """Finished rows of one run (one key) under ``<out>/.partial/<key>/``."""

    def __init__(self, out: str | Path, description: dict, rank: int = 0):
        self.root = Path(out) / JOURNAL_DIR
        self.key = run_key(description)
        self.folder = self.root / self.key
        self.description = description
        self.rank = rank  # the process writing through this object (accelerate's process index)
        self._handles: dict[str, object] = {}

    def open(self) -> "Journal":
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "run.json"
        if not meta.exists():
            meta.write_text(json.dumps(self.description, indent=1) + "\n", encoding="utf-8")
        return self

    def _path(self, stream: str, rank: int | None = None) -> Path:
        rank = self.rank if rank is None else rank
        return self.folder / (f"{stream}.jsonl" if rank == 0 else f"{stream}.rank{rank}.jsonl")

    def _stream_files(self, stream: str) -> list[Path]:
        """Every process's file of ``stream``, from this run or an earlier one with more processes."""
        files = [self._path(stream, 0)] + sorted(self.folder.glob(f"{stream}.rank*.jsonl"))
        return [path for path in files if path.exists()]

    def done(self, stream: str, count: int, fields: tuple[str, ...]) -> dict[int, tuple]:
        """Rows already finished (by any process): index -> tuple of ``fields``. Cuts a torn or malformed
        tail off this process's own file; another's is read up to its first bad line."""
        own = self._path(stream)
        found: dict[int, tuple] = {}
        for path in self._stream_files(stream):
            data = path.read_bytes()
            good = 0
            for line in data.splitlines(keepends=True):
                record = _parse(line, count, fields)
                if record is None:
                    break
                found[record[0]] = record[1]
                good += len(line)
            if good < len(data) and path == own:
                with open(path, "r+b") as fh:
                    fh.truncate(good)
        return found

    def append(self, stream: str, index: int, values: Iterable, fields: tuple[str, ...]) -> None:
        handle = self._handles.get(stream)
        if handle is None:
            handle = self._handles[stream] = open(self._path(stream), "a", encoding="utf-8")
        record = {"i": index, **dict(zip(fields, values))}
        try:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
        except OSError as exc:  # a full disk: name the journal (a torn line is dropped when read back)
            raise OSError(exc.errno, exc.strerror or str(exc), str(self._path(stream))) from exc

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def remove(self) -> None:
        """Delete this run's journal (and ``.partial`` when nothing else is left in it)."""
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.root.rmdir()
        except OSError:
            pass


def _parse(line: bytes, count: int, fields: tuple[str, ...]):
    if not line.endswith(b"\n"):
        return None  # torn: the process died while writing it
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or set(record) != {"i", *fields}:
        return None
    index = record["i"]
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        return None
    values = []
    for field in fields:
        value = record[field]
        if field == "text" and not isinstance(value, str):
            return None
        if field == "nll" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            return None
        values.append(float(value) if field == "nll" else value)
    return index, tuple(values)
