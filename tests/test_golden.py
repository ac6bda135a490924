"""The evaluator against what the organizers' own script wrote (../shared/golden, SPEC section 6).

The golden files exist once per machine kind (``golden/<folder>/machine.json`` says which CPU made them).
Official mode must reproduce the folder made on a machine of this kind exactly (``evaluator.core.machine
.golden_folder_for``: vendor, CPU family/model, torch kernel path, bfloat16 flags; never the kernel-path label
alone). Where no folder matches, bfloat16 rounds differently (SPEC 6): the exactness test skips, naming this
machine, the kinds there are and the agreement measured here, and a separate test holds agreement bars
against the nearest folder. Fast mode is compared with official mode run on this same machine, which holds
on every CPU. The pure scoring tests (no model) run over every golden folder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import skip_where_flash_off

from evaluator.cli import main
from evaluator.core.machine import cpu_identity, describe, golden_folder_for, nearest_golden_folder
from evaluator.core.results import EvaluationResult
from evaluator.core.scoring import final_score
from evaluator.core.tables import score_directory
from evaluator.model.evaluate import EvaluationSettings, evaluate

MODELS = ("target", "unlearned")
SPLIT_FILES = ("forget_0.csv", "retain_0.csv")
MIA_FILES = ("mia_results/member_0.csv", "mia_results/nonmember_0.csv")
GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden"  # as tests/conftest.py finds it
# Every golden folder (one per machine kind); "official" where ../shared is absent (the `golden` fixture skips).
FOLDERS = sorted(path.parent.name for path in GOLDEN.glob("*/machine.json")) or ["official"]

# Agreement bars of official mode here against the nearest golden folder where none matches this machine.
# Measured on a GenuineIntel family 6 model 167 (AVX512 path, avx512_bf16 + amx_bf16), no folder matching:
#   target:    84/84 generations identical against both folders, final 0.16667 = golden's;
#   unlearned: 73/84 against official-intel-icelake (the nearest), 67/84 against official (AMD EPYC),
#              final 0.262893 vs golden 0.262987 (both folders; |delta| 9.4e-5, task aggregate 0.28868 vs 0.28896).
# The two golden folders themselves: 84/84 and 77/84 identical, the same final. Bars, with a margin:
SAME_PATH_BARS = {"identical": 0.75, "final": 0.01}
# Where the nearest folder was made on another torch kernel path (e.g. an AVX2-only CPU; both folders are AVX512),
# SPEC 6's figure for AVX2 against the EPYC files: 67/84 identical for `unlearned`, task aggregate 0.352 instead of
# 0.289, i.e. a final 0.021 away (not reproducible here: forcing ATEN_CPU_CAPABILITY=avx2 on this CPU fails in
# bfloat16 attention, "pack_vnni2 is only supported when avx512 is supported"). Bars with a margin over that:
OTHER_PATH_BARS = {"identical": 0.70, "final": 0.05}


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


def agreement(out: Path, reference: Path) -> tuple[int, int]:
    """Generations identical between two result folders (``reference``: a golden ``<folder>/<model>`` or our
    official run): (identical, total) over both splits."""
    same = total = 0
    for name in SPLIT_FILES:
        ours, theirs = pd.read_csv(out / name), pd.read_csv(reference / name)
        same += int((ours["model_output"].astype(str) == theirs["model_output"].astype(str)).sum())
        total += len(theirs)
    return same, total


def compare(out: Path, reference: Path) -> dict:
    """What agrees between two result folders: generations, the largest relative nll difference (all four CSVs),
    the final score and task aggregate of each."""
    same, total = agreement(out, reference)
    relative = 0.0
    for name in SPLIT_FILES + MIA_FILES:
        ours, theirs = pd.read_csv(out / name), pd.read_csv(reference / name)
        relative = max(relative, float(((ours["nll"] - theirs["nll"]).abs() / theirs["nll"].abs()).max()))
    ours, theirs = (EvaluationResult.read(p / "evaluation_results.jsonl") for p in (out, reference))
    return {"same": same, "total": total, "nll_relative": relative, "final": ours.aggregate_score,
            "reference_final": theirs.aggregate_score, "task": ours.task_aggregate,
            "reference_task": theirs.task_aggregate}


def summary(numbers: dict) -> str:
    return (f"{numbers['same']}/{numbers['total']} generations identical, nll up to {numbers['nll_relative']:.1e} "
            f"relative, final {numbers['final']:.6f} vs {numbers['reference_final']:.6f}, task aggregate "
            f"{numbers['task']:.6f} vs {numbers['reference_task']:.6f}")


# --- point 2: score reproduces the official results from the official CSVs (every golden folder) ------------

@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("folder", FOLDERS)
def test_score_reproduces_official_results_byte_for_byte(golden, folder, model):
    result = score_directory(golden / folder / model, mmlu_average=0.5)
    expected = (golden / folder / model / "evaluation_results.jsonl").read_text()
    assert result.to_json() == expected
    assert json.loads(golden.joinpath("mmlu_metrics.json").read_text())["average_acc"] == 0.5


@pytest.mark.parametrize("folder", FOLDERS)
def test_score_command_on_official_folder(golden, tmp_path, folder):
    official = golden / folder / "unlearned"
    out = CliRunner().invoke(main, ["score", str(official), "--mmlu-metrics", str(golden / "mmlu_metrics.json"),
                                    "--out", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "r" / "evaluation_results.jsonl").read_text() == \
        (official / "evaluation_results.jsonl").read_text()
    expected = EvaluationResult.read(official / "evaluation_results.jsonl").aggregate_score
    assert f"final score: {expected:.4f}" in out.output
    if folder == "official":
        assert "final score: 0.2630" in out.output


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("folder", FOLDERS)
def test_results_file_round_trips_byte_for_byte(golden, folder, model):
    path = golden / folder / model / "evaluation_results.jsonl"
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


# --- point 1: official mode reproduces the golden files of this machine's kind ------------------------------

@pytest.fixture(scope="module")
def official_runs(golden, tmp_path_factory):
    """Official mode on both golden models, on this machine: (result, output folder) per model."""
    runs = {}
    for model in MODELS:
        out = tmp_path_factory.mktemp(f"official-{model}")
        runs[model] = (run_eval(golden, model, out, mode="official"), out)
    return runs


def golden_folders(golden: Path) -> list[Path]:
    return sorted(path.parent for path in golden.glob("*/machine.json"))


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_official_mode_reproduces_golden(golden, official_runs, model):
    result, out = official_runs[model]
    folder, sentence = golden_folder_for(golden)
    print(f"\n{model}: {sentence}")
    if folder is None:
        measured = "; ".join(f"against {f.name!r}: {summary(compare(out, f / model))}" for f in golden_folders(golden))
        pytest.skip(f"{sentence}. The golden files bind exactness only on the machine kind they were made on "
                    f"(SPEC 6). Measured here, {model}: {measured}. "
                    f"test_official_mode_agrees_with_nearest_golden holds the agreement bars instead.")
    golden_dir = folder / model
    same, total = agreement(out, golden_dir)
    print(f"{model}: official mode against {folder.name!r}: {same}/{total} generations identical")
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


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_official_mode_agrees_with_nearest_golden(golden, official_runs, model):
    """On every machine (trivially where a folder matches): official mode here against the nearest golden
    folder (the matching one, else the same kernel path first, then the most recorded fields in common)
    holds the agreement bars (``SAME_PATH_BARS``, or ``OTHER_PATH_BARS`` where no folder shares the path)."""
    skip_where_flash_off()
    _, out = official_runs[model]
    folder, sentence = nearest_golden_folder(golden)
    assert folder is not None, sentence
    recorded = json.loads((folder / "machine.json").read_text())
    same_path = recorded.get("torch_cpu_capability") == cpu_identity()["torch_cpu_capability"]
    bars = SAME_PATH_BARS if same_path else OTHER_PATH_BARS
    numbers = compare(out, folder / model)
    print(f"\n{model} on {describe()}: {sentence}\n  against {folder.name!r}: {summary(numbers)}; bars {bars}")
    assert numbers["same"] >= bars["identical"] * numbers["total"], summary(numbers)
    assert abs(numbers["final"] - numbers["reference_final"]) <= bars["final"], summary(numbers)


# --- point 4: fast mode agrees with official mode on the same machine ---------------------------------------

@pytest.mark.slow
def test_fast_mode_with_recheck_matches_official_on_the_confident_model(golden, official_runs, tmp_path):
    official, official_dir = official_runs["target"]
    result = run_eval(golden, "target", tmp_path, mode="fast", recheck_margin=0.25)
    same, total = agreement(tmp_path, official_dir)
    print(f"\ntarget, fast mode + recheck 0.25 vs official mode, both on {describe()}: "
          f"{same}/{total} generations identical")
    assert same == total
    assert result.aggregate_score == official.aggregate_score


# README's fast-mode table, held against official mode on the same machine. Measured (plain fast mode, batch 16):
#   target:    82/84 identical (README's first measurement and an Intel Xeon family 6 model 167); its final cannot move
#              (four terms are 0, so it is 1/6 whatever is generated): the identical count is the bar that counts;
#   unlearned: 74/84 (first measurement), 71/84 (Xeon model 167), final 0.262864 vs official 0.262893 there
#              (|delta| 2.9e-5).
FAST_BARS = {"target": (82, 0.0), "unlearned": (70, 1e-4)}  # (identical generations of 84, |final - official|)


@pytest.mark.slow
@pytest.mark.parametrize("model", list(FAST_BARS))
def test_fast_mode_final_score_agrees(golden, official_runs, tmp_path, model):
    least_identical, tolerance = FAST_BARS[model]
    official, official_dir = official_runs[model]
    result = run_eval(golden, model, tmp_path, mode="fast")
    same, total = agreement(tmp_path, official_dir)
    print(f"\n{model}, plain fast mode vs official mode, both on {describe()}: {same}/{total} generations "
          f"identical, final {result.aggregate_score:.6f} vs official {official.aggregate_score:.6f}")
    assert abs(result.aggregate_score - official.aggregate_score) <= tolerance
    assert same >= least_identical * total / 84
