"""Property-based tests (hypothesis) of the data loader and the pure scoring functions.

What they pin down, beyond the hand-written cases of test_bad_input.py and test_scoring.py:

- the loader keeps every valid row exactly (ids with quotes and unicode, empty, numeric-looking, NaN-like and
  very long texts stay the same strings, in file order, from jsonl and parquet alike) and rejects with an
  :class:`InputError` naming the file and the row whatever the schema (SPEC 1) forbids;
- the official CSV round trip (``to_csv(index=False)`` then ``read_csv`` defaults, SPEC 2 last line) changes
  a score only where a text is NaN-like (``""``, ``"NA"``, ``"None"``, ... pandas' default ``na_values``):
  that text is scored as the string "nan", every other one as written. Two further official quirks found
  here and pinned by name below: a column whose texts are *all* numeric-looking or NaN-like is read back as
  floats ("1947" becomes "1947.0"), and a lone carriage return splits a row in two (our writer quotes such
  a table, see ``evaluator.model.evaluate.csv_writer_options``);
- the aggregate of a task with no qa (or no sc) rows: its per-task mean is NaN, and
  ``statistics.harmonic_mean`` then returns NaN, unless another term is exactly 0, when it returns the int 0
  (it stops at the zero before it meets the NaN). The official script does the same; so do we.
"""

from __future__ import annotations

import io
import json
import math
import os
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from pandas._libs.parsers import STR_NA_VALUES

from evaluator.core import scoring
from evaluator.core.data import TASKS, load_sets, row_kind
from evaluator.core.errors import InputError
from evaluator.core.gate import passes_mmlu_gate
from evaluator.model.evaluate import csv_writer_options

# The same examples on every run (CI must not fail by chance on a case nobody has looked at);
# HYPOTHESIS_EXPLORE=1 draws new ones (and EXAMPLES=N more of them) to look for new cases.
EXPLORE = os.environ.get("HYPOTHESIS_EXPLORE") == "1"
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
PROPERTY = settings(max_examples=int(os.environ.get("EXAMPLES", 40)), deadline=None, derandomize=not EXPLORE,
                    suppress_health_check=_HEALTH)
