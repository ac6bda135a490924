"""Independent evaluator for SemEval-2025 Task 4 (LUME): the official scoring, exactly, and fast.

The evaluator never imports the submission package.
"""

__version__ = "0.1.0"
