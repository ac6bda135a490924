"""The pull-back (submission/pull_back.py): the search along theta0 + alpha (theta* - theta0) goes the way the
attack says, bisects toward its crossing of 0.5, stops where it should; the weights it places are on that line
(LoRA: the B matrices alone); and a run with it saves a checkpoint on the line, logged with its alpha."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tiny_target import build_tiny_target  # noqa: E402

from submission import pull_back, unlearn  # noqa: E402
from submission.data import SubmissionInputError  # noqa: E402
from submission.train import LOG_FILE, resolve_options  # noqa: E402

torch.set_num_threads(1)


@dataclass
class FakeScore:
    membership_auc: float | None


def run_search(auc_at, passes=4, span=0.1, time_left=lambda: True):
    """The alphas the search scores when the attack's AUC along the line is ``auc_at(alpha)``."""
    model = torch.nn.Linear(2, 2)
    weights = pull_back.snapshot(model, pull_back.pulled_parameters(model, lora=False))
    return pull_back.search(model, weights, weights, FakeScore(auc_at(1.0)), lambda a: FakeScore(auc_at(a)),
                            time_left, passes, span)


def test_members_past_their_references_are_pulled_back_toward_the_crossing():
    def auc_at(alpha):  # 0.3 at the checkpoint, 0.5 at alpha = 0.9333
        return 0.3 + 3.0 * (1.0 - alpha)

    tried = run_search(auc_at)
    assert [round(a, 4) for a, _ in tried] == [0.9, 0.95, 0.925, 0.9375]
    crossing = 1.0 - 0.2 / 3.0
    assert abs(tried[-1][0] - crossing) <= 0.1 / 2 ** 3  # the bracket halves with every pass after the first


def test_members_short_of_their_references_are_carried_past_the_checkpoint():
    tried = run_search(lambda alpha: 0.7 - 6.0 * (alpha - 1.0))  # 0.5 at alpha = 1.0333
    assert [round(a, 4) for a, _ in tried] == [1.1, 1.05, 1.025, 1.0375]


def test_an_attack_at_exactly_one_half_ends_the_search():
    assert [a for a, _ in run_search(lambda alpha: 0.5 if alpha <= 0.9 else 0.3)] == [0.9]


def test_no_crossing_within_the_span_stops_after_the_far_end_and_no_time_stops_before_it():
    assert [a for a, _ in run_search(lambda alpha: 0.2 + 0.5 * (1.0 - alpha))] == [0.9]
    assert run_search(lambda alpha: 0.3 + 3.0 * (1.0 - alpha), time_left=lambda: False) == []
    assert run_search(lambda alpha: 0.5) == []  # the checkpoint's attack already cannot tell them apart
    assert run_search(lambda alpha: None) == []  # no attack measured


def test_the_weights_placed_are_on_the_line_and_past_it():
    model = torch.nn.Linear(3, 2)
    names = pull_back.pulled_parameters(model, lora=False)
    assert sorted(names) == ["bias", "weight"]
    start = pull_back.snapshot(model, names)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    best = pull_back.snapshot(model, names)
    for alpha in (0.5, 0.97, 1.1):
        pull_back.place(model, start, best, alpha)
        for name, p in model.named_parameters():
            assert torch.allclose(p, start[name] + alpha * (best[name] - start[name]), atol=1e-6)


def test_with_lora_only_the_b_matrices_move():
    from peft import LoraConfig, get_peft_model
    from transformers import OlmoConfig, OlmoForCausalLM

    config = OlmoConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                        num_attention_heads=2, num_key_value_heads=2)
    model = get_peft_model(OlmoForCausalLM(config), LoraConfig(r=2, target_modules="all-linear"))
    names = pull_back.pulled_parameters(model, lora=True)
    assert names and all("lora_B" in n for n in names)
    assert not any("lora_A" in n for n in names)


@pytest.mark.parametrize("options, message", [
    ({"pull_back_passes": -1}, "pull_back_passes must be >= 0"),
    ({"pull_back_passes": 2, "pull_back_span": 1.5}, "pull_back_span in (0, 1)"),
])
def test_bad_pull_back_settings_are_one_clear_error(options, message):
    with pytest.raises(SubmissionInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_options(options)


def test_a_run_with_the_pull_back_saves_a_checkpoint_on_the_line_and_logs_its_alpha(tmp_path):
    built = build_tiny_target(tmp_path / "target")
    settings = {"method": "capped_gd", "max_steps": 8, "learning_rate": 1e-3, "lr_distance": 0.0, "evaluations": 2,
                "verbose": False, "time_budget_s": 600, "seed": 0}
    plain, pulled = tmp_path / "plain", tmp_path / "pulled"
    unlearn(str(built.model), str(plain), str(built.forget), str(built.retain), pull_back_passes=0, **settings)
    summary = unlearn(str(built.model), str(pulled), str(built.forget), str(built.retain), pull_back_passes=3,
                      **settings)
    log = json.loads((pulled / LOG_FILE).read_text())
    tried = [h["pull_back_alpha"] for h in log["run"]["history"] if "pull_back_alpha" in h]
    assert 1 <= len(tried) <= 3, "the pull-back made no selection pass"
    assert log["pull_back_alpha"] == summary["pull_back_alpha"]
    plain_log = json.loads((plain / LOG_FILE).read_text())
    assert log["step"] == plain_log["step"], "the training before the pull-back is the same run"
    start, best, saved = (load_file(p / "model.safetensors") for p in (built.model, plain, pulled))
    alpha = log["pull_back_alpha"]
    if alpha is None:  # no point on the line beat the checkpoint: it is the plain run's
        assert all(torch.equal(best[k], saved[k]) for k in best)
        return
    assert alpha in tried
    for key in best:  # the pulled checkpoint lies on the line (bfloat16 rounding apart)
        expected = start[key].float() + alpha * (best[key].float() - start[key].float())
        assert torch.allclose(saved[key].float(), expected, atol=0.02, rtol=0.02), key


def test_the_copies_are_kept_in_the_checkpoints_dtype_and_placed_in_the_models():
    model = torch.nn.Linear(3, 2)
    names = pull_back.pulled_parameters(model, lora=False)
    start = pull_back.snapshot(model, names, torch.bfloat16)
    assert all(t.dtype == torch.bfloat16 and t.device.type == "cpu" for t in start.values())
    pull_back.place(model, start, start, 0.5)
    assert model.weight.dtype == torch.float32
    assert torch.equal(model.weight, start["weight"].float())  # the bfloat16 start, exactly
