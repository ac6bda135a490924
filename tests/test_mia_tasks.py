"""``mia_tasks``: when the membership attack scores the documents of some tasks only (the public release's MIA
members are all Task3 forget documents), the level and the selection's attack are those tasks' alone, and the
other tasks' forget rows stop at a share (``other_tasks_share``) of the level of their own task's swapped
documents. No ../shared needed: a tiny target the test builds itself, with documents of two tasks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tiny_target import build_tiny_target  # noqa: E402

from submission import SubmissionInputError, methods, unlearn  # noqa: E402
from submission.calibration import documents_by_task  # noqa: E402
from submission.data import load_rows  # noqa: E402
from submission.train import LOG_FILE, _membership_documents, resolve_options, row_ceilings  # noqa: E402

torch.set_num_threads(1)

ONE_STEP = {"max_steps": 1, "evaluations": 1, "max_extension": 1.0, "verbose": False, "time_budget_s": 600}


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    built = build_tiny_target(tmp_path_factory.mktemp("two-tasks"), documents=6)  # 4 Task1 and 2 Task2 documents
    assert sorted(set(built.forget_rows["task"])) == ["Task1", "Task2"]
    return built


def test_a_row_of_a_task_the_attack_does_not_score_stops_at_its_own_ceiling():
    levels = {"Task1": {"level": 8.0, "share": 0.25, "ceiling": 2.0}}
    ceilings = row_ceilings(4.0, ["Task1", "Task2", "Task1", "Task2"], levels)
    assert ceilings.tolist() == [2.0, 4.0, 2.0, 4.0]
    assert row_ceilings(4.0, ["Task1"], {}) == 4.0 and row_ceilings(None, ["Task1"], levels) is None
    rows = torch.tensor([2.5, 2.5, 1.0, 4.5], requires_grad=True)  # per-row mean NLL
    losses = methods.TokenLosses(mean=rows, total=rows, logits=torch.zeros(4, 1, 1), mask=torch.ones(4, 1))
    methods.ascent_term(losses, ceilings).backward()
    # Task1 at 2.5 is past its own 2.0 (no push), Task2 at 2.5 is below 4.0 (pushed), Task2 at 4.5 is past it.
    assert rows.grad.tolist() == [0.0, 0.25, 0.25, 0.0]


def test_only_the_scored_tasks_documents_are_the_selections_members(target):
    forget, retain = load_rows(target.forget, "forget"), load_rows(target.retain, "retain")
    options = resolve_options({"mia_tasks": "Task2"})
    members, references, source = _membership_documents(forget, retain, options)
    assert sorted(members) == sorted(documents_by_task(forget)["Task2"])
    assert source.endswith("of Task2")
    everyone, _, _ = _membership_documents(forget, retain, resolve_options({}))
    assert len(everyone) == sum(len(d) for d in documents_by_task(forget).values()) > len(members)


def test_a_run_scoring_one_task_logs_the_other_tasks_own_level(target, tmp_path):
    out = tmp_path / "out"
    unlearn(str(target.model), str(out), str(target.forget), str(target.retain), mia_tasks="Task2", **ONE_STEP)
    ceiling = json.loads((out / LOG_FILE).read_text())["forget_nll_ceiling"]
    measured = ceiling["measured"]
    assert measured["how"].endswith("of Task2") and ceiling["value"] == measured["level"]
    other = measured["other_tasks"]
    assert list(other) == ["Task1"]
    assert "of Task1's forget/retain documents with their entities (capitalized) swapped" in other["Task1"]["how"]
    assert other["Task1"]["level"] > 0 and other["Task1"]["level"] != pytest.approx(ceiling["value"], abs=1e-3)
    task1 = other["Task1"]
    assert task1["share"] == 1.0 and task1["ceiling"] == task1["level"]  # by default, the task's own level
    quarter = tmp_path / "quarter"
    unlearn(str(target.model), str(quarter), str(target.forget), str(target.retain), mia_tasks="Task2",
            other_tasks_share=0.25, **ONE_STEP)
    quarter_log = json.loads((quarter / LOG_FILE).read_text())
    quarter_task1 = quarter_log["forget_nll_ceiling"]["measured"]["other_tasks"]["Task1"]
    assert quarter_task1["level"] == task1["level"] and quarter_task1["ceiling"] == pytest.approx(0.25 * task1["level"])
    # Every task scored: one level for every row, as without the setting.
    both = tmp_path / "both"
    unlearn(str(target.model), str(both), str(target.forget), str(target.retain), mia_tasks="Task1,Task2",
            **ONE_STEP)
    assert "other_tasks" not in json.loads((both / LOG_FILE).read_text())["forget_nll_ceiling"]["measured"]


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_outside_0_1_is_one_clear_error(share):
    with pytest.raises(SubmissionInputError, match=r"other_tasks_share must be in \(0, 1\]"):
        resolve_options({"mia_tasks": "Task3", "other_tasks_share": share})


def test_a_task_with_no_forget_row_is_one_line_naming_the_tasks_and_nothing_is_written(target, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SubmissionInputError, match=r"mia_tasks: no forget row of task\(s\) Task9 "
                                                   r"\(the forget set's tasks: Task1, Task2\)"):
        unlearn(str(target.model), str(out), str(target.forget), str(target.retain), mia_tasks="Task2,Task9",
                **ONE_STEP)
    assert not out.exists()
    with pytest.raises(SubmissionInputError, match="mia_tasks must name at least one task"):
        resolve_options({"mia_tasks": " , "})
