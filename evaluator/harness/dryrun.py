"""``unlearn-eval dry-run``: run a submission the way the organizers ran it (SPEC section 4), on the stub or on
a model and data of one's own.

1. Build or reuse the memorizing target (``evaluator.harness.target.build_target``), or take the model given
   with ``--model`` (a folder, or a Hugging Face id already in the local cache: ``evaluator.core.hub``), and
   copy it into ``--out``: the submission gets the copy, so a submission that writes into its input can spoil
   neither the cache nor the user's model.
2. Lay out the organizers' inputs from the data's split (the stub's, or ``--data`` in any layout
   ``evaluator.core.data`` accepts): ``inputs/forget/{forget.jsonl,forget.parquet}`` and
   ``inputs/retain/{retain.jsonl,retain.parquet}`` (rows ``id, input, output, task``).
3. Score the model ("before"; cached, see ``_cached_before``). MIA on the stub's documents or ``--mia``, MMLU on
   the stub's mini-MMLU or ``--mmlu-data``; with ``--model`` and without them, MIA is not scored and the MMLU
   gates are not run (said so in the summary and the table: not run is not passed).
4. Run ``unlearn(model_in, model_out, forget_dir, retain_dir)`` -- four positional arguments, as the
   organizers called it -- in a separate process: its own process group (killed whole at the time limit,
   SIGTERM then SIGKILL), stdout and stderr in ``submission.log``, the Hugging Face stack offline.
   The submission is a single ``.py`` file or an importable module name; the evaluator never imports it.
   ``--python`` runs it in another interpreter (the user's own environment), checked first: it must run
   ``--version`` and import the submission (``check_interpreter``); summary.json records what it is.
5. Check what it left: exactly one loadable checkpoint with its tokenizer at the top of the output folder
   (``AutoModelForCausalLM``/``AutoTokenizer``), and the input model folder byte for byte as it was.
6. Score the checkpoint ("after") -- also after a timeout or a crash when a loadable one is there: after the
   hour the organizers evaluated whatever single checkpoint was in the output folder -- apply both MMLU
   gates (absolute 0.371, relative 75% of the before MMLU) and place the final score on the published
   leaderboards (``resources/leaderboard.json``, ``evaluator.core.leaderboard``).
7. With ``--report``: the HTML and Markdown report (``evaluator.analysis.report``) of the after scores, with the before
   scores as its baseline and seeded bootstrap intervals, into ``--out/report/``.
8. Write ``summary.json`` and the after ``evaluation_results.jsonl`` atomically, print a table, and exit
   with the verdict's code (``EXIT_CODES``).

The time limit is the organizers' hour scaled by the rows handed over, the model's size and the hardware
(``scaled_time_limit``; the stub target gets about 85 s on a CPU); ``--time-limit`` sets it.
The submission process also finds it in ``$LUME_TIME_LIMIT_S``, which a submission may read to pace itself
(the organizers passed no such thing; their limit was simply the hour).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from evaluator.analysis.report import write_report
from evaluator.core.atomic import check_output_dir, write_text_atomic, write_with_atomic
from evaluator.core.data import ROW_COLUMNS, SPLITS, load_mia, load_split, locate_split
from evaluator.core.errors import InputError
from evaluator.core.gate import GATES, MMLU_GATE_7B, failed_gates, gate_condition, utility_gate, verdict_word
from evaluator.core.hub import resolve_model
from evaluator.core.leaderboard import placement
from evaluator.core.machine import hardware_key
from evaluator.core.modes import OFFICIAL, check_mode, mmlu_batch_size
from evaluator.core.numbers import format_number
from evaluator.core.results import RESULTS_FILE, EvaluationResult
from evaluator.harness.cache import changed_files, default_cache_dir, hash_data_files, store, tree_hashes
from evaluator.harness.check import SUMMARY_FILE
from evaluator.harness.corpora import model_files_only
from evaluator.harness.pack import locate
from evaluator.harness.settings import KILL_GRACE_S, DryRunSettings
from evaluator.harness.stub import MIA_FOLDERS, mia_folder
from evaluator.harness.target import TargetCheckFailed, build_target
from evaluator.model.engine import check_checkpoint
from evaluator.model.evaluate import EvaluationSettings, evaluate
from evaluator.model.mmlu import InlineMMLU

# ---------------------------------------------------------------------------------------------------
# Verdicts and exit codes. 1 stays Python's own (a crash of the dry-run itself), 2 the CLI's bad input.

VERDICT_OK = "ok"
VERDICT_RAISED = "raised"
VERDICT_TIMEOUT = "timeout"
VERDICT_NO_CHECKPOINT = "no-checkpoint"
VERDICT_UNLOADABLE = "unloadable"
VERDICT_NOT_ONE_CHECKPOINT = "not-one-checkpoint"
VERDICT_INPUT_MODIFIED = "input-modified"
VERDICT_GATE_FAILED = "gate-failed"

EXIT_CODES = {
    VERDICT_OK: 0,
    VERDICT_RAISED: 3,  # unlearn raised, or its process died with a non-zero status or a signal
    VERDICT_TIMEOUT: 4,  # still running at the time limit: killed (its leftover checkpoint is still scored)
    VERDICT_NO_CHECKPOINT: 5,  # finished, but the output folder is empty or missing
    VERDICT_UNLOADABLE: 6,  # the output folder holds files that AutoModelForCausalLM/AutoTokenizer cannot load
    VERDICT_NOT_ONE_CHECKPOINT: 6,  # more than one checkpoint (config.json) in the output folder
    VERDICT_INPUT_MODIFIED: 7,  # a file of the input model folder was changed, added or removed
    VERDICT_GATE_FAILED: 8,  # ran fine, but the after MMLU fails the absolute or the relative gate
}
# When several things went wrong, the verdict is the first of these (the cause, not its consequences).
VERDICT_PRIORITY = (VERDICT_TIMEOUT, VERDICT_RAISED, VERDICT_NO_CHECKPOINT, VERDICT_UNLOADABLE,
                    VERDICT_NOT_ONE_CHECKPOINT, VERDICT_INPUT_MODIFIED, VERDICT_GATE_FAILED)
# What the organizers would have seen, per verdict.
ORGANIZER_VIEW = {
    VERDICT_OK: "a finished run and one checkpoint to evaluate",
    VERDICT_RAISED: "a failed run; at best the checkpoint left in the output folder evaluated",
    VERDICT_TIMEOUT: "the run killed at the hour; whatever single checkpoint was in the output folder evaluated",
    VERDICT_NO_CHECKPOINT: "nothing to evaluate",
    VERDICT_UNLOADABLE: "a checkpoint their evaluation could not load: no score",
    VERDICT_NOT_ONE_CHECKPOINT: "more than the single checkpoint they evaluate in the output folder",
    VERDICT_INPUT_MODIFIED: "a submission that changed the model it was given",
    VERDICT_GATE_FAILED: "a score below the MMLU gate: not ranked on the 7B leaderboard",
}

# With --model, what is not scored when --mia or --mmlu-data is not given (summary.json "scoring"/"not_run",
# "gates"/"not_run", and the table).
MIA_NOT_SCORED = "MIA not scored (no --mia): no MIA AUC or MIA score, hence no final score and no placement"
MMLU_NOT_RUN = (f"MMLU not run (no --mmlu-data): the {' and '.join(GATES)} MMLU gates were not applied "
                f"(not run, which is not passed)")

# ---------------------------------------------------------------------------------------------------
# The time limit: the organizers' hour scaled by the work and the hardware.

ORGANIZER_LIMIT_S = 3600.0  # SPEC 4: a hard one-hour timeout
LUME_ROWS = 1112 + 1136  # the public train split (forget + retain rows), the size of what a submission was handed
LUME_7B_PARAMETERS = 6.9e9  # OLMo-7B-0724-Instruct, the larger (binding) of the two targets
# Peak dense throughput of the organizers' p4d.24xlarge (8 x A100, bfloat16: 8 x 312 TFLOP/s) over that of
# 2 CPU cores with AVX-512 (about 2 x 160 GFLOP/s in float32). An order-of-magnitude estimate, not a
# measurement: it makes the scaled limit about what a tiny model on 2 cores needs per row, as a 7B model on
# the p4d did.
HARDWARE_SPEEDUP = 7800.0
ORGANIZER_GPUS = 8  # the p4d's A100s: on a machine with CUDA GPUs, each is counted as one of them
# Below this, starting Python and importing torch and transformers (about 10 s on a busy 2-core machine)
# would eat the limit.
MIN_TIME_LIMIT_S = 60.0


def scaled_time_limit(rows: int, parameters: int, speedup: float = HARDWARE_SPEEDUP) -> float:
    """``max(60 s, 3600 s x rows/2248 x parameters/6.9e9 x speedup)``, rounded to 0.1 s.

    The organizers gave a 7B model (6.9e9 parameters) and 2248 rows (the public train split's forget and
    retain rows) one hour on their p4d.24xlarge. A training step costs about 6 x parameters x tokens FLOPs, so
    the same method needs time in proportion to ``rows x parameters``: the hour is scaled by both, relative to
    the 7B run, then multiplied by how much faster the p4d was than this machine (``speedup``,
    ``hardware_speedup``: 7800 for 2 CPU cores, 8/N with N CUDA GPUs counted as A100s). The 60 s floor leaves
    time to start Python and import torch and transformers. For the stub target (about 0.59M parameters,
    80 rows) on a CPU that is about 85 s; for OLMo-1B (1.18e9) and the 2248 rows on one GPU, about 82 min.
    ``time_limit_formula`` writes the computation out, as summary.json and the table say it."""
    work = (rows / LUME_ROWS) * (parameters / LUME_7B_PARAMETERS) * speedup
    return round(max(MIN_TIME_LIMIT_S, ORGANIZER_LIMIT_S * work), 1)


def hardware_speedup(gpus: int) -> tuple[float, str]:
    """How many times faster the organizers' machine was than this one, and the words for it: with no CUDA
    GPU, ``HARDWARE_SPEEDUP`` (the p4d's 8 A100 over 2 CPU cores, whatever the core count here: generous on
    more cores); with ``gpus`` of them, each counted as an A100, ``8 / gpus`` (generous on a newer GPU)."""
    if gpus <= 0:
        return HARDWARE_SPEEDUP, "the p4d's 8 A100 over 2 CPU cores"
    return ORGANIZER_GPUS / gpus, f"the p4d's 8 A100 over {gpus} GPU{'s' if gpus > 1 else ''} counted as A100s"


def time_limit_formula(rows: int, parameters: int, speedup: float) -> str:
    """The scaled limit written out with its inputs: ``max(60 s, 3600 s x 80/2248 rows x 589,824/6.9e9
    parameters x 7800) = 85.4 s``."""
    return (f"max({MIN_TIME_LIMIT_S:g} s, {ORGANIZER_LIMIT_S:g} s x {rows}/{LUME_ROWS} rows x "
            f"{parameters:,}/{LUME_7B_PARAMETERS / 1e9:g}e9 parameters x {speedup:g}) = "
            f"{scaled_time_limit(rows, parameters, speedup):g} s")


def count_parameters(model_dir: Path) -> int:
    """Number of weights, from the safetensors headers (no model load)."""
    total = 0
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise InputError(f"{model_dir}: no *.safetensors weights to size the time limit by (give --time-limit)")
    for file in files:
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():
                shape = handle.get_slice(name).get_shape()
                count = 1
                for size in shape:
                    count *= size
                total += count
    return total


# ---------------------------------------------------------------------------------------------------
# Settings and the report


@dataclass
class DryRunReport:
    summary: dict
    exit_code: int
    table: str


@dataclass(frozen=True)
class DryRunInputs:
    """What ``_checked_inputs`` found, before anything runs."""

    kind: str  # the submission: "file" or "module"
    target: str  # its absolute path, or the module name
    data: Path  # the stub folder, or (with --model) forget/retain data in any layout evaluator.core.data accepts
    model: Path | None  # --model resolved to its folder; None: the stub target, built from data
    mia: Path | None  # member.jsonl/nonmember.jsonl; None: MIA not scored
    mmlu: Path | None  # MMLU folder (dev/, test/); None: MMLU and both gates not run
    interpreter: dict  # what runs the submission (check_interpreter or this_interpreter)


LOG_FILE = "submission.log"
REPORT_DIR = "report"  # --report: report.html, report.md (+ its PNGs) and bootstrap.json
MARKER_FILE = ".lume-dry-run"  # marks --out as a dry-run folder, which a later dry-run may clear


# ---------------------------------------------------------------------------------------------------
# Pieces


def resolve_submission(spec: str, importable_here: bool = True) -> tuple[str, str]:
    """``("file", absolute path)`` or ``("module", name)``; checked without importing the submission. With
    ``importable_here`` false (``--python``: the module may live only in the other environment, where
    ``check_interpreter`` imports it) a module name is only checked to be one."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise InputError(f"{spec}: submission file not found")
        return "file", str(path.resolve())
    top = spec.split(".")[0]
    identifiers = all(p.isidentifier() for p in spec.split("."))
    if not importable_here and identifiers:
        return "module", spec
    try:
        # Only the top-level name: find_spec of "a.b" would import (run) package a in this process.
        found = importlib.util.find_spec(top) if identifiers else None
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise InputError(f"{spec}: --submission is neither a .py file nor an importable module name")
    return "module", spec


