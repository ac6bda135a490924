"""Every unlearning method on every benchmark target, several seeds each, scored by the project's evaluator
(official scoring, fast mode): does the default carry to models it was not tuned on?

    python benchmarks/bench_targets.py                                   # every target make-target builds
    python benchmarks/bench_targets.py --targets stub-small,pretrained-small --seeds 0,1,2 --json out.json
    python benchmarks/bench_targets.py --target mine=/path/to/target_folder   # a folder make-target wrote
    python benchmarks/bench_targets.py --targets pretrained-olmo-1b --seeds 0   # on a GPU: OLMo-1B's shape builds there

Each method runs at its own defaults (submission/methods.py); those were chosen elsewhere -- capped_gd's on
the targets in TUNED_ON (marked *tuned* below), the other methods' on the organizers' tiny golden model by
benchmarks/bench_methods.py's grid -- so every other target is held out for every method. The default
(capped_gd) also runs with ``--calibration-docs`` (the target's ``calibration/`` documents: of the members'
kind, never seen, disjoint from the scored nonmembers) as ``capped_gd+cal``; where the target's MIA members are
the documents of some tasks only (the lume variants: Task3, as in the public release), it runs a third time,
calibrated and told so (``mia_tasks``, read off the target's member file: ``scored_tasks``), as
``capped_gd+cal+tasks``.

Per target: the before scores (the target itself), then per method the mean and spread over seeds of the
final score, task aggregate, MIA score, MMLU as a share of before. The bars the default is held to (issue
13): final >= 0.80, MIA >= 0.70, task aggregate >= 0.80, MMLU >= 90% of before, and a lead of >= 0.05 over
the best other method; where the nonmembers are of a kind unlike the forget documents (the
``foreign-nonmembers`` and ``lume`` variants: a ``lume`` target learned nothing but its subset, so the release's
nonmembers are of a kind it never saw), only the calibrated run is held to them. A ``lume-pretrained`` target
learned the release's other documents first: both runs are held to the bars there. A ``--json`` file records
the machine it was measured on (scores move with the CPU); the table ends by saying which targets were
measured where.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Where capped_gd's defaults were chosen: the ceiling and rate on stub-small (issue 11), the run extension on
# its validation split, the width scaling on stub-medium, the attack-driven extension on
# foreign-nonmembers-small (issue 13); the rest is held out.
TUNED_ON = {"stub-small", "stub-small (validation)", "stub-medium", "foreign-nonmembers-small", "pretrained-medium"}
BARS = {"final": 0.80, "mia": 0.70, "task_aggregate": 0.80, "mmlu_ratio": 0.90}
LEAD = 0.05
DEFAULT_TARGETS = ("stub-small", "stub-medium", "pretrained-small", "pretrained-medium", "foreign-nonmembers-small",
                   "foreign-nonmembers-medium", "lume-small", "lume-medium", "lume-pretrained-small",
                   "lume-pretrained-medium")
CALIBRATED = "capped_gd+cal"
# The calibrated run told which tasks the MIA scores (``mia_tasks``): only where the target's members are the
# documents of some tasks only (``scored_tasks``: the lume variants, Task3 as in the release).
CALIBRATED_TASKS = "capped_gd+cal+tasks"
DEFAULT_RUNS = ("capped_gd", CALIBRATED, CALIBRATED_TASKS)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                        help="names of targets make-target builds: <variant>-<size> (built or reused from the cache)")
    parser.add_argument("--target", action="append", default=[], metavar="NAME=FOLDER",
                        help="a target folder make-target wrote (repeatable; replaces --targets)")
    parser.add_argument("--lume-release", default=str(ROOT.parent / "shared" / "data" / "semeval25"),
                        help="the public release, for the lume variant")
    parser.add_argument("--split", default="train", choices=("train", "validation"),
                        help="the split handed to the methods and scored (validation: its own MIA documents)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=None, help="comma-separated (default: all, plus capped_gd+cal)")
    parser.add_argument("--extra", default="{}", help="JSON options given to every run")
    parser.add_argument("--target-set", default="{}",
                        help='JSON settings for the targets built here (make-target --set), e.g. {"epochs": 100}')
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", default=None, help="folder for checkpoints and results (default: temporary)")
    parser.add_argument("--json", default=None, help="write every run's numbers here (rewritten after each run)")
    parser.add_argument("--from-json", nargs="+", default=None, metavar="FILE",
                        help="run nothing: print the table and the verdicts of earlier --json files, merged (a later "
                             "file's runs of a method on a target replace an earlier file's)")
    return parser.parse_args(argv)


def build_named_target(name: str, args) -> Path:
    """``<variant>-<size>`` built (or reused) by the harness's make-target."""
    from evaluator.harness.corpora import LUME_VARIANTS, SIZES
    from evaluator.harness.target import TargetSettings, build_target

    # The longest size name that ends the name ("olmo-1b" holds a hyphen); none: for_variant names the problem.
    variant, size = next(((name[: -len(size) - 1], size) for size in sorted(SIZES, key=len, reverse=True)
                          if name.endswith(f"-{size}")), (name, ""))
    settings = TargetSettings.for_variant(variant, size, **TargetSettings.check_overrides(json.loads(args.target_set)))
    data = args.lume_release if variant in LUME_VARIANTS else ROOT / "data_stub"
    return build_target(data, settings=settings, progress=False, log=lambda line: print(line, flush=True)).path


