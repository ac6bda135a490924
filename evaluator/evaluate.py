"""Compatibility: ``evaluator.evaluate`` is now ``evaluator.model.evaluate`` (``score_directory``:
``evaluator.core.tables``). Kept for code outside the evaluator that still imports the old path
(benchmarks/bench_methods.py, tests/test_submission_runtime.py); new code imports the new paths."""

from evaluator.core.tables import score_directory
from evaluator.model.evaluate import EvaluationSettings, evaluate

__all__ = ["EvaluationSettings", "evaluate", "score_directory"]
