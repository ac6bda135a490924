"""``unlearn()``: the organizers' entry point, and the one training loop every method runs in.

The loop runs under accelerate: one process on CPU, DDP over several GPUs with ``accelerate launch``, and
DeepSpeed ZeRO-3 when accelerate is configured for it. It knows its time budget, scores the model on a
selection slice of the given rows every so often, and keeps the single best checkpoint so far in the
output folder, written atomically (see ``checkpoint.py``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoint, pull_back
from .calibration import (
    SWAP_RULES,
    calibration_documents,
    document_level,
    document_losses,
    documents_by_task,
    reference_documents,
    swapped_source,
)
from .data import Row, SubmissionInputError, collate, encode_row, load_rows, split_selection_rows
from .hub import resolve_model
from .methods import METHODS, LossInputs, get_method, gradient_difference
from .selection import SPLITS, SelectionScore, score_model

DEFAULT_METHOD = "capped_gd"
LOG_FILE = "unlearning_log.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


# With lr_distance: a share of the rate kept however close the forget documents already sit to the ceiling
# (there is still the retain loss to descend, and the level moves as the model is trained).
MIN_RATE_SHARE = 0.05

MIXED_PRECISION = ("auto", "bfloat16", "no")  # UnlearnSettings.mixed_precision

MEASURED = "measured"  # forget_nll_ceiling: measure the level on the model (calibration.py)

# Set by `unlearn-eval dry-run` to its hard limit; the organizers set nothing (their limit was the hour).
TIME_LIMIT_VARIABLE = "LUME_TIME_LIMIT_S"


@dataclass
class UnlearnSettings:
    """Every knob, with the defaults chosen by ``benchmarks/bench_methods.py`` (README, "Submission")."""

    method: str = DEFAULT_METHOD
    learning_rate: float = 3e-4
    # When set, the learning rate is the one for a model of this hidden size, scaled by lr_width / the model's
    # hidden size (as muP scales Adam's rate with width): 1e-3 at 128 is 5e-4 at 256, ~6e-5 for OLMo-1B
    # (2048) and ~3e-5 for OLMo-7B (4096), where fine-tuning rates sit. None: learning_rate as given.
    lr_width: int | None = None
    # When set, under a ceiling: the rate is also scaled by min(1, distance / lr_distance), the distance (nats/
    # token) from the forget documents' median loss to the ceiling, both measured before training. A short
    # way to go takes small steps: on a target that learned the members' kind before memorizing them (the
    # level 1.6 nats/token above the members), full steps carried the rows past the level between two
    # selection passes and a retain group with them (final 0.76); a long way (text of a kind never learned,
    # 11.5 above) keeps the full rate. None or 0: not scaled.
    lr_distance: float | None = None
    epochs: float = 5.0  # passes over the forget rows; the run length unless max_steps is set
    # Under a ceiling, the run goes on past its planned steps (up to this many times them, and the clock)
    # while more than `extension_threshold` of the forget rows of the last planned epoch's worth of steps
    # were still below the ceiling: a small forget set, or a level far above where the rows start, takes more
    # steps to reach than `epochs` gives. 1: never.
    max_extension: float = 1.0
    extension_threshold: float = 0.2
    # ... or while the last selection pass's membership attack still told the forget documents from documents
    # of their kind never seen by their lower loss (AUC above this): the attack's own view of "not there yet".
    # The ceiling is then raised to where those documents sit now: training moves them too (on a target whose
    # unseen documents are of another kind, from 11.5 to 20 nats/token while the forget documents were
    # ascended), so rows past the level measured before training can still sit below them. None or 1: the
    # rows' share alone.
    extension_auc: float | None = None
    max_steps: int | None = None
    batch_size: int = 4  # forget rows per step and process
    retain_batch_size: int | None = None  # retain rows per step and process (default: batch_size)
    chunk_size: int = 8  # forget rows per chunk (sequential_gd)
    forget_weight: float = 1.0
    retain_weight: float = 1.0
    beta: float = 0.1  # NPO / SimNPO temperature
    gamma: float = 0.0  # SimNPO margin
    # Stop ascending on forget rows whose loss is above this; "measured": the level of documents of their kind
    # the model never saw, measured on this model before training (calibration.document_level).
    forget_nll_ceiling: float | str | None = None
    # Documents of the members' kind the model never saw (a folder of .jsonl/.txt files, calibration.py): the
    # level and the selection's membership score are measured on them instead of on swapped documents. None:
    # those baked into the packed file by `unlearn-eval pack --calibration-docs`, if any.
    calibration_docs: str | None = None
    # Without calibration documents, which words the swapped documents swap (calibration.SWAP_RULES):
    # "capitalized" (every capitalized word, number, e-mail address) or "proper_nouns" (not the capitalized
    # word opening a sentence). On the memorizing stub targets the first comes nearer the unseen documents'
    # level, on the targets that learned the members' kind first the second (docs/methods.md).
    swapped_words: str = "capitalized"
    # The tasks whose documents the membership attack scores (comma-separated names; None: every task). The
    # level (the calibration documents', else these tasks' swapped documents') and the selection's attack are
    # then these tasks' alone, and the other tasks' forget rows stop at the level of their own task's swapped
    # documents. The public release's 150 MIA members are all Task3 forget documents (real Wikipedia
    # biographies) and its nonmembers are of that kind: with them as calibration documents, their level is
    # Task3's, and ascending the stories and synthetic biographies of Task1 and Task2 up to it cost the retain
    # set for nothing the attack scores (docs/methods.md, "Only the tasks the attack scores").
    mia_tasks: str | None = None
    # Under mia_tasks, the other tasks' forget rows stop at this share of their own task's level. The attack
    # does not score them, so less may do (0.25 was better on the small targets that only memorized), but on
    # the real-text target with 8 MIA documents a side their full level was better (docs/methods.md, "A share
    # of their own level").
    other_tasks_share: float = 1.0
    # Under a ceiling: weight of a second forget term beside the ascent, the cross-entropy from a target that puts
    # each label token at the level (methods.level_target_term). Off by default: it raised the task aggregate
    # (0.85 -> 0.96 on the 8-document real-text target) but the final on some targets only; calibrated it lost
    # 0.08 on pretrained-medium, and on the foreign-nonmembers target it ran past the level (docs/methods.md, "A
    # target at the level beside the ascent").
    level_target_weight: float = 0.0
    # After the run, this many selection passes search the straight line from the model handed over to the best
    # checkpoint (and past it), theta0 + alpha (theta* - theta0), for the alpha at which the selection's attack
    # no longer tells the forget documents from their references (AUC 0.5): alpha in [1 - span, 1) when the
    # members ran past the references, (1, 1 + span] when they stopped short; the best by the selection's
    # score is kept (pull_back.py). 0: off (capped_gd: 4). Not under ZeRO-3, nor without a ceiling and its
    # references.
    pull_back_passes: int = 0
    pull_back_span: float = 0.1
    ascent_taper: float = 0.0  # the ascent's push fades over this share of the ceiling below it (methods.ascent_term)
    sc_loss_on_prompt: bool = True  # sentence-completion rows: loss on the whole passage, not just the continuation
    lora_rank: int | None = None  # 0: full-parameter; >0: LoRA of that rank, merged before saving; None: see _auto_lora
    lora_alpha: float | None = None  # default 2 * rank
    gradient_checkpointing: bool = False
    max_length: int = 512
    max_grad_norm: float = 1.0
    # Of each (task, kind) group, kept out of training to pick the best checkpoint by. 0: every row is trained
    # on and the selection slice is a sample of trained rows; the organizers score every forget row, and a
    # held-out row is never unlearned (10% of the real 1,112-row forget set: ~45 rows, 13 whole passages).
    holdout_fraction: float = 0.0
    max_selection_rows: int = 48  # per split, about (held-out rows at most this, plus top-ups to this / 6 a group)
    evaluations: int = 10  # selection passes over the run (plus one on the untouched model)
    # When the passes that `evaluations` plans and the steps still planned (past them, an epoch's worth) would
    # not fit the time left, the passes are spaced out so that they take at most what the steps leave, and never
    # less than this share of the time left (pass_interval): on an OLMo-1B-shaped model under the dry-run's 159 s a pass
    # took 12 s against 0.5 s a step, the passes ate 0.8-0.9 of the run and it stopped at step 40 of 50.
    selection_time_share: float = 0.25
    pace_selection: bool = True  # False: a pass every `evaluations`-th of the planned steps, whatever the clock says
    # The selection weighs the membership score of the forget documents (calibration.membership_attack) with
    # the task metrics, as the official final score does; at most this many forget documents (twice as many
    # references) per pass.
    selection_mia: bool = True
    max_mia_documents: int = 64
    eval_batch_size: int = 16
    time_budget_s: float = 3600.0  # the organizers kill the run after one hour ($LUME_TIME_LIMIT_S when set)
    safety_margin_s: float | None = None  # default: 10% of the budget
    save_initial: bool = True  # first checkpoint = the untouched model, so the folder is never empty for long
    seed: int = 0
    train_dtype: str | None = None  # the weights' dtype while training; default float32 (bfloat16 under ZeRO-3)
    # bfloat16 autocast over float32 weights: "auto" on a GPU, "bfloat16" also on CPU, "no" never. Weights kept in
    # bfloat16 lose every Adam step smaller than half their bfloat16 spacing: at the default's rate on OLMo-1B's
    # shape (2.8e-5) that is about three quarters of them, and its bfloat16 run on one H100 left the model as it
    # was (docs/methods.md). With LoRA the frozen base is cast to bfloat16 and the adapters stay float32.
    mixed_precision: str = "auto"
    selection_dtype: str = "bfloat16"  # what the organizers load the checkpoint in: greedy choices depend on it
    trust_remote_code: bool = False
    verbose: bool = True


# The name before the evaluator and the submission agreed on "Settings" for such classes.
UnlearnOptions = UnlearnSettings

# Per-method settings that differ from the shared defaults (each method's own, see methods.METHODS).
METHOD_DEFAULTS: dict[str, dict] = {name: dict(method.defaults) for name, method in METHODS.items()}

# Settings baked into the packed file by `unlearn-eval pack --set NAME=VALUE` (the organizers' call passes four
# paths and nothing else): they replace the method's defaults, and options given to unlearn() replace them.
# Empty in the package.
BAKED_SETTINGS: dict = {}

# What a setting's annotation (UnlearnSettings) accepts; an int is a float too.
_ANNOTATION_TYPES = {"float": (int, float), "int": (int,), "str": (str,), "bool": (bool,), "None": (type(None),)}


def _check_types(settings: dict) -> None:
    """One line naming the setting whose value is not of its annotated type: a baked "learning_rate=abc" would
    otherwise fail deep in the run, on the organizers' machine."""
    annotations = {f.name: f.type for f in dataclasses.fields(UnlearnSettings)}
    for name, value in settings.items():
        kinds = [part.strip() for part in str(annotations[name]).split("|")]
        allowed = tuple(t for kind in kinds for t in _ANNOTATION_TYPES.get(kind, (object,)))
        if not isinstance(value, allowed) or (isinstance(value, bool) and "bool" not in kinds):
            raise SubmissionInputError(f"baked setting {name}: {value!r} is not of type {annotations[name]}")


