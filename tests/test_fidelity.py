"""Fidelity on the machine at hand: the organizers' own scoring script and our official mode, run here on the
same checkpoint, write byte-identical files.

The script is not part of the project (SPEC: read it, never paste it). Point ``LUME_OFFICIAL_SCRIPT`` at a copy
of their ``evaluate_generations.py`` (and have its imports installed) to run this test; it skips otherwise.
The golden folders hold what that script wrote on other CPUs; this test holds our files to what it writes on
this one, whichever CPU it is (bfloat16 rounding depends on the CPU, SPEC 6).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator.cli import main

SCRIPT = os.environ.get("LUME_OFFICIAL_SCRIPT")
FILES = ("forget_0.csv", "retain_0.csv", "mia_results/member_0.csv", "mia_results/nonmember_0.csv",
         "evaluation_results.jsonl")


@pytest.mark.slow
@pytest.mark.golden
@pytest.mark.skipif(not SCRIPT, reason="LUME_OFFICIAL_SCRIPT is unset: set it to the organizers' "
                                       "evaluate_generations.py to compare with it on this machine")
def test_official_mode_writes_what_the_organizers_script_writes_here(golden, tmp_path):
    script = Path(SCRIPT).resolve()
    assert script.is_file(), f"LUME_OFFICIAL_SCRIPT={SCRIPT}: no such file"
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    theirs.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run([sys.executable, str(script), "--data_path", str(golden / "data") + "/",
                    "--checkpoint_path", str(golden / "target"), "--output_dir", str(theirs),
                    "--mia_data_path", str(golden / "mia") + "/",
                    "--mmlu_metrics_file_path", str(golden / "mmlu_metrics.json"), "--keep_files"],
                   cwd=tmp_path, env=env, check=True)
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(golden / "target"), "--data",
                                       str(golden / "data"), "--mia", str(golden / "mia"), "--mmlu-metrics",
                                       str(golden / "mmlu_metrics.json"), "--out", str(ours), "--mode", "official",
                                       "--quiet", "--no-resume"])
    assert result.exit_code == 0, result.output
    for name in FILES:
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), f"{name} differs from the official script's"
