"""The evaluator's modes and the settings every command shares, each written once (the CLI's choices and
defaults, the dry-run and the engine read them here).

- ``official``: SPEC 2 line by line (one row at a time, no attention mask); MMLU one prompt at a time,
  open-instruct's path.
- ``fast``: batched generation and loss passes; MMLU with the shared-header cache in batches.
"""

from __future__ import annotations

from evaluator.core.errors import InputError

OFFICIAL, FAST = "official", "fast"
MODES = (OFFICIAL, FAST)
DEFAULT_MODE = OFFICIAL
DTYPES = ("bfloat16", "float32", "float16")  # torch dtypes a checkpoint may be loaded in
DEFAULT_DTYPE = "bfloat16"  # SPEC 2: the official script loads in bfloat16
DEFAULT_BATCH_SIZE = 16  # fast mode's batch (generation, losses) and MMLU's batch
DEFAULT_MAX_NEW_TOKENS = 256  # SPEC 2
DEFAULT_NTRAIN = 5  # MMLU dev examples per prompt: open-instruct's default (SPEC 3)


def mmlu_batch_size(mode: str, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """MMLU inline with an evaluation: the official mode runs open-instruct's one-prompt-at-a-time path (batch
    1), fast mode the shared-header cache with the evaluation's batch size."""
    return 1 if mode == OFFICIAL else batch_size


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise InputError(f"unknown scoring mode {mode!r} ({' or '.join(MODES)})")
    return mode
