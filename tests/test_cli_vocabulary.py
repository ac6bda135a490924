"""One vocabulary (issue 14): a user learns one name per idea, and sees every default.

Every command of both command lines (``unlearn-eval``'s, walked from the click group, and ``unlearn``) is held
to the same rules: ``--help`` exits 0 and prints no ``%%``; every option that is neither a flag nor required
shows its default; no retired name is shown (``--subjects``, a bare ``--quiet``); ``--out`` is a folder; an
option name that several commands share has one kind of value everywhere, and the meaning :data:`MEANINGS`
gives it (or is listed in :data:`PER_COMMAND` with the reason its help may differ). Then the behaviour behind
three of the renames: ``score --out DIR``, ``pack --out DIR``, ``--reference-mmlu`` as a number, a metrics.json
or its folder.
"""

from __future__ import annotations

import json
from collections import defaultdict

import click
import pytest
from click.testing import CliRunner
from test_report import write_synthetic_folder

from evaluator.cli import main
from evaluator.cli.params import ReferenceMMLU
from evaluator.harness.pack import render
from submission.cli import command as unlearn

PROGRAMS = {"unlearn-eval": main, "unlearn": unlearn}

# Option name -> what its help says in every command that has it (case-insensitive, anywhere in the help).
MEANINGS = {
    "--reference-mmlu": "MMLU gate, relative (75%): the reference model's MMLU: a number (0.56), a metrics.json "
                        "(or the folder holding it), or a checkpoint",
    "--absolute-gate": "MMLU gate, absolute",
    "--progress": "Progress",
    "--out": "folder",
    "--trust-remote-code": "Let the checkpoint run its own code",
    "--json": "Print",
    "--mia": "Folder with member.jsonl, nonmember.jsonl",
    "--mmlu-metrics": "MMLU metrics.json",
    "--mmlu-subjects": "Comma-separated MMLU subjects",
    "--mmlu-data": "MMLU",
    "--dtype": "Dtype the checkpoint is loaded in",
    "--mode": "Scoring mode",
    "--report": "Also write the HTML/Markdown report",
    "--bootstrap": "Bootstrap resamples",
    "--ntrain": "dev examples",
    "--checkpoint": "model",
    "--download": "Fetch a Hugging Face id",
    "--calibration-docs": "of the members' kind",
    "--split": "Split",
}
# Shared names whose help is about the command's own object (the kind of value is still the same everywhere).
PER_COMMAND = {
    "--data": "the command's input data: forget/retain rows, MMLU questions or the stub",
    "--batch-size": "rows per batch of whatever the command runs: generation, MMLU prompts, training",
    "--seed": "the seed of whatever the command draws: bootstrap resamples, the training order",
    "--submission": "the submission to run (dry-run) or the package to pack (pack)",
    "--set": "a setting of what the command makes: the submission it packs (pack), the target it trains (make-target)",
}


def walk(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):
        sub = group.get_command(context, name)
        found += walk(sub, (*path, name)) if isinstance(sub, click.Group) else [((*path, name), sub)]
    return found


# (program, argv to the command, the command): every leaf command of both command lines.
COMMANDS = [("unlearn-eval", argv, cmd) for argv, cmd in walk(main)] + [("unlearn", (), unlearn)]
IDS = [" ".join((prog, *argv)) for prog, argv, _ in COMMANDS]


def context_of(prog: str, argv: tuple[str, ...], cmd: click.Command) -> click.Context:
    """The context ``--help`` runs in (a subcommand inherits the group's settings, show_default among them)."""
    root = PROGRAMS[prog]
    context = click.Context(root, info_name=prog, **root.context_settings)
    for name in argv:
        sub = context.command.get_command(context, name)
        context = click.Context(sub, info_name=name, parent=context, **sub.context_settings)
    return context


def options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option) and not p.hidden
            and p.name not in ("help", "version")]


def shown_names(option: click.Option) -> list[str]:
    """The names --help shows (an old name works but is not shown: evaluator.cli.params.AliasedOption)."""
    hidden = getattr(option, "old_names", ())
    return [name for name in (*option.opts, *option.secondary_opts) if name not in hidden]


def kind(option: click.Option) -> str:
    if option.is_flag:
        return "flag"
    for cls, name in ((click.types.IntParamType, "integer"), (click.types.FloatParamType, "number"),
                      (click.Path, "path"), (click.Choice, "text"), (click.types.StringParamType, "text")):
        if isinstance(option.type, cls):
            return name
    return type(option.type).__name__


