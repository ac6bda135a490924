"""The root of ``unlearn-eval``: the click group and how it turns errors into one line and an exit code."""

from __future__ import annotations

import os
import sys

import click

from evaluator.core.errors import InputError

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub access at run time: checkpoints are folders


class Terminated(BaseException):
    """SIGTERM arrived (raised from the handler ``evaluate`` installs; a BaseException, so that no
    ``except Exception`` on the way swallows it)."""

    exit_code = 128 + 15


def end_distributed() -> None:
    """The process group torn down once a command is done (engine.end_distributed), where a command made one:
    only commands that load a model import torch."""
    if "torch" in sys.modules:
        from evaluator.model.engine import end_distributed as end

        end()


def terminated(signum, frame):
    raise Terminated()


journal_kept = {"evaluate": True}  # False under --no-resume: then no row is kept for a rerun


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
            result = super().invoke(ctx)
            end_distributed()
            return result
        except (click.exceptions.Exit, SystemExit):  # a command's own exit code (a failed gate, say)
            end_distributed()
            raise
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
                    if journal_kept.get(ctx.invoked_subcommand) else "")
            click.echo(f"error: stopped by {name}{hint}", err=True)
            ctx.exit(code)



# show_default: every command shows its options' defaults (the subcommands' contexts inherit it); an option
# whose default is "not given" says what that means (show_default="no MIA score": [default: (no MIA score)]).
@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="lume-unlearning", prog_name="unlearn-eval")
def main():
    """Evaluate SemEval-2025 Task 4 (LUME) unlearning checkpoints exactly as the organizers scored them."""
