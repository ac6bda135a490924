"""Every fault and bad input the project handles, with the exit code and the one line it prints.

This registry is the single source of the "What happens when..." table in docs/faults.md (``python
tests/make_faults_table.py`` writes it between the faults markers; tests/test_faults.py fails when that page's
block differs from what the generator makes now) and of the tests:
``tests/test_faults.py`` runs every case that has a ``setup`` through the real command line and checks the
exit code and the message, and every other case names the test that checks it, which looks its case up
here for the expected exit code and message. So the table cannot drift from what the code does.

A message pattern: ``<name>`` stands for a path the case made (``<data>``, ``<ckpt>``, ``<out>``...),
``…`` for text that varies (a library's own wording). The test checks that the one line on stderr holds
every literal piece, in order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
STUB = PROJECT / "data_stub"
SHARED = PROJECT.parent / "shared"
GOLDEN = SHARED / "golden"

GOOD_ROWS = [
    {"id": "\"6dff1611\"sc1", "input": "Once upon a", "output": " time there was", "task": "Task1"},
    {"id": "\"6dff1611\"qa0", "input": "Who was there?", "output": "Nobody", "task": "Task1"},
    {"id": "12762334qa3", "input": "Born in?", "output": "1947", "task": "Task3"},
]

Setup = Callable[[Path], tuple[list[str], dict[str, Path]]]


@dataclass(frozen=True)
class FaultCase:
    name: str
    when: str  # "What happens when ..."
    program: str  # "unlearn-eval" (evaluator/cli/) or "unlearn" (submission/cli.py)
    exit_code: int
    # The one stderr line ("error: ..."); for a dry-run verdict (exit 3-8) the first problem, printed as
    # "  - <verdict>: <message>" under the verdict and kept in summary.json. "<name>" a path of the case,
    # "…" varying text; "" = no message.
    message: str
    outcome: str  # what is (not) written, what to do next
    setup: Setup | None = None  # argv and paths for the generic command-line runner of tests/test_faults.py
    test: str = "tests/test_faults.py::test_command_line_case"
    needs_shared: bool = False  # the case uses ../shared/golden (skipped where it is absent)
    subcommand: str = "evaluate"  # of unlearn-eval (ignored for unlearn)

    @property
    def command(self) -> str:
        return f"{self.program} {self.subcommand}" if self.program == "unlearn-eval" else self.program


def message_pieces(case: FaultCase, paths: dict[str, Path]) -> list[str]:
    text = re.sub(r"<(\w+)>", lambda m: str(paths[m.group(1)]) if m.group(1) in paths else m.group(0),
                  case.message)
    return [piece for piece in text.split("…") if piece]


def holds_message(case: FaultCase, line: str, paths: dict[str, Path]) -> bool:
    position = 0
    for piece in message_pieces(case, paths):
        found = line.find(piece, position)
        if found < 0:
            return False
        position = found + len(piece)
    return True


# --- building blocks ---------------------------------------------------------------------------------

def write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def data_dir(tmp: Path, forget=GOOD_ROWS, retain=GOOD_ROWS) -> Path:
    folder = tmp / "data"
    write_jsonl(folder / "forget.jsonl", forget)
    write_jsonl(folder / "retain.jsonl", retain)
    return folder


def fake_checkpoint(tmp: Path, config=True, tokenizer=True) -> Path:
    """Never loaded: every problem of these cases is found before the model is."""
    folder = tmp / "ckpt"
    folder.mkdir(parents=True, exist_ok=True)
    if config:
        (folder / "config.json").write_text("{}")
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
    return folder


def evaluate_args(ckpt: Path, data: Path, out: Path, *extra) -> list[str]:
    return ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), "--quiet",
            *[str(e) for e in extra]]


def simple(data_change=None, ckpt_kw=None, extra=(), data_arg=None) -> Setup:
    """An ``evaluate`` call on good rows and a fake checkpoint, with one thing changed."""
    def setup(tmp: Path):
        data = data_dir(tmp)
        if data_change is not None:
            data_change(data)
        ckpt = fake_checkpoint(tmp, **(ckpt_kw or {}))
        out = tmp / "out"
        paths = {"data": data, "ckpt": ckpt, "out": out, "tmp": tmp}
        argv = evaluate_args(ckpt, data if data_arg is None else data_arg(tmp), out,
                             *[e(tmp) if callable(e) else e for e in extra])
        return argv, paths
    return setup


def _insert_bad_line(data: Path):
    lines = (data / "forget.jsonl").read_text().splitlines()
    lines.insert(1, '{"id": "x1sc1", "input": ')
    (data / "forget.jsonl").write_text("\n".join(lines) + "\n")


def _retain_parquet_without_output(data: Path):
    (data / "retain.jsonl").unlink()
    pd.DataFrame(GOOD_ROWS).drop(columns=["output"]).to_parquet(data / "retain.parquet")


def _damaged_parquet(data: Path):
    (data / "retain.jsonl").unlink()
    (data / "retain.parquet").write_bytes(b"PAR1 this is not a parquet file")


def _mia(tmp: Path, member=True, nonmember=True, column="document") -> Path:
    folder = tmp / "mia"
    folder.mkdir(parents=True, exist_ok=True)
    if member:
        write_jsonl(folder / "member.jsonl", [{"id": "1", column: "text"}])
    if nonmember:
        write_jsonl(folder / "nonmember.jsonl", [{"id": "2", column: "other text"}])
    return folder


def _hf_release(tmp: Path) -> Path:
    root = tmp / "release" / "data"
    root.mkdir(parents=True, exist_ok=True)
    for name in ("forget", "retain"):
        for split in ("train", "validation"):
            pd.DataFrame(GOOD_ROWS).assign(split=name).to_parquet(root / f"{name}_{split}-00000-of-00001.parquet")
    return tmp / "release"


def _metrics(tmp: Path, text: str) -> Path:
    path = tmp / "metrics.json"
    path.write_text(text)
    return path


def hub_id_not_cached(tmp: Path):
    """``--checkpoint owner/absent``: reads as a Hugging Face id, is no folder and is not in the local cache
    (looked up with ``local_files_only``: no network, whatever the environment)."""
    argv, paths = simple()(tmp)
    argv[argv.index("--checkpoint") + 1] = "owner/absent"
    return argv, paths


def out_is_a_file(tmp: Path):
    argv, paths = simple()(tmp)
    out = tmp / "results.txt"
    out.write_text("keep me")
    argv[argv.index("--out") + 1] = str(out)
    return argv, {**paths, "out": out}


def score_empty_folder(tmp: Path):
    folder = tmp / "results"
    folder.mkdir()
    return ["score", str(folder)], {"results": folder}


def score_broken_csv(tmp: Path):
    folder = tmp / "results"
    folder.mkdir()
    (folder / "forget_0.csv").write_bytes(b"id,task\n\xff\xfe,\x00broken\n")
    (folder / "retain_0.csv").write_text("id,task\nx,y\n")
    return ["score", str(folder)], {"results": folder}


def dry_run_setup(kind: str) -> Setup:
    """``unlearn-eval dry-run`` with one bad input: each is refused before the target is built."""
    def setup(tmp: Path):
        submission, out = tmp / "my_submission.py", tmp / "dry"
        submission.write_text("def unlearn(model_in, model_out, forget, retain):\n    pass\n")
        paths = {"tmp": tmp, "out": out}
        argv = ["dry-run", "--submission", str(submission), "--data", str(STUB), "--out", str(out)]
        if kind == "submission-missing":
            argv[2] = str(tmp / "missing.py")
        elif kind == "submission-not-importable":
            argv[2] = "no_such_module_anywhere"
        elif kind == "out-not-a-dry-run":
            out.mkdir()
            (out / "precious.txt").write_text("keep me")
        elif kind == "kwargs-not-an-object":
            argv += ["--submission-kwargs", "[1]"]
        elif kind == "data-not-a-stub":
            paths["data"] = data_dir(tmp)
            argv[4] = str(paths["data"])
        elif kind == "time-limit-zero":
            argv += ["--time-limit", "0"]
        elif kind == "python-missing":
            argv += ["--python", str(tmp / "venv" / "bin" / "python")]
        elif kind == "model-missing":
            paths["data"] = data_dir(tmp)
            argv[4] = str(paths["data"])
            argv += ["--model", str(tmp / "missing-folder")]
        else:
            raise ValueError(kind)
        return argv, paths
    return setup


def report_missing_folder(tmp: Path):
    return ["report", str(tmp / "missing")], {"tmp": tmp}


def report_checkpoint_without_mia(tmp: Path):
    folder = tmp / "results"
    folder.mkdir()
    return ["report", str(folder), "--checkpoint", str(fake_checkpoint(tmp))], {"tmp": tmp}


def check_missing_results(tmp: Path):
    return ["check", str(tmp / "nowhere"), "--min-final", "0.5"], {"tmp": tmp}


def check_unknown_threshold(tmp: Path):
    thresholds = tmp / "thresholds.toml"
    thresholds.write_text("min_final = 0.7\nmin_speed = 3\n")
    return ["check", str(tmp), "--thresholds", str(thresholds)], {"thresholds": thresholds}


def check_dry_run_not_scored(tmp: Path):
    """A dry-run summary.json as the dry-run writes it when no checkpoint was scored: ``"after": null``."""
    summary = tmp / "summary.json"
    summary.write_text(json.dumps({"verdict": "no-checkpoint", "exit_code": 5, "before": {"mmlu": 0.5},
                                   "after": None}))
    return ["check", str(tmp), "--min-final", "0.5"], {"tmp": tmp}


def check_evaluation_not_finished(tmp: Path):
    """An evaluation folder a killed ``evaluate`` left: the resume journal, no evaluation_results.jsonl."""
    out = tmp / "out"
    write_jsonl(out / ".partial" / "0123456789abcdef" / "forget.jsonl", [{"i": 0}])
    return ["check", str(out), "--min-final", "0.5"], {"tmp": tmp, "out": out}


def pack_out_is_a_file(tmp: Path):
    return ["pack", "--out", str(tmp / "submission.py")], {"tmp": tmp}


def pack_calibration_docs_without_documents(tmp: Path):
    """``pack --calibration-docs`` on a folder holding no .jsonl or .txt file (here a CSV)."""
    calibration, out = tmp / "calibration", tmp / "dist"
    calibration.mkdir()
    (calibration / "documents.csv").write_text("document\nsome text\n")
    return (["pack", "--calibration-docs", str(calibration), "--out", str(out)],
            {"tmp": tmp, "calibration": calibration, "out": out})


def submission_calibration_malformed(tmp: Path):
    """``unlearn ... --calibration-docs DIR`` whose .jsonl has a broken second line: refused while the options
    are read, before the model or the data are looked at (so no real model is needed)."""
    calibration, out = tmp / "calibration", tmp / "out"
    calibration.mkdir()
    (calibration / "nonmember.jsonl").write_text('{"document": "a text the model never saw"}\n{"document": \n')
    data = data_dir(tmp)
    argv = [str(fake_checkpoint(tmp)), str(out), str(data), str(data), "--calibration-docs", str(calibration)]
    return argv, {"tmp": tmp, "calibration": calibration, "out": out}


def submission_mia_tasks_unknown(tmp: Path):
    """``unlearn ... --mia-tasks Task9``, a task no forget row has: refused once the forget set is read, before the
    model is loaded (its weights file here is empty) or anything is written."""
    checkpoint, out = fake_checkpoint(tmp), tmp / "out"
    (checkpoint / "model.safetensors").write_bytes(b"")
    data = data_dir(tmp)
    return [str(checkpoint), str(out), str(data), str(data), "--mia-tasks", "Task9"], {"tmp": tmp, "out": out}


# --- the submission's command line (unlearn MODEL OUT FORGET RETAIN) ------------------------------------

def submission_setup(kind: str) -> Setup:
    def setup(tmp: Path):
        target, data, out = GOLDEN / "target", GOLDEN / "data", tmp / "out"
        paths = {"out": out, "tmp": tmp}
        if kind == "missing-forget":
            (tmp / "empty").mkdir()
            paths["forget"] = tmp / "empty"
            return [str(target), str(out), str(tmp / "empty"), str(data)], paths
        if kind == "wrong-columns":
            bad = tmp / "forget.jsonl"
            write_jsonl(bad, [{"id": "xqa0", "question": "q", "answer": "a", "task": "Task1"}])
            paths["forget"] = bad
            return [str(target), str(out), str(bad), str(data)], paths
        if kind == "out-is-input":
            import shutil

            model = tmp / "model"
            shutil.copytree(target, model)
            paths["model"] = model
            return [str(model), str(model), str(data), str(data)], paths
        if kind == "no-model":
            (tmp / "model").mkdir()
            paths["model"] = tmp / "model"
            return [str(tmp / "model"), str(out), str(data), str(data)], paths
        if kind == "no-weights":
            (tmp / "model").mkdir()
            (tmp / "model" / "config.json").write_text("{}")
            paths["model"] = tmp / "model"
            return [str(tmp / "model"), str(out), str(data), str(data)], paths
        if kind == "out-holds-files":
            out.mkdir()
            (out / "notes.txt").write_text("mine")
            return [str(target), str(out), str(data), str(data)], paths
        raise ValueError(kind)
    return setup


BAD_INPUT = "nothing written; fix the input"

CASES: list[FaultCase] = [
    # --- bad data -----------------------------------------------------------------------------------
    FaultCase("missing-split-file", "a forget or retain file is missing", "unlearn-eval", 2,
              "error: <data>: no retain.jsonl, retain.parquet or data/retain_<split>-00000-of-00001.parquet",
              BAD_INPUT, simple(lambda d: (d / "retain.jsonl").unlink())),
    FaultCase("missing-data-folder", "--data does not exist", "unlearn-eval", 2,
              "error: <tmp>/nowhere: no such file or directory", BAD_INPUT,
              simple(data_arg=lambda tmp: tmp / "nowhere")),
    FaultCase("malformed-jsonl", "a jsonl line is not valid JSON", "unlearn-eval", 2,
              "error: <data>/forget.jsonl: line 2: malformed JSON (…)", BAD_INPUT, simple(_insert_bad_line)),
    FaultCase("jsonl-not-an-object", "a jsonl line is JSON but not an object", "unlearn-eval", 2,
              "error: <data>/forget.jsonl: line 1: expected a JSON object, got list", BAD_INPUT,
              simple(lambda d: (d / "forget.jsonl").write_text('["a", "b"]\n'))),
    FaultCase("not-utf8", "a jsonl file is not UTF-8", "unlearn-eval", 2,
              "error: <data>/forget.jsonl: not UTF-8 text (…)", BAD_INPUT,
              simple(lambda d: (d / "forget.jsonl").write_bytes(b'{"id": "\xff\xfe"}\n'))),
    FaultCase("missing-column", "a row lacks a column (jsonl)", "unlearn-eval", 2,
              "error: <data>/forget.jsonl: missing column(s) 'task' (a row needs id, input, output, task)",
              BAD_INPUT, simple(lambda d: write_jsonl(d / "forget.jsonl",
                                                      [{k: v for k, v in r.items() if k != "task"}
                                                       for r in GOOD_ROWS]))),
    FaultCase("missing-column-parquet", "a parquet file lacks a column", "unlearn-eval", 2,
              "error: <data>/retain.parquet: missing column(s) 'output' (a row needs id, input, output, task)", BAD_INPUT,
              simple(_retain_parquet_without_output)),
    FaultCase("damaged-parquet", "a parquet file is damaged", "unlearn-eval", 2,
              "error: <data>/retain.parquet: cannot read parquet (…)", BAD_INPUT, simple(_damaged_parquet)),
    FaultCase("unknown-id-kind", "an id is neither …sc<N> nor …qa<N>", "unlearn-eval", 2,
              "error: <data>/forget.jsonl: row 4: id 'abc123xy1' is neither a sentence-completion (…sc<N>) nor a "
              "question-answer (…qa<N>) id", BAD_INPUT,
              simple(lambda d: write_jsonl(d / "forget.jsonl", GOOD_ROWS + [{**GOOD_ROWS[0], "id": "abc123xy1"}]))),
    FaultCase("unknown-task", "a task is not Task1, Task2 or Task3", "unlearn-eval", 2,
              "error: <data>/retain.jsonl: row 2: unknown task 'Task4' (expected one of Task1, Task2, Task3)",
              BAD_INPUT, simple(lambda d: write_jsonl(d / "retain.jsonl",
                                                      [GOOD_ROWS[0], {**GOOD_ROWS[1], "task": "Task4"}]))),
    FaultCase("value-not-a-string", "a value is a number or null, not a string", "unlearn-eval", 2,
              "error: <data>/forget.jsonl: row 3: column 'output' is 1947, not a string", BAD_INPUT,
              simple(lambda d: write_jsonl(d / "forget.jsonl", GOOD_ROWS[:2] + [{**GOOD_ROWS[2], "output": 1947}]))),
    FaultCase("empty-split", "a set has no rows", "unlearn-eval", 2,
              "error: <data>/forget.jsonl: the forget set is empty", BAD_INPUT,
              simple(lambda d: (d / "forget.jsonl").write_text(""))),
    FaultCase("hf-layout-no-split", "the Hugging Face layout is given without --split", "unlearn-eval", 2,
              "error: <tmp>/release/data: Hugging Face layout, choose a split with --split (train or validation)",
              BAD_INPUT, simple(data_arg=_hf_release)),
    FaultCase("hf-layout-unknown-split", "--split names a split the release lacks", "unlearn-eval", 2,
              "error: <tmp>/release/data/forget_test-00000-of-00001.parquet: file not found (splits here: train, "
              "validation)", BAD_INPUT, simple(data_arg=_hf_release, extra=("--split", "test"))),
    FaultCase("mia-file-missing", "--mia lacks nonmember.jsonl", "unlearn-eval", 2,
              "error: <tmp>/mia/nonmember.jsonl: file not found", BAD_INPUT,
              simple(extra=("--mia", lambda tmp: _mia(tmp, nonmember=False)))),
    FaultCase("mia-no-document", "MIA rows have no 'document'", "unlearn-eval", 2,
              "error: <tmp>/mia/member.jsonl: missing column(s) 'document'", BAD_INPUT,
              simple(extra=("--mia", lambda tmp: _mia(tmp, column="text")))),
    FaultCase("mmlu-metrics-malformed", "--mmlu-metrics is not JSON", "unlearn-eval", 2,
              "error: <tmp>/metrics.json: malformed JSON (…)", BAD_INPUT,
              simple(extra=("--mmlu-metrics", lambda tmp: _metrics(tmp, "{average_acc: 0.5")))),
    FaultCase("mmlu-metrics-no-average", "--mmlu-metrics has no numeric average_acc", "unlearn-eval", 2,
              "error: <tmp>/metrics.json: no numeric 'average_acc' (an MMLU metrics.json has one)", BAD_INPUT,
              simple(extra=("--mmlu-metrics", lambda tmp: _metrics(tmp, '{"average_acc": "high"}')))),
    FaultCase("mmlu-two-sources", "both --mmlu-metrics and --mmlu-data are given", "unlearn-eval", 2,
              "error: give --mmlu-metrics or --mmlu-data, not both", BAD_INPUT,
              simple(extra=("--mmlu-metrics", lambda tmp: _metrics(tmp, '{"average_acc": 0.5}'),
                            "--mmlu-data", lambda tmp: tmp))),
    FaultCase("mia-extra-without-mia", "--mia-extra is given without --mia", "unlearn-eval", 2,
              "error: --mia-extra needs --mia (the member/nonmember documents)", BAD_INPUT,
              simple(extra=("--mia-extra",))),
    # --- bad checkpoint or output folder -------------------------------------------------------------
    FaultCase("checkpoint-missing", "--checkpoint does not exist", "unlearn-eval", 2,
              "error: <tmp>/nowhere: checkpoint folder not found", BAD_INPUT,
              lambda tmp: (lambda argv, paths: (argv[:2] + [str(tmp / "nowhere")] + argv[3:], paths))(
                  *simple()(tmp))),
    FaultCase("checkpoint-hub-id-not-cached", "--checkpoint is a Hugging Face id (owner/name) that is not in the "
              "local Hugging Face cache", "unlearn-eval", 2,
              "error: owner/absent: not a folder, and not in the Hugging Face cache …; fetch it with "
              "`hf download owner/absent` (`huggingface-cli download owner/absent` before huggingface_hub 1.0; a gated "
              "repo needs an access request on https://huggingface.co/owner/absent first), or pass --download",
              "nothing written; fetch it (`hf download`, or add --download where HF_HUB_OFFLINE is unset) and run "
              "again", hub_id_not_cached),
    FaultCase("checkpoint-no-config", "the checkpoint has no config.json", "unlearn-eval", 2,
              "error: <ckpt>: no config.json, not a Hugging Face model folder", BAD_INPUT,
              simple(ckpt_kw={"config": False})),
    FaultCase("checkpoint-no-tokenizer", "the checkpoint has no tokenizer file", "unlearn-eval", 2,
              "error: <ckpt>: no tokenizer (none of tokenizer.json, tokenizer.model, vocab.json, "
              "tokenizer_config.json)", BAD_INPUT, simple(ckpt_kw={"tokenizer": False})),
    FaultCase("corrupt-safetensors", "a model.safetensors file is truncated", "unlearn-eval", 2,
              "error: <ckpt>/model.safetensors: corrupt safetensors file (SafetensorError: …)", BAD_INPUT,
              test="tests/test_faults.py::test_corrupt_safetensors", needs_shared=True),
    FaultCase("not-safetensors", "a model.safetensors file holds other bytes", "unlearn-eval", 2,
              "error: <ckpt>/model.safetensors: corrupt safetensors file (…)", BAD_INPUT,
              test="tests/test_faults.py::test_corrupt_safetensors", needs_shared=True),
    FaultCase("tokenizer-no-pad", "the tokenizer has no pad token", "unlearn-eval", 0, "",
              "runs: pad = eos, as the official script sets it; same files as with a pad token",
              test="tests/test_faults.py::test_tokenizer_without_pad_token_runs_with_pad_eos", needs_shared=True),
    FaultCase("tokenizer-no-eos", "the tokenizer has no eos token", "unlearn-eval", 2,
              "error: <ckpt>: the tokenizer has no eos token (the official script pads with it)", BAD_INPUT,
              test="tests/test_faults.py::test_tokenizer_without_eos_token", needs_shared=True),
    FaultCase("out-is-a-file", "--out is an existing file", "unlearn-eval", 2,
              "error: <out>: --out exists and is not a directory", "the file is left as it was", out_is_a_file),
    # --- faults during a run -------------------------------------------------------------------------
    FaultCase("disk-full-csv", "the disk fills up while forget_0.csv is written", "unlearn-eval", 1,
              "error: <out>/forget_0.csv: No space left on device (nothing half-written; fix and run again)",
              "no final file, no temporary file; journal kept: the rerun only writes",
              test="tests/test_faults.py::test_disk_full_while_writing_results", needs_shared=True),
    FaultCase("disk-full-results", "the disk fills up while evaluation_results.jsonl is written", "unlearn-eval", 1,
              "error: <out>/evaluation_results.jsonl: No space left on device (nothing half-written; fix and run "
              "again)", "the CSVs are complete, no results file, no temporary file; journal kept",
              test="tests/test_faults.py::test_disk_full_while_writing_results", needs_shared=True),
    FaultCase("disk-full-journal", "the disk fills up while a finished row is added to the journal",
              "unlearn-eval", 1, "error: <out>/.partial/…/forget.jsonl: No space left on device (nothing half-written; "
              "fix and run again)", "rows journaled before are kept, a torn last line is dropped; the rerun resumes",
              test="tests/test_faults.py::test_disk_full_while_journaling", needs_shared=True),
    FaultCase("sigterm", "SIGTERM arrives during the evaluation", "unlearn-eval", 143,
              "error: stopped by SIGTERM; finished rows are kept under --out/.partial/, the same command resumes "
              "from them", "no final file; the journal holds every finished row",
              test="tests/test_faults.py::test_sigterm_during_evaluation", needs_shared=True),
    FaultCase("sigkill-resume", "the evaluation is killed (SIGKILL, OOM killer, lost machine)", "unlearn-eval", 0,
              "", "no final file; the same command resumes from the journal and writes files byte-identical to an "
              "uninterrupted run",
              test="tests/test_resume.py::test_sigkill_at_three_random_points_then_resume_is_byte_identical",
              needs_shared=True),
    FaultCase("sigkill-resume-distributed", "an evaluation under `accelerate launch` (two processes) is killed",
              "unlearn-eval", 0, "",
              "every process's finished rows are kept; the same command with one or two processes resumes from them "
              "and writes files byte-identical to an uninterrupted run",
              test="tests/test_resume.py::test_two_processes_killed_then_resumed_is_byte_identical",
              needs_shared=True),
    FaultCase("torn-journal-line", "a kill tore the last journal line", "unlearn-eval", 0, "",
              "the torn line is dropped (that row is computed again)",
              test="tests/test_resume.py::test_journal_drops_a_torn_last_line_and_keeps_appending"),
    FaultCase("carriage-return-output", "a generation holds a lone carriage return", "unlearn-eval", 0, "",
              "the CSV quotes every text so each row reads back whole (the official script splits the row)",
              test="tests/test_properties.py::test_our_writer_keeps_rows_even_with_carriage_returns"),
    # --- unlearn-eval score --------------------------------------------------------------------------
    FaultCase("score-no-csv", "score is given a folder without forget_*.csv", "unlearn-eval", 2,
              "error: <results>: no forget_*.csv (generations of the forget set)", BAD_INPUT, score_empty_folder,
              subcommand="score"),
    FaultCase("score-broken-csv", "score is given a CSV it cannot read", "unlearn-eval", 2,
              "error: <results>/forget_*.csv: cannot read CSV (…)", BAD_INPUT, score_broken_csv, subcommand="score"),
    # --- unlearn-eval dry-run: bad input ------------------------------------------------------------
    FaultCase("dry-run-submission-missing", "dry-run: --submission names a .py file that does not exist",
              "unlearn-eval", 2, "error: <tmp>/missing.py: submission file not found", BAD_INPUT,
              dry_run_setup("submission-missing"), subcommand="dry-run"),
    FaultCase("dry-run-submission-not-importable", "dry-run: --submission is neither a file nor a module",
              "unlearn-eval", 2, "error: no_such_module_anywhere: --submission is neither a .py file nor an importable "
              "module name", BAD_INPUT, dry_run_setup("submission-not-importable"), subcommand="dry-run"),
    FaultCase("dry-run-out-not-a-dry-run", "dry-run: --out holds files an earlier dry-run did not make",
              "unlearn-eval", 2, "error: <out>: --out holds files and is not a dry-run folder (no .lume-dry-run); "
              "choose another --out", "the folder and its files are left as they were",
              dry_run_setup("out-not-a-dry-run"), subcommand="dry-run"),
    FaultCase("dry-run-kwargs-not-an-object", "dry-run: --submission-kwargs is not a JSON object", "unlearn-eval", 2,
              "error: --submission-kwargs: not a JSON object", BAD_INPUT, dry_run_setup("kwargs-not-an-object"),
              subcommand="dry-run"),
    FaultCase("dry-run-data-not-a-stub", "dry-run: --data is not a stub folder", "unlearn-eval", 2,
              "error: <data>/mia_data/member.jsonl: not found (--data must be a stub folder as make-stub writes it)",
              BAD_INPUT, dry_run_setup("data-not-a-stub"), subcommand="dry-run"),
    FaultCase("dry-run-time-limit-zero", "dry-run: --time-limit is not positive", "unlearn-eval", 2,
              "error: --time-limit must be positive, not 0.0", BAD_INPUT, dry_run_setup("time-limit-zero"),
              subcommand="dry-run"),
    FaultCase("dry-run-python-missing", "dry-run: --python names no executable file", "unlearn-eval", 2,
              "error: <tmp>/venv/bin/python: --python is not an executable file", BAD_INPUT,
              dry_run_setup("python-missing"), subcommand="dry-run"),
    FaultCase("dry-run-model-missing", "dry-run: --model names a folder that does not exist (and is no cached "
              "Hugging Face id)", "unlearn-eval", 2, "error: <tmp>/missing-folder: checkpoint folder not found",
              BAD_INPUT, dry_run_setup("model-missing"), subcommand="dry-run"),
    # --- unlearn-eval dry-run: what the submission did (the verdict; summary.json and the table say it) --
    FaultCase("dry-run-raised", "dry-run: the submission raises", "unlearn-eval", 3,
              "raised: the submission exited with status 1 after … s; last log line: …",
              "no after scores; its output is in <out>/submission.log",
              test="tests/test_dryrun.py::test_raises", subcommand="dry-run"),
    FaultCase("dry-run-timeout", "dry-run: the submission (or a process it started) runs past the time limit",
              "unlearn-eval", 4, "timeout: still running at the … s limit: its process group was killed",
              "its whole process group killed (SIGTERM, then SIGKILL)",
              test="tests/test_dryrun.py::test_timeout_kills_the_whole_process_group", subcommand="dry-run"),
    FaultCase("dry-run-timeout-checkpoint-left", "dry-run: the submission runs past the time limit after saving "
              "a checkpoint", "unlearn-eval", 4, "timeout: still running at the … s limit: its process group was killed",
              "the checkpoint it left is scored, as the organizers scored whatever was there after the hour",
              test="tests/test_dryrun.py::test_timeout_still_scores_the_checkpoint_left", subcommand="dry-run"),
    FaultCase("dry-run-no-checkpoint", "dry-run: the submission writes nothing", "unlearn-eval", 5,
              "no-checkpoint: the output folder is empty after the run", "no after scores",
              test="tests/test_dryrun.py::test_writes_nothing", subcommand="dry-run"),
    FaultCase("dry-run-unloadable", "dry-run: the submission's checkpoint does not load", "unlearn-eval", 6,
              "unloadable: <model_out>: AutoModelForCausalLM/AutoTokenizer cannot load the model (…)",
              "no after scores", test="tests/test_dryrun.py::test_unloadable_checkpoint", subcommand="dry-run"),
    FaultCase("dry-run-checkpoint-in-subfolder", "dry-run: the submission saves its checkpoint in a subfolder",
              "unlearn-eval", 6, "unloadable: no config.json at the top of the output folder (files: …); a config.json "
              "is in checkpoint-10/, but the organizers loaded the output folder itself", "no after scores",
              test="tests/test_dryrun.py::test_checkpoint_in_a_subfolder_is_not_loadable", subcommand="dry-run"),
    FaultCase("dry-run-input-modified", "dry-run: the submission changes the model folder it was given",
              "unlearn-eval", 7, "input-modified: the input model folder changed (changed: config.json)",
              "scored all the same; the cached target is untouched (the submission gets a copy)",
              test="tests/test_dryrun.py::test_changing_the_input_model_fails_the_run", subcommand="dry-run"),
    FaultCase("dry-run-gate-failed", "dry-run: the unlearned model fails an MMLU gate", "unlearn-eval", 8,
              "gate-failed: MMLU … fails the absolute and relative gate",
              "scored; the 7B leaderboard would not have ranked it",
              test="tests/test_dryrun.py::test_destroying_the_model_fails_the_mmlu_gates", subcommand="dry-run"),
    # --- unlearn-eval report, check, pack ------------------------------------------------------------
    FaultCase("report-missing-folder", "report is given a folder that does not exist", "unlearn-eval", 2,
              "error: <tmp>/missing: not a directory (an evaluation folder as `evaluate` writes it)", BAD_INPUT,
              report_missing_folder, subcommand="report"),
    FaultCase("report-checkpoint-without-mia", "report --checkpoint is given without --mia", "unlearn-eval", 2,
              "error: --checkpoint and --mia go together (they write mia_results/extra.csv)", BAD_INPUT,
              report_checkpoint_without_mia, subcommand="report"),
    FaultCase("check-missing-results", "check is given a results file that does not exist", "unlearn-eval", 2,
              "error: <tmp>/nowhere: file not found", BAD_INPUT, check_missing_results, subcommand="check"),
    FaultCase("check-unknown-threshold", "the thresholds file has a key check does not know", "unlearn-eval", 2,
              "error: <thresholds>: unknown key(s) min_speed (known: min_final, min_task_aggregate, min_mia, "
              "min_mmlu, gate)", BAD_INPUT, check_unknown_threshold, subcommand="check"),
    FaultCase("check-dry-run-not-scored", "check is given a dry-run whose submission left nothing scored",
              "unlearn-eval", 3, "error: <tmp>/summary.json: the run did not finish: dry-run verdict no-checkpoint, "
              "no after scores (no checkpoint was scored)",
              "nothing written; no after scores to hold to the thresholds: fix the submission and dry-run again",
              check_dry_run_not_scored, subcommand="check"),
    FaultCase("check-evaluation-not-finished", "check is given the folder of a killed evaluate (journal, no results)",
              "unlearn-eval", 3, "error: <out>: the run did not finish: no evaluation_results.jsonl, only the resume "
              "journal .partial/ of a killed evaluate (the same evaluate command finishes it)",
              "nothing written; rerun the same evaluate command (it resumes from the journal), then check",
              check_evaluation_not_finished, subcommand="check"),
    FaultCase("pack-out-is-a-file", "pack --out names a .py file (--out is the folder the file goes into)",
              "unlearn-eval", 2, "error: <tmp>/submission.py: --out is the folder to write unlearn_submission.py "
              "into, not the file (give --out <tmp>)", BAD_INPUT, pack_out_is_a_file, subcommand="pack"),
    FaultCase("pack-calibration-docs-no-documents", "pack --calibration-docs names a folder with no .jsonl or .txt "
              "file", "unlearn-eval", 2, "error: <calibration>: no .jsonl or .txt calibration file", BAD_INPUT,
              pack_calibration_docs_without_documents, subcommand="pack"),
    # --- the submission: unlearn MODEL OUT FORGET RETAIN ----------------------------------------------
    FaultCase("submission-missing-forget", "the forget folder holds no forget file", "unlearn", 2,
              "error: <forget>: no forget.parquet or forget.jsonl in this folder", BAD_INPUT, submission_setup("missing-forget"),
              needs_shared=True),
    FaultCase("submission-wrong-columns", "the forget file has other columns", "unlearn", 2,
              "error: <forget>: missing column(s) input, output (a row needs id, input, output, task)", BAD_INPUT, submission_setup("wrong-columns"),
              needs_shared=True),
    FaultCase("submission-out-is-input", "the output folder is the input model folder", "unlearn", 2,
              "error: <model>: the output folder is the input model folder (the input is never modified; "
              "choose another output folder)", "the input model is untouched",
              submission_setup("out-is-input"), needs_shared=True),
    FaultCase("submission-no-model", "the input folder holds no model", "unlearn", 2,
              "error: <model>: no config.json, not a Hugging Face model folder", BAD_INPUT, submission_setup("no-model"), needs_shared=True),
    FaultCase("submission-no-weights", "the input folder has a config but no weights", "unlearn", 2,
              "error: <model>: no model weights (*.safetensors or pytorch_model*.bin)", BAD_INPUT, submission_setup("no-weights"), needs_shared=True),
    FaultCase("submission-out-holds-files", "the output folder holds other files", "unlearn", 2,
              "error: <out>: the output folder holds files and no checkpoint; refusing to replace them", "the folder and its files are left as they were",
              submission_setup("out-holds-files"), needs_shared=True),
    FaultCase("submission-calibration-malformed", "a --calibration-docs .jsonl line is not valid JSON", "unlearn", 2,
              "error: <calibration>/nonmember.jsonl: line 2: malformed JSON (…)", BAD_INPUT,
              submission_calibration_malformed),
    FaultCase("submission-mia-tasks-unknown", "--mia-tasks names a task no forget row has", "unlearn", 2,
              "error: mia_tasks: no forget row of task(s) Task9 (the forget set's tasks: Task1, Task3)", BAD_INPUT,
              submission_mia_tasks_unknown),
]

CASES_BY_NAME = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "case names are unique"
