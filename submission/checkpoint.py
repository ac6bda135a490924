"""Writing a checkpoint so that a kill at any moment leaves a complete one in the output folder.

A checkpoint is written into a temporary folder beside the output folder, synced to disk, and then
swapped in: on Linux with renameat2(RENAME_EXCHANGE), one atomic step that leaves the previous checkpoint
in the temporary name (removed afterwards); elsewhere with two renames, the previous checkpoint parked
under a ``.prev`` name that :func:`recover` puts back if a kill fell between them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
WEIGHTS_FILE = "model.safetensors"
DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_RENAME_EXCHANGE = 2


def _temporary_prefix(output: Path) -> str:
    return f".{output.name}.tmp-"


def _parked_path(output: Path) -> Path:
    return output.parent / f".{output.name}.prev"


def recover(output: Path) -> None:
    """Undo what a kill left behind: put back a parked checkpoint, drop half-written temporaries."""
    parked = _parked_path(output)
    if parked.is_dir():
        if output.exists():
            shutil.rmtree(parked, ignore_errors=True)
        else:
            os.rename(parked, output)
    if output.parent.is_dir():
        for stale in output.parent.glob(_temporary_prefix(output) + "*"):
            shutil.rmtree(stale, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False where the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        os.chmod(path, 0o644)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def swap_in(staged: Path, output: Path) -> None:
    """Make the complete folder ``staged`` the output folder."""
    if output.is_dir() and any(output.iterdir()):
        if _exchange(staged, output):
            shutil.rmtree(staged, ignore_errors=True)
            return
        parked = _parked_path(output)
        os.rename(output, parked)
        os.rename(staged, output)
        shutil.rmtree(parked, ignore_errors=True)
    else:
        os.rename(staged, output)  # replaces a missing or empty folder in one step
    descriptor = os.open(output.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def input_dtype(model_dir: Path) -> torch.dtype:
    """The dtype the input checkpoint is stored in (config first, else its first stored tensor)."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    name = config.get("dtype") or config.get("torch_dtype")
    if isinstance(name, str) and name in DTYPE_NAMES:
        return DTYPE_NAMES[name]
    for file in sorted(model_dir.glob("*.safetensors")):
        from safetensors import safe_open

        with safe_open(file, framework="pt") as handle:
            for key in handle.keys():
                return handle.get_tensor(key).dtype
    return torch.float32


def merge_lora(state_dict: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """A peft LoRA model's state dict as the plain model's: W + scaling * B @ A, adapter keys dropped,
    peft's key prefixes removed."""
    merged = {}
    for key, value in state_dict.items():
        if ".lora_" in key:
            continue
        clean = key.removeprefix("base_model.model.")
        if ".base_layer." in key:
            stem = key.split(".base_layer.")[0]
            clean = clean.replace(".base_layer.", ".")
            lora_a = state_dict.get(f"{stem}.lora_A.default.weight")
            lora_b = state_dict.get(f"{stem}.lora_B.default.weight")
            if key.endswith(".weight") and lora_a is not None and lora_b is not None:
                delta = (lora_b.float() @ lora_a.float()) * scaling
                value = (value.float() + delta).to(value.dtype)
        merged[clean] = value
    return merged


def write_checkpoint(state_dict: dict[str, torch.Tensor], source_dir: Path, output: Path, dtype: torch.dtype,
                     tie_word_embeddings: bool, extra_files: dict[str, str] | None = None) -> None:
    """Write weights (in ``dtype``) plus every non-weight file of the input folder (config, tokenizer,
    generation config, custom code) into a temporary folder, then swap it in as ``output``."""
    from safetensors.torch import save_file

    output.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=_temporary_prefix(output), dir=output.parent))
    try:
        os.chmod(staged, 0o755)  # mkdtemp makes it private; the output folder is for the organizers to read
        tensors = {}
        for key, value in state_dict.items():
            if tie_word_embeddings and key == "lm_head.weight":
                continue  # tied to the input embeddings: transformers ties it again on load
            target_dtype = dtype if value.is_floating_point() else value.dtype
            tensors[key] = value.detach().to(device="cpu", dtype=target_dtype).contiguous()
        save_file(tensors, str(staged / WEIGHTS_FILE), metadata={"format": "pt"})
        for item in source_dir.iterdir():
            if (item.is_file() and not item.name.endswith(WEIGHT_SUFFIXES) and item.name not in WEIGHT_INDEXES
                    and not item.name.startswith(".")):
                shutil.copyfile(item, staged / item.name)  # content only: the copy must stay writable
        for name, text in (extra_files or {}).items():
            (staged / name).write_text(text, encoding="utf-8")
        _fsync_tree(staged)
        swap_in(staged, output)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
