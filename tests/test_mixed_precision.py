"""The weights train in float32 under bfloat16 autocast (on a GPU by default; ``mixed_precision``): weights kept
in bfloat16 lose every Adam step smaller than half their bfloat16 spacing. At the default's rate on OLMo-1B's
shape (2.8e-5) that left the model as it was on one H100 (docs/methods.md); here the same rate, on a target the
test builds itself (no ../shared), moves almost every weight in float32 and few in bfloat16."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tiny_target import build_tiny_target  # noqa: E402

from submission import train as train_module  # noqa: E402
from submission import unlearn  # noqa: E402
from submission.data import SubmissionInputError  # noqa: E402

torch.set_num_threads(1)

CPU, GPU = torch.device("cpu"), torch.device("cuda")


def settings(**given):
    return train_module.resolve_options(given)


def test_precision_by_device_and_setting():
    precision = train_module._precision
    assert precision(settings(), CPU, zero3=False) == (torch.float32, None)
    assert precision(settings(), GPU, zero3=False) == (torch.float32, torch.bfloat16)
    assert precision(settings(mixed_precision="bfloat16"), CPU, zero3=False) == (torch.float32, torch.bfloat16)
    assert precision(settings(mixed_precision="no"), GPU, zero3=False) == (torch.float32, None)
    assert precision(settings(train_dtype="bfloat16"), GPU, zero3=False) == (torch.bfloat16, None)
    assert precision(settings(), GPU, zero3=True) == (torch.bfloat16, None)  # DeepSpeed's config decides


def test_an_unknown_precision_is_one_clear_error():
    with pytest.raises(SubmissionInputError, match="mixed_precision must be one of auto, bfloat16, no"):
        settings(mixed_precision="fp8")


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return build_tiny_target(tmp_path_factory.mktemp("tiny-target"), steps=100)


# Four steps at OLMo-1B's default rate, the last one saved.
SMALL_RATE = {"method": "gradient_difference", "learning_rate": 2.8e-5, "max_steps": 4, "evaluations": 1,
              "save_initial": False, "verbose": False, "time_budget_s": 600}


def moved_share(before: dict, after: dict, dtype: torch.dtype) -> float:
    """The share of matrix weights that differ from the input's, both seen in ``dtype``; not the input embedding,
    whose rows of tokens absent from the batches get no gradient."""
    changed = total = 0
    for name, weight in before.items():
        if weight.dim() == 2 and name in after and "embed_tokens" not in name:
            changed += (weight.to(dtype) != after[name].to(dtype)).sum().item()
            total += weight.numel()
    return changed / total


def test_float32_weights_under_autocast_take_the_small_steps_bfloat16_weights_lose(target, tmp_path):
    before = load_file(target.model / "model.safetensors")
    unlearn(str(target.model), str(tmp_path / "mixed"), str(target.forget), str(target.retain),
            mixed_precision="bfloat16", **SMALL_RATE)
    unlearn(str(target.model), str(tmp_path / "bf16"), str(target.forget), str(target.retain),
            train_dtype="bfloat16", **SMALL_RATE)
    mixed = moved_share(before, load_file(tmp_path / "mixed" / "model.safetensors"), torch.float32)
    bf16 = moved_share(before, load_file(tmp_path / "bf16" / "model.safetensors"), torch.bfloat16)
    print(f"moved: float32 under autocast {mixed:.3f}, bfloat16 {bf16:.3f}")
    assert mixed > 0.9, f"float32 weights under autocast: only {mixed:.2f} of the weights moved"
    assert bf16 < 0.5, f"bfloat16 weights: {bf16:.2f} of the weights moved (expected most steps rounded away)"


def test_lora_under_autocast_trains_float32_adapters_on_a_bfloat16_base(target, tmp_path):
    # The path a 7B model takes on one GPU (LoRA, chosen when full float32 training does not fit), on CPU here.
    before = load_file(target.model / "model.safetensors")
    unlearn(str(target.model), str(tmp_path / "lora"), str(target.forget), str(target.retain),
            mixed_precision="bfloat16", lora_rank=4, **{**SMALL_RATE, "learning_rate": 1e-3})
    after = load_file(tmp_path / "lora" / "model.safetensors")
    assert set(after) == set(before) and all(v.dtype == torch.float32 for v in after.values())  # the input's dtype
    assert moved_share(before, after, torch.bfloat16) > 0.5  # the merged adapters moved the weights


def test_lora_under_autocast_loads_the_base_in_bfloat16_without_a_float32_copy(target, tmp_path, monkeypatch):
    # A 7B base loaded in float32 before the cast would take 28 GB of host memory for a moment instead of 14.
    from transformers import AutoModelForCausalLM

    loaded = []
    load = AutoModelForCausalLM.from_pretrained

    def recording(*args, **kwargs):
        loaded.append(kwargs.get("dtype"))
        return load(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", recording)
    unlearn(str(target.model), str(tmp_path / "lora"), str(target.forget), str(target.retain),
            mixed_precision="bfloat16", lora_rank=4, **SMALL_RATE)
    assert loaded == [torch.bfloat16]
    loaded.clear()
    unlearn(str(target.model), str(tmp_path / "full"), str(target.forget), str(target.retain),
            mixed_precision="bfloat16", **SMALL_RATE)
    assert loaded == [torch.float32]  # full training keeps float32 weights under autocast


class _OnGPU:
    device = torch.device("cuda")
    is_main_process = True


def test_lora_is_chosen_from_the_config_before_any_weight_is_loaded(target, monkeypatch):
    from types import SimpleNamespace

    from transformers import AutoConfig, AutoModelForCausalLM

    def no_loading(*args, **kwargs):
        raise AssertionError("weights were loaded to decide on LoRA")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_loading)
    config = AutoConfig.from_pretrained(target.model)
    parameters = train_module.parameter_count(config)
    loaded = AutoModelForCausalLM.from_config(config)
    assert parameters == sum(p.numel() for p in loaded.parameters())

    def gpu_of(total_memory):
        properties = SimpleNamespace(total_memory=total_memory)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: properties)

    # float32 full training: 16 bytes a parameter, within 60% of the GPU or not.
    gpu_of(parameters * 16 / 0.6 * 1.1)
    assert train_module._auto_lora(config, torch.float32, _OnGPU(), False, settings(verbose=False)) == 0
    gpu_of(parameters * 16 / 0.6 * 0.9)
    assert train_module._auto_lora(config, torch.float32, _OnGPU(), False, settings(verbose=False)) == 16
    assert train_module._auto_lora(config, torch.bfloat16, _OnGPU(), False, settings(verbose=False)) == 0
    assert train_module._auto_lora(config, torch.float32, _OnGPU(), True, settings(verbose=False)) == 0  # ZeRO-3
    assert train_module._auto_lora(config, torch.float32, _OnGPU(), False, settings(lora_rank=0)) == 0
