"""Compatibility: ``evaluator.mmlu`` is now ``evaluator.model.mmlu``. Kept for code outside the evaluator
that still imports the old path (benchmarks/bench_methods.py); new code imports the new path."""

from evaluator.model.mmlu import InlineMMLU

__all__ = ["InlineMMLU"]
