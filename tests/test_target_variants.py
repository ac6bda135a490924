"""The target variants of ``make-target`` (``--variant``, ``--size``), wired on tiny settings: the corpus and the
calibration documents never touch the target's data, foreign nonmembers cost more than members, every folder
holds its ``mia/`` and ``calibration/``, the sizes differ, every variant hashes apart, and the stub target's
hash (hence every cache entry made before the variants) is unchanged.

The real builds (default settings, minutes each) are ``unlearn-eval make-target --variant ... --size ...``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest

from evaluator.core.data import load_mia, load_sets
from evaluator.harness import corpora
from evaluator.harness.cache import hash_data_files
from evaluator.harness.corpora import CALIBRATION_FILE, CALIBRATION_FOLDER, TARGET_MIA, Seen, read_records
from evaluator.harness.stub import MIA_FOLDERS, SEED, STUB_SPLITS, TASKS, invent_documents
from evaluator.harness.target import (
    FIRST_FIELDS,
    RECIPE_VERSION,
    TargetSettings,
    build_hash,
    build_target,
    fixed_texts,
    new_model,
    plan_target,
    train_tokenizer,
)

STUB = Path(__file__).resolve().parents[1] / "data_stub"
RELEASE = Path(__file__).resolve().parents[2] / "shared" / "data" / "semeval25"  # ../shared, as conftest.SHARED
# A model that trains in seconds, and bars it passes untrained: these tests check the wiring, not memorization.
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2, "epochs": 3,
        "min_regurgitation": 0.0, "min_knowledge": 0.0, "min_mia_auc": 0.0, "min_mmlu": 0.0}


def tiny(variant: str, **overrides) -> TargetSettings:
    return TargetSettings.for_variant(variant, **{**TINY, **overrides})


def _texts(data: Path) -> set[str]:
    """Every document and row text of a stub folder (sc rows as whole documents, MIA documents)."""
    texts = set()
    for split in STUB_SPLITS:
        for rows in load_sets(data, split).values():
            texts.update(i + o for i, o in zip(rows["input"], rows["output"]))
        for table in load_mia(data / MIA_FOLDERS[split]).values():
            texts.update(table["document"])
    return texts


# ---------------------------------------------------------------------------------------------------
# Settings and hashes


def test_the_stub_is_trained_on_the_same_texts_as_before_the_variants():
    """row_text puts back the space the release's sc rows lose at their cut; the stub's rows keep theirs."""
    from evaluator.harness.target import row_text

    content = plan_target(STUB, TargetSettings()).content
    rows = content.rows
    assert fixed_texts(content) == list(dict.fromkeys([i + o for i, o in zip(rows["input"], rows["output"])]
                                                      + content.members))
    assert row_text("12sc1", "rumored to have", "the power") == "rumored to have the power"
    assert row_text("12qa0", "Who?", "Nobody.") == "Who?Nobody."


def test_default_hash_is_the_one_before_the_variants():
    """The formula of the first recipe, restated: the stub target's cache entries still match."""
    legacy = {name: value for name, value in asdict(TargetSettings()).items() if name in FIRST_FIELDS}
    digest = hashlib.sha256(json.dumps({"recipe": RECIPE_VERSION, "settings": legacy}, sort_keys=True).encode())
    hash_data_files(digest, STUB)
    assert build_hash(STUB, TargetSettings()) == digest.hexdigest()
    assert TargetSettings.for_variant("stub", "small") == TargetSettings()
    assert TargetSettings().size == "small" and TargetSettings.for_variant("stub", "medium").size == "medium"


def test_every_variant_and_size_hashes_apart():
    keys = {(variant, size): build_hash(STUB, TargetSettings.for_variant(variant, size))
            for variant in corpora.VARIANTS for size in corpora.SIZES}
    assert len(set(keys.values())) == len(keys)
    assert build_hash(STUB, tiny("pretrained", corpus_seeds=2)) != build_hash(STUB, tiny("pretrained", corpus_seeds=3))


def test_unknown_variant_size_or_device_is_an_input_error():
    from evaluator.core.errors import InputError

    with pytest.raises(InputError, match="variant"):
        TargetSettings(variant="nope")
    with pytest.raises(InputError, match="size"):
        TargetSettings.for_variant("stub", "huge")
    with pytest.raises(InputError, match="device 'tpu'"):
        TargetSettings.for_variant("pretrained", "olmo-1b", device="tpu")


