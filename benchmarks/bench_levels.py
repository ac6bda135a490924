"""Where each estimate of the level sits against the scored nonmembers: the median per-token loss, on a
target before unlearning, of every kind of reference document the default could aim at (issue 13).

    python benchmarks/bench_levels.py --target stub-small=~/.cache/lume-harness/target-e3e7c2917869698b \\
        --target pretrained-small=~/.cache/lume-harness/target-pretrained-small-... --json out.json

Per target (a folder make-target wrote; the model runs on the CPU), the median per-document loss of:

- the scored MIA nonmembers (the truth the default should land on) and members;
- the target's calibration documents (``--calibration-docs``);
- the swapped documents under each rule of ``submission.calibration.SWAP_RULES`` (the default's level when
  no calibration documents are given);
- the model's own samples (temperature 1, from the end-of-text token, ``--samples`` of up to 200 tokens),
  keeping those that share no run of ``--copy-ngram`` tokens with a forget or retain document: text of the
  kind as the model itself writes it. For a model that learned the kind, its loss on its own samples (their
  entropy) should sit near its loss on unseen text of the kind; a model that only memorized is sure of its
  own samples whatever it makes of unseen text. Not used by any method (docs/methods.md says why).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _ngrams(ids: list[int], n: int) -> set[tuple[int, ...]]:
    return {tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)}


def own_samples(model, tokenizer, count: int, seed: int, batch_size: int = 16) -> list[str]:
    """``count`` texts sampled from ``model`` at temperature 1 from the end-of-text token (each ends at its
    next end-of-text token or after 200 tokens)."""
    import torch

    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    texts = []
    with torch.no_grad():
        for start in range(0, count, batch_size):
            prompt = torch.full((min(batch_size, count - start), 1), eos, dtype=torch.long)
            out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=True,
                                 temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=200, pad_token_id=eos,
                                 eos_token_id=eos)
            for row in out.tolist():
                tokens = row[1:]
                texts.append(tokenizer.decode(tokens[:tokens.index(eos)] if eos in tokens else tokens))
    return texts


def levels(folder: Path, samples: int, copy_ngram: int, seed: int) -> dict:
    import torch
    from bench_targets import materialize, target_inputs
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from submission import calibration
    from submission.data import load_rows

    inputs = target_inputs(folder)
    handed = materialize(inputs, Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_levels-{folder.name}")
    rows = load_rows(handed, "forget") + load_rows(handed, "retain")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def median(documents: list[str]) -> dict:
        losses = calibration.document_losses(model, tokenizer, documents, "cpu")
        return {"level": statistics.median(losses) if losses else None, "documents": len(losses)}

    def read(path: Path) -> list[str]:  # the same reader as --calibration-docs: a .jsonl's "document" fields
        return calibration.calibration_documents(path)[0]

    out = {"nonmembers (scored)": median(read(inputs["mia"] / "nonmember.jsonl")),
           "members": median(read(inputs["mia"] / "member.jsonl"))}
    if inputs["calibration"]:
        out["calibration documents"] = median(read(inputs["calibration"]))
    for rule in calibration.SWAP_RULES:
        out[f"swapped ({rule})"] = median(calibration.reference_documents(rows, rule=rule))
    given = set().union(*(_ngrams(tokenizer(r.input + r.output).input_ids, copy_ngram) for r in rows))
    novel = [t for t in own_samples(model, tokenizer, samples, seed)
             if len(ids := tokenizer(t).input_ids) >= copy_ngram and not _ngrams(ids, copy_ngram) & given]
    out[f"own samples (no {copy_ngram}-token copy)"] = median(novel)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", required=True, metavar="NAME=FOLDER")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--copy-ngram", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from evaluator.core.machine import describe

    report = {"machine": describe(), "targets": {}}
    for name, folder in (t.split("=", 1) for t in args.target):
        report["targets"][name] = levels(Path(folder).expanduser(), args.samples, args.copy_ngram, args.seed)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1))
    estimates = list(dict.fromkeys(e for row in report["targets"].values() for e in row))
    print(f"median per-token loss (nats/token) before unlearning, [documents]; {report['machine']}")
    print("| target | " + " | ".join(estimates) + " |\n|---|" + "---|" * len(estimates))
    for name, row in report["targets"].items():
        cells = [f"{row[e]['level']:.2f} [{row[e]['documents']}]" if e in row and row[e]["level"] is not None
                 else "-" for e in estimates]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
