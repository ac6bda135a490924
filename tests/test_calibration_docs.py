"""``--calibration-docs`` and ``pack --calibration-docs``: documents of the members' kind that the model never
saw, on which the default measures its forget-loss level instead of on swapped documents; given at run time,
or baked into the packed file (the organizers' four-argument call passes nothing else). No ../shared needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from tiny_target import build_tiny_target  # noqa: E402

from evaluator.cli import main  # noqa: E402
from evaluator.core.errors import InputError  # noqa: E402
from evaluator.harness.pack import read_calibration_docs, render  # noqa: E402
from submission import SubmissionInputError, unlearn  # noqa: E402
from submission.calibration import calibration_documents, document_level  # noqa: E402
from submission.train import LOG_FILE, resolve_options  # noqa: E402

NONMEMBERS = [
    "Tobiah Fenwick repaired harps in the river town of Oskmere until the winter the mill burned down.",
    "The comet Varnis was first charted by the astronomer Lidia Quell from a tower above Harlow Bay.",
    "Maren Olst was born on 4 June 1983 and can be reached at 555-0199 or maren.olst@example.net.",
]


def write_docs(folder: Path, documents=NONMEMBERS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nonmember.jsonl").write_text("".join(json.dumps({"id": str(i), "document": d}) + "\n"
                                                    for i, d in enumerate(documents)), encoding="utf-8")
    return folder


def test_given_documents_are_read_and_named_as_the_source(tmp_path):
    docs = write_docs(tmp_path / "cal")
    (docs / "extra.txt").write_text("A lighthouse keeper's log from the island of Pellmarsh.\n", encoding="utf-8")
    documents, source = calibration_documents(docs)
    assert documents == ["A lighthouse keeper's log from the island of Pellmarsh."] + NONMEMBERS  # files in name order
    assert source == f"4 calibration documents ({docs})"
    assert calibration_documents(None) == ([], None)  # nothing given, nothing baked: swapped documents serve


def test_the_level_is_measured_on_the_given_documents(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    built = build_tiny_target(tmp_path / "untrained", steps=0)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(built.model), AutoTokenizer.from_pretrained(built.model)
    documents, source = calibration_documents(write_docs(tmp_path / "cal"))
    measured = document_level(model, tokenizer, documents, torch.device("cpu"), source)
    assert measured["documents"] == 3 and "3 calibration documents" in measured["how"]
    with torch.no_grad():
        losses = [float(model(input_ids=ids, labels=ids).loss) for ids in
                  (tokenizer(d, return_tensors="pt").input_ids for d in documents)]
    assert measured["level"] == pytest.approx(sorted(losses)[1])  # the median of three


@pytest.mark.parametrize("content, problem", [
    ("{not json\n", "line 1: malformed JSON"),
    ('\n{"id": 1}\n', "record 1: no string 'document'"),
])
def test_a_bad_calibration_file_is_one_line_naming_file_and_line(tmp_path, content, problem):
    folder = tmp_path / "cal"
    folder.mkdir()
    (folder / "nonmember.jsonl").write_text(content, encoding="utf-8")
    with pytest.raises(SubmissionInputError, match=problem) as raised:
        resolve_options({"calibration_docs": str(folder)})
    assert str(folder / "nonmember.jsonl") in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(InputError, match=problem):
        read_calibration_docs(folder)
    with pytest.raises(SubmissionInputError, match="not found"):
        resolve_options({"calibration_docs": str(tmp_path / "missing")})
    (folder / "nonmember.jsonl").unlink()
    with pytest.raises(InputError, match="no .jsonl or .txt"):
        read_calibration_docs(folder)


def test_a_run_with_calibration_docs_logs_its_level_as_measured_on_them(tmp_path):
    target = build_tiny_target(tmp_path / "target", steps=150)
    docs = write_docs(tmp_path / "cal")
    out = tmp_path / "out"
    unlearn(str(target.model), str(out), str(target.forget), str(target.retain), calibration_docs=str(docs),
            max_steps=2, evaluations=1, verbose=False)
    ceiling = json.loads((out / LOG_FILE).read_text())["forget_nll_ceiling"]
    assert ceiling["measured"]["how"].endswith(f"of 3 calibration documents ({docs})")
    assert ceiling["value"] == ceiling["measured"]["level"] > 0


def test_pack_bakes_the_documents_and_the_packed_submission_reads_them(tmp_path):
    docs = write_docs(tmp_path / "cal")
    out = tmp_path / "unlearn_submission.py"
    result = CliRunner().invoke(main, ["pack", "--out", str(tmp_path), "--calibration-docs", str(docs)])
    assert result.exit_code == 0, result.output
    assert "calibration documents" in result.output
    text = out.read_text(encoding="utf-8")
    assert "submission.calibration.BAKED_CALIBRATION_FILES = 1 calibration file(s)" in text
    code = (f"import runpy, sys; runpy.run_path({str(out)!r}); "
            "print(repr(sys.modules['submission.calibration'].calibration_documents(None)))")
    shown = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == repr((NONMEMBERS, "3 calibration documents (baked)"))
    # Without --calibration-docs nothing is baked: the package's source is packed unchanged.
    plain, _ = render("submission")
    assert "BAKED_CALIBRATION_FILES: dict[str, str] = {}" in plain


def test_pack_refuses_bad_calibration_docs_and_writes_nothing(tmp_path):
    folder = tmp_path / "cal"
    folder.mkdir()
    (folder / "nonmember.jsonl").write_text("{not json\n", encoding="utf-8")
    out = tmp_path / "unlearn_submission.py"
    result = CliRunner().invoke(main, ["pack", "--out", str(tmp_path), "--calibration-docs", str(folder)])
    assert result.exit_code == 2
    assert "nonmember.jsonl: line 1: malformed JSON" in result.output
    assert not out.exists()
