"""``make-stub``, ``make-target``, ``dry-run``, ``pack``, ``check``: the organizer simulation
(``evaluator.harness``).

``make-target`` and ``dry-run`` train and load models: their modules (torch, transformers) are imported inside
the commands, so that ``unlearn-eval --help``, ``pack`` and ``check`` start without them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from evaluator.cli.params import out_folder, progress_option
from evaluator.core.errors import InputError
from evaluator.core.gate import GATES, MMLU_GATE_7B, RELATIVE_GATE_FRACTION
from evaluator.core.modes import MODES
from evaluator.harness import corpora, stub
from evaluator.harness.check import (
    EXIT_NOT_FINISHED,
    SUMMARY_FILE,
    checks_json,
    exit_code,
    format_checks,
    read_figures,
    read_thresholds,
    run_checks,
    validate_thresholds,
)
from evaluator.harness.pack import DEFAULT_PACKAGE, PACKED_FILE, pack, parse_settings
from evaluator.harness.settings import DryRunSettings

DRY_RUN = DryRunSettings()  # the defaults
FROM_THRESHOLDS = "none, or the --thresholds file's"


@click.command("make-stub")
@click.option("--out", type=click.Path(path_type=Path), default=stub.DEFAULT_OUT, show_default=True,
              help="Folder to write the stub data into.")
def make_stub(out):
    """Write the synthetic stub data (deterministic: reproduces the committed data_stub/ byte for byte)."""
    files = stub.generate_stub(out)
    click.echo(f"wrote {len(files)} files under {out}")


@click.command("make-target")
@click.option("--data", type=click.Path(path_type=Path), default=stub.DEFAULT_OUT, show_default=True,
              help="Stub data folder (as make-stub writes it); with --variant lume, the public release's folder "
                   "(data/, mia_data/).")
@click.option("--variant", type=click.Choice(corpora.VARIANTS), default=corpora.DEFAULT_VARIANT, show_default=True,
              help="stub: memorizes the stub; pretrained: first learns a corpus of other documents of the stub's "
                   "kinds, so unseen ones cost 1.5-3 nats/token; foreign-nonmembers: the stub target with MIA "
                   "nonmembers of a kind it never learned (recipes); lume: memorizes a subset of the release's rows.")
@click.option("--size", type=click.Choice(list(corpora.SIZES)), default=corpora.DEFAULT_SIZE, show_default=True,
              help="Model size: " + "; ".join(f"{name} {d['num_layers']} layers, hidden {d['hidden_size']}"
                                               + (", on a GPU" if d.get("device") == "cuda" else "")
                                               for name, d in corpora.SIZES.items()) + ".")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              show_default="$LUME_HARNESS_CACHE (or ~/.cache/lume-harness)/target-<hash>; other variants and sizes: "
                           "target-<variant>-<size>-<hash>",
              help="Model folder.")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE", show_default="none: the variant's",
              help="Change a setting of the variant's build (a field of evaluator.harness.target.TargetSettings, "
                   "e.g. lume_documents=8 min_mmlu=0.9): the target gets its own hash and cache folder. "
                   "Repeatable.")
@progress_option(True, "Progress bar while training (--quiet: none).")
def make_target(data, variant, size, out, settings, progress):
    """Train (or reuse from the cache) the tiny OLMo target that memorizes the stub; prints its folder last.
    The folder also holds the target's MIA documents (mia/member.jsonl, mia/nonmember.jsonl, mia/validation/),
    never-seen documents of the members' kind (calibration/nonmember.jsonl) and, for lume, its data (data/)."""
    from evaluator.harness.target import TargetCheckFailed, TargetSettings, build_target  # lazy: torch

    try:
        overrides = TargetSettings.check_overrides(parse_settings(settings, example="lume_documents=8"))
        build = build_target(data, out, TargetSettings.for_variant(variant, size, **overrides), progress=progress,
                             log=lambda line: click.echo(line, err=True))
    except TargetCheckFailed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(build.path)


@click.command("dry-run")
@click.option("--submission", default=DRY_RUN.submission, show_default=True,
              help="The submission: a single .py file or an importable module name, with unlearn() at top level.")
@click.option("--model", default=None, show_default="the stub target, built from --data",
              help="Your own model: a checkpoint folder, or a Hugging Face id (owner/name) already in the local "
                   "cache. A copy of it is handed to the submission.")
