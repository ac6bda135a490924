"""Help and version of both commands: every ``--help`` exits 0 and shows no ``%%`` (in a click help string a
single ``%`` is the percent sign; ``%%`` is printed as it is), and ``--version`` prints the package version."""

from __future__ import annotations

import importlib.metadata

import click
import pytest
from click.testing import CliRunner

from evaluator.cli import main

VERSION = importlib.metadata.version("lume-unlearning")


def unlearn_command() -> click.Command:
    from submission.cli import command

    return command


def commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The argv prefix of every command under ``group`` (sub-groups walked too), the group itself first."""
    found = [path]
    context = click.Context(group)
    for name in group.list_commands(context):
        sub = group.get_command(context, name)
        found += commands(sub, (*path, name)) if isinstance(sub, click.Group) else [(*path, name)]
    return found


EVAL_COMMANDS = commands(main)


def help_of(command: click.Command, argv: tuple[str, ...], prog: str) -> str:
    result = CliRunner().invoke(command, [*argv, "--help"], prog_name=prog)
    assert result.exit_code == 0, f"{prog} {' '.join(argv)} --help: exit {result.exit_code}\n{result.output}"
    assert "%%" not in result.output, f"{prog} {' '.join(argv)} --help prints '%%':\n{result.output}"
    return result.output


def test_every_unlearn_eval_command_is_walked():
    names = {argv[0] for argv in EVAL_COMMANDS if argv}
    assert names == set(main.commands) and {"evaluate", "check", "report", "dry-run", "mmlu"} <= names


@pytest.mark.parametrize("argv", EVAL_COMMANDS, ids=lambda argv: " ".join(argv) or "unlearn-eval")
def test_unlearn_eval_help(argv):
    text = help_of(main, argv, "unlearn-eval")
    assert text.startswith(f"Usage: unlearn-eval {' '.join(argv)}".rstrip())


def test_percent_signs_in_help_are_single():
    """The help strings that mention a percentage show one '%'."""
    def words(argv):  # the help text with its line wrapping undone
        return " ".join(help_of(main, argv, "unlearn-eval").split())

    evaluate = words(("evaluate",))
    assert "(75%)" in evaluate and "Min-K%, Min-K%++" in evaluate
    assert "95% intervals" in words(("report",)) and "75% of before" in words(("check",))
    for command in ("evaluate", "mmlu", "score", "aggregate"):  # --reference-mmlu, one help text everywhere
        assert "MMLU gate, relative (75%): the reference model's MMLU" in words((command,)), command
    assert "[default: 10% of the budget]" in " ".join(help_of(unlearn_command(), (), "unlearn").split())


def test_check_help_lists_its_exit_codes():
    text = help_of(main, ("check",), "unlearn-eval")
    section = text[text.index("Exit codes:"):]
    for code, words in (("0", "every threshold holds"), ("1", "a threshold failed"), ("2", "bad input"),
                        ("3", "the run did not finish")):
        assert f"  {code}  {words}" in section, section


def test_unlearn_help():
    text = help_of(unlearn_command(), (), "unlearn")
    assert text.startswith("Usage: unlearn [OPTIONS] MODEL OUT FORGET RETAIN")


def test_unlearn_eval_version():
    result = CliRunner().invoke(main, ["--version"], prog_name="unlearn-eval")
    assert result.exit_code == 0 and result.output == f"unlearn-eval, version {VERSION}\n"
    assert "--version" in help_of(main, (), "unlearn-eval")


def test_unlearn_version():
    command = unlearn_command()
    if not any("--version" in p.opts for p in command.params):
        pytest.skip("unlearn has no --version yet: submission/cli.py was off-limits in the change that added "
                    "unlearn-eval --version (add @click.version_option(package_name=\"lume-unlearning\", "
                    "prog_name=\"unlearn\") to submission.cli.command)")
    result = CliRunner().invoke(command, ["--version"], prog_name="unlearn")
    assert result.exit_code == 0 and result.output == f"unlearn, version {VERSION}\n"
