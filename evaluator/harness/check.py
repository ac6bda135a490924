"""``unlearn-eval check``: the CI gate. Reads a results file and holds it to thresholds.

Input: ``evaluation_results.jsonl`` (the official results file, ours or the organizers') or a dry-run's
``summary.json``, or the folder holding one (``summary.json`` first: it also has the before MMLU that the
relative gate needs, and the dry-run's verdict). Thresholds come from a TOML file (``--thresholds``, e.g.
``ci/thresholds.toml``) and/or options; an option overrides the file's value.

Thresholds (TOML keys; options ``--min-final`` ...):

- ``min_final``, ``min_task_aggregate``, ``min_mia``, ``min_mmlu``: the value must be at least this;
  ``min_mia`` is on the MIA score (``mia_final_score``), ``min_mmlu`` on ``mmlu_average``;
- ``gate``: ``"absolute"`` (MMLU >= 0.371) and/or ``"relative"`` (MMLU >= 75% of the before MMLU; needs a
  ``summary.json``), a string or a list.

A ``summary.json`` adds one check of its own: the dry-run's submission ran to completion and left one
loadable checkpoint (its verdict is ``ok`` or ``gate-failed``; the gates are checked separately).
A missing value (e.g. no MIA in the results) fails its threshold.

Exit status (:func:`exit_code`; ``EXIT_*`` below):

- 0: every threshold holds;
- 1: a threshold fails (a value below its limit or missing, a gate failed, a dry-run verdict other than ``ok``
  or ``gate-failed`` that still left after scores);
- 2: bad input: a file that cannot be read (missing, malformed JSON or TOML), an unknown threshold key, a
  value of the wrong type, nothing to check, the relative gate without a ``summary.json``;
- 3: the run did not finish, so there are no after scores to check: a dry-run ``summary.json`` without
  ``after`` figures (verdict ``timeout``, ``raised``, ``no-checkpoint``, ``unloadable``... with no checkpoint
  scored), or an evaluation folder without ``evaluation_results.jsonl`` that holds the resume journal
  ``.partial/`` of a killed ``evaluate`` (the same command finishes it).
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.core.errors import InputError
from evaluator.core.gate import GATES, MMLU_GATE_7B, relative_note, relative_threshold
from evaluator.core.numbers import format_number
from evaluator.core.results import JOURNAL_DIR, RESULTS_FILE, EvaluationResult

SUMMARY_FILE = "summary.json"  # a dry-run's figures and verdict (evaluator.harness.dryrun writes it)
METRICS = {  # threshold key -> (label, figure key)
    "min_final": ("final", "final"),
    "min_task_aggregate": ("task aggregate", "task_aggregate"),
    "min_mia": ("MIA score", "mia_score"),
    "min_mmlu": ("MMLU average", "mmlu"),
}
THRESHOLD_KEYS = (*METRICS, "gate")
RUN_COMPLETED = ("ok", "gate-failed")  # dry-run verdicts where the submission itself did its job
EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_FINISHED = 0, 1, InputError.exit_code, 3  # 2: the CLI's bad input


@dataclass
class Figures:
    """What a results file says, whichever kind it is."""

    path: Path
    kind: str  # "results" or "summary"
    final: float | None
    task_aggregate: float | None
    mia_score: float | None
    mmlu: float | None
    before_mmlu: float | None = None
    verdict: str | None = None
    not_finished: str | None = None  # why there are no after scores (exit 3), else None


@dataclass
class Check:
    name: str
    value: Any
    threshold: Any
    passed: bool
    note: str = ""
    op: str = ">="

    @property
    def margin(self) -> float | None:
        """value - threshold (negative: short of it by that much); None where either is not a number."""
        if _number(self.value) is None or _number(self.threshold) is None:
            return None
        return float(self.value) - float(self.threshold)


def unfinished_evaluation(path: Path) -> tuple[Path, str] | None:
    """(the folder, why) when ``path`` is an evaluation folder (or its missing ``evaluation_results.jsonl``)
    that holds no results file but the resume journal of a run that was killed; else None."""
    if path.is_dir():
        folder = path
    elif path.name == RESULTS_FILE and not path.exists():
        folder = path.parent
    else:
        return None
    if (folder / SUMMARY_FILE).is_file() or (folder / RESULTS_FILE).is_file() or not (folder / JOURNAL_DIR).is_dir():
        return None
    return folder, (f"the run did not finish: no {RESULTS_FILE}, only the resume journal {JOURNAL_DIR}/ of a killed "
                    "evaluate (the same evaluate command finishes it)")


def locate_results(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        for name in (SUMMARY_FILE, RESULTS_FILE):
            if (path / name).is_file():
                return path / name
        raise InputError(f"{path}: holds neither {SUMMARY_FILE} nor {RESULTS_FILE}")
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    return path


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def read_figures(path: str | Path) -> Figures:
    """The figures of a results file, a summary.json or the folder holding one; ``not_finished`` says why
    there are none when the run did not finish (an unfinished evaluation folder, a dry-run summary without
    after scores)."""
    unfinished = unfinished_evaluation(Path(path))
    if unfinished is not None:
        return Figures(unfinished[0], "results", None, None, None, None, not_finished=unfinished[1])
    path = locate_results(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc})") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path}: empty file")
    try:
        data = json.loads(text)  # summary.json, or a results file of one line
    except json.JSONDecodeError as exc:
        try:  # a results file of several lines: the last one counts, as for EvaluationResult.read
            data = json.loads(lines[-1])
        except json.JSONDecodeError:
            raise InputError(f"{path}: malformed JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON object")
    if "verdict" in data and "after" in data:  # a dry-run summary
        after = data["after"] or {}
        before = data.get("before") or {}
        if not isinstance(after, dict) or not isinstance(before, dict):
            raise InputError(f"{path}: 'before'/'after' are not objects (not a dry-run summary.json)")
        verdict = str(data["verdict"])
        not_finished = None if after else (f"the run did not finish: dry-run verdict {verdict}, no after scores "
                                           "(no checkpoint was scored)")
        return Figures(path, "summary",
                       *(_number(after.get(k)) for k in ("final", "task_aggregate", "mia_score", "mmlu")),
                       before_mmlu=_number(before.get("mmlu")), verdict=verdict, not_finished=not_finished)
    try:
        result = EvaluationResult.from_dict(data)
    except KeyError as exc:
        raise InputError(f"{path}: missing key(s) {exc.args[0]} (neither {RESULTS_FILE} nor a dry-run "
                         f"{SUMMARY_FILE})") from None
    return Figures(path, "results", _number(result.final), _number(result.task_aggregate),
                   _number(result.mia_final_score), _number(result.mmlu_average))


def read_thresholds(path: str | Path) -> dict[str, Any]:
    """A TOML file of thresholds; an unknown key or a value of the wrong type is bad input."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: malformed TOML ({exc})") from None
    return validate_thresholds(data, str(path))


