"""The house plan of docs/architecture.md, checked: five rooms, imports only downward, core and analysis
torch-free at import, the submission never importing the evaluator."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
EVALUATOR = PROJECT / "evaluator"
ROOMS = ("core", "model", "analysis", "harness", "cli")
# What each room may import from the evaluator (itself included).
ALLOWED = {
    "core": {"core"},
    "model": {"core", "model"},
    "analysis": {"core", "analysis"},
    "harness": {"core", "model", "analysis", "harness"},
    "cli": set(ROOMS),
}


def modules(room: str) -> list[str]:
    return sorted(f"evaluator.{room}." + p.stem if p.stem != "__init__" else f"evaluator.{room}"
                  for p in (EVALUATOR / room).glob("*.py") if p.stem != "__main__")


def evaluator_imports(path: Path) -> set[str]:
    """The rooms a file imports from (absolute ``evaluator.<room>`` imports and relative ones)."""
    room = path.parent.name
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:
                rooms.add(room)
                continue
            if node.level > 1:
                rooms.add((node.module or "").split(".")[0] or "evaluator")
                continue
            names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "evaluator" and len(parts) > 1 and parts[1] in ROOMS:
                rooms.add(parts[1])
            elif parts[0] == "evaluator" and len(parts) > 1:
                rooms.add(parts[1])  # a module outside the rooms: none exists, so this fails the rule
    return rooms


def test_the_package_is_five_rooms():
    top = {p.name for p in EVALUATOR.glob("*.py")}
    assert top == {"__init__.py"}, top
    assert {p.name for p in EVALUATOR.iterdir() if p.is_dir() and (p / "__init__.py").is_file()} == set(ROOMS)


@pytest.mark.parametrize("room", ROOMS)
def test_imports_only_go_downward(room):
    upward = {}
    for path in sorted((EVALUATOR / room).glob("*.py")):
        wrong = evaluator_imports(path) - ALLOWED[room]
        if wrong:
            upward[path.relative_to(PROJECT).as_posix()] = sorted(wrong)
    assert not upward, f"imports against the rule of evaluator/{room} (docs/architecture.md): {upward}"


def test_core_and_analysis_never_import_torch_or_transformers():
    names = modules("core") + modules("analysis")
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, check=True)
    assert done.stdout.strip() == "[]", f"importing {names} loaded {done.stdout.strip()}"


def test_the_command_line_starts_without_torch():
    code = "import sys, evaluator.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT, check=True)
    assert done.stdout.strip() == "False False"


def test_the_submission_never_imports_the_evaluator():
    for path in sorted((PROJECT / "submission").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "evaluator" for a in node.names), path
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                assert (node.module or "").split(".")[0] != "evaluator", path
