"""Which machine this is, as far as bfloat16 results are concerned (SPEC section 6).

bfloat16 greedy decoding and losses depend on the CPU, and the torch kernel-path label
(``torch.backends.cpu.get_cpu_capability()``) is not enough to tell two CPUs apart: an AMD EPYC and an Intel
Xeon Ice Lake both print ``AVX512`` and still round differently. So a machine is identified here by its
vendor, CPU family and model, torch kernel path and the bfloat16 instruction flags it advertises.

- ``cpu_identity()``: this machine, from the first processor block of ``/proc/cpuinfo`` (``platform`` and
  ``None`` where there is no ``/proc/cpuinfo``).
- ``matches(recorded, identity)`` / ``golden_folder_for(golden)``: which golden folder (``golden/*/``, each
  with a ``machine.json``) was made on a machine of this kind, and a sentence that says which and why.
- ``hardware_key()``: what a cache or resume-journal key records of the hardware, so that results made on
  another CPU (or GPU) are never reused.

Importing this module does not import torch (only ``torch_cpu_capability`` and ``hardware_key`` do).
``python -m evaluator.core.machine [GOLDEN]`` prints this machine in one line (and, given a golden folder,
which of its machine kinds matches).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# The fields ``matches`` compares, in the order a sentence names them.
COMPARED = ("vendor_id", "cpu_family", "model", "torch_cpu_capability", "bf16_flags")


def torch_cpu_capability() -> str | None:
    """torch's CPU kernel path (``AVX512``, ``AVX2``, ``DEFAULT``...); ``None`` where torch cannot say."""
    try:
        import torch  # lazy: evaluator.core stays torch-free at import (`python -m evaluator.core.machine` is quick)

        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # no torch, or a build without the call: the path is unknown, not a failure
        return None


