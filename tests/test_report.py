"""The report (evaluator/analysis/report.py) and the `report`/`compare` commands: golden folders, a synthetic folder
with every optional input, escaping, and rendering in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from evaluator.analysis.report import leaderboard_placement, leaderboard_rank, term_drag, write_report
from evaluator.cli import main
from evaluator.core.errors import InputError
from evaluator.core.leaderboard import find_leaderboard, load_leaderboard, normalize, placement

GOLDEN = Path(__file__).resolve().parents[1].parent / "shared" / "golden"
CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ("summary", "tasks", "terms", "mia", "mmlu", "forget-items", "retain-items", "leaderboard")
EVIL = "<script>alert('x')</script> | *bold* & [link](http://x)"


def golden_official() -> Path:
    if not GOLDEN.is_dir():
        pytest.skip(f"needs the golden files at {GOLDEN} (../shared beside the project); absent here")
    return GOLDEN / "official"


def embedded_images(text: str) -> int:
    return len(re.findall(r'<img alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]{100,}">', text))


def check_report(files, expect_images: int) -> str:
    text = files.html.read_text(encoding="utf-8")
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in text, anchor
    assert embedded_images(text) == expect_images
    assert "<script" not in text  # self-contained and static: no script, no external resource
    assert not re.search(r'src="(?!data:)', text)
    markdown = files.markdown.read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(linked) == expect_images and all((files.markdown.parent / name).is_file() for name in linked)
    for image in files.images:
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return text


def write_synthetic_folder(folder: Path, with_extras: bool = True, evil: str = EVIL) -> Path:
    """A small evaluation folder with every optional input: MMLU tables and categories, gate.json, extra.csv."""
    rows = []
    for t, task in enumerate(("Task1", "Task2", "Task3")):
        for i in range(6):
            out = ["the cat sat on the mat", "the cat", evil, "a dog", "the cat sat", ""][i]
            rows.append({"id": f"{task}{i}sc1", "task": task, "input": f"prompt {i} <b>", "expected_output":
                         "the cat sat on the mat", "model_output": out, "nll": 1.0})
            rows.append({"id": f"{task}{i}qa0", "task": task, "input": "q?", "expected_output": "Paris",
                         "model_output": ["Paris", "London", "paris", evil, "Rome", "Paris"][(i + t) % 6], "nll": 1.0})
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "forget_0.csv", index=False)
    pd.DataFrame(rows[::-1]).to_csv(folder / "retain_0.csv", index=False)
    (folder / "mia_results").mkdir(exist_ok=True)
    pd.DataFrame({"id": [f"m{i}" for i in range(10)], "nll": [1.0 + 0.2 * i for i in range(10)]}).to_csv(
        folder / "mia_results" / "member_0.csv", index=False)
    pd.DataFrame({"id": [f"n{i}" for i in range(10)], "nll": [1.5 + 0.2 * i for i in range(10)]}).to_csv(
        folder / "mia_results" / "nonmember_0.csv", index=False)
    if with_extras:
        (folder / "mmlu").mkdir(exist_ok=True)
        for subject, pattern in (("anatomy", [True, False, True]), ("virology", [False, True])):
            pd.DataFrame({"0": ["q"] * 6, "correct": pattern * (6 // len(pattern))}).to_csv(
                folder / "mmlu" / f"{subject}.csv", index=False)
        (folder / "mmlu" / "metrics.json").write_text(json.dumps(
            {"average_acc": 7 / 12, "cat_acc": {"STEM": 0.5, "other (business, health, misc.)": 0.667},
             "subcat_acc": {}}))
        (folder / "gate.json").write_text(json.dumps(
            {"mmlu_average": 7 / 12, "gates": [{"gate": "absolute", "threshold": 0.371, "value": 7 / 12,
                                                "passed": True}], "passed": True}))
        ids = [f"m{i}" for i in range(10)] + [f"n{i}" for i in range(10)]
        pd.DataFrame({"id": ids, "set": ["member"] * 10 + ["nonmember"] * 10, "nll": range(20),
                      "zlib_ratio": [-0.01 * i for i in range(20)], "min_k_20": [-(i % 7) for i in range(20)],
                      "min_k_pp_20": [-(i % 3) for i in range(20)]}).to_csv(folder / "mia_results" / "extra.csv",
                                                                            index=False)
    return folder


def test_golden_report_without_baseline(tmp_path):
    files = write_report(golden_official() / "target", tmp_path / "r", bootstrap=200)
    text = check_report(files, expect_images=4)  # tasks, terms, MIA (histogram and ROC), leaderboard
    assert "4 terms are exactly 0" in text
    assert "agrees with evaluation_results.jsonl" in text
    assert "no mmlu/metrics.json with per-category" in text
    bootstrap = json.loads(files.bootstrap_json.read_text())["result"]
    assert bootstrap["resamples"] == 200 and bootstrap["scores"]["final"]["point"] == pytest.approx(1 / 6)


def test_golden_report_with_baseline(tmp_path):
    official = golden_official()
    files = write_report(official / "unlearned", tmp_path / "r", baseline_dir=official / "target")  # bootstrap 1000
    text = check_report(files, expect_images=4)
    assert "<th>before</th>" in text and "hatched: before" not in text  # said in the image title, not the page
    assert "retain Task2 regurgitation" in text and "score lower than in the baseline" in text
    assert re.search(r"final score \(mean of the three\)</td><td>0\.263</td><td>\[0\.\d{3}, 0\.\d{3}\]</td>"
                     r"<td>0\.167</td>", text)
    payload = json.loads(files.bootstrap_json.read_text())
    assert payload["result"]["resamples"] == 1000 and "baseline" in payload
    lo, hi = payload["result"]["scores"]["task_aggregate"]["low"], payload["result"]["scores"]["task_aggregate"]["high"]
    assert lo <= 0.28896103000086865 <= hi
    board, source = find_leaderboard()
    assert board is not None and "leaderboard.json" in source
    assert "Source: " in text and "would rank" in text
    assert re.search(r"\d+ of \d+ completions still recall at least 50% of the expected text", text)


def test_synthetic_report_with_every_optional_input(tmp_path):
    folder = write_synthetic_folder(tmp_path / "run")
    files = write_report(folder, bootstrap=100)
    assert files.html == folder / "report" / "report.html"
    text = check_report(files, expect_images=5)  # + MMLU per category
    assert "STEM" in text and "MMLU questions resampled within each subject" in text
    assert "Min-K% (k=20%)" in text and "Min-K%++ (k=20%)" in text and "zlib ratio" in text
    assert "only the loss attack counts for the official score" in text
    assert "MMLU gate, absolute" in text


def test_report_escapes_generated_text(tmp_path):
    files = write_report(write_synthetic_folder(tmp_path / "run", with_extras=False), tmp_path / "r", bootstrap=0)
    text = files.html.read_text()
    assert "<script>" not in text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "prompt 0 &lt;b&gt;" in text
    markdown = files.markdown.read_text()
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    assert "\\*bold\\*" in markdown and "&#124;" in markdown  # no table break, no emphasis
    for line in markdown.splitlines():  # every table row keeps its column count
        if line.startswith("| id |"):
            columns = line.count(" | ")
        elif line.startswith("| ") and "Task" in line and "sc1" in line:
            assert line.count(" | ") == columns, line
    assert "No bootstrap" in text and files.bootstrap_json is None


def test_report_without_mia_or_mmlu(tmp_path):
    folder = write_synthetic_folder(tmp_path / "run", with_extras=False)
    shutil.rmtree(folder / "mia_results")
    text = write_report(folder, tmp_path / "r", bootstrap=50).html.read_text()
    assert "No MIA losses in this folder" in text and "No MMLU result" in text
    assert "The final score needs both MMLU and MIA" in text and "No final score" in text


def test_term_drag_and_leaderboard_placement():
    drag = term_drag([0.5, 1.0, 0.1, 0.9])
    assert max(drag, key=lambda d: d["if_one"])["index"] == 3
    assert drag[1]["if_one"] == pytest.approx(4 / (2 + 1 + 10 + 1 / 0.9))
    assert [d["if_one"] for d in term_drag([0.0, 0.0, 0.5])] == [0.0, 0.0, 0.0]
    board = {"mmlu_gate_7b": 0.371, "7b_ranked": [{"team": "a", "final": 0.7}, {"team": "b", "final": 0.4},
                                                  {"team": "c", "final": 0.4}],
             "1b": [{"team": "x", "final": 0.2}]}
    assert leaderboard_rank([0.7, 0.4, 0.4], 0.4) == 2 and leaderboard_rank([0.7, 0.4], 0.9) == 1
    rows = {r["board"]: r for r in leaderboard_placement(board, 0.5, (0.3, 0.75), mmlu=0.3)}
    seven = rows["7B (ranked, MMLU >= gate)"]
    assert seven["rank"] == 2 and seven["rank_range"] == (1, 4) and "would not have ranked" in seven["note"]
    assert seven["above"]["team"] == "a" and seven["below"]["final"] == 0.4
    assert rows["1B"]["rank"] == 1 and rows["1B"]["note"] == ""


def test_report_places_on_the_packaged_leaderboard(tmp_path):
    """The packaged evaluator/resources/leaderboard.json (schema with "boards") fills the report's leaderboard
    section: its rows name the teams and finals around the run's final on the 7B and 1B boards."""
    board, source = find_leaderboard()
    assert source == "package data evaluator/resources/leaderboard.json" and "boards" in board
    files = write_report(write_synthetic_folder(tmp_path / "run"), tmp_path / "r", bootstrap=50)
    markdown = files.markdown.read_text(encoding="utf-8")
    section = markdown[markdown.index("## Where this would place on the published leaderboards"):].split("\n## ")[0]
    assert "Source: package data evaluator/resources/leaderboard.json." in section
    rows = [line for line in section.splitlines() if line.startswith("| 7B") or line.startswith("| 1B")]
    assert len(rows) == 2, section
    seven = rows[0]
    assert seven.split(" | ")[1] == str(len(board["boards"]["7b"]["rows"]))  # teams on the board
    assert "AILS-NTUA 0.706" in seven  # the best 7B team and its final, a neighbour of this run's final
    assert re.search(r"[A-Za-z][^|/]* 0\.\d{3} / [A-Za-z][^|]* 0\.\d{3}", rows[1]), rows[1]  # 1B neighbours
    assert "report_leaderboard.png" in section
    html_text = files.html.read_text(encoding="utf-8")
    assert "AILS-NTUA 0.706" in html_text and "would rank" in html_text


