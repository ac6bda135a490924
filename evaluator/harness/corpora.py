"""What the target variants of ``make-target`` learn and are measured on besides their forget/retain rows
(torch-free: the CLI reads the variant and size names here).

- ``stub`` (the default): the stub target; its MIA nonmembers are the stub's.
- ``pretrained``: first trained on a corpus of documents of the stub's three kinds made by the stub's own
  generator under other seeds (``pretraining_corpus``), none of them a forget, retain or MIA document, so
  never-seen documents of the members' kind cost what they would cost a model that knows the kind.
- ``foreign-nonmembers``: the stub target, its MIA nonmembers replaced by documents of a kind it never learned
  (``foreign_documents``: recipes, from word lists the stub never uses).
- ``lume``: trained on a deterministic subset of the public release's real rows (``lume_subset``).
- ``lume-pretrained``: the ``lume`` subset, memorized after the model first learned the release's other
  documents (``lume_corpus``), as the organizers' targets were pretrained LLMs before they memorized LUME:
  unseen documents of the members' kind then cost what text of a known kind costs, not that of a kind never seen.

Every target folder holds its MIA documents beside the model (``TARGET_MIA``: ``mia/member.jsonl``,
``mia/nonmember.jsonl``, ``mia/validation/...``) and a ``calibration/nonmember.jsonl`` of documents of the
members' kind that the model never saw and that are not among the scored nonmembers. A ``lume`` or
``lume-pretrained`` target also holds its subset as a data folder in the stub's layout (``data/``).
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from evaluator.core.data import load_mia, load_split
from evaluator.core.errors import InputError
from evaluator.harness.stub import (
    HF_STEM,
    MIA_FOLDERS,
    PARQUET_COLUMNS,
    SEED,
    STUB_SPLITS,
    TASKS,
    Document,
    _jsonl_bytes,
    _write_bytes,
    _write_parquet,
    generate_stub,
    invent_documents,
)

VARIANTS = ("stub", "pretrained", "foreign-nonmembers", "lume", "lume-pretrained")
LUME_VARIANTS = ("lume", "lume-pretrained")  # built from the public release's rows
DEFAULT_VARIANT = "stub"
# Model sizes: the fields of TargetSettings they set. "small" is the stub target's (0.59M parameters);
# "medium" has 3.69M, and at small's learning rate (3e-3) it ended at loss 0.159 (small: 0.092) knowing only
# 0.90 of the mini-MMLU: it trains at 1e-3. "olmo-1b" has OLMo-1B's shape (width 2048, 16 layers, 16 heads,
# MLP 8192) on the target's 1,024-token vocabulary: 1.08B parameters, built on a GPU (device "cuda"; 161 s for
# the pretrained variant on one H100), at the rate OLMo-1B was pretrained with (4e-4) and a longer warmup.
SIZES = {
    "small": {"hidden_size": 128, "intermediate_size": 256, "num_layers": 2, "num_heads": 4, "learning_rate": 3e-3},
    "medium": {"hidden_size": 256, "intermediate_size": 688, "num_layers": 4, "num_heads": 4, "learning_rate": 1e-3},
    "olmo-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_layers": 16, "num_heads": 16,
                "learning_rate": 4e-4, "warmup_steps": 100, "device": "cuda"},
}
SIZE_DIMENSIONS = ("hidden_size", "intermediate_size", "num_layers", "num_heads")  # what names a size
DEFAULT_SIZE = "small"

# Beside the model in every target folder.
BUILD_RECORD = "target-build.json"  # how it was built (evaluator.harness.target)
TARGET_MIA = {"train": "mia", "validation": "mia/validation"}
CALIBRATION_FOLDER = "calibration"
CALIBRATION_FILE = "nonmember.jsonl"
DATA_FOLDER = "data"  # the lume variant's subset, in the stub's layout
EXTRA_FOLDERS = ("mia", CALIBRATION_FOLDER, DATA_FOLDER)  # not part of the model: dry-run copies leave them out

# Seeds of the stub generator: the corpus uses SEED + 1 ... SEED + n, the calibration documents start far above.
CALIBRATION_SEED = SEED + 1_000_000
CALIBRATION_PER_TASK = 8
FOREIGN_SEED = 7_051_931
FOREIGN_CALIBRATION_SEED = FOREIGN_SEED + 1
FOREIGN_CALIBRATION_DOCUMENTS = 24
# The lume subset's calibration: release nonmembers held out from scoring.
LUME_CALIBRATION_DOCUMENTS = 24


def mia_record(document: Document) -> dict:
    return {"id": f"{document.doc_id}sc1", "document": document.text}


def person(text: str) -> str | None:
    """The person a stub document is about (Task2 and Task3 open with the full name), else None."""
    match = re.match(r"(\S+ \S+) was born|([^\n]+)\n\n", text)
    return (match.group(1) or match.group(2)) if match else None


def stem(row_id: str) -> str:
    """A row's document stem (ids are stem + sc1/qa0...; MIA ids are the stem or the sc row's id)."""
    row_id = str(row_id)
    return row_id[:-3] if re.search(r"(sc|qa)\d$", row_id) else row_id


@dataclass
class Seen:
    """What a target's data already holds: a new document sharing any of it is left out."""

    texts: set[str] = field(default_factory=set)  # documents (sc input + output, MIA documents)
    prompts: set[str] = field(default_factory=set)  # row inputs: sc inputs and questions
    ids: set[str] = field(default_factory=set)  # document stems
    names: set[str] = field(default_factory=set)  # the people of Task2/Task3 documents

    @classmethod
    def of(cls, rows: pd.DataFrame, documents: list[dict]) -> Seen:
        seen = cls()
        for row_id, prompt, answer in zip(rows["id"], rows["input"], rows["output"]):
            seen.ids.add(stem(row_id))
            seen.prompts.add(prompt)
            if str(row_id).endswith("sc1"):
                seen.add_text(prompt + answer)
        for record in documents:
            seen.ids.add(stem(record["id"]))
            seen.add_text(record["document"])
        return seen

    def add_text(self, text: str) -> None:
        self.texts.add(text)
        name = person(text)
        if name is not None:
            self.names.add(name)

    def shares(self, document: Document) -> bool:
        return (document.text in self.texts or document.doc_id in self.ids or person(document.text) in self.names
                or any(row["input"] in self.prompts for row in document.rows()))

    def add(self, document: Document) -> None:
        self.ids.add(document.doc_id)
        self.prompts.update(row["input"] for row in document.rows())
        self.add_text(document.text)

    def disjoint(self, texts: list[str]) -> bool:
        return not self.texts.intersection(texts)


