"""Resume: ``unlearn-eval evaluate`` killed (SIGKILL) at random points continues from the rows its journal
kept (``--out/.partial/<key>/``) and ends with files byte-identical to an uninterrupted run (official mode).

The model runs need ../shared/golden; the journal's own unit tests do not.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from evaluator.model.journal import JOURNAL_DIR, Journal, checkpoint_fingerprint, run_description, run_key

FINAL_FILES = ("forget_0.csv", "retain_0.csv", "mia_results/member_0.csv", "mia_results/nonmember_0.csv",
               "evaluation_results.jsonl")
SEED = int(os.environ.get("RESUME_TEST_SEED", random.SystemRandom().randrange(10**6)))


def evaluate_command(golden: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "evaluator.cli", "evaluate", "--checkpoint", str(golden / "target"),
            "--data", str(golden / "data"), "--mia", str(golden / "mia"),
            "--mmlu-metrics", str(golden / "mmlu_metrics.json"), "--out", str(out), "--quiet", *extra]


def child_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def journal_rows(out: Path) -> int:
    return sum(len(p.read_bytes().splitlines()) for p in out.glob(f"{JOURNAL_DIR}/*/*.jsonl"))


def run_until_rows(command: list[str], out: Path, rows: int, jitter_s: float, timeout_s: float = 240) -> int:
    """Start ``command``, SIGKILL it once its journal holds ``rows`` rows (plus ``jitter_s`` seconds, so the
    kill also lands mid-row or mid-write); return the journal's row count after the kill."""
    # Its own session: the kill reaches every process of an `accelerate launch` (launcher and workers).
    process = subprocess.Popen(command, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while journal_rows(out) < rows:
            if process.poll() is not None:
                raise AssertionError(f"finished before {rows} journal rows: {process.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {rows} journal rows after {timeout_s} s")
            time.sleep(0.05)
        time.sleep(jitter_s)
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        for _ in range(200):  # the workers of an `accelerate launch` too: gone before the rerun starts
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        process.stderr.close()
    return journal_rows(out)


def golden_reference(golden: Path, tmp_path: Path) -> Path:
    """The uninterrupted run's files: the golden official ones of the folder made on a machine of this kind
    (``evaluator.core.machine.golden_folder_for``; official mode reproduces them byte for byte there,
    tests/test_golden.py), else an uninterrupted run made here."""
    from evaluator.core.machine import golden_folder_for

    folder, sentence = golden_folder_for(golden)
    print(f"\n{sentence}")
    if folder is not None:
        return folder / "target"
    print("reference: an uninterrupted run made here")
    out = tmp_path / "uninterrupted"
    subprocess.run(evaluate_command(golden, out), env=child_env(), check=True, capture_output=True)
    return out


@pytest.mark.slow
def test_sigkill_at_three_random_points_then_resume_is_byte_identical(golden, tmp_path):
    rng = random.Random(SEED)
    total = sum(len(pd.read_json(golden / "data" / f"{n}.jsonl", lines=True)) for n in ("forget", "retain"))
    total += sum(len(pd.read_json(golden / "mia" / f"{n}.jsonl", lines=True)) for n in ("member", "nonmember"))
    points = sorted(rng.sample(range(1, total - 2), 3))
    jitters = [rng.uniform(0, 0.4) for _ in points]
    print(f"\nseed {SEED} (RESUME_TEST_SEED): SIGKILL at {points} of {total} journal rows, "
          f"+{[round(j, 2) for j in jitters]} s")
    out = tmp_path / "out"
    command = evaluate_command(golden, out)
    kept = 0
    for rows, jitter in zip(points, jitters):
        after = run_until_rows(command, out, rows, jitter)
        if after == 0 and (out / "evaluation_results.jsonl").is_file() and not (out / JOURNAL_DIR).exists():
            # The last rows (MIA documents, milliseconds each) finished within the jitter: the run ended and
            # deleted its journal before the kill. Nothing is left to resume; the rerun below recomputes.
            print(f"the run finished before the kill at {rows} rows")
            break
        assert after >= max(rows, kept), f"rows lost: {after} after the kill, {kept} before this run"
        kept = after
        if after < total:  # a kill after the last row may land while the final files are being written
            assert not any((out / name).exists() for name in FINAL_FILES), "a final file exists before the end"
    # As a kill between two final files leaves them (each whole, the set not): the rerun replaces them.
    (out / "forget_0.csv").write_text("id,task\nleft by a killed run,Task1\n")
    finished = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    reference = golden_reference(golden, tmp_path)
    for name in FINAL_FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), f"{name} differs after resuming"
    assert not (out / JOURNAL_DIR).exists(), "the journal is deleted once the final files are written"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


