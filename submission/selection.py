"""Which checkpoint is best: the evaluator's task metrics on the selection slice of the given rows.

Greedy generation, ROUGE-L recall (rouge_score, stemmer on) on sentence-completion rows, exact match on
question-answer rows, twelve terms (forget inverted) and their harmonic mean, as the official script
computes them. Written here again, not imported: the submission runs without the ``evaluator`` package.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

import torch
from rouge_score import rouge_scorer

from .calibration import membership_attack
from .data import Row

SPLITS = ("forget", "retain")
_SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


@dataclass(frozen=True)
class SelectionScore:
    task_aggregate: float  # harmonic mean of the terms (0 when any is 0), the evaluator's task aggregate
    # min(mean forget term, mean retain term): progress on both sides, ranks models while the harmonic mean is 0
    balance: float
    terms: tuple[float, ...]
    # The loss attack's AUC on the forget documents against documents of their kind never seen
    # (calibration.membership_attack; above 0.5: the members still sit below them), and those documents'
    # median loss now; None when not measured.
    membership_auc: float | None = None
    reference_level: float | None = None

    @property
    def membership(self) -> float | None:
        """The attack's score, 1 - 2|AUC - 0.5| (SPEC 3)."""
        return None if self.membership_auc is None else 1.0 - 2.0 * abs(self.membership_auc - 0.5)

    @property
    def combined(self) -> float:
        """What the official final score weighs besides MMLU: the mean of task aggregate and MIA score."""
        return self.task_aggregate if self.membership is None else (self.task_aggregate + self.membership) / 2

    def key(self) -> tuple[float, float]:
        return (self.combined, self.balance)


def row_score(row: Row, generated: str) -> float:
    # The official script reads generations back from CSV: an empty one comes back as NaN, scored as "nan".
    generated = generated if generated != "" else "nan"
    if row.kind == "qa":
        return float(row.output.strip().lower() == generated.strip().lower())
    return _SCORER.score(row.output, generated)["rougeL"].recall


def task_terms(scored: dict[str, list[tuple[Row, float]]]) -> dict[str, list[float]]:
    """Per split, per task (sorted), [regurgitation, knowledge]; forget terms inverted. A kind absent from
    the slice gives no term (the slice is a sample, the evaluator's sets have every kind)."""
    terms = {}
    for split in SPLITS:
        terms[split] = []
        for task in sorted({row.task for row, _ in scored[split]}):
            for kind in ("sc", "qa"):
                values = [s for row, s in scored[split] if row.task == task and row.kind == kind]
                if values:
                    mean = sum(values) / len(values)
                    terms[split].append(1.0 - mean if split == "forget" else mean)
    return terms


def aggregate(terms: dict[str, list[float]]) -> SelectionScore:
    flat = [t for split in SPLITS for t in terms[split]]
    if not flat:
        return SelectionScore(0.0, 0.0, ())
    harmonic = 0.0 if min(flat) <= 0 else statistics.harmonic_mean(flat)
    balance = min(sum(terms[s]) / len(terms[s]) if terms[s] else 0.0 for s in SPLITS)
    return SelectionScore(harmonic, balance, tuple(flat))


@torch.no_grad()
def generate_answers(model, tokenizer, rows: list[Row], batch_size: int, device,
                     synced_gpus: bool = False) -> list[str]:
    """Greedy continuations, batched (left-padded, rows sorted by prompt length). A row needs no more new
    tokens than its expected answer plus a few: enough to see whether an answer ends where it should
    (exact match) and to cover the expected text (ROUGE-L recall)."""
    prompts = [tokenizer(r.input).input_ids for r in rows]
    budgets = []
    for r in rows:
        answer_length = len(tokenizer(r.output, add_special_tokens=False).input_ids)
        budgets.append(min(256, answer_length + (4 if r.kind == "qa" else 16)))
    order = sorted(range(len(rows)), key=lambda i: len(prompts[i]))
    pad_id = tokenizer.eos_token_id
    outputs = [""] * len(rows)
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(len(prompts[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for j, i in enumerate(batch):
            input_ids[j, width - len(prompts[i]):] = torch.tensor(prompts[i])
            attention[j, width - len(prompts[i]):] = 1
        generated = model.generate(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                   max_new_tokens=max(budgets[i] for i in batch), do_sample=False,
                                   pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id,
                                   synced_gpus=synced_gpus)
        for j, i in enumerate(batch):
            tokens = generated[j, width:].tolist()
            if pad_id in tokens:  # the first eos ends the answer; the rest of the row is padding
                tokens = tokens[:tokens.index(pad_id)]
            outputs[i] = tokenizer.decode(tokens, skip_special_tokens=True)
    model.train(was_training)
    return outputs


def score_model(model, tokenizer, selection: dict[str, list[Row]], batch_size: int, device,
                synced_gpus: bool = False, documents: tuple[list[str], list[str]] | None = None) -> SelectionScore:
    """The task metrics on the selection slice; with ``documents`` (members, references) also the loss
    attack's AUC and the references' level (calibration.membership_attack)."""
    scored = {}
    for split in SPLITS:
        answers = generate_answers(model, tokenizer, selection[split], batch_size, device, synced_gpus)
        scored[split] = [(row, row_score(row, text)) for row, text in zip(selection[split], answers)]
    score = aggregate(task_terms(scored))
    if documents is not None:
        attack = membership_attack(model, tokenizer, *documents, device)
        if attack is not None:
            score = dataclasses.replace(score, membership_auc=attack[0], reference_level=attack[1])
    return score