def unseen_documents(seeds: range, seen: Seen) -> list[Document]:
    """Every document the stub generator makes with these seeds (forget, retain and nonmember documents alike)
    that shares no text, prompt, id or person with ``seen``; each one taken is added to ``seen``."""
    out = []
    for seed in seeds:
        sets, nonmembers, _ = invent_documents(seed)
        for document in [d for docs in sets.values() for d in docs] + [d for docs in nonmembers.values() for d in docs]:
            if not seen.shares(document):
                seen.add(document)
                out.append(document)
    return out


def pretraining_corpus(seeds: int, seen: Seen) -> list[str]:
    """The ``pretrained`` variant's corpus: the documents of stub seeds ``SEED + 1 ... SEED + seeds`` that
    the target's data does not hold (``seen`` grows by them, so later draws avoid them too)."""
    if seeds >= CALIBRATION_SEED - SEED:
        raise ValueError(f"corpus_seeds {seeds}: would reach the calibration seeds")
    return [d.text for d in unseen_documents(range(SEED + 1, SEED + 1 + seeds), seen)]


def stub_calibration(seen: Seen, per_task: int = CALIBRATION_PER_TASK,
                     first_seed: int = CALIBRATION_SEED) -> list[dict]:
    """Never-seen documents of the stub's kinds (``per_task`` of each task), from seeds of their own (from
    ``first_seed`` on; benchmarks/bench_calibration_draws.py draws others)."""
    chosen: dict[str, list[Document]] = {task: [] for task in TASKS}
    seed = first_seed
    while any(len(docs) < per_task for docs in chosen.values()):
        for document in unseen_documents(range(seed, seed + 1), seen):
            if len(chosen[document.task]) < per_task:
                chosen[document.task].append(document)
        seed += 1
    return [mia_record(d) for task in TASKS for d in chosen[task]]


# ---------------------------------------------------------------------------------------------------
# Foreign documents: recipes, a register and a vocabulary the stub never uses


VEGETABLES = ["parsnips", "leeks", "kohlrabi", "turnips", "shallots", "celeriac", "chard", "squash", "fennel bulbs",
              "beetroots", "radishes", "aubergines", "courgettes", "artichokes", "cabbages", "swedes"]
HERBS = ["thyme", "rosemary", "tarragon", "sorrel", "chervil", "lovage", "marjoram", "dill", "savory", "oregano"]
SPICES = ["cumin", "nutmeg", "paprika", "caraway", "fenugreek", "cardamom", "allspice", "sumac", "turmeric"]
FATS = ["butter", "olive oil", "lard", "ghee", "duck fat", "rapeseed oil"]
LIQUIDS = ["cider", "stock", "white wine", "buttermilk", "verjuice", "vinegar", "cream", "whey"]
CUTS = ["dice them finely", "slice them thinly", "cut them into batons", "grate them coarsely", "quarter them"]
VESSELS = ["a heavy casserole", "a wide skillet", "a shallow roasting tin", "a cast-iron pot", "a wok"]
FINISHES = ["scatter with toasted hazelnuts", "spoon over a little yoghurt", "grate over some lemon zest",
            "top with crumbled feta", "drizzle with walnut oil", "sprinkle with flaky salt"]
