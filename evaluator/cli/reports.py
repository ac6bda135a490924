"""``report`` and ``compare``: reading evaluation folders (``evaluator.analysis``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evaluator.analysis.bootstrap import DEFAULT_RESAMPLES
from evaluator.analysis.compare import compare_directories, format_comparison
from evaluator.analysis.report import write_report
from evaluator.cli.evaluation import DOWNLOAD_HELP, resolve_checkpoint
from evaluator.core.errors import InputError
from evaluator.core.modes import DEFAULT_DTYPE, DTYPES
from evaluator.core.provenance import RUN_FILE, describe_run, read_run, run_differences


@click.command()
@click.argument("result_dir", type=click.Path(path_type=Path))
@click.option("--baseline", type=click.Path(path_type=Path), default=None, show_default="none",
              help="Evaluation folder of the model before unlearning: 'before' bars, changes, retain items lost.")
@click.option("--out", type=click.Path(path_type=Path), default=None, show_default="RESULT_DIR/report",
              help="Output folder: report.html and report.md are written into it.")
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=0), default=DEFAULT_RESAMPLES, show_default=True,
              help="Bootstrap resamples for the 95% intervals (0: none).")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, show_default="none",
              help="With --mia: first write RESULT_DIR/mia_results/extra.csv (extra MIA attacks) from this model "
                   "(a folder, or a Hugging Face id owner/name[@revision] from the local cache).")
@click.option("--download", is_flag=True, help="--checkpoint only. " + DOWNLOAD_HELP)
@click.option("--mia", type=click.Path(path_type=Path), default=None, show_default="none",
              help="Folder with member.jsonl, nonmember.jsonl.")
@click.option("--dtype", type=click.Choice(DTYPES), default=DEFAULT_DTYPE, show_default=True,
              help="Dtype the checkpoint is loaded in (--checkpoint only).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="--checkpoint only.")
@click.option("--trust-remote-code", is_flag=True, help="Let the checkpoint run its own code (--checkpoint only).")
def report(result_dir, baseline, out, n_bootstrap, seed, checkpoint, download, mia, dtype, batch_size,
           trust_remote_code):
    """Write an HTML report (self-contained) and its Markdown twin for an evaluation folder."""
    if (checkpoint is None) != (mia is None):
        raise InputError("--checkpoint and --mia go together (they write mia_results/extra.csv)")
    if download and checkpoint is None:
        raise InputError("--download goes with --checkpoint (it fetches that model)")
    if checkpoint is not None:
        checkpoint = resolve_checkpoint(checkpoint, download)
        from evaluator.model.engine import check_checkpoint  # lazy: torch loads only when a checkpoint does
        from evaluator.model.mia_extra import write_mia_extra

        check_checkpoint(checkpoint)
        extra = write_mia_extra(checkpoint, mia, result_dir, dtype, batch_size, trust_remote_code=trust_remote_code)
        click.echo(f"wrote {extra}")
    files = write_report(result_dir, out, baseline, n_bootstrap, seed)
    click.echo(f"wrote {files.html}\nwrote {files.markdown}")


@click.command()
@click.argument("a_dir", type=click.Path(path_type=Path))
@click.argument("b_dir", type=click.Path(path_type=Path))
@click.option("--bootstrap", "n_bootstrap", type=click.IntRange(min=1), default=DEFAULT_RESAMPLES, show_default=True,
              help="Bootstrap resamples for the 95% intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--all", "show_all", is_flag=True, help="Also per-task metrics and the 12 terms.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison JSON only.")
def compare(a_dir, b_dir, n_bootstrap, seed, show_all, as_json):
    """B - A for every metric of two evaluation folders, with bootstrap intervals (paired where the rows are
    the same) and a verdict whether B is better beyond noise."""
    comparison = compare_directories(a_dir, b_dir, n_bootstrap, seed)
    runs = {"a": read_run(a_dir), "b": read_run(b_dir)}
    differences = run_differences(runs["a"], runs["b"]) if None not in runs.values() else []
    warning = (f"WARNING: A and B were made differently ({'; '.join(differences)}): their scores differ by "
               f"rounding as well as by the models" if differences else None)
    if as_json:
        click.echo(json.dumps({**comparison.to_dict(), "runs": runs, "run_differences": differences}))
        return
    click.echo(format_comparison(comparison, show_all))
    for label, folder in (("A", a_dir), ("B", b_dir)):
        run = runs[label.lower()]
        click.echo(f"\n{label}: how it was made ({folder / RUN_FILE}):" if run is not None
                   else f"\n{label}: no {RUN_FILE} in {folder} (how it was made is not recorded)")
        for line in describe_run(run) if run is not None else []:
            click.echo(f"  {line}")
    if warning:
        click.echo(f"\n{warning}")


COMMANDS = (report, compare)
