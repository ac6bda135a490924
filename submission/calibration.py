"""The loss level the forget documents should end at, measured on the model we are given.

The membership attack (SPEC 3: loss over the whole document, AUC against documents never seen) rewards
forget documents whose loss ends where documents of the same kind that the model never saw sit: below
that level they still look trained on (AUC near 1), far above it they look unlearned (AUC near 0); both give
an MIA score near 0. That level differs from model to model (a few nats a token on a memorizing tiny model,
about 2 on a pretrained 7B), so it is measured, not fixed:

- ``swapped_documents``: the forget and retain documents with every entity-like word (a capitalized word, a
  number, an e-mail address) replaced by one of the same shape drawn from another document of the same
  task. The result reads like the members (same kind, same phrasing) but states facts the model never saw
  together: text of the members' kind that the model never saw, built from what we are given. Which words
  count as entities is a rule chosen by name (``SWAP_RULES``): every capitalized word (the default), or
  ``proper_nouns``, which leaves a capitalized word at a sentence's start ("The", "One") in place.
- ``document_level``: the model's median per-token loss on such documents, before unlearning.
- ``membership_attack``: the membership attack's AUC (its score is 1 - 2|AUC - 0.5|, SPEC 3) of the forget documents
  against such documents, on the model as it is now: what the checkpoint selection weighs besides the task
  metrics, as the official final score does.

On the stub's targets this estimate sits 10-15% under the loss of the real nonmembers (the swapped entities
are words the model knows, a real nonmember's are new), so it errs on the side of stopping the ascent early.

Better, when one has them: documents of the members' kind that the model never saw, given as
``calibration_docs`` (a folder of ``.jsonl`` files with a ``document`` field, as the public release's
``mia_data/nonmember.jsonl``, or ``.txt`` files, one document each), or baked into the packed file by
``unlearn-eval pack --calibration-docs DIR`` (the organizers' call passes four paths and nothing else). The
level is still measured on the model handed over, at run time; only the documents travel.
"""

from __future__ import annotations

import random
import re
import statistics
from pathlib import Path

import torch

from .data import Row, SubmissionInputError, parse_jsonl

# Calibration files (name -> text), put here by ``unlearn-eval pack --calibration-docs``; empty in the package.
BAKED_CALIBRATION_FILES: dict[str, str] = {}
CALIBRATION_SUFFIXES = (".jsonl", ".txt")

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


def _sentence_initial(text: str, start: int) -> bool:
    before = text[:start].rstrip()
    return not before or before[-1] in '.!?:;"\n'


def _every_entity(document: str, match: re.Match) -> bool:
    return True


def _proper_noun(document: str, match: re.Match) -> bool:
    """Not a capitalized word opening a sentence: on a model that learned the members' kind, swapping "The"
    for a name costs as much as text never seen, and the level came out 1.8 nats/token above the unseen
    documents' on the pretrained targets (docs/methods.md)."""
    return _shape(match.group(0)) != "word" or not _sentence_initial(document, match.start())


# Which entity-like words (ENTITY) a swapped document swaps, by name (UnlearnSettings.swapped_words).
SWAP_RULES = {"capitalized": _every_entity, "proper_nouns": _proper_noun}


def swapped_documents(documents: list[str], copies: int, rng: random.Random,
                      rule: str = "capitalized") -> list[str]:
    """``copies`` versions of each document with its entities (those ``SWAP_RULES[rule]`` keeps) swapped for
    entities of other documents."""
    keep = SWAP_RULES[rule]
    entities = [[m for m in ENTITY.finditer(d) if keep(d, m)] for d in documents]
    out = []
    for k, document in enumerate(documents):
        pool: dict[str, list[str]] = {}
        for j, other in enumerate(entities):
            if j != k:
                for match in other:
                    pool.setdefault(_shape(match.group(0)), []).append(match.group(0))
        swapped_at = {m.start() for m in entities[k]}

        def swap(match: re.Match) -> str:
            word = match.group(0)
            if match.start() not in swapped_at:
                return word
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