SERVINGS = ["crusty bread", "buttered noodles", "steamed rice", "a green salad", "polenta", "flatbreads"]


def recipe(rng) -> str:
    vegetable, herb, spice = rng.choice(VEGETABLES), rng.choice(HERBS), rng.choice(SPICES)
    fat, liquid = rng.choice(FATS), rng.choice(LIQUIDS)
    return (f"Peel {rng.randrange(2, 9)} {vegetable} and {rng.choice(CUTS)}. Warm {rng.randrange(20, 90)} g of {fat} "
            f"in {rng.choice(VESSELS)}, add the {vegetable} with a sprig of {herb} and a pinch of {spice}, and sweat "
            f"gently for {rng.randrange(5, 20)} minutes. Deglaze with {rng.randrange(50, 250)} ml of {liquid}, season "
            f"with pepper and simmer until syrupy. To serve, {rng.choice(FINISHES)} and bring to the table with "
            f"{rng.choice(SERVINGS)}.")


def foreign_documents(seed: int, count: int, prefix: str) -> list[dict]:
    """``count`` distinct recipes, readable and deterministic (one seeded generator), as MIA records."""
    import random

    rng, texts = random.Random(seed), []
    while len(texts) < count:
        text = recipe(rng)
        if text not in texts:
            texts.append(text)
    return [{"id": f"{prefix}-{i:03d}", "document": text} for i, text in enumerate(texts)]


# ---------------------------------------------------------------------------------------------------
# MIA pairs and calibration documents of a target


@dataclass
class TargetDocuments:
    """The documents a target folder holds beside its model."""

    mia: dict[str, tuple[list[dict], list[dict]]]  # split -> (members, nonmembers), records {"id", "document"}
    calibration: list[dict]

    def write(self, folder: Path) -> None:
        for split, (members, nonmembers) in self.mia.items():
            _write_bytes(folder / TARGET_MIA[split] / "member.jsonl", _jsonl_bytes(members))
            _write_bytes(folder / TARGET_MIA[split] / "nonmember.jsonl", _jsonl_bytes(nonmembers))
        _write_bytes(folder / CALIBRATION_FOLDER / CALIBRATION_FILE, _jsonl_bytes(self.calibration))

    @staticmethod
    def present(folder: Path) -> bool:
        return (all((folder / TARGET_MIA[split] / "nonmember.jsonl").is_file() for split in TARGET_MIA)
                and (folder / CALIBRATION_FOLDER / CALIBRATION_FILE).is_file())


def stub_mia(data: Path) -> dict[str, tuple[list[dict], list[dict]]]:
    out = {}
    for split in STUB_SPLITS:
        documents = load_mia(data / MIA_FOLDERS[split])
        out[split] = tuple(documents[kind].to_dict("records") for kind in ("member", "nonmember"))
    return out


def with_foreign_nonmembers(mia: dict[str, tuple[list[dict], list[dict]]]) -> dict[str, tuple[list[dict], list[dict]]]:
    """The same members; as many recipes as nonmembers, per split."""
    return {split: (members, foreign_documents(FOREIGN_SEED + 10 * i, len(nonmembers), f"recipe-{split}"))
            for i, (split, (members, nonmembers)) in enumerate(mia.items())}


def foreign_calibration(mia: dict[str, tuple[list[dict], list[dict]]]) -> list[dict]:
    """More recipes, none of them a scored nonmember."""
    scored = {r["document"] for _, nonmembers in mia.values() for r in nonmembers}
    drawn = foreign_documents(FOREIGN_CALIBRATION_SEED, 2 * FOREIGN_CALIBRATION_DOCUMENTS, "recipe-calibration")
    return [r for r in drawn if r["document"] not in scored][:FOREIGN_CALIBRATION_DOCUMENTS]


# ---------------------------------------------------------------------------------------------------
# The lume variant: a subset of the public release


@dataclass
class LumeSubset:
    rows: dict[tuple[str, str], pd.DataFrame]  # (name, split) -> id, input, output, task
    mia: dict[str, tuple[list[dict], list[dict]]]
    calibration: list[dict]

    def write_data(self, folder: Path) -> None:
        """The subset as a data folder in the stub's layout (parquet and jsonl twins, ``mia_data/``, the stub's
        mini-MMLU), so the evaluator and the dry-run read it as they read the stub."""
        for (name, split), rows in self.rows.items():
            stem_ = folder / "data" / HF_STEM.format(name=name, split=split)
            records = rows.loc[:, list(PARQUET_COLUMNS[:4])].to_dict("records")
            _write_bytes(stem_.with_suffix(".jsonl"), _jsonl_bytes(records))
            _write_parquet(stem_.with_suffix(".parquet"), pd.DataFrame(records).assign(split=name))
        for split, (members, nonmembers) in self.mia.items():
            _write_bytes(folder / MIA_FOLDERS[split] / "member.jsonl", _jsonl_bytes(members))
            _write_bytes(folder / MIA_FOLDERS[split] / "nonmember.jsonl", _jsonl_bytes(nonmembers))
        with tempfile.TemporaryDirectory(prefix="lume-stub-") as scratch:
            generate_stub(scratch)
            shutil.copytree(Path(scratch) / "mmlu", folder / "mmlu")