def target_inputs(folder: Path, split: str = "train") -> dict:
    """Where a target folder's data, MIA documents, calibration documents and MMLU are (make-target writes
    mia/ and calibration/ beside every model, and data/ beside the lume variant's)."""
    record = json.loads((folder / "target-build.json").read_text(encoding="utf-8"))
    data = folder / "data" if (folder / "data").is_dir() else Path(record["data"])
    mia = folder / "mia" if (folder / "mia" / "member.jsonl").is_file() else data / "mia_data"
    mia = mia / "validation" if split == "validation" else mia
    inputs = {"record": record, "data": data, "split": split, "mia": mia,
              "calibration": folder / "calibration" if (folder / "calibration").is_dir() else None,
              "mmlu": data / "mmlu" if (data / "mmlu").is_dir() else None,
              "variant": record.get("variant") or record.get("settings", {}).get("variant", "stub")}
    inputs["mia_tasks"] = scored_tasks(inputs)
    return inputs


def scored_tasks(inputs: dict) -> str | None:
    """The tasks of the forget documents the target's MIA members are (a member's id is a forget row's id or
    the stem of its ids), comma-separated; None when they are of every task. What a participant reads off the
    public release (its 150 members are Task3 forget documents) and packs as ``mia_tasks``."""
    from evaluator.core.data import load_mia, load_split

    if not (inputs["mia"] / "member.jsonl").is_file():
        return None
    forget = load_split(inputs["data"], "forget", inputs["split"])
    stems = {str(i): task for i, task in zip(forget["id"], forget["task"])}
    stems.update({str(i)[:-3]: task for i, task in zip(forget["id"], forget["task"])})
    tasks = sorted({stems[m] for m in load_mia(inputs["mia"])["member"]["id"] if m in stems})
    return ",".join(tasks) if tasks and set(tasks) != set(forget["task"]) else None


def skip_reason(method: str, inputs: dict) -> str | None:
    """Why ``method`` cannot run on this target (None: it can): the calibrated runs need calibration documents,
    the one told the scored tasks needs MIA members of some tasks only."""
    if method in (CALIBRATED, CALIBRATED_TASKS) and inputs["calibration"] is None:
        return "no calibration/ folder"
    if method == CALIBRATED_TASKS and not inputs["mia_tasks"]:
        return "the MIA members are of every task"
    return None


def materialize(inputs: dict, work: Path) -> Path:
    """The forget/retain folders a submission is handed."""
    from evaluator.core.data import load_split

    folder = work / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("forget", "retain"):
        load_split(inputs["data"], name, inputs["split"]).to_json(folder / f"{name}.jsonl", orient="records",
                                                                  lines=True, force_ascii=False)
    return folder


def score(checkpoint: Path, inputs: dict, out: Path) -> dict:
    from evaluator.model.evaluate import EvaluationSettings, evaluate
    from evaluator.model.mmlu import InlineMMLU

    runner = InlineMMLU(inputs["mmlu"], out / "mmlu", show_progress=False) if inputs["mmlu"] else None
    result = evaluate(checkpoint, inputs["data"], out, split=inputs["split"], mia=inputs["mia"],
                      settings=EvaluationSettings(mode="fast", show_progress=False), mmlu_runner=runner,
                      **({} if runner else {"mmlu_average": 0.0}))
    return {"task_aggregate": result.harmonic_mean_task_aggregate, "mia": result.mia_final_score,
            "mia_auc": result.mia_loss_acc, "mmlu": result.mmlu_average, "final": result.aggregate_score}


