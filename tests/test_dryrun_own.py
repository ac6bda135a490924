"""``unlearn-eval dry-run --model DIR --data DIR [--mia DIR] [--mmlu-data DIR] [--python PATH]``: the organizers'
procedure on a model and data of one's own (issue 14, journey B).

The model and its data are built here (``tests/tiny_target.py``, no ../shared); the MIA documents are six of
the stub's, the MMLU folder one subject of the stub's mini-MMLU. The default submission runs two steps
(``--submission-kwargs``), scoring is fast mode, and the harness cache is a folder of this module's own.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tiny_target import build_tiny_target

from evaluator.cli import main
from evaluator.core.gate import MMLU_GATE_7B, RELATIVE_GATE_FRACTION
from evaluator.core.provenance import RUN_FILE
from evaluator.harness.dryrun import (
    EXIT_CODES,
    LUME_ROWS,
    MIA_NOT_SCORED,
    MMLU_NOT_RUN,
    count_parameters,
    hardware_speedup,
    scaled_time_limit,
)

STUB = Path(__file__).resolve().parents[1] / "data_stub"
QUICK = json.dumps({"max_steps": 2, "evaluations": 1, "seed": 0, "save_initial": False})
SUBJECT = "global_facts"


@pytest.fixture(scope="module")
def own(tmp_path_factory) -> dict:
    """A model of one's own and its data: forget.jsonl and retain.parquet side by side (two layouts the
    loader accepts), an MIA folder, a one-subject MMLU folder; the harness cache kept to this module."""
    folder = tmp_path_factory.mktemp("own")
    tiny = build_tiny_target(folder / "built", steps=100)
    data = folder / "data"
    data.mkdir()
    shutil.copy(tiny.forget / "forget.jsonl", data / "forget.jsonl")
    tiny.retain_rows[["id", "input", "output", "task"]].to_parquet(data / "retain.parquet", index=False)
    mia = folder / "mia"
    mia.mkdir()
    for name in ("member", "nonmember"):
        lines = (STUB / "mia_data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (mia / f"{name}.jsonl").write_text("".join(lines[:6]), encoding="utf-8")
    mmlu = folder / "mmlu"
    for part in ("dev", "test"):
        (mmlu / part).mkdir(parents=True)
        shutil.copy(STUB / "mmlu" / part / f"{SUBJECT}_{part}.csv", mmlu / part)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LUME_HARNESS_CACHE", str(folder / "cache"))
        yield {"model": tiny.model, "data": data, "mia": mia, "mmlu": mmlu,
               "rows": len(tiny.forget_rows) + len(tiny.retain_rows)}


def dry_run(own: dict, out: Path, *extra: str):
    argv = ["dry-run", "--model", str(own["model"]), "--data", str(own["data"]), "--out", str(out),
            "--mode", "fast", "--submission-kwargs", QUICK, *extra]
    result = CliRunner().invoke(main, argv)
    summary_file = out / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else None
    return result, summary


def assert_run_json(out: Path, own: dict, mia: Path | None) -> None:
    """before/ and after/ each say how they were made (evaluator/core/provenance.py)."""
    for stage in ("before", "after"):
        run = json.loads((out / stage / RUN_FILE).read_text())
        assert run["data"] == str(own["data"]) and run["mode"] == "fast"
        assert run["mia"] == (None if mia is None else str(mia))
        files = [Path(f["path"]).name for f in run["data_fingerprint"]["files"]]
        assert files[:2] == ["forget.jsonl", "retain.parquet"]


def test_own_model_data_mia_and_mmlu(own, tmp_path):
    out = tmp_path / "dry"
    result, summary = dry_run(own, out, "--mia", str(own["mia"]), "--mmlu-data", str(own["mmlu"]))
    assert summary is not None, result.output
    assert summary["problems"] == [] or summary["verdict"] == "gate-failed", summary["problems"]
    assert result.exit_code == summary["exit_code"] == EXIT_CODES[summary["verdict"]]
    # The model given, copied and left unchanged; the data's rows handed over.
    assert summary["target"] == {"path": str(own["model"]), "given": str(own["model"]), "stub": False,
                                 "reused": None}
    assert summary["input_model_unchanged"] and summary["checkpoint"]["loadable"]
    assert (out / "inputs" / "forget" / "forget.parquet").is_file()
    # The time limit: the hour scaled by these rows and this model's size, on this hardware.
    scale = summary["time"]
    parameters = count_parameters(own["model"])
    speedup, hardware = hardware_speedup(torch.cuda.device_count())
    assert scale["scale"]["rows"] == own["rows"] and scale["scale"]["parameters"] == parameters
    assert scale["scale"]["hardware_speedup"] == speedup and scale["scale"]["hardware"] == hardware
    assert scale["limit_s"] == scale["scale"]["scaled_limit_s"] == scaled_time_limit(own["rows"], parameters, speedup)
    assert f"{own['rows']}/{LUME_ROWS} rows x {parameters:,}/6.9e9 parameters" in scale["scale"]["formula"]
    assert not scale["limit_given"] and not scale["timed_out"]
    # Scored before and after on the MIA documents and the MMLU subject given; both gates applied.
    assert summary["scoring"]["mia"] == str(own["mia"]) and summary["scoring"]["mmlu"] == str(own["mmlu"])
    assert summary["scoring"]["not_run"] == []
    for stage in ("before", "after"):
        figures = summary[stage]
        assert all(figures[k] is not None for k in ("final", "mia_score", "mia_auc", "mmlu", "task_aggregate"))
    assert (out / "after" / "mmlu" / "metrics.json").is_file()
    gates = summary["gates"]
    assert [g["gate"] for g in gates["gates"]] == ["absolute", "relative"]
    after_mmlu, before_mmlu = summary["after"]["mmlu"], summary["before"]["mmlu"]
    passes = after_mmlu >= MMLU_GATE_7B and after_mmlu >= RELATIVE_GATE_FRACTION * before_mmlu
    assert gates["passed"] is passes
    assert summary["verdict"] == ("ok" if passes else "gate-failed")
    # This interpreter ran it.
    interpreter = summary["submission"]["interpreter"]
    assert interpreter["path"] == sys.executable and interpreter["given"] is False
    assert_run_json(out, own, own["mia"])


def other_python(tmp_path: Path) -> Path:
    """This environment's python reached through a symlink placed in ``tmp_path``. In a venv the link is to the
    venv's folder: a link to ``bin/python`` alone would run the base interpreter, without the venv's packages
    (Python finds a venv by the pyvenv.cfg beside or above the path it was started by)."""
    if sys.prefix != sys.base_prefix:
        link = tmp_path / "env"
        link.symlink_to(sys.prefix, target_is_directory=True)
        return link / "bin" / Path(sys.executable).name
    link = tmp_path / "python"
    link.symlink_to(sys.executable)
    return link


def test_own_model_with_another_python_and_nothing_else_scored(own, tmp_path):
    """--python: the submission runs in that interpreter, which summary.json records. Without --mia and
    --mmlu-data, MIA is not scored and the gates are not run, and both the summary and the table say so."""
    python = other_python(tmp_path)
    out = tmp_path / "dry"
    result, summary = dry_run(own, out, "--python", str(python))
    assert summary is not None, result.output
    assert summary["verdict"] == "ok" and result.exit_code == 0, summary["problems"]
    interpreter = summary["submission"]["interpreter"]
    assert interpreter["path"] == str(python) and interpreter["given"] is True
    assert interpreter["version"] == f"Python {platform.python_version()}"
    assert interpreter["torch"] == metadata.version("torch")
    assert interpreter["transformers"] == metadata.version("transformers")
    assert f"interpreter: {python} (Python {platform.python_version()}" in result.output
    # Not scored, and said so: no MIA figures, no final score, no gate applied (not passed either).
    assert summary["scoring"]["mia"] is None and summary["scoring"]["mmlu"] is None
    assert summary["scoring"]["not_run"] == [MIA_NOT_SCORED, MMLU_NOT_RUN]
    assert summary["gates"]["gates"] == [] and summary["gates"]["passed"] is None
    assert summary["gates"]["not_run"] == MMLU_NOT_RUN
    for stage in ("before", "after"):
        assert summary[stage]["task_aggregate"] is not None
        assert summary[stage]["mia_score"] is None and summary[stage]["mmlu"] is None
        assert summary[stage]["final"] is None
    assert "7b" not in summary["placement"]
    assert MIA_NOT_SCORED in result.output and MMLU_NOT_RUN in result.output
    assert_run_json(out, own, None)


def test_bad_python_and_bad_model(own, tmp_path):
    def one_error(*extra: str, model: Path | None = None) -> str:
        given = dict(own, model=model or own["model"])
        result, summary = dry_run(given, tmp_path / "dry", *extra)
        assert result.exit_code == 2 and summary is None, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        return lines[0]

    missing = tmp_path / "no-such-python"
    assert one_error("--python", str(missing)) == f"error: {missing}: --python is not an executable file"
    impostor = tmp_path / "impostor"
    impostor.write_text("#!/bin/sh\necho hello\n")
    impostor.chmod(0o755)
    assert "--python is not a Python interpreter" in one_error("--python", str(impostor))
    line = one_error("--python", sys.executable, "--submission", "no_such_submission_module")
    assert "cannot import the submission no_such_submission_module" in line
    assert "No module named 'no_such_submission_module'" in line
    no_model = tmp_path / "no-such-model"
    assert one_error(model=no_model).startswith(f"error: {no_model}: ")  # a folder that is not there, named
