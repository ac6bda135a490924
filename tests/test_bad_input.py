"""Bad input to ``unlearn-eval evaluate``: one clear line naming the file and the problem, exit code 2,
nothing written in --out. No model is needed: every input is checked before one is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from evaluator.cli import main

GOOD_ROWS = [
    {"id": "\"6dff1611\"sc1", "input": "Once upon a", "output": " time there was", "task": "Task1"},
    {"id": "\"6dff1611\"qa0", "input": "Who was there?", "output": "Nobody", "task": "Task1"},
    {"id": "12762334qa3", "input": "Born in?", "output": "1947", "task": "Task3"},
]


def write_jsonl(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def data_dir(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "forget.jsonl", GOOD_ROWS)
    write_jsonl(folder / "retain.jsonl", GOOD_ROWS)
    return folder


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    # Never loaded by these tests: every problem is found before the model is.
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "tokenizer.json").write_text("{}")
    return folder


def run_evaluate(checkpoint, data, out, *extra):
    result = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data),
                                       "--out", str(out), "--quiet", *extra])
    return result


def assert_clean_failure(result, out: Path, *fragments: str):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not out.exists() or (out.is_file() or not any(out.iterdir())), "something was written in --out"


def test_missing_file(tmp_path, checkpoint, data_dir):
    (data_dir / "retain.jsonl").unlink()
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out), out, str(data_dir), "retain")


def test_missing_data_folder(tmp_path, checkpoint):
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, tmp_path / "nowhere", out), out, "nowhere",
                         "no such file or directory")


def test_malformed_jsonl_line(tmp_path, checkpoint, data_dir):
    text = (data_dir / "forget.jsonl").read_text().splitlines()
    text.insert(1, '{"id": "x1sc1", "input": ')
    (data_dir / "forget.jsonl").write_text("\n".join(text) + "\n")
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out), out, "forget.jsonl", "line 2", "malformed JSON")


def test_missing_column(tmp_path, checkpoint, data_dir):
    write_jsonl(data_dir / "forget.jsonl", [{k: v for k, v in r.items() if k != "task"} for r in GOOD_ROWS])
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out), out, "forget.jsonl", "missing column", "'task'")


def test_missing_column_parquet(tmp_path, checkpoint, data_dir):
    (data_dir / "retain.jsonl").unlink()
    pd.DataFrame(GOOD_ROWS).drop(columns=["output"]).to_parquet(data_dir / "retain.parquet")
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out), out, "retain.parquet", "'output'")


def test_unknown_id_kind(tmp_path, checkpoint, data_dir):
    write_jsonl(data_dir / "forget.jsonl", GOOD_ROWS + [{**GOOD_ROWS[0], "id": "abc123xy1"}])
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out), out, "forget.jsonl", "row 4", "abc123xy1")


def test_unknown_task(tmp_path, checkpoint, data_dir):
    write_jsonl(data_dir / "retain.jsonl", [GOOD_ROWS[0], {**GOOD_ROWS[1], "task": "Task4"}])
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out), out, "retain.jsonl", "row 2", "Task4")


def test_empty_split(tmp_path, checkpoint, data_dir):
    (data_dir / "forget.jsonl").write_text("")
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out), out, "forget.jsonl", "empty")


def test_checkpoint_without_tokenizer(tmp_path, checkpoint, data_dir):
    (checkpoint / "tokenizer.json").unlink()
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out), out, str(checkpoint), "no tokenizer")


def test_checkpoint_without_config(tmp_path, checkpoint, data_dir):
    (checkpoint / "config.json").unlink()
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out), out, str(checkpoint), "config.json")


def test_out_is_a_file(tmp_path, checkpoint, data_dir):
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out), out, str(out), "not a directory")
    assert out.read_text() == "keep me"


def test_bad_mia_folder(tmp_path, checkpoint, data_dir):
    mia = tmp_path / "mia"
    mia.mkdir()
    write_jsonl(mia / "member.jsonl", [{"id": "1", "document": "text"}])
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, data_dir, out, "--mia", str(mia)), out, "nonmember.jsonl",
                         "not found")


def test_hf_layout_needs_a_split(tmp_path, checkpoint):
    root = tmp_path / "release" / "data"
    root.mkdir(parents=True)
    for name in ("forget", "retain"):
        for split in ("train", "validation"):
            pd.DataFrame(GOOD_ROWS).assign(split=name).to_parquet(root / f"{name}_{split}-00000-of-00001.parquet")
    out = tmp_path / "out"
    assert_clean_failure(run_evaluate(checkpoint, tmp_path / "release", out), out, "--split", "train or validation")
    assert_clean_failure(run_evaluate(checkpoint, tmp_path / "release", out, "--split", "test"), out,
                         "forget_test-00000-of-00001.parquet", "not found")


def test_loader_accepts_every_layout(tmp_path, data_dir):
    from evaluator.core.data import load_sets, load_split

    by_dir = load_sets(data_dir)
    assert by_dir["forget"]["id"].tolist() == [r["id"] for r in GOOD_ROWS]
    assert by_dir["forget"]["output"].tolist()[2] == "1947"  # stays text, no numeric inference
    # one file holding both sets, told apart by a split column (as the public parquet files are)
    both = pd.concat([pd.DataFrame(GOOD_ROWS).assign(split="forget"),
                      pd.DataFrame(GOOD_ROWS[:2]).assign(split="retain")])
    both.to_parquet(tmp_path / "both.parquet")
    assert len(load_split(tmp_path / "both.parquet", "retain")) == 2
    # the Hugging Face layout
    root = tmp_path / "release" / "data"
    root.mkdir(parents=True)
    pd.DataFrame(GOOD_ROWS).assign(split="forget").to_parquet(root / "forget_train-00000-of-00001.parquet")
    assert len(load_split(tmp_path / "release", "forget", "train")) == 3


def test_public_release_loads(shared):
    from evaluator.core.data import load_mia, load_sets

    sets = load_sets(shared / "data" / "semeval25", "train")
    assert len(sets["forget"]) > 100 and len(sets["retain"]) > 100
    mia = load_mia(shared / "data" / "semeval25")
    assert len(mia["member"]) > 10 and len(mia["nonmember"]) > 10
