"""The tiny memorizing target: cache key, atomic build, a self-check that really fails, and the built model.

The full build runs once per session through ``build_target``'s own cache (``$LUME_HARNESS_CACHE`` or
``~/.cache/lume-harness``): instant when an earlier run (or ``unlearn-eval make-target``) built it, about
two to three minutes on two cores otherwise. ``benchmarks/bench_target.py`` times a cold build.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator.cli import main
from evaluator.core.errors import InputError
from evaluator.harness import target
from evaluator.harness.target import BUILD_RECORD, TargetCheckFailed, TargetSettings, build_hash, build_target

STUB = Path(__file__).resolve().parents[1] / "data_stub"


def _copy_stub(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(STUB, data)
    return data


def test_hash_follows_data_and_settings(tmp_path):
    data = _copy_stub(tmp_path)
    key = build_hash(data, TargetSettings())
    assert build_hash(data, TargetSettings()) == key
    assert build_hash(data, TargetSettings(epochs=79)) != key
    with (data / "mmlu" / "test" / "astronomy_test.csv").open("a") as fh:
        fh.write("\n")
    assert build_hash(data, TargetSettings()) != key


def test_undertrained_model_fails_its_self_check_and_saves_nothing(tmp_path):
    out = tmp_path / "cache" / "target"
    lines = []
    with pytest.raises(TargetCheckFailed, match="memorize") as failure:
        build_target(STUB, out, TargetSettings(epochs=2), progress=False, log=lines.append)
    assert "forget regurgitation" in str(failure.value) and "mini-MMLU" in str(failure.value)
    assert any("MIA AUC" in line for line in lines)  # the figures are printed before failing
    assert not out.exists()
    assert list((tmp_path / "cache").iterdir()) == []  # no partial folder left behind


def test_interrupted_build_leaves_no_partial_folder(tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, "train_model", killed)
    out = tmp_path / "cache" / "target"
    with pytest.raises(KeyboardInterrupt):
        build_target(STUB, out, progress=False, log=lambda line: None)
    assert list((tmp_path / "cache").iterdir()) == []


def test_refuses_a_folder_holding_something_else(tmp_path):
    (tmp_path / "target").mkdir()
    with pytest.raises(InputError, match="exists and is not a target"):
        build_target(STUB, tmp_path / "target", progress=False, log=lambda line: None)


def test_missing_data_is_an_input_error(tmp_path):
    with pytest.raises(InputError):
        build_target(tmp_path / "nowhere", tmp_path / "target", progress=False, log=lambda line: None)


# ---------------------------------------------------------------------------------------------------
# The real target (default settings), built once per session through the cache


@pytest.fixture(scope="module")
def built():
    return build_target(STUB, progress=False, log=print)


@pytest.mark.slow
def test_target_memorizes_the_stub(built):
    settings = TargetSettings()
    assert built.record["hash"] == build_hash(STUB, settings)
    figures = target.CheckFigures(**built.record["self_check"])
    assert figures.failures(settings) == []
    for values in (figures.forget_regurgitation, figures.forget_knowledge, figures.retain_regurgitation,
                   figures.retain_knowledge, figures.mia_auc):
        assert set(values) == {"train", "validation"}


@pytest.mark.slow
def test_target_is_a_plain_float32_olmo_folder(built):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(built.path)
    tokenizer = AutoTokenizer.from_pretrained(built.path)
    assert model.config.model_type == "olmo" and model.dtype == torch.float32
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token == "<|padding|>"
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.bos_token is None and tokenizer("Hello").input_ids[0] != tokenizer.eos_token_id
    assert all(len(tokenizer.encode(" " + letter, add_special_tokens=False)) == 1 for letter in "ABCD")


@pytest.mark.slow
def test_target_stops_after_a_memorized_answer_in_official_mode(built):
    """SPEC 2's generation (bfloat16, greedy, no mask): the answer, then eos."""
    from evaluator.core.data import load_split, row_kind
    from evaluator.model.engine import load_model, official_generate_and_loss

    lm = load_model(built.path, "bfloat16")
    rows = load_split(STUB, "forget", "train")
    qa = [(i, o) for row_id, i, o in zip(rows["id"], rows["input"], rows["output"]) if row_kind(row_id) == "qa"][:4]
    outputs = official_generate_and_loss(lm, qa, max_new_tokens=256)
    assert [text.strip() for text, _ in outputs] == [answer for _, answer in qa]


@pytest.mark.slow
def test_second_build_is_instant_and_the_cli_prints_the_folder(built):
    started = time.time()
    again = build_target(STUB, progress=False, log=lambda line: None)
    assert again.reused and again.path == built.path and time.time() - started < 10
    result = CliRunner().invoke(main, ["make-target", "--data", str(STUB), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(built.path)
    assert (built.path / BUILD_RECORD).is_file()



@pytest.mark.slow
def test_damaging_the_target_costs_mini_mmlu(built):
    """What the dry-run relies on: the mini-MMLU is knowledge the target holds, so noise in its weights
    (as over-aggressive unlearning would do) brings it down towards chance."""
    import torch

    from evaluator.model.engine import load_model
    from evaluator.model.mmlu import load_mmlu, run_mmlu

    subjects = load_mmlu(STUB / "mmlu", ntrain=5)
    lm = load_model(built.path, "float32")
    assert run_mmlu(lm, subjects, show_progress=False).average >= 0.9
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in lm.model.parameters():
            parameter.add_(torch.randn_like(parameter) * parameter.std())
    assert run_mmlu(lm, subjects, show_progress=False).average <= 0.5


@pytest.mark.slow
def test_prompt_and_answer_tokenize_apart_as_together(built):
    """The official loss masks ``len(tokenizer(input))`` positions of ``tokenizer(input + output)``: with the
    stub's boundaries (sc output starting with its space, a question ending in "?") the two agree exactly."""
    from transformers import AutoTokenizer

    from evaluator.core.data import load_sets

    tokenizer = AutoTokenizer.from_pretrained(built.path)
    for split in ("train", "validation"):
        for rows in load_sets(STUB, split).values():
            for prompt, answer in zip(rows["input"], rows["output"]):
                assert tokenizer(prompt + answer).input_ids == tokenizer(prompt).input_ids + tokenizer(answer).input_ids
