"""Evaluator speed: official mode against fast mode, in one process, on the same machine and run.

Timed inside the process (model loading excluded) over the golden forget + retain rows and MIA documents:
  1. golden/target (1M parameters, short answers: overhead-bound);
  2. an OLMo-architecture model built here with random weights (about 25M parameters), so generations
     run long (up to --max-new-tokens), compute and memory traffic dominate.
Prints the seconds of each mode and the ratio. Needs ../shared (golden rows and tokenizer).

    python benchmarks/bench_evaluator.py [--threads 2] [--batch-size 32] [--rows 84] [--skip-golden]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from evaluator.core.data import load_mia, load_sets  # noqa: E402
from evaluator.model.engine import MODES, Engine, load_model  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def build_random_olmo(tokenizer_dir: Path, out: Path, hidden: int, layers: int, intermediate: int) -> int:
    """An untrained OLMo with the golden tokenizer; returns its parameter count."""
    from transformers import AutoTokenizer, OlmoConfig, OlmoForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = OlmoConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
                        num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                        max_position_embeddings=2048, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = OlmoForCausalLM(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def time_mode(checkpoint: Path, mode: str, rows, documents, max_new_tokens: int, batch_size: int,
              dtype: str) -> tuple[float, list[str], int]:
    lm = load_model(checkpoint, dtype)
    engine = Engine(lm, mode=mode, max_new_tokens=max_new_tokens, batch_size=batch_size, show_progress=False)
    start = time.perf_counter()
    outputs = engine.generations(rows)
    engine.document_losses(documents)
    seconds = time.perf_counter() - start
    texts = [text for text, _ in outputs]
    tokens = sum(len(lm.tokenizer(t).input_ids) for t in texts)
    return seconds, texts, tokens


def compare(name: str, checkpoint: Path, rows, documents, args) -> None:
    official_s, official_texts, tokens = time_mode(checkpoint, "official", rows, documents, args.max_new_tokens,
                                                   1, args.dtype)
    fast_s, fast_texts, _ = time_mode(checkpoint, "fast", rows, documents, args.max_new_tokens, args.batch_size,
                                      args.dtype)
    same = sum(a == b for a, b in zip(official_texts, fast_texts))
    print(f"{name}: {len(rows)} rows + {len(documents)} MIA documents, {tokens} generated tokens (official), "
          f"{args.dtype}, {torch.get_num_threads()} threads")
    print(f"  official {official_s:8.2f} s   fast (batch {args.batch_size}) {fast_s:8.2f} s   "
          f"ratio {official_s / fast_s:5.2f}x   identical generations {same}/{len(rows)}")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--rows", type=int, default=None, help="use the first N rows of forget+retain")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--intermediate", type=int, default=2048)
    parser.add_argument("--skip-golden", action="store_true", help="only the large random model")
    args = parser.parse_args()
    if not (SHARED / "golden").is_dir():
        print(f"needs {SHARED / 'golden'}; absent", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    golden = SHARED / "golden"
    sets = load_sets(golden / "data")
    rows = [(q, a) for name in ("forget", "retain") for q, a in zip(sets[name]["input"], sets[name]["output"])]
    rows = rows[: args.rows] if args.rows else rows
    mia = load_mia(golden / "mia")
    documents = mia["member"]["document"].tolist() + mia["nonmember"]["document"].tolist()
    print(f"cpu kernel path {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.1f}")
    if not args.skip_golden:
        compare("golden/target (1M parameters)", golden / "target", rows, documents, args)
    with tempfile.TemporaryDirectory() as tmp:
        params = build_random_olmo(golden / "target", Path(tmp), args.hidden, args.layers, args.intermediate)
        compare(f"random OLMo ({params / 1e6:.1f}M parameters)", Path(tmp), rows, documents, args)
    return 0


if __name__ == "__main__":
    assert set(MODES) >= {"official", "fast"}
    sys.exit(main())
