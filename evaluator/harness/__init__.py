"""The organizer simulation: the stub data, the stub target, the dry-run, the one-file pack, the CI check and
the build cache.

Imports evaluator.core, evaluator.model and evaluator.analysis."""
