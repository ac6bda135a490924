"""MMLU exactly as open-instruct's ``eval/mmlu/run_eval.py`` scored it (SPEC section 3, "MMLU"), and the
utility gate built on its ``average_acc``.

Three layers, kept apart:

- Data and prompts (pure): the original CSV layout (``dev/``, ``test/``, ``<subject>_<split>.csv``, no
  header: question, A, B, C, D, answer) or the Hugging Face ``cais/mmlu`` parquet layout
  (``<subject>/test-*.parquet``, ``<subject>/dev-*.parquet``, or one ``all/`` folder; columns question,
  subject, choices, answer 0-3), the open-instruct prompt and its 2048-token cut. A parquet table is
  written out as the CSV it came from and read back with ``read_csv``, so both layouts give the same
  values (numbers included), hence the same prompts.
- Scoring (pure): per-question correctness from the four candidate probabilities, ``metrics.json``
  (``average_acc``, ``subcat_acc``, ``cat_acc``) and the gate.
- Model I/O: the next-token probabilities of ``" A"`` .. ``" D"``. Two paths give the same numbers:

  - reference (``batch_size=1``): open-instruct with ``eval_batch_size=1``, one full prompt at a time,
    as the golden run (SPEC section 6) was made;
  - fast (``batch_size>1``): the few-shot header shared by every question of a subject is run once and
    its key/value cache reused; only each question's own tokens run on top of it, right-padded in
    batches. Each question still sees exactly the tokens of its joint ``header + question``
    tokenization (checked token by token; a question that does not start with the cached tokens runs
    its full prompt instead).

Faithful details (checked against open-instruct's code and ``golden/mmlu``):

- The header is ``"... about" + " " + " abstract algebra" + ".\\n\\n"``: open-instruct's
  ``format_subject`` puts a space before every word, so there are two spaces after "about".
- Choices and questions are formatted with ``str.format`` of the values pandas' default ``read_csv``
  gives (a numeric column reads as numbers, as it did for open-instruct).
- The 2048-token cut counts tokens without special tokens; the model input is the default
  ``tokenizer(prompt)`` (with special tokens).
- Probabilities: softmax over the whole vocabulary of the last position's logits (in the model's dtype),
  then the four candidate columns; the prediction is the first argmax of those four.
- ``average_acc`` is the mean over all test questions of all subjects (not a mean of subject means).

Where open-instruct has no defined behaviour we say what we do: a question longer than 2048 tokens on
its own keeps its prompt with no dev examples (open-instruct's loop would never end); ``--ntrain`` larger
than a dev file is an error (open-instruct crashes on it); a subcategory or category with no question
among the chosen subjects is left out of ``subcat_acc``/``cat_acc`` (open-instruct crashes on it).
"""

from __future__ import annotations

import copy
import functools
import io
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from evaluator.core.atomic import write_json, write_with_atomic
from evaluator.core.errors import InputError
from evaluator.core.modes import DEFAULT_BATCH_SIZE, DEFAULT_NTRAIN, DTYPES
from evaluator.core.results import read_mmlu_average
from evaluator.model.engine import check_checkpoint, load_model

CHOICES = ("A", "B", "C", "D")
PROBABILITY_COLUMNS = tuple(f"choice{letter}_probs" for letter in CHOICES)
MAX_PROMPT_TOKENS = 2048  # open-instruct: "make sure every prompt is less than 2048 tokens"
METRICS_FILE = "metrics.json"
HEADER_TEMPLATE = "The following are multiple choice questions (with answers) about {}.\n\n"


# ---------------------------------------------------------------------------------------------------
# Data (pure)


@dataclass
class SubjectData:
    """One subject's dev examples (the first ``ntrain`` rows) and test questions, as pandas read them."""

    name: str
    dev: pd.DataFrame
    test: pd.DataFrame


PARQUET_COLUMNS = ("question", "choices", "answer")
PARQUET_ALL = "all"  # cais/mmlu's folder with every subject in one table (a "subject" column)
PARQUET_NOT_SUBJECTS = (PARQUET_ALL, "auxiliary_train")


