"""Selection passes are spaced out when they and the planned steps would not fit the time left
(train.pass_interval): on an OLMo-1B-shaped model under the dry-run's 159 s a pass took 12 s against 0.5 s a
step, and the run stopped at step 40 of 50 (docs/methods.md). Here the passes are slowed on purpose on a
target the test builds itself (no ../shared)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tiny_target import build_tiny_target  # noqa: E402

from submission import train as train_module  # noqa: E402
from submission import unlearn  # noqa: E402
from submission.data import SubmissionInputError  # noqa: E402
from submission.train import pass_interval  # noqa: E402

torch.set_num_threads(1)


def test_the_planned_interval_stands_while_passes_and_steps_fit():
    # 50 steps at 0.1 s and 10 passes at 1 s: 15 s, in 20 s left.
    assert pass_interval(50, 5, step_s=0.1, eval_s=1.0, time_left=20.0, share=0.25) == 5


def test_passes_take_what_the_steps_leave():
    # 50 steps at 0.5 s (25 s) and 10 passes at 12 s (120 s) in 116 s: 91 s for passes, 7 of them.
    assert pass_interval(50, 5, step_s=0.5, eval_s=12.0, time_left=116.0, share=0.25) == 8


def test_passes_keep_their_share_when_the_steps_alone_overrun():
    # The steps alone need 100 s of 40 left: the passes still get a quarter of it (10 s, 2 passes).
    assert pass_interval(100, 10, step_s=1.0, eval_s=5.0, time_left=40.0, share=0.25) == 50
    # Not even one pass fits the share: one pass for what is left.
    assert pass_interval(100, 10, step_s=1.0, eval_s=50.0, time_left=40.0, share=0.25) == 100


def test_a_bad_share_is_one_clear_error(tmp_path):
    with pytest.raises(SubmissionInputError, match="selection_time_share"):
        train_module.resolve_options({"selection_time_share": 1.5})


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return build_tiny_target(tmp_path_factory.mktemp("tiny-target"), steps=100)


PASS_S = 1.5  # each selection pass made this much slower
RUN = {"method": "gradient_difference", "max_steps": 40, "evaluations": 40, "time_budget_s": 30,
       "safety_margin_s": 0, "verbose": False}


def _slow_passes(monkeypatch):
    real = train_module._selection_score

    def slow(*args, **kwargs):
        time.sleep(PASS_S)
        return real(*args, **kwargs)
    monkeypatch.setattr(train_module, "_selection_score", slow)


def test_slow_passes_are_spaced_out_and_the_planned_steps_done(target, tmp_path, monkeypatch):
    _slow_passes(monkeypatch)
    # A pass at every step (40 x 1.5 s) cannot fit 30 s; paced, the 40 steps are done and the run ends as planned.
    paced = unlearn(str(target.model), str(tmp_path / "paced"), str(target.forget), str(target.retain), **RUN)
    assert paced["stopped"] == "planned steps", paced
    assert paced["steps_done"] == 40
    run = json.loads((tmp_path / "paced" / train_module.LOG_FILE).read_text())["run"]
    assert 2 <= len(run["history"]) < 20, [h["step"] for h in run["history"]]
    # The log says how the passes were spaced and from what it was measured.
    passes = run["selection_passes"]
    assert passes["planned_every"] == 1 and passes["changes"], passes
    assert all(c["every"] > 1 and c["pass_s"] >= PASS_S for c in passes["changes"]), passes
    # Unpaced, the passes take the time and the clock stops the run short of its steps.
    unpaced = unlearn(str(target.model), str(tmp_path / "unpaced"), str(target.forget), str(target.retain),
                      pace_selection=False, **RUN)
    assert unpaced["stopped"] == "time budget", unpaced
    assert unpaced["steps_done"] < 40
    unpaced_passes = json.loads((tmp_path / "unpaced" / train_module.LOG_FILE).read_text())["run"]["selection_passes"]
    assert unpaced_passes == {"planned_every": 1, "changes": []}