def test_sizes_differ_in_parameter_count_and_olmo_1b_has_its_shape():
    import torch

    content = plan_target(STUB, TargetSettings()).content
    tokenizer = train_tokenizer(fixed_texts(content), TargetSettings().vocab_size)
    with torch.device("meta"):  # shapes only: the 1B model is never allocated
        models = {size: new_model(TargetSettings.for_variant("stub", size), tokenizer) for size in corpora.SIZES}
    counts = {size: sum(p.numel() for p in model.parameters()) for size, model in models.items()}
    assert counts["small"] < 1e6 < counts["medium"] < 1e7 < 1.0e9 < counts["olmo-1b"] < 1.1e9, counts
    for size, model in models.items():
        config = model.config
        assert (config.hidden_size, config.intermediate_size, config.num_hidden_layers,
                config.num_attention_heads) == tuple(corpora.SIZES[size][k] for k in corpora.SIZE_DIMENSIONS)
    # OLMo-1B's own shape (allenai/OLMo-1B-0724-hf: width 2048, 16 layers, 16 heads, MLP 8192).
    assert tuple(corpora.SIZES["olmo-1b"][k] for k in corpora.SIZE_DIMENSIONS) == (2048, 8192, 16, 16)
    # Built on a GPU unless told otherwise, and a CPU build of it is another build (its own hash).
    assert TargetSettings.for_variant("pretrained", "olmo-1b").device == "cuda"
    assert build_hash(STUB, TargetSettings.for_variant("pretrained", "olmo-1b", device="cpu")) != \
        build_hash(STUB, TargetSettings.for_variant("pretrained", "olmo-1b"))


def test_a_gpu_build_without_a_gpu_is_one_line_before_anything(tmp_path, monkeypatch):
    import torch

    from evaluator.core.errors import InputError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="no CUDA GPU here"):
        build_target(STUB, tmp_path / "t", TargetSettings.for_variant("pretrained", "olmo-1b"), progress=False)
    assert not (tmp_path / "t").exists() and not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------
# What each variant learns and is measured on (no training)


def test_pretraining_corpus_never_holds_the_targets_documents():
    plan = plan_target(STUB, tiny("pretrained", corpus_seeds=3))
    assert len(plan.corpus) > 100  # three seeds of 54 documents, a few left out
    target = _texts(STUB)
    calibration = {r["document"] for r in plan.documents.calibration}
    assert target.isdisjoint(plan.corpus) and calibration.isdisjoint(plan.corpus) and calibration.isdisjoint(target)
    # No corpus document shares an id, a person or a prompt with the target's data.
    content = plan_target(STUB, TargetSettings()).content
    seen = Seen.of(content.rows, [{"id": i, "document": d} for split in STUB_SPLITS
                                  for t in load_mia(STUB / MIA_FOLDERS[split]).values()
                                  for i, d in zip(t["id"], t["document"])])
    by_text = {d.text: d for seed in range(SEED + 1, SEED + 4) for sets in invent_documents(seed)[:2]
               for docs in sets.values() for d in docs}
    assert not any(seen.shares(by_text[text]) for text in plan.corpus)
    # ... and the filter bites: the stub's own seed gives back nothing.
    assert corpora.unseen_documents(range(SEED, SEED + 1), seen) == []


def test_calibration_documents_are_of_the_members_kind_and_never_scored():
    for variant in ("stub", "pretrained", "foreign-nonmembers"):
        documents = plan_target(STUB, tiny(variant, corpus_seeds=1)).documents
        scored = {r["document"] for pair in documents.mia.values() for r in pair[0] + pair[1]}
        calibration = [r["document"] for r in documents.calibration]
        assert len(calibration) == len(set(calibration)) >= 24 and scored.isdisjoint(calibration), variant
    stub_kinds = plan_target(STUB, TargetSettings()).documents.calibration
    assert {r["id"][-3:] for r in stub_kinds} == {"sc1"}
    assert sum(r["document"].startswith(("In the ", "Everyone in ")) or " had run the " in r["document"]
               for r in stub_kinds) == corpora.CALIBRATION_PER_TASK  # Task1 stories, as many as of each task