def _read_split(path: Path, text: str | None = None) -> pd.DataFrame:
    """A split in the CSV layout from ``path`` (or from ``text``, the CSV a parquet table was turned
    into; ``path`` then only names it)."""
    try:
        # pandas defaults, header=None: how open-instruct reads them, so numbers format as it saw them.
        table = pd.read_csv(path if text is None else io.StringIO(text), header=None)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read CSV ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if table.shape[1] != 2 + len(CHOICES):
        raise InputError(f"{path}: {table.shape[1]} columns, expected 6 (question, A, B, C, D, answer)")
    bad = ~table.iloc[:, -1].isin(CHOICES)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: row {row + 1}: answer {table.iloc[row, -1]!r} is not one of A, B, C, D")
    return table


def _parquet_files(folder: Path, split: str) -> list[Path]:
    """The shards of one split in a cais/mmlu folder (``test-00000-of-00001.parquet``, ...), in order."""
    return sorted(folder.glob(f"{split}-*.parquet"))


def is_parquet_layout(data_dir: str | Path) -> bool:
    """Whether ``data_dir`` is the cais/mmlu parquet layout (no ``test/`` folder of CSVs, but subject
    folders or an ``all/`` folder holding ``test-*.parquet``)."""
    data_dir = Path(data_dir)
    if (data_dir / "test").is_dir():
        return False
    return any(_parquet_files(folder, "test") for folder in data_dir.glob("*/") if folder.is_dir())


def _parquet_split(data_dir: Path, subject: str, split: str) -> tuple[Path, str] | None:
    """One subject's split of the parquet layout as CSV text (question, A, B, C, D, answer letter), and
    the file it came from; ``None`` when there is no such split. Its own folder first, else ``all/``."""
    files = _parquet_files(data_dir / subject, split)
    from_all = not files and subject not in PARQUET_NOT_SUBJECTS
    if from_all:
        files = _parquet_files(data_dir / PARQUET_ALL, split)
    if not files:
        return None
    frames = []
    for file in files:
        try:
            frame = pd.read_parquet(file)
        except (OSError, ValueError) as exc:
            raise InputError(f"{file}: cannot read parquet ({type(exc).__name__}: {exc})".splitlines()[0]) from None
        missing = [c for c in PARQUET_COLUMNS + (("subject",) if from_all else ()) if c not in frame.columns]
        if missing:
            raise InputError(f"{file}: no column {', '.join(missing)} (cais/mmlu: question, subject, choices, "
                             f"answer)")
        frames.append(frame[frame["subject"] == subject] if from_all else frame)
    table = pd.concat(frames, ignore_index=True)
    if from_all and table.empty:
        return None
    rows = []
    for index, (question, choices, answer) in enumerate(zip(table["question"], table["choices"], table["answer"])):
        if choices is None or len(choices) != len(CHOICES):
            raise InputError(f"{files[0].parent}: {split} row {index + 1} of {subject}: "
                             f"{0 if choices is None else len(choices)} choices, expected 4")
        if isinstance(answer, (bool, np.bool_)) or not isinstance(answer, (int, np.integer)) \
                or not 0 <= answer < len(CHOICES):
            raise InputError(f"{files[0].parent}: {split} row {index + 1} of {subject}: answer {answer!r} is not "
                             f"0-3")
        rows.append([question, *choices, CHOICES[int(answer)]])
    text = pd.DataFrame(rows).to_csv(header=False, index=False)
    return files[0], text


