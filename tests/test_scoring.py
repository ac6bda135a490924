"""The pure scoring functions (SPEC section 3) on hand-made tables: no model, no ../shared."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from evaluator.cli import main
from evaluator.core import scoring
from evaluator.core.results import EvaluationResult
from evaluator.core.tables import score_generations


def test_regurgitation_is_rouge_recall_target_first():
    # 3 of the 4 reference words are in the prediction: recall 0.75 whatever the prediction's length.
    scores = scoring.regurgitation_metrics("the cat sat down", "the cat sat on a long mat of straw")
    assert scores[scoring.REGURGITATION] == pytest.approx(0.75)
    assert scores[scoring.REGURGITATION_ROUGE1] == pytest.approx(0.75)
    # rougeL is an LCS: order matters, rouge1 does not.
    swapped = scoring.regurgitation_metrics("a b c d", "d c b a")
    assert swapped[scoring.REGURGITATION_ROUGE1] == 1.0 and swapped[scoring.REGURGITATION] == 0.25


def test_knowledge_is_case_and_edge_space_insensitive_exact_match():
    assert scoring.knowledge_metrics("  Paris ", "paris") == {scoring.KNOWLEDGE: 1}
    assert scoring.knowledge_metrics("Paris", "Paris, France") == {scoring.KNOWLEDGE: 0}


def test_nan_generation_scores_as_the_string_nan():
    # An empty generation comes back from the official CSV as NaN and str(NaN) == "nan".
    assert scoring.knowledge_metrics("nan", float("nan")) == {scoring.KNOWLEDGE: 1}
    assert scoring.regurgitation_metrics("nan", float("nan"))[scoring.REGURGITATION] == 1.0


def _table(rows):
    return pd.DataFrame(rows, columns=["id", "task", "expected_output", "model_output"])


def test_split_summary_and_terms_follow_the_official_order():
    forget = _table([
        ("a1sc1", "Task2", "x y", "x y"), ("a1qa0", "Task2", "1", "2"),
        ("b1sc1", "Task1", "p q r s", "p q"), ("b1qa0", "Task1", "yes", "YES"),
    ])
    retain = _table([("c1sc1", "Task1", "m n", "m"), ("c1qa0", "Task1", "k", "k")])
    forget_summary = scoring.split_summary(scoring.score_rows(forget))
    assert list(forget_summary) == ["overall-regurgitation-score", "overall-knowledge-score", "Task1", "Task2"]
    assert forget_summary["overall-regurgitation-score"] == pytest.approx(0.75)
    assert forget_summary["Task1"] == {"regurgitation-score": 0.5, "knowledge-score": 1.0}
    terms = scoring.task_terms({"forget": forget_summary,
                                "retain": scoring.split_summary(scoring.score_rows(retain))})
    # forget terms inverted: Task1 [1-0.5, 1-1], Task2 [1-1, 1-0]; then retain Task1 [0.5, 1].
    assert terms == [0.5, 0.0, 0.0, 1.0, 0.5, 1.0]


def test_harmonic_mean_is_int_zero_on_a_zero_term_and_nan_on_a_missing_kind():
    assert scoring.task_aggregate([0.5, 0.0, 1.0]) == 0 and isinstance(scoring.task_aggregate([0.5, 0.0]), int)
    assert scoring.task_aggregate([0.5, 1.0]) == pytest.approx(2 / 3)
    assert math.isnan(scoring.task_aggregate([0.5, float("nan")]))


def test_mia_auc_and_score():
    assert scoring.mia_auc([0.1, 0.2], [1.0, 2.0]) == 1.0  # members have lower loss: perfect attack
    assert scoring.mia_auc([1.0, 2.0], [0.1, 0.2]) == 0.0
    assert scoring.mia_auc([1.0, 0.1], [0.5, 0.5]) == 0.5
    assert scoring.mia_score(0.5) == 1.0 and scoring.mia_score(1.0) == 0.0 and scoring.mia_score(0.0) == 0.0
    assert scoring.mia_score(0.75) == 0.5
    with pytest.raises(ValueError):
        scoring.mia_auc([float("nan")], [1.0])


def test_final_score_needs_both_mmlu_and_mia():
    forget = _table([("a1sc1", "Task1", "x y", "z"), ("a1qa0", "Task1", "1", "2")])
    retain = _table([("c1sc1", "Task1", "m n", "m n"), ("c1qa0", "Task1", "k", "k")])
    tables = {"forget": forget, "retain": retain}
    without = score_generations(tables, {"member": [0.1], "nonmember": [0.2]})
    assert without.aggregate_score == -1 and without.final is None and "mia_final_score" not in without.to_dict()
    full = score_generations(tables, {"member": [0.1, 0.3], "nonmember": [0.2, 0.4]}, mmlu_average=0.5)
    assert full.mia_loss_acc == 0.75 and full.mia_final_score == 0.5
    assert full.task_aggregate == 1.0
    assert full.final == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert full.mmlu_gate() is True and full.mmlu_gate(0.6) is False


def test_results_round_trip_keeps_keys_order_and_types():
    forget = _table([("a1sc1", "Task1", "x y", "x y"), ("a1qa0", "Task1", "1", "1")])
    retain = _table([("c1sc1", "Task1", "m n", "m n"), ("c1qa0", "Task1", "k", "k")])
    result = score_generations({"forget": forget, "retain": retain}, {"member": [0.1], "nonmember": [0.2]}, 0.4)
    text = result.to_json()
    assert list(result.to_dict()) == ["forget-set", "retain-set", "mia_loss_acc", "mmlu_average", "aggregated-terms",
                                      "aggregate-score", "harmonic-mean-task-aggregate", "mia_final_score"]
    assert result.harmonic_mean_task_aggregate == 0 and '"harmonic-mean-task-aggregate": 0,' in text
    assert EvaluationResult.from_json(text).to_json() == text


def test_aggregate_command_prints_final_and_gate():
    out = CliRunner().invoke(main, ["aggregate", "--task-aggregate", "0.827", "--mia-score", "0.847",
                                    "--mmlu", "0.443", "--json"])
    assert out.exit_code == 0, out.output
    import json

    data = json.loads(out.output)
    assert data["aggregate-score"] == pytest.approx((0.827 + 0.847 + 0.443) / 3)
    assert data["mmlu_gate_passed"] is True
