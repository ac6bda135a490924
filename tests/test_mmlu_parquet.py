"""MMLU in the Hugging Face ``cais/mmlu`` parquet layout gives what the CSV layout gives: the same tables,
prompts and, run on a model, the same ``unlearn-eval mmlu`` metrics (issue 14, journey A)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from evaluator.cli import main
from evaluator.core.errors import InputError
from evaluator.model import mmlu

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_target import build_tiny_target  # noqa: E402

STUB_MMLU = Path(__file__).resolve().parents[1] / "data_stub" / "mmlu"
LETTERS = "ABCD"
# Values whose type read_csv infers (numbers, a float column, a quoted comma, a newline): the parquet layout
# must give the numbers open-instruct formatted from the CSV (a float column's "1" is "1.0").
TRICKY = [["What is 1+1?", "0.5", "2", "3", "4", "B"], ['Say "a, b"', "1.5", "7", "a,b", "x\ny", "D"],
          ["Seven?", "1", "7", "5", "6", "B"]]


def csv_rows(path: Path) -> pd.DataFrame:
    """A CSV split as the text it holds (what cais/mmlu stores as strings)."""
    return pd.read_csv(path, header=None, dtype=str, keep_default_na=False)


def to_cais(rows: pd.DataFrame, subject: str) -> pd.DataFrame:
    return pd.DataFrame({"question": rows[0], "subject": subject,
                         "choices": [list(r) for r in rows[[1, 2, 3, 4]].itertuples(index=False)],
                         "answer": [LETTERS.index(a) for a in rows[5]]})


def csv_tree(tmp_path: Path) -> Path:
    """The stub's mini-MMLU plus a subject of values read_csv types (numbers, quoting)."""
    folder = tmp_path / "csv"
    for split in ("dev", "test"):
        (folder / split).mkdir(parents=True)
        for file in (STUB_MMLU / split).glob("*.csv"):
            (folder / split / file.name).write_bytes(file.read_bytes())
        rows = TRICKY * 2 if split == "dev" else TRICKY  # five dev examples at least
        pd.DataFrame(rows).to_csv(folder / split / f"tricky_numbers_{split}.csv", header=False, index=False)
    return folder


def parquet_tree(csv_folder: Path, out: Path, all_only: bool = False) -> Path:
    """The same questions as cais/mmlu lays them out: <subject>/{dev,test,validation}-00000-of-00001.parquet
    (or only all/, every subject in one table with a subject column)."""
    tables = {"dev": [], "test": []}
    for split in tables:
        for file in sorted((csv_folder / split).glob(f"*_{split}.csv")):
            subject = file.name[: -len(f"_{split}.csv")]
            table = to_cais(csv_rows(file), subject)
            tables[split].append(table)
            if not all_only:
                (out / subject).mkdir(parents=True, exist_ok=True)
                table.to_parquet(out / subject / f"{split}-00000-of-00001.parquet", index=False)
                if split == "dev":  # cais/mmlu also ships the validation split; it is not the dev examples
                    table.iloc[::-1].to_parquet(out / subject / "validation-00000-of-00001.parquet", index=False)
    (out / "all").mkdir(parents=True, exist_ok=True)
    for split, parts in tables.items():
        pd.concat(parts, ignore_index=True).to_parquet(out / "all" / f"{split}-00000-of-00001.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("mmlu")
    csv = csv_tree(base)
    return csv, parquet_tree(csv, base / "cais"), parquet_tree(csv, base / "cais_all", all_only=True)


def count_characters(text: str) -> int:
    return len(text)


@pytest.mark.parametrize("ntrain", [0, 2, 5])
def test_parquet_layouts_give_the_csv_tables_and_prompts(trees, ntrain):
    csv, cais, cais_all = trees
    expected = mmlu.load_mmlu(csv, ntrain=ntrain)
    assert [s.name for s in expected] == mmlu.list_subjects(cais) == mmlu.list_subjects(cais_all)
    assert "tricky_numbers" in mmlu.list_subjects(cais)
    for folder in (cais, cais_all):
        assert mmlu.is_parquet_layout(folder) and not mmlu.is_parquet_layout(csv)
        for want, got in zip(expected, mmlu.load_mmlu(folder, ntrain=ntrain)):
            assert want.name == got.name
            pd.testing.assert_frame_equal(want.test, got.test)
            pd.testing.assert_frame_equal(want.dev.reset_index(drop=True), got.dev.reset_index(drop=True))
            assert (mmlu.subject_prompts(want, ntrain, count_characters)
                    == mmlu.subject_prompts(got, ntrain, count_characters))
    tricky = mmlu.load_mmlu(cais, ["tricky_numbers"], ntrain=1)[0]
    assert "\nA. 1.0\nB. 7\n" in mmlu.format_question(tricky.test, 2, include_answer=False)  # as read_csv typed it


def test_parquet_errors_name_the_file(tmp_path, trees):
    _, cais, _ = trees
    with pytest.raises(InputError, match="no test file for subject"):
        mmlu.load_mmlu(cais, ["nope"], 0)
    bad = tmp_path / "bad" / "toy"
    bad.mkdir(parents=True)
    pd.DataFrame({"question": ["q"], "choices": [["a", "b", "c", "d"]], "answer": [4]}).to_parquet(
        bad / "test-00000-of-00001.parquet")
    with pytest.raises(InputError, match="answer 4 is not 0-3"):
        mmlu.load_mmlu(tmp_path / "bad", None, 0)
    pd.DataFrame({"question": ["q"], "choices": [["a", "b", "c", "d"]], "answer": [1]}).to_parquet(
        bad / "test-00000-of-00001.parquet")
    assert len(mmlu.load_mmlu(tmp_path / "bad", None, 0)[0].test) == 1
    with pytest.raises(InputError, match="no dev-"):
        mmlu.load_mmlu(tmp_path / "bad", None, 1)


def test_mmlu_command_gives_the_same_metrics_on_both_layouts(tmp_path, trees):
    csv, cais, _ = trees
    model = build_tiny_target(tmp_path / "tiny", steps=0).model
    metrics = []
    for name, data in (("csv", csv), ("parquet", cais)):
        done = CliRunner().invoke(main, ["mmlu", "--checkpoint", str(model), "--data", str(data), "--out",
                                         str(tmp_path / name), "--ntrain", "2", "--batch-size", "4", "--quiet"])
        assert done.exit_code == 0, done.output
        metrics.append(json.loads((tmp_path / name / "metrics.json").read_text()))
        assert sorted(p.name for p in (tmp_path / name).glob("*.csv")) == sorted(
            f"{s}.csv" for s in mmlu.list_subjects(csv))
    assert metrics[0] == metrics[1]
    for file in (tmp_path / "csv").glob("*.csv"):
        assert file.read_bytes() == (tmp_path / "parquet" / file.name).read_bytes()
