"""Faults and bad input, each checked against its entry in tests/fault_cases.py (exit code, the one line it
prints, what is left on disk); the "What happens when..." table in docs/faults.md is generated from the same
entries (README.md links to it).

Cases with a ``setup`` run through the real command line here (``test_command_line_case``); the others
(a damaged checkpoint, a tokenizer without pad or eos token, a full disk, SIGTERM) have a test below that
makes the fault and looks its case up for what to expect.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fault_cases import BAD_INPUT, CASES, CASES_BY_NAME, GOLDEN, PROJECT, holds_message, write_jsonl

from evaluator.cli import main

FINAL_FILES = ("forget_0.csv", "retain_0.csv", "evaluation_results.jsonl")


def needs_golden():
    if not GOLDEN.is_dir():
        pytest.skip(f"needs the golden files at {GOLDEN} (../shared beside the project); absent here")


def error_line(stderr: str) -> str:
    """The one ``error:`` line (library warnings and progress bars may share stderr with it)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def assert_case(name: str, exit_code: int, stderr: str, paths: dict, strict_one_line: bool = True):
    case = CASES_BY_NAME[name]
    assert exit_code == case.exit_code, stderr[-3000:]
    if strict_one_line:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1, stderr[-3000:]
    line = error_line(stderr)
    assert holds_message(case, line, paths), f"{line!r} does not match {case.message!r}"


def no_temporary_files(folder: Path) -> bool:
    return not any(p.name.endswith(".tmp") for p in folder.rglob("*")) if folder.exists() else True


# --- every case with a setup, through the command line -------------------------------------------------

@pytest.mark.parametrize("case", [c for c in CASES if c.setup is not None], ids=lambda c: c.name)
def test_command_line_case(case, tmp_path):
    if case.needs_shared:
        needs_golden()
    argv, paths = case.setup(tmp_path)
    if case.program == "unlearn-eval":
        assert argv[0] == case.subcommand, f"{case.name}: runs {argv[0]}, the table says {case.subcommand}"
        command = main
    else:
        from submission.cli import command
    result = CliRunner().invoke(command, argv)
    assert_case(case.name, result.exit_code, result.stderr, paths)
    assert result.stdout == ""
    if case.outcome == BAD_INPUT and "out" in paths:
        out = paths["out"]
        assert not out.exists() or not any(out.iterdir()), "something was written in the output folder"


# --- the registry and the table ---------------------------------------------------------------------------

def test_every_case_is_checked_by_an_existing_test():
    for case in CASES:
        file, function = case.test.split("::")
        module = importlib.import_module(Path(file).stem)
        assert callable(getattr(module, function, None)), f"{case.name}: {case.test} does not exist"
        if case.setup is None:
            assert function != "test_command_line_case", f"{case.name}: no setup for the generic runner"
    assert len(CASES) >= 20


def test_faults_table_is_up_to_date():
    """docs/faults.md's block between the faults markers is exactly what the generator makes from the registry."""
    from make_faults_table import FAULTS_DOC, doc_block, render
    from make_faults_table import main as make_table

    assert doc_block() == render(), (f"{FAULTS_DOC}: the 'What happens when...' table is stale: "
                                     "python tests/make_faults_table.py")
    assert make_table(["--check"]) == 0


def test_faults_table_lives_in_docs_faults_and_readme_links_to_it():
    """One table, on the page 'What happens when...' (docs/faults.md); README.md links to that page and holds
    no second copy (no markers, no table row of a case)."""
    import re

    from make_faults_table import BEGIN, END, FAULTS_DOC, README, split_doc

    text = FAULTS_DOC.read_text(encoding="utf-8")
    head, block, tail = split_doc(text)
    heading = re.split(r"\n#+ ", "\n" + head)[-1]
    assert heading.startswith("What happens when..."), "the faults markers sit outside 'What happens when...'"
    assert "\n#" not in block and block.count("\n| ") == len(CASES) + 1  # header row + one row per case
    readme = README.read_text(encoding="utf-8")
    assert "docs/faults.md" in readme
    assert BEGIN not in readme and END not in readme
    assert "| What happens when... | Command | Exit |" not in readme
    assert [page.name for page in sorted((PROJECT / "docs").glob("*.md")) if BEGIN in page.read_text()] == ["faults.md"]
    with pytest.raises(ValueError):
        split_doc(text.replace(END, ""))
    with pytest.raises(ValueError):
        split_doc(text + BEGIN)


