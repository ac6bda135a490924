"""``unlearn-eval``: a thin click layer over functions a user can call from Python.

The root group (``evaluator.cli.root``) turns errors into one line and an exit code; each family of
commands is one module that lists its ``COMMANDS``, wired here:

- ``evaluation``: evaluate, mmlu, score, aggregate;
- ``reports``: report, compare;
- ``harness``: make-stub, make-target, dry-run, pack, check.

Every default is read from the module that owns it (``evaluator.core.modes``, ``evaluator.core.gate``,
``evaluator.harness.settings``...). Torch and transformers are imported only by the commands that load a model.
"""

from __future__ import annotations

from evaluator.cli import evaluation, harness, reports
from evaluator.cli.root import Group, main

for _command in (*evaluation.COMMANDS, *reports.COMMANDS, *harness.COMMANDS):
    main.add_command(_command)

__all__ = ["Group", "main"]
