"""The report's figures: matplotlib (Agg backend, imported on first use so that reading a folder stays
light), each a function of a read folder returning PNG bytes."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import roc_curve

from evaluator.analysis.bootstrap import KIND_METRIC
from evaluator.core import scoring
from evaluator.core.data import SPLITS
from evaluator.core.leaderboard import normalize
from evaluator.core.mia_stats import attack_label, auc_from_ranks
from evaluator.core.tables import MIA_SETS

if TYPE_CHECKING:
    from evaluator.analysis.report import FolderData

LEADERBOARD_BOARDS = {"7b": "7B (ranked, MMLU >= gate)", "1b": "1B"}  # placed on (evaluator.core.leaderboard names)
LEADERBOARD_PLOTTED = {**LEADERBOARD_BOARDS, "7b_below_gate": "7B below MMLU gate",
                       "7b_baselines": "7B organizer baselines"}
METRIC_LABEL = {scoring.REGURGITATION: "regurgitation", scoring.KNOWLEDGE: "knowledge"}
COLORS = {"forget": "#c0392b", "retain": "#2471a3", "member": "#c0392b", "nonmember": "#2471a3"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    _plt().close(fig)
    return buffer.getvalue()


def _err(data: FolderData, name: str) -> tuple[float, float]:
    value = data.value(name)
    if data.boot is None or value is None or name not in data.boot.low:
        return (0.0, 0.0)
    lo, hi = data.boot.ci(name)
    return (max(0.0, value - lo), max(0.0, hi - value))


def plot_tasks(data: FolderData, baseline: FolderData | None) -> bytes:
    plt = _plt()
    tasks = data.tasks
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), sharey=True, squeeze=False)
    groups = [(split, metric) for split in SPLITS for metric in KIND_METRIC.values()]
    for ax, task in zip(axes[0], tasks):
        x = np.arange(len(groups))
        series = [("after", data, 0.0)] if baseline is None else [("before", baseline, -0.2), ("after", data, 0.2)]
        width = 0.8 if baseline is None else 0.4
        for label, source, offset in series:
            names = [f"{split}/{task}/{metric}" for split, metric in groups]
            heights = [source.value(n) or 0.0 for n in names]
            errs = np.array([_err(source, n) for n in names]).T
            colors = [COLORS[split] for split, _ in groups]
            ax.bar(x + offset, heights, width, yerr=errs, capsize=3, color=colors,
                   alpha=0.35 if label == "before" else 0.9, hatch="//" if label == "before" else None,
                   edgecolor="black", linewidth=0.5, label=label)
        ax.set_xticks(x, [f"{split}\n{METRIC_LABEL[m]}" for split, m in groups], fontsize=8)
        ax.set_title(task)
        ax.set_ylim(0, 1.08)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("score (forget: lower is better)")
    if baseline is not None:
        axes[0][0].legend(fontsize=8, loc="upper right")
    fig.suptitle("Forget vs retain per task" + (" (hatched: before)" if baseline is not None else "")
                 + ("; bars: 95% bootstrap CI" if data.boot is not None else ""), fontsize=10)
    return _png(fig)


def plot_terms(data: FolderData, labels: list[str], drag_index: int | None) -> bytes:
    plt = _plt()
    terms = data.result.aggregated_terms
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    y = np.arange(len(terms))[::-1]
    errs = np.array([_err(data, f"term/{i + 1}") for i in range(len(terms))]).T
    colors = ["#7f8c8d"] * len(terms)
    for i, value in enumerate(terms):
        if value == 0:
            colors[i] = "#000000"
    if drag_index is not None:
        colors[drag_index] = "#e67e22"
    ax.barh(y, terms, xerr=errs, capsize=3, color=colors)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, 1.05)
    ax.axvline(float(data.result.harmonic_mean_task_aggregate), color="#2471a3", linestyle="--",
               label=f"harmonic mean {float(data.result.harmonic_mean_task_aggregate):.3f}")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("The 12 terms (orange: the one dragging the mean down; black: zero)", fontsize=10)
    return _png(fig)


def plot_mia(data: FolderData) -> bytes:
    """Member vs nonmember loss histograms (left) and the ROC curves (right: the official loss attack, and the
    extra attacks of ``extra.csv`` dotted)."""
    plt = _plt()
    fig, (hist, roc) = plt.subplots(1, 2, figsize=(9.5, 3.7), gridspec_kw={"width_ratios": [1.35, 1]})
    all_nll = np.concatenate([data.mia[name]["nll"].to_numpy(float) for name in MIA_SETS])
    bins = np.linspace(all_nll.min(), all_nll.max(), 21) if all_nll.max() > all_nll.min() else 10
    for name in MIA_SETS:
        hist.hist(data.mia[name]["nll"].to_numpy(float), bins=bins, alpha=0.55, color=COLORS[name],
                  label=f"{name} ({len(data.mia[name])})", edgecolor="black", linewidth=0.4)
    hist.set_xlabel("document loss (nll)")
    hist.set_ylabel("documents")
    hist.legend(fontsize=8)
    hist.set_title("member vs nonmember loss", fontsize=10)
    curves = [("loss (official)", {n: -data.mia[n]["nll"].to_numpy(float) for n in MIA_SETS}, "mia_auc", "-")]
    if data.extra is not None:
        for column in data.extra.columns:
            if column not in ("id", "set", "nll"):
                curves.append((attack_label(column),
                               {n: data.extra.loc[data.extra["set"] == n, column].to_numpy(float) for n in MIA_SETS},
                               f"mia_extra/{column}", ":"))
    for label, scores, key, style in curves:
        y = [1] * len(scores["member"]) + [0] * len(scores["nonmember"])
        fpr, tpr, _ = roc_curve(y, np.concatenate([scores["member"], scores["nonmember"]]))
        value = data.value(key)
        if value is None:
            value = float(auc_from_ranks(scores["member"], scores["nonmember"]))
        roc.plot(fpr, tpr, style, label=f"{label}: AUC {value:.3f}")
    roc.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle="--")
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate")
    roc.legend(fontsize=7, loc="lower right")
    roc.set_title("ROC (members = positives)", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def plot_mmlu(data: FolderData, baseline: FolderData | None) -> bytes:
    plt = _plt()
    cats = data.mmlu_metrics["cat_acc"]
    names = list(cats)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(names) + 2), 3.2))
    x = np.arange(len(names))
    base = (baseline.mmlu_metrics or {}).get("cat_acc") if baseline is not None else None
    if base:
        ax.bar(x - 0.2, [base.get(n, 0.0) for n in names], 0.4, color="#95a5a6", hatch="//", label="before")
        ax.bar(x + 0.2, [cats[n] for n in names], 0.4, color="#27ae60", label="after")
        ax.legend(fontsize=8)
    else:
        ax.bar(x, [cats[n] for n in names], 0.6, color="#27ae60")
    ax.axhline(0.25, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("MMLU per category (dotted: chance)", fontsize=10)
    return _png(fig)


def plot_leaderboard(board: dict, final: float, ci: tuple[float, float] | None) -> bytes:
    plt = _plt()
    boards = normalize(board)["boards"]
    keys = [k for k in LEADERBOARD_PLOTTED if (boards.get(k) or {}).get("rows")]
    fig, ax = plt.subplots(figsize=(7.0, 0.55 * len(keys) + 1.2))
    for row, key in enumerate(keys):
        finals = [e["final"] for e in boards[key]["rows"] if isinstance(e.get("final"), (int, float))]
        ax.scatter(finals, [row] * len(finals), s=18, color="#34495e", alpha=0.7)
    ax.set_yticks(range(len(keys)), [LEADERBOARD_PLOTTED[k] for k in keys], fontsize=8)
    if ci is not None and not any(math.isnan(v) for v in ci):
        ax.axvspan(ci[0], ci[1], color="#e67e22", alpha=0.25, label="95% CI")
    ax.axvline(final, color="#e67e22", linewidth=2, label=f"this run {final:.3f}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("final score")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Published leaderboards (points: teams)", fontsize=10)
    return _png(fig)