# --- a model on disk: a damaged checkpoint, tokenizers without pad or eos ---------------------------------

def copy_target(tmp_path: Path) -> Path:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(GOLDEN / "target", ckpt)
    for path in [ckpt, *ckpt.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the golden files are read-only
    return ckpt


def small_data(tmp_path: Path, n: int = 3) -> Path:
    """The first ``n`` golden rows of each set (a quick model run)."""
    folder = tmp_path / "data"
    for name in ("forget", "retain"):
        rows = [json.loads(line) for line in (GOLDEN / "data" / f"{name}.jsonl").read_text().splitlines()[:n]]
        write_jsonl(folder / f"{name}.jsonl", rows)
    return folder


def quick_evaluate(ckpt: Path, data: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out),
                                     "--quiet", "--max-new-tokens", "8", *extra])


@pytest.mark.parametrize("name", ["corrupt-safetensors", "not-safetensors"])
def test_corrupt_safetensors(name, tmp_path):
    needs_golden()
    ckpt = copy_target(tmp_path)
    weights = ckpt / "model.safetensors"
    if name == "corrupt-safetensors":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        weights.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    out = tmp_path / "out"
    result = quick_evaluate(ckpt, small_data(tmp_path), out)
    assert_case(name, result.exit_code, result.stderr, {"ckpt": ckpt}, strict_one_line=False)
    assert not out.exists() or not any(out.iterdir())


def _edit_tokenizer_config(ckpt: Path, drop: str) -> None:
    path = ckpt / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config.pop(drop, None)
    path.write_text(json.dumps(config))


def test_tokenizer_without_pad_token_runs_with_pad_eos(tmp_path):
    needs_golden()
    from transformers import AutoTokenizer

    from evaluator.model.engine import load_tokenizer

    ckpt = copy_target(tmp_path)
    _edit_tokenizer_config(ckpt, "pad_token")
    assert AutoTokenizer.from_pretrained(ckpt).pad_token is None
    tokenizer = load_tokenizer(ckpt)
    assert tokenizer.pad_token == tokenizer.eos_token and tokenizer.pad_token_id == tokenizer.eos_token_id
    data = small_data(tmp_path)
    with_pad, without_pad = tmp_path / "with_pad", tmp_path / "without_pad"
    for model, out in ((GOLDEN / "target", with_pad), (ckpt, without_pad)):
        result = quick_evaluate(model, data, out)
        assert result.exit_code == CASES_BY_NAME["tokenizer-no-pad"].exit_code, result.output
    for name in FINAL_FILES:
        assert (with_pad / name).read_bytes() == (without_pad / name).read_bytes(), name


def test_tokenizer_without_eos_token(tmp_path):
    needs_golden()
    from transformers import AutoTokenizer

    ckpt = copy_target(tmp_path)
    _edit_tokenizer_config(ckpt, "eos_token")
    assert AutoTokenizer.from_pretrained(ckpt).eos_token is None
    out = tmp_path / "out"
    result = quick_evaluate(ckpt, small_data(tmp_path), out)
    assert_case("tokenizer-no-eos", result.exit_code, result.stderr, {"ckpt": ckpt}, strict_one_line=False)
    assert not out.exists() or not any(out.iterdir())


# --- a full disk ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    needs_golden()
    tmp = tmp_path_factory.mktemp("uninterrupted")
    data = small_data(tmp)
    result = quick_evaluate(GOLDEN / "target", data, tmp / "out")
    assert result.exit_code == 0, result.output
    return data, tmp / "out"