def help_text(prog: str, argv: tuple[str, ...]) -> str:
    result = CliRunner().invoke(PROGRAMS[prog], [*argv, "--help"], prog_name=prog)
    assert result.exit_code == 0, f"{prog} {' '.join(argv)} --help: exit {result.exit_code}\n{result.output}"
    return result.output


def test_every_command_is_walked():
    assert {argv[0] for _, argv, _ in COMMANDS if argv} == set(main.commands)
    assert {"evaluate", "mmlu", "score", "aggregate", "pack", "dry-run", "check"} <= set(main.commands)


@pytest.mark.parametrize("prog, argv, cmd", COMMANDS, ids=IDS)
def test_help_exits_0_and_shows_every_default(prog, argv, cmd):
    text = help_text(prog, argv)
    assert "%%" not in text
    context = context_of(prog, argv, cmd)
    missing = []
    for option in options(cmd):
        plain_flag = option.is_flag and not option.secondary_opts
        if plain_flag or option.required:
            continue
        record = option.get_help_record(context)
        if record is None or "[default: " not in record[1]:
            missing.append("/".join(shown_names(option)))
    assert not missing, f"{prog} {' '.join(argv)}: no default shown for {', '.join(missing)}"


@pytest.mark.parametrize("prog, argv, cmd", COMMANDS, ids=IDS)
def test_no_retired_names(prog, argv, cmd):
    for option in options(cmd):
        names = shown_names(option)
        assert "--subjects" not in names, f"{prog} {' '.join(argv)}: --subjects is --mmlu-subjects now"
        assert "--gate" not in names or kind(option) == "text", \
            f"{prog} {' '.join(argv)}: the absolute gate's threshold is --absolute-gate (check --gate names gates)"
        if "--quiet" in names or "--progress" in names:
            assert option.opts == ["--progress"] and option.secondary_opts == ["--quiet"], \
                f"{prog} {' '.join(argv)}: progress output is the pair --progress/--quiet, not {names}"
            assert option.show_default, f"{prog} {' '.join(argv)}: --progress/--quiet shows its default"


def test_shared_names_mean_one_thing():
    seen: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # name -> (where, kind, help)
    for prog, argv, cmd in COMMANDS:
        for option in options(cmd):
            for name in shown_names(option):  # a pair (--progress/--quiet) under its first name
                if name in option.secondary_opts:
                    continue
                seen[name].append((" ".join((prog, *argv)), kind(option), option.help or ""))
    problems = []
    for name, uses in sorted(seen.items()):
        if name in MEANINGS:
            problems += [f"{name} in {where}: help does not say {MEANINGS[name]!r}: {text!r}"
                         for where, _, text in uses if MEANINGS[name].lower() not in text.lower()]
        if len(uses) < 2:
            continue
        kinds = {k for _, k, _ in uses}
        if len(kinds) > 1:
            problems.append(f"{name}: a different kind of value per command: "
                            + ", ".join(f"{where} {k}" for where, k, _ in uses))
        if name not in MEANINGS and name not in PER_COMMAND:
            problems.append(f"{name} is shared by {', '.join(w for w, _, _ in uses)}: give it one meaning in "
                            f"MEANINGS (or say in PER_COMMAND why its help depends on the command)")
    assert not problems, "\n".join(problems)


def test_out_is_a_folder_everywhere():
    outs = [(prog, argv, o) for prog, argv, cmd in COMMANDS for o in options(cmd) if "--out" in o.opts]
    assert {argv[0] for _, argv, _ in outs} >= {"evaluate", "mmlu", "score", "report", "dry-run", "pack"}
    for prog, argv, option in outs:
        assert "folder" in (option.help or "").lower() and kind(option) == "path", (argv, option.help)


def test_reference_mmlu_is_one_type_in_every_command():
    having = {argv[0]: o for _, argv, cmd in COMMANDS for o in options(cmd) if "--reference-mmlu" in o.opts}
    assert set(having) == {"evaluate", "mmlu", "score", "aggregate"}
    assert all(isinstance(o.type, ReferenceMMLU) for o in having.values())
    # a checkpoint only where MMLU can run
    assert {name for name, o in having.items() if o.type.checkpoints} == {"evaluate", "mmlu"}