def resolve_options(options: dict) -> UnlearnSettings:
    known = {f.name for f in dataclasses.fields(UnlearnSettings)}
    for given, where in ((BAKED_SETTINGS, "baked setting(s)"), (options, "option(s)")):
        unknown = sorted(set(given) - known)
        if unknown:
            raise SubmissionInputError(f"unknown {where} {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    _check_types(BAKED_SETTINGS)  # a Python caller's own values are the caller's (a Path for a folder is fine)
    chosen = {**BAKED_SETTINGS, **{k: v for k, v in options.items() if v is not None}}
    method = chosen.get("method", DEFAULT_METHOD)
    if method not in METHODS:
        raise SubmissionInputError(f"unknown method {method!r} (one of {', '.join(METHODS)})")
    merged = {**METHOD_DEFAULTS[method], **chosen}
    if merged.get("time_budget_s") is None and os.environ.get(TIME_LIMIT_VARIABLE):
        # The dry-run's hard limit (the organizers' hour scaled to the stub): pace the run to it.
        try:
            merged["time_budget_s"] = float(os.environ[TIME_LIMIT_VARIABLE])
        except ValueError:
            raise SubmissionInputError(f"${TIME_LIMIT_VARIABLE} must be a number of seconds, "
                                       f"not {os.environ[TIME_LIMIT_VARIABLE]!r}") from None
    resolved = UnlearnSettings(**merged)
    if resolved.batch_size < 1 or resolved.learning_rate <= 0 or resolved.time_budget_s <= 0:
        raise SubmissionInputError("batch_size, learning_rate and time_budget_s must be positive")
    if resolved.lr_distance is not None and resolved.lr_distance < 0:
        raise SubmissionInputError("lr_distance must be a distance in nats/token (0: the rate not scaled)")
    ceiling = resolved.forget_nll_ceiling
    if isinstance(ceiling, str) and ceiling != MEASURED:
        try:
            resolved.forget_nll_ceiling = float(ceiling)
        except ValueError:
            raise SubmissionInputError(f"forget_nll_ceiling must be a number or {MEASURED!r}, "
                                       f"not {ceiling!r}") from None
    if resolved.mixed_precision not in MIXED_PRECISION:
        raise SubmissionInputError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, "
                                   f"not {resolved.mixed_precision!r}")
    if not 0 <= resolved.selection_time_share <= 1:
        raise SubmissionInputError("selection_time_share must be in [0, 1]")
    if not 0 <= resolved.holdout_fraction < 1:
        raise SubmissionInputError("holdout_fraction must be in [0, 1)")
    if resolved.swapped_words not in SWAP_RULES:
        raise SubmissionInputError(f"swapped_words must be one of {', '.join(SWAP_RULES)}, "
                                   f"not {resolved.swapped_words!r}")
    if resolved.calibration_docs is not None:
        calibration_documents(resolved.calibration_docs)  # a bad folder fails here, before anything is written
    if not 0 < resolved.other_tasks_share <= 1:
        raise SubmissionInputError(f"other_tasks_share must be in (0, 1], not {resolved.other_tasks_share!r}")
    if resolved.level_target_weight < 0:
        raise SubmissionInputError(f"level_target_weight must be >= 0, not {resolved.level_target_weight!r}")
    if resolved.level_target_weight and (resolved.forget_nll_ceiling is None
                                         or get_method(resolved.method).loss is not gradient_difference):
        raise SubmissionInputError("level_target_weight needs a method that ascends under a ceiling (capped_gd, or "
                                   "gradient_difference / sequential_gd with forget_nll_ceiling)")
    if resolved.pull_back_passes < 0 or not 0 < resolved.pull_back_span < 1:
        raise SubmissionInputError(f"pull_back_passes must be >= 0 and pull_back_span in (0, 1), not "
                                   f"{resolved.pull_back_passes!r} and {resolved.pull_back_span!r}")
    if resolved.mia_tasks is not None and not _task_names(resolved.mia_tasks):
        raise SubmissionInputError(f"mia_tasks must name at least one task, not {resolved.mia_tasks!r}")
    return resolved


