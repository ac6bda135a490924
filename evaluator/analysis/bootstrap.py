"""Bootstrap confidence intervals for every score of an evaluation folder (pure: tables in, numbers out).

Per-row metric values are computed once with the scoring functions of :mod:`evaluator.core.scoring`; a
resample is then a set of index arrays, one per stratum, and every score of every resample is computed
at once with numpy:

- generation rows are resampled with replacement within each (split, task, kind) stratum, i.e. within
  each split and task, keeping the number of sc and qa rows of the task fixed (so every resample has the
  official 12 terms);
- MIA documents are resampled within member and within nonmember;
- MMLU questions are resampled within each subject when the folder holds the per-question tables
  (``mmlu/<subject>.csv`` with a ``correct`` column); otherwise MMLU is held fixed at its reported value.

The task aggregate uses the official zero rule (0 when any term is 0), the AUC the Mann-Whitney U
statistic from ranks (ties counted half, as sklearn's trapezoidal ROC AUC), and intervals are the 2.5 and
97.5 percentiles. Seeded: the same folder, ``n`` and ``seed`` give the same intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from evaluator.core import scoring
from evaluator.core.data import SPLITS, row_kind
from evaluator.core.errors import InputError
from evaluator.core.mia_stats import auc_from_ranks

# Reading a folder (torch-free); the names stay importable from here.
from evaluator.core.tables import MIA_DIR, MIA_SETS, folder_mmlu_average, mmlu_question_table, read_folder, read_shards  # noqa: F401

KIND_METRIC = {"sc": scoring.REGURGITATION, "qa": scoring.KNOWLEDGE}
OVERALL = {"sc": "overall-regurgitation-score", "qa": "overall-knowledge-score"}
DEFAULT_RESAMPLES = 1000
LEVEL = 0.95


# ---------------------------------------------------------------------------------------------------
# Vectorised statistics


def harmonic_mean_rows(terms: np.ndarray) -> np.ndarray:
    """Row-wise harmonic mean of a (B, k) array with ``statistics.harmonic_mean``'s zero rule: exactly 0
    for a row holding a 0 (NaN stays NaN)."""
    terms = np.asarray(terms, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        hm = terms.shape[-1] / np.sum(1.0 / terms, axis=-1)
    return np.where((terms == 0).any(axis=-1), 0.0, hm)


def interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    samples = np.asarray(samples, dtype=float)
    if samples.size == 0 or np.isnan(samples).all():
        return (math.nan, math.nan)
    lo, hi = np.nanpercentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------------
# Per-row values of one evaluation folder


@dataclass
class RowValues:
    """Everything the bootstrap needs from one evaluation folder, as arrays.

    ``strata`` maps (split, task, kind) to (ids, values); ``mia`` maps 'member'/'nonmember' to
    (ids, scores) with score = -nll (higher = member); ``mia_extra`` maps an attack name to the same
    pair of dicts; ``mmlu`` maps subject to a 0/1 array.
    """

    strata: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]
    mia: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    mia_extra: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    mmlu: dict[str, np.ndarray] | None = None
    mmlu_average: float | None = None

    @property
    def tasks(self) -> list[str]:
        return sorted({task for _, task, _ in self.strata})

    @classmethod
    def from_tables(cls, generations: Mapping[str, pd.DataFrame], mia_nll: Mapping[str, pd.DataFrame] | None = None,
                    mmlu_correct: Mapping[str, Sequence[bool]] | None = None, mmlu_average: float | None = None,
                    mia_extra: pd.DataFrame | None = None) -> "RowValues":
        """``generations``: split -> official generations table; ``mia_nll``: member/nonmember -> table
        with id and nll; ``mia_extra``: the ``extra.csv`` table (id, set, one column per attack)."""
        strata = {}
        for split in SPLITS:
            scored = scoring.score_rows(generations[split])
            kinds = np.array([row_kind(i) for i in scored["id"]])
            for task in sorted(scored["task"].unique()):
                for kind, metric in KIND_METRIC.items():
                    mask = (scored["task"].to_numpy() == task) & (kinds == kind)
                    if mask.any():
                        strata[(split, task, kind)] = (scored["id"].to_numpy()[mask].astype(str),
                                                       scored[metric].to_numpy(dtype=float)[mask])
        mia = None
        if mia_nll is not None:
            mia = {name: (mia_nll[name]["id"].to_numpy().astype(str), -mia_nll[name]["nll"].to_numpy(dtype=float))
                   for name in MIA_SETS}
        extra = {}
        if mia_extra is not None:
            for column in mia_extra.columns:
                if column in ("id", "set", "nll"):
                    continue
                extra[column] = {name: (mia_extra.loc[mia_extra["set"] == name, "id"].to_numpy().astype(str),
                                        mia_extra.loc[mia_extra["set"] == name, column].to_numpy(dtype=float))
                                 for name in MIA_SETS}
        mmlu = ({s: np.asarray(v, dtype=float) for s, v in mmlu_correct.items()} if mmlu_correct else None)
        return cls(strata, mia, extra, mmlu, mmlu_average)

    @classmethod
    def from_directory(cls, folder: str | Path, mmlu_average: float | None = None) -> "RowValues":
        """Read an evaluation folder (ours or the official ``--keep_files`` one). MMLU: per-question tables
        under ``mmlu/`` if present, else ``mmlu_average`` (default: the results file's, then
        ``mmlu/metrics.json``'s)."""
        tables = read_folder(folder)
        if mmlu_average is None:
            mmlu_average = folder_mmlu_average(tables.folder)
        return cls.from_tables(tables.generations, tables.mia, mmlu_question_table(tables.folder), mmlu_average,
                               tables.extra)


# ---------------------------------------------------------------------------------------------------
# Resampling


Indices = dict[tuple, np.ndarray]


def stratum_sizes(values: RowValues) -> dict[tuple, int]:
    sizes = {("gen",) + key: len(v) for key, (_, v) in values.strata.items()}
    if values.mia is not None:
        sizes.update({("mia", name): len(values.mia[name][1]) for name in MIA_SETS})
    if values.mmlu:
        sizes.update({("mmlu", s): len(v) for s, v in values.mmlu.items()})
    return sizes


def draw_indices(sizes: Mapping[tuple, int], n: int, rng: np.random.Generator) -> Indices:
    """(n, size) index arrays, one per stratum, drawn in sorted stratum order (so two folders with the
    same strata get the same draws from the same seed)."""
    return {key: rng.integers(0, size, size=(n, size)) for key, size in sorted(sizes.items())}


def identity_indices(sizes: Mapping[tuple, int]) -> Indices:
    """The point estimate as a 'resample' of one: every row once."""
    return {key: np.arange(size)[None, :] for key, size in sizes.items()}


def statistics(values: RowValues, indices: Indices) -> dict[str, np.ndarray]:
    """Every score for every resample in ``indices`` (arrays of length B). Keys:
    ``<split>/<task>/<metric>``, ``<split>/<overall metric>``, ``term/<i>`` (1..12), ``task_aggregate``,
    ``mia_auc``, ``mia_score``, ``mmlu_average``, ``final``, ``mia_extra/<attack>``."""
    out: dict[str, np.ndarray] = {}
    b = next(iter(indices.values())).shape[0]
    terms = []
    for split in SPLITS:
        sums = {kind: 0.0 for kind in KIND_METRIC}
        counts = {kind: 0 for kind in KIND_METRIC}
        for task in sorted({t for s, t, _ in values.strata if s == split}):
            for kind, metric in KIND_METRIC.items():
                key = (split, task, kind)
                if key not in values.strata:
                    mean = np.full(b, np.nan)
                else:
                    sample = values.strata[key][1][indices[("gen",) + key]]
                    mean = sample.mean(axis=1)
                    sums[kind] = sums[kind] + sample.sum(axis=1)
                    counts[kind] += sample.shape[1]
                out[f"{split}/{task}/{metric}"] = mean
                terms.append(1 - mean if split == "forget" else mean)
        for kind, name in OVERALL.items():
            out[f"{split}/{name}"] = sums[kind] / counts[kind] if counts[kind] else np.full(b, np.nan)
    terms_array = np.stack(terms, axis=1)
    for i in range(terms_array.shape[1]):
        out[f"term/{i + 1}"] = terms_array[:, i]
    out["task_aggregate"] = harmonic_mean_rows(terms_array)
    if values.mia is not None:
        member = values.mia["member"][1][indices[("mia", "member")]]
        nonmember = values.mia["nonmember"][1][indices[("mia", "nonmember")]]
        out["mia_auc"] = auc_from_ranks(member, nonmember)
        out["mia_score"] = 1 - np.abs(out["mia_auc"] - 0.5) * 2
        for attack, sets in values.mia_extra.items():
            ok = all(len(sets[name][1]) == len(values.mia[name][1]) for name in MIA_SETS)
            if ok:  # same documents: the same resampled documents as the loss attack
                aligned = {name: _align(values.mia[name][0], *sets[name]) for name in MIA_SETS}
                ok = all(a is not None for a in aligned.values())
            if ok:
                out[f"mia_extra/{attack}"] = auc_from_ranks(aligned["member"][indices[("mia", "member")]],
                                                            aligned["nonmember"][indices[("mia", "nonmember")]])
    if values.mmlu:
        correct = sum(v[indices[("mmlu", s)]].sum(axis=1) for s, v in values.mmlu.items())
        out["mmlu_average"] = correct / sum(len(v) for v in values.mmlu.values())
    elif values.mmlu_average is not None:
        out["mmlu_average"] = np.full(b, float(values.mmlu_average))
    if "mia_score" in out and "mmlu_average" in out:
        out["final"] = (out["task_aggregate"] + out["mmlu_average"] + out["mia_score"]) / 3
    return out


def _align(reference_ids: np.ndarray, ids: np.ndarray, scores: np.ndarray) -> np.ndarray | None:
    """``scores`` reordered to ``reference_ids`` (None when the ids do not match one to one)."""
    if len(set(ids)) != len(ids) or set(ids) != set(reference_ids):
        return None
    position = {i: k for k, i in enumerate(ids)}
    return scores[[position[i] for i in reference_ids]]


# ---------------------------------------------------------------------------------------------------
# Intervals


@dataclass
class BootstrapResult:
    point: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    samples: dict[str, np.ndarray]
    n: int
    seed: int
    mmlu_resampled: bool

    def ci(self, name: str) -> tuple[float, float]:
        return self.low.get(name, math.nan), self.high.get(name, math.nan)

    def to_dict(self) -> dict:
        return {"resamples": self.n, "seed": self.seed, "level": LEVEL, "mmlu_resampled": self.mmlu_resampled,
                "scores": {k: {"point": self.point[k], "low": self.low[k], "high": self.high[k]} for k in self.point}}


def point_estimates(values: RowValues) -> dict[str, float]:
    stats = statistics(values, identity_indices(stratum_sizes(values)))
    point = {k: float(v[0]) for k, v in stats.items()}
    if values.mia is not None:  # the rank AUC is the official (sklearn) AUC
        official = scoring.mia_auc(-values.mia["member"][1], -values.mia["nonmember"][1])
        assert abs(point["mia_auc"] - official) < 1e-9, (point["mia_auc"], official)
    return point


def bootstrap(values: RowValues, n: int = DEFAULT_RESAMPLES, seed: int = 0,
              indices: Indices | None = None) -> BootstrapResult:
    """Point estimates and 95% percentile intervals of every score (``indices`` to reuse draws)."""
    if n < 1:
        raise InputError("--bootstrap must be at least 1")
    point = point_estimates(values)
    if indices is None:
        indices = draw_indices(stratum_sizes(values), n, np.random.default_rng(seed))
    samples = statistics(values, indices)
    low, high = {}, {}
    for name, sample in samples.items():
        low[name], high[name] = interval(sample)
    return BootstrapResult(point, low, high, samples, n, seed, bool(values.mmlu))


def bootstrap_directory(folder: str | Path, n: int = DEFAULT_RESAMPLES, seed: int = 0) -> BootstrapResult:
    return bootstrap(RowValues.from_directory(folder), n, seed)
