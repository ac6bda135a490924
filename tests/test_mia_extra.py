"""Extra MIA attacks (evaluator/model/mia_extra.py): statistics by hand, the batched pass on a fake model, the
golden model's losses."""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from evaluator.core.mia_stats import TokenStats, document_statistics, extra_aucs, statistics_table
from evaluator.model.mia_extra import token_statistics

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"

# Three documents, two members and one nonmember, with hand-given token arrays.
DOCS = ["aaaa aaaa aaaa", "the quick brown fox", "zq xv"]
SETS = ["member", "member", "nonmember"]
STATS = [
    TokenStats(np.array([-1.0, -2.0, -3.0, -4.0]), np.array([-1.0, -1.0, -2.0, -2.0]), np.array([1.0, 2.0, 1.0, 2.0])),
    TokenStats(np.array([-0.5, -1.5]), np.array([-1.0, -1.0]), np.array([0.5, 0.5])),
    TokenStats(np.array([-2.0, -2.5, -1.0]), np.array([-2.0, -1.0, -1.0]), np.array([1.0, 0.5, 1.0])),
]


def test_statistics_by_hand_k50():
    got = [document_statistics(s, d, k=0.5) for s, d in zip(STATS, DOCS)]
    # nll = mean negative log-prob
    assert [g["nll"] for g in got] == pytest.approx([2.5, 1.0, 5.5 / 3])
    # zlib ratio = -nll / compressed length
    assert got[0]["zlib_ratio"] == pytest.approx(-2.5 / len(zlib.compress(DOCS[0].encode())))
    assert got[2]["zlib_ratio"] == pytest.approx(-(5.5 / 3) / len(zlib.compress(DOCS[2].encode())))
    # Min-K% with k = 50%: mean of the int(n/2) (at least 1) lowest log-probs
    assert got[0]["min_k_50"] == pytest.approx((-4 - 3) / 2)      # 2 of 4
    assert got[1]["min_k_50"] == pytest.approx(-1.5)               # 1 of 2
    assert got[2]["min_k_50"] == pytest.approx(-2.5)               # 1 of 3
    # Min-K%++: (logp - mu) / sigma = doc1 [0, -0.5, -1, -1]; doc2 [1, -1]; doc3 [0, -3, 0]
    assert got[0]["min_k_pp_50"] == pytest.approx(-1.0)
    assert got[1]["min_k_pp_50"] == pytest.approx(-1.0)
    assert got[2]["min_k_pp_50"] == pytest.approx(-3.0)


def test_aucs_by_hand():
    table = statistics_table(["d1", "d2", "d3"], SETS, DOCS, STATS, k=0.5)
    aucs = extra_aucs(table)
    # AUC = share of (member, nonmember) pairs where the member scores higher (ties count half).
    # Min-K%: members -3.5, -1.5 vs nonmember -2.5 -> 1 of 2 pairs -> 0.5
    assert aucs["min_k_50"] == pytest.approx(0.5)
    # Min-K%++: members -1, -1 vs nonmember -3 -> 2 of 2 -> 1.0
    assert aucs["min_k_pp_50"] == pytest.approx(1.0)
    # zlib: compute the ratios by hand and count pairs
    z = [-nll / len(zlib.compress(d.encode())) for nll, d in zip([2.5, 1.0, 5.5 / 3], DOCS)]
    pairs = [(1.0 if m > z[2] else 0.5 if m == z[2] else 0.0) for m in z[:2]]
    assert aucs["zlib_ratio"] == pytest.approx(sum(pairs) / 2)
    assert list(table.columns) == ["id", "set", "nll", "zlib_ratio", "min_k_50", "min_k_pp_50"]


class FakeTokenizer:
    """Characters a..e are token ids 1..5; a document gets a BOS id 0 first."""

    pad_token_id = 7
    eos_token_id = 7

    def __call__(self, text):
        return SimpleNamespace(input_ids=[0] + [ord(c) - ord("a") + 1 for c in text])


class FakeModel:
    """A bigram 'model': the logits at a position depend on that position's token only, so padding after a
    document changes nothing before its end."""

    def __init__(self, table):
        import torch

        self.table = torch.nn.Parameter(torch.as_tensor(table, dtype=torch.float32))

    def parameters(self):
        return iter([self.table])

    def __call__(self, input_ids, attention_mask):
        assert attention_mask.shape == input_ids.shape
        return SimpleNamespace(logits=self.table[input_ids])


def test_token_statistics_on_a_fake_model_batched_and_padded():
    rng = np.random.default_rng(0)
    table = rng.normal(0, 2, (8, 8))
    lm = SimpleNamespace(tokenizer=FakeTokenizer(), model=FakeModel(table))
    docs = ["abcde", "ba", "eeec"]
    one_by_one = [token_statistics(lm, [d], batch_size=1)[0] for d in docs]
    batched = token_statistics(lm, docs, batch_size=3)
    for doc, single, batch in zip(docs, one_by_one, batched):
        ids = FakeTokenizer()(doc).input_ids
        logp = table - np.log(np.exp(table).sum(axis=1, keepdims=True))
        expected = [logp[a, b] for a, b in zip(ids[:-1], ids[1:])]
        mu = [(np.exp(logp[a]) * logp[a]).sum() for a in ids[:-1]]
        sigma = [math.sqrt((np.exp(logp[a]) * logp[a] ** 2).sum() - m * m) for a, m in zip(ids[:-1], mu)]
        for got in (single, batch):
            assert got.logprobs == pytest.approx(expected, abs=1e-5)
            assert got.mu == pytest.approx(mu, abs=1e-5)
            assert got.sigma == pytest.approx(sigma, abs=1e-4)


def test_golden_losses_match_the_official_mia_losses():
    if not GOLDEN.is_dir():
        pytest.skip(f"needs the golden files at {GOLDEN} (../shared beside the project); absent here")
    from evaluator.core.data import load_mia
    from evaluator.model.engine import load_model
    from evaluator.model.mia_extra import mia_extra_table

    documents = load_mia(GOLDEN / "mia")
    documents = {name: table.head(4) for name, table in documents.items()}
    lm = load_model(GOLDEN / "unlearned", "bfloat16")
    table = mia_extra_table(lm, documents, batch_size=4)
    official = pd.concat([pd.read_csv(GOLDEN / "official" / "unlearned" / "mia_results" / f"{n}_0.csv").head(4)
                          for n in ("member", "nonmember")], ignore_index=True)
    assert table["id"].tolist() == official["id"].astype(str).tolist()
    assert table["nll"].to_numpy() == pytest.approx(official["nll"].to_numpy(), abs=2e-3)
    assert set(extra_aucs(table)) == {"zlib_ratio", "min_k_20", "min_k_pp_20"}
