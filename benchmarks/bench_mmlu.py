"""Wall time of MMLU (SPEC section 3): the reference path (open-instruct, one prompt at a time) against the
fast path (shared few-shot header's key/value cache once per subject, question suffixes batched).

Timed inside the process with ``time.perf_counter``; model loading and data reading are excluded.

    python benchmarks/bench_mmlu.py                      # golden/target, 3 subjects, --ntrain 5: ratio
    python benchmarks/bench_mmlu.py --all-subjects       # + every subject of data/mmlu, --ntrain 0, fast path

Defaults read ``../shared`` (relative to the project root); the script exits with a message where it is
absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GOLDEN_SUBJECTS = "abstract_algebra,anatomy,global_facts"


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=SHARED / "golden" / "target")
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "mmlu")
    parser.add_argument("--mmlu-subjects", "--subjects", dest="subjects", default=GOLDEN_SUBJECTS,
                        help="subjects of the ratio measurement (the name unlearn-eval uses; --subjects: the old one)")
    parser.add_argument("--ntrain", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16, help="fast path batch size")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--all-subjects", action="store_true",
                        help="also run every subject of --data with --ntrain 0 on the fast path and report the time")
    parser.add_argument("--skip-ratio", action="store_true", help="only the --all-subjects run")
    parser.add_argument("--out", type=Path, default=None, help="write the --all-subjects outputs here")
    args = parser.parse_args(argv)

    if not args.checkpoint.is_dir() or not args.data.is_dir():
        print(f"needs {args.checkpoint} and {args.data} (../shared absent?)", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from evaluator.model import mmlu
    from evaluator.model.engine import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_model(args.checkpoint, args.dtype)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"checkpoint {args.checkpoint}  dtype {args.dtype}  torch threads {torch.get_num_threads()}  "
          f"cpu {torch.backends.cpu.get_cpu_capability()}  load average {load:.1f}")

    if not args.skip_ratio:
        subjects = args.subjects.split(",")
        data = mmlu.load_mmlu(args.data, subjects, args.ntrain)
        questions = sum(len(d.test) for d in data)
        mmlu.run_mmlu(lm, data[:1], args.ntrain, 1, show_progress=False)  # warm-up, untimed
        reference, reference_s = timed(mmlu.run_mmlu, lm, data, args.ntrain, 1, show_progress=False)
        fast, fast_s = timed(mmlu.run_mmlu, lm, data, args.ntrain, args.batch_size, show_progress=False)
        worst = max(float(np.abs(reference.tables[s][list(mmlu.PROBABILITY_COLUMNS)].to_numpy()
                                 - fast.tables[s][list(mmlu.PROBABILITY_COLUMNS)].to_numpy()).max()) for s in subjects)
        flips = sum(int((reference.tables[s]["correct"] != fast.tables[s]["correct"]).sum()) for s in subjects)
        print(f"{len(subjects)} subjects, {questions} questions, --ntrain {args.ntrain}")
        print(f"reference (batch size 1): {reference_s:8.2f} s   average_acc {reference.average:.6f}")
        print(f"fast (batch size {args.batch_size:3}):     {fast_s:8.2f} s   average_acc {fast.average:.6f}   "
              f"{fast.stats.cached_questions} questions on {fast.stats.headers} cached headers, "
              f"{fast.stats.full_prompt_questions} full prompts")
        print(f"speed-up: {reference_s / fast_s:.1f}x   max |prob diff| {worst:.2e}   correctness flips {flips}")

    if args.all_subjects:
        data = mmlu.load_mmlu(args.data, None, 0)
        questions = sum(len(d.test) for d in data)
        run, seconds = timed(mmlu.run_mmlu, lm, data, 0, args.batch_size, out=args.out, show_progress=True)
        print(f"all {len(data)} subjects, {questions} questions, --ntrain 0, fast path: {seconds:.1f} s "
              f"({questions / seconds:.0f} questions/s)   average_acc {run.average:.6f}")
        for name, value in run.metrics["cat_acc"].items():
            print(f"  {name:32} {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