ACCELERATE_LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1",
                     "--mixed_precision", "no", "--dynamo_backend", "no"]  # two CPU processes over gloo, no GPU


@pytest.mark.slow
@pytest.mark.parametrize("resume_processes", [1, 2])
def test_two_processes_killed_then_resumed_is_byte_identical(golden, tmp_path, resume_processes):
    """`accelerate launch` with two processes, SIGKILLed (launcher and workers) once both have journaled rows,
    then finished by the same command with one or two processes: the files of an uninterrupted run."""
    out = tmp_path / "out"

    def command(processes: int) -> list[str]:
        if processes == 1:
            return evaluate_command(golden, out)
        arguments = evaluate_command(golden, out)[1:]  # without the interpreter: `-m evaluator.cli ...`
        # A fresh port per launch: the killed run's rendezvous port may not be free again yet.
        return ACCELERATE_LAUNCH + ["--num_processes", str(processes), "--main_process_port", str(free_port()),
                                    *arguments]

    kept = run_until_rows(command(2), out, 30, random.Random(SEED).uniform(0, 0.3))
    own_files = sorted(p.name for p in out.glob(f"{JOURNAL_DIR}/*/*.jsonl"))
    assert any(".rank1." in name for name in own_files) and "forget.jsonl" in own_files, own_files
    assert kept >= 30 and not any((out / name).exists() for name in FINAL_FILES)
    finished = subprocess.run(command(resume_processes), env=child_env(), capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    reference = golden_reference(golden, tmp_path)
    for name in FINAL_FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), f"{name} differs after resuming"
    assert not (out / JOURNAL_DIR).exists(), "the journal is deleted once the final files are written"