@click.option("--data", type=click.Path(path_type=Path), default=DRY_RUN.data, show_default=True,
              help="Stub data folder (as make-stub writes it); with --model, the forget/retain data in any layout "
                   "evaluate --data takes.")
@click.option("--split", type=click.Choice(stub.STUB_SPLITS), default=DRY_RUN.split, show_default=True,
              help="Split handed to the submission and scored (stub, or --data in the Hugging Face layout).")
@click.option("--mia", type=click.Path(path_type=Path), default=None,
              show_default="the stub's; with --model none: MIA not scored, no final score",
              help="Folder with member.jsonl, nonmember.jsonl for the MIA score.")
@click.option("--mmlu-data", type=click.Path(path_type=Path), default=None,
              show_default="the stub's mini-MMLU; with --model none: MMLU and both gates not run",
              help="MMLU CSV folder (dev/, test/), run before and after; the gates apply to it.")
@click.option("--python", "python", default=None, show_default="this interpreter",
              help="Run the submission with this Python (your own environment); it must import the submission. "
                   "summary.json records its version and torch/transformers versions.")
@click.option("--time-limit", type=float, default=None,
              show_default="the organizers' hour scaled by rows x model size x hardware; the stub: about 85 s",
              help="Seconds before the submission is killed (the formula: summary.json, the table, and "
                   "scaled_time_limit in evaluator/harness/dryrun.py).")
@click.option("--out", type=click.Path(path_type=Path), default=DRY_RUN.out, show_default=True,
              help="Output folder (cleared when an earlier dry-run made it).")
@click.option("--mode", type=click.Choice(MODES), default=DRY_RUN.mode, show_default=True,
              help="Scoring mode of the evaluator (fast: batched, may differ where the model is unsure).")
@click.option("--threads", type=click.IntRange(min=0), default=DRY_RUN.threads, show_default=True,
              help="Torch threads for scoring and OMP_NUM_THREADS for the submission (0: leave the defaults).")
@click.option("--submission-kwargs", default=None, show_default="none",
              help="JSON object of keyword arguments added to the four positional ones (not what the organizers "
                   "did; for quick checks).")
@click.option("--no-cache", is_flag=True, help="Score the target again instead of reusing cached before scores.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the table.")
@progress_option(DRY_RUN.show_progress, "Progress bars while building and scoring (off by default: the log lines "
                                        "on stderr already say where the run is).")
@click.option("--report", "make_report", is_flag=True,
              help="Also write the HTML/Markdown report of the after scores, with the before scores as the baseline "
                   f"and {DRY_RUN.report_bootstrap} bootstrap resamples (seed {DRY_RUN.report_seed}), "
                   "into --out/report/ (report.html, report.md).")
def dry_run_command(submission, model, data, split, mia, mmlu_data, python, time_limit, out, mode, threads,
                    submission_kwargs, no_cache, as_json, progress, make_report):
    """Run a submission as the organizers did (separate process, hard time limit, four positional arguments)
    on the stub target or your own --model and --data, score before and after, apply both MMLU gates, place
    the score on the leaderboards.

    Exit codes: 0 ok, 2 bad input, 3 the submission raised, 4 it ran past the time limit, 5 it wrote no
    checkpoint, 6 its checkpoint does not load (or there is more than one), 7 it changed the input model,
    8 it fails an MMLU gate.
    """
    from evaluator.harness.dryrun import dry_run  # lazy: torch, transformers

    kwargs = {}
    if submission_kwargs is not None:
        try:
            kwargs = json.loads(submission_kwargs)
        except json.JSONDecodeError as exc:
            raise InputError(f"--submission-kwargs: malformed JSON ({exc.msg})") from None
        if not isinstance(kwargs, dict):
            raise InputError("--submission-kwargs: not a JSON object")
    settings = DryRunSettings(submission=submission, model=model, data=data, split=split, mia=mia,
                              mmlu_data=mmlu_data, python=python, out=out, time_limit_s=time_limit,
                              mode=mode, threads=threads, submission_kwargs=kwargs, use_cache=not no_cache,
                              show_progress=progress, report=make_report)
    report = dry_run(settings, log=lambda line: click.echo(line, err=True))
    click.echo(json.dumps(report.summary, indent=2) if as_json else report.table)
    click.echo(f"wrote {out}/{SUMMARY_FILE}" + (", evaluation_results.jsonl" if report.summary["after"] else "")
               + (f", {report.summary['report']['html']}" if report.summary.get("report") else ""), err=True)
    sys.exit(report.exit_code)


