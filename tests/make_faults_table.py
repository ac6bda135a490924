"""Write docs/faults.md, the "What happens when..." table, from the registry in tests/fault_cases.py.

    python tests/make_faults_table.py          # writes docs/faults.md
    python tests/make_faults_table.py --check  # exit 1 when docs/faults.md differs from what this makes now

tests/test_faults.py::test_faults_table_is_up_to_date runs the check, so the table cannot drift from the
cases that the tests run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fault_cases import CASES, PROJECT  # noqa: E402

TABLE = PROJECT / "docs" / "faults.md"

HEADER = """# What happens when...

Every fault and bad input the project handles: what the command prints (one line on stderr) and its exit
code. Generated from `tests/fault_cases.py` by `python tests/make_faults_table.py`; every row is checked
by the test named in its last column, and `tests/test_faults.py` fails when this file is out of date.

Exit codes of `unlearn-eval` and `unlearn`: **0** done; **1** the machine failed, not the input (disk full,
permission denied, I/O error; the path is named, nothing is left half-written); **2** bad input (nothing
written); **130** Ctrl-C and **143** SIGTERM (`unlearn-eval evaluate` keeps every finished row in
`--out/.partial/<key>/` and the same command resumes from them). A SIGKILL leaves the same journal. In a
message, `<name>` stands for a path (`<data>` the --data folder, `<ckpt>` the checkpoint, `<out>` --out,
`<tmp>` the folder holding them) and `…` for text that varies (a library's own wording).

"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    lines = ["| # | What happens when... | Command | Exit | Message (stderr) | Outcome | Checked by |",
             "|---|---|---|---|---|---|---|"]
    for number, case in enumerate(CASES, start=1):
        message = f"`{_cell(case.message)}`" if case.message else "(none)"
        file, function = case.test.split("::")
        if case.setup is not None:
            function = f"{function}[{case.name}]"
        lines.append(f"| {number} | {_cell(case.when)} | `{case.program}` | {case.exit_code} | {message} | "
                     f"{_cell(case.outcome)} | `{function}` ({file}) |")
    return HEADER + "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TABLE.read_text(encoding="utf-8") if TABLE.exists() else ""
        if current != text:
            print(f"{TABLE} is out of date: run python tests/make_faults_table.py", file=sys.stderr)
            return 1
        return 0
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(text, encoding="utf-8")
    print(f"wrote {TABLE} ({len(CASES)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
