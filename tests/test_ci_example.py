"""The ready CI example (docs/ci/): a GitHub Actions workflow that is valid YAML and runs the plain-shell gate,
and a gate script that runs README's first command and `unlearn-eval check` with the committed thresholds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
WORKFLOW = PROJECT / "docs" / "ci" / "github-actions.yml"
GATE = PROJECT / "docs" / "ci" / "gate.sh"


def readme_first_command() -> str:
    lines = (PROJECT / "README.md").read_text(encoding="utf-8").splitlines()
    block = lines[lines.index("```") + 1:]
    return block[0]


def test_the_workflow_is_valid_yaml_that_runs_the_gate_and_keeps_the_caches():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = workflow["jobs"]["gate"]["steps"]
    runs = [step["run"] for step in steps if "run" in step]
    assert runs == ["bash docs/ci/gate.sh"]
    cached = next(step for step in steps if step.get("uses", "").startswith("actions/cache"))["with"]["path"]
    assert "~/.cache/lume-harness" in cached and "~/.cache/pip" in cached
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as "on".
    assert set(workflow.get("on", workflow.get(True))) == {"push", "pull_request"}


def test_the_gate_runs_readmes_first_command_then_check_with_the_committed_thresholds():
    text = GATE.read_text(encoding="utf-8")
    assert readme_first_command().startswith("python3 -m venv .venv") and readme_first_command() in text
    assert 'unlearn-eval check runs/dry-run --thresholds "${THRESHOLDS:-ci/thresholds.toml}"' in text
    assert (PROJECT / "ci" / "thresholds.toml").is_file()
    assert subprocess.run(["bash", "-n", str(GATE)], capture_output=True).returncode == 0
