"""``unlearn-eval check``: exit 0 when every threshold passes, 1 when one fails, 2 on bad input, 3 when the run
did not finish (no after scores); the ``--json`` form; the thresholds file (TOML) and the committed
``ci/thresholds.toml``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator.cli import main
from evaluator.core.errors import InputError
from evaluator.harness.check import read_thresholds

PROJECT = Path(__file__).resolve().parents[1]

TERMS = [0.9, 0.8, 0.85, 0.9, 0.8, 0.95, 1.0, 0.9, 1.0, 1.0, 0.95, 1.0]


def results_dict(final=0.62, task=0.81, mia=0.1, mmlu=0.95) -> dict:
    split = {"overall-regurgitation-score": 0.5, "overall-knowledge-score": 0.5,
             **{t: {"regurgitation-score": 0.5, "knowledge-score": 0.5} for t in ("Task1", "Task2", "Task3")}}
    return {"forget-set": split, "retain-set": split, "mia_loss_acc": 0.95, "mmlu_average": mmlu,
            "aggregated-terms": TERMS, "aggregate-score": final, "harmonic-mean-task-aggregate": task,
            "mia_final_score": mia}


def write_results(folder: Path, **figures) -> Path:
    path = folder / "evaluation_results.jsonl"
    path.write_text(json.dumps(results_dict(**figures)))
    return path


def write_summary(folder: Path, verdict="ok", before_mmlu=1.0, scored=True, **figures) -> Path:
    """The parts of a dry-run summary.json that check reads (``scored=False``: ``"after": null``, as the
    dry-run writes it when no checkpoint was scored)."""
    after = results_dict(**figures)
    summary = {"verdict": verdict, "exit_code": 0,
               "before": {"final": 0.333, "task_aggregate": 0.0, "mia_score": 0.0, "mmlu": before_mmlu},
               "after": {"final": after["aggregate-score"], "task_aggregate": after["harmonic-mean-task-aggregate"],
                         "mia_score": after["mia_final_score"], "mmlu": after["mmlu_average"], "results": after}
               if scored else None}
    path = folder / "summary.json"
    path.write_text(json.dumps(summary, indent=2))
    return path


def check(*args):
    return CliRunner().invoke(main, ["check", *map(str, args)])


def test_all_pass_exits_0(tmp_path):
    path = write_results(tmp_path)
    result = check(path, "--min-final", 0.6, "--min-task-aggregate", 0.8, "--min-mia", 0.1, "--min-mmlu", 0.9,
                   "--gate", "absolute")
    assert result.exit_code == 0, result.output
    assert result.output.count("  pass  ") == 5 and "5 of 5 passed" in result.output


def test_one_failure_exits_1(tmp_path):
    path = write_results(tmp_path, final=0.59)
    result = check(path, "--min-final", 0.6, "--min-mmlu", 0.9)
    assert result.exit_code == 1
    assert "FAIL  final" in result.output and "pass  MMLU average" in result.output
    failed_gate = check(write_results(tmp_path, mmlu=0.3), "--gate", "absolute")
    assert failed_gate.exit_code == 1 and "FAIL  MMLU gate absolute" in failed_gate.output


def test_missing_value_fails(tmp_path):
    data = results_dict()
    del data["mia_final_score"], data["mmlu_average"], data["mia_loss_acc"]
    data["aggregate-score"] = -1  # as the official script writes it without MMLU and MIA
    path = tmp_path / "evaluation_results.jsonl"
    path.write_text(json.dumps(data))
    result = check(path, "--min-final", 0.1, "--min-mia", 0.0)
    assert result.exit_code == 1 and result.output.count("missing in the results") == 2


def test_bad_input_exits_2(tmp_path):
    assert check(tmp_path / "nowhere.jsonl", "--min-final", 0.5).exit_code == 2
    assert "holds neither" in check(tmp_path, "--min-final", 0.5).output  # an empty folder
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json")
    result = check(bad, "--min-final", 0.5)
    assert result.exit_code == 2 and "malformed JSON" in result.output and str(bad) in result.output
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    assert check(other, "--min-final", 0.5).exit_code == 2
    results = write_results(tmp_path)
    assert check(results).exit_code == 2  # nothing to check
    relative = check(results, "--gate", "relative")
    assert relative.exit_code == 2 and "only a dry-run summary.json" in relative.output
    toml = tmp_path / "t.toml"
    toml.write_text("min_final = 0.5\nmin_finale = 0.5\n")
    unknown = check(results, "--thresholds", toml)
    assert unknown.exit_code == 2 and "unknown key(s) min_finale" in unknown.output and str(toml) in unknown.output
    toml.write_text("min_final = 'high'\n")
    assert check(results, "--thresholds", toml).exit_code == 2
    toml.write_text("min_final = \n")
    assert "malformed TOML" in check(results, "--thresholds", toml).output
    toml.write_text("gate = 'strict'\n")
    assert check(results, "--thresholds", toml).exit_code == 2
    assert check(results, "--thresholds", tmp_path / "absent.toml").exit_code == 2


def test_summary_gates_and_verdict(tmp_path):
    write_summary(tmp_path, before_mmlu=1.0, mmlu=0.8)
    result = check(tmp_path, "--gate", "absolute", "--gate", "relative", "--json")  # the folder: summary.json first
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["kind"] == "summary" and report["passed"]
    assert [c["name"] for c in report["checks"]] == ["dry-run completed", "MMLU gate absolute", "MMLU gate relative"]
    assert report["checks"][2]["threshold"] == pytest.approx(0.75)
    write_summary(tmp_path, before_mmlu=1.0, mmlu=0.7)
    assert check(tmp_path, "--gate", "relative").exit_code == 1
    write_summary(tmp_path, verdict="timeout")
    timed_out = check(tmp_path, "--min-final", 0.1)
    assert timed_out.exit_code == 1 and "FAIL  dry-run completed" in timed_out.output


def test_run_not_finished_exits_3(tmp_path):
    """No after scores: a dry-run summary.json whose submission left nothing scored, or an evaluation folder
    with the resume journal of a killed run and no results file. One error line, nothing on stdout."""
    for verdict in ("timeout", "raised", "no-checkpoint", "unloadable"):
        summary = write_summary(tmp_path, verdict=verdict, scored=False)
        for given in (tmp_path, summary):
            result = check(given, "--thresholds", PROJECT / "ci" / "thresholds.toml")
            assert result.exit_code == 3, result.output
            assert result.stdout == "" and result.stderr == (
                f"error: {summary}: the run did not finish: dry-run verdict {verdict}, no after scores "
                "(no checkpoint was scored)\n")
        assert check(tmp_path).exit_code == 3  # a summary needs no threshold: its verdict is checked
    report = json.loads(check(tmp_path, "--min-final", 0.5, "--json").stdout)
    assert report["exit_code"] == 3 and not report["passed"] and "did not finish" in report["not_finished"]
    assert [(c["name"], c["value"], c["passed"]) for c in report["checks"]] == [
        ("dry-run completed", "unloadable", False), ("final", None, False)]

    run = tmp_path / "eval"
    (run / ".partial" / "0123456789abcdef").mkdir(parents=True)
    (run / ".partial" / "0123456789abcdef" / "forget.jsonl").write_text('{"i": 0}\n')
    for given in (run, run / "evaluation_results.jsonl"):
        result = check(given, "--min-final", 0.5)
        assert result.exit_code == 3 and result.stdout == ""
        assert result.stderr.startswith(f"error: {run}: the run did not finish: no evaluation_results.jsonl, "
                                        "only the resume journal .partial/")
    as_json = check(run, "--min-final", 0.5, "--json")
    assert as_json.exit_code == 3 and json.loads(as_json.stdout)["exit_code"] == 3
    assert check(run).exit_code == 2  # bad input first: nothing to check
    assert check(run, "--gate", "relative").exit_code == 2  # the relative gate needs a summary.json
    write_results(run)  # the run finished: its results count, the journal left beside them does not
    assert check(run, "--min-final", 0.5).exit_code == 0
    assert check(tmp_path / "nowhere", "--min-final", 0.5).exit_code == 2  # no journal: a missing file


def test_json_lists_value_limit_margin_and_exit_code(tmp_path):
    results = write_results(tmp_path, final=0.62, mmlu=0.5)
    result = check(results, "--min-final", 0.6, "--min-mmlu", 0.55, "--gate", "absolute", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["exit_code"] == 1 and report["passed"] is False and report["not_finished"] is None
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == ["final", "MMLU average", "MMLU gate absolute"]
    assert checks["final"]["value"] == 0.62 and checks["final"]["limit"] == 0.6 and checks["final"]["passed"]
    assert checks["final"]["margin"] == pytest.approx(0.02)
    assert checks["MMLU average"]["margin"] == pytest.approx(-0.05) and not checks["MMLU average"]["passed"]
    absolute = checks["MMLU gate absolute"]
    assert absolute["limit"] == 0.371 and absolute["margin"] == pytest.approx(0.129)
    passing = json.loads(check(results, "--min-final", 0.6, "--json").stdout)
    assert passing["exit_code"] == 0 and passing["passed"] is True
    write_summary(tmp_path, verdict="ok")
    completed = json.loads(check(tmp_path, "--json").stdout)["checks"][0]
    assert completed["name"] == "dry-run completed" and completed["margin"] is None and completed["passed"]
    missing = results_dict()
    del missing["mia_final_score"]
    results.write_text(json.dumps(missing))
    absent = json.loads(check(results, "--min-mia", 0.1, "--json").stdout)
    assert absent["exit_code"] == 1 and absent["checks"][0]["value"] is None and absent["checks"][0]["margin"] is None


def test_thresholds_file_and_options(tmp_path):
    toml = tmp_path / "thresholds.toml"
    toml.write_text('min_final = 0.6\nmin_mmlu = 0.9\ngate = "absolute"\n')
    results = write_results(tmp_path, final=0.62)
    assert check(results, "--thresholds", toml).exit_code == 0
    assert check(results, "--thresholds", toml, "--min-final", 0.7).exit_code == 1  # the option overrides the file
    assert read_thresholds(toml) == {"min_final": 0.6, "min_mmlu": 0.9, "gate": ["absolute"]}


def test_committed_thresholds_file():
    thresholds = read_thresholds(PROJECT / "ci" / "thresholds.toml")
    assert {"min_final", "min_task_aggregate", "min_mmlu", "gate"} <= thresholds.keys()
    assert thresholds["gate"] == ["absolute", "relative"]
    assert all(0 <= thresholds[k] <= 1 for k in thresholds if k != "gate")
    with pytest.raises(InputError):
        from evaluator.harness.check import validate_thresholds

        validate_thresholds({"min_mia": True}, "test")  # a boolean is not a threshold


def test_readme_shows_the_committed_ci_thresholds():
    """README quotes ci/thresholds.toml; the quote must not drift from the file CI uses."""
    import re
    import tomllib

    readme = (PROJECT / "README.md").read_text()
    block = re.search(r"`ci/thresholds\.toml`.*?```toml\n(.*?)```", readme, re.S)
    assert block, "README.md: no ```toml block after the mention of ci/thresholds.toml"
    assert tomllib.loads(block.group(1)) == tomllib.loads((PROJECT / "ci" / "thresholds.toml").read_text())
