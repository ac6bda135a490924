"""``unlearn-eval``: a thin click layer over functions a user can call from Python."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .errors import InputError

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub access at run time: checkpoints are folders


class Terminated(BaseException):
    """SIGTERM arrived (raised from the handler ``evaluate`` installs; a BaseException, so that no
    ``except Exception`` on the way swallows it)."""

    exit_code = 128 + 15


def _terminated(signum, frame):
    raise Terminated()


_journal_kept = {"evaluate": True}  # False under --no-resume: then no row is kept for a rerun


class Group(click.Group):
    """Turns the errors below into one clear line and an exit code (README.md, "What happens when...", lists
    every case):

    - :class:`InputError` (bad input: a file, a column, a row, a checkpoint, an option): exit 2;
    - ``OSError`` (the machine, not the input: disk full, permission denied, I/O error), naming the path
      where there is one: exit 1. Result files are written atomically, so none is left half-written;
    - SIGTERM during ``evaluate`` (exit 143) and Ctrl-C (exit 130): finished rows stay in the resume
      journal (``--out/.partial/``) and the same command continues from them.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"error: {where}{exc.strerror or exc} (nothing half-written; fix and run again)", err=True)
            ctx.exit(1)
        except (Terminated, KeyboardInterrupt) as exc:
            name, code = ("SIGTERM", Terminated.exit_code) if isinstance(exc, Terminated) else ("Ctrl-C", 130)
            hint = ("; finished rows are kept under --out/.partial/, the same command resumes from them"
                    if _journal_kept.get(ctx.invoked_subcommand) else "")
            click.echo(f"error: stopped by {name}{hint}", err=True)
            ctx.exit(code)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    return f"{value:.4f}" if isinstance(value, (int, float)) else str(value)


def format_result_table(result, gate: float, gate_report: dict | None = None) -> str:
    """A short human table: per task forget/retain, the aggregates, MIA, MMLU, final, gate
    (``gate_report``, from ``evaluator.mmlu.utility_gate``, replaces the absolute-only gate line)."""
    from .scoring import KNOWLEDGE, REGURGITATION

    lines = [f"{'':8} {'forget regurg':>14} {'forget know':>12} {'retain regurg':>14} {'retain know':>12}"]
    tasks = sorted(k for k in {**result.forget, **result.retain} if not k.startswith("overall-"))
    for task in tasks:
        f, r = result.forget.get(task, {}), result.retain.get(task, {})
        lines.append(f"{task:8} {_fmt(f.get(REGURGITATION)):>14} {_fmt(f.get(KNOWLEDGE)):>12} "
                     f"{_fmt(r.get(REGURGITATION)):>14} {_fmt(r.get(KNOWLEDGE)):>12}")
    lines.append(f"{'overall':8} {_fmt(result.forget['overall-regurgitation-score']):>14} "
                 f"{_fmt(result.forget['overall-knowledge-score']):>12} "
                 f"{_fmt(result.retain['overall-regurgitation-score']):>14} "
                 f"{_fmt(result.retain['overall-knowledge-score']):>12}")
    lines += [
        f"task aggregate (harmonic mean of {len(result.aggregated_terms)} terms): {_fmt(result.task_aggregate)}",
        f"MIA loss AUC: {_fmt(result.mia_loss_acc)}   MIA score: {_fmt(result.mia_final_score)}",
        f"MMLU average: {_fmt(result.mmlu_average)}",
        f"final score: {_fmt(result.final)}" + ("" if result.final is not None else "  (needs both MMLU and MIA)"),
        f"MMLU gate (>= {gate}): {_fmt(result.mmlu_gate(gate))}",
    ]
    if gate_report is not None:
        from .mmlu import format_gate

        lines[-1] = format_gate(gate_report)
    return "\n".join(lines)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lume-unlearning", prog_name="unlearn-eval")
def main():
    """Evaluate SemEval-2025 Task 4 (LUME) unlearning checkpoints exactly as the organizers scored them."""


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="Model folder (HF format).")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Folder with forget/retain .jsonl or .parquet, a release root (HF layout), or one file.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--split", default=None, help="Split of the HF layout (train or validation).")
@click.option("--mia", type=click.Path(path_type=Path), default=None, help="Folder with member.jsonl, nonmember.jsonl.")
@click.option("--mmlu-metrics", type=click.Path(path_type=Path), default=None, help="MMLU metrics.json.")
@click.option("--mode", type=click.Choice(["official", "fast"]), default="official", show_default=True)
@click.option("--dtype", type=click.Choice(["bfloat16", "float32", "float16"]), default="bfloat16", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Fast mode only.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--recheck-margin", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Fast mode: regenerate the official way every row whose top-2 logit gap fell below this "
                   "(0.25 makes a confident model's generations those of official mode; 0 = off).")
