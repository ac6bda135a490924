"""The CI gate's margin: README's first command (the dry-run of the default submission on the stub), over
several seeds and CPU kernel paths, against every threshold of ``ci/thresholds.toml``.

    python benchmarks/bench_ci_margin.py [--seeds 0 1 2] [--paths native avx2] [--out runs/ci-margin]

For each kernel path (``native``: as the machine runs; ``avx2``: ``ATEN_CPU_CAPABILITY=avx2``, bfloat16 and
float32 kernels of another machine) the target is built and scored *on that path* (a cache folder of its
own under ``--out``), then the dry-run runs once per seed (``--submission-kwargs '{"seed": N}'``). Prints one
row per run (final, task aggregate, MIA score, MMLU before/after, the relative gate's threshold), then per
threshold the lowest value over all runs and its margin, and the thresholds this table supports (lowest
value minus the required margin, rounded down to 0.01). Exit code 1 when a run fails or a margin is below
``--margin`` (default 0.03, the margin issue "Green on every machine" asks for).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# What each threshold key is checked against, from a dry-run's summary.json "after" figures.
FIGURES = {"min_final": "final", "min_task_aggregate": "task_aggregate", "min_mia": "mia_score", "min_mmlu": "mmlu"}


def path_environment(path: str, cache: Path, scratch: Path) -> tuple[dict, str]:
    """The environment of one kernel path, and a note ("" or how the path had to be adapted: on a CPU with AMX
    the forced AVX2 path runs with flash attention off, machine.forced_path_environment)."""
    from evaluator.core.machine import forced_path_environment

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "LUME_HARNESS_CACHE": str(cache)}
    env.pop("ATEN_CPU_CAPABILITY", None)
    if path == "native":
        return env, ""
    return forced_path_environment({**env, "ATEN_CPU_CAPABILITY": path}, scratch)


def run_one(path: str, seed: int, out: Path, cache: Path) -> dict:
    env, note = path_environment(path, cache, out.parent)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "evaluator.cli", "dry-run", "--out", str(out),
                           "--submission-kwargs", json.dumps({"seed": seed})],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    summary_file = out / "summary.json"
    if not summary_file.is_file():
        raise SystemExit(f"{path} seed {seed}: dry-run wrote no summary (exit {done.returncode}):\n"
                         f"{done.stderr[-3000:]}")
    summary = json.loads(summary_file.read_text())
    after, before = summary["after"] or {}, summary["before"] or {}
    relative = next(g for g in summary["gates"]["gates"] if g["gate"] == "relative")
    return {"path": path, "kernel": _kernel(env), "note": note, "seed": seed, "exit": done.returncode,
            "verdict": summary["verdict"], "seconds": round(time.monotonic() - started, 1),
            "final": after.get("final"), "task_aggregate": after.get("task_aggregate"),
            "mia_score": after.get("mia_score"), "mmlu": after.get("mmlu"), "mmlu_before": before.get("mmlu"),
            "relative_gate": relative["threshold"]}


def _kernel(env: dict) -> str:
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                           env=env, capture_output=True, text=True)
    return probe.stdout.strip() or "?"


def margins(runs: list[dict], thresholds: dict) -> list[tuple[str, float, float, float]]:
    """(name, lowest value, threshold, margin) per threshold; the gates as value minus gate."""
    rows = []
    for key, figure in FIGURES.items():
        if key in thresholds:
            low = min(r[figure] for r in runs)
            rows.append((key, low, thresholds[key], low - thresholds[key]))
    gates = thresholds.get("gate", [])
    if "absolute" in gates:
        from evaluator.core.gate import MMLU_GATE_7B

        low = min(r["mmlu"] for r in runs)
        rows.append(("gate absolute (MMLU)", low, MMLU_GATE_7B, low - MMLU_GATE_7B))
    if "relative" in gates:
        worst = min(runs, key=lambda r: r["mmlu"] - r["relative_gate"])
        rows.append(("gate relative (MMLU - 75% of before)", worst["mmlu"], worst["relative_gate"],
                     worst["mmlu"] - worst["relative_gate"]))
    return rows


def main(argv=None) -> int:
    from evaluator.core.machine import cpu_identity, describe

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--paths", nargs="+", default=["native", "avx2"],
                        help="kernel paths: native, or a value of ATEN_CPU_CAPABILITY (avx2, default)")
    parser.add_argument("--thresholds", default=str(ROOT / "ci" / "thresholds.toml"))
    parser.add_argument("--margin", type=float, default=0.03)
    parser.add_argument("--out", default=str(ROOT / "runs" / "ci-margin"))
    parser.add_argument("--json", help="also write the runs and margins here")
    args = parser.parse_args(argv)

    thresholds = tomllib.loads(Path(args.thresholds).read_text())
    out = Path(args.out)
    print(f"machine: {describe(cpu_identity())}")
    runs = []
    for path in args.paths:
        for seed in args.seeds:
            run = run_one(path, seed, out / f"{path}-seed{seed}", out / f"cache-{path}")
            runs.append(run)
            print(f"{run['path']:>6} ({run['kernel']:>7}) seed {seed}: exit {run['exit']} {run['verdict']:<11} "
                  f"final {run['final']:.4f}  task {run['task_aggregate']:.4f}  MIA {run['mia_score']:.4f}  "
                  f"MMLU {run['mmlu_before']:.3f} -> {run['mmlu']:.3f} (relative gate {run['relative_gate']:.4f})  "
                  f"{run['seconds']:.0f} s" + (f"  [{run['note']}]" if run["note"] else ""), flush=True)

    table = margins(runs, thresholds)
    print(f"\nover {len(runs)} runs ({len(args.seeds)} seeds x paths {', '.join(args.paths)}); "
          f"thresholds from {args.thresholds}; required margin {args.margin}")
    print(f"{'threshold':40} {'lowest':>8} {'limit':>8} {'margin':>8}")
    for name, low, limit, margin in table:
        flag = "" if margin >= args.margin else "  < required margin"
        print(f"{name:40} {low:8.4f} {limit:8.4f} {margin:+8.4f}{flag}")
    supported = {key: math.floor((min(r[figure] for r in runs) - args.margin) * 100) / 100
                 for key, figure in FIGURES.items()}
    print("thresholds this table supports (lowest - margin, rounded down): "
          + ", ".join(f"{k} = {v:.2f}" for k, v in supported.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "margins": table, "supported": supported}, indent=1))
    failed = [r for r in runs if r["exit"] != 0] or [m for m in table if m[3] < args.margin]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