@pytest.mark.parametrize("name,failing_write", [("disk-full-csv", 1), ("disk-full-results", 3)])
def test_disk_full_while_writing_results(name, failing_write, uninterrupted, tmp_path, monkeypatch):
    """The n-th atomic write (1: forget_0.csv, 3: evaluation_results.jsonl) fails with ENOSPC as its data
    reaches the disk: one line naming the file, exit 1, no half-written or temporary file, the journal kept;
    the same command then finishes without recomputing a row, with the files of an uninterrupted run."""
    data, reference = uninterrupted
    out = tmp_path / "out"
    real_fsync, calls = os.fsync, []

    def full_disk(fd):
        calls.append(fd)
        if len(calls) == failing_write:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    result = quick_evaluate(GOLDEN / "target", data, out)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert_case(name, result.exit_code, result.stderr, {"out": out}, strict_one_line=False)
    assert no_temporary_files(out)
    written = [n for n in FINAL_FILES if (out / n).exists()]
    assert written == list(FINAL_FILES[: failing_write - 1])
    for n in written:  # what is there is whole
        assert (out / n).read_bytes() == (reference / n).read_bytes()
    journal = list(out.glob(".partial/*/*.jsonl"))
    assert sum(len(p.read_text().splitlines()) for p in journal) == 6, "every finished row is kept"

    import evaluator.model.engine as engine

    def no_model_run(*args, **kwargs):
        raise AssertionError("a journaled row was computed again")

    monkeypatch.setattr(engine, "official_generate", no_model_run)
    again = quick_evaluate(GOLDEN / "target", data, out)
    assert again.exit_code == 0, again.output
    for n in FINAL_FILES:
        assert (out / n).read_bytes() == (reference / n).read_bytes(), n
    assert not (out / ".partial").exists()


# --- SIGTERM --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigterm_during_evaluation(tmp_path):
    needs_golden()
    out = tmp_path / "out"
    command = [sys.executable, "-m", "evaluator.cli", "evaluate", "--checkpoint", str(GOLDEN / "target"),
               "--data", str(GOLDEN / "data"), "--mia", str(GOLDEN / "mia"), "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 240
    rows = lambda: sum(len(p.read_text().splitlines()) for p in out.glob(".partial/*/*.jsonl"))  # noqa: E731
    while rows() < 5:
        assert process.poll() is None and time.monotonic() < deadline, "ended or stalled before 5 rows"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert_case("sigterm", process.returncode, stderr, {"out": out}, strict_one_line=False)
    assert rows() >= 5, "the journal keeps the finished rows"
    assert not any((out / n).exists() for n in FINAL_FILES) and not (out / "mia_results").exists()
    assert no_temporary_files(out)


def test_disk_full_while_journaling(uninterrupted, tmp_path, monkeypatch):
    """The third journal line is cut off half-way by ENOSPC: one line naming the journal, exit 1; the rerun
    drops the torn line, recomputes only the rows not kept, and writes the uninterrupted run's files."""
    import evaluator.model.journal as journal_module

    data, reference = uninterrupted
    out = tmp_path / "out"
    real_open, written = open, []

    class FillsUp:
        def __init__(self, handle):
            self.handle = handle

        def write(self, text):
            written.append(text)
            if len(written) == 3:
                self.handle.write(text[: len(text) // 2])
                self.handle.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.handle.write(text)

        def __getattr__(self, name):
            return getattr(self.handle, name)

    def journal_open(path, mode="r", *args, **kwargs):  # the journal appends; other files open as usual
        handle = real_open(path, mode, *args, **kwargs)
        return FillsUp(handle) if mode == "a" else handle

    monkeypatch.setattr(journal_module, "open", journal_open, raising=False)
    result = quick_evaluate(GOLDEN / "target", data, out)
    monkeypatch.undo()
    assert_case("disk-full-journal", result.exit_code, result.stderr, {"out": out}, strict_one_line=False)
    assert not any((out / n).exists() for n in FINAL_FILES) and no_temporary_files(out)
    (journal,) = out.glob(".partial/*/forget.jsonl")
    assert not journal.read_bytes().endswith(b"\n"), "the torn line is on disk"
    again = quick_evaluate(GOLDEN / "target", data, out)
    assert again.exit_code == 0, again.output
    for n in FINAL_FILES:
        assert (out / n).read_bytes() == (reference / n).read_bytes(), n
