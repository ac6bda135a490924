"""The submission under the organizers' conditions: killed (SIGKILL) at random moments while it saves, and
run as two processes under ``accelerate launch``."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TARGET = SHARED / "golden" / "target"
DATA = SHARED / "golden" / "data"
needs_shared = pytest.mark.skipif(not TARGET.is_dir(), reason=f"{SHARED} is absent: no golden model to unlearn")
# PYTHONPATH extended, not replaced: under a forced kernel path it carries conftest's flash-attention switch.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}

torch.set_num_threads(1)

# A child that saves checkpoints of the golden model in a loop through the submission's writer. Save number
# k sets one weight to k and records k in the log file, so a folder mixing two saves is detected.
SAVER = textwrap.dedent("""
    import sys, json, torch
    from pathlib import Path
    from safetensors.torch import load_file
    from submission import checkpoint
    target, out, exchange = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "exchange"
    if not exchange:
        checkpoint._exchange = lambda a, b: False  # the two-rename fallback of systems without renameat2
    state = load_file(str(target / "model.safetensors"))
    key = sorted(state)[0]
    for k in range(1, 10**6):
        state[key].view(-1)[0] = float(k)
        checkpoint.write_checkpoint(state, target, out, torch.float32, False,
                                    {"unlearning_log.json": json.dumps({"save": k})})
        if k == 1:
            print("saved", flush=True)
""")


def check_complete(out: Path) -> int:
    """The folder is a whole checkpoint, from one save: returns that save's number."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(out)
    AutoModelForCausalLM.from_pretrained(out)
    save = json.loads((out / "unlearning_log.json").read_text())["save"]
    state = load_file(str(out / "model.safetensors"))
    assert state[sorted(state)[0]].view(-1)[0].item() == save, "weights and log come from different saves"
    return save


