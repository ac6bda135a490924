"""Time the bootstrap of an evaluation folder: reading and scoring the rows once, then N resamples.

    python benchmarks/bench_bootstrap.py [FOLDER ...] [--resamples 1000] [--budget 10] [--full-size]

Default folders: the golden official results (``../shared/golden/official/{target,unlearned}``). With
``--full-size`` also a synthetic folder of the challenge's size (about 250 forget and 280 retain rows,
150 member and 150 nonmember documents), timed from its per-row values. Prints the seconds of each
step and the load average (on a shared machine it explains slow runs). Exit code 1 when the resamples
of a folder take longer than ``--budget`` seconds, 2 when there is nothing to time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
GOLDEN = ROOT.parent / "shared" / "golden" / "official"


def full_size_values():
    import numpy as np

    from evaluator.analysis.bootstrap import RowValues

    rng = np.random.default_rng(0)
    strata = {}
    for split, rows in (("forget", 250), ("retain", 280)):
        for task in ("Task1", "Task2", "Task3"):
            for kind, share in (("sc", 0.5), ("qa", 0.5)):
                n = int(rows / 3 * share)
                values = rng.random(n) if kind == "sc" else (rng.random(n) < 0.5).astype(float)
                strata[(split, task, kind)] = (np.array([f"{split}{task}{i}{kind}0" for i in range(n)]), values)
    mia = {name: (np.array([f"{name}{i}" for i in range(150)]), -rng.normal(2, 0.5, 150))
           for name in ("member", "nonmember")}
    return RowValues(strata, mia, {}, None, 0.45)


def main(argv=None) -> int:
    from evaluator.analysis.bootstrap import RowValues, bootstrap

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds the resamples of one folder may take")
    parser.add_argument("--full-size", action="store_true", help="also a synthetic folder of the challenge's size")
    args = parser.parse_args(argv)

    folders = args.folders or ([GOLDEN / "target", GOLDEN / "unlearned"] if GOLDEN.is_dir() else [])
    if not folders and not args.full_size:
        print(f"nothing to time: no folder given and no golden results at {GOLDEN} (try --full-size)")
        return 2
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.resamples} resamples, "
          f"seed {args.seed}")
    status = 0
    jobs = [(str(f), lambda f=f: RowValues.from_directory(f)) for f in folders]
    if args.full_size:
        jobs.append(("synthetic full size (250 forget, 280 retain rows, 150+150 documents)", full_size_values))
    for name, load in jobs:
        start = time.perf_counter()
        values = load()
        loaded = time.perf_counter()
        result = bootstrap(values, args.resamples, args.seed)
        done = time.perf_counter()
        rows = sum(len(v) for _, v in values.strata.values())
        lo, hi = result.ci("final") if "final" in result.low else result.ci("task_aggregate")
        print(f"{name}: {rows} rows; read and score {loaded - start:.2f} s; {args.resamples} resamples "
              f"{done - loaded:.2f} s; final 95% CI [{lo:.4f}, {hi:.4f}]")
        if done - loaded > args.budget:
            print(f"  over the budget of {args.budget} s")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
