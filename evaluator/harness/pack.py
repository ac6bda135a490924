"""``unlearn-eval pack``: a package (by default ``submission``) as one self-contained ``.py`` file, because
the organizers took a single file (SPEC section 4).

The package's modules are found on disk (never imported), their imports read with ``ast``, and the modules
reachable from the package's ``__init__`` put in dependency order. The packed file holds each module's
source unchanged; when it is imported it first registers a module object for every package (with an empty
``__path__``, so nothing is ever looked up on disk), then, in dependency order, creates each module with
``types.ModuleType``, registers it in ``sys.modules`` under its dotted name and executes its source there.
Relative imports (``from .data import Row``) and lazy imports inside functions therefore resolve to the
inlined modules, as in the package. ``unlearn`` (from the package's ``__init__``) is exposed at top level,
and ``python packed.py MODEL OUT FORGET RETAIN`` calls it.

An import of another package of the same project (for a submission: ``evaluator``) is refused: the packed
file would need it. Third-party imports (torch, transformers, ...) stay ordinary imports. Only ``.py``
modules are packed, not data files. The modules are registered under their own names (``submission``,
``submission.train``, ...): importing the packed file replaces a ``submission`` package imported before it
in the same interpreter.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

from evaluator.core.atomic import write_text_atomic
from evaluator.core.data import read_jsonl
from evaluator.core.errors import InputError

ENTRY_POINT = "unlearn"


@dataclass
class ModuleSource:
    name: str  # dotted name
    path: Path
    is_package: bool
    relative: str  # path relative to the folder holding the top package, for tracebacks
    source: str
    imports: set[str] = field(default_factory=set)  # inlined modules this one imports


def locate(package: str) -> tuple[Path, bool]:
    """The package folder (or module file) of top-level ``package``, found without importing it."""
    if not package.isidentifier():
        raise InputError(f"{package}: not a top-level module name (pack takes e.g. 'submission')")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise InputError(f"{package}: no such importable package or module (is the project installed?)")
    if spec.submodule_search_locations is not None:
        # A stale editable install can report a regular package as a namespace portion (no origin, plus a
        # placeholder path entry): what counts is the one real folder holding an __init__.py.
        folders = [Path(p) for p in spec.submodule_search_locations if (Path(p) / "__init__.py").is_file()]
        if len(folders) != 1:
            raise InputError(f"{package}: a namespace package; pack needs a regular package with __init__.py")
        return folders[0], True
    if spec.origin in (None, "built-in", "frozen") or not str(spec.origin).endswith(".py"):
        raise InputError(f"{package}: not a Python source module ({spec.origin})")
    return Path(spec.origin), False


def discover(package: str) -> tuple[dict[str, ModuleSource], Path]:
    """Every ``.py`` module of the package (or the one module), by dotted name; and the project root."""
    location, is_package = locate(package)
    root = location.parent
    modules: dict[str, ModuleSource] = {}
    files = sorted(location.rglob("*.py")) if is_package else [location]
    for path in files:
        parts = path.relative_to(root).with_suffix("").parts
        if "__pycache__" in parts or any(not p.isidentifier() for p in parts):
            continue
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        # A subfolder without __init__.py is not part of the package as Python imports it.
        if any(not (root.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
            continue
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read ({exc})") from None
        modules[".".join(parts)] = ModuleSource(".".join(parts), path, is_pkg, path.relative_to(root).as_posix(),
                                                source)
    return modules, root


def _resolve_relative(module: ModuleSource, level: int, name: str | None) -> str:
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    parts = package.split(".")
    if level - 1 > len(parts) - 1:
        raise InputError(f"{module.path}: relative import beyond the top-level package")
    base = ".".join(parts[:len(parts) - (level - 1)])
    return f"{base}.{name}" if name else base


def read_imports(module: ModuleSource, modules: dict[str, ModuleSource], top: str, root: Path) -> set[str]:
    """The inlined modules ``module`` imports (anywhere in it, lazy imports included). Raises InputError on
    an import of another package of the same project, which the packed file could not provide."""
    try:
        tree = ast.parse(module.source, filename=str(module.path))
    except SyntaxError as exc:
        raise InputError(f"{module.path}:{exc.lineno}: syntax error ({exc.msg})") from None
    found: set[str] = set()
    own_packages = {module.name.rsplit(".", i)[0] for i in range(module.name.count(".") + 1)}

    def add(target: str, names: list[str]) -> None:
        if target.split(".")[0] != top:
            return
        if target not in modules:
            raise InputError(f"{module.path}: imports {target}, which is not a module of {top}")
        # Importing a.b.c runs the __init__ of a.b first; the top package's (and this module's own packages')
        # run last, since they usually import this module.
        parts = target.split(".")
        found.update(p for p in (".".join(parts[:i]) for i in range(2, len(parts)))
                     if p in modules and p not in own_packages)
        submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
        found.update(submodules)  # "from pkg import sub" imports the submodule pkg.sub
        if not names or len(submodules) < len(names):  # other names are attributes of target: it runs first
            found.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                _check_foreign(module, alias.name, top, root)
                add(alias.name, [])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve_relative(module, node.level, node.module)
            else:
                target = node.module or ""
                _check_foreign(module, target, top, root)
            add(target, [a.name for a in node.names if a.name != "*"])
    found.discard(module.name)
    return found


def _check_foreign(module: ModuleSource, name: str, top: str, root: Path) -> None:
    """Refuse an import of a sibling of the package (``root/<name>/`` or ``root/<name>.py``): another package
    of the same project, which the packed file would need."""
    first = name.split(".")[0]
    if not first or first == top or first == "__future__":
        return
    if (root / first / "__init__.py").is_file() or (root / f"{first}.py").is_file():
        raise InputError(f"{module.path}: imports {name}, another package of this project; the packed file "
                         f"would need it (a submission must not depend on it)")


def dependency_order(modules: dict[str, ModuleSource], start: str) -> list[str]:
    """The modules reachable from ``start``, each after the modules it imports (depth-first post-order,
    children in name order; an import cycle is broken where the walk meets it, as Python's own
    partial-module import would)."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str) -> None:
        state[name] = "open"
        for dep in sorted(modules[name].imports):
            if dep not in state:
                visit(dep)
        state[name] = "done"
        order.append(name)

    visit(start)
    return order