@click.option("--gate", type=float, default=0.371, show_default=True, help="MMLU gate (absolute).")
@click.option("--mmlu-data", type=click.Path(path_type=Path), default=None,
              help="MMLU CSV folder (dev/, test/): run MMLU inline on the loaded checkpoint, outputs in --out/mmlu/.")
@click.option("--ntrain", type=click.IntRange(min=0), default=5, show_default=True, help="MMLU dev examples (--mmlu-data).")
@click.option("--mmlu-subjects", default=None, help="Comma-separated MMLU subjects (--mmlu-data; default all).")
@click.option("--reference-mmlu", type=click.Path(path_type=Path), default=None,
              help="Relative gate (75%): the reference's MMLU metrics.json, or its checkpoint folder (run on --mmlu-data).")
@click.option("--trust-remote-code", is_flag=True, help="Let the checkpoint run its own code (off by default).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--report", "make_report", is_flag=True,
              help="Also write the HTML/Markdown report (with 1000 bootstrap resamples) into --out/report/.")
@click.option("--no-resume", is_flag=True,
              help="Start over: neither reuse nor keep the rows a killed run of the same checkpoint, data and "
                   "settings left in --out/.partial/ (by default they are reused).")
@click.option("--mia-extra", is_flag=True,
              help="Needs --mia: also write --out/mia_results/extra.csv (zlib, Min-K%, Min-K%++ diagnostics; "
                   "loads the checkpoint once more).")
def evaluate(checkpoint, data, out, split, mia, mmlu_metrics, mode, dtype, batch_size, max_new_tokens,
             recheck_margin, gate, mmlu_data, ntrain, mmlu_subjects, reference_mmlu, trust_remote_code, quiet,
             make_report, no_resume, mia_extra):
    """Generate, score and write the official files into --out (and --out/gate.json).

    Killed or stopped, the same command resumes from the finished rows kept in --out/.partial/ (also under
    accelerate launch, with any number of processes in official mode; the files equal an uninterrupted run's). Exit codes: 0 ok, 1 disk full or another I/O fault, 2 bad input,
    143 SIGTERM, 130 Ctrl-C (README: "What happens when...")."""
    from . import mmlu
    from .engine import check_checkpoint
    from .evaluate import EvaluationSettings, evaluate as run, read_mmlu_average

    settings = EvaluationSettings(mode=mode, dtype=dtype, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                  trust_remote_code=trust_remote_code, show_progress=not quiet,
                                  recheck_margin=recheck_margin, resume=not no_resume)
    import signal

    _journal_kept["evaluate"] = not no_resume  # every process journals its rows (evaluator/journal.py)
    previous = signal.signal(signal.SIGTERM, _terminated)  # a clean line and exit 143; the journal keeps rows
    click.get_current_context().call_on_close(lambda: signal.signal(signal.SIGTERM, previous))
    if mmlu_data is not None and mmlu_metrics is not None:
        raise InputError("give --mmlu-metrics or --mmlu-data, not both")
    if mia_extra and mia is None:
        raise InputError("--mia-extra needs --mia (the member/nonmember documents)")
    subjects = mmlu_subjects.split(",") if mmlu_subjects else None
    # MMLU inline: the official mode runs open-instruct's one-prompt-at-a-time path, fast mode the prefix cache.
    mmlu_batch = 1 if mode == "official" else batch_size
    runner = (mmlu.InlineMMLU(mmlu_data, out / "mmlu", ntrain, mmlu_batch, subjects, show_progress=not quiet)
              if mmlu_data is not None else None)
    reference_average = None
    if reference_mmlu is not None:  # checked before the long run
        if reference_mmlu.is_dir():
            check_checkpoint(reference_mmlu)
            if mmlu_data is None:
                raise InputError(f"{reference_mmlu}: a reference checkpoint needs --mmlu-data (or give its metrics.json)")
        else:
            reference_average = read_mmlu_average(reference_mmlu)
    result = run(checkpoint, data, out, split=split, mia=mia, mmlu_metrics=mmlu_metrics, settings=settings,
                 mmlu_runner=runner)
    if result is not None:  # None on the non-main processes of a distributed run
        if reference_mmlu is not None and reference_average is None:
            reference_average = mmlu.reference_mmlu_average(
                reference_mmlu, mmlu_data, out / "mmlu_reference", ntrain=ntrain, subjects=subjects,
                batch_size=mmlu_batch, dtype=dtype, trust_remote_code=trust_remote_code, show_progress=not quiet)
        gate_report = mmlu.utility_gate(result.mmlu_average, gate, reference_average)
        mmlu.write_json(out / mmlu.GATE_FILE, gate_report)
        click.echo(format_result_table(result, gate, gate_report))
        if mia_extra:
            from .mia_extra import write_mia_extra

            extra = write_mia_extra(checkpoint, mia, out, dtype, trust_remote_code=trust_remote_code)
            click.echo(f"wrote {extra}")
        if make_report:
            from .report import write_report

            click.echo(f"wrote {write_report(out, out / 'report').html}")
        click.echo(f"wrote {out}")


