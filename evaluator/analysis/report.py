"""A report a participant reads before deciding: one self-contained HTML page (plots embedded as base64
PNG) and a Markdown twin (plots as PNG files beside it), built from an evaluation folder.

Pure: it reads the folder's CSVs and JSON (``evaluate``'s output or the official script's ``--keep_files``
folder) and never loads a model. The extra MIA attacks appear when ``mia_results/extra.csv`` exists
(:mod:`evaluator.model.mia_extra` writes it). Entry point for other commands: :func:`write_report`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import statistics as stats_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluator.analysis.bootstrap import DEFAULT_RESAMPLES, KIND_METRIC, BootstrapResult, RowValues, bootstrap
from evaluator.analysis.plots import (
    LEADERBOARD_BOARDS,
    METRIC_LABEL,
    plot_leaderboard,
    plot_mia,
    plot_mmlu,
    plot_tasks,
    plot_terms,
)
from evaluator.core import scoring
from evaluator.core.atomic import write_text_atomic, write_with_atomic
from evaluator.core.data import SPLITS, row_kind
from evaluator.core.errors import InputError
from evaluator.core.gate import MMLU_GATE_7B, format_gate
from evaluator.core.leaderboard import find_leaderboard, normalize
from evaluator.core.mia_stats import attack_label, extra_aucs
from evaluator.core.numbers import format_number
from evaluator.core.provenance import RUN_FILE, describe_run, read_run, run_differences
from evaluator.core.results import RESULTS_FILE, EvaluationResult
from evaluator.core.tables import folder_mmlu_average, mmlu_question_table, read_folder, score_generations

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
BOOTSTRAP_JSON = "bootstrap.json"
MAX_ITEMS = 15
MAX_TEXT = 400
MAX_INPUT = 200
STILL_REGURGITATED = 0.5  # ROUGE-L recall from which a forget completion counts as still regurgitated



# ---------------------------------------------------------------------------------------------------
# Reading a folder


@dataclass
class FolderData:
    folder: Path
    result: EvaluationResult  # recomputed from the CSVs
    file_result: EvaluationResult | None  # what evaluation_results.jsonl says
    scored: dict[str, pd.DataFrame]
    mia: dict[str, pd.DataFrame] | None
    extra: pd.DataFrame | None
    mmlu_metrics: dict | None
    gate: dict | None
    values: RowValues
    boot: BootstrapResult | None = None
    run: dict | None = None  # run.json: how the folder was made (evaluator.core.provenance)

    @property
    def tasks(self) -> list[str]:
        return self.values.tasks

    def value(self, name: str) -> float | None:
        if self.boot is not None and name in self.boot.point:
            return self.boot.point[name]
        return _point_from_result(self.result, name)


def _point_from_result(result: EvaluationResult, name: str) -> float | None:
    parts = name.split("/")
    if len(parts) == 3:
        split = result.forget if parts[0] == "forget" else result.retain
        return split.get(parts[1], {}).get(parts[2])
    if len(parts) == 2 and parts[0] in SPLITS:
        return (result.forget if parts[0] == "forget" else result.retain).get(parts[1])
    if parts[0] == "term":
        return result.aggregated_terms[int(parts[1]) - 1]
    return {"task_aggregate": result.harmonic_mean_task_aggregate, "mia_auc": result.mia_loss_acc,
            "mia_score": scoring.mia_score(result.mia_loss_acc) if result.mia_loss_acc is not None else None,
            "mmlu_average": result.mmlu_average, "final": result.final}.get(name)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def load_folder(folder: str | Path, n_bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> FolderData:
    """Read and rescore an evaluation folder; bootstrap it when ``n_bootstrap`` > 0."""
    tables = read_folder(folder)
    folder, generations, mia, extra = tables.folder, tables.generations, tables.mia, tables.extra
    mmlu_average = folder_mmlu_average(folder)
    result = score_generations(generations, tables.mia_nll, mmlu_average)
    file_result = None
    if (folder / RESULTS_FILE).is_file():
        try:
            file_result = EvaluationResult.read(folder / RESULTS_FILE)
        except InputError:
            file_result = None
    values = RowValues.from_tables(generations, mia, mmlu_question_table(folder), mmlu_average, extra)
    data = FolderData(folder, result, file_result, {s: scoring.score_rows(generations[s]) for s in SPLITS}, mia,
                      extra, _read_json(folder / "mmlu" / "metrics.json"), _read_json(folder / "gate.json"), values)
    data.run = read_run(folder)
    if n_bootstrap > 0:
        data.boot = bootstrap(values, n_bootstrap, seed)
    return data


# ---------------------------------------------------------------------------------------------------
# Pieces of analysis (pure)


def term_labels(tasks: list[str]) -> list[str]:
    labels = []
    for split in SPLITS:
        for task in tasks:
            for metric in KIND_METRIC.values():
                name = f"{split} {task} {METRIC_LABEL[metric]}"
                labels.append(f"1 - {name}" if split == "forget" else name)
    return labels


def term_drag(terms: list[float]) -> list[dict]:
    """For each term: its value and the task aggregate if that term alone were 1 (the official zero rule).
    The term whose rise helps most is the one that drags the harmonic mean down."""
    rows = []
    for i, value in enumerate(terms):
        raised = list(terms)
        raised[i] = 1.0
        try:
            if_one = float(stats_module.harmonic_mean(raised))
        except (stats_module.StatisticsError, TypeError):
            if_one = math.nan
        rows.append({"index": i + 1, "value": value, "if_one": if_one})
    return rows


def leaderboard_rank(finals: list[float], score: float) -> int:
    """1 + the number of published entries strictly above ``score`` (ties share the better rank)."""
    return 1 + sum(1 for f in finals if f > score)


def leaderboard_placement(board: dict, final: float, ci: tuple[float, float] | None, mmlu: float | None) -> list[dict]:
    """Rank (and rank range over the CI) on the 7B and 1B boards; ``board``: the leaderboards in either schema
    that :mod:`evaluator.core.leaderboard` reads."""
    board = normalize(board)
    rows = []
    gate = board.get("mmlu_gate_7b", MMLU_GATE_7B)
    for key, label in LEADERBOARD_BOARDS.items():
        published = board["boards"].get(key) or {}
        entries = [e for e in published.get("rows", []) if isinstance(e.get("final"), (int, float))]
        if not entries:
            continue
        finals = sorted((float(e["final"]) for e in entries), reverse=True)
        rank = leaderboard_rank(finals, final)
        rank_range = None
        if ci is not None and not any(math.isnan(x) for x in ci):
            rank_range = (leaderboard_rank(finals, ci[1]), leaderboard_rank(finals, ci[0]))
        above = [e for e in entries if e["final"] > final]
        below = [e for e in entries if e["final"] <= final]
        note = ""
        if published.get("gated") and mmlu is not None and mmlu < gate:
            note = f"MMLU {mmlu:.3f} < gate {gate}: this board would not have ranked it"
        rows.append({"board": label, "entries": len(entries), "rank": rank, "rank_range": rank_range,
                     "above": min(above, key=lambda e: e["final"]) if above else None,
                     "below": max(below, key=lambda e: e["final"]) if below else None, "note": note,
                     "best": finals[0]})
    return rows


def forget_items(data: FolderData) -> pd.DataFrame:
    """Forget rows still regurgitated (ROUGE-L recall > 0) or answered (exact match), worst first."""
    table = data.scored["forget"].copy()
    table["kind"] = [row_kind(i) for i in table["id"]]
    table["score"] = np.where(table["kind"] == "sc", table[scoring.REGURGITATION], table[scoring.KNOWLEDGE])
    table = table[table["score"] > 0]
    return table.sort_values(["score", "kind"], ascending=[False, True], kind="stable")


def retain_items(data: FolderData, baseline: FolderData | None) -> pd.DataFrame:
    """Retain rows lost: with a baseline, rows that scored lower than before (largest drop first);
    without, rows that are not fully kept (lowest score first)."""
    table = data.scored["retain"].copy()
    table["kind"] = [row_kind(i) for i in table["id"]]
    table["score"] = np.where(table["kind"] == "sc", table[scoring.REGURGITATION], table[scoring.KNOWLEDGE])
    if baseline is not None:
        before = baseline.scored["retain"].copy()
        before["before"] = np.where([row_kind(i) == "sc" for i in before["id"]], before[scoring.REGURGITATION],
                                    before[scoring.KNOWLEDGE])
        before = before.drop_duplicates("id").set_index("id")
        table["before"] = table["id"].map(before["before"])
        table["before_output"] = table["id"].map(before["model_output"])
        table = table[table["before"] > table["score"]]
        return table.assign(drop=table["before"] - table["score"]).sort_values("drop", ascending=False, kind="stable")
    table = table[table["score"] < 1]
    return table.sort_values("score", kind="stable")


# ---------------------------------------------------------------------------------------------------
# Document model: sections of blocks, rendered to HTML or Markdown


@dataclass
class Table:
    header: list[str]
    rows: list[list[Any]]
    classes: str = ""
    raw_columns: tuple[int, ...] = ()  # columns holding trusted markup (ours), not escaped


@dataclass
class Image:
    name: str
    png: bytes
    alt: str


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Any] = field(default_factory=list)


def _f(value: Any, digits: int = 3) -> str:
    return format_number(value, digits, booleans=("yes", "no"))


def _ci(data: FolderData, name: str) -> str:
    if data.boot is None or name not in data.boot.low:
        return "-"
    lo, hi = data.boot.ci(name)
    return f"[{_f(lo)}, {_f(hi)}]"


def _clip(text: Any, limit: int = MAX_TEXT) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + " …"


def _clip_tail(text: Any, limit: int = MAX_INPUT) -> str:
    """The end of a prompt: what the generation continues from."""
    text = str(text)
    return text if len(text) <= limit else "… " + text[-limit:]


def _escape_html(value: Any) -> str:
    return html.escape(str(value), quote=True).replace("\n", "<br>")


def _escape_md(value: Any) -> str:
    text = html.escape(str(value), quote=False)
    for char in "\\`*_[]#|":
        text = text.replace(char, "\\" + char if char != "|" else "&#124;")
    return text.replace("\r", "").replace("\n", "<br>")


# ---------------------------------------------------------------------------------------------------
# Building the sections


SCORE_ROWS = [("final", "final score (mean of the three)"), ("task_aggregate", "task aggregate (harmonic mean)"),
              ("mia_score", "MIA score (1 - 2|AUC - 0.5|)"), ("mia_auc", "MIA loss AUC"),
              ("mmlu_average", "MMLU average")]


def _summary_section(data: FolderData, baseline: FolderData | None) -> Section:
    section = Section("summary", "Summary")
    header = ["score", "value", "95% CI"] + (["before", "change"] if baseline is not None else [])
    rows = []
    names = list(SCORE_ROWS)
    for split in SPLITS:
        names += [(f"{split}/overall-regurgitation-score", f"{split} regurgitation (all tasks)"),
                  (f"{split}/overall-knowledge-score", f"{split} knowledge (all tasks)")]
    for name, label in names:
        value = data.value(name)
        row = [label, _f(value), _ci(data, name)]
        if baseline is not None:
            before = baseline.value(name)
            change = None if value is None or before is None else float(value) - float(before)
            row += [_f(before), ("+" if change is not None and change > 0 else "") + _f(change)]
        rows.append(row)
    section.blocks.append(Table(header, rows, "scores"))
    notes = []
    if data.result.final is None:
        notes.append("The final score needs both MMLU and MIA; this folder lacks "
                     + " and ".join(x for x, v in (("MMLU", data.result.mmlu_average),
                                                   ("MIA", data.result.mia_loss_acc)) if v is None) + ".")
    if data.boot is not None:
        notes.append(f"Intervals: {data.boot.n} bootstrap resamples (seed {data.boot.seed}) of the rows within each "
                     "split, task and kind and of the documents within member and nonmember; 2.5-97.5 percentiles. "
                     + ("MMLU questions resampled within each subject." if data.boot.mmlu_resampled else
                        "MMLU is held fixed (no per-question MMLU tables in the folder)."))
    else:
        notes.append("No bootstrap (--bootstrap 0): point estimates only.")
    if data.file_result is not None:
        same = _close(data.file_result.aggregate_score, data.result.aggregate_score) and _close(
            data.file_result.harmonic_mean_task_aggregate, data.result.harmonic_mean_task_aggregate)
        notes.append("Recomputed from the CSVs: " + ("agrees with" if same else "DIFFERS from")
                     + f" {RESULTS_FILE} (file: final {_f(data.file_result.aggregate_score)}, task aggregate "
                     f"{_f(data.file_result.harmonic_mean_task_aggregate)}).")
    if data.gate is not None:
        try:
            notes.append(format_gate(data.gate).replace("\n", "; "))
        except (KeyError, TypeError):
            pass
    section.blocks.extend(notes)
    return section


def _close(a: Any, b: Any) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return a == b


def _tasks_section(data: FolderData, baseline: FolderData | None) -> Section:
    section = Section("tasks", "Per task: forget vs retain")
    section.blocks.append("Regurgitation = ROUGE-L recall of sentence completions, knowledge = exact match of "
                          "question answers. On the forget set lower is better, on the retain set higher.")
    section.blocks.append(Image("tasks", plot_tasks(data, baseline), "forget vs retain bars per task"))
    header = ["task", "split", "metric", "value", "95% CI"] + (["before"] if baseline is not None else [])
    rows = []
    for task in data.tasks:
        for split in SPLITS:
            for metric in KIND_METRIC.values():
                name = f"{split}/{task}/{metric}"
                rows.append([task, split, METRIC_LABEL[metric], _f(data.value(name)), _ci(data, name)]
                            + ([_f(baseline.value(name))] if baseline is not None else []))
    section.blocks.append(Table(header, rows))
    return section


def _terms_section(data: FolderData) -> Section:
    section = Section("terms", "The 12 terms of the task aggregate")
    terms = [float(t) for t in data.result.aggregated_terms]
    labels = term_labels(data.tasks)
    if len(labels) != len(terms):
        labels = [f"term {i + 1}" for i in range(len(terms))]
    drag = term_drag(terms)
    zeros = [i for i, t in enumerate(terms) if t == 0]
    finite = [i for i, t in enumerate(terms) if not math.isnan(t)]
    drag_index = min(finite, key=lambda i: terms[i]) if finite else None
    hm = float(data.result.harmonic_mean_task_aggregate)
    if len(zeros) > 1:
        section.blocks.append(f"{len(zeros)} terms are exactly 0 ({', '.join(labels[i] for i in zeros)}): the "
                              "harmonic mean is 0 until every one of them rises above 0.")
    elif len(zeros) == 1:
        section.blocks.append(f"One term is exactly 0 ({labels[zeros[0]]}): it alone collapses the harmonic mean to 0; "
                              f"were it 1, the task aggregate would be {_f(drag[zeros[0]]['if_one'])}.")
    elif drag_index is not None:
        section.blocks.append(f"The term dragging the harmonic mean ({_f(hm)}) down most is {labels[drag_index]} = "
                              f"{_f(terms[drag_index])}: were it 1, the task aggregate would be "
                              f"{_f(drag[drag_index]['if_one'])}.")
    section.blocks.append(Image("terms", plot_terms(data, labels, drag_index), "the 12 terms"))
    rows = [[d["index"], labels[d["index"] - 1], _f(d["value"]), _ci(data, f"term/{d['index']}"), _f(d["if_one"]),
             "<b>drags</b>" if d["index"] - 1 == drag_index else ""] for d in drag]
    section.blocks.append(Table(["#", "term", "value", "95% CI", "aggregate if this term were 1", "note"], rows,
                                raw_columns=(5,)))
    return section


def _mia_section(data: FolderData) -> Section:
    section = Section("mia", "Membership inference")
    if data.mia is None:
        section.blocks.append("No MIA losses in this folder (mia_results/member_*.csv, nonmember_*.csv).")
        return section
    auc = data.value("mia_auc")
    section.blocks.append(f"Loss attack (official): AUC {_f(auc)} {_ci(data, 'mia_auc')}, MIA score "
                          f"{_f(data.value('mia_score'))} {_ci(data, 'mia_score')} over "
                          f"{len(data.mia['member'])} member and {len(data.mia['nonmember'])} nonmember documents. "
                          "An AUC of 0.5 (score 1) means members cannot be told from nonmembers by their loss; "
                          "far from 0.5 either way is penalised.")
    section.blocks.append(Image("mia", plot_mia(data), "member vs nonmember loss histograms and ROC curve"))
    if data.extra is not None:
        aucs = extra_aucs(data.extra)
        rows = [["loss (official)", _f(auc), _ci(data, "mia_auc"), _f(data.value("mia_score"))]]
        for column, value in aucs.items():
            rows.append([attack_label(column), _f(value), _ci(data, f"mia_extra/{column}"),
                         _f(scoring.mia_score(value))])
        section.blocks.append("Extra attacks from mia_results/extra.csv (zlib ratio, Min-K%, Min-K%++). "
                              "Diagnostics only: only the loss attack counts for the official score.")
        section.blocks.append(Table(["attack", "AUC", "95% CI", "1 - 2|AUC - 0.5|"], rows))
    else:
        section.blocks.append("Extra attacks (zlib ratio, Min-K%, Min-K%++) appear here when the folder holds "
                              "mia_results/extra.csv: `unlearn-eval report DIR --checkpoint CKPT --mia MIA_DIR` or "
                              "`unlearn-eval evaluate ... --report --mia-extra` writes it.")
    return section


def _mmlu_section(data: FolderData, baseline: FolderData | None) -> Section | None:
    section = Section("mmlu", "MMLU")
    if data.mmlu_metrics and isinstance(data.mmlu_metrics.get("cat_acc"), dict) and data.mmlu_metrics["cat_acc"]:
        section.blocks.append(f"Average {_f(data.value('mmlu_average'))} {_ci(data, 'mmlu_average')}.")
        section.blocks.append(Image("mmlu", plot_mmlu(data, baseline), "MMLU per category"))
        rows = [[name, _f(value)] for name, value in data.mmlu_metrics["cat_acc"].items()]
        section.blocks.append(Table(["category", "accuracy"], rows))
    elif data.result.mmlu_average is not None:
        section.blocks.append(f"Average {_f(data.result.mmlu_average)} (no mmlu/metrics.json with per-category "
                              "accuracies in this folder).")
    else:
        section.blocks.append("No MMLU result in this folder.")
    return section


def _item_rows(table: pd.DataFrame, with_before: bool) -> list[list[str]]:
    rows = []
    for _, row in table.head(MAX_ITEMS).iterrows():
        cells = [row["id"], row["task"], row["kind"], _f(row["score"])]
        if with_before:
            cells.append(_f(row["before"]))
        cells += [_clip_tail(row["input"]) if "input" in row else "", _clip(row["expected_output"]),
                  _clip(row["model_output"])]
        rows.append(cells)
    return rows


def _items_sections(data: FolderData, baseline: FolderData | None) -> list[Section]:
    forget = forget_items(data)
    s1 = Section("forget-items", "Forget items still regurgitated or answered")
    n_sc = int((forget["kind"] == "sc").sum())
    n_qa = int((forget["kind"] == "qa").sum())
    n_high = int(((forget["kind"] == "sc") & (forget["score"] >= STILL_REGURGITATED)).sum())
    total_sc = sum(1 for i in data.scored["forget"]["id"] if row_kind(i) == "sc")
    total_qa = sum(1 for i in data.scored["forget"]["id"] if row_kind(i) == "qa")
    s1.blocks.append(f"{n_high} of {total_sc} completions still recall at least {STILL_REGURGITATED:.0%} of the "
                     f"expected text (ROUGE-L; {n_sc} recall any of it) and {n_qa} of {total_qa} questions are still "
                     f"answered exactly. Worst first" + (f", first {MAX_ITEMS} shown." if len(forget) > MAX_ITEMS else
                                                         "."))
    if len(forget):
        s1.blocks.append(Table(["id", "task", "kind", "score", "input", "expected", "generated"],
                               _item_rows(forget, False), "items"))
    lost = retain_items(data, baseline)
    s2 = Section("retain-items", "Retain items lost")
    s2.blocks.append((f"{len(lost)} retain rows score lower than in the baseline, largest drop first"
                      if baseline is not None else
                      f"{len(lost)} retain rows not fully kept (recall < 1 or wrong answer), lowest first")
                     + (f" (first {MAX_ITEMS} shown)." if len(lost) > MAX_ITEMS else "."))
    if len(lost):
        s2.blocks.append(Table(["id", "task", "kind", "score"] + (["before"] if baseline is not None else [])
                               + ["input", "expected", "generated"], _item_rows(lost, baseline is not None), "items"))
    return [s1, s2]


def _leaderboard_section(data: FolderData) -> Section:
    section = Section("leaderboard", "Where this would place on the published leaderboards")
    board, source = find_leaderboard()
    section.blocks.append(f"Source: {source}.")
    final = data.value("final")
    if board is None:
        return section
    if final is None:
        section.blocks.append("No final score (needs MMLU and MIA), so no placement.")
        return section
    ci = data.boot.ci("final") if data.boot is not None and "final" in data.boot.low else None
    rows = []
    for p in leaderboard_placement(board, float(final), ci, data.value("mmlu_average")):
        rank = str(p["rank"]) + (f" (CI: {p['rank_range'][0]}-{p['rank_range'][1]})" if p["rank_range"] else "")
        neighbours = " / ".join(f"{e['team']} {e['final']}" for e in (p["above"], p["below"]) if e is not None)
        rows.append([p["board"], p["entries"], rank, _f(p["best"]), neighbours, p["note"]])
    section.blocks.append(Table(["board", "teams", "would rank", "best", "neighbours (above / below)", "note"], rows))
    section.blocks.append(Image("leaderboard", plot_leaderboard(board, float(final), ci), "leaderboard placement"))
    section.blocks.append("The published scores are of OLMo-7B and OLMo-1B runs on the organizers' held-out sets; a "
                          "run of another model or data set is placed only for orientation.")
    return section


def _run_blocks(label: str, data: FolderData) -> list[Any]:
    if data.run is None:
        return [f"{label}: no {RUN_FILE} in {data.folder}; how it was made is not recorded (a folder of the "
                f"official script, or one made before {RUN_FILE} existed)."]
    rows = [line.split(": ", 1) if ": " in line else [line, ""] for line in describe_run(data.run)]
    return [f"{label} ({data.folder / RUN_FILE}):", Table(["", "recorded"], rows)]


def _provenance_section(data: FolderData, baseline: FolderData | None) -> Section:
    section = Section("provenance", "How this was made", _run_blocks("This folder", data))
    if baseline is not None:
        section.blocks += _run_blocks("Baseline (before)", baseline)
        if data.run is not None and baseline.run is not None:
            differences = run_differences(baseline.run, data.run)
            if differences:
                section.blocks.append(f"WARNING: the baseline and this folder were made differently "
                                      f"({'; '.join(differences)}, baseline vs this): their scores differ by "
                                      f"rounding as well as by the models.")
    return section


def build_sections(data: FolderData, baseline: FolderData | None) -> list[Section]:
    sections = [_summary_section(data, baseline), _tasks_section(data, baseline), _terms_section(data),
                _mia_section(data), _mmlu_section(data, baseline)]
    sections += _items_sections(data, baseline)
    sections.append(_leaderboard_section(data))
    sections.append(_provenance_section(data, baseline))
    return sections


# ---------------------------------------------------------------------------------------------------
# Rendering


CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:3px 7px;vertical-align:top;text-align:left}
th{background:#f3f3f3}table.items td{max-width:330px;word-wrap:break-word;font-size:.92em}
table.items td:nth-child(n+5){font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
img{max-width:100%;display:block;margin:.6em 0}.meta{color:#666;font-size:.9em}
nav a{margin-right:1em}
"""