@needs_shared
@pytest.mark.parametrize("swap", ["exchange", "two-renames"])
def test_sigkill_while_saving_leaves_a_complete_checkpoint(swap, tmp_path):
    from submission.checkpoint import recover

    rng = random.Random(swap)
    out = tmp_path / "out"
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    saves = []
    for _ in range(4):
        child = subprocess.Popen([sys.executable, str(script), str(TARGET), str(out), swap], env=ENV,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert child.stdout.readline().strip() == "saved"
        time.sleep(rng.uniform(0.0, 0.5))  # a save takes tens of milliseconds: most kills land inside one
        child.send_signal(signal.SIGKILL)
        child.wait()
        if swap == "two-renames":
            # the only gap of the fallback: between its renames the folder sits parked; a new run restores it
            recover(out)
        saves.append(check_complete(out))
    assert max(saves) > 1, "the kills all came before a second save: nothing was tested"


@needs_shared
def test_sigkill_during_a_real_run(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "submission.cli", str(TARGET), str(out), str(DATA), str(DATA),
               "--method", "gradient_difference", "--max-steps", "40", "--evaluations", "40", "--quiet"]
    child = subprocess.Popen(command, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "unlearning_log.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0.5, 4.0))
    child.send_signal(signal.SIGKILL)
    child.wait()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)
    assert "step" in json.loads((out / "unlearning_log.json").read_text())


ACCELERATE = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
GOLDEN_MIA = SHARED / "golden" / "mia"


def run_unlearn(out: Path, processes: int, batch_size: int) -> None:
    """The default method for a few steps, either as one plain process or under ``accelerate launch``; the
    global batch (``batch_size`` x processes forget rows, twice that of retain rows) is the same either way."""
    arguments = ["-m", "submission.cli", str(TARGET), str(out), str(DATA), str(DATA), "--max-steps", "6",
                 "--evaluations", "1", "--batch-size", str(batch_size), "--retain-batch-size", str(2 * batch_size)]
    if processes == 1:
        command = [sys.executable] + arguments
    else:
        # `--cpu --num_processes 2` starts a single process in accelerate 1.x (multi-CPU wants mpirun); the
        # torchrun-style launcher with no GPU present gives two CPU processes over gloo.
        command = [ACCELERATE, "launch", "--multi_gpu", "--num_machines", "1", "--mixed_precision", "no",
                   "--dynamo_backend", "no", "--num_processes", str(processes)] + arguments
    result = subprocess.run(command, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"processes={processes}" in result.stderr, result.stderr[-3000:]


@needs_shared
@pytest.mark.skipif(not Path(ACCELERATE).exists(), reason="accelerate launch is not available")
def test_two_processes_give_the_same_checkpoint_and_scores_as_one(tmp_path):
    """Two processes give a loadable checkpoint and the same scores as one. Same global batch, same row order,
    gradients averaged by DDP: the weights agree to float rounding (README: within 5e-5), and the evaluator's
    scores (task aggregate, MIA, final with the retain proxy as MMLU), equal where measured, within 0.02 (a
    rounding difference may flip a greedy choice on another CPU; README says so)."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evaluator.model.evaluate import EvaluationSettings, evaluate

    one, two = tmp_path / "one", tmp_path / "two"
    run_unlearn(one, 1, 4)
    run_unlearn(two, 2, 2)
    for out in (one, two):
        AutoModelForCausalLM.from_pretrained(out)
        AutoTokenizer.from_pretrained(out)
        assert not list(tmp_path.glob(f".{out.name}.*")), "a temporary checkpoint folder was left behind"
    logs = [json.loads((out / "unlearning_log.json").read_text()) for out in (one, two)]
    assert logs[0]["step"] == logs[1]["step"] == 6, "both runs must keep the trained checkpoint"
    weights = [load_file(str(out / "model.safetensors")) for out in (one, two)]
    moved = max((weights[0][k].float() - load_file(str(TARGET / "model.safetensors"))[k].float()).abs().max().item()
                 for k in weights[0])
    gap = max((weights[0][k].float() - weights[1][k].float()).abs().max().item() for k in weights[0])
    print(f"\nweights: one vs two processes differ by {gap:.3g} at most; the run moved them by {moved:.3g}")
    assert moved > 1e-3, "the run did not train"
    # README: within 5e-5 (float rounding of gradients summed in another order; 1.5e-5 and 1.6e-5 measured).
    assert gap <= 5e-5, f"one vs two processes differ by {gap} (weights moved {moved})"

    rows = []
    for out in (one, two):
        result = evaluate(out, DATA, tmp_path / f"eval-{out.name}", mia=GOLDEN_MIA, mmlu_average=0.0,
                          settings=EvaluationSettings(mode="fast", show_progress=False))
        retain_terms = result.aggregated_terms[len(result.aggregated_terms) // 2:]
        proxy = sum(retain_terms) / len(retain_terms)
        rows.append((result.harmonic_mean_task_aggregate, result.mia_final_score,
                     (result.harmonic_mean_task_aggregate + result.mia_final_score + proxy) / 3))
    print("scores (task aggregate, MIA score, final) one process:", rows[0], "two processes:", rows[1])
    for name, a, b in zip(("task aggregate", "MIA score", "final"), *rows):
        assert abs(a - b) <= 0.02, f"{name}: one process {a:.4f}, two processes {b:.4f}"


# Two processes whose clocks disagree: process 1's budget runs out after a few steps, the main process's does
# not. Every stop/continue decision is the main process's (train._main_decides), so both run to the end
# together; when each process decided by its own clock, one entered a selection pass (collectives inside)
# that the other skipped, and both waited for each other until the organizers' kill.
SKEWED_CLOCK = textwrap.dedent("""
    import os, sys
    from submission import train
    if int(os.environ.get("RANK", "0")) == 1:
        original, calls = train._Clock.left, {"n": 0}
        def left(self):
            calls["n"] += 1
            return -1.0 if calls["n"] > 3 else original(self)
        train._Clock.left = left
    from submission import unlearn
    unlearn(*sys.argv[1:5], max_steps=8, evaluations=2, batch_size=2, retain_batch_size=2, time_budget_s=600)
""")


@pytest.mark.skipif(not Path(ACCELERATE).exists(), reason="accelerate launch is not available")
def test_two_processes_with_skewed_clocks_follow_the_main_process(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_target import build_tiny_target

    built = build_tiny_target(tmp_path / "target")
    script = tmp_path / "skewed.py"
    script.write_text(SKEWED_CLOCK)
    out = tmp_path / "out"
    command = [ACCELERATE, "launch", "--multi_gpu", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--num_processes", "2", str(script),
               str(built.model), str(out), str(built.forget), str(built.retain)]
    import psutil

    log = tmp_path / "launch.log"
    with open(log, "wb") as sink:  # a file, not a pipe: hung workers holding a pipe would block the test too
        process = subprocess.Popen(command, env=ENV, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
        try:
            process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            # The workers may sit in sessions of their own: kill the launcher's whole tree.
            for child in psutil.Process(process.pid).children(recursive=True) + [psutil.Process(process.pid)]:
                child.kill()
            process.wait()
            pytest.fail("two processes with skewed clocks hung (each decided by its own clock)")
    assert process.returncode == 0, log.read_text(errors="replace")[-3000:]
    log = json.loads((out / "unlearning_log.json").read_text())
    assert [h["step"] for h in log["history"]][-1] == 8, "the main process's clock had time: all 8 steps run"