def validate_thresholds(data: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(data) - set(THRESHOLD_KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(THRESHOLD_KEYS)})")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "gate":
            gates = [value] if isinstance(value, str) else value
            if not isinstance(gates, list) or not all(isinstance(g, str) and g in GATES for g in gates):
                raise InputError(f"{where}: gate must be \"absolute\", \"relative\" or a list of them, not {value!r}")
            out[key] = list(dict.fromkeys(gates))
        else:
            if _number(value) is None:
                raise InputError(f"{where}: {key} must be a number, not {value!r}")
            out[key] = float(value)
    return out


def run_checks(figures: Figures, thresholds: dict[str, Any]) -> list[Check]:
    if not thresholds and figures.kind != "summary":
        raise InputError("nothing to check: give --thresholds or at least one --min-* or --gate")
    checks: list[Check] = []
    if figures.kind == "summary":
        checks.append(Check("dry-run completed", figures.verdict, ", ".join(RUN_COMPLETED),
                            figures.verdict in RUN_COMPLETED, op="in"))
    for key, (label, attribute) in METRICS.items():
        if key in thresholds:
            value = getattr(figures, attribute)
            checks.append(Check(label, value, thresholds[key], value is not None and value >= thresholds[key],
                                "" if value is not None else "missing in the results"))
    for gate in thresholds.get("gate", []):
        if gate == "absolute":
            threshold, note = MMLU_GATE_7B, ""
        else:
            if figures.kind != "summary":
                raise InputError(f"{figures.path}: the relative gate needs the before MMLU, which only a dry-run "
                                 f"{SUMMARY_FILE} holds")
            threshold = None if figures.before_mmlu is None else relative_threshold(figures.before_mmlu)
            note = "" if threshold is None else relative_note(figures.before_mmlu)
        passed = figures.mmlu is not None and threshold is not None and figures.mmlu >= threshold
        checks.append(Check(f"MMLU gate {gate}", figures.mmlu, threshold, passed,
                            note if figures.mmlu is not None else "MMLU missing in the results"))
    return checks


def exit_code(figures: Figures, checks: list[Check]) -> int:
    """3 when the run did not finish (no after scores), else 0 when every check passed, 1 when one failed."""
    if figures.not_finished is not None:
        return EXIT_NOT_FINISHED
    return EXIT_PASSED if all(c.passed for c in checks) else EXIT_FAILED


def format_checks(figures: Figures, checks: list[Check]) -> str:
    show = format_number
    lines = [f"checking {figures.path}"]
    for c in checks:
        lines.append(f"  {'pass' if c.passed else 'FAIL'}  {c.name:20} {show(c.value):>10}  {c.op} {show(c.threshold)}"
                     + (f"  ({c.note})" if c.note else ""))
    failed = sum(not c.passed for c in checks)
    lines.append(f"{len(checks) - failed} of {len(checks)} passed" + ("" if not failed else f", {failed} failed"))
    return "\n".join(lines)


def checks_json(figures: Figures, checks: list[Check]) -> str:
    """Every check with its value, limit, margin (value - limit; null where not a number) and whether it
    passed, and the command's exit code (``threshold`` repeats ``limit``, for readers of the earlier form)."""
    code = exit_code(figures, checks)
    return json.dumps({"file": str(figures.path), "kind": figures.kind, "passed": code == EXIT_PASSED,
                       "exit_code": code, "not_finished": figures.not_finished,
                       "checks": [{"name": c.name, "value": c.value, "limit": c.threshold, "margin": c.margin,
                                   "passed": c.passed, "op": c.op, "note": c.note, "threshold": c.threshold}
                                  for c in checks]})