def list_subjects(data_dir: str | Path) -> list[str]:
    """Every subject with a ``test/<subject>_test.csv`` (or, in the parquet layout, a
    ``<subject>/test-*.parquet`` or rows in ``all/test-*.parquet``), sorted (open-instruct's order)."""
    data_dir = Path(data_dir)
    if is_parquet_layout(data_dir):
        subjects = {folder.name for folder in data_dir.glob("*/")
                    if folder.name not in PARQUET_NOT_SUBJECTS and _parquet_files(folder, "test")}
        for file in _parquet_files(data_dir / PARQUET_ALL, "test"):
            try:
                subjects.update(pd.read_parquet(file, columns=["subject"])["subject"].unique())
            except (OSError, ValueError, KeyError) as exc:
                raise InputError(f"{file}: cannot read its subject column ({type(exc).__name__})") from None
        return sorted(subjects)
    test_dir = data_dir / "test"
    if not test_dir.is_dir():
        raise InputError(f"{test_dir}: not found (MMLU data needs dev/ and test/ with <subject>_<split>.csv, "
                         f"or the cais/mmlu parquet layout <subject>/test-*.parquet)")
    subjects = sorted(p.name[: -len("_test.csv")] for p in test_dir.glob("*_test.csv"))
    if not subjects:
        raise InputError(f"{test_dir}: no <subject>_test.csv file")
    return subjects


def load_subject(data_dir: str | Path, subject: str, ntrain: int) -> SubjectData:
    """SPEC 3 / SPEC 1 CSV layout (or cais/mmlu parquet). A missing dev file is fine with ``ntrain == 0``,
    an error otherwise."""
    data_dir = Path(data_dir)
    if is_parquet_layout(data_dir):
        return _load_parquet_subject(data_dir, subject, ntrain)
    test = _read_split(data_dir / "test" / f"{subject}_test.csv")
    dev_path = data_dir / "dev" / f"{subject}_dev.csv"
    if ntrain == 0:
        dev = _read_split(dev_path).iloc[:0] if dev_path.is_file() else test.iloc[:0]
    else:
        if not dev_path.is_file():
            raise InputError(f"{dev_path}: file not found (needed for --ntrain {ntrain}; --ntrain 0 needs no dev file)")
        dev = _read_split(dev_path)
        if len(dev) < ntrain:
            raise InputError(f"{dev_path}: {len(dev)} dev examples, fewer than --ntrain {ntrain}")
        dev = dev.iloc[:ntrain]
    return SubjectData(subject, dev, test)


def _load_parquet_subject(data_dir: Path, subject: str, ntrain: int) -> SubjectData:
    """``load_subject`` for the parquet layout: the same frames the equivalent CSV tree gives."""
    found = _parquet_split(data_dir, subject, "test")
    if found is None:
        raise InputError(f"{data_dir / subject}: no test-*.parquet (nor rows of {subject} in {PARQUET_ALL}/)")
    test = _read_split(*found)
    dev_found = _parquet_split(data_dir, subject, "dev")
    dev = _read_split(*dev_found) if dev_found is not None else test.iloc[:0]
    if ntrain > 0 and dev_found is None:
        raise InputError(f"{data_dir / subject}: no dev-*.parquet (needed for --ntrain {ntrain}; --ntrain 0 needs "
                         f"no dev file)")
    if len(dev) < ntrain:
        raise InputError(f"{dev_found[0]}: {len(dev)} dev examples, fewer than --ntrain {ntrain}")
    return SubjectData(subject, dev.iloc[:ntrain], test)


def load_mmlu(data_dir: str | Path, subjects: Sequence[str] | None = None,
              ntrain: int = DEFAULT_NTRAIN) -> list[SubjectData]:
    """Read (and check) every chosen subject before any model runs. ``subjects`` None means all."""
    if ntrain < 0:
        raise InputError(f"--ntrain must be 0 or more, not {ntrain}")
    available = list_subjects(data_dir)
    if subjects:
        unknown = [s for s in subjects if s not in available]
        if unknown:
            raise InputError(f"{Path(data_dir) / 'test'}: no test file for subject(s) {', '.join(unknown)}")
        chosen = list(subjects)
    else:
        chosen = available
    return [load_subject(data_dir, subject, ntrain) for subject in chosen]


# ---------------------------------------------------------------------------------------------------
# Prompts (pure)


def subject_words(subject: str) -> str:
    """open-instruct's ``format_subject``: every word preceded by a space (``" abstract algebra"``)."""
    return "".join(" " + word for word in subject.split("_"))


