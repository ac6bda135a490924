"""Compare two evaluation folders: per-metric differences B - A with bootstrap intervals and a verdict.

Where both folders scored the same rows (same ids in a split/task/kind stratum, the same MIA documents,
the same MMLU subjects), the bootstrap is paired: one resample draws the same rows for A and B, so the
noise the two runs share cancels. Elsewhere the strata are resampled independently (unpaired). B is
called better than A on a metric when the 95% interval of the difference lies wholly on the better side
of 0. Pure: reads the folders' CSVs, no model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluator.analysis.bootstrap import (
    DEFAULT_RESAMPLES,
    RowValues,
    draw_indices,
    interval,
    point_estimates,
    statistics,
    stratum_sizes,
)
from evaluator.core.errors import InputError

HEADLINE = ("final", "task_aggregate")


def direction(name: str) -> int:
    """+1 when higher is better, -1 when lower is better, 0 when neither (the raw AUC: 0.5 is best)."""
    if name == "mia_auc" or name.startswith("mia_extra/"):
        return 0
    if name.startswith("forget/"):
        return -1
    return 1


@dataclass
class MetricComparison:
    name: str
    a: float
    b: float
    diff: float
    low: float
    high: float
    pairing: str  # paired, unpaired, mixed, or fixed (MMLU without per-question tables)
    verdict: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Comparison:
    metrics: list[MetricComparison]
    n: int
    seed: int
    paired_strata: int
    unpaired_strata: int

    @property
    def headline(self) -> MetricComparison | None:
        by_name = {m.name: m for m in self.metrics}
        return next((by_name[n] for n in HEADLINE if n in by_name and not math.isnan(by_name[n].b)), None)

    @property
    def verdict(self) -> str:
        head = self.headline
        if head is None:
            return "no common headline score to compare"
        if head.verdict == "B better":
            return f"B is better than A beyond noise on the {head.name.replace('_', ' ')} ({_ci_text(head)})"
        if head.verdict == "A better":
            return f"B is worse than A beyond noise on the {head.name.replace('_', ' ')} ({_ci_text(head)})"
        return f"no difference beyond noise on the {head.name.replace('_', ' ')} ({_ci_text(head)})"

    def to_dict(self) -> dict:
        return {"resamples": self.n, "seed": self.seed, "paired_strata": self.paired_strata,
                "unpaired_strata": self.unpaired_strata, "verdict": self.verdict,
                "metrics": [m.to_dict() for m in self.metrics]}


def _ci_text(m: MetricComparison) -> str:
    return f"B - A = {m.diff:+.4f}, 95% CI [{m.low:+.4f}, {m.high:+.4f}]"


def _pairing(a: RowValues, b: RowValues) -> tuple[RowValues, dict[tuple, bool]]:
    """B's rows reordered to A's where the two hold the same rows, and which strata are paired."""
    paired: dict[tuple, bool] = {}
    strata = dict(b.strata)
    for key, (ids_b, vals_b) in b.strata.items():
        ids_a = a.strata.get(key, (None, None))[0]
        order = _order(ids_a, ids_b)
        paired[("gen",) + key] = order is not None
        if order is not None:
            strata[key] = (ids_b[order], vals_b[order])
    mia = b.mia
    if a.mia is not None and b.mia is not None:
        mia = dict(b.mia)
        for name, (ids_b, vals_b) in b.mia.items():
            order = _order(a.mia[name][0], ids_b)
            paired[("mia", name)] = order is not None
            if order is not None:
                mia[name] = (ids_b[order], vals_b[order])
    if b.mmlu:
        for subject, values in b.mmlu.items():
            paired[("mmlu", subject)] = bool(a.mmlu) and len(a.mmlu.get(subject, ())) == len(values)
    # the extra attacks are matched by id to B's (possibly reordered) MIA documents inside statistics()
    return RowValues(strata, mia, dict(b.mia_extra), b.mmlu, b.mmlu_average), paired


def _order(ids_a, ids_b) -> np.ndarray | None:
    if ids_a is None or len(ids_a) != len(ids_b) or len(set(ids_a)) != len(ids_a) or set(ids_a) != set(ids_b):
        return None
    position = {i: k for k, i in enumerate(ids_b)}
    return np.array([position[i] for i in ids_a])


def compare_values(a: RowValues, b: RowValues, n: int = DEFAULT_RESAMPLES, seed: int = 0) -> Comparison:
    if n < 1:
        raise InputError("--bootstrap must be at least 1")
    b_aligned, paired = _pairing(a, b)
    rng = np.random.default_rng(seed)
    indices_a = draw_indices(stratum_sizes(a), n, rng)
    fresh = draw_indices(stratum_sizes(b_aligned), n, rng)
    indices_b = {key: indices_a[key] if paired.get(key) and key in indices_a else fresh[key] for key in fresh}
    samples_a, samples_b = statistics(a, indices_a), statistics(b_aligned, indices_b)
    point_a, point_b = point_estimates(a), point_estimates(b_aligned)
    metrics = []
    for name in point_a:
        if name not in point_b or name not in samples_b:
            continue
        diff = samples_b[name] - samples_a[name]
        low, high = interval(diff)
        point = point_b[name] - point_a[name]
        sign = direction(name)
        if np.all(diff == 0) and point == 0:
            verdict = "same"
        elif sign == 0 or math.isnan(low):
            verdict = "-"
        elif sign * low > 0 or sign * high < 0:
            verdict = "B better" if (sign > 0) == (low > 0) else "A better"
        else:
            verdict = "within noise"
        stratum_paired = _metric_paired(name, paired)
        metrics.append(MetricComparison(name, point_a[name], point_b[name], point, low, high, stratum_paired, verdict))
    return Comparison(metrics, n, seed, sum(paired.values()), sum(not p for p in paired.values()))


def _metric_paired(name: str, paired: dict[tuple, bool]) -> str:
    parts = name.split("/")
    if parts[0] in ("forget", "retain") and len(parts) == 3:
        keys = [k for k in paired if k[0] == "gen" and k[1] == parts[0] and k[2] == parts[1]]
    elif parts[0] in ("forget", "retain"):
        keys = [k for k in paired if k[0] == "gen" and k[1] == parts[0]]
    elif parts[0] in ("task_aggregate", "term"):
        keys = [k for k in paired if k[0] == "gen"]
    elif parts[0].startswith("mia"):
        keys = [k for k in paired if k[0] == "mia"]
    elif parts[0] == "mmlu_average":
        keys = [k for k in paired if k[0] == "mmlu"]
    else:
        keys = list(paired)
    if not keys:
        return "fixed"
    flags = {paired[k] for k in keys}
    return "mixed" if len(flags) > 1 else ("paired" if flags == {True} else "unpaired")


def compare_directories(a_dir: str | Path, b_dir: str | Path, n: int = DEFAULT_RESAMPLES, seed: int = 0) -> Comparison:
    return compare_values(RowValues.from_directory(a_dir), RowValues.from_directory(b_dir), n, seed)


def format_comparison(comparison: Comparison, show_all: bool = False) -> str:
    names = [m for m in comparison.metrics
             if show_all or not (m.name.startswith("term/") or m.name.count("/") == 2)]
    lines = [f"{'metric':42} {'A':>8} {'B':>8} {'B - A':>9} {'95% CI of B - A':>21} {'pairing':>8}  verdict"]
    for m in names:
        ci = f"[{m.low:+.4f}, {m.high:+.4f}]"
        lines.append(f"{m.name:42} {m.a:8.4f} {m.b:8.4f} {m.diff:+9.4f} {ci:>21} "
                     f"{m.pairing:>8}  {m.verdict}")
    lines.append(f"{comparison.n} bootstrap resamples, seed {comparison.seed}; "
                 f"{comparison.paired_strata} strata paired, "
                 f"{comparison.unpaired_strata} unpaired. Forget metrics: lower is better; MIA AUC: no direction "
                 "(see the MIA score).")
    lines.append(f"verdict: {comparison.verdict}")
    return "\n".join(lines)
