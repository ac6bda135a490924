"""``unlearn-eval``: a thin click layer over functions a user can call from Python."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .errors import InputError

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub access at run time: checkpoints are folders


class Group(click.Group):
    """Turns an :class:`InputError` anywhere below into one clear line and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    return f"{value:.4f}" if isinstance(value, (int, float)) else str(value)


def format_result_table(result, gate: float) -> str:
    """A short human table: per task forget/retain, the aggregates, MIA, MMLU, final, gate."""
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
    return "\n".join(lines)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--gate", type=float, default=0.371, show_default=True, help="MMLU gate (absolute).")
@click.option("--trust-remote-code", is_flag=True, help="Let the checkpoint run its own code (off by default).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def evaluate(checkpoint, data, out, split, mia, mmlu_metrics, mode, dtype, batch_size, max_new_tokens, gate,
             trust_remote_code, quiet):
    """Generate, score and write the official files into --out."""
    from .evaluate import EvaluationSettings, evaluate as run

    settings = EvaluationSettings(mode=mode, dtype=dtype, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                  trust_remote_code=trust_remote_code, show_progress=not quiet)
    result = run(checkpoint, data, out, split=split, mia=mia, mmlu_metrics=mmlu_metrics, settings=settings)
    if result is not None:  # None on the non-main processes of a distributed run
        click.echo(format_result_table(result, gate))
        click.echo(f"wrote {out}")


@main.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--mmlu-metrics", type=click.Path(path_type=Path), default=None, help="MMLU metrics.json.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write evaluation_results.jsonl here.")
@click.option("--gate", type=float, default=0.371, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results JSON only.")
def score(folder, mmlu_metrics, out, gate, as_json):
    """Recompute every metric from the CSVs of an evaluation folder (ours or the official script's)."""
    from .evaluate import read_mmlu_average, score_directory

    mmlu = read_mmlu_average(mmlu_metrics) if mmlu_metrics is not None else None
    result = score_directory(folder, mmlu)
    if out is not None:
        result.write(out)
    click.echo(result.to_json() if as_json else format_result_table(result, gate))


@main.command()
@click.option("--task-aggregate", required=True, type=float)
@click.option("--mia-score", required=True, type=float)
@click.option("--mmlu", required=True, type=float)
@click.option("--gate", type=float, default=0.371, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def aggregate(task_aggregate, mia_score, mmlu, gate, as_json):
    """The final score from its three parts, and the MMLU gate."""
    from .scoring import final_score, passes_mmlu_gate

    final = final_score(task_aggregate, mmlu, mia_score)
    passed = passes_mmlu_gate(mmlu, gate)
    if as_json:
        click.echo(json.dumps({"aggregate-score": final, "mmlu_gate": gate, "mmlu_gate_passed": passed}))
    else:
        click.echo(f"final score: {final:.4f}\nMMLU gate (>= {gate}): {'pass' if passed else 'FAIL'}")


if __name__ == "__main__":
    sys.exit(main())
