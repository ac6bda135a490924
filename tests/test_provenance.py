"""run.json (evaluator/core/provenance.py, issue 14): what `evaluate` records beside its results, and how
`score`, `report` and `compare` show it. The reader's tests and the compare warning need no ../shared; the
end-to-end run uses the golden target (skips where ../shared is absent)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from click.testing import CliRunner
from test_report import write_synthetic_folder

from evaluator.analysis.report import write_report
from evaluator.cli import main
from evaluator.core.provenance import (
    RUN_FILE,
    data_fingerprint,
    describe_run,
    git_revision,
    read_run,
    run_differences,
)

MACHINE = {"vendor_id": "AuthenticAMD", "model_name": "AMD EPYC", "cpu_family": 25, "model": 1,
           "torch_cpu_capability": "AVX512", "bf16_flags": ["avx512_bf16"]}
RUN = {"format": 1, "command": "unlearn-eval evaluate", "mode": "official", "dtype": "bfloat16", "batch_size": 1,
       "max_new_tokens": 512, "recheck_margin": 0.0, "checkpoint": "/models/target",
       "checkpoint_fingerprint": "sha256:" + "ab" * 32, "data": "/data", "mia": "/mia",
       "data_fingerprint": {"sha256": "cd" * 32, "files": [{"path": "/data/forget.jsonl", "bytes": 3,
                                                             "sha256": "ef" * 32}]},
       "versions": {"torch": "2.4.0", "transformers": "4.44.0", "rouge_score": "0.1.2", "scikit-learn": "1.5.0",
                    "pandas": "2.2.2"},
       "machine": MACHINE, "gpu": None, "processes": 1, "wall_seconds": 12.34, "git_revision": "0123abc",
       "written_utc": "2025-01-02T03:04:05Z"}


def other(**changes) -> dict:
    run = json.loads(json.dumps(RUN))
    machine = changes.pop("machine", {})
    run["machine"].update(machine)
    run.update(changes)
    return run


def test_read_run_reads_a_dict_and_nothing_else(tmp_path):
    assert read_run(tmp_path) is None
    (tmp_path / RUN_FILE).write_text("[1, 2]")
    assert read_run(tmp_path) is None
    (tmp_path / RUN_FILE).write_text("{torn")
    assert read_run(tmp_path) is None
    (tmp_path / RUN_FILE).write_text(json.dumps(RUN))
    assert read_run(tmp_path) == RUN


def test_describe_run_names_every_subject():
    text = "\n".join(describe_run(RUN))
    for needle in ("official mode", "dtype bfloat16", "batch size 1", "max_new_tokens 512", "recheck margin 0.0",
                   "/models/target", "sha256:abababab", "1 files", "AuthenticAMD", "kernel path AVX512",
                   "GPU: none", "processes: 1", "12.3 s", "torch 2.4.0", "scikit-learn 1.5.0", "0123abc",
                   "2025-01-02T03:04:05Z"):
        assert needle in text, needle
    bare = describe_run({})  # a hand-written or older file: every line still there, saying "not recorded"
    assert len(bare) == len(describe_run(RUN)) and "not recorded" in bare[0]


def test_run_differences_names_kernel_path_machine_mode_and_dtype():
    assert run_differences(RUN, other(wall_seconds=99, git_revision=None, processes=2)) == []
    found = run_differences(RUN, other(machine={"torch_cpu_capability": "AVX2", "vendor_id": "GenuineIntel",
                                                "bf16_flags": []}, mode="fast", dtype="float32", gpu="H100"))
    assert found == ["kernel path: AVX512 vs AVX2", "machine vendor_id: AuthenticAMD vs GenuineIntel",
                     "machine bf16_flags: avx512_bf16 vs none", "GPU: none vs H100", "mode: official vs fast",
                     "dtype: bfloat16 vs float32"]
    unrecorded = other(machine={"cpu_family": None})
    del unrecorded["mode"]
    assert run_differences(RUN, unrecorded) == []  # what one side does not record is not compared


def test_data_fingerprint_and_git_revision(tmp_path):
    a, b = tmp_path / "forget.jsonl", tmp_path / "retain.jsonl"
    a.write_text("x\n")
    b.write_text("y\n")
    first = data_fingerprint([a, b])
    assert [f["bytes"] for f in first["files"]] == [2, 2] and re.fullmatch(r"[0-9a-f]{64}", first["sha256"])
    b.write_text("z\n")
    assert data_fingerprint([a, b])["sha256"] != first["sha256"]
    revision = git_revision()
    project = Path(__file__).resolve().parents[1]
    if (project / ".git").exists():
        expected = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True)
        assert revision == expected.stdout.strip()
    assert git_revision(tmp_path / "evaluator") is None  # not a git checkout: None, no error


def folder_with_run(path: Path, run: dict | None) -> Path:
    folder = write_synthetic_folder(path, with_extras=False)
    if run is not None:
        (folder / RUN_FILE).write_text(json.dumps(run))
    return folder


def test_compare_warns_when_made_on_another_kernel_path_or_dtype(tmp_path):
    a = folder_with_run(tmp_path / "a", RUN)
    b = folder_with_run(tmp_path / "b", other(machine={"torch_cpu_capability": "AVX2"}, dtype="float32"))
    runner = CliRunner()
    result = runner.invoke(main, ["compare", str(a), str(b), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert "A: how it was made" in result.output and "B: how it was made" in result.output
    warning = [line for line in result.output.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1
    assert "kernel path: AVX512 vs AVX2" in warning[0] and "dtype: bfloat16 vs float32" in warning[0]
    data = json.loads(runner.invoke(main, ["compare", str(a), str(b), "--bootstrap", "20", "--json"]).output)
    assert data["runs"]["a"] == RUN and len(data["run_differences"]) == 2
    same = folder_with_run(tmp_path / "same", other(wall_seconds=1.0))
    result = runner.invoke(main, ["compare", str(a), str(same), "--bootstrap", "20"])
    assert result.exit_code == 0 and "WARNING" not in result.output
    bare = folder_with_run(tmp_path / "bare", None)
    result = runner.invoke(main, ["compare", str(a), str(bare), "--bootstrap", "20"])
    assert result.exit_code == 0 and "B: no run.json" in result.output and "WARNING" not in result.output


def test_score_and_report_show_run_json(tmp_path):
    folder = folder_with_run(tmp_path / "run", RUN)
    result = CliRunner().invoke(main, ["score", str(folder)])
    assert result.exit_code == 0, result.output
    assert "How this was made" in result.output and "official mode" in result.output
    assert "How this was made" not in CliRunner().invoke(main, ["score", str(folder), "--json"]).output
    baseline = folder_with_run(tmp_path / "before", other(machine={"torch_cpu_capability": "AVX2"}))
    files = write_report(folder, tmp_path / "r", baseline_dir=baseline, bootstrap=0)
    html = files.html.read_text()
    assert '<section id="provenance"><h2>How this was made</h2>' in html and "AuthenticAMD" in html
    assert "WARNING: the baseline and this folder were made differently (kernel path: AVX2 vs AVX512" in html
    markdown = files.markdown.read_text()
    assert "## How this was made" in markdown and "0123abc" in markdown
    bare = write_report(folder_with_run(tmp_path / "bare", None), tmp_path / "r2", bootstrap=0)
    assert "no run.json" in bare.markdown.read_text()


def test_evaluate_writes_run_json(golden, tmp_path):
    from evaluator.core.machine import cpu_identity
    from evaluator.model.evaluate import EvaluationSettings, evaluate
    from evaluator.model.journal import checkpoint_fingerprint, sha256_json

    out = tmp_path / "out"
    settings = EvaluationSettings(mode="fast", batch_size=8, max_new_tokens=4, show_progress=False)
    evaluate(golden / "target", golden / "data", out, mia=golden / "mia",
             mmlu_metrics=golden / "mmlu_metrics.json", settings=settings)
    run = read_run(out)
    assert run is not None and (out / "evaluation_results.jsonl").is_file()
    assert not list(out.glob(f".{RUN_FILE}.*"))  # written atomically: no temporary left
    assert {k: run[k] for k in ("mode", "dtype", "batch_size", "max_new_tokens", "recheck_margin", "processes")} == {
        "mode": "fast", "dtype": settings.dtype, "batch_size": 8, "max_new_tokens": 4, "recheck_margin": 0.0,
        "processes": 1}
    assert run["checkpoint"] == str(golden / "target")
    assert run["checkpoint_fingerprint"] == f"sha256:{sha256_json(checkpoint_fingerprint(golden / 'target'))}"
    names = [Path(f["path"]).name for f in run["data_fingerprint"]["files"]]
    assert names == ["forget.jsonl", "retain.jsonl", "member.jsonl", "nonmember.jsonl"]
    assert set(run["versions"]) == {"torch", "transformers", "rouge_score", "scikit-learn", "pandas"}
    assert all(run["versions"][name] for name in ("torch", "transformers", "pandas"))
    assert run["machine"] == cpu_identity() and run["wall_seconds"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run["written_utc"])
    assert "git_revision" in run
    result = CliRunner().invoke(main, ["score", str(out), "--mmlu-metrics", str(golden / "mmlu_metrics.json")])
    assert result.exit_code == 0 and "fast mode" in result.output
