"""Two processes under ``accelerate launch`` give the single-process results: rows sharded, gathered
in order, neither lost nor repeated (the official script's padding repeats are not reproduced here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

FILES = ("forget_0.csv", "retain_0.csv", "mia_results/member_0.csv", "mia_results/nonmember_0.csv",
         "evaluation_results.jsonl")


def evaluate_command(golden: Path, out: Path) -> list[str]:
    return ["-m", "evaluator.cli", "evaluate", "--checkpoint", str(golden / "target"), "--data",
            str(golden / "data"), "--mia", str(golden / "mia"), "--mmlu-metrics", str(golden / "mmlu_metrics.json"),
            "--out", str(out), "--mode", "official", "--quiet"]


@pytest.mark.slow
def test_two_processes_equal_one(golden, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    single, double = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, *evaluate_command(golden, single)], check=True, env=env, capture_output=True)
    launched = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2",
                               "--multi_gpu", "--num_machines", "1", "--mixed_precision", "no",
                               "--dynamo_backend", "no", *evaluate_command(golden, double)],
                              env=env, capture_output=True, text=True)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("wrote ") == 1, "only the main process writes and reports"
    for name in FILES:
        assert (double / name).read_bytes() == (single / name).read_bytes(), name
    rows = pd.read_csv(double / "forget_0.csv")
    assert rows["id"].is_unique and len(rows) == len(pd.read_json(golden / "data" / "forget.jsonl", lines=True))
