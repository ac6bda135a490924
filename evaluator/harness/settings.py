"""The dry-run's settings, torch-free (the CLI reads its defaults here without loading a model library)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from evaluator.analysis.bootstrap import DEFAULT_RESAMPLES
from evaluator.core.modes import DEFAULT_MODE, DEFAULT_NTRAIN
from evaluator.harness.pack import DEFAULT_PACKAGE
from evaluator.harness.stub import DEFAULT_OUT as DEFAULT_STUB

DEFAULT_OUT = Path("runs/dry-run")
KILL_GRACE_S = 5.0  # between SIGTERM and SIGKILL to the submission's process group


@dataclass
class DryRunSettings:
    submission: str = DEFAULT_PACKAGE  # a .py file, or the name of an importable module
    # The model handed to the submission: a checkpoint folder (or a Hugging Face id already in the local cache).
    # None: the stub target, built from ``data`` (a stub folder as make-stub writes it).
    model: str | None = None
    data: Path = DEFAULT_STUB  # with ``model``: forget/retain files in any layout evaluator.core.data accepts
    # The scoring's MIA documents (member.jsonl, nonmember.jsonl) and MMLU folder (dev/, test/). None: the
    # stub's for the stub target; with ``model``, not scored (MIA) or not run (MMLU and both gates).
    mia: Path | None = None
    mmlu_data: Path | None = None
    python: str | None = None  # the interpreter that runs the submission; None: this one (sys.executable)
    split: str = "train"  # one of STUB_SPLITS
    out: Path = DEFAULT_OUT
    time_limit_s: float | None = None  # None: scaled_time_limit
    mode: str = DEFAULT_MODE  # scoring mode of the evaluator (fast: batched, see evaluator.model.engine)
    ntrain: int = DEFAULT_NTRAIN  # MMLU dev examples (open-instruct's default)
    threads: int = 1  # torch threads for scoring and OMP_NUM_THREADS of the submission; 0: leave the defaults
    kill_grace_s: float = KILL_GRACE_S
    # Keyword arguments added to the organizers' four positional ones. Not what the organizers did: for quick
    # checks (a test's short run). Recorded in summary.json.
    submission_kwargs: dict = field(default_factory=dict)
    use_cache: bool = True  # reuse the before scores of the same target, data and scoring settings
    show_progress: bool = False
    report: bool = False  # write the report of the after scores (baseline: before) into out/report/
    report_bootstrap: int = DEFAULT_RESAMPLES  # bootstrap resamples of the report's intervals (0: none)
    report_seed: int = 0
