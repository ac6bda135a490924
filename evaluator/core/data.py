"""Loading and checking the forget/retain sets and the MIA documents (SPEC section 1).

Accepted layouts for a forget/retain set:
- a directory holding ``forget.jsonl`` / ``forget.parquet`` (``retain.*``), what a submission is handed;
- the Hugging Face layout of the public release, ``[data/]forget_<split>-00000-of-00001.parquet``;
- a single ``.jsonl`` or ``.parquet`` file; when it has a ``split`` column (as the public parquet files
  do) the rows of that split are taken, otherwise the whole file is the set.

Every problem is raised as :class:`InputError` naming the file, the row and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evaluator.core.errors import InputError

SPLITS = ("forget", "retain")
TASKS = ("Task1", "Task2", "Task3")
ROW_COLUMNS = ("id", "input", "output", "task")
MIA_COLUMNS = ("id", "document")
HF_NAME = "{name}_{split}-00000-of-00001.parquet"


def row_kind(row_id: str) -> str | None:
    """'sc' (sentence completion), 'qa' (question answer) or None, read from the id as SPEC section 1 says."""
    stem = str(row_id)[:-1]
    if stem.endswith("sc"):
        return "sc"
    if stem.endswith("qa"):
        return "qa"
    return None


def read_jsonl(path: Path) -> pd.DataFrame:
    records = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {lineno}: malformed JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}: line {lineno}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    # dtype=object keeps every value as written: no numeric inference on answers such as "1947".
    return pd.DataFrame.from_records(records).astype(object) if records else pd.DataFrame()


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: cannot read parquet ({type(exc).__name__}: {exc})") from None


def read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.suffix == ".jsonl" or path.suffix == ".json":
        return read_jsonl(path)
    if path.suffix == ".parquet":
        return _read_parquet(path)
    raise InputError(f"{path}: unknown file type (expected .jsonl or .parquet)")


def _row_label(path: Path, index: int) -> str:
    # jsonl rows are named by line number (blank lines aside), parquet rows by 1-based position.
    return f"{path}: row {index + 1}"


def check_rows(df: pd.DataFrame, path: Path, name: str) -> pd.DataFrame:
    """Check the SPEC section 1 schema; return the four columns, as str, in file order."""
    if df.empty:
        raise InputError(f"{path}: the {name} set is empty")
    missing = [c for c in ROW_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} "
                         f"(a row needs {', '.join(ROW_COLUMNS)})")
    df = df.loc[:, list(ROW_COLUMNS)].reset_index(drop=True)
    for column in ROW_COLUMNS:
        bad = [i for i, v in enumerate(df[column]) if not isinstance(v, str)]
        if bad:
            value = df[column][bad[0]]
            raise InputError(f"{_row_label(path, bad[0])}: column '{column}' is {value!r}, not a string")
    for i, row_id in enumerate(df["id"]):
        if row_kind(row_id) is None:
            raise InputError(f"{_row_label(path, i)}: id {row_id!r} is neither a sentence-completion (…sc<N>) "
                             f"nor a question-answer (…qa<N>) id")
    for i, task in enumerate(df["task"]):
        if task not in TASKS:
            raise InputError(f"{_row_label(path, i)}: unknown task {task!r} (expected one of {', '.join(TASKS)})")
    return df.astype({c: object for c in ROW_COLUMNS})


@dataclass(frozen=True)
class SplitSource:
    """Where a split's rows come from: the file, and the value of its ``split`` column to keep, if any."""

    path: Path
    split_filter: str | None = None


def locate_split(path: str | Path, name: str, hf_split: str | None = None) -> SplitSource:
    """Find the file holding split ``name`` ('forget' or 'retain') under ``path``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        return SplitSource(path, split_filter=name)
    for suffix in (".jsonl", ".parquet"):  # jsonl first: the official script reads the jsonl
        candidate = path / f"{name}{suffix}"
        if candidate.is_file():
            return SplitSource(candidate)
    for folder in (path / "data", path):
        hf_files = sorted(folder.glob(HF_NAME.format(name=name, split="*")))
        if hf_files:
            available = sorted(f.name[len(name) + 1:].split("-")[0] for f in hf_files)
            if hf_split is None:
                raise InputError(f"{folder}: Hugging Face layout, choose a split with --split "
                                 f"({' or '.join(available)})")
            candidate = folder / HF_NAME.format(name=name, split=hf_split)
            if not candidate.is_file():
                raise InputError(f"{candidate}: file not found (splits here: {', '.join(available)})")
            return SplitSource(candidate)
    raise InputError(f"{path}: no {name}.jsonl, {name}.parquet or data/{HF_NAME.format(name=name, split='<split>')}")


def load_split(path: str | Path, name: str, hf_split: str | None = None) -> pd.DataFrame:
    """Load and check one of the two sets; columns id, input, output, task."""
    source = locate_split(path, name, hf_split)
    df = read_table(source.path)
    if source.split_filter is not None and "split" in df.columns:
        df = df[df["split"] == source.split_filter]
    return check_rows(df, source.path, name)


def load_sets(path: str | Path, hf_split: str | None = None) -> dict[str, pd.DataFrame]:
    """Both sets, forget first (the official order of the results)."""
    return {name: load_split(path, name, hf_split) for name in SPLITS}


def mia_files(path: str | Path) -> list[Path]:
    """The ``member.jsonl`` and ``nonmember.jsonl`` that ``load_mia`` reads (directly under ``path``, or under
    ``path/mia_data``, the public release's layout)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a directory (expected one holding member.jsonl and nonmember.jsonl)")
    if not (path / "member.jsonl").exists() and (path / "mia_data" / "member.jsonl").exists():
        path = path / "mia_data"  # the public release's layout
    return [path / "member.jsonl", path / "nonmember.jsonl"]


def load_mia(path: str | Path) -> dict[str, pd.DataFrame]:
    """``member`` and ``nonmember`` documents (columns id, document) from a folder holding both jsonl files."""
    out = {}
    for name, file in zip(("member", "nonmember"), mia_files(path)):
        df = read_table(file)
        if df.empty:
            raise InputError(f"{file}: no documents")
        missing = [c for c in MIA_COLUMNS if c not in df.columns]
        if missing:
            raise InputError(f"{file}: missing column(s) {', '.join(repr(c) for c in missing)}")
        df = df.loc[:, list(MIA_COLUMNS)].reset_index(drop=True)
        bad = [i for i, v in enumerate(df["document"]) if not isinstance(v, str)]
        if bad:
            raise InputError(f"{_row_label(file, bad[0])}: document is {df['document'][bad[0]]!r}, not a string")
        # ids are only labels; the public files mix numeric-looking and quoted ids, keep them as text.
        df["id"] = df["id"].map(str)
        out[name] = df
    return out
