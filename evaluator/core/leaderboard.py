"""The published SemEval-2025 Task 4 (LUME) leaderboards: one loader and the dry-run's placement.

Torch-free (``unlearn-eval report`` and ``check`` import it without loading a model stack).

The schema everything here returns is the packaged one, ``evaluator/resources/leaderboard.json``::

    {"about": str, "mmlu_gate_7b": 0.371,
     "boards": {"7b":            {"title": str, "gated": true,  "rows": [...]},
                "7b_below_gate": {"title": str, "gated": false, "rows": [...]},
                "1b":            {"title": str, "gated": false, "rows": [...]},
                "7b_baselines":  {"title": str, "gated": false, "rows": [...]}}}

with rows ``{"team", "final", "task_aggregate", "mia_score", "mmlu", "rank"}``, best first. A file in the
schema of ``../shared/golden/leaderboard.json`` (top-level ``7b_ranked``, ``7b_below_mmlu_gate``, ``1b``,
``7b_organizer_baselines`` lists) is converted to it on loading (:func:`normalize`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from evaluator.core.errors import InputError
from evaluator.core.gate import MMLU_GATE_7B

PACKAGED = "resources/leaderboard.json"  # inside the evaluator package
PACKAGED_NAME = f"package data evaluator/{PACKAGED}"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "golden" / "leaderboard.json"

# packaged board -> (shared golden key, title, gated)
BOARDS = {
    "7b": ("7b_ranked", "OLMo-7B-0724-Instruct, ranked (MMLU at or above the gate)", True),
    "7b_below_gate": ("7b_below_mmlu_gate", "OLMo-7B-0724-Instruct, not ranked (MMLU below the gate)", False),
    "1b": ("1b", "OLMo-1B-0724, ranked (no MMLU gate)", False),
    "7b_baselines": ("7b_organizer_baselines", "organizers' 7B baselines", False),
}


def normalize(data: Any, where: str = "leaderboard") -> dict:
    """``data`` in the packaged schema: returned as it is when it already has ``boards``; a file in the
    shared golden schema is converted (the boards it has; rows keep their fields)."""
    if not isinstance(data, dict):
        raise InputError(f"{where}: not a JSON object (a leaderboard.json)")
    if "boards" in data:
        if not isinstance(data["boards"], dict) or not all(
                isinstance(b, dict) and isinstance(b.get("rows"), list) for b in data["boards"].values()):
            raise InputError(f"{where}: 'boards' must map names to objects with a 'rows' list")
        return data
    found = {name: key for name, (key, _, _) in BOARDS.items() if key in data}
    if not found:
        raise InputError(f"{where}: neither 'boards' (the packaged schema) nor "
                         f"{', '.join(repr(k) for k, _, _ in BOARDS.values())} (the shared golden schema)")
    boards = {}
    for name, key in found.items():
        if not isinstance(data[key], list):
            raise InputError(f"{where}: {key!r} must be a list of rows")
        _, title, gated = BOARDS[name]
        boards[name] = {"title": title, "gated": gated, "rows": list(data[key])}
    return {"about": str(data.get("source", data.get("about", ""))),
            "mmlu_gate_7b": data.get("mmlu_gate_7b", MMLU_GATE_7B), "boards": boards}


def load_leaderboard(path: str | Path | None = None) -> dict:
    """The leaderboards in the packaged schema: the package's own file, or ``path`` (either schema)."""
    if path is None:
        text = resources.files("evaluator").joinpath(PACKAGED).read_text(encoding="utf-8")
        where = PACKAGED_NAME
    else:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
        where = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: malformed JSON ({exc.msg}, line {exc.lineno})") from None
    return normalize(data, where)


def find_leaderboard() -> tuple[dict | None, str]:
    """For the report, which must not fail for want of it: (the leaderboards, where they came from), the
    package's file first, else ``../shared/golden/leaderboard.json`` beside the project (a developer
    checkout whose installed package lacks the data), else (None, why)."""
    try:
        return load_leaderboard(), PACKAGED_NAME
    except (OSError, ModuleNotFoundError, InputError):
        pass
    if SHARED.is_file():
        try:
            return load_leaderboard(SHARED), f"{SHARED} (../shared; the package lacks evaluator/{PACKAGED})"
        except InputError:
            pass
    return None, f"no leaderboard data (neither evaluator/{PACKAGED} nor ../shared/golden/leaderboard.json)"


def placement(final: float | None, mmlu: float | None, leaderboard: dict | None = None) -> dict:
    """Where ``final`` would sit on the published boards: the 7B board (ranked only at or above its MMLU
    gate), the 1B board (no gate), and against the organizers' 7B baselines. ``leaderboard``: either schema
    (default: the packaged file)."""
    leaderboard = load_leaderboard() if leaderboard is None else normalize(leaderboard)
    gate = leaderboard["mmlu_gate_7b"]
    out: dict[str, Any] = {}
    if final is None:
        return {"note": "no final score to place"}
    for name in ("7b", "1b"):
        board = leaderboard["boards"][name]
        rows = board["rows"]
        if board["gated"] and (mmlu is None or mmlu < gate):
            out[name] = {"rank": None, "of": len(rows),
                         "note": f"not ranked: MMLU below the 7B gate {gate}"}
            continue
        above = [r for r in rows if r["final"] > final]
        below = rows[len(above)] if len(above) < len(rows) else None
        out[name] = {"rank": len(above) + 1, "of": len(rows) + 1,
                     "behind": {"team": above[-1]["team"], "final": above[-1]["final"]} if above else None,
                     "ahead_of": {"team": below["team"], "final": below["final"]} if below else None}
    baselines = leaderboard["boards"]["7b_baselines"]["rows"]
    out["7b_baselines_beaten"] = sum(final > r["final"] for r in baselines)
    out["7b_baselines"] = len(baselines)
    return out