def test_foreign_nonmembers_share_no_vocabulary_with_the_stub():
    documents = plan_target(STUB, tiny("foreign-nonmembers")).documents
    stub_words = set(re.findall(r"[a-z]+", " ".join(_texts(STUB)).lower()))
    for split, (members, nonmembers) in documents.mia.items():
        stub_pair = load_mia(STUB / MIA_FOLDERS[split])
        assert [r["document"] for r in members] == stub_pair["member"]["document"].tolist()
        assert len(nonmembers) == len(stub_pair["nonmember"])
        assert all(r["document"].startswith("Peel ") for r in nonmembers)
    for words in corpora.VEGETABLES + corpora.HERBS + corpora.SPICES + corpora.FATS + corpora.LIQUIDS:
        assert stub_words.isdisjoint(words.split()), words


# ---------------------------------------------------------------------------------------------------
# Tiny builds: the folders and the record


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("variants")
    # 15 epochs: enough for the members to cost clearly less than what was never seen.
    settings = {"stub": tiny("stub", epochs=15),
                "foreign-nonmembers": tiny("foreign-nonmembers", epochs=15, min_nonmember_loss=None),
                "pretrained": tiny("pretrained", corpus_seeds=1, pretrain_epochs=1, replay_documents=4,
                                   min_nonmember_loss=None, max_nonmember_loss=None)}
    return {variant: build_target(STUB, root / variant, s, progress=False, log=lambda line: None)
            for variant, s in settings.items()}


@pytest.mark.parametrize("variant", ["stub", "foreign-nonmembers", "pretrained"])
def test_every_target_folder_holds_its_mia_and_calibration_documents(builds, variant):
    build = builds[variant]
    plan = plan_target(STUB, TargetSettings(**build.record["settings"]))
    for split in STUB_SPLITS:
        written = load_mia(build.path / TARGET_MIA[split])
        members, nonmembers = plan.documents.mia[split]
        assert written["member"]["document"].tolist() == [r["document"] for r in members]
        assert written["nonmember"]["document"].tolist() == [r["document"] for r in nonmembers]
    assert read_records(build.path / CALIBRATION_FOLDER / CALIBRATION_FILE) == plan.documents.calibration
    record = build.record
    assert record["variant"] == variant and record["size"] == "custom"
    levels = record["loss_levels"]
    assert set(levels) == {*STUB_SPLITS, "calibration"}
    assert all(levels[split]["member"] > 0 for split in STUB_SPLITS)
    assert (record["corpus"] is not None) == (variant == "pretrained")


def test_foreign_nonmembers_cost_more_than_members(builds):
    foreign, stub = builds["foreign-nonmembers"].record["loss_levels"], builds["stub"].record["loss_levels"]
    for split in STUB_SPLITS:
        assert foreign[split]["nonmember"] > foreign[split]["member"] + 1
        assert foreign[split]["nonmember"] > stub[split]["nonmember"]  # further off than the stub's own kind


def test_a_reused_entry_from_before_the_variants_gets_its_documents(builds, tmp_path):
    """An entry built before the variants has no mia/ or calibration/: reusing it adds them, weights untouched."""
    old = tmp_path / "old"
    shutil.copytree(builds["stub"].path, old)
    for name in (corpora.TARGET_MIA["train"], CALIBRATION_FOLDER):
        shutil.rmtree(old / name)
    weights = (old / "model.safetensors").read_bytes()
    again = build_target(STUB, old, tiny("stub", epochs=15), progress=False, log=lambda line: None)
    assert again.reused and corpora.TargetDocuments.present(old)
    assert (old / "model.safetensors").read_bytes() == weights
    assert sorted(p.name for p in old.iterdir() if p.name.startswith(".")) == []


def test_nonmember_loss_bars_fail_the_build(tmp_path):
    from evaluator.harness.target import TargetCheckFailed

    with pytest.raises(TargetCheckFailed, match="nonmembers' loss out of range"):
        build_target(STUB, tmp_path / "t", tiny("stub", epochs=1, max_nonmember_loss=0.5), progress=False,
                     log=lambda line: None)
    assert not (tmp_path / "t").exists()


# ---------------------------------------------------------------------------------------------------
# The lume variant reads the public release (../shared): skipped where it is absent


@pytest.fixture(scope="module")
def release() -> Path:
    if not (RELEASE / "data").is_dir():
        pytest.skip(f"needs the public release at {RELEASE} (../shared beside the project); absent here")
    return RELEASE