def format_question(table: pd.DataFrame, index: int, include_answer: bool) -> str:
    """Question, the four lettered choices, ``"\\nAnswer:"`` and, for a dev example, ``" X\\n\\n"``."""
    row = table.iloc[index]
    text = "{}".format(row.iloc[0])
    for position, letter in enumerate(CHOICES):
        text += "\n{}. {}".format(letter, row.iloc[position + 1])
    text += "\nAnswer:"
    if include_answer:
        text += " {}\n\n".format(row.iloc[len(CHOICES) + 1])
    return text


def few_shot_header(subject: str, dev: pd.DataFrame, k: int) -> str:
    """The subject line and the first ``k`` dev examples with their answers."""
    return HEADER_TEMPLATE.format(subject_words(subject)) + "".join(
        format_question(dev, i, include_answer=True) for i in range(k))


@dataclass(frozen=True)
class Prompt:
    """One test question's prompt, split where the shared few-shot header ends: ``header + question``."""

    header: str
    question: str
    ntrain_used: int

    @property
    def text(self) -> str:
        return self.header + self.question


def subject_prompts(data: SubjectData, ntrain: int, count_tokens: Callable[[str], int],
                    max_tokens: int = MAX_PROMPT_TOKENS) -> list[Prompt]:
    """SPEC 3: ``ntrain`` dev examples, one fewer at a time while the prompt is over ``max_tokens``
    (counted by ``count_tokens``, open-instruct: without special tokens); never fewer than 0."""
    ntrain = min(ntrain, len(data.dev))
    headers = {}
    prompts = []
    for i in range(len(data.test)):
        question = format_question(data.test, i, include_answer=False)
        k = ntrain
        while True:
            if k not in headers:
                headers[k] = few_shot_header(data.name, data.dev, k)
            if k == 0 or count_tokens(headers[k] + question) <= max_tokens:
                break
            k -= 1
        prompts.append(Prompt(headers[k], question, k))
    return prompts


def candidate_token_ids(tokenizer) -> list[int]:
    """open-instruct: the last id of ``encode(" " + letter)`` for each of A, B, C, D."""
    return [tokenizer.encode(" " + letter, add_special_tokens=False)[-1] for letter in CHOICES]


# ---------------------------------------------------------------------------------------------------
# Scoring (pure)


