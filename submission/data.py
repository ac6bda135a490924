"""The forget and retain sets: reading, checking, splitting off the selection slice, and tokenizing.

Self-contained on purpose (no ``evaluator`` import): the organizers took a single .py file.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

ROW_COLUMNS = ("id", "input", "output", "task")
IGNORE_INDEX = -100


class SubmissionInputError(Exception):
    """A problem with what the caller handed us; the message names the file and the problem."""


@dataclass(frozen=True)
class Row:
    id: str
    input: str
    output: str
    task: str

    @property
    def kind(self) -> str:
        """'sc' (sentence completion) or 'qa' (question answer), read from the id as the official script does."""
        stem = self.id[:-1]
        if stem.endswith("qa"):
            return "qa"
        return "sc"  # ids of neither kind are treated as plain text to continue


def locate_set_file(path: str | Path, name: str) -> Path:
    """``path`` is a folder holding ``<name>.parquet`` or ``<name>.jsonl``, or one such file."""
    path = Path(path)
    if not path.exists():
        raise SubmissionInputError(f"{path}: {name} set not found (no such file or directory)")
    if path.is_file():
        return path
    for suffix in (".parquet", ".jsonl"):
        candidate = path / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    raise SubmissionInputError(f"{path}: no {name}.parquet or {name}.jsonl in this folder")


def _read_table(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise SubmissionInputError(f"{path}: cannot read parquet ({type(exc).__name__})") from None
    if path.suffix in (".jsonl", ".json"):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SubmissionInputError(f"{path}: not UTF-8 text") from None
        return pd.DataFrame.from_records(parse_jsonl(str(path), text))
    raise SubmissionInputError(f"{path}: unknown file type (expected .parquet or .jsonl)")


def parse_jsonl(name: str, text: str) -> list[dict]:
    """The JSON objects of a JSON-lines text (blank lines skipped); ``name`` is only for the error line."""
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SubmissionInputError(f"{name}: line {lineno}: malformed JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise SubmissionInputError(f"{name}: line {lineno}: expected a JSON object")
        records.append(record)
    return records


def load_rows(path: str | Path, name: str) -> list[Row]:
    """The rows of the ``name`` ('forget' or 'retain') set, checked. A ``split`` column, as in the public
    parquet files, selects the rows of that split when present."""
    file = locate_set_file(path, name)
    table = _read_table(file)
    if "split" in table.columns and (table["split"] == name).any():
        table = table[table["split"] == name]
    if table.empty:
        raise SubmissionInputError(f"{file}: the {name} set has no rows")
    missing = [c for c in ROW_COLUMNS if c not in table.columns]
    if missing:
        raise SubmissionInputError(f"{file}: missing column(s) {', '.join(missing)} "
                                   f"(a row needs {', '.join(ROW_COLUMNS)})")
    rows = []
    for position, record in enumerate(table.loc[:, list(ROW_COLUMNS)].itertuples(index=False), start=1):
        values = dict(zip(ROW_COLUMNS, record))
        for column in ("input", "output"):
            if not isinstance(values[column], str):
                raise SubmissionInputError(f"{file}: row {position}: column '{column}' is "
                                           f"{values[column]!r}, not a string")
        rows.append(Row(id=str(values["id"]), input=values["input"], output=values["output"],
                        task=str(values["task"])))
    return rows


def split_selection_rows(rows: list[Row], fraction: float, seed: int,
                         rows_per_group: int = 8) -> tuple[list[Row], list[Row]]:
    """(training rows, selection rows).

    ``fraction`` of every (task, kind) group is held out of training (the organizers score unseen rows);
    the selection slice holds those rows and is topped up with training rows of the group to
    ``rows_per_group``: a term measured on one or two held-out rows would be too noisy to choose by, and
    the rows trained on must be forgotten (or kept) too.
    """
    rng = random.Random(seed)
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.task, row.kind), []).append(row)
    held_out: set[int] = set()
    selection: list[Row] = []
    for key in sorted(groups):
        members = groups[key][:]
        rng.shuffle(members)
        n_out = int(len(members) * fraction)
        if n_out >= len(members):
            n_out = 0
        held_out.update(id(r) for r in members[:n_out])
        selection.extend(members[:max(n_out, rows_per_group)])
    training = [r for r in rows if id(r) not in held_out]
    return training, selection


# ---------------------------------------------------------------------------------------------------
# Tokenizing


@dataclass
class EncodedRow:
    input_ids: list[int]
    labels: list[int]


def encode_row(tokenizer, row: Row, max_length: int, sc_loss_on_prompt: bool) -> EncodedRow | None:
    """Token ids of ``input + output`` with labels on the answer: the first ``len(tokenizer(input))``
    positions are masked, as the official loss masks them (whatever the boundary tokenization).
    Sentence-completion rows may carry the loss on the whole text (``sc_loss_on_prompt``): the passage is
    what is to be forgotten, and the MIA attack scores whole documents.
    Returns None when truncation leaves no answer token."""
    prompt_length = len(tokenizer(row.input).input_ids)
    full = tokenizer(row.input + row.output).input_ids[:max_length]
    labels = list(full)
    if row.kind == "qa" or not sc_loss_on_prompt:
        labels[:prompt_length] = [IGNORE_INDEX] * min(prompt_length, len(labels))
    if all(label == IGNORE_INDEX for label in labels[1:]):  # position 0 never carries a loss (shift)
        return None
    return EncodedRow(input_ids=list(full), labels=labels)


def collate(rows: list[EncodedRow], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; padding is masked out of attention and labels."""
    width = max(len(r.input_ids) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        input_ids[i, :n] = torch.tensor(r.input_ids)
        labels[i, :n] = torch.tensor(r.labels)
        attention[i, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
