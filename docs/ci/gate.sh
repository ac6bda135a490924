#!/usr/bin/env bash
# The CI gate for a submission, in plain shell (docs/ci/github-actions.yml runs it; any CI can):
# README's first command (install, then the organizer-like dry-run on the embedded stub), then `check`
# against the thresholds. Exit codes: check's (0 pass, 1 a threshold failed, 2 unreadable input, 3 the run
# did not finish); a dry-run verdict other than ok also fails the gate (check reads it from summary.json).
#   SUBMISSION   a .py file or module to dry-run (default: this repository's `submission` package)
#   THRESHOLDS   the thresholds file (default: ci/thresholds.toml)
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# README's first command, verbatim; the dry-run's exit code is left to check (set +e around it).
set +e
python3 -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt -e . && unlearn-eval dry-run --out runs/dry-run --submission "${SUBMISSION:-submission}"
set -e
. .venv/bin/activate
unlearn-eval check runs/dry-run --thresholds "${THRESHOLDS:-ci/thresholds.toml}"