@main.command("mmlu")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="Model folder (HF format).")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="MMLU CSV folder (dev/, test/).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder (metrics.json, <subject>.csv).")
@click.option("--ntrain", type=click.IntRange(min=0), default=5, show_default=True, help="Dev examples per prompt.")
@click.option("--subjects", default=None, help="Comma-separated subjects (default: every test/<subject>_test.csv).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="1: open-instruct's one-prompt-at-a-time reference path; more: shared-header cache, batched.")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True, help="auto: the checkpoint's own dtype (open-instruct's torch_dtype='auto').")
@click.option("--gate", type=float, default=0.371, show_default=True, help="MMLU gate (absolute).")
@click.option("--reference-mmlu", type=click.Path(path_type=Path), default=None,
              help="Relative gate (75%): the reference's MMLU metrics.json.")
@click.option("--trust-remote-code", is_flag=True, help="Let the checkpoint run its own code (off by default).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def mmlu_command(checkpoint, data, out, ntrain, subjects, batch_size, dtype, gate, reference_mmlu,
                 trust_remote_code, quiet):
    """MMLU as open-instruct scored it (SPEC 3): metrics.json and one CSV per subject in --out."""
    from . import mmlu
    from .evaluate import check_output_dir, read_mmlu_average

    out = check_output_dir(out)
    reference_average = read_mmlu_average(reference_mmlu) if reference_mmlu is not None else None
    run = mmlu.mmlu_checkpoint(checkpoint, data, out, ntrain, subjects.split(",") if subjects else None,
                               batch_size, dtype, trust_remote_code, show_progress=not quiet)
    for name, value in run.metrics["cat_acc"].items():
        click.echo(f"{name:32} {value:.4f}")
    click.echo(f"{'MMLU average':32} {run.average:.4f}  ({sum(len(t) for t in run.tables.values())} questions, "
               f"{len(run.tables)} subjects, ntrain {ntrain})")
    click.echo(mmlu.format_gate(mmlu.utility_gate(run.average, gate, reference_average)))
    click.echo(f"wrote {out}")


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--mmlu-metrics", type=click.Path(path_type=Path), default=None, help="MMLU metrics.json.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write evaluation_results.jsonl here.")
@click.option("--gate", type=float, default=0.371, show_default=True)
@click.option("--reference-mmlu", type=click.Path(path_type=Path), default=None,
              help="Relative gate (75%): the reference's MMLU metrics.json (gate.json goes beside --out).")
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON only.")
def score(folder, mmlu_metrics, out, gate, reference_mmlu, as_json):
    """Recompute every metric from the CSVs of an evaluation folder (ours or the official script's)."""
    from .evaluate import read_mmlu_average, score_directory
    from .mmlu import GATE_FILE, utility_gate, write_json

    mmlu = read_mmlu_average(mmlu_metrics) if mmlu_metrics is not None else None
    reference = read_mmlu_average(reference_mmlu) if reference_mmlu is not None else None
    result = score_directory(folder, mmlu)
    gate_report = utility_gate(result.mmlu_average, gate, reference)
    if out is not None:
        result.write(out)
        write_json(out.parent / GATE_FILE, gate_report)
    click.echo(result.to_json() if as_json else format_result_table(result, gate, gate_report))


@main.command()
@click.option("--task-aggregate", required=True, type=float)
@click.option("--mia-score", required=True, type=float)
@click.option("--mmlu", required=True, type=float)
@click.option("--gate", type=float, default=0.371, show_default=True)
@click.option("--reference-mmlu", type=float, default=None, help="Reference model's MMLU: adds the relative (75%) gate.")
@click.option("--json", "as_json", is_flag=True)
def aggregate(task_aggregate, mia_score, mmlu, gate, reference_mmlu, as_json):
    """The final score from its three parts, and the MMLU gate."""
    from .mmlu import format_gate, utility_gate
    from .scoring import final_score

    final = final_score(task_aggregate, mmlu, mia_score)
    report = utility_gate(mmlu, gate, reference_mmlu)
    if as_json:
        click.echo(json.dumps({"aggregate-score": final, "mmlu_gate": gate, "mmlu_gate_passed": report["passed"],
                               "gate": report}))
    else:
        click.echo(f"final score: {final:.4f}\n{format_gate(report)}")


@main.command("make-stub")
@click.option("--out", type=click.Path(path_type=Path), default=Path("data_stub"), show_default=True,
              help="Folder to write the stub data into.")
def make_stub(out):
    """Write the synthetic stub data (deterministic: reproduces the committed data_stub/ byte for byte)."""
    from .stub import generate_stub

    files = generate_stub(out)
    click.echo(f"wrote {len(files)} files under {out}")


@main.command("make-target")
@click.option("--data", type=click.Path(path_type=Path), default=Path("data_stub"), show_default=True,
              help="Stub data folder (as make-stub writes it).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Model folder. Default: $LUME_HARNESS_CACHE (or ~/.cache/lume-harness)/target-<data hash>.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def make_target(data, out, quiet):
    """Train (or reuse from the cache) the tiny OLMo target that memorizes the stub; prints its folder last."""
    from .target import TargetCheckFailed, build_target

    try:
        build = build_target(data, out, progress=not quiet, log=lambda line: click.echo(line, err=True))
    except TargetCheckFailed as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(build.path)


@main.command()
@click.argument("result_dir", type=click.Path(path_type=Path))
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Evaluation folder of the model before unlearning: 'before' bars, changes, retain items lost.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Report folder (default RESULT_DIR/report).")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples for the 95% intervals (0: none).")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="With --mia: first write RESULT_DIR/mia_results/extra.csv (extra MIA attacks) from this model.")
@click.option("--mia", type=click.Path(path_type=Path), default=None, help="Folder with member.jsonl, nonmember.jsonl.")
@click.option("--dtype", type=click.Choice(["bfloat16", "float32", "float16"]), default="bfloat16", show_default=True,
              help="--checkpoint only.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="--checkpoint only.")
@click.option("--trust-remote-code", is_flag=True, help="--checkpoint only.")
def report(result_dir, baseline, out, n_bootstrap, seed, checkpoint, mia, dtype, batch_size, trust_remote_code):
    """Write an HTML report (self-contained) and its Markdown twin for an evaluation folder."""
    from .report import write_report

    if (checkpoint is None) != (mia is None):
        raise InputError("--checkpoint and --mia go together (they write mia_results/extra.csv)")
    if checkpoint is not None:
        from .engine import check_checkpoint
        from .mia_extra import write_mia_extra

        check_checkpoint(checkpoint)
        extra = write_mia_extra(checkpoint, mia, result_dir, dtype, batch_size, trust_remote_code=trust_remote_code)
        click.echo(f"wrote {extra}")
    files = write_report(result_dir, out, baseline, n_bootstrap, seed)
    click.echo(f"wrote {files.html}\nwrote {files.markdown}")


@main.command()
@click.argument("a_dir", type=click.Path(path_type=Path))
@click.argument("b_dir", type=click.Path(path_type=Path))
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--all", "show_all", is_flag=True, help="Also per-task metrics and the 12 terms.")
@click.option("--json", "as_json", is_flag=True)
def compare(a_dir, b_dir, n_bootstrap, seed, show_all, as_json):
    """B - A for every metric of two evaluation folders, with bootstrap intervals (paired where the rows are
    the same) and a verdict whether B is better beyond noise."""
    from .compare import compare_directories, format_comparison

    comparison = compare_directories(a_dir, b_dir, n_bootstrap, seed)
    click.echo(json.dumps(comparison.to_dict()) if as_json else format_comparison(comparison, show_all))


@main.command("dry-run")
@click.option("--submission", default="submission", show_default=True,
              help="The submission: a single .py file or an importable module name, with unlearn() at top level.")
@click.option("--data", type=click.Path(path_type=Path), default=Path("data_stub"), show_default=True,
              help="Stub data folder (as make-stub writes it).")
@click.option("--split", type=click.Choice(["train", "validation"]), default="train", show_default=True,
              help="Stub split handed to the submission and scored.")
@click.option("--time-limit", type=float, default=None,
              help="Seconds before the submission is killed (default: the organizers' hour scaled to the stub, "
                   "see evaluator/dryrun.py; about 85 s).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/dry-run"), show_default=True,
              help="Output folder (cleared when an earlier dry-run made it).")
@click.option("--mode", type=click.Choice(["official", "fast"]), default="official", show_default=True,
              help="Scoring mode of the evaluator (fast: batched, may differ where the model is unsure).")
@click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True,
              help="Torch threads for scoring and OMP_NUM_THREADS for the submission (0: leave the defaults).")