def _task_names(text: str | None) -> list[str]:
    """The task names of a comma-separated setting (``mia_tasks``)."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def check_mia_tasks(forget_rows: list[Row], options: UnlearnSettings) -> None:
    """Every task ``mia_tasks`` names has forget rows (a misspelt name would silently score nothing)."""
    present = sorted({row.task for row in forget_rows})
    missing = [name for name in _task_names(options.mia_tasks) if name not in present]
    if missing:
        raise SubmissionInputError(f"mia_tasks: no forget row of task(s) {', '.join(missing)} "
                                   f"(the forget set's tasks: {', '.join(present)})")


def check_model_dir(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise SubmissionInputError(f"{path}: input model folder not found")
    if not (path / "config.json").is_file():
        raise SubmissionInputError(f"{path}: no config.json, not a Hugging Face model folder")
    if not (any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))):
        raise SubmissionInputError(f"{path}: no model weights (*.safetensors or pytorch_model*.bin)")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise SubmissionInputError(f"{path}: no tokenizer (none of {', '.join(TOKENIZER_FILES)})")
    return path


def check_output_dir(output: str | Path, model_dir: Path) -> Path:
    output = Path(output)
    resolved_out, resolved_in = output.resolve(), model_dir.resolve()
    if resolved_out == resolved_in:
        raise SubmissionInputError(f"{output}: the output folder is the input model folder "
                                   f"(the input is never modified; choose another output folder)")
    if resolved_in in resolved_out.parents or resolved_out in resolved_in.parents:
        raise SubmissionInputError(f"{output}: the output folder and the input model folder {model_dir} "
                                   f"contain one another (the input is never modified)")
    if output.exists() and not output.is_dir():
        raise SubmissionInputError(f"{output}: the output path exists and is not a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / "config.json").is_file():
        raise SubmissionInputError(f"{output}: the output folder holds files and no checkpoint; "
                                   f"refusing to replace them")
    return output


def unlearn(input_path_to_unlearning_candidate_model, output_path_to_write_unlearned_model,
            path_to_forget_set, path_to_retain_set, **options) -> dict:
    """Unlearn the forget set from the model, keep the retain set, and leave the best checkpoint found
    within the time budget in the output folder. Every input is checked before anything is written. The
    model is a folder or a Hugging Face id (``owner/name[@revision]``) already in the local cache.
    Returns a summary (method, steps, selection score of the saved checkpoint, seconds)."""
    started = time.monotonic()
    resolved = resolve_options(options)
    model_dir = check_model_dir(resolve_model(input_path_to_unlearning_candidate_model))
    output = check_output_dir(output_path_to_write_unlearned_model, model_dir)
    forget_rows = load_rows(path_to_forget_set, "forget")
    check_mia_tasks(forget_rows, resolved)
    retain_rows = load_rows(path_to_retain_set, "retain")
    return _run(model_dir, output, forget_rows, retain_rows, resolved, started)


# ---------------------------------------------------------------------------------------------------
# The loop


class _Clock:
    """Time left before the budget's end, and running estimates of what a step, a selection pass and a
    save cost, so that the loop stops while there is still time to score and save."""

    def __init__(self, started: float, budget: float, margin: float):
        self.deadline = started + budget - margin
        self.step_s = 0.0
        self.eval_s = 0.0
        self.save_s = 0.0

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def can_continue(self) -> bool:
        return self.left() > self.step_s + self.eval_s + self.save_s


def pass_interval(steps_left: int, interval: int, step_s: float, eval_s: float, time_left: float,
                  share: float) -> int:
    """Steps between selection passes for the rest of the run. The planned ``interval`` while its passes and
    the steps left fit the time left; otherwise wider, so that the passes take what the steps leave, and at
    least ``share`` of the time left (the steps come first: a pass only chooses among what they made)."""
    if steps_left <= 0 or eval_s <= 0:
        return interval
    if steps_left * step_s + math.ceil(steps_left / interval) * eval_s <= time_left:
        return interval
    passes = max(1, math.floor(max(share * time_left, time_left - steps_left * step_s) / eval_s))
    return max(interval, math.ceil(steps_left / passes))


def _plan_next_pass(schedule_state: dict, step: int, steps: int, epoch_steps: int, eval_every: int, clock: _Clock,
                    accelerator, options: UnlearnSettings) -> None:
    """After a selection pass at ``step``: when the next one comes, from the clock's measured costs, taken
    by every process from the main one (each process has its own clock)."""
    interval = eval_every
    if options.pace_selection:
        # The steps still planned, or past them an epoch's worth (the extension goes on an epoch at a time, and
        # mostly stops well before its cap: planning for the cap took passes the run needed).
        steps_left = max(steps - step, epoch_steps)
        interval = _main_decides(accelerator, pass_interval(steps_left, eval_every, clock.step_s, clock.eval_s,
                                                            clock.left(), options.selection_time_share))
    if interval != schedule_state["interval"]:
        _log(options, accelerator, f"step {step}: a selection pass takes {clock.eval_s:.1f} s, a step "
             f"{clock.step_s:.2f} s, {clock.left():.0f} s left: a pass every {interval} steps "
             f"(planned every {eval_every})")
        schedule_state["changes"].append({"step": step, "every": interval, "pass_s": round(clock.eval_s, 2),
                                          "step_s": round(clock.step_s, 3), "left_s": round(clock.left(), 1)})
    schedule_state["interval"] = interval
    # At the planned interval the passes stay on its multiples, as planned; a wider one counts from here.
    schedule_state["next_pass"] = (step // eval_every + 1) * eval_every if interval == eval_every else step + interval


def _main_decides(accelerator, decision):
    """The main process's ``decision`` (any picklable value), taken by every process. Each process has its own
    clock and its own batches: were each to decide for itself, one could enter a step or a selection pass
    (collectives inside) that another skips, and both would wait for each other until the organizers' kill."""
    if accelerator.num_processes == 1:
        return decision
    from accelerate.utils import broadcast_object_list

    holder = [decision]
    broadcast_object_list(holder)  # from the main process to all
    return holder[0]


