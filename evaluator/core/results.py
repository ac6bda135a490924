"""The results file: a dataclass that writes and reads the official ``evaluation_results.jsonl``.

Keys and their order are the official script's (SPEC section 3); optional keys are absent, not null,
when the official script would not write them. Values are kept as the script would dump them (the
task aggregate is the int 0 when a term is 0), so reading a file and writing it back gives the same bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.core.atomic import write_text_atomic
from evaluator.core.errors import InputError
from evaluator.core.gate import MMLU_GATE_7B, passes_mmlu_gate

RESULTS_FILE = "evaluation_results.jsonl"
JOURNAL_DIR = ".partial"  # in --out: the resume journal of an unfinished evaluate (evaluator.model.journal)


@dataclass
class EvaluationResult:
    forget: dict[str, Any]
    retain: dict[str, Any]
    aggregated_terms: list[float]
    harmonic_mean_task_aggregate: float
    aggregate_score: float = -1
    mia_loss_acc: float | None = None
    mmlu_average: float | None = None
    mia_final_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a file that the official schema lacks

    @property
    def task_aggregate(self) -> float:
        return self.harmonic_mean_task_aggregate

    @property
    def final(self) -> float | None:
        """The final score, or None where the official script writes -1 (MMLU or MIA missing)."""
        return None if self.mia_final_score is None or self.mmlu_average is None else self.aggregate_score

    def mmlu_gate(self, threshold: float = MMLU_GATE_7B) -> bool | None:
        return None if self.mmlu_average is None else passes_mmlu_gate(self.mmlu_average, threshold)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"forget-set": self.forget, "retain-set": self.retain}
        if self.mia_loss_acc is not None:
            out["mia_loss_acc"] = self.mia_loss_acc
        if self.mmlu_average is not None:
            out["mmlu_average"] = self.mmlu_average
        out["aggregated-terms"] = self.aggregated_terms
        out["aggregate-score"] = self.aggregate_score
        out["harmonic-mean-task-aggregate"] = self.harmonic_mean_task_aggregate
        if self.mia_final_score is not None:
            out["mia_final_score"] = self.mia_final_score
        out.update(self.extra)
        return out

    def to_json(self) -> str:
        # json.dumps with default separators and no trailing newline: byte for byte the official file.
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationResult":
        known = {"forget-set", "retain-set", "mia_loss_acc", "mmlu_average", "aggregated-terms",
                 "aggregate-score", "harmonic-mean-task-aggregate", "mia_final_score"}
        missing = {"forget-set", "retain-set", "aggregated-terms", "harmonic-mean-task-aggregate"} - data.keys()
        if missing:
            raise KeyError(", ".join(sorted(missing)))
        return cls(
            forget=data["forget-set"],
            retain=data["retain-set"],
            aggregated_terms=data["aggregated-terms"],
            harmonic_mean_task_aggregate=data["harmonic-mean-task-aggregate"],
            aggregate_score=data.get("aggregate-score", -1),
            mia_loss_acc=data.get("mia_loss_acc"),
            mmlu_average=data.get("mmlu_average"),
            mia_final_score=data.get("mia_final_score"),
            extra={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def from_json(cls, text: str) -> "EvaluationResult":
        return cls.from_dict(json.loads(text))

    def write(self, path: str | Path) -> None:
        write_text_atomic(path, self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> "EvaluationResult":
        path = Path(path)
        if path.is_dir():
            path = path / RESULTS_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise InputError(f"{path}: empty results file")
        try:
            return cls.from_json(lines[-1])
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: malformed JSON ({exc.msg})") from None
        except KeyError as exc:
            raise InputError(f"{path}: missing key(s) {exc.args[0]} of the official results schema") from None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))


def read_mmlu_average(path: str | Path) -> float:
    """``average_acc`` of an MMLU ``metrics.json`` (open-instruct's output)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON ({exc.msg})") from None
    value = data.get("average_acc") if isinstance(data, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        raise InputError(f"{path}: no numeric 'average_acc' (an MMLU metrics.json has one)")
    return value
