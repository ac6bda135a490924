"""``evaluate``, ``mmlu``, ``score``, ``aggregate``: scoring a checkpoint or a folder, and the final score.

The model code (``evaluator.model``: torch, transformers) is imported inside the commands that load a
checkpoint, so that ``unlearn-eval --help`` and the torch-free commands start without it.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import click

from evaluator.analysis.report import write_report
from evaluator.cli.params import (
    AliasedOption,
    absolute_gate_option,
    out_folder,
    progress_option,
    reference_mmlu_option,
)
from evaluator.cli.root import journal_kept, terminated
from evaluator.core.atomic import check_output_dir, write_json
from evaluator.core.errors import InputError
from evaluator.core.gate import GATE_FILE, format_gate, utility_gate
from evaluator.core.hub import check_download_allowed, resolve_model
from evaluator.core.modes import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DTYPE,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MODE,
    DEFAULT_NTRAIN,
    DTYPES,
    MODES,
    mmlu_batch_size,
)
from evaluator.core.numbers import format_number
from evaluator.core.provenance import RUN_FILE, describe_run, read_run
from evaluator.core.results import RESULTS_FILE, read_mmlu_average
from evaluator.core.scoring import KNOWLEDGE, REGURGITATION, final_score
from evaluator.core.tables import score_directory

CHECKPOINT_HELP = ("Model folder (HF format), or a Hugging Face id owner/name[@revision] read from the local "
                   "Hugging Face cache (see --download).")
DOWNLOAD_HELP = ("Fetch a Hugging Face id that is not in the local cache (needs the network; refused while "
                 "HF_HUB_OFFLINE is set).")


def resolve_checkpoint(checkpoint: Path, download: bool) -> Path:
    """The folder of ``--checkpoint``: itself, or a Hugging Face id's snapshot in the cache
    (``evaluator.core.hub``), fetched first with ``--download`` (refused while HF_HUB_OFFLINE is set)."""
    if download:
        check_download_allowed()
    return resolve_model(checkpoint, allow_download=download, download_option="--download")


def format_result_table(result, gate_report: dict) -> str:
    """A short human table: per task forget/retain, the aggregates, MIA, MMLU, final, and the MMLU gates
    (``gate_report``, from ``evaluator.core.gate.utility_gate``)."""
    f_ = format_number
    lines = [f"{'':8} {'forget regurg':>14} {'forget know':>12} {'retain regurg':>14} {'retain know':>12}"]
    tasks = sorted(k for k in {**result.forget, **result.retain} if not k.startswith("overall-"))
    for task in tasks:
        f, r = result.forget.get(task, {}), result.retain.get(task, {})
        lines.append(f"{task:8} {f_(f.get(REGURGITATION)):>14} {f_(f.get(KNOWLEDGE)):>12} "
                     f"{f_(r.get(REGURGITATION)):>14} {f_(r.get(KNOWLEDGE)):>12}")
    lines.append(f"{'overall':8} {f_(result.forget['overall-regurgitation-score']):>14} "
                 f"{f_(result.forget['overall-knowledge-score']):>12} "
                 f"{f_(result.retain['overall-regurgitation-score']):>14} "
                 f"{f_(result.retain['overall-knowledge-score']):>12}")
    lines += [
        f"task aggregate (harmonic mean of {len(result.aggregated_terms)} terms): {f_(result.task_aggregate)}",
        f"MIA loss AUC: {f_(result.mia_loss_acc)}   MIA score: {f_(result.mia_final_score)}",
        f"MMLU average: {f_(result.mmlu_average)}",
        f"final score: {f_(result.final)}" + ("" if result.final is not None else "  (needs both MMLU and MIA)"),
        format_gate(gate_report),
    ]
    return "\n".join(lines)


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help=CHECKPOINT_HELP)
@click.option("--download", is_flag=True, help=DOWNLOAD_HELP)
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Folder with forget/retain .jsonl or .parquet, a release root (HF layout), or one file.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--split", default=None, show_default="none; the HF layout needs one",
              help="Split of the HF layout (train or validation).")
@click.option("--mia", type=click.Path(path_type=Path), default=None, show_default="no MIA score",
              help="Folder with member.jsonl, nonmember.jsonl.")
@click.option("--mmlu-metrics", type=click.Path(path_type=Path), default=None, show_default="no MMLU",
              help="MMLU metrics.json.")
@click.option("--mode", type=click.Choice(MODES), default=DEFAULT_MODE, show_default=True,
              help="Scoring mode (official: the organizers' generation, row by row; fast: batched).")
@click.option("--dtype", type=click.Choice(DTYPES), default=DEFAULT_DTYPE, show_default=True,
              help="Dtype the checkpoint is loaded in.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Fast mode only.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=DEFAULT_MAX_NEW_TOKENS, show_default=True)
@click.option("--recheck-margin", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Fast mode: regenerate the official way every row whose top-2 logit gap fell below this "
                   "(0.25 makes a confident model's generations those of official mode; 0 = off).")
@absolute_gate_option()
@click.option("--mmlu-data", type=click.Path(path_type=Path), default=None, show_default="no inline MMLU",
              help="MMLU folder (CSV dev/, test/, or cais/mmlu parquet <subject>/test-*.parquet): run MMLU inline on "
                   "the loaded checkpoint, outputs in --out/mmlu/.")
@click.option("--ntrain", type=click.IntRange(min=0), default=DEFAULT_NTRAIN, show_default=True,
              help="MMLU dev examples (--mmlu-data).")
@click.option("--mmlu-subjects", default=None, show_default="all", help="Comma-separated MMLU subjects (--mmlu-data).")
@reference_mmlu_option(runs_on="--mmlu-data")
@click.option("--trust-remote-code", is_flag=True, help="Let the checkpoint run its own code (off by default).")
@progress_option(True, "Progress bars (--quiet: none).")
@click.option("--report", "make_report", is_flag=True,
              help="Also write the HTML/Markdown report (with 1000 bootstrap resamples) into --out/report/.")
@click.option("--no-resume", is_flag=True,
              help="Start over: neither reuse nor keep the rows a killed run of the same checkpoint, data and "
                   "settings left in --out/.partial/ (by default they are reused).")
@click.option("--mia-extra", is_flag=True,
              help="Needs --mia: also write --out/mia_results/extra.csv (zlib, Min-K%, Min-K%++ diagnostics; "
                   "loads the checkpoint once more).")
def evaluate(checkpoint, download, data, out, split, mia, mmlu_metrics, mode, dtype, batch_size, max_new_tokens,
             recheck_margin, gate, mmlu_data, ntrain, mmlu_subjects, reference_mmlu, trust_remote_code, progress,
             make_report, no_resume, mia_extra):
    """Generate, score and write the official files into --out (and --out/gate.json).

    Killed or stopped, the same command resumes from the finished rows kept in --out/.partial/ (also under
    accelerate launch, with any number of processes in official mode; the files equal an uninterrupted run's).
    Exit codes: 0 ok, 1 disk full or another I/O fault, 2 bad input,
    143 SIGTERM, 130 Ctrl-C (README: "What happens when...")."""
    from evaluator.model import mmlu  # lazy: torch and transformers load only when a checkpoint does
    from evaluator.model.engine import check_checkpoint
    from evaluator.model.evaluate import EvaluationSettings
    from evaluator.model.evaluate import evaluate as run

    settings = EvaluationSettings(mode=mode, dtype=dtype, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                  trust_remote_code=trust_remote_code, show_progress=progress,
                                  recheck_margin=recheck_margin, resume=not no_resume)
    journal_kept["evaluate"] = not no_resume  # every process journals its rows (evaluator/model/journal.py)
    previous = signal.signal(signal.SIGTERM, terminated)  # a clean line and exit 143; the journal keeps rows
    click.get_current_context().call_on_close(lambda: signal.signal(signal.SIGTERM, previous))
    if mmlu_data is not None and mmlu_metrics is not None:
        raise InputError("give --mmlu-metrics or --mmlu-data, not both")
    if mia_extra and mia is None:
        raise InputError("--mia-extra needs --mia (the member/nonmember documents)")
    checkpoint = resolve_checkpoint(checkpoint, download)
    subjects = mmlu_subjects.split(",") if mmlu_subjects else None
    mmlu_batch = mmlu_batch_size(mode, batch_size)
    runner = (mmlu.InlineMMLU(mmlu_data, out / "mmlu", ntrain, mmlu_batch, subjects, show_progress=progress)
              if mmlu_data is not None else None)
    reference_average = reference_mmlu.average if reference_mmlu is not None else None  # a number or metrics.json
    reference_checkpoint = None
    if reference_mmlu is not None and reference_mmlu.checkpoint is not None:  # checked before the long run
        reference_checkpoint = resolve_checkpoint(reference_mmlu.checkpoint, download)
        check_checkpoint(reference_checkpoint)
        if mmlu_data is None:
            raise InputError(f"{reference_mmlu.source}: a reference checkpoint needs --mmlu-data "
                             f"(or give its metrics.json, or its MMLU average as a number)")
    result = run(checkpoint, data, out, split=split, mia=mia, mmlu_metrics=mmlu_metrics, settings=settings,
                 mmlu_runner=runner)
    if result is not None:  # None on the non-main processes of a distributed run
        if reference_checkpoint is not None:
            reference_average = mmlu.reference_mmlu_average(
                reference_checkpoint, mmlu_data, out / "mmlu_reference", ntrain=ntrain, subjects=subjects,
                batch_size=mmlu_batch, dtype=dtype, trust_remote_code=trust_remote_code, show_progress=progress)
        gate_report = utility_gate(result.mmlu_average, gate, reference_average)
        write_json(out / GATE_FILE, gate_report)
        click.echo(format_result_table(result, gate_report))
        if mia_extra:
            from evaluator.model.mia_extra import write_mia_extra  # lazy: torch

            extra = write_mia_extra(checkpoint, mia, out, dtype, trust_remote_code=trust_remote_code)
            click.echo(f"wrote {extra}")
        if make_report:
            click.echo(f"wrote {write_report(out, out / 'report').html}")
        click.echo(f"wrote {out}")


@click.command("mmlu")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help=CHECKPOINT_HELP)
@click.option("--download", is_flag=True, help=DOWNLOAD_HELP)
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="MMLU folder: CSV (dev/, test/, <subject>_<split>.csv) or the cais/mmlu parquet layout "
                   "(<subject>/dev-*.parquet, test-*.parquet, or all/).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output folder (metrics.json, <subject>.csv).")
@click.option("--ntrain", type=click.IntRange(min=0), default=DEFAULT_NTRAIN, show_default=True,
              help="Dev examples per prompt.")
@click.option("--mmlu-subjects", "--subjects", "subjects", cls=AliasedOption, old_names=("--subjects",), default=None,
              show_default="every subject with test questions", help="Comma-separated MMLU subjects.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="1: open-instruct's one-prompt-at-a-time reference path; more: shared-header cache, batched.")
@click.option("--dtype", type=click.Choice(["auto", *DTYPES]), default="auto",
              show_default=True, help="Dtype the checkpoint is loaded in (auto: its own, as open-instruct's "
                                      "torch_dtype='auto').")
@absolute_gate_option()
@reference_mmlu_option(runs_on="--data")
@click.option("--trust-remote-code", is_flag=True, help="Let the checkpoint run its own code (off by default).")
@progress_option(True, "Progress bars (--quiet: none).")
def mmlu_command(checkpoint, download, data, out, ntrain, subjects, batch_size, dtype, gate, reference_mmlu,
                 trust_remote_code, progress):
    """MMLU as open-instruct's run_eval.py scored it for the organizers: metrics.json and one CSV per subject in
    --out."""
    from evaluator.model import mmlu  # lazy: torch and transformers load only when a checkpoint does

    out = check_output_dir(out)
    reference_average = reference_mmlu.average if reference_mmlu is not None else None  # a number or metrics.json
    reference_checkpoint = None
    if reference_mmlu is not None and reference_mmlu.checkpoint is not None:  # checked before the long run
        reference_checkpoint = resolve_checkpoint(reference_mmlu.checkpoint, download)
    checkpoint = resolve_checkpoint(checkpoint, download)
    subject_list = subjects.split(",") if subjects else None
    run = mmlu.mmlu_checkpoint(checkpoint, data, out, ntrain, subject_list, batch_size, dtype, trust_remote_code,
                               show_progress=progress)
    if reference_checkpoint is not None:  # the same questions and settings, outputs in --out/reference/
        reference_average = mmlu.reference_mmlu_average(
            reference_checkpoint, data, out / "reference", ntrain=ntrain, subjects=subject_list,
            batch_size=batch_size, dtype=dtype, trust_remote_code=trust_remote_code, show_progress=progress)
    for name, value in run.metrics["cat_acc"].items():
        click.echo(f"{name:32} {value:.4f}")
    click.echo(f"{'MMLU average':32} {run.average:.4f}  ({sum(len(t) for t in run.tables.values())} questions, "
               f"{len(run.tables)} subjects, ntrain {ntrain})")
    click.echo(format_gate(utility_gate(run.average, gate, reference_average)))
    click.echo(f"wrote {out}")


@click.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--mmlu-metrics", type=click.Path(path_type=Path), default=None, show_default="no MMLU",
              help="MMLU metrics.json.")
@click.option("--out", type=click.Path(path_type=Path), default=None, show_default="print only",
              help=f"Output folder: {RESULTS_FILE} and {GATE_FILE} are written into it.")
@absolute_gate_option()
@reference_mmlu_option()
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON only.")
def score(folder, mmlu_metrics, out, gate, reference_mmlu, as_json):
    """Recompute every metric from the CSVs of an evaluation folder (ours or the official script's)."""
    if out is not None:
        out = out_folder(out, RESULTS_FILE)
    mmlu = read_mmlu_average(mmlu_metrics) if mmlu_metrics is not None else None
    result = score_directory(folder, mmlu)
    gate_report = utility_gate(result.mmlu_average, gate, reference_mmlu.average if reference_mmlu else None)
    if out is not None:
        result.write(out / RESULTS_FILE)
        write_json(out / GATE_FILE, gate_report)
    click.echo(result.to_json() if as_json else format_result_table(result, gate_report))
    if out is not None:
        click.echo(f"wrote {out / RESULTS_FILE}, {out / GATE_FILE}", err=True)
    run = None if as_json else read_run(folder)
    if run is not None:
        click.echo(f"\nHow this was made ({folder / RUN_FILE}):")
        for line in describe_run(run):
            click.echo(f"  {line}")


@click.command()
@click.option("--task-aggregate", required=True, type=float)
@click.option("--mia-score", required=True, type=float)
@click.option("--mmlu", required=True, type=float)
@absolute_gate_option()
@reference_mmlu_option()
@click.option("--json", "as_json", is_flag=True, help="Print the result JSON only.")
def aggregate(task_aggregate, mia_score, mmlu, gate, reference_mmlu, as_json):
    """The final score from its three parts, and the MMLU gate."""
    final = final_score(task_aggregate, mmlu, mia_score)
    report = utility_gate(mmlu, gate, reference_mmlu.average if reference_mmlu else None)
    if as_json:
        click.echo(json.dumps({"aggregate-score": final, "mmlu_gate": gate, "mmlu_gate_passed": report["passed"],
                               "gate": report}))
    else:
        click.echo(f"final score: {final:.4f}\n{format_gate(report)}")


COMMANDS = (evaluate, mmlu_command, score, aggregate)