FEW = settings(max_examples=max(15, int(os.environ.get("EXAMPLES", 15)) // 3), deadline=None, derandomize=not EXPLORE,
               suppress_health_check=_HEALTH)

NA_LIKE = sorted(STR_NA_VALUES)  # what read_csv turns into NaN by default
BOOLEAN_WORDS = {"True", "TRUE", "true", "False", "FALSE", "false"}  # what read_csv turns into bools (whole column)
# Text: any unicode a model or a data file can hold (no lone surrogates: not encodable as UTF-8, and no NUL,
# which no tokenizer decodes to), plus the awkward cases on purpose.
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
PLAIN_TEXT = st.text(CHARS, max_size=40)
TEXT = st.one_of(
    PLAIN_TEXT,
    st.sampled_from(NA_LIKE + ["nan", "1947", "-1.5", "0", "1e3", "007", " NA", "None ", "True", "TRUE", "false",
                               "\"quoted\"", "a,b", "line\nbreak", "tab\there", "ünïcödé 字 🙂"]),
    st.text(CHARS, min_size=1, max_size=12).map(lambda s: s * (3000 // len(s))),  # very long (~3000 chars)
)
ID_STEM = st.text(CHARS, max_size=30).map(lambda s: s.replace("\n", ""))
KIND = st.sampled_from(["sc", "qa"])


@st.composite
def row_ids(draw, kind=None):
    stem = draw(st.one_of(ID_STEM, ID_STEM.map(lambda s: f'"{s}"'),
                          st.integers(0, 10**9).map(str), st.uuids().map(lambda u: f'"{u}"')))
    return f"{stem}{kind or draw(KIND)}{draw(st.integers(0, 9))}"


@st.composite
def rows(draw, min_size=1, max_size=12):
    n = draw(st.integers(min_size, max_size))
    return [{"id": draw(row_ids()), "input": draw(TEXT), "output": draw(TEXT), "task": draw(st.sampled_from(TASKS))}
            for _ in range(n)]


def write_set(folder, records, fmt):
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("forget", "retain"):
        for old in folder.glob(f"{name}.*"):
            old.unlink()
        if fmt == "jsonl":
            (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        else:
            pd.DataFrame(records, columns=["id", "input", "output", "task"]).to_parquet(folder / f"{name}.parquet")


# --- the loader -------------------------------------------------------------------------------------

@PROPERTY
@given(records=rows(), fmt=st.sampled_from(["jsonl", "parquet"]))
def test_loader_keeps_every_valid_row_exactly(tmp_path_factory, records, fmt):
    folder = tmp_path_factory.mktemp("data")
    write_set(folder, records, fmt)
    sets = load_sets(folder)
    for name in ("forget", "retain"):
        df = sets[name]
        assert list(df.columns) == ["id", "input", "output", "task"]
        loaded = df.to_dict(orient="records")
        assert loaded == records  # same strings, same order: no NaN, no numbers, no stripping
        assert all(type(v) is str for r in loaded for v in r.values())


@st.composite
def a_forbidden_change(draw):
    """(column, bad value, message fragment) that the SPEC 1 schema forbids."""
    column = draw(st.sampled_from(["id", "input", "output", "task"]))
    kind = draw(st.sampled_from(["type", "value"]) if column in ("id", "task") else st.just("type"))
    if kind == "type":
        return column, draw(st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(),
                                      st.lists(st.integers(), max_size=2))), "not a string"
    if column == "id":  # no sc/qa before its last character
        bad = draw(PLAIN_TEXT.filter(lambda s: row_kind(s) is None))
        return column, bad, "neither a sentence-completion"
    return column, draw(PLAIN_TEXT.filter(lambda s: s not in TASKS)), "unknown task"


@FEW
@given(records=rows(min_size=1, max_size=5), change=a_forbidden_change(), data=st.data())
def test_loader_rejects_what_the_schema_forbids(tmp_path_factory, records, change, data):
    column, value, fragment = change
    where = data.draw(st.integers(0, len(records) - 1))
    bad = [dict(r) for r in records]
    bad[where][column] = value
    folder = tmp_path_factory.mktemp("bad")
    write_set(folder, bad, "jsonl")
    with pytest.raises(InputError) as excinfo:
        load_sets(folder)
    message = str(excinfo.value)
    assert "forget.jsonl" in message and "\n" not in message
    assert f"row {where + 1}" in message
    assert fragment in message


@FEW
@given(records=rows(min_size=1, max_size=4), missing=st.sampled_from(["id", "input", "output", "task"]))
def test_loader_rejects_a_missing_column(tmp_path_factory, records, missing):
    folder = tmp_path_factory.mktemp("missing")
    write_set(folder, [{k: v for k, v in r.items() if k != missing} for r in records], "jsonl")
    with pytest.raises(InputError, match=f"missing column.*'{missing}'"):
        load_sets(folder)


@PROPERTY
@given(stem=st.text(CHARS, max_size=20), last=st.text(CHARS, min_size=1, max_size=1))
def test_row_kind_reads_the_id_as_the_spec_says(stem, last):
    row_id = stem + last
    expected = "sc" if stem.endswith("sc") else "qa" if stem.endswith("qa") else None
    assert row_kind(row_id) == expected


# --- the official CSV round trip --------------------------------------------------------------------

def round_trip(table: pd.DataFrame, official: bool = True) -> pd.DataFrame:
    buffer = io.StringIO()
    table.to_csv(buffer, **({"index": False} if official else csv_writer_options(table)))
    return pd.read_csv(io.StringIO(buffer.getvalue()))


def generations_table(records, outputs):
    return pd.DataFrame({"id": [r["id"] for r in records], "task": [r["task"] for r in records],
                         "input": [r["input"] for r in records], "expected_output": [r["output"] for r in records],
                         "model_output": outputs, "nll": [float(i) + 0.5 for i in range(len(records))]})


def scores_as_strings(records, outputs) -> pd.DataFrame:
    """What scoring the texts directly gives, with NaN-like texts replaced by "nan" (SPEC 2, last line)."""
    as_read = lambda s: "nan" if s in STR_NA_VALUES else s  # noqa: E731
    return scoring.score_rows(pd.DataFrame({"id": [r["id"] for r in records], "task": [r["task"] for r in records],
                                            "expected_output": [as_read(r["output"]) for r in records],
                                            "model_output": [as_read(o) for o in outputs]}))


def _not_all_numeric(texts) -> bool:
    """A column read_csv keeps as text: at least one value is neither numeric-looking nor NaN-like."""
    def numeric(s):
        try:
            float(s)
            return True
        except ValueError:
            return s in STR_NA_VALUES
    return not all(numeric(t) for t in texts)


@st.composite
def generation_case(draw, allow_cr: bool):
    records = draw(rows(min_size=1, max_size=8))
    outputs = [draw(TEXT) for _ in records]
    texts = [r["id"] for r in records] + [r["input"] for r in records] + [r["output"] for r in records] + outputs
    if not allow_cr:
        assume(not any("\r" in t for t in texts))
    # ids never contain a line break in real data (nor does read_csv keep them apart from the row then)
    assume(not any("\n" in r["id"] or "\r" in r["id"] for r in records))
    assume(_not_all_numeric([r["output"] for r in records]) and _not_all_numeric(outputs))
    assume(_not_all_numeric([r["input"] for r in records]))
    assume(not any(_huge_integer(t) for t in texts))  # a pandas quirk of its own, pinned below
    return records, outputs


def _huge_integer(text: str) -> bool:
    digits = text.strip().lstrip("+-")
    return digits.isascii() and digits.isdigit() and (len(digits) > 19 or int(digits) >= 2**63)


@PROPERTY
@given(case=generation_case(allow_cr=False))
@example(case=([{"id": "sc0", "input": ":", "output": ":", "task": "Task1"}], ["TRUE"]))  # found by hypothesis
def test_csv_round_trip_changes_only_nan_like_texts(case):
    records, outputs = case
    read_back = round_trip(generations_table(records, outputs))
    assert len(read_back) == len(records)
    assert read_back["id"].astype(str).tolist() == [r["id"] for r in records]
    got = scoring.score_rows(read_back)
    want = scores_as_strings(records, outputs)
    for column in (scoring.REGURGITATION, scoring.REGURGITATION_ROUGE1, scoring.KNOWLEDGE):
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy())
    for text, back in zip(outputs, read_back["model_output"]):
        if text in STR_NA_VALUES:
            assert isinstance(back, float) and math.isnan(back) and str(back) == "nan"
        elif isinstance(back, (bool, np.bool_)):
            # A column of only boolean words ("TRUE", "false", ...) comes back as bools: str() gives
            # "True"/"False". Only the case changes, which neither ROUGE (lowercases) nor exact match
            # (.lower()) sees: the scores above agree.
            assert text in BOOLEAN_WORDS and str(back).lower() == text.lower()
        else:
            assert back == text


@FEW
@given(case=generation_case(allow_cr=True))
def test_our_writer_keeps_rows_even_with_carriage_returns(case):
    records, outputs = case
    table = generations_table(records, outputs)
    ours = round_trip(table, official=False)
    assert len(ours) == len(records)
    got, want = scoring.score_rows(ours), scores_as_strings(records, outputs)
    for column in (scoring.REGURGITATION, scoring.KNOWLEDGE):
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy())
    if not any("\r" in str(v) for v in table.to_numpy().ravel()):  # then byte for byte the official file
        a, b = io.StringIO(), io.StringIO()
        table.to_csv(a, index=False)
        table.to_csv(b, **csv_writer_options(table))
        assert a.getvalue() == b.getvalue()


def test_official_quirk_lone_carriage_return_splits_a_row():
    records = [{"id": "a1qa1", "input": "q", "output": "x", "task": "Task1"},
               {"id": "b1sc1", "input": "q", "output": "y", "task": "Task1"}]
    table = generations_table(records, ["one\rtwo", "fine"])
    assert len(round_trip(table)) == 3  # the official file is read back with a row too many
    assert round_trip(table, official=False)["model_output"].tolist() == ["one\rtwo", "fine"]


def test_official_quirk_all_numeric_column_reads_back_as_floats():
    """Every generation numeric-looking (or NaN-like): read_csv makes the column float, "1947" is scored as
    "1947.0" and no longer matches an expected "1947" held in a text column. Reproduced, not corrected."""
    records = [{"id": "a1qa1", "input": "Born?", "output": "1947", "task": "Task3"},
               {"id": "a2qa1", "input": "Name?", "output": "Ann", "task": "Task3"}]
    read_back = round_trip(generations_table(records, ["1947", "NA"]))
    assert read_back["model_output"].tolist()[0] == 1947.0
    assert scoring.score_rows(read_back)[scoring.KNOWLEDGE].tolist() == [0.0, 0.0]
    assert scores_as_strings(records, ["1947", "NA"])[scoring.KNOWLEDGE].tolist() == [1.0, 0.0]


def test_pandas_quirk_huge_integer_turns_empty_texts_into_empty_strings():
    """pandas 3.1 (read_csv defaults): in a column holding an integer beyond 64 bits, empty fields come back
    as "" instead of NaN, so an empty generation there scores as "" (not "nan"). The official script, on the
    same pandas, does the same; reproduced, not corrected. Excluded from the round-trip property above."""
    records = [{"id": "a1sc1", "input": "q", "output": "", "task": "Task1"},
               {"id": "a2sc1", "input": "q", "output": "x", "task": "Task1"}]
    read_back = round_trip(generations_table(records, ["", "20000000000000000000"]))
    first = read_back["model_output"].tolist()[0]
    assert first == "" or (isinstance(first, float) and math.isnan(first))  # "" on pandas 3.1, NaN elsewhere


# --- the pure metrics -------------------------------------------------------------------------------

@PROPERTY
@given(text=TEXT, pad_left=st.sampled_from(["", " ", "\t", "  \n"]), pad_right=st.sampled_from(["", " ", "\n"]))
def test_knowledge_ignores_case_and_edge_whitespace(text, pad_left, pad_right):
    assert scoring.knowledge_metrics(text, pad_left + text.upper() + pad_right)[scoring.KNOWLEDGE] == int(
        text.strip().lower() == text.upper().strip().lower())
    assert scoring.knowledge_metrics(text, text)[scoring.KNOWLEDGE] == 1


@PROPERTY
@given(expected=TEXT, generated=TEXT)
def test_regurgitation_is_a_recall_in_unit_interval(expected, generated):
    m = scoring.regurgitation_metrics(expected, generated)
    for value in m.values():
        assert 0.0 <= value <= 1.0
    assert m[scoring.REGURGITATION] <= m[scoring.REGURGITATION_ROUGE1] + 1e-12  # LCS never beats unigram overlap
    same = scoring.regurgitation_metrics(expected, expected)
    assert same[scoring.REGURGITATION] in (0.0, 1.0)  # 0 only when the text has no token at all


def reference_harmonic(terms):
    """statistics.harmonic_mean as the official call meets it: 0 at the first zero, NaN with a NaN left."""
    if any(t == 0 for t in terms):
        return 0
    if any(math.isnan(t) for t in terms):
        return math.nan
    return len(terms) / sum(1 / t for t in terms)


@st.composite
def scored_split(draw):
    """A scored split where a task may lack qa rows or sc rows (or both kinds are present)."""
    tasks = draw(st.lists(st.sampled_from(TASKS), min_size=1, max_size=3, unique=True))
    records = []
    for task in tasks:
        kinds = draw(st.sampled_from([("sc", "qa"), ("sc",), ("qa",)]))
        for kind in kinds:
            for _ in range(draw(st.integers(1, 3))):
                records.append({"id": draw(row_ids(kind)), "task": task,
                                "expected_output": draw(st.sampled_from(["Paris", "the cat sat", "1947"])),
                                "model_output": draw(st.sampled_from(["Paris", "the cat", "nothing", "1947"]))})
    return pd.DataFrame(records)


@PROPERTY
@given(forget=scored_split(), retain=scored_split())
def test_task_with_no_qa_or_no_sc_rows_gives_nan_mean_and_nan_or_zero_aggregate(forget, retain):
    summaries = {name: scoring.split_summary(scoring.score_rows(t)) for name, t in
                 (("forget", forget), ("retain", retain))}
    for name, table in (("forget", forget), ("retain", retain)):
        for task in table["task"].unique():
            kinds = {row_kind(i) for i in table[table["task"] == task]["id"]}
            assert math.isnan(summaries[name][task][scoring.KNOWLEDGE]) == ("qa" not in kinds)
            assert math.isnan(summaries[name][task][scoring.REGURGITATION]) == ("sc" not in kinds)
    terms = scoring.task_terms(summaries)
    assert len(terms) == 2 * (forget["task"].nunique() + retain["task"].nunique())
    got, want = scoring.task_aggregate(terms), reference_harmonic(terms)
    if isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    elif want == 0:
        assert got == 0 and type(got) is int  # the official file then holds 0, not 0.0
    else:
        assert got == pytest.approx(want, rel=1e-12)


def test_task_without_qa_rows_makes_the_aggregate_nan():
    table = pd.DataFrame({"id": ["a1sc1", "b1sc1", "c1qa1"], "task": ["Task1", "Task1", "Task2"],
                          "expected_output": ["the cat sat", "a dog", "Paris"],
                          "model_output": ["the cat", "a", "Rome"]})
    retain = table.assign(model_output=["the cat sat", "a dog", "Paris"])
    terms = scoring.task_terms({"forget": scoring.split_summary(scoring.score_rows(table)),
                                "retain": scoring.split_summary(scoring.score_rows(retain))})
    assert math.isnan(terms[1])  # Task1 forget knowledge: no qa row
    assert math.isnan(scoring.task_aggregate(terms))
    assert scoring.task_aggregate(terms[:1] + [0.0] + terms[1:]) == 0  # a zero term wins over the NaN


@PROPERTY
@given(member=st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=20),
       nonmember=st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=20),
       seed=st.integers(0, 2**16))
