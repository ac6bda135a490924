"""Time a cold build of the stub target (``unlearn-eval make-target``): tokenizer, training, self-check, save.

    python benchmarks/bench_target.py [--data data_stub] [--budget 180]

Builds into a temporary folder (the cache is neither used nor touched), prints the seconds and the
self-check figures. When the cache already holds a build of the same data and settings, also says whether
the fresh weights are bit-identical to it (the build is seeded and single-threaded, so on one machine
they should be). The load average is printed too: on a shared machine it explains slow runs. Exit code 1
when the build fails its self-check or takes longer than ``--budget`` seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    from evaluator.harness.cache import default_cache_dir
    from evaluator.harness.target import TargetCheckFailed, TargetSettings, build_hash, build_target

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data_stub"))
    parser.add_argument("--budget", type=float, default=180.0, help="seconds a cold build may take")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-target-") as scratch:
        started = time.perf_counter()
        try:
            build = build_target(args.data, Path(scratch) / "target", progress=False)
        except TargetCheckFailed as exc:
            print(f"FAILED: {exc}")
            return 1
        seconds = time.perf_counter() - started
        cached = default_cache_dir() / f"target-{build_hash(args.data, TargetSettings())[:16]}"
        identical = None
        if (cached / "model.safetensors").is_file():
            identical = _sha256(cached / "model.safetensors") == _sha256(build.path / "model.safetensors")
    print(f"cold build: {seconds:.1f} s (train {build.record['seconds']['train']} s, "
          f"self-check {build.record['seconds']['check']} s), budget {args.budget:.0f} s, "
          f"load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after on {os.cpu_count()} cores")
    if identical is not None:
        print(f"weights bit-identical to the cached build {cached}: {'yes' if identical else 'NO'}")
    return 0 if seconds <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
