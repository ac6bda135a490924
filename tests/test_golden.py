"""The evaluator against what the organizers' own script wrote (../shared/golden, SPEC section 6).

Official mode must reproduce the golden files exactly on the AVX-512 kernel path they were made on.
Elsewhere bfloat16 rounds differently (SPEC 6): those checks say which path they ran on and hold the
fast-mode agreement bars instead.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from evaluator.cli import main
from evaluator.evaluate import EvaluationSettings, evaluate, score_directory
from evaluator.results import EvaluationResult
from evaluator.scoring import final_score


def cpu_kernel_path() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


MODELS = ("target", "unlearned")
SPLIT_FILES = ("forget_0.csv", "retain_0.csv")
MIA_FILES = ("mia_results/member_0.csv", "mia_results/nonmember_0.csv")
ON_GOLDEN_PATH = cpu_kernel_path() == "AVX512"


def assert_json_close(ours, theirs, tol=1e-9, where="$"):
    assert type(ours) is type(theirs) or {type(ours), type(theirs)} <= {int, float}, where
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs), f"{where}: keys {list(ours)} != {list(theirs)}"
        for key in theirs:
            assert_json_close(ours[key], theirs[key], tol, f"{where}.{key}")
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_json_close(a, b, tol, f"{where}[{i}]")
    elif isinstance(theirs, float) and math.isnan(theirs):
        assert math.isnan(ours), where
    else:
        assert abs(ours - theirs) <= tol, f"{where}: {ours!r} != {theirs!r}"


def run_eval(golden, model, out, **settings):
    return evaluate(golden / model, golden / "data", out, mia=golden / "mia",
                    mmlu_metrics=golden / "mmlu_metrics.json",
                    settings=EvaluationSettings(show_progress=False, **settings))


def agreement(out, golden, model) -> tuple[int, int]:
    same = total = 0
    for name in SPLIT_FILES:
        ours, theirs = pd.read_csv(out / name), pd.read_csv(golden / "official" / model / name)
        same += int((ours["model_output"].astype(str) == theirs["model_output"].astype(str)).sum())
        total += len(theirs)
    return same, total


# --- point 2: score reproduces the official results from the official CSVs -------------------------

@pytest.mark.parametrize("model", MODELS)
def test_score_reproduces_official_results_byte_for_byte(golden, model):
    result = score_directory(golden / "official" / model, mmlu_average=0.5)
    expected = (golden / "official" / model / "evaluation_results.jsonl").read_text()
    assert result.to_json() == expected
    assert json.loads(golden.joinpath("mmlu_metrics.json").read_text())["average_acc"] == 0.5


def test_score_command_on_official_folder(golden, tmp_path):
    out = CliRunner().invoke(main, ["score", str(golden / "official" / "unlearned"), "--mmlu-metrics",
                                    str(golden / "mmlu_metrics.json"), "--out", str(tmp_path / "r.jsonl")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "r.jsonl").read_text() == (golden / "official/unlearned/evaluation_results.jsonl").read_text()
    assert "final score: 0.2630" in out.output


def test_results_file_round_trips_byte_for_byte(golden):
    for model in MODELS:
        path = golden / "official" / model / "evaluation_results.jsonl"
        assert EvaluationResult.read(path).to_json() == path.read_text()


# --- point 3: the published leaderboards ------------------------------------------------------------

def test_aggregate_reproduces_every_leaderboard_row(golden):
    board = json.loads((golden / "leaderboard.json").read_text())
    rows = [row for key, value in board.items() if isinstance(value, list) for row in value]
    assert len(rows) >= 40
    runner = CliRunner()
    for row in rows:
        ours = final_score(row["task_aggregate"], row["mmlu"], row["mia_score"])
        assert abs(ours - row["final"]) <= 0.0011, row
        out = runner.invoke(main, ["aggregate", "--task-aggregate", str(row["task_aggregate"]), "--mia-score",
                                   str(row["mia_score"]), "--mmlu", str(row["mmlu"]), "--json"])
        assert out.exit_code == 0 and abs(json.loads(out.output)["aggregate-score"] - row["final"]) <= 0.0011
        gate = json.loads(out.output)["mmlu_gate_passed"]
        assert gate == (row["mmlu"] >= board["mmlu_gate_7b"])


# --- point 1: official mode reproduces the golden files ---------------------------------------------

@pytest.fixture(scope="module")
def official_runs(golden, tmp_path_factory):
    runs = {}
    for model in MODELS:
        out = tmp_path_factory.mktemp(f"official-{model}")
        runs[model] = (run_eval(golden, model, out, mode="official"), out)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_official_mode_reproduces_golden(golden, official_runs, model):
    result, out = official_runs[model]
    golden_dir = golden / "official" / model
    same, total = agreement(out, golden, model)
    print(f"\n{model}: official mode on kernel path {cpu_kernel_path()}: {same}/{total} generations identical")
    if not ON_GOLDEN_PATH:
        pytest.skip(f"kernel path {cpu_kernel_path()}, not the golden files' AVX512: bfloat16 rounds differently "
                    f"(SPEC 6); {same}/{total} identical here. The fast-mode agreement bars below still hold.")
    assert same == total
    for name in SPLIT_FILES + MIA_FILES:
        ours, theirs = pd.read_csv(out / name), pd.read_csv(golden_dir / name)
        assert list(ours.columns) == list(theirs.columns)
        assert ours["id"].astype(str).tolist() == theirs["id"].astype(str).tolist()
        relative = ((ours["nll"] - theirs["nll"]).abs() / theirs["nll"].abs()).max()
        assert relative <= 1e-5, f"{name}: nll differs by {relative:.2e} relative"
    expected = json.loads((golden_dir / "evaluation_results.jsonl").read_text())
    assert_json_close(json.loads((out / "evaluation_results.jsonl").read_text()), expected)
    assert_json_close(result.to_dict(), expected)


# --- point 4: fast mode agreement --------------------------------------------------------------------

@pytest.mark.slow
def test_fast_mode_with_recheck_matches_official_on_the_confident_model(golden, tmp_path):
    result = run_eval(golden, "target", tmp_path, mode="fast", recheck_margin=0.25)
    same, total = agreement(tmp_path, golden, "target")
    print(f"\ntarget, fast mode + recheck 0.25 ({cpu_kernel_path()}): {same}/{total} generations identical")
    expected = EvaluationResult.read(golden / "official" / "target")
    assert same == total
    assert result.aggregate_score == expected.aggregate_score


@pytest.mark.slow
@pytest.mark.parametrize("model,tolerance", [("target", 0.0), ("unlearned", 0.02)])
def test_fast_mode_final_score_agrees(golden, tmp_path, model, tolerance):
    result = run_eval(golden, model, tmp_path, mode="fast")
    same, total = agreement(tmp_path, golden, model)
    expected = EvaluationResult.read(golden / "official" / model)
    print(f"\n{model}, plain fast mode ({cpu_kernel_path()}): {same}/{total} generations identical, final "
          f"{result.aggregate_score:.4f} vs official {expected.aggregate_score:.4f}")
    assert abs(result.aggregate_score - expected.aggregate_score) <= tolerance
    assert same >= total * 0.75