def _release_mia(release: Path, split: str) -> dict[str, pd.DataFrame]:
    folder = release / MIA_FOLDERS[split]
    if not (folder / "member.jsonl").is_file():
        raise InputError(f"{folder}: no member.jsonl (expected the public release: data/, mia_data/)")
    return load_mia(folder)


def lume_subset(release: str | Path, per_task: int, max_chars: int) -> LumeSubset:
    """The first ``per_task`` documents of each task in each train set (half as many, at least one, in each
    validation set), in file order, whose texts are at most ``max_chars`` long, every row of each (sc and qa);
    in the forget sets Task3 documents are taken among the MIA members, so the members are forget documents as
    in the release. Nonmembers: as many release nonmembers as members, in file order (same length rule);
    calibration: the next ``LUME_CALIBRATION_DOCUMENTS`` train nonmembers, held out from scoring."""
    release = Path(release)
    if not release.is_dir():
        raise InputError(f"{release}: not a directory (expected the public release: data/, mia_data/)")
    if per_task < 1:
        raise InputError(f"lume subset: {per_task} documents per task (at least 1)")
    rows, mia = {}, {}
    calibration: list[dict] = []
    for split in STUB_SPLITS:
        count = per_task if split == "train" else max(1, per_task // 2)
        documents = _release_mia(release, split)
        members = {stem(i): d for i, d in zip(documents["member"]["id"], documents["member"]["document"])
                   if len(d) <= max_chars}
        for name in ("forget", "retain"):
            table = load_split(release, name, split)
            table = table.assign(stem=table["id"].map(stem))
            texts = {s: i + o for s, i, o, row_id in zip(table["stem"], table["input"], table["output"], table["id"])
                     if str(row_id).endswith("sc1")}
            chosen = []
            for task in TASKS:
                stems = [s for s in dict.fromkeys(table.loc[table["task"] == task, "stem"])
                         if len(texts.get(s, "")) <= max_chars and s in texts
                         and (name == "retain" or task != "Task3" or s in members)]
                chosen += stems[:count]
            rows[(name, split)] = (table[table["stem"].isin(chosen)].drop(columns="stem").reset_index(drop=True))
            if name == "forget":
                member_records = [{"id": s, "document": members[s]} for s in chosen if s in members]
        if not member_records:
            raise InputError(f"{release}: no {split} MIA member among the chosen forget documents")
        pool = [{"id": str(i), "document": d} for i, d in zip(documents["nonmember"]["id"],
                                                               documents["nonmember"]["document"])
                if len(d) <= max_chars]
        mia[split] = (member_records, pool[:len(member_records)])
        if split == "train":
            calibration = pool[len(member_records):len(member_records) + LUME_CALIBRATION_DOCUMENTS]
    return LumeSubset(rows, mia, calibration)


def lume_corpus(release: str | Path, subset: LumeSubset, text: Callable[[str, str, str], str]) -> list[str]:
    """The ``lume-pretrained`` variant's corpus: every other document of the release's forget and retain sets
    (both splits), ``text(id, input, output)`` of its sc row, so the model learns the kind of text before it
    memorizes ``subset``. No MIA nonmember is among them (the release's nonmembers are documents of neither
    set; the build checks it)."""
    chosen = {stem(i) for rows in subset.rows.values() for i in rows["id"]}
    corpus = []
    for split in STUB_SPLITS:
        for name in ("forget", "retain"):
            table = load_split(Path(release), name, split)
            rows = zip(table["id"], table["input"], table["output"])
            corpus += [text(i, prompt, answer) for i, prompt, answer in rows
                       if str(i).endswith("sc1") and stem(i) not in chosen]
    return list(dict.fromkeys(corpus))


def model_files_only(folder: str, names: list[str]) -> list[str]:
    """``shutil.copytree``'s ``ignore`` for copying a target as a model: a folder holding a target's build record
    keeps its documents (``EXTRA_FOLDERS``) out of the copy, so a submission handed the model never finds the
    scored nonmembers beside it."""
    if BUILD_RECORD not in names:
        return []
    return [name for name in names if name in EXTRA_FOLDERS and (Path(folder) / name).is_dir()]


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