def test_placement_on_the_packaged_leaderboard(tmp_path):
    board = load_leaderboard()
    assert set(board["boards"]) == {"7b", "7b_below_gate", "1b", "7b_baselines"}
    assert board["mmlu_gate_7b"] == 0.371 and board["boards"]["7b"]["gated"]
    top = placement(0.75, 0.5)  # the packaged file by default
    assert top["7b"]["rank"] == 1 and top["7b"]["ahead_of"]["team"] == "AILS-NTUA"
    assert top["1b"]["rank"] == 1 and top["7b_baselines_beaten"] == top["7b_baselines"] == 4
    assert placement(0.5, 0.3, board)["7b"]["rank"] is None  # below the 7B gate: not ranked there
    middle = placement(0.48, 0.45, board)  # between ZJUKLAB 0.487 and ch3 0.47 on the 7B board
    assert middle["7b"]["rank"] == 3 and middle["7b"]["behind"]["team"] == "ZJUKLAB"
    assert placement(None, 0.5, board) == {"note": "no final score to place"}
    # the same figures in the ../shared/golden/leaderboard.json schema load into the same boards
    golden = {"source": "test", "mmlu_gate_7b": 0.371,
              **{key: board["boards"][name]["rows"] for name, key in
                 (("7b", "7b_ranked"), ("7b_below_gate", "7b_below_mmlu_gate"), ("1b", "1b"),
                  ("7b_baselines", "7b_organizer_baselines"))}}
    path = tmp_path / "leaderboard.json"
    path.write_text(json.dumps(golden))
    converted = load_leaderboard(path)
    assert {k: v["rows"] for k, v in converted["boards"].items()} == {k: v["rows"] for k, v in board["boards"].items()}
    gated = {k: v["gated"] for k, v in board["boards"].items()}
    assert {k: v["gated"] for k, v in converted["boards"].items()} == gated
    assert placement(0.48, 0.45, converted) == middle and normalize(board) is board
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(InputError, match="neither 'boards'"):
        load_leaderboard(path)
    with pytest.raises(InputError, match="file not found"):
        load_leaderboard(tmp_path / "absent.json")