def test_percent_signs_and_versions():
    evaluate = " ".join(help_text("unlearn-eval", ("evaluate",)).split())
    assert "(75%)" in evaluate and "Min-K%" in evaluate
    for prog in PROGRAMS:
        result = CliRunner().invoke(PROGRAMS[prog], ["--version"], prog_name=prog)
        assert result.exit_code == 0 and result.output.startswith(f"{prog}, version ")


def test_unlearn_help_shows_the_default_methods_values_and_where_methods_differ():
    text = " ".join(help_text("unlearn", ()).split())
    assert "[default: capped_gd]" in text and "[default: 4]" in text  # --method, --batch-size
    assert "[default: 0.001 with capped_gd, 0.0003 with every other method]" in text  # --lr
    assert "[default: measured with capped_gd, none with every other method]" in text  # --forget-nll-ceiling
    assert "[default: progress]" in text


# --- the behaviour behind the renames ------------------------------------------------------------------


def test_score_out_is_the_folder_that_gets_results_and_gate(tmp_path):
    folder = write_synthetic_folder(tmp_path / "run", with_extras=False)
    out = tmp_path / "scored"
    result = CliRunner().invoke(main, ["score", str(folder), "--out", str(out), "--reference-mmlu", "0.5"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["evaluation_results.jsonl", "gate.json"]
    assert f"wrote {out / 'evaluation_results.jsonl'}, {out / 'gate.json'}" in result.output
    gate = json.loads((out / "gate.json").read_text())
    assert [g["gate"] for g in gate["gates"]] == ["absolute", "relative"] and gate["gates"][1]["reference_mmlu"] == 0.5
    # the old use, --out FILE, is refused with the way to say it now; nothing written
    result = CliRunner().invoke(main, ["score", str(folder), "--out", str(tmp_path / "x" / "evaluation_results.jsonl")])
    assert result.exit_code == 2 and "--out is the folder to write evaluation_results.jsonl into" in result.output
    assert not (tmp_path / "x").exists()


def test_pack_out_is_the_folder_that_gets_the_file(tmp_path):
    result = CliRunner().invoke(main, ["pack", "--out", str(tmp_path / "hand-in")])
    assert result.exit_code == 0, result.output
    packed = tmp_path / "hand-in" / "unlearn_submission.py"
    assert result.output.startswith(f"wrote {packed} ") and packed.read_text() == render("submission")[0]
    result = CliRunner().invoke(main, ["pack", "--out", str(tmp_path / "unlearn_submission.py")])
    assert result.exit_code == 2 and f"(give --out {tmp_path})" in result.output


def aggregate(*reference: str) -> click.testing.Result:
    return CliRunner().invoke(main, ["aggregate", "--task-aggregate", "0.5", "--mia-score", "0.5", "--mmlu", "0.40",
                                     *reference, "--json"])


def test_aggregate_reference_mmlu_number_metrics_json_or_its_folder(tmp_path):
    metrics = tmp_path / "mmlu" / "metrics.json"
    metrics.parent.mkdir()
    metrics.write_text(json.dumps({"average_acc": 0.56, "subcat_acc": {}, "cat_acc": {}}))
    reports = [json.loads(aggregate("--reference-mmlu", value).output)["gate"]
               for value in ("0.56", str(metrics), str(metrics.parent))]
    for report in reports:
        relative = report["gates"][1]
        assert relative["gate"] == "relative" and relative["reference_mmlu"] == 0.56 and relative["passed"] is False
    assert reports[0] == reports[1] == reports[2]


@pytest.mark.parametrize("value, says", [
    ("56", "an MMLU average is a fraction in [0, 1]"),
    ("nowhere.json", "not a number, and no such file or folder"),
    ("{model}", "this command cannot run MMLU on a reference checkpoint"),
    ("{bad}", "no numeric 'average_acc'"),
])
def test_aggregate_reference_mmlu_refuses_anything_else_in_one_line(tmp_path, value, says):
    (tmp_path / "bad.json").write_text("{}")
    (tmp_path / "model").mkdir()  # a folder without metrics.json: a checkpoint, which aggregate cannot run
    result = aggregate("--reference-mmlu", value.format(model=tmp_path / "model", bad=tmp_path / "bad.json"))
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "'--reference-mmlu'" in error[0] and says in error[0], result.output
