"""Membership-inference statistics, pure (no model): the AUC from ranks (the bootstrap's and the extra
attacks'), and the extra attacks' per-document statistics from token log-probabilities.

The extra attacks (diagnostics beside the official loss attack, which alone counts for the score), for
every document, from the arrays ``evaluator.model.mia_extra.token_statistics`` computes:

- ``zlib_ratio``: log-likelihood / zlib-compressed length in bytes (Carlini et al., 2021; as in the
  Min-K% code of Shi et al.): ``-nll / len(zlib.compress(document))``;
- ``min_k_<k>``: Min-K% Prob (Shi et al., 2024): the mean of the k% lowest token log-probabilities;
- ``min_k_pp_<k>``: Min-K%++ (Zhang et al., 2025): the same over ``(log p(x_t) - mu_t) / sigma_t``, with
  ``mu_t`` and ``sigma_t`` the mean and standard deviation of ``log p(.)`` under ``p(.)`` at position t.

Every statistic is oriented "higher = more likely a member", so its AUC (members labelled 1) reads like
the official one. ``extra.csv`` in ``mia_results/`` holds one row per document: ``id``, ``set``
(member/nonmember), ``nll`` and one column per statistic.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

MIA_SETS = ("member", "nonmember")
EXTRA_FILE = "extra.csv"  # in mia_results/, beside the MIA losses
DEFAULT_K = 0.2
ATTACK_LABELS = {"zlib_ratio": "zlib ratio", "min_k": "Min-K%", "min_k_pp": "Min-K%++"}


@dataclass
class TokenStats:
    """One document: log p(x_t) of each predicted token, and mu_t, sigma_t of log p(.) at that position."""

    logprobs: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray


def attack_columns(k: float = DEFAULT_K) -> list[str]:
    pct = int(round(k * 100))
    return ["zlib_ratio", f"min_k_{pct}", f"min_k_pp_{pct}"]


def attack_label(column: str) -> str:
    for prefix in ("min_k_pp_", "min_k_"):
        if column.startswith(prefix):
            return f"{ATTACK_LABELS[prefix[:-1]]} (k={column[len(prefix):]}%)"
    return ATTACK_LABELS.get(column, column)


def _lowest_mean(values: np.ndarray, k: float) -> float:
    if len(values) == 0:
        return math.nan
    count = max(1, int(len(values) * k))
    return float(np.mean(np.sort(values)[:count]))


def document_statistics(stats: TokenStats, document: str, k: float = DEFAULT_K) -> dict[str, float]:
    """The statistics of one document from its token arrays (pure)."""
    logprobs = np.asarray(stats.logprobs, dtype=np.float64)
    nll = float(-logprobs.mean()) if len(logprobs) else math.nan
    zlib_bytes = len(zlib.compress(document.encode("utf-8")))
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = (logprobs - np.asarray(stats.mu, dtype=np.float64)) / np.asarray(stats.sigma, dtype=np.float64)
    normalised = np.where(np.isfinite(normalised), normalised, 0.0)  # sigma 0: a one-hot distribution
    zlib_col, min_k_col, min_k_pp_col = attack_columns(k)
    return {"nll": nll, zlib_col: -nll / zlib_bytes, min_k_col: _lowest_mean(logprobs, k),
            min_k_pp_col: _lowest_mean(normalised, k)}


def statistics_table(ids: Sequence[str], sets: Sequence[str], documents: Sequence[str],
                     token_stats: Sequence[TokenStats], k: float = DEFAULT_K) -> pd.DataFrame:
    rows = [{"id": i, "set": s, **document_statistics(t, d, k)}
            for i, s, d, t in zip(ids, sets, documents, token_stats)]
    return pd.DataFrame(rows, columns=["id", "set", "nll", *attack_columns(k)])


def extra_aucs(table: pd.DataFrame) -> dict[str, float]:
    """AUC of each statistic column of an ``extra.csv`` table (members labelled 1, higher = member)."""
    out = {}
    members, nonmembers = table[table["set"] == "member"], table[table["set"] == "nonmember"]
    for column in table.columns:
        if column in ("id", "set", "nll") or members.empty or nonmembers.empty:
            continue
        out[column] = float(auc_from_ranks(members[column].to_numpy(float), nonmembers[column].to_numpy(float)))
    return out



def auc_from_ranks(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> np.ndarray:
    """ROC AUC of members (label 1) against nonmembers, higher score = member, as Mann-Whitney U / (m n).
    Works on 1-D arrays (one AUC) or (B, m) and (B, n) arrays (B AUCs at once)."""
    member_scores = np.asarray(member_scores, dtype=float)
    nonmember_scores = np.asarray(nonmember_scores, dtype=float)
    m, n = member_scores.shape[-1], nonmember_scores.shape[-1]
    ranks = rankdata(np.concatenate([member_scores, nonmember_scores], axis=-1), method="average", axis=-1)
    u = ranks[..., :m].sum(axis=-1) - m * (m + 1) / 2
    return u / (m * n)
