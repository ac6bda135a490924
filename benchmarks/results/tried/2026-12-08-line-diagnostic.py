"""Diagnostic (December 8, not landed code): after a run of the default, score theta0 + alpha (theta* - theta0) for
several alpha with the official (fast) evaluator and with the submission's own selection score. Usage:
interp.py TARGET_FOLDER {cal,cal+tasks,plain} SEED OUT [ALPHAS] [EXTRA_JSON]; appends to OUT/results.jsonl.
Records: 2026-12-08-line-diagnostic-lume-pretrained-small.jsonl (seed 0 coarse, seeds 0-2 fine).
"""
import json
import os
import shutil
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(1)
sys.path.insert(0, "benchmarks")
import bench_targets as bt  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from submission import train as T  # noqa: E402
from submission import unlearn  # noqa: E402
from submission.data import load_rows  # noqa: E402
from submission.selection import score_model  # noqa: E402

target, config, seed, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
alphas = [float(a) for a in (sys.argv[5] if len(sys.argv) > 5 else "1,0.9,0.8,0.7,0.6,0.5").split(",")]
extra = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
folder = Path(target)
inputs = bt.target_inputs(folder)
work = out / f"{folder.name}-{config}-s{seed}"
shutil.rmtree(work, ignore_errors=True)
handed = bt.materialize(inputs, work)
options = {"method": "capped_gd", "seed": seed, "verbose": False, **extra}
if "cal" in config:
    options["calibration_docs"] = str(inputs["calibration"])
if "tasks" in config:
    options["mia_tasks"] = inputs["mia_tasks"]
t0 = time.monotonic()
summary = unlearn(str(folder), str(work / "model"), str(handed), str(handed), **options)
run_s = time.monotonic() - t0
resolved = T.resolve_options(options)
forget_rows, retain_rows = load_rows(handed, "forget"), load_rows(handed, "retain")
_, selection = T._selection_slices(forget_rows, retain_rows, resolved)
members, references, _ = T._membership_documents(forget_rows, retain_rows, resolved)
tok = AutoTokenizer.from_pretrained(folder)
tok.pad_token = tok.eos_token
base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
done = AutoModelForCausalLM.from_pretrained(work / "model", dtype=torch.float32)
b, d = base.state_dict(), done.state_dict()
rows = []
for a in alphas:
    m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    m.load_state_dict({k: b[k] + a * (d[k] - b[k]) for k in b})
    m = m.to(torch.bfloat16).eval()
    sel = score_model(m, tok, selection, 32, torch.device("cpu"), documents=(members, references))
    mdir = work / f"a{a}"
    m.save_pretrained(mdir)
    tok.save_pretrained(mdir)
    res = bt.score(mdir, inputs, work / f"eval{a}")
    shutil.rmtree(mdir, ignore_errors=True)
    row = {"alpha": a, "sel_task": round(sel.task_aggregate, 3), "sel_auc": round(sel.membership_auc, 3),
           "sel_key": round(sel.combined, 3), **{k: round(v, 4) for k, v in res.items()}}
    rows.append(row)
    print(json.dumps(row), flush=True)
rec = {"target": folder.name, "config": config, "seed": seed, "extra": extra, "run_s": round(run_s, 1),
       "best_step": summary.get("best_step"), "rows": rows}
with open(out / "results.jsonl", "a") as f:
    f.write(json.dumps(rec) + "\n")
shutil.rmtree(work / "model", ignore_errors=True)
