"""``unlearn-eval pack``: the single-file submission.

- it is self-contained: run by a Python where the project is not importable (no ``submission``, no
  ``evaluator``), it still exposes and runs ``unlearn``;
- run by ``dry-run --submission unlearn_submission.py`` it gives the same scores as the package (same seed);
- the packing itself: dependency order, relative, nested and lazy imports, a sibling package refused.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluator.cli import main
from evaluator.core.errors import InputError
from evaluator.harness.pack import pack, render

PROJECT = Path(__file__).resolve().parents[1]
STUB = PROJECT / "data_stub"
PROJECT_PACKAGES = ("submission", "evaluator")


@pytest.fixture(scope="module")
def target() -> Path:
    from evaluator.harness.target import build_target

    return build_target(STUB, progress=False, log=lambda line: None).path


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pack")
    result = CliRunner().invoke(main, ["pack", "--out", str(folder)])  # --out: the folder, as every --out
    assert result.exit_code == 0, result.output
    out = folder / "unlearn_submission.py"
    assert f"wrote {out} " in result.output
    return out


def isolated_site(folder: Path) -> Path:
    """A copy of this environment's site-packages, as symlinks, without the project (neither its packages
    nor the .pth hooks of an editable install)."""
    site = folder / "site"
    site.mkdir()
    purelib = Path(sysconfig.get_paths()["purelib"])
    for entry in purelib.iterdir():
        if entry.name.endswith(".pth") or entry.name.startswith("__editable__") or entry.name in PROJECT_PACKAGES \
                or entry.name.startswith("lume_unlearning"):
            continue
        (site / entry.name).symlink_to(entry)
    return site


def run_isolated(folder: Path, code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -S`` (no site hooks) with only the isolated site-packages on the path, cwd outside the project."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", str(folder)),
           "PYTHONPATH": str(isolated_site(folder)), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    work = folder / "cwd"
    work.mkdir()
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=work, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_packed_file_is_self_contained(packed):
    tree = ast.parse(packed.read_text())
    top_imports = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top_imports |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert top_imports <= {"importlib.machinery", "linecache", "sys", "types"}
    text, order = render("submission")
    assert packed.read_text() == text  # deterministic: the same bytes every time
    assert order[-1] == "submission" and "submission.cli" not in order  # the CLI (click) is not needed
    assert order.index("submission.data") < order.index("submission.train")
    for name in order:  # no inlined module imports the evaluator
        source = (PROJECT / (name.replace(".", "/") + ("/__init__.py" if name == "submission" else ".py"))).read_text()
        assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) and "evaluator" in ast.dump(n)
                       for n in ast.walk(ast.parse(source)))


def test_packed_file_runs_where_the_project_is_not_importable(packed, target, tmp_path):
    from evaluator.harness.dryrun import lay_out_inputs

    inputs = lay_out_inputs(STUB, "train", tmp_path / "inputs")
    out = tmp_path / "model_out"
    code = textwrap.dedent(f"""
        import importlib.util, json, sys
        for name in {PROJECT_PACKAGES!r}:
            try:
                __import__(name)
            except ImportError:
                pass
            else:
                sys.exit(name + " is importable here: the test environment is not isolated")
        spec = importlib.util.spec_from_file_location("unlearn_submission", {str(packed)!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        summary = module.unlearn({str(target)!r}, {str(out)!r}, {str(inputs["forget"])!r}, {str(inputs["retain"])!r},
                                 max_steps=2, evaluations=1, verbose=False)
        print(json.dumps({{"summary": summary, "file": sys.modules["submission.train"].__file__}}))
    """)
    result = run_isolated(tmp_path, code)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["summary"]["steps_done"] == 2
    assert report["file"] == "<packed submission/train.py>"
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()


def test_dry_run_of_packed_file_scores_as_the_package(packed, target, tmp_path):
    from evaluator.harness.dryrun import DryRunSettings, dry_run

    # A short run, the same for both; save_initial off: the saved checkpoint is a trained one.
    quick = {"max_steps": 4, "evaluations": 2, "seed": 0, "save_initial": False}
    summaries = {}
    for name, submission in (("package", "submission"), ("packed", str(packed))):
        settings = DryRunSettings(submission=submission, data=STUB, out=tmp_path / name, time_limit_s=300,
                                  mode="fast", threads=1, submission_kwargs=quick)
        report = dry_run(settings, log=lambda line: None)
        assert report.exit_code in (0, 8), report.summary["problems"]
        summaries[name] = report.summary
    assert summaries["packed"]["submission"]["kind"] == "file"
    assert summaries["packed"]["after"] is not None
    assert summaries["packed"]["after"]["results"] == summaries["package"]["after"]["results"]
    assert summaries["packed"]["verdict"] == summaries["package"]["verdict"]
    # Same weights, and not the target's: the comparison is not between two untouched models.
    from safetensors.torch import load_file

    weights = {name: load_file(tmp_path / name / "model_out" / "model.safetensors") for name in summaries}
    original = load_file(target / "model.safetensors")
    assert weights["packed"].keys() == weights["package"].keys() == original.keys()
    assert all(weights["packed"][k].equal(weights["package"][k]) for k in original)
    assert not all(weights["packed"][k].equal(original[k]) for k in original)


def make_package(root: Path, files: dict[str, str]) -> None:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


def test_relative_nested_and_lazy_imports(tmp_path, monkeypatch):
    make_package(tmp_path / "src", {
        "toy/__init__.py": "from .core import unlearn\n",
        "toy/core.py": """
            from __future__ import annotations
            from dataclasses import dataclass
            from . import util
            from .sub.helpers import GREETING

            @dataclass
            class Result:
                text: str

            def unlearn(a, b, c, d):
                from .lazy import late  # imported only when called
                return Result(f"{GREETING} {util.twice(a)} {late()}").text
        """,
        "toy/util.py": "def twice(x):\n    return x * 2\n",
        "toy/sub/__init__.py": "",
        "toy/sub/helpers.py": "from ..util import twice\nGREETING = twice('hi')\n",
        "toy/lazy.py": "def late():\n    return 'late'\n",
        "toy/unused.py": "import this_module_does_not_exist\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    out = tmp_path / "toy_packed.py"
    result = pack("toy", out)
    assert "toy.unused" not in result.modules
    assert result.modules.index("toy.util") < result.modules.index("toy.sub.helpers") < result.modules.index("toy.core")
    code = (f"import importlib.util\nspec = importlib.util.spec_from_file_location('toy_packed', {str(out)!r})\n"
            "m = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(m)\n"
            "print(m.unlearn('x', 'b', 'c', 'd'))\n")
    run = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env={"PATH": os.environ.get("PATH", "")},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "hihi xx late"


def test_refuses_a_sibling_package_and_a_missing_entry_point(tmp_path, monkeypatch):
    make_package(tmp_path / "src", {
        "needs_other/__init__.py": "from other import helper\ndef unlearn(a, b, c, d):\n    return helper\n",
        "other/__init__.py": "helper = 1\n",
        "no_entry/__init__.py": "def something_else():\n    pass\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    with pytest.raises(InputError, match="imports other, another package of this project"):
        pack("needs_other", tmp_path / "a.py")
    with pytest.raises(InputError, match="no top-level unlearn"):
        pack("no_entry", tmp_path / "b.py")
    result = CliRunner().invoke(main, ["pack", "--submission", "not_a_module_at_all", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2 and "no such importable package" in result.output
    assert not (tmp_path / "a.py").exists() and not (tmp_path / "c").exists()


def test_pack_command_from_another_folder(tmp_path):
    """The command as a user runs it: the project's root is not on sys.path (only the install points at it). No
    --out: the file lands in the current folder."""
    out = tmp_path / "unlearn_submission.py"
    result = subprocess.run([sys.executable, "-m", "evaluator.cli", "pack"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote unlearn_submission.py ")
    assert out.read_text() == render("submission")[0]


def test_pack_bakes_settings_and_the_packed_file_runs_with_them(tmp_path):
    """`pack --set NAME=VALUE`: the organizers' four-path call runs with the baked settings."""
    sys.path.insert(0, str(PROJECT / "tests"))
    from tiny_target import build_tiny_target

    built = build_tiny_target(tmp_path / "target", steps=150)
    result = CliRunner().invoke(main, ["pack", "--out", str(tmp_path), "--set", "swapped_words=proper_nouns",
                                       "--set", "max_steps=1", "--set", "evaluations=1", "--set", "verbose=False"])
    assert result.exit_code == 0, result.output
    assert "settings baked in: {'swapped_words': 'proper_nouns', 'max_steps': 1" in result.output
    packed = tmp_path / "unlearn_submission.py"
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(packed), str(built.model), str(out), str(built.forget),
                          str(built.retain)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    log = json.loads((out / "unlearning_log.json").read_text(encoding="utf-8"))
    assert log["options"]["swapped_words"] == "proper_nouns" and log["options"]["max_steps"] == 1
    assert "entities (proper_nouns) swapped" in log["forget_nll_ceiling"]["measured"]["how"]
    # Without --set nothing is baked: the package's source is packed unchanged.
    plain, _ = render("submission")
    assert "BAKED_SETTINGS: dict = {}" in plain


@pytest.mark.parametrize("pair, problem", [
    ("swapped_words=nouns", "the packed submission refuses its settings: swapped_words must be one of"),
    ("learning_rate=abc", "baked setting learning_rate: 'abc' is not of type float"),
    ("lr=3", "--set lr: no such setting (known: "),
    ("learning_rate", "--set learning_rate: expected NAME=VALUE"),
    ("calibration_docs=/data/cal", "--calibration-docs DIR bakes the documents themselves"),
])
def test_pack_refuses_a_bad_setting_in_one_line_and_writes_nothing(tmp_path, pair, problem):
    result = CliRunner().invoke(main, ["pack", "--out", str(tmp_path), "--set", pair])
    assert result.exit_code == 2, result.output
    assert problem in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "unlearn_submission.py").exists()