def test_rows_journaled_by_another_process_are_reused(golden, tmp_path):
    """A restarted run reads every process's journal file: a row that process 1 of an earlier two-process run
    journaled (here: planted, with a text no model would write) is taken as is, not computed again."""
    from evaluator.core.data import load_sets
    from evaluator.model.evaluate import EvaluationSettings, evaluate

    data = tmp_path / "data"
    data.mkdir()
    for name in ("forget", "retain"):
        lines = (golden / "data" / f"{name}.jsonl").read_text().splitlines()[:3]
        (data / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    settings = EvaluationSettings(mode="official", max_new_tokens=8, show_progress=False)
    out = tmp_path / "out"
    planted = Journal(out, run_description(golden / "target", load_sets(data, None), None, settings.result_settings()),
                      rank=1).open()
    planted.append("forget", 1, ("from process 1", 0.25), ("text", "nll"))
    planted.close()
    assert (planted.folder / "forget.rank1.jsonl").exists()
    evaluate(golden / "target", data, out, settings=settings)
    forget = pd.read_csv(out / "forget_0.csv")
    assert forget.loc[1, "model_output"] == "from process 1" and forget.loc[1, "nll"] == 0.25
    assert forget.loc[0, "model_output"] != "from process 1"
    assert not (out / JOURNAL_DIR).exists()


# --- the journal itself (no model) ------------------------------------------------------------------

def small_sets():
    rows = pd.DataFrame({"id": ["a1sc1", "a1qa1"], "input": ["x", "y"], "output": ["1", "2"], "task": ["Task1"] * 2})
    return {"forget": rows, "retain": rows.copy()}


def fake_checkpoint(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0" * 100)
    return folder


def test_journal_drops_a_torn_last_line_and_keeps_appending(tmp_path):
    journal = Journal(tmp_path, run_description(fake_checkpoint(tmp_path / "ckpt"), small_sets(), None,
                                                {"mode": "official"})).open()
    fields = ("text", "nll")
    journal.append("forget", 0, ("zero", 0.5), fields)
    journal.append("forget", 2, ("two\r\n\"quoted\" 字", float("nan")), fields)
    journal.close()
    path = journal.folder / "forget.jsonl"
    with open(path, "ab") as fh:
        fh.write(b'{"i": 1, "text": "half a li')  # torn by a kill
    done = journal.done("forget", 3, fields)
    assert sorted(done) == [0, 2] and done[0] == ("zero", 0.5) and done[2][0] == "two\r\n\"quoted\" 字"
    assert path.read_bytes().endswith(b"\n"), "the torn tail is cut off"
    journal.append("forget", 1, ("one", 1.25), fields)
    journal.close()
    assert sorted(journal.done("forget", 3, fields)) == [0, 1, 2]
    for bad in (b'{"i": 7, "text": "out of range", "nll": 1.0}\n', b'{"i": 1, "nll": 1.0}\n', b"[1, 2]\n",
                b'{"i": true, "text": "t", "nll": 1.0}\n'):
        path.write_bytes(b'{"i": 0, "text": "zero", "nll": 0.5}\n' + bad)
        assert list(journal.done("forget", 3, fields)) == [0], bad
    journal.remove()
    assert not (tmp_path / JOURNAL_DIR).exists()


def test_key_changes_with_checkpoint_content_rows_and_settings(tmp_path):
    ckpt = fake_checkpoint(tmp_path / "ckpt")
    sets = small_sets()
    base = run_key(run_description(ckpt, sets, None, {"mode": "official"}))
    assert base == run_key(run_description(ckpt, small_sets(), None, {"mode": "official"}))  # deterministic
    moved = tmp_path / "moved"
    ckpt.rename(moved)  # the same files elsewhere: same key (the content counts, not the folder's name)
    assert run_key(run_description(moved, sets, None, {"mode": "official"})) == base
    assert run_key(run_description(moved, sets, None, {"mode": "fast"})) != base
    changed = {k: v.copy() for k, v in sets.items()}
    changed["retain"].loc[1, "output"] = "3"
    assert run_key(run_description(moved, changed, None, {"mode": "official"})) != base
    mia = {"member": pd.DataFrame({"id": ["1"], "document": ["d"]}),
           "nonmember": pd.DataFrame({"id": ["2"], "document": ["e"]})}
    assert run_key(run_description(moved, sets, mia, {"mode": "official"})) != base
    (moved / "config.json").write_text('{"changed": 1}')  # same name, new content
    assert run_key(run_description(moved, sets, None, {"mode": "official"})) != base


def test_large_files_are_keyed_by_size_and_mtime_not_hashed(tmp_path, monkeypatch):
    import evaluator.model.journal as journal_module

    ckpt = fake_checkpoint(tmp_path / "ckpt")
    monkeypatch.setattr(journal_module, "HASHED_FILE_LIMIT", 10)
    entries = {name: mark for name, _, mark in checkpoint_fingerprint(ckpt)}
    assert entries["config.json"].startswith("sha256:")
    assert entries["model.safetensors"] == f"mtime_ns:{(ckpt / 'model.safetensors').stat().st_mtime_ns}"
    before = json.dumps(checkpoint_fingerprint(ckpt))
    os.utime(ckpt / "model.safetensors", ns=(1, 1))
    assert json.dumps(checkpoint_fingerprint(ckpt)) != before


# --- fast mode: whole streams ----------------------------------------------------------------------------

def test_fast_mode_resumes_whole_streams_with_the_same_batches(golden, tmp_path, monkeypatch):
    """Fast mode journals a split or MIA set once all its batches are done: killed (here: an error) in the MIA
    pass, the rerun reuses both splits without generating again and writes the uninterrupted run's files."""
    import evaluator.model.engine as engine
    from evaluator.model.evaluate import EvaluationSettings, evaluate

    data = tmp_path / "data"
    data.mkdir()
    for name in ("forget", "retain"):
        lines = (golden / "data" / f"{name}.jsonl").read_text().splitlines()[:5]
        (data / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    settings = EvaluationSettings(mode="fast", batch_size=2, max_new_tokens=16, show_progress=False)
    reference = tmp_path / "reference"
    evaluate(golden / "target", data, reference, mia=golden / "mia", settings=settings)

    out = tmp_path / "out"
    fast = engine.MODES["fast"]

    def dies(*args, **kwargs):
        raise RuntimeError("killed in the MIA pass")

    monkeypatch.setitem(engine.MODES, "fast", engine.Mode(fast.generate_and_loss, dies, batched=True))
    with pytest.raises(RuntimeError, match="MIA pass"):
        evaluate(golden / "target", data, out, mia=golden / "mia", settings=settings)
    streams = {p.stem: len(p.read_text().splitlines()) for p in out.glob(f"{JOURNAL_DIR}/*/*.jsonl")}
    assert streams == {"forget": 5, "retain": 5}

    def must_not_generate(*args, **kwargs):
        raise AssertionError("a journaled split was generated again")

    monkeypatch.setitem(engine.MODES, "fast", engine.Mode(must_not_generate, fast.document_loss, batched=True))
    evaluate(golden / "target", data, out, mia=golden / "mia", settings=settings)
    for name in FINAL_FILES:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert not (out / JOURNAL_DIR).exists()
