"""The MMLU utility gate (SPEC 3), its one home: the absolute threshold, the 75% rule and their wording.

The 7B leaderboard only ranked submissions with ``mmlu_average >= 0.371`` (75% of the 7B model's MMLU
before unlearning); with a reference model at hand the same rule reads ``mmlu_average >= 75% of the
reference's MMLU`` (the relative gate). Every command, the dry-run, ``check`` and the report read the
numbers and the words from here.
"""

from __future__ import annotations

MMLU_GATE_7B = 0.371  # SPEC 3: 75% of the 7B model's MMLU before unlearning
RELATIVE_GATE_FRACTION = 0.75  # SPEC 3: the 7B gate was 75% of the model before unlearning
GATES = ("absolute", "relative")
GATE_FILE = "gate.json"  # beside evaluation_results.jsonl: the gates applied and their outcome
ABSOLUTE_HELP = f"MMLU gate (absolute, >= {MMLU_GATE_7B})."
RELATIVE_HELP = f"relative ({RELATIVE_GATE_FRACTION:.0%})"


def passes_mmlu_gate(mmlu_average: float, threshold: float = MMLU_GATE_7B) -> bool:
    """SPEC 3: the 7B leaderboard only ranked submissions with MMLU at or above the threshold."""
    return mmlu_average >= threshold


def relative_threshold(reference_average: float, fraction: float = RELATIVE_GATE_FRACTION) -> float:
    return fraction * reference_average


def utility_gate(mmlu_average: float | None, absolute_threshold: float | None = MMLU_GATE_7B,
                 reference_average: float | None = None,
                 relative_fraction: float = RELATIVE_GATE_FRACTION) -> dict:
    """The utility gate (SPEC 3): absolute (``mmlu_average >= absolute_threshold``, 0.371 by default, None
    turns it off) and, when a reference checkpoint's MMLU is known, relative
    (``mmlu_average >= relative_fraction * reference_average``). ``passed`` is None when no gate applies
    or MMLU is unknown."""
    gates = []
    if absolute_threshold is not None:
        gates.append({"gate": "absolute", "threshold": absolute_threshold})
    if reference_average is not None:
        gates.append({"gate": "relative", "reference_mmlu": reference_average, "fraction": relative_fraction,
                      "threshold": relative_threshold(reference_average, relative_fraction)})
    for gate in gates:
        gate["value"] = mmlu_average
        gate["passed"] = None if mmlu_average is None else bool(passes_mmlu_gate(mmlu_average, gate["threshold"]))
    passed = None if mmlu_average is None or not gates else all(g["passed"] for g in gates)
    return {"mmlu_average": mmlu_average, "gates": gates, "passed": passed}


def verdict_word(passed: bool | None) -> str:
    return "-" if passed is None else ("pass" if passed else "FAIL")


def gate_condition(gate: dict, reference: str = "reference") -> str:
    """One applied gate's condition: ``>= 0.3710`` or ``>= 75% of reference 0.5000 = 0.3750``. With
    ``reference="before"`` (the dry-run's table, where the reference is the model before unlearning):
    ``>= 0.371`` or ``>= 75% of before = 0.3750``."""
    if gate["gate"] == "absolute":
        return f">= {gate['threshold']:.4f}" if reference == "reference" else f">= {gate['threshold']:.3f}"
    if reference == "reference":
        return f">= {gate['fraction']:.0%} of reference {gate['reference_mmlu']:.4f} = {gate['threshold']:.4f}"
    return f">= {gate['fraction']:.0%} of {reference} = {gate['threshold']:.4f}"


def relative_note(before_mmlu: float, fraction: float = RELATIVE_GATE_FRACTION) -> str:
    """``check``'s note on a relative gate: ``75% of before MMLU 1.0000``."""
    return f"{fraction:.0%} of before MMLU {before_mmlu:.4f}"


def format_gate(gate: dict) -> str:
    """One line per applied gate, for the result table."""
    if not gate["gates"]:
        return "MMLU gate: none applied"
    return "\n".join(f"MMLU gate, {g['gate']} ({gate_condition(g)}): {verdict_word(g['passed'])}"
                     for g in gate["gates"])


def failed_gates(gate: dict) -> list[str]:
    return [g["gate"] for g in gate["gates"] if not g["passed"]]
