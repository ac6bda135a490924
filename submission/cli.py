"""``unlearn MODEL OUT FORGET RETAIN [options]``: a thin command line over ``submission.unlearn``.

Under ``accelerate launch`` every process runs this command; the loop shares the work.
Bad input: one line on stderr naming the file and the problem, exit status 2, nothing written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import click

from .calibration import SWAP_RULES
from .data import SubmissionInputError
from .methods import METHODS
from .train import DEFAULT_METHOD, METHOD_DEFAULTS, MIXED_PRECISION, UnlearnSettings, unlearn

SHARED_DEFAULTS = {f.name: f.default for f in dataclasses.fields(UnlearnSettings)
                   if f.default is not dataclasses.MISSING}
# What a default of None means, per setting (train.UnlearnSettings, train._auto_lora).
NONE_MEANS = {
    "max_steps": "from --epochs",
    "retain_batch_size": "--batch-size",
    "forget_nll_ceiling": "none",
    "calibration_docs": "none: baked-in documents, else swapped forget/retain ones",
    "lr_distance": "not scaled",
    "mia_tasks": "every task",
    "lr_width": "not scaled",
    "lora_rank": "0 (full-parameter), 16 where the model does not fit one GPU",
    "lora_alpha": "2 x rank",
    "safety_margin_s": "10% of the budget",
    "train_dtype": "float32 (bfloat16 under ZeRO-3)",
}
NOTES = {"time_budget_s": " ($LUME_TIME_LIMIT_S when set)"}


class SettingOption(click.Option):
    """An option that defaults to None (the chosen method's settings fill it in) but shows the value it gets,
    ``show_default``, as click shows a plain default: ``[default: 4]``, not ``[default: (4)]``."""

    def get_help_extra(self, ctx):  # click >= 8.2 (older clicks show the same text in parentheses)
        extra = super().get_help_extra(ctx)
        if isinstance(self.show_default, str):
            extra["default"] = self.show_default
        return extra


def setting(*decls: str, **kwargs):
    """The option of the ``UnlearnSettings`` field it names (``--lr``, ``learning_rate``; ``--epochs``:
    ``epochs``): None unless given, so that the chosen method's settings fill it in; its help shows the value."""
    name = decls[-1] if not decls[-1].startswith("-") else decls[0].split("/")[0].lstrip("-").replace("-", "_")
    return click.option(*decls, cls=SettingOption, default=None, show_default=shown_default(name), **kwargs)


def shown_default(name: str) -> str:
    """The default of setting ``name`` under the default method, and the methods whose own default differs
    (the options default to None and the chosen method's settings fill them: train.resolve_options)."""
    def value(method: str) -> str:
        setting = METHOD_DEFAULTS[method].get(name, SHARED_DEFAULTS[name])
        if setting is None:
            return NONE_MEANS.get(name, "none")
        if isinstance(setting, bool):
            return "on" if setting else "off"
        return f"{setting:g}" if isinstance(setting, float) else str(setting)

    default = value(DEFAULT_METHOD) + NOTES.get(name, "")
    differ = {m: value(m) for m in sorted(METHODS) if m != DEFAULT_METHOD and value(m) != value(DEFAULT_METHOD)}
    if not differ:
        return default
    if len(differ) == len(METHODS) - 1 and len(set(differ.values())) == 1:
        return f"{default} with {DEFAULT_METHOD}, {next(iter(differ.values()))} with every other method"
    return f"{default} with {DEFAULT_METHOD}; " + "; ".join(f"{v} with {m}" for m, v in differ.items())


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="lume-unlearning", prog_name="unlearn")
@click.argument("model", type=click.Path())
@click.argument("out", type=click.Path())
@click.argument("forget", type=click.Path())
@click.argument("retain", type=click.Path())
@setting("--method", type=click.Choice(sorted(METHODS)),
         help="Unlearning method; it sets the defaults of the options below where they differ per method.")
@setting("--time-budget", "time_budget_s", type=float,
         help="Seconds the whole run may take (the organizers' limit was 3600).")
@setting("--safety-margin", "safety_margin_s", type=float, help="Seconds kept free at the end of the budget.")
@setting("--lr", "learning_rate", type=float, help="Learning rate.")
@setting("--lr-width", type=int, help="Scale --lr by this / the model's hidden size (muP-style: the rate is "
                                      "the one for a model this wide).")
@setting("--lr-distance", type=float, help="Under a ceiling, scale the rate by min(1, distance / this), the "
                                             "distance (nats/token) from the forget documents' median loss to "
                                             "the ceiling, measured before training (0: not scaled).")
@setting("--epochs", type=float, help="Passes over the forget rows.")
@setting("--max-extension", type=float, help="Under a ceiling, go on up to this many times the planned steps "
                                             "while forget rows still sit below it, or while the selection's "
                                             "attack still finds them (--extension-auc).")
@setting("--extension-auc", type=float, help="Past the planned steps, also go on while the selection's attack AUC "
                                             "on the forget documents is above this, a measured ceiling raised to "
                                             "where the unseen documents sit now (1: never).")
