"""Extra membership-inference diagnostics beside the official loss attack (which alone counts for the score):
the model pass.

One loss pass per document keeps the per-token log-probabilities and the mean and spread of the
log-probability under the model's own next-token distribution; the attacks' statistics (zlib ratio, Min-K%,
Min-K%++) are pure functions of those arrays, in ``evaluator.core.mia_stats`` (which says what each is), so
they are tested without a model. ``extra.csv`` in ``mia_results/`` holds one row per document.

The pass mirrors SPEC 2's MIA loss (``tokenizer(document).input_ids``, the whole document) but is batched
and right-padded with an attention mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from evaluator.core.atomic import write_with_atomic
from evaluator.core.data import load_mia
from evaluator.core.mia_stats import DEFAULT_K, EXTRA_FILE, MIA_SETS, TokenStats, statistics_table
from evaluator.model.engine import load_model

# ---------------------------------------------------------------------------------------------------
# The model pass


def token_statistics(lm, documents: Sequence[str], batch_size: int = 4) -> list[TokenStats]:
    """Per-document token log-probs, mu and sigma from a loaded model (``evaluator.model.engine.load_model``).

    ``tokenizer(document).input_ids`` as the official MIA loss, batched longest-first, right-padded with an
    attention mask (so positions before each document's end see exactly its own tokens)."""
    tokenizer, model = lm.tokenizer, lm.model
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    encoded = [tokenizer(document).input_ids for document in documents]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    results: list[TokenStats | None] = [None] * len(encoded)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                ids[row, :len(encoded[i])] = torch.tensor(encoded[i], dtype=torch.long)
                mask[row, :len(encoded[i])] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            for row, i in enumerate(chunk):
                length = len(encoded[i])
                logp = torch.log_softmax(logits[row, :length - 1].float(), dim=-1)
                targets = ids[row, 1:length].to(device)
                token_lp = logp.gather(-1, targets[:, None])[:, 0]
                p = logp.exp()
                mu = (p * logp).sum(-1)
                var = ((p * logp * logp).sum(-1) - mu * mu).clamp_min(0)
                results[i] = TokenStats(token_lp.cpu().numpy().astype(np.float64), mu.cpu().numpy().astype(np.float64),
                                        var.sqrt().cpu().numpy().astype(np.float64))
    return results  # type: ignore[return-value]


def mia_extra_table(lm, mia_documents: dict[str, pd.DataFrame], k: float = DEFAULT_K,
                    batch_size: int = 4) -> pd.DataFrame:
    """``extra.csv`` for the member/nonmember documents (``evaluator.core.data.load_mia``'s tables)."""
    ids, sets, docs = [], [], []
    for name in MIA_SETS:
        table = mia_documents[name]
        ids += table["id"].astype(str).tolist()
        sets += [name] * len(table)
        docs += table["document"].tolist()
    return statistics_table(ids, sets, docs, token_statistics(lm, docs, batch_size), k)


def write_mia_extra(checkpoint: str | Path, mia: str | Path, result_dir: str | Path, dtype: str = "bfloat16",
                    batch_size: int = 4, k: float = DEFAULT_K, trust_remote_code: bool = False) -> Path:
    """Load ``checkpoint``, run the pass on the documents of ``mia`` (member.jsonl, nonmember.jsonl) and
    write ``result_dir/mia_results/extra.csv`` atomically. Returns its path."""
    documents = load_mia(mia)
    device = "cuda" if torch.cuda.is_available() else None
    lm = load_model(checkpoint, dtype, trust_remote_code, device=device)
    table = mia_extra_table(lm, documents, k, batch_size)
    target = Path(result_dir) / "mia_results" / EXTRA_FILE
    write_with_atomic(target, lambda tmp: table.to_csv(tmp, index=False))
    return target