@click.command("pack")
@click.option("--submission", default=DEFAULT_PACKAGE, show_default=True,
              help="The package to pack (found on disk, never imported).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help=f"Output folder: the single file {PACKED_FILE} is written into it.")
@click.option("--calibration-docs", type=click.Path(path_type=Path), default=None, show_default="none",
              help="Bake these documents of the members' kind that the target never saw (a folder of .jsonl files "
                   "with a 'document' field, like the release's mia_data/nonmember.jsonl, or .txt files) into the "
                   "file: the submission measures its forget-loss level on them, on the model it is handed.")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE", show_default="none: the package's defaults",
              help="Bake a setting of the submission (a field of UnlearnSettings, as `unlearn --help` lists them "
                   "with dashes: swapped_words=proper_nouns, lr_distance=6) into the file: the organizers' call "
                   "passes four paths and nothing else. Repeatable; checked by the packed file before it is written.")
def pack_command(submission, out, calibration_docs, settings):
    """One self-contained .py file with unlearn() and every module of the package it needs (the organizers
    took a single file), written to OUT/unlearn_submission.py. Check it with: unlearn-eval dry-run --submission
    OUT/unlearn_submission.py."""
    baked = parse_settings(settings)
    result = pack(submission, out_folder(out, PACKED_FILE) / PACKED_FILE, calibration_docs, baked)
    click.echo(f"wrote {result.path} ({len(result.text.encode()) // 1024} KiB): {', '.join(result.modules)}"
               + (f"; calibration documents from {calibration_docs} baked in" if calibration_docs else "")
               + (f"; settings baked in: {baked}" if baked else ""))


@click.command("check")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--thresholds", type=click.Path(path_type=Path), default=None, show_default="none",
              help="TOML file of thresholds (e.g. ci/thresholds.toml); options override its values.")
@click.option("--min-final", type=float, default=None, show_default=FROM_THRESHOLDS, help="Final score at least this.")
@click.option("--min-task-aggregate", type=float, default=None, show_default=FROM_THRESHOLDS,
              help="Task aggregate at least this.")
@click.option("--min-mia", type=float, default=None, show_default=FROM_THRESHOLDS,
              help="MIA score (mia_final_score) at least this.")
@click.option("--min-mmlu", type=float, default=None, show_default=FROM_THRESHOLDS, help="MMLU average at least this.")
@click.option("--gate", "gates", type=click.Choice(GATES), multiple=True, show_default=FROM_THRESHOLDS,
              help=f"MMLU gate that must pass (repeatable): absolute (>= {MMLU_GATE_7B}) or relative "
                   f"(>= {RELATIVE_GATE_FRACTION:.0%} of before; needs a dry-run {SUMMARY_FILE}).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: each check with its value, limit, margin (value - limit) and passed, and the exit "
                   "code.")
def check_command(results, thresholds, min_final, min_task_aggregate, min_mia, min_mmlu, gates, as_json):
    """Hold RESULTS (evaluation_results.jsonl, a dry-run summary.json, or the folder holding one) to
    thresholds.

    \b
    Exit codes:
      0  every threshold holds
      1  a threshold failed
      2  bad input: a file it could not read (missing, malformed JSON or
         TOML), an unknown thresholds key, a value of the wrong type
      3  the run did not finish, so no after scores: a dry-run summary.json
         without after figures (verdict timeout, raised, no-checkpoint,
         unloadable...), or an evaluation folder with the resume journal
         .partial/ but no evaluation_results.jsonl
    """
    wanted = read_thresholds(thresholds) if thresholds is not None else {}
    given = {"min_final": min_final, "min_task_aggregate": min_task_aggregate, "min_mia": min_mia,
             "min_mmlu": min_mmlu}
    wanted.update(validate_thresholds({k: v for k, v in given.items() if v is not None}, "options"))
    if gates:
        wanted["gate"] = list(dict.fromkeys(gates))
    figures = read_figures(results)
    checks = run_checks(figures, wanted)  # bad input (exit 2) before an unfinished run (exit 3)
    code = exit_code(figures, checks)
    if as_json:
        click.echo(checks_json(figures, checks))
    elif code == EXIT_NOT_FINISHED:
        click.echo(f"error: {figures.path}: {figures.not_finished}", err=True)
    else:
        click.echo(format_checks(figures, checks))
    sys.exit(code)


COMMANDS = (make_stub, make_target, dry_run_command, pack_command, check_command)