def prepare_out(out: Path) -> Path:
    """Create ``out``, or clear it when an earlier dry-run made it; refuse any other non-empty folder."""
    out = check_output_dir(Path(out).absolute())  # the submission runs elsewhere: hand it absolute paths
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER_FILE).is_file():
            raise InputError(f"{out}: --out holds files and is not a dry-run folder (no {MARKER_FILE}); "
                             f"choose another --out")
        for entry in out.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                _make_writable(entry)
                shutil.rmtree(entry)
            else:
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER_FILE).write_text("made by unlearn-eval dry-run; cleared by the next one\n", encoding="utf-8")
    return out


def _make_writable(folder: Path) -> None:
    # A submission may leave read-only files or folders behind; rmtree needs write permission on folders.
    for root, dirs, _files in os.walk(folder):
        for name in dirs:
            try:
                os.chmod(os.path.join(root, name), 0o755)
            except OSError:
                pass


def lay_out_inputs(data: Path, split: str, folder: Path) -> dict[str, Path | int]:
    """The organizers' two folders, each holding ``<name>.jsonl`` and ``<name>.parquet`` (same rows)."""
    paths: dict[str, Path | int] = {}
    for name in SPLITS:
        rows = load_split(data, name, split).loc[:, list(ROW_COLUMNS)].reset_index(drop=True)
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({c: row[c] for c in ROW_COLUMNS}, ensure_ascii=False) + "\n"
                        for row in rows.to_dict("records"))
        write_text_atomic(target / f"{name}.jsonl", lines)
        write_with_atomic(target / f"{name}.parquet", lambda tmp, df=rows: df.to_parquet(tmp, index=False))
        paths[name] = target
        paths[f"{name}_rows"] = len(rows)
    return paths


