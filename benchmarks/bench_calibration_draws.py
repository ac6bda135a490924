"""How far a target's calibration documents, and its scored nonmembers, sit from the level of the whole kind:
is the gap between them (issue 13: the calibrated default landing short of the scored nonmembers) sampling
noise, or a bias in how the documents are made?

    python benchmarks/bench_calibration_draws.py --target ~/.cache/lume-harness/target-pretrained-small-...
    python benchmarks/bench_calibration_draws.py --target DIR --draws 6 --json out.json

For a ``stub`` or ``pretrained`` target (make-target): the median per-token loss, on the target model, of
its scored nonmembers (12 on the stub's data), of its shipped calibration documents (8 per task), and of
``--draws`` fresh draws made the way the shipped one was (corpora.stub_calibration, later generator seeds,
disjoint from everything the target holds and from one another), then of all the fresh draws pooled.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SEED_STRIDE = 1000  # generator seeds between two fresh draws' first seeds (a draw takes a few seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="a folder make-target wrote (stub or pretrained variant)")
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evaluator.core.atomic import write_text_atomic
    from evaluator.harness import corpora
    from evaluator.harness.target import TargetSettings, plan_target
    from submission.calibration import document_losses

    torch.set_num_threads(1)
    folder = Path(args.target).expanduser()
    record = json.loads((folder / "target-build.json").read_text(encoding="utf-8"))
    settings = TargetSettings(**record["settings"])
    if settings.variant not in ("stub", "pretrained"):
        sys.exit(f"{folder}: a {settings.variant} target; its calibration documents are not stub draws")
    plan = plan_target(record["data"], settings)  # the build's own plan: its documents, and all they avoid
    shipped = plan.documents.calibration

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def median(documents: list[str]) -> tuple[float, list[float]]:
        losses = document_losses(model, tokenizer, documents, "cpu")
        return statistics.median(losses), losses

    def read(path: Path) -> list[str]:
        return [json.loads(line)["document"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    report = {"target": str(folder), "variant": settings.variant}
    scored = read(folder / "mia" / "nonmember.jsonl")
    report["scored_nonmembers"], _ = median(scored)
    on_disk = read(folder / "calibration" / "nonmember.jsonl")
    assert on_disk == [r["document"] for r in shipped], "the planned draw differs from the target's"
    report["shipped_calibration"], _ = median(on_disk)
    pooled, report["fresh_draws"] = [], []
    for k in range(1, args.draws + 1):
        draw = corpora.stub_calibration(plan.seen, first_seed=corpora.CALIBRATION_SEED + k * SEED_STRIDE)
        level, losses = median([r["document"] for r in draw])
        report["fresh_draws"].append(level)
        pooled += losses
    report["pooled"] = statistics.median(pooled)
    report["pooled_documents"] = len(pooled)
    print(f"{folder.name}: scored nonmembers {report['scored_nonmembers']:.2f} ({len(scored)}), shipped calibration "
          f"{report['shipped_calibration']:.2f} ({len(shipped)}), fresh draws "
          + " ".join(f"{x:.2f}" for x in report["fresh_draws"])
          + f", pooled {report['pooled']:.2f} ({len(pooled)} documents)")
    if args.json:
        write_text_atomic(Path(args.json), json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
