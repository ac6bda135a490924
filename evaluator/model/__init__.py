"""Everything that loads a checkpoint: the engine (all model I/O), an evaluation run, its resume journal,
MMLU's forward passes and the extra MIA attacks' token statistics.

Imports only evaluator.core (and torch, transformers, accelerate)."""
