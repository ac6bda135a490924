"""Bootstrap intervals (evaluator/analysis/bootstrap.py) and the comparison of two folders
(evaluator/analysis/compare.py)."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from evaluator.analysis.bootstrap import RowValues, bootstrap, harmonic_mean_rows, point_estimates
from evaluator.analysis.compare import compare_values, format_comparison
from evaluator.core import scoring
from evaluator.core.mia_stats import auc_from_ranks
from evaluator.core.results import EvaluationResult

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"
TASKS = ("Task1", "Task2", "Task3")


def golden_dir() -> Path:
    if not GOLDEN.is_dir():
        pytest.skip(f"needs the golden files at {GOLDEN} (../shared beside the project); absent here")
    return GOLDEN


def synthetic_values(rows: int, docs: int, seed: int = 0, shift: float = 0.0) -> RowValues:
    """Per-row values drawn at random: ``rows`` rows per (split, task, kind), ``docs`` MIA documents per side."""
    rng = np.random.default_rng(seed)
    strata = {}
    for split in ("forget", "retain"):
        for t, task in enumerate(TASKS):
            base = (0.3 if split == "forget" else 0.7) + 0.05 * t
            ids = np.array([f"{split}{task}{i}sc1" for i in range(rows)])
            strata[(split, task, "sc")] = (ids, np.clip(rng.normal(base + shift, 0.2, rows), 0, 1))
            ids = np.array([f"{split}{task}{i}qa0" for i in range(rows)])
            strata[(split, task, "qa")] = (ids, (rng.random(rows) < base + shift).astype(float))
    mia = {"member": (np.array([f"m{i}" for i in range(docs)]), -rng.normal(2.0, 0.5, docs)),
           "nonmember": (np.array([f"n{i}" for i in range(docs)]), -rng.normal(2.3, 0.5, docs))}
    return RowValues(strata, mia, {}, None, 0.45)


def test_harmonic_mean_rows_matches_statistics_with_zero_rule():
    rng = np.random.default_rng(1)
    terms = rng.random((50, 12))
    terms[3, 5] = 0.0
    terms[7, :] = 1.0
    got = harmonic_mean_rows(terms)
    for row, value in zip(terms, got):
        assert value == pytest.approx(statistics.harmonic_mean(row.tolist()), abs=1e-12)
    assert got[3] == 0.0


def test_rank_auc_matches_sklearn_with_ties_and_batched():
    rng = np.random.default_rng(2)
    members = rng.integers(0, 6, 40).astype(float)  # many ties
    nonmembers = rng.integers(0, 6, 31).astype(float)
    expected = roc_auc_score([1] * 40 + [0] * 31, np.concatenate([members, nonmembers]))
    assert auc_from_ranks(members, nonmembers) == pytest.approx(expected, abs=1e-12)
    batch = auc_from_ranks(np.stack([members, members[::-1]]), np.stack([nonmembers, nonmembers]))
    assert batch.shape == (2,) and batch[0] == pytest.approx(expected) and batch[1] == pytest.approx(expected)
    assert scoring.mia_auc(-members, -nonmembers) == pytest.approx(expected, abs=1e-12)


def test_intervals_contain_point_and_shrink_as_rows_grow():
    widths = {}
    for rows, docs in ((20, 20), (320, 320)):
        result = bootstrap(synthetic_values(rows, docs), n=400, seed=3)
        for name, point in result.point.items():
            lo, hi = result.ci(name)
            assert lo <= point + 1e-12 and point - 1e-12 <= hi, (rows, name, lo, point, hi)
        widths[rows] = {name: hi - lo for name, (lo, hi) in ((n, result.ci(n)) for n in result.point)}
    for name in ("task_aggregate", "final", "mia_auc", "forget/Task1/regurgitation-score",
                 "retain/overall-knowledge-score", "term/7"):
        assert widths[320][name] < 0.5 * widths[20][name], (name, widths[20][name], widths[320][name])
    assert widths[320]["mmlu_average"] == 0.0  # held fixed without per-question tables


def test_seeded_and_vectorised_shapes():
    values = synthetic_values(30, 25)
    a, b = bootstrap(values, n=50, seed=7), bootstrap(values, n=50, seed=7)
    assert a.low == b.low and a.high == b.high
    assert all(s.shape == (50,) for s in a.samples.values())
    assert bootstrap(values, n=50, seed=8).low != a.low


def test_mmlu_questions_resampled_when_present():
    values = synthetic_values(30, 25)
    values.mmlu = {"anatomy": np.array([1, 0, 1, 1] * 10, dtype=float), "virology": np.array([0, 1] * 15, dtype=float)}
    result = bootstrap(values, n=200, seed=0)
    assert result.mmlu_resampled
    assert result.point["mmlu_average"] == pytest.approx(45 / 70)
    lo, hi = result.ci("mmlu_average")
    assert lo < result.point["mmlu_average"] < hi


def test_from_tables_point_estimates_equal_official_scoring():
    rows = []
    for task in TASKS:
        for i in range(4):
            rows.append({"id": f"{task}{i}sc1", "task": task, "input": "x", "expected_output": "the cat sat on the mat",
                         "model_output": ["the cat", "a dog sat on a mat", "", "the cat sat on the mat"][i]})
            rows.append({"id": f"{task}{i}qa0", "task": task, "input": "q", "expected_output": "Paris",
                         "model_output": ["paris ", "London", "Paris", "nan"][i]})
    table = pd.DataFrame(rows)
    generations = {"forget": table, "retain": table.iloc[::-1].reset_index(drop=True)}
    mia = {"member": pd.DataFrame({"id": ["a", "b", "c"], "nll": [1.0, 2.0, 3.0]}),
           "nonmember": pd.DataFrame({"id": ["d", "e"], "nll": [2.0, 4.0]})}
    values = RowValues.from_tables(generations, mia, None, 0.4)
    point = point_estimates(values)
    summaries = {s: scoring.split_summary(scoring.score_rows(generations[s])) for s in generations}
    terms = scoring.task_terms(summaries)
    assert [point[f"term/{i + 1}"] for i in range(12)] == pytest.approx(terms, abs=1e-12)
    assert point["task_aggregate"] == pytest.approx(scoring.task_aggregate(terms), abs=1e-12)
    auc = scoring.mia_auc(mia["member"]["nll"], mia["nonmember"]["nll"])
    assert point["mia_auc"] == pytest.approx(auc)
    assert point["final"] == pytest.approx(scoring.final_score(scoring.task_aggregate(terms), 0.4,
                                                               scoring.mia_score(auc)))


@pytest.mark.parametrize("model", ["target", "unlearned"])
def test_golden_point_estimates_and_intervals(model):
    folder = golden_dir() / "official" / model
    official = EvaluationResult.read(folder)
    result = bootstrap(RowValues.from_directory(folder), n=300, seed=0)
    assert [result.point[f"term/{i + 1}"] for i in range(12)] == pytest.approx(official.aggregated_terms, abs=1e-12)
    assert result.point["task_aggregate"] == pytest.approx(official.harmonic_mean_task_aggregate, abs=1e-12)
    assert result.point["mia_auc"] == pytest.approx(official.mia_loss_acc, abs=1e-12)
    assert result.point["final"] == pytest.approx(official.aggregate_score, abs=1e-12)
    for name, point in result.point.items():
        lo, hi = result.ci(name)
        assert lo <= point + 1e-12 <= hi + 2e-12, (name, lo, point, hi)


def test_compare_paired_verdicts():
    a = synthetic_values(200, 150, seed=5)
    same = compare_values(a, a, n=300, seed=0)
    assert all(m.verdict in ("same", "-") for m in same.metrics)
    assert "no difference" in same.verdict
    # B: every retain value up, every forget value down (same rows, so the bootstrap is paired)
    b = RowValues({k: (ids, np.clip(v + (0.15 if k[0] == "retain" else -0.15), 0, 1))
                   for k, (ids, v) in a.strata.items()},
                  a.mia, {}, None, 0.45)
    better = compare_values(a, b, n=300, seed=0)
    by_name = {m.name: m for m in better.metrics}
    assert by_name["task_aggregate"].verdict == "B better" and by_name["task_aggregate"].pairing == "paired"
    assert by_name["forget/overall-regurgitation-score"].verdict == "B better"
    assert by_name["mmlu_average"].pairing == "fixed"
    assert better.verdict.startswith("B is better")
    assert "verdict: B is better" in format_comparison(better)
    worse = compare_values(b, a, n=300, seed=0)
    assert worse.verdict.startswith("B is worse")


def test_compare_unpaired_when_rows_differ():
    a, b = synthetic_values(60, 40, seed=1), synthetic_values(60, 40, seed=2)
    b.strata = {k: (np.array([f"other{i}" for i in range(len(ids))]), v) for k, (ids, v) in b.strata.items()}
    result = compare_values(a, b, n=200, seed=0)
    by_name = {m.name: m for m in result.metrics}
    assert by_name["task_aggregate"].pairing == "unpaired"
    assert by_name["final"].pairing == "mixed"  # generation rows unpaired, MIA documents paired
    assert by_name["forget/overall-knowledge-score"].pairing == "unpaired"
    assert by_name["mia_auc"].pairing == "paired"
