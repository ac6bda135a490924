"""The organizers' entry point for SemEval-2025 Task 4: ``unlearn(model_in, model_out, forget, retain)``.

Self-contained: torch, transformers, accelerate, peft, pandas, rouge_score, scikit-learn (the organizers' scoring
script used it too), tqdm; never the ``evaluator``.
"""

from .data import SubmissionInputError
from .methods import METHODS
from .train import DEFAULT_METHOD, UnlearnOptions, UnlearnSettings, unlearn

__all__ = ["unlearn", "UnlearnSettings", "UnlearnOptions", "SubmissionInputError", "METHODS", "DEFAULT_METHOD"]