def _log(options: UnlearnSettings, accelerator, message: str) -> None:
    if options.verbose and accelerator.is_main_process:
        print(f"[unlearn] {message}", file=sys.stderr, flush=True)


def _precision(options: UnlearnSettings, device: torch.device, zero3: bool) -> tuple[torch.dtype, torch.dtype | None]:
    """The weights' dtype while training and the autocast dtype (None: no autocast). Under ZeRO-3 DeepSpeed's
    own configuration decides (its bfloat16 mode keeps float32 master weights)."""
    given = checkpoint.DTYPE_NAMES[options.train_dtype] if options.train_dtype else None
    if zero3:
        return given or torch.bfloat16, None
    weights = given or torch.float32
    if weights != torch.float32 or options.mixed_precision == "no":
        return weights, None
    if options.mixed_precision == "bfloat16" or device.type == "cuda":
        return weights, torch.bfloat16
    return weights, None


def _selection_slices(forget_rows: list[Row], retain_rows: list[Row], options: UnlearnSettings):
    slices, training = {}, {}
    for name, rows in (("forget", forget_rows), ("retain", retain_rows)):
        fraction = min(options.holdout_fraction, options.max_selection_rows / len(rows))
        training[name], slices[name] = split_selection_rows(rows, fraction, options.seed,
                                                            rows_per_group=max(1, options.max_selection_rows // 6))
    return training, slices


def _run(model_dir: Path, output: Path, forget_rows: list[Row], retain_rows: list[Row],
         options: UnlearnSettings, started: float) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    method = get_method(options.method)
    # No GPU: say so, or accelerate would not treat a torchrun-style launch as multi-process CPU (gloo).
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    set_seed(options.seed)
    world, rank = accelerator.num_processes, accelerator.process_index
    deepspeed_plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    zero3 = deepspeed_plugin is not None and deepspeed_plugin.zero_stage == 3
    margin = options.safety_margin_s if options.safety_margin_s is not None else 0.1 * options.time_budget_s
    clock = _Clock(started, options.time_budget_s, margin)

    tokenizer = _tokenizer(model_dir, options)
    save_dtype = checkpoint.input_dtype(model_dir)
    train_dtype, autocast = _precision(options, accelerator.device, zero3)

    training, selection = _selection_slices(forget_rows, retain_rows, options)
    encoded = _encode_training_rows(tokenizer, training, options)
    if accelerator.is_main_process:
        checkpoint.recover(output)
    model, optimizer, base_config, lora_rank, lora_scaling, train_dtype = _trainable_model(
        model_dir, accelerator, train_dtype, autocast, zero3, options)

    reference = None
    if method.needs_reference and zero3 and lora_rank == 0:
        # A frozen copy loaded under ZeRO-3 would be partitioned too and need its own engine: not built.
        raise SubmissionInputError(f"method {method.name} under ZeRO-3 needs LoRA (--lora-rank 16): its reference "
                                   f"is then the network with the adapter switched off")
    members, references, source = _membership_documents(forget_rows, retain_rows, options)
    documents = (members, references) if options.selection_mia and members and references else None
    ceiling, calibration = _forget_ceiling(accelerator.unwrap_model(model), tokenizer, references, source,
                                           accelerator, options)
    other_levels = _other_task_levels(accelerator.unwrap_model(model), tokenizer, forget_rows, retain_rows, ceiling,
                                      accelerator, options)
    if calibration is not None and other_levels:
        calibration["other_tasks"] = other_levels
    # Every process measures (under ZeRO-3 the forward passes are collective); the main one's rate is taken by
    # all, so that no process steps at a rate a rounding apart from another's.
    learning_rate, rate = _main_decides(accelerator, _distance_scaled_rate(
        accelerator.unwrap_model(model), tokenizer, members, ceiling, effective_learning_rate(base_config, options),
        accelerator, options))
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    if method.needs_reference:
        reference = _reference_logits(model, accelerator, model_dir, autocast or train_dtype, options, lora_rank > 0)

    forget_per_step = options.batch_size * world
    retain_batch = options.retain_batch_size or options.batch_size
    steps = options.max_steps or max(1, math.ceil(options.epochs * len(encoded["forget"]) / forget_per_step))
    extend = options.max_extension > 1 and ceiling is not None and not options.max_steps
    steps_max = math.ceil(steps * options.max_extension) if extend else steps
    schedule = method.schedule(len(encoded["forget"]), len(encoded["retain"]), forget_per_step,
                               retain_batch * world, steps_max, options.chunk_size, options.seed)
    epoch_steps = max(1, math.ceil(len(encoded["forget"]) / forget_per_step))
    below = []  # per step, the share of the forget batch still below the ceiling
    eval_every = max(1, math.ceil(steps / max(1, options.evaluations)))
    # The step after which the next selection pass comes (pass_interval may space the passes out).
    schedule_state = {"next_pass": eval_every, "interval": eval_every, "changes": []}
    _log(options, accelerator, f"method={method.name} steps={steps} lr={learning_rate:.3g} processes={world} "
         f"dtype={train_dtype} autocast={autocast} "
         f"lora_rank={lora_rank} train rows forget={len(encoded['forget'])} retain={len(encoded['retain'])} "
         f"selection rows forget={len(selection['forget'])} retain={len(selection['retain'])}")

    # "ceiling": where the ascent stops now (a measured one may be raised past the planned steps)
    state = {"best": None, "best_step": None, "history": [], "ceiling": ceiling, "measured": calibration is not None,
             "pull_back_alpha": None}
    # The pull-back's starting point and the best checkpoint's weights, kept in host memory (pull_back).
    pulled = pull_back.pulled_parameters(accelerator.unwrap_model(model), lora_rank > 0) \
        if options.pull_back_passes > 0 and not zero3 and ceiling is not None and documents is not None else None
    initial = pull_back.snapshot(accelerator.unwrap_model(model), pulled, save_dtype) if pulled else None

    def evaluate_and_keep(step: int, alpha: float | None = None) -> SelectionScore:
        began = time.monotonic()
        score = _selection_score(model, tokenizer, selection, documents, accelerator, train_dtype, zero3, options)
        clock.eval_s = max(clock.eval_s, time.monotonic() - began)
        state["last"] = score
        state["history"].append({"step": step, "task_aggregate": score.task_aggregate, "membership": score.membership,
                                 "membership_auc": score.membership_auc, "reference_level": score.reference_level,
                                 "ceiling": state["ceiling"],
                                 "balance": score.balance, "seconds": round(time.monotonic() - started, 1),
                                 **({} if alpha is None else {"pull_back_alpha": alpha})})
        better = state["best"] is None or score.key() > state["best"].key()
        membership = "-" if score.membership is None else \
            f"{score.membership:.3f} (AUC {score.membership_auc:.3f})"
        where = f"step {step}" if alpha is None else f"step {state['best_step']} pulled to {alpha:.4f}"
        _log(options, accelerator, f"{where}: selection task aggregate {score.task_aggregate:.3f} "
             f"membership {membership} "
             f"balance {score.balance:.3f}{' (best, saving)' if better else ''}")
        if better:
            began = time.monotonic()
            best_step = step if alpha is None else state["best_step"]
            _save(model, accelerator, model_dir, output, save_dtype, base_config, lora_scaling,
                  {"method": method.name, "step": best_step, "steps": steps, "score": dataclasses.asdict(score),
                   "pull_back_alpha": alpha,
                   "options": dataclasses.asdict(options), "history": state["history"],
                   "forget_nll_ceiling": {"value": ceiling, "now": state["ceiling"], "measured": calibration},
                   "learning_rate": rate})
            clock.save_s = max(clock.save_s, time.monotonic() - began)
            state["best"], state["best_step"], state["pull_back_alpha"] = score, best_step, alpha
            if initial is not None and alpha is None:
                state["best_weights"] = pull_back.snapshot(accelerator.unwrap_model(model), pulled, save_dtype)
        return score

    if options.save_initial:  # otherwise the first trained checkpoint is the first saved, whatever its score
        evaluate_and_keep(0)
        _plan_next_pass(schedule_state, 0, steps, epoch_steps, eval_every, clock, accelerator, options)
    step = 0
    stopped = "planned steps" if steps_max == steps else "extension cap"  # why the loop ended (the log's "run")
    for step, (forget_ids, retain_ids) in enumerate(schedule, start=1):
        if not _main_decides(accelerator, clock.can_continue()):
            _log(options, accelerator, f"time budget: stopping before step {step} of {steps}")
            step -= 1
            stopped = "time budget"
            break
        if step > steps:
            unfinished, raised = _main_decides(accelerator, _ascent_unfinished(below[-epoch_steps:], state, options))
            if not unfinished:
                step -= 1
                stopped = "ascent finished"
                break
            if raised is not None:
                _log(options, accelerator, f"step {step}: the forget rows are past the ceiling but the attack still "
                     f"finds them (AUC {state['last'].membership_auc:.3f}): ceiling {state['ceiling']:.3f} -> "
                     f"{raised:.3f} nats/token, where the documents it was measured on sit now")
                state["ceiling"] = raised
        began = time.monotonic()
        # This process's slice of the global batch.
        mine_f = forget_ids[rank * options.batch_size:(rank + 1) * options.batch_size]
        mine_r = retain_ids[rank * retain_batch:(rank + 1) * retain_batch]
        batches = {name: {k: v.to(accelerator.device) for k, v in
                          collate([encoded[name][i] for i in ids], tokenizer.pad_token_id).items()}
                   for name, ids in (("forget", mine_f), ("retain", mine_r))}
        ceilings = row_ceilings(state["ceiling"], [encoded["forget_tasks"][i] for i in mine_f], other_levels,
                                accelerator.device)
        loss, logs = _optimizer_step(method, model, optimizer, accelerator, batches, reference, ceilings,
                                     options, autocast)
        below.append(logs.get("below_ceiling", 0.0))
        elapsed = time.monotonic() - began
        clock.step_s = elapsed if clock.step_s == 0 else 0.9 * clock.step_s + 0.1 * elapsed
        if step >= schedule_state["next_pass"] or step in (steps, steps_max):
            if options.verbose and accelerator.is_main_process:
                _log(options, accelerator, f"step {step}: loss {loss.item():.3f} "
                     + " ".join(f"{k} {v:.3f}" for k, v in logs.items()))
            evaluate_and_keep(step)
            _plan_next_pass(schedule_state, step, steps, epoch_steps, eval_every, clock, accelerator, options)
    last_pass_missing = not state["history"] or state["history"][-1]["step"] != step
    if _main_decides(accelerator, last_pass_missing and clock.left() > clock.eval_s + clock.save_s):
        evaluate_and_keep(step)  # stopped by the clock between two selection passes
    if initial is not None and state.get("best_weights") is not None:
        pull_back.search(accelerator.unwrap_model(model), initial, state["best_weights"], state["best"],
                         lambda alpha: evaluate_and_keep(step, alpha),
                         lambda: _main_decides(accelerator, clock.left() > clock.eval_s + clock.save_s),
                         options.pull_back_passes, options.pull_back_span)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _complete_log(output, state["history"], step, steps, stopped,
                      {"planned_every": eval_every, "changes": schedule_state["changes"]})
    best = state["best"]
    return {"method": method.name, "learning_rate": learning_rate, "forget_nll_ceiling": ceiling,
            "forget_nll_ceiling_final": state["ceiling"], "steps_done": step, "steps_planned": steps,
            "stopped": stopped,
            "best_step": state["best_step"], "pull_back_alpha": state["pull_back_alpha"],
            "selection_task_aggregate": best.task_aggregate if best else None,
            "seconds": round(time.monotonic() - started, 1), "output": str(output)}


def _complete_log(output: Path, history: list[dict], steps_done: int, steps_planned: int, stopped: str,
                  passes: dict | None = None) -> None:
    """The saved checkpoint's log, completed with the whole run: every selection pass (also those after the
    saved one), the steps done and why the loop stopped (planned steps, extension cap, ascent finished, time
    budget), and ``passes``: the planned interval between selection passes and each time the clock widened it
    (pass_interval). Written atomically beside the checkpoint; a checkpoint without a log (none saved by this run) is
    left alone."""
    path = output / LOG_FILE
    if not path.is_file():
        return
    log = json.loads(path.read_text(encoding="utf-8"))
    log["run"] = {"steps_done": steps_done, "steps_planned": steps_planned, "stopped": stopped, "history": history,
                  "selection_passes": passes}
    temporary = path.with_name(f".{LOG_FILE}.tmp")
    temporary.write_text(json.dumps(log, indent=1, default=str), encoding="utf-8")
    os.replace(temporary, path)


def _ascent_unfinished(recent_below: list[float], state: dict,
                       options: UnlearnSettings) -> tuple[bool, float | None]:
    """Past the planned steps, whether to go on, and the ceiling to raise to (None: as it is). Go on while more
    than the threshold of the forget rows of the last epoch's worth of steps were still below the ceiling, or
    while the last selection pass's attack still found the forget documents below documents of their kind never
    seen (AUC above ``extension_auc``). In the second case the rows are past the ceiling but the documents it
    was measured on have moved on (training moves them too): the ceiling goes up to where they sit now."""
    if recent_below and sum(recent_below) / len(recent_below) > options.extension_threshold:
        return True, None
    last = state.get("last")
    if options.extension_auc is None or last is None or last.membership_auc is None:
        return False, None
    if last.membership_auc <= options.extension_auc:
        return False, None
    level, ceiling = last.reference_level, state["ceiling"]
    raise_to = state.get("measured") and ceiling is not None and level is not None and level > ceiling
    return True, (level if raise_to else None)  # a ceiling given as a number stays where it was put


def _tokenizer(model_dir: Path, options: UnlearnSettings):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=options.trust_remote_code)
    if tokenizer.eos_token_id is None:
        raise SubmissionInputError(f"{model_dir}: the tokenizer has no eos token")
    tokenizer.pad_token = tokenizer.eos_token  # as the organizers' scoring pads
    return tokenizer


def _selection_score(model, tokenizer, selection: dict[str, list[Row]], documents, accelerator,
                     train_dtype: torch.dtype, zero3: bool, options: UnlearnSettings) -> SelectionScore:
    """The selection pass: task metrics on the slice and the membership score, in the dtype the organizers
    load the checkpoint in; every process takes the main process's score."""
    scored_model = accelerator.unwrap_model(model)
    selection_dtype = checkpoint.DTYPE_NAMES[options.selection_dtype]
    if selection_dtype != train_dtype and not zero3:
        # e.g. float32 training on CPU: score a bfloat16 copy, as the evaluator will load the checkpoint
        scored_model = copy.deepcopy(scored_model).to(selection_dtype)
    score = score_model(scored_model, tokenizer, selection, options.eval_batch_size,
                        accelerator.device, synced_gpus=zero3, documents=documents)
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        holder = [score]
        broadcast_object_list(holder)
        score = holder[0]
    return score


def _optimizer_step(method, model, optimizer, accelerator, batches: dict, reference, ceiling,
                    options: UnlearnSettings,
                    autocast: torch.dtype | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """One step of ``method``'s loss on a forget and a retain batch (forward passes under ``autocast`` when
    set): backward, clip, update."""
    precision = (torch.autocast(accelerator.device.type, dtype=autocast) if autocast is not None
                 else contextlib.nullcontext())
    with precision:
        loss, logs = method.loss(LossInputs(model=model, forget=batches["forget"], retain=batches["retain"],
                                            reference=reference, forget_weight=options.forget_weight,
                                            retain_weight=options.retain_weight, beta=options.beta,
                                            gamma=options.gamma, forget_nll_ceiling=ceiling,
                                            ascent_taper=options.ascent_taper,
                                            level_target_weight=options.level_target_weight))
    accelerator.backward(loss)
    if options.max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), options.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss, logs


def _encode_training_rows(tokenizer, training: dict[str, list[Row]], options: UnlearnSettings) -> dict:
    """Per split, the encoded rows (those with an answer token within ``max_length``); under
    ``"<split>_tasks"``, each kept row's task."""
    encoded = {}
    for name in SPLITS:
        encoded[name], encoded[f"{name}_tasks"] = [], []
        for row in training[name]:
            row_encoded = encode_row(tokenizer, row, options.max_length, options.sc_loss_on_prompt)
            if row_encoded is not None:
                encoded[name].append(row_encoded)
                encoded[f"{name}_tasks"].append(row.task)
        if not encoded[name]:
            raise SubmissionInputError(f"the {name} set has no row with an answer token within "
                                       f"max_length={options.max_length}")
    return encoded


def effective_learning_rate(config, options: UnlearnSettings) -> float:
    """``learning_rate``, scaled by ``lr_width`` / the model's hidden size when ``lr_width`` is set."""
    if options.lr_width is None:
        return options.learning_rate
    width = next((getattr(config, n) for n in ("hidden_size", "d_model", "n_embd") if getattr(config, n, None)), None)
    if width is None:
        raise SubmissionInputError("lr_width is set but the model's config has no hidden_size (d_model, n_embd)")
    return options.learning_rate * options.lr_width / width


def _trainable_model(model_dir: Path, accelerator, train_dtype: torch.dtype, autocast: torch.dtype | None, zero3: bool,
                     options: UnlearnSettings):
    """The model to train (full or LoRA) and its optimizer, prepared by accelerate; also the base config, the
    LoRA rank and scaling (None without LoRA) that saving needs, and the dtype the base weights ended in."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=options.trust_remote_code)
    lora_rank = _auto_lora(config, train_dtype, accelerator, zero3, options)
    if lora_rank > 0 and autocast is not None:
        # LoRA's frozen base needs no float32 copy, so it is loaded in the autocast dtype directly: a 7B model
        # is 28 GB of host memory in float32, 14 in bfloat16. peft keeps the adapters in float32.
        train_dtype = autocast
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=train_dtype,
                                                 trust_remote_code=options.trust_remote_code)
    base_config = model.config
    # LoRA chosen by _auto_lora is the case where memory is short: it checkpoints activations too.
    checkpointing = options.gradient_checkpointing or (lora_rank > 0 and options.lora_rank is None)
    if checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    lora_scaling = None
    if lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        alpha = options.lora_alpha if options.lora_alpha is not None else 2.0 * lora_rank
        lora_scaling = alpha / lora_rank
        if checkpointing:
            model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(r=lora_rank, lora_alpha=alpha, lora_dropout=0.0,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=effective_learning_rate(base_config, options), weight_decay=0.0)
    deepspeed_plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    micro_batch = (deepspeed_plugin.deepspeed_config.get("train_micro_batch_size_per_gpu")
                   if deepspeed_plugin is not None else None)
    if micro_batch == "auto":
        deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = options.batch_size
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    return model, optimizer, base_config, lora_rank, lora_scaling, train_dtype


def _membership_documents(forget_rows: list[Row], retain_rows: list[Row],
                          options: UnlearnSettings) -> tuple[list[str], list[str], str | None]:
    """The forget documents and documents of their kind never seen (calibration.py: the calibration documents
    given or baked, else swapped ones), and where the latter come from: the level the ascent stops at, and
    the membership score the checkpoint selection weighs. Capped, so that a selection pass on the real
    1,112-row forget set stays a small share of the run."""
    rng = random.Random(options.seed)
    scored = _task_names(options.mia_tasks)  # empty: every task
    references, source = calibration_documents(options.calibration_docs)
    if not references:
        references = reference_documents([r for r in forget_rows + retain_rows if not scored or r.task in scored],
                                         seed=options.seed, rule=options.swapped_words)
        source = swapped_source(options.swapped_words) + (f", of {', '.join(scored)}" if scored else "")
    references = rng.sample(references, min(len(references), options.max_mia_documents * 2))
    members = [d for task, documents in documents_by_task(forget_rows).items() for d in documents
               if not scored or task in scored]
    members = rng.sample(members, min(len(members), options.max_mia_documents))
    return members, references, source


def _other_task_levels(model, tokenizer, forget_rows: list[Row], retain_rows: list[Row], ceiling: float | None,
                       accelerator, options: UnlearnSettings) -> dict[str, dict]:
    """Under ``mia_tasks`` and a measured ceiling: per task the attack does not score, its own level, measured
    like the default's swapped level but on that task's documents alone (``document_level``'s record; a task
    with fewer than two documents takes the ceiling), and the ceiling its forget rows stop at,
    ``other_tasks_share`` of that level. Such rows only need forgetting, not the attack's level."""
    scored = _task_names(options.mia_tasks)
    if not scored or ceiling is None or options.forget_nll_ceiling != MEASURED:
        return {}
    levels = {}
    for task in sorted({row.task for row in forget_rows} - set(scored)):
        documents = reference_documents([r for r in forget_rows + retain_rows if r.task == task], seed=options.seed,
                                        rule=options.swapped_words)
        # Named here: swapped_source says "no calibration documents given", which need not hold for this run.
        record = document_level(model, tokenizer, documents, accelerator.device,
                                f"{task}'s forget/retain documents with their entities ({options.swapped_words}) "
                                f"swapped across them (a task the attack does not score)")
        if record["level"] is None:
            record.update(level=ceiling, how="the ceiling (fewer than two documents of this task to swap)")
        record.update(share=options.other_tasks_share, ceiling=options.other_tasks_share * record["level"])
        levels[task] = record
        _log(options, accelerator, f"forget loss ceiling of {task}: {record['ceiling']:.3f} nats/token, "
             f"{record['share']:g} x its level {record['level']:.3f} ({record['how']})")
    return levels


def row_ceilings(ceiling: float | None, row_tasks: list[str], levels: dict[str, dict], device=None):
    """The ceiling of each forget row of a batch: its task's own ceiling (``_other_task_levels``) for a task the
    attack does not score, else ``ceiling`` (None, a float or a per-row tensor on ``device``, as
    ``methods.ascent_term`` takes)."""
    if ceiling is None or not levels:
        return ceiling
    return torch.tensor([levels[task]["ceiling"] if task in levels else ceiling for task in row_tasks], device=device)


def distance_scaled_rate(learning_rate: float, distance: float, lr_distance: float) -> float:
    """``learning_rate`` x min(1, ``distance`` / ``lr_distance``), never under MIN_RATE_SHARE of it."""
    return learning_rate * min(1.0, max(MIN_RATE_SHARE, distance / lr_distance))


def _distance_scaled_rate(model, tokenizer, members: list[str], ceiling: float | None, learning_rate: float,
                          accelerator, options: UnlearnSettings) -> tuple[float, dict]:
    """The rate to train at, and how it was set (the log's ``learning_rate``): ``learning_rate`` scaled by
    min(1, distance / ``lr_distance``), the distance from the forget documents' median loss to the ceiling,
    measured on the model as given (every process alike). Unscaled without ``lr_distance`` (None or 0), a
    ceiling or forget documents."""
    rate = {"value": learning_rate, "unscaled": learning_rate}
    if not options.lr_distance or ceiling is None or not members:
        return learning_rate, rate
    # The forget documents' median loss (document_level's "how" describes references, not these).
    members_level = statistics.median(document_losses(model, tokenizer, members, accelerator.device))
    distance = ceiling - members_level
    scaled = distance_scaled_rate(learning_rate, distance, options.lr_distance)
    rate.update(value=scaled, forget_documents_level=members_level, distance=distance,
                how=f"scaled by min(1, distance {distance:.3f} / {options.lr_distance:g}) nats/token from the "
                    f"forget documents' median loss ({len(members)} documents) to the ceiling")
    _log(options, accelerator, f"learning rate {scaled:.3g}: {rate['how']}")
    return scaled, rate


def _forget_ceiling(model, tokenizer, references: list[str], source: str | None, accelerator,
                    options: UnlearnSettings) -> tuple[float | None, dict | None]:
    """The ceiling the ascent stops at, and how it was measured (None when it was given)."""
    if options.forget_nll_ceiling != MEASURED:
        return options.forget_nll_ceiling, None
    # Before any step, on the model as given: every process measures the same documents the same way.
    calibration = document_level(model, tokenizer, references, accelerator.device, source)
    ceiling = calibration["level"]
    shown = "none (no ceiling)" if ceiling is None else f"{ceiling:.3f} nats/token"
    _log(options, accelerator, f"forget loss level: {shown} ({calibration['how']}; {calibration['documents']} "
         f"scored)")
    return ceiling, calibration


def parameter_count(config, trust_remote_code: bool = False) -> int:
    """The parameters of the model ``config`` describes, counted on an empty (meta-device) shell: nothing is
    loaded or allocated."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        shell = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return sum(p.numel() for p in shell.parameters())


def _auto_lora(config, train_dtype: torch.dtype, accelerator, zero3: bool, options: UnlearnSettings) -> int:
    """The LoRA rank to train with, decided from the config before the weights are loaded. Unless set,
    full-parameter training where weights, gradients and AdamW states (8 bytes a parameter in bfloat16, 16 in
    float32) fit in 60% of one GPU, or on CPU, or under ZeRO-3 (which shards them); otherwise rank 16 (and
    gradient checkpointing, in _trainable_model): the organizers' plain one-process call on a 7B model would
    not fit a 40 GB A100 in full."""
    if options.lora_rank is not None:
        return options.lora_rank
    if accelerator.device.type != "cuda" or zero3:
        return 0
    parameters = parameter_count(config, options.trust_remote_code)
    bytes_per_parameter = 4 * train_dtype.itemsize
    if parameters * bytes_per_parameter < 0.6 * torch.cuda.get_device_properties(accelerator.device).total_memory:
        return 0
    _log(options, accelerator, f"{parameters / 1e9:.1f}B parameters do not fit one GPU for full training: LoRA rank 16")
    return 16


def _reference_logits(model, accelerator, model_dir: Path, dtype: torch.dtype, options: UnlearnSettings,
                      lora: bool):
    """The frozen model's logits. With LoRA the reference is the same network with the adapter switched
    off (no second copy in memory); otherwise a frozen copy is loaded, only for the methods that need it."""
    from transformers import AutoModelForCausalLM

    unwrapped = accelerator.unwrap_model(model)
    if lora:
        def lora_reference(batch):
            with torch.no_grad(), unwrapped.disable_adapter():
                return unwrapped(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return lora_reference
    frozen = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, trust_remote_code=options.trust_remote_code)
    frozen.requires_grad_(False)
    frozen.eval()
    frozen.to(accelerator.device)

    def frozen_reference(batch):
        with torch.no_grad():
            return frozen(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return frozen_reference


def _save(model, accelerator, model_dir: Path, output: Path, dtype: torch.dtype, base_config, lora_scaling,
          log: dict) -> None:
    """Every process takes part (ZeRO-3 gathers the shards); the main process writes."""
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        if lora_scaling is not None:
            state_dict = checkpoint.merge_lora(state_dict, lora_scaling)
        checkpoint.write_checkpoint(state_dict, model_dir, output, dtype,
                                    tie_word_embeddings=bool(getattr(base_config, "tie_word_embeddings", False)),
                                    extra_files={LOG_FILE: json.dumps(log, indent=1, default=str)})
    accelerator.wait_for_everyone()
