"""The organizers' entry point for SemEval-2025 Task 4: ``unlearn(model_in, model_out, forget, retain)``."""