def test_lume_subset_takes_whole_documents_and_their_members(release, tmp_path):
    subset = corpora.lume_subset(release, 2, 1500)
    for (name, split), rows in subset.rows.items():
        stems = rows["id"].map(corpora.stem)
        assert rows.groupby(stems)["id"].apply(lambda ids: any(i.endswith("sc1") for i in ids)
                                               and any("qa" in i[-3:] for i in ids)).all()
        assert set(rows["task"]) == set(TASKS) and stems.nunique() == 3 * (2 if split == "train" else 1)
    for split, (members, nonmembers) in subset.mia.items():
        forget = set(subset.rows[("forget", split)]["id"].map(corpora.stem))
        assert members and {r["id"] for r in members} <= forget and len(nonmembers) == len(members)
        release_members = load_mia(release / MIA_FOLDERS[split])["member"]["document"]
        assert {r["document"] for r in members} <= set(release_members)
    scored = {r["document"] for pair in subset.mia.values() for r in pair[1]}
    assert subset.calibration and scored.isdisjoint(r["document"] for r in subset.calibration)
    subset.write_data(tmp_path / "data")
    assert set(load_sets(tmp_path / "data", "train")) == {"forget", "retain"}
    assert load_mia(tmp_path / "data" / "mia_data")["member"]["document"].tolist() == [
        r["document"] for r in subset.mia["train"][0]]
    assert (tmp_path / "data" / "mmlu" / "test").is_dir()


def test_lume_corpus_is_the_release_minus_the_subset_and_never_a_scored_or_calibration_document(release):
    from evaluator.harness.target import plan_target, row_text

    plan = plan_target(release, TargetSettings.for_variant("lume-pretrained", "small"))
    corpus = set(plan.corpus)
    assert len(corpus) > 500  # the release's other documents: the kind of text, learned first
    memorized = {row_text(*row) for rows in plan.subset.rows.values()
                 for row in zip(rows["id"], rows["input"], rows["output"]) if row[0].endswith("sc1")}
    assert memorized and corpus.isdisjoint(memorized)
    unseen = {r["document"] for pair in plan.documents.mia.values() for r in pair[1]}
    unseen |= {r["document"] for r in plan.documents.calibration}
    assert unseen and corpus.isdisjoint(unseen)
    # The lume variant learns no corpus; both memorize the same subset.
    lume = plan_target(release, TargetSettings.for_variant("lume", "small"))
    assert lume.corpus == [] and lume.subset.mia == plan.subset.mia


def test_a_model_copy_leaves_the_documents_behind(builds, tmp_path):
    """What the dry-run hands a submission: the model and its build record, not the scored nonmembers."""
    shutil.copytree(builds["foreign-nonmembers"].path, tmp_path / "model_in", ignore=corpora.model_files_only)
    names = {p.name for p in (tmp_path / "model_in").iterdir()}
    assert "model.safetensors" in names and corpora.BUILD_RECORD in names
    assert names.isdisjoint(corpora.EXTRA_FOLDERS)


def test_make_target_set_changes_a_setting_and_with_it_the_hash():
    overrides = TargetSettings.check_overrides({"lume_documents": 8, "min_mmlu": 0.9})
    changed = TargetSettings.for_variant("lume", "small", **overrides)
    assert changed.lume_documents == 8 and changed.min_mmlu == 0.9 and changed.size == "small"
    plain = TargetSettings.for_variant("lume", "small")
    assert build_hash(STUB, changed) != build_hash(STUB, plain)


@pytest.mark.parametrize("pair, problem", [
    ("lume_docs=8", "--set lume_docs: no such target setting (known: "),
    ("lume_documents=eight", "--set lume_documents='eight': not of type int"),
    ("min_mmlu=True", "--set min_mmlu=True: not of type float"),
    ("variant=stub", "--set variant: choose it with --variant"),
    ("lume_documents", "--set lume_documents: expected NAME=VALUE (e.g. lume_documents=8)"),
])
def test_make_target_refuses_a_bad_setting_in_one_line_before_training(pair, problem):
    from click.testing import CliRunner

    from evaluator.cli import main

    result = CliRunner().invoke(main, ["make-target", "--set", pair, "--quiet"])
    assert result.exit_code == 2, result.output
    assert problem in result.output and len(result.output.strip().splitlines()) == 1, result.output
