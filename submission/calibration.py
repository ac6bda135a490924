"""The loss level the forget documents should end at, measured on the model we are given.

The membership attack (SPEC 3: loss over the whole document, AUC against documents never seen) rewards
forget documents whose loss ends where documents of the same kind that the model never saw sit: below
that level they still look trained on (AUC near 1), far above it they look unlearned (AUC near 0); both give
an MIA score near 0. That level differs from model to model (a few nats a token on a memorizing tiny model,
about 2 on a pretrained 7B), so it is measured, not fixed:

- ``swapped_documents``: the forget and retain documents with every entity-like word (a capitalized word, a
  number, an e-mail address) replaced by one of the same shape drawn from another document of the same
  task. The result reads like the members (same kind, same phrasing) but states facts the model never saw
  together: text of the members' kind that the model never saw, built from what we are given.
- ``document_level``: the model's median per-token loss on such documents, before unlearning.
- ``membership_score``: the membership attack's score (1 - 2|AUC - 0.5|, SPEC 3) of the forget documents
  against such documents, on the model as it is now: what the checkpoint selection weighs besides the task
  metrics, as the official final score does.

On the stub's targets this estimate sits 10-15% under the loss of the real nonmembers (the swapped entities
are words the model knows, a real nonmember's are new), so it errs on the side of stopping the ascent early.
"""

from __future__ import annotations

import random
import re
import statistics

import torch

from .data import Row

# An e-mail address, a number (digits with inner dashes: dates, phone numbers, ids), a capitalized word.
ENTITY = re.compile(r"\S+@\S+|\d[\d\-]*\d|\d|[A-Z][a-z]+")


def _shape(word: str) -> str:
    if "@" in word:
        return "email"
    if word[0].isdigit():
        return f"number{len(word)}"
    return "word"


def documents_by_task(rows: list[Row]) -> dict[str, list[str]]:
    """The whole passage (input + output) of every sentence-completion row, by task."""
    out: dict[str, list[str]] = {}
    for row in rows:
        if row.kind == "sc":
            out.setdefault(row.task, []).append(row.input + row.output)
    return out


def swapped_documents(documents: list[str], copies: int, rng: random.Random) -> list[str]:
    """``copies`` versions of each document with its entities swapped for entities of other documents."""
    out = []
    for k, document in enumerate(documents):
        pool: dict[str, list[str]] = {}
        for j, other in enumerate(documents):
            if j != k:
                for word in ENTITY.findall(other):
                    pool.setdefault(_shape(word), []).append(word)

        def swap(match: re.Match) -> str:
            word = match.group(0)
            candidates = [w for w in pool.get(_shape(word), ()) if w != word]
            return rng.choice(candidates) if candidates else word

        out += [ENTITY.sub(swap, document) for _ in range(copies)]
    return [d for d in out if d not in documents]


@torch.no_grad()
def document_losses(model, tokenizer, documents: list[str], device, max_length: int = 512) -> list[float]:
    """Per document, the mean next-token loss over the whole text (the MIA attack's per-document loss)."""
    was_training = model.training
    model.eval()
    losses = []
    for document in documents:
        ids = tokenizer(document, return_tensors="pt", truncation=True, max_length=max_length).input_ids.to(device)
        if ids.shape[1] < 2:
            continue
        losses.append(float(model(input_ids=ids, labels=ids).loss))
    model.train(was_training)
    return losses


def reference_documents(rows: list[Row], copies: int = 4, seed: int = 0) -> list[str]:
    """Documents of the members' kind that the model never saw, built from ``rows`` (see the module)."""
    rng = random.Random(seed)
    return [d for documents in documents_by_task(rows).values() if len(documents) >= 2
            for d in swapped_documents(documents, copies, rng)]


def document_level(model, tokenizer, references: list[str], device) -> dict:
    """The median loss of ``references`` (``reference_documents``): ``{"level", "documents", "how"}``, a level
    of None when there are none (fewer than two documents in every task, nothing to swap between)."""
    losses = document_losses(model, tokenizer, references, device)
    level = statistics.median(losses) if losses else None
    return {"level": level, "documents": len(losses),
            "how": "median per-token loss, before unlearning, of forget/retain documents with their entities "
                   "swapped across documents of the same task"}


def membership_score(model, tokenizer, members: list[str], references: list[str], device) -> float | None:
    """1 - 2|AUC - 0.5| of the loss attack telling ``members`` (forget documents) from ``references``
    (documents of their kind the model never saw) on ``model``; None when either side is empty."""
    from sklearn.metrics import roc_auc_score

    member_losses = document_losses(model, tokenizer, members, device)
    reference_losses = document_losses(model, tokenizer, references, device)
    if not member_losses or not reference_losses:
        return None
    labels = [1] * len(member_losses) + [0] * len(reference_losses)
    auc = roc_auc_score(labels, [-x for x in member_losses + reference_losses])  # a lower loss says "member"
    return 1.0 - 2.0 * abs(auc - 0.5)