def _first_processor_block(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the end of the first processor's block
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _int_or_none(value: str | None) -> int | None:
    if value is None:
        return None
    for base in (10, 0):  # "167", or "0x41" (ARM's "CPU implementer" style)
        try:
            return int(value, base)
        except ValueError:
            pass
    return None


def cpu_identity(cpuinfo: str | Path | None = None, capability: str | None = None) -> dict:
    """This machine: ``vendor_id``, ``model_name``, ``cpu_family`` (int), ``model`` (int),
    ``torch_cpu_capability`` and ``bf16_flags`` (the sorted CPU flags containing ``bf16``, e.g.
    ``["amx_bf16", "avx512_bf16"]``; ``[]`` when none), from the first processor block of ``/proc/cpuinfo``.
    Where there is no ``/proc/cpuinfo`` (not Linux): ``platform.processor()`` as the model name and ``None``
    for what cannot be read (``bf16_flags`` included: unknown, not "none").

    ``cpuinfo`` (another file to read) and ``capability`` (instead of asking torch) are for tests."""
    path = Path(cpuinfo) if cpuinfo is not None else CPUINFO
    try:
        block = _first_processor_block(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        block = None
    capability = capability if capability is not None else torch_cpu_capability()
    if block is None:
        return {"vendor_id": None, "model_name": platform.processor() or None, "cpu_family": None, "model": None,
                "torch_cpu_capability": capability, "bf16_flags": None}
    flags = block.get("flags", block.get("Features"))  # x86, else ARM's name for the same line
    return {"vendor_id": block.get("vendor_id") or None,
            "model_name": block.get("model name") or platform.processor() or None,
            "cpu_family": _int_or_none(block.get("cpu family")),
            "model": _int_or_none(block.get("model")),
            "torch_cpu_capability": capability,
            "bf16_flags": None if flags is None else sorted({f for f in flags.split() if "bf16" in f})}


def describe(identity: dict | None = None) -> str:
    """One line: vendor, model name, family/model, torch kernel path, bfloat16 flags (a field that is
    ``None`` reads "not recorded")."""
    identity = cpu_identity() if identity is None else identity

    def shown(key):
        value = identity.get(key)
        return "not recorded" if value is None else value

    flags = identity.get("bf16_flags")
    flags = "not recorded" if flags is None else (" ".join(sorted(flags)) or "none")
    return (f"{shown('vendor_id')} {shown('model_name')}, family {shown('cpu_family')} model {shown('model')}, "
            f"torch kernel path {shown('torch_cpu_capability')}, bf16 flags: {flags}")


def _same(key: str, recorded, identity) -> bool:
    if key == "bf16_flags":
        return identity is not None and set(recorded) == set(identity)
    return recorded == identity


def compared_fields(recorded: dict) -> list[str]:
    """The fields of ``COMPARED`` that ``recorded`` (a machine.json) records, i.e. are present and not null."""
    return [key for key in COMPARED if recorded.get(key) is not None]


def differences(recorded: dict, identity: dict) -> list[str]:
    """The recorded fields on which ``identity`` differs, as ``"field (recorded there vs here)"``."""
    return [f"{key} ({recorded[key]!r} there vs {identity.get(key)!r} here)" for key in compared_fields(recorded)
            if not _same(key, recorded[key], identity.get(key))]


def matches(recorded: dict, identity: dict) -> bool:
    """Whether ``identity`` (``cpu_identity()``) is a machine of the kind ``recorded`` (a golden folder's
    ``machine.json``) describes: the same ``vendor_id``, ``cpu_family``, ``model``, ``torch_cpu_capability``
    and ``bf16_flags`` (compared as sets).

    A field that is null or missing in ``recorded`` was not recorded and is not compared: the AMD EPYC folder
    (``golden/official``) records only the vendor and the kernel path, so any AuthenticAMD machine on the
    AVX512 path matches it. A field recorded there but unknown here (``None`` in ``identity``) does not match.
    The model name is never compared (it is free text: "@ 2.80GHz", "exact model not recorded")."""
    return not differences(recorded, identity)


def _folders(golden: Path) -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(Path(golden).glob("*/machine.json")):
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(recorded, dict):
            found.append((path.parent, recorded))
    return found


def golden_folder_for(golden: str | Path, identity: dict | None = None) -> tuple[Path | None, str]:
    """The folder of ``golden`` (one of ``golden/*/`` with a ``machine.json``) made on a machine of this kind,
    or ``None``, and a sentence saying which and why (or that none matched, and the kinds there are). Where
    several match, the one that matched on more recorded fields wins (a folder that records family, model and
    flags says more than one that records only the vendor and kernel path)."""
    identity = cpu_identity() if identity is None else identity
    folders = _folders(Path(golden))
    here = describe(identity)
    if not folders:
        return None, f"no golden folder with a machine.json under {golden}; this machine: {here}"
    matching = [(len(compared_fields(recorded)), folder, recorded) for folder, recorded in folders
                if matches(recorded, identity)]
    if matching:
        _, folder, recorded = max(matching, key=lambda item: item[0])  # max keeps the first of a tie (by name)
        fields = compared_fields(recorded)
        unrecorded = [key for key in COMPARED if key not in fields]
        why = f"same {', '.join(fields)}" if fields else "it records nothing to compare"
        if unrecorded:
            why += f" ({', '.join(unrecorded)} not recorded there)"
        others = [f.name for _, f, _ in matching if f != folder]
        also = f"; also matching, on fewer recorded fields: {', '.join(others)}" if others else ""
        return folder, f"golden folder {folder.name!r} matches this machine ({here}): {why}{also}"
    kinds = "; ".join(f"{folder.name!r}: {describe(recorded)} (differs in {', '.join(differences(recorded, identity))})"
                      for folder, recorded in folders)
    return None, f"no golden folder matches this machine ({here}). Available kinds: {kinds}"


def nearest_golden_folder(golden: str | Path, identity: dict | None = None) -> tuple[Path | None, str]:
    """The matching folder where there is one, else the nearest: the same torch kernel path first, then the
    most recorded fields that agree (vendor, family, model, bf16 flags), then by name. With a sentence."""
    identity = cpu_identity() if identity is None else identity
    folder, sentence = golden_folder_for(golden, identity)
    if folder is not None:
        return folder, sentence
    folders = _folders(Path(golden))
    if not folders:
        return None, sentence

    def closeness(item):
        _, recorded = item
        same_path = recorded.get("torch_cpu_capability") == identity.get("torch_cpu_capability")
        agreeing = sum(_same(key, recorded[key], identity.get(key)) for key in compared_fields(recorded))
        return (same_path, agreeing)

    best = max(closeness(item) for item in folders)
    folder, recorded = next(item for item in folders if closeness(item) == best)
    agree = [key for key in compared_fields(recorded) if _same(key, recorded[key], identity.get(key))]
    return folder, (f"none matches; nearest golden folder {folder.name!r} ({describe(recorded)}): "
                    f"same {', '.join(agree) or 'nothing recorded'}")


def hardware_key() -> dict:
    """What a cache or resume-journal key records of the hardware: the torch kernel path, the CPU's vendor,
    family, model and bfloat16 flags, and the CUDA device's name when CUDA is available (else ``None``).
    Results (bfloat16 generations, losses) made on a machine with another key are not reused (SPEC 6)."""
    import torch  # lazy: evaluator.core stays torch-free at import

    identity = cpu_identity()
    return {"cpu": identity["torch_cpu_capability"], "vendor_id": identity["vendor_id"],
            "cpu_family": identity["cpu_family"], "model": identity["model"], "bf16_flags": identity["bf16_flags"],
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


# On a CPU with AMX, torch 2.13's bfloat16 flash-attention kernel packs its operands with AVX-512 code even when
# ATEN_CPU_CAPABILITY forces AVX2, and fails ("pack_vnni2 is only supported when avx512 is supported") on any
# sequence of 64 tokens or more. A real AVX2-only CPU has no AMX and never takes that branch. Where the forced path
# fails so, it runs with flash attention off (torch's math attention: other kernels, other rounding -- what
# forcing a path is for), in this process and, through a sitecustomize.py on PYTHONPATH, in every child.
# The sitecustomize.py: flash attention off once torch is imported, without importing it (a torch-free command
# must stay torch-free).
FLASH_OFF = """import importlib.abc, importlib.util, sys


class _FlashOffAfterTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("torch")
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.backends.cuda.enable_flash_sdp(False)  # also governs the CPU kernels

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _FlashOffAfterTorch())
"""
FLASH_PROBE = ("import torch, torch.nn.functional as F\n"
               "q = torch.randn(1, 4, 300, 32, dtype=torch.bfloat16)\n"
               "F.scaled_dot_product_attention(q, q, q, is_causal=True)\n")
FLASH_OFF_NOTE = "flash attention off (the bf16 flash kernel needs AVX-512 on this CPU under the forced path)"


def forced_path_environment(env: dict, scratch: Path) -> tuple[dict, str]:
    """``env`` as it is (and ""), or, where it forces a kernel path (``ATEN_CPU_CAPABILITY``) on which bfloat16
    flash attention fails on this CPU, ``env`` with flash attention off for every Python started with it (a
    sitecustomize.py written under ``scratch``) and a note that says so."""
    if not env.get("ATEN_CPU_CAPABILITY"):
        return env, ""
    if subprocess.run([sys.executable, "-c", FLASH_PROBE], env=env, capture_output=True).returncode == 0:
        return env, ""
    site = Path(scratch) / f"sitecustomize-{env['ATEN_CPU_CAPABILITY']}"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(FLASH_OFF)
    python_path = [p for p in (str(site), env.get("PYTHONPATH", "")) if p]
    return {**env, "PYTHONPATH": os.pathsep.join(python_path)}, FLASH_OFF_NOTE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    identity = cpu_identity()
    print(f"machine: {describe(identity)}")
    for golden in argv:
        print(golden_folder_for(golden, identity)[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
