"""``unlearn MODEL OUT FORGET RETAIN [options]``: a thin command line over ``submission.unlearn``.

Under ``accelerate launch`` every process runs this command; the loop shares the work.
Bad input: one line on stderr naming the file and the problem, exit status 2, nothing written.
"""

from __future__ import annotations

import json
import os
import sys

import click

from .data import SubmissionInputError
from .methods import METHODS
from .train import DEFAULT_METHOD, unlearn


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lume-unlearning", prog_name="unlearn")
@click.argument("model", type=click.Path())
@click.argument("out", type=click.Path())
@click.argument("forget", type=click.Path())
@click.argument("retain", type=click.Path())
@click.option("--method", type=click.Choice(sorted(METHODS)), default=None,
              help=f"Unlearning method (default {DEFAULT_METHOD}).")
@click.option("--time-budget", "time_budget_s", type=float, default=None,
              help="Seconds the whole run may take (default 3600, the organizers' limit).")
@click.option("--safety-margin", "safety_margin_s", type=float, default=None,
              help="Seconds kept free at the end of the budget (default 10% of it).")
@click.option("--lr", "learning_rate", type=float, default=None, help="Learning rate.")
@click.option("--epochs", type=float, default=None, help="Passes over the forget rows.")
@click.option("--max-steps", type=int, default=None, help="Optimizer steps (overrides --epochs).")
@click.option("--batch-size", type=int, default=None, help="Forget rows per step and process.")
@click.option("--retain-batch-size", type=int, default=None, help="Retain rows per step and process.")
@click.option("--chunk-size", type=int, default=None, help="Forget rows per chunk (sequential_gd).")
@click.option("--retain-weight", type=float, default=None, help="Weight of the retain loss.")
@click.option("--forget-weight", type=float, default=None, help="Weight of the forget loss.")
@click.option("--beta", type=float, default=None, help="NPO/SimNPO temperature.")
@click.option("--gamma", type=float, default=None, help="SimNPO margin.")
@click.option("--forget-nll-ceiling", default=None,
              help="Stop ascending on forget rows whose loss (nats/token) is above this; 'measured': the loss of "
                   "documents of their kind the model never saw, measured before training (capped_gd's default).")
@click.option("--calibration-docs", type=click.Path(exists=True), default=None,
              help="Documents of the members' kind the model never saw (a folder of .jsonl files with a 'document' "
                   "field, like the release's mia_data/nonmember.jsonl, or .txt files): the 'measured' level and "
                   "the selection's membership score use them instead of swapped forget/retain documents.")
@click.option("--lora-rank", type=int, default=None, help="LoRA rank (0: full-parameter training).")
@click.option("--lora-alpha", type=float, default=None, help="LoRA alpha (default 2 x rank).")
@click.option("--gradient-checkpointing/--no-gradient-checkpointing", default=None)
@click.option("--holdout-fraction", type=float, default=None,
              help="Share of each (task, kind) group kept out of training to pick the best checkpoint.")
@click.option("--evaluations", type=int, default=None, help="Selection passes over the run.")
@click.option("--selection-dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None,
              help="Dtype the selection passes score the model in (default bfloat16, as the organizers load it).")
@click.option("--seed", type=int, default=None)
@click.option("--train-dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None)
@click.option("--trust-remote-code", is_flag=True, default=None)
@click.option("--quiet", is_flag=True, help="No progress lines.")
def command(model, out, forget, retain, quiet, **options):
    """Unlearn FORGET from the model in MODEL, keep RETAIN, write the best checkpoint to OUT.

    MODEL is a model folder or a Hugging Face id (owner/name[@revision]) already in the local Hugging Face
    cache (never downloaded here: fetch it first with `hf download owner/name`).

    FORGET and RETAIN are folders holding forget.parquet / forget.jsonl (retain.*), or such files.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if quiet:
        options["verbose"] = False
    try:
        summary = unlearn(model, out, forget, retain, **options)
    except SubmissionInputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if not quiet and os.environ.get("RANK", "0") == "0":  # one summary line, from the main process
        click.echo(json.dumps(summary))


def main() -> int:
    command.main(prog_name="unlearn")  # click exits itself: 0, 2 for usage and input errors, 1 for a crash
    return 0


if __name__ == "__main__":
    sys.exit(main())
