"""Every method unlearns: on a memorizing target the test builds itself (no ../shared), a fixed number of steps
raises the forget rows' loss and keeps the retain rows' loss within a bound; and the same check fails when a
sign in the method's loss is flipped (the mutation is made here, so a test that cannot fail would show).

Measured (12 steps, lr 1e-3, 2-layer OLMo that memorized 9 + 9 stub rows, forget/retain loss 0.01 before):
every method ends with forget loss 4.1-11.4 and (those with a retain term) retain loss 0.07-0.89; every
mutation ends with forget loss below 2.5 or retain loss above 5.8. capped_gd's level target alone (the ascent
zeroed, level_target_weight 1) ends with forget loss 3.87 (3.87 under ATEN_CPU_CAPABILITY=avx2), and 1.26 with its
sign flipped.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tiny_target import build_tiny_target, mean_answer_loss  # noqa: E402

from submission import METHODS, methods, unlearn  # noqa: E402
from submission.train import LOG_FILE  # noqa: E402

torch.set_num_threads(1)

# A fixed number of steps at a fixed rate (lr_distance 0: capped_gd's rate not scaled by the way to go).
STEPS = {"max_steps": 12, "learning_rate": 1e-3, "lr_distance": 0.0, "evaluations": 1, "save_initial": False,
         "verbose": False, "time_budget_s": 600}
MIN_FORGET_RISE = 3.0  # nats/token on the answer tokens, from ~0.01
MAX_RETAIN = 1.5  # nats/token; gradient ascent alone has no retain term and no such bound
NO_RETAIN_TERM = {"gradient_ascent"}


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    built = build_tiny_target(tmp_path_factory.mktemp("tiny-target"))
    before = (mean_answer_loss(built.model, built.forget_rows), mean_answer_loss(built.model, built.retain_rows))
    assert max(before) < 0.1, f"the tiny target did not memorize its rows: losses {before}"
    return built, before


def run(target, out: Path, method: str) -> tuple[float, float]:
    built, _ = target
    unlearn(str(built.model), str(out), str(built.forget), str(built.retain), method=method, **STEPS)
    return mean_answer_loss(out, built.forget_rows), mean_answer_loss(out, built.retain_rows)


def unlearned(method: str, forget: float, retain: float, forget_before: float) -> bool:
    return forget >= forget_before + MIN_FORGET_RISE and (method in NO_RETAIN_TERM or retain <= MAX_RETAIN)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_method_raises_the_forget_loss_and_keeps_the_retain_loss(target, tmp_path, method):
    forget, retain = run(target, tmp_path / "out", method)
    forget_before = target[1][0]
    print(f"\n{method}: forget loss {forget_before:.3f} -> {forget:.3f}, "
          f"retain loss {target[1][1]:.3f} -> {retain:.3f}")
    assert unlearned(method, forget, retain, forget_before), (forget, retain)


def _negated(function):
    def flipped(*args, **kwargs):
        value = function(*args, **kwargs)
        return (-value[0], value[1]) if isinstance(value, tuple) else -value
    return flipped


def _flip_whole_loss(monkeypatch, method):
    original = METHODS[method]  # the loop looks the method up by name at run time
    monkeypatch.setitem(METHODS, method, dataclasses.replace(original, loss=_negated(original.loss)))


# What is flipped: (how, the methods whose loss it reaches).
MUTATIONS = {
    "whole loss": (_flip_whole_loss, sorted(METHODS)),
    "forget ascent term": (lambda monkeypatch, method: monkeypatch.setattr(
        methods, "ascent_term", _negated(methods.ascent_term)),
        ["capped_gd", "gradient_ascent", "gradient_difference", "kl", "sequential_gd"]),
    "retain NLL term": (lambda monkeypatch, method: monkeypatch.setattr(
        methods, "retain_nll", _negated(methods.retain_nll)),
        ["capped_gd", "gradient_difference", "npo", "sequential_gd", "simnpo"]),
}


@pytest.mark.parametrize("mutation,method", [(m, name) for m, (_, names) in MUTATIONS.items() for name in names])
def test_a_flipped_sign_fails_the_check(target, tmp_path, monkeypatch, mutation, method):
    flip, _ = MUTATIONS[mutation]
    flip(monkeypatch, method)
    forget, retain = run(target, tmp_path / "out", method)
    print(f"\n{method} with the {mutation} negated: forget loss {forget:.3f}, retain loss {retain:.3f}")
    assert not unlearned(method, forget, retain, target[1][0]), (forget, retain)


def test_the_capped_ascent_stops_at_the_ceiling_and_the_taper_fades_it_before():
    rows = torch.tensor([1.0, 3.0, 3.5, 4.5], requires_grad=True)  # per-row mean NLL; ceiling 4
    losses = methods.TokenLosses(mean=rows, total=rows, logits=torch.zeros(4, 1, 1), mask=torch.ones(4, 1))
    methods.ascent_term(losses, 4.0).backward()
    assert rows.grad.tolist() == [0.25, 0.25, 0.25, 0.0]  # full push below the ceiling, none above
    rows.grad = None
    methods.ascent_term(losses, 4.0, taper=0.25).backward()  # fades over the last 1 nat below the ceiling
    assert rows.grad.tolist() == pytest.approx([0.25, 0.25, 0.125, 0.0])
    rows.grad = None
    methods.ascent_term(losses, None).backward()  # no ceiling: plain ascent on every row
    assert rows.grad.tolist() == [0.25] * 4


@pytest.mark.parametrize("ceiling, extension_auc, extended", [(1000.0, 1.0, True), (0.0, 1.0, False),
                                                              (0.0, 0.0, True)])
def test_the_run_goes_on_past_its_planned_steps_only_while_forget_rows_sit_below_the_ceiling_or_the_attack_finds_them(
        target, tmp_path, ceiling, extension_auc, extended):
    built, _ = target
    settings = {k: v for k, v in STEPS.items() if k != "max_steps"}
    summary = unlearn(str(built.model), str(tmp_path / "out"), str(built.forget), str(built.retain),
                      method="capped_gd", epochs=1.0, forget_nll_ceiling=ceiling, max_extension=3.0,
                      extension_auc=extension_auc, **settings)
    planned = summary["steps_planned"]
    # A ceiling no row reaches: the ascent never finishes, the run takes all 3x its planned steps; a ceiling
    # every row is already past: it stops where planned (an AUC bar of 1: the attack rule never keeps it going),
    # unless the attack rule keeps it going (an AUC bar of 0: always). A ceiling given as a number is never raised.
    assert summary["steps_done"] == (3 * planned if extended else planned), summary
    assert summary["forget_nll_ceiling_final"] == ceiling
    log = json.loads((tmp_path / "out" / LOG_FILE).read_text())
    assert log["run"]["steps_done"] == summary["steps_done"], "the log tells the whole run, past the saved step"
    assert log["run"]["history"][-1]["step"] == summary["steps_done"]
    assert log["run"]["stopped"] == ("extension cap" if extended else "ascent finished")


def test_past_its_planned_steps_the_attack_rule_raises_a_measured_ceiling_to_where_the_references_sit_now():
    from submission.selection import SelectionScore
    from submission.train import _ascent_unfinished, resolve_options

    options = resolve_options({"method": "capped_gd"})  # extension_threshold 0.05, extension_auc 0.6

    def decide(below, auc, level, ceiling=11.0, measured=True):
        last = SelectionScore(0.8, 0.8, (), membership_auc=auc, reference_level=level)
        return _ascent_unfinished(below, {"last": last, "ceiling": ceiling, "measured": measured}, options)

    assert decide([0.5, 0.0], 0.5, 20.0) == (True, None)  # rows still below the ceiling: go on as it is
    assert decide([0.0, 0.0], 0.85, 20.0) == (True, 20.0)  # rows past it, the attack still finds them: raise
    assert decide([0.0, 0.0], 0.85, 10.0) == (True, None)  # ... never lower
    assert decide([0.0, 0.0], 0.85, 20.0, measured=False) == (True, None)  # a number given stays
    assert decide([0.0, 0.0], 0.55, 20.0) == (False, None)  # the attack no longer finds them: stop
    assert decide([0.0, 0.0], None, None) == (False, None)  # no attack measured: the rows' share alone


def test_the_width_scaled_learning_rate_follows_the_models_hidden_size():
    from types import SimpleNamespace

    from submission.train import effective_learning_rate, resolve_options

    options = resolve_options({"learning_rate": 1e-3, "lr_width": 128})
    assert effective_learning_rate(SimpleNamespace(hidden_size=128), options) == pytest.approx(1e-3)
    assert effective_learning_rate(SimpleNamespace(hidden_size=256), options) == pytest.approx(5e-4)
    assert effective_learning_rate(SimpleNamespace(hidden_size=4096), options) == pytest.approx(3.125e-5)
    assert effective_learning_rate(SimpleNamespace(d_model=2048), options) == pytest.approx(6.25e-5)
    plain = resolve_options({"learning_rate": 1e-3, "method": "npo"})
    assert effective_learning_rate(SimpleNamespace(hidden_size=4096), plain) == pytest.approx(1e-3)


def test_the_distance_scaled_rate_is_the_share_of_the_way_capped_at_the_full_rate_and_floored():
    from submission.train import MIN_RATE_SHARE, distance_scaled_rate

    assert distance_scaled_rate(1e-3, 4.0, 8.0) == pytest.approx(5e-4)  # half the way: half the rate
    assert distance_scaled_rate(1e-3, 11.5, 8.0) == pytest.approx(1e-3)  # a long way: the full rate, no more
    assert distance_scaled_rate(1e-3, 0.1, 8.0) == pytest.approx(1e-3 * MIN_RATE_SHARE)  # floored
    assert distance_scaled_rate(1e-3, -2.0, 8.0) == pytest.approx(1e-3 * MIN_RATE_SHARE)  # already past it


def test_the_rate_is_scaled_by_the_measured_distance_logged_and_trained_at(target, tmp_path):
    from submission.train import distance_scaled_rate

    built, _ = target
    settings = {**{k: v for k, v in STEPS.items() if k != "lr_distance"}, "method": "capped_gd",
                "forget_nll_ceiling": "measured", "max_extension": 1.0}
    runs = {}
    for name, lr_distance in (("near", 1e6), ("far", 1e-3)):  # the way looks long (full rate) or short (floor)
        out = tmp_path / name
        summary = unlearn(str(built.model), str(out), str(built.forget), str(built.retain),
                          lr_distance=lr_distance, **settings)
        rate = json.loads((out / LOG_FILE).read_text())["learning_rate"]
        assert rate["distance"] == pytest.approx(summary["forget_nll_ceiling"] - rate["forget_documents_level"])
        assert rate["distance"] > 1.0, "the tiny target's forget documents sit far below the level"
        assert rate["value"] == pytest.approx(distance_scaled_rate(rate["unscaled"], rate["distance"], lr_distance))
        assert summary["learning_rate"] == pytest.approx(rate["value"])
        runs[name] = mean_answer_loss(out, built.forget_rows)
    # The optimizer trains at the scaled rate: 20x smaller steps raise the forget loss far less.
    assert runs["far"] > runs["near"] + 1.0, runs


def test_the_swap_rule_chooses_the_documents_the_level_is_measured_on_and_the_log_says_which(target, tmp_path):
    built, _ = target
    settings = {**STEPS, "max_steps": 1, "method": "capped_gd", "forget_nll_ceiling": "measured",
                "max_extension": 1.0}
    measured = {}
    for rule in ("capitalized", "proper_nouns"):
        out = tmp_path / rule
        unlearn(str(built.model), str(out), str(built.forget), str(built.retain), swapped_words=rule, **settings)
        measured[rule] = json.loads((out / LOG_FILE).read_text())["forget_nll_ceiling"]["measured"]
        assert f"entities ({rule}) swapped" in measured[rule]["how"]
    # Other documents, so another level: the rule reaches the measurement.
    assert measured["capitalized"]["level"] != pytest.approx(measured["proper_nouns"]["level"], abs=1e-3)


def test_the_level_target_puts_the_label_token_at_the_level_and_keeps_the_other_tokens_proportions():
    logits = torch.tensor([[[4.0, 1.0, 0.0, -1.0]], [[4.0, 1.0, 0.0, -1.0]]], requires_grad=True)
    labels = torch.tensor([[0], [0]])
    nll = torch.nn.functional.cross_entropy(logits.detach().transpose(1, 2), labels, reduction="none")[:, 0]
    losses = methods.TokenLosses(mean=nll, total=nll, logits=logits, mask=torch.ones(2, 1))
    level = torch.tensor([2.0, 0.01])  # row 0 below its ceiling, row 1 past it (its NLL is ~0.07)
    methods.level_target_term(losses, labels, level).backward()
    # d(cross-entropy)/d(logits) = softmax - target, halved by the mean over the two rows.
    probabilities = torch.softmax(logits.detach()[0, 0], dim=-1)
    target_label = torch.exp(torch.tensor(-2.0))
    others = probabilities[1:] / probabilities[1:].sum() * (1 - target_label)
    expected = (probabilities - torch.cat([target_label[None], others])) / 2
    assert logits.grad[0, 0].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert logits.grad[0, 0, 0] > 0 and (logits.grad[0, 0, 1:] < 0).all()  # descending lowers the label token
    assert logits.grad[1].abs().max() == 0  # a row past its ceiling is left alone
    # At the target itself the term is at its minimum: no push either way.
    at_target = torch.log(torch.cat([target_label[None], others]))[None, None].clone().requires_grad_(True)
    at_nll = torch.nn.functional.cross_entropy(at_target.detach().transpose(1, 2), labels[:1], reduction="none")[:, 0]
    methods.level_target_term(methods.TokenLosses(mean=at_nll, total=at_nll, logits=at_target, mask=torch.ones(1, 1)),
                              labels[:1], 2.001).backward()  # its NLL (2.0) just below the ceiling: still pushed
    assert at_target.grad.abs().max() < 1e-3


def _no_ascent(monkeypatch):
    monkeypatch.setattr(methods, "ascent_term", lambda losses, ceiling, taper=0.0: losses.mean.sum() * 0)


@pytest.mark.parametrize("flipped", [False, True])
def test_the_level_target_alone_unlearns_and_fails_the_check_with_its_sign_flipped(target, tmp_path, monkeypatch,
                                                                                    flipped):
    _no_ascent(monkeypatch)  # the level target term alone moves the forget rows
    if flipped:
        monkeypatch.setattr(methods, "level_target_term", _negated(methods.level_target_term))
    built, (forget_before, _) = target
    out = tmp_path / "out"
    unlearn(str(built.model), str(out), str(built.forget), str(built.retain), method="capped_gd",
            level_target_weight=1.0, **STEPS)
    forget, retain = mean_answer_loss(out, built.forget_rows), mean_answer_loss(out, built.retain_rows)
    print(f"\nlevel target alone{' (sign flipped)' if flipped else ''}: forget loss {forget_before:.3f} -> "
          f"{forget:.3f}, retain loss {retain:.3f}")
    assert unlearned("capped_gd", forget, retain, forget_before) is not flipped, (forget, retain)


@pytest.mark.parametrize("options, message", [
    ({"level_target_weight": -1.0}, "level_target_weight must be >= 0"),
    ({"level_target_weight": 1.0, "method": "npo"}, "level_target_weight needs a method that ascends under a ceiling"),
    ({"level_target_weight": 1.0, "method": "gradient_difference"}, "needs a method that ascends under a ceiling"),
])
def test_a_level_target_weight_without_a_capped_ascent_is_one_clear_error(options, message):
    from submission import SubmissionInputError
    from submission.train import resolve_options

    with pytest.raises(SubmissionInputError, match=message):
        resolve_options(options)
    assert resolve_options({"level_target_weight": 1.0, "method": "gradient_difference",
                            "forget_nll_ceiling": 3.0}).level_target_weight == 1.0