def test_mia_auc_is_the_mann_whitney_statistic(member, nonmember, seed):
    auc = scoring.mia_auc(member, nonmember)
    wins = sum((m < n) + 0.5 * (m == n) for m in member for n in nonmember)  # lower loss = "member"
    assert auc == pytest.approx(wins / (len(member) * len(nonmember)), abs=1e-12)
    rng = np.random.default_rng(seed)
    assert scoring.mia_auc(list(rng.permutation(member)), list(rng.permutation(nonmember))) == pytest.approx(auc)
    score = scoring.mia_score(auc)
    assert 0.0 <= score <= 1.0
    assert score == pytest.approx(scoring.mia_score(1 - auc), abs=1e-12)


@FEW
@given(member=st.lists(st.floats(0, 20), min_size=1, max_size=5), where=st.integers(0, 4))
def test_mia_auc_refuses_nan_losses(member, where):
    member = list(member)
    member[where % len(member)] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        scoring.mia_auc(member, [1.0, 2.0])


@PROPERTY
@given(a=st.floats(0, 1), b=st.floats(0, 1), c=st.floats(0, 1))
def test_final_score_is_the_statistics_mean(a, b, c):
    assert scoring.final_score(a, b, c) == statistics.mean([a, b, c])
    assert passes_mmlu_gate(b, 0.371) == (b >= 0.371)
