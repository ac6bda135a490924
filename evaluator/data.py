"""Compatibility: ``evaluator.data`` is now ``evaluator.core.data``. Kept for code outside the evaluator that
still imports the old path (benchmarks/bench_methods.py); new code imports the new path."""

from evaluator.core.data import load_split

__all__ = ["load_split"]
