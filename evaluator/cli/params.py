"""Options that several commands share, defined once so that a name has one meaning, one type and one help
text everywhere (issue 14: "a user learns one name per idea, and defaults shown everywhere"):

- ``--reference-mmlu`` (:class:`ReferenceMMLU`): the reference model's MMLU, for the relative gate: a number,
  a metrics.json (or the folder holding it), or, in the commands that can run MMLU (``evaluate`` with
  ``--mmlu-data``, ``mmlu``), a checkpoint;
- ``--absolute-gate``: the absolute MMLU gate's threshold (``check --gate absolute`` names that gate);
- ``--progress/--quiet``: progress output on or off, the default shown;
- ``--out``: always a folder (:func:`out_folder` refuses a file name where a command writes a fixed file);
- :class:`AliasedOption`: an option whose old names still work but are not shown (``--subjects``, ``--gate``).

``tests/test_cli_vocabulary.py`` walks every command of both command lines and holds them to this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import click

from evaluator.core.errors import InputError
from evaluator.core.gate import MMLU_GATE_7B, RELATIVE_GATE_FRACTION
from evaluator.core.hub import split_repo_id
from evaluator.core.results import read_mmlu_average

METRICS_FILE = "metrics.json"  # what `unlearn-eval mmlu` (and open-instruct) write


class AliasedOption(click.Option):
    """An option with old names (``old_names``) that are still accepted but left out of ``--help``."""

    def __init__(self, *args, old_names: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.old_names = tuple(old_names)

    def get_help_record(self, ctx):
        every = self.opts
        self.opts = [name for name in every if name not in self.old_names]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = every


@dataclass(frozen=True)
class Reference:
    """A parsed ``--reference-mmlu``: the average (given, or read from a metrics.json), or a checkpoint (a
    model folder or a Hugging Face id, resolved by the command) to run MMLU on."""

    average: float | None = None
    checkpoint: Path | None = None
    source: str = ""


class ReferenceMMLU(click.ParamType):
    """``--reference-mmlu``: the reference model's MMLU. ``checkpoints``: whether this command can run MMLU on
    a reference checkpoint (``evaluate``, ``mmlu``); elsewhere a checkpoint is refused with a line saying
    what to give instead."""

    name = "reference"

    def __init__(self, checkpoints: bool = False):
        self.checkpoints = checkpoints

    def get_metavar(self, param, ctx=None) -> str:
        return "NUMBER|FILE|DIR" + ("|ID" if self.checkpoints else "")

    def convert(self, value, param, ctx) -> Reference:
        if isinstance(value, Reference):
            return value
        text = str(value)
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:
            if math.isnan(number) or not 0 <= number <= 1:
                self.fail(f"{text}: an MMLU average is a fraction in [0, 1] (e.g. 0.56)", param, ctx)
            return Reference(average=number, source=text)
        path = Path(text)
        metrics = path / METRICS_FILE if path.is_dir() else path
        if metrics.is_file():
            try:
                return Reference(average=read_mmlu_average(metrics), source=str(metrics))
            except InputError as exc:
                self.fail(str(exc), param, ctx)
        is_model = path.is_dir() or (not path.exists() and path.suffix != ".json" and split_repo_id(path) is not None)
        if is_model and self.checkpoints:
            return Reference(checkpoint=path, source=text)
        if is_model:
            self.fail(f"{text}: {'a folder without ' + METRICS_FILE if path.is_dir() else 'not a file or folder'}; "
                      f"this command cannot run MMLU on a reference checkpoint: give its MMLU average as a number "
                      f"or its {METRICS_FILE} (`unlearn-eval mmlu` writes one)", param, ctx)
        self.fail(f"{text}: not a number, and no such file or folder (give a number such as 0.56, a "
                  f"{METRICS_FILE}, the folder holding it" + (", or a checkpoint)" if self.checkpoints else ")"),
                  param, ctx)


RELATIVE_GATE = f"MMLU gate, relative ({RELATIVE_GATE_FRACTION:.0%})"
REFERENCE_HELP = (f"{RELATIVE_GATE}: the reference model's MMLU: a number (0.56), a {METRICS_FILE} (or the folder "
                  f"holding it), or a checkpoint")


def reference_mmlu_option(runs_on: str | None = None):
    """``--reference-mmlu``; ``runs_on``: the option naming the MMLU data a reference checkpoint is run on
    (None: this command cannot run MMLU, a checkpoint is refused)."""
    tail = (f" (a model folder or a Hugging Face id; MMLU is run on it with {runs_on})." if runs_on is not None
            else " (only where MMLU can run: evaluate, mmlu).")
    return click.option("--reference-mmlu", type=ReferenceMMLU(checkpoints=runs_on is not None), default=None,
                        show_default="no relative gate", help=REFERENCE_HELP + tail)


def absolute_gate_option():
    """``--absolute-gate`` (old name ``--gate``, still accepted): ``check --gate absolute`` names this gate."""
    return click.option("--absolute-gate", "--gate", "gate", cls=AliasedOption, old_names=("--gate",), type=float,
                        default=MMLU_GATE_7B, show_default=True, help="MMLU gate, absolute: MMLU at least this.")


def progress_option(default: bool, help: str):
    """``--progress/--quiet``, ``help`` starting with "Progress"; the command gets ``progress``."""
    return click.option("--progress/--quiet", "progress", default=default, show_default=True, help=help)


def out_folder(out: Path, writes: str) -> Path:
    """``--out`` of a command that writes the fixed file ``writes`` into it: a folder (made when missing),
    never the file itself."""
    if out.suffix == Path(writes).suffix:
        raise InputError(f"{out}: --out is the folder to write {writes} into, not the file "
                         f"(give --out {out.parent})")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a folder")
    return out