# Import the submission (``kind``, ``target``: a file or a module) as ``module`` and find its ``unlearn``: the
# launcher's first step, and all that ``check_interpreter``'s probe does in another interpreter.
IMPORT_SUBMISSION = r"""
if kind == "file":
    name = os.path.splitext(os.path.basename(target))[0]
    spec = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
else:
    module = importlib.import_module(target)
unlearn = getattr(module, "unlearn", None)
if not callable(unlearn):
    raise SystemExit(f"[dry-run] {target}: no callable unlearn() at top level")
"""

# The child process: import the submission (file or module), call unlearn with the four positional arguments.
LAUNCHER = r"""
import importlib, importlib.util, json, os, sys, time
kind, target, model_in, model_out, forget_dir, retain_dir, extra = sys.argv[1:]
started = time.monotonic()
""" + IMPORT_SUBMISSION + r"""
unlearn(model_in, model_out, forget_dir, retain_dir, **json.loads(extra))
print(f"[dry-run] unlearn() returned after {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
"""


@dataclass
class SubmissionRun:
    returncode: int | None
    seconds: float
    timed_out: bool
    log_tail: list[str]


def module_search_root(name: str) -> str | None:
    """The folder from which ``name``'s top-level package was found here (without importing it), so the
    submission's process imports the same code from any working folder (and past a stale editable install
    that reports the package as a namespace portion)."""
    try:
        location, _ = locate(name.split(".")[0])
    except InputError:
        return None
    return str(location.parent)


