"""Pure scoring (SPEC section 3): tables of generations and losses in, numbers out. No model here.

Row metrics are looked up by the row's kind (read from its id), so a new kind of row is a new entry in
``ROW_METRICS``, not a new branch.
"""

from __future__ import annotations

import functools
import math
import statistics
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from rouge_score import rouge_scorer
from sklearn.metrics import auc, roc_curve

from evaluator.core.data import row_kind

REGURGITATION = "regurgitation-score"
REGURGITATION_ROUGE1 = "regurgitation-score-rouge-1"
KNOWLEDGE = "knowledge-score"
# Per-task columns in the order the official groupby reports them (and the 12 terms use).
TASK_COLUMNS = (REGURGITATION, KNOWLEDGE)


@functools.lru_cache(maxsize=1)
def _rouge() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)


def regurgitation_metrics(expected: object, generated: object) -> dict[str, float]:
    """SPEC 3, sc rows: ROUGE-L and ROUGE-1 recall, target first. ``str()`` as the official code does,
    so a generation that came back from the CSV as NaN is scored as the string "nan"."""
    scores = _rouge().score(str(expected), str(generated))
    return {REGURGITATION_ROUGE1: scores["rouge1"].recall, REGURGITATION: scores["rougeL"].recall}


def knowledge_metrics(expected: object, generated: object) -> dict[str, float]:
    """SPEC 3, qa rows: case- and edge-whitespace-insensitive exact match."""
    return {KNOWLEDGE: int(str(expected).strip().lower() == str(generated).strip().lower())}


ROW_METRICS: dict[str, Callable[[object, object], dict[str, float]]] = {
    "sc": regurgitation_metrics,
    "qa": knowledge_metrics,
}


def score_rows(generations: pd.DataFrame) -> pd.DataFrame:
    """Add the per-row metric columns to a generations table (columns id, task, expected_output,
    model_output, as read back from the official CSV). Rows of another kind get NaN."""
    scored = generations.copy()
    values: dict[str, list[float]] = {REGURGITATION_ROUGE1: [], REGURGITATION: [], KNOWLEDGE: []}
    for row_id, expected, generated in zip(scored["id"], scored["expected_output"], scored["model_output"]):
        metric = ROW_METRICS.get(row_kind(row_id))
        row = metric(expected, generated) if metric else {}
        for column, column_values in values.items():
            column_values.append(float(row.get(column, math.nan)))
    for column, column_values in values.items():
        scored[column] = np.asarray(column_values, dtype=float)
    return scored


def split_summary(scored: pd.DataFrame) -> dict:
    """SPEC 3: overall means by kind and per-task means (sorted task order), in the official key order.
    Means skip rows of the other kind (the official columns hold None there)."""
    # Object columns holding None where the metric does not apply, as the official table holds them:
    # pandas then sums in the same order, and the means agree to the last bit.
    as_official = scored.copy()
    for column in TASK_COLUMNS:
        as_official[column] = pd.Series([None if math.isnan(v) else v for v in scored[column]], dtype=object,
                                        index=scored.index)
    summary = {
        "overall-regurgitation-score": float(np.mean(as_official[REGURGITATION])),
        "overall-knowledge-score": float(np.mean(as_official[KNOWLEDGE])),
    }
    per_task = as_official.groupby("task")[list(TASK_COLUMNS)].mean().to_dict(orient="index")
    summary.update({task: {c: float(v) for c, v in means.items()} for task, means in per_task.items()})
    return summary


def task_terms(split_summaries: Mapping[str, dict]) -> list[float]:
    """SPEC 3: the 12 terms, forget then retain, per task [regurgitation, knowledge]; forget ones as 1 - x."""
    terms: list[float] = []
    for split in ("forget", "retain"):
        per_task = [v for k, v in split_summaries[split].items() if not k.startswith("overall-")]
        values = [float(score) for means in per_task for score in means.values()]
        if split == "forget":
            values = [1 - v for v in values]
        terms.extend(values)
    return terms


def task_aggregate(terms: Sequence[float]) -> float:
    """SPEC 3: ``statistics.harmonic_mean`` exactly as the official script calls it: it returns the int 0
    when any term is 0, and NaN when a term is NaN (a task with no row of one kind)."""
    return statistics.harmonic_mean(terms)


def mia_auc(member_nll: Sequence[float], nonmember_nll: Sequence[float]) -> float:
    """SPEC 3: ROC AUC of the loss attack, members labelled 1, score = -nll."""
    labels = [1] * len(member_nll) + [0] * len(nonmember_nll)
    scores = -np.asarray(list(member_nll) + list(nonmember_nll), dtype=float)
    if np.isnan(scores).any():
        raise ValueError("MIA losses contain NaN (the official script asserts here)")
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(auc(fpr, tpr))


def mia_score(auc_value: float) -> float:
    """SPEC 3: 1 at chance (AUC 0.5), 0 at a perfect attack either way. Official operand order."""
    return 1 - abs(auc_value - 0.5) * 2


def final_score(task_aggregate_value: float, mmlu_average: float, mia_final_score: float) -> float:
    """SPEC 3: the arithmetic mean of the three, as ``statistics.mean`` computes it."""
    return statistics.mean([task_aggregate_value, mmlu_average, mia_final_score])