def gpu_memory() -> dict:
    """The GPU's peak memory since the last reset (torch's allocator: tensors, not the CUDA context), if any."""
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2), "gpu": torch.cuda.get_device_name()}


def summarize(runs: list[dict], before: dict) -> dict:
    out = {}
    for key in ("final", "task_aggregate", "mia", "mmlu"):
        values = [r[key] for r in runs]
        out[key] = statistics.fmean(values)
        out[f"{key}_sd"] = statistics.pstdev(values) if len(values) > 1 else 0.0
    out["mmlu_ratio"] = out["mmlu"] / before["mmlu"] if before["mmlu"] else float("nan")
    out["seeds"] = len(runs)
    return out


def method_summaries(entry: dict) -> dict[str, dict]:
    """A target's runs summarized per method, in the order the methods ran."""
    return {m: summarize([r for r in entry["runs"] if r["method"] == m], entry["before"])
            for m in dict.fromkeys(r["method"] for r in entry["runs"])}


def merge_reports(reports: list[dict]) -> dict:
    """One report from several runs' files: per target, a later file's runs of a method replace an earlier
    file's runs of that method (a re-run after the method's defaults changed replaces the old figures). Each
    run keeps its file's ``machine`` ("not recorded" for files written before it was recorded)."""
    merged = {"seeds": None, "targets": {}}
    for report in reports:
        merged["seeds"] = merged["seeds"] or report["seeds"]
        for name, entry in report["targets"].items():
            target = merged["targets"].setdefault(name, {**entry, "runs": []})
            methods = {r["method"] for r in entry["runs"]}
            machine = report.get("machine", "not recorded")  # files written before the machine was recorded
            runs = [{"machine": machine, **r} for r in entry["runs"]]
            target["runs"] = [r for r in target["runs"] if r["method"] not in methods] + runs
    for name, target in merged["targets"].items():
        target["summary"] = method_summaries(target)
        target["held_out"] = name not in TUNED_ON  # as TUNED_ON says now, whatever the run said then
    return merged


def verdict(name: str, variant: str, rows: dict[str, dict]) -> list[str]:
    """The default's bars on this target (the calibrated run's only, where nonmembers are of another kind)."""
    lines = []
    held = [CALIBRATED, CALIBRATED_TASKS] if variant in ("foreign-nonmembers", "lume") else list(DEFAULT_RUNS)
    others = [row["final"] for method, row in rows.items() if method not in DEFAULT_RUNS]
    best_other = max(others) if others else None
    for method in held:
        if method not in rows:
            continue
        row = rows[method]
        misses = [f"{key} {row[key]:.3f} < {bar}" for key, bar in BARS.items() if not row[key] >= bar]
        if best_other is not None and row["final"] - best_other < LEAD:
            misses.append(f"lead {row['final'] - best_other:+.3f} < {LEAD}")
        lines.append(f"{name}: {method} {'meets every bar' if not misses else 'misses: ' + '; '.join(misses)}")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.from_json:
        print_table(merge_reports([json.loads(Path(f).read_text(encoding="utf-8")) for f in args.from_json]))
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from evaluator.core.machine import describe as describe_machine
    from submission import DEFAULT_METHOD, METHODS, unlearn

    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",") if args.methods else [*METHODS, CALIBRATED, CALIBRATED_TASKS]
    extra = json.loads(args.extra)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_targets."))
    work.mkdir(parents=True, exist_ok=True)
    targets = dict(t.split("=", 1) for t in args.target) if args.target else \
        {name: None for name in args.targets.split(",")}
    print(f"methods={','.join(methods)} seeds={seeds} extra={extra} targets={','.join(targets)}; each method at "
          f"its own defaults; tuned on: {', '.join(sorted(TUNED_ON))} (capped_gd); the rest held out", flush=True)
    # Scores move with the CPU (bfloat16 rounding, training): every file says where it was measured.
    report = {"seeds": seeds, "extra": extra, "machine": describe_machine(), "targets": {}}
    for name, folder in targets.items():
        folder = Path(folder) if folder else build_named_target(name, args)
        inputs = target_inputs(folder, args.split)
        name = name if args.split == "train" else f"{name} ({args.split})"
        skipped = {method: why for method in methods if (why := skip_reason(method, inputs))}
        for method, why in skipped.items():
            print(f"{name}: {why}, {method} skipped", flush=True)
        handed = materialize(inputs, work / name)
        before = score(folder, inputs, work / name / "before")
        entry = report["targets"][name] = {"folder": str(folder), "variant": inputs["variant"], "before": before,
                                           "runs": [], "held_out": name not in TUNED_ON,
                                           "mia_tasks": inputs["mia_tasks"]}
        print(f"{name} ({folder}): before {json.dumps(before)}", flush=True)
        entry["build_seconds"] = inputs["record"].get("seconds")
        for method in methods:
            if method in skipped:
                continue
            for seed in seeds:
                options = {"method": DEFAULT_METHOD if method in (CALIBRATED, CALIBRATED_TASKS) else method,
                           "seed": seed, "verbose": False, **extra}
                if method in (CALIBRATED, CALIBRATED_TASKS):
                    options["calibration_docs"] = str(inputs["calibration"])
                if method == CALIBRATED_TASKS:  # as a participant packs it from the release: Task3
                    options["mia_tasks"] = inputs["mia_tasks"]
                run_dir = work / name / f"{method}-seed{seed}"
                shutil.rmtree(run_dir, ignore_errors=True)
                if torch.cuda.is_available():
                    torch.cuda.reset_peak_memory_stats()
                began = time.monotonic()
                summary = unlearn(str(folder), str(run_dir / "model"), str(handed), str(handed), **options)
                seconds = time.monotonic() - began
                run = {"method": method, "seed": seed, "seconds": round(seconds, 1),
                       "ceiling": summary.get("forget_nll_ceiling"), **gpu_memory()}
                if options.get("mia_tasks"):
                    run["mia_tasks"] = options["mia_tasks"]
                began = time.monotonic()
                run.update(score(run_dir / "model", inputs, run_dir / "eval"))
                run["eval_seconds"] = round(time.monotonic() - began, 1)
                entry["runs"].append(run)
                print(f"{name} {json.dumps(run)}", flush=True)
                shutil.rmtree(run_dir / "model", ignore_errors=True)
                if args.json:
                    Path(args.json).write_text(json.dumps(report, indent=1))
        entry["summary"] = method_summaries(entry)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
    print_table(report)
    return 0


