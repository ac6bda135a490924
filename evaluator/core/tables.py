"""An evaluation folder's tables, read and scored without the model code (no torch import).

What ``evaluate`` writes -- or the official script's ``--keep_files`` folder -- read back the official way:
``forget_*.csv`` and ``retain_*.csv`` (generations), ``mia_results/{member,nonmember}_*.csv`` (MIA losses),
and the optional diagnostics beside them (``mia_results/extra.csv``, ``mmlu/``). ``score_generations`` is
SPEC 3 from those tables. :mod:`evaluator.model.evaluate` (which loads torch) re-exports ``score_generations`` and
``score_directory``; :mod:`evaluator.analysis.bootstrap` and :mod:`evaluator.analysis.report` read folders through here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from evaluator.core import scoring
from evaluator.core.data import SPLITS
from evaluator.core.errors import InputError
from evaluator.core.mia_stats import EXTRA_FILE as MIA_EXTRA_FILE  # noqa: F401 (MIA_SETS re-read here)
from evaluator.core.mia_stats import MIA_SETS
from evaluator.core.results import RESULTS_FILE, EvaluationResult

MIA_DIR = "mia_results"
GENERATION_REQUIRED = ("id", "task", "expected_output", "model_output")


def read_shards(folder: str | Path, stem: str) -> pd.DataFrame | None:
    """``<stem>_*.csv`` of ``folder`` concatenated in name order, or None when there is none. Read with the
    pandas defaults on purpose: the official script reads its CSVs this way (SPEC 2, last line)."""
    folder = Path(folder)
    files = sorted(folder.glob(f"{stem}_*.csv"))
    if not files:
        return None
    try:
        return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        message = f"{folder}/{stem}_*.csv: cannot read CSV ({type(exc).__name__}: {exc})".splitlines()[0]
        raise InputError(message) from None


def score_generations(generations: Mapping[str, pd.DataFrame], mia_nll: Mapping[str, Sequence[float]] | None = None,
                      mmlu_average: float | None = None) -> EvaluationResult:
    """SPEC 3 from tables: ``generations`` maps 'forget'/'retain' to the CSV tables; ``mia_nll`` maps
    'member'/'nonmember' to losses."""
    summaries = {split: scoring.split_summary(scoring.score_rows(generations[split])) for split in SPLITS}
    terms = scoring.task_terms(summaries)
    aggregate = scoring.task_aggregate(terms)
    result = EvaluationResult(forget=summaries["forget"], retain=summaries["retain"], aggregated_terms=terms,
                              harmonic_mean_task_aggregate=aggregate, mmlu_average=mmlu_average)
    if mia_nll is not None:
        result.mia_loss_acc = scoring.mia_auc(mia_nll["member"], mia_nll["nonmember"])
    if result.mia_loss_acc is not None and mmlu_average is not None:
        result.mia_final_score = scoring.mia_score(result.mia_loss_acc)
        result.aggregate_score = scoring.final_score(aggregate, mmlu_average, result.mia_final_score)
    return result


@dataclass
class FolderTables:
    """The tables of one evaluation folder: ``generations`` (split -> table), ``mia`` (member/nonmember ->
    table with id and nll, or None when the folder has no complete pair) and ``extra`` (``extra.csv``)."""

    folder: Path
    generations: dict[str, pd.DataFrame]
    mia: dict[str, pd.DataFrame] | None
    extra: pd.DataFrame | None

    @property
    def mia_nll(self) -> dict[str, list[float]] | None:
        return {name: table["nll"].tolist() for name, table in self.mia.items()} if self.mia is not None else None


def read_folder(folder: str | Path, use_mia: bool = True) -> FolderTables:
    """Read an evaluation folder (ours or the official ``--keep_files`` one); InputError naming what is
    missing or unreadable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory (an evaluation folder as `evaluate` writes it)")
    generations = {}
    for split in SPLITS:
        table = read_shards(folder, split)
        if table is None:
            raise InputError(f"{folder}: no {split}_*.csv (generations of the {split} set)")
        missing = [c for c in GENERATION_REQUIRED if c not in table.columns]
        if missing:
            raise InputError(f"{folder}/{split}_*.csv: missing column(s) {', '.join(missing)}")
        generations[split] = table
    mia = None
    if use_mia and (folder / MIA_DIR).is_dir():
        tables = {name: read_shards(folder / MIA_DIR, name) for name in MIA_SETS}
        if all(t is not None for t in tables.values()):
            mia = tables
    extra = None
    if use_mia and (folder / MIA_DIR / MIA_EXTRA_FILE).is_file():
        extra = pd.read_csv(folder / MIA_DIR / MIA_EXTRA_FILE, dtype={"id": str})
    return FolderTables(folder, generations, mia, extra)


def score_directory(folder: str | Path, mmlu_average: float | None = None,
                    use_mia: bool = True) -> EvaluationResult:
    """Recompute every metric from ``forget_*.csv``, ``retain_*.csv`` and ``mia_results/*_*.csv``."""
    tables = read_folder(folder, use_mia)
    return score_generations(tables.generations, tables.mia_nll, mmlu_average)


def folder_mmlu_average(folder: str | Path) -> float | None:
    """The MMLU average an evaluation folder reports: its results file's, else ``mmlu/metrics.json``'s."""
    folder = Path(folder)
    if (folder / RESULTS_FILE).is_file():
        try:
            value = EvaluationResult.read(folder / RESULTS_FILE).mmlu_average
        except InputError:
            value = None
        if value is not None:
            return value
    metrics = folder / "mmlu" / "metrics.json"
    if metrics.is_file():
        try:
            return json.loads(metrics.read_text(encoding="utf-8")).get("average_acc")
        except (json.JSONDecodeError, AttributeError):
            return None
    return None


def mmlu_question_table(folder: str | Path) -> dict[str, np.ndarray] | None:
    """Per-subject correctness from ``mmlu/<subject>.csv`` (as ``evaluator.model.mmlu`` writes them), or None."""
    mmlu_dir = Path(folder) / "mmlu"
    out = {}
    for path in sorted(mmlu_dir.glob("*.csv")) if mmlu_dir.is_dir() else []:
        try:
            table = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            continue
        if "correct" in table.columns:
            out[path.stem] = table["correct"].astype(str).str.lower().eq("true").to_numpy(dtype=float)
    return out or None
