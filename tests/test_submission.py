"""The submission package: every method end to end on the golden memorizing model, the pieces the loop is
made of, and bad input through the command line."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))  # this checkout's packages (the editable install maps `submission` as a namespace)

from submission import METHODS, SubmissionInputError, unlearn  # noqa: E402
from submission import train as train_module  # noqa: E402
from submission.checkpoint import merge_lora, recover, swap_in  # noqa: E402
from submission.data import IGNORE_INDEX, Row, encode_row, split_selection_rows  # noqa: E402
from submission.methods import chunked_schedule, random_schedule  # noqa: E402
from submission.selection import aggregate, row_score, task_terms  # noqa: E402

torch.set_num_threads(1)  # the machine is shared: more threads only spin

TARGET = SHARED / "golden" / "target"
DATA = SHARED / "golden" / "data"
needs_shared = pytest.mark.skipif(not TARGET.is_dir(), reason=f"{SHARED} is absent: no golden model to unlearn")

# Small and fast: two optimizer steps, a six-row selection slice per split, one selection pass after training.
FAST = {"max_steps": 2, "evaluations": 1, "max_selection_rows": 6, "verbose": False}


def folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def assert_loadable(folder: Path, dtype=torch.float32):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert next(model.parameters()).dtype == dtype
    ids = torch.tensor([tokenizer("Who is").input_ids])
    assert torch.isfinite(model(ids).logits).all()
    return model


# ---------------------------------------------------------------------------------------------------
# Every method, end to end


@needs_shared
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_writes_a_loadable_checkpoint(method, tmp_path):
    before = folder_digest(TARGET)
    out = tmp_path / "out"
    summary = unlearn(str(TARGET), str(out), str(DATA), str(DATA), method=method, **FAST)
    assert summary["steps_done"] == 2
    model = assert_loadable(out)
    assert json.loads((out / "unlearning_log.json").read_text())["method"] == method
    assert folder_digest(TARGET) == before
    assert not list(tmp_path.glob(".out.*")), "a temporary folder was left beside the output"
    del model


@needs_shared
@pytest.mark.parametrize("method", ["gradient_difference", "npo"])
def test_lora_is_merged_before_saving(method, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "out"
    # npo with LoRA takes the adapter-free network as its reference (no second copy)
    unlearn(TARGET, out, DATA / "forget.jsonl", DATA / "retain.parquet", method=method, lora_rank=4,
            learning_rate=1e-2, save_initial=False, **FAST)
    with safe_open(out / "model.safetensors", framework="pt") as trained, \
            safe_open(TARGET / "model.safetensors", framework="pt") as original:
        assert set(trained.keys()) == set(original.keys())  # no adapter keys, no peft prefixes
        changed = [k for k in original.keys() if not torch.equal(trained.get_tensor(k), original.get_tensor(k))]
    assert any("proj" in k for k in changed), "the adapter's update did not reach the saved weights"
    assert_loadable(out)


@needs_shared
def test_the_organizers_four_argument_call(tmp_path, monkeypatch):
    # The defaults run for minutes; shorten them through the per-method defaults, keep the call as theirs.
    monkeypatch.setitem(train_module.METHOD_DEFAULTS, train_module.DEFAULT_METHOD, dict(FAST))
    unlearn(str(TARGET), str(tmp_path / "out"), str(DATA), str(DATA))
    assert_loadable(tmp_path / "out")


@needs_shared
def test_time_budget_stops_the_loop_and_keeps_a_checkpoint(tmp_path):
    summary = unlearn(TARGET, tmp_path / "out", DATA, DATA, method="gradient_difference", max_steps=10_000,
                      time_budget_s=8, safety_margin_s=0, evaluations=1000, max_selection_rows=4, verbose=False)
    # Why it stopped, not how fast: a wall-time bound failed on a loaded machine (34 s against 30) while the
    # loop did stop on its clock (speed lives in benchmarks, not in tests).
    assert summary["steps_done"] < 10_000
    assert summary["stopped"] == "time budget", summary
    assert json.loads((tmp_path / "out" / "unlearning_log.json").read_text())["run"]["stopped"] == "time budget"
    assert_loadable(tmp_path / "out")


# ---------------------------------------------------------------------------------------------------
# Pieces


def test_selection_score_is_the_evaluators_task_aggregate():
    forget = [Row("a\"sc1", "p", "one two three four", "Task1"), Row("bqa0", "q", "Emma", "Task1")]
    retain = [Row("csc1", "p", "five six", "Task2"), Row("dqa0", "q", "Jorry", "Task2")]
    scored = {"forget": [(forget[0], row_score(forget[0], "one two")), (forget[1], row_score(forget[1], " emma "))],
              "retain": [(retain[0], row_score(retain[0], "five six seven")), (retain[1], row_score(retain[1], ""))]}
    terms = task_terms(scored)
    assert terms == {"forget": [0.5, 0.0], "retain": [1.0, 0.0]}  # forget inverted; exact match ignores case/space
    score = aggregate(terms)
    assert score.task_aggregate == 0.0  # any zero term zeroes the harmonic mean
    assert score.balance == 0.25
    assert aggregate({"forget": [0.5, 1.0], "retain": [1.0, 1.0]}).task_aggregate == pytest.approx(4 / 5.0)


@needs_shared
def test_answer_tokens_alone_carry_the_loss_on_qa_rows():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TARGET)
    qa = Row("xqa0", "Who is the leader?", " Jorry", "Task1")
    encoded = encode_row(tokenizer, qa, 512, sc_loss_on_prompt=True)
    prompt_length = len(tokenizer(qa.input).input_ids)
    assert encoded.labels[:prompt_length] == [IGNORE_INDEX] * prompt_length
    assert encoded.labels[prompt_length:] == encoded.input_ids[prompt_length:]
    sc = Row("ysc1", "Once upon a time", " there was a bookstore.", "Task1")
    assert IGNORE_INDEX not in encode_row(tokenizer, sc, 512, sc_loss_on_prompt=True).labels
    assert encode_row(tokenizer, sc, 512, sc_loss_on_prompt=False).labels[0] == IGNORE_INDEX
    assert encode_row(tokenizer, qa, prompt_length, sc_loss_on_prompt=True) is None  # truncation left no answer


def test_selection_rows_hold_out_a_share_of_every_group():
    rows = [Row(f"r{i}qa0", "q", "a", "Task2") for i in range(20)]
    rows += [Row(f"s{i}sc1", "p", "o", "Task1") for i in range(3)]
    training, selection = split_selection_rows(rows, 0.1, seed=0, rows_per_group=5)
    held_out = [r for r in selection if r not in training]
    assert len(held_out) == 2 and all(r.task == "Task2" for r in held_out)
    assert len(training) == 21
    assert sum(r.task == "Task2" for r in selection) == 5  # topped up with rows trained on
    assert sum(r.task == "Task1" for r in selection) == 3  # too small to hold out: scored in sample


def test_merge_lora_adds_the_scaled_product():
    a, b, w = torch.randn(2, 3), torch.randn(4, 2), torch.randn(4, 3)
    state = {"base_model.model.layer.q_proj.base_layer.weight": w,
             "base_model.model.layer.q_proj.lora_A.default.weight": a,
             "base_model.model.layer.q_proj.lora_B.default.weight": b, "base_model.model.norm.weight": torch.ones(3)}
    merged = merge_lora(state, scaling=2.0)
    assert set(merged) == {"layer.q_proj.weight", "norm.weight"}
    assert torch.allclose(merged["layer.q_proj.weight"], w + 2.0 * b @ a)


def test_schedules_visit_forget_rows_as_promised():
    steps = list(chunked_schedule(10, 7, forget_batch=2, retain_batch=3, steps=9, chunk_size=4, seed=0))
    assert len(steps) == 9 and all(len(f) == 2 and len(r) == 3 for f, r in steps)
    chunks_seen = [frozenset(f) for f, _ in steps]
    first_chunk = set().union(*chunks_seen[:3])
    assert len(first_chunk) <= 4  # the first chunk is unlearned alone before the next starts
    rows = [i for f, _ in random_schedule(10, 7, 2, 3, steps=5, chunk_size=4, seed=0) for i in f]
    assert sorted(rows) == list(range(10))  # one epoch: every forget row once


def test_swap_in_replaces_a_checkpoint_and_recover_cleans_up(tmp_path):
    out = tmp_path / "out"
    for version in ("one", "two"):
        staged = tmp_path / f".out.tmp-{version}"
        staged.mkdir()
        (staged / "config.json").write_text(version)
        swap_in(staged, out)
        assert (out / "config.json").read_text() == version
        assert not staged.exists()
    (tmp_path / ".out.tmp-half").mkdir()  # what a kill during a write leaves
    recover(out)
    assert not (tmp_path / ".out.tmp-half").exists() and (out / "config.json").read_text() == "two"
    out.rename(tmp_path / ".out.prev")  # a kill between the two renames of the fallback swap
    recover(out)
    assert (out / "config.json").read_text() == "two"


# ---------------------------------------------------------------------------------------------------
# Bad input: one line on stderr naming the file and the problem, exit 2, nothing written


def run_cli(*args):
    from click.testing import CliRunner

    from submission.cli import command

    return CliRunner().invoke(command, [str(a) for a in args])


def assert_refused(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert str(fragment) in lines[0]


@needs_shared
def test_cli_missing_forget_file(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli(TARGET, tmp_path / "out", tmp_path / "empty", DATA)
    assert_refused(result, tmp_path / "empty", "no forget.parquet or forget.jsonl")
    assert not (tmp_path / "out").exists()
    result = run_cli(TARGET, tmp_path / "out", DATA, tmp_path / "nowhere" / "retain.jsonl")
    assert_refused(result, tmp_path / "nowhere" / "retain.jsonl", "not found")
    assert not (tmp_path / "out").exists()


@needs_shared
def test_cli_wrong_columns(tmp_path):
    bad = tmp_path / "forget.jsonl"
    bad.write_text(json.dumps({"id": "xqa0", "question": "q", "answer": "a", "task": "Task1"}) + "\n")
    result = run_cli(TARGET, tmp_path / "out", bad, DATA)
    assert_refused(result, bad, "missing column(s) input, output")
    assert not (tmp_path / "out").exists()


@needs_shared
def test_cli_output_equal_to_input(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(TARGET, model)
    before = folder_digest(model)
    result = run_cli(model, model, DATA, DATA)
    assert_refused(result, model, "is the input model folder")
    result = run_cli(model, model / "inside", DATA, DATA)
    assert_refused(result, "contain one another")
    assert folder_digest(model) == before and not (model / "inside").exists()


@needs_shared
def test_cli_input_folder_without_model(tmp_path):
    (tmp_path / "model").mkdir()
    result = run_cli(tmp_path / "model", tmp_path / "out", DATA, DATA)
    assert_refused(result, tmp_path / "model", "no config.json")
    (tmp_path / "model" / "config.json").write_text("{}")
    result = run_cli(tmp_path / "model", tmp_path / "out", DATA, DATA)
    assert_refused(result, tmp_path / "model", "no model weights")
    assert not (tmp_path / "out").exists()


@needs_shared
def test_cli_output_holding_other_files_is_not_replaced(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = run_cli(TARGET, tmp_path / "out", DATA, DATA)
    assert_refused(result, tmp_path / "out", "refusing to replace")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_unknown_option_is_an_input_error(tmp_path):
    with pytest.raises(SubmissionInputError, match="unknown option"):
        unlearn(tmp_path, tmp_path / "out", tmp_path, tmp_path, learnig_rate=1.0)
    with pytest.raises(SubmissionInputError, match="unknown method"):
        unlearn(tmp_path, tmp_path / "out", tmp_path, tmp_path, method="magic")


def test_time_budget_defaults_to_the_dry_runs_limit(monkeypatch):
    """`unlearn-eval dry-run` exports its hard limit; without it the budget is the organizers' hour, and an
    explicit option wins over both."""
    monkeypatch.delenv(train_module.TIME_LIMIT_VARIABLE, raising=False)
    assert train_module.resolve_options({}).time_budget_s == 3600.0
    monkeypatch.setenv(train_module.TIME_LIMIT_VARIABLE, "85.4")
    assert train_module.resolve_options({}).time_budget_s == 85.4
    assert train_module.resolve_options({"time_budget_s": 30.0}).time_budget_s == 30.0
    monkeypatch.setenv(train_module.TIME_LIMIT_VARIABLE, "an hour")
    with pytest.raises(SubmissionInputError, match="LUME_TIME_LIMIT_S"):
        train_module.resolve_options({})


def test_the_zero3_config_readme_launches_with_is_an_accelerate_deepspeed_stage_3_config():
    """README's full-parameter 7B command names docs/accelerate_zero3.yaml: accelerate must read it as ZeRO-3
    over 8 bfloat16 processes (the run itself needs GPUs and deepspeed, neither of which CI has)."""
    from accelerate.commands.config.config_args import load_config_from_file

    config_file = ROOT / "docs" / "accelerate_zero3.yaml"
    assert f"--config_file {config_file.relative_to(ROOT)}" in (ROOT / "README.md").read_text()
    config = load_config_from_file(str(config_file))
    assert str(config.distributed_type) in ("DEEPSPEED", "DistributedType.DEEPSPEED")
    assert config.deepspeed_config["zero_stage"] == 3 and config.deepspeed_config["zero3_save_16bit_model"]
    assert config.num_processes == 8 and config.mixed_precision == "bf16"