@functools.lru_cache(maxsize=1)
def subject_categories() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(subject -> subcategories, category -> subcategories) of the original MMLU release, from
    ``evaluator/resources/mmlu_categories.json``."""
    text = resources.files("evaluator").joinpath("resources", "mmlu_categories.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return data["subcategories"], data["categories"]


def predicted_indices(probabilities: np.ndarray) -> np.ndarray:
    """Index (0..3) of the most probable candidate, the first on a tie (as ``torch.argmax``)."""
    return np.asarray(probabilities).argmax(axis=1)


def correctness(probabilities: np.ndarray, answers: Iterable[str]) -> np.ndarray:
    """Per question: is the predicted letter the answer letter."""
    letters = np.array(CHOICES)[predicted_indices(probabilities)]
    return letters == np.asarray(list(answers), dtype=object)


def subject_table(data: SubjectData, probabilities: np.ndarray) -> pd.DataFrame:
    """The per-subject CSV: the test rows, ``correct`` and ``choiceA_probs`` .. ``choiceD_probs``."""
    table = data.test.copy()
    table["correct"] = correctness(probabilities, data.test.iloc[:, -1])
    # float64 of the float32 values: the text open-instruct's ``probs.tolist()`` round trip writes.
    for column, values in zip(PROBABILITY_COLUMNS, np.asarray(probabilities, dtype=np.float64).T):
        table[column] = values
    return table


def mmlu_metrics(correct_by_subject: dict[str, Sequence[bool]], ntrain: int | None = None) -> dict:
    """SPEC 3: ``average_acc`` over all questions; ``subcat_acc`` and ``cat_acc`` over the questions of
    the subjects in each (original MMLU categories; empty ones left out). Plus ``subjects``, ``ntrain``."""
    subcategories, categories = subject_categories()
    all_correct: list[bool] = []
    by_subcategory: dict[str, list[bool]] = {s: [] for names in subcategories.values() for s in names}
    by_category: dict[str, list[bool]] = {c: [] for c in categories}
    for subject, correct in correct_by_subject.items():
        correct = [bool(c) for c in correct]
        all_correct += correct
        for subcategory in subcategories.get(subject, []):
            by_subcategory[subcategory] += correct
            for category, members in categories.items():
                if subcategory in members:
                    by_category[category] += correct
    mean = lambda values: float(np.mean(values))  # noqa: E731
    metrics = {
        "average_acc": mean(all_correct) if all_correct else float("nan"),
        "subcat_acc": {name: mean(v) for name, v in by_subcategory.items() if v},
        "cat_acc": {name: mean(v) for name, v in by_category.items() if v},
        "subjects": list(correct_by_subject),
    }
    if ntrain is not None:
        metrics["ntrain"] = ntrain
    return metrics


# ---------------------------------------------------------------------------------------------------
# Model I/O


def resolve_dtype(checkpoint: str | Path, dtype: str) -> str:
    """``auto`` (open-instruct's ``torch_dtype="auto"``): the checkpoint's own dtype from config.json,
    float32 when it names none."""
    if dtype != "auto":
        return dtype
    try:
        config = json.loads((Path(checkpoint) / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "float32"
    named = config.get("dtype") or config.get("torch_dtype")
    return named if named in DTYPES else "float32"


def _device(model):
    return next(model.parameters()).device


def _last_position_probs(logits, candidate_ids: Sequence[int]):
    """Softmax over the whole vocabulary (model dtype, as open-instruct), then the candidates, float32."""
    return torch.softmax(logits, dim=-1)[:, list(candidate_ids)].float()


def reference_choice_probs(lm, prompts: Sequence[str], candidate_ids: Sequence[int],
                           progress: str = "") -> np.ndarray:
    """open-instruct's ``get_next_word_predictions`` with batch size 1: one full prompt at a time."""
    model, tokenizer = lm.model, lm.tokenizer
    device = _device(model)
    rows = []
    with torch.no_grad():
        for prompt in tqdm(prompts, desc=progress, disable=not progress):
            encoded = tokenizer(prompt, return_tensors="pt")
            logits = model(input_ids=encoded.input_ids.to(device),
                           attention_mask=encoded.attention_mask.to(device)).logits[:, -1, :]
            rows.append(_last_position_probs(logits, candidate_ids)[0].cpu().numpy())
    return np.stack(rows) if rows else np.zeros((0, len(CHOICES)), dtype=np.float32)


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass
class PrefixCacheStats:
    """What the fast path did: questions run on a cached header, questions that ran their full prompt,
    header tokens computed once per header instead of once per question."""

    cached_questions: int = 0
    full_prompt_questions: int = 0
    headers: int = 0
    cached_header_tokens: int = 0

    def add(self, other: "PrefixCacheStats") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def shared_prefix_plan(header_ids: Sequence[int], joint_ids: Sequence[Sequence[int]],
                       special_ids: Iterable[int] = ()) -> tuple[int, list[bool]]:
    """Token-level check of the shared header (pure).

    Returns the number of leading tokens to cache and, per question, whether its joint tokenization
    starts with exactly those tokens and has at least one token of its own after them. The cached part
    is the header's own tokens (less trailing special tokens a tokenizer appends to every text), cut back
    to what every question's joint tokenization shares: a BPE merge across the header/question boundary
    can only change the header's last few tokens.
    """
    special_ids = set(special_ids)
    header_ids = list(header_ids)
    while header_ids and header_ids[-1] in special_ids:
        header_ids.pop()
    length = len(header_ids)
    for joint in joint_ids:
        length = min(length, _common_prefix_length(header_ids, joint), len(joint) - 1)
    length = max(length, 0)
    prefix = header_ids[:length]
    usable = [length > 0 and list(joint[:length]) == prefix and len(joint) > length for joint in joint_ids]
    return length, usable


def prefix_cached_choice_probs(lm, prompts: Sequence[Prompt], candidate_ids: Sequence[int],
                               batch_size: int = DEFAULT_BATCH_SIZE, progress: str = "",
                               stats: PrefixCacheStats | None = None) -> np.ndarray:
    """The fast path: per distinct header, its key/value cache once; each question's own tokens on top,
    right-padded in batches (longest first), each row's probabilities at its own last real token.

    Every question runs exactly its joint ``tokenizer(header + question)`` ids, so the numbers are the
    reference path's up to floating-point summation order.
    """
    model, tokenizer = lm.model, lm.tokenizer
    device = _device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    stats = stats if stats is not None else PrefixCacheStats()
    results = np.zeros((len(prompts), len(CHOICES)), dtype=np.float32)
    groups: dict[str, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(prompt.header, []).append(index)

    bar = tqdm(total=len(prompts), desc=progress, disable=not progress)
    with torch.no_grad():
        for header, members in groups.items():
            joint = [tokenizer(prompts[i].text).input_ids for i in members]
            length, usable = shared_prefix_plan(tokenizer(header).input_ids, joint, tokenizer.all_special_ids)
            cached = [(i, ids[length:]) for i, ids, ok in zip(members, joint, usable) if ok]
            full = [i for i, ok in zip(members, usable) if not ok]
            if full:
                results[full] = reference_choice_probs(lm, [prompts[i].text for i in full], candidate_ids)
                bar.update(len(full))
                stats.full_prompt_questions += len(full)
            if not cached:
                continue
            stats.headers += 1
            stats.cached_header_tokens += length
            stats.cached_questions += len(cached)
            prefix_ids = torch.tensor([joint[members.index(cached[0][0])][:length]], device=device)
            prefix_cache = model(input_ids=prefix_ids, use_cache=True, logits_to_keep=1).past_key_values
            cached.sort(key=lambda item: -len(item[1]))
            for start in range(0, len(cached), batch_size):
                batch = cached[start:start + batch_size]
                width = max(len(suffix) for _, suffix in batch)
                input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                suffix_mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, (_, suffix) in enumerate(batch):
                    input_ids[row, : len(suffix)] = torch.tensor(suffix)
                    suffix_mask[row, : len(suffix)] = 1
                attention_mask = torch.cat([torch.ones((len(batch), length), dtype=torch.long), suffix_mask], 1)
                position_ids = (length + torch.arange(width)).unsqueeze(0).expand(len(batch), -1)
                last = [len(suffix) - 1 for _, suffix in batch]
                keep = sorted(set(last))
                cache = copy.deepcopy(prefix_cache)  # a fresh copy per batch: the forward pass appends to it
                cache.batch_repeat_interleave(len(batch))
                inputs = dict(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                              position_ids=position_ids.to(device), past_key_values=cache, use_cache=True)
                try:  # only the positions some row ends at go through the (large) output projection
                    logits = model(**inputs, logits_to_keep=torch.tensor(keep, device=device)).logits
                    columns = torch.tensor([keep.index(p) for p in last], device=device)
                except TypeError:  # a model class without ``logits_to_keep``
                    cache = copy.deepcopy(prefix_cache)
                    cache.batch_repeat_interleave(len(batch))
                    logits = model(**{**inputs, "past_key_values": cache}).logits
                    columns = torch.tensor(last, device=device)
                rows = torch.arange(len(batch), device=device)
                probs = _last_position_probs(logits[rows, columns], candidate_ids).cpu().numpy()
                for row, (index, _) in enumerate(batch):
                    results[index] = probs[row]
                bar.update(len(batch))
                del cache, logits
    bar.close()
    return results


def subject_choice_probs(lm, data: SubjectData, ntrain: int, batch_size: int = DEFAULT_BATCH_SIZE,
                         progress: str = "", stats: PrefixCacheStats | None = None) -> np.ndarray:
    """(questions, 4) candidate probabilities of one subject: reference path at ``batch_size`` 1, the
    prefix-cached path above it."""
    tokenizer = lm.tokenizer
    prompts = subject_prompts(data, ntrain, lambda text: len(tokenizer(text, add_special_tokens=False).input_ids))
    candidate_ids = candidate_token_ids(tokenizer)
    if batch_size <= 1:
        return reference_choice_probs(lm, [p.text for p in prompts], candidate_ids, progress)
    return prefix_cached_choice_probs(lm, prompts, candidate_ids, batch_size, progress, stats)


@dataclass
class MMLURun:
    """Outputs of one MMLU run: the metrics and each subject's table."""

    metrics: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    stats: PrefixCacheStats = field(default_factory=PrefixCacheStats)

    @property
    def average(self) -> float:
        return self.metrics["average_acc"]


def run_mmlu(lm, subjects: Sequence[SubjectData], ntrain: int = DEFAULT_NTRAIN,
             batch_size: int = DEFAULT_BATCH_SIZE, out: str | Path | None = None,
             show_progress: bool = True) -> MMLURun:
    """Score every subject with a loaded model (``evaluator.model.engine.load_model``). With ``out``, write
    ``<subject>.csv`` as each subject finishes and ``metrics.json`` at the end, all atomically."""
    run = MMLURun(metrics={})
    correct = {}
    for data in tqdm(subjects, desc="MMLU subjects", disable=not show_progress or len(subjects) < 2):
        probs = subject_choice_probs(lm, data, ntrain, batch_size,
                                     progress=data.name if show_progress else "", stats=run.stats)
        table = subject_table(data, probs)
        run.tables[data.name] = table
        correct[data.name] = table["correct"].tolist()
        if out is not None:
            write_with_atomic(Path(out) / f"{data.name}.csv", lambda tmp, t=table: t.to_csv(tmp, index=False))
    run.metrics = mmlu_metrics(correct, ntrain)
    if out is not None:
        write_json(Path(out) / METRICS_FILE, run.metrics)
    return run


@dataclass
class InlineMMLU:
    """MMLU run inside ``evaluate`` on the checkpoint it already loaded. Construct it before the
    evaluation starts: the data is read and checked here, so a bad ``--mmlu-data`` fails at once."""

    data_dir: Path
    out: Path
    ntrain: int = DEFAULT_NTRAIN
    batch_size: int = DEFAULT_BATCH_SIZE
    subjects: Sequence[str] | None = None
    show_progress: bool = True
    data: list[SubjectData] = field(default_factory=list, init=False)
    result: MMLURun | None = field(default=None, init=False)

    def __post_init__(self):
        self.data = load_mmlu(self.data_dir, self.subjects, self.ntrain)

    def __call__(self, lm) -> float:
        self.result = run_mmlu(lm, self.data, self.ntrain, self.batch_size, self.out, self.show_progress)
        return self.result.average


# ---------------------------------------------------------------------------------------------------
# Command-line helpers (the click layer in cli.py stays thin)


def mmlu_checkpoint(checkpoint: str | Path, data_dir: str | Path, out: str | Path | None,
                    ntrain: int = DEFAULT_NTRAIN, subjects: Sequence[str] | None = None,
                    batch_size: int = DEFAULT_BATCH_SIZE, dtype: str = "auto", trust_remote_code: bool = False,
                    show_progress: bool = True) -> MMLURun:
    """``unlearn-eval mmlu``: read and check the data, load the checkpoint (``dtype`` ``auto`` as
    open-instruct: the checkpoint's own), score, write ``out``."""
    data = load_mmlu(data_dir, subjects, ntrain)
    check_checkpoint(checkpoint)
    lm = load_model(checkpoint, resolve_dtype(checkpoint, dtype), trust_remote_code)
    return run_mmlu(lm, data, ntrain, batch_size, out, show_progress)


def reference_mmlu_average(reference: str | Path, data_dir: str | Path | None = None, out: str | Path | None = None,
                           **run_options) -> float:
    """The reference checkpoint's MMLU for the relative gate: a ``metrics.json`` file is read; a checkpoint
    folder is run on ``data_dir`` (same options as the run it is compared with), writing into ``out``."""
    reference = Path(reference)
    if reference.is_dir():
        if data_dir is None:
            raise InputError(f"{reference}: a reference checkpoint needs --mmlu-data to run MMLU on "
                             "(or give its metrics.json)")
        return mmlu_checkpoint(reference, data_dir, out, **run_options).average
    return read_mmlu_average(reference)
