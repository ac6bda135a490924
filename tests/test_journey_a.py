"""Journey A, as a user walks it (issue 14): score a real checkpoint named by its Hugging Face id.

A tiny model is put in a temporary Hugging Face cache (the hub layout: ``models--OWNER--NAME/refs/main``
holding a commit, ``snapshots/<commit>/<files>``), then, each command a subprocess with ``HF_HUB_CACHE``
and ``HF_HUB_OFFLINE=1`` set as a user's shell would have them: ``evaluate --checkpoint lume-test/tiny``
(with MMLU from the cais/mmlu parquet layout) and ``unlearn lume-test/tiny ...``. The rest runs in this
process with the same environment (the resolver reads it when called): ``score``, ``report``, a second
``evaluate`` in another dtype, ``compare``. An id not in the cache fails with exit 2 and one line naming
the fetch command. No network, no ../shared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_target import build_tiny_target  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "data_stub"
REPO_ID = "lume-test/tiny"
COMMIT = "4f3c2b1a0918273645aabbccddeeff0011223344"


def hub_cache(root: Path, model: Path) -> Path:
    """``model`` as the Hugging Face cache holds ``lume-test/tiny`` at revision ``main``."""
    repo = root / "hub" / ("models--" + REPO_ID.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(model, repo / "snapshots" / COMMIT)
    return root / "hub"


def cais_mmlu(out: Path) -> Path:
    """The stub's mini-MMLU in the cais/mmlu parquet layout (<subject>/{dev,test}-00000-of-00001.parquet)."""
    for split in ("dev", "test"):
        for file in sorted((STUB / "mmlu" / split).glob(f"*_{split}.csv")):
            subject = file.name[: -len(f"_{split}.csv")]
            rows = pd.read_csv(file, header=None, dtype=str, keep_default_na=False)
            (out / subject).mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"question": rows[0], "subject": subject,
                          "choices": [list(r) for r in rows[[1, 2, 3, 4]].itertuples(index=False)],
                          "answer": ["ABCD".index(a) for a in rows[5]]}).to_parquet(
                out / subject / f"{split}-00000-of-00001.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def journey(tmp_path_factory):
    base = tmp_path_factory.mktemp("journey_a")
    built = build_tiny_target(base / "build", steps=0)  # what it scores does not matter here
    cache = hub_cache(base, built.model)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return base, built, cache, env


def run(env, *args: str, program: str = "evaluator.cli") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", program, *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def evaluate_args(out: Path, *extra: str) -> list[str]:
    return ["evaluate", "--checkpoint", REPO_ID, "--data", "data_stub", "--split", "train",
            "--mia", "data_stub/mia_data", "--out", str(out), "--mode", "fast", "--max-new-tokens", "16",
            "--quiet", *extra]


def invoke(*args: str):
    from evaluator.cli import main

    return CliRunner().invoke(main, list(args))


def test_score_a_checkpoint_named_by_its_hub_id(journey, monkeypatch):
    base, _, cache, env = journey
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a, b = base / "A", base / "B"
    snapshot = cache / f"models--lume-test--tiny/snapshots/{COMMIT}"

    done = run(env, *evaluate_args(a, "--mmlu-data", str(cais_mmlu(base / "cais_mmlu")), "--ntrain", "1"))
    assert done.returncode == 0, done.stderr
    assert "final score:" in done.stdout and "MMLU average: -" not in done.stdout
    recorded = json.loads((a / "run.json").read_text())
    assert recorded["checkpoint"] == str(snapshot)
    assert recorded["checkpoint_hub_id"] == f"{REPO_ID}@{COMMIT}"
    assert json.loads((a / "mmlu" / "metrics.json").read_text())["average_acc"] >= 0
    hub_line = f"(Hugging Face {REPO_ID}@{COMMIT})"

    done = invoke("score", str(a))
    assert done.exit_code == 0, done.output
    assert "How this was made" in done.stdout and hub_line in done.stdout

    done = invoke("report", str(a), "--bootstrap", "50")
    assert done.exit_code == 0, done.output
    assert hub_line in (a / "report" / "report.md").read_text()

    done = invoke(*evaluate_args(b, "--dtype", "float32"))
    assert done.exit_code == 0, done.output
    assert json.loads((b / "run.json").read_text())["checkpoint_hub_id"] == f"{REPO_ID}@{COMMIT}"
    done = invoke("compare", str(a), str(b), "--bootstrap", "50")
    assert done.exit_code == 0, done.output
    assert "A: how it was made" in done.stdout and "B: how it was made" in done.stdout
    assert done.stdout.count(hub_line) == 2
    assert "dtype: bfloat16 vs float32" in done.stdout


def test_unlearn_takes_the_hub_id_from_the_cache(journey):
    base, built, _, env = journey
    out = base / "unlearned"
    done = run(env, REPO_ID, str(out), str(built.forget), str(built.retain), "--max-steps", "2",
               "--evaluations", "1", "--quiet", program="submission.cli")
    assert done.returncode == 0, done.stderr
    assert (out / "config.json").is_file() and any(out.glob("*.safetensors"))


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_an_id_not_in_the_cache_fails_in_one_line(journey, monkeypatch):
    from submission.cli import command

    base, built, cache, _ = journey
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for args in (["evaluate", "--checkpoint", "lume-test/absent", "--data", "data_stub", "--split", "train",
                  "--out", str(base / "absent")],
                 ["mmlu", "--checkpoint", "lume-test/absent", "--data", "data_stub/mmlu", "--out",
                  str(base / "absent_mmlu")]):
        done = invoke(*args)
        assert done.exit_code == 2, done.output
        line = one_error_line(done.stderr)
        for part in ("lume-test/absent", str(cache), "huggingface-cli download lume-test/absent",
                     "hf download lume-test/absent", "access request", "--download"):
            assert part in line, (part, line)
    done = invoke("evaluate", "--checkpoint", REPO_ID, "--download", "--data", "data_stub", "--split", "train",
                  "--out", str(base / "download"))
    assert done.exit_code == 2 and "HF_HUB_OFFLINE" in one_error_line(done.stderr)

    done = CliRunner().invoke(command, ["lume-test/absent", str(base / "absent_unlearned"), str(built.forget),
                                   str(built.retain)])
    assert done.exit_code == 2
    line = one_error_line(done.stderr)
    assert "huggingface-cli download lume-test/absent" in line and str(cache) in line
    assert not (base / "absent_unlearned").exists()