def _source_literal(source: str) -> str:
    """The source as adjacent string literals, one per line: exact, and still readable in the packed file."""
    lines = source.splitlines(keepends=True) or [""]
    return "(\n" + "\n".join("    " + repr(line) for line in lines) + "\n)"


HEADER = '''"""Packed by `unlearn-eval pack` from the package `{top}`: one self-contained file for the organizers'
single-file interface. `unlearn(model_in, model_out, forget_dir, retain_dir)` is at top level;
`python {filename} MODEL OUT FORGET RETAIN` calls it.

Below, each module's source, unchanged (constants baked in: {baked}), in dependency order. At import
time each becomes a module object registered in sys.modules under its dotted name, so the package's
relative imports work as they did.
Modules: {names}
Source sha256: {digest}
"""

import importlib.machinery as _machinery
import linecache as _linecache
import sys as _sys
import types as _types

'''

LOADER = '''

def _inline(name, is_package, relative, source):
    # What the import system would do for a module found on disk, minus the disk.
    filename = "<packed " + relative + ">"
    module = _sys.modules.get(name) if is_package else None  # packages were registered up front
    if module is None:
        module = _types.ModuleType(name)
        _sys.modules[name] = module
    module.__file__ = filename
    module.__spec__ = _machinery.ModuleSpec(name, None, origin=filename, is_package=is_package)
    module.__loader__ = None
    module.__package__ = name if is_package else name.rpartition(".")[0]
    if is_package:
        module.__path__ = []  # never searched: every submodule is inlined here
    _linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks show lines
    exec(compile(source, filename, "exec", dont_inherit=True), module.__dict__)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(_sys.modules[parent], child, module)
    return module


for _name in _PACKAGES:  # parents first: a submodule's relative imports resolve through them
    _module = _types.ModuleType(_name)
    _module.__path__ = []
    _module.__package__ = _name
    _sys.modules[_name] = _module
for _name, _is_package, _relative, _source in _MODULES:
    _inline(_name, _is_package, _relative, _source)

{entry} = _sys.modules[{top!r}].{entry}
__all__ = [{entry!r}]

if __name__ == "__main__":
    if len(_sys.argv) != 5:
        _sys.exit("usage: python " + _sys.argv[0] + " MODEL_IN MODEL_OUT FORGET_DIR RETAIN_DIR")
    {entry}(*_sys.argv[1:5])
'''


@dataclass
class PackResult:
    path: Path
    modules: list[str]
    text: str


