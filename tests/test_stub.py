"""The committed stub data: reproducible from its generator, in the organizers' formats, internally consistent."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from evaluator.cli import main
from evaluator.core.data import load_mia, load_sets, read_table, row_kind
from evaluator.harness.stub import MMLU_QUESTIONS, MMLU_SUBJECTS, TASKS, generate_stub
from evaluator.model.mmlu import load_mmlu

STUB = Path(__file__).resolve().parents[1] / "data_stub"
SPLITS = ("train", "validation")


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stub")
    generate_stub(out)
    return out


def test_generator_reproduces_the_committed_files_byte_for_byte(regenerated):
    assert _files(regenerated) == _files(STUB)
    for name in _files(STUB):
        fresh, committed = (regenerated / name).read_bytes(), (STUB / name).read_bytes()
        if name.endswith(".parquet"):
            written_by = pq.ParquetFile(STUB / name).metadata.created_by
            if written_by != f"parquet-cpp-arrow version {pyarrow.__version__}":
                # Another pyarrow writes other footer bytes; the rows must still be the same.
                assert pq.read_table(regenerated / name).equals(pq.read_table(STUB / name)), name
                continue
        assert fresh == committed, f"{name} differs from a fresh make-stub"


def test_make_stub_cli_writes_the_same_files(tmp_path):
    result = CliRunner().invoke(main, ["make-stub", "--out", str(tmp_path / "stub")])
    assert result.exit_code == 0, result.output
    assert _files(tmp_path / "stub") == _files(STUB)
    member = Path("mia_data") / "member.jsonl"
    assert (tmp_path / "stub" / member).read_bytes() == (STUB / member).read_bytes()


def test_small():
    assert sum((STUB / name).stat().st_size for name in _files(STUB)) < 1_000_000


@pytest.mark.parametrize("split", SPLITS)
def test_sets_load_through_the_evaluator_with_every_task_and_kind(split):
    sets = load_sets(STUB, split)
    for name, rows in sets.items():
        assert set(rows["task"]) == set(TASKS), (name, split)
        for task in TASKS:
            kinds = {row_kind(i) for i in rows.loc[rows["task"] == task, "id"]}
            assert kinds == {"sc", "qa"}, (name, split, task)


@pytest.mark.parametrize("split", SPLITS)
def test_jsonl_and_parquet_twins_hold_the_same_rows(split):
    for name in ("forget", "retain"):
        stem = STUB / "data" / f"{name}_{split}-00000-of-00001"
        jsonl = read_table(stem.with_suffix(".jsonl"))
        parquet = read_table(stem.with_suffix(".parquet"))
        assert set(parquet["split"]) == {name}
        pd.testing.assert_frame_equal(jsonl[["id", "input", "output", "task"]].astype(object),
                                      parquet[["id", "input", "output", "task"]].astype(object))


def test_ids_follow_the_release_formats():
    rows = pd.concat([load_sets(STUB, split)[name] for split in SPLITS for name in ("forget", "retain")])
    assert rows["id"].is_unique
    for row_id, task in zip(rows["id"], rows["task"]):
        stem = row_id[:-3]
        if task == "Task1":
            assert stem.startswith('"') and stem.endswith('"') and len(stem) == 38, row_id
        elif task == "Task2":
            assert len(stem) == 36 and stem.count("-") == 4, row_id
        else:
            assert stem.isdigit() and len(stem) == 8, row_id


def test_documents_questions_and_mia_are_consistent():
    all_rows = pd.concat([load_sets(STUB, split)[name] for split in SPLITS for name in ("forget", "retain")])
    # No prompt is asked twice: a memorizing model could not answer both.
    assert all_rows["input"].is_unique
    sc = all_rows[[row_kind(i) == "sc" for i in all_rows["id"]]]
    assert all(o.startswith(" ") and not i.endswith(" ") for i, o in zip(sc["input"], sc["output"]))
    qa = all_rows[[row_kind(i) == "qa" for i in all_rows["id"]]]
    assert all(0 < len(o) <= 40 and o == o.strip() for o in qa["output"])

    trained = set(sc["input"] + sc["output"])
    for folder, split in ((STUB / "mia_data", "train"), (STUB / "mia_data" / "validation", "validation")):
        mia = load_mia(folder)
        forget = load_sets(STUB, split)["forget"]
        forget_sc = forget[[row_kind(i) == "sc" for i in forget["id"]]]
        # Members are exactly the forget documents of that split, under the ids of their sc rows.
        assert list(mia["member"]["document"]) == list(forget_sc["input"] + forget_sc["output"])
        assert list(mia["member"]["id"]) == list(forget_sc["id"])
        assert len(mia["nonmember"]) == len(mia["member"])
        assert not trained & set(mia["nonmember"]["document"])
        for line in (folder / "member.jsonl").read_text(encoding="utf-8").splitlines():
            assert set(json.loads(line)) == {"id", "document"}


def test_fake_personal_data_uses_reserved_ranges():
    rows = pd.concat([load_sets(STUB, split)[name] for split in SPLITS for name in ("forget", "retain")])
    task2 = rows[rows["task"] == "Task2"]
    documents = [i + o for i, o in zip(task2["input"], task2["output"]) if "social security number" in o]
    assert documents
    for document in documents:
        assert "-555-01" in document and "social security number is 900-" in document
        assert "@example." in document


def test_mini_mmlu_reads_as_mmlu_with_balanced_answers():
    subjects = load_mmlu(STUB / "mmlu", ntrain=5)
    assert [s.name for s in subjects] == sorted(MMLU_SUBJECTS)
    for subject in subjects:
        assert len(subject.dev) == MMLU_QUESTIONS["dev"] and len(subject.test) == MMLU_QUESTIONS["test"]
        counts = subject.test.iloc[:, 5].value_counts()
        assert set(counts.index) == {"A", "B", "C", "D"} and counts.max() - counts.min() <= 3
        questions = pd.concat([subject.dev, subject.test]).iloc[:, 0]
        assert questions.is_unique
        for row in pd.concat([subject.dev, subject.test]).itertuples(index=False):
            assert len({str(v) for v in row[1:5]}) == 4, row  # four distinct choices
