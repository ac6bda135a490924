"""How an evaluation folder was made: ``run.json`` beside ``evaluation_results.jsonl`` (issue 14).

``unlearn-eval evaluate`` (``evaluator.model.evaluate``) writes it once the official files are written:
the mode and its settings, the checkpoint and its fingerprint (the resume journal's), the data files read
and their SHA-256, the versions of the packages that make or score the numbers, the machine (CPU kernel
path and identity, GPU model), the number of processes, the wall time, the project's git revision where
there is one, and when it was written. It is an extra file: the official files are unchanged.

This module is torch-free: it builds the parts that need no model (versions, git revision, data
fingerprint), writes and reads the file, and says in lines what it records (``describe_run``) and where
two folders were made differently enough that their scores differ by rounding, not by the models
(``run_differences``: kernel path, machine, GPU, mode, dtype; SPEC 6).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Iterable

from evaluator.core.atomic import write_json
from evaluator.core.machine import describe

RUN_FILE = "run.json"
FORMAT = 1
PACKAGES = ("torch", "transformers", "rouge_score", "scikit-learn", "pandas")
# The CPU identity fields that decide how bfloat16 rounds (evaluator.core.machine.COMPARED, less the kernel
# path, which is named on its own).
MACHINE_FIELDS = ("vendor_id", "cpu_family", "model", "bf16_flags")


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """The installed version of each package (``importlib.metadata``); ``None`` where it is not installed."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision(package: str | Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the checkout holding this project (the folder above ``evaluator/``), or
    ``None``: not a git checkout (an installed wheel), the package not at the checkout's top (a site-packages
    inside some other repository), git missing or failing. Never raises."""
    package = Path(package) if package is not None else Path(__file__).resolve().parents[1]
    try:
        done = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=package.parent,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.split()
    if done.returncode != 0 or len(lines) != 2:
        return None
    top, revision = lines
    try:
        if Path(top).resolve() != package.parent.resolve():
            return None
    except OSError:
        return None
    return revision


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_fingerprint(paths: Iterable[str | Path]) -> dict:
    """The data files read, in the order read: ``{"sha256": <hex>, "files": [{"path", "bytes", "sha256"}]}``.
    The overall SHA-256 is over each file's name and content SHA-256, one line each (a renamed folder keeps
    it; a changed or renamed file changes it)."""
    files = []
    overall = hashlib.sha256()
    for path in paths:
        path = Path(path)
        sha = file_sha256(path)
        files.append({"path": str(path), "bytes": path.stat().st_size, "sha256": sha})
        overall.update(f"{path.name}\t{sha}\n".encode("utf-8"))
    return {"sha256": overall.hexdigest(), "files": files}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_run(folder: str | Path, run: dict) -> Path:
    """``folder/run.json``, atomically."""
    path = Path(folder) / RUN_FILE
    write_json(path, run)
    return path


def read_run(folder: str | Path) -> dict | None:
    """``folder/run.json`` as a dict; ``None`` where there is none, or it is not a JSON object (a folder the
    official script made, or one made before run.json existed)."""
    try:
        run = json.loads((Path(folder) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return run if isinstance(run, dict) else None


def _shown(value) -> str:
    return "not recorded" if value is None else str(value)


def _short(fingerprint) -> str:
    if isinstance(fingerprint, dict):
        fingerprint = fingerprint.get("sha256")
    if not isinstance(fingerprint, str):
        return "not recorded"
    return fingerprint[:23] if fingerprint.startswith("sha256:") else f"sha256:{fingerprint[:16]}"


def kernel_path(run: dict) -> str | None:
    machine = run.get("machine")
    return machine.get("torch_cpu_capability") if isinstance(machine, dict) else None


def describe_run(run: dict) -> list[str]:
    """What ``run`` (a run.json) records, one line per subject; a field it lacks reads "not recorded"."""
    settings = [f"{_shown(run.get('mode'))} mode", f"dtype {_shown(run.get('dtype'))}",
                f"batch size {_shown(run.get('batch_size'))}", f"max_new_tokens {_shown(run.get('max_new_tokens'))}",
                f"recheck margin {_shown(run.get('recheck_margin'))}"]
    data = run.get("data_fingerprint")
    files = len(data.get("files", [])) if isinstance(data, dict) else 0
    machine = run.get("machine")
    versions = run.get("versions") if isinstance(run.get("versions"), dict) else {}
    wall = run.get("wall_seconds")
    return [
        "settings: " + ", ".join(settings),
        f"checkpoint: {_shown(run.get('checkpoint'))}"
        + (f" (Hugging Face {run['checkpoint_hub_id']})" if run.get("checkpoint_hub_id") else "")
        + f" (fingerprint {_short(run.get('checkpoint_fingerprint'))})",
        f"data: {_shown(run.get('data'))}" + (f", MIA {run['mia']}" if run.get("mia") else "")
        + f" ({files} files, {_short(data)})",
        f"machine: {describe(machine) if isinstance(machine, dict) else 'not recorded'}; "
        f"GPU: {run.get('gpu') or 'none'}",
        f"processes: {_shown(run.get('processes'))}; wall time: "
        + (f"{wall:.1f} s" if isinstance(wall, (int, float)) else "not recorded"),
        "versions: " + (", ".join(f"{name} {_shown(v)}" for name, v in versions.items()) or "not recorded"),
        f"project revision: {_shown(run.get('git_revision'))}; written {_shown(run.get('written_utc'))}",
    ]


def run_differences(a: dict, b: dict) -> list[str]:
    """Where two runs were made so that bfloat16 (or another dtype, or another mode) rounds differently:
    the CPU kernel path, the machine (vendor, family, model, bf16 flags), the GPU, the mode and the dtype.
    Each as ``"<what>: <a> vs <b>"``; a field either run does not record is not compared."""
    found = []

    def compare(label, left, right):
        if left is not None and right is not None and left != right:
            found.append(f"{label}: {left} vs {right}")

    compare("kernel path", kernel_path(a), kernel_path(b))
    machine_a, machine_b = a.get("machine"), b.get("machine")
    if isinstance(machine_a, dict) and isinstance(machine_b, dict):
        for key in MACHINE_FIELDS:
            left, right = machine_a.get(key), machine_b.get(key)
            if key == "bf16_flags" and left is not None and right is not None:
                left, right = " ".join(sorted(left)) or "none", " ".join(sorted(right)) or "none"
            compare(f"machine {key}", left, right)
    gpu_a, gpu_b = a.get("gpu", "absent"), b.get("gpu", "absent")  # None: no GPU (recorded as such)
    if "absent" not in (gpu_a, gpu_b) and gpu_a != gpu_b:
        found.append(f"GPU: {gpu_a or 'none'} vs {gpu_b or 'none'}")
    compare("mode", a.get("mode"), b.get("mode"))
    compare("dtype", a.get("dtype"), b.get("dtype"))
    return found