# Where ``pack --calibration-docs`` bakes the files: a top-level assignment in this module of the package.
CALIBRATION_MODULE, CALIBRATION_CONSTANT = "calibration", "BAKED_CALIBRATION_FILES"
CALIBRATION_SUFFIXES = (".jsonl", ".txt")


def read_calibration_docs(path: str | Path) -> dict[str, str]:
    """file name -> text of the calibration documents at ``path`` (a folder's .jsonl/.txt files, or one such
    file), checked the way the submission parses them: each .jsonl line a JSON object with a string
    ``document`` (or ``text``) field."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in CALIBRATION_SUFFIXES)
    else:
        raise InputError(f"{path}: calibration documents not found (a folder or a .jsonl/.txt file)")
    if not files or any(p.suffix not in CALIBRATION_SUFFIXES for p in files):
        raise InputError(f"{path}: no .jsonl or .txt calibration file")
    out, documents = {}, 0
    for file in files:
        if file.suffix == ".jsonl":
            table = read_jsonl(file)
            for number, record in enumerate(table.to_dict("records"), start=1):
                if not isinstance(record.get("document"), str) and not isinstance(record.get("text"), str):
                    raise InputError(f"{file}: record {number}: no string 'document' (or 'text') field")
            documents += len(table)
        out[file.name] = file.read_text(encoding="utf-8")
        documents += file.suffix == ".txt" and bool(out[file.name].strip())
    if not documents:
        raise InputError(f"{path}: the calibration files hold no document")
    return out


# Where ``pack --set NAME=VALUE`` bakes settings: a dict in this module, whose NAMEs are the fields of this class.
SETTINGS_MODULE, SETTINGS_CONSTANT, SETTINGS_CLASS = "train", "BAKED_SETTINGS", "UnlearnSettings"


def parse_settings(pairs: list[str] | tuple[str, ...], example: str = "swapped_words=proper_nouns") -> dict:
    """``NAME=VALUE`` pairs (``--set``, of ``pack`` and ``make-target``) as a dict; a VALUE is a Python literal
    (``5e-4``, ``None``, ``True``) or else the text itself (``proper_nouns``)."""
    settings = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip().isidentifier():
            raise InputError(f"--set {pair}: expected NAME=VALUE (e.g. {example})")
        try:
            settings[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            settings[name.strip()] = value.strip()
    return settings


def setting_names(module: ModuleSource) -> list[str]:
    """The fields of ``module``'s settings class (SETTINGS_CLASS), read from its source."""
    for node in ast.parse(module.source).body:
        if isinstance(node, ast.ClassDef) and node.name == SETTINGS_CLASS:
            return [item.target.id for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)]
    raise InputError(f"{module.path}: no class {SETTINGS_CLASS} to read the settings' names from")


def check_baked_settings(text: str, top: str) -> None:
    """Run the packed file's own check of its baked settings (``resolve_options``) in a fresh interpreter:
    a value the submission refuses stops the pack here, not the organizers' run. The evaluator never imports
    the submission; this runs the packed text, as the dry-run does."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        packed = Path(folder) / "packed.py"
        packed.write_text(text, encoding="utf-8")
        code = (f"import runpy, sys; runpy.run_path({str(packed)!r}); "
                f"sys.modules[{f'{top}.{SETTINGS_MODULE}'!r}].resolve_options({{}})")
        try:
            done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True,
                                  timeout=300)
        except subprocess.TimeoutExpired:
            raise InputError("--set: the packed submission did not finish checking its settings in 300 s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        last = re.sub(r"^[\w.]+(Error|Exception): ", "", lines[-1]) if lines else "no message"
        raise InputError(f"--set: the packed submission refuses its settings: {last}")


def bake_constant(module: ModuleSource, name: str, value) -> None:
    """Replace the value of ``module``'s top-level assignment to ``name`` with ``repr(value)``."""
    for node in ast.parse(module.source).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if isinstance(target, ast.Name) and target.id == name and node.value is not None:
            lines = module.source.splitlines(keepends=True)
            start = sum(len(line) for line in lines[: node.value.lineno - 1]) + len(
                lines[node.value.lineno - 1].encode()[: node.value.col_offset].decode())
            end = sum(len(line) for line in lines[: node.value.end_lineno - 1]) + len(
                lines[node.value.end_lineno - 1].encode()[: node.value.end_col_offset].decode())
            module.source = module.source[:start] + repr(value) + module.source[end:]
            return
    raise InputError(f"{module.path}: no top-level assignment to {name} to bake into")