def reference_documents(rows: list[Row], copies: int = 4, seed: int = 0, rule: str = "capitalized") -> list[str]:
    """Documents of the members' kind that the model never saw, built from ``rows`` (see the module), their
    entities chosen by ``SWAP_RULES[rule]``."""
    rng = random.Random(seed)
    return [d for documents in documents_by_task(rows).values() if len(documents) >= 2
            for d in swapped_documents(documents, copies, rng, rule)]


def parse_calibration_file(name: str, text: str) -> list[str]:
    """The documents of one calibration file: a ``.jsonl`` file's ``document`` fields (``text`` accepted), or a
    ``.txt`` file's whole text. ``name`` is only for the error line."""
    if name.endswith(".txt"):
        return [text.strip()] if text.strip() else []
    documents = []
    for number, record in enumerate(parse_jsonl(name, text), start=1):
        document = record.get("document") if isinstance(record.get("document"), str) else record.get("text")
        if not isinstance(document, str):
            raise SubmissionInputError(f"{name}: record {number}: no string 'document' (or 'text') field")
        documents.append(document)
    return documents


def read_calibration_files(path: str | Path) -> dict[str, str]:
    """name -> text of the calibration files at ``path`` (a folder's ``.jsonl``/``.txt`` files, or one file)."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in CALIBRATION_SUFFIXES)
    else:
        raise SubmissionInputError(f"{path}: calibration documents not found (a folder or a .jsonl/.txt file)")
    if not files or any(p.suffix not in CALIBRATION_SUFFIXES for p in files):
        raise SubmissionInputError(f"{path}: no .jsonl or .txt calibration file")
    return {str(p): p.read_text(encoding="utf-8") for p in files}


def calibration_documents(path: str | Path | None) -> tuple[list[str], str | None]:
    """The calibration documents given (``path``), else those baked into the packed file; and where they come
    from (None: there are none, the swapped documents serve instead)."""
    files, source = (read_calibration_files(path), str(path)) if path else (BAKED_CALIBRATION_FILES, "baked")
    documents = [d for name, text in files.items() for d in parse_calibration_file(name, text)]
    if path and not documents:
        raise SubmissionInputError(f"{path}: the calibration files hold no document")
    return documents, (f"{len(documents)} calibration documents ({source})" if documents else None)


def swapped_source(rule: str = "capitalized") -> str:
    """What ``reference_documents(..., rule=rule)`` are, for the log's ``how``."""
    return (f"forget/retain documents with their entities ({rule}) swapped across documents of the same task "
            f"(no calibration documents given)")


def document_level(model, tokenizer, references: list[str], device, source: str | None = None) -> dict:
    """The median loss of ``references``: ``{"level", "documents", "how"}``, a level of None when there are
    none (fewer than two documents in every task, nothing to swap between). ``source`` says what they are
    (calibration documents, or ``swapped_source``); by default the default rule's ``reference_documents``."""
    losses = document_losses(model, tokenizer, references, device)
    level = statistics.median(losses) if losses else None
    of = source or swapped_source()
    return {"level": level, "documents": len(losses), "how": f"median per-token loss, before unlearning, of {of}"}


def membership_attack(model, tokenizer, members: list[str], references: list[str],
                      device) -> tuple[float, float] | None:
    """The loss attack telling ``members`` (forget documents) from ``references`` (documents of their kind the
    model never saw) on ``model`` as it is now: its AUC (above 0.5 the members still sit below the references,
    under it they are past them; its score is 1 - 2|AUC - 0.5|, SPEC 3) and the references' median loss (where
    they sit now: the level moves as the model is trained). None when either side is empty."""
    from sklearn.metrics import roc_auc_score

    member_losses = document_losses(model, tokenizer, members, device)
    reference_losses = document_losses(model, tokenizer, references, device)
    if not member_losses or not reference_losses:
        return None
    labels = [1] * len(member_losses) + [0] * len(reference_losses)
    auc = roc_auc_score(labels, [-x for x in member_losses + reference_losses])  # a lower loss says "member"
    return auc, statistics.median(reference_losses)
