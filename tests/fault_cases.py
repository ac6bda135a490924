"""Every fault and bad input the project handles, with the exit code and the one line it prints.

This registry is the single source of ``docs/faults.md`` (``python tests/make_faults_table.py`` writes it;
tests/test_faults.py fails when the file differs from what the generator makes now) and of the tests:
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
    program: str  # "unlearn-eval" (evaluator/cli.py) or "unlearn" (submission/cli.py)
    exit_code: int
    message: str  # the one stderr line; "<name>" a path of the case, "…" varying text; "" = no error line
    outcome: str  # what is (not) written, what to do next
    setup: Setup | None = None  # argv and paths for the generic command-line runner of tests/test_faults.py
    test: str = "tests/test_faults.py::test_command_line_case"
    needs_shared: bool = False  # the case uses ../shared/golden (skipped where it is absent)


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
    FaultCase("torn-journal-line", "a kill tore the last journal line", "unlearn-eval", 0, "",
              "the torn line is dropped (that row is computed again)",
              test="tests/test_resume.py::test_journal_drops_a_torn_last_line_and_keeps_appending"),
    FaultCase("carriage-return-output", "a generation holds a lone carriage return", "unlearn-eval", 0, "",
              "the CSV quotes every text so each row reads back whole (the official script splits the row)",
              test="tests/test_properties.py::test_our_writer_keeps_rows_even_with_carriage_returns"),
    # --- unlearn-eval score --------------------------------------------------------------------------
    FaultCase("score-no-csv", "score is given a folder without forget_*.csv", "unlearn-eval", 2,
              "error: <results>: no forget_*.csv (generations of the forget set)", BAD_INPUT, score_empty_folder),
    FaultCase("score-broken-csv", "score is given a CSV it cannot read", "unlearn-eval", 2,
              "error: <results>/forget_*.csv: cannot read CSV (…)", BAD_INPUT, score_broken_csv),
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
]

CASES_BY_NAME = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "case names are unique"