@click.option("--submission-kwargs", default=None,
              help="JSON object of keyword arguments added to the four positional ones (not what the organizers "
                   "did; for quick checks).")
@click.option("--no-cache", is_flag=True, help="Score the target again instead of reusing cached before scores.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the table.")
@click.option("--progress", is_flag=True, help="Progress bars while building and scoring.")
@click.option("--report", "make_report", is_flag=True,
              help="Also write the HTML/Markdown report of the after scores, with the before scores as the baseline "
                   "and 1000 bootstrap resamples (seed 0), into --out/report/ (report.html, report.md).")
def dry_run_command(submission, data, split, time_limit, out, mode, threads, submission_kwargs, no_cache, as_json,
                    progress, make_report):
    """Run a submission as the organizers did (separate process, hard time limit, four positional arguments)
    on the stub target, score before and after, apply both MMLU gates, place the score on the leaderboards.

    Exit codes: 0 ok, 2 bad input, 3 the submission raised, 4 it ran past the time limit, 5 it wrote no
    checkpoint, 6 its checkpoint does not load (or there is more than one), 7 it changed the input model,
    8 it fails an MMLU gate.
    """
    from .dryrun import DryRunSettings, dry_run

    kwargs = {}
    if submission_kwargs is not None:
        try:
            kwargs = json.loads(submission_kwargs)
        except json.JSONDecodeError as exc:
            raise InputError(f"--submission-kwargs: malformed JSON ({exc.msg})") from None
        if not isinstance(kwargs, dict):
            raise InputError("--submission-kwargs: not a JSON object")
    settings = DryRunSettings(submission=submission, data=data, split=split, out=out, time_limit_s=time_limit,
                              mode=mode, threads=threads, submission_kwargs=kwargs, use_cache=not no_cache,
                              show_progress=progress, report=make_report)
    report = dry_run(settings, log=lambda line: click.echo(line, err=True))
    click.echo(json.dumps(report.summary, indent=2) if as_json else report.table)
    click.echo(f"wrote {out}/summary.json" + (", evaluation_results.jsonl" if report.summary["after"] else "")
               + (f", {report.summary['report']['html']}" if report.summary.get("report") else ""), err=True)
    sys.exit(report.exit_code)