def _render_html(title: str, meta: str, sections: list[Section]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{_escape_html(title)}</title>", f"<style>{CSS}</style></head><body>",
           f"<h1>{_escape_html(title)}</h1>", f'<p class="meta">{_escape_html(meta)}</p>',
           "<nav>" + "".join(f'<a href="#{s.anchor}">{_escape_html(s.title)}</a>' for s in sections) + "</nav>"]
    for section in sections:
        out.append(f'<section id="{section.anchor}"><h2>{_escape_html(section.title)}</h2>')
        for block in section.blocks:
            if isinstance(block, str):
                out.append(f"<p>{_escape_html(block)}</p>")
            elif isinstance(block, Image):
                encoded = base64.b64encode(block.png).decode("ascii")
                out.append(f'<img alt="{_escape_html(block.alt)}" src="data:image/png;base64,{encoded}">')
            elif isinstance(block, Table):
                cls = f' class="{block.classes}"' if block.classes else ""
                out.append(f"<table{cls}><thead><tr>" + "".join(f"<th>{_escape_html(h)}</th>" for h in block.header)
                           + "</tr></thead><tbody>")
                for row in block.rows:
                    cells = [str(c) if i in block.raw_columns else _escape_html(c) for i, c in enumerate(row)]
                    out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
                out.append("</tbody></table>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _render_markdown(title: str, meta: str, sections: list[Section], image_names: dict[str, str]) -> str:
    out = [f"# {_escape_md(title)}", "", f"_{_escape_md(meta)}_", ""]
    for section in sections:
        out += [f"## {_escape_md(section.title)}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += [_escape_md(block), ""]
            elif isinstance(block, Image):
                out += [f"![{_escape_md(block.alt)}]({image_names[block.name]})", ""]
            elif isinstance(block, Table):
                out.append("| " + " | ".join(_escape_md(h) for h in block.header) + " |")
                out.append("|" + "---|" * len(block.header))
                for row in block.rows:
                    cells = [str(c).replace("<b>", "**").replace("</b>", "**") if i in block.raw_columns
                             else _escape_md(c) for i, c in enumerate(row)]
                    out.append("| " + " | ".join(cells) + " |")
                out.append("")
    return "\n".join(out) + "\n"


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    images: list[Path]
    bootstrap_json: Path | None


def write_report(result_dir: str | Path, out_dir: str | Path | None = None, baseline_dir: str | Path | None = None,
                 bootstrap: int = DEFAULT_RESAMPLES, seed: int = 0) -> ReportFiles:
    """Write ``report.html`` (self-contained), ``report.md`` with its ``report_<plot>.png`` files and, with a
    bootstrap, ``bootstrap.json`` (every interval) into ``out_dir`` (default ``result_dir/report``). All
    atomically. ``bootstrap`` = number of resamples (0: none)."""
    result_dir = Path(result_dir)
    out_dir = Path(out_dir) if out_dir is not None else result_dir / "report"
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out exists and is not a directory")
    data = load_folder(result_dir, bootstrap, seed)
    baseline = load_folder(baseline_dir, bootstrap, seed) if baseline_dir is not None else None
    sections = build_sections(data, baseline)
    title = f"Unlearning report: {result_dir.resolve().name}"
    meta = (f"Evaluation folder {result_dir}" + (f"; baseline (before) {baseline_dir}" if baseline_dir else "")
            + f"; {sum(len(t) for t in data.scored.values())} generation rows"
            + (f"; bootstrap {bootstrap} resamples, seed {seed}" if bootstrap else "") + ".")
    images = [b for s in sections for b in s.blocks if isinstance(b, Image)]
    names = {image.name: f"report_{image.name}.png" for image in images}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for image in images:
        path = out_dir / names[image.name]
        write_with_atomic(path, lambda tmp, png=image.png: tmp.write_bytes(png))
        paths.append(path)
    write_text_atomic(out_dir / REPORT_MD, _render_markdown(title, meta, sections, names))
    write_text_atomic(out_dir / REPORT_HTML, _render_html(title, meta, sections))
    boot_path = None
    if data.boot is not None:
        boot_path = out_dir / BOOTSTRAP_JSON
        payload = {"result": data.boot.to_dict()}
        if baseline is not None and baseline.boot is not None:
            payload["baseline"] = baseline.boot.to_dict()
        write_text_atomic(boot_path, json.dumps(payload, indent=1, default=_json_default) + "\n")
    return ReportFiles(out_dir / REPORT_HTML, out_dir / REPORT_MD, paths, boot_path)


def _json_default(value: Any):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(type(value).__name__)