def print_table(report: dict) -> None:
    print(f"\nMean over seeds {report['seeds']} (± population sd); MMLU as a share of before; evaluator fast mode")
    print("| target | held out | method | final | task agg | MIA | MMLU / before |")
    print("|---|---|---|---|---|---|---|")
    verdicts = []
    for name, entry in report["targets"].items():
        rows = entry.get("summary", {})
        for method, row in sorted(rows.items(), key=lambda kv: -kv[1]["final"]):
            # A run told which tasks the attack scores says so (older result files have no such runs).
            tasks = sorted({r["mia_tasks"] for r in entry["runs"] if r["method"] == method and r.get("mia_tasks")})
            shown = f"{method} (mia_tasks {', '.join(tasks)})" if tasks else method
            print(f"| {name} | {'yes' if entry['held_out'] else 'tuned'} | {shown} | {row['final']:.3f} ± "
                  f"{row['final_sd']:.3f} | {row['task_aggregate']:.3f} | {row['mia']:.3f} | {row['mmlu_ratio']:.3f} |")
        verdicts += verdict(name, entry["variant"], rows)
    costs = [(name, method, runs) for name, entry in report["targets"].items()
             for method in dict.fromkeys(r["method"] for r in entry["runs"])
             if (runs := [r for r in entry["runs"] if r["method"] == method and "peak_gpu_gb" in r])]
    if costs:
        print("\n| target | method | unlearn s | evaluate s | peak GPU GiB (unlearn) |\n|---|---|---|---|---|")
        for name, method, runs in costs:
            print(f"| {name} | {method} | {statistics.fmean(r['seconds'] for r in runs):.0f} | "
                  f"{statistics.fmean(r.get('eval_seconds', float('nan')) for r in runs):.0f} | "
                  f"{max(r['peak_gpu_gb'] for r in runs):.1f} |")
    print()
    for line in verdicts:
        print(line)
    machines: dict[str, list[str]] = {}
    for name, entry in report["targets"].items():
        for machine in dict.fromkeys(r.get("machine", report.get("machine", "not recorded")) for r in entry["runs"]):
            machines.setdefault(machine, []).append(name)
    print("\nmeasured on:")
    for machine, names in machines.items():
        print(f"  {machine}: {', '.join(names)}")


if __name__ == "__main__":
    sys.exit(main())