@main.command("pack")
@click.option("--submission", default="submission", show_default=True,
              help="The package to pack (found on disk, never imported).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("unlearn_submission.py"), show_default=True,
              help="The single .py file to write.")
def pack_command(submission, out):
    """One self-contained .py file with unlearn() and every module of the package it needs (the organizers
    took a single file). Check it with: unlearn-eval dry-run --submission OUT."""
    from .pack import pack

    result = pack(submission, out)
    click.echo(f"wrote {result.path} ({len(result.text.encode()) // 1024} KiB): {', '.join(result.modules)}")


@main.command("check")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--thresholds", type=click.Path(path_type=Path), default=None,
              help="TOML file of thresholds (e.g. ci/thresholds.toml); options override its values.")
@click.option("--min-final", type=float, default=None, help="Final score at least this.")
@click.option("--min-task-aggregate", type=float, default=None, help="Task aggregate at least this.")
@click.option("--min-mia", type=float, default=None, help="MIA score (mia_final_score) at least this.")
@click.option("--min-mmlu", type=float, default=None, help="MMLU average at least this.")
@click.option("--gate", "gates", type=click.Choice(["absolute", "relative"]), multiple=True,
              help="MMLU gate: absolute (>= 0.371) or relative (>= 75% of before; needs a dry-run summary.json).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: each check with its value, limit, margin (value - limit) and passed, and the exit code.")
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
    from .check import (EXIT_NOT_FINISHED, checks_json, exit_code, format_checks, read_figures, read_thresholds,
                        run_checks, validate_thresholds)

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


if __name__ == "__main__":
    sys.exit(main())
