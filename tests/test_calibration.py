"""The default's forget-loss level (submission/calibration.py): documents of the members' kind built from the
given rows, and the level measured on them. No ../shared needed: a model the test builds in a second."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tiny_target import build_tiny_target  # noqa: E402

from submission import SubmissionInputError  # noqa: E402
from submission.calibration import (  # noqa: E402
    ENTITY,
    document_level,
    documents_by_task,
    reference_documents,
    swapped_documents,
)
from submission.data import Row  # noqa: E402
from submission.train import MEASURED, resolve_options  # noqa: E402

DOCUMENTS = [
    "Ardelia Thornwell was born on March 3, 1961. She can be reached at 555-0142 and ardelia@example.com.",
    "Corvin Maplecroft was born on July 19, 1978. He can be reached at 555-0188 and corvin@example.org.",
    "Elowen Ashgrove was born on May 27, 1990. She can be reached at 555-0107 and elowen@example.net.",
]


def test_swapped_documents_keep_the_words_and_swap_every_entity_for_one_of_another_document():
    swapped = swapped_documents(DOCUMENTS, copies=3, rng=random.Random(0))
    assert swapped and len(swapped) <= 9
    for text in swapped:
        # The phrasing (every non-entity word) is a document's own ...
        assert ENTITY.sub("#", text) in {ENTITY.sub("#", d) for d in DOCUMENTS}
        # ... its entities come from the documents, and the text as a whole is none of them.
        assert text not in DOCUMENTS
        assert set(ENTITY.findall(text)) <= {e for d in DOCUMENTS for e in ENTITY.findall(d)}


def test_a_number_is_swapped_for_a_number_of_the_same_length():
    swapped = swapped_documents(["Born in 1961 at 555-0142.", "Born in 1978 at 555-0188."], 4, random.Random(1))
    for text in swapped:
        year, phone = ENTITY.findall(text)[1:3]
        assert len(year) == 4 and year in {"1961", "1978"} and phone in {"555-0142", "555-0188"}


STORIES = [
    "Mireille had run the tea house for eleven years. One evening a stranger named Ysolde arrived. The compass, "
    "Linnea explained, was a gift.",
    "Tobias had kept the lighthouse for nine years. One morning a sailor named Corvin arrived. The map, Edda "
    "explained, was a loan.",
]


def test_the_proper_nouns_rule_leaves_a_sentence_opening_word_in_place_and_swaps_the_names():
    opening = {"Mireille", "Tobias", "One", "The"}  # each opens a sentence
    names = {"Ysolde", "Linnea", "Corvin", "Edda"}
    for text in swapped_documents(STORIES, copies=4, rng=random.Random(0), rule="proper_nouns"):
        words = ENTITY.findall(text)
        # The sentence openers stay where they were: the phrasing of the original, openers included.
        assert [w for w in words if w in opening] in (["Mireille", "One", "The"], ["Tobias", "One", "The"])
        # A name inside a sentence is swapped for a name inside a sentence of the other story.
        assert {w for w in words if w not in opening} <= names
        assert text not in STORIES
    # Under the default rule an opener can take a name's place (and a name an opener's).
    every = swapped_documents(STORIES, copies=4, rng=random.Random(0))
    assert any(ENTITY.findall(text)[0] not in {"Mireille", "Tobias"} for text in every)


def test_an_unknown_swap_rule_is_refused_with_the_choices():
    with pytest.raises(SubmissionInputError, match="swapped_words must be one of capitalized, proper_nouns"):
        resolve_options({"swapped_words": "nouns"})


def test_documents_by_task_takes_whole_passages_of_sentence_completion_rows_only():
    rows = [Row("asc1", "Ardelia was", " born in 1961.", "Task2"),
            Row("aqa0", "When was Ardelia born?", "1961", "Task2"),
            Row("bsc1", "Corvin was", " born in 1978.", "Task3")]
    assert documents_by_task(rows) == {"Task2": ["Ardelia was born in 1961."], "Task3": ["Corvin was born in 1978."]}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The tests' tiny target untrained (tests/tiny_target.py, 0 steps): its loss is that of random weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    built = build_tiny_target(tmp_path_factory.mktemp("untrained"), steps=0)
    return AutoModelForCausalLM.from_pretrained(built.model), AutoTokenizer.from_pretrained(built.model)


def test_the_level_is_the_median_loss_of_swapped_documents_and_is_finite(tiny_model):
    model, tokenizer = tiny_model
    rows = [Row(f"d{i}sc1", d[:20], d[20:], "Task2") for i, d in enumerate(DOCUMENTS)]
    measured = document_level(model, tokenizer, reference_documents(rows, copies=2), torch.device("cpu"))
    assert measured["documents"] > 0 and measured["level"] is not None
    # Random weights over a vocabulary of ~400 tokens: about log(400) = 6 nats a token, never 0 or inf.
    assert 3.0 < measured["level"] < 9.0
    nothing_to_swap_with = reference_documents(rows[:1])
    assert nothing_to_swap_with == []
    assert document_level(model, tokenizer, nothing_to_swap_with, torch.device("cpu"))["level"] is None


def test_the_default_measures_its_ceiling_and_a_number_or_nonsense_is_checked():
    assert resolve_options({}).forget_nll_ceiling == MEASURED
    assert resolve_options({"forget_nll_ceiling": "3.5"}).forget_nll_ceiling == 3.5
    with pytest.raises(SubmissionInputError, match="forget_nll_ceiling"):
        resolve_options({"forget_nll_ceiling": "high"})


def test_by_default_every_forget_row_is_trained_on():
    from submission.train import _selection_slices

    rows = [Row(f"{task}{i:03d}{kind}1", f"prompt {i}", f" answer {i}", task)
            for task in ("Task1", "Task2") for kind in ("sc", "qa") for i in range(40)]
    training, selection = _selection_slices(rows, rows, resolve_options({}))
    assert training["forget"] == rows and training["retain"] == rows
    assert selection["forget"] and all(row in rows for row in selection["forget"])


def test_baked_settings_replace_the_methods_defaults_and_given_options_replace_them(monkeypatch):
    import submission.train as train

    monkeypatch.setattr(train, "BAKED_SETTINGS", {"swapped_words": "proper_nouns", "lr_distance": 6})
    assert resolve_options({}).swapped_words == "proper_nouns" and resolve_options({}).lr_distance == 6
    assert resolve_options({"lr_distance": 4.0}).lr_distance == 4.0
    monkeypatch.setattr(train, "BAKED_SETTINGS", {"method": "npo"})
    assert resolve_options({}).method == "npo" and resolve_options({}).beta == 0.1
    monkeypatch.setattr(train, "BAKED_SETTINGS", {"epochs": "five"})
    with pytest.raises(SubmissionInputError, match="baked setting epochs: 'five' is not of type float"):
        resolve_options({})