@setting("--max-steps", type=int, help="Optimizer steps (overrides --epochs).")
@setting("--batch-size", type=int, help="Forget rows per step and process.")
@setting("--retain-batch-size", type=int, help="Retain rows per step and process.")
@setting("--chunk-size", type=int, help="Forget rows per chunk (sequential_gd).")
@setting("--retain-weight", type=float, help="Weight of the retain loss.")
@setting("--forget-weight", type=float, help="Weight of the forget loss.")
@setting("--beta", type=float, help="NPO/SimNPO temperature.")
@setting("--gamma", type=float, help="SimNPO margin.")
@setting("--forget-nll-ceiling",
         help="Stop ascending on forget rows whose loss (nats/token) is above this; 'measured': the loss of "
              "documents of their kind the model never saw, measured before training.")
@setting("--calibration-docs", type=click.Path(exists=True),
         help="Documents of the members' kind the model never saw (a folder of .jsonl files with a 'document' "
              "field, like the release's mia_data/nonmember.jsonl, or .txt files): the 'measured' level and "
              "the selection's membership score use them instead of swapped forget/retain documents.")
@setting("--swapped-words", type=click.Choice(list(SWAP_RULES)),
         help="Without calibration documents, which words the swapped forget/retain documents swap: every "
              "capitalized word, number and e-mail address, or not a capitalized word opening a sentence "
              "(nearer the level on a model that learned the members' kind first: README, 'Methods').")
@setting("--mia-tasks",
         help="The tasks whose documents the membership attack scores (comma-separated, e.g. Task3, as in the "
              "public release): the level and the selection's attack are theirs alone, and the other tasks' "
              "forget rows stop at --other-tasks-share of the level of their own task's swapped documents.")
@setting("--other-tasks-share", type=float,
         help="With --mia-tasks: the share of their own task's level at which the other tasks' forget rows stop "
              "(the attack does not score them; 0.25 did better on small targets that only memorized).")
@setting("--level-target-weight", type=float,
         help="Under a ceiling, also descend the cross-entropy from a target that puts each forget token at the level "
              "(the model's other predictions kept), with this weight (0: the ascent alone; 1 raised the task "
              "aggregate on the real-text targets: README, 'The submission').")
@setting("--pull-back-passes", type=int,
         help="After the run, this many selection passes search the line from the model handed over to the best "
              "checkpoint (and past it) for the point where the selection's attack no longer finds the forget "
              "documents; the best by the selection's score is kept (0: off).")
@setting("--pull-back-span", type=float,
         help="How far along that line the pull-back looks: alpha in [1 - span, 1 + span].")
@setting("--lora-rank", type=int, help="LoRA rank (0: full-parameter training).")
@setting("--lora-alpha", type=float, help="LoRA alpha.")
@setting("--gradient-checkpointing/--no-gradient-checkpointing",
         help="Recompute activations in the backward pass (less memory, slower).")
@setting("--holdout-fraction", type=float,
         help="Share of each (task, kind) group kept out of training to pick the best checkpoint.")
@setting("--evaluations", type=int, help="Selection passes over the run.")
@setting("--selection-time-share", type=float,
         help="When the planned passes and steps would not fit the time left, space the passes out so that they "
              "take what the steps leave, and at least this share of the time left.")
@setting("--pace-selection/--no-pace-selection", help="Space the selection passes out when the clock asks for it "
                                                    "(--selection-time-share); off: every --evaluations-th step.")
@setting("--selection-dtype", type=click.Choice(["float32", "bfloat16", "float16"]),
         help="Dtype the selection passes score the model in (the organizers load it in bfloat16).")
@setting("--seed", type=int, help="Training seed.")
@setting("--train-dtype", type=click.Choice(["float32", "bfloat16", "float16"]), help="Dtype the model is trained in.")
@setting("--mixed-precision", type=click.Choice(list(MIXED_PRECISION)),
         help="bfloat16 autocast over float32 weights: auto on a GPU, bfloat16 also on CPU, no never (weights kept "
              "in bfloat16 lose Adam steps under half their spacing).")
@click.option("--trust-remote-code", is_flag=True, default=None,
              help="Let the checkpoint run its own code (off by default).")
@click.option("--progress/--quiet", "progress", default=True, show_default=True,
              help="Progress lines, and the summary JSON line at the end (--quiet: neither).")
def command(model, out, forget, retain, progress, **options):
    """Unlearn FORGET from the model in MODEL, keep RETAIN, write the best checkpoint to OUT.

    MODEL is a model folder or a Hugging Face id (owner/name[@revision]) already in the local Hugging Face
    cache (never downloaded here: fetch it first with `hf download owner/name`).

    FORGET and RETAIN are folders holding forget.parquet / forget.jsonl (retain.*), or such files.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if not progress:
        options["verbose"] = False
    try:
        summary = unlearn(model, out, forget, retain, **options)
    except SubmissionInputError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if progress and os.environ.get("RANK", "0") == "0":  # one summary line, from the main process
        click.echo(json.dumps(summary))
    _end_distributed()


def _end_distributed() -> None:
    """Under several processes: wait for all, then tear the process group down before the interpreter exits
    (left to exit-time destructors, gloo's threads can abort one process while another still closes its
    connections: seen in the evaluator's two-process runs, once in 9)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main() -> int:
    command.main(prog_name="unlearn")  # click exits itself: 0, 2 for usage and input errors, 1 for a crash
    return 0


if __name__ == "__main__":
    sys.exit(main())