def submission_environment(time_limit_s: float | None, threads: int, search_root: str | None = None) -> dict[str, str]:
    """The submission's environment variables (``time_limit_s`` None: no ``$LUME_TIME_LIMIT_S``, for the probe)."""
    env = dict(os.environ)
    # Offline as on the organizers' machine for our purposes: nothing may be fetched from the hub.
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1", WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    if time_limit_s is not None:
        env["LUME_TIME_LIMIT_S"] = f"{time_limit_s:g}"
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    # A module submission given by name may live in the folder the dry-run was started from.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (search_root, os.getcwd(), env.get("PYTHONPATH", "")) if p)
    return env


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_submission(kind: str, target: str, arguments: list[Path], log_path: Path, time_limit_s: float,
                   env: dict[str, str], cwd: Path, kwargs: dict | None = None,
                   kill_grace_s: float = KILL_GRACE_S, python: str | None = None) -> SubmissionRun:
    """Run the submission in its own process group with a hard limit; the whole group is killed at the
    limit (SIGTERM, then SIGKILL after ``kill_grace_s``) and, after a normal exit, any process it left.
    ``python``: the interpreter to run it with (default: this one, ``sys.executable``)."""
    command = [python or sys.executable, "-c", LAUNCHER, kind, target, *map(str, arguments), json.dumps(kwargs or {})]
    started = time.monotonic()
    timed_out = False
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=cwd, env=env, start_new_session=True)
        group = process.pid  # start_new_session: the child leads a new session and process group
        try:
            process.wait(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _signal_group(group, signal.SIGTERM)
            try:
                process.wait(timeout=kill_grace_s)
            except subprocess.TimeoutExpired:
                pass
        finally:
            # Whatever is left of the group (the leader after a timeout, children it spawned in any case).
            _signal_group(group, signal.SIGKILL)
            process.wait()
    seconds = time.monotonic() - started
    text = log_path.read_text(encoding="utf-8", errors="replace")
    tail = [line for line in text.splitlines() if line.strip()][-8:]
    return SubmissionRun(process.returncode, round(seconds, 2), timed_out, tail)


# Run by --python's interpreter before the dry-run starts: what it is (printed first, one JSON line), then the
# submission imported as the launcher will import it (exit status 0: it imports and has unlearn()).
PROBE = r"""
import importlib, importlib.util, json, os, sys
from importlib import metadata
kind, target = sys.argv[1:]
def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
print(json.dumps({"executable": sys.executable, "prefix": sys.prefix, "torch": version("torch"),
                  "transformers": version("transformers")}), flush=True)
""" + IMPORT_SUBMISSION
PROBE_TIMEOUT_S = 300.0  # importing a submission imports torch and transformers: seconds on a busy machine


def this_interpreter() -> dict:
    """What summary.json records of the interpreter without ``--python``: this one."""
    return {"path": sys.executable, "given": False, "resolved": os.path.realpath(sys.executable),
            "version": f"Python {platform.python_version()}", "executable": sys.executable, "prefix": sys.prefix,
            "torch": torch.__version__, "transformers": transformers.__version__}


def check_interpreter(python: str, kind: str, target: str, env: dict[str, str]) -> dict:
    """``--python``: an executable that prints ``Python X.Y.Z`` for ``--version`` and imports the submission
    (with ``env``, in a scratch folder) as the launcher will; else one ``InputError`` line saying which. Returns
    what summary.json records: the path as given (absolute, symlinks kept: a venv's ``bin/python`` is one), the
    file it resolves to, ``--version``'s line, the interpreter's ``sys.executable``/``sys.prefix`` and its torch
    and transformers versions (None where not installed)."""
    path = Path(python).absolute()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise InputError(f"{python}: --python is not an executable file")
    try:
        done = subprocess.run([str(path), "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise InputError(f"{python}: --python does not run ({type(exc).__name__}: {exc})") from None
    printed = (done.stdout.strip() or done.stderr.strip()).splitlines()  # Python 2 printed it to stderr
    version = printed[0] if printed else ""
    if done.returncode != 0 or not version.startswith("Python "):
        raise InputError(f"{python}: --python is not a Python interpreter (`--version` printed {version[:80]!r}, "
                         f"exit status {done.returncode})")
    with tempfile.TemporaryDirectory(prefix="lume-dry-run-probe-") as scratch:
        try:
            probe = subprocess.run([str(path), "-c", PROBE, kind, target], stdin=subprocess.DEVNULL,
                                   capture_output=True, text=True, cwd=scratch, env=env, timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise InputError(f"{python}: --python took more than {PROBE_TIMEOUT_S:g} s to import the submission "
                             f"{target}") from None
    lines = probe.stdout.strip().splitlines()
    try:
        facts = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        facts = None
    if probe.returncode != 0 or not isinstance(facts, dict):
        errors = [line for line in probe.stderr.splitlines() if line.strip()]
        where = f"; it runs from sys.prefix {facts['prefix']}" if isinstance(facts, dict) else ""
        raise InputError(f"{python}: --python ({version}) cannot import the submission {target}: "
                         f"{errors[-1].strip() if errors else f'exit status {probe.returncode}'}{where}")
    return {"path": str(path), "given": True, "resolved": os.path.realpath(path), "version": version,
            "executable": facts.get("executable"), "prefix": facts.get("prefix"), "torch": facts.get("torch"),
            "transformers": facts.get("transformers")}


@dataclass
class OutputCheck:
    verdict: str | None  # None: one loadable checkpoint
    problem: str | None
    checkpoints: list[str]
    files: list[str]

    @property
    def scorable(self) -> bool:
        """Whether the top of the folder loads (possibly with extra checkpoints beside it)."""
        return self.verdict in (None, VERDICT_NOT_ONE_CHECKPOINT)


def inspect_output(folder: Path) -> OutputCheck:
    """Exactly one checkpoint, at the top of ``folder`` (the organizers loaded the folder itself), that
    ``AutoTokenizer`` and ``AutoModelForCausalLM`` load."""
    files = (sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
             if folder.is_dir() else [])
    if not files:
        what = "missing" if not folder.exists() else "empty"
        return OutputCheck(VERDICT_NO_CHECKPOINT, f"the output folder is {what} after the run", [], [])
    checkpoints = sorted(p.parent.relative_to(folder).as_posix() for p in folder.rglob("config.json"))
    if "." not in checkpoints:
        where = (f"; a config.json is in {', '.join(c + '/' for c in checkpoints)}, but the organizers loaded "
                 f"the output folder itself" if checkpoints else "")
        listed = ", ".join(files[:6]) + (", ..." if len(files) > 6 else "")
        return OutputCheck(VERDICT_UNLOADABLE,
                           f"no config.json at the top of the output folder (files: {listed}){where}",
                           checkpoints, files)
    try:
        check_checkpoint(folder)
        _load_checkpoint(folder)
    except InputError as exc:
        return OutputCheck(VERDICT_UNLOADABLE, str(exc), checkpoints, files)
    if len(checkpoints) > 1:
        others = ", ".join(c + "/" for c in checkpoints if c != ".")
        return OutputCheck(VERDICT_NOT_ONE_CHECKPOINT,
                           f"{len(checkpoints)} checkpoints in the output folder (the top one and {others}); "
                           f"the organizers expected one", checkpoints, files)
    return OutputCheck(None, None, checkpoints, files)


def _load_checkpoint(folder: Path) -> None:
    """Load as the organizers' evaluation did (bfloat16); raise InputError with the loader's complaint."""
    for what, load in (("tokenizer", lambda: AutoTokenizer.from_pretrained(folder)),
                       ("model", lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16))):
        try:
            loaded = load()
        except Exception as exc:  # transformers raises many types for a broken folder
            raise InputError(f"{folder}: AutoModelForCausalLM/AutoTokenizer cannot load the {what} "
                             f"({type(exc).__name__}: {exc})".splitlines()[0]) from None
        del loaded


# ---------------------------------------------------------------------------------------------------
# Scoring


def _scoring_key(model_hashes: dict[str, str], data: Path, split: str, settings: DryRunSettings,
                 mia: Path | None = None, mmlu: Path | None = None) -> str:
    """What decides the before scores: the model's files, the data files (a folder's every file, or the one
    file), the MIA and MMLU data scored (each folder's files; whether there is one), the scoring settings,
    the library versions and the hardware (``machine.hardware_key``: CPU kernel path, vendor, family, model,
    bfloat16 flags, CUDA device; bfloat16 rounding depends on the CPU, not on the kernel path alone, SPEC 6)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"model": model_hashes, "split": split, "mode": settings.mode,
                              "ntrain": settings.ntrain, "threads": settings.threads,
                              "mia": mia is not None, "mmlu": mmlu is not None,
                              "torch": torch.__version__, "transformers": transformers.__version__,
                              "hardware": hardware_key()}, sort_keys=True).encode())
    for path in (data, mia, mmlu):
        if path is not None:
            hash_data_files(digest, path)
    return digest.hexdigest()


def score_checkpoint(checkpoint: Path, data: Path, split: str, out: Path, settings: DryRunSettings,
                     mia: Path | None, mmlu: Path | None):
    """The evaluator on one checkpoint: generations and losses (official mode unless ``--mode fast``),
    MIA on ``mia`` and MMLU inline on ``mmlu`` (each skipped when None; ``run.json`` records what was done)."""
    scoring = EvaluationSettings(mode=settings.mode, show_progress=settings.show_progress)
    runner = (InlineMMLU(mmlu, out / "mmlu", settings.ntrain, mmlu_batch_size(scoring.mode, scoring.batch_size),
                         show_progress=settings.show_progress) if mmlu is not None else None)
    return evaluate(checkpoint, data, out, split=split, mia=mia, settings=scoring, mmlu_runner=runner)


def _cached_before(model_dir: Path, model_hashes: dict[str, str], inputs: DryRunInputs, settings: DryRunSettings,
                   out: Path, log):
    """Score the untouched model into ``out``, or copy an earlier identical scoring from the cache
    (``$LUME_HARNESS_CACHE/dry-run-before-<key>``, ``run.json`` included): the model and the data rarely
    change between runs."""
    key = _scoring_key(model_hashes, inputs.data, settings.split, settings, inputs.mia, inputs.mmlu)
    cached = default_cache_dir() / f"dry-run-before-{key[:16]}"
    if settings.use_cache and (cached / RESULTS_FILE).is_file():
        shutil.copytree(cached, out)
        log(f"dry-run: before scores reused from {cached}")
        return EvaluationResult.read(out / RESULTS_FILE), True
    result = score_checkpoint(model_dir, inputs.data, settings.split, out, settings, inputs.mia, inputs.mmlu)
    if settings.use_cache:
        store(out, cached)
    return result, False


def _result_figures(result) -> dict | None:
    if result is None:
        return None
    return {"final": result.final, "task_aggregate": result.task_aggregate, "mia_score": result.mia_final_score,
            "mia_auc": result.mia_loss_acc, "mmlu": result.mmlu_average,
            "forget_regurgitation": result.forget["overall-regurgitation-score"],
            "forget_knowledge": result.forget["overall-knowledge-score"],
            "retain_regurgitation": result.retain["overall-regurgitation-score"],
            "retain_knowledge": result.retain["overall-knowledge-score"],
            "results": result.to_dict()}


def write_dry_run_report(out: Path, scored: bool, settings: DryRunSettings, log: Callable[[str], None]) -> dict | None:
    """``--report``: the report of ``out/after`` with ``out/before`` (the target's scores, a copy under --out
    even when they came from the cache) as the baseline, into ``out/report/``. What summary.json records
    under "report": the files, or None when no checkpoint was scored (nothing to report on)."""
    if not scored:
        log("dry-run: no report: no checkpoint was scored after the run")
        return None
    files = write_report(out / "after", out / REPORT_DIR, baseline_dir=out / "before",
                         bootstrap=settings.report_bootstrap, seed=settings.report_seed)
    return {"html": str(files.html), "markdown": str(files.markdown),
            "bootstrap_json": str(files.bootstrap_json) if files.bootstrap_json is not None else None,
            "result": str(out / "after"), "baseline": str(out / "before"),
            "bootstrap": settings.report_bootstrap, "seed": settings.report_seed}


# ---------------------------------------------------------------------------------------------------
# The whole dry-run


def dry_run(settings: DryRunSettings, log: Callable[[str], None] = print) -> DryRunReport:
    """Run the steps of the module docstring; every input is checked before the submission starts."""
    started = time.monotonic()
    seconds: dict[str, float] = {}
    given = _checked_inputs(settings)
    kind, target, data = given.kind, given.target, given.data
    out = prepare_out(settings.out)
    with _scoring_environment(settings):
        began = time.monotonic()
        if given.model is None:
            try:
                build = build_target(data, progress=settings.show_progress, log=lambda line: log(line))
            except TargetCheckFailed as exc:
                raise InputError(f"{data}: the target built from it failed its self-check ({exc})") from None
            source = build.path
            model_summary = {"path": str(build.path), "given": None, "stub": True, "reused": build.reused}
        else:
            source = given.model
            model_summary = {"path": str(given.model), "given": settings.model, "stub": False, "reused": None}
        model_in = out / "model_in"
        # Symlinks followed: a Hugging Face cache snapshot is links to blobs. A target's mia/, calibration/ and
        # data/ stay behind: the organizers handed over the model alone.
        shutil.copytree(source, model_in, ignore=model_files_only)
        seconds["target"] = round(time.monotonic() - began, 1)

        inputs = lay_out_inputs(data, settings.split, out / "inputs")
        model_hashes = tree_hashes(model_in)
        rows = inputs["forget_rows"] + inputs["retain_rows"]
        parameters = count_parameters(model_in)
        speedup, hardware = hardware_speedup(torch.cuda.device_count())
        scaled = scaled_time_limit(rows, parameters, speedup)
        limit = settings.time_limit_s if settings.time_limit_s is not None else scaled

        began = time.monotonic()
        before, before_cached = _cached_before(model_in, model_hashes, given, settings, out / "before", log)
        seconds["before"] = round(time.monotonic() - began, 1)

        model_out = out / "model_out"
        model_out.mkdir()  # created empty, as a harness would; a submission may also replace it
        scratch = out / "cwd"  # the submission's working folder: stray files land here, not in the caller's
        scratch.mkdir()
        log(f"dry-run: running {target} ({kind}) with a {limit:g} s limit; its output goes to {out / LOG_FILE}")
        env = submission_environment(limit, settings.threads, module_search_root(target) if kind == "module" else None)
        run = run_submission(kind, target, [model_in, model_out, inputs["forget"], inputs["retain"]],
                             out / LOG_FILE, limit, env, scratch, settings.submission_kwargs, settings.kill_grace_s,
                             python=given.interpreter["path"])
        seconds["submission"] = run.seconds

        began = time.monotonic()
        changes = changed_files(model_hashes, tree_hashes(model_in))
        check = inspect_output(model_out)
        seconds["check"] = round(time.monotonic() - began, 1)

        problems = _run_problems(run, check, changes, limit)
        after = None
        if check.scorable:
            began = time.monotonic()
            try:
                after = score_checkpoint(model_out, data, settings.split, out / "after", settings,
                                         given.mia, given.mmlu)
            except InputError as exc:
                problems.append((VERDICT_UNLOADABLE, f"the evaluator cannot score the checkpoint: {exc}"))
            seconds["after"] = round(time.monotonic() - began, 1)

        if given.mmlu is None:
            gates = {"mmlu_average": None, "gates": [], "passed": None, "not_run": MMLU_NOT_RUN}
        else:
            gates = utility_gate(after.mmlu_average if after else None, MMLU_GATE_7B, before.mmlu_average)
        if after is not None and gates["passed"] is False:
            problems.append((VERDICT_GATE_FAILED, f"MMLU {after.mmlu_average:.4f} fails the "
                                                  f"{' and '.join(failed_gates(gates))} gate"))
        verdict = min((p[0] for p in problems), key=VERDICT_PRIORITY.index, default=VERDICT_OK)
        report = None
        if settings.report:
            began = time.monotonic()
            report = write_dry_run_report(out, after is not None, settings, log)
            seconds["report"] = round(time.monotonic() - began, 1)
        seconds["total"] = round(time.monotonic() - started, 1)

        summary = {
            "verdict": verdict,
            "exit_code": EXIT_CODES[verdict],
            "organizers_would_see": ORGANIZER_VIEW[verdict],
            "problems": [{"verdict": v, "message": m} for v, m in problems],
            "submission": {"given": settings.submission, "kind": kind, "target": target,
                           "returncode": run.returncode, "log": LOG_FILE, "log_tail": run.log_tail,
                           "extra_kwargs": settings.submission_kwargs, "interpreter": given.interpreter},
            "time": _time_summary(settings, run, limit, rows, parameters, speedup, hardware),
            "input_model_unchanged": not changes,
            "input_model_changes": changes,
            "checkpoint": {"loadable": check.scorable and after is not None, "problem": check.problem,
                           "checkpoints": check.checkpoints, "files": check.files[:50]},
            "scoring": _scoring_summary(settings, given, before_cached),
            "before": _result_figures(before),
            "after": _result_figures(after),
            "gates": gates,
            "placement": placement(after.final if after else None, after.mmlu_average if after else None),
            "target": model_summary,
            "report": report,
            "seconds": seconds,
        }
        if after is not None:
            after.write(out / RESULTS_FILE)
        write_text_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        return DryRunReport(summary, EXIT_CODES[verdict], format_summary(summary))


def _checked_inputs(settings: DryRunSettings) -> DryRunInputs:
    """The submission, the model, the data, the MIA and MMLU data scored, and the interpreter (``--python``
    imports the submission here); InputError before anything runs."""
    check_mode(settings.mode)
    if settings.time_limit_s is not None and not settings.time_limit_s > 0:
        raise InputError(f"--time-limit must be positive, not {settings.time_limit_s}")
    if settings.report and settings.report_bootstrap < 0:
        raise InputError(f"--bootstrap must be 0 or more, not {settings.report_bootstrap}")
    kind, target = resolve_submission(settings.submission, importable_here=settings.python is None)
    data = Path(settings.data)
    mia = Path(settings.mia) if settings.mia is not None else None
    mmlu = Path(settings.mmlu_data) if settings.mmlu_data is not None else None
    model = None
    if settings.model is None:  # the stub target, trained on the stub's rows, MIA members and mini-MMLU
        for needed in (data / MIA_FOLDERS["train"] / "member.jsonl", data / "mmlu"):
            if not needed.exists():
                raise InputError(f"{needed}: not found (--data must be a stub folder as make-stub writes it)")
        mia = mia if mia is not None else mia_folder(data, settings.split)
        mmlu = mmlu if mmlu is not None else data / "mmlu"
    else:
        model = check_checkpoint(resolve_model(settings.model, allow_download=False))
        for name in SPLITS:
            locate_split(data, name, settings.split)  # the rows themselves are checked as they are laid out
    if settings.mia is not None:
        load_mia(mia)
    if mmlu is not None and not mmlu.is_dir():
        raise InputError(f"{mmlu}: --mmlu-data is not a folder (expected MMLU's dev/ and test/ CSV folders, or the "
                         f"cais/mmlu parquet layout)")
    if settings.python is None:
        interpreter = this_interpreter()
    else:
        env = submission_environment(None, settings.threads, module_search_root(target) if kind == "module" else None)
        interpreter = check_interpreter(settings.python, kind, target, env)
    return DryRunInputs(kind, target, data, model, mia, mmlu, interpreter)


@contextlib.contextmanager
def _scoring_environment(settings: DryRunSettings) -> Iterator[None]:
    """torch threads as ``settings.threads`` asks, and quiet Hugging Face loading unless progress is wanted;
    both restored afterwards."""
    threads = torch.get_num_threads()
    if settings.threads:
        # One thread: on a shared 2-core machine a second one mostly waits for the other processes.
        torch.set_num_threads(settings.threads)
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    if not settings.show_progress:  # the table is the output; loading bars and tokenizer notes are noise here
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _run_problems(run: SubmissionRun, check: OutputCheck, changes: list[str], limit: float) -> list[tuple[str, str]]:
    """(verdict, message) for what the submission's process and its output folder show, before scoring."""
    problems: list[tuple[str, str]] = []
    if run.timed_out:
        problems.append((VERDICT_TIMEOUT, f"still running at the {limit:g} s limit: its process group was killed"))
    elif run.returncode != 0:
        how = (f"killed by signal {-run.returncode}" if run.returncode < 0
               else f"exited with status {run.returncode}")
        last = run.log_tail[-1] if run.log_tail else "(no output)"
        problems.append((VERDICT_RAISED, f"the submission {how} after {run.seconds:.1f} s; last log line: {last}"))
    if check.verdict is not None:
        problems.append((check.verdict, check.problem))
    if changes:
        problems.append((VERDICT_INPUT_MODIFIED, f"the input model folder changed ({'; '.join(changes[:5])}"
                                                 f"{'; ...' if len(changes) > 5 else ''})"))
    return problems


def _time_summary(settings: DryRunSettings, run: SubmissionRun, limit: float, rows: int, parameters: int,
                  speedup: float, hardware: str) -> dict:
    """The limit, the time used, and the scaled limit's inputs and formula (``scaled_time_limit``), also when
    ``--time-limit`` replaced it."""
    return {"limit_s": limit, "used_s": run.seconds, "timed_out": run.timed_out,
            "limit_given": settings.time_limit_s is not None,
            "scale": {"rows": rows, "parameters": parameters, "lume_rows": LUME_ROWS,
                      "lume_parameters": LUME_7B_PARAMETERS, "hardware_speedup": speedup, "hardware": hardware,
                      "floor_s": MIN_TIME_LIMIT_S, "organizer_limit_s": ORGANIZER_LIMIT_S,
                      "scaled_limit_s": scaled_time_limit(rows, parameters, speedup),
                      "formula": time_limit_formula(rows, parameters, speedup)}}


def _scoring_summary(settings: DryRunSettings, given: DryRunInputs, before_cached: bool) -> dict:
    not_run = ([MIA_NOT_SCORED] if given.mia is None else []) + ([MMLU_NOT_RUN] if given.mmlu is None else [])
    return {"mode": settings.mode, "dtype": "bfloat16", "data": str(given.data), "split": settings.split,
            "mia": None if given.mia is None else str(given.mia),
            "mmlu": None if given.mmlu is None else str(given.mmlu), "not_run": not_run,
            "mmlu_ntrain": settings.ntrain, "threads": settings.threads, "before_cached": before_cached,
            "note": ("official: SPEC 2 one row at a time" if settings.mode == OFFICIAL else
                     "fast: batched generation; where the model is unsure a greedy choice may differ "
                     "from the official one")}


# ---------------------------------------------------------------------------------------------------
# The printed table


def format_summary(summary: dict) -> str:
    before, after = summary["before"] or {}, summary["after"] or {}
    t = summary["time"]
    sub = summary["submission"]
    own = summary["target"].get("given")
    lines = [f"dry-run of {sub['given']} ({sub['kind']}) on {'the model ' + own + ' and ' if own else ''}"
             f"{summary['scoring']['data']} "
             f"({summary['scoring']['split']} split, {t['scale']['rows']} rows), "
             f"scoring: {summary['scoring']['mode']}",
             f"time: {t['used_s']:.1f} s of a {t['limit_s']:g} s limit ({100 * t['used_s'] / t['limit_s']:.0f}%)"
             + ("" if t["limit_given"] else
                f"  [the organizers' hour scaled by rows x model size, floor {t['scale']['floor_s']:g} s]")
             + ("  TIMED OUT" if t["timed_out"] else ""),
             f"      {'scaled ' if t['limit_given'] else ''}limit = {t['scale']['formula']}  "
             f"[x {t['scale']['hardware_speedup']:g}: {t['scale']['hardware']}]"
             + ("; --time-limit given instead" if t["limit_given"] else "")]
    interpreter = sub.get("interpreter") or {}
    if interpreter.get("given"):
        lines.append(f"interpreter: {interpreter['path']} ({interpreter['version']}, torch {interpreter['torch']}, "
                     f"transformers {interpreter['transformers']})")
    lines += ["", f"{'':28} {'before':>8} {'after':>8}"]
    rows = [("forget regurgitation", "forget_regurgitation"), ("forget knowledge", "forget_knowledge"),
            ("retain regurgitation", "retain_regurgitation"), ("retain knowledge", "retain_knowledge"),
            ("task aggregate", "task_aggregate"), ("MIA AUC", "mia_auc"), ("MIA score", "mia_score"),
            ("MMLU average", "mmlu"), ("final", "final")]
    for label, key in rows:
        lines.append(f"{label:28} {format_number(before.get(key)):>8} {format_number(after.get(key)):>8}")
    for g in summary["gates"]["gates"]:
        condition = gate_condition(g, reference="before")
        lines.append(f"{'MMLU gate ' + g['gate'] + ' (' + condition + ')':47} {verdict_word(g['passed']):>8}")
    for note in summary["scoring"].get("not_run", []):
        lines.append(f"  {note}")
    p = summary["placement"]
    if "7b" in p:
        def place(entry):
            if entry["rank"] is None:
                return entry["note"]
            near = []
            if entry["behind"]:
                near.append(f"behind {entry['behind']['team']} {entry['behind']['final']:.3f}")
            if entry["ahead_of"]:
                near.append(f"ahead of {entry['ahead_of']['team']} {entry['ahead_of']['final']:.3f}")
            return f"#{entry['rank']} of {entry['of']} ({', '.join(near)})"
        lines += ["", f"placement of the after final {after['final']:.3f} on the published leaderboards "
                      "(stub figures are not challenge figures: this only shows where the number would sit):",
                  f"  7B: {place(p['7b'])}", f"  1B: {place(p['1b'])}",
                  f"  above {p['7b_baselines_beaten']} of the organizers' {p['7b_baselines']} 7B baselines"]
    lines.append("")
    lines.append(f"verdict: {summary['verdict']} (exit {summary['exit_code']}): the organizers would have seen "
                 f"{summary['organizers_would_see']}")
    for problem in summary["problems"]:
        lines.append(f"  - {problem['verdict']}: {problem['message']}")
    if summary["input_model_unchanged"]:
        lines.append("  input model folder unchanged (sha256 of every file)")
    report = summary.get("report")
    if report:
        lines += ["", f"report: {report['html']} (after, with before as the baseline; "
                      f"{report['bootstrap']} bootstrap resamples, seed {report['seed']}; "
                      f"Markdown: {report['markdown']})"]
    return "\n".join(lines)