def test_cli_report_compare_and_evaluate_flags(tmp_path):
    a = write_synthetic_folder(tmp_path / "a", with_extras=False)
    b = write_synthetic_folder(tmp_path / "b", with_extras=False)
    runner = CliRunner()
    result = runner.invoke(main, ["report", str(a), "--baseline", str(b), "--out", str(tmp_path / "rep"),
                                  "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep" / "report.html").is_file() and (tmp_path / "rep" / "report.md").is_file()
    result = runner.invoke(main, ["compare", str(a), str(b), "--bootstrap", "50", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["verdict"].startswith("no difference") and data["unpaired_strata"] == 0
    result = runner.invoke(main, ["compare", str(a), str(b), "--bootstrap", "50", "--all"])
    assert "term/12" in result.output and "verdict:" in result.output
    result = runner.invoke(main, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not a directory" in result.output
    result = runner.invoke(main, ["report", str(a), "--checkpoint", str(a)])
    assert result.exit_code == 2 and "go together" in result.output
    help_text = runner.invoke(main, ["evaluate", "--help"]).output
    assert "--report" in help_text and "--mia-extra" in help_text


def screenshot(html: Path, png: Path, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         f"--user-data-dir={tmp}",  # a fresh profile per test
         f"--screenshot={png}", "--window-size=1280,2000", "--enable-logging=stderr", "--v=0",
         html.resolve().as_uri()], capture_output=True, text=True, timeout=120)


def test_html_renders_in_headless_chromium(tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip(f"headless rendering needs Chromium at {CHROMIUM} (Debian package 'chromium'); not installed here")
    if GOLDEN.is_dir():
        files = write_report(GOLDEN / "official" / "unlearned", tmp_path / "r",
                             baseline_dir=GOLDEN / "official" / "target", bootstrap=100)
    else:
        files = write_report(write_synthetic_folder(tmp_path / "run"), tmp_path / "r", bootstrap=100)
    png = tmp_path / "shot.png"
    run = screenshot(files.html, png, tmp_path / "profile")
    assert run.returncode == 0, run.stderr[-2000:]
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line
               or "Failed to load resource" in line or "net::ERR" in line]
    assert not console, console
    from PIL import Image  # matplotlib's dependency

    with Image.open(png) as image:
        assert image.size == (1280, 2000)
        colours = image.convert("RGB").resize((64, 100)).getcolors(maxcolors=10_000)
        assert colours is not None and len(colours) > 20  # not a blank page