def render(top: str, filename: str = "unlearn_submission.py", calibration_files: dict[str, str] | None = None,
           settings: dict | None = None) -> tuple[str, list[str]]:
    """The packed file's text for package ``top``, and its modules in the order they are executed.
    ``calibration_files`` (``read_calibration_docs``) are baked into ``top.calibration``, ``settings``
    (``parse_settings``) into ``top.train``."""
    modules, root = discover(top)
    baked = []
    if calibration_files:
        module = modules.get(f"{top}.{CALIBRATION_MODULE}")
        if module is None:
            raise InputError(f"{top}: no {CALIBRATION_MODULE} module to bake calibration documents into")
        bake_constant(module, CALIBRATION_CONSTANT, calibration_files)
        baked.append(f"{module.name}.{CALIBRATION_CONSTANT} = {len(calibration_files)} calibration file(s)")
    if settings:
        module = modules.get(f"{top}.{SETTINGS_MODULE}")
        if module is None:
            raise InputError(f"{top}: no {SETTINGS_MODULE} module to bake settings into")
        known = setting_names(module)
        if "calibration_docs" in settings:  # a path on this machine, not on the organizers'
            raise InputError("--set calibration_docs: a folder here is not on the organizers' machine; "
                             "--calibration-docs DIR bakes the documents themselves")
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise InputError(f"--set {', '.join(unknown)}: no such setting (known: {', '.join(sorted(known))})")
        bake_constant(module, SETTINGS_CONSTANT, settings)
        baked.append(f"{module.name}.{SETTINGS_CONSTANT} = {settings!r}")
    baked = "; ".join(baked) or "none"
    for module in modules.values():
        module.imports = read_imports(module, modules, top, root)
    order = dependency_order(modules, top)
    init = modules[top]
    if not _defines(init, ENTRY_POINT):
        raise InputError(f"{init.path}: no top-level {ENTRY_POINT} (defined or imported) for the organizers to call")
    packages = sorted((n for n in order if modules[n].is_package), key=lambda n: n.count("."))
    digest = hashlib.sha256("".join(modules[n].relative + "\0" + modules[n].source for n in order).encode()).hexdigest()
    parts = [HEADER.format(top=top, filename=filename, names=", ".join(order), digest=digest, baked=baked)]
    parts.append(f"_PACKAGES = {packages!r}\n\n"
                 "_MODULES = [  # (dotted name, is a package, path in the package, source)\n")
    for name in order:
        module = modules[name]
        parts.append(f"    ({name!r}, {module.is_package!r}, {module.relative!r}, {_source_literal(module.source)}),\n")
    parts.append("]\n")
    parts.append(LOADER.format(entry=ENTRY_POINT, top=top))
    text = "".join(parts)
    compile(text, filename, "exec")  # a packing bug shows here, not on the organizers' machine
    return text, order


def _defines(module: ModuleSource, name: str) -> bool:
    tree = ast.parse(module.source)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any((a.asname or a.name) == name for a in node.names):
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
    return False


DEFAULT_PACKAGE = "submission"
PACKED_FILE = "unlearn_submission.py"  # the single file to hand in
# ``pack()`` takes the file's path; ``unlearn-eval pack --out DIR`` (a folder, as every --out) writes DIR/PACKED_FILE.
DEFAULT_OUT = Path(PACKED_FILE)


def pack(package: str = DEFAULT_PACKAGE, out: str | Path = DEFAULT_OUT,
         calibration_docs: str | Path | None = None, settings: dict | None = None) -> PackResult:
    """Write the packed file atomically (a reader sees the old file or the whole new one), with the calibration
    documents at ``calibration_docs`` baked in when given (the submission measures its level on them), and
    ``settings`` (name -> value, ``parse_settings``) as the submission's defaults, checked by the packed file
    itself before anything is written."""
    out = Path(out)
    if out.suffix != ".py":
        raise InputError(f"{out}: the packed file must end in .py")
    if out.is_dir():
        raise InputError(f"{out}: is a directory")
    text, order = render(package, out.name, read_calibration_docs(calibration_docs) if calibration_docs else None,
                         settings)
    if settings:
        check_baked_settings(text, package)
    write_text_atomic(out, text)
    return PackResult(out, order, text)
